//! What a StatefulSet declares besides its pods, once every object is
//! known: the claim of each volume claim template for each ordinal
//! (`data-web-0`, as Kubernetes' StatefulSet controller makes them), and
//! whether its `serviceName` names a Service.
//!
//! Pure, like the rest of `manifest`: it reads the decoded state and adds
//! to it.

use super::diagnostic::Diagnostic;
use super::model::{DesiredState, ObjectMeta, PersistentVolumeClaim, PodSet, MAX_PODS};

/// The most claims the StatefulSets' volume claim templates may declare,
/// in all: as many as the pods a cluster may run. Each is a volume the
/// plan and the hook's answer name, so a hostile `replicas` times many
/// templates is bounded here rather than discovered by the planner.
pub(crate) const MAX_ORDINAL_CLAIMS: u64 = MAX_PODS as u64;

/// Adds to `state.claims` the claim of every volume claim template for
/// every ordinal `start..start + replicas` of every StatefulSet, keeping
/// them sorted. A claim of that name declared in Git is used as it is
/// (Kubernetes adopts it), and none is made. Past [`MAX_ORDINAL_CLAIMS`]
/// none is made at all, with an error.
pub(super) fn declare_ordinal_claims(state: &mut DesiredState, diagnostics: &mut Vec<Diagnostic>) {
    state
        .claims
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    let mut total: u64 = 0;
    for workload in &state.workloads {
        let (Some(set), PodSet::Ordinals { replicas, .. }) =
            (&workload.spec.stateful, workload.spec.pods)
        else {
            continue;
        };
        total += u64::from(replicas) * set.claim_templates.len() as u64;
        if total > MAX_ORDINAL_CLAIMS {
            let templates = set.claim_templates.len();
            diagnostics.push(
                Diagnostic::error(
                    format!(
                        "the StatefulSets declare more than the {MAX_ORDINAL_CLAIMS} claims a cluster may hold"
                    ),
                    workload.meta.field_location("spec.volumeClaimTemplates"),
                )
                .with_object(workload.key().to_string())
                .with_field_path("spec.volumeClaimTemplates")
                .with_hint(format!(
                    "each of its {replicas} replicas has a claim for each of its {templates} volume claim templates; declare fewer replicas or templates"
                )),
            );
            return;
        }
    }
    let mut made = Vec::new();
    for workload in &state.workloads {
        let (Some(set), PodSet::Ordinals { replicas, start }) =
            (&workload.spec.stateful, workload.spec.pods)
        else {
            continue;
        };
        let namespace = &workload.meta.namespace;
        for template in &set.claim_templates {
            // Kubernetes: the template's labels, with the selector's
            // `matchLabels` over them.
            let mut labels = template.labels.clone();
            labels.extend(workload.spec.selector.match_labels.clone());
            for ordinal in start..start.saturating_add(replicas) {
                let name = workload.ordinal_claim_name(&template.name, ordinal);
                if state.claim(namespace, &name).is_some() {
                    continue;
                }
                made.push(PersistentVolumeClaim {
                    meta: ObjectMeta {
                        name,
                        namespace: namespace.clone(),
                        labels: labels.clone(),
                        annotations: template.annotations.clone(),
                        source: workload.meta.source.clone(),
                        field_sources: Default::default(),
                    },
                    storage: template.storage,
                    access_modes: template.access_modes.clone(),
                    delete_volume: false,
                });
            }
        }
    }
    state.claims.extend(made);
    state
        .claims
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::AccessMode;
    use crate::manifest::quantity::Bytes;
    use crate::manifest::{load, SourceFile};

    /// A StatefulSet `name` in `namespace` with `replicas` from `start` and
    /// claim templates `templates` of 1Gi each.
    fn stateful_set(
        namespace: &str,
        name: &str,
        replicas: u32,
        start: u32,
        templates: &[&str],
    ) -> String {
        let templates: String = templates
            .iter()
            .map(|t| format!("  - metadata: {{name: {t}, labels: {{app: other, disk: ssd}}}}\n    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}\n"))
            .collect();
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  replicas: {replicas}\n  ordinals: {{start: {start}}}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: c, image: busybox:1.36}}]\n  volumeClaimTemplates:\n{templates}---\n"
        )
    }

    fn claim_names(state: &DesiredState) -> Vec<String> {
        state
            .claims
            .iter()
            .map(|c| format!("{}/{}", c.meta.namespace, c.meta.name))
            .collect()
    }

    #[test]
    fn one_claim_per_template_and_ordinal_sorted() {
        let text = [
            stateful_set("shop", "web", 2, 3, &["www"]),
            stateful_set("default", "db", 2, 0, &["wal", "data"]),
            stateful_set("default", "empty", 0, 0, &["data"]),
        ]
        .concat();
        let loaded = load(&[SourceFile::new("sets.yaml", text)]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(
            claim_names(&loaded.state),
            [
                "default/data-db-0",
                "default/data-db-1",
                "default/wal-db-0",
                "default/wal-db-1",
                "shop/www-web-3",
                "shop/www-web-4",
            ]
        );
        let claim = loaded.state.claim("shop", "www-web-4").expect("made");
        assert_eq!(claim.storage, Bytes(1 << 30));
        assert_eq!(claim.access_modes, [AccessMode::ReadWriteOnce]);
        assert!(!claim.delete_volume);
        // The template's labels, the selector's over them.
        let labels: Vec<(&str, &str)> = claim
            .meta
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("app", "web"), ("disk", "ssd")]);
        assert_eq!(claim.meta.source.to_string(), "sets.yaml:1:1");
    }

    /// A claim of an ordinal's name declared in Git is the one used, as
    /// Kubernetes adopts it; the others are made.
    #[test]
    fn a_declared_claim_is_adopted() {
        let text = stateful_set("default", "db", 3, 0, &["data"]);
        let mut state = load(&[SourceFile::new("db.yaml", text)]).state;
        let mut declared = state.claim("default", "data-db-1").unwrap().clone();
        declared.storage = Bytes(50 << 30);
        declared.delete_volume = true;
        declared.meta.source.file = "claim.yaml".into();
        state.claims = vec![declared.clone()];
        let mut diagnostics = Vec::new();
        declare_ordinal_claims(&mut state, &mut diagnostics);
        assert!(diagnostics.is_empty());
        assert_eq!(
            claim_names(&state),
            [
                "default/data-db-0",
                "default/data-db-1",
                "default/data-db-2"
            ]
        );
        assert_eq!(state.claim("default", "data-db-1"), Some(&declared));
        assert_eq!(
            state.claim("default", "data-db-0").unwrap().storage,
            Bytes(1 << 30)
        );
    }

    /// `replicas` times templates past the bound is an error at the
    /// StatefulSet that passes it, and no claim is made.
    #[test]
    fn too_many_claims_are_refused_before_any_is_made() {
        let templates: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        let templates: Vec<&str> = templates.iter().map(String::as_str).collect();
        let text = [
            stateful_set("default", "a", 10_000, 0, &templates),
            stateful_set("default", "b", 100_000, 0, &templates),
        ]
        .concat();
        let loaded = load(&[SourceFile::new("sets.yaml", text)]);
        let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert!(loaded.state.claims.is_empty());
        assert_eq!(
            rendered,
            ["error: the StatefulSets declare more than the 150000 claims a cluster may hold\n  --> sets.yaml:46:5 (StatefulSet default/b: spec.volumeClaimTemplates)\n  = hint: each of its 100000 replicas has a claim for each of its 10 volume claim templates; declare fewer replicas or templates"]
        );
    }
}
