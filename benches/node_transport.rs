//! Docker through the SSH tunnel versus Docker on the node's own socket,
//! both through the node runtime the leader uses (`flotilla::node::Nodes`).
//!
//! On testbed node n1, creates and starts 20 containers, first one after the
//! other and then all 20 at once, once through the node's SSH session
//! (`direct-streamlocal` channels) and once on its local Unix socket, in
//! alternating rounds of the same run; reports the medians and their ratio,
//! how long observing the node takes each way, and how many SSH sessions
//! the tunnel used: counted by the runtime and, as a check from the other
//! side, by sshd's "Accepted publickey" log lines.
//!
//!     cargo bench --bench node_transport            (as root; brings the testbed up and down)
//!     ROUNDS=5 cargo bench --bench node_transport

// The integration tests' testbed helper; this bench uses a part of it.
#[allow(dead_code)]
#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla::cluster::ManagedLabels;
use flotilla::manifest::model::{Kind, Node, Transport};
use flotilla::node::{NodeOps, Nodes, ReplicaContainer};

const CONTAINERS: u32 = 20;
const NODE: &str = "n1";

fn specs(image: &str, batch: &str) -> Vec<ReplicaContainer> {
    (0..CONTAINERS)
        .map(|slot| {
            let labels = ManagedLabels {
                namespace: "bench".into(),
                kind: Kind::Deployment,
                name: format!("bench-{batch}"),
                slot,
                template_hash: "0000000000".into(),
                commit: "bench".into(),
                node: NODE.into(),
                container: "app".into(),
                role: Default::default(),
            };
            ReplicaContainer {
                name: labels.container_name(),
                image: image.into(),
                labels: labels.to_docker_labels(),
                cmd: Some(vec!["sleep".into(), "3600".into()]),
                ..ReplicaContainer::default()
            }
        })
        .collect()
}

async fn create_and_start(node: &Nodes, spec: &ReplicaContainer) {
    node.create(NODE, spec)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    node.start(NODE, &spec.name)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn sequential(node: &Nodes, specs: &[ReplicaContainer]) -> Duration {
    let started = Instant::now();
    for spec in specs {
        create_and_start(node, spec).await;
    }
    started.elapsed()
}

async fn concurrent(node: &Nodes, specs: &[ReplicaContainer]) -> Duration {
    let started = Instant::now();
    futures_util::future::join_all(specs.iter().map(|spec| create_and_start(node, spec))).await;
    started.elapsed()
}

async fn clean(node: &Nodes, specs: &[ReplicaContainer]) {
    futures_util::future::join_all(specs.iter().map(|spec| node.remove(NODE, &spec.name))).await;
}

/// Observes the node (facts, list, one inspect per container): the median
/// of `times` runs, and how many containers it saw.
async fn observe(node: &Nodes, manifest: &Node, times: usize) -> (Duration, usize) {
    let mut samples = Vec::new();
    let mut seen = 0;
    for _ in 0..times {
        let started = Instant::now();
        seen = node
            .observe(manifest)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .containers
            .len();
        samples.push(started.elapsed());
    }
    (median(samples), seen)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn accepted_sessions(log: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("Accepted publickey")
        .count()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    // `cargo test --all-targets` runs this binary without it: building it
    // is the check there, since the measurement takes minutes of a shared
    // testbed and tests/it/node.rs covers the same operations.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("node_transport: measured only by `cargo bench --bench node_transport`");
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let cluster = common::shared_cluster().await;
    let image = cluster.image();
    let sshd_log = format!("{}/{NODE}/sshd.log", cluster.env("TESTBED_DIR"));

    let ssh_node = cluster.node(NODE);
    let mut local_node = ssh_node.clone();
    local_node.spec.transport = Transport::Local;
    let accepted_before = accepted_sessions(&sshd_log);
    let tunnel = Nodes::new(cluster.ssh_options());
    let local = Nodes::new(cluster.ssh_options());
    // Session setup is not part of the per-container cost; it is reported
    // (with a first observation of the node).
    let connect_started = Instant::now();
    tunnel
        .observe(&ssh_node)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let connect_time = connect_started.elapsed();
    local
        .observe(&local_node)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    let specs = specs(&image, "a");
    clean(&local, &specs).await;
    // One unmeasured warm-up for each path.
    for node in [&tunnel, &local] {
        sequential(node, &specs[..2]).await;
        clean(node, &specs[..2]).await;
    }

    let mut results: BTreeMap<(&str, &str), Vec<Duration>> = BTreeMap::new();
    for round in 0..rounds {
        // Alternate which path goes first, so drift on the machine is shared.
        let order: [(&str, &Nodes); 2] = if round % 2 == 0 {
            [("ssh", &tunnel), ("local", &local)]
        } else {
            [("local", &local), ("ssh", &tunnel)]
        };
        for (path, node) in order {
            let time = sequential(node, &specs).await;
            clean(&local, &specs).await;
            results.entry(("sequential", path)).or_default().push(time);
            let time = concurrent(node, &specs).await;
            clean(&local, &specs).await;
            results.entry(("concurrent", path)).or_default().push(time);
        }
    }
    // Observing the node (the leader's per-reconcile read) with 20 managed
    // containers, each way.
    concurrent(&tunnel, &specs).await;
    let (observe_ssh, seen) = observe(&tunnel, &ssh_node, 10).await;
    assert!(seen >= CONTAINERS as usize, "{seen}");
    let (observe_local, _) = observe(&local, &local_node, 10).await;
    clean(&local, &specs).await;

    // Give sshd a moment to flush its log.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let accepted = accepted_sessions(&sshd_log) - accepted_before;

    println!(
        "node_transport: create+start {CONTAINERS} containers on {NODE}, median of {rounds} rounds"
    );
    for mode in ["sequential", "concurrent"] {
        let ssh = median(results[&(mode, "ssh")].clone());
        let local = median(results[&(mode, "local")].clone());
        println!(
            "  {mode:<10}  ssh {:>7.1} ms ({:>5.1} ms/container)  local {:>7.1} ms ({:>5.1} ms/container)  ratio {:.3}",
            ssh.as_secs_f64() * 1e3,
            ssh.as_secs_f64() * 1e3 / f64::from(CONTAINERS),
            local.as_secs_f64() * 1e3,
            local.as_secs_f64() * 1e3 / f64::from(CONTAINERS),
            ssh.as_secs_f64() / local.as_secs_f64(),
        );
    }
    println!(
        "  observe a node with {CONTAINERS} containers (info, list, inspects; median of 10): ssh {:.1} ms, local {:.1} ms",
        observe_ssh.as_secs_f64() * 1e3,
        observe_local.as_secs_f64() * 1e3,
    );
    println!(
        "  ssh sessions: {} opened by the runtime, {accepted} accepted by sshd, for {} containers; session setup and first observation {:.1} ms",
        tunnel.sessions_opened(NODE),
        2 + (rounds * 2 + 1) * CONTAINERS as usize,
        connect_time.as_secs_f64() * 1e3,
    );
}
