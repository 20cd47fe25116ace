//! One node's connection (opened on demand, reused, reopened with back-off)
//! and the Docker operations carried out on it, the same for a node reached
//! over SSH and one whose socket is on this machine. Every operation is
//! bounded: by the request timeout when it should answer at once, by the
//! grace period on top of it for a stop or restart, by a progress deadline
//! for images, and by the caller for an exec (a probe's timeout).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::ExecConfig;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptions,
    RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::decode::observed_container;
use super::image::{load_with_deadline, pull_with_deadline};
use super::ops::{NodeObservation, ProbeTarget};
use super::registry_auth::RegistryAuth;
use super::session::{self, Backoff, SshHandle, SshOptions, Target};
use super::spec::{default_tag, ContainerFileError, ReplicaContainer};
use super::transport::{self, BoxedIo, StreamOpener};
use super::NodeError;
use crate::cluster::{NodeFacts, MANAGED_LABEL};
use crate::manifest::model::{Node, Transport};
use crate::manifest::quantity::{Bytes, CpuMillis};

/// Docker's stop timeout for a container created without one.
const DOCKER_STOP_SECONDS: u64 = 10;

/// The most of a container's last log lines kept while reading them: far
/// more than the excerpt committed needs, and a bound whatever it printed.
const LOG_READ_BYTES: usize = 64 * 1024;

/// How many containers are inspected at once while observing a node.
const INSPECTS_AT_ONCE: usize = 8;

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
pub(crate) struct NodeClient {
    pub(super) name: String,
    target: Target,
    transport: Transport,
    docker_socket: String,
    options: SshOptions,
    state: Mutex<ConnectionState>,
    sessions_opened: AtomicU64,
}

impl NodeClient {
    pub(crate) fn new(node: &Node, options: SshOptions) -> Self {
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

    /// How long a request that should answer at once may take.
    pub(super) fn request_timeout(&self) -> Duration {
        self.options.request_timeout
    }

    /// How many SSH sessions (handshakes) this client has opened so far.
    pub(crate) fn sessions_opened(&self) -> u64 {
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
        const NEGOTIATION: &str = "docker version negotiation";
        let (ssh, docker) = match self.transport {
            Transport::Local => (
                None,
                transport::docker_on_socket(&self.docker_socket)
                    .map_err(self.docker_error(NEGOTIATION))?,
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
                (
                    Some(handle),
                    transport::docker_over_session(opener)
                        .map_err(self.docker_error(NEGOTIATION))?,
                )
            }
        };
        let negotiate = docker.negotiate_version();
        let docker = tokio::time::timeout(self.options.request_timeout, negotiate)
            .await
            .map_err(|_| NodeError::RequestTimeout {
                node: self.name.clone(),
                operation: NEGOTIATION.to_string(),
                timeout: self.options.request_timeout,
            })?
            .map_err(self.docker_error(NEGOTIATION))?;
        Ok(Connection { ssh, docker })
    }

    pub(super) async fn docker(&self) -> Result<Docker, NodeError> {
        Ok(self.connection().await?.docker)
    }

    /// Runs `request` (Docker calls on an open connection) within `limit`.
    /// When it gets no answer in time the session is taken as dead: it is
    /// dropped, so the next call reconnects within the connect timeout and
    /// then backs off, instead of waiting again on a silent node.
    pub(super) async fn bounded<T>(
        &self,
        operation: &str,
        limit: Duration,
        request: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result,
            Err(_) => {
                // Forgotten; requests still running on it keep it until they end.
                self.state.lock().await.connection = None;
                tracing::warn!(node = %self.name, operation, ?limit,
                    "docker request got no answer; dropped the session");
                Err(NodeError::RequestTimeout {
                    node: self.name.clone(),
                    operation: operation.to_string(),
                    timeout: limit,
                })
            }
        }
    }

    pub(super) fn docker_error(
        &self,
        operation: &str,
    ) -> impl FnOnce(bollard::errors::Error) -> NodeError + '_ {
        let operation = operation.to_string();
        move |source| NodeError::Docker {
            node: self.name.clone(),
            operation,
            source,
        }
    }

    /// The node's facts (`docker info`) and the containers flotilla manages
    /// on it: one list call filtered by label on the daemon, then one
    /// inspect per container (restart count, exit code and start time are
    /// not in the list), a few at a time; all within one request timeout.
    /// A container whose labels do not decode is skipped with a warning.
    pub(crate) async fn observe(&self) -> Result<NodeObservation, NodeError> {
        let docker = self.docker().await?;
        self.bounded(
            "observe",
            self.options.request_timeout,
            self.observe_on(docker),
        )
        .await
    }

    async fn observe_on(&self, docker: Docker) -> Result<NodeObservation, NodeError> {
        let info = docker
            .info()
            .await
            .map_err(self.docker_error("docker info"))?;
        let facts = NodeFacts {
            cpu: CpuMillis(u64::try_from(info.ncpu.unwrap_or(0)).unwrap_or(0) * 1000),
            memory: Bytes(u64::try_from(info.mem_total.unwrap_or(0)).unwrap_or(0)),
            docker_version: info.server_version.unwrap_or_default(),
        };
        let filters = HashMap::from([("label", vec![format!("{MANAGED_LABEL}=true")])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = docker
            .list_containers(Some(options))
            .await
            .map_err(self.docker_error("list containers"))?;
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspected = futures_util::stream::iter(ids)
            .map(|id| {
                let docker = docker.clone();
                async move {
                    let result = docker.inspect_container(&id, None).await;
                    (id, result)
                }
            })
            .buffered(INSPECTS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut containers = Vec::new();
        for (id, result) in inspected {
            let inspect = match result {
                Ok(inspect) => inspect,
                // Removed between the list and the inspect.
                Err(error) if status_code(&error) == Some(404) => continue,
                Err(error) => return Err(self.docker_error(&format!("inspect {id}"))(error)),
            };
            match observed_container(&inspect) {
                Ok(container) => containers.push(container),
                Err(reason) => {
                    tracing::warn!(node = %self.name, container = %id, %reason,
                        "skipping a container labelled managed that cannot be observed")
                }
            }
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(NodeObservation {
            facts,
            containers,
            volumes: self.list_volumes(&docker).await?,
        })
    }

    /// Creates the container and places its files in it. A container of
    /// that name that carries every label of `container` is the one asked
    /// for, created before: a no-op (its files, if its creation was cut
    /// before they were placed, are checked by [`Self::start`]). One that
    /// does not (made by hand, or of another revision) is never adopted:
    /// [`NodeError::NameInUse`] names the first label that differs.
    pub(crate) async fn create(&self, container: &ReplicaContainer) -> Result<(), NodeError> {
        // Every archive is made first: a file that cannot be placed creates
        // nothing.
        let modified = std::time::SystemTime::now();
        let archives = container
            .files
            .iter()
            .map(|file| Ok((file.path.as_str(), file.archive(modified)?)))
            .collect::<Result<Vec<_>, ContainerFileError>>()
            .map_err(|source| NodeError::File {
                node: self.name.clone(),
                container: container.name.clone(),
                source,
            })?;
        let docker = self.docker().await?;
        // Volumes made, subPaths and hostPath files in place, before the
        // container exists (each step bounded on its own).
        let (mounts, binds, host_checks) = self.prepare_mounts(&docker, container).await?;
        let mut body = container.to_docker();
        if let Some(host_config) = body.host_config.as_mut() {
            host_config.mounts = (!mounts.is_empty()).then_some(mounts);
            host_config.binds = (!binds.is_empty()).then_some(binds);
        }
        let operation = format!("create {}", container.name);
        let created = self
            .bounded(&operation, self.options.request_timeout, async {
                let options = CreateContainerOptionsBuilder::new()
                    .name(&container.name)
                    .build();
                match docker.create_container(Some(options), body).await {
                    Ok(_) => Ok(true),
                    Err(error) if status_code(&error) == Some(409) => {
                        let existing = docker
                            .inspect_container(&container.name, None)
                            .await
                            .map_err(self.docker_error(&format!("inspect {}", container.name)))?;
                        let labels = existing
                            .config
                            .and_then(|config| config.labels)
                            .unwrap_or_default();
                        match mismatched_label(&container.labels, &labels) {
                            None => Ok(false),
                            Some(label) => Err(NodeError::NameInUse {
                                node: self.name.clone(),
                                container: container.name.clone(),
                                label: label.to_string(),
                            }),
                        }
                    }
                    Err(error) => Err(self
                        .host_path_missing(container, &error)
                        .unwrap_or_else(|| self.docker_error(&operation)(error))),
                }
            })
            .await?;
        if created {
            self.check_host_paths(&docker, &container.name, &host_checks)
                .await?;
            self.place_files(&docker, &container.name, archives).await?;
        }
        Ok(())
    }

    /// Starts the container; starting a running one is a no-op. A container
    /// never started that was created with files ([`super::spec::FILES_LABEL`]) starts
    /// only once each is in place with its mode; one lacking a file (its
    /// creation was cut before the file was placed: the leader stopped, the
    /// node went silent) is removed instead, to be created again.
    pub(crate) async fn start(&self, container: &str) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let operation = format!("start {container}");
        let missing = self
            .bounded(&operation, self.options.request_timeout, async {
                self.missing_file(&docker, container).await
            })
            .await?;
        if let Some(path) = missing {
            let cause = NodeError::FileMissing {
                node: self.name.clone(),
                container: container.to_string(),
                path: path.clone(),
                cleanup: String::new(),
            };
            let cleanup = self.remove_after_files_failed(container, &cause).await;
            return Err(NodeError::FileMissing {
                node: self.name.clone(),
                container: container.to_string(),
                path,
                cleanup,
            });
        }
        self.bounded(&operation, self.options.request_timeout, async {
            match docker.start_container(container, None).await {
                Ok(()) => Ok(()),
                Err(error) if status_code(&error) == Some(304) => Ok(()),
                Err(error) => Err(self.docker_error(&operation)(error)),
            }
        })
        .await
    }

    /// Stops the container: SIGTERM, then SIGKILL after `grace`, or after
    /// the container's own stop timeout when `None` (read first, so the stop
    /// is bounded by it). Stopping a stopped or missing container is a no-op.
    pub(crate) async fn stop(
        &self,
        container: &str,
        grace: Option<Duration>,
    ) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let operation = format!("stop {container}");
        let seconds = grace.map(grace_seconds);
        let options = seconds.map(|t| StopContainerOptionsBuilder::new().t(t).build());
        let grace = match seconds {
            Some(t) => u64::from(t.unsigned_abs()),
            None => {
                let inspected = self
                    .bounded(&operation, self.options.request_timeout, async {
                        Ok(docker.inspect_container(container, None).await)
                    })
                    .await?;
                match inspected {
                    Ok(inspection) => inspection
                        .config
                        .and_then(|config| config.stop_timeout)
                        .and_then(|t| u64::try_from(t).ok())
                        .unwrap_or(DOCKER_STOP_SECONDS),
                    Err(error) if status_code(&error) == Some(404) => return Ok(()),
                    Err(error) => return Err(self.docker_error(&operation)(error)),
                }
            }
        };
        let limit = self.options.request_timeout + Duration::from_secs(grace);
        self.bounded(&operation, limit, async {
            match docker.stop_container(container, options).await {
                Ok(()) => Ok(()),
                Err(error) if matches!(status_code(&error), Some(304 | 404)) => Ok(()),
                Err(error) => Err(self.docker_error(&operation)(error)),
            }
        })
        .await
    }

    /// Restarts the container, giving its process `grace` to stop.
    pub(crate) async fn restart(&self, container: &str, grace: Duration) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let operation = format!("restart {container}");
        let t = grace_seconds(grace);
        let limit = self.options.request_timeout + Duration::from_secs(t.unsigned_abs().into());
        self.bounded(&operation, limit, async {
            docker
                .restart_container(
                    container,
                    Some(RestartContainerOptionsBuilder::new().t(t).build()),
                )
                .await
                .map_err(self.docker_error(&operation))
        })
        .await
    }

    /// Removes the container, killing it if it runs; a missing one is fine.
    pub(crate) async fn remove(&self, container: &str) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let operation = format!("remove {container}");
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        self.bounded(&operation, self.options.request_timeout, async {
            match docker.remove_container(container, Some(options)).await {
                Ok(()) => Ok(()),
                Err(error) if status_code(&error) == Some(404) => Ok(()),
                Err(error) => Err(self.docker_error(&operation)(error)),
            }
        })
        .await
    }

    /// The last `lines` lines the container printed (stdout and stderr),
    /// at most [`LOG_READ_BYTES`] of them.
    pub(crate) async fn logs(&self, container: &str, lines: u32) -> Result<String, NodeError> {
        let docker = self.docker().await?;
        let operation = format!("logs of {container}");
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        self.bounded(&operation, self.options.request_timeout, async {
            let mut stream = docker.logs(container, Some(options));
            let mut text = String::new();
            while let Some(item) = stream.next().await {
                let item = item.map_err(self.docker_error(&operation))?;
                text.push_str(&String::from_utf8_lossy(&item.into_bytes()));
                // The last lines are what is wanted; a container that
                // printed a line of a gigabyte costs no more than this.
                if text.len() > LOG_READ_BYTES {
                    let mut cut = text.len() - LOG_READ_BYTES;
                    while !text.is_char_boundary(cut) {
                        cut += 1;
                    }
                    text.drain(..cut);
                }
            }
            Ok(text)
        })
        .await
    }

    /// Runs `command` in the container and waits for it: its exit code.
    /// Not bounded here: a command may run as long as it needs, so the
    /// caller bounds it (an exec probe by its timeout).
    pub(crate) async fn exec(&self, container: &str, command: &[String]) -> Result<i64, NodeError> {
        let docker = self.docker().await?;
        let operation = format!("exec in {container}");
        let exec = docker
            .create_exec(
                container,
                ExecConfig {
                    cmd: Some(command.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..ExecConfig::default()
                },
            )
            .await
            .map_err(self.docker_error(&operation))?;
        match docker
            .start_exec(&exec.id, None)
            .await
            .map_err(self.docker_error(&operation))?
        {
            bollard::exec::StartExecResults::Attached { mut output, .. } => {
                while output.next().await.is_some() {}
            }
            bollard::exec::StartExecResults::Detached => {}
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(self.docker_error(&operation))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    /// A TCP stream to a probe's target as the node sees it, and where it
    /// goes (for messages). Over SSH: a `direct-tcpip` channel to the
    /// container's own address on the node's bridge, else (host networking)
    /// to the published port on the node's loopback. A local node's
    /// containers are not on this machine's bridge: the published port on
    /// the node's address.
    pub(crate) async fn dial(&self, target: &ProbeTarget) -> Result<(BoxedIo, String), NodeError> {
        let connection = self.connection().await?;
        let (host, port) = match connection.ssh {
            Some(_) => self.container_address(&connection.docker, target).await?,
            None => {
                let port = target
                    .host_port
                    .ok_or_else(|| NodeError::PortNotPublished {
                        node: self.name.clone(),
                        container: target.container.clone(),
                        port: target.container_port,
                    })?;
                (self.target.address.clone(), port)
            }
        };
        let io = self.open_tcp(connection.ssh, &host, port).await?;
        Ok((io, format!("{host}:{port}")))
    }

    async fn container_address(
        &self,
        docker: &Docker,
        target: &ProbeTarget,
    ) -> Result<(String, u16), NodeError> {
        let operation = format!("inspect {}", target.container);
        let inspection = self
            .bounded(&operation, self.options.request_timeout, async {
                docker
                    .inspect_container(&target.container, None)
                    .await
                    .map_err(self.docker_error(&operation))
            })
            .await?;
        // A container of a pod with a sandbox has no address of its own:
        // the pod's is its sandbox's, whose namespace it joined.
        let owner = inspection
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            .and_then(|mode| mode.strip_prefix("container:"))
            .map(str::to_string);
        let inspection = match owner {
            Some(owner) => {
                let operation = format!("inspect {owner}");
                self.bounded(&operation, self.options.request_timeout, async {
                    docker
                        .inspect_container(&owner, None)
                        .await
                        .map_err(self.docker_error(&operation))
                })
                .await?
            }
            None => inspection,
        };
        let settings = inspection.network_settings.unwrap_or_default();
        let address = settings.networks.and_then(|networks| {
            networks
                .into_values()
                .filter_map(|n| n.ip_address)
                .find(|ip| !ip.is_empty())
        });
        match (address, target.host_port) {
            (Some(ip), _) => Ok((ip, target.container_port)),
            (None, Some(port)) => Ok(("127.0.0.1".to_string(), port)),
            (None, None) => Err(NodeError::NoAddress {
                node: self.name.clone(),
                container: target.container.clone(),
                port: target.container_port,
            }),
        }
    }

    async fn open_tcp(
        &self,
        ssh: Option<Arc<SshHandle>>,
        host: &str,
        port: u16,
    ) -> Result<BoxedIo, NodeError> {
        let target = format!("{host}:{port}");
        match ssh {
            Some(ssh) => {
                let operation = format!("open a channel to {target}");
                let channel = self
                    .bounded(&operation, self.options.request_timeout, async {
                        ssh.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0)
                            .await
                            .map_err(|source| NodeError::Channel {
                                node: self.name.clone(),
                                target: target.clone(),
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
    /// never reach it, whoever validated it before (an old commit, a test).
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
    pub(crate) async fn has_image(&self, image: &str) -> Result<bool, NodeError> {
        let image = self.checked_image(image)?;
        let docker = self.docker().await?;
        let operation = format!("inspect image {image}");
        self.bounded(&operation, self.options.request_timeout, async {
            match docker.inspect_image(image).await {
                Ok(_) => Ok(true),
                Err(error) if status_code(&error) == Some(404) => Ok(false),
                Err(error) => Err(self.docker_error(&operation)(error)),
            }
        })
        .await
    }

    /// Removes an unused image (never forced: Docker keeps an image any
    /// container, managed or not, still uses). Whether it was removed.
    pub(crate) async fn remove_image(&self, image: &str) -> Result<bool, NodeError> {
        let image = self.checked_image(image)?;
        let docker = self.docker().await?;
        let operation = format!("remove image {image}");
        self.bounded(&operation, self.options.request_timeout, async {
            match docker
                .remove_image(image, None::<RemoveImageOptions>, None)
                .await
            {
                Ok(_) => Ok(true),
                // Gone already, or still used by a container.
                Err(error) if matches!(status_code(&error), Some(404 | 409)) => Ok(false),
                Err(error) => Err(self.docker_error(&operation)(error)),
            }
        })
        .await
    }

    /// Pulls `image` from its registry through the node's Docker, with
    /// `auth` when given, given up after `deadline` without progress.
    pub(crate) async fn pull_image(
        &self,
        image: &str,
        auth: Option<&RegistryAuth>,
        deadline: Duration,
    ) -> Result<(), NodeError> {
        let image = self.checked_image(image)?;
        let docker = self.docker().await?;
        let mut options = CreateImageOptionsBuilder::new().from_image(image);
        if let Some(tag) = default_tag(image) {
            options = options.tag(tag);
        }
        pull_with_deadline(&docker, &self.name, image, options.build(), auth, deadline).await
    }

    /// Ships `image` from the Docker at `source_socket` (the leader's) into
    /// this node's, streaming `docker save` into `docker load` without
    /// holding it, given up when the archive stops flowing for `deadline`.
    pub(crate) async fn ship_image_from(
        &self,
        source_socket: &str,
        image: &str,
        deadline: Duration,
    ) -> Result<(), NodeError> {
        let image = self.checked_image(image)?;
        let source_error = |reason: String| NodeError::LeaderDocker {
            node: self.name.clone(),
            socket: source_socket.to_string(),
            image: image.to_string(),
            reason,
        };
        let negotiate = transport::docker_on_socket(source_socket)
            .map_err(|e| source_error(e.to_string()))?
            .negotiate_version();
        let source = tokio::time::timeout(self.options.request_timeout, negotiate)
            .await
            .map_err(|_| {
                source_error(format!(
                    "no answer within {:?}",
                    self.options.request_timeout
                ))
            })?
            .map_err(|e| source_error(e.to_string()))?;
        // Asked first: a missing image is then said as such, instead of as
        // the load that its empty archive would break.
        match source.inspect_image(image).await {
            Ok(_) => {}
            Err(error) if status_code(&error) == Some(404) => {
                return Err(NodeError::NotOnLeader {
                    node: self.name.clone(),
                    image: image.to_string(),
                })
            }
            Err(error) => return Err(source_error(error.to_string())),
        }
        let docker = self.docker().await?;
        let archive = source.export_image(image);
        load_with_deadline(&docker, &self.name, image, archive, deadline).await
    }
}

pub(super) fn status_code(error: &bollard::errors::Error) -> Option<u16> {
    match error {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The first label `wanted` has that `existing` lacks or holds otherwise,
/// the managed label first (a hand-made container lacks it).
fn mismatched_label<'a>(
    wanted: &'a HashMap<String, String>,
    existing: &HashMap<String, String>,
) -> Option<&'a str> {
    let mut keys: Vec<&String> = wanted.keys().collect();
    keys.sort_by_key(|key| (key.as_str() != MANAGED_LABEL, key.as_str()));
    keys.into_iter()
        .find(|key| existing.get(*key) != wanted.get(*key))
        .map(String::as_str)
}

/// Docker's stop timeout is whole seconds: a grace period is rounded up,
/// so 500 ms gives the process a second to exit, never an immediate kill.
fn grace_seconds(grace: Duration) -> i32 {
    let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    i32::try_from(seconds).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_name_in_use_is_named_by_the_first_label_that_differs() {
        let wanted = HashMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            ("dev.flotilla.commit".to_string(), "c0ffee".to_string()),
            ("dev.flotilla.name".to_string(), "web".to_string()),
        ]);
        let mut existing = wanted.clone();
        assert_eq!(mismatched_label(&wanted, &existing), None);
        existing.insert("extra".into(), "is fine".into());
        assert_eq!(mismatched_label(&wanted, &existing), None);
        existing.insert("dev.flotilla.name".into(), "other".into());
        assert_eq!(
            mismatched_label(&wanted, &existing),
            Some("dev.flotilla.name")
        );
        assert_eq!(
            mismatched_label(&wanted, &HashMap::new()),
            Some(MANAGED_LABEL),
            "a hand-made container is named by the managed label"
        );
    }
}
