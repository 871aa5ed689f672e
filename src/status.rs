//! reload's own voice: short status lines on stderr, coloured on a terminal (unless NO_COLOR).
//! The build's and the server's output never pass through here; they go straight to the terminal.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
struct Style {
    color: bool,
    quiet: bool,
}

static STYLE: OnceLock<Style> = OnceLock::new();

/// Decide once, at start, how status lines look.
pub fn init(quiet: bool) {
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = STYLE.set(Style { color, quiet });
}

fn style() -> Style {
    *STYLE.get_or_init(|| Style {
        color: false,
        quiet: false,
    })
}

#[derive(Clone, Copy)]
enum Tone {
    Info,
    Good,
    Bad,
}

fn line(tone: Tone, message: &str) {
    let style = style();
    if style.quiet && !matches!(tone, Tone::Bad) {
        return;
    }
    let text = if style.color {
        let color = match tone {
            Tone::Info => "36",
            Tone::Good => "32",
            Tone::Bad => "31",
        };
        format!("\x1b[1;{color}m[reload]\x1b[0m {message}\n")
    } else {
        format!("[reload] {message}\n")
    };
    // One write per line so that lines from reload and its children do not interleave mid-line.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn info(message: &str) {
    line(Tone::Info, message);
}

pub fn success(message: &str) {
    line(Tone::Good, message);
}

pub fn error(message: &str) {
    line(Tone::Bad, message);
}

/// `850ms`, `1.42s`, `2m05s`: precise for the short times that matter, brief for the long.
pub fn duration(d: Duration) -> String {
    let millis = d.as_millis();
    if millis < 1000 {
        format!("{millis}ms")
    } else if millis < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(12)), "12ms");
        assert_eq!(duration(Duration::from_millis(1420)), "1.42s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
    }
}
