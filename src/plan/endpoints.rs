//! Which pods serve each Service, as one table per node for that node's
//! proxy.
//!
//! An endpoint is a replica whose workload's pod labels include the
//! Service's selector (same namespace), that is ready (readiness probes and
//! `minReadySeconds`, as a rollout counts it), whose node answered the last
//! observation, and that is not leaving: a replica the leader is about to
//! stop is taken out of every table first, which is how no request is sent
//! to a stopping container. Pure: the driver (`leader::services`) pushes the
//! tables and waits for the acknowledgements.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::cluster::replica::{group_replicas, ObservedReplica, ReadinessGate, ReplicaState};
use crate::cluster::ObservedCluster;
use crate::manifest::model::{
    self, Balance, DesiredState, Kind, PodTemplate, PortRef, Protocol, SessionAffinity, Workload,
};
use crate::proxy::table::{self, Endpoint, Mode, Table, TUNNEL_PORT};

/// The Kubernetes cluster domain every Service name ends in.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `node/container` of each container the leader is about to stop: their
/// replicas are endpoints of nothing.
pub type Leaving = BTreeSet<(String, String)>;

/// The table of every reachable node, generation 0: the driver numbers
/// what it sends. `addresses` are the nodes' IPv4 addresses, where other
/// nodes' proxies reach their tunnel: a node without one serves its own
/// endpoints and is reached by no other node.
pub fn tables(
    desired: &DesiredState,
    observed: &ObservedCluster,
    addresses: &BTreeMap<String, Ipv4Addr>,
    leaving: &Leaving,
    now: SystemTime,
) -> BTreeMap<String, Table> {
    let pods = serving_pods(desired, observed, leaving, now);
    let (ingress, ingress_default_backend) = ingress_routes(desired);
    observed
        .nodes
        .values()
        .filter(|node| node.reachability.is_reachable())
        .map(|node| &node.name)
        .map(|node| {
            let services = desired
                .services
                .iter()
                .map(|service| table_service(service, &pods, node, addresses))
                .collect();
            let table = Table {
                generation: 0,
                node: node.clone(),
                service_cidr: desired.cluster.service_cidr.to_string(),
                dns_address: desired.cluster.service_cidr.dns_address(),
                cluster_domain: CLUSTER_DOMAIN.to_string(),
                services,
                ingress: ingress.clone(),
                ingress_default_backend: ingress_default_backend.clone(),
            };
            (node.clone(), table)
        })
        .collect()
}

/// Every Ingress path as a route to a Service port (by number), and the
/// default backend; a backend whose Service or port is not declared is
/// left out (validation refuses such a commit).
fn ingress_routes(
    desired: &DesiredState,
) -> (Vec<table::IngressRoute>, Option<table::IngressBackend>) {
    let backend = |namespace: &str, backend: &model::IngressBackend| {
        let service = desired
            .services
            .iter()
            .find(|s| s.meta.namespace == namespace && s.meta.name == backend.service)?;
        let port = backend.service_port(service)?;
        Some(table::IngressBackend {
            namespace: namespace.to_string(),
            service: backend.service.clone(),
            port: port.port,
        })
    };
    let mut routes = Vec::new();
    let mut default_backend = None;
    for ingress in &desired.ingresses {
        let namespace = &ingress.meta.namespace;
        if let Some(default) = &ingress.default_backend {
            default_backend = default_backend.or_else(|| backend(namespace, default));
        }
        for rule in &ingress.rules {
            for path in &rule.paths {
                let Some(to) = backend(namespace, &path.backend) else {
                    continue;
                };
                routes.push(table::IngressRoute {
                    host: rule.host.as_ref().map(ToString::to_string),
                    path: path.path.clone(),
                    path_type: match path.path_type {
                        model::PathType::Prefix => table::PathType::Prefix,
                        model::PathType::Exact => table::PathType::Exact,
                    },
                    backend: to,
                });
            }
        }
    }
    routes.sort();
    (routes, default_backend)
}

/// A ready pod: where it runs, its address, and its workload's template.
struct ServingPod<'a> {
    node: &'a str,
    name: &'a str,
    address: Ipv4Addr,
    /// An older revision's template is gone from the commit; its pods
    /// carried the workload's labels, which its selector keeps.
    workload: &'a Workload,
}

fn serving_pods<'a>(
    desired: &'a DesiredState,
    observed: &'a ObservedCluster,
    leaving: &Leaving,
    now: SystemTime,
) -> Vec<ServingPod<'a>> {
    let replicas = group_replicas(observed);
    let mut pods = Vec::new();
    for (replica, workload, state) in declared_replicas(desired, &replicas, now) {
        let is_leaving = replica
            .containers
            .iter()
            .any(|c| leaving.contains(&(replica.node.to_string(), c.name.clone())));
        if is_leaving || state != ReplicaState::Ready {
            continue;
        }
        // The pod's address is its first container's: the others share
        // its network namespace and have none of their own.
        let Some((name, address)) = replica
            .containers
            .iter()
            .find_map(|c| c.address.map(|a| (c.name.as_str(), a)))
        else {
            continue;
        };
        pods.push(ServingPod {
            node: replica.node,
            name,
            address,
            workload,
        });
    }
    pods
}

/// Every replica of a declared workload, with the workload and the
/// replica's state as a rollout counts it: readiness probes and
/// `minReadySeconds` for the current revision (each workload's revision
/// hashed once); an older revision's template is gone, so its running pods
/// count as ready.
fn declared_replicas<'r, 'a>(
    desired: &'a DesiredState,
    replicas: &'r [ObservedReplica<'a>],
    now: SystemTime,
) -> Vec<(&'r ObservedReplica<'a>, &'a Workload, ReplicaState)> {
    let revisions: BTreeMap<(Kind, &str, &str), String> = desired
        .workloads
        .iter()
        .map(|w| {
            (
                (w.kind, w.meta.namespace.as_str(), w.meta.name.as_str()),
                crate::manifest::template_hash(&w.spec.template),
            )
        })
        .collect();
    replicas
        .iter()
        .filter_map(|replica| {
            let key = (replica.key.kind, replica.key.namespace, replica.key.name);
            let current = revisions.get(&key)?;
            let workload = desired.workload_named(key.0, key.1, key.2)?;
            let gate = (replica.key.template_hash == current.as_str()).then_some(ReadinessGate {
                template: &workload.spec.template,
                min_ready_seconds: workload.spec.min_ready_seconds,
            });
            Some((replica, workload, replica.state(gate, now)))
        })
        .collect()
}

/// Whether `service` selects the pods of `workload`: the same namespace,
/// and pod labels that include every label of its selector.
pub fn selects(service: &model::Service, workload: &Workload) -> bool {
    workload.meta.namespace == service.meta.namespace
        && service
            .selector
            .iter()
            .all(|(key, value)| workload.spec.template.labels.get(key) == Some(value))
}

fn table_service(
    service: &model::Service,
    pods: &[ServingPod<'_>],
    node: &str,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> table::Service {
    let selected: Vec<&ServingPod<'_>> = pods
        .iter()
        .filter(|pod| selects(service, pod.workload))
        .collect();
    let ports = service
        .ports
        .iter()
        .map(|port| {
            let mut endpoints: Vec<Endpoint> = selected
                .iter()
                .filter_map(|pod| {
                    let target_port = target_port(&port.target_port, &pod.workload.spec.template)?;
                    let via = if pod.node == node {
                        None
                    } else {
                        Some(SocketAddrV4::new(*addresses.get(pod.node)?, TUNNEL_PORT))
                    };
                    Some(Endpoint {
                        node: pod.node.to_string(),
                        pod: pod.name.to_string(),
                        target: SocketAddrV4::new(pod.address, target_port),
                        via,
                    })
                })
                .collect();
            endpoints.sort();
            table::ServicePort {
                name: port.name.clone().unwrap_or_default(),
                protocol: match port.protocol {
                    Protocol::UDP => table::Protocol::Udp,
                    Protocol::TCP | Protocol::SCTP => table::Protocol::Tcp,
                },
                port: port.port,
                node_port: port.node_port,
                node_port_local_only: service.external_traffic_local,
                mode: if port.http {
                    Mode::Http
                } else if service.proxy_protocol {
                    Mode::ProxyV2
                } else {
                    Mode::Tcp
                },
                endpoints,
            }
        })
        .collect();
    table::Service {
        namespace: service.meta.namespace.clone(),
        name: service.meta.name.clone(),
        cluster_ip: service.cluster_ip,
        client_ip_affinity_seconds: match service.session_affinity {
            SessionAffinity::None => None,
            SessionAffinity::ClientIP { timeout_seconds } => Some(timeout_seconds),
        },
        balance: match service.balance {
            Balance::RoundRobin => table::Balance::RoundRobin,
            Balance::LeastConnections => table::Balance::LeastConnections,
        },
        ports,
    }
}

/// One pod a Service selects, and whether it serves: what `status` lists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    pub pod: String,
    pub node: String,
    /// The pod's address on its node (empty when it has none yet).
    pub address: String,
    /// `ready` (served), `not-ready` (selected, not served yet or any
    /// more), `terminating` (leaving: drained, then stopped) or `unknown`
    /// (its node is unreachable: not served).
    pub state: String,
}

/// Every pod each Service selects, in the order of `desired.services`;
/// `replicas` are the observed cluster's, grouped.
pub fn service_endpoints(
    desired: &DesiredState,
    replicas: &[ObservedReplica<'_>],
    now: SystemTime,
) -> Vec<Vec<EndpointStatus>> {
    // Each replica's state once, whatever the number of Services.
    let declared: Vec<(&Workload, EndpointStatus)> = declared_replicas(desired, replicas, now)
        .into_iter()
        .map(|(replica, workload, state)| {
            let state = match state {
                ReplicaState::Ready => "ready",
                ReplicaState::Terminating => "terminating",
                ReplicaState::Unknown => "unknown",
                ReplicaState::Failed | ReplicaState::Pending | ReplicaState::Running => "not-ready",
            };
            let first = replica.containers.iter().find(|c| c.address.is_some());
            let endpoint = EndpointStatus {
                pod: first
                    .or(replica.containers.first())
                    .map_or(String::new(), |c| c.name.clone()),
                node: replica.node.to_string(),
                address: first
                    .and_then(|c| c.address)
                    .map_or(String::new(), |a| a.to_string()),
                state: state.to_string(),
            };
            (workload, endpoint)
        })
        .collect();
    desired
        .services
        .iter()
        .map(|service| {
            let mut endpoints: Vec<EndpointStatus> = declared
                .iter()
                .filter(|(workload, _)| selects(service, workload))
                .map(|(_, endpoint)| endpoint.clone())
                .collect();
            endpoints.sort_by(|a, b| (&a.pod, &a.node).cmp(&(&b.pod, &b.node)));
            endpoints
        })
        .collect()
}

/// The container port a Service port reaches on a pod of `template`: the
/// number, or the port of that name (none: the pod is no endpoint of it,
/// as in Kubernetes).
pub fn target_port(target: &PortRef, template: &PodTemplate) -> Option<u16> {
    match target {
        PortRef::Number(number) => Some(*number),
        PortRef::Name(name) => template
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{
        ContainerState, ManagedLabels, ObservedContainer, ObservedNode, Reachability,
    };
    use crate::manifest::SourceFile;
    use std::time::{Duration, UNIX_EPOCH};

    const YAML: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 4\n  \
        selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      \
        containers:\n      - {name: app, image: img, ports: [{name: http, containerPort: 8080}]}\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n  \
        ports: [{port: 80, targetPort: http, nodePort: 30080}]\n---\n\
        apiVersion: v1\nkind: Service\nmetadata: {name: other}\nspec:\n  selector: {app: other}\n  ports: [{port: 80}]\n";

    fn desired() -> DesiredState {
        let loaded = crate::manifest::load(&[SourceFile::new("web.yaml", YAML)]);
        assert!(
            loaded.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            loaded.diagnostics
        );
        loaded.state
    }

    fn pod(desired: &DesiredState, node: &str, slot: u32, address: [u8; 4]) -> ObservedContainer {
        let labels = ManagedLabels {
            namespace: "default".into(),
            kind: desired.workloads[0].kind,
            name: "web".into(),
            slot,
            template_hash: crate::manifest::template_hash(&desired.workloads[0].spec.template),
            commit: "c".into(),
            node: node.into(),
            container: "app".into(),
        };
        ObservedContainer {
            id: format!("id{slot}"),
            name: labels.container_name(),
            labels,
            state: ContainerState::Running,
            health: None,
            restart_count: 0,
            started_at: Some(UNIX_EPOCH),
            finished_at: None,
            image: "img".into(),
            ports: Vec::new(),
            probe_ready: None,
            ready_since: None,
            address: Some(address.into()),
        }
    }

    fn observed(desired: &DesiredState, n2_reachable: bool) -> ObservedCluster {
        let mut cluster = ObservedCluster::default();
        let node = |name: &str, reachable: bool, containers| ObservedNode {
            name: name.into(),
            reachability: if reachable {
                Reachability::Reachable
            } else {
                Reachability::Unreachable {
                    since: UNIX_EPOCH,
                    reason: "gone".into(),
                    contents: crate::cluster::Contents::LastSeen,
                }
            },
            facts: None,
            containers,
        };
        let mut not_running = pod(desired, "n1", 2, [172, 17, 0, 4]);
        not_running.state = ContainerState::Exited { code: 1 };
        cluster.nodes.insert(
            "n1".into(),
            node(
                "n1",
                true,
                vec![pod(desired, "n1", 0, [172, 17, 0, 2]), not_running],
            ),
        );
        cluster.nodes.insert(
            "n2".into(),
            node(
                "n2",
                n2_reachable,
                vec![
                    pod(desired, "n2", 1, [172, 18, 0, 2]),
                    pod(desired, "n2", 3, [172, 18, 0, 3]),
                ],
            ),
        );
        cluster
    }

    fn addresses() -> BTreeMap<String, Ipv4Addr> {
        BTreeMap::from([
            ("n1".to_string(), Ipv4Addr::new(10, 0, 0, 1)),
            ("n2".to_string(), Ipv4Addr::new(10, 0, 0, 2)),
        ])
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(100)
    }

    fn targets(table: &Table) -> Vec<(String, Option<SocketAddrV4>)> {
        table.services[1].ports[0]
            .endpoints
            .iter()
            .map(|e| (e.target.to_string(), e.via))
            .collect()
    }

    #[test]
    fn ready_pods_are_endpoints_local_ones_direct_remote_ones_through_their_node() {
        let desired = desired();
        let tables = tables(
            &desired,
            &observed(&desired, true),
            &addresses(),
            &Leaving::new(),
            now(),
        );
        let n1 = &tables["n1"];
        assert_eq!(n1.services[0].name, "other");
        assert!(n1.services[0].ports[0].endpoints.is_empty());
        let tunnel = Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), TUNNEL_PORT));
        // The named target port resolves to 8080; the exited pod is none.
        assert_eq!(
            targets(n1),
            [
                ("172.17.0.2:8080".to_string(), None),
                ("172.18.0.2:8080".to_string(), tunnel),
                ("172.18.0.3:8080".to_string(), tunnel),
            ]
        );
        assert_eq!(n1.services[1].ports[0].node_port, Some(30080));
        let back = Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), TUNNEL_PORT));
        assert_eq!(
            targets(&tables["n2"])[0],
            ("172.17.0.2:8080".to_string(), back)
        );
        assert_eq!(targets(&tables["n2"])[1].1, None);
    }

    #[test]
    fn leaving_pods_and_pods_on_unreachable_nodes_are_no_endpoints() {
        let desired = desired();
        let observed = observed(&desired, true);
        let leaving_name = observed.nodes["n2"].containers[0].name.clone();
        let leaving = Leaving::from([("n2".to_string(), leaving_name)]);
        let tables = tables(&desired, &observed, &addresses(), &leaving, now());
        assert_eq!(targets(&tables["n1"]).len(), 2);
        assert!(!targets(&tables["n1"])
            .iter()
            .any(|(t, _)| t == "172.18.0.2:8080"));

        let unreachable = observed_unreachable(&desired);
        let only_n1 = BTreeMap::from([("n1".to_string(), Ipv4Addr::new(10, 0, 0, 1))]);
        let tables = tables_of(&desired, &unreachable, &only_n1);
        assert_eq!(
            targets(&tables["n1"]),
            [("172.17.0.2:8080".to_string(), None)]
        );
        assert!(!tables.contains_key("n2"));
    }

    fn observed_unreachable(desired: &DesiredState) -> ObservedCluster {
        observed(desired, false)
    }

    fn tables_of(
        desired: &DesiredState,
        observed: &ObservedCluster,
        addresses: &BTreeMap<String, Ipv4Addr>,
    ) -> BTreeMap<String, Table> {
        tables(desired, observed, addresses, &Leaving::new(), now())
    }
}
