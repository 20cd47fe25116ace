//! The planner end to end on typed inputs: rendered plans pinned as
//! snapshots, and the invariants each scenario must keep.

use std::time::Duration;

use crate::plan_support::*;
use flotilla::cluster::{ContainerRole, ContainerState};
use flotilla::manifest::model::*;
use flotilla::plan::{plan, render, Change, Operation, Plan, RenderOptions};

fn three_nodes() -> Vec<Node> {
    vec![
        node("n1", 4000, 8 * GIB),
        node("n2", 4000, 8 * GIB),
        node("n3", 4000, 8 * GIB),
    ]
}

fn plan_now(state: &DesiredState, cluster: &flotilla::cluster::ObservedCluster) -> Plan {
    plan(state, cluster, COMMIT, now())
}

/// Deploys `state` onto an empty cluster and returns the converged cluster.
fn deployed(state: &DesiredState) -> flotilla::cluster::ObservedCluster {
    let mut cluster = empty_cluster(state);
    converge(state, &mut cluster, 10);
    cluster
}

#[test]
fn fresh_deploy() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let p = plan_now(&state, &empty_cluster(&state));
    assert_eq!(p.counts(), (3, 0, 0, 0));
    let nodes: std::collections::BTreeSet<&str> =
        p.actions.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(
        nodes.len(),
        3,
        "LeastAllocated spreads three replicas on three nodes"
    );
    let Operation::Create {
        containers,
        template,
    } = &p.actions[0].operation
    else {
        panic!("a create");
    };
    assert_eq!(containers[0].commit, COMMIT);
    assert_eq!(
        containers[0].template_hash,
        flotilla::manifest::template_hash(template)
    );
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn converged_cluster_gives_an_empty_plan() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let cluster = deployed(&state);
    let p = plan_now(&state, &cluster);
    assert!(p.is_empty(), "{p}");
    assert_eq!(
        p.to_string(),
        "No changes. The cluster matches the desired state.\n"
    );
}

/// Healthy replicas are never moved to improve a score: a new empty node
/// would score best under LeastAllocated, and switching to MostAllocated
/// would pack everything on one node, yet neither changes a converged
/// cluster.
#[test]
fn healthy_replicas_are_never_moved_to_improve_a_score() {
    for strategy in [
        ScoringStrategy::LeastAllocated,
        ScoringStrategy::MostAllocated,
    ] {
        let mut state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
        let mut cluster = deployed(&state);
        let mut nodes = three_nodes();
        nodes.push(node("n4", 16_000, 64 * GIB));
        state = desired(nodes, state.workloads.clone());
        state.cluster.scoring_strategy = strategy;
        cluster
            .nodes
            .insert("n4".into(), empty_cluster(&state).nodes["n4"].clone());
        let p = plan_now(&state, &cluster);
        assert!(p.is_empty(), "{strategy:?}: {p}");
    }
}

#[test]
fn scale_up_fills_the_lowest_free_slots() {
    let state = desired(three_nodes(), vec![deployment("web", 2, 500, GIB)]);
    let mut cluster = deployed(&state);
    // Slot 0 disappears (removed by hand): the new replicas take 0 and 2.
    for n in cluster.nodes.values_mut() {
        n.containers.retain(|c| c.labels.slot != 0);
    }
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let p = plan_now(&state, &cluster);
    let slots: Vec<u32> = p.actions.iter().map(|a| a.slot).collect();
    assert_eq!(slots, vec![0, 2]);
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn scale_down_removes_the_highest_slots() {
    let state = desired(three_nodes(), vec![deployment("web", 5, 500, GIB)]);
    let cluster = deployed(&state);
    let state = desired(three_nodes(), vec![deployment("web", 2, 500, GIB)]);
    let p = plan_now(&state, &cluster);
    let slots: Vec<u32> = p.actions.iter().map(|a| a.slot).collect();
    assert_eq!(slots, vec![4, 3, 2]);
    assert!(p.actions.iter().all(|a| a.change() == Change::Remove));
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn prune_objects_no_longer_declared() {
    let state = desired(
        three_nodes(),
        vec![
            deployment("web", 1, 500, GIB),
            deployment("old", 2, 100, MIB),
        ],
    );
    let cluster = deployed(&state);
    let state = desired(three_nodes(), vec![deployment("web", 1, 500, GIB)]);
    let p = plan_now(&state, &cluster);
    assert_eq!(p.counts(), (0, 0, 2, 0));
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn rolling_update_steps_within_the_budgets() {
    let mut web = deployment("web", 6, 100, MIB);
    web.spec.strategy = Strategy::RollingUpdate {
        max_surge: IntOrPercent::Int(2),
        max_unavailable: IntOrPercent::Int(1),
    };
    let state = desired(three_nodes(), vec![web.clone()]);
    let mut cluster = deployed(&state);
    let state = desired(three_nodes(), vec![with_image(web, "web:2")]);
    let first = plan_now(&state, &cluster);
    // Unavailable 1: one old replica goes; surge 2, with the terminating
    // one not counted (as in Kubernetes): three new ones, 8 in all.
    let creates = first
        .actions
        .iter()
        .filter(|a| a.verb() == "create")
        .count();
    let removes = first
        .actions
        .iter()
        .filter(|a| a.verb() == "remove")
        .count();
    assert_eq!((creates, removes), (3, 1));
    insta::assert_snapshot!("rolling_update_first_step", first.to_string());

    // New replicas not ready yet: the next step must not remove more old ones
    // than the unavailable budget allows.
    apply_to_observed(&mut cluster, &first, now());
    for n in cluster.nodes.values_mut() {
        for c in &mut n.containers {
            if c.image == "web:2" {
                c.started_at = Some(now());
            }
        }
    }
    let mut slow = state.clone();
    slow.workloads[0].spec.min_ready_seconds = 30;
    let waiting = plan_now(&slow, &cluster);
    // 8 replicas (5 old ready, 3 new not ready), minAvailable 5 and 6 + 2
    // in all: nothing to do until a new one is ready.
    assert_eq!(waiting.counts(), (0, 0, 0, 0), "{waiting}");

    let plans = converge(&state, &mut cluster, 20);
    for p in &plans {
        let count = |verb| p.actions.iter().filter(|a| a.verb() == verb).count();
        assert!(
            count("create") <= 2 + count("remove"),
            "a step creates at most the surge plus what it removes:\n{p}"
        );
    }
    let images: Vec<&str> = cluster
        .nodes
        .values()
        .flat_map(|n| n.containers.iter().map(|c| c.image.as_str()))
        .collect();
    assert_eq!(images.len(), 6);
    assert!(images.iter().all(|i| *i == "web:2"));
}

#[test]
fn rolling_update_with_zero_budgets_uses_unavailable_one() {
    let mut web = deployment("web", 2, 100, MIB);
    web.spec.strategy = Strategy::RollingUpdate {
        max_surge: IntOrPercent::Int(0),
        max_unavailable: IntOrPercent::Percent(0),
    };
    let state = desired(three_nodes(), vec![web.clone()]);
    let cluster = deployed(&state);
    let state = desired(three_nodes(), vec![with_image(web, "web:2")]);
    let p = plan_now(&state, &cluster);
    // One old replica goes; its replacement starts at once (a terminating
    // replica does not count against the surge of 0).
    assert_eq!(p.counts(), (0, 2, 0, 0), "{p}");
    let verbs: Vec<&str> = p.actions.iter().map(|a| a.verb()).collect();
    assert_eq!(verbs, ["create", "remove"], "{p}");
}

#[test]
fn recreate_removes_all_old_first() {
    let mut web = deployment("web", 3, 100, MIB);
    web.spec.strategy = Strategy::Recreate;
    let state = desired(three_nodes(), vec![web.clone()]);
    let mut cluster = deployed(&state);
    let state = desired(three_nodes(), vec![with_image(web, "web:2")]);
    let first = plan_now(&state, &cluster);
    assert!(first.actions.iter().all(|a| a.verb() == "remove"));
    assert_eq!(first.actions.len(), 3);
    insta::assert_snapshot!(first.to_string());
    apply_to_observed(&mut cluster, &first, now());
    let second = plan_now(&state, &cluster);
    assert!(second.actions.iter().all(|a| a.verb() == "create"));
    assert_eq!(second.actions.len(), 3);
}

#[test]
fn unschedulable_replicas_are_reported() {
    let state = desired(
        vec![
            node("n1", 4000, GIB),
            node("n2", 4000, GIB),
            labelled(node("n3", 4000, 64 * GIB), &[("disk", "hdd")]),
        ],
        vec![{
            let mut d = deployment("db", 2, 500, 4 * GIB);
            d.spec.template.spec.required_node_affinity = vec![NodeSelectorTerm {
                match_expressions: vec![LabelSelectorRequirement {
                    key: "disk".into(),
                    operator: SelectorOperator::NotIn,
                    values: vec!["hdd".into()],
                }],
            }];
            d
        }],
    );
    let p = plan_now(&state, &empty_cluster(&state));
    assert_eq!(p.counts(), (0, 0, 0, 2));
    assert!(!p.is_empty());
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn unreachable_node_within_grace_is_left_alone() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let mut cluster = deployed(&state);
    set_unreachable(&mut cluster, "n2", 20);
    let p = plan_now(&state, &cluster);
    assert!(p.actions.is_empty(), "{p}");
    assert_eq!(p.objects[0].unknown, 1);
    insta::assert_snapshot!(p.to_string());
}

/// Regression: `flotilla plan`, and a leader after a restart, saw an
/// unreachable node with no containers and planned its replicas again on
/// the other nodes, reporting "0 unknown".
#[test]
fn never_seen_node_within_grace_holds_back_creates_as_unknown() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let mut cluster = deployed(&state);
    set_never_seen(&mut cluster, "n2", 20);
    let p = plan_now(&state, &cluster);
    assert!(p.actions.is_empty(), "{p}");
    assert_eq!(p.held.len(), 1, "{p}");
    assert_eq!(p.held[0].replicas, 1);
    assert_eq!(p.held[0].nodes, vec!["n2".to_string()]);
    assert_eq!(p.objects[0].unknown, 1);
    assert_eq!(p.unknown_replicas(), 1);
    assert!(
        !p.is_empty(),
        "unknown replicas are not a converged cluster"
    );
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn never_seen_node_on_a_fresh_cluster_holds_back_every_create() {
    let state = desired(
        three_nodes(),
        vec![
            deployment("api", 2, 500, GIB),
            deployment("web", 3, 500, GIB),
        ],
    );
    let mut cluster = empty_cluster(&state);
    set_never_seen(&mut cluster, "n2", 0);
    let p = plan_now(&state, &cluster);
    assert!(p.actions.is_empty(), "{p}");
    assert_eq!(p.unknown_replicas(), 5, "{p}");
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn never_seen_node_past_grace_is_replaced_elsewhere() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let mut cluster = deployed(&state);
    set_never_seen(&mut cluster, "n2", 60);
    let p = plan_now(&state, &cluster);
    assert!(p.held.is_empty(), "{p}");
    assert_eq!(p.counts(), (1, 0, 0, 0), "{p}");
    assert!(p.actions.iter().all(|a| a.node != "n2"));
}

#[test]
fn never_seen_node_holds_nothing_when_every_replica_is_accounted_for() {
    let state = desired(three_nodes(), vec![deployment("web", 2, 500, GIB)]);
    let mut cluster = deployed(&state);
    let empty = replicas_per_node(&cluster)
        .into_iter()
        .find(|(_, n)| *n == 0)
        .map(|(name, _)| name)
        .expect("two replicas leave one node empty");
    set_never_seen(&mut cluster, &empty, 0);
    let p = plan_now(&state, &cluster);
    assert!(p.held.is_empty(), "{p}");
    assert!(p.actions.is_empty(), "{p}");
    assert_eq!(p.objects[0].unknown, 0);
}

#[test]
fn unreachable_node_past_grace_is_replaced_then_surplus_removed_when_back() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let mut cluster = deployed(&state);
    set_unreachable(&mut cluster, "n2", 60);
    let past = plan_now(&state, &cluster);
    assert_eq!(past.counts(), (1, 0, 0, 0));
    assert!(past.actions.iter().all(|a| a.node != "n2"));
    insta::assert_snapshot!("unreachable_past_grace", past.to_string());
    apply_to_observed(&mut cluster, &past, now());

    // Nothing is ever removed on the unreachable node.
    let still = plan_now(&state, &cluster);
    assert!(still.actions.is_empty(), "{still}");

    set_reachable(&mut cluster, "n2");
    let back = plan_now(&state, &cluster);
    assert_eq!(back.counts(), (0, 0, 1, 0));
    assert_eq!(back.actions[0].slot, 3, "the newest replica goes");
    insta::assert_snapshot!("node_back_with_surplus", back.to_string());
    apply_to_observed(&mut cluster, &back, now());
    assert!(plan_now(&state, &cluster).is_empty());
}

#[test]
fn stopped_container_is_started_and_dead_one_replaced() {
    let state = desired(three_nodes(), vec![deployment("web", 2, 500, GIB)]);
    let mut cluster = deployed(&state);
    let mut containers = cluster
        .nodes
        .values_mut()
        .flat_map(|n| n.containers.iter_mut())
        .collect::<Vec<_>>();
    containers.sort_by_key(|c| c.labels.slot);
    containers[0].state = ContainerState::Exited { code: 1 };
    containers[1].state = ContainerState::Dead;
    let p = plan_now(&state, &cluster);
    let summary: Vec<(&str, u32)> = p.actions.iter().map(|a| (a.verb(), a.slot)).collect();
    assert_eq!(summary, vec![("create", 2), ("start", 0), ("remove", 1)]);
    insta::assert_snapshot!(p.to_string());
    converge(&state, &mut cluster, 5);
}

#[test]
fn missing_container_of_a_pod_is_created_again() {
    let mut d = deployment("web", 1, 500, GIB);
    d.spec
        .template
        .spec
        .containers
        .push(container("sidecar", "proxy:1", 10, MIB));
    let state = desired(three_nodes(), vec![d]);
    let mut cluster = deployed(&state);
    for n in cluster.nodes.values_mut() {
        n.containers.retain(|c| c.labels.container != "sidecar");
    }
    let p = plan_now(&state, &cluster);
    assert_eq!(p.actions.len(), 1);
    assert!(p.actions[0].reason.contains("sidecar"), "{p}");
    apply_to_observed(&mut cluster, &p, now());
    assert!(plan_now(&state, &cluster).is_empty());
}

#[test]
fn readiness_gates_count_as_available() {
    // Old replicas with a failing readiness probe are not available, so
    // they may all go (cleanup within budget) during a rollout.
    let mut web = deployment("web", 2, 100, MIB);
    web.spec.template.spec.containers[0].readiness_probe = Some(Probe {
        handler: ProbeHandler::TcpSocket {
            port: PortRef::Number(80),
        },
        initial_delay_seconds: 0,
        period_seconds: 10,
        timeout_seconds: 1,
        success_threshold: 1,
        failure_threshold: 3,
    });
    let state = desired(three_nodes(), vec![web.clone()]);
    let mut cluster = deployed(&state);
    for c in cluster
        .nodes
        .values_mut()
        .flat_map(|n| n.containers.iter_mut())
    {
        c.probe_ready = Some(false);
    }
    let p = plan_now(&state, &cluster);
    assert!(p.is_empty(), "not ready is not a reason to act: {p}");
}

/// Issue 12, item 6: offline, a Node that declares no capacity has an
/// unknown one, not none: replicas go there without a CPU and memory check
/// and the plan says so once, where every replica that did not fit the
/// declared node was unschedulable ("had no known capacity").
#[test]
fn offline_plan_places_on_nodes_without_capacity_and_says_so() {
    let mut bare = node("n2", 0, 0);
    bare.spec.capacity = Capacity::default();
    let state = desired(
        vec![node("n1", 1000, GIB), bare],
        vec![deployment("web", 3, 400, 256 * MIB)],
    );
    let p = plan_now(&state, &flotilla::plan::offline_cluster(&state));
    assert_eq!(p.counts(), (3, 0, 0, 0), "{p}");
    assert_eq!(p.unknown_capacity, ["n2"]);
    let text = p.to_string();
    assert_eq!(
        text.matches("declares no capacity").count(),
        1,
        "said once: {text}"
    );
    assert!(
        text.contains("? node n2 declares no capacity and no observation gave one: CPU and memory fit not checked; declare spec.capacity to check it"),
        "{text}"
    );

    // Nodes that declare their capacity are checked, and not named.
    let state = desired(
        vec![node("n1", 1000, GIB), node("n2", 1000, GIB)],
        vec![deployment("web", 3, 400, 256 * MIB)],
    );
    let p = plan_now(&state, &flotilla::plan::offline_cluster(&state));
    assert!(p.unknown_capacity.is_empty());
    assert_eq!(p.counts(), (3, 0, 0, 0), "{p}");
}

#[test]
fn render_with_colour_and_manifest_diff() {
    let state = desired(three_nodes(), vec![deployment("web", 1, 500, GIB)]);
    let p = plan_now(&state, &empty_cluster(&state));
    let old = [flotilla::manifest::SourceFile {
        path: "web.yaml".into(),
        text: "replicas: 0\n".into(),
        excluded: Vec::new(),
    }];
    let new = [flotilla::manifest::SourceFile {
        path: "web.yaml".into(),
        text: "replicas: 1\n".into(),
        excluded: Vec::new(),
    }];
    let diff = flotilla::plan::manifest_diff(&old, &new);
    let plain = render(
        &p,
        RenderOptions {
            colour: false,
            manifest_diff: Some(&diff),
            config_changes: None,
        },
    );
    insta::assert_snapshot!("render_plain_with_diff", plain);
    let coloured = render(
        &p,
        RenderOptions {
            colour: true,
            manifest_diff: Some(&diff),
            config_changes: None,
        },
    );
    assert!(coloured.contains("\x1b[32m  + web[0]"));
    assert_eq!(strip_ansi(&coloured), plain);
}

#[test]
fn plan_serializes_to_json() {
    let state = desired(three_nodes(), vec![deployment("web", 1, 500, GIB)]);
    let p = plan_now(&state, &empty_cluster(&state));
    let json = serde_json::to_value(&p).expect("plan serializes");
    assert_eq!(json["actions"][0]["operation"]["type"], "create");
    assert_eq!(
        json["actions"][0]["operation"]["containers"][0]["container"],
        "app"
    );
    assert_eq!(json["objects"][0]["desired"], 1);
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[allow(dead_code)]
fn later(seconds: u64) -> std::time::SystemTime {
    now() + Duration::from_secs(seconds)
}

/// Issue 10, items 2 and 14: the text of a plan grew with the replicas
/// (1,000,000 replicas sent 118 MB to a pusher) and was rendered in time
/// quadratic in objects × actions.
#[test]
fn a_large_plan_renders_a_bounded_text_in_linear_time() {
    let mut deployments: Vec<Workload> = (0..200)
        .map(|i| deployment(&format!("app{i:03}"), 1, 1, 1))
        .collect();
    deployments.push(deployment("web", 20_000, 1, 1));
    // 110 pods a node at most, as the kubelet's default.
    let nodes = (0..200)
        .map(|i| node(&format!("n{i:03}"), 1_000_000, 1024 * GIB))
        .collect();
    let state = desired(nodes, deployments);
    let p = plan_now(&state, &empty_cluster(&state));
    assert_eq!(p.counts(), (20_200, 0, 0, 0));
    let text = p.to_string();
    let web: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Deployment default/web:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(web.len(), render::MAX_LINES_PER_OBJECT + 1, "{web:?}");
    assert_eq!(
        web.last().copied(),
        Some("  ... and 19950 more action(s) on web (`--output json` lists every one)")
    );
    assert!(text.len() < 100_000, "{} bytes", text.len());
    assert!(text.ends_with("Plan: 20200 to create, 0 to update, 0 to remove, 0 unschedulable.\n"));
}

// ------------------------------------------------------------- DaemonSet

fn workers(count: usize) -> Vec<Node> {
    (1..=count)
        .map(|i| labelled(node(&format!("n{i}"), 4000, 8 * GIB), &[("role", "worker")]))
        .collect()
}

fn agent() -> Workload {
    let mut agent = daemon_set("agent", 100, 128 * MIB);
    agent
        .spec
        .template
        .spec
        .node_selector
        .insert("role".into(), "worker".into());
    agent
}

fn pods_by_node(cluster: &flotilla::cluster::ObservedCluster) -> Vec<(String, String)> {
    let mut pods: Vec<(String, String)> = flotilla::cluster::group_replicas(cluster)
        .iter()
        .map(|r| (r.node.to_string(), r.key.template_hash.to_string()))
        .collect();
    pods.sort();
    pods
}

/// One pod on every node the selector and the taints admit; a cordoned
/// node keeps its DaemonSet pod (Kubernetes tolerates
/// `node.kubernetes.io/unschedulable` for DaemonSet pods).
#[test]
fn daemon_set_runs_one_pod_on_every_eligible_node() {
    let mut nodes = workers(3);
    nodes[1].spec.unschedulable = true;
    nodes[2] = tainted(nodes[2].clone(), "dedicated", "db", TaintEffect::NoSchedule);
    nodes.push(node("n4", 4000, 8 * GIB)); // not a worker
    let state = desired(nodes, vec![agent()]);
    let p = plan_now(&state, &empty_cluster(&state));
    let targets: Vec<&str> = p.actions.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(targets, ["n1", "n2"], "{p}");
    assert_eq!(p.objects[0].desired, Some(2));
    insta::assert_snapshot!(p.to_string());
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    assert!(plan_now(&state, &cluster).is_empty());
}

/// A Node added to the repository gets its pod; a node tainted `NoExecute`
/// or no longer selected loses it; the others are left alone.
#[test]
fn daemon_set_follows_the_nodes() {
    let state = desired(workers(3), vec![agent()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);

    let mut nodes = workers(4);
    let added = desired(nodes.clone(), vec![agent()]);
    let mut grown = cluster.clone();
    grown
        .nodes
        .insert("n4".into(), empty_cluster(&added).nodes["n4"].clone());
    let p = plan_now(&added, &grown);
    let creates: Vec<&str> = p.actions.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(creates, ["n4"], "{p}");

    nodes[1] = tainted(nodes[1].clone(), "maintenance", "", TaintEffect::NoExecute);
    nodes[2].meta.labels.remove("role");
    let shrunk = desired(nodes, vec![agent()]);
    converge(&added, &mut grown, 5);
    let p = plan_now(&shrunk, &grown);
    let removed: Vec<(&str, Change)> = p
        .actions
        .iter()
        .map(|a| (a.node.as_str(), a.change()))
        .collect();
    assert_eq!(
        removed,
        [("n2", Change::Remove), ("n3", Change::Remove)],
        "{p}"
    );
    assert!(
        p.actions[0]
            .reason
            .contains("untolerated taint {maintenance: }"),
        "{p}"
    );
    assert!(
        p.actions[1].reason.contains("node affinity/selector"),
        "{p}"
    );
    assert_eq!(p.objects[0].desired, Some(2));
}

/// `maxUnavailable: 1`, `maxSurge: 0`: one node's old pod goes, and its new
/// pod is created once the old one is gone (so its host port is free);
/// never more than one node is without a ready pod.
#[test]
fn daemon_set_rolls_one_node_at_a_time() {
    let state = desired(workers(3), vec![agent()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let v2 = desired(workers(3), vec![with_image(agent(), "agent:2")]);
    let first = plan_now(&v2, &cluster);
    insta::assert_snapshot!(first.to_string());
    let plans = converge(&v2, &mut cluster, 20);
    for p in std::iter::once(&first).chain(&plans) {
        let removes = p
            .actions
            .iter()
            .filter(|a| a.change() == Change::Update && a.verb() == "remove")
            .count();
        assert!(
            removes <= 1,
            "at most maxUnavailable old pods removed at once:\n{p}"
        );
    }
    let new_hash = flotilla::manifest::template_hash(&v2.workloads[0].spec.template);
    let pods = pods_by_node(&cluster);
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|(_, hash)| *hash == new_hash), "{pods:?}");
}

/// `maxSurge: 1`, `maxUnavailable: 0`: the new pod starts beside the old one
/// on one node, and the old goes once the new is available.
#[test]
fn daemon_set_surges_new_pods_beside_old_ones() {
    let surging = |mut d: Workload| {
        d.spec.strategy = Strategy::RollingUpdate {
            max_surge: IntOrPercent::Int(1),
            max_unavailable: IntOrPercent::Int(0),
        };
        d
    };
    let state = desired(workers(3), vec![surging(agent())]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let v2 = desired(workers(3), vec![surging(with_image(agent(), "agent:2"))]);
    let p = plan_now(&v2, &cluster);
    let actions: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| (a.node.as_str(), a.verb()))
        .collect();
    assert_eq!(actions, [("n1", "create")], "{p}");
    apply_to_observed(&mut cluster, &p, now());
    let p = plan_now(&v2, &cluster);
    let actions: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| (a.node.as_str(), a.verb()))
        .collect();
    assert_eq!(actions, [("n2", "create"), ("n1", "remove")], "{p}");
    converge(&v2, &mut cluster, 20);
    assert_eq!(pods_by_node(&cluster).len(), 3);
}

/// `OnDelete`: old pods stay until removed by hand; a node without a pod
/// gets the new revision.
#[test]
fn daemon_set_on_delete_keeps_old_pods() {
    let on_delete = |mut d: Workload| {
        d.spec.strategy = Strategy::OnDelete;
        d
    };
    let state = desired(workers(3), vec![on_delete(agent())]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let v2 = desired(workers(3), vec![on_delete(with_image(agent(), "agent:2"))]);
    assert!(plan_now(&v2, &cluster).actions.is_empty());
    cluster.nodes.get_mut("n2").unwrap().containers.clear();
    let p = plan_now(&v2, &cluster);
    let actions: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| (a.node.as_str(), a.verb()))
        .collect();
    assert_eq!(actions, [("n2", "create")], "{p}");
}

/// A DaemonSet pod takes its node's resources before any replica is
/// placed, and a node where it does not fit is reported in kube-scheduler's
/// words for a pod bound to one node.
#[test]
fn daemon_set_pods_take_their_nodes_resources_first() {
    let nodes = vec![
        labelled(node("n1", 1000, 8 * GIB), &[("role", "worker")]),
        labelled(node("n2", 1000, 8 * GIB), &[("role", "worker")]),
        labelled(node("n3", 500, 8 * GIB), &[("role", "worker")]),
    ];
    let mut big_agent = agent();
    big_agent.spec.template.spec.containers[0]
        .resources
        .requests
        .cpu = Some(flotilla::manifest::quantity::CpuMillis(600));
    // `web` sorts before `agent`'s kind in the plan, yet is placed after it.
    let state = desired(nodes, vec![deployment("web", 2, 500, GIB), big_agent]);
    let p = plan_now(&state, &empty_cluster(&state));
    insta::assert_snapshot!(p.to_string());
    let unschedulable: Vec<(Option<&str>, &str)> = p
        .unschedulable
        .iter()
        .map(|u| (u.node.as_deref(), u.reason.as_str()))
        .collect();
    assert_eq!(
        unschedulable,
        [
            (
                Some("n3"),
                "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
            ),
            (
                None,
                "0/3 nodes are available: 3 Insufficient cpu."
            ),
        ],
        "{p}"
    );
}

/// Pods being stopped (Docker's `removing`, or the leader's own stop in
/// flight) are terminating, as in Kubernetes: not counted, not removed
/// again, and their ports are not free yet. A Deployment's next wave starts
/// beside them; a DaemonSet's new pod waits for its node's old one to go.
#[test]
fn terminating_pods_are_not_counted_nor_acted_on_again() {
    let state = desired(three_nodes(), vec![deployment("web", 3, 500, GIB)]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let n1 = cluster.nodes.get_mut("n1").unwrap();
    n1.containers[0].state = ContainerState::Removing;
    let p = plan_now(&state, &cluster);
    let actions: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| (a.node.as_str(), a.verb()))
        .collect();
    assert_eq!(actions.len(), 1, "{p}");
    assert_eq!(
        actions[0].1, "create",
        "a replacement, and no second remove:\n{p}"
    );

    let ds = desired(workers(3), vec![agent()]);
    let mut cluster = empty_cluster(&ds);
    converge(&ds, &mut cluster, 5);
    let v2 = desired(workers(3), vec![with_image(agent(), "agent:2")]);
    cluster.nodes.get_mut("n1").unwrap().containers[0].state = ContainerState::Removing;
    let p = plan_now(&v2, &cluster);
    assert!(
        p.actions.is_empty() && p.unschedulable.is_empty(),
        "n1's new pod waits for the old one to go; the budget is spent:\n{p}"
    );
    cluster.nodes.get_mut("n1").unwrap().containers.clear();
    let p = plan_now(&v2, &cluster);
    let actions: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| (a.node.as_str(), a.verb()))
        .collect();
    assert_eq!(actions, [("n1", "create")], "{p}");
}

/// Review of issue 11: with removals in the background, a Recreate's old
/// replicas are terminating for their grace period; no new replica may start
/// beside them (Kubernetes waits for every old pod to be gone).
#[test]
fn recreate_waits_for_terminating_old_replicas() {
    let mut web = deployment("web", 2, 500, GIB);
    web.spec.strategy = Strategy::Recreate;
    let state = desired(three_nodes(), vec![web.clone()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    for node in cluster.nodes.values_mut() {
        for c in &mut node.containers {
            c.state = ContainerState::Removing;
        }
    }
    let v2 = desired(three_nodes(), vec![with_image(web, "web:2")]);
    let p = plan_now(&v2, &cluster);
    assert!(
        p.actions.is_empty(),
        "nothing until the old replicas are gone:\n{p}"
    );
    for node in cluster.nodes.values_mut() {
        node.containers.clear();
    }
    let p = plan_now(&v2, &cluster);
    assert_eq!(p.counts().0, 2, "{p}");
}

/// Review of issue 11: an untolerated `NoSchedule` taint keeps new pods off
/// a node but lets the one there run on (Kubernetes' shouldContinueRunning);
/// a rolling update removes it there and creates none.
#[test]
fn a_no_schedule_taint_lets_the_pod_there_run_on() {
    let state = desired(workers(3), vec![agent()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let mut nodes = workers(3);
    nodes[1] = tainted(
        nodes[1].clone(),
        "dedicated",
        "gpu",
        TaintEffect::NoSchedule,
    );
    let tainted_state = desired(nodes.clone(), vec![agent()]);
    let p = plan_now(&tainted_state, &cluster);
    assert!(p.is_empty(), "{p}");
    assert_eq!(p.objects[0].desired, Some(3));

    let v2 = desired(nodes, vec![with_image(agent(), "agent:2")]);
    converge(&v2, &mut cluster, 20);
    let new_hash = flotilla::manifest::template_hash(&v2.workloads[0].spec.template);
    let pods = pods_by_node(&cluster);
    assert_eq!(
        pods,
        [
            ("n1".to_string(), new_hash.clone()),
            ("n3".to_string(), new_hash)
        ],
        "n2 keeps no pod after the update"
    );
    assert_eq!(plan_now(&v2, &cluster).objects[0].desired, Some(2));
}

/// Issue 16: a pod with an init container and a sidecar is created in a
/// sandbox, the plan says in which order its containers run, its requests
/// follow Kubernetes' rule, and applying it converges.
#[test]
fn a_pod_with_init_containers_is_planned_in_a_sandbox_and_converges() {
    let mut d = deployment("web", 1, 500, GIB);
    let mut sidecar = container("log", "log:1", 100, MIB);
    sidecar.sidecar = true;
    d.spec.template.spec.init_containers =
        vec![container("migrate", "migrate:1", 900, MIB), sidecar];
    assert_eq!(
        d.spec.template.spec.requests().cpu.map(|c| c.0),
        Some(900),
        "the init container's 900m beats 500m + 100m"
    );
    let state = desired(three_nodes(), vec![d]);
    let mut cluster = empty_cluster(&state);
    let plans = converge(&state, &mut cluster, 5);
    let first = plans[0].to_string();
    assert!(
        first.contains("[sandbox; init migrate; sidecar log; app app]"),
        "{first}"
    );
    let roles: Vec<(String, ContainerRole)> = cluster
        .nodes
        .values()
        .flat_map(|n| &n.containers)
        .map(|c| (c.labels.container.clone(), c.labels.role))
        .collect();
    assert_eq!(roles.len(), 4, "{roles:?}");
    assert!(roles.contains(&("_sandbox".to_string(), ContainerRole::Sandbox)));
    assert!(roles.contains(&("migrate".to_string(), ContainerRole::Init)));
    assert!(roles.contains(&("log".to_string(), ContainerRole::Sidecar)));
}
