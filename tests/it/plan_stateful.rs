//! The planner with StatefulSets: ordinals created in order (or all at
//! once), removed in reverse, updated from the highest ordinal down to the
//! partition, one pod per ordinal even when its node is away, and every
//! ordinal's claim pinned to its node.

use std::collections::BTreeMap;

use crate::plan_support::*;
use flotilla::cluster::{ContainerState, ObservedCluster};
use flotilla::manifest::model::*;
use flotilla::manifest::quantity::Bytes;
use flotilla::plan::{plan, ClaimState, Plan};

fn three_nodes() -> Vec<Node> {
    vec![
        node("n1", 4000, 8 * GIB),
        node("n2", 4000, 8 * GIB),
        node("n3", 4000, 8 * GIB),
    ]
}

/// A StatefulSet `name` of `replicas` whose pods mount claim template
/// `data` at /data.
fn stateful_set(name: &str, replicas: u32, management: PodManagement) -> Workload {
    let mut w = deployment(name, replicas, 100, 256 * MIB);
    w.kind = Kind::StatefulSet;
    w.spec.pods = PodSet::Ordinals { replicas, start: 0 };
    w.spec.strategy = Strategy::RollingUpdate {
        max_surge: IntOrPercent::Int(0),
        max_unavailable: IntOrPercent::Int(1),
    };
    w.spec.stateful = Some(StatefulSpec {
        service_name: name.into(),
        pod_management: management,
        partition: 0,
        claim_templates: vec![ClaimTemplate {
            name: "data".into(),
            storage: Bytes(GIB),
            access_modes: vec![AccessMode::ReadWriteOnce],
            labels: Default::default(),
            annotations: Default::default(),
        }],
        when_deleted: ClaimRetention::Retain,
        when_scaled: ClaimRetention::Retain,
    });
    w.spec.template.spec.containers[0]
        .volume_mounts
        .push(VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            sub_path: None,
            read_only: false,
        });
    w
}

/// The desired state with the claims `load` declares for each ordinal.
fn state_of(workloads: Vec<Workload>) -> DesiredState {
    let mut state = desired(three_nodes(), workloads);
    let mut claims = Vec::new();
    for w in &state.workloads {
        let (Some(set), PodSet::Ordinals { replicas, start }) = (&w.spec.stateful, w.spec.pods)
        else {
            continue;
        };
        for t in &set.claim_templates {
            for o in start..start + replicas {
                claims.push(PersistentVolumeClaim {
                    meta: ObjectMeta {
                        name: w.ordinal_claim_name(&t.name, o),
                        namespace: w.meta.namespace.clone(),
                        ..ObjectMeta::default()
                    },
                    storage: t.storage,
                    access_modes: t.access_modes.clone(),
                    delete_volume: false,
                });
            }
        }
    }
    claims.sort_by_key(PersistentVolumeClaim::key);
    state.claims = claims;
    state
}

fn plan_now(state: &DesiredState, cluster: &ObservedCluster) -> Plan {
    plan(state, cluster, COMMIT, now())
}

fn created(p: &Plan) -> Vec<u32> {
    p.actions
        .iter()
        .filter(|a| a.verb() == "create")
        .map(|a| a.slot)
        .collect()
}

fn removed(p: &Plan) -> Vec<u32> {
    p.actions
        .iter()
        .filter(|a| a.verb() == "remove")
        .map(|a| a.slot)
        .collect()
}

/// Where each ordinal runs and its revision.
fn pods(cluster: &ObservedCluster) -> BTreeMap<u32, (String, String)> {
    let mut pods = BTreeMap::new();
    for node in cluster.nodes.values() {
        for c in &node.containers {
            let previous = pods.insert(
                c.labels.slot,
                (node.name.clone(), c.labels.template_hash.clone()),
            );
            assert!(previous.is_none(), "two pods of ordinal {}", c.labels.slot);
        }
    }
    pods
}

#[test]
fn ordered_ready_creates_one_ordinal_at_a_time_in_order() {
    let state = state_of(vec![stateful_set("web", 3, PodManagement::OrderedReady)]);
    let mut cluster = empty_cluster(&state);
    let mut order = Vec::new();
    for _ in 0..5 {
        let p = plan_now(&state, &cluster);
        order.extend(created(&p));
        assert!(created(&p).len() <= 1, "one at a time:\n{p}");
        apply_to_observed(&mut cluster, &p, now());
    }
    assert_eq!(order, [0, 1, 2]);
    // Each ordinal's claim is bound where its pod went.
    let p = plan_now(&state, &cluster);
    assert!(p.is_empty(), "{p}");
    for (ordinal, (node, _)) in pods(&cluster) {
        let claim = p
            .claims
            .iter()
            .find(|c| c.name == format!("data-web-{ordinal}"))
            .expect("claim");
        assert_eq!(
            (claim.state, claim.nodes.as_slice()),
            (ClaimState::Bound, [node].as_slice())
        );
    }
}

#[test]
fn a_pod_not_ready_stops_the_next_ordinal() {
    let state = state_of(vec![stateful_set("web", 3, PodManagement::OrderedReady)]);
    let mut cluster = empty_cluster(&state);
    let p = plan_now(&state, &cluster);
    apply_to_observed(&mut cluster, &p, now());
    for node in cluster.nodes.values_mut() {
        for c in &mut node.containers {
            c.state = ContainerState::Restarting;
        }
    }
    let p = plan_now(&state, &cluster);
    assert!(created(&p).is_empty(), "{p}");
    // Review of issue 15: the plan said "No changes" while it waited.
    assert!(!p.is_empty());
    assert!(
        p.to_string()
            .contains("web[1] waits: OrderedReady goes one ordinal at a time, each once the ones before are ready: web-0 is pending"),
        "{p}"
    );
}

#[test]
fn parallel_creates_every_ordinal_at_once() {
    let state = state_of(vec![stateful_set("web", 3, PodManagement::Parallel)]);
    let p = plan_now(&state, &empty_cluster(&state));
    assert_eq!(created(&p), [0, 1, 2]);
}

#[test]
fn scale_down_removes_the_highest_ordinal_first_one_at_a_time_and_keeps_claims() {
    let state = state_of(vec![stateful_set("web", 3, PodManagement::OrderedReady)]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 10);
    let before = pods(&cluster);
    let one = state_of(vec![stateful_set("web", 1, PodManagement::OrderedReady)]);
    let mut order = Vec::new();
    for _ in 0..4 {
        let p = plan_now(&one, &cluster);
        assert!(removed(&p).len() <= 1);
        order.extend(removed(&p));
        assert!(p.volume_removals.is_empty(), "whenScaled Retain keeps data");
        apply_to_observed(&mut cluster, &p, now());
    }
    assert_eq!(order, [2, 1]);
    let p = plan_now(&one, &cluster);
    let kept: Vec<&str> = p
        .claims
        .iter()
        .filter(|c| c.state == ClaimState::Kept)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(kept, ["data-web-1", "data-web-2"]);
    // Scaled back up, each ordinal returns to its claim's node.
    converge(&state, &mut cluster, 10);
    assert_eq!(pods(&cluster), before);
}

#[test]
fn when_scaled_delete_removes_the_claims_of_ordinals_scaled_away_once_their_pods_are_gone() {
    let mut set = stateful_set("web", 2, PodManagement::Parallel);
    set.spec.stateful.as_mut().unwrap().when_scaled = ClaimRetention::Delete;
    let state = state_of(vec![set.clone()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 10);
    set.spec.pods = PodSet::Ordinals {
        replicas: 1,
        start: 0,
    };
    let one = state_of(vec![set]);
    let p = plan_now(&one, &cluster);
    assert_eq!(removed(&p), [1]);
    assert!(p.volume_removals.is_empty(), "its pod still runs");
    apply_to_observed(&mut cluster, &p, now());
    let p = plan_now(&one, &cluster);
    assert_eq!(p.volume_removals.len(), 1, "{p}");
    assert_eq!(
        p.volume_removals[0].claim.as_deref(),
        Some("default/data-web-1")
    );
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let mut set = stateful_set("web", 4, PodManagement::OrderedReady);
    let state = state_of(vec![set.clone()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 12);
    set = with_image(set, "web:2");
    set.spec.stateful.as_mut().unwrap().partition = 2;
    let updated = state_of(vec![set]);
    let new_hash = flotilla::manifest::template_hash(&updated.workloads[0].spec.template);
    let mut order = Vec::new();
    for _ in 0..8 {
        let p = plan_now(&updated, &cluster);
        order.extend(removed(&p));
        apply_to_observed(&mut cluster, &p, now());
    }
    assert_eq!(order, [3, 2], "highest first, never below the partition");
    let revisions: Vec<bool> = pods(&cluster)
        .values()
        .map(|(_, h)| *h == new_hash)
        .collect();
    assert_eq!(revisions, [false, false, true, true]);
}

#[test]
fn a_reverted_revision_does_not_stay_stuck_on_its_broken_pod() {
    let good = stateful_set("web", 3, PodManagement::OrderedReady);
    let state = state_of(vec![good.clone()]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 12);
    // A bad revision: ordinal 2 is replaced, and its new pod never runs.
    let bad = state_of(vec![with_image(good.clone(), "web:broken")]);
    let bad_hash = flotilla::manifest::template_hash(&bad.workloads[0].spec.template);
    for _ in 0..2 {
        let p = plan_now(&bad, &cluster);
        apply_to_observed(&mut cluster, &p, now());
    }
    for node in cluster.nodes.values_mut() {
        for c in node
            .containers
            .iter_mut()
            .filter(|c| c.labels.template_hash == bad_hash)
        {
            c.state = ContainerState::Restarting;
        }
    }
    assert!(pods(&cluster).values().any(|(_, h)| *h == bad_hash));
    // Reverted: the broken pod goes although the set is not all ready.
    let plans = converge(&state, &mut cluster, 10);
    assert!(removed(&plans[0]).contains(&2), "{}", plans[0]);
    assert!(pods(&cluster).values().all(|(_, h)| *h != bad_hash));
    assert_eq!(pods(&cluster).len(), 3);
}

#[test]
fn a_pod_on_an_unreachable_node_holds_its_ordinal_and_says_why() {
    let state = state_of(vec![stateful_set("web", 3, PodManagement::Parallel)]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 10);
    let (node, _) = pods(&cluster)[&1].clone();
    // Long past the grace period: a Deployment would replace it elsewhere.
    set_unreachable(&mut cluster, &node, 3600);
    let p = plan_now(&state, &cluster);
    assert!(created(&p).is_empty(), "{p}");
    assert_eq!(p.waiting.len(), 1);
    assert_eq!(
        (p.waiting[0].slot, p.waiting[0].node.as_deref()),
        (1, Some(node.as_str()))
    );
    assert!(
        p.to_string().contains("web[1] waits: its pod is on node"),
        "{p}"
    );
}

#[derive(Clone, Debug)]
enum Step {
    Scale(u32),
    Image(u8),
    Partition(u32),
    Away(usize),
    Back(usize),
    Fail(u32),
    Plan,
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        (0u32..5).prop_map(Step::Scale),
        (0u8..3).prop_map(Step::Image),
        (0u32..4).prop_map(Step::Partition),
        (0usize..3).prop_map(Step::Away),
        (0usize..3).prop_map(Step::Back),
        (0u32..4).prop_map(Step::Fail),
        Just(Step::Plan),
        Just(Step::Plan),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

    /// Whatever happens, no plan creates a pod for an ordinal some pod
    /// still holds, and no plan deletes a claim's volume that the
    /// retention policy (Retain) keeps.
    #[test]
    fn never_two_pods_of_one_ordinal_nor_a_retained_volume_deleted(
        parallel in proptest::bool::ANY,
        claims in proptest::bool::ANY,
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let management = if parallel { PodManagement::Parallel } else { PodManagement::OrderedReady };
        let mut set = stateful_set("web", 3, management);
        if !claims {
            // Without claims, nothing but the ordinal rule keeps a pod off
            // another node.
            set.spec.stateful.as_mut().unwrap().claim_templates.clear();
            set.spec.template.spec.containers[0].volume_mounts.clear();
        }
        let mut state = state_of(vec![set.clone()]);
        let mut cluster = empty_cluster(&state);
        let names = ["n1", "n2", "n3"];
        for step in steps {
            match step {
                Step::Scale(n) => set.spec.pods = PodSet::Ordinals { replicas: n, start: 0 },
                Step::Image(i) => set = with_image(set, &format!("web:{i}")),
                Step::Partition(p) => set.spec.stateful.as_mut().unwrap().partition = p,
                Step::Away(i) => set_unreachable(&mut cluster, names[i], 3600),
                Step::Back(i) => set_reachable(&mut cluster, names[i]),
                Step::Fail(o) => {
                    for node in cluster.nodes.values_mut().filter(|n| n.reachability.is_reachable()) {
                        for c in node.containers.iter_mut().filter(|c| c.labels.slot == o) {
                            c.state = ContainerState::Exited { code: 1 };
                        }
                    }
                }
                Step::Plan => {}
            }
            state = state_of(vec![set.clone()]);
            let p = plan_now(&state, &cluster);
            let held: Vec<u32> = cluster
                .nodes
                .values()
                .flat_map(|n| n.containers.iter().map(|c| c.labels.slot))
                .collect();
            for slot in created(&p) {
                proptest::prop_assert!(
                    !held.contains(&slot),
                    "ordinal {slot} created while a pod holds it:\n{p}"
                );
            }
            proptest::prop_assert!(
                p.volume_removals.iter().all(|r| r.claim.is_none()),
                "a retained claim deleted:\n{p}"
            );
            apply_to_observed(&mut cluster, &p, now());
            let _ = pods(&cluster);
        }
    }
}
