//! A StatefulSet's spec (`apps/v1`): pods with stable ordinals (`web-0`,
//! `web-1`, ...), each with its own claims from `volumeClaimTemplates`,
//! created, updated and removed in ordinal order. The claims themselves are
//! declared by `manifest::stateful` once every object is known.
//!
//! A volume claim template's `spec` is a PersistentVolumeClaim's, read by
//! `storage.rs`'s `claim_spec`.

use super::workloads::{NO_FIELD_PROGRESS_DEADLINE_SECONDS, STRATEGY};
use super::*;

const STATEFUL_SET_SPEC: Schema = Schema {
    known: &[
        "replicas",
        "selector",
        "template",
        "serviceName",
        "podManagementPolicy",
        "updateStrategy",
        "volumeClaimTemplates",
        "persistentVolumeClaimRetentionPolicy",
        "ordinals",
        "minReadySeconds",
        "revisionHistoryLimit",
    ],
    unsupported: &[],
    ignored: &[],
    hints: &[
        (
            "containers",
            "a StatefulSet's containers are in `spec.template.spec.containers`",
        ),
        ("strategy", "a StatefulSet's is `updateStrategy`"),
        (
            "progressDeadlineSeconds",
            "a StatefulSet has no progress deadline of its own: its rollout fails after 600 seconds without progress",
        ),
        (
            "volumes",
            "a pod's volumes are in `spec.template.spec.volumes`; a claim for each pod is a `volumeClaimTemplates` entry",
        ),
    ],
};

const STATEFUL_ROLLING_UPDATE: Schema = Schema {
    known: &["partition", "maxUnavailable"],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "maxSurge",
        "a StatefulSet replaces each ordinal's pod in place, never running two of one ordinal: it has no `maxSurge`",
    )],
};

const ORDINALS: Schema = Schema {
    known: &["start"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const RETENTION_POLICY: Schema = Schema {
    known: &["whenDeleted", "whenScaled"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CLAIM_TEMPLATE: Schema = Schema {
    known: &["apiVersion", "kind", "metadata", "spec"],
    unsupported: &[],
    ignored: &["status"],
    hints: NO_HINTS,
};

const CLAIM_TEMPLATE_METADATA: Schema = Schema {
    known: &["name", "labels", "annotations"],
    unsupported: &[],
    ignored: &[
        "creationTimestamp",
        "uid",
        "resourceVersion",
        "generation",
        "managedFields",
        "selfLink",
    ],
    hints: &[(
        "namespace",
        "a StatefulSet's claims are in the StatefulSet's namespace",
    )],
};

// The claim spec's rules, as `storage.rs` has them for `kind:
// PersistentVolumeClaim`.

/// The longest object name: an ordinal's claim name must fit.
const MAX_CLAIM_NAME: usize = 253;

impl Decoder<'_> {
    pub(super) fn stateful_set_spec(
        &mut self,
        node: &Node,
        document: &mut DecodedDocument,
    ) -> Option<WorkloadSpec> {
        let path = "spec";
        let fields = self.fields(node, path, &STATEFUL_SET_SPEC)?;
        let replicas = self.replicas_field(&fields, document);
        let start = match fields.get("ordinals") {
            Some(ordinals) => self.ordinals_start(ordinals, replicas.unwrap_or(1)),
            None => Some(0),
        };
        let service_name = match fields.get("serviceName") {
            Some(name) => {
                let name_path = "spec.serviceName";
                self.field_sources
                    .insert(name_path.to_string(), self.at(name));
                // `""` is no Service, as when the field is left out.
                match self.string(name, name_path)? {
                    empty if empty.is_empty() => Some(empty),
                    _ => self.checked_name(name, name_path, "Service name", names::dns1035_label),
                }
            }
            None => Some(String::new()),
        };
        let pod_management = match fields.get("podManagementPolicy") {
            Some(policy) => self.enumeration(
                policy,
                "spec.podManagementPolicy",
                &[
                    ("OrderedReady", PodManagement::OrderedReady),
                    ("Parallel", PodManagement::Parallel),
                ],
            ),
            None => Some(PodManagement::OrderedReady),
        };
        let (strategy, partition) = match fields.get("updateStrategy") {
            Some(strategy) => self.stateful_update_strategy(strategy, "spec.updateStrategy"),
            None => (stateful_rolling_update(IntOrPercent::Int(1)), 0),
        };
        let min_ready_seconds = self.min_ready_seconds_within_deadline(node, &fields);
        let revision_history_limit = self.count_or(&fields, path, "revisionHistoryLimit", 0, 10);
        let (when_deleted, when_scaled) = match fields.get("persistentVolumeClaimRetentionPolicy") {
            Some(policy) => self.retention_policy(policy),
            None => (Some(ClaimRetention::Retain), Some(ClaimRetention::Retain)),
        };
        // Before the template, whose containers mount them by name.
        let claim_templates = match fields.get("volumeClaimTemplates") {
            Some(templates) => self.claim_templates(templates),
            None => Some(Vec::new()),
        };
        let selected = self.selected_template(node, &fields, document);
        let claim_template_names = std::mem::take(&mut self.claim_template_names);
        let (selector, template) = selected?;
        let claim_templates = claim_templates?;
        self.claim_templates_apart_from_volumes(&claim_template_names, &template.spec);
        let (replicas, start) = (replicas?, start?);
        if let Some(name) = self.object_name() {
            self.claim_names_fit(&claim_templates, &name, start, replicas);
        }
        Some(WorkloadSpec {
            pods: PodSet::Ordinals { replicas, start },
            selector,
            template,
            strategy,
            min_ready_seconds,
            progress_deadline_seconds: NO_FIELD_PROGRESS_DEADLINE_SECONDS,
            revision_history_limit,
            paused: false,
            stateful: Some(StatefulSpec {
                service_name: service_name?,
                pod_management: pod_management?,
                partition,
                claim_templates,
                when_deleted: when_deleted?,
                when_scaled: when_scaled?,
            }),
        })
    }

    /// The StatefulSet's name, when its metadata gives a valid one.
    fn object_name(&self) -> Option<String> {
        let object = self.object.as_deref()?;
        let (_, name) = object.rsplit_once('/')?;
        names::dns1123_subdomain(name)
            .is_ok()
            .then(|| name.to_string())
    }

    /// `ordinals.start`: the first ordinal, 0 by default; the last one
    /// (`start + replicas - 1`) must be an int32 like every ordinal.
    fn ordinals_start(&mut self, node: &Node, replicas: u32) -> Option<u32> {
        let path = "spec.ordinals";
        let fields = self.fields(node, path, &ORDINALS)?;
        let Some(start_node) = fields.get("start") else {
            return Some(0);
        };
        let start = self.count(start_node, &join(path, "start"), 0)?;
        let last = i64::from(start) + i64::from(replicas) - 1;
        if last > INT32_MAX {
            let diagnostic = self.error(
                start_node,
                &join(path, "start"),
                format!("the last ordinal, {start} + {replicas} replicas - 1 = {last}, is more than {INT32_MAX}"),
            );
            Self::hint(diagnostic, "start the ordinals lower");
            return None;
        }
        Some(start)
    }

    /// `updateStrategy`: `RollingUpdate` (the default: `partition` 0,
    /// `maxUnavailable` 1) or `OnDelete`; and the partition.
    fn stateful_update_strategy(&mut self, node: &Node, path: &str) -> (Strategy, u32) {
        let default_unavailable = IntOrPercent::Int(1);
        let rolling_default = (stateful_rolling_update(default_unavailable), 0);
        let Some(fields) = self.fields(node, path, &STRATEGY) else {
            return rolling_default;
        };
        let on_delete = match fields.get("type") {
            Some(kind) => self
                .enumeration(
                    kind,
                    &join(path, "type"),
                    &[("RollingUpdate", false), ("OnDelete", true)],
                )
                .unwrap_or(false),
            None => false,
        };
        let rolling_path = join(path, "rollingUpdate");
        let Some(rolling) = fields.get("rollingUpdate") else {
            return match on_delete {
                true => (Strategy::OnDelete, 0),
                false => rolling_default,
            };
        };
        if on_delete {
            self.error(
                rolling,
                &rolling_path,
                "`rollingUpdate` may not be given when `type` is `OnDelete`",
            );
            return (Strategy::OnDelete, 0);
        }
        let Some(rolling_fields) = self.fields(rolling, &rolling_path, &STATEFUL_ROLLING_UPDATE)
        else {
            return rolling_default;
        };
        let partition = self.count_or(&rolling_fields, &rolling_path, "partition", 0, 0);
        let mut max_unavailable = default_unavailable;
        if let Some(unavailable) = rolling_fields.get("maxUnavailable") {
            let unavailable_path = join(&rolling_path, "maxUnavailable");
            if let Some(value) = self.int_or_percent(unavailable, &unavailable_path, true) {
                if value.is_zero() {
                    let diagnostic = self.error(
                        unavailable,
                        &unavailable_path,
                        "`maxUnavailable` must be more than 0",
                    );
                    Self::hint(
                        diagnostic,
                        "a StatefulSet's rollout replaces at least one pod at a time; 1, the default, replaces one ordinal after another",
                    );
                } else {
                    max_unavailable = value;
                }
            }
        }
        (stateful_rolling_update(max_unavailable), partition)
    }

    /// `persistentVolumeClaimRetentionPolicy`: `whenDeleted` and
    /// `whenScaled`, each `Retain` (the default) or `Delete`.
    fn retention_policy(
        &mut self,
        node: &Node,
    ) -> (Option<ClaimRetention>, Option<ClaimRetention>) {
        let path = "spec.persistentVolumeClaimRetentionPolicy";
        let Some(fields) = self.fields(node, path, &RETENTION_POLICY) else {
            return (None, None);
        };
        let mut retention = |name: &str| match fields.get(name) {
            Some(value) => self.enumeration(
                value,
                &join(path, name),
                &[
                    ("Retain", ClaimRetention::Retain),
                    ("Delete", ClaimRetention::Delete),
                ],
            ),
            None => Some(ClaimRetention::Retain),
        };
        (retention("whenDeleted"), retention("whenScaled"))
    }

    /// `volumeClaimTemplates`: each a PersistentVolumeClaim with a name of
    /// its own. Every valid name is kept in `claim_template_names`, the
    /// ones of templates with errors too, so that a mount naming one is not
    /// an error as well.
    fn claim_templates(&mut self, node: &Node) -> Option<Vec<ClaimTemplate>> {
        let path = "spec.volumeClaimTemplates";
        self.field_sources.insert(path.to_string(), self.at(node));
        let file = self.file;
        let items = self.sequence(node, path)?;
        let mut templates = Vec::new();
        let mut first_lines: BTreeMap<String, u32> = BTreeMap::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            let Some(fields) = self.fields(item, &item_path, &CLAIM_TEMPLATE) else {
                ok = false;
                continue;
            };
            if let Some(version) = fields.get("apiVersion") {
                ok &= self
                    .enumeration(version, &join(&item_path, "apiVersion"), &[("v1", ())])
                    .is_some();
            }
            if let Some(kind) = fields.get("kind") {
                ok &= self
                    .enumeration(
                        kind,
                        &join(&item_path, "kind"),
                        &[("PersistentVolumeClaim", ())],
                    )
                    .is_some();
            }
            let meta = self
                .required(&fields, item, &item_path, "metadata")
                .and_then(|m| self.claim_template_metadata(m, &join(&item_path, "metadata")));
            let name = meta.as_ref().and_then(|(name_node, name, _, _)| {
                if let Some(first) = first_lines.get(name) {
                    self.error(
                        name_node,
                        &join(&item_path, "metadata.name"),
                        format!("volume claim template name `{name}` is used twice (first at {file}:{first})"),
                    );
                    return None;
                }
                first_lines.insert(name.clone(), name_node.line);
                self.claim_template_names.insert(name.clone());
                Some(name.clone())
            });
            let spec = self
                .required(&fields, item, &item_path, "spec")
                .and_then(|spec| self.claim_spec(spec, &join(&item_path, "spec")));
            match (name, meta, spec) {
                (Some(name), Some((_, _, labels, annotations)), Some((storage, access_modes))) => {
                    templates.push(ClaimTemplate {
                        name,
                        labels,
                        annotations,
                        storage,
                        access_modes,
                    });
                }
                _ => ok = false,
            }
        }
        ok.then_some(templates)
    }

    /// A template's `metadata`: its name (a DNS label, since pods mount it
    /// by that name), labels and annotations; the delete-volume annotation
    /// is refused, as retention is the StatefulSet's to say.
    #[allow(clippy::type_complexity)]
    fn claim_template_metadata<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
    ) -> Option<(
        &'n Node,
        String,
        BTreeMap<String, String>,
        BTreeMap<String, String>,
    )> {
        let fields = self.fields(node, path, &CLAIM_TEMPLATE_METADATA)?;
        let name_node = self.required(&fields, node, path, "name");
        let name = name_node.and_then(|n| {
            self.checked_name(
                n,
                &join(path, "name"),
                "volume claim template name",
                names::dns1123_label,
            )
        });
        let labels = match fields.get("labels") {
            Some(labels) => self.labels(labels, &join(path, "labels")),
            None => BTreeMap::new(),
        };
        let annotations = match fields.get("annotations") {
            Some(annotations) => self.annotations(annotations, &join(path, "annotations")),
            None => BTreeMap::new(),
        };
        if annotations.contains_key(DELETE_VOLUME_ANNOTATION) {
            let at = fields.get("annotations").unwrap_or(node);
            let diagnostic = self.error(
                at,
                &key_path(&join(path, "annotations"), DELETE_VOLUME_ANNOTATION),
                format!("annotation {DELETE_VOLUME_ANNOTATION} may not be given on a volume claim template"),
            );
            Self::hint(
                diagnostic,
                "a StatefulSet's claims are deleted by `persistentVolumeClaimRetentionPolicy` (`whenScaled: Delete`, `whenDeleted: Delete`)",
            );
            return None;
        }
        Some((name_node?, name?, labels, annotations))
    }

    /// A volume claim template may not share its name with a volume of the
    /// pod: a mount of that name would mean either.
    fn claim_templates_apart_from_volumes(&mut self, templates: &BTreeSet<String>, pod: &PodSpec) {
        for (i, volume) in pod.volumes.iter().enumerate() {
            if !templates.contains(&volume.name) {
                continue;
            }
            let path = format!("spec.template.spec.volumes[{i}]");
            let Some(at) = self.field_sources.get(&path).cloned() else {
                continue;
            };
            let message = format!(
                "volume `{}` has the name of a volume claim template",
                volume.name
            );
            let diagnostic = self.push(Diagnostic::error(message, at), &join(&path, "name"));
            Self::hint(
                diagnostic,
                "a mount names one or the other: rename the volume or the template",
            );
        }
    }

    /// Every ordinal's claim name (`<template>-<set>-<ordinal>`) must be an
    /// object name: checked on the longest, the last ordinal's.
    fn claim_names_fit(
        &mut self,
        templates: &[ClaimTemplate],
        set: &str,
        start: u32,
        replicas: u32,
    ) {
        if replicas == 0 {
            return;
        }
        let last = start + (replicas - 1);
        let path = "spec.volumeClaimTemplates";
        for (i, template) in templates.iter().enumerate() {
            let claim = format!("{}-{set}-{last}", template.name);
            if claim.len() <= MAX_CLAIM_NAME {
                continue;
            }
            let Some(at) = self.field_sources.get(path).cloned() else {
                continue;
            };
            let message = format!(
                "the claim name of ordinal {last}, `{}-{set}-{last}`, is longer than {MAX_CLAIM_NAME} characters ({})",
                template.name,
                claim.len()
            );
            let diagnostic = self.push(
                Diagnostic::error(message, at),
                &format!("{path}[{i}].metadata.name"),
            );
            Self::hint(
                diagnostic,
                "each claim is named `<template>-<StatefulSet>-<ordinal>`: shorten the template's or the StatefulSet's name",
            );
        }
    }
}

/// A StatefulSet's rolling update: one ordinal's pod replaced in place, so
/// never a surge.
fn stateful_rolling_update(max_unavailable: IntOrPercent) -> Strategy {
    Strategy::RollingUpdate {
        max_surge: IntOrPercent::Int(0),
        max_unavailable,
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::model::*;
    use crate::manifest::quantity::Bytes;
    use crate::manifest::{load, SourceFile};

    const FILE: &str = "db.yaml";

    /// A StatefulSet `db` with `spec` (indented as the spec's fields) and a
    /// container with `mounts` (indented as its fields).
    fn stateful_set(spec: &str, mounts: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {{name: db}}\nspec:\n  selector: {{matchLabels: {{app: db}}}}\n{spec}  template:\n    metadata: {{labels: {{app: db, tier: data}}}}\n    spec:\n      containers:\n      - name: db\n        image: postgres:16\n{mounts}"
        )
    }

    fn rendered(loaded: &crate::manifest::Loaded) -> Vec<String> {
        loaded.diagnostics.iter().map(ToString::to_string).collect()
    }

    /// The Service `db` a `serviceName` may name.
    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  selector: {app: db}\n  ports: [{port: 5432}]\n";

    /// The StatefulSet of `spec`, which must load without a diagnostic.
    fn decoded(spec: &str, mounts: &str) -> Workload {
        let loaded = load(&[
            SourceFile::new("service.yaml", SERVICE),
            SourceFile::new(FILE, stateful_set(spec, mounts)),
        ]);
        assert_eq!(rendered(&loaded), Vec::<String>::new(), "{spec}");
        loaded.state.workloads[0].clone()
    }

    fn stateful(spec: &str) -> StatefulSpec {
        decoded(spec, "").spec.stateful.expect("a StatefulSet's")
    }

    const DATA: &str = "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";

    #[test]
    fn defaults_are_kubernetes() {
        let workload = decoded("", "");
        assert_eq!(workload.kind, Kind::StatefulSet);
        let spec = &workload.spec;
        assert_eq!(
            spec.pods,
            PodSet::Ordinals {
                replicas: 1,
                start: 0
            }
        );
        assert_eq!(
            spec.strategy,
            Strategy::RollingUpdate {
                max_surge: IntOrPercent::Int(0),
                max_unavailable: IntOrPercent::Int(1)
            }
        );
        assert_eq!(spec.min_ready_seconds, 0);
        assert_eq!(spec.progress_deadline_seconds, 600);
        assert_eq!(spec.revision_history_limit, 10);
        assert!(!spec.paused);
        assert_eq!(
            spec.stateful,
            Some(StatefulSpec {
                service_name: String::new(),
                pod_management: PodManagement::OrderedReady,
                partition: 0,
                claim_templates: Vec::new(),
                when_deleted: ClaimRetention::Retain,
                when_scaled: ClaimRetention::Retain,
            })
        );
    }

    #[test]
    fn each_field_decodes() {
        let pods = |spec: &str| decoded(spec, "").spec.pods;
        assert_eq!(
            pods("  replicas: 3\n"),
            PodSet::Ordinals {
                replicas: 3,
                start: 0
            }
        );
        assert_eq!(
            pods("  replicas: 0\n"),
            PodSet::Ordinals {
                replicas: 0,
                start: 0
            }
        );
        assert_eq!(
            pods("  replicas: 2\n  ordinals: {start: 5}\n"),
            PodSet::Ordinals {
                replicas: 2,
                start: 5
            }
        );
        assert_eq!(
            pods("  ordinals: {}\n"),
            PodSet::Ordinals {
                replicas: 1,
                start: 0
            }
        );

        assert_eq!(stateful("  serviceName: db\n").service_name, "db");
        assert_eq!(stateful("  serviceName: \"\"\n").service_name, "");
        for (written, policy) in [
            ("OrderedReady", PodManagement::OrderedReady),
            ("Parallel", PodManagement::Parallel),
        ] {
            let spec = format!("  podManagementPolicy: {written}\n");
            assert_eq!(stateful(&spec).pod_management, policy);
        }

        let strategy = |spec: &str| {
            let workload = decoded(spec, "");
            (
                workload.spec.strategy,
                workload.spec.stateful.unwrap().partition,
            )
        };
        let rolling = |max_unavailable| Strategy::RollingUpdate {
            max_surge: IntOrPercent::Int(0),
            max_unavailable,
        };
        for (spec, expected) in [
            ("  updateStrategy: {}\n", (rolling(IntOrPercent::Int(1)), 0)),
            (
                "  updateStrategy: {type: RollingUpdate}\n",
                (rolling(IntOrPercent::Int(1)), 0),
            ),
            (
                "  updateStrategy: {rollingUpdate: {partition: 2}}\n",
                (rolling(IntOrPercent::Int(1)), 2),
            ),
            (
                "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate: {partition: 1, maxUnavailable: 2}\n",
                (rolling(IntOrPercent::Int(2)), 1),
            ),
            (
                "  updateStrategy: {rollingUpdate: {maxUnavailable: 50%}}\n",
                (rolling(IntOrPercent::Percent(50)), 0),
            ),
            ("  updateStrategy: {type: OnDelete}\n", (Strategy::OnDelete, 0)),
        ] {
            assert_eq!(strategy(spec), expected, "{spec}");
        }

        for (spec, deleted, scaled) in [
            (
                "  persistentVolumeClaimRetentionPolicy: {}\n",
                ClaimRetention::Retain,
                ClaimRetention::Retain,
            ),
            (
                "  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}\n",
                ClaimRetention::Delete,
                ClaimRetention::Retain,
            ),
            (
                "  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}\n",
                ClaimRetention::Retain,
                ClaimRetention::Delete,
            ),
            (
                "  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Delete}\n",
                ClaimRetention::Retain,
                ClaimRetention::Delete,
            ),
        ] {
            let set = stateful(spec);
            assert_eq!((set.when_deleted, set.when_scaled), (deleted, scaled), "{spec}");
        }

        let workload = decoded("  minReadySeconds: 10\n  revisionHistoryLimit: 3\n", "");
        assert_eq!(workload.spec.min_ready_seconds, 10);
        assert_eq!(workload.spec.revision_history_limit, 3);
        assert_eq!(workload.spec.progress_deadline_seconds, 600);
    }

    #[test]
    fn volume_claim_templates_decode_and_are_mounted_by_name() {
        let spec = "  volumeClaimTemplates:
  - apiVersion: v1
    kind: PersistentVolumeClaim
    metadata:
      name: data
      labels: {backup: daily}
      annotations: {note: primary}
    spec:
      accessModes: [ReadWriteOncePod]
      volumeMode: Filesystem
      resources: {requests: {storage: 10Gi}}
  - metadata: {name: wal}
    spec: {accessModes: [ReadWriteOnce, ReadWriteOnce], resources: {requests: {storage: 512Mi}}}
";
        let mounts = "        volumeMounts:\n        - {name: data, mountPath: /var/lib/postgresql/data}\n        - {name: wal, mountPath: /wal, subPath: pg_wal}\n";
        let workload = decoded(spec, mounts);
        let set = workload.spec.stateful.as_ref().unwrap();
        assert_eq!(
            set.claim_templates,
            [
                ClaimTemplate {
                    name: "data".into(),
                    labels: [("backup".to_string(), "daily".to_string())].into(),
                    annotations: [("note".to_string(), "primary".to_string())].into(),
                    storage: Bytes(10 << 30),
                    access_modes: vec![AccessMode::ReadWriteOncePod],
                },
                ClaimTemplate {
                    name: "wal".into(),
                    labels: Default::default(),
                    annotations: Default::default(),
                    storage: Bytes(512 << 20),
                    access_modes: vec![AccessMode::ReadWriteOnce],
                },
            ]
        );
        let mounted: Vec<&str> = workload.spec.template.spec.containers[0]
            .volume_mounts
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(mounted, ["data", "wal"]);
    }

    /// A Deployment cannot mount by a template's name: the names are the
    /// StatefulSet's being decoded, not left over for the next object.
    #[test]
    fn template_names_are_the_stateful_sets_own() {
        let set = stateful_set(
            DATA,
            "        volumeMounts: [{name: data, mountPath: /data}]\n",
        );
        let deployment = set
            .replace("kind: StatefulSet", "kind: Deployment")
            .replace(DATA, "");
        let loaded = load(&[SourceFile::new(FILE, format!("{set}---\n{deployment}"))]);
        let errors = rendered(&loaded);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("error: no volume of the pod is named `data`"),
            "{errors:?}"
        );
        assert!(errors[0].contains("Deployment default/db"), "{errors:?}");
    }

    #[test]
    fn errors() {
        let set = |name: &str, spec: &str, mounts: &str| {
            stateful_set(spec, mounts).replace(
                "metadata: {name: db}",
                &format!("metadata: {{name: {name}}}"),
            ) + "---\n"
        };
        let template = |name: &str, spec: &str| {
            format!("  volumeClaimTemplates:\n  - metadata: {{name: {name}}}\n    spec: {spec}\n")
        };
        let text = [
            set("typos", "  replica: 3\n  strategy: {type: OnDelete}\n  progressDeadlineSeconds: 60\n  volumes: []\n  paused: true\n", ""),
            set("negative", "  replicas: -1\n  ordinals: {start: -2}\n  minReadySeconds: -1\n  revisionHistoryLimit: -1\n", ""),
            set("too-many", "  replicas: 150001\n", ""),
            set("last-ordinal", "  replicas: 10\n  ordinals: {start: 2147483640}\n", ""),
            set("ordinals", "  ordinals: {start: 1, end: 3}\n", ""),
            set("service", "  serviceName: Web_1\n", ""),
            set("policy", "  podManagementPolicy: parallel\n", ""),
            set("strategy-type", "  updateStrategy: {type: Recreate}\n", ""),
            set("on-delete", "  updateStrategy: {type: OnDelete, rollingUpdate: {partition: 1}}\n", ""),
            set("surge", "  updateStrategy: {rollingUpdate: {maxSurge: 1}}\n", ""),
            set("unavailable", "  updateStrategy: {rollingUpdate: {maxUnavailable: 0, partition: -1}}\n", ""),
            set("unavailable-percent", "  updateStrategy: {rollingUpdate: {maxUnavailable: 0%}}\n", ""),
            set("unavailable-bad", "  updateStrategy: {rollingUpdate: {maxUnavailable: 120%}}\n", ""),
            set("retention", "  persistentVolumeClaimRetentionPolicy: {whenDeleted: delete, whenScaled: Keep, whenUpdated: Retain}\n", ""),
            set("min-ready", "  minReadySeconds: 600\n", ""),
            set("templates-not-a-list", "  volumeClaimTemplates: {name: data}\n", ""),
            set("template-fields", "  volumeClaimTemplates:\n  - apiVersion: v2\n    kind: Claim\n    metadata: {name: data, namespace: other}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n    extra: 1\n", ""),
            set("template-unnamed", "  volumeClaimTemplates:\n  - spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n  - metadata: {name: Data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n", ""),
            set("template-twice", "  volumeClaimTemplates:\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n  - metadata: {name: data}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}\n", ""),
            set("template-no-spec", "  volumeClaimTemplates:\n  - metadata: {name: data}\n", ""),
            set("template-delete", "  volumeClaimTemplates:\n  - metadata: {name: data, annotations: {flotilla.dev/delete-volume: \"true\"}}\n    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n", ""),
            set("template-storage", &template("data", "{accessModes: [ReadWriteOnce], resources: {requests: {storage: 0}, limits: {storage: 1Gi}}}"), ""),
            set("template-quantity", &template("data", "{accessModes: [ReadWriteOnce], resources: {requests: {storage: 10 GB}}}"), ""),
            set("template-no-request", &template("data", "{accessModes: [ReadWriteOnce], resources: {requests: {}}}"), ""),
            set("template-modes", &template("data", "{accessModes: [ReadWriteMany, ReadWriteOne], resources: {requests: {storage: 1Gi}}}"), ""),
            set("template-no-modes", &template("data", "{accessModes: [], resources: {requests: {storage: 1Gi}}}"), ""),
            set("template-mixed-modes", &template("data", "{accessModes: [ReadWriteOnce, ReadWriteOncePod], resources: {requests: {storage: 1Gi}}}"), ""),
            set("template-block", &template("data", "{accessModes: [ReadWriteOnce], volumeMode: Block, resources: {requests: {storage: 1Gi}}}"), ""),
            set("template-mode-typo", &template("data", "{accessModes: [ReadWriteOnce], volumeMode: filesystem, resources: {requests: {storage: 1Gi}}}"), ""),
            set("template-refused", &template("data", "{accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}, selector: {matchLabels: {a: b}}, volumeName: pv, dataSource: {name: x}, dataSourceRef: {name: y}, volumeAttributesClassName: gold}"), ""),
            set("template-class", &template("data", "{accessModes: [ReadWriteOnce], storageClassName: fast, resources: {requests: {storage: 1Gi}}}"), ""),
            set("mount-unknown", DATA, "        volumeMounts: [{name: date, mountPath: /data}]\n"),
            set("volume-and-template", DATA, "").replace(
                "    spec:\n      containers:",
                "    spec:\n      volumes: [{name: data, configMap: {name: db}}]\n      containers:",
            ),
            set(&"l".repeat(240), &template("data-volume", "{accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}"), "").replace("  selector", "  replicas: 12\n  selector"),
        ]
        .concat();
        let loaded = load(&[SourceFile::new(FILE, text)]);
        insta::assert_snapshot!(rendered(&loaded).join("\n\n"));
    }

    /// A `serviceName` naming no Service is accepted, as Kubernetes does,
    /// with a warning; a Service declared with errors is not named again.
    #[test]
    fn a_service_name_without_its_service_is_a_warning() {
        let set = stateful_set("  serviceName: db\n  ordinals: {start: 1}\n", "");
        let loaded = load(&[SourceFile::new(FILE, &set)]);
        assert!(!loaded.has_errors());
        let warnings = rendered(&loaded);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("warning: serviceName `db` names no Service in namespace default: the pods get no DNS names (`db-1.db`)\n  --> db.yaml:6:16 (StatefulSet default/db: spec.serviceName)"),
            "{warnings:?}"
        );
        let in_other_namespace = SERVICE.replace("{name: db}", "{name: db, namespace: other}");
        let loaded = load(&[
            SourceFile::new("service.yaml", in_other_namespace),
            SourceFile::new(FILE, &set),
        ]);
        let warnings = rendered(&loaded);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("names no Service in namespace default")),
            "{warnings:?}"
        );
        let broken = SERVICE.replace("5432", "0");
        let loaded = load(&[
            SourceFile::new("service.yaml", broken),
            SourceFile::new(FILE, &set),
        ]);
        let messages: Vec<&str> = loaded
            .diagnostics
            .iter()
            .map(|d| d.message.as_str())
            .collect();
        assert!(loaded.has_errors(), "{messages:?}");
    }

    /// Kubernetes' documentation's StatefulSet (tests/fixtures), its
    /// Service without `clusterIP: None` (headless Services are not
    /// supported): one claim per ordinal, `www-web-0` to `www-web-2`, with
    /// the template's size and modes and the selector's labels.
    #[test]
    fn the_kubernetes_example_declares_a_claim_per_ordinal() {
        let text = include_str!("../../../tests/fixtures/kubernetes-examples/statefulset.yaml")
            .replace("  clusterIP: None\n", "");
        let loaded = load(&[SourceFile::new("statefulset.yaml", text)]);
        assert_eq!(
            rendered(&loaded),
            ["warning: storageClassName `my-storage-class` is not used: a claim is a Docker volume on the node of its first pod\n  --> statefulset.yaml:45:25 (StatefulSet default/web: spec.volumeClaimTemplates[0].spec.storageClassName)\n  = hint: flotilla has one kind of storage, the nodes' local disks; remove the field to silence this warning"]
        );
        let web = &loaded.state.workloads[0];
        assert_eq!(
            web.spec.pods,
            PodSet::Ordinals {
                replicas: 3,
                start: 0
            }
        );
        assert_eq!(web.spec.min_ready_seconds, 10);
        let set = web.spec.stateful.as_ref().unwrap();
        assert_eq!(set.service_name, "nginx");
        assert_eq!(set.pod_management, PodManagement::OrderedReady);
        let claims: Vec<String> = loaded
            .state
            .claims
            .iter()
            .map(|c| {
                format!(
                    "{}/{} {} {:?} {:?} {}",
                    c.meta.namespace,
                    c.meta.name,
                    c.storage.0,
                    c.access_modes,
                    c.meta.labels,
                    c.meta.source
                )
            })
            .collect();
        assert_eq!(
            claims,
            [
                "default/www-web-0 1073741824 [ReadWriteOnce] {\"app\": \"nginx\"} statefulset.yaml:14:1",
                "default/www-web-1 1073741824 [ReadWriteOnce] {\"app\": \"nginx\"} statefulset.yaml:14:1",
                "default/www-web-2 1073741824 [ReadWriteOnce] {\"app\": \"nginx\"} statefulset.yaml:14:1",
            ]
        );
        assert!(loaded.state.claims.iter().all(|c| !c.delete_volume));
    }
}
