//! `flotilla volume delete NAMESPACE/CLAIM`: the commit that deletes a
//! claim's volume, and the data in it. Nothing else deletes one (a claim
//! removed from Git keeps its volume), so this is the way: the claim's
//! document gets the annotation `flotilla.dev/delete-volume: "true"`, every
//! other byte of the repository staying as it is; a claim no longer
//! declared is declared again, with the annotation, in a file of its own.
//! Once the commit is pushed, the leader deletes the volume on its node.
//!
//! The commit is written like `flotilla rollback`'s (`repo::PendingCommit`):
//! on the checked-out branch of a clone, to be pushed, or straight on the
//! branch of the leader's bare repository.

use std::path::PathBuf;

use clap::Args;

use super::history::{branch, branch_tip};
use super::rollback::{paint_diff, write_and_tell};
use super::validate::render_diagnostics;
use super::{exit, Output};
use crate::cluster::claim_volume_name;
use crate::manifest::documents::Documents;
use crate::manifest::model::{Kind, ObjectKey, DELETE_VOLUME_ANNOTATION};
use crate::manifest::names;
use crate::manifest::yaml::{self, Node, Value};
use crate::manifest::SourceFile;
use crate::repo::{self, printable_line, printable_text, FileChange, PendingCommit};

#[derive(Debug, Args)]
pub struct VolumeDeleteArgs {
    /// The claim: NAMESPACE/NAME, or NAME in namespace `default`.
    pub claim: String,
    /// The repository (bare or not; any directory inside a work tree).
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// The branch (default: `git config flotilla.branch`, else the branch
    /// HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// A paragraph added to the commit message: why.
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Print the change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Where the claim no longer declared is declared again.
const DELETED_VOLUMES_DIRECTORY: &str = "deleted-volumes";

pub(super) fn run(args: &VolumeDeleteArgs, out: &mut Output) -> anyhow::Result<u8> {
    let key = parse_claim(&args.claim).map_err(anyhow::Error::msg)?;
    let repository = repo::open(&args.repo)?;
    let branch = branch(&repository, args.branch.as_deref());
    let tip = branch_tip(&repository, &branch)?;
    let snapshot = repo::read_revision(&repository, &tip.to_string())?;
    let (namespace, name) = (&key.namespace, &key.name);

    let (change, how) = match snapshot
        .files
        .iter()
        .find_map(|file| Documents::of(file).find(&key).map(|index| (file, index)))
    {
        Some((file, index)) => {
            let mut documents = Documents::of(file);
            let body = documents.body(index);
            let edited = match annotated(body, &key) {
                Ok(edited) => edited,
                Err(Unannotatable::AlreadyThere) => {
                    out.line(format_args!(
                        "PersistentVolumeClaim {namespace}/{name} already has \
                         {DELETE_VOLUME_ANNOTATION}: \"true\" in {}: its volume is deleted once \
                         that is pushed",
                        printable_line(&file.path)
                    ))?;
                    return Ok(exit::OK);
                }
                Err(Unannotatable::Layout) => anyhow::bail!(
                    "{}: could not add the annotation to PersistentVolumeClaim {namespace}/{name} \
                     as written\nhint: add `{DELETE_VOLUME_ANNOTATION}: \"true\"` to its \
                     metadata.annotations by hand, and commit",
                    printable_line(&file.path)
                ),
            };
            documents.replace(index, &edited);
            let change = FileChange {
                path: file.path.clone(),
                before: Some(file.text.clone()),
                after: Some(documents.render()),
            };
            (change, format!("in {}", printable_line(&file.path)))
        }
        None => {
            let path = format!("{DELETED_VOLUMES_DIRECTORY}/{namespace}.{name}.yaml");
            if repository
                .find_commit(tip)?
                .tree()?
                .get_path(std::path::Path::new(&path))
                .is_ok()
            {
                anyhow::bail!(
                    "{path} exists but does not declare PersistentVolumeClaim {namespace}/{name} \
                     (is it in .flotillaignore?)\nhint: fix or remove it, and run this again"
                );
            }
            let change = FileChange {
                path: path.clone(),
                before: None,
                after: Some(deleted_claim(&key)),
            };
            (
                change,
                format!("in a new file {path} (it is no longer declared)"),
            )
        }
    };

    let changes = [change];
    let errors = repo::errors_after(&repository, tip, &snapshot, &changes)?;
    if !errors.is_empty() {
        render_diagnostics(&errors, out)?;
        anyhow::bail!(
            "deleting the volume of PersistentVolumeClaim {namespace}/{name} would leave {branch} \
             invalid: fix the errors above (first remove the claim from the pods that use it)"
        );
    }

    let volume = claim_volume_name(namespace, name);
    let message = commit_message(&key, &volume, &changes[0], args.message.as_deref());
    out.line(format_args!(
        "Marking PersistentVolumeClaim {namespace}/{name} with {DELETE_VOLUME_ANNOTATION}: \
         \"true\" {how}: once pushed, the leader deletes its volume {volume} and the data in it.\n"
    ))?;
    let pending = PendingCommit {
        branch: &branch,
        tip,
        changes: &changes,
        message: &message,
        action: format!("volume delete {namespace}/{name}"),
    };
    if args.dry_run {
        out.text(paint_diff(&printable_text(&pending.diff()), out))?;
        out.line("\ndry run: nothing written")?;
        return Ok(exit::OK);
    }
    write_and_tell(&repository, &pending, out)?;
    Ok(exit::OK)
}

/// `NAMESPACE/NAME` or `NAME` (namespace `default`), each checked as
/// Kubernetes names them.
fn parse_claim(text: &str) -> Result<ObjectKey, String> {
    let (namespace, name) = match text.split_once('/') {
        Some((namespace, name)) => (namespace, name),
        None => ("default", text),
    };
    names::dns1123_label(namespace).map_err(|reason| {
        format!(
            "`{text}`: invalid namespace `{namespace}`: {reason} (write NAMESPACE/CLAIM or CLAIM)"
        )
    })?;
    names::dns1123_subdomain(name).map_err(|reason| {
        format!("`{text}`: invalid claim name `{name}`: {reason} (write NAMESPACE/CLAIM or CLAIM)")
    })?;
    Ok(ObjectKey {
        kind: Kind::PersistentVolumeClaim,
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

fn commit_message(key: &ObjectKey, volume: &str, change: &FileChange, why: Option<&str>) -> String {
    let (namespace, name) = (&key.namespace, &key.name);
    let mut text = format!(
        "Delete the volume of PersistentVolumeClaim {namespace}/{name}\n\n\
         Annotates the claim {DELETE_VOLUME_ANNOTATION}: \"true\": once this is deployed, the\n\
         leader deletes its Docker volume {volume} on the claim's node, and the data\n\
         in it is lost.\n"
    );
    if change.before.is_none() {
        text.push_str(&format!(
            "The claim was no longer declared; {} declares it again for that.\n",
            change.path
        ));
    }
    if let Some(extra) = why.map(str::trim).filter(|m| !m.is_empty()) {
        text.push('\n');
        text.push_str(extra);
        text.push('\n');
    }
    text
}

/// A claim no longer declared, declared again to have its volume deleted.
/// Its size and access mode are Kubernetes-valid placeholders: the volume
/// exists already, and no pod may use a claim being deleted.
fn deleted_claim(key: &ObjectKey) -> String {
    format!(
        "# Declared by `flotilla volume delete` so that its volume is deleted.\n\
         # Remove this file once the volume is gone.\n\
         apiVersion: v1\n\
         kind: PersistentVolumeClaim\n\
         metadata:\n  name: {}\n  namespace: {}\n  annotations:\n    {DELETE_VOLUME_ANNOTATION}: \"true\"\n\
         spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n",
        key.name, key.namespace
    )
}

/// Why the annotation could not be added to a document.
#[derive(Debug, PartialEq, Eq)]
enum Unannotatable {
    /// It is there already, `"true"`.
    AlreadyThere,
    /// The document is not written in a form the edit knows (its metadata
    /// not a mapping, the annotation's line shared with others).
    Layout,
}

/// `body`, the document declaring `key`, with the delete-volume annotation
/// added to its `metadata.annotations` (or set to `"true"` there), every
/// other line as it is. The result is checked to declare the same claim
/// with the annotation; anything else is [`Unannotatable::Layout`].
fn annotated(body: &str, key: &ObjectKey) -> Result<String, Unannotatable> {
    let parsed = yaml::parse(body);
    let root = parsed
        .documents
        .first()
        .map(|d| &d.root)
        .ok_or(Unannotatable::Layout)?;
    let (metadata_key, metadata) = entry(root, "metadata").ok_or(Unannotatable::Layout)?;
    let quoted = "\"true\"";
    let annotation = format!("{DELETE_VOLUME_ANNOTATION}: {quoted}");
    let mut lines: Vec<String> = body.split_inclusive('\n').map(str::to_string).collect();
    match entry(metadata, "annotations") {
        Some((annotations_key, annotations)) => {
            if let Some((_, value)) = entry(annotations, DELETE_VOLUME_ANNOTATION) {
                if value.as_scalar().is_some_and(|s| s.text == "true") {
                    return Err(Unannotatable::AlreadyThere);
                }
                // Replace the value alone: from its column to the end of
                // its line (a multi-line value is not edited).
                let line = line_mut(&mut lines, value.line)?;
                let at = byte_at(line, value.column)?;
                let end = line.trim_end_matches(['\n', '\r']).len();
                if at > end {
                    return Err(Unannotatable::Layout);
                }
                line.replace_range(at..end, quoted);
            } else if is_flow(&lines, annotations) {
                insert_in_flow(&mut lines, annotations, &annotation)?;
            } else if annotations.is_null() {
                // `annotations:` with nothing after it.
                let indent = " ".repeat(annotations_key.column as usize + 1);
                lines.insert(
                    annotations_key.line as usize,
                    format!("{indent}{annotation}\n"),
                );
            } else {
                let first = first_key(annotations).ok_or(Unannotatable::Layout)?;
                let indent = " ".repeat(first.column as usize - 1);
                lines.insert(first.line as usize - 1, format!("{indent}{annotation}\n"));
            }
        }
        None if is_flow(&lines, metadata) => {
            insert_in_flow(
                &mut lines,
                metadata,
                &format!("annotations: {{{annotation}}}"),
            )?;
        }
        None => {
            let first = first_key(metadata).ok_or(Unannotatable::Layout)?;
            if first.line <= metadata_key.line {
                return Err(Unannotatable::Layout);
            }
            let indent = " ".repeat(first.column as usize - 1);
            // After `name: ...` when it is one line, else first.
            let after = match entry(metadata, "name") {
                Some((name_key, name)) if name.line == name_key.line => name_key.line as usize,
                _ => first.line as usize - 1,
            };
            lines.insert(
                after,
                format!("{indent}annotations:\n{indent}  {annotation}\n"),
            );
        }
    }
    let edited: String = lines.concat();
    // The edit must declare the same claim, now with the annotation, and
    // leave every other document of the file alone (it is one document).
    let loaded = crate::manifest::load(&[SourceFile::new("edited.yaml", edited.clone())]);
    let unchanged = crate::manifest::load(&[SourceFile::new("body.yaml", body.to_string())]);
    let claim = loaded.state.claim(&key.namespace, &key.name);
    let declared_the_same = match (claim, unchanged.state.claim(&key.namespace, &key.name)) {
        (Some(claim), Some(before)) => {
            let mut annotations = claim.meta.annotations.clone();
            annotations.remove(DELETE_VOLUME_ANNOTATION);
            let mut before_annotations = before.meta.annotations.clone();
            before_annotations.remove(DELETE_VOLUME_ANNOTATION);
            claim.storage == before.storage
                && claim.access_modes == before.access_modes
                && claim.meta.labels == before.meta.labels
                && annotations == before_annotations
        }
        // A claim declared with errors: the branch's own check reports them.
        (Some(_), None) => true,
        (None, _) => false,
    };
    if claim.is_some_and(|c| c.delete_volume) && declared_the_same {
        Ok(edited)
    } else {
        Err(Unannotatable::Layout)
    }
}

/// The key and value of `name` in the mapping `node`.
fn entry<'n>(node: &'n Node, name: &str) -> Option<(&'n Node, &'n Node)> {
    match &node.value {
        Value::Mapping(entries) => entries
            .iter()
            .find(|e| e.key.as_scalar().is_some_and(|k| k.text == name))
            .map(|e| (&e.key, &e.value)),
        _ => None,
    }
}

fn first_key(node: &Node) -> Option<&Node> {
    match &node.value {
        Value::Mapping(entries) => entries.first().map(|e| &e.key),
        _ => None,
    }
}

fn line_mut(lines: &mut [String], line: u32) -> Result<&mut String, Unannotatable> {
    lines
        .get_mut((line as usize).wrapping_sub(1))
        .ok_or(Unannotatable::Layout)
}

/// The byte offset of the 1-based character `column` of `line`.
fn byte_at(line: &str, column: u32) -> Result<usize, Unannotatable> {
    line.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(line.len()))
        .nth(column as usize - 1)
        .ok_or(Unannotatable::Layout)
}

/// Whether the mapping `node` is written `{...}`. The parser places a
/// mapping at its first key, or, empty, at its `{`.
fn is_flow(lines: &[String], node: &Node) -> bool {
    let Some(line) = lines.get((node.line as usize).wrapping_sub(1)) else {
        return false;
    };
    let Ok(at) = byte_at(line, node.column) else {
        return false;
    };
    match &node.value {
        Value::Mapping(entries) if entries.is_empty() => line[at..].starts_with('{'),
        Value::Mapping(_) => line[..at].trim_end().ends_with('{'),
        _ => false,
    }
}

/// Puts `entry` first in the flow mapping `node`: before its first key, or
/// inside its `{}`.
fn insert_in_flow(lines: &mut [String], node: &Node, entry: &str) -> Result<(), Unannotatable> {
    let empty = matches!(&node.value, Value::Mapping(entries) if entries.is_empty());
    let line = line_mut(lines, node.line)?;
    let at = byte_at(line, node.column)?;
    if empty {
        line.insert_str(at + 1, entry);
    } else {
        line.insert_str(at, &format!("{entry}, "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectKey {
        ObjectKey {
            kind: Kind::PersistentVolumeClaim,
            namespace: "default".into(),
            name: "data".into(),
        }
    }

    const SPEC: &str =
        "spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 5Gi\n";

    /// `check(metadata, expected)`: the document with `metadata` lines,
    /// annotated; `expected` is the metadata lines after.
    fn check(metadata: &str, expected: Result<&str, Unannotatable>) {
        let body = format!("apiVersion: v1\nkind: PersistentVolumeClaim\n{metadata}{SPEC}");
        let actual = annotated(&body, &key());
        let expected =
            expected.map(|m| format!("apiVersion: v1\nkind: PersistentVolumeClaim\n{m}{SPEC}"));
        assert_eq!(actual, expected, "{metadata}");
    }

    #[test]
    fn the_annotation_is_added_where_it_belongs() {
        check(
            "metadata:\n  name: data\n",
            Ok("metadata:\n  name: data\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n"),
        );
        check(
            "metadata:\n    labels: {app: db}\n    name: data # the database\n",
            Ok("metadata:\n    labels: {app: db}\n    name: data # the database\n    annotations:\n      flotilla.dev/delete-volume: \"true\"\n"),
        );
        check(
            "metadata:\n  name: data\n  annotations:\n    owner: team-a\n",
            Ok("metadata:\n  name: data\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n    owner: team-a\n"),
        );
        check(
            "metadata:\n  name: data\n  annotations:\n",
            Ok("metadata:\n  name: data\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n"),
        );
        check(
            "metadata:\n  name: data\n  annotations: {owner: team-a}\n",
            Ok("metadata:\n  name: data\n  annotations: {flotilla.dev/delete-volume: \"true\", owner: team-a}\n"),
        );
        check(
            "metadata:\n  name: data\n  annotations: {}\n",
            Ok("metadata:\n  name: data\n  annotations: {flotilla.dev/delete-volume: \"true\"}\n"),
        );
        check(
            "metadata: {name: data}\n",
            Ok("metadata: {annotations: {flotilla.dev/delete-volume: \"true\"}, name: data}\n"),
        );
        check(
            "metadata:\n  name: data\n  annotations:\n    flotilla.dev/delete-volume: \"false\" # kept\n",
            Ok("metadata:\n  name: data\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n"),
        );
        check(
            "metadata:\n  name: data\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n",
            Err(Unannotatable::AlreadyThere),
        );
    }

    #[test]
    fn claims_are_named_as_kubectl_names_them() {
        assert_eq!(
            parse_claim("data").unwrap().to_string(),
            "PersistentVolumeClaim default/data"
        );
        assert_eq!(
            parse_claim("shop/data").unwrap().to_string(),
            "PersistentVolumeClaim shop/data"
        );
        assert_eq!(
            parse_claim("Shop/data").unwrap_err(),
            "`Shop/data`: invalid namespace `Shop`: must consist of lowercase letters, digits and `-`, and start and end with a letter or digit (write NAMESPACE/CLAIM or CLAIM)"
        );
        assert!(parse_claim("shop/").is_err());
        assert!(parse_claim("a/b/c").is_err());
    }

    #[test]
    fn a_claim_no_longer_declared_is_declared_again_to_be_deleted() {
        let key = ObjectKey {
            namespace: "shop".into(),
            ..key()
        };
        let loaded = crate::manifest::load(&[SourceFile::new("d.yaml", deleted_claim(&key))]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert!(loaded.state.claim("shop", "data").unwrap().delete_volume);
    }
}
