//! From (desired, observed, now) to a [`Plan`]: per Deployment, scaling,
//! rollout steps, restarts and replacements; per undeclared object, pruning.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cluster::{
    group_replicas, ContainerState, Contents, FnvHashMap, ManagedLabels, ObservedCluster,
    ObservedReplica, Reachability, ReadinessGate, ReplicaState,
};
use crate::manifest::model::{
    ClusterSettings, Deployment, DesiredState, Kind, ObjectKey, PodTemplate, Strategy,
};
use crate::manifest::template_hash;

use super::scheduler::{PodRef, Scheduler};
use super::{
    Action, ContainerRef, Held, NodeCondition, NodeStatus, ObjectStatus, Operation, Plan,
    RolloutStatus, RolloutStrategy, Unschedulable,
};

/// Where a replica stands with respect to its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    /// On a reachable, declared node: it can be acted on.
    Live,
    /// On a node unreachable within the grace period: counted, left alone.
    Unknown,
    /// On a node unreachable past the grace period, or no longer declared:
    /// not counted, left alone, placed again elsewhere.
    Lost,
}

struct Seen<'a> {
    replica: &'a ObservedReplica<'a>,
    location: Location,
    state: ReplicaState,
}

/// Computes the actions that move `observed` toward `desired`.
///
/// Deterministic: the same inputs give the same plan, whatever the order of
/// maps or the machine. Level-triggered: applying the plan, observing and
/// planning again gives an empty plan once the cluster has converged.
pub fn plan(
    desired: &DesiredState,
    observed: &ObservedCluster,
    commit: &str,
    now: SystemTime,
) -> Plan {
    let settings = &desired.cluster;
    let replicas = group_replicas(observed);
    let mut scheduler = Scheduler::new(desired, observed);

    let declared: HashSet<&str> = desired.nodes.iter().map(|n| n.meta.name.as_str()).collect();
    let node_locations: FnvHashMap<&str, Location> = observed
        .nodes
        .values()
        .map(|n| {
            (
                n.name.as_str(),
                location(&declared, settings, &n.reachability, &n.name, now),
            )
        })
        .collect();
    // Declared nodes never reached by the observer, within the grace period:
    // any replica not accounted for elsewhere may be running there.
    let mut unknown_nodes: Vec<&str> = observed
        .nodes
        .values()
        .filter(|n| {
            n.reachability.contents_unknown()
                && node_locations.get(n.name.as_str()) == Some(&Location::Unknown)
        })
        .map(|n| n.name.as_str())
        .collect();
    unknown_nodes.sort_unstable();

    // Replicas per object: `group_replicas` sorts by key, so each object's
    // replicas are contiguous.
    let by_object: Vec<(ObjectKey, Vec<&ObservedReplica<'_>>)> = replicas
        .chunk_by(|a, b| {
            (a.key.kind, a.key.namespace, a.key.name) == (b.key.kind, b.key.namespace, b.key.name)
        })
        .map(|chunk| {
            let first = &chunk[0].key;
            let key = ObjectKey {
                kind: first.kind,
                namespace: first.namespace.to_string(),
                name: first.name.to_string(),
            };
            (key, chunk.iter().collect())
        })
        .collect();

    // What already runs takes its resources, whatever happens to it later in
    // this plan: removals are not counted as freed until they are observed.
    for (_, object_replicas) in &by_object {
        let live_nodes = object_replicas.iter().filter_map(|r| {
            (node_locations.get(r.node) == Some(&Location::Live))
                .then(|| scheduler.node_index(r.node))
                .flatten()
        });
        let live_nodes: Vec<usize> = live_nodes.collect();
        match declared_deployment(desired, object_replicas[0]) {
            Some(d) => scheduler.add_pods(
                PodRef {
                    namespace: &d.meta.namespace,
                    name: &d.meta.name,
                    template: &d.spec.template,
                },
                live_nodes,
            ),
            None => {
                for index in live_nodes {
                    scheduler.add_unknown_pod(index);
                }
            }
        }
    }

    let mut out = Plan {
        commit: commit.to_string(),
        ..Plan::default()
    };
    let mut pruned: Vec<(ObjectKey, Vec<&ObservedReplica<'_>>)> = Vec::new();
    let mut sorted_deployments: Vec<&Deployment> = desired.deployments.iter().collect();
    sorted_deployments
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    let deployments = sorted_deployments.into_iter();
    let mut observed_objects = by_object.into_iter().peekable();
    let mut deployments = deployments.peekable();
    // Walk declared deployments and observed objects in key order together.
    loop {
        let next_declared = deployments.peek().map(|d| d.key());
        let next_observed = observed_objects.peek().map(|(k, _)| k.clone());
        match (next_declared, next_observed) {
            (None, None) => break,
            (Some(dk), Some(ok)) if dk == ok => {
                let d = deployments.next().expect("peeked");
                let (_, rs) = observed_objects.next().expect("peeked");
                plan_deployment(
                    &mut out,
                    &mut scheduler,
                    d,
                    &rs,
                    &node_locations,
                    &unknown_nodes,
                    commit,
                    now,
                );
            }
            (Some(dk), ok) if ok.as_ref().is_none_or(|ok| dk < *ok) => {
                let d = deployments.next().expect("peeked");
                plan_deployment(
                    &mut out,
                    &mut scheduler,
                    d,
                    &[],
                    &node_locations,
                    &unknown_nodes,
                    commit,
                    now,
                );
            }
            _ => {
                let (key, rs) = observed_objects.next().expect("peeked");
                pruned.push((key, rs));
            }
        }
    }
    for (key, rs) in pruned {
        plan_prune(&mut out, key, &rs, &node_locations, now);
    }
    out.objects.sort_by(|a, b| a.key.cmp(&b.key));
    out.nodes = node_statuses(desired, &declared, observed, settings, &replicas, now);
    out
}

fn location(
    declared: &HashSet<&str>,
    settings: &ClusterSettings,
    reachability: &Reachability,
    node: &str,
    now: SystemTime,
) -> Location {
    if !declared.contains(node) {
        return Location::Lost;
    }
    match reachability {
        Reachability::Reachable => Location::Live,
        Reachability::Unreachable { since, .. } => {
            if unreachable_seconds(*since, now) > u64::from(settings.node_grace_period_seconds) {
                Location::Lost
            } else {
                Location::Unknown
            }
        }
    }
}

fn unreachable_seconds(since: SystemTime, now: SystemTime) -> u64 {
    now.duration_since(since).map_or(0, |d| d.as_secs())
}

fn declared_deployment<'d>(
    desired: &'d DesiredState,
    r: &ObservedReplica<'_>,
) -> Option<&'d Deployment> {
    if r.key.kind != Kind::Deployment {
        return None;
    }
    desired.deployment(r.key.namespace, r.key.name)
}

/// Removal order: the least useful first (failed, pending, running, ready),
/// then the newest (highest slot), as Kubernetes' ReplicaSet picks pods to delete.
fn removal_order(a: &Seen<'_>, b: &Seen<'_>) -> std::cmp::Ordering {
    a.state
        .cmp(&b.state)
        .then_with(|| b.replica.key.slot.cmp(&a.replica.key.slot))
        .then_with(|| a.replica.node.cmp(b.replica.node))
}

#[allow(clippy::too_many_arguments)]
fn plan_deployment<'d>(
    out: &mut Plan,
    scheduler: &mut Scheduler<'d>,
    d: &'d Deployment,
    replicas: &[&ObservedReplica<'_>],
    node_locations: &FnvHashMap<&str, Location>,
    unknown_nodes: &[&str],
    commit: &str,
    now: SystemTime,
) {
    let key = d.key();
    let spec = &d.spec;
    let want = spec.replicas;
    let new_hash = template_hash(&spec.template);
    let gate = ReadinessGate {
        template: &spec.template,
        min_ready_seconds: spec.min_ready_seconds,
    };
    let seen: Vec<Seen<'_>> = replicas
        .iter()
        .map(|r| {
            let location = node_locations
                .get(r.node)
                .copied()
                .unwrap_or(Location::Lost);
            let is_new = r.key.template_hash == new_hash;
            Seen {
                replica: r,
                location,
                state: r.state(is_new.then_some(gate), now),
            }
        })
        .collect();
    let is_new = |s: &&Seen<'_>| s.replica.key.template_hash == new_hash;
    let counted = |s: &&Seen<'_>| {
        s.location == Location::Unknown
            || (s.location == Location::Live && s.state != ReplicaState::Failed)
    };

    let mut creates: Vec<(u32, String)> = Vec::new(); // (slot, reason) to schedule
    let mut rollout_creates = 0u32;
    let mut actions: Vec<Action> = Vec::new();
    let mut removes: Vec<Action> = Vec::new();
    let template = Arc::new(spec.template.clone());

    // Failed replicas are removed; their replacements come from the counts.
    for s in seen
        .iter()
        .filter(|s| s.location == Location::Live && s.state == ReplicaState::Failed)
    {
        removes.push(remove_action(
            &key,
            s.replica,
            false,
            failure_reason(s.replica),
        ));
    }

    // Repairs of the current revision: missing containers, stopped ones.
    for s in seen
        .iter()
        .filter(|s| s.location == Location::Live && s.state == ReplicaState::Pending)
        .filter(is_new)
    {
        let missing: Vec<&str> = spec
            .template
            .spec
            .containers
            .iter()
            .filter(|c| {
                !s.replica
                    .containers
                    .iter()
                    .any(|o| o.labels.container == c.name)
            })
            .map(|c| c.name.as_str())
            .collect();
        if !missing.is_empty() {
            actions.push(create_action(
                &key,
                s.replica.key.slot,
                s.replica.node,
                &new_hash,
                commit,
                &template,
                false,
                format!("container(s) {} missing", missing.join(", ")),
            ));
        }
        let to_start = s
            .replica
            .containers_to_start(spec.template.spec.restart_policy);
        if !to_start.is_empty() {
            let names: Vec<String> = to_start
                .iter()
                .map(|c| c.labels.container.clone())
                .collect();
            let first = to_start[0];
            actions.push(Action {
                object: key.clone(),
                slot: s.replica.key.slot,
                node: s.replica.node.to_string(),
                template_hash: new_hash.clone(),
                rollout: false,
                reason: format!(
                    "container(s) {} {}, restartPolicy {:?}",
                    names.join(", "),
                    describe_state(first.state),
                    spec.template.spec.restart_policy
                ),
                operation: Operation::Start {
                    containers: to_start.iter().map(|c| container_ref(c)).collect(),
                },
            });
        }
    }

    let new: Vec<&Seen<'_>> = seen.iter().filter(is_new).filter(counted).collect();
    let old: Vec<&Seen<'_>> = seen.iter().filter(|s| !is_new(s)).filter(counted).collect();
    let lost = seen.iter().filter(|s| s.location == Location::Lost).count() as u32;
    let ready =
        |v: &[&Seen<'_>]| v.iter().filter(|s| s.state == ReplicaState::Ready).count() as u32;
    let mut rollout = None;
    let n_new = new.len() as u32;
    let n_old = old.len() as u32;

    let scale_reason = |present: u32| {
        if lost > 0 {
            format!("replaces {lost} replica(s) on lost node(s); {present}/{want} replicas present")
        } else {
            format!("{present}/{want} replicas present")
        }
    };

    if n_old == 0 || spec.paused {
        // Steady state (or a paused rollout): scale the current revision.
        let present = n_new + if spec.paused { n_old } else { 0 };
        if present < want {
            let reason = scale_reason(present);
            for slot in free_slots(&seen, &new_hash, want - present) {
                creates.push((slot, reason.clone()));
            }
        } else if n_new > 0 && present > want {
            let surplus = present - want;
            for s in live_in_removal_order(&new)
                .into_iter()
                .take(surplus as usize)
            {
                removes.push(remove_action(
                    &key,
                    s.replica,
                    false,
                    format!("scale down to {want}"),
                ));
            }
        }
    } else {
        match &spec.strategy {
            Strategy::Recreate => {
                for s in old.iter().filter(|s| s.location == Location::Live) {
                    removes.push(remove_action(
                        &key,
                        s.replica,
                        true,
                        format!("recreate: old revision {}", s.replica.key.template_hash),
                    ));
                }
                rollout = Some(RolloutStatus {
                    strategy: RolloutStrategy::Recreate,
                    updated: n_new,
                    desired: want,
                    new_template_hash: new_hash.clone(),
                    max_surge: 0,
                    max_unavailable: want,
                });
            }
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => {
                let surge = max_surge.resolve(want, true);
                let mut unavailable = max_unavailable.resolve(want, false);
                if surge == 0 && unavailable == 0 {
                    unavailable = 1;
                }
                let total = n_new + n_old;
                // Old revision: first the unhealthy ones, within what keeps
                // enough replicas, then healthy ones down to minAvailable.
                let min_available = want.saturating_sub(unavailable);
                let new_unavailable = n_new - ready(&new);
                let mut cleanup = total
                    .saturating_sub(min_available)
                    .saturating_sub(new_unavailable);
                let old_live = live_in_removal_order(&old);
                let mut removed_old = 0u32;
                for s in old_live.iter().filter(|s| s.state != ReplicaState::Ready) {
                    if cleanup == 0 {
                        break;
                    }
                    cleanup -= 1;
                    removed_old += 1;
                    removes.push(remove_action(
                        &key,
                        s.replica,
                        true,
                        format!(
                            "rolling update: old revision {}, {}",
                            s.replica.key.template_hash,
                            s.state.as_str()
                        ),
                    ));
                }
                let available = ready(&new) + ready(&old);
                let healthy = available.saturating_sub(min_available);
                for s in old_live
                    .iter()
                    .filter(|s| s.state == ReplicaState::Ready)
                    .take(healthy as usize)
                {
                    removed_old += 1;
                    removes.push(remove_action(
                        &key,
                        s.replica,
                        true,
                        format!(
                            "rolling update: old revision {}",
                            s.replica.key.template_hash
                        ),
                    ));
                }
                // New revision: up to `want + surge` replicas in all, not
                // counting those removed just above (terminating replicas
                // do not count against maxSurge, as in Kubernetes), so the
                // next wave starts while the old one stops.
                let up = (want + surge)
                    .saturating_sub(total - removed_old)
                    .min(want.saturating_sub(n_new));
                let reason = format!("rolling update to revision {new_hash}");
                for slot in free_slots(&seen, &new_hash, up) {
                    creates.push((slot, reason.clone()));
                }
                rollout_creates = up;
                // Scaled down in the middle of a rollout: trim the new revision too.
                if n_new > want {
                    for s in live_in_removal_order(&new)
                        .into_iter()
                        .take((n_new - want) as usize)
                    {
                        removes.push(remove_action(
                            &key,
                            s.replica,
                            false,
                            format!("scale down to {want}"),
                        ));
                    }
                }
                rollout = Some(RolloutStatus {
                    strategy: RolloutStrategy::RollingUpdate,
                    updated: n_new + up,
                    desired: want,
                    new_template_hash: new_hash.clone(),
                    max_surge: surge,
                    max_unavailable: unavailable,
                });
            }
        }
    }

    // Replicas nobody accounts for may run on a node never seen: creating
    // them elsewhere could duplicate them, so none is created until those
    // nodes answer or their grace period has passed.
    let unaccounted = want.saturating_sub(n_new + n_old);
    let mut held = 0;
    if unaccounted > 0 && !unknown_nodes.is_empty() {
        held = unaccounted;
        creates.clear();
        if let Some(rollout) = &mut rollout {
            rollout.updated = n_new;
        }
        out.held.push(Held {
            object: key.clone(),
            replicas: unaccounted,
            nodes: unknown_nodes.iter().map(|n| n.to_string()).collect(),
        });
    }

    // Place the new replicas, one scan of the nodes each.
    if !creates.is_empty() {
        let slots: Vec<u32> = creates.iter().map(|(slot, _)| *slot).collect();
        let pod = PodRef {
            namespace: &d.meta.namespace,
            name: &d.meta.name,
            template: &d.spec.template,
        };
        let placements = scheduler.schedule(pod, &slots);
        let mut placed = Vec::with_capacity(creates.len());
        for (((slot, reason), placement), index) in creates.into_iter().zip(placements).zip(0u32..)
        {
            match placement {
                Ok(node) => placed.push(create_action(
                    &key,
                    slot,
                    scheduler.node_name(node),
                    &new_hash,
                    commit,
                    &template,
                    index < rollout_creates && rollout.is_some(),
                    reason,
                )),
                Err(reason) => out.unschedulable.push(Unschedulable {
                    object: key.clone(),
                    slot,
                    template_hash: new_hash.clone(),
                    reason,
                }),
            }
        }
        placed.append(&mut actions);
        actions = placed;
    }
    removes.sort_by(|a, b| b.slot.cmp(&a.slot).then_with(|| a.node.cmp(&b.node)));
    out.actions.extend(actions);
    out.actions.extend(removes);
    out.objects.push(ObjectStatus {
        key,
        desired: Some(want),
        on_reachable_nodes: seen.iter().filter(|s| s.location == Location::Live).count() as u32,
        unknown: seen
            .iter()
            .filter(|s| s.location == Location::Unknown)
            .count() as u32
            + held,
        lost,
        rollout,
    });
}

/// Replicas that can be removed (on reachable nodes), least useful first.
fn live_in_removal_order<'s, 'a>(replicas: &[&'s Seen<'a>]) -> Vec<&'s Seen<'a>> {
    let mut live: Vec<&Seen<'_>> = replicas
        .iter()
        .copied()
        .filter(|s| s.location == Location::Live)
        .collect();
    live.sort_by(|a, b| removal_order(a, b));
    live
}

/// The `count` lowest slots no observed replica of this revision holds.
fn free_slots(seen: &[Seen<'_>], template_hash: &str, count: u32) -> Vec<u32> {
    let mut used: Vec<u32> = seen
        .iter()
        .filter(|s| s.replica.key.template_hash == template_hash)
        .map(|s| s.replica.key.slot)
        .collect();
    used.sort_unstable();
    used.dedup();
    let mut free = Vec::with_capacity(count as usize);
    let mut used = used.into_iter().peekable();
    let mut slot = 0u32;
    while free.len() < count as usize {
        while used.peek().is_some_and(|u| *u < slot) {
            used.next();
        }
        if used.peek() != Some(&slot) {
            free.push(slot);
        }
        slot += 1;
    }
    free
}

#[allow(clippy::too_many_arguments)]
fn create_action(
    key: &ObjectKey,
    slot: u32,
    node: &str,
    template_hash: &str,
    commit: &str,
    template: &Arc<PodTemplate>,
    rollout: bool,
    reason: String,
) -> Action {
    let containers = template
        .spec
        .containers
        .iter()
        .map(|c| ManagedLabels {
            namespace: key.namespace.clone(),
            kind: key.kind,
            name: key.name.clone(),
            slot,
            template_hash: template_hash.to_string(),
            commit: commit.to_string(),
            node: node.to_string(),
            container: c.name.clone(),
        })
        .collect();
    Action {
        object: key.clone(),
        slot,
        node: node.to_string(),
        template_hash: template_hash.to_string(),
        rollout,
        reason,
        operation: Operation::Create {
            containers,
            template: Arc::clone(template),
        },
    }
}

fn remove_action(
    key: &ObjectKey,
    replica: &ObservedReplica<'_>,
    rollout: bool,
    reason: String,
) -> Action {
    Action {
        object: key.clone(),
        slot: replica.key.slot,
        node: replica.node.to_string(),
        template_hash: replica.key.template_hash.to_string(),
        rollout,
        reason,
        operation: Operation::Remove {
            containers: replica
                .containers
                .iter()
                .map(|c| container_ref(c))
                .collect(),
        },
    }
}

fn container_ref(c: &crate::cluster::ObservedContainer) -> ContainerRef {
    ContainerRef {
        id: c.id.clone(),
        name: c.name.clone(),
    }
}

fn describe_state(state: ContainerState) -> String {
    match state {
        ContainerState::Created => "created, not started".into(),
        ContainerState::Exited { code } => format!("exited with code {code}"),
        ContainerState::Running => "running".into(),
        ContainerState::Restarting => "restarting".into(),
        ContainerState::Paused => "paused".into(),
        ContainerState::Removing => "being removed".into(),
        ContainerState::Dead => "dead".into(),
    }
}

fn failure_reason(replica: &ObservedReplica<'_>) -> String {
    let failed = replica.containers.iter().find(|c| {
        matches!(
            c.state,
            ContainerState::Dead | ContainerState::Removing | ContainerState::Exited { .. }
        )
    });
    match failed {
        Some(c) => format!(
            "failed: container {} {}",
            c.labels.container,
            describe_state(c.state)
        ),
        None => "failed".into(),
    }
}

/// Objects that run but are no longer declared: every replica on a
/// reachable node is removed; the others are left alone.
fn plan_prune(
    out: &mut Plan,
    key: ObjectKey,
    replicas: &[&ObservedReplica<'_>],
    node_locations: &FnvHashMap<&str, Location>,
    _now: SystemTime,
) {
    let mut removes = Vec::new();
    let (mut live, mut unknown, mut lost) = (0, 0, 0);
    for r in replicas {
        match node_locations
            .get(r.node)
            .copied()
            .unwrap_or(Location::Lost)
        {
            Location::Live => {
                live += 1;
                removes.push(remove_action(
                    &key,
                    r,
                    false,
                    format!("{key} is no longer declared"),
                ));
            }
            Location::Unknown => unknown += 1,
            Location::Lost => lost += 1,
        }
    }
    removes.sort_by(|a, b| b.slot.cmp(&a.slot).then_with(|| a.node.cmp(&b.node)));
    out.actions.extend(removes);
    out.objects.push(ObjectStatus {
        key,
        desired: None,
        on_reachable_nodes: live,
        unknown,
        lost,
        rollout: None,
    });
}

fn node_statuses(
    desired: &DesiredState,
    declared: &HashSet<&str>,
    observed: &ObservedCluster,
    settings: &ClusterSettings,
    replicas: &[ObservedReplica<'_>],
    now: SystemTime,
) -> Vec<NodeStatus> {
    let count = |node: &str| replicas.iter().filter(|r| r.node == node).count() as u32;
    let mut statuses = Vec::new();
    for node in &desired.nodes {
        let name = node.meta.name.as_str();
        match observed.nodes.get(name).map(|n| &n.reachability) {
            None => statuses.push(NodeStatus {
                name: name.to_string(),
                condition: NodeCondition::NotObserved,
                replicas: 0,
            }),
            Some(Reachability::Unreachable {
                since,
                reason,
                contents,
            }) => {
                let seconds = unreachable_seconds(*since, now);
                statuses.push(NodeStatus {
                    name: name.to_string(),
                    condition: NodeCondition::Unreachable {
                        seconds,
                        grace_seconds: settings.node_grace_period_seconds,
                        past_grace: seconds > u64::from(settings.node_grace_period_seconds),
                        reason: reason.clone(),
                        contents_unknown: *contents == Contents::Unknown,
                    },
                    replicas: count(name),
                });
            }
            Some(Reachability::Reachable) => {}
        }
    }
    for name in observed.nodes.keys() {
        if !declared.contains(name.as_str()) {
            statuses.push(NodeStatus {
                name: name.clone(),
                condition: NodeCondition::NotDeclared,
                replicas: count(name),
            });
        }
    }
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    statuses
}
