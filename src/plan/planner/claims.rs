//! Where each PersistentVolumeClaim lives, as Kubernetes' local volumes
//! with `WaitForFirstConsumer`: a claim is bound to the node its Docker
//! volume is on (the only record, read from the nodes), becomes bound where
//! its first pod is placed, and pins every later pod to that node. A claim
//! that looks unbound while a declared node was never seen may be bound
//! there: no pod using it is placed until that node is seen (or removed
//! from Git). Nothing here deletes a claim's volume unless Git declares
//! the claim with `flotilla.dev/delete-volume`, and never on a node that
//! is not reachable.

use std::collections::BTreeMap;

use crate::cluster::{
    claim_volume_name, Contents, ObservedCluster, OrdinalClaim, Reachability, VolumeOwner,
};
use crate::manifest::model::{
    ClaimRetention, DesiredState, PersistentVolumeClaim, PodSet, VolumeSource, Workload,
};
use crate::plan::scheduler::{FilterReason, Scheduler};
use crate::plan::{ClaimPlan, ClaimState, VolumeRemoval};

/// (namespace, claim name).
type ClaimId = (String, String);

/// Every claim's binding, observed and made by this plan, and the storage
/// claims take on each node.
pub(super) struct Claims {
    /// The nodes each claim's volume was seen on (sorted, usually one),
    /// with the storage its label records.
    observed: BTreeMap<ClaimId, (Vec<String>, u64)>,
    /// Claims this plan binds, to the node of their first pod.
    binding: BTreeMap<ClaimId, String>,
    /// Storage taken per node by the claims bound there.
    used: BTreeMap<String, u64>,
    /// Declared nodes whose volumes were never seen.
    unseen: Vec<String>,
    /// The StatefulSet ordinal each observed claim was made for, if any.
    ordinals: BTreeMap<ClaimId, OrdinalClaim>,
}

/// What a pod's claims allow, for one pod about to be placed.
pub(super) enum Admission {
    /// Per node, why it is ruled out (`None`: allowed); the scheduler
    /// picks among the others.
    Nodes(Vec<Option<FilterReason>>),
    /// Not placed at all, for this reason.
    Refused(String),
}

impl Claims {
    pub(super) fn new(desired: &DesiredState, observed: &ObservedCluster) -> Claims {
        let mut claims = Claims {
            observed: BTreeMap::new(),
            binding: BTreeMap::new(),
            used: BTreeMap::new(),
            unseen: Vec::new(),
            ordinals: BTreeMap::new(),
        };
        for node in observed.nodes.values() {
            if let Reachability::Unreachable {
                contents: Contents::Unknown,
                ..
            } = node.reachability
            {
                if desired.node(&node.name).is_some() {
                    claims.unseen.push(node.name.clone());
                }
                continue;
            }
            for volume in &node.volumes {
                if let VolumeOwner::Claim {
                    namespace,
                    claim,
                    storage,
                    ordinal,
                } = &volume.owner
                {
                    let entry = claims
                        .observed
                        .entry((namespace.clone(), claim.clone()))
                        .or_insert_with(|| (Vec::new(), *storage));
                    entry.0.push(node.name.clone());
                    if let Some(ordinal) = ordinal {
                        claims
                            .ordinals
                            .insert((namespace.clone(), claim.clone()), ordinal.clone());
                    }
                    *claims.used.entry(node.name.clone()).or_insert(0) += storage;
                }
            }
        }
        for (nodes, _) in claims.observed.values_mut() {
            nodes.sort();
            nodes.dedup();
        }
        // A declared node absent from the observation was never seen either.
        for node in &desired.nodes {
            if !observed.nodes.contains_key(&node.meta.name) {
                claims.unseen.push(node.meta.name.clone());
            }
        }
        claims.unseen.sort();
        claims
    }

    /// The nodes `claim` is bound to: where its volume is, or where this
    /// plan binds it.
    fn nodes_of(&self, id: &ClaimId) -> Vec<&str> {
        match self.observed.get(id) {
            Some((nodes, _)) => nodes.iter().map(String::as_str).collect(),
            None => self
                .binding
                .get(id)
                .map(String::as_str)
                .into_iter()
                .collect(),
        }
    }

    /// What the claims of a pod of `template` in `namespace` allow. `others`
    /// says whether another pod of its workload exists (a
    /// `ReadWriteOncePod` claim then admits none).
    pub(super) fn admission(
        &self,
        desired: &DesiredState,
        workload: &Workload,
        slot: u32,
        others: bool,
        scheduler: &Scheduler<'_>,
    ) -> Admission {
        let namespace = workload.meta.namespace.as_str();
        let claims = pod_claims(desired, workload, slot);
        let node_count = scheduler.node_count();
        let mut pinned: Vec<&str> = Vec::new();
        let mut unbound_storage = 0u64;
        for claim in &claims {
            let id = (namespace.to_string(), claim.meta.name.clone());
            let nodes = self.nodes_of(&id);
            if claim.one_pod() && others {
                return Admission::Nodes(vec![
                    Some(FilterReason::ReadWriteOncePodConflict);
                    node_count
                ]);
            }
            match nodes.as_slice() {
                [] => unbound_storage += claim.storage.0,
                [one] => pinned.push(one),
                many => {
                    return Admission::Refused(format!(
                        "PersistentVolumeClaim {namespace}/{} has a volume on each of nodes {}: remove all but one by hand (`docker volume rm {}` on the others) so pods know where its data is",
                        claim.meta.name,
                        many.join(", "),
                        claim_volume_name(namespace, &claim.meta.name)
                    ))
                }
            }
        }
        if unbound_storage > 0 && !self.unseen.is_empty() {
            let unbound: Vec<&str> = claims
                .iter()
                .filter(|c| {
                    self.nodes_of(&(namespace.to_string(), c.meta.name.clone()))
                        .is_empty()
                })
                .map(|c| c.meta.name.as_str())
                .collect();
            return Admission::Refused(format!(
                "PersistentVolumeClaim(s) {} may be bound on node(s) {}, never seen since this observer started: not bound elsewhere until seen (or removed from Git)",
                unbound.join(", "),
                self.unseen.join(", ")
            ));
        }
        pinned.sort_unstable();
        pinned.dedup();
        let restriction = (0..node_count)
            .map(|i| {
                let name = scheduler.node_name(i);
                match pinned.as_slice() {
                    [] => {}
                    [one] if *one == name => {}
                    _ => return Some(FilterReason::VolumeNodeAffinityConflict),
                }
                let capacity = desired.node(name).and_then(|n| n.spec.capacity.storage);
                match capacity {
                    Some(capacity)
                        if unbound_storage > 0
                            && self.used.get(name).copied().unwrap_or(0) + unbound_storage
                                > capacity.0 =>
                    {
                        Some(FilterReason::InsufficientStorage)
                    }
                    _ => None,
                }
            })
            .collect();
        Admission::Nodes(restriction)
    }

    /// Whether a pod of `template` bound to node `node` (a DaemonSet's) may
    /// go there as far as its claims go: `Err` with kube-scheduler's words
    /// when not.
    pub(super) fn admits_bound(
        &self,
        desired: &DesiredState,
        workload: &Workload,
        slot: u32,
        others: bool,
        scheduler: &Scheduler<'_>,
        node: &str,
    ) -> Result<(), String> {
        match self.admission(desired, workload, slot, others, scheduler) {
            Admission::Refused(reason) => Err(reason),
            Admission::Nodes(restriction) => {
                let Some(index) = scheduler.node_index(node) else {
                    return Ok(());
                };
                match &restriction[index] {
                    None => Ok(()),
                    Some(reason) => Err(scheduler.bound_fit_error(vec![reason.clone()])),
                }
            }
        }
    }

    /// Binds the pod's claims that are not bound yet to `node`, where its
    /// pod was just placed.
    pub(super) fn bind(
        &mut self,
        desired: &DesiredState,
        workload: &Workload,
        slot: u32,
        node: &str,
    ) {
        for claim in pod_claims(desired, workload, slot) {
            let id = (workload.meta.namespace.clone(), claim.meta.name.clone());
            if self.nodes_of(&id).is_empty() {
                self.binding.insert(id, node.to_string());
                *self.used.entry(node.to_string()).or_insert(0) += claim.storage.0;
            }
        }
    }

    /// Every claim declared or seen, with its state, and the claims'
    /// volumes this plan removes (declared with the delete annotation, on
    /// reachable nodes only).
    pub(super) fn report(
        &self,
        desired: &DesiredState,
        observed: &ObservedCluster,
    ) -> (Vec<ClaimPlan>, Vec<VolumeRemoval>) {
        let mut plans = Vec::new();
        let mut removals = Vec::new();
        let reachable = |node: &str| {
            desired.node(node).is_some()
                && observed
                    .nodes
                    .get(node)
                    .is_some_and(|n| n.reachability.is_reachable())
        };
        let declared_ordinals = ordinal_claims(desired);
        let mut ids: Vec<ClaimId> = desired
            .claims
            .iter()
            .map(|c| (c.meta.namespace.clone(), c.meta.name.clone()))
            .chain(self.observed.keys().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let declared = desired.claim(&id.0, &id.1);
            let observed_at = self.observed.get(&id);
            let storage = declared
                .map(|c| c.storage.0)
                .or(observed_at.map(|(_, s)| *s))
                .unwrap_or(0);
            // Why its volume goes, when Git says it does.
            let deletion = match declared {
                Some(claim) if claim.delete_volume => Some(format!(
                    "PersistentVolumeClaim {}/{} is declared with flotilla.dev/delete-volume",
                    id.0, id.1
                )),
                Some(_) => None,
                None => self.retention_deletes(desired, &id),
            };
            let (nodes, state) = match (declared, observed_at, &deletion) {
                (Some(_), None, _)
                    if !self.unseen.is_empty() && !self.binding.contains_key(&id) =>
                {
                    (self.unseen.clone(), ClaimState::Unknown)
                }
                (_, Some((nodes, _)), Some(reason)) => {
                    let volume = claim_volume_name(&id.0, &id.1);
                    let mut waits = false;
                    for node in nodes {
                        if reachable(node) && !self.ordinal_pod_on(observed, &id, node) {
                            removals.push(VolumeRemoval {
                                node: node.clone(),
                                volume: volume.clone(),
                                claim: Some(format!("{}/{}", id.0, id.1)),
                                reason: reason.clone(),
                            });
                        } else {
                            waits = true;
                        }
                    }
                    let state = if waits {
                        ClaimState::DeleteWaits
                    } else {
                        ClaimState::Deleting
                    };
                    (nodes.clone(), state)
                }
                (Some(_), Some((nodes, _)), None) if nodes.len() > 1 => {
                    (nodes.clone(), ClaimState::Conflict)
                }
                (Some(_), Some((nodes, _)), None) => (nodes.clone(), ClaimState::Bound),
                (Some(_), None, _) => match self.binding.get(&id) {
                    Some(node) => (vec![node.clone()], ClaimState::Binding),
                    None => (Vec::new(), ClaimState::Pending),
                },
                (None, Some((nodes, _)), None) => (nodes.clone(), ClaimState::Kept),
                (None, None, _) => continue,
            };
            // A claim declared for deletion whose volume is gone needs no line.
            if declared.is_some_and(|c| c.delete_volume)
                && observed_at.is_none()
                && state != ClaimState::Unknown
            {
                continue;
            }
            let reason = match state {
                ClaimState::Deleting | ClaimState::DeleteWaits => deletion,
                _ => None,
            };
            let ordinal = declared_ordinals
                .get(&id)
                .cloned()
                .or_else(|| self.ordinals.get(&id).cloned());
            plans.push(ClaimPlan {
                namespace: id.0,
                name: id.1,
                storage,
                nodes,
                state,
                reason,
                ordinal,
            });
        }
        (plans, removals)
    }
}

impl Claims {
    /// Why a claim no longer declared goes, when its StatefulSet's
    /// retention policy says so: `whenScaled: Delete` for an ordinal scaled
    /// away, `whenDeleted: Delete` (as recorded on the volume) once the
    /// StatefulSet is gone from Git. `None`: it is kept.
    fn retention_deletes(&self, desired: &DesiredState, id: &ClaimId) -> Option<String> {
        let ordinal = self.ordinals.get(id)?;
        let set = desired.workloads.iter().find(|w| {
            w.meta.namespace == id.0 && w.meta.name == ordinal.set && w.spec.stateful.is_some()
        });
        match set {
            Some(set) => {
                let stateful = set.spec.stateful.as_ref()?;
                let PodSet::Ordinals { replicas, start } = set.spec.pods else {
                    return None;
                };
                let scaled_away = ordinal.ordinal < start || ordinal.ordinal >= start + replicas;
                (scaled_away && stateful.when_scaled == ClaimRetention::Delete).then(|| {
                    format!(
                        "StatefulSet {}/{} scaled below ordinal {} with whenScaled: Delete",
                        id.0, ordinal.set, ordinal.ordinal
                    )
                })
            }
            None => ordinal.delete_with_set.then(|| {
                format!(
                    "StatefulSet {}/{} is no longer declared and its claims had whenDeleted: Delete",
                    id.0, ordinal.set
                )
            }),
        }
    }

    /// Whether the pod of the claim's ordinal still has a container on
    /// `node`: its claim waits until it is gone.
    fn ordinal_pod_on(&self, observed: &ObservedCluster, id: &ClaimId, node: &str) -> bool {
        let Some(ordinal) = self.ordinals.get(id) else {
            return false;
        };
        observed.nodes.get(node).is_some_and(|n| {
            n.containers.iter().any(|c| {
                c.labels.namespace == id.0
                    && c.labels.name == ordinal.set
                    && c.labels.slot == ordinal.ordinal
            })
        })
    }
}

/// Every claim the StatefulSets' volume claim templates declare, with the
/// ordinal it is for.
fn ordinal_claims(desired: &DesiredState) -> BTreeMap<ClaimId, OrdinalClaim> {
    let mut claims = BTreeMap::new();
    for workload in &desired.workloads {
        let (Some(set), PodSet::Ordinals { replicas, start }) =
            (&workload.spec.stateful, workload.spec.pods)
        else {
            continue;
        };
        for template in &set.claim_templates {
            for ordinal in start..start.saturating_add(replicas) {
                claims.insert(
                    (
                        workload.meta.namespace.clone(),
                        workload.ordinal_claim_name(&template.name, ordinal),
                    ),
                    OrdinalClaim {
                        set: workload.meta.name.clone(),
                        ordinal,
                        delete_with_set: set.when_deleted == ClaimRetention::Delete,
                    },
                );
            }
        }
    }
    claims
}

/// The claims the pod of `slot` of `workload` uses: its template's, and for
/// a StatefulSet the claims of its volume claim templates for that ordinal
/// (declared by `load`; a missing one is a validation error, so only a
/// changed desired state lacks one).
pub(super) fn pod_claims<'d>(
    desired: &'d DesiredState,
    workload: &Workload,
    slot: u32,
) -> Vec<&'d PersistentVolumeClaim> {
    let namespace = workload.meta.namespace.as_str();
    let ordinal_claims = workload.spec.stateful.iter().flat_map(|set| {
        set.claim_templates
            .iter()
            .map(|t| workload.ordinal_claim_name(&t.name, slot))
    });
    let mut claims: Vec<&PersistentVolumeClaim> = workload
        .spec
        .template
        .spec
        .volumes
        .iter()
        .filter_map(|v| match &v.source {
            VolumeSource::Claim(c) => Some(c.claim_name.clone()),
            _ => None,
        })
        .chain(ordinal_claims)
        .filter_map(|name| desired.claim(namespace, &name))
        .collect();
    claims.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    claims.dedup_by(|a, b| a.meta.name == b.meta.name);
    claims
}
