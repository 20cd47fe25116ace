//! From (desired, observed, now) to a [`Plan`]: per workload, repairs,
//! scaling, rollout steps and placement; per undeclared object, pruning.
//!
//! The machinery here is shared by every kind that runs pods and never asks
//! which kind a workload is. What differs lives in one module per
//! [`PodSet`]: `replicated` (a count of pods placed by the scheduler: a
//! Deployment), `per_node` (one pod bound to each eligible node: a
//! DaemonSet), `ordinal` (a StatefulSet's) and `completions` (pods that run
//! to completion: a Job), each deciding which pods to create and remove.

mod claims;
mod completions;
mod ordinal;
mod per_node;
mod replicated;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cluster::{
    group_replicas, ContainerRole, ContainerState, Contents, FnvHashMap, ManagedLabels,
    ObservedCluster, ObservedReplica, Reachability, ReadinessGate, ReplicaState, SANDBOX_CONTAINER,
};
use crate::manifest::model::{
    ClusterSettings, DesiredState, ObjectKey, PodSet, PodTemplate, Workload,
};
use crate::manifest::template_hash;

use super::scheduler::{PodRef, Scheduler};
use super::{
    Action, ContainerRef, Held, NodeCondition, NodeStatus, ObjectStatus, Operation, Plan,
    RolloutStatus, RunStatus, Runs, Unschedulable,
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

impl<'a> Seen<'a> {
    /// `replica` of `w` as the planner sees it: where it stands and its
    /// state, the readiness gate applying to the current revision only.
    fn of(
        replica: &'a ObservedReplica<'a>,
        w: &Workload,
        new_hash: &str,
        locations: &FnvHashMap<&str, Location>,
        now: SystemTime,
    ) -> Self {
        let gate = ReadinessGate {
            template: &w.spec.template,
            min_ready_seconds: w.spec.min_ready_seconds,
        };
        let is_new = replica.key.template_hash == new_hash;
        Seen {
            replica,
            location: locations
                .get(replica.node)
                .copied()
                .unwrap_or(Location::Lost),
            state: replica.state(is_new.then_some(gate), now),
        }
    }

    /// Counted toward the workload's pods: on a node within its grace
    /// period, or on a reachable node and neither failed nor terminating.
    fn counted(&self) -> bool {
        self.location == Location::Unknown
            || (self.location == Location::Live
                && !matches!(self.state, ReplicaState::Failed | ReplicaState::Terminating))
    }
}

/// What every workload's planning reads besides its own replicas.
struct Context<'a> {
    desired: &'a DesiredState,
    node_locations: FnvHashMap<&'a str, Location>,
    /// Declared nodes never reached, within their grace period.
    unknown_nodes: Vec<&'a str>,
    commit: &'a str,
    /// The recorded runs of pod sets that complete.
    runs: &'a Runs,
}

impl Context<'_> {
    /// A declared node absent from the observation is not known to be
    /// lost: nothing is done there, and what runs there is unknown.
    fn location(&self, node: &str) -> Location {
        self.node_locations
            .get(node)
            .copied()
            .unwrap_or(Location::Unknown)
    }
}

/// A pod to create, decided by a kind's module.
struct Create {
    slot: u32,
    /// The node the pod is bound to; `None` for the scheduler to choose.
    node: Option<String>,
    reason: String,
    /// Part of a rollout (replaces a pod of an older revision).
    rollout: bool,
}

/// What a kind's module decides for one workload.
struct Decision {
    /// The pods the workload should have now.
    want: u32,
    creates: Vec<Create>,
    removes: Vec<Action>,
    rollout: Option<RolloutStatus>,
    /// Pods not created because they may run on a node never seen.
    held: Option<Held>,
}

/// Computes the actions that move `observed` toward `desired`, with no run
/// of a pod set that completes recorded as finished ([`Runs::NoneRecorded`]).
pub fn plan(
    desired: &DesiredState,
    observed: &ObservedCluster,
    commit: &str,
    now: SystemTime,
) -> Plan {
    plan_with_runs(desired, observed, commit, &Runs::NoneRecorded, now)
}

/// Computes the actions that move `observed` toward `desired`, knowing
/// which runs of pod sets that complete are recorded as finished (`runs`,
/// from the notes).
///
/// Deterministic: the same inputs give the same plan, whatever the order of
/// maps or the machine. Level-triggered: applying the plan, observing and
/// planning again gives an empty plan once the cluster has converged.
pub fn plan_with_runs(
    desired: &DesiredState,
    observed: &ObservedCluster,
    commit: &str,
    runs: &Runs,
    now: SystemTime,
) -> Plan {
    let settings = &desired.cluster;
    let replicas = group_replicas(observed);
    let mut scheduler = Scheduler::new(desired, observed);
    let mut claims = claims::Claims::new(desired, observed);
    let declared: HashSet<&str> = desired.nodes.iter().map(|n| n.meta.name.as_str()).collect();
    let node_locations = node_locations(desired, observed, now);
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
    let context = Context {
        desired,
        node_locations,
        unknown_nodes,
        commit,
        runs,
    };

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
    for (key, object_replicas) in &by_object {
        // A pod that ran to completion is kept as a record, and holds
        // nothing (Kubernetes counts a finished pod's requests nowhere).
        let completes = desired
            .workload(key)
            .is_some_and(|w| w.spec.pods.completes());
        let live_nodes = object_replicas.iter().filter_map(|r| {
            let finished = completes
                && r.containers.iter().all(|c| {
                    matches!(
                        c.state,
                        ContainerState::Exited { .. } | ContainerState::Dead
                    )
                });
            (!finished && context.node_locations.get(r.node) == Some(&Location::Live))
                .then(|| scheduler.node_index(r.node))
                .flatten()
        });
        let live_nodes: Vec<usize> = live_nodes.collect();
        match desired.workload(key) {
            Some(w) => scheduler.add_pods(pod_ref(w), live_nodes),
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
    // Declared workloads with their observed replicas, and objects no
    // longer declared, walked in key order together.
    let mut planned: Vec<(&Workload, Vec<&ObservedReplica<'_>>)> = Vec::new();
    let mut pruned: Vec<(ObjectKey, Vec<&ObservedReplica<'_>>)> = Vec::new();
    let mut workloads = desired.workloads.iter().peekable();
    let mut observed_objects = by_object.into_iter().peekable();
    loop {
        let next_declared = workloads.peek().map(|w| w.key());
        let next_observed = observed_objects.peek().map(|(k, _)| k.clone());
        match (next_declared, next_observed) {
            (None, None) => break,
            (Some(dk), Some(ok)) if dk == ok => {
                let w = workloads.next().expect("peeked");
                let (_, rs) = observed_objects.next().expect("peeked");
                planned.push((w, rs));
            }
            (Some(dk), ok) if ok.as_ref().is_none_or(|ok| dk < *ok) => {
                planned.push((workloads.next().expect("peeked"), Vec::new()));
            }
            _ => pruned.push(observed_objects.next().expect("peeked")),
        }
    }
    // Pods bound to nodes are planned first, so that their requests count
    // on their nodes before the scheduler places any replica (Kubernetes'
    // DaemonSet pods take their node's resources the same way).
    planned
        .sort_by_key(|(w, _)| matches!(w.spec.pods, PodSet::Replicas(_) | PodSet::Completions(_)));
    for (w, rs) in planned {
        plan_workload(&mut out, &mut scheduler, &mut claims, &context, w, &rs, now);
    }
    for (key, rs) in pruned {
        plan_prune(&mut out, key, &rs, &context.node_locations);
    }
    out.objects.sort_by(|a, b| a.key.cmp(&b.key));
    out.unknown_capacity = scheduler
        .unknown_capacity_nodes()
        .into_iter()
        .map(str::to_string)
        .collect();
    out.nodes = node_statuses(desired, &declared, observed, settings, &replicas, now);
    out.services = plan_services(desired, &replicas, &out.actions, now);
    let (claim_plans, mut removals) = claims.report(desired, observed);
    out.claims = claim_plans;
    removals.extend(orphaned_pod_volumes(observed, &context, &out.actions));
    out.volume_removals = removals;
    out
}

/// `emptyDir` volumes on reachable nodes whose pod has no container there
/// and is not being created by this plan: what a removed pod left.
fn orphaned_pod_volumes(
    observed: &ObservedCluster,
    context: &Context<'_>,
    actions: &[Action],
) -> Vec<super::VolumeRemoval> {
    let same_pod = |a: &ManagedLabels, b: &ManagedLabels| {
        (a.kind, &a.namespace, &a.name, a.slot, &a.template_hash)
            == (b.kind, &b.namespace, &b.name, b.slot, &b.template_hash)
    };
    let mut removals = Vec::new();
    for node in observed.nodes.values() {
        if context.location(&node.name) != Location::Live || !node.reachability.is_reachable() {
            continue;
        }
        for volume in &node.volumes {
            let crate::cluster::VolumeOwner::Pod { pod, volume: name } = &volume.owner else {
                continue;
            };
            let runs = node.containers.iter().any(|c| same_pod(&c.labels, pod));
            let created = actions.iter().any(|a| {
                a.node == node.name
                    && matches!(&a.operation, Operation::Create { containers, .. }
                        if containers.first().is_some_and(|c| same_pod(c, pod)))
            });
            if !runs && !created {
                removals.push(super::VolumeRemoval {
                    node: node.name.clone(),
                    volume: volume.name.clone(),
                    claim: None,
                    reason: format!(
                        "emptyDir `{name}` of {}[{}] ({}): its pod is gone",
                        pod.name, pod.slot, pod.template_hash
                    ),
                });
            }
        }
    }
    removals
}

/// Each Service's addresses and the endpoint changes `actions` make.
fn plan_services(
    desired: &DesiredState,
    replicas: &[ObservedReplica<'_>],
    actions: &[super::Action],
    now: SystemTime,
) -> Vec<super::ServicePlan> {
    let endpoints = super::endpoints::service_endpoints(desired, replicas, now);
    desired
        .services
        .iter()
        .zip(endpoints)
        .map(|(service, endpoints)| {
            let selects = |key: &ObjectKey| {
                desired
                    .workload(key)
                    .is_some_and(|w| super::endpoints::selects(service, w))
            };
            let mut leaving = Vec::new();
            let mut joining = 0;
            for action in actions.iter().filter(|a| selects(&a.object)) {
                match &action.operation {
                    super::Operation::Create { .. } => joining += 1,
                    super::Operation::Remove { containers } => {
                        let serving = endpoints.iter().any(|e| {
                            e.state != "terminating"
                                && e.node == action.node
                                && containers.iter().any(|c| c.name == e.pod)
                        });
                        if serving {
                            leaving.push(format!(
                                "{}[{}] on {}",
                                action.object.name, action.slot, action.node
                            ));
                        }
                    }
                    super::Operation::Start { .. } => {}
                }
            }
            super::ServicePlan {
                key: service.key(),
                cluster_ip: service.cluster_ip.to_string(),
                ports: service
                    .ports
                    .iter()
                    .map(|port| {
                        let target = match &port.target_port {
                            crate::manifest::model::PortRef::Number(n) => n.to_string(),
                            crate::manifest::model::PortRef::Name(name) => name.clone(),
                        };
                        format!(
                            "{}->{target}",
                            crate::reconcile::status::service_port_text(port)
                        )
                    })
                    .collect(),
                selected: endpoints
                    .iter()
                    .filter(|e| e.state != "terminating" && e.state != "unknown")
                    .count(),
                leaving,
                joining,
            }
        })
        .collect()
}

/// How many pods `workload` should have with the cluster as observed: its
/// replicas, or its eligible nodes that are not lost. The planner, the
/// rollout tracker and the status agree through this one function.
pub(crate) fn desired_pods(
    workload: &Workload,
    desired: &DesiredState,
    observed: &ObservedCluster,
    now: SystemTime,
) -> u32 {
    match workload.spec.pods {
        PodSet::Replicas(n) | PodSet::Ordinals { replicas: n, .. } => n,
        PodSet::Completions(job) => job
            .parallelism
            .min(job.completions.unwrap_or(job.parallelism)),
        PodSet::OnePerNode => {
            let locations = node_locations(desired, observed, now);
            let location = |node: &str| locations.get(node).copied().unwrap_or(Location::Unknown);
            let key = workload.key();
            let new_hash = template_hash(&workload.spec.template);
            // Where a pod of it runs, as the planner counts pods.
            let replicas = group_replicas(observed);
            let running: HashSet<&str> = replicas
                .iter()
                .filter(|r| {
                    (r.key.kind, r.key.namespace, r.key.name)
                        == (key.kind, key.namespace.as_str(), key.name.as_str())
                })
                .filter(|r| Seen::of(r, workload, &new_hash, &locations, now).counted())
                .map(|r| r.node)
                .collect();
            per_node::eligible_nodes(desired, &workload.spec.template, location, |node| {
                running.contains(node)
            })
            .len() as u32
        }
    }
}

fn node_locations<'a>(
    desired: &DesiredState,
    observed: &'a ObservedCluster,
    now: SystemTime,
) -> FnvHashMap<&'a str, Location> {
    let declared: HashSet<&str> = desired.nodes.iter().map(|n| n.meta.name.as_str()).collect();
    observed
        .nodes
        .values()
        .map(|n| {
            (
                n.name.as_str(),
                location(&declared, &desired.cluster, &n.reachability, &n.name, now),
            )
        })
        .collect()
}

fn pod_ref(w: &Workload) -> PodRef<'_> {
    PodRef {
        namespace: &w.meta.namespace,
        name: &w.meta.name,
        template: &w.spec.template,
    }
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

/// Removal order: the least useful first (failed, pending, running, ready),
/// then the newest (highest slot), as Kubernetes' ReplicaSet picks pods to delete.
fn removal_order(a: &Seen<'_>, b: &Seen<'_>) -> std::cmp::Ordering {
    a.state
        .cmp(&b.state)
        .then_with(|| b.replica.key.slot.cmp(&a.replica.key.slot))
        .then_with(|| a.replica.node.cmp(b.replica.node))
}

/// One workload: the repairs every kind shares (failed pods removed,
/// missing containers created, stopped ones started), then what its kind's
/// module decides, then placement of the pods to create.
fn plan_workload<'d>(
    out: &mut Plan,
    scheduler: &mut Scheduler<'d>,
    claims: &mut claims::Claims,
    context: &Context<'_>,
    w: &'d Workload,
    replicas: &[&ObservedReplica<'_>],
    now: SystemTime,
) {
    let key = w.key();
    let spec = &w.spec;
    let commit = context.commit;
    let new_hash = template_hash(&spec.template);
    let seen: Vec<Seen<'_>> = replicas
        .iter()
        .map(|r| Seen::of(r, w, &new_hash, &context.node_locations, now))
        .collect();
    let template = Arc::new(spec.template.clone());
    let mut actions: Vec<Action> = Vec::new();
    let mut removes: Vec<Action> = Vec::new();

    // Failed replicas are removed; their replacements come from the counts.
    // A pod set that completes keeps them: they are its run's record.
    for s in seen.iter().filter(|s| {
        s.location == Location::Live && s.state == ReplicaState::Failed && !spec.pods.completes()
    }) {
        removes.push(remove_action(
            &key,
            s.replica,
            false,
            failure_reason(s.replica),
        ));
    }

    // Repairs of the current revision: missing containers, stopped ones.
    for s in seen.iter().filter(|s| {
        s.location == Location::Live
            && s.state == ReplicaState::Pending
            && s.replica.key.template_hash == new_hash
    }) {
        let missing: Vec<&str> = spec
            .template
            .spec
            .all_containers()
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
        let to_start = s.replica.containers_to_start(&spec.template.spec);
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
                reason: match (
                    first.labels.role,
                    s.replica
                        .init_progress(&spec.template.spec)
                        .text(spec.template.spec.restart_policy),
                ) {
                    (ContainerRole::Init | ContainerRole::Sidecar, Some(progress)) => format!(
                        "init container(s) {} {} ({progress})",
                        names.join(", "),
                        describe_state(first.state),
                    ),
                    (ContainerRole::Sidecar, None) => format!(
                        "sidecar(s) {} {}, restarted always",
                        names.join(", "),
                        describe_state(first.state),
                    ),
                    (_, _) => format!(
                        "container(s) {} {}, restartPolicy {:?}",
                        names.join(", "),
                        describe_state(first.state),
                        spec.template.spec.restart_policy
                    ),
                },
                operation: Operation::Start {
                    containers: to_start.iter().map(|c| container_ref(c)).collect(),
                },
            });
        }
    }

    let mut run: Option<RunStatus> = None;
    let decision = match spec.pods {
        PodSet::Completions(job) => {
            let (decision, status) =
                completions::decide(&key, spec, job, &seen, &new_hash, context, now);
            run = Some(status);
            decision
        }
        PodSet::Replicas(want) => replicated::decide(&key, spec, want, &seen, &new_hash, context),
        PodSet::OnePerNode => per_node::decide(&key, spec, &seen, &new_hash, context),
        PodSet::Ordinals { replicas, start } => ordinal::decide(
            &key,
            spec,
            replicas,
            start,
            &seen,
            &new_hash,
            context,
            &mut out.waiting,
        ),
    };
    // A replica the kind's module removes is not repaired first.
    actions.retain(|repair| {
        !decision.removes.iter().any(|remove| {
            (&remove.node, remove.slot, &remove.template_hash)
                == (&repair.node, repair.slot, &repair.template_hash)
        })
    });
    removes.extend(decision.removes);
    let held = decision.held.as_ref().map_or(0, |h| h.replicas);
    out.held.extend(decision.held);

    // Place the new replicas: the scheduler chooses for free ones, in one
    // scan of the nodes each; a bound one goes to its node if it fits.
    let pod = pod_ref(w);
    let (bound, free): (Vec<Create>, Vec<Create>) =
        decision.creates.into_iter().partition(|c| c.node.is_some());
    let mut placed = Vec::with_capacity(bound.len() + free.len());
    let mut unschedulable = |create: &Create, node: Option<String>, reason: String| {
        out.unschedulable.push(Unschedulable {
            object: key.clone(),
            slot: create.slot,
            node,
            template_hash: new_hash.clone(),
            reason,
        })
    };
    let uses_claims = |slot: u32| !claims::pod_claims(context.desired, w, slot).is_empty();
    let action = |create: Create, node: &str| {
        create_action(
            &key,
            create.slot,
            node,
            &new_hash,
            commit,
            &template,
            create.rollout,
            create.reason,
        )
    };
    // Another pod of the workload, for a `ReadWriteOncePod` claim.
    let mut others = seen.iter().any(|s| s.location != Location::Lost);
    for create in bound {
        let node = create.node.clone().expect("partitioned on a bound node");
        let claimed = uses_claims(create.slot);
        let admitted = if claimed {
            claims.admits_bound(context.desired, w, create.slot, others, scheduler, &node)
        } else {
            Ok(())
        };
        let placement = admitted.and_then(|()| match scheduler.node_index(&node) {
            Some(index) => scheduler.place_on(pod, index),
            None => Err(format!("node {node} is not declared")),
        });
        match placement {
            Ok(()) => {
                if claimed {
                    claims.bind(context.desired, w, create.slot, &node);
                    others = true;
                }
                placed.push(action(create, &node));
            }
            Err(reason) => unschedulable(&create, Some(node), reason),
        }
    }
    if free.iter().any(|c| uses_claims(c.slot)) {
        // One at a time: the first placement binds the claims, which pins
        // the next ones.
        for create in free {
            let admission = claims.admission(context.desired, w, create.slot, others, scheduler);
            let placement = match admission {
                claims::Admission::Refused(reason) => Err(reason),
                claims::Admission::Nodes(restriction) => scheduler
                    .schedule_restricted(pod, &[create.slot], restriction)
                    .remove(0),
            };
            match placement {
                Ok(node) => {
                    let node = scheduler.node_name(node);
                    claims.bind(context.desired, w, create.slot, node);
                    others = true;
                    placed.push(action(create, node));
                }
                Err(reason) => unschedulable(&create, None, reason),
            }
        }
    } else if !free.is_empty() {
        let slots: Vec<u32> = free.iter().map(|c| c.slot).collect();
        let placements = scheduler.schedule(pod, &slots);
        for (create, placement) in free.into_iter().zip(placements) {
            match placement {
                Ok(node) => placed.push(action(create, scheduler.node_name(node))),
                Err(reason) => unschedulable(&create, None, reason),
            }
        }
    }
    placed.append(&mut actions);
    removes.sort_by(|a, b| b.slot.cmp(&a.slot).then_with(|| a.node.cmp(&b.node)));
    out.actions.extend(placed);
    out.actions.extend(removes);
    out.objects.push(ObjectStatus {
        key,
        desired: Some(decision.want),
        on_reachable_nodes: seen.iter().filter(|s| s.location == Location::Live).count() as u32,
        unknown: seen
            .iter()
            .filter(|s| s.location == Location::Unknown)
            .count() as u32
            + held,
        lost: seen.iter().filter(|s| s.location == Location::Lost).count() as u32,
        rollout: decision.rollout,
        run,
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
    let labels = |container: &str, role: ContainerRole| ManagedLabels {
        namespace: key.namespace.clone(),
        kind: key.kind,
        name: key.name.clone(),
        slot,
        template_hash: template_hash.to_string(),
        commit: commit.to_string(),
        node: node.to_string(),
        container: container.to_string(),
        role,
    };
    // Every container the pod will have, in creation order: its sandbox,
    // init containers and sidecars, app containers.
    let spec = &template.spec;
    let sandbox = spec
        .has_sandbox()
        .then(|| labels(SANDBOX_CONTAINER, ContainerRole::Sandbox));
    let init = spec
        .init_containers
        .iter()
        .map(|c| labels(&c.name, ContainerRole::of_init(c)));
    let app = spec
        .containers
        .iter()
        .map(|c| labels(&c.name, ContainerRole::App));
    let containers = sandbox.into_iter().chain(init).chain(app).collect();
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
            containers: creation_order(&replica.containers)
                .into_iter()
                .map(|c| {
                    // A preStop runs in a running container only (as in
                    // Kubernetes): one created and never started, or one
                    // that exited, has nothing to warn, and an exec in it
                    // would fail.
                    let mut removed = container_ref(c);
                    if c.state != ContainerState::Running {
                        removed.hooks.pre_stop = None;
                    }
                    removed
                })
                .collect(),
        },
    }
}

/// A pod's containers as they were created: its sandbox, its init
/// containers and sidecars, its app containers (by name within each), so
/// that a removal, which goes backwards, stops the app containers first and
/// the sandbox last.
fn creation_order<'a>(
    containers: &[&'a crate::cluster::ObservedContainer],
) -> Vec<&'a crate::cluster::ObservedContainer> {
    let rank = |c: &crate::cluster::ObservedContainer| match c.labels.role {
        ContainerRole::Sandbox => 0,
        ContainerRole::Init | ContainerRole::Sidecar => 1,
        ContainerRole::App => 2,
    };
    let mut ordered = containers.to_vec();
    // Stable: the replica's containers are sorted by name.
    ordered.sort_by_key(|c| rank(c));
    ordered
}

fn container_ref(c: &crate::cluster::ObservedContainer) -> ContainerRef {
    ContainerRef {
        id: c.id.clone(),
        name: c.name.clone(),
        hooks: c.hooks.clone(),
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
    // An init container that ran to completion did not fail the pod.
    let failed = replica.containers.iter().find(|c| {
        matches!(
            c.state,
            ContainerState::Dead | ContainerState::Exited { .. }
        ) && !(c.labels.role == ContainerRole::Init
            && c.state == ContainerState::Exited { code: 0 })
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
        run: None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Hook, Hooks, ObservedContainer};

    /// Regression (review of issue 16): removing a pod whose app container
    /// was created but never started (its init container failed) ran the
    /// app's preStop exec in it, which Docker refused ("is not running"),
    /// logged as a failed hook on every such removal.
    #[test]
    fn a_pre_stop_runs_only_in_a_running_container() {
        let container = |name: &str, state: ContainerState| ObservedContainer {
            id: format!("id-{name}"),
            name: name.to_string(),
            labels: ManagedLabels {
                namespace: "default".into(),
                kind: crate::manifest::model::Kind::Deployment,
                name: "web".into(),
                slot: 0,
                template_hash: "0123456789".into(),
                commit: "c".repeat(40),
                node: "n1".into(),
                container: name.into(),
                role: ContainerRole::App,
            },
            state,
            health: None,
            restart_count: 0,
            started_at: None,
            finished_at: None,
            image: String::new(),
            ports: Vec::new(),
            probe_ready: None,
            address: None,
            ready_since: None,
            hooks: Hooks {
                post_start: None,
                pre_stop: Some(Hook::Sleep { seconds: 5 }),
                grace_seconds: Some(2),
            },
        };
        let created = container("created", ContainerState::Created);
        let exited = container("exited", ContainerState::Exited { code: 1 });
        let running = container("running", ContainerState::Running);
        let replica = ObservedReplica {
            key: crate::cluster::ReplicaKey {
                kind: crate::manifest::model::Kind::Deployment,
                namespace: "default",
                name: "web",
                slot: 0,
                template_hash: "0123456789",
            },
            node: "n1",
            node_reachable: true,
            commit: &running.labels.commit,
            containers: vec![&created, &exited, &running],
        };
        let key = ObjectKey {
            kind: crate::manifest::model::Kind::Deployment,
            namespace: "default".into(),
            name: "web".into(),
        };
        let action = remove_action(&key, &replica, false, "gone".into());
        let Operation::Remove { containers } = action.operation else {
            unreachable!("a removal");
        };
        let hooks: Vec<(&str, bool)> = containers
            .iter()
            .map(|c| (c.name.as_str(), c.hooks.pre_stop.is_some()))
            .collect();
        assert_eq!(
            hooks,
            [("created", false), ("exited", false), ("running", true)]
        );
    }
}
