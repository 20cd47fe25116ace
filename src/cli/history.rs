//! `flotilla history [KIND/NAME]`: the revisions of a branch's manifests (or
//! of one object), newest first, each with the rollout outcome its note
//! records.

use std::path::PathBuf;

use clap::Args;
use git2::Repository;
use serde::Serialize;

use super::object_ref::parse_object_ref;
use super::{exit, notes, short, Output, OutputFormat};
use crate::reconcile::record::format_duration;
use crate::repo::{
    self, printable_line, HistoryReader, Outcome, RecordedRollout, Revision, RolloutRecord,
};

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only the commits that changed this object: KIND/NAME (deployment/web,
    /// deploy/web, node/n1) or KIND/NAMESPACE/NAME.
    pub object: Option<String>,
    /// The object's namespace (default: `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The repository (bare or not; any directory inside a work tree).
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// The branch (default: `git config flotilla.branch`, else the branch
    /// HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// List at most this many revisions, newest first.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row<'a> {
    commit: String,
    /// Author date, ISO 8601 with the author's offset.
    date: String,
    author: &'a str,
    author_email: &'a str,
    subject: &'a str,
    valid: bool,
    /// With an object: whether it exists after this commit.
    #[serde(skip_serializing_if = "Option::is_none")]
    present: Option<bool>,
    /// `succeeded`, `failed`, `invalid`, `unknown` (the rollout records
    /// were not fetched into this repository), or null when never rolled
    /// out.
    outcome: Option<&'static str>,
    /// The latest rollout record for this revision, and the commit whose
    /// note holds it.
    rollout: Option<&'a RolloutRecord>,
    rollout_commit: Option<String>,
}

pub(super) fn run(args: &HistoryArgs, out: &mut Output) -> anyhow::Result<u8> {
    let repository = repo::open(&args.repo)?;
    let object = args
        .object
        .as_deref()
        .map(|text| parse_object_ref(text, args.namespace.as_deref()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let branch = branch(&repository, args.branch.as_deref());
    let tip = branch_tip(&repository, &branch)?;
    let notes = notes::check(&repository, "every outcome below is unknown", out)?;
    let known = !matches!(notes, repo::NotesState::Missing { .. });

    if let Some(object) = &object {
        let runs = repo::recorded_runs(&repository)?;
        if super::history_runs::lists_runs(&repository, tip, object, &runs) {
            return super::history_runs::print_runs(
                object,
                &runs,
                known,
                args.limit,
                args.output,
                out,
            );
        }
    }

    let mut reader = HistoryReader::new(&repository);
    let revisions = reader.revisions(tip, object.as_ref(), args.limit)?;
    if let (Some(object), true, false) = (&object, revisions.is_empty(), args.limit == Some(0)) {
        let suggestion = reader.closest_object(tip, object)?;
        let mut message = format!(
            "{} is not declared on {branch}, now or before",
            repo::object_ref(object)
        );
        if let Some(close) = suggestion {
            message.push_str(&format!(" (did you mean {}?)", repo::object_ref(&close)));
        }
        anyhow::bail!(message);
    }

    let rows: Vec<Row<'_>> = revisions
        .iter()
        .map(|revision| Row {
            commit: revision.commit.to_string(),
            date: iso_date(revision.author_time),
            author: &revision.author_name,
            author_email: &revision.author_email,
            subject: &revision.subject,
            valid: revision.valid,
            present: object.as_ref().map(|_| revision.present()),
            outcome: outcome_word(revision, known),
            rollout: recorded(revision, known).map(|r| &r.record),
            rollout_commit: recorded(revision, known).map(|r| r.commit.to_string()),
        })
        .collect();
    match args.output {
        OutputFormat::Json => out.json(&rows)?,
        OutputFormat::Text if rows.is_empty() => {
            out.line(format_args!("no commit on {branch} changed the manifests"))?
        }
        OutputFormat::Text => render_table(&revisions, &rows, known, out)?,
    }
    Ok(exit::OK)
}

/// `--branch`, or the repository's default (see [`repo::default_branch`]).
pub(super) fn branch(repository: &Repository, named: Option<&str>) -> String {
    named.map_or_else(|| repo::default_branch(repository), str::to_string)
}

pub(super) fn branch_tip(repository: &Repository, branch: &str) -> anyhow::Result<git2::Oid> {
    repository
        .refname_to_id(&format!("refs/heads/{branch}"))
        .map_err(|_| {
            anyhow::anyhow!(
                "branch {branch} not found in {} (nothing pushed yet?)",
                repository.path().display()
            )
        })
}

/// The revision's latest rollout record, when the records are `known`.
fn recorded(revision: &Revision, known: bool) -> Option<&RecordedRollout> {
    revision.rollout.as_ref().filter(|_| known)
}

fn outcome_word(revision: &Revision, known: bool) -> Option<&'static str> {
    if !revision.valid {
        return Some("invalid");
    }
    if !known {
        return Some(UNKNOWN);
    }
    revision.rollout.as_ref().map(|r| r.outcome.as_str())
}

/// The outcome of a valid revision when the rollout records are missing.
const UNKNOWN: &str = "unknown";

/// `succeeded in 12.3s`, `failed in 65.0s, reverted by 1234567890ab`,
/// `invalid`, `unknown` when the records are missing, or `-` when never
/// rolled out.
fn outcome_text(revision: &Revision, known: bool) -> String {
    if !revision.valid {
        return "invalid".to_string();
    }
    if !known {
        return UNKNOWN.to_string();
    }
    let Some(rollout) = &revision.rollout else {
        return "-".to_string();
    };
    let mut text = format!(
        "{} in {}",
        rollout.outcome,
        format_duration(rollout.record.duration)
    );
    if let Some(commit) = &rollout.record.reverted_by {
        text.push_str(&format!(", reverted by {}", short(commit)));
    }
    text
}

/// Subjects longer than this are cut in the table (JSON has them whole).
const SUBJECT_WIDTH: usize = 50;

fn render_table(
    revisions: &[Revision],
    rows: &[Row<'_>],
    known: bool,
    out: &mut Output,
) -> std::io::Result<()> {
    // Authors and subjects are anyone's text: escapes are shown, not run.
    let authors: Vec<String> = rows
        .iter()
        .map(|row| printable_line(row.author).into_owned())
        .collect();
    let subjects: Vec<String> = rows
        .iter()
        .map(|row| {
            let subject = printable_line(row.subject);
            if subject.chars().count() > SUBJECT_WIDTH {
                let cut: String = subject.chars().take(SUBJECT_WIDTH - 1).collect();
                format!("{cut}…")
            } else {
                subject.into_owned()
            }
        })
        .collect();
    let width = |header: &str, cells: &mut dyn Iterator<Item = usize>| {
        cells.fold(header.chars().count(), usize::max)
    };
    let date_width = width("WHEN", &mut rows.iter().map(|r| r.date.len()));
    let author_width = width("AUTHOR", &mut authors.iter().map(|a| a.chars().count()));
    let subject_width = width("SUBJECT", &mut subjects.iter().map(|s| s.chars().count()));
    let pad = |text: &str, width: usize| {
        let fill = width.saturating_sub(text.chars().count());
        format!("{text}{}", " ".repeat(fill))
    };
    out.line(format_args!(
        "{}  {}  {}  {}  OUTCOME",
        pad("COMMIT", 12),
        pad("WHEN", date_width),
        pad("AUTHOR", author_width),
        pad("SUBJECT", subject_width),
    ))?;
    for (((revision, row), author), subject) in
        revisions.iter().zip(rows).zip(&authors).zip(&subjects)
    {
        let outcome = outcome_text(revision, known);
        let painted = match (revision.valid, recorded(revision, known).map(|r| r.outcome)) {
            (false, _) | (true, Some(Outcome::Failed)) => out.red(&outcome),
            (true, Some(Outcome::Succeeded)) => out.green(&outcome),
            (true, None) => outcome,
        };
        out.line(format_args!(
            "{}  {}  {}  {}  {painted}",
            short(&row.commit),
            pad(&row.date, date_width),
            pad(author, author_width),
            pad(subject, subject_width),
        ))?;
    }
    Ok(())
}

/// `2026-11-24T01:02:03+01:00`: like `git log --format=%aI`.
fn iso_date(time: git2::Time) -> String {
    let offset = i64::from(time.offset_minutes());
    let local = time.seconds() + offset * 60;
    let utc = crate::reconcile::time::format_rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(local).unwrap_or(0)),
    );
    let sign = if offset < 0 { '-' } else { '+' };
    format!(
        "{}{sign}{:02}:{:02}",
        utc.trim_end_matches('Z'),
        offset.abs() / 60,
        offset.abs() % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_keep_the_author_offset() {
        for (seconds, offset, expected) in [
            (1_795_395_723, 0, "2026-11-23T01:02:03+00:00"),
            (1_795_395_723, 60, "2026-11-23T02:02:03+01:00"),
            (1_795_395_723, -330, "2026-11-22T19:32:03-05:30"),
        ] {
            assert_eq!(iso_date(git2::Time::new(seconds, offset)), expected);
        }
    }
}
