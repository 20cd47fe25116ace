//! Property tests of the planner: placements respect allocatable, the same
//! input gives the same plan, applying a plan and planning again converges
//! to an empty plan (rollouts included), and spread constraints hold.

use std::collections::BTreeMap;

use crate::plan_support::*;
use flotilla::cluster::ObservedCluster;
use flotilla::manifest::model::*;
use flotilla::plan::plan;
use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest, ProptestConfig};
use proptest::strategy::Strategy as _;

#[derive(Clone, Debug)]
struct NodeCase {
    cpu: u64,
    memory_gib: u64,
    zone: Option<u8>,
    cordoned: bool,
}

#[derive(Clone, Debug)]
struct DeploymentCase {
    replicas: u32,
    cpu: u64,
    memory_mib: u64,
    spread: bool,
    anti_affinity: bool,
    surge: u32,
    unavailable: u32,
}

fn node_case() -> impl proptest::strategy::Strategy<Value = NodeCase> {
    (
        1u64..=8,
        1u64..=8,
        proptest::option::of(0u8..3),
        proptest::bool::weighted(0.15),
    )
        .prop_map(|(cpu, memory_gib, zone, cordoned)| NodeCase {
            cpu: cpu * 500,
            memory_gib,
            zone,
            cordoned,
        })
}

fn deployment_case() -> impl proptest::strategy::Strategy<Value = DeploymentCase> {
    (
        0u32..8,
        0u64..6,
        0u64..8,
        any::<bool>(),
        proptest::bool::weighted(0.2),
        0u32..3,
        0u32..3,
    )
        .prop_map(
            |(replicas, cpu, memory, spread, anti_affinity, surge, unavailable)| DeploymentCase {
                replicas,
                cpu: cpu * 250,
                memory_mib: memory * 256,
                spread,
                anti_affinity,
                surge,
                unavailable,
            },
        )
}

fn build(nodes: &[NodeCase], deployments: &[DeploymentCase]) -> DesiredState {
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut n = node(&format!("n{i}"), c.cpu, c.memory_gib * GIB);
            if let Some(zone) = c.zone {
                n = labelled(n, &[("zone", &format!("z{zone}"))]);
            }
            n.spec.unschedulable = c.cordoned;
            n
        })
        .collect();
    let deployments =
        deployments
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = format!("app{i}");
                let mut d = deployment(&name, c.replicas, c.cpu, c.memory_mib * MIB);
                let selector = LabelSelector {
                    match_labels: [("app".to_string(), name.clone())].into(),
                    match_expressions: vec![],
                };
                if c.spread {
                    d.spec.template.spec.topology_spread_constraints.push(
                        TopologySpreadConstraint {
                            max_skew: 1,
                            topology_key: "zone".into(),
                            when_unsatisfiable: WhenUnsatisfiable::DoNotSchedule,
                            label_selector: selector.clone(),
                        },
                    );
                }
                if c.anti_affinity {
                    d.spec
                        .template
                        .spec
                        .required_pod_anti_affinity
                        .push(PodAffinityTerm {
                            label_selector: selector,
                            topology_key: HOSTNAME_LABEL.into(),
                        });
                }
                d.spec.strategy = flotilla::manifest::model::Strategy::RollingUpdate {
                    max_surge: IntOrPercent::Int(c.surge),
                    max_unavailable: IntOrPercent::Int(c.unavailable),
                };
                d
            })
            .collect();
    desired(nodes, deployments)
}

/// Requests per node, from what runs there and the declared templates.
fn requested(state: &DesiredState, cluster: &ObservedCluster) -> BTreeMap<String, (u64, u64, u32)> {
    let mut out = BTreeMap::new();
    for n in cluster.nodes.values() {
        let entry = out.entry(n.name.clone()).or_insert((0, 0, 0));
        for c in &n.containers {
            let d = state
                .workload_named(Kind::Deployment, &c.labels.namespace, &c.labels.name)
                .expect("declared");
            let declared = d
                .spec
                .template
                .spec
                .containers
                .iter()
                .find(|x| x.name == c.labels.container)
                .expect("declared container");
            entry.0 += declared.resources.requests.cpu.map_or(0, |x| x.0);
            entry.1 += declared.resources.requests.memory.map_or(0, |x| x.0);
            entry.2 += 1; // one container per pod in these cases
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn placements_fit_and_converge(
        nodes in proptest::collection::vec(node_case(), 1..7),
        deployments in proptest::collection::vec(deployment_case(), 1..4),
    ) {
        let state = build(&nodes, &deployments);
        let mut cluster = empty_cluster(&state);
        converge(&state, &mut cluster, 10);
        let again = plan(&state, &cluster, COMMIT, now());
        prop_assert!(again.actions.is_empty(), "{}", again);
        for (name, (cpu, memory, pods)) in requested(&state, &cluster) {
            let n = state.node(&name).expect("declared");
            prop_assert!(cpu <= n.spec.capacity.cpu.expect("declared").0, "{name}: cpu {cpu}");
            prop_assert!(memory <= n.spec.capacity.memory.expect("declared").0, "{name}: memory {memory}");
            prop_assert!(pods <= 110);
            if n.spec.unschedulable {
                prop_assert_eq!(pods, 0, "nothing placed on cordoned {}", name);
            }
        }
        // Spread: per zone with a node, counts differ by at most maxSkew (1).
        let zones: std::collections::BTreeSet<String> =
            state.nodes.iter().filter_map(|n| n.meta.labels.get("zone").cloned()).collect();
        for (i, d) in deployments.iter().enumerate() {
            let name = format!("app{i}");
            if d.spread && !zones.is_empty() {
                let mut per_zone: BTreeMap<&String, u32> = zones.iter().map(|z| (z, 0)).collect();
                for n in cluster.nodes.values() {
                    let zone = state.node(&n.name).and_then(|x| x.meta.labels.get("zone"));
                    let count = n.containers.iter().filter(|c| c.labels.name == name).count() as u32;
                    if let Some(zone) = zone {
                        *per_zone.get_mut(zone).expect("zone listed") += count;
                    } else {
                        prop_assert_eq!(count, 0, "a spread pod on a node without the key");
                    }
                }
                let max = per_zone.values().max().copied().unwrap_or(0);
                let min = per_zone.values().min().copied().unwrap_or(0);
                prop_assert!(max - min <= 1, "{name}: {per_zone:?}");
            }
            if d.anti_affinity {
                for n in cluster.nodes.values() {
                    let count = n.containers.iter().filter(|c| c.labels.name == name).count();
                    prop_assert!(count <= 1, "{name}: {count} on {}", n.name);
                }
            }
        }
    }

    #[test]
    fn same_input_same_plan(
        nodes in proptest::collection::vec(node_case(), 1..7),
        deployments in proptest::collection::vec(deployment_case(), 1..4),
        rounds in 0usize..3,
    ) {
        let state = build(&nodes, &deployments);
        let mut cluster = empty_cluster(&state);
        for _ in 0..rounds {
            let p = plan(&state, &cluster, COMMIT, now());
            apply_to_observed(&mut cluster, &p, now());
        }
        let mut scaled = state.clone();
        for d in &mut scaled.workloads {
            d.spec.pods = PodSet::Replicas(d.replicas().unwrap_or(0) + 2);
        }
        let first = plan(&scaled, &cluster, COMMIT, now());
        // The order containers are listed in must not matter.
        let mut reordered = cluster.clone();
        for n in reordered.nodes.values_mut() {
            n.containers.reverse();
        }
        let second = plan(&scaled, &reordered, COMMIT, now());
        prop_assert_eq!(first, second);
    }

    #[test]
    fn rollouts_reach_a_fixpoint(
        nodes in proptest::collection::vec(node_case(), 1..6),
        deployments in proptest::collection::vec(deployment_case(), 1..3),
    ) {
        let state = build(&nodes, &deployments);
        let mut cluster = empty_cluster(&state);
        converge(&state, &mut cluster, 10);
        let mut next = state.clone();
        for d in &mut next.workloads {
            d.spec.template.spec.containers[0].image = format!("{}:2", d.meta.name);
        }
        let plans = converge(&next, &mut cluster, 40);
        // Every replica that runs is at the new revision, unless the rollout
        // is stuck on a replica that fits nowhere (as in Kubernetes, e.g.
        // anti-affinity on one node with maxUnavailable 0).
        let stuck = !plans.last().expect("planned").unschedulable.is_empty();
        for n in cluster.nodes.values().filter(|_| !stuck) {
            for c in &n.containers {
                prop_assert!(c.image.ends_with(":2"), "{} still at {}", c.name, c.image);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Issue 12, item 10: on equal nodes, a Deployment's replicas spread
    /// (at most one more on a node than on another), whatever their number,
    /// their requests, the nodes' size, or whether the nodes declare a
    /// capacity at all (`plan --offline` on Nodes without one). Before, ties
    /// went to a hash of (replica, node), often the same node twice.
    #[test]
    fn replicas_spread_over_equal_nodes(
        node_count in 2usize..7,
        replicas in 0u32..25,
        cpu in 0u64..4,
        memory_mib in 0u64..4,
        large in any::<bool>(),
        declared in any::<bool>(),
        name in "[a-z]{1,8}",
    ) {
        let nodes = (0..node_count)
            .map(|i| {
                let mut n = if large {
                    node(&format!("n{i}"), 64_000, 256 * GIB)
                } else {
                    node(&format!("n{i}"), 8_000, 32 * GIB)
                };
                if !declared {
                    n.spec.capacity = Capacity::default();
                }
                n
            })
            .collect();
        let state = desired(nodes, vec![deployment(&name, replicas, cpu * 10, memory_mib * MIB)]);
        let p = plan(&state, &flotilla::plan::offline_cluster(&state), "c", now());
        prop_assert!(p.unschedulable.is_empty(), "{p}");
        let mut per_node: BTreeMap<&str, u32> =
            state.nodes.iter().map(|n| (n.meta.name.as_str(), 0)).collect();
        for a in &p.actions {
            *per_node.get_mut(a.node.as_str()).expect("declared") += 1;
        }
        let max = per_node.values().max().copied().unwrap_or(0);
        let min = per_node.values().min().copied().unwrap_or(0);
        prop_assert!(max - min <= 1, "{per_node:?}");
    }
}
