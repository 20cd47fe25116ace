//! From a planned replica (a pod template and the labels of one replica) to
//! the Docker containers that run it on a node.
//!
//! Kubernetes' meaning, Docker's words: `command` is the entrypoint and
//! `args` the cmd (an entrypoint given without args drops the image's cmd,
//! as in Kubernetes); limits become NanoCPUs and Memory; `restartPolicy`
//! becomes Docker's restart policy, so the node restarts a crashed process
//! itself; a pod of several containers, or with init containers, runs in a
//! sandbox container whose network namespace every container joins, which
//! therefore carries every host-port binding. Pure: the
//! result is the node runtime's [`ReplicaContainer`], which `node` turns
//! into Docker's create request.

use super::{pod_config, volumes};
use crate::cluster::{ContainerRole, Hook, Hooks, ManagedLabels, SANDBOX_CONTAINER};
use crate::manifest::model::{
    Container, DesiredState, LifecycleHandler, PodSpec, PodTemplate, Protocol, PullPolicy,
    RestartPolicy,
};
use crate::node::SANDBOX_IMAGE;
use crate::reconcile::probes::resolve_port;
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

/// The containers of one replica, in creation order. `labels` describes the
/// replica; its `container` and `role` fields are set per container.
///
/// A pod of one container without init containers runs as that container
/// alone, which owns the pod's network namespace, host name, published
/// ports and resolver (no sandbox: a lone container costs what it did).
/// Any other pod gets a sandbox first (the node proxy's image in `pause`
/// mode, [`SANDBOX_IMAGE`] until the leader names the loaded image), which
/// owns all of that; then its init containers and app containers, in the
/// template's order, each joining the sandbox's namespace. Regular init
/// containers never restart on their own (the planner restarts a failed
/// one with the crash-loop back-off), sidecars always do, app containers
/// as the pod's `restartPolicy` says; a sandbox never restarts on its
/// own, since a restarted sandbox would hold a new namespace the others
/// are not in: a pod whose sandbox stopped is replaced.
///
/// What the pod reads from ConfigMaps and Secrets comes from `desired`
/// (`leader::pod_config`), in the replica's namespace.
pub fn replica_containers(
    template: &PodTemplate,
    labels: &ManagedLabels,
    discovery: &ServiceDiscovery,
    desired: &DesiredState,
) -> Vec<ReplicaContainer> {
    let spec = &template.spec;
    let pod_bindings: Vec<PortBinding> = spec
        .all_containers()
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
    let network = PodNetwork {
        hostname: pod_hostname(&labels.name, ordinal),
        bindings: pod_bindings,
        discovery,
    };
    let pod = Pod {
        spec,
        labels,
        discovery,
        desired,
        // Kubernetes' variable of an indexed pod: its completion index.
        index_env: workload
            .and_then(|w| w.completion_index(labels.slot))
            .map(|index| ContainerEnv::plain("JOB_COMPLETION_INDEX", index.to_string())),
    };
    if !spec.has_sandbox() {
        let Some(container) = spec.containers.first() else {
            return Vec::new();
        };
        return vec![pod.container(container, ContainerRole::App, Some(&network), None)];
    }
    let sandbox_labels = ManagedLabels {
        container: SANDBOX_CONTAINER.to_string(),
        role: ContainerRole::Sandbox,
        ..labels.clone()
    };
    // Docker refuses to expose a port on a container that joins another's
    // network ("conflicting options: port exposing and the container type
    // network mode"): the sandbox, which owns the namespace, exposes every
    // container's ports.
    let pod_ports: Vec<(u16, Protocol)> = spec
        .all_containers()
        .flat_map(|c| &c.ports)
        .map(|p| (p.container_port, p.protocol))
        .collect();
    let sandbox = sandbox_container(
        &sandbox_labels,
        &network,
        &pod_ports,
        spec.termination_grace_period_seconds,
    );
    let joined = format!("container:{}", sandbox.name);
    let init = spec
        .init_containers
        .iter()
        .map(|c| pod.container(c, ContainerRole::of_init(c), None, Some(&joined)));
    let app = spec
        .containers
        .iter()
        .map(|c| pod.container(c, ContainerRole::App, None, Some(&joined)));
    std::iter::once(sandbox).chain(init).chain(app).collect()
}

/// What the owner of a pod's network namespace carries.
struct PodNetwork<'a> {
    hostname: String,
    bindings: Vec<PortBinding>,
    discovery: &'a ServiceDiscovery,
}

/// One replica being turned into containers.
struct Pod<'a> {
    spec: &'a PodSpec,
    labels: &'a ManagedLabels,
    discovery: &'a ServiceDiscovery,
    desired: &'a DesiredState,
    /// `JOB_COMPLETION_INDEX`, for every container of an indexed pod.
    index_env: Option<ContainerEnv>,
}

impl Pod<'_> {
    /// `container` as `role`: owning the pod's network (`network`), or
    /// joining it (`network_mode`).
    fn container(
        &self,
        container: &Container,
        role: ContainerRole,
        network: Option<&PodNetwork<'_>>,
        network_mode: Option<&String>,
    ) -> ReplicaContainer {
        let (spec, labels, desired) = (self.spec, self.labels, self.desired);
        let namespace = labels.namespace.as_str();
        let container_labels = ManagedLabels {
            container: container.name.clone(),
            role,
            ..labels.clone()
        };
        let restart_policy = match (role, spec.restart_policy) {
            (ContainerRole::Init | ContainerRole::Sandbox, _) => DockerRestartPolicy::No,
            (ContainerRole::Sidecar, _) | (ContainerRole::App, RestartPolicy::Always) => {
                DockerRestartPolicy::Always
            }
            (ContainerRole::App, RestartPolicy::OnFailure) => DockerRestartPolicy::OnFailure,
            (ContainerRole::App, RestartPolicy::Never) => DockerRestartPolicy::No,
        };
        let mut docker_labels = container_labels.to_docker_labels();
        let mut hooks = container_hooks(container);
        // What bounds its preStop and stop once Git no longer has the
        // template (an object removed from Git).
        hooks.grace_seconds = Some(spec.termination_grace_period_seconds);
        hooks.add_docker_labels(&mut docker_labels);
        let storage = volumes::container_storage(container, spec, labels, desired);
        ReplicaContainer {
            image: container.image.clone(),
            pull_policy: container.image_pull_policy,
            entrypoint: non_empty(&container.command),
            cmd: non_empty(&container.args),
            env: self
                .discovery
                .env
                .iter()
                .map(|assignment| {
                    let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
                    ContainerEnv::plain(name, value)
                })
                .chain(self.index_env.clone())
                .chain(pod_config::container_env(container, namespace, desired))
                .collect(),
            labels: docker_labels,
            working_dir: container.working_dir.clone(),
            hostname: network.map(|n| n.hostname.clone()),
            port_bindings: network.map(|n| n.bindings.clone()).unwrap_or_default(),
            // A container that joins the sandbox's network exposes nothing
            // (Docker refuses it); the sandbox exposes its ports.
            exposed_ports: match network {
                Some(network) => exposed_ports(container, &network.bindings),
                None => Vec::new(),
            },
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
            network_mode: network_mode.cloned(),
            stop_timeout_seconds: Some(spec.termination_grace_period_seconds),
            dns: network.map(|n| n.discovery.dns.clone()).unwrap_or_default(),
            dns_search: network
                .map(|n| n.discovery.dns_search.clone())
                .unwrap_or_default(),
            dns_options: network
                .map(|n| n.discovery.dns_options.clone())
                .unwrap_or_default(),
            files: pod_config::container_files(container, spec, namespace, desired),
            volumes: storage.0,
            mounts: storage.1,
            pull_auth: pod_config::pull_auth(&container.image, spec, namespace, desired),
            name: container_labels.container_name(),
        }
    }
}

/// The pod's sandbox: the node proxy's image in `pause` mode, owning the
/// pod's network namespace (host name, every published port, resolver).
fn sandbox_container(
    labels: &ManagedLabels,
    network: &PodNetwork<'_>,
    pod_ports: &[(u16, Protocol)],
    grace_seconds: u32,
) -> ReplicaContainer {
    let mut exposed: Vec<(u16, Protocol)> = network
        .bindings
        .iter()
        .map(|b| (b.container_port, b.protocol))
        .chain(pod_ports.iter().copied())
        .collect();
    exposed.sort();
    exposed.dedup();
    ReplicaContainer {
        name: labels.container_name(),
        image: SANDBOX_IMAGE.to_string(),
        // Loaded by the leader, never pulled.
        pull_policy: PullPolicy::Never,
        entrypoint: None,
        cmd: Some(vec!["pause".to_string()]),
        env: Vec::new(),
        labels: labels.to_docker_labels(),
        working_dir: None,
        hostname: Some(network.hostname.clone()),
        port_bindings: network.bindings.clone(),
        exposed_ports: exposed,
        nano_cpus: None,
        memory_bytes: None,
        restart_policy: DockerRestartPolicy::No,
        network_mode: None,
        // It exits at SIGTERM; the grace period bounds it anyway.
        stop_timeout_seconds: Some(grace_seconds),
        dns: network.discovery.dns.clone(),
        dns_search: network.discovery.dns_search.clone(),
        dns_options: network.discovery.dns_options.clone(),
        files: Vec::new(),
        pull_auth: None,
        volumes: Vec::new(),
        mounts: Vec::new(),
    }
}

/// The container's hooks as the leader runs them: a named port resolved to
/// its number (and hostPort), since the template may be gone from Git by
/// the time a preStop runs.
pub(crate) fn container_hooks(container: &Container) -> Hooks {
    let hook = |handler: &Option<LifecycleHandler>| {
        handler.as_ref().and_then(|handler| match handler {
            LifecycleHandler::Exec { command } => Some(Hook::Exec {
                command: command.clone(),
            }),
            LifecycleHandler::Sleep { seconds } => Some(Hook::Sleep { seconds: *seconds }),
            LifecycleHandler::HttpGet {
                path,
                port,
                headers,
            } => resolve_port(container, port).map(|(port, host_port)| Hook::HttpGet {
                path: path.clone(),
                port,
                host_port,
                headers: headers.clone(),
            }),
        })
    };
    Hooks {
        post_start: hook(&container.lifecycle.post_start),
        pre_stop: hook(&container.lifecycle.pre_stop),
        grace_seconds: None,
    }
}

fn non_empty(words: &[String]) -> Option<Vec<String>> {
    (!words.is_empty()).then(|| words.to_vec())
}

/// The container's own ports, plus (for the owner of the pod's network)
/// every port the pod publishes, since Docker publishes only exposed ports.
fn exposed_ports(container: &Container, pod_bindings: &[PortBinding]) -> Vec<(u16, Protocol)> {
    let mut ports: Vec<(u16, Protocol)> = container
        .ports
        .iter()
        .map(|p| (p.container_port, p.protocol))
        .chain(pod_bindings.iter().map(|b| (b.container_port, b.protocol)))
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
            role: Default::default(),
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

    /// Issue 16: a pod of several containers runs in a sandbox (the node
    /// proxy's image, paused) that owns the network namespace, host name,
    /// every published port (init containers' too) and the resolver; every
    /// other container joins it; roles are labels.
    #[test]
    fn a_pod_of_several_containers_runs_in_a_sandbox_that_publishes_every_port() {
        let template = PodTemplate {
            spec: PodSpec {
                init_containers: vec![
                    container("setup"),
                    Container {
                        sidecar: true,
                        ports: vec![ContainerPort {
                            name: None,
                            container_port: 9100,
                            host_port: Some(9100),
                            host_ip: None,
                            protocol: Protocol::TCP,
                        }],
                        ..container("log")
                    },
                ],
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
        let discovery = ServiceDiscovery {
            dns: vec!["10.96.0.10".into()],
            ..ServiceDiscovery::default()
        };
        let containers =
            replica_containers(&template, &labels(), &discovery, &DesiredState::default());
        let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
        let prefix = "flotilla.deployment.default.web.1.0123456789.";
        assert_eq!(
            names,
            ["_sandbox", "setup", "log", "app", "sidecar"].map(|n| format!("{prefix}{n}"))
        );
        let [sandbox, setup, log, app, sidecar] = &containers[..] else {
            unreachable!("five containers");
        };
        assert_eq!(sandbox.image, SANDBOX_IMAGE);
        assert_eq!(sandbox.cmd.as_deref(), Some(&["pause".to_string()][..]));
        assert_eq!(sandbox.pull_policy, PullPolicy::Never);
        assert_eq!(sandbox.network_mode, None);
        assert_eq!(sandbox.hostname.as_deref(), Some("web-1"));
        assert_eq!(sandbox.dns, ["10.96.0.10"]);
        assert_eq!(sandbox.restart_policy, DockerRestartPolicy::No);
        assert_eq!(
            sandbox.port_bindings,
            [
                PortBinding {
                    container_port: 9100,
                    host_port: 9100,
                    protocol: Protocol::TCP,
                    host_ip: None,
                },
                PortBinding {
                    container_port: 9000,
                    host_port: 9000,
                    protocol: Protocol::UDP,
                    host_ip: Some("127.0.0.1".into()),
                }
            ],
            "the init containers' and every container's host ports are the pod's"
        );
        assert_eq!(
            sandbox.exposed_ports,
            [(9000, Protocol::UDP), (9100, Protocol::TCP)]
        );
        // Regression (review of issue 16): Docker refuses to create a
        // container that exposes a port and joins another's network
        // ("conflicting options: port exposing and the container type
        // network mode"), so every sidecar or app container with `ports`
        // failed to be created.
        for joined in [setup, log, app, sidecar] {
            assert!(joined.exposed_ports.is_empty(), "{}", joined.name);
        }
        assert_eq!(sandbox.labels["dev.flotilla.role"], "sandbox");
        assert_eq!(sandbox.labels["dev.flotilla.container"], "_sandbox");
        for joined in [setup, log, app, sidecar] {
            assert_eq!(
                joined.network_mode.as_deref(),
                Some(format!("container:{prefix}_sandbox").as_str())
            );
            assert_eq!(joined.hostname, None);
            assert!(joined.port_bindings.is_empty());
            assert!(joined.dns.is_empty());
        }
        assert_eq!(setup.labels["dev.flotilla.role"], "init");
        assert_eq!(log.labels["dev.flotilla.role"], "sidecar");
        assert!(!app.labels.contains_key("dev.flotilla.role"));
        // Init containers are restarted by the planner, sidecars always by
        // Docker, app containers as the pod says.
        assert_eq!(setup.restart_policy, DockerRestartPolicy::No);
        assert_eq!(log.restart_policy, DockerRestartPolicy::Always);
        assert_eq!(app.restart_policy, DockerRestartPolicy::No);
    }

    /// Regression (review of issue 16): a sidecar's `containerPort`
    /// without a `hostPort` was exposed on the sidecar, which Docker
    /// refuses for a container in another's network; the sandbox exposes it.
    #[test]
    fn a_joined_containers_port_is_exposed_by_the_sandbox() {
        let port = |container_port| ContainerPort {
            name: Some("admin".into()),
            container_port,
            host_port: None,
            host_ip: None,
            protocol: Protocol::TCP,
        };
        let template = PodTemplate {
            spec: PodSpec {
                init_containers: vec![Container {
                    sidecar: true,
                    ports: vec![port(15000)],
                    ..container("proxy")
                }],
                containers: vec![Container {
                    ports: vec![port(8080)],
                    ..container("app")
                }],
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
        let [sandbox, proxy, app] = &containers[..] else {
            unreachable!("three containers");
        };
        assert_eq!(
            sandbox.exposed_ports,
            [(8080, Protocol::TCP), (15000, Protocol::TCP)]
        );
        assert!(proxy.exposed_ports.is_empty());
        assert!(app.exposed_ports.is_empty());
    }

    /// A lone container without init containers keeps its layout: no
    /// sandbox, it owns the pod's namespace (and its template its hash).
    #[test]
    fn a_lone_container_has_no_sandbox() {
        let template = PodTemplate {
            spec: PodSpec {
                containers: vec![container("app")],
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
        assert_eq!(containers[0].network_mode, None);
        assert_eq!(containers[0].hostname.as_deref(), Some("web-1"));
        assert!(!containers[0].labels.contains_key("dev.flotilla.role"));
    }

    /// Lifecycle hooks travel in labels, a named port resolved, so that an
    /// old revision's preStop runs once Git no longer has its template.
    #[test]
    fn hooks_are_labels_with_named_ports_resolved() {
        use crate::manifest::model::{Lifecycle, PortRef};
        let template = PodTemplate {
            spec: PodSpec {
                containers: vec![Container {
                    ports: vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        host_port: None,
                        host_ip: None,
                        protocol: Protocol::TCP,
                    }],
                    lifecycle: Lifecycle {
                        post_start: Some(LifecycleHandler::Exec {
                            command: vec!["touch".into(), "/ready".into()],
                        }),
                        pre_stop: Some(LifecycleHandler::HttpGet {
                            path: "/drain".into(),
                            port: PortRef::Name("http".into()),
                            headers: Vec::new(),
                        }),
                    },
                    ..container("app")
                }],
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
        let hooks = Hooks::from_docker_labels(&containers[0].labels);
        assert_eq!(
            hooks,
            Hooks {
                post_start: Some(Hook::Exec {
                    command: vec!["touch".into(), "/ready".into()]
                }),
                pre_stop: Some(Hook::HttpGet {
                    path: "/drain".into(),
                    port: 8080,
                    host_port: None,
                    headers: Vec::new(),
                }),
                // Regression (review of issue 16): with the grace period,
                // which bounds the preStop of an object removed from Git
                // (it ran for 30 s whatever the pod's grace period).
                grace_seconds: Some(template.spec.termination_grace_period_seconds),
            }
        );
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
        assert_eq!(containers[0].labels["dev.flotilla.role"], "sandbox");
        assert!(
            containers[1].dns.is_empty(),
            "the app container joins the sandbox's network"
        );
        assert!(containers[1]
            .env
            .contains(&ContainerEnv::plain("MY_DB_SERVICE_HOST", "10.96.0.20")));

        let without = ServiceDiscovery::for_namespace(&DesiredState::default(), "default");
        assert_eq!(without, ServiceDiscovery::default());
    }
}
