//! Talking to nodes: one SSH session per node (russh), the Docker API over
//! that session (bollard over `direct-streamlocal` channels), TCP streams as
//! seen from the node (`direct-tcpip`), and the container operations the
//! leader carries out.
//!
//! `node` carries out; it never decides. It does not read manifests beyond a
//! `Node`'s connection fields, and it touches only containers labelled
//! `dev.flotilla.managed=true` when listing. The seam the rest of the code
//! uses is [`NodeClient`] (one per node) and [`NodePool`] (keyed by name).

mod client;
pub mod known_hosts;
mod session;
mod spec;
pub mod transport;

use std::time::Duration;

pub(crate) use client::grace_seconds;
pub use client::{published_ports, ExecOutput, NodeClient, NodePool};
pub use session::SshOptions;
pub use spec::{default_tag, ContainerSpec, PortBinding, RestartPolicy};
pub use transport::{local_docker, BoxedIo};

/// Everything that can go wrong talking to a node; each names the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node}: connecting to {address} timed out after {timeout:?}")]
    ConnectTimeout {
        node: String,
        address: String,
        timeout: Duration,
    },
    #[error("node {node}: cannot connect to {address}: {source}")]
    Connect {
        node: String,
        address: String,
        source: Box<russh::Error>,
    },
    #[error("node {node}: host key {fingerprint} is not in {path}; add it to known_hosts, or allow trust on first use")]
    HostKeyUnknown {
        node: String,
        fingerprint: String,
        path: String,
    },
    #[error("node {node}: host key {fingerprint} does not match known_hosts ({path}:{line}); if the host was reinstalled, remove that line")]
    HostKeyChanged {
        node: String,
        fingerprint: String,
        path: String,
        line: usize,
    },
    #[error("node {node}: host key {fingerprint} is revoked in known_hosts ({path}:{line})")]
    HostKeyRevoked {
        node: String,
        fingerprint: String,
        path: String,
        line: usize,
    },
    #[error("node {node}: the server offered a host certificate, which flotilla does not accept")]
    HostCertificate { node: String },
    #[error("node {node}: cannot read known_hosts {path}: {source}")]
    KnownHostsRead {
        node: String,
        path: String,
        source: std::io::Error,
    },
    #[error("node {node}: cannot record the host key in {path}: {source}")]
    KnownHostsWrite {
        node: String,
        path: String,
        source: std::io::Error,
    },
    #[error("node {node}: cannot load private key {path}: {source}")]
    Key {
        node: String,
        path: String,
        source: Box<russh::keys::Error>,
    },
    #[error("node {node}: no SSH key to authenticate with (set identityFile, or create ~/.ssh/id_ed25519)")]
    NoIdentity { node: String },
    #[error("node {node}: user {user} was refused with every key tried ({tried})")]
    AuthRejected {
        node: String,
        user: String,
        tried: String,
    },
    #[error("node {node}: ssh: {source}")]
    Ssh {
        node: String,
        source: Box<russh::Error>,
    },
    #[error("node {node}: not reconnecting for another {retry_in:?} after: {last_error}")]
    BackingOff {
        node: String,
        retry_in: Duration,
        last_error: String,
    },
    #[error("node {node}: cannot open a channel to {target}: {source}")]
    Channel {
        node: String,
        target: String,
        source: Box<russh::Error>,
    },
    #[error("node {node}: cannot connect to {target}: {source}")]
    LocalConnect {
        node: String,
        target: String,
        source: std::io::Error,
    },
    #[error("node {node}: docker {operation}{}: {source}", container_suffix(.container))]
    Docker {
        node: String,
        operation: &'static str,
        container: String,
        source: bollard::errors::Error,
    },
    #[error("node {node}: docker {operation}{} got no answer within {timeout:?}; the node or its network is silent (session dropped, the next call reconnects)", container_suffix(.container))]
    RequestTimeout {
        node: String,
        operation: &'static str,
        container: String,
        timeout: Duration,
    },
    #[error("node {node}: container name {container} is taken by a container with other labels")]
    NameInUse { node: String, container: String },
    #[error("node {node}: image {image} is not present and the pull policy is Never")]
    ImageMissing { node: String, image: String },
    #[error("node {node}: cannot read image archive {path}: {source}")]
    Archive {
        node: String,
        path: String,
        source: std::io::Error,
    },
    #[error("unknown node {node}")]
    UnknownNode { node: String },
    #[error("node {node}: invalid image reference {image:?}: {reason}")]
    InvalidImage {
        node: String,
        image: String,
        reason: String,
    },
}

fn container_suffix(container: &str) -> String {
    if container.is_empty() {
        String::new()
    } else {
        format!(" of container {container}")
    }
}
