//! Talking to nodes: the one node runtime. [`Nodes`] is what the leader,
//! the CLI, the integration tests and the benchmarks use, through the
//! [`NodeOps`] seam; behind it each node is one `client::NodeClient`,
//! and a node of `transport: ssh` and one of `transport: local` look the
//! same: one SSH session per node (russh) with the Docker API over
//! `direct-streamlocal` channels to the node's socket and TCP streams as
//! seen from the node over `direct-tcpip`, or the socket on this machine
//! and plain TCP. Every request that should answer at once is bounded by
//! the request timeout, image pulls and shipments by a progress deadline,
//! stops by their grace period, probes by their own timeout, on both paths.
//!
//! `node` carries out; it never decides. It reads no manifest beyond a
//! `Node`'s connection fields and the [`ReplicaContainer`] it is given, and
//! lists only containers labelled `dev.flotilla.managed=true`.

mod backup;
mod client;
mod decode;
mod events;
mod files;
mod image;
pub(crate) mod known_hosts;
mod mounts;
mod ops;
mod proxy;
pub mod registry_auth;
mod runtime;
mod session;
mod spec;
mod transport;
mod volumes;

use std::time::Duration;

pub use ops::{NodeObservation, NodeOpError, NodeOps, ProbeTarget};
pub use proxy::{ProxyImage, ProxyImageError, PROXY_LABEL, SANDBOX_IMAGE};
pub use registry_auth::{DockerConfigError, RegistryAuth};
pub use runtime::Nodes;
pub use session::SshOptions;
pub use spec::{
    ContainerEnv, ContainerFile, ContainerFileError, ContainerMount, DockerRestartPolicy, EnvValue,
    PodVolume, PortBinding, ReplicaContainer, VolumeMedium,
};
pub use volumes::VolumeUser;

/// Everything that can go wrong talking to a node; each names the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {node}: the node proxy: {reason}")]
    Proxy { node: String, reason: String },
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
    #[error("node {node}: {operation}: {source}")]
    Docker {
        node: String,
        /// What was asked, with its object: `create NAME`, `pull IMAGE`.
        operation: String,
        source: bollard::errors::Error,
    },
    #[error("node {node}: {operation}: no answer within {timeout:?}; the node or its network is silent (the session is dropped, the next call reconnects)")]
    RequestTimeout {
        node: String,
        operation: String,
        timeout: Duration,
    },
    #[error("node {node}: {operation}: no progress for {}s; the registry, the node or the transfer is stalled", .deadline.as_secs_f64())]
    Stalled {
        node: String,
        operation: String,
        deadline: Duration,
    },
    #[error("node {node}: container name {container} is taken by a container flotilla did not create with these labels ({label} differs); remove or rename that container")]
    NameInUse {
        node: String,
        container: String,
        /// The first label that differs (the managed label first).
        label: String,
    },
    #[error("node {node}: invalid image reference {image:?}: {reason}")]
    InvalidImage {
        node: String,
        image: String,
        reason: String,
    },
    #[error("node {node}: cannot reach the leader's Docker at {socket} to ship {image}: {reason}")]
    LeaderDocker {
        node: String,
        socket: String,
        image: String,
        reason: String,
    },
    #[error("node {node}: image {image} is not on the leader's Docker either")]
    NotOnLeader { node: String, image: String },
    #[error("node {node}: port {port} of {container} is not published on the node")]
    PortNotPublished {
        node: String,
        container: String,
        port: u16,
    },
    #[error("node {node}: container {container} has no address on the node and does not publish port {port}")]
    NoAddress {
        node: String,
        container: String,
        port: u16,
    },
    #[error("node {node}: not observed yet, so no connection to it is known")]
    NotObserved { node: String },
    #[error("node {node}: container {container}: {source}")]
    File {
        node: String,
        container: String,
        source: spec::ContainerFileError,
    },
    #[error("node {node}: cannot place {path} in container {container} ({reason}); {cleanup}")]
    FileNotPlaced {
        node: String,
        container: String,
        path: String,
        /// The upload's error (Docker's, or no answer in time).
        reason: String,
        /// What became of the container.
        cleanup: String,
        unreachable: bool,
    },
    #[error("node {node}: container {container} was never started and lacks its file {path} (its creation was cut before the file was placed); {cleanup}")]
    FileMissing {
        node: String,
        container: String,
        path: String,
        cleanup: String,
    },
    #[error("node {node}: invalid volume name {volume:?}: Docker's volume names are letters, digits and `_.-`, starting with a letter or digit")]
    InvalidVolumeName { node: String, volume: String },
    #[error("node {node}: volume {volume} does not exist")]
    VolumeMissing { node: String, volume: String },
    #[error("node {node}: volume {volume} is in use by {containers}; nothing was removed (remove or stop those containers first: scale their workload to 0 in Git)")]
    VolumeInUse {
        node: String,
        volume: String,
        /// The containers mounting it (by name or through a subPath).
        containers: String,
    },
    #[error("node {node}: container {container}: the mount at {target}: {reason}")]
    Mount {
        node: String,
        container: String,
        target: String,
        reason: String,
    },
    #[error("node {node}: container {container}: hostPath {path} does not exist, and type {kind} needs it there; create it on the node{hint}")]
    HostPathMissing {
        node: String,
        container: String,
        path: String,
        kind: String,
        /// What else would do (a type that creates it).
        hint: String,
    },
    #[error("node {node}: container {container}: hostPath {path} is {found}, but type {} needs {}; {cleanup}", mounts::host_path_type_name(*.kind), mounts::host_path_type_needs(*.kind))]
    HostPathType {
        node: String,
        container: String,
        path: String,
        kind: crate::manifest::model::HostPathType,
        /// What is there: `a regular file`, `missing`.
        found: &'static str,
        /// What became of the container.
        cleanup: String,
    },
    #[error("node {node}: no image on the node to make the helper container of volume {volume} from (it is created, never started); pull any image there, e.g. `docker pull busybox`")]
    NoHelperImage { node: String, volume: String },
    #[error("node {node}: volume {volume}: {operation}: {source}")]
    Archive {
        node: String,
        volume: String,
        /// `backup` or `restore`, with what failed: `write the archive`.
        operation: String,
        source: std::io::Error,
    },
    #[error(
        "node {node}: the registry refused to let image {image} be pulled {credentials}: {reason}"
    )]
    PullRefused {
        node: String,
        image: String,
        /// Which credentials were refused (never their secret part).
        credentials: String,
        reason: String,
    },
}

impl NodeError {
    /// The node the error is about.
    pub fn node(&self) -> &str {
        match self {
            NodeError::ConnectTimeout { node, .. }
            | NodeError::Connect { node, .. }
            | NodeError::HostKeyUnknown { node, .. }
            | NodeError::HostKeyChanged { node, .. }
            | NodeError::HostKeyRevoked { node, .. }
            | NodeError::HostCertificate { node }
            | NodeError::KnownHostsRead { node, .. }
            | NodeError::KnownHostsWrite { node, .. }
            | NodeError::Key { node, .. }
            | NodeError::NoIdentity { node }
            | NodeError::AuthRejected { node, .. }
            | NodeError::Ssh { node, .. }
            | NodeError::BackingOff { node, .. }
            | NodeError::Channel { node, .. }
            | NodeError::LocalConnect { node, .. }
            | NodeError::Docker { node, .. }
            | NodeError::RequestTimeout { node, .. }
            | NodeError::Stalled { node, .. }
            | NodeError::NameInUse { node, .. }
            | NodeError::InvalidImage { node, .. }
            | NodeError::LeaderDocker { node, .. }
            | NodeError::NotOnLeader { node, .. }
            | NodeError::PortNotPublished { node, .. }
            | NodeError::NoAddress { node, .. }
            | NodeError::Proxy { node, .. }
            | NodeError::File { node, .. }
            | NodeError::FileNotPlaced { node, .. }
            | NodeError::FileMissing { node, .. }
            | NodeError::PullRefused { node, .. }
            | NodeError::InvalidVolumeName { node, .. }
            | NodeError::VolumeMissing { node, .. }
            | NodeError::VolumeInUse { node, .. }
            | NodeError::Mount { node, .. }
            | NodeError::HostPathMissing { node, .. }
            | NodeError::HostPathType { node, .. }
            | NodeError::NoHelperImage { node, .. }
            | NodeError::Archive { node, .. }
            | NodeError::NotObserved { node } => node,
        }
    }

    /// Whether the node could not be reached at all, as opposed to its
    /// Docker refusing or a container not answering: no session, no answer
    /// in time, or no connection to its Docker socket.
    pub fn is_unreachable(&self) -> bool {
        match self {
            // A connection to the daemon that could not be made or was cut;
            // not a request whose own body failed (an archive being shipped).
            NodeError::Docker { source, .. } => match source {
                bollard::errors::Error::HyperLegacyError { err } => err.is_connect(),
                bollard::errors::Error::IOError { .. }
                | bollard::errors::Error::HyperResponseError { .. }
                | bollard::errors::Error::RequestTimeoutError => true,
                _ => false,
            },
            NodeError::FileNotPlaced { unreachable, .. } => *unreachable,
            NodeError::Stalled { .. }
            | NodeError::File { .. }
            | NodeError::FileMissing { .. }
            | NodeError::PullRefused { .. }
            | NodeError::InvalidVolumeName { .. }
            | NodeError::VolumeMissing { .. }
            | NodeError::VolumeInUse { .. }
            | NodeError::Mount { .. }
            | NodeError::HostPathMissing { .. }
            | NodeError::HostPathType { .. }
            | NodeError::NoHelperImage { .. }
            | NodeError::Archive { .. }
            | NodeError::NameInUse { .. }
            | NodeError::InvalidImage { .. }
            | NodeError::LeaderDocker { .. }
            | NodeError::NotOnLeader { .. }
            | NodeError::PortNotPublished { .. }
            | NodeError::NoAddress { .. }
            | NodeError::Channel { .. }
            | NodeError::Proxy { .. }
            | NodeError::LocalConnect { .. } => false,
            NodeError::ConnectTimeout { .. }
            | NodeError::Connect { .. }
            | NodeError::HostKeyUnknown { .. }
            | NodeError::HostKeyChanged { .. }
            | NodeError::HostKeyRevoked { .. }
            | NodeError::HostCertificate { .. }
            | NodeError::KnownHostsRead { .. }
            | NodeError::KnownHostsWrite { .. }
            | NodeError::Key { .. }
            | NodeError::NoIdentity { .. }
            | NodeError::AuthRejected { .. }
            | NodeError::Ssh { .. }
            | NodeError::BackingOff { .. }
            | NodeError::RequestTimeout { .. }
            | NodeError::NotObserved { .. } => true,
        }
    }
}
