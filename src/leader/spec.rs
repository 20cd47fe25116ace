//! From a planned replica (a pod template and the labels of one replica) to
//! the Docker containers that run it on a node.
//!
//! Kubernetes' meaning, Docker's words: `command` is the entrypoint and
//! `args` the cmd (an entrypoint given without args drops the image's cmd,
//! as in Kubernetes); limits become NanoCPUs and Memory; `restartPolicy`
//! becomes Docker's restart policy, so the node restarts a crashed process
//! itself; the pod's containers share the first container's network
//! namespace, which therefore carries every host-port binding. Pure.

use std::collections::HashMap;

use crate::cluster::ManagedLabels;
use crate::manifest::model::{Container, PodTemplate, Protocol, PullPolicy, RestartPolicy};

/// One Docker container to create, in the node-independent form the leader
/// computes; the `node` module turns it into Docker's create request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaContainer {
    /// Deterministic: [`ManagedLabels::container_name`].
    pub name: String,
    pub image: String,
    pub pull_policy: PullPolicy,
    /// Docker's entrypoint; `None` keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    /// Docker's cmd; `None` keeps the image's (unless an entrypoint is set).
    pub cmd: Option<Vec<String>>,
    /// `NAME=value`.
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub working_dir: Option<String>,
    /// Set on the pod's first container only (the others share its UTS
    /// namespace through the network one).
    pub hostname: Option<String>,
    /// Host ports the container publishes (the first container: the pod's).
    pub port_bindings: Vec<PortBinding>,
    /// Ports the container exposes, with their protocol.
    pub exposed_ports: Vec<(u16, Protocol)>,
    /// `limits.cpu` in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// `limits.memory` in bytes.
    pub memory_bytes: Option<i64>,
    pub restart_policy: DockerRestartPolicy,
    /// `container:<name>` of the pod's first container, for the others.
    pub network_mode: Option<String>,
    /// terminationGracePeriodSeconds, kept by Docker as the container's
    /// stop timeout so a stop honours it even after the object is gone.
    pub stop_timeout_seconds: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// Docker's restart policies that restartPolicy maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DockerRestartPolicy {
    Always,
    OnFailure,
    No,
}

impl DockerRestartPolicy {
    pub fn as_docker(self) -> &'static str {
        match self {
            DockerRestartPolicy::Always => "always",
            DockerRestartPolicy::OnFailure => "on-failure",
            DockerRestartPolicy::No => "no",
        }
    }
}

/// The containers of one replica, in creation (and start) order. `labels`
/// describes the replica; its `container` field is replaced per container.
pub fn replica_containers(template: &PodTemplate, labels: &ManagedLabels) -> Vec<ReplicaContainer> {
    let spec = &template.spec;
    let restart_policy = match spec.restart_policy {
        RestartPolicy::Always => DockerRestartPolicy::Always,
        RestartPolicy::OnFailure => DockerRestartPolicy::OnFailure,
        RestartPolicy::Never => DockerRestartPolicy::No,
    };
    let pod_bindings: Vec<PortBinding> = spec
        .containers
        .iter()
        .flat_map(|c| &c.ports)
        .filter_map(|p| {
            p.host_port.map(|host_port| PortBinding {
                container_port: p.container_port,
                host_port,
                protocol: p.protocol,
            })
        })
        .collect();
    let mut first_name = None;
    spec.containers
        .iter()
        .enumerate()
        .map(|(index, container)| {
            let container_labels = ManagedLabels {
                container: container.name.clone(),
                ..labels.clone()
            };
            let name = container_labels.container_name();
            let is_first = index == 0;
            let network_mode = first_name
                .as_ref()
                .map(|first| format!("container:{first}"));
            if is_first {
                first_name = Some(name.clone());
            }
            ReplicaContainer {
                image: container.image.clone(),
                pull_policy: container.image_pull_policy,
                entrypoint: non_empty(&container.command),
                cmd: non_empty(&container.args),
                env: container
                    .env
                    .iter()
                    .map(|e| format!("{}={}", e.name, e.value))
                    .collect(),
                labels: container_labels.to_docker_labels(),
                working_dir: container.working_dir.clone(),
                hostname: is_first.then(|| format!("{}-{}", labels.name, labels.slot)),
                port_bindings: if is_first {
                    pod_bindings.clone()
                } else {
                    Vec::new()
                },
                exposed_ports: exposed_ports(container, is_first.then_some(&pod_bindings)),
                nano_cpus: container
                    .resources
                    .limits
                    .cpu
                    .map(|c| i64::try_from(c.0.saturating_mul(1_000_000)).unwrap_or(i64::MAX)),
                memory_bytes: container
                    .resources
                    .limits
                    .memory
                    .map(|m| i64::try_from(m.0).unwrap_or(i64::MAX)),
                restart_policy,
                network_mode,
                stop_timeout_seconds: Some(spec.termination_grace_period_seconds),
                name,
            }
        })
        .collect()
}

fn non_empty(words: &[String]) -> Option<Vec<String>> {
    (!words.is_empty()).then(|| words.to_vec())
}

/// The container's own ports, plus (for the first container) every port the
/// pod publishes, since Docker publishes only exposed ports.
fn exposed_ports(
    container: &Container,
    pod_bindings: Option<&Vec<PortBinding>>,
) -> Vec<(u16, Protocol)> {
    let mut ports: Vec<(u16, Protocol)> = container
        .ports
        .iter()
        .map(|p| (p.container_port, p.protocol))
        .chain(
            pod_bindings
                .into_iter()
                .flatten()
                .map(|b| (b.container_port, b.protocol)),
        )
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{ContainerPort, EnvVar, Kind, PodSpec, ResourceList, Resources};
    use crate::manifest::quantity::{Bytes, CpuMillis};

    fn labels() -> ManagedLabels {
        ManagedLabels {
            namespace: "default".into(),
            kind: Kind::Deployment,
            name: "web".into(),
            slot: 1,
            template_hash: "0123456789".into(),
            commit: "c0ffee".into(),
            node: "n2".into(),
            container: String::new(),
        }
    }

    fn container(name: &str) -> Container {
        Container {
            name: name.into(),
            image: "flotilla-test:1".into(),
            ..Container::default()
        }
    }

    #[test]
    fn single_container_pod() {
        let template = PodTemplate {
            spec: PodSpec {
                containers: vec![Container {
                    command: vec!["httpd".into()],
                    args: vec!["-f".into(), "-p".into(), "8080".into()],
                    env: vec![EnvVar {
                        name: "A".into(),
                        value: "b c".into(),
                    }],
                    ports: vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        host_port: Some(80),
                        protocol: Protocol::TCP,
                    }],
                    resources: Resources {
                        requests: ResourceList::default(),
                        limits: ResourceList {
                            cpu: Some(CpuMillis(250)),
                            memory: Some(Bytes(64 << 20)),
                        },
                    },
                    ..container("httpd")
                }],
                restart_policy: RestartPolicy::OnFailure,
                ..PodSpec::default()
            },
            ..PodTemplate::default()
        };
        let containers = replica_containers(&template, &labels());
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(c.name, "flotilla.deployment.default.web.1.0123456789.httpd");
        assert_eq!(c.entrypoint.as_deref(), Some(&["httpd".to_string()][..]));
        assert_eq!(c.cmd.as_ref().map(Vec::len), Some(3));
        assert_eq!(c.env, ["A=b c"]);
        assert_eq!(
            c.port_bindings,
            [PortBinding {
                container_port: 8080,
                host_port: 80,
                protocol: Protocol::TCP
            }]
        );
        assert_eq!(c.exposed_ports, [(8080, Protocol::TCP)]);
        assert_eq!(c.nano_cpus, Some(250_000_000));
        assert_eq!(c.memory_bytes, Some(64 << 20));
        assert_eq!(c.restart_policy, DockerRestartPolicy::OnFailure);
        assert_eq!(c.hostname.as_deref(), Some("web-1"));
        assert_eq!(c.network_mode, None);
        assert_eq!(c.labels["dev.flotilla.container"], "httpd");
        assert_eq!(c.labels["dev.flotilla.managed"], "true");
    }

    #[test]
    fn pod_shares_the_first_containers_network_which_publishes_every_port() {
        let template = PodTemplate {
            spec: PodSpec {
                containers: vec![
                    container("app"),
                    Container {
                        ports: vec![ContainerPort {
                            name: None,
                            container_port: 9000,
                            host_port: Some(9000),
                            protocol: Protocol::UDP,
                        }],
                        ..container("sidecar")
                    },
                ],
                restart_policy: RestartPolicy::Never,
                ..PodSpec::default()
            },
            ..PodTemplate::default()
        };
        let containers = replica_containers(&template, &labels());
        let [app, sidecar] = &containers[..] else {
            panic!("two containers expected, got {containers:?}");
        };
        assert_eq!(app.port_bindings.len(), 1);
        assert_eq!(app.exposed_ports, [(9000, Protocol::UDP)]);
        assert!(sidecar.port_bindings.is_empty());
        assert_eq!(
            sidecar.network_mode.as_deref(),
            Some("container:flotilla.deployment.default.web.1.0123456789.app")
        );
        assert_eq!(sidecar.hostname, None);
        assert_eq!(sidecar.entrypoint, None);
        assert_eq!(sidecar.cmd, None);
        assert_eq!(app.restart_policy, DockerRestartPolicy::No);
    }
}
