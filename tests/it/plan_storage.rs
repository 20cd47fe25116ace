//! The planner with PersistentVolumeClaims and emptyDir volumes: claims
//! bound where their first pod goes and pinned there after, storage
//! capacity, never-seen nodes, volumes kept unless Git says to delete them.

use crate::plan_support::*;
use flotilla::cluster::{ObservedCluster, ObservedVolume, VolumeOwner};
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

fn claim(name: &str, storage: u64) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        meta: ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        },
        storage: Bytes(storage),
        access_modes: vec![AccessMode::ReadWriteOnce],
        delete_volume: false,
    }
}

/// `d` with a `persistentVolumeClaim` volume of `claim` mounted at /data.
fn using(mut d: Workload, claim: &str) -> Workload {
    let spec = &mut d.spec.template.spec;
    let name = format!("v-{claim}");
    spec.volumes.push(Volume {
        name: name.clone(),
        source: VolumeSource::Claim(ClaimVolume {
            claim_name: claim.into(),
            read_only: false,
        }),
    });
    spec.containers[0].volume_mounts.push(VolumeMount {
        name,
        mount_path: "/data".into(),
        sub_path: None,
        read_only: false,
    });
    d
}

fn with_claims(mut state: DesiredState, claims: Vec<PersistentVolumeClaim>) -> DesiredState {
    state.claims = claims;
    state.claims.sort_by_key(PersistentVolumeClaim::key);
    state
}

fn plan_now(state: &DesiredState, cluster: &ObservedCluster) -> Plan {
    plan(state, cluster, COMMIT, now())
}

fn claim_volume_on(cluster: &mut ObservedCluster, node: &str, claim: &str, storage: u64) {
    cluster
        .nodes
        .get_mut(node)
        .expect("node observed")
        .volumes
        .push(ObservedVolume {
            name: flotilla::cluster::claim_volume_name("default", claim),
            owner: VolumeOwner::Claim {
                namespace: "default".into(),
                claim: claim.into(),
                storage,
                ordinal: None,
            },
            created_at: None,
        });
}

fn nodes_of(p: &Plan) -> Vec<&str> {
    p.actions.iter().map(|a| a.node.as_str()).collect()
}

#[test]
fn a_claim_is_bound_where_its_first_pod_goes_and_every_later_pod_follows() {
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 3, 100, GIB), "data")],
        ),
        vec![claim("data", GIB)],
    );
    let mut cluster = empty_cluster(&state);
    let p = plan_now(&state, &cluster);
    let nodes = nodes_of(&p);
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes.iter().all(|n| *n == nodes[0]),
        "a ReadWriteOnce claim keeps its pods on one node: {nodes:?}"
    );
    assert_eq!(p.claims[0].state, ClaimState::Binding);
    assert_eq!(p.claims[0].nodes, [nodes[0]]);
    let bound = nodes[0].to_string();
    converge(&state, &mut cluster, 5);
    let p = plan_now(&state, &cluster);
    assert!(p.is_empty(), "{p}");
    assert_eq!(p.claims[0].state, ClaimState::Bound);
    assert_eq!(p.claims[0].nodes, [bound]);
}

#[test]
fn a_bound_claim_pins_its_pod_even_against_the_scores() {
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 1, 100, GIB), "data")],
        ),
        vec![claim("data", GIB)],
    );
    for node in ["n1", "n2", "n3"] {
        let mut cluster = empty_cluster(&state);
        claim_volume_on(&mut cluster, node, "data", GIB);
        assert_eq!(nodes_of(&plan_now(&state, &cluster)), [node]);
    }
}

#[test]
fn a_pod_whose_claims_node_is_unreachable_is_not_placed_elsewhere() {
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 1, 100, GIB), "data")],
        ),
        vec![claim("data", GIB)],
    );
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let bound = plan_now(&state, &cluster).claims[0].nodes[0].clone();
    // Past the grace period: a Deployment's pod would be placed elsewhere.
    set_unreachable(&mut cluster, &bound, 3600);
    let p = plan_now(&state, &cluster);
    assert!(p.actions.is_empty(), "{p}");
    assert_eq!(p.unschedulable.len(), 1);
    assert_eq!(
        p.unschedulable[0].reason,
        "0/3 nodes are available: 1 node(s) were unreachable, 2 node(s) had volume node affinity conflict."
    );
    assert_eq!(p.claims[0].state, ClaimState::Bound, "still bound there");
}

#[test]
fn claims_on_two_nodes_are_a_conflict_nothing_is_placed() {
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 1, 100, GIB), "data")],
        ),
        vec![claim("data", GIB)],
    );
    let mut cluster = empty_cluster(&state);
    claim_volume_on(&mut cluster, "n1", "data", GIB);
    claim_volume_on(&mut cluster, "n3", "data", GIB);
    let p = plan_now(&state, &cluster);
    assert!(p.actions.is_empty());
    assert!(p.unschedulable[0].reason.contains("n1, n3"), "{p}");
    assert_eq!(p.claims[0].state, ClaimState::Conflict);
}

#[test]
fn an_unbound_claim_waits_for_a_node_never_seen() {
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 1, 100, GIB), "data")],
        ),
        vec![claim("data", GIB)],
    );
    let mut cluster = empty_cluster(&state);
    // Long past its grace period: the claim may still be bound there.
    set_never_seen(&mut cluster, "n2", 3600);
    let p = plan_now(&state, &cluster);
    assert!(p.actions.is_empty(), "{p}");
    assert!(
        p.unschedulable[0]
            .reason
            .contains("may be bound on node(s) n2"),
        "{p}"
    );
}

#[test]
fn storage_capacity_counts_bound_and_kept_claims() {
    let mut nodes = three_nodes();
    for n in &mut nodes {
        n.spec.capacity.storage = Some(Bytes(10 * GIB));
    }
    let state = with_claims(
        desired(nodes, vec![using(deployment("db", 1, 100, GIB), "data")]),
        vec![claim("data", 6 * GIB)],
    );
    let mut cluster = empty_cluster(&state);
    // n1 and n2 hold 5 GiB of other claims (one no longer declared).
    claim_volume_on(&mut cluster, "n1", "old", 5 * GIB);
    claim_volume_on(&mut cluster, "n2", "other", 5 * GIB);
    assert_eq!(nodes_of(&plan_now(&state, &cluster)), ["n3"]);
    claim_volume_on(&mut cluster, "n3", "more", 5 * GIB);
    let p = plan_now(&state, &cluster);
    assert_eq!(
        p.unschedulable[0].reason,
        "0/3 nodes are available: 3 node(s) did not have enough free storage."
    );
}

#[test]
fn a_read_write_once_pod_claim_admits_no_second_pod() {
    let mut c = claim("data", GIB);
    c.access_modes = vec![AccessMode::ReadWriteOncePod];
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 1, 100, GIB), "data")],
        ),
        vec![c],
    );
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    // A new revision: its pod waits for the old one to be gone.
    let mut changed = state.clone();
    changed.workloads[0] = with_image(changed.workloads[0].clone(), "db:2");
    let p = plan_now(&changed, &cluster);
    assert!(
        p.unschedulable
            .iter()
            .any(|u| u.reason.contains("ReadWriteOncePod")),
        "{p}"
    );
    assert!(p.actions.iter().all(|a| a.verb() != "create"), "{p}");
}

#[test]
fn a_claim_removed_from_git_keeps_its_volume_and_the_plan_says_so() {
    let state = with_claims(
        desired(
            three_nodes(),
            vec![using(deployment("db", 1, 100, GIB), "data")],
        ),
        vec![claim("data", GIB)],
    );
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let gone = desired(three_nodes(), Vec::new());
    let plans = converge(&gone, &mut cluster, 5);
    assert!(plans.iter().all(|p| p.volume_removals.is_empty()));
    let p = plan_now(&gone, &cluster);
    assert_eq!(p.claims[0].state, ClaimState::Kept);
    insta::assert_snapshot!(p.to_string());
}

#[test]
fn the_delete_annotation_deletes_the_volume_on_reachable_nodes_only() {
    let mut c = claim("data", GIB);
    c.delete_volume = true;
    let state = with_claims(desired(three_nodes(), Vec::new()), vec![c]);
    let mut cluster = empty_cluster(&state);
    claim_volume_on(&mut cluster, "n2", "data", GIB);
    set_unreachable(&mut cluster, "n2", 10);
    let p = plan_now(&state, &cluster);
    assert!(p.volume_removals.is_empty(), "never behind a partition");
    assert_eq!(p.claims[0].state, ClaimState::DeleteWaits);
    set_reachable(&mut cluster, "n2");
    let p = plan_now(&state, &cluster);
    assert_eq!(p.volume_removals.len(), 1);
    assert_eq!(p.volume_removals[0].node, "n2");
    assert_eq!(p.claims[0].state, ClaimState::Deleting);
    insta::assert_snapshot!(p.to_string());
    converge(&state, &mut cluster, 3);
    let p = plan_now(&state, &cluster);
    assert!(p.is_empty() && p.claims.is_empty(), "{p}");
}

#[test]
fn an_empty_dir_goes_with_its_pod() {
    let mut d = deployment("web", 2, 100, GIB);
    d.spec.template.spec.volumes.push(Volume {
        name: "scratch".into(),
        source: VolumeSource::EmptyDir(EmptyDir {
            medium: StorageMedium::Disk,
            size_limit: None,
        }),
    });
    let state = desired(three_nodes(), vec![d]);
    let mut cluster = empty_cluster(&state);
    converge(&state, &mut cluster, 5);
    let volumes = |c: &ObservedCluster| c.nodes.values().map(|n| n.volumes.len()).sum::<usize>();
    assert_eq!(volumes(&cluster), 2, "one per pod");
    let mut smaller = state.clone();
    smaller.workloads[0].spec.pods = PodSet::Replicas(1);
    let plans = converge(&smaller, &mut cluster, 5);
    assert_eq!(volumes(&cluster), 1, "the removed pod's is removed next");
    assert!(plans.iter().any(|p| p.volume_removals.len() == 1));
}

/// Kubernetes' documentation's StatefulSet, loaded from YAML (its Service
/// without `clusterIP: None`, which flotilla refuses) with one Node: `load`
/// declares `www-web-0` to `www-web-2`, and the first plan creates ordinal
/// 0 alone (OrderedReady: the next waits for it to be ready), binding its
/// claim where it goes.
#[test]
fn a_loaded_stateful_set_plans_ordinal_zero_first_with_its_claim() {
    use flotilla::manifest::{load, SourceFile};
    let text = include_str!("../fixtures/kubernetes-examples/statefulset.yaml")
        .replace("  clusterIP: None\n", "");
    let node = "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {name: n1}\nspec: {address: 10.0.0.1, capacity: {cpu: 4, memory: 8Gi}}\n";
    let loaded = load(&[
        SourceFile::new("n1.yaml", node),
        SourceFile::new("statefulset.yaml", text),
    ]);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let state = loaded.state;
    let claims: Vec<&str> = state.claims.iter().map(|c| c.meta.name.as_str()).collect();
    assert_eq!(claims, ["www-web-0", "www-web-1", "www-web-2"]);

    let p = plan(
        &state,
        &flotilla::plan::offline_cluster(&state),
        COMMIT,
        now(),
    );
    let created: Vec<(String, u32, &str)> = p
        .actions
        .iter()
        .map(|a| (a.object.to_string(), a.slot, a.node.as_str()))
        .collect();
    assert_eq!(created, [("StatefulSet default/web".to_string(), 0, "n1")]);
    let claims: Vec<(&str, &ClaimState)> = p
        .claims
        .iter()
        .map(|c| (c.name.as_str(), &c.state))
        .collect();
    assert_eq!(
        claims,
        [
            ("www-web-0", &ClaimState::Binding),
            ("www-web-1", &ClaimState::Pending),
            ("www-web-2", &ClaimState::Pending),
        ]
    );
    assert_eq!(p.claims[0].nodes, ["n1"]);
}
