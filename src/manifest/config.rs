//! What pods read from ConfigMaps and Secrets, checked against the objects
//! the commit declares.
//!
//! Once every object is decoded, each workload's references
//! (`env[].valueFrom`, `envFrom`, `configMap`/`secret` volumes and their
//! `items`, `imagePullSecrets`) are looked up in its namespace: a missing
//! object or key that is not `optional` is an error at the reference, and
//! what the pod reads becomes its template's [`ConsumedConfig`], so that a
//! change of a value it reads is a new revision of it, and of nothing else.
//! Pure: values are compared through digests, and a sealed value through
//! its version (never opened here).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::diagnostic::Diagnostic;
use super::is_variable_text;
use super::model::{
    ConfigSource, ConfigValue, ConsumedConfig, DesiredState, ObjectKey, Secret, SecretType,
    SecretValue, ValueDigest, VolumeSource, Workload,
};
use super::names;

/// Fills every workload's `template.consumed` and reports its references
/// to objects or keys that are not declared.
/// `declared`: whether an object is declared at all (one with errors is
/// not in `state`; a reference to it is not reported again).
pub(super) fn resolve(
    state: &mut DesiredState,
    declared: &dyn Fn(&ObjectKey) -> bool,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let consumed: Vec<ConsumedConfig> = state
        .workloads
        .iter()
        .map(|workload| consumed_by(workload, state, declared, diagnostics))
        .collect();
    for (workload, consumed) in state.workloads.iter_mut().zip(consumed) {
        workload.spec.template.consumed = consumed;
    }
}

/// Every key of `source` in `namespace` with its digest, or `None` when it
/// is not declared.
fn digests(
    state: &DesiredState,
    namespace: &str,
    source: &ConfigSource,
) -> Option<BTreeMap<String, ValueDigest>> {
    let values = state.config_source(namespace, source)?;
    Some(
        values
            .into_iter()
            .map(|(key, value)| {
                let digest = match value {
                    ConfigValue::Plain(bytes) => digest_of(bytes),
                    ConfigValue::Secret(value) => secret_digest(value),
                };
                (key.to_string(), digest)
            })
            .collect(),
    )
}

/// 16 hex digits of the SHA-256 of a ConfigMap's value.
fn digest_of(value: &[u8]) -> ValueDigest {
    let digest = Sha256::digest(value);
    ValueDigest(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// A sealed value's version (see `SealedText`); a value written in clear
/// (an error reported by its decoder) is digested like a ConfigMap's, so
/// the template stays comparable.
fn secret_digest(value: &SecretValue) -> ValueDigest {
    match value {
        SecretValue::Sealed(sealed) => ValueDigest(format!("v{}", sealed.version)),
        SecretValue::Opened(opened) => digest_of(opened.expose()),
    }
}

/// How a pod reads what a reference names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// `env[].valueFrom`: one key, as a variable.
    Variable,
    /// `envFrom`: every key, as variables.
    Variables,
    /// A volume: its keys (or `items`) as files.
    Files,
}

/// One reference of a pod, for the checks and the digests.
struct Reference<'a> {
    source: &'a ConfigSource,
    /// The keys read, each with the field path naming it; empty: every key.
    keys: Vec<(&'a str, String)>,
    optional: bool,
    /// The field path of the reference (where it is declared).
    path: String,
    reads: Reads,
}

fn references(workload: &Workload) -> Vec<Reference<'_>> {
    let spec = &workload.spec.template.spec;
    let mut references = Vec::new();
    for (c, container) in spec.containers_with_fields() {
        for (j, env) in container.env.iter().enumerate() {
            if let Some(key_ref) = &env.value_from {
                let field = match key_ref.source {
                    ConfigSource::ConfigMap(_) => "configMapKeyRef",
                    ConfigSource::Secret(_) => "secretKeyRef",
                };
                let path = format!("spec.template.spec.{c}.env[{j}].valueFrom.{field}");
                references.push(Reference {
                    source: &key_ref.source,
                    keys: vec![(key_ref.key.as_str(), format!("{path}.key"))],
                    optional: key_ref.optional,
                    path,
                    reads: Reads::Variable,
                });
            }
        }
        for (j, from) in container.env_from.iter().enumerate() {
            references.push(Reference {
                source: &from.source,
                keys: Vec::new(),
                optional: from.optional,
                path: format!("spec.template.spec.{c}.envFrom[{j}]"),
                reads: Reads::Variables,
            });
        }
    }
    for (i, volume) in spec.volumes.iter().enumerate() {
        let VolumeSource::Config(config) = &volume.source else {
            continue;
        };
        let field = match config.source {
            ConfigSource::ConfigMap(_) => "configMap",
            ConfigSource::Secret(_) => "secret",
        };
        let path = format!("spec.template.spec.volumes[{i}]");
        let keys = config
            .items
            .iter()
            .enumerate()
            .map(|(j, item)| (item.key.as_str(), format!("{path}.{field}.items[{j}]")))
            .collect();
        references.push(Reference {
            source: &config.source,
            keys,
            optional: config.optional,
            path,
            reads: Reads::Files,
        });
    }
    references
}

fn consumed_by(
    workload: &Workload,
    state: &DesiredState,
    declared: &dyn Fn(&ObjectKey) -> bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> ConsumedConfig {
    let namespace = workload.meta.namespace.as_str();
    let object = workload.key().to_string();
    let error = |message: String, path: &str, hint: String| {
        Diagnostic::error(message, workload.meta.field_location(path))
            .with_object(object.clone())
            .with_field_path(path.to_string())
            .with_hint(hint)
    };
    let mut consumed: BTreeMap<ConfigSource, BTreeMap<String, ValueDigest>> = BTreeMap::new();
    for reference in references(workload) {
        let Some(digests) = digests(state, namespace, reference.source) else {
            let key = ObjectKey {
                kind: reference.source.kind(),
                namespace: namespace.to_string(),
                name: reference.source.name().to_string(),
            };
            if !reference.optional && !declared(&key) {
                diagnostics.push(error(
                    format!(
                        "{} {namespace}/{} is not declared",
                        reference.source.kind(),
                        reference.source.name()
                    ),
                    &reference.path,
                    format!(
                        "declare it in namespace `{namespace}`, or mark the reference `optional: true` to run without it"
                    ),
                ));
            }
            continue;
        };
        let entry = consumed.entry(reference.source.clone()).or_default();
        if reference.keys.is_empty() {
            entry.extend(digests);
            if reference.reads == Reads::Variables {
                warn_invalid_names(workload, &reference, entry, diagnostics);
            }
            continue;
        }
        for (key, path) in &reference.keys {
            match digests.get(*key) {
                Some(digest) => {
                    entry.insert((*key).to_string(), digest.clone());
                }
                None if reference.optional => {}
                None => {
                    let declared: Vec<&str> = digests.keys().map(String::as_str).collect();
                    diagnostics.push(error(
                        format!(
                            "key `{key}` is not in {} {namespace}/{}",
                            reference.source.kind(),
                            reference.source.name()
                        ),
                        path,
                        if declared.is_empty() {
                            "it declares no key; add it, or mark the reference `optional: true`"
                                .to_string()
                        } else {
                            format!(
                                "it declares {}; add the key, or mark the reference `optional: true`",
                                quoted_list(declared.iter().copied())
                            )
                        },
                    ));
                }
            }
        }
    }
    check_pull_secrets(workload, state, declared, diagnostics);
    check_variable_values(workload, state, diagnostics);
    check_mounts(workload, state, diagnostics);
    // A declared source of which no key is read (each optional and absent)
    // is still recorded: the keys it gains later are read.
    ConsumedConfig(consumed)
}

/// `` `a`, `b` and `c` ``.
fn quoted_list<'a>(keys: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = keys.map(|k| format!("`{k}`")).collect();
    let borrowed: Vec<&str> = quoted.iter().map(String::as_str).collect();
    names::listed(&borrowed, "and")
}

/// A mount of a `configMap` or `secret` volume places files: not at `/`,
/// and with a `subPath`, one the volume has (a file or a directory of
/// its `items` paths), unless the volume is optional.
fn check_mounts(workload: &Workload, state: &DesiredState, diagnostics: &mut Vec<Diagnostic>) {
    let namespace = workload.meta.namespace.as_str();
    let pod = &workload.spec.template.spec;
    for (c, container) in pod.containers_with_fields() {
        for (j, mount) in container.volume_mounts.iter().enumerate() {
            let path = format!("spec.template.spec.{c}.volumeMounts[{j}]");
            let error = |message: String, field: &str, hint: &str| {
                let path = format!("{path}.{field}");
                Diagnostic::error(message, workload.meta.field_location(&path))
                    .with_object(workload.key().to_string())
                    .with_field_path(path)
                    .with_hint(hint.to_string())
            };
            if mount.mount_path.trim_end_matches('/').is_empty() {
                diagnostics.push(error(
                    "a volume cannot be mounted at `/`".to_string(),
                    "mountPath",
                    "mount it at a directory of its own, e.g. /etc/app",
                ));
                continue;
            }
            let Some(sub_path) = &mount.sub_path else {
                continue;
            };
            let Some(volume) = pod.volumes.iter().find(|v| v.name == mount.name) else {
                continue;
            };
            let VolumeSource::Config(config) = &volume.source else {
                continue;
            };
            let Some(digests) = digests(state, namespace, &config.source) else {
                continue;
            };
            let files: Vec<&str> = if config.items.is_empty() {
                digests.keys().map(String::as_str).collect()
            } else {
                config.items.iter().map(|item| item.path.as_str()).collect()
            };
            let sub = sub_path.trim_end_matches('/');
            let found = files
                .iter()
                .any(|file| *file == sub || file.starts_with(&format!("{sub}/")));
            if !found && !config.optional {
                diagnostics.push(error(
                    format!(
                        "subPath `{sub_path}` is not a file of volume `{}` ({} {namespace}/{})",
                        mount.name,
                        config.source.kind(),
                        config.source.name()
                    ),
                    "subPath",
                    &format!("it has {}", quoted_list(files.iter().copied())),
                ));
            }
        }
    }
}

/// A ConfigMap value read as a variable by its key must be text without
/// NUL bytes: Kubernetes reads variables from `data` only (and `envFrom`
/// leaves `binaryData` keys out, as here), and Docker refuses a NUL.
fn check_variable_values(
    workload: &Workload,
    state: &DesiredState,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let namespace = workload.meta.namespace.as_str();
    for reference in references(workload) {
        let ConfigSource::ConfigMap(name) = reference.source else {
            continue;
        };
        let Some(map) = state.config_map(namespace, name) else {
            continue;
        };
        if reference.reads != Reads::Variable {
            continue;
        }
        for (key, path) in reference.keys {
            if map.data.get(key).is_some_and(|v| !is_variable_text(v)) {
                diagnostics.push(
                    Diagnostic::error(
                        format!("value `{key}` of ConfigMap {namespace}/{name} is binary, and a variable must be text without NUL bytes"),
                        workload.meta.field_location(&path),
                    )
                    .with_object(workload.key().to_string())
                    .with_field_path(path)
                    .with_hint("read it as a file (a `configMap` volume) instead"),
                );
            }
        }
    }
}

/// `envFrom` skips keys that are not valid variable names, as Kubernetes
/// does (with an event there, a warning here).
fn warn_invalid_names(
    workload: &Workload,
    reference: &Reference<'_>,
    keys: &BTreeMap<String, ValueDigest>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let invalid: Vec<&str> = keys
        .keys()
        .filter(|key| names::env_var_name(key).is_err())
        .map(String::as_str)
        .collect();
    if !invalid.is_empty() {
        diagnostics.push(
            Diagnostic::warning(
                format!(
                    "{} {} has keys that are not variable names: {}; they are left out of the environment",
                    reference.source.kind(),
                    reference.source.name(),
                    quoted_list(invalid.into_iter())
                ),
                workload.meta.field_location(&reference.path),
            )
            .with_object(workload.key().to_string())
            .with_field_path(reference.path.clone()),
        );
    }
}

/// Each of `imagePullSecrets` must be a declared Secret of type
/// `kubernetes.io/dockerconfigjson` in the pod's namespace.
fn check_pull_secrets(
    workload: &Workload,
    state: &DesiredState,
    declared: &dyn Fn(&ObjectKey) -> bool,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let namespace = workload.meta.namespace.as_str();
    for (i, name) in workload
        .spec
        .template
        .spec
        .image_pull_secrets
        .iter()
        .enumerate()
    {
        let path = format!("spec.template.spec.imagePullSecrets[{i}]");
        let key = ObjectKey {
            kind: super::model::Kind::Secret,
            namespace: namespace.to_string(),
            name: name.clone(),
        };
        let problem = match state.secret(namespace, name) {
            None if declared(&key) => None,
            None => Some((
                format!("Secret {namespace}/{name} is not declared"),
                format!(
                    "declare a Secret of type `{}` named `{name}` in namespace `{namespace}`",
                    SecretType::DockerConfigJson.as_str()
                ),
            )),
            Some(secret) if secret.secret_type != SecretType::DockerConfigJson => Some((
                format!(
                    "Secret {namespace}/{name} is of type `{}`, not `{}`",
                    secret.secret_type.as_str(),
                    SecretType::DockerConfigJson.as_str()
                ),
                "image pull credentials are Docker's config.json in a Secret of that type"
                    .to_string(),
            )),
            Some(_) => None,
        };
        if let Some((message, hint)) = problem {
            diagnostics.push(
                Diagnostic::error(message, workload.meta.field_location(&path))
                    .with_object(workload.key().to_string())
                    .with_field_path(path)
                    .with_hint(hint),
            );
        }
    }
}

/// How the values a workload reads differ between two of its templates:
/// per source, the keys changed, added or removed. What `plan` shows as
/// the reason a workload rolls.
pub fn consumed_changes(old: &ConsumedConfig, new: &ConsumedConfig) -> Vec<ConsumedChange> {
    let mut changes = Vec::new();
    let sources: std::collections::BTreeSet<&ConfigSource> =
        old.0.keys().chain(new.0.keys()).collect();
    let empty = BTreeMap::new();
    for source in sources {
        let before = old.0.get(source).unwrap_or(&empty);
        let after = new.0.get(source).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for key in keys {
            let change = match (before.get(key), after.get(key)) {
                (Some(a), Some(b)) if a != b => KeyChange::Changed,
                (None, Some(_)) => KeyChange::Added,
                (Some(_), None) => KeyChange::Removed,
                _ => continue,
            };
            changes.push(ConsumedChange {
                source: source.clone(),
                key: key.clone(),
                change,
            });
        }
    }
    changes
}

/// One key a workload reads whose value changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsumedChange {
    pub source: ConfigSource,
    pub key: String,
    pub change: KeyChange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyChange {
    Changed,
    Added,
    Removed,
}

impl std::fmt::Display for ConsumedChange {
    /// `ConfigMap app key LOG_LEVEL changed`; `now read` and `no longer
    /// read` when the pod reads a key it did not (or the reverse), whether
    /// the key or the reference changed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let change = match self.change {
            KeyChange::Changed => "changed",
            KeyChange::Added => "now read",
            KeyChange::Removed => "no longer read",
        };
        write!(f, "{} key {} {change}", self.source, self.key)
    }
}

/// `immutable: true` as Kubernetes means it: once a ConfigMap or Secret
/// that says so is in a commit, a later commit may delete it but not change
/// its data, its type or the flag. Errors in `new`, at the object.
pub fn check_immutable(old: &DesiredState, new: &DesiredState) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut refuse = |key: String, at: super::model::SourceLocation, what: &str| {
        diagnostics.push(
            Diagnostic::error(format!("{key} is immutable: {what}"), at)
                .with_object(key)
                .with_hint("declare a new one under another name and point the pods at it, or delete this one and declare it again in a later push"),
        );
    };
    for map in &new.config_maps {
        let Some(before) = old.config_map(&map.meta.namespace, &map.meta.name) else {
            continue;
        };
        if !before.immutable {
            continue;
        }
        if !map.immutable {
            refuse(
                map.key().to_string(),
                map.meta.source.clone(),
                "it cannot be made mutable",
            );
        } else if before.data != map.data {
            refuse(
                map.key().to_string(),
                map.meta.source.clone(),
                "its data cannot change",
            );
        }
    }
    for secret in &new.secrets {
        let Some(before) = old.secret(&secret.meta.namespace, &secret.meta.name) else {
            continue;
        };
        if !before.immutable {
            continue;
        }
        // Values compare by their version: re-sealing (rekey) is no change.
        let versions = |s: &Secret| -> BTreeMap<String, ValueDigest> {
            s.data
                .iter()
                .map(|(k, v)| (k.clone(), secret_digest(v)))
                .collect()
        };
        if !secret.immutable {
            refuse(
                secret.key().to_string(),
                secret.meta.source.clone(),
                "it cannot be made mutable",
            );
        } else if before.secret_type != secret.secret_type || versions(before) != versions(secret) {
            refuse(
                secret.key().to_string(),
                secret.meta.source.clone(),
                "its data cannot change",
            );
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{
        ConfigMap, ConfigVolume, Container, EnvFromSource, EnvVar, KeyRef, KeyToPath, ObjectMeta,
        PodSet, SealedText, Sensitive, Volume, WorkloadSpec,
    };
    use crate::manifest::{template_hash, Kind};

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        }
    }

    fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            meta: meta(name),
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
            immutable: false,
        }
    }

    fn sealed(version: &str, ciphertext: &str) -> SecretValue {
        SecretValue::Sealed(SealedText {
            version: version.into(),
            ciphertext: ciphertext.into(),
        })
    }

    fn secret(name: &str, data: &[(&str, SecretValue)]) -> Secret {
        Secret {
            meta: meta(name),
            secret_type: SecretType::Opaque,
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            immutable: false,
        }
    }

    fn workload(name: &str, container: Container, volumes: Vec<Volume>) -> Workload {
        let mut spec = WorkloadSpec {
            pods: PodSet::Replicas(1),
            selector: Default::default(),
            template: Default::default(),
            strategy: Default::default(),
            min_ready_seconds: 0,
            progress_deadline_seconds: 600,
            revision_history_limit: 10,
            paused: false,
            stateful: None,
        };
        spec.template.spec.containers = vec![container];
        spec.template.spec.volumes = volumes;
        Workload {
            kind: Kind::Deployment,
            meta: meta(name),
            spec,
        }
    }

    fn env_ref(name: &str, source: ConfigSource, key: &str, optional: bool) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: String::new(),
            value_from: Some(KeyRef {
                source,
                key: key.into(),
                optional,
            }),
        }
    }

    fn container(env: Vec<EnvVar>, env_from: Vec<EnvFromSource>) -> Container {
        Container {
            name: "app".into(),
            image: "busybox:1".into(),
            env,
            env_from,
            ..Container::default()
        }
    }

    fn resolved(mut state: DesiredState) -> (DesiredState, Vec<String>) {
        let mut diagnostics = Vec::new();
        resolve(&mut state, &|_| false, &mut diagnostics);
        let messages = diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.field_path.as_deref().unwrap_or(""), d.message))
            .collect();
        (state, messages)
    }

    fn cm(name: &str) -> ConfigSource {
        ConfigSource::ConfigMap(name.into())
    }

    #[test]
    fn a_pod_reads_only_the_keys_it_names() {
        let state = DesiredState {
            config_maps: vec![config_map("app", &[("LEVEL", "debug"), ("OTHER", "x")])],
            workloads: vec![workload(
                "web",
                container(vec![env_ref("LEVEL", cm("app"), "LEVEL", false)], vec![]),
                vec![],
            )],
            ..DesiredState::default()
        };
        let (state, messages) = resolved(state);
        assert!(messages.is_empty(), "{messages:?}");
        let consumed = &state.workloads[0].spec.template.consumed.0;
        assert_eq!(consumed.len(), 1);
        assert_eq!(
            consumed[&cm("app")].keys().collect::<Vec<_>>(),
            vec!["LEVEL"]
        );
    }

    #[test]
    fn missing_objects_and_keys_are_errors_unless_optional() {
        let state = DesiredState {
            config_maps: vec![config_map("app", &[("A", "1"), ("B", "2")])],
            workloads: vec![workload(
                "web",
                container(
                    vec![
                        env_ref("X", cm("app"), "MISSING", false),
                        env_ref("Y", cm("app"), "MISSING", true),
                        env_ref("Z", cm("nope"), "A", false),
                        env_ref("W", ConfigSource::Secret("gone".into()), "A", true),
                    ],
                    vec![],
                ),
                vec![Volume {
                    name: "files".into(),
                    source: VolumeSource::Config(ConfigVolume {
                        source: ConfigSource::Secret("tls".into()),
                        items: vec![],
                        default_mode: 0o644,
                        optional: false,
                    }),
                }],
            )],
            ..DesiredState::default()
        };
        let (state, messages) = resolved(state);
        assert_eq!(
            messages,
            vec![
                "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.key: key `MISSING` is not in ConfigMap default/app",
                "spec.template.spec.containers[0].env[2].valueFrom.configMapKeyRef: ConfigMap default/nope is not declared",
                "spec.template.spec.volumes[0]: Secret default/tls is not declared",
            ]
        );
        // The optional absent key and Secret are read as absent: declaring
        // them later is a change.
        let consumed = &state.workloads[0].spec.template.consumed.0;
        assert_eq!(consumed.keys().collect::<Vec<_>>(), vec![&cm("app")]);
    }

    #[test]
    fn a_secret_value_counts_by_its_version_not_its_ciphertext() {
        let state = |version: &str, ciphertext: &str| DesiredState {
            secrets: vec![secret("db", &[("password", sealed(version, ciphertext))])],
            workloads: vec![workload(
                "web",
                container(
                    vec![env_ref(
                        "PW",
                        ConfigSource::Secret("db".into()),
                        "password",
                        false,
                    )],
                    vec![],
                ),
                vec![],
            )],
            ..DesiredState::default()
        };
        let hash = |s: DesiredState| {
            let (s, messages) = resolved(s);
            assert!(messages.is_empty(), "{messages:?}");
            template_hash(&s.workloads[0].spec.template)
        };
        let first = hash(state("0123456789abcdef", "c2VhbGVk"));
        // Re-sealed for other recipients (rekey): same version, same revision.
        assert_eq!(first, hash(state("0123456789abcdef", "b3RoZXI=")));
        // A new value: a new version, a new revision.
        assert_ne!(first, hash(state("fedcba9876543210", "c2VhbGVk")));
        // Opening the values does not change the revision either.
        let (mut opened, _) = resolved(state("0123456789abcdef", "c2VhbGVk"));
        struct Clear;
        impl crate::manifest::model::Unseal for Clear {
            fn unseal(&self, _: &SealedText) -> Result<Sensitive, String> {
                Ok(Sensitive::new(b"hunter2".to_vec()))
            }
        }
        assert!(opened.open_secrets(&Clear).is_empty());
        assert_eq!(first, template_hash(&opened.workloads[0].spec.template));
    }

    #[test]
    fn env_from_reads_every_key_and_warns_of_names_it_leaves_out() {
        let state = DesiredState {
            config_maps: vec![config_map("app", &[("GOOD", "1"), ("1bad", "2")])],
            workloads: vec![workload(
                "web",
                container(
                    vec![],
                    vec![EnvFromSource {
                        source: cm("app"),
                        prefix: String::new(),
                        optional: false,
                    }],
                ),
                vec![],
            )],
            ..DesiredState::default()
        };
        let (state, messages) = resolved(state);
        assert_eq!(
            messages,
            vec!["spec.template.spec.containers[0].envFrom[0]: ConfigMap app has keys that are not variable names: `1bad`; they are left out of the environment"]
        );
        assert_eq!(
            state.workloads[0].spec.template.consumed.0[&cm("app")].len(),
            2
        );
    }

    #[test]
    fn volume_items_read_their_keys_and_pull_secrets_must_be_docker_configs() {
        let mut w = workload(
            "web",
            container(vec![], vec![]),
            vec![Volume {
                name: "conf".into(),
                source: VolumeSource::Config(ConfigVolume {
                    source: cm("app"),
                    items: vec![KeyToPath {
                        key: "nginx.conf".into(),
                        path: "nginx.conf".into(),
                        mode: Some(0o600),
                    }],
                    default_mode: 0o644,
                    optional: false,
                }),
            }],
        );
        w.spec.template.spec.image_pull_secrets = vec!["db".into(), "none".into()];
        let state = DesiredState {
            config_maps: vec![config_map("app", &[("nginx.conf", "x"), ("unused", "y")])],
            secrets: vec![secret(
                "db",
                &[("password", sealed("0123456789abcdef", "eA=="))],
            )],
            workloads: vec![w],
            ..DesiredState::default()
        };
        let (state, messages) = resolved(state);
        assert_eq!(
            messages,
            vec![
                "spec.template.spec.imagePullSecrets[0]: Secret default/db is of type `Opaque`, not `kubernetes.io/dockerconfigjson`",
                "spec.template.spec.imagePullSecrets[1]: Secret default/none is not declared",
            ]
        );
        assert_eq!(
            state.workloads[0].spec.template.consumed.0[&cm("app")]
                .keys()
                .collect::<Vec<_>>(),
            vec!["nginx.conf"]
        );
    }

    #[test]
    fn immutable_objects_may_go_but_not_change() {
        let mut before = config_map("app", &[("A", "1")]);
        before.immutable = true;
        let old = DesiredState {
            config_maps: vec![before.clone()],
            ..DesiredState::default()
        };
        let same = DesiredState {
            config_maps: vec![before.clone()],
            ..DesiredState::default()
        };
        assert!(check_immutable(&old, &same).is_empty());
        assert!(check_immutable(&old, &DesiredState::default()).is_empty());
        let mut changed = before.clone();
        changed.data.insert("A".into(), b"2".to_vec());
        let new = DesiredState {
            config_maps: vec![changed],
            ..DesiredState::default()
        };
        let messages: Vec<String> = check_immutable(&old, &new)
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(
            messages,
            vec!["ConfigMap default/app is immutable: its data cannot change"]
        );
        let mut mutable = before;
        mutable.immutable = false;
        let new = DesiredState {
            config_maps: vec![mutable],
            ..DesiredState::default()
        };
        assert_eq!(check_immutable(&old, &new).len(), 1);
        // A Secret re-sealed for other recipients keeps its versions: no change.
        let mut secret_before = secret("db", &[("pw", sealed("0123456789abcdef", "eA=="))]);
        secret_before.immutable = true;
        let mut resealed = secret_before.clone();
        resealed
            .data
            .insert("pw".into(), sealed("0123456789abcdef", "eQ=="));
        let old = DesiredState {
            secrets: vec![secret_before],
            ..DesiredState::default()
        };
        let new = DesiredState {
            secrets: vec![resealed.clone()],
            ..DesiredState::default()
        };
        assert!(check_immutable(&old, &new).is_empty());
        resealed
            .data
            .insert("pw".into(), sealed("1123456789abcdef", "eQ=="));
        let new = DesiredState {
            secrets: vec![resealed],
            ..DesiredState::default()
        };
        assert_eq!(check_immutable(&old, &new).len(), 1);
    }

    #[test]
    fn binary_variables_root_mounts_and_missing_sub_paths_are_refused() {
        use crate::manifest::model::VolumeMount;
        let mut map = config_map("app", &[("conf", "x")]);
        map.data.insert("blob".into(), vec![0xff, 0x00]);
        let mut c = container(vec![env_ref("B", cm("app"), "blob", false)], vec![]);
        let mount = |path: &str, sub: Option<&str>| VolumeMount {
            name: "files".into(),
            mount_path: path.into(),
            sub_path: sub.map(Into::into),
            read_only: false,
        };
        c.volume_mounts = vec![
            mount("/", None),
            mount("/etc/x", Some("nothere")),
            mount("/etc/y", Some("conf")),
        ];
        let state = DesiredState {
            config_maps: vec![map],
            workloads: vec![workload(
                "web",
                c,
                vec![Volume {
                    name: "files".into(),
                    source: VolumeSource::Config(ConfigVolume {
                        source: cm("app"),
                        items: vec![],
                        default_mode: 0o644,
                        optional: false,
                    }),
                }],
            )],
            ..DesiredState::default()
        };
        let (_, messages) = resolved(state);
        assert_eq!(
            messages,
            vec![
                "spec.template.spec.containers[0].env[0].valueFrom.configMapKeyRef.key: value `blob` of ConfigMap default/app is binary, and a variable must be text without NUL bytes",
                "spec.template.spec.containers[0].volumeMounts[0].mountPath: a volume cannot be mounted at `/`",
                "spec.template.spec.containers[0].volumeMounts[1].subPath: subPath `nothere` is not a file of volume `files` (ConfigMap default/app)",
            ]
        );
    }

    #[test]
    fn changes_name_the_keys() {
        let digest = |s: &str| ValueDigest(s.into());
        let old = ConsumedConfig(BTreeMap::from([(
            cm("app"),
            BTreeMap::from([
                ("A".to_string(), digest("1")),
                ("B".to_string(), digest("2")),
            ]),
        )]));
        let new = ConsumedConfig(BTreeMap::from([(
            cm("app"),
            BTreeMap::from([
                ("A".to_string(), digest("9")),
                ("C".to_string(), digest("3")),
            ]),
        )]));
        let changes: Vec<String> = consumed_changes(&old, &new)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            vec![
                "ConfigMap app key A changed",
                "ConfigMap app key B no longer read",
                "ConfigMap app key C now read"
            ]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any change of one value of one ConfigMap or Secret changes the
        /// revision of exactly the workloads that read that key.
        fn state(reads: &[Vec<(bool, u8, u8)>], values: &[[u8; 3]; 4]) -> DesiredState {
            let source = |is_secret: bool, object: u8| {
                if is_secret {
                    ConfigSource::Secret(format!("s{object}"))
                } else {
                    cm(&format!("c{object}"))
                }
            };
            let version = |v: u8| format!("{:016x}", u64::from(v));
            DesiredState {
                config_maps: (0..2)
                    .map(|o| {
                        let data: Vec<(String, String)> = (0..3)
                            .map(|k| (format!("k{k}"), values[o][k].to_string()))
                            .collect();
                        let borrowed: Vec<(&str, &str)> =
                            data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                        config_map(&format!("c{o}"), &borrowed)
                    })
                    .collect(),
                secrets: (0..2)
                    .map(|o| {
                        let data: Vec<(String, SecretValue)> = (0..3)
                            .map(|k| (format!("k{k}"), sealed(&version(values[o + 2][k]), "eA==")))
                            .collect();
                        let borrowed: Vec<(&str, SecretValue)> =
                            data.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                        secret(&format!("s{o}"), &borrowed)
                    })
                    .collect(),
                workloads: reads
                    .iter()
                    .enumerate()
                    .map(|(i, keys)| {
                        let env = keys
                            .iter()
                            .enumerate()
                            .map(|(j, (is_secret, object, key))| {
                                env_ref(
                                    &format!("V{j}"),
                                    source(*is_secret, *object),
                                    &format!("k{key}"),
                                    false,
                                )
                            })
                            .collect();
                        workload(&format!("w{i:02}"), container(env, vec![]), vec![])
                    })
                    .collect(),
                ..DesiredState::default()
            }
        }

        proptest! {
            #[test]
            fn a_change_rolls_exactly_its_readers(
                reads in prop::collection::vec(prop::collection::vec((any::<bool>(), 0u8..2, 0u8..3), 0..4), 1..6),
                values in prop::array::uniform4(prop::array::uniform3(0u8..4)),
                changed_object in 0usize..4,
                changed_key in 0usize..3,
            ) {
                let mut after = values;
                after[changed_object][changed_key] = after[changed_object][changed_key].wrapping_add(1) % 8 + 8;
                let (before_state, m1) = resolved(state(&reads, &values));
                let (after_state, m2) = resolved(state(&reads, &after));
                prop_assert!(m1.is_empty() && m2.is_empty());
                for (i, keys) in reads.iter().enumerate() {
                    let reads_it = keys.iter().any(|(is_secret, object, key)| {
                        usize::from(*object) + if *is_secret { 2 } else { 0 } == changed_object
                            && usize::from(*key) == changed_key
                    });
                    let rolled = template_hash(&before_state.workloads[i].spec.template)
                        != template_hash(&after_state.workloads[i].spec.template);
                    prop_assert_eq!(rolled, reads_it, "workload {} reads {:?}", i, keys);
                }
            }
        }
    }
}
