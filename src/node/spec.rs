//! What to create: the one description of a container the runtime takes
//! (computed from a pod template by `leader::spec`), and its Docker form.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding as DockerPortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::manifest::model::{Protocol, PullPolicy};

/// One Docker container to create on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaContainer {
    /// Deterministic: [`crate::cluster::ManagedLabels::container_name`].
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
    /// The resolver (the pod's first container only: the others share its
    /// network namespace): nameservers, search domains and options of its
    /// `/etc/resolv.conf`; Docker's defaults when empty.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
    /// `hostIP`: the node address to bind; every address when `None`.
    pub host_ip: Option<String>,
}

/// Docker's restart policies that a pod's restartPolicy maps to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DockerRestartPolicy {
    Always,
    OnFailure,
    /// Docker's own default.
    #[default]
    No,
}

/// The tag to pull `image` with: `latest` when the reference names neither
/// a tag nor a digest (Docker's API would otherwise pull every tag), else
/// none, the reference saying it. A registry's port (`localhost:5000/app`)
/// is not a tag: only a colon in the last path component is.
pub(crate) fn default_tag(image: &str) -> Option<&'static str> {
    if image.contains('@') {
        return None;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        None
    } else {
        Some("latest")
    }
}

impl ReplicaContainer {
    /// Docker's create request.
    pub(crate) fn to_docker(&self) -> ContainerCreateBody {
        let mut port_bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
        for binding in &self.port_bindings {
            port_bindings
                .entry(format!(
                    "{}/{}",
                    binding.container_port,
                    binding.protocol.lowercase()
                ))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(DockerPortBinding {
                    host_ip: binding.host_ip.clone(),
                    host_port: Some(binding.host_port.to_string()),
                });
        }
        let restart = match self.restart_policy {
            DockerRestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
            DockerRestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
            DockerRestartPolicy::No => RestartPolicyNameEnum::NO,
        };
        ContainerCreateBody {
            hostname: self.hostname.clone(),
            image: Some(self.image.clone()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            env: Some(self.env.clone()),
            labels: Some(self.labels.clone()),
            working_dir: self.working_dir.clone(),
            exposed_ports: (!self.exposed_ports.is_empty()).then(|| {
                self.exposed_ports
                    .iter()
                    .map(|(port, protocol)| format!("{port}/{}", protocol.lowercase()))
                    .collect()
            }),
            host_config: Some(HostConfig {
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                nano_cpus: self.nano_cpus,
                memory: self.memory_bytes,
                restart_policy: Some(RestartPolicy {
                    name: Some(restart),
                    maximum_retry_count: None,
                }),
                network_mode: self.network_mode.clone(),
                dns: (!self.dns.is_empty()).then(|| self.dns.clone()),
                dns_search: (!self.dns_search.is_empty()).then(|| self.dns_search.clone()),
                dns_options: (!self.dns_options.is_empty()).then(|| self.dns_options.clone()),
                ..HostConfig::default()
            }),
            stop_timeout: self.stop_timeout_seconds.map(i64::from),
            ..ContainerCreateBody::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_form() {
        let container = ReplicaContainer {
            name: "c".into(),
            image: "img:1".into(),
            labels: HashMap::from([("k".into(), "v".into())]),
            env: vec!["A=1".into()],
            cmd: Some(vec!["sh".into()]),
            hostname: Some("web-1".into()),
            port_bindings: vec![PortBinding {
                container_port: 80,
                host_port: 8080,
                protocol: Protocol::TCP,
                host_ip: None,
            }],
            exposed_ports: vec![(80, Protocol::TCP), (53, Protocol::UDP)],
            nano_cpus: Some(500_000_000),
            memory_bytes: Some(1 << 20),
            restart_policy: DockerRestartPolicy::OnFailure,
            network_mode: Some("container:other".into()),
            stop_timeout_seconds: Some(7),
            ..ReplicaContainer::default()
        };
        let body = container.to_docker();
        assert_eq!(body.image.as_deref(), Some("img:1"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        assert_eq!(body.hostname.as_deref(), Some("web-1"));
        assert_eq!(body.stop_timeout, Some(7));
        assert_eq!(
            body.exposed_ports,
            Some(vec!["80/tcp".to_string(), "53/udp".to_string()])
        );
        let host = body.host_config.expect("host config");
        let bindings = host.port_bindings.expect("bindings");
        assert_eq!(bindings.len(), 1, "only published ports are bound");
        assert_eq!(
            bindings["80/tcp"],
            Some(vec![DockerPortBinding {
                host_ip: None,
                host_port: Some("8080".into())
            }])
        );
        assert_eq!(
            (host.nano_cpus, host.memory),
            (Some(500_000_000), Some(1 << 20))
        );
        let policy = host.restart_policy.expect("restart policy");
        assert_eq!(
            (policy.name, policy.maximum_retry_count),
            (Some(RestartPolicyNameEnum::ON_FAILURE), None)
        );
        assert_eq!(host.network_mode.as_deref(), Some("container:other"));

        let unlimited = ReplicaContainer::default().to_docker();
        let host = unlimited.host_config.expect("host config");
        assert_eq!(
            (host.nano_cpus, host.memory, host.port_bindings),
            (None, None, None)
        );
        assert_eq!(
            host.restart_policy.and_then(|p| p.name),
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(unlimited.exposed_ports, None);
        assert_eq!(unlimited.stop_timeout, None);
    }

    #[test]
    fn a_host_ip_is_the_bindings_address() {
        let container = ReplicaContainer {
            port_bindings: vec![
                PortBinding {
                    container_port: 80,
                    host_port: 8080,
                    protocol: Protocol::TCP,
                    host_ip: Some("127.0.0.1".into()),
                },
                PortBinding {
                    container_port: 81,
                    host_port: 8081,
                    protocol: Protocol::TCP,
                    host_ip: None,
                },
            ],
            exposed_ports: vec![(80, Protocol::TCP), (81, Protocol::TCP)],
            ..ReplicaContainer::default()
        };
        let body = container.to_docker();
        let bindings = body
            .host_config
            .and_then(|h| h.port_bindings)
            .expect("bindings");
        let first = |key: &str| bindings[key].as_ref().expect("bound")[0].clone();
        assert_eq!(first("80/tcp").host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            first("81/tcp").host_ip,
            None,
            "every address, Docker's default"
        );
    }

    #[test]
    fn an_untagged_reference_is_pulled_as_latest() {
        for (image, tag) in [
            ("busybox", Some("latest")),
            ("busybox:1.36", None),
            ("library/busybox", Some("latest")),
            ("localhost:5000/app", Some("latest")),
            ("localhost:5000/app:2", None),
            ("registry.example:443/team/app", Some("latest")),
            ("registry.example:443/team/app:v1.2", None),
            ("app@sha256:0123456789abcdef", None),
            ("localhost:5000/app@sha256:0123456789abcdef", None),
            ("app:1@sha256:0123456789abcdef", None),
        ] {
            assert_eq!(default_tag(image), tag, "{image}");
        }
    }
}
