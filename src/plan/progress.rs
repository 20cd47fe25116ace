//! Whether each rollout is progressing, complete or failed: Kubernetes'
//! `progressDeadlineSeconds` (no progress for that long fails the rollout)
//! and, beyond Kubernetes, a crash-looping new revision failing it at once.
//!
//! Pure bookkeeping, time passed in. The leader keeps one [`RolloutTracker`]
//! in memory and feeds it every observation; what it remembers is rebuilt
//! from the containers after a restart (a rollout's start is the start of
//! its oldest new-revision container), so a restarted leader carries on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::cluster::{
    group_replicas, ContainerRole, ContainerState, ObservedCluster, ObservedContainer,
    ReadinessGate, ReplicaState,
};
use crate::manifest::model::{DesiredState, ObjectKey, Strategy};
use crate::manifest::template_hash;
use crate::plan::desired_pods;

/// Restarts of one new-revision container, or new-revision containers
/// failed, after which the revision is crash-looping.
pub(crate) const CRASH_LOOP_THRESHOLD: u32 = 3;

/// What is known of one workload's move to a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rollout {
    pub revision: String,
    /// The branch tip when the rollout was first seen.
    pub commit: String,
    #[serde(skip)]
    pub started: SystemTime,
    #[serde(skip)]
    last_progress: SystemTime,
    /// (new replicas, new replicas ready, old replicas): any change is progress.
    marker: (u32, u32, u32),
    /// New-revision containers seen failed (by Docker id).
    failed_containers: BTreeSet<String>,
    /// What new-revision containers had behind them when the rollout was
    /// first seen (Docker's restart count never resets; a failure from
    /// before is not this rollout's): restart counts, and failed ids.
    restarts_before: BTreeMap<String, u32>,
    failed_before: BTreeSet<String>,
    /// The failed runs of new-revision containers the leader starts again
    /// itself (init containers: Docker's restart count does not see them),
    /// by Docker id: when each ended, and what it is.
    failed_runs: BTreeMap<String, (BTreeSet<SystemTime>, String)>,
    pub state: RolloutState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub(crate) enum RolloutState {
    Progressing,
    Complete,
    Failed(Failure),
}

/// Why a rollout failed, for the revert commit, the note and the status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// One line: `Deployment default/web: progress deadline of 60s exceeded`.
    pub reason: String,
    /// One line per new-revision replica that is not ready.
    pub replicas: Vec<String>,
    /// (node, Docker container name) of containers worth showing logs of.
    pub failing: Vec<(String, String)>,
}

/// What changed with one observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutEvent {
    Started {
        key: ObjectKey,
        revision: String,
    },
    Completed {
        key: ObjectKey,
        revision: String,
        duration: Duration,
    },
    Failed {
        key: ObjectKey,
        revision: String,
        commit: String,
        failure: Failure,
    },
}

/// Every workload's current rollout.
#[derive(Clone, Debug, Default)]
pub(crate) struct RolloutTracker {
    rollouts: BTreeMap<ObjectKey, Rollout>,
    /// Workloads observed at least once by this tracker: at the first
    /// observation (a leader just started) a rollout may already be past
    /// the removal of its old replicas.
    known: BTreeSet<ObjectKey>,
}

impl RolloutTracker {
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Rollout> {
        self.rollouts.get(key)
    }

    /// Workloads whose current revision failed to roll out: the planner
    /// holds them where they are (the old revision keeps serving).
    pub(crate) fn failed(&self) -> impl Iterator<Item = (&ObjectKey, &Rollout)> {
        self.rollouts
            .iter()
            .filter(|(_, r)| matches!(r.state, RolloutState::Failed(_)))
    }

    /// Marks the rollout of `key` to `revision` failed without watching it
    /// (a failure recorded before a restart, in the commit's note).
    pub(crate) fn mark_failed(
        &mut self,
        key: ObjectKey,
        revision: &str,
        commit: &str,
        failure: Failure,
        now: SystemTime,
    ) {
        self.rollouts.insert(
            key,
            Rollout {
                revision: revision.to_string(),
                commit: commit.to_string(),
                started: now,
                last_progress: now,
                marker: (0, 0, 0),
                failed_containers: BTreeSet::new(),
                restarts_before: BTreeMap::new(),
                failed_before: BTreeSet::new(),
                failed_runs: BTreeMap::new(),
                state: RolloutState::Failed(failure),
            },
        );
    }

    /// Brings every workload's rollout up to date with `observed` at `now`.
    pub(crate) fn observe(
        &mut self,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        now: SystemTime,
    ) -> Vec<RolloutEvent> {
        let replicas = group_replicas(observed);
        let mut events = Vec::new();
        let declared: BTreeSet<ObjectKey> = desired.workloads.iter().map(|w| w.key()).collect();
        self.rollouts.retain(|key, _| declared.contains(key));
        self.known.retain(|key| declared.contains(key));

        for d in &desired.workloads {
            let key = d.key();
            // Old pods of an `OnDelete` workload stay until removed by hand:
            // nothing rolls out, so nothing can fail to.
            if d.spec.strategy == Strategy::OnDelete {
                self.rollouts.remove(&key);
                continue;
            }
            // Pods that run to completion are a run, not a rollout: a
            // failed one is a failed run (recorded in its note), never a
            // reason to revert.
            if d.spec.pods.completes() {
                self.rollouts.remove(&key);
                continue;
            }
            let revision = template_hash(&d.spec.template);
            let gate = ReadinessGate {
                template: &d.spec.template,
                min_ready_seconds: d.spec.min_ready_seconds,
            };
            // A StatefulSet's ordinals below its partition keep their
            // revision: the rollout is about the others.
            let partition = d.spec.stateful.as_ref().map_or(0, |s| s.partition);
            let mine = replicas.iter().filter(|r| {
                r.key.kind == key.kind
                    && r.key.namespace == key.namespace
                    && r.key.name == key.name
                    && r.key.slot >= partition
            });
            let (mut new, mut ready, mut old) = (0u32, 0u32, 0u32);
            // New-revision replicas on reachable nodes that are not available.
            let mut unavailable = 0u32;
            let mut oldest_new_start: Option<SystemTime> = None;
            let mut not_ready = Vec::new();
            let mut failing = Vec::new();
            let mut failed_now = Vec::new();
            // (container id, when it ended, what it is): failed init runs.
            let mut failed_runs_now: Vec<(String, Option<SystemTime>, String)> = Vec::new();
            // (container id, restarts, what it is), new revision only.
            let mut restarts: Vec<(String, u32, String)> = Vec::new();
            for r in mine {
                if r.key.template_hash != revision {
                    if r.node_reachable {
                        old += 1;
                    }
                    continue;
                }
                let state = r.state(Some(gate), now);
                if matches!(state, ReplicaState::Unknown | ReplicaState::Terminating) {
                    continue;
                }
                for c in &r.containers {
                    if let Some(started) = c.started_at {
                        oldest_new_start =
                            Some(oldest_new_start.map_or(started, |o| o.min(started)));
                    }
                    let exited_badly = matches!(c.state, ContainerState::Exited { code } if code != 0)
                        || matches!(c.state, ContainerState::Dead);
                    if exited_badly {
                        failed_now.push(c.id.clone());
                        if c.labels.role == ContainerRole::Init {
                            failed_runs_now.push((
                                c.id.clone(),
                                c.finished_at,
                                format!(
                                    "init container {} of replica {} on {}",
                                    c.labels.container, r.key.slot, r.node
                                ),
                            ));
                        }
                    }
                    restarts.push((
                        c.id.clone(),
                        c.restart_count,
                        format!(
                            "container {} of replica {} on {}",
                            c.labels.container, r.key.slot, r.node
                        ),
                    ));
                }
                if state != ReplicaState::Failed {
                    new += 1;
                }
                if state == ReplicaState::Ready {
                    ready += 1;
                    continue;
                }
                unavailable += 1;
                let described: Vec<String> = r
                    .containers
                    .iter()
                    .map(|c| {
                        let restarts = if c.restart_count > 0 {
                            format!(", restarted {} times", c.restart_count)
                        } else {
                            String::new()
                        };
                        // A sandbox has no readiness, a container that
                        // passes its own gate is ready: only the others
                        // are "not ready yet".
                        let ready = c.labels.role == ContainerRole::Sandbox
                            || crate::cluster::replica::container_ready(
                                c,
                                d.spec
                                    .template
                                    .spec
                                    .all_containers()
                                    .find(|declared| declared.name == c.labels.container),
                            );
                        let state = match (c.state, ready) {
                            (ContainerState::Running, true) => "running".to_string(),
                            (state, _) => describe(state, c.probe_ready),
                        };
                        format!("container {} {state}{restarts}", c.labels.container)
                    })
                    .collect();
                let init = r
                    .init_progress(&d.spec.template.spec)
                    .text(d.spec.template.spec.restart_policy)
                    .map_or(String::new(), |text| format!("{text}: "));
                not_ready.push(format!(
                    "replica {} on {}: {init}{}",
                    r.key.slot,
                    r.node,
                    described.join("; ")
                ));
                // The evidence: a container that failed (a failing init
                // container first), else one not running or restarted; an
                // init container that completed or a running sandbox is no
                // suspect.
                let suspects: Vec<&&ObservedContainer> = r
                    .containers
                    .iter()
                    .filter(|c| {
                        !matches!(
                            (c.labels.role, c.state),
                            (ContainerRole::Init, ContainerState::Exited { code: 0 })
                                | (ContainerRole::Sandbox, ContainerState::Running)
                        )
                    })
                    .collect();
                let failed = suspects.iter().find(|c| {
                    matches!(c.state, ContainerState::Exited { code } if code != 0)
                        || c.state == ContainerState::Dead
                });
                if let Some(c) = failed.or_else(|| {
                    suspects
                        .iter()
                        .find(|c| c.state != ContainerState::Running || c.restart_count > 0)
                }) {
                    failing.push((r.node.to_string(), c.name.clone()));
                } else if let Some(c) = r.containers.first() {
                    failing.push((r.node.to_string(), c.name.clone()));
                }
            }
            let want = match d.spec.pods {
                crate::manifest::model::PodSet::Ordinals { replicas, start } => {
                    (start..start.saturating_add(replicas))
                        .filter(|o| *o >= partition)
                        .count() as u32
                }
                _ => desired_pods(d, desired, observed, now),
            };
            let complete = ready >= want && new == want && old == 0;
            let marker = (new, ready, old);

            let current = self
                .rollouts
                .get_mut(&key)
                .filter(|r| r.revision == revision);
            let first_sight = self.known.insert(key.clone());
            let rollout = match current {
                Some(rollout) => rollout,
                None => {
                    // Only a change of revision is a rollout: replicas of
                    // another revision are still there. (A scale-up, or
                    // replicas lost with a node, is not watched here.) At
                    // the first sight of a workload (a restarted leader),
                    // a new revision whose replicas are not all available
                    // is one even with no old replica left: the leader may
                    // have stopped after the last old replica went, or
                    // between Recreate's removal and the new replicas
                    // becoming ready.
                    let rollout_seen = old > 0 || (first_sight && unavailable > 0);
                    if complete || !rollout_seen {
                        self.rollouts.remove(&key);
                        continue;
                    }
                    // A rollout seen for the first time (or after a leader
                    // restart): its duration counts from its first new
                    // container, its progress deadline from now.
                    let started = oldest_new_start.filter(|s| *s <= now).unwrap_or(now);
                    events.push(RolloutEvent::Started {
                        key: key.clone(),
                        revision: revision.clone(),
                    });
                    self.rollouts.insert(
                        key.clone(),
                        Rollout {
                            revision: revision.clone(),
                            commit: commit.to_string(),
                            started,
                            last_progress: now,
                            marker,
                            failed_containers: BTreeSet::new(),
                            restarts_before: restarts
                                .iter()
                                .map(|(id, count, _)| (id.clone(), *count))
                                .collect(),
                            failed_before: failed_now.iter().cloned().collect(),
                            failed_runs: BTreeMap::new(),
                            state: RolloutState::Progressing,
                        },
                    );
                    self.rollouts.get_mut(&key).expect("just inserted")
                }
            };
            if rollout.state != RolloutState::Progressing {
                continue;
            }
            if rollout.marker != marker {
                rollout.marker = marker;
                rollout.last_progress = now;
            }
            rollout.failed_containers.extend(
                failed_now
                    .into_iter()
                    .filter(|id| !rollout.failed_before.contains(id)),
            );
            for (id, finished, what) in failed_runs_now {
                if let Some(finished) = finished {
                    let runs = rollout
                        .failed_runs
                        .entry(id)
                        .or_insert_with(|| (BTreeSet::new(), what));
                    runs.0.insert(finished);
                }
            }
            let init_loop = rollout.failed_runs.values().find_map(|(runs, what)| {
                (runs.len() as u32 >= CRASH_LOOP_THRESHOLD)
                    .then(|| format!("{what} failed {} times", runs.len()))
            });
            let crash_loop = restarts.iter().find_map(|(id, count, what)| {
                let since = count
                    - rollout
                        .restarts_before
                        .get(id)
                        .copied()
                        .unwrap_or(0)
                        .min(*count);
                (since >= CRASH_LOOP_THRESHOLD).then(|| format!("{what} restarted {since} times"))
            });
            let crash_loop = crash_loop.or(init_loop);
            if complete {
                rollout.state = RolloutState::Complete;
                events.push(RolloutEvent::Completed {
                    key: key.clone(),
                    revision: revision.clone(),
                    duration: now.duration_since(rollout.started).unwrap_or_default(),
                });
                continue;
            }
            let deadline = Duration::from_secs(u64::from(d.spec.progress_deadline_seconds));
            let reason = if let Some(crash) = crash_loop {
                Some(format!(
                    "{key}: new revision {revision} is crash-looping: {crash}"
                ))
            } else if rollout.failed_containers.len() as u32 >= CRASH_LOOP_THRESHOLD {
                Some(format!(
                    "{key}: new revision {revision} is crash-looping: {} of its containers exited with an error",
                    rollout.failed_containers.len()
                ))
            } else if !d.spec.paused
                && now
                    .duration_since(rollout.last_progress)
                    .unwrap_or_default()
                    > deadline
            {
                Some(format!(
                    "{key}: progress deadline of {}s exceeded ({ready}/{want} new replicas ready)",
                    deadline.as_secs()
                ))
            } else {
                None
            };
            if let Some(reason) = reason {
                failing.truncate(3);
                let failure = Failure {
                    reason,
                    replicas: not_ready,
                    failing,
                };
                rollout.state = RolloutState::Failed(failure.clone());
                events.push(RolloutEvent::Failed {
                    key: key.clone(),
                    revision: revision.clone(),
                    commit: rollout.commit.clone(),
                    failure,
                });
            }
        }
        events
    }
}

fn describe(state: ContainerState, probe_ready: Option<bool>) -> String {
    match state {
        ContainerState::Running => match probe_ready {
            Some(false) => "running, readiness probe failing".into(),
            _ => "running, not ready yet".into(),
        },
        ContainerState::Exited { code } => format!("exited with code {code}"),
        ContainerState::Created => "created, not started".into(),
        ContainerState::Restarting => "restarting".into(),
        ContainerState::Paused => "paused".into(),
        ContainerState::Removing => "being removed".into(),
        ContainerState::Dead => "dead".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ManagedLabels, ObservedContainer, ObservedNode, Reachability};
    use crate::manifest::model::Kind;
    use crate::manifest::SourceFile;

    const T0: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + seconds)
    }

    fn desired(image: &str) -> DesiredState {
        let text = format!(
            "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {{name: n1}}\nspec: {{address: 10.0.0.1}}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  \
             progressDeadlineSeconds: 60\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - {{name: app, image: {image}}}\n"
        );
        let loaded = crate::manifest::load(&[SourceFile {
            path: "web.yaml".into(),
            text,
            excluded: Vec::new(),
        }]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.state
    }

    fn container(
        d: &DesiredState,
        slot: u32,
        state: ContainerState,
        restarts: u32,
        started: u64,
    ) -> ObservedContainer {
        let hash = template_hash(&d.workloads[0].spec.template);
        ObservedContainer {
            id: format!("id-{hash}-{slot}-{restarts}"),
            name: format!("web-{slot}-{hash}"),
            labels: ManagedLabels {
                namespace: "default".into(),
                kind: Kind::Deployment,
                name: "web".into(),
                slot,
                template_hash: hash,
                commit: "c".repeat(40),
                node: "n1".into(),
                container: "app".into(),
                role: Default::default(),
            },
            state,
            health: None,
            restart_count: restarts,
            started_at: Some(at(started)),
            finished_at: None,
            image: String::new(),
            ports: Vec::new(),
            probe_ready: None,
            address: None,
            ready_since: None,
            hooks: Default::default(),
        }
    }

    fn cluster(containers: Vec<ObservedContainer>) -> ObservedCluster {
        let mut c = ObservedCluster::default();
        c.nodes.insert(
            "n1".into(),
            ObservedNode {
                name: "n1".into(),
                reachability: Reachability::Reachable,
                facts: None,
                containers,
                volumes: Vec::new(),
            },
        );
        c
    }

    #[test]
    fn a_converged_deployment_has_no_rollout() {
        let v1 = desired("img:1");
        let observed = cluster(vec![
            container(&v1, 0, ContainerState::Running, 0, 0),
            container(&v1, 1, ContainerState::Running, 0, 0),
        ]);
        let mut tracker = RolloutTracker::default();
        assert!(tracker.observe(&v1, "c1", &observed, at(100)).is_empty());
        assert!(tracker.get(&v1.workloads[0].key()).is_none());
    }

    #[test]
    fn completes_when_every_new_replica_is_ready_and_the_old_are_gone() {
        let (v1, v2) = (desired("img:1"), desired("img:2"));
        let mut tracker = RolloutTracker::default();
        let halfway = cluster(vec![
            container(&v1, 0, ContainerState::Running, 0, 0),
            container(&v2, 0, ContainerState::Running, 0, 10),
        ]);
        let events = tracker.observe(&v2, "c2", &halfway, at(10));
        assert!(
            matches!(events[..], [RolloutEvent::Started { .. }]),
            "{events:?}"
        );
        let done = cluster(vec![
            container(&v2, 0, ContainerState::Running, 0, 10),
            container(&v2, 1, ContainerState::Running, 0, 12),
        ]);
        let events = tracker.observe(&v2, "c2", &done, at(15));
        match &events[..] {
            [RolloutEvent::Completed { duration, .. }] => {
                assert_eq!(*duration, Duration::from_secs(5))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_progress_for_the_deadline_fails_the_rollout_and_progress_resets_it() {
        let (v1, v2) = (desired("img:1"), desired("img:2"));
        let key = v2.workloads[0].key();
        let mut tracker = RolloutTracker::default();
        // One new replica that never becomes ready (created, not started).
        let stuck = cluster(vec![
            container(&v1, 0, ContainerState::Running, 0, 0),
            container(&v1, 1, ContainerState::Running, 0, 0),
            container(&v2, 0, ContainerState::Created, 0, 100),
        ]);
        tracker.observe(&v2, "c2", &stuck, at(100));
        assert!(tracker.observe(&v2, "c2", &stuck, at(150)).is_empty());
        // Progress at 150 (the old replica count changed) resets the clock.
        let progressed = cluster(vec![
            container(&v1, 0, ContainerState::Running, 0, 0),
            container(&v2, 0, ContainerState::Created, 0, 100),
        ]);
        assert!(tracker.observe(&v2, "c2", &progressed, at(155)).is_empty());
        assert!(tracker.observe(&v2, "c2", &progressed, at(215)).is_empty());
        let events = tracker.observe(&v2, "c2", &progressed, at(216));
        match &events[..] {
            [RolloutEvent::Failed {
                failure, commit, ..
            }] => {
                assert_eq!(commit, "c2");
                assert_eq!(
                    failure.reason,
                    "Deployment default/web: progress deadline of 60s exceeded (0/2 new replicas ready)"
                );
                assert_eq!(
                    failure.replicas,
                    ["replica 0 on n1: container app created, not started"]
                );
                assert_eq!(failure.failing.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tracker.failed().count(), 1);
        // Failed stays failed: no second event.
        assert!(tracker.observe(&v2, "c2", &progressed, at(300)).is_empty());
        // A new revision starts a new rollout.
        let v3 = desired("img:3");
        let events = tracker.observe(&v3, "c3", &progressed, at(301));
        assert!(matches!(events[..], [RolloutEvent::Started { .. }]));
        assert_eq!(tracker.get(&key).unwrap().state, RolloutState::Progressing);
    }

    /// Issue 16: an init container the leader starts again after each
    /// failure (Docker's restart count never moves) crash-loops after 3
    /// failed runs; the evidence is that container, the replica says
    /// `Init:CrashLoopBackOff`.
    #[test]
    fn a_failing_init_container_is_a_crash_loop_with_its_evidence() {
        let v1 = desired("img:1");
        let mut v2 = desired("img:2");
        v2.workloads[0].spec.template.spec.init_containers =
            vec![crate::manifest::model::Container {
                name: "setup".into(),
                image: "img:2".into(),
                ..Default::default()
            }];
        let hash = template_hash(&v2.workloads[0].spec.template);
        let member = |name: &str, role: ContainerRole, state: ContainerState| {
            let mut c = container(&v2, 0, state, 0, 100);
            c.labels.container = name.into();
            c.labels.role = role;
            c.id = format!("id-{name}");
            c.name = format!("web-0-{hash}-{name}");
            c
        };
        let observation = |finished: Option<u64>| {
            let mut setup = member(
                "setup",
                ContainerRole::Init,
                match finished {
                    Some(_) => ContainerState::Exited { code: 1 },
                    None => ContainerState::Running,
                },
            );
            setup.finished_at = finished.map(at);
            cluster(vec![
                container(&v1, 0, ContainerState::Running, 0, 0),
                container(&v1, 1, ContainerState::Running, 0, 0),
                member("_sandbox", ContainerRole::Sandbox, ContainerState::Running),
                setup,
                member("app", ContainerRole::App, ContainerState::Created),
            ])
        };
        let mut tracker = RolloutTracker::default();
        tracker.observe(&v2, "c2", &observation(None), at(100));
        for (finished, now) in [(110, 111), (110, 115), (130, 131)] {
            let events = tracker.observe(&v2, "c2", &observation(Some(finished)), at(now));
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, RolloutEvent::Failed { .. })),
                "two failed runs are no crash loop yet: {events:?}"
            );
        }
        let events = tracker.observe(&v2, "c2", &observation(Some(160)), at(161));
        match &events[..] {
            [RolloutEvent::Failed { failure, .. }] => {
                assert!(
                    failure
                        .reason
                        .contains("init container setup of replica 0 on n1 failed 3 times"),
                    "{}",
                    failure.reason
                );
                assert_eq!(
                    failure.failing,
                    [("n1".to_string(), format!("web-0-{hash}-setup"))]
                );
                assert!(
                    failure.replicas[0].contains("Init:CrashLoopBackOff"),
                    "{:?}",
                    failure.replicas
                );
                // Regression (review of issue 16): the running sandbox was
                // described as "running, not ready yet".
                assert!(
                    failure.replicas[0].contains("container _sandbox running;"),
                    "{:?}",
                    failure.replicas
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_crash_looping_new_revision_fails_at_once() {
        let (v1, v2) = (desired("img:1"), desired("img:2"));
        let mut tracker = RolloutTracker::default();
        let old = || {
            vec![
                container(&v1, 0, ContainerState::Running, 0, 0),
                container(&v1, 1, ContainerState::Running, 0, 0),
            ]
        };
        let mut first = old();
        first.push(container(&v2, 0, ContainerState::Running, 0, 100));
        let events = tracker.observe(&v2, "c2", &cluster(first), at(100));
        assert!(
            matches!(events[..], [RolloutEvent::Started { .. }]),
            "{events:?}"
        );
        let mut looping = old();
        let mut c = container(&v2, 0, ContainerState::Exited { code: 1 }, 3, 100);
        c.id = "id-looping".into();
        looping.push(c.clone());
        // The same container as before (same id) with 3 restarts since.
        let mut first_again = old();
        let mut c0 = c.clone();
        c0.restart_count = 0;
        c0.state = ContainerState::Running;
        first_again.push(c0);
        let mut tracker = RolloutTracker::default();
        tracker.observe(&v2, "c2", &cluster(first_again), at(100));
        let events = tracker.observe(&v2, "c2", &cluster(looping), at(101));
        match &events[..] {
            [RolloutEvent::Failed { failure, .. }] => {
                assert!(
                    failure.reason.contains("crash-looping"),
                    "{}",
                    failure.reason
                );
                assert!(
                    failure.reason.contains("restarted 3 times"),
                    "{}",
                    failure.reason
                );
                assert!(failure.replicas[0].contains("exited with code 1, restarted 3 times"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn restarts_from_before_the_rollout_do_not_count() {
        let (v1, v2) = (desired("img:1"), desired("img:2"));
        let mut tracker = RolloutTracker::default();
        // Seen first with 5 restarts behind it (a restarted leader, say).
        let observed = cluster(vec![
            container(&v1, 0, ContainerState::Running, 0, 0),
            container(&v2, 0, ContainerState::Running, 5, 100),
        ]);
        let events = tracker.observe(&v2, "c2", &observed, at(100));
        assert!(
            matches!(events[..], [RolloutEvent::Started { .. }]),
            "{events:?}"
        );
        assert!(tracker.observe(&v2, "c2", &observed, at(101)).is_empty());
    }

    #[test]
    fn scaling_or_losing_replicas_without_a_new_revision_is_not_a_rollout() {
        let v1 = desired("img:1");
        let mut tracker = RolloutTracker::default();
        // 1 of 2 replicas, a day after it started: no rollout to fail.
        let observed = cluster(vec![container(&v1, 0, ContainerState::Running, 7, 0)]);
        assert!(tracker.observe(&v1, "c1", &observed, at(86_400)).is_empty());
        assert!(tracker.observe(&v1, "c1", &observed, at(90_000)).is_empty());
        assert!(tracker.get(&v1.workloads[0].key()).is_none());
    }

    #[test]
    fn a_restarted_leader_tracks_a_rollout_past_its_old_replicas() {
        let v2 = desired("img:2");
        // Recreate (or the last rolling step) removed every old replica,
        // then the leader restarted: the new ones are not ready yet.
        let starting = cluster(vec![
            container(&v2, 0, ContainerState::Running, 0, 100),
            container(&v2, 1, ContainerState::Created, 0, 100),
        ]);
        let mut tracker = RolloutTracker::default();
        let events = tracker.observe(&v2, "c2", &starting, at(110));
        assert!(
            matches!(events[..], [RolloutEvent::Started { .. }]),
            "{events:?}"
        );
        // Its deadline runs, and it fails like any other.
        let events = tracker.observe(&v2, "c2", &starting, at(171));
        assert!(
            matches!(events[..], [RolloutEvent::Failed { .. }]),
            "{events:?}"
        );

        // One that does become ready completes, with its duration from its
        // first new container.
        let mut tracker = RolloutTracker::default();
        tracker.observe(&v2, "c2", &starting, at(110));
        let done = cluster(vec![
            container(&v2, 0, ContainerState::Running, 0, 100),
            container(&v2, 1, ContainerState::Running, 0, 100),
        ]);
        match &tracker.observe(&v2, "c2", &done, at(120))[..] {
            [RolloutEvent::Completed { duration, .. }] => {
                assert_eq!(*duration, Duration::from_secs(20))
            }
            other => panic!("{other:?}"),
        }

        // Later in the same leader's life, a replica of the same revision
        // that is not ready (a scale-up, a restart) is no rollout.
        let events = tracker.observe(&v2, "c2", &starting, at(130));
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn replaced_failures_count_towards_a_crash_loop() {
        let (v1, v2) = (desired("img:1"), desired("img:2"));
        let mut tracker = RolloutTracker::default();
        // The rollout is seen before any new container failed.
        let start = cluster(vec![container(&v1, 0, ContainerState::Running, 0, 0)]);
        tracker.observe(&v2, "c2", &start, at(99));
        for (i, slot) in [0u32, 1, 2].into_iter().enumerate() {
            let observed = cluster(vec![
                container(&v1, 0, ContainerState::Running, 0, 0),
                container(&v2, slot, ContainerState::Exited { code: 2 }, 0, 100),
            ]);
            let events = tracker.observe(&v2, "c2", &observed, at(100 + i as u64));
            let failed = events
                .iter()
                .any(|e| matches!(e, RolloutEvent::Failed { .. }));
            assert_eq!(failed, i == 2, "after {} failures: {events:?}", i + 1);
        }
    }

    #[test]
    fn a_restarted_leader_gives_a_rollout_its_whole_deadline_again() {
        let (v1, v2) = (desired("img:1"), desired("img:2"));
        let mut tracker = RolloutTracker::default();
        let stuck = cluster(vec![
            container(&v1, 0, ContainerState::Running, 0, 0),
            container(&v1, 1, ContainerState::Running, 0, 0),
            container(&v2, 0, ContainerState::Created, 0, 100),
        ]);
        // Seen first at 170 though started at 100: late only from 231.
        let events = tracker.observe(&v2, "c2", &stuck, at(170));
        assert!(
            matches!(events[..], [RolloutEvent::Started { .. }]),
            "{events:?}"
        );
        assert!(tracker.observe(&v2, "c2", &stuck, at(230)).is_empty());
        let events = tracker.observe(&v2, "c2", &stuck, at(231));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, RolloutEvent::Failed { .. })),
            "{events:?}"
        );
    }
}
