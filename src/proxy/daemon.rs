//! `flotilla-proxy run`: the daemon. It serves the last table it
//! acknowledged (reloaded from its state directory at start), answers the
//! control socket (`Apply`, `Status`), listens on the tunnel port for other
//! nodes' proxies and, when the table has Ingress routes, on the Ingress
//! port (80) of every address, and with certificates on its HTTPS port
//! (443) too, and on SIGTERM stops accepting and lets open connections
//! finish (up to [`DRAIN_TIMEOUT`]).
//!
//! The table is kept in a file only root reads (0600): it holds the
//! Ingress certificates' private keys.
//!
//! An `Apply` is all or nothing: the table is checked, the route and every
//! new listener set up and the table persisted before it is served; a
//! failure answers `Error` and leaves the previous table served.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

use super::counters::{service_counters, InFlight, PortKey, Targets};
use super::route::{self, Cidr};
use super::served::{IngressPorts, PortState, Served};
use super::table::{Mode, ProxyStatus, Request, Response, Table};
use super::{forward, http, tunnel};

/// How long a stopping proxy lets open connections finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest control request read (a table of thousands of endpoints
/// fits many times over).
const MAX_REQUEST_BYTES: u64 = 64 * 1024 * 1024;

/// How long a control client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an HTTPS client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The file the last acknowledged table is kept in, in the state directory.
const TABLE_FILE: &str = "table.json";

/// What `flotilla-proxy run` is told.
#[derive(Clone, Debug)]
pub struct Options {
    /// The node this proxy runs on: a table for another is refused.
    pub node: String,
    pub state_directory: PathBuf,
    pub control_socket: PathBuf,
    /// Whether to route the service CIDR to this node (`--no-route`: the
    /// host already does, or the addresses are local anyway, as in tests).
    pub route: bool,
    /// Listened on at every address for other nodes' proxies.
    pub tunnel_port: u16,
    /// The DNS server's port on the table's DNS address (53).
    pub dns_port: u16,
    /// The Ingress's port on every address (80).
    pub ingress_port: u16,
    /// The Ingress's HTTPS port on every address (443), when the table has
    /// certificates.
    pub ingress_tls_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("control socket {path}: {source}")]
    ControlSocket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tunnel port {address}: {source} (another proxy running? choose another with --tunnel-port)")]
    Tunnel {
        address: SocketAddrV4,
        source: std::io::Error,
    },
    #[error("waiting for SIGTERM: {0}")]
    Signal(std::io::Error),
}

/// The proxy's shared state: what every connection and the control
/// socket read.
#[derive(Debug)]
pub(crate) struct Proxy {
    options: Options,
    served: watch::Sender<Arc<Served>>,
    /// The table alone, for the parts that only read it (the DNS server).
    tables: watch::Sender<Option<Arc<Table>>>,
    targets: Arc<Targets>,
    ports: Mutex<BTreeMap<PortKey, Arc<PortState>>>,
    listeners: Mutex<HashMap<SocketAddrV4, JoinHandle<()>>>,
    /// One `Apply` at a time.
    applying: tokio::sync::Mutex<()>,
    in_flight: Arc<InFlight>,
    stopping: watch::Sender<bool>,
}

impl Proxy {
    fn new(options: Options) -> Arc<Proxy> {
        Arc::new(Proxy {
            options,
            served: watch::Sender::new(Arc::new(Served::default())),
            tables: watch::Sender::new(None),
            targets: Arc::default(),
            ports: Mutex::default(),
            listeners: Mutex::default(),
            applying: tokio::sync::Mutex::new(()),
            in_flight: Arc::default(),
            stopping: watch::Sender::new(false),
        })
    }

    /// The table served now, with its listen addresses. While the
    /// returned reference lives, no `Apply` completes.
    pub(crate) fn served(&self) -> watch::Ref<'_, Arc<Served>> {
        self.served.borrow()
    }

    /// The table served, as it changes (`None` before the first one).
    pub(crate) fn tables(&self) -> watch::Receiver<Option<Arc<Table>>> {
        self.tables.subscribe()
    }

    pub(crate) fn targets(&self) -> &Arc<Targets> {
        &self.targets
    }

    /// The lasting state of the Service port served at `listen`.
    pub(crate) fn port_state(&self, listen: SocketAddrV4) -> Option<Arc<PortState>> {
        let served = self.served();
        served
            .routes
            .get(&listen)
            .map(|route| Arc::clone(&route.state))
    }

    /// Serves `table` if it is newer than the one served; see the module
    /// documentation.
    pub(crate) async fn apply(self: &Arc<Self>, table: Table) -> Response {
        let _one_at_a_time = self.applying.lock().await;
        let (served_generation, served_cidr) = {
            let served = self.served();
            let cidr = served
                .table
                .as_ref()
                .map(|table| table.service_cidr.clone());
            (served.generation(), cidr)
        };
        if table.generation < served_generation {
            tracing::info!(
                generation = table.generation,
                served = served_generation,
                "ignoring an older table"
            );
            return Response::Applied {
                generation: served_generation,
            };
        }
        let generation = table.generation;
        let proxy = Arc::clone(self);
        // Binding, routing and writing the state are blocking calls.
        let prepared = tokio::task::spawn_blocking(move || proxy.prepare(table))
            .await
            .expect("preparing a table does not panic");
        let (served, new_listeners) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => {
                tracing::error!(generation, "table refused: {message}");
                return Response::Error { message };
            }
        };
        let served = Arc::new(served);
        let table = served.table.clone();
        let new_cidr = table.as_ref().map(|table| table.service_cidr.clone());
        self.served.send_replace(Arc::clone(&served));
        self.tables.send_replace(table);
        // A listener the table no longer has is closed before the answer:
        // once the leader reads it, nothing accepts there any more.
        for closed in self.swap_listeners(&served, new_listeners) {
            let _ = closed.await;
        }
        if self.options.route && served_cidr.is_some() && served_cidr != new_cidr {
            let old: Option<Cidr> = served_cidr.and_then(|cidr| cidr.parse().ok());
            if let Some(old) = old {
                let removed = tokio::task::spawn_blocking(move || route::remove_local(old)).await;
                if let Ok(Err(error)) = removed {
                    tracing::warn!("the old service CIDR's route stays: {error}");
                }
            }
        }
        tracing::info!(
            generation,
            services = served.table.as_ref().map_or(0, |t| t.services.len()),
            "table served"
        );
        Response::Applied { generation }
    }

    /// Everything that can fail, before anything is served: the table's
    /// checks, the route, the new listeners, the state file.
    fn prepare(&self, table: Table) -> Result<(Served, Vec<(SocketAddrV4, TcpListener)>), String> {
        let served = {
            let mut ports = lock(&self.ports);
            let ingress_ports = IngressPorts {
                http: self.options.ingress_port,
                https: self.options.ingress_tls_port,
            };
            Served::new(table, &self.options.node, ingress_ports, &mut ports)
                .map_err(|error| error.to_string())?
        };
        let table = served.table.as_ref().expect("a checked table");
        if self.options.route {
            let cidr: Cidr = table
                .service_cidr
                .parse()
                .map_err(|error: route::CidrError| error.to_string())?;
            route::ensure_local(cidr).map_err(|error| error.to_string())?;
        }
        let mut new_listeners = Vec::new();
        {
            let listeners = lock(&self.listeners);
            for address in served.listen_addresses() {
                if listeners.contains_key(&address) {
                    continue;
                }
                let listener = bind_shared(address).map_err(|error| {
                    format!(
                        "binding {address} for {}: {error}",
                        served.describe_address(address)
                    )
                })?;
                new_listeners.push((address, listener));
            }
        }
        persist(&self.options.state_directory, table).map_err(|error| {
            format!(
                "writing the table to {}: {error}",
                self.options.state_directory.join(TABLE_FILE).display()
            )
        })?;
        Ok((served, new_listeners))
    }

    /// Starts accepting on the new listeners and stops those the served
    /// table no longer has (their open connections go on): their tasks,
    /// aborted, to be awaited, since a listener closes only when its task
    /// is dropped.
    fn swap_listeners(
        self: &Arc<Self>,
        served: &Served,
        new: Vec<(SocketAddrV4, TcpListener)>,
    ) -> Vec<JoinHandle<()>> {
        let mut listeners = lock(&self.listeners);
        let addresses: HashSet<SocketAddrV4> = served.listen_addresses().collect();
        let gone: Vec<SocketAddrV4> = listeners
            .keys()
            .filter(|address| !addresses.contains(address))
            .copied()
            .collect();
        let closed: Vec<JoinHandle<()>> = gone
            .iter()
            .filter_map(|address| listeners.remove(address))
            .collect();
        for task in &closed {
            task.abort();
        }
        for (address, listener) in new {
            let task = tokio::spawn(accept_services(Arc::clone(self), listener, address));
            listeners.insert(address, task);
        }
        closed
    }

    pub(crate) fn status(&self) -> ProxyStatus {
        let generation = self.served().generation();
        let ports = lock(&self.ports);
        ProxyStatus {
            generation,
            connections: self.targets.snapshot(),
            services: service_counters(ports.iter().map(|(key, state)| (key, &*state.counters))),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves whole values: usable after a panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A listening socket on `address`, ready for tokio.
fn bind(address: SocketAddrV4) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// What a listen address serves.
enum Serves {
    /// A Service port, in its mode.
    Port(Mode),
    Ingress,
    /// The Ingress over TLS, with the configuration of the table served
    /// when the connection came.
    IngressTls(Arc<rustls::ServerConfig>),
}

/// A listening socket for an address of the table, with `SO_REUSEPORT`:
/// Linux refuses to bind a wildcard address (the Ingress's `0.0.0.0:80`, a
/// node port) on a port a specific address listens on (a Service's
/// `10.96.0.20:80`), and the reverse, unless both sockets ask for it; the
/// kernel then gives each connection to the most specific listener. A
/// port another program holds without `SO_REUSEPORT` is still refused.
/// Called where tokio's runtime is entered (`spawn_blocking` is).
fn bind_shared(address: SocketAddrV4) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address.into())?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connections the kernel queues per listener before the proxy accepts.
const LISTEN_BACKLOG: u32 = 1024;

async fn accept_services(proxy: Arc<Proxy>, listener: TcpListener, listen: SocketAddrV4) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: try again shortly.
                tracing::warn!(%listen, "accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let in_flight = proxy.in_flight.enter();
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let serves = {
                let served = proxy.served();
                match served.routes.get(&listen) {
                    Some(route) => Some(Serves::Port(served.port(route).1.mode)),
                    None => match served.https_config(listen) {
                        Some(config) => Some(Serves::IngressTls(Arc::clone(config))),
                        None => served
                            .ingress
                            .as_ref()
                            .filter(|ingress| ingress.listen == listen)
                            .map(|_| Serves::Ingress),
                    },
                }
            };
            let stopping = proxy.stopping.subscribe();
            match serves {
                Some(Serves::Port(Mode::Http)) => {
                    let _ = stream.set_nodelay(true);
                    let frontend = http::Frontend::Service(listen);
                    http::serve(Arc::clone(&proxy), stream, peer, frontend, stopping).await;
                }
                Some(Serves::Port(Mode::Tcp | Mode::ProxyV2)) => {
                    forward::serve_bytes(&proxy, stream, peer, listen).await
                }
                Some(Serves::Ingress) => {
                    let _ = stream.set_nodelay(true);
                    let frontend = http::Frontend::Ingress { https: false };
                    http::serve(Arc::clone(&proxy), stream, peer, frontend, stopping).await;
                }
                Some(Serves::IngressTls(config)) => {
                    let _ = stream.set_nodelay(true);
                    let handshake = tokio_rustls::TlsAcceptor::from(config).accept(stream);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => {
                            let frontend = http::Frontend::Ingress { https: true };
                            http::serve(Arc::clone(&proxy), stream, peer, frontend, stopping).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(client = %peer, "TLS handshake failed: {error}");
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer, "no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                        }
                    }
                }
                None => {}
            }
        });
    }
}

async fn accept_tunnel(proxy: Arc<Proxy>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!("tunnel accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let in_flight = proxy.in_flight.enter();
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let _in_flight = in_flight;
            tunnel::serve(&proxy, stream, peer).await;
        });
    }
}

async fn accept_control(proxy: Arc<Proxy>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer_control(Arc::clone(&proxy), stream));
            }
            Err(error) => {
                tracing::warn!("control accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One request line, one response line.
async fn answer_control(proxy: Arc<Proxy>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES));
    let mut line = String::new();
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Response::Error {
            message: format!("no request line within {REQUEST_TIMEOUT:?}"),
        },
        Ok(Err(error)) => Response::Error {
            message: format!("reading the request: {error}"),
        },
        Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
            Ok(Request::Apply(table)) => proxy.apply(table).await,
            Ok(Request::Status) => Response::Status(proxy.status()),
            Err(error) => Response::Error {
                message: format!("invalid request (one JSON Request line expected): {error}"),
            },
        },
    };
    let mut answer = serde_json::to_string(&response).expect("a response serializes");
    answer.push('\n');
    if let Err(error) = write.write_all(answer.as_bytes()).await {
        tracing::debug!("control client left before the answer: {error}");
    }
}

/// Writes the table next to its final name, then renames it there: a
/// reader sees the old table or the new one, never a part. The file is
/// its owner's alone (0600): the table holds the Ingress's private keys.
fn persist(directory: &Path, table: &Table) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::create_dir_all(directory)?;
    let temporary = directory.join(format!("{TABLE_FILE}.tmp"));
    let text = serde_json::to_vec(table).map_err(std::io::Error::other)?;
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        // A temporary file left by an older proxy may have had another mode.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(&text)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, directory.join(TABLE_FILE))
}

/// The last acknowledged table, if one was kept and can be read.
fn load(directory: &Path) -> Option<Table> {
    let path = directory.join(TABLE_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => {
            tracing::error!(path = %path.display(), "cannot read the kept table, serving none until the leader sends one: {error}");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(table) => Some(table),
        Err(error) => {
            tracing::error!(path = %path.display(), "the kept table is not valid, serving none until the leader sends one: {error}");
            None
        }
    }
}

/// The control socket, readable and writable by its owner only.
fn bind_control(path: &Path) -> Result<UnixListener, DaemonError> {
    let error = |source| DaemonError::ControlSocket {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    // A socket left by an earlier run would make the bind fail.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(error(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(error)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    Ok(listener)
}

/// Runs the daemon until SIGTERM (or SIGINT), then drains.
pub async fn run(options: Options) -> Result<(), DaemonError> {
    let proxy = Proxy::new(options.clone());
    let tunnel_address = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, options.tunnel_port);
    let tunnel = bind(tunnel_address)
        .and_then(TcpListener::from_std)
        .map_err(|source| DaemonError::Tunnel {
            address: tunnel_address,
            source,
        })?;
    if let Some(table) = load(&options.state_directory) {
        let generation = table.generation;
        match proxy.apply(table).await {
            Response::Applied { .. } => tracing::info!(generation, "serving the kept table"),
            _ => tracing::error!(
                generation,
                "the kept table cannot be served; serving none until the leader sends one"
            ),
        }
    }
    let control = bind_control(&options.control_socket)?;
    let mut tasks = vec![
        tokio::spawn(accept_tunnel(Arc::clone(&proxy), tunnel)).abort_handle(),
        tokio::spawn(accept_control(Arc::clone(&proxy), control)).abort_handle(),
    ];
    tasks.push(tokio::spawn(serve_dns(proxy.tables(), options.dns_port)).abort_handle());
    tracing::info!(node = %options.node, tunnel = %tunnel_address, control = %options.control_socket.display(), "proxy running");

    wait_for_stop().await?;
    tracing::info!(
        open = proxy.in_flight.count(),
        "stopping: no new connections, draining open ones"
    );
    tasks.extend(
        lock(&proxy.listeners)
            .drain()
            .map(|(_, task)| task.abort_handle()),
    );
    for task in &tasks {
        task.abort();
    }
    proxy.stopping.send_replace(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, proxy.in_flight.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            open = proxy.in_flight.count(),
            "connections still open after {DRAIN_TIMEOUT:?}; closing them"
        );
    }
    let _ = std::fs::remove_file(&options.control_socket);
    Ok(())
}

/// Serves DNS on the served table's DNS address (in the service CIDR,
/// routed to this node), moving when a table names another address. The
/// upstream resolvers are the node's own (`/etc/resolv.conf`: a host-network
/// container shares the node's), without any in the service CIDR.
async fn serve_dns(mut tables: watch::Receiver<Option<Arc<Table>>>, port: u16) {
    let mut running: Option<(Ipv4Addr, AbortHandle, watch::Sender<Arc<Table>>)> = None;
    loop {
        let table = tables.borrow_and_update().clone();
        if let Some(table) = table {
            match &running {
                Some((address, _, sender)) if *address == table.dns_address => {
                    sender.send_replace(table);
                }
                _ => {
                    if let Some((_, task, _)) = running.take() {
                        task.abort();
                    }
                    let listen = std::net::SocketAddr::from((table.dns_address, port));
                    match super::dns::DnsServer::bind(listen).await {
                        Ok(server) => {
                            let upstream = upstream_resolvers(&table.service_cidr);
                            tracing::info!(%listen, ?upstream, "DNS server running");
                            let (sender, receiver) = watch::channel(Arc::clone(&table));
                            let task = tokio::spawn(server.run(receiver, upstream));
                            running = Some((table.dns_address, task.abort_handle(), sender));
                        }
                        Err(error) => {
                            tracing::error!(%error, "no DNS server until the next table");
                        }
                    }
                }
            }
        }
        if tables.changed().await.is_err() {
            break;
        }
    }
    if let Some((_, task, _)) = running {
        task.abort();
    }
}

/// The node's resolvers, from `/etc/resolv.conf`, without the addresses of
/// `service_cidr` (the proxy's own: a loop).
fn upstream_resolvers(service_cidr: &str) -> Vec<std::net::SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let range = service_cidr.split_once('/').and_then(|(base, prefix)| {
        Some((base.parse::<Ipv4Addr>().ok()?, prefix.parse::<u32>().ok()?))
    });
    super::dns::upstream_from_resolv_conf(&text, |ip| match (ip, range) {
        (std::net::IpAddr::V4(ip), Some((base, prefix))) => {
            let mask = u32::MAX.checked_shl(32 - prefix.min(32)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(base) & mask
        }
        _ => false,
    })
}

async fn wait_for_stop() -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persisted_table_loads_back_and_no_temporary_file_stays() {
        let directory = tempfile::tempdir().unwrap();
        let table = Table {
            generation: 7,
            node: "n1".to_owned(),
            service_cidr: "10.96.0.0/12".to_owned(),
            dns_address: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".to_owned(),
            services: Vec::new(),
            ingress: Vec::new(),
            ingress_default_backend: None,
            ingress_certificates: Vec::new(),
        };
        assert_eq!(load(directory.path()), None);
        persist(directory.path(), &table).unwrap();
        assert_eq!(load(directory.path()), Some(table));
        let files: Vec<_> = std::fs::read_dir(directory.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [TABLE_FILE]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(directory.path().join(TABLE_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the table holds private keys");
        std::fs::write(directory.path().join(TABLE_FILE), "{").unwrap();
        assert_eq!(load(directory.path()), None);
    }
}
