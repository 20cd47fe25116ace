//! The stable virtual addresses of StatefulSet pods, allocated at load
//! once every Service has its own: what gives `web-0.web` an address that
//! any container of the cluster can reach (flotilla has no overlay network,
//! so a pod's own address is reachable from its node only).
//!
//! A StatefulSet's pods are named under the Service its `serviceName`
//! names when that Service exists in its namespace and selects its pods
//! (as Kubernetes publishes `hostname.subdomain` records only for the
//! endpoints of the governing Service). Each pod of ordinal `o` gets an
//! address of the Cluster's `serviceCIDR` the way a Service does: the slot
//! a hash of `NAMESPACE/SET/o` points at, or the next free one, never a
//! reserved address, a Service's, or another pod's. Services are allocated
//! first, so a pod never moves a Service (whose address pods keep in their
//! variables); pods go in the workloads' key order, then by ordinal. A
//! pod's address depends only on its own name and on the few names whose
//! hash lands on the same slot: it stays put across commits, scale-downs
//! and scale-ups, and does not depend on `serviceName` (renaming the
//! Service renames the pod, not its address).

use std::collections::{BTreeMap, BTreeSet};

use core::net::Ipv4Addr;

use super::diagnostic::Diagnostic;
use super::model::{PodSet, Service, ServiceCidr, StatefulPodAddress, Workload};
use super::names::pod_hostname;
use super::services::allocate_address;

/// Fills every Service's [`Service::pod_addresses`]. `services` are the
/// valid Services, sorted by key, with their addresses; `workloads` the
/// valid workloads, sorted by key; `declared_by` names the Service whose
/// `spec.clusterIP` holds each explicit address (for the warning when one
/// takes the address a pod's name gives). A set whose pods cannot all get
/// an address (the range is full) is an error.
pub(super) fn allocate(
    services: &mut [Service],
    workloads: &[Workload],
    cidr: ServiceCidr,
    declared_by: &BTreeMap<Ipv4Addr, String>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut taken: BTreeSet<Ipv4Addr> = services.iter().map(|s| s.cluster_ip).collect();
    for workload in workloads {
        let (Some(stateful), PodSet::Ordinals { replicas, start }) =
            (&workload.spec.stateful, workload.spec.pods)
        else {
            continue;
        };
        // No `serviceName`: the pods have no DNS names, as in Kubernetes.
        if stateful.service_name.is_empty() {
            continue;
        }
        let namespace = &workload.meta.namespace;
        let at = workload.meta.field_location("spec.serviceName");
        let Some(service) = services
            .iter_mut()
            .find(|s| &s.meta.namespace == namespace && s.meta.name == stateful.service_name)
        else {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "serviceName `{}` names no Service in namespace {namespace}: the pods get no DNS names (`{}.{}`)",
                        stateful.service_name,
                        pod_hostname(&workload.meta.name, start),
                        stateful.service_name
                    ),
                    at,
                )
                .with_object(workload.key().to_string())
                .with_field_path("spec.serviceName")
                .with_hint(format!(
                    "declare a Service `{}` that selects the pods (an ordinary one: flotilla gives each pod a virtual address under it, and refuses headless Services)",
                    stateful.service_name
                )),
            );
            continue;
        };
        let selects = service
            .selector
            .iter()
            .all(|(k, v)| workload.spec.template.labels.get(k) == Some(v));
        if !selects {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "{} (the serviceName) does not select the pods: they get no DNS names",
                        service.key()
                    ),
                    at,
                )
                .with_object(workload.key().to_string())
                .with_field_path("spec.serviceName")
                .with_hint("give the Service a selector that the pod template's labels include"),
            );
            continue;
        }
        let mut unallocated = Vec::new();
        for ordinal in (0..replicas).map(|i| start.saturating_add(i)) {
            let key = pod_key(namespace, &workload.meta.name, ordinal);
            let hostname = pod_hostname(&workload.meta.name, ordinal);
            let Some(address) = allocate_address(cidr, &key, &taken) else {
                unallocated.push(hostname);
                continue;
            };
            taken.insert(address);
            let preferred = allocate_address(cidr, &key, &BTreeSet::new());
            if let Some((preferred, holder)) = preferred
                .filter(|p| *p != address)
                .and_then(|p| declared_by.get(&p).map(|holder| (p, holder)))
            {
                diagnostics.push(
                    Diagnostic::warning(
                        format!(
                            "pod {namespace}/{hostname} gets address {address}, not {preferred} (the one its name gives), which {holder} declares in spec.clusterIP"
                        ),
                        at.clone(),
                    )
                    .with_object(workload.key().to_string())
                    .with_field_path("spec.serviceName")
                    .with_hint(format!(
                        "clients that looked `{hostname}.{}` up before keep the old address for a few seconds (the names' TTL); choose another spec.clusterIP for {holder} to keep it",
                        stateful.service_name
                    )),
                );
            }
            service.pod_addresses.push(StatefulPodAddress {
                set: workload.meta.name.clone(),
                ordinal,
                hostname,
                address,
            });
        }
        if let (Some(first), Some(last)) = (unallocated.first(), unallocated.last()) {
            let pods = if first == last {
                format!("pod {namespace}/{first} gets")
            } else {
                format!(
                    "{} pods ({namespace}/{first} to {last}) get",
                    unallocated.len()
                )
            };
            diagnostics.push(
                Diagnostic::error(
                    format!(
                        "{pods} no virtual address: each of the {} usable addresses of the serviceCIDR {cidr} is a Service's or another StatefulSet pod's",
                        cidr.size() - 3
                    ),
                    workload.meta.field_location("spec.replicas"),
                )
                .with_object(workload.key().to_string())
                .with_field_path("spec.replicas")
                .with_hint(
                    "widen the Cluster's `spec.serviceCIDR` (a shorter prefix), or declare fewer replicas",
                ),
            );
        }
    }
    for service in services {
        service
            .pod_addresses
            .sort_by(|a, b| (&a.set, a.ordinal).cmp(&(&b.set, b.ordinal)));
    }
}

/// `namespace/set/ordinal`: what a pod's address is hashed from. A
/// Service's key (`namespace/name`) never has a second slash, so no
/// Service's name hashes like a pod's.
fn pod_key(namespace: &str, set: &str, ordinal: u32) -> String {
    format!("{namespace}/{set}/{ordinal}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{
        ClaimRetention, DesiredState, Kind, PodManagement, ServiceCidr, StatefulSpec,
    };
    use crate::manifest::{load, SourceFile};

    /// A Deployment and Services loaded from YAML; `sets` are
    /// `(name, service_name, replicas, start, app label)` StatefulSets
    /// made from the Deployment in code (their decoder is not this
    /// module's), then the addresses allocated as `load` does.
    fn state(
        cidr: &str,
        services: &str,
        sets: &[(&str, &str, u32, u32, &str)],
    ) -> (DesiredState, Vec<String>) {
        let yaml = format!(
            "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {{name: c}}\nspec: {{serviceCIDR: {cidr}}}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: template}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: nginx:1.27, ports: [{{name: http, containerPort: 80}}]}}]\n---\n{services}"
        );
        let loaded = load(&[SourceFile::new("all.yaml", yaml)]);
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        let mut desired = loaded.state;
        let template = desired.workloads.pop().expect("the Deployment");
        for (name, service_name, replicas, start, app) in sets {
            let mut set = template.clone();
            set.kind = Kind::StatefulSet;
            set.meta.name = name.to_string();
            set.spec.pods = PodSet::Ordinals {
                replicas: *replicas,
                start: *start,
            };
            set.spec
                .template
                .labels
                .insert("app".to_string(), app.to_string());
            set.spec.stateful = Some(StatefulSpec {
                service_name: service_name.to_string(),
                pod_management: PodManagement::OrderedReady,
                partition: 0,
                claim_templates: Vec::new(),
                when_deleted: ClaimRetention::Retain,
                when_scaled: ClaimRetention::Retain,
            });
            desired.workloads.push(set);
        }
        desired
            .workloads
            .sort_by(|a, b| a.key_parts().cmp(&b.key_parts()));
        let mut diagnostics = Vec::new();
        let declared_by = desired
            .services
            .iter()
            .filter(|s| s.meta.annotations.contains_key("explicit"))
            .map(|s| (s.cluster_ip, s.key().to_string()))
            .collect();
        allocate(
            &mut desired.services,
            &desired.workloads,
            desired.cluster.service_cidr,
            &declared_by,
            &mut diagnostics,
        );
        (
            desired,
            diagnostics.iter().map(ToString::to_string).collect(),
        )
    }

    const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n";

    /// `hostname address` of every pod the Services name.
    fn names(desired: &DesiredState) -> Vec<String> {
        desired
            .services
            .iter()
            .flat_map(|s| {
                s.pod_addresses
                    .iter()
                    .map(move |p| format!("{}.{} {}", p.hostname, s.meta.name, p.address))
            })
            .collect()
    }

    #[test]
    fn each_ordinal_gets_its_own_address_apart_from_the_services() {
        let (desired, diagnostics) = state("10.96.0.0/12", WEB, &[("web", "web", 3, 0, "web")]);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let web = &desired.services[0];
        let pods: Vec<(&str, u32, &str)> = web
            .pod_addresses
            .iter()
            .map(|p| (p.set.as_str(), p.ordinal, p.hostname.as_str()))
            .collect();
        assert_eq!(
            pods,
            [
                ("web", 0, "web-0"),
                ("web", 1, "web-1"),
                ("web", 2, "web-2")
            ]
        );
        let mut addresses: BTreeSet<Ipv4Addr> =
            web.pod_addresses.iter().map(|p| p.address).collect();
        assert!(
            addresses.insert(web.cluster_ip),
            "a pod has the Service's address"
        );
        assert_eq!(addresses.len(), 4);
        for address in &addresses {
            assert!(ServiceCidr::DEFAULT.contains(*address));
            assert!(!ServiceCidr::DEFAULT.is_reserved(*address));
        }
        // The address is the name's hash, whatever else is declared.
        assert_eq!(
            Some(web.pod_addresses[1].address),
            allocate_address(ServiceCidr::DEFAULT, "default/web/1", &BTreeSet::new())
        );
    }

    #[test]
    fn a_pod_keeps_its_address_when_other_objects_and_its_set_s_size_change() {
        let (before, _) = state("10.96.0.0/12", WEB, &[("web", "web", 2, 0, "web")]);
        let more = format!(
            "{WEB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: db}}\nspec:\n  selector: {{app: db}}\n  ports: [{{port: 5432}}]\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: aaa}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 1}}]\n"
        );
        let (after, _) = state(
            "10.96.0.0/12",
            &more,
            &[("db", "db", 2, 0, "db"), ("web", "web", 5, 0, "web")],
        );
        let kept: Vec<String> = names(&after)
            .into_iter()
            .filter(|n| n.starts_with("web-0.") || n.starts_with("web-1."))
            .collect();
        assert_eq!(kept, names(&before));
        // Scaled down and back, and with the ordinals starting elsewhere:
        // each ordinal's own address.
        let (scaled, _) = state("10.96.0.0/12", WEB, &[("web", "web", 1, 1, "web")]);
        assert_eq!(names(&scaled), [names(&before)[1].clone()]);
    }

    #[test]
    fn without_its_service_or_its_selection_a_set_gets_no_names_and_a_warning() {
        let (desired, diagnostics) = state(
            "10.96.0.0/12",
            WEB,
            &[
                ("cache", "nothere", 1, 0, "web"),
                ("db", "web", 1, 0, "db"),
                ("quiet", "", 1, 0, "web"),
            ],
        );
        assert!(names(&desired).is_empty(), "{:?}", names(&desired));
        insta::assert_snapshot!(diagnostics.join("\n\n"));
    }

    #[test]
    fn two_sets_under_one_service_and_a_service_per_namespace() {
        let other = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
        let (desired, diagnostics) = state(
            "10.96.0.0/12",
            &format!("{WEB}{other}"),
            &[("a", "web", 1, 0, "web"), ("b", "web", 2, 3, "web")],
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        // The sets are in `default`: the Service of `other` names none.
        let hostnames: Vec<String> = names(&desired)
            .iter()
            .map(|n| n.split(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(hostnames, ["a-0.web", "b-3.web", "b-4.web"]);
        assert!(desired.services[1].pod_addresses.is_empty());
    }

    #[test]
    fn a_full_range_is_one_error_naming_the_pods_left_without() {
        // A /28 holds 13 usable addresses: one Service and 12 pods.
        let (desired, diagnostics) = state("10.0.0.0/28", WEB, &[("web", "web", 15, 0, "web")]);
        assert_eq!(names(&desired).len(), 12);
        insta::assert_snapshot!(diagnostics.join("\n\n"));
        let (_, one) = state("10.0.0.0/28", WEB, &[("web", "web", 13, 0, "web")]);
        assert_eq!(one.len(), 1);
        assert!(
            one[0].starts_with("error: pod default/web-12 gets no virtual address"),
            "{one:?}"
        );
    }

    #[test]
    fn an_explicit_cluster_ip_on_a_pod_s_address_moves_the_pod_with_a_warning() {
        let preferred =
            allocate_address(ServiceCidr::DEFAULT, "default/web/0", &BTreeSet::new()).unwrap();
        let pinned = format!(
            "{WEB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: pinned, annotations: {{explicit: \"yes\"}}}}\nspec:\n  selector: {{app: web}}\n  clusterIP: {preferred}\n  ports: [{{port: 80}}]\n"
        );
        let (desired, diagnostics) = state("10.96.0.0/12", &pinned, &[("web", "web", 1, 0, "web")]);
        let pod = &desired.services[1].pod_addresses[0];
        assert_ne!(pod.address, preferred);
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert!(
            diagnostics[0].starts_with(&format!(
                "warning: pod default/web-0 gets address {}, not {preferred} (the one its name gives), which Service default/pinned declares in spec.clusterIP",
                pod.address
            )),
            "{diagnostics:?}"
        );
    }
}
