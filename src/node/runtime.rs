//! [`Nodes`]: every node's client, by name, behind the [`NodeOps`] seam.
//! A node's client is made when the node is first observed and made anew
//! when its Node spec changes; SSH and local nodes differ only inside it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::client::NodeClient;
use super::image::IMAGE_PROGRESS_DEADLINE;
use super::ops::{NodeObservation, NodeOpError, NodeOps, ProbeTarget};
use super::registry_auth::RegistryAuth;
use super::session::SshOptions;
use super::spec::ReplicaContainer;
use super::NodeError;
use crate::manifest::model::{Node, NodeSpec};

/// The leader's own Docker, the source of images shipped to nodes.
const LEADER_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// The node runtime: what the leader, the CLI and the tests use to act on
/// nodes, whatever their transport.
pub struct Nodes {
    /// node -> its spec when the client was made, and the client.
    clients: Mutex<HashMap<String, (NodeSpec, Arc<NodeClient>)>>,
    ssh: SshOptions,
    leader_socket: String,
    /// Told of every managed container that dies or goes, on any node
    /// (Docker's event stream over each node's session), when set.
    events: Mutex<Option<Arc<tokio::sync::Notify>>>,
}

impl Nodes {
    /// Reaches `transport: ssh` nodes with these options (known_hosts,
    /// trust on first use, timeouts); ships images from the leader's own
    /// Docker, `/var/run/docker.sock`.
    pub fn new(ssh: SshOptions) -> Self {
        Nodes {
            clients: Mutex::default(),
            ssh,
            leader_socket: LEADER_DOCKER_SOCKET.to_string(),
            events: Mutex::default(),
        }
    }

    /// Ships images from the Docker at `socket` instead.
    pub fn with_leader_socket(mut self, socket: &str) -> Self {
        self.leader_socket = socket.to_string();
        self
    }

    /// How many SSH sessions (handshakes) the client of `node` has opened;
    /// 0 for a node not observed yet or reached locally.
    pub fn sessions_opened(&self, node: &str) -> u64 {
        self.client(node)
            .map_or(0, |client| client.sessions_opened())
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, (NodeSpec, Arc<NodeClient>)>> {
        self.clients
            .lock()
            .expect("the client map's lock is never held across a panic")
    }

    fn client(&self, node: &str) -> Result<Arc<NodeClient>, NodeError> {
        self.clients()
            .get(node)
            .map(|(_, client)| Arc::clone(client))
            .ok_or_else(|| NodeError::NotObserved {
                node: node.to_string(),
            })
    }

    /// The client of `node`, made anew when its spec changed.
    fn client_for(&self, node: &Node) -> Arc<NodeClient> {
        let mut clients = self.clients();
        match clients.get(&node.meta.name) {
            Some((spec, client)) if *spec == node.spec => Arc::clone(client),
            _ => {
                let client = Arc::new(NodeClient::new(node, self.ssh.clone()));
                if let Some(wake) = &*self.events.lock().expect("never poisoned") {
                    tokio::spawn(super::events::follow(
                        Arc::downgrade(&client),
                        Arc::clone(wake),
                    ));
                }
                clients.insert(
                    node.meta.name.clone(),
                    (node.spec.clone(), Arc::clone(&client)),
                );
                client
            }
        }
    }
}

/// Volumes' content and users, for `flotilla volume` (not part of the
/// loop's seam: the leader never moves a volume's data).
impl Nodes {
    /// Writes the content of `volume` on `node` to `out` as a tar stream
    /// (entries relative to the volume's root), calling `progress` with the
    /// bytes written so far; the total. The node must have been observed.
    pub async fn backup_volume<W>(
        &self,
        node: &str,
        volume: &str,
        out: &mut W,
        progress: impl Fn(u64) + Send + Sync,
    ) -> Result<u64, NodeOpError>
    where
        W: tokio::io::AsyncWrite + Unpin + Send,
    {
        Ok(self
            .client(node)?
            .backup_volume(volume, out, &progress)
            .await?)
    }

    /// Extracts the tar stream `archive` into `volume` on `node` (files of
    /// the same path replaced, others kept), calling `progress` with the
    /// bytes read so far; the total. It checks nothing about who uses the
    /// volume: see [`Self::volume_users`] and [`Self::volume_is_empty`].
    pub async fn restore_volume<R>(
        &self,
        node: &str,
        volume: &str,
        archive: R,
        progress: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<u64, NodeOpError>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        Ok(self
            .client(node)?
            .restore_volume(volume, archive, Arc::new(progress))
            .await?)
    }

    /// The containers on `node` that mount `volume`, by name or through a
    /// subPath, in any state; an error when the volume does not exist.
    pub async fn volume_users(
        &self,
        node: &str,
        volume: &str,
    ) -> Result<Vec<super::VolumeUser>, NodeOpError> {
        Ok(self.client(node)?.volume_users(volume).await?)
    }

    /// Whether `volume` on `node` holds nothing but its root directory.
    pub async fn volume_is_empty(&self, node: &str, volume: &str) -> Result<bool, NodeOpError> {
        Ok(self.client(node)?.volume_is_empty(volume).await?)
    }
}

fn probe_failed(node: &str, message: String) -> NodeOpError {
    NodeOpError {
        node: node.to_string(),
        message,
        unreachable: false,
    }
}

impl NodeOps for Nodes {
    /// Follows each node's Docker events from its next observation on.
    fn follow_container_events(&self, wake: Arc<tokio::sync::Notify>) {
        *self.events.lock().expect("never poisoned") = Some(wake);
        // Clients made before follow from their next remaking: make them anew.
        self.clients().clear();
    }

    /// Connecting, negotiating the API version, then the observation
    /// itself, each within its own bound, and a second to spare.
    fn observe_timeout(&self) -> Duration {
        self.ssh.connect_timeout + 2 * self.ssh.request_timeout + Duration::from_secs(1)
    }

    async fn observe(&self, node: &Node) -> Result<NodeObservation, NodeOpError> {
        Ok(self.client_for(node).observe().await?)
    }

    async fn create(&self, node: &str, container: &ReplicaContainer) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.create(container).await?)
    }

    async fn start(&self, node: &str, container: &str) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.start(container).await?)
    }

    async fn stop(
        &self,
        node: &str,
        container: &str,
        grace: Option<Duration>,
    ) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.stop(container, grace).await?)
    }

    async fn restart(
        &self,
        node: &str,
        container: &str,
        grace: Duration,
    ) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.restart(container, grace).await?)
    }

    async fn remove(&self, node: &str, container: &str) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.remove(container).await?)
    }

    async fn has_image(&self, node: &str, image: &str) -> Result<bool, NodeOpError> {
        Ok(self.client(node)?.has_image(image).await?)
    }

    async fn pull_image(
        &self,
        node: &str,
        image: &str,
        auth: Option<&RegistryAuth>,
    ) -> Result<(), NodeOpError> {
        Ok(self
            .client(node)?
            .pull_image(image, auth, IMAGE_PROGRESS_DEADLINE)
            .await?)
    }

    async fn ship_image(&self, node: &str, image: &str) -> Result<(), NodeOpError> {
        Ok(self
            .client(node)?
            .ship_image_from(&self.leader_socket, image, IMAGE_PROGRESS_DEADLINE)
            .await?)
    }

    async fn probe_tcp(
        &self,
        node: &str,
        target: &ProbeTarget,
        timeout: Duration,
    ) -> Result<(), NodeOpError> {
        let client = self.client(node)?;
        match tokio::time::timeout(timeout, client.dial(target)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(probe_failed(node, NodeOpError::from(error).message)),
            Err(_) => Err(probe_failed(
                node,
                format!(
                    "dial tcp to port {} of {}: timed out",
                    target.container_port, target.container
                ),
            )),
        }
    }

    async fn probe_http(
        &self,
        node: &str,
        target: &ProbeTarget,
        path: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<u16, NodeOpError> {
        let client = self.client(node)?;
        let attempt = async {
            let (io, authority) = client
                .dial(target)
                .await
                .map_err(|error| probe_failed(node, NodeOpError::from(error).message))?;
            let failed =
                |e: String| probe_failed(node, format!("GET http://{authority}{path}: {e}"));
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(|e| failed(e.to_string()))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut request = hyper::Request::get(path)
                .header(hyper::header::HOST, authority.as_str())
                .header(hyper::header::USER_AGENT, "flotilla-probe/1");
            for (name, value) in headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let request = request
                .body(Empty::<Bytes>::new())
                .map_err(|e| failed(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| failed(e.to_string()))?;
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            Ok::<u16, NodeOpError>(status)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(probe_failed(
                node,
                format!(
                    "GET {path} on port {} of {}: timed out",
                    target.container_port, target.container
                ),
            )),
        }
    }

    async fn probe_exec(
        &self,
        node: &str,
        container: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<i64, NodeOpError> {
        let client = self.client(node)?;
        match tokio::time::timeout(timeout, client.exec(container, command)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(probe_failed(
                node,
                format!("exec in {container}: timed out"),
            )),
        }
    }

    async fn logs(&self, node: &str, container: &str, lines: u32) -> Result<String, NodeOpError> {
        Ok(self.client(node)?.logs(container, lines).await?)
    }

    async fn remove_volume(&self, node: &str, volume: &str) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.remove_volume(volume).await?)
    }

    async fn remove_image(&self, node: &str, image: &str) -> Result<bool, NodeOpError> {
        Ok(self.client(node)?.remove_image(image).await?)
    }

    async fn ensure_proxy(&self, node: &str, image: &super::ProxyImage) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.ensure_proxy(image).await?)
    }

    async fn load_proxy_image(
        &self,
        node: &str,
        image: &super::ProxyImage,
    ) -> Result<(), NodeOpError> {
        Ok(self.client(node)?.load_proxy_image(image).await?)
    }

    async fn proxy_request(
        &self,
        node: &str,
        request: &crate::proxy::table::Request,
    ) -> Result<crate::proxy::table::Response, NodeOpError> {
        Ok(self.client(node)?.proxy_request(request).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{ObjectMeta, Transport};

    /// Regression (issue 10, item 9): an image reference that is not one
    /// reaches no Docker API path (bollard puts it in the path unescaped).
    #[tokio::test]
    async fn an_invalid_image_reference_never_reaches_docker() {
        let nodes = Nodes::new(SshOptions::default());
        let node = Node {
            meta: ObjectMeta {
                name: "n1".into(),
                ..ObjectMeta::default()
            },
            spec: NodeSpec {
                address: "192.0.2.1".into(),
                port: 22,
                user: "root".into(),
                identity_file: None,
                docker_socket: "/nonexistent/docker.sock".into(),
                transport: Transport::Local,
                capacity: Default::default(),
                taints: Vec::new(),
                unschedulable: false,
            },
        };
        // Known to the runtime (its socket answers nothing): whatever is
        // refused below is refused before any request.
        assert!(nodes.observe(&node).await.is_err());
        for image in ["x/../../containers/json?", "app:1?x", "a b"] {
            for result in [
                nodes.has_image("n1", image).await.map(|_| ()),
                nodes.pull_image("n1", image, None).await,
                nodes.ship_image("n1", image).await,
                nodes.remove_image("n1", image).await.map(|_| ()),
            ] {
                let error = result.expect_err("refused");
                assert!(
                    error.message.starts_with("invalid image reference"),
                    "{image}: {error}"
                );
                assert!(!error.unreachable, "{error}");
            }
        }
    }

    #[tokio::test]
    async fn a_node_not_observed_yet_is_unreachable() {
        let nodes = Nodes::new(SshOptions::default());
        let error = nodes.start("n9", "c").await.expect_err("unknown");
        assert_eq!(
            error.to_string(),
            "node n9: not observed yet, so no connection to it is known"
        );
        assert!(error.unreachable);
    }
}
