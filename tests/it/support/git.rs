//! A scratch git work tree driven by the real `git` CLI, for tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct WorkTree {
    pub dir: tempfile::TempDir,
}

/// Runs `git` in `dir` with a fixed identity and no user or system config.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("git runs")
}

/// Like [`git`], failing the test when git fails.
pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let output = git(dir, args);
    assert!(
        output.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl WorkTree {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        git_ok(dir.path(), &["init", "-q", "-b", "main"]);
        WorkTree { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, path: &str, text: &str) -> &Self {
        let full: PathBuf = self.path().join(path);
        std::fs::create_dir_all(full.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(full, text).expect("write file");
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.path().join(path)).expect("remove file");
        self
    }

    /// Commits everything and returns the new commit's SHA.
    pub fn commit(&self, message: &str) -> String {
        git_ok(self.path(), &["add", "-A"]);
        git_ok(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git_ok(self.path(), &["rev-parse", "HEAD"])
    }
}
