//! What the commands that depend on a leader say about it: whether one is
//! running for the repository ([`crate::leader::presence`]), and, when none
//! is, what to run. Used by `rollout status`, `status`, `rollback` in the
//! leader's repository and `leader --check` (which the post-receive hook
//! runs), so that they all say the same thing.
//!
//! A clone is never where the leader runs: its own lock names no leader,
//! so a leader holding the lock of a node the clone declares is the
//! leader, and when none does the leader may run on another machine (the
//! host of the remote the clone was made from). A leader is suggested
//! (`flotilla leader --repo ...`) only for the leader's own repository.

use std::path::PathBuf;

use crate::leader::daemon::StatusSource;
use crate::leader::lock::{LockDir, LockHolder};
use crate::leader::presence::{self, FoundBy, LeaderPresence};

/// The repository a command runs in, as its sentences name it.
#[derive(Clone, Debug)]
pub(super) struct Place {
    /// As a person would pass it to `--repo`.
    pub path: PathBuf,
    /// The URL of the remote it fetches from, when it is a clone (not a
    /// leader's own repository): the leader runs where that is.
    pub clone_of: Option<String>,
}

impl Place {
    /// The repository `repository`, on `branch` (whose remote is the one
    /// a clone was made from, when git config says so).
    pub(super) fn of(repository: &git2::Repository, branch: &str) -> anyhow::Result<Place> {
        let clone_of = if crate::repo::is_leaders_own(repository)? {
            None
        } else {
            upstream_url(repository, branch)?
        };
        Ok(Place {
            path: repository_path(repository),
            clone_of,
        })
    }

    /// The node lock directory to look for the leader in: only a clone's
    /// leader is found there. In the leader's own repository, its own lock
    /// says whether its leader runs; a node held by another repository's
    /// leader is no leader of this one.
    pub(super) fn node_locks(&self, lock_dir: LockDir) -> Option<LockDir> {
        self.clone_of.as_ref().map(|_| lock_dir)
    }
}

/// The URL of the remote `branch` tracks, else of `origin`, else of the
/// first remote; `None` when the repository has no remote.
fn upstream_url(repository: &git2::Repository, branch: &str) -> anyhow::Result<Option<String>> {
    let remotes: Vec<String> = repository
        .remotes()?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    let tracked = repository
        .config()?
        .get_string(&format!("branch.{branch}.remote"))
        .ok()
        .filter(|name| remotes.contains(name));
    let name = tracked
        .or_else(|| remotes.iter().find(|r| *r == "origin").cloned())
        .or_else(|| remotes.first().cloned());
    let Some(name) = name else {
        return Ok(None);
    };
    let remote = repository.find_remote(&name)?;
    Ok(Some(remote.url().unwrap_or(&name).to_string()))
}

/// The repository as a person would pass it to `--repo`: absolute, the
/// work tree of a clone or the directory of a bare repository (a hook's
/// `$GIT_DIR` is often just `.`).
pub(super) fn repository_path(repository: &git2::Repository) -> PathBuf {
    let path = repository.workdir().unwrap_or_else(|| repository.path());
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // git2 ends a directory with a slash; `--repo` is written without.
    PathBuf::from(path.to_string_lossy().trim_end_matches('/'))
}

/// Whether a leader is running for the repository at `place` (for a
/// clone: for the nodes `branch` declares, by their locks in `lock_dir`),
/// found out now.
pub(super) fn find(
    repository: &git2::Repository,
    place: &Place,
    branch: &str,
    lock_dir: LockDir,
) -> anyhow::Result<LeaderPresence> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let node_locks = place.node_locks(lock_dir);
    let nodes = match &node_locks {
        Some(_) => presence::declared_nodes(repository, branch, crate::leader::load_manifests)?,
        None => Vec::new(),
    };
    let node_locks = node_locks.as_ref().map(|dir| (dir, nodes.as_slice()));
    Ok(runtime.block_on(presence::find(repository.path(), node_locks))?)
}

/// The leader `holder`, found by `found_by`, as a sentence names it:
/// "the leader of REPO" when its repository is known.
fn leader_name(place: &Place, holder: &LockHolder, found_by: &FoundBy) -> String {
    match (found_by, &holder.repo) {
        (FoundBy::RepositoryLock, _) => format!("the leader of {}", place.path.display()),
        (FoundBy::NodeLock { .. }, Some(repo)) => format!("the leader of {}", repo.display()),
        (FoundBy::NodeLock { node }, None) => format!("the leader acting on node {node}"),
    }
}

/// Why no leader acts on the repository, as the start of a sentence;
/// `None` when one is running.
pub(super) fn why_not_running(place: &Place, presence: &LeaderPresence) -> Option<String> {
    let repo = place.path.display();
    match (presence, &place.clone_of) {
        (LeaderPresence::Running { .. }, _) => None,
        (LeaderPresence::NotRunning { .. }, Some(url)) => Some(format!(
            "no leader found on this machine for {repo}: the leader may run on the host of {url}"
        )),
        (LeaderPresence::NotRunning { holder: None }, None) => {
            Some(format!("no leader is running on {repo}"))
        }
        (
            LeaderPresence::NotRunning {
                holder: Some(holder),
            },
            None,
        ) if holder.role == "leader" => Some(format!(
            "no leader is running on {repo} (its lock names {holder}, which no longer exists)"
        )),
        (
            LeaderPresence::NotRunning {
                holder: Some(holder),
            },
            None,
        ) => Some(format!(
            "no leader is running on {repo} (its lock is held by {holder})"
        )),
        (
            LeaderPresence::NotAnswering {
                holder,
                api,
                reason,
                found_by,
            },
            _,
        ) => Some(format!(
            "{}, {holder}, does not answer at http://{api} ({reason}); it may run on another \
             machine, or be hung",
            leader_name(place, holder, found_by)
        )),
    }
}

/// What brings a leader (or one reconcile) to the repository; `None` for a
/// clone, whose leader runs on the repository it was cloned from (on
/// whatever machine that is).
pub(super) fn what_to_run(place: &Place, presence: &LeaderPresence) -> Option<String> {
    let leaders_repo = match presence {
        LeaderPresence::NotAnswering { holder, .. } => holder.repo.as_deref(),
        _ => None,
    };
    let repo = match (leaders_repo, &place.clone_of) {
        (Some(repo), _) => repo,
        (None, None) => place.path.as_path(),
        (None, Some(_)) => return None,
    };
    let start = format!(
        "`flotilla leader --repo {}` (or `flotilla apply`) runs",
        repo.display()
    );
    Some(match presence {
        LeaderPresence::NotAnswering { .. } => {
            format!("it answers again, or is stopped and {start}")
        }
        _ => start,
    })
}

/// "no leader is running on REPO: nothing {what} until `flotilla leader
/// --repo REPO` (or `flotilla apply`) runs" (for a clone: where the
/// leader may run instead); `None` when a leader runs.
pub(super) fn no_leader_sentence(
    place: &Place,
    presence: &LeaderPresence,
    what: &str,
) -> Option<String> {
    let why = why_not_running(place, presence)?;
    Some(match what_to_run(place, presence) {
        Some(run) => format!("{why}: nothing {what} until {run}"),
        None => why,
    })
}

/// `leader --check`'s line for a running leader, without how it serves.
pub(super) fn running_line(place: &Place, holder: &LockHolder, found_by: &FoundBy) -> String {
    match found_by {
        FoundBy::RepositoryLock => {
            format!("a leader is running on {}: {holder}", place.path.display())
        }
        FoundBy::NodeLock { node } => format!(
            "{} is running: {holder}, holding the lock of node {node} that {} declares",
            leader_name(place, holder, found_by),
            place.path.display()
        ),
    }
}

/// Where `flotilla status` got its figures, as its first line says.
pub(super) fn source_line(place: &Place, source: &StatusSource) -> String {
    match source {
        StatusSource::Leader { holder, api } => match &holder.repo {
            Some(repo) => format!(
                "From the leader of {} (pid {}, http://{api})",
                repo.display(),
                holder.pid
            ),
            None => format!("From the leader (pid {}, http://{api})", holder.pid),
        },
        StatusSource::Observed {
            presence:
                LeaderPresence::Running {
                    holder, found_by, ..
                },
        } => format!(
            "Observed by this command: {} (pid {}) serves no /status (started without --listen, or has not finished its first reconcile)",
            leader_name(place, holder, found_by),
            holder.pid
        ),
        StatusSource::Observed { presence } => format!(
            "Observed by this command: {}",
            why_not_running(place, presence).unwrap_or_default()
        ),
    }
}

/// Where `flotilla status --output json` got its figures: its `source`.
pub(super) fn source_json(place: &Place, source: &StatusSource) -> serde_json::Value {
    match source {
        StatusSource::Leader { holder, api } => serde_json::json!({
            "from": "leader",
            "pid": holder.pid,
            "host": holder.host,
            "address": format!("http://{api}"),
            "repository": holder.repo,
        }),
        StatusSource::Observed { presence } => {
            let leader = match presence {
                LeaderPresence::Running { .. } => "running",
                LeaderPresence::NotRunning { .. } => "notRunning",
                LeaderPresence::NotAnswering { .. } => "notAnswering",
            };
            serde_json::json!({
                "from": "observed",
                "leader": leader,
                "detail": source_line(place, source)
                    .trim_start_matches("Observed by this command: "),
            })
        }
    }
}
