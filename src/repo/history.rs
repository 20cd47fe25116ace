//! Writing back to Git: rollout outcomes as notes under `refs/notes/flotilla`,
//! and revert commits on the tracked branch (a failed rollout's automatic
//! rollback, `flotilla rollback`).

use git2::{Oid, Repository};

use super::signature::signatures;
use super::RepoError;

/// Where rollout outcomes are recorded: `git log --notes=flotilla` shows them.
pub const NOTES_REF: &str = "refs/notes/flotilla";

/// The fetch refspec that brings the rollout records into a clone, on
/// `git clone -c remote.origin.fetch=...` and on every later fetch or pull.
pub const NOTES_REFSPEC: &str = "+refs/notes/flotilla:refs/notes/flotilla";

/// Whether the rollout records of a repository can be decided from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotesState {
    /// What is here is all there is: the leader's own repository (made by
    /// `init-repo`, where the records are written), a repository with no
    /// remote, or one a remote fetches the records into.
    Current,
    /// The repository fetches from `remotes` but holds no records: git does
    /// not fetch notes unless told to, so the leader's records were left
    /// behind (`init-repo` creates the notes ref, so a leader's repository
    /// always has one to fetch).
    Missing { remotes: Vec<String> },
    /// Records are here, but none of `remotes` fetches them: they are as
    /// old as the last time someone fetched them by hand.
    MaybeStale { remotes: Vec<String> },
}

/// Whether `repo` is a leader's own repository: a bare repository whose
/// own config records the binary its hooks run (`flotilla.bin`, written by
/// `init-repo`).
pub fn is_leaders_own(repo: &Repository) -> Result<bool, RepoError> {
    Ok(repo.is_bare()
        && repo
            .config()?
            .open_level(git2::ConfigLevel::Local)?
            .get_entry("flotilla.bin")
            .is_ok())
}

/// Whether `repo`'s rollout records are there and kept up to date, as far
/// as git can tell: its notes ref, and the fetch refspecs of its remotes.
pub fn notes_state(repo: &Repository) -> Result<NotesState, RepoError> {
    // A remote of the leader's own repository (a backup mirror) is not
    // where records come from.
    if is_leaders_own(repo)? {
        return Ok(NotesState::Current);
    }
    let remotes: Vec<String> = repo
        .remotes()?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    if remotes.is_empty() {
        return Ok(NotesState::Current);
    }
    let present = match repo.find_reference(NOTES_REF) {
        Ok(_) => true,
        Err(e) if e.code() == git2::ErrorCode::NotFound => false,
        Err(e) => return Err(e.into()),
    };
    if !present {
        return Ok(NotesState::Missing { remotes });
    }
    for name in &remotes {
        let remote = repo.find_remote(name)?;
        let fetches_notes = remote.refspecs().any(|spec| {
            spec.direction() == git2::Direction::Fetch
                && spec.src_matches(NOTES_REF)
                && spec
                    .transform(NOTES_REF)
                    .is_ok_and(|dst| dst.as_str() == Some(NOTES_REF))
        });
        if fetches_notes {
            return Ok(NotesState::Current);
        }
    }
    Ok(NotesState::MaybeStale { remotes })
}

/// Creates the notes ref, with no note yet, unless it exists: then a clone
/// told to fetch it (`NOTES_REFSPEC`) finds it even before the first
/// rollout (git refuses to fetch a ref that is not there), and a clone
/// without it can tell that its records were not fetched.
pub(crate) fn create_notes_ref(repo: &Repository) -> Result<(), RepoError> {
    if repo.find_reference(NOTES_REF).is_ok() {
        return Ok(());
    }
    let who = signatures(repo)?;
    let empty = repo.find_tree(repo.treebuilder(None)?.write()?)?;
    let commit = repo.commit(
        None,
        &who.author,
        &who.committer,
        "flotilla: rollout records (notes)",
        &empty,
        &[],
    )?;
    repo.reference(NOTES_REF, commit, false, "flotilla init-repo")?;
    Ok(())
}

/// Appends `text` to the note on `commit` (a commit can be rolled out more
/// than once, and every outcome is kept).
pub fn append_note(repo: &Repository, commit: Oid, text: &str) -> Result<(), RepoError> {
    let existing = read_note(repo, commit)?;
    let note = match existing {
        Some(old) if !old.trim().is_empty() => format!("{}\n\n{}", old.trim_end(), text.trim_end()),
        _ => text.trim_end().to_string(),
    };
    let who = signatures(repo)?;
    repo.note(
        &who.author,
        &who.committer,
        Some(NOTES_REF),
        commit,
        &note,
        true,
    )?;
    Ok(())
}

/// The note on `commit`, if any.
pub fn read_note(repo: &Repository, commit: Oid) -> Result<Option<String>, RepoError> {
    match repo.find_note(Some(NOTES_REF), commit) {
        Ok(note) => Ok(note.message().map(str::to_string)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("branch {branch} not found")]
    NoBranch { branch: String },
    #[error("reverting {commit} on {branch} conflicts with later changes to {paths}")]
    Conflict {
        commit: String,
        branch: String,
        paths: String,
    },
    #[error("{commit} is a merge commit; revert one of its parents' changes by hand")]
    Merge { commit: String },
    #[error("{branch} moved while the revert was written (now {now}); try again")]
    BranchMoved { branch: String, now: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Writes `Revert "<subject>"` of `commit` on top of `branch`, with `reason`
/// in the body, exactly as `git revert` would, and moves the branch to it
/// only if it still points where it did (a concurrent push is never lost).
/// Works in bare repositories: no working tree is touched.
pub fn revert_on_branch(
    repo: &Repository,
    branch: &str,
    commit: Oid,
    reason: &str,
) -> Result<Oid, RevertError> {
    let reference = format!("refs/heads/{branch}");
    let tip_id = repo
        .refname_to_id(&reference)
        .map_err(|_| RevertError::NoBranch {
            branch: branch.to_string(),
        })?;
    let tip = repo.find_commit(tip_id)?;
    let reverted = repo.find_commit(commit)?;
    if reverted.parent_count() > 1 {
        return Err(RevertError::Merge {
            commit: commit.to_string(),
        });
    }

    let mut index = repo.revert_commit(&reverted, &tip, 0, None)?;
    if index.has_conflicts() {
        let paths = index
            .conflicts()?
            .filter_map(Result::ok)
            .filter_map(|c| c.our.or(c.their).or(c.ancestor))
            .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(RevertError::Conflict {
            commit: commit.to_string(),
            branch: branch.to_string(),
            paths,
        });
    }
    let tree = repo.find_tree(index.write_tree_to(repo)?)?;

    let subject = reverted.summary().unwrap_or("");
    let mut message = format!("Revert \"{subject}\"\n\nThis reverts commit {commit}.\n");
    if !reason.trim().is_empty() {
        message.push('\n');
        message.push_str(reason.trim_end());
        message.push('\n');
    }
    let who = signatures(repo)?;
    let new = repo.commit(None, &who.author, &who.committer, &message, &tree, &[&tip])?;
    repo.reference_matching(
        &reference,
        new,
        true,
        tip_id,
        &format!("flotilla: revert {commit}"),
    )
    .map_err(|_| {
        let now = repo
            .refname_to_id(&reference)
            .map(|id| id.to_string())
            .unwrap_or_default();
        RevertError::BranchMoved {
            branch: branch.to_string(),
            now,
        }
    })?;
    Ok(new)
}

/// The commit that introduced what `declares` recognises: the oldest of the
/// unbroken run of commits, back from `tip` on the branch's first parents,
/// that declare it, when its parent does not. `declares` answers for a
/// commit (by SHA), `None` when it cannot tell. `None` when the answer is
/// not certain: `tip` does not declare it, the run goes back more than
/// `limit` commits or to the first commit, or a commit cannot be read.
pub fn introducing_commit(
    repo: &git2::Repository,
    tip: &str,
    limit: usize,
    mut declares: impl FnMut(&str) -> Option<bool>,
) -> Option<String> {
    let mut commit = repo.find_commit(git2::Oid::from_str(tip).ok()?).ok()?;
    if !declares(&commit.id().to_string())? {
        return None;
    }
    for _ in 0..limit {
        let parent = commit.parent(0).ok()?;
        if parent.tree_id() != commit.tree_id() && !declares(&parent.id().to_string())? {
            return Some(commit.id().to_string());
        }
        commit = parent;
    }
    None
}
