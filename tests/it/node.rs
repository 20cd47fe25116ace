//! Nodes over SSH, Docker through the tunnel, against the real testbed
//! (sshd and dockerd in network namespaces; see scripts/testbed).
//!
//! Tests run in parallel and each keeps to its own node where it changes
//! something: n1 for container operations and host keys, n2 for a node
//! going down or silent and coming back (one such test at a time, under
//! [`N2`]), n3 for image shipping. They share the testbed with each other,
//! never with an end-to-end scenario ([`shared_cluster`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla::cluster::{ContainerState, ManagedLabels, PublishedPort};
use flotilla::leader::docker::DockerNodes;
use flotilla::leader::nodes::NodeOps;
use flotilla::leader::spec::{DockerRestartPolicy, ReplicaContainer};
use flotilla::manifest::model::{Kind, Protocol, PullPolicy};
use flotilla::node::{
    ContainerSpec, NodeClient, NodeError, NodePool, PortBinding, RestartPolicy, SshOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{shared_cluster, TestCluster};

/// Held by each test that takes n2 down or silences it, and by those that
/// need every node up; always taken after [`shared_cluster`].
static N2: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Brings n2 back when a test that took it down ends, passed or failed, so
/// that one failure does not fail the tests after it.
struct RestoreN2<'a>(&'a TestCluster);

impl Drop for RestoreN2<'_> {
    fn drop(&mut self) {
        self.0.restore_node("n2");
    }
}

fn labels(node: &str, name: &str, slot: u32) -> ManagedLabels {
    ManagedLabels {
        namespace: "default".into(),
        kind: Kind::Deployment,
        name: name.into(),
        slot,
        template_hash: "0123456789".into(),
        commit: "c0ffee".into(),
        node: node.into(),
        container: "app".into(),
    }
}

fn spec(labels: &ManagedLabels, image: &str, cmd: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: labels.container_name(),
        image: image.to_string(),
        labels: labels
            .to_docker_labels()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// Sends `GET /` over `stream` and returns the whole response.
async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
) -> String {
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .await
        .expect("request written");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_to_every_node_reports_its_facts() {
    let cluster = shared_cluster().await;
    let _n2 = N2.lock().await;
    let pool = NodePool::new(&cluster.nodes(), &cluster.ssh_options());
    for name in cluster.node_names() {
        let node = pool.get(&name).expect("node in pool");
        let facts = node.facts().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(facts.cpu.0 >= 1000, "{name}: {facts:?}");
        assert!(facts.memory.0 > 0, "{name}: {facts:?}");
        assert!(!facts.docker_version.is_empty(), "{name}: {facts:?}");
        assert_eq!(node.sessions_opened(), 1, "{name}");
    }
    assert!(matches!(
        pool.get("nope"),
        Err(NodeError::UnknownNode { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn container_lifecycle_over_ssh() {
    let cluster = shared_cluster().await;
    let node = NodeClient::new(&cluster.node("n1"), cluster.ssh_options());
    let labels = labels("n1", "web", 0);
    let mut web = spec(
        &labels,
        &cluster.image(),
        &[
            "sh",
            "-c",
            "echo hello-from-web; exec httpd -f -p 8080 -h /www",
        ],
    );
    web.ports = vec![PortBinding {
        container_port: 8080,
        protocol: Protocol::TCP,
        host_port: Some(18080),
        host_ip: None,
    }];
    web.memory = 64 * 1024 * 1024;
    web.nano_cpus = 500_000_000;
    web.env = vec![
        ("GREETING".into(), "hello there".into()),
        ("EMPTY".into(), String::new()),
    ];
    web.restart_policy = RestartPolicy::OnFailure { max_retries: 2 };
    node.remove(&web.name).await.expect("clean slate");

    let id = node.create(&web).await.expect("create");
    // What the daemon recorded, read back.
    let inspect = node
        .docker()
        .await
        .expect("docker")
        .inspect_container(&web.name, None)
        .await
        .expect("inspect");
    let env = inspect
        .config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    for wanted in ["GREETING=hello there", "EMPTY="] {
        assert!(env.iter().any(|e| e == wanted), "{wanted} in {env:?}");
    }
    let host = inspect.host_config.as_ref().expect("host config");
    assert_eq!(
        (host.memory, host.nano_cpus),
        (Some(64 * 1024 * 1024), Some(500_000_000))
    );
    let restart = host.restart_policy.as_ref().expect("restart policy");
    assert_eq!(
        (
            restart.name.map(|n| n.to_string()),
            restart.maximum_retry_count
        ),
        (Some("on-failure".to_string()), Some(2))
    );
    assert_eq!(
        node.create(&web).await.expect("create again"),
        id,
        "create is idempotent"
    );
    let mut other = web.clone();
    other
        .labels
        .insert("dev.flotilla.commit".into(), "other".into());
    assert!(
        matches!(node.create(&other).await, Err(NodeError::NameInUse { .. })),
        "a name taken with other labels is an error"
    );
    node.start(&web.name).await.expect("start");
    node.start(&web.name).await.expect("start again is a no-op");

    let observed = node.list_managed().await.expect("list");
    let found = observed
        .iter()
        .find(|c| c.name == web.name)
        .expect("listed");
    assert_eq!(found.labels, labels);
    assert_eq!(found.state, ContainerState::Running);
    assert_eq!(found.image, cluster.image());
    assert!(found.started_at.is_some());
    assert_eq!(found.restart_count, 0);
    // Docker's live bindings: 8080/tcp on host port 18080, on every address
    // Docker bound (0.0.0.0, and :: where it has IPv6).
    assert!(!found.ports.is_empty(), "{:?}", found.ports);
    for port in &found.ports {
        assert_eq!(
            (port.container_port, port.protocol, port.host_port),
            (8080, Protocol::TCP, 18080),
            "{:?}",
            found.ports
        );
        assert!(
            ["0.0.0.0", "::"].contains(&port.host_ip.as_str()),
            "{port:?}"
        );
    }

    // The published port answers on the node's address...
    let address = cluster.address("n1");
    let mut response = String::new();
    for _ in 0..50 {
        if let Ok(stream) = tokio::net::TcpStream::connect((address.as_str(), 18080)).await {
            response = http_get(stream).await;
            if response.contains("flotilla-test 1") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(response.contains("flotilla-test 1"), "response: {response}");
    // ...and through a direct-tcpip channel, as readiness probes see it.
    let tunnel = node
        .open_tcp("127.0.0.1", 18080)
        .await
        .expect("tcp channel");
    let response = http_get(tunnel).await;
    assert!(response.contains("flotilla-test 1"), "response: {response}");

    let logs = node.logs(&web.name, 10).await.expect("logs");
    assert!(logs.contains("hello-from-web"), "logs: {logs:?}");

    let version = node
        .exec(&web.name, &["cat", "/etc/flotilla-test-version"])
        .await
        .expect("exec");
    assert_eq!((version.exit_code, version.stdout.as_str()), (0, "1\n"));
    let failing = node
        .exec(&web.name, &["sh", "-c", "echo oops >&2; exit 3"])
        .await
        .expect("exec");
    assert_eq!((failing.exit_code, failing.stderr.as_str()), (3, "oops\n"));

    node.stop(&web.name, Duration::from_secs(1))
        .await
        .expect("stop");
    let observed = node.list_managed().await.expect("list");
    let found = observed
        .iter()
        .find(|c| c.name == web.name)
        .expect("listed");
    assert!(
        matches!(found.state, ContainerState::Exited { code } if code != 0),
        "{:?}",
        found.state
    );
    assert!(found.finished_at.is_some());
    // Stopped, Docker binds nothing: the host config's request is reported.
    assert_eq!(
        found.ports,
        [PublishedPort {
            container_port: 8080,
            protocol: Protocol::TCP,
            host_ip: String::new(),
            host_port: 18080,
        }]
    );

    node.remove(&web.name).await.expect("remove");
    node.remove(&web.name)
        .await
        .expect("remove of a missing container");
    node.stop(&web.name, Duration::from_secs(1))
        .await
        .expect("stop of a missing container");
    let observed = node.list_managed().await.expect("list");
    assert!(observed.iter().all(|c| c.name != web.name));
    assert_eq!(
        node.sessions_opened(),
        1,
        "every operation shared one session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unmanaged_containers_are_not_listed() {
    let cluster = shared_cluster().await;
    let node = NodeClient::new(&cluster.node("n1"), cluster.ssh_options());
    let name = "flotilla-test-unmanaged";
    node.remove(name).await.expect("clean slate");
    let plain = ContainerSpec {
        name: name.into(),
        image: cluster.image(),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        ..Default::default()
    };
    node.create(&plain).await.expect("create");
    let observed = node.list_managed().await.expect("list");
    assert!(observed.iter().all(|c| c.name != name), "{observed:?}");
    node.remove(name).await.expect("remove");
}

fn message(error: NodeError) -> String {
    error.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_host_key_is_refused() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = dir.path().join("known_hosts");
    // n1's address recorded with n2's key: what a changed key looks like.
    let n2_key = std::fs::read_to_string(cluster.host_key_file("n2")).expect("n2 key");
    let n2_key: Vec<&str> = n2_key.split_whitespace().take(2).collect();
    std::fs::write(
        &known_hosts,
        format!("# other\n{} {}\n", cluster.address("n1"), n2_key.join(" ")),
    )
    .expect("write known_hosts");
    for trust_on_first_use in [false, true] {
        let options = SshOptions {
            known_hosts: known_hosts.clone(),
            trust_on_first_use,
            ..cluster.ssh_options()
        };
        let node = NodeClient::new(&cluster.node("n1"), options);
        let error = node.connect().await.expect_err("refused");
        let text = message(error);
        eprintln!("changed key: {text}");
        assert!(text.starts_with("node n1: host key SHA256:"), "{text}");
        assert!(
            text.contains(&format!(
                "does not match known_hosts ({}:2)",
                known_hosts.display()
            )),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_host_key_is_refused_unless_trusted_on_first_use() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = dir.path().join("known_hosts");
    let options = SshOptions {
        known_hosts: known_hosts.clone(),
        ..cluster.ssh_options()
    };

    let node = NodeClient::new(&cluster.node("n1"), options.clone());
    let text = message(node.connect().await.expect_err("refused"));
    assert!(text.starts_with("node n1: host key SHA256:"), "{text}");
    assert!(
        text.contains(&format!("is not in {}", known_hosts.display())),
        "{text}"
    );
    assert!(!known_hosts.exists(), "nothing recorded without the opt-in");

    let trusting = NodeClient::new(
        &cluster.node("n1"),
        SshOptions {
            trust_on_first_use: true,
            ..options.clone()
        },
    );
    trusting.connect().await.expect("trusted on first use");
    let recorded = std::fs::read_to_string(&known_hosts).expect("recorded");
    let host_key = std::fs::read_to_string(cluster.host_key_file("n1")).expect("n1 key");
    let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    assert_eq!(
        recorded,
        format!("{} {}\n", cluster.address("n1"), host_key.join(" "))
    );

    // Now known: accepted without the opt-in.
    let node = NodeClient::new(&cluster.node("n1"), options);
    node.connect().await.expect("known now");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_goes_down_fails_fast_and_comes_back() {
    let cluster = shared_cluster().await;
    let _n2 = N2.lock().await;
    let _restore = RestoreN2(&cluster);
    let pool = NodePool::new(&cluster.nodes(), &cluster.ssh_options());
    for node in pool.iter() {
        node.connect().await.unwrap_or_else(|e| panic!("{e}"));
    }
    let n2 = pool.get("n2").expect("n2");

    cluster.stop_sshd("n2");
    // The dropped session is noticed and reopening it fails with a clear error.
    let started = Instant::now();
    let mut error = None;
    while started.elapsed() < Duration::from_secs(10) {
        match n2.facts().await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("n2 fails once its sshd is gone");
    let elapsed = started.elapsed();
    // The session ends with sshd; reopening it is refused at once, and in
    // no case takes longer than the connect timeout.
    assert!(
        elapsed < cluster.ssh_options().connect_timeout + Duration::from_secs(2),
        "{elapsed:?}: {error}"
    );
    let text = message(error);
    eprintln!("n2 with its sshd stopped: {text}");
    assert!(text.starts_with("node n2: "), "{text}");
    for name in ["n1", "n3"] {
        pool.get(name)
            .expect("node")
            .facts()
            .await
            .unwrap_or_else(|e| panic!("{name} keeps working: {e}"));
    }

    // An address that does not answer at all fails within the connect timeout.
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "down"]);
    let fresh = NodeClient::new(&cluster.node("n2"), cluster.ssh_options());
    let started = Instant::now();
    let error = fresh.connect().await.expect_err("unreachable");
    let elapsed = started.elapsed();
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "up"]);
    assert!(matches!(error, NodeError::ConnectTimeout { .. }), "{error}");
    assert_eq!(
        message(error),
        format!(
            "node n2: connecting to {}:22 timed out after 3s",
            cluster.address("n2")
        )
    );
    // Bounded by the timeout (3 s), with room for a loaded machine.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    cluster.start_sshd("n2");
    // Within the back-off (at most 2 s here) the same client reconnects.
    let started = Instant::now();
    loop {
        match n2.facts().await {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                tracing::debug!("{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("n2 did not come back: {e}"),
        }
    }
    assert_eq!(n2.sessions_opened(), 2, "one new session after the drop");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_only_the_leader_has_is_shipped_and_runs() {
    let cluster = shared_cluster().await;
    let node = NodeClient::new(&cluster.node("n3"), cluster.ssh_options());
    let image = "flotilla-shipped:1";
    let rootfs = cluster.image_rootfs();
    let rootfs = rootfs.to_str().expect("utf-8 path");
    let imported = cluster.leader_docker(&["import", "--change", "ENV PATH=/bin", rootfs, image]);
    assert!(imported.status.success(), "{imported:?}");
    let leader = flotilla::node::local_docker(&cluster.leader_docker_socket())
        .await
        .expect("leader docker");

    node.remove("flotilla-shipped").await.expect("clean slate");
    node.remove_image(image).await.expect("clean slate");
    assert!(!node.has_image(image).await.expect("inspect"));
    assert!(matches!(
        node.ensure_image(image, PullPolicy::Never).await,
        Err(NodeError::ImageMissing { .. })
    ));

    node.ship_image_from(&leader, image).await.expect("ship");
    assert!(node.has_image(image).await.expect("inspect"));
    node.ensure_image(image, PullPolicy::Never)
        .await
        .expect("present now");

    let run = ContainerSpec {
        name: "flotilla-shipped".into(),
        image: image.into(),
        cmd: Some(vec!["cat".into(), "/etc/flotilla-test-version".into()]),
        ..Default::default()
    };
    node.create(&run).await.expect("create");
    node.start(&run.name).await.expect("start");
    let mut logs = String::new();
    for _ in 0..50 {
        logs = node.logs(&run.name, 5).await.expect("logs");
        if !logs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logs, "1\n");
    node.remove(&run.name).await.expect("remove");

    // The same from a `docker save` archive file.
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("image.tar");
    let saved = cluster.leader_docker(&["save", "-o", archive.to_str().expect("utf-8"), image]);
    assert!(saved.status.success(), "{saved:?}");
    node.remove_image(image).await.expect("image removed");
    assert!(!node.has_image(image).await.expect("inspect"));
    node.ship_image_archive(&archive)
        .await
        .expect("load archive");
    assert!(node.has_image(image).await.expect("inspect"));
    assert!(matches!(
        node.ship_image_archive(&dir.path().join("missing.tar"))
            .await,
        Err(NodeError::Archive { .. })
    ));
    assert_eq!(node.sessions_opened(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_node_uses_its_docker_socket_directly() {
    let cluster = shared_cluster().await;
    let mut node = cluster.node("n1");
    node.spec.transport = flotilla::manifest::model::Transport::Local;
    // An address nothing listens on: no SSH may be attempted.
    node.spec.address = "192.0.2.1".into();
    let local = NodeClient::new(&node, cluster.ssh_options());
    let facts = local.facts().await.expect("facts over the local socket");
    assert!(!facts.docker_version.is_empty(), "{facts:?}");
    assert!(local.has_image(&cluster.image()).await.expect("inspect"));
    assert_eq!(local.sessions_opened(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_gone_silent_with_its_session_open_fails_within_the_request_timeout() {
    let cluster = shared_cluster().await;
    let _n2 = N2.lock().await;
    let _restore = RestoreN2(&cluster);
    let options = SshOptions {
        request_timeout: Duration::from_secs(3),
        ..cluster.ssh_options()
    };
    // Room for a loaded machine; a missing bound would hang far longer.
    let margin = Duration::from_secs(2);
    let pool = NodePool::new(&cluster.nodes(), &options);
    let leader = DockerNodes::default().with_ssh(options.clone());
    for node in cluster.nodes() {
        let name = node.meta.name.clone();
        pool.get(&name)
            .expect("node")
            .facts()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        leader
            .observe(&node)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (n1, n2, n3) = (
        pool.get("n1").expect("n1"),
        pool.get("n2").expect("n2"),
        pool.get("n3").expect("n3"),
    );

    // Sessions open, n2's network goes silent: nothing answers, nothing is
    // refused.
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "down"]);
    let started = Instant::now();
    let others = async {
        for node in [&n1, &n3] {
            node.facts().await.unwrap_or_else(|e| panic!("{e}"));
            node.list_managed().await.unwrap_or_else(|e| panic!("{e}"));
        }
        started.elapsed()
    };
    let (silent, others_took) = tokio::join!(n2.facts(), others);
    let elapsed = started.elapsed();
    let error = silent.expect_err("n2 is silent");
    eprintln!("n2 silent: {error} after {elapsed:?}; n1 and n3 answered in {others_took:?}");
    assert!(matches!(error, NodeError::RequestTimeout { .. }), "{error}");
    assert!(
        message(error).starts_with("node n2: docker info got no answer within 3s"),
        "names the node and the operation"
    );
    assert!(
        elapsed >= options.request_timeout && elapsed < options.request_timeout + margin,
        "{elapsed:?}"
    );
    assert!(
        others_took < options.request_timeout,
        "n1 and n3 answered meanwhile: {others_took:?}"
    );
    // The session was dropped: the next call reconnects, and that fails
    // within the connect timeout.
    let started = Instant::now();
    let error = n2.list_managed().await.expect_err("still silent");
    let elapsed = started.elapsed();
    assert!(matches!(error, NodeError::ConnectTimeout { .. }), "{error}");
    assert!(elapsed < options.connect_timeout + margin, "{elapsed:?}");

    // The leader's observation of n2 is bounded the same way.
    let started = Instant::now();
    let error = leader
        .observe(&cluster.node("n2"))
        .await
        .expect_err("n2 is silent");
    let elapsed = started.elapsed();
    eprintln!("leader observing silent n2: {error} after {elapsed:?}");
    assert!(error.unreachable, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("node n2: observe: no answer within 3s"),
        "{error}"
    );
    assert!(elapsed < options.request_timeout + margin, "{elapsed:?}");
    leader
        .observe(&cluster.node("n1"))
        .await
        .unwrap_or_else(|e| panic!("n1 meanwhile: {e}"));

    // Back: both find it again without anything being restarted.
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "up"]);
    let started = Instant::now();
    loop {
        let client = n2.facts().await;
        let observed = leader.observe(&cluster.node("n2")).await;
        match (client, observed) {
            (Ok(_), Ok(_)) => break,
            (client, observed) if started.elapsed() < Duration::from_secs(20) => {
                tracing::debug!("{client:?} {observed:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (client, observed) => panic!("n2 did not come back: {client:?} {observed:?}"),
        }
    }
    assert_eq!(n2.sessions_opened(), 2, "one new session after the silence");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_does_not_adopt_a_container_it_did_not_create() {
    let cluster = shared_cluster().await;
    let leader = DockerNodes::default().with_ssh(cluster.ssh_options());
    leader
        .observe(&cluster.node("n1"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node = NodeClient::new(&cluster.node("n1"), cluster.ssh_options());
    let labels = labels("n1", "adopt", 0);
    let replica = ReplicaContainer {
        name: labels.container_name(),
        image: cluster.image(),
        pull_policy: PullPolicy::Never,
        entrypoint: None,
        cmd: Some(vec!["sleep".into(), "60".into()]),
        env: Vec::new(),
        labels: labels.to_docker_labels().into_iter().collect(),
        working_dir: None,
        hostname: None,
        port_bindings: Vec::new(),
        exposed_ports: Vec::new(),
        nano_cpus: None,
        memory_bytes: None,
        restart_policy: DockerRestartPolicy::No,
        network_mode: None,
        stop_timeout_seconds: Some(1),
    };
    let mut other_revision = labels.clone();
    other_revision.template_hash = "9999999999".into();
    // A hand-made container of that name with no labels, and one that looks
    // managed but is of another revision: neither is taken as the replica.
    for (hand_made, differs) in [
        (BTreeMap::new(), "dev.flotilla.managed"),
        (
            other_revision.to_docker_labels().into_iter().collect(),
            "dev.flotilla.template-hash",
        ),
    ] {
        node.remove(&replica.name).await.expect("clean slate");
        node.create(&ContainerSpec {
            name: replica.name.clone(),
            image: cluster.image(),
            labels: hand_made,
            cmd: Some(vec!["sleep".into(), "60".into()]),
            ..Default::default()
        })
        .await
        .expect("hand-made container");
        let error = leader
            .create("n1", &replica)
            .await
            .expect_err("a container flotilla did not create is not adopted");
        eprintln!("{error}");
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "node n1: container name {} is taken",
                replica.name
            )),
            "{text}"
        );
        assert!(text.contains(&format!("({differs} differs)")), "{text}");
    }
    node.remove(&replica.name).await.expect("remove");
    leader.create("n1", &replica).await.expect("create");
    leader
        .create("n1", &replica)
        .await
        .expect("its own container is taken as created");
    node.remove(&replica.name).await.expect("remove");
}

/// Whether OpenSSH's own client accepts `node`'s host key with this
/// known_hosts file (strict checking, the testbed's identity).
fn openssh_accepts(cluster: &TestCluster, node: &str, known_hosts: &std::path::Path) -> bool {
    std::process::Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            "-F",
            "/dev/null",
            "-i",
        ])
        .arg(cluster.identity_file())
        .arg(format!("root@{}", cluster.address(node)))
        .arg("true")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh runs")
        .status
        .success()
}

/// Issue 10, item 4: known_hosts must mean to flotilla what it means to
/// OpenSSH: `@revoked` wherever it stands, hashed entries, other keys.
/// Each file is tried with `ssh` itself and with flotilla's session.
#[tokio::test(flavor = "multi_thread")]
async fn known_hosts_files_mean_to_flotilla_what_they_mean_to_openssh() {
    let cluster = shared_cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = |node: &str| {
        let text = std::fs::read_to_string(cluster.host_key_file(node)).expect("host key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let address = cluster.address("n1");
    let plain = format!("{address} {}\n", key("n1"));
    let revoked = format!("@revoked * {}\n", key("n1"));
    let cases = [
        ("plain", plain.clone(), true),
        (
            "revoked after the accepting line",
            format!("{plain}{revoked}"),
            false,
        ),
        ("revoked before it", format!("{revoked}{plain}"), false),
        (
            "another host's key",
            format!("{address} {}\n", key("n2")),
            false,
        ),
        ("hashed", plain.clone(), true),
    ];
    for (name, text, accepted) in cases {
        let known_hosts = dir.path().join(name.replace(' ', "-"));
        std::fs::write(&known_hosts, &text).expect("write known_hosts");
        if name == "hashed" {
            let hashed = std::process::Command::new("ssh-keygen")
                .arg("-H")
                .arg("-f")
                .arg(&known_hosts)
                .output()
                .expect("ssh-keygen runs");
            assert!(hashed.status.success());
            let text = std::fs::read_to_string(&known_hosts).unwrap();
            assert!(text.starts_with("|1|"), "{text}");
        }
        assert_eq!(
            openssh_accepts(&cluster, "n1", &known_hosts),
            accepted,
            "ssh, {name}"
        );
        let node = NodeClient::new(
            &cluster.node("n1"),
            SshOptions {
                known_hosts: known_hosts.clone(),
                ..cluster.ssh_options()
            },
        );
        let result = node.connect().await;
        assert_eq!(
            result.is_ok(),
            accepted,
            "flotilla, {name}: {:?}",
            result.err().map(message)
        );
    }
}
