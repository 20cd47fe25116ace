//! What a pod reads from ConfigMaps and Secrets, as written in its
//! template: `env[].valueFrom`, `envFrom`, `configMap` and `secret`
//! volumes, `volumeMounts` and `imagePullSecrets`.
//!
//! Each reference is checked on its own here; whether the object and key
//! it names exist is resolved once every object is known
//! (`manifest::config`), from the places recorded in
//! [`ObjectMeta::field_sources`] under the reference's field path.

use std::collections::BTreeSet;

use super::storage::SUPPORTED_VOLUME_TYPES;
use super::*;

const ENV_VAR_SOURCE: Schema = Schema {
    known: &["configMapKeyRef", "secretKeyRef"],
    unsupported: &["fieldRef", "resourceFieldRef", "fileKeyRef"],
    ignored: &[],
    hints: NO_HINTS,
};

const KEY_SELECTOR: Schema = Schema {
    known: &["name", "key", "optional"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const ENV_FROM_SOURCE: Schema = Schema {
    known: &["configMapRef", "secretRef", "prefix"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// `configMapRef`, `secretRef`.
const OBJECT_REF: Schema = Schema {
    known: &["name", "optional"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// Every volume type is "known" so that the ones not supported yet are
/// named as volume types (see [`Decoder::volume`]).
const VOLUME: Schema = Schema {
    known: &[
        "name",
        "configMap",
        "secret",
        "emptyDir",
        "hostPath",
        "persistentVolumeClaim",
        "projected",
        "downwardAPI",
        "ephemeral",
        "image",
        "csi",
        "nfs",
        "iscsi",
        "fc",
        "gitRepo",
        "glusterfs",
        "rbd",
        "cephfs",
        "cinder",
        "flexVolume",
        "flocker",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "azureFile",
        "azureDisk",
        "vsphereVolume",
        "quobyte",
        "photonPersistentDisk",
        "portworxVolume",
        "scaleIO",
        "storageos",
    ],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const CONFIG_MAP_VOLUME: Schema = Schema {
    known: &["name", "items", "defaultMode", "optional"],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "secretName",
        "a `configMap` volume names its ConfigMap with `name`",
    )],
};

const SECRET_VOLUME: Schema = Schema {
    known: &["secretName", "items", "defaultMode", "optional"],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "name",
        "a `secret` volume names its Secret with `secretName`",
    )],
};

const KEY_TO_PATH: Schema = Schema {
    known: &["key", "path", "mode"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const VOLUME_MOUNT: Schema = Schema {
    known: &["name", "mountPath", "subPath", "readOnly"],
    unsupported: &["mountPropagation", "subPathExpr", "recursiveReadOnly"],
    ignored: &[],
    hints: NO_HINTS,
};

const LOCAL_OBJECT_REFERENCE: Schema = Schema {
    known: &["name"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// A volume's files' mode when neither `defaultMode` nor `items[].mode`
/// is given (Kubernetes').
const DEFAULT_MODE: u32 = 0o644;

/// The most a file mode may be: permission bits only.
const MAX_MODE: u32 = 0o777;

/// The two kinds a pod reads configuration from, with the field that
/// names one in a reference.
#[derive(Clone, Copy)]
enum SourceKind {
    ConfigMap,
    Secret,
}

impl SourceKind {
    fn source(self, name: String) -> ConfigSource {
        match self {
            SourceKind::ConfigMap => ConfigSource::ConfigMap(name),
            SourceKind::Secret => ConfigSource::Secret(name),
        }
    }

    /// `ConfigMap name`, for "invalid ConfigMap name `x`".
    fn name_phrase(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap name",
            SourceKind::Secret => "Secret name",
        }
    }
}

impl Decoder<'_> {
    pub(super) fn record_place(&mut self, node: &Node, path: &str) {
        let at = self.at(node);
        self.field_sources.insert(path.to_string(), at);
    }

    /// The one source of `fields` among `options` (field name, kind),
    /// reporting none and more than one.
    fn one_source<'n>(
        &mut self,
        node: &Node,
        fields: &Fields<'n>,
        path: &str,
        options: [(&'static str, SourceKind); 2],
        what: &str,
    ) -> Option<(&'static str, SourceKind, &'n Node)> {
        let given: Vec<(&str, SourceKind, &Node)> = options
            .iter()
            .filter_map(|(name, kind)| fields.get(name).map(|n| (*name, *kind, n)))
            .collect();
        match given.as_slice() {
            [] => {
                // A source not supported (`fieldRef`) or unknown was
                // already named when it is all there is.
                let nothing_named = !fields.entries.is_empty()
                    || matches!(&node.value, Value::Mapping(entries) if entries.is_empty());
                if nothing_named {
                    let diagnostic = self.error(node, path, format!("{what} needs a source"));
                    let names = [options[0].0, options[1].0];
                    Self::hint(diagnostic, format!("give {}", one_of(&names)));
                }
                None
            }
            [one] => Some(*one),
            [(first, ..), (second, _, at), ..] => {
                self.error(
                    at,
                    &join(path, second),
                    format!("{what} has one source, found `{first}` and `{second}`"),
                );
                None
            }
        }
    }

    /// `env[].valueFrom`: `configMapKeyRef` or `secretKeyRef`.
    pub(super) fn env_var_source(&mut self, node: &Node, path: &str) -> Option<KeyRef> {
        let fields = self.fields(node, path, &ENV_VAR_SOURCE)?;
        let (field, kind, ref_node) = self.one_source(
            node,
            &fields,
            path,
            [
                ("configMapKeyRef", SourceKind::ConfigMap),
                ("secretKeyRef", SourceKind::Secret),
            ],
            "`valueFrom`",
        )?;
        let ref_path = join(path, field);
        self.record_place(ref_node, &ref_path);
        let ref_fields = self.fields(ref_node, &ref_path, &KEY_SELECTOR)?;
        let name = self.source_name(&ref_fields, ref_node, &ref_path, "name", kind);
        let key = self
            .required(&ref_fields, ref_node, &ref_path, "key")
            .and_then(|key_node| {
                let key_path = join(&ref_path, "key");
                self.record_place(key_node, &key_path);
                self.checked_name(key_node, &key_path, "key", names::config_key)
            });
        let optional = self.optional(&ref_fields, &ref_path);
        Some(KeyRef {
            source: kind.source(name?),
            key: key?,
            optional: optional?,
        })
    }

    /// A reference's object name: required, a DNS-1123 subdomain like
    /// every object's.
    fn source_name(
        &mut self,
        fields: &Fields,
        node: &Node,
        path: &str,
        field: &str,
        kind: SourceKind,
    ) -> Option<String> {
        let name_node = self.required(fields, node, path, field)?;
        self.checked_name(
            name_node,
            &join(path, field),
            kind.name_phrase(),
            names::dns1123_subdomain,
        )
    }

    /// `optional`, false by default; `None` when it is not a boolean.
    fn optional(&mut self, fields: &Fields, path: &str) -> Option<bool> {
        match fields.get("optional") {
            Some(node) => self.boolean(node, &join(path, "optional")),
            None => Some(false),
        }
    }

    /// A container's `envFrom`.
    pub(super) fn env_from_list(&mut self, node: &Node, path: &str) -> Vec<EnvFromSource> {
        let Some(items) = self.sequence(node, path) else {
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.env_from(item, &index(path, i)))
            .collect()
    }

    fn env_from(&mut self, node: &Node, path: &str) -> Option<EnvFromSource> {
        self.record_place(node, path);
        let fields = self.fields(node, path, &ENV_FROM_SOURCE)?;
        let prefix = match fields.get("prefix") {
            Some(prefix) => {
                let prefix_path = join(path, "prefix");
                let text = self.string(prefix, &prefix_path);
                text.filter(|text| {
                    let Err(reason) = names::env_var_name(text) else {
                        return true;
                    };
                    self.error(
                        prefix,
                        &prefix_path,
                        format!("invalid prefix `{text}`: {reason}"),
                    );
                    false
                })
            }
            None => Some(String::new()),
        };
        let (field, kind, ref_node) = self.one_source(
            node,
            &fields,
            path,
            [
                ("configMapRef", SourceKind::ConfigMap),
                ("secretRef", SourceKind::Secret),
            ],
            "an `envFrom` entry",
        )?;
        let ref_path = join(path, field);
        let ref_fields = self.fields(ref_node, &ref_path, &OBJECT_REF)?;
        let name = self.source_name(&ref_fields, ref_node, &ref_path, "name", kind);
        let optional = self.optional(&ref_fields, &ref_path);
        Some(EnvFromSource {
            source: kind.source(name?),
            prefix: prefix?,
            optional: optional?,
        })
    }

    /// The pod's `volumes`, and the names of all of them, the ones with
    /// errors included (so that a mount naming one is not an error too).
    pub(super) fn volumes(&mut self, node: &Node, path: &str) -> (Vec<Volume>, BTreeSet<String>) {
        let file = self.file;
        let mut volumes = Vec::new();
        let mut names_seen: BTreeMap<String, u32> = BTreeMap::new();
        let Some(items) = self.sequence(node, path) else {
            return (volumes, BTreeSet::new());
        };
        for (i, item) in items.iter().enumerate() {
            let volume_path = index(path, i);
            self.record_place(item, &volume_path);
            let Some(fields) = self.fields(item, &volume_path, &VOLUME) else {
                continue;
            };
            let name = self
                .required(&fields, item, &volume_path, "name")
                .and_then(|name_node| {
                    let name_path = join(&volume_path, "name");
                    let name =
                        self.checked_name(name_node, &name_path, "volume name", names::dns1123_label)?;
                    if let Some(first) = names_seen.get(&name) {
                        self.error(
                            name_node,
                            &name_path,
                            format!("volume name `{name}` is used twice in the pod (first at {file}:{first})"),
                        );
                        return None;
                    }
                    names_seen.insert(name.clone(), name_node.line);
                    Some(name)
                });
            let source = self.volume_source(item, &fields, &volume_path);
            if let (Some(name), Some(source)) = (name, source) {
                volumes.push(Volume { name, source });
            }
        }
        (volumes, names_seen.into_keys().collect())
    }

    /// A volume's one type: `configMap`, `secret`, `emptyDir`, `hostPath`
    /// or `persistentVolumeClaim`; any other is named as not supported yet.
    fn volume_source(&mut self, node: &Node, fields: &Fields, path: &str) -> Option<VolumeSource> {
        let types: Vec<(&str, &Node)> = fields
            .entries
            .iter()
            .filter(|(name, _)| *name != "name")
            .copied()
            .collect();
        match types.as_slice() {
            [] => {
                let diagnostic = self.error(node, path, "a volume needs a type");
                Self::hint(
                    diagnostic,
                    format!("flotilla supports {SUPPORTED_VOLUME_TYPES} volumes"),
                );
                None
            }
            [("configMap", source)] => self
                .config_volume(source, &join(path, "configMap"), SourceKind::ConfigMap)
                .map(VolumeSource::Config),
            [("secret", source)] => self
                .config_volume(source, &join(path, "secret"), SourceKind::Secret)
                .map(VolumeSource::Config),
            [("emptyDir", source)] => self
                .empty_dir(source, &join(path, "emptyDir"))
                .map(VolumeSource::EmptyDir),
            [("hostPath", source)] => self
                .host_path(source, &join(path, "hostPath"))
                .map(VolumeSource::HostPath),
            [("persistentVolumeClaim", source)] => self
                .claim_volume(source, &join(path, "persistentVolumeClaim"))
                .map(VolumeSource::Claim),
            [(other, source)] => {
                let diagnostic = self.error(
                    source,
                    &join(path, other),
                    format!("volume type `{other}` is not supported yet"),
                );
                Self::hint(
                    diagnostic,
                    format!("flotilla supports {SUPPORTED_VOLUME_TYPES} volumes for now"),
                );
                None
            }
            [(first, _), (second, at), ..] => {
                self.error(
                    at,
                    &join(path, second),
                    format!("a volume has one type, found `{first}` and `{second}`"),
                );
                None
            }
        }
    }

    /// A `configMap` or `secret` volume.
    fn config_volume(&mut self, node: &Node, path: &str, kind: SourceKind) -> Option<ConfigVolume> {
        let (schema, name_field) = match kind {
            SourceKind::ConfigMap => (&CONFIG_MAP_VOLUME, "name"),
            SourceKind::Secret => (&SECRET_VOLUME, "secretName"),
        };
        let fields = self.fields(node, path, schema)?;
        let name = self.source_name(&fields, node, path, name_field, kind);
        let items = match fields.get("items") {
            Some(items) => self.key_to_paths(items, &join(path, "items")),
            None => Some(Vec::new()),
        };
        let default_mode = match fields.get("defaultMode") {
            Some(mode) => self.file_mode(mode, &join(path, "defaultMode")),
            None => Some(DEFAULT_MODE),
        };
        let optional = self.optional(&fields, path);
        Some(ConfigVolume {
            source: kind.source(name?),
            items: items?,
            default_mode: default_mode?,
            optional: optional?,
        })
    }

    /// A volume's `items`: which keys, as which files; paths unique.
    fn key_to_paths(&mut self, node: &Node, path: &str) -> Option<Vec<KeyToPath>> {
        let file = self.file;
        let items = self.sequence(node, path)?;
        let mut ok = true;
        let mut paths_seen: BTreeMap<String, u32> = BTreeMap::new();
        let mut decoded = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            self.record_place(item, &item_path);
            let Some(fields) = self.fields(item, &item_path, &KEY_TO_PATH) else {
                ok = false;
                continue;
            };
            let key = self
                .required(&fields, item, &item_path, "key")
                .and_then(|k| {
                    self.checked_name(k, &join(&item_path, "key"), "key", names::config_key)
                });
            let file_path = self
                .required(&fields, item, &item_path, "path")
                .and_then(|p| {
                    let file_path_path = join(&item_path, "path");
                    let text =
                        self.checked_name(p, &file_path_path, "path", names::relative_path)?;
                    if let Some(first) = paths_seen.get(&text) {
                        self.error(
                            p,
                            &file_path_path,
                            format!("path `{text}` is used twice in the volume (first at {file}:{first})"),
                        );
                        return None;
                    }
                    paths_seen.insert(text.clone(), p.line);
                    Some(text)
                });
            let mode = match fields.get("mode") {
                Some(mode) => self.file_mode(mode, &join(&item_path, "mode")).map(Some),
                None => Some(None),
            };
            match (key, file_path, mode) {
                (Some(key), Some(path), Some(mode)) => decoded.push(KeyToPath { key, path, mode }),
                _ => ok = false,
            }
        }
        ok.then_some(decoded)
    }

    /// A file mode, 0 to 0777, as Kubernetes reads it: YAML 1.1's octal
    /// `0644` (or `0o644`) or decimal `420`.
    fn file_mode(&mut self, node: &Node, path: &str) -> Option<u32> {
        let octal = node.as_scalar().filter(|scalar| {
            scalar.style == Style::Plain
                && scalar.text.len() > 1
                && scalar.text.starts_with('0')
                && scalar.text.bytes().all(|b| b.is_ascii_digit())
        });
        let mode = match octal {
            Some(scalar) => match i64::from_str_radix(&scalar.text[1..], 8) {
                Ok(mode) => mode,
                Err(_) => {
                    let text = scalar.text.clone();
                    self.error(
                        node,
                        path,
                        format!("invalid mode `{text}`: an octal number has the digits 0 to 7"),
                    );
                    return None;
                }
            },
            None => self.integer(node, path)?,
        };
        if !(0..=i64::from(MAX_MODE)).contains(&mode) {
            let diagnostic = self.error(
                node,
                path,
                format!("mode must be between 0 and 0777 (octal), found {mode}"),
            );
            // `644` was meant as octal: Kubernetes reads it as decimal.
            let text = node.as_scalar().map_or("", |s| s.text.as_str());
            if u32::from_str_radix(text, 8).is_ok_and(|m| m <= MAX_MODE) {
                Self::hint(
                    diagnostic,
                    format!("a mode without a leading 0 is decimal: write `0{text}`"),
                );
            }
            return None;
        }
        u32::try_from(mode).ok()
    }

    /// A container's `volumeMounts`: each naming a volume of the pod, at a
    /// path of its own.
    pub(super) fn volume_mounts(
        &mut self,
        node: &Node,
        path: &str,
        volume_names: &BTreeSet<String>,
    ) -> Vec<VolumeMount> {
        let file = self.file;
        let mut mounts = Vec::new();
        let Some(items) = self.sequence(node, path) else {
            return mounts;
        };
        let mut paths_seen: BTreeMap<String, u32> = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let mount_path = index(path, i);
            // For the checks of what the mount does with its volume (a
            // read-only hostPath, a subPath of a Memory emptyDir).
            self.record_place(item, &mount_path);
            let Some(fields) = self.fields(item, &mount_path, &VOLUME_MOUNT) else {
                continue;
            };
            for field in ["subPath", "readOnly"] {
                if let Some(node) = fields.get(field) {
                    self.record_place(node, &join(&mount_path, field));
                }
            }
            let name = self
                .required(&fields, item, &mount_path, "name")
                .and_then(|n| {
                    let name_path = join(&mount_path, "name");
                    let name = self.string(n, &name_path)?;
                    if !volume_names.contains(&name) {
                        let diagnostic = self.error(
                            n,
                            &name_path,
                            format!("no volume of the pod is named `{name}`"),
                        );
                        Self::hint(
                            diagnostic,
                            "declare it in the pod's `volumes`, or correct the name",
                        );
                        return None;
                    }
                    Some(name)
                });
            let target = self
                .required(&fields, item, &mount_path, "mountPath")
                .and_then(|p| {
                    let target_path = join(&mount_path, "mountPath");
                    let target = self.string(p, &target_path)?;
                    if !target.starts_with('/') {
                        let diagnostic = self.error(
                            p,
                            &target_path,
                            format!("mountPath `{target}` must be absolute"),
                        );
                        Self::hint(diagnostic, format!("did you mean `/{target}`?"));
                        return None;
                    }
                    if let Some(first) = paths_seen.get(&target) {
                        self.error(
                            p,
                            &target_path,
                            format!("mountPath `{target}` is used twice in the container (first at {file}:{first})"),
                        );
                        return None;
                    }
                    paths_seen.insert(target.clone(), p.line);
                    Some(target)
                });
            let sub_path = match fields.get("subPath") {
                Some(p) => self
                    .checked_name(
                        p,
                        &join(&mount_path, "subPath"),
                        "subPath",
                        names::relative_path,
                    )
                    .map(Some),
                None => Some(None),
            };
            let read_only = match fields.get("readOnly") {
                Some(r) => self.boolean(r, &join(&mount_path, "readOnly")),
                None => Some(false),
            };
            if let (Some(name), Some(mount_path), Some(sub_path), Some(read_only)) =
                (name, target, sub_path, read_only)
            {
                mounts.push(VolumeMount {
                    name,
                    mount_path,
                    sub_path,
                    read_only,
                });
            }
        }
        mounts
    }

    /// The pod's `imagePullSecrets`: Secrets of its namespace, by name.
    pub(super) fn image_pull_secrets(&mut self, node: &Node, path: &str) -> Vec<String> {
        let mut secrets = Vec::new();
        let Some(items) = self.sequence(node, path) else {
            return secrets;
        };
        for (i, item) in items.iter().enumerate() {
            let item_path = index(path, i);
            self.record_place(item, &item_path);
            let Some(fields) = self.fields(item, &item_path, &LOCAL_OBJECT_REFERENCE) else {
                continue;
            };
            if let Some(name) =
                self.source_name(&fields, item, &item_path, "name", SourceKind::Secret)
            {
                secrets.push(name);
            }
        }
        secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml;

    const FILE: &str = "web.yaml";

    /// A Deployment whose pod has `pod` (indented as `spec.template.spec`'s
    /// fields) and one container with `container` (indented as its fields).
    fn deployment(pod: &str, container: &str) -> String {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n{pod}      containers:\n      - name: web\n        image: nginx:1.25\n{container}"
        )
    }

    fn decode(text: &str) -> DecodedDocument {
        let parsed = yaml::parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        decode_document(FILE, &parsed.documents[0].root)
    }

    fn errors(pod: &str, container: &str) -> Vec<String> {
        decode(&deployment(pod, container))
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn decoded_workload(text: &str) -> Workload {
        let document = decode(text);
        let rendered: Vec<String> = document
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(rendered, Vec::<String>::new());
        match document.object {
            Some(Decoded::Workload(workload)) => *workload,
            other => panic!("not a workload: {other:?}"),
        }
    }

    const VOLUMES: &str = "      volumes:\n      - name: config\n        configMap:\n          name: app\n          items:\n          - {key: app.conf, path: conf/app.conf, mode: 0600}\n          defaultMode: 0444\n          optional: true\n      - name: certs\n        secret: {secretName: tls, defaultMode: 256}\n      imagePullSecrets:\n      - name: registry\n";

    const CONTAINER: &str = "        env:\n        - name: LEVEL\n          valueFrom:\n            configMapKeyRef: {name: app, key: level, optional: true}\n        - name: PASSWORD\n          value: \"\"\n          valueFrom:\n            secretKeyRef: {name: db, key: password}\n        envFrom:\n        - configMapRef: {name: app}\n          prefix: APP_\n        - secretRef: {name: db, optional: true}\n        volumeMounts:\n        - {name: config, mountPath: /etc/app, readOnly: true}\n        - {name: certs, mountPath: /etc/tls/tls.crt, subPath: tls.crt}\n";

    #[test]
    fn every_field_decodes() {
        let workload = decoded_workload(&deployment(VOLUMES, CONTAINER));
        let spec = &workload.spec.template.spec;
        assert_eq!(
            spec.volumes,
            [
                Volume {
                    name: "config".into(),
                    source: VolumeSource::Config(ConfigVolume {
                        source: ConfigSource::ConfigMap("app".into()),
                        items: vec![KeyToPath {
                            key: "app.conf".into(),
                            path: "conf/app.conf".into(),
                            mode: Some(0o600),
                        }],
                        default_mode: 0o444,
                        optional: true,
                    }),
                },
                Volume {
                    name: "certs".into(),
                    source: VolumeSource::Config(ConfigVolume {
                        source: ConfigSource::Secret("tls".into()),
                        items: Vec::new(),
                        default_mode: 0o400,
                        optional: false,
                    }),
                },
            ]
        );
        assert_eq!(spec.image_pull_secrets, ["registry"]);
        let container = &spec.containers[0];
        assert_eq!(
            container.env[0].value_from,
            Some(KeyRef {
                source: ConfigSource::ConfigMap("app".into()),
                key: "level".into(),
                optional: true,
            })
        );
        assert_eq!(
            container.env[1].value_from,
            Some(KeyRef {
                source: ConfigSource::Secret("db".into()),
                key: "password".into(),
                optional: false,
            })
        );
        assert_eq!(
            container.env_from,
            [
                EnvFromSource {
                    source: ConfigSource::ConfigMap("app".into()),
                    prefix: "APP_".into(),
                    optional: false,
                },
                EnvFromSource {
                    source: ConfigSource::Secret("db".into()),
                    prefix: String::new(),
                    optional: true,
                },
            ]
        );
        assert_eq!(
            container.volume_mounts,
            [
                VolumeMount {
                    name: "config".into(),
                    mount_path: "/etc/app".into(),
                    sub_path: None,
                    read_only: true,
                },
                VolumeMount {
                    name: "certs".into(),
                    mount_path: "/etc/tls/tls.crt".into(),
                    sub_path: Some("tls.crt".into()),
                    read_only: false,
                },
            ]
        );
        // A volume without `defaultMode` has Kubernetes' 0644.
        let plain = decoded_workload(&deployment(
            "      volumes:\n      - {name: c, configMap: {name: app}}\n",
            "",
        ));
        let VolumeSource::Config(volume) = &plain.spec.template.spec.volumes[0].source else {
            panic!("a config volume")
        };
        assert_eq!(volume.default_mode, 0o644);
    }

    /// Where each reference is written, for the cross-object checks, under
    /// its field path; the same for a DaemonSet (one pod template code).
    #[test]
    fn references_record_their_places() {
        let deployment_text = deployment(VOLUMES, CONTAINER);
        let daemon_set_text = deployment_text.replace("kind: Deployment", "kind: DaemonSet");
        for text in [deployment_text, daemon_set_text] {
            let decoded = decoded_workload(&text);
            let places: Vec<String> = decoded
                .meta
                .field_sources
                .iter()
                .map(|(path, at)| format!("{path} {}:{}", at.line, at.column))
                .collect();
            let pod = "spec.template.spec";
            let container = "spec.template.spec.containers[0]";
            assert_eq!(
                places,
                [
                    format!("{container}.envFrom[0] 33:11"),
                    format!("{container}.envFrom[1] 35:11"),
                    format!("{container}.env[0].valueFrom.configMapKeyRef 27:31"),
                    format!("{container}.env[0].valueFrom.configMapKeyRef.key 27:47"),
                    format!("{container}.env[1].valueFrom.secretKeyRef 31:28"),
                    format!("{container}.env[1].valueFrom.secretKeyRef.key 31:43"),
                    format!("{container}.volumeMounts[0] 37:12"),
                    format!("{container}.volumeMounts[0].readOnly 37:57"),
                    format!("{container}.volumeMounts[1] 38:12"),
                    format!("{container}.volumeMounts[1].subPath 38:63"),
                    format!("{pod}.imagePullSecrets[0] 20:9"),
                    format!("{pod}.volumes[0] 10:9"),
                    format!("{pod}.volumes[0].configMap.items[0] 14:14"),
                    format!("{pod}.volumes[1] 17:9"),
                ],
                "{}",
                decoded.kind
            );
        }
    }

    #[test]
    fn env_errors() {
        let cases = [
            (
                "        env:\n        - name: A\n          value: x\n          valueFrom:\n            secretKeyRef: {name: db, key: k}\n",
                "error: `value` and `valueFrom` are both set\n  --> web.yaml:14:18 (Deployment default/web: spec.template.spec.containers[0].env[0].value)\n  = hint: keep `value` for a literal, or `valueFrom` to read a ConfigMap or Secret key",
            ),
            (
                "        env:\n        - name: A\n          valueFrom:\n            fieldRef: {fieldPath: metadata.name}\n",
                "error: field `fieldRef` is not supported yet\n  --> web.yaml:15:13 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom.fieldRef)",
            ),
            (
                "        env:\n        - name: A\n          valueFrom: {}\n",
                "error: `valueFrom` needs a source\n  --> web.yaml:14:22 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom)\n  = hint: give `configMapKeyRef` or `secretKeyRef`",
            ),
            (
                "        env:\n        - name: A\n          valueFrom:\n            configMapKeyRef: {name: a, key: k}\n            secretKeyRef: {name: b, key: k}\n",
                "error: `valueFrom` has one source, found `configMapKeyRef` and `secretKeyRef`\n  --> web.yaml:16:28 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef)",
            ),
            (
                "        env:\n        - name: A\n          valueFrom:\n            secretKeyRef: {name: db}\n",
                "error: missing field `key`\n  --> web.yaml:15:28 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key)",
            ),
            (
                "        env:\n        - name: A\n          valueFrom:\n            secretKeyRef: {name: Db, key: k}\n",
                "error: invalid Secret name `Db`: must consist of lowercase letters, digits, `-` and `.`, and start and end with a letter or digit\n  --> web.yaml:15:34 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.name)",
            ),
            (
                "        env:\n        - name: A\n          valueFrom:\n            secretKeyRef: {name: db, key: a/b}\n",
                "error: invalid key `a/b`: must consist of letters, digits, `-`, `_` and `.`\n  --> web.yaml:15:43 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key)",
            ),
            (
                "        env:\n        - name: A\n          valueFrom:\n            configMapKeyRef: {name: a, key: k, optional: maybe}\n",
                "error: expected a boolean, found a string\n  --> web.yaml:15:58 (Deployment default/web: spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.optional)",
            ),
            (
                "        envFrom:\n        - prefix: A_\n",
                "error: an `envFrom` entry needs a source\n  --> web.yaml:13:11 (Deployment default/web: spec.template.spec.containers[0].envFrom[0])\n  = hint: give `configMapRef` or `secretRef`",
            ),
            (
                "        envFrom:\n        - configMapRef: {name: a}\n          secretRef: {name: b}\n",
                "error: an `envFrom` entry has one source, found `configMapRef` and `secretRef`\n  --> web.yaml:14:23 (Deployment default/web: spec.template.spec.containers[0].envFrom[0].secretRef)",
            ),
            (
                "        envFrom:\n        - configMapRef: {name: a}\n          prefix: 1_\n",
                "error: invalid prefix `1_`: must not start with a digit\n  --> web.yaml:14:19 (Deployment default/web: spec.template.spec.containers[0].envFrom[0].prefix)",
            ),
        ];
        for (container, expected) in cases {
            let errors = errors("", container);
            assert_eq!(
                errors.first().map(String::as_str),
                Some(expected),
                "{container}"
            );
            assert_eq!(errors.len(), 1, "{container}: {errors:#?}");
        }
    }

    #[test]
    fn volume_errors() {
        let cases = [
            (
                "      - {name: data, nfs: {}}\n",
                "error: volume type `nfs` is not supported yet\n  --> web.yaml:10:27 (Deployment default/web: spec.template.spec.volumes[0].nfs)\n  = hint: flotilla supports `configMap`, `secret`, `emptyDir`, `hostPath` and `persistentVolumeClaim` volumes for now",
            ),
            (
                "      - {name: data}\n",
                "error: a volume needs a type\n  --> web.yaml:10:10 (Deployment default/web: spec.template.spec.volumes[0])\n  = hint: flotilla supports `configMap`, `secret`, `emptyDir`, `hostPath` and `persistentVolumeClaim` volumes",
            ),
            (
                "      - {name: data, configMap: {name: a}, secret: {secretName: b}}\n",
                "error: a volume has one type, found `configMap` and `secret`\n  --> web.yaml:10:53 (Deployment default/web: spec.template.spec.volumes[0].secret)",
            ),
            (
                "      - {name: Data, configMap: {name: a}}\n",
                "error: invalid volume name `Data`: must consist of lowercase letters, digits and `-`, and start and end with a letter or digit\n  --> web.yaml:10:16 (Deployment default/web: spec.template.spec.volumes[0].name)",
            ),
            (
                "      - {name: a, configMap: {name: a}}\n      - {name: a, secret: {secretName: b}}\n",
                "error: volume name `a` is used twice in the pod (first at web.yaml:10)\n  --> web.yaml:11:16 (Deployment default/web: spec.template.spec.volumes[1].name)",
            ),
            (
                "      - {name: a, secret: {name: b, secretName: b}}\n",
                "error: unknown field `name`\n  --> web.yaml:10:28 (Deployment default/web: spec.template.spec.volumes[0].secret.name)\n  = hint: a `secret` volume names its Secret with `secretName`",
            ),
            (
                "      - {name: a, configMap: {name: a, defaultMode: 644}}\n",
                "error: mode must be between 0 and 0777 (octal), found 644\n  --> web.yaml:10:53 (Deployment default/web: spec.template.spec.volumes[0].configMap.defaultMode)\n  = hint: a mode without a leading 0 is decimal: write `0644`",
            ),
            (
                "      - {name: a, configMap: {name: a, defaultMode: 0648}}\n",
                "error: invalid mode `0648`: an octal number has the digits 0 to 7\n  --> web.yaml:10:53 (Deployment default/web: spec.template.spec.volumes[0].configMap.defaultMode)",
            ),
            (
                "      - {name: a, configMap: {name: a, defaultMode: \"0644\"}}\n",
                "error: expected an integer, found a string \"0644\"\n  --> web.yaml:10:53 (Deployment default/web: spec.template.spec.volumes[0].configMap.defaultMode)\n  = hint: remove the quotes",
            ),
            (
                "      - {name: a, configMap: {name: a, items: [{key: k, path: /etc/k}]}}\n",
                "error: invalid path `/etc/k`: must be relative\n  --> web.yaml:10:63 (Deployment default/web: spec.template.spec.volumes[0].configMap.items[0].path)",
            ),
            (
                "      - {name: a, configMap: {name: a, items: [{key: k, path: a/../../k}]}}\n",
                "error: invalid path `a/../../k`: must not contain a `..` element\n  --> web.yaml:10:63 (Deployment default/web: spec.template.spec.volumes[0].configMap.items[0].path)",
            ),
            (
                "      - {name: a, configMap: {name: a, items: [{key: k, path: p}, {key: j, path: p}]}}\n",
                "error: path `p` is used twice in the volume (first at web.yaml:10)\n  --> web.yaml:10:82 (Deployment default/web: spec.template.spec.volumes[0].configMap.items[1].path)",
            ),
            (
                "      - {name: a, configMap: {name: a, items: [{key: k, path: p, mode: 01000}]}}\n",
                "error: mode must be between 0 and 0777 (octal), found 512\n  --> web.yaml:10:72 (Deployment default/web: spec.template.spec.volumes[0].configMap.items[0].mode)",
            ),
        ];
        for (volumes, expected) in cases {
            let errors = errors(&format!("      volumes:\n{volumes}"), "");
            assert_eq!(
                errors.first().map(String::as_str),
                Some(expected),
                "{volumes}"
            );
            assert_eq!(errors.len(), 1, "{volumes}: {errors:#?}");
        }
    }

    #[test]
    fn modes_are_read_as_kubernetes_reads_them() {
        for (written, mode) in [
            ("0644", 0o644),
            ("0o644", 0o644),
            ("420", 0o644),
            ("0", 0),
            ("0777", 0o777),
            ("511", 0o777),
        ] {
            let text = deployment(
                &format!("      volumes:\n      - {{name: a, configMap: {{name: a, defaultMode: {written}}}}}\n"),
                "",
            );
            let decoded = decoded_workload(&text);
            let VolumeSource::Config(volume) = &decoded.spec.template.spec.volumes[0].source else {
                panic!("a config volume")
            };
            assert_eq!(volume.default_mode, mode, "{written}");
        }
    }

    #[test]
    fn mount_errors() {
        let volumes = "      volumes:\n      - {name: config, configMap: {name: app}}\n      - {name: data, nfs: {}}\n";
        let cases = [
            (
                "        volumeMounts:\n        - {name: confg, mountPath: /etc/app}\n",
                "error: no volume of the pod is named `confg`\n  --> web.yaml:16:18 (Deployment default/web: spec.template.spec.containers[0].volumeMounts[0].name)\n  = hint: declare it in the pod's `volumes`, or correct the name",
            ),
            (
                "        volumeMounts:\n        - {name: config, mountPath: etc/app}\n",
                "error: mountPath `etc/app` must be absolute\n  --> web.yaml:16:37 (Deployment default/web: spec.template.spec.containers[0].volumeMounts[0].mountPath)\n  = hint: did you mean `/etc/app`?",
            ),
            (
                "        volumeMounts:\n        - {name: config, mountPath: /etc/app}\n        - {name: config, mountPath: /etc/app}\n",
                "error: mountPath `/etc/app` is used twice in the container (first at web.yaml:16)\n  --> web.yaml:17:37 (Deployment default/web: spec.template.spec.containers[0].volumeMounts[1].mountPath)",
            ),
            (
                "        volumeMounts:\n        - {name: config, mountPath: /etc/app, subPath: ../x}\n",
                "error: invalid subPath `../x`: must not contain a `..` element\n  --> web.yaml:16:56 (Deployment default/web: spec.template.spec.containers[0].volumeMounts[0].subPath)",
            ),
            (
                "        volumeMounts:\n        - {name: config, mountPath: /etc/app, mountPropagation: None}\n",
                "error: field `mountPropagation` is not supported yet\n  --> web.yaml:16:47 (Deployment default/web: spec.template.spec.containers[0].volumeMounts[0].mountPropagation)",
            ),
            (
                "        volumeMounts:\n        - {name: config}\n",
                "error: missing field `mountPath`\n  --> web.yaml:16:12 (Deployment default/web: spec.template.spec.containers[0].volumeMounts[0].mountPath)",
            ),
        ];
        for (container, expected) in cases {
            let errors = errors(volumes, container);
            // The `nfs` volume is an error of its own, first.
            assert_eq!(errors.len(), 2, "{container}: {errors:#?}");
            assert!(
                errors[0].starts_with("error: volume type `nfs`"),
                "{errors:#?}"
            );
            assert_eq!(errors[1], expected, "{container}");
        }
        // A mount of a volume whose type is not supported is not an error
        // of its own.
        let errors = errors(
            volumes,
            "        volumeMounts:\n        - {name: data, mountPath: /data}\n",
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
    }

    #[test]
    fn image_pull_secret_errors() {
        let errors = errors(
            "      imagePullSecrets:\n      - {name: Reg}\n      - {}\n",
            "",
        );
        assert_eq!(
            errors,
            [
                "error: invalid Secret name `Reg`: must consist of lowercase letters, digits, `-` and `.`, and start and end with a letter or digit\n  --> web.yaml:10:16 (Deployment default/web: spec.template.spec.imagePullSecrets[0].name)",
                "error: missing field `name`\n  --> web.yaml:11:9 (Deployment default/web: spec.template.spec.imagePullSecrets[1].name)",
            ]
        );
    }
}
