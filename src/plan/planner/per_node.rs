//! One pod bound to each eligible node (DaemonSet), with Kubernetes'
//! DaemonSet controller's semantics.
//!
//! A node is eligible when its labels satisfy the pod's node selector and
//! required node affinity, and the pod tolerates every `NoSchedule` and
//! `NoExecute` taint it has, counting the tolerations Kubernetes adds to
//! every DaemonSet pod (not-ready, unreachable, unschedulable, pressure):
//! a cordoned node keeps its pod, a node tainted `NoExecute` loses it, and
//! one tainted `NoSchedule` gets none but keeps the pod it has (counted while
//! it lasts; a rolling update removes it and puts none back).
//! Nodes lost (unreachable past their grace period, or no longer declared)
//! are not counted; a node within its grace period is, with its pod unknown.
//!
//! `RollingUpdate` with `maxSurge` 0 removes old pods while fewer than
//! `maxUnavailable` eligible nodes lack an available pod (an unavailable old
//! pod at once), and creates the new pod on a node once its old one is gone
//! (so a host port is free again); with `maxSurge` above 0 it starts new pods
//! beside old ones on up to `maxSurge` nodes and removes each old pod once
//! its node's new pod is available. Both budgets are resolved against the
//! eligible node count rounding up, as Kubernetes does for DaemonSets.
//! `OnDelete` leaves old pods until they are removed by hand. A node without
//! any pod gets one at once, outside every budget, once a pod being
//! stopped there is gone.

use std::collections::BTreeMap;

use crate::cluster::ReplicaState;
use crate::manifest::model::{
    DesiredState, Node, ObjectKey, PodTemplate, Strategy, Taint, TaintEffect, WorkloadSpec,
};
use crate::plan::scheduler::{matches_node_affinity, FilterReason};
use crate::plan::{RolloutStatus, RolloutStrategy};

use super::{remove_action, Context, Create, Decision, Location, Seen};

/// The one slot of a node's pod: a DaemonSet's pods are told apart by their
/// node, so each is slot 0 on its own node (and its own Docker daemon).
const SLOT: u32 = 0;

/// Taints Kubernetes' DaemonSet controller tolerates on every DaemonSet pod
/// (`node.kubernetes.io/...`), with the effect tolerated.
const DAEMON_TOLERATIONS: [(&str, TaintEffect); 6] = [
    ("node.kubernetes.io/not-ready", TaintEffect::NoExecute),
    ("node.kubernetes.io/unreachable", TaintEffect::NoExecute),
    ("node.kubernetes.io/disk-pressure", TaintEffect::NoSchedule),
    (
        "node.kubernetes.io/memory-pressure",
        TaintEffect::NoSchedule,
    ),
    ("node.kubernetes.io/pid-pressure", TaintEffect::NoSchedule),
    ("node.kubernetes.io/unschedulable", TaintEffect::NoSchedule),
];

/// Why `node` should not run a pod of `template` bound to it, in
/// kube-scheduler's words; `None` when it should.
fn ineligibility(node: &Node, template: &PodTemplate) -> Option<String> {
    refusal(node, template, |effect| {
        matches!(effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
    })
}

/// Why a pod of `template` already on `node` must leave it (Kubernetes'
/// `shouldContinueRunning` is false): the node no longer matches the pod's
/// node selector or required affinity, or has a `NoExecute` taint the pod
/// does not tolerate. An untolerated `NoSchedule` taint keeps new pods off
/// the node but lets the one there run on.
fn eviction(node: &Node, template: &PodTemplate) -> Option<String> {
    refusal(node, template, |effect| effect == TaintEffect::NoExecute)
}

/// The node's labels against the pod's node selector and required
/// affinity, then its taints of the effects `counts` names against the
/// pod's tolerations (and the DaemonSet ones).
fn refusal(
    node: &Node,
    template: &PodTemplate,
    counts: impl Fn(TaintEffect) -> bool,
) -> Option<String> {
    if !matches_node_affinity(&node.scheduling_labels(), template) {
        return Some(FilterReason::NodeAffinity.message());
    }
    node.spec
        .taints
        .iter()
        .find(|taint| counts(taint.effect) && !tolerated(taint, template))
        .map(|taint| {
            FilterReason::UntoleratedTaint {
                key: taint.key.clone(),
                value: taint.value.clone(),
            }
            .message()
        })
}

fn tolerated(taint: &Taint, template: &PodTemplate) -> bool {
    DAEMON_TOLERATIONS
        .iter()
        .any(|(key, effect)| taint.key == *key && taint.effect == *effect)
        || template.spec.tolerations.iter().any(|t| t.tolerates(taint))
}

/// The declared nodes not lost that have a place in the pod set, by name,
/// each with whether a pod may be created there: the nodes that should run
/// the pod, and those that should not but where one runs and may go on
/// running (`runs_pod`; an untolerated `NoSchedule` taint). Those count
/// while their pod lasts, and get no new one.
pub(super) fn eligible_nodes<'d>(
    desired: &'d DesiredState,
    template: &PodTemplate,
    location: impl Fn(&str) -> Location,
    runs_pod: impl Fn(&str) -> bool,
) -> Vec<(&'d str, bool)> {
    desired
        .nodes
        .iter()
        .filter_map(|node| {
            let name = node.meta.name.as_str();
            if ineligibility(node, template).is_none() {
                Some((name, true))
            } else if eviction(node, template).is_none() && runs_pod(name) {
                Some((name, false))
            } else {
                None
            }
        })
        .filter(|(name, _)| location(name) != Location::Lost)
        .collect()
}

/// The pods of one eligible node, by revision.
struct NodePods<'s, 'a> {
    location: Location,
    new: Vec<&'s Seen<'a>>,
    old: Vec<&'s Seen<'a>>,
    /// A pod is being stopped there (or failed, and removed now): its ports
    /// and resources are not free yet, so a new one waits for it to be gone.
    terminating: bool,
    /// A pod may be created there (the node should run it, not only let
    /// the one it has run on).
    may_create: bool,
}

impl NodePods<'_, '_> {
    fn new_available(&self) -> bool {
        self.new.iter().any(|s| s.state == ReplicaState::Ready)
    }

    fn available(&self) -> bool {
        self.new_available() || self.old.iter().any(|s| s.state == ReplicaState::Ready)
    }

    fn live(&self) -> bool {
        self.location == Location::Live
    }
}

/// Which pods to create (each bound to its node) and remove.
pub(super) fn decide(
    key: &ObjectKey,
    spec: &WorkloadSpec,
    seen: &[Seen<'_>],
    new_hash: &str,
    context: &Context<'_>,
) -> Decision {
    let template = &spec.template;
    let running: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter(|s| s.counted())
        .map(|s| s.replica.node)
        .collect();
    let eligible = eligible_nodes(
        context.desired,
        template,
        |n| context.location(n),
        |n| running.contains(n),
    );
    let want = eligible.len() as u32;
    let mut nodes: BTreeMap<&str, NodePods<'_, '_>> = eligible
        .iter()
        .map(|(name, may_create)| {
            let pods = NodePods {
                location: context.location(name),
                new: Vec::new(),
                old: Vec::new(),
                terminating: false,
                may_create: *may_create,
            };
            (*name, pods)
        })
        .collect();
    let mut removes = Vec::new();
    // A pod being stopped, or failed and removed by this plan, holds its
    // node's ports (and its name, slot 0 being every node's): the node's new
    // pod waits until it is gone.
    for s in seen.iter().filter(|s| {
        s.state == ReplicaState::Terminating
            || (s.state == ReplicaState::Failed && s.location == Location::Live)
    }) {
        if let Some(pods) = nodes.get_mut(s.replica.node) {
            pods.terminating = true;
        }
    }
    for s in seen.iter().filter(|s| s.counted()) {
        match nodes.get_mut(s.replica.node) {
            Some(pods) if s.replica.key.template_hash == new_hash => pods.new.push(s),
            Some(pods) => pods.old.push(s),
            // On a node that should not run it: removed where it can be,
            // when it must leave (an untolerated `NoSchedule` taint lets it
            // run on, as in Kubernetes).
            None if s.location == Location::Live => {
                let why = context
                    .desired
                    .node(s.replica.node)
                    .and_then(|node| eviction(node, template));
                if let Some(why) = why {
                    removes.push(remove_action(
                        key,
                        s.replica,
                        false,
                        format!("node {} should not run it: {why}", s.replica.node),
                    ));
                }
            }
            None => {}
        }
    }

    let mut creates = Vec::new();
    let create = |node: &str, rollout: bool, reason: String| Create {
        slot: SLOT,
        node: Some(node.to_string()),
        reason,
        rollout,
    };
    let remove_old = |pods: &NodePods<'_, '_>, removes: &mut Vec<_>, reason: &str| {
        for s in pods.old.iter().filter(|s| s.location == Location::Live) {
            removes.push(remove_action(
                key,
                s.replica,
                true,
                format!("{reason}: old revision {}", s.replica.key.template_hash),
            ));
        }
    };
    // Nodes without any pod get one now, whatever the strategy.
    for (name, pods) in &nodes {
        if pods.live()
            && pods.new.is_empty()
            && pods.old.is_empty()
            && !pods.terminating
            && pods.may_create
        {
            creates.push(create(name, false, format!("node {name} has no pod")));
        }
    }
    let has_old = nodes.values().any(|pods| !pods.old.is_empty());
    let mut rollout = None;
    match &spec.strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } if has_old && !spec.paused => {
            let surge = max_surge.resolve(want, true);
            let mut unavailable = max_unavailable.resolve(want, true);
            if surge == 0 && unavailable == 0 {
                unavailable = 1;
            }
            let reason = format!("rolling update to revision {new_hash}");
            let mut replaced = 0u32;
            // Both revisions on one node (a surge, or a leader stopped
            // half-way): the old goes once the new is available.
            for pods in nodes.values().filter(|pods| {
                pods.live() && !pods.old.is_empty() && !pods.new.is_empty() && pods.new_available()
            }) {
                remove_old(pods, &mut removes, "rolling update");
            }
            // Nodes with only an old pod: to replace, within the budgets.
            let to_replace = nodes
                .iter()
                .filter(|(_, pods)| pods.live() && !pods.old.is_empty() && pods.new.is_empty());
            if surge == 0 {
                let mut lacking = nodes.values().filter(|pods| !pods.available()).count() as u32;
                for (_, pods) in to_replace {
                    if !pods.available() {
                        remove_old(pods, &mut removes, "rolling update, unavailable");
                        replaced += 1;
                    } else if lacking < unavailable {
                        lacking += 1;
                        remove_old(pods, &mut removes, "rolling update");
                        replaced += 1;
                    }
                }
            } else {
                let mut surging = nodes
                    .values()
                    .filter(|pods| {
                        !pods.old.is_empty() && !pods.new.is_empty() && !pods.new_available()
                    })
                    .count() as u32;
                for (name, pods) in to_replace {
                    if !pods.may_create || pods.terminating {
                        // No new pod goes there (or not yet): the old one
                        // goes when it no longer holds a new one back.
                        if !pods.may_create {
                            remove_old(
                                pods,
                                &mut removes,
                                "rolling update, no new pod on this node",
                            );
                        }
                    } else if !pods.available() {
                        creates.push(create(name, true, reason.clone()));
                        replaced += 1;
                    } else if surging < surge {
                        surging += 1;
                        creates.push(create(name, true, reason.clone()));
                        replaced += 1;
                    }
                }
            }
            let updated = nodes.values().filter(|pods| !pods.new.is_empty()).count() as u32;
            rollout = Some(RolloutStatus {
                strategy: RolloutStrategy::RollingUpdate,
                updated: updated + if surge == 0 { 0 } else { replaced },
                desired: want,
                new_template_hash: new_hash.to_string(),
                max_surge: surge,
                max_unavailable: if surge == 0 { unavailable } else { 0 },
            });
        }
        // OnDelete, a held rollout, or nothing to replace: old pods stay.
        _ => {}
    }
    Decision {
        want,
        creates,
        removes,
        rollout,
        held: None,
    }
}
