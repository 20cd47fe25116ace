//! The node proxy (`flotilla-proxy run`, src/proxy/) as a real process on
//! loopback: real sockets, real backends, tables applied over its control
//! socket. Cluster IPs are addresses of 127.0.0.0/8 (local without a
//! route, hence `--no-route`), one third octet per test so tests run in
//! parallel; tunnel, Ingress and node ports are free ports the kernel
//! picked.
//! No testbed and no root needed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla::proxy::control;
use flotilla::proxy::table::{
    Balance, Endpoint, IngressBackend, IngressRoute, Mode, PathType, Protocol, ProxyStatus,
    Request, Response, Service, ServiceCounters, ServicePort, Table,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const PROXY: &str = env!("CARGO_BIN_EXE_flotilla-proxy");

/// A `flotilla-proxy run` process, stopped when dropped.
pub(crate) struct Daemon {
    child: Child,
    node: String,
    pub(crate) state: Arc<tempfile::TempDir>,
    socket: PathBuf,
    pub(crate) tunnel: SocketAddrV4,
    /// Where the Ingress is served (on loopback; it listens on every
    /// address).
    pub(crate) ingress: SocketAddrV4,
    /// Where the Ingress's HTTPS is served, likewise.
    pub(crate) ingress_tls: SocketAddrV4,
}

impl Daemon {
    pub(crate) async fn start(node: &str) -> Daemon {
        let state = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        Daemon::start_in(node, state, free_port(), free_port()).await
    }

    /// Starts on `state` (a directory an earlier daemon may have used).
    pub(crate) async fn start_in(
        node: &str,
        state: Arc<tempfile::TempDir>,
        tunnel_port: u16,
        ingress_port: u16,
    ) -> Daemon {
        let socket = state.path().join("control.sock");
        let ingress_tls_port = free_port();
        let child = Command::new(PROXY)
            .args(["run", "--no-route", "--node", node, "--tunnel-port"])
            .arg(tunnel_port.to_string())
            .arg("--ingress-port")
            .arg(ingress_port.to_string())
            .arg("--ingress-tls-port")
            .arg(ingress_tls_port.to_string())
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .arg("--control-socket")
            .arg(&socket)
            // Quiet unless asked: refusals and retries are what tests provoke.
            .env(
                "FLOTILLA_LOG",
                std::env::var("FLOTILLA_LOG").unwrap_or_else(|_| "off".to_owned()),
            )
            .spawn()
            .expect("flotilla-proxy starts");
        let daemon = Daemon {
            child,
            node: node.to_owned(),
            state,
            socket,
            tunnel: SocketAddrV4::new(Ipv4Addr::LOCALHOST, tunnel_port),
            ingress: SocketAddrV4::new(Ipv4Addr::LOCALHOST, ingress_port),
            ingress_tls: SocketAddrV4::new(Ipv4Addr::LOCALHOST, ingress_tls_port),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while daemon.try_status().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "{node}: the proxy's control socket never answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon
    }

    async fn request(&self, request: &Request) -> Response {
        let line = serde_json::to_string(request).unwrap();
        let answer = control::send_line(&self.socket, &line)
            .await
            .expect("the proxy answers");
        serde_json::from_str(&answer).expect("a Response line")
    }

    pub(crate) async fn apply(&self, table: &Table) -> Response {
        self.request(&Request::Apply(table.clone())).await
    }

    async fn try_status(&self) -> Option<ProxyStatus> {
        let answer = control::send_line(&self.socket, "\"status\"").await.ok()?;
        match serde_json::from_str(&answer).ok()? {
            Response::Status(status) => Some(status),
            other => panic!("status answered {other:?}"),
        }
    }

    pub(crate) async fn status(&self) -> ProxyStatus {
        self.try_status().await.expect("the proxy answers Status")
    }

    /// Open connections to `target` as `Status` reports them.
    async fn open_to(&self, target: SocketAddrV4) -> u64 {
        let status = self.status().await;
        status
            .connections
            .iter()
            .find(|c| c.target == target)
            .map_or(0, |c| c.open)
    }

    fn terminate(&self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the pid of a child this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// SIGTERM, then the exit status (within the proxy's drain time).
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the proxy did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now (the kernel's pick, released).
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A backend answering each line it reads with its name (and, for a
/// PROXY v2 backend, the addresses of the header it was sent).
struct Backend {
    name: String,
    address: SocketAddrV4,
    accepted: Arc<Mutex<usize>>,
}

impl Backend {
    async fn lines(name: &str) -> Backend {
        Backend::start(name, false).await
    }

    async fn proxy_v2(name: &str) -> Backend {
        Backend::start(name, true).await
    }

    async fn start(name: &str, proxy_v2: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(address) = listener.local_addr().unwrap() else {
            unreachable!("bound on IPv4")
        };
        let accepted = Arc::new(Mutex::new(0));
        let backend = Backend {
            name: name.to_owned(),
            address,
            accepted: Arc::clone(&accepted),
        };
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                *accepted.lock().unwrap() += 1;
                let name = name.clone();
                tokio::spawn(async move {
                    let mut greeting = name.clone();
                    if proxy_v2 {
                        match read_proxy_v2(&mut stream).await {
                            Some((source, destination)) => {
                                greeting = format!("{name} from {source} to {destination}");
                            }
                            None => return,
                        }
                    }
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(_)) = lines.next_line().await {
                        if write
                            .write_all(format!("{greeting}\n").as_bytes())
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        backend
    }

    fn endpoint(&self) -> Endpoint {
        self.endpoint_on("n1", None)
    }

    fn endpoint_on(&self, node: &str, via: Option<SocketAddrV4>) -> Endpoint {
        Endpoint {
            node: node.to_owned(),
            pod: self.name.clone(),
            target: self.address,
            via,
        }
    }

    fn accepted(&self) -> usize {
        *self.accepted.lock().unwrap()
    }
}

/// The source and destination of a PROXY v2 header over TCP/IPv4, read
/// byte by byte as the specification lays it out.
async fn read_proxy_v2(stream: &mut TcpStream) -> Option<(SocketAddrV4, SocketAddrV4)> {
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed).await.ok()?;
    assert_eq!(
        &fixed[..12],
        b"\r\n\r\n\0\r\nQUIT\n",
        "the PROXY v2 signature"
    );
    assert_eq!(fixed[12..14], [0x21, 0x11], "v2 PROXY, TCP over IPv4");
    let mut rest = vec![0u8; usize::from(u16::from_be_bytes([fixed[14], fixed[15]]))];
    stream.read_exact(&mut rest).await.ok()?;
    let ip = |at: usize| Ipv4Addr::new(rest[at], rest[at + 1], rest[at + 2], rest[at + 3]);
    let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
    Some((
        SocketAddrV4::new(ip(0), port(8)),
        SocketAddrV4::new(ip(4), port(10)),
    ))
}

/// Connects (from `source` when given), sends a line and returns the
/// backend's answer.
async fn ask_from(source: Option<Ipv4Addr>, address: SocketAddrV4) -> std::io::Result<String> {
    let exchange = async {
        let socket = TcpSocket::new_v4()?;
        if let Some(source) = source {
            socket.bind(SocketAddrV4::new(source, 0).into())?;
        }
        let mut stream = socket.connect(address.into()).await?;
        stream.write_all(b"hello\n").await?;
        let mut answer = String::new();
        BufReader::new(&mut stream).read_line(&mut answer).await?;
        if answer.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without an answer",
            ));
        }
        Ok(answer.trim_end().to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in 10 s",
            ))
        })
}

async fn ask(address: SocketAddrV4) -> std::io::Result<String> {
    ask_from(None, address).await
}

/// An open connection to a Service, asked again and again.
struct Conversation {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Conversation {
    async fn open(address: SocketAddrV4) -> Conversation {
        let (read, write) = TcpStream::connect(address).await.unwrap().into_split();
        Conversation {
            lines: BufReader::new(read).lines(),
            write,
        }
    }

    async fn ask(&mut self) -> String {
        self.write.write_all(b"again\n").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
            .await
            .expect("an answer within 5 s")
            .unwrap()
            .expect("the connection stays open")
    }
}

pub(crate) fn cluster_ip(test: u8, n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, test, n)
}

fn service(cluster_ip: Ipv4Addr, port: ServicePort) -> Service {
    Service {
        namespace: "default".to_owned(),
        name: format!("svc-{}", cluster_ip.octets()[3]),
        cluster_ip,
        client_ip_affinity_seconds: None,
        balance: Balance::RoundRobin,
        ports: vec![port],
        pod: None,
    }
}

pub(crate) fn port(number: u16, mode: Mode, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        name: String::new(),
        protocol: Protocol::Tcp,
        port: number,
        node_port: None,
        node_port_local_only: false,
        mode,
        endpoints,
    }
}

pub(crate) fn table(generation: u64, node: &str, services: Vec<Service>) -> Table {
    Table {
        generation,
        node: node.to_owned(),
        service_cidr: "127.0.0.0/8".to_owned(),
        dns_address: Ipv4Addr::new(127, 0, 0, 53),
        cluster_domain: "cluster.local".to_owned(),
        services,
        ingress: Vec::new(),
        ingress_default_backend: None,
        ingress_certificates: Vec::new(),
    }
}

pub(crate) fn applied(generation: u64) -> Response {
    Response::Applied { generation }
}

/// Answers per backend name.
fn tally(answers: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for answer in answers {
        *counts.entry(answer.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_connections_over_three_backends() {
    let backends = [
        Backend::lines("a").await,
        Backend::lines("b").await,
        Backend::lines("c").await,
    ];
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(1, 1), 8080);
    let endpoints = backends.iter().map(Backend::endpoint).collect();
    let web = service(*address.ip(), port(8080, Mode::Tcp, endpoints));
    assert_eq!(proxy.apply(&table(1, "n1", vec![web])).await, applied(1));

    let mut answers = Vec::new();
    for _ in 0..9 {
        answers.push(ask(address).await.unwrap());
    }
    assert_eq!(
        tally(&answers),
        HashMap::from([("a".into(), 3), ("b".into(), 3), ("c".into(), 3)])
    );
    let counters = &proxy.status().await.services[0];
    assert_eq!(
        (counters.port, counters.requests, counters.errors),
        (8080, 9, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_endpoint_is_retried_on_another_and_none_fails() {
    let live = [Backend::lines("a").await, Backend::lines("b").await];
    let dead = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port());
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(2, 1), 8080);
    let dead_endpoint = Endpoint {
        node: "n1".into(),
        pod: "dead".into(),
        target: dead,
        via: None,
    };
    let endpoints = vec![
        dead_endpoint.clone(),
        live[0].endpoint(),
        live[1].endpoint(),
    ];
    let web = service(*address.ip(), port(8080, Mode::Tcp, endpoints));
    assert_eq!(proxy.apply(&table(1, "n1", vec![web])).await, applied(1));

    let mut answers = Vec::new();
    for _ in 0..12 {
        answers.push(
            ask(address)
                .await
                .expect("every connection reaches a live endpoint"),
        );
    }
    assert_eq!(
        tally(&answers),
        HashMap::from([("a".into(), 6), ("b".into(), 6)])
    );
    assert_eq!(proxy.status().await.services[0].errors, 0);

    // Only the dead one: the connection is closed, and counted as an error.
    let only_dead = service(*address.ip(), port(8080, Mode::Tcp, vec![dead_endpoint]));
    assert_eq!(
        proxy.apply(&table(2, "n1", vec![only_dead])).await,
        applied(2)
    );
    assert!(ask(address).await.is_err());
    let counters = &proxy.status().await.services[0];
    assert_eq!(
        (counters.requests, counters.errors, counters.open),
        (13, 1, 0)
    );
}

/// The zero-drop contract: once an `Apply` without an endpoint has
/// answered, no new connection goes to it, and its open connections go on
/// and are counted until they close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_endpoint_gets_no_new_connection_and_keeps_its_open_ones() {
    let a = Backend::lines("a").await;
    let b = Backend::lines("b").await;
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(3, 1), 8080);
    let with = |generation, endpoints: Vec<Endpoint>| {
        table(
            generation,
            "n1",
            vec![service(*address.ip(), port(8080, Mode::Tcp, endpoints))],
        )
    };
    assert_eq!(
        proxy
            .apply(&with(1, vec![a.endpoint(), b.endpoint()]))
            .await,
        applied(1)
    );

    // A steady load while tables change under it: never a failure.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let running = Arc::clone(&running);
            tokio::spawn(async move {
                let (mut answered, mut failed) = (0, Vec::new());
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    match ask(address).await {
                        Ok(_) => answered += 1,
                        Err(error) => failed.push(error.to_string()),
                    }
                }
                (answered, failed)
            })
        })
        .collect();

    let mut generation = 1;
    for _ in 0..5 {
        // `a` leaves while a conversation with it is open.
        let mut with_a = loop {
            let mut conversation = Conversation::open(address).await;
            if conversation.ask().await == "a" {
                break conversation;
            }
        };
        generation += 1;
        assert_eq!(
            proxy.apply(&with(generation, vec![b.endpoint()])).await,
            applied(generation)
        );
        // Connections chosen before the answer may still be connecting:
        // counted, they end (the load's are short) before `a` is watched.
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.open_to(a.address).await != 1 {
            assert!(
                Instant::now() < deadline,
                "a's connections from the old table never ended"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let accepted_by_a = a.accepted();
        for _ in 0..10 {
            assert_eq!(
                ask(address).await.unwrap(),
                "b",
                "a new connection went to a removed endpoint"
            );
        }
        assert_eq!(with_a.ask().await, "a", "the open connection to a goes on");
        assert_eq!(
            proxy.open_to(a.address).await,
            1,
            "the open connection to a is counted"
        );
        drop(with_a);
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.open_to(a.address).await != 0 {
            assert!(
                Instant::now() < deadline,
                "a's closed connection is still counted"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            a.accepted(),
            accepted_by_a,
            "a accepted a connection after it was removed"
        );
        // `a` is back.
        generation += 1;
        assert_eq!(
            proxy
                .apply(&with(generation, vec![a.endpoint(), b.endpoint()]))
                .await,
            applied(generation)
        );
    }

    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for task in load {
        let (count, failed) = task.await.unwrap();
        assert_eq!(
            failed,
            Vec::<String>::new(),
            "connections failed during table changes"
        );
        answered += count;
    }
    assert!(answered > 0, "the load ran");
    assert_eq!(proxy.status().await.services[0].errors, 0);
}

/// Two proxies: the first reaches an endpoint of the second's node
/// through its tunnel, and the endpoint (PROXY v2 mode) learns the
/// original client. An endpoint the second proxy does not serve is
/// refused by its tunnel and retried on another, with no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_carries_a_connection_to_another_node_with_the_client_address() {
    let remote = Backend::proxy_v2("remote").await;
    let n2 = Daemon::start("n2").await;
    let n1 = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(4, 1), 9000);
    // The same Service on n2; its virtual address differs only because
    // both proxies share this host (the tunnel names a Service by name).
    let address_on_n2 = SocketAddrV4::new(cluster_ip(104, 1), 9000);
    let on_n2 = service(
        *address_on_n2.ip(),
        port(9000, Mode::ProxyV2, vec![remote.endpoint_on("n2", None)]),
    );
    assert_eq!(n2.apply(&table(1, "n2", vec![on_n2])).await, applied(1));
    let stranger = Endpoint {
        node: "n2".into(),
        pod: "unknown-to-n2".into(),
        target: SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port()),
        via: Some(n2.tunnel),
    };
    let endpoints = vec![remote.endpoint_on("n2", Some(n2.tunnel)), stranger];
    let on_n1 = service(*address.ip(), port(9000, Mode::ProxyV2, endpoints));
    assert_eq!(n1.apply(&table(1, "n1", vec![on_n1])).await, applied(1));

    let client = Ipv4Addr::new(127, 0, 4, 200);
    for _ in 0..4 {
        let answer = ask_from(Some(client), address).await.unwrap();
        let (name, rest) = answer.split_once(" from ").unwrap();
        let (source, destination) = rest.split_once(" to ").unwrap();
        assert_eq!(name, "remote");
        assert_eq!(source.parse::<SocketAddrV4>().unwrap().ip(), &client);
        assert_eq!(destination, address_on_n2.to_string());
    }
    assert_eq!(n1.status().await.services[0].errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_only_node_port_never_forwards_to_another_node() {
    let local = Backend::lines("local").await;
    let remote = Backend::lines("remote").await;
    let n2 = Daemon::start("n2").await;
    let n1 = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(5, 1), 8080);
    let on_n2 = service(
        cluster_ip(105, 1),
        port(8080, Mode::Tcp, vec![remote.endpoint_on("n2", None)]),
    );
    assert_eq!(n2.apply(&table(1, "n2", vec![on_n2])).await, applied(1));
    let node_port = free_port();
    let mut web = port(
        8080,
        Mode::Tcp,
        vec![local.endpoint(), remote.endpoint_on("n2", Some(n2.tunnel))],
    );
    web.node_port = Some(node_port);
    web.node_port_local_only = true;
    assert_eq!(
        n1.apply(&table(1, "n1", vec![service(*address.ip(), web)]))
            .await,
        applied(1)
    );

    let node_address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, node_port);
    let mut through_node_port = Vec::new();
    let mut through_cluster_ip = Vec::new();
    // One after the other: both addresses share the port's rotation.
    for _ in 0..6 {
        through_node_port.push(ask(node_address).await.unwrap());
    }
    for _ in 0..6 {
        through_cluster_ip.push(ask(address).await.unwrap());
    }
    assert_eq!(
        tally(&through_node_port),
        HashMap::from([("local".into(), 6)])
    );
    assert_eq!(
        tally(&through_cluster_ip).len(),
        2,
        "the virtual address serves both: {through_cluster_ip:?}"
    );
}

/// A raw HTTP/1.1 backend that answers with the forwarding headers it got.
async fn http_backend() -> SocketAddrV4 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(address) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let mut seen = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("x-forwarded-") {
                        seen.push(lower);
                    }
                }
                seen.sort();
                let body = seen.join("\n");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = write.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

/// Two GETs on one kept-alive connection from `source`; both responses.
async fn two_gets(source: Ipv4Addr, address: SocketAddrV4) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddrV4::new(source, 0).into()).unwrap();
    let mut stream = socket.connect(address.into()).await.unwrap();
    let get = "GET / HTTP/1.1\r\nhost: web.example\r\nx-forwarded-for: 203.0.113.9\r\n\r\n";
    let last = "GET / HTTP/1.1\r\nhost: web.example\r\nconnection: close\r\n\r\n";
    stream.write_all(get.as_bytes()).await.unwrap();
    stream.write_all(last.as_bytes()).await.unwrap();
    let mut responses = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut responses),
    )
    .await
    .expect("responses within 10 s")
    .unwrap();
    responses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_backend_sees_the_client_in_x_forwarded_for() {
    let backend = http_backend().await;
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(6, 1), 80);
    let endpoint = Endpoint {
        node: "n1".into(),
        pod: "web".into(),
        target: backend,
        via: None,
    };
    let web = service(*address.ip(), port(80, Mode::Http, vec![endpoint]));
    assert_eq!(proxy.apply(&table(1, "n1", vec![web])).await, applied(1));

    let responses = two_gets(Ipv4Addr::new(127, 0, 6, 77), address).await;
    let expected_first = "x-forwarded-for: 203.0.113.9, 127.0.6.77\nx-forwarded-host: web.example\nx-forwarded-proto: http";
    let expected_second =
        "x-forwarded-for: 127.0.6.77\nx-forwarded-host: web.example\nx-forwarded-proto: http";
    assert!(responses.starts_with("HTTP/1.1 200 OK"), "{responses}");
    assert!(responses.contains(expected_first), "{responses}");
    assert!(responses.ends_with(expected_second), "{responses}");
    let counters = &proxy.status().await.services[0];
    assert_eq!((counters.requests, counters.errors), (2, 0));

    // No endpoint: 503.
    let empty = service(*address.ip(), port(80, Mode::Http, vec![]));
    assert_eq!(proxy.apply(&table(2, "n1", vec![empty])).await, applied(2));
    let responses = two_gets(Ipv4Addr::new(127, 0, 6, 77), address).await;
    assert!(
        responses.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{responses}"
    );
    assert_eq!(proxy.status().await.services[0].errors, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_is_kept_and_served_again_after_a_restart() {
    let backend = Backend::lines("a").await;
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(7, 1), 8080);
    let web = service(
        *address.ip(),
        port(8080, Mode::Tcp, vec![backend.endpoint()]),
    );
    assert_eq!(proxy.apply(&table(5, "n1", vec![web])).await, applied(5));
    assert_eq!(ask(address).await.unwrap(), "a");
    let state = Arc::clone(&proxy.state);
    let (tunnel_port, ingress_port) = (proxy.tunnel.port(), proxy.ingress.port());
    assert!(proxy.stop().success(), "SIGTERM stops the proxy cleanly");
    assert!(
        ask(address).await.is_err(),
        "nothing listens while the proxy is down"
    );

    let proxy = Daemon::start_in("n1", state, tunnel_port, ingress_port).await;
    assert_eq!(proxy.status().await.generation, 5);
    assert_eq!(ask(address).await.unwrap(), "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_table_is_ignored_and_one_for_another_node_refused() {
    let (a, b) = (Backend::lines("a").await, Backend::lines("b").await);
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(8, 1), 8080);
    let with = |generation, node: &str, backend: &Backend| {
        table(
            generation,
            node,
            vec![service(
                *address.ip(),
                port(8080, Mode::Tcp, vec![backend.endpoint()]),
            )],
        )
    };
    assert_eq!(proxy.apply(&with(5, "n1", &a)).await, applied(5));
    assert_eq!(
        proxy.apply(&with(3, "n1", &b)).await,
        applied(5),
        "the newer generation answers"
    );
    assert_eq!(proxy.status().await.generation, 5);
    assert_eq!(ask(address).await.unwrap(), "a");

    let refused = proxy.apply(&with(6, "n2", &b)).await;
    assert_eq!(
        refused,
        Response::Error {
            message: "the table is for node \"n2\", this proxy serves node \"n1\"".into()
        }
    );
    assert_eq!(ask(address).await.unwrap(), "a");
    assert_eq!(proxy.node, "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_already_taken_is_an_error_and_the_old_table_stays() {
    let backend = Backend::lines("a").await;
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(9, 1), 8080);
    let taken = SocketAddrV4::new(cluster_ip(9, 2), 8080);
    let _holder = std::net::TcpListener::bind(taken).unwrap();
    let web = || {
        service(
            *address.ip(),
            port(8080, Mode::Tcp, vec![backend.endpoint()]),
        )
    };
    assert_eq!(proxy.apply(&table(1, "n1", vec![web()])).await, applied(1));

    let api = service(*taken.ip(), port(8080, Mode::Tcp, vec![backend.endpoint()]));
    let Response::Error { message } = proxy.apply(&table(2, "n1", vec![web(), api])).await else {
        panic!("a taken port must be refused")
    };
    assert!(
        message.starts_with("binding 127.0.9.2:8080 for service default/svc-2 port 8080: "),
        "{message}"
    );
    assert_eq!(proxy.status().await.generation, 1);
    assert_eq!(ask(address).await.unwrap(), "a");
}

/// `flotilla-proxy ctl`: one line in, one line out, the exit code and a
/// one-line message saying whether the daemon did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_passes_one_line_and_exits_by_the_answer() {
    let proxy = Daemon::start("n1").await;
    let ctl = |input: String| {
        let mut child = Command::new(PROXY)
            .arg("ctl")
            .arg("--control-socket")
            .arg(&proxy.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (code, stdout, stderr) = ctl("\"status\"\n".into());
    assert_eq!(code, Some(0), "{stderr}");
    let status: Response = serde_json::from_str(&stdout).unwrap();
    assert!(matches!(
        status,
        Response::Status(ProxyStatus { generation: 0, .. })
    ));

    let request = serde_json::to_string(&Request::Apply(table(1, "n1", vec![]))).unwrap();
    assert_eq!(
        ctl(request + "\n"),
        (
            Some(0),
            "{\"applied\":{\"generation\":1}}\n".into(),
            String::new()
        )
    );

    let (code, stdout, stderr) = ctl("{\"nonsense\":1}\n".into());
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("{\"error\":"), "{stdout}");
    assert!(stderr.starts_with("error: invalid request"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    let (code, _, stderr) = Command::new(PROXY)
        .args(["ctl", "--control-socket", "/nonexistent/control.sock"])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            (
                o.status.code(),
                o.stdout,
                String::from_utf8(o.stderr).unwrap(),
            )
        })
        .unwrap();
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        "error: no request on stdin (one JSON Request line expected)\n"
    );
}

/// SIGTERM: no new connection is accepted, an open one finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_proxy_lets_open_connections_finish() {
    let backend = Backend::lines("a").await;
    let proxy = Daemon::start("n1").await;
    let address = SocketAddrV4::new(cluster_ip(10, 1), 8080);
    let web = service(
        *address.ip(),
        port(8080, Mode::Tcp, vec![backend.endpoint()]),
    );
    assert_eq!(proxy.apply(&table(1, "n1", vec![web])).await, applied(1));
    let mut open = Conversation::open(address).await;
    assert_eq!(open.ask().await, "a");

    proxy.terminate();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ask(address).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the stopping proxy still accepts"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(open.ask().await, "a", "the open connection still works");
    drop(open);
    assert!(proxy.stop().success());
}

/// A raw HTTP/1.1 backend named `name`: it answers every request with
/// its name, the request's target, and the forwarding headers it got,
/// one per line.
pub(crate) async fn named_http_backend(
    name: &str,
    node: &str,
    via: Option<SocketAddrV4>,
) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let SocketAddr::V4(address) = listener.local_addr().unwrap() else {
        unreachable!()
    };
    let answer_name = name.to_owned();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let name = answer_name.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let Ok(Some(request_line)) = lines.next_line().await else {
                    return;
                };
                let target = request_line
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let mut seen = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if lower.starts_with("x-forwarded-") {
                        seen.push(lower);
                    }
                }
                seen.sort();
                let body = format!("{name} {target}\n{}", seen.join("\n"));
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = write.write_all(response.as_bytes()).await;
            });
        }
    });
    Endpoint {
        node: node.to_owned(),
        pod: name.to_owned(),
        target: address,
        via,
    }
}

/// One `GET path` with `Host: host`, sent from `source`: the status code
/// and the body.
pub(crate) async fn http_get(
    source: Ipv4Addr,
    address: SocketAddrV4,
    host: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddrV4::new(source, 0).into())?;
        let mut stream = socket.connect(address.into()).await?;
        let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidData, answer.clone());
        let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(invalid)?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(invalid)?;
        Ok((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in 10 s",
            ))
        })
}

fn ingress_route(host: Option<&str>, path_type: PathType, path: &str, to: &str) -> IngressRoute {
    IngressRoute {
        host: host.map(str::to_owned),
        path: path.to_owned(),
        path_type,
        backend: ingress_backend(to),
    }
}

fn ingress_backend(service: &str) -> IngressBackend {
    IngressBackend {
        namespace: "default".to_owned(),
        service: service.to_owned(),
        port: 80,
    }
}

pub(crate) fn named_service(name: &str, cluster_ip: Ipv4Addr, port: ServicePort) -> Service {
    Service {
        name: name.to_owned(),
        ..service(cluster_ip, port)
    }
}

fn counters<'a>(status: &'a ProxyStatus, name: &str) -> &'a ServiceCounters {
    status
        .services
        .iter()
        .find(|counters| counters.name == name)
        .unwrap_or_else(|| panic!("no counters for {name}: {status:?}"))
}

/// Two hosts and their paths routed to two Services (one in `Tcp` mode:
/// the Ingress speaks HTTP to it all the same), `Exact` against `Prefix`,
/// 404 without a default backend, then the default backend, 503 for a
/// backend without endpoints, and no listener once no route is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_routes_hosts_and_paths_to_services() {
    let web_endpoint = named_http_backend("web", "n1", None).await;
    let api_endpoint = named_http_backend("api", "n1", None).await;
    let proxy = Daemon::start("n1").await;
    // The Services' port is the Ingress's (80 and 80 on a node): their
    // virtual addresses and the Ingress's wildcard address listen together.
    let number = proxy.ingress.port();
    let to = |service| IngressBackend {
        port: number,
        ..ingress_backend(service)
    };
    let route = |host, path_type, path, service| IngressRoute {
        backend: to(service),
        ..ingress_route(host, path_type, path, service)
    };
    let services = |web_endpoints: Vec<Endpoint>| {
        vec![
            named_service(
                "api",
                cluster_ip(11, 1),
                port(number, Mode::Tcp, vec![api_endpoint.clone()]),
            ),
            named_service(
                "web",
                cluster_ip(11, 2),
                port(number, Mode::Http, web_endpoints),
            ),
        ]
    };
    let routes = vec![
        route(Some("shop.example"), PathType::Prefix, "/", "web"),
        route(Some("shop.example"), PathType::Prefix, "/api", "api"),
        route(Some("api.example"), PathType::Prefix, "/", "api"),
        route(Some("api.example"), PathType::Exact, "/status", "web"),
    ];
    let mut routed = table(1, "n1", services(vec![web_endpoint.clone()]));
    routed.ingress = routes.clone();
    assert_eq!(proxy.apply(&routed).await, applied(1));

    let client = Ipv4Addr::new(127, 0, 11, 77);
    let get = |host: &'static str, path: &'static str| async move {
        let (status, body) = http_get(client, proxy.ingress, host, path).await.unwrap();
        (status, body.lines().next().unwrap_or_default().to_owned())
    };
    let rows = [
        ("shop.example", "/", "web /"),
        ("shop.example", "/cart?id=7", "web /cart?id=7"),
        ("shop.example", "/api/cart", "api /api/cart"),
        // Element by element: not a string prefix.
        ("shop.example", "/apix", "web /apix"),
        // The port and case of the host do not matter.
        ("Shop.Example:8080", "/api", "api /api"),
        ("api.example", "/status", "web /status"),
        // `Exact`: the whole path.
        ("api.example", "/status/", "api /status/"),
        ("api.example", "/v1/users", "api /v1/users"),
    ];
    for (host, path, expected) in rows {
        assert_eq!(
            get(host, path).await,
            (200, expected.to_owned()),
            "{host}{path}"
        );
    }
    let (status, body) = get("other.example", "/").await;
    assert_eq!(
        (status, body.as_str()),
        (
            404,
            "no Ingress route for host \"other.example\" and path \"/\""
        )
    );

    // The backend sees the client, the scheme and the host asked for.
    let (_, body) = http_get(client, proxy.ingress, "shop.example", "/")
        .await
        .unwrap();
    assert_eq!(
        body,
        "web /\nx-forwarded-for: 127.0.11.77\nx-forwarded-host: shop.example\nx-forwarded-proto: http"
    );

    // Counted per backend Service port; a 404 is no Service's.
    let status = proxy.status().await;
    let (web, api) = (counters(&status, "web"), counters(&status, "api"));
    assert_eq!((web.requests, web.errors, web.open), (5, 0, 0));
    assert_eq!((api.requests, api.errors, api.open), (4, 0, 0));

    // A default backend takes what no route matches.
    let mut with_default = table(2, "n1", services(vec![web_endpoint.clone()]));
    with_default.ingress = routes.clone();
    with_default.ingress_default_backend = Some(to("api"));
    assert_eq!(proxy.apply(&with_default).await, applied(2));
    assert_eq!(get("other.example", "/").await, (200, "api /".to_owned()));
    assert_eq!(get("shop.example", "/").await, (200, "web /".to_owned()));

    // A backend without endpoints: 503, an error of its Service port.
    let mut without_web = table(3, "n1", services(vec![]));
    without_web.ingress = routes;
    assert_eq!(proxy.apply(&without_web).await, applied(3));
    let (status, body) = get("shop.example", "/").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        format!("service default/web port {number}: no endpoint could be reached (0 tried)")
    );
    assert_eq!(
        get("shop.example", "/api").await,
        (200, "api /api".to_owned())
    );
    let status = proxy.status().await;
    assert_eq!(counters(&status, "web").errors, 1);

    // Only a default backend still listens; no Ingress at all does not.
    let mut default_only = table(4, "n1", services(vec![web_endpoint]));
    default_only.ingress_default_backend = Some(to("web"));
    assert_eq!(proxy.apply(&default_only).await, applied(4));
    assert_eq!(get("api.example", "/x").await, (200, "web /x".to_owned()));
    assert_eq!(
        proxy.apply(&table(5, "n1", services(vec![]))).await,
        applied(5)
    );
    // The listener closes as its task ends, just after the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(proxy.ingress).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "the Ingress port still listens without any route"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An Ingress backend on another node: the request goes through that
/// node's tunnel, and the backend still sees the original client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_reaches_a_remote_endpoint_through_the_tunnel() {
    let remote = named_http_backend("remote", "n2", None).await;
    let n2 = Daemon::start("n2").await;
    let n1 = Daemon::start("n1").await;
    // The same Service on both (their virtual addresses differ only
    // because both proxies share this host).
    let on_n2 = named_service(
        "web",
        cluster_ip(112, 1),
        port(80, Mode::Http, vec![remote.clone()]),
    );
    assert_eq!(n2.apply(&table(1, "n2", vec![on_n2])).await, applied(1));
    let through_tunnel = Endpoint {
        via: Some(n2.tunnel),
        ..remote
    };
    let on_n1 = named_service(
        "web",
        cluster_ip(12, 1),
        port(80, Mode::Http, vec![through_tunnel]),
    );
    let mut routed = table(1, "n1", vec![on_n1]);
    routed.ingress = vec![ingress_route(None, PathType::Prefix, "/", "web")];
    assert_eq!(n1.apply(&routed).await, applied(1));

    let client = Ipv4Addr::new(127, 0, 12, 77);
    let (status, body) = http_get(client, n1.ingress, "any.example", "/page")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "remote /page\nx-forwarded-for: 127.0.12.77\nx-forwarded-host: any.example\nx-forwarded-proto: http"
    );
    let status = n1.status().await;
    assert_eq!(
        (
            counters(&status, "web").requests,
            counters(&status, "web").errors
        ),
        (1, 0)
    );
}

/// The Ingress port is part of the all-or-nothing `Apply`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_port_already_taken_is_an_error_and_the_old_table_stays() {
    let backend = Backend::lines("a").await;
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = holder.local_addr().unwrap().port();
    let state = Arc::new(tempfile::tempdir().unwrap());
    let proxy = Daemon::start_in("n1", state, free_port(), taken).await;
    let address = SocketAddrV4::new(cluster_ip(13, 1), 8080);
    let web = || {
        named_service(
            "web",
            *address.ip(),
            port(8080, Mode::Tcp, vec![backend.endpoint()]),
        )
    };
    assert_eq!(proxy.apply(&table(1, "n1", vec![web()])).await, applied(1));

    let mut routed = table(2, "n1", vec![web()]);
    routed.ingress_default_backend = Some(IngressBackend {
        port: 8080,
        ..ingress_backend("web")
    });
    let Response::Error { message } = proxy.apply(&routed).await else {
        panic!("a taken Ingress port must be refused")
    };
    assert!(
        message.starts_with(&format!("binding 0.0.0.0:{taken} for the Ingress: ")),
        "{message}"
    );
    assert_eq!(proxy.status().await.generation, 1);
    assert_eq!(ask(address).await.unwrap(), "a");
}
