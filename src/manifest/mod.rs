//! The desired state's object model: parsing Kubernetes-style YAML,
//! validating it, and reporting every problem with its place.
//!
//! Pure: this module receives file contents and returns typed objects and
//! diagnostics. It never reads a file, a repository or the clock; `repo`
//! hands it the blobs of a commit. Large sets of files are decoded on a few
//! scoped threads (CPU only); the result never depends on them.
//!
//! Entry point: [`load`]. Submodules: `yaml` (the spanned YAML tree),
//! `decode` (typed objects and field checks), `names` and `quantity`
//! (Kubernetes' rules), `node_fields` (a Node's address, user and paths),
//! `services` (the Services' addresses and node ports, and their checks
//! against the workloads), `stateful` (the claims of StatefulSets' volume
//! claim templates), `storage` (the claims pods name, checked against
//! the claims declared), `diagnostic` (rendering), `documents` (a file cut
//! into its documents, for edits that keep the rest byte-for-byte).

mod config;
mod decode;
pub(crate) mod diagnostic;
pub(crate) mod documents;
pub(crate) mod image_reference;
pub mod model;
pub(crate) mod names;
pub(crate) mod node_fields;
mod pod_addresses;
pub(crate) mod policy;
pub mod quantity;
pub mod redact;
mod services;
mod stateful;
mod storage;
pub(crate) mod yaml;

pub use config::{check_immutable, consumed_changes, ConsumedChange, KeyChange};
pub use decode::default_pull_policy;
pub use diagnostic::{Diagnostic, Severity};
pub use model::DesiredState;
pub use policy::{check_operator_policy, OperatorPolicy};

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use decode::Decoded;
use model::{Kind, ObjectKey, SourceLocation};

/// One manifest file: its path inside the repository, its contents, and
/// the documents of it that are not to be read.
#[derive(Clone, Debug, Default)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
    /// Documents `.flotillaignore` excludes (its `path#Kind/name` lines).
    pub excluded: Vec<ExcludedDocument>,
}

impl SourceFile {
    /// A file of which every document is read.
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
            excluded: Vec::new(),
        }
    }
}

/// One document of a file left unread: the documents declaring `kind` and
/// `name`, in `namespace` when one is given (a document without one is in
/// `default`), whatever the kind (one flotilla does not support, above all).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExcludedDocument {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The line that excludes it, named when no document matches.
    pub rule: SourceLocation,
}

impl ExcludedDocument {
    /// `Kind/name` or `Kind/namespace/name`, as written after the `#`.
    pub fn selector(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{}/{namespace}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// Whether it excludes the document `root`, read leniently.
    pub(crate) fn matches(&self, root: &yaml::Node) -> bool {
        documents::raw_identity(root).is_some_and(|(kind, namespace, name)| {
            kind == self.kind
                && name == self.name
                && self.namespace.as_ref().is_none_or(|n| *n == namespace)
        })
    }
}

/// The result of loading a set of files: what could be understood, and every
/// problem found. The state is usable only when no diagnostic is an error.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub state: DesiredState,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Whether `name` may be an environment variable's name (what `envFrom`
/// keeps of a source's keys).
pub fn is_env_var_name(name: &str) -> bool {
    names::env_var_name(name).is_ok()
}

/// What a variable's value may be: UTF-8 text without NUL (which Docker
/// and the kernel refuse in an environment).
pub fn is_variable_text(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok() && !value.contains(&0)
}

/// The revision of a pod template: the first 10 hex digits of the SHA-256 of
/// its canonical JSON form. Equal templates give equal hashes, whatever file
/// or key order declared them.
pub fn template_hash(template: &model::PodTemplate) -> String {
    let mut canonical = serde_json::to_vec(template).expect("a pod template always serializes");
    // A pod in a sandbox runs otherwise than the same template did before
    // sandboxes (its containers in its first container's namespace, left
    // with only `lo` when that one restarted): another revision, so the
    // pods an older flotilla made that way are rolled to the new layout
    // like any change. Templates of one container without init containers
    // keep their hash.
    if template.spec.has_sandbox() {
        canonical.extend_from_slice(b"+sandbox");
    }
    let digest = Sha256::digest(&canonical);
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// Parses and validates every manifest of `files`: the typed desired state
/// (every object without an error, even when others have errors) and every
/// problem found, sorted by file, line and column.
pub fn load(files: &[SourceFile]) -> Loaded {
    load_with(files, References::Checked)
}

/// Whether references to objects of other files are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum References {
    Checked,
    /// The file is read alone (`repo::revisions` judges each blob on its
    /// own): a ConfigMap or Secret, or an Ingress's TLS Secret, declared in
    /// another file is not an error of this one.
    Unchecked,
}

/// [`load`] of one file on its own: its objects and the problems of its
/// own documents, without errors about what a pod reads from ConfigMaps
/// and Secrets or an Ingress's TLS Secret (which may be in other files).
pub fn load_alone(file: &SourceFile) -> Loaded {
    load_with(std::slice::from_ref(file), References::Unchecked)
}

fn load_with(files: &[SourceFile], references: References) -> Loaded {
    let mut diagnostics = Vec::new();
    let mut state = DesiredState::default();
    let mut declared: BTreeMap<ObjectKey, SourceLocation> = BTreeMap::new();
    let mut cluster_at: Option<SourceLocation> = None;
    let mut node_selectors: Vec<(usize, SourceLocation)> = Vec::new();
    let mut pods: u64 = 0;
    let mut too_many_pods: Option<Diagnostic> = None;
    let mut services = Vec::new();
    for (file_diagnostics, documents) in decode_files(files) {
        diagnostics.extend(file_diagnostics);
        for (decoded, has_duplicate_keys) in documents {
            diagnostics.extend(decoded.diagnostics);
            let Some(key) = decoded.key else {
                continue;
            };
            if key.kind == Kind::Cluster {
                if let Some(first) = &cluster_at {
                    diagnostics.push(
                        Diagnostic::error("more than one Cluster object", decoded.location)
                            .with_object(key.to_string())
                            .with_hint(format!(
                                "the first is at {first}; keep cluster settings in one object"
                            )),
                    );
                    continue;
                }
                cluster_at = Some(decoded.location.clone());
            } else if !key.kind.is_supported() {
                continue;
            }
            if let Some(first) = declared.get(&key) {
                diagnostics.push(
                    Diagnostic::error(
                        format!("{key} is declared twice (first at {first})"),
                        decoded.location,
                    )
                    .with_object(key.to_string()),
                );
                continue;
            }
            declared.insert(key, decoded.location.clone());
            // A repeated key makes the object ambiguous: not valid.
            let object = decoded.object.filter(|_| !has_duplicate_keys);
            match object {
                Some(Decoded::Cluster(settings)) => state.cluster = settings,
                Some(Decoded::Node(node)) => state.nodes.push(*node),
                Some(Decoded::Workload(workload)) => {
                    // One pod per node for a DaemonSet: counted once the
                    // nodes are known, below.
                    pods += u64::from(workload.replicas().unwrap_or(0));
                    if pods > u64::from(model::MAX_PODS) && too_many_pods.is_none() {
                        let at = decoded.replicas_location.unwrap_or(decoded.location);
                        // A Job's pods at a time are its `parallelism`.
                        let field = if workload.spec.pods.completes() {
                            "spec.parallelism"
                        } else {
                            "spec.replicas"
                        };
                        too_many_pods = Some(
                            Diagnostic::error(
                                format!(
                                    "the manifests declare more than the {} pods a cluster may run",
                                    model::MAX_PODS
                                ),
                                at,
                            )
                            .with_object(workload.key().to_string())
                            .with_field_path(field)
                            .with_hint("flotilla, like Kubernetes, is tested up to 150,000 pods in a cluster; declare fewer replicas"),
                        );
                    }
                    if let Some(at) = decoded.node_selector_location {
                        node_selectors.push((state.workloads.len(), at));
                    }
                    state.workloads.push(*workload);
                }
                Some(Decoded::Ingress(ingress)) => state.ingresses.push(*ingress),
                Some(Decoded::Service(service)) => services.push(*service),
                Some(Decoded::ConfigMap(config_map)) => state.config_maps.push(*config_map),
                Some(Decoded::Secret(secret)) => state.secrets.push(*secret),
                Some(Decoded::Claim(claim)) => state.claims.push(*claim),
                None => {}
            }
        }
    }
    for (i, at) in node_selectors {
        let workload = &state.workloads[i];
        let selector = &workload.spec.template.spec.node_selector;
        let matches_a_node = state.nodes.iter().any(|node| {
            let labels = node.scheduling_labels();
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        });
        if !matches_a_node {
            diagnostics.push(
                Diagnostic::warning("nodeSelector matches no Node", at)
                    .with_object(workload.key().to_string())
                    .with_field_path("spec.template.spec.nodeSelector")
                    .with_hint("its pods stay pending until a Node with these labels is declared"),
            );
        }
    }
    // A DaemonSet's pods: one on each declared node, at most.
    let nodes = state.nodes.len() as u64;
    for workload in state.workloads.iter().filter(|w| w.replicas().is_none()) {
        pods += nodes;
        if pods > u64::from(model::MAX_PODS) && too_many_pods.is_none() {
            too_many_pods = Some(
                Diagnostic::error(
                    format!(
                        "the manifests declare more than the {} pods a cluster may run",
                        model::MAX_PODS
                    ),
                    workload.meta.source.clone(),
                )
                .with_object(workload.key().to_string())
                .with_hint(format!("this DaemonSet runs a pod on each of the {nodes} Nodes; flotilla, like Kubernetes, is tested up to 150,000 pods in a cluster")),
            );
        }
    }
    diagnostics.extend(too_many_pods);
    diagnostics.extend(policy::check_cluster_policy(&state));
    state.nodes.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    state
        .workloads
        .sort_by(|a, b| a.key_parts().cmp(&b.key_parts()));
    // Once the Cluster's serviceCIDR and every workload are known.
    state.services =
        services::resolve(services, &state.cluster, &state.workloads, &mut diagnostics);
    state
        .ingresses
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    state
        .config_maps
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    state
        .secrets
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    state
        .claims
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    diagnostics.extend(decode::check_ingresses(&state.services, &state.ingresses));
    // Before the claims pods name are checked: a pod may name an ordinal's.
    stateful::declare_ordinal_claims(&mut state, &mut diagnostics);
    let mut reference_diagnostics = Vec::new();
    // An object declared with errors is not in the state, and its own
    // errors say why: references to it are not reported again.
    let declared_with_errors = |key: &ObjectKey| declared.contains_key(key);
    config::resolve(
        &mut state,
        &declared_with_errors,
        &mut reference_diagnostics,
    );
    reference_diagnostics.extend(decode::check_ingress_tls(&state.secrets, &state.ingresses));
    storage::check_claims(&state, &declared_with_errors, &mut reference_diagnostics);
    if references == References::Checked {
        diagnostics.extend(reference_diagnostics);
    }
    diagnostics.extend(policy::check_proxy_ports(&state));
    // Stable: problems at one place keep the order they were found in.
    diagnostics.sort_by(|a, b| {
        (&a.location.file, a.location.line, a.location.column).cmp(&(
            &b.location.file,
            b.location.line,
            b.location.column,
        ))
    });
    Loaded { state, diagnostics }
}

/// The checks that need Secrets' values, once `DesiredState::open_secrets`
/// has opened them (the pre-receive hook, the leader): the certificate and
/// key of every `kubernetes.io/tls` Secret an Ingress names can be served.
/// A value still sealed is not checked. Errors at the Secret, never
/// showing a value.
pub fn check_opened_secrets(state: &model::DesiredState) -> Vec<Diagnostic> {
    decode::check_tls_certificates(&state.secrets, &state.ingresses)
}

/// One file's syntax errors, and its documents decoded (each with whether
/// it repeated a key).
type DecodedFile = (Vec<Diagnostic>, Vec<(decode::DecodedDocument, bool)>);

fn decode_file(file: &SourceFile) -> DecodedFile {
    let parsed = yaml::parse(&file.text);
    let mut diagnostics: Vec<Diagnostic> = parsed
        .errors
        .into_iter()
        .map(|error| {
            let location = SourceLocation {
                file: file.path.clone(),
                line: error.line,
                column: error.column,
            };
            Diagnostic::error(format!("invalid YAML: {}", error.message), location)
        })
        .collect();
    let mut excluding = vec![false; file.excluded.len()];
    let mut read = |root: &yaml::Node| {
        let mut excluded = false;
        for (rule, used) in file.excluded.iter().zip(&mut excluding) {
            if rule.matches(root) {
                *used = true;
                excluded = true;
            }
        }
        !excluded
    };
    let read: Vec<&yaml::Document> = parsed.documents.iter().filter(|d| read(&d.root)).collect();
    for (rule, used) in file.excluded.iter().zip(excluding) {
        if !used {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "`{}#{}` excludes nothing: {} declares no {}",
                        file.path,
                        rule.selector(),
                        file.path,
                        rule.selector()
                    ),
                    rule.rule.clone(),
                )
                .with_hint("correct the line to a document's `Kind/name` (or `Kind/namespace/name`), or remove it"),
            );
        }
    }
    let mut documents: Vec<(decode::DecodedDocument, bool)> = read
        .into_iter()
        .map(|document| {
            (
                decode::decode_document(&file.path, &document.root),
                document.has_duplicate_keys,
            )
        })
        .collect();
    // A template outside a Helm chart (a chart's directory is not read):
    // its first error (as shown, by place) says what the file is and the
    // way out.
    if file.text.contains("{{") {
        let mut first_error: Option<&mut Diagnostic> = None;
        let errors = documents
            .iter_mut()
            .flat_map(|(d, _)| d.diagnostics.iter_mut())
            .chain(diagnostics.iter_mut())
            .filter(|d| d.is_error());
        for error in errors {
            let place = |d: &Diagnostic| (d.location.line, d.location.column);
            if first_error
                .as_deref()
                .is_none_or(|first| place(error) < place(first))
            {
                first_error = Some(error);
            }
        }
        if let Some(error) = first_error {
            error.hint = Some(format!(
                "{} holds `{{{{ }}}}` template expressions: commit what renders it \
                 (`helm template NAME DIR > rendered.yaml`), or list it in .flotillaignore",
                file.path
            ));
        }
    }
    (diagnostics, documents)
}

/// Files are independent until the cross-object checks, so large sets are
/// parsed and decoded on a few threads (CPU only, no I/O); results keep the
/// order of `files`, so the outcome does not depend on the threads.
fn decode_files(files: &[SourceFile]) -> Vec<DecodedFile> {
    const FILES_PER_THREAD: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(files.len().div_ceil(FILES_PER_THREAD));
    if threads <= 1 {
        return files.iter().map(decode_file).collect();
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(decode_file).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(decoded) => decoded,
                // Decoding does not panic (a fuzz target checks); if it
                // ever did, fail like the single-threaded path would.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}
