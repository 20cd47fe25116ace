//! The claims pods name, checked against the claims the commit declares.
//!
//! Once every object is decoded, each `persistentVolumeClaim` volume of a
//! workload is looked up in its namespace: a claim that is not declared, a
//! claim whose volume is to be deleted, and a `ReadWriteOncePod` claim that
//! more than one pod could use are errors at the reference. Pure, like the
//! rest of `manifest`.

use std::collections::BTreeMap;

use super::diagnostic::Diagnostic;
use super::model::{
    DesiredState, Kind, ObjectKey, PersistentVolumeClaim, PodSet, Strategy, VolumeSource, Workload,
    DELETE_VOLUME_ANNOTATION,
};
use super::names;

/// One `persistentVolumeClaim` volume of a workload's pod.
struct ClaimReference<'a> {
    workload: &'a Workload,
    claim_name: String,
    /// `spec.template.spec.volumes[0].persistentVolumeClaim.claimName`, or
    /// `spec.volumeClaimTemplates[0]` for a StatefulSet ordinal's claim.
    path: String,
    /// The claim of one StatefulSet ordinal: that pod's own storage.
    ordinal: bool,
}

impl ClaimReference<'_> {
    fn error(&self, message: String, hint: String) -> Diagnostic {
        Diagnostic::error(message, self.workload.meta.field_location(&self.path))
            .with_object(self.workload.key().to_string())
            .with_field_path(self.path.clone())
            .with_hint(hint)
    }
}

fn claim_references(workload: &Workload) -> Vec<ClaimReference<'_>> {
    let mut references: Vec<ClaimReference<'_>> = workload
        .spec
        .template
        .spec
        .volumes
        .iter()
        .enumerate()
        .filter_map(|(i, volume)| match &volume.source {
            VolumeSource::Claim(claim) => Some(ClaimReference {
                workload,
                claim_name: claim.claim_name.clone(),
                path: format!("spec.template.spec.volumes[{i}].persistentVolumeClaim.claimName"),
                ordinal: false,
            }),
            _ => None,
        })
        .collect();
    if let (Some(set), PodSet::Ordinals { replicas, start }) =
        (&workload.spec.stateful, workload.spec.pods)
    {
        for (i, template) in set.claim_templates.iter().enumerate() {
            for ordinal in start..start.saturating_add(replicas) {
                references.push(ClaimReference {
                    workload,
                    claim_name: workload.ordinal_claim_name(&template.name, ordinal),
                    path: format!("spec.volumeClaimTemplates[{i}]"),
                    ordinal: true,
                });
            }
        }
    }
    references
}

/// Reports every reference of a pod to a claim it may not use.
/// `declared`: whether an object is declared at all (one with errors is not
/// in `state`; a reference to it is not reported again).
pub(super) fn check_claims(
    state: &DesiredState,
    declared: &dyn Fn(&ObjectKey) -> bool,
    diagnostics: &mut Vec<Diagnostic>,
) {
    // The first workload using each ReadWriteOncePod claim.
    let mut one_pod_users: BTreeMap<(&str, &str), &ClaimReference> = BTreeMap::new();
    let references: Vec<ClaimReference> =
        state.workloads.iter().flat_map(claim_references).collect();
    // An ordinal's claim is that pod's alone: another reference to it (two
    // StatefulSets whose names and templates make the same claim name, a
    // pod naming it) would share that storage.
    let mut first_reference: BTreeMap<(&str, &str), &ClaimReference> = BTreeMap::new();
    for reference in &references {
        let namespace = reference.workload.meta.namespace.as_str();
        match first_reference.get(&(namespace, reference.claim_name.as_str())) {
            Some(first) if first.ordinal || reference.ordinal => {
                diagnostics.push(reference.error(
                    format!(
                        "PersistentVolumeClaim {namespace}/{} is the claim of one StatefulSet pod,                          and {} names it too (at {})",
                        reference.claim_name,
                        first.workload.key(),
                        first.workload.meta.field_location(&first.path)
                    ),
                    "an ordinal's claim is that pod's own storage: rename the volume claim                      template or the claim"
                        .to_string(),
                ));
                continue;
            }
            Some(_) => {}
            None => {
                first_reference.insert((namespace, reference.claim_name.as_str()), reference);
            }
        }
    }
    for reference in &references {
        let namespace = reference.workload.meta.namespace.as_str();
        let Some(claim) = state.claim(namespace, &reference.claim_name) else {
            if reference.ordinal {
                // Not declared only when too many were (an error said so).
                continue;
            }
            let key = ObjectKey {
                kind: Kind::PersistentVolumeClaim,
                namespace: namespace.to_string(),
                name: reference.claim_name.to_string(),
            };
            if !declared(&key) {
                diagnostics.push(not_declared(state, reference));
            }
            continue;
        };
        if claim.delete_volume {
            let hint = if reference.ordinal {
                "the StatefulSet's pod of that ordinal uses it: scale the StatefulSet below the \
                 ordinal first (its claims go with `persistentVolumeClaimRetentionPolicy: \
                 {whenScaled: Delete}`), or remove the annotation to keep the data"
            } else {
                "a pod cannot use a volume that is being deleted: remove this volume from the \
                 pod, or remove the annotation from the claim to keep its data"
            };
            diagnostics.push(reference.error(
                format!(
                    "PersistentVolumeClaim {namespace}/{} is declared to have its volume deleted \
                     ({DELETE_VOLUME_ANNOTATION}: \"true\", at {})",
                    claim.meta.name, claim.meta.source
                ),
                hint.to_string(),
            ));
            continue;
        }
        if !claim.one_pod() || reference.ordinal {
            continue;
        }
        if let Some(pods) = more_than_one_pod(reference.workload) {
            diagnostics.push(reference.error(
                format!(
                    "PersistentVolumeClaim {namespace}/{} is ReadWriteOncePod (one pod at a time), \
                     and {pods}",
                    claim.meta.name
                ),
                one_pod_hint(claim, "run one pod"),
            ));
            continue;
        }
        if rolls_over_itself(reference.workload) {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "PersistentVolumeClaim {namespace}/{} is ReadWriteOncePod (one pod at a \
                         time), and this {}'s rolling update keeps its pod until the new one is \
                         ready: the new pod would wait for the claim, so the rollout would never finish",
                        claim.meta.name, reference.workload.kind
                    ),
                    reference.workload.meta.field_location(&reference.path),
                )
                .with_object(reference.workload.key().to_string())
                .with_field_path(reference.path.clone())
                .with_hint("declare `strategy: {type: Recreate}`, or `rollingUpdate: {maxSurge: 0, maxUnavailable: 1}`"),
            );
        }
        let claim_key = (namespace, claim.meta.name.as_str());
        match one_pod_users.get(&claim_key) {
            Some(first) if first.workload.key() != reference.workload.key() => {
                diagnostics.push(reference.error(
                    format!(
                        "PersistentVolumeClaim {namespace}/{} is ReadWriteOncePod (one pod at a \
                         time), and {} uses it too (at {})",
                        claim.meta.name,
                        first.workload.key(),
                        first.workload.meta.field_location(&first.path)
                    ),
                    one_pod_hint(claim, "give each workload its own claim"),
                ));
            }
            Some(_) => {}
            None => {
                one_pod_users.insert(claim_key, reference);
            }
        }
    }
}

/// What makes `workload` run more than one pod at a time, if it may.
fn more_than_one_pod(workload: &Workload) -> Option<String> {
    match workload.replicas() {
        Some(replicas) if replicas > 1 => {
            Some(format!("this {} runs {replicas} replicas", workload.kind))
        }
        Some(_) => None,
        None => Some(format!("this {} runs a pod on each node", workload.kind)),
    }
}

/// Whether `workload`'s one pod is replaced by a rolling update that
/// starts the new pod first and stops the old one only once it is ready
/// (`maxSurge` above 0, `maxUnavailable` 0 for one replica, as Kubernetes
/// rounds them): two pods of it would need the claim at once.
fn rolls_over_itself(workload: &Workload) -> bool {
    match workload.spec.strategy {
        Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => {
            let replicas = workload.replicas().unwrap_or(1);
            max_surge.resolve(replicas, true) > 0 && max_unavailable.resolve(replicas, false) == 0
        }
        Strategy::Recreate | Strategy::OnDelete => false,
    }
}

fn one_pod_hint(claim: &PersistentVolumeClaim, instead: &str) -> String {
    format!(
        "{instead}, or declare the claim `accessModes: [ReadWriteOnce]` (at {}) so that the pods \
         of its node share it",
        claim.meta.source
    )
}

/// A reference to a claim its namespace does not declare, with the claims
/// that namespace does declare.
fn not_declared(state: &DesiredState, reference: &ClaimReference) -> Diagnostic {
    let namespace = reference.workload.meta.namespace.as_str();
    let in_namespace: Vec<&str> = state
        .claims
        .iter()
        .filter(|c| c.meta.namespace == namespace)
        .map(|c| c.meta.name.as_str())
        .collect();
    let hint = match names::did_you_mean(&reference.claim_name, &in_namespace) {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None if in_namespace.is_empty() => format!(
            "no PersistentVolumeClaim is declared in namespace `{namespace}`: declare `{}` there",
            reference.claim_name
        ),
        None => {
            let quoted: Vec<String> = in_namespace.iter().map(|n| format!("`{n}`")).collect();
            let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
            format!(
                "namespace `{namespace}` declares {}; declare `{}` there, or correct the name",
                names::listed(&quoted, "and"),
                reference.claim_name
            )
        }
    };
    reference.error(
        format!(
            "PersistentVolumeClaim {namespace}/{} is not declared",
            reference.claim_name
        ),
        hint,
    )
}

#[cfg(test)]
mod tests {
    use crate::manifest::{load, SourceFile};

    /// A claim `name` of namespace `default` with `modes`, and `extra`
    /// metadata lines.
    fn claim(name: &str, modes: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n{extra}spec:\n  accessModes: [{modes}]\n  resources: {{requests: {{storage: 1Gi}}}}\n"
        )
    }

    /// A workload of `kind` (`replicas` and `strategy: Recreate` unless a
    /// DaemonSet) whose pod mounts the claim `claim_name`.
    fn workload(kind: &str, name: &str, replicas: u32, claim_name: &str) -> String {
        let replicas = if kind == "DaemonSet" {
            String::new()
        } else {
            format!("  replicas: {replicas}\n  strategy: {{type: Recreate}}\n")
        };
        format!(
            "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: {name}}}\nspec:\n{replicas}  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      volumes:\n      - name: data\n        persistentVolumeClaim: {{claimName: {claim_name}}}\n      containers:\n      - name: app\n        image: postgres:16\n        volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]\n"
        )
    }

    /// A StatefulSet `name` of `replicas` with the volume claim template
    /// `template`.
    fn stateful_set(name: &str, replicas: u32, template: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: app\n        image: postgres:16\n        volumeMounts: [{{name: {template}, mountPath: /data}}]\n  volumeClaimTemplates:\n  - metadata: {{name: {template}}}\n    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"
        )
    }

    /// Review of issue 15: `flotilla volume delete` of an ordinal's claim
    /// was accepted (the check looked at pods' claim volumes only), and the
    /// leader deleted the pod's data at its next restart; two StatefulSets
    /// could make the same claim name and share it.
    #[test]
    fn an_ordinals_claim_is_that_pods_alone_and_not_deleted_under_it() {
        let annotated = claim(
            "data-web-1",
            "ReadWriteOnce",
            "  annotations: {flotilla.dev/delete-volume: \"true\"}\n",
        );
        let found = errors(&[
            ("web.yaml", stateful_set("web", 2, "data")),
            ("gone.yaml", annotated.clone()),
        ]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("data-web-1 is declared to have its volume deleted"),
            "{found:#?}"
        );
        assert!(
            found[0].contains("spec.volumeClaimTemplates[0]"),
            "{found:#?}"
        );
        // Scaled below the ordinal, the claim may go.
        assert!(errors(&[
            ("web.yaml", stateful_set("web", 1, "data")),
            ("gone.yaml", annotated)
        ])
        .is_empty());
        // `a-b` with template `d` and `b` with template `d-a`: both `d-a-b-0`.
        let found = errors(&[
            ("a.yaml", stateful_set("a-b", 1, "d")),
            ("b.yaml", stateful_set("b", 1, "d-a")),
        ]);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("d-a-b-0 is the claim of one StatefulSet pod"),
            "{found:#?}"
        );
        // A Deployment naming an ordinal's claim.
        let found = errors(&[
            ("web.yaml", stateful_set("web", 1, "data")),
            (
                "other.yaml",
                workload("Deployment", "other", 1, "data-web-0"),
            ),
        ]);
        assert_eq!(found.len(), 1, "{found:#?}");
    }

    fn errors(files: &[(&str, String)]) -> Vec<String> {
        let files: Vec<SourceFile> = files
            .iter()
            .map(|(path, text)| SourceFile::new(*path, text.clone()))
            .collect();
        load(&files)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// `check(files, expected)`: the errors of loading `files`, rendered.
    fn check(files: &[(&str, String)], expected: &[&str]) {
        assert_eq!(errors(files), expected, "{files:#?}");
    }

    #[test]
    fn claims_used_as_they_may_be() {
        let rwo = claim("data", "ReadWriteOnce", "");
        let rwop = claim("data", "ReadWriteOncePod", "");
        // A claim of the pod's namespace, shared by the pods of its node.
        check(
            &[
                ("claim.yaml", rwo.clone()),
                ("db.yaml", workload("Deployment", "db", 3, "data")),
                ("backup.yaml", workload("DaemonSet", "backup", 0, "data")),
            ],
            &[],
        );
        // One pod: one replica (or none), one workload.
        check(
            &[
                ("claim.yaml", rwop.clone()),
                ("db.yaml", workload("Deployment", "db", 1, "data")),
            ],
            &[],
        );
        check(
            &[
                ("claim.yaml", rwop.clone()),
                ("db.yaml", workload("Deployment", "db", 0, "data")),
            ],
            &[],
        );
        // A rolling update that starts the new pod before the old one
        // stops could not finish: said, as a warning.
        let rolling = workload("Deployment", "db", 1, "data");
        check(
            &[
                ("claim.yaml", rwop.clone()),
                ("db.yaml", rolling.replace("  strategy: {type: Recreate}\n", "")),
            ],
            &["warning: PersistentVolumeClaim default/data is ReadWriteOncePod (one pod at a time), and this Deployment's rolling update keeps its pod until the new one is ready: the new pod would wait for the claim, so the rollout would never finish\n  --> db.yaml:12:44 (Deployment default/db: spec.template.spec.volumes[0].persistentVolumeClaim.claimName)\n  = hint: declare `strategy: {type: Recreate}`, or `rollingUpdate: {maxSurge: 0, maxUnavailable: 1}`"],
        );
        let unavailable = rolling.replace(
            "{type: Recreate}",
            "{rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}",
        );
        check(&[("claim.yaml", rwop), ("db.yaml", unavailable)], &[]);
        // A claim with errors is named by its own errors only.
        let broken = rwo.replace("1Gi", "lots");
        let errors = errors(&[
            ("claim.yaml", broken),
            ("db.yaml", workload("Deployment", "db", 1, "data")),
        ]);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("error: invalid quantity `lots`"));
    }

    #[test]
    fn claims_pods_may_not_use() {
        let namespaced = claim("other", "ReadWriteOnce", "  namespace: shop\n");
        let files = [
            (
                "claims.yaml",
                [
                    claim("logs", "ReadWriteOnce", ""),
                    claim("cache", "ReadWriteOnce", ""),
                    claim(
                        "old",
                        "ReadWriteOnce",
                        "  annotations: {flotilla.dev/delete-volume: \"true\"}\n",
                    ),
                    claim("db", "ReadWriteOncePod", ""),
                ]
                .join("---\n"),
            ),
            ("shop.yaml", namespaced),
            (
                "a-missing.yaml",
                workload("Deployment", "missing", 1, "nothing"),
            ),
            ("b-typo.yaml", workload("Deployment", "typo", 1, "cahce")),
            (
                "c-other-namespace.yaml",
                workload("Deployment", "elsewhere", 1, "other"),
            ),
            (
                "d-deleted.yaml",
                workload("Deployment", "deleted", 1, "old"),
            ),
            ("e-replicas.yaml", workload("Deployment", "scaled", 2, "db")),
            (
                "f-daemon.yaml",
                workload("DaemonSet", "everywhere", 0, "db"),
            ),
            ("g-first.yaml", workload("Deployment", "first", 1, "db")),
            ("h-second.yaml", workload("Deployment", "second", 1, "db")),
        ];
        insta::assert_snapshot!(errors(&files).join("\n\n"));
        // Without any claim in the namespace, the hint says so.
        check(
            &[("a.yaml", workload("Deployment", "missing", 1, "data"))],
            &["error: PersistentVolumeClaim default/data is not declared\n  --> a.yaml:13:44 (Deployment default/missing: spec.template.spec.volumes[0].persistentVolumeClaim.claimName)\n  = hint: no PersistentVolumeClaim is declared in namespace `default`: declare `data` there"],
        );
    }
}
