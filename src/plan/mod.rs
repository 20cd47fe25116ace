//! The planner: a pure, deterministic function of the desired state, the
//! observed cluster and the clock to an ordered list of actions with
//! reasons. Scheduling (which node), scaling, pruning, rollout steps and the
//! handling of unreachable nodes all live here.
//!
//! Pure: no I/O, no clock (`now` is an argument), nothing executed. The
//! `node` module carries the actions out; the `cli` module prints them with
//! [`render()`] or as JSON.

pub(crate) mod diff;
pub mod endpoints;
mod planner;
pub(crate) mod progress;
pub mod render;
pub mod scheduler;

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::cluster::{ManagedLabels, ObservedCluster, ObservedNode, Reachability};
use crate::manifest::model::{DesiredState, ObjectKey, PodTemplate};

pub use diff::manifest_diff;
pub(crate) use planner::desired_pods;
pub use planner::{plan, plan_with_runs};
pub use render::{render, RenderOptions};

/// What one reconcile should do, and what it found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The commit whose desired state was planned.
    pub commit: String,
    /// In order: per object (sorted by kind, namespace, name), creates, then
    /// starts, then removes.
    pub actions: Vec<Action>,
    /// Replicas that should exist but fit on no node.
    pub unschedulable: Vec<Unschedulable>,
    /// Replicas not accounted for that may run on an unreachable node whose
    /// containers were never seen: no replacement is created for them yet.
    pub held: Vec<Held>,
    /// Every declared workload and every undeclared one still running.
    pub objects: Vec<ObjectStatus>,
    /// Nodes that are not plainly reachable and declared.
    pub nodes: Vec<NodeStatus>,
    /// Reachable nodes whose CPU or memory capacity neither their manifest
    /// nor an observation states (`plan --offline` on Nodes that declare no
    /// `spec.capacity`): replicas are placed there without checking that
    /// those resources fit.
    pub unknown_capacity: Vec<String>,
    /// Every declared Service: its addresses, and what this plan changes
    /// in its endpoints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServicePlan>,
    /// Pods that are not created, for a reason other than room: a
    /// StatefulSet ordinal whose pod is on a node that cannot be reached.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
    /// Every claim declared or whose volume is seen on a node: where it
    /// lives and what this plan does to it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimPlan>,
    /// Docker volumes to remove: a claim's that Git says to delete, an
    /// `emptyDir` whose pod is gone. Carried out after `actions`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_removals: Vec<VolumeRemoval>,
}

/// A pod that waits, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub object: ObjectKey,
    pub slot: u32,
    /// The node it waits for, when it waits for a node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub reason: String,
}

/// A PersistentVolumeClaim in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPlan {
    pub namespace: String,
    pub name: String,
    /// Requested storage in bytes: declared, or for a claim no longer
    /// declared, what its volume's label recorded.
    pub storage: u64,
    /// The nodes its volume is on (one, unless someone made another), or
    /// the node this plan binds it to.
    pub nodes: Vec<String>,
    pub state: ClaimState,
    /// Why its volume is deleted (`deleting`, `deleteWaits`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The StatefulSet pod it was made for: declared by one of its volume
    /// claim templates, or (no longer declared) as its volume records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordinal: Option<crate::cluster::OrdinalClaim>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClaimState {
    /// Its volume is on a node: pods using it go there.
    Bound,
    /// Not bound yet, and this plan places its first pod: bound to that node.
    Binding,
    /// Not bound, and no pod placed: bound when its first pod is
    /// (`WaitForFirstConsumer`).
    Pending,
    /// No longer declared: its volume and data stay where they are.
    Kept,
    /// Declared with `flotilla.dev/delete-volume`: this plan deletes its
    /// volume and the data in it.
    Deleting,
    /// To be deleted, but its node is not reachable or its StatefulSet pod
    /// is still there: left alone until neither is so.
    DeleteWaits,
    /// Not seen on any node, while some declared node was never seen: it
    /// may be bound there.
    Unknown,
    /// Its volume is on more than one node: no pod using it is placed
    /// until all but one are removed by hand.
    Conflict,
}

/// A Docker volume to remove from a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeRemoval {
    pub node: String,
    pub volume: String,
    /// The data of a claim (`namespace/name`), as opposed to a removed
    /// pod's scratch space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    pub reason: String,
}

/// A Service in a plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlan {
    pub key: ObjectKey,
    pub cluster_ip: String,
    /// `80/TCP` or `80:31234/TCP` (the node port allocated or given),
    /// with the target port: `80/TCP->http`.
    pub ports: Vec<String>,
    /// Pods it selects on reachable nodes and not being removed: whether
    /// each is ready is the leader's probes' to say, which a plan does not
    /// run.
    pub selected: usize,
    /// Serving pods this plan removes: taken out of every proxy and
    /// drained before they are stopped (`web[2] on n1`).
    pub leaving: Vec<String>,
    /// Pods this plan creates that the Service selects: they join once
    /// ready.
    pub joining: usize,
}

impl Plan {
    /// The earliest time this plan changes by time alone (a Job's back-off
    /// ends, its deadline passes, its TTL expires): when to plan again even
    /// if nothing else happens.
    pub fn next_change(&self) -> Option<SystemTime> {
        self.objects
            .iter()
            .filter_map(|o| o.run.as_ref()?.next_change)
            .min()
    }

    /// Nothing to do, nothing that cannot be done, and nothing unknown.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
            && self.unschedulable.is_empty()
            && self.held.is_empty()
            && self.volume_removals.is_empty()
            && self.waiting.is_empty()
    }

    /// Replicas held back as unknown, over every object.
    pub fn unknown_replicas(&self) -> u32 {
        self.held.iter().map(|h| h.replicas).sum()
    }

    /// (to create, to update, to remove, unschedulable), as the summary counts them.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut counts = (0, 0, 0, self.unschedulable.len());
        for action in &self.actions {
            match action.change() {
                Change::Create => counts.0 += 1,
                Change::Update => counts.1 += 1,
                Change::Remove => counts.2 += 1,
            }
        }
        counts
    }
}

/// One step on one node, about one replica.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub object: ObjectKey,
    pub slot: u32,
    pub node: String,
    /// The revision of the replica acted on.
    pub template_hash: String,
    /// Part of a rollout (rolling update or recreate).
    pub rollout: bool,
    /// Why, for people.
    pub reason: String,
    pub operation: Operation,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Operation {
    /// Create and start every container of a replica. Creating a container
    /// that already exists (same deterministic name) is a no-op.
    Create {
        /// The labels of each container of the pod, in the template's order.
        containers: Vec<ManagedLabels>,
        template: Arc<PodTemplate>,
    },
    /// Start containers that exist but are not running.
    Start { containers: Vec<ContainerRef> },
    /// Stop and remove every container of a replica.
    Remove { containers: Vec<ContainerRef> },
}

/// A Docker container to act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    /// Its lifecycle hooks (from its labels): a start runs its postStart,
    /// a removal its preStop.
    #[serde(skip_serializing_if = "crate::cluster::Hooks::is_empty")]
    pub hooks: crate::cluster::Hooks,
}

/// How an action reads in the plan: `+`, `~` or `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Change {
    Create,
    Update,
    Remove,
}

impl Action {
    /// Rollout steps and restarts are updates; other creates and removes
    /// are what they say.
    pub fn change(&self) -> Change {
        match (&self.operation, self.rollout) {
            (Operation::Start { .. }, _) | (_, true) => Change::Update,
            (Operation::Create { .. }, false) => Change::Create,
            (Operation::Remove { .. }, false) => Change::Remove,
        }
    }

    pub fn verb(&self) -> &'static str {
        match self.operation {
            Operation::Create { .. } => "create",
            Operation::Start { .. } => "start",
            Operation::Remove { .. } => "remove",
        }
    }
}

/// A replica no node can take, and kube-scheduler's words for why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unschedulable {
    pub object: ObjectKey,
    pub slot: u32,
    /// The node a bound pod (a DaemonSet's) does not fit on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub template_hash: String,
    pub reason: String,
}

/// Replicas of one object that could not be accounted for while nodes whose
/// containers were never seen are unreachable within the grace period. They
/// may be running there, so the planner creates none of the object's
/// replicas until those nodes answer or their grace period has passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub object: ObjectKey,
    /// Desired replicas that no reachable node, and no node whose last
    /// observation is known, accounts for.
    pub replicas: u32,
    /// The nodes they may be on, sorted.
    pub nodes: Vec<String>,
}

/// Replica counts of one object, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub key: ObjectKey,
    /// `None` for an object no longer declared (pruned).
    pub desired: Option<u32>,
    /// Replicas on reachable nodes, any revision.
    pub on_reachable_nodes: u32,
    /// Replicas on nodes unreachable within the grace period (last seen
    /// there, or held: possibly on a node never seen): still counted, never
    /// replaced, never removed.
    pub unknown: u32,
    /// Replicas on nodes unreachable past the grace period or no longer
    /// declared: placed again elsewhere.
    pub lost: u32,
    pub rollout: Option<RolloutStatus>,
    /// A pod set that completes (Job): where its run of the current
    /// revision stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunStatus>,
}

/// What is known of the finished runs of pod sets that complete: the
/// records in the notes, an input of the planner (so that a run whose pods
/// are gone is not run again).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Runs {
    /// Every finished run's record, by object and revision (template hash).
    Known(std::collections::BTreeMap<(ObjectKey, String), RecordedRun>),
    /// The records cannot be read (a clone without the notes): whether a
    /// run is finished cannot be told, so nothing is run nor removed.
    Unknown(String),
    /// No record was looked for: no run has finished (tests, benchmarks).
    #[default]
    NoneRecorded,
}

impl Runs {
    /// The record of `key`'s run of `revision`: `Err` when it cannot be told.
    pub fn recorded(&self, key: &ObjectKey, revision: &str) -> Result<Option<&RecordedRun>, &str> {
        match self {
            Runs::Known(runs) => Ok(runs.get(&(key.clone(), revision.to_string()))),
            Runs::Unknown(reason) => Err(reason),
            Runs::NoneRecorded => Ok(None),
        }
    }
}

/// A finished run, as its note records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRun {
    pub outcome: crate::reconcile::record::Outcome,
    /// `BackoffLimitExceeded`, `DeadlineExceeded`; `None` for a success.
    pub reason: Option<String>,
    pub finished_at: SystemTime,
}

/// A run of a pod set that completes, in a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    pub revision: String,
    /// `None`: the first success of any pod finishes the run.
    pub completions: Option<u32>,
    pub succeeded: u32,
    pub active: u32,
    /// Failed pods, and with `restartPolicy: OnFailure` container restarts.
    pub failed: u32,
    pub state: RunState,
    /// When the run's plan changes by time alone, nothing observed having
    /// changed: the end of its back-off, its `activeDeadlineSeconds`, the
    /// removal of its pods at `ttlSecondsAfterFinished`. The leader wakes
    /// then rather than at its next resync.
    #[serde(skip)]
    pub next_change: Option<SystemTime>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum RunState {
    /// Its record cannot be read: whether it runs cannot be told.
    Unknown {
        reason: String,
    },
    /// Not started: no pod of the revision ran yet, and it is suspended.
    Suspended,
    Running,
    /// A pod failed; the next one is created at `until`.
    BackingOff {
        #[serde(serialize_with = "rfc3339")]
        until: SystemTime,
    },
    /// Finished as observed now, not recorded yet: the leader writes its
    /// record, and the next plan acts on it.
    Finished(FinishedRun),
    /// Finished and recorded; its pods are removed at `removal` (its
    /// `ttlSecondsAfterFinished`), when it has one.
    Recorded {
        outcome: crate::reconcile::record::Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(serialize_with = "rfc3339")]
        finished_at: SystemTime,
    },
}

/// How a run finished, as observed: what its record says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FinishedRun {
    pub outcome: crate::reconcile::record::Outcome,
    /// `BackoffLimitExceeded` or `DeadlineExceeded`; `None` for a success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The commit that declared the revision (its pods' `commit` label):
    /// the record goes in its note.
    pub commit: String,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub finished_at: SystemTime,
    /// (node, Docker container name) of the last failed pod's first failed
    /// container, whose last log lines the record keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<(String, String)>,
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::reconcile::time::format_rfc3339(*time))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub strategy: RolloutStrategy,
    /// Replicas at the new revision once this step is done.
    pub updated: u32,
    pub desired: u32,
    pub new_template_hash: String,
    /// Resolved budgets (rolling update only).
    pub max_surge: u32,
    pub max_unavailable: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RolloutStrategy {
    RollingUpdate,
    Recreate,
}

/// A node that is unreachable, or observed but no longer declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub condition: NodeCondition,
    /// Managed replicas last seen there.
    pub replicas: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum NodeCondition {
    /// Unreachable for `seconds`; past the grace period its replicas are
    /// placed again elsewhere, within it they count as unknown.
    #[serde(rename_all = "camelCase")]
    Unreachable {
        seconds: u64,
        grace_seconds: u32,
        past_grace: bool,
        reason: String,
        /// The observer never reached the node: what runs there is unknown,
        /// and `replicas` says nothing.
        contents_unknown: bool,
    },
    /// Declared but absent from the observation.
    NotObserved,
    /// Observed but no longer declared: its replicas are placed elsewhere
    /// and it is left alone.
    NotDeclared,
}

/// The cluster `flotilla plan --offline` plans against: every declared node
/// reachable, with its declared capacity, and nothing running.
///
/// A node that declares no CPU or memory capacity has an unknown one: the
/// scheduler places replicas there without checking that resource (its pod
/// count is still checked), and the plan names the node in
/// [`Plan::unknown_capacity`], instead of calling every replica
/// unschedulable.
pub fn offline_cluster(desired: &DesiredState) -> ObservedCluster {
    let mut cluster = ObservedCluster::default();
    for node in &desired.nodes {
        cluster.nodes.insert(
            node.meta.name.clone(),
            ObservedNode {
                name: node.meta.name.clone(),
                reachability: Reachability::Reachable,
                facts: None,
                containers: Vec::new(),
                volumes: Vec::new(),
            },
        );
    }
    cluster
}

impl std::fmt::Display for RunStatus {
    /// `2/6 succeeded, 2 active, 1 failed`, then where the run stands:
    /// `backing off until ...`, `succeeded at ...`, `failed (DeadlineExceeded) at ...`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = crate::reconcile::time::format_rfc3339;
        match self.completions {
            Some(c) => write!(f, "{}/{c} succeeded", self.succeeded)?,
            None => write!(f, "{} succeeded (1 needed)", self.succeeded)?,
        }
        write!(f, ", {} active, {} failed", self.active, self.failed)?;
        let outcome =
            |f: &mut std::fmt::Formatter<'_>, outcome, reason: &Option<String>| match reason {
                Some(reason) => write!(f, "{outcome} ({reason})"),
                None => write!(f, "{outcome}"),
            };
        match &self.state {
            RunState::Unknown { reason } => write!(f, "; unknown: {reason}"),
            RunState::Suspended => write!(f, "; suspended"),
            RunState::Running => Ok(()),
            RunState::BackingOff { until } => write!(f, "; backing off until {}", time(*until)),
            RunState::Finished(run) => {
                write!(f, "; ")?;
                outcome(f, run.outcome, &run.reason)?;
                write!(f, " at {}, being recorded", time(run.finished_at))
            }
            RunState::Recorded {
                outcome: o,
                reason,
                finished_at,
            } => {
                write!(f, "; ")?;
                outcome(f, *o, reason)?;
                write!(f, " at {}", time(*finished_at))
            }
        }
    }
}
