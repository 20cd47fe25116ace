//! What the commands that decide from rollout records (`history`,
//! `rollback`, `rollout status`) say when the records are missing or may
//! be stale: a clone does not fetch `refs/notes/flotilla` unless told to,
//! and no record is not the same as "never rolled out".

use git2::Repository;

use super::Output;
use crate::repo::{self, NotesState, NOTES_REF, NOTES_REFSPEC};

/// The state of `repo`'s rollout records, after warning on stderr when
/// they are missing or may be stale. `missing` says what the command
/// cannot tell without them ("every outcome below is unknown").
pub(crate) fn check(repo: &Repository, missing: &str, out: &Output) -> anyhow::Result<NotesState> {
    let state = repo::notes_state(repo)?;
    warn(&state, missing, out);
    Ok(state)
}

/// Warns on stderr when the records are missing or may be stale.
pub(crate) fn warn(state: &NotesState, missing: &str, out: &Output) {
    match state {
        NotesState::Current => {}
        NotesState::Missing { remotes } => {
            out.warn(format_args!("warning: {}: {missing}", missing_text()));
            out.warn(fetch_hint(remotes));
        }
        NotesState::MaybeStale { remotes } => {
            out.warn(format_args!(
                "warning: no remote of this repository fetches the rollout records \
                 ({NOTES_REF}): those here may be older than the leader's"
            ));
            out.warn(fetch_hint(remotes));
        }
    }
}

/// Why records are missing, for warnings and refusals.
pub(crate) fn missing_text() -> String {
    format!(
        "the rollout records ({NOTES_REF}) were not fetched into this repository \
         (git fetches notes only when told to)"
    )
}

/// How to fetch the records into this clone from now on, and how to clone
/// with them.
pub(crate) fn fetch_hint(remotes: &[String]) -> String {
    let remote = match remotes {
        [only] => only.as_str(),
        _ => "<remote>",
    };
    let which = match remotes {
        [] | [_] => String::new(),
        several => format!(
            " (<remote>: the leader's repository, one of {})",
            several.join(", ")
        ),
    };
    format!(
        "hint: fetch them with `git config --add remote.{remote}.fetch {NOTES_REFSPEC} && \
         git fetch {remote}`{which}; clone with them: \
         `git clone -c remote.origin.fetch={NOTES_REFSPEC} URL`"
    )
}
