//! Carrying out a plan: node-level steps run concurrently across nodes, at
//! most [`PER_NODE_LIMIT`] at a time on one node, each idempotent (the
//! container names are deterministic, and the seam treats "already exists",
//! "already running" and "already gone" as done), so a crash anywhere is
//! repaired by the next reconcile. Steps on a node known to be unreachable
//! are never attempted: nothing is deleted behind a partition.
//!
//! Images follow imagePullPolicy; when a node lacks an image and cannot pull
//! it (no registry reachable), the leader ships its own copy.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::{mpsc, Mutex, Semaphore};

use crate::api::metrics::Metrics;
use crate::cluster::{ContainerRole, Hook, Hooks, ManagedLabels};
use crate::manifest::model::PullPolicy;
use crate::manifest::OperatorPolicy;
use crate::node::{NodeOpError, NodeOps, ProxyImage, ReplicaContainer};

/// Kubernetes' default terminationGracePeriodSeconds: the bound of a
/// preStop hook of a container whose object is gone.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Operations in flight on one node at most.
pub const PER_NODE_LIMIT: usize = 4;

/// One thing to do on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Create the containers of one replica, in order (the first owns the
    /// pod's network namespace: its sandbox, or its only container), and
    /// with `start` start what a new pod starts: its sandbox and, unless it
    /// has init containers (which the planner starts one by one), its app
    /// containers, each followed by its postStart hook.
    CreateReplica {
        containers: Vec<ReplicaContainer>,
        start: bool,
    },
    /// Start the containers of one replica, in order, each followed by its
    /// postStart hook (`post_start`, by container name).
    Start {
        containers: Vec<String>,
        post_start: BTreeMap<String, Hook>,
    },
    /// Stop (gracefully; `grace` is SIGTERM to SIGKILL, `None` the
    /// container's own stop timeout, set from terminationGracePeriodSeconds
    /// when it was created) then remove the containers of one replica, in
    /// reverse order: the network owner last. A container's preStop hook
    /// (`pre_stop`, by container name) runs before its SIGTERM, and the
    /// time it takes counts against the grace period.
    Remove {
        containers: Vec<String>,
        grace: Option<Duration>,
        pre_stop: BTreeMap<String, Hook>,
    },
    /// Remove a Docker volume (a claim's that Git says to delete, a gone
    /// pod's `emptyDir`); Docker refuses while a container uses it.
    RemoveVolume { volume: String },
}

impl Operation {
    /// The metric label and event word for this kind of operation.
    pub fn kind(&self) -> &'static str {
        match self {
            Operation::CreateReplica { .. } => "create",
            Operation::Start { .. } => "start",
            Operation::Remove { .. } => "remove",
            Operation::RemoveVolume { .. } => "remove-volume",
        }
    }

    /// Whether the operation creates a pod sandbox (which needs the node
    /// proxy's image).
    pub fn creates_sandbox(&self) -> bool {
        matches!(self, Operation::CreateReplica { containers, .. }
            if containers.iter().any(|c| role(c) == ContainerRole::Sandbox))
    }

    /// The container (a replica's first) the operation is about.
    pub fn target(&self) -> &str {
        match self {
            Operation::CreateReplica { containers, .. } => {
                containers.first().map_or("", |c| c.name.as_str())
            }
            Operation::Start { containers, .. } | Operation::Remove { containers, .. } => {
                containers.first().map_or("", String::as_str)
            }
            Operation::RemoveVolume { volume } => volume,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub node: String,
    pub operation: Operation,
    /// Why, in the planner's words.
    pub reason: String,
}

/// Progress, for the CLI to print and the leader to log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum ApplyEvent {
    Started {
        node: String,
        kind: &'static str,
        target: String,
        reason: String,
    },
    Done {
        node: String,
        kind: &'static str,
        target: String,
        millis: u64,
    },
    Failed {
        node: String,
        kind: &'static str,
        target: String,
        error: String,
    },
    Skipped {
        node: String,
        kind: &'static str,
        target: String,
        why: String,
    },
    ImageShipped {
        node: String,
        image: String,
        millis: u64,
    },
}

impl std::fmt::Display for ApplyEvent {
    /// One line of progress, as `flotilla apply` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyEvent::Started {
                node,
                kind,
                target,
                reason,
            } => write!(f, "{node}: {kind} {target} ({reason})"),
            ApplyEvent::Done {
                node,
                kind,
                target,
                millis,
            } => write!(f, "{node}: {kind} {target} done in {millis} ms"),
            ApplyEvent::Failed {
                node,
                kind,
                target,
                error,
            } => write!(f, "{node}: {kind} {target} failed: {error}"),
            ApplyEvent::Skipped {
                node,
                kind,
                target,
                why,
            } => write!(f, "{node}: {kind} {target} skipped: {why}"),
            ApplyEvent::ImageShipped {
                node,
                image,
                millis,
            } => write!(
                f,
                "{node}: image {image} shipped from the leader in {millis} ms"
            ),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub succeeded: usize,
    pub failed: Vec<(Step, NodeOpError)>,
    pub skipped: usize,
}

/// Carries out `steps`, never on a node in `unreachable`. Returns when every
/// step has finished; failures are reported, not fatal (the next reconcile
/// tries again).
///
/// `hidden`: the opened Secret values of the commit, kept out of the error
/// messages reported (Docker may quote a container's own values).
/// `sandbox_image`: the node proxy's image, which pod sandboxes run (or why
/// there is none: then creating a pod with a sandbox fails with it).
#[allow(clippy::too_many_arguments)]
pub async fn apply<N: NodeOps>(
    nodes: &N,
    steps: Vec<Step>,
    unreachable: &BTreeSet<String>,
    policy: &OperatorPolicy,
    sandbox_image: Result<&ProxyImage, &str>,
    metrics: &Metrics,
    events: &mpsc::UnboundedSender<ApplyEvent>,
    hidden: &[&[u8]],
) -> ApplyReport {
    let mut limits: HashMap<String, Arc<Semaphore>> = HashMap::new();
    for step in &steps {
        limits
            .entry(step.node.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_NODE_LIMIT)));
    }
    let images = ImageCache {
        policy: policy.clone(),
        sandbox: sandbox_image.cloned().map_err(str::to_string),
        ..ImageCache::default()
    };
    let mut report = ApplyReport::default();
    let mut runnable = Vec::new();
    for step in steps {
        if unreachable.contains(&step.node) {
            let _ = events.send(ApplyEvent::Skipped {
                node: step.node.clone(),
                kind: step.operation.kind(),
                target: step.operation.target().to_string(),
                why: "node is unreachable".into(),
            });
            metrics.count_action(step.operation.kind(), "skipped");
            report.skipped += 1;
        } else {
            runnable.push(step);
        }
    }
    let results = join_all(runnable.into_iter().map(|step| {
        let limit = Arc::clone(&limits[&step.node]);
        let images = &images;
        async move {
            let _permit = limit
                .acquire_owned()
                .await
                .expect("semaphores are never closed");
            let kind = step.operation.kind();
            let target = step.operation.target().to_string();
            let _ = events.send(ApplyEvent::Started {
                node: step.node.clone(),
                kind,
                target: target.clone(),
                reason: step.reason.clone(),
            });
            let started = Instant::now();
            let result = run_step(nodes, &step, images, events).await;
            match &result {
                Ok(()) => {
                    metrics.count_action(kind, "ok");
                    let _ = events.send(ApplyEvent::Done {
                        node: step.node.clone(),
                        kind,
                        target,
                        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    });
                }
                Err(error) => {
                    metrics.count_action(kind, "error");
                    let error = crate::manifest::redact::hide_values(
                        &error.to_string(),
                        hidden.iter().copied(),
                    );
                    let _ = events.send(ApplyEvent::Failed {
                        node: step.node.clone(),
                        kind,
                        target,
                        error,
                    });
                }
            }
            (step, result)
        }
    }))
    .await;
    for (step, result) in results {
        match result {
            Ok(()) => report.succeeded += 1,
            Err(error) => report.failed.push((step, error)),
        }
    }
    report
}

async fn run_step<N: NodeOps>(
    nodes: &N,
    step: &Step,
    images: &ImageCache,
    events: &mpsc::UnboundedSender<ApplyEvent>,
) -> Result<(), NodeOpError> {
    let node = step.node.as_str();
    match &step.operation {
        Operation::CreateReplica { containers, start } => {
            let mut containers = containers.clone();
            for container in &mut containers {
                if role(container) == ContainerRole::Sandbox {
                    container.image = images.sandbox(nodes, node).await?;
                } else {
                    images.ensure(nodes, node, container, events).await?;
                }
            }
            // A pod with init containers starts with its sandbox alone: the
            // planner starts the init containers in order, then the rest.
            let has_init = containers
                .iter()
                .any(|c| matches!(role(c), ContainerRole::Init | ContainerRole::Sidecar));
            for container in &containers {
                nodes.create(node, container).await?;
                // The network owner must run before the others can join
                // its namespace, so each starts before the next is created.
                let starts = match role(container) {
                    ContainerRole::Sandbox => true,
                    ContainerRole::App => !has_init,
                    ContainerRole::Init | ContainerRole::Sidecar => false,
                };
                if *start && starts {
                    nodes.start(node, &container.name).await?;
                    let hooks = Hooks::from_docker_labels(&container.labels);
                    if let Some(hook) = &hooks.post_start {
                        let limit = container
                            .stop_timeout_seconds
                            .map_or(DEFAULT_GRACE, |s| Duration::from_secs(u64::from(s)));
                        post_start(nodes, node, &container.name, hook, limit).await?;
                    }
                }
            }
            Ok(())
        }
        Operation::Start {
            containers,
            post_start: hooks,
        } => {
            for container in containers {
                nodes.start(node, container).await?;
                if let Some(hook) = hooks.get(container) {
                    post_start(nodes, node, container, hook, DEFAULT_GRACE).await?;
                }
            }
            Ok(())
        }
        Operation::Remove {
            containers,
            grace,
            pre_stop,
        } => {
            for container in containers.iter().rev() {
                let grace = match pre_stop.get(container) {
                    Some(hook) => {
                        let limit = grace.unwrap_or(DEFAULT_GRACE);
                        let started = Instant::now();
                        // Kubernetes goes on with the stop whatever the
                        // hook did; its time counts against the grace.
                        if let Err(error) =
                            super::hooks::run_hook(nodes, node, container, hook, limit).await
                        {
                            tracing::warn!(node, container = %container, %error, "preStop hook failed");
                        }
                        Some(limit.saturating_sub(started.elapsed()))
                    }
                    None => *grace,
                };
                nodes.stop(node, container, grace).await?;
                nodes.remove(node, container).await?;
            }
            Ok(())
        }
        Operation::RemoveVolume { volume } => nodes.remove_volume(node, volume).await,
    }
}

/// The role a container's labels give it (an app container's when they
/// give none).
fn role(container: &ReplicaContainer) -> ContainerRole {
    ManagedLabels::from_docker_labels(&container.labels).map_or(ContainerRole::App, |l| l.role)
}

/// Runs a container's postStart hook just after its start; when it fails,
/// kills the container (its restart policy then decides, as in Kubernetes)
/// and fails the step with the hook's error.
async fn post_start<N: NodeOps>(
    nodes: &N,
    node: &str,
    container: &str,
    hook: &Hook,
    limit: Duration,
) -> Result<(), NodeOpError> {
    let Err(error) = super::hooks::run_hook(nodes, node, container, hook, limit).await else {
        return Ok(());
    };
    nodes.stop(node, container, Some(Duration::ZERO)).await?;
    Err(NodeOpError {
        node: node.to_string(),
        message: format!("postStart hook of {container} failed ({error}); the container is killed"),
        unreachable: false,
    })
}

/// Makes each (node, image) present once per apply, however many replicas
/// need it: the first replica pulls or ships, the others wait for it.
struct ImageCache {
    locks: Mutex<HashMap<NodeImage, Arc<Mutex<()>>>>,
    ready: Mutex<HashSet<NodeImage>>,
    /// Which images the leader may ship from its own Docker.
    policy: OperatorPolicy,
    /// The image of pod sandboxes, or why there is none.
    sandbox: Result<ProxyImage, String>,
}

impl Default for ImageCache {
    fn default() -> Self {
        ImageCache {
            locks: Mutex::default(),
            ready: Mutex::default(),
            policy: OperatorPolicy::default(),
            sandbox: Err("no image for pod sandboxes was given".into()),
        }
    }
}

/// (node, image).
type NodeImage = (String, String);

impl ImageCache {
    /// Loads the sandbox image on `node` (once per apply) and names it.
    async fn sandbox<N: NodeOps>(&self, nodes: &N, node: &str) -> Result<String, NodeOpError> {
        let image = self.sandbox.as_ref().map_err(|reason| NodeOpError {
            node: node.to_string(),
            message: format!(
                "a pod with several containers or init containers runs in a sandbox made from \
                 the node proxy's image, and there is none: {reason}"
            ),
            unreachable: false,
        })?;
        let key = (node.to_string(), image.tag.clone());
        let lock = Arc::clone(self.locks.lock().await.entry(key.clone()).or_default());
        let _guard = lock.lock().await;
        if !self.ready.lock().await.contains(&key) {
            nodes.load_proxy_image(node, image).await?;
            self.ready.lock().await.insert(key);
        }
        Ok(image.tag.clone())
    }

    /// Makes `container`'s image present on `node`, pulled (with the
    /// container's credentials) as its pull policy says.
    async fn ensure<N: NodeOps>(
        &self,
        nodes: &N,
        node: &str,
        container: &ReplicaContainer,
        events: &mpsc::UnboundedSender<ApplyEvent>,
    ) -> Result<(), NodeOpError> {
        let image = container.image.as_str();
        let key = (node.to_string(), image.to_string());
        let lock = Arc::clone(self.locks.lock().await.entry(key.clone()).or_default());
        let _guard = lock.lock().await;
        if self.ready.lock().await.contains(&key) {
            return Ok(());
        }
        let shippable = self.policy.may_ship(image);
        let pull = Pull {
            image,
            policy: container.pull_policy,
            auth: container.pull_auth.as_ref(),
        };
        ensure_image(nodes, node, &pull, shippable, events).await?;
        self.ready.lock().await.insert(key);
        Ok(())
    }
}

/// An image to make present, as one container asks for it.
#[derive(Clone, Copy)]
struct Pull<'a> {
    image: &'a str,
    policy: PullPolicy,
    /// The container's registry credentials (`imagePullSecrets`).
    auth: Option<&'a crate::node::RegistryAuth>,
}

/// imagePullPolicy, with the leader's own copy as the registry of last
/// resort for the images the operator allows to ship (`shippable`): any
/// other image the leader's Docker holds stays there, whatever a push names.
async fn ensure_image<N: NodeOps>(
    nodes: &N,
    node: &str,
    pull: &Pull<'_>,
    shippable: bool,
    events: &mpsc::UnboundedSender<ApplyEvent>,
) -> Result<(), NodeOpError> {
    let Pull {
        image,
        policy,
        auth,
    } = *pull;
    let present = nodes.has_image(node, image).await?;
    match policy {
        PullPolicy::Never if present => return Ok(()),
        PullPolicy::Never => {
            return Err(NodeOpError {
                node: node.to_string(),
                message: format!("image {image} is not present and imagePullPolicy is Never"),
                unreachable: false,
            })
        }
        PullPolicy::IfNotPresent if present => return Ok(()),
        PullPolicy::IfNotPresent | PullPolicy::Always => {}
    }
    let pull_error = match nodes.pull_image(node, image, auth).await {
        Ok(()) => return Ok(()),
        Err(error) => error,
    };
    if present {
        // Always, and the registry cannot be reached: the copy the node has
        // is the best there is.
        tracing::warn!(node, image, error = %pull_error, "pull failed; using the image the node has");
        return Ok(());
    }
    if !shippable {
        return Err(NodeOpError {
            node: node.to_string(),
            message: format!(
                "image {image}: pull failed ({}), and the leader ships from its own Docker only \
                 the images `git config flotilla.shipImages` allows in the leader's repository",
                pull_error.message
            ),
            unreachable: pull_error.unreachable,
        });
    }
    tracing::info!(node, image, error = %pull_error, "pull failed; shipping the image from the leader");
    let started = Instant::now();
    nodes
        .ship_image(node, image)
        .await
        .map_err(|ship_error| NodeOpError {
            node: node.to_string(),
            message: format!(
                "image {image}: pull failed ({}) and shipping it from the leader failed ({})",
                pull_error.message, ship_error.message
            ),
            unreachable: ship_error.unreachable,
        })?;
    let _ = events.send(ApplyEvent::ImageShipped {
        node: node.to_string(),
        image: image.to_string(),
        millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ManagedLabels;
    use crate::leader::memory::MemoryNodes;
    use crate::leader::spec::replica_containers;
    use crate::manifest::model::{Container, Kind, PodSpec, PodTemplate};

    fn replica(node: &str, slot: u32) -> Step {
        let template = PodTemplate {
            spec: PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: "flotilla-test:1".into(),
                    ..Container::default()
                }],
                ..PodSpec::default()
            },
            ..PodTemplate::default()
        };
        let labels = ManagedLabels {
            namespace: "default".into(),
            kind: Kind::Deployment,
            name: "web".into(),
            slot,
            template_hash: "abcdef0123".into(),
            commit: "c".into(),
            node: node.into(),
            container: String::new(),
            role: Default::default(),
        };
        Step {
            node: node.into(),
            operation: Operation::CreateReplica {
                containers: replica_containers(
                    &template,
                    &labels,
                    &Default::default(),
                    &Default::default(),
                ),
                start: true,
            },
            reason: "missing replica".into(),
        }
    }

    /// Applies `steps` with the test image allowed to ship.
    async fn run(
        nodes: &MemoryNodes,
        steps: Vec<Step>,
        unreachable: &[&str],
    ) -> (ApplyReport, Vec<ApplyEvent>) {
        let policy = OperatorPolicy {
            ship_images: vec!["flotilla-test:*".into()],
            ..OperatorPolicy::default()
        };
        run_with(nodes, steps, unreachable, &policy).await
    }

    async fn run_with(
        nodes: &MemoryNodes,
        steps: Vec<Step>,
        unreachable: &[&str],
        policy: &OperatorPolicy,
    ) -> (ApplyReport, Vec<ApplyEvent>) {
        run_with_image(nodes, steps, unreachable, policy, None).await
    }

    async fn run_with_image(
        nodes: &MemoryNodes,
        steps: Vec<Step>,
        unreachable: &[&str],
        policy: &OperatorPolicy,
        sandbox_image: Option<&ProxyImage>,
    ) -> (ApplyReport, Vec<ApplyEvent>) {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let unreachable = unreachable.iter().map(|s| s.to_string()).collect();
        let report = apply(
            nodes,
            steps,
            &unreachable,
            policy,
            sandbox_image.ok_or("no proxy image: flotilla-proxy is missing"),
            &Metrics::default(),
            &sender,
            &[],
        )
        .await;
        drop(sender);
        let mut events = Vec::new();
        while let Some(event) = receiver.recv().await {
            events.push(event);
        }
        (report, events)
    }

    #[tokio::test]
    async fn bounded_per_node_ships_each_image_once_and_repeats_are_no_ops() {
        let nodes = MemoryNodes::default();
        let steps: Vec<Step> = (0..10)
            .flat_map(|slot| [replica("n1", slot), replica("n2", slot + 10)])
            .collect();
        let (report, events) = run(&nodes, steps.clone(), &[]).await;
        assert_eq!(report.succeeded, 20);
        assert!(report.failed.is_empty());
        {
            let state = nodes.state.lock().unwrap();
            assert_eq!(state.max_in_flight["n1"], PER_NODE_LIMIT);
            assert_eq!(state.max_in_flight["n2"], PER_NODE_LIMIT);
            assert_eq!(state.containers["n1"].len(), 10);
            assert!(state.containers["n1"].values().all(|(_, running)| *running));
            let ships: Vec<&String> = state.log.iter().filter(|l| l.starts_with("ship")).collect();
            assert_eq!(
                ships,
                ["ship n1 flotilla-test:1", "ship n2 flotilla-test:1"]
            );
        }
        let shipped = events
            .iter()
            .filter(|e| matches!(e, ApplyEvent::ImageShipped { .. }))
            .count();
        assert_eq!(shipped, 2);
        let first_done = events
            .iter()
            .find(|e| matches!(e, ApplyEvent::Done { .. }))
            .unwrap()
            .to_string();
        assert!(
            first_done.starts_with("n1: create flotilla.deployment.default.web.")
                || first_done.starts_with("n2: create flotilla.deployment.default.web."),
            "{first_done}"
        );

        // The same plan again (a crash before the leader could observe its
        // work): nothing new, nothing fails.
        let (report, _) = run(&nodes, steps, &[]).await;
        assert_eq!(report.succeeded, 20);
        assert_eq!(nodes.state.lock().unwrap().containers["n1"].len(), 10);
    }

    #[tokio::test]
    async fn a_pull_sends_the_containers_registry_credentials() {
        let nodes = MemoryNodes::default();
        nodes.state.lock().unwrap().registry_reachable = true;
        let mut step = replica("n1", 0);
        let Operation::CreateReplica { containers, .. } = &mut step.operation else {
            unreachable!("a replica is created");
        };
        containers[0].pull_auth = Some(crate::node::RegistryAuth {
            server_address: "registry.example".into(),
            username: "robot".into(),
            password: crate::manifest::model::Sensitive::new(b"hunter2".to_vec()),
            identity_token: None,
            registry_token: None,
        });
        let (report, _) = run(&nodes, vec![step], &[]).await;
        assert_eq!(report.succeeded, 1, "{:?}", report.failed);
        let log = nodes.state.lock().unwrap().log.clone();
        assert!(
            log.contains(&"pull n1 flotilla-test:1 as robot".to_string()),
            "{log:?}"
        );
    }

    /// Regression (issue 10, item 10): any image the leader's Docker held
    /// was shipped to any node a push declared.
    #[tokio::test]
    async fn only_images_the_operator_allows_are_shipped() {
        let nodes = MemoryNodes::default();
        let (report, events) = run_with(
            &nodes,
            vec![replica("n1", 0)],
            &[],
            &OperatorPolicy::default(),
        )
        .await;
        assert_eq!(report.succeeded, 0);
        let (_, error) = &report.failed[0];
        assert!(
            error.message.contains("`git config flotilla.shipImages`"),
            "{}",
            error.message
        );
        assert!(!events
            .iter()
            .any(|e| matches!(e, ApplyEvent::ImageShipped { .. })));
        let log = nodes.state.lock().unwrap().log.clone();
        assert!(!log.iter().any(|l| l.starts_with("ship")), "{log:?}");
    }

    #[tokio::test]
    async fn unreachable_nodes_are_never_touched() {
        let nodes = MemoryNodes::default();
        let mut remove = replica("n2", 1);
        remove.operation = Operation::Remove {
            containers: vec!["x".into()],
            grace: Some(Duration::from_secs(1)),
            pre_stop: BTreeMap::new(),
        };
        let (report, events) = run(&nodes, vec![replica("n1", 0), remove], &["n2"]).await;
        assert_eq!((report.succeeded, report.skipped), (1, 1));
        assert!(!nodes
            .state
            .lock()
            .unwrap()
            .log
            .iter()
            .any(|l| l.contains("n2")));
        assert!(events
            .iter()
            .any(|e| matches!(e, ApplyEvent::Skipped { node, .. } if node == "n2")));
    }

    /// A pod of two containers, the app's preStop an exec.
    fn sandboxed(node: &str) -> Step {
        use crate::manifest::model::{Lifecycle, LifecycleHandler};
        let container = |name: &str| Container {
            name: name.into(),
            image: "flotilla-test:1".into(),
            ..Container::default()
        };
        let template = PodTemplate {
            spec: PodSpec {
                containers: vec![
                    Container {
                        lifecycle: Lifecycle {
                            post_start: None,
                            pre_stop: Some(LifecycleHandler::Exec {
                                command: vec!["true".into()],
                            }),
                        },
                        ..container("app")
                    },
                    container("side"),
                ],
                ..PodSpec::default()
            },
            ..PodTemplate::default()
        };
        let labels = ManagedLabels {
            namespace: "default".into(),
            kind: Kind::Deployment,
            name: "pod".into(),
            slot: 0,
            template_hash: "abcdef0123".into(),
            commit: "c".into(),
            node: node.into(),
            container: String::new(),
            role: ContainerRole::App,
        };
        Step {
            node: node.into(),
            operation: Operation::CreateReplica {
                containers: replica_containers(
                    &template,
                    &labels,
                    &Default::default(),
                    &Default::default(),
                ),
                start: true,
            },
            reason: "missing replica".into(),
        }
    }

    /// Issue 16: a pod's sandbox runs the node proxy's image, loaded on
    /// the node first, and starts before the containers that join it; at
    /// removal the app's preStop runs before its stop, the sandbox goes
    /// last.
    #[tokio::test]
    async fn a_sandbox_runs_the_proxy_image_and_a_pre_stop_runs_before_the_stop() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("flotilla-proxy");
        std::fs::write(&binary, b"#!/bin/sh\n").unwrap();
        let image = ProxyImage::build(&binary).unwrap();
        let nodes = MemoryNodes::default();
        let create = sandboxed("n1");
        let Operation::CreateReplica { containers, .. } = &create.operation else {
            unreachable!("a replica is created");
        };
        let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
        let policy = OperatorPolicy {
            ship_images: vec!["flotilla-test:*".into()],
            ..OperatorPolicy::default()
        };
        let (report, _) = run_with_image(&nodes, vec![create], &[], &policy, Some(&image)).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let log = nodes.state.lock().unwrap().log.clone();
        let at = |line: &str| {
            log.iter()
                .position(|l| l == line)
                .unwrap_or_else(|| panic!("{line} in {log:?}"))
        };
        let [sandbox, app, side] = &names[..] else {
            unreachable!("three containers");
        };
        assert!(at(&format!("load-image n1 {}", image.tag)) < at(&format!("create n1 {sandbox}")));
        assert!(at(&format!("start n1 {sandbox}")) < at(&format!("create n1 {app}")));
        assert!(at(&format!("start n1 {app}")) < at(&format!("start n1 {side}")));

        let remove = Step {
            node: "n1".into(),
            operation: Operation::Remove {
                containers: names.clone(),
                grace: Some(Duration::from_secs(5)),
                pre_stop: BTreeMap::from([(
                    app.clone(),
                    Hook::Exec {
                        command: vec!["true".into()],
                    },
                )]),
            },
            reason: "scale down".into(),
        };
        let (report, _) = run_with(&nodes, vec![remove], &[], &policy).await;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let log = nodes.state.lock().unwrap().log.clone();
        let at = |line: &str| log.iter().rposition(|l| l == line).unwrap();
        assert!(at(&format!("stop n1 {side}")) < at(&format!("probe-exec n1 {app}")));
        assert!(at(&format!("probe-exec n1 {app}")) < at(&format!("stop n1 {app}")));
        assert!(at(&format!("stop n1 {app}")) < at(&format!("stop n1 {sandbox}")));
    }

    /// Without the node proxy's image a pod that needs a sandbox fails
    /// with one error that says why, and nothing is created.
    #[tokio::test]
    async fn without_the_proxy_image_a_sandboxed_pod_fails_clearly() {
        let nodes = MemoryNodes::default();
        let (report, _) = run(&nodes, vec![sandboxed("n1")], &[]).await;
        assert_eq!(report.failed.len(), 1);
        assert_eq!(
            report.failed[0].1.to_string(),
            "node n1: a pod with several containers or init containers runs in a sandbox made \
             from the node proxy's image, and there is none: no proxy image: flotilla-proxy is missing"
        );
        assert!(!nodes
            .state
            .lock()
            .unwrap()
            .log
            .iter()
            .any(|l| l.starts_with("create")));
    }

    #[tokio::test]
    async fn never_policy_without_the_image_fails_with_its_name() {
        let nodes = MemoryNodes::default();
        let mut step = replica("n1", 0);
        if let Operation::CreateReplica { containers, .. } = &mut step.operation {
            containers[0].pull_policy = PullPolicy::Never;
        }
        let (report, _) = run(&nodes, vec![step], &[]).await;
        assert_eq!(
            report.failed[0].1.to_string(),
            "node n1: image flotilla-test:1 is not present and imagePullPolicy is Never"
        );
    }
}
