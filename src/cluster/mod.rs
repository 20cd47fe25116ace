//! The observed state of the cluster, and the label scheme that records on
//! every container what flotilla put there.
//!
//! Pure: this module decodes and describes; it never talks to a node. The
//! `node` module fills these types from Docker, the `plan` module reads them.

pub(crate) mod labels;
pub(crate) mod replica;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use crate::manifest::model::Protocol;
use crate::manifest::quantity::{Bytes, CpuMillis};

pub use labels::{
    claim_volume_name, pod_volume_name, ContainerRole, Hook, Hooks, ManagedLabels, ObservedVolume,
    OrdinalClaim, VolumeOwner, LABEL_PREFIX, MANAGED_LABEL, SANDBOX_CONTAINER, VOLUME_LABEL,
};
pub use replica::{
    group_replicas, InitProgress, ObservedReplica, ReadinessGate, ReplicaKey, ReplicaState,
};

/// What is known of every node declared in the desired state.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ObservedCluster {
    /// Keyed by node name.
    pub nodes: BTreeMap<String, ObservedNode>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservedNode {
    pub name: String,
    pub reachability: Reachability,
    /// Read from `docker info`; `None` when the node was never reached.
    pub facts: Option<NodeFacts>,
    /// Containers carrying `dev.flotilla.managed=true`. When the node is
    /// unreachable: the ones the observer saw there last, so the planner
    /// keeps counting them; empty, and meaningless, when the observer never
    /// reached it ([`Contents::Unknown`]).
    pub containers: Vec<ObservedContainer>,
    /// Volumes carrying [`VOLUME_LABEL`]: claims' and pods' (`emptyDir`).
    /// Like `containers`, the last seen when the node is unreachable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ObservedVolume>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Reachability {
    Reachable,
    /// Unreachable since `since`, for `reason`. `since` is when this
    /// observer first found it unreachable, or, for a node it never reached,
    /// when the observer started.
    Unreachable {
        since: SystemTime,
        reason: String,
        contents: Contents,
    },
}

/// What an unreachable node's `containers` say about what runs there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Contents {
    /// The containers the observer saw when it last reached the node.
    LastSeen,
    /// The observer never reached the node (a one-shot `flotilla plan`, a
    /// leader since its start): any replica missing elsewhere may run there.
    Unknown,
}

impl Reachability {
    pub fn is_reachable(&self) -> bool {
        matches!(self, Reachability::Reachable)
    }

    /// Unreachable, and never reached by this observer.
    pub fn contents_unknown(&self) -> bool {
        matches!(
            self,
            Reachability::Unreachable {
                contents: Contents::Unknown,
                ..
            }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    pub cpu: CpuMillis,
    pub memory: Bytes,
    pub docker_version: String,
}

/// One Docker container that flotilla manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedContainer {
    pub id: String,
    /// Docker's name, without the leading `/`.
    pub name: String,
    pub labels: ManagedLabels,
    pub state: ContainerState,
    pub health: Option<Health>,
    pub restart_count: u32,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub image: String,
    /// The ports published on the node, sorted: what Docker bound when the
    /// container runs, else what its host config asks for.
    pub ports: Vec<PublishedPort>,
    /// The last readiness verdict the leader's probes gave this container
    /// (readiness probe, or a startup probe's success when it has no
    /// readiness probe); `None` when it has no probe, or no verdict yet
    /// (a startup probe not passed yet included).
    pub probe_ready: Option<bool>,
    /// When that verdict last turned ready (for `minReadySeconds`).
    pub ready_since: Option<SystemTime>,
    /// The container's address on its node's container network, while it
    /// runs (the pod's address: only the pod's sandbox, or a container
    /// alone in its pod, has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<core::net::Ipv4Addr>,
    /// Its lifecycle hooks, from its labels.
    #[serde(skip_serializing_if = "Hooks::is_empty")]
    pub hooks: Hooks,
}

/// One container port published on a node's address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: Protocol,
    /// The node address it is bound to; empty for every address.
    pub host_ip: String,
    pub host_port: u16,
}

impl std::fmt::Display for PublishedPort {
    /// As `docker ps` shows it: `0.0.0.0:18080->8080/tcp`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocol = self.protocol.lowercase();
        if self.host_ip.contains(':') {
            write!(f, "[{}]:", self.host_ip)?;
        } else if !self.host_ip.is_empty() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(f, "{}->{}/{protocol}", self.host_port, self.container_port)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited { code: i64 },
    Removing,
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

/// FNV-1a, for hash maps keyed by short strings (node, object and revision
/// names) on the planner's hot paths, where SipHash's cost shows and
/// flooding is no concern (the keys come from the operator's own repository
/// and nodes).
#[derive(Clone, Copy, Debug, Default)]
pub struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// A `HashMap` with [`FnvHasher`].
pub type FnvHashMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FnvHasher>>;
