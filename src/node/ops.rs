//! The seam between the leader and the nodes: everything the control loop
//! asks of a node, as one trait. [`super::Nodes`] implements it over Docker,
//! for SSH and local nodes alike; the loop's own tests drive it with an
//! in-memory cluster (`leader::memory`). Every operation is idempotent where
//! Docker allows: creating a container that exists, starting a running one,
//! removing a missing one all succeed.

use std::future::Future;
use std::time::Duration;

use crate::cluster::{NodeFacts, ObservedContainer, ObservedVolume};
use crate::manifest::model::Node;

use super::registry_auth::RegistryAuth;
use super::spec::ReplicaContainer;
use super::NodeError;

/// A failed operation on a node, with what was being done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node {node}: {message}")]
pub struct NodeOpError {
    pub node: String,
    pub message: String,
    /// The node could not be reached at all (as opposed to Docker refusing).
    pub unreachable: bool,
}

impl From<NodeError> for NodeOpError {
    fn from(error: NodeError) -> Self {
        let unreachable = error.is_unreachable();
        let node = error.node().to_string();
        // The seam's error names the node itself.
        let message = error.to_string();
        let message = message
            .strip_prefix(&format!("node {node}: "))
            .map_or(message.clone(), str::to_string);
        NodeOpError {
            node,
            message,
            unreachable,
        }
    }
}

/// One node as observed: its facts and the managed containers on it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeObservation {
    pub facts: NodeFacts,
    pub containers: Vec<ObservedContainer>,
    /// Volumes carrying `dev.flotilla.volume` (one list call, filtered by
    /// label on the daemon).
    pub volumes: Vec<ObservedVolume>,
}

/// Where a network probe connects, seen from the node: the loopback host
/// port when the container publishes the probed port, else the container's
/// own address on the node's bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeTarget {
    pub container: String,
    pub container_port: u16,
    pub host_port: Option<u16>,
}

pub trait NodeOps: Send + Sync + 'static {
    /// How long the loop waits for one node's observation before it counts
    /// the node unreachable and goes on with the others.
    fn observe_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// From now on, notifies `wake` whenever a managed container on any
    /// node dies, stops or is removed (Docker's event stream), so the
    /// leader reconciles at once. Nothing by default.
    fn follow_container_events(&self, wake: std::sync::Arc<tokio::sync::Notify>) {
        let _ = wake;
    }

    /// Facts and managed containers of `node` (one list call, filtered by
    /// label on the daemon). An error means the node is unreachable.
    fn observe(
        &self,
        node: &Node,
    ) -> impl Future<Output = Result<NodeObservation, NodeOpError>> + Send;

    /// Creates the container unless one of that name exists.
    fn create(
        &self,
        node: &str,
        container: &ReplicaContainer,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Starts the container unless it runs.
    fn start(
        &self,
        node: &str,
        container: &str,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Stops the container (SIGTERM, then SIGKILL after `grace`, or after
    /// the container's own stop timeout when `None`) unless stopped.
    fn stop(
        &self,
        node: &str,
        container: &str,
        grace: Option<Duration>,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Restarts the container: the liveness probe's remedy.
    fn restart(
        &self,
        node: &str,
        container: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Removes the container (forcibly) unless it is gone.
    fn remove(
        &self,
        node: &str,
        container: &str,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    fn has_image(
        &self,
        node: &str,
        image: &str,
    ) -> impl Future<Output = Result<bool, NodeOpError>> + Send;

    /// Pulls from the image's registry, through the node's Docker, with
    /// `auth` when given (from the pod's `imagePullSecrets`).
    fn pull_image(
        &self,
        node: &str,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Copies the image from the leader's own Docker to the node's.
    fn ship_image(
        &self,
        node: &str,
        image: &str,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Opens a TCP connection from the node to the target (through SSH's
    /// `direct-tcpip`) and closes it: a tcpSocket probe.
    fn probe_tcp(
        &self,
        node: &str,
        target: &ProbeTarget,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// `GET path` on the target from the node: the response's status code.
    fn probe_http(
        &self,
        node: &str,
        target: &ProbeTarget,
        path: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> impl Future<Output = Result<u16, NodeOpError>> + Send;

    /// Runs `command` in the container (Docker exec): its exit code.
    fn probe_exec(
        &self,
        node: &str,
        container: &str,
        command: &[String],
        timeout: Duration,
    ) -> impl Future<Output = Result<i64, NodeOpError>> + Send;

    /// The last `lines` lines the container printed (stdout and stderr):
    /// the evidence in a failed rollout's revert commit.
    fn logs(
        &self,
        node: &str,
        container: &str,
        lines: u32,
    ) -> impl Future<Output = Result<String, NodeOpError>> + Send;

    /// Makes the node's proxy run from `image`: loads the image when the
    /// node lacks it and (re)creates the proxy's container when needed.
    fn ensure_proxy(
        &self,
        node: &str,
        image: &super::ProxyImage,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Makes the node's Docker hold `image` (loaded when it lacks it): the
    /// image of every pod sandbox.
    fn load_proxy_image(
        &self,
        node: &str,
        image: &super::ProxyImage,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// One control request to the node's proxy, and its answer.
    fn proxy_request(
        &self,
        node: &str,
        request: &crate::proxy::table::Request,
    ) -> impl Future<Output = Result<crate::proxy::table::Response, NodeOpError>> + Send;

    /// Removes the Docker volume `volume` and its data; a missing one is
    /// fine. Never forced: a volume a container mounts (by name, or a
    /// subPath of it) is refused with an error naming the containers.
    fn remove_volume(
        &self,
        node: &str,
        volume: &str,
    ) -> impl Future<Output = Result<(), NodeOpError>> + Send;

    /// Removes an unused image (never forced: Docker keeps an image any
    /// container, managed or not, still uses). Whether it was removed.
    fn remove_image(
        &self,
        node: &str,
        image: &str,
    ) -> impl Future<Output = Result<bool, NodeOpError>> + Send;
}
