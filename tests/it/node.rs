//! The node runtime (`flotilla::node::Nodes`, what the leader uses) against
//! the real testbed: sshd and dockerd in network namespaces (see
//! scripts/testbed), Docker through the SSH tunnel, or through a local
//! node's socket.
//!
//! Tests run in parallel and each keeps to its own node where it changes
//! something: n1 for container operations and host keys, n2 for a node
//! going down or silent and coming back (one such test at a time, under
//! [`N2`]), n3 for image shipping. They share the testbed with each other,
//! never with an end-to-end scenario ([`shared_cluster`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use flotilla::cluster::{ContainerState, ManagedLabels, ObservedContainer, PublishedPort};
use flotilla::manifest::model::{Kind, Node, Protocol, Transport};
use flotilla::node::{
    ContainerEnv, DockerRestartPolicy, NodeOpError, NodeOps, Nodes, PortBinding, ProbeTarget,
    ReplicaContainer, SshOptions,
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
        role: Default::default(),
    }
}

fn container(labels: &ManagedLabels, image: &str, cmd: &[&str]) -> ReplicaContainer {
    ReplicaContainer {
        name: labels.container_name(),
        image: image.to_string(),
        labels: labels.to_docker_labels(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        ..ReplicaContainer::default()
    }
}

/// The runtime with the testbed's SSH options, `nodes` observed once (a
/// node is acted on once it has been observed, as in the leader's loop).
async fn runtime(cluster: &TestCluster, options: SshOptions, nodes: &[Node]) -> Nodes {
    let runtime = Nodes::new(options).with_leader_socket(&cluster.leader_docker_socket());
    for node in nodes {
        runtime
            .observe(node)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    runtime
}

async fn observed(
    nodes: &Nodes,
    cluster: &TestCluster,
    node: &str,
    container: &str,
) -> Option<ObservedContainer> {
    nodes
        .observe(&cluster.node(node))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .containers
        .into_iter()
        .find(|c| c.name == container)
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
    let nodes = Nodes::new(cluster.ssh_options());
    for node in cluster.nodes() {
        let name = &node.meta.name;
        let facts = nodes
            .observe(&node)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .facts;
        assert!(facts.cpu.0 >= 1000, "{name}: {facts:?}");
        assert!(facts.memory.0 > 0, "{name}: {facts:?}");
        assert!(!facts.docker_version.is_empty(), "{name}: {facts:?}");
        assert_eq!(nodes.sessions_opened(name), 1, "{name}");
    }
    let error = nodes.start("nope", "c").await.expect_err("unknown node");
    assert_eq!(
        error.to_string(),
        "node nope: not observed yet, so no connection to it is known"
    );
    assert!(error.unreachable);
}

#[tokio::test(flavor = "multi_thread")]
async fn container_lifecycle_over_ssh() {
    let cluster = shared_cluster().await;
    let n1 = cluster.node("n1");
    let nodes = runtime(&cluster, cluster.ssh_options(), std::slice::from_ref(&n1)).await;
    let labels = labels("n1", "web", 0);
    let mut web = container(
        &labels,
        &cluster.image(),
        &[
            "sh",
            "-c",
            "echo hello-from-web; exec httpd -f -p 8080 -h /www",
        ],
    );
    web.port_bindings = vec![PortBinding {
        container_port: 8080,
        host_port: 18080,
        protocol: Protocol::TCP,
        host_ip: None,
    }];
    web.exposed_ports = vec![(8080, Protocol::TCP)];
    web.memory_bytes = Some(64 * 1024 * 1024);
    web.nano_cpus = Some(500_000_000);
    web.env = vec![
        ContainerEnv::plain("GREETING", "hello there"),
        ContainerEnv::plain("EMPTY", ""),
    ];
    web.restart_policy = DockerRestartPolicy::OnFailure;
    web.hostname = Some("web-0".into());
    web.stop_timeout_seconds = Some(1);
    nodes.remove("n1", &web.name).await.expect("clean slate");

    nodes.create("n1", &web).await.expect("create");
    // What the daemon recorded, read back with the docker CLI.
    let recorded = cluster.docker(
        "n1",
        &[
            "inspect",
            "--format",
            "{{json .Config.Env}}|{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} \
             {{.HostConfig.RestartPolicy.Name}} {{.Config.Hostname}} {{.Config.StopTimeout}}",
            &web.name,
        ],
    );
    let (env, settings) = recorded.trim().split_once('|').expect("env, then settings");
    for wanted in ["\"GREETING=hello there\"", "\"EMPTY=\""] {
        assert!(env.contains(wanted), "{wanted} in {env}");
    }
    assert_eq!(settings, "67108864 500000000 on-failure web-0 1");
    let id = observed(&nodes, &cluster, "n1", &web.name)
        .await
        .expect("listed")
        .id;
    nodes.create("n1", &web).await.expect("create again");
    assert_eq!(
        observed(&nodes, &cluster, "n1", &web.name)
            .await
            .expect("listed")
            .id,
        id,
        "create is idempotent"
    );
    let mut other = web.clone();
    other
        .labels
        .insert("dev.flotilla.commit".into(), "other".into());
    let error = nodes.create("n1", &other).await.expect_err("name in use");
    assert_eq!(
        error.to_string(),
        format!(
            "node n1: container name {} is taken by a container flotilla did not create with \
             these labels (dev.flotilla.commit differs); remove or rename that container",
            web.name
        )
    );
    assert!(!error.unreachable);
    nodes.start("n1", &web.name).await.expect("start");
    nodes
        .start("n1", &web.name)
        .await
        .expect("start again is a no-op");

    let found = observed(&nodes, &cluster, "n1", &web.name)
        .await
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
    // ...and the probes reach the container from the node, through
    // direct-tcpip channels of the session.
    let target = ProbeTarget {
        container: web.name.clone(),
        container_port: 8080,
        host_port: Some(18080),
    };
    let timeout = Duration::from_secs(5);
    nodes
        .probe_tcp("n1", &target, timeout)
        .await
        .expect("tcp probe");
    let status = nodes
        .probe_http("n1", &target, "/", &[], timeout)
        .await
        .expect("http probe");
    assert_eq!(status, 200);
    let missing = nodes
        .probe_http("n1", &target, "/missing", &[], timeout)
        .await
        .expect("http probe");
    assert_eq!(missing, 404);

    let logs = nodes.logs("n1", &web.name, 10).await.expect("logs");
    assert!(logs.contains("hello-from-web"), "logs: {logs:?}");

    let exec = |command: &[&str]| command.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let version = nodes
        .probe_exec(
            "n1",
            &web.name,
            &exec(&["grep", "-qx", "1", "/etc/flotilla-test-version"]),
            timeout,
        )
        .await
        .expect("exec");
    assert_eq!(version, 0);
    let failing = nodes
        .probe_exec("n1", &web.name, &exec(&["sh", "-c", "exit 3"]), timeout)
        .await
        .expect("exec");
    assert_eq!(failing, 3);
    let error = nodes
        .probe_exec(
            "n1",
            &web.name,
            &exec(&["sleep", "10"]),
            Duration::from_millis(500),
        )
        .await
        .expect_err("bounded by the probe's timeout");
    assert_eq!(
        error.to_string(),
        format!("node n1: exec in {}: timed out", web.name)
    );

    nodes
        .stop("n1", &web.name, Some(Duration::from_secs(1)))
        .await
        .expect("stop");
    let found = observed(&nodes, &cluster, "n1", &web.name)
        .await
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
    // Without a grace period, the container's own stop timeout (1 s here).
    nodes.start("n1", &web.name).await.expect("start");
    nodes
        .restart("n1", &web.name, Duration::from_secs(1))
        .await
        .expect("restart");
    assert_eq!(
        observed(&nodes, &cluster, "n1", &web.name)
            .await
            .expect("listed")
            .state,
        ContainerState::Running
    );
    nodes
        .stop("n1", &web.name, None)
        .await
        .expect("stop with its own timeout");

    nodes.remove("n1", &web.name).await.expect("remove");
    nodes
        .remove("n1", &web.name)
        .await
        .expect("remove of a missing container");
    nodes
        .stop("n1", &web.name, Some(Duration::from_secs(1)))
        .await
        .expect("stop of a missing container");
    nodes
        .stop("n1", &web.name, None)
        .await
        .expect("stop of a missing container, without a grace period");
    assert_eq!(observed(&nodes, &cluster, "n1", &web.name).await, None);
    assert_eq!(
        nodes.sessions_opened("n1"),
        1,
        "every operation shared one session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unmanaged_containers_are_not_listed() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster, cluster.ssh_options(), &[cluster.node("n1")]).await;
    let plain = ReplicaContainer {
        name: "flotilla-test-unmanaged".into(),
        image: cluster.image(),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        ..ReplicaContainer::default()
    };
    nodes.remove("n1", &plain.name).await.expect("clean slate");
    nodes.create("n1", &plain).await.expect("create");
    assert_eq!(observed(&nodes, &cluster, "n1", &plain.name).await, None);
    nodes.remove("n1", &plain.name).await.expect("remove");
}

/// Observing `node` with these options: how a session is first opened.
async fn connect(options: SshOptions, node: &Node) -> Result<(), NodeOpError> {
    Nodes::new(options).observe(node).await.map(|_| ())
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
        let error = connect(options, &cluster.node("n1"))
            .await
            .expect_err("refused");
        let text = error.to_string();
        eprintln!("changed key: {text}");
        assert!(error.unreachable);
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

    let text = connect(options.clone(), &cluster.node("n1"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(text.starts_with("node n1: host key SHA256:"), "{text}");
    assert!(
        text.contains(&format!("is not in {}", known_hosts.display())),
        "{text}"
    );
    assert!(!known_hosts.exists(), "nothing recorded without the opt-in");

    let trusting = SshOptions {
        trust_on_first_use: true,
        ..options.clone()
    };
    connect(trusting, &cluster.node("n1"))
        .await
        .expect("trusted on first use");
    let recorded = std::fs::read_to_string(&known_hosts).expect("recorded");
    let host_key = std::fs::read_to_string(cluster.host_key_file("n1")).expect("n1 key");
    let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
    assert_eq!(
        recorded,
        format!("{} {}\n", cluster.address("n1"), host_key.join(" "))
    );

    // Now known: accepted without the opt-in.
    connect(options, &cluster.node("n1"))
        .await
        .expect("known now");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_goes_down_fails_fast_and_comes_back() {
    let cluster = shared_cluster().await;
    let _n2 = N2.lock().await;
    let _restore = RestoreN2(&cluster);
    let nodes = runtime(&cluster, cluster.ssh_options(), &cluster.nodes()).await;
    let n2 = cluster.node("n2");

    cluster.stop_sshd("n2");
    // The dropped session is noticed and reopening it fails with a clear error.
    let started = Instant::now();
    let mut error = None;
    while started.elapsed() < Duration::from_secs(10) {
        match nodes.observe(&n2).await {
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
    eprintln!("n2 with its sshd stopped: {error}");
    assert!(error.unreachable, "{error}");
    assert!(error.to_string().starts_with("node n2: "), "{error}");
    for name in ["n1", "n3"] {
        nodes
            .observe(&cluster.node(name))
            .await
            .unwrap_or_else(|e| panic!("{name} keeps working: {e}"));
    }

    // An address that does not answer at all fails within the connect timeout.
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "down"]);
    let started = Instant::now();
    let error = connect(cluster.ssh_options(), &n2)
        .await
        .expect_err("unreachable");
    let elapsed = started.elapsed();
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "up"]);
    assert_eq!(
        error.to_string(),
        format!(
            "node n2: connecting to {}:22 timed out after 3s",
            cluster.address("n2")
        )
    );
    assert!(error.unreachable);
    // Bounded by the timeout (3 s), with room for a loaded machine.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    cluster.start_sshd("n2");
    // Within the back-off (at most 2 s here) the same runtime reconnects.
    let started = Instant::now();
    loop {
        match nodes.observe(&n2).await {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                tracing::debug!("{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("n2 did not come back: {e}"),
        }
    }
    assert_eq!(
        nodes.sessions_opened("n2"),
        2,
        "one new session after the drop"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_only_the_leader_has_is_shipped_and_runs() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster, cluster.ssh_options(), &[cluster.node("n3")]).await;
    let image = "flotilla-shipped:1";
    let rootfs = cluster.image_rootfs();
    let rootfs = rootfs.to_str().expect("utf-8 path");
    let imported = cluster.leader_docker(&["import", "--change", "ENV PATH=/bin", rootfs, image]);
    assert!(imported.status.success(), "{imported:?}");

    let run = ReplicaContainer {
        name: "flotilla-shipped".into(),
        image: image.into(),
        cmd: Some(vec!["cat".into(), "/etc/flotilla-test-version".into()]),
        ..ReplicaContainer::default()
    };
    nodes.remove("n3", &run.name).await.expect("clean slate");
    nodes.remove_image("n3", image).await.expect("clean slate");
    assert!(!nodes.has_image("n3", image).await.expect("inspect"));

    nodes.ship_image("n3", image).await.expect("ship");
    assert!(nodes.has_image("n3", image).await.expect("inspect"));

    nodes.create("n3", &run).await.expect("create");
    nodes.start("n3", &run.name).await.expect("start");
    let mut logs = String::new();
    for _ in 0..50 {
        logs = nodes.logs("n3", &run.name, 5).await.expect("logs");
        if !logs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(logs, "1\n");
    assert!(
        !nodes.remove_image("n3", image).await.expect("remove image"),
        "an image a container uses is kept"
    );
    nodes.remove("n3", &run.name).await.expect("remove");
    assert!(nodes.remove_image("n3", image).await.expect("remove image"));

    // An image the leader does not have either: a clear refusal, the node
    // still reachable.
    let error = nodes
        .ship_image("n3", "flotilla-nowhere:1")
        .await
        .expect_err("not on the leader");
    assert_eq!(
        error.to_string(),
        "node n3: image flotilla-nowhere:1 is not on the leader's Docker either"
    );
    assert!(!error.unreachable, "{error}");
    assert_eq!(nodes.sessions_opened("n3"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_node_uses_its_docker_socket_directly() {
    let cluster = shared_cluster().await;
    let mut node = cluster.node("n1");
    node.spec.transport = Transport::Local;
    // A port nothing listens on: no SSH may be attempted.
    node.spec.port = 1;
    let nodes = Nodes::new(cluster.ssh_options());
    let facts = nodes
        .observe(&node)
        .await
        .expect("observed over the local socket")
        .facts;
    assert!(!facts.docker_version.is_empty(), "{facts:?}");
    assert!(nodes
        .has_image("n1", &cluster.image())
        .await
        .expect("inspect"));

    // Probes of a local node dial the published port on the node's address.
    let mut web = container(
        &labels("n1", "local-web", 0),
        &cluster.image(),
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    );
    web.port_bindings = vec![PortBinding {
        container_port: 8080,
        host_port: 18081,
        protocol: Protocol::TCP,
        host_ip: None,
    }];
    web.exposed_ports = vec![(8080, Protocol::TCP)];
    nodes.remove("n1", &web.name).await.expect("clean slate");
    nodes.create("n1", &web).await.expect("create");
    nodes.start("n1", &web.name).await.expect("start");
    let target = ProbeTarget {
        container: web.name.clone(),
        container_port: 8080,
        host_port: Some(18081),
    };
    let started = Instant::now();
    loop {
        match nodes
            .probe_http("n1", &target, "/", &[], Duration::from_secs(1))
            .await
        {
            Ok(status) => {
                assert_eq!(status, 200);
                break;
            }
            Err(e) if started.elapsed() < Duration::from_secs(10) => {
                tracing::debug!("{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let unpublished = ProbeTarget {
        host_port: None,
        ..target
    };
    let error = nodes
        .probe_tcp("n1", &unpublished, Duration::from_secs(1))
        .await
        .expect_err("nothing to dial");
    assert_eq!(
        error.to_string(),
        format!(
            "node n1: port 8080 of {} is not published on the node",
            web.name
        )
    );
    nodes.remove("n1", &web.name).await.expect("remove");
    assert_eq!(nodes.sessions_opened("n1"), 0);
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
    let nodes = runtime(&cluster, options.clone(), &cluster.nodes()).await;
    let n2 = cluster.node("n2");

    // Sessions open, n2's network goes silent: nothing answers, nothing is
    // refused.
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "down"]);
    let started = Instant::now();
    let others = async {
        for name in ["n1", "n3"] {
            nodes
                .observe(&cluster.node(name))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        started.elapsed()
    };
    let (silent, others_took) = tokio::join!(nodes.observe(&n2), others);
    let elapsed = started.elapsed();
    let error = silent.expect_err("n2 is silent");
    eprintln!("n2 silent: {error} after {elapsed:?}; n1 and n3 answered in {others_took:?}");
    assert!(error.unreachable, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("node n2: observe: no answer within 3s"),
        "names the node and the operation: {error}"
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
    let error = nodes.observe(&n2).await.expect_err("still silent");
    let elapsed = started.elapsed();
    assert!(error.to_string().contains("timed out after 3s"), "{error}");
    assert!(elapsed < options.connect_timeout + margin, "{elapsed:?}");
    // Every other operation on it is bounded too (here by the back-off).
    let started = Instant::now();
    let error = nodes
        .remove("n2", "flotilla-nothing")
        .await
        .expect_err("still silent");
    assert!(error.unreachable, "{error}");
    assert!(
        started.elapsed() < options.connect_timeout + margin,
        "{error}"
    );

    // Back: found again without anything being restarted.
    cluster.run_in_node("n2", &["ip", "link", "set", "eth0", "up"]);
    let started = Instant::now();
    loop {
        match nodes.observe(&n2).await {
            Ok(_) => break,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                tracing::debug!("{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("n2 did not come back: {e}"),
        }
    }
    assert_eq!(
        nodes.sessions_opened("n2"),
        2,
        "one new session after the silence"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_does_not_adopt_a_container_it_did_not_create() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster, cluster.ssh_options(), &[cluster.node("n1")]).await;
    let labels = labels("n1", "adopt", 0);
    let replica = ReplicaContainer {
        stop_timeout_seconds: Some(1),
        ..container(&labels, &cluster.image(), &["sleep", "60"])
    };
    let mut other_revision = labels.clone();
    other_revision.template_hash = "9999999999".into();
    // A hand-made container of that name with no labels, and one that looks
    // managed but is of another revision: neither is taken as the replica.
    for (hand_made, differs) in [
        (HashMap::new(), "dev.flotilla.managed"),
        (
            other_revision.to_docker_labels(),
            "dev.flotilla.template-hash",
        ),
    ] {
        nodes
            .remove("n1", &replica.name)
            .await
            .expect("clean slate");
        nodes
            .create(
                "n1",
                &ReplicaContainer {
                    labels: hand_made,
                    ..replica.clone()
                },
            )
            .await
            .expect("hand-made container");
        let error = nodes
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
    nodes.remove("n1", &replica.name).await.expect("remove");
    nodes.create("n1", &replica).await.expect("create");
    nodes
        .create("n1", &replica)
        .await
        .expect("its own container is taken as created");
    nodes.remove("n1", &replica.name).await.expect("remove");
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
        let options = SshOptions {
            known_hosts: known_hosts.clone(),
            ..cluster.ssh_options()
        };
        let result = connect(options, &cluster.node("n1")).await;
        assert_eq!(
            result.is_ok(),
            accepted,
            "flotilla, {name}: {:?}",
            result.err().map(|e| e.to_string())
        );
    }
}
