//! The tunnel between nodes' proxies: how a proxy reaches an endpoint on
//! another node. The connecting proxy opens `NODE_ADDRESS:TUNNEL_PORT` and
//! sends a PROXY protocol v2 header: source the original client,
//! destination the target (the pod's address and port), and flotilla's TLV
//! naming the Service port (its virtual address and port). The tunnel
//! accepts only a target that is an endpoint of that Service port on its
//! own node (`via == None`) in its current table, connects to it (sending
//! the endpoint its own PROXY header when the port's mode is `ProxyV2`),
//! and answers one byte, [`CONNECTED`], before any byte of the endpoint's;
//! a refused or failed target is answered by closing. The connecting
//! proxy waits for that byte, so a target that cannot be reached is a
//! failed connect it retries on another endpoint, as for a local one.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::counters::PortKey;
use super::daemon::Proxy;
use super::forward::{connect_with_timeout, CONNECT_TIMEOUT};
use super::proxy_protocol;
use super::table::Mode;

/// What the tunnel answers once it is connected to the target.
pub(crate) const CONNECTED: u8 = 0;

/// How long a tunnel waits for the header of a new connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the connecting proxy waits for [`CONNECTED`]: the tunnel's own
/// connect, and the round trip.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
const _: () = assert!(CONNECT_TIMEOUT.as_millis() < ANSWER_TIMEOUT.as_millis());

/// A connection to `target` through the `tunnel` of its node, for
/// `client`'s connection to the Service port `service`.
pub(crate) async fn connect(
    tunnel: SocketAddrV4,
    client: SocketAddr,
    target: SocketAddrV4,
    service: &PortKey,
) -> std::io::Result<TcpStream> {
    let mut stream = connect_with_timeout(tunnel).await?;
    let header = proxy_protocol::encode(
        client,
        target.into(),
        &[proxy_protocol::service_tlv(service)],
    );
    stream.write_all(&header).await?;
    let mut answer = [0u8; 1];
    let answered = tokio::time::timeout(ANSWER_TIMEOUT, stream.read(&mut answer)).await;
    match answered {
        Ok(Ok(1)) if answer[0] == CONNECTED => Ok(stream),
        Ok(Ok(0)) => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            format!("tunnel {tunnel} refused target {target} (not its endpoint, or unreachable)"),
        )),
        Ok(Ok(_)) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "tunnel {tunnel} answered {:#04x}, not {CONNECTED:#04x}",
                answer[0]
            ),
        )),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("tunnel {tunnel}: no answer for target {target} within {ANSWER_TIMEOUT:?}"),
        )),
    }
}

#[derive(Debug, thiserror::Error)]
enum TunnelError {
    #[error("no PROXY header within {HEADER_TIMEOUT:?}")]
    HeaderTimeout,
    #[error(transparent)]
    Header(#[from] proxy_protocol::ProxyProtocolError),
    #[error("the header has no IPv4 client and target")]
    Addresses,
    #[error("the header names no Service port (flotilla's TLV)")]
    NoService,
    #[error("target {target} is not an endpoint of service {}/{} port {} on this node", .service.0, .service.1, .service.2)]
    NotAnEndpoint {
        target: SocketAddrV4,
        service: PortKey,
    },
    #[error("connecting to target {target}: {source}")]
    Connect {
        target: SocketAddrV4,
        source: std::io::Error,
    },
}

/// One connection from another node's proxy.
pub(crate) async fn serve(proxy: &Proxy, mut stream: TcpStream, peer: SocketAddr) {
    match accept(proxy, &mut stream).await {
        Ok(mut upstream) => {
            let _ = stream.set_nodelay(true);
            if let Err(error) =
                tokio::io::copy_bidirectional(&mut stream, &mut upstream.stream).await
            {
                tracing::debug!(tunnel_peer = %peer, "tunnelled connection ended: {error}");
            }
        }
        Err(error) => tracing::warn!(tunnel_peer = %peer, "tunnel connection refused: {error}"),
    }
}

async fn accept(
    proxy: &Proxy,
    stream: &mut TcpStream,
) -> Result<super::forward::Upstream, TunnelError> {
    let header = tokio::time::timeout(HEADER_TIMEOUT, proxy_protocol::read(stream))
        .await
        .map_err(|_| TunnelError::HeaderTimeout)??;
    let Some((client, SocketAddr::V4(target))) = header.addresses else {
        return Err(TunnelError::Addresses);
    };
    let service = proxy_protocol::service_of(&header).ok_or(TunnelError::NoService)?;
    let (mode, service_address, guard) = {
        let served = proxy.served();
        let (service_entry, port) = served
            .service_route(&service)
            .map(|route| served.port(route))
            .filter(|(_, port)| {
                port.endpoints
                    .iter()
                    .any(|endpoint| endpoint.target == target && endpoint.via.is_none())
            })
            .ok_or_else(|| TunnelError::NotAnEndpoint {
                target,
                service: service.clone(),
            })?;
        let address = SocketAddrV4::new(service_entry.cluster_ip, port.port);
        (port.mode, address, proxy.targets().open(target))
    };
    let connect = async {
        let mut upstream = connect_with_timeout(target).await?;
        if mode == Mode::ProxyV2 {
            let header = proxy_protocol::encode(client, service_address.into(), &[]);
            upstream.write_all(&header).await?;
        }
        stream.write_all(&[CONNECTED]).await?;
        Ok(upstream)
    };
    let upstream = connect
        .await
        .map_err(|source| TunnelError::Connect { target, source })?;
    Ok(super::forward::Upstream {
        stream: upstream,
        guard,
    })
}
