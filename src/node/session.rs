//! One SSH session to one node: connect with a timeout, check the host key
//! against known_hosts, authenticate with a key, keep alive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::known_hosts::{self, HostKeyStatus};
use super::NodeError;

/// How flotilla talks SSH to every node.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// `~/.ssh/known_hosts` by default.
    pub known_hosts: PathBuf,
    /// Accept and record a host key that known_hosts does not have yet. A
    /// key that differs from a recorded one is refused regardless.
    pub trust_on_first_use: bool,
    /// Covers TCP connect, key exchange and authentication; 10 s by default.
    pub connect_timeout: Duration,
    /// Bounds each Docker request that answers at once when the node is
    /// well (version negotiation, the observation, inspect, create, start,
    /// remove, logs, opening a channel), over SSH and on a local node's
    /// socket alike; 10 s by default. A stop or restart gets its grace
    /// period on top; image pulls and loads are bounded by their progress
    /// deadline instead. A request that times out drops the session, so the
    /// next call reconnects (within the connect timeout) instead of waiting
    /// on a node gone silent.
    pub request_timeout: Duration,
    /// Keepalive period; the session is dropped after three unanswered.
    pub keepalive_interval: Duration,
    /// First wait before reconnecting a dropped or failed session; doubles
    /// up to `reconnect_backoff_max`.
    pub reconnect_backoff_min: Duration,
    pub reconnect_backoff_max: Duration,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            known_hosts: home_dir().join(".ssh").join("known_hosts"),
            trust_on_first_use: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(15),
            reconnect_backoff_min: Duration::from_millis(500),
            reconnect_backoff_max: Duration::from_secs(30),
        }
    }
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Where and as whom to connect; taken from a Node's spec.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub node: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
}

/// The russh handler: checks the server's key and carries the refusal out.
pub(crate) struct HostKeyCheck {
    node: String,
    address: String,
    port: u16,
    known_hosts: PathBuf,
    trust_on_first_use: bool,
}

/// Why a handshake stopped: SSH itself, or flotilla refused the host key.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Ssh(russh::Error),
    Refused(NodeError),
}

impl From<russh::Error> for HandshakeError {
    fn from(error: russh::Error) -> Self {
        HandshakeError::Ssh(error)
    }
}

impl client::Handler for HostKeyCheck {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(HandshakeError::Refused(NodeError::HostCertificate {
                    node: self.node.clone(),
                }))
            }
        };
        self.verify(key)
            .map(|()| true)
            .map_err(HandshakeError::Refused)
    }
}

impl HostKeyCheck {
    fn verify(&self, key: &PublicKey) -> Result<(), NodeError> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let path = self.known_hosts.display().to_string();
        let text = match std::fs::read_to_string(&self.known_hosts) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(NodeError::KnownHostsRead {
                    node: self.node.clone(),
                    path,
                    source,
                })
            }
        };
        match known_hosts::check(&text, &self.address, self.port, key) {
            HostKeyStatus::Known => Ok(()),
            HostKeyStatus::Changed { line } => Err(NodeError::HostKeyChanged {
                node: self.node.clone(),
                fingerprint,
                path,
                line,
            }),
            HostKeyStatus::Revoked { line } => Err(NodeError::HostKeyRevoked {
                node: self.node.clone(),
                fingerprint,
                path,
                line,
            }),
            HostKeyStatus::Unknown if self.trust_on_first_use => {
                record_host_key(&self.known_hosts, &self.address, self.port, key).map_err(
                    |source| NodeError::KnownHostsWrite {
                        node: self.node.clone(),
                        path: path.clone(),
                        source,
                    },
                )?;
                tracing::warn!(node = %self.node, %fingerprint, known_hosts = %path,
                    "trusted a host key on first use and recorded it");
                Ok(())
            }
            HostKeyStatus::Unknown => Err(NodeError::HostKeyUnknown {
                node: self.node.clone(),
                fingerprint,
                path,
            }),
        }
    }
}

/// Appends the entry in one `write` to a file opened with `O_APPEND`, so
/// entries recorded at once by concurrent connects never interleave. It
/// starts with a newline when the file does not end with one, and a file
/// lock (`flock`) keeps that check and the write together against other
/// writers doing the same.
fn record_host_key(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let Some(entry) = known_hosts::entry(host, port, key) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("address {host:?} is not a host name or IP address; not recorded"),
        ));
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    let length = file.metadata()?.len();
    let mut line = String::new();
    if length > 0 {
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(length - 1))?;
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    line.push_str(&entry);
    line.push('\n');
    let written = file.write_all(line.as_bytes());
    rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock)?;
    written
}

pub(crate) type SshHandle = Handle<HostKeyCheck>;

/// Opens and authenticates one session, all within the connect timeout.
pub(crate) async fn open(target: &Target, options: &SshOptions) -> Result<SshHandle, NodeError> {
    let address = format!("{}:{}", target.address, target.port);
    match tokio::time::timeout(options.connect_timeout, open_inner(target, options)).await {
        Ok(result) => result,
        Err(_) => Err(NodeError::ConnectTimeout {
            node: target.node.clone(),
            address,
            timeout: options.connect_timeout,
        }),
    }
}

async fn open_inner(target: &Target, options: &SshOptions) -> Result<SshHandle, NodeError> {
    let address = format!("{}:{}", target.address, target.port);
    let mut config = client::Config {
        keepalive_interval: Some(options.keepalive_interval),
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    };
    // As OpenSSH does: a host with recorded keys is asked for one of those
    // algorithms, so it shows a key that can be checked; any other key it
    // shows is refused as changed.
    let known = std::fs::read_to_string(&options.known_hosts).unwrap_or_default();
    let recorded = known_hosts::recorded_algorithms(&known, &target.address, target.port);
    let offered = host_key_algorithms(&config.preferred.key, &recorded);
    if !offered.is_empty() {
        config.preferred.key = offered.into();
    }
    let handler = HostKeyCheck {
        node: target.node.clone(),
        address: target.address.clone(),
        port: target.port,
        known_hosts: options.known_hosts.clone(),
        trust_on_first_use: options.trust_on_first_use,
    };
    let mut handle = client::connect(
        Arc::new(config),
        (target.address.as_str(), target.port),
        handler,
    )
    .await
    .map_err(|error| match error {
        HandshakeError::Refused(error) => error,
        HandshakeError::Ssh(source) => NodeError::Connect {
            node: target.node.clone(),
            address: address.clone(),
            source: Box::new(source),
        },
    })?;
    authenticate(&mut handle, target).await?;
    Ok(handle)
}

/// The host-key algorithms of `preferred` that match a recorded one (any
/// RSA signature hash for a recorded RSA key), in `preferred`'s order;
/// empty when nothing is recorded (or nothing recorded is supported).
fn host_key_algorithms(preferred: &[Algorithm], recorded: &[Algorithm]) -> Vec<Algorithm> {
    preferred
        .iter()
        .filter(|algorithm| {
            recorded.iter().any(|known| match (known, algorithm) {
                (Algorithm::Rsa { .. }, Algorithm::Rsa { .. }) => true,
                (known, algorithm) => known == *algorithm,
            })
        })
        .cloned()
        .collect()
}

/// Key authentication only: the ssh-agent's keys when SSH_AUTH_SOCK is set,
/// then the Node's identityFile, else ~/.ssh/id_ed25519 and ~/.ssh/id_rsa.
async fn authenticate(handle: &mut SshHandle, target: &Target) -> Result<(), NodeError> {
    let ssh_error = |source| NodeError::Ssh {
        node: target.node.clone(),
        source: Box::new(source),
    };
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .map_err(ssh_error)?
        .flatten();
    let mut tried = Vec::new();

    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match russh::keys::agent::client::AgentClient::connect_env().await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for identity in identities {
                    let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = identity else {
                        continue;
                    };
                    let hash = key.algorithm().is_rsa().then_some(rsa_hash).flatten();
                    match handle
                        .authenticate_publickey_with(&target.user, key, hash, &mut agent)
                        .await
                    {
                        Ok(result) if result.success() => return Ok(()),
                        Ok(_) => {}
                        Err(error) => {
                            tracing::debug!(node = %target.node, %error, "ssh-agent signing failed")
                        }
                    }
                }
                tried.push("ssh-agent".to_string());
            }
            Err(error) => {
                tracing::debug!(node = %target.node, %error, "ssh-agent unavailable");
            }
        }
    }

    let candidates: Vec<PathBuf> = match &target.identity_file {
        Some(path) => vec![expand_home(path)],
        None => ["id_ed25519", "id_rsa"]
            .iter()
            .map(|name| home_dir().join(".ssh").join(name))
            .filter(|path| path.exists())
            .collect(),
    };
    for path in candidates {
        let key = russh::keys::load_secret_key(&path, None).map_err(|source| NodeError::Key {
            node: target.node.clone(),
            path: path.display().to_string(),
            source: Box::new(source),
        })?;
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        let result = handle
            .authenticate_publickey(&target.user, key)
            .await
            .map_err(ssh_error)?;
        if result.success() {
            return Ok(());
        }
        tried.push(path.display().to_string());
    }
    if tried.is_empty() {
        return Err(NodeError::NoIdentity {
            node: target.node.clone(),
        });
    }
    Err(NodeError::AuthRejected {
        node: target.node.clone(),
        user: target.user.clone(),
        tried: tried.join(", "),
    })
}

fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => home_dir().join(rest),
        Err(_) => path.to_path_buf(),
    }
}

/// When the next connection attempt may be made: after a failure, wait
/// `min`, doubling up to `max`; a success resets it. Time is passed in.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next_delay: Duration,
    not_before: Option<tokio::time::Instant>,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            next_delay: min,
            not_before: None,
        }
    }

    /// `Err(wait)` while the back-off runs.
    pub(super) fn check(&self, now: tokio::time::Instant) -> Result<(), Duration> {
        match self.not_before {
            Some(not_before) if now < not_before => Err(not_before - now),
            _ => Ok(()),
        }
    }

    pub(super) fn failed(&mut self, now: tokio::time::Instant) {
        self.not_before = Some(now + self.next_delay);
        self.next_delay = (self.next_delay * 2).min(self.max);
    }

    pub(super) fn succeeded(&mut self) {
        self.next_delay = self.min;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let start = Instant::now();
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        assert_eq!(backoff.check(start), Ok(()));
        let waits: Vec<Duration> = (0..4)
            .map(|_| {
                backoff.failed(start);
                backoff.check(start).expect_err("backing off")
            })
            .collect();
        assert_eq!(
            waits,
            [1, 2, 4, 4].map(Duration::from_secs).to_vec(),
            "waits after successive failures"
        );
        assert_eq!(backoff.check(start + Duration::from_secs(4)), Ok(()));
        backoff.succeeded();
        backoff.failed(start);
        assert_eq!(backoff.check(start), Err(Duration::from_secs(1)));
    }

    #[test]
    fn only_recorded_host_key_algorithms_are_offered() {
        let preferred = russh::Preferred::DEFAULT.key;
        let ecdsa = Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        };
        assert_eq!(
            host_key_algorithms(&preferred, &[Algorithm::Rsa { hash: None }]),
            [
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512)
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256)
                },
                Algorithm::Rsa { hash: None },
            ]
        );
        assert_eq!(
            host_key_algorithms(&preferred, &[ecdsa.clone(), Algorithm::Ed25519]),
            [Algorithm::Ed25519, ecdsa],
            "in the client's order of preference"
        );
        assert_eq!(host_key_algorithms(&preferred, &[]), []);
    }

    #[test]
    fn concurrent_trust_on_first_use_records_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_hosts");
        // No trailing newline: the first entry must start a line of its own.
        std::fs::write(&path, "# hand-written").expect("write");
        let key = russh::keys::parse_public_key_base64(
            "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ",
        )
        .expect("key");
        let threads: Vec<_> = (0..16)
            .map(|thread| {
                let (path, key) = (path.clone(), key.clone());
                std::thread::spawn(move || {
                    for round in 0..25 {
                        let host = format!("10.{thread}.{round}.1");
                        record_host_key(&path, &host, 22, &key).expect("recorded");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 16 * 25, "{text}");
        assert_eq!(lines[0], "# hand-written");
        for thread in 0..16 {
            for round in 0..25 {
                let host = format!("10.{thread}.{round}.1");
                assert_eq!(
                    known_hosts::check(&text, &host, 22, &key),
                    HostKeyStatus::Known,
                    "{host}"
                );
            }
        }
        let entry = known_hosts::entry("x", 22, &key).expect("a host name");
        for line in &lines[1..] {
            assert!(
                line.starts_with("10.")
                    && line.ends_with(&entry[1..])
                    && line.matches(' ').count() == 2,
                "a whole entry per line: {line:?}"
            );
        }
    }
}
