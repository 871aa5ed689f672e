//! `POST /__reload/trigger`: another tool (a CSS or template watcher) asks every page to
//! reload. Triggers that come within the quiet window of each other (`[watch] debounce`, the
//! same window a burst of saves gets) count as one: the pages reload once, when the window
//! has passed after the last of them, and the terminal gets one line naming who asked and how
//! often. A watcher that posts once a second gets a reload per post; a burst of posts gets one.
//!
//! The User-Agent is whatever the caller wrote: it is kept to [`USER_AGENT_KEPT`] characters,
//! only [`CALLERS`] distinct ones are named per burst, and `status` escapes what it prints.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::{Shared, events, lock};
use crate::status::{self, Caller};

/// The characters of a User-Agent that are kept: enough for `curl/8.5.0` and for the start of
/// a browser's, not a screenful.
const USER_AGENT_KEPT: usize = 100;

/// Callers named one by one in a burst's line; triggers from further ones are only counted.
const CALLERS: usize = 4;

/// The triggers not yet answered with a reload.
pub(crate) struct Triggers {
    quiet: Duration,
    burst: Mutex<Option<Burst>>,
}

/// Triggers less than the quiet window apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Burst {
    /// Who asked, in the order of their first trigger, and how often.
    pub callers: Vec<Caller>,
    /// Triggers from callers past the first [`CALLERS`].
    pub others: usize,
    /// When the pages reload, unless another trigger comes first.
    due: Instant,
}

/// What a burst's waiter does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Another trigger moved the reload: wait until then.
    Until(Instant),
    /// The window passed quietly: reload the pages and say so.
    Quiet(Burst),
}

impl Triggers {
    pub(crate) fn new(quiet: Duration) -> Triggers {
        Triggers {
            quiet,
            burst: Mutex::new(None),
        }
    }

    /// A trigger from `user_agent` at `now`. `true` when it opens a burst: the caller then
    /// starts the one waiter that ends it ([`fire_when_quiet`]).
    pub(crate) fn ask(&self, user_agent: Option<&HeaderValue>, now: Instant) -> bool {
        let user_agent = user_agent.map(kept);
        let mut burst = lock(&self.burst);
        let opens = burst.is_none();
        let burst = burst.get_or_insert_with(|| Burst {
            callers: Vec::new(),
            others: 0,
            due: now,
        });
        // Every trigger moves the reload: it comes a quiet window after the last one.
        burst.due = now + self.quiet;
        if let Some(caller) = burst
            .callers
            .iter_mut()
            .find(|caller| caller.user_agent == user_agent)
        {
            caller.times += 1;
        } else if burst.callers.len() < CALLERS {
            burst.callers.push(Caller {
                user_agent,
                times: 1,
            });
        } else {
            burst.others += 1;
        }
        opens
    }

    /// At `now`: the burst, taken, when its window has passed; else when to look again.
    /// `None` when there is no burst (its waiter already took it).
    pub(crate) fn settle(&self, now: Instant) -> Option<Settled> {
        let mut burst = lock(&self.burst);
        let due = burst.as_ref()?.due;
        if now < due {
            return Some(Settled::Until(due));
        }
        burst.take().map(Settled::Quiet)
    }
}

/// A User-Agent as it is kept: decoded leniently (a header may hold any byte but control
/// characters), and cut after [`USER_AGENT_KEPT`] characters.
fn kept(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    match text.char_indices().nth(USER_AGENT_KEPT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

/// The one waiter of a burst: when the quiet window has passed after its last trigger, every
/// page is told to reload and the terminal gets the burst's line.
pub(crate) async fn fire_when_quiet(shared: Arc<Shared>) {
    while let Some(settled) = shared.triggers.settle(Instant::now()) {
        match settled {
            Settled::Until(due) => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            }
            Settled::Quiet(burst) => {
                let _ = shared.frames.send(events::reload());
                status::emit(&status::Note::Triggered {
                    callers: &burst.callers,
                    others: burst.others,
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(50);

    fn agent(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    fn caller(user_agent: &str, times: usize) -> Caller {
        Caller {
            user_agent: Some(user_agent.to_owned()),
            times,
        }
    }

    #[test]
    fn triggers_within_the_window_are_one_burst_answered_after_the_last() {
        let triggers = Triggers::new(QUIET);
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(triggers.settle(start), None, "no trigger, no burst");
        assert!(triggers.ask(Some(&agent("curl/8.5.0")), at(0)), "opens");
        assert!(!triggers.ask(Some(&agent("curl/8.5.0")), at(30)));
        assert!(!triggers.ask(None, at(60)));
        assert!(!triggers.ask(Some(&agent("curl/8.5.0")), at(90)));
        // Each trigger moved the reload to a window after it.
        assert_eq!(triggers.settle(at(100)), Some(Settled::Until(at(140))));
        let Some(Settled::Quiet(burst)) = triggers.settle(at(140)) else {
            panic!("the window passed");
        };
        assert_eq!(
            burst.callers,
            [
                caller("curl/8.5.0", 3),
                Caller {
                    user_agent: None,
                    times: 1
                }
            ]
        );
        assert_eq!(burst.others, 0);
        assert_eq!(triggers.settle(at(141)), None, "taken once");
    }

    #[test]
    fn triggers_a_window_apart_are_a_reload_each() {
        let triggers = Triggers::new(QUIET);
        let start = Instant::now();
        for second in 0..3 {
            let now = start + Duration::from_secs(second);
            assert!(triggers.ask(Some(&agent("watcher/1")), now), "{second}");
            let Some(Settled::Quiet(burst)) = triggers.settle(now + QUIET) else {
                panic!("the window passed");
            };
            assert_eq!(burst.callers, [caller("watcher/1", 1)]);
        }
    }

    #[test]
    fn a_burst_names_a_few_callers_and_counts_the_rest() {
        let triggers = Triggers::new(QUIET);
        let now = Instant::now();
        for n in 0..1000 {
            let value = HeaderValue::from_str(&format!("tool/{n}")).unwrap();
            triggers.ask(Some(&value), now);
        }
        triggers.ask(Some(&agent("tool/0")), now);
        let Some(Settled::Quiet(burst)) = triggers.settle(now + QUIET) else {
            panic!("the window passed");
        };
        assert_eq!(
            burst.callers,
            [
                caller("tool/0", 2),
                caller("tool/1", 1),
                caller("tool/2", 1),
                caller("tool/3", 1)
            ]
        );
        assert_eq!(burst.others, 996);
    }

    #[test]
    fn a_user_agent_is_kept_short_whatever_its_bytes() {
        let long = "x".repeat(10_000);
        let kept_long = kept(&HeaderValue::from_str(&long).unwrap());
        assert_eq!(kept_long, format!("{}...", "x".repeat(USER_AGENT_KEPT)));
        let bytes = HeaderValue::from_bytes(b"tool \xff\xfe/1").unwrap();
        assert_eq!(kept(&bytes), "tool \u{fffd}\u{fffd}/1");
        let wide = "é".repeat(USER_AGENT_KEPT + 1);
        assert_eq!(
            kept(&HeaderValue::from_str(&wide).unwrap()),
            format!("{}...", "é".repeat(USER_AGENT_KEPT)),
            "cut at a character, not a byte"
        );
    }
}
