//! Putting the live-reload script into HTML responses.
//!
//! Pure functions and small state machines, no I/O: `decide` says whether a response gets the
//! script (and in which encoding, with which CSP nonce, or why its CSP would block it);
//! `insert_complete` places it in a whole body and `Streaming` in one that arrives in chunks,
//! where lol_html's tokenizer finds the `<body>` and `</body>` tags; `decode`/`encode` and
//! `StreamCodec` take gzip, deflate and br bodies apart and put them back together;
//! `fix_headers` makes the headers true again afterwards. The proxy's forwarding code calls
//! these and owns every socket.
//!
//! Invariants: a body either gets the tag exactly once or comes out byte for byte as it went in;
//! decoding never holds more than 64 MiB of output, so a compressed bomb cannot eat memory, and
//! the tokenizer never more than `TOKENIZER_MEMORY`.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderName,
};
use http::{HeaderMap, Method, StatusCode};

/// The most decoded output `decode` builds, and the most one `StreamCodec::decode` call returns.
pub const MAX_DECODED: usize = 64 << 20;

/// How far into a streamed body `Streaming` looks for the `<body ...>` start tag (the whole tag
/// within it): a page that has not opened its body by then is not one the script belongs in,
/// and everything after passes straight through.
pub const STREAM_SEARCH_LIMIT: usize = 64 << 10;

/// A Content-Encoding this module can take apart and put back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib-wrapped, as RFC 9110 means it (raw deflate is accepted on decode).
    Deflate,
    Brotli,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Brotli => "br",
        })
    }
}

/// What to do with one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not a page the script belongs in: forward it byte for byte.
    Pass,
    /// An HTML page: decode it with `encoding`, insert the tag (with `nonce`), encode it again.
    Inject {
        encoding: Encoding,
        nonce: Option<String>,
    },
    /// An HTML page in an encoding this module cannot handle: forward it untouched, warn once.
    Unsupported(String),
    /// An HTML page whose Content-Security-Policy blocks the script: forward it untouched (the
    /// tag would only add an error to its console), and say what to change.
    Blocked(Blocked),
}

const HX_REQUEST: HeaderName = HeaderName::from_static("hx-request");
const DATASTAR_REQUEST: HeaderName = HeaderName::from_static("datastar-request");

/// Whether the response to this request gets the script.
///
/// A 206 is passed as well as the 1xx, 204 and 304 the spec names: its body is a slice of the
/// page, and a tag inserted into a slice would corrupt the reassembled whole.
pub fn decide(
    method: &Method,
    request: &HeaderMap,
    status: StatusCode,
    response: &HeaderMap,
) -> Decision {
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT;
    // htmx and Datastar swap the response into a page that already has the script.
    let partial = request.contains_key(HX_REQUEST) || request.contains_key(DATASTAR_REQUEST);
    if method == Method::HEAD || no_body || partial || !is_html(response) {
        return Decision::Pass;
    }
    match (content_encoding(response), script_policy(response)) {
        (Err(why), _) => Decision::Unsupported(why),
        (Ok(_), ScriptPolicy::Blocked(blocked)) => Decision::Blocked(blocked),
        (Ok(encoding), ScriptPolicy::Allowed(nonce)) => Decision::Inject { encoding, nonce },
    }
}

/// Content-Type is `text/html`, in any case, with or without parameters.
fn is_html(response: &HeaderMap) -> bool {
    let Some(value) = response.get(CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes().trim_ascii_start();
    value
        .get(..9)
        .is_some_and(|start| start.eq_ignore_ascii_case(b"text/html"))
        && matches!(value.get(9), None | Some(b';' | b' ' | b'\t'))
}

/// The one encoding the body is in, or why it cannot be handled. `identity` tokens are no
/// encoding at all; more than one real coding is a stack this module does not unwind.
fn content_encoding(response: &HeaderMap) -> Result<Encoding, String> {
    let mut codings = Vec::new();
    for value in response.get_all(CONTENT_ENCODING) {
        let value = String::from_utf8_lossy(value.as_bytes());
        codings.extend(
            value
                .split(',')
                .map(|coding| coding.trim().to_ascii_lowercase())
                .filter(|coding| !coding.is_empty() && coding != "identity"),
        );
    }
    match codings.as_slice() {
        [] => Ok(Encoding::Identity),
        [one] => match one.as_str() {
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "deflate" => Ok(Encoding::Deflate),
            "br" => Ok(Encoding::Brotli),
            other => Err(format!(
                "Content-Encoding `{other}` is not one reload can re-encode (gzip, deflate, br)"
            )),
        },
        several => Err(format!(
            "stacked Content-Encoding `{}`: reload re-encodes one coding only",
            several.join(", ")
        )),
    }
}

/// What the page's enforced Content-Security-Policy says about the script tag.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ScriptPolicy {
    /// It may load, carrying this nonce when a policy asks for one.
    Allowed(Option<String>),
    Blocked(Blocked),
}

/// A Content-Security-Policy directive that certainly blocks reload's script: none of its
/// sources can match a script of the page's own origin, and it has no nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The directive as the page sent it (`script-src 'none'`), shortened when long.
    pub directive: String,
    /// The directive the fix goes into: `script-src-elem`, `script-src` or `default-src`.
    pub name: &'static str,
    /// It has `'strict-dynamic'`, under which `'self'` does not count: only a nonce helps.
    pub nonce_only: bool,
}

impl Blocked {
    /// What to change so that the page gets live reload.
    pub fn fix(&self) -> String {
        if self.nonce_only {
            format!(
                "add a nonce to {} ('strict-dynamic' ignores 'self'); reload puts it on its script",
                self.name
            )
        } else {
            format!(
                "add 'self' or a nonce to {} (reload puts the nonce on its script)",
                self.name
            )
        }
    }
}

/// The longest directive a warning quotes.
const DIRECTIVE_SHOWN: usize = 120;

/// Reads the enforced policies: each header may carry several, separated by commas.
/// Report-Only policies block nothing, so they are not read. The nonce comes from the first
/// policy that has one; a policy that certainly blocks the script decides.
fn script_policy(response: &HeaderMap) -> ScriptPolicy {
    let mut nonce = None;
    for value in response.get_all(CONTENT_SECURITY_POLICY) {
        for policy in String::from_utf8_lossy(value.as_bytes()).split(',') {
            let Some((name, tokens)) = governing_directive(policy) else {
                continue;
            };
            let sources = &tokens[1..];
            if let Some(found) = sources.iter().find_map(|source| source_nonce(source)) {
                nonce.get_or_insert(found);
            } else if let Some(blocked) = blocks(name, &tokens) {
                return ScriptPolicy::Blocked(blocked);
            }
        }
    }
    ScriptPolicy::Allowed(nonce)
}

/// The directive that governs `<script src>` in one policy, with its name: `script-src-elem`
/// when present, else `script-src`, else `default-src`. The first present one decides, as in a
/// browser: a `script-src-elem` without a nonce means the others' nonces do not apply.
fn governing_directive(policy: &str) -> Option<(&'static str, Vec<&str>)> {
    let directives: Vec<Vec<&str>> = policy
        .split(';')
        .map(|directive| directive.split_ascii_whitespace().collect::<Vec<_>>())
        .filter(|tokens| !tokens.is_empty())
        .collect();
    ["script-src-elem", "script-src", "default-src"]
        .into_iter()
        .find_map(|name| {
            // A repeated directive is ignored by browsers after its first occurrence.
            directives
                .iter()
                .find(|tokens| tokens[0].eq_ignore_ascii_case(name))
                .map(|tokens| (name, tokens.clone()))
        })
}

/// The nonce in a source expression `'nonce-...'`.
fn source_nonce(source: &str) -> Option<String> {
    let inner = source.strip_prefix('\'')?.strip_suffix('\'')?;
    let (prefix, nonce) = inner.split_at_checked(6)?;
    (prefix.eq_ignore_ascii_case("nonce-") && !nonce.is_empty()).then(|| nonce.to_owned())
}

/// Whether a directive without a nonce (`tokens`: its name, then its sources) certainly blocks
/// `<script src="/__reload/client.js">`. Only what is certain counts: `'self'` matches it, and
/// so may a host, `*` or `http:`, so any of those is no block.
fn blocks(name: &'static str, tokens: &[&str]) -> Option<Blocked> {
    let sources = &tokens[1..];
    // Under 'strict-dynamic' a script in the page's HTML loads by nonce or hash only, and a
    // hash cannot match a script loaded by URL without an integrity attribute.
    let nonce_only = sources
        .iter()
        .any(|source| source.eq_ignore_ascii_case("'strict-dynamic'"));
    let never_matches = |source: &&str| {
        // Quoted sources are keywords, nonces and hashes: of them only 'self' matches a URL.
        if source.starts_with('\'') {
            !source.eq_ignore_ascii_case("'self'")
        } else {
            ["data:", "blob:", "filesystem:", "mediastream:"]
                .iter()
                .any(|scheme| source.eq_ignore_ascii_case(scheme))
        }
    };
    (nonce_only || sources.iter().all(never_matches)).then(|| {
        let directive = tokens.join(" ");
        let directive = match directive.char_indices().nth(DIRECTIVE_SHOWN) {
            Some((cut, _)) => format!("{}...", &directive[..cut]),
            None => directive,
        };
        Blocked {
            directive,
            name,
            nonce_only,
        }
    })
}

/// The script element the proxy injects. `generation` is the server generation that served the
/// page (0 for a page the proxy made itself).
pub fn script_tag(generation: u64, nonce: Option<&str>) -> String {
    match nonce {
        Some(nonce) => format!(
            r#"<script src="/__reload/client.js" nonce="{}" data-generation="{generation}" async></script>"#,
            escape_attribute(nonce)
        ),
        None => {
            format!(
                r#"<script src="/__reload/client.js" data-generation="{generation}" async></script>"#
            )
        }
    }
}

/// Escapes a value for a double-quoted HTML attribute. The nonce comes from the app's headers:
/// base64 in practice, but a quote in it must not end the attribute.
fn escape_attribute(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Inserts `tag` into a complete body: before its `</body>` end tag; else at the end, when the
/// body has an `<html>` or `<body>` element and ends where a tag may go (`</body>` may be
/// omitted); else right after its `<body ...>` start tag. Only what an HTML tokenizer reads as
/// a tag counts: not a `</body>` in a comment, a script, a style, a title, a textarea or an
/// attribute value. `None`, and the body goes as it came, when it does not begin like HTML, when
/// it is a fragment with neither element, and when the tokenizer found no place before it gave
/// up (on its memory limit).
pub fn insert_complete(body: &[u8], tag: &str) -> Option<Vec<u8>> {
    if Sniff::default().feed(body) != Some(true) {
        return None;
    }
    let mut tokenizer = Tokenizer::new(TOKENIZER_MEMORY);
    // A start tag after the end is read as one only where a tag placed there would be, and not
    // inside an unclosed comment, script or attribute value.
    let complete = tokenizer.write(body) && tokenizer.write(END_PROBE);
    let found = tokenizer.found();
    let at_end =
        complete && (found.html || found.body_start.is_some()) && found.probe == Some(body.len());
    let at = found
        .body_end
        .or(at_end.then_some(body.len()))
        .or(found.body_start)?;
    Some(spliced(body, at, tag))
}

/// The most memory lol_html may take by its own count: it buffers only a token cut off by the
/// end of a chunk. Past it, the tokenizer gives up and the page goes as it came.
const TOKENIZER_MEMORY: usize = 256 << 10;

/// What `insert_complete` writes after a body to learn whether its end is a place for a tag.
const END_PROBE: &[u8] = b"<reload-end-probe>";

/// `body` with `tag` inserted at byte `at`.
fn spliced(body: &[u8], at: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + tag.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&body[at..]);
    out
}

/// Whether a body begins like HTML: `<` after an optional UTF-8 byte order mark and ASCII
/// whitespace. JSON, text or binary served as text/html does not, and is never touched.
#[derive(Debug, Default)]
struct Sniff {
    /// How many bytes came, all of them the BOM or whitespace.
    read: usize,
    /// How many of them are the BOM (all 3 once it is whole).
    bom: usize,
    answer: Option<bool>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Sniff {
    /// The answer, once a byte decided it; `None` while only a BOM and whitespace came.
    fn feed(&mut self, bytes: &[u8]) -> Option<bool> {
        for &byte in bytes {
            if self.answer.is_some() {
                break;
            }
            if self.read == self.bom && BOM.get(self.bom) == Some(&byte) {
                self.bom += 1;
            } else if self.bom == 0 || self.bom == BOM.len() {
                if !byte.is_ascii_whitespace() {
                    self.answer = Some(byte == b'<');
                }
            } else {
                // Part of a BOM, then something else.
                self.answer = Some(false);
            }
            self.read += 1;
        }
        self.answer
    }
}

/// Where the tags that place the script are, in bytes of the body.
#[derive(Debug, Default, Clone, Copy)]
struct Found {
    html: bool,
    /// Just past the `>` of the first `<body ...>` start tag.
    body_start: Option<usize>,
    /// Where the last `</body>` end tag begins.
    body_end: Option<usize>,
    /// Where the `END_PROBE` start tag begins, when it was read as a tag.
    probe: Option<usize>,
}

/// lol_html run as a tokenizer: its handlers note where the tags that matter are (lol_html's
/// source locations, in bytes of the input) and its output is dropped. What reaches the browser
/// is always the app's bytes, with the tag spliced in at most once, so no error of lol_html can
/// cut or change a page.
struct Tokenizer {
    /// `None` once lol_html gave up: it must not be written to again.
    rewriter: Option<lol_html::send::HtmlRewriter<'static, Discard>>,
    found: Arc<Mutex<Found>>,
}

/// lol_html's output, not needed: the places it found are.
struct Discard;

impl lol_html::OutputSink for Discard {
    fn handle_chunk(&mut self, _: &[u8]) {}
}

impl Tokenizer {
    /// A tokenizer that gives up past `memory` bytes of buffers.
    fn new(memory: usize) -> Self {
        use lol_html::{element, end_tag};
        let found = Arc::new(Mutex::new(Found::default()));
        let (html, body, probe) = (found.clone(), found.clone(), found.clone());
        let settings = lol_html::send::Settings::new_send()
            .append_element_content_handler(element!("html", move |_| {
                note(&html, |found| found.html = true);
                Ok(())
            }))
            .append_element_content_handler(element!("body", move |element| {
                let end = element.source_location().bytes().end;
                note(&body, |found| {
                    found.body_start.get_or_insert(end);
                });
                let body = body.clone();
                element.on_end_tag(end_tag!(move |end_tag| {
                    let start = end_tag.source_location().bytes().start;
                    note(&body, |found| found.body_end = Some(start));
                    Ok(())
                }))
            }))
            .append_element_content_handler(element!("reload-end-probe", move |element| {
                let start = element.source_location().bytes().start;
                note(&probe, |found| {
                    found.probe = Some(start);
                });
                Ok(())
            }))
            .with_memory_settings(
                lol_html::MemorySettings::new().with_max_allowed_memory_usage(memory),
            )
            // Strict mode gives up on markup whose parsing it cannot be sure of; a best guess at
            // where `<body>` is beats no live reload.
            .with_strict(false);
        Self {
            rewriter: Some(lol_html::send::HtmlRewriter::new(settings, Discard)),
            found,
        }
    }

    /// Reads more of the body; `false` once lol_html gave up.
    fn write(&mut self, bytes: &[u8]) -> bool {
        let Some(rewriter) = &mut self.rewriter else {
            return false;
        };
        if rewriter.write(bytes).is_err() {
            self.rewriter = None;
            return false;
        }
        true
    }

    /// What was found so far, still true after lol_html gave up.
    fn found(&self) -> Found {
        *self.found.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn note(found: &Mutex<Found>, change: impl FnOnce(&mut Found)) {
    change(&mut found.lock().unwrap_or_else(PoisonError::into_inner));
}

/// Inserts the tag into a body that arrives in chunks, right after its `<body ...>` start tag,
/// into the chunk that ends that tag. Nothing is held back: each chunk goes out as it came
/// (lol_html keeps its own copy of a tag cut between chunks, and only reads).
pub struct Streaming {
    /// `None` once the tag is placed or given up on: every chunk then passes as it is.
    search: Option<Search>,
    /// How many bytes of the body came before the next chunk.
    passed: usize,
}

struct Search {
    tag: String,
    sniff: Sniff,
    tokenizer: Tokenizer,
}

impl Streaming {
    pub fn new(tag: String) -> Self {
        Self::with_memory(tag, TOKENIZER_MEMORY)
    }

    fn with_memory(tag: String, memory: usize) -> Self {
        Self {
            search: Some(Search {
                tag,
                sniff: Sniff::default(),
                tokenizer: Tokenizer::new(memory),
            }),
            passed: 0,
        }
    }

    /// What goes to the browser now that `chunk` came: the chunk, with the tag in it when it
    /// ends the `<body ...>` start tag.
    pub fn push(&mut self, mut chunk: Vec<u8>) -> Vec<u8> {
        let start = self.passed;
        self.passed += chunk.len();
        let Some(search) = &mut self.search else {
            return chunk;
        };
        let searched = chunk.len().min(STREAM_SEARCH_LIMIT.saturating_sub(start));
        match search.read(start, &chunk[..searched]) {
            Step::Place(at) => {
                chunk.splice(at..at, search.tag.bytes());
                self.search = None;
            }
            Step::NotYet if self.passed < STREAM_SEARCH_LIMIT => {}
            // No `<body>` in time, or not a page, or the tokenizer gave up.
            Step::NotYet | Step::GiveUp => self.search = None,
        }
        chunk
    }

    /// Whether the tag is still to be placed (for tests).
    #[cfg(test)]
    fn searching(&self) -> bool {
        self.search.is_some()
    }
}

impl fmt::Debug for Streaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("searching", &self.search.is_some())
            .field("passed", &self.passed)
            .finish()
    }
}

/// What one chunk told a `Search`.
enum Step {
    /// The tag goes at this byte of the chunk.
    Place(usize),
    NotYet,
    /// Not a page, or the tokenizer gave up: pass the rest as it is.
    GiveUp,
}

impl Search {
    /// Reads the next `bytes` of the body, which begin at byte `start` of it.
    fn read(&mut self, start: usize, bytes: &[u8]) -> Step {
        if self.sniff.feed(bytes) == Some(false) || !self.tokenizer.write(bytes) {
            return Step::GiveUp;
        }
        match self.tokenizer.found().body_start {
            None => Step::NotYet,
            // The `>` that ends the start tag is in the bytes lol_html just read, so the place
            // is in them; one in bytes already sent could not take the tag any more.
            Some(end) if end > start && end <= start + bytes.len() => Step::Place(end - start),
            Some(_) => Step::GiveUp,
        }
    }
}

/// Decodes a whole body, refusing past `MAX_DECODED` bytes of output.
pub fn decode(encoding: Encoding, body: &[u8]) -> io::Result<Vec<u8>> {
    decode_bounded(encoding, body, MAX_DECODED)
}

fn decode_bounded(encoding: Encoding, body: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let decoded = match encoding {
        Encoding::Identity => return Ok(body.to_vec()),
        // Several gzip members one after another are one valid gzip body.
        Encoding::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(body), limit),
        Encoding::Deflate if looks_like_zlib(body) => {
            match read_bounded(flate2::read::ZlibDecoder::new(body), limit) {
                Err(error) if error.kind() != io::ErrorKind::FileTooLarge => {
                    // Two bytes can look like a zlib header by chance; raw deflate may still fit.
                    read_bounded(flate2::read::DeflateDecoder::new(body), limit)
                }
                result => result,
            }
        }
        Encoding::Deflate => read_bounded(flate2::read::DeflateDecoder::new(body), limit),
        Encoding::Brotli => read_bounded(brotli::Decompressor::new(body, 4096), limit),
    };
    decoded.map_err(|error| {
        io::Error::new(
            error.kind(),
            format!(
                "decoding a {encoding} body of {} bytes: {error}",
                body.len()
            ),
        )
    })
}

/// Reads to the end, but errors as soon as the output would pass `limit`.
fn read_bounded(reader: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("decoded output is over {limit} bytes, refused"),
    )
}

/// A zlib header (RFC 1950): compression method 8, and the two bytes a multiple of 31.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => cmf & 0x0F == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

/// Encodes a whole body. Deflate is written zlib-wrapped, whatever the app sent.
pub fn encode(encoding: Encoding, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = Encoder::new(encoding);
    let mut out = encoder.write(body, false)?;
    out.extend(encoder.finish()?);
    Ok(out)
}

/// Brotli settings: quality 5 compresses HTML within a few percent of 11 at a small fraction
/// of the time, which is what a dev proxy re-encoding every page wants; 22 is brotli's default
/// window.
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;
const BROTLI_BUFFER: usize = 4096;

enum Encoder {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(encoding: Encoding) -> Self {
        let level = flate2::Compression::default();
        match encoding {
            Encoding::Identity => Encoder::Identity,
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(Vec::new(), level)),
            Encoding::Deflate => {
                Encoder::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), level))
            }
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_WINDOW,
            ))),
        }
    }

    /// Compresses `plain` and returns what is ready; with `flush`, everything written so far is
    /// decodable from what was returned.
    fn write(&mut self, plain: &[u8], flush: bool) -> io::Result<Vec<u8>> {
        fn drain<W: Write>(
            writer: &mut W,
            plain: &[u8],
            flush: bool,
            out: impl FnOnce(&mut W) -> &mut Vec<u8>,
        ) -> io::Result<Vec<u8>> {
            writer.write_all(plain)?;
            if flush {
                writer.flush()?;
            }
            Ok(std::mem::take(out(writer)))
        }
        match self {
            Encoder::Identity => Ok(plain.to_vec()),
            Encoder::Gzip(gzip) => drain(gzip, plain, flush, |w| w.get_mut()),
            Encoder::Deflate(zlib) => drain(zlib, plain, flush, |w| w.get_mut()),
            Encoder::Brotli(brotli) => drain(brotli.as_mut(), plain, flush, |w| w.get_mut()),
        }
    }

    /// Ends the compressed stream (gzip's trailer, brotli's last block).
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Encoder::Identity => Ok(Vec::new()),
            Encoder::Gzip(gzip) => gzip.finish(),
            Encoder::Deflate(zlib) => zlib.finish(),
            Encoder::Brotli(brotli) => Ok(brotli.into_inner()),
        }
    }
}

/// Where a streaming decoder writes its output: it refuses to grow past its limit, so one small
/// compressed chunk cannot expand into gigabytes before the caller sees it.
struct BoundedSink {
    buf: Vec<u8>,
    limit: usize,
}

impl BoundedSink {
    fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            limit,
        }
    }
}

impl Write for BoundedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            return Err(too_large(self.limit));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Decoder {
    Identity,
    Gzip(flate2::write::MultiGzDecoder<BoundedSink>),
    /// Deflate before its first two bytes came: they tell zlib from raw deflate.
    DeflateUndecided(Vec<u8>, usize),
    Zlib(flate2::write::ZlibDecoder<BoundedSink>),
    RawDeflate(flate2::write::DeflateDecoder<BoundedSink>),
    Brotli(Box<brotli::DecompressorWriter<BoundedSink>>),
}

impl Decoder {
    fn new(encoding: Encoding, limit: usize) -> Self {
        match encoding {
            Encoding::Identity => Decoder::Identity,
            Encoding::Gzip => {
                Decoder::Gzip(flate2::write::MultiGzDecoder::new(BoundedSink::new(limit)))
            }
            Encoding::Deflate => Decoder::DeflateUndecided(Vec::new(), limit),
            Encoding::Brotli => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(
                BoundedSink::new(limit),
                BROTLI_BUFFER,
            ))),
        }
    }

    /// Decodes `chunk` and returns all the output it makes available.
    fn write(&mut self, chunk: &[u8]) -> io::Result<Vec<u8>> {
        fn drain<W: Write>(
            writer: &mut W,
            chunk: &[u8],
            sink: impl FnOnce(&mut W) -> &mut BoundedSink,
        ) -> io::Result<Vec<u8>> {
            writer.write_all(chunk)?;
            // flate2's writers keep output in a buffer of their own until flushed.
            writer.flush()?;
            Ok(std::mem::take(&mut sink(writer).buf))
        }
        match self {
            Decoder::Identity => Ok(chunk.to_vec()),
            Decoder::DeflateUndecided(start, limit) => {
                start.extend_from_slice(chunk);
                if start.len() < 2 {
                    return Ok(Vec::new());
                }
                let start = std::mem::take(start);
                let sink = BoundedSink::new(*limit);
                *self = if looks_like_zlib(&start) {
                    Decoder::Zlib(flate2::write::ZlibDecoder::new(sink))
                } else {
                    Decoder::RawDeflate(flate2::write::DeflateDecoder::new(sink))
                };
                self.write(&start)
            }
            Decoder::Gzip(gzip) => drain(gzip, chunk, |w| w.get_mut()),
            Decoder::Zlib(zlib) => drain(zlib, chunk, |w| w.get_mut()),
            Decoder::RawDeflate(raw) => drain(raw, chunk, |w| w.get_mut()),
            Decoder::Brotli(brotli) => drain(brotli.as_mut(), chunk, |w| w.get_mut()),
        }
    }

    /// Checks that the compressed stream ended properly and returns any last output.
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Decoder::Identity => Ok(Vec::new()),
            // An empty body is no stream at all, and nothing is missing from it.
            Decoder::DeflateUndecided(start, _) if start.is_empty() => Ok(Vec::new()),
            Decoder::DeflateUndecided(..) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the deflate stream ended after one byte",
            )),
            Decoder::Gzip(gzip) => gzip.finish().map(|sink| sink.buf),
            Decoder::Zlib(zlib) => zlib.finish().map(|sink| sink.buf),
            Decoder::RawDeflate(raw) => raw.finish().map(|sink| sink.buf),
            Decoder::Brotli(mut brotli) => {
                brotli.close()?;
                Ok(std::mem::take(&mut brotli.get_mut().buf))
            }
        }
    }
}

/// Decodes a compressed body chunk by chunk and encodes the injected one the same way, with a
/// sync flush per chunk: a streamed page reaches the browser as the app writes it.
pub struct StreamCodec {
    encoding: Encoding,
    decoder: Decoder,
    encoder: Encoder,
    /// Whether any compressed byte came: an empty body need not be a complete stream.
    received: bool,
}

impl StreamCodec {
    pub fn new(encoding: Encoding) -> Self {
        Self::with_limit(encoding, MAX_DECODED)
    }

    fn with_limit(encoding: Encoding, limit: usize) -> Self {
        Self {
            encoding,
            decoder: Decoder::new(encoding, limit),
            encoder: Encoder::new(encoding),
            received: false,
        }
    }

    /// The plain bytes that `chunk` of the app's compressed body makes available. One call
    /// returns at most `MAX_DECODED` bytes, and errors past that.
    pub fn decode(&mut self, chunk: &[u8]) -> io::Result<Vec<u8>> {
        self.received |= !chunk.is_empty();
        self.decoder
            .write(chunk)
            .map_err(|error| self.context(error, "decoding"))
    }

    /// `plain` compressed, sync-flushed so the browser can decode all of it at once.
    pub fn encode(&mut self, plain: &[u8]) -> io::Result<Vec<u8>> {
        if plain.is_empty() {
            // A flush with nothing new would still add an empty block to the stream.
            return Ok(Vec::new());
        }
        self.encoder
            .write(plain, true)
            .map_err(|error| self.context(error, "encoding"))
    }

    /// The end of the re-encoded stream, once the app's body ended. Errors when the app's
    /// compressed stream was cut short or corrupt at its end.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        let Self {
            encoding,
            decoder,
            mut encoder,
            received,
        } = self;
        let context = |error: io::Error, doing: &str| {
            io::Error::new(
                error.kind(),
                format!("{doing} a streamed {encoding} body: {error}"),
            )
        };
        let mut out = Vec::new();
        if received {
            let rest = decoder
                .finish()
                .map_err(|error| context(error, "finishing"))?;
            out = encoder
                .write(&rest, false)
                .map_err(|error| context(error, "encoding"))?;
        }
        out.extend(
            encoder
                .finish()
                .map_err(|error| context(error, "finishing"))?,
        );
        Ok(out)
    }

    fn context(&self, error: io::Error, doing: &str) -> io::Error {
        io::Error::new(
            error.kind(),
            format!("{doing} a streamed {} body: {error}", self.encoding),
        )
    }
}

impl fmt::Debug for StreamCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamCodec")
            .field("encoding", &self.encoding)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");
const DIGEST: HeaderName = HeaderName::from_static("digest");
const REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");

/// Makes the headers true of the injected body: its length (`None` when it streams), and no
/// validator or digest of the body the app sent. Content-Encoding stays: the body was
/// re-encoded in the same one. Content-Digest goes too, being a digest of the encoded bytes.
pub fn fix_headers(headers: &mut HeaderMap, new_length: Option<usize>) {
    for name in [ETAG, CONTENT_MD5, DIGEST, REPR_DIGEST, CONTENT_DIGEST] {
        headers.remove(name);
    }
    match new_length {
        Some(length) => {
            headers.insert(CONTENT_LENGTH, length.into());
        }
        None => {
            headers.remove(CONTENT_LENGTH);
        }
    }
}

#[cfg(test)]
mod tests;
