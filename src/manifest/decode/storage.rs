//! Storage as a manifest declares it: a pod's `emptyDir`, `hostPath` and
//! `persistentVolumeClaim` volumes, and the `PersistentVolumeClaim` kind.
//!
//! Each is checked on its own here. Whether a claim a pod names is
//! declared, and may be used that way, is checked once every object is
//! known (`manifest::storage`); whether a `hostPath` is allowed, by the
//! policy (`manifest::policy`). Both find the fields they report at in
//! [`ObjectMeta::field_sources`].

use super::*;

const EMPTY_DIR: Schema = Schema {
    known: &["medium", "sizeLimit"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const HOST_PATH: Schema = Schema {
    known: &["path", "type"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CLAIM_VOLUME: Schema = Schema {
    known: &["claimName", "readOnly"],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "name",
        "a `persistentVolumeClaim` volume names its claim with `claimName`",
    )],
};

const CLAIM_SPEC: Schema = Schema {
    known: &[
        "resources",
        "accessModes",
        "volumeMode",
        "storageClassName",
        "selector",
        "volumeName",
        "dataSource",
        "dataSourceRef",
    ],
    unsupported: &["volumeAttributesClassName"],
    ignored: &[],
    hints: NO_HINTS,
};

const CLAIM_RESOURCES: Schema = Schema {
    known: &["requests", "limits"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CLAIM_REQUESTS: Schema = Schema {
    known: &["storage"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// The claim's fields that ask for something a node-local Docker volume
/// cannot be, each with why and what to do instead.
const CLAIM_FIELDS_REFUSED: &[(&str, &str, &str)] = &[
    (
        "selector",
        "a claim selects no PersistentVolume: it is a Docker volume made on the node of its first pod",
        "remove `selector`",
    ),
    (
        "volumeName",
        "a claim binds to no PersistentVolume: it is a Docker volume made on the node of its first pod",
        "remove `volumeName`",
    ),
    (
        "dataSource",
        "a claim starts empty: flotilla does not clone volumes or restore snapshots",
        "remove `dataSource`, and fill the volume with `flotilla volume restore` once it exists",
    ),
    (
        "dataSourceRef",
        "a claim starts empty: flotilla does not clone volumes or restore snapshots",
        "remove `dataSourceRef`, and fill the volume with `flotilla volume restore` once it exists",
    ),
];

/// The volume types flotilla mounts, for hints.
pub(super) const SUPPORTED_VOLUME_TYPES: &str =
    "`configMap`, `secret`, `emptyDir`, `hostPath` and `persistentVolumeClaim`";

impl Decoder<'_> {
    /// `emptyDir: {medium, sizeLimit}`; `emptyDir: {}` is a volume on disk.
    pub(super) fn empty_dir(&mut self, node: &Node, path: &str) -> Option<EmptyDir> {
        // `emptyDir:` with nothing after it is `{}`, as for Kubernetes.
        if node.is_null() {
            return Some(EmptyDir {
                medium: StorageMedium::Disk,
                size_limit: None,
            });
        }
        let fields = self.fields(node, path, &EMPTY_DIR)?;
        let medium = match fields.get("medium") {
            Some(medium) => self.enumeration(
                medium,
                &join(path, "medium"),
                &[("", StorageMedium::Disk), ("Memory", StorageMedium::Memory)],
            ),
            None => Some(StorageMedium::Disk),
        };
        let size_limit = match fields.get("sizeLimit") {
            Some(limit) => self
                .positive_storage(limit, &join(path, "sizeLimit"), "sizeLimit")
                .map(Some),
            None => Some(None),
        };
        Some(EmptyDir {
            medium: medium?,
            size_limit: size_limit?,
        })
    }

    /// `hostPath: {path, type}`: an absolute, normalized path other than
    /// `/`; whether it is allowed is the policy's to say.
    pub(super) fn host_path(&mut self, node: &Node, path: &str) -> Option<HostPath> {
        let fields = self.fields(node, path, &HOST_PATH)?;
        let host_path = self.required(&fields, node, path, "path").and_then(|p| {
            let path_path = join(path, "path");
            self.record_place(p, &path_path);
            let text = self.checked_name(p, &path_path, "hostPath", names::host_path)?;
            if text == "/" {
                let diagnostic = self.error(
                    p,
                    &path_path,
                    "hostPath `/` would give the container the whole node",
                );
                Self::hint(diagnostic, "mount the one directory the pod needs");
                return None;
            }
            Some(text)
        });
        let kind = match fields.get("type") {
            Some(kind) => self.host_path_type(kind, &join(path, "type")),
            None => Some(HostPathType::Unset),
        };
        Some(HostPath {
            path: host_path?,
            kind: kind?,
        })
    }

    fn host_path_type(&mut self, node: &Node, path: &str) -> Option<HostPathType> {
        if let Some(scalar) = node.as_scalar() {
            if ["Socket", "CharDevice", "BlockDevice"].contains(&scalar.text.as_str()) {
                let text = scalar.text.clone();
                let diagnostic = self.error(
                    node,
                    path,
                    format!("hostPath type `{text}` is not supported"),
                );
                Self::hint(
                    diagnostic,
                    "flotilla mounts directories and files: `Directory`, `DirectoryOrCreate`, `File`, `FileOrCreate`, or `\"\"` for no check",
                );
                return None;
            }
        }
        self.enumeration(
            node,
            path,
            &[
                ("", HostPathType::Unset),
                ("Directory", HostPathType::Directory),
                ("DirectoryOrCreate", HostPathType::DirectoryOrCreate),
                ("File", HostPathType::File),
                ("FileOrCreate", HostPathType::FileOrCreate),
            ],
        )
    }

    /// `persistentVolumeClaim: {claimName, readOnly}`; whether the claim is
    /// declared is checked once every object is known.
    pub(super) fn claim_volume(&mut self, node: &Node, path: &str) -> Option<ClaimVolume> {
        let fields = self.fields(node, path, &CLAIM_VOLUME)?;
        let claim_name = self
            .required(&fields, node, path, "claimName")
            .and_then(|name| {
                let name_path = join(path, "claimName");
                self.record_place(name, &name_path);
                self.checked_name(
                    name,
                    &name_path,
                    "PersistentVolumeClaim name",
                    names::dns1123_subdomain,
                )
            });
        let read_only = match fields.get("readOnly") {
            Some(read_only) => self.boolean(read_only, &join(path, "readOnly")),
            None => Some(false),
        };
        Some(ClaimVolume {
            claim_name: claim_name?,
            read_only: read_only?,
        })
    }

    /// A `subPath` into a `Memory` emptyDir: Docker 20.10 cannot mount part
    /// of a volume, so flotilla would mount it through a directory on the
    /// node's disk, and the data meant to stay in memory would not.
    pub(super) fn check_memory_sub_paths(&mut self, spec: &PodSpec, path: &str) {
        for (c, container) in spec.containers_with_fields() {
            for (m, mount) in container.volume_mounts.iter().enumerate() {
                let Some(sub_path) = &mount.sub_path else {
                    continue;
                };
                let in_memory = spec.volumes.iter().any(|v| {
                    v.name == mount.name
                        && matches!(
                            &v.source,
                            VolumeSource::EmptyDir(EmptyDir {
                                medium: StorageMedium::Memory,
                                ..
                            })
                        )
                });
                if !in_memory {
                    continue;
                }
                let sub_path_path = format!("{path}.{c}.volumeMounts[{m}].subPath");
                let Some(at) = self.field_sources.get(&sub_path_path).cloned() else {
                    continue;
                };
                let message = format!(
                    "subPath `{sub_path}` of the `Memory` emptyDir `{}` is not supported",
                    mount.name
                );
                let diagnostic = self.push(Diagnostic::error(message, at), &sub_path_path);
                Self::hint(
                    diagnostic,
                    "Docker cannot mount part of a tmpfs, so it would land on the node's disk: mount the whole volume",
                );
            }
        }
    }

    // ------------------------------------------------------------ the kind

    /// `kind: PersistentVolumeClaim`: its `spec` and the delete-volume
    /// annotation.
    pub(super) fn claim(
        &mut self,
        root: &Node,
        fields: &Fields,
        meta: ObjectMeta,
    ) -> Option<PersistentVolumeClaim> {
        let delete_volume = self.delete_volume_annotation(fields.get("metadata"), &meta);
        let spec_node = self.required(fields, root, "", "spec")?;
        let spec = self.claim_spec(spec_node, "spec");
        let (storage, access_modes) = spec?;
        Some(PersistentVolumeClaim {
            meta,
            storage,
            access_modes,
            delete_volume: delete_volume?,
        })
    }

    /// A claim's `spec` (a PersistentVolumeClaim's, or a StatefulSet volume
    /// claim template's): its storage and access modes.
    pub(super) fn claim_spec(
        &mut self,
        spec_node: &Node,
        path: &str,
    ) -> Option<(Bytes, Vec<AccessMode>)> {
        let spec = self.fields(spec_node, path, &CLAIM_SPEC)?;
        for (field, why, hint) in CLAIM_FIELDS_REFUSED {
            if let Some(node) = spec.get(field) {
                let diagnostic = self.error(
                    node,
                    &join(path, field),
                    format!("field `{field}` is not supported: {why}"),
                );
                Self::hint(diagnostic, *hint);
            }
        }
        let storage = self
            .required(&spec, spec_node, path, "resources")
            .and_then(|resources| self.claim_storage(resources, &join(path, "resources")));
        let access_modes = self
            .required(&spec, spec_node, path, "accessModes")
            .and_then(|modes| self.access_modes(modes, &join(path, "accessModes")));
        if let Some(mode) = spec.get("volumeMode") {
            let mode_path = join(path, "volumeMode");
            if mode.as_scalar().is_some_and(|s| s.text == "Block") {
                let diagnostic = self.error(
                    mode,
                    &mode_path,
                    "volumeMode `Block` is not supported: a claim is a Docker volume, mounted as a directory",
                );
                Self::hint(diagnostic, "remove `volumeMode`, or write `Filesystem`");
            } else {
                self.enumeration(mode, &mode_path, &[("Filesystem", ())]);
            }
        }
        if let Some(class) = spec.get("storageClassName") {
            let class_path = join(path, "storageClassName");
            if let Some(name) = self.string(class, &class_path) {
                let diagnostic = self.warning(
                    class,
                    &class_path,
                    format!(
                        "storageClassName `{name}` is not used: a claim is a Docker volume on the node of its first pod"
                    ),
                );
                Self::hint(
                    diagnostic,
                    "flotilla has one kind of storage, the nodes' local disks; remove the field to silence this warning",
                );
            }
        }
        Some((storage?, access_modes?))
    }

    /// Whether the claim carries [`DELETE_VOLUME_ANNOTATION`]: `"true"`
    /// deletes its volume; any other value is a mistake, not a "no", since
    /// the annotation is about deleting data.
    fn delete_volume_annotation(
        &mut self,
        metadata: Option<&Node>,
        meta: &ObjectMeta,
    ) -> Option<bool> {
        let Some(value) = meta.annotations.get(DELETE_VOLUME_ANNOTATION) else {
            return Some(false);
        };
        if value == "true" {
            return Some(true);
        }
        let value_node = metadata
            .and_then(|m| mapping_value(m, "annotations"))
            .and_then(|a| mapping_value(a, DELETE_VOLUME_ANNOTATION));
        let path = key_path("metadata.annotations", DELETE_VOLUME_ANNOTATION);
        let message =
            format!("annotation {DELETE_VOLUME_ANNOTATION} must be \"true\", found `{value}`");
        let hint = format!(
            "write `{DELETE_VOLUME_ANNOTATION}: \"true\"` to delete the claim's volume and its data, or remove the annotation to keep them"
        );
        let diagnostic = match value_node {
            Some(node) => self.error(node, &path, message),
            None => {
                let at = meta.source.clone();
                self.push(Diagnostic::error(message, at), &path)
            }
        };
        Self::hint(diagnostic, hint);
        None
    }

    /// `resources.requests.storage`: required, more than zero.
    fn claim_storage(&mut self, node: &Node, path: &str) -> Option<Bytes> {
        let fields = self.fields(node, path, &CLAIM_RESOURCES)?;
        if let Some(limits) = fields.get("limits") {
            let diagnostic = self.error(
                limits,
                &join(path, "limits"),
                "field `limits` is not supported: a claim's volume is a directory on the node's disk, which Docker does not cap",
            );
            Self::hint(
                diagnostic,
                "remove `limits`; `requests.storage` is what the node's `capacity.storage` counts",
            );
        }
        let requests_path = join(path, "requests");
        let requests = self.required(&fields, node, path, "requests")?;
        let request_fields = self.fields(requests, &requests_path, &CLAIM_REQUESTS)?;
        let storage = self.required(&request_fields, requests, &requests_path, "storage")?;
        self.positive_storage(storage, &join(&requests_path, "storage"), "storage")
    }

    /// A size in bytes, more than zero.
    fn positive_storage(&mut self, node: &Node, path: &str, what: &str) -> Option<Bytes> {
        let text = self.quantity_text(node, path)?;
        match Bytes::parse(&text) {
            Ok(Bytes(0)) => {
                let diagnostic = self.error(
                    node,
                    path,
                    format!("{what} must be more than 0, found `{text}`"),
                );
                Self::hint(diagnostic, "write a size such as `1Gi` or `500M`");
                None
            }
            Ok(bytes) => Some(bytes),
            Err(error) => {
                let diagnostic =
                    self.error(node, path, format!("invalid quantity `{text}`: {error}"));
                if error == QuantityError::Syntax {
                    Self::hint(diagnostic, "a size is written like `1Gi` or `500M`");
                }
                None
            }
        }
    }

    /// `accessModes`: at least one; the modes a volume on one node gives.
    fn access_modes(&mut self, node: &Node, path: &str) -> Option<Vec<AccessMode>> {
        let items = self.sequence(node, path)?;
        if items.is_empty() {
            let diagnostic = self.error(node, path, "a claim needs at least one access mode");
            Self::hint(diagnostic, "write `accessModes: [ReadWriteOnce]`");
            return None;
        }
        let mut modes = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            let text = item.as_scalar().map(|s| s.text.as_str());
            if let Some(mode @ ("ReadOnlyMany" | "ReadWriteMany")) = text {
                let diagnostic = self.error(
                    item,
                    &item_path,
                    format!(
                        "access mode `{mode}` is not supported: a claim is a volume on one node, used by the pods there"
                    ),
                );
                Self::hint(
                    diagnostic,
                    "use `ReadWriteOnce` (the pods of the claim's node) or `ReadWriteOncePod` (one pod)",
                );
                ok = false;
                continue;
            }
            match self.enumeration(
                item,
                &item_path,
                &[
                    ("ReadWriteOnce", AccessMode::ReadWriteOnce),
                    ("ReadWriteOncePod", AccessMode::ReadWriteOncePod),
                ],
            ) {
                Some(mode) => modes.push(mode),
                None => ok = false,
            }
        }
        modes.sort_unstable();
        modes.dedup();
        // Kubernetes' rule: one pod cannot be combined with another mode.
        if ok && modes.len() > 1 && modes.contains(&AccessMode::ReadWriteOncePod) {
            let diagnostic = self.error(
                node,
                path,
                "access mode `ReadWriteOncePod` cannot be combined with another",
            );
            Self::hint(diagnostic, "keep `ReadWriteOncePod` alone, or remove it");
            return None;
        }
        ok.then_some(modes)
    }
}

/// The value of `key` in the mapping `node`, if it is one and has it.
fn mapping_value<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Mapping(entries) => entries
            .iter()
            .find(|e| e.key.as_scalar().is_some_and(|k| k.text == key))
            .map(|e| &e.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::model::*;
    use crate::manifest::quantity::Bytes;
    use crate::manifest::{load, SourceFile};

    const FILE: &str = "app.yaml";

    /// A Deployment whose pod has `volumes` (indented as the pod's fields)
    /// and one container mounting with `mounts` (as the container's).
    fn deployment(volumes: &str, mounts: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      volumes:\n{volumes}      containers:\n      - name: web\n        image: nginx:1.25\n{mounts}"
        )
    }

    /// Every diagnostic of `text`, rendered, with the Cluster object that
    /// allows `/srv` for the hostPath cases.
    fn diagnostics(text: &str) -> Vec<String> {
        let cluster = "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {policy: {allowedHostPaths: [{pathPrefix: /srv}]}}\n";
        let loaded = load(&[
            SourceFile::new("cluster.yaml", cluster),
            SourceFile::new(FILE, text),
        ]);
        loaded.diagnostics.iter().map(ToString::to_string).collect()
    }

    fn volume_source(volume: &str) -> VolumeSource {
        let text = deployment(&format!("      - name: v\n{volume}"), "");
        let cluster = "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {name: c}\nspec: {policy: {allowedHostPaths: [{pathPrefix: /srv}]}}\n";
        let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n";
        let loaded = load(&[
            SourceFile::new("cluster.yaml", cluster),
            SourceFile::new("claim.yaml", claim),
            SourceFile::new(FILE, text),
        ]);
        let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(rendered, Vec::<String>::new(), "{volume}");
        loaded.state.workloads[0].spec.template.spec.volumes[0]
            .source
            .clone()
    }

    #[test]
    fn volumes_decode() {
        let check = |volume: &str, expected: VolumeSource| {
            assert_eq!(volume_source(volume), expected, "{volume}");
        };
        let disk = |size_limit| {
            VolumeSource::EmptyDir(EmptyDir {
                medium: StorageMedium::Disk,
                size_limit,
            })
        };
        check("        emptyDir: {}\n", disk(None));
        check("        emptyDir:\n", disk(None));
        check("        emptyDir: {medium: \"\"}\n", disk(None));
        check(
            "        emptyDir: {sizeLimit: 1Gi}\n",
            disk(Some(Bytes(1 << 30))),
        );
        check(
            "        emptyDir: {medium: Memory, sizeLimit: 64Mi}\n",
            VolumeSource::EmptyDir(EmptyDir {
                medium: StorageMedium::Memory,
                size_limit: Some(Bytes(64 << 20)),
            }),
        );
        let host = |path: &str, kind| {
            VolumeSource::HostPath(HostPath {
                path: path.to_string(),
                kind,
            })
        };
        check(
            "        hostPath: {path: /srv/data}\n",
            host("/srv/data", HostPathType::Unset),
        );
        for (written, kind) in [
            ("\"\"", HostPathType::Unset),
            ("Directory", HostPathType::Directory),
            ("DirectoryOrCreate", HostPathType::DirectoryOrCreate),
            ("File", HostPathType::File),
            ("FileOrCreate", HostPathType::FileOrCreate),
        ] {
            check(
                &format!("        hostPath: {{path: /srv/app.conf, type: {written}}}\n"),
                host("/srv/app.conf", kind),
            );
        }
        check(
            "        persistentVolumeClaim: {claimName: data}\n",
            VolumeSource::Claim(ClaimVolume {
                claim_name: "data".into(),
                read_only: false,
            }),
        );
        check(
            "        persistentVolumeClaim: {claimName: data, readOnly: true}\n",
            VolumeSource::Claim(ClaimVolume {
                claim_name: "data".into(),
                read_only: true,
            }),
        );
    }

    #[test]
    fn volume_errors() {
        let volumes = "      - {name: a, emptyDir: {medium: memory}}
      - {name: b, emptyDir: {sizeLimit: 0}}
      - {name: c, emptyDir: {sizeLimit: lots}}
      - {name: d, emptyDir: {size: 1Gi}}
      - {name: e, hostPath: {path: srv/data}}
      - {name: f, hostPath: {path: /srv/../etc}}
      - {name: g, hostPath: {path: /srv//data}}
      - {name: h, hostPath: {path: /}}
      - {name: i, hostPath: {path: /srv/docker.sock, type: Socket}}
      - {name: j, hostPath: {path: /srv/x, type: directory}}
      - {name: k, hostPath: {type: Directory}}
      - {name: l, persistentVolumeClaim: {claimName: Data}}
      - {name: m, persistentVolumeClaim: {name: data}}
      - {name: n, nfs: {server: nas, path: /export}}
      - {name: o, csi: {driver: x}}
      - {name: tmp, emptyDir: {medium: Memory}}
";
        let mounts = "        volumeMounts:
        - {name: tmp, mountPath: /tmp/cache, subPath: cache}
        - {name: tmp, mountPath: /tmp/all}
";
        insta::assert_snapshot!(diagnostics(&deployment(volumes, mounts)).join("\n\n"));
    }

    const CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: shop
spec:
  accessModes: [ReadWriteOncePod, ReadWriteOncePod]
  volumeMode: Filesystem
  resources:
    requests:
      storage: 10Gi
";

    #[test]
    fn a_claim_decodes() {
        let loaded = load(&[SourceFile::new(FILE, CLAIM)]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let claim = loaded.state.claim("shop", "data").expect("declared");
        assert_eq!(claim.storage, Bytes(10 << 30));
        assert_eq!(claim.access_modes, [AccessMode::ReadWriteOncePod]);
        assert!(!claim.delete_volume);
        assert!(claim.one_pod());

        let deleted = CLAIM.replace(
            "  namespace: shop\n",
            "  namespace: shop\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n",
        );
        let loaded = load(&[SourceFile::new(FILE, deleted)]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert!(loaded.state.claim("shop", "data").unwrap().delete_volume);
    }

    /// A claim as kubectl users write it (Kubernetes' documentation's
    /// example): its storageClassName is read and said to be unused, not
    /// refused.
    #[test]
    fn a_kubernetes_claim_is_accepted_with_its_storage_class() {
        let text = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: task-pv-claim
  labels:
    app: mysql
spec:
  storageClassName: manual
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 3Gi
";
        let loaded = load(&[SourceFile::new("pvc.yaml", text)]);
        let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            ["warning: storageClassName `manual` is not used: a claim is a Docker volume on the node of its first pod\n  --> pvc.yaml:8:21 (PersistentVolumeClaim default/task-pv-claim: spec.storageClassName)\n  = hint: flotilla has one kind of storage, the nodes' local disks; remove the field to silence this warning"]
        );
        assert!(!loaded.has_errors());
        let claim = loaded.state.claim("default", "task-pv-claim").unwrap();
        assert_eq!(claim.storage, Bytes(3 << 30));
        assert_eq!(claim.access_modes, [AccessMode::ReadWriteOnce]);
    }

    #[test]
    fn claim_errors() {
        let claim = |name: &str, spec: &str| {
            format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n{spec}---\n")
        };
        let text = [
            claim("no-spec", "").replace("spec:\n", ""),
            claim("empty", "  {}\n"),
            claim("no-storage", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {}}\n"),
            claim("zero", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 0}}\n"),
            claim("bad-size", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 10 GB}}\n"),
            claim("limits", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}, limits: {storage: 2Gi}}\n"),
            claim("cpu", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi, cpu: 1}}\n"),
            claim("no-modes", "  accessModes: []\n  resources: {requests: {storage: 1Gi}}\n"),
            claim("many", "  accessModes: [ReadWriteMany, ReadOnlyMany]\n  resources: {requests: {storage: 1Gi}}\n"),
            claim("typo", "  accessModes: [ReadWriteOne]\n  resources: {requests: {storage: 1Gi}}\n"),
            claim("mixed", "  accessModes: [ReadWriteOnce, ReadWriteOncePod]\n  resources: {requests: {storage: 1Gi}}\n"),
            claim("block", "  accessModes: [ReadWriteOnce]\n  volumeMode: Block\n  resources: {requests: {storage: 1Gi}}\n"),
            claim("mode-typo", "  accessModes: [ReadWriteOnce]\n  volumeMode: filesystem\n  resources: {requests: {storage: 1Gi}}\n"),
            claim("bound", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  selector: {matchLabels: {disk: ssd}}\n  volumeName: pv-1\n"),
            claim("cloned", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  dataSource: {kind: PersistentVolumeClaim, name: other}\n  dataSourceRef: {kind: VolumeSnapshot, name: snap}\n"),
            claim("attributes", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n  volumeAttributesClassName: gold\n"),
            claim("delete", "  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n").replace(
                "metadata: {name: delete}",
                "metadata:\n  name: delete\n  annotations: {flotilla.dev/delete-volume: \"yes\"}",
            ),
        ]
        .concat();
        insta::assert_snapshot!(diagnostics(&text).join("\n\n"));
    }

    #[test]
    fn node_storage_capacity() {
        let node = "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  address: 10.0.0.1\n  capacity: {storage: 100Gi}\n";
        let loaded = load(&[SourceFile::new("n1.yaml", node)]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(
            loaded.state.nodes[0].spec.capacity.storage,
            Some(Bytes(100 << 30))
        );
        let bad = node.replace("100Gi", "lots");
        let rendered: Vec<String> = load(&[SourceFile::new("n1.yaml", bad)])
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(rendered.len(), 1, "{rendered:?}");
        assert!(
            rendered[0].starts_with("error: invalid quantity `lots`"),
            "{rendered:?}"
        );
    }
}
