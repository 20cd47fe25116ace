//! The node proxy's DNS server, which the node's containers use as their
//! resolver: it answers the cluster's names from the table served
//! ([`answer`], pure) and forwards every other query, unchanged, to the
//! node's own resolvers (its `/etc/resolv.conf`). UDP and TCP on one
//! address. It reads the table and never changes it; it keeps no cache.

pub mod answer;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::proxy::table::Table;
use answer::Reply;

/// How long one upstream resolver has to answer a forwarded query before
/// the next one is asked (glibc's stub resolver waits 5 s in all).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// A client's TCP connection is closed after this long without a whole
/// query (RFC 7766 asks servers to time idle connections out).
const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Forwarded queries and TCP connections in progress at most; past it a UDP
/// query is dropped (the client retries) and a connection closed, so a
/// flood cannot exhaust the proxy's file descriptors.
const MAX_TASKS: usize = 1024;

/// After a failed accept (out of file descriptors, say), before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The largest DNS message, over either transport.
const MAX_MESSAGE: usize = 65535;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen for DNS queries on {address} ({protocol}): {source}")]
    Bind {
        address: SocketAddr,
        protocol: &'static str,
        source: std::io::Error,
    },
}

/// Serves DNS on `listen` (UDP and TCP) until the future is dropped: the
/// cluster's names from the latest table in `tables`, everything else
/// through `upstream` (tried in order). Fails only to bind.
pub async fn serve(
    listen: SocketAddr,
    tables: watch::Receiver<Arc<Table>>,
    upstream: Vec<SocketAddr>,
) -> Result<(), DnsError> {
    DnsServer::bind(listen).await?.run(tables, upstream).await;
    Ok(())
}

/// The server's two sockets, bound and not yet served: binding first lets
/// the caller report a taken port before it claims to serve.
#[derive(Debug)]
pub struct DnsServer {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
}

impl DnsServer {
    /// Binds UDP and TCP on `listen`; with port 0, both on the port the
    /// system gives the UDP socket.
    pub async fn bind(listen: SocketAddr) -> Result<DnsServer, DnsError> {
        let bind_error = |address, protocol| {
            move |source| DnsError::Bind {
                address,
                protocol,
                source,
            }
        };
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(bind_error(listen, "udp"))?;
        let address = udp.local_addr().map_err(bind_error(listen, "udp"))?;
        let tcp = TcpListener::bind(address)
            .await
            .map_err(bind_error(address, "tcp"))?;
        Ok(DnsServer {
            udp: Arc::new(udp),
            tcp,
        })
    }

    /// The address served (with the port chosen when bound with port 0).
    pub fn local_address(&self) -> SocketAddr {
        self.tcp
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves until the future is dropped, which also ends every forwarded
    /// query and TCP connection in progress. A table sent on `tables` is
    /// used from the next query on; when the sender is gone, the last one
    /// is served.
    pub async fn run(self, tables: watch::Receiver<Arc<Table>>, upstream: Vec<SocketAddr>) {
        let upstream: Arc<[SocketAddr]> = upstream.into();
        let mut tasks = JoinSet::new();
        let mut buffer = vec![0; MAX_MESSAGE];
        loop {
            tokio::select! {
                received = self.udp.recv_from(&mut buffer) => {
                    let (length, client) = match received {
                        Ok(received) => received,
                        Err(error) => {
                            warn!(%error, "dns: receiving a UDP query failed");
                            continue;
                        }
                    };
                    let query = &buffer[..length];
                    let table = Arc::clone(&tables.borrow());
                    match answer::reply(&table, query) {
                        Reply::Answer(response) => {
                            if let Err(error) = self.udp.send_to(&response, client).await {
                                debug!(%client, %error, "dns: cannot send an answer");
                            }
                        }
                        Reply::Forward if tasks.len() < MAX_TASKS => {
                            let udp = Arc::clone(&self.udp);
                            let upstream = Arc::clone(&upstream);
                            tasks.spawn(forward_udp(udp, query.to_vec(), client, upstream));
                        }
                        Reply::Forward => debug!(%client, "dns: too many queries in progress, one dropped"),
                        Reply::Ignore => debug!(%client, "dns: not a query, ignored"),
                    }
                }
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, client)) if tasks.len() < MAX_TASKS => {
                        let upstream = Arc::clone(&upstream);
                        tasks.spawn(serve_connection(stream, tables.clone(), upstream));
                        debug!(%client, "dns: TCP connection");
                    }
                    Ok((_, client)) => debug!(%client, "dns: too many queries in progress, connection closed"),
                    Err(error) => {
                        warn!(%error, "dns: accepting a TCP connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }
}

/// Forwards one UDP query and sends the answer (or SERVFAIL) to `client`
/// from the server's socket.
async fn forward_udp(
    server: Arc<UdpSocket>,
    query: Vec<u8>,
    client: SocketAddr,
    upstream: Arc<[SocketAddr]>,
) {
    let mut response = None;
    for &resolver in upstream.iter() {
        match tokio::time::timeout(UPSTREAM_TIMEOUT, ask_udp(resolver, &query)).await {
            Ok(Ok(answer)) => {
                response = Some(answer);
                break;
            }
            Ok(Err(error)) => debug!(%resolver, %error, "dns: upstream resolver failed (udp)"),
            Err(_) => debug!(%resolver, "dns: upstream resolver timed out (udp)"),
        }
    }
    let Some(response) = response.or_else(|| no_upstream_answer(&query, &upstream)) else {
        return;
    };
    if let Err(error) = server.send_to(&response, client).await {
        debug!(%client, %error, "dns: cannot send an answer");
    }
}

/// Asks `resolver` over UDP from a fresh socket (a random source port
/// makes a forged answer as hard to slip in as for any stub resolver), and
/// returns its answer as is: the query's id, and the truncation bit that
/// sends the client to TCP when the answer did not fit.
async fn ask_udp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = match resolver.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(resolver).await?;
    socket.send(query).await?;
    let mut buffer = vec![0; MAX_MESSAGE];
    loop {
        let length = socket.recv(&mut buffer).await?;
        if same_id(&buffer[..length], query) {
            buffer.truncate(length);
            return Ok(buffer);
        }
    }
}

/// Serves one client's TCP connection: length-prefixed queries, answered
/// in order, until the client closes it, is idle too long or sends
/// something that is not a query.
async fn serve_connection(
    mut stream: TcpStream,
    tables: watch::Receiver<Arc<Table>>,
    upstream: Arc<[SocketAddr]>,
) {
    loop {
        let query =
            match tokio::time::timeout(CONNECTION_IDLE_TIMEOUT, read_message(&mut stream)).await {
                Ok(Ok(Some(query))) => query,
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
            };
        let table = Arc::clone(&tables.borrow());
        let response = match answer::reply(&table, &query) {
            Reply::Answer(response) => response,
            Reply::Forward => match forward_tcp(&query, &upstream).await {
                Some(response) => response,
                None => return,
            },
            Reply::Ignore => return,
        };
        if write_message(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

/// Forwards one query over TCP, to each resolver in turn; `None` when the
/// query cannot even be answered SERVFAIL.
async fn forward_tcp(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    for &resolver in upstream {
        match tokio::time::timeout(UPSTREAM_TIMEOUT, ask_tcp(resolver, query)).await {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(error)) => debug!(%resolver, %error, "dns: upstream resolver failed (tcp)"),
            Err(_) => debug!(%resolver, "dns: upstream resolver timed out (tcp)"),
        }
    }
    no_upstream_answer(query, upstream)
}

async fn ask_tcp(resolver: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(resolver).await?;
    write_message(&mut stream, query).await?;
    match read_message(&mut stream).await? {
        Some(answer) if same_id(&answer, query) => Ok(answer),
        Some(_) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the answer's id is not the query's",
        )),
        None => Err(std::io::ErrorKind::UnexpectedEof.into()),
    }
}

fn no_upstream_answer(query: &[u8], upstream: &[SocketAddr]) -> Option<Vec<u8>> {
    if upstream.is_empty() {
        debug!("dns: no upstream resolver configured, SERVFAIL");
    } else {
        warn!(?upstream, "dns: no upstream resolver answered, SERVFAIL");
    }
    answer::server_failure(query)
}

fn same_id(answer: &[u8], query: &[u8]) -> bool {
    answer.len() >= 2 && query.len() >= 2 && answer[..2] == query[..2]
}

/// One length-prefixed message (RFC 1035 4.2.2); `None` when the peer
/// closed the connection between messages.
async fn read_message(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = [0; 2];
    match stream.read_exact(&mut length).await {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error),
    }
    let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let length = u16::try_from(message.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a DNS message over 65535 bytes",
        )
    })?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

/// The upstream resolvers named by `text`, a `resolv.conf`: its
/// `nameserver` lines in order, port 53, without the addresses `excluded`
/// says would loop back to this server (the service CIDR, which holds the
/// DNS address itself). A line whose address does not parse (an IPv6
/// address with a zone, say) is skipped with a warning.
pub fn upstream_from_resolv_conf(text: &str, excluded: impl Fn(IpAddr) -> bool) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                return None;
            }
            let word = words.next()?;
            match word.parse::<IpAddr>() {
                Ok(address) if excluded(address) => {
                    debug!(%address, "dns: resolv.conf nameserver is the proxy's own, skipped");
                    None
                }
                Ok(address) => Some(SocketAddr::new(address, 53)),
                Err(_) => {
                    warn!(
                        nameserver = word,
                        "dns: resolv.conf nameserver is not an IP address, skipped"
                    );
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, SocketAddr};

    use super::upstream_from_resolv_conf;

    fn in_service_cidr(address: IpAddr) -> bool {
        match address {
            IpAddr::V4(v4) => crate::manifest::model::ServiceCidr::DEFAULT.contains(v4),
            IpAddr::V6(_) => false,
        }
    }

    fn check(resolv_conf: &str, expected: &[&str]) {
        let upstream = upstream_from_resolv_conf(resolv_conf, in_service_cidr);
        let expected: Vec<SocketAddr> = expected
            .iter()
            .map(|a| a.parse().expect("an address"))
            .collect();
        assert_eq!(upstream, expected);
    }

    #[test]
    fn the_nameserver_lines_in_order_on_port_53() {
        check(
            "# Generated by NetworkManager\n\
             search example.com\n\
             nameserver 192.168.1.1\n\
             options edns0 trust-ad\n\
             nameserver   2001:4860:4860::8888  # a comment\n\
             \tnameserver 127.0.0.53\n",
            &[
                "192.168.1.1:53",
                "[2001:4860:4860::8888]:53",
                "127.0.0.53:53",
            ],
        );
    }

    #[test]
    fn the_proxy_s_own_addresses_are_skipped_so_queries_never_loop() {
        check(
            "nameserver 10.96.0.10\nnameserver 10.111.2.3\nnameserver 10.112.0.1\n",
            &["10.112.0.1:53"],
        );
    }

    #[test]
    fn lines_that_name_no_address_are_skipped() {
        check(
            "nameserver\nnameserver fe80::1%eth0\nnameserver dns.example.com\n; nameserver 9.9.9.9\n#nameserver 9.9.9.9\nnameservers 9.9.9.9\nnameserver 1.1.1.1\n",
            &["1.1.1.1:53"],
        );
        check("", &[]);
        assert!(
            upstream_from_resolv_conf("nameserver 8.8.8.8", |_| true).is_empty(),
            "everything excluded"
        );
    }
}
