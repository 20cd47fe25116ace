//! The specs of the kinds that run pods: what each kind declares besides its
//! pod template (how many pods and where, how to update them), decoded into
//! the one [`WorkloadSpec`] every later stage shares. A StatefulSet's, with
//! its volume claim templates, is in `stateful_set.rs`.

use super::*;

const DEPLOYMENT_SPEC: Schema = Schema {
    known: &[
        "replicas",
        "selector",
        "template",
        "strategy",
        "minReadySeconds",
        "progressDeadlineSeconds",
        "revisionHistoryLimit",
        "paused",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "containers",
        "a Deployment's containers are in `spec.template.spec.containers`",
    )],
};

const DAEMON_SET_SPEC: Schema = Schema {
    known: &[
        "selector",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "revisionHistoryLimit",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[
        (
            "containers",
            "a DaemonSet's containers are in `spec.template.spec.containers`",
        ),
        (
            "replicas",
            "a DaemonSet runs one pod on every eligible node; choose the nodes with `spec.template.spec.nodeSelector` or tolerations",
        ),
        ("strategy", "a DaemonSet's is `updateStrategy`"),
    ],
};

pub(super) const STRATEGY: Schema = Schema {
    known: &["type", "rollingUpdate"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const ROLLING_UPDATE: Schema = Schema {
    known: &["maxSurge", "maxUnavailable"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// The progress deadline of a DaemonSet or a StatefulSet: neither has a
/// `progressDeadlineSeconds` field, so a rollout stuck for Deployment's
/// default time fails.
pub(super) const NO_FIELD_PROGRESS_DEADLINE_SECONDS: u32 = 600;

/// How the two update strategies of a kind are spelt, and their defaults.
struct StrategyForm {
    /// The other `type` besides `RollingUpdate`, and its strategy.
    other: (&'static str, Strategy),
    /// `rollingUpdate`'s defaults: (maxSurge, maxUnavailable).
    defaults: (IntOrPercent, IntOrPercent),
    /// `maxSurge` and `maxUnavailable` may not both be above 0.
    surge_or_unavailable: bool,
}

/// Deployment's `strategy`: `RollingUpdate` (25 %, 25 %) or `Recreate`.
const DEPLOYMENT_STRATEGY: StrategyForm = StrategyForm {
    other: ("Recreate", Strategy::Recreate),
    defaults: (IntOrPercent::Percent(25), IntOrPercent::Percent(25)),
    surge_or_unavailable: false,
};

/// DaemonSet's `updateStrategy`: `RollingUpdate` (maxSurge 0,
/// maxUnavailable 1) or `OnDelete`.
const DAEMON_SET_STRATEGY: StrategyForm = StrategyForm {
    other: ("OnDelete", Strategy::OnDelete),
    defaults: (IntOrPercent::Int(0), IntOrPercent::Int(1)),
    surge_or_unavailable: true,
};

impl Decoder<'_> {
    /// The spec of a workload of `kind` (a supported kind that runs pods).
    pub(super) fn workload_spec_of(
        &mut self,
        kind: Kind,
        node: &Node,
        document: &mut DecodedDocument,
    ) -> Option<WorkloadSpec> {
        self.pod_owner = kind;
        match kind {
            Kind::Deployment => self.deployment_spec(node, document),
            Kind::DaemonSet => self.daemon_set_spec(node, document),
            Kind::StatefulSet => self.stateful_set_spec(node, document),
            Kind::Job => self.job_spec(node, document),
            _ => {
                let diagnostic = self.error(node, "kind", format!("{kind} is not supported yet"));
                Self::hint(
                    diagnostic,
                    format!("flotilla supports {} for now", Kind::supported_list()),
                );
                None
            }
        }
    }

    /// `spec.replicas`, 1 when left out, its place recorded (for the
    /// commands that edit it); `None` when it is invalid (an error said so).
    pub(super) fn replicas_field(
        &mut self,
        fields: &Fields,
        document: &mut DecodedDocument,
    ) -> Option<u32> {
        match fields.get("replicas") {
            Some(node) => {
                document.replicas_location = Some(self.at(node));
                self.replicas(node, "spec.replicas")
            }
            None => Some(1),
        }
    }

    fn deployment_spec(
        &mut self,
        node: &Node,
        document: &mut DecodedDocument,
    ) -> Option<WorkloadSpec> {
        let path = "spec";
        let fields = self.fields(node, path, &DEPLOYMENT_SPEC)?;
        let replicas = self.replicas_field(&fields, document).unwrap_or(1);
        let min_ready_seconds = self.count_or(&fields, path, "minReadySeconds", 0, 0);
        let progress_deadline_seconds =
            self.count_or(&fields, path, "progressDeadlineSeconds", 1, 600);
        let revision_history_limit = self.count_or(&fields, path, "revisionHistoryLimit", 0, 10);
        let paused = match fields.get("paused") {
            Some(paused) => self.boolean(paused, "spec.paused").unwrap_or(false),
            None => false,
        };
        if let Some(deadline) = fields.get("progressDeadlineSeconds") {
            if progress_deadline_seconds <= min_ready_seconds {
                self.error(
                    deadline,
                    "spec.progressDeadlineSeconds",
                    format!(
                        "`progressDeadlineSeconds` ({progress_deadline_seconds}) must be greater than `minReadySeconds` ({min_ready_seconds})"
                    ),
                );
            }
        } else if min_ready_seconds >= progress_deadline_seconds {
            let node = fields.get("minReadySeconds").unwrap_or(node);
            self.error(
                node,
                "spec.minReadySeconds",
                format!("`minReadySeconds` ({min_ready_seconds}) must be less than `progressDeadlineSeconds` ({progress_deadline_seconds})"),
            );
        }
        let strategy = match fields.get("strategy") {
            Some(strategy) => self.strategy(strategy, "spec.strategy", &DEPLOYMENT_STRATEGY),
            None => Strategy::default(),
        };
        let (selector, template) = self.selected_template(node, &fields, document)?;
        Some(WorkloadSpec {
            pods: PodSet::Replicas(replicas),
            selector,
            template,
            strategy,
            min_ready_seconds,
            progress_deadline_seconds,
            revision_history_limit,
            paused,
            stateful: None,
        })
    }

    fn daemon_set_spec(
        &mut self,
        node: &Node,
        document: &mut DecodedDocument,
    ) -> Option<WorkloadSpec> {
        let path = "spec";
        let fields = self.fields(node, path, &DAEMON_SET_SPEC)?;
        let min_ready_seconds = self.min_ready_seconds_within_deadline(node, &fields);
        let revision_history_limit = self.count_or(&fields, path, "revisionHistoryLimit", 0, 10);
        let strategy = match fields.get("updateStrategy") {
            Some(strategy) => self.strategy(strategy, "spec.updateStrategy", &DAEMON_SET_STRATEGY),
            None => Strategy::RollingUpdate {
                max_surge: DAEMON_SET_STRATEGY.defaults.0,
                max_unavailable: DAEMON_SET_STRATEGY.defaults.1,
            },
        };
        let (selector, template) = self.selected_template(node, &fields, document)?;
        Some(WorkloadSpec {
            pods: PodSet::OnePerNode,
            selector,
            template,
            strategy,
            min_ready_seconds,
            progress_deadline_seconds: NO_FIELD_PROGRESS_DEADLINE_SECONDS,
            revision_history_limit,
            paused: false,
            stateful: None,
        })
    }

    /// `minReadySeconds` of a kind without `progressDeadlineSeconds`: less
    /// than [`NO_FIELD_PROGRESS_DEADLINE_SECONDS`], or no rollout could
    /// ever finish in time.
    pub(super) fn min_ready_seconds_within_deadline(
        &mut self,
        node: &Node,
        fields: &Fields,
    ) -> u32 {
        let min_ready_seconds = self.count_or(fields, "spec", "minReadySeconds", 0, 0);
        if min_ready_seconds >= NO_FIELD_PROGRESS_DEADLINE_SECONDS {
            let owner = self.pod_owner;
            let at = fields.get("minReadySeconds").unwrap_or(node);
            let diagnostic = self.error(
                at,
                "spec.minReadySeconds",
                format!("`minReadySeconds` ({min_ready_seconds}) must be less than {NO_FIELD_PROGRESS_DEADLINE_SECONDS}, the progress deadline of a {owner}'s rollout"),
            );
            Self::hint(
                diagnostic,
                "a rollout that makes no progress for that long fails and is reverted",
            );
        }
        min_ready_seconds
    }

    /// `selector` and `template`, both required, the selector matching the
    /// template's labels.
    pub(super) fn selected_template(
        &mut self,
        node: &Node,
        fields: &Fields,
        document: &mut DecodedDocument,
    ) -> Option<(LabelSelector, PodTemplate)> {
        let path = "spec";
        let selector_node = self.required(fields, node, path, "selector");
        let selector = selector_node.map(|s| self.label_selector(s, "spec.selector", false));
        let template_node = self.required(fields, node, path, "template");
        let template = template_node.map(|t| self.pod_template(t, "spec.template", document));
        if let (Some(selector_node), Some(selector), Some(template)) =
            (selector_node, &selector, &template)
        {
            if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
                let diagnostic =
                    self.error(selector_node, "spec.selector", "selector must not be empty");
                Self::hint(diagnostic, "select the pods by their labels: `matchLabels` with `spec.template.metadata.labels`");
            } else if !selector.matches(&template.labels) {
                let owner = self.pod_owner;
                let diagnostic = self.error(
                    selector_node,
                    "spec.selector",
                    "`selector` does not match template `labels`",
                );
                Self::hint(diagnostic, format!("every pod of the {owner} must match its selector: make `spec.template.metadata.labels` satisfy `spec.selector`"));
            }
        }
        Some((selector?, template?))
    }

    fn strategy(&mut self, node: &Node, path: &str, form: &StrategyForm) -> Strategy {
        let (default_surge, default_unavailable) = form.defaults;
        let rolling_default = Strategy::RollingUpdate {
            max_surge: default_surge,
            max_unavailable: default_unavailable,
        };
        let Some(fields) = self.fields(node, path, &STRATEGY) else {
            return rolling_default;
        };
        let (other_name, other) = &form.other;
        let is_other = match fields.get("type") {
            Some(kind) => self
                .enumeration(
                    kind,
                    &join(path, "type"),
                    &[("RollingUpdate", false), (other_name, true)],
                )
                .unwrap_or(false),
            None => false,
        };
        let rolling = fields.get("rollingUpdate");
        if is_other {
            if let Some(rolling) = rolling {
                self.error(
                    rolling,
                    &join(path, "rollingUpdate"),
                    format!("`rollingUpdate` may not be given when `type` is `{other_name}`"),
                );
            }
            return other.clone();
        }
        let mut max_surge = default_surge;
        let mut max_unavailable = default_unavailable;
        let mut surge_node = None;
        if let Some(rolling) = rolling {
            let rolling_path = join(path, "rollingUpdate");
            if let Some(rolling_fields) = self.fields(rolling, &rolling_path, &ROLLING_UPDATE) {
                if let Some(surge) = rolling_fields.get("maxSurge") {
                    surge_node = Some(surge);
                    max_surge = self
                        .int_or_percent(surge, &join(&rolling_path, "maxSurge"), false)
                        .unwrap_or(max_surge);
                }
                if let Some(unavailable) = rolling_fields.get("maxUnavailable") {
                    max_unavailable = self
                        .int_or_percent(unavailable, &join(&rolling_path, "maxUnavailable"), true)
                        .unwrap_or(max_unavailable);
                }
                if max_surge.is_zero() && max_unavailable.is_zero() {
                    let at = rolling_fields.get("maxUnavailable").unwrap_or(rolling);
                    let diagnostic = self.error(
                        at,
                        &join(&rolling_path, "maxUnavailable"),
                        "`maxUnavailable` may not be 0 when `maxSurge` is 0",
                    );
                    Self::hint(
                        diagnostic,
                        "a rollout needs room to replace pods: raise one of them",
                    );
                }
            }
        }
        // Kubernetes: a DaemonSet surges or leaves nodes without a pod,
        // not both.
        if form.surge_or_unavailable && !max_surge.is_zero() && !max_unavailable.is_zero() {
            if let Some(surge) = surge_node {
                let rolling_path = join(path, "rollingUpdate");
                let diagnostic = self.error(
                    surge,
                    &join(&rolling_path, "maxSurge"),
                    "`maxSurge` may not be set when `maxUnavailable` is not 0",
                );
                Self::hint(
                    diagnostic,
                    "a DaemonSet rolls by surging (`maxSurge`, with `maxUnavailable: 0`) or by leaving nodes without a pod (`maxUnavailable`), not both",
                );
            }
        }
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        }
    }

    pub(super) fn int_or_percent(
        &mut self,
        node: &Node,
        path: &str,
        at_most_100: bool,
    ) -> Option<IntOrPercent> {
        match self.int_or_string(node, path)? {
            IntOrString::Int(n) => {
                if n < 0 {
                    self.error(node, path, format!("must not be negative, found {n}"));
                    return None;
                }
                u32::try_from(n.min(INT32_MAX)).ok().map(IntOrPercent::Int)
            }
            IntOrString::String(text) => {
                let percent = text
                    .strip_suffix('%')
                    .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|d| d.parse::<u32>().ok());
                match percent {
                    Some(p) if at_most_100 && p > 100 => {
                        self.error(
                            node,
                            path,
                            format!("must not be more than 100%, found {text}"),
                        );
                        None
                    }
                    Some(p) => Some(IntOrPercent::Percent(p)),
                    None => {
                        let diagnostic = self.error(
                            node,
                            path,
                            format!("invalid value `{text}`, expected an integer or a percentage"),
                        );
                        Self::hint(diagnostic, "write `1` or `25%`");
                        None
                    }
                }
            }
        }
    }
}
