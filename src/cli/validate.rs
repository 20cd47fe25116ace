//! `flotilla validate`: every problem of a revision's manifests, or "valid";
//! with `--revs-from-stdin`, of every revision a push adds (the pre-receive
//! hook), naming each invalid one.

use std::collections::HashMap;
use std::io::BufRead;

use clap::Args;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{exit, short, Output, OutputFormat, SourceArgs};
use crate::manifest::model::Unseal;
use crate::manifest::{self, DesiredState, Diagnostic, Severity};
use crate::repo::{self, printable_line, printable_text};
use crate::seal::{self, Identities};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Validate every revision listed on standard input, one a line (as
    /// `git rev-list --reverse` prints them; the last is the tip). Exit 1
    /// when any is invalid.
    #[arg(long, conflicts_with_all = ["rev", "working_tree"])]
    pub revs_from_stdin: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    /// Check that every Secret value opens with the age identity
    /// (--age-identity, else git config flotilla.ageIdentity, which the
    /// leader records); without one, a revision with Secrets is invalid.
    /// The pre-receive hook passes it.
    #[arg(long)]
    pub open_secrets: bool,
    #[command(flatten)]
    pub identity: super::secret::AgeIdentityArgs,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    valid: bool,
    commit: String,
    /// The first line of the commit's message (absent for a working tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    files: usize,
    nodes: usize,
    workloads: usize,
    services: usize,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<Diagnostic>,
}

/// `--revs-from-stdin --output json`: one report per revision, in order.
#[derive(Serialize)]
struct Reports<'a> {
    valid: bool,
    revisions: &'a [Report],
}

pub(super) fn run(args: &ValidateArgs, out: &mut Output) -> anyhow::Result<u8> {
    if args.revs_from_stdin {
        return run_many(args, std::io::stdin().lock(), out);
    }
    let (snapshot, policy) = read_snapshot(&args.source, |_| Ok("HEAD".to_string()), out)?;
    let secrets = secret_check(args, &repo::open(&args.source.repo)?)?;
    let (report, _) = validate(snapshot, None, &policy, secrets.as_ref());
    match args.output {
        OutputFormat::Json => out.json(&report)?,
        OutputFormat::Text => render_text(&report, out)?,
    }
    Ok(if report.valid {
        exit::OK
    } else {
        exit::FAILURE
    })
}

/// `--open-secrets`: whether to open every Secret value, and with which
/// identity (`None`: the leader has none).
struct SecretCheck(Option<Identities>);

fn secret_check(
    args: &ValidateArgs,
    repository: &git2::Repository,
) -> anyhow::Result<Option<SecretCheck>> {
    if !args.open_secrets {
        return Ok(None);
    }
    Ok(Some(SecretCheck(args.identity.load(Some(repository))?)))
}

fn validate(
    snapshot: repo::Snapshot,
    subject: Option<String>,
    policy: &manifest::OperatorPolicy,
    secrets: Option<&SecretCheck>,
) -> (Report, DesiredState) {
    let loaded = manifest::load(&snapshot.files);
    let mut diagnostics = snapshot.diagnostics;
    diagnostics.extend(loaded.diagnostics);
    diagnostics.extend(manifest::check_operator_policy(&loaded.state, policy));
    if let Some(SecretCheck(identities)) = secrets {
        diagnostics.extend(seal::unopened_diagnostics(
            &snapshot.files,
            identities.as_ref().map(|i| i as &dyn Unseal),
        ));
        // What only opened values tell: each TLS pair matches, each Docker
        // config parses, each value read as a variable is text (the values
        // that do not open are reported above).
        if let Some(identities) = identities {
            let mut opened = loaded.state.clone();
            let _ = opened.open_secrets(identities);
            diagnostics.extend(crate::leader::pod_config::check_opened(&opened));
            diagnostics.extend(manifest::check_opened_secrets(&opened));
        }
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let report = Report {
        valid: errors == 0,
        commit: snapshot.commit,
        subject,
        files: snapshot.files.len(),
        nodes: loaded.state.nodes.len(),
        workloads: loaded.state.workloads.len(),
        services: loaded.state.services.len(),
        errors,
        warnings: diagnostics.len() - errors,
        diagnostics,
    };
    (report, loaded.state)
}

/// `immutable` ConfigMaps and Secrets: what `state` may not change of its
/// parent's (`manifest::check_immutable`), added to its report.
fn check_immutable_against_parent(
    repository: &git2::Repository,
    oid: git2::Oid,
    state: &DesiredState,
    previous: Option<&(git2::Oid, DesiredState)>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let Some(parent) = repository.find_commit(oid)?.parent_ids().next() else {
        return Ok(());
    };
    let loaded;
    let before = match previous.filter(|(previous, _)| *previous == parent) {
        Some((_, before)) => before,
        None => {
            let snapshot = repo::read_revision(repository, &parent.to_string())?;
            loaded = manifest::load(&snapshot.files).state;
            &loaded
        }
    };
    let refused = manifest::check_immutable(before, state);
    if !refused.is_empty() {
        report.errors += refused.len();
        report.valid = false;
        report.diagnostics.extend(refused);
    }
    Ok(())
}

/// Validates every revision `input` lists, each once (a repeated one is
/// skipped). Commits whose manifests are byte-for-byte those of a commit
/// already validated share its result rather than being parsed again, so a
/// long push of commits that do not touch manifests costs one validation.
///
/// Text: every invalid revision's diagnostics under a `commit SHA (subject):`
/// line, the last revision's (the tip's) diagnostics in full even when only
/// warnings, a summary line per revision and, when any is invalid, a line
/// naming each invalid commit.
fn run_many(args: &ValidateArgs, input: impl BufRead, out: &mut Output) -> anyhow::Result<u8> {
    let repository = repo::open(&args.source.repo)?;
    let policy = repo::operator_policy(&repository)?;
    let secrets = secret_check(args, &repository)?;
    let mut seen = std::collections::HashSet::new();
    let mut by_content: HashMap<[u8; 32], (Report, DesiredState)> = HashMap::new();
    // The commit validated last: in a push, usually the next one's parent.
    let mut previous: Option<(git2::Oid, DesiredState)> = None;
    let mut reports = Vec::new();
    for line in input.lines() {
        let line = line?;
        let rev = line.trim();
        if rev.is_empty() {
            continue;
        }
        let oid = repo::resolve(&repository, rev)?;
        if !seen.insert(oid) {
            continue;
        }
        let subject = repository
            .find_commit(oid)?
            .summary()
            .unwrap_or("")
            .to_string();
        let snapshot = repo::read_revision(&repository, &oid.to_string())?;
        let fingerprint = fingerprint(&snapshot);
        let (mut report, state) = match by_content.get(&fingerprint) {
            Some((same, state)) => (
                Report {
                    commit: snapshot.commit,
                    subject: Some(subject),
                    ..same.clone()
                },
                state.clone(),
            ),
            None => {
                let (report, state) = validate(snapshot, Some(subject), &policy, secrets.as_ref());
                by_content.insert(fingerprint, (report.clone(), state.clone()));
                (report, state)
            }
        };
        check_immutable_against_parent(&repository, oid, &state, previous.as_ref(), &mut report)?;
        previous = Some((oid, state));
        reports.push(report);
    }
    if reports.is_empty() {
        anyhow::bail!("--revs-from-stdin: no revision on standard input");
    }
    let valid = reports.iter().all(|r| r.valid);
    match args.output {
        OutputFormat::Json => out.json(&Reports {
            valid,
            revisions: &reports,
        })?,
        OutputFormat::Text => render_many(&reports, out)?,
    }
    Ok(if valid { exit::OK } else { exit::FAILURE })
}

/// What validation depends on: every manifest's path and text, and what the
/// tree walk reported.
fn fingerprint(snapshot: &repo::Snapshot) -> [u8; 32] {
    let mut hash = Sha256::new();
    for file in &snapshot.files {
        hash.update(file.path.as_bytes());
        hash.update([0]);
        hash.update((file.text.len() as u64).to_le_bytes());
        hash.update(file.text.as_bytes());
    }
    for diagnostic in &snapshot.diagnostics {
        hash.update(diagnostic.to_string().as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

fn render_many(reports: &[Report], out: &mut Output) -> std::io::Result<()> {
    let last = reports.len() - 1;
    for (i, report) in reports.iter().enumerate() {
        if !report.valid || (i == last && !report.diagnostics.is_empty()) {
            out.line(format_args!(
                "commit {} ({}):",
                short(&report.commit),
                printable_line(report.subject.as_deref().unwrap_or(""))
            ))?;
            render_diagnostics(&report.diagnostics, out)?;
        }
        render_summary(report, out)?;
    }
    let invalid: Vec<&Report> = reports.iter().filter(|r| !r.valid).collect();
    if !invalid.is_empty() {
        let plural = if reports.len() == 1 { "" } else { "s" };
        out.line(format_args!(
            "{}: {} of {} commit{plural} invalid:",
            out.red("invalid"),
            invalid.len(),
            reports.len(),
        ))?;
        for report in invalid {
            out.line(format_args!(
                "  {} {}",
                short(&report.commit),
                printable_line(report.subject.as_deref().unwrap_or(""))
            ))?;
        }
    }
    Ok(())
}

/// The manifests `source` names (`--rev`, else the revision
/// `default_rev` names), and the operator's policy of its repository (git
/// config `flotilla.*`) they are checked against. When that revision is
/// the commit checked out and the files on disk differ, says so on stderr.
pub(super) fn read_snapshot(
    source: &super::SourceArgs,
    default_rev: impl FnOnce(&git2::Repository) -> anyhow::Result<String>,
    out: &Output,
) -> anyhow::Result<(repo::Snapshot, manifest::OperatorPolicy)> {
    let repository = repo::open(&source.repo)?;
    let snapshot = if source.working_tree {
        repo::read_working_tree(&repository)?
    } else {
        let rev = match &source.rev {
            Some(rev) => rev.clone(),
            None => default_rev(&repository)?,
        };
        let snapshot = repo::read_revision(&repository, &rev)?;
        warn_if_working_tree_differs(&repository, &snapshot, out);
        snapshot
    };
    Ok((snapshot, repo::operator_policy(&repository)?))
}

/// Files named in the warning; the others are counted.
const LISTED_CHANGES: usize = 3;

/// Warns on stderr when `snapshot` is the commit HEAD points at and the
/// working tree's manifests differ from it: what is checked is then not
/// what the user sees.
fn warn_if_working_tree_differs(
    repository: &git2::Repository,
    snapshot: &repo::Snapshot,
    out: &Output,
) {
    let head = repository.head().ok().and_then(|h| h.target());
    if repository.is_bare() || head.is_none_or(|head| head.to_string() != snapshot.commit) {
        return;
    }
    let changes = match repo::working_tree_changes(repository, snapshot) {
        Ok(changes) => changes,
        Err(error) => {
            out.warn(format_args!(
                "warning: could not compare HEAD with the working tree: {error}"
            ));
            return;
        }
    };
    if changes.is_empty() {
        return;
    }
    let mut listed = changes
        .iter()
        .take(LISTED_CHANGES)
        .map(|path| printable_line(path).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if changes.len() > LISTED_CHANGES {
        listed.push_str(&format!(" and {} more", changes.len() - LISTED_CHANGES));
    }
    out.warn(format_args!(
        "warning: checking HEAD ({}); the working tree differs in {listed}: \
         use --working-tree to check the files on disk",
        short(&snapshot.commit)
    ));
}

/// Every diagnostic, compiler-style, a blank line after each. File names
/// and quoted values come from commits: their control characters are shown
/// escaped.
pub(super) fn render_diagnostics(
    diagnostics: &[Diagnostic],
    out: &mut Output,
) -> std::io::Result<()> {
    for diagnostic in diagnostics {
        let rendered = diagnostic.to_string();
        // Colour only the leading severity word.
        let (word, painted) = match diagnostic.severity {
            Severity::Error => ("error", out.red("error")),
            Severity::Warning => ("warning", out.yellow("warning")),
        };
        out.line(format_args!(
            "{painted}{}\n",
            printable_text(&rendered[word.len()..])
        ))?;
    }
    Ok(())
}

fn render_text(report: &Report, out: &mut Output) -> std::io::Result<()> {
    render_diagnostics(&report.diagnostics, out)?;
    render_summary(report, out)
}

/// `valid: 1 node and 2 workloads in 3 files at SHA` (`1 node, 2 workloads
/// and 1 service` when there are Services), or `invalid: ...`.
fn render_summary(report: &Report, out: &mut Output) -> std::io::Result<()> {
    let commit = short(&report.commit);
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if report.valid {
        let objects = match report.services {
            0 => format!(
                "{} and {}",
                plural(report.nodes, "node"),
                plural(report.workloads, "workload")
            ),
            services => format!(
                "{}, {} and {}",
                plural(report.nodes, "node"),
                plural(report.workloads, "workload"),
                plural(services, "service")
            ),
        };
        let mut line = format!(
            "{}: {objects} in {} at {commit}",
            out.green("valid"),
            plural(report.files, "file"),
        );
        if report.warnings > 0 {
            line.push_str(&format!(" ({})", plural(report.warnings, "warning")));
        }
        out.line(line)
    } else {
        out.line(format_args!(
            "{}: {} and {} in {} at {commit}",
            out.red("invalid"),
            plural(report.errors, "error"),
            plural(report.warnings, "warning"),
            plural(report.files, "file"),
        ))
    }
}
