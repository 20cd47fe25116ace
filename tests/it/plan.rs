//! The planner end to end on typed inputs: rendered plans pinned as
//! snapshots, and the invariants each scenario must keep.

use std::time::Duration;

use crate::plan_support::*;
use flotilla::cluster::ContainerState;
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
        state = desired(nodes, state.deployments.clone());
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
    slow.deployments[0].spec.min_ready_seconds = 30;
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

#[test]
fn offline_plan_reports_nodes_without_capacity() {
    let mut bare = node("n2", 0, 0);
    bare.spec.capacity = Capacity::default();
    let state = desired(
        vec![node("n1", 1000, GIB), bare],
        vec![deployment("web", 3, 400, 256 * MIB)],
    );
    let p = plan_now(&state, &flotilla::plan::offline_cluster(&state));
    assert_eq!(p.counts(), (2, 0, 0, 1));
    assert_eq!(
        p.unschedulable[0].reason,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had no known capacity."
    );
}

#[test]
fn render_with_colour_and_manifest_diff() {
    let state = desired(three_nodes(), vec![deployment("web", 1, 500, GIB)]);
    let p = plan_now(&state, &empty_cluster(&state));
    let old = [flotilla::manifest::SourceFile {
        path: "web.yaml".into(),
        text: "replicas: 0\n".into(),
    }];
    let new = [flotilla::manifest::SourceFile {
        path: "web.yaml".into(),
        text: "replicas: 1\n".into(),
    }];
    let diff = flotilla::plan::manifest_diff(&old, &new);
    let plain = render(
        &p,
        RenderOptions {
            colour: false,
            manifest_diff: Some(&diff),
        },
    );
    insta::assert_snapshot!("render_plain_with_diff", plain);
    let coloured = render(
        &p,
        RenderOptions {
            colour: true,
            manifest_diff: Some(&diff),
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
    let mut deployments: Vec<Deployment> = (0..200)
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
