//! Git: reading the desired state from a commit (or, on request, from a
//! working tree), creating the leader's bare repository with its hooks, and
//! the history side: rollout notes (written as `reconcile::record` renders them), the deploy history of a
//! branch (`revisions`) and rollback commits (`rollback`).
//!
//! Thin: this module finds and reads blobs; what they mean is `manifest`'s
//! business. The leader only ever reads commits, never a working tree.

mod age_identity;
mod branch;
mod history;
mod ignore_rules;
mod init;
mod policy;
mod revisions;
mod rollback;
mod runs;
mod signature;
mod work_tree;

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository};

use crate::manifest::model::SourceLocation;
use crate::manifest::{Diagnostic, SourceFile};
use ignore_rules::IgnoreRules;

pub use crate::reconcile::printable::{printable_line, printable_text};
pub use crate::reconcile::record::{ObjectOutcome, Outcome, RolloutRecord};
pub use crate::reconcile::run_record::RunRecord;
pub use age_identity::{record_age_identity, recorded_age_identity, AGE_IDENTITY};
pub use branch::{checked_out_branch, configured_branch, default_branch};
pub use history::{
    append_note, introducing_commit, is_leaders_own, notes_state, read_note, revert_on_branch,
    NotesState, RevertError, NOTES_REF, NOTES_REFSPEC,
};
pub use init::{init_bare, InitError, InitKind, InitOptions, Initialized, DEFAULT_BRANCH};
pub use policy::{operator_policy, ALLOW_LOCAL_TRANSPORT, HOST_PORTS, SHIP_IMAGES};
pub use revisions::{HistoryReader, RecordedRollout, Revision};
pub use rollback::{
    commit_in_work_tree, errors_after, object_ref, plan_rollback, plan_tree_rollback,
    write_to_branch, FileChange, PendingCommit, Rollback, RollbackError, TargetChoice,
};
pub use runs::{notes_tip, recorded_runs, runs_for_planning, runs_from};
pub use work_tree::working_tree_changes;

/// Manifests larger than this are refused: Kubernetes itself stores objects
/// of at most 1.5 MiB, so anything near this size is a mistake (or hostile).
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// The file, at the top of the tree, that lists paths to skip (gitignore syntax).
pub const IGNORE_FILE: &str = ".flotillaignore";

/// A note of rollout records larger than this is not read.
pub const MAX_NOTE_BYTES: usize = 8 * 1024 * 1024;

/// A `.flotillaignore` larger than this is refused.
pub const MAX_IGNORE_BYTES: usize = 1024 * 1024;

/// The `commit` of a snapshot read from a working tree.
pub const WORKING_TREE: &str = "working-tree";

/// The manifests of one revision.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The full SHA of the commit, or [`WORKING_TREE`].
    pub commit: String,
    /// Every `*.yaml` / `*.yml` (and kustomize `Kustomization`) file not
    /// ignored (by `.flotillaignore`, or as a dot-path or in a Helm chart),
    /// sorted by path, each with the documents `.flotillaignore` excludes.
    pub files: Vec<SourceFile>,
    /// What is not in `files`: symlinks, submodules, Helm charts and
    /// `.flotillaignore` lines that exclude no file read (warnings), files
    /// that are not UTF-8 or too large to read (errors).
    pub diagnostics: Vec<Diagnostic>,
}

impl Snapshot {
    /// A file could not be read: the revision is not valid whatever its
    /// other manifests say.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path}: not a git repository ({source})")]
    Open { path: PathBuf, source: git2::Error },
    #[error("revision `{rev}` not found in {repo}")]
    RevisionNotFound { rev: String, repo: PathBuf },
    #[error("revision `{rev}` is not a commit ({source})")]
    NotACommit { rev: String, source: git2::Error },
    #[error("{path}:{line}: invalid pattern in {file} ({message})", file = IGNORE_FILE)]
    IgnorePattern {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{file} is {size} bytes, more than the {max} allowed", file = IGNORE_FILE, max = MAX_IGNORE_BYTES)]
    IgnoreTooLarge { size: usize },
    #[error("the note of {commit} in {notes} is {size} bytes, more than the {max} read", notes = NOTES_REF, max = MAX_NOTE_BYTES)]
    NoteTooLarge { commit: String, size: usize },
    #[error("{repo}: reading the working tree needs a non-bare repository")]
    BareWorkingTree { repo: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{repo}: git config {setting}: {reason}")]
    Config {
        repo: PathBuf,
        setting: &'static str,
        reason: String,
    },
    #[error(
        "{variable}=`{value}`: not a date in git's format or ISO 8601 \
         (use `@<seconds> <+hhmm>` or `2026-11-24T01:02:03+01:00`)"
    )]
    Date { variable: String, value: String },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Opens the repository at `path` (a bare repository, or a work tree or any
/// directory inside one).
///
/// Inside a pre-receive hook the pushed objects are still in git's quarantine
/// directory, which git announces in `GIT_QUARANTINE_PATH`; libgit2 does not
/// read that variable, so it is added here as an alternate object database.
pub fn open(path: &Path) -> Result<Repository, RepoError> {
    let repo = Repository::discover(path).map_err(|source| RepoError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(quarantine) = std::env::var_os("GIT_QUARANTINE_PATH") {
        repo.odb()?
            .add_disk_alternate(&quarantine.to_string_lossy())?;
    }
    Ok(repo)
}

/// The full SHA of `rev` (a branch, tag, SHA, `HEAD~2`...).
pub fn resolve(repo: &Repository, rev: &str) -> Result<git2::Oid, RepoError> {
    let object = repo
        .revparse_single(rev)
        .map_err(|_| RepoError::RevisionNotFound {
            rev: rev.to_string(),
            repo: repo.path().to_path_buf(),
        })?;
    let commit = object
        .peel_to_commit()
        .map_err(|source| RepoError::NotACommit {
            rev: rev.to_string(),
            source,
        })?;
    Ok(commit.id())
}

/// Reads every manifest of the commit `rev` names.
pub fn read_revision(repo: &Repository, rev: &str) -> Result<Snapshot, RepoError> {
    let oid = resolve(repo, rev)?;
    let tree = repo.find_commit(oid)?.tree()?;
    let rules = tree_ignore_rules(repo, &tree)?;
    let (manifests, mut diagnostics) = manifest_entries_under(repo, &tree, &rules)?;
    let mut files = Vec::with_capacity(manifests.len());
    for (path, id) in manifests {
        match manifest_blob(repo, path, id)? {
            Ok(file) => files.push(file),
            Err(unreadable) => diagnostics.push(*unreadable),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    exclude_documents(&rules, &mut files, &mut diagnostics);
    Ok(Snapshot {
        commit: oid.to_string(),
        files,
        diagnostics,
    })
}

/// Gives each file the documents `rules` exclude from it, and warns of
/// each `path#Kind/name` line whose file is not read at all. (A line whose
/// file is read but declares no such document is `manifest::load`'s to
/// report: it reads the documents.)
fn exclude_documents(
    rules: &IgnoreRules,
    files: &mut [SourceFile],
    diagnostics: &mut Vec<Diagnostic>,
) {
    for file in files.iter_mut() {
        file.excluded = rules.excluded_documents(&file.path);
    }
    for (path, excluded) in rules.document_rules() {
        if files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .is_err()
        {
            diagnostics.push(
                Diagnostic::warning(
                    format!(
                        "`{path}#{}` excludes nothing: {path} is not a manifest flotilla reads",
                        excluded.selector()
                    ),
                    excluded.rule.clone(),
                )
                .with_hint(
                    "correct the path (relative to the repository's root), or remove the line",
                ),
            );
        }
    }
}

/// Path and blob of manifests, and what was not followed.
type ManifestEntries = (Vec<(String, git2::Oid)>, Vec<Diagnostic>);

/// The `.flotillaignore` of `tree` (none: nothing ignored). Only a regular
/// file counts: a symbolic link's blob is the link's target, not rules.
fn tree_ignore_rules(repo: &Repository, tree: &git2::Tree<'_>) -> Result<IgnoreRules, RepoError> {
    let Some(entry) = tree.get_name(IGNORE_FILE) else {
        return Ok(IgnoreRules::default());
    };
    if !matches!(entry.filemode(), 0o100644 | 0o100755) {
        return Ok(IgnoreRules::default());
    }
    match read_blob(repo, entry.id(), MAX_IGNORE_BYTES)? {
        Ok(blob) => IgnoreRules::parse(&String::from_utf8_lossy(blob.content())),
        Err(size) => Err(RepoError::IgnoreTooLarge { size }),
    }
}

/// The manifest blob `id` at `path` as text, or the error diagnostic saying
/// why it cannot be read (too large, not UTF-8).
pub(crate) fn manifest_blob(
    repo: &Repository,
    path: String,
    id: git2::Oid,
) -> Result<Result<SourceFile, Box<Diagnostic>>, RepoError> {
    Ok(match read_blob(repo, id, MAX_MANIFEST_BYTES)? {
        Ok(blob) => source_file(path, blob.content()),
        Err(size) => Err(too_large(path, size)),
    })
}

/// The blob `id`, or its size when that is over `limit`: the size is read
/// from the object's header, so a huge blob (a gigabyte of zeros compresses
/// to a megabyte) is refused without being inflated.
pub(crate) fn read_blob(
    repo: &Repository,
    id: git2::Oid,
    limit: usize,
) -> Result<Result<git2::Blob<'_>, usize>, RepoError> {
    let (size, _) = repo.odb()?.read_header(id)?;
    if size > limit {
        return Ok(Err(size));
    }
    Ok(Ok(repo.find_blob(id)?))
}

/// The path and blob of every manifest of `tree` (`*.yaml` / `*.yml`, not
/// ignored by `rules`, maybe another tree's `.flotillaignore`), sorted by
/// path, and what was not followed: links, submodules, Helm charts.
///
/// Walked with a stack of its own, not recursion (a pushed tree may nest
/// deeply), on the names' bytes: a name that is not UTF-8 is reported at the
/// path, never skipped, so a commit and a working tree agree.
fn manifest_entries_under(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    rules: &IgnoreRules,
) -> Result<ManifestEntries, RepoError> {
    let mut manifests = Vec::new();
    let mut diagnostics = Vec::new();
    let mut pending: Vec<(git2::Tree<'_>, Vec<u8>)> = vec![(tree.clone(), Vec::new())];
    while let Some((dir, prefix)) = pending.pop() {
        let chart = dir
            .get_name(HELM_CHART_FILE)
            .is_some_and(|e| e.kind() == Some(ObjectType::Blob));
        if chart {
            diagnostics.push(helm_chart(&display_path(&prefix)));
            continue;
        }
        for entry in dir.iter() {
            let mut path_bytes = prefix.clone();
            path_bytes.extend_from_slice(entry.name_bytes());
            let path = display_path(&path_bytes);
            let is_dir = entry.kind() == Some(ObjectType::Tree);
            if rules.is_ignored(&path, is_dir) {
                continue;
            }
            let utf8 = std::str::from_utf8(&path_bytes).is_ok();
            match entry.filemode() {
                0o040000 => {
                    let subtree = repo.find_tree(entry.id())?;
                    path_bytes.push(b'/');
                    pending.push((subtree, path_bytes));
                }
                0o120000 if is_manifest_path(&path) => {
                    diagnostics.push(not_followed(&path, "a symbolic link"));
                }
                0o160000 => diagnostics.push(not_followed(&path, "a submodule")),
                0o100644 | 0o100755 if is_manifest_path(&path) && !utf8 => {
                    diagnostics.push(*non_utf8_path(&path));
                }
                0o100644 | 0o100755 if is_manifest_path(&path) => {
                    manifests.push((path, entry.id()))
                }
                _ => {}
            }
        }
    }
    manifests.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((manifests, diagnostics))
}

/// Reads the manifests of the repository's working tree as they are on disk,
/// committed or not: for previews before committing. Files git ignores are
/// skipped as well as those in `.flotillaignore`.
///
/// Read as a commit is: symbolic links are not followed (not even
/// `.flotillaignore`), only regular files are opened (a FIFO or a device
/// named `*.yaml` is reported, never read), and no file is read past
/// [`MAX_MANIFEST_BYTES`].
pub fn read_working_tree(repo: &Repository) -> Result<Snapshot, RepoError> {
    let root = repo
        .workdir()
        .ok_or_else(|| RepoError::BareWorkingTree {
            repo: repo.path().to_path_buf(),
        })?
        .to_path_buf();
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let ignore_path = root.join(IGNORE_FILE);
    let rules = match read_regular_file(&ignore_path, MAX_IGNORE_BYTES) {
        Ok(Ok(bytes)) => IgnoreRules::parse(&String::from_utf8_lossy(&bytes))?,
        Ok(Err(Unreadable::TooLarge(size))) => return Err(RepoError::IgnoreTooLarge { size }),
        Ok(Err(Unreadable::NotAFile(what))) => {
            diagnostics.push(not_followed(IGNORE_FILE, what));
            IgnoreRules::default()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
        Err(source) => {
            return Err(RepoError::Io {
                path: ignore_path,
                source,
            })
        }
    };

    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let chart = std::fs::symlink_metadata(dir.join(HELM_CHART_FILE)).is_ok_and(|m| m.is_file());
        if chart {
            let relative = dir
                .strip_prefix(&root)
                .expect("walked paths are under the root");
            let mut prefix = relative.as_os_str().as_encoded_bytes().to_vec();
            if !prefix.is_empty() {
                prefix.push(b'/');
            }
            diagnostics.push(helm_chart(&display_path(&prefix)));
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|source| RepoError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| RepoError::Io {
                path: dir.clone(),
                source,
            })?;
            let full = entry.path();
            let relative_os = full
                .strip_prefix(&root)
                .expect("walked paths are under the root");
            let relative = display_path(relative_os.as_os_str().as_encoded_bytes());
            if relative == ".git" {
                continue;
            }
            let file_type = entry.file_type().map_err(|source| RepoError::Io {
                path: full.clone(),
                source,
            })?;
            let is_dir = file_type.is_dir();
            if rules.is_ignored(&relative, is_dir) || repo.is_path_ignored(relative_os)? {
                continue;
            }
            if is_dir {
                pending.push(full);
                continue;
            }
            if !is_manifest_path(&relative) {
                continue;
            }
            if relative_os.to_str().is_none() {
                diagnostics.push(*non_utf8_path(&relative));
                continue;
            }
            if file_type.is_symlink() {
                diagnostics.push(not_followed(&relative, "a symbolic link"));
                continue;
            }
            let read = match read_regular_file(&full, MAX_MANIFEST_BYTES) {
                Ok(Ok(bytes)) => source_file(relative, &bytes),
                Ok(Err(Unreadable::TooLarge(size))) => Err(too_large(relative, size)),
                Ok(Err(Unreadable::NotAFile(what))) => Err(Box::new(not_followed(&relative, what))),
                Err(source) => return Err(RepoError::Io { path: full, source }),
            };
            match read {
                Ok(file) => files.push(file),
                Err(unreadable) => diagnostics.push(*unreadable),
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    exclude_documents(&rules, &mut files, &mut diagnostics);
    Ok(Snapshot {
        commit: WORKING_TREE.to_string(),
        files,
        diagnostics,
    })
}

/// Why a file of the working tree was not read.
pub(crate) enum Unreadable {
    /// Its size, over the limit.
    TooLarge(usize),
    /// What it is instead of a regular file.
    NotAFile(&'static str),
}

/// The bytes of the regular file at `path`, read to at most `limit`: opened
/// without following a symbolic link and without blocking (a FIFO would
/// wait for a writer for ever), then checked to be a regular file on the
/// open handle, so nothing can swap it between the check and the read.
pub(crate) fn read_regular_file(
    path: &Path,
    limit: usize,
) -> std::io::Result<Result<Vec<u8>, Unreadable>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        // ELOOP: the last component is a symbolic link.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Ok(Err(Unreadable::NotAFile("a symbolic link")))
        }
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Ok(Err(Unreadable::NotAFile("not a regular file")));
    }
    let size = usize::try_from(metadata.len()).unwrap_or(usize::MAX);
    if size > limit {
        return Ok(Err(Unreadable::TooLarge(size)));
    }
    let mut bytes = Vec::with_capacity(size);
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Ok(Err(Unreadable::TooLarge(bytes.len())));
    }
    Ok(Ok(bytes))
}

/// A path for people: UTF-8 as it is, any other byte as `\xNN`.
pub(crate) fn display_path(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// `*.yaml`, `*.yml`, and kustomize's `Kustomization` (read to be named
/// in a warning: `manifest` tells kustomize's files apart).
fn is_manifest_path(path: &str) -> bool {
    path.ends_with(".yaml")
        || path.ends_with(".yml")
        || path.rsplit('/').next() == Some("Kustomization")
}

/// The file that makes a directory a Helm chart.
const HELM_CHART_FILE: &str = "Chart.yaml";

/// The warning for the Helm chart in the directory `prefix` (`charts/web/`,
/// or empty for the repository's root), which is not read.
fn helm_chart(prefix: &str) -> Diagnostic {
    let location = SourceLocation {
        file: format!("{prefix}{HELM_CHART_FILE}"),
        line: 1,
        column: 1,
    };
    let directory = match prefix.trim_end_matches('/') {
        "" => ".",
        directory => directory,
    };
    Diagnostic::warning(
        format!(
            "{directory} is a Helm chart: not read (flotilla reads plain manifests, not templates)"
        ),
        location,
    )
    .with_hint(format!(
        "render it (`helm template NAME {directory} > rendered.yaml`) and commit that; \
         to silence this warning, list {directory}/ in {IGNORE_FILE}"
    ))
}

fn too_large(path: String, size: usize) -> Box<Diagnostic> {
    let location = SourceLocation {
        file: path,
        line: 1,
        column: 1,
    };
    Box::new(
        Diagnostic::error(
            format!("manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed"),
            location,
        )
        .with_hint(format!(
            "split it into smaller files, or list it in {IGNORE_FILE} if it is not a manifest"
        )),
    )
}

fn non_utf8_path(path: &str) -> Box<Diagnostic> {
    let location = SourceLocation {
        file: path.to_string(),
        line: 1,
        column: 1,
    };
    Box::new(
        Diagnostic::error(
            "the file's path is not valid UTF-8; manifests' paths must be UTF-8",
            location,
        )
        .with_hint(format!(
            "rename it (`git mv`), or list it in {IGNORE_FILE} if it is not a manifest"
        )),
    )
}

/// The file as text, or the error diagnostic saying why it cannot be read
/// (too large, or not UTF-8 at the place of the first bad byte), so that
/// every other file is still validated.
fn source_file(path: String, content: &[u8]) -> Result<SourceFile, Box<Diagnostic>> {
    if content.len() > MAX_MANIFEST_BYTES {
        return Err(too_large(path, content.len()));
    }
    match String::from_utf8(content.to_vec()) {
        Ok(text) => Ok(SourceFile::new(path, text)),
        Err(error) => {
            let valid = &content[..error.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1;
            let location = SourceLocation {
                file: path,
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(column).unwrap_or(u32::MAX),
            };
            Err(Box::new(
                Diagnostic::error(
                    format!(
                        "not valid UTF-8 (byte 0x{:02x}); manifests must be UTF-8 text",
                        content[valid.len()]
                    ),
                    location,
                )
                .with_hint(format!(
                "re-save the file as UTF-8, or list it in {IGNORE_FILE} if it is not a manifest"
            )),
            ))
        }
    }
}

fn not_followed(path: &str, what: &str) -> Diagnostic {
    let location = SourceLocation {
        file: path.to_string(),
        line: 1,
        column: 1,
    };
    Diagnostic::warning(
        format!("{path} is {what}, which flotilla does not follow"),
        location,
    )
    .with_hint(format!(
        "commit the manifest itself, or list it in {IGNORE_FILE}"
    ))
}
