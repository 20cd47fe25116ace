//! Which branch a command acts on when none is named, the same for every
//! command: `git config flotilla.branch` when set (`init-repo --branch`
//! sets it in the leader's repository), else the branch HEAD names (the
//! checked-out branch of a clone, HEAD of a bare repository), else `main`.

use git2::Repository;

use super::DEFAULT_BRANCH;

/// The branch every command defaults to (see the module's comment).
pub fn default_branch(repo: &Repository) -> String {
    configured_branch(repo)
        .or_else(|| head_branch(repo))
        .unwrap_or_else(|| DEFAULT_BRANCH.to_string())
}

/// `git config flotilla.branch`, when set.
pub fn configured_branch(repo: &Repository) -> Option<String> {
    repo.config()
        .ok()
        .and_then(|config| config.get_string("flotilla.branch").ok())
        .filter(|branch| !branch.is_empty())
}

/// The branch checked out in a clone's work tree: `None` in a bare
/// repository and when HEAD is detached.
pub fn checked_out_branch(repo: &Repository) -> Option<String> {
    if repo.is_bare() {
        return None;
    }
    head_branch(repo)
}

/// The branch HEAD names, born or not yet: `None` when HEAD is detached.
fn head_branch(repo: &Repository) -> Option<String> {
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target()?;
    target.strip_prefix("refs/heads/").map(str::to_string)
}
