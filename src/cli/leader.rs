//! `flotilla leader`, `flotilla apply` and `flotilla status`: thin wrappers
//! over `leader::daemon`, printing progress and status.
//!
//! The node pool and the planner are passed in by the dispatcher, so these
//! functions stay the same whichever transport and planner back them.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{exit, Output, OutputFormat};
use crate::leader::apply::ApplyEvent;
use crate::leader::daemon::{self, ApplyOptions, ApplySession, LeaderOptions, StatusReader};
use crate::leader::run::{Planner, Prepared};
use crate::leader::{load_manifests, run::short};
use crate::node::NodeOps;

#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// The leader's bare repository.
    #[arg(long, env = "FLOTILLA_REPO")]
    pub repo: PathBuf,
    /// The branch to deploy (default: `git config flotilla.branch`, which
    /// `init-repo` sets, else the branch HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Serve /status, /healthz and /metrics here (e.g. 127.0.0.1:7171).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A host name the endpoints answer to (in a request's Host header),
    /// besides localhost, IP addresses and this machine's name; repeat for
    /// several. Others are refused, against DNS rebinding.
    #[arg(long = "api-host", value_name = "NAME")]
    pub api_hosts: Vec<String>,
    /// Only say whether a leader is running for --repo (its lock names it,
    /// or in a clone the lock of a node it declares does, and its address
    /// answers), and exit 0 when one is, 3 when none is.
    #[arg(long)]
    pub check: bool,
    /// The age identity file that opens Secret values (`AGE-SECRET-KEY-1...`
    /// lines; several keys allowed, e.g. the old and the new one while the
    /// key is rotated). Its path is recorded in the repository's git config
    /// (`flotilla.ageIdentity`) so the pre-receive hook checks pushes with it.
    #[arg(long, env = crate::seal::IDENTITY_ENV, value_name = "FILE")]
    pub age_identity: Option<PathBuf>,
    #[command(flatten)]
    pub locks: LockArgs,
    #[command(flatten)]
    pub nodes: super::NodeArgs,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The repository whose branch tip to apply.
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// The branch (default: `git config flotilla.branch`, else the branch
    /// HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Apply this revision (branch, tag, SHA, HEAD~2...) instead of the
    /// branch tip; its manifests must be valid.
    #[arg(long)]
    pub rev: Option<String>,
    /// Apply without asking. Required when stdin is not a terminal and with
    /// --output json (like Terraform's -auto-approve).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub locks: LockArgs,
    #[command(flatten)]
    pub nodes: super::NodeArgs,
    /// Opens the Secrets' values (as the leader's identity does).
    #[command(flatten)]
    pub identity: super::secret::AgeIdentityArgs,
}

/// Where the host-wide node locks live.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The directory of node locks, shared by every flotilla process on
    /// this machine (default /run/flotilla/locks for root, else
    /// $XDG_RUNTIME_DIR/flotilla/locks, else flotilla-locks-<uid> in the
    /// temporary directory; a default one must be this user's alone).
    #[arg(long, env = crate::leader::lock::LOCK_DIR_ENV)]
    pub lock_dir: Option<PathBuf>,
}

impl LockArgs {
    pub fn dir(&self) -> crate::leader::lock::LockDir {
        match &self.lock_dir {
            Some(dir) => crate::leader::lock::LockDir::given(dir),
            None => crate::leader::lock::default_lock_dir(),
        }
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// The branch (default: `git config flotilla.branch`, else the branch
    /// HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Print again every 2 seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub locks: LockArgs,
    #[command(flatten)]
    pub nodes: super::NodeArgs,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs the leader until SIGINT or SIGTERM.
pub fn leader<N: NodeOps, P: Planner>(
    args: &LeaderArgs,
    nodes: N,
    planner: P,
) -> anyhow::Result<u8> {
    // A bad identity file stops the start: a leader that cannot open the
    // Secrets it deploys must not look healthy.
    let age_identities = match &args.age_identity {
        Some(path) => Some(Arc::new(crate::seal::Identities::load(path)?)),
        None => None,
    };
    let options = LeaderOptions {
        repo: args.repo.clone(),
        branch: super::branch_or_default(&args.repo, args.branch.as_deref())?,
        listen: args.listen,
        api_hosts: args.api_hosts.clone(),
        lock_dir: args.locks.dir(),
        age_identities,
    };
    runtime()?.block_on(daemon::run(
        options,
        Arc::new(nodes),
        planner,
        load_manifests,
    ))?;
    Ok(exit::OK)
}

/// `flotilla leader --check`: whether a leader is running for the
/// repository, in one line (the post-receive hook prints it to the pusher).
pub fn check(args: &LeaderArgs, out: &mut Output) -> anyhow::Result<u8> {
    let repository = crate::repo::open(&args.repo)?;
    let branch = super::branch_or_default(&args.repo, args.branch.as_deref())?;
    let place = super::presence::Place::of(&repository, &branch)?;
    let presence = super::presence::find(&repository, &place, &branch, args.locks.dir())?;
    match &presence {
        crate::leader::presence::LeaderPresence::Running {
            holder,
            api,
            found_by,
        } => {
            let serving = match api {
                Some(api) => format!("answering at http://{api}"),
                None => "serving no HTTP endpoints".to_string(),
            };
            out.line(format_args!(
                "{}, {serving}",
                super::presence::running_line(&place, holder, found_by)
            ))?;
            Ok(exit::OK)
        }
        _ => {
            let sentence =
                super::presence::no_leader_sentence(&place, &presence, "deploys new commits")
                    .expect("only a running leader has no such sentence");
            out.line(sentence)?;
            Ok(exit::UNKNOWN)
        }
    }
}

/// One reconcile under the writer locks: show the plan, ask (unless
/// `--yes`), apply with progress.
pub fn apply<N: NodeOps, P: Planner>(
    args: &ApplyArgs,
    nodes: N,
    planner: P,
    out: &mut Output,
) -> anyhow::Result<u8> {
    let runtime = runtime()?;
    let (events, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let text = args.output == OutputFormat::Text;
    let options = ApplyOptions {
        repo: args.repo.clone(),
        branch: super::branch_or_default(&args.repo, args.branch.as_deref())?,
        revision: args.rev.clone(),
        lock_dir: args.locks.dir(),
        age_identities: args
            .identity
            .load(crate::repo::open(&args.repo).ok().as_ref())?
            .map(Arc::new),
    };
    runtime.block_on(async {
        let (session, prepared) =
            ApplySession::prepare(&options, Arc::new(nodes), planner, load_manifests, events)
                .await?;
        if text {
            show_plan(out, &args.repo, &prepared)?;
        }
        // Nodes it could not observe: what runs there is unknown, so
        // neither "no changes" nor "applied" may claim the whole cluster.
        let unknown = Unknown::of(&prepared);
        if prepared.is_empty() {
            match (args.output, &unknown) {
                (OutputFormat::Json, _) => out.json(&serde_json::json!({
                    "commit": prepared.commit,
                    "steps": 0,
                    "backedOff": prepared.backed_off,
                    "applied": false,
                    "unknown": unknown,
                }))?,
                (OutputFormat::Text, Some(unknown)) => out.line(format_args!(
                    "Nothing to do on the nodes observed, but the cluster may not match {}: {}.",
                    short(&prepared.commit),
                    unknown
                ))?,
                (OutputFormat::Text, None) => out.line(format_args!(
                    "No changes: the cluster already matches {}.",
                    short(&prepared.commit)
                ))?,
            }
            return Ok(if unknown.is_some() {
                exit::UNKNOWN
            } else {
                exit::OK
            });
        }
        if !args.yes {
            if !text {
                anyhow::bail!(
                    "--output json applies only with --yes (a question would mix with the JSON); run `flotilla plan --output json` to see the plan first"
                );
            }
            if !std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "not applying: stdin is not a terminal, so nobody can confirm the plan above; pass --yes to apply without asking"
                );
            }
            out.text("Apply this plan to the cluster? Only 'yes' will be accepted: ")?;
            out.flush()?;
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if answer.trim() != "yes" {
                out.line("Apply cancelled; nothing was changed.")?;
                return Ok(exit::FAILURE);
            }
        }

        let total = prepared.steps.len();
        // `-q`: no progress lines, only the summary.
        let show_progress = text && !out.is_quiet();
        let mut display = Progress::new(total, text && out.is_terminal());
        let execute = session.execute(prepared);
        tokio::pin!(execute);
        let summary = loop {
            tokio::select! {
                biased;
                Some(event) = progress.recv() => if show_progress { display.event(out, &event)?; },
                summary = &mut execute => {
                    while let Ok(event) = progress.try_recv() {
                        if show_progress { display.event(out, &event)?; }
                    }
                    break summary;
                }
            }
        };
        display.finish(out)?;
        let failed = summary.apply.failed.len();
        match args.output {
            OutputFormat::Json => out.json(&serde_json::json!({
                "commit": summary.commit,
                "steps": summary.steps,
                "succeeded": summary.apply.succeeded,
                "failed": failed,
                "skipped": summary.apply.skipped,
                "backedOff": summary.backed_off,
                "applied": true,
                "millis": summary.duration.as_millis() as u64,
                "unknown": unknown,
            }))?,
            OutputFormat::Text => {
                out.line(format_args!(
                    "applied {}: {} step(s), {} failed, {} skipped, in {} ms",
                    short(&summary.commit),
                    summary.steps,
                    failed,
                    summary.apply.skipped + summary.backed_off,
                    summary.duration.as_millis()
                ))?;
                if let Some(unknown) = &unknown {
                    out.line(format_args!(
                        "The cluster may still not match {}: {unknown}.",
                        short(&summary.commit)
                    ))?;
                }
            }
        }
        Ok(match (failed, &unknown) {
            (0, None) => exit::OK,
            (0, Some(_)) => exit::UNKNOWN,
            _ => exit::FAILURE,
        })
    })
}

/// The declared nodes an apply could not observe, and how many replicas
/// the plan holds as unknown because of them (when the planner says).
#[derive(Debug, PartialEq, serde::Serialize)]
struct Unknown {
    nodes: Vec<UnobservedNode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<u32>,
}

#[derive(Debug, PartialEq, serde::Serialize)]
struct UnobservedNode {
    name: String,
    reason: String,
}

impl Unknown {
    /// `None` when every declared node was observed.
    fn of(prepared: &Prepared) -> Option<Unknown> {
        use crate::cluster::Reachability;
        let nodes: Vec<UnobservedNode> = prepared
            .desired
            .nodes
            .iter()
            .filter_map(|node| {
                let name = &node.meta.name;
                let reason = match prepared.observed.nodes.get(name) {
                    None => "not observed".to_string(),
                    Some(observed) => match &observed.reachability {
                        Reachability::Reachable => return None,
                        Reachability::Unreachable { reason, .. } => reason.clone(),
                    },
                };
                Some(UnobservedNode {
                    name: name.clone(),
                    reason,
                })
            })
            .collect();
        (!nodes.is_empty()).then(|| Unknown {
            nodes,
            replicas: prepared
                .plan
                .as_ref()
                .map(crate::plan::Plan::unknown_replicas),
        })
    }
}

impl std::fmt::Display for Unknown {
    /// `the state of node n1 (connection refused) is unknown, 2 replica(s)
    /// unknown; apply again once it answers`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| {
                // The reason may quote what a node answered: escapes shown.
                let reason = crate::repo::printable_text(&node.reason);
                format!("node {} ({reason})", node.name)
            })
            .collect();
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        write!(
            f,
            "the state of {} is unknown",
            crate::manifest::names::listed(&nodes, "and")
        )?;
        if let Some(replicas @ 1..) = self.replicas {
            write!(f, ", {replicas} replica(s) unknown")?;
        }
        let answer = if nodes.len() == 1 {
            "it answers"
        } else {
            "they answer"
        };
        write!(f, "; apply again once {answer}")
    }
}

/// The plan about to be applied, rendered as `flotilla plan` renders it;
/// with a planner that has no plan to show, its steps.
fn show_plan(out: &mut Output, repo: &Path, prepared: &Prepared) -> anyhow::Result<()> {
    match &prepared.plan {
        Some(plan) => {
            let files = crate::repo::open(repo)
                .and_then(|r| crate::repo::read_revision(&r, &prepared.commit))?
                .files;
            let planned = super::plan::Planned {
                files: &files,
                desired: &prepared.desired,
                plan,
                observed: &prepared.observed,
            };
            super::plan::print_plan(out, repo, &planned, false)?;
        }
        None => {
            out.line(format_args!("Planning {}.", short(&prepared.commit)))?;
            for step in &prepared.steps {
                out.line(format_args!(
                    "  {}: {} {} ({})",
                    step.node,
                    step.operation.kind(),
                    step.operation.target(),
                    step.reason
                ))?;
            }
        }
    }
    if prepared.backed_off > 0 {
        out.line(format_args!(
            "{} start(s) held back by the crash-loop back-off.",
            prepared.backed_off
        ))?;
    }
    for outcome in prepared.outcomes() {
        out.line(format_args!("Also recorded: {outcome}"))?;
    }
    Ok(())
}

/// Apply progress: on a terminal one line redrawn in place (`[done/total]`
/// and the action last started), failures kept above it; elsewhere one
/// plain line per event.
struct Progress {
    total: usize,
    done: usize,
    terminal: bool,
    current: String,
}

impl Progress {
    fn new(total: usize, terminal: bool) -> Self {
        Progress {
            total,
            done: 0,
            terminal,
            current: String::new(),
        }
    }

    fn event(&mut self, out: &mut Output, event: &ApplyEvent) -> std::io::Result<()> {
        match event {
            ApplyEvent::Started { .. } | ApplyEvent::ImageShipped { .. } => {}
            ApplyEvent::Done { .. } | ApplyEvent::Failed { .. } | ApplyEvent::Skipped { .. } => {
                self.done += 1
            }
        }
        if !self.terminal {
            return out.line(event);
        }
        match event {
            ApplyEvent::Started {
                node, kind, target, ..
            } => self.current = format!("{kind} {target} on {node}"),
            ApplyEvent::Failed { .. } | ApplyEvent::Skipped { .. } => {
                // Kept: clear the progress line, print, redraw below.
                out.text("\r\x1b[2K")?;
                out.line(event)?;
            }
            ApplyEvent::Done { .. } | ApplyEvent::ImageShipped { .. } => {}
        }
        out.text(format_args!(
            "\r\x1b[2K{} {}/{} {}",
            bar(self.done, self.total),
            self.done,
            self.total,
            self.current
        ))?;
        out.flush()
    }

    fn finish(&mut self, out: &mut Output) -> std::io::Result<()> {
        if self.terminal {
            out.text("\r\x1b[2K")?;
        }
        Ok(())
    }
}

/// `[#####.....]`: `done` of `total`, 20 wide.
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(WIDTH - filled))
}

/// The cluster's status, from the running leader or observed directly,
/// saying which.
pub fn status<N: NodeOps, P: Planner>(
    args: &StatusArgs,
    nodes: N,
    planner: P,
    out: &mut Output,
) -> anyhow::Result<u8> {
    let runtime = runtime()?;
    let branch = super::branch_or_default(&args.repo, args.branch.as_deref())?;
    let place = super::presence::Place::of(&crate::repo::open(&args.repo)?, &branch)?;
    let mut reader = StatusReader::new(
        &args.repo,
        &branch,
        Arc::new(nodes),
        planner,
        load_manifests,
        place.node_locks(args.locks.dir()),
    )?;
    runtime.block_on(async {
        let mut frame = 0usize;
        loop {
            let (report, source) = reader.read().await?;
            match args.output {
                OutputFormat::Json => out.json(&SourcedStatus {
                    source: super::presence::source_json(&place, &source),
                    report: &report,
                })?,
                OutputFormat::Text => {
                    if args.watch {
                        watch_frame(out, frame, std::time::SystemTime::now())?;
                    }
                    out.line(super::presence::source_line(&place, &source))?;
                    out.text(&report)?;
                }
            }
            // A pipe or a file reads each frame as it comes.
            out.flush()?;
            frame += 1;
            if !args.watch {
                return Ok(exit::OK);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
            }
        }
    })
}

/// What goes before a frame of `status --watch`: on a terminal, clear the
/// screen (like `watch`); elsewhere (`| cat`, a log file) no escapes, but a
/// blank line between frames and a header with the time of each.
fn watch_frame(out: &mut Output, frame: usize, now: std::time::SystemTime) -> std::io::Result<()> {
    if out.is_terminal() {
        return out.text("\x1b[2J\x1b[H");
    }
    if frame > 0 {
        out.line("")?;
    }
    out.line(format_args!(
        "--- flotilla status at {} ---",
        humantime::format_rfc3339_seconds(now)
    ))
}

/// `flotilla status --output json`: the report, and where it came from.
#[derive(serde::Serialize)]
struct SourcedStatus<'a> {
    source: serde_json::Value,
    #[serde(flatten)]
    report: &'a crate::reconcile::status::StatusReport,
}

/// What `flotilla plan` plans against: every declared node observed once
/// (concurrently), an unreachable one marked so from now, with its contents
/// unknown: the planner holds back creates that could duplicate its replicas.
pub fn observe_cluster(
    nodes: &impl NodeOps,
    desired: &crate::manifest::DesiredState,
) -> anyhow::Result<crate::cluster::ObservedCluster> {
    use crate::cluster::{Contents, ObservedCluster, ObservedNode, Reachability};
    let observations =
        runtime()?.block_on(futures_util::future::join_all(desired.nodes.iter().map(
            |node| async move { (node.meta.name.clone(), nodes.observe(node).await) },
        )));
    let now = std::time::SystemTime::now();
    let mut cluster = ObservedCluster::default();
    for (name, observation) in observations {
        let node = match observation {
            Ok(observation) => ObservedNode {
                name: name.clone(),
                reachability: Reachability::Reachable,
                facts: Some(observation.facts),
                containers: observation.containers,
                volumes: observation.volumes,
            },
            Err(error) => ObservedNode {
                name: name.clone(),
                reachability: Reachability::Unreachable {
                    since: now,
                    reason: error.message,
                    // A one-shot observer never saw what runs there.
                    contents: Contents::Unknown,
                },
                facts: None,
                containers: Vec::new(),
                volumes: Vec::new(),
            },
        };
        cluster.nodes.insert(name, node);
    }
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::bar;

    #[test]
    fn progress_bar_fills_with_the_actions_done() {
        assert_eq!(bar(0, 4), format!("[{}]", ".".repeat(20)));
        assert_eq!(bar(1, 4), format!("[{}{}]", "#".repeat(5), ".".repeat(15)));
        assert_eq!(bar(4, 4), format!("[{}]", "#".repeat(20)));
        assert_eq!(bar(0, 0), format!("[{}]", "#".repeat(20)));
    }
}
