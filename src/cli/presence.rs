//! What the commands that depend on a leader say about it: whether one is
//! running for the repository ([`crate::leader::presence`]), and, when none
//! is, what to run. Used by `rollout status`, `status`, `rollback` in the
//! leader's repository and `leader --check` (which the post-receive hook
//! runs), so that they all say the same thing.

use std::path::{Path, PathBuf};

use crate::leader::daemon::StatusSource;
use crate::leader::presence::{self, LeaderPresence};

/// The repository as a person would pass it to `--repo`: absolute, the
/// work tree of a clone or the directory of a bare repository (a hook's
/// `$GIT_DIR` is often just `.`).
pub(super) fn repository_path(repository: &git2::Repository) -> PathBuf {
    let path = repository.workdir().unwrap_or_else(|| repository.path());
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    // git2 ends a directory with a slash; `--repo` is written without.
    PathBuf::from(path.to_string_lossy().trim_end_matches('/'))
}

/// Whether a leader is running for the repository at `repo`, found out now.
pub(super) fn find(repository: &git2::Repository) -> anyhow::Result<LeaderPresence> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(presence::find(repository.path()))?)
}

/// Why no leader acts on `repo`, as the start of a sentence; `None` when
/// one is running.
pub(super) fn why_not_running(repo: &Path, presence: &LeaderPresence) -> Option<String> {
    let repo = repo.display();
    match presence {
        LeaderPresence::Running { .. } => None,
        LeaderPresence::NotRunning { holder: None } => {
            Some(format!("no leader is running on {repo}"))
        }
        LeaderPresence::NotRunning {
            holder: Some(holder),
        } if holder.role == "leader" => Some(format!(
            "no leader is running on {repo} (its lock names {holder}, which no longer exists)"
        )),
        LeaderPresence::NotRunning {
            holder: Some(holder),
        } => Some(format!(
            "no leader is running on {repo} (its lock is held by {holder})"
        )),
        LeaderPresence::NotAnswering {
            holder,
            api,
            reason,
        } => Some(format!(
            "the leader of {repo}, {holder}, does not answer at http://{api} ({reason}); it may \
             run on another machine, or be hung"
        )),
    }
}

/// What brings a leader (or one reconcile) to `repo`.
pub(super) fn what_to_run(repo: &Path, presence: &LeaderPresence) -> String {
    let start = format!(
        "`flotilla leader --repo {}` (or `flotilla apply`) runs",
        repo.display()
    );
    match presence {
        LeaderPresence::NotAnswering { .. } => {
            format!("it answers again, or is stopped and {start}")
        }
        _ => start,
    }
}

/// "no leader is running on REPO: nothing {what} until `flotilla leader
/// --repo REPO` (or `flotilla apply`) runs"; `None` when a leader runs.
pub(super) fn no_leader_sentence(
    repo: &Path,
    presence: &LeaderPresence,
    what: &str,
) -> Option<String> {
    let why = why_not_running(repo, presence)?;
    Some(format!(
        "{why}: nothing {what} until {}",
        what_to_run(repo, presence)
    ))
}

/// Where `flotilla status` got its figures, as its first line says.
pub(super) fn source_line(repo: &Path, source: &StatusSource) -> String {
    match source {
        StatusSource::Leader { holder, api } => {
            format!("From the leader (pid {}, http://{api})", holder.pid)
        }
        StatusSource::Observed {
            presence: LeaderPresence::Running { holder, .. },
        } => format!(
            "Observed by this command: the leader of {} (pid {}) serves no /status (started without --listen, or has not finished its first reconcile)",
            repo.display(),
            holder.pid
        ),
        StatusSource::Observed { presence } => format!(
            "Observed by this command: {}",
            why_not_running(repo, presence).unwrap_or_default()
        ),
    }
}

/// Where `flotilla status --output json` got its figures: its `source`.
pub(super) fn source_json(repo: &Path, source: &StatusSource) -> serde_json::Value {
    match source {
        StatusSource::Leader { holder, api } => serde_json::json!({
            "from": "leader",
            "pid": holder.pid,
            "host": holder.host,
            "address": format!("http://{api}"),
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
                "detail": source_line(repo, source)
                    .trim_start_matches("Observed by this command: "),
            })
        }
    }
}
