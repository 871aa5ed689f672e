//! reload's own voice. Every event the user may care about is a [`Note`]: the engine's lifecycle
//! events reach here as a subscriber of its bus ([`subscribers`]), its other notices through
//! [`notice`], messages through [`info`], [`warning`] and [`error`]. The engine and the stages
//! hand over typed values (a [`Failure`], a [`Hint`], a [`Notice`]), never sentences: every
//! word users read about them is chosen here, and the proxy's pages reuse these words where
//! they say the same ([`server_failed`], [`ended_words`]). Each is rendered either as a
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
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anstream::{AutoStream, ColorChoice};
use anstyle::AnsiColor;
use serde_json::{Value, json};

use crate::config::{Change, LogFormat, Output};
use crate::lifecycle::{
    AfterFailure, Afterwards, CancelReason, Ended, Failure, Hint, Lifecycle, Notice, ServerFailure,
    ServiceName, Subscriber,
};

/// Something reload reports.
#[derive(Debug)]
pub enum Note<'a> {
    /// Startup summary: where the config came from, what is watched and held.
    Watching {
        origin: &'a str,
        directories: usize,
        listening: Option<String>,
    },
    /// One of the engine's lifecycle events.
    Event(&'a Lifecycle),
    /// What may explain a server's failure, said after the line for its exit.
    Hint(Hint),
    /// What the engine tells besides its lifecycle events.
    Notice(&'a Notice),
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
        Some(match self {
            Note::Watching {
                origin,
                directories,
                listening,
            } => (
                Tone::Info,
                watching(origin, *directories, listening.as_deref()),
            ),
            Note::Event(event) => return event_line(event),
            Note::Hint(hint) => (Tone::Bad, hint_words(*hint).to_owned()),
            Note::Notice(notice) => notice_line(notice),
            Note::Triggered { callers, others } => (Tone::Info, triggered(callers, *others)),
            Note::Reconfigured { file, root, change } => reconfigured(file, root, change),
            Note::Info(text) => (Tone::Info, (*text).to_owned()),
            Note::Warning(text) => (Tone::Bad, format!("warning: {text}")),
            Note::Error(text) => (Tone::Bad, (*text).to_owned()),
        })
    }

    fn breaks(&self) -> Breaks {
        match self {
            Note::Info(_)
            | Note::Warning(_)
            | Note::Error(_)
            | Note::Hint(_)
            | Note::Notice(_)
            | Note::Event(
                Lifecycle::RebuildAsked
                | Lifecycle::ServerFailed(_)
                | Lifecycle::ListensElsewhere { .. },
            ) => Breaks::Indented,
            _ => Breaks::Escaped,
        }
    }

    fn json(&self) -> Value {
        match self {
            Note::Watching {
                origin,
                directories,
                listening,
            } => json!({
                "event": "watching", "origin": origin, "directories": directories,
                "listening": listening,
            }),
            Note::Event(event) => event_json(event),
            Note::Hint(hint) => json!({
                "event": "error", "message": hint_words(*hint), "hint": hint_name(*hint),
            }),
            Note::Notice(notice) => notice_json(notice),
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
            Note::Info(text) => json!({"event": "info", "message": text}),
            Note::Warning(text) => json!({"event": "warning", "message": text}),
            Note::Error(text) => json!({"event": "error", "message": text}),
        }
    }
}

fn ms(d: &Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The human line for a lifecycle event, if it has one.
fn event_line(event: &Lifecycle) -> Option<(Tone, String)> {
    let d = duration;
    Some(match event {
        Lifecycle::Changed { summary, .. } => (Tone::Info, format!("changed: {summary}")),
        Lifecycle::RebuildAsked => (Tone::Info, "rebuilding (r)".to_owned()),
        Lifecycle::BuildStarted { .. } => (Tone::Info, "building".to_owned()),
        Lifecycle::BuildCancelled { after, reason } => (
            Tone::Info,
            format!(
                "cancelled the build after {}: {}",
                d(*after),
                cancel_reason(*reason)
            ),
        ),
        Lifecycle::BuildSucceeded { elapsed } => (Tone::Good, format!("built in {}", d(*elapsed))),
        Lifecycle::BuildFailed {
            how, errors, then, ..
        } => (Tone::Bad, build_failed(how, *errors, *then)),
        Lifecycle::ServerReady {
            pid,
            old,
            swap,
            since_change,
            ..
        } => (Tone::Good, ready(*pid, *old, *swap, *since_change)),
        Lifecycle::ServerFailed(failure) => (Tone::Bad, server_failed(failure)),
        Lifecycle::ServerExited {
            pid,
            ended,
            restarts_in,
            ..
        } => exited(*pid, ended, *restarts_in),
        Lifecycle::Killing {
            pid,
            after,
            signal,
            asked,
            ..
        } => (Tone::Info, killing(*pid, *after, signal, *asked)),
        Lifecycle::Stopped { pid, .. } => (Tone::Info, format!("stopped app (pid {pid})")),
        Lifecycle::PortTaken {
            pid, port, instead, ..
        } => (Tone::Info, port_taken(*pid, *port, *instead)),
        Lifecycle::ListensElsewhere {
            pid,
            ports,
            expected,
            followed,
            overlap_off,
            ..
        } => listens_elsewhere(*pid, ports, *expected, *followed, *overlap_off),
        Lifecycle::ServerStarting { .. } | Lifecycle::Stopping { .. } => return None,
    })
}

/// The JSON object for a lifecycle event: its typed fields, under the names scripts read.
fn event_json(event: &Lifecycle) -> Value {
    match event {
        Lifecycle::Changed { paths, summary } => {
            json!({"event": "change", "paths": paths, "summary": summary})
        }
        Lifecycle::RebuildAsked => json!({"event": "info", "message": "rebuilding (r)"}),
        Lifecycle::BuildStarted { command } => json!({"event": "build_start", "command": command}),
        Lifecycle::BuildCancelled { after, reason } => json!({
            "event": "build_cancel", "after_ms": ms(after), "reason": cancel_reason(*reason),
            "cause": match reason {
                CancelReason::Changed => "changed",
                CancelReason::Stopping => "stopping",
            },
        }),
        Lifecycle::BuildSucceeded { elapsed } => {
            json!({"event": "build_finish", "success": true, "duration_ms": ms(elapsed)})
        }
        Lifecycle::BuildFailed {
            how,
            errors,
            elapsed,
            then,
            ..
        } => build_failed_json(how, *errors, *elapsed, *then),
        Lifecycle::ServerStarting { pid, generation } => {
            json!({"event": "spawn", "pid": pid, "generation": generation.0})
        }
        Lifecycle::ServerReady {
            pid,
            generation,
            old,
            swap,
            since_change,
            port,
        } => json!({
            "event": "ready", "pid": pid, "generation": generation.0, "replaced_pid": old,
            "swap_ms": ms(swap), "since_change_ms": since_change.as_ref().map(ms),
            "port": port,
        }),
        Lifecycle::ServerFailed(failure) => server_failed_json(failure),
        Lifecycle::ServerExited {
            pid,
            generation,
            ended,
            restarts_in,
            hint,
            port,
        } => json!({
            "event": "exit", "pid": pid, "generation": generation.0, "code": ended.code(),
            "signal": ended.signal(), "restart_in_ms": restarts_in.as_ref().map(ms),
            "hint": hint.map(hint_name), "port": port,
        }),
        Lifecycle::Killing {
            pid,
            generation,
            after,
            signal,
            asked,
        } => json!({
            "event": "kill", "pid": pid, "generation": generation.0, "after_ms": ms(after),
            "ignored_signal": signal, "asked": asked,
        }),
        Lifecycle::Stopping { pid, generation } => {
            json!({"event": "stopping", "pid": pid, "generation": generation.0})
        }
        Lifecycle::Stopped {
            pid,
            generation,
            shutdown,
        } => json!({
            "event": "stop", "pid": pid, "generation": generation.0, "shutdown": shutdown,
        }),
        Lifecycle::PortTaken {
            generation,
            pid,
            port,
            instead,
        } => json!({
            "event": "port_taken", "pid": pid, "generation": generation.0, "port": port,
            "instead": instead,
        }),
        Lifecycle::ListensElsewhere {
            pid,
            generation,
            ports,
            expected,
            followed,
            overlap_off,
        } => json!({
            "event": "listens_elsewhere", "pid": pid, "generation": generation.0,
            "ports": ports, "expected": expected, "followed": followed,
            "overlap_off": overlap_off,
        }),
    }
}

fn build_failed_json(
    how: &str,
    errors: Option<usize>,
    elapsed: Duration,
    then: AfterFailure,
) -> Value {
    let (serving, restart_in) = match then {
        AfterFailure::Serving(pid) => (Some(pid), None),
        AfterFailure::RestartIn(delay) => (None, Some(ms(&delay))),
        AfterFailure::WaitForChanges => (None, None),
    };
    json!({
        "event": "build_finish", "success": false, "status": how, "errors": errors,
        "duration_ms": ms(&elapsed), "serving_pid": serving, "restart_in_ms": restart_in,
    })
}

/// A failed server as JSON: the line a human reads as `message` (an `error` event, as ever),
/// and each typed field beside it.
fn server_failed_json(failure: &ServerFailure) -> Value {
    let ServerFailure {
        pid,
        generation,
        why,
        hint,
        serving,
        then,
        port,
    } = failure;
    let mut value = json!({
        "event": "error",
        "message": server_failed(failure),
        "pid": pid, "generation": generation.0, "serving_pid": serving, "port": port,
        "hint": hint.map(hint_name),
        "waiting_for_changes": matches!(then, Afterwards::WaitForChanges { .. }),
    });
    let (reason, detail) = match why {
        Failure::Unstartable(text) => ("unstartable", json!({"detail": text})),
        Failure::PortInUse(port) => ("port_in_use", json!({"port_in_use": port})),
        Failure::NoFreePort(port) => ("no_free_port", json!({"port_in_use": port})),
        Failure::Exited { ended, port_in_use } => (
            "exited",
            json!({"code": ended.code(), "signal": ended.signal(), "port_in_use": port_in_use}),
        ),
        Failure::NotReadyWithin(timeout) => ("not_ready", json!({"timeout_ms": ms(timeout)})),
        Failure::CheckFailed(text) => ("check_failed", json!({"detail": text})),
        Failure::GaveWay => ("gave_way", json!({})),
        Failure::Interrupted => ("interrupted", json!({})),
    };
    value["reason"] = reason.into();
    if let (Value::Object(fields), Value::Object(more)) = (&mut value, detail) {
        fields.extend(more);
    }
    value
}

/// The line for something the engine tells besides its lifecycle events.
fn notice_line(notice: &Notice) -> (Tone, String) {
    let line = match notice {
        Notice::Help => crate::terminal::HELP.to_owned(),
        Notice::StoppingNow => "stopping now".to_owned(),
        Notice::BuildNotStarted(error) => return (Tone::Bad, error.clone()),
        Notice::IgnoresPort { given, listens } => format!(
            "the app ignores PORT: it listens on :{listens}, not on :{} as it was told, so two \
             versions cannot run side by side; restarts stop the old server before starting \
             the new one from now on (make the app listen on PORT for --overlap)",
            given.unwrap_or_default()
        ),
        Notice::KeepsExitingFast { within, up_to } => format!(
            "the app keeps exiting within {} of starting: waiting longer between restarts, up \
             to {} (a change restarts it at once)",
            duration(*within),
            duration(*up_to)
        ),
        Notice::ListensInstead {
            pid,
            ports,
            expected,
        } => listens_instead(*pid, ports, expected),
    };
    (Tone::Info, line)
}

/// What a server that never accepted on `expected` listens on instead, and what to do.
fn listens_instead(pid: u32, ports: &[u16], expected: &str) -> String {
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

fn notice_json(notice: &Notice) -> Value {
    let (tone, message) = notice_line(notice);
    let event = if matches!(tone, Tone::Bad) {
        "error"
    } else {
        "info"
    };
    let mut value = json!({"event": event, "message": message});
    let fields = match notice {
        Notice::Help => json!({"notice": "help"}),
        Notice::StoppingNow => json!({"notice": "stopping_now"}),
        Notice::BuildNotStarted(_) => json!({"notice": "build_not_started"}),
        Notice::IgnoresPort { given, listens } => {
            json!({"notice": "ignores_port", "given": given, "listens": listens})
        }
        Notice::KeepsExitingFast { within, up_to } => json!({
            "notice": "keeps_exiting_fast", "within_ms": ms(within), "up_to_ms": ms(up_to),
        }),
        Notice::ListensInstead {
            pid,
            ports,
            expected,
        } => json!({
            "notice": "listens_instead", "pid": pid, "ports": ports, "expected": expected,
        }),
    };
    if let (Value::Object(all), Value::Object(fields)) = (&mut value, fields) {
        all.extend(fields);
    }
    value
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

/// The notes an event is told as: none (a stop in a restart, which the swap says all of),
/// one, or an exit and what may explain it.
fn notes(event: &Lifecycle, mut tell: impl FnMut(&Note<'_>)) {
    match event {
        Lifecycle::Stopping { .. }
        | Lifecycle::Stopped {
            shutdown: false, ..
        } => {}
        Lifecycle::ServerExited {
            hint: Some(hint), ..
        } => {
            tell(&Note::Event(event));
            tell(&Note::Hint(*hint));
        }
        _ => tell(&Note::Event(event)),
    }
}

fn cancel_reason(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::Changed => "the sources changed",
        CancelReason::Stopping => "reload is stopping",
    }
}

/// "restarted (pid 1 -> 2) in 12ms; ready 340ms after the change".
fn ready(pid: u32, old: Option<u32>, swap: Duration, since_change: Option<Duration>) -> String {
    let line = match old {
        Some(old) => format!("restarted (pid {old} -> {pid}) in {}", duration(swap)),
        None => format!("started (pid {pid})"),
    };
    match since_change {
        Some(since) => format!("{line}; ready {} after the change", duration(since)),
        None => line,
    }
}

/// "app (pid 7) exited with 3; it restarts on the next change".
fn exited(pid: u32, ended: &Ended, restarts_in: Option<Duration>) -> (Tone, String) {
    let next = match restarts_in {
        Some(delay) => format!("restarting it in {}", duration(delay)),
        None => "it restarts on the next change".to_owned(),
    };
    let tone = if ended.code() == Some(0) {
        Tone::Info
    } else {
        Tone::Bad
    };
    (
        tone,
        format!("app (pid {pid}) {}; {next}", ended_words(ended)),
    )
}

fn killing(pid: u32, after: Duration, signal: &str, asked: bool) -> String {
    if asked {
        format!("killing app (pid {pid}) now")
    } else {
        format!(
            "app (pid {pid}) did not stop within {} of {signal}; killing it",
            duration(after)
        )
    }
}

/// How a process ended, after its subject: "exited with 3", "killed by SIGSEGV".
pub fn ended_words(ended: &Ended) -> String {
    match ended {
        Ended::Code(code) => format!("exited with {code}"),
        // A signal without a name is known by its number.
        Ended::Signal(signal) if signal.parse::<i32>().is_ok() => {
            format!("killed by signal {signal}")
        }
        Ended::Signal(signal) => format!("killed by {signal}"),
        Ended::Unknown => "ended".to_owned(),
        Ended::Lost => "was lost track of".to_owned(),
    }
}

/// The line for a new server that will not take over: "new app (pid 8) exited with 3 before
/// it was ready; pid 7 keeps serving", what may explain it, and what to do. `pid`: the new
/// server, if it was started; `serving`: the old one that serves on.
pub fn server_failed(server: &ServerFailure) -> String {
    let ServerFailure {
        pid,
        ref why,
        hint,
        serving,
        then,
        ..
    } = *server;
    let mut line = if let Failure::Unstartable(error) = why {
        // The error names the program and what to do: "app" would only repeat it.
        error.clone()
    } else {
        let app = match (serving, pid) {
            (Some(_), Some(pid)) => format!("new app (pid {pid})"),
            (Some(_), None) => "new app".to_owned(),
            (None, Some(pid)) => format!("app (pid {pid})"),
            (None, None) => "app".to_owned(),
        };
        match serving {
            Some(old) => format!("{app} {}; pid {old} keeps serving", failure(why)),
            None => format!("{app} {}", failure(why)),
        }
    };
    if let Some(hint) = hint {
        line = format!("{line}: {}", hint_words(hint));
    }
    if let Afterwards::WaitForChanges { key } = then {
        let or_key = if key { " (or press r)" } else { "" };
        line = format!(
            "{line}\n  reload is waiting for changes: fix it and save{or_key} to try again"
        );
    }
    line
}

/// Why a new server will not take over, after its subject ("app (pid 8) ...").
fn failure(why: &Failure) -> String {
    match why {
        Failure::Unstartable(error) | Failure::CheckFailed(error) => error.clone(),
        Failure::PortInUse(port) => format!("not started: {}", port_in_use(*port)),
        Failure::NoFreePort(port) => format!(
            "not started: {}, and no other port was free",
            port_in_use(*port)
        ),
        Failure::Exited {
            ended,
            port_in_use: None,
        } => format!("{} before it was ready", ended_words(ended)),
        Failure::Exited {
            ended,
            port_in_use: Some(port),
        } => format!(
            "{} before it was ready: {}",
            ended_words(ended),
            port_in_use(*port)
        ),
        Failure::NotReadyWithin(timeout) => format!("was not ready within {}", duration(*timeout)),
        Failure::GaveWay => "gave way to a newer change before it was ready".to_owned(),
        Failure::Interrupted => "was interrupted before it was ready".to_owned(),
    }
}

fn hint_words(hint: Hint) -> &'static str {
    match hint {
        Hint::BindsHeldPort => {
            "with --listen, reload holds the port and hands it to the app as fd 3 (LISTEN_FDS): \
             an app that binds the port itself fails with \"address already in use\"\n  help: \
             make the app take its socket from fd 3 (see the README's \"Zero-downtime dev \
             loop\"), or drop --listen to let it bind the port itself"
        }
    }
}

fn hint_name(hint: Hint) -> &'static str {
    match hint {
        Hint::BindsHeldPort => "binds_held_port",
    }
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
fn port_in_use(port: u16) -> String {
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

pub fn notice(notice: &Notice) {
    emit(&Note::Notice(notice));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Generation;

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
        let event = Lifecycle::BuildFailed {
            how: "exit 101".into(),
            errors: Some(3),
            elapsed: Duration::from_secs(1),
            then: AfterFailure::Serving(42),
            output: "".into(),
        };
        let note = Note::Event(&event);
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
        let event = Lifecycle::BuildFailed {
            how: "exit 1".into(),
            errors: None,
            elapsed: Duration::from_secs(1),
            then: AfterFailure::RestartIn(Duration::from_millis(1420)),
            output: "".into(),
        };
        let note = Note::Event(&event);
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
        let event = Lifecycle::ServerReady {
            pid: 2,
            generation: Generation(2),
            old: Some(1),
            swap: Duration::from_millis(12),
            since_change: Some(Duration::from_millis(340)),
            port: None,
        };
        let note = Note::Event(&event);
        assert_eq!(
            note.human().unwrap().1,
            "restarted (pid 1 -> 2) in 12ms; ready 340ms after the change"
        );
        assert_eq!(note.json()["since_change_ms"], 340);
    }

    /// The human line and the JSON object of a new server given up on.
    fn failed(
        pid: Option<u32>,
        why: Failure,
        hint: Option<Hint>,
        serving: Option<u32>,
        then: Afterwards,
    ) -> (String, Value) {
        let event = Lifecycle::ServerFailed(ServerFailure {
            pid,
            generation: Generation(2),
            why,
            hint,
            serving,
            then,
            port: Some(4123),
        });
        let note = Note::Event(&event);
        (note.human().unwrap().1, note.json())
    }

    const WAIT: Afterwards = Afterwards::WaitForChanges { key: false };
    const WAITING: &str = "\n  reload is waiting for changes: fix it and save to try again";

    #[test]
    fn a_new_server_given_up_on_says_which_why_what_serves_on_and_what_to_do() {
        let exited = Failure::Exited {
            ended: Ended::Code(3),
            port_in_use: None,
        };
        let (line, json) = failed(Some(8), exited.clone(), None, Some(7), WAIT);
        assert_eq!(
            line,
            format!(
                "new app (pid 8) exited with 3 before it was ready; pid 7 keeps serving{WAITING}"
            )
        );
        assert_eq!(json["event"], "error");
        assert_eq!(json["message"], line);
        assert_eq!(
            (
                &json["pid"],
                &json["generation"],
                &json["serving_pid"],
                &json["port"]
            ),
            (&json!(8), &json!(2), &json!(7), &json!(4123))
        );
        assert_eq!(
            (&json["reason"], &json["code"]),
            (&json!("exited"), &json!(3))
        );
        assert_eq!(json["waiting_for_changes"], true);
        let (line, _) = failed(
            Some(8),
            exited,
            None,
            None,
            Afterwards::WaitForChanges { key: true },
        );
        assert_eq!(
            line,
            "app (pid 8) exited with 3 before it was ready\n  reload is waiting for changes: fix \
             it and save (or press r) to try again"
        );
        let killed = Failure::Exited {
            ended: Ended::Signal("SIGKILL".into()),
            port_in_use: Some(4123),
        };
        let (line, json) = failed(Some(8), killed, None, None, WAIT);
        assert!(
            line.starts_with(
                "app (pid 8) killed by SIGKILL before it was ready: its port :4123 is in use \
                 (another program listens there, or a connection on it waits in TIME_WAIT)"
            ),
            "{line}"
        );
        assert_eq!(
            (&json["signal"], &json["port_in_use"]),
            (&json!("SIGKILL"), &json!(4123))
        );
        let unnamed = Failure::Exited {
            ended: Ended::Signal("42".into()),
            port_in_use: None,
        };
        assert!(
            failed(Some(8), unnamed, None, None, Afterwards::Decided)
                .0
                .starts_with("app (pid 8) killed by signal 42 before"),
        );
        for (ended, words) in [
            (Ended::Unknown, "ended"),
            (Ended::Lost, "was lost track of"),
        ] {
            let why = Failure::Exited {
                ended,
                port_in_use: None,
            };
            assert_eq!(
                failed(Some(8), why, None, None, Afterwards::Decided).0,
                format!("app (pid 8) {words} before it was ready")
            );
        }
    }

    #[test]
    fn each_reason_a_new_server_does_not_take_over_reads_as_before() {
        let line = |pid, why, then| failed(pid, why, None, Some(7), then);
        let (timeout, json) = line(
            Some(8),
            Failure::NotReadyWithin(Duration::from_secs(2)),
            WAIT,
        );
        assert_eq!(
            timeout,
            format!("new app (pid 8) was not ready within 2.00s; pid 7 keeps serving{WAITING}")
        );
        assert_eq!(
            (&json["reason"], &json["timeout_ms"]),
            (&json!("not_ready"), &json!(2000))
        );
        let (gave_way, json) = line(Some(8), Failure::GaveWay, Afterwards::Decided);
        assert_eq!(
            gave_way,
            "new app (pid 8) gave way to a newer change before it was ready; pid 7 keeps serving"
        );
        assert_eq!(json["waiting_for_changes"], false);
        assert_eq!(
            failed(
                Some(8),
                Failure::Interrupted,
                None,
                None,
                Afterwards::Decided
            )
            .0,
            "app (pid 8) was interrupted before it was ready"
        );
        assert_eq!(
            line(
                Some(8),
                Failure::CheckFailed("the notify socket broke".into()),
                WAIT
            )
            .0,
            format!("new app (pid 8) the notify socket broke; pid 7 keeps serving{WAITING}")
        );
        let (taken, json) = line(None, Failure::PortInUse(7000), WAIT);
        assert_eq!(
            taken,
            format!(
                "new app not started: its port :7000 is in use (another program listens there, \
                 or a connection on it waits in TIME_WAIT); pid 7 keeps serving{WAITING}"
            )
        );
        assert_eq!(
            (&json["pid"], &json["reason"]),
            (&Value::Null, &json!("port_in_use"))
        );
        assert_eq!(
            failed(None, Failure::NoFreePort(8080), None, None, WAIT).0,
            format!(
                "app not started: its port :8080 is in use (another program listens there, or a \
                 connection on it waits in TIME_WAIT), and no other port was free{WAITING}"
            )
        );
        let (unstartable, json) = line(
            None,
            Failure::Unstartable("the app `./server` does not exist".into()),
            WAIT,
        );
        assert_eq!(
            unstartable,
            format!("the app `./server` does not exist{WAITING}"),
            "the error names the program itself"
        );
        assert_eq!(json["detail"], "the app `./server` does not exist");
    }

    #[test]
    fn the_listen_hint_follows_the_failure_and_the_exit_on_a_line_of_its_own() {
        let (line, json) = failed(
            Some(8),
            Failure::GaveWay,
            Some(Hint::BindsHeldPort),
            None,
            Afterwards::Decided,
        );
        assert!(
            line.starts_with(
                "app (pid 8) gave way to a newer change before it was ready: with --listen, \
                 reload holds the port and hands it to the app as fd 3 (LISTEN_FDS)"
            ) && line.ends_with("or drop --listen to let it bind the port itself"),
            "{line}"
        );
        assert_eq!(json["hint"], "binds_held_port");
        let exited = Lifecycle::ServerExited {
            pid: 7,
            generation: Generation(1),
            ended: Ended::Code(1),
            restarts_in: None,
            hint: Some(Hint::BindsHeldPort),
            port: None,
        };
        let mut lines = Vec::new();
        notes(&exited, |note| {
            lines.push((
                note.human().unwrap().1,
                note.breaks() == Breaks::Indented,
                note.json(),
            ));
        });
        let [(exit, false, exit_json), (hint, true, hint_json)] = &lines[..] else {
            panic!("an exit, then its hint, on lines of their own")
        };
        assert_eq!(
            exit,
            "app (pid 7) exited with 1; it restarts on the next change"
        );
        assert!(
            hint.starts_with("with --listen, reload holds the port"),
            "{hint}"
        );
        assert_eq!(
            (
                &exit_json["event"],
                &exit_json["code"],
                &exit_json["generation"]
            ),
            (&json!("exit"), &json!(1), &json!(1))
        );
        assert_eq!(
            (&hint_json["event"], &hint_json["message"]),
            (&json!("error"), &json!(hint))
        );
    }

    #[test]
    fn a_serving_app_that_exits_says_how_and_when_it_starts_again() {
        let line = |ended, restarts_in| {
            let event = Lifecycle::ServerExited {
                pid: 7,
                generation: Generation(1),
                ended,
                restarts_in,
                hint: None,
                port: Some(4123),
            };
            let note = Note::Event(&event);
            let (tone, line) = note.human().unwrap();
            (matches!(tone, Tone::Bad), line, note.json())
        };
        let (bad, text, json) = line(Ended::Code(0), Some(Duration::from_millis(500)));
        assert_eq!(text, "app (pid 7) exited with 0; restarting it in 500ms");
        assert!(!bad, "a clean exit is no error");
        assert_eq!(
            (&json["restart_in_ms"], &json["port"]),
            (&json!(500), &json!(4123))
        );
        let (bad, text, json) = line(Ended::Signal("SIGSEGV".into()), None);
        assert_eq!(
            text,
            "app (pid 7) killed by SIGSEGV; it restarts on the next change"
        );
        assert!(bad);
        assert_eq!(
            (&json["code"], &json["signal"]),
            (&Value::Null, &json!("SIGSEGV"))
        );
    }

    #[test]
    fn notices_read_as_before_and_carry_their_typed_fields_in_json() {
        let note = |notice: Notice| {
            let shown = Note::Notice(&notice);
            (shown.human().unwrap().1, shown.json())
        };
        let (line, json) = note(Notice::IgnoresPort {
            given: Some(9000),
            listens: 8080,
        });
        assert_eq!(
            line,
            "the app ignores PORT: it listens on :8080, not on :9000 as it was told, so two \
             versions cannot run side by side; restarts stop the old server before starting the \
             new one from now on (make the app listen on PORT for --overlap)"
        );
        assert_eq!(
            (&json["event"], &json["notice"]),
            (&json!("info"), &json!("ignores_port"))
        );
        assert_eq!(
            (&json["given"], &json["listens"]),
            (&json!(9000), &json!(8080))
        );
        let (line, json) = note(Notice::KeepsExitingFast {
            within: Duration::from_secs(1),
            up_to: Duration::from_secs(5),
        });
        assert_eq!(
            line,
            "the app keeps exiting within 1.00s of starting: waiting longer between restarts, \
             up to 5.00s (a change restarts it at once)"
        );
        assert_eq!(json["up_to_ms"], 5000);
        assert_eq!(note(Notice::StoppingNow).0, "stopping now");
        let (line, json) = note(Notice::ListensInstead {
            pid: 7,
            ports: vec![5000, 9229],
            expected: "127.0.0.1:8080".into(),
        });
        assert_eq!(
            line,
            "app (pid 7) listens on :5000, :9229, not on 127.0.0.1:8080: if that is its port, \
             point reload at it (--app-port, or --ready tcp:PORT), or make the app listen on PORT"
        );
        assert_eq!(json["ports"], json!([5000, 9229]));
        let (line, _) = note(Notice::ListensInstead {
            pid: 7,
            ports: Vec::new(),
            expected: "127.0.0.1:8080".into(),
        });
        assert_eq!(
            line,
            "app (pid 7) listens on no TCP port at all, not on 127.0.0.1:8080: does it start a \
             server, and does it read PORT?"
        );
        assert_eq!(note(Notice::Help).0, crate::terminal::HELP);
        let (line, json) = note(Notice::BuildNotStarted("cannot start `make`".into()));
        assert_eq!(line, "cannot start `make`");
        assert_eq!(json["event"], "error");
    }

    #[test]
    fn a_kill_says_which_signal_was_ignored_and_for_how_long_unless_asked() {
        let kill = |asked| {
            let event = Lifecycle::Killing {
                pid: 7,
                generation: Generation(3),
                after: Duration::from_secs(5),
                signal: "SIGTERM",
                asked,
            };
            let note = Note::Event(&event);
            (note.human().unwrap().1, note.json())
        };
        let (line, json) = kill(false);
        assert_eq!(
            line,
            "app (pid 7) did not stop within 5.00s of SIGTERM; killing it"
        );
        assert_eq!(
            (&json["event"], &json["generation"], &json["ignored_signal"]),
            (&json!("kill"), &json!(3), &json!("SIGTERM"))
        );
        assert_eq!(kill(true).0, "killing app (pid 7) now");
    }

    #[test]
    fn a_cancelled_build_says_why_in_words_and_as_a_cause() {
        for (reason, words, cause) in [
            (CancelReason::Changed, "the sources changed", "changed"),
            (CancelReason::Stopping, "reload is stopping", "stopping"),
        ] {
            let event = Lifecycle::BuildCancelled {
                after: Duration::from_millis(300),
                reason,
            };
            let note = Note::Event(&event);
            assert_eq!(
                note.human().unwrap().1,
                format!("cancelled the build after 300ms: {words}")
            );
            let json = note.json();
            assert_eq!(
                (&json["reason"], &json["cause"]),
                (&json!(words), &json!(cause))
            );
        }
    }

    #[test]
    fn a_taken_port_says_which_and_where_the_new_server_starts_instead() {
        let taken = |pid| Lifecycle::PortTaken {
            generation: Generation(3),
            pid,
            port: 30001,
            instead: 30002,
        };
        let before = taken(None);
        let (_, line) = Note::Event(&before).human().unwrap();
        assert!(
            line.starts_with("the new app's port :30001 is in use (")
                && line.contains("TIME_WAIT")
                && line.ends_with("starting it on :30002 instead"),
            "{line}"
        );
        let after_exit = taken(Some(7));
        let after_exit = Note::Event(&after_exit);
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
        let elsewhere = |ports: &[u16], expected, followed, overlap_off| {
            let event = Lifecycle::ListensElsewhere {
                pid: 7,
                generation: Generation(1),
                ports: ports.to_vec(),
                expected,
                followed,
                overlap_off,
            };
            let note = Note::Event(&event);
            (note.human().unwrap().1, note.json())
        };
        let (line, _) = elsewhere(&[5000], 4123, Some(5000), false);
        assert_eq!(
            line,
            "app listens on :5000, not on PORT=4123: forwarding there"
        );
        let (line, _) = elsewhere(&[5000, 5001, 9229], 4123, Some(5000), true);
        assert!(
            line.starts_with(
                "app listens on :5000, :5001 and :9229, not on PORT=4123: forwarding to :5000\n  \
                 it ignores PORT"
            ),
            "{line}"
        );
        let (line, json) = elsewhere(&[5000], 8080, None, false);
        assert!(
            line.starts_with("app (pid 7) listens on :5000, not on :8080, where reload waits"),
            "{line}"
        );
        assert_eq!(json["event"], "listens_elsewhere");
        assert_eq!(json["generation"], 1);
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
