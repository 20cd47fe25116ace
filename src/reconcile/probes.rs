//! Readiness and liveness probes, run by the leader with Kubernetes' timing:
//! nothing before `initialDelaySeconds` after the container started, then one
//! try every `periodSeconds`, each allowed `timeoutSeconds`; readiness turns
//! true after `successThreshold` successes in a row and false after
//! `failureThreshold` failures in a row (a container is not ready until its
//! first verdict); liveness asks for a restart after `failureThreshold`
//! failures in a row. A startupProbe holds the other two off: until it has
//! succeeded once for the container's current start, neither readiness nor
//! liveness runs and the container is not ready; `failureThreshold` failures
//! of it in a row ask for a restart, and once it has succeeded it is not run
//! again for that start.
//!
//! [`ProbeTracker`] is the pure bookkeeping, time passed in; the leader's
//! `probe::run_probe` carries out one try through the node seam.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::manifest::model::{Container, PortRef, Probe};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

#[derive(Clone, Debug, Default)]
struct ProbeState {
    /// The container start this state belongs to; a restart starts over.
    started_at: Option<SystemTime>,
    last_run: Option<SystemTime>,
    successes: u32,
    failures: u32,
    ready: Option<bool>,
    /// When `ready` last turned true (readiness), or when the startup probe
    /// succeeded (startup).
    ready_since: Option<SystemTime>,
}

/// What one result changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProbeOutcome {
    Unchanged,
    BecameReady,
    BecameNotReady,
    /// The startup probe succeeded: readiness and liveness may run now.
    Started,
    /// Liveness (or startup) failed `failureThreshold` times in a row.
    RestartNeeded,
}

/// A container's readiness as its probes last said: `ready` is `None` when
/// it has no probe at all, or no verdict yet; `since` is when it turned ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub ready: Option<bool>,
    pub since: Option<SystemTime>,
}

/// Probe state per (container name, kind).
#[derive(Debug, Default)]
pub(crate) struct ProbeTracker {
    states: HashMap<(String, ProbeKind), ProbeState>,
}

impl ProbeTracker {
    /// Whether the probe of `container` (started at `started_at`) should run
    /// at `now`.
    pub(crate) fn is_due(
        &self,
        container: &str,
        kind: ProbeKind,
        probe: &Probe,
        started_at: SystemTime,
        now: SystemTime,
    ) -> bool {
        if now < started_at + Duration::from_secs(u64::from(probe.initial_delay_seconds)) {
            return false;
        }
        match self.states.get(&(container.to_string(), kind)) {
            Some(state) if state.started_at == Some(started_at) => {
                state.last_run.is_none_or(|last| {
                    now >= last + Duration::from_secs(u64::from(probe.period_seconds.max(1)))
                })
            }
            _ => true,
        }
    }

    /// Whether the startup probe of `container`'s start at `started_at`
    /// has succeeded.
    fn started(&self, container: &str, started_at: SystemTime) -> bool {
        self.states
            .get(&(container.to_string(), ProbeKind::Startup))
            .is_some_and(|s| s.started_at == Some(started_at) && s.ready == Some(true))
    }

    /// The probes of `spec` (running as `container`, started at
    /// `started_at`) that should run at `now`: only the startup probe until
    /// it has succeeded, then readiness and liveness.
    pub(crate) fn due<'a>(
        &self,
        container: &str,
        spec: &'a Container,
        started_at: SystemTime,
        now: SystemTime,
    ) -> Vec<(ProbeKind, &'a Probe)> {
        let probes: Vec<(ProbeKind, &Probe)> = match &spec.startup_probe {
            Some(startup) if !self.started(container, started_at) => {
                vec![(ProbeKind::Startup, startup)]
            }
            _ => [
                (ProbeKind::Readiness, &spec.readiness_probe),
                (ProbeKind::Liveness, &spec.liveness_probe),
            ]
            .into_iter()
            .filter_map(|(kind, probe)| probe.as_ref().map(|p| (kind, p)))
            .collect(),
        };
        probes
            .into_iter()
            .filter(|(kind, probe)| self.is_due(container, *kind, probe, started_at, now))
            .collect()
    }

    /// Records one try's result.
    pub(crate) fn record(
        &mut self,
        container: &str,
        kind: ProbeKind,
        probe: &Probe,
        started_at: SystemTime,
        now: SystemTime,
        success: bool,
    ) -> ProbeOutcome {
        let state = self
            .states
            .entry((container.to_string(), kind))
            .or_default();
        if state.started_at != Some(started_at) {
            *state = ProbeState {
                started_at: Some(started_at),
                ..ProbeState::default()
            };
        }
        state.last_run = Some(now);
        if success {
            state.successes += 1;
            state.failures = 0;
        } else {
            state.failures += 1;
            state.successes = 0;
        }
        match kind {
            ProbeKind::Readiness => {
                let verdict = if state.successes >= probe.success_threshold.max(1) {
                    Some(true)
                } else if state.failures >= probe.failure_threshold.max(1) {
                    Some(false)
                } else {
                    state.ready
                };
                let before = state.ready;
                state.ready = verdict;
                if verdict == Some(true) && before != Some(true) {
                    state.ready_since = Some(now);
                }
                match (before, verdict) {
                    (Some(true), Some(true)) | (Some(false), Some(false)) | (_, None) => {
                        ProbeOutcome::Unchanged
                    }
                    (_, Some(true)) => ProbeOutcome::BecameReady,
                    (_, Some(false)) => ProbeOutcome::BecameNotReady,
                }
            }
            ProbeKind::Startup => {
                if success {
                    // successThreshold is 1 for a startup probe, as in Kubernetes.
                    state.ready = Some(true);
                    state.ready_since = Some(now);
                    ProbeOutcome::Started
                } else if state.failures >= probe.failure_threshold.max(1) {
                    state.failures = 0;
                    ProbeOutcome::RestartNeeded
                } else {
                    ProbeOutcome::Unchanged
                }
            }
            ProbeKind::Liveness => {
                if state.failures >= probe.failure_threshold.max(1) {
                    state.failures = 0;
                    ProbeOutcome::RestartNeeded
                } else {
                    ProbeOutcome::Unchanged
                }
            }
        }
    }

    /// The readiness of `container` (declared as `spec`) in its current
    /// start: with a startup probe that has not succeeded, no verdict; then
    /// the readiness probe's verdict; with a startup probe and no readiness
    /// probe, ready from the startup probe's success; with neither, none.
    pub(crate) fn readiness(
        &self,
        container: &str,
        spec: &Container,
        started_at: Option<SystemTime>,
    ) -> Readiness {
        let state = |kind| {
            self.states
                .get(&(container.to_string(), kind))
                .filter(|s| s.started_at.is_some() && s.started_at == started_at)
        };
        if spec.startup_probe.is_some() {
            match state(ProbeKind::Startup) {
                Some(s) if s.ready == Some(true) => {
                    if spec.readiness_probe.is_none() {
                        return Readiness {
                            ready: Some(true),
                            since: s.ready_since,
                        };
                    }
                }
                _ => return Readiness::default(),
            }
        }
        if spec.readiness_probe.is_none() {
            return Readiness::default();
        }
        state(ProbeKind::Readiness).map_or_else(Readiness::default, |s| Readiness {
            ready: s.ready,
            since: s.ready.filter(|r| *r).and(s.ready_since),
        })
    }

    /// Forgets containers that are gone.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.states.retain(|(name, _), _| keep(name));
    }
}

/// The port a probe names, resolved against the container's ports: the
/// container port and, when published, its host port.
pub(crate) fn resolve_port(container: &Container, port: &PortRef) -> Option<(u16, Option<u16>)> {
    match port {
        PortRef::Number(number) => Some((
            *number,
            container
                .ports
                .iter()
                .find(|p| p.container_port == *number)
                .and_then(|p| p.host_port),
        )),
        PortRef::Name(name) => container
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| (p.container_port, p.host_port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{ContainerPort, ProbeHandler};
    use std::time::UNIX_EPOCH;

    fn probe(initial_delay: u32, period: u32, success: u32, failure: u32) -> Probe {
        Probe {
            handler: ProbeHandler::TcpSocket {
                port: PortRef::Number(80),
            },
            initial_delay_seconds: initial_delay,
            period_seconds: period,
            timeout_seconds: 1,
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000 + secs)
    }

    fn with_readiness(probe: &Probe) -> Container {
        Container {
            name: "c".into(),
            readiness_probe: Some(probe.clone()),
            ..Container::default()
        }
    }

    /// Feeds `results` one per period and returns the readiness verdict after each.
    fn readiness(probe: &Probe, results: &[bool]) -> Vec<Option<bool>> {
        let spec = with_readiness(probe);
        let mut tracker = ProbeTracker::default();
        results
            .iter()
            .enumerate()
            .map(|(i, &ok)| {
                let now = at(i as u64 * u64::from(probe.period_seconds));
                tracker.record("c", ProbeKind::Readiness, probe, at(0), now, ok);
                tracker.readiness("c", &spec, Some(at(0))).ready
            })
            .collect()
    }

    #[test]
    fn readiness_thresholds() {
        let p = probe(0, 10, 1, 3);
        assert_eq!(
            readiness(&p, &[false, true, false, false, false, true]),
            [
                None,
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                Some(true)
            ]
        );
        let p = probe(0, 10, 2, 1);
        assert_eq!(
            readiness(&p, &[true, true, false, true, true]),
            [None, Some(true), Some(false), Some(false), Some(true)]
        );
    }

    #[test]
    fn timing_respects_initial_delay_and_period() {
        let p = probe(5, 10, 1, 3);
        let mut tracker = ProbeTracker::default();
        let started = at(0);
        assert!(!tracker.is_due("c", ProbeKind::Readiness, &p, started, at(4)));
        assert!(tracker.is_due("c", ProbeKind::Readiness, &p, started, at(5)));
        tracker.record("c", ProbeKind::Readiness, &p, started, at(5), true);
        assert!(!tracker.is_due("c", ProbeKind::Readiness, &p, started, at(14)));
        assert!(tracker.is_due("c", ProbeKind::Readiness, &p, started, at(15)));
        // A restart (new start time) starts over and forgets the verdict.
        assert_eq!(
            tracker.readiness("c", &with_readiness(&p), Some(at(20))),
            Readiness::default()
        );
        assert!(tracker.is_due("c", ProbeKind::Readiness, &p, at(20), at(25)));
    }

    #[test]
    fn liveness_asks_for_a_restart_after_the_failure_threshold() {
        let p = probe(0, 10, 1, 3);
        let mut tracker = ProbeTracker::default();
        let outcomes: Vec<ProbeOutcome> = [false, false, true, false, false, false, false]
            .iter()
            .enumerate()
            .map(|(i, &ok)| {
                tracker.record("c", ProbeKind::Liveness, &p, at(0), at(i as u64 * 10), ok)
            })
            .collect();
        use ProbeOutcome::*;
        assert_eq!(
            outcomes,
            [
                Unchanged,
                Unchanged,
                Unchanged,
                Unchanged,
                Unchanged,
                RestartNeeded,
                Unchanged
            ]
        );
    }

    #[test]
    fn readiness_remembers_when_it_turned_ready() {
        let p = probe(0, 10, 1, 1);
        let spec = with_readiness(&p);
        let mut tracker = ProbeTracker::default();
        for (secs, ok) in [(0, false), (10, true), (20, true)] {
            tracker.record("c", ProbeKind::Readiness, &p, at(0), at(secs), ok);
        }
        assert_eq!(
            tracker.readiness("c", &spec, Some(at(0))),
            Readiness {
                ready: Some(true),
                since: Some(at(10))
            }
        );
        tracker.record("c", ProbeKind::Readiness, &p, at(0), at(30), false);
        tracker.record("c", ProbeKind::Readiness, &p, at(0), at(40), true);
        assert_eq!(
            tracker.readiness("c", &spec, Some(at(0))).since,
            Some(at(40)),
            "readiness lost and regained counts from the regain"
        );
    }

    fn kinds(due: Vec<(ProbeKind, &Probe)>) -> Vec<ProbeKind> {
        due.into_iter().map(|(kind, _)| kind).collect()
    }

    #[test]
    fn a_startup_probe_holds_readiness_and_liveness_off_until_it_succeeds() {
        let startup = probe(0, 10, 1, 3);
        let spec = Container {
            name: "c".into(),
            startup_probe: Some(startup.clone()),
            readiness_probe: Some(probe(0, 10, 1, 3)),
            liveness_probe: Some(probe(0, 10, 1, 3)),
            ..Container::default()
        };
        let mut tracker = ProbeTracker::default();
        let started = at(0);
        use ProbeKind::*;
        assert_eq!(kinds(tracker.due("c", &spec, started, at(0))), [Startup]);
        assert_eq!(
            tracker.record("c", Startup, &startup, started, at(0), false),
            ProbeOutcome::Unchanged
        );
        assert_eq!(kinds(tracker.due("c", &spec, started, at(10))), [Startup]);
        assert_eq!(
            tracker.readiness("c", &spec, Some(started)).ready,
            None,
            "not ready while starting"
        );
        assert_eq!(
            tracker.record("c", Startup, &startup, started, at(10), true),
            ProbeOutcome::Started
        );
        // Started: never again for this start; the others run.
        assert_eq!(
            kinds(tracker.due("c", &spec, started, at(10))),
            [Readiness, Liveness]
        );
        assert_eq!(
            kinds(tracker.due("c", &spec, started, at(1_000))),
            [Readiness, Liveness]
        );
        assert_eq!(
            tracker.readiness("c", &spec, Some(started)).ready,
            None,
            "with a readiness probe, ready waits for its verdict"
        );
        tracker.record("c", Readiness, &startup, started, at(11), true);
        assert_eq!(
            tracker.readiness("c", &spec, Some(started)).ready,
            Some(true)
        );
        // A restart starts with the startup probe again.
        assert_eq!(kinds(tracker.due("c", &spec, at(50), at(50))), [Startup]);
        assert_eq!(tracker.readiness("c", &spec, Some(at(50))).ready, None);
    }

    #[test]
    fn a_startup_probe_alone_makes_the_container_ready_when_it_succeeds() {
        let startup = probe(0, 5, 1, 3);
        let spec = Container {
            name: "c".into(),
            startup_probe: Some(startup.clone()),
            ..Container::default()
        };
        let mut tracker = ProbeTracker::default();
        tracker.record("c", ProbeKind::Startup, &startup, at(0), at(5), true);
        assert_eq!(
            tracker.readiness("c", &spec, Some(at(0))),
            Readiness {
                ready: Some(true),
                since: Some(at(5))
            }
        );
        assert!(tracker.due("c", &spec, at(0), at(100)).is_empty());
    }

    #[test]
    fn a_startup_probe_restarts_after_its_failure_threshold() {
        let startup = probe(0, 10, 1, 3);
        let mut tracker = ProbeTracker::default();
        let outcomes: Vec<ProbeOutcome> = (0..4)
            .map(|i| tracker.record("c", ProbeKind::Startup, &startup, at(0), at(i * 10), false))
            .collect();
        use ProbeOutcome::*;
        assert_eq!(outcomes, [Unchanged, Unchanged, RestartNeeded, Unchanged]);
    }

    #[test]
    fn named_and_numbered_ports_resolve_to_host_ports() {
        let container = Container {
            name: "web".into(),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                host_port: Some(80),
                host_ip: None,
                protocol: Default::default(),
            }],
            ..Container::default()
        };
        assert_eq!(
            resolve_port(&container, &PortRef::Name("http".into())),
            Some((8080, Some(80)))
        );
        assert_eq!(
            resolve_port(&container, &PortRef::Number(8080)),
            Some((8080, Some(80)))
        );
        assert_eq!(
            resolve_port(&container, &PortRef::Number(9000)),
            Some((9000, None))
        );
        assert_eq!(
            resolve_port(&container, &PortRef::Name("nope".into())),
            None
        );
    }
}
