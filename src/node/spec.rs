//! What to create: a plain-data container description, and its Docker form.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding as DockerPortBinding,
    RestartPolicy as DockerRestartPolicy, RestartPolicyNameEnum,
};

use crate::manifest::model::Protocol;

/// One container to create on a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    /// Docker's name (flotilla's deterministic name).
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `NAME=value` pairs, in order.
    pub env: Vec<(String, String)>,
    /// Replaces the image's entrypoint when given.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when given.
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub ports: Vec<PortBinding>,
    /// In nano-CPUs (1e9 = one CPU); 0 = no limit.
    pub nano_cpus: i64,
    /// In bytes; 0 = no limit.
    pub memory: i64,
    pub restart_policy: RestartPolicy,
    /// Docker's network mode, e.g. `container:<other>` to share a pod's
    /// network namespace; Docker's default when `None`.
    pub network_mode: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PortBinding {
    pub container_port: u16,
    pub protocol: Protocol,
    /// Published on the node's addresses when given.
    pub host_port: Option<u16>,
    pub host_ip: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure {
        max_retries: i64,
    },
}

/// The tag to pull `image` with: `latest` when the reference names neither
/// a tag nor a digest (Docker's API would otherwise pull every tag), else
/// none, the reference saying it. A registry's port (`localhost:5000/app`)
/// is not a tag: only a colon in the last path component is.
pub fn default_tag(image: &str) -> Option<&'static str> {
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

fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TCP => "tcp",
        Protocol::UDP => "udp",
        Protocol::SCTP => "sctp",
    }
}

impl ContainerSpec {
    /// Docker's create body.
    pub(crate) fn to_docker(&self) -> ContainerCreateBody {
        let mut exposed = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
        for port in &self.ports {
            let key = format!("{}/{}", port.container_port, protocol_name(port.protocol));
            exposed.push(key.clone());
            if let Some(host_port) = port.host_port {
                bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(DockerPortBinding {
                        host_ip: port.host_ip.clone(),
                        host_port: Some(host_port.to_string()),
                    });
            }
        }
        let (name, maximum_retry_count) = match self.restart_policy {
            RestartPolicy::No => (RestartPolicyNameEnum::NO, None),
            RestartPolicy::Always => (RestartPolicyNameEnum::ALWAYS, None),
            RestartPolicy::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
            RestartPolicy::OnFailure { max_retries } => {
                (RestartPolicyNameEnum::ON_FAILURE, Some(max_retries))
            }
        };
        let host_config = HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            nano_cpus: (self.nano_cpus > 0).then_some(self.nano_cpus),
            memory: (self.memory > 0).then_some(self.memory),
            restart_policy: Some(DockerRestartPolicy {
                name: Some(name),
                maximum_retry_count,
            }),
            network_mode: self.network_mode.clone(),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            labels: Some(
                self.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            env: Some(self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            entrypoint: self.entrypoint.clone(),
            cmd: self.cmd.clone(),
            working_dir: self.working_dir.clone(),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_form() {
        let spec = ContainerSpec {
            name: "c".into(),
            image: "img:1".into(),
            labels: BTreeMap::from([("k".into(), "v".into())]),
            env: vec![("A".into(), "1".into())],
            cmd: Some(vec!["sh".into()]),
            ports: vec![
                PortBinding {
                    container_port: 80,
                    protocol: Protocol::TCP,
                    host_port: Some(8080),
                    host_ip: None,
                },
                PortBinding {
                    container_port: 53,
                    protocol: Protocol::UDP,
                    host_port: None,
                    host_ip: None,
                },
            ],
            nano_cpus: 500_000_000,
            memory: 1 << 20,
            restart_policy: RestartPolicy::OnFailure { max_retries: 3 },
            network_mode: Some("container:other".into()),
            ..Default::default()
        };
        let body = spec.to_docker();
        assert_eq!(body.image.as_deref(), Some("img:1"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
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
            (Some(RestartPolicyNameEnum::ON_FAILURE), Some(3))
        );
        assert_eq!(host.network_mode.as_deref(), Some("container:other"));

        let unlimited = ContainerSpec::default().to_docker();
        let host = unlimited.host_config.expect("host config");
        assert_eq!(
            (host.nano_cpus, host.memory, host.port_bindings),
            (None, None, None)
        );
        assert_eq!(unlimited.exposed_ports, None);
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
