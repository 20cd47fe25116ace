//! Records the commit flotilla is built from, for `flotilla --version`:
//! `git rev-parse --short=12 HEAD`, with `-dirty` when tracked files differ
//! from it (as `git describe --dirty` says), or "unknown commit" when git
//! or the repository is absent (a crate unpacked from a package, a source
//! tarball). It never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // Cargo sets it; without it (never under cargo) the commit is unknown.
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    // Source edits change the dirty mark; cargo scans the folder's files.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let commit = match commit(&manifest_dir) {
        Some((commit, watched)) => {
            // A commit, a checkout or a `git add` moves one of these.
            for path in watched {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            commit
        }
        None => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=FLOTILLA_BUILD_COMMIT={commit}");
}

/// The commit (with `-dirty` when the tree differs) and the git files that
/// change with it, or `None` when `dir` is not the top of a work tree git
/// can read (a tarball unpacked inside another repository is not it).
fn commit(dir: &Path) -> Option<(String, Vec<PathBuf>)> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    let short = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    // Without optional locks, status does not rewrite the index it reads
    // (which would make cargo run this script again on the next build).
    let dirty = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|changes| !changes.is_empty());
    let mut watched = Vec::new();
    let mut git_path = |name: &str| {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", name]) {
            watched.push(dir.join(path));
        }
    };
    git_path("HEAD");
    git_path("index");
    git_path("packed-refs");
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        git_path(&branch);
    }
    let commit = if dirty {
        format!("{short}-dirty")
    } else {
        short
    };
    Some((commit, watched))
}

/// The trimmed standard output of a git command that succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_string())
}
