//! What belongs to reload as a whole, above its services: the [`Orchestrator`] holds every
//! service's machine in a map by [`ServiceName`], hands each [`Input`] of the loop to the
//! services it concerns, and decides what no one service can: the keys (`r` rebuilds every
//! service; `c`, `h` and `q` are reload's), the screen, a request to stop (the first stops
//! every service gracefully, a second kills what is still stopping), and when reload exits
//! (once every service has stopped). Like the machine, it starts no process, reads no clock and
//! awaits nothing: it returns [`Action`]s, which `engine::run` carries out.
//!
//! Invariants:
//! - an event tagged with a service reaches that service's machine and no other;
//! - reload exits once, after every service has stopped, with the code of the first request
//!   to stop.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::Exit;
use crate::lifecycle::ServiceName;
use crate::terminal::Key;

use super::machine::{Effect, Event, Service};

/// A request from the outside to stop: Ctrl-C, SIGTERM or SIGHUP to reload, or the `q` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Interrupt,
    Terminate,
    Hangup,
    Quit,
}

impl Shutdown {
    fn exit(self) -> Exit {
        match self {
            Shutdown::Interrupt => Exit::Signal(nix::libc::SIGINT),
            Shutdown::Terminate => Exit::Signal(nix::libc::SIGTERM),
            Shutdown::Hangup => Exit::Signal(nix::libc::SIGHUP),
            Shutdown::Quit => Exit::Success,
        }
    }
}

/// What the loop hands the orchestrator.
#[derive(Debug)]
pub enum Input {
    /// An event for one service: what its stages reported, or a change routed to it.
    Service(ServiceName, Event),
    Key(Key),
    Shutdown(Shutdown),
    /// A deadline from [`Orchestrator::next_deadline`] has passed.
    Tick,
}

/// What the orchestrator asks of the loop, in order.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Carry out one service's effect, through that service's stages.
    Service(ServiceName, Effect),
    ClearScreen,
    /// Show which keys do what (`h`).
    Help,
    /// A second request to stop: what is still stopping is being killed.
    StoppingNow,
    /// Every service has stopped: reload exits.
    Exit(Exit),
}

/// Every service's machine, and what is reload's own.
#[derive(Debug)]
pub struct Orchestrator {
    services: BTreeMap<ServiceName, Service>,
    /// Set by the first request to stop: the exit code, once every service has stopped.
    exit: Option<Exit>,
    /// [`Action::Exit`] was given: it is given once.
    exited: bool,
}

impl Orchestrator {
    pub fn new(services: BTreeMap<ServiceName, Service>) -> Orchestrator {
        Orchestrator {
            services,
            exit: None,
            exited: false,
        }
    }

    pub fn service(&self, name: &ServiceName) -> Option<&Service> {
        self.services.get(name)
    }

    /// For what changes a service's policy (the configuration read again).
    pub fn service_mut(&mut self, name: &ServiceName) -> Option<&mut Service> {
        self.services.get_mut(name)
    }

    /// Every service's first build (or, without one, its first start).
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        for (name, service) in &mut self.services {
            tag(name, service.start(now), &mut out);
        }
        out
    }

    /// When [`Input::Tick`] is due next, if any service waits for a time.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.services
            .values()
            .filter_map(Service::next_deadline)
            .min()
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Service(name, event) => {
                // A service that is not (or no longer) in the map has nothing to hear.
                if let Some(service) = self.services.get_mut(&name) {
                    tag(&name, service.handle(event, now), &mut out);
                }
            }
            Input::Key(Key::Rebuild) => self.tell_every(|| Event::Rebuild, now, &mut out),
            Input::Key(Key::Clear) => out.push(Action::ClearScreen),
            Input::Key(Key::Help) => out.push(Action::Help),
            Input::Key(Key::Quit) => self.shut_down(Shutdown::Quit, now, &mut out),
            Input::Shutdown(shutdown) => self.shut_down(shutdown, now, &mut out),
            // Each service takes only what is due of its own deadlines.
            Input::Tick => self.tell_every(|| Event::Tick, now, &mut out),
        }
        if let Some(exit) = self.exit
            && !self.exited
            && self.services.values().all(Service::stopped)
        {
            self.exited = true;
            out.push(Action::Exit(exit));
        }
        out
    }

    /// The first request stops every service gracefully; another one while that lasts kills
    /// what is still stopping.
    fn shut_down(&mut self, shutdown: Shutdown, now: Instant, out: &mut Vec<Action>) {
        if self.exit.is_some() {
            out.push(Action::StoppingNow);
            self.tell_every(|| Event::StopNow, now, out);
            return;
        }
        self.exit = Some(shutdown.exit());
        self.tell_every(|| Event::Shutdown, now, out);
    }

    fn tell_every(&mut self, event: impl Fn() -> Event, now: Instant, out: &mut Vec<Action>) {
        for (name, service) in &mut self.services {
            tag(name, service.handle(event(), now), out);
        }
    }
}

/// A service's effects as actions: the screen is reload's, whoever asks to clear it.
fn tag(name: &ServiceName, effects: Vec<Effect>, out: &mut Vec<Action>) {
    out.extend(effects.into_iter().map(|effect| match effect {
        Effect::ClearScreen => Action::ClearScreen,
        effect => Action::Service(name.clone(), effect),
    }));
}

#[cfg(test)]
mod tests;
