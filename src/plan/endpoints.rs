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
//!
//! A StatefulSet pod a Service names (`model::Service::pod_addresses`) is
//! an entry of its own after its Service's: the pod's stable address,
//! serving the Service's ports with only that pod (its set, its ordinal)
//! as the endpoint, by the same rules.

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
    let (ingress_certificates, _) = ingress_certificates(desired);
    observed
        .nodes
        .values()
        .filter(|node| node.reachability.is_reachable())
        .map(|node| &node.name)
        .map(|node| {
            let mut services: Vec<table::Service> = desired
                .services
                .iter()
                .flat_map(|service| {
                    let own = table_service(service, &pods, node, addresses);
                    let named = service
                        .pod_addresses
                        .iter()
                        .map(|pod| pod_entry(service, pod, &pods, node, addresses));
                    std::iter::once(own).chain(named)
                })
                .collect();
            services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            let table = Table {
                generation: 0,
                node: node.clone(),
                service_cidr: desired.cluster.service_cidr.to_string(),
                dns_address: desired.cluster.service_cidr.dns_address(),
                cluster_domain: CLUSTER_DOMAIN.to_string(),
                services,
                ingress: ingress.clone(),
                ingress_default_backend: ingress_default_backend.clone(),
                ingress_certificates: ingress_certificates.clone(),
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

/// Every Ingress `tls` entry whose Secret's `tls.crt` and `tls.key` are
/// opened and can be served, as the proxies' certificates (sorted, each
/// once); and, for each entry left out, why (naming its Secret, never a
/// value): its values are sealed (the leader could not open them), or
/// they are not a certificate and its key (the pre-receive hook refuses
/// such a commit; [`crate::proxy::tls::check_pair`]). A name whose
/// certificate is left out gets the default certificate, if any, or no
/// handshake: never one the commit did not declare for it.
pub fn ingress_certificates(
    desired: &DesiredState,
) -> (Vec<table::IngressCertificate>, Vec<String>) {
    use crate::proxy::tls::{self, CERTIFICATE_KEY, PRIVATE_KEY_KEY};
    let mut certificates = Vec::new();
    let mut problems = Vec::new();
    for ingress in &desired.ingresses {
        let namespace = &ingress.meta.namespace;
        for entry in &ingress.tls {
            let name = format!("{namespace}/{}", entry.secret_name);
            // Validation refuses an Ingress naming a Secret that is not a
            // declared TLS Secret.
            let Some(secret) = desired
                .secret(namespace, &entry.secret_name)
                .filter(|secret| secret.secret_type == model::SecretType::Tls)
            else {
                continue;
            };
            let value = |key: &str| match secret.data.get(key) {
                Some(model::SecretValue::Opened(value)) => Ok(value.expose()),
                Some(model::SecretValue::Sealed(_)) => Err(format!(
                    "Secret {name}: `{key}` is sealed (the leader could not open it): no \
                     certificate of its own for {}",
                    hosts_of(entry)
                )),
                None => Err(format!("Secret {name}: no key `{key}`")),
            };
            let pair = value(CERTIFICATE_KEY).and_then(|chain| {
                let key = value(PRIVATE_KEY_KEY)?;
                tls::check_pair(chain, key).map_err(|error| format!("Secret {name}: {error}"))?;
                // check_pair read both as text.
                let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
                Ok((text(chain), text(key)))
            });
            match pair {
                Ok((chain, key)) => {
                    let mut hosts: Vec<String> =
                        entry.hosts.iter().map(ToString::to_string).collect();
                    hosts.sort();
                    certificates.push(table::IngressCertificate {
                        secret: name,
                        hosts,
                        chain,
                        key: table::PrivateKeyPem::new(key),
                    });
                }
                Err(problem) => problems.push(problem),
            }
        }
    }
    certificates.sort();
    certificates.dedup();
    problems.sort();
    problems.dedup();
    (certificates, problems)
}

/// The names a `tls` entry serves, for messages.
fn hosts_of(entry: &model::IngressTls) -> String {
    if entry.hosts.is_empty() {
        return "the names no other certificate lists (the default)".to_string();
    }
    let hosts: Vec<String> = entry.hosts.iter().map(|h| format!("`{h}`")).collect();
    hosts.join(", ")
}

/// A ready pod: where it runs, its address, and its workload's template.
struct ServingPod<'a> {
    node: &'a str,
    name: &'a str,
    /// Its ordinal, for a StatefulSet's pod.
    slot: u32,
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
        // The pod's address is its sandbox's (or, alone in its pod, its
        // container's): the others share its network namespace and have
        // none of their own.
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
            slot: replica.key.slot,
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
    serving(service, &selected, node, addresses)
}

/// The entry of one StatefulSet pod named under `service`: its address,
/// the Service's ports (no node port, no affinity: one endpoint at most),
/// and the pod of that set and ordinal as the endpoint while it serves.
fn pod_entry(
    service: &model::Service,
    pod: &model::StatefulPodAddress,
    pods: &[ServingPod<'_>],
    node: &str,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> table::Service {
    let selected: Vec<&ServingPod<'_>> = pods
        .iter()
        .filter(|serving| {
            serving.workload.kind == Kind::StatefulSet
                && serving.workload.meta.name == pod.set
                && serving.slot == pod.ordinal
                && selects(service, serving.workload)
        })
        .collect();
    let mut entry = serving(service, &selected, node, addresses);
    entry.name = table::Service::pod_entry_name(&pod.hostname, &service.meta.name);
    entry.cluster_ip = pod.address;
    entry.client_ip_affinity_seconds = None;
    for port in &mut entry.ports {
        port.node_port = None;
        port.node_port_local_only = false;
    }
    entry.pod = Some(table::PodName {
        hostname: pod.hostname.clone(),
        service: service.meta.name.clone(),
    });
    entry
}

/// `service`'s ports served by the `selected` pods, as `node`'s proxy
/// reaches them.
fn serving(
    service: &model::Service,
    selected: &[&ServingPod<'_>],
    node: &str,
    addresses: &BTreeMap<String, Ipv4Addr>,
) -> table::Service {
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
        pod: None,
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
                ReplicaState::Failed
                | ReplicaState::Succeeded
                | ReplicaState::Pending
                | ReplicaState::Running => "not-ready",
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
            .all_containers()
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
            role: Default::default(),
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
            hooks: Default::default(),
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
            volumes: Vec::new(),
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

    /// `desired()` with `web` made a StatefulSet of 4 ordinals named under
    /// the Service `web`, each with an address of its own (the manifest
    /// allocates them; here they are given).
    fn stateful_desired() -> DesiredState {
        use crate::manifest::model::{
            ClaimRetention, PodManagement, PodSet, StatefulPodAddress, StatefulSpec,
        };
        let mut desired = desired();
        let set = &mut desired.workloads[0];
        set.kind = Kind::StatefulSet;
        set.spec.pods = PodSet::Ordinals {
            replicas: 4,
            start: 0,
        };
        set.spec.stateful = Some(StatefulSpec {
            service_name: "web".into(),
            pod_management: PodManagement::Parallel,
            partition: 0,
            claim_templates: Vec::new(),
            when_deleted: ClaimRetention::Retain,
            when_scaled: ClaimRetention::Retain,
        });
        let web = &mut desired.services[1];
        assert_eq!(web.meta.name, "web");
        web.pod_addresses = (0..4)
            .map(|ordinal| StatefulPodAddress {
                set: "web".into(),
                ordinal,
                hostname: format!("web-{ordinal}"),
                address: Ipv4Addr::new(10, 96, 1, 10 + ordinal as u8),
            })
            .collect();
        desired
    }

    /// Each entry of `table` as `name address [node_port] -> targets`.
    fn entries(table: &Table) -> Vec<String> {
        table
            .services
            .iter()
            .map(|service| {
                let port = &service.ports[0];
                let targets: Vec<String> = port
                    .endpoints
                    .iter()
                    .map(|e| match e.via {
                        Some(via) => format!("{} via {via}", e.target),
                        None => e.target.to_string(),
                    })
                    .collect();
                let node_port = port.node_port.map_or(String::new(), |p| format!(" :{p}"));
                format!(
                    "{} {}{node_port} -> [{}]",
                    service.name,
                    service.cluster_ip,
                    targets.join(", ")
                )
            })
            .collect()
    }

    #[test]
    fn a_stateful_pod_s_address_serves_that_pod_alone_while_it_is_ready() {
        let desired = stateful_desired();
        let observed = observed(&desired, true);
        let tables = tables_of(&desired, &observed, &addresses());
        let n1 = &tables["n1"];
        assert_eq!(
            entries(n1),
            [
                format!("other {} -> []", desired.services[0].cluster_ip),
                format!(
                    "web {} :30080 -> [172.17.0.2:8080, 172.18.0.2:8080 via 10.0.0.2:10260, 172.18.0.3:8080 via 10.0.0.2:10260]",
                    desired.services[1].cluster_ip
                ),
                "web-0.web 10.96.1.10 -> [172.17.0.2:8080]".to_string(),
                "web-1.web 10.96.1.11 -> [172.18.0.2:8080 via 10.0.0.2:10260]".to_string(),
                // Its container exited: not ready, no endpoint.
                "web-2.web 10.96.1.12 -> []".to_string(),
                "web-3.web 10.96.1.13 -> [172.18.0.3:8080 via 10.0.0.2:10260]".to_string(),
            ]
        );
        let web_0 = &n1.services[2];
        assert_eq!(
            web_0.pod,
            Some(table::PodName {
                hostname: "web-0".into(),
                service: "web".into()
            })
        );
        assert_eq!(web_0.ports[0].port, 80);
        assert!(!web_0.ports[0].node_port_local_only);
        assert!(n1.services[1].pod.is_none());
        // On n2, its own pods directly, n1's through n1's tunnel.
        assert_eq!(
            entries(&tables["n2"])[2],
            "web-0.web 10.96.1.10 -> [172.17.0.2:8080 via 10.0.0.1:10260]"
        );

        // A leaving pod leaves its own address too; an unreachable node's
        // pods serve none.
        let leaving_name = observed.nodes["n2"].containers[0].name.clone();
        let leaving = Leaving::from([("n2".to_string(), leaving_name)]);
        let without = super::tables(&desired, &observed, &addresses(), &leaving, now());
        assert_eq!(entries(&without["n1"])[3], "web-1.web 10.96.1.11 -> []");
        let unreachable = observed_unreachable(&desired);
        let without = tables_of(&desired, &unreachable, &addresses());
        assert_eq!(entries(&without["n1"])[5], "web-3.web 10.96.1.13 -> []");
    }

    #[test]
    fn another_workload_with_the_same_labels_is_no_endpoint_of_a_pod_s_address() {
        let mut desired = stateful_desired();
        // The same pods, but of a Deployment: the Service selects them, no
        // StatefulSet pod is theirs.
        desired.workloads[0].kind = Kind::Deployment;
        let observed = observed(&desired, true);
        let tables = tables_of(&desired, &observed, &addresses());
        let n1 = entries(&tables["n1"]);
        assert!(
            n1[1].starts_with("web ") && n1[1].contains("172.17.0.2:8080"),
            "{n1:?}"
        );
        for entry in &n1[2..] {
            assert!(entry.ends_with("-> []"), "{n1:?}");
        }
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

    /// The Ingresses' TLS Secrets, opened, become the tables'
    /// certificates; a sealed one or one that cannot be served gives none,
    /// and says why without a value.
    #[test]
    fn opened_tls_secrets_are_the_ingress_certificates() {
        use crate::manifest::model::{SealedText, Secret, SecretType, SecretValue, Sensitive};
        let ingress = "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: site}\nspec:\n  \
            tls:\n  - {hosts: [shop.example.com, '*.example.com'], secretName: shop}\n  \
            - {secretName: fallback}\n  - {hosts: [sealed.example.com], secretName: sealed}\n  \
            - {hosts: [bad.example.com], secretName: bad}\n  \
            defaultBackend: {service: {name: web, port: {number: 80}}}\n";
        let loaded =
            crate::manifest::load(&[SourceFile::new("web.yaml", format!("{YAML}{ingress}"))]);
        let mut desired = loaded.state;
        assert_eq!(desired.ingresses[0].tls.len(), 4);
        let pair =
            rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()]).unwrap();
        let (chain, key) = (pair.cert.pem(), pair.key_pair.serialize_pem());
        let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let secret = |name: &str, values: Vec<(&str, SecretValue)>| Secret {
            meta: model::ObjectMeta {
                name: name.to_string(),
                namespace: "default".to_string(),
                ..model::ObjectMeta::default()
            },
            secret_type: SecretType::Tls,
            data: values
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            immutable: false,
        };
        let opened = |text: &str| SecretValue::Opened(Sensitive::new(text.as_bytes().to_vec()));
        let sealed = SecretValue::Sealed(SealedText {
            version: "0123456789abcdef".to_string(),
            ciphertext: String::new(),
        });
        desired.secrets = vec![
            secret(
                "bad",
                vec![("tls.crt", opened(&chain)), ("tls.key", opened(&other_key))],
            ),
            secret(
                "fallback",
                vec![("tls.crt", opened(&chain)), ("tls.key", opened(&key))],
            ),
            secret(
                "sealed",
                vec![("tls.crt", sealed.clone()), ("tls.key", sealed)],
            ),
            secret(
                "shop",
                vec![("tls.crt", opened(&chain)), ("tls.key", opened(&key))],
            ),
        ];
        let (certificates, problems) = ingress_certificates(&desired);
        let served: Vec<(&str, Vec<&str>)> = certificates
            .iter()
            .map(|c| {
                (
                    c.secret.as_str(),
                    c.hosts.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            served,
            [
                ("default/fallback", vec![]),
                ("default/shop", vec!["*.example.com", "shop.example.com"]),
            ]
        );
        assert_eq!(certificates[1].chain, chain);
        assert_eq!(certificates[1].key.expose(), key);
        assert_eq!(
            problems,
            [
                "Secret default/bad: tls.key is not the key of the first certificate of tls.crt",
                "Secret default/sealed: `tls.crt` is sealed (the leader could not open it): no \
                 certificate of its own for `sealed.example.com`",
            ]
        );
        let observed = observed(&desired, true);
        let tables = tables(&desired, &observed, &addresses(), &Leaving::new(), now());
        assert_eq!(tables["n1"].ingress_certificates, certificates);
        assert_eq!(tables["n2"].ingress_certificates, certificates);
    }
}
