//! Replicas (pods) as the planner sees them: the managed containers of the
//! cluster grouped by the identity their labels carry, and each replica's
//! state and readiness.
//!
//! Pure: time comes in as `now`; nothing here talks to a node.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{
    ContainerRole, ContainerState, FnvHashMap as HashMap, ObservedCluster, ObservedContainer,
};
use crate::manifest::model::{Container, Kind, PodSpec, PodTemplate, RestartPolicy};

/// The identity of one replica: its object, its slot and its revision.
/// Two containers with the same key belong to the same pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ReplicaKey<'a> {
    pub kind: Kind,
    pub namespace: &'a str,
    pub name: &'a str,
    pub slot: u32,
    pub template_hash: &'a str,
}

/// The containers of one replica, as observed on one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservedReplica<'a> {
    pub key: ReplicaKey<'a>,
    /// The node the containers run on (from the node that reported them).
    pub node: &'a str,
    /// Whether that node answered the last observation.
    pub node_reachable: bool,
    /// The commit that declared this revision (from the first container).
    pub commit: &'a str,
    /// Sorted by container name.
    pub containers: Vec<&'a ObservedContainer>,
}

/// What a replica is doing, from the planner's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Its node cannot be reached: nothing is known, nothing is done to it.
    Unknown,
    /// Being stopped and removed (a container Docker reports `removing`, or
    /// one the leader is stopping): not counted, and not acted on again,
    /// like a terminating pod in Kubernetes. It keeps its node's resources
    /// and ports until it is gone.
    Terminating,
    /// A container is dead, or stopped and its restart policy will not
    /// bring it back: the replica has to be replaced.
    Failed,
    /// Every container exited 0 and its restart policy (`Never` or
    /// `OnFailure`) does not start them again: the pod ran to completion.
    Succeeded,
    /// A container is created, stopped or restarting but is expected to run.
    Pending,
    /// Every container runs, but the replica is not ready yet.
    Running,
    /// Every container runs and passes its readiness gate.
    Ready,
}

impl ReplicaState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicaState::Unknown => "unknown",
            ReplicaState::Terminating => "terminating",
            ReplicaState::Failed => "failed",
            ReplicaState::Succeeded => "succeeded",
            ReplicaState::Pending => "pending",
            ReplicaState::Running => "running",
            ReplicaState::Ready => "ready",
        }
    }
}

/// Groups every managed container of the cluster into replicas, sorted by
/// key then node. Containers of the same key on different nodes are
/// different replicas (a replica never spans nodes).
pub fn group_replicas(cluster: &ObservedCluster) -> Vec<ObservedReplica<'_>> {
    // Every distinct string of the sort key is numbered once (neighbours on
    // a node mostly share them, so most look-ups are one comparison with the
    // last), then ranked, so the sort of (possibly 100,000) containers
    // compares numbers; the order is the one the strings give.
    let mut objects = Interner::default();
    let mut hashes = Interner::default();
    let mut names = Interner::default();
    let mut containers: Vec<(SortKey, &str, bool, &ObservedContainer)> = Vec::new();
    // Node ranks follow the map's order, which is the nodes' names.
    for (node_rank, node) in cluster.nodes.values().enumerate() {
        let reachable = node.reachability.is_reachable();
        for c in &node.containers {
            let l = &c.labels;
            let object = objects.id((l.kind, l.namespace.as_str(), l.name.as_str()));
            let hash = hashes.id(l.template_hash.as_str());
            let name = names.id(l.container.as_str());
            containers.push((
                (
                    u64::from(object) << 32 | u64::from(l.slot),
                    u64::from(hash) << 32 | node_rank as u64,
                    name,
                ),
                node.name.as_str(),
                reachable,
                c,
            ));
        }
    }
    let (objects, hashes, names) = (objects.ranks(), hashes.ranks(), names.ranks());
    for (key, ..) in &mut containers {
        let (object, slot) = (key.0 >> 32, key.0 & 0xffff_ffff);
        let (hash, node) = (key.1 >> 32, key.1 & 0xffff_ffff);
        *key = (
            u64::from(objects[object as usize]) << 32 | slot,
            u64::from(hashes[hash as usize]) << 32 | node,
            names[key.2 as usize],
        );
    }
    containers.sort_unstable_by_key(|c| c.0);
    let mut replicas: Vec<ObservedReplica<'_>> = Vec::new();
    let mut last_group = None;
    for ((object_slot, hash_node, _), node, node_reachable, container) in containers {
        match replicas.last_mut() {
            Some(last) if last_group == Some((object_slot, hash_node)) => {
                last.containers.push(container)
            }
            _ => {
                last_group = Some((object_slot, hash_node));
                replicas.push(ObservedReplica {
                    key: replica_key(container),
                    node,
                    node_reachable,
                    commit: &container.labels.commit,
                    containers: vec![container],
                });
            }
        }
    }
    replicas
}

/// (object rank << 32 | slot, revision rank << 32 | node rank, container rank).
type SortKey = (u64, u64, u32);

/// Numbers distinct keys in the order first seen; `ranks` then maps each
/// number to the key's rank in the keys' order.
struct Interner<K> {
    ids: HashMap<K, u32>,
    keys: Vec<K>,
    last: Option<(K, u32)>,
}

impl<K> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            ids: HashMap::default(),
            keys: Vec::new(),
            last: None,
        }
    }
}

impl<K: Ord + Copy + std::hash::Hash> Interner<K> {
    fn id(&mut self, key: K) -> u32 {
        if let Some((last, id)) = self.last {
            if last == key {
                return id;
            }
        }
        let next = self.keys.len() as u32;
        let id = *self.ids.entry(key).or_insert(next);
        if id == next {
            self.keys.push(key);
        }
        self.last = Some((key, id));
        id
    }

    fn ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        order.sort_unstable_by_key(|&id| self.keys[id as usize]);
        let mut ranks = vec![0; order.len()];
        for (rank, id) in order.into_iter().enumerate() {
            ranks[id as usize] = rank as u32;
        }
        ranks
    }
}

fn replica_key(container: &ObservedContainer) -> ReplicaKey<'_> {
    let l = &container.labels;
    ReplicaKey {
        kind: l.kind,
        namespace: &l.namespace,
        name: &l.name,
        slot: l.slot,
        template_hash: &l.template_hash,
    }
}

/// What decides a replica's readiness: its pod template (for probes,
/// restart policy and the container list) and `minReadySeconds`.
#[derive(Clone, Copy, Debug)]
pub struct ReadinessGate<'a> {
    pub template: &'a PodTemplate,
    pub min_ready_seconds: u32,
}

/// Where a pod stands in its init sequence (`initContainers`, in order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum InitProgress {
    /// Every init container completed (a regular one exited 0, a sidecar
    /// runs and passed its startup probe), or the pod has none, or its app
    /// containers have started: the app containers run.
    Done,
    /// `done` of `total` completed; the next one runs or is to start.
    Running { done: usize, total: usize },
    /// The regular init container after the `done` completed ones exited
    /// with a failure: it is started again after the crash-loop back-off,
    /// or under `restartPolicy: Never` the pod failed.
    Failed { done: usize, total: usize },
}

impl InitProgress {
    /// As kubectl shows a pod's init state: `Init:1/2`,
    /// `Init:CrashLoopBackOff` (`Init:Error` once it is not restarted).
    pub fn text(self, restart_policy: RestartPolicy) -> Option<String> {
        match self {
            InitProgress::Done => None,
            InitProgress::Running { done, total } => Some(format!("Init:{done}/{total}")),
            InitProgress::Failed { .. } if restart_policy == RestartPolicy::Never => {
                Some("Init:Error".to_string())
            }
            InitProgress::Failed { .. } => Some("Init:CrashLoopBackOff".to_string()),
        }
    }
}

impl ObservedReplica<'_> {
    /// The replica's state at `now`. Without a gate (an object no longer
    /// declared, or an old revision whose template is gone) a replica whose
    /// containers all run counts as ready, and a stopped one as failed.
    ///
    /// A pod's sandbox must run (one that stopped held the namespace the
    /// others are in: the pod is replaced, and one that is missing too);
    /// while its init containers have not all completed the pod is pending
    /// (failed when one failed under `restartPolicy: Never`); after, its
    /// regular init containers are done and no longer count.
    pub fn state(&self, gate: Option<ReadinessGate<'_>>, now: SystemTime) -> ReplicaState {
        if !self.node_reachable {
            return ReplicaState::Unknown;
        }
        let restart_policy = gate.map_or(RestartPolicy::Never, |g| g.template.spec.restart_policy);
        if self
            .containers
            .iter()
            .any(|c| c.state == ContainerState::Removing)
        {
            return ReplicaState::Terminating;
        }
        // Only a declared template says its pods run to completion: without
        // one, a stopped container is a failure, as it always was.
        let runs_to_completion =
            gate.is_some_and(|g| g.template.spec.restart_policy != RestartPolicy::Always);
        let mut all_running = true;
        let sandbox = self
            .containers
            .iter()
            .find(|c| c.labels.role == ContainerRole::Sandbox);
        match sandbox.map(|c| c.state) {
            Some(ContainerState::Running) => {}
            Some(ContainerState::Created) => all_running = false,
            Some(_) => return ReplicaState::Failed,
            None if gate.is_some_and(|g| g.template.spec.has_sandbox()) => {
                return ReplicaState::Failed
            }
            None => {}
        }
        if let Some(gate) = gate {
            let spec = &gate.template.spec;
            match self.init_progress(spec) {
                InitProgress::Done => {}
                InitProgress::Failed { .. } if spec.restart_policy == RestartPolicy::Never => {
                    return ReplicaState::Failed
                }
                InitProgress::Running { .. } | InitProgress::Failed { .. } => {
                    return ReplicaState::Pending
                }
            }
        }
        // Whether every app container ran to its end (a sidecar, which
        // always runs again, does not hold a pod's completion back).
        let mut all_completed = true;
        for container in self.running_containers() {
            let restart_policy = match container.labels.role {
                ContainerRole::Sidecar => RestartPolicy::Always,
                _ => restart_policy,
            };
            match container.state {
                // Done: neither running nor to be started again.
                ContainerState::Exited { code: 0 } if runs_to_completion => continue,
                ContainerState::Running => {}
                ContainerState::Removing => return ReplicaState::Terminating,
                ContainerState::Dead => return ReplicaState::Failed,
                ContainerState::Exited { code } if !restarts(restart_policy, code) => {
                    return ReplicaState::Failed
                }
                ContainerState::Created
                | ContainerState::Restarting
                | ContainerState::Paused
                | ContainerState::Exited { .. } => all_running = false,
            }
            if container.labels.role == ContainerRole::App {
                all_completed = false;
            }
        }
        // Only a pod whose every declared app container ran to the end.
        let app_containers = || {
            self.containers
                .iter()
                .filter(|c| c.labels.role == ContainerRole::App)
                .count()
        };
        if all_completed
            && runs_to_completion
            && gate.is_some_and(|g| g.template.spec.containers.len() == app_containers())
        {
            return ReplicaState::Succeeded;
        }
        if !all_running {
            return ReplicaState::Pending;
        }
        let Some(gate) = gate else {
            return ReplicaState::Ready;
        };
        let spec = &gate.template.spec;
        let declared: Vec<&Container> = spec
            .init_containers
            .iter()
            .filter(|c| c.sidecar)
            .chain(&spec.containers)
            .collect();
        if declared.len() != self.running_containers().count() {
            // A container of the pod is missing: the pod is not complete.
            return ReplicaState::Pending;
        }
        let ready = self.running_containers().all(|observed| {
            let declared = declared
                .iter()
                .copied()
                .find(|d| d.name == observed.labels.container);
            container_available(observed, declared, gate.min_ready_seconds, now)
        });
        if ready {
            ReplicaState::Ready
        } else {
            ReplicaState::Running
        }
    }

    /// The containers that run for the pod's life: its app containers and
    /// sidecars (not its sandbox, nor its regular init containers).
    fn running_containers(&self) -> impl Iterator<Item = &ObservedContainer> + '_ {
        self.containers
            .iter()
            .copied()
            .filter(|c| matches!(c.labels.role, ContainerRole::App | ContainerRole::Sidecar))
    }

    fn container(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers
            .iter()
            .copied()
            .find(|c| c.labels.container == name)
    }

    /// Where the pod stands in its init sequence, from what its containers
    /// are doing now (level-triggered: no memory of earlier observations).
    pub fn init_progress(&self, spec: &PodSpec) -> InitProgress {
        let total = spec.init_containers.len();
        // Init containers run once, before the app containers: once one of
        // those has started, the sequence is over (Kubernetes does not run
        // init containers again in a pod that ran).
        let apps_started = self
            .containers
            .iter()
            .any(|c| c.labels.role == ContainerRole::App && c.state != ContainerState::Created);
        if total == 0 || apps_started {
            return InitProgress::Done;
        }
        for (done, declared) in spec.init_containers.iter().enumerate() {
            let Some(observed) = self.container(&declared.name) else {
                return InitProgress::Running { done, total };
            };
            let complete = if declared.sidecar {
                observed.state == ContainerState::Running
                    && (declared.startup_probe.is_none() || observed.probe_ready == Some(true))
            } else {
                observed.state == ContainerState::Exited { code: 0 }
            };
            if complete {
                continue;
            }
            let failed = !declared.sidecar
                && matches!(
                    observed.state,
                    ContainerState::Dead | ContainerState::Exited { .. }
                );
            return if failed {
                InitProgress::Failed { done, total }
            } else {
                InitProgress::Running { done, total }
            };
        }
        InitProgress::Done
    }

    /// Containers that are not running but should, in the order to start
    /// them: a sandbox not started yet, then, while the init sequence goes
    /// on, the sidecars already passed that stopped and the next init
    /// container (a failed one again unless `restartPolicy: Never`; the
    /// leader holds it back for the crash-loop back-off); after it, the
    /// sidecars that stopped and the app containers that are created or
    /// that stopped and their restart policy brings back.
    pub fn containers_to_start(&self, spec: &PodSpec) -> Vec<&ObservedContainer> {
        let restart_policy = spec.restart_policy;
        let mut starts: Vec<&ObservedContainer> = self
            .containers
            .iter()
            .copied()
            .filter(|c| {
                c.labels.role == ContainerRole::Sandbox && c.state == ContainerState::Created
            })
            .collect();
        let stopped_sidecar = |c: &ObservedContainer| {
            c.labels.role == ContainerRole::Sidecar
                && matches!(
                    c.state,
                    ContainerState::Created | ContainerState::Exited { .. }
                )
        };
        let (done, next) = match self.init_progress(spec) {
            InitProgress::Done => {
                starts.extend(self.containers.iter().copied().filter(|c| {
                    stopped_sidecar(c)
                        || (c.labels.role == ContainerRole::App
                            && match c.state {
                                ContainerState::Created => true,
                                ContainerState::Exited { code } => restarts(restart_policy, code),
                                _ => false,
                            })
                }));
                return starts;
            }
            InitProgress::Running { done, .. } => (done, spec.init_containers.get(done)),
            InitProgress::Failed { done, .. } => (done, spec.init_containers.get(done)),
        };
        for declared in &spec.init_containers[..done] {
            if let Some(c) = self
                .container(&declared.name)
                .filter(|c| stopped_sidecar(c))
            {
                starts.push(c);
            }
        }
        if let Some(c) = next.and_then(|d| self.container(&d.name)) {
            let start = match c.state {
                ContainerState::Created => true,
                ContainerState::Exited { code } => {
                    c.labels.role == ContainerRole::Sidecar
                        || (code != 0 && restart_policy != RestartPolicy::Never)
                }
                _ => false,
            };
            if start {
                starts.push(c);
            }
        }
        starts
    }
}

/// Whether a running container of its object's current revision, declared
/// as `declared`, is ready: with a readiness or startup probe, when its
/// probes say so (a startup probe not passed yet holds it off); without,
/// as soon as it runs. An old revision's container (no declaration) is ready
/// while it runs.
pub(crate) fn container_ready(observed: &ObservedContainer, declared: Option<&Container>) -> bool {
    observed.state == ContainerState::Running
        && match declared {
            Some(d) if d.readiness_probe.is_some() || d.startup_probe.is_some() => {
                observed.probe_ready == Some(true)
            }
            _ => true,
        }
}

/// Whether the container is available at `now`: ready, and ready for
/// `min_ready_seconds` (from when its probe turned ready, or without a
/// probe from its start), as Kubernetes counts a pod available.
pub(crate) fn container_available(
    observed: &ObservedContainer,
    declared: Option<&Container>,
    min_ready_seconds: u32,
    now: SystemTime,
) -> bool {
    if !container_ready(observed, declared) {
        return false;
    }
    if min_ready_seconds == 0 {
        return true;
    }
    let probed = declared.is_some_and(|d| d.readiness_probe.is_some() || d.startup_probe.is_some());
    let since = if probed {
        observed.ready_since.or(observed.started_at)
    } else {
        observed.started_at
    };
    seconds_since(since, now) >= u64::from(min_ready_seconds)
}

/// Whether a container that exited with `code` is started again.
pub(crate) fn restarts(policy: RestartPolicy, code: i64) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}

/// Whole seconds from `since` to `now` (0 when unknown or in the future).
fn seconds_since(since: Option<SystemTime>, now: SystemTime) -> u64 {
    since
        .and_then(|since| now.duration_since(since).ok())
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ManagedLabels, ObservedNode, Reachability};
    use crate::manifest::model::{Container, PodSpec, PortRef, Probe, ProbeHandler};

    const T0: u64 = 1_700_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn container(name: &str, slot: u32, node: &str, state: ContainerState) -> ObservedContainer {
        let labels = ManagedLabels {
            namespace: "default".into(),
            kind: Kind::Deployment,
            name: "web".into(),
            slot,
            template_hash: "aaaa".into(),
            commit: "c1".into(),
            node: node.into(),
            container: name.into(),
            role: Default::default(),
        };
        ObservedContainer {
            id: format!("{node}-{slot}-{name}"),
            name: labels.container_name(),
            labels,
            state,
            health: None,
            restart_count: 0,
            started_at: Some(at(T0)),
            finished_at: None,
            image: "busybox".into(),
            ports: Vec::new(),
            probe_ready: None,
            address: None,
            ready_since: None,
            hooks: Default::default(),
        }
    }

    fn cluster(nodes: Vec<(&str, bool, Vec<ObservedContainer>)>) -> ObservedCluster {
        let mut c = ObservedCluster::default();
        for (name, reachable, containers) in nodes {
            c.nodes.insert(
                name.into(),
                ObservedNode {
                    name: name.into(),
                    reachability: if reachable {
                        Reachability::Reachable
                    } else {
                        Reachability::Unreachable {
                            since: at(T0),
                            reason: "connection refused".into(),
                            contents: crate::cluster::Contents::LastSeen,
                        }
                    },
                    facts: None,
                    containers,
                    volumes: Vec::new(),
                },
            );
        }
        c
    }

    fn template(containers: &[(&str, bool)]) -> PodTemplate {
        PodTemplate {
            spec: PodSpec {
                containers: containers
                    .iter()
                    .map(|(name, probe)| Container {
                        name: (*name).into(),
                        image: "busybox".into(),
                        readiness_probe: probe.then(|| Probe {
                            handler: ProbeHandler::TcpSocket {
                                port: PortRef::Number(80),
                            },
                            initial_delay_seconds: 0,
                            period_seconds: 10,
                            timeout_seconds: 1,
                            success_threshold: 1,
                            failure_threshold: 3,
                        }),
                        ..Container::default()
                    })
                    .collect(),
                ..PodSpec::default()
            },
            ..PodTemplate::default()
        }
    }

    #[test]
    fn containers_group_by_key_and_node() {
        let observed = cluster(vec![
            (
                "n1",
                true,
                vec![
                    container("side", 0, "n1", ContainerState::Running),
                    container("app", 0, "n1", ContainerState::Running),
                    container("app", 1, "n1", ContainerState::Running),
                ],
            ),
            (
                "n2",
                false,
                vec![container("app", 0, "n2", ContainerState::Running)],
            ),
        ]);
        let replicas = group_replicas(&observed);
        let summary: Vec<(u32, &str, bool, Vec<&str>)> = replicas
            .iter()
            .map(|r| {
                (
                    r.key.slot,
                    r.node,
                    r.node_reachable,
                    r.containers
                        .iter()
                        .map(|c| c.labels.container.as_str())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, "n1", true, vec!["app", "side"]),
                (0, "n2", false, vec!["app"]),
                (1, "n1", true, vec!["app"]),
            ]
        );
    }

    /// A pod that runs to completion (`Never`, `OnFailure`): succeeded once
    /// every declared container exited 0; under `Always`, or without its
    /// template, an exit is what it always was.
    #[test]
    fn run_to_completion_states() {
        use ContainerState::{Exited, Running};
        let cases: Vec<(&str, RestartPolicy, Vec<ContainerState>, bool, ReplicaState)> = vec![
            (
                "never, exited 0",
                RestartPolicy::Never,
                vec![Exited { code: 0 }],
                true,
                ReplicaState::Succeeded,
            ),
            (
                "on failure, exited 0",
                RestartPolicy::OnFailure,
                vec![Exited { code: 0 }],
                true,
                ReplicaState::Succeeded,
            ),
            (
                "never, exited 1",
                RestartPolicy::Never,
                vec![Exited { code: 1 }],
                true,
                ReplicaState::Failed,
            ),
            (
                "on failure, exited 1: restarted",
                RestartPolicy::OnFailure,
                vec![Exited { code: 1 }],
                true,
                ReplicaState::Pending,
            ),
            (
                "never, one done, one running",
                RestartPolicy::Never,
                vec![Exited { code: 0 }, Running],
                true,
                ReplicaState::Running,
            ),
            (
                "never, one done, one failed",
                RestartPolicy::Never,
                vec![Exited { code: 0 }, Exited { code: 2 }],
                true,
                ReplicaState::Failed,
            ),
            (
                "always, exited 0: restarted",
                RestartPolicy::Always,
                vec![Exited { code: 0 }],
                true,
                ReplicaState::Pending,
            ),
            (
                "never, no template",
                RestartPolicy::Never,
                vec![Exited { code: 0 }],
                false,
                ReplicaState::Failed,
            ),
        ];
        for (case, policy, states, with_gate, expected) in cases {
            let names = ["a", "b"];
            let mut containers: Vec<ObservedContainer> = states
                .iter()
                .zip(names)
                .map(|(state, name)| container(name, 0, "n1", *state))
                .collect();
            // A pod of several containers runs in its sandbox (issue 16's
            // pods; without it the pod failed).
            if states.len() > 1 {
                containers.push(sandbox(Running));
            }
            let declared: Vec<(&str, bool)> =
                names[..states.len()].iter().map(|n| (*n, false)).collect();
            let mut template = template(&declared);
            template.spec.restart_policy = policy;
            let observed = cluster(vec![("n1", true, containers)]);
            let replicas = group_replicas(&observed);
            let gate = ReadinessGate {
                template: &template,
                min_ready_seconds: 0,
            };
            let state = replicas[0].state(with_gate.then_some(gate), at(T0 + 5));
            assert_eq!(state, expected, "{case}");
        }
        // A missing container: not complete, whatever the others did.
        let mut both = template(&[("a", false), ("b", false)]);
        both.spec.restart_policy = RestartPolicy::Never;
        let observed = cluster(vec![(
            "n1",
            true,
            vec![
                container("a", 0, "n1", Exited { code: 0 }),
                sandbox(Running),
            ],
        )]);
        let gate = ReadinessGate {
            template: &both,
            min_ready_seconds: 0,
        };
        assert_eq!(
            group_replicas(&observed)[0].state(Some(gate), at(T0)),
            ReplicaState::Pending
        );
    }

    /// (case, containers as (state, probe_ready, started secs before now),
    /// template has probe, minReadySeconds, expected)
    #[test]
    fn replica_state_table() {
        type Case = (
            &'static str,
            Vec<(ContainerState, Option<bool>)>,
            bool,
            u32,
            u64,
            ReplicaState,
        );
        let cases: Vec<Case> = vec![
            (
                "running, no probe, min 0",
                vec![(ContainerState::Running, None)],
                false,
                0,
                0,
                ReplicaState::Ready,
            ),
            (
                "running 5s, min 10",
                vec![(ContainerState::Running, None)],
                false,
                10,
                5,
                ReplicaState::Running,
            ),
            (
                "running 10s, min 10",
                vec![(ContainerState::Running, None)],
                false,
                10,
                10,
                ReplicaState::Ready,
            ),
            (
                "probe not yet run",
                vec![(ContainerState::Running, None)],
                true,
                0,
                100,
                ReplicaState::Running,
            ),
            (
                "probe failing",
                vec![(ContainerState::Running, Some(false))],
                true,
                0,
                100,
                ReplicaState::Running,
            ),
            (
                "probe passing",
                vec![(ContainerState::Running, Some(true))],
                true,
                0,
                0,
                ReplicaState::Ready,
            ),
            (
                "created",
                vec![(ContainerState::Created, None)],
                false,
                0,
                0,
                ReplicaState::Pending,
            ),
            (
                "exited, restart Always",
                vec![(ContainerState::Exited { code: 0 }, None)],
                false,
                0,
                0,
                ReplicaState::Pending,
            ),
            (
                "dead",
                vec![(ContainerState::Dead, None)],
                false,
                0,
                0,
                ReplicaState::Failed,
            ),
        ];
        for (case, containers, probe, min_ready, age, expected) in cases {
            let tpl = template(&[("app", probe)]);
            let observed = containers
                .into_iter()
                .map(|(state, probe_ready)| {
                    let mut c = container("app", 0, "n1", state);
                    c.probe_ready = probe_ready;
                    c
                })
                .collect();
            let cl = cluster(vec![("n1", true, observed)]);
            let replicas = group_replicas(&cl);
            let gate = ReadinessGate {
                template: &tpl,
                min_ready_seconds: min_ready,
            };
            assert_eq!(
                replicas[0].state(Some(gate), at(T0 + age)),
                expected,
                "{case}"
            );
        }
    }

    #[test]
    fn a_probed_replica_is_available_after_min_ready_seconds_of_readiness() {
        let tpl = template(&[("app", true)]);
        let gate = ReadinessGate {
            template: &tpl,
            min_ready_seconds: 10,
        };
        let mut c = container("app", 0, "n1", ContainerState::Running);
        c.probe_ready = Some(true);
        // Started at T0, ready from T0 + 20.
        c.ready_since = Some(at(T0 + 20));
        let cl = cluster(vec![("n1", true, vec![c])]);
        let replica = &group_replicas(&cl)[0];
        assert_eq!(
            replica.state(Some(gate), at(T0 + 25)),
            ReplicaState::Running
        );
        assert_eq!(replica.state(Some(gate), at(T0 + 30)), ReplicaState::Ready);
    }

    #[test]
    fn a_startup_probe_gates_readiness_without_a_readiness_probe() {
        let mut tpl = template(&[("app", false)]);
        let startup = template(&[("app", true)]).spec.containers[0]
            .readiness_probe
            .clone();
        tpl.spec.containers[0].startup_probe = startup;
        let gate = ReadinessGate {
            template: &tpl,
            min_ready_seconds: 0,
        };
        let starting = container("app", 0, "n1", ContainerState::Running);
        let mut started = starting.clone();
        started.probe_ready = Some(true);
        for (c, expected) in [
            (starting, ReplicaState::Running),
            (started, ReplicaState::Ready),
        ] {
            let cl = cluster(vec![("n1", true, vec![c])]);
            assert_eq!(
                group_replicas(&cl)[0].state(Some(gate), at(T0 + 100)),
                expected
            );
        }
    }

    #[test]
    fn unreachable_node_gives_unknown() {
        let cl = cluster(vec![(
            "n1",
            false,
            vec![container("app", 0, "n1", ContainerState::Running)],
        )]);
        let tpl = template(&[("app", false)]);
        let gate = ReadinessGate {
            template: &tpl,
            min_ready_seconds: 0,
        };
        assert_eq!(
            group_replicas(&cl)[0].state(Some(gate), at(T0)),
            ReplicaState::Unknown
        );
    }

    fn with_role(role: ContainerRole, mut c: ObservedContainer) -> ObservedContainer {
        c.labels.role = role;
        c.name = c.labels.container_name();
        c
    }

    fn sandbox(state: ContainerState) -> ObservedContainer {
        with_role(
            ContainerRole::Sandbox,
            container(crate::cluster::SANDBOX_CONTAINER, 0, "n1", state),
        )
    }

    #[test]
    fn missing_container_is_pending() {
        let cl = cluster(vec![(
            "n1",
            true,
            vec![
                sandbox(ContainerState::Running),
                container("app", 0, "n1", ContainerState::Running),
            ],
        )]);
        let tpl = template(&[("app", false), ("side", false)]);
        let gate = ReadinessGate {
            template: &tpl,
            min_ready_seconds: 0,
        };
        assert_eq!(
            group_replicas(&cl)[0].state(Some(gate), at(T0)),
            ReplicaState::Pending
        );
    }

    #[test]
    fn restart_policy_decides_what_is_started() {
        let cases = [
            (RestartPolicy::Always, 0, true),
            (RestartPolicy::Always, 1, true),
            (RestartPolicy::OnFailure, 0, false),
            (RestartPolicy::OnFailure, 137, true),
            (RestartPolicy::Never, 1, false),
        ];
        for (policy, code, expected) in cases {
            assert_eq!(restarts(policy, code), expected, "{policy:?} exit {code}");
        }
    }

    /// Issue 16: a pod with a sandbox needs it running: stopped (its
    /// namespace gone with it) or missing, the pod is replaced.
    #[test]
    fn a_pod_whose_sandbox_stopped_or_is_missing_failed() {
        let tpl = template(&[("app", false), ("side", false)]);
        let gate = ReadinessGate {
            template: &tpl,
            min_ready_seconds: 0,
        };
        let running = |name| container(name, 0, "n1", ContainerState::Running);
        for (sandbox_state, expected) in [
            (Some(ContainerState::Running), ReplicaState::Ready),
            (Some(ContainerState::Created), ReplicaState::Pending),
            (
                Some(ContainerState::Exited { code: 0 }),
                ReplicaState::Failed,
            ),
            (Some(ContainerState::Dead), ReplicaState::Failed),
            (None, ReplicaState::Failed),
        ] {
            let mut containers = vec![running("app"), running("side")];
            containers.extend(sandbox_state.map(sandbox));
            let cl = cluster(vec![("n1", true, containers)]);
            assert_eq!(
                group_replicas(&cl)[0].state(Some(gate), at(T0)),
                expected,
                "sandbox {sandbox_state:?}"
            );
        }
    }

    /// Issue 16: the init sequence, decided from what the containers do
    /// now: each regular init container runs to completion before the
    /// next starts, a sidecar once it runs (and passed its startup probe),
    /// the app containers after; a failed one is started again (the leader
    /// holds it for the back-off) unless `restartPolicy: Never`, which
    /// fails the pod.
    #[test]
    fn init_containers_run_in_order_before_the_app_containers() {
        use ContainerState::{Created, Exited, Running};
        let startup_probe = Probe {
            handler: ProbeHandler::TcpSocket {
                port: PortRef::Number(80),
            },
            initial_delay_seconds: 0,
            period_seconds: 1,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold: 3,
        };
        let spec = |restart_policy| PodSpec {
            init_containers: vec![
                Container {
                    name: "migrate".into(),
                    ..Container::default()
                },
                Container {
                    name: "log".into(),
                    sidecar: true,
                    startup_probe: Some(startup_probe.clone()),
                    ..Container::default()
                },
                Container {
                    name: "warm".into(),
                    ..Container::default()
                },
            ],
            containers: vec![Container {
                name: "app".into(),
                ..Container::default()
            }],
            restart_policy,
            ..PodSpec::default()
        };
        // (migrate, log and whether its startup probe passed, warm, app),
        // policy, then: progress, status text, what to start, state.
        type Row = (
            (
                ContainerState,
                (ContainerState, bool),
                ContainerState,
                ContainerState,
            ),
            RestartPolicy,
            InitProgress,
            Option<&'static str>,
            &'static [&'static str],
            ReplicaState,
        );
        let p = |done| InitProgress::Running { done, total: 3 };
        let f = |done| InitProgress::Failed { done, total: 3 };
        let always = RestartPolicy::Always;
        let never = RestartPolicy::Never;
        let ok = Exited { code: 0 };
        let failed = Exited { code: 2 };
        let rows: &[Row] = &[
            // A new pod: its sandbox runs, the first init container starts.
            (
                (Created, (Created, false), Created, Created),
                always,
                p(0),
                Some("Init:0/3"),
                &["migrate"],
                ReplicaState::Pending,
            ),
            (
                (Running, (Created, false), Created, Created),
                always,
                p(0),
                Some("Init:0/3"),
                &[],
                ReplicaState::Pending,
            ),
            // Done: the sidecar starts next.
            (
                (ok, (Created, false), Created, Created),
                always,
                p(1),
                Some("Init:1/3"),
                &["log"],
                ReplicaState::Pending,
            ),
            // The sidecar runs but has not passed its startup probe: wait.
            (
                (ok, (Running, false), Created, Created),
                always,
                p(1),
                Some("Init:1/3"),
                &[],
                ReplicaState::Pending,
            ),
            (
                (ok, (Running, true), Created, Created),
                always,
                p(2),
                Some("Init:2/3"),
                &["warm"],
                ReplicaState::Pending,
            ),
            // A sidecar that stopped meanwhile is started again too.
            (
                (ok, (Exited { code: 1 }, true), Running, Created),
                always,
                p(1),
                Some("Init:1/3"),
                &["log"],
                ReplicaState::Pending,
            ),
            (
                (ok, (Running, true), ok, Created),
                always,
                InitProgress::Done,
                None,
                &["app"],
                ReplicaState::Pending,
            ),
            (
                (ok, (Running, true), ok, Running),
                always,
                InitProgress::Done,
                None,
                &[],
                ReplicaState::Ready,
            ),
            // A failed init container: again (after the back-off)...
            (
                (failed, (Created, false), Created, Created),
                always,
                f(0),
                Some("Init:CrashLoopBackOff"),
                &["migrate"],
                ReplicaState::Pending,
            ),
            (
                (ok, (Running, true), failed, Created),
                RestartPolicy::OnFailure,
                f(2),
                Some("Init:CrashLoopBackOff"),
                &["warm"],
                ReplicaState::Pending,
            ),
            // ... or, under Never, the pod failed.
            (
                (failed, (Created, false), Created, Created),
                never,
                f(0),
                Some("Init:Error"),
                &[],
                ReplicaState::Failed,
            ),
            // Once the app containers ran, the sequence is over for good: a
            // sidecar that stopped is started again, init containers never.
            (
                (ok, (Exited { code: 137 }, true), ok, Running),
                always,
                InitProgress::Done,
                None,
                &["log"],
                ReplicaState::Pending,
            ),
        ];
        for (i, ((migrate, (log, log_ready), warm, app), policy, progress, text, starts, state)) in
            rows.iter().enumerate()
        {
            let mut log = with_role(ContainerRole::Sidecar, container("log", 0, "n1", *log));
            log.probe_ready = log_ready.then_some(true);
            let cl = cluster(vec![(
                "n1",
                true,
                vec![
                    sandbox(Running),
                    with_role(ContainerRole::Init, container("migrate", 0, "n1", *migrate)),
                    log,
                    with_role(ContainerRole::Init, container("warm", 0, "n1", *warm)),
                    container("app", 0, "n1", *app),
                ],
            )]);
            let spec = spec(*policy);
            let template = PodTemplate {
                spec: spec.clone(),
                ..PodTemplate::default()
            };
            let gate = ReadinessGate {
                template: &template,
                min_ready_seconds: 0,
            };
            let replica = &group_replicas(&cl)[0];
            assert_eq!(replica.init_progress(&spec), *progress, "row {i}");
            assert_eq!(
                replica.init_progress(&spec).text(*policy).as_deref(),
                *text,
                "row {i}"
            );
            let started: Vec<&str> = replica
                .containers_to_start(&spec)
                .iter()
                .map(|c| c.labels.container.as_str())
                .collect();
            assert_eq!(started, *starts, "row {i}");
            assert_eq!(replica.state(Some(gate), at(T0)), *state, "row {i}");
        }
    }

    /// A created sandbox is started before anything else.
    #[test]
    fn a_created_sandbox_starts_first() {
        let cl = cluster(vec![(
            "n1",
            true,
            vec![
                sandbox(ContainerState::Created),
                container("app", 0, "n1", ContainerState::Created),
                container("side", 0, "n1", ContainerState::Created),
            ],
        )]);
        let tpl = template(&[("app", false), ("side", false)]);
        let started: Vec<String> = group_replicas(&cl)[0]
            .containers_to_start(&tpl.spec)
            .iter()
            .map(|c| c.labels.container.clone())
            .collect();
        assert_eq!(started, ["_sandbox", "app", "side"]);
    }
}
