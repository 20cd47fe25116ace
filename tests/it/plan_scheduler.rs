//! The scheduler's filters and scores, one small table per concern.

use crate::plan_support::*;
use flotilla::cluster::ObservedCluster;
use flotilla::manifest::model::*;
use flotilla::plan::scheduler::{PodRef, Scheduler};

/// Places `count` replicas of `pod` after `existing` (deployment, node)
/// pods; returns each node name or the failure message.
fn place(
    state: &DesiredState,
    cluster: &ObservedCluster,
    existing: &[(&Workload, &str)],
    pod: &Workload,
    count: u32,
) -> Vec<Result<String, String>> {
    let mut s = Scheduler::new(state, cluster);
    for (d, node) in existing {
        let i = s.node_index(node).expect("declared node");
        s.add_pod(i, pod_ref(d));
    }
    let slots: Vec<u32> = (0..count).collect();
    s.schedule(pod_ref(pod), &slots)
        .into_iter()
        .map(|r| r.map(|i| s.node_name(i).to_string()))
        .collect()
}

fn pod_ref(d: &Workload) -> PodRef<'_> {
    PodRef {
        namespace: &d.meta.namespace,
        name: &d.meta.name,
        template: &d.spec.template,
    }
}

fn check(case: &str, nodes: Vec<Node>, pod: Workload, expected: Result<&str, &str>) {
    let state = desired(nodes, vec![]);
    let cluster = empty_cluster(&state);
    let got = place(&state, &cluster, &[], &pod, 1).remove(0);
    assert_eq!(got.as_deref().map_err(String::as_str), expected, "{case}");
}

fn web(cpu: u64, memory: u64) -> Workload {
    deployment("web", 1, cpu, memory)
}

#[test]
fn resource_filters() {
    check(
        "fits on the only node with room",
        vec![node("n1", 500, GIB), node("n2", 4000, 8 * GIB)],
        web(1000, GIB),
        Ok("n2"),
    );
    check(
        "insufficient cpu everywhere",
        vec![node("n1", 500, 8 * GIB), node("n2", 500, 8 * GIB)],
        web(1000, GIB),
        Err("0/2 nodes are available: 2 Insufficient cpu."),
    );
    check(
        "both resources short are both counted",
        vec![node("n1", 500, GIB)],
        web(1000, 2 * GIB),
        Err("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."),
    );
    let mut full = node("n1", 4000, 8 * GIB);
    full.spec.capacity.pods = Some(0);
    check(
        "pod count",
        vec![full],
        web(100, MIB),
        Err("0/1 nodes are available: 1 Too many pods."),
    );
    check(
        "a pod without requests fits anywhere with pod room",
        vec![node("n1", 0, 0)],
        deployment("web", 1, 0, 0),
        Ok("n1"),
    );
}

#[test]
fn requests_of_existing_pods_count() {
    let state = desired(
        vec![node("n1", 1000, 4 * GIB), node("n2", 1000, 4 * GIB)],
        vec![],
    );
    let cluster = empty_cluster(&state);
    let big = deployment("big", 1, 800, GIB);
    let got = place(
        &state,
        &cluster,
        &[(&big, "n1"), (&big, "n2")],
        &web(300, GIB),
        1,
    );
    assert_eq!(
        got,
        vec![Err(
            "0/2 nodes are available: 2 Insufficient cpu.".to_string()
        )]
    );
}

#[test]
fn node_filters() {
    let mut cordoned = node("n1", 4000, 8 * GIB);
    cordoned.spec.unschedulable = true;
    check(
        "cordoned",
        vec![cordoned],
        web(100, MIB),
        Err("0/1 nodes are available: 1 node(s) were unschedulable."),
    );
    check(
        "NoSchedule taint not tolerated",
        vec![tainted(
            node("n1", 4000, 8 * GIB),
            "gpu",
            "true",
            TaintEffect::NoSchedule,
        )],
        web(100, MIB),
        Err("0/1 nodes are available: 1 node(s) had untolerated taint {gpu: true}."),
    );
    check(
        "NoExecute taint not tolerated",
        vec![tainted(
            node("n1", 4000, 8 * GIB),
            "maintenance",
            "",
            TaintEffect::NoExecute,
        )],
        web(100, MIB),
        Err("0/1 nodes are available: 1 node(s) had untolerated taint {maintenance: }."),
    );
    let mut tolerant = web(100, MIB);
    tolerant.spec.template.spec.tolerations.push(Toleration {
        key: "gpu".into(),
        operator: TolerationOperator::Equal,
        value: "true".into(),
        effect: Some(TaintEffect::NoSchedule),
        toleration_seconds: None,
    });
    check(
        "taint tolerated",
        vec![tainted(
            node("n1", 4000, 8 * GIB),
            "gpu",
            "true",
            TaintEffect::NoSchedule,
        )],
        tolerant,
        Ok("n1"),
    );
    check(
        "PreferNoSchedule does not filter",
        vec![tainted(
            node("n1", 4000, 8 * GIB),
            "spot",
            "true",
            TaintEffect::PreferNoSchedule,
        )],
        web(100, MIB),
        Ok("n1"),
    );
    let mut selective = web(100, MIB);
    selective
        .spec
        .template
        .spec
        .node_selector
        .insert("disk".into(), "ssd".into());
    check(
        "nodeSelector",
        vec![
            node("n1", 4000, 8 * GIB),
            labelled(node("n2", 4000, 8 * GIB), &[("disk", "ssd")]),
        ],
        selective.clone(),
        Ok("n2"),
    );
    check(
        "nodeSelector matches nothing",
        vec![node("n1", 4000, 8 * GIB)],
        selective,
        Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."),
    );
    let mut affine = web(100, MIB);
    affine.spec.template.spec.required_node_affinity = vec![
        NodeSelectorTerm {
            match_expressions: vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: SelectorOperator::In,
                values: vec!["b".into()],
            }],
        },
        NodeSelectorTerm {
            match_expressions: vec![LabelSelectorRequirement {
                key: HOSTNAME_LABEL.into(),
                operator: SelectorOperator::In,
                values: vec!["n1".into()],
            }],
        },
    ];
    check(
        "required node affinity: terms are ORed, hostname is a label",
        vec![
            labelled(node("n1", 50, MIB), &[("zone", "a")]),
            labelled(node("n2", 4000, 8 * GIB), &[("zone", "a")]),
        ],
        affine,
        Err("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector."),
    );
}

fn affine_to(key: &str, operator: SelectorOperator, values: &str) -> Workload {
    let mut pod = web(100, MIB);
    pod.spec.template.spec.required_node_affinity = vec![NodeSelectorTerm {
        match_expressions: vec![LabelSelectorRequirement {
            key: key.into(),
            operator,
            values: values
                .split(',')
                .filter(|v| !v.is_empty())
                .map(Into::into)
                .collect(),
        }],
    }];
    pod
}

/// Each row: the node's one label (`key=value`, or none), the requirement
/// (key, operator, comma-separated values), and whether the node matches.
#[test]
fn node_affinity_operators() {
    use SelectorOperator::*;
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        SelectorOperator,
        &'static str,
        bool,
    );
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("In: value listed", "zone=b", "zone", In, "a,b", true),
        ("In: value not listed", "zone=c", "zone", In, "a,b", false),
        ("In: label absent", "", "zone", In, "a", false),
        ("NotIn: value not listed", "zone=c", "zone", NotIn, "a", true),
        ("NotIn: value listed", "zone=a", "zone", NotIn, "a", false),
        ("NotIn: label absent matches", "", "zone", NotIn, "a", true),
        ("Exists: present, empty value", "gpu=", "gpu", Exists, "", true),
        ("Exists: absent", "zone=a", "gpu", Exists, "", false),
        ("DoesNotExist: absent", "zone=a", "gpu", DoesNotExist, "", true),
        ("DoesNotExist: present", "gpu=1", "gpu", DoesNotExist, "", false),
        ("Gt: greater", "cores=16", "cores", Gt, "8", true),
        ("Gt: equal is not greater", "cores=8", "cores", Gt, "8", false),
        ("Gt: negative integers", "temp=-2", "temp", Gt, "-5", true),
        ("Gt: label not an integer", "cores=many", "cores", Gt, "8", false),
        ("Gt: label absent", "", "cores", Gt, "8", false),
        ("Lt: less", "cores=4", "cores", Lt, "8", true),
        ("Lt: equal is not less", "cores=8", "cores", Lt, "8", false),
        ("Lt: label not an integer", "cores=4.5", "cores", Lt, "8", false),
        ("Lt: integers, not text, compared", "cores=9", "cores", Lt, "10", true),
    ];
    for (case, label, key, operator, values, matches) in rows {
        let labels: Vec<(&str, &str)> = label.split_once('=').into_iter().collect();
        check(
            case,
            vec![labelled(node("n1", 4000, 8 * GIB), &labels)],
            affine_to(key, *operator, values),
            if *matches {
                Ok("n1")
            } else {
                Err("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")
            },
        );
    }
}

/// Each row: the effect of the node's taint `gpu=a100`, the pod's one
/// toleration (key, operator, value, effect), and whether it tolerates.
#[test]
fn toleration_operators() {
    use TaintEffect::*;
    use TolerationOperator::*;
    type Row = (
        &'static str,
        TaintEffect,
        &'static str,
        TolerationOperator,
        &'static str,
        Option<TaintEffect>,
        bool,
    );
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("Exists: any value of the key", NoSchedule, "gpu", Exists, "", Some(NoSchedule), true),
        ("Exists: another key", NoSchedule, "spot", Exists, "", None, false),
        ("Exists: the effect given must match", NoExecute, "gpu", Exists, "", Some(NoSchedule), false),
        ("Exists: no effect matches every effect", NoExecute, "gpu", Exists, "", None, true),
        ("Exists, empty key: every taint", NoExecute, "", Exists, "", None, true),
        ("Exists, empty key: only the effect given", NoExecute, "", Exists, "", Some(NoSchedule), false),
        ("Equal: the same value", NoSchedule, "gpu", Equal, "a100", None, true),
        ("Equal: another value", NoSchedule, "gpu", Equal, "t4", None, false),
    ];
    for (case, taint_effect, key, operator, value, effect, tolerated) in rows {
        let mut pod = web(100, MIB);
        pod.spec.template.spec.tolerations.push(Toleration {
            key: (*key).into(),
            operator: *operator,
            value: (*value).into(),
            effect: *effect,
            toleration_seconds: None,
        });
        check(
            case,
            vec![tainted(
                node("n1", 4000, 8 * GIB),
                "gpu",
                "a100",
                *taint_effect,
            )],
            pod,
            if *tolerated {
                Ok("n1")
            } else {
                Err("0/1 nodes are available: 1 node(s) had untolerated taint {gpu: a100}.")
            },
        );
    }
}

#[test]
fn unreachable_and_unknown_capacity() {
    let mut no_capacity = node("n2", 0, 0);
    no_capacity.spec.capacity = Capacity::default();
    let state = desired(vec![node("n1", 4000, 8 * GIB), no_capacity], vec![]);
    let mut cluster = empty_cluster(&state);
    set_unreachable(&mut cluster, "n1", 5);
    // Issue 12, item 6: a node whose capacity nobody states (offline, none
    // declared) takes replicas without a CPU and memory check, where it was
    // "had no known capacity" for every replica; its pod count still holds.
    assert_eq!(
        place(&state, &cluster, &[], &web(100_000, 1024 * GIB), 1),
        vec![Ok("n2".to_string())]
    );
    let s = Scheduler::new(&state, &cluster);
    assert_eq!(s.unknown_capacity_nodes(), ["n2"]);
    assert_eq!(
        place(&state, &cluster, &[], &web(100, MIB), 111).pop(),
        Some(Err(
            "0/2 nodes are available: 1 Too many pods, 1 node(s) were unreachable.".to_string()
        ))
    );
}

/// Issue 12, item 10: the replicas of one workload spread over equal nodes
/// (Kubernetes' default topology spread), where the resource scores of
/// large nodes round to the same value and the tie hash alone chose, often
/// the same node twice. With either scoring strategy, and offline on nodes
/// of unknown capacity.
#[test]
fn replicas_spread_over_equal_nodes_by_default() {
    let big = |name: &str| node(name, 64_000, 256 * GIB);
    let bare = |name: &str| {
        let mut n = node(name, 0, 0);
        n.spec.capacity = Capacity::default();
        n
    };
    for (case, nodes, strategy) in [
        (
            "large nodes",
            vec![big("n1"), big("n2")],
            ScoringStrategy::LeastAllocated,
        ),
        (
            "packing",
            vec![big("n1"), big("n2")],
            ScoringStrategy::MostAllocated,
        ),
        (
            "unknown capacity",
            vec![bare("n1"), bare("n2")],
            ScoringStrategy::LeastAllocated,
        ),
        (
            "three nodes",
            vec![big("a"), big("b"), big("c")],
            ScoringStrategy::LeastAllocated,
        ),
    ] {
        let nodes_count = nodes.len();
        let mut state = desired(nodes, vec![]);
        state.cluster.scoring_strategy = strategy;
        let cluster = empty_cluster(&state);
        for name in ["web", "api", "worker", "db", "cache", "queue", "x", "y"] {
            let d = deployment(name, 1, 10, MIB);
            let replicas = 2 * nodes_count as u32 + 1;
            let placed = place(&state, &cluster, &[], &d, replicas);
            let mut per_node = std::collections::BTreeMap::new();
            for node in &placed {
                *per_node.entry(node.clone().expect("placed")).or_insert(0) += 1;
            }
            let counts: Vec<i32> = per_node.values().copied().collect();
            assert_eq!(counts.len(), nodes_count, "{case}, {name}: {placed:?}");
            let skew = counts.iter().max().unwrap() - counts.iter().min().unwrap();
            assert!(skew <= 1, "{case}, {name}: {placed:?}");
        }
    }
}

#[test]
fn messages_sort_like_kube_scheduler() {
    // kube-scheduler sorts the "count reason" strings: "1 node(s)..." comes
    // before "2 Insufficient...".
    let nodes = vec![
        labelled(node("n1", 4000, MIB), &[("disk", "ssd")]),
        labelled(node("n2", 4000, MIB), &[("disk", "ssd")]),
        labelled(node("n3", 4000, 8 * GIB), &[("disk", "hdd")]),
    ];
    let mut pod = web(100, GIB);
    pod.spec
        .template
        .spec
        .node_selector
        .insert("disk".into(), "ssd".into());
    check(
        "mixed reasons",
        nodes,
        pod,
        Err("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."),
    );
}

fn anti_affine(name: &str) -> Workload {
    let mut d = deployment(name, 1, 100, MIB);
    d.spec
        .template
        .spec
        .required_pod_anti_affinity
        .push(PodAffinityTerm {
            label_selector: LabelSelector {
                match_labels: [("app".to_string(), name.to_string())].into(),
                match_expressions: vec![],
            },
            topology_key: HOSTNAME_LABEL.into(),
        });
    d
}

#[test]
fn pod_anti_affinity_one_per_node() {
    let state = desired(
        vec![node("n1", 4000, 8 * GIB), node("n2", 4000, 8 * GIB)],
        vec![],
    );
    let cluster = empty_cluster(&state);
    let d = anti_affine("db");
    let got = place(&state, &cluster, &[(&d, "n1")], &d, 2);
    assert_eq!(
        got,
        vec![
            Ok("n2".to_string()),
            Err(
                "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
                    .to_string()
            )
        ]
    );
}

fn spread(name: &str, key: &str, max_skew: u32, when: WhenUnsatisfiable) -> Workload {
    let mut d = deployment(name, 1, 100, MIB);
    d.spec
        .template
        .spec
        .topology_spread_constraints
        .push(TopologySpreadConstraint {
            max_skew,
            topology_key: key.into(),
            when_unsatisfiable: when,
            label_selector: LabelSelector {
                match_labels: [("app".to_string(), name.to_string())].into(),
                match_expressions: vec![],
            },
        });
    d
}

fn zoned() -> Vec<Node> {
    vec![
        labelled(node("a1", 4000, 8 * GIB), &[("zone", "a")]),
        labelled(node("a2", 4000, 8 * GIB), &[("zone", "a")]),
        labelled(node("b1", 4000, 8 * GIB), &[("zone", "b")]),
    ]
}

#[test]
fn topology_spread_do_not_schedule() {
    let state = desired(zoned(), vec![]);
    let cluster = empty_cluster(&state);
    let d = spread("web", "zone", 1, WhenUnsatisfiable::DoNotSchedule);
    // Two in zone a already: the next must go to zone b, whatever the scores.
    let got = place(&state, &cluster, &[(&d, "a1"), (&d, "a2")], &d, 1);
    assert_eq!(got, vec![Ok("b1".to_string())]);

    // Zone b cannot take it: then skew forbids zone a too.
    let mut nodes = zoned();
    nodes[2].spec.unschedulable = true;
    let state = desired(nodes, vec![]);
    let cluster = empty_cluster(&state);
    let got = place(&state, &cluster, &[(&d, "a1"), (&d, "a2")], &d, 1);
    assert_eq!(
        got,
        vec![Err("0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match pod topology spread constraints.".to_string())]
    );
}

#[test]
fn topology_spread_missing_label() {
    let mut nodes = zoned();
    nodes.push(node("c1", 4000, 8 * GIB));
    let state = desired(nodes, vec![]);
    let cluster = empty_cluster(&state);
    let d = spread("web", "zone", 1, WhenUnsatisfiable::DoNotSchedule);
    let got = place(&state, &cluster, &[], &d, 6);
    let per_zone = |zone: &str| {
        got.iter()
            .filter(|r| r.as_deref().is_ok_and(|n| n.starts_with(zone)))
            .count()
    };
    assert_eq!(
        (per_zone("a"), per_zone("b"), per_zone("c")),
        (3, 3, 0),
        "{got:?}"
    );
}

#[test]
fn topology_spread_schedule_anyway_prefers_the_emptier_zone() {
    let state = desired(zoned(), vec![]);
    let cluster = empty_cluster(&state);
    let d = spread("web", "zone", 1, WhenUnsatisfiable::ScheduleAnyway);
    let got = place(&state, &cluster, &[(&d, "a1")], &d, 1);
    assert_eq!(got, vec![Ok("b1".to_string())]);
}

#[test]
fn host_ports_conflict() {
    let mut d = deployment("web", 1, 100, MIB);
    d.spec.template.spec.containers[0]
        .ports
        .push(ContainerPort {
            name: None,
            container_port: 80,
            host_port: Some(8080),
            host_ip: None,
            protocol: Protocol::TCP,
        });
    let state = desired(
        vec![node("n1", 4000, 8 * GIB), node("n2", 4000, 8 * GIB)],
        vec![],
    );
    let cluster = empty_cluster(&state);
    let got = place(&state, &cluster, &[], &d, 3);
    assert!(
        got[0].is_ok() && got[1].is_ok() && got[0] != got[1],
        "{got:?}"
    );
    assert_eq!(
        got[2],
        Err("0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.".to_string())
    );
}

#[test]
fn scoring_strategies() {
    // n1 is half full, n2 empty.
    let nodes = vec![node("n1", 4000, 8 * GIB), node("n2", 4000, 8 * GIB)];
    let filler = deployment("filler", 1, 2000, 4 * GIB);
    let state = desired(nodes.clone(), vec![]);
    let cluster = empty_cluster(&state);
    let got = place(&state, &cluster, &[(&filler, "n1")], &web(100, MIB), 1);
    assert_eq!(got, vec![Ok("n2".to_string())], "LeastAllocated spreads");

    let mut packing = desired(nodes, vec![]);
    packing.cluster.scoring_strategy = ScoringStrategy::MostAllocated;
    let got = place(&packing, &cluster, &[(&filler, "n1")], &web(100, MIB), 1);
    assert_eq!(got, vec![Ok("n1".to_string())], "MostAllocated packs");
}

#[test]
fn balanced_allocation_breaks_equal_fit() {
    // Equal LeastAllocated score (average of cpu and memory), but on n1 the
    // pod would leave CPU and memory unbalanced.
    let nodes = vec![node("n1", 4000, 4 * GIB), node("n2", 4000, 4 * GIB)];
    let cpu_heavy = deployment("cpu", 1, 2000, 0);
    let mixed = deployment("mixed", 1, 1000, GIB);
    let state = desired(nodes, vec![]);
    let cluster = empty_cluster(&state);
    let got = place(
        &state,
        &cluster,
        &[(&cpu_heavy, "n1"), (&mixed, "n2")],
        &deployment("mem", 1, 0, 0),
        1,
    );
    assert_eq!(got, vec![Ok("n2".to_string())]);
}

#[test]
fn prefer_no_schedule_taint_is_a_score() {
    let nodes = vec![
        tainted(
            node("n1", 4000, 8 * GIB),
            "spot",
            "true",
            TaintEffect::PreferNoSchedule,
        ),
        node("n2", 4000, 8 * GIB),
    ];
    let state = desired(nodes, vec![]);
    let cluster = empty_cluster(&state);
    // Even with n2 busier, the untainted node wins (taint weight 3).
    let filler = deployment("filler", 1, 1000, 2 * GIB);
    let got = place(&state, &cluster, &[(&filler, "n2")], &web(100, MIB), 1);
    assert_eq!(got, vec![Ok("n2".to_string())]);
}

#[test]
fn ties_are_broken_by_a_stable_hash() {
    let nodes: Vec<Node> = (0..20)
        .map(|i| node(&format!("n{i:02}"), 4000, 8 * GIB))
        .collect();
    let state = desired(nodes, vec![]);
    let cluster = empty_cluster(&state);
    let first = place(&state, &cluster, &[], &web(100, MIB), 5);
    let again = place(&state, &cluster, &[], &web(100, MIB), 5);
    assert_eq!(first, again);
    let other = place(&state, &cluster, &[], &deployment("api", 1, 100, MIB), 1);
    // Another pod identity may pick another of the equal nodes; both are
    // stable. Pinned so a change of hash is noticed.
    insta::assert_debug_snapshot!((first, other));
}
