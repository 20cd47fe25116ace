//! The planner at scale, shaped like Kubernetes' scheduler_perf
//! "SchedulingBasic": 5,000 nodes (4 CPU, 32 GiB, 110 pods), 1,000 replicas
//! already placed, then 10,000 more (100m CPU, 500 MiB), every node scanned
//! for every replica. Also: a no-op plan over 100,000 and 50,000 running
//! replicas. Figures and the machine are in docs/benchmarks.md.
//!
//! `cargo bench --bench scheduler`; `-- --quality` prints only the
//! placement quality of the SchedulingBasic case.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, Criterion};
use flotilla::cluster::{ContainerState, ObservedCluster, ObservedContainer};
use flotilla::manifest::model::*;
use flotilla::manifest::quantity::{Bytes, CpuMillis};
use flotilla::plan::scheduler::{PodRef, Scheduler};
use flotilla::plan::{offline_cluster, plan, Operation, Plan};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn nodes(count: usize) -> Vec<Node> {
    (0..count)
        .map(|i| Node {
            meta: ObjectMeta {
                name: format!("node-{i:05}"),
                ..ObjectMeta::default()
            },
            spec: NodeSpec {
                address: format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256),
                port: 22,
                user: "root".into(),
                identity_file: None,
                docker_socket: "/var/run/docker.sock".into(),
                transport: Transport::Ssh,
                capacity: Capacity {
                    cpu: Some(CpuMillis(4000)),
                    memory: Some(Bytes(32 * GIB)),
                    pods: Some(110),
                    storage: None,
                },
                taints: Vec::new(),
                unschedulable: false,
            },
        })
        .collect()
}

fn deployment(name: &str, replicas: u32) -> Workload {
    let labels: BTreeMap<String, String> = [("app".to_string(), name.to_string())].into();
    Workload {
        kind: Kind::Deployment,
        meta: ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        },
        spec: WorkloadSpec {
            pods: PodSet::Replicas(replicas),
            selector: LabelSelector {
                match_labels: labels.clone(),
                match_expressions: Vec::new(),
            },
            template: PodTemplate {
                labels,
                annotations: BTreeMap::new(),
                consumed: Default::default(),
                spec: PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: format!("{name}:1"),
                        resources: Resources {
                            requests: ResourceList {
                                cpu: Some(CpuMillis(100)),
                                memory: Some(Bytes(500 * MIB)),
                            },
                            limits: ResourceList::default(),
                        },
                        ..Container::default()
                    }],
                    termination_grace_period_seconds: 30,
                    ..PodSpec::default()
                },
            },
            strategy: Strategy::default(),
            min_ready_seconds: 0,
            progress_deadline_seconds: 600,
            revision_history_limit: 10,
            paused: false,
            stateful: None,
        },
    }
}

fn desired(nodes: Vec<Node>, deployments: Vec<Workload>) -> DesiredState {
    DesiredState {
        nodes,
        workloads: deployments,
        ..DesiredState::default()
    }
}

/// Carries out the creates of a plan as running containers.
fn apply(cluster: &mut ObservedCluster, plan: &Plan) {
    for action in &plan.actions {
        if let Operation::Create { containers, .. } = &action.operation {
            let node = cluster.nodes.get_mut(&action.node).expect("node observed");
            for labels in containers {
                let name = labels.container_name();
                node.containers.push(ObservedContainer {
                    id: name.clone(),
                    name,
                    labels: labels.clone(),
                    state: ContainerState::Running,
                    health: None,
                    restart_count: 0,
                    started_at: Some(now() - Duration::from_secs(3600)),
                    finished_at: None,
                    image: "app:1".into(),
                    ports: Vec::new(),
                    probe_ready: None,
                    address: None,
                    ready_since: None,
                    hooks: Default::default(),
                });
            }
        }
    }
}

/// SchedulingBasic: (desired with 1,000 + 10,000 replicas, observed with
/// the first 1,000 placed).
fn scheduling_basic() -> (DesiredState, ObservedCluster) {
    let initial = desired(nodes(5000), vec![deployment("init", 1000)]);
    let mut cluster = offline_cluster(&initial);
    let first = plan(&initial, &cluster, COMMIT, now());
    assert_eq!(first.actions.len(), 1000);
    apply(&mut cluster, &first);
    let full = desired(
        nodes(5000),
        vec![deployment("init", 1000), deployment("web", 10_000)],
    );
    (full, cluster)
}

/// `replicas` running replicas spread over 5,000 nodes, 100 deployments.
fn converged(replicas: u32) -> (DesiredState, ObservedCluster) {
    let per = replicas / 100;
    let deployments: Vec<Workload> = (0..100)
        .map(|i| deployment(&format!("app{i:03}"), per))
        .collect();
    let state = desired(nodes(5000), deployments);
    let mut cluster = offline_cluster(&state);
    let first = plan(&state, &cluster, COMMIT, now());
    assert_eq!(first.actions.len(), replicas as usize);
    apply(&mut cluster, &first);
    (state, cluster)
}

/// Time this thread spent on a CPU (Linux `/proc/thread-self/schedstat`),
/// which on a shared machine says more than the wall clock.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

fn report_quality() {
    let (state, cluster) = scheduling_basic();
    let cpu_start = cpu_time();
    let start = Instant::now();
    let p = plan(&state, &cluster, COMMIT, now());
    let elapsed = start.elapsed();
    if let (Some(a), Some(b)) = (cpu_start, cpu_time()) {
        let on_cpu = b - a;
        println!(
            "SchedulingBasic: whole plan {:.1} ms on CPU ({:.0} placements/s per core), {:.1} ms wall",
            on_cpu.as_secs_f64() * 1000.0,
            10_000.0 / on_cpu.as_secs_f64(),
            elapsed.as_secs_f64() * 1000.0
        );
    }
    let cpu_start = cpu_time();
    let web = state
        .workload_named(Kind::Deployment, "default", "web")
        .expect("declared");
    let slots: Vec<u32> = (0..10_000).collect();
    let mut s = Scheduler::new(&state, &cluster);
    let placed = s.schedule(
        PodRef {
            namespace: "default",
            name: "web",
            template: &web.spec.template,
        },
        &slots,
    );
    assert!(placed.iter().all(Result::is_ok));
    if let (Some(a), Some(b)) = (cpu_start, cpu_time()) {
        println!(
            "SchedulingBasic: scheduler alone {:.1} ms on CPU ({:.0} placements/s per core)",
            (b - a).as_secs_f64() * 1000.0,
            10_000.0 / (b - a).as_secs_f64()
        );
    }
    for replicas in [50_000u32, 100_000] {
        let (state, cluster) = converged(replicas);
        let cpu_start = cpu_time();
        let start = Instant::now();
        let p = plan(&state, &cluster, COMMIT, now());
        let elapsed = start.elapsed();
        assert!(p.is_empty());
        if let (Some(a), Some(b)) = (cpu_start, cpu_time()) {
            println!(
                "no-op plan, {replicas} replicas on 5000 nodes: {:.1} ms on CPU, {:.1} ms wall",
                (b - a).as_secs_f64() * 1000.0,
                elapsed.as_secs_f64() * 1000.0
            );
        }
    }
    assert_eq!(p.actions.len(), 10_000);
    assert!(p.unschedulable.is_empty());
    let mut per_node: BTreeMap<&str, u32> = state
        .nodes
        .iter()
        .map(|n| (n.meta.name.as_str(), 0))
        .collect();
    for n in cluster.nodes.values() {
        *per_node.get_mut(n.name.as_str()).expect("declared") += n.containers.len() as u32;
    }
    for a in &p.actions {
        *per_node.get_mut(a.node.as_str()).expect("declared") += 1;
    }
    let used = per_node.values().filter(|c| **c > 0).count();
    let min = per_node.values().min().copied().unwrap_or(0);
    let max = per_node.values().max().copied().unwrap_or(0);
    let cpu = |pods: u32| f64::from(pods) * 100.0 / 4000.0 * 100.0;
    let memory = |pods: u32| f64::from(pods) * 500.0 / (32.0 * 1024.0) * 100.0;
    println!(
        "SchedulingBasic: 10000 placements in {:.1} ms ({:.0} placements/s, whole plan); \
         nodes used {used}/5000; pods per node min {min} max {max} (skew {}); \
         CPU utilisation min {:.1}% max {:.1}%; memory min {:.1}% max {:.1}%",
        elapsed.as_secs_f64() * 1000.0,
        10_000.0 / elapsed.as_secs_f64(),
        max - min,
        cpu(min),
        cpu(max),
        memory(min),
        memory(max),
    );
}

fn bench(c: &mut Criterion) {
    let (state, cluster) = scheduling_basic();
    let mut group = c.benchmark_group("scheduler");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("scheduling_basic_plan_10000_on_5000_nodes", |b| {
        b.iter(|| plan(&state, &cluster, COMMIT, now()))
    });
    let web = state
        .workload_named(Kind::Deployment, "default", "web")
        .expect("declared")
        .clone();
    let slots: Vec<u32> = (0..10_000).collect();
    group.bench_function("scheduling_basic_scheduler_only", |b| {
        b.iter(|| {
            let mut s = Scheduler::new(&state, &cluster);
            let init = state
                .workload_named(Kind::Deployment, "default", "init")
                .expect("declared");
            for n in cluster.nodes.values() {
                let i = s.node_index(&n.name).expect("declared");
                for _ in &n.containers {
                    s.add_pod(
                        i,
                        PodRef {
                            namespace: "default",
                            name: "init",
                            template: &init.spec.template,
                        },
                    );
                }
            }
            let placed = s.schedule(
                PodRef {
                    namespace: "default",
                    name: "web",
                    template: &web.spec.template,
                },
                &slots,
            );
            assert!(placed.iter().all(Result::is_ok));
            placed
        })
    });
    drop((state, cluster));
    for replicas in [50_000u32, 100_000] {
        let (state, cluster) = converged(replicas);
        group.bench_function(
            format!("noop_plan_{replicas}_replicas_on_5000_nodes"),
            |b| {
                b.iter(|| {
                    let p = plan(&state, &cluster, COMMIT, now());
                    assert!(p.is_empty());
                    p
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    if std::env::args().any(|a| a == "--quality") {
        report_quality();
        return;
    }
    report_quality();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
