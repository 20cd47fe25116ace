//! What a Service needs the other objects for, once every document is read:
//! its virtual address from the Cluster's `serviceCIDR` and its node ports,
//! each unique across Services, and its selector and named target ports
//! checked against the workloads it selects.
//!
//! Allocation is deterministic and stable: an explicit `clusterIP` or
//! `nodePort` is reserved first; then, in the Services' key order, each one
//! without gets the slot a hash of its name points at (the first four bytes
//! of SHA-256, never a per-process hasher), or the next free one. So a
//! Service keeps its address and ports across commits as long as no other
//! name takes them first, and setting them explicitly pins them. The
//! StatefulSet pods a Service names get theirs after (`pod_addresses`).

use std::collections::{BTreeMap, BTreeSet};

use core::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::decode::{port_label, DecodedService, NODE_PORTS};
use super::diagnostic::Diagnostic;
use super::model::{ClusterSettings, PortRef, Service, ServiceCidr, ServiceType, Workload};

/// The Services of `decoded`, sorted by key, with their addresses and node
/// ports allocated; every problem is added to `diagnostics`, and a Service
/// with an error is left out. `workloads` are the valid workloads.
pub(super) fn resolve(
    mut decoded: Vec<DecodedService>,
    cluster: &ClusterSettings,
    workloads: &[Workload],
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Service> {
    decoded.sort_by(|a, b| {
        let key = |s: &DecodedService| {
            (
                s.service.meta.namespace.clone(),
                s.service.meta.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    // The errors, by the index of their Service.
    let mut errors: Vec<(usize, Diagnostic)> = Vec::new();

    // Explicit addresses first, in key order: the second of two is the error.
    let cidr = cluster.service_cidr;
    let mut addresses: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for i in 0..decoded.len() {
        let Some(address) = decoded[i].requested_cluster_ip else {
            continue;
        };
        let at = decoded[i].service.meta.field_location("spec.clusterIP");
        let problem = if !cidr.contains(address) {
            Some((
                format!("clusterIP {address} is outside the Cluster's serviceCIDR {cidr}"),
                "leave `clusterIP` out to have one allocated, or widen the Cluster's `spec.serviceCIDR`".to_string(),
            ))
        } else if cidr.is_reserved(address) {
            let what = if address == cidr.base {
                "the network address"
            } else if address == cidr.dns_address() {
                "the address of the proxies' DNS server"
            } else {
                "the broadcast address"
            };
            Some((
                format!("clusterIP {address} is {what} of the serviceCIDR {cidr}"),
                "choose another address, or leave `clusterIP` out to have one allocated"
                    .to_string(),
            ))
        } else if let Some(&other) = addresses.get(&address) {
            let other = &decoded[other].service;
            Some((
                format!("clusterIP {address} is also {}'s", other.key()),
                format!(
                    "{} declares it at {}; give each Service its own address, or leave `clusterIP` out",
                    other.key(),
                    other.meta.field_location("spec.clusterIP")
                ),
            ))
        } else {
            None
        };
        match problem {
            Some((message, hint)) => errors.push((
                i,
                Diagnostic::error(message, at)
                    .with_field_path("spec.clusterIP")
                    .with_hint(hint),
            )),
            None => {
                addresses.insert(address, i);
                decoded[i].service.cluster_ip = address;
            }
        }
    }
    let mut taken: BTreeSet<Ipv4Addr> = addresses.keys().copied().collect();
    // Who declares each explicit address, for the warning below.
    let declared_by: BTreeMap<Ipv4Addr, String> = addresses
        .iter()
        .map(|(address, &i)| (*address, decoded[i].service.key().to_string()))
        .collect();
    for (i, entry) in decoded.iter_mut().enumerate() {
        if entry.requested_cluster_ip.is_some() {
            continue;
        }
        let key = service_name(&entry.service);
        match allocate_address(cidr, &key, &taken) {
            Some(address) => {
                taken.insert(address);
                entry.service.cluster_ip = address;
                // An explicit address on the one this name gives moves this
                // Service elsewhere: said, since pods made before keep the
                // old address in their variables.
                let preferred = allocate_address(cidr, &key, &BTreeSet::new());
                if let Some(other) = preferred
                    .filter(|p| *p != address)
                    .and_then(|p| declared_by.get(&p).map(|o| (p, o)))
                {
                    diagnostics.push(
                        Diagnostic::warning(
                            format!(
                                "Service {key} gets address {address}, not {} (the one its name gives), which {} declares in spec.clusterIP",
                                other.0, other.1
                            ),
                            entry.service.meta.source.clone(),
                        )
                        .with_object(entry.service.key().to_string())
                        .with_hint(
                            "pods made before keep the old address in their variables until they are replaced; set spec.clusterIP on this Service to pin its address",
                        ),
                    );
                }
            }
            None => {
                let at = entry.service.meta.source.clone();
                errors.push((
                    i,
                    Diagnostic::error(
                        format!("the serviceCIDR {cidr} has no free address left"),
                        at,
                    )
                    .with_hint("widen the Cluster's `spec.serviceCIDR` (a shorter prefix)"),
                ));
            }
        }
    }

    // Node ports: explicit ones first (a Service may use one number for a
    // TCP and a UDP port, as Kubernetes allows; two Services may not).
    let mut node_ports: BTreeMap<u16, (usize, usize)> = BTreeMap::new();
    for i in 0..decoded.len() {
        for p in 0..decoded[i].service.ports.len() {
            let port = &decoded[i].service.ports[p];
            let Some(number) = port.node_port else {
                continue;
            };
            match node_ports.get(&number) {
                Some(&(other, other_port)) if other != i => {
                    let path = format!("spec.ports[{p}].nodePort");
                    let at = decoded[i].service.meta.field_location(&path);
                    let other_service = &decoded[other].service;
                    let other_path = format!("spec.ports[{other_port}].nodePort");
                    let message = format!(
                        "nodePort {number} is also {}'s (port {})",
                        other_service.key(),
                        port_label(&other_service.ports[other_port])
                    );
                    let hint = format!(
                        "{} declares it at {}; give each Service its own node port, or leave `nodePort` out to have one allocated",
                        other_service.key(),
                        other_service.meta.field_location(&other_path)
                    );
                    errors.push((
                        i,
                        Diagnostic::error(message, at)
                            .with_field_path(path)
                            .with_hint(hint),
                    ));
                }
                Some(_) => {}
                None => {
                    node_ports.insert(number, (i, p));
                }
            }
        }
    }
    let mut taken_ports: BTreeSet<u16> = node_ports.keys().copied().collect();
    for (i, entry) in decoded.iter_mut().enumerate() {
        let service = &mut entry.service;
        if service.service_type != ServiceType::NodePort {
            continue;
        }
        for p in 0..service.ports.len() {
            if service.ports[p].node_port.is_some() {
                continue;
            }
            let key = node_port_key(service, p);
            match allocate_node_port(&key, &taken_ports) {
                Some(number) => {
                    taken_ports.insert(number);
                    service.ports[p].node_port = Some(number);
                }
                None => {
                    let path = format!("spec.ports[{p}]");
                    let at = service.meta.field_location(&path);
                    errors.push((i, Diagnostic::error(
                            format!(
                                "no node port is left in {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                            at,
                        )
                        .with_field_path(path)
                        .with_hint("every node port is taken: use ClusterIP Services where a node port is not needed")));
                }
            }
        }
    }

    // The selector against the workloads, and named target ports against
    // the container ports of the pods it selects.
    for (i, entry) in decoded.iter().enumerate() {
        let service = &entry.service;
        let selected: Vec<&Workload> = workloads
            .iter()
            .filter(|w| {
                w.meta.namespace == service.meta.namespace
                    && service
                        .selector
                        .iter()
                        .all(|(k, v)| w.spec.template.labels.get(k) == Some(v))
            })
            .collect();
        if selected.is_empty() {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "selector matches the pods of no workload in namespace {}",
                        service.meta.namespace
                    ),
                    service.meta.field_location("spec.selector"),
                )
                .with_object(service.key().to_string())
                .with_field_path("spec.selector")
                .with_hint("the Service has no endpoints until a Deployment, DaemonSet or StatefulSet in its namespace has pods with these labels"),
            );
            continue;
        }
        let mut problems = Vec::new();
        for (p, port) in service.ports.iter().enumerate() {
            let PortRef::Name(name) = &port.target_port else {
                continue;
            };
            let declared = selected.iter().any(|w| {
                w.spec.template.spec.all_containers().any(|c| {
                    c.ports
                        .iter()
                        .any(|cp| cp.name.as_deref() == Some(name) && cp.protocol == port.protocol)
                })
            });
            if declared {
                continue;
            }
            let checked: Vec<String> = selected.iter().map(|w| w.key().to_string()).collect();
            let path = format!("spec.ports[{p}].targetPort");
            problems.push(
                Diagnostic::error(
                    format!(
                        "targetPort `{name}` of port {} names no {:?} container port of the selected pods ({})",
                        port_label(port),
                        port.protocol,
                        super::names::listed(
                            &checked.iter().map(String::as_str).collect::<Vec<_>>(),
                            "and"
                        )
                    ),
                    service.meta.field_location(&path),
                )
                .with_field_path(path)
                .with_hint(format!(
                    "name a container port `{name}` in their pod template (`ports[].name`), or give the port's number"
                )),
            );
        }
        errors.extend(problems.into_iter().map(|problem| (i, problem)));
    }

    let mut failed = vec![false; decoded.len()];
    for (i, error) in errors {
        failed[i] = true;
        diagnostics.push(error.with_object(decoded[i].service.key().to_string()));
    }
    let mut services: Vec<Service> = decoded
        .into_iter()
        .zip(failed)
        .filter(|(_, failed)| !failed)
        .map(|(decoded, _)| decoded.service)
        .collect();
    // Once every Service has its address: a pod never moves a Service.
    super::pod_addresses::allocate(&mut services, workloads, cidr, &declared_by, diagnostics);
    services
}

/// `namespace/name`: what a Service's address is hashed from.
fn service_name(service: &Service) -> String {
    format!("{}/{}", service.meta.namespace, service.meta.name)
}

/// `namespace/name/port`: what a node port is hashed from, the port by its
/// name, or its number when it has none (a Service's only port).
fn node_port_key(service: &Service, index: usize) -> String {
    let port = &service.ports[index];
    match &port.name {
        Some(name) => format!("{}/{name}", service_name(service)),
        None => format!("{}/{}", service_name(service), port.port),
    }
}

/// A stable hash: the first four bytes of the SHA-256 of `key`.
fn stable_hash(key: &str) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The address of `cidr` for the Service named `key`: the one its hash
/// points at, or the next one free (wrapping), never reserved nor `taken`;
/// `None` when the range is full.
pub(crate) fn allocate_address(
    cidr: ServiceCidr,
    key: &str,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let size = cidr.size();
    let start = u64::from(stable_hash(key)) % size;
    let base = u64::from(u32::from(cidr.base));
    (0..size)
        .map(|step| {
            let offset = (start + step) % size;
            Ipv4Addr::from(u32::try_from(base + offset).expect("inside an IPv4 range"))
        })
        .find(|address| !cidr.is_reserved(*address) && !taken.contains(address))
}

/// The node port for the Service port `key`, the same way in 30000-32767.
pub(crate) fn allocate_node_port(key: &str, taken: &BTreeSet<u16>) -> Option<u16> {
    let (first, last) = (*NODE_PORTS.start(), *NODE_PORTS.end());
    let size = u32::from(last - first) + 1;
    let start = stable_hash(key) % size;
    (0..size)
        .map(|step| first + u16::try_from((start + step) % size).expect("within the range"))
        .find(|port| !taken.contains(port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{load, SourceFile};
    use proptest::prelude::*;

    const SMALL: ServiceCidr = ServiceCidr::new(10, 0, 0, 0, 28);

    fn service(namespace: &str, name: &str, spec: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}"
        )
    }

    const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n        ports: [{name: http, containerPort: 80}]\n";

    /// The services `texts` declare (one file each, with the web
    /// Deployment), as `name ip ports`, and the rendered diagnostics.
    fn allocated(texts: &[String]) -> (Vec<String>, Vec<String>) {
        let mut files = vec![SourceFile::new("web.yaml", WEB)];
        files.extend(
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| SourceFile::new(format!("s{i}.yaml"), text.as_str())),
        );
        let loaded = load(&files);
        let services = loaded
            .state
            .services
            .iter()
            .map(|s| {
                let ports: Vec<String> = s
                    .ports
                    .iter()
                    .map(|p| match p.node_port {
                        Some(n) => format!("{}:{n}", p.port),
                        None => p.port.to_string(),
                    })
                    .collect();
                format!("{} {} {}", s.key(), s.cluster_ip, ports.join(","))
            })
            .collect();
        let diagnostics = loaded.diagnostics.iter().map(ToString::to_string).collect();
        (services, diagnostics)
    }

    #[test]
    fn addresses_and_node_ports_are_allocated_from_the_names() {
        let texts = [
            service("default", "web", "  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n"),
            service("default", "api", "  selector: {app: web}\n  type: NodePort\n  ports:\n  - {name: http, port: 80}\n  - {name: metrics, port: 9090, nodePort: 30090}\n"),
            service("shop", "web", "  selector: {app: web}\n  clusterIP: 10.96.0.20\n  ports: [{port: 80}]\n"),
        ];
        let (services, diagnostics) = allocated(&texts);
        insta::assert_snapshot!(format!(
            "{}\n\n{}",
            services.join("\n"),
            diagnostics.join("\n\n")
        ));
        // The same names, in any order of files, give the same result.
        let reversed: Vec<String> = texts.iter().rev().cloned().collect();
        assert_eq!(allocated(&reversed).0, services);
    }

    /// Review of issue 13: an explicit address on the one another
    /// Service's name gives moves that Service, with a warning.
    #[test]
    fn an_explicit_address_on_anothers_allocated_address_is_a_warning() {
        let web = allocate_address(ServiceCidr::DEFAULT, "default/web", &BTreeSet::new()).unwrap();
        let texts = [
            service(
                "default",
                "web",
                "  selector: {app: web}\n  ports: [{port: 80}]\n",
            ),
            service(
                "default",
                "other",
                &format!("  selector: {{app: web}}\n  clusterIP: {web}\n  ports: [{{port: 80}}]\n"),
            ),
        ];
        let (services, diagnostics) = allocated(&texts);
        assert!(
            services.contains(&format!("Service default/other {web} 80")),
            "{services:?}"
        );
        assert!(!services
            .iter()
            .any(|s| s.starts_with("Service default/web ") && s.contains(&format!(" {web} "))));
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert!(
            diagnostics[0].starts_with("warning: Service default/web gets address ")
                && diagnostics[0].contains(&format!(
                    "not {web} (the one its name gives), which Service default/other declares"
                )),
            "{diagnostics:?}"
        );
    }

    #[test]
    fn allocation_is_deterministic_and_skips_reserved_and_taken_addresses() {
        let none = BTreeSet::new();
        let first = allocate_address(SMALL, "default/web", &none).unwrap();
        assert_eq!(allocate_address(SMALL, "default/web", &none), Some(first));
        // Every address of a /28 but the network, DNS and broadcast ones,
        // then nothing.
        let mut taken = BTreeSet::new();
        while let Some(address) = allocate_address(SMALL, "default/web", &taken) {
            assert!(SMALL.contains(address) && !SMALL.is_reserved(address));
            assert!(taken.insert(address));
        }
        assert_eq!(taken.len(), 13);
        for reserved in [
            Ipv4Addr::new(10, 0, 0, 0),
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 0, 15),
        ] {
            assert!(!taken.contains(&reserved), "{reserved}");
        }
        // A taken address moves the next Service on by one (linear probing).
        let taken = BTreeSet::from([first]);
        let next = allocate_address(SMALL, "default/web", &taken).unwrap();
        assert_ne!(next, first);
        let ports = BTreeSet::new();
        let port = allocate_node_port("default/web/http", &ports).unwrap();
        assert!(NODE_PORTS.contains(&port));
        assert_eq!(allocate_node_port("default/web/http", &ports), Some(port));
    }

    #[test]
    fn a_name_collision_resolves_in_sorted_order() {
        // Two names whose hashes point at the same address of a /24.
        let cidr = ServiceCidr::new(10, 0, 0, 0, 24);
        let none = BTreeSet::new();
        let first = allocate_address(cidr, "default/s0", &none).unwrap();
        let other = (1..10_000)
            .map(|i| format!("s{i}"))
            .find(|name| allocate_address(cidr, &format!("default/{name}"), &none) == Some(first))
            .expect("a colliding name among 10,000");
        let cluster = "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {serviceCIDR: 10.0.0.0/24}\n".to_string();
        let spec = "  selector: {app: web}\n  ports: [{port: 80}]\n";
        let texts = [
            cluster.clone(),
            service("default", &other, spec),
            service("default", "s0", spec),
        ];
        let (services, diagnostics) = allocated(&texts);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let (a, b) = (&services[0], &services[1]);
        // Sorted by name: `s0` and `s<n>` compare as strings.
        let (winner, loser) = if "s0" < other.as_str() {
            (a, b)
        } else {
            (b, a)
        };
        assert!(winner.contains(&format!(" {first} ")), "{services:?}");
        assert!(!loser.contains(&format!(" {first} ")), "{services:?}");
        // The file order does not matter.
        let swapped = [cluster, texts[2].clone(), texts[1].clone()];
        assert_eq!(allocated(&swapped).0, services);
    }

    #[test]
    fn every_field_decodes_with_kubernetes_defaults() {
        let texts = [
            service("default", "defaults", "  selector: {app: web}\n  ports: [{port: 80}]\n"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: everything\n  annotations:\n    flotilla.dev/load-balancer: least-connections\n    example.com/owner: team-a\nspec:\n  type: NodePort\n  selector: {app: web}\n  clusterIP: \"\"\n  clusterIPs: [\"\"]\n  ipFamilies: [IPv4]\n  ipFamilyPolicy: PreferDualStack\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n  externalTrafficPolicy: Local\n  internalTrafficPolicy: Cluster\n  ports:\n  - {name: web, port: 80, targetPort: http, appProtocol: tcp}\n  - {name: dns, port: 53, targetPort: 5353, protocol: TCP, nodePort: 0}\n  - {name: admin, port: 81, nodePort: 31081}\n".to_string(),
            "apiVersion: v1\nkind: Service\nmetadata: {name: http}\nspec:\n  selector: {app: web}\n  sessionAffinity: ClientIP\n  ports: [{port: 80, targetPort: http, appProtocol: http}]\n".to_string(),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: proxied\n  annotations: {flotilla.dev/proxy-protocol: v2}\nspec:\n  selector: {app: web}\n  ports: [{port: 5432}]\n".to_string(),
        ];
        let mut files = vec![SourceFile::new("web.yaml", WEB)];
        files.extend(
            texts
                .iter()
                .enumerate()
                .map(|(i, text)| SourceFile::new(format!("s{i}.yaml"), text.as_str())),
        );
        let loaded = load(&files);
        assert!(loaded.diagnostics.is_empty(), "{:#?}", loaded.diagnostics);
        insta::assert_yaml_snapshot!(loaded.state.services);
    }

    #[test]
    fn service_cidr_errors() {
        let mut rendered = Vec::new();
        for cidr in [
            "10.96.0.1/12",
            "10.96.0.0/7",
            "10.96.0.0/29",
            "10.96.0.0",
            "10.96.0.0/x",
            "fd00::/108",
            "127.0.0.0/8",
            "0.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/8",
            "169.0.0.0/8",
        ] {
            let text = format!(
                "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {{name: c}}\nspec: {{serviceCIDR: \"{cidr}\"}}\n"
            );
            let loaded = load(&[SourceFile::new("cluster.yaml", text)]);
            assert!(loaded.has_errors(), "{cidr}");
            rendered.extend(loaded.diagnostics.iter().map(ToString::to_string));
        }
        insta::assert_snapshot!(rendered.join("\n\n"));
        let text = "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {serviceCIDR: 192.168.240.0/20}\n";
        let loaded = load(&[SourceFile::new("cluster.yaml", text)]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(
            loaded.state.cluster.service_cidr,
            ServiceCidr::new(192, 168, 240, 0, 20)
        );
    }

    proptest! {
        #[test]
        fn allocation_stays_inside_the_range_and_never_repeats(
            octets in (1u8..=223, any::<u8>(), any::<u8>()),
            prefix in 20u8..=28,
            names in proptest::collection::vec("[a-z]{1,8}", 1..40),
        ) {
            let mask = u32::MAX << (32 - u32::from(prefix));
            let base = Ipv4Addr::from(u32::from(Ipv4Addr::new(octets.0, octets.1, octets.2, 0)) & mask);
            let cidr = ServiceCidr { base, prefix };
            let mut taken = BTreeSet::new();
            for name in &names {
                match allocate_address(cidr, name, &taken) {
                    Some(address) => {
                        prop_assert!(cidr.contains(address), "{address} outside {cidr}");
                        prop_assert!(!cidr.is_reserved(address), "{address} reserved in {cidr}");
                        prop_assert!(taken.insert(address), "{address} given twice");
                    }
                    // Full only when every usable address is taken.
                    None => prop_assert_eq!(taken.len() as u64, cidr.size() - 3),
                }
            }
        }
    }
}
