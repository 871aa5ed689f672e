//! The stand-in server (this very binary, called with `__bench_child`) and the start log it
//! writes: one line per server start, stamped by the server's own clock.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::CHILD_ARG;
use crate::stats::unix_nanos;

/// `__bench_child START_LOG [VERSION_FILE]`: append `pid unix-nanos version` to START_LOG as the
/// very first thing, then idle until killed. It also leaves by itself once the log's directory
/// is gone, so a stray one cannot outlive the bench.
pub(crate) fn stand_in_server(args: &[OsString]) -> ExitCode {
    let at = unix_nanos(SystemTime::now());
    let Some(log) = args.first().map(Path::new) else {
        eprintln!("{CHILD_ARG}: no start log given");
        return ExitCode::from(2);
    };
    let version = args
        .get(1)
        .and_then(|path| fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty() && !text.contains(char::is_whitespace))
        .unwrap_or_else(|| "-".to_owned());
    let line = format!("{} {at} {version}\n", std::process::id());
    // One write to an O_APPEND file: lines of successive servers never interleave.
    let written = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!("{CHILD_ARG}: cannot log to {}: {err}", log.display());
        return ExitCode::FAILURE;
    }
    let scratch = log.parent().unwrap_or(Path::new("/")).to_owned();
    let born = Instant::now();
    while scratch.exists() && born.elapsed() < Duration::from_secs(30 * 60) {
        thread::sleep(Duration::from_millis(200));
    }
    ExitCode::SUCCESS
}

/// One line of a start log: a server that started.
#[derive(Debug, Clone)]
pub(crate) struct Start {
    pub(crate) at: SystemTime,
    pub(crate) version: String,
}

/// The log the stand-in servers of one tool run append to.
pub(crate) struct StartLog(pub(crate) PathBuf);

impl StartLog {
    pub(crate) fn read(&self) -> Vec<Start> {
        let text = fs::read_to_string(&self.0).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut fields = line.split(' ');
                let _pid: u32 = fields.next()?.parse().ok()?;
                let nanos: u64 = fields.next()?.parse().ok()?;
                Some(Start {
                    at: UNIX_EPOCH + Duration::from_nanos(nanos),
                    version: fields.next()?.to_owned(),
                })
            })
            .collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.read().len()
    }
}
