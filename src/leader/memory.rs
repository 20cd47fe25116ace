//! An in-memory cluster behind the node seam, for driving the leader's own
//! logic in unit tests (concurrency bounds, image fallbacks, idempotence).
//! Everything about real SSH and Docker is tested against the testbed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::cluster::{ContainerState, NodeFacts, ObservedContainer};
use crate::manifest::model::Node;
use crate::manifest::quantity::{Bytes, CpuMillis};

use crate::node::{
    ContainerMount, NodeObservation, NodeOpError, NodeOps, PodVolume, ProbeTarget, RegistryAuth,
    ReplicaContainer,
};

#[derive(Debug, Default)]
pub struct MemoryNodes {
    pub state: Mutex<MemoryState>,
}

#[derive(Debug, Default)]
pub struct MemoryState {
    /// node -> container name -> (spec, running)
    pub containers: BTreeMap<String, BTreeMap<String, (ReplicaContainer, bool)>>,
    /// node -> volume name -> the volume as created (a claim's data
    /// stays until `remove_volume`).
    pub volumes: BTreeMap<String, BTreeMap<String, PodVolume>>,
    /// node -> images present
    pub images: BTreeMap<String, BTreeSet<String>>,
    pub registry_reachable: bool,
    pub unreachable: BTreeSet<String>,
    /// Nodes whose observation never answers (a network gone silent).
    pub silent: BTreeSet<String>,
    /// What `observe_timeout` reports; the trait's default when `None`.
    pub observe_timeout: Option<Duration>,
    /// When stopped containers finished, as tests set it.
    pub finished_at: BTreeMap<String, std::time::SystemTime>,
    /// Every call, as `op node target`.
    pub log: Vec<String>,
    /// How long each stop takes, as tests set it.
    pub stop_delay: Option<Duration>,
    in_flight: HashMap<String, usize>,
    pub max_in_flight: HashMap<String, usize>,
    /// node -> the table its proxy serves.
    pub proxies: BTreeMap<String, crate::proxy::table::Table>,
    /// Nodes where a proxy container runs.
    pub proxy_containers: BTreeSet<String>,
    /// node -> the open connections its proxy reports, as tests set them.
    pub proxy_connections: BTreeMap<String, Vec<crate::proxy::table::TargetConnections>>,
}

impl MemoryNodes {
    /// Every container exits (a crash), finishing at `when`.
    pub fn crash_all(&self, when: std::time::SystemTime) {
        let mut state = self.state.lock().unwrap();
        let names: Vec<String> = state
            .containers
            .values()
            .flat_map(|c| c.keys().cloned())
            .collect();
        for containers in state.containers.values_mut() {
            for (_, running) in containers.values_mut() {
                *running = false;
            }
        }
        for name in names {
            state.finished_at.insert(name, when);
        }
    }

    fn enter(&self, node: &str, call: String) -> Result<(), NodeOpError> {
        let mut state = self.state.lock().unwrap();
        state.log.push(call);
        if state.unreachable.contains(node) {
            return Err(NodeOpError {
                node: node.into(),
                message: "unreachable".into(),
                unreachable: true,
            });
        }
        let count = state.in_flight.entry(node.into()).or_default();
        *count += 1;
        let count = *count;
        let max = state.max_in_flight.entry(node.into()).or_default();
        *max = (*max).max(count);
        Ok(())
    }

    async fn leave(&self, node: &str) {
        // Hold the "operation" open across a yield so concurrency is visible.
        tokio::time::sleep(Duration::from_millis(2)).await;
        *self
            .state
            .lock()
            .unwrap()
            .in_flight
            .entry(node.into())
            .or_default() -= 1;
    }

    async fn call<T>(
        &self,
        node: &str,
        call: String,
        body: impl FnOnce(&mut MemoryState) -> Result<T, String>,
    ) -> Result<T, NodeOpError> {
        self.enter(node, call)?;
        self.leave(node).await;
        let mut state = self.state.lock().unwrap();
        body(&mut state).map_err(|message| NodeOpError {
            node: node.into(),
            message,
            unreachable: false,
        })
    }
}

/// A memory container's address: stable, distinct per node and name.
fn memory_address(node: &str, container: &str) -> std::net::Ipv4Addr {
    let mut hasher = crate::cluster::FnvHasher::default();
    std::hash::Hasher::write(&mut hasher, node.as_bytes());
    std::hash::Hasher::write(&mut hasher, container.as_bytes());
    let bits = std::hash::Hasher::finish(&hasher) as u32;
    std::net::Ipv4Addr::from(0x0a00_0000 | (bits & 0x00ff_ffff))
}

impl NodeOps for MemoryNodes {
    fn observe_timeout(&self) -> Duration {
        self.state
            .lock()
            .unwrap()
            .observe_timeout
            .unwrap_or(Duration::from_secs(30))
    }

    async fn observe(&self, node: &Node) -> Result<NodeObservation, NodeOpError> {
        let name = node.meta.name.clone();
        if self.state.lock().unwrap().silent.contains(&name) {
            std::future::pending::<()>().await;
        }
        self.call(&name, format!("observe {name}"), |state| {
            let containers = state
                .containers
                .get(&name)
                .into_iter()
                .flatten()
                .map(|(container_name, (spec, running))| ObservedContainer {
                    id: container_name.clone(),
                    name: container_name.clone(),
                    labels: crate::cluster::ManagedLabels::from_docker_labels(&spec.labels)
                        .expect("the memory cluster holds managed containers only"),
                    state: if *running {
                        ContainerState::Running
                    } else {
                        ContainerState::Exited { code: 0 }
                    },
                    health: None,
                    restart_count: 0,
                    started_at: None,
                    finished_at: state.finished_at.get(container_name).copied(),
                    image: spec.image.clone(),
                    ports: spec
                        .port_bindings
                        .iter()
                        .map(|binding| crate::cluster::PublishedPort {
                            container_port: binding.container_port,
                            protocol: binding.protocol,
                            host_ip: String::new(),
                            host_port: binding.host_port,
                        })
                        .collect(),
                    probe_ready: None,
                    // The pod's first container has the pod's address.
                    address: (*running && spec.network_mode.is_none())
                        .then(|| memory_address(&name, container_name)),
                    ready_since: None,
                    hooks: Default::default(),
                })
                .collect();
            Ok(NodeObservation {
                facts: NodeFacts {
                    cpu: CpuMillis(2000),
                    memory: Bytes(4 << 30),
                    docker_version: "memory".into(),
                },
                containers,
                volumes: state
                    .volumes
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .map(|(volume_name, volume)| crate::cluster::ObservedVolume {
                        name: volume_name.clone(),
                        owner: volume.owner.clone(),
                        created_at: None,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn create(&self, node: &str, container: &ReplicaContainer) -> Result<(), NodeOpError> {
        let container = container.clone();
        self.call(node, format!("create {node} {}", container.name), |state| {
            if !state
                .images
                .get(node)
                .is_some_and(|i| i.contains(&container.image))
            {
                return Err(format!("no such image: {}", container.image));
            }
            // Made when missing, an existing one kept as it is (as Docker).
            let volumes = state.volumes.entry(node.into()).or_default();
            for volume in &container.volumes {
                volumes
                    .entry(volume.name.clone())
                    .or_insert_with(|| volume.clone());
            }
            state
                .containers
                .entry(node.into())
                .or_default()
                .entry(container.name.clone())
                .or_insert((container, false));
            Ok(())
        })
        .await
    }

    async fn start(&self, node: &str, container: &str) -> Result<(), NodeOpError> {
        self.call(node, format!("start {node} {container}"), |state| {
            let entry = state
                .containers
                .get_mut(node)
                .and_then(|c| c.get_mut(container))
                .ok_or_else(|| format!("no such container: {container}"))?;
            entry.1 = true;
            Ok(())
        })
        .await
    }

    async fn stop(
        &self,
        node: &str,
        container: &str,
        _grace: Option<Duration>,
    ) -> Result<(), NodeOpError> {
        // A container that takes its grace period to stop, as tests set it.
        let delay = self.state.lock().unwrap().stop_delay;
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.call(node, format!("stop {node} {container}"), |state| {
            if let Some(entry) = state
                .containers
                .get_mut(node)
                .and_then(|c| c.get_mut(container))
            {
                entry.1 = false;
            }
            Ok(())
        })
        .await
    }

    async fn restart(
        &self,
        node: &str,
        container: &str,
        _grace: Duration,
    ) -> Result<(), NodeOpError> {
        self.call(node, format!("restart {node} {container}"), |state| {
            let entry = state
                .containers
                .get_mut(node)
                .and_then(|c| c.get_mut(container))
                .ok_or_else(|| format!("no such container: {container}"))?;
            entry.1 = true;
            Ok(())
        })
        .await
    }

    async fn remove(&self, node: &str, container: &str) -> Result<(), NodeOpError> {
        self.call(node, format!("remove {node} {container}"), |state| {
            if let Some(containers) = state.containers.get_mut(node) {
                containers.remove(container);
            }
            Ok(())
        })
        .await
    }

    async fn remove_volume(&self, node: &str, volume: &str) -> Result<(), NodeOpError> {
        self.call(node, format!("remove-volume {node} {volume}"), |state| {
            let users: Vec<&str> = state
                .containers
                .get(node)
                .into_iter()
                .flatten()
                .filter(|(_, (spec, _))| {
                    spec.mounts.iter().any(|mount| {
                        matches!(mount, ContainerMount::Volume { volume: used, .. } if used == volume)
                    })
                })
                .map(|(name, _)| name.as_str())
                .collect();
            if !users.is_empty() {
                return Err(format!(
                    "volume {volume} is in use by {}; nothing was removed",
                    users.join(", ")
                ));
            }
            if let Some(volumes) = state.volumes.get_mut(node) {
                volumes.remove(volume);
            }
            Ok(())
        })
        .await
    }

    async fn has_image(&self, node: &str, image: &str) -> Result<bool, NodeOpError> {
        self.call(node, format!("has-image {node} {image}"), |state| {
            Ok(state.images.get(node).is_some_and(|i| i.contains(image)))
        })
        .await
    }

    async fn pull_image(
        &self,
        node: &str,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), NodeOpError> {
        // The user a pull authenticates as, never the password.
        let call = match auth {
            Some(auth) => format!("pull {node} {image} as {}", auth.username),
            None => format!("pull {node} {image}"),
        };
        self.call(node, call, |state| {
            if !state.registry_reachable {
                return Err("registry unreachable".into());
            }
            state
                .images
                .entry(node.into())
                .or_default()
                .insert(image.into());
            Ok(())
        })
        .await
    }

    async fn ship_image(&self, node: &str, image: &str) -> Result<(), NodeOpError> {
        self.call(node, format!("ship {node} {image}"), |state| {
            state
                .images
                .entry(node.into())
                .or_default()
                .insert(image.into());
            Ok(())
        })
        .await
    }

    async fn probe_tcp(
        &self,
        node: &str,
        target: &ProbeTarget,
        _timeout: Duration,
    ) -> Result<(), NodeOpError> {
        let container = target.container.clone();
        self.call(
            node,
            format!("probe-tcp {node} {container}"),
            |state| match state.containers.get(node).and_then(|c| c.get(&container)) {
                Some((_, true)) => Ok(()),
                _ => Err("connection refused".into()),
            },
        )
        .await
    }

    async fn probe_http(
        &self,
        node: &str,
        target: &ProbeTarget,
        _path: &str,
        _headers: &[(String, String)],
        _timeout: Duration,
    ) -> Result<u16, NodeOpError> {
        let container = target.container.clone();
        self.call(
            node,
            format!("probe-http {node} {container}"),
            |state| match state.containers.get(node).and_then(|c| c.get(&container)) {
                Some((_, true)) => Ok(200),
                _ => Err("connection refused".into()),
            },
        )
        .await
    }

    async fn probe_exec(
        &self,
        node: &str,
        container: &str,
        _command: &[String],
        _timeout: Duration,
    ) -> Result<i64, NodeOpError> {
        self.call(
            node,
            format!("probe-exec {node} {container}"),
            |state| match state.containers.get(node).and_then(|c| c.get(container)) {
                Some((_, true)) => Ok(0),
                _ => Err("container is not running".into()),
            },
        )
        .await
    }

    async fn remove_image(&self, node: &str, image: &str) -> Result<bool, NodeOpError> {
        self.call(node, format!("remove-image {node} {image}"), |_| Ok(false))
            .await
    }

    async fn load_proxy_image(
        &self,
        node: &str,
        image: &crate::node::ProxyImage,
    ) -> Result<(), NodeOpError> {
        self.call(node, format!("load-image {node} {}", image.tag), |state| {
            state
                .images
                .entry(node.to_string())
                .or_default()
                .insert(image.tag.clone());
            Ok(())
        })
        .await
    }

    async fn ensure_proxy(
        &self,
        node: &str,
        image: &crate::node::ProxyImage,
    ) -> Result<(), NodeOpError> {
        self.call(
            node,
            format!("ensure-proxy {node} {}", image.tag),
            |state| {
                state.proxy_containers.insert(node.to_string());
                Ok(())
            },
        )
        .await
    }

    async fn proxy_request(
        &self,
        node: &str,
        request: &crate::proxy::table::Request,
    ) -> Result<crate::proxy::table::Response, NodeOpError> {
        use crate::proxy::table::{ProxyStatus, Request, Response};
        let word = match request {
            Request::Apply(_) => "apply",
            Request::Status => "status",
        };
        self.call(node, format!("proxy-{word} {node}"), |state| {
            if !state.proxy_containers.contains(node) {
                return Err("no such container: flotilla-proxy".into());
            }
            Ok(match request {
                Request::Apply(table) => {
                    let served = state
                        .proxies
                        .entry(node.to_string())
                        .or_insert_with(|| table.clone());
                    if table.generation >= served.generation {
                        *served = table.clone();
                    }
                    Response::Applied {
                        generation: served.generation,
                    }
                }
                Request::Status => Response::Status(ProxyStatus {
                    generation: state.proxies.get(node).map_or(0, |t| t.generation),
                    connections: state
                        .proxy_connections
                        .get(node)
                        .cloned()
                        .unwrap_or_default(),
                    services: Vec::new(),
                }),
            })
        })
        .await
    }

    async fn logs(&self, node: &str, container: &str, _lines: u32) -> Result<String, NodeOpError> {
        self.call(
            node,
            format!("logs {node} {container}"),
            |state| match state.containers.get(node).and_then(|c| c.get(container)) {
                Some(_) => Ok(format!("(logs of {container})")),
                None => Err("no such container".into()),
            },
        )
        .await
    }
}

// ------------------------------------------------------ loop test support

use super::apply::{Operation, Step};
use super::run::Planner;
use super::spec::replica_containers;
use crate::cluster::{ManagedLabels, ObservedCluster};
use crate::manifest::model::{
    Container, DesiredState, Kind, NodeSpec, ObjectMeta, PodSet, PodSpec, PodTemplate,
    SourceLocation, Transport, Workload, WorkloadSpec,
};
use crate::manifest::{Diagnostic, SourceFile};
use std::time::SystemTime;

/// Places missing slots round-robin on reachable nodes, starts exited
/// containers, removes what is not desired: just enough planner to drive
/// the loop.
pub struct RoundRobin;

impl Planner for RoundRobin {
    fn steps(
        &self,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        _runs: &crate::plan::Runs,
        _now: SystemTime,
    ) -> Vec<Step> {
        let reachable: Vec<&String> = observed
            .nodes
            .values()
            .filter(|n| n.reachability.is_reachable())
            .map(|n| &n.name)
            .collect();
        let containers: Vec<&ObservedContainer> = observed
            .nodes
            .values()
            .flat_map(|n| &n.containers)
            .collect();
        let mut steps = Vec::new();
        for deployment in &desired.workloads {
            if deployment.spec.paused {
                continue;
            }
            let replicas = deployment.replicas().unwrap_or(0);
            let hash = crate::manifest::template_hash(&deployment.spec.template);
            for slot in 0..replicas {
                match containers.iter().find(|c| {
                    c.labels.name == deployment.meta.name
                        && c.labels.slot == slot
                        && c.labels.template_hash == hash
                }) {
                    Some(c) if c.state == ContainerState::Running => {}
                    Some(c) => steps.push(Step {
                        node: c.labels.node.clone(),
                        operation: Operation::Start {
                            containers: vec![c.name.clone()],
                            post_start: Default::default(),
                        },
                        reason: "exited".into(),
                    }),
                    None => {
                        let node = reachable[slot as usize % reachable.len()].clone();
                        let labels = ManagedLabels {
                            namespace: deployment.meta.namespace.clone(),
                            kind: deployment.kind,
                            name: deployment.meta.name.clone(),
                            slot,
                            template_hash: hash.clone(),
                            commit: commit.to_string(),
                            node: node.clone(),
                            container: String::new(),
                            role: Default::default(),
                        };
                        steps.push(Step {
                            node,
                            operation: Operation::CreateReplica {
                                containers: replica_containers(
                                    &deployment.spec.template,
                                    &labels,
                                    &Default::default(),
                                    &Default::default(),
                                ),
                                start: true,
                            },
                            reason: "missing".into(),
                        });
                    }
                }
            }
        }
        // An old revision's container goes once the new revision's replica
        // of its slot runs (a surge of one per slot); a paused Deployment's
        // stay.
        let runs = |name: &str, slot: u32, hash: &str| {
            containers.iter().any(|c| {
                c.labels.name == name
                    && c.labels.slot == slot
                    && c.labels.template_hash == hash
                    && c.state == ContainerState::Running
            })
        };
        for c in &containers {
            let key = crate::manifest::model::ObjectKey {
                kind: c.labels.kind,
                namespace: c.labels.namespace.clone(),
                name: c.labels.name.clone(),
            };
            let wanted = desired.workload(&key).is_some_and(|d| {
                let hash = crate::manifest::template_hash(&d.spec.template);
                c.labels.slot < d.replicas().unwrap_or(0)
                    && (d.spec.paused
                        || c.labels.template_hash == hash
                        || !runs(&c.labels.name, c.labels.slot, &hash))
            });
            if !wanted {
                steps.push(Step {
                    node: c.labels.node.clone(),
                    operation: Operation::Remove {
                        containers: vec![c.name.clone()],
                        grace: Some(Duration::ZERO),
                        pre_stop: Default::default(),
                    },
                    reason: "not desired".into(),
                });
            }
        }
        steps
    }
}

/// A bare repository for the loop's tests, whose operator lets the leader
/// ship any image (the memory registry is often unreachable on purpose).
pub fn bare_repo(path: &std::path::Path) -> git2::Repository {
    let repo = git2::Repository::init_bare(path).expect("init a bare repository");
    repo.config()
        .and_then(|mut config| config.set_str(crate::repo::SHIP_IMAGES, "*"))
        .expect("set flotilla.shipImages");
    repo
}

/// `replicas: N` in web.yaml (or `invalid`), and optionally on further
/// lines `image: IMAGE` (default `img:1`), `auto-rollback: false` (the
/// opt-out annotation), `min-ready: N` and `deadline: N`
/// (`minReadySeconds`, `progressDeadlineSeconds`;
/// the memory cluster's containers have no start time, so with `min-ready`
/// above 0 none becomes available): the loop's view of a commit.
pub fn load(files: &[SourceFile]) -> (DesiredState, Vec<Diagnostic>) {
    let text = files
        .iter()
        .find(|f| f.path == "web.yaml")
        .map_or("", |f| f.text.as_str());
    if text.contains("invalid") {
        return (
            DesiredState::default(),
            vec![Diagnostic::error("broken", SourceLocation::default())],
        );
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix(": "))
            .map(str::trim)
    };
    let replicas = field("replicas").and_then(|r| r.parse().ok()).unwrap_or(0);
    let image = field("image").unwrap_or("img:1");
    let number =
        |name: &str, default: u32| field(name).and_then(|n| n.parse().ok()).unwrap_or(default);
    let annotations = field("auto-rollback")
        .map(|value| {
            [(
                super::run::AUTO_ROLLBACK_ANNOTATION.to_string(),
                value.to_string(),
            )]
            .into()
        })
        .unwrap_or_default();
    let node = |name: &str| Node {
        meta: ObjectMeta {
            name: name.into(),
            ..ObjectMeta::default()
        },
        spec: NodeSpec {
            // Distinct, as real nodes' are: each has its own node lock.
            address: name.into(),
            port: 22,
            user: "root".into(),
            identity_file: None,
            docker_socket: String::new(),
            transport: Transport::Ssh,
            capacity: Default::default(),
            taints: Vec::new(),
            unschedulable: false,
        },
    };
    let deployments = if replicas == 0 {
        Vec::new()
    } else {
        vec![Workload {
            kind: Kind::parse("Deployment").expect("a kind"),
            meta: ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                annotations,
                ..ObjectMeta::default()
            },
            spec: WorkloadSpec {
                pods: PodSet::Replicas(replicas),
                selector: Default::default(),
                template: PodTemplate {
                    spec: PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: image.into(),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    },
                    ..PodTemplate::default()
                },
                strategy: Default::default(),
                min_ready_seconds: number("min-ready", 0),
                progress_deadline_seconds: number("deadline", 600),
                revision_history_limit: 10,
                paused: false,
                stateful: None,
            },
        }]
    };
    (
        DesiredState {
            nodes: vec![node("n1"), node("n2"), node("n3")],
            workloads: deployments,
            ..DesiredState::default()
        },
        Vec::new(),
    )
}

/// Commits `web.yaml` with `text` on `main`.
pub fn commit(repo: &git2::Repository, text: &str) -> String {
    let blob = repo.blob(text.as_bytes()).unwrap();
    let mut tree = repo.treebuilder(None).unwrap();
    tree.insert("web.yaml", blob, 0o100644).unwrap();
    let tree = repo.find_tree(tree.write().unwrap()).unwrap();
    let signature = git2::Signature::now("t", "t@example.com").unwrap();
    let parent = repo
        .refname_to_id("refs/heads/main")
        .ok()
        .map(|id| repo.find_commit(id).unwrap());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(
        Some("refs/heads/main"),
        &signature,
        &signature,
        text,
        &tree,
        &parents,
    )
    .unwrap()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::VolumeOwner;
    use crate::node::VolumeMedium;

    /// The memory nodes keep volumes as Docker does: made once by a create,
    /// listed by observe, kept when the container goes, removed only when
    /// no container mounts them.
    #[tokio::test]
    async fn volumes_are_made_by_create_listed_and_removed_when_unused() {
        let nodes = MemoryNodes::default();
        nodes
            .state
            .lock()
            .unwrap()
            .images
            .insert("n1".into(), BTreeSet::from(["img:1".to_string()]));
        let owner = VolumeOwner::Claim {
            namespace: "default".into(),
            claim: "data".into(),
            storage: 1 << 30,
            ordinal: None,
        };
        let labels = crate::cluster::ManagedLabels {
            namespace: "default".into(),
            kind: crate::manifest::model::Kind::Deployment,
            name: "db".into(),
            slot: 0,
            template_hash: "0123456789".into(),
            commit: "c0ffee".into(),
            node: "n1".into(),
            container: "db".into(),
            role: Default::default(),
        };
        let container = ReplicaContainer {
            name: labels.container_name(),
            image: "img:1".into(),
            labels: labels.to_docker_labels(),
            volumes: vec![PodVolume {
                name: "flotilla.pvc.default.data".into(),
                owner: owner.clone(),
                medium: VolumeMedium::Disk,
            }],
            mounts: vec![ContainerMount::Volume {
                volume: "flotilla.pvc.default.data".into(),
                target: "/data".into(),
                sub_path: None,
                read_only: false,
            }],
            ..ReplicaContainer::default()
        };
        let node = crate::leader::lock::tests::node("n1", "192.0.2.1", 22);
        nodes.create("n1", &container).await.expect("created");
        let observed = nodes.observe(&node).await.expect("observed");
        assert_eq!(
            observed.volumes,
            [crate::cluster::ObservedVolume {
                name: "flotilla.pvc.default.data".into(),
                owner,
                created_at: None,
            }]
        );
        let error = nodes
            .remove_volume("n1", "flotilla.pvc.default.data")
            .await
            .expect_err("in use");
        assert_eq!(
            error.message,
            format!(
                "volume flotilla.pvc.default.data is in use by {}; nothing was removed",
                container.name
            )
        );
        nodes.remove("n1", &container.name).await.expect("removed");
        assert_eq!(
            nodes.observe(&node).await.expect("observed").volumes.len(),
            1,
            "kept when its container goes"
        );
        nodes
            .remove_volume("n1", "flotilla.pvc.default.data")
            .await
            .expect("unused: removed");
        nodes
            .remove_volume("n1", "flotilla.pvc.default.data")
            .await
            .expect("missing: fine");
        assert!(nodes
            .observe(&node)
            .await
            .expect("observed")
            .volumes
            .is_empty());
    }
}
