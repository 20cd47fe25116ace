//! One pod bound to each eligible node (DaemonSet), with Kubernetes'
//! DaemonSet controller's semantics.
//!
//! A node is eligible when its labels satisfy the pod's node selector and
//! required node affinity, and the pod tolerates every `NoSchedule` and
//! `NoExecute` taint it has, counting the tolerations Kubernetes adds to
//! every DaemonSet pod (not-ready, unreachable, unschedulable, pressure):
//! a cordoned node keeps its pod, a node tainted `NoExecute` loses it.
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
pub(crate) fn ineligibility(node: &Node, template: &PodTemplate) -> Option<String> {
    if !matches_node_affinity(&node.scheduling_labels(), template) {
        return Some(FilterReason::NodeAffinity.message());
    }
    node.spec
        .taints
        .iter()
        .find(|taint| !tolerated(taint, template))
        .map(|taint| {
            FilterReason::UntoleratedTaint {
                key: taint.key.clone(),
                value: taint.value.clone(),
            }
            .message()
        })
}

fn tolerated(taint: &Taint, template: &PodTemplate) -> bool {
    matches!(taint.effect, TaintEffect::PreferNoSchedule)
        || DAEMON_TOLERATIONS
            .iter()
            .any(|(key, effect)| taint.key == *key && taint.effect == *effect)
        || template.spec.tolerations.iter().any(|t| t.tolerates(taint))
}

/// The declared nodes that should run the pod and are not lost, by name.
pub(super) fn eligible_nodes<'d>(
    desired: &'d DesiredState,
    template: &PodTemplate,
    location: impl Fn(&str) -> Location,
) -> Vec<&'d str> {
    desired
        .nodes
        .iter()
        .filter(|node| ineligibility(node, template).is_none())
        .map(|node| node.meta.name.as_str())
        .filter(|name| location(name) != Location::Lost)
        .collect()
}

/// The pods of one eligible node, by revision.
#[derive(Default)]
struct NodePods<'s, 'a> {
    location: Option<Location>,
    new: Vec<&'s Seen<'a>>,
    old: Vec<&'s Seen<'a>>,
    /// A pod is being stopped there: its ports and resources are not free
    /// yet, so a new one waits for it to be gone.
    terminating: bool,
}

impl NodePods<'_, '_> {
    fn new_available(&self) -> bool {
        self.new.iter().any(|s| s.state == ReplicaState::Ready)
    }

    fn available(&self) -> bool {
        self.new_available() || self.old.iter().any(|s| s.state == ReplicaState::Ready)
    }

    fn live(&self) -> bool {
        self.location == Some(Location::Live)
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
    let eligible = eligible_nodes(context.desired, template, |n| context.location(n));
    let want = eligible.len() as u32;
    let mut nodes: BTreeMap<&str, NodePods<'_, '_>> = eligible
        .iter()
        .map(|name| {
            let pods = NodePods {
                location: Some(context.location(name)),
                ..NodePods::default()
            };
            (*name, pods)
        })
        .collect();
    let mut removes = Vec::new();
    for s in seen.iter().filter(|s| s.state == ReplicaState::Terminating) {
        if let Some(pods) = nodes.get_mut(s.replica.node) {
            pods.terminating = true;
        }
    }
    for s in seen.iter().filter(|s| s.counted()) {
        match nodes.get_mut(s.replica.node) {
            Some(pods) if s.replica.key.template_hash == new_hash => pods.new.push(s),
            Some(pods) => pods.old.push(s),
            // On a node that should not run it: removed where it can be.
            None if s.location == Location::Live => {
                let why = context
                    .desired
                    .node(s.replica.node)
                    .and_then(|node| ineligibility(node, template))
                    .unwrap_or_else(|| "node is not eligible".to_string());
                removes.push(remove_action(
                    key,
                    s.replica,
                    false,
                    format!("node {} should not run it: {why}", s.replica.node),
                ));
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
        if pods.live() && pods.new.is_empty() && pods.old.is_empty() && !pods.terminating {
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
            if surge == 0 {
                let mut lacking = nodes.values().filter(|pods| !pods.available()).count() as u32;
                for pods in nodes.values() {
                    if pods.old.is_empty() || !pods.live() {
                        continue;
                    }
                    if !pods.new.is_empty() {
                        // Both revisions on one node (a surge before, or a
                        // leader stopped half-way): the old goes once the
                        // new is available.
                        if pods.new_available() {
                            remove_old(pods, &mut removes, "rolling update");
                        }
                        continue;
                    }
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
                for (name, pods) in &nodes {
                    if pods.old.is_empty() || !pods.live() {
                        continue;
                    }
                    if !pods.new.is_empty() {
                        if pods.new_available() {
                            remove_old(pods, &mut removes, "rolling update");
                        }
                        continue;
                    }
                    if !pods.available() {
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
