//! Putting the live-reload script into HTML responses.
//!
//! Pure functions and small state machines, no I/O: `decide` says whether a response gets the
//! script (and in which encoding, with which CSP nonce); `insert_complete` places it in a whole
//! body and `Streaming` in one that arrives in chunks; `decode`/`encode` and `StreamCodec` take
//! gzip, deflate and br bodies apart and put them back together; `fix_headers` makes the headers
//! true again afterwards. The proxy's forwarding code calls these and owns every socket.
//!
//! Invariants: a body either gets the tag exactly once or comes out byte for byte as it went in;
//! decoding never holds more than 64 MiB of output, so a compressed bomb cannot eat memory.

use std::fmt;
use std::io::{self, Read, Write};

use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderName,
};
use http::{HeaderMap, Method, StatusCode};

/// The most decoded output `decode` builds, and the most one `StreamCodec::decode` call returns.
pub const MAX_DECODED: usize = 64 << 20;

/// How far into a streamed body `Streaming` looks for `<body`: a page that has not opened its
/// body by then is not one the script belongs in, and everything after passes straight through.
pub const STREAM_SEARCH_LIMIT: usize = 64 << 10;

/// The longest possibly-partial `<body ...>` start tag `Streaming` holds back. Longer ones are
/// given up on, so a page that never closes its start tag is not held back without end.
pub const MAX_HELD_TAG: usize = 4 << 10;

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
    match content_encoding(response) {
        Ok(encoding) => Decision::Inject {
            encoding,
            nonce: csp_nonce(response),
        },
        Err(why) => Decision::Unsupported(why),
    }
}

/// Content-Type is `text/html`, in any case, with or without parameters.
fn is_html(response: &HeaderMap) -> bool {
    let Some(value) = response.get(CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes().trim_ascii_start();
    starts_with_ignore_case(value, b"text/html")
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

/// The nonce the page's scripts must carry, from the first Content-Security-Policy that has one.
/// Report-Only policies are not read: they block nothing, so nothing needs their nonce.
fn csp_nonce(response: &HeaderMap) -> Option<String> {
    response
        .get_all(CONTENT_SECURITY_POLICY)
        .iter()
        .find_map(|value| {
            // One header may carry several policies, separated by commas.
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .find_map(policy_nonce)
        })
}

/// The nonce of the directive that governs `<script src>` in one policy: `script-src-elem`
/// when present, else `script-src`, else `default-src`. The first present one decides, as in a
/// browser: a `script-src-elem` without a nonce means the others' nonces do not apply.
fn policy_nonce(policy: &str) -> Option<String> {
    let directives: Vec<Vec<&str>> = policy
        .split(';')
        .map(|directive| directive.split_ascii_whitespace().collect::<Vec<_>>())
        .filter(|tokens| !tokens.is_empty())
        .collect();
    let governing = ["script-src-elem", "script-src", "default-src"]
        .iter()
        .find_map(|name| {
            // A repeated directive is ignored by browsers after its first occurrence.
            directives
                .iter()
                .find(|tokens| tokens[0].eq_ignore_ascii_case(name))
        })?;
    governing[1..].iter().find_map(|source| {
        let inner = source.strip_prefix('\'')?.strip_suffix('\'')?;
        let (prefix, nonce) = inner.split_at_checked(6)?;
        (prefix.eq_ignore_ascii_case("nonce-") && !nonce.is_empty()).then(|| nonce.to_owned())
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

/// Inserts `tag` into a complete body: before the last `</body`, else right after the first
/// `<body ...>` start tag, else at the end when there is an `<html`. `None` when the body has
/// neither `<html` nor `<body` (a fragment, not a page), and when its only `<body` start tag
/// never ends (there is no safe place in a tag cut off mid-attribute).
pub fn insert_complete(body: &[u8], tag: &str) -> Option<Vec<u8>> {
    let at = match last_body_end_tag(body) {
        Some(at) => at,
        None => match scan_body_start(body) {
            BodyScan::Found { end, .. } => end,
            BodyScan::Unterminated { .. } => return None,
            BodyScan::Prefix { .. } | BodyScan::NotFound => {
                find_tag(body, b"<html")?;
                body.len()
            }
        },
    };
    Some(spliced(body, at, tag))
}

/// `body` with `tag` inserted at byte `at`.
fn spliced(body: &[u8], at: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + tag.len());
    out.extend_from_slice(&body[..at]);
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(&body[at..]);
    out
}

/// Where the last `</body` end tag begins.
fn last_body_end_tag(body: &[u8]) -> Option<usize> {
    (0..body.len())
        .rev()
        .find(|&at| is_tag_at(body, at, b"</body"))
}

/// Where the first `name` tag (`<html`, not `<htmlx`) begins.
fn find_tag(body: &[u8], name: &[u8]) -> Option<usize> {
    (0..body.len()).find(|&at| is_tag_at(body, at, name))
}

/// `body[at..]` begins with `name` (case-insensitive) and the tag name ends right after it.
/// The end of the input counts as an end of the name.
fn is_tag_at(body: &[u8], at: usize, name: &[u8]) -> bool {
    starts_with_ignore_case(&body[at..], name)
        && body
            .get(at + name.len())
            .is_none_or(|&byte| ends_tag_name(byte))
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack[..needle.len()].eq_ignore_ascii_case(needle)
}

/// The bytes that end a tag name in HTML's tokenizer.
fn ends_tag_name(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | b'\x0C' | b'\r' | b' ' | b'/' | b'>')
}

/// The first `<body` start tag in a buffer that may be cut anywhere.
#[derive(Debug, PartialEq, Eq)]
enum BodyScan {
    /// A whole start tag from `start` to `end` (just past its `>`).
    Found { start: usize, end: usize },
    /// The buffer ends inside what begins like `<body` (`<`, `<bo`, `<body`): more bytes decide.
    Prefix { start: usize },
    /// A `<body` start tag begins at `start` and the buffer ends before its `>`.
    Unterminated { start: usize },
    /// No `<body` start tag, and no beginning of one at the end.
    NotFound,
}

fn scan_body_start(buf: &[u8]) -> BodyScan {
    const NAME: &[u8] = b"<body";
    for start in (0..buf.len()).filter(|&at| buf[at] == b'<') {
        let rest = &buf[start..];
        if rest.len() <= NAME.len() {
            // Too short to tell whether the name ends here: `<body` may yet become `<bodyx`.
            if NAME[..rest.len()].eq_ignore_ascii_case(rest) {
                return BodyScan::Prefix { start };
            }
            continue;
        }
        if starts_with_ignore_case(rest, NAME) && ends_tag_name(rest[NAME.len()]) {
            return match start_tag_end(rest, NAME.len()) {
                Some(end) => BodyScan::Found {
                    start,
                    end: start + end,
                },
                None => BodyScan::Unterminated { start },
            };
        }
    }
    BodyScan::NotFound
}

/// Just past the `>` that ends the start tag whose name ends at `from`, following HTML's
/// tokenizer closely enough that a `>` inside a quoted attribute value does not count.
fn start_tag_end(tag: &[u8], from: usize) -> Option<usize> {
    enum State {
        /// Between attributes or in a name.
        Attributes,
        /// After `=`, before the value begins.
        BeforeValue,
        Quoted(u8),
        Unquoted,
    }
    let mut state = State::Attributes;
    for (at, &byte) in tag.iter().enumerate().skip(from) {
        state = match (state, byte) {
            (State::Attributes | State::BeforeValue | State::Unquoted, b'>') => {
                return Some(at + 1);
            }
            (State::Attributes, b'=')
            | (State::BeforeValue, b'\t' | b'\n' | b'\x0C' | b'\r' | b' ') => State::BeforeValue,
            (State::BeforeValue, quote @ (b'"' | b'\'')) => State::Quoted(quote),
            (State::BeforeValue, _) => State::Unquoted,
            (State::Quoted(quote), byte) if byte == quote => State::Attributes,
            (State::Unquoted, b'\t' | b'\n' | b'\x0C' | b'\r' | b' ') => State::Attributes,
            (state, _) => state,
        };
    }
    None
}

/// Inserts the tag into a body that arrives in chunks, right after its first `<body ...>` start
/// tag, holding back nothing but a possibly-partial start tag at the end of what came so far.
#[derive(Debug)]
pub struct Streaming {
    /// The tag while it is still to be placed; `None` once placed or given up on, after which
    /// every chunk passes straight through.
    tag: Option<String>,
    /// The end of what came so far, held back because it may be the beginning of `<body ...>`.
    held: Vec<u8>,
    /// How many bytes of the body came before `held`.
    passed: usize,
}

impl Streaming {
    pub fn new(tag: String) -> Self {
        Self {
            tag: Some(tag),
            held: Vec::new(),
            passed: 0,
        }
    }

    /// What may go to the browser now that `chunk` came.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let Some(tag) = &self.tag else {
            return chunk.to_vec();
        };
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        match scan_body_start(&buf) {
            BodyScan::Found { start, end } if self.passed + start < STREAM_SEARCH_LIMIT => {
                let out = spliced(&buf, end, tag);
                self.tag = None;
                out
            }
            BodyScan::Prefix { start } | BodyScan::Unterminated { start }
                if self.passed + start < STREAM_SEARCH_LIMIT
                    && buf.len() - start <= MAX_HELD_TAG =>
            {
                self.held = buf.split_off(start);
                self.passed += start;
                buf
            }
            BodyScan::NotFound if self.passed + buf.len() < STREAM_SEARCH_LIMIT => {
                self.passed += buf.len();
                buf
            }
            // Past the search limit, or a start tag too long to hold: give up on this page.
            _ => {
                self.tag = None;
                buf
            }
        }
    }

    /// What was held back when the body ended (the tag was not placed, then).
    pub fn finish(self) -> Vec<u8> {
        self.held
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
