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
//!
//! A hostile directory cannot turn a lock into a write elsewhere: lock files
//! are opened with `O_NOFOLLOW` and must be regular files with one link; the
//! default node lock directories are created `0700` and refused unless they
//! are directories of this user that no one else can write ([`LockDir`]).
//! Taking a lock, or taking one over, happens under a short `flock` of the
//! directory itself, so no two processes ever both believe they hold one: a
//! holder has written who it is before anyone else looks, and a dead
//! holder's file is removed only while it is still the file at the path.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{flock, FlockOperation, OFlags};
use serde::{Deserialize, Serialize};

use crate::manifest::model::{Node, Transport};
use crate::reconcile::time::format_rfc3339;

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
    /// The repository a leader serves, in the node locks it holds: so a
    /// command run in a clone can name the leader's repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<PathBuf>,
}

impl LockHolder {
    /// Whether the recorded holder is a process of this host that no longer
    /// exists: a stale record, whose `flock` some straggler inherited.
    pub fn is_dead_here(&self) -> bool {
        self.host == host_name() && !process_is_alive(self.pid)
    }
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
    Held {
        path: PathBuf,
        holder: Box<LockHolder>,
    },
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
    #[error("lock {path} is a symbolic link, which flotilla never follows; remove it (it may have been planted to make flotilla overwrite the file it points to)")]
    Symlink { path: PathBuf },
    #[error("lock {path} is {what}, not a regular file with one link; remove it")]
    NotRegular { path: PathBuf, what: String },
    #[error("lock {path} was replaced by another process each time it was taken")]
    KeptReplaced { path: PathBuf },
    #[error("lock directory {dir} {reason}; remove or fix it, or set {LOCK_DIR_ENV} (or --lock-dir) to a directory only this user can write")]
    UnsafeDir { dir: PathBuf, reason: String },
    #[error("lock directory {dir}: another process kept it locked for {} s while taking a lock in it", DIR_LOCK_WAIT.as_secs())]
    DirBusy { dir: PathBuf },
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
    let dir = LockDir::given(git_dir).open()?;
    acquire_file(&dir, git_dir.join(LOCK_FILE), role, api, None)
}

/// How many times a lock file found replaced right after its `flock` was
/// taken (by a process not following this protocol) is opened again.
const REPLACED_TRIES: u32 = 25;

/// Takes the lock file at `path`, a file in the directory `dir`.
fn acquire_file(
    dir: &OpenDir,
    path: PathBuf,
    role: &str,
    api: Option<std::net::SocketAddr>,
    repo: Option<&Path>,
) -> Result<WriterLock, LockError> {
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    // A holder says who it is right after it takes the flock, under the
    // directory's lock, and one that lets go empties the file just before
    // the flock goes (which may also outlive it for a moment in a child
    // process forked meanwhile, until that child execs): a lock held by
    // nobody known is looked at again for a moment before it is reported.
    // The removal of a lock file whose recorded holder is dead is followed
    // by one more try.
    let mut unknown_tries = 0;
    let mut replaced_tries = 0;
    let mut dead_holder_removed = false;
    loop {
        let guard = dir.lock(FlockOperation::NonBlockingLockExclusive)?;
        let mut file = open_lock_file(&path, OpenMode::ReadWrite)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                // Someone outside this protocol may have removed or replaced
                // the file between our open and our flock: a lock on a file
                // no longer at the path locks nothing.
                if !is_at_path(&file, &path).map_err(io)? {
                    replaced_tries += 1;
                    if replaced_tries >= REPLACED_TRIES {
                        return Err(LockError::KeptReplaced { path });
                    }
                    continue;
                }
                let holder = LockHolder {
                    role: role.to_string(),
                    pid: std::process::id(),
                    host: host_name(),
                    since: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    api,
                    repo: repo.map(Path::to_path_buf),
                };
                let text = serde_json::to_string(&holder).expect("a lock holder serializes");
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(text.as_bytes()).map_err(io)?;
                file.write_all(b"\n").map_err(io)?;
                file.flush().map_err(io)?;
                drop(guard);
                return Ok(WriterLock { file, path, holder });
            }
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let text = read_holder_text(&mut file).map_err(io)?;
                let Ok(holder) = serde_json::from_str::<LockHolder>(text.trim()) else {
                    drop(guard);
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
                    // Under the directory's lock, and only the very file
                    // whose holder was read: never one that someone else
                    // has put there since.
                    if is_at_path(&file, &path).map_err(io)? {
                        tracing::warn!(%holder, path = %path.display(), "lock holder is dead; taking the lock over");
                        std::fs::remove_file(&path).map_err(io)?;
                    }
                    dead_holder_removed = true;
                    continue;
                }
                return Err(LockError::Held {
                    path,
                    holder: Box::new(holder),
                });
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
    read_holder(&LockDir::given(git_dir), git_dir.join(LOCK_FILE))
}

/// Reads who holds the lock of `node` in the node lock directory `dir`, if
/// anyone does, without taking it: a leader of another repository, or of
/// the repository a clone was made from, acting on that node.
pub fn current_node_holder(dir: &LockDir, node: &Node) -> Result<Option<LockHolder>, LockError> {
    read_holder(dir, node_lock_path(dir.path(), &node_identity(node)))
}

/// Who holds the lock file at `path` in `dir`, read under a shared lock of
/// the directory. A missing file is held by nobody (and a missing
/// directory is not created).
fn read_holder(dir: &LockDir, path: PathBuf) -> Result<Option<LockHolder>, LockError> {
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io(source)),
        Ok(_) => {}
    }
    let dir = dir.open()?;
    // Shared: readers do not exclude each other, but a holder that has
    // taken the flock has also said who it is.
    let _guard = dir.lock(FlockOperation::NonBlockingLockShared)?;
    let mut file = match open_lock_file(&path, OpenMode::ReadOnly) {
        Ok(file) => file,
        Err(LockError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(other) => return Err(other),
    };
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        // Nobody holds it; our shared lock goes when `file` is dropped.
        Ok(()) => Ok(None),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let text = read_holder_text(&mut file).map_err(io)?;
            Ok(serde_json::from_str(text.trim()).ok())
        }
        Err(e) => Err(io(e.into())),
    }
}

/// A holder's record is one line of JSON; more than this is not one, and
/// is not read into memory.
const MAX_HOLDER_TEXT: u64 = 64 * 1024;

fn read_holder_text(file: &mut File) -> std::io::Result<String> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    // Not UTF-8, or cut off: not a holder's record, as good as empty.
    if file
        .take(MAX_HOLDER_TEXT)
        .read_to_string(&mut text)
        .is_err()
    {
        text.clear();
    }
    Ok(text)
}

#[derive(Clone, Copy)]
enum OpenMode {
    ReadWrite,
    ReadOnly,
}

/// Opens (creating it when reading and writing) the lock file at `path`
/// without following a symbolic link, and refuses anything but a regular
/// file with one link: a FIFO would block, a device or a second name for
/// another file would be written through.
fn open_lock_file(path: &Path, mode: OpenMode) -> Result<File, LockError> {
    let mut options = OpenOptions::new();
    match mode {
        OpenMode::ReadWrite => options.read(true).write(true).create(true).truncate(false),
        OpenMode::ReadOnly => options.read(true),
    };
    // std opens with O_CLOEXEC already; O_NONBLOCK keeps a FIFO planted at
    // the path from blocking the open (it is refused just below).
    options.custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32);
    let file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(LockError::Symlink {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(LockError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let metadata = file.metadata().map_err(|source| LockError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let what = if !metadata.file_type().is_file() {
        Some(describe_file_type(&metadata))
    } else if metadata.nlink() != 1 {
        Some(format!("a file with {} hard links", metadata.nlink()))
    } else {
        None
    };
    if let Some(what) = what {
        return Err(LockError::NotRegular {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(file)
}

fn describe_file_type(metadata: &std::fs::Metadata) -> String {
    use std::os::unix::fs::FileTypeExt;
    let file_type = metadata.file_type();
    let what = if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    };
    what.to_string()
}

/// Whether `file` is still the file at `path` (not removed, not replaced):
/// the device and inode of the open file against those the path names now.
fn is_at_path(file: &File, path: &Path) -> std::io::Result<bool> {
    let held = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// A directory of locks, and whether flotilla vouches for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockDir {
    path: PathBuf,
    /// A default directory: created `0700`, and used only when it is a
    /// directory of this user that no one else can write. A directory given
    /// by the user (`--lock-dir`, [`LOCK_DIR_ENV`]) is theirs to vouch for:
    /// it may be shared by a group on purpose.
    private: bool,
}

impl LockDir {
    /// A directory the user chose; created if missing, used as it is.
    pub fn given(path: impl Into<PathBuf>) -> Self {
        LockDir {
            path: path.into(),
            private: false,
        }
    }

    /// A directory flotilla chose: created `0700` if missing, and refused
    /// unless it is a directory (not a symbolic link) owned by this user
    /// that neither group nor others can write.
    pub fn private(path: impl Into<PathBuf>) -> Self {
        LockDir {
            path: path.into(),
            private: true,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the directory when missing, checks it, and opens it (for its
    /// `flock`).
    fn open(&self) -> Result<OpenDir, LockError> {
        let path = &self.path;
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let unsafe_dir = |reason: String| LockError::UnsafeDir {
            dir: path.clone(),
            reason,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        if self.private {
            builder.mode(0o700);
        }
        match std::fs::symlink_metadata(path) {
            Ok(metadata) if metadata.file_type().is_symlink() && self.private => {
                return Err(unsafe_dir("is a symbolic link".into()))
            }
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                builder.create(path).map_err(io)?;
            }
            Err(source) => return Err(io(source)),
        }
        let mut options = OpenOptions::new();
        options.read(true);
        let mut flags = OFlags::DIRECTORY;
        if self.private {
            flags |= OFlags::NOFOLLOW;
        }
        options.custom_flags(flags.bits() as i32);
        let file = match options.open(path) {
            Ok(file) => file,
            Err(error)
                if error.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) =>
            {
                return Err(unsafe_dir("is not a directory".into()))
            }
            Err(error) if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(unsafe_dir("is a symbolic link".into()))
            }
            Err(source) => return Err(io(source)),
        };
        if self.private {
            // Checked on the open directory, so what is checked is what is
            // used.
            let metadata = file.metadata().map_err(io)?;
            let uid = rustix::process::geteuid().as_raw();
            if metadata.uid() != uid {
                return Err(unsafe_dir(format!(
                    "is owned by uid {}, not by this user (uid {uid})",
                    metadata.uid()
                )));
            }
            let mode = metadata.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(unsafe_dir(format!(
                    "can be written by its group or by others (mode {mode:04o})"
                )));
            }
        }
        Ok(OpenDir {
            file,
            path: path.clone(),
        })
    }
}

/// An open lock directory, whose own `flock` is taken around every look at
/// a lock in it (see [`acquire_file`]).
struct OpenDir {
    file: File,
    path: PathBuf,
}

/// How long a lock directory's own lock is waited for: it is held for the
/// time of an open and a write, so only a stopped process holds it longer.
const DIR_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Holds a directory's lock; dropping it lets go.
struct DirGuard<'a>(&'a File);

impl Drop for DirGuard<'_> {
    fn drop(&mut self) {
        let _ = flock(self.0, FlockOperation::Unlock);
    }
}

impl OpenDir {
    /// Takes the directory's own lock (`operation`, one of the non-blocking
    /// ones), waiting up to [`DIR_LOCK_WAIT`].
    fn lock(&self, operation: FlockOperation) -> Result<DirGuard<'_>, LockError> {
        let deadline = Instant::now() + DIR_LOCK_WAIT;
        loop {
            match flock(&self.file, operation) {
                Ok(()) => return Ok(DirGuard(&self.file)),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    return Err(LockError::DirBusy {
                        dir: self.path.clone(),
                    })
                }
                Err(e) => {
                    return Err(LockError::Io {
                        path: self.path.clone(),
                        source: e.into(),
                    })
                }
            }
        }
    }
}

/// The directory of node locks: `$FLOTILLA_LOCK_DIR` when set (used as it
/// is), else a private directory ([`LockDir::private`]):
/// [`SYSTEM_LOCK_DIR`] for root, else `$XDG_RUNTIME_DIR/flotilla/locks`,
/// else `flotilla-locks-<uid>` in the temporary directory. Processes share
/// node locks only when they agree on this directory: two users without root
/// do not, unless both set `FLOTILLA_LOCK_DIR` (or `--lock-dir`) to one
/// directory both can write.
pub fn default_lock_dir() -> LockDir {
    if let Some(dir) = std::env::var_os(LOCK_DIR_ENV).filter(|d| !d.is_empty()) {
        return LockDir::given(dir);
    }
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return LockDir::private(SYSTEM_LOCK_DIR);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return LockDir::private(PathBuf::from(dir).join("flotilla/locks"));
    }
    LockDir::private(std::env::temp_dir().join(format!("flotilla-locks-{}", uid.as_raw())))
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
    dir: LockDir,
    role: String,
    api: Option<std::net::SocketAddr>,
    /// The repository recorded in each lock ([`LockHolder::repo`]).
    repo: Option<PathBuf>,
    /// By node identity.
    held: BTreeMap<String, WriterLock>,
}

impl NodeLocks {
    pub fn new(dir: LockDir, role: &str, api: Option<std::net::SocketAddr>) -> Self {
        NodeLocks {
            dir,
            role: role.to_string(),
            api,
            repo: None,
            held: BTreeMap::new(),
        }
    }

    /// Records `repo` as the repository served, in every lock taken.
    pub fn for_repository(mut self, repo: PathBuf) -> Self {
        self.repo = Some(repo);
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
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
            .all(|identity| self.held.contains_key(identity))
        {
            return Ok(());
        }
        let dir = self.dir.open()?;
        for (identity, name) in wanted {
            if self.held.contains_key(&identity) {
                continue;
            }
            let path = node_lock_path(self.dir.path(), &identity);
            match acquire_file(&dir, path, &self.role, self.api, self.repo.as_deref()) {
                Ok(lock) => {
                    self.held.insert(identity, lock);
                }
                Err(LockError::Held { path, holder }) => {
                    return Err(LockError::NodeHeld {
                        node: name.to_string(),
                        identity,
                        path,
                        holder,
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
pub(super) mod tests {
    use super::*;

    #[test]
    fn second_acquire_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "leader").unwrap();
        let error = acquire(dir.path(), "apply").unwrap_err();
        let LockError::Held { holder, .. } = &error else {
            panic!("expected Held, got {error:?}");
        };
        assert_eq!(**holder, *first.holder());
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
            repo: None,
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();

        let lock = acquire(dir.path(), "leader").unwrap();
        assert_eq!(lock.holder().pid, std::process::id());
    }

    pub(in crate::leader) fn node(name: &str, address: &str, port: u16) -> Node {
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
        let mut leader = NodeLocks::new(LockDir::private(dir.path()), "leader", None);
        leader
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .unwrap();
        let mut apply = NodeLocks::new(LockDir::private(dir.path()), "apply", None);
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
        let mut leader = NodeLocks::new(LockDir::private(dir.path()), "leader", None);
        leader
            .hold(&[node("a", "10.0.0.1", 22), node("b", "10.0.0.2", 22)])
            .unwrap();
        leader.hold(&[node("a", "10.0.0.1", 22)]).unwrap();
        let mut apply = NodeLocks::new(LockDir::private(dir.path()), "apply", None);
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
            repo: None,
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        let mut locks = NodeLocks::new(LockDir::private(dir.path()), "leader", None);
        locks.hold(&[n]).unwrap();
        assert_eq!(locks.held().count(), 1);
    }

    /// A pid that is surely dead: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A lock file at `path` held by a straggler (returned: keep it) whose
    /// recorded holder is dead.
    fn plant_dead_holder(path: &Path, pid: u32) -> File {
        let straggler = File::create(path).unwrap();
        flock(&straggler, FlockOperation::NonBlockingLockExclusive).unwrap();
        let dead = LockHolder {
            role: "leader".into(),
            pid,
            host: host_name(),
            since: 0,
            api: None,
            repo: None,
        };
        std::fs::write(path, serde_json::to_string(&dead).unwrap()).unwrap();
        straggler
    }

    /// Regression (issue 10, item 3): a symbolic link planted at a lock's
    /// path made flotilla truncate the file it points to.
    #[test]
    fn a_symlink_at_a_lock_path_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();

        // The repository's lock.
        let git_dir = dir.path().join("repo.git");
        std::fs::create_dir(&git_dir).unwrap();
        std::os::unix::fs::symlink(&victim, git_dir.join(LOCK_FILE)).unwrap();
        let error = acquire(&git_dir, "leader").unwrap_err();
        assert!(matches!(error, LockError::Symlink { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "lock {} is a symbolic link, which flotilla never follows; remove it (it may have been planted to make flotilla overwrite the file it points to)",
                git_dir.join(LOCK_FILE).display()
            )
        );
        assert!(matches!(
            current_holder(&git_dir),
            Err(LockError::Symlink { .. })
        ));

        // A node's lock, also through a dangling link (which would create
        // the file it names).
        let locks = dir.path().join("locks");
        std::fs::create_dir(&locks).unwrap();
        let n = node("a", "10.0.0.1", 22);
        let path = node_lock_path(&locks, &node_identity(&n));
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let other = node("b", "10.0.0.2", 22);
        let dangling_target = dir.path().join("created-through-the-link");
        std::os::unix::fs::symlink(
            &dangling_target,
            node_lock_path(&locks, &node_identity(&other)),
        )
        .unwrap();
        for node in [n, other] {
            for dir in [LockDir::private(&locks), LockDir::given(&locks)] {
                let mut node_locks = NodeLocks::new(dir, "apply", None);
                let error = node_locks.hold(std::slice::from_ref(&node)).unwrap_err();
                assert!(matches!(error, LockError::Symlink { .. }), "{error:?}");
            }
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!dangling_target.exists());
    }

    #[test]
    fn a_lock_path_that_is_not_a_lone_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let n = node("a", "10.0.0.1", 22);
        let path = node_lock_path(dir.path(), &node_identity(&n));
        // A second name for another file.
        std::fs::hard_link(&victim, &path).unwrap();
        let mut locks = NodeLocks::new(LockDir::private(dir.path()), "apply", None);
        let error = locks.hold(std::slice::from_ref(&n)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "lock {} is a file with 2 hard links, not a regular file with one link; remove it",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        // A FIFO (which would block an open) and a directory.
        std::fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let error = locks.hold(std::slice::from_ref(&n)).unwrap_err();
        assert!(
            error.to_string().contains("is a FIFO, not a regular file"),
            "{error}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let error = locks.hold(std::slice::from_ref(&n)).unwrap_err();
        assert!(
            matches!(error, LockError::Io { .. } | LockError::NotRegular { .. }),
            "{error:?}"
        );
    }

    /// Regression (issue 10, item 3): the fallback directory's owner and
    /// mode were not checked, so another user could prepare it.
    #[test]
    fn a_private_lock_directory_must_be_ours_alone() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let n = node("a", "10.0.0.1", 22);
        let hold = |dir: LockDir| NodeLocks::new(dir, "apply", None).hold(std::slice::from_ref(&n));

        // Created 0700 when missing, whatever the umask lets through.
        let fresh = base.path().join("flotilla-locks-1000");
        hold(LockDir::private(&fresh)).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o700);

        // Owned by another user.
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(4242), Some(4242)).unwrap();
        let error = hold(LockDir::private(&theirs)).unwrap_err();
        let uid = rustix::process::geteuid().as_raw();
        assert_eq!(
            error.to_string(),
            format!(
                "lock directory {} is owned by uid 4242, not by this user (uid {uid}); remove or fix it, or set FLOTILLA_LOCK_DIR (or --lock-dir) to a directory only this user can write",
                theirs.display()
            )
        );

        // Writable by all, or by the group.
        for mode in [0o777, 0o1777, 0o770] {
            let open = base.path().join(format!("open-{mode:o}"));
            std::fs::create_dir(&open).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = hold(LockDir::private(&open)).unwrap_err();
            assert!(
                error.to_string().contains(&format!(
                    "can be written by its group or by others (mode {mode:04o})"
                )),
                "{error}"
            );
            assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
        }

        // A symbolic link, even to a directory of ours.
        let link = base.path().join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        let error = hold(LockDir::private(&link)).unwrap_err();
        assert!(
            error.to_string().contains(" is a symbolic link; "),
            "{error}"
        );
        // A file.
        let file = base.path().join("file");
        std::fs::write(&file, "").unwrap();
        let error = hold(LockDir::private(&file)).unwrap_err();
        assert!(
            error.to_string().contains(" is not a directory; "),
            "{error}"
        );

        // A directory the user gives is theirs to vouch for.
        hold(LockDir::given(base.path().join("open-777"))).unwrap();
    }

    /// Regression (issue 10, item 3): the dead holder's file was removed by
    /// path, so two contenders taking it over at once could remove each
    /// other's fresh file and both believe they held the lock.
    #[test]
    fn racing_takeovers_of_a_dead_holders_lock_have_one_winner() {
        let dead = dead_pid();
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(LOCK_FILE);
            let _straggler = plant_dead_holder(&path, dead);
            let start = std::sync::Barrier::new(2);
            let results: Vec<Result<WriterLock, LockError>> = std::thread::scope(|scope| {
                let contenders: Vec<_> = ["leader", "apply"]
                    .into_iter()
                    .map(|role| {
                        let start = &start;
                        let git_dir = dir.path();
                        scope.spawn(move || {
                            start.wait();
                            acquire(git_dir, role)
                        })
                    })
                    .collect();
                contenders.into_iter().map(|c| c.join().unwrap()).collect()
            });
            let winners: Vec<&WriterLock> =
                results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            let winner = winners[0];
            assert!(
                is_at_path(&winner.file, &path).unwrap(),
                "round {round}: the winner's file is the lock"
            );
            let loser = results.iter().find_map(|r| r.as_ref().err()).unwrap();
            match loser {
                LockError::Held { holder, .. } => assert_eq!(**holder, *winner.holder()),
                other => panic!("round {round}: expected Held, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_lock_file_replaced_after_it_was_opened_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        let opened = open_lock_file(&path, OpenMode::ReadWrite).unwrap();
        assert!(is_at_path(&opened, &path).unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(!is_at_path(&opened, &path).unwrap());
        std::fs::write(&path, "").unwrap();
        assert!(!is_at_path(&opened, &path).unwrap());
    }
}
