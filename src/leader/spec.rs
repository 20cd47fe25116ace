//! From a planned replica (a pod template and the labels of one replica) to
//! the Docker containers that run it on a node.
//!
//! Kubernetes' meaning, Docker's words: `command` is the entrypoint and
//! `args` the cmd (an entrypoint given without args drops the image's cmd,
//! as in Kubernetes); limits become NanoCPUs and Memory; `restartPolicy`
//! becomes Docker's restart policy, so the node restarts a crashed process
//! itself; the pod's containers share the first container's network
//! namespace, which therefore carries every host-port binding. Pure: the
//! result is the node runtime's [`ReplicaContainer`], which `node` turns
//! into Docker's create request.

use super::{pod_config, volumes};
use crate::cluster::ManagedLabels;
use crate::manifest::model::{Container, DesiredState, PodTemplate, Protocol, RestartPolicy};
// Where the manifest names StatefulSet pods in DNS, by the same rule.
pub use crate::manifest::names::{pod_hostname, HOSTNAME_MAX};
use crate::node::{ContainerEnv, DockerRestartPolicy, PortBinding, ReplicaContainer};

/// What a pod is told of the Services when it is created: the proxy's DNS
/// server with Kubernetes' search path, and Kubernetes' environment
/// variables of the Services of its namespace (`WEB_SERVICE_HOST`, ...).
/// A cluster without Services changes nothing: Docker's resolver stays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceDiscovery {
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `NAME=value`, before the container's own (which win).
    pub env: Vec<String>,
}

impl ServiceDiscovery {
    /// What pods of `namespace` get from `desired`.
    pub fn for_namespace(desired: &DesiredState, namespace: &str) -> ServiceDiscovery {
        if desired.services.is_empty() {
            return ServiceDiscovery::default();
        }
        let domain = crate::plan::endpoints::CLUSTER_DOMAIN;
        let mut env = Vec::new();
        for service in desired
            .services
            .iter()
            .filter(|s| s.meta.namespace == namespace)
        {
            let Some(first) = service.ports.first() else {
                continue;
            };
            let name = env_name(&service.meta.name);
            let ip = service.cluster_ip;
            env.push(format!("{name}_SERVICE_HOST={ip}"));
            env.push(format!("{name}_SERVICE_PORT={}", first.port));
            for port in &service.ports {
                let protocol = port.protocol.lowercase();
                if let Some(port_name) = &port.name {
                    env.push(format!(
                        "{name}_SERVICE_PORT_{}={}",
                        env_name(port_name),
                        port.port
                    ));
                }
                let prefix = format!("{name}_PORT_{}_{}", port.port, port.protocol.as_str());
                env.push(format!("{prefix}={protocol}://{ip}:{}", port.port));
                env.push(format!("{prefix}_PROTO={protocol}"));
                env.push(format!("{prefix}_PORT={}", port.port));
                env.push(format!("{prefix}_ADDR={ip}"));
            }
            env.push(format!(
                "{name}_PORT={}://{ip}:{}",
                first.protocol.lowercase(),
                first.port
            ));
        }
        ServiceDiscovery {
            dns: vec![desired.cluster.service_cidr.dns_address().to_string()],
            dns_search: vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ],
            dns_options: vec!["ndots:5".to_string()],
            env,
        }
    }
}

/// Kubernetes' form of a name in a variable: upper case, `-` as `_`.
fn env_name(name: &str) -> String {
    name.to_uppercase().replace(['-', '.'], "_")
}

/// The containers of one replica, in creation (and start) order. `labels`
/// describes the replica; its `container` field is replaced per container.
///
/// What the pod reads from ConfigMaps and Secrets comes from `desired`
/// (`leader::pod_config`), in the replica's namespace.
pub fn replica_containers(
    template: &PodTemplate,
    labels: &ManagedLabels,
    discovery: &ServiceDiscovery,
    desired: &DesiredState,
) -> Vec<ReplicaContainer> {
    let namespace = labels.namespace.as_str();
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
                host_ip: p.host_ip.clone(),
            })
        })
        .collect();
    let workload = desired.workload_named(labels.kind, &labels.namespace, &labels.name);
    let ordinal = workload.map_or(labels.slot, |w| w.pod_ordinal(labels.slot));
    // Kubernetes' variable of an indexed pod: its completion index.
    let index_env = workload
        .and_then(|w| w.completion_index(labels.slot))
        .map(|index| ContainerEnv::plain("JOB_COMPLETION_INDEX", index.to_string()));
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
            let storage = volumes::container_storage(container, spec, labels, desired);
            ReplicaContainer {
                image: container.image.clone(),
                pull_policy: container.image_pull_policy,
                entrypoint: non_empty(&container.command),
                cmd: non_empty(&container.args),
                env: discovery
                    .env
                    .iter()
                    .map(|assignment| {
                        let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
                        ContainerEnv::plain(name, value)
                    })
                    .chain(index_env.clone())
                    .chain(pod_config::container_env(container, namespace, desired))
                    .collect(),
                labels: container_labels.to_docker_labels(),
                working_dir: container.working_dir.clone(),
                hostname: is_first.then(|| pod_hostname(&labels.name, ordinal)),
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
                dns: if is_first {
                    discovery.dns.clone()
                } else {
                    Vec::new()
                },
                dns_search: if is_first {
                    discovery.dns_search.clone()
                } else {
                    Vec::new()
                },
                dns_options: if is_first {
                    discovery.dns_options.clone()
                } else {
                    Vec::new()
                },
                files: pod_config::container_files(container, spec, namespace, desired),
                volumes: storage.0,
                mounts: storage.1,
                pull_auth: pod_config::pull_auth(&container.image, spec, namespace, desired),
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
                        value_from: None,
                    }],
                    ports: vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        host_port: Some(80),
                        host_ip: None,
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
        let containers = replica_containers(
            &template,
            &labels(),
            &ServiceDiscovery::default(),
            &DesiredState::default(),
        );
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(c.name, "flotilla.deployment.default.web.1.0123456789.httpd");
        assert_eq!(c.entrypoint.as_deref(), Some(&["httpd".to_string()][..]));
        assert_eq!(c.cmd.as_ref().map(Vec::len), Some(3));
        assert_eq!(c.env, [ContainerEnv::plain("A", "b c")]);
        assert_eq!(
            c.port_bindings,
            [PortBinding {
                container_port: 8080,
                host_port: 80,
                protocol: Protocol::TCP,
                host_ip: None,
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

    /// Regression (issue 10, item 9): a 253-character name gave a host name
    /// runc refuses (more than 64 bytes).
    #[test]
    fn host_names_fit_linux_and_dns_limits_and_stay_distinct() {
        let longest = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        let cut_at_a_dot = format!("{}.{}", "a".repeat(59), "b".repeat(100));
        let cut_at_dashes = format!("{}--{}", "a".repeat(59), "b".repeat(100));
        for (name, slot, expected) in [
            ("web", 1, "web-1".to_string()),
            (&*"w".repeat(61), 0, format!("{}-0", "w".repeat(61))),
            (&*"w".repeat(62), 0, format!("{}-0", "w".repeat(61))),
            (
                &*"w".repeat(253),
                u32::MAX,
                format!("{}-4294967295", "w".repeat(52)),
            ),
            (&longest, 7, format!("{}-7", "a".repeat(61))),
            (&cut_at_a_dot, 12, format!("{}-12", "a".repeat(59))),
            (&cut_at_dashes, 3, format!("{}-3", "a".repeat(59))),
        ] {
            let hostname = pod_hostname(name, slot);
            assert_eq!(hostname, expected, "{name}");
            assert!(hostname.len() <= HOSTNAME_MAX);
            for label in hostname.split('.') {
                assert_eq!(
                    crate::manifest::names::dns1123_label(label),
                    Ok(()),
                    "{hostname}"
                );
            }
        }
        assert_ne!(
            pod_hostname(&"w".repeat(253), 1),
            pod_hostname(&"w".repeat(253), 2)
        );
    }

    /// Docker takes any length of container name made of
    /// `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (moby daemon/names.go); flotilla's names
    /// are made of DNS-1123 parts joined by dots, whatever their length.
    #[test]
    fn the_longest_container_names_are_valid_docker_names() {
        let labels = ManagedLabels {
            namespace: "n".repeat(63),
            name: "w".repeat(253),
            slot: u32::MAX,
            container: "c".repeat(63),
            ..labels()
        };
        let name = labels.container_name();
        let bytes = name.as_bytes();
        assert!(bytes[0].is_ascii_alphanumeric());
        assert!(bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
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
                            host_ip: Some("127.0.0.1".into()),
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
        let containers = replica_containers(
            &template,
            &labels(),
            &ServiceDiscovery::default(),
            &DesiredState::default(),
        );
        let [app, sidecar] = &containers[..] else {
            panic!("two containers expected, got {containers:?}");
        };
        assert_eq!(
            app.port_bindings,
            [PortBinding {
                container_port: 9000,
                host_port: 9000,
                protocol: Protocol::UDP,
                host_ip: Some("127.0.0.1".into()),
            }],
            "the sidecar's hostIP binds the pod's port"
        );
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

    /// Issue 13: pods learn the Services of their namespace as Kubernetes
    /// tells them (variables, DNS), the first container only for DNS; a
    /// cluster without Services changes nothing.
    #[test]
    fn pods_get_kubernetes_service_variables_and_the_proxy_as_resolver() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  \
            selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      \
            containers:\n      - {name: app, image: img}\n      - {name: side, image: img}\n---\n\
            apiVersion: v1\nkind: Service\nmetadata: {name: my-db}\nspec:\n  clusterIP: 10.96.0.20\n  \
            selector: {app: web}\n  ports: [{name: sql, port: 5432}, {name: admin, port: 8080}]\n---\n\
            apiVersion: v1\nkind: Service\nmetadata: {name: elsewhere, namespace: other}\nspec:\n  \
            selector: {app: web}\n  ports: [{port: 80}]\n";
        let loaded = crate::manifest::load(&[crate::manifest::SourceFile::new("a.yaml", yaml)]);
        assert!(
            loaded.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            loaded.diagnostics
        );
        let discovery = ServiceDiscovery::for_namespace(&loaded.state, "default");
        assert_eq!(
            discovery.env,
            [
                "MY_DB_SERVICE_HOST=10.96.0.20",
                "MY_DB_SERVICE_PORT=5432",
                "MY_DB_SERVICE_PORT_SQL=5432",
                "MY_DB_PORT_5432_TCP=tcp://10.96.0.20:5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_ADDR=10.96.0.20",
                "MY_DB_SERVICE_PORT_ADMIN=8080",
                "MY_DB_PORT_8080_TCP=tcp://10.96.0.20:8080",
                "MY_DB_PORT_8080_TCP_PROTO=tcp",
                "MY_DB_PORT_8080_TCP_PORT=8080",
                "MY_DB_PORT_8080_TCP_ADDR=10.96.0.20",
                "MY_DB_PORT=tcp://10.96.0.20:5432",
            ]
        );
        assert_eq!(discovery.dns, ["10.96.0.10"]);
        assert_eq!(
            discovery.dns_search,
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(discovery.dns_options, ["ndots:5"]);
        let template = &loaded.state.workloads[0].spec.template;
        let containers =
            replica_containers(template, &labels(), &discovery, &DesiredState::default());
        assert_eq!(containers[0].dns, ["10.96.0.10"]);
        assert!(
            containers[1].dns.is_empty(),
            "the second joins the first's network"
        );
        assert!(containers[1]
            .env
            .contains(&ContainerEnv::plain("MY_DB_SERVICE_HOST", "10.96.0.20")));

        let without = ServiceDiscovery::for_namespace(&DesiredState::default(), "default");
        assert_eq!(without, ServiceDiscovery::default());
    }
}
