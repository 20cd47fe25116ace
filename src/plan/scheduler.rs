//! The scheduler: which node a new replica goes to, with Kubernetes'
//! filters and scores, deterministically.
//!
//! Built once per plan from the desired nodes and what the cluster already
//! runs; every placement updates its per-node state incrementally, so a
//! batch of replicas costs one scan of the nodes per replica and no
//! allocation in the scan. When no node fits, the reasons are gathered in a
//! second, slower pass and worded as kube-scheduler words them.

use std::collections::{BTreeMap, HashMap};

use crate::cluster::ObservedCluster;
use crate::manifest::model::{
    DesiredState, LabelSelector, Node, PodTemplate, Protocol, ScoringStrategy, Taint, TaintEffect,
    TopologySpreadConstraint, WhenUnsatisfiable, HOSTNAME_LABEL,
};

/// Kubernetes' default pod capacity of a node.
pub const DEFAULT_MAX_PODS: u32 = 110;
/// For scoring only, a pod without a CPU request counts as 100m, and one
/// without a memory request as 200 MiB (kube-scheduler's non-zero requests).
pub const DEFAULT_CPU_REQUEST_MILLIS: u64 = 100;
pub const DEFAULT_MEMORY_REQUEST_BYTES: u64 = 200 * 1024 * 1024;

const MAX_NODE_SCORE: u64 = 100;
// kube-scheduler's default plugin weights.
const WEIGHT_FIT: u64 = 1;
const WEIGHT_BALANCED: u64 = 1;
const WEIGHT_TAINT: u64 = 3;
const WEIGHT_SPREAD: u64 = 2;
const NO_DOMAIN: u32 = u32::MAX;

/// A pod to place or already placed: the object it belongs to and its template.
#[derive(Clone, Copy, Debug)]
pub struct PodRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub template: &'a PodTemplate,
}

/// The resources of one node and what is already requested on it.
#[derive(Clone, Copy, Debug, Default)]
struct Resources {
    alloc_cpu: u64,
    alloc_memory: u64,
    alloc_pods: u32,
    pods: u32,
    cpu: u64,
    memory: u64,
    /// Requests with kube-scheduler's non-zero defaults, for scoring.
    nonzero_cpu: u64,
    nonzero_memory: u64,
    /// `1 / alloc_cpu` and `1 / alloc_memory` (0 when unknown): the scan
    /// multiplies instead of dividing, which is several times faster.
    inverse_cpu: f64,
    inverse_memory: f64,
    /// The requests again as floating point, kept in step, so the scan
    /// converts no integers.
    cpu_f: f64,
    memory_f: f64,
    nonzero_cpu_f: f64,
    nonzero_memory_f: f64,
}

impl Resources {
    fn sync_floats(&mut self) {
        self.cpu_f = self.cpu as f64;
        self.memory_f = self.memory as f64;
        self.nonzero_cpu_f = self.nonzero_cpu as f64;
        self.nonzero_memory_f = self.nonzero_memory as f64;
    }
}

struct SchedNode<'a> {
    name: &'a str,
    labels: BTreeMap<String, String>,
    taints: &'a [Taint],
    unschedulable: bool,
    reachable: bool,
    /// Neither the manifest nor the node itself says how much CPU or memory
    /// it has (`plan --offline` on a Node that declares no capacity): that
    /// resource is not checked, and the plan says so.
    capacity_unknown: bool,
    name_hash: u64,
    host_ports: Vec<(u16, Protocol)>,
    /// Placed pods by group (namespace + labels), with their count.
    groups: Vec<(u32, u32)>,
}

/// Pods that share a namespace and labels: selectors are evaluated once
/// per group, not once per pod.
struct PodGroup<'a> {
    namespace: &'a str,
    labels: &'a BTreeMap<String, String>,
}

/// Why one node cannot take a pod, in kube-scheduler's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterReason {
    Unreachable,
    Unschedulable,
    UntoleratedTaint {
        key: String,
        value: String,
    },
    NodeAffinity,
    HostPorts,
    TooManyPods,
    InsufficientCpu,
    InsufficientMemory,
    TopologySpreadMissingLabel,
    TopologySpread,
    AntiAffinity,
    /// A claim of the pod is bound to another node.
    VolumeNodeAffinityConflict,
    /// The node's `capacity.storage` has no room for the pod's unbound claims.
    InsufficientStorage,
    /// A `ReadWriteOncePod` claim of the pod is used by another pod.
    ReadWriteOncePodConflict,
}

impl FilterReason {
    pub fn message(&self) -> String {
        match self {
            FilterReason::Unreachable => "node(s) were unreachable".into(),
            FilterReason::Unschedulable => "node(s) were unschedulable".into(),
            FilterReason::UntoleratedTaint { key, value } => {
                format!("node(s) had untolerated taint {{{key}: {value}}}")
            }
            FilterReason::NodeAffinity => {
                "node(s) didn't match Pod's node affinity/selector".into()
            }
            FilterReason::HostPorts => {
                "node(s) didn't have free ports for the requested pod ports".into()
            }
            FilterReason::TooManyPods => "Too many pods".into(),
            FilterReason::InsufficientCpu => "Insufficient cpu".into(),
            FilterReason::InsufficientMemory => "Insufficient memory".into(),
            FilterReason::TopologySpreadMissingLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into()
            }
            FilterReason::TopologySpread => {
                "node(s) didn't match pod topology spread constraints".into()
            }
            FilterReason::AntiAffinity => "node(s) didn't match pod anti-affinity rules".into(),
            FilterReason::VolumeNodeAffinityConflict => {
                "node(s) had volume node affinity conflict".into()
            }
            FilterReason::InsufficientStorage => {
                "node(s) did not have enough free storage".into()
            }
            FilterReason::ReadWriteOncePodConflict => "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode".into(),
        }
    }
}

/// The state of every node for placing replicas.
pub struct Scheduler<'a> {
    strategy: ScoringStrategy,
    nodes: Vec<SchedNode<'a>>,
    resources: Vec<Resources>,
    groups: Vec<PodGroup<'a>>,
    group_index: HashMap<(&'a str, &'a BTreeMap<String, String>), u32>,
    /// Scratch space reused between placements: (node, partial score, raw
    /// taint count, raw spread score).
    scratch: Vec<(u32, u64, u32, u64)>,
    /// Each node's tie-break hash, contiguous for the placement scan.
    name_hashes: Vec<u64>,
    /// Node name -> index.
    index: crate::cluster::FnvHashMap<&'a str, usize>,
}

impl<'a> Scheduler<'a> {
    /// One entry per desired node (sorted by name, as the desired state is).
    /// A node is reachable when the observation says so; allocatable comes
    /// from the declared capacity, else from what the node reported.
    pub fn new(desired: &'a DesiredState, observed: &'a ObservedCluster) -> Self {
        let mut nodes = Vec::with_capacity(desired.nodes.len());
        let mut resources = Vec::with_capacity(desired.nodes.len());
        let mut sorted: Vec<&'a Node> = desired.nodes.iter().collect();
        sorted.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        for node in sorted {
            let observed_node = observed.nodes.get(&node.meta.name);
            let facts = observed_node.and_then(|n| n.facts.as_ref());
            let cpu = node
                .spec
                .capacity
                .cpu
                .map(|c| c.0)
                .or(facts.map(|f| f.cpu.0));
            let memory = node
                .spec
                .capacity
                .memory
                .map(|m| m.0)
                .or(facts.map(|f| f.memory.0));
            nodes.push(SchedNode {
                name: &node.meta.name,
                labels: node.scheduling_labels(),
                taints: &node.spec.taints,
                unschedulable: node.spec.unschedulable,
                reachable: observed_node.is_some_and(|n| n.reachability.is_reachable()),
                capacity_unknown: cpu.is_none() || memory.is_none(),
                name_hash: mix(fnv1a(node.meta.name.as_bytes(), FNV_OFFSET)),
                host_ports: Vec::new(),
                groups: Vec::new(),
            });
            let inverse = |v: Option<u64>| match v {
                Some(v) if v > 0 => 1.0 / v as f64,
                _ => 0.0,
            };
            resources.push(Resources {
                inverse_cpu: inverse(cpu),
                inverse_memory: inverse(memory),
                // Unknown: never short of it (and scored as neither full
                // nor empty, through its inverse of 0).
                alloc_cpu: cpu.unwrap_or(u64::MAX),
                alloc_memory: memory.unwrap_or(u64::MAX),
                alloc_pods: node.spec.capacity.pods.unwrap_or(DEFAULT_MAX_PODS),
                ..Resources::default()
            });
        }
        Scheduler {
            strategy: desired.cluster.scoring_strategy,
            name_hashes: nodes.iter().map(|n| n.name_hash).collect(),
            index: nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect(),
            nodes,
            resources,
            groups: Vec::new(),
            group_index: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn node_name(&self, index: usize) -> &'a str {
        self.nodes[index].name
    }

    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// CPU, memory and pods requested on a node so far.
    pub fn requested(&self, index: usize) -> (u64, u64, u32) {
        let r = &self.resources[index];
        (r.cpu, r.memory, r.pods)
    }

    /// Allocatable CPU, memory and pods of a node (`u64::MAX` when unknown).
    pub fn allocatable(&self, index: usize) -> (u64, u64, u32) {
        let r = &self.resources[index];
        (r.alloc_cpu, r.alloc_memory, r.alloc_pods)
    }

    /// The reachable nodes whose CPU or memory capacity nobody states
    /// (neither their manifest nor an observation, as in `plan --offline`):
    /// replicas go there without a check that those resources fit.
    pub fn unknown_capacity_nodes(&self) -> Vec<&'a str> {
        self.nodes
            .iter()
            .filter(|n| n.reachable && n.capacity_unknown)
            .map(|n| n.name)
            .collect()
    }

    /// Records a pod that runs (or will run) on `node`.
    pub fn add_pod(&mut self, node: usize, pod: PodRef<'a>) {
        let group = self.group(pod);
        self.account(node, pod.template, group);
    }

    /// Records one pod of the same object on each of `nodes`.
    pub fn add_pods(&mut self, pod: PodRef<'a>, nodes: impl IntoIterator<Item = usize>) {
        let group = self.group(pod);
        let requests = Requests::of(pod.template);
        for node in nodes {
            self.account_requests(node, &requests, group);
        }
    }

    /// Records a pod whose template is not known (an object no longer
    /// declared): it takes a pod slot and is scored with default requests.
    pub fn add_unknown_pod(&mut self, node: usize) {
        let r = &mut self.resources[node];
        r.pods += 1;
        r.nonzero_cpu += DEFAULT_CPU_REQUEST_MILLIS;
        r.nonzero_memory += DEFAULT_MEMORY_REQUEST_BYTES;
        r.sync_floats();
    }

    fn group(&mut self, pod: PodRef<'a>) -> u32 {
        let key = (pod.namespace, &pod.template.labels);
        if let Some(&id) = self.group_index.get(&key) {
            return id;
        }
        let id = u32::try_from(self.groups.len()).expect("fewer than 2^32 pod groups");
        self.groups.push(PodGroup {
            namespace: pod.namespace,
            labels: &pod.template.labels,
        });
        self.group_index.insert(key, id);
        id
    }

    fn account(&mut self, node: usize, template: &PodTemplate, group: u32) {
        self.account_requests(node, &Requests::of(template), group);
    }

    fn account_requests(&mut self, node: usize, requests: &Requests, group: u32) {
        let r = &mut self.resources[node];
        r.pods += 1;
        r.cpu += requests.cpu;
        r.memory += requests.memory;
        r.nonzero_cpu += requests.nonzero_cpu;
        r.nonzero_memory += requests.nonzero_memory;
        r.sync_floats();
        let n = &mut self.nodes[node];
        n.host_ports.extend_from_slice(&requests.host_ports);
        match n.groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, count)) => *count += 1,
            None => n.groups.push((group, 1)),
        }
    }

    /// Places one replica per seed (the replica's slot, which makes its tie
    /// breaks its own), each placement seeing the ones before it. Returns
    /// the node index of each, or kube-scheduler's message when none fits.
    pub fn schedule(&mut self, pod: PodRef<'a>, slots: &[u32]) -> Vec<Result<usize, String>> {
        self.schedule_restricted(pod, slots, Vec::new())
    }

    /// [`Scheduler::schedule`], with the nodes `restriction` gives a reason
    /// for (one entry per node, or empty for none) kept out: what the pod's
    /// claims rule out (volume binding and restrictions), which the planner
    /// knows and the scheduler does not.
    pub fn schedule_restricted(
        &mut self,
        pod: PodRef<'a>,
        slots: &[u32],
        restriction: Vec<Option<FilterReason>>,
    ) -> Vec<Result<usize, String>> {
        let group = self.group(pod);
        let mut class = PodClass::new(self, pod);
        if !restriction.is_empty() {
            debug_assert_eq!(restriction.len(), self.nodes.len());
            for (ok, reason) in class.static_ok.iter_mut().zip(&restriction) {
                *ok &= reason.is_none();
            }
            class.restriction = restriction;
        }
        let mut results = Vec::with_capacity(slots.len());
        for &slot in slots {
            let seed = fnv1a(
                &slot.to_le_bytes(),
                fnv1a(
                    pod.name.as_bytes(),
                    fnv1a(pod.namespace.as_bytes(), FNV_OFFSET),
                ),
            );
            match self.best_node(&mut class, seed) {
                Some(node) => {
                    self.account(node, pod.template, group);
                    class.placed(node);
                    self.rescore(&mut class, node);
                    results.push(Ok(node));
                }
                None => results.push(Err(self.fit_error(&class, pod))),
            }
        }
        results
    }

    /// Places one pod bound to `node` (a DaemonSet's, whose node was chosen
    /// by eligibility, not by score), if it fits there: the node must be
    /// reachable, with the pod's requests free (of the resources whose
    /// capacity is known) and its host ports unused. Otherwise kube-scheduler's message for a pod with
    /// required affinity to that one node.
    pub fn place_on(&mut self, pod: PodRef<'a>, node: usize) -> Result<(), String> {
        let requests = Requests::of(pod.template);
        let n = &self.nodes[node];
        let r = &self.resources[node];
        let mut reasons = Vec::new();
        if !n.reachable {
            reasons.push(FilterReason::Unreachable);
        } else if requests.host_ports.iter().any(|p| n.host_ports.contains(p)) {
            reasons.push(FilterReason::HostPorts);
        } else {
            if r.pods + 1 > r.alloc_pods {
                reasons.push(FilterReason::TooManyPods);
            }
            if requests.cpu > 0 && requests.cpu > r.alloc_cpu.saturating_sub(r.cpu) {
                reasons.push(FilterReason::InsufficientCpu);
            }
            if requests.memory > 0 && requests.memory > r.alloc_memory.saturating_sub(r.memory) {
                reasons.push(FilterReason::InsufficientMemory);
            }
        }
        if reasons.is_empty() {
            let group = self.group(pod);
            self.account_requests(node, &requests, group);
            return Ok(());
        }
        Err(self.bound_fit_error(reasons))
    }

    /// kube-scheduler's message for a pod with required affinity to one
    /// node that refuses it for `reasons`: every other node fails the
    /// affinity.
    pub fn bound_fit_error(&self, reasons: Vec<FilterReason>) -> String {
        let mut histogram: BTreeMap<String, u32> = BTreeMap::new();
        for reason in reasons {
            *histogram.entry(reason.message()).or_insert(0) += 1;
        }
        let others = u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX);
        if others > 0 {
            histogram.insert(FilterReason::NodeAffinity.message(), others);
        }
        fit_error_message(self.nodes.len(), &histogram)
    }

    /// The feasible node with the highest score; ties go to the highest
    /// hash of (pod, node).
    fn best_node(&mut self, class: &mut PodClass, seed: u64) -> Option<usize> {
        if class.normalize {
            return self.best_node_normalized(class, seed);
        }
        if class.has_dynamic_filters() {
            return self.best_node_scanned(class, seed);
        }
        // Only static filters: each node's feasibility and score change only
        // when a replica is placed on it, so they are computed once per pod
        // class and kept up to date by `rescore`; the scan is then a maximum
        // over (score, tie hash), the same result as scoring every node anew.
        if class.scores.len() != self.nodes.len() {
            class.scores = (0..self.nodes.len())
                .map(|i| self.static_score(class, i))
                .collect();
        }
        let (mut best_key, mut best_node) = (0u64, usize::MAX);
        for (i, (&score, &hash)) in class.scores.iter().zip(&self.name_hashes).enumerate() {
            if score == INFEASIBLE {
                continue;
            }
            let key = ranking_key(u64::from(score), seed, hash);
            if key > best_key || best_node == usize::MAX {
                best_key = key;
                best_node = i;
            }
        }
        (best_node != usize::MAX).then_some(best_node)
    }

    /// Node `i`'s score for `class` under the static filters, or INFEASIBLE.
    #[inline]
    fn static_score(&self, class: &PodClass, i: usize) -> u32 {
        let r = &self.resources[i];
        if !class.static_ok[i] || !fits(r, &class.requests) {
            return INFEASIBLE;
        }
        resource_score(self.strategy, r, &class.requests).min(0xffff) as u32
    }

    /// After a placement on `node`: its kept score, if scores are kept, and
    /// the kept spread of every node whose domains the placement changed.
    fn rescore(&self, class: &mut PodClass, node: usize) {
        if class.scores.len() != self.nodes.len() {
            return;
        }
        if class.spread_raw.len() != self.nodes.len() {
            class.scores[node] = self.static_score(class, node);
            return;
        }
        class.forget_spread(node);
        class.scores[node] = self.static_score(class, node);
        let mut changed = vec![node];
        for d in &class.spread {
            let domain = d.node_domain[node];
            if domain != NO_DOMAIN && d.domain_nodes[domain as usize] > 1 {
                changed.extend(
                    (0..self.nodes.len()).filter(|&i| i != node && d.node_domain[i] == domain),
                );
            }
        }
        changed.sort_unstable();
        changed.dedup();
        for &i in &changed {
            if i != node {
                class.forget_spread(i);
            }
            class.spread_raw[i] = class.spread_raw_score(i).unwrap_or(NO_SPREAD);
            class.remember_spread(i);
        }
    }

    /// [`Self::best_node_normalized`] for a pod with only static filters,
    /// no PreferNoSchedule taint to weigh and Kubernetes' default spread
    /// (almost every pod): the resource scores and each node's raw spread
    /// score are kept, and so is how many feasible nodes have each raw
    /// score, so a placement is one pass over three arrays, with the same
    /// result as normalizing every node's scores anew.
    fn best_node_default_spread(&mut self, class: &mut PodClass, seed: u64) -> Option<usize> {
        let n = self.nodes.len();
        if class.scores.len() != n {
            class.scores = (0..n).map(|i| self.static_score(class, i)).collect();
        }
        if class.spread_raw.len() != n {
            class.spread_raw = (0..n)
                .map(|i| class.spread_raw_score(i).unwrap_or(NO_SPREAD))
                .collect();
            class.spread_histogram.clear();
            for i in 0..n {
                class.remember_spread(i);
            }
        }
        let (&min, _) = class.spread_histogram.first_key_value()?;
        let (&max, _) = class.spread_histogram.last_key_value()?;
        let spread_score = |raw: u64| {
            (MAX_NODE_SCORE * (max + min - raw))
                .checked_div(max)
                .unwrap_or(MAX_NODE_SCORE)
        };
        // The weighted spread score of each raw score present, looked up
        // rather than divided for every node.
        let table: Vec<u64> = if max - min <= 4096 {
            (min..=max)
                .map(|raw| WEIGHT_SPREAD * spread_score(raw))
                .collect()
        } else {
            Vec::new()
        };
        // No PreferNoSchedule taint: every node's taint score is the maximum.
        let taint = WEIGHT_TAINT * MAX_NODE_SCORE;
        let (mut best_key, mut best_node) = (0u64, usize::MAX);
        for (i, ((&score, &raw), &hash)) in class
            .scores
            .iter()
            .zip(&class.spread_raw)
            .zip(&self.name_hashes)
            .enumerate()
        {
            if score == INFEASIBLE {
                continue;
            }
            let spread = if raw == NO_SPREAD {
                0
            } else if table.is_empty() {
                WEIGHT_SPREAD * spread_score(raw)
            } else {
                table[(raw - min) as usize]
            };
            let key = ranking_key(u64::from(score) + taint + spread, seed, hash);
            if key > best_key || best_node == usize::MAX {
                best_key = key;
                best_node = i;
            }
        }
        (best_node != usize::MAX).then_some(best_node)
    }

    /// Every node filtered and scored anew: for pods whose filters depend on
    /// what was placed (host ports, spread, anti-affinity).
    fn best_node_scanned(&mut self, class: &PodClass, seed: u64) -> Option<usize> {
        let (mut best_key, mut best_node) = (0u64, usize::MAX);
        for (i, ((r, ok), hash)) in self
            .resources
            .iter()
            .zip(&class.static_ok)
            .zip(&self.name_hashes)
            .enumerate()
        {
            if !*ok || !fits(r, &class.requests) || !class.dynamic_ok(self, i) {
                continue;
            }
            let score = resource_score(self.strategy, r, &class.requests);
            let key = ranking_key(score, seed, *hash);
            if key > best_key || best_node == usize::MAX {
                best_key = key;
                best_node = i;
            }
        }
        (best_node != usize::MAX).then_some(best_node)
    }

    /// Two passes, for the scores kube-scheduler normalizes over the
    /// feasible nodes (PreferNoSchedule taints, ScheduleAnyway spread, which
    /// every pod without constraints of its own has). Without dynamic
    /// filters, feasibility and resource scores are the kept ones.
    fn best_node_normalized(&mut self, class: &mut PodClass, seed: u64) -> Option<usize> {
        let kept = !class.has_dynamic_filters();
        if kept && class.default_spread && !class.prefer_no_schedule_taints {
            return self.best_node_default_spread(class, seed);
        }
        if kept && class.scores.len() != self.nodes.len() {
            class.scores = (0..self.nodes.len())
                .map(|i| self.static_score(class, i))
                .collect();
        }
        self.best_node_normalized_from(class, seed, kept)
    }

    /// [`Self::best_node_normalized`], from the kept scores or every node
    /// filtered and scored anew.
    fn best_node_normalized_from(
        &mut self,
        class: &PodClass,
        seed: u64,
        kept: bool,
    ) -> Option<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let (mut max_taint, mut min_spread, mut max_spread) = (0u32, u64::MAX, 0u64);
        for (i, r) in self.resources.iter().enumerate() {
            let score = if kept {
                match class.scores[i] {
                    INFEASIBLE => continue,
                    score => u64::from(score),
                }
            } else {
                if !class.static_ok[i] || !fits(r, &class.requests) || !class.dynamic_ok(self, i) {
                    continue;
                }
                resource_score(self.strategy, r, &class.requests)
            };
            let taint = class.prefer_no_schedule[i];
            let spread = class.spread_raw_score(i);
            max_taint = max_taint.max(taint);
            if let Some(s) = spread {
                min_spread = min_spread.min(s);
                max_spread = max_spread.max(s);
            }
            scratch.push((i as u32, score, taint, spread.unwrap_or(u64::MAX)));
        }
        let mut best = None;
        for &(i, score, taint, spread) in &scratch {
            let taint_score = if max_taint == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE - MAX_NODE_SCORE * u64::from(taint) / u64::from(max_taint)
            };
            // kube-scheduler: nodes without the topology keys score 0; the
            // others `100 * (max + min - s) / max`, all 100 when max is 0.
            let spread_score = if spread == u64::MAX {
                0
            } else {
                (MAX_NODE_SCORE * (max_spread + min_spread - spread))
                    .checked_div(max_spread)
                    .unwrap_or(MAX_NODE_SCORE)
            };
            let total = score + WEIGHT_TAINT * taint_score + WEIGHT_SPREAD * spread_score;
            let key = ranking_key(total, seed, self.nodes[i as usize].name_hash);
            if best.is_none_or(|(_, best_key)| key > best_key) {
                best = Some((i as usize, key));
            }
        }
        self.scratch = scratch;
        best.map(|(i, _)| i)
    }

    /// `0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.`
    fn fit_error(&self, class: &PodClass, pod: PodRef<'_>) -> String {
        let mut histogram: BTreeMap<String, u32> = BTreeMap::new();
        for i in 0..self.nodes.len() {
            for reason in self.filter_reasons(class, pod, i) {
                *histogram.entry(reason.message()).or_insert(0) += 1;
            }
        }
        fit_error_message(self.nodes.len(), &histogram)
    }

    /// Every filter, in kube-scheduler's plugin order; the first plugin that
    /// rejects the node gives its reasons (resources may give several).
    fn filter_reasons(&self, class: &PodClass, pod: PodRef<'_>, i: usize) -> Vec<FilterReason> {
        let node = &self.nodes[i];
        if !node.reachable {
            return vec![FilterReason::Unreachable];
        }
        if node.unschedulable {
            return vec![FilterReason::Unschedulable];
        }
        if let Some(taint) = untolerated_taint(node.taints, pod.template) {
            return vec![FilterReason::UntoleratedTaint {
                key: taint.key.clone(),
                value: taint.value.clone(),
            }];
        }
        if !matches_node_affinity(&node.labels, pod.template) {
            return vec![FilterReason::NodeAffinity];
        }
        if class
            .requests
            .host_ports
            .iter()
            .any(|p| node.host_ports.contains(p))
        {
            return vec![FilterReason::HostPorts];
        }
        let r = &self.resources[i];
        let q = &class.requests;
        let mut reasons = Vec::new();
        if r.pods + 1 > r.alloc_pods {
            reasons.push(FilterReason::TooManyPods);
        }
        if q.cpu > 0 && q.cpu > r.alloc_cpu.saturating_sub(r.cpu) {
            reasons.push(FilterReason::InsufficientCpu);
        }
        if q.memory > 0 && q.memory > r.alloc_memory.saturating_sub(r.memory) {
            reasons.push(FilterReason::InsufficientMemory);
        }
        if !reasons.is_empty() {
            return reasons;
        }
        if let Some(Some(reason)) = class.restriction.get(i) {
            return vec![reason.clone()];
        }
        if let Some(reason) = class.spread_reason(i) {
            return vec![reason];
        }
        if !class.anti_affinity_ok(i) {
            return vec![FilterReason::AntiAffinity];
        }
        Vec::new()
    }
}

/// kube-scheduler's FitError: `0/N nodes are available: ` then every
/// `count reason`, sorted as strings, joined with `, `, then `.`.
pub fn fit_error_message(node_count: usize, histogram: &BTreeMap<String, u32>) -> String {
    let mut reasons: Vec<String> = histogram
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    reasons.sort();
    if reasons.is_empty() {
        format!("0/{node_count} nodes are available.")
    } else {
        format!(
            "0/{node_count} nodes are available: {}.",
            reasons.join(", ")
        )
    }
}

/// Orders nodes by score, then by the stable tie hash of (pod, node).
/// Scores stay far below 2^16 (at most 100 per plugin times its weight).
#[inline]
fn ranking_key(score: u64, pod_seed: u64, node_hash: u64) -> u64 {
    (score.min(0xffff) << 48) | (tie_hash(pod_seed, node_hash) >> 16)
}

#[inline]
fn fits(r: &Resources, q: &Requests) -> bool {
    r.pods < r.alloc_pods
        && (q.cpu == 0 || q.cpu + r.cpu <= r.alloc_cpu)
        && (q.memory == 0 || q.memory + r.memory <= r.alloc_memory)
}

/// NodeResourcesFit (LeastAllocated or MostAllocated, CPU and memory
/// weighted 1:1) plus NodeResourcesBalancedAllocation, each 0 to 100.
///
/// kube-scheduler divides integers; this multiplies by the node's
/// precomputed inverse capacity and rounds down, with a small epsilon so
/// that exact ratios (2000/4000 = 50) land where integer division puts them.
#[inline]
fn resource_score(strategy: ScoringStrategy, r: &Resources, q: &Requests) -> u64 {
    let cpu = (r.nonzero_cpu_f + q.nonzero_cpu_f) * r.inverse_cpu;
    let memory = (r.nonzero_memory_f + q.nonzero_memory_f) * r.inverse_memory;
    let fit = match strategy {
        ScoringStrategy::LeastAllocated => {
            (least_allocated(cpu, r.inverse_cpu) + least_allocated(memory, r.inverse_memory)) / 2
        }
        ScoringStrategy::MostAllocated => {
            (most_allocated(cpu, r.inverse_cpu) + most_allocated(memory, r.inverse_memory)) / 2
        }
    };
    let cpu_fraction = fraction((r.cpu + q.cpu) as f64 * r.inverse_cpu, r.inverse_cpu);
    let memory_fraction = fraction(
        (r.memory + q.memory) as f64 * r.inverse_memory,
        r.inverse_memory,
    );
    WEIGHT_FIT * fit + WEIGHT_BALANCED * balanced(cpu_fraction, memory_fraction)
}

const EPSILON: f64 = 1e-9;

/// `(capacity - requested) * 100 / capacity`, 0 when over capacity or unknown.
#[inline]
fn least_allocated(used_fraction: f64, inverse: f64) -> u64 {
    if inverse == 0.0 || used_fraction > 1.0 {
        0
    } else {
        ((1.0 - used_fraction) * MAX_NODE_SCORE as f64 + EPSILON) as i64 as u64
    }
}

/// `requested * 100 / capacity`, capped at 100, 0 when unknown.
#[inline]
fn most_allocated(used_fraction: f64, inverse: f64) -> u64 {
    if inverse == 0.0 {
        0
    } else {
        (used_fraction.min(1.0) * MAX_NODE_SCORE as f64 + EPSILON) as i64 as u64
    }
}

#[inline]
fn fraction(used_fraction: f64, inverse: f64) -> f64 {
    if inverse == 0.0 {
        1.0
    } else {
        used_fraction.min(1.0)
    }
}

/// `(1 - |cpu fraction - memory fraction| / 2) * 100`, the two-resource
/// case of kube-scheduler's standard-deviation formula.
#[inline]
fn balanced(cpu_fraction: f64, memory_fraction: f64) -> u64 {
    let std = (cpu_fraction - memory_fraction).abs() / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64 + EPSILON) as i64 as u64
}

#[derive(Clone, Debug, Default)]
struct Requests {
    cpu: u64,
    memory: u64,
    nonzero_cpu: u64,
    nonzero_memory: u64,
    cpu_f: f64,
    memory_f: f64,
    nonzero_cpu_f: f64,
    nonzero_memory_f: f64,
    host_ports: Vec<(u16, Protocol)>,
}

impl Requests {
    fn of(template: &PodTemplate) -> Requests {
        let mut requests = Requests::default();
        for container in &template.spec.containers {
            let r = &container.resources.requests;
            let cpu = r.cpu.map_or(0, |c| c.0);
            let memory = r.memory.map_or(0, |m| m.0);
            requests.cpu += cpu;
            requests.memory += memory;
            requests.nonzero_cpu += if r.cpu.is_some() {
                cpu
            } else {
                DEFAULT_CPU_REQUEST_MILLIS
            };
            requests.nonzero_memory += if r.memory.is_some() {
                memory
            } else {
                DEFAULT_MEMORY_REQUEST_BYTES
            };
        }
        requests.host_ports = template.spec.host_ports().collect();
        requests.cpu_f = requests.cpu as f64;
        requests.memory_f = requests.memory as f64;
        requests.nonzero_cpu_f = requests.nonzero_cpu as f64;
        requests.nonzero_memory_f = requests.nonzero_memory as f64;
        requests
    }
}

/// The first NoSchedule or NoExecute taint no toleration of the pod covers.
fn untolerated_taint<'t>(taints: &'t [Taint], template: &PodTemplate) -> Option<&'t Taint> {
    taints.iter().find(|taint| {
        matches!(
            taint.effect,
            TaintEffect::NoSchedule | TaintEffect::NoExecute
        ) && !template.spec.tolerations.iter().any(|t| t.tolerates(taint))
    })
}

/// nodeSelector and required node affinity (terms ORed; no terms matches).
pub(crate) fn matches_node_affinity(
    labels: &BTreeMap<String, String>,
    template: &PodTemplate,
) -> bool {
    let spec = &template.spec;
    spec.node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && (spec.required_node_affinity.is_empty()
            || spec
                .required_node_affinity
                .iter()
                .any(|t| t.matches(labels)))
}

/// Pods matching a selector, counted per topology domain.
struct DomainCounts {
    /// The domain of each node (`NO_DOMAIN` when the node lacks the key).
    node_domain: Vec<u32>,
    /// Matching pods per domain, over the nodes that count.
    counts: Vec<u32>,
    /// Whether each domain has at least one node that counts.
    eligible: Vec<bool>,
    /// How many nodes each domain has.
    domain_nodes: Vec<u32>,
    /// Whether the pod being placed matches its own selector.
    self_match: bool,
    max_skew: u32,
    when_unsatisfiable: WhenUnsatisfiable,
}

impl DomainCounts {
    fn new(
        scheduler: &Scheduler<'_>,
        key: &str,
        selector: &LabelSelector,
        pod: PodRef<'_>,
        counted: impl Fn(usize) -> bool,
    ) -> DomainCounts {
        let mut values: HashMap<&str, u32> = HashMap::new();
        let mut node_domain = Vec::with_capacity(scheduler.nodes.len());
        for node in &scheduler.nodes {
            node_domain.push(match node.labels.get(key) {
                Some(v) => {
                    let next = values.len() as u32;
                    *values.entry(v.as_str()).or_insert(next)
                }
                None => NO_DOMAIN,
            });
        }
        let group_matches: Vec<bool> = scheduler
            .groups
            .iter()
            .map(|g| g.namespace == pod.namespace && selector.matches(g.labels))
            .collect();
        let mut counts = vec![0; values.len()];
        let mut eligible = vec![false; values.len()];
        let mut domain_nodes = vec![0; values.len()];
        for &d in &node_domain {
            if d != NO_DOMAIN {
                domain_nodes[d as usize] += 1;
            }
        }
        for (i, node) in scheduler.nodes.iter().enumerate() {
            let d = node_domain[i];
            if d == NO_DOMAIN || !counted(i) {
                continue;
            }
            eligible[d as usize] = true;
            counts[d as usize] += node
                .groups
                .iter()
                .filter(|(g, _)| group_matches[*g as usize])
                .map(|(_, c)| c)
                .sum::<u32>();
        }
        DomainCounts {
            node_domain,
            counts,
            eligible,
            domain_nodes,
            self_match: selector.matches(&pod.template.labels),
            max_skew: 1,
            when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
        }
    }

    fn min_count(&self) -> u32 {
        self.counts
            .iter()
            .zip(&self.eligible)
            .filter(|(_, e)| **e)
            .map(|(c, _)| *c)
            .min()
            .unwrap_or(0)
    }

    fn domains(&self) -> usize {
        self.eligible.iter().filter(|e| **e).count()
    }
}

/// Kubernetes' default topology spread for a pod that declares none
/// (kube-scheduler's `systemDefaulted` constraints): at most 3 more of the
/// workload's pods on one node and 5 more in one zone than elsewhere, as a
/// preference. They spread the replicas of one workload over equal nodes,
/// whatever the scoring strategy. Kubernetes selects the pods of the
/// owning ReplicaSet; the pod's own labels, which its workload's selector
/// matches, select the same pods here.
fn default_spread_constraints(template: &PodTemplate) -> Vec<TopologySpreadConstraint> {
    let selector = LabelSelector {
        match_labels: template.labels.clone(),
        match_expressions: Vec::new(),
    };
    [(HOSTNAME_LABEL, 3), (ZONE_LABEL, 5)]
        .into_iter()
        .map(|(key, max_skew)| TopologySpreadConstraint {
            max_skew,
            topology_key: key.to_string(),
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
            label_selector: selector.clone(),
        })
        .collect()
}

/// The well-known zone label of Kubernetes nodes.
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What is fixed for all replicas of one pod template during a batch.
struct PodClass {
    requests: Requests,
    /// Per node, why the planner rules it out (empty: no node is).
    restriction: Vec<Option<FilterReason>>,
    /// Reachable, not cordoned, taints tolerated, node affinity matched:
    /// the filters that placements do not change.
    static_ok: Vec<bool>,
    /// PreferNoSchedule taints the pod does not tolerate, per node.
    prefer_no_schedule: Vec<u32>,
    /// Whether any node has one.
    prefer_no_schedule_taints: bool,
    spread: Vec<DomainCounts>,
    /// Minimum per DoNotSchedule constraint, kept up to date.
    spread_min: Vec<u32>,
    /// log(domains + 2) per ScheduleAnyway constraint, as kube weighs them.
    spread_weight: Vec<f64>,
    anti_affinity: Vec<DomainCounts>,
    /// Nodes that count for spreading: node affinity matched, and every
    /// key present (declared constraints only).
    spread_counted: Vec<bool>,
    /// The pod declares no constraint: `spread` holds Kubernetes' system
    /// defaults, which a node without a key does not fail.
    default_spread: bool,
    /// A DoNotSchedule constraint: a filter that depends on placements.
    hard_spread: bool,
    normalize: bool,
    has_ports: bool,
    /// Per node: the score under the static filters, or INFEASIBLE; filled
    /// on first use when the class has only static filters.
    scores: Vec<u32>,
    /// Per node: the raw ScheduleAnyway spread score (`NO_SPREAD` when
    /// none), kept with `scores` for the default spread.
    spread_raw: Vec<u64>,
    /// How many feasible nodes (in `scores`) have each raw spread score:
    /// their minimum and maximum normalize the spread scores.
    spread_histogram: BTreeMap<u64, u32>,
}

/// A node without a raw spread score, in `PodClass::spread_raw`.
const NO_SPREAD: u64 = u64::MAX;

/// A node the pod cannot go to, in `PodClass::scores`.
const INFEASIBLE: u32 = u32::MAX;

impl PodClass {
    fn new(scheduler: &Scheduler<'_>, pod: PodRef<'_>) -> PodClass {
        let spec = &pod.template.spec;
        let requests = Requests::of(pod.template);
        let static_ok: Vec<bool> = scheduler
            .nodes
            .iter()
            .map(|n| {
                n.reachable
                    && !n.unschedulable
                    && untolerated_taint(n.taints, pod.template).is_none()
                    && matches_node_affinity(&n.labels, pod.template)
            })
            .collect();
        let prefer_no_schedule: Vec<u32> = scheduler
            .nodes
            .iter()
            .map(|n| {
                n.taints
                    .iter()
                    .filter(|t| {
                        t.effect == TaintEffect::PreferNoSchedule
                            && !spec.tolerations.iter().any(|tol| tol.tolerates(t))
                    })
                    .count() as u32
            })
            .collect();
        let default_spread = spec.topology_spread_constraints.is_empty();
        let defaults;
        let constraints = if default_spread {
            defaults = default_spread_constraints(pod.template);
            &defaults
        } else {
            &spec.topology_spread_constraints
        };
        let spread_counted: Vec<bool> = scheduler
            .nodes
            .iter()
            .map(|n| {
                matches_node_affinity(&n.labels, pod.template)
                    && (default_spread
                        || constraints
                            .iter()
                            .all(|c| n.labels.contains_key(&c.topology_key)))
            })
            .collect();
        let spread: Vec<DomainCounts> = constraints
            .iter()
            .map(|c| {
                let mut d =
                    DomainCounts::new(scheduler, &c.topology_key, &c.label_selector, pod, |i| {
                        spread_counted[i]
                    });
                d.max_skew = c.max_skew;
                d.when_unsatisfiable = c.when_unsatisfiable;
                d
            })
            .collect();
        let spread_min = spread.iter().map(DomainCounts::min_count).collect();
        let spread_weight = spread
            .iter()
            .map(|d| ((d.domains() + 2) as f64).ln())
            .collect();
        let anti_affinity: Vec<DomainCounts> = spec
            .required_pod_anti_affinity
            .iter()
            .map(|t| {
                DomainCounts::new(scheduler, &t.topology_key, &t.label_selector, pod, |_| true)
            })
            .collect();
        let prefer_no_schedule_taints = prefer_no_schedule.iter().any(|c| *c > 0);
        let normalize = prefer_no_schedule_taints
            || spread
                .iter()
                .any(|d| d.when_unsatisfiable == WhenUnsatisfiable::ScheduleAnyway);
        let hard_spread = spread
            .iter()
            .any(|d| d.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule);
        PodClass {
            has_ports: !requests.host_ports.is_empty(),
            default_spread,
            hard_spread,
            requests,
            static_ok,
            restriction: Vec::new(),
            prefer_no_schedule,
            prefer_no_schedule_taints,
            spread,
            spread_min,
            spread_weight,
            anti_affinity,
            spread_counted,
            normalize,
            scores: Vec::new(),
            spread_raw: Vec::new(),
            spread_histogram: BTreeMap::new(),
        }
    }

    /// Counts node `i`'s kept raw spread score, if it is feasible.
    fn remember_spread(&mut self, i: usize) {
        let raw = self.spread_raw[i];
        if self.scores[i] != INFEASIBLE && raw != NO_SPREAD {
            *self.spread_histogram.entry(raw).or_insert(0) += 1;
        }
    }

    /// Stops counting node `i`'s kept raw spread score.
    fn forget_spread(&mut self, i: usize) {
        let raw = self.spread_raw[i];
        if self.scores[i] == INFEASIBLE || raw == NO_SPREAD {
            return;
        }
        if let std::collections::btree_map::Entry::Occupied(mut entry) =
            self.spread_histogram.entry(raw)
        {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }

    fn has_dynamic_filters(&self) -> bool {
        self.has_ports || self.hard_spread || !self.anti_affinity.is_empty()
    }

    /// The filters that depend on what has been placed: host ports, topology
    /// spread, pod anti-affinity.
    #[inline]
    fn dynamic_ok(&self, scheduler: &Scheduler<'_>, i: usize) -> bool {
        if self.has_ports
            && self
                .requests
                .host_ports
                .iter()
                .any(|p| scheduler.nodes[i].host_ports.contains(p))
        {
            return false;
        }
        (!self.hard_spread || self.spread_reason(i).is_none())
            && (self.anti_affinity.is_empty() || self.anti_affinity_ok(i))
    }

    /// PodTopologySpread's filter: the node must have every key, and
    /// placing here must keep `count + self - global minimum <= maxSkew`.
    fn spread_reason(&self, i: usize) -> Option<FilterReason> {
        for (c, d) in self.spread.iter().enumerate() {
            if d.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
                continue;
            }
            let domain = d.node_domain[i];
            if domain == NO_DOMAIN {
                return Some(FilterReason::TopologySpreadMissingLabel);
            }
            let skew = d.counts[domain as usize] + u32::from(d.self_match) - self.spread_min[c];
            if skew > d.max_skew {
                return Some(FilterReason::TopologySpread);
            }
        }
        None
    }

    /// The raw ScheduleAnyway score (lower is better), `None` for a node
    /// without the keys of declared constraints; `Some(0)` when the pod has
    /// no such constraint. A default constraint whose key the node lacks
    /// (a zone, usually) adds nothing, as in kube-scheduler.
    fn spread_raw_score(&self, i: usize) -> Option<u64> {
        let mut score = 0.0;
        for (c, d) in self.spread.iter().enumerate() {
            if d.when_unsatisfiable != WhenUnsatisfiable::ScheduleAnyway {
                continue;
            }
            let domain = d.node_domain[i];
            if self.default_spread && domain == NO_DOMAIN {
                continue;
            }
            if domain == NO_DOMAIN || !self.spread_counted[i] {
                return None;
            }
            score += f64::from(d.counts[domain as usize]) * self.spread_weight[c]
                + f64::from(d.max_skew.saturating_sub(1));
        }
        Some(score.round() as u64)
    }

    fn anti_affinity_ok(&self, i: usize) -> bool {
        self.anti_affinity.iter().all(|d| {
            let domain = d.node_domain[i];
            domain == NO_DOMAIN || d.counts[domain as usize] == 0
        })
    }

    /// Updates the counts after a replica of this class went to node `i`.
    fn placed(&mut self, i: usize) {
        for (c, d) in self.spread.iter_mut().enumerate() {
            let domain = d.node_domain[i];
            if d.self_match && domain != NO_DOMAIN && self.spread_counted[i] {
                d.counts[domain as usize] += 1;
                // The minimum is the DoNotSchedule filter's; recounting it
                // over every domain (every node, for the hostname) is
                // wasted on a ScheduleAnyway constraint.
                if d.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule {
                    self.spread_min[c] = d.min_count();
                }
            }
        }
        for d in &mut self.anti_affinity {
            let domain = d.node_domain[i];
            if d.self_match && domain != NO_DOMAIN {
                d.counts[domain as usize] += 1;
            }
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: a stable hash, the same on every machine and Rust version.
fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The tie break of one (pod, node) pair: both sides are already mixed, so
/// one multiplication spreads the pair's bits; it runs in the scan, for
/// every node whose score equals the best so far.
#[inline]
fn tie_hash(pod_seed: u64, node_hash: u64) -> u64 {
    (pod_seed ^ node_hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// splitmix64's finalizer, so that similar names give unrelated tie breaks.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SourceFile;

    /// `nodes` nodes of varied capacity, some cordoned or tainted, and one
    /// Deployment requesting `cpu`/`memory`.
    fn state(nodes: u32, cpu: &str, memory: &str, most_allocated: bool) -> DesiredState {
        let mut text = format!(
            "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {{name: c}}\nspec: {{scoringStrategy: {}}}\n",
            if most_allocated { "MostAllocated" } else { "LeastAllocated" }
        );
        for i in 0..nodes {
            // Some nodes in zones (the default spread counts zones too).
            let zone = match i % 4 {
                0 | 1 => format!(", labels: {{topology.kubernetes.io/zone: z{}}}", i % 3),
                _ => String::new(),
            };
            let extra = match i % 7 {
                3 => "\n  unschedulable: true",
                5 => "\n  taints: [{key: dedicated, value: db, effect: NoSchedule}]",
                _ => "",
            };
            text.push_str(&format!(
                "---\napiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {{name: n{i:03}{zone}}}\nspec:\n  address: 10.0.0.{}\n  capacity: {{cpu: '{}', memory: {}Gi, pods: {}}}{extra}\n",
                i + 1,
                1 + i % 4,
                2 + (i * 5) % 9,
                3 + i % 5
            ));
        }
        text.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - name: app\n        image: img\n        resources: {{requests: {{cpu: {cpu}, memory: {memory}}}}}\n"
        ));
        let loaded = crate::manifest::load(&[SourceFile {
            path: "all.yaml".into(),
            text,
            excluded: Vec::new(),
        }]);
        assert!(
            loaded.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            loaded.diagnostics
        );
        loaded.state
    }

    /// The kept scores give exactly the placements a fresh scan of every
    /// node gives (with the default spreading's scores normalized anew),
    /// placement after placement, until nothing fits.
    #[test]
    fn kept_scores_place_as_a_full_scan_does() {
        for (nodes, cpu, memory, most) in [
            (12, "250m", "512Mi", false),
            (12, "250m", "512Mi", true),
            (40, "1", "1Gi", false),
            (40, "100m", "3Gi", true),
            (7, "0", "0", false),
        ] {
            let desired = state(nodes, cpu, memory, most);
            let mut observed = ObservedCluster::default();
            for node in &desired.nodes {
                observed.nodes.insert(
                    node.meta.name.clone(),
                    crate::cluster::ObservedNode {
                        name: node.meta.name.clone(),
                        reachability: crate::cluster::Reachability::Reachable,
                        facts: None,
                        containers: Vec::new(),
                        volumes: Vec::new(),
                    },
                );
            }
            let d = &desired.workloads[0];
            let pod = PodRef {
                namespace: &d.meta.namespace,
                name: &d.meta.name,
                template: &d.spec.template,
            };
            let mut kept = Scheduler::new(&desired, &observed);
            let mut scanned = Scheduler::new(&desired, &observed);
            let group = scanned.group(pod);
            let mut class = PodClass::new(&scanned, pod);
            let slots: Vec<u32> = (0..200).collect();
            let placed = kept.schedule(pod, &slots);
            for (slot, got) in slots.iter().zip(&placed) {
                let seed = fnv1a(
                    &slot.to_le_bytes(),
                    fnv1a(
                        pod.name.as_bytes(),
                        fnv1a(pod.namespace.as_bytes(), FNV_OFFSET),
                    ),
                );
                let want = scanned.best_node_normalized_from(&class, seed, false);
                if let Some(node) = want {
                    scanned.account(node, pod.template, group);
                    class.placed(node);
                }
                assert_eq!(
                    got.as_ref().ok().copied(),
                    want,
                    "{nodes} nodes, {cpu}/{memory}, slot {slot}"
                );
            }
            let ok = placed.iter().filter(|p| p.is_ok()).count();
            assert!(
                ok > 0 && ok < placed.len(),
                "{nodes} nodes, {cpu}/{memory}: {ok} placed"
            );
        }
    }
}
