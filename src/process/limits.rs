//! The descriptor limit (RLIMIT_NOFILE): raised to its hard limit for reload itself, put back
//! for every program reload starts.
//!
//! The dev proxy holds up to two descriptors per browser connection (the browser's and the
//! app's), and a distro's default soft limit of 1024 is reached by a few hundred idle
//! connections; past it, reload could not even open `/dev/null` for the next build. Children
//! get the soft limit reload was given, since programs that still use `select(2)` break on a
//! descriptor past 1024, which is why the default soft limit is low in the first place.

use std::sync::OnceLock;

use nix::sys::resource::{Resource, getrlimit, rlim_t, setrlimit};

/// The soft and hard limits reload was started with, once it raised its own.
static GIVEN: OnceLock<(rlim_t, rlim_t)> = OnceLock::new();

/// The most a soft limit is raised to: Linux refuses more than `fs.nr_open` (2^20 by
/// default) and macOS more than `OPEN_MAX` (10240), whatever the hard limit says.
#[cfg(target_os = "linux")]
const CEILING: rlim_t = 1 << 20;
#[cfg(not(target_os = "linux"))]
const CEILING: rlim_t = 10_240;

/// Raise reload's own soft limit as far as the hard limit allows, once; returns the soft limit
/// in force afterwards (what it was when it cannot be raised).
pub fn raise_descriptor_limit() -> rlim_t {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    let target = hard.min(CEILING);
    if target > soft && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
        let _ = GIVEN.set((soft, hard));
        return target;
    }
    soft
}

/// The soft limit in force now.
pub fn descriptor_limit() -> rlim_t {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// The limits a child is given back, when reload raised its own.
pub(crate) fn given() -> Option<(rlim_t, rlim_t)> {
    GIVEN.get().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one_and_the_given_one_is_kept() {
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let now = raise_descriptor_limit();
        assert_eq!(now, hard.min(CEILING).max(soft));
        assert_eq!(descriptor_limit(), now);
        if now > soft {
            assert_eq!(given(), Some((soft, hard)));
        }
    }
}
