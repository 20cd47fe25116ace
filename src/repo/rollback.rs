//! `flotilla rollback`: a commit that puts one object's manifest back as it
//! was at an earlier revision, exactly what a user's `git revert` + `git
//! push` would do, and nothing else: every other document and file stays
//! byte-for-byte as it is. Or, without an object, a commit that puts every
//! manifest back (the whole desired state): the same as `git revert` of
//! every commit since, except that files flotilla does not read (a README)
//! stay as they are.
//!
//! [`plan_rollback`] (one object) and [`plan_tree_rollback`] (everything)
//! choose the revision and compute the file changes (and refuse a result
//! that would not load); [`write_to_branch`] commits it
//! without a working tree (the leader's bare repository: the leader deploys
//! it), [`commit_in_work_tree`] on the checked-out branch of a clone, whose
//! files and index follow.

use std::path::{Component, Path, PathBuf};

use git2::{IndexEntry, IndexTime, Oid, Repository};

use super::ignore_rules::IgnoreRules;
use super::revisions::HistoryReader;
use super::{read_revision, resolve, RepoError};
use crate::manifest::documents::Documents;
use crate::manifest::model::ObjectKey;
use crate::manifest::{Diagnostic, SourceFile};

/// A rollback, computed and checked, not written yet: a set of file
/// changes on top of the branch's tip.
#[derive(Clone, Debug)]
pub struct Rollback {
    /// The object restored; `None` when every manifest is.
    pub object: Option<ObjectKey>,
    pub branch: String,
    /// The branch's tip the rollback was computed on (and will be a child of).
    pub tip: Oid,
    /// The commit whose version of the object is restored.
    pub target: Oid,
    pub target_subject: String,
    pub choice: TargetChoice,
    /// Whether the object exists at the target (if not, it is removed).
    /// Always true when every manifest is restored.
    pub present_at_target: bool,
    /// Every file that changes, sorted by path.
    pub changes: Vec<FileChange>,
    pub message: String,
}

/// How the target revision was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetChoice {
    /// The latest earlier version (of the object, or of the manifests)
    /// whose rollout a note records as succeeded.
    LastSuccessfulRollout,
    /// No note records the object (or any rollout): the version before the
    /// current one.
    PreviousVersion,
    /// Named with `--to`.
    Chosen,
}

/// One file of the rollback: `None` when absent (added or deleted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("branch {branch} not found")]
    NoBranch { branch: String },
    #[error("{object} is not declared on {branch}, now or before{}", did_you_mean(.suggestion))]
    UnknownObject {
        object: String,
        branch: String,
        suggestion: Option<String>,
    },
    #[error("{object} has no earlier revision on {branch}")]
    NoEarlierRevision { object: String, branch: String },
    #[error(
        "no earlier revision of {object} on {branch} was rolled out successfully; \
         choose one with --to (see `flotilla history {object}`)"
    )]
    NoSuccessfulRevision { object: String, branch: String },
    #[error(
        "no earlier commit on {branch} was rolled out successfully; \
         choose one with --to (see `flotilla history`)"
    )]
    NoSuccessfulDeploy { branch: String },
    #[error(
        "the rollout records ({notes}) were not fetched into this repository, so which \
         revision of {object} rolled out successfully is unknown: refusing to choose one",
        notes = super::NOTES_REF
    )]
    NotesMissing {
        object: String,
        /// The remotes the records could be fetched from.
        remotes: Vec<String>,
    },
    #[error("{object} is already at that revision")]
    AlreadyThere { object: String },
    #[error(
        "nothing to roll back: the manifests on {branch} are already as they were at {target}"
    )]
    NothingToRollBack { branch: String, target: String },
    #[error("rolling back {object} would leave {branch} invalid ({} error{})", .diagnostics.len(), if .diagnostics.len() == 1 { "" } else { "s" })]
    Invalid {
        object: String,
        branch: String,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{paths}: uncommitted changes; commit or stash them first")]
    Dirty { paths: String },
    #[error("{path}: not a path inside the repository; refusing to write it")]
    OutsidePath { path: String },
    #[error(
        "{path}: {what} in the working tree where the commit writes {file}; \
         refusing to write through it (commit or remove it first)"
    )]
    InTheWay {
        path: String,
        what: &'static str,
        file: String,
    },
    #[error("{branch} moved while the commit was written (now {now}); try again")]
    BranchMoved { branch: String, now: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s}?)"),
        None => String::new(),
    }
}

/// `deployment/web`, `deployment/staging/web` outside the default
/// namespace, `node/n1`: how commands and commit subjects name an object.
pub fn object_ref(key: &ObjectKey) -> String {
    let kind = key.kind.as_str().to_ascii_lowercase();
    if key.namespace.is_empty() || key.namespace == "default" {
        format!("{kind}/{}", key.name)
    } else {
        format!("{kind}/{}/{}", key.namespace, key.name)
    }
}

/// The first 12 hex digits of a commit.
fn short(commit: Oid) -> String {
    commit.to_string()[..12].to_string()
}

/// Refuses to choose a revision of `what` from records that were never
/// fetched: "no rollout recorded" would bring back a revision that failed.
fn refuse_without_notes(repo: &Repository, what: &str) -> Result<(), RollbackError> {
    match super::notes_state(repo)? {
        super::NotesState::Missing { remotes } => Err(RollbackError::NotesMissing {
            object: what.to_string(),
            remotes,
        }),
        _ => Ok(()),
    }
}

/// Chooses the revision of `object` to restore on `branch` (the one `to`
/// names, or the latest earlier one rolled out successfully) and computes
/// the commit that restores it, checked to load. Writes nothing.
pub fn plan_rollback(
    repo: &Repository,
    branch: &str,
    object: &ObjectKey,
    to: Option<&str>,
    message: Option<&str>,
) -> Result<Rollback, RollbackError> {
    let name = object_ref(object);
    let tip = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .map_err(|_| RollbackError::NoBranch {
            branch: branch.to_string(),
        })?;
    let mut reader = HistoryReader::new(repo);
    let revisions = reader.revisions(tip, Some(object), None)?;
    let Some(latest) = revisions.first() else {
        let suggestion = reader.closest_object(tip, object)?;
        return Err(RollbackError::UnknownObject {
            object: name,
            branch: branch.to_string(),
            suggestion: suggestion.as_ref().map(object_ref),
        });
    };
    let current = latest.fingerprint;
    if to.is_none() {
        refuse_without_notes(repo, &name)?;
    }

    let (target, target_subject, choice) = match to {
        Some(rev) => {
            let target = resolve(repo, rev)?;
            let version = reader.fingerprint(target, object)?;
            if version == current {
                return Err(RollbackError::AlreadyThere { object: name });
            }
            let subject = repo
                .find_commit(target)?
                .summary()
                .unwrap_or("")
                .to_string();
            (target, subject, TargetChoice::Chosen)
        }
        None if revisions.iter().any(|r| r.rollout.is_some()) => {
            let found = revisions[1..]
                .iter()
                .find(|r| r.ever_succeeded && r.present() && r.fingerprint != current)
                .ok_or_else(|| RollbackError::NoSuccessfulRevision {
                    object: name.clone(),
                    branch: branch.to_string(),
                })?;
            (
                found.commit,
                found.subject.clone(),
                TargetChoice::LastSuccessfulRollout,
            )
        }
        None => {
            // A version that never loaded was never deployed: not a target.
            let found = revisions[1..]
                .iter()
                .find(|r| r.fingerprint != current && r.fingerprint.is_none_or(|f| f.is_valid()));
            match found {
                Some(found) => (
                    found.commit,
                    found.subject.clone(),
                    TargetChoice::PreviousVersion,
                ),
                None => {
                    // Before its first change the object did not exist.
                    let first = revisions.last().expect("not empty").commit;
                    let parent = repo.find_commit(first)?.parent(0).ok();
                    match parent {
                        Some(parent) if current.is_some() => (
                            parent.id(),
                            parent.summary().unwrap_or("").to_string(),
                            TargetChoice::PreviousVersion,
                        ),
                        _ => {
                            return Err(RollbackError::NoEarlierRevision {
                                object: name,
                                branch: branch.to_string(),
                            })
                        }
                    }
                }
            }
        }
    };

    let tip_snapshot = read_revision(repo, &tip.to_string())?;
    let target_files = read_revision(repo, &target.to_string())?.files;
    let restored = find_document(&target_files, object);
    let changes = restore(&tip_snapshot.files, object, restored.as_ref());
    if changes.iter().all(|c| c.before == c.after) {
        return Err(RollbackError::AlreadyThere { object: name });
    }

    let errors = errors_after(repo, tip, &tip_snapshot, &changes)?;
    if !errors.is_empty() {
        return Err(RollbackError::Invalid {
            object: name,
            branch: branch.to_string(),
            diagnostics: errors,
        });
    }

    let mut text = format!(
        "Rollback {name} to {short}\n\nRestores {object} as of {short} (\"{target_subject}\").\n",
        short = short(target)
    );
    if restored.is_none() {
        text.push_str("It was not declared then, so this removes it.\n");
    }
    if let Some(extra) = message.map(str::trim).filter(|m| !m.is_empty()) {
        text.push('\n');
        text.push_str(extra);
        text.push('\n');
    }
    Ok(Rollback {
        object: Some(object.clone()),
        branch: branch.to_string(),
        tip,
        target,
        target_subject,
        choice,
        present_at_target: restored.is_some(),
        changes,
        message: text,
    })
}

/// Chooses the commit whose manifests to restore on `branch` (the one `to`
/// names, or the latest earlier one rolled out successfully and declaring
/// something else than the tip; without notes, the latest earlier version
/// that loads) and computes the commit that restores every manifest as it
/// was there, checked to load. Writes nothing.
///
/// The manifests are the files [`super::read_revision`] reads: after the
/// rollback the branch reads exactly as the target does. `.flotillaignore`
/// is restored with them (it decides what is read); a manifest added since
/// is removed; any other file stays as it is on the tip.
pub fn plan_tree_rollback(
    repo: &Repository,
    branch: &str,
    to: Option<&str>,
    message: Option<&str>,
) -> Result<Rollback, RollbackError> {
    let tip = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .map_err(|_| RollbackError::NoBranch {
            branch: branch.to_string(),
        })?;
    let mut reader = HistoryReader::new(repo);
    let (target, target_subject, choice) = match to {
        Some(rev) => {
            let target = resolve(repo, rev)?;
            let subject = repo
                .find_commit(target)?
                .summary()
                .unwrap_or("")
                .to_string();
            (target, subject, TargetChoice::Chosen)
        }
        None => {
            refuse_without_notes(repo, "the desired state")?;
            let revisions = reader.revisions(tip, None, None)?;
            let earlier = revisions.get(1..).unwrap_or(&[]);
            let mut found = None;
            if revisions.iter().any(|r| r.rollout.is_some()) {
                for revision in earlier {
                    if revision.ever_succeeded
                        && revision.valid
                        && !reader.same_manifests(revision.commit, tip)?
                    {
                        found = Some(revision);
                        break;
                    }
                }
                let found = found.ok_or_else(|| RollbackError::NoSuccessfulDeploy {
                    branch: branch.to_string(),
                })?;
                (
                    found.commit,
                    found.subject.clone(),
                    TargetChoice::LastSuccessfulRollout,
                )
            } else {
                // A version that never loaded was never deployed: not a target.
                for revision in earlier {
                    if revision.valid && !reader.same_manifests(revision.commit, tip)? {
                        found = Some(revision);
                        break;
                    }
                }
                match found {
                    Some(found) => (
                        found.commit,
                        found.subject.clone(),
                        TargetChoice::PreviousVersion,
                    ),
                    None => {
                        // Before the first manifest, nothing was declared.
                        let parent = match revisions.last() {
                            Some(first) => repo.find_commit(first.commit)?.parent(0).ok(),
                            None => None,
                        };
                        let parent = parent.ok_or_else(|| RollbackError::NoEarlierRevision {
                            object: "the desired state".to_string(),
                            branch: branch.to_string(),
                        })?;
                        (
                            parent.id(),
                            parent.summary().unwrap_or("").to_string(),
                            TargetChoice::PreviousVersion,
                        )
                    }
                }
            }
        }
    };

    let target_snapshot = read_revision(repo, &target.to_string())?;
    let tip_tree = repo.find_commit(tip)?.tree()?;
    let target_tree = repo.find_commit(target)?.tree()?;
    let changes = restore_tree(repo, &tip_tree, &target_tree, &target_snapshot.files)?;
    // The same manifests read, whatever else differs (a comment in
    // `.flotillaignore`): the desired state is already the target's.
    if changes.is_empty() || reader.same_manifests(target, tip)? {
        return Err(RollbackError::NothingToRollBack {
            branch: branch.to_string(),
            target: short(target),
        });
    }

    // The new commit reads as the target does: its files, and the files
    // that could not be read there (not UTF-8, too large).
    let loaded = crate::manifest::load(&target_snapshot.files);
    if loaded.has_errors() || target_snapshot.has_errors() {
        return Err(RollbackError::Invalid {
            object: format!("{branch} to {}", short(target)),
            branch: branch.to_string(),
            diagnostics: target_snapshot
                .diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .chain(loaded.diagnostics.into_iter().filter(Diagnostic::is_error))
                .collect(),
        });
    }

    let mut text = format!(
        "Rollback to {short}\n\nRestores every manifest as of {short} (\"{target_subject}\"), \
         undoing the changes to them since.\n",
        short = short(target)
    );
    let removed: Vec<&str> = changes
        .iter()
        .filter(|c| c.after.is_none())
        .map(|c| c.path.as_str())
        .collect();
    if !removed.is_empty() {
        text.push_str(&format!(
            "Removes {}: not there then.\n",
            removed.join(", ")
        ));
    }
    if let Some(extra) = message.map(str::trim).filter(|m| !m.is_empty()) {
        text.push('\n');
        text.push_str(extra);
        text.push('\n');
    }
    Ok(Rollback {
        object: None,
        branch: branch.to_string(),
        tip,
        target,
        target_subject,
        choice,
        present_at_target: true,
        changes,
        message: text,
    })
}

/// The file changes that make the manifests of `tip` those of `target`
/// (`target_files`, as read): `.flotillaignore` as it was there, every
/// manifest of the target written back, and every file of the tip that the
/// target's rules would read and the target has not, removed. Sorted by
/// path; empty when nothing differs.
fn restore_tree(
    repo: &Repository,
    tip: &git2::Tree<'_>,
    target: &git2::Tree<'_>,
    target_files: &[SourceFile],
) -> Result<Vec<FileChange>, RollbackError> {
    // A tip blob's text, or `None` when the path is not a file there.
    let tip_text = |path: &str| -> Result<Option<String>, RollbackError> {
        match tip.get_path(Path::new(path)) {
            Ok(entry) if matches!(entry.filemode(), 0o100644 | 0o100755) => {
                let blob = repo.find_blob(entry.id())?;
                Ok(Some(String::from_utf8_lossy(blob.content()).into_owned()))
            }
            _ => Ok(None),
        }
    };
    let mut changes = Vec::new();

    let ignore_blob = |tree: &git2::Tree<'_>| {
        tree.get_path(Path::new(super::IGNORE_FILE))
            .ok()
            .filter(|e| matches!(e.filemode(), 0o100644 | 0o100755))
            .map(|e| e.id())
    };
    let (tip_ignore, target_ignore) = (ignore_blob(tip), ignore_blob(target));
    if tip_ignore != target_ignore {
        let after = match target_ignore {
            Some(id) => Some(String::from_utf8_lossy(repo.find_blob(id)?.content()).into_owned()),
            None => None,
        };
        changes.push(FileChange {
            path: super::IGNORE_FILE.to_string(),
            before: tip_text(super::IGNORE_FILE)?,
            after,
        });
    }

    for file in target_files {
        let before = tip_text(&file.path)?;
        if before.as_deref() != Some(file.text.as_str()) {
            changes.push(FileChange {
                path: file.path.clone(),
                before,
                after: Some(file.text.clone()),
            });
        }
    }

    let rules = super::tree_ignore_rules(repo, target)?;
    let (tip_manifests, _) = super::manifest_entries_under(repo, tip, &rules)?;
    for (path, _) in tip_manifests {
        if !target_files.iter().any(|f| f.path == path) {
            changes.push(FileChange {
                before: tip_text(&path)?,
                path,
                after: None,
            });
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(changes)
}

/// A commit of file changes on top of a branch's tip, computed and
/// checked, not written yet: a rollback's, or `flotilla volume delete`'s.
#[derive(Clone, Debug)]
pub struct PendingCommit<'a> {
    pub branch: &'a str,
    /// The tip the changes were computed on (and the commit's parent).
    pub tip: Oid,
    pub changes: &'a [FileChange],
    pub message: &'a str,
    /// What the branch's reflog says of it: `rollback deployment/web`.
    pub action: String,
}

impl Rollback {
    /// The commit that writes the rollback.
    pub fn pending(&self) -> PendingCommit<'_> {
        PendingCommit {
            branch: &self.branch,
            tip: self.tip,
            changes: &self.changes,
            message: &self.message,
            action: format!("rollback {}", self.what()),
        }
    }

    /// What is rolled back: `deployment/web`, or `everything`.
    pub fn what(&self) -> String {
        match &self.object {
            Some(object) => object_ref(object),
            None => "everything".to_string(),
        }
    }

    /// A unified diff of the files the rollback changes.
    pub fn diff(&self) -> String {
        self.pending().diff()
    }
}

impl PendingCommit<'_> {
    /// A unified diff of the files the commit changes.
    pub fn diff(&self) -> String {
        let side = |pick: fn(&FileChange) -> &Option<String>| -> Vec<SourceFile> {
            self.changes
                .iter()
                .filter_map(|c| {
                    pick(c).as_ref().map(|text| SourceFile {
                        path: c.path.clone(),
                        text: text.clone(),
                        excluded: Vec::new(),
                    })
                })
                .collect()
        };
        crate::plan::manifest_diff(&side(|c| &c.before), &side(|c| &c.after))
    }
}

/// The object's document in a revision: its file, its text, and the
/// objects declared before it in that file (to put it back among them).
struct Located {
    path: String,
    body: String,
    preceding: Vec<ObjectKey>,
}

fn find_document(files: &[SourceFile], object: &ObjectKey) -> Option<Located> {
    files.iter().find_map(|file| {
        let documents = Documents::of(file);
        let index = documents.find(object)?;
        let preceding = documents
            .keys()
            .take_while(|k| *k != object)
            .cloned()
            .collect();
        Some(Located {
            path: file.path.clone(),
            body: documents.body(index).to_string(),
            preceding,
        })
    })
}

/// The file changes that make `object` in `tip_files` what `restored` says:
/// its document replaced where it is now, put back in the file it was in,
/// or removed (deleting a file left without documents).
fn restore(
    tip_files: &[SourceFile],
    object: &ObjectKey,
    restored: Option<&Located>,
) -> Vec<FileChange> {
    let current = tip_files.iter().find_map(|file| {
        let documents = Documents::of(file);
        documents.find(object).map(|index| (file, documents, index))
    });
    let change = match (current, restored) {
        (Some((file, mut documents, index)), Some(restored)) => {
            documents.replace(index, &restored.body);
            FileChange {
                path: file.path.clone(),
                before: Some(file.text.clone()),
                after: Some(documents.render()),
            }
        }
        (Some((file, mut documents, index)), None) => {
            documents.remove(index);
            FileChange {
                path: file.path.clone(),
                before: Some(file.text.clone()),
                after: (!documents.is_empty()).then(|| documents.render()),
            }
        }
        (None, Some(restored)) => match tip_files.iter().find(|f| f.path == restored.path) {
            Some(file) => {
                let mut documents = Documents::of(file);
                let after = restored
                    .preceding
                    .iter()
                    .rev()
                    .find_map(|key| documents.find(key));
                documents.insert_after(after, &restored.body);
                FileChange {
                    path: file.path.clone(),
                    before: Some(file.text.clone()),
                    after: Some(documents.render()),
                }
            }
            None => FileChange {
                path: restored.path.clone(),
                before: None,
                after: Some(restored.body.clone()),
            },
        },
        (None, None) => return Vec::new(),
    };
    vec![change]
}

/// The errors the branch would have with `changes` on top of `tip` (whose
/// manifests `tip_snapshot` read): a tip file that cannot be read (not
/// UTF-8, too large) stays as it is, so the new commit would not be valid
/// either; then every error of loading the manifests that result.
pub fn errors_after(
    repo: &Repository,
    tip: Oid,
    tip_snapshot: &super::Snapshot,
    changes: &[FileChange],
) -> Result<Vec<Diagnostic>, RollbackError> {
    let tip_rules = super::tree_ignore_rules(repo, &repo.find_commit(tip)?.tree()?)?;
    let new_files = apply(&tip_snapshot.files, changes, &tip_rules);
    let loaded = crate::manifest::load(&new_files);
    Ok(tip_snapshot
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .chain(loaded.diagnostics.into_iter().filter(Diagnostic::is_error))
        .collect())
}

/// `files` with `changes` applied, sorted by path, read as `rules` (the
/// `.flotillaignore` the change leaves as it is) say.
fn apply(files: &[SourceFile], changes: &[FileChange], rules: &IgnoreRules) -> Vec<SourceFile> {
    let mut result: Vec<SourceFile> = files
        .iter()
        .filter(|f| !changes.iter().any(|c| c.path == f.path))
        .cloned()
        .collect();
    for change in changes {
        if let Some(text) = &change.after {
            result.push(SourceFile {
                path: change.path.clone(),
                text: text.clone(),
                excluded: rules.excluded_documents(&change.path),
            });
        }
    }
    result.sort_by(|a, b| a.path.cmp(&b.path));
    result
}

/// Commits `rollback` on its branch without touching any working tree, and
/// moves the branch only if it still points at the tip the rollback was
/// computed on (a concurrent push is never lost).
pub fn write_to_branch(repo: &Repository, rollback: &PendingCommit) -> Result<Oid, RollbackError> {
    let tip = repo.find_commit(rollback.tip)?;
    let mut index = git2::Index::new()?;
    index.read_tree(&tip.tree()?)?;
    for change in rollback.changes {
        check_path_names(&change.path)?;
        let path = Path::new(&change.path);
        match &change.after {
            Some(text) => {
                // An executable file stays one; anything else (a new file,
                // a symbolic link replaced by the restored text) is a file.
                let mode = match index.get_path(path, 0) {
                    Some(entry) if entry.mode == 0o100755 => 0o100755,
                    _ => 0o100644,
                };
                let id = repo.blob(text.as_bytes())?;
                index.add(&IndexEntry {
                    ctime: IndexTime::new(0, 0),
                    mtime: IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode,
                    uid: 0,
                    gid: 0,
                    file_size: u32::try_from(text.len()).unwrap_or(u32::MAX),
                    id,
                    flags: 0,
                    flags_extended: 0,
                    path: change.path.as_bytes().to_vec(),
                })?;
            }
            None => index.remove(path, 0)?,
        }
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;
    let who = super::signature::signatures(repo)?;
    let new = repo.commit(
        None,
        &who.author,
        &who.committer,
        rollback.message,
        &tree,
        &[&tip],
    )?;
    let reference = format!("refs/heads/{}", rollback.branch);
    repo.reference_matching(
        &reference,
        new,
        true,
        rollback.tip,
        &format!("flotilla: {}", rollback.action),
    )
    .map_err(|_| RollbackError::BranchMoved {
        branch: rollback.branch.to_string(),
        now: repo
            .refname_to_id(&reference)
            .map(|id| id.to_string())
            .unwrap_or_default(),
    })?;
    Ok(new)
}

/// Commits `rollback` on the checked-out branch of a clone and updates the
/// files it changes and the index to match. Refused, before anything is
/// written, when one of those files has uncommitted changes, or when
/// something in the working tree would make a write land elsewhere.
///
/// Nothing is ever written through a symbolic link, whatever the commits or
/// the working tree hold: a committed link where the rollback puts back a
/// file or a directory is replaced, as `git checkout` replaces it (the new
/// commit no longer has it); a link or file the tip does not hold as it is
/// in the working tree is refused.
pub fn commit_in_work_tree(
    repo: &Repository,
    rollback: &PendingCommit,
) -> Result<Oid, RollbackError> {
    let workdir = repo
        .workdir()
        .ok_or_else(|| RepoError::BareWorkingTree {
            repo: repo.path().to_path_buf(),
        })?
        .to_path_buf();
    let io = |path: &str| {
        let path = path.to_string();
        move |source| RollbackError::Io { path, source }
    };
    let mut dirty = Vec::new();
    let mut replaced_links = Vec::new();
    for change in rollback.changes {
        check_path_names(&change.path)?;
        let clean = match committed_link_in_the_way(repo, &workdir, &change.path)? {
            // Nothing of the working tree lies under a link the tip holds.
            Some(link) => {
                replaced_links.push(link);
                true
            }
            None => match repo.status_file(Path::new(&change.path)) {
                Ok(status) => status.is_empty(),
                Err(e) if e.code() == git2::ErrorCode::NotFound => {
                    match workdir.join(&change.path).symlink_metadata() {
                        Ok(_) => false,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
                        Err(e) => return Err(io(&change.path)(e)),
                    }
                }
                Err(e) => return Err(e.into()),
            },
        };
        if !clean {
            dirty.push(change.path.as_str());
        }
    }
    if !dirty.is_empty() {
        return Err(RollbackError::Dirty {
            paths: dirty.join(", "),
        });
    }
    replaced_links.sort();
    replaced_links.dedup();

    let new = write_to_branch(repo, rollback)?;
    let mut index = repo.index()?;
    for link in &replaced_links {
        std::fs::remove_file(workdir.join(link)).map_err(io(link))?;
        index.remove_path(Path::new(link))?;
    }
    for change in rollback.changes {
        let full = workdir.join(&change.path);
        match &change.after {
            Some(text) => {
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir).map_err(io(&change.path))?;
                }
                write_file(&full, text).map_err(io(&change.path))?;
                index.add_path(Path::new(&change.path))?;
            }
            None => {
                match std::fs::remove_file(&full) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&change.path)(e)),
                }
                index.remove_path(Path::new(&change.path))?;
            }
        }
    }
    index.write()?;
    Ok(new)
}

/// Refuses a path that is not a plain relative path inside the repository
/// (`..`, an absolute path, a `.git` component). Git never checks such a
/// tree entry out, but a commit can hold one.
fn check_path_names(path: &str) -> Result<(), RollbackError> {
    let plain = !path.is_empty()
        && Path::new(path).components().all(|c| match c {
            Component::Normal(name) => !name.eq_ignore_ascii_case(".git"),
            _ => false,
        });
    if plain {
        Ok(())
    } else {
        Err(RollbackError::OutsidePath {
            path: path.to_string(),
        })
    }
}

/// Looks at each directory on the way to `path` in the working tree,
/// without following links: the first one that is not a directory is either
/// a link (or file) the tip holds exactly as it is there, returned so that
/// it is replaced by a directory, or refused. `None` when every directory
/// on the way is a real one or does not exist yet.
fn committed_link_in_the_way(
    repo: &Repository,
    workdir: &Path,
    path: &str,
) -> Result<Option<String>, RollbackError> {
    let mut prefix = PathBuf::new();
    let components: Vec<_> = Path::new(path).components().collect();
    for component in &components[..components.len().saturating_sub(1)] {
        prefix.push(component);
        let metadata = match workdir.join(&prefix).symlink_metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RollbackError::Io {
                    path: prefix.to_string_lossy().into_owned(),
                    source,
                })
            }
        };
        if metadata.is_dir() {
            continue;
        }
        let committed = repo
            .status_file(&prefix)
            .is_ok_and(|status| status.is_empty());
        let prefix = prefix.to_string_lossy().into_owned();
        if committed {
            return Ok(Some(prefix));
        }
        return Err(RollbackError::InTheWay {
            path: prefix,
            what: if metadata.is_symlink() {
                "a symbolic link"
            } else {
                "a file"
            },
            file: path.to_string(),
        });
    }
    Ok(None)
}

/// Writes `text` to `path` as a regular file: a link there is replaced,
/// never followed.
fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        std::fs::remove_file(path)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::Kind;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
            excluded: Vec::new(),
        }
    }

    fn web() -> ObjectKey {
        ObjectKey {
            kind: Kind::Deployment,
            namespace: "default".into(),
            name: "web".into(),
        }
    }

    fn doc(name: &str, image: &str) -> String {
        format!("kind: Deployment\nmetadata:\n  name: {name}\nimage: {image}\n")
    }

    /// Restores web from `target` into `tip`: the files that change, as
    /// (path, after).
    fn check(tip: &[(&str, &str)], target: &[(&str, &str)], expected: &[(&str, Option<&str>)]) {
        let tip: Vec<SourceFile> = tip.iter().map(|(p, t)| file(p, t)).collect();
        let target: Vec<SourceFile> = target.iter().map(|(p, t)| file(p, t)).collect();
        let restored = find_document(&target, &web());
        let changes = restore(&tip, &web(), restored.as_ref());
        let actual: Vec<(&str, Option<&str>)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.after.as_deref()))
            .collect();
        assert_eq!(actual, expected, "tip {tip:?}\ntarget {target:?}");
    }

    #[test]
    fn restoring_one_document() {
        let (web1, web2, api, db) = (
            doc("web", "1"),
            doc("web", "2"),
            doc("api", "1"),
            doc("db", "1"),
        );
        // Replaced in the file it is in now, even when it lived elsewhere.
        check(
            &[("apps.yaml", &format!("{api}---\n{web2}---\n{db}"))],
            &[("web.yaml", &web1)],
            &[("apps.yaml", Some(&format!("{api}---\n{web1}---\n{db}")))],
        );
        // Put back where it was, after the document it followed.
        check(
            &[("apps.yaml", &format!("{api}---\n{db}"))],
            &[("apps.yaml", &format!("{api}---\n{web1}---\n{db}"))],
            &[("apps.yaml", Some(&format!("{api}---\n{web1}---\n{db}")))],
        );
        // Or in a file of its own again.
        check(
            &[("api.yaml", &api)],
            &[("api.yaml", &api), ("web.yaml", &web1)],
            &[("web.yaml", Some(&web1))],
        );
        // Removed when it did not exist, and its file with it if left empty.
        check(
            &[("apps.yaml", &format!("{api}---\n{web2}"))],
            &[("apps.yaml", &api)],
            &[("apps.yaml", Some(&api))],
        );
        check(
            &[
                ("api.yaml", &api),
                ("web.yaml", &format!("# web\n---\n{web2}")),
            ],
            &[("api.yaml", &api)],
            &[("web.yaml", None)],
        );
    }

    #[test]
    fn only_plain_paths_inside_the_repository_are_written() {
        for path in [
            "web.yaml",
            "apps/web.yaml",
            "a/.gitignore",
            "a/.github/x.yaml",
        ] {
            assert!(check_path_names(path).is_ok(), "{path}");
        }
        for path in [
            "",
            "/etc/passwd",
            "../web.yaml",
            "apps/../../x",
            ".git/hooks/x",
            "a/.GIT/config",
        ] {
            assert!(
                matches!(
                    check_path_names(path),
                    Err(RollbackError::OutsidePath { .. })
                ),
                "{path}"
            );
        }
    }

    #[test]
    fn object_refs() {
        let mut key = web();
        assert_eq!(object_ref(&key), "deployment/web");
        key.namespace = "staging".into();
        assert_eq!(object_ref(&key), "deployment/staging/web");
        let node = ObjectKey {
            kind: Kind::Node,
            namespace: String::new(),
            name: "n1".into(),
        };
        assert_eq!(object_ref(&node), "node/n1");
    }
}
