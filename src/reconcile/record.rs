//! The record of one rollout, as the leader appends it to the note of the
//! deployed commit (`refs/notes/flotilla`, see [`crate::repo::append_note`]), and
//! read back by `flotilla history` and `flotilla rollback`.
//!
//! The text is meant for people first (`git log --notes=flotilla`):
//!
//! ```text
//! flotilla: rollout failed at 2026-11-24T01:05:00Z in 65.0s
//!   Deployment default/web: failed, revision 77aa88bb99cc, 0/6 ready (node-1: 1, node-2: 1)
//!   reason: Deployment default/web: progress deadline of 60s exceeded
//!   | replica 0 on node-1: container app exited with code 1 (restarted 3 times)
//!   reverted by 1234567890abcdef1234567890abcdef12345678
//! ```
//!
//! Reading is tolerant: a note may hold several records (one per rollout of
//! the commit), and lines this version does not understand — written by hand,
//! by an older leader, or by a newer one — are skipped, never an error.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// How every record's first line starts.
pub(crate) const RECORD_PREFIX: &str = "flotilla: rollout ";

/// A failing container's log excerpt, as committed for ever into the revert
/// message and the note (readable by anyone who can read the repository):
/// at most its last this many lines,
pub(crate) const LOG_EXCERPT_LINES: usize = 10;
/// each cut to this many characters,
pub(crate) const LOG_EXCERPT_LINE_CHARS: usize = 200;
/// and this many bytes in all (the oldest lines are left out first).
pub(crate) const LOG_EXCERPT_BYTES: usize = 2048;

/// How a rollout, or one object's part of it, ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Outcome> {
        match text {
            "succeeded" => Some(Outcome::Succeeded),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rollout of a commit: when it finished, how long it took, and how each
/// object fared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    pub outcome: Outcome,
    /// RFC 3339, UTC (`2026-11-24T01:02:03Z`), kept as written.
    pub finished_at: String,
    /// Rendered with a tenth of a second's precision.
    #[serde(rename = "durationSeconds", serialize_with = "seconds")]
    pub duration: Duration,
    pub objects: Vec<ObjectOutcome>,
    /// Why it failed; may span several lines.
    pub reason: Option<String>,
    /// The commit that reverted this one after the failure.
    pub reverted_by: Option<String>,
}

/// One object's part of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectOutcome {
    /// `Deployment`, `Node`...
    pub kind: String,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
    pub outcome: Outcome,
    /// The pod template's hash ([`crate::manifest::template_hash`]).
    pub revision: String,
    pub ready: u32,
    pub desired: u32,
    /// Ready replicas per node, in the order written.
    #[serde(serialize_with = "per_node_map")]
    pub per_node: Vec<(String, u32)>,
}

impl ObjectOutcome {
    /// Whether this is the object `kind namespace/name` (kind compared
    /// without regard to case).
    pub fn is(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.namespace == namespace && self.name == name
    }
}

impl RolloutRecord {
    /// The record's text: a header line, then one indented line per object,
    /// the reason (further lines prefixed `  | `) and the reverting commit.
    /// No trailing newline.
    pub fn render(&self) -> String {
        let mut text = format!(
            "{RECORD_PREFIX}{} at {} in {}",
            self.outcome,
            one_line(&self.finished_at),
            format_duration(self.duration)
        );
        for object in &self.objects {
            let _ = write!(text, "\n  {} ", one_line(&object.kind));
            if !object.namespace.is_empty() {
                let _ = write!(text, "{}/", one_line(&object.namespace));
            }
            let _ = write!(
                text,
                "{}: {}, revision {}, {}/{} ready",
                one_line(&object.name),
                object.outcome,
                one_line(&object.revision),
                object.ready,
                object.desired
            );
            if !object.per_node.is_empty() {
                let nodes: Vec<String> = object
                    .per_node
                    .iter()
                    .map(|(node, ready)| format!("{}: {ready}", one_line(node)))
                    .collect();
                let _ = write!(text, " ({})", nodes.join(", "));
            }
        }
        if let Some(reason) = &self.reason {
            let normalized = reason.replace("\r\n", "\n").replace('\r', "\n");
            let mut lines = normalized.trim_end_matches('\n').split('\n');
            let first = lines.next().unwrap_or("");
            text.push_str("\n  reason:");
            if !first.is_empty() {
                text.push(' ');
                text.push_str(&super::printable::printable_text(first));
            }
            for line in lines {
                // No trailing blank: `git notes edit` would strip it.
                text.push_str("\n  |");
                if !line.is_empty() {
                    text.push(' ');
                    text.push_str(&super::printable::printable_text(line));
                }
            }
        }
        if let Some(commit) = &self.reverted_by {
            let _ = write!(text, "\n  reverted by {}", one_line(commit));
        }
        text
    }

    /// Every record of a note, in the order written (oldest first). Lines
    /// that belong to no record, or that this version does not understand,
    /// are skipped.
    pub fn parse_all(note: &str) -> Vec<RolloutRecord> {
        parse_records(
            note,
            parse_header,
            |record| &mut record.reason,
            |record, body| {
                if let Some(commit) = body.strip_prefix("reverted by ") {
                    let commit = commit.trim();
                    if !commit.is_empty() && !commit.contains(' ') {
                        record.reverted_by = Some(commit.to_string());
                    }
                } else if let Some(object) = parse_object(body) {
                    record.objects.push(object);
                }
                true
            },
        )
    }

    /// This record's line for the object, if it names it.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<&ObjectOutcome> {
        self.objects.iter().find(|o| o.is(kind, namespace, name))
    }
}

/// `12.3s`: seconds with one decimal, rounded to the nearest tenth.
pub(crate) fn format_duration(duration: Duration) -> String {
    let tenths = (duration.as_millis() + 50) / 100;
    format!("{}.{}s", tenths / 10, tenths % 10)
}

/// `12.3s`, `12s`, `0.25s` back to a duration (exact decimal, no floats).
fn parse_duration(text: &str) -> Option<Duration> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().ok()?
    };
    Some(Duration::new(secs, nanos))
}

/// The records of one kind in a note, in the order written: a line at the
/// margin starts a record when `header` reads it (else it ends the current
/// one); an indented `reason:` line and the `| ` lines after it are its
/// reason; every other indented line goes to `line`, which returns false
/// when the record cannot be kept. Lines that belong to no record are
/// skipped.
pub(crate) fn parse_records<R>(
    note: &str,
    header: impl Fn(&str) -> Option<R>,
    reason: impl Fn(&mut R) -> &mut Option<String>,
    mut line: impl FnMut(&mut R, &str) -> bool,
) -> Vec<R> {
    let mut records = Vec::new();
    let mut current: Option<R> = None;
    // Whether the last line read belongs to the current record's reason,
    // so a `| ` line continues it.
    let mut in_reason = false;
    for raw in note.lines() {
        let text = raw.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        if !text.starts_with([' ', '\t']) {
            records.extend(current.take());
            current = header(text);
            in_reason = false;
            continue;
        }
        let Some(record) = current.as_mut() else {
            continue;
        };
        let body = text.trim_start();
        if let Some(rest) = body.strip_prefix('|') {
            if in_reason {
                let reason = reason(record).get_or_insert_with(String::new);
                reason.push('\n');
                reason.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            }
            continue;
        }
        in_reason = false;
        if let Some(rest) = body.strip_prefix("reason:") {
            *reason(record) = Some(rest.strip_prefix(' ').unwrap_or(rest).to_string());
            in_reason = true;
        } else if !line(record, body) {
            current = None;
        }
    }
    records.extend(current);
    records
}

/// `flotilla: rollout succeeded at 2026-11-24T01:02:03Z in 12.3s`
fn parse_header(line: &str) -> Option<RolloutRecord> {
    let rest = line.strip_prefix(RECORD_PREFIX)?;
    let (outcome, rest) = rest.split_once(" at ")?;
    let (finished_at, duration) = rest.rsplit_once(" in ")?;
    if finished_at.is_empty() || finished_at.contains(' ') {
        return None;
    }
    Some(RolloutRecord {
        outcome: Outcome::parse(outcome)?,
        finished_at: finished_at.to_string(),
        duration: parse_duration(duration.trim())?,
        objects: Vec::new(),
        reason: None,
        reverted_by: None,
    })
}

/// `Deployment default/web: succeeded, revision 5f2c1a9e8b7d, 6/6 ready (node-1: 2, node-2: 4)`
/// (`Node n1: ...` for cluster-scoped kinds; the node list is optional).
fn parse_object(line: &str) -> Option<ObjectOutcome> {
    let (kind, rest) = line.split_once(' ')?;
    if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (object, rest) = rest.split_once(": ")?;
    let (namespace, name) = object.split_once('/').unwrap_or(("", object));
    if name.is_empty() || name.contains([' ', '/']) || namespace.contains(' ') {
        return None;
    }
    let (outcome, rest) = rest.split_once(", revision ")?;
    let (revision, rest) = rest.split_once(", ")?;
    let (counts, nodes) = match rest.split_once(" ready") {
        Some((counts, nodes)) => (counts, nodes.trim()),
        None => return None,
    };
    let (ready, desired) = counts.split_once('/')?;
    let per_node = if nodes.is_empty() {
        Vec::new()
    } else {
        let list = nodes.strip_prefix('(')?.strip_suffix(')')?;
        list.split(", ")
            .map(|entry| {
                let (node, ready) = entry.rsplit_once(": ")?;
                Some((node.to_string(), ready.parse().ok()?))
            })
            .collect::<Option<Vec<_>>>()?
    };
    Some(ObjectOutcome {
        kind: kind.to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        outcome: Outcome::parse(outcome)?,
        revision: revision.to_string(),
        ready: ready.parse().ok()?,
        desired: desired.parse().ok()?,
        per_node,
    })
}

/// Fields other than the reason are one line each; a stray line break in
/// one must not start a line the parser would read as something else.
fn one_line(text: &str) -> String {
    super::printable::printable_line(&text.replace(['\n', '\r'], " ")).into_owned()
}

/// The lines of a failing container's `logs` (its last lines, as the node
/// sent them) that are committed: at most [`LOG_EXCERPT_LINES`], the last
/// ones, each cut to [`LOG_EXCERPT_LINE_CHARS`] characters (a cut line ends
/// in `…`) with its control characters escaped (no terminal escape, carriage
/// return or NUL is committed), and [`LOG_EXCERPT_BYTES`] bytes in all.
/// Trailing blank lines are dropped.
pub(crate) fn log_excerpt(logs: &str) -> Vec<String> {
    let lines = logs.trim_end_matches(['\n', '\r']).lines();
    let mut excerpt = Vec::new();
    let mut bytes = 0;
    for line in lines.rev().take(LOG_EXCERPT_LINES) {
        // One character more than is kept tells a cut line, whatever its length.
        let head: String = line.chars().take(LOG_EXCERPT_LINE_CHARS + 1).collect();
        let escaped = super::printable::printable_text(&head);
        let mut shown: String = escaped.chars().take(LOG_EXCERPT_LINE_CHARS).collect();
        if escaped.chars().count() > LOG_EXCERPT_LINE_CHARS {
            shown.push('…');
        }
        bytes += shown.len() + 1;
        if bytes > LOG_EXCERPT_BYTES {
            break;
        }
        excerpt.push(shown);
    }
    excerpt.reverse();
    excerpt
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn per_node_map<S: Serializer>(
    per_node: &[(String, u32)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(per_node.iter().map(|(node, ready)| (node, ready)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_control_character_is_committed_in_a_note() {
        let record = RolloutRecord {
            outcome: Outcome::Failed,
            finished_at: "2026-11-24T01:05:00Z\x1b[8m".into(),
            duration: Duration::from_secs(1),
            objects: Vec::new(),
            reason: Some("boom\x1b[2J\x07\nnext\0line\r\nlast\u{9b}".into()),
            reverted_by: None,
        };
        assert_eq!(
            record.render(),
            "flotilla: rollout failed at 2026-11-24T01:05:00Z\\x1b[8m in 1.0s\n  \
             reason: boom\\x1b[2J\\x07\n  | next\\x00line\n  | last\\u{9b}"
        );
    }

    #[test]
    fn log_excerpts_are_bounded_and_escaped() {
        let check = |logs: &str, expected: &[&str]| {
            assert_eq!(log_excerpt(logs), expected, "{logs:?}");
        };
        check("", &[]);
        check("\n\n", &[]);
        check("one\r\ntwo\n\n", &["one", "two"]);
        // The last ten lines.
        let many: String = (1..=25).map(|i| format!("line {i}\n")).collect();
        let last: Vec<String> = (16..=25).map(|i| format!("line {i}")).collect();
        assert_eq!(log_excerpt(&many), last);
        // No terminal escape, carriage return or NUL is committed.
        check(
            "\x1b[2J\x1b[31mboom\x07\rprogress 50%\rprogress 100%\0\ttab",
            &["\\x1b[2J\\x1b[31mboom\\x07\\x0dprogress 50%\\x0dprogress 100%\\x00\ttab"],
        );
        // Long lines are cut (in characters, escapes counted as shown).
        let long = "é".repeat(500);
        let cut = format!("{}…", "é".repeat(LOG_EXCERPT_LINE_CHARS));
        check(&long, &[&cut]);
        check(
            &"x".repeat(LOG_EXCERPT_LINE_CHARS),
            &[&"x".repeat(LOG_EXCERPT_LINE_CHARS)],
        );
        // Ten cut lines of four-byte characters pass the byte bound: the
        // oldest go.
        let wide = "😀".repeat(300);
        let logs = format!("{wide}\n").repeat(10);
        let excerpt = log_excerpt(&logs);
        let bytes: usize = excerpt.iter().map(|line| line.len() + 1).sum();
        assert!(bytes <= LOG_EXCERPT_BYTES, "{bytes}");
        assert_eq!(
            excerpt.len(),
            LOG_EXCERPT_BYTES / (4 * LOG_EXCERPT_LINE_CHARS + 4)
        );
        // Whatever the input, the bound holds.
        let hostile = "\x1b".repeat(100_000) + "\n" + &"\0".repeat(100_000);
        let bytes: usize = log_excerpt(&hostile).iter().map(|l| l.len() + 1).sum();
        assert!(bytes <= LOG_EXCERPT_BYTES, "{bytes}");
    }

    const SUCCEEDED: &str = "\
flotilla: rollout succeeded at 2026-11-24T01:02:03Z in 12.3s
  Deployment default/web: succeeded, revision 5f2c1a9e8b7d, 6/6 ready (node-1: 2, node-2: 2, node-3: 2)
  Deployment default/worker: succeeded, revision 0a1b2c3d4e5f, 2/2 ready (node-2: 1, node-3: 1)";

    const FAILED: &str = "\
flotilla: rollout failed at 2026-11-24T01:05:00Z in 65.0s
  Deployment default/web: failed, revision 77aa88bb99cc, 0/6 ready (node-1: 1, node-2: 1)
  reason: Deployment default/web: progress deadline of 60s exceeded
  | replica 0 on node-1: container app exited with code 1 (restarted 3 times)
  | last log lines: boom
  reverted by 1234567890abcdef1234567890abcdef12345678";

    fn object(name: &str, outcome: Outcome, ready: u32, per_node: &[(&str, u32)]) -> ObjectOutcome {
        ObjectOutcome {
            kind: "Deployment".into(),
            namespace: "default".into(),
            name: name.into(),
            outcome,
            revision: "5f2c1a9e8b7d".into(),
            ready,
            desired: 6,
            per_node: per_node.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
        }
    }

    fn succeeded() -> RolloutRecord {
        RolloutRecord {
            outcome: Outcome::Succeeded,
            finished_at: "2026-11-24T01:02:03Z".into(),
            duration: Duration::from_millis(12_300),
            objects: vec![
                object(
                    "web",
                    Outcome::Succeeded,
                    6,
                    &[("node-1", 2), ("node-2", 2), ("node-3", 2)],
                ),
                ObjectOutcome {
                    name: "worker".into(),
                    revision: "0a1b2c3d4e5f".into(),
                    ready: 2,
                    desired: 2,
                    per_node: vec![("node-2".into(), 1), ("node-3".into(), 1)],
                    ..object("worker", Outcome::Succeeded, 2, &[])
                },
            ],
            reason: None,
            reverted_by: None,
        }
    }

    fn failed() -> RolloutRecord {
        RolloutRecord {
            outcome: Outcome::Failed,
            finished_at: "2026-11-24T01:05:00Z".into(),
            duration: Duration::from_secs(65),
            objects: vec![ObjectOutcome {
                revision: "77aa88bb99cc".into(),
                ..object("web", Outcome::Failed, 0, &[("node-1", 1), ("node-2", 1)])
            }],
            reason: Some(
                "Deployment default/web: progress deadline of 60s exceeded\n\
                 replica 0 on node-1: container app exited with code 1 (restarted 3 times)\n\
                 last log lines: boom"
                    .into(),
            ),
            reverted_by: Some("1234567890abcdef1234567890abcdef12345678".into()),
        }
    }

    #[test]
    fn renders_the_documented_text() {
        assert_eq!(succeeded().render(), SUCCEEDED);
        assert_eq!(failed().render(), FAILED);
    }

    #[test]
    fn parses_the_documented_text() {
        assert_eq!(RolloutRecord::parse_all(SUCCEEDED), vec![succeeded()]);
        assert_eq!(RolloutRecord::parse_all(FAILED), vec![failed()]);
    }

    #[test]
    fn round_trips() {
        let cluster_scoped = RolloutRecord {
            objects: vec![ObjectOutcome {
                kind: "Node".into(),
                namespace: String::new(),
                name: "n1".into(),
                per_node: Vec::new(),
                ..object("n1", Outcome::Succeeded, 0, &[])
            }],
            duration: Duration::ZERO,
            ..succeeded()
        };
        let empty_lines_in_reason = RolloutRecord {
            reason: Some("first\n\nthird\n  indented".into()),
            reverted_by: None,
            ..failed()
        };
        let reason_starting_with_a_newline = RolloutRecord {
            reason: Some("\nsecond".into()),
            ..failed()
        };
        let no_objects = RolloutRecord {
            objects: Vec::new(),
            ..failed()
        };
        for record in [
            succeeded(),
            failed(),
            cluster_scoped,
            empty_lines_in_reason,
            reason_starting_with_a_newline,
            no_objects,
        ] {
            let text = record.render();
            assert_eq!(
                RolloutRecord::parse_all(&text),
                vec![record],
                "for:\n{text}"
            );
            assert!(
                text.lines().all(|l| l == l.trim_end()),
                "no trailing blanks:\n{text:?}"
            );
        }
    }

    #[test]
    fn several_records_in_one_note_as_append_note_joins_them() {
        let note = format!("{SUCCEEDED}\n\n{FAILED}\n\n{SUCCEEDED}\n");
        assert_eq!(
            RolloutRecord::parse_all(&note),
            vec![succeeded(), failed(), succeeded()]
        );
        // Without the blank line between them too.
        let note = format!("{FAILED}\n{SUCCEEDED}");
        assert_eq!(RolloutRecord::parse_all(&note), vec![failed(), succeeded()]);
    }

    #[test]
    fn unknown_lines_are_skipped() {
        let note = format!(
            "deployed by hand, see ticket 42\n\
             flotilla: rolled out 2026-11-23T01:02:03Z\n  Deployment default/web: 3/3 ready\n\n\
             {SUCCEEDED}\n  some future field: 7\n  Deployment default/web: paused\n\n\
             Reviewed-by: someone\n  | not a reason of anything\n  Deployment default/x: failed, revision a, 1/1 ready\n\n\
             {FAILED}\n  | a continuation after the reverted-by line is not the reason's\n"
        );
        assert_eq!(RolloutRecord::parse_all(&note), vec![succeeded(), failed()]);
        assert_eq!(RolloutRecord::parse_all(""), vec![]);
        assert_eq!(RolloutRecord::parse_all("\n\n  \n"), vec![]);
    }

    #[test]
    fn malformed_lines_are_skipped_not_misread() {
        let check = |line: &str| {
            let note = format!("flotilla: rollout succeeded at T in 1.0s\n  {line}");
            let records = RolloutRecord::parse_all(&note);
            assert_eq!(records.len(), 1, "{line}");
            assert_eq!(records[0].objects, vec![], "{line}");
        };
        check("Deployment default/web: unknown, revision a, 1/1 ready");
        check("Deployment default/web: succeeded, revision a, 1 ready");
        check("Deployment default/web: succeeded, revision a, x/1 ready");
        check("Deployment default/web: succeeded, revision a, 1/1 ready (n1 2)");
        check("Deployment default/web: succeeded, revision a, 1/1 ready (n1: x)");
        check("Deploy-ment default/web: succeeded, revision a, 1/1 ready");
        check("Deployment a/b/c: succeeded, revision a, 1/1 ready");
        for header in [
            "flotilla: rollout succeeded at T",
            "flotilla: rollout done at T in 1.0s",
            "flotilla: rollout succeeded at T in 1.0",
            "flotilla: rollout succeeded at T in -1.0s",
            "flotilla: rollout succeeded at T in 1.0000000001s",
        ] {
            assert_eq!(RolloutRecord::parse_all(header), vec![], "{header}");
        }
    }

    #[test]
    fn line_breaks_in_fields_cannot_forge_lines() {
        let record = RolloutRecord {
            reason: Some("one\r\ntwo\rthree\n".into()),
            objects: vec![ObjectOutcome {
                revision: "abc\nflotilla: rollout succeeded at X in 1.0s".into(),
                ..object("web", Outcome::Failed, 0, &[])
            }],
            ..failed()
        };
        let text = record.render();
        let parsed = RolloutRecord::parse_all(&text);
        assert_eq!(parsed.len(), 1, "{text}");
        assert_eq!(parsed[0].reason.as_deref(), Some("one\ntwo\nthree"));
        assert_eq!(
            parsed[0].objects[0].revision,
            "abc flotilla: rollout succeeded at X in 1.0s"
        );
    }

    #[test]
    fn durations() {
        for (duration, text) in [
            (Duration::ZERO, "0.0s"),
            (Duration::from_millis(12_340), "12.3s"),
            (Duration::from_millis(12_350), "12.4s"),
            (Duration::from_millis(49), "0.0s"),
            (Duration::from_secs(3600), "3600.0s"),
        ] {
            assert_eq!(format_duration(duration), text);
        }
        for (text, duration) in [
            ("12.3s", Some(Duration::from_millis(12_300))),
            ("12s", Some(Duration::from_secs(12))),
            ("0.25s", Some(Duration::from_millis(250))),
            ("1.s", Some(Duration::from_secs(1))),
            (".5s", None),
            ("12", None),
            ("1e3s", None),
        ] {
            assert_eq!(parse_duration(text), duration, "{text}");
        }
    }

    #[test]
    fn json_form() {
        let json = serde_json::to_value(failed()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "outcome": "failed",
                "finishedAt": "2026-11-24T01:05:00Z",
                "durationSeconds": 65.0,
                "objects": [{
                    "kind": "Deployment",
                    "namespace": "default",
                    "name": "web",
                    "outcome": "failed",
                    "revision": "77aa88bb99cc",
                    "ready": 0,
                    "desired": 6,
                    "perNode": {"node-1": 1, "node-2": 1}
                }],
                "reason": "Deployment default/web: progress deadline of 60s exceeded\nreplica 0 on node-1: container app exited with code 1 (restarted 3 times)\nlast log lines: boom",
                "revertedBy": "1234567890abcdef1234567890abcdef12345678"
            })
        );
    }
}
