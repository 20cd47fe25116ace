//! The finished runs of pod sets that complete (Jobs), read from every note
//! under `refs/notes/flotilla`: what the planner is told (so a run whose
//! pods are gone is not run again) and what `flotilla history job/NAME`
//! lists. A run's record is on the commit that declared its revision; any
//! record of a (Job, revision) counts, wherever it is, so a Job runs once
//! per revision of its template.

use git2::{Oid, Repository};

use super::{notes_state, NotesState, RepoError, NOTES_REF};
use crate::plan::{RecordedRun, Runs};
use crate::reconcile::run_record::RunRecord;

/// Every run record of every note, with the commit it is noted on, oldest
/// finish first.
pub fn recorded_runs(repo: &Repository) -> Result<Vec<(Oid, RunRecord)>, RepoError> {
    let notes = match repo.notes(Some(NOTES_REF)) {
        Ok(notes) => notes,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut runs = Vec::new();
    for entry in notes {
        let (note_blob, commit) = entry?;
        let blob = repo.find_blob(note_blob)?;
        let Ok(text) = std::str::from_utf8(blob.content()) else {
            continue;
        };
        if !text.contains(crate::reconcile::run_record::RUN_PREFIX) {
            continue;
        }
        runs.extend(RunRecord::parse_all(text).into_iter().map(|r| (commit, r)));
    }
    runs.sort_by_key(|(commit, record)| (record.finished_at, *commit));
    Ok(runs)
}

/// The object id the notes ref points at (`None` without one): the runs
/// read from it stay true while it does not move.
pub fn notes_tip(repo: &Repository) -> Option<Oid> {
    repo.refname_to_id(NOTES_REF).ok()
}

/// What the planner is told of finished runs: every record, or unknown
/// when this repository's notes were not fetched (`notes_state`), so that
/// a plan never claims a Job will, or will not, run.
pub fn runs_for_planning(repo: &Repository) -> Result<Runs, RepoError> {
    if let NotesState::Missing { .. } = notes_state(repo)? {
        return Ok(Runs::Unknown(format!(
            "the run records ({NOTES_REF}) were not fetched into this repository"
        )));
    }
    Ok(runs_from(recorded_runs(repo)?))
}

/// The planner's view of `records`: by object and revision, the first
/// record of each (a run is recorded once; a later one is a stray copy).
pub fn runs_from(records: Vec<(Oid, RunRecord)>) -> Runs {
    let mut runs = std::collections::BTreeMap::new();
    for (_, record) in records {
        let Some(kind) = crate::manifest::model::Kind::parse(&record.kind) else {
            continue;
        };
        let key = crate::manifest::model::ObjectKey {
            kind,
            namespace: record.namespace.clone(),
            name: record.name.clone(),
        };
        runs.entry((key, record.revision.clone()))
            .or_insert_with(|| RecordedRun {
                outcome: record.outcome,
                reason: record.reason_code().map(str::to_string),
                finished_at: record.finished_at,
            });
    }
    Runs::Known(runs)
}
