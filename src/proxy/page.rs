//! What the proxy shows in place of the app: the failed-build page, and the client script.
//!
//! A build's output is terminal text: colours, cursor movements, OSC 8 links, stray control
//! characters. `clean` alone decides what of it a page sees (text and SGR colours); the events
//! carry its result to the overlay in client.js, `ansi_to_html` turns it into escaped HTML with
//! the colours as balanced `<span>`s, and `failed_build_text` keeps only the text. So the 503
//! page, the plain body and the overlay never disagree about what is visible; `headline` is
//! likewise the one wording of a failure. Nothing here does I/O.

use std::fmt::Write as _;

use crate::lifecycle::{Ended, Trouble};

/// The browser client, served at `/__reload/client.js`: the page's live reload and overlay, and
/// the SharedWorker that holds the one event stream all tabs share (the same file).
pub const CLIENT_JS: &str = include_str!("client.js");

/// The 16 terminal colours, chosen to read on the page's dark background ("black" is a grey, so
/// it stays visible). client.js holds the same list.
const PALETTE: [(u8, u8, u8); 16] = [
    (0x77, 0x77, 0x77),
    (0xee, 0x55, 0x55),
    (0x55, 0xaa, 0x55),
    (0xcc, 0x99, 0x22),
    (0x55, 0x99, 0xff),
    (0xbb, 0x88, 0xff),
    (0x33, 0xcc, 0xcc),
    (0xdd, 0xdd, 0xdd),
    (0x99, 0x99, 0x99),
    (0xff, 0x77, 0x77),
    (0x77, 0xee, 0x88),
    (0xee, 0xbb, 0x44),
    (0x77, 0xcc, 0xff),
    (0xdd, 0xaa, 0xff),
    (0x55, 0xdd, 0xdd),
    (0xff, 0xff, 0xff),
];

/// `text` (a build's output) as HTML for a `<pre>`: every character escaped, SGR colours and
/// attributes as `<span style>`s (closed at each change and at the end, so never unbalanced),
/// the rest as [`clean`] leaves it.
pub fn ansi_to_html(text: &str) -> String {
    let text = clean(text);
    let mut html = String::with_capacity(text.len() + text.len() / 4);
    let mut style = Style::default();
    // The style of the span now open; the default style means no span is open.
    let mut open = Style::default();
    for piece in Pieces::new(&text) {
        match piece {
            Piece::Sgr(parameters) => style.apply(parameters),
            Piece::Text(text) => {
                if style != open {
                    if open != Style::default() {
                        html.push_str("</span>");
                    }
                    if style != Style::default() {
                        let _ = write!(html, "<span style=\"{}\">", style.css());
                    }
                    open = style;
                }
                for c in text.chars() {
                    push_escaped(&mut html, c);
                }
            }
        }
    }
    if open != Style::default() {
        html.push_str("</span>");
    }
    html
}

/// `text` (a build's output) as every renderer shows it: the one place that decides which
/// characters a page sees. The 503 page renders what this leaves, and the events carry it to
/// the overlay, which only has SGR left to parse. Kept: text, newlines, tabs, and SGR
/// sequences (colours and attributes), each rewritten as `ESC [ parameters m`. Gone: every
/// other escape sequence (its visible text stays) and every other control character, C0, DEL
/// and C1 alike. `\r\n` and a lone `\r` (a progress line redrawn) become newlines.
///
/// Cleaning what is clean changes nothing: no `ESC` is left but the SGRs' own.
pub(crate) fn clean(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for piece in Pieces::new(&text) {
        match piece {
            Piece::Sgr(parameters) => {
                let _ = write!(out, "\x1b[{parameters}m");
            }
            Piece::Text(text) => out.extend(text.chars().filter_map(shown)),
        }
    }
    out
}

/// What a page shows of one character of text: itself, a newline for a lone `\r`, or nothing
/// for any other control character (NUL, BEL, backspace, DEL, NEL, CSI and the rest of C1).
fn shown(c: char) -> Option<char> {
    match c {
        '\n' | '\t' => Some(c),
        '\r' => Some('\n'),
        c if c.is_control() => None,
        c => Some(c),
    }
}

/// The body of the 503 an HTML request gets while the build failed and no server runs: the
/// output, and `script` (the client) that turns the page into the app once a build succeeds.
pub fn failed_build_page(how: &str, errors: Option<usize>, output: &str, script: &str) -> String {
    let output = if output.trim().is_empty() {
        "(the build printed nothing)".to_owned()
    } else {
        ansi_to_html(output)
    };
    document(
        "Build failed",
        &escape(&headline(how, errors)),
        "This page turns into the app by itself once a build succeeds.",
        &output,
        script,
    )
}

/// A page of reload's own saying why there is no app to show (a request held past the hold
/// timeout); `script` turns it into the app once a server is ready.
pub fn message_page(title: &str, message: &str, script: &str) -> String {
    document(
        &escape(title),
        &escape(title),
        "This page turns into the app by itself once it is ready.",
        &escape(message),
        script,
    )
}

/// The title and the words of reload's page for `trouble`, as a web developer says it: "Your
/// app exited with status 3 before it listened on :8080." `port`: where the app was to
/// listen, when it binds a port itself and the trouble does not say.
pub fn trouble(trouble: &Trouble, port: Option<u16>) -> (String, String) {
    match trouble {
        Trouble::Exited {
            ended,
            serving: false,
            port: given,
            ..
        } => {
            let before = match given.or(port) {
                Some(port) => format!("before it listened on :{port}"),
                None => "before it was ready".to_owned(),
            };
            (
                "Your app exited".to_owned(),
                format!(
                    "Your app {} {before}.\n\nIts output is in the terminal where reload runs. \
                     Fix the app and save: reload builds and starts it again, and this page \
                     turns into the app.",
                    ended_words(ended)
                ),
            )
        }
        Trouble::Exited { ended, .. } => (
            "Your app exited".to_owned(),
            format!(
                "Your app {} while it was serving.\n\nIts output is in the terminal where \
                 reload runs. reload starts it again on the next save, and this page turns \
                 into the app.",
                ended_words(ended)
            ),
        ),
        Trouble::ListensElsewhere {
            ports, expected, ..
        } => {
            let on = crate::status::ports(ports);
            let first = ports.first().copied().unwrap_or(*expected);
            (
                "Your app listens on another port".to_owned(),
                format!(
                    "Your app listens on {on}, not on :{expected}, where reload's proxy \
                     forwards.\n\nIf {on} is its port, tell reload: --app-port {first} (or \
                     [proxy] app_port = {first}). Or make the app listen on the port it gets in \
                     PORT. Or leave the app port out: reload then gives the app a port and \
                     follows it to wherever it listens."
                ),
            )
        }
    }
}

/// "exited with status 3", "was killed by SIGKILL".
fn ended_words(ended: &Ended) -> String {
    match ended {
        Ended::Code(code) => format!("exited with status {code}"),
        Ended::Signal(signal) => format!("was killed by {signal}"),
        Ended::Unknown | Ended::Lost => "ended (how, reload could not tell)".to_owned(),
    }
}

/// reload's pages: dark, readable, nothing loaded from elsewhere. `heading` and `body` are HTML.
fn document(title: &str, heading: &str, intro: &str, body: &str, script: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
:root {{ color-scheme: dark; }}
body {{ margin: 0; background: #1b1b1f; color: #dddddd; font: 15px/1.5 system-ui, sans-serif; }}
main {{ max-width: 120ch; margin: 0 auto; padding: 2rem 1.5rem; }}
h1 {{ margin: 0 0 .25rem; font-size: 1.4rem; color: #ff7777; }}
p {{ margin: 0 0 1.25rem; color: #999999; }}
pre {{ margin: 0; padding: 1rem; background: #111114; border: 1px solid #333333; border-radius: 6px;
  overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere;
  font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }}
</style>
</head>
<body>
<main>
<h1>{heading}</h1>
<p>{intro}</p>
<pre>{body}</pre>
</main>
{script}
</body>
</html>
"#
    )
}

/// The body of the 503 any other request gets while the build failed and no server runs.
pub fn failed_build_text(how: &str, errors: Option<usize>, output: &str) -> String {
    let output = strip_escapes(output);
    let mut text = format!("{}\n\n{output}", headline(how, errors));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("\nreload serves the app again once a build succeeds.\n");
    text
}

/// "Build failed: 3 errors (exit status 1)", counted the way the status line counts: the words
/// the 503 page and the overlay both show (the events carry them). How the build ended
/// (`exit 1`, `SIGSEGV`, as the status line has it) in words: "exit status 1", "killed by
/// SIGSEGV".
pub(crate) fn headline(how: &str, errors: Option<usize>) -> String {
    let how = match how.strip_prefix("exit ") {
        Some(code) => format!("exit status {code}"),
        None if how.starts_with("SIG") => format!("killed by {how}"),
        None => how.to_owned(),
    };
    match errors {
        Some(1) => format!("Build failed: 1 error ({how})"),
        Some(n) => format!("Build failed: {n} errors ({how})"),
        None => format!("Build failed ({how})"),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// `c` as HTML text or attribute value.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// `text` as [`clean`] leaves it, without its colours.
fn strip_escapes(text: &str) -> String {
    let text = clean(text);
    let mut out = String::with_capacity(text.len());
    for piece in Pieces::new(&text) {
        if let Piece::Text(text) = piece {
            out.push_str(text);
        }
    }
    out
}

/// A stretch of terminal output: text to show, or the parameters of an SGR sequence. Every
/// other escape sequence is consumed without a piece.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Sgr(&'a str),
}

/// The pieces of terminal output, as a terminal parses it (ECMA-48): CSI `ESC [` parameters,
/// intermediates and a final byte; OSC `ESC ]`, DCS `ESC P`, SOS, PM and APC strings up to BEL
/// or ST (`ESC \`); other `ESC` sequences of intermediates and a final byte. A sequence cut off
/// by the end of the text (the output is a tail, or the build was killed) is dropped whole.
struct Pieces<'a> {
    rest: &'a str,
}

impl<'a> Pieces<'a> {
    fn new(text: &'a str) -> Self {
        Pieces { rest: text }
    }

    /// Consume one escape sequence (`self.rest` starts after its ESC); the SGR parameters if
    /// it was one.
    fn sequence(&mut self) -> Option<&'a str> {
        let bytes = self.rest.as_bytes();
        match bytes.first() {
            Some(b'[') => {
                let parameters = 1 + count(&bytes[1..], |b| (0x30..=0x3f).contains(&b));
                let intermediates =
                    parameters + count(&bytes[parameters..], |b| (0x20..=0x2f).contains(&b));
                match bytes.get(intermediates) {
                    Some(&last) if (0x40..=0x7e).contains(&last) => {
                        let parameters_text = &self.rest[1..parameters];
                        self.rest = &self.rest[intermediates + 1..];
                        let sgr = last == b'm'
                            && intermediates == parameters
                            && parameters_text
                                .bytes()
                                .all(|b| b.is_ascii_digit() || b == b';' || b == b':');
                        sgr.then_some(parameters_text)
                    }
                    // Cut off, or broken by a byte no CSI holds: the sequence ends there.
                    _ => {
                        self.rest = &self.rest[intermediates..];
                        None
                    }
                }
            }
            Some(b']' | b'P' | b'X' | b'^' | b'_') => {
                let body = &bytes[1..];
                // BEL ends an OSC (xterm's form, and what most tools send); ESC ends any string,
                // as ST when `\` follows and as the start of the next sequence otherwise.
                let end = body.iter().position(|&b| b == 0x07 || b == 0x1b);
                self.rest = match end {
                    None => "",
                    Some(at) if body[at] == 0x07 => &self.rest[at + 2..],
                    Some(at) if body.get(at + 1) == Some(&b'\\') => &self.rest[at + 3..],
                    Some(at) => &self.rest[at + 1..],
                };
                None
            }
            _ => {
                let intermediates = count(bytes, |b| (0x20..=0x2f).contains(&b));
                let ends = bytes
                    .get(intermediates)
                    .is_some_and(|b| (0x30..=0x7e).contains(b));
                self.rest = &self.rest[intermediates + usize::from(ends)..];
                None
            }
        }
    }
}

fn count(bytes: &[u8], what: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|&&b| what(b)).count()
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let text_end = self.rest.find('\x1b').unwrap_or(self.rest.len());
            if text_end > 0 {
                let (text, rest) = self.rest.split_at(text_end);
                self.rest = rest;
                return Some(Piece::Text(text));
            }
            self.rest = &self.rest[1..];
            if let Some(parameters) = self.sequence() {
                return Some(Piece::Sgr(parameters));
            }
        }
    }
}

type Rgb = (u8, u8, u8);

/// The SGR state that a span renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Style {
    foreground: Option<Rgb>,
    background: Option<Rgb>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    /// Apply one SGR sequence's parameters (`1;38;5;9`, `38:2::255:0:0`, empty for reset).
    /// Codes it does not render (blink, inverse, ...) are skipped, not misread.
    fn apply(&mut self, parameters: &str) {
        let groups: Vec<&str> = parameters.split(';').collect();
        let mut i = 0;
        while i < groups.len() {
            let group = groups[i];
            i += 1;
            if group.contains(':') {
                // ITU T.416 form: the colour's parts are sub-parameters of the one group.
                let parts: Vec<Option<u16>> = group.split(':').map(|p| p.parse().ok()).collect();
                let colour = || match parts.get(1..) {
                    Some([Some(5), Some(n)]) => colour_256(*n),
                    Some(
                        [Some(2), Some(r), Some(g), Some(b)]
                        | [Some(2), _, Some(r), Some(g), Some(b)],
                    ) => rgb(*r, *g, *b),
                    _ => None,
                };
                match parts[0] {
                    Some(38) => self.foreground = colour().or(self.foreground),
                    Some(48) => self.background = colour().or(self.background),
                    // `4:0` is "no underline", `4:3` a curly one.
                    Some(4) => self.underline = parts.get(1) != Some(&Some(0)),
                    Some(code) => self.code(code),
                    None => {}
                }
                continue;
            }
            let Some(code) = (if group.is_empty() {
                Some(0)
            } else {
                group.parse::<u16>().ok()
            }) else {
                continue;
            };
            if code == 38 || code == 48 {
                let number = |at: usize| groups.get(at).and_then(|g| g.parse::<u16>().ok());
                let (colour, used) = match number(i) {
                    Some(5) => (number(i + 1).and_then(colour_256), 2),
                    Some(2) => (
                        number(i + 1)
                            .zip(number(i + 2))
                            .zip(number(i + 3))
                            .and_then(|((r, g), b)| rgb(r, g, b)),
                        4,
                    ),
                    _ => (None, 0),
                };
                i += used;
                if code == 38 {
                    self.foreground = colour.or(self.foreground);
                } else {
                    self.background = colour.or(self.background);
                }
            } else {
                self.code(code);
            }
        }
    }

    fn code(&mut self, code: u16) {
        match code {
            0 => *self = Style::default(),
            1 => self.bold = true,
            2 => self.dim = true,
            3 => self.italic = true,
            4 => self.underline = true,
            22 => (self.bold, self.dim) = (false, false),
            23 => self.italic = false,
            24 => self.underline = false,
            30..=37 => self.foreground = Some(PALETTE[usize::from(code - 30)]),
            90..=97 => self.foreground = Some(PALETTE[usize::from(code - 90 + 8)]),
            39 => self.foreground = None,
            40..=47 => self.background = Some(PALETTE[usize::from(code - 40)]),
            100..=107 => self.background = Some(PALETTE[usize::from(code - 100 + 8)]),
            49 => self.background = None,
            _ => {}
        }
    }

    /// The declarations for a `style` attribute: no quotes, no `<`, nothing to escape.
    fn css(&self) -> String {
        let mut css = Vec::new();
        if let Some((r, g, b)) = self.foreground {
            css.push(format!("color:#{r:02x}{g:02x}{b:02x}"));
        }
        if let Some((r, g, b)) = self.background {
            css.push(format!("background-color:#{r:02x}{g:02x}{b:02x}"));
        }
        if self.bold {
            css.push("font-weight:bold".to_owned());
        }
        if self.dim {
            css.push("opacity:0.7".to_owned());
        }
        if self.italic {
            css.push("font-style:italic".to_owned());
        }
        if self.underline {
            css.push("text-decoration:underline".to_owned());
        }
        css.join(";")
    }
}

fn rgb(r: u16, g: u16, b: u16) -> Option<Rgb> {
    Some((
        u8::try_from(r).ok()?,
        u8::try_from(g).ok()?,
        u8::try_from(b).ok()?,
    ))
}

/// xterm's 256 colours: the 16 of the palette, a 6x6x6 cube, 24 greys.
fn colour_256(n: u16) -> Option<Rgb> {
    let n = u8::try_from(n).ok()?;
    Some(match n {
        0..=15 => PALETTE[usize::from(n)],
        16..=231 => {
            let level = |c: u8| if c == 0 { 0 } else { 55 + 40 * c };
            let c = n - 16;
            (level(c / 36), level(c / 6 % 6), level(c % 6))
        }
        232..=255 => {
            let grey = 8 + 10 * (n - 232);
            (grey, grey, grey)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_small_and_evaluates_nothing() {
        assert!(
            CLIENT_JS.len() < 5120,
            "client.js is {} bytes",
            CLIENT_JS.len()
        );
        for banned in [
            "eval",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "new Function",
        ] {
            assert!(!CLIENT_JS.contains(banned), "client.js uses {banned}");
        }
    }

    #[test]
    fn the_client_has_the_same_palette() {
        let line = CLIENT_JS
            .lines()
            .find(|l| l.starts_with("const PALETTE = \""))
            .expect("client.js declares its PALETTE");
        let short: Vec<String> = PALETTE
            .iter()
            .map(|&(r, g, b)| format!("#{:x}{:x}{:x}", r >> 4, g >> 4, b >> 4))
            .collect();
        assert!(line.contains(&format!("\"{}\"", short.join(" "))), "{line}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            ansi_to_html("<script>alert('x' & \"y\")</script>"),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn colours_become_balanced_spans() {
        assert_eq!(
            ansi_to_html("\x1b[1m\x1b[31merror\x1b[0m: nope"),
            "<span style=\"color:#ee5555;font-weight:bold\">error</span>: nope"
        );
        // A change closes the span before opening the next; the end closes the last one.
        assert_eq!(
            ansi_to_html("\x1b[32mok\x1b[1mbold\x1b[22;39m plain \x1b[44;97mblue"),
            "<span style=\"color:#55aa55\">ok</span>\
             <span style=\"color:#55aa55;font-weight:bold\">bold</span> plain \
             <span style=\"color:#ffffff;background-color:#5599ff\">blue</span>"
        );
        assert_eq!(
            ansi_to_html(
                "\x1b[38;5;9ma\x1b[38;5;196mb\x1b[48;2;1;2;3mc\x1b[38:2::0:0:255md\x1b[m e"
            ),
            "<span style=\"color:#ff7777\">a</span><span style=\"color:#ff0000\">b</span>\
             <span style=\"color:#ff0000;background-color:#010203\">c</span>\
             <span style=\"color:#0000ff;background-color:#010203\">d</span> e"
        );
        assert_eq!(
            ansi_to_html("\x1b[2;3;4mx\x1b[23;24my\x1b[38;5;244mz"),
            "<span style=\"opacity:0.7;font-style:italic;text-decoration:underline\">x</span>\
             <span style=\"opacity:0.7\">y</span><span style=\"color:#808080;opacity:0.7\">z</span>"
        );
        // Colours with nothing to colour leave no empty span.
        assert_eq!(ansi_to_html("\x1b[31m\x1b[0m\x1b[32m"), "");
    }

    #[test]
    fn other_escapes_go_and_their_text_stays() {
        let link = "see \x1b]8;;https://doc.rust-lang.org/E0425.html\x1b\\E0425\x1b]8;;\x1b\\ and \
                    \x1b]8;;https://x.example\x07x\x1b]8;;\x07.";
        assert_eq!(ansi_to_html(link), "see E0425 and x.");
        assert_eq!(
            ansi_to_html("\x1b[1A\x1b[2K\x1b[?25lCompiling\x1b(B\x1b7 done\x07\x08\r\nnext\rover"),
            "Compiling done\nnext\nover"
        );
        assert_eq!(
            ansi_to_html("a\x1b]0;title\x1b[31mred"),
            "a<span style=\"color:#ee5555\">red</span>"
        );
    }

    #[test]
    fn an_escape_cut_off_at_the_end_goes() {
        for cut in [
            "\x1b",
            "\x1b[",
            "\x1b[38;5",
            "\x1b]8;;https://x",
            "\x1b]8;;u\x1b",
            "\x1b(",
            "\x1bP1",
        ] {
            assert_eq!(
                ansi_to_html(&format!("\x1b[31mend{cut}")),
                "<span style=\"color:#ee5555\">end</span>"
            );
            assert_eq!(strip_escapes(&format!("end{cut}")), "end");
        }
        // A tail may begin inside a sequence: what is left is text, and harmless.
        assert_eq!(ansi_to_html("1mhi\x1b[0m"), "1mhi");
    }

    #[test]
    fn clean_keeps_text_newlines_tabs_and_colours_and_drops_every_other_control() {
        // C0 but newline and tab, DEL, C1 (NEL, CSI, DCS, ST...): gone, whatever follows. (ESC
        // starts a sequence, which takes the `b`: below.)
        for c in ('\0'..' ')
            .chain('\x7f'..='\u{9f}')
            .filter(|&c| c != '\x1b')
        {
            let kept = match c {
                '\n' | '\t' => c.to_string(),
                '\r' => "\n".to_owned(),
                _ => String::new(),
            };
            assert_eq!(clean(&format!("a{c}b")), format!("a{kept}b"), "{c:?}");
        }
        assert_eq!(clean("\u{85}\u{9b}31mred\u{90}1;2|x\u{9c}"), "31mred1;2|x");
        // SGR stays for the overlay's palette, in the one form it parses; the rest goes.
        assert_eq!(
            clean("\x1b[1;38:5:9merr\x1b[m\x1b[2K\x1b[?25l\x1b]8;;u\x1b\\link\x1b]8;;\x07\x1b(B."),
            "\x1b[1;38:5:9merr\x1b[mlink."
        );
        assert_eq!(clean("a\r\nb\rc\td\u{a0}é"), "a\nb\nc\td\u{a0}é");
        // A cut-off sequence goes whole; a private or intermediate CSI ending in `m` is no SGR.
        assert_eq!(clean("x\x1b[31"), "x");
        assert_eq!(clean("\x1b[?31m\x1b[31 mx"), "x");
        // Cleaning what is clean changes nothing, so the overlay's parse sees what the page's does.
        let messy = "\x1b\x07[31m\x1b\x1b[32mx\u{9b}\x1b[\x1b[0m\x1b]0;t\x1b[1my\r";
        assert_eq!(clean(&clean(messy)), clean(messy));
        assert!(!clean(messy).replace("\x1b[", "").contains('\x1b'));
    }

    /// `html` (what `ansi_to_html` made) as the text a browser shows of it.
    fn html_text(html: &str) -> String {
        let mut text = String::new();
        let mut rest = html;
        while let Some(at) = rest.find('<') {
            text.push_str(&rest[..at]);
            let end = rest[at..].find('>').expect("tags are closed") + at;
            let tag = &rest[at..=end];
            assert!(
                tag.starts_with("<span style=\"") || tag == "</span>",
                "{tag}"
            );
            rest = &rest[end + 1..];
        }
        text.push_str(rest);
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// Every control character, C0, DEL and C1, between letters; escapes of every kind.
    fn full_of_controls() -> String {
        let mut text: String = ('\0'..='\u{a0}').flat_map(|c| [c, 'x']).collect();
        text.push_str(
            "\u{85}\u{9b}31m\u{90}\x1b[1;31merror\x1b[0m: <b>&\x1b]8;;https://x\x1b\\link\x1b]8;;\x07\
             \x1b[2K\x1b7\x1bP1$q\x1b\\\r\nend\x1b[3",
        );
        text
    }

    #[test]
    fn the_page_and_the_events_agree_on_a_string_full_of_control_characters() {
        let output = full_of_controls();
        let page = failed_build_page("exit 1", Some(1), &output, "");
        let pre = &page[page.find("<pre>").unwrap() + 5..page.find("</pre>").unwrap()];
        let shown = html_text(pre);
        assert_eq!(shown, strip_escapes(&output));
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{shown:?}"
        );
        // The events carry the same text: what is left once their SGRs go.
        let failed: serde_json::Value =
            serde_json::from_str(&failed_data("exit 1", Some(1), &output)).unwrap();
        let carried = failed["output"].as_str().unwrap();
        assert_eq!(
            Pieces::new(carried)
                .filter_map(|p| match p {
                    Piece::Text(t) => Some(t),
                    Piece::Sgr(_) => None,
                })
                .collect::<String>(),
            shown
        );
        assert_eq!(failed["headline"], "Build failed: 1 error (exit status 1)");
        assert!(page.contains("<h1>Build failed: 1 error (exit status 1)</h1>"));
    }

    #[test]
    fn spans_never_unbalance_whatever_the_bytes() {
        // Every short mixture of escape fragments and text: spans open and close in pairs, and
        // no raw `<` or ESC reaches the HTML.
        let parts = [
            "\x1b", "[", "31", ";", "m", "]", "\x07", "\\", "<", "a", "\r", "\n", "1",
        ];
        let mut indexes = [0usize; 5];
        loop {
            let text: String = indexes.iter().map(|&i| parts[i]).collect();
            let html = ansi_to_html(&text);
            let opened = html.matches("<span").count();
            assert_eq!(
                opened,
                html.matches("</span>").count(),
                "{text:?} -> {html:?}"
            );
            assert!(
                !html.contains('\x1b')
                    && html
                        .replace("<span", "")
                        .replace("</span>", "")
                        .find('<')
                        .is_none()
            );
            let mut at = 0;
            while at < indexes.len() && indexes[at] == parts.len() - 1 {
                indexes[at] = 0;
                at += 1;
            }
            if at == indexes.len() {
                break;
            }
            indexes[at] += 1;
        }
    }

    #[test]
    fn the_failed_build_page() {
        let script = r#"<script src="/__reload/client.js" data-generation="0"></script>"#;
        let page = failed_build_page(
            "exit <1>",
            Some(3),
            "\x1b[31merror\x1b[0m: <b>bad</b>\n",
            script,
        );
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<title>Build failed</title>"));
        assert!(page.contains("<h1>Build failed: 3 errors (exit status &lt;1&gt;)</h1>"));
        assert!(page.contains(
            "<pre><span style=\"color:#ee5555\">error</span>: &lt;b&gt;bad&lt;/b&gt;\n</pre>"
        ));
        assert!(page.contains("turns into the app by itself once a build succeeds"));
        assert!(page.contains(&format!("{script}\n</body>")));
        assert!(!page.contains("http"), "no external resources");
        assert!(
            failed_build_page("exit 1", Some(1), "", script)
                .contains("1 error (exit status 1)</h1>")
        );
        assert!(
            failed_build_page("SIGSEGV", None, "", script)
                .contains("<h1>Build failed (killed by SIGSEGV)</h1>")
        );
    }

    #[test]
    fn the_failed_build_text() {
        let text = failed_build_text(
            "exit 101",
            Some(2),
            "\x1b[1m\x1b[31merror\x1b[0m: \x1b]8;;u\x1b\\E1\x1b]8;;\x1b\\\r\n",
        );
        assert_eq!(
            text,
            "Build failed: 2 errors (exit status 101)\n\nerror: E1\n\nreload serves the app again once a build succeeds.\n"
        );
    }

    /// The data of the `failed` event a page gets for a build that failed `how` printing
    /// `output`, as events.rs writes it: a JavaScript object literal.
    fn failed_data(how: &str, errors: Option<usize>, output: &str) -> String {
        let frame = crate::proxy::events::of(
            &crate::lifecycle::Lifecycle::BuildFailed {
                how: how.into(),
                errors,
                elapsed: std::time::Duration::ZERO,
                then: crate::lifecycle::AfterFailure::WaitForChanges,
                output: output.into(),
            },
            None,
        )
        .expect("a failed build is an event for pages");
        data_line(&frame)
    }

    fn data_line(frame: &[u8]) -> String {
        let frame = std::str::from_utf8(frame).expect("frames are UTF-8");
        frame
            .lines()
            .find_map(|line| line.strip_prefix("data: "))
            .expect("a frame has data")
            .to_owned()
    }

    #[test]
    fn a_message_page_escapes_its_message_and_carries_the_script() {
        let page = message_page(
            "Waiting for the app",
            "the app <pid 7> & co",
            "<script src=\"/__reload/client.js\" data-generation=\"0\"></script>",
        );
        assert!(
            page.contains("<title>Waiting for the app</title>"),
            "{page}"
        );
        assert!(page.contains("the app &lt;pid 7&gt; &amp; co"), "{page}");
        assert!(
            page.contains("data-generation=\"0\"></script>\n</body>"),
            "{page}"
        );
    }
}
