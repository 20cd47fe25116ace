//! `flotilla init-repo`: the leader's bare repository, hooks installed.
//!
//! Only ever creates a bare repository in a new or empty directory, or
//! takes over an existing bare one: never among a work tree's files or in a
//! directory that holds something else.

use std::path::{Path, PathBuf};

use git2::{ConfigLevel, Repository, RepositoryInitOptions, RepositoryOpenFlags};

use super::RepoError;

pub const DEFAULT_BRANCH: &str = "main";

/// The hooks, embedded so the binary can install them anywhere.
const HOOKS: [(&str, &str); 2] = [
    ("pre-receive", include_str!("../../hooks/pre-receive")),
    ("post-receive", include_str!("../../hooks/post-receive")),
];

pub struct InitOptions {
    /// The branch the leader deploys; `None` keeps the one an existing
    /// repository tracks (`main` for a new one).
    pub branch: Option<String>,
    /// The `flotilla` binary the hooks run; recorded as `flotilla.bin`.
    pub flotilla_bin: PathBuf,
}

/// What [`init_bare`] did.
pub struct Initialized {
    pub repo: Repository,
    /// The branch the leader deploys, now.
    pub branch: String,
    pub how: InitKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitKind {
    /// A new bare repository (the directory was new or empty).
    Created,
    /// A bare repository flotilla had not set up: configured, hooks
    /// installed.
    TookOver,
    /// flotilla's repository already: hooks and settings written again.
    /// `previous_branch`: the branch it tracked, when `--branch` changed it.
    Refreshed { previous_branch: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{path} is a repository with a work tree (a clone), not a bare repository; \
         the leader's repository must be bare: give a new path (such as /srv/flotilla/cluster.git)"
    )]
    NotBare { path: PathBuf },
    #[error(
        "{path} is not empty and not a git repository; refusing to create the leader's \
         repository among its files: give a new or empty directory"
    )]
    NotEmpty { path: PathBuf },
    #[error("{path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error(
        "{path} is inside the work tree of {work_tree}; refusing to create the leader's \
         repository among its files (a push there would commit it): give a path outside it \
         (such as /srv/flotilla/cluster.git)"
    )]
    InsideWorkTree { path: PathBuf, work_tree: PathBuf },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// A new repository inside a clone's work tree would sit among the user's
/// files (and be committed by the next `git add -A`): refused, as a
/// non-empty directory is. Found from the nearest existing ancestor.
fn refuse_inside_a_work_tree(path: &Path) -> Result<(), InitError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let Some(existing) = absolute.ancestors().find(|dir| dir.is_dir()) else {
        return Ok(());
    };
    let Ok(repo) = Repository::discover(existing) else {
        return Ok(());
    };
    match repo.workdir() {
        Some(work_tree) if !repo.is_bare() => Err(InitError::InsideWorkTree {
            path: path.to_path_buf(),
            work_tree: work_tree.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// Creates a bare repository at `path` (new, or an empty directory), or
/// takes over an existing bare one, and installs the hooks; running it
/// again refreshes them. Refuses anything else at `path`, before writing
/// anything: a work tree, a non-empty directory, a file.
pub fn init_bare(path: &Path, options: &InitOptions) -> Result<Initialized, InitError> {
    let io = |source| RepoError::Io {
        path: path.to_path_buf(),
        source,
    };
    let existing = match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() || path.is_dir() => {
            let empty = std::fs::read_dir(path).map_err(io)?.next().is_none();
            if empty {
                None
            } else {
                Some(open_existing(path)?)
            }
        }
        Ok(_) => {
            return Err(InitError::NotADirectory {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e).into()),
    };
    if existing.is_none() {
        refuse_inside_a_work_tree(path)?;
    }

    let (repo, branch, how) = match existing {
        Some(repo) => {
            let previous = local_config(&repo, "flotilla.branch")?;
            let branch = options
                .branch
                .clone()
                .or_else(|| previous.clone())
                .unwrap_or_else(|| DEFAULT_BRANCH.to_string());
            let how = match previous {
                Some(previous) => InitKind::Refreshed {
                    previous_branch: (previous != branch).then_some(previous),
                },
                None => InitKind::TookOver,
            };
            (repo, branch, how)
        }
        None => {
            let branch = options
                .branch
                .clone()
                .unwrap_or_else(|| DEFAULT_BRANCH.to_string());
            let mut init = RepositoryInitOptions::new();
            init.bare(true).initial_head(&branch).mkpath(true);
            let repo = Repository::init_opts(path, &init).map_err(|source| RepoError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            (repo, branch, InitKind::Created)
        }
    };

    // HEAD names the tracked branch: what a clone checks out, and the
    // default branch of every command run in this repository.
    repo.set_head(&format!("refs/heads/{branch}"))?;
    let mut config = repo.config()?.open_level(ConfigLevel::Local)?;
    config.set_str("flotilla.branch", &branch)?;
    config.set_str("flotilla.bin", &options.flotilla_bin.to_string_lossy())?;
    // `git push -o flotilla.wait` needs push options to reach the hooks.
    config.set_bool("receive.advertisePushOptions", true)?;
    // The tracked branch is never deleted (the pre-receive hook refuses
    // that too, and refuses rewinding it or any push to the rollout
    // records), and a push never brings malformed objects (tree entries
    // named `..` or `.git`, bad idents). Other branches stay free to be
    // rewound and deleted: they deploy nothing.
    config.set_str("receive.denyDeleteCurrent", "refuse")?;
    config.set_bool("receive.fsckObjects", true)?;
    // Clones told to fetch the records find them before the first rollout.
    super::history::create_notes_ref(&repo)?;

    let hooks_dir = repo.path().join("hooks");
    std::fs::create_dir_all(&hooks_dir).map_err(|source| RepoError::Io {
        path: hooks_dir.clone(),
        source,
    })?;
    for (name, text) in HOOKS {
        let hook = hooks_dir.join(name);
        write_executable(&hook, text).map_err(|source| RepoError::Io { path: hook, source })?;
    }
    Ok(Initialized { repo, branch, how })
}

/// The bare repository at `path` (exactly there, not a parent's), or why
/// init-repo refuses the non-empty directory.
fn open_existing(path: &Path) -> Result<Repository, InitError> {
    let no_search: &[&std::ffi::OsStr] = &[];
    match Repository::open_ext(path, RepositoryOpenFlags::NO_SEARCH, no_search) {
        Ok(repo) if repo.is_bare() => Ok(repo),
        Ok(_) => Err(InitError::NotBare {
            path: path.to_path_buf(),
        }),
        Err(_) => Err(InitError::NotEmpty {
            path: path.to_path_buf(),
        }),
    }
}

/// A setting of the repository's own config (not the user's or system's).
fn local_config(repo: &Repository, key: &str) -> Result<Option<String>, git2::Error> {
    let config = repo.config()?.open_level(ConfigLevel::Local)?;
    match config.get_string(key) {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
