//! What is global, with two services in the map, fed inputs and the time by hand.

use std::time::Duration;

use super::*;
use crate::build::BuildResult;
use crate::config::{OnBuildFailure, OnExit, RestartOrder};
use crate::engine::machine::Policy;
use crate::lifecycle::{Generation, Lifecycle};

const G1: Generation = Generation(1);

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
        keys: true,
        probed: None,
        ports: None,
    }
}

fn api() -> ServiceName {
    ServiceName::new("api")
}

fn worker() -> ServiceName {
    ServiceName::new("worker")
}

/// An orchestrator of `api` and `worker`, and the time it lives in.
struct Run {
    orchestrator: Orchestrator,
    now: Instant,
}

impl Run {
    /// Both services started: their first builds run.
    fn new(api_policy: Policy, worker_policy: Policy) -> (Run, Vec<Action>) {
        let services = BTreeMap::from([
            (api(), Service::new(api_policy)),
            (worker(), Service::new(worker_policy)),
        ]);
        let mut orchestrator = Orchestrator::new(services);
        let now = Instant::now();
        let actions = orchestrator.start(now);
        (Run { orchestrator, now }, actions)
    }

    fn feed(&mut self, input: Input) -> Vec<Action> {
        self.orchestrator.handle(input, self.now)
    }

    fn to(&mut self, name: ServiceName, event: Event) -> Vec<Action> {
        self.feed(Input::Service(name, event))
    }

    /// Both services' first builds succeed and their generation 1 serves, as `pid` 100 (api)
    /// and 200 (worker).
    fn serving() -> Run {
        let (mut run, _) = Run::new(policy(), policy());
        for (name, pid) in [(api(), 100), (worker(), 200)] {
            run.to(
                name.clone(),
                Event::BuildFinished {
                    result: BuildResult::Succeeded { executable: None },
                    elapsed: Duration::from_millis(100),
                    output: "".into(),
                },
            );
            run.to(
                name.clone(),
                Event::Prepared {
                    generation: G1,
                    result: Ok(()),
                },
            );
            run.to(
                name.clone(),
                Event::Spawned {
                    generation: G1,
                    result: Ok(pid),
                },
            );
            run.to(name, Event::Ready(G1));
        }
        run
    }
}

/// The services the actions are for, in order, one entry per action.
fn whose(actions: &[Action]) -> Vec<ServiceName> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Service(name, _) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn exits(actions: &[Action]) -> Vec<Exit> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Exit(exit) => Some(*exit),
            _ => None,
        })
        .collect()
}

#[test]
fn every_service_starts_with_its_own_build() {
    let (_, actions) = Run::new(policy(), policy());
    for name in [api(), worker()] {
        assert!(
            actions.contains(&Action::Service(name.clone(), Effect::StartBuild)),
            "{name}: {actions:?}"
        );
    }
}

#[test]
fn an_event_tagged_api_never_reaches_worker() {
    let (mut run, _) = Run::new(policy(), policy());
    let actions = run.to(
        api(),
        Event::BuildFinished {
            result: BuildResult::Succeeded { executable: None },
            elapsed: Duration::from_millis(100),
            output: "".into(),
        },
    );
    assert!(!actions.is_empty());
    assert!(
        whose(&actions).iter().all(|name| *name == api()),
        "{actions:?}"
    );
    // The worker still builds: its own build's end is what starts its server.
    let actions = run.to(
        worker(),
        Event::BuildFinished {
            result: BuildResult::Failed {
                how: "exit 1".to_owned(),
                errors: None,
            },
            elapsed: Duration::from_millis(100),
            output: "".into(),
        },
    );
    assert!(
        actions.iter().any(|action| matches!(
            action,
            Action::Service(name, Effect::Publish(Lifecycle::BuildFailed { .. }))
                if *name == worker()
        )),
        "{actions:?}"
    );
    assert!(whose(&actions).iter().all(|name| *name == worker()));
}

#[test]
fn an_event_for_a_service_not_in_the_map_reaches_none() {
    let (mut run, _) = Run::new(policy(), policy());
    assert!(run.to(ServiceName::new("css"), Event::Ready(G1)).is_empty());
}

#[test]
fn the_rebuild_key_reaches_every_service() {
    let mut run = Run::serving();
    let actions = run.feed(Input::Key(Key::Rebuild));
    for name in [api(), worker()] {
        let rebuild = Action::Service(name.clone(), Effect::Publish(Lifecycle::RebuildAsked));
        let build = Action::Service(name.clone(), Effect::StartBuild);
        assert!(actions.contains(&rebuild), "{name}: {actions:?}");
        assert!(actions.contains(&build), "{name}: {actions:?}");
    }
}

#[test]
fn the_help_and_clear_keys_are_reloads_and_reach_no_service() {
    let mut run = Run::serving();
    assert_eq!(run.feed(Input::Key(Key::Help)), vec![Action::Help]);
    assert_eq!(run.feed(Input::Key(Key::Clear)), vec![Action::ClearScreen]);
}

#[test]
fn a_service_that_clears_before_its_build_asks_the_screen_of_reload() {
    let clear = Policy {
        clear: true,
        ..policy()
    };
    let (_, actions) = Run::new(clear, policy());
    assert_eq!(actions.first(), Some(&Action::ClearScreen));
    assert!(!actions.contains(&Action::Service(api(), Effect::ClearScreen)));
}

#[test]
fn exit_waits_for_every_service_to_stop() {
    let mut run = Run::serving();
    let actions = run.feed(Input::Shutdown(Shutdown::Interrupt));
    assert!(actions.contains(&Action::Service(api(), Effect::Stop(G1))));
    assert!(actions.contains(&Action::Service(worker(), Effect::Stop(G1))));
    assert!(exits(&actions).is_empty());
    let actions = run.to(api(), Event::Stopped(G1));
    assert!(exits(&actions).is_empty(), "the worker still stops");
    let actions = run.to(worker(), Event::Stopped(G1));
    assert_eq!(exits(&actions), vec![Exit::Signal(nix::libc::SIGINT)]);
    assert_eq!(
        actions.last(),
        Some(&Action::Exit(Exit::Signal(nix::libc::SIGINT)))
    );
    // Once.
    assert!(exits(&run.feed(Input::Tick)).is_empty());
}

#[test]
fn a_second_request_to_stop_kills_what_still_stops_in_every_service() {
    let mut run = Run::serving();
    run.feed(Input::Shutdown(Shutdown::Terminate));
    run.now += Duration::from_secs(1);
    let actions = run.feed(Input::Key(Key::Quit));
    assert_eq!(actions.first(), Some(&Action::StoppingNow));
    assert!(actions.contains(&Action::Service(api(), Effect::Kill(G1))));
    assert!(actions.contains(&Action::Service(worker(), Effect::Kill(G1))));
    run.to(api(), Event::Stopped(G1));
    let actions = run.to(worker(), Event::Stopped(G1));
    assert_eq!(
        exits(&actions),
        vec![Exit::Signal(nix::libc::SIGTERM)],
        "the first request's code"
    );
}

#[test]
fn quit_with_nothing_running_exits_at_once_with_success() {
    let build_only = || Policy {
        server: false,
        ..policy()
    };
    let (mut run, _) = Run::new(build_only(), build_only());
    let actions = run.feed(Input::Key(Key::Quit));
    assert_eq!(exits(&actions), vec![Exit::Success]);
    assert!(actions.contains(&Action::Service(api(), Effect::CancelBuild)));
    assert!(actions.contains(&Action::Service(worker(), Effect::CancelBuild)));
}

#[test]
fn the_next_deadline_is_the_earliest_of_any_service_and_a_tick_takes_only_whats_due() {
    let (building, _) = Run::new(policy(), policy());
    assert_eq!(building.orchestrator.next_deadline(), None);
    let mut run = Run::serving();
    run.feed(Input::Shutdown(Shutdown::Interrupt));
    assert_eq!(
        run.orchestrator.next_deadline(),
        Some(run.now + Duration::from_secs(5))
    );
    run.now += Duration::from_secs(4);
    assert!(run.feed(Input::Tick).is_empty(), "nothing is due yet");
    run.now += Duration::from_secs(1);
    let actions = run.feed(Input::Tick);
    assert!(actions.contains(&Action::Service(api(), Effect::Kill(G1))));
    assert!(actions.contains(&Action::Service(worker(), Effect::Kill(G1))));
}
