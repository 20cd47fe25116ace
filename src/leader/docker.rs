//! The node seam over Docker sockets on this machine: nodes of `transport:
//! local`, whose `dockerSocket` the leader opens directly (a single-machine
//! cluster, or testbed nodes whose sockets are on the leader's file system).
//! Network probes connect from the leader to the node's address.
//!
//! Nodes reached over SSH go through the `node` module's pool instead; this
//! one needs no SSH and keeps no state but one Docker client per node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ExecConfig, HealthStatusEnum, HostConfig,
    PortBinding as DockerPortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RestartContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

use super::nodes::{NodeObservation, NodeOpError, NodeOps, ProbeTarget};
use super::spec::ReplicaContainer;
use crate::cluster::{
    ContainerState, Health, ManagedLabels, NodeFacts, ObservedContainer, MANAGED_LABEL,
};
use crate::manifest::model::{Node, NodeSpec, Protocol, Transport};
use crate::manifest::quantity::{Bytes as MemoryBytes, CpuMillis};
use crate::node::{BoxedIo, NodeClient, NodeError, SshOptions};

/// The leader's own Docker, the source of images shipped to nodes.
pub const LEADER_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How long an image pull or shipment may go without progress before it is
/// given up, like the kubelet's image-pull progress deadline: a stalled
/// registry or transfer must not hold the reconcile (which waits for every
/// node's actions) for ever. A slow transfer that keeps moving is not cut.
pub const IMAGE_PROGRESS_DEADLINE: Duration = Duration::from_secs(60);

/// The most of a container's last log lines kept while reading them: far
/// more than the excerpt committed needs, and a bound whatever it printed.
const LOG_READ_BYTES: usize = 64 * 1024;

/// Every node's Docker, by the node's declared transport.
#[derive(Default)]
pub struct DockerNodes {
    /// node -> how it is reached, rebuilt when its Node spec changes.
    nodes: Mutex<HashMap<String, (NodeSpec, Route)>>,
    leader_socket: Option<String>,
    ssh: SshOptions,
}

/// How one node is reached.
#[derive(Clone)]
enum Route {
    /// `transport: local`: the socket on this machine; probes dial the
    /// node's address and the container's published port.
    Local { docker: Docker, address: String },
    /// `transport: ssh`: one session, Docker over `direct-streamlocal`
    /// channels, probes over `direct-tcpip` channels to the container's own
    /// address on the node.
    Ssh(Arc<NodeClient>),
}

impl DockerNodes {
    /// `leader_socket`: where to take images from when a node lacks one
    /// (`None`: [`LEADER_DOCKER_SOCKET`]).
    pub fn new(leader_socket: Option<String>) -> Self {
        DockerNodes {
            nodes: Mutex::default(),
            leader_socket,
            ssh: SshOptions::default(),
        }
    }

    /// Reaches `transport: ssh` nodes with these options (known_hosts,
    /// trust on first use, timeouts).
    pub fn with_ssh(mut self, options: SshOptions) -> Self {
        self.ssh = options;
        self
    }

    fn route(&self, node: &str) -> Result<Route, NodeOpError> {
        let nodes = self
            .nodes
            .lock()
            .expect("client map lock is never poisoned");
        nodes
            .get(node)
            .map(|(_, route)| route.clone())
            .ok_or_else(|| error(node, "not observed yet (no Docker client)".into(), true))
    }

    async fn client(&self, node: &str) -> Result<(Docker, Route), NodeOpError> {
        let route = self.route(node)?;
        let docker = match &route {
            Route::Local { docker, .. } => docker.clone(),
            Route::Ssh(client) => client.docker().await.map_err(|e| node_error(node, e))?,
        };
        Ok((docker, route))
    }

    /// The route for `node`, made anew when its spec changed.
    async fn connect(&self, node: &Node) -> Result<(Docker, Route), NodeOpError> {
        let name = node.meta.name.as_str();
        let existing = {
            let nodes = self
                .nodes
                .lock()
                .expect("client map lock is never poisoned");
            nodes
                .get(name)
                .filter(|(spec, _)| *spec == node.spec)
                .map(|(_, route)| route.clone())
        };
        let route = match existing {
            Some(route) => route,
            None => {
                let route = match node.spec.transport {
                    Transport::Local => {
                        let socket = &node.spec.docker_socket;
                        let docker = unix_client(socket)
                            .map_err(|e| docker_error(name, &format!("docker socket {socket}"), e))?
                            .negotiate_version()
                            .await
                            .map_err(|e| {
                                docker_error(name, &format!("docker socket {socket}"), e)
                            })?;
                        Route::Local {
                            docker,
                            address: node.spec.address.clone(),
                        }
                    }
                    Transport::Ssh => Route::Ssh(Arc::new(NodeClient::new(node, self.ssh.clone()))),
                };
                self.nodes
                    .lock()
                    .expect("client map lock is never poisoned")
                    .insert(name.to_string(), (node.spec.clone(), route.clone()));
                route
            }
        };
        self.client(name).await.map(|(docker, _)| (docker, route))
    }

    /// Runs `request` within `limit`. A node that does not answer in time is
    /// reported unreachable, and its SSH session is dropped so the next call
    /// reconnects (within the connect timeout) instead of waiting again.
    async fn bounded<T>(
        &self,
        node: &str,
        what: &str,
        limit: Duration,
        request: impl std::future::Future<Output = Result<T, NodeOpError>>,
    ) -> Result<T, NodeOpError> {
        match tokio::time::timeout(limit, request).await {
            Ok(result) => result,
            Err(_) => {
                if let Ok(Route::Ssh(client)) = self.route(node) {
                    client.drop_session().await;
                }
                Err(error(
                    node,
                    format!(
                        "{what}: no answer within {limit:?}; the node or its network is silent"
                    ),
                    true,
                ))
            }
        }
    }

    fn request_timeout(&self) -> Duration {
        self.ssh.request_timeout
    }

    /// A TCP connection to a probe's target, as the node sees it, with a
    /// description of where it goes for messages.
    async fn dial(
        &self,
        node: &str,
        target: &ProbeTarget,
    ) -> Result<(BoxedIo, String), NodeOpError> {
        let (docker, route) = self.client(node).await?;
        match route {
            Route::Local { address, .. } => {
                let port = target.host_port.ok_or_else(|| {
                    error(
                        node,
                        format!(
                            "port {} of {} is not published on the node",
                            target.container_port, target.container
                        ),
                        false,
                    )
                })?;
                let stream = TcpStream::connect((address.as_str(), port))
                    .await
                    .map_err(|e| error(node, format!("dial tcp {address}:{port}: {e}"), false))?;
                Ok((Box::new(stream), format!("{address}:{port}")))
            }
            Route::Ssh(client) => {
                let (host, port) = container_address(&docker, node, target).await?;
                let io = client
                    .open_tcp(&host, port)
                    .await
                    .map_err(|e| error(node, e.to_string(), false))?;
                Ok((io, format!("{host}:{port}")))
            }
        }
    }
}

/// Where a container's port answers on its node: the container's own
/// address on the node's bridge, else (host networking) the published port
/// on the node's loopback.
async fn container_address(
    docker: &Docker,
    node: &str,
    target: &ProbeTarget,
) -> Result<(String, u16), NodeOpError> {
    let inspection = docker
        .inspect_container(&target.container, None)
        .await
        .map_err(|e| docker_error(node, &format!("inspect {}", target.container), e))?;
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
        (None, None) => Err(error(
            node,
            format!(
                "container {} has no address on the node and does not publish port {}",
                target.container, target.container_port
            ),
            false,
        )),
    }
}

/// A node error as the seam reports it: the node is unreachable when the
/// session could not be had at all.
fn node_error(node: &str, e: NodeError) -> NodeOpError {
    let unreachable = !matches!(
        e,
        NodeError::Docker { .. }
            | NodeError::NameInUse { .. }
            | NodeError::ImageMissing { .. }
            | NodeError::Archive { .. }
            | NodeError::Channel { .. }
            | NodeError::LocalConnect { .. }
    );
    // The error names the node already.
    let message = e.to_string();
    let message = message
        .strip_prefix(&format!("node {node}: "))
        .map(str::to_string)
        .unwrap_or(message);
    error(node, message, unreachable)
}

/// A bollard client that opens a fresh connection to the unix socket for
/// every request (a local socket connects in microseconds).
fn unix_client(socket: &str) -> Result<Docker, bollard::errors::Error> {
    let socket = socket.to_string();
    let transport = move |mut request: bollard::BollardRequest| {
        let socket = socket.clone();
        // A connection of our own: the request goes in origin form, with
        // the Host header HTTP/1.1 requires.
        let origin = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .expect("a path and query is a valid origin-form URI");
        *request.uri_mut() = origin;
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        async move {
            let stream = UnixStream::connect(&socket)
                .await
                .map_err(|err| bollard::errors::Error::IOError { err })?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|err| bollard::errors::Error::HyperResponseError { err })?;
            // With upgrades: an attached exec turns the connection into a
            // raw stream.
            tokio::spawn(async move {
                let _ = connection.with_upgrades().await;
            });
            sender
                .send_request(request)
                .await
                .map_err(|err| bollard::errors::Error::HyperResponseError { err })
        }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        120,
        bollard::API_DEFAULT_VERSION,
    )
}

/// Docker's stop timeout for a container created without one.
const DOCKER_STOP_SECONDS: u64 = 10;

/// The first label `wanted` has that `existing` lacks or holds otherwise.
fn mismatched_label<'a>(
    wanted: &'a HashMap<String, String>,
    existing: &HashMap<String, String>,
) -> Option<&'a str> {
    let mut keys: Vec<&String> = wanted.keys().collect();
    // The managed label first: a hand-made container lacks it.
    keys.sort_by_key(|key| (key.as_str() != MANAGED_LABEL, key.as_str()));
    keys.into_iter()
        .find(|key| existing.get(*key) != wanted.get(*key))
        .map(String::as_str)
}

/// Pulls `image` on `node`, given up when Docker reports no progress for
/// `deadline` (Docker streams a progress message for every layer step).
async fn pull_with_deadline(
    docker: &Docker,
    node: &str,
    image: &str,
    options: bollard::query_parameters::CreateImageOptions,
    deadline: Duration,
) -> Result<(), NodeOpError> {
    let what = format!("pull {image}");
    let mut progress = docker.create_image(Some(options), None, None);
    loop {
        match tokio::time::timeout(deadline, progress.next()).await {
            Ok(Some(item)) => {
                item.map_err(|e| docker_error(node, &what, e))?;
            }
            Ok(None) => return Ok(()),
            Err(_) => return Err(stalled(node, &what, deadline)),
        }
    }
}

/// Streams `archive` (a `docker save` stream) into `node`'s Docker, given up
/// when the archive, once flowing, stops for `deadline`. Docker answers a
/// load only at its end, so progress is the archive moving to the node.
/// Two quiet phases grow with the image and are not cut by `deadline`:
/// `docker save` may gather every layer before its first byte (allowed
/// [`FIRST_CHUNK_ALLOWANCE`] deadlines), and the node registers the layers
/// after the last one (not bounded here, as a slow disk is no stall).
async fn load_with_deadline<S>(
    docker: &Docker,
    node: &str,
    image: &str,
    archive: S,
    deadline: Duration,
) -> Result<(), NodeOpError>
where
    S: futures_util::Stream<Item = Result<Bytes, bollard::errors::Error>> + Send + Unpin + 'static,
{
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let what = format!("load {image}");
    let started = tokio::time::Instant::now();
    // Milliseconds from `started` to the last chunk taken from the archive
    // (0: none yet), and whether the archive has ended.
    let last_chunk = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(AtomicBool::new(false));
    let (seen, end) = (Arc::clone(&last_chunk), Arc::clone(&ended));
    let archive = archive
        .inspect(move |_| {
            let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            seen.store(millis.max(1), Ordering::Relaxed);
        })
        .chain(futures_util::stream::poll_fn(move |_| {
            end.store(true, Ordering::Relaxed);
            std::task::Poll::Ready(None)
        }));
    let load = async {
        let mut answers = docker.import_image_stream(
            bollard::query_parameters::ImportImageOptionsBuilder::new()
                .quiet(true)
                .build(),
            archive,
            None,
        );
        while let Some(item) = answers.next().await {
            item.map_err(|e| docker_error(node, &what, e))?;
        }
        Ok(())
    };
    let watchdog = async {
        loop {
            if ended.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            let due = match last_chunk.load(Ordering::Relaxed) {
                0 => started + deadline * FIRST_CHUNK_ALLOWANCE,
                millis => started + Duration::from_millis(millis) + deadline,
            };
            if tokio::time::Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    };
    tokio::select! {
        biased;
        result = load => result,
        () = watchdog => Err(stalled(node, &what, deadline)),
    }
}

/// How many progress deadlines a shipment may wait for the first byte of
/// the leader's `docker save`, which may first gather every layer.
const FIRST_CHUNK_ALLOWANCE: u32 = 5;

fn stalled(node: &str, what: &str, deadline: Duration) -> NodeOpError {
    error(
        node,
        format!(
            "{what}: no progress for {}s; the registry, the node or the transfer is stalled",
            deadline.as_secs_f64()
        ),
        false,
    )
}

fn error(node: &str, message: String, unreachable: bool) -> NodeOpError {
    NodeOpError {
        node: node.to_string(),
        message,
        unreachable,
    }
}

/// `image` when it is a valid Docker reference. bollard puts an image in
/// the API path as it is (`/images/{image}/json`), so anything else must
/// never reach it, whoever validated it before (an old commit, a test).
fn checked_image<'a>(node: &str, image: &'a str) -> Result<&'a str, NodeOpError> {
    crate::manifest::image_reference::check(image).map_err(|reason| {
        error(
            node,
            format!("invalid image reference {image:?}: {reason}"),
            false,
        )
    })?;
    Ok(image)
}

fn docker_error(node: &str, what: &str, e: bollard::errors::Error) -> NodeOpError {
    let unreachable = matches!(
        e,
        bollard::errors::Error::IOError { .. } | bollard::errors::Error::HyperResponseError { .. }
    );
    error(node, format!("{what}: {e}"), unreachable)
}

fn status_code(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker's timestamps (`2026-11-23T01:02:03.123456789Z`); the zero time
/// Docker reports for "never" is `None`.
pub fn parse_docker_time(text: &str) -> Option<SystemTime> {
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    if year <= 1 {
        return None;
    }
    let time = time.trim_end_matches('Z');
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock = clock.split(':').map(|p| p.parse::<i64>());
    let (hour, minute, second) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    let digits: String = fraction
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let nanos = format!("{digits:0<9}").parse::<u32>().ok()?;
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

fn protocol_suffix(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::TCP => "tcp",
        Protocol::UDP => "udp",
        Protocol::SCTP => "sctp",
    }
}

/// Docker's create request for one replica container.
pub fn create_body(container: &ReplicaContainer) -> ContainerCreateBody {
    let mut port_bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    for binding in &container.port_bindings {
        port_bindings
            .entry(format!(
                "{}/{}",
                binding.container_port,
                protocol_suffix(binding.protocol)
            ))
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(DockerPortBinding {
                host_ip: binding.host_ip.clone(),
                host_port: Some(binding.host_port.to_string()),
            });
    }
    let restart = match container.restart_policy {
        super::spec::DockerRestartPolicy::Always => RestartPolicyNameEnum::ALWAYS,
        super::spec::DockerRestartPolicy::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
        super::spec::DockerRestartPolicy::No => RestartPolicyNameEnum::NO,
    };
    ContainerCreateBody {
        hostname: container.hostname.clone(),
        image: Some(container.image.clone()),
        entrypoint: container.entrypoint.clone(),
        cmd: container.cmd.clone(),
        env: Some(container.env.clone()),
        labels: Some(container.labels.clone()),
        working_dir: container.working_dir.clone(),
        exposed_ports: (!container.exposed_ports.is_empty()).then(|| {
            container
                .exposed_ports
                .iter()
                .map(|(port, protocol)| format!("{port}/{}", protocol_suffix(*protocol)))
                .collect()
        }),
        host_config: Some(HostConfig {
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            nano_cpus: container.nano_cpus,
            memory: container.memory_bytes,
            restart_policy: Some(RestartPolicy {
                name: Some(restart),
                maximum_retry_count: None,
            }),
            network_mode: container.network_mode.clone(),
            ..HostConfig::default()
        }),
        stop_timeout: container.stop_timeout_seconds.map(i64::from),
        ..ContainerCreateBody::default()
    }
}

/// Facts and managed containers of a node whose Docker answers on `docker`.
async fn observe_on(name: &str, docker: &Docker) -> Result<NodeObservation, NodeOpError> {
    let info = docker
        .info()
        .await
        .map_err(|e| docker_error(name, "docker info", e))?;
    let facts = NodeFacts {
        cpu: CpuMillis(u64::try_from(info.ncpu.unwrap_or(0)).unwrap_or(0) * 1000),
        memory: MemoryBytes(u64::try_from(info.mem_total.unwrap_or(0)).unwrap_or(0)),
        docker_version: info.server_version.unwrap_or_default(),
    };
    let filters = HashMap::from([("label".to_string(), vec![format!("{MANAGED_LABEL}=true")])]);
    let summaries = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .map_err(|e| docker_error(name, "list containers", e))?;
    let inspections = futures_util::future::join_all(summaries.iter().map(|summary| async move {
        let id = summary.id.clone().unwrap_or_default();
        (summary, docker.inspect_container(&id, None).await)
    }))
    .await;
    let mut containers = Vec::new();
    for (summary, inspection) in inspections {
        let Some(labels) = summary
            .labels
            .as_ref()
            .and_then(|l| ManagedLabels::from_docker_labels(l).ok())
        else {
            continue;
        };
        let inspection = match inspection {
            Ok(inspection) => inspection,
            // Removed between the list and the inspect.
            Err(e) if status_code(&e) == Some(404) => continue,
            Err(e) => return Err(docker_error(name, "inspect container", e)),
        };
        let ports = crate::node::published_ports(&inspection);
        let state = inspection.state.unwrap_or_default();
        let exit_code = state.exit_code.unwrap_or(0);
        containers.push(ObservedContainer {
            id: summary.id.clone().unwrap_or_default(),
            name: inspection
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            labels,
            state: match state.status {
                Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
                Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
                Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
                Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
                Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
                Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
                _ => ContainerState::Exited { code: exit_code },
            },
            health: state.health.and_then(|h| match h.status {
                Some(HealthStatusEnum::STARTING) => Some(Health::Starting),
                Some(HealthStatusEnum::HEALTHY) => Some(Health::Healthy),
                Some(HealthStatusEnum::UNHEALTHY) => Some(Health::Unhealthy),
                _ => None,
            }),
            restart_count: u32::try_from(inspection.restart_count.unwrap_or(0)).unwrap_or(0),
            started_at: state.started_at.as_deref().and_then(parse_docker_time),
            finished_at: state.finished_at.as_deref().and_then(parse_docker_time),
            image: summary.image.clone().unwrap_or_default(),
            ports,
            probe_ready: None,
            ready_since: None,
        });
    }
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(NodeObservation { facts, containers })
}

impl NodeOps for DockerNodes {
    /// Connecting, negotiating the API version, then the observation
    /// itself, each within its own bound, and a second to spare.
    fn observe_timeout(&self) -> Duration {
        self.ssh.connect_timeout + 2 * self.ssh.request_timeout + Duration::from_secs(1)
    }

    async fn observe(&self, node: &Node) -> Result<NodeObservation, NodeOpError> {
        let name = node.meta.name.as_str();
        let (docker, _) = self.connect(node).await?;
        self.bounded(
            name,
            "observe",
            self.request_timeout(),
            observe_on(name, &docker),
        )
        .await
    }

    async fn create(&self, node: &str, container: &ReplicaContainer) -> Result<(), NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let what = format!("create {}", container.name);
        self.bounded(node, &what, self.request_timeout(), async {
            let options = CreateContainerOptionsBuilder::new()
                .name(&container.name)
                .build();
            match docker
                .create_container(Some(options), create_body(container))
                .await
            {
                Ok(_) => Ok(()),
                // The same deterministic name: this replica exists already,
                // if the container there carries its labels.
                Err(e) if status_code(&e) == Some(409) => {
                    let existing = docker
                        .inspect_container(&container.name, None)
                        .await
                        .map_err(|e| docker_error(node, &format!("inspect {}", container.name), e))?;
                    let labels = existing
                        .config
                        .and_then(|config| config.labels)
                        .unwrap_or_default();
                    match mismatched_label(&container.labels, &labels) {
                        None => Ok(()),
                        Some(key) => Err(error(
                            node,
                            format!(
                                "container name {} is taken by a container flotilla did not create with these labels ({key} differs); remove or rename that container",
                                container.name
                            ),
                            false,
                        )),
                    }
                }
                Err(e) => Err(docker_error(node, &what, e)),
            }
        })
        .await
    }

    async fn start(&self, node: &str, container: &str) -> Result<(), NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let what = format!("start {container}");
        self.bounded(node, &what, self.request_timeout(), async {
            match docker.start_container(container, None).await {
                Ok(()) => Ok(()),
                Err(e) if status_code(&e) == Some(304) => Ok(()),
                Err(e) => Err(docker_error(node, &what, e)),
            }
        })
        .await
    }

    async fn stop(
        &self,
        node: &str,
        container: &str,
        grace: Option<Duration>,
    ) -> Result<(), NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let seconds = grace.map(crate::node::grace_seconds);
        let options = seconds.map(|t| StopContainerOptionsBuilder::new().t(t).build());
        let what = format!("stop {container}");
        // Without a grace period Docker waits the container's own stop
        // timeout (10 s when it has none): read it, to bound the stop by it.
        let grace = match seconds {
            Some(t) => u64::from(t.unsigned_abs()),
            None => {
                let inspected = self
                    .bounded(node, &what, self.request_timeout(), async {
                        Ok(docker.inspect_container(container, None).await)
                    })
                    .await?;
                match inspected {
                    Ok(inspection) => inspection
                        .config
                        .and_then(|config| config.stop_timeout)
                        .and_then(|t| u64::try_from(t).ok())
                        .unwrap_or(DOCKER_STOP_SECONDS),
                    Err(e) if status_code(&e) == Some(404) => return Ok(()),
                    Err(e) => return Err(docker_error(node, &what, e)),
                }
            }
        };
        let grace = Duration::from_secs(grace);
        self.bounded(node, &what, self.request_timeout() + grace, async {
            match docker.stop_container(container, options).await {
                Ok(()) => Ok(()),
                Err(e) if matches!(status_code(&e), Some(304 | 404)) => Ok(()),
                Err(e) => Err(docker_error(node, &what, e)),
            }
        })
        .await
    }

    async fn restart(
        &self,
        node: &str,
        container: &str,
        grace: Duration,
    ) -> Result<(), NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let t = crate::node::grace_seconds(grace);
        let what = format!("restart {container}");
        let limit = self.request_timeout() + Duration::from_secs(t.unsigned_abs().into());
        self.bounded(node, &what, limit, async {
            docker
                .restart_container(
                    container,
                    Some(RestartContainerOptionsBuilder::new().t(t).build()),
                )
                .await
                .map_err(|e| docker_error(node, &what, e))
        })
        .await
    }

    async fn remove(&self, node: &str, container: &str) -> Result<(), NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let what = format!("remove {container}");
        self.bounded(node, &what, self.request_timeout(), async {
            match docker
                .remove_container(
                    container,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await
            {
                Ok(()) => Ok(()),
                Err(e) if status_code(&e) == Some(404) => Ok(()),
                Err(e) => Err(docker_error(node, &what, e)),
            }
        })
        .await
    }

    async fn has_image(&self, node: &str, image: &str) -> Result<bool, NodeOpError> {
        let image = checked_image(node, image)?;
        let (docker, _) = self.client(node).await?;
        let what = format!("inspect image {image}");
        self.bounded(node, &what, self.request_timeout(), async {
            match docker.inspect_image(image).await {
                Ok(_) => Ok(true),
                Err(e) if status_code(&e) == Some(404) => Ok(false),
                Err(e) => Err(docker_error(node, &what, e)),
            }
        })
        .await
    }

    async fn pull_image(&self, node: &str, image: &str) -> Result<(), NodeOpError> {
        let image = checked_image(node, image)?;
        let (docker, _) = self.client(node).await?;
        let mut options = CreateImageOptionsBuilder::new().from_image(image);
        if let Some(tag) = crate::node::default_tag(image) {
            options = options.tag(tag);
        }
        let options = options.build();
        pull_with_deadline(&docker, node, image, options, IMAGE_PROGRESS_DEADLINE).await
    }

    async fn ship_image(&self, node: &str, image: &str) -> Result<(), NodeOpError> {
        let image = checked_image(node, image)?;
        let (docker, _) = self.client(node).await?;
        let socket = self
            .leader_socket
            .as_deref()
            .unwrap_or(LEADER_DOCKER_SOCKET);
        let leader = unix_client(socket)
            .map_err(|e| docker_error(node, &format!("leader docker {socket}"), e))?
            .negotiate_version()
            .await
            .map_err(|e| docker_error(node, &format!("leader docker {socket}"), e))?;
        let export = leader.export_image(image);
        load_with_deadline(&docker, node, image, export, IMAGE_PROGRESS_DEADLINE).await?;
        if self.has_image(node, image).await? {
            Ok(())
        } else {
            Err(error(
                node,
                format!("image {image} is not on the leader's Docker either"),
                false,
            ))
        }
    }

    async fn probe_tcp(
        &self,
        node: &str,
        target: &ProbeTarget,
        timeout: Duration,
    ) -> Result<(), NodeOpError> {
        match tokio::time::timeout(timeout, self.dial(node, target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(error(
                node,
                format!(
                    "dial tcp to port {} of {}: timed out",
                    target.container_port, target.container
                ),
                false,
            )),
        }
    }

    async fn probe_http(
        &self,
        node: &str,
        target: &ProbeTarget,
        path: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<u16, NodeOpError> {
        let attempt = async {
            let (io, authority) = self.dial(node, target).await?;
            let failed =
                |e: String| error(node, format!("GET http://{authority}{path}: {e}"), false);
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| failed(e.to_string()))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut request = hyper::Request::get(path)
                .header(hyper::header::HOST, authority.as_str())
                .header(hyper::header::USER_AGENT, "flotilla-probe/1");
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let request = request
                .body(Empty::<Bytes>::new())
                .map_err(|e| failed(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            Ok::<u16, NodeOpError>(status)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(error(
                node,
                format!(
                    "GET {path} on port {} of {}: timed out",
                    target.container_port, target.container
                ),
                false,
            )),
        }
    }

    async fn probe_exec(
        &self,
        node: &str,
        container: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<i64, NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let attempt = async {
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
                .map_err(|e| docker_error(node, &format!("exec in {container}"), e))?;
            match docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| docker_error(node, &format!("exec in {container}"), e))?
            {
                bollard::exec::StartExecResults::Attached { mut output, .. } => {
                    while output.next().await.is_some() {}
                }
                bollard::exec::StartExecResults::Detached => {}
            }
            let inspect = docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| docker_error(node, &format!("exec in {container}"), e))?;
            Ok(inspect.exit_code.unwrap_or(-1))
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(error(
                    node,
                    format!("exec in {container}: timed out"),
                    false,
                ))
            })
    }

    async fn remove_image(&self, node: &str, image: &str) -> Result<bool, NodeOpError> {
        let image = checked_image(node, image)?;
        let (docker, _) = self.client(node).await?;
        let what = format!("remove image {image}");
        self.bounded(node, &what, self.request_timeout(), async {
            match docker
                .remove_image(
                    image,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await
            {
                Ok(_) => Ok(true),
                // Gone already, or still used by a container.
                Err(e) if matches!(status_code(&e), Some(404 | 409)) => Ok(false),
                Err(e) => Err(docker_error(node, &what, e)),
            }
        })
        .await
    }

    async fn logs(&self, node: &str, container: &str, lines: u32) -> Result<String, NodeOpError> {
        let (docker, _) = self.client(node).await?;
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let what = format!("logs of {container}");
        self.bounded(node, &what, self.request_timeout(), async {
            let mut stream = docker.logs(container, Some(options));
            let mut text = String::new();
            while let Some(item) = stream.next().await {
                let item = item.map_err(|e| docker_error(node, &what, e))?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use http_body_util::combinators::BoxBody;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    type FakeBody = BoxBody<Bytes, Infallible>;

    #[test]
    fn a_host_ip_is_the_bindings_address() {
        let container = ReplicaContainer {
            name: "c".into(),
            image: "busybox".into(),
            pull_policy: crate::manifest::model::PullPolicy::IfNotPresent,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            labels: HashMap::new(),
            working_dir: None,
            hostname: Some("web-1".into()),
            port_bindings: vec![
                super::super::spec::PortBinding {
                    container_port: 80,
                    host_port: 8080,
                    protocol: Protocol::TCP,
                    host_ip: Some("127.0.0.1".into()),
                },
                super::super::spec::PortBinding {
                    container_port: 81,
                    host_port: 8081,
                    protocol: Protocol::TCP,
                    host_ip: None,
                },
            ],
            exposed_ports: vec![(80, Protocol::TCP), (81, Protocol::TCP)],
            nano_cpus: None,
            memory_bytes: None,
            restart_policy: super::super::spec::DockerRestartPolicy::Always,
            network_mode: None,
            stop_timeout_seconds: None,
        };
        let body = create_body(&container);
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

    /// Regression (issue 10, item 9): an image reference that is not one
    /// reaches no Docker API path (bollard puts it in the path unescaped).
    #[tokio::test]
    async fn an_invalid_image_reference_never_reaches_docker() {
        let nodes = DockerNodes::default();
        for image in ["x/../../containers/json?", "app:1?x", "a b"] {
            for result in [
                nodes.has_image("n1", image).await.map(|_| ()),
                nodes.pull_image("n1", image).await,
                nodes.ship_image("n1", image).await,
                nodes.remove_image("n1", image).await.map(|_| ()),
            ] {
                let message = result.expect_err("refused").message;
                assert!(
                    message.starts_with("invalid image reference"),
                    "{image}: {message}"
                );
            }
        }
    }

    /// A Docker daemon that stalls where a real one would when its registry
    /// or an image transfer does, on a unix socket in `dir`:
    /// `POST /images/create?fromImage=stalled` sends one progress message
    /// and then nothing, `fromImage=slow` one every 100 ms for 2 s, and
    /// `POST /images/load` reads the whole archive, then answers
    /// `load_answer_after` later (registering the layers).
    fn fake_docker(dir: &std::path::Path, load_answer_after: Duration) -> Docker {
        let socket = dir.join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(move |request| answer(request, load_answer_after)),
                ));
            }
        });
        unix_client(socket.to_str().unwrap()).unwrap()
    }

    async fn answer(
        request: hyper::Request<hyper::body::Incoming>,
        load_answer_after: Duration,
    ) -> Result<hyper::Response<FakeBody>, Infallible> {
        let line = |text: &str| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{text}\n"))));
        let query = request.uri().query().unwrap_or("").to_string();
        let body: FakeBody = if request.uri().path().ends_with("/images/load") {
            // Docker answers a load once the archive has ended.
            let _ = request.into_body().collect().await;
            tokio::time::sleep(load_answer_after).await;
            BodyExt::boxed(StreamBody::new(futures_util::stream::iter([line(
                r#"{"stream":"Loaded image"}"#,
            )])))
        } else if query.contains("fromImage=stalled") {
            let first = futures_util::stream::iter([line(r#"{"status":"Pulling fs layer"}"#)]);
            BodyExt::boxed(StreamBody::new(
                first.chain(futures_util::stream::pending()),
            ))
        } else {
            let progress = futures_util::stream::unfold(0, move |sent| async move {
                (sent < 20).then_some(())?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((line(r#"{"status":"Downloading"}"#), sent + 1))
            });
            BodyExt::boxed(StreamBody::new(progress))
        };
        Ok(hyper::Response::new(body))
    }

    fn pull_options(image: &str) -> bollard::query_parameters::CreateImageOptions {
        CreateImageOptionsBuilder::new()
            .from_image(image)
            .tag("1")
            .build()
    }

    #[tokio::test]
    async fn a_stalled_pull_is_given_up_after_its_progress_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        let deadline = Duration::from_millis(500);
        let pulled = tokio::time::timeout(
            Duration::from_secs(30),
            pull_with_deadline(
                &docker,
                "n1",
                "stalled:1",
                pull_options("stalled"),
                deadline,
            ),
        )
        .await
        .expect("the pull ends by itself");
        let error = pulled.expect_err("stalled");
        assert_eq!(
            error.to_string(),
            "node n1: pull stalled:1: no progress for 0.5s; the registry, the node or the transfer is stalled"
        );
        assert!(!error.unreachable);
    }

    #[tokio::test]
    async fn a_slow_pull_that_keeps_moving_is_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        // 2 s in all, a message every 100 ms: longer than the deadline,
        // never that long without progress.
        let started = std::time::Instant::now();
        pull_with_deadline(
            &docker,
            "n1",
            "slow:1",
            pull_options("slow"),
            Duration::from_secs(1),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    fn chunk() -> Result<Bytes, bollard::errors::Error> {
        Ok(Bytes::from_static(&[0u8; 1024]))
    }

    #[tokio::test]
    async fn a_shipment_whose_archive_stops_flowing_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        // The leader's `docker save` sends a little, then stalls.
        let stalled =
            futures_util::stream::iter([chunk(), chunk()]).chain(futures_util::stream::pending());
        let shipped = tokio::time::timeout(
            Duration::from_secs(30),
            load_with_deadline(&docker, "n2", "img:1", stalled, Duration::from_millis(500)),
        )
        .await
        .expect("the shipment ends by itself");
        assert_eq!(
            shipped.expect_err("stalled").to_string(),
            "node n2: load img:1: no progress for 0.5s; the registry, the node or the transfer is stalled"
        );
    }

    #[tokio::test]
    async fn a_shipment_that_keeps_flowing_is_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        // 3 s in all, a chunk every 100 ms, against a 2 s deadline.
        let flowing = futures_util::stream::unfold(0, move |sent| async move {
            (sent < 30).then_some(())?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((chunk(), sent + 1))
        });
        load_with_deadline(
            &docker,
            "n2",
            "img:1",
            Box::pin(flowing),
            Duration::from_secs(2),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The quiet phases of a large image's shipment are not stalls:
    /// `docker save` gathering layers before its first byte, and the node
    /// registering them after the last.
    #[tokio::test]
    async fn a_shipment_is_not_cut_while_layers_are_gathered_or_registered() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Duration::from_millis(500);
        // The node answers two deadlines after the archive ended.
        let docker = fake_docker(dir.path(), 2 * deadline);
        // The first byte comes two deadlines after the start.
        let late = futures_util::stream::once(async move {
            tokio::time::sleep(2 * deadline).await;
            chunk()
        });
        load_with_deadline(&docker, "n2", "img:1", Box::pin(late), deadline)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn docker_times() {
        assert_eq!(parse_docker_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(
            parse_docker_time("2026-11-23T01:02:03.5Z"),
            Some(UNIX_EPOCH + Duration::new(1_795_395_723, 500_000_000))
        );
        assert_eq!(
            parse_docker_time("2000-02-29T00:00:00.000000001Z"),
            Some(UNIX_EPOCH + Duration::new(951_782_400, 1))
        );
    }
}

#[cfg(test)]
mod testbed_support {
    use super::*;
    use std::collections::BTreeMap;

    /// The testbed's nodes are `transport: local`, which the leader's
    /// operator must allow (docs/security.md); the test images may be
    /// shipped from the leader's Docker.
    pub fn allow_local_transport(repo: &git2::Repository) {
        let mut config = repo.config().unwrap();
        config
            .set_bool(crate::repo::ALLOW_LOCAL_TRANSPORT, true)
            .unwrap();
        config
            .set_str(crate::repo::SHIP_IMAGES, "flotilla-test:*")
            .unwrap();
    }

    pub fn testbed_env() -> BTreeMap<String, String> {
        let path = std::env::var("FLOTILLA_LOCAL_TESTBED")
            .expect("FLOTILLA_LOCAL_TESTBED names a testbed env file");
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn commit_files(repo: &git2::Repository, files: &[(&str, String)]) -> String {
        let mut tree = repo.treebuilder(None).unwrap();
        for (name, text) in files {
            let blob = repo.blob(text.as_bytes()).unwrap();
            tree.insert(name, blob, 0o100644).unwrap();
        }
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
            "c",
            &tree,
            &parents,
        )
        .unwrap()
        .to_string()
    }

    pub fn nodes_yaml(env: &BTreeMap<String, String>) -> String {
        ["n1", "n2", "n3"]
            .iter()
            .map(|n| {
                format!(
                    "---\napiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: {n}\nspec:\n  transport: local\n  address: {}\n  dockerSocket: {}\n",
                    env[&format!("TESTBED_NODE_{n}_ADDRESS")],
                    env[&format!("TESTBED_NODE_{n}_DOCKER_SOCKET")]
                )
            })
            .collect()
    }

    pub fn deployment(name: &str, replicas: u32, extra: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n{extra}"
        )
    }

    /// Removes every managed container the nodes have: what an earlier,
    /// interrupted run left.
    pub async fn clean_slate(docker: &DockerNodes, nodes_text: &str) {
        let (desired, _) = crate::leader::load_manifests(&[crate::manifest::SourceFile {
            path: "nodes.yaml".into(),
            text: nodes_text.to_string(),
        }]);
        for node in &desired.nodes {
            for container in docker.observe(node).await.unwrap().containers {
                docker
                    .remove(&node.meta.name, &container.name)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Against real dockerd: a testbed whose env file `FLOTILLA_LOCAL_TESTBED`
/// names (`scripts/testbed env`), driven through the real loop with a
/// round-robin planner. Run with `cargo test --lib -- --ignored docker::testbed`.
#[cfg(test)]
mod testbed {
    use super::testbed_support::*;
    use super::*;
    use crate::leader::apply::ApplyEvent;
    use crate::leader::memory::RoundRobin;
    use crate::leader::probe::run_probe;
    use crate::leader::run::Leader;
    use std::sync::Arc;
    use std::time::Instant;
    use tokio::sync::mpsc;

    const WEB: &str = "        - name: httpd\n          image: flotilla-test:1\n          command: [httpd, -f, -p, '8080', -h, /www]\n          ports:\n            - {name: http, containerPort: 8080, hostPort: 8080}\n          resources:\n            limits: {cpu: 250m, memory: 64Mi}\n          readinessProbe:\n            httpGet: {path: /, port: http}\n          livenessProbe:\n            tcpSocket: {port: 8080}\n";
    const WORKER: &str = "        - name: loop\n          image: flotilla-test:1\n          command: [sh, -c]\n          args: ['touch /tmp/ready; exec sleep 100000']\n          readinessProbe:\n            exec: {command: [test, -f, /tmp/ready]}\n";

    async fn count(
        docker: &DockerNodes,
        nodes: &[crate::manifest::model::Node],
        name: &str,
    ) -> usize {
        let mut total = 0;
        for node in nodes {
            let observed = docker.observe(node).await.unwrap();
            total += observed
                .containers
                .iter()
                .filter(|c| c.labels.name == name && c.state == ContainerState::Running)
                .count();
        }
        total
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a testbed: FLOTILLA_LOCAL_TESTBED=<its env file>"]
    async fn deploys_probes_heals_and_removes_on_real_docker() {
        let env = testbed_env();
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        allow_local_transport(&repo);
        let nodes_text = nodes_yaml(&env);
        commit_files(
            &repo,
            &[
                ("nodes.yaml", nodes_text.clone()),
                ("web.yaml", deployment("web", 3, WEB)),
                ("worker.yaml", deployment("worker", 2, WORKER)),
            ],
        );
        let docker = Arc::new(DockerNodes::default());
        let (events, mut progress) = mpsc::unbounded_channel();
        let mut leader = Leader::new(
            Arc::clone(&docker),
            RoundRobin,
            crate::leader::load_manifests,
            dir.path(),
            "main",
            Arc::default(),
            events,
        );
        let (desired, _) = crate::leader::load_manifests(&[crate::manifest::SourceFile {
            path: "nodes.yaml".into(),
            text: nodes_text.clone(),
        }]);
        // A clean slate: what an earlier, interrupted run left is removed.
        for node in &desired.nodes {
            for container in docker.observe(node).await.unwrap().containers {
                docker
                    .remove(&node.meta.name, &container.name)
                    .await
                    .unwrap();
            }
        }
        let started = Instant::now();
        let summary = leader.reconcile(SystemTime::now()).await.unwrap();
        eprintln!(
            "first reconcile: {} steps in {:?}",
            summary.steps,
            started.elapsed()
        );
        while let Ok(event) = progress.try_recv() {
            if let ApplyEvent::Failed { .. } = event {
                panic!("{event}");
            }
        }
        assert_eq!((summary.steps, summary.apply.succeeded), (5, 5));
        assert_eq!(count(&docker, &desired.nodes, "web").await, 3);
        assert_eq!(count(&docker, &desired.nodes, "worker").await, 2);
        // Observed with the port each web replica publishes.
        for node in &desired.nodes {
            for container in docker.observe(node).await.unwrap().containers {
                let expected = if container.labels.name == "web" {
                    vec![(8080, Protocol::TCP, 8080)]
                } else {
                    Vec::new()
                };
                let mut ports: Vec<_> = container
                    .ports
                    .iter()
                    .map(|p| (p.container_port, p.protocol, p.host_port))
                    .collect();
                ports.dedup();
                assert_eq!(ports, expected, "{}: {:?}", container.name, container.ports);
            }
        }
        let again = leader.reconcile(SystemTime::now()).await.unwrap();
        assert_eq!(again.steps, 0, "converged: nothing to do");

        // Probes, each handler against a real container.
        let status = leader.api.status.read().unwrap().clone().unwrap();
        let (desired_full, _) = crate::leader::load_manifests(&[
            crate::manifest::SourceFile {
                path: "web.yaml".into(),
                text: deployment("web", 3, WEB),
            },
            crate::manifest::SourceFile {
                path: "worker.yaml".into(),
                text: deployment("worker", 2, WORKER),
            },
        ]);
        for replica in &status.replicas {
            let deployment = desired_full
                .workloads
                .iter()
                .find(|d| replica.object.ends_with(&format!("/{}", d.meta.name)))
                .unwrap();
            let spec = &deployment.spec.template.spec.containers[0];
            for probe in [&spec.readiness_probe, &spec.liveness_probe]
                .into_iter()
                .flatten()
            {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    match run_probe(
                        &*docker,
                        &replica.node,
                        &replica.container_name,
                        spec,
                        probe,
                    )
                    .await
                    {
                        Ok(()) => break,
                        Err(e) => assert!(
                            Instant::now() < deadline,
                            "{} {:?}: {e}",
                            replica.container_name,
                            probe.handler
                        ),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }

        // Removed by hand: recreated.
        let victim = status
            .replicas
            .iter()
            .find(|r| r.object.ends_with("/web"))
            .unwrap();
        docker
            .remove(&victim.node, &victim.container_name)
            .await
            .unwrap();
        let summary = leader.reconcile(SystemTime::now()).await.unwrap();
        assert_eq!(summary.steps, 1);
        assert_eq!(count(&docker, &desired.nodes, "web").await, 3);

        // 30 new replicas vs. what Docker alone takes.
        commit_files(
            &repo,
            &[
                ("nodes.yaml", nodes_text.clone()),
                ("burst.yaml", deployment("burst", 30, "        - name: main\n          image: flotilla-test:1\n          command: [sleep, '100000']\n")),
            ],
        );
        let started = Instant::now();
        let summary = leader.reconcile(SystemTime::now()).await.unwrap();
        let converge = started.elapsed();
        assert_eq!(count(&docker, &desired.nodes, "burst").await, 30);
        assert_eq!(
            count(&docker, &desired.nodes, "web").await,
            0,
            "web left the repository"
        );
        eprintln!(
            "30 replicas (and removing 5): {} steps, {converge:?}",
            summary.steps
        );
        let started = Instant::now();
        let noop = leader.reconcile(SystemTime::now()).await.unwrap();
        eprintln!(
            "no-op reconcile of 30 containers: {:?} ({} steps)",
            started.elapsed(),
            noop.steps
        );

        commit_files(&repo, &[("nodes.yaml", nodes_text)]);
        leader.reconcile(SystemTime::now()).await.unwrap();
        assert_eq!(count(&docker, &desired.nodes, "burst").await, 0);
    }
}

/// The cost of a reconcile that has nothing to do, on 3 nodes x 100
/// containers. Run with `cargo test --release --lib -- --ignored
/// docker::scale --nocapture`.
#[cfg(test)]
mod scale {
    use super::testbed_support::*;
    use super::*;
    use crate::leader::memory::RoundRobin;
    use crate::leader::run::Leader;
    use std::sync::Arc;
    use std::time::Instant;
    use tokio::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a testbed: FLOTILLA_LOCAL_TESTBED=<its env file>"]
    async fn noop_reconcile_of_300_containers() {
        let env = testbed_env();
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        allow_local_transport(&repo);
        let nodes_text = nodes_yaml(&env);
        let docker = Arc::new(DockerNodes::default());
        clean_slate(&docker, &nodes_text).await;
        commit_files(
            &repo,
            &[
                ("nodes.yaml", nodes_text.clone()),
                ("big.yaml", deployment("big", 300, "        - name: main\n          image: flotilla-test:1\n          command: [sleep, '100000']\n")),
            ],
        );
        let (events, _progress) = mpsc::unbounded_channel();
        let mut leader = Leader::new(
            Arc::clone(&docker),
            RoundRobin,
            crate::leader::load_manifests,
            dir.path(),
            "main",
            Arc::default(),
            events,
        );
        let started = Instant::now();
        let summary = leader.reconcile(SystemTime::now()).await.unwrap();
        eprintln!(
            "300 replicas: {} steps, {} failed, in {:?}",
            summary.steps,
            summary.apply.failed.len(),
            started.elapsed()
        );
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let noop = leader.reconcile(SystemTime::now()).await.unwrap();
            times.push(started.elapsed());
            assert_eq!(noop.steps, 0);
        }
        times.sort();
        eprintln!(
            "no-op reconcile, 3 x 100 containers: median {:?}, max {:?}",
            times[2], times[4]
        );
        commit_files(&repo, &[("nodes.yaml", nodes_text)]);
        let started = Instant::now();
        leader.reconcile(SystemTime::now()).await.unwrap();
        eprintln!("removing 300: {:?}", started.elapsed());
    }
}

/// The real planner and the real loop against real dockerd: fresh deploy,
/// self-healing, a node lost past its grace period and back, pruning.
/// Run with `FLOTILLA_LOCAL_TESTBED=... cargo test --lib -- --ignored
/// docker::with_planner --nocapture`.
#[cfg(test)]
mod with_planner {
    use super::testbed_support::*;
    use super::*;
    use crate::leader::planner::KubePlanner;
    use crate::leader::run::Leader;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use tokio::sync::mpsc;

    const APP: &str = "        - name: main\n          image: flotilla-test:1\n          command: [sleep, '100000']\n";

    async fn running_per_node(
        docker: &DockerNodes,
        nodes_text: &str,
        name: &str,
    ) -> BTreeMap<String, usize> {
        let (desired, _) = crate::leader::load_manifests(&[crate::manifest::SourceFile {
            path: "nodes.yaml".into(),
            text: nodes_text.to_string(),
        }]);
        let mut counts = BTreeMap::new();
        for node in &desired.nodes {
            if let Ok(observed) = docker.observe(node).await {
                let running = observed
                    .containers
                    .iter()
                    .filter(|c| c.labels.name == name && c.state == ContainerState::Running)
                    .count();
                counts.insert(node.meta.name.clone(), running);
            }
        }
        counts
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs a testbed: FLOTILLA_LOCAL_TESTBED=<its env file>"]
    async fn plan_apply_heal_and_lose_a_node() {
        let env = testbed_env();
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        allow_local_transport(&repo);
        let nodes_text = nodes_yaml(&env);
        let cluster = "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata:\n  name: t\nspec:\n  nodeGracePeriodSeconds: 5\n".to_string();
        let docker = Arc::new(DockerNodes::default());
        clean_slate(&docker, &nodes_text).await;
        commit_files(
            &repo,
            &[
                ("cluster.yaml", cluster.clone()),
                ("nodes.yaml", nodes_text.clone()),
                ("app.yaml", deployment("app", 6, APP)),
            ],
        );
        let (events, mut progress) = mpsc::unbounded_channel();
        let mut leader = Leader::new(
            Arc::clone(&docker),
            KubePlanner,
            crate::leader::load_manifests,
            dir.path(),
            "main",
            Arc::default(),
            events,
        );
        let t0 = SystemTime::now();
        let summary = leader.reconcile(t0).await.unwrap();
        while let Ok(event) = progress.try_recv() {
            eprintln!("{event}");
        }
        assert_eq!((summary.steps, summary.apply.failed.len()), (6, 0));
        let spread = running_per_node(&docker, &nodes_text, "app").await;
        assert_eq!(
            spread,
            BTreeMap::from([("n1".into(), 2), ("n2".into(), 2), ("n3".into(), 2)])
        );
        assert_eq!(
            leader.reconcile(SystemTime::now()).await.unwrap().steps,
            0,
            "fixpoint"
        );

        // A replica removed by hand comes back.
        let status = leader.api.status.read().unwrap().clone().unwrap();
        let victim = &status.replicas[0];
        docker
            .remove(&victim.node, &victim.container_name)
            .await
            .unwrap();
        assert_eq!(leader.reconcile(SystemTime::now()).await.unwrap().steps, 1);
        assert_eq!(
            running_per_node(&docker, &nodes_text, "app")
                .await
                .values()
                .sum::<usize>(),
            6
        );

        // n3 unreachable (its socket moved away): within the grace period
        // nothing moves; past it, its replicas run elsewhere.
        let socket = env["TESTBED_NODE_n3_DOCKER_SOCKET"].clone();
        let hidden = format!("{socket}.hidden");
        std::fs::rename(&socket, &hidden).unwrap();
        let lost_at = SystemTime::now();
        let within = leader.reconcile(lost_at).await.unwrap();
        assert_eq!(within.steps, 0, "nothing moves within the grace period");
        let past = leader
            .reconcile(lost_at + Duration::from_secs(6))
            .await
            .unwrap();
        assert_eq!(past.steps, 2, "n3's two replicas placed again");
        let spread = running_per_node(&docker, &nodes_text, "app").await;
        assert_eq!(spread, BTreeMap::from([("n1".into(), 3), ("n2".into(), 3)]));

        // Back: the surplus on n3 is removed, total is 6 again.
        std::fs::rename(&hidden, &socket).unwrap();
        let back = leader.reconcile(SystemTime::now()).await.unwrap();
        while let Ok(event) = progress.try_recv() {
            eprintln!("{event}");
        }
        assert_eq!(back.steps, 2, "surplus removed");
        assert_eq!(
            running_per_node(&docker, &nodes_text, "app")
                .await
                .values()
                .sum::<usize>(),
            6
        );

        // The manifest removed: its containers go.
        commit_files(
            &repo,
            &[
                ("cluster.yaml", cluster),
                ("nodes.yaml", nodes_text.clone()),
            ],
        );
        leader.reconcile(SystemTime::now()).await.unwrap();
        assert_eq!(
            running_per_node(&docker, &nodes_text, "app")
                .await
                .values()
                .sum::<usize>(),
            0
        );
    }
}
