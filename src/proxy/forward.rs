//! Reaching an endpoint: choose one from the table served when the
//! connection asks, connect (directly, or through the endpoint's node's
//! tunnel), and on a failed connect try another, each at most once. Then,
//! for the `Tcp` and `ProxyV2` modes, bytes both ways until both sides
//! have closed.
//!
//! The choice and the count of the chosen target's connections happen
//! together while the table is read, so once an `Apply` has answered no
//! new connection goes to an endpoint it removed, and every connection to
//! one is in `Status` until it ends (the leader's drain relies on both).

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::counters::{PortKey, TargetGuard};
use super::daemon::Proxy;
use super::proxy_protocol;
use super::served::{describe, policy};
use super::table::{Endpoint, Mode};
use super::tunnel;

/// How long a connect to an endpoint (or a tunnel) may take before the
/// next endpoint is tried.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection to an endpoint, ready for the client's bytes, counted
/// against its target while it lives.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) stream: TcpStream,
    pub(crate) guard: TargetGuard,
}

/// Which Service port a connection (or request) is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Entry<'a> {
    /// The one served at this listen address (its virtual address or its
    /// node port).
    Address(SocketAddrV4),
    /// The one an Ingress route names.
    Ingress(&'a PortKey),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("{listen} serves no Service port any more")]
    AddressNotServed { listen: SocketAddrV4 },
    #[error("service {}/{} port {} is not in the table (or not TCP)", .0.0, .0.1, .0.2)]
    ServiceNotServed(PortKey),
    #[error("{service}: no endpoint could be reached ({tried} tried)")]
    NoEndpoint { service: String, tried: usize },
}

/// One endpoint chosen for a connection, with what connecting needs.
struct Attempt {
    endpoint: Endpoint,
    mode: Mode,
    /// The Service port's virtual address.
    service: SocketAddrV4,
    /// The Service port, as the tunnel names it.
    key: PortKey,
    guard: TargetGuard,
}

/// Connects `client`'s connection (or request) to an endpoint of the
/// Service port of `entry`.
pub(crate) async fn connect(
    proxy: &Proxy,
    entry: Entry<'_>,
    client: SocketAddr,
) -> Result<Upstream, ForwardError> {
    let mut tried: HashSet<SocketAddrV4> = HashSet::new();
    loop {
        let attempt = choose(proxy, entry, client, &tried)?;
        match open(&attempt, client).await {
            Ok(stream) => {
                return Ok(Upstream {
                    stream,
                    guard: attempt.guard,
                })
            }
            Err(error) => {
                tracing::warn!(
                    pod = %attempt.endpoint.pod,
                    target = %attempt.endpoint.target,
                    via = ?attempt.endpoint.via,
                    "connect failed, trying another endpoint: {error}"
                );
                tried.insert(attempt.endpoint.target);
            }
        }
    }
}

/// Chooses an endpoint not yet `tried` from the table served right now.
fn choose(
    proxy: &Proxy,
    entry: Entry<'_>,
    client: SocketAddr,
    tried: &HashSet<SocketAddrV4>,
) -> Result<Attempt, ForwardError> {
    // Holding the table while choosing and counting: an `Apply` waits for
    // this, so it answers only once no choice from the old table is
    // uncounted.
    let served = proxy.served();
    let route = match entry {
        Entry::Address(listen) => served
            .routes
            .get(&listen)
            .ok_or(ForwardError::AddressNotServed { listen })?,
        Entry::Ingress(key) => served
            .service_route(key)
            .ok_or_else(|| ForwardError::ServiceNotServed(key.clone()))?,
    };
    let (service, port) = served.port(route);
    let local_only = route.node_port && port.node_port_local_only;
    let usable = |endpoint: &Endpoint| {
        !tried.contains(&endpoint.target) && (!local_only || endpoint.via.is_none())
    };
    let mut chooser = route
        .state
        .chooser
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let endpoint = chooser
        .choose(
            &port.endpoints,
            policy(service),
            client.ip(),
            Instant::now(),
            |target| proxy.targets().count(target),
            usable,
        )
        .ok_or_else(|| ForwardError::NoEndpoint {
            service: describe(service, port),
            tried: tried.len(),
        })?;
    Ok(Attempt {
        endpoint: endpoint.clone(),
        mode: port.mode,
        service: SocketAddrV4::new(service.cluster_ip, port.port),
        key: (service.namespace.clone(), service.name.clone(), port.port),
        guard: proxy.targets().open(endpoint.target),
    })
}

async fn open(attempt: &Attempt, client: SocketAddr) -> std::io::Result<TcpStream> {
    let target = attempt.endpoint.target;
    let Some(tunnel) = attempt.endpoint.via else {
        let mut stream = connect_with_timeout(target).await?;
        if attempt.mode == Mode::ProxyV2 {
            let header = proxy_protocol::encode(client, attempt.service.into(), &[]);
            stream.write_all(&header).await?;
        }
        return Ok(stream);
    };
    // The other node's proxy speaks the mode to the endpoint.
    tunnel::connect(tunnel, client, target, &attempt.key).await
}

/// A TCP connection to `address`, failing after [`CONNECT_TIMEOUT`].
pub(crate) async fn connect_with_timeout(address: SocketAddrV4) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {address}: no answer within {CONNECT_TIMEOUT:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A `Tcp` or `ProxyV2` connection: an endpoint, then bytes both ways
/// (each side's end of stream passed on as a half-close) until both end.
pub(crate) async fn serve_bytes(
    proxy: &Proxy,
    mut client: TcpStream,
    peer: SocketAddr,
    listen: SocketAddrV4,
) {
    let Some(state) = proxy.port_state(listen) else {
        return;
    };
    let _open = state.counters.accept();
    let mut upstream = match connect(proxy, Entry::Address(listen), peer).await {
        Ok(upstream) => upstream,
        Err(error) => {
            state.counters.error();
            tracing::warn!(client = %peer, "connection closed: {error}");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream.stream).await {
        tracing::debug!(client = %peer, target = %upstream.guard.target(), "connection ended: {error}");
    }
}
