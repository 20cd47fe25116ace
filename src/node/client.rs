//! One node's connection (session opened on demand, reused, reopened with
//! back-off) and the Docker operations carried out on it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ImportImageOptionsBuilder,
    InspectContainerOptions, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

use super::session::{self, Backoff, SshHandle, SshOptions, Target};
use super::spec::ContainerSpec;
use super::transport::{self, BoxedIo, StreamOpener};
use super::NodeError;
use crate::cluster::{
    ContainerState, Health, ManagedLabels, NodeFacts, ObservedContainer, PublishedPort,
    MANAGED_LABEL,
};
use crate::manifest::model::{Node, Protocol, PullPolicy, Transport};
use crate::manifest::quantity::{Bytes, CpuMillis};

/// A live connection: the SSH session (none for `transport: local`) and the
/// Docker client whose connections are channels of that session.
#[derive(Clone)]
struct Connection {
    ssh: Option<Arc<SshHandle>>,
    docker: Docker,
}

impl Connection {
    fn is_open(&self) -> bool {
        self.ssh.as_ref().is_none_or(|ssh| !ssh.is_closed())
    }
}

struct ConnectionState {
    connection: Option<Connection>,
    backoff: Backoff,
    last_error: String,
}

/// One node: everything flotilla does on it goes through here.
pub struct NodeClient {
    name: String,
    target: Target,
    transport: Transport,
    docker_socket: String,
    options: SshOptions,
    state: Mutex<ConnectionState>,
    sessions_opened: AtomicU64,
}

/// What an exec printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
}

impl NodeClient {
    pub fn new(node: &Node, options: SshOptions) -> Self {
        let spec = &node.spec;
        NodeClient {
            name: node.meta.name.clone(),
            target: Target {
                node: node.meta.name.clone(),
                address: spec.address.clone(),
                port: spec.port,
                user: spec.user.clone(),
                identity_file: spec.identity_file.as_ref().map(Into::into),
            },
            transport: spec.transport,
            docker_socket: spec.docker_socket.clone(),
            state: Mutex::new(ConnectionState {
                connection: None,
                backoff: Backoff::new(options.reconnect_backoff_min, options.reconnect_backoff_max),
                last_error: String::new(),
            }),
            options,
            sessions_opened: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many SSH sessions (handshakes) this client has opened so far.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions_opened.load(Ordering::Relaxed)
    }

    /// The open connection, or a new one. A failure starts a back-off during
    /// which calls fail at once with the last error.
    async fn connection(&self) -> Result<Connection, NodeError> {
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            if connection.is_open() {
                return Ok(connection.clone());
            }
            tracing::info!(node = %self.name, "ssh session dropped; reopening");
            state.connection = None;
        }
        let now = tokio::time::Instant::now();
        if let Err(retry_in) = state.backoff.check(now) {
            return Err(NodeError::BackingOff {
                node: self.name.clone(),
                retry_in,
                last_error: state.last_error.clone(),
            });
        }
        match self.open().await {
            Ok(connection) => {
                state.backoff.succeeded();
                state.connection = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                state.backoff.failed(tokio::time::Instant::now());
                state.last_error = error.to_string();
                Err(error)
            }
        }
    }

    async fn open(&self) -> Result<Connection, NodeError> {
        let docker_error = |source| NodeError::Docker {
            node: self.name.clone(),
            operation: "version negotiation",
            container: String::new(),
            source,
        };
        let (ssh, opener): (Option<Arc<SshHandle>>, StreamOpener) = match self.transport {
            Transport::Local => (
                None,
                transport::unix_socket_opener(self.docker_socket.clone()),
            ),
            Transport::Ssh => {
                let handle = Arc::new(session::open(&self.target, &self.options).await?);
                self.sessions_opened.fetch_add(1, Ordering::Relaxed);
                tracing::info!(node = %self.name, address = %self.target.address, "ssh session open");
                let channel_handle = Arc::clone(&handle);
                let socket = self.docker_socket.clone();
                let opener: StreamOpener = Arc::new(move || {
                    let handle = Arc::clone(&channel_handle);
                    let socket = socket.clone();
                    Box::pin(async move {
                        let channel = handle
                            .channel_open_direct_streamlocal(socket)
                            .await
                            .map_err(std::io::Error::other)?;
                        Ok(Box::new(channel.into_stream()) as BoxedIo)
                    })
                });
                (Some(handle), opener)
            }
        };
        let negotiate = transport::docker_over(opener)
            .map_err(docker_error)?
            .negotiate_version();
        let docker = tokio::time::timeout(self.options.request_timeout, negotiate)
            .await
            .map_err(|_| NodeError::RequestTimeout {
                node: self.name.clone(),
                operation: "version negotiation",
                container: String::new(),
                timeout: self.options.request_timeout,
            })?
            .map_err(docker_error)?;
        Ok(Connection { ssh, docker })
    }

    /// Opens (or reuses) the session and checks that Docker answers.
    pub async fn connect(&self) -> Result<(), NodeError> {
        self.connection().await.map(|_| ())
    }

    /// The node's Docker client, over its session. Requests made on it
    /// directly are not bounded by the request timeout: see [`Self::bounded`].
    pub async fn docker(&self) -> Result<Docker, NodeError> {
        Ok(self.connection().await?.docker)
    }

    /// The request timeout these operations are bounded by.
    pub fn request_timeout(&self) -> Duration {
        self.options.request_timeout
    }

    /// Runs `request` (Docker calls on an open connection) within `limit`.
    /// When it gets no answer in time the session is taken as dead: it is
    /// dropped, so the next call reconnects within the connect timeout and
    /// then backs off, instead of waiting again on a silent node.
    pub async fn bounded<T>(
        &self,
        operation: &'static str,
        container: &str,
        limit: Duration,
        request: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result,
            Err(_) => {
                self.drop_session().await;
                tracing::warn!(node = %self.name, operation, container, ?limit,
                    "docker request got no answer; dropped the session");
                Err(NodeError::RequestTimeout {
                    node: self.name.clone(),
                    operation,
                    container: container.to_string(),
                    timeout: limit,
                })
            }
        }
    }

    /// Forgets the open session; requests still running on it keep it until
    /// they end.
    pub(crate) async fn drop_session(&self) {
        self.state.lock().await.connection = None;
    }

    fn docker_error(
        &self,
        operation: &'static str,
        container: &str,
    ) -> impl FnOnce(bollard::errors::Error) -> NodeError + '_ {
        let container = container.to_string();
        move |source| NodeError::Docker {
            node: self.name.clone(),
            operation,
            container,
            source,
        }
    }

    /// CPU, memory and Docker version, from `docker info`.
    pub async fn facts(&self) -> Result<NodeFacts, NodeError> {
        let docker = self.docker().await?;
        let info = self
            .bounded("info", "", self.options.request_timeout, async {
                docker.info().await.map_err(self.docker_error("info", ""))
            })
            .await?;
        Ok(NodeFacts {
            cpu: CpuMillis(u64::try_from(info.ncpu.unwrap_or(0)).unwrap_or(0) * 1000),
            memory: Bytes(u64::try_from(info.mem_total.unwrap_or(0)).unwrap_or(0)),
            docker_version: info.server_version.unwrap_or_default(),
        })
    }

    /// The containers flotilla manages on this node: one list call filtered
    /// by label on the daemon, then one inspect per container (restart
    /// count, exit code and start time are not in the list), concurrently.
    /// A container whose labels do not decode is skipped with a warning.
    pub async fn list_managed(&self) -> Result<Vec<ObservedContainer>, NodeError> {
        let docker = self.docker().await?;
        self.bounded(
            "list",
            "",
            self.options.request_timeout,
            self.list_managed_on(docker),
        )
        .await
    }

    async fn list_managed_on(&self, docker: Docker) -> Result<Vec<ObservedContainer>, NodeError> {
        let filters = HashMap::from([("label", vec![format!("{MANAGED_LABEL}=true")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = docker
            .list_containers(Some(options))
            .await
            .map_err(self.docker_error("list", ""))?;
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected = futures_util::stream::iter(ids)
            .map(|id| {
                let docker = docker.clone();
                async move {
                    let result = docker
                        .inspect_container(&id, None::<InspectContainerOptions>)
                        .await;
                    (id, result)
                }
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await;
        let mut observed = Vec::new();
        for (id, result) in inspected {
            let inspect = match result {
                Ok(inspect) => inspect,
                // Removed between the list and the inspect.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => continue,
                Err(source) => return Err(self.docker_error("inspect", &id)(source)),
            };
            match observed_container(&inspect) {
                Ok(container) => observed.push(container),
                Err(reason) => {
                    tracing::warn!(node = %self.name, container = %id, %reason, "skipping a managed container")
                }
            }
        }
        observed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(observed)
    }

    /// Creates the container; returns its id. Creating a name that exists
    /// with the same labels is a no-op returning the existing id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, NodeError> {
        let docker = self.docker().await?;
        self.bounded(
            "create",
            &spec.name,
            self.options.request_timeout,
            self.create_on(docker, spec),
        )
        .await
    }

    async fn create_on(&self, docker: Docker, spec: &ContainerSpec) -> Result<String, NodeError> {
        let body = spec.to_docker();
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        match docker.create_container(Some(options), body).await {
            Ok(response) => Ok(response.id),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                let existing = docker
                    .inspect_container(&spec.name, None::<InspectContainerOptions>)
                    .await
                    .map_err(self.docker_error("inspect", &spec.name))?;
                let labels = existing
                    .config
                    .and_then(|config| config.labels)
                    .unwrap_or_default();
                let same = spec
                    .labels
                    .iter()
                    .all(|(key, value)| labels.get(key) == Some(value));
                if same {
                    Ok(existing.id.unwrap_or_default())
                } else {
                    Err(NodeError::NameInUse {
                        node: self.name.clone(),
                        container: spec.name.clone(),
                    })
                }
            }
            Err(source) => Err(self.docker_error("create", &spec.name)(source)),
        }
    }

    /// Starts the container; starting a running one is a no-op.
    pub async fn start(&self, container: &str) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let started = self.bounded("start", container, self.options.request_timeout, async {
            Ok(docker
                .start_container(
                    container,
                    None::<bollard::query_parameters::StartContainerOptions>,
                )
                .await)
        });
        match started.await? {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(source) => Err(self.docker_error("start", container)(source)),
        }
    }

    /// Stops the container: SIGTERM, then SIGKILL after `grace`. Stopping a
    /// stopped or missing container is a no-op.
    pub async fn stop(&self, container: &str, grace: Duration) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let seconds = grace_seconds(grace);
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        let limit =
            self.options.request_timeout + Duration::from_secs(seconds.unsigned_abs().into());
        let stopped = self.bounded("stop", container, limit, async {
            Ok(docker.stop_container(container, Some(options)).await)
        });
        match stopped.await? {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(source) => Err(self.docker_error("stop", container)(source)),
        }
    }

    /// Removes the container, killing it if it runs; a missing one is fine.
    pub async fn remove(&self, container: &str) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        let removed = self.bounded("remove", container, self.options.request_timeout, async {
            Ok(docker.remove_container(container, Some(options)).await)
        });
        match removed.await? {
            Ok(())
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(source) => Err(self.docker_error("remove", container)(source)),
        }
    }

    /// The last `lines` lines of the container's stdout and stderr, merged.
    pub async fn logs(&self, container: &str, lines: u32) -> Result<String, NodeError> {
        let docker = self.docker().await?;
        let tail = lines.to_string();
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let chunks: Vec<LogOutput> = self
            .bounded("logs", container, self.options.request_timeout, async {
                docker
                    .logs(container, Some(options))
                    .try_collect()
                    .await
                    .map_err(self.docker_error("logs", container))
            })
            .await?;
        let mut text = String::new();
        for chunk in chunks {
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text)
    }

    /// Runs `command` in the container and waits for it (exec probes). Not
    /// bounded by the request timeout: a command may run as long as it
    /// needs, so the caller bounds it (a probe by its timeout).
    pub async fn exec(&self, container: &str, command: &[&str]) -> Result<ExecOutput, NodeError> {
        let docker = self.docker().await?;
        let exec = docker
            .create_exec(
                container,
                CreateExecOptions {
                    cmd: Some(command.iter().map(|s| s.to_string()).collect()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(self.docker_error("exec", container))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        match docker
            .start_exec(&exec.id, None)
            .await
            .map_err(self.docker_error("exec", container))?
        {
            StartExecResults::Attached { mut output, .. } => {
                while let Some(chunk) = output.next().await {
                    match chunk.map_err(self.docker_error("exec", container))? {
                        LogOutput::StdErr { message } => {
                            stderr.push_str(&String::from_utf8_lossy(&message))
                        }
                        other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
                    }
                }
            }
            StartExecResults::Detached => {}
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(self.docker_error("exec", container))?;
        Ok(ExecOutput {
            exit_code: inspect.exit_code.unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    /// A TCP stream to `host:port` as seen from the node (readiness probes):
    /// a `direct-tcpip` channel of the session, or a plain connect for a
    /// local node.
    pub async fn open_tcp(&self, host: &str, port: u16) -> Result<BoxedIo, NodeError> {
        let target = format!("{host}:{port}");
        let connection = self.connection().await?;
        match connection.ssh {
            Some(ssh) => {
                let channel = self
                    .bounded("channel open", "", self.options.request_timeout, async {
                        ssh.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
                            .await
                            .map_err(|source| NodeError::Channel {
                                node: self.name.clone(),
                                target,
                                source: Box::new(source),
                            })
                    })
                    .await?;
                Ok(Box::new(channel.into_stream()))
            }
            None => {
                let stream =
                    tokio::net::TcpStream::connect((host, port))
                        .await
                        .map_err(|source| NodeError::LocalConnect {
                            node: self.name.clone(),
                            target,
                            source,
                        })?;
                Ok(Box::new(stream))
            }
        }
    }

    /// `image` when it is a valid Docker reference: bollard puts it in the
    /// API path as it is (`/images/{image}/json`), so anything else must
    /// never reach it, whoever validated it before.
    fn checked_image<'a>(&self, image: &'a str) -> Result<&'a str, NodeError> {
        crate::manifest::image_reference::check(image).map_err(|reason| {
            NodeError::InvalidImage {
                node: self.name.clone(),
                image: image.to_string(),
                reason,
            }
        })?;
        Ok(image)
    }

    /// Whether the node's Docker has `image`.
    pub async fn has_image(&self, image: &str) -> Result<bool, NodeError> {
        let image = self.checked_image(image)?;
        let docker = self.docker().await?;
        let inspected = self.bounded("image inspect", "", self.options.request_timeout, async {
            Ok(docker.inspect_image(image).await)
        });
        match inspected.await? {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(self.docker_error("image inspect", "")(source)),
        }
    }

    /// Removes an image (forced, so tags in use go too); a missing one is fine.
    pub async fn remove_image(&self, image: &str) -> Result<(), NodeError> {
        let image = self.checked_image(image)?;
        let docker = self.docker().await?;
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
            .force(true)
            .build();
        let removed = self.bounded("image remove", "", self.options.request_timeout, async {
            Ok(docker.remove_image(image, Some(options), None).await)
        });
        match removed.await? {
            Ok(_)
            | Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(source) => Err(self.docker_error("image remove", "")(source)),
        }
    }

    /// Makes `image` present according to the pull policy: `Always` pulls,
    /// `IfNotPresent` pulls when missing, `Never` fails when missing.
    pub async fn ensure_image(&self, image: &str, policy: PullPolicy) -> Result<(), NodeError> {
        match policy {
            PullPolicy::Never => {
                if self.has_image(image).await? {
                    Ok(())
                } else {
                    Err(NodeError::ImageMissing {
                        node: self.name.clone(),
                        image: image.to_string(),
                    })
                }
            }
            PullPolicy::IfNotPresent if self.has_image(image).await? => Ok(()),
            PullPolicy::IfNotPresent | PullPolicy::Always => self.pull(image).await,
        }
    }

    async fn pull(&self, image: &str) -> Result<(), NodeError> {
        let image = self.checked_image(image)?;
        let docker = self.docker().await?;
        let mut options = CreateImageOptionsBuilder::new().from_image(image);
        if let Some(tag) = super::spec::default_tag(image) {
            options = options.tag(tag);
        }
        let options = options.build();
        docker
            .create_image(Some(options), None, None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(self.docker_error("pull", ""))?;
        Ok(())
    }

    /// Ships `image` from another Docker (the leader's) into this node's,
    /// streaming `docker save` into `docker load` without holding it.
    pub async fn ship_image_from(&self, source: &Docker, image: &str) -> Result<(), NodeError> {
        let image = self.checked_image(image)?;
        let saved = source.export_image(image).map_err(std::io::Error::other);
        self.load_image(saved).await
    }

    /// Loads a `docker save` archive file into this node's Docker, streamed.
    pub async fn ship_image_archive(&self, path: &Path) -> Result<(), NodeError> {
        let archive_error = |source| NodeError::Archive {
            node: self.name.clone(),
            path: path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(archive_error)?;
        let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buffer = vec![0u8; 256 * 1024];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buffer.truncate(read);
            Ok(Some((bytes::Bytes::from(buffer), file)))
        });
        self.load_image(chunks).await
    }

    async fn load_image<S>(&self, archive: S) -> Result<(), NodeError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let docker = self.docker().await?;
        let options = ImportImageOptionsBuilder::new().quiet(true).build();
        docker
            .import_image_stream(options, archive, None)
            .try_collect::<Vec<_>>()
            .await
            .map_err(self.docker_error("load", ""))?;
        Ok(())
    }
}

/// Docker's stop timeout is whole seconds: a grace period is rounded up,
/// so 500 ms gives the process a second to exit, never an immediate kill.
pub(crate) fn grace_seconds(grace: Duration) -> i32 {
    let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

/// Decodes an inspected container into the observed model.
fn observed_container(
    inspect: &bollard::models::ContainerInspectResponse,
) -> Result<ObservedContainer, String> {
    let config = inspect.config.as_ref().ok_or("no config")?;
    let labels = config.labels.clone().unwrap_or_default();
    let labels = ManagedLabels::from_docker_labels(&labels).map_err(|e| e.to_string())?;
    let state = inspect.state.as_ref().ok_or("no state")?;
    let container_state = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::EXITED) => ContainerState::Exited {
            code: state.exit_code.unwrap_or(0),
        },
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        other => return Err(format!("unknown state {other:?}")),
    };
    let health = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .and_then(|status| match status {
            HealthStatusEnum::STARTING => Some(Health::Starting),
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            _ => None,
        });
    Ok(ObservedContainer {
        id: inspect.id.clone().unwrap_or_default(),
        name: inspect
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels,
        state: container_state,
        health,
        restart_count: u32::try_from(inspect.restart_count.unwrap_or(0)).unwrap_or(0),
        started_at: state.started_at.as_deref().and_then(parse_docker_time),
        finished_at: state.finished_at.as_deref().and_then(parse_docker_time),
        image: config.image.clone().unwrap_or_default(),
        ports: published_ports(inspect),
        probe_ready: None,
        ready_since: None,
    })
}

/// The ports an inspected container publishes on its node: Docker's live
/// bindings (`NetworkSettings.Ports`) while it runs, else the bindings its
/// host config asks for. Sorted, without duplicates; a port exposed but not
/// bound is not published.
pub fn published_ports(inspect: &bollard::models::ContainerInspectResponse) -> Vec<PublishedPort> {
    let live = inspect
        .network_settings
        .as_ref()
        .and_then(|settings| settings.ports.as_ref())
        .map(decode_port_map)
        .unwrap_or_default();
    let mut ports = if live.is_empty() {
        inspect
            .host_config
            .as_ref()
            .and_then(|host| host.port_bindings.as_ref())
            .map(decode_port_map)
            .unwrap_or_default()
    } else {
        live
    };
    ports.sort();
    ports.dedup();
    ports
}

/// `{"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}`; entries
/// without a numeric host port (not bound, or left for Docker to pick and
/// not picked yet) are left out.
fn decode_port_map(map: &bollard::models::PortMap) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    for (key, bindings) in map {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        let protocol = match protocol {
            "udp" => Protocol::UDP,
            "sctp" => Protocol::SCTP,
            _ => Protocol::TCP,
        };
        for binding in bindings.iter().flatten() {
            let Some(host_port) = binding
                .host_port
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            ports.push(PublishedPort {
                container_port,
                protocol,
                host_ip: binding.host_ip.clone().unwrap_or_default(),
                host_port,
            });
        }
    }
    ports
}

/// Docker's RFC 3339 timestamps (`2026-11-23T01:07:58.768455802Z`); its
/// zero time (`0001-01-01T00:00:00Z`) and anything before 1970 is `None`.
fn parse_docker_time(text: &str) -> Option<SystemTime> {
    let (date, rest) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (clock, offset_seconds) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, 0)
    } else {
        let split = rest.rfind(['+', '-'])?;
        let (clock, offset) = rest.split_at(split);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        (
            clock,
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms_parts = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms_parts.next()??, hms_parts.next()??, hms_parts.next()??);
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(9).collect();
        let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
        digits.parse::<u32>().ok()? * scale
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Every node's client, keyed by node name.
pub struct NodePool {
    nodes: BTreeMap<String, Arc<NodeClient>>,
}

impl NodePool {
    pub fn new(nodes: &[Node], options: &SshOptions) -> Self {
        NodePool {
            nodes: nodes
                .iter()
                .map(|node| {
                    (
                        node.meta.name.clone(),
                        Arc::new(NodeClient::new(node, options.clone())),
                    )
                })
                .collect(),
        }
    }

    pub fn get(&self, node: &str) -> Result<Arc<NodeClient>, NodeError> {
        self.nodes
            .get(node)
            .cloned()
            .ok_or_else(|| NodeError::UnknownNode {
                node: node.to_string(),
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<NodeClient>> {
        self.nodes.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ports_prefer_live_bindings_then_the_host_config() {
        use bollard::models::{
            ContainerInspectResponse, HostConfig, NetworkSettings, PortBinding, PortMap,
        };
        let binding = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.to_string()),
            host_port: Some(port.to_string()),
        };
        let live: PortMap = HashMap::from([
            (
                "8080/tcp".to_string(),
                Some(vec![binding("::", "18080"), binding("0.0.0.0", "18080")]),
            ),
            (
                "53/udp".to_string(),
                Some(vec![binding("10.0.0.1", "5353")]),
            ),
            // Exposed, not published.
            ("9000/tcp".to_string(), None),
        ]);
        let requested: PortMap = HashMap::from([(
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: None,
                host_port: Some("18080".into()),
            }]),
        )]);
        let port = |container_port, protocol, host_ip: &str, host_port| PublishedPort {
            container_port,
            protocol,
            host_ip: host_ip.to_string(),
            host_port,
        };
        let running = ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                ports: Some(live),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings: Some(requested.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            published_ports(&running),
            [
                port(53, Protocol::UDP, "10.0.0.1", 5353),
                port(8080, Protocol::TCP, "0.0.0.0", 18080),
                port(8080, Protocol::TCP, "::", 18080),
            ]
        );
        assert_eq!(
            published_ports(&running)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "10.0.0.1:5353->53/udp",
                "0.0.0.0:18080->8080/tcp",
                "[::]:18080->8080/tcp"
            ]
        );
        let stopped = ContainerInspectResponse {
            host_config: Some(HostConfig {
                port_bindings: Some(requested),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            published_ports(&stopped),
            [port(8080, Protocol::TCP, "", 18080)]
        );
        assert_eq!(published_ports(&ContainerInspectResponse::default()), []);
    }

    #[test]
    fn a_grace_period_is_rounded_up_to_whole_seconds() {
        for (grace, seconds) in [
            (Duration::ZERO, 0),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(500), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(30), 30),
            (Duration::from_secs(u64::MAX), i32::MAX),
        ] {
            assert_eq!(grace_seconds(grace), seconds, "{grace:?}");
        }
    }

    #[test]
    fn docker_times() {
        let check = |text: &str, expected: Option<(u64, u32)>| {
            assert_eq!(
                parse_docker_time(text),
                expected.map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
                "{text}"
            );
        };
        check("1970-01-01T00:00:00Z", Some((0, 0)));
        check(
            "2026-11-23T01:07:58.768455802Z",
            Some((1_795_396_078, 768_455_802)),
        );
        check(
            "2026-11-23T02:07:58.5+01:00",
            Some((1_795_396_078, 500_000_000)),
        );
        check("2000-02-29T12:00:00Z", Some((951_825_600, 0)));
        check("0001-01-01T00:00:00Z", None);
        check("garbage", None);
    }
}
