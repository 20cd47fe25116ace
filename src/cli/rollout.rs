//! `flotilla rollout status`: follows the rollout of one Deployment (or of
//! every Deployment of a commit) until it succeeds or fails, like
//! `kubectl rollout status`, with an exit code CI scripts can use. The
//! post-receive hook runs it for `git push -o flotilla.wait`.
//!
//! A rollout the notes record (on the commits of its revision) is reported
//! as recorded, with the reason and the revert. Otherwise it waits only on
//! a leader that is running: without one (or with one that does not
//! answer) nothing carries the rollout on, so after one observation it says
//! so and exits 3 (unknown) instead of waiting for its timeout. In a clone
//! where no leader is found on this machine, the leader may run on another
//! one: it then follows the rollout by observing the nodes, until its
//! timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::object_ref::parse_object_ref;
use super::{exit, short, Output, OutputFormat};
use crate::leader::daemon::{StatusReader, StatusSource};
use crate::leader::presence::LeaderPresence;
use crate::leader::run::Planner;
use crate::manifest::model::{Kind, ObjectKey};
use crate::node::NodeOps;
use crate::reconcile::status::ObjectStatus;
use crate::repo::{Outcome, RolloutRecord};

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Follow a rollout until it finishes: exit 0 when it succeeded, 1 when
    /// it failed, was rolled back or superseded, or timed out, 3 when no
    /// leader runs to carry it on (in the leader's repository; a clone
    /// without a leader on this machine observes the nodes until the
    /// timeout).
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// `deployment/web`, `ds/agent`, `deploy/staging/web`...; every workload of the
    /// revision when left out.
    pub object: Option<String>,
    /// The namespace of OBJECT.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The leader's repository.
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// The branch (default: `git config flotilla.branch`, else the branch
    /// HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// The revision whose rollout to follow (default: the branch tip).
    #[arg(long)]
    pub rev: Option<String>,
    /// Give up after this long (`900`, `15m`, `1h`; a bare number is
    /// seconds; rounded up to whole seconds).
    #[arg(long, default_value = "15m", value_parser = super::duration::parse_seconds, value_name = "DURATION")]
    pub timeout: u64,
    /// `json`: no progress lines, one document once the wait is over.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub locks: super::leader::LockArgs,
    #[command(flatten)]
    pub nodes: super::NodeArgs,
}

/// Where one followed rollout stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Verdict {
    Waiting(String),
    Succeeded,
    Failed(String),
}

/// A workload and the revision (template hash) it must reach.
struct Target {
    key: ObjectKey,
    revision: String,
    /// The commits that declare `revision` of it, newest first, from the
    /// followed commit back to the one that introduced it: the leader
    /// notes its rollout on one of them.
    run: Vec<git2::Oid>,
    /// What the rollout records say of it, read again only when they
    /// change (see `notes_read`).
    recorded: Option<Verdict>,
    last: Option<Verdict>,
    /// Its replicas at `revision`, as last seen.
    replicas: Option<Replicas>,
}

pub(super) fn run<N: NodeOps, P: Planner>(
    args: &StatusArgs,
    nodes: N,
    planner: P,
    out: &mut Output,
) -> anyhow::Result<u8> {
    let repo = crate::repo::open(&args.repo)?;
    let branch = super::branch_or_default(&args.repo, args.branch.as_deref())?;
    super::notes::check(
        &repo,
        "a failure the leader recorded cannot be seen here (the live status still can)",
        out,
    )?;
    let rev = args
        .rev
        .clone()
        .unwrap_or_else(|| format!("refs/heads/{branch}"));
    let snapshot = crate::repo::read_revision(&repo, &rev)?;
    let commit = snapshot.commit.clone();
    let loaded = crate::manifest::load(&snapshot.files);
    let wanted = args
        .object
        .as_deref()
        .map(|text| parse_object_ref(text, args.namespace.as_deref()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let Some(key) = &wanted {
        if !Kind::workloads().any(|kind| kind == key.kind) {
            anyhow::bail!(
                "{key} has no rollout: only workloads roll out ({})",
                Kind::workload_list()
            );
        }
    }
    // kubectl's rule: only a rolling update has a rollout to follow; an
    // `OnDelete` workload's old pods stay until removed by hand.
    let on_delete = |w: &&crate::manifest::model::Workload| {
        w.spec.strategy == crate::manifest::model::Strategy::OnDelete
    };
    // Pods that run to completion roll nothing out: a run is followed in
    // `flotilla status` and listed, once finished, by `flotilla history`.
    let completes = |w: &&crate::manifest::model::Workload| w.spec.pods.completes();
    if let Some(w) = wanted
        .as_ref()
        .and_then(|key| loaded.state.workload(key))
        .filter(completes)
    {
        anyhow::bail!(
            "{}: runs to completion and has no rollout; follow its run with `flotilla status` and list its runs with `flotilla history {}/{}`",
            w.key(),
            w.kind.cli_names()[0],
            w.meta.name
        );
    }
    if let Some(w) = wanted
        .as_ref()
        .and_then(|key| loaded.state.workload(key))
        .filter(on_delete)
    {
        anyhow::bail!(
            "{}: rollout status is only available for the RollingUpdate strategy (its updateStrategy is OnDelete)",
            w.key()
        );
    }
    let mut targets: Vec<Target> = loaded
        .state
        .workloads
        .iter()
        .filter(|w| !on_delete(w) && !completes(w))
        .filter(|d| wanted.as_ref().is_none_or(|k| *k == d.key()))
        .map(|d| {
            let revision = crate::manifest::template_hash(&d.spec.template);
            Target {
                run: revision_run(&repo, &commit, &d.key(), &revision),
                key: d.key(),
                revision,
                recorded: None,
                last: None,
                replicas: None,
            }
        })
        .collect();
    if let (Some(key), true) = (&wanted, targets.is_empty()) {
        anyhow::bail!("{key} is not declared at {}", short(&commit));
    }
    if targets.is_empty() {
        match args.output {
            OutputFormat::Text => out.line(format_args!(
                "{} declares no workload: nothing rolls out",
                short(&commit)
            ))?,
            OutputFormat::Json => out.json(&Report {
                commit: &commit,
                outcome: "succeeded",
                reason: Some("declares no workload: nothing rolls out".into()),
                objects: Vec::new(),
            })?,
        }
        return Ok(exit::OK);
    }

    let place = super::presence::Place::of(&repo, &branch)?;
    let text = args.output == OutputFormat::Text;
    let live = text && out.is_terminal();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut reader = StatusReader::new(
        &args.repo,
        &branch,
        Arc::new(nodes),
        planner,
        crate::leader::load_manifests,
        place.node_locks(args.locks.dir()),
    )?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let mut tip_state: Option<(String, crate::manifest::DesiredState)> = None;
    // A live "Waiting..." line is on screen, to be ended before a message.
    let mut line_open = false;
    // Said once, when the wait goes on: a clone without a leader here
    // follows the rollout from the nodes.
    let mut following_said = false;
    // The notes' tip when the records were last read (`Some(None)`: read,
    // and there were none): the records are read again only once the
    // leader has written a note, not at every look.
    let mut notes_read: Option<Option<git2::Oid>> = None;
    let ending = loop {
        let (status, source) = runtime.block_on(reader.read())?;
        // Without a leader, nothing moves the rollout on: one observation
        // says whether it is already done (an `apply` may have done it),
        // and otherwise the wait ends at once, saying why. A clone's
        // leader may run on another machine: then the nodes say how the
        // rollout goes, until the timeout.
        let mut following = None;
        let no_leader = match &source {
            StatusSource::Leader { .. } => None,
            StatusSource::Observed {
                presence: presence @ LeaderPresence::NotRunning { .. },
            } if place.clone_of.is_some() => {
                following = super::presence::why_not_running(&place, presence);
                None
            }
            StatusSource::Observed { presence } => {
                super::presence::no_leader_sentence(&place, presence, "rolls this out")
            }
        };
        let tip = crate::repo::resolve(&repo, &format!("refs/heads/{branch}"))?.to_string();
        if tip_state.as_ref().is_none_or(|(t, _)| *t != tip) {
            let tip_snapshot = crate::repo::read_revision(&repo, &tip)?;
            tip_state = Some((
                tip.clone(),
                crate::manifest::load(&tip_snapshot.files).state,
            ));
        }
        let (_, tip_desired) = tip_state.as_ref().expect("set above");
        // The status speaks of the commit the leader last read: only once
        // that is this one (or a later one) does "complete" mean this
        // rollout (a commit that only scales has the same revision).
        let status_current = status
            .commit
            .as_deref()
            .is_some_and(|c| c == commit || is_descendant(&repo, c, &commit));
        let notes_now = repo.refname_to_id(crate::repo::NOTES_REF).ok();
        if notes_read != Some(notes_now) {
            for target in &mut targets {
                target.recorded = recorded_outcome(&repo, target)?;
            }
            notes_read = Some(notes_now);
        }
        let objects: BTreeMap<(String, String, String), &ObjectStatus> = status
            .objects
            .iter()
            .map(|o| ((o.kind.clone(), o.namespace.clone(), o.name.clone()), o))
            .collect();
        for target in targets
            .iter_mut()
            .filter(|t| !matches!(t.last, Some(Verdict::Succeeded) | Some(Verdict::Failed(_))))
        {
            let object = objects
                .get(&(
                    target.key.kind.as_str().to_string(),
                    target.key.namespace.clone(),
                    target.key.name.clone(),
                ))
                .copied();
            if let Some(object) = object.filter(|o| o.template_hash == target.revision) {
                target.replicas = Some(Replicas::of(object));
            }
            let tip_revision = tip_desired
                .workload(&target.key)
                .map(|d| crate::manifest::template_hash(&d.spec.template));
            let moved_on = (tip != commit && tip_revision.as_deref() != Some(&target.revision))
                .then_some((tip.as_str(), &repo));
            let verdict = verdict(
                target,
                object,
                target.recorded.clone(),
                moved_on,
                status_current,
            );
            // Waiting is not said when nothing will end the wait.
            let say = text && !(no_leader.is_some() && matches!(verdict, Verdict::Waiting(_)));
            if target.last.as_ref() != Some(&verdict) && say {
                let name = format!("{} \"{}\"", target.key.kind.phrase(), target.key.name);
                match &verdict {
                    // `-q`: no progress lines, only the outcome.
                    Verdict::Waiting(_) if out.is_quiet() => {}
                    Verdict::Waiting(progress) => {
                        if live {
                            out.text(format_args!(
                                "\r\x1b[2KWaiting for {name} rollout to finish: {progress}"
                            ))?;
                            line_open = true;
                        } else {
                            out.line(format_args!(
                                "Waiting for {name} rollout to finish: {progress}"
                            ))?;
                        }
                    }
                    Verdict::Succeeded => {
                        let clear = if live { "\r\x1b[2K" } else { "" };
                        line_open = false;
                        out.line(format_args!(
                            "{clear}{name} successfully rolled out ({})",
                            short(&commit)
                        ))?;
                    }
                    Verdict::Failed(reason) => {
                        let clear = if live { "\r\x1b[2K" } else { "" };
                        line_open = false;
                        out.line(format_args!(
                            "{clear}{}: {name} rollout failed: {}",
                            out.red("error"),
                            crate::repo::printable_text(reason)
                        ))?;
                    }
                }
            }
            target.last = Some(verdict);
        }
        let finished = targets
            .iter()
            .all(|t| matches!(t.last, Some(Verdict::Succeeded) | Some(Verdict::Failed(_))));
        if finished {
            break Ending::Finished;
        }
        if let Some(sentence) = no_leader {
            break Ending::NoLeader(sentence);
        }
        if Instant::now() >= deadline {
            break Ending::TimedOut;
        }
        if let Some(why) = following.filter(|_| !following_said) {
            following_said = true;
            if line_open {
                out.line("")?;
                line_open = false;
            }
            out.warn(format_args!(
                "note: {why}; following the rollout by observing its nodes from here (for up \
                 to {}s, --timeout)",
                args.timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    let failed = targets
        .iter()
        .any(|t| matches!(t.last, Some(Verdict::Failed(_))));
    let (code, outcome, reason) = match &ending {
        Ending::Finished if failed => (exit::FAILURE, "failed", Some(failures(&targets))),
        Ending::Finished => (exit::OK, "succeeded", None),
        Ending::NoLeader(sentence) => (exit::UNKNOWN, "unknown", Some(sentence.clone())),
        Ending::TimedOut => (
            exit::FAILURE,
            "timedOut",
            Some(format!(
                "timed out after {}s waiting for the rollout of {}",
                args.timeout,
                short(&commit)
            )),
        ),
    };
    match args.output {
        OutputFormat::Text => {
            // A failure was said as it was found.
            let said = matches!(ending, Ending::Finished);
            if let Some(reason) = reason.as_ref().filter(|_| !said) {
                if line_open {
                    out.line("")?;
                }
                let label = if code == exit::UNKNOWN {
                    out.yellow("unknown")
                } else {
                    out.red("error")
                };
                out.line(format_args!("{label}: {reason}"))?;
            }
        }
        OutputFormat::Json => out.json(&Report {
            commit: &commit,
            outcome,
            reason,
            objects: targets.iter().map(ObjectReport::of).collect(),
        })?,
    }
    Ok(code)
}

/// Why the wait ended.
enum Ending {
    /// Every followed rollout succeeded or failed.
    Finished,
    /// No leader runs to carry the rollout on: the sentence says why.
    NoLeader(String),
    TimedOut,
}

/// A workload's replicas at its target revision, as last seen.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Replicas {
    desired: u32,
    ready: u32,
    updated: u32,
    total: u32,
}

impl Replicas {
    fn of(object: &ObjectStatus) -> Self {
        Replicas {
            desired: object.desired_replicas,
            ready: object.ready_replicas,
            updated: object.updated_replicas,
            total: object.total_replicas,
        }
    }
}

/// `rollout status --output json`: one document once the wait is over.
#[derive(serde::Serialize)]
struct Report<'a> {
    commit: &'a str,
    /// `succeeded`, `failed`, `timedOut` or `unknown` (no leader runs).
    outcome: &'static str,
    reason: Option<String>,
    objects: Vec<ObjectReport>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReport {
    kind: &'static str,
    namespace: String,
    name: String,
    /// The template hash the rollout brings.
    revision: String,
    /// `succeeded`, `failed` or `unfinished`.
    outcome: &'static str,
    /// Why it failed, or where it stood when the wait ended.
    reason: Option<String>,
    replicas: Option<Replicas>,
}

impl ObjectReport {
    fn of(target: &Target) -> Self {
        let (outcome, reason) = match &target.last {
            Some(Verdict::Succeeded) => ("succeeded", None),
            Some(Verdict::Failed(reason)) => ("failed", Some(reason.clone())),
            Some(Verdict::Waiting(progress)) => ("unfinished", Some(progress.clone())),
            None => ("unfinished", None),
        };
        ObjectReport {
            kind: target.key.kind.as_str(),
            namespace: target.key.namespace.clone(),
            name: target.key.name.clone(),
            revision: target.revision.clone(),
            outcome,
            reason,
            replicas: target.replicas,
        }
    }
}

/// Where `target` stands: from the note on the commit (a failure the leader
/// recorded, with its revert), the branch (`moved_on`: a later tip that
/// declares another revision, i.e. a rollback or a newer commit), and the
/// status (progress, completion, a failure being held).
fn verdict(
    target: &Target,
    object: Option<&ObjectStatus>,
    recorded: Option<Verdict>,
    moved_on: Option<(&str, &git2::Repository)>,
    status_current: bool,
) -> Verdict {
    if let Some(recorded) = recorded {
        return recorded;
    }
    if let Some((tip, repo)) = moved_on {
        // The leader's revert carries the reason in its body.
        let message = git2::Oid::from_str(tip)
            .and_then(|oid| repo.find_commit(oid))
            .map(|c| c.message().unwrap_or("").to_string())
            .unwrap_or_default();
        let subject = message.lines().next().unwrap_or("");
        return Verdict::Failed(if subject.starts_with("Revert \"") {
            let body: Vec<&str> = message
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty() && !l.starts_with("This reverts commit"))
                .filter(|l| !l.starts_with(crate::leader::run::AUTO_REVERT_TRAILER))
                .collect();
            let rolled_back = format!("rolled back by {} ({subject})", short(tip));
            if body.is_empty() {
                rolled_back
            } else {
                format!("{}\n{rolled_back}", body.join("\n"))
            }
        } else {
            format!(
                "superseded by {} ({subject}) before it finished",
                short(tip)
            )
        });
    }
    if !status_current {
        return Verdict::Waiting("waiting for the leader to read it...".into());
    }
    match object.filter(|o| o.template_hash == target.revision) {
        Some(object) => match object.rollout.as_str() {
            "complete" => Verdict::Succeeded,
            "unknown" => Verdict::Waiting(format!(
                "unknown: the nodes of its replicas are unreachable ({} of {} seen ready)...",
                object.ready_replicas.min(object.updated_replicas),
                object.desired_replicas
            )),
            "failed" => Verdict::Failed(
                object
                    .rollout_reason
                    .clone()
                    .unwrap_or_else(|| "failed".into()),
            ),
            _ => Verdict::Waiting(format!(
                "{} of {} updated replicas are ready ({} in all)...",
                object.ready_replicas.min(object.updated_replicas),
                object.desired_replicas,
                object.total_replicas
            )),
        },
        None => Verdict::Waiting("waiting for the leader to start it...".into()),
    }
}

/// How many commits back from the followed one the commit that introduced
/// a revision is looked for (as far as the leader looks).
const REVISION_RUN_LIMIT: usize = 100;

/// The commits that declare `revision` of `key`, newest first: `commit`,
/// then its first parents back to the one that introduced the revision
/// (only `commit` when that cannot be told for sure).
fn revision_run(
    repo: &git2::Repository,
    commit: &str,
    key: &ObjectKey,
    revision: &str,
) -> Vec<git2::Oid> {
    let Ok(tip) = git2::Oid::from_str(commit) else {
        return Vec::new();
    };
    let declares = |sha: &str| {
        let snapshot = crate::repo::read_revision(repo, sha).ok()?;
        let state = crate::manifest::load(&snapshot.files).state;
        Some(
            state
                .workload(key)
                .is_some_and(|w| crate::manifest::template_hash(&w.spec.template) == revision),
        )
    };
    let Some(first) = crate::repo::introducing_commit(repo, commit, REVISION_RUN_LIMIT, declares)
        .and_then(|sha| git2::Oid::from_str(&sha).ok())
    else {
        return vec![tip];
    };
    let mut run = Vec::new();
    let mut current = repo.find_commit(tip).ok();
    while let Some(c) = current {
        run.push(c.id());
        if c.id() == first {
            break;
        }
        current = c.parent(0).ok();
    }
    run
}

/// What the rollout records say of `target`'s rollout: the last record
/// naming it on the commits of its revision, newest first. A failure
/// comes with its reason, how long it took and the revert that rolled it
/// back.
fn recorded_outcome(repo: &git2::Repository, target: &Target) -> anyhow::Result<Option<Verdict>> {
    let key = &target.key;
    for &commit in &target.run {
        let Some(note) = crate::repo::read_note(repo, commit)? else {
            continue;
        };
        let records = RolloutRecord::parse_all(&note);
        let Some((record, line)) = records.iter().rev().find_map(|r| {
            r.object(key.kind.as_str(), &key.namespace, &key.name)
                .map(|line| (r, line))
        }) else {
            continue;
        };
        if line.outcome == Outcome::Succeeded {
            return Ok(Some(Verdict::Succeeded));
        }
        let reason = record
            .reason
            .as_deref()
            .map(|r| r.trim_end().to_string())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "no reason recorded".to_string());
        let took = format!(
            "failed in {}",
            crate::reconcile::record::format_duration(record.duration)
        );
        let ending = match &record.reverted_by {
            Some(revert) => {
                let subject = git2::Oid::from_str(revert)
                    .and_then(|oid| repo.find_commit(oid))
                    .ok()
                    .and_then(|c| c.summary().map(str::to_string));
                match subject {
                    Some(subject) => {
                        format!("{took}, rolled back by {} ({subject})", short(revert))
                    }
                    None => format!("{took}, rolled back by {}", short(revert)),
                }
            }
            None => took,
        };
        return Ok(Some(Verdict::Failed(format!("{reason}\n{ending}"))));
    }
    Ok(None)
}

/// Every failed rollout of `targets` with its reason, one paragraph each
/// (`--output json`'s top-level `reason`).
fn failures(targets: &[Target]) -> String {
    targets
        .iter()
        .filter_map(|t| match &t.last {
            Some(Verdict::Failed(reason)) if targets.len() == 1 => Some(reason.clone()),
            Some(Verdict::Failed(reason)) => Some(format!("{}: {reason}", t.key)),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `later` descends from `commit`.
fn is_descendant(repo: &git2::Repository, later: &str, commit: &str) -> bool {
    let (Ok(later), Ok(commit)) = (git2::Oid::from_str(later), git2::Oid::from_str(commit)) else {
        return false;
    };
    repo.graph_descendant_of(later, commit).unwrap_or(false)
}
