//! Polling waits, with deadlines.

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use crate::POLL;

/// Poll `probe` until it yields a value or `timeout` passes.
pub(crate) fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// Wait until `state` has not changed for `quiet`; fail if it still changes after `timeout`.
pub(crate) fn wait_quiet<T: PartialEq>(
    quiet: Duration,
    timeout: Duration,
    mut state: impl FnMut() -> T,
) -> Result<()> {
    let began = Instant::now();
    let mut last = state();
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        ensure!(
            began.elapsed() < timeout,
            "still changing after {:.0} s",
            timeout.as_secs_f64()
        );
        thread::sleep(POLL * 4);
        let now = state();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    Ok(())
}
