//! `flotilla rollout status`: follows the rollout of one Deployment (or of
//! every Deployment of a commit) until it succeeds or fails, like
//! `kubectl rollout status`, with an exit code CI scripts can use. The
//! post-receive hook runs it for `git push -o flotilla.wait`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::object_ref::parse_object_ref;
use super::{exit, short, Output};
use crate::leader::daemon;
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
    /// it failed, was rolled back or superseded, or timed out.
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
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The branch (default: `git config flotilla.branch`, else the branch
    /// HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// The revision whose rollout to follow (default: the branch tip).
    #[arg(long)]
    pub rev: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
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
    last: Option<Verdict>,
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
        .filter(|w| !on_delete(w))
        .filter(|d| wanted.as_ref().is_none_or(|k| *k == d.key()))
        .map(|d| Target {
            key: d.key(),
            revision: crate::manifest::template_hash(&d.spec.template),
            last: None,
        })
        .collect();
    if let (Some(key), true) = (&wanted, targets.is_empty()) {
        anyhow::bail!("{key} is not declared at {}", short(&commit));
    }
    if targets.is_empty() {
        out.line(format_args!(
            "{} declares no workload: nothing rolls out",
            short(&commit)
        ))?;
        return Ok(exit::OK);
    }

    let live = std::io::stdout().is_terminal();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let nodes = Arc::new(nodes);
    let planner = Arc::new(planner);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout);
    let mut tip_state: Option<(String, crate::manifest::DesiredState)> = None;
    loop {
        let status = runtime.block_on(daemon::status_once(
            &args.repo,
            &branch,
            Arc::clone(&nodes),
            super::leader::SharedPlanner(Arc::clone(&planner)),
            crate::leader::load_manifests,
        ))?;
        let tip = crate::repo::resolve(&repo, &format!("refs/heads/{branch}"))?.to_string();
        if tip_state.as_ref().is_none_or(|(t, _)| *t != tip) {
            let tip_snapshot = crate::repo::read_revision(&repo, &tip)?;
            tip_state = Some((
                tip.clone(),
                crate::manifest::load(&tip_snapshot.files).state,
            ));
        }
        let (_, tip_desired) = tip_state.as_ref().expect("set above");
        let notes = crate::repo::read_note(&repo, git2::Oid::from_str(&commit)?)?
            .map(|note| RolloutRecord::parse_all(&note))
            .unwrap_or_default();
        // The status speaks of the commit the leader last read: only once
        // that is this one (or a later one) does "complete" mean this
        // rollout (a commit that only scales has the same revision).
        let status_current = status
            .commit
            .as_deref()
            .is_some_and(|c| c == commit || is_descendant(&repo, c, &commit));
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
            let tip_revision = tip_desired
                .workload(&target.key)
                .map(|d| crate::manifest::template_hash(&d.spec.template));
            let moved_on = (tip != commit && tip_revision.as_deref() != Some(&target.revision))
                .then_some((tip.as_str(), &repo));
            let verdict = verdict(target, object, &notes, moved_on, status_current);
            if target.last.as_ref() != Some(&verdict) {
                let name = format!("{} \"{}\"", target.key.kind.phrase(), target.key.name);
                match &verdict {
                    Verdict::Waiting(progress) => {
                        if live {
                            out.text(format_args!(
                                "\r\x1b[2KWaiting for {name} rollout to finish: {progress}"
                            ))?;
                        } else {
                            out.line(format_args!(
                                "Waiting for {name} rollout to finish: {progress}"
                            ))?;
                        }
                    }
                    Verdict::Succeeded => {
                        let clear = if live { "\r\x1b[2K" } else { "" };
                        out.line(format_args!(
                            "{clear}{name} successfully rolled out ({})",
                            short(&commit)
                        ))?;
                    }
                    Verdict::Failed(reason) => {
                        let clear = if live { "\r\x1b[2K" } else { "" };
                        out.line(format_args!(
                            "{clear}{}: {name} rollout failed: {}",
                            out.red("error"),
                            crate::repo::printable_text(reason)
                        ))?;
                    }
                }
                target.last = Some(verdict);
            }
        }
        let failed = targets
            .iter()
            .any(|t| matches!(t.last, Some(Verdict::Failed(_))));
        let finished = targets
            .iter()
            .all(|t| matches!(t.last, Some(Verdict::Succeeded) | Some(Verdict::Failed(_))));
        if finished {
            return Ok(if failed { exit::FAILURE } else { exit::OK });
        }
        if Instant::now() >= deadline {
            if live {
                out.line("")?;
            }
            out.line(format_args!(
                "{}: timed out after {}s waiting for the rollout of {}",
                out.red("error"),
                args.timeout,
                short(&commit)
            ))?;
            return Ok(exit::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Where `target` stands: from the note on the commit (a failure the leader
/// recorded, with its revert), the branch (`moved_on`: a later tip that
/// declares another revision, i.e. a rollback or a newer commit), and the
/// status (progress, completion, a failure being held).
fn verdict(
    target: &Target,
    object: Option<&ObjectStatus>,
    notes: &[RolloutRecord],
    moved_on: Option<(&str, &git2::Repository)>,
    status_current: bool,
) -> Verdict {
    let key = &target.key;
    let recorded_failure = notes.iter().rev().find(|r| {
        r.outcome == Outcome::Failed
            && r.object(key.kind.as_str(), &key.namespace, &key.name)
                .is_some_and(|o| o.revision == target.revision)
    });
    if let Some(record) = recorded_failure {
        let reason = record
            .reason
            .as_deref()
            .unwrap_or("no reason recorded")
            .to_string();
        return Verdict::Failed(match &record.reverted_by {
            Some(revert) => format!("{reason}\nrolled back by {}", short(revert)),
            None => reason,
        });
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
            format!(
                "rolled back by {} ({subject})\n{}",
                short(tip),
                body.join("\n")
            )
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

/// Whether `later` descends from `commit`.
fn is_descendant(repo: &git2::Repository, later: &str, commit: &str) -> bool {
    let (Ok(later), Ok(commit)) = (git2::Oid::from_str(later), git2::Oid::from_str(commit)) else {
        return false;
    };
    repo.graph_descendant_of(later, commit).unwrap_or(false)
}
