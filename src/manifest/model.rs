//! The typed desired state: what a commit declares, after validation.
//!
//! Every type here is plain data with Kubernetes' defaults already applied,
//! so the planner never has to ask "was this field set?". Source positions
//! live only in [`ObjectMeta::source`], never inside a pod template, so that
//! moving a manifest between files does not change its template hash.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::policy::PortRanges;
use super::quantity::{Bytes, CpuMillis};

/// Where something was declared: a file of the commit and a 1-based position.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceLocation {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The kinds flotilla knows, supported or not yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Kind {
    Cluster,
    Node,
    Deployment,
    Service,
    DaemonSet,
    StatefulSet,
    Job,
    CronJob,
    ConfigMap,
    Secret,
    Namespace,
    Pod,
    Ingress,
    PersistentVolumeClaim,
}

/// One row of the kind table: everything the rest of the code asks of a kind.
struct KindInfo {
    kind: Kind,
    name: &'static str,
    /// The one `apiVersion` flotilla accepts for it.
    api_version: &'static str,
    namespaced: bool,
    /// flotilla decodes and deploys it (the others are named "not supported yet").
    supported: bool,
    /// kubectl's names for it (singular, plural, short), lowercase.
    cli_names: &'static [&'static str],
    /// How kubectl names it in a sentence: `deployment "web"`.
    phrase: &'static str,
    /// It runs pods ([`Workload`]).
    runs_pods: bool,
}

/// The one table of kinds: adding a kind is a row here plus its module.
#[rustfmt::skip]
const KINDS: [KindInfo; 14] = [
    KindInfo { kind: Kind::Cluster, name: "Cluster", api_version: "flotilla.dev/v1", namespaced: false, supported: true, cli_names: &["cluster", "clusters"], phrase: "cluster", runs_pods: false },
    KindInfo { kind: Kind::Node, name: "Node", api_version: "flotilla.dev/v1", namespaced: false, supported: true, cli_names: &["node", "nodes", "no"], phrase: "node", runs_pods: false },
    KindInfo { kind: Kind::Deployment, name: "Deployment", api_version: "apps/v1", namespaced: true, supported: true, cli_names: &["deployment", "deployments", "deploy"], phrase: "deployment", runs_pods: true },
    KindInfo { kind: Kind::Service, name: "Service", api_version: "v1", namespaced: true, supported: true, cli_names: &["service", "services", "svc"], phrase: "service", runs_pods: false },
    KindInfo { kind: Kind::DaemonSet, name: "DaemonSet", api_version: "apps/v1", namespaced: true, supported: true, cli_names: &["daemonset", "daemonsets", "ds"], phrase: "daemon set", runs_pods: true },
    KindInfo { kind: Kind::StatefulSet, name: "StatefulSet", api_version: "apps/v1", namespaced: true, supported: true, cli_names: &["statefulset", "statefulsets", "sts"], phrase: "stateful set", runs_pods: true },
    KindInfo { kind: Kind::Job, name: "Job", api_version: "batch/v1", namespaced: true, supported: true, cli_names: &["job", "jobs"], phrase: "job", runs_pods: true },
    KindInfo { kind: Kind::CronJob, name: "CronJob", api_version: "batch/v1", namespaced: true, supported: false, cli_names: &["cronjob", "cronjobs", "cj"], phrase: "cron job", runs_pods: true },
    KindInfo { kind: Kind::ConfigMap, name: "ConfigMap", api_version: "v1", namespaced: true, supported: true, cli_names: &["configmap", "configmaps", "cm"], phrase: "config map", runs_pods: false },
    KindInfo { kind: Kind::Secret, name: "Secret", api_version: "v1", namespaced: true, supported: true, cli_names: &["secret", "secrets"], phrase: "secret", runs_pods: false },
    KindInfo { kind: Kind::Namespace, name: "Namespace", api_version: "v1", namespaced: false, supported: false, cli_names: &["namespace", "namespaces", "ns"], phrase: "namespace", runs_pods: false },
    KindInfo { kind: Kind::Pod, name: "Pod", api_version: "v1", namespaced: true, supported: false, cli_names: &["pod", "pods", "po"], phrase: "pod", runs_pods: true },
    KindInfo { kind: Kind::Ingress, name: "Ingress", api_version: "networking.k8s.io/v1", namespaced: true, supported: true, cli_names: &["ingress", "ingresses", "ing"], phrase: "ingress", runs_pods: false },
    KindInfo { kind: Kind::PersistentVolumeClaim, name: "PersistentVolumeClaim", api_version: "v1", namespaced: true, supported: true, cli_names: &["persistentvolumeclaim", "persistentvolumeclaims", "pvc"], phrase: "persistent volume claim", runs_pods: false },
];

impl Kind {
    /// Every kind, in the table's order.
    pub const ALL: [Kind; KINDS.len()] = {
        let mut all = [Kind::Cluster; KINDS.len()];
        let mut i = 0;
        while i < KINDS.len() {
            all[i] = KINDS[i].kind;
            i += 1;
        }
        all
    };

    fn info(self) -> &'static KindInfo {
        // The table lists the kinds in declaration order (a unit test checks).
        let info = &KINDS[self as usize];
        debug_assert_eq!(info.kind, self);
        info
    }

    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The one `apiVersion` flotilla accepts for this kind.
    pub fn api_version(self) -> &'static str {
        self.info().api_version
    }

    pub fn parse(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    /// Cluster-scoped kinds have no namespace.
    pub fn is_namespaced(self) -> bool {
        self.info().namespaced
    }

    /// Whether flotilla decodes and deploys objects of this kind.
    pub fn is_supported(self) -> bool {
        self.info().supported
    }

    /// kubectl's names for the kind (singular, plural, short), lowercase.
    pub fn cli_names(self) -> &'static [&'static str] {
        self.info().cli_names
    }

    /// How kubectl names the kind in a sentence (`daemon set "agent"`).
    pub fn phrase(self) -> &'static str {
        self.info().phrase
    }

    /// The supported kinds that run pods, in table order.
    pub fn workloads() -> impl Iterator<Item = Kind> {
        Kind::supported().filter(|k| k.info().runs_pods)
    }

    /// `deployment, daemonset and statefulset`: the workload kinds, for messages.
    pub fn workload_list() -> String {
        let names: Vec<&str> = Kind::workloads().map(|k| k.cli_names()[0]).collect();
        super::names::listed(&names, "and")
    }

    /// The kinds flotilla deploys, in table order.
    pub fn supported() -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(|k| k.is_supported())
    }

    /// `Cluster, Node, Deployment, Service and DaemonSet`: for messages.
    pub fn supported_list() -> String {
        let names: Vec<&str> = Kind::supported().map(Kind::as_str).collect();
        super::names::listed(&names, "and")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies one object: kind, namespace (empty for cluster-scoped kinds), name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    /// `Deployment default/web`, or `Node n1` for cluster-scoped kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    pub name: String,
    /// `default` when not given; empty for cluster-scoped kinds.
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Where the object's document starts.
    #[serde(skip)]
    pub source: SourceLocation,
    /// Where the fields the policy checks are declared (`spec.transport`,
    /// `...ports[0].hostPort`), by field path, so that a policy error
    /// points at the field.
    #[serde(skip)]
    pub field_sources: BTreeMap<String, SourceLocation>,
}

impl ObjectMeta {
    /// Where the field at `path` is declared; the document's start when not
    /// recorded.
    pub fn field_location(&self, path: &str) -> SourceLocation {
        self.field_sources.get(path).unwrap_or(&self.source).clone()
    }
}

/// Everything one commit declares, validated.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DesiredState {
    /// From the one optional `Cluster` object; defaults otherwise.
    pub cluster: ClusterSettings,
    /// Sorted by name.
    pub nodes: Vec<Node>,
    /// Every object that runs pods, whatever its kind; sorted by key.
    pub workloads: Vec<Workload>,
    /// Sorted by key; every virtual address and node port allocated.
    pub services: Vec<Service>,
    /// Sorted by key: the Ingresses of flotilla's class (others are left
    /// out with a warning), every backend naming a port of a declared Service.
    pub ingresses: Vec<Ingress>,
    /// Sorted by key.
    pub config_maps: Vec<ConfigMap>,
    /// Sorted by key. Sealed values are opened when `load` was given an
    /// identity that can read them; else they stay [`SecretValue::Sealed`]
    /// and [`DesiredState::unread_secrets`] names their Secrets.
    pub secrets: Vec<Secret>,
    /// Sorted by key.
    pub claims: Vec<PersistentVolumeClaim>,
}

impl DesiredState {
    /// The PersistentVolumeClaim named `namespace/name`, if it is declared.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<&PersistentVolumeClaim> {
        self.claims
            .binary_search_by(|c| {
                (c.meta.namespace.as_str(), c.meta.name.as_str()).cmp(&(namespace, name))
            })
            .ok()
            .map(|i| &self.claims[i])
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.meta.name == name)
    }

    /// The workload `key` names, if it is declared.
    pub fn workload(&self, key: &ObjectKey) -> Option<&Workload> {
        self.workload_named(key.kind, &key.namespace, &key.name)
    }

    /// The workload of `kind` named `namespace/name`, if it is declared.
    pub fn workload_named(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Workload> {
        self.workloads
            .binary_search_by(|w| {
                (w.kind, w.meta.namespace.as_str(), w.meta.name.as_str())
                    .cmp(&(kind, namespace, name))
            })
            .ok()
            .map(|i| &self.workloads[i])
    }

    /// The ConfigMap named `namespace/name`, if it is declared.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .binary_search_by(|c| {
                (c.meta.namespace.as_str(), c.meta.name.as_str()).cmp(&(namespace, name))
            })
            .ok()
            .map(|i| &self.config_maps[i])
    }

    /// The Secret named `namespace/name`, if it is declared.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .binary_search_by(|s| {
                (s.meta.namespace.as_str(), s.meta.name.as_str()).cmp(&(namespace, name))
            })
            .ok()
            .map(|i| &self.secrets[i])
    }

    /// The keys of `source` in `namespace`, with their values (a Secret's
    /// as they are: opened or still sealed); `None` when it is not declared.
    pub fn config_source(
        &self,
        namespace: &str,
        source: &ConfigSource,
    ) -> Option<BTreeMap<&str, ConfigValue<'_>>> {
        match source {
            ConfigSource::ConfigMap(name) => self.config_map(namespace, name).map(|c| {
                c.data
                    .iter()
                    .map(|(k, v)| (k.as_str(), ConfigValue::Plain(v)))
                    .collect()
            }),
            ConfigSource::Secret(name) => self.secret(namespace, name).map(|s| {
                s.data
                    .iter()
                    .map(|(k, v)| (k.as_str(), ConfigValue::Secret(v)))
                    .collect()
            }),
        }
    }

    /// The value of `key` in `source` (in `namespace`), when both are declared.
    pub fn config_value(
        &self,
        namespace: &str,
        source: &ConfigSource,
        key: &str,
    ) -> Option<ConfigValue<'_>> {
        match source {
            ConfigSource::ConfigMap(name) => self
                .config_map(namespace, name)?
                .data
                .get(key)
                .map(|v| ConfigValue::Plain(v)),
            ConfigSource::Secret(name) => self
                .secret(namespace, name)?
                .data
                .get(key)
                .map(ConfigValue::Secret),
        }
    }

    /// Opens every sealed value of every Secret with `unseal`; a value that
    /// cannot be opened stays sealed and is returned with its Secret, key
    /// and the reason. Revisions do not change (they depend on values'
    /// versions, see [`SealedText`]).
    pub fn open_secrets(&mut self, unseal: &dyn Unseal) -> Vec<(ObjectKey, String, String)> {
        let mut failures = Vec::new();
        for secret in &mut self.secrets {
            let key = secret.key();
            for (name, value) in &mut secret.data {
                if let SecretValue::Sealed(sealed) = value {
                    match unseal.unseal(sealed) {
                        Ok(opened) => *value = SecretValue::Opened(opened),
                        Err(reason) => failures.push((key.clone(), name.clone(), reason)),
                    }
                }
            }
        }
        failures
    }

    /// The Service named `namespace/name`, if it is declared.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .binary_search_by(|s| {
                (s.meta.namespace.as_str(), s.meta.name.as_str()).cmp(&(namespace, name))
            })
            .ok()
            .map(|i| &self.services[i])
    }
}

// ---------------------------------------------------------------- Cluster

/// Cluster-wide settings: `kind: Cluster` (`flotilla.dev/v1`), at most one
/// per repository, any name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSettings {
    /// `spec.scoringStrategy`: `LeastAllocated` (spread, the default) or
    /// `MostAllocated` (bin packing).
    pub scoring_strategy: ScoringStrategy,
    /// `spec.nodeGracePeriodSeconds`, 40 by default: how long a node may be
    /// unreachable before its replicas are placed elsewhere.
    pub node_grace_period_seconds: u32,
    /// `spec.resyncSeconds`, 30 by default: the leader's periodic reconcile.
    pub resync_seconds: u32,
    /// `spec.policy`: the repository's own limits on what its objects ask
    /// of the hosts (docs/security.md).
    #[serde(skip_serializing_if = "ClusterPolicy::is_unset")]
    pub policy: ClusterPolicy,
    /// `spec.serviceCIDR`, `10.96.0.0/12` by default (Kubernetes'): the
    /// Services' virtual addresses. Every node routes the range to itself,
    /// so it must not overlap a network the nodes or containers use.
    pub service_cidr: ServiceCidr,
    /// `spec.secrets.recipients`: the age recipients (`age1...`) every
    /// Secret value is sealed for: the leader's identity, and whoever else
    /// may read the values (docs/secrets.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_recipients: Vec<String>,
}

/// An IPv4 range of virtual addresses: `base/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceCidr {
    pub base: core::net::Ipv4Addr,
    pub prefix: u8,
}

impl ServiceCidr {
    /// Kubernetes' default Service range.
    pub const DEFAULT: ServiceCidr = ServiceCidr::new(10, 96, 0, 0, 12);

    pub const fn new(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> ServiceCidr {
        ServiceCidr {
            base: core::net::Ipv4Addr::new(a, b, c, d),
            prefix,
        }
    }

    /// The network mask: the prefix's bits set.
    pub fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// How many addresses the range holds, its network and broadcast
    /// addresses included.
    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The last address of the range.
    pub fn broadcast_address(self) -> core::net::Ipv4Addr {
        core::net::Ipv4Addr::from(u32::from(self.base) | !self.mask())
    }

    /// Addresses no Service may have: the network address, the proxies'
    /// DNS server and the broadcast address.
    pub fn is_reserved(self, address: core::net::Ipv4Addr) -> bool {
        address == self.base || address == self.dns_address() || address == self.broadcast_address()
    }

    /// The proxies' DNS server: the tenth address, as kubeadm gives kube-dns.
    pub fn dns_address(self) -> core::net::Ipv4Addr {
        core::net::Ipv4Addr::from(u32::from(self.base) + 10)
    }

    pub fn contains(self, address: core::net::Ipv4Addr) -> bool {
        u32::from(address) & self.mask() == u32::from(self.base) & self.mask()
    }
}

impl fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            scoring_strategy: ScoringStrategy::LeastAllocated,
            node_grace_period_seconds: 40,
            resync_seconds: 30,
            policy: ClusterPolicy::default(),
            service_cidr: ServiceCidr::DEFAULT,
            secret_recipients: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterPolicy {
    /// `spec.policy.hostPorts`: the host ports a pod may publish, on top of
    /// what the leader's operator allows; `None` adds no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ports: Option<PortRanges>,
    /// Where `hostPorts` is declared, for errors.
    #[serde(skip)]
    pub host_ports_source: Option<SourceLocation>,
    /// `spec.policy.allowedHostPaths`: the only host directories a pod's
    /// `hostPath` volume may mount (PodSecurityPolicy's form). Empty, the
    /// default: no `hostPath` volume at all (a host mount is a way out of
    /// the container).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_host_paths: Vec<AllowedHostPath>,
}

impl ClusterPolicy {
    fn is_unset(&self) -> bool {
        self.host_ports.is_none() && self.allowed_host_paths.is_empty()
    }
}

/// One entry of `spec.policy.allowedHostPaths`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedHostPath {
    /// `pathPrefix`: absolute; allows itself and what is below it, by whole
    /// path components (`/srv/data` allows `/srv/data/x`, not `/srv/database`).
    pub path_prefix: String,
    /// `readOnly`: the paths under the prefix may only be mounted read-only.
    pub read_only: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ScoringStrategy {
    #[default]
    LeastAllocated,
    MostAllocated,
}

// ---------------------------------------------------------------- Service

/// `kind: Service` (`v1`): a stable address and name for the ready pods its
/// selector matches, served by the proxy on every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub meta: ObjectMeta,
    /// `spec.selector`: the pods (of any workload in the namespace) whose
    /// labels include all of these.
    pub selector: BTreeMap<String, String>,
    pub service_type: ServiceType,
    /// `spec.clusterIP` when given, else allocated from the Cluster's
    /// `serviceCIDR` (deterministically, from the Service's name).
    pub cluster_ip: core::net::Ipv4Addr,
    pub ports: Vec<ServicePort>,
    pub session_affinity: SessionAffinity,
    /// `spec.externalTrafficPolicy: Local`: a node port serves only the
    /// endpoints on the node it was reached on (and keeps the client's
    /// address); `Cluster` (the default) serves every endpoint.
    pub external_traffic_local: bool,
    /// The annotation `flotilla.dev/load-balancer`: `round-robin` (the
    /// default) or `least-connections`.
    pub balance: Balance,
    /// The annotation `flotilla.dev/proxy-protocol: v2`: TCP ports send the
    /// PROXY protocol v2 header (the client's address) to the endpoint.
    pub proxy_protocol: bool,
    /// The StatefulSet pods named under this Service (their set's
    /// `serviceName` is its name, and it selects them), each with its own
    /// stable virtual address, allocated at load; sorted by set and ordinal.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pod_addresses: Vec<StatefulPodAddress>,
}

/// The stable name and virtual address of one StatefulSet pod: the node
/// proxies serve the Service's ports on `address` with that pod as the
/// only endpoint, and `HOSTNAME.SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN`
/// resolves to it (Kubernetes' `hostname.subdomain`, adapted to a cluster
/// without an overlay network: the pod's own address is not reachable from
/// other nodes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulPodAddress {
    /// The StatefulSet's name (same namespace as the Service).
    pub set: String,
    pub ordinal: u32,
    /// The pod's host name, `<set>-<ordinal>` (`names::pod_hostname`).
    pub hostname: String,
    /// In the Cluster's `serviceCIDR`, never a Service's address.
    pub address: core::net::Ipv4Addr,
}

impl Service {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::Service,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum SessionAffinity {
    #[default]
    None,
    /// `ClientIP`, with `sessionAffinityConfig.clientIP.timeoutSeconds`
    /// (10800 by default).
    ClientIP { timeout_seconds: u32 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Required when the Service has more than one port.
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    /// `targetPort`: a number, or the name of a container port of the
    /// selected pods; `port` when not given.
    pub target_port: PortRef,
    /// The node port (type NodePort): given, or allocated
    /// deterministically in 30000-32767.
    pub node_port: Option<u16>,
    /// `appProtocol: http` (or `kubernetes.io/h2c`-free HTTP/1):
    /// the proxy speaks HTTP and adds `X-Forwarded-For`/`-Proto`.
    pub http: bool,
}

// ---------------------------------------------------------------- ConfigMap and Secret

/// `kind: ConfigMap` (`v1`): configuration that pods read as environment
/// variables or files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConfigMap {
    pub meta: ObjectMeta,
    /// `data` (UTF-8 text) and `binaryData` (decoded from base64) in one
    /// map: a key may be in only one of them.
    pub data: BTreeMap<String, Vec<u8>>,
    /// `immutable: true`: its data may not change once deployed (a change
    /// is refused at push time, as Kubernetes refuses the update).
    pub immutable: bool,
}

impl ConfigMap {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::ConfigMap,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }
}

/// `kind: Secret` (`v1`). In the repository every value is sealed with age
/// (`flotilla secret seal`, docs/secrets.md); a value in clear is an
/// error. Nothing prints a value: see [`Sensitive`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Secret {
    pub meta: ObjectMeta,
    pub secret_type: SecretType,
    /// `data` and `stringData` in one map (a key in both takes
    /// `stringData`'s value, as in Kubernetes). Every value is sealed in a
    /// valid repository, until the leader opens them.
    pub data: BTreeMap<String, SecretValue>,
    pub immutable: bool,
}

impl Secret {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::Secret,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// The value of `key`, when it is declared and opened.
    pub fn opened(&self, key: &str) -> Option<&Sensitive> {
        match self.data.get(key)? {
            SecretValue::Opened(value) => Some(value),
            SecretValue::Sealed(_) => None,
        }
    }
}

/// The Secret types flotilla knows; a type checks its required keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub enum SecretType {
    #[default]
    Opaque,
    /// `kubernetes.io/tls`: keys `tls.crt` and `tls.key` (PEM).
    Tls,
    /// `kubernetes.io/dockerconfigjson`: key `.dockerconfigjson`, Docker's
    /// `config.json` (`auths`), for `imagePullSecrets`.
    DockerConfigJson,
}

impl SecretType {
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretType::Opaque => "Opaque",
            SecretType::Tls => "kubernetes.io/tls",
            SecretType::DockerConfigJson => "kubernetes.io/dockerconfigjson",
        }
    }
}

/// The key of a `kubernetes.io/dockerconfigjson` Secret.
pub const DOCKER_CONFIG_KEY: &str = ".dockerconfigjson";

/// One value of a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SecretValue {
    /// As written in the repository, sealed with age for the repository's
    /// recipients: `AGE[<version>:<base64 of the age file>]`.
    Sealed(SealedText),
    /// The value in clear: opened with the leader's identity, or written
    /// in clear in the manifest (an error in a repository; see [`Secret`]).
    Opened(Sensitive),
}

/// A sealed value as written: `AGE[<version>:<base64>]`.
///
/// `version` is 16 random hex digits that `flotilla secret seal` and
/// `edit` draw anew whenever the value changes, and `rekey` keeps. A pod's
/// revision depends on the versions of the Secret values it reads, never
/// on the values: so every command computes revisions without the key,
/// nothing derived from a value is ever shown, and re-sealing for new
/// recipients rolls nothing.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SealedText {
    pub version: String,
    /// Base64 (standard, padded) of a binary age file.
    pub ciphertext: String,
}

/// Why a string is not a well-formed sealed value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealedTextError {
    #[error("a sealed value is `AGE[<version>:<base64>]`")]
    Shape,
    #[error("the version of a sealed value is 16 lowercase hex digits")]
    Version,
    #[error("the sealed part is not valid base64")]
    Base64,
    #[error("the sealed part is not an age file")]
    NotAge,
}

impl SealedText {
    /// The prefix of every sealed value.
    pub const PREFIX: &'static str = "AGE[";

    /// Whether `text` is meant as a sealed value (it starts like one).
    pub fn looks_sealed(text: &str) -> bool {
        text.starts_with(Self::PREFIX)
    }

    /// Reads `AGE[<version>:<base64>]`, checking that the base64 holds an
    /// age file (its header line), not that it opens.
    pub fn parse(text: &str) -> Result<SealedText, SealedTextError> {
        use base64::Engine as _;
        let inner = text
            .trim()
            .strip_prefix(Self::PREFIX)
            .and_then(|t| t.strip_suffix(']'))
            .ok_or(SealedTextError::Shape)?;
        let (version, ciphertext) = inner.split_once(':').ok_or(SealedTextError::Shape)?;
        if version.len() != 16
            || !version
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(SealedTextError::Version);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(ciphertext)
            .map_err(|_| SealedTextError::Base64)?;
        if !bytes.starts_with(b"age-encryption.org/v1\n") {
            return Err(SealedTextError::NotAge);
        }
        Ok(SealedText {
            version: version.to_string(),
            ciphertext: ciphertext.to_string(),
        })
    }

    /// The age file: base64-decoded (checked by [`SealedText::parse`]).
    pub fn age_file(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&self.ciphertext)
            .unwrap_or_default()
    }

    /// The form written in a manifest.
    pub fn to_manifest_text(&self) -> String {
        format!("AGE[{}:{}]", self.version, self.ciphertext)
    }
}

impl fmt::Debug for SealedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SealedText {{ version: {}, {} characters }}",
            self.version,
            self.ciphertext.len()
        )
    }
}

/// Opens sealed values: the leader's (and its hook's) age identity.
pub trait Unseal {
    /// The value in clear, or why it cannot be opened (a sentence without
    /// the value, e.g. "no identity matches its recipients").
    fn unseal(&self, sealed: &SealedText) -> Result<Sensitive, String>;
}

/// The text every output shows in place of a Secret's value or of
/// anything derived from one (Terraform's convention).
pub const SENSITIVE: &str = "(sensitive value)";

/// Bytes from a Secret, opened. `Debug`, `Display` and `Serialize` show
/// [`SENSITIVE`], so a value cannot reach a log, a plan or a JSON output
/// by accident; only [`Sensitive::expose`] gives the bytes.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Sensitive(Vec<u8>);

impl Sensitive {
    pub fn new(bytes: Vec<u8>) -> Sensitive {
        Sensitive(bytes)
    }

    /// The value itself: for the container that consumes it, never for output.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SENSITIVE)
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SENSITIVE)
    }
}

impl Serialize for Sensitive {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(SENSITIVE)
    }
}

/// Where a pod's configuration comes from: a ConfigMap or a Secret of the
/// pod's namespace, by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ConfigSource {
    ConfigMap(String),
    Secret(String),
}

impl ConfigSource {
    pub fn kind(&self) -> Kind {
        match self {
            ConfigSource::ConfigMap(_) => Kind::ConfigMap,
            ConfigSource::Secret(_) => Kind::Secret,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            ConfigSource::ConfigMap(name) | ConfigSource::Secret(name) => name,
        }
    }
}

impl fmt::Display for ConfigSource {
    /// `ConfigMap app`, `Secret db`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// A value a pod consumes, borrowed from its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigValue<'a> {
    Plain(&'a [u8]),
    Secret(&'a SecretValue),
}

// ---------------------------------------------------------------- Node

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Node {
    pub meta: ObjectMeta,
    pub spec: NodeSpec,
}

impl Node {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::Node,
            namespace: String::new(),
            name: self.meta.name.clone(),
        }
    }

    /// The node's labels as the scheduler sees them: `metadata.labels` plus
    /// the well-known `kubernetes.io/hostname` (the node's name) unless set.
    pub fn scheduling_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.meta.labels.clone();
        labels
            .entry(HOSTNAME_LABEL.to_string())
            .or_insert_with(|| self.meta.name.clone());
        labels
    }
}

pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Ssh,
    Local,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// Host name or IP address to reach over SSH.
    pub address: String,
    /// SSH port, 22 by default.
    pub port: u16,
    /// SSH user, `root` by default.
    pub user: String,
    pub identity_file: Option<String>,
    /// `/var/run/docker.sock` by default.
    pub docker_socket: String,
    pub transport: Transport,
    /// Declared capacity; what is missing is read from the node.
    pub capacity: Capacity,
    pub taints: Vec<Taint>,
    /// Cordoned: no new pods are placed here.
    pub unschedulable: bool,
}

/// Resources of a node. `None` means "ask the node".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Capacity {
    pub cpu: Option<CpuMillis>,
    pub memory: Option<Bytes>,
    /// Kubernetes' default is 110.
    pub pods: Option<u32>,
    /// `storage`: room for PersistentVolumeClaims, counted against their
    /// `resources.requests.storage`; not counted when `None`.
    pub storage: Option<Bytes>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

// ---------------------------------------------------------------- Workloads

/// An object that runs pods: a Deployment, a DaemonSet or a StatefulSet
/// (and, later, the other workload kinds). Everything downstream of decoding (planner,
/// rollouts, status, history, notes) works on this one type and never asks
/// which kind it is; what differs between kinds is data in its spec
/// ([`PodSet`], [`Strategy`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workload {
    pub kind: Kind,
    pub meta: ObjectMeta,
    pub spec: WorkloadSpec,
}

impl Workload {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: self.kind,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// The key's parts, borrowed: the sort order of `DesiredState::workloads`.
    pub fn key_parts(&self) -> (Kind, &String, &String) {
        (self.kind, &self.meta.namespace, &self.meta.name)
    }

    /// The pod count a replica set declares (`None` for one pod per node).
    pub fn replicas(&self) -> Option<u32> {
        match self.spec.pods {
            PodSet::Replicas(n) | PodSet::Ordinals { replicas: n, .. } => Some(n),
            PodSet::Completions(job) => Some(job.parallelism),
            PodSet::OnePerNode => None,
        }
    }

    /// The completion index of the pod in `slot`, for a pod set that
    /// completes by index (`JOB_COMPLETION_INDEX`).
    pub fn completion_index(&self, slot: u32) -> Option<u32> {
        match self.spec.pods {
            PodSet::Completions(job) => job.completion_index(slot),
            _ => None,
        }
    }

    /// The number a pod's host name ends with (`<name>-<n>`): its slot, or
    /// for a pod set that completes by index, its completion index.
    pub fn pod_ordinal(&self, slot: u32) -> u32 {
        match self.spec.pods {
            PodSet::Completions(job) => job.completion_index(slot).unwrap_or(slot),
            _ => slot,
        }
    }

    /// The claim the pod of ordinal `ordinal` uses for volume claim
    /// template `template` (a StatefulSet's): `<template>-<set>-<ordinal>`.
    pub fn ordinal_claim_name(&self, template: &str, ordinal: u32) -> String {
        format!("{template}-{}-{ordinal}", self.meta.name)
    }
}

/// The most pods the desired state may declare, in all: Kubernetes' own
/// tested limit for a cluster (150,000 pods). A plan, its output and the
/// pre-receive hook's answer grow with the count, so it is bounded at
/// validation rather than discovered by the planner.
pub const MAX_PODS: u32 = 150_000;

/// Which pods a workload wants, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PodSet {
    /// `replicas` pods, placed by the scheduler on any node that fits
    /// (Deployment).
    Replicas(u32),
    /// One pod on every eligible node (DaemonSet): the nodes its node
    /// selector, required node affinity and tolerations admit.
    OnePerNode,
    /// `replicas` pods with stable ordinals `start..start + replicas`
    /// (StatefulSet): each ordinal's pod is the slot of that number, at
    /// most one at a time, with its own claims.
    Ordinals { replicas: u32, start: u32 },
    /// Pods that run to completion (Job): at most `parallelism` at a time,
    /// until `completions` of them succeed; every pod it ran is kept as its
    /// record until the run is finished and noted ([`JobSpec`]).
    Completions(JobSpec),
}

impl PodSet {
    /// Its pods run to completion and stay as the record of a run: a
    /// finished pod is neither removed nor replaced by the shared
    /// machinery, and nothing about it is a rollout.
    pub fn completes(self) -> bool {
        matches!(self, PodSet::Completions(_))
    }
}

/// The most completions of an `Indexed` Job (Kubernetes' own limit).
pub const MAX_INDEXED_COMPLETIONS: u32 = 100_000;

/// A Job's own fields (`batch/v1`), Kubernetes' defaults applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// `completions`: successes that finish the run; `None` (unset): the
    /// first success of any pod, once no other pod runs (a work queue).
    pub completions: Option<u32>,
    /// `parallelism`, 1 by default: the most pods running at once.
    pub parallelism: u32,
    pub completion_mode: CompletionMode,
    /// `backoffLimit`, 6 by default: failures (failed pods, and with
    /// `restartPolicy: OnFailure` container restarts) after which the run
    /// fails.
    pub backoff_limit: u32,
    /// `activeDeadlineSeconds`: the run fails once it has been running
    /// this long.
    pub active_deadline_seconds: Option<u32>,
    /// `ttlSecondsAfterFinished`: its pods are removed this long after the
    /// run finished (once its outcome is recorded).
    pub ttl_seconds_after_finished: Option<u32>,
    /// `suspend`: no new pods, the running ones removed.
    pub suspend: bool,
}

/// `completionMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CompletionMode {
    /// Any `completions` successes finish the run.
    NonIndexed,
    /// Each index `0..completions` succeeds once; its pods get
    /// `JOB_COMPLETION_INDEX` and the host name `<job>-<index>`.
    Indexed,
}

impl JobSpec {
    /// An `Indexed` pod's slot: `attempt * MAX_INDEXED_COMPLETIONS + index`,
    /// so every attempt of an index is a pod (and a container name) of its
    /// own while the slot still tells its index.
    pub fn indexed_slot(index: u32, attempt: u32) -> u32 {
        attempt
            .saturating_mul(MAX_INDEXED_COMPLETIONS)
            .saturating_add(index)
    }

    /// The completion index of the pod in `slot` (`Indexed` only).
    pub fn completion_index(&self, slot: u32) -> Option<u32> {
        (self.completion_mode == CompletionMode::Indexed).then_some(slot % MAX_INDEXED_COMPLETIONS)
    }

    /// The attempt of its index the pod in `slot` is (`Indexed`), from 0.
    pub fn attempt(slot: u32) -> u32 {
        slot / MAX_INDEXED_COMPLETIONS
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    pub pods: PodSet,
    pub selector: LabelSelector,
    pub template: PodTemplate,
    pub strategy: Strategy,
    /// 0 by default.
    pub min_ready_seconds: u32,
    /// 600 by default (a DaemonSet has no such field: always 600).
    pub progress_deadline_seconds: u32,
    /// 10 by default.
    pub revision_history_limit: u32,
    pub paused: bool,
    /// What only a StatefulSet declares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stateful: Option<StatefulSpec>,
}

/// A StatefulSet's own fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSpec {
    /// `serviceName`: the Service whose name the pods' DNS names sit under
    /// (`web-0.web`).
    pub service_name: String,
    pub pod_management: PodManagement,
    /// `updateStrategy.rollingUpdate.partition`: ordinals below it keep
    /// their revision.
    pub partition: u32,
    /// `volumeClaimTemplates`: one claim per ordinal each, named
    /// [`Workload::ordinal_claim_name`], mounted by the template's name.
    pub claim_templates: Vec<ClaimTemplate>,
    /// `persistentVolumeClaimRetentionPolicy.whenDeleted`.
    pub when_deleted: ClaimRetention,
    /// `persistentVolumeClaimRetentionPolicy.whenScaled`.
    pub when_scaled: ClaimRetention,
}

/// `podManagementPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PodManagement {
    /// Pods created in ordinal order, each ready before the next; removed
    /// in reverse order, one at a time.
    OrderedReady,
    /// Pods created and removed all at once.
    Parallel,
}

/// What happens to an ordinal's claims when its pod goes for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ClaimRetention {
    Retain,
    Delete,
}

/// One of `volumeClaimTemplates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimTemplate {
    /// `metadata.name`: the name pods mount it by, and the claims' prefix.
    pub name: String,
    /// `metadata.labels`: each claim's, with the selector's `matchLabels`
    /// (Kubernetes').
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`: each claim's.
    pub annotations: BTreeMap<String, String>,
    pub storage: Bytes,
    pub access_modes: Vec<AccessMode>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Strategy {
    /// Replace pods within budgets: a Deployment's (25 %/25 % by default)
    /// or a DaemonSet's (`maxUnavailable` 1, `maxSurge` 0 by default).
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
    /// Remove every old pod, then create the new ones (Deployment).
    Recreate,
    /// Old pods stay until removed by hand; a node without a pod gets the
    /// new revision (DaemonSet).
    OnDelete,
}

impl Default for Strategy {
    /// Kubernetes' default for a Deployment: rolling, 25 % surge and 25 % unavailable.
    fn default() -> Self {
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Percent(25),
            max_unavailable: IntOrPercent::Percent(25),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u32),
}

impl IntOrPercent {
    /// `0` or `0%`.
    pub fn is_zero(self) -> bool {
        matches!(self, IntOrPercent::Int(0) | IntOrPercent::Percent(0))
    }

    /// Resolves against `total`, rounding up (surge) or down (unavailable)
    /// as Kubernetes does.
    pub fn resolve(self, total: u32, round_up: bool) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let scaled = u64::from(total) * u64::from(p);
                let value = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(value).unwrap_or(u32::MAX)
            }
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.matches(labels))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

impl LabelSelectorRequirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
            // Gt and Lt compare the label's value as an integer with the
            // single value given; a label that is not an integer never matches.
            SelectorOperator::Gt | SelectorOperator::Lt => {
                let (Some(v), Some(bound)) = (value, self.values.first()) else {
                    return false;
                };
                match (v.parse::<i64>(), bound.parse::<i64>()) {
                    (Ok(v), Ok(bound)) if self.operator == SelectorOperator::Gt => v > bound,
                    (Ok(v), Ok(bound)) => v < bound,
                    _ => false,
                }
            }
        }
    }
}

/// Operators of label selectors (In, NotIn, Exists, DoesNotExist) and of
/// node selector terms, which add Gt and Lt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PodTemplate {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: PodSpec,
    /// What the pod reads from ConfigMaps and Secrets, filled in by `load`
    /// once every object is known: part of the template, so a change of a
    /// value it reads is a new revision (and nothing else is). Left out of
    /// the JSON when empty, so templates that read nothing keep their hash.
    #[serde(skip_serializing_if = "ConsumedConfig::is_empty")]
    pub consumed: ConsumedConfig,
}

/// Per source, the keys a pod reads and a digest of each value (never the
/// value). A source or key that is absent and optional is absent here, so
/// its creation is a change too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumedConfig(pub BTreeMap<ConfigSource, BTreeMap<String, ValueDigest>>);

impl ConsumedConfig {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for ConsumedConfig {
    /// A map keyed `ConfigMap/app`, `Secret/db` (JSON keys are strings).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (source, keys) in &self.0 {
            map.serialize_entry(&format!("{}/{}", source.kind(), source.name()), keys)?;
        }
        map.end()
    }
}

/// A digest of one consumed value: 16 hex digits of a SHA-256 of the
/// source, the key and the value; for a sealed Secret value, of its
/// version instead (see [`SealedText`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ValueDigest(pub String);

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    /// `initContainers`, in order: each regular one runs to completion
    /// before the next starts, and all before `containers`; a sidecar
    /// (`restartPolicy: Always`) starts in its place and runs with the pod.
    /// Left out of the JSON when empty, so templates without keep their hash.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    pub restart_policy: RestartPolicy,
    pub node_selector: BTreeMap<String, String>,
    /// requiredDuringSchedulingIgnoredDuringExecution terms, ORed.
    pub required_node_affinity: Vec<NodeSelectorTerm>,
    /// requiredDuringSchedulingIgnoredDuringExecution pod anti-affinity terms.
    pub required_pod_anti_affinity: Vec<PodAffinityTerm>,
    pub tolerations: Vec<Toleration>,
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// 30 by default.
    pub termination_grace_period_seconds: u32,
    /// `volumes`: of type `configMap` or `secret` (the only ones so far).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// `imagePullSecrets`: `kubernetes.io/dockerconfigjson` Secrets of the
    /// pod's namespace whose credentials pull its images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
}

/// One of a pod's `volumes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum VolumeSource {
    /// `configMap` (`name`) or `secret` (`secretName`): the keys as files.
    Config(ConfigVolume),
    /// `emptyDir`: a Docker volume made with the pod and removed with it.
    EmptyDir(EmptyDir),
    /// `hostPath`: a directory or file of the node, bind-mounted; only
    /// under `spec.policy.allowedHostPaths`.
    HostPath(HostPath),
    /// `persistentVolumeClaim`: the claim's Docker volume, on the node the
    /// claim is bound to.
    Claim(ClaimVolume),
}

/// An `emptyDir` volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDir {
    pub medium: StorageMedium,
    /// `sizeLimit`: for `Memory`, the tmpfs' size (else half the node's
    /// memory, as Linux does); on disk, not enforced (documented).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Bytes>,
}

/// `emptyDir.medium`: `""` (the node's disk) or `Memory` (tmpfs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum StorageMedium {
    Disk,
    Memory,
}

/// A `hostPath` volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostPath {
    /// Absolute, normalized (no `.`, `..` or empty components).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: HostPathType,
}

/// `hostPath.type`: what must be at the path, and whether it is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HostPathType {
    /// `""`, the default: no check (Docker creates a missing directory).
    Unset,
    Directory,
    DirectoryOrCreate,
    File,
    FileOrCreate,
}

/// A `persistentVolumeClaim` volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimVolume {
    /// A claim of the pod's namespace.
    pub claim_name: String,
    pub read_only: bool,
}

// ---------------------------------------------------------------- Storage

/// The annotation that deletes a claim's volume, data included: a claim
/// declared with `flotilla.dev/delete-volume: "true"` may not be used by a
/// pod, and its volume is removed from its node. Without it, nothing
/// deletes a claim's volume: a claim removed from Git keeps it.
pub const DELETE_VOLUME_ANNOTATION: &str = "flotilla.dev/delete-volume";

/// `kind: PersistentVolumeClaim` (`v1`): storage on one node, a Docker
/// named volume there, bound when the first pod using it is placed
/// (Kubernetes' local volumes with `WaitForFirstConsumer`) and pinned to
/// that node from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaim {
    pub meta: ObjectMeta,
    /// `resources.requests.storage`.
    pub storage: Bytes,
    /// `accessModes`, at least one.
    pub access_modes: Vec<AccessMode>,
    /// Declared with [`DELETE_VOLUME_ANNOTATION`].
    pub delete_volume: bool,
}

impl PersistentVolumeClaim {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::PersistentVolumeClaim,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// One pod at a time (`ReadWriteOncePod`), rather than the pods of one
    /// node (`ReadWriteOnce`).
    pub fn one_pod(&self) -> bool {
        self.access_modes.contains(&AccessMode::ReadWriteOncePod)
    }
}

/// The access modes a node-local volume can give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadWriteOncePod,
}

/// A `configMap` or `secret` volume: one file per key (or per `items`
/// entry) in the mounted directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigVolume {
    pub source: ConfigSource,
    /// Empty: every key, as a file named after it.
    pub items: Vec<KeyToPath>,
    /// `defaultMode`: 0644 by default (Kubernetes').
    pub default_mode: u32,
    pub optional: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    pub key: String,
    /// Relative, without `..`.
    pub path: String,
    /// The file's mode; the volume's `defaultMode` when `None`.
    pub mode: Option<u32>,
}

impl PodSpec {
    /// The pod's requests, by Kubernetes' rule (resource by resource): the
    /// larger of (every app container plus every sidecar) and, for each
    /// regular init container, its own request plus the sidecars started
    /// before it (they run beside it).
    pub fn requests(&self) -> ResourceList {
        self.effective(|c| &c.resources.requests)
    }

    fn effective(&self, of: impl Fn(&Container) -> &ResourceList) -> ResourceList {
        let mut sidecars = ResourceList::default();
        let mut init_peak = ResourceList::default();
        for container in &self.init_containers {
            if container.sidecar {
                sidecars = sidecars.plus(of(container));
            } else {
                init_peak = init_peak.max(&sidecars.plus(of(container)));
            }
        }
        let running = self
            .containers
            .iter()
            .fold(sidecars, |total, c| total.plus(of(c)));
        running.max(&init_peak)
    }

    /// The pod's init containers (regular and sidecars, in order), then its
    /// app containers: everything the pod runs.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> + '_ {
        self.init_containers.iter().chain(&self.containers)
    }

    /// Every container with its field under the pod spec
    /// (`initContainers[0]`, `containers[1]`), init containers first.
    pub fn containers_with_fields(&self) -> impl Iterator<Item = (String, &Container)> + '_ {
        let init = self
            .init_containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("initContainers[{i}]"), c));
        let app = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("containers[{i}]"), c));
        init.chain(app)
    }

    /// Whether the pod runs in a sandbox (a container of its own holding
    /// the pod's network namespace, which every container joins): with
    /// more than one container or any init container. A lone container
    /// owns its namespace itself, as before sandboxes.
    pub fn has_sandbox(&self) -> bool {
        self.containers.len() > 1 || !self.init_containers.is_empty()
    }

    /// Host ports the pod binds, with their protocol.
    pub fn host_ports(&self) -> impl Iterator<Item = (u16, Protocol)> + '_ {
        self.all_containers()
            .flat_map(|c| c.ports.iter())
            .filter_map(|p| p.host_port.map(|h| (h, p.protocol)))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl NodeSelectorTerm {
    pub fn matches(&self, node_labels: &BTreeMap<String, String>) -> bool {
        self.match_expressions
            .iter()
            .all(|e| e.matches(node_labels))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAffinityTerm {
    pub label_selector: LabelSelector,
    /// Only `kubernetes.io/hostname` is supported for now.
    pub topology_key: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum TolerationOperator {
    #[default]
    Equal,
    Exists,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// Empty with `Exists` tolerates every taint.
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    /// `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
    pub toleration_seconds: Option<i64>,
}

impl Toleration {
    /// Kubernetes' ToleratesTaint.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => self.value == taint.value,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpreadConstraint {
    pub max_skew: u32,
    pub topology_key: String,
    pub when_unsatisfiable: WhenUnsatisfiable,
    pub label_selector: LabelSelector,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    pub image_pull_policy: PullPolicy,
    /// Docker's entrypoint; empty keeps the image's.
    pub command: Vec<String>,
    /// Docker's cmd; empty keeps the image's.
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    pub ports: Vec<ContainerPort>,
    pub resources: Resources,
    pub readiness_probe: Option<Probe>,
    pub liveness_probe: Option<Probe>,
    pub startup_probe: Option<Probe>,
    pub working_dir: Option<String>,
    /// `envFrom`: every key of a ConfigMap or Secret as a variable, before
    /// `env` (which wins on a clash), in order (a later source wins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// `restartPolicy: Always` on an init container: a sidecar, started in
    /// its place among the init containers and kept running with the pod.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sidecar: bool,
    /// `lifecycle`: hooks run after the container starts and before it is
    /// stopped.
    #[serde(skip_serializing_if = "Lifecycle::is_empty")]
    pub lifecycle: Lifecycle,
}

/// A container's `lifecycle` hooks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Run right after the container starts; a failure kills the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_start: Option<LifecycleHandler>,
    /// Run before SIGTERM, within terminationGracePeriodSeconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<LifecycleHandler>,
}

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self.post_start.is_none() && self.pre_stop.is_none()
    }
}

/// One lifecycle hook: a command in the container (Docker exec), an HTTP
/// GET the leader sends to the pod (as its httpGet probes), or a pause the
/// leader waits out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum LifecycleHandler {
    Exec {
        command: Vec<String>,
    },
    HttpGet {
        path: String,
        port: PortRef,
        headers: Vec<(String, String)>,
    },
    Sleep {
        seconds: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    pub source: ConfigSource,
    /// Put before every key's name.
    pub prefix: String,
    pub optional: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// A volume of the pod.
    pub name: String,
    /// Absolute.
    pub mount_path: String,
    /// One file or directory of the volume instead of all of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    pub read_only: bool,
}

/// Kubernetes' default: `Always` for `:latest` or no tag, else `IfNotPresent`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    /// `value`; empty with `valueFrom`.
    pub value: String,
    /// `valueFrom.configMapKeyRef` or `.secretKeyRef`. Left out of the
    /// JSON when `None`, so templates without it keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<KeyRef>,
}

/// One key of a ConfigMap or Secret of the pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    pub source: ConfigSource,
    pub key: String,
    /// A missing source or key leaves the variable unset instead of an error.
    pub optional: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    #[default]
    TCP,
    UDP,
    SCTP,
}

impl Protocol {
    /// Kubernetes' spelling: `TCP`, `UDP`, `SCTP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::TCP => "TCP",
            Protocol::UDP => "UDP",
            Protocol::SCTP => "SCTP",
        }
    }

    /// Docker's and URLs' spelling: `tcp`, `udp`, `sctp`.
    pub fn lowercase(self) -> &'static str {
        match self {
            Protocol::TCP => "tcp",
            Protocol::UDP => "udp",
            Protocol::SCTP => "sctp",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub name: Option<String>,
    pub container_port: u16,
    pub host_port: Option<u16>,
    /// `hostIP`: the node address a host port is bound to; every address
    /// when `None`. Left out of the template's JSON when `None`, so that
    /// templates written before it existed keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub requests: ResourceList,
    pub limits: ResourceList,
}

/// CPU and memory. When a limit is set and the request is not, the request
/// equals the limit, as in Kubernetes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ResourceList {
    pub cpu: Option<CpuMillis>,
    pub memory: Option<Bytes>,
}

impl ResourceList {
    /// Resource by resource, the sum (an absent one counts as nothing).
    pub fn plus(&self, other: &ResourceList) -> ResourceList {
        ResourceList {
            cpu: combine(self.cpu, other.cpu, |a, b| {
                CpuMillis(a.0.saturating_add(b.0))
            }),
            memory: combine(self.memory, other.memory, |a, b| {
                Bytes(a.0.saturating_add(b.0))
            }),
        }
    }

    /// Resource by resource, the larger (an absent one counts as nothing).
    pub fn max(&self, other: &ResourceList) -> ResourceList {
        ResourceList {
            cpu: combine(self.cpu, other.cpu, |a, b| CpuMillis(a.0.max(b.0))),
            memory: combine(self.memory, other.memory, |a, b| Bytes(a.0.max(b.0))),
        }
    }
}

fn combine<T>(a: Option<T>, b: Option<T>, both: impl Fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(both(a, b)),
        (a, b) => a.or(b),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub handler: ProbeHandler,
    /// 0 by default.
    pub initial_delay_seconds: u32,
    /// 10 by default.
    pub period_seconds: u32,
    /// 1 by default.
    pub timeout_seconds: u32,
    /// 1 by default (and always 1 for liveness and startup probes).
    pub success_threshold: u32,
    /// 3 by default.
    pub failure_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum ProbeHandler {
    HttpGet {
        path: String,
        port: PortRef,
        scheme: HttpScheme,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        port: PortRef,
    },
    Exec {
        command: Vec<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum HttpScheme {
    HTTP,
    HTTPS,
}

/// A port given by number, or by the name of one of the container's ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

// ---------------------------------------------------------------- Ingress

/// The `ingressClassName` flotilla serves (an Ingress without a class is
/// served too).
pub const INGRESS_CLASS: &str = "flotilla";

/// `kind: Ingress` (`networking.k8s.io/v1`): HTTP routes by host and path
/// to Services of its namespace, served on port 80 of every node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    pub meta: ObjectMeta,
    /// `spec.defaultBackend`: where a request no rule matches goes.
    pub default_backend: Option<IngressBackend>,
    pub rules: Vec<IngressRule>,
    /// `spec.tls`: the certificates its hosts are served with over HTTPS,
    /// on port 443 of every node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<IngressTls>,
}

impl Ingress {
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: Kind::Ingress,
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// `None`: every host.
    pub host: Option<IngressHost>,
    /// `http.paths`; empty when the rule has no `http` (its host then
    /// routes nothing of its own).
    pub paths: Vec<IngressPath>,
}

/// One entry of `spec.tls`: a `kubernetes.io/tls` Secret of the Ingress's
/// namespace and the hosts it is the certificate of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressTls {
    /// `hosts`, as a rule's hosts (a wildcard matches one more label).
    /// Empty: the certificate served to a client whose name no other
    /// entry lists (or that sends none), as Kubernetes leaves `hosts` out
    /// for the controller's default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<IngressHost>,
    /// `secretName`: its `tls.crt` (PEM chain, the server's certificate
    /// first) and `tls.key` (PEM private key).
    pub secret_name: String,
}

/// A rule's `host`: lowercase, without a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum IngressHost {
    /// `shop.example.com`: that host only.
    Exact(String),
    /// `*.example.com`, kept as its suffix `example.com`: any host one DNS
    /// label longer (`a.example.com`, not `example.com` nor `a.b.example.com`).
    Wildcard(String),
}

impl fmt::Display for IngressHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngressHost::Exact(host) => f.write_str(host),
            IngressHost::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressPath {
    /// Starts with `/`.
    pub path: String,
    pub path_type: PathType,
    pub backend: IngressBackend,
}

/// How a path matches a request's. `ImplementationSpecific` is read as
/// `Prefix` (documented in docs/manifests.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PathType {
    /// Element by element (`/`-separated), a trailing `/` ignored:
    /// `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
    Prefix,
    /// The whole path, case-sensitive.
    Exact,
}

/// A Service of the Ingress's namespace, and one of its ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    pub service: String,
    /// The Service's `port` by number, or a port's `name`.
    pub port: PortRef,
}

impl IngressBackend {
    /// The port of `service` this backend names, if it has it.
    pub fn service_port<'s>(&self, service: &'s Service) -> Option<&'s ServicePort> {
        service.ports.iter().find(|p| match &self.port {
            PortRef::Number(number) => p.port == *number,
            PortRef::Name(name) => p.name.as_ref() == Some(name),
        })
    }
}

impl fmt::Display for IngressBackend {
    /// `web:80`, `web:http`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            PortRef::Number(number) => write!(f, "{}:{number}", self.service),
            PortRef::Name(name) => write!(f, "{}:{name}", self.service),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_are_read_strictly() {
        use base64::Engine as _;
        let age = base64::engine::general_purpose::STANDARD
            .encode(b"age-encryption.org/v1\n-> X25519 x\n");
        let text = format!("AGE[0123456789abcdef:{age}]");
        let sealed = SealedText::parse(&text).unwrap();
        assert_eq!(sealed.version, "0123456789abcdef");
        assert_eq!(sealed.to_manifest_text(), text);
        assert!(sealed.age_file().starts_with(b"age-encryption.org/v1"));
        for (bad, error) in [
            ("AGE[0123456789abcdef]", SealedTextError::Shape),
            ("0123456789abcdef:aGk=", SealedTextError::Shape),
            ("AGE[0123456789ABCDEF:aGk=]", SealedTextError::Version),
            ("AGE[012345:aGk=]", SealedTextError::Version),
            ("AGE[0123456789abcdef:!!]", SealedTextError::Base64),
            ("AGE[0123456789abcdef:aGk=]", SealedTextError::NotAge),
        ] {
            assert_eq!(SealedText::parse(bad), Err(error), "{bad}");
        }
        assert!(!format!("{sealed:?}").contains(&age));
    }

    #[test]
    fn sensitive_values_never_print() {
        let value = Sensitive::new(b"hunter2".to_vec());
        assert_eq!(
            format!("{value:?} {value}"),
            "(sensitive value) (sensitive value)"
        );
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            "\"(sensitive value)\""
        );
        assert_eq!(value.expose(), b"hunter2");
    }

    #[test]
    fn the_kind_table_lists_every_kind_once_in_declaration_order() {
        // `info` indexes the table by the enum's discriminant.
        for (i, row) in KINDS.iter().enumerate() {
            assert_eq!(row.kind as usize, i, "row {i} is {}", row.name);
            assert_eq!(Kind::parse(row.name), Some(row.kind));
        }
        let distinct: std::collections::BTreeSet<Kind> = Kind::ALL.into_iter().collect();
        assert_eq!(distinct.len(), KINDS.len());
        assert_eq!(
            Kind::supported_list(),
            "Cluster, Node, Deployment, Service, DaemonSet, StatefulSet, Job, ConfigMap, Secret, Ingress and PersistentVolumeClaim"
        );
        assert_eq!(
            Kind::workload_list(),
            "deployment, daemonset, statefulset and job"
        );
    }
}
