//! One writer at a time: the locks that keep a leader and `flotilla apply`
//! (or two leaders) from acting on the cluster at once.
//!
//! Two kinds, both `flock(2)` on a file, so the OS releases them when the
//! holder dies, however it dies:
//!
//! - the repository's: `flotilla.lock` in its git directory. It says who
//!   serves the repository (and where its HTTP endpoints are, for
//!   `flotilla status`);
//! - one per node, in a host-wide directory ([`default_lock_dir`]), named by
//!   a hash of how the node is reached (transport, address, port, Docker
//!   socket: [`node_identity`]). Whoever acts on the cluster holds the lock
//!   of every node it declares ([`NodeLocks`]), so two processes on this
//!   machine acting on any of the same nodes exclude each other whichever
//!   repository, clone or branch each reads. Processes on different machines
//!   do not see each other's locks.
//!
//! The holder writes who it is into the file, so the one refused can name it.
//! A lock whose recorded holder is a dead process on this host (its open file
//! inherited by some straggler) is taken over: the file is replaced.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation};
use serde::{Deserialize, Serialize};

use super::time::format_rfc3339;
use crate::manifest::model::{Node, Transport};

/// The lock file's name inside the git directory.
pub const LOCK_FILE: &str = "flotilla.lock";
/// Overrides [`default_lock_dir`].
pub const LOCK_DIR_ENV: &str = "FLOTILLA_LOCK_DIR";
/// The host-wide directory of node locks when running as root.
pub const SYSTEM_LOCK_DIR: &str = "/run/flotilla/locks";

/// Who holds the lock, as written inside the lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// What holds it: `leader`, `apply`...
    pub role: String,
    pub pid: u32,
    pub host: String,
    /// Seconds since the Unix epoch.
    pub since: u64,
    /// Where a leader serves its HTTP endpoints, so `flotilla status` can
    /// ask it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<std::net::SocketAddr>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = UNIX_EPOCH + Duration::from_secs(self.since);
        write!(
            f,
            "{} (pid {} on {}, since {})",
            self.role,
            self.pid,
            self.host,
            format_rfc3339(since)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the cluster is being changed by {holder}; lock {path}")]
    Held { path: PathBuf, holder: LockHolder },
    #[error(
        "the cluster is being changed by a process that has not yet said who it is; lock {path}"
    )]
    HeldByUnknown { path: PathBuf },
    #[error(
        "the cluster is being changed by {holder}, which holds node {node} ({identity}); lock {path}"
    )]
    NodeHeld {
        node: String,
        identity: String,
        path: PathBuf,
        holder: Box<LockHolder>,
    },
    #[error("lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
    holder: LockHolder,
}

impl WriterLock {
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Emptying the file says "nobody" to anyone who reads it after us; the
        // flock itself goes with the file descriptor.
        let _ = self.file.set_len(0);
    }
}

/// Takes the writer lock of the repository whose git directory is `git_dir`,
/// or says who holds it.
pub fn acquire(git_dir: &Path, role: &str) -> Result<WriterLock, LockError> {
    acquire_with_api(git_dir, role, None)
}

/// [`acquire`], recording the address of the holder's HTTP endpoints.
pub fn acquire_with_api(
    git_dir: &Path,
    role: &str,
    api: Option<std::net::SocketAddr>,
) -> Result<WriterLock, LockError> {
    acquire_file(git_dir.join(LOCK_FILE), role, api)
}

fn acquire_file(
    path: PathBuf,
    role: &str,
    api: Option<std::net::SocketAddr>,
) -> Result<WriterLock, LockError> {
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    // A holder says who it is right after it takes the flock, and one that
    // lets go empties the file just before the flock goes (which may also
    // outlive it for a moment in a child process forked meanwhile, until
    // that child execs): a lock held by nobody known is looked at again for
    // a moment before it is reported. The removal of a lock file whose
    // recorded holder is dead is followed by one more try.
    let mut unknown_tries = 0;
    let mut dead_holder_removed = false;
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                let holder = LockHolder {
                    role: role.to_string(),
                    pid: std::process::id(),
                    host: host_name(),
                    since: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    api,
                };
                let text = serde_json::to_string(&holder).expect("a lock holder serializes");
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.write_all(b"\n").map_err(io)?;
                file.flush().map_err(io)?;
                return Ok(WriterLock { file, path, holder });
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(io)?;
                let Ok(holder) = serde_json::from_str::<LockHolder>(text.trim()) else {
                    if unknown_tries < UNKNOWN_HOLDER_TRIES {
                        unknown_tries += 1;
                        std::thread::sleep(UNKNOWN_HOLDER_WAIT);
                        continue;
                    }
                    return Err(LockError::HeldByUnknown { path });
                };
                if !dead_holder_removed
                    && holder.host == host_name()
                    && !process_is_alive(holder.pid)
                {
                    tracing::warn!(%holder, path = %path.display(), "lock holder is dead; taking the lock over");
                    std::fs::remove_file(&path).map_err(io)?;
                    dead_holder_removed = true;
                    continue;
                }
                return Err(LockError::Held { path, holder });
            }
            Err(e) => return Err(io(e.into())),
        }
    }
}

/// How often, and how long apart, a lock whose holder has not said who it
/// is is looked at again before it is reported: half a second in all.
const UNKNOWN_HOLDER_TRIES: u32 = 25;
const UNKNOWN_HOLDER_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// Reads who holds the lock, if anyone does, without taking it.
pub fn current_holder(git_dir: &Path) -> Result<Option<LockHolder>, LockError> {
    let path = git_dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(LockError::Io { path, source }),
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        // Nobody holds it; our shared lock goes when `file` is dropped.
        Ok(()) => Ok(None),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let text = std::fs::read_to_string(&path).map_err(|source| LockError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(serde_json::from_str(text.trim()).ok())
        }
        Err(e) => Err(LockError::Io {
            path,
            source: e.into(),
        }),
    }
}

/// The directory of node locks: `$FLOTILLA_LOCK_DIR` when set, else
/// [`SYSTEM_LOCK_DIR`] for root, else `$XDG_RUNTIME_DIR/flotilla/locks`,
/// else `flotilla-locks-<uid>` in the temporary directory. Processes share
/// node locks only when they agree on this directory: two users without root
/// do not, unless both set `FLOTILLA_LOCK_DIR` (or `--lock-dir`) to one
/// directory both can write.
pub fn default_lock_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(LOCK_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return PathBuf::from(SYSTEM_LOCK_DIR);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("flotilla/locks");
    }
    std::env::temp_dir().join(format!("flotilla-locks-{}", uid.as_raw()))
}

/// How a node is reached, as a string that is the same for every manifest
/// naming the same Docker daemon the same way: the transport, the address
/// (lower case) and port for SSH, and the Docker socket. The node's name and
/// SSH user are not part of it: two repositories calling one daemon by two
/// names still act on one daemon.
pub fn node_identity(node: &Node) -> String {
    let spec = &node.spec;
    match spec.transport {
        Transport::Ssh => format!(
            "ssh {}:{} {}",
            spec.address.to_ascii_lowercase(),
            spec.port,
            spec.docker_socket
        ),
        Transport::Local => format!("local {}", spec.docker_socket),
    }
}

/// The lock file of one node identity inside `dir`.
pub fn node_lock_path(dir: &Path, identity: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(identity.as_bytes());
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!("node-{hex}.lock"))
}

/// The locks of the nodes one process acts on, kept equal to the nodes the
/// desired state declares by [`NodeLocks::hold`].
#[derive(Debug)]
pub struct NodeLocks {
    dir: PathBuf,
    role: String,
    api: Option<std::net::SocketAddr>,
    /// By node identity.
    held: BTreeMap<String, WriterLock>,
}

impl NodeLocks {
    pub fn new(dir: PathBuf, role: &str, api: Option<std::net::SocketAddr>) -> Self {
        NodeLocks {
            dir,
            role: role.to_string(),
            api,
            held: BTreeMap::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The identities whose locks are held.
    pub fn held(&self) -> impl Iterator<Item = &str> {
        self.held.keys().map(String::as_str)
    }

    /// Holds the lock of every node in `nodes`, and releases those of nodes
    /// no longer among them. Refused, naming the holder and the node, when
    /// another process holds one; the locks already held are kept, so the
    /// next call only needs the missing ones.
    pub fn hold(&mut self, nodes: &[Node]) -> Result<(), LockError> {
        let wanted: BTreeMap<String, &str> = nodes
            .iter()
            .map(|n| (node_identity(n), n.meta.name.as_str()))
            .collect();
        self.held
            .retain(|identity, _| wanted.contains_key(identity));
        if wanted
            .keys()
            .any(|identity| !self.held.contains_key(identity))
        {
            std::fs::create_dir_all(&self.dir).map_err(|source| LockError::Io {
                path: self.dir.clone(),
                source,
            })?;
        }
        for (identity, name) in wanted {
            if self.held.contains_key(&identity) {
                continue;
            }
            let path = node_lock_path(&self.dir, &identity);
            match acquire_file(path, &self.role, self.api) {
                Ok(lock) => {
                    self.held.insert(identity, lock);
                }
                Err(LockError::Held { path, holder }) => {
                    return Err(LockError::NodeHeld {
                        node: name.to_string(),
                        identity,
                        path,
                        holder: Box::new(holder),
                    })
                }
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown-host".to_string())
}

fn process_is_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        // It exists but belongs to someone else.
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "leader").unwrap();
        let error = acquire(dir.path(), "apply").unwrap_err();
        let LockError::Held { holder, .. } = &error else {
            panic!("expected Held, got {error:?}");
        };
        assert_eq!(holder, first.holder());
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "the cluster is being changed by leader (pid {} on ",
                std::process::id()
            )),
            "{message}"
        );
        assert_eq!(
            current_holder(dir.path()).unwrap().as_ref(),
            Some(first.holder())
        );
    }

    #[test]
    fn dropped_lock_can_be_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        drop(acquire(dir.path(), "leader").unwrap());
        assert_eq!(current_holder(dir.path()).unwrap(), None);
        let again = acquire(dir.path(), "apply").unwrap();
        assert_eq!(again.holder().role, "apply");
    }

    #[test]
    fn lock_of_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // Hold the flock through a descriptor whose recorded holder is a
        // process that has exited: the situation of a straggler that
        // inherited a dead leader's lock.
        let path = dir.path().join(LOCK_FILE);
        let straggler = File::create(&path).unwrap();
        flock(&straggler, FlockOperation::NonBlockingLockExclusive).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let dead = LockHolder {
            role: "leader".into(),
            pid: dead_pid,
            host: host_name(),
            since: 0,
            api: None,
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();

        let lock = acquire(dir.path(), "leader").unwrap();
        assert_eq!(lock.holder().pid, std::process::id());
    }

    fn node(name: &str, address: &str, port: u16) -> Node {
        use crate::manifest::model::{NodeSpec, ObjectMeta};
        Node {
            meta: ObjectMeta {
                name: name.into(),
                ..ObjectMeta::default()
            },
            spec: NodeSpec {
                address: address.into(),
                port,
                user: "root".into(),
                identity_file: None,
                docker_socket: "/var/run/docker.sock".into(),
                transport: Transport::Ssh,
                capacity: Default::default(),
                taints: Vec::new(),
                unschedulable: false,
            },
        }
    }

    #[test]
    fn a_node_is_locked_whatever_the_repository_calls_it() {
        let dir = tempfile::tempdir().unwrap();
        // A leader (of one repository) and an apply (from another, or a
        // clone) whose Node manifests name one daemon differently.
        let mut leader = NodeLocks::new(dir.path().into(), "leader", None);
        leader
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .unwrap();
        let mut apply = NodeLocks::new(dir.path().into(), "apply", None);
        let error = apply
            .hold(&[node("other-name", "10.0.0.2", 22)])
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "the cluster is being changed by leader (pid {} on ",
                std::process::id()
            )),
            "{message}"
        );
        assert!(
            message.contains("which holds node other-name (ssh 10.0.0.2:22 /var/run/docker.sock)"),
            "{message}"
        );
        // Another daemon (another address, or another port) is not shared.
        apply
            .hold(&[node("c", "10.0.0.3", 22), node("d", "10.0.0.2", 2222)])
            .unwrap();
        assert_eq!(apply.held().count(), 2);
    }

    #[test]
    fn nodes_no_longer_declared_are_released() {
        let dir = tempfile::tempdir().unwrap();
        let mut leader = NodeLocks::new(dir.path().into(), "leader", None);
        leader
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .unwrap();
        leader.hold(&[node("a", "10.0.0.1", 22)]).unwrap();
        let mut apply = NodeLocks::new(dir.path().into(), "apply", None);
        apply.hold(&[node("b", "10.0.0.2", 22)]).unwrap();
        // Refused for a, it keeps b...
        assert!(apply
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .is_err());
        assert!(leader
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .is_err());
        // ...and needs only a once the leader is gone.
        drop(leader);
        apply
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .unwrap();
        assert_eq!(apply.held().count(), 2);
    }

    #[test]
    fn node_lock_of_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let n = node("a", "10.0.0.1", 22);
        let path = node_lock_path(dir.path(), &node_identity(&n));
        let straggler = File::create(&path).unwrap();
        flock(&straggler, FlockOperation::NonBlockingLockExclusive).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = child.id();
        child.wait().unwrap();
        let dead = LockHolder {
            role: "apply".into(),
            pid: dead_pid,
            host: host_name(),
            since: 0,
            api: None,
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        let mut locks = NodeLocks::new(dir.path().into(), "leader", None);
        locks.hold(&[n]).unwrap();
        assert_eq!(locks.held().count(), 1);
    }
}
