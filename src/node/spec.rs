//! What to create: the one description of a container the runtime takes
//! (computed from a pod template by `leader::spec`), and its Docker form:
//! the create request, and the archive of the files placed in the container
//! before it starts. Secret values ride in [`Sensitive`], so a
//! `ReplicaContainer` printed with `{:?}` (a plan step, a log line) shows
//! `(sensitive value)` in their place.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding as DockerPortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};

use crate::manifest::model::{Protocol, PullPolicy, Sensitive};

use super::registry_auth::RegistryAuth;

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
    /// The environment, in order (a later entry of a name wins, as in
    /// Docker and Kubernetes).
    pub env: Vec<ContainerEnv>,
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
    /// Files placed in the container after it is created and before it
    /// starts (a pod's configMap and secret volumes).
    pub files: Vec<ContainerFile>,
    /// The registry credentials to pull `image` with (from the pod's
    /// `imagePullSecrets`); anonymous when `None`.
    pub pull_auth: Option<RegistryAuth>,
    /// The Docker volumes the container mounts, made (when missing) before
    /// it is created: its claims' and its pod's `emptyDir`s.
    pub volumes: Vec<PodVolume>,
    /// What is mounted where, in `volumeMounts`' order.
    pub mounts: Vec<ContainerMount>,
}

/// A Docker volume a container needs: made with `owner`'s labels when
/// missing, left as it is when present (a claim's data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodVolume {
    /// `cluster::claim_volume_name` or `cluster::pod_volume_name`.
    pub name: String,
    pub owner: crate::cluster::VolumeOwner,
    pub medium: VolumeMedium,
}

/// Where a volume's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeMedium {
    /// The node's disk (Docker's `local` driver).
    Disk,
    /// A tmpfs of `size_bytes` (the kernel's default, half the memory,
    /// when `None`), shared by the pod's containers.
    Memory { size_bytes: Option<u64> },
}

/// One of a container's mounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerMount {
    /// A Docker volume at `target`; with `sub_path`, only that relative
    /// path of it (created when missing, as Kubernetes does).
    Volume {
        volume: String,
        target: String,
        sub_path: Option<String>,
        read_only: bool,
    },
    /// A path of the node (`hostPath`), checked against `kind` when the
    /// container is created.
    Host {
        path: String,
        target: String,
        kind: crate::manifest::model::HostPathType,
        read_only: bool,
    },
}

/// One environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEnv {
    pub name: String,
    pub value: EnvValue,
}

/// An environment variable's value: in clear, or from a Secret (never
/// printed; given to Docker only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Sensitive(Sensitive),
}

impl ContainerEnv {
    pub fn plain(name: impl Into<String>, value: impl Into<String>) -> ContainerEnv {
        ContainerEnv {
            name: name.into(),
            value: EnvValue::Plain(value.into()),
        }
    }

    pub fn sensitive(name: impl Into<String>, value: Sensitive) -> ContainerEnv {
        ContainerEnv {
            name: name.into(),
            value: EnvValue::Sensitive(value),
        }
    }

    /// Docker's `NAME=value`. Docker's API carries the environment as JSON
    /// strings, so bytes that are not UTF-8 are replaced (U+FFFD): the
    /// leader refuses such a value from a Secret before it gets here.
    fn to_docker(&self) -> String {
        match &self.value {
            EnvValue::Plain(value) => format!("{}={value}", self.name),
            EnvValue::Sensitive(value) => {
                format!("{}={}", self.name, String::from_utf8_lossy(value.expose()))
            }
        }
    }
}

/// A file to place in the container before it starts: owned by root, with
/// `mode`; the directories above it that the image lacks are created by
/// Docker, owned by root, mode 0755.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFile {
    /// Absolute, normalized (no `.`, `..` or empty component).
    pub path: String,
    /// Permission bits (0 to 0o777), as a volume's `defaultMode` or an
    /// item's `mode`.
    pub mode: u32,
    pub content: Sensitive,
}

/// Why a file cannot be placed; the content is never part of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContainerFileError {
    #[error("{path}: a file's path must be absolute, without `.`, `..` or empty components")]
    Path { path: String },
    #[error("{path}: mode 0{mode:o} is not permission bits (0 to 0777)")]
    Mode { path: String, mode: u32 },
    #[error("{path}: cannot be archived: {reason}")]
    Archive { path: String, reason: String },
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

/// The label listing the files a container is created with, their paths
/// and modes (never their content), as JSON `[[path, mode], ...]`: starting
/// a container never started checks them, so a container whose creation was
/// cut before its files were placed is never run without them.
pub(crate) const FILES_LABEL: &str = "dev.flotilla.files";

/// The files a container's [`FILES_LABEL`] lists: `None` when the label
/// does not decode (a hand-made label), which starting refuses.
pub(crate) fn expected_files(label: &str) -> Option<Vec<(String, u32)>> {
    serde_json::from_str(label).ok()
}

impl ReplicaContainer {
    /// The container's labels, with [`FILES_LABEL`] when it has files.
    fn docker_labels(&self) -> HashMap<String, String> {
        let mut labels = self.labels.clone();
        if !self.files.is_empty() {
            let files: Vec<(&str, u32)> = self
                .files
                .iter()
                .map(|file| (file.path.as_str(), file.mode))
                .collect();
            labels.insert(
                FILES_LABEL.to_string(),
                serde_json::to_string(&files).expect("a list of strings and numbers serializes"),
            );
        }
        labels
    }

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
            env: Some(self.env.iter().map(ContainerEnv::to_docker).collect()),
            labels: Some(self.docker_labels()),
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

impl ContainerFile {
    /// The path as a tar entry (relative to `/`), once it is checked.
    fn entry_name(&self) -> Result<&str, ContainerFileError> {
        let relative = self
            .path
            .strip_prefix('/')
            .filter(|rest| {
                !rest.is_empty() && rest.split('/').all(|part| !matches!(part, "" | "." | ".."))
            })
            .ok_or_else(|| ContainerFileError::Path {
                path: self.path.clone(),
            })?;
        if self.mode > 0o777 {
            return Err(ContainerFileError::Mode {
                path: self.path.clone(),
                mode: self.mode,
            });
        }
        Ok(relative)
    }

    /// A tar archive, in memory, holding this one file to extract at `/`:
    /// owned by root (uid and gid 0, which Docker maps through its user
    /// namespace), with the mode asked for and `modified` as its time.
    /// No directory entries: Docker creates the missing parents itself
    /// (root, 0755), and an entry for a directory the image has (`/etc`,
    /// `/tmp`) would change its owner and mode.
    pub(crate) fn archive(&self, modified: SystemTime) -> Result<Vec<u8>, ContainerFileError> {
        let name = self.entry_name()?;
        let content = self.content.expose();
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(self.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(
            modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs()),
        );
        let mut builder = tar::Builder::new(Vec::new());
        let archived = builder
            .append_data(&mut header, name, content)
            .and_then(|()| builder.into_inner());
        // The error of an in-memory write can only be about the header
        // (a name tar cannot hold), never the content.
        archived.map_err(|error| ContainerFileError::Archive {
            path: self.path.clone(),
            reason: error.to_string(),
        })
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
            env: vec![
                ContainerEnv::plain("A", "1"),
                ContainerEnv::sensitive("TOKEN", Sensitive::new(b"s3cr3t".to_vec())),
            ],
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
        assert_eq!(
            body.env,
            Some(vec!["A=1".to_string(), "TOKEN=s3cr3t".to_string()]),
            "a Secret's value reaches Docker"
        );
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

    fn file(path: &str, mode: u32, content: &[u8]) -> ContainerFile {
        ContainerFile {
            path: path.into(),
            mode,
            content: Sensitive::new(content.to_vec()),
        }
    }

    #[test]
    fn a_secret_never_shows_in_a_containers_debug_form() {
        let container = ReplicaContainer {
            env: vec![
                ContainerEnv::plain("PLAIN", "visible"),
                ContainerEnv::sensitive("PASSWORD", Sensitive::new(b"hunter2".to_vec())),
            ],
            files: vec![file("/etc/app/key", 0o400, b"hunter3")],
            pull_auth: Some(RegistryAuth {
                server_address: "registry.example".into(),
                username: "robot".into(),
                password: Sensitive::new(b"hunter4".to_vec()),
                identity_token: Some(Sensitive::new(b"hunter5".to_vec())),
                registry_token: None,
            }),
            ..ReplicaContainer::default()
        };
        let printed = format!("{container:?} {container:#?}");
        assert!(!printed.contains("hunter"), "{printed}");
        assert!(printed.contains("visible") && printed.contains("/etc/app/key"));
        assert!(printed.contains(crate::manifest::model::SENSITIVE));
    }

    /// The one entry of a file's archive: name, mode, owner, time, content.
    fn unpacked(archive: &[u8]) -> (String, u32, (u64, u64), u64, Vec<u8>) {
        let mut archive = tar::Archive::new(archive);
        let mut entries = archive.entries().expect("entries");
        let mut entry = entries.next().expect("one entry").expect("an entry");
        let header = entry.header().clone();
        assert_eq!(header.entry_type(), tar::EntryType::Regular);
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).expect("content");
        let name = entry.path().expect("a path").display().to_string();
        drop(entry);
        assert!(entries.next().is_none(), "one entry only, no directories");
        (
            name,
            header.mode().expect("mode"),
            (header.uid().expect("uid"), header.gid().expect("gid")),
            header.mtime().expect("mtime"),
            content,
        )
    }

    #[test]
    fn a_file_is_archived_as_roots_with_its_mode() {
        let modified = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let binary: Vec<u8> = (0..=255).collect();
        for (path, mode, content, name) in [
            ("/etc/app/x", 0o644, &b"a=1\n"[..], "etc/app/x"),
            (
                "/run/secrets/db/password",
                0o400,
                &b""[..],
                "run/secrets/db/password",
            ),
            ("/x", 0o777, &binary[..], "x"),
        ] {
            let archive = file(path, mode, content)
                .archive(modified)
                .expect("archived");
            assert_eq!(
                unpacked(&archive),
                (
                    name.to_string(),
                    mode,
                    (0, 0),
                    1_700_000_000,
                    content.to_vec()
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn a_long_path_is_archived_whole() {
        let path = format!("/etc/{}/{}", "d".repeat(120), "f".repeat(120));
        let archive = file(&path, 0o600, b"v")
            .archive(UNIX_EPOCH)
            .expect("archived");
        assert_eq!(format!("/{}", unpacked(&archive).0), path);
    }

    #[test]
    fn a_path_or_mode_that_cannot_be_placed_is_refused_without_the_content() {
        for path in [
            "",
            "/",
            "etc/x",
            "/etc//x",
            "/etc/./x",
            "/etc/../x",
            "/etc/x/",
            "/..",
        ] {
            let error = file(path, 0o644, b"hunter2")
                .archive(UNIX_EPOCH)
                .expect_err(path);
            assert_eq!(
                error.to_string(),
                format!(
                    "{path}: a file's path must be absolute, without `.`, `..` or empty components"
                )
            );
        }
        let error = file("/etc/x", 0o4755, b"hunter2")
            .archive(UNIX_EPOCH)
            .expect_err("setuid");
        assert_eq!(
            error.to_string(),
            "/etc/x: mode 04755 is not permission bits (0 to 0777)"
        );
    }
}
