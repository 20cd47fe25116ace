//! Pods with stable ordinals (StatefulSet), with Kubernetes' StatefulSet
//! controller's semantics.
//!
//! The pod of ordinal `o` is slot `o`; its claims are its own (pinned to
//! their node by `claims`). At most one pod holds an ordinal, ever: a pod on
//! a node that is unreachable, even past its grace period, still holds it
//! (Kubernetes does not replace such a pod without a force delete); only a
//! node removed from Git frees what it held, and the ordinal waits, saying
//! why.
//!
//! `OrderedReady` creates the lowest missing ordinal only once every lower
//! one is ready, one per plan, and removes ordinals scaled away from the
//! highest down, one at a time, only while every remaining pod is ready.
//! `Parallel` creates and removes them all at once. `RollingUpdate`
//! replaces pods of an older revision from the highest ordinal down to
//! `partition`, removing one and letting the creation above put the new
//! revision in its place, within `maxUnavailable` (1 by default) not-ready
//! pods; `OrderedReady` also waits until every pod is ready. An outdated
//! pod that is not ready is replaced at once, outside the budget (it serves
//! nothing): a failed revision, reverted, does not stay stuck on its broken
//! pod as Kubernetes' would. `OnDelete` leaves old pods until they are
//! removed by hand.

use std::collections::BTreeMap;

use crate::cluster::ReplicaState;
use crate::manifest::model::{ObjectKey, PodManagement, Strategy, WorkloadSpec};
use crate::plan::{Held, RolloutStatus, RolloutStrategy, Waiting};

use super::{remove_action, Context, Create, Decision, Location, Seen};

/// Why `OrderedReady` waits: the first of `ordinals` whose pod is not
/// ready, as the planner sees it, or a pod still stopping.
fn ordered_wait(
    set: &str,
    ordinals: std::ops::Range<u32>,
    by_ordinal: &BTreeMap<u32, Vec<&Seen<'_>>>,
    terminating: bool,
) -> String {
    for ordinal in ordinals {
        let state = match by_ordinal.get(&ordinal).map(Vec::as_slice) {
            None | Some([]) => "missing",
            Some([one]) if one.location != Location::Live => "on a node that is not reachable",
            Some([one]) if one.state == ReplicaState::Ready => continue,
            Some([one]) => one.state.as_str(),
            Some(_) => "held by more than one pod",
        };
        return format!(
            "OrderedReady goes one ordinal at a time, each once the ones before are ready: {set}-{ordinal} is {state}"
        );
    }
    if terminating {
        return "OrderedReady waits for a pod being stopped to be gone".to_string();
    }
    "OrderedReady waits".to_string()
}

/// Which ordinals to create and which pods to remove.
#[allow(clippy::too_many_arguments)]
pub(super) fn decide(
    key: &ObjectKey,
    spec: &WorkloadSpec,
    replicas: u32,
    start: u32,
    seen: &[Seen<'_>],
    new_hash: &str,
    context: &Context<'_>,
    waiting: &mut Vec<Waiting>,
) -> Decision {
    // A StatefulSet always has its own fields (the decoder sets them);
    // Kubernetes' defaults otherwise.
    let (ordered, partition) = spec.stateful.as_ref().map_or((true, 0), |set| {
        (
            set.pod_management == PodManagement::OrderedReady,
            set.partition,
        )
    });
    let end = start.saturating_add(replicas);
    let in_range = |ordinal: u32| ordinal >= start && ordinal < end;

    // The pods holding each ordinal: on a reachable node, on a node within
    // or past its grace period, anything but a node no longer declared.
    let holds = |s: &Seen<'_>| match s.location {
        Location::Live | Location::Unknown => true,
        Location::Lost => context.desired.node(s.replica.node).is_some(),
    };
    let mut by_ordinal: BTreeMap<u32, Vec<&Seen<'_>>> = BTreeMap::new();
    for s in seen.iter().filter(|s| holds(s)) {
        by_ordinal.entry(s.replica.key.slot).or_default().push(s);
    }
    let ready = |ordinal: u32| {
        by_ordinal.get(&ordinal).is_some_and(|pods| {
            pods.len() == 1
                && pods[0].location == Location::Live
                && pods[0].state == ReplicaState::Ready
        })
    };
    let all_ready = (start..end).all(ready);
    let terminating = seen
        .iter()
        .any(|s| s.location == Location::Live && s.state == ReplicaState::Terminating);

    let mut creates = Vec::new();
    let mut removes = Vec::new();

    // Creations, lowest ordinal first.
    let mut unaccounted = 0u32;
    for ordinal in start..end {
        match by_ordinal.get(&ordinal) {
            None => {
                if !context.unknown_nodes.is_empty() {
                    // It may run on a node never seen.
                    unaccounted += 1;
                    continue;
                }
                if ordered && (!(start..ordinal).all(ready) || terminating) {
                    waiting.push(Waiting {
                        object: key.clone(),
                        slot: ordinal,
                        node: None,
                        reason: ordered_wait(&key.name, start..ordinal, &by_ordinal, terminating),
                    });
                    break;
                }
                creates.push(Create {
                    slot: ordinal,
                    node: None,
                    reason: format!(
                        "ordinal {ordinal} missing; {}/{replicas} pods present",
                        by_ordinal.keys().filter(|o| in_range(**o)).count()
                    ),
                    rollout: false,
                });
                if ordered {
                    break;
                }
            }
            Some(pods) => {
                if let Some(away) = pods.iter().find(|s| s.location != Location::Live) {
                    waiting.push(Waiting {
                        object: key.clone(),
                        slot: ordinal,
                        node: Some(away.replica.node.to_string()),
                        reason: format!(
                            "its pod is on node {}, which is not reachable: a StatefulSet never runs two pods of one ordinal, so it is not recreated elsewhere until {} answers or is removed from Git",
                            away.replica.node, away.replica.node
                        ),
                    });
                }
            }
        }
    }

    // Ordinals scaled away, highest first.
    let mut condemned: Vec<&Seen<'_>> = seen
        .iter()
        .filter(|s| !in_range(s.replica.key.slot) && s.location == Location::Live)
        .filter(|s| s.state != ReplicaState::Terminating)
        .collect();
    condemned.sort_by_key(|s| std::cmp::Reverse(s.replica.key.slot));
    let condemned_terminating = seen
        .iter()
        .any(|s| !in_range(s.replica.key.slot) && s.state == ReplicaState::Terminating);
    if ordered {
        if !all_ready || condemned_terminating {
            if let Some(s) = condemned.first() {
                waiting.push(Waiting {
                    object: key.clone(),
                    slot: s.replica.key.slot,
                    node: None,
                    reason: format!(
                        "scale down to {replicas} waits: {}",
                        ordered_wait(
                            &key.name,
                            start..end,
                            &by_ordinal,
                            terminating || condemned_terminating
                        )
                    ),
                });
            }
        } else {
            if let Some(s) = condemned.first() {
                removes.push(remove_action(
                    key,
                    s.replica,
                    false,
                    format!(
                        "scale down to {replicas}: ordinal {} removed, highest first",
                        s.replica.key.slot
                    ),
                ));
            }
        }
    } else {
        for s in &condemned {
            removes.push(remove_action(
                key,
                s.replica,
                false,
                format!("scale down to {replicas}: ordinal {}", s.replica.key.slot),
            ));
        }
    }

    // Updates, highest ordinal first, down to the partition.
    let outdated: Vec<&Seen<'_>> = by_ordinal
        .iter()
        .rev()
        .filter(|(o, _)| in_range(**o) && **o >= partition)
        .flat_map(|(_, pods)| pods.iter().copied())
        .filter(|s| s.replica.key.template_hash != new_hash)
        .collect();
    let mut rollout = None;
    if let Strategy::RollingUpdate {
        max_unavailable, ..
    } = &spec.strategy
    {
        if !outdated.is_empty() {
            let budget = max_unavailable.resolve(replicas, false).max(1);
            let unavailable = (start..end).filter(|o| !ready(*o)).count() as u32;
            let mut room = if ordered {
                u32::from(unavailable == 0 && !terminating)
            } else {
                budget.saturating_sub(unavailable)
            };
            for s in &outdated {
                if s.location != Location::Live {
                    // Its node is away: it holds the ordinal, and is left.
                    continue;
                }
                // An outdated pod that is not ready serves nothing: replacing
                // it costs no availability, whatever the order or budget. A
                // reverted revision's broken pod goes this way (Kubernetes
                // leaves it to be deleted by hand).
                if s.state != ReplicaState::Ready {
                    removes.push(remove_action(
                        key,
                        s.replica,
                        true,
                        format!(
                            "rolling update: ordinal {} from revision {} ({}) to {new_hash}",
                            s.replica.key.slot,
                            s.replica.key.template_hash,
                            s.state.as_str()
                        ),
                    ));
                    continue;
                }
                if room == 0 {
                    continue;
                }
                room -= 1;
                removes.push(remove_action(
                    key,
                    s.replica,
                    true,
                    format!(
                        "rolling update: ordinal {} from revision {} to {new_hash}",
                        s.replica.key.slot, s.replica.key.template_hash
                    ),
                ));
            }
            let targets = (start..end).filter(|o| *o >= partition).count() as u32;
            rollout = Some(RolloutStatus {
                strategy: RolloutStrategy::RollingUpdate,
                updated: targets - outdated.len() as u32,
                desired: targets,
                new_template_hash: new_hash.to_string(),
                max_surge: 0,
                max_unavailable: budget,
            });
        }
    }

    let held = (unaccounted > 0).then(|| Held {
        object: key.clone(),
        replicas: unaccounted,
        nodes: context
            .unknown_nodes
            .iter()
            .map(|n| n.to_string())
            .collect(),
    });
    Decision {
        want: replicas,
        creates,
        removes,
        rollout,
        held,
    }
}
