//! The command line: argument parsing and everything flotilla prints.
//!
//! Only this module writes to the terminal. Each subcommand gathers its
//! inputs through `repo`/`node`, calls the pure core, and renders the result
//! as text or JSON. Exit codes are documented in docs/cli.md.

mod history;
pub mod leader;
mod notes;
mod object_ref;
mod output;
mod plan;
mod rollback;
mod rollout;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::Output;

use crate::leader::planner::KubePlanner;
use crate::node::Nodes;

/// Exit codes, as documented in docs/cli.md.
pub mod exit {
    /// Success; for `plan --detailed-exitcode`, no changes.
    pub const OK: u8 = 0;
    /// Invalid manifests, or any error.
    pub const FAILURE: u8 = 1;
    /// `plan --detailed-exitcode`: the plan has changes.
    pub const CHANGES: u8 = 2;
}

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version,
    about = "A container orchestrator in which Git is the API server"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the manifests of a revision; exit 1 when any is invalid.
    Validate(validate::ValidateArgs),
    /// Show what applying a revision would change, and why.
    Plan(plan::PlanArgs),
    /// Create the leader's bare repository with flotilla's hooks installed.
    InitRepo(InitRepoArgs),
    /// Run the leader: deploy every push, heal, serve status and metrics.
    Leader(leader::LeaderArgs),
    /// Reconcile the cluster once with the branch tip (refused while a leader runs).
    Apply(leader::ApplyArgs),
    /// Nodes, objects and replicas: from the running leader, or observed.
    Status(leader::StatusArgs),
    /// The revisions of the manifests (or of one object) and how each rolled out.
    History(history::HistoryArgs),
    /// Commit one object's manifest (or every one) back to its last successfully deployed revision.
    Rollback(rollback::RollbackArgs),
    /// Follow rollouts (`flotilla rollout status deployment/web`).
    Rollout(rollout::RolloutArgs),
}

/// Which desired state to read: a revision of a repository, or its working tree.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The repository (bare or not; any directory inside a work tree).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// A branch, tag, SHA or expression such as HEAD~2 (default: HEAD;
    /// for `plan`, the default branch: what `apply` applies).
    #[arg(long, conflicts_with = "working_tree")]
    pub rev: Option<String>,
    /// Read the files on disk instead of a commit (for previews before committing).
    #[arg(long)]
    pub working_tree: bool,
}

/// How nodes are reached over SSH.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The known_hosts file host keys are checked against (default
    /// ~/.ssh/known_hosts).
    #[arg(long, env = "FLOTILLA_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// Accept and record the host key of a node known_hosts does not list
    /// yet. A key that differs from a recorded one is always refused.
    #[arg(long, env = "FLOTILLA_TRUST_ON_FIRST_USE")]
    pub trust_on_first_use: bool,
    /// Seconds allowed for TCP connect, key exchange and authentication.
    #[arg(long, env = "FLOTILLA_CONNECT_TIMEOUT", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds one Docker request on a node may take (info, list, inspect,
    /// create, start, remove; a stop gets its grace period on top). Image
    /// pulls and shipping are not bounded by it.
    #[arg(long, env = "FLOTILLA_REQUEST_TIMEOUT", default_value_t = 10)]
    pub request_timeout: u64,
}

impl NodeArgs {
    pub fn ssh_options(&self) -> crate::node::SshOptions {
        let mut options = crate::node::SshOptions::default();
        if let Some(path) = &self.known_hosts {
            options.known_hosts = path.clone();
        }
        options.trust_on_first_use = self.trust_on_first_use;
        options.connect_timeout = std::time::Duration::from_secs(self.connect_timeout.max(1));
        options.request_timeout = std::time::Duration::from_secs(self.request_timeout.max(1));
        options
    }

    pub fn nodes(&self) -> Nodes {
        Nodes::new(self.ssh_options())
    }
}

#[derive(Debug, Args)]
pub struct InitRepoArgs {
    /// Where to create the bare repository: a new path or an empty
    /// directory (or an existing bare repository, to refresh its hooks).
    pub path: PathBuf,
    /// The branch the leader deploys (default: the one an existing
    /// repository tracks, else main).
    #[arg(long)]
    pub branch: Option<String>,
}

/// Runs one command and returns the process's exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = Output::stdout();
    let code = match cli.command {
        Command::Validate(args) => validate::run(&args, &mut out)?,
        Command::Plan(args) => {
            let nodes = args.nodes.nodes();
            plan::run(
                &args,
                |desired| leader::observe_cluster(&nodes, desired),
                &mut out,
            )?
        }
        Command::InitRepo(args) => init_repo(&args, &mut out)?,
        Command::Leader(args) => leader::leader(&args, args.nodes.nodes(), KubePlanner)?,
        Command::Apply(args) => leader::apply(&args, args.nodes.nodes(), KubePlanner, &mut out)?,
        Command::Status(args) => leader::status(&args, args.nodes.nodes(), KubePlanner, &mut out)?,
        Command::History(args) => history::run(&args, &mut out)?,
        Command::Rollback(args) => rollback::run(&args, &mut out)?,
        Command::Rollout(rollout::RolloutArgs {
            command: rollout::RolloutCommand::Status(args),
        }) => rollout::run(&args, args.nodes.nodes(), KubePlanner, &mut out)?,
    };
    Ok(ExitCode::from(code))
}

fn init_repo(args: &InitRepoArgs, out: &mut Output) -> anyhow::Result<u8> {
    use crate::repo::{InitKind, NOTES_REFSPEC};
    let flotilla_bin = std::env::current_exe()?;
    let options = crate::repo::InitOptions {
        branch: args.branch.clone(),
        flotilla_bin,
    };
    let initialized = crate::repo::init_bare(&args.path, &options)?;
    let (path, branch) = (initialized.repo.path().display(), &initialized.branch);
    match &initialized.how {
        InitKind::Created | InitKind::TookOver => out.line(format_args!(
            "initialized {path} (deploys branch {branch}; hooks installed)"
        ))?,
        InitKind::Refreshed {
            previous_branch: None,
        } => out.line(format_args!(
            "refreshed hooks of {path} (deploys branch {branch})"
        ))?,
        InitKind::Refreshed {
            previous_branch: Some(previous),
        } => out.line(format_args!(
            "refreshed hooks of {path}; the tracked branch changed from {previous} to {branch}: \
             restart the leader (and name --branch {branch} if it is given one)"
        ))?,
    }
    out.line(format_args!(
        "push to it: git remote add cluster {path} && git push cluster HEAD:{branch}"
    ))?;
    // Git has no server-side setting that makes clones fetch notes: each
    // clone is told once, and then every fetch and pull brings them.
    out.line(format_args!(
        "clone it with the rollout records: git clone -c remote.origin.fetch={NOTES_REFSPEC} {path}"
    ))?;
    out.line(format_args!(
        "in an existing clone: git config --add remote.<remote>.fetch {NOTES_REFSPEC} && git fetch <remote>"
    ))?;
    Ok(exit::OK)
}

/// `--branch`, or the default branch of the repository at `repo` (see
/// [`crate::repo::default_branch`]).
pub(crate) fn branch_or_default(
    repo: &std::path::Path,
    named: Option<&str>,
) -> anyhow::Result<String> {
    match named {
        Some(branch) => Ok(branch.to_string()),
        None => Ok(crate::repo::default_branch(&crate::repo::open(repo)?)),
    }
}

/// The first 12 hex digits of a commit, as people read them.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
