//! A `Service`'s spec (`v1`): its selector, ports, type, virtual address and
//! traffic settings, with Kubernetes' defaults and errors, and the two
//! annotations flotilla reads on it. What needs the other objects (the
//! Cluster's `serviceCIDR`, the workloads it selects, the other Services'
//! addresses and node ports) is checked and allocated once every document
//! is read, in `manifest::services`.

use core::net::Ipv4Addr;

use super::*;

const SERVICE_SPEC: Schema = Schema {
    known: &[
        "selector",
        "type",
        "ports",
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "sessionAffinity",
        "sessionAffinityConfig",
        "externalTrafficPolicy",
        "internalTrafficPolicy",
    ],
    unsupported: &[
        "publishNotReadyAddresses",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "loadBalancerClass",
        "externalIPs",
        "externalName",
        "healthCheckNodePort",
        "allocateLoadBalancerNodePorts",
        "trafficDistribution",
    ],
    ignored: &[],
    hints: &[
        (
            "template",
            "a Service runs no pods: it selects the pods of Deployments, DaemonSets and StatefulSets with `spec.selector`",
        ),
        (
            "replicas",
            "a Service runs no pods: scale the Deployment it selects",
        ),
        ("port", "a Service's ports are listed in `spec.ports[]`"),
        ("targetPort", "`targetPort` is given per port, in `spec.ports[]`"),
        ("nodePort", "`nodePort` is given per port, in `spec.ports[]`"),
    ],
};

const SERVICE_PORT: Schema = Schema {
    known: &[
        "name",
        "protocol",
        "port",
        "targetPort",
        "nodePort",
        "appProtocol",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "containerPort",
        "a Service port is `port` (what clients connect to) and `targetPort` (the container's port)",
    )],
};

const SESSION_AFFINITY_CONFIG: Schema = Schema {
    known: &["clientIP"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CLIENT_IP_CONFIG: Schema = Schema {
    known: &["timeoutSeconds"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// The annotation choosing how a Service balances its connections.
pub(crate) const LOAD_BALANCER_ANNOTATION: &str = "flotilla.dev/load-balancer";
/// The annotation asking for the PROXY protocol v2 header.
pub(crate) const PROXY_PROTOCOL_ANNOTATION: &str = "flotilla.dev/proxy-protocol";
const SERVICE_ANNOTATIONS: &[&str] = &[LOAD_BALANCER_ANNOTATION, PROXY_PROTOCOL_ANNOTATION];

/// Kubernetes' default node port range.
pub(crate) const NODE_PORTS: core::ops::RangeInclusive<u16> = 30000..=32767;

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`
/// (three hours), and its largest value (a day).
const CLIENT_IP_TIMEOUT_SECONDS: u32 = 10800;
const CLIENT_IP_TIMEOUT_MAX: i64 = 86400;

/// A Service as one document declares it: what needs the other objects is
/// still open.
#[derive(Clone, Debug)]
pub(crate) struct DecodedService {
    /// Its `cluster_ip` is a placeholder until the address is allocated,
    /// and a NodePort Service's ports without `nodePort` have none yet.
    pub service: Service,
    /// `spec.clusterIP` (or `clusterIPs[0]`) when given: an IPv4 address
    /// not yet checked against the Cluster's `serviceCIDR`.
    pub requested_cluster_ip: Option<Ipv4Addr>,
}

/// What `clusterIP` (or an entry of `clusterIPs`) says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClusterIp {
    /// Absent or `""`: allocated from the Cluster's `serviceCIDR`.
    Allocate,
    Address(Ipv4Addr),
}

impl Decoder<'_> {
    /// The Service `meta` names, from its `spec`; `root` is the document
    /// (for the place of its annotations).
    pub(super) fn service(
        &mut self,
        root: &Node,
        spec: &Node,
        meta: ObjectMeta,
    ) -> Option<DecodedService> {
        let path = "spec";
        self.service_name(root, &meta.name);
        let fields = self.fields(spec, path, &SERVICE_SPEC)?;
        let service_type = self.service_type(&fields);
        // An ExternalName Service (itself an error) has neither selector
        // nor ports: not asked for on top.
        let external_name = fields
            .get("type")
            .and_then(|t| t.as_scalar())
            .is_some_and(|t| t.text == "ExternalName");
        let selector = match external_name {
            true => BTreeMap::new(),
            false => self.service_selector(&fields, spec),
        };
        let ports = match external_name {
            true => Vec::new(),
            false => self.service_ports(&fields, spec, service_type),
        };
        let requested_cluster_ip = self.requested_cluster_ip(&fields);
        self.ip_families(&fields);
        let session_affinity = self.session_affinity(&fields);
        let external_traffic_local = self.external_traffic_policy(&fields, service_type);
        if let Some(policy) = fields.get("internalTrafficPolicy") {
            let path = "spec.internalTrafficPolicy";
            let local = self.enumeration(policy, path, &[("Cluster", false), ("Local", true)]);
            if local == Some(true) {
                let diagnostic = self.error(
                    policy,
                    path,
                    "internalTrafficPolicy `Local` is not supported yet",
                );
                Self::hint(
                    diagnostic,
                    "leave it out (`Cluster`): every node's proxy sends to the ready endpoints on any node",
                );
            }
        }
        let (balance, proxy_protocol) = self.service_annotations(root, &meta, &ports);
        let meta = ObjectMeta {
            field_sources: std::mem::take(&mut self.field_sources),
            ..meta
        };
        Some(DecodedService {
            service: Service {
                meta,
                selector,
                service_type,
                cluster_ip: Ipv4Addr::UNSPECIFIED,
                ports,
                session_affinity,
                external_traffic_local,
                balance,
                proxy_protocol,
                pod_addresses: Vec::new(),
            },
            requested_cluster_ip,
        })
    }

    /// `spec.selector`: a map of labels, required and not empty (a Service
    /// without one has its endpoints declared by hand, in Endpoints objects).
    fn service_selector(&mut self, fields: &Fields, spec: &Node) -> BTreeMap<String, String> {
        let path = "spec.selector";
        match fields.get("selector") {
            Some(node) => {
                let at = self.at(node);
                self.field_sources.insert(path.to_string(), at);
                if let Value::Mapping(entries) = &node.value {
                    // `matchLabels` is a workload's form, not a Service's.
                    if let Some(entry) = entries.iter().find(|e| {
                        e.key.as_scalar().is_some_and(|k| {
                            k.text == "matchLabels" || k.text == "matchExpressions"
                        })
                    }) {
                        let name = entry.key.as_scalar().map_or("", |k| k.text.as_str());
                        let diagnostic = self.error(
                            &entry.key,
                            &join(path, name),
                            format!("a Service's selector is a map of labels, not `{name}`"),
                        );
                        Self::hint(
                            diagnostic,
                            "write the labels directly: `selector: {app: web}`",
                        );
                        return BTreeMap::new();
                    }
                }
                let labels = self.labels(node, path);
                if labels.is_empty() && matches!(node.value, Value::Mapping(_)) {
                    let diagnostic = self.error(
                        node,
                        path,
                        "a Service without a selector is not supported yet",
                    );
                    Self::hint(diagnostic, SELECTOR_HINT);
                }
                labels
            }
            None => {
                let diagnostic = self.error(
                    spec,
                    path,
                    "a Service without a selector is not supported yet",
                );
                Self::hint(diagnostic, SELECTOR_HINT);
                BTreeMap::new()
            }
        }
    }

    fn service_type(&mut self, fields: &Fields) -> ServiceType {
        let Some(node) = fields.get("type") else {
            return ServiceType::ClusterIP;
        };
        let path = "spec.type";
        let Some(text) = self.string(node, path) else {
            return ServiceType::ClusterIP;
        };
        match text.as_str() {
            "ClusterIP" => ServiceType::ClusterIP,
            "NodePort" => ServiceType::NodePort,
            "LoadBalancer" => {
                let diagnostic = self.error(node, path, "type `LoadBalancer` is not supported yet");
                Self::hint(
                    diagnostic,
                    "flotilla provisions no cloud load balancer: use `type: NodePort` and point an external balancer at that port of every node",
                );
                ServiceType::ClusterIP
            }
            "ExternalName" => {
                let diagnostic = self.error(node, path, "type `ExternalName` is not supported yet");
                Self::hint(
                    diagnostic,
                    "the proxies' DNS serves no aliases yet: give the clients the external name itself",
                );
                ServiceType::ClusterIP
            }
            _ => {
                let names = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
                let suggestion = names::did_you_mean(&text, &names);
                let diagnostic = self.error(
                    node,
                    path,
                    format!(
                        "invalid value `{text}`, expected {}",
                        one_of(&["ClusterIP", "NodePort"])
                    ),
                );
                if let Some(suggestion) = suggestion {
                    Self::hint(diagnostic, format!("did you mean `{suggestion}`?"));
                }
                ServiceType::ClusterIP
            }
        }
    }

    fn service_ports(
        &mut self,
        fields: &Fields,
        spec: &Node,
        service_type: ServiceType,
    ) -> Vec<ServicePort> {
        let path = "spec.ports";
        let mut ports = Vec::new();
        let Some(node) = self.required(fields, spec, "spec", "ports") else {
            return ports;
        };
        let Some(items) = self.sequence(node, path) else {
            return ports;
        };
        if items.is_empty() {
            let diagnostic = self.error(node, path, "a Service needs at least one port");
            Self::hint(diagnostic, "e.g. `ports: [{port: 80, targetPort: 8080}]`");
            return ports;
        }
        let named = items.len() > 1;
        // The first place of each name, (port, protocol) and node port.
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        let mut numbers: BTreeMap<(u16, Protocol), u32> = BTreeMap::new();
        let mut node_ports: BTreeMap<(u16, Protocol), u32> = BTreeMap::new();
        let file = self.file;
        for (i, item) in items.iter().enumerate() {
            let port_path = index(path, i);
            let Some(port_fields) = self.fields(item, &port_path, &SERVICE_PORT) else {
                continue;
            };
            let at = self.at(item);
            self.field_sources.insert(port_path.clone(), at);
            let name = match port_fields.get("name") {
                Some(name_node) => {
                    let name = self.checked_name(
                        name_node,
                        &join(&port_path, "name"),
                        "port name",
                        names::dns1123_label,
                    );
                    if let Some(name) = &name {
                        if let Some(first) = names.get(name) {
                            self.error(
                                name_node,
                                &join(&port_path, "name"),
                                format!("port name `{name}` is used twice in the Service (first at {file}:{first})"),
                            );
                        } else {
                            names.insert(name.clone(), name_node.line);
                        }
                    }
                    name
                }
                None => {
                    if named {
                        let diagnostic =
                            self.error(item, &join(&port_path, "name"), "missing field `name`");
                        Self::hint(
                            diagnostic,
                            "a Service with more than one port names each one (a DNS label, e.g. `http`)",
                        );
                    }
                    None
                }
            };
            let protocol = match port_fields.get("protocol") {
                Some(node) => {
                    let protocol_path = join(&port_path, "protocol");
                    let protocol = self.enumeration(
                        node,
                        &protocol_path,
                        &[
                            ("TCP", Protocol::TCP),
                            ("UDP", Protocol::UDP),
                            ("SCTP", Protocol::SCTP),
                        ],
                    );
                    if let Some(name @ ("UDP" | "SCTP")) = match protocol {
                        Some(Protocol::UDP) => Some("UDP"),
                        Some(Protocol::SCTP) => Some("SCTP"),
                        _ => None,
                    } {
                        let diagnostic = self.error(
                            node,
                            &protocol_path,
                            format!("protocol `{name}` is not supported yet for a Service"),
                        );
                        Self::hint(diagnostic, "the node proxies forward `TCP` only");
                    }
                    protocol.unwrap_or(Protocol::TCP)
                }
                None => Protocol::TCP,
            };
            let port = self
                .required(&port_fields, item, &port_path, "port")
                .and_then(|node| {
                    let port = self
                        .ranged(node, &join(&port_path, "port"), 1, 65535)
                        .and_then(|p| u16::try_from(p).ok())?;
                    if let Some(first) = numbers.get(&(port, protocol)) {
                        self.error(
                            node,
                            &join(&port_path, "port"),
                            format!("port {port}/{protocol:?} is declared twice in the Service (first at {file}:{first})"),
                        );
                    } else {
                        numbers.insert((port, protocol), node.line);
                    }
                    Some(port)
                });
            let target_port = match port_fields.get("targetPort") {
                Some(node) => {
                    let target_path = join(&port_path, "targetPort");
                    let at = self.at(node);
                    self.field_sources.insert(target_path.clone(), at);
                    self.port_number_or_name(node, &target_path)
                }
                None => None,
            };
            let node_port = match port_fields.get("nodePort") {
                Some(node) => {
                    let node_port_path = join(&port_path, "nodePort");
                    let at = self.at(node);
                    self.field_sources.insert(node_port_path.clone(), at);
                    let node_port = self.node_port(node, &node_port_path, service_type);
                    if let Some(node_port) = node_port {
                        if let Some(first) = node_ports.get(&(node_port, protocol)) {
                            self.error(
                                node,
                                &node_port_path,
                                format!("nodePort {node_port}/{protocol:?} is declared twice in the Service (first at {file}:{first})"),
                            );
                        } else {
                            node_ports.insert((node_port, protocol), node.line);
                        }
                    }
                    node_port
                }
                None => None,
            };
            let http = match port_fields.get("appProtocol") {
                Some(node) => self.app_protocol(node, &join(&port_path, "appProtocol"), protocol),
                None => false,
            };
            let Some(port) = port else {
                continue;
            };
            ports.push(ServicePort {
                name,
                protocol,
                port,
                target_port: target_port.unwrap_or(PortRef::Number(port)),
                node_port,
                http,
            });
        }
        ports
    }

    /// A Service's name must be a DNS-1035 label, as Kubernetes requires:
    /// `web.v2` would be read as a name in namespace `v2`, and `1web`
    /// makes no environment variable (`1WEB_SERVICE_HOST`).
    fn service_name(&mut self, root: &Node, name: &str) {
        let Err(reason) = names::dns1035_label(name) else {
            return;
        };
        let field = |node: &Node, key: &str| match &node.value {
            crate::manifest::yaml::Value::Mapping(entries) => entries
                .iter()
                .find(|e| e.key.as_scalar().is_some_and(|k| k.text == key))
                .map(|e| e.value.clone()),
            _ => None,
        };
        let at = field(root, "metadata")
            .and_then(|metadata| field(&metadata, "name"))
            .unwrap_or_else(|| root.clone());
        let diagnostic = self.error(
            &at,
            "metadata.name",
            format!("invalid Service name `{name}`: {reason}"),
        );
        Self::hint(
            diagnostic,
            "a Service's name is a DNS label: lowercase letters, digits and `-`, starting with a letter, at most 63 characters",
        );
    }

    /// A port number (1-65535), or an IANA service name (a container
    /// port's name, checked by the caller): a Service's `targetPort`, a
    /// probe's `port`.
    pub(super) fn port_number_or_name(&mut self, node: &Node, path: &str) -> Option<PortRef> {
        match self.int_or_string(node, path)? {
            IntOrString::Int(n) => {
                if !(1..=65535).contains(&n) {
                    self.error(
                        node,
                        path,
                        format!("must be at least 1 and at most 65535, found {n}"),
                    );
                    return None;
                }
                u16::try_from(n).ok().map(PortRef::Number)
            }
            IntOrString::String(name) => {
                if let Err(reason) = names::port_name(&name) {
                    let diagnostic =
                        self.error(node, path, format!("invalid port name `{name}`: {reason}"));
                    if name.parse::<u16>().is_ok() {
                        Self::hint(diagnostic, "write the port number without quotes");
                    }
                    return None;
                }
                Some(PortRef::Name(name))
            }
        }
    }

    /// `nodePort`: only for a NodePort Service, in 30000-32767; 0 (as
    /// Kubernetes reads it) asks for one to be allocated.
    fn node_port(&mut self, node: &Node, path: &str, service_type: ServiceType) -> Option<u16> {
        let number = self.integer(node, path)?;
        if service_type != ServiceType::NodePort {
            let diagnostic = self.error(
                node,
                path,
                "`nodePort` may not be used when `type` is `ClusterIP`",
            );
            Self::hint(
                diagnostic,
                "set `spec.type: NodePort` to serve the port on every node, or remove `nodePort`",
            );
            return None;
        }
        if number == 0 {
            return None;
        }
        let (min, max) = (*NODE_PORTS.start(), *NODE_PORTS.end());
        match u16::try_from(number) {
            Ok(port) if NODE_PORTS.contains(&port) => Some(port),
            _ => {
                let diagnostic = self.error(
                    node,
                    path,
                    format!("nodePort {number} is outside the node port range {min}-{max}"),
                );
                Self::hint(
                    diagnostic,
                    "leave `nodePort` out to have one allocated (stable while the Service keeps its name)",
                );
                None
            }
        }
    }

    /// `appProtocol`: `http` makes the proxy speak HTTP (and add
    /// `X-Forwarded-For`); `tcp` is the default, bytes forwarded as they are.
    fn app_protocol(&mut self, node: &Node, path: &str, protocol: Protocol) -> bool {
        let Some(text) = self.string(node, path) else {
            return false;
        };
        match text.as_str() {
            "tcp" => false,
            "http" if protocol == Protocol::TCP => true,
            "http" => {
                self.error(
                    node,
                    path,
                    format!("appProtocol `http` needs protocol `TCP`, not `{protocol:?}`"),
                );
                false
            }
            _ => {
                let diagnostic = self.error(
                    node,
                    path,
                    format!("appProtocol `{text}` is not supported yet"),
                );
                Self::hint(
                    diagnostic,
                    "`http` has the proxy speak HTTP/1 and add `X-Forwarded-For`; leave it out (or `tcp`) to forward the bytes as they are",
                );
                false
            }
        }
    }

    /// `clusterIP`, and `clusterIPs` (one address, equal to `clusterIP`).
    fn requested_cluster_ip(&mut self, fields: &Fields) -> Option<Ipv4Addr> {
        let cluster_ip = fields.get("clusterIP").map(|node| {
            let at = self.at(node);
            self.field_sources.insert("spec.clusterIP".to_string(), at);
            (node, self.cluster_ip(node, "spec.clusterIP"))
        });
        let path = "spec.clusterIPs";
        let first = match fields.get("clusterIPs") {
            Some(node) => {
                let items = self.sequence(node, path).unwrap_or_default();
                if let Some(second) = items.get(1) {
                    let diagnostic = self.error(
                        second,
                        &index(path, 1),
                        "a Service has one address: dual-stack is not supported",
                    );
                    Self::hint(diagnostic, "flotilla's Service network is IPv4 only");
                }
                items.first().map(|item| {
                    let item_path = index(path, 0);
                    if cluster_ip.is_none() {
                        let at = self.at(item);
                        self.field_sources.insert("spec.clusterIP".to_string(), at);
                    }
                    (item, self.cluster_ip(item, &item_path))
                })
            }
            None => None,
        };
        let requested = match (cluster_ip, first) {
            (Some((_, Some(a))), Some((item, Some(b)))) if a != b => {
                let diagnostic = self.error(
                    item,
                    &index(path, 0),
                    "`clusterIPs[0]` must equal `clusterIP`",
                );
                Self::hint(
                    diagnostic,
                    "`clusterIPs` repeats `clusterIP`: give the one address once",
                );
                return None;
            }
            (Some((_, requested)), _) | (None, Some((_, requested))) => requested?,
            (None, None) => ClusterIp::Allocate,
        };
        match requested {
            ClusterIp::Allocate => None,
            ClusterIp::Address(address) => Some(address),
        }
    }

    fn cluster_ip(&mut self, node: &Node, path: &str) -> Option<ClusterIp> {
        let text = self.string(node, path)?;
        if text.is_empty() {
            return Some(ClusterIp::Allocate);
        }
        if text == "None" {
            let diagnostic = self.error(
                node,
                path,
                "headless Services (`clusterIP: None`) are not supported",
            );
            Self::hint(
                diagnostic,
                "flotilla has no overlay network: a pod cannot reach another node's pod addresses, which a headless Service hands out; leave `clusterIP` out to get a virtual address the node proxies serve",
            );
            return None;
        }
        // core::net only parses addresses; it opens nothing.
        match text.parse::<core::net::IpAddr>() {
            Ok(core::net::IpAddr::V4(address)) => Some(ClusterIp::Address(address)),
            Ok(core::net::IpAddr::V6(_)) => {
                let diagnostic = self.error(
                    node,
                    path,
                    format!("IPv6 address `{text}` is not supported yet"),
                );
                Self::hint(diagnostic, "flotilla's Service network is IPv4 only");
                None
            }
            Err(_) => {
                let diagnostic = self.error(
                    node,
                    path,
                    format!(
                        "invalid clusterIP `{text}`: must be an IPv4 address, `\"\"` or `None`"
                    ),
                );
                Self::hint(
                    diagnostic,
                    "leave it out to have one allocated from the Cluster's `serviceCIDR`",
                );
                None
            }
        }
    }

    /// `ipFamilies` (only `IPv4`) and `ipFamilyPolicy` (single stack;
    /// `PreferDualStack` is single stack on an IPv4-only network, as in
    /// Kubernetes).
    fn ip_families(&mut self, fields: &Fields) {
        if let Some(node) = fields.get("ipFamilies") {
            let path = "spec.ipFamilies";
            let items = self.sequence(node, path).unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                let item_path = index(path, i);
                let family = self.enumeration(item, &item_path, &[("IPv4", true), ("IPv6", false)]);
                if i > 0 {
                    let diagnostic = self.error(
                        item,
                        &item_path,
                        "a Service has one IP family: dual-stack is not supported",
                    );
                    Self::hint(diagnostic, "flotilla's Service network is IPv4 only");
                } else if family == Some(false) {
                    let diagnostic =
                        self.error(item, &item_path, "IP family `IPv6` is not supported yet");
                    Self::hint(diagnostic, "flotilla's Service network is IPv4 only");
                }
            }
        }
        if let Some(node) = fields.get("ipFamilyPolicy") {
            let path = "spec.ipFamilyPolicy";
            let require_dual_stack = self.enumeration(
                node,
                path,
                &[
                    ("SingleStack", false),
                    ("PreferDualStack", false),
                    ("RequireDualStack", true),
                ],
            );
            if require_dual_stack == Some(true) {
                let diagnostic = self.error(
                    node,
                    path,
                    "ipFamilyPolicy `RequireDualStack` is not supported",
                );
                Self::hint(
                    diagnostic,
                    "flotilla's Service network is IPv4 only: use `SingleStack`",
                );
            }
        }
    }

    fn session_affinity(&mut self, fields: &Fields) -> SessionAffinity {
        let client_ip = match fields.get("sessionAffinity") {
            Some(node) => self
                .enumeration(
                    node,
                    "spec.sessionAffinity",
                    &[("None", false), ("ClientIP", true)],
                )
                .unwrap_or(false),
            None => false,
        };
        let mut timeout_seconds = CLIENT_IP_TIMEOUT_SECONDS;
        if let Some(config) = fields.get("sessionAffinityConfig") {
            let path = "spec.sessionAffinityConfig";
            if !client_ip {
                let diagnostic = self.error(
                    config,
                    path,
                    "`sessionAffinityConfig` may only be set when `sessionAffinity` is `ClientIP`",
                );
                Self::hint(
                    diagnostic,
                    "set `sessionAffinity: ClientIP`, or remove `sessionAffinityConfig`",
                );
            } else if let Some(config_fields) = self.fields(config, path, &SESSION_AFFINITY_CONFIG)
            {
                if let Some(client) = config_fields.get("clientIP") {
                    let client_path = join(path, "clientIP");
                    if let Some(client_fields) =
                        self.fields(client, &client_path, &CLIENT_IP_CONFIG)
                    {
                        if let Some(timeout) = client_fields.get("timeoutSeconds") {
                            timeout_seconds = self
                                .ranged(
                                    timeout,
                                    &join(&client_path, "timeoutSeconds"),
                                    1,
                                    CLIENT_IP_TIMEOUT_MAX,
                                )
                                .and_then(|t| u32::try_from(t).ok())
                                .unwrap_or(CLIENT_IP_TIMEOUT_SECONDS);
                        }
                    }
                }
            }
        }
        if client_ip {
            SessionAffinity::ClientIP { timeout_seconds }
        } else {
            SessionAffinity::None
        }
    }

    /// `externalTrafficPolicy`: `Local` is whether a node port serves only
    /// its node's endpoints; meaningless, and an error as in Kubernetes,
    /// without a node port.
    fn external_traffic_policy(&mut self, fields: &Fields, service_type: ServiceType) -> bool {
        let Some(node) = fields.get("externalTrafficPolicy") else {
            return false;
        };
        let path = "spec.externalTrafficPolicy";
        let local = self
            .enumeration(node, path, &[("Cluster", false), ("Local", true)])
            .unwrap_or(false);
        if service_type != ServiceType::NodePort {
            let diagnostic = self.error(
                node,
                path,
                "`externalTrafficPolicy` may only be set when `type` is `NodePort`",
            );
            Self::hint(
                diagnostic,
                "it chooses which endpoints a node port serves; a ClusterIP Service has none",
            );
            return false;
        }
        local
    }

    /// The annotations flotilla reads on a Service: `flotilla.dev/load-balancer`
    /// (the balance) and `flotilla.dev/proxy-protocol` (the PROXY header);
    /// another `flotilla.dev/` annotation is a mistake, named.
    fn service_annotations(
        &mut self,
        root: &Node,
        meta: &ObjectMeta,
        ports: &[ServicePort],
    ) -> (Balance, bool) {
        let mut balance = Balance::RoundRobin;
        let mut proxy_protocol = false;
        for (key, value) in &meta.annotations {
            let Some(node) = annotation_node(root, key) else {
                continue;
            };
            let path = key_path("metadata.annotations", key);
            match key.as_str() {
                LOAD_BALANCER_ANNOTATION => match value.as_str() {
                    "round-robin" => balance = Balance::RoundRobin,
                    "least-connections" => balance = Balance::LeastConnections,
                    _ => {
                        let options = ["round-robin", "least-connections"];
                        let diagnostic = self.error(
                            node,
                            &path,
                            format!(
                                "invalid value `{value}` for annotation `{key}`, expected {}",
                                one_of(&options)
                            ),
                        );
                        if let Some(suggestion) = names::did_you_mean(value, &options) {
                            Self::hint(diagnostic, format!("did you mean `{suggestion}`?"));
                        }
                    }
                },
                PROXY_PROTOCOL_ANNOTATION => {
                    if value != "v2" {
                        let diagnostic = self.error(
                            node,
                            &path,
                            format!(
                                "invalid value `{value}` for annotation `{key}`, expected `v2`"
                            ),
                        );
                        Self::hint(
                            diagnostic,
                            "flotilla sends the PROXY protocol's version 2 (binary) header; remove the annotation to send none",
                        );
                        continue;
                    }
                    proxy_protocol = true;
                    for port in ports {
                        let port_name = port_label(port);
                        if port.http {
                            let diagnostic = self.error(
                                node,
                                &path,
                                format!("the PROXY protocol cannot be sent on port {port_name}, which has `appProtocol: http`"),
                            );
                            Self::hint(
                                diagnostic,
                                "an HTTP port carries the client's address in `X-Forwarded-For`; remove the annotation or that port's `appProtocol`",
                            );
                        } else if port.protocol == Protocol::UDP {
                            let diagnostic = self.error(
                                node,
                                &path,
                                format!("the PROXY protocol cannot be sent on port {port_name}, which is UDP"),
                            );
                            Self::hint(
                                diagnostic,
                                "the header opens a TCP stream; put UDP ports in a Service of their own",
                            );
                        }
                    }
                }
                _ if key.starts_with("flotilla.dev/") => {
                    let message = match names::did_you_mean(key, SERVICE_ANNOTATIONS) {
                        Some(suggestion) => {
                            format!("unknown annotation `{key}`, did you mean `{suggestion}`?")
                        }
                        None => format!("unknown annotation `{key}`"),
                    };
                    let key_node = annotation_key_node(root, key).unwrap_or(node);
                    let diagnostic = self.error(key_node, &path, message);
                    Self::hint(
                        diagnostic,
                        format!(
                            "flotilla reads {} on a Service",
                            one_of(SERVICE_ANNOTATIONS)
                        ),
                    );
                }
                _ => {}
            }
        }
        (balance, proxy_protocol)
    }
}

const SELECTOR_HINT: &str = "flotilla finds a Service's endpoints from `spec.selector`, the labels of the pods it serves (e.g. `selector: {app: web}`); Endpoints declared by hand are not supported";

/// `http` (its name), or `80` (its number) when it has none: how a message
/// names a Service port.
pub(crate) fn port_label(port: &ServicePort) -> String {
    match &port.name {
        Some(name) => format!("`{name}`"),
        None => format!("{}", port.port),
    }
}

/// The entry of `metadata.annotations` named `key` in the document `root`.
fn annotation_entry<'n>(root: &'n Node, key: &str) -> Option<&'n super::super::yaml::Entry> {
    let field = |node: &'n Node, name: &str| match &node.value {
        Value::Mapping(entries) => entries
            .iter()
            .find(|e| e.key.as_scalar().is_some_and(|k| k.text == name)),
        _ => None,
    };
    let metadata = field(root, "metadata")?;
    let annotations = field(&metadata.value, "annotations")?;
    field(&annotations.value, key)
}

fn annotation_node<'n>(root: &'n Node, key: &str) -> Option<&'n Node> {
    annotation_entry(root, key).map(|e| &e.value)
}

fn annotation_key_node<'n>(root: &'n Node, key: &str) -> Option<&'n Node> {
    annotation_entry(root, key).map(|e| &e.key)
}
