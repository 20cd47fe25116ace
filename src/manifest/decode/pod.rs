//! Pod templates as every workload kind has them: label selectors, the
//! pod spec (scheduling: node selector, affinity, tolerations, topology
//! spread) and its containers (ports, resources, probes, environment).
//! What a pod reads from ConfigMaps and Secrets is in `pod_config.rs`.

use std::collections::BTreeSet;

use super::*;

const LABEL_SELECTOR: Schema = Schema {
    known: &["matchLabels", "matchExpressions"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const SELECTOR_REQUIREMENT: Schema = Schema {
    known: &["key", "operator", "values"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const TEMPLATE: Schema = Schema {
    known: &["metadata", "spec"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const TEMPLATE_METADATA: Schema = Schema {
    known: &["labels", "annotations"],
    unsupported: &[],
    ignored: &["creationTimestamp"],
    hints: NO_HINTS,
};

const POD_SPEC: Schema = Schema {
    known: &[
        "containers",
        "restartPolicy",
        "nodeSelector",
        "affinity",
        "tolerations",
        "topologySpreadConstraints",
        "terminationGracePeriodSeconds",
        "volumes",
        "imagePullSecrets",
        "initContainers",
    ],
    unsupported: &[
        "ephemeralContainers",
        "activeDeadlineSeconds",
        "dnsPolicy",
        "dnsConfig",
        "serviceAccountName",
        "serviceAccount",
        "automountServiceAccountToken",
        "nodeName",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "shareProcessNamespace",
        "securityContext",
        "hostname",
        "subdomain",
        "schedulerName",
        "priorityClassName",
        "priority",
        "readinessGates",
        "runtimeClassName",
        "enableServiceLinks",
        "preemptionPolicy",
        "overhead",
        "setHostnameAsFQDN",
        "os",
        "hostUsers",
        "schedulingGates",
        "resourceClaims",
        "hostAliases",
        "resources",
    ],
    ignored: &[],
    hints: &[("labels", "pod labels are `spec.template.metadata.labels`")],
};

const CONTAINER: Schema = Schema {
    known: &[
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "env",
        "ports",
        "resources",
        "readinessProbe",
        "livenessProbe",
        "startupProbe",
        "workingDir",
        "envFrom",
        "volumeMounts",
        "lifecycle",
        "restartPolicy",
    ],
    unsupported: &[
        "volumeDevices",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "securityContext",
        "stdin",
        "stdinOnce",
        "tty",
        "resizePolicy",
    ],
    ignored: &[],
    hints: NO_HINTS,
};

const LIFECYCLE: Schema = Schema {
    known: &["postStart", "preStop"],
    unsupported: &["stopSignal"],
    ignored: &[],
    hints: NO_HINTS,
};

const LIFECYCLE_HANDLER: Schema = Schema {
    known: &["exec", "httpGet", "sleep"],
    unsupported: &["tcpSocket"],
    ignored: &[],
    hints: NO_HINTS,
};

const SLEEP: Schema = Schema {
    known: &["seconds"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// Which list of the pod a container is declared in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContainerList {
    /// `containers`.
    App,
    /// `initContainers`.
    Init,
}

const ENV_VAR: Schema = Schema {
    known: &["name", "value", "valueFrom"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CONTAINER_PORT: Schema = Schema {
    known: &["containerPort", "hostPort", "hostIP", "protocol", "name"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const RESOURCES: Schema = Schema {
    known: &["requests", "limits"],
    unsupported: &["claims"],
    ignored: &[],
    hints: NO_HINTS,
};

const RESOURCE_LIST: Schema = Schema {
    known: &["cpu", "memory"],
    unsupported: &["ephemeral-storage", "storage"],
    ignored: &[],
    hints: NO_HINTS,
};

const PROBE: Schema = Schema {
    known: &[
        "httpGet",
        "tcpSocket",
        "exec",
        "initialDelaySeconds",
        "periodSeconds",
        "timeoutSeconds",
        "successThreshold",
        "failureThreshold",
    ],
    unsupported: &["grpc", "terminationGracePeriodSeconds"],
    ignored: &[],
    hints: NO_HINTS,
};

const HTTP_GET: Schema = Schema {
    known: &["path", "port", "scheme", "httpHeaders"],
    unsupported: &["host"],
    ignored: &[],
    hints: NO_HINTS,
};

const HTTP_HEADER: Schema = Schema {
    known: &["name", "value"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const TCP_SOCKET: Schema = Schema {
    known: &["port"],
    unsupported: &["host"],
    ignored: &[],
    hints: NO_HINTS,
};

const EXEC: Schema = Schema {
    known: &["command"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const AFFINITY: Schema = Schema {
    known: &["nodeAffinity", "podAntiAffinity"],
    unsupported: &["podAffinity"],
    ignored: &[],
    hints: NO_HINTS,
};

const NODE_AFFINITY: Schema = Schema {
    known: &["requiredDuringSchedulingIgnoredDuringExecution"],
    unsupported: &["preferredDuringSchedulingIgnoredDuringExecution"],
    ignored: &[],
    hints: NO_HINTS,
};

const NODE_SELECTOR: Schema = Schema {
    known: &["nodeSelectorTerms"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const NODE_SELECTOR_TERM: Schema = Schema {
    known: &["matchExpressions"],
    unsupported: &["matchFields"],
    ignored: &[],
    hints: NO_HINTS,
};

const POD_ANTI_AFFINITY: Schema = Schema {
    known: &["requiredDuringSchedulingIgnoredDuringExecution"],
    unsupported: &["preferredDuringSchedulingIgnoredDuringExecution"],
    ignored: &[],
    hints: NO_HINTS,
};

const POD_AFFINITY_TERM: Schema = Schema {
    known: &["labelSelector", "topologyKey"],
    unsupported: &[
        "namespaces",
        "namespaceSelector",
        "matchLabelKeys",
        "mismatchLabelKeys",
    ],
    ignored: &[],
    hints: NO_HINTS,
};

const TOPOLOGY_SPREAD: Schema = Schema {
    known: &[
        "maxSkew",
        "topologyKey",
        "whenUnsatisfiable",
        "labelSelector",
    ],
    unsupported: &[
        "minDomains",
        "nodeAffinityPolicy",
        "nodeTaintsPolicy",
        "matchLabelKeys",
    ],
    ignored: &[],
    hints: NO_HINTS,
};

const TOLERATION: Schema = Schema {
    known: &["key", "operator", "value", "effect", "tolerationSeconds"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

impl Decoder<'_> {
    pub(super) fn label_selector(
        &mut self,
        node: &Node,
        path: &str,
        node_operators: bool,
    ) -> LabelSelector {
        let mut selector = LabelSelector::default();
        let Some(fields) = self.fields(node, path, &LABEL_SELECTOR) else {
            return selector;
        };
        if let Some(labels) = fields.get("matchLabels") {
            selector.match_labels = self.labels(labels, &join(path, "matchLabels"));
        }
        if let Some(expressions) = fields.get("matchExpressions") {
            selector.match_expressions =
                self.requirements(expressions, &join(path, "matchExpressions"), node_operators);
        }
        selector
    }

    fn requirements(
        &mut self,
        node: &Node,
        path: &str,
        node_operators: bool,
    ) -> Vec<LabelSelectorRequirement> {
        let mut requirements = Vec::new();
        let Some(items) = self.sequence(node, path) else {
            return requirements;
        };
        for (i, item) in items.iter().enumerate() {
            if let Some(r) = self.requirement(item, &index(path, i), node_operators) {
                requirements.push(r);
            }
        }
        requirements
    }

    fn requirement(
        &mut self,
        node: &Node,
        path: &str,
        node_operators: bool,
    ) -> Option<LabelSelectorRequirement> {
        let fields = self.fields(node, path, &SELECTOR_REQUIREMENT)?;
        let key_node = self.required(&fields, node, path, "key")?;
        let key = self.checked_name(
            key_node,
            &join(path, "key"),
            "label key",
            names::qualified_name,
        )?;
        let operator_node = self.required(&fields, node, path, "operator")?;
        let mut operators = vec![
            ("In", SelectorOperator::In),
            ("NotIn", SelectorOperator::NotIn),
            ("Exists", SelectorOperator::Exists),
            ("DoesNotExist", SelectorOperator::DoesNotExist),
        ];
        if node_operators {
            operators.push(("Gt", SelectorOperator::Gt));
            operators.push(("Lt", SelectorOperator::Lt));
        }
        let operator = self.enumeration(operator_node, &join(path, "operator"), &operators)?;
        let values_path = join(path, "values");
        let values = match fields.get("values") {
            Some(values) => self.string_list(values, &values_path)?,
            None => Vec::new(),
        };
        let at = fields.get("values").unwrap_or(operator_node);
        let name = operator_node
            .as_scalar()
            .map_or("", |s| s.text.as_str())
            .to_string();
        match operator {
            SelectorOperator::In | SelectorOperator::NotIn if values.is_empty() => {
                self.error(
                    at,
                    &values_path,
                    format!("`values` must not be empty with operator `{name}`"),
                );
                return None;
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !values.is_empty() => {
                self.error(
                    at,
                    &values_path,
                    format!("`values` must be empty with operator `{name}`"),
                );
                return None;
            }
            SelectorOperator::Gt | SelectorOperator::Lt => {
                if values.len() != 1 {
                    self.error(
                        at,
                        &values_path,
                        format!("`values` must have exactly one element with operator `{name}`"),
                    );
                    return None;
                }
                if values[0].parse::<i64>().is_err() {
                    self.error(
                        at,
                        &values_path,
                        format!(
                            "`values` must be an integer with operator `{name}`, found `{}`",
                            values[0]
                        ),
                    );
                    return None;
                }
            }
            SelectorOperator::In | SelectorOperator::NotIn => {
                for (i, value) in values.iter().enumerate() {
                    if let Err(reason) = names::label_value(value) {
                        self.error(
                            at,
                            &index(&values_path, i),
                            format!("invalid label value `{value}`: {reason}"),
                        );
                    }
                }
            }
            _ => {}
        }
        Some(LabelSelectorRequirement {
            key,
            operator,
            values,
        })
    }

    pub(super) fn pod_template(
        &mut self,
        node: &Node,
        path: &str,
        document: &mut DecodedDocument,
    ) -> PodTemplate {
        let mut template = PodTemplate::default();
        let Some(fields) = self.fields(node, path, &TEMPLATE) else {
            return template;
        };
        if let Some(metadata) = fields.get("metadata") {
            let meta_path = join(path, "metadata");
            if let Some(meta_fields) = self.fields(metadata, &meta_path, &TEMPLATE_METADATA) {
                if let Some(labels) = meta_fields.get("labels") {
                    template.labels = self.labels(labels, &join(&meta_path, "labels"));
                }
                if let Some(annotations) = meta_fields.get("annotations") {
                    template.annotations =
                        self.annotations(annotations, &join(&meta_path, "annotations"));
                }
            }
        }
        if let Some(spec) = self.required(&fields, node, path, "spec") {
            template.spec = self.pod_spec(spec, &join(path, "spec"), document);
        }
        template
    }

    pub(super) fn pod_spec(
        &mut self,
        node: &Node,
        path: &str,
        document: &mut DecodedDocument,
    ) -> PodSpec {
        let mut spec = PodSpec {
            termination_grace_period_seconds: 30,
            ..PodSpec::default()
        };
        let Some(fields) = self.fields(node, path, &POD_SPEC) else {
            return spec;
        };
        // Before the containers, whose mounts name them.
        let mut volume_names = BTreeSet::new();
        if let Some(volumes) = fields.get("volumes") {
            (spec.volumes, volume_names) = self.volumes(volumes, &join(path, "volumes"));
        }
        volume_names.extend(self.claim_template_names.iter().cloned());
        // One name space for both lists, as in Kubernetes.
        let mut names_seen = BTreeMap::new();
        if let Some(init) = fields.get("initContainers") {
            spec.init_containers = self.containers(
                init,
                &join(path, "initContainers"),
                &volume_names,
                ContainerList::Init,
                &mut names_seen,
            );
        }
        if let Some(containers) = self.required(&fields, node, path, "containers") {
            spec.containers = self.containers(
                containers,
                &join(path, "containers"),
                &volume_names,
                ContainerList::App,
                &mut names_seen,
            );
        }
        self.check_memory_sub_paths(&spec, path);
        if let Some(secrets) = fields.get("imagePullSecrets") {
            spec.image_pull_secrets =
                self.image_pull_secrets(secrets, &join(path, "imagePullSecrets"));
        }
        // A Job's pods run to completion: `Never` or `OnFailure`, required
        // (Kubernetes' rule); every other kind's pods always restart.
        let runs_to_completion = matches!(self.pod_owner, Kind::Job | Kind::CronJob);
        let must_restart = matches!(
            self.pod_owner,
            Kind::Deployment | Kind::DaemonSet | Kind::StatefulSet
        );
        match fields.get("restartPolicy") {
            Some(policy) => {
                let policy_path = join(path, "restartPolicy");
                let policy_value = self.enumeration(
                    policy,
                    &policy_path,
                    &[
                        ("Always", RestartPolicy::Always),
                        ("OnFailure", RestartPolicy::OnFailure),
                        ("Never", RestartPolicy::Never),
                    ],
                );
                let owner = self.pod_owner;
                match policy_value {
                    Some(RestartPolicy::Always) if runs_to_completion => {
                        let diagnostic = self.error(
                            policy,
                            &policy_path,
                            format!("`restartPolicy: Always` is not allowed for a {owner}: supported values are `OnFailure` and `Never`"),
                        );
                        Self::hint(
                            diagnostic,
                            format!("a {owner}'s pods run to completion; a pod that restarts for ever never completes"),
                        );
                    }
                    Some(value) if runs_to_completion => spec.restart_policy = value,
                    Some(value) => {
                        if value != RestartPolicy::Always && must_restart {
                            let text = policy
                                .as_scalar()
                                .map_or("", |s| s.text.as_str())
                                .to_string();
                            let diagnostic = self.error(
                                policy,
                                &policy_path,
                                format!(
                                    "`restartPolicy: {text}` is not allowed for a {owner}, only `Always`"
                                ),
                            );
                            Self::hint(
                                diagnostic,
                                format!("a {owner}'s pods always restart; remove `restartPolicy`"),
                            );
                        }
                        spec.restart_policy = RestartPolicy::Always;
                    }
                    None => {}
                }
            }
            None if runs_to_completion => {
                let owner = self.pod_owner;
                let diagnostic = self.error(
                    node,
                    &join(path, "restartPolicy"),
                    format!("missing field `restartPolicy`: a {owner}'s pods need `OnFailure` or `Never`"),
                );
                Self::hint(
                    diagnostic,
                    "`Never` replaces a failed pod with a new one; `OnFailure` restarts its containers in place",
                );
            }
            None => {}
        }
        if let Some(selector) = fields.get("nodeSelector") {
            spec.node_selector = self.labels(selector, &join(path, "nodeSelector"));
            document.node_selector_location = Some(self.at(selector));
        }
        if let Some(affinity) = fields.get("affinity") {
            self.affinity(affinity, &join(path, "affinity"), &mut spec);
        }
        if let Some(tolerations) = fields.get("tolerations") {
            let tolerations_path = join(path, "tolerations");
            if let Some(items) = self.sequence(tolerations, &tolerations_path) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(t) = self.toleration(item, &index(&tolerations_path, i)) {
                        spec.tolerations.push(t);
                    }
                }
            }
        }
        if let Some(constraints) = fields.get("topologySpreadConstraints") {
            let constraints_path = join(path, "topologySpreadConstraints");
            if let Some(items) = self.sequence(constraints, &constraints_path) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(c) = self.topology_spread(item, &index(&constraints_path, i)) {
                        spec.topology_spread_constraints.push(c);
                    }
                }
            }
        }
        spec.termination_grace_period_seconds =
            self.count_or(&fields, path, "terminationGracePeriodSeconds", 0, 30);
        spec
    }

    fn affinity(&mut self, node: &Node, path: &str, spec: &mut PodSpec) {
        let Some(fields) = self.fields(node, path, &AFFINITY) else {
            return;
        };
        const REQUIRED: &str = "requiredDuringSchedulingIgnoredDuringExecution";
        if let Some(node_affinity) = fields.get("nodeAffinity") {
            let node_path = join(path, "nodeAffinity");
            if let Some(node_fields) = self.fields(node_affinity, &node_path, &NODE_AFFINITY) {
                if let Some(required) = node_fields.get(REQUIRED) {
                    let required_path = join(&node_path, REQUIRED);
                    if let Some(selector_fields) =
                        self.fields(required, &required_path, &NODE_SELECTOR)
                    {
                        if let Some(terms) = self.required(
                            &selector_fields,
                            required,
                            &required_path,
                            "nodeSelectorTerms",
                        ) {
                            let terms_path = join(&required_path, "nodeSelectorTerms");
                            if let Some(items) = self.sequence(terms, &terms_path) {
                                if items.is_empty() {
                                    self.error(
                                        terms,
                                        &terms_path,
                                        "`nodeSelectorTerms` must have at least one term",
                                    );
                                }
                                for (i, item) in items.iter().enumerate() {
                                    let term_path = index(&terms_path, i);
                                    if let Some(term_fields) =
                                        self.fields(item, &term_path, &NODE_SELECTOR_TERM)
                                    {
                                        let match_expressions =
                                            match term_fields.get("matchExpressions") {
                                                Some(e) => self.requirements(
                                                    e,
                                                    &join(&term_path, "matchExpressions"),
                                                    true,
                                                ),
                                                None => Vec::new(),
                                            };
                                        spec.required_node_affinity
                                            .push(NodeSelectorTerm { match_expressions });
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if let Some(anti) = fields.get("podAntiAffinity") {
            let anti_path = join(path, "podAntiAffinity");
            if let Some(anti_fields) = self.fields(anti, &anti_path, &POD_ANTI_AFFINITY) {
                if let Some(required) = anti_fields.get(REQUIRED) {
                    let required_path = join(&anti_path, REQUIRED);
                    if let Some(items) = self.sequence(required, &required_path) {
                        for (i, item) in items.iter().enumerate() {
                            if let Some(term) =
                                self.pod_affinity_term(item, &index(&required_path, i))
                            {
                                spec.required_pod_anti_affinity.push(term);
                            }
                        }
                    }
                }
            }
        }
    }

    fn pod_affinity_term(&mut self, node: &Node, path: &str) -> Option<PodAffinityTerm> {
        let fields = self.fields(node, path, &POD_AFFINITY_TERM)?;
        let label_selector = match fields.get("labelSelector") {
            Some(s) => self.label_selector(s, &join(path, "labelSelector"), false),
            None => LabelSelector::default(),
        };
        let key_node = self.required(&fields, node, path, "topologyKey")?;
        let key_path = join(path, "topologyKey");
        let topology_key = self.string(key_node, &key_path)?;
        if topology_key != HOSTNAME_LABEL {
            let diagnostic = self.error(
                key_node,
                &key_path,
                format!("topologyKey `{topology_key}` is not supported yet for pod anti-affinity"),
            );
            Self::hint(diagnostic, format!("only `{HOSTNAME_LABEL}` is supported"));
            return None;
        }
        Some(PodAffinityTerm {
            label_selector,
            topology_key,
        })
    }

    fn topology_spread(&mut self, node: &Node, path: &str) -> Option<TopologySpreadConstraint> {
        let fields = self.fields(node, path, &TOPOLOGY_SPREAD)?;
        let skew = self.required(&fields, node, path, "maxSkew");
        let max_skew = skew.and_then(|s| self.count(s, &join(path, "maxSkew"), 1));
        let key = self.required(&fields, node, path, "topologyKey");
        let topology_key = key.and_then(|k| {
            self.checked_name(
                k,
                &join(path, "topologyKey"),
                "topology key",
                names::qualified_name,
            )
        });
        let when = self.required(&fields, node, path, "whenUnsatisfiable");
        let when_unsatisfiable = when.and_then(|w| {
            self.enumeration(
                w,
                &join(path, "whenUnsatisfiable"),
                &[
                    ("DoNotSchedule", WhenUnsatisfiable::DoNotSchedule),
                    ("ScheduleAnyway", WhenUnsatisfiable::ScheduleAnyway),
                ],
            )
        });
        let label_selector = match fields.get("labelSelector") {
            Some(s) => self.label_selector(s, &join(path, "labelSelector"), false),
            None => LabelSelector::default(),
        };
        Some(TopologySpreadConstraint {
            max_skew: max_skew?,
            topology_key: topology_key?,
            when_unsatisfiable: when_unsatisfiable?,
            label_selector,
        })
    }

    fn toleration(&mut self, node: &Node, path: &str) -> Option<Toleration> {
        let fields = self.fields(node, path, &TOLERATION)?;
        let mut toleration = Toleration::default();
        if let Some(key) = fields.get("key") {
            toleration.key = self.checked_name(
                key,
                &join(path, "key"),
                "toleration key",
                names::qualified_name,
            )?;
        }
        if let Some(operator) = fields.get("operator") {
            toleration.operator = self.enumeration(
                operator,
                &join(path, "operator"),
                &[
                    ("Equal", TolerationOperator::Equal),
                    ("Exists", TolerationOperator::Exists),
                ],
            )?;
        }
        if let Some(value) = fields.get("value") {
            toleration.value = self.checked_name(
                value,
                &join(path, "value"),
                "toleration value",
                names::label_value,
            )?;
            if toleration.operator == TolerationOperator::Exists && !toleration.value.is_empty() {
                self.error(
                    value,
                    &join(path, "value"),
                    "`value` must be empty when `operator` is `Exists`",
                );
                return None;
            }
        }
        if toleration.key.is_empty() && toleration.operator == TolerationOperator::Equal {
            let diagnostic = self.error(
                node,
                &join(path, "operator"),
                "`operator` must be `Exists` when `key` is empty",
            );
            Self::hint(
                diagnostic,
                "an empty key with `operator: Exists` tolerates every taint",
            );
            return None;
        }
        if let Some(effect) = fields.get("effect") {
            toleration.effect = Some(self.taint_effect(effect, &join(path, "effect"))?);
        }
        if let Some(seconds) = fields.get("tolerationSeconds") {
            let seconds_path = join(path, "tolerationSeconds");
            toleration.toleration_seconds = Some(self.integer(seconds, &seconds_path)?);
            if toleration.effect != Some(TaintEffect::NoExecute) {
                self.error(
                    seconds,
                    &seconds_path,
                    "`tolerationSeconds` needs `effect: NoExecute`",
                );
                return None;
            }
        }
        Some(toleration)
    }

    fn containers(
        &mut self,
        node: &Node,
        path: &str,
        volume_names: &BTreeSet<String>,
        list: ContainerList,
        names_seen: &mut BTreeMap<String, u32>,
    ) -> Vec<Container> {
        let file = self.file;
        let mut containers = Vec::new();
        let Some(items) = self.sequence(node, path) else {
            return containers;
        };
        if items.is_empty() && list == ContainerList::App {
            self.error(node, path, "a pod needs at least one container");
            return containers;
        }
        let mut container_ports: BTreeMap<(u16, Protocol), u32> = BTreeMap::new();
        let mut host_ports: BTreeMap<(u16, Protocol), u32> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let container_path = index(path, i);
            let Some((container, places)) =
                self.container(item, &container_path, volume_names, list)
            else {
                continue;
            };
            if let Some(name_node) = places.name {
                if let Some(first) = names_seen.get(&container.name) {
                    self.error(
                        name_node,
                        &join(&container_path, "name"),
                        format!(
                            "container name `{}` is used twice in the pod (first at {file}:{first})",
                            container.name
                        ),
                    );
                } else {
                    names_seen.insert(container.name.clone(), name_node.line);
                }
            }
            for (port, port_node) in container.ports.iter().zip(&places.ports) {
                let (port_index, container_port_node, host_port_node) = port_node;
                let port_path = index(&join(&container_path, "ports"), *port_index);
                let key = (port.container_port, port.protocol);
                if let Some(first) = container_ports.get(&key) {
                    self.error(
                        container_port_node,
                        &join(&port_path, "containerPort"),
                        format!(
                            "containerPort {}/{:?} is declared twice in the pod (first at {file}:{first})",
                            port.container_port, port.protocol
                        ),
                    );
                } else {
                    container_ports.insert(key, container_port_node.line);
                }
                if let (Some(host_port), Some(host_node)) = (port.host_port, host_port_node) {
                    let key = (host_port, port.protocol);
                    if let Some(first) = host_ports.get(&key) {
                        self.error(
                            host_node,
                            &join(&port_path, "hostPort"),
                            format!("hostPort {host_port}/{:?} is declared twice in the pod (first at {file}:{first})", port.protocol),
                        );
                    } else {
                        host_ports.insert(key, host_node.line);
                    }
                }
            }
            containers.push(container);
        }
        containers
    }

    fn container<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        volume_names: &BTreeSet<String>,
        list: ContainerList,
    ) -> Option<(Container, ContainerPlaces<'n>)> {
        let file = self.file;
        let fields = self.fields(node, path, &CONTAINER)?;
        let mut places = ContainerPlaces::default();
        let mut container = Container::default();
        let mut ok = true;
        if let Some(policy) = fields.get("restartPolicy") {
            let policy_path = join(path, "restartPolicy");
            if list == ContainerList::App {
                let diagnostic = self.error(
                    policy,
                    &policy_path,
                    "`restartPolicy` is allowed on init containers only",
                );
                Self::hint(
                    diagnostic,
                    "a sidecar is an entry of `initContainers` with `restartPolicy: Always`",
                );
            } else {
                container.sidecar = self
                    .enumeration(policy, &policy_path, &[("Always", true)])
                    .unwrap_or(false);
            }
        }
        // Kubernetes refuses probes and hooks on a regular init container:
        // it runs to completion, nothing waits for it to be ready.
        let regular_init = list == ContainerList::Init && !container.sidecar;
        for field in [
            "lifecycle",
            "readinessProbe",
            "livenessProbe",
            "startupProbe",
        ] {
            if let (true, Some(at)) = (regular_init, fields.get(field)) {
                let diagnostic = self.error(
                    at,
                    &join(path, field),
                    format!("`{field}` is not allowed on an init container"),
                );
                Self::hint(
                    diagnostic,
                    "only a sidecar (an init container with `restartPolicy: Always`) may have it",
                );
            }
        }
        match self.required(&fields, node, path, "name") {
            Some(name) => {
                places.name = Some(name);
                match self.checked_name(
                    name,
                    &join(path, "name"),
                    "container name",
                    names::dns1123_label,
                ) {
                    Some(n) => container.name = n,
                    None => ok = false,
                }
            }
            None => ok = false,
        }
        if let Some(image_node) = self.required(&fields, node, path, "image") {
            if let Some(image) = self.checked_name(
                image_node,
                &join(path, "image"),
                "image",
                image_reference::check,
            ) {
                container.image = image;
            }
        }
        container.image_pull_policy = match fields.get("imagePullPolicy") {
            Some(policy) => self
                .enumeration(
                    policy,
                    &join(path, "imagePullPolicy"),
                    &[
                        ("Always", PullPolicy::Always),
                        ("IfNotPresent", PullPolicy::IfNotPresent),
                        ("Never", PullPolicy::Never),
                    ],
                )
                .unwrap_or_default(),
            None => default_pull_policy(&container.image),
        };
        if let Some(command) = fields.get("command") {
            container.command = self
                .string_list(command, &join(path, "command"))
                .unwrap_or_default();
        }
        if let Some(args) = fields.get("args") {
            container.args = self
                .string_list(args, &join(path, "args"))
                .unwrap_or_default();
        }
        if let Some(dir) = fields.get("workingDir") {
            container.working_dir = self.string(dir, &join(path, "workingDir"));
        }
        if let Some(env) = fields.get("env") {
            let env_path = join(path, "env");
            if let Some(items) = self.sequence(env, &env_path) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(var) = self.env_var(item, &index(&env_path, i)) {
                        container.env.push(var);
                    }
                }
            }
        }
        if let Some(env_from) = fields.get("envFrom") {
            container.env_from = self.env_from_list(env_from, &join(path, "envFrom"));
        }
        if let Some(mounts) = fields.get("volumeMounts") {
            container.volume_mounts =
                self.volume_mounts(mounts, &join(path, "volumeMounts"), volume_names);
        }
        if let Some(ports) = fields.get("ports") {
            let ports_path = join(path, "ports");
            if let Some(items) = self.sequence(ports, &ports_path) {
                let mut port_names: BTreeMap<String, u32> = BTreeMap::new();
                for (i, item) in items.iter().enumerate() {
                    let port_path = index(&ports_path, i);
                    if let Some((port, container_port_node, host_port_node, name_node)) =
                        self.container_port(item, &port_path)
                    {
                        if let (Some(name), Some(name_node)) = (&port.name, name_node) {
                            if let Some(first) = port_names.get(name) {
                                self.error(
                                    name_node,
                                    &join(&port_path, "name"),
                                    format!("port name `{name}` is used twice in the container (first at {file}:{first})"),
                                );
                            } else {
                                port_names.insert(name.clone(), name_node.line);
                            }
                        }
                        places.ports.push((i, container_port_node, host_port_node));
                        container.ports.push(port);
                    }
                }
            }
        }
        if let Some(resources) = fields.get("resources") {
            container.resources = self.resources(resources, &join(path, "resources"));
        }
        for (field, liveness_like) in [
            ("readinessProbe", false),
            ("livenessProbe", true),
            ("startupProbe", true),
        ] {
            if let Some(probe_node) = fields.get(field) {
                let probe = self.probe(
                    probe_node,
                    &join(path, field),
                    liveness_like,
                    &container.ports,
                );
                match field {
                    "readinessProbe" => container.readiness_probe = probe,
                    "livenessProbe" => container.liveness_probe = probe,
                    _ => container.startup_probe = probe,
                }
            }
        }
        if let Some(lifecycle) = fields.get("lifecycle") {
            container.lifecycle =
                self.lifecycle(lifecycle, &join(path, "lifecycle"), &container.ports);
        }
        ok.then_some((container, places))
    }

    fn env_var(&mut self, node: &Node, path: &str) -> Option<EnvVar> {
        let fields = self.fields(node, path, &ENV_VAR)?;
        let name_node = self.required(&fields, node, path, "name")?;
        let name = self.checked_name(
            name_node,
            &join(path, "name"),
            "environment variable name",
            names::env_var_name,
        )?;
        let value = match fields.get("value") {
            Some(value) => self.string(value, &join(path, "value"))?,
            None => String::new(),
        };
        let value_from = match fields.get("valueFrom") {
            Some(source) => Some(self.env_var_source(source, &join(path, "valueFrom"))?),
            None => None,
        };
        // Kubernetes' rule: an empty `value` beside `valueFrom` is allowed.
        if let (Some(_), Some(value_node)) = (&value_from, fields.get("value")) {
            if !value.is_empty() {
                let diagnostic = self.error(
                    value_node,
                    &join(path, "value"),
                    "`value` and `valueFrom` are both set",
                );
                Self::hint(
                    diagnostic,
                    "keep `value` for a literal, or `valueFrom` to read a ConfigMap or Secret key",
                );
                return None;
            }
        }
        Some(EnvVar {
            name,
            value,
            value_from,
        })
    }

    #[allow(clippy::type_complexity)]
    fn container_port<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
    ) -> Option<(ContainerPort, &'n Node, Option<&'n Node>, Option<&'n Node>)> {
        let fields = self.fields(node, path, &CONTAINER_PORT)?;
        // Every field is checked before giving up, to report all problems.
        let port_node = self.required(&fields, node, path, "containerPort");
        let container_port =
            port_node.and_then(|p| self.port_number(p, &join(path, "containerPort")));
        let host_port_node = fields.get("hostPort");
        if let Some(h) = host_port_node {
            let at = self.at(h);
            self.field_sources.insert(join(path, "hostPort"), at);
        }
        let host_port = match host_port_node {
            Some(h) => match self.ranged(h, &join(path, "hostPort"), 0, 65535) {
                // Kubernetes reads 0 as "no host port".
                Some(0) => Some(None),
                Some(p) => u16::try_from(p).ok().map(Some),
                None => None,
            },
            None => Some(None),
        };
        let protocol = match fields.get("protocol") {
            Some(p) => self.enumeration(
                p,
                &join(path, "protocol"),
                &[
                    ("TCP", Protocol::TCP),
                    ("UDP", Protocol::UDP),
                    ("SCTP", Protocol::SCTP),
                ],
            ),
            None => Some(Protocol::TCP),
        };
        let name_node = fields.get("name");
        let name = match name_node {
            Some(n) => self
                .checked_name(n, &join(path, "name"), "port name", names::port_name)
                .map(Some),
            None => Some(None),
        };
        let host_ip = match fields.get("hostIP") {
            Some(ip) => self.host_ip(ip, &join(path, "hostIP"), host_port == Some(None)),
            None => Some(None),
        };
        let (port_node, container_port, host_port, protocol, name, host_ip) = (
            port_node?,
            container_port?,
            host_port?,
            protocol?,
            name?,
            host_ip?,
        );
        Some((
            ContainerPort {
                name,
                container_port,
                host_port,
                host_ip,
                protocol,
            },
            port_node,
            host_port_node.filter(|_| host_port.is_some()),
            name_node,
        ))
    }

    /// `hostIP`: an IPv4 or IPv6 address (Kubernetes' rule); `0.0.0.0` and
    /// `::` mean every address, as no hostIP does.
    fn host_ip(
        &mut self,
        node: &Node,
        path: &str,
        without_host_port: bool,
    ) -> Option<Option<String>> {
        let text = self.string(node, path)?;
        // core::net only parses addresses; it opens nothing.
        let Ok(address) = text.parse::<core::net::IpAddr>() else {
            let diagnostic = self.error(
                node,
                path,
                format!("invalid hostIP `{text}`: must be an IPv4 or IPv6 address"),
            );
            Self::hint(
                diagnostic,
                "e.g. `127.0.0.1` to publish on the node's loopback only",
            );
            return None;
        };
        if without_host_port {
            let diagnostic = self.warning(node, path, "hostIP has no effect without hostPort");
            Self::hint(diagnostic, "set `hostPort`, or remove `hostIP`");
        }
        Some(Some(address.to_string()))
    }

    fn port_number(&mut self, node: &Node, path: &str) -> Option<u16> {
        self.ranged(node, path, 1, 65535)
            .and_then(|p| u16::try_from(p).ok())
    }

    fn resources(&mut self, node: &Node, path: &str) -> Resources {
        let mut resources = Resources::default();
        let Some(fields) = self.fields(node, path, &RESOURCES) else {
            return resources;
        };
        let mut request_nodes: (Option<&Node>, Option<&Node>) = (None, None);
        for (field, list) in [
            ("requests", &mut resources.requests),
            ("limits", &mut resources.limits),
        ] {
            let Some(list_node) = fields.get(field) else {
                continue;
            };
            let list_path = join(path, field);
            let Value::Mapping(entries) = &list_node.value else {
                let found = list_node.describe();
                self.error(
                    list_node,
                    &list_path,
                    format!("expected a mapping, found {found}"),
                );
                continue;
            };
            for entry in entries {
                let Some(key) = entry.key.as_scalar() else {
                    self.error(&entry.key, &list_path, "mapping keys must be strings");
                    continue;
                };
                let name = key.text.as_str();
                let entry_path = key_path(&list_path, name);
                if entry.value.is_null() {
                    continue;
                }
                match name {
                    "cpu" => {
                        list.cpu = self.cpu(&entry.value, &entry_path);
                        if field == "requests" {
                            request_nodes.0 = Some(&entry.value);
                        }
                    }
                    "memory" => {
                        list.memory = self.memory(&entry.value, &entry_path);
                        if field == "requests" {
                            request_nodes.1 = Some(&entry.value);
                        }
                    }
                    _ if RESOURCE_LIST.unsupported.contains(&name)
                        || name.contains('/')
                        || name.starts_with("hugepages-") =>
                    {
                        self.error(
                            &entry.key,
                            &entry_path,
                            format!("resource `{name}` is not supported yet"),
                        );
                    }
                    _ => {
                        let message = match names::did_you_mean(name, RESOURCE_LIST.known) {
                            Some(s) => format!("unknown resource `{name}`, did you mean `{s}`?"),
                            None => format!("unknown resource `{name}`"),
                        };
                        self.error(&entry.key, &entry_path, message);
                    }
                }
            }
        }
        // A limit without a request makes the request equal to the limit.
        let requests = &mut resources.requests;
        let limits = &resources.limits;
        if requests.cpu.is_none() {
            requests.cpu = limits.cpu;
        }
        if requests.memory.is_none() {
            requests.memory = limits.memory;
        }
        if let (Some(request), Some(limit), Some(at)) = (requests.cpu, limits.cpu, request_nodes.0)
        {
            if request > limit {
                self.error(
                    at,
                    &join(path, "requests.cpu"),
                    format!(
                        "cpu request ({}m) is greater than its limit ({}m)",
                        request.0, limit.0
                    ),
                );
            }
        }
        if let (Some(request), Some(limit), Some(at)) =
            (requests.memory, limits.memory, request_nodes.1)
        {
            if request > limit {
                self.error(
                    at,
                    &join(path, "requests.memory"),
                    format!(
                        "memory request ({} bytes) is greater than its limit ({} bytes)",
                        request.0, limit.0
                    ),
                );
            }
        }
        resources
    }

    fn probe(
        &mut self,
        node: &Node,
        path: &str,
        liveness_like: bool,
        ports: &[ContainerPort],
    ) -> Option<Probe> {
        let fields = self.fields(node, path, &PROBE)?;
        let mut handlers = Vec::new();
        for name in ["httpGet", "tcpSocket", "exec"] {
            if let Some(handler) = fields.get(name) {
                handlers.push((name, handler));
            }
        }
        let handler = match handlers.as_slice() {
            [] => {
                let diagnostic = self.error(node, path, "a probe needs one handler");
                Self::hint(diagnostic, "add `httpGet`, `tcpSocket` or `exec`");
                None
            }
            [(name, handler)] => self.probe_handler(name, handler, &join(path, name), ports),
            [_, (second, handler), ..] => {
                self.error(
                    handler,
                    &join(path, second),
                    "a probe may have only one handler",
                );
                None
            }
        };
        let initial_delay_seconds = self.count_or(&fields, path, "initialDelaySeconds", 0, 0);
        let period_seconds = self.count_or(&fields, path, "periodSeconds", 1, 10);
        let timeout_seconds = self.count_or(&fields, path, "timeoutSeconds", 1, 1);
        let success_threshold = self.count_or(&fields, path, "successThreshold", 1, 1);
        let failure_threshold = self.count_or(&fields, path, "failureThreshold", 1, 3);
        if liveness_like && success_threshold != 1 {
            if let Some(at) = fields.get("successThreshold") {
                self.error(
                    at,
                    &join(path, "successThreshold"),
                    format!("must be 1 for liveness and startup probes, found {success_threshold}"),
                );
            }
        }
        Some(Probe {
            handler: handler?,
            initial_delay_seconds,
            period_seconds,
            timeout_seconds,
            success_threshold,
            failure_threshold,
        })
    }

    fn probe_handler(
        &mut self,
        name: &str,
        node: &Node,
        path: &str,
        ports: &[ContainerPort],
    ) -> Option<ProbeHandler> {
        match name {
            "httpGet" => {
                let fields = self.fields(node, path, &HTTP_GET)?;
                let port_node = self.required(&fields, node, path, "port")?;
                let port = self.port_ref(port_node, &join(path, "port"), ports);
                let probe_path = match fields.get("path") {
                    Some(p) => self.string(p, &join(path, "path"))?,
                    None => "/".to_string(),
                };
                let scheme = match fields.get("scheme") {
                    Some(s) => self.enumeration(
                        s,
                        &join(path, "scheme"),
                        &[("HTTP", HttpScheme::HTTP), ("HTTPS", HttpScheme::HTTPS)],
                    )?,
                    None => HttpScheme::HTTP,
                };
                if scheme == HttpScheme::HTTPS {
                    // The leader's HTTP probes speak plain HTTP: an HTTPS
                    // probe would fail against a TLS port, never pass.
                    let node = fields.get("scheme").expect("HTTPS was read from it");
                    let diagnostic = self.error(
                        node,
                        &join(path, "scheme"),
                        "`scheme: HTTPS` is not supported yet: flotilla's httpGet probes speak plain HTTP",
                    );
                    Self::hint(
                        diagnostic,
                        "probe the TLS port with `tcpSocket`, or use an `exec` probe",
                    );
                    return None;
                }
                let mut headers = Vec::new();
                if let Some(list) = fields.get("httpHeaders") {
                    let headers_path = join(path, "httpHeaders");
                    let items = self.sequence(list, &headers_path)?;
                    for (i, item) in items.iter().enumerate() {
                        let header_path = index(&headers_path, i);
                        let Some(header_fields) = self.fields(item, &header_path, &HTTP_HEADER)
                        else {
                            continue;
                        };
                        let name = self
                            .required(&header_fields, item, &header_path, "name")
                            .and_then(|n| self.string(n, &join(&header_path, "name")));
                        let value = match header_fields.get("value") {
                            Some(v) => self.string(v, &join(&header_path, "value")),
                            None => Some(String::new()),
                        };
                        if let (Some(name), Some(value)) = (name, value) {
                            if name.is_empty()
                                || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                            {
                                self.error(
                                    item,
                                    &join(&header_path, "name"),
                                    format!("invalid header name `{name}`"),
                                );
                                continue;
                            }
                            headers.push((name, value));
                        }
                    }
                }
                Some(ProbeHandler::HttpGet {
                    path: probe_path,
                    port: port?,
                    scheme,
                    headers,
                })
            }
            "tcpSocket" => {
                let fields = self.fields(node, path, &TCP_SOCKET)?;
                let port_node = self.required(&fields, node, path, "port")?;
                let port = self.port_ref(port_node, &join(path, "port"), ports)?;
                Some(ProbeHandler::TcpSocket { port })
            }
            _ => {
                let fields = self.fields(node, path, &EXEC)?;
                let command_node = self.required(&fields, node, path, "command")?;
                let command = self.string_list(command_node, &join(path, "command"))?;
                if command.is_empty() {
                    self.error(
                        command_node,
                        &join(path, "command"),
                        "`command` must not be empty",
                    );
                    return None;
                }
                Some(ProbeHandler::Exec { command })
            }
        }
    }

    fn lifecycle(&mut self, node: &Node, path: &str, ports: &[ContainerPort]) -> Lifecycle {
        let mut lifecycle = Lifecycle::default();
        let Some(fields) = self.fields(node, path, &LIFECYCLE) else {
            return lifecycle;
        };
        if let Some(hook) = fields.get("postStart") {
            lifecycle.post_start = self.lifecycle_handler(hook, &join(path, "postStart"), ports);
        }
        if let Some(hook) = fields.get("preStop") {
            lifecycle.pre_stop = self.lifecycle_handler(hook, &join(path, "preStop"), ports);
        }
        lifecycle
    }

    /// One hook: exactly one of `exec`, `httpGet` (as a probe's, plain
    /// HTTP) and `sleep`.
    fn lifecycle_handler(
        &mut self,
        node: &Node,
        path: &str,
        ports: &[ContainerPort],
    ) -> Option<LifecycleHandler> {
        let fields = self.fields(node, path, &LIFECYCLE_HANDLER)?;
        let handlers: Vec<(&str, &Node)> = ["exec", "httpGet", "sleep"]
            .into_iter()
            .filter_map(|name| fields.get(name).map(|handler| (name, handler)))
            .collect();
        // An unsupported handler (`tcpSocket`) was reported as such.
        let unsupported = matches!(&node.value, Value::Mapping(entries)
            if entries.iter().any(|e| e.key.as_scalar().is_some_and(|k| k.text == "tcpSocket")));
        match handlers.as_slice() {
            [] if unsupported => None,
            [] => {
                let diagnostic = self.error(node, path, "a lifecycle hook needs one handler");
                Self::hint(diagnostic, "add `exec`, `httpGet` or `sleep`");
                None
            }
            [("sleep", handler)] => {
                let sleep_path = join(path, "sleep");
                let sleep = self.fields(handler, &sleep_path, &SLEEP)?;
                let seconds = self.required(&sleep, handler, &sleep_path, "seconds")?;
                let seconds = self.count(seconds, &join(&sleep_path, "seconds"), 0)?;
                Some(LifecycleHandler::Sleep { seconds })
            }
            [(name, handler)] => {
                match self.probe_handler(name, handler, &join(path, name), ports)? {
                    ProbeHandler::Exec { command } => Some(LifecycleHandler::Exec { command }),
                    ProbeHandler::HttpGet {
                        path,
                        port,
                        headers,
                        ..
                    } => Some(LifecycleHandler::HttpGet {
                        path,
                        port,
                        headers,
                    }),
                    ProbeHandler::TcpSocket { .. } => None,
                }
            }
            [_, (second, handler), ..] => {
                self.error(
                    handler,
                    &join(path, second),
                    "a lifecycle hook may have only one handler",
                );
                None
            }
        }
    }

    fn port_ref(&mut self, node: &Node, path: &str, ports: &[ContainerPort]) -> Option<PortRef> {
        let port = self.port_number_or_name(node, path)?;
        if let PortRef::Name(name) = &port {
            if !ports
                .iter()
                .any(|p| p.name.as_deref() == Some(name.as_str()))
            {
                let diagnostic = self.error(
                    node,
                    path,
                    format!("no port of the container is named `{name}`"),
                );
                Self::hint(
                    diagnostic,
                    "name one of the container's `ports`, or give the port number",
                );
                return None;
            }
        }
        Some(port)
    }
}

/// Where a container's name and ports were written, for pod-wide checks.
#[derive(Default)]
struct ContainerPlaces<'n> {
    name: Option<&'n Node>,
    /// Index in `ports`, the containerPort node, the hostPort node.
    ports: Vec<(usize, &'n Node, Option<&'n Node>)>,
}

/// Kubernetes' default: `Always` when the tag is `latest` or there is no
/// tag and no digest, `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    if image.contains('@') {
        return PullPolicy::IfNotPresent;
    }
    let last_component = image.rsplit('/').next().unwrap_or(image);
    match last_component.split_once(':') {
        Some((_, tag)) if tag != "latest" => PullPolicy::IfNotPresent,
        _ => PullPolicy::Always,
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::model::*;
    use crate::manifest::quantity::{Bytes, CpuMillis};
    use crate::manifest::{load, SourceFile};

    fn pod_spec(pod: &str) -> PodSpec {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  \
             selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    \
             spec:\n{pod}"
        );
        let loaded = load(&[SourceFile::new("web.yaml", &yaml)]);
        assert!(!loaded.has_errors(), "{:#?}", loaded.diagnostics);
        loaded.state.workloads[0].spec.template.spec.clone()
    }

    /// Issue 16: `initContainers` take a container's fields, a sidecar is
    /// one with `restartPolicy: Always`, and every hook handler decodes.
    #[test]
    fn init_containers_sidecars_and_hooks_decode() {
        let spec = pod_spec(
            "      initContainers:\n      - {name: migrate, image: busybox:1.36, command: [sh, -c, 'true']}\n      \
             - name: log\n        image: busybox:1.36\n        restartPolicy: Always\n        \
             startupProbe: {exec: {command: ['true']}}\n        \
             lifecycle: {preStop: {sleep: {seconds: 2}}}\n      \
             containers:\n      - name: app\n        image: busybox:1.36\n        \
             ports: [{containerPort: 8080, name: http}]\n        lifecycle:\n          \
             postStart: {exec: {command: [touch, /ready]}}\n          \
             preStop: {httpGet: {path: /quit, port: http, httpHeaders: [{name: X-A, value: b}]}}\n",
        );
        let [migrate, log] = &spec.init_containers[..] else {
            panic!("two init containers: {:?}", spec.init_containers);
        };
        assert_eq!(migrate.name, "migrate");
        assert!(!migrate.sidecar);
        assert!(migrate.lifecycle.is_empty());
        assert!(log.sidecar);
        assert!(log.startup_probe.is_some());
        assert_eq!(
            log.lifecycle.pre_stop,
            Some(LifecycleHandler::Sleep { seconds: 2 })
        );
        let app = &spec.containers[0];
        assert_eq!(
            app.lifecycle,
            Lifecycle {
                post_start: Some(LifecycleHandler::Exec {
                    command: vec!["touch".into(), "/ready".into()]
                }),
                pre_stop: Some(LifecycleHandler::HttpGet {
                    path: "/quit".into(),
                    port: PortRef::Name("http".into()),
                    headers: vec![("X-A".into(), "b".into())],
                }),
            }
        );
        assert!(!spec.containers[0].sidecar);
    }

    /// Templates that use none of the new fields keep their JSON (and so
    /// their hash); a template that does names them.
    #[test]
    fn new_fields_are_left_out_of_the_json_when_absent() {
        let plain = pod_spec("      containers:\n      - {name: app, image: busybox:1.36}\n");
        let json = serde_json::to_string(&plain).unwrap();
        for field in ["initContainers", "sidecar", "lifecycle"] {
            assert!(!json.contains(field), "{field} in {json}");
        }
        let with = pod_spec(
            "      initContainers:\n      - {name: log, image: busybox:1.36, restartPolicy: Always}\n      \
             containers:\n      - name: app\n        image: busybox:1.36\n        \
             lifecycle: {preStop: {sleep: {seconds: 1}}}\n",
        );
        let json = serde_json::to_string(&with).unwrap();
        for field in ["initContainers", "\"sidecar\":true", "lifecycle"] {
            assert!(json.contains(field), "{field} not in {json}");
        }
    }

    /// Kubernetes' rule for a pod's requests: the larger of (app containers
    /// plus sidecars) and, for each regular init container, its own plus
    /// the sidecars started before it; resource by resource.
    #[test]
    fn pod_requests_follow_kubernetes_rule() {
        let c = |cpu: Option<u64>, memory: Option<u64>, sidecar: bool| Container {
            resources: Resources {
                requests: ResourceList {
                    cpu: cpu.map(CpuMillis),
                    memory: memory.map(Bytes),
                },
                limits: ResourceList::default(),
            },
            sidecar,
            ..Container::default()
        };
        let requests = |init: Vec<Container>, app: Vec<Container>| {
            PodSpec {
                init_containers: init,
                containers: app,
                ..PodSpec::default()
            }
            .requests()
        };
        let r = |cpu: Option<u64>, memory: Option<u64>| ResourceList {
            cpu: cpu.map(CpuMillis),
            memory: memory.map(Bytes),
        };
        // (init containers, app containers, expected)
        let cases = [
            // App containers alone: summed.
            (
                vec![],
                vec![c(Some(100), Some(10), false), c(Some(50), None, false)],
                r(Some(150), Some(10)),
            ),
            // A big init container wins where it is bigger.
            (
                vec![c(Some(500), Some(5), false)],
                vec![c(Some(100), Some(10), false)],
                r(Some(500), Some(10)),
            ),
            // A sidecar counts with the app containers and with the init
            // containers after it, not with those before it.
            (
                vec![
                    c(Some(300), None, false),
                    c(Some(200), Some(20), true),
                    c(Some(250), None, false),
                ],
                vec![c(Some(100), Some(10), false)],
                r(Some(450), Some(30)),
            ),
            (
                vec![c(Some(600), None, false), c(Some(200), None, true)],
                vec![c(Some(100), None, false)],
                r(Some(600), None),
            ),
            // Nothing requested: nothing.
            (
                vec![c(None, None, false)],
                vec![c(None, None, false)],
                r(None, None),
            ),
        ];
        for (i, (init, app, expected)) in cases.into_iter().enumerate() {
            assert_eq!(requests(init, app), expected, "case {i}");
        }
    }
}
