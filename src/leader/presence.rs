//! Whether a leader is running for a repository, found out at once: its
//! repository lock names it ([`lock::current_holder`]), or, when that names
//! none (a clone's lock is never the leader's), the lock of a node the
//! repository declares does ([`lock::current_node_holder`]); and its
//! address answers `/healthz` within [`HEALTH_TIMEOUT`]. Commands that wait
//! on a leader (`rollout status`, the post-receive hook, `rollback` in the
//! leader's repository, `status`) ask this first, so that "the leader
//! deploys it" is never said when nothing will, and "no leader" is never
//! said while one acts on the nodes.
//!
//! Reads only: it never takes a lock and never changes anything.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::lock::{self, LockDir, LockError, LockHolder};
use super::run::Loader;
use crate::manifest::model::Node;

/// How long a leader's `/healthz` may take to answer before it counts as
/// not answering.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The role a leader writes into the repository lock.
const LEADER_ROLE: &str = "leader";

/// Which lock named the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FoundBy {
    /// The repository's own lock: the leader serves this repository.
    RepositoryLock,
    /// The lock of node `node`, which the repository declares: a leader of
    /// another repository (the one this is a clone of, say) acts on it.
    NodeLock { node: String },
}

/// What was found about a repository's leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LeaderPresence {
    /// A leader holds the lock and answers at `api`; or, started without
    /// `--listen` (`api` is `None`), holds the lock and is alive as far as
    /// the lock can tell.
    Running {
        holder: LockHolder,
        api: Option<SocketAddr>,
        found_by: FoundBy,
    },
    /// No leader holds the lock. `holder` is what holds it instead, if
    /// anything: a `flotilla apply`, or the stale record of a dead leader.
    NotRunning { holder: Option<LockHolder> },
    /// A leader holds the lock but does not answer at `api`: it may run on
    /// another machine, or be hung.
    NotAnswering {
        holder: LockHolder,
        api: SocketAddr,
        reason: String,
        found_by: FoundBy,
    },
}

/// Finds out whether a leader is running for the repository whose git
/// directory is `git_dir`: one named by its lock, else, given
/// `node_locks` (the lock directory and the nodes the repository declares:
/// for a clone, whose own lock is never the leader's), one named by the
/// lock of any of those nodes.
pub(crate) async fn find(
    git_dir: &Path,
    node_locks: Option<(&LockDir, &[Node])>,
) -> Result<LeaderPresence, LockError> {
    let holder = lock::current_holder(git_dir)?;
    if let Some(leader) = holder.clone().filter(is_live_leader) {
        return Ok(check(leader, FoundBy::RepositoryLock).await);
    }
    if let Some((lock_dir, nodes)) = node_locks {
        for node in nodes {
            let Some(leader) = lock::current_node_holder(lock_dir, node)?.filter(is_live_leader)
            else {
                continue;
            };
            let found_by = FoundBy::NodeLock {
                node: node.meta.name.clone(),
            };
            return Ok(check(leader, found_by).await);
        }
    }
    Ok(LeaderPresence::NotRunning { holder })
}

/// The nodes declared at the tip of `branch` (none when the branch does
/// not exist yet): whose locks a leader acting on them holds. Invalid
/// objects are left out; the valid ones still count.
pub(crate) fn declared_nodes(
    repository: &git2::Repository,
    branch: &str,
    loader: Loader,
) -> Result<Vec<Node>, crate::repo::RepoError> {
    let reference = format!("refs/heads/{branch}");
    if repository.refname_to_id(&reference).is_err() {
        return Ok(Vec::new());
    }
    let snapshot = crate::repo::read_revision(repository, &reference)?;
    Ok(loader(&snapshot.files).0.nodes)
}

/// Whether `holder` is a leader that may still be alive.
fn is_live_leader(holder: &LockHolder) -> bool {
    holder.role == LEADER_ROLE && !holder.is_dead_here()
}

/// Whether the leader `holder` answers.
async fn check(holder: LockHolder, found_by: FoundBy) -> LeaderPresence {
    let Some(api) = holder.api else {
        return LeaderPresence::Running {
            holder,
            api: None,
            found_by,
        };
    };
    let answer = tokio::time::timeout(HEALTH_TIMEOUT, crate::api::get(api, "/healthz")).await;
    let reason = match answer {
        Ok(Ok(_)) => {
            return LeaderPresence::Running {
                holder,
                api: Some(api),
                found_by,
            }
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => format!(
            "leader at {api}: no answer to /healthz within {} s",
            HEALTH_TIMEOUT.as_secs()
        ),
    };
    LeaderPresence::NotAnswering {
        holder,
        api,
        reason,
        found_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A port nobody listens on: bound, then closed.
    async fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    /// Answers every connection with `response`, once the request is read.
    async fn answering(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let _ = stream.read(&mut request).await;
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        addr
    }

    /// [`find`] by the repository's lock alone.
    async fn find_repository(git_dir: &Path) -> Result<LeaderPresence, LockError> {
        find(git_dir, None).await
    }

    fn kind(presence: &LeaderPresence) -> &'static str {
        match presence {
            LeaderPresence::Running { .. } => "running",
            LeaderPresence::NotRunning { holder: None } => "not running",
            LeaderPresence::NotRunning { holder: Some(_) } => "not running, lock held",
            LeaderPresence::NotAnswering { .. } => "not answering",
        }
    }

    /// Issue 12, item 4: commands that wait on a leader find out at once
    /// whether one runs: its lock names it and its address answers.
    #[tokio::test]
    async fn a_leader_runs_when_its_lock_names_it_and_its_address_answers() {
        let dir = tempfile::tempdir().unwrap();
        let git_dir = dir.path();
        assert_eq!(
            kind(&find_repository(git_dir).await.unwrap()),
            "not running"
        );

        let ok = answering("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").await;
        let held = lock::acquire_with_api(git_dir, "leader", Some(ok)).unwrap();
        let found = find_repository(git_dir).await.unwrap();
        assert_eq!(kind(&found), "running");
        assert!(
            matches!(&found, LeaderPresence::Running { holder, api: Some(api), found_by: FoundBy::RepositoryLock } if holder.pid == std::process::id() && *api == ok)
        );
        drop(held);
        assert_eq!(
            kind(&find_repository(git_dir).await.unwrap()),
            "not running"
        );

        // A leader started without --listen: alive as far as its lock says.
        let held = lock::acquire_with_api(git_dir, "leader", None).unwrap();
        assert_eq!(kind(&find_repository(git_dir).await.unwrap()), "running");
        drop(held);

        // An apply holds the lock: no leader.
        let held = lock::acquire(git_dir, "apply").unwrap();
        let found = find_repository(git_dir).await.unwrap();
        assert!(
            matches!(&found, LeaderPresence::NotRunning { holder: Some(h) } if h.role == "apply"),
            "{found:?}"
        );
        drop(held);

        // A stale lock: its flock held by a straggler, its record naming a
        // leader of this host that no longer exists.
        let held = lock::acquire(git_dir, "leader").unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let stale = serde_json::json!({
            "role": "leader",
            "pid": exited.id(),
            "host": host.trim(),
            "since": 0,
            "api": ok,
        });
        std::fs::write(git_dir.join(lock::LOCK_FILE), stale.to_string()).unwrap();
        let found = find_repository(git_dir).await.unwrap();
        assert!(
            matches!(&found, LeaderPresence::NotRunning { holder: Some(h) } if h.pid == exited.id()),
            "{found:?}"
        );
        drop(held);

        // Refused, and unhealthy: a lock that names a leader is not enough.
        for api in [
            closed_port().await,
            answering("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\n\r\nstuck").await,
        ] {
            let held = lock::acquire_with_api(git_dir, "leader", Some(api)).unwrap();
            let found = find_repository(git_dir).await.unwrap();
            assert!(
                matches!(&found, LeaderPresence::NotAnswering { api: a, .. } if *a == api),
                "{found:?}"
            );
            drop(held);
        }
    }

    /// A hung leader (it accepts, and never answers) counts as not
    /// answering after [`HEALTH_TIMEOUT`], not never.
    #[tokio::test]
    async fn a_leader_that_never_answers_is_found_out_within_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap();
        let _held = lock::acquire_with_api(dir.path(), "leader", Some(api)).unwrap();
        let started = std::time::Instant::now();
        let found = find_repository(dir.path()).await.unwrap();
        let took = started.elapsed();
        match found {
            LeaderPresence::NotAnswering { reason, .. } => {
                assert!(
                    reason.contains("no answer to /healthz within 2 s"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(
            took >= HEALTH_TIMEOUT && took < HEALTH_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
        drop(listener);
    }
}

#[cfg(test)]
mod node_lock_tests {
    use super::*;

    fn node(name: &str, address: &str) -> Node {
        lock::tests::node(name, address, 22)
    }

    /// Issue 12 (review of item 4): in a clone on the leader's host, the
    /// clone's repository lock is never the leader's, and commands said no
    /// leader was running. The leader also holds the lock of every node it
    /// acts on: a leader holding one the repository declares is found,
    /// with the node that named it; an apply holding it is no leader.
    #[tokio::test]
    async fn a_leader_holding_a_declared_nodes_lock_is_found() {
        let clone = tempfile::tempdir().unwrap();
        let locks = tempfile::tempdir().unwrap();
        let lock_dir = LockDir::given(locks.path());
        let declared = [node("n1", "10.0.0.1"), node("n2", "10.0.0.2")];

        // Another node's leader is not this repository's.
        let mut elsewhere = lock::NodeLocks::new(lock_dir.clone(), "leader", None);
        elsewhere.hold(&[node("n9", "10.0.0.9")]).unwrap();
        let found = find(clone.path(), Some((&lock_dir, &declared)))
            .await
            .unwrap();
        assert_eq!(found, LeaderPresence::NotRunning { holder: None });

        let mut leader = lock::NodeLocks::new(lock_dir.clone(), "leader", None)
            .for_repository("/srv/cluster.git".into());
        leader.hold(&[node("n2", "10.0.0.2")]).unwrap();
        let found = find(clone.path(), Some((&lock_dir, &declared)))
            .await
            .unwrap();
        match &found {
            LeaderPresence::Running {
                holder,
                api: None,
                found_by: FoundBy::NodeLock { node },
            } => {
                assert_eq!(node, "n2");
                assert_eq!(holder.pid, std::process::id());
                assert_eq!(holder.repo.as_deref(), Some(Path::new("/srv/cluster.git")));
            }
            other => panic!("{other:?}"),
        }
        drop(leader);

        let mut apply = lock::NodeLocks::new(lock_dir.clone(), "apply", None);
        apply.hold(&declared).unwrap();
        let found = find(clone.path(), Some((&lock_dir, &declared)))
            .await
            .unwrap();
        assert_eq!(found, LeaderPresence::NotRunning { holder: None });
    }
}
