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

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::SystemTime;

use crate::cluster::replica::{group_replicas, ObservedReplica, ReadinessGate, ReplicaState};
use crate::cluster::ObservedCluster;
use crate::manifest::model::{
    self, Balance, DesiredState, PodTemplate, PortRef, Protocol, SessionAffinity, Workload,
};
use crate::proxy::table::{self, Endpoint, Mode, Table, TUNNEL_PORT};

/// The Kubernetes cluster domain every Service name ends in.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// `node/container` of each container the leader is about to stop: their
/// replicas are endpoints of nothing.
pub type Leaving = BTreeSet<(String, String)>;

/// The table of every node in `addresses` (the reachable nodes, by their
/// IPv4 address), generation 0: the driver numbers what it sends.
pub fn tables(
    desired: &DesiredState,
    observed: &ObservedCluster,
    addresses: &BTreeMap<String, Ipv4Addr>,
    leaving: &Leaving,
    now: SystemTime,
) -> BTreeMap<String, Table> {
    let pods = serving_pods(desired, observed, leaving, now);
    addresses
        .keys()
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
            };
            (node.clone(), table)
        })
        .collect()
}

/// A ready pod: where it runs, its address, and its workload's template.
struct ServingPod<'a> {
    node: &'a str,
    name: &'a str,
    address: Ipv4Addr,
    namespace: &'a str,
    template: &'a PodTemplate,
}

fn serving_pods<'a>(
    desired: &'a DesiredState,
    observed: &'a ObservedCluster,
    leaving: &Leaving,
    now: SystemTime,
) -> Vec<ServingPod<'a>> {
    let mut pods = Vec::new();
    for replica in group_replicas(observed) {
        let Some(workload) =
            desired.workload_named(replica.key.kind, replica.key.namespace, replica.key.name)
        else {
            continue;
        };
        if !is_serving(&replica, workload, leaving, now) {
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
            namespace: &workload.meta.namespace,
            // An older revision's template is gone from the commit; its
            // pods carried the workload's labels, which its selector keeps.
            template: &workload.spec.template,
        });
    }
    pods
}

fn is_serving(
    replica: &ObservedReplica<'_>,
    workload: &Workload,
    leaving: &Leaving,
    now: SystemTime,
) -> bool {
    if replica
        .containers
        .iter()
        .any(|c| leaving.contains(&(replica.node.to_string(), c.name.clone())))
    {
        return false;
    }
    let current = crate::manifest::template_hash(&workload.spec.template);
    let gate = (replica.key.template_hash == current).then_some(ReadinessGate {
        template: &workload.spec.template,
        min_ready_seconds: workload.spec.min_ready_seconds,
    });
    replica.state(gate, now) == ReplicaState::Ready
}

fn table_service(
    service: &model::Service,
    pods: &[ServingPod<'_>],
    node: &str,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> table::Service {
    let selected: Vec<&ServingPod<'_>> = pods
        .iter()
        .filter(|pod| {
            pod.namespace == service.meta.namespace
                && service
                    .selector
                    .iter()
                    .all(|(key, value)| pod.template.labels.get(key) == Some(value))
        })
        .collect();
    let ports = service
        .ports
        .iter()
        .map(|port| {
            let mut endpoints: Vec<Endpoint> = selected
                .iter()
                .filter_map(|pod| {
                    let target_port = target_port(&port.target_port, pod.template)?;
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

/// Every pod each Service selects, in the order of `desired.services`.
pub fn service_endpoints(
    desired: &DesiredState,
    observed: &ObservedCluster,
    now: SystemTime,
) -> Vec<Vec<EndpointStatus>> {
    let replicas = group_replicas(observed);
    desired
        .services
        .iter()
        .map(|service| {
            let mut endpoints: Vec<EndpointStatus> = replicas
                .iter()
                .filter_map(|replica| {
                    let workload = desired.workload_named(
                        replica.key.kind,
                        replica.key.namespace,
                        replica.key.name,
                    )?;
                    let selected = workload.meta.namespace == service.meta.namespace
                        && service.selector.iter().all(|(key, value)| {
                            workload.spec.template.labels.get(key) == Some(value)
                        });
                    if !selected {
                        return None;
                    }
                    let current = crate::manifest::template_hash(&workload.spec.template);
                    let gate = (replica.key.template_hash == current).then_some(ReadinessGate {
                        template: &workload.spec.template,
                        min_ready_seconds: workload.spec.min_ready_seconds,
                    });
                    let state = match replica.state(gate, now) {
                        ReplicaState::Ready => "ready",
                        ReplicaState::Terminating => "terminating",
                        ReplicaState::Unknown => "unknown",
                        ReplicaState::Failed | ReplicaState::Pending | ReplicaState::Running => {
                            "not-ready"
                        }
                    };
                    let first = replica.containers.iter().find(|c| c.address.is_some());
                    Some(EndpointStatus {
                        pod: first
                            .or(replica.containers.first())
                            .map_or(String::new(), |c| c.name.clone()),
                        node: replica.node.to_string(),
                        address: first
                            .and_then(|c| c.address)
                            .map_or(String::new(), |a| a.to_string()),
                        state: state.to_string(),
                    })
                })
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
