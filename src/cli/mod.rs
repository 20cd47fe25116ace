//! The command line: argument parsing and everything flotilla prints.
//!
//! Only this module writes to the terminal. Each subcommand gathers its
//! inputs through `repo`/`node`, calls the pure core, and renders the result
//! as text or JSON. Exit codes are documented in docs/cli.md.

pub mod duration;
mod history;
mod history_runs;
pub mod leader;
mod notes;
mod object_ref;
mod output;
mod plan;
mod presence;
mod rollback;
mod rollout;
pub mod secret;
mod validate;
mod volume;
mod volume_delete;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

pub use output::{colour, Output};

use crate::leader::planner::KubePlanner;
use crate::node::Nodes;

/// Exit codes, one table for every command, as documented in docs/cli.md.
pub mod exit {
    /// Success; for `plan --detailed-exitcode`, no changes.
    pub const OK: u8 = 0;
    /// Invalid manifests, a failed step, a refusal, or any other error.
    pub const FAILURE: u8 = 1;
    /// `plan --detailed-exitcode`: the plan has changes.
    pub const CHANGES: u8 = 2;
    /// Part of the cluster could not be observed, so neither "no changes"
    /// nor "the cluster matches" can be claimed.
    pub const UNKNOWN: u8 = 3;
    /// `plan --detailed-exitcode`: the plan leaves replicas unschedulable.
    pub const UNSCHEDULABLE: u8 = 4;
    /// A bad flag or argument value (sysexits' EX_USAGE), so that a typo in
    /// a script never reads as one of the codes above.
    pub const USAGE: u8 = 64;
}

#[derive(Debug, Parser)]
#[command(
    name = "flotilla",
    version = VERSION,
    about = "A container orchestrator in which Git is the API server"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Only errors on stderr, and no progress lines.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More logs on stderr: -v for info, -vv for debug (FLOTILLA_LOG, when
    /// set, wins).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `flotilla --version`: the package version and the commit it was built
/// from (build.rs), e.g. `0.1.0 (4f1c2a9e0b7d-dirty)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("FLOTILLA_BUILD_COMMIT"),
    ")"
);

impl Cli {
    /// The log filter `-q`/`-v` ask for (FLOTILLA_LOG, when set, wins).
    pub fn log_level(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, _) => "debug",
        }
    }
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
    /// Secret values sealed with age: keygen, seal, edit, rekey (docs/secrets.md).
    Secret(secret::SecretArgs),
    /// Claims' volumes on the nodes: list, backup to a tar stream, restore,
    /// delete by a commit (docs/storage.md).
    Volume(volume::VolumeArgs),
    /// Print a shell completion script (`flotilla completion bash > /etc/bash_completion.d/flotilla`).
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

/// Which desired state to read: a revision of a repository, or its working tree.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The repository (bare or not; any directory inside a work tree).
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
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
    #[arg(
        long,
        env = "FLOTILLA_TRUST_ON_FIRST_USE",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub trust_on_first_use: bool,
    /// Time allowed for TCP connect, key exchange and authentication
    /// (`10s`, `1m`; a bare number is seconds).
    #[arg(long, env = "FLOTILLA_CONNECT_TIMEOUT", default_value = "10s", value_parser = duration::parse, value_name = "DURATION")]
    pub connect_timeout: Duration,
    /// Time one Docker request on a node may take (info, list, inspect,
    /// create, start, remove; a stop gets its grace period on top). Image
    /// pulls and shipping are not bounded by it.
    #[arg(long, env = "FLOTILLA_REQUEST_TIMEOUT", default_value = "10s", value_parser = duration::parse, value_name = "DURATION")]
    pub request_timeout: Duration,
}

impl NodeArgs {
    pub fn ssh_options(&self) -> crate::node::SshOptions {
        let mut options = crate::node::SshOptions::default();
        if let Some(path) = &self.known_hosts {
            options.known_hosts = path.clone();
        }
        options.trust_on_first_use = self.trust_on_first_use;
        options.connect_timeout = self.connect_timeout.max(Duration::from_secs(1));
        options.request_timeout = self.request_timeout.max(Duration::from_secs(1));
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
    let mut out = Output::stdout(cli.quiet);
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
        Command::Leader(args) if args.check => leader::check(&args, &mut out)?,
        Command::Leader(args) => leader::leader(&args, args.nodes.nodes(), KubePlanner)?,
        Command::Apply(args) => leader::apply(&args, args.nodes.nodes(), KubePlanner, &mut out)?,
        Command::Status(args) => leader::status(&args, args.nodes.nodes(), KubePlanner, &mut out)?,
        Command::History(args) => history::run(&args, &mut out)?,
        Command::Rollback(args) => rollback::run(&args, &mut out)?,
        Command::Rollout(rollout::RolloutArgs {
            command: rollout::RolloutCommand::Status(args),
        }) => rollout::run(&args, args.nodes.nodes(), KubePlanner, &mut out)?,
        Command::Secret(args) => secret::run(&args, &mut out)?,
        Command::Volume(args) => volume::run(&args, &mut out)?,
        Command::Completion(args) => completion(args.shell, &mut out)?,
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

/// Writes the completion script of `shell` for every command and flag.
fn completion(shell: CompletionShell, out: &mut Output) -> anyhow::Result<u8> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "flotilla", &mut script);
    out.text(String::from_utf8(script)?)?;
    Ok(exit::OK)
}

/// Parses the arguments. `Err` holds the code to exit with once clap has
/// printed: 0 after `--help` or `--version`, [`exit::USAGE`] after a usage
/// error (not clap's 2, which `plan --detailed-exitcode` uses for
/// "changes").
pub fn parse<I, T>(args: I) -> Result<Cli, u8>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::try_parse_from(args).map_err(|error| {
        // Printing can only fail on a closed stream; the code stands.
        let _ = error.print();
        usage_exit_code(&error)
    })
}

/// The exit code for a parse outcome clap reports as an error: 0 for what
/// was asked for (help, version), 64 for a mistake.
fn usage_exit_code(error: &clap::Error) -> u8 {
    if error.use_stderr() {
        exit::USAGE
    } else {
        exit::OK
    }
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every `--output` has `-o`, and every `--repo` reads `FLOTILLA_REPO`
    /// (issue 12, item 10), in every command and subcommand: a command added
    /// later cannot forget them.
    #[test]
    fn every_output_has_its_short_form_and_every_repo_its_variable() {
        fn visit(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                match arg.get_long() {
                    Some("output") if arg.get_short() != Some('o') => {
                        missing.push(format!("{path} --output without -o"));
                    }
                    Some("repo")
                        if arg.get_env() != Some(std::ffi::OsStr::new("FLOTILLA_REPO")) =>
                    {
                        missing.push(format!("{path} --repo without FLOTILLA_REPO"));
                    }
                    _ => {}
                }
            }
            for sub in command.get_subcommands() {
                visit(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        visit(&Cli::command(), "flotilla", &mut missing);
        assert!(missing.is_empty(), "{missing:?}");
    }
}
