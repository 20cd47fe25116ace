//! `flotilla init-repo`: the leader's bare repository, hooks installed.

use std::path::{Path, PathBuf};

use git2::{Repository, RepositoryInitOptions};

use super::RepoError;

pub const DEFAULT_BRANCH: &str = "main";

/// The hooks, embedded so the binary can install them anywhere.
const HOOKS: [(&str, &str); 2] = [
    ("pre-receive", include_str!("../../hooks/pre-receive")),
    ("post-receive", include_str!("../../hooks/post-receive")),
];

pub struct InitOptions {
    /// The branch the leader deploys.
    pub branch: String,
    /// The `flotilla` binary the hooks run; recorded as `flotilla.bin`.
    pub flotilla_bin: PathBuf,
}

/// Creates a bare repository at `path` (or takes over an existing empty or
/// bare one) and installs the hooks. Running it again refreshes the hooks.
pub fn init_bare(path: &Path, options: &InitOptions) -> Result<Repository, RepoError> {
    let mut init = RepositoryInitOptions::new();
    init.bare(true).initial_head(&options.branch).mkpath(true);
    let repo = Repository::init_opts(path, &init).map_err(|source| RepoError::Open {
        path: path.to_path_buf(),
        source,
    })?;

    let mut config = repo.config()?;
    config.set_str("flotilla.branch", &options.branch)?;
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

    let hooks_dir = repo.path().join("hooks");
    std::fs::create_dir_all(&hooks_dir).map_err(|source| RepoError::Io {
        path: hooks_dir.clone(),
        source,
    })?;
    for (name, text) in HOOKS {
        let hook = hooks_dir.join(name);
        write_executable(&hook, text).map_err(|source| RepoError::Io { path: hook, source })?;
    }
    Ok(repo)
}

fn write_executable(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}
