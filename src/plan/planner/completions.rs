//! Pods that run to completion (Job): at most `parallelism` at a time until
//! `completions` of them succeed (`Indexed`: each index once), a failed pod
//! replaced after Kubernetes' back-off, the run failed past `backoffLimit`
//! or `activeDeadlineSeconds`, stopped while `suspend`ed.
//!
//! A run is one revision (template hash). While it runs, its record is its
//! pods: finished ones are kept, never replaced nor removed. Once it is
//! finished the planner says so ([`RunState::Finished`]) and the leader
//! writes the run's note; from then on the note ([`Runs`]) is the record,
//! its remaining pods go, and its finished ones go `ttlSecondsAfterFinished`
//! after it finished. Every decision is a function of the pods, the
//! records and `now`, so a restarted leader carries on where it was.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use crate::cluster::{ContainerState, ReplicaState};
use crate::manifest::model::{CompletionMode, JobSpec, ObjectKey, RestartPolicy, WorkloadSpec};
use crate::plan::{FinishedRun, Held, RunState, RunStatus};
use crate::reconcile::record::Outcome;

use super::{free_slots, remove_action, Context, Create, Decision, Location, Seen};

/// Kubernetes' back-off of a Job's replacement pods: 10 s after the first
/// failure, doubling with each, at most 6 minutes.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_secs(10);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// The reasons Kubernetes gives a failed Job.
pub(crate) const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub(crate) const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";

/// The wait before a new pod after `failures` failures (none without one).
pub(crate) fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(16);
    (BACKOFF_BASE * 2u32.pow(doublings)).min(BACKOFF_MAX)
}

/// What the pods of the current run say.
struct Tally<'s, 'a> {
    succeeded: Vec<&'s Seen<'a>>,
    failed: Vec<&'s Seen<'a>>,
    /// Running or about to (created, restarting, on a node not seen now):
    /// what `parallelism` bounds. Terminating pods count: they still run.
    active: Vec<&'s Seen<'a>>,
    /// Failed pods, plus container restarts under `OnFailure`.
    failures: u32,
    started_at: Option<SystemTime>,
    last_failure_at: Option<SystemTime>,
}

fn tally<'s, 'a>(current: &[&'s Seen<'a>], restart_policy: RestartPolicy) -> Tally<'s, 'a> {
    let mut t = Tally {
        succeeded: Vec::new(),
        failed: Vec::new(),
        active: Vec::new(),
        failures: 0,
        started_at: None,
        last_failure_at: None,
    };
    for s in current.iter().copied() {
        if s.location == Location::Lost {
            continue;
        }
        for c in &s.replica.containers {
            if let Some(started) = c.started_at {
                t.started_at = Some(t.started_at.map_or(started, |o| o.min(started)));
            }
            if restart_policy == RestartPolicy::OnFailure && c.restart_count > 0 {
                t.failures = t.failures.saturating_add(c.restart_count);
                if let Some(finished) = c.finished_at {
                    t.last_failure_at = t.last_failure_at.max(Some(finished));
                }
            }
        }
        match s.state {
            ReplicaState::Succeeded => t.succeeded.push(s),
            ReplicaState::Failed => {
                t.failures = t.failures.saturating_add(1);
                let finished = s
                    .replica
                    .containers
                    .iter()
                    .filter_map(|c| c.finished_at)
                    .max();
                t.last_failure_at = t.last_failure_at.max(finished);
                t.failed.push(s);
            }
            ReplicaState::Unknown
            | ReplicaState::Terminating
            | ReplicaState::Pending
            | ReplicaState::Running
            | ReplicaState::Ready => t.active.push(s),
        }
    }
    t
}

/// Which pods of a Job's run to create and remove, and where it stands.
pub(super) fn decide(
    key: &ObjectKey,
    spec: &WorkloadSpec,
    job: JobSpec,
    seen: &[Seen<'_>],
    new_hash: &str,
    context: &Context<'_>,
    now: SystemTime,
) -> (Decision, RunStatus) {
    let mut removes = Vec::new();
    let mut creates = Vec::new();
    let current: Vec<&Seen<'_>> = seen
        .iter()
        .filter(|s| s.replica.key.template_hash == new_hash)
        .collect();
    let t = tally(&current, spec.template.spec.restart_policy);
    let mut status = RunStatus {
        revision: new_hash.to_string(),
        completions: job.completions,
        succeeded: succeeded_count(&job, &t),
        active: t.active.len() as u32,
        failed: t.failures,
        state: RunState::Running,
        next_change: None,
    };
    let decision = |creates, removes, want| Decision {
        want,
        creates,
        removes,
        rollout: None,
        held: None,
    };
    let recorded = match context.runs.recorded(key, new_hash) {
        Ok(recorded) => recorded,
        Err(reason) => {
            status.state = RunState::Unknown {
                reason: reason.to_string(),
            };
            return (decision(creates, removes, 0), status);
        }
    };

    // An older run's pods go, finished or not: a changed template is a new
    // run, which starts once they are gone.
    let mut old_present = false;
    for s in seen
        .iter()
        .filter(|s| s.replica.key.template_hash != new_hash)
    {
        if s.location == Location::Lost {
            continue;
        }
        old_present = true;
        if s.location == Location::Live && s.state != ReplicaState::Terminating {
            removes.push(remove_action(
                key,
                s.replica,
                false,
                format!(
                    "a new run: revision {new_hash} replaces {}",
                    s.replica.key.template_hash
                ),
            ));
        }
    }
    let removable =
        |s: &&&Seen<'_>| s.location == Location::Live && s.state != ReplicaState::Terminating;

    if let Some(record) = recorded {
        // The note is the record now: what still runs stops, and the
        // finished pods stay until the TTL.
        let removal_at = job
            .ttl_seconds_after_finished
            .map(|ttl| record.finished_at + Duration::from_secs(u64::from(ttl)));
        let expired = removal_at.is_some_and(|at| now >= at);
        if !expired && current.iter().any(|s| removable(&s)) {
            status.next_change = removal_at;
        }
        let going: Vec<&&Seen<'_>> = if expired {
            current.iter().filter(removable).collect()
        } else {
            t.active.iter().filter(removable).collect()
        };
        for s in going {
            let reason = if expired {
                format!(
                    "ttlSecondsAfterFinished: the run {} at {}",
                    record.outcome,
                    crate::reconcile::time::format_rfc3339(record.finished_at)
                )
            } else {
                format!("the run {}: its pods stop", record.outcome)
            };
            removes.push(remove_action(key, s.replica, false, reason));
        }
        status.state = RunState::Recorded {
            outcome: record.outcome,
            reason: record.reason.clone(),
            finished_at: record.finished_at,
        };
        return (decision(creates, removes, 0), status);
    }

    if let Some(finished) = finished(&job, &t, current.first(), context.commit, now) {
        status.state = RunState::Finished(finished);
        return (decision(creates, removes, 0), status);
    }

    // Unless the pods change first, the run fails at its deadline
    // (suspended too: the deadline counts from its first pod).
    status.next_change = job
        .active_deadline_seconds
        .zip(t.started_at)
        .map(|(deadline, started)| started + Duration::from_secs(u64::from(deadline)));

    if job.suspend {
        for s in t.active.iter().filter(removable) {
            removes.push(remove_action(
                key,
                s.replica,
                false,
                "suspended: its pods stop".into(),
            ));
        }
        status.state = RunState::Suspended;
        return (decision(creates, removes, 0), status);
    }

    let active = t.active.len() as u32;
    let want = wanted_active(&job, &t);
    if let Some(last) = t.last_failure_at {
        let until = last + backoff_delay(t.failures);
        if now < until && want > active {
            status.state = RunState::BackingOff { until };
            status.next_change = Some(status.next_change.map_or(until, |d| d.min(until)));
            return (decision(creates, removes, want), status);
        }
    }
    if old_present || want <= active {
        return (decision(creates, removes, want), status);
    }
    let room = want - active;
    // A node never seen within its grace period (a leader just restarted,
    // a one-shot `plan`) may hold pods of this run, running or finished:
    // a new pod could run an index, or a completion, twice. None is
    // created until those nodes answer or their grace period has passed.
    if !context.unknown_nodes.is_empty() {
        let mut held = decision(creates, removes, want);
        held.held = Some(Held {
            object: key.clone(),
            replicas: room,
            nodes: context
                .unknown_nodes
                .iter()
                .map(|n| n.to_string())
                .collect(),
        });
        return (held, status);
    }
    let reason = format!(
        "{} of {} succeeded, {active} active",
        status.succeeded,
        job.completions
            .map_or("1 (any)".to_string(), |c| c.to_string()),
    );
    match job.completion_mode {
        CompletionMode::Indexed => {
            for index in pending_indexes(&job, &t).into_iter().take(room as usize) {
                // Each attempt of an index is a pod of its own.
                let attempt = current
                    .iter()
                    .filter(|s| job.completion_index(s.replica.key.slot) == Some(index))
                    .map(|s| JobSpec::attempt(s.replica.key.slot) + 1)
                    .max()
                    .unwrap_or(0);
                creates.push(Create {
                    slot: JobSpec::indexed_slot(index, attempt),
                    node: None,
                    reason: format!("index {index}: {reason}"),
                    rollout: false,
                });
            }
        }
        CompletionMode::NonIndexed => {
            for slot in free_slots(seen, new_hash, room) {
                creates.push(Create {
                    slot,
                    node: None,
                    reason: reason.clone(),
                    rollout: false,
                });
            }
        }
    }
    (decision(creates, removes, want), status)
}

/// Successes that count: `Indexed`, the distinct indexes below
/// `completions` that succeeded.
fn succeeded_count(job: &JobSpec, t: &Tally<'_, '_>) -> u32 {
    match job.completion_mode {
        CompletionMode::Indexed => succeeded_indexes(job, t).len() as u32,
        CompletionMode::NonIndexed => t.succeeded.len() as u32,
    }
}

fn succeeded_indexes(job: &JobSpec, t: &Tally<'_, '_>) -> BTreeSet<u32> {
    let completions = job.completions.unwrap_or(0);
    t.succeeded
        .iter()
        .filter_map(|s| job.completion_index(s.replica.key.slot))
        .filter(|i| *i < completions)
        .collect()
}

/// The indexes that neither succeeded nor have a pod running, lowest first.
fn pending_indexes(job: &JobSpec, t: &Tally<'_, '_>) -> Vec<u32> {
    let done = succeeded_indexes(job, t);
    let running: BTreeSet<u32> = t
        .active
        .iter()
        .filter_map(|s| job.completion_index(s.replica.key.slot))
        .collect();
    (0..job.completions.unwrap_or(0))
        .filter(|i| !done.contains(i) && !running.contains(i))
        .collect()
}

/// How many pods should be active: `parallelism`, no more than the
/// successes still missing (`Indexed`: the indexes still to run, and the
/// ones running).
fn wanted_active(job: &JobSpec, t: &Tally<'_, '_>) -> u32 {
    let remaining = match (job.completion_mode, job.completions) {
        (CompletionMode::Indexed, _) => {
            pending_indexes(job, t).len() as u32
                + t.active
                    .iter()
                    .filter(|s| {
                        job.completion_index(s.replica.key.slot)
                            .is_some_and(|i| i < job.completions.unwrap_or(0))
                    })
                    .count() as u32
        }
        (CompletionMode::NonIndexed, Some(c)) => c.saturating_sub(t.succeeded.len() as u32),
        // A work queue: once a pod succeeded, no new one.
        (CompletionMode::NonIndexed, None) if !t.succeeded.is_empty() => 0,
        (CompletionMode::NonIndexed, None) => job.parallelism,
    };
    job.parallelism.min(remaining)
}

/// The run's end, when the pods and `now` say it ended: every completion
/// succeeded, more failures than `backoffLimit`, or past its deadline.
fn finished(
    job: &JobSpec,
    t: &Tally<'_, '_>,
    first: Option<&&Seen<'_>>,
    commit: &str,
    now: SystemTime,
) -> Option<FinishedRun> {
    let succeeded = match (job.completion_mode, job.completions) {
        (CompletionMode::Indexed, Some(c)) => succeeded_indexes(job, t).len() as u32 >= c,
        (CompletionMode::NonIndexed, Some(c)) => t.succeeded.len() as u32 >= c,
        (_, None) => !t.succeeded.is_empty() && t.active.is_empty(),
    };
    let commit = first.map_or(commit, |s| s.replica.commit).to_string();
    let run = |outcome, reason: Option<&str>, finished_at: SystemTime, failing| FinishedRun {
        outcome,
        reason: reason.map(str::to_string),
        commit: commit.clone(),
        started_at: t.started_at.unwrap_or(finished_at).min(finished_at),
        finished_at,
        failing,
    };
    if succeeded {
        let last_success = t
            .succeeded
            .iter()
            .flat_map(|s| s.replica.containers.iter().filter_map(|c| c.finished_at))
            .max();
        return Some(run(
            Outcome::Succeeded,
            None,
            last_success.unwrap_or(now),
            None,
        ));
    }
    if t.failures > job.backoff_limit {
        let at = t.last_failure_at.unwrap_or(now);
        return Some(run(
            Outcome::Failed,
            Some(BACKOFF_LIMIT_EXCEEDED),
            at,
            failing_container(t),
        ));
    }
    if let (Some(deadline), Some(started)) = (job.active_deadline_seconds, t.started_at) {
        let at = started + Duration::from_secs(u64::from(deadline));
        if now >= at {
            return Some(run(
                Outcome::Failed,
                Some(DEADLINE_EXCEEDED),
                at,
                failing_container(t),
            ));
        }
    }
    None
}

/// The container whose last log lines say why the run failed: the last
/// failed pod's failed container, else the most restarted one.
fn failing_container(t: &Tally<'_, '_>) -> Option<(String, String)> {
    let last_failed = t.failed.iter().max_by_key(|s| {
        (
            s.replica
                .containers
                .iter()
                .filter_map(|c| c.finished_at)
                .max(),
            s.replica.key.slot,
        )
    });
    if let Some(s) = last_failed {
        let c = s
            .replica
            .containers
            .iter()
            .find(|c| {
                matches!(c.state, ContainerState::Exited { code } if code != 0)
                    || c.state == ContainerState::Dead
            })
            .or(s.replica.containers.first())?;
        return Some((s.replica.node.to_string(), c.name.clone()));
    }
    t.active
        .iter()
        .flat_map(|s| s.replica.containers.iter().map(move |c| (s, c)))
        .filter(|(_, c)| c.restart_count > 0 || c.state == ContainerState::Running)
        .max_by_key(|(_, c)| c.restart_count)
        .map(|(s, c)| (s.replica.node.to_string(), c.name.clone()))
}
