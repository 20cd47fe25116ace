//! The cluster-scoped objects: the one `Cluster` (settings and policy) and
//! each `Node` (connection, capacity, labels, taints).

use super::*;

const CLUSTER_SPEC: Schema = Schema {
    known: &[
        "scoringStrategy",
        "nodeGracePeriodSeconds",
        "resyncSeconds",
        "policy",
        "serviceCIDR",
        "secrets",
    ],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CLUSTER_SECRETS: Schema = Schema {
    known: &["recipients"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CLUSTER_POLICY: Schema = Schema {
    known: &["hostPorts", "allowedHostPaths"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// A range of `spec.policy.hostPorts`, as PodSecurityPolicy's HostPortRange.
const HOST_PORT_RANGE: Schema = Schema {
    known: &["min", "max"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// An entry of `spec.policy.allowedHostPaths`, as PodSecurityPolicy's
/// AllowedHostPath.
const ALLOWED_HOST_PATH: Schema = Schema {
    known: &["pathPrefix", "readOnly"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const NODE_SPEC: Schema = Schema {
    known: &[
        "address",
        "port",
        "user",
        "identityFile",
        "dockerSocket",
        "transport",
        "capacity",
        "taints",
        "unschedulable",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[
        ("labels", "node labels are `metadata.labels`"),
        ("annotations", "node annotations are `metadata.annotations`"),
    ],
};

const CAPACITY: Schema = Schema {
    known: &["cpu", "memory", "pods", "storage"],
    unsupported: &["ephemeral-storage"],
    ignored: &[],
    hints: NO_HINTS,
};

const TAINT: Schema = Schema {
    known: &["key", "value", "effect"],
    unsupported: &["timeAdded"],
    ignored: &[],
    hints: NO_HINTS,
};

impl Decoder<'_> {
    pub(super) fn cluster_spec(&mut self, node: &Node) -> ClusterSettings {
        let mut settings = ClusterSettings::default();
        let Some(fields) = self.fields(node, "spec", &CLUSTER_SPEC) else {
            return settings;
        };
        if let Some(strategy) = fields.get("scoringStrategy") {
            settings.scoring_strategy = self
                .enumeration(
                    strategy,
                    "spec.scoringStrategy",
                    &[
                        ("LeastAllocated", ScoringStrategy::LeastAllocated),
                        ("MostAllocated", ScoringStrategy::MostAllocated),
                    ],
                )
                .unwrap_or_default();
        }
        settings.node_grace_period_seconds =
            self.count_or(&fields, "spec", "nodeGracePeriodSeconds", 1, 40);
        settings.resync_seconds = self.count_or(&fields, "spec", "resyncSeconds", 1, 30);
        if let Some(policy) = fields.get("policy") {
            self.cluster_policy(policy, &mut settings.policy);
        }
        if let Some(cidr) = fields.get("serviceCIDR") {
            settings.service_cidr = self
                .service_cidr(cidr, "spec.serviceCIDR")
                .unwrap_or(ServiceCidr::DEFAULT);
        }
        if let Some(secrets) = fields.get("secrets") {
            settings.secret_recipients = self.secret_recipients(secrets, "spec.secrets");
        }
        settings
    }

    /// `spec.secrets.recipients`: the age recipients every Secret value is
    /// sealed for, each once.
    fn secret_recipients(&mut self, node: &Node, path: &str) -> Vec<String> {
        let file = self.file;
        let mut recipients = Vec::new();
        let Some(fields) = self.fields(node, path, &CLUSTER_SECRETS) else {
            return recipients;
        };
        let Some(list) = fields.get("recipients") else {
            return recipients;
        };
        let list_path = join(path, "recipients");
        let Some(items) = self.sequence(list, &list_path) else {
            return recipients;
        };
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = index(&list_path, i);
            let Some(recipient) = self.string(item, &item_path) else {
                continue;
            };
            if let Err(reason) = names::age_recipient(&recipient) {
                let diagnostic = self.error(
                    item,
                    &item_path,
                    format!("invalid age recipient `{recipient}`: {reason}"),
                );
                Self::hint(
                    diagnostic,
                    "an age recipient is the public key `age-keygen -y IDENTITY_FILE` prints: `age1` and 58 more characters",
                );
                continue;
            }
            if let Some(first) = seen.get(&recipient) {
                self.error(
                    item,
                    &item_path,
                    format!("recipient `{recipient}` is listed twice (first at {file}:{first})"),
                );
                continue;
            }
            seen.insert(recipient.clone(), item.line);
            recipients.push(recipient);
        }
        recipients
    }

    /// `spec.serviceCIDR`: an IPv4 network `base/prefix`, prefix 8 to 28
    /// (at most 16,777,216 addresses; at least 16), written with its network
    /// address, outside the ranges no node could route to itself.
    fn service_cidr(&mut self, node: &Node, path: &str) -> Option<ServiceCidr> {
        let text = self.string(node, path)?;
        let parsed = text.split_once('/').and_then(|(base, prefix)| {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 2
                && prefix.bytes().all(|b| b.is_ascii_digit());
            // core::net only parses addresses; it opens nothing.
            Some((
                base.parse::<core::net::Ipv4Addr>().ok()?,
                prefix.parse::<u8>().ok().filter(|_| prefix_ok)?,
            ))
        });
        let Some((base, prefix)) = parsed else {
            let diagnostic = self.error(
                node,
                path,
                format!(
                    "invalid serviceCIDR `{text}`: expected an IPv4 network like `10.96.0.0/12`"
                ),
            );
            let hint = if text.contains(':') {
                "IPv6 Service networks are not supported yet"
            } else {
                "write the network address and the prefix length, e.g. `10.96.0.0/12`"
            };
            Self::hint(diagnostic, hint);
            return None;
        };
        if !(8..=28).contains(&prefix) {
            let diagnostic = self.error(
                node,
                path,
                format!(
                    "serviceCIDR `{text}`: the prefix must be between 8 and 28, found {prefix}"
                ),
            );
            Self::hint(
                diagnostic,
                "Kubernetes' default is `10.96.0.0/12`; a /28 holds 13 Services",
            );
            return None;
        }
        let cidr = ServiceCidr { base, prefix };
        let network = core::net::Ipv4Addr::from(u32::from(base) & cidr.mask());
        if network != base {
            let diagnostic = self.error(
                node,
                path,
                format!("serviceCIDR `{text}` has host bits set"),
            );
            Self::hint(diagnostic, format!("did you mean `{network}/{prefix}`?"));
            return None;
        }
        let reserved = [
            (ServiceCidr::new(0, 0, 0, 0, 8), "\"this network\""),
            (ServiceCidr::new(127, 0, 0, 0, 8), "loopback"),
            (ServiceCidr::new(169, 254, 0, 0, 16), "link-local"),
            (ServiceCidr::new(224, 0, 0, 0, 3), "multicast and reserved"),
        ];
        for (range, what) in reserved {
            if range.contains(base) || cidr.contains(range.base) {
                let diagnostic = self.error(
                    node,
                    path,
                    format!("serviceCIDR `{text}` overlaps {range}, the {what} addresses"),
                );
                Self::hint(
                    diagnostic,
                    "choose a private range no node or container network uses, e.g. `10.96.0.0/12`",
                );
                return None;
            }
        }
        Some(cidr)
    }

    fn cluster_policy(&mut self, node: &Node, policy: &mut ClusterPolicy) {
        let path = "spec.policy";
        let Some(fields) = self.fields(node, path, &CLUSTER_POLICY) else {
            return;
        };
        if let Some(host_ports) = fields.get("hostPorts") {
            let path = "spec.policy.hostPorts";
            let Some(items) = self.sequence(host_ports, path) else {
                return;
            };
            let mut ranges = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = index(path, i);
                let Some(range_fields) = self.fields(item, &item_path, &HOST_PORT_RANGE) else {
                    continue;
                };
                let mut bound = |name: &str| -> Option<u16> {
                    let node = self.required(&range_fields, item, &item_path, name)?;
                    self.ranged(node, &join(&item_path, name), 1, 65535)
                        .and_then(|p| u16::try_from(p).ok())
                };
                let (min, max) = (bound("min"), bound("max"));
                if let (Some(min), Some(max)) = (min, max) {
                    if min > max {
                        self.error(
                            item,
                            &item_path,
                            format!("range {min}-{max} ends before it starts"),
                        );
                    } else {
                        ranges.push((min, max));
                    }
                }
            }
            policy.host_ports = Some(PortRanges::new(ranges));
            policy.host_ports_source = Some(self.at(host_ports));
        }
        if let Some(allowed) = fields.get("allowedHostPaths") {
            policy.allowed_host_paths =
                self.allowed_host_paths(allowed, "spec.policy.allowedHostPaths");
        }
    }

    /// `spec.policy.allowedHostPaths`: each prefix absolute, normalized and
    /// listed once.
    fn allowed_host_paths(&mut self, node: &Node, path: &str) -> Vec<AllowedHostPath> {
        let file = self.file;
        let mut allowed = Vec::new();
        let Some(items) = self.sequence(node, path) else {
            return allowed;
        };
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            let Some(fields) = self.fields(item, &item_path, &ALLOWED_HOST_PATH) else {
                continue;
            };
            let prefix = self
                .required(&fields, item, &item_path, "pathPrefix")
                .and_then(|prefix| {
                    let prefix_path = join(&item_path, "pathPrefix");
                    let text =
                        self.checked_name(prefix, &prefix_path, "pathPrefix", names::host_path)?;
                    if let Some(first) = seen.get(&text) {
                        self.error(
                            prefix,
                            &prefix_path,
                            format!(
                                "pathPrefix `{text}` is listed twice (first at {file}:{first})"
                            ),
                        );
                        return None;
                    }
                    seen.insert(text.clone(), prefix.line);
                    Some(text)
                });
            let read_only = match fields.get("readOnly") {
                Some(read_only) => self.boolean(read_only, &join(&item_path, "readOnly")),
                None => Some(false),
            };
            if let (Some(path_prefix), Some(read_only)) = (prefix, read_only) {
                allowed.push(AllowedHostPath {
                    path_prefix,
                    read_only,
                });
            }
        }
        allowed
    }

    pub(super) fn node_spec(&mut self, node: Option<&Node>, root: &Node) -> Option<NodeSpec> {
        let path = "spec";
        let mut spec = NodeSpec {
            address: String::new(),
            port: 22,
            user: "root".to_string(),
            identity_file: None,
            docker_socket: "/var/run/docker.sock".to_string(),
            transport: Transport::Ssh,
            capacity: Capacity::default(),
            taints: Vec::new(),
            unschedulable: false,
        };
        let fields = match node {
            Some(node) => self.fields(node, path, &NODE_SPEC)?,
            None => Fields {
                entries: Vec::new(),
            },
        };
        if let Some(transport) = fields.get("transport") {
            let at = self.at(transport);
            self.field_sources.insert("spec.transport".to_string(), at);
            spec.transport = self
                .enumeration(
                    transport,
                    "spec.transport",
                    &[("ssh", Transport::Ssh), ("local", Transport::Local)],
                )
                .unwrap_or(Transport::Ssh);
        }
        match fields.get("address") {
            Some(address) => {
                if let Some(text) = self.string(address, "spec.address") {
                    self.node_field(
                        address,
                        "spec.address",
                        &text,
                        crate::manifest::node_fields::check_address,
                    );
                    spec.address = text;
                }
            }
            None if spec.transport == Transport::Ssh => {
                let diagnostic = self.error(
                    node.unwrap_or(root),
                    "spec.address",
                    "missing field `address`",
                );
                Self::hint(diagnostic, "a node reached over SSH needs `spec.address`; use `transport: local` for this machine");
            }
            None => {}
        }
        if let Some(port) = fields.get("port") {
            spec.port = self
                .ranged(port, "spec.port", 1, 65535)
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(22);
        }
        if let Some(user) = fields.get("user") {
            if let Some(text) = self.string(user, "spec.user") {
                self.node_field(
                    user,
                    "spec.user",
                    &text,
                    crate::manifest::node_fields::check_user,
                );
                spec.user = text;
            }
        }
        if let Some(identity) = fields.get("identityFile") {
            spec.identity_file = self.string(identity, "spec.identityFile");
            if let Some(path) = &spec.identity_file {
                self.node_field(
                    identity,
                    "spec.identityFile",
                    path,
                    crate::manifest::node_fields::check_identity_file,
                );
            }
        }
        if let Some(socket) = fields.get("dockerSocket") {
            if let Some(text) = self.string(socket, "spec.dockerSocket") {
                self.node_field(
                    socket,
                    "spec.dockerSocket",
                    &text,
                    crate::manifest::node_fields::check_socket_path,
                );
                spec.docker_socket = text;
            }
        }
        if let Some(capacity) = fields.get("capacity") {
            let path = "spec.capacity";
            if let Some(capacity_fields) = self.fields(capacity, path, &CAPACITY) {
                if let Some(cpu) = capacity_fields.get("cpu") {
                    spec.capacity.cpu = self.cpu(cpu, "spec.capacity.cpu");
                }
                if let Some(memory) = capacity_fields.get("memory") {
                    spec.capacity.memory = self.memory(memory, "spec.capacity.memory");
                }
                if let Some(pods) = capacity_fields.get("pods") {
                    spec.capacity.pods = self.count(pods, "spec.capacity.pods", 0);
                }
                if let Some(storage) = capacity_fields.get("storage") {
                    spec.capacity.storage = self.memory(storage, "spec.capacity.storage");
                }
            }
        }
        if let Some(taints) = fields.get("taints") {
            if let Some(items) = self.sequence(taints, "spec.taints") {
                for (i, item) in items.iter().enumerate() {
                    if let Some(taint) = self.taint(item, &index("spec.taints", i)) {
                        spec.taints.push(taint);
                    }
                }
            }
        }
        if let Some(unschedulable) = fields.get("unschedulable") {
            spec.unschedulable = self
                .boolean(unschedulable, "spec.unschedulable")
                .unwrap_or(false);
        }
        Some(spec)
    }

    /// One of a Node's address, user or paths, checked by `check`
    /// ([`crate::manifest::node_fields`]); an error at the value when it is refused.
    fn node_field(
        &mut self,
        node: &Node,
        path: &str,
        value: &str,
        check: fn(&str) -> Result<(), crate::manifest::node_fields::Invalid>,
    ) {
        if let Err(invalid) = check(value) {
            let diagnostic = self.error(node, path, invalid.message);
            Self::hint(diagnostic, invalid.hint);
        }
    }

    fn taint(&mut self, node: &Node, path: &str) -> Option<Taint> {
        let fields = self.fields(node, path, &TAINT)?;
        let key_node = self.required(&fields, node, path, "key")?;
        let key = self.checked_name(
            key_node,
            &join(path, "key"),
            "taint key",
            names::qualified_name,
        )?;
        let value = match fields.get("value") {
            Some(value) => self.checked_name(
                value,
                &join(path, "value"),
                "taint value",
                names::label_value,
            )?,
            None => String::new(),
        };
        let effect_node = self.required(&fields, node, path, "effect")?;
        let effect = self.taint_effect(effect_node, &join(path, "effect"))?;
        Some(Taint { key, value, effect })
    }

    pub(super) fn taint_effect(&mut self, node: &Node, path: &str) -> Option<TaintEffect> {
        self.enumeration(
            node,
            path,
            &[
                ("NoSchedule", TaintEffect::NoSchedule),
                ("PreferNoSchedule", TaintEffect::PreferNoSchedule),
                ("NoExecute", TaintEffect::NoExecute),
            ],
        )
    }
}
