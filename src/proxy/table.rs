//! The endpoint table: everything one node's proxy serves, written by the
//! leader (the only writer) and acknowledged by the proxy. Plain data, the
//! same on both sides of the control channel (JSON, one line each way).
//!
//! The leader computes a table per node (`plan::endpoints`), sends it with
//! `flotilla-proxy ctl` through Docker exec over the node's SSH session, and
//! treats the table as served once the proxy answers with its generation.
//! The proxy keeps serving the last table it acknowledged (and reloads it
//! from its state directory after a restart) whether or not a leader runs.

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

/// The port every proxy listens on (node address, every interface) for
/// connections other nodes' proxies forward to this node's endpoints.
pub const TUNNEL_PORT: u16 = 10260;

/// The control socket, inside the proxy's container.
pub const CONTROL_SOCKET: &str = "/run/flotilla-proxy/control.sock";

/// Where the proxy keeps the last acknowledged table, inside its container
/// (its Docker volume `flotilla-proxy-state`). The table holds the Ingress
/// certificates' private keys: the file is 0600.
pub const STATE_DIRECTORY: &str = "/var/lib/flotilla-proxy";

/// The container name of a node's proxy.
pub const CONTAINER_NAME: &str = "flotilla-proxy";

/// One node's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// Grows with every table the leader writes; the proxy acknowledges a
    /// table by answering with its generation, and ignores an older one.
    pub generation: u64,
    /// The node this table is for (a check against misdirection).
    pub node: String,
    /// The virtual address range: the proxy routes it to the node itself
    /// (`ip route add local CIDR dev lo`) so it can listen on any address
    /// in it. `10.96.0.0/12` by default.
    pub service_cidr: String,
    /// The DNS server's address (in `service_cidr`); it listens on port 53
    /// (UDP and TCP) there.
    pub dns_address: Ipv4Addr,
    /// `cluster.local`.
    pub cluster_domain: String,
    /// Sorted by (namespace, name).
    pub services: Vec<Service>,
    /// The Ingress routes, served over HTTP on port 80 of every node, in
    /// no particular order ([`super::ingress::Routes`] orders them).
    /// Absent from a table written before Ingresses existed.
    #[serde(default)]
    pub ingress: Vec<IngressRoute>,
    /// Where a request no Ingress route matches goes; `None`: it is
    /// answered 404.
    #[serde(default)]
    pub ingress_default_backend: Option<IngressBackend>,
    /// The certificates the Ingress is served with over HTTPS (port 443 of
    /// every node, with the same routes), chosen by the name the client
    /// asks for (SNI; [`super::tls`]); none: no HTTPS. Sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress_certificates: Vec<IngressCertificate>,
}

/// A certificate the Ingress serves over HTTPS: an Ingress's `tls` entry
/// and its `kubernetes.io/tls` Secret.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressCertificate {
    /// `namespace/name` of the Secret, named in errors.
    pub secret: String,
    /// The names it is served for: exact (`shop.example.com`) or a
    /// wildcard (`*.example.com`, one more label). Empty: the default, for
    /// a name no certificate lists or a client that sends none.
    pub hosts: Vec<String>,
    /// The Secret's `tls.crt`: PEM certificates, the server's first.
    pub chain: String,
    /// The Secret's `tls.key`.
    pub key: PrivateKeyPem,
}

/// A PEM private key. The control protocol carries it (`Serialize`); its
/// `Debug` shows `(sensitive value)`, so a table logged or printed never
/// shows it. (The proxy's own type: it knows nothing of the manifest's
/// `Sensitive`, which does the same for the leader.)
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    pub fn new(pem: String) -> PrivateKeyPem {
        PrivateKeyPem(pem)
    }

    /// The key itself: for the TLS handshake, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text `model::SENSITIVE` is: one convention for every output.
        f.write_str("(sensitive value)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub namespace: String,
    pub name: String,
    /// The virtual address: every port is served on it, and the DNS names
    /// `NAME`, `NAME.NAMESPACE`, `NAME.NAMESPACE.svc` and
    /// `NAME.NAMESPACE.svc.CLUSTER_DOMAIN` answer with it.
    pub cluster_ip: Ipv4Addr,
    /// Seconds a client address sticks to the endpoint it was first sent
    /// to; `None` without session affinity.
    pub client_ip_affinity_seconds: Option<u32>,
    pub balance: Balance,
    pub ports: Vec<ServicePort>,
    /// Set when this entry is not a Service but the stable address of one
    /// StatefulSet pod named under a Service (`web-0` under `web`): it
    /// serves that Service's ports with the pod as their only endpoint
    /// (none while the pod is not ready), and its `name` is
    /// `HOSTNAME.SERVICE`, which no Service's name can be (they have no
    /// dot). It has no node port and no session affinity. Absent from a
    /// table written before StatefulSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodName>,
}

/// A StatefulSet pod's DNS name: `HOSTNAME.SERVICE.NAMESPACE.svc.CLUSTER_DOMAIN`
/// (Kubernetes' `hostname.subdomain`), and the reverse name of its
/// address, while it has an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodName {
    /// `web-0`.
    pub hostname: String,
    /// The Service the pod is named under (its set's `serviceName`).
    pub service: String,
}

impl Service {
    /// The name the entry goes by in the table: a Service's name, or a
    /// pod's `HOSTNAME.SERVICE`.
    pub fn pod_entry_name(hostname: &str, service: &str) -> String {
        format!("{hostname}.{service}")
    }

    /// Whether any port has an endpoint: a pod's name resolves only then
    /// (Kubernetes publishes a StatefulSet pod's record only while it is
    /// ready, without `publishNotReadyAddresses`).
    pub fn has_endpoints(&self) -> bool {
        self.ports.iter().any(|port| !port.endpoints.is_empty())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConnections,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

/// What the proxy speaks to the endpoint on a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Bytes both ways, untouched.
    #[default]
    Tcp,
    /// HTTP/1.1: requests are forwarded with `X-Forwarded-For` (appended)
    /// and `X-Forwarded-Proto`.
    Http,
    /// A PROXY protocol v2 header with the client's address, then bytes.
    ProxyV2,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// Empty when the Service has one unnamed port.
    pub name: String,
    pub protocol: Protocol,
    /// Served on `cluster_ip:port`.
    pub port: u16,
    /// Also served on every address of the node at this port (type NodePort).
    pub node_port: Option<u16>,
    /// `externalTrafficPolicy: Local`: the node port forwards only to this
    /// node's endpoints (none: the connection is refused), never through a
    /// tunnel. The virtual address still serves every endpoint.
    pub node_port_local_only: bool,
    pub mode: Mode,
    /// The ready endpoints, sorted; an endpoint that is leaving is absent.
    pub endpoints: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The node the pod runs on.
    pub node: String,
    /// The pod (its container's name), for status and metrics.
    pub pod: String,
    /// The pod's address on its node's container network, and the target
    /// port.
    pub target: SocketAddrV4,
    /// `None` when the pod runs on this table's node (connect to `target`
    /// directly); else the other node's tunnel (`NODE_ADDRESS:TUNNEL_PORT`),
    /// which forwards to `target` on that node.
    pub via: Option<SocketAddrV4>,
}

/// A request on the control channel: one JSON line.
// One request per control connection, read once: the size of a table held
// in place is no cost worth a box in the protocol's type.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Request {
    /// Serve this table from now on; answered once every listener it asks
    /// for is bound and new connections use it.
    Apply(Table),
    /// The current generation and the live connections per endpoint.
    Status,
}

/// The answer: one JSON line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Response {
    /// The table now served (after an `Apply`, its generation, or a newer
    /// one's if the proxy already had a newer table).
    Applied {
        generation: u64,
    },
    Status(ProxyStatus),
    /// The request could not be carried out; the previous table is still
    /// served.
    Error {
        message: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    /// The generation of the table served (0: none yet).
    pub generation: u64,
    /// Every target with open connections, including ones no longer in the
    /// table (draining), sorted.
    pub connections: Vec<TargetConnections>,
    /// Counters per Service port since the proxy started, sorted.
    pub services: Vec<ServiceCounters>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetConnections {
    pub target: SocketAddrV4,
    pub open: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCounters {
    pub namespace: String,
    pub name: String,
    pub port: u16,
    /// Connections accepted (TCP modes) or requests served (HTTP mode).
    pub requests: u64,
    /// Connections or requests that reached no endpoint (none ready, or
    /// every connect failed).
    pub errors: u64,
    /// Open right now.
    pub open: u64,
}

/// One `host` + `path` of an Ingress and the Service port it goes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRoute {
    /// `shop.example.com`, or `*.example.com` (any host one DNS label
    /// longer); `None` matches every host.
    pub host: Option<String>,
    /// Starts with `/`.
    pub path: String,
    pub path_type: PathType,
    pub backend: IngressBackend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PathType {
    /// Element by element, a trailing `/` ignored (Kubernetes' `Prefix`,
    /// and flotilla's `ImplementationSpecific`).
    Prefix,
    /// The whole path, case-sensitive.
    Exact,
}

/// A port of one of the table's [`Service`]s, by reference rather than by
/// address: the proxy forwards an Ingress request to that port's endpoints
/// itself, with the port's balancing, connection counts and draining (an
/// endpoint that leaves the Service leaves its Ingress routes in the same
/// table), and the backend sees the client's address in `X-Forwarded-For`
/// rather than the proxy's from a second hop through the virtual address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressBackend {
    /// The Ingress's namespace, which is its Service's.
    pub namespace: String,
    pub service: String,
    /// The Service's `port` (a port named in the Ingress resolved to its
    /// number by the leader), one of [`Service::ports`].
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_key_is_carried_but_never_shown() {
        let certificate = IngressCertificate {
            secret: "shop/tls".to_string(),
            hosts: vec!["shop.example.com".to_string()],
            chain: "-----BEGIN CERTIFICATE-----".to_string(),
            key: PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nhunter2".to_string()),
        };
        let shown = format!("{certificate:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(crate::manifest::model::SENSITIVE), "{shown}");
        let sent = serde_json::to_string(&certificate).unwrap();
        assert!(sent.contains("hunter2"));
        let back: IngressCertificate = serde_json::from_str(&sent).unwrap();
        assert_eq!(back, certificate);
    }
}
