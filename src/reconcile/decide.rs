//! The reconciler's decisions, as pure functions of data: which rollouts to
//! hold, whether a failed one is reverted and how, what a rollout note
//! says, which images are old enough to remove. The leader gathers the
//! inputs (the observation, history read from Git) and carries the answers
//! out; the same inputs always give the same answer.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::cluster::{
    group_replicas, ContainerState, ObservedCluster, ReadinessGate, ReplicaState,
};
use crate::manifest::model::{DesiredState, ObjectKey, Workload};
use crate::manifest::template_hash;
use crate::plan::desired_pods;
use crate::plan::progress::{RolloutEvent, RolloutTracker};

use super::backoff::{BackoffVerdict, RestartBackoff};
use super::record::{ObjectOutcome, Outcome, RolloutRecord};
use super::time::format_rfc3339;

/// A workload annotation: `"false"` keeps a failed rollout held where it
/// is instead of reverting the commit that introduced it.
pub const AUTO_ROLLBACK_ANNOTATION: &str = "flotilla.dev/auto-rollback";

/// The trailer of the leader's own revert commits; a revision that came
/// from one is never reverted again.
pub const AUTO_REVERT_TRAILER: &str = "Flotilla-Rollback: automatic";

/// What one observation decides about rollouts.
#[derive(Debug)]
pub(crate) struct RolloutDecision {
    /// Rollouts seen to start, complete or fail.
    pub events: Vec<RolloutEvent>,
    /// The desired state to plan with, when a failed rollout is held where
    /// it is (its workload paused, so the old revision keeps serving).
    pub hold: Option<DesiredState>,
}

/// Brings the rollouts up to date with `observed` and says what to plan with.
pub(crate) fn observe_rollouts(
    tracker: &mut RolloutTracker,
    desired: &DesiredState,
    commit: &str,
    observed: &ObservedCluster,
    now: SystemTime,
) -> RolloutDecision {
    let events = tracker.observe(desired, commit, observed, now);
    RolloutDecision {
        events,
        hold: held_for_failures(desired, tracker),
    }
}

/// `desired` with every workload whose rollout failed paused, or `None`
/// when none did.
pub(crate) fn held_for_failures(
    desired: &DesiredState,
    tracker: &RolloutTracker,
) -> Option<DesiredState> {
    let failed: BTreeSet<&ObjectKey> = tracker.failed().map(|(key, _)| key).collect();
    if failed.is_empty() {
        return None;
    }
    let mut held = desired.clone();
    for w in &mut held.workloads {
        if failed.contains(&w.key()) {
            w.spec.paused = true;
        }
    }
    Some(held)
}

/// Whether a failed rollout of `key` is reverted: unless its workload says
/// `flotilla.dev/auto-rollback: "false"` (a workload no longer declared is).
pub(crate) fn auto_rollback(desired: &DesiredState, key: &ObjectKey) -> bool {
    desired.workload(key).is_none_or(|w| {
        w.meta
            .annotations
            .get(AUTO_ROLLBACK_ANNOTATION)
            .map(String::as_str)
            != Some("false")
    })
}

/// What becomes of a failed rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RevertDecision {
    /// Write a revert of the introducing commit.
    Revert,
    /// Another workload of the same commit failed first: its revert stands
    /// for this one too.
    Reverted(String),
    /// Hold the rollout where it is, and say why.
    Hold(&'static str),
}

/// The facts a revert decision rests on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FailureFacts<'a> {
    /// The workload allows an automatic rollback ([`auto_rollback`]).
    pub auto: bool,
    /// The commit that introduced the failed revision, when history tells.
    pub introduced_by: Option<&'a str>,
    /// That commit's message.
    pub message: &'a str,
    /// A revert this leader already wrote of that commit.
    pub already_reverted: Option<&'a str>,
}

/// Reverts only what it can name for sure, never its own revert, once per
/// commit.
pub(crate) fn revert_decision(facts: FailureFacts<'_>) -> RevertDecision {
    if !facts.auto {
        RevertDecision::Hold("auto-rollback is off for this workload")
    } else if facts.introduced_by.is_none() {
        RevertDecision::Hold("cannot tell which commit introduced the failed revision")
    } else if facts.message.contains(AUTO_REVERT_TRAILER) {
        RevertDecision::Hold("the failed revision comes from an automatic revert")
    } else if let Some(done) = facts.already_reverted {
        RevertDecision::Reverted(done.to_string())
    } else {
        RevertDecision::Revert
    }
}

/// Whether `records` (a commit's note) already hold the failure of
/// `revision` of `key`; the last such record.
pub(crate) fn recorded_failure<'r>(
    records: &'r [RolloutRecord],
    key: &ObjectKey,
    revision: &str,
) -> Option<&'r RolloutRecord> {
    records.iter().rev().find(|r| {
        r.outcome == Outcome::Failed
            && r.objects.iter().any(|o| {
                o.outcome == Outcome::Failed
                    && o.revision == revision
                    && o.kind == key.kind.as_str()
                    && o.namespace == key.namespace
                    && o.name == key.name
            })
    })
}

/// One workload's line in a rollout note: its revision, ready pods and
/// where they run.
pub(crate) fn object_outcome(
    w: &Workload,
    desired: &DesiredState,
    outcome: Outcome,
    observed: &ObservedCluster,
    now: SystemTime,
) -> ObjectOutcome {
    let key = w.key();
    let revision = template_hash(&w.spec.template);
    let gate = ReadinessGate {
        template: &w.spec.template,
        min_ready_seconds: w.spec.min_ready_seconds,
    };
    let mut per_node: std::collections::BTreeMap<String, u32> = Default::default();
    let mut ready = 0;
    for r in group_replicas(observed) {
        if r.key.kind != key.kind
            || r.key.namespace != key.namespace
            || r.key.name != key.name
            || r.key.template_hash != revision
        {
            continue;
        }
        *per_node.entry(r.node.to_string()).or_default() += 1;
        if r.state(Some(gate), now) == ReplicaState::Ready {
            ready += 1;
        }
    }
    ObjectOutcome {
        kind: key.kind.as_str().to_string(),
        namespace: key.namespace,
        name: key.name,
        outcome,
        revision,
        ready,
        desired: desired_pods(w, desired, observed, now),
        per_node: per_node.into_iter().collect(),
    }
}

/// The note of a failed rollout of `key`.
pub(crate) fn failure_record(
    desired: &DesiredState,
    key: &ObjectKey,
    evidence: &str,
    reverted_by: Option<String>,
    duration: Duration,
    observed: &ObservedCluster,
    now: SystemTime,
) -> RolloutRecord {
    RolloutRecord {
        outcome: Outcome::Failed,
        finished_at: format_rfc3339(now),
        duration,
        objects: desired
            .workload(key)
            .into_iter()
            .map(|w| object_outcome(w, desired, Outcome::Failed, observed, now))
            .collect(),
        reason: Some(evidence.to_string()),
        reverted_by,
    }
}

/// The note of a commit whose every workload rolled out.
pub(crate) fn success_record(
    desired: &DesiredState,
    duration: Duration,
    observed: &ObservedCluster,
    now: SystemTime,
) -> RolloutRecord {
    RolloutRecord {
        outcome: Outcome::Succeeded,
        finished_at: format_rfc3339(now),
        duration,
        // Pods that run to completion roll nothing out: their runs have
        // records of their own (`run_record`).
        objects: desired
            .workloads
            .iter()
            .filter(|w| !w.spec.pods.completes())
            .map(|w| object_outcome(w, desired, Outcome::Succeeded, observed, now))
            .collect(),
        reason: None,
        reverted_by: None,
    }
}

/// After a rollout completed: the images of revisions that fell out of
/// `revisionHistoryLimit` (`dropped`, each revision's images), unless a
/// kept revision (`kept`) or the desired state still names them.
pub(crate) fn images_to_prune(
    dropped: &[BTreeSet<String>],
    kept: &[BTreeSet<String>],
    desired: &DesiredState,
) -> BTreeSet<String> {
    let mut candidates: BTreeSet<String> = dropped.iter().flatten().cloned().collect();
    for image in kept.iter().flatten() {
        candidates.remove(image);
    }
    for w in &desired.workloads {
        for c in w.spec.template.spec.all_containers() {
            candidates.remove(&c.image);
        }
    }
    candidates
}

/// A container's identity across the cluster: Docker names are unique only
/// on their node (each DaemonSet pod has the same name on every node), so
/// probe and back-off state is kept under `node/name`.
pub(crate) fn container_key(node: &str, name: &str) -> String {
    format!("{node}/{name}")
}

/// A planned start that waits out its crash-loop back-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeldStart {
    pub(crate) node: String,
    /// The replica's containers, as the start names them.
    pub(crate) containers: Vec<String>,
    pub(crate) delay: Duration,
    pub(crate) until: SystemTime,
}

/// Kubernetes' crash-loop back-off over the starts a plan asks for (each a
/// replica's containers on a node): a start of containers that exited waits
/// while the back-off of the replica (kept under its first container) runs,
/// counted from the latest finish among them; one that goes ahead is
/// recorded. Containers gone from an observation of every node are
/// forgotten. Returns the starts held back.
pub(crate) fn hold_crash_loops<'s>(
    backoff: &mut RestartBackoff,
    starts: impl IntoIterator<Item = (&'s str, &'s [String])>,
    observed: &ObservedCluster,
    now: SystemTime,
) -> Vec<HeldStart> {
    let finished: std::collections::HashMap<String, SystemTime> = observed
        .nodes
        .values()
        .flat_map(|n| n.containers.iter().map(move |c| (n, c)))
        .filter(|(_, c)| matches!(c.state, ContainerState::Exited { .. }))
        .map(|(n, c)| {
            (
                container_key(&n.name, &c.name),
                c.finished_at.unwrap_or(now),
            )
        })
        .collect();
    let mut held = Vec::new();
    for (node, containers) in starts {
        let Some(first) = containers.first() else {
            continue;
        };
        let key = container_key(node, first);
        let Some(finished_at) = containers
            .iter()
            .filter_map(|c| finished.get(&container_key(node, c)))
            .max()
            .copied()
        else {
            continue;
        };
        match backoff.verdict(&key, finished_at, now) {
            BackoffVerdict::RestartNow => backoff.record_restart(&key, finished_at, now),
            BackoffVerdict::Wait { until, delay } => held.push(HeldStart {
                node: node.to_string(),
                containers: containers.to_vec(),
                delay,
                until,
            }),
        }
    }
    // Forget only what is certainly gone: containers on unreachable nodes
    // are not listed, but may come back.
    if observed
        .nodes
        .values()
        .all(|n| n.reachability.is_reachable())
    {
        let known: BTreeSet<String> = observed
            .nodes
            .values()
            .flat_map(|n| n.containers.iter().map(|c| container_key(&n.name, &c.name)))
            .collect();
        backoff.retain(|key| known.contains(key));
    }
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ContainerState, ManagedLabels, ObservedContainer, ObservedNode};
    use crate::manifest::{load, SourceFile};

    fn desired(image: &str, extra_annotation: &str) -> DesiredState {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations: {{{extra_annotation}}}\n\
             spec:\n  replicas: 2\n  progressDeadlineSeconds: 30\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
             metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - {{name: app, image: '{image}'}}\n"
        );
        let loaded = load(&[SourceFile {
            path: "web.yaml".into(),
            text,
            excluded: Vec::new(),
        }]);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.state
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// n1 runs `slot`s of `state`'s web, running or exited.
    fn observed(state: &DesiredState, pods: &[(u32, bool, u32)]) -> ObservedCluster {
        let hash = template_hash(&state.workloads[0].spec.template);
        let containers = pods
            .iter()
            .map(|&(slot, running, restarts)| ObservedContainer {
                id: format!("{hash}-{slot}"),
                name: format!("web-{slot}-{hash}"),
                labels: ManagedLabels {
                    namespace: "default".into(),
                    kind: state.workloads[0].kind,
                    name: "web".into(),
                    slot,
                    template_hash: hash.clone(),
                    commit: "c".repeat(40),
                    node: "n1".into(),
                    container: "app".into(),
                    role: Default::default(),
                },
                state: if running {
                    ContainerState::Running
                } else {
                    ContainerState::Exited { code: 1 }
                },
                health: None,
                restart_count: restarts,
                started_at: Some(at(0)),
                finished_at: None,
                image: "img".into(),
                ports: Vec::new(),
                probe_ready: None,
                address: None,
                ready_since: None,
                hooks: Default::default(),
            })
            .collect();
        let mut cluster = ObservedCluster::default();
        cluster.nodes.insert(
            "n1".into(),
            ObservedNode {
                name: "n1".into(),
                reachability: crate::cluster::Reachability::Reachable,
                facts: None,
                containers,
                volumes: Vec::new(),
            },
        );
        cluster
    }

    /// A rollout of v2 whose pods crash: (observation, time) in order.
    fn crash_loop_inputs() -> (DesiredState, Vec<(ObservedCluster, SystemTime)>) {
        let v1 = desired("img:1", "");
        let v2 = desired("img:2", "");
        let mut old = observed(&v1, &[(0, true, 0), (1, true, 0)]);
        let new = observed(&v2, &[(0, true, 0)]);
        let n1 = old.nodes.get_mut("n1").unwrap();
        n1.containers.extend(new.nodes["n1"].containers.clone());
        let crashing = |restarts| {
            let mut o = old.clone();
            let mut crashed = observed(&v2, &[(0, false, restarts)]);
            o.nodes
                .get_mut("n1")
                .unwrap()
                .containers
                .append(&mut crashed.nodes.get_mut("n1").unwrap().containers);
            o
        };
        let steps = vec![
            (old.clone(), at(1)),
            (crashing(1), at(2)),
            (crashing(2), at(3)),
            (crashing(4), at(4)),
            (crashing(5), at(5)),
        ];
        (v2, steps)
    }

    fn replay(
        desired: &DesiredState,
        inputs: &[(ObservedCluster, SystemTime)],
    ) -> Vec<(Vec<RolloutEvent>, bool)> {
        let mut tracker = RolloutTracker::default();
        inputs
            .iter()
            .map(|(observed, now)| {
                let decision = observe_rollouts(&mut tracker, desired, "tip", observed, *now);
                (decision.events, decision.hold.is_some())
            })
            .collect()
    }

    /// Replayed, the same observations give the same decisions; a revision
    /// crash-looping fails its rollout once and is held from then on.
    #[test]
    fn replaying_observations_gives_the_same_decisions() {
        let (v2, inputs) = crash_loop_inputs();
        let first = replay(&v2, &inputs);
        assert_eq!(first, replay(&v2, &inputs));
        let failed: Vec<usize> = first
            .iter()
            .enumerate()
            .filter(|(_, (events, _))| {
                events
                    .iter()
                    .any(|e| matches!(e, RolloutEvent::Failed { .. }))
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, [3], "{first:?}");
        let held: Vec<bool> = first.iter().map(|(_, held)| *held).collect();
        assert_eq!(held, [false, false, false, true, true]);
    }

    /// The first restart of a crashed replica goes ahead; the next waits
    /// 10 s from its finish; the same inputs replayed give the same holds.
    #[test]
    fn crash_looping_starts_wait_out_their_back_off() {
        let state = desired("img:1", "");
        let crashed = observed(&state, &[(0, false, 1)]);
        let name = crashed.nodes["n1"].containers[0].name.clone();
        let containers = vec![name];
        let run = || {
            let mut backoff = RestartBackoff::default();
            let mut holds = Vec::new();
            for now in [at(1), at(2), at(13)] {
                let mut o = crashed.clone();
                o.nodes.get_mut("n1").unwrap().containers[0].finished_at = Some(now);
                let start = [("n1", containers.as_slice())];
                holds.push(hold_crash_loops(&mut backoff, start, &o, now).len());
            }
            holds
        };
        assert_eq!(run(), [0, 1, 1]);
        assert_eq!(run(), run());
    }

    #[test]
    fn revert_decisions() {
        let facts = |auto, introduced_by, message, already_reverted| FailureFacts {
            auto,
            introduced_by,
            message,
            already_reverted,
        };
        let cases = [
            (
                facts(true, Some("c1"), "Ship v2", None),
                RevertDecision::Revert,
            ),
            (
                facts(false, Some("c1"), "Ship v2", None),
                RevertDecision::Hold("auto-rollback is off for this workload"),
            ),
            (
                facts(true, None, "", None),
                RevertDecision::Hold("cannot tell which commit introduced the failed revision"),
            ),
            (
                facts(
                    true,
                    Some("c1"),
                    "Revert \"x\"\n\nFlotilla-Rollback: automatic",
                    None,
                ),
                RevertDecision::Hold("the failed revision comes from an automatic revert"),
            ),
            (
                facts(true, Some("c1"), "Ship v2", Some("r1")),
                RevertDecision::Reverted("r1".into()),
            ),
        ];
        for (facts, expected) in cases {
            assert_eq!(revert_decision(facts), expected, "{facts:?}");
        }
    }

    #[test]
    fn auto_rollback_follows_the_annotation() {
        let key = desired("img:1", "").workloads[0].key();
        assert!(auto_rollback(&desired("img:1", ""), &key));
        let off = desired("img:1", "'flotilla.dev/auto-rollback': 'false'");
        assert!(!auto_rollback(&off, &key));
    }

    #[test]
    fn images_still_named_anywhere_are_kept() {
        let set = |images: &[&str]| images.iter().map(|s| s.to_string()).collect();
        let state = desired("img:4", "");
        let pruned = images_to_prune(
            &[set(&["img:1", "shared:1"]), set(&["img:2"])],
            &[set(&["img:3", "shared:1"]), set(&["img:4"])],
            &state,
        );
        assert_eq!(pruned, set(&["img:1", "img:2"]));
    }
}
