//! `flotilla history job/NAME`: the runs of a pod set that completes, from
//! the run records in the notes (one per finished run: revision, the commit
//! it is noted on, outcome, start, duration, successes and failures), the
//! newest first.

use git2::Repository;
use serde::Serialize;

use super::{exit, short, Output, OutputFormat};
use crate::manifest::model::ObjectKey;
use crate::reconcile::record::format_duration;
use crate::reconcile::time::format_rfc3339;
use crate::repo::{self, printable_line, RunRecord};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunRow<'a> {
    /// The commit whose note holds the record.
    commit: String,
    #[serde(flatten)]
    record: &'a RunRecord,
    duration_seconds: f64,
}

/// Whether `object` is listed by its runs: the branch tip declares it as a
/// pod set that completes, or the notes hold runs of it.
pub(super) fn lists_runs(
    repository: &Repository,
    tip: git2::Oid,
    object: &ObjectKey,
    runs: &[(git2::Oid, RunRecord)],
) -> bool {
    let declared = repo::read_revision(repository, &tip.to_string())
        .ok()
        .map(|snapshot| crate::manifest::load(&snapshot.files).state)
        .and_then(|state| state.workload(object).map(|w| w.spec.pods.completes()));
    declared.unwrap_or(false) || runs.iter().any(|(_, r)| is_of(r, object))
}

fn is_of(record: &RunRecord, object: &ObjectKey) -> bool {
    record.kind.eq_ignore_ascii_case(object.kind.as_str())
        && record.namespace == object.namespace
        && record.name == object.name
}

/// Prints the runs of `object` in `runs` (every record of the notes),
/// newest first, at most `limit`.
pub(super) fn print_runs(
    object: &ObjectKey,
    runs: &[(git2::Oid, RunRecord)],
    known: bool,
    limit: Option<usize>,
    output: OutputFormat,
    out: &mut Output,
) -> anyhow::Result<u8> {
    let rows: Vec<RunRow<'_>> = runs
        .iter()
        .rev()
        .filter(|(_, r)| is_of(r, object))
        .take(limit.unwrap_or(usize::MAX))
        .map(|(commit, record)| RunRow {
            commit: commit.to_string(),
            record,
            duration_seconds: record.duration().as_secs_f64(),
        })
        .collect();
    match output {
        OutputFormat::Json => out.json(&rows)?,
        OutputFormat::Text if !known => out.line(format_args!(
            "{}: its runs are unknown here (their records were not fetched)",
            repo::object_ref(object)
        ))?,
        OutputFormat::Text if rows.is_empty() => out.line(format_args!(
            "{} has no finished run recorded",
            repo::object_ref(object)
        ))?,
        OutputFormat::Text => {
            let mut table = vec![[
                "REVISION".to_string(),
                "COMMIT".into(),
                "OUTCOME".into(),
                "STARTED".into(),
                "DURATION".into(),
                "COMPLETIONS".into(),
                "FAILED".into(),
                "REASON".into(),
            ]];
            for row in &rows {
                let r = row.record;
                table.push([
                    printable_line(&r.revision).into_owned(),
                    short(&row.commit).to_string(),
                    r.outcome.as_str().to_string(),
                    format_rfc3339(r.started_at),
                    format_duration(r.duration()),
                    r.completions_text(),
                    r.failed.to_string(),
                    printable_line(r.reason_code().unwrap_or("-")).into_owned(),
                ]);
            }
            let widths: Vec<usize> = (0..8)
                .map(|i| {
                    table
                        .iter()
                        .map(|row| row[i].chars().count())
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in &table {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(cell, width)| format!("{cell:<width$}"))
                    .collect();
                out.line(format_args!("{}", cells.join("  ").trim_end()))?;
            }
        }
    }
    Ok(exit::OK)
}
