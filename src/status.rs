//! reload's own voice. Every event the user may care about is a [`Note`]: the engine's lifecycle
//! events reach here as a subscriber of its bus ([`subscribers`]), messages through [`info`],
//! [`warning`] and [`error`]. Each is rendered either as a
//! short status line on stderr (coloured as anstream decides: on a terminal, unless NO_COLOR
//! or CLICOLOR=0; always with CLICOLOR_FORCE) or, with
//! `--log-format json`, as one JSON object per line for editors and scripts. The build's and the
//! server's output never pass through here.
//!
//! Human lines hold names reload does not choose (files, paths, commands, error texts), and
//! a file may be named `a\n[reload] started (pid 1)` or hold a terminal escape that sets the
//! window title. So every text is escaped where the line is rendered ([`escape`]): control
//! characters are shown as `\n`, `\x1b`, `\u{9b}`. JSON needs nothing more: serde escapes.

pub mod processes;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anstream::{AutoStream, ColorChoice};
use anstyle::AnsiColor;
use serde_json::{Value, json};

use crate::config::{Change, LogFormat, Output};
use crate::lifecycle::{AfterFailure, Lifecycle, ServiceName, Subscriber};

/// Something reload reports.
#[derive(Debug)]
pub enum Note<'a> {
    /// Startup summary: where the config came from, what is watched and held.
    Watching {
        origin: &'a str,
        directories: usize,
        listening: Option<String>,
    },
    Changed {
        paths: &'a [PathBuf],
        summary: String,
    },
    BuildStarted {
        command: &'a str,
    },
    BuildCancelled {
        after: Duration,
        reason: &'a str,
    },
    BuildSucceeded {
        elapsed: Duration,
    },
    BuildFailed {
        how: &'a str,
        errors: Option<usize>,
        elapsed: Duration,
        then: AfterFailure,
    },
    /// A server process was started (it may not be ready yet).
    Spawned {
        pid: u32,
    },
    /// A server is ready and, if there was one, replaced `old`.
    Ready {
        pid: u32,
        old: Option<u32>,
        swap: Duration,
        since_change: Option<Duration>,
    },
    /// The server ended by itself.
    Exited {
        pid: u32,
        description: &'a str,
        code: Option<i32>,
        signal: Option<&'a str>,
        /// When it starts again by itself (air's rerun); else on the next change.
        restarts_in: Option<Duration>,
    },
    /// The server is being killed: it ignored the stop signal for the whole stop timeout, or
    /// the user asked for it (a second Ctrl-C).
    Killing {
        pid: u32,
        after: Duration,
        signal: &'a str,
        asked: bool,
    },
    Stopped {
        pid: u32,
    },
    /// A new server's group listens on `ports`, not on `expected`: followed to `followed`, or
    /// told at once while reload waits on.
    ListensElsewhere {
        pid: u32,
        ports: &'a [u16],
        expected: u16,
        followed: Option<u16>,
        overlap_off: bool,
    },
    /// A new server's port was taken; it starts (again, if `pid` exited for it) on `instead`.
    PortTaken {
        pid: Option<u32>,
        port: u16,
        instead: u16,
    },
    /// Pages were told to reload by `POST /__reload/trigger`: one burst of triggers.
    Triggered {
        callers: &'a [Caller],
        /// Triggers from callers not named one by one.
        others: usize,
    },
    /// A file that decides the configuration changed (`file`, as the user reads it), and the
    /// configuration read again differs from the one in force in `change`.
    Reconfigured {
        file: &'a str,
        root: &'a Path,
        change: &'a Change,
    },
    Info(&'a str),
    Warning(&'a str),
    Error(&'a str),
}

/// Who asked for a reload of the pages through the proxy's trigger, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// As the caller sent it (cut short), `None` without one.
    pub user_agent: Option<String>,
    pub times: usize,
}

/// How a human line treats line breaks in its text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Breaks {
    /// One line, always: any newline is shown as `\n`.
    Escaped,
    /// reload's own messages (errors, warnings) may go on with indented lines (`\n  help: `):
    /// a newline followed by a space or another newline stays a line break. Any other is
    /// escaped, so no text can start a line that looks like reload's.
    Indented,
}

#[derive(Clone, Copy)]
enum Tone {
    Info,
    Good,
    Bad,
}

impl Note<'_> {
    fn human(&self) -> Option<(Tone, String)> {
        let d = duration;
        Some(match self {
            Note::Watching {
                origin,
                directories,
                listening,
            } => (
                Tone::Info,
                watching(origin, *directories, listening.as_deref()),
            ),
            Note::Changed { summary, .. } => (Tone::Info, format!("changed: {summary}")),
            Note::BuildStarted { .. } => (Tone::Info, "building".to_owned()),
            Note::BuildCancelled { after, reason } => (
                Tone::Info,
                format!("cancelled the build after {}: {reason}", d(*after)),
            ),
            Note::BuildSucceeded { elapsed } => (Tone::Good, format!("built in {}", d(*elapsed))),
            Note::BuildFailed {
                how, errors, then, ..
            } => (Tone::Bad, build_failed(how, *errors, *then)),
            Note::Spawned { .. } => return None,
            Note::Ready {
                pid,
                old,
                swap,
                since_change,
            } => {
                let mut line = match old {
                    Some(old) => format!("restarted (pid {old} -> {pid}) in {}", d(*swap)),
                    None => format!("started (pid {pid})"),
                };
                if let Some(since) = since_change {
                    line = format!("{line}; ready {} after the change", d(*since));
                }
                (Tone::Good, line)
            }
            Note::Exited {
                pid,
                description,
                code,
                restarts_in,
                ..
            } => {
                let next = match restarts_in {
                    Some(delay) => format!("restarting it in {}", d(*delay)),
                    None => "it restarts on the next change".to_owned(),
                };
                let tone = if *code == Some(0) {
                    Tone::Info
                } else {
                    Tone::Bad
                };
                (tone, format!("app (pid {pid}) {description}; {next}"))
            }
            Note::Killing {
                pid, asked: true, ..
            } => (Tone::Info, format!("killing app (pid {pid}) now")),
            Note::Killing {
                pid,
                after,
                signal,
                asked: false,
            } => (
                Tone::Info,
                format!(
                    "app (pid {pid}) did not stop within {} of {signal}; killing it",
                    d(*after)
                ),
            ),
            Note::Stopped { pid } => (Tone::Info, format!("stopped app (pid {pid})")),
            Note::PortTaken { pid, port, instead } => {
                (Tone::Info, port_taken(*pid, *port, *instead))
            }
            Note::Triggered { callers, others } => (Tone::Info, triggered(callers, *others)),
            Note::Reconfigured { file, root, change } => reconfigured(file, root, change),
            Note::ListensElsewhere {
                pid,
                ports,
                expected,
                followed,
                overlap_off,
            } => listens_elsewhere(*pid, ports, *expected, *followed, *overlap_off),
            Note::Info(text) => (Tone::Info, (*text).to_owned()),
            Note::Warning(text) => (Tone::Bad, format!("warning: {text}")),
            Note::Error(text) => (Tone::Bad, (*text).to_owned()),
        })
    }

    fn breaks(&self) -> Breaks {
        match self {
            Note::Info(_) | Note::Warning(_) | Note::Error(_) | Note::ListensElsewhere { .. } => {
                Breaks::Indented
            }
            _ => Breaks::Escaped,
        }
    }

    fn json(&self) -> Value {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match self {
            Note::Watching {
                origin,
                directories,
                listening,
            } => json!({
                "event": "watching", "origin": origin, "directories": directories,
                "listening": listening,
            }),
            Note::Changed { paths, .. } => json!({"event": "change", "paths": paths}),
            Note::BuildStarted { command } => json!({"event": "build_start", "command": command}),
            Note::BuildCancelled { after, reason } => {
                json!({"event": "build_cancel", "after_ms": ms(after), "reason": reason})
            }
            Note::BuildSucceeded { elapsed } => {
                json!({"event": "build_finish", "success": true, "duration_ms": ms(elapsed)})
            }
            Note::BuildFailed {
                how,
                errors,
                elapsed,
                then,
            } => {
                let (serving, restart_in) = match then {
                    AfterFailure::Serving(pid) => (Some(*pid), None),
                    AfterFailure::RestartIn(delay) => (None, Some(ms(delay))),
                    AfterFailure::WaitForChanges => (None, None),
                };
                json!({
                    "event": "build_finish", "success": false, "status": how, "errors": errors,
                    "duration_ms": ms(elapsed), "serving_pid": serving,
                    "restart_in_ms": restart_in,
                })
            }
            Note::Spawned { pid } => json!({"event": "spawn", "pid": pid}),
            Note::Ready {
                pid,
                old,
                swap,
                since_change,
            } => json!({
                "event": "ready", "pid": pid, "replaced_pid": old, "swap_ms": ms(swap),
                "since_change_ms": since_change.as_ref().map(ms),
            }),
            Note::Exited {
                pid, code, signal, ..
            } => {
                json!({"event": "exit", "pid": pid, "code": code, "signal": signal})
            }
            Note::Killing {
                pid,
                after,
                signal,
                asked,
            } => json!({
                "event": "kill", "pid": pid, "after_ms": ms(after), "ignored_signal": signal,
                "asked": asked,
            }),
            Note::Stopped { pid } => json!({"event": "stop", "pid": pid}),
            Note::PortTaken { pid, port, instead } => {
                json!({"event": "port_taken", "pid": pid, "port": port, "instead": instead})
            }
            Note::Triggered { callers, others } => {
                let callers: Vec<Value> = callers
                    .iter()
                    .map(|caller| json!({"user_agent": caller.user_agent, "times": caller.times}))
                    .collect();
                json!({"event": "trigger", "callers": callers, "others": others})
            }
            Note::Reconfigured { file, change, .. } => {
                let (kind, value) = match change {
                    Change::Watched(path) => ("watched", json!(path)),
                    Change::Unwatched(path) => ("unwatched", json!(path)),
                    Change::Build(command) => ("build", json!(command)),
                    Change::Program(command) => ("program", json!(command)),
                    Change::Settings(section) => ("settings", json!(section)),
                    Change::NeedsRestart(setting) => ("needs_restart", json!(setting)),
                };
                json!({"event": "reconfigure", "file": file, "change": kind, "value": value})
            }
            Note::ListensElsewhere {
                pid,
                ports,
                expected,
                followed,
                overlap_off,
            } => json!({
                "event": "listens_elsewhere", "pid": pid, "ports": ports, "expected": expected,
                "followed": followed, "overlap_off": overlap_off,
            }),
            Note::Info(text) => json!({"event": "info", "message": text}),
            Note::Warning(text) => json!({"event": "warning", "message": text}),
            Note::Error(text) => json!({"event": "error", "message": text}),
        }
    }
}

/// One line per difference that a configuration read again brings.
fn reconfigured(file: &str, root: &Path, change: &Change) -> (Tone, String) {
    let relative = |path: &Path| match path.strip_prefix(root) {
        Ok(inside) if inside.as_os_str().is_empty() => ".".to_owned(),
        Ok(inside) => inside.display().to_string(),
        Err(_) => path.display().to_string(),
    };
    let line = match change {
        Change::Watched(path) => format!("now watching {} (added by {file})", relative(path)),
        Change::Unwatched(path) => {
            format!("no longer watching {} (dropped by {file})", relative(path))
        }
        Change::Build(Some(command)) => format!("{file}: now building with `{command}`"),
        Change::Build(None) => format!("{file}: no build step any more"),
        Change::Program(command) => format!("{file}: now running `{command}`"),
        Change::Settings(section) => format!("{file}: new {section} settings applied"),
        Change::NeedsRestart(setting) => {
            return (
                Tone::Bad,
                format!(
                    "{file}: {setting} changed, which reload sets up only at start: restart \
                     reload to apply it; keeping the running configuration"
                ),
            );
        }
    };
    (Tone::Info, line)
}

#[derive(Debug, Clone, Copy)]
struct Style {
    color: ColorChoice,
    output: Output,
}

static STYLE: RwLock<Option<Style>> = RwLock::new(None);

/// Set how notes look: first from the command line (so that even a config error respects
/// `--log-format json`), then again once the config file is read.
pub fn init(output: Output) {
    let style = Style {
        color: color_choice(),
        output,
    };
    *STYLE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(style);
}

/// Whether reload's stderr gets colour, for what else writes there (developer logs, cargo).
pub fn colored() -> bool {
    color_choice() != ColorChoice::Never
}

/// anstream's decision for stderr: colour on a terminal that is not `TERM=dumb`, never with
/// NO_COLOR or CLICOLOR=0, always with CLICOLOR_FORCE.
fn color_choice() -> ColorChoice {
    AutoStream::choice(&std::io::stderr())
}

fn style() -> Style {
    let style = *STYLE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    style.unwrap_or(Style {
        color: color_choice(),
        output: Output {
            clear: false,
            timestamps: false,
            quiet: false,
            format: LogFormat::Human,
        },
    })
}

/// Report `note`.
pub fn emit(note: &Note<'_>) {
    let style = style();
    match style.output.format {
        LogFormat::Json => write_json(note),
        LogFormat::Human => write_human(note, style),
    }
}

fn write_json(note: &Note<'_>) {
    let mut value = note.json();
    value["time_ms"] = json!(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    write_line(format!("{value}\n").as_bytes());
}

fn write_human(note: &Note<'_>, style: Style) {
    let Some((tone, message)) = note.human() else {
        return;
    };
    let message = escape(&message, note.breaks());
    if style.output.quiet && !matches!(tone, Tone::Bad) {
        return;
    }
    let time = if style.output.timestamps {
        let (h, m, s) = crate::clock::local_time_of_day();
        format!(" {h:02}:{m:02}:{s:02}")
    } else {
        String::new()
    };
    write_line(&human_line(tone, &time, &message, style.color));
}

fn write_line(text: &[u8]) {
    // One write per line so that lines from reload and its children do not interleave mid-line.
    let _ = std::io::stderr().lock().write_all(text);
}

/// `[reload TIME] message`, the prefix in bold colour when `color` allows it. Rendered into a
/// buffer that anstream strips as it would strip stderr, so that [`write_human`] can still write the
/// line at once: anstream's own stderr writes a stripped line piece by piece.
fn human_line(tone: Tone, time: &str, message: &str, color: ColorChoice) -> Vec<u8> {
    let hue = match tone {
        Tone::Info => AnsiColor::Cyan,
        Tone::Good => AnsiColor::Green,
        Tone::Bad => AnsiColor::Red,
    };
    let prefix = anstyle::Style::new().bold().fg_color(Some(hue.into()));
    let mut line = AutoStream::new(Vec::new(), color);
    let _ = writeln!(line, "{prefix}[reload{time}]{prefix:#} {message}");
    line.into_inner()
}

/// The status lines as subscribers of the engine's lifecycle events: human lines, or with
/// `--log-format json` JSON lines.
pub fn subscribers() -> Vec<Box<dyn Subscriber>> {
    match style().output.format {
        LogFormat::Human => vec![Box::new(HumanLines)],
        LogFormat::Json => vec![Box::new(JsonLines)],
    }
}

struct HumanLines;
struct JsonLines;

impl Subscriber for HumanLines {
    fn on(&mut self, _service: &ServiceName, event: &Lifecycle) {
        let style = style();
        notes(event, |note| write_human(note, style));
    }
}

impl Subscriber for JsonLines {
    fn on(&mut self, service: &ServiceName, event: &Lifecycle) {
        notes(event, |note| write_service_json(service, note));
    }
}

/// The notes an event is told as (none, one, or an exit and what may explain it).
fn notes(event: &Lifecycle, mut tell: impl FnMut(&Note<'_>)) {
    match event {
        Lifecycle::Changed { paths, summary } => tell(&Note::Changed {
            paths,
            summary: summary.clone(),
        }),
        Lifecycle::RebuildAsked => tell(&Note::Info("rebuilding (r)")),
        Lifecycle::BuildStarted { command } => tell(&Note::BuildStarted { command }),
        Lifecycle::BuildCancelled { after, reason } => tell(&Note::BuildCancelled {
            after: *after,
            reason,
        }),
        Lifecycle::BuildSucceeded { elapsed } => tell(&Note::BuildSucceeded { elapsed: *elapsed }),
        Lifecycle::BuildFailed {
            how,
            errors,
            elapsed,
            then,
            ..
        } => tell(&Note::BuildFailed {
            how,
            errors: *errors,
            elapsed: *elapsed,
            then: *then,
        }),
        Lifecycle::ServerStarting { pid, .. } => tell(&Note::Spawned { pid: *pid }),
        Lifecycle::ServerReady {
            pid,
            old,
            swap,
            since_change,
            ..
        } => tell(&Note::Ready {
            pid: *pid,
            old: *old,
            swap: *swap,
            since_change: *since_change,
        }),
        Lifecycle::ServerFailed { message, .. } | Lifecycle::StartFailed { message } => {
            tell(&Note::Error(message));
        }
        Lifecycle::ServerExited {
            pid,
            description,
            code,
            signal,
            restarts_in,
            hint,
            ..
        } => {
            tell(&Note::Exited {
                pid: *pid,
                description,
                code: *code,
                signal: signal.as_deref(),
                restarts_in: *restarts_in,
            });
            if let Some(hint) = hint {
                tell(&Note::Error(hint));
            }
        }
        Lifecycle::Killing {
            pid,
            after,
            signal,
            asked,
        } => tell(&Note::Killing {
            pid: *pid,
            after: *after,
            signal,
            asked: *asked,
        }),
        // A stop is only news when reload is exiting; in a restart the swap says it all.
        Lifecycle::Stopped {
            pid,
            shutdown: true,
            ..
        } => tell(&Note::Stopped { pid: *pid }),
        Lifecycle::Stopping { .. } | Lifecycle::Stopped { .. } => {}
        Lifecycle::ListensElsewhere { .. } | Lifecycle::PortTaken { .. } => {
            if let Some(note) = port_note(event) {
                tell(&note);
            }
        }
    }
}

/// The note for where a new server listens or is to listen, if `event` is about that.
fn port_note(event: &Lifecycle) -> Option<Note<'_>> {
    Some(match event {
        Lifecycle::ListensElsewhere {
            pid,
            ports,
            expected,
            followed,
            overlap_off,
            ..
        } => Note::ListensElsewhere {
            pid: *pid,
            ports,
            expected: *expected,
            followed: *followed,
            overlap_off: *overlap_off,
        },
        Lifecycle::PortTaken {
            pid, port, instead, ..
        } => Note::PortTaken {
            pid: *pid,
            port: *port,
            instead: *instead,
        },
        _ => return None,
    })
}

/// ":5000", ":5000 and :9229", ":5000, :5001 and :9229".
pub fn ports(ports: &[u16]) -> String {
    let each: Vec<String> = ports.iter().map(|port| format!(":{port}")).collect();
    match each.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "no port".to_owned(),
    }
}

/// The first line: where the configuration came from, what is watched, what reload holds.
fn watching(origin: &str, directories: usize, listening: Option<&str>) -> String {
    let plural = if directories == 1 {
        "directory"
    } else {
        "directories"
    };
    let mut line = format!("{origin}; watching {directories} {plural}");
    if let Some(listening) = listening {
        line = format!("{line}; {listening}");
    }
    line
}

/// A new server's port was taken: before its start (`pid` none), or it exited for it.
fn port_taken(pid: Option<u32>, port: u16, instead: u16) -> String {
    match pid {
        None => format!(
            "the new app's port :{port} is in use ({IN_USE}): starting it on :{instead} instead"
        ),
        Some(pid) => format!(
            "new app (pid {pid}) exited before it was ready, and its port :{port} is in use \
             ({IN_USE}): starting it again on :{instead}"
        ),
    }
}

/// "build failed (exit 1): 2 errors; still serving pid 7".
fn build_failed(how: &str, errors: Option<usize>, then: AfterFailure) -> String {
    let count = match errors {
        Some(1) => ": 1 error".to_owned(),
        Some(n) => format!(": {n} errors"),
        None => String::new(),
    };
    let then = match then {
        AfterFailure::Serving(pid) => format!("still serving pid {pid}"),
        AfterFailure::RestartIn(delay) => {
            format!("the last good build starts again in {}", duration(delay))
        }
        AfterFailure::WaitForChanges => "waiting for changes".to_owned(),
    };
    format!("build failed ({how}){count}; {then}")
}

/// "reloading the pages, asked by curl/8.5.0 (3 times) and watcher/1 through
/// /__reload/trigger".
fn triggered(callers: &[Caller], others: usize) -> String {
    let mut named: Vec<String> = callers
        .iter()
        .map(|caller| {
            let who = caller
                .user_agent
                .as_deref()
                .unwrap_or("a caller without a User-Agent");
            match caller.times {
                1 => who.to_owned(),
                n => format!("{who} ({n} times)"),
            }
        })
        .collect();
    match others {
        0 => {}
        1 => named.push("1 more trigger".to_owned()),
        n => named.push(format!("{n} more triggers")),
    }
    let who = match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => "nobody".to_owned(),
    };
    format!("reloading the pages, asked by {who} through /__reload/trigger")
}

/// The line for a new server that listens elsewhere than where reload waits for it: followed
/// there (no app port was named), or told what to do, at once.
fn listens_elsewhere(
    pid: u32,
    listens: &[u16],
    expected: u16,
    followed: Option<u16>,
    overlap_off: bool,
) -> (Tone, String) {
    let on = ports(listens);
    let Some(followed) = followed else {
        return (
            Tone::Bad,
            format!(
                "app (pid {pid}) listens on {on}, not on :{expected}, where reload waits for \
                 it\n  help: if {on} is its port, name it (--app-port, [proxy] app_port, or \
                 --ready tcp:PORT), make the app listen on :{expected}, or with --proxy leave \
                 the app port out and reload follows the app where it listens"
            ),
        );
    };
    let there = if listens.len() == 1 {
        "there".to_owned()
    } else {
        format!("to :{followed}")
    };
    let mut line = format!("app listens on {on}, not on PORT={expected}: forwarding {there}");
    if overlap_off {
        line.push_str(
            "\n  it ignores PORT, so two versions cannot run side by side: restarts stop the \
             old server before starting the new one from now on",
        );
    }
    (Tone::Info, line)
}

/// Who holds a port that a server cannot bind although nothing of reload's listens there.
const IN_USE: &str = "another program listens there, or a connection on it waits in TIME_WAIT";

/// Why a new server was not started, or did not start, on `port`: "its port :N is in use
/// (...)".
pub fn port_in_use(port: u16) -> String {
    format!("its port :{port} is in use ({IN_USE})")
}

pub fn info(message: &str) {
    emit(&Note::Info(message));
}

pub fn warning(message: &str) {
    emit(&Note::Warning(message));
}

pub fn error(message: &str) {
    emit(&Note::Error(message));
}

/// `text` with every control character made visible: `\n`, `\r`, `\t`, `\x1b` (so no escape
/// sequence reaches the terminal), `\u{9b}`; and the bidirectional overrides that reorder
/// what follows them, as `\u{202e}`. Line breaks are kept as `breaks` says.
fn escape(text: &str, breaks: Breaks) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' if breaks == Breaks::Indented && matches!(chars.peek(), Some(' ' | '\n')) => {
                escaped.push('\n');
            }
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_ascii_control() => escaped.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// Clear the terminal (screen and scrollback), if there is one to clear.
pub fn clear_screen() {
    if style().output.format == LogFormat::Human && std::io::stdout().is_terminal() {
        let _ = std::io::stdout().lock().write_all(b"\x1b[3J\x1b[2J\x1b[H");
        let _ = std::io::stdout().flush();
    }
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

/// A lifecycle event's JSON line: the note's fields, and the service it happened to.
fn write_service_json(service: &ServiceName, note: &Note<'_>) {
    let mut value = note.json();
    value["service"] = json!(service.as_str());
    value["time_ms"] = json!(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    write_line(format!("{value}\n").as_bytes());
}

/// A configuration read again and refused (`why`, cargo's own error may run over several
/// lines): the last good one stays.
pub fn config_refused(why: &str) {
    error(&kept(why));
}

/// A configuration read again from which the project cannot be read (its manifests): refused.
pub fn project_unreadable(file: &str, why: &str) {
    config_refused(&format!("{file}: the project cannot be read:\n{why}"));
}

/// Why a configuration is refused, its lines after the first indented, and that the last good
/// one stays.
fn kept(why: &str) -> String {
    let mut text = String::new();
    for (n, line) in why.lines().enumerate() {
        if n > 0 {
            text.push_str(if line.starts_with(' ') { "\n" } else { "\n  " });
        }
        text.push_str(line);
    }
    text + "\n  keeping the last good configuration until this is fixed"
}

/// The config file changed, and what it says now is what is in force already.
pub fn nothing_to_apply(file: &str) {
    info(&format!("{file} read again: nothing to apply"));
}

/// The ports servers take turns on could not be chosen again (`err`): they stay.
pub fn ports_kept(err: &anyhow::Error) {
    warning(&format!("{err:#}; keeping the ports servers have now"));
}

/// `--overlap` behind the proxy found no second port: restarts stop the old server first.
pub fn no_second_port() {
    warning(
        "--overlap behind the proxy needs a second port for the new server, and none is free \
         below the kernel's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range): restarts \
         stop the old server before starting the new one",
    );
}

/// Why reload cannot start when it is to choose the app's port and none is free.
pub const NO_PORT_FOR_THE_APP: &str = "no port is free below the kernel's ephemeral range \
    (/proc/sys/net/ipv4/ip_local_port_range) to give the app as PORT\n  help: name the app's \
    port with --app-port PORT (or [proxy] app_port)";

/// What a server (`pid`) that never accepted on `expected` listens on instead, and what to do.
pub fn listens_instead(pid: u32, ports: &std::collections::BTreeSet<u16>, expected: &str) {
    info(&explain_ports(pid, ports, expected));
}

fn explain_ports(pid: u32, ports: &std::collections::BTreeSet<u16>, expected: &str) -> String {
    if ports.is_empty() {
        return format!(
            "app (pid {pid}) listens on no TCP port at all, not on {expected}: does it start a \
             server, and does it read PORT?"
        );
    }
    let list: Vec<String> = ports.iter().map(|p| format!(":{p}")).collect();
    format!(
        "app (pid {pid}) listens on {}, not on {expected}: if that is its port, point reload \
         at it (--app-port, or --ready tcp:PORT), or make the app listen on PORT",
        list.join(", ")
    )
}

/// The env file (`path`) sets `name=written`, and reload's own setting gives the server
/// `name=given` instead.
pub fn env_file_overridden(path: &Path, name: &str, given: &str, written: &str) {
    warning(&format!(
        "{}: the server gets {name}={given}, not {name}={written} as written there: reload's \
         own setting ([run] env, or the port the proxy gives the app as PORT) wins over the env \
         file",
        path.display()
    ));
}

/// How a post command (run at exit) went, when not well.
pub enum PostCommand<'a> {
    NotStarted(&'a anyhow::Error),
    Interrupted,
    Failed(&'a str),
    TimedOut(Duration),
}

pub fn post_command(command: &str, how: &PostCommand<'_>) {
    error(&match how {
        PostCommand::NotStarted(err) => format!("cannot run post command `{command}`: {err:#}"),
        PostCommand::Interrupted => format!("post command `{command}` interrupted; killed it"),
        PostCommand::Failed(how) => format!("post command `{command}` failed ({how})"),
        PostCommand::TimedOut(after) => format!(
            "post command `{command}` still ran after {}; killed it",
            duration(*after)
        ),
    });
}

/// A second request to stop while servers stop: they are killed.
pub fn stopping_now() {
    info("stopping now");
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

    #[test]
    fn a_configuration_read_again_says_each_difference_relative_to_the_root() {
        let line = |change: Change| {
            let note = Note::Reconfigured {
                file: "app/Cargo.toml",
                root: Path::new("/p"),
                change: &change,
            };
            (note.human().unwrap().1, note.json())
        };
        let (watched, json) = line(Change::Watched("/p/extra".into()));
        assert_eq!(watched, "now watching extra (added by app/Cargo.toml)");
        assert_eq!(json["event"], "reconfigure");
        assert_eq!(json["change"], "watched");
        assert_eq!(json["value"], "/p/extra");
        assert_eq!(
            line(Change::Unwatched("/elsewhere/x".into())).0,
            "no longer watching /elsewhere/x (dropped by app/Cargo.toml)"
        );
        assert_eq!(
            line(Change::Build(Some("cargo build".into()))).0,
            "app/Cargo.toml: now building with `cargo build`"
        );
        let (restart, json) = line(Change::NeedsRestart("[proxy]"));
        assert!(restart.contains("[proxy] changed"), "{restart}");
        assert!(restart.contains("restart reload to apply it"), "{restart}");
        assert_eq!(json["change"], "needs_restart");
    }

    #[test]
    fn a_failed_build_counts_errors_and_says_what_still_serves() {
        let note = Note::BuildFailed {
            how: "exit 101",
            errors: Some(3),
            elapsed: Duration::from_secs(1),
            then: AfterFailure::Serving(42),
        };
        let (_, line) = note.human().unwrap();
        assert_eq!(
            line,
            "build failed (exit 101): 3 errors; still serving pid 42"
        );
        let json = note.json();
        assert_eq!(json["event"], "build_finish");
        assert_eq!(json["success"], false);
        assert_eq!(json["errors"], 3);
        assert_eq!(json["serving_pid"], 42);
    }

    #[test]
    fn a_failed_build_after_the_server_exited_says_when_the_last_good_build_restarts() {
        let note = Note::BuildFailed {
            how: "exit 1",
            errors: None,
            elapsed: Duration::from_secs(1),
            then: AfterFailure::RestartIn(Duration::from_millis(1420)),
        };
        let (_, line) = note.human().unwrap();
        assert_eq!(
            line,
            "build failed (exit 1); the last good build starts again in 1.42s"
        );
        let json = note.json();
        assert_eq!(json["restart_in_ms"], 1420);
        assert_eq!(json["serving_pid"], serde_json::Value::Null);
    }

    #[test]
    fn a_restart_reports_both_pids_and_the_time_from_the_change() {
        let note = Note::Ready {
            pid: 2,
            old: Some(1),
            swap: Duration::from_millis(12),
            since_change: Some(Duration::from_millis(340)),
        };
        assert_eq!(
            note.human().unwrap().1,
            "restarted (pid 1 -> 2) in 12ms; ready 340ms after the change"
        );
        assert_eq!(note.json()["since_change_ms"], 340);
    }

    #[test]
    fn a_taken_port_says_which_and_where_the_new_server_starts_instead() {
        let before = Note::PortTaken {
            pid: None,
            port: 30001,
            instead: 30002,
        };
        let (_, line) = before.human().unwrap();
        assert!(
            line.starts_with("the new app's port :30001 is in use (")
                && line.contains("TIME_WAIT")
                && line.ends_with("starting it on :30002 instead"),
            "{line}"
        );
        let after_exit = Note::PortTaken {
            pid: Some(7),
            port: 30001,
            instead: 30002,
        };
        let (_, line) = after_exit.human().unwrap();
        assert!(
            line.starts_with("new app (pid 7) exited before it was ready, and its port :30001")
                && line.ends_with("starting it again on :30002"),
            "{line}"
        );
        let json = after_exit.json();
        assert_eq!(json["event"], "port_taken");
        assert_eq!(
            (json["pid"].clone(), json["instead"].clone()),
            (7.into(), 30002.into())
        );
    }

    #[test]
    fn a_burst_of_triggers_is_one_line_naming_its_callers() {
        let caller = |user_agent: Option<&str>, times| Caller {
            user_agent: user_agent.map(str::to_owned),
            times,
        };
        let line =
            |callers: &[Caller], others| Note::Triggered { callers, others }.human().unwrap().1;
        assert_eq!(
            line(&[caller(Some("curl/8.5.0"), 3)], 0),
            "reloading the pages, asked by curl/8.5.0 (3 times) through /__reload/trigger"
        );
        assert_eq!(
            line(&[caller(Some("watcher/1"), 1), caller(None, 2)], 5),
            "reloading the pages, asked by watcher/1, a caller without a User-Agent (2 times) \
             and 5 more triggers through /__reload/trigger"
        );
        // A User-Agent is the caller's to write: it cannot start a line of its own.
        let forged = [caller(Some("x\n[reload] started (pid 1)\x1b]0;t\x07"), 1)];
        let note = Note::Triggered {
            callers: &forged,
            others: 0,
        };
        let shown = escape(&note.human().unwrap().1, note.breaks());
        assert!(
            shown.contains("x\\n[reload] started (pid 1)\\x1b]0;t\\x07 through"),
            "{shown}"
        );
        let json = note.json();
        assert_eq!(json["event"], "trigger");
        assert_eq!(json["callers"][0]["times"], 1);
        assert_eq!(json["others"], 0);
    }

    #[test]
    fn an_app_listening_elsewhere_is_followed_in_one_line_or_told_what_to_do() {
        let followed = |ports: &'static [u16], overlap_off| Note::ListensElsewhere {
            pid: 7,
            ports,
            expected: 4123,
            followed: Some(ports[0]),
            overlap_off,
        };
        let (_, line) = followed(&[5000], false).human().unwrap();
        assert_eq!(
            line,
            "app listens on :5000, not on PORT=4123: forwarding there"
        );
        let (_, line) = followed(&[5000, 5001, 9229], true).human().unwrap();
        assert!(
            line.starts_with(
                "app listens on :5000, :5001 and :9229, not on PORT=4123: forwarding to :5000\n  \
                 it ignores PORT"
            ),
            "{line}"
        );
        let told = Note::ListensElsewhere {
            pid: 7,
            ports: &[5000],
            expected: 8080,
            followed: None,
            overlap_off: false,
        };
        let (_, line) = told.human().unwrap();
        assert!(
            line.starts_with("app (pid 7) listens on :5000, not on :8080, where reload waits"),
            "{line}"
        );
        let json = told.json();
        assert_eq!(json["event"], "listens_elsewhere");
        assert_eq!(json["ports"], json!([5000]));
        assert_eq!(json["followed"], Value::Null);
    }

    #[test]
    fn only_the_prefix_is_coloured_and_only_when_colour_is_on() {
        let line = |tone, color| String::from_utf8(human_line(tone, "", "built", color)).unwrap();
        assert_eq!(line(Tone::Good, ColorChoice::Never), "[reload] built\n");
        assert_eq!(
            line(Tone::Good, ColorChoice::Always),
            "\x1b[1m\x1b[32m[reload]\x1b[0m built\n"
        );
        assert_eq!(
            line(Tone::Info, ColorChoice::AlwaysAnsi),
            "\x1b[1m\x1b[36m[reload]\x1b[0m built\n"
        );
        let bad = String::from_utf8(human_line(Tone::Bad, " 09:05:01", "x", ColorChoice::Never));
        assert_eq!(bad.unwrap(), "[reload 09:05:01] x\n");
    }

    #[test]
    fn control_characters_in_names_are_shown_escaped() {
        let name = "a\n[reload] started (pid 1)\x1b]0;owned\x07\u{9b}\u{202e}.txt";
        assert_eq!(
            escape(name, Breaks::Escaped),
            "a\\n[reload] started (pid 1)\\x1b]0;owned\\x07\\u{9b}\\u{202e}.txt"
        );
        assert_eq!(escape("tab\there\r", Breaks::Escaped), "tab\\there\\r");
        assert_eq!(escape("plain ünïcode", Breaks::Escaped), "plain ünïcode");
    }

    #[test]
    fn reloads_own_indented_lines_stay_lines_and_nothing_else_does() {
        let message = "bad `x\n[reload] forged`\n  help: do this\n\n    [run]";
        assert_eq!(
            escape(message, Breaks::Indented),
            "bad `x\\n[reload] forged`\n  help: do this\n\n    [run]"
        );
        assert_eq!(escape("a\n  b", Breaks::Escaped), "a\\n  b");
    }

    #[test]
    fn a_refusal_keeps_every_line_of_the_reason_under_its_first() {
        assert_eq!(
            kept("reload.toml:3:1: bad\n  help: fix it"),
            "reload.toml:3:1: bad\n  help: fix it\n  keeping the last good configuration until \
             this is fixed"
        );
        assert_eq!(
            kept("cannot read:\nerror: failed\n\nCaused by:\n  gone"),
            "cannot read:\n  error: failed\n  \n  Caused by:\n  gone\n  keeping the last good \
             configuration until this is fixed"
        );
    }
}
