//! The node proxy's DNS server (`flotilla::proxy::dns`) on loopback: real
//! UDP and TCP sockets, real clients, and fake upstream resolvers that are
//! real sockets answering canned responses. No testbed, no root.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla::proxy::dns::{DnsServer, UPSTREAM_TIMEOUT};
use flotilla::proxy::table::{Balance, Endpoint, Mode, Protocol, Service, ServicePort, Table};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

/// A test waits this long for a packet that should come, then fails.
const PATIENCE: Duration = Duration::from_secs(10);

fn table(generation: u64, web_ip: [u8; 4]) -> Arc<Table> {
    Arc::new(Table {
        generation,
        node: "n1".to_string(),
        service_cidr: "10.96.0.0/12".to_string(),
        dns_address: Ipv4Addr::new(10, 96, 0, 10),
        cluster_domain: "cluster.local".to_string(),
        ingress: Vec::new(),
        ingress_default_backend: None,
        ingress_certificates: Vec::new(),
        services: vec![Service {
            namespace: "default".to_string(),
            name: "web".to_string(),
            cluster_ip: Ipv4Addr::from(web_ip),
            client_ip_affinity_seconds: None,
            balance: Balance::RoundRobin,
            ports: vec![ServicePort {
                name: "http".to_string(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: None,
                node_port_local_only: false,
                mode: Mode::Http,
                endpoints: vec![Endpoint {
                    node: "n1".to_string(),
                    pod: "web-1".to_string(),
                    target: SocketAddrV4::new(Ipv4Addr::new(172, 17, 0, 2), 8080),
                    via: None,
                }],
            }],
            pod: None,
        }],
    })
}

/// A DNS server on a loopback address and a port of its own, stopped when
/// dropped.
struct Server {
    address: SocketAddr,
    tables: watch::Sender<Arc<Table>>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn start(upstream: Vec<SocketAddr>) -> Server {
    let server = DnsServer::bind("127.0.0.7:0".parse().expect("an address"))
        .await
        .expect("the DNS server binds on loopback");
    let address = server.local_address();
    let (tables, receiver) = watch::channel(table(1, [10, 96, 0, 20]));
    let task = tokio::spawn(server.run(receiver, upstream));
    Server {
        address,
        tables,
        _task: AbortOnDrop(task),
    }
}

fn query(id: u16, name: &str, kind: RecordType) -> Vec<u8> {
    let mut message = Message::new();
    message
        .set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(
            Name::from_ascii(name).expect("a valid name"),
            kind,
        ));
    message.to_vec().expect("the query encodes")
}

/// The answer an upstream resolver gives to `query`: `address` for its
/// question, with its id.
fn upstream_answer(query: &[u8], address: Ipv4Addr) -> Vec<u8> {
    let request = Message::from_vec(query).expect("the forwarded query parses");
    let mut message = Message::new();
    message
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_recursion_available(true)
        .add_queries(request.queries().iter().cloned())
        .add_answer(Record::from_rdata(
            request.queries()[0].name().clone(),
            300,
            RData::A(A(address)),
        ));
    message.to_vec().expect("the answer encodes")
}

async fn ask_udp(server: SocketAddr, query: &[u8]) -> Message {
    let client = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a client socket");
    client
        .send_to(query, server)
        .await
        .expect("the query is sent");
    receive(&client).await
}

async fn receive(client: &UdpSocket) -> Message {
    let mut buffer = vec![0; 65535];
    let (length, _) = tokio::time::timeout(PATIENCE, client.recv_from(&mut buffer))
        .await
        .expect("an answer within the test's patience")
        .expect("the answer is received");
    Message::from_vec(&buffer[..length]).expect("the answer parses")
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) {
    let length = u16::try_from(message.len()).expect("a small message");
    stream
        .write_all(&length.to_be_bytes())
        .await
        .expect("written");
    stream.write_all(message).await.expect("written");
}

/// One length-prefixed message, or `None` when the peer closed.
async fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut length = [0; 2];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut length))
        .await
        .expect("an answer or a close within the test's patience")
        .ok()?;
    let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
    stream
        .read_exact(&mut message)
        .await
        .expect("the whole message");
    Some(message)
}

fn addresses(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers()
        .iter()
        .filter_map(|record| match record.data() {
            RData::A(A(address)) => Some(*address),
            _ => None,
        })
        .collect()
}

/// A fake upstream resolver on UDP: answers each query with `address` and
/// reports the bytes it received.
async fn udp_upstream(address: Ipv4Addr) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("an upstream socket");
    let local = socket.local_addr().expect("bound");
    let (seen, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buffer = vec![0; 65535];
        while let Ok((length, from)) = socket.recv_from(&mut buffer).await {
            let query = buffer[..length].to_vec();
            let _ = socket
                .send_to(&upstream_answer(&query, address), from)
                .await;
            let _ = seen.send(query);
        }
    });
    (local, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_name_resolves_over_udp_and_tcp() {
    let server = start(vec![]).await;

    let answer = ask_udp(
        server.address,
        &query(0x0101, "web.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(answer.id(), 0x0101);
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert!(answer.authoritative());
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 96, 0, 20)]);

    // Two queries on one connection, answered in order.
    let mut stream = TcpStream::connect(server.address)
        .await
        .expect("connects over TCP");
    write_framed(
        &mut stream,
        &query(0x0202, "WEB.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    write_framed(
        &mut stream,
        &query(0x0303, "nothere.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    let first =
        Message::from_vec(&read_framed(&mut stream).await.expect("an answer")).expect("parses");
    assert_eq!(first.id(), 0x0202);
    assert_eq!(addresses(&first), [Ipv4Addr::new(10, 96, 0, 20)]);
    let second =
        Message::from_vec(&read_framed(&mut stream).await.expect("an answer")).expect("parses");
    assert_eq!(second.id(), 0x0303);
    assert_eq!(second.response_code(), ResponseCode::NXDomain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_table_is_served_from_the_next_query_and_the_last_one_after_its_sender_is_gone() {
    let server = start(vec![]).await;
    let name = "web.default.svc.cluster.local.";
    let before = ask_udp(server.address, &query(1, name, RecordType::A)).await;
    assert_eq!(addresses(&before), [Ipv4Addr::new(10, 96, 0, 20)]);

    server
        .tables
        .send(table(2, [10, 96, 0, 99]))
        .expect("the server listens");
    let after = ask_udp(server.address, &query(2, name, RecordType::A)).await;
    assert_eq!(addresses(&after), [Ipv4Addr::new(10, 96, 0, 99)]);

    // The daemon gone from the other end: the last table still answers.
    let Server {
        address,
        tables,
        _task,
    } = server;
    drop(tables);
    let kept = ask_udp(address, &query(3, name, RecordType::A)).await;
    assert_eq!(addresses(&kept), [Ipv4Addr::new(10, 96, 0, 99)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_names_go_upstream_unchanged_and_come_back_with_the_client_s_id() {
    let (upstream, mut seen) = udp_upstream(Ipv4Addr::new(192, 0, 2, 1)).await;
    let server = start(vec![upstream]).await;

    let sent = query(0xBEEF, "www.example.com.", RecordType::A);
    let answer = ask_udp(server.address, &sent).await;
    assert_eq!(answer.id(), 0xBEEF);
    assert_eq!(addresses(&answer), [Ipv4Addr::new(192, 0, 2, 1)]);
    assert!(
        !answer.authoritative(),
        "the upstream's answer, not the proxy's"
    );
    assert_eq!(
        seen.recv().await.expect("the upstream saw the query"),
        sent,
        "forwarded byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_refuses_is_skipped_for_the_next_at_once() {
    // A port nothing listens on: the kernel answers port unreachable.
    let closed = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
    let refusing = closed.local_addr().expect("bound");
    drop(closed);
    let (upstream, _seen) = udp_upstream(Ipv4Addr::new(192, 0, 2, 2)).await;
    let server = start(vec![refusing, upstream]).await;

    let started = Instant::now();
    let answer = ask_udp(server.address, &query(7, "www.example.com.", RecordType::A)).await;
    assert_eq!(addresses(&answer), [Ipv4Addr::new(192, 0, 2, 2)]);
    assert!(
        started.elapsed() < UPSTREAM_TIMEOUT,
        "no timeout waited: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stays_silent_is_given_up_for_the_next_after_its_timeout() {
    // Bound, never read: the query is swallowed without an error.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
    let (upstream, _seen) = udp_upstream(Ipv4Addr::new(192, 0, 2, 3)).await;
    let server = start(vec![silent.local_addr().expect("bound"), upstream]).await;

    let started = Instant::now();
    let answer = ask_udp(server.address, &query(8, "www.example.com.", RecordType::A)).await;
    assert_eq!(addresses(&answer), [Ipv4Addr::new(192, 0, 2, 3)]);
    assert!(
        started.elapsed() >= UPSTREAM_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_upstream_other_names_fail_at_once() {
    let server = start(vec![]).await;
    let answer = ask_udp(
        server.address,
        &query(0x4242, "www.example.com.", RecordType::A),
    )
    .await;
    assert_eq!(answer.id(), 0x4242);
    assert_eq!(answer.response_code(), ResponseCode::ServFail);

    let mut stream = TcpStream::connect(server.address)
        .await
        .expect("connects over TCP");
    write_framed(
        &mut stream,
        &query(0x4343, "www.example.com.", RecordType::A),
    )
    .await;
    let answer =
        Message::from_vec(&read_framed(&mut stream).await.expect("an answer")).expect("parses");
    assert_eq!(answer.id(), 0x4343);
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_query_is_forwarded_over_tcp() {
    // The upstream listens on TCP only: an answer proves TCP was used, as a
    // client asks again over TCP when the UDP answer was truncated.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("an upstream listener");
    let upstream = listener.local_addr().expect("bound");
    let (seen, mut received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("the proxy connects");
        let query = read_framed(&mut stream).await.expect("a query");
        write_framed(
            &mut stream,
            &upstream_answer(&query, Ipv4Addr::new(192, 0, 2, 4)),
        )
        .await;
        let _ = seen.send(query);
    });
    let server = start(vec![upstream]).await;

    let sent = query(0x5151, "big.example.com.", RecordType::A);
    let mut stream = TcpStream::connect(server.address)
        .await
        .expect("connects over TCP");
    write_framed(&mut stream, &sent).await;
    let answer =
        Message::from_vec(&read_framed(&mut stream).await.expect("an answer")).expect("parses");
    assert_eq!(answer.id(), 0x5151);
    assert_eq!(addresses(&answer), [Ipv4Addr::new(192, 0, 2, 4)]);
    assert_eq!(received.recv().await.expect("the upstream saw it"), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_no_answer_and_the_server_keeps_serving() {
    let server = start(vec![]).await;

    // Over UDP: nothing comes back for the garbage, the next query's answer
    // is the first datagram the client receives.
    let client = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a client socket");
    for garbage in [
        &b""[..],
        b"\x01",
        b"\x12\x34 definitely not DNS",
        &[0xff; 512],
    ] {
        client.send_to(garbage, server.address).await.expect("sent");
    }
    let mut response = query(9, "web.default.svc.cluster.local.", RecordType::A);
    response[2] |= 0x80; // the QR bit: a response, which must not be answered
    client
        .send_to(&response, server.address)
        .await
        .expect("sent");
    client
        .send_to(
            &query(10, "web.default.svc.cluster.local.", RecordType::A),
            server.address,
        )
        .await
        .expect("sent");
    let answer = receive(&client).await;
    assert_eq!(answer.id(), 10);

    // Over TCP: the connection is closed.
    let mut stream = TcpStream::connect(server.address)
        .await
        .expect("connects over TCP");
    write_framed(&mut stream, b"\x12\x34 definitely not DNS").await;
    assert_eq!(
        read_framed(&mut stream).await,
        None,
        "the connection closed"
    );

    let answer = ask_udp(
        server.address,
        &query(11, "web.default.svc.cluster.local.", RecordType::A),
    )
    .await;
    assert_eq!(addresses(&answer), [Ipv4Addr::new(10, 96, 0, 20)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_an_error_naming_the_address() {
    let taken = UdpSocket::bind("127.0.0.7:0").await.expect("a socket");
    let address = taken.local_addr().expect("bound");
    let error = DnsServer::bind(address)
        .await
        .expect_err("the port is taken");
    assert_eq!(
        error.to_string(),
        format!("cannot listen for DNS queries on {address} (udp): Address already in use (os error 98)")
    );
}
