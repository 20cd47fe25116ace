//! What wakes the leader: a change of the deployed branch's ref (notify on
//! `refs/heads/<branch>` and `packed-refs` in the bare repository), a touch of
//! the wake file by `hooks/post-receive`, and the periodic resync.
//!
//! The ref update itself is the first thing a push changes, before git even
//! runs post-receive, so the notify watch is what makes a reconcile start
//! within milliseconds of a push; the wake file is the belt to those braces
//! (a file system where inotify misses renames, a ref written by hand).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Touched by `hooks/post-receive`, in the git directory.
pub(crate) const WAKE_FILE: &str = "flotilla-wake";

/// How long to gather further events after the first one: a push that
/// updates the ref, packs refs and runs the hook is one reconcile.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeReason {
    /// The branch's ref or packed-refs changed.
    RefChanged,
    /// `hooks/post-receive` touched the wake file.
    PostReceive,
}

/// One wake-up, with the moment its first event arrived, for measuring how
/// soon after a push the reconcile starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wake {
    pub reason: WakeReason,
    pub first_event: Instant,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    #[error("watching {path}: {source}")]
    Notify {
        path: PathBuf,
        source: notify::Error,
    },
}

/// Watches a bare repository's refs; dropping it stops the watch.
pub(crate) struct RefWatcher {
    _watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<Wake>,
    /// A wake-up received but not yet returned: [`RefWatcher::next`] is one
    /// branch of the leader's `select!`, and a call dropped while it gathers
    /// what follows must not lose the event it already took.
    pending: Option<Wake>,
}

impl RefWatcher {
    /// Starts watching the branch `branch` of the repository whose git
    /// directory is `git_dir`.
    pub(crate) fn start(git_dir: &Path, branch: &str) -> Result<RefWatcher, WatchError> {
        let git_dir = git_dir
            .canonicalize()
            .unwrap_or_else(|_| git_dir.to_path_buf());
        let branch_ref = git_dir.join("refs/heads").join(branch);
        let packed_refs = git_dir.join("packed-refs");
        let wake_file = git_dir.join(WAKE_FILE);
        let (sender, events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                let reason = event.paths.iter().find_map(|path| {
                    if path == &branch_ref || path == &packed_refs {
                        Some(WakeReason::RefChanged)
                    } else if path == &wake_file {
                        Some(WakeReason::PostReceive)
                    } else {
                        None
                    }
                });
                if let Some(reason) = reason {
                    let _ = sender.send(Wake {
                        reason,
                        first_event: Instant::now(),
                    });
                }
            })
            .map_err(|source| WatchError::Notify {
                path: git_dir.clone(),
                source,
            })?;
        let heads = git_dir.join("refs/heads");
        for (path, mode) in [
            (&git_dir, RecursiveMode::NonRecursive),
            (&heads, RecursiveMode::Recursive),
        ] {
            // refs/heads exists in every repository git or `flotilla
            // init-repo` creates; a missing one is a broken repository.
            watcher
                .watch(path, mode)
                .map_err(|source| WatchError::Notify {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(RefWatcher {
            _watcher: watcher,
            events,
            pending: None,
        })
    }

    /// Waits for the next change, then gathers what follows within
    /// [`DEBOUNCE`] into the same wake-up. `None` when the watch ended.
    /// Cancel-safe: a wake-up taken by a call that was dropped is returned
    /// by the next one.
    pub(crate) async fn next(&mut self) -> Option<Wake> {
        if self.pending.is_none() {
            self.pending = Some(self.events.recv().await?);
        }
        let deadline = tokio::time::Instant::now() + DEBOUNCE;
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, self.events.recv()).await {}
        self.pending.take()
    }

    /// Takes, without waiting, every change already received: the first of
    /// them, or `None`. A reconcile that starts for another reason (the
    /// resync timer, a readiness change) reads the tip after this, so it
    /// serves those changes too, and they need no wake-up of their own.
    pub(crate) fn take_received(&mut self) -> Option<Wake> {
        let mut first = self.pending.take();
        while let Ok(wake) = self.events.try_recv() {
            first.get_or_insert(wake);
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ref_update_and_wake_file_wake_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let mut watcher = RefWatcher::start(repo.path(), "main").unwrap();

        // An unrelated branch does not wake it.
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let tree = repo
            .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
            .unwrap();
        let commit = repo
            .commit(None, &signature, &signature, "empty", &tree, &[])
            .unwrap();
        repo.reference("refs/heads/other", commit, true, "test")
            .unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(100), watcher.next()).await;
        assert!(quiet.is_err(), "woken by another branch: {quiet:?}");

        let before = Instant::now();
        repo.reference("refs/heads/main", commit, true, "test")
            .unwrap();
        let wake = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("woken by the ref update")
            .unwrap();
        assert_eq!(wake.reason, WakeReason::RefChanged);
        assert!(wake.first_event >= before);

        std::fs::write(repo.path().join(WAKE_FILE), "1").unwrap();
        let wake = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("woken by the hook's wake file")
            .unwrap();
        assert_eq!(wake.reason, WakeReason::PostReceive);
    }

    /// Regression: `next` dropped by the leader's `select!` while it
    /// gathered follow-up events lost the wake-up it had taken, so a push
    /// was reported as a resync (its push-to-reconcile latency unmeasured).
    #[tokio::test]
    async fn a_wake_up_survives_a_dropped_call() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let mut watcher = RefWatcher::start(repo.path(), "main").unwrap();
        std::fs::write(repo.path().join(WAKE_FILE), "1").unwrap();
        // Calls cut short well within DEBOUNCE, until one has taken the
        // event. (On a stalled machine a call may still finish; then the
        // hook's wake-up is repeated.)
        let deadline = Instant::now() + Duration::from_secs(5);
        while watcher.pending.is_none() {
            assert!(Instant::now() < deadline, "no event from the wake file");
            let cut = tokio::time::timeout(Duration::from_millis(1), watcher.next()).await;
            if cut.is_ok() {
                std::fs::write(repo.path().join(WAKE_FILE), "1").unwrap();
            }
        }
        let wake = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .expect("the taken wake-up is returned")
            .unwrap();
        assert_eq!(wake.reason, WakeReason::PostReceive);
    }

    #[tokio::test]
    async fn changes_already_received_are_taken_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let mut watcher = RefWatcher::start(repo.path(), "main").unwrap();
        assert!(watcher.take_received().is_none());
        let before = Instant::now();
        std::fs::write(repo.path().join(WAKE_FILE), "1").unwrap();
        std::fs::write(repo.path().join(WAKE_FILE), "2").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let wake = loop {
            if let Some(wake) = watcher.take_received() {
                break wake;
            }
            assert!(Instant::now() < deadline, "no event from the wake file");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert_eq!(wake.reason, WakeReason::PostReceive);
        assert!(wake.first_event >= before);
    }
}
