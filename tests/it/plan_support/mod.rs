//! Compact builders of typed desired and observed states for the planner's
//! tests, and `apply_to_observed`, which plays a plan against an observed
//! cluster as a perfect executor would.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use flotilla::cluster::{
    claim_volume_name, pod_volume_name, ContainerRole, ContainerState, Contents, ManagedLabels,
    ObservedCluster, ObservedContainer, ObservedNode, ObservedVolume, Reachability, VolumeOwner,
};
use flotilla::manifest::model::*;
use flotilla::manifest::quantity::{Bytes, CpuMillis};
use flotilla::plan::{ClaimState, Operation, Plan};

pub const GIB: u64 = 1024 * 1024 * 1024;
pub const MIB: u64 = 1024 * 1024;
pub const COMMIT: &str = "c0ffee0000000000000000000000000000000000";

/// A fixed clock for every test.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

pub fn node(name: &str, cpu_millis: u64, memory: u64) -> Node {
    Node {
        meta: ObjectMeta {
            name: name.into(),
            ..ObjectMeta::default()
        },
        spec: NodeSpec {
            address: format!("10.0.0.{}", name.len()),
            port: 22,
            user: "root".into(),
            identity_file: None,
            docker_socket: "/var/run/docker.sock".into(),
            transport: Transport::Ssh,
            capacity: Capacity {
                cpu: Some(CpuMillis(cpu_millis)),
                memory: Some(Bytes(memory)),
                pods: None,
                storage: None,
            },
            taints: Vec::new(),
            unschedulable: false,
        },
    }
}

pub fn labelled(mut n: Node, labels: &[(&str, &str)]) -> Node {
    for (k, v) in labels {
        n.meta.labels.insert((*k).into(), (*v).into());
    }
    n
}

pub fn tainted(mut n: Node, key: &str, value: &str, effect: TaintEffect) -> Node {
    n.spec.taints.push(Taint {
        key: key.into(),
        value: value.into(),
        effect,
    });
    n
}

pub fn container(name: &str, image: &str, cpu_millis: u64, memory: u64) -> Container {
    Container {
        name: name.into(),
        image: image.into(),
        resources: Resources {
            requests: ResourceList {
                cpu: Some(CpuMillis(cpu_millis)),
                memory: Some(Bytes(memory)),
            },
            limits: ResourceList::default(),
        },
        ..Container::default()
    }
}

pub fn deployment(name: &str, replicas: u32, cpu_millis: u64, memory: u64) -> Workload {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Workload {
        kind: Kind::Deployment,
        meta: ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        },
        spec: WorkloadSpec {
            pods: PodSet::Replicas(replicas),
            selector: LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            },
            template: PodTemplate {
                consumed: Default::default(),
                labels,
                annotations: BTreeMap::new(),
                spec: PodSpec {
                    containers: vec![container("app", &format!("{name}:1"), cpu_millis, memory)],
                    termination_grace_period_seconds: 30,
                    ..PodSpec::default()
                },
            },
            strategy: Strategy::default(),
            min_ready_seconds: 0,
            progress_deadline_seconds: 600,
            revision_history_limit: 10,
            paused: false,
            stateful: None,
        },
    }
}

/// A DaemonSet whose pod requests `cpu_millis` and `memory`, rolling with
/// Kubernetes' DaemonSet defaults (maxUnavailable 1, maxSurge 0).
pub fn daemon_set(name: &str, cpu_millis: u64, memory: u64) -> Workload {
    let mut d = deployment(name, 0, cpu_millis, memory);
    d.kind = Kind::DaemonSet;
    d.spec.pods = PodSet::OnePerNode;
    d.spec.strategy = Strategy::RollingUpdate {
        max_surge: IntOrPercent::Int(0),
        max_unavailable: IntOrPercent::Int(1),
    };
    d
}

pub fn with_image(mut d: Workload, image: &str) -> Workload {
    d.spec.template.spec.containers[0].image = image.into();
    d
}

pub fn desired(nodes: Vec<Node>, deployments: Vec<Workload>) -> DesiredState {
    let mut state = DesiredState {
        nodes,
        workloads: deployments,
        ..DesiredState::default()
    };
    state.nodes.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    state
        .workloads
        .sort_by(|a, b| a.key_parts().cmp(&b.key_parts()));
    state
}

/// Every declared node reachable, nothing running.
pub fn empty_cluster(state: &DesiredState) -> ObservedCluster {
    flotilla::plan::offline_cluster(state)
}

pub fn set_unreachable(cluster: &mut ObservedCluster, node: &str, seconds_ago: u64) {
    let n = cluster.nodes.get_mut(node).expect("node observed");
    n.reachability = Reachability::Unreachable {
        since: now() - Duration::from_secs(seconds_ago),
        reason: "connection timed out".into(),
        contents: Contents::LastSeen,
    };
}

/// Unreachable `seconds_ago`, and never reached by the observer: what runs
/// there is unknown (a one-shot `flotilla plan`, a leader since its start).
pub fn set_never_seen(cluster: &mut ObservedCluster, node: &str, seconds_ago: u64) {
    let n = cluster.nodes.get_mut(node).expect("node observed");
    n.containers.clear();
    n.reachability = Reachability::Unreachable {
        since: now() - Duration::from_secs(seconds_ago),
        reason: "connection timed out".into(),
        contents: Contents::Unknown,
    };
}

pub fn set_reachable(cluster: &mut ObservedCluster, node: &str) {
    cluster
        .nodes
        .get_mut(node)
        .expect("node observed")
        .reachability = Reachability::Reachable;
}

/// Plays a plan as a perfect executor: creates become running, ready
/// containers (started an hour before `now`), starts run, removes vanish.
/// Nothing happens on a node that is not reachable.
pub fn apply_to_observed(cluster: &mut ObservedCluster, plan: &Plan, now: SystemTime) {
    for action in &plan.actions {
        let Some(node) = cluster.nodes.get_mut(&action.node) else {
            continue;
        };
        if !node.reachability.is_reachable() {
            continue;
        }
        match &action.operation {
            Operation::Create {
                containers,
                template,
            } => {
                // The node makes the pod's volumes before its containers.
                if let Some(first) = containers.first() {
                    for volume in &template.spec.volumes {
                        let (name, owner) = match &volume.source {
                            VolumeSource::EmptyDir(_) => {
                                let pod = ManagedLabels {
                                    container: String::new(),
                                    role: ContainerRole::App,
                                    ..first.clone()
                                };
                                (
                                    pod_volume_name(&pod, &volume.name),
                                    VolumeOwner::Pod {
                                        pod,
                                        volume: volume.name.clone(),
                                    },
                                )
                            }
                            _ => continue,
                        };
                        if !node.volumes.iter().any(|v| v.name == name) {
                            node.volumes.push(ObservedVolume {
                                name,
                                owner,
                                created_at: Some(now),
                            });
                        }
                    }
                }
                for labels in containers {
                    let name = labels.container_name();
                    if node.containers.iter().any(|c| c.name == name) {
                        continue;
                    }
                    // A sandbox is declared by no container of the
                    // template; a regular init container has run to
                    // completion.
                    let sandbox = Container {
                        image: "flotilla-sandbox".into(),
                        ..Container::default()
                    };
                    let declared = template
                        .spec
                        .all_containers()
                        .find(|c| c.name == labels.container)
                        .or((labels.role == ContainerRole::Sandbox).then_some(&sandbox))
                        .expect("labels name a declared container");
                    let state = match labels.role {
                        ContainerRole::Init => ContainerState::Exited { code: 0 },
                        _ => ContainerState::Running,
                    };
                    node.containers.push(ObservedContainer {
                        id: format!("{}/{name}", action.node),
                        name,
                        labels: labels.clone(),
                        state,
                        health: None,
                        restart_count: 0,
                        started_at: Some(now - Duration::from_secs(3600)),
                        finished_at: None,
                        image: declared.image.clone(),
                        ports: Vec::new(),
                        probe_ready: declared.readiness_probe.as_ref().map(|_| true),
                        ready_since: declared
                            .readiness_probe
                            .as_ref()
                            .map(|_| now - Duration::from_secs(3600)),
                        address: None,
                        hooks: Default::default(),
                    });
                }
            }
            Operation::Start { containers } => {
                for c in containers {
                    if let Some(o) = node.containers.iter_mut().find(|o| o.id == c.id) {
                        o.state = ContainerState::Running;
                        o.started_at = Some(now - Duration::from_secs(3600));
                    }
                }
            }
            Operation::Remove { containers } => {
                node.containers
                    .retain(|o| !containers.iter().any(|c| c.id == o.id));
            }
        }
    }
    // A claim's volume is made on the node its first pod goes to.
    for claim in plan
        .claims
        .iter()
        .filter(|c| c.state == ClaimState::Binding)
    {
        let Some(node) = cluster.nodes.get_mut(&claim.nodes[0]) else {
            continue;
        };
        let name = claim_volume_name(&claim.namespace, &claim.name);
        if node.reachability.is_reachable() && !node.volumes.iter().any(|v| v.name == name) {
            node.volumes.push(ObservedVolume {
                name,
                owner: VolumeOwner::Claim {
                    namespace: claim.namespace.clone(),
                    claim: claim.name.clone(),
                    storage: claim.storage,
                    ordinal: claim.ordinal.clone(),
                },
                created_at: Some(now),
            });
        }
    }
    for removal in &plan.volume_removals {
        let Some(node) = cluster.nodes.get_mut(&removal.node) else {
            continue;
        };
        if node.reachability.is_reachable() {
            node.volumes.retain(|v| v.name != removal.volume);
        }
    }
}

/// Plans and applies until the plan has no actions; returns the plans.
pub fn converge(
    state: &DesiredState,
    cluster: &mut ObservedCluster,
    max_rounds: usize,
) -> Vec<Plan> {
    let mut plans = Vec::new();
    for _ in 0..max_rounds {
        let plan = flotilla::plan::plan(state, cluster, COMMIT, now());
        let done = plan.actions.is_empty() && plan.volume_removals.is_empty();
        apply_to_observed(cluster, &plan, now());
        plans.push(plan);
        if done {
            return plans;
        }
    }
    panic!(
        "no fixpoint after {max_rounds} rounds:\n{}",
        plans.last().expect("planned")
    );
}

/// Replicas per node name, from the observation.
pub fn replicas_per_node(cluster: &ObservedCluster) -> BTreeMap<String, usize> {
    cluster
        .nodes
        .values()
        .map(|n| {
            (
                n.name.clone(),
                flotilla::cluster::group_replicas(&single(n)).len(),
            )
        })
        .collect()
}

fn single(n: &ObservedNode) -> ObservedCluster {
    let mut c = ObservedCluster::default();
    c.nodes.insert(n.name.clone(), n.clone());
    c
}
