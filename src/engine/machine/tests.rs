//! The engine's transitions, fed events and the time by hand: no process, no clock, no sleep.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::*;
use crate::lifecycle::Ended;

const G1: Generation = Generation(1);
const G2: Generation = Generation(2);
const G3: Generation = Generation(3);
const G4: Generation = Generation(4);

fn policy() -> Policy {
    Policy {
        build: Some("make".to_owned()),
        server: true,
        order: RestartOrder::StopThenStart,
        on_build_failure: OnBuildFailure::KeepServing,
        on_exit: OnExit::Wait,
        ready_timeout: Duration::from_secs(30),
        stop_timeout: Duration::from_secs(5),
        stop_signal: "SIGTERM",
        clear: false,
        listening: false,
        keys: false,
        probed: None,
        ports: None,
    }
}

fn overlap() -> Policy {
    Policy {
        order: RestartOrder::Overlap,
        ..policy()
    }
}

/// A service and the time it lives in.
struct Run {
    service: Service,
    now: Instant,
}

impl Run {
    /// Started: its first build runs.
    fn new(policy: Policy) -> (Run, Vec<Effect>) {
        let now = Instant::now();
        let mut service = Service::new(policy);
        let effects = service.start(now);
        (Run { service, now }, effects)
    }

    fn feed(&mut self, event: Event) -> Vec<Effect> {
        self.service.handle(event, self.now)
    }

    /// Let `by` pass, and tick if a deadline passed meanwhile.
    fn wait(&mut self, by: Duration) -> Vec<Effect> {
        self.now += by;
        match self.service.next_deadline() {
            Some(at) if at <= self.now => self.feed(Event::Tick),
            _ => Vec::new(),
        }
    }

    fn build_succeeds(&mut self) -> Vec<Effect> {
        self.feed(Event::BuildFinished {
            result: BuildResult::Succeeded { executable: None },
            elapsed: Duration::from_millis(100),
            output: "".into(),
        })
    }

    fn build_fails(&mut self) -> Vec<Effect> {
        self.feed(Event::BuildFinished {
            result: BuildResult::Failed {
                how: "exit 1".to_owned(),
                errors: Some(2),
            },
            elapsed: Duration::from_millis(100),
            output: "\x1b[31merror\x1b[0m: main.go:3: nope\n".into(),
        })
    }

    fn prepared(&mut self, generation: Generation) -> Vec<Effect> {
        self.feed(Event::Prepared {
            generation,
            result: Ok(()),
        })
    }

    fn spawned(&mut self, generation: Generation, pid: u32) -> Vec<Effect> {
        self.feed(Event::Spawned {
            generation,
            result: Ok(pid),
        })
    }

    fn change(&mut self) -> Vec<Effect> {
        self.feed(Event::Changed {
            paths: vec![PathBuf::from("/p/main.go")],
            summary: "main.go".to_owned(),
            first_seen: self.now,
        })
    }

    /// A change, and its build succeeds and generation 2 is prepared: the swap has begun.
    fn swap_to_g2(&mut self) -> Vec<Effect> {
        self.change();
        self.build_succeeds();
        self.prepared(G2)
    }

    /// From a started run to generation 1 serving as `pid`.
    fn serving(policy: Policy, pid: u32) -> Run {
        let (mut run, _) = Run::new(policy);
        run.build_succeeds();
        run.prepared(G1);
        run.spawned(G1, pid);
        run.feed(Event::Ready(G1));
        assert_eq!(run.service.serving.map(|s| s.pid), Some(pid));
        run
    }
}

fn exit(pid: u32, code: i32, ran: Duration) -> ChildExit {
    ChildExit {
        pid,
        status: Some(ExitStatus::from_raw(code << 8)),
        ran,
        hint: None,
        port_taken: None,
    }
}

fn published(effects: &[Effect]) -> Vec<&Lifecycle> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Publish(event) => Some(event),
            _ => None,
        })
        .collect()
}

fn ready_pids(effects: &[Effect]) -> Vec<(u32, Option<u32>)> {
    published(effects)
        .into_iter()
        .filter_map(|event| match event {
            Lifecycle::ServerReady { pid, old, .. } => Some((*pid, *old)),
            _ => None,
        })
        .collect()
}

/// A new server given up on: which, why, what may explain it, what serves on, what follows.
#[derive(Debug, PartialEq)]
struct Failed {
    pid: Option<u32>,
    why: Failure,
    hint: Option<Hint>,
    serving: Option<u32>,
    then: Afterwards,
}

const WAIT: Afterwards = Afterwards::WaitForChanges { key: false };

fn failure(effects: &[Effect]) -> Option<Failed> {
    published(effects)
        .into_iter()
        .find_map(|event| match event {
            Lifecycle::ServerFailed(failure) => Some(Failed {
                pid: failure.pid,
                why: failure.why.clone(),
                hint: failure.hint,
                serving: failure.serving,
                then: failure.then,
            }),
            _ => None,
        })
}

fn notices(effects: &[Effect]) -> Vec<&Notice> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Notice(notice) => Some(notice),
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_build_starts_at_once_and_its_success_prepares_generation_one() {
    let (mut run, effects) = Run::new(policy());
    assert_eq!(
        effects,
        vec![
            Effect::Publish(Lifecycle::BuildStarted {
                command: "make".to_owned()
            }),
            Effect::StartBuild
        ]
    );
    let effects = run.build_succeeds();
    assert!(effects.contains(&Effect::Prepare {
        generation: G1,
        executable: None,
        port: None,
    }));
    // Nothing served yet: nothing to stop, the new server is spawned at once.
    assert_eq!(run.prepared(G1), vec![Effect::Spawn(G1)]);
}

#[test]
fn server_ready_is_published_only_after_readiness_passed_never_at_spawn() {
    let (mut run, _) = Run::new(policy());
    run.build_succeeds();
    run.prepared(G1);
    let effects = run.spawned(G1, 100);
    assert_eq!(
        published(&effects),
        vec![&Lifecycle::ServerStarting {
            pid: 100,
            generation: G1
        }]
    );
    assert!(effects.contains(&Effect::AwaitReady(G1)));
    assert!(ready_pids(&effects).is_empty());
    assert_eq!(run.service.serving, None, "not serving before it is ready");
    run.wait(Duration::from_secs(2));
    let effects = run.feed(Event::Ready(G1));
    assert_eq!(ready_pids(&effects), vec![(100, None)]);
    let Some(Lifecycle::ServerReady { swap, .. }) = published(&effects).first().copied() else {
        panic!("{effects:?}")
    };
    assert_eq!(*swap, Duration::from_secs(2), "from the start of the swap");
}

#[test]
fn a_failed_build_keeps_the_old_server_serving() {
    let mut run = Run::serving(policy(), 100);
    run.change();
    let effects = run.build_fails();
    let [Lifecycle::BuildFailed { then, output, .. }] = published(&effects)[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(*then, AfterFailure::Serving(100));
    assert!(output.contains("\x1b[31merror"), "the output, colours kept");
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Stop(_) | Effect::Prepare { .. })),
        "{effects:?}"
    );
    assert_eq!(run.service.serving.map(|s| s.pid), Some(100));
}

#[test]
fn with_stop_on_build_failure_a_failed_build_stops_the_server() {
    let mut run = Run::serving(
        Policy {
            on_build_failure: OnBuildFailure::Stop,
            ..policy()
        },
        100,
    );
    run.change();
    let effects = run.build_fails();
    assert!(effects.contains(&Effect::Stop(G1)));
    let failed = published(&effects)
        .into_iter()
        .find_map(|e| match e {
            Lifecycle::BuildFailed { then, .. } => Some(*then),
            _ => None,
        })
        .expect("build failed published");
    assert_eq!(
        failed,
        AfterFailure::WaitForChanges,
        "nothing serves any more"
    );
}

#[test]
fn a_change_during_a_build_cancels_it_and_builds_again() {
    let (mut run, _) = Run::new(policy());
    run.wait(Duration::from_millis(300));
    let effects = run.change();
    let cancel = effects.iter().position(|e| *e == Effect::CancelBuild);
    let start = effects.iter().position(|e| *e == Effect::StartBuild);
    assert!(cancel < start && cancel.is_some(), "{effects:?}");
    assert!(published(&effects).contains(&&Lifecycle::BuildCancelled {
        after: Duration::from_millis(300),
        reason: CancelReason::Changed,
    }));
}

#[test]
fn a_change_during_a_readiness_wait_discards_the_new_server_and_builds_again() {
    let (mut run, _) = Run::new(policy());
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.change();
    assert!(effects.contains(&Effect::Discard(G1)));
    assert!(effects.contains(&Effect::StartBuild));
    assert_eq!(
        failure(&effects).expect("says why"),
        Failed {
            pid: Some(100),
            why: Failure::GaveWay,
            hint: None,
            serving: None,
            then: Afterwards::Decided,
        }
    );
    // A late readiness of the discarded server changes nothing.
    let effects = run.feed(Event::Ready(G1));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(run.service.serving, None);
}

#[test]
fn stop_then_start_spawns_only_once_the_old_server_is_gone() {
    let mut run = Run::serving(policy(), 100);
    let effects = run.swap_to_g2();
    assert_eq!(
        effects,
        vec![
            Effect::Publish(Lifecycle::Stopping {
                pid: 100,
                generation: G1
            }),
            Effect::Stop(G1)
        ]
    );
    // The old one's exit while being stopped is part of the stop, not news.
    assert!(
        run.feed(Event::Exited {
            generation: G1,
            exit: exit(100, 0, Duration::from_secs(9)),
        })
        .is_empty()
    );
    let effects = run.feed(Event::Stopped(G1));
    assert!(effects.contains(&Effect::Spawn(G2)), "{effects:?}");
    run.spawned(G2, 200);
    assert_eq!(
        ready_pids(&run.feed(Event::Ready(G2))),
        vec![(200, Some(100))]
    );
}

#[test]
fn overlap_starts_the_new_server_first_and_stops_the_old_once_it_is_ready() {
    let mut run = Run::serving(overlap(), 100);
    run.change();
    run.build_succeeds();
    assert_eq!(
        run.prepared(G2),
        vec![Effect::Spawn(G2)],
        "old one untouched"
    );
    run.spawned(G2, 200);
    let effects = run.feed(Event::Ready(G2));
    let ready = effects
        .iter()
        .position(|e| matches!(e, Effect::Publish(Lifecycle::ServerReady { .. })));
    let stop = effects.iter().position(|e| *e == Effect::Stop(G1));
    assert!(ready.is_some() && ready < stop, "{effects:?}");
    assert_eq!(run.service.serving.map(|s| s.pid), Some(200));
}

#[test]
fn an_overlap_server_that_never_becomes_ready_leaves_the_old_one_serving() {
    let mut run = Run::serving(overlap(), 100);
    run.swap_to_g2();
    run.spawned(G2, 200);
    assert!(run.wait(Duration::from_secs(29)).is_empty());
    let effects = run.wait(Duration::from_secs(1));
    assert!(effects.contains(&Effect::Discard(G2)), "{effects:?}");
    assert!(!effects.contains(&Effect::Stop(G1)));
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: Some(200),
            why: Failure::NotReadyWithin(Duration::from_secs(30)),
            hint: None,
            serving: Some(100),
            then: WAIT,
        }
    );
    assert_eq!(run.service.serving.map(|s| s.pid), Some(100));
}

#[test]
fn a_new_server_that_exits_before_it_is_ready_never_replaces_the_old_one() {
    let mut run = Run::serving(overlap(), 100);
    run.swap_to_g2();
    run.spawned(G2, 200);
    let effects = run.feed(Event::Exited {
        generation: G2,
        exit: exit(200, 3, Duration::from_millis(20)),
    });
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: Some(200),
            why: Failure::Exited {
                ended: Ended::Code(3),
                port_in_use: None,
            },
            hint: None,
            serving: Some(100),
            then: WAIT,
        }
    );
    assert!(ready_pids(&effects).is_empty());
    assert_eq!(run.service.serving.map(|s| s.pid), Some(100));
}

#[test]
fn a_program_that_cannot_be_found_leaves_the_old_server_untouched() {
    let mut run = Run::serving(policy(), 100);
    run.change();
    run.build_succeeds();
    let effects = run.feed(Event::Prepared {
        generation: G2,
        result: Err("the app `./server` does not exist".to_owned()),
    });
    assert!(!effects.iter().any(|e| matches!(e, Effect::Stop(_))));
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: None,
            why: Failure::Unstartable("the app `./server` does not exist".to_owned()),
            hint: None,
            serving: Some(100),
            then: WAIT,
        }
    );
    assert_eq!(run.service.serving.map(|s| s.pid), Some(100));
}

#[test]
fn restart_after_exit_waits_the_delay_then_starts_a_new_generation() {
    let mut run = Run::serving(
        Policy {
            on_exit: OnExit::RestartAfter(Duration::from_millis(500)),
            ..policy()
        },
        100,
    );
    let effects = run.feed(Event::Exited {
        generation: G1,
        exit: exit(100, 1, Duration::from_secs(10)),
    });
    assert!(effects.contains(&Effect::Bury(G1)));
    let [
        Lifecycle::ServerExited {
            restarts_in, ended, ..
        },
    ] = published(&effects)[..]
    else {
        panic!("{effects:?}")
    };
    assert_eq!(
        (*restarts_in, ended),
        (Some(Duration::from_millis(500)), &Ended::Code(1))
    );
    assert!(run.wait(Duration::from_millis(499)).is_empty());
    let effects = run.wait(Duration::from_millis(1));
    assert_eq!(
        effects,
        vec![Effect::Prepare {
            generation: G2,
            executable: None,
            port: None,
        }]
    );
}

#[test]
fn a_server_that_keeps_dying_fast_is_restarted_ever_later_and_a_change_resets_that() {
    let mut run = Run::serving(
        Policy {
            on_exit: OnExit::RestartAfter(Duration::ZERO),
            ..policy()
        },
        100,
    );
    let mut delays = Vec::new();
    let mut told = Vec::new();
    let mut generation = G1;
    for pid in 101..106 {
        let effects = run.feed(Event::Exited {
            generation,
            exit: exit(pid - 1, 1, Duration::from_millis(10)),
        });
        told.extend(notices(&effects).into_iter().cloned());
        delays.extend(published(&effects).into_iter().filter_map(|e| match e {
            Lifecycle::ServerExited { restarts_in, .. } => *restarts_in,
            _ => None,
        }));
        run.wait(Duration::from_secs(10));
        generation = generation.next();
        run.prepared(generation);
        run.spawned(generation, pid);
        run.feed(Event::Ready(generation));
    }
    let ms = |n| Duration::from_millis(n);
    assert_eq!(delays, vec![ms(0), ms(100), ms(200), ms(400), ms(800)]);
    assert_eq!(
        told,
        [Notice::KeepsExitingFast {
            within: Duration::from_secs(1),
            up_to: Duration::from_secs(5),
        }],
        "said once, when the delay starts to grow"
    );
    run.change();
    assert_eq!(run.service.fast_exits, 0);
}

#[test]
fn an_exit_during_a_build_does_not_restart_behind_the_builds_back() {
    let mut run = Run::serving(
        Policy {
            on_exit: OnExit::RestartAfter(Duration::ZERO),
            ..policy()
        },
        100,
    );
    run.change();
    run.feed(Event::Exited {
        generation: G1,
        exit: exit(100, 1, Duration::from_secs(5)),
    });
    assert_eq!(
        run.service.next_deadline(),
        None,
        "the build brings the next server"
    );
    assert!(run.build_succeeds().contains(&Effect::Prepare {
        generation: G2,
        executable: None,
        port: None,
    }));
}

#[test]
fn an_exit_during_a_build_that_fails_restarts_the_last_good_build_after_the_delay() {
    let mut run = Run::serving(
        Policy {
            on_exit: OnExit::RestartAfter(Duration::from_secs(1)),
            ..policy()
        },
        100,
    );
    run.change();
    run.feed(Event::Exited {
        generation: G1,
        exit: exit(100, 1, Duration::from_secs(5)),
    });
    // The build took 100 ms of the second: the line says when the restart comes, not that
    // reload waits for changes.
    run.now += Duration::from_millis(100);
    let effects = run.build_fails();
    let then = published(&effects).into_iter().find_map(|e| match e {
        Lifecycle::BuildFailed { then, .. } => Some(*then),
        _ => None,
    });
    assert_eq!(
        then,
        Some(AfterFailure::RestartIn(Duration::from_millis(900)))
    );
    assert!(run.wait(Duration::from_millis(899)).is_empty());
    assert_eq!(
        run.wait(Duration::from_millis(1)),
        vec![Effect::Prepare {
            generation: G2,
            executable: None,
            port: None,
        }]
    );
}

#[test]
fn a_stop_that_outlasts_the_stop_timeout_is_killed() {
    let mut run = Run::serving(policy(), 100);
    run.swap_to_g2();
    assert!(run.wait(Duration::from_millis(4999)).is_empty());
    let effects = run.wait(Duration::from_millis(1));
    assert_eq!(
        effects,
        vec![
            Effect::Publish(Lifecycle::Killing {
                pid: 100,
                generation: G1,
                after: Duration::from_secs(5),
                signal: "SIGTERM",
                asked: false
            }),
            Effect::Kill(G1)
        ]
    );
    assert!(run.feed(Event::Stopped(G1)).contains(&Effect::Spawn(G2)));
}

#[test]
fn shutdown_during_a_build_cancels_it_and_is_stopped_at_once() {
    let (mut run, _) = Run::new(policy());
    let effects = run.feed(Event::Shutdown);
    assert_eq!(effects.first(), Some(&Effect::CancelBuild));
    assert!(run.service.stopped());
    // Nothing after it starts anything.
    assert!(run.change().is_empty());
}

#[test]
fn shutdown_while_serving_stops_the_server_then_is_stopped() {
    let mut run = Run::serving(policy(), 100);
    let effects = run.feed(Event::Shutdown);
    assert!(effects.contains(&Effect::Stop(G1)));
    assert!(!run.service.stopped());
    let effects = run.feed(Event::Stopped(G1));
    assert_eq!(
        effects,
        vec![Effect::Publish(Lifecycle::Stopped {
            pid: 100,
            generation: G1,
            shutdown: true
        })]
    );
    assert!(run.service.stopped());
}

#[test]
fn shutdown_during_a_readiness_wait_discards_the_new_server_and_stops_the_old() {
    let mut run = Run::serving(overlap(), 100);
    run.swap_to_g2();
    run.spawned(G2, 200);
    let effects = run.feed(Event::Shutdown);
    let discard = effects.iter().position(|e| *e == Effect::Discard(G2));
    let stop = effects.iter().position(|e| *e == Effect::Stop(G1));
    assert!(discard.is_some() && discard < stop, "{effects:?}");
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: Some(200),
            why: Failure::Interrupted,
            hint: None,
            serving: Some(100),
            then: Afterwards::Decided,
        },
        "said before the old server is sent its stop signal"
    );
    assert!(!run.service.stopped());
    run.feed(Event::Stopped(G1));
    assert!(run.service.stopped());
}

#[test]
fn shutdown_during_a_stop_then_start_swap_waits_for_the_stop_and_starts_nothing() {
    let mut run = Run::serving(policy(), 100);
    run.swap_to_g2();
    run.feed(Event::Shutdown);
    assert!(!run.service.stopped());
    let effects = run.feed(Event::Stopped(G1));
    assert!(!effects.contains(&Effect::Spawn(G2)), "{effects:?}");
    assert!(run.service.stopped());
}

#[test]
fn stop_now_during_the_stop_timeout_kills_at_once() {
    let mut run = Run::serving(policy(), 100);
    assert!(
        run.feed(Event::StopNow).is_empty(),
        "only during a shutdown"
    );
    run.feed(Event::Shutdown);
    run.wait(Duration::from_secs(1));
    assert!(
        run.feed(Event::Shutdown).is_empty(),
        "a shutdown happens once"
    );
    let effects = run.feed(Event::StopNow);
    assert_eq!(
        effects,
        vec![
            Effect::Publish(Lifecycle::Killing {
                pid: 100,
                generation: G1,
                after: Duration::from_secs(1),
                signal: "SIGTERM",
                asked: true
            }),
            Effect::Kill(G1)
        ]
    );
    // The stop timeout no longer applies: it is being killed already.
    assert!(run.wait(Duration::from_secs(10)).is_empty());
    run.feed(Event::Stopped(G1));
    assert!(run.service.stopped());
}

#[test]
fn without_a_server_a_shutdown_is_stopped_at_once_and_a_build_success_starts_nothing() {
    let (mut run, _) = Run::new(Policy {
        server: false,
        ..policy()
    });
    assert!(
        !run.build_succeeds()
            .iter()
            .any(|e| matches!(e, Effect::Prepare { .. }))
    );
    assert!(run.feed(Event::Shutdown).is_empty());
    assert!(run.service.stopped());
}

#[test]
fn without_a_build_step_a_change_restarts_the_server_directly() {
    let (mut run, effects) = Run::new(Policy {
        build: None,
        ..policy()
    });
    assert_eq!(
        effects,
        vec![Effect::Prepare {
            generation: G1,
            executable: None,
            port: None,
        }]
    );
    run.prepared(G1);
    run.spawned(G1, 100);
    run.feed(Event::Ready(G1));
    let effects = run.change();
    assert!(effects.contains(&Effect::Prepare {
        generation: G2,
        executable: None,
        port: None,
    }));
    // A change during that swap's stop drops it; the next one is generation 3.
    run.prepared(G2);
    let effects = run.change();
    assert!(effects.contains(&Effect::Prepare {
        generation: G3,
        executable: None,
        port: None,
    }));
    run.prepared(G3);
    let effects = run.feed(Event::Stopped(G1));
    assert!(effects.contains(&Effect::Spawn(G3)), "{effects:?}");
}

#[test]
fn a_success_after_a_failure_clears_the_screen_of_its_errors() {
    let (mut run, _) = Run::new(policy());
    run.build_fails();
    run.change();
    let effects = run.build_succeeds();
    assert_eq!(effects.first(), Some(&Effect::ClearScreen));
    run.prepared(G1);
    run.change();
    assert!(!run.build_succeeds().contains(&Effect::ClearScreen));
}

#[test]
fn a_server_that_never_accepts_on_the_probed_port_gets_its_ports_explained_before_it_goes() {
    let probed = Policy {
        probed: Some("127.0.0.1:8080".to_owned()),
        ..policy()
    };
    let (mut run, _) = Run::new(probed);
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.wait(Duration::from_secs(30));
    let explain = effects.iter().position(|e| {
        *e == Effect::ExplainPorts {
            generation: G1,
            expected: "127.0.0.1:8080".to_owned(),
        }
    });
    let discard = effects.iter().position(|e| *e == Effect::Discard(G1));
    assert!(
        explain.is_some() && explain < discard,
        "the ports are read while the server still runs: {effects:?}"
    );

    let (mut unprobed, _) = Run::new(policy());
    unprobed.build_succeeds();
    unprobed.prepared(G1);
    unprobed.spawned(G1, 100);
    let effects = unprobed.wait(Duration::from_secs(30));
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::ExplainPorts { .. })),
        "{effects:?}"
    );
}

fn alternating() -> Policy {
    Policy {
        ports: Some(Turns {
            app: Some(8080),
            ports: [8080, 9000],
        }),
        probed: Some("127.0.0.1:8080".to_owned()),
        ..overlap()
    }
}

fn prepared_port(effects: &[Effect]) -> Option<u16> {
    effects.iter().find_map(|e| match e {
        Effect::Prepare { port, .. } => port.map(|turn| turn.given),
        _ => None,
    })
}

#[test]
fn behind_the_proxy_overlap_servers_take_turns_on_two_ports_the_first_on_the_second_port() {
    let (mut run, _) = Run::new(alternating());
    let effects = run.build_succeeds();
    assert_eq!(
        prepared_port(&effects),
        Some(9000),
        "the first server shows at once whether it reads PORT"
    );
    run.prepared(G1);
    run.spawned(G1, 100);
    let ready = run.feed(Event::Ready(G1));
    assert!(
        published(&ready).iter().any(|e| matches!(
            e,
            Lifecycle::ServerReady {
                port: Some(9000),
                ..
            }
        )),
        "the proxy learns where it listens: {ready:?}"
    );
    run.change();
    assert_eq!(
        prepared_port(&run.build_succeeds()),
        Some(8080),
        "the port G1 does not hold"
    );
    let effects = run.prepared(G2);
    assert_eq!(
        effects,
        vec![Effect::Spawn(G2)],
        "overlap: the old one serves on"
    );
    run.spawned(G2, 200);
    let ready = run.feed(Event::Ready(G2));
    assert!(ready.contains(&Effect::Stop(G1)));
    run.change();
    assert_eq!(
        prepared_port(&run.build_succeeds()),
        Some(9000),
        "back to the second port"
    );
}

#[test]
fn a_server_that_ignores_port_turns_overlap_into_stop_then_start_with_one_line() {
    let (mut run, _) = Run::new(alternating());
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.feed(Event::IgnoresPort {
        generation: G1,
        listens: 8080,
    });
    assert_eq!(
        notices(&effects),
        [&Notice::IgnoresPort {
            given: Some(9000),
            listens: 8080,
        }],
        "{effects:?}"
    );
    let ready = run.feed(Event::Ready(G1));
    assert!(
        published(&ready).iter().any(|e| matches!(
            e,
            Lifecycle::ServerReady {
                port: Some(8080),
                ..
            }
        )),
        "it is reached where it listens: {ready:?}"
    );
    run.change();
    let effects = run.build_succeeds();
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Prepare { port: None, .. })),
        "no port of its own any more: {effects:?}"
    );
    let effects = run.prepared(G2);
    assert!(
        effects.contains(&Effect::Stop(G1)),
        "stop-then-start from now on: {effects:?}"
    );
}

#[test]
fn a_server_that_gives_way_to_a_newer_change_is_not_said_to_wait_for_changes() {
    let mut run = Run::serving(overlap(), 100);
    run.swap_to_g2();
    run.spawned(G2, 200);
    let effects = run.change();
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: Some(200),
            why: Failure::GaveWay,
            hint: None,
            serving: Some(100),
            then: Afterwards::Decided,
        },
        "the newer change is being built already: not waiting for changes"
    );
    assert!(effects.contains(&Effect::StartBuild), "{effects:?}");
}

/// Generation 1 serving on the second port (9000), generation 2 prepared on the app port and
/// asked to spawn.
fn turns_serving_then_g2_spawning() -> Run {
    let mut run = Run::serving(alternating(), 100);
    run.change();
    assert_eq!(prepared_port(&run.build_succeeds()), Some(8080));
    assert_eq!(run.prepared(G2), vec![Effect::Spawn(G2)]);
    run
}

fn moved(effects: &[Effect]) -> Option<(Option<u32>, u16, u16)> {
    published(effects)
        .into_iter()
        .find_map(|event| match event {
            Lifecycle::PortTaken {
                pid, port, instead, ..
            } => Some((*pid, *port, *instead)),
            _ => None,
        })
}

#[test]
fn a_port_found_taken_before_the_spawn_is_replaced_by_a_free_one_for_good() {
    let mut run = turns_serving_then_g2_spawning();
    let effects = run.feed(Event::PortTaken {
        generation: G2,
        port: 8080,
    });
    assert_eq!(
        effects,
        vec![Effect::ChoosePort {
            generation: G3,
            avoid: vec![8080, 8080, 9000],
        }],
        "a new generation, on a port neither turn holds"
    );
    let effects = run.feed(Event::PortChosen {
        generation: G3,
        port: Some(7000),
    });
    assert_eq!(moved(&effects), Some((None, 8080, 7000)), "{effects:?}");
    assert!(
        effects.contains(&Effect::Prepare {
            generation: G3,
            executable: None,
            port: Some(PortTurn {
                given: 7000,
                app: Some(8080),
                followed: None,
            }),
        }),
        "still told the app port, to see whether it ignores PORT: {effects:?}"
    );
    assert!(failure(&effects).is_none(), "{effects:?}");
    assert_eq!(run.prepared(G3), vec![Effect::Spawn(G3)]);
    run.spawned(G3, 300);
    let ready = run.feed(Event::Ready(G3));
    assert!(
        published(&ready).iter().any(|e| matches!(
            e,
            Lifecycle::ServerReady {
                port: Some(7000),
                old: Some(100),
                ..
            }
        )),
        "the proxy is told the new port: {ready:?}"
    );
    assert!(ready.contains(&Effect::Stop(G1)), "{ready:?}");
    run.feed(Event::Stopped(G1));
    run.change();
    assert_eq!(
        prepared_port(&run.build_succeeds()),
        Some(9000),
        "the turns are 7000 and 9000 now"
    );
    run.prepared(G4);
    run.spawned(G4, 400);
    run.feed(Event::Ready(G4));
    run.change();
    assert_eq!(prepared_port(&run.build_succeeds()), Some(7000));
}

#[test]
fn a_new_server_that_exits_on_a_taken_port_starts_once_more_on_another_then_gives_up() {
    let mut run = turns_serving_then_g2_spawning();
    run.spawned(G2, 200);
    let effects = run.feed(Event::Exited {
        generation: G2,
        exit: ChildExit {
            port_taken: Some(8080),
            ..exit(200, 1, Duration::from_millis(80))
        },
    });
    assert!(
        failure(&effects).is_none(),
        "not a failure yet: {effects:?}"
    );
    assert!(
        effects.contains(&Effect::Discard(G2)),
        "reaped: {effects:?}"
    );
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::ChoosePort { generation: G3, .. })),
        "{effects:?}"
    );
    let effects = run.feed(Event::PortChosen {
        generation: G3,
        port: Some(7000),
    });
    assert_eq!(moved(&effects), Some((Some(200), 8080, 7000)));
    run.prepared(G3);
    run.spawned(G3, 300);
    let effects = run.feed(Event::Exited {
        generation: G3,
        exit: ChildExit {
            port_taken: Some(7000),
            ..exit(300, 1, Duration::from_millis(80))
        },
    });
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::ChoosePort { .. })),
        "moved once, not again: {effects:?}"
    );
    assert!(effects.contains(&Effect::Discard(G3)), "{effects:?}");
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: Some(300),
            why: Failure::Exited {
                ended: Ended::Code(1),
                port_in_use: Some(7000),
            },
            hint: None,
            serving: Some(100),
            then: WAIT,
        }
    );
    assert_eq!(run.service.serving.map(|s| s.pid), Some(100));
    assert!(
        run.change().contains(&Effect::StartBuild),
        "the next change builds again"
    );
}

#[test]
fn a_port_taken_again_before_the_spawn_or_no_free_port_means_not_started() {
    let mut run = turns_serving_then_g2_spawning();
    run.feed(Event::PortTaken {
        generation: G2,
        port: 8080,
    });
    run.feed(Event::PortChosen {
        generation: G3,
        port: Some(7000),
    });
    run.prepared(G3);
    let effects = run.feed(Event::PortTaken {
        generation: G3,
        port: 7000,
    });
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: None,
            why: Failure::PortInUse(7000),
            hint: None,
            serving: Some(100),
            then: WAIT,
        }
    );
    assert_eq!(run.service.phase, Phase::Idle);

    let mut run = turns_serving_then_g2_spawning();
    run.feed(Event::PortTaken {
        generation: G2,
        port: 8080,
    });
    let effects = run.feed(Event::PortChosen {
        generation: G3,
        port: None,
    });
    assert_eq!(
        failure(&effects).unwrap(),
        Failed {
            pid: None,
            why: Failure::NoFreePort(8080),
            hint: None,
            serving: Some(100),
            then: WAIT,
        }
    );
    assert_eq!(run.service.phase, Phase::Idle);
}

#[test]
fn an_exit_with_its_port_free_is_an_ordinary_failure_and_stale_port_events_are_ignored() {
    let mut run = turns_serving_then_g2_spawning();
    let stale = run.feed(Event::PortChosen {
        generation: G2,
        port: Some(7000),
    });
    assert!(stale.is_empty(), "no port was asked for: {stale:?}");
    run.spawned(G2, 200);
    let stale = run.feed(Event::PortTaken {
        generation: G2,
        port: 8080,
    });
    assert!(stale.is_empty(), "it is past its spawn: {stale:?}");
    let effects = run.feed(Event::Exited {
        generation: G2,
        exit: exit(200, 1, Duration::from_millis(80)),
    });
    assert_eq!(
        failure(&effects).unwrap().why,
        Failure::Exited {
            ended: Ended::Code(1),
            port_in_use: None,
        }
    );
}

/// Behind the proxy with no app port named: reload chose :4123 for the server.
fn chosen() -> Policy {
    Policy {
        ports: Some(Turns {
            app: None,
            ports: [4123, 4123],
        }),
        ..policy()
    }
}

fn elsewhere(generation: Generation, ports: &[u16], expected: u16) -> Event {
    Event::ListensElsewhere {
        generation,
        ports: ports.to_vec(),
        expected,
    }
}

fn listens_elsewhere(effects: &[Effect]) -> Vec<&Lifecycle> {
    published(effects)
        .into_iter()
        .filter(|event| matches!(event, Lifecycle::ListensElsewhere { .. }))
        .collect()
}

/// The port of the `ServerReady` among `effects`, which must hold one.
#[track_caller]
fn ready_port(effects: &[Effect]) -> Option<u16> {
    published(effects)
        .into_iter()
        .find_map(|event| match event {
            Lifecycle::ServerReady { port, .. } => Some(*port),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ServerReady in {effects:?}"))
}

#[test]
fn with_a_chosen_port_every_server_gets_it_and_one_that_reads_it_is_reached_there() {
    let (mut run, _) = Run::new(chosen());
    assert_eq!(prepared_port(&run.build_succeeds()), Some(4123));
    run.prepared(G1);
    run.spawned(G1, 100);
    assert_eq!(ready_port(&run.feed(Event::Ready(G1))), Some(4123));
    run.change();
    assert_eq!(
        prepared_port(&run.build_succeeds()),
        Some(4123),
        "stop-then-start: the same port again"
    );
    assert_eq!(
        run.prepared(G2),
        vec![
            Effect::Publish(Lifecycle::Stopping {
                pid: 100,
                generation: G1
            }),
            Effect::Stop(G1)
        ]
    );
}

#[test]
fn with_a_chosen_port_a_server_listening_elsewhere_is_followed_and_said_once_per_run() {
    let (mut run, _) = Run::new(chosen());
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.feed(elsewhere(G1, &[5000, 9229], 4123));
    assert_eq!(
        listens_elsewhere(&effects),
        vec![&Lifecycle::ListensElsewhere {
            pid: 100,
            generation: G1,
            ports: vec![5000, 9229],
            expected: 4123,
            followed: Some(5000),
            overlap_off: false,
        }],
        "the lowest port is followed"
    );
    assert_eq!(
        ready_port(&run.feed(Event::Ready(G1))),
        Some(5000),
        "the proxy forwards where it listens"
    );

    // The next server is given the chosen port again, and followed again, silently.
    run.change();
    assert!(
        run.build_succeeds().contains(&Effect::Prepare {
            generation: G2,
            executable: None,
            port: Some(PortTurn {
                given: 4123,
                app: None,
                followed: Some(5000),
            }),
        }),
        "seen on :5000 again, it is taken without settling"
    );
    run.prepared(G2);
    run.feed(Event::Stopped(G1));
    run.spawned(G2, 200);
    let effects = run.feed(elsewhere(G2, &[5000], 4123));
    assert!(listens_elsewhere(&effects).is_empty(), "{effects:?}");
    assert_eq!(ready_port(&run.feed(Event::Ready(G2))), Some(5000));

    // A server that moved is news again.
    run.change();
    run.build_succeeds();
    run.prepared(G3);
    run.feed(Event::Stopped(G2));
    run.spawned(G3, 300);
    let effects = run.feed(elsewhere(G3, &[5001], 4123));
    assert_eq!(listens_elsewhere(&effects).len(), 1, "{effects:?}");
}

#[test]
fn with_chosen_ports_and_overlap_a_server_that_ignores_port_turns_overlap_off() {
    let (mut run, _) = Run::new(Policy {
        order: RestartOrder::Overlap,
        ports: Some(Turns {
            app: None,
            ports: [4123, 4124],
        }),
        ..policy()
    });
    assert_eq!(prepared_port(&run.build_succeeds()), Some(4124));
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.feed(elsewhere(G1, &[5000], 4124));
    assert!(
        matches!(
            listens_elsewhere(&effects)[..],
            [Lifecycle::ListensElsewhere {
                followed: Some(5000),
                overlap_off: true,
                ..
            }]
        ),
        "{effects:?}"
    );
    run.feed(Event::Ready(G1));
    run.change();
    run.build_succeeds();
    let effects = run.prepared(G2);
    assert!(
        effects.contains(&Effect::Stop(G1)),
        "two cannot listen on :5000 at once: stop first: {effects:?}"
    );
}

#[test]
fn with_an_app_port_a_server_listening_elsewhere_is_told_at_once_and_still_awaited() {
    let (mut run, _) = Run::new(Policy {
        probed: Some("127.0.0.1:8080".to_owned()),
        ..policy()
    });
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.feed(elsewhere(G1, &[5000], 8080));
    assert_eq!(
        effects,
        vec![Effect::Publish(Lifecycle::ListensElsewhere {
            pid: 100,
            generation: G1,
            ports: vec![5000],
            expected: 8080,
            followed: None,
            overlap_off: false,
        })],
        "said, nothing discarded"
    );
    assert_eq!(
        ready_port(&run.feed(Event::Ready(G1))),
        None,
        "it may still bind the app port"
    );
    assert!(
        run.feed(elsewhere(G1, &[5000], 8080)).is_empty(),
        "a server already ready is not news"
    );

    // Told once, it is not explained again when it is given up on.
    run.change();
    run.build_succeeds();
    run.prepared(G2);
    run.feed(Event::Stopped(G1));
    run.spawned(G2, 200);
    run.feed(elsewhere(G2, &[5000], 8080));
    let effects = run.wait(Duration::from_secs(30));
    assert!(
        failure(&effects)
            .is_some_and(|f| f.why == Failure::NotReadyWithin(Duration::from_secs(30))),
        "{effects:?}"
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::ExplainPorts { .. })),
        "{effects:?}"
    );
}

#[test]
fn a_new_server_that_exits_before_it_is_ready_is_published_with_how_it_ended() {
    let (mut run, _) = Run::new(chosen());
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.feed(Event::Exited {
        generation: G1,
        exit: exit(100, 3, Duration::from_millis(20)),
    });
    assert!(
        published(&effects).iter().any(|event| matches!(
            event,
            Lifecycle::ServerFailed(ServerFailure {
                pid: Some(100),
                why: Failure::Exited {
                    ended: Ended::Code(3),
                    ..
                },
                port: Some(4123),
                ..
            })
        )),
        "{effects:?}"
    );
    let (mut run, _) = Run::new(policy());
    run.build_succeeds();
    run.prepared(G1);
    run.spawned(G1, 100);
    let effects = run.wait(Duration::from_secs(30));
    assert!(
        published(&effects).iter().any(|event| matches!(
            event,
            Lifecycle::ServerFailed(ServerFailure {
                why: Failure::NotReadyWithin(_),
                port: None,
                ..
            })
        )),
        "not ready in time is no exit: {effects:?}"
    );
}
