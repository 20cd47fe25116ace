//! Decoding one YAML document into a typed object, checking every field.
//!
//! The decoder walks the spanned tree by hand rather than through serde so
//! that every problem carries its place: the line and column of the key or
//! value, the object, and the field path. It never stops at the first
//! problem; a field that cannot be decoded is reported and left at its
//! default, so the rest of the object is still checked.
//!
//! Here: the document (kind, apiVersion, metadata) and the typed readers of
//! scalars, lists and maps every part uses. By concern: `objects.rs` (Cluster
//! and Node), `workloads.rs` (what each kind that runs pods declares besides
//! its template), `stateful_set.rs` (a StatefulSet's, with its volume claim
//! templates), `pod.rs` (pod templates, selectors, containers) and
//! `ingress.rs` (Ingress routes, and their cross-object checks),
//! `ingress_tls.rs` (an Ingress's TLS entries and their Secrets),
//! `service.rs` (Services), `config.rs` (ConfigMaps and Secrets) and
//! `pod_config.rs` (what a pod reads from them: `valueFrom`, `envFrom`,
//! volumes and their mounts, `imagePullSecrets`), `storage.rs` (`emptyDir`,
//! `hostPath` and `persistentVolumeClaim` volumes, and PersistentVolumeClaims).

use std::collections::{BTreeMap, BTreeSet};

use super::diagnostic::Diagnostic;
use super::image_reference;
use super::model::*;
use super::names;
use super::policy::PortRanges;
use super::quantity::{Bytes, CpuMillis, QuantityError};
use super::yaml::{Node, PlainType, Style, Value};

mod config;
mod ingress;
mod ingress_tls;
mod job;
mod objects;
mod pod;
mod pod_config;
mod service;
mod stateful_set;
mod storage;
mod workloads;

pub(super) use ingress::check_ingresses;
pub(super) use ingress_tls::{check_ingress_tls, check_tls_certificates};
pub use pod::default_pull_policy;
pub(crate) use service::{port_label, DecodedService, NODE_PORTS};

/// A decoded object, present only when the document had no error.
#[derive(Clone, Debug)]
pub(super) enum Decoded {
    Cluster(ClusterSettings),
    Node(Box<super::model::Node>),
    Workload(Box<Workload>),
    Ingress(Box<Ingress>),
    Service(Box<DecodedService>),
    ConfigMap(Box<ConfigMap>),
    Secret(Box<Secret>),
    Claim(Box<PersistentVolumeClaim>),
}

/// What one document declared.
#[derive(Clone, Debug)]
pub(super) struct DecodedDocument {
    /// The object's identity when its kind and name could be read.
    pub key: Option<ObjectKey>,
    /// Where the document starts.
    pub location: SourceLocation,
    pub object: Option<Decoded>,
    pub diagnostics: Vec<Diagnostic>,
    /// Where a workload's `nodeSelector` is, for the cross-object check.
    pub node_selector_location: Option<SourceLocation>,
    /// Where a workload's `replicas` is, for the cluster-wide pod count.
    pub replicas_location: Option<SourceLocation>,
}

/// Kubernetes kinds flotilla does not know at all, so that they are named
/// as "not supported" rather than "unknown".
const OTHER_KUBERNETES_KINDS: &[&str] = &[
    "ReplicaSet",
    "ReplicationController",
    "IngressClass",
    "PersistentVolume",
    "StorageClass",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "NetworkPolicy",
    "LimitRange",
    "ResourceQuota",
    "Endpoints",
    "EndpointSlice",
    "PriorityClass",
    "CustomResourceDefinition",
    "List",
];

/// The fields a mapping may have.
struct Schema {
    /// Supported.
    known: &'static [&'static str],
    /// Real Kubernetes fields flotilla does not support yet.
    unsupported: &'static [&'static str],
    /// Fields Kubernetes tools emit that carry no desired state; accepted
    /// and ignored (documented in docs/manifests.md).
    ignored: &'static [&'static str],
    /// Extra advice for a field that is misplaced rather than misspelt.
    hints: &'static [(&'static str, &'static str)],
}

const NO_HINTS: &[(&str, &str)] = &[];

const TOP_LEVEL: Schema = Schema {
    known: &["apiVersion", "kind", "metadata", "spec"],
    unsupported: &[],
    ignored: &["status"],
    hints: NO_HINTS,
};

const METADATA: Schema = Schema {
    known: &["name", "namespace", "labels", "annotations"],
    unsupported: &[
        "generateName",
        "ownerReferences",
        "finalizers",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ],
    ignored: &[
        "creationTimestamp",
        "uid",
        "resourceVersion",
        "generation",
        "managedFields",
        "selfLink",
    ],
    hints: NO_HINTS,
};

/// Kubernetes validates most counts as int32.
const INT32_MAX: i64 = i32::MAX as i64;

/// A mapping's supported fields, after the others were reported.
struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    /// The value of `name`, unless absent or null (Kubernetes treats both alike).
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(key, value)| *key == name && !value.is_null())
            .map(|(_, value)| *value)
    }
}

enum IntOrString {
    Int(i64),
    String(String),
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A map entry's path: `labels.app`, or `labels["app.kubernetes.io/name"]`.
fn key_path(path: &str, key: &str) -> String {
    if !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        join(path, key)
    } else {
        format!("{path}[{key:?}]")
    }
}

/// `a`, `a` or `b`, `a`, `b` or `c`; the empty string as `""`.
fn one_of(options: &[&str]) -> String {
    let quoted: Vec<String> = options
        .iter()
        .map(|o| match o {
            &"" => "`\"\"`".to_string(),
            o => format!("`{o}`"),
        })
        .collect();
    let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
    names::listed(&quoted, "or")
}

struct Decoder<'a> {
    file: &'a str,
    object: Option<String>,
    diagnostics: Vec<Diagnostic>,
    /// The kind whose pods are being decoded: a Deployment's (and a
    /// DaemonSet's or StatefulSet's) must restart always; a Job's or a
    /// Pod's need not.
    pod_owner: Kind,
    /// Where the fields the policy checks were found in this document
    /// ([`ObjectMeta::field_sources`]).
    field_sources: BTreeMap<String, SourceLocation>,
    /// The volume claim templates of the StatefulSet being decoded: its
    /// containers may mount them by name, like the pod's own volumes.
    claim_template_names: BTreeSet<String>,
    /// Errors that leave the object usable, so that the checks of what
    /// refers to it still run: a Secret's values in clear (the Secret is
    /// kept, opened, with an error for each).
    tolerated_errors: usize,
}

/// The way past a document flotilla cannot deploy: leave it out with a
/// `.flotillaignore` line, the one document when it has a name (the rest of
/// an all-in-one file is still read), else the file.
fn exclusion_hint(file: &str, kind: &str, name: Option<&str>) -> String {
    match name {
        Some(name) => format!(
            "to deploy the rest of {file} without it, add the line `{file}#{kind}/{name}` to \
             .flotillaignore"
        ),
        None => format!("to leave {file} out, list it in .flotillaignore"),
    }
}

/// A YAML document that is not flotilla's to read.
enum Foreign {
    /// kustomize's input, in `directory`.
    Kustomization { directory: String },
    /// Neither `apiVersion`, `kind` nor `metadata` at its top (a CI
    /// workflow, a tool's settings): clearly not a manifest.
    NotAManifest,
}

/// The file names kustomize reads in a directory.
const KUSTOMIZATION_FILES: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The top-level fields of the document `root` of `file`, unless it is
/// kustomize's or clearly not a manifest: anything meant as one, even with
/// errors, is read.
fn top_level<'n>(file: &str, root: &'n Node) -> Result<&'n [super::yaml::Entry], Foreign> {
    let (directory, name) = match file.rsplit_once('/') {
        Some((directory, name)) => (directory, name),
        None => (".", file),
    };
    let kustomization = Foreign::Kustomization {
        directory: directory.to_string(),
    };
    if KUSTOMIZATION_FILES.contains(&name) {
        return Err(kustomization);
    }
    let Value::Mapping(entries) = &root.value else {
        return Err(Foreign::NotAManifest);
    };
    let text = |name: &str| top_field(entries, name).and_then(|v| v.as_scalar());
    if text("apiVersion").is_some_and(|v| v.text.starts_with("kustomize.config.k8s.io/")) {
        return Err(kustomization);
    }
    let declares = |name: &str| {
        entries
            .iter()
            .any(|e| e.key.as_scalar().is_some_and(|k| k.text == name))
    };
    if !declares("apiVersion") && !declares("kind") && !declares("metadata") {
        return Err(Foreign::NotAManifest);
    }
    Ok(entries)
}

/// The value of the top-level field `name`, unless absent or null.
fn top_field<'n>(entries: &'n [super::yaml::Entry], name: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|e| e.key.as_scalar().is_some_and(|k| k.text == name) && !e.value.is_null())
        .map(|e| &e.value)
}

/// Decodes one document of `file`.
pub(super) fn decode_document(file: &str, root: &Node) -> DecodedDocument {
    let mut decoder = Decoder {
        file,
        object: None,
        diagnostics: Vec::new(),
        pod_owner: Kind::Deployment,
        field_sources: BTreeMap::new(),
        claim_template_names: BTreeSet::new(),
        tolerated_errors: 0,
    };
    let mut document = DecodedDocument {
        key: None,
        location: decoder.at(root),
        object: None,
        diagnostics: Vec::new(),
        node_selector_location: None,
        replicas_location: None,
    };
    let object = decoder.document(root, &mut document);
    let errors = decoder.diagnostics.iter().filter(|d| d.is_error()).count();
    document.object = if errors > decoder.tolerated_errors {
        None
    } else {
        object
    };
    document.diagnostics = decoder.diagnostics;
    document
}

impl Decoder<'_> {
    fn at(&self, node: &Node) -> SourceLocation {
        SourceLocation {
            file: self.file.to_string(),
            line: node.line,
            column: node.column,
        }
    }

    fn push(&mut self, mut diagnostic: Diagnostic, path: &str) -> &mut Diagnostic {
        if let Some(object) = &self.object {
            diagnostic = diagnostic.with_object(object.clone());
        }
        if !path.is_empty() {
            diagnostic = diagnostic.with_field_path(path);
        }
        self.diagnostics.push(diagnostic);
        self.diagnostics.last_mut().expect("just pushed")
    }

    fn error(&mut self, node: &Node, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        let location = self.at(node);
        self.push(Diagnostic::error(message, location), path)
    }

    fn warning(&mut self, node: &Node, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        let location = self.at(node);
        self.push(Diagnostic::warning(message, location), path)
    }

    fn hint(diagnostic: &mut Diagnostic, hint: impl Into<String>) {
        diagnostic.hint = Some(hint.into());
    }

    // ------------------------------------------------------------ shapes

    fn fields<'n>(&mut self, node: &'n Node, path: &str, schema: &Schema) -> Option<Fields<'n>> {
        let Value::Mapping(entries) = &node.value else {
            let found = node.describe();
            self.error(node, path, format!("expected a mapping, found {found}"));
            return None;
        };
        let mut fields = Fields {
            entries: Vec::with_capacity(entries.len()),
        };
        for entry in entries {
            let Some(key) = entry.key.as_scalar() else {
                self.error(&entry.key, path, "mapping keys must be strings");
                continue;
            };
            let name = key.text.as_str();
            if schema.known.contains(&name) {
                fields.entries.push((name, &entry.value));
            } else if schema.ignored.contains(&name) {
                // Emitted by Kubernetes tools, carries no desired state:
                // accepted, and said so.
                let diagnostic = self.warning(
                    &entry.key,
                    &join(path, name),
                    format!(
                        "field `{name}` is ignored: it is set by Kubernetes, not desired state"
                    ),
                );
                Self::hint(
                    diagnostic,
                    "flotilla reads only what you declare; remove it to silence this warning",
                );
            } else if schema.unsupported.contains(&name) {
                self.error(
                    &entry.key,
                    &join(path, name),
                    format!("field `{name}` is not supported yet"),
                );
            } else {
                let candidates: Vec<&str> = schema
                    .known
                    .iter()
                    .chain(schema.unsupported)
                    .copied()
                    .collect();
                let message = match names::did_you_mean(name, &candidates) {
                    Some(suggestion) => {
                        format!("unknown field `{name}`, did you mean `{suggestion}`?")
                    }
                    None => format!("unknown field `{name}`"),
                };
                let hint = schema
                    .hints
                    .iter()
                    .find(|(field, _)| *field == name)
                    .map(|(_, hint)| *hint);
                let diagnostic = self.error(&entry.key, &join(path, name), message);
                if let Some(hint) = hint {
                    Self::hint(diagnostic, hint);
                }
            }
        }
        Some(fields)
    }

    fn required<'n>(
        &mut self,
        fields: &Fields<'n>,
        parent: &Node,
        path: &str,
        name: &str,
    ) -> Option<&'n Node> {
        let value = fields.get(name);
        if value.is_none() {
            self.error(parent, &join(path, name), format!("missing field `{name}`"));
        }
        value
    }

    fn sequence<'n>(&mut self, node: &'n Node, path: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Sequence(items) => Some(items),
            _ => {
                let found = node.describe();
                self.error(node, path, format!("expected a sequence, found {found}"));
                None
            }
        }
    }

    // ------------------------------------------------------------ scalars

    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(scalar) => match scalar.plain_type() {
                PlainType::String | PlainType::Null => Some(scalar.text.clone()),
                _ => {
                    let found = node.describe();
                    let text = scalar.text.clone();
                    let diagnostic = self.error(
                        node,
                        path,
                        format!("expected a string, found {found} `{text}`"),
                    );
                    Self::hint(diagnostic, format!("quote it: \"{text}\""));
                    None
                }
            },
            _ => {
                let found = node.describe();
                self.error(node, path, format!("expected a string, found {found}"));
                None
            }
        }
    }

    fn integer(&mut self, node: &Node, path: &str) -> Option<i64> {
        match &node.value {
            Value::Scalar(scalar) => match scalar.plain_type() {
                PlainType::Int(n) => Some(n),
                PlainType::BigInt => {
                    self.error(
                        node,
                        path,
                        format!("integer `{}` is too large", scalar.text),
                    );
                    None
                }
                _ if scalar.style == Style::Quoted => {
                    let text = scalar.text.clone();
                    let diagnostic = self.error(
                        node,
                        path,
                        format!("expected an integer, found a string \"{text}\""),
                    );
                    if text.parse::<i64>().is_ok() {
                        Self::hint(diagnostic, "remove the quotes");
                    }
                    None
                }
                _ => {
                    let found = node.describe();
                    let text = scalar.text.clone();
                    self.error(
                        node,
                        path,
                        format!("expected an integer, found {found} `{text}`"),
                    );
                    None
                }
            },
            _ => {
                let found = node.describe();
                self.error(node, path, format!("expected an integer, found {found}"));
                None
            }
        }
    }

    /// An integer in `min..=max`.
    fn ranged(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        let n = self.integer(node, path)?;
        if n < min {
            self.error(node, path, format!("must be at least {min}, found {n}"));
            None
        } else if n > max {
            self.error(node, path, format!("must be at most {max}, found {n}"));
            None
        } else {
            Some(n)
        }
    }

    fn count(&mut self, node: &Node, path: &str, min: u32) -> Option<u32> {
        self.ranged(node, path, i64::from(min), INT32_MAX)
            .and_then(|n| u32::try_from(n).ok())
    }

    /// A workload's `replicas`: at most [`MAX_PODS`], because a plan, its
    /// output and the hook's answer to the pusher grow with it.
    fn replicas(&mut self, node: &Node, path: &str) -> Option<u32> {
        let replicas = self.count(node, path, 0)?;
        if replicas > MAX_PODS {
            let diagnostic = self.error(
                node,
                path,
                format!("{replicas} replicas is more than the {MAX_PODS} pods a cluster may run"),
            );
            Self::hint(
                diagnostic,
                "flotilla, like Kubernetes, is tested up to 150,000 pods in a cluster; declare fewer replicas",
            );
            return None;
        }
        Some(replicas)
    }

    /// An optional count with a default.
    fn count_or(&mut self, fields: &Fields, path: &str, name: &str, min: u32, default: u32) -> u32 {
        match fields.get(name) {
            Some(node) => self.count(node, &join(path, name), min).unwrap_or(default),
            None => default,
        }
    }

    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let Some(scalar) = node.as_scalar() {
            if let PlainType::Bool(b) = scalar.plain_type() {
                return Some(b);
            }
            if scalar.style == Style::Plain
                && matches!(
                    scalar.text.as_str(),
                    "yes" | "no" | "on" | "off" | "y" | "n"
                )
            {
                let text = scalar.text.clone();
                let diagnostic =
                    self.error(node, path, format!("expected a boolean, found `{text}`"));
                Self::hint(diagnostic, "write `true` or `false`");
                return None;
            }
        }
        let found = node.describe();
        self.error(node, path, format!("expected a boolean, found {found}"));
        None
    }

    fn enumeration<T: Copy>(
        &mut self,
        node: &Node,
        path: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(node, path)?;
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let suggestion = names::did_you_mean(&text, &names);
        let diagnostic = self.error(
            node,
            path,
            format!("invalid value `{text}`, expected {}", one_of(&names)),
        );
        if let Some(suggestion) = suggestion {
            Self::hint(diagnostic, format!("did you mean `{suggestion}`?"));
        }
        None
    }

    fn string_list(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let items = self.sequence(node, path)?;
        let mut strings = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &index(path, i)) {
                Some(s) => strings.push(s),
                None => ok = false,
            }
        }
        ok.then_some(strings)
    }

    /// A map of strings, each key and value checked by a rule.
    fn string_map(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        key_rule: fn(&str) -> Result<(), String>,
        value_rule: fn(&str) -> Result<(), String>,
    ) -> BTreeMap<String, String> {
        let mut map = BTreeMap::new();
        let Value::Mapping(entries) = &node.value else {
            let found = node.describe();
            self.error(node, path, format!("expected a mapping, found {found}"));
            return map;
        };
        for entry in entries {
            let Some(key) = entry.key.as_scalar() else {
                self.error(&entry.key, path, "mapping keys must be strings");
                continue;
            };
            let key = key.text.clone();
            let entry_path = key_path(path, &key);
            if let Err(reason) = key_rule(&key) {
                self.error(
                    &entry.key,
                    &entry_path,
                    format!("invalid {what} key `{key}`: {reason}"),
                );
            }
            let Some(value) = self.string(&entry.value, &entry_path) else {
                continue;
            };
            if let Err(reason) = value_rule(&value) {
                self.error(
                    &entry.value,
                    &entry_path,
                    format!("invalid {what} value `{value}`: {reason}"),
                );
            }
            map.insert(key, value);
        }
        map
    }

    fn labels(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        self.string_map(
            node,
            path,
            "label",
            names::qualified_name,
            names::label_value,
        )
    }

    fn annotations(&mut self, node: &Node, path: &str) -> BTreeMap<String, String> {
        self.string_map(node, path, "annotation", names::qualified_name, |_| Ok(()))
    }

    fn int_or_string(&mut self, node: &Node, path: &str) -> Option<IntOrString> {
        match node.as_scalar().map(|s| s.plain_type()) {
            Some(PlainType::Int(_) | PlainType::BigInt) => {
                self.integer(node, path).map(IntOrString::Int)
            }
            _ => self.string(node, path).map(IntOrString::String),
        }
    }

    /// A quantity as Kubernetes reads it: written as a string or a number.
    fn quantity_text(&mut self, node: &Node, path: &str) -> Option<String> {
        match node.as_scalar() {
            Some(scalar)
                if scalar.style == Style::Plain
                    && matches!(
                        scalar.plain_type(),
                        PlainType::Int(_) | PlainType::BigInt | PlainType::Float
                    ) =>
            {
                Some(scalar.text.clone())
            }
            _ => self.string(node, path),
        }
    }

    fn quantity_error(&mut self, node: &Node, path: &str, text: &str, error: QuantityError) {
        let diagnostic = self.error(node, path, format!("invalid quantity `{text}`: {error}"));
        if error == QuantityError::Syntax {
            Self::hint(
                diagnostic,
                "CPU is written like `500m` or `2`, memory like `128Mi` or `1G`",
            );
        }
    }

    fn cpu(&mut self, node: &Node, path: &str) -> Option<CpuMillis> {
        let text = self.quantity_text(node, path)?;
        match CpuMillis::parse(&text) {
            Ok(cpu) => Some(cpu),
            Err(error) => {
                self.quantity_error(node, path, &text, error);
                None
            }
        }
    }

    fn memory(&mut self, node: &Node, path: &str) -> Option<Bytes> {
        let text = self.quantity_text(node, path)?;
        match Bytes::parse(&text) {
            Ok(bytes) => {
                if text.ends_with('m') {
                    let diagnostic = self.warning(
                        node,
                        path,
                        format!("memory `{text}` is in thousandths of a byte"),
                    );
                    let number = text.trim_end_matches('m');
                    Self::hint(diagnostic, format!("did you mean `{number}Mi`?"));
                }
                Some(bytes)
            }
            Err(error) => {
                self.quantity_error(node, path, &text, error);
                None
            }
        }
    }

    fn checked_name(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        rule: fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let name = self.string(node, path)?;
        if let Err(reason) = rule(&name) {
            self.error(node, path, format!("invalid {what} `{name}`: {reason}"));
            return None;
        }
        Some(name)
    }

    // ------------------------------------------------------------ objects

    fn document(&mut self, root: &Node, document: &mut DecodedDocument) -> Option<Decoded> {
        let entries = match top_level(self.file, root) {
            Ok(entries) => entries,
            Err(foreign) => {
                let location = self.at(root);
                self.diagnostics.push(match foreign {
                    Foreign::Kustomization { directory } => Diagnostic::warning(
                        "kustomize input is not applied: flotilla reads plain manifests \
                     (the ones beside it are read as they are)",
                        location,
                    )
                    .with_hint(format!(
                        "to deploy what kustomize builds, commit its output \
                     (`kustomize build {directory} > rendered.yaml`) instead of its inputs; \
                     to silence this warning, list {} in .flotillaignore",
                        self.file
                    )),
                    Foreign::NotAManifest => {
                        let what = match &root.value {
                            Value::Mapping(_) => {
                                "no `apiVersion`, `kind` or `metadata`".to_string()
                            }
                            _ => format!(
                                "{}, not a mapping with `apiVersion` and `kind`",
                                root.describe()
                            ),
                        };
                        Diagnostic::warning(
                            format!("not a Kubernetes manifest ({what}): skipped"),
                            location,
                        )
                        .with_hint(format!(
                            "list {} in .flotillaignore to silence this warning",
                            self.file
                        ))
                    }
                });
                return None;
            }
        };
        let top = |name: &str| top_field(entries, name);
        let Some(kind_node) = top("kind") else {
            self.error(root, "kind", "missing field `kind`");
            return None;
        };
        let kind_text = self.string(kind_node, "kind")?;
        // Name the object in every message, read leniently: metadata itself
        // is checked below.
        let metadata = top("metadata");
        let lenient = |field: &str| {
            metadata.and_then(|m| match &m.value {
                Value::Mapping(entries) => entries
                    .iter()
                    .find(|e| e.key.as_scalar().is_some_and(|k| k.text == field))
                    .and_then(|e| e.value.as_scalar())
                    .filter(|s| !s.text.is_empty())
                    .map(|s| s.text.clone()),
                _ => None,
            })
        };
        // Built only for a document flotilla cannot deploy.
        let file = self.file;
        let skip = || exclusion_hint(file, &kind_text, lenient("name").as_deref());
        let Some(kind) = Kind::parse(&kind_text) else {
            if OTHER_KUBERNETES_KINDS.contains(&kind_text.as_str()) {
                let diagnostic = self.error(
                    kind_node,
                    "kind",
                    format!("kind `{kind_text}` is not supported"),
                );
                Self::hint(
                    diagnostic,
                    format!("flotilla supports {}; {}", Kind::supported_list(), skip()),
                );
                return None;
            }
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            let suggestion = names::did_you_mean(&kind_text, &names);
            let message = match suggestion {
                Some(suggestion) => {
                    format!("unknown kind `{kind_text}`, did you mean `{suggestion}`?")
                }
                None => format!("unknown kind `{kind_text}`"),
            };
            let diagnostic = self.error(kind_node, "kind", message);
            // A typo is corrected, not left out.
            let hint = match suggestion {
                Some(_) => format!("flotilla supports {}", Kind::supported_list()),
                None => format!("flotilla supports {}; {}", Kind::supported_list(), skip()),
            };
            Self::hint(diagnostic, hint);
            return None;
        };

        let namespace = if kind.is_namespaced() {
            lenient("namespace").unwrap_or_else(|| "default".to_string())
        } else {
            String::new()
        };
        let name = lenient("name");
        let key = ObjectKey {
            kind,
            namespace,
            name: name.clone().unwrap_or_else(|| "<unnamed>".to_string()),
        };
        self.object = Some(key.to_string());
        // Without a name (itself an error, reported below) the object has
        // no identity: two unnamed objects are not "declared twice".
        if name.is_some() {
            document.key = Some(key);
        }

        let api_version = kind.api_version();
        match top("apiVersion") {
            None => {
                let diagnostic = self.error(root, "apiVersion", "missing field `apiVersion`");
                Self::hint(diagnostic, format!("{kind} is `apiVersion: {api_version}`"));
            }
            Some(node) => {
                if let Some(version) = self.string(node, "apiVersion") {
                    if version != api_version {
                        let diagnostic = self.error(
                            node,
                            "apiVersion",
                            format!("apiVersion `{version}` is not supported for {kind}"),
                        );
                        Self::hint(diagnostic, format!("use `apiVersion: {api_version}`"));
                    }
                }
            }
        }

        if !kind.is_supported() {
            let diagnostic = self.error(kind_node, "kind", format!("{kind} is not supported yet"));
            Self::hint(
                diagnostic,
                format!(
                    "flotilla supports {} for now; {}",
                    Kind::supported_list(),
                    skip()
                ),
            );
            self.unsupported_workload(kind, top("spec"));
            return None;
        }

        let top_level = match kind {
            Kind::ConfigMap => &config::CONFIG_MAP,
            Kind::Secret => &config::SECRET,
            _ => &TOP_LEVEL,
        };
        let fields = self.fields(root, "", top_level)?;
        let meta = match self.required(&fields, root, "", "metadata") {
            Some(node) => self.metadata(node, kind),
            None => ObjectMeta::default(),
        };
        let meta = ObjectMeta {
            source: document.location.clone(),
            ..meta
        };
        match kind {
            Kind::Cluster => {
                let settings = match fields.get("spec") {
                    Some(spec) => self.cluster_spec(spec),
                    None => ClusterSettings::default(),
                };
                Some(Decoded::Cluster(settings))
            }
            Kind::Node => {
                let spec = self.node_spec(fields.get("spec"), root)?;
                let meta = ObjectMeta {
                    field_sources: std::mem::take(&mut self.field_sources),
                    ..meta
                };
                Some(Decoded::Node(Box::new(super::model::Node { meta, spec })))
            }
            Kind::Ingress => {
                let spec_node = self.required(&fields, root, "", "spec")?;
                let ingress = self.ingress(spec_node, meta)?;
                Some(Decoded::Ingress(Box::new(ingress)))
            }
            Kind::Service => {
                let spec_node = self.required(&fields, root, "", "spec")?;
                let service = self.service(root, spec_node, meta)?;
                Some(Decoded::Service(Box::new(service)))
            }
            Kind::ConfigMap => Some(Decoded::ConfigMap(Box::new(self.config_map(&fields, meta)))),
            Kind::Secret => Some(Decoded::Secret(Box::new(self.secret(&fields, meta)))),
            Kind::PersistentVolumeClaim => {
                let claim = self.claim(root, &fields, meta)?;
                Some(Decoded::Claim(Box::new(claim)))
            }
            _ => {
                let spec_node = self.required(&fields, root, "", "spec")?;
                let spec = self.workload_spec_of(kind, spec_node, document)?;
                let meta = ObjectMeta {
                    field_sources: std::mem::take(&mut self.field_sources),
                    ..meta
                };
                Some(Decoded::Workload(Box::new(Workload { kind, meta, spec })))
            }
        }
    }

    /// A kind not supported yet that runs pods (Pod, CronJob): its pod template is checked as a
    /// Deployment's would be, so that every field flotilla does not support
    /// is named with its place, and each field of its own spec besides the
    /// template is named as not supported, rather than all of it being
    /// passed over behind the one "kind not supported" error.
    fn unsupported_workload(&mut self, kind: Kind, spec: Option<&Node>) {
        let Some(spec) = spec else {
            return;
        };
        self.pod_owner = kind;
        let mut document = DecodedDocument {
            key: None,
            location: self.at(spec),
            object: None,
            diagnostics: Vec::new(),
            node_selector_location: None,
            replicas_location: None,
        };
        match kind {
            Kind::Pod => {
                self.pod_spec(spec, "spec", &mut document);
            }
            Kind::CronJob => {
                if let Some(job) =
                    self.workload_spec(kind, spec, "spec", "jobTemplate", &mut document)
                {
                    let job_path = "spec.jobTemplate";
                    if let Value::Mapping(entries) = &job.value {
                        for entry in entries {
                            let Some(key) = entry.key.as_scalar() else {
                                continue;
                            };
                            if key.text == "spec" {
                                self.workload_spec(
                                    Kind::Job,
                                    &entry.value,
                                    &join(job_path, "spec"),
                                    "template",
                                    &mut document,
                                );
                            } else if key.text != "metadata" {
                                self.unsupported_field(&entry.key, job_path, &key.text, kind);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The spec of a workload kind not supported yet: `inner` (its pod
    /// template, or a CronJob's job template) is returned, or decoded when
    /// it is a pod template; every other field is named as not supported.
    fn workload_spec<'n>(
        &mut self,
        kind: Kind,
        spec: &'n Node,
        path: &str,
        inner: &str,
        document: &mut DecodedDocument,
    ) -> Option<&'n Node> {
        let Value::Mapping(entries) = &spec.value else {
            return None;
        };
        let mut found = None;
        for entry in entries {
            let Some(key) = entry.key.as_scalar() else {
                continue;
            };
            if key.text == inner {
                found = Some(&entry.value);
            } else {
                self.unsupported_field(&entry.key, path, &key.text, kind);
            }
        }
        let found = found?;
        if inner == "template" {
            self.pod_template(found, &join(path, inner), document);
            return None;
        }
        Some(found)
    }

    fn unsupported_field(&mut self, key: &Node, path: &str, name: &str, kind: Kind) {
        let diagnostic = self.error(
            key,
            &join(path, name),
            format!("field `{name}` is not supported yet ({kind} is not supported)"),
        );
        Self::hint(
            diagnostic,
            "flotilla runs pods only through Deployments, DaemonSets, StatefulSets and Jobs for now",
        );
    }

    fn metadata(&mut self, node: &Node, kind: Kind) -> ObjectMeta {
        let path = "metadata";
        let mut meta = ObjectMeta::default();
        let Some(fields) = self.fields(node, path, &METADATA) else {
            return meta;
        };
        if let Some(name) = self.required(&fields, node, path, "name") {
            meta.name = self
                .checked_name(name, "metadata.name", "name", names::dns1123_subdomain)
                .unwrap_or_default();
        }
        match (fields.get("namespace"), kind.is_namespaced()) {
            (Some(namespace), true) => {
                meta.namespace = self
                    .checked_name(
                        namespace,
                        "metadata.namespace",
                        "namespace",
                        names::dns1123_label,
                    )
                    .unwrap_or_default();
            }
            (None, true) => meta.namespace = "default".to_string(),
            (Some(namespace), false) => {
                let diagnostic = self.error(
                    namespace,
                    "metadata.namespace",
                    format!("{kind} is cluster-scoped and has no namespace"),
                );
                Self::hint(diagnostic, "remove `metadata.namespace`");
            }
            (None, false) => {}
        }
        if let Some(labels) = fields.get("labels") {
            meta.labels = self.labels(labels, "metadata.labels");
        }
        if let Some(annotations) = fields.get("annotations") {
            meta.annotations = self.annotations(annotations, "metadata.annotations");
        }
        meta
    }
}
