//! The record of one finished run of a pod set that completes (a Job), as
//! the leader appends it to the note of the commit that declared the run's
//! revision (`refs/notes/flotilla`), and read back by the leader and
//! `flotilla plan` (so a finished run is not run again) and by
//! `flotilla history job/NAME`:
//!
//! ```text
//! flotilla: run Job default/migrate failed at 2026-12-03T18:00:10Z in 40.0s
//!   revision 77aa88bb99cc, started 2026-12-03T17:59:30Z, 0/1 succeeded, 3 failed
//!   reason: BackoffLimitExceeded
//!   | last log lines of flotilla.job.default.migrate.2.77aa88bb99cc.main on node-1:
//!   |     no database
//! ```
//!
//! Like rollout records, it is text for people first, and reading is
//! tolerant: lines this version does not understand are skipped.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::record::{format_duration, parse_records, Outcome};
use super::time::{format_rfc3339, parse_rfc3339};

/// How every run record's first line starts.
pub(crate) const RUN_PREFIX: &str = "flotilla: run ";

/// One finished run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// `Job`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The pod template's hash: the run's revision.
    pub revision: String,
    pub outcome: Outcome,
    /// `BackoffLimitExceeded` or `DeadlineExceeded`, then the last log lines
    /// of a failed pod (further lines); `None` for a success.
    pub reason: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub finished_at: SystemTime,
    /// Successes that counted, and how many were needed (`None`: one, of
    /// any pod).
    pub succeeded: u32,
    pub completions: Option<u32>,
    /// Failed pods, and with `restartPolicy: OnFailure` container restarts.
    pub failed: u32,
}

fn rfc3339<S: serde::Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_rfc3339(*time))
}

impl RunRecord {
    pub fn duration(&self) -> Duration {
        self.finished_at
            .duration_since(self.started_at)
            .unwrap_or_default()
    }

    /// The first line of the reason: `BackoffLimitExceeded`.
    pub fn reason_code(&self) -> Option<&str> {
        self.reason.as_deref().and_then(|r| r.lines().next())
    }

    /// Whether this is the run of `revision` of `kind namespace/name`.
    pub fn is(&self, kind: &str, namespace: &str, name: &str, revision: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind)
            && self.namespace == namespace
            && self.name == name
            && self.revision == revision
    }

    /// `6/6 succeeded` or `1 succeeded (of any pod)`.
    pub fn completions_text(&self) -> String {
        match self.completions {
            Some(c) => format!("{}/{c} succeeded", self.succeeded),
            None => format!("{} succeeded (of any pod)", self.succeeded),
        }
    }

    /// The record's text, no trailing newline.
    pub fn render(&self) -> String {
        let line = |text: &str| {
            super::printable::printable_line(&text.replace(['\n', '\r'], " ")).into_owned()
        };
        let mut text = format!(
            "{RUN_PREFIX}{} {}/{} {} at {} in {}",
            line(&self.kind),
            line(&self.namespace),
            line(&self.name),
            self.outcome,
            format_rfc3339(self.finished_at),
            format_duration(self.duration()),
        );
        let _ = write!(
            text,
            "\n  revision {}, started {}, {}, {} failed",
            line(&self.revision),
            format_rfc3339(self.started_at),
            self.completions_text(),
            self.failed
        );
        if let Some(reason) = &self.reason {
            let normalized = reason.replace("\r\n", "\n").replace('\r', "\n");
            let mut lines = normalized.trim_end_matches('\n').split('\n');
            let _ = write!(
                text,
                "\n  reason: {}",
                super::printable::printable_text(lines.next().unwrap_or(""))
            );
            for l in lines {
                text.push_str("\n  |");
                if !l.is_empty() {
                    text.push(' ');
                    text.push_str(&super::printable::printable_text(l));
                }
            }
        }
        text
    }

    /// Every run record of a note, in the order written; anything else
    /// (rollout records, lines written by hand) is skipped.
    pub fn parse_all(note: &str) -> Vec<RunRecord> {
        let mut records = parse_records(
            note,
            parse_header,
            |record| &mut record.reason,
            |record, body| match body.strip_prefix("revision ") {
                // A run without its revision cannot be told apart.
                Some(rest) => parse_counts(rest, record).is_some(),
                None => true,
            },
        );
        records.retain(|r| !r.revision.is_empty());
        records
    }
}

/// `flotilla: run Job default/pi succeeded at 2026-12-03T18:00:00Z in 12.0s`
fn parse_header(line: &str) -> Option<RunRecord> {
    let rest = line.strip_prefix(RUN_PREFIX)?;
    let mut words = rest.split(' ');
    let kind = words.next()?;
    let (namespace, name) = words.next()?.split_once('/')?;
    let outcome = match words.next()? {
        "succeeded" => Outcome::Succeeded,
        "failed" => Outcome::Failed,
        _ => return None,
    };
    if words.next()? != "at" {
        return None;
    }
    let finished_at = parse_rfc3339(words.next()?)?;
    if kind.is_empty() || name.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(RunRecord {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        revision: String::new(),
        outcome,
        reason: None,
        started_at: finished_at,
        finished_at,
        succeeded: 0,
        completions: None,
        failed: 0,
    })
}

/// `77aa88bb99cc, started 2026-12-03T17:59:48Z, 6/6 succeeded, 1 failed`
fn parse_counts(rest: &str, record: &mut RunRecord) -> Option<()> {
    let mut parts = rest.split(", ");
    let revision = parts.next()?;
    let started = parse_rfc3339(parts.next()?.strip_prefix("started ")?)?;
    let succeeded = parts.next()?;
    let failed = parts.next()?.strip_suffix(" failed")?.parse().ok()?;
    let (succeeded, completions) = match succeeded.strip_suffix(" succeeded (of any pod)") {
        Some(n) => (n.parse().ok()?, None),
        None => {
            let (n, c) = succeeded.strip_suffix(" succeeded")?.split_once('/')?;
            (n.parse().ok()?, Some(c.parse().ok()?))
        }
    };
    if revision.is_empty() || revision.contains(' ') {
        return None;
    }
    record.revision = revision.to_string();
    record.started_at = started;
    record.succeeded = succeeded;
    record.completions = completions;
    record.failed = failed;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn failed() -> RunRecord {
        RunRecord {
            kind: "Job".into(),
            namespace: "default".into(),
            name: "migrate".into(),
            revision: "77aa88bb99cc".into(),
            outcome: Outcome::Failed,
            reason: Some("BackoffLimitExceeded\nlast log lines of c on node-1:\n    no database\n    \u{1b}[31mred".into()),
            started_at: at(1_764_784_770),
            finished_at: at(1_764_784_810),
            succeeded: 0,
            completions: Some(1),
            failed: 3,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let record = failed();
        let text = record.render();
        insta::assert_snapshot!(text);
        let parsed = RunRecord::parse_all(&text);
        let mut expected = record.clone();
        expected.reason = Some("BackoffLimitExceeded\nlast log lines of c on node-1:\n    no database\n    \\x1b[31mred".into());
        assert_eq!(parsed, vec![expected]);
        assert_eq!(parsed[0].reason_code(), Some("BackoffLimitExceeded"));
        assert_eq!(parsed[0].duration(), Duration::from_secs(40));

        let any = RunRecord {
            outcome: Outcome::Succeeded,
            reason: None,
            completions: None,
            succeeded: 1,
            failed: 0,
            ..failed()
        };
        assert_eq!(RunRecord::parse_all(&any.render()), vec![any]);
    }

    /// A note holds rollout records too, and lines written by hand.
    #[test]
    fn other_records_and_stray_lines_are_skipped() {
        let note = format!(
            "flotilla: rollout succeeded at 2026-11-24T01:02:03Z in 12.3s\n  Deployment default/web: succeeded, revision 5f2c1a9e8b7d, 1/1 ready\n{}\nhand written\n  revision nothing\nflotilla: run Job default/x succeeded at 2026-13-01T00:00:00Z in 1.0s\n  revision aa, started 2026-11-24T01:02:03Z, 1/1 succeeded, 0 failed\nflotilla: run Job default/y succeeded at 2026-11-24T01:02:03Z in 1.0s\n",
            failed().render()
        );
        assert_eq!(
            RunRecord::parse_all(&note),
            vec![failed().clone().tap_reason()]
        );
        let rollouts = super::super::record::RolloutRecord::parse_all(&note);
        assert_eq!(rollouts.len(), 1);
        assert_eq!(rollouts[0].objects.len(), 1);
    }

    trait TapReason {
        fn tap_reason(self) -> Self;
    }

    impl TapReason for RunRecord {
        /// The reason as read back: control characters escaped.
        fn tap_reason(mut self) -> Self {
            self.reason = self.reason.map(|r| r.replace('\u{1b}', "\\x1b"));
            self
        }
    }
}
