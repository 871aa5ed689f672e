//! The wall clock as the user's terminal shows it: the local time of day for status-line
//! timestamps. Everything else in reload measures with `Instant` and never reads this clock.

/// The local time of day (hours, minutes, seconds), for status-line timestamps.
pub fn local_time_of_day() -> (u32, u32, u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let now = nix::libc::time_t::try_from(now).unwrap_or_default();
    // SAFETY: localtime_r is the thread-safe variant: it writes only into the `tm` we own, which
    // is plain data for which all-zero bytes are a valid value.
    let tm = unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        nix::libc::localtime_r(&raw const now, &raw mut tm);
        tm
    };
    let part = |v: i32| u32::try_from(v).unwrap_or_default();
    (part(tm.tm_hour), part(tm.tm_min), part(tm.tm_sec))
}
