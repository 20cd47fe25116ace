//! `flotilla rollback [KIND/NAME]`: a commit that restores one object's
//! manifest as it was at its previous successfully deployed revision (or
//! the one `--to` names): the same commit as `git revert` + `git push`.
//! Without an object, every manifest: the whole desired state as it was at
//! the previous successfully deployed commit.

use std::path::PathBuf;

use clap::Args;

use super::history::{branch, branch_tip};
use super::notes;
use super::object_ref::parse_object_ref;
use super::validate::render_diagnostics;
use super::{exit, short, Output};
use crate::repo::{self, printable_line, printable_text, RollbackError, TargetChoice};

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The object: KIND/NAME (deployment/web, deploy/web, node/n1) or
    /// KIND/NAMESPACE/NAME. Without one, every manifest is restored (the
    /// whole desired state).
    pub object: Option<String>,
    /// The object's namespace (default: `default`).
    #[arg(short = 'n', long, requires = "object")]
    pub namespace: Option<String>,
    /// Restore the object (or every manifest) as it is in this commit (any
    /// revision expression), instead of its last successfully rolled-out
    /// revision.
    #[arg(long, value_name = "COMMIT")]
    pub to: Option<String>,
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

pub(super) fn run(args: &RollbackArgs, out: &mut Output) -> anyhow::Result<u8> {
    let repository = repo::open(&args.repo)?;
    let object = match &args.object {
        Some(object) => {
            Some(parse_object_ref(object, args.namespace.as_deref()).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let branch = branch(&repository, args.branch.as_deref());
    branch_tip(&repository, &branch)?;

    let (to, message) = (args.to.as_deref(), args.message.as_deref());
    // Missing records are refused below; records that may be stale are
    // decided from, with a warning.
    let notes_state = repo::notes_state(&repository)?;
    if to.is_none() && matches!(notes_state, repo::NotesState::MaybeStale { .. }) {
        notes::warn(&notes_state, "", out);
    }
    let planned = match &object {
        Some(object) => repo::plan_rollback(&repository, &branch, object, to, message),
        None => repo::plan_tree_rollback(&repository, &branch, to, message),
    };
    let rollback = match planned {
        Ok(rollback) => rollback,
        Err(RollbackError::Invalid {
            object: what,
            diagnostics,
            ..
        }) if !diagnostics.is_empty() => {
            render_diagnostics(&diagnostics, out)?;
            anyhow::bail!(
                "rolling back {what} would leave {branch} invalid: fix the errors above, or \
                 choose another revision with --to"
            );
        }
        Err(error) => {
            if let RollbackError::NotesMissing { remotes, .. } = &error {
                anyhow::bail!(
                    "{error}\n{}\nhint: or name the revision to restore: --to COMMIT",
                    notes::fetch_hint(remotes)
                );
            }
            return Err(error.into());
        }
    };

    let target = rollback.target.to_string();
    match &rollback.object {
        Some(object) => {
            let why = match rollback.choice {
                TargetChoice::LastSuccessfulRollout => "its last successful rollout",
                TargetChoice::PreviousVersion => "its previous version (no rollout recorded)",
                TargetChoice::Chosen => "as asked",
            };
            let what = if rollback.present_at_target {
                "Restoring"
            } else {
                "Removing (not declared then)"
            };
            out.line(format_args!(
                "{what} {object} as of {} (\"{}\"): {why}.\n",
                short(&target),
                printable_line(&rollback.target_subject)
            ))?;
        }
        None => {
            let why = match rollback.choice {
                TargetChoice::LastSuccessfulRollout => "the last successful rollout",
                TargetChoice::PreviousVersion => "the previous version (no rollout recorded)",
                TargetChoice::Chosen => "as asked",
            };
            out.line(format_args!(
                "Restoring every manifest as of {} (\"{}\"): {why}.",
                short(&target),
                printable_line(&rollback.target_subject)
            ))?;
            for change in &rollback.changes {
                let how = match (&change.before, &change.after) {
                    (None, _) => "restored",
                    (Some(_), Some(_)) => "changed",
                    (Some(_), None) => "removed (not there then)",
                };
                out.line(format_args!("  {}: {how}", printable_line(&change.path)))?;
            }
            out.line("")?;
        }
    }
    if args.dry_run {
        out.text(paint_diff(&printable_text(&rollback.diff()), out))?;
        out.line("\ndry run: nothing written")?;
        return Ok(exit::OK);
    }

    write_and_tell(&repository, &rollback.pending(), out)?;
    Ok(exit::OK)
}

/// Writes `pending` (in the work tree when its branch is checked out, else
/// straight on the branch) and says what was committed and what deploys
/// it: the leader, in its own bare repository; else a push.
pub(super) fn write_and_tell(
    repository: &git2::Repository,
    pending: &repo::PendingCommit,
    out: &mut Output,
) -> anyhow::Result<()> {
    let branch = pending.branch;
    let current = repo::checked_out_branch(repository);
    let new = if current.as_deref() == Some(branch) {
        repo::commit_in_work_tree(repository, pending)?
    } else {
        repo::write_to_branch(repository, pending)?
    };
    let subject = pending.message.lines().next().unwrap_or("");
    out.line(format_args!(
        "committed {} on {branch}: {}",
        short(&new.to_string()),
        printable_line(subject)
    ))?;
    if repository.is_bare() {
        // Said only when true: a leader holds the lock and answers.
        let place = super::presence::Place::of(repository, branch)?;
        let lock_dir = crate::leader::lock::default_lock_dir();
        let presence = super::presence::find(repository, &place, branch, lock_dir)?;
        match super::presence::no_leader_sentence(&place, &presence, "deploys it") {
            Some(sentence) => out.line(sentence)?,
            None => out.line("the leader deploys it")?,
        }
    } else if current.as_deref() == Some(branch) {
        out.line("push it: git push")?;
    } else {
        out.line(format_args!("push it: git push <remote> {branch}"))?;
    }
    Ok(())
}

/// Added lines green, removed lines red, when colour is on.
pub(super) fn paint_diff(diff: &str, out: &Output) -> String {
    if !out.color() {
        return diff.to_string();
    }
    diff.lines()
        .map(|line| {
            let painted = if line.starts_with("+++") || line.starts_with("---") {
                line.to_string()
            } else if line.starts_with('+') {
                out.green(line)
            } else if line.starts_with('-') {
                out.red(line)
            } else {
                line.to_string()
            };
            painted + "\n"
        })
        .collect()
}
