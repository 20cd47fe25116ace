//! A Job's spec (`batch/v1`): pods that run to completion, `completions`
//! successes with at most `parallelism` pods at a time, retried within
//! `backoffLimit`, decoded into the one [`WorkloadSpec`] with a
//! [`PodSet::Completions`] of its own fields ([`JobSpec`]).
//!
//! Its pod template is the shared one; only `restartPolicy` differs (a
//! Job's is `Never` or `OnFailure`, required: `pod.rs`).

use super::*;

const JOB_SPEC: Schema = Schema {
    known: &[
        "parallelism",
        "completions",
        "completionMode",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "suspend",
        "selector",
        "template",
    ],
    unsupported: &[
        "podFailurePolicy",
        "successPolicy",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
        "podReplacementPolicy",
        "managedBy",
        "manualSelector",
    ],
    ignored: &[],
    hints: &[
        (
            "containers",
            "a Job's containers are in `spec.template.spec.containers`",
        ),
        (
            "replicas",
            "a Job runs `parallelism` pods at a time until `completions` of them succeed",
        ),
        (
            "restartPolicy",
            "a Job's is `spec.template.spec.restartPolicy`",
        ),
    ],
};

/// The most `backoffLimit` flotilla takes: every attempt of an `Indexed`
/// pod is a slot of its own ([`JobSpec::indexed_slot`]), which bounds them.
pub(crate) const MAX_BACKOFF_LIMIT: u32 = 10_000;

impl Decoder<'_> {
    pub(super) fn job_spec(
        &mut self,
        node: &Node,
        document: &mut DecodedDocument,
    ) -> Option<WorkloadSpec> {
        let path = "spec";
        let fields = self.fields(node, path, &JOB_SPEC)?;
        let parallelism = match fields.get("parallelism") {
            Some(node) => {
                document.replicas_location = Some(self.at(node));
                self.replicas(node, "spec.parallelism")
            }
            None => Some(1),
        };
        let completions = match fields.get("completions") {
            Some(node) => self.replicas(node, "spec.completions").map(Some),
            None => Some(None),
        };
        let completion_mode = match fields.get("completionMode") {
            Some(mode) => self.enumeration(
                mode,
                "spec.completionMode",
                &[
                    ("NonIndexed", CompletionMode::NonIndexed),
                    ("Indexed", CompletionMode::Indexed),
                ],
            ),
            None => Some(CompletionMode::NonIndexed),
        };
        let backoff_limit = self.count_or(&fields, path, "backoffLimit", 0, 6);
        if backoff_limit > MAX_BACKOFF_LIMIT {
            let at = fields.get("backoffLimit").unwrap_or(node);
            let diagnostic = self.error(
                at,
                "spec.backoffLimit",
                format!("`backoffLimit` ({backoff_limit}) is more than {MAX_BACKOFF_LIMIT}"),
            );
            Self::hint(
                diagnostic,
                "flotilla keeps every failed pod of a run as its record; retry fewer times",
            );
        }
        let optional_count = |decoder: &mut Self, name: &str, min: u32| match fields.get(name) {
            Some(node) => decoder.count(node, &join(path, name), min).map(Some),
            None => Some(None),
        };
        let active_deadline_seconds = optional_count(self, "activeDeadlineSeconds", 1);
        let ttl_seconds_after_finished = optional_count(self, "ttlSecondsAfterFinished", 0);
        let suspend = match fields.get("suspend") {
            Some(suspend) => self.boolean(suspend, "spec.suspend"),
            None => Some(false),
        };
        if completion_mode == Some(CompletionMode::Indexed) {
            match completions {
                Some(None) => {
                    let diagnostic = self.error(
                        node,
                        "spec.completions",
                        "missing field `completions`: an `Indexed` Job needs it",
                    );
                    Self::hint(
                        diagnostic,
                        "its pods get the indexes 0 to `completions` - 1, each to succeed once",
                    );
                }
                Some(Some(n)) if n > MAX_INDEXED_COMPLETIONS => {
                    let at = fields.get("completions").unwrap_or(node);
                    self.error(
                        at,
                        "spec.completions",
                        format!("`completions` ({n}) of an `Indexed` Job must be at most {MAX_INDEXED_COMPLETIONS}"),
                    );
                }
                _ => {}
            }
        }
        let template_node = self.required(&fields, node, path, "template");
        let template = template_node.map(|t| self.pod_template(t, "spec.template", document));
        let selector = match (fields.get("selector"), &template) {
            (Some(selector_node), Some(template)) => {
                let selector = self.label_selector(selector_node, "spec.selector", false);
                if !selector.matches(&template.labels) {
                    let diagnostic = self.error(
                        selector_node,
                        "spec.selector",
                        "`selector` does not match template `labels`",
                    );
                    Self::hint(diagnostic, "every pod of the Job must match its selector: make `spec.template.metadata.labels` satisfy `spec.selector`, or leave `selector` out");
                }
                Some(selector)
            }
            // Kubernetes makes one up; the template's labels select its pods.
            (None, Some(template)) => Some(LabelSelector {
                match_labels: template.labels.clone(),
                match_expressions: Vec::new(),
            }),
            (_, None) => None,
        };
        Some(WorkloadSpec {
            pods: PodSet::Completions(JobSpec {
                completions: completions?,
                parallelism: parallelism?,
                completion_mode: completion_mode?,
                backoff_limit,
                active_deadline_seconds: active_deadline_seconds?,
                ttl_seconds_after_finished: ttl_seconds_after_finished?,
                suspend: suspend?,
            }),
            selector: selector?,
            template: template?,
            // A changed template is a new run: the old run's pods go first.
            strategy: Strategy::Recreate,
            min_ready_seconds: 0,
            progress_deadline_seconds: super::workloads::NO_FIELD_PROGRESS_DEADLINE_SECONDS,
            revision_history_limit: 0,
            paused: false,
            stateful: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::model::*;
    use crate::manifest::{load, SourceFile};

    const FILE: &str = "batch.yaml";

    /// A Job `pi` with `spec` (indented as the spec's fields) and a pod
    /// `restartPolicy` line (indented as the pod spec's fields).
    fn job(spec: &str, restart: &str) -> String {
        format!(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {{name: pi}}\nspec:\n{spec}  template:\n    metadata: {{labels: {{app: pi}}}}\n    spec:\n{restart}      containers:\n      - name: pi\n        image: busybox\n"
        )
    }

    const NEVER: &str = "      restartPolicy: Never\n";

    fn rendered(loaded: &crate::manifest::Loaded) -> Vec<String> {
        loaded.diagnostics.iter().map(ToString::to_string).collect()
    }

    /// The Job of `spec`, which must load without a diagnostic.
    fn decoded(spec: &str, restart: &str) -> Workload {
        let loaded = load(&[SourceFile::new(FILE, job(spec, restart))]);
        assert_eq!(rendered(&loaded), Vec::<String>::new(), "{spec}");
        loaded.state.workloads[0].clone()
    }

    fn job_spec(spec: &str) -> JobSpec {
        match decoded(spec, NEVER).spec.pods {
            PodSet::Completions(job) => job,
            other => panic!("not a Job's pod set: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_kubernetes() {
        let workload = decoded("", NEVER);
        assert_eq!(workload.kind, Kind::Job);
        assert_eq!(
            workload.spec.pods,
            PodSet::Completions(JobSpec {
                completions: None,
                parallelism: 1,
                completion_mode: CompletionMode::NonIndexed,
                backoff_limit: 6,
                active_deadline_seconds: None,
                ttl_seconds_after_finished: None,
                suspend: false,
            })
        );
        assert!(workload.spec.pods.completes());
        assert_eq!(workload.spec.strategy, Strategy::Recreate);
        assert_eq!(
            workload.spec.selector.match_labels,
            [("app".to_string(), "pi".to_string())].into()
        );
        assert_eq!(
            workload.spec.template.spec.restart_policy,
            RestartPolicy::Never
        );
    }

    #[test]
    fn each_field_decodes() {
        let spec = job_spec("  completions: 6\n  parallelism: 2\n  completionMode: Indexed\n  backoffLimit: 1\n  activeDeadlineSeconds: 60\n  ttlSecondsAfterFinished: 0\n  suspend: true\n  selector: {matchLabels: {app: pi}}\n");
        assert_eq!(
            spec,
            JobSpec {
                completions: Some(6),
                parallelism: 2,
                completion_mode: CompletionMode::Indexed,
                backoff_limit: 1,
                active_deadline_seconds: Some(60),
                ttl_seconds_after_finished: Some(0),
                suspend: true,
            }
        );
        assert_eq!(job_spec("  parallelism: 0\n").parallelism, 0);
        assert_eq!(job_spec("  completions: 0\n").completions, Some(0));
        let on_failure = decoded("", "      restartPolicy: OnFailure\n");
        assert_eq!(
            on_failure.spec.template.spec.restart_policy,
            RestartPolicy::OnFailure
        );
    }

    #[test]
    fn an_indexed_slot_tells_its_index_and_attempt() {
        let spec = job_spec("  completions: 6\n  completionMode: Indexed\n");
        for (index, attempt) in [(0, 0), (5, 0), (3, 2), (99_999, 7)] {
            let slot = JobSpec::indexed_slot(index, attempt);
            assert_eq!(spec.completion_index(slot), Some(index));
            assert_eq!(JobSpec::attempt(slot), attempt);
        }
        assert_eq!(job_spec("").completion_index(3), None);
        let pod = decoded("  completions: 6\n  completionMode: Indexed\n", NEVER);
        assert_eq!(pod.pod_ordinal(JobSpec::indexed_slot(4, 3)), 4);
    }

    /// A template the Job would run is a template as any other: the hash
    /// of a template that never set `restartPolicy` does not move.
    #[test]
    fn a_restart_policy_is_part_of_the_revision() {
        let never = decoded("", NEVER);
        let on_failure = decoded("", "      restartPolicy: OnFailure\n");
        assert_ne!(
            crate::manifest::template_hash(&never.spec.template),
            crate::manifest::template_hash(&on_failure.spec.template)
        );
    }

    #[test]
    fn errors() {
        let named = |name: &str, spec: &str, restart: &str| {
            job(spec, restart).replace(
                "metadata: {name: pi}",
                &format!("metadata: {{name: {name}}}"),
            ) + "---\n"
        };
        let text = [
            named("typos", "  replicas: 3\n  completion: 2\n", NEVER),
            named("negative", "  completions: -1\n  parallelism: -2\n  backoffLimit: -1\n  activeDeadlineSeconds: 0\n  ttlSecondsAfterFinished: -5\n", NEVER),
            named("mode", "  completionMode: indexed\n", NEVER),
            named("indexed-unbounded", "  completionMode: Indexed\n", NEVER),
            named("indexed-too-many", "  completionMode: Indexed\n  completions: 100001\n", NEVER),
            named("backoff", "  backoffLimit: 10001\n", NEVER),
            named("suspend", "  suspend: yes\n", NEVER),
            named("selector", "  selector: {matchLabels: {app: other}}\n", NEVER),
            named("always", "", "      restartPolicy: Always\n"),
            named("no-restart-policy", "", ""),
            named("unsupported", "  podFailurePolicy: {rules: []}\n  successPolicy: {rules: []}\n  backoffLimitPerIndex: 1\n  maxFailedIndexes: 1\n  podReplacementPolicy: Failed\n  managedBy: kueue.x-k8s.io/multikueue\n  manualSelector: true\n", NEVER),
            named("too-parallel", "  parallelism: 150001\n", NEVER),
        ]
        .concat();
        let loaded = load(&[SourceFile::new(FILE, text)]);
        insta::assert_snapshot!(rendered(&loaded).join("\n\n"));
    }

    /// Regression (review of issue 16): Jobs whose `parallelism` together
    /// pass the cluster's bound were reported at the document's start, at
    /// `spec.replicas`, a field a Job does not have.
    #[test]
    fn the_cluster_bound_names_parallelism() {
        let text = [
            job(
                "  parallelism: 150000
",
                NEVER,
            ),
            "---
"
            .to_string(),
            job(
                "  parallelism: 1
",
                NEVER,
            )
            .replace("name: pi", "name: pi2"),
        ]
        .concat();
        let loaded = load(&[SourceFile::new(FILE, text)]);
        let rendered = rendered(&loaded);
        assert_eq!(rendered.len(), 1, "{rendered:?}");
        assert!(
            rendered[0].contains("batch.yaml:18:16 (Job default/pi2: spec.parallelism)"),
            "{}",
            rendered[0]
        );
    }

    /// A Deployment's pods still always restart.
    #[test]
    fn other_kinds_keep_always() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      restartPolicy: Never\n      containers: [{name: web, image: nginx}]\n";
        let loaded = load(&[SourceFile::new("web.yaml", deployment)]);
        assert_eq!(
            rendered(&loaded),
            vec!["error: `restartPolicy: Never` is not allowed for a Deployment, only `Always`\n  --> web.yaml:9:22 (Deployment default/web: spec.template.spec.restartPolicy)\n  = hint: a Deployment's pods always restart; remove `restartPolicy`".to_string()]
        );
    }
}
