//! The control loop: on every push, post-receive wake-up or resync tick,
//! read the branch tip, observe the nodes, plan, apply, publish status.
//!
//! Everything the loop remembers lives here, in memory, and is rebuilt from
//! Git and the nodes after a restart: since when each node is unreachable,
//! the crash-loop back-off, the probes' verdicts, the last valid desired
//! state (used to keep healing while the branch tip is invalid).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use tokio::sync::{mpsc, Notify};

use super::apply::{apply, ApplyEvent, ApplyReport, Operation, Step};
use super::probe::run_probe;
use crate::api::ApiState;
use crate::cluster::{
    ContainerState, Contents, ObservedCluster, ObservedContainer, ObservedNode, ObservedVolume,
    Reachability,
};
use crate::manifest::model::Unseal;
use crate::manifest::model::{DesiredState, Kind, ObjectKey};
use crate::manifest::{check_operator_policy, Diagnostic, OperatorPolicy, SourceFile};
use crate::node::NodeOps;
use crate::plan::progress::{Failure, RolloutEvent, RolloutState, RolloutTracker};
use crate::reconcile::backoff::RestartBackoff;
use crate::reconcile::decide::{self, container_key, FailureFacts, RevertDecision};
use crate::reconcile::probes::{ProbeKind, ProbeOutcome, ProbeTracker};
use crate::reconcile::status::{self, StatusReport};
use crate::repo::{Outcome, RolloutRecord};

mod probing;
mod rollouts;
mod runs;

pub use crate::reconcile::decide::{AUTO_REVERT_TRAILER, AUTO_ROLLBACK_ANNOTATION};
use probing::{current_templates, declared_container, probe_round, Restarts};
/// How many revisions beyond `revisionHistoryLimit` a completed rollout
/// looks at for images to remove.
const PRUNE_SCAN: usize = 100;

/// How often the probe task looks for due probes.
const PROBE_TICK: Duration = Duration::from_millis(100);
/// Log lines asked of the node per failing container (the excerpt
/// committed is bounded further, see [`crate::reconcile::record::log_excerpt`]),
/// and how long the node has to send them.
const LOG_LINES: u32 = crate::reconcile::record::LOG_EXCERPT_LINES as u32;
const LOG_TIMEOUT: Duration = Duration::from_secs(5);
/// How far back on the branch to look for the commit that introduced a revision.
const INTRODUCING_COMMIT_SEARCH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum RolloutRecordError {
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// What decides: from desired and observed state to the steps to carry out.
/// The planner proper (`plan`) behind a small adapter; a test can put a
/// simpler one here.
pub trait Planner: Send + Sync + 'static {
    /// `runs`: the finished runs of pod sets that complete, as recorded.
    fn steps(
        &self,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        runs: &crate::plan::Runs,
        now: SystemTime,
    ) -> Vec<Step>;

    /// The steps and, when this planner has one, the plan they come from,
    /// for people to read before it is carried out (`flotilla apply`).
    fn planned(
        &self,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        runs: &crate::plan::Runs,
        now: SystemTime,
    ) -> (Option<crate::plan::Plan>, Vec<Step>) {
        (None, self.steps(desired, commit, observed, runs, now))
    }
}

/// Opens every Secret's values with the leader's identity: a value it
/// cannot open is an error (the pre-receive hook refuses such a push; a
/// leader started with another identity refuses the commit), named by its
/// Secret and key, never by its value.
fn open_secrets(
    desired: &mut DesiredState,
    unseal: Option<&(dyn Unseal + Send + Sync)>,
) -> Vec<Diagnostic> {
    if desired.secrets.is_empty() {
        return Vec::new();
    }
    let failures = match unseal {
        Some(unseal) => desired.open_secrets(unseal),
        None => desired
            .secrets
            .iter()
            .flat_map(|s| s.data.keys().map(|k| (s.key(), k.clone())))
            .map(|(secret, key)| {
                (
                    secret,
                    key,
                    "the leader has no age identity (start it with --age-identity FILE)"
                        .to_string(),
                )
            })
            .collect(),
    };
    failures
        .into_iter()
        .map(|(secret, key, reason)| {
            let at = desired
                .secret(&secret.namespace, &secret.name)
                .map(|s| s.meta.source.clone())
                .unwrap_or_default();
            Diagnostic::error(format!("{secret}: value `{key}` cannot be opened: {reason}"), at)
                .with_object(secret.to_string())
                .with_hint("the leader's identity must be among the Cluster's spec.secrets.recipients when the value is sealed; re-seal with `flotilla secret rekey`")
        })
        .collect()
}

/// From a commit's files to the desired state (`manifest::load`).
pub type Loader = fn(&[SourceFile]) -> (DesiredState, Vec<Diagnostic>);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{repo}: {source}")]
    Repo {
        repo: PathBuf,
        source: crate::repo::RepoError,
    },
    #[error("commit {commit} is invalid ({count} error(s), first: {first}); not acting on it")]
    Invalid {
        commit: String,
        count: usize,
        first: String,
    },
    /// Another process acts on one of the declared nodes.
    #[error(transparent)]
    Locked(#[from] super::lock::LockError),
}

/// What a reconcile is about to do, computed by [`Leader::prepare`] and
/// carried out by [`Leader::execute`]: in between, `flotilla apply` shows it
/// and asks.
#[derive(Debug)]
pub struct Prepared {
    /// The commit planned.
    pub commit: String,
    pub desired: DesiredState,
    pub observed: ObservedCluster,
    /// The plan the steps come from, when the planner has one.
    pub plan: Option<crate::plan::Plan>,
    pub steps: Vec<Step>,
    /// Starts held back by the crash-loop back-off (not among `steps`, nor
    /// in `plan`).
    pub backed_off: usize,
    /// Rollouts this observation saw start, complete or fail: recorded by
    /// [`Leader::execute`] (a failure's note and revert commit, a
    /// completion's pruning of old images).
    pub rollout_events: Vec<RolloutEvent>,
    refused: Option<String>,
    started: Instant,
    now: SystemTime,
}

impl Prepared {
    /// Nothing to carry out: no step, and no rollout outcome to record.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.outcomes().is_empty()
    }

    /// One line per rollout outcome that carrying this out records, for
    /// people to read before they confirm.
    pub fn outcomes(&self) -> Vec<String> {
        self.rollout_events
            .iter()
            .filter_map(|event| match event {
                RolloutEvent::Started { .. } => None,
                RolloutEvent::Completed { key, revision, .. } => Some(format!(
                    "{key}: rollout of revision {revision} complete: noted, and images beyond revisionHistoryLimit removed"
                )),
                RolloutEvent::Failed {
                    key,
                    revision,
                    commit,
                    failure,
                } => Some(format!(
                    "{key}: rollout of revision {revision} failed ({}): noted on {}, and the commit reverted unless {AUTO_ROLLBACK_ANNOTATION} is \"false\"",
                    failure.reason,
                    short(commit)
                )),
            })
            .collect()
    }
}

/// What one reconcile did.
#[derive(Clone, Debug, Default)]
pub struct ReconcileSummary {
    /// The commit acted on.
    pub commit: String,
    pub steps: usize,
    pub apply: ApplyReport,
    /// Starts held back by the crash-loop back-off.
    pub backed_off: usize,
    pub duration: Duration,
    /// An invalid branch tip that was refused (the previous valid commit was
    /// reconciled instead).
    pub refused: Option<String>,
    /// Rollouts still going on: worth looking again soon.
    pub rollouts_in_progress: usize,
    /// Revert commits written for failed rollouts.
    pub reverted: Vec<String>,
    /// When the plan changes by time alone ([`crate::plan::Plan::next_change`]):
    /// the leader reconciles then, not only at its next resync.
    pub next_change: Option<SystemTime>,
}

/// The leader's memory and its seams.
pub struct Leader<N: NodeOps, P: Planner> {
    pub nodes: Arc<N>,
    planner: P,
    loader: Loader,
    repo_path: PathBuf,
    branch: String,
    backoff: RestartBackoff,
    unreachable_since: HashMap<String, (SystemTime, String)>,
    /// The containers each node had when last reached: an unreachable
    /// node's replicas still count (and are never replaced within the grace
    /// period) because the planner sees them here.
    last_seen: HashMap<String, (Vec<ObservedContainer>, Vec<ObservedVolume>)>,
    /// The clock at this leader's first observation: a node it has never
    /// reached is unreachable, its contents unknown, since then.
    started: Option<SystemTime>,
    last_valid: Option<(String, DesiredState)>,
    /// The last commit whose completed rollout was recorded in its note.
    recorded: Option<String>,
    /// The finished runs read from the notes, and the notes ref they were
    /// read at: read again only when it moves.
    runs: Option<(Option<git2::Oid>, crate::plan::Runs)>,
    /// Every workload's rollout: progress, deadline, failure.
    rollouts: RolloutTracker,
    /// The longest rollout completed for the commit being rolled out.
    rollout_time: Option<(String, Duration)>,
    /// Commits this leader reverted, and their revert: several objects of
    /// one commit failing get one revert.
    reverts: HashMap<String, String>,
    /// Whether readiness has been probed since this leader started: until
    /// then no container is known to be ready, and planning on that would
    /// misjudge every rollout budget.
    probed_once: bool,
    /// Whether the failures held before a restart were read back from the
    /// notes (once, at the first reconcile).
    holds_restored: bool,
    shared: Arc<Mutex<ProbeInputs>>,
    probes: Arc<Mutex<ProbeTracker>>,
    /// Held for a whole probe round: the probe task's and the first
    /// reconcile's never run the same probe twice at once.
    probe_round: Arc<tokio::sync::Mutex<()>>,
    pub api: Arc<ApiState>,
    events: mpsc::UnboundedSender<ApplyEvent>,
    /// The revision to act on instead of the branch tip (`apply --rev`).
    revision: Option<String>,
    /// The locks of the declared nodes, taken before planning; `None` for
    /// read-only uses (`flotilla status`).
    node_locks: Option<super::lock::NodeLocks>,
    /// The operator's policy as of the last valid tip: which images may be
    /// shipped from the leader's Docker.
    operator_policy: OperatorPolicy,
    /// Removals carried on in the background (the daemon only), so that a
    /// rollout's next wave does not wait out the old wave's grace period;
    /// `None` when every step is awaited (`flotilla apply`, tests).
    removals: Option<Removals>,
    /// The node proxies: which table each serves.
    services: super::services::ServiceProxies,
    /// The age identity that opens Secrets' values (`--age-identity`).
    unseal: Option<Arc<dyn Unseal + Send + Sync>>,
}

/// Containers the leader is stopping and removing in the background: each
/// observation reports them `removing` (terminating, for the planner) until
/// they are gone, and `wake` is told when a batch is done.
struct Removals {
    /// `node/name` of each container being removed.
    in_flight: Arc<std::sync::Mutex<BTreeSet<String>>>,
    tasks: tokio::task::JoinSet<()>,
    wake: Arc<tokio::sync::Notify>,
}

/// What the probe task needs from the last reconcile.
#[derive(Debug, Default)]
pub struct ProbeInputs {
    desired: DesiredState,
    observed: ObservedCluster,
}

impl<N: NodeOps, P: Planner> Leader<N, P> {
    pub fn new(
        nodes: Arc<N>,
        planner: P,
        loader: Loader,
        repo_path: &Path,
        branch: &str,
        api: Arc<ApiState>,
        events: mpsc::UnboundedSender<ApplyEvent>,
    ) -> Self {
        Leader {
            nodes,
            planner,
            loader,
            repo_path: repo_path.to_path_buf(),
            branch: branch.to_string(),
            backoff: RestartBackoff::default(),
            unreachable_since: HashMap::new(),
            last_seen: HashMap::new(),
            started: None,
            last_valid: None,
            recorded: None,
            runs: None,
            rollouts: RolloutTracker::default(),
            rollout_time: None,
            reverts: HashMap::new(),
            probed_once: false,
            holds_restored: false,
            shared: Arc::default(),
            probes: Arc::default(),
            probe_round: Arc::default(),
            api,
            events,
            revision: None,
            node_locks: None,
            operator_policy: OperatorPolicy::default(),
            removals: None,
            services: super::services::ServiceProxies::default(),
            unseal: None,
        }
    }

    /// Opens Secrets' values with `unseal` (the leader's age identity).
    /// Without one, a commit that declares a Secret is not acted on.
    pub fn with_unseal(mut self, unseal: Arc<dyn Unseal + Send + Sync>) -> Self {
        self.unseal = Some(unseal);
        self
    }

    /// Stops and removes containers in the background rather than within
    /// the reconcile (the long-running leader): the next reconcile plans
    /// with them terminating, and `wake` is notified when they are gone.
    pub fn with_background_removals(mut self, wake: Arc<tokio::sync::Notify>) -> Self {
        self.removals = Some(Removals {
            in_flight: Arc::default(),
            tasks: tokio::task::JoinSet::new(),
            wake,
        });
        self
    }

    /// Waits for the removals still running in the background.
    pub async fn finish_removals(&mut self) {
        if let Some(removals) = &mut self.removals {
            while removals.tasks.join_next().await.is_some() {}
        }
    }

    /// Ships `image` as the node proxy's (tests; the leader otherwise makes
    /// it from the `flotilla-proxy` binary beside its own).
    pub fn with_proxy_image(mut self, image: crate::node::ProxyImage) -> Self {
        self.services = super::services::ServiceProxies::with_image(image);
        self
    }

    /// Acts on `revision` (anything `git rev-parse` takes) instead of the
    /// branch tip.
    pub fn at_revision(mut self, revision: &str) -> Self {
        self.revision = Some(revision.to_string());
        self
    }

    /// Holds the lock of every declared node before planning; a reconcile
    /// is refused ([`ReconcileError::Locked`]) while another process holds one.
    pub fn with_node_locks(mut self, locks: super::lock::NodeLocks) -> Self {
        self.node_locks = Some(locks);
        self
    }

    /// One full pass: read, observe, plan, apply, publish.
    pub async fn reconcile(&mut self, now: SystemTime) -> Result<ReconcileSummary, ReconcileError> {
        let prepared = self.prepare(now).await?;
        Ok(self.execute(prepared).await)
    }

    /// Read, lock the declared nodes, observe, plan: everything up to
    /// carrying the plan out.
    pub async fn prepare(&mut self, now: SystemTime) -> Result<Prepared, ReconcileError> {
        let started = Instant::now();
        let mut refused = None;
        match self.read_tip() {
            Ok((commit, desired, policy)) => {
                self.last_valid = Some((commit, desired));
                self.operator_policy = policy;
            }
            Err(error @ ReconcileError::Invalid { .. }) if self.last_valid.is_some() => {
                tracing::error!(%error, "branch tip is invalid; healing toward the last valid commit");
                refused = Some(error.to_string());
            }
            Err(error) => {
                let result = match error {
                    ReconcileError::Invalid { .. } => "invalid",
                    ReconcileError::Repo { .. } | ReconcileError::Locked(_) => "error",
                };
                self.api
                    .metrics
                    .observe_reconcile(started.elapsed(), result);
                return Err(error);
            }
        }
        let (commit, desired) = self.last_valid.clone().expect("set above or returned");
        if let Some(locks) = &mut self.node_locks {
            if let Err(error) = locks.hold(&desired.nodes) {
                self.api
                    .metrics
                    .observe_reconcile(started.elapsed(), "locked");
                return Err(error.into());
            }
        }

        let mut observed = self.observe(&desired, now).await;
        if !self.probed_once {
            // A restarted leader measures readiness before it plans.
            self.probed_once = true;
            self.set_probe_inputs(desired.clone(), observed.clone());
            let changed = {
                let round = Arc::clone(&self.probe_round);
                let _one_at_a_time = round.lock().await;
                probe_round(
                    &*self.nodes,
                    &self.shared,
                    &self.probes,
                    &self.events,
                    Restarts::Deferred,
                )
                .await
            };
            if changed {
                observed = self.observe(&desired, now).await;
            }
        }
        if !self.holds_restored {
            self.holds_restored = true;
            self.restore_held_failures(&desired, &commit, now);
        }
        // What the observation says of each rollout is only memory here;
        // what it leads to (a note, a revert commit, old images removed) is
        // written by `execute`, so that preparing changes nothing.
        let decide::RolloutDecision {
            events: rollout_events,
            hold: held,
        } = decide::observe_rollouts(&mut self.rollouts, &desired, &commit, &observed, now);
        let runs = self.recorded_runs();
        let (mut plan, mut steps) = self.planner.planned(
            held.as_ref().unwrap_or(&desired),
            &commit,
            &observed,
            &runs,
            now,
        );
        let backed_off = self.hold_back_crash_loops(&mut steps, &mut plan, &observed, now);
        Ok(Prepared {
            commit,
            desired,
            observed,
            plan,
            steps,
            backed_off,
            rollout_events,
            refused,
            started,
            now,
        })
    }

    /// Carries out what [`Leader::prepare`] planned, then observes again
    /// and publishes the status.
    pub async fn execute(&mut self, prepared: Prepared) -> ReconcileSummary {
        let Prepared {
            commit,
            desired,
            observed,
            plan,
            steps,
            backed_off,
            rollout_events,
            refused,
            started,
            now,
        } = prepared;
        let reverted = self
            .handle_rollout_events(rollout_events, &desired, &commit, &observed, now)
            .await;
        // A finished run is recorded before anything else happens to its
        // pods: the next plan, reading the record, stops what still runs.
        if self
            .record_finished_runs(plan.as_ref(), &desired, &commit)
            .await
        {
            if let Some(removals) = &self.removals {
                removals.wake.notify_one();
            }
        }
        let unreachable: BTreeSet<String> = observed
            .nodes
            .values()
            .filter(|n| !n.reachability.is_reachable())
            .map(|n| n.name.clone())
            .collect();
        let step_count = steps.len();
        if step_count > 0 {
            tracing::info!(commit = %short(&commit), steps = step_count, "applying");
        }
        for node in &unreachable {
            self.services.forget(node);
        }
        // The replicas about to be stopped leave every proxy's table first.
        let leaving = leaving_containers(&steps);
        let sync = self
            .services
            .sync(&*self.nodes, &desired, &observed, &leaving, now)
            .await;
        if !sync.updated.is_empty() {
            tracing::debug!(nodes = ?sync.updated, "node proxies serve their new tables");
        }
        if !self.services.served().is_empty() {
            let figures = self.services.figures(&*self.nodes).await;
            self.api.metrics.set_services(figures);
        }
        let drain = self.drain_plan(&steps, &observed, &unreachable);
        let steps = self.remove_in_background(steps, &unreachable, &drain);
        if let Some(drain) = drain.filter(|_| self.removals.is_none()) {
            drain.wait(&*self.nodes).await;
        }
        let hidden: Vec<&[u8]> = crate::manifest::redact::opened_values(&desired).collect();
        // Made (once) only when a pod with a sandbox is created.
        let sandbox_image = if steps.iter().any(|s| s.operation.creates_sandbox()) {
            self.services.image()
        } else {
            Err("no pod sandbox is created".to_string())
        };
        let report = apply(
            &*self.nodes,
            steps,
            &unreachable,
            &self.operator_policy,
            sandbox_image.as_ref().map_err(String::as_str),
            &self.api.metrics,
            &self.events,
            &hidden,
        )
        .await;
        // What was just done is worth showing at once: observe again (one
        // list call per node over the open sessions) rather than publish
        // the state from before the changes.
        let observed = if step_count > 0 {
            self.observe(&desired, SystemTime::now()).await
        } else {
            observed
        };

        let mut status = status::build(&desired, Some(&commit), &observed, now);
        if let Some(plan) = &plan {
            status::note_waits(&mut status, plan);
        }
        for object in &mut status.objects {
            let Some(kind) = Kind::parse(&object.kind) else {
                continue;
            };
            let key = ObjectKey {
                kind,
                namespace: object.namespace.clone(),
                name: object.name.clone(),
            };
            if let Some(rollout) = self.rollouts.get(&key) {
                if let (RolloutState::Failed(failure), true) =
                    (&rollout.state, rollout.revision == object.template_hash)
                {
                    object.rollout = "failed".to_string();
                    object.rollout_reason = Some(failure.reason.clone());
                }
            }
        }
        self.publish(&status, &observed);
        self.record_rollout(&commit, &desired, &status, &observed, now);
        self.set_probe_inputs(desired, observed);
        let duration = started.elapsed();
        let result = if report.failed.is_empty() {
            "ok"
        } else {
            "error"
        };
        self.api.metrics.observe_reconcile(duration, result);
        ReconcileSummary {
            commit,
            steps: step_count,
            apply: report,
            backed_off,
            duration,
            refused,
            rollouts_in_progress: status
                .objects
                .iter()
                .filter(|o| o.rollout == "progressing" || o.rollout == "unknown")
                .count(),
            reverted,
            next_change: plan.as_ref().and_then(crate::plan::Plan::next_change),
        }
    }

    /// With background removals, starts the remove steps on their own and
    /// returns the others; a container already being removed is not removed
    /// twice. Without, returns `steps` as they are.
    fn remove_in_background(
        &mut self,
        steps: Vec<Step>,
        unreachable: &BTreeSet<String>,
        drain: &Option<Drain>,
    ) -> Vec<Step> {
        let Some(removals) = &mut self.removals else {
            return steps;
        };
        while removals.tasks.try_join_next().is_some() {}
        let (removes, others): (Vec<Step>, Vec<Step>) = steps
            .into_iter()
            .partition(|step| matches!(step.operation, Operation::Remove { .. }));
        // Each remove with the keys of its containers, taken in flight
        // unless one of them already is.
        let mut started: Vec<String> = Vec::new();
        let removes: Vec<Step> = {
            let mut in_flight = removals.in_flight.lock().expect("never poisoned");
            removes
                .into_iter()
                .filter(|step| {
                    let Operation::Remove { containers, .. } = &step.operation else {
                        return false;
                    };
                    let keys: Vec<String> = containers
                        .iter()
                        .map(|c| container_key(&step.node, c))
                        .collect();
                    if keys.iter().any(|k| in_flight.contains(k)) {
                        return false;
                    }
                    in_flight.extend(keys.iter().cloned());
                    started.extend(keys);
                    true
                })
                .collect()
        };
        if removes.is_empty() {
            return others;
        }
        let nodes = Arc::clone(&self.nodes);
        let api = Arc::clone(&self.api);
        let events = self.events.clone();
        let policy = self.operator_policy.clone();
        let unreachable = unreachable.clone();
        let in_flight = Arc::clone(&removals.in_flight);
        let wake = Arc::clone(&removals.wake);
        let drain = drain.clone();
        removals.tasks.spawn(async move {
            if let Some(drain) = drain {
                drain.wait(&*nodes).await;
            }
            let report = apply(&*nodes, removes, &unreachable, &policy, Err("removals create nothing"), &api.metrics, &events, &[]).await;
            for (step, error) in &report.failed {
                tracing::warn!(node = %step.node, container = step.operation.target(), %error, "removal failed; the next reconcile tries again");
            }
            let mut in_flight = in_flight.lock().expect("never poisoned");
            for key in &started {
                in_flight.remove(key);
            }
            drop(in_flight);
            wake.notify_one();
        });
        others
    }

    /// What the removals among `steps` must wait for before they stop
    /// anything: no proxy holding a connection to their pods, within the
    /// longest of their grace periods. `None` when no proxy serves.
    fn drain_plan(
        &self,
        steps: &[Step],
        observed: &ObservedCluster,
        unreachable: &BTreeSet<String>,
    ) -> Option<Drain> {
        let ask: Vec<String> = self
            .services
            .served()
            .keys()
            .filter(|node| !unreachable.contains(*node))
            .cloned()
            .collect();
        if ask.is_empty() {
            return None;
        }
        let mut targets = BTreeSet::new();
        let mut limit = Duration::ZERO;
        for step in steps {
            let Operation::Remove {
                containers, grace, ..
            } = &step.operation
            else {
                continue;
            };
            let Some(node) = observed.nodes.get(&step.node) else {
                continue;
            };
            let addresses: Vec<std::net::Ipv4Addr> = node
                .containers
                .iter()
                .filter(|c| containers.contains(&c.name))
                .filter_map(|c| c.address)
                .collect();
            if !addresses.is_empty() {
                targets.extend(addresses);
                limit = limit.max(grace.unwrap_or(DEFAULT_GRACE));
            }
        }
        (!targets.is_empty()).then_some(Drain {
            ask,
            targets,
            limit,
        })
    }

    fn set_probe_inputs(&self, desired: DesiredState, observed: ObservedCluster) {
        let mut shared = self
            .shared
            .lock()
            .expect("probe inputs lock is never poisoned");
        shared.desired = desired;
        shared.observed = observed;
    }

    /// Reads the tip and observes the nodes, changing nothing: what `flotilla
    /// status` shows when no leader is running.
    pub async fn status_only(&mut self, now: SystemTime) -> Result<StatusReport, ReconcileError> {
        let (commit, desired, _) = self.read_tip()?;
        let observed = self.observe(&desired, now).await;
        let mut status = status::build(&desired, Some(&commit), &observed, now);
        let runs = self.recorded_runs();
        if let (Some(plan), _) = self
            .planner
            .planned(&desired, &commit, &observed, &runs, now)
        {
            status::note_waits(&mut status, &plan);
        }
        Ok(status)
    }

    /// The resync period the last valid commit asks for.
    pub fn resync_period(&self) -> Option<Duration> {
        self.last_valid.as_ref().map(|(_, desired)| {
            Duration::from_secs(u64::from(desired.cluster.resync_seconds.max(1)))
        })
    }

    /// The tip's commit and desired state, checked against the operator's
    /// policy (git config `flotilla.*`, read anew each time so that a
    /// change applies at the next reconcile), and that policy.
    fn read_tip(&self) -> Result<(String, DesiredState, OperatorPolicy), ReconcileError> {
        let repo_error = |source| ReconcileError::Repo {
            repo: self.repo_path.clone(),
            source,
        };
        let repo = crate::repo::open(&self.repo_path).map_err(repo_error)?;
        let revision = match &self.revision {
            Some(revision) => revision.clone(),
            None => format!("refs/heads/{}", self.branch),
        };
        let snapshot = crate::repo::read_revision(&repo, &revision).map_err(repo_error)?;
        let policy = crate::repo::operator_policy(&repo).map_err(repo_error)?;
        let (mut desired, mut diagnostics) = (self.loader)(&snapshot.files);
        diagnostics.extend(check_operator_policy(&desired, &policy));
        diagnostics.extend(open_secrets(&mut desired, self.unseal.as_deref()));
        diagnostics.extend(super::pod_config::check_opened(&desired));
        diagnostics.extend(crate::manifest::check_opened_secrets(&desired));
        // A file that could not be read (not UTF-8, too large) is an error
        // too: deploying the rest would silently drop its objects.
        let errors: Vec<&Diagnostic> = snapshot
            .diagnostics
            .iter()
            .chain(&diagnostics)
            .filter(|d| d.is_error())
            .collect();
        if let Some(first) = errors.first() {
            return Err(ReconcileError::Invalid {
                commit: snapshot.commit,
                count: errors.len(),
                first: first.to_string(),
            });
        }
        Ok((snapshot.commit, desired, policy))
    }

    /// Every declared node, concurrently, each within the seam's observe
    /// timeout: a node that does not answer in time is unreachable, and the
    /// others are reconciled without waiting for it. An unreachable node
    /// keeps the time it was first found unreachable, so the grace period
    /// runs from then. A node this leader never reached (after a restart,
    /// say) has unknown contents since the leader started: the planner
    /// replaces nothing that may run there until its grace period has
    /// passed from the start.
    async fn observe(&mut self, desired: &DesiredState, now: SystemTime) -> ObservedCluster {
        let started = *self.started.get_or_insert(now);
        // Taken before the nodes are listed: a removal that ends while they
        // are must still mark its container, which a listing may show
        // running (a copy taken after would miss it). None starts meanwhile:
        // removals start in `execute`.
        let removing: BTreeSet<String> = self
            .removals
            .as_ref()
            .map(|r| r.in_flight.lock().expect("never poisoned").clone())
            .unwrap_or_default();
        let nodes = &*self.nodes;
        let limit = nodes.observe_timeout();
        let results = join_all(desired.nodes.iter().map(|node| async move {
            let name = node.meta.name.clone();
            let result = match tokio::time::timeout(limit, nodes.observe(node)).await {
                Ok(result) => result,
                Err(_) => Err(crate::node::NodeOpError {
                    node: name.clone(),
                    message: format!(
                        "observing got no answer within {limit:?}; the node or its network is silent"
                    ),
                    unreachable: true,
                }),
            };
            (name, result)
        }))
        .await;
        let probes = self.probes.lock().expect("probe lock is never poisoned");
        let templates = current_templates(desired);
        let mut observed = ObservedCluster::default();
        for (name, result) in results {
            let node = match result {
                Ok(observation) => {
                    if self.unreachable_since.remove(&name).is_some() {
                        tracing::info!(node = %name, "node is reachable again");
                    }
                    let mut containers = observation.containers;
                    for container in &mut containers {
                        let readiness = declared_container(&templates, container)
                            .map(|(_, spec)| {
                                probes.readiness(
                                    &container_key(&name, &container.name),
                                    spec,
                                    container.started_at,
                                )
                            })
                            .unwrap_or_default();
                        container.probe_ready = readiness.ready;
                        container.ready_since = readiness.since;
                        // Being stopped by this leader: terminating until gone.
                        if removing.contains(&container_key(&name, &container.name)) {
                            container.state = ContainerState::Removing;
                        }
                    }
                    self.last_seen.insert(
                        name.clone(),
                        (containers.clone(), observation.volumes.clone()),
                    );
                    ObservedNode {
                        name: name.clone(),
                        reachability: Reachability::Reachable,
                        facts: Some(observation.facts),
                        containers,
                        volumes: observation.volumes,
                    }
                }
                Err(error) => {
                    let last_seen = self.last_seen.get(&name).cloned();
                    let (since, reason) = self
                        .unreachable_since
                        .entry(name.clone())
                        .or_insert_with(|| {
                            tracing::warn!(node = %name, %error, "node is unreachable");
                            let since = if last_seen.is_some() { now } else { started };
                            (since, error.message.clone())
                        })
                        .clone();
                    let contents = if last_seen.is_some() {
                        Contents::LastSeen
                    } else {
                        Contents::Unknown
                    };
                    ObservedNode {
                        name: name.clone(),
                        reachability: Reachability::Unreachable {
                            since,
                            reason,
                            contents,
                        },
                        facts: None,
                        containers: last_seen.clone().unwrap_or_default().0,
                        volumes: last_seen.unwrap_or_default().1,
                    }
                }
            };
            observed.nodes.insert(name, node);
        }
        observed
    }

    /// Drops from the steps and the plan the starts of crashed containers
    /// still in back-off ([`decide::hold_crash_loops`] decides and records),
    /// and says so. Returns how many were held back.
    fn hold_back_crash_loops(
        &mut self,
        steps: &mut Vec<Step>,
        plan: &mut Option<crate::plan::Plan>,
        observed: &ObservedCluster,
        now: SystemTime,
    ) -> usize {
        let starts: Vec<(&str, &[String])> = steps
            .iter()
            .filter_map(|step| match &step.operation {
                Operation::Start { containers, .. } => {
                    Some((step.node.as_str(), containers.as_slice()))
                }
                _ => None,
            })
            .collect();
        let held_back = decide::hold_crash_loops(&mut self.backoff, starts, observed, now);
        for held in &held_back {
            let _ = self.events.send(ApplyEvent::Skipped {
                node: held.node.clone(),
                kind: "start",
                target: held.containers.first().cloned().unwrap_or_default(),
                why: format!(
                    "back-off {}s restarting failed container ({}s left)",
                    held.delay.as_secs(),
                    held.until.duration_since(now).unwrap_or_default().as_secs()
                ),
            });
        }
        let is_held = |node: &str, names: &mut dyn Iterator<Item = &String>| {
            let names: Vec<&String> = names.collect();
            held_back
                .iter()
                .any(|h| h.node == node && h.containers.iter().eq(names.iter().copied()))
        };
        let before = steps.len();
        steps.retain(|step| match &step.operation {
            Operation::Start { containers, .. } => !is_held(&step.node, &mut containers.iter()),
            _ => true,
        });
        // What is shown is what runs: the held-back starts leave the plan too.
        if let Some(plan) = plan {
            plan.actions.retain(|action| match &action.operation {
                crate::plan::Operation::Start { containers } => {
                    !is_held(&action.node, &mut containers.iter().map(|c| &c.name))
                }
                _ => true,
            });
        }
        before - steps.len()
    }

    fn publish(&self, status: &StatusReport, observed: &ObservedCluster) {
        let reachable = observed
            .nodes
            .values()
            .filter(|n| n.reachability.is_reachable())
            .count();
        self.api
            .metrics
            .set_nodes(reachable as u64, observed.nodes.len() as u64);
        self.api.metrics.set_replicas(
            status
                .objects
                .iter()
                .filter(|o| o.rollout != "removing")
                .map(|o| {
                    (
                        (o.kind.clone(), o.namespace.clone(), o.name.clone()),
                        o.ready_replicas,
                        o.desired_replicas,
                    )
                }),
        );
        self.api.set_status(status.clone());
    }
}

/// Kubernetes' default terminationGracePeriodSeconds, for a container
/// whose object is gone.
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// `node/container` of every container a remove step stops.
fn leaving_containers(steps: &[Step]) -> crate::plan::endpoints::Leaving {
    steps
        .iter()
        .filter_map(|step| match &step.operation {
            Operation::Remove { containers, .. } => Some(
                containers
                    .iter()
                    .map(|c| (step.node.clone(), c.clone()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Connections to wait out before stopping pods: see [`Leader::drain_plan`].
#[derive(Clone, Debug)]
struct Drain {
    ask: Vec<String>,
    targets: BTreeSet<std::net::Ipv4Addr>,
    limit: Duration,
}

impl Drain {
    async fn wait<N: NodeOps>(&self, nodes: &N) {
        let started = Instant::now();
        let open = super::services::drain(nodes, &self.ask, &self.targets, self.limit).await;
        if open > 0 {
            tracing::warn!(open, pods = ?self.targets, "connections still open after the grace period; stopping anyway");
        } else {
            tracing::debug!(ms = started.elapsed().as_millis() as u64, pods = ?self.targets, "drained");
        }
    }
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::memory::{commit, load, MemoryNodes, RoundRobin};
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(2_000_000_000 + secs)
    }

    fn leader(dir: &Path) -> Leader<MemoryNodes, RoundRobin> {
        let (events, _) = mpsc::unbounded_channel();
        Leader::new(
            Arc::new(MemoryNodes::default()),
            RoundRobin,
            load,
            dir,
            "main",
            Arc::default(),
            events,
        )
    }

    /// A leader with the planner proper, on nodes that have `img:1`.
    fn kube_leader(dir: &Path) -> Leader<MemoryNodes, super::super::planner::KubePlanner> {
        let (events, _) = mpsc::unbounded_channel();
        let nodes = Arc::new(MemoryNodes::default());
        for node in ["n1", "n2", "n3"] {
            nodes
                .state
                .lock()
                .unwrap()
                .images
                .entry(node.into())
                .or_default()
                .insert("img:1".into());
        }
        Leader::new(
            nodes,
            super::super::planner::KubePlanner,
            load,
            dir,
            "main",
            Arc::default(),
            events,
        )
    }

    fn running<P: Planner>(leader: &Leader<MemoryNodes, P>) -> BTreeMap<String, usize> {
        let state = leader.nodes.state.lock().unwrap();
        state
            .containers
            .iter()
            .map(|(node, containers)| {
                (
                    node.clone(),
                    containers.values().filter(|(_, r)| *r).count(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn converges_then_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let first = commit(&repo, "replicas: 3");
        let mut leader = leader(dir.path());

        let summary = leader.reconcile(at(0)).await.unwrap();
        assert_eq!(
            (
                summary.commit.as_str(),
                summary.steps,
                summary.apply.succeeded
            ),
            (first.as_str(), 3, 3)
        );
        assert_eq!(
            running(&leader),
            BTreeMap::from([("n1".into(), 1), ("n2".into(), 1), ("n3".into(), 1)])
        );
        // Status shows the state after acting.
        let status = leader.api.status.read().unwrap().clone().unwrap();
        assert_eq!(status.objects[0].ready_replicas, 3);

        let again = leader.reconcile(at(1)).await.unwrap();
        assert_eq!(again.steps, 0, "a converged cluster needs no step");
        let status = leader.api.status.read().unwrap().clone().unwrap();
        assert_eq!(status.objects[0].ready_replicas, 3);
        assert_eq!(status.objects[0].rollout, "complete");

        let note = crate::repo::read_note(&repo, git2::Oid::from_str(&first).unwrap())
            .unwrap()
            .unwrap();
        let records = RolloutRecord::parse_all(&note);
        assert_eq!(records.len(), 1, "{note}");
        assert_eq!(records[0].outcome, Outcome::Succeeded);
        assert_eq!(
            records[0].finished_at,
            crate::reconcile::time::format_rfc3339(at(0))
        );
        let web = &records[0].objects[0];
        assert_eq!(
            (
                web.name.as_str(),
                web.ready,
                web.desired,
                web.per_node.len()
            ),
            ("web", 3, 3, 3),
            "{note}"
        );
        leader.reconcile(at(5)).await.unwrap();
        let again = crate::repo::read_note(&repo, git2::Oid::from_str(&first).unwrap()).unwrap();
        assert_eq!(again.as_deref(), Some(note.as_str()), "recorded once");

        commit(&repo, "replicas: 1");
        leader.reconcile(at(2)).await.unwrap();
        assert_eq!(running(&leader).values().sum::<usize>(), 1);
    }

    #[tokio::test]
    async fn an_invalid_tip_is_refused_and_the_last_valid_commit_kept() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let mut leader = leader(dir.path());

        commit(&repo, "invalid");
        let error = leader.reconcile(at(0)).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("is invalid (1 error(s), first: error: broken"),
            "{error}"
        );
        assert!(
            leader.nodes.state.lock().unwrap().log.is_empty(),
            "nothing observed or changed"
        );

        let valid = commit(&repo, "replicas: 2");
        leader.reconcile(at(1)).await.unwrap();
        commit(&repo, "invalid");
        let summary = leader.reconcile(at(2)).await.unwrap();
        assert_eq!(summary.commit, valid);
        assert!(summary.refused.is_some());
        assert_eq!(running(&leader).values().sum::<usize>(), 2);
    }

    #[tokio::test]
    async fn unreachable_since_is_kept_and_the_node_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, "replicas: 3");
        let mut leader = leader(dir.path());
        leader.reconcile(at(0)).await.unwrap();

        {
            let mut state = leader.nodes.state.lock().unwrap();
            state.unreachable.insert("n2".into());
            state.log.clear();
        }
        for t in [10, 20] {
            leader.reconcile(at(t)).await.unwrap();
            let status = leader.api.status.read().unwrap().clone().unwrap();
            let n2 = status.nodes.iter().find(|n| n.name == "n2").unwrap();
            assert!(!n2.reachable);
            assert_eq!(
                n2.unreachable_since.as_deref(),
                Some(crate::reconcile::time::format_rfc3339(at(10)).as_str())
            );
        }
        let log = leader.nodes.state.lock().unwrap().log.clone();
        assert!(
            !log.iter()
                .any(|l| l.contains(" n2") && !l.starts_with("observe")),
            "only observed while unreachable: {log:?}"
        );
    }

    /// Regression: a restarted leader had no last observation of a node
    /// that was down, saw it as empty and replaced its replicas at once
    /// instead of after the grace period.
    #[tokio::test]
    async fn a_restarted_leader_replaces_a_down_nodes_replicas_only_after_the_grace_period() {
        use crate::leader::planner::KubePlanner;
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, "replicas: 3");
        let nodes = Arc::new(MemoryNodes::default());
        let start = |nodes: &Arc<MemoryNodes>| {
            let (events, _) = mpsc::unbounded_channel();
            Leader::new(
                Arc::clone(nodes),
                KubePlanner,
                load,
                dir.path(),
                "main",
                Arc::default(),
                events,
            )
        };
        let per_node = |nodes: &MemoryNodes| -> BTreeMap<String, usize> {
            let state = nodes.state.lock().unwrap();
            state
                .containers
                .iter()
                .map(|(node, containers)| (node.clone(), containers.len()))
                .collect()
        };
        start(&nodes).reconcile(at(0)).await.unwrap();
        let deployed = per_node(&nodes);
        assert_eq!(deployed.values().sum::<usize>(), 3, "{deployed:?}");
        let (down, on_down) = deployed
            .iter()
            .find(|(_, n)| **n > 0)
            .map(|(node, n)| (node.clone(), *n))
            .unwrap();
        nodes.state.lock().unwrap().unreachable.insert(down.clone());

        // The restart: a new leader that never reached `down`.
        let mut restarted = start(&nodes);
        let grace =
            u64::from(crate::manifest::model::ClusterSettings::default().node_grace_period_seconds);
        for t in [100, 100 + grace] {
            restarted.reconcile(at(t)).await.unwrap();
            assert_eq!(per_node(&nodes), deployed, "nothing replaced at {t}s");
            let status = restarted.api.status.read().unwrap().clone().unwrap();
            let node = status.nodes.iter().find(|n| n.name == down).unwrap();
            assert_eq!(
                node.unreachable_since.as_deref(),
                Some(crate::reconcile::time::format_rfc3339(at(100)).as_str()),
                "unknown since the leader started"
            );
        }
        restarted.reconcile(at(101 + grace)).await.unwrap();
        let after = per_node(&nodes);
        assert_eq!(
            after.values().sum::<usize>(),
            3 + on_down,
            "replaced once the grace period passed: {after:?}"
        );
        assert_eq!(after[&down], on_down, "nothing touched on the down node");
    }

    #[tokio::test]
    async fn a_silent_node_is_unreachable_within_the_observe_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, "replicas: 3");
        let mut leader = leader(dir.path());
        leader.reconcile(at(0)).await.unwrap();
        {
            let mut state = leader.nodes.state.lock().unwrap();
            state.silent.insert("n2".into());
            state.observe_timeout = Some(Duration::from_millis(300));
        }
        commit(&repo, "replicas: 6");
        let started = std::time::Instant::now();
        let summary = tokio::time::timeout(Duration::from_secs(5), leader.reconcile(at(10)))
            .await
            .expect("the reconcile does not wait on the silent node")
            .unwrap();
        let elapsed = started.elapsed();
        // Observed twice (before and after acting), each bounded.
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        let status = leader.api.status.read().unwrap().clone().unwrap();
        let n2 = status.nodes.iter().find(|n| n.name == "n2").unwrap();
        assert!(!n2.reachable);
        assert_eq!(
            n2.unreachable_reason.as_deref(),
            Some("observing got no answer within 300ms; the node or its network is silent")
        );
        // The other nodes were reconciled meanwhile: the new replicas went
        // to n1 and n3.
        assert!(summary.apply.succeeded > 0, "{summary:?}");
        let running = running(&leader);
        assert_eq!(running.get("n2"), Some(&1), "{running:?}");
        assert!(
            running.get("n1").copied().unwrap_or(0) + running.get("n3").copied().unwrap_or(0) > 2,
            "{running:?}"
        );

        leader.nodes.state.lock().unwrap().silent.clear();
        leader.reconcile(at(20)).await.unwrap();
        let status = leader.api.status.read().unwrap().clone().unwrap();
        assert!(
            status.nodes.iter().all(|n| n.reachable),
            "{:?}",
            status.nodes
        );
    }

    #[tokio::test]
    async fn crashed_containers_restart_with_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, "replicas: 1");
        let mut leader = leader(dir.path());
        leader.reconcile(at(0)).await.unwrap();
        let crash = |leader: &Leader<MemoryNodes, RoundRobin>, when| leader.nodes.crash_all(when);
        // First crash: restarted at once. Second: held back for 10 s.
        crash(&leader, at(1));
        let summary = leader.reconcile(at(1)).await.unwrap();
        assert_eq!((summary.steps, summary.backed_off), (1, 0));
        crash(&leader, at(2));
        let summary = leader.reconcile(at(2)).await.unwrap();
        assert_eq!((summary.steps, summary.backed_off), (0, 1));
        assert_eq!(running(&leader).values().sum::<usize>(), 0);
        let summary = leader.reconcile(at(13)).await.unwrap();
        assert_eq!((summary.steps, summary.backed_off), (1, 0));
        assert_eq!(running(&leader).values().sum::<usize>(), 1);
    }

    fn note_records(repo: &git2::Repository, commit: &str) -> Vec<RolloutRecord> {
        crate::repo::read_note(repo, git2::Oid::from_str(commit).unwrap())
            .unwrap()
            .map(|note| RolloutRecord::parse_all(&note))
            .unwrap_or_default()
    }

    fn tip(repo: &git2::Repository) -> String {
        repo.refname_to_id("refs/heads/main").unwrap().to_string()
    }

    #[tokio::test]
    async fn a_rollout_finished_by_removing_the_old_replicas_notes_its_duration() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, "replicas: 2");
        let mut leader = leader(dir.path());
        leader.reconcile(at(0)).await.unwrap();
        let second = commit(&repo, "replicas: 2\nimage: img:2");
        // Seen at 10: the new replicas are created beside the old.
        leader.reconcile(at(10)).await.unwrap();
        assert!(note_records(&repo, &second).is_empty());
        // At 25 the old ones go, which completes the rollout in that step.
        leader.reconcile(at(25)).await.unwrap();
        let records = note_records(&repo, &second);
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].outcome, Outcome::Succeeded);
        assert_eq!(records[0].duration, Duration::from_secs(15));
    }

    /// Commits v1, rolls out a v2 whose replicas never become available
    /// (deadline 10 s), and reconciles until it fails. Returns the v2 commit.
    async fn fail_a_rollout(
        repo: &git2::Repository,
        leader: &mut Leader<MemoryNodes, RoundRobin>,
        extra: &str,
    ) -> String {
        commit(repo, "replicas: 2");
        leader.reconcile(at(0)).await.unwrap();
        let second = commit(
            repo,
            &format!("replicas: 2\nimage: img:2\nmin-ready: 5\ndeadline: 10\n{extra}"),
        );
        for secs in [10, 11, 12, 23] {
            leader.reconcile(at(secs)).await.unwrap();
        }
        second
    }

    /// The long-running leader does not wait out a removal's grace period
    /// within a reconcile: the next one sees the containers terminating,
    /// removes nothing twice, and they are gone once the removals finish.
    #[tokio::test]
    async fn removals_run_in_the_background_and_are_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut leader = kube_leader(dir.path()).with_background_removals(Arc::clone(&wake));
        commit(&repo, "replicas: 3");
        leader.reconcile(at(0)).await.unwrap();
        assert_eq!(running(&leader).values().sum::<usize>(), 3);
        leader.nodes.state.lock().unwrap().stop_delay = Some(Duration::from_millis(400));
        commit(&repo, "replicas: 1");
        let started = Instant::now();
        let summary = leader.reconcile(at(1)).await.unwrap();
        assert_eq!(summary.steps, 2);
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "the reconcile waited for the stops: {:?}",
            started.elapsed()
        );
        let again = leader.reconcile(at(2)).await.unwrap();
        assert_eq!(again.steps, 0, "terminating replicas are not removed twice");
        let notified = wake.notified();
        leader.finish_removals().await;
        notified.await;
        let removes = leader
            .nodes
            .state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|c| c.starts_with("remove "))
            .count();
        assert_eq!(removes, 2);
        assert_eq!(running(&leader).values().sum::<usize>(), 1);
        let summary = leader.reconcile(at(3)).await.unwrap();
        assert_eq!(summary.steps, 0);
    }

    /// Issue 11: `flotilla apply` prepares, shows and asks before anything
    /// changes. Preparing a reconcile that will record a failed rollout
    /// writes no note and no revert and touches no node; carrying it out does.
    #[tokio::test]
    async fn preparing_changes_nothing_on_the_nodes_or_in_git() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let mut leader = leader(dir.path());
        commit(&repo, "replicas: 2");
        leader.reconcile(at(0)).await.unwrap();
        let second = commit(
            &repo,
            "replicas: 2\nimage: img:2\nmin-ready: 5\ndeadline: 10\n",
        );
        for secs in [10, 11, 12] {
            leader.reconcile(at(secs)).await.unwrap();
        }
        let calls_before = leader.nodes.state.lock().unwrap().log.len();
        let prepared = leader.prepare(at(23)).await.unwrap();
        let calls: Vec<String> = leader.nodes.state.lock().unwrap().log[calls_before..].to_vec();
        assert!(
            calls.iter().all(|c| c.starts_with("observe ")),
            "preparing only observes: {calls:?}"
        );
        assert_eq!(tip(&repo), second, "no revert while preparing");
        assert!(
            note_records(&repo, &second).is_empty(),
            "no note while preparing"
        );
        let outcomes = prepared.outcomes();
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        assert!(
            outcomes[0].contains("failed (Deployment default/web: progress deadline"),
            "{outcomes:?}"
        );
        assert!(!prepared.is_empty());

        let summary = leader.execute(prepared).await;
        assert_eq!(summary.reverted.len(), 1);
        assert_eq!(tip(&repo), summary.reverted[0]);
        assert_eq!(note_records(&repo, &second)[0].outcome, Outcome::Failed);
    }

    /// Issue 11: the plan `flotilla apply` shows is the plan it runs: every
    /// action of the prepared plan, and nothing else, reaches the nodes.
    #[tokio::test]
    async fn the_plan_shown_is_the_plan_run() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let mut leader = kube_leader(dir.path());
        commit(&repo, "replicas: 5");
        let prepared = leader.prepare(at(0)).await.unwrap();
        let plan = prepared
            .plan
            .clone()
            .expect("the planner proper has a plan");
        let mut shown: Vec<String> = plan
            .actions
            .iter()
            .map(|a| {
                let crate::plan::Operation::Create { containers, .. } = &a.operation else {
                    panic!("a fresh deploy only creates: {a:?}");
                };
                format!("create {} {}", a.node, containers[0].container_name())
            })
            .collect();
        assert_eq!(shown.len(), 5, "{plan}");
        let calls_before = leader.nodes.state.lock().unwrap().log.len();
        leader.execute(prepared).await;
        let mut run: Vec<String> = leader.nodes.state.lock().unwrap().log[calls_before..]
            .iter()
            .filter(|c| c.starts_with("create "))
            .cloned()
            .collect();
        shown.sort();
        run.sort();
        assert_eq!(shown, run);

        // Crashed twice in a row: the second restart waits out its
        // back-off, and the plan shown leaves those starts out as well.
        let crash = |leader: &Leader<MemoryNodes, _>, when| leader.nodes.crash_all(when);
        crash(&leader, at(1));
        let prepared = leader.prepare(at(1)).await.unwrap();
        let starts = prepared.plan.as_ref().unwrap().actions.len();
        assert_eq!(
            (starts, prepared.steps.len(), prepared.backed_off),
            (5, 5, 0)
        );
        leader.execute(prepared).await;
        crash(&leader, at(2));
        let prepared = leader.prepare(at(2)).await.unwrap();
        let plan = prepared.plan.as_ref().unwrap();
        assert_eq!(prepared.backed_off, 5);
        assert!(
            prepared.steps.is_empty() && plan.actions.is_empty(),
            "{plan}"
        );
    }

    #[tokio::test]
    async fn a_failed_rollout_is_reverted_unless_the_deployment_opts_out() {
        // Without the annotation: a revert commit on the branch.
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let mut leader = leader(dir.path());
        let second = fail_a_rollout(&repo, &mut leader, "").await;
        let reverted = tip(&repo);
        assert_ne!(reverted, second);
        let message = repo
            .find_commit(git2::Oid::from_str(&reverted).unwrap())
            .unwrap()
            .message()
            .unwrap()
            .to_string();
        assert!(
            message.starts_with("Revert \"replicas: 2 image: img:2"),
            "{message}"
        );
        let records = note_records(&repo, &second);
        assert_eq!(records[0].outcome, Outcome::Failed);
        assert_eq!(records[0].reverted_by.as_deref(), Some(reverted.as_str()));

        // With `flotilla.dev/auto-rollback: "false"`: no commit, and held.
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let mut leader = super::tests::leader(dir.path());
        let second = fail_a_rollout(&repo, &mut leader, "auto-rollback: false").await;
        assert_eq!(
            tip(&repo),
            second,
            "an opted-out Deployment is not reverted"
        );
        let records = note_records(&repo, &second);
        assert_eq!(
            (records[0].outcome, records[0].reverted_by.as_deref()),
            (Outcome::Failed, None)
        );
        assert_eq!(leader.rollouts.failed().count(), 1);
        let (_, desired) = leader.last_valid.clone().unwrap();
        let held = decide::held_for_failures(&desired, &leader.rollouts).unwrap();
        assert!(held.workloads[0].spec.paused);
        let status = leader.api.status.read().unwrap().clone().unwrap();
        assert_eq!(status.objects[0].rollout, "failed");
        let later = leader.reconcile(at(100)).await.unwrap();
        assert_eq!((later.steps, later.reverted.len()), (0, 0));
    }

    #[tokio::test]
    async fn a_held_failure_is_held_again_by_a_restarted_leader() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        let nodes = {
            let mut first = leader(dir.path());
            fail_a_rollout(&repo, &mut first, "auto-rollback: false").await;
            Arc::clone(&first.nodes)
        };
        let (events, _) = mpsc::unbounded_channel();
        let mut restarted = Leader::new(
            nodes,
            RoundRobin,
            load,
            dir.path(),
            "main",
            Arc::default(),
            events,
        );
        restarted.reconcile(at(200)).await.unwrap();
        let failed: Vec<_> = restarted.rollouts.failed().collect();
        assert_eq!(failed.len(), 1, "the failure is held after a restart");
        let status = restarted.api.status.read().unwrap().clone().unwrap();
        assert_eq!(status.objects[0].rollout, "failed");
        assert!(
            status.objects[0]
                .rollout_reason
                .as_deref()
                .is_some_and(|r| r.contains("progress deadline")),
            "{:?}",
            status.objects[0].rollout_reason
        );
        // Not a fresh rollout with a new deadline, and no second note.
        restarted.reconcile(at(300)).await.unwrap();
        let second = tip(&repo);
        assert_eq!(note_records(&repo, &second).len(), 1);
    }

    /// Issue 13: a replica leaves every node proxy's table, acknowledged,
    /// and its open connections are waited out (within its grace period)
    /// before it is stopped.
    #[tokio::test(start_paused = true)]
    async fn a_leaving_replica_leaves_every_proxy_and_drains_before_it_stops() {
        fn manifests(files: &[SourceFile]) -> (DesiredState, Vec<Diagnostic>) {
            let loaded = crate::manifest::load(files);
            (loaded.state, loaded.diagnostics)
        }
        let yaml = |replicas: u32| {
            format!(
                "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {{name: n1}}\nspec: {{address: 10.0.0.1}}\n---\n\
                 apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {{name: n2}}\nspec: {{address: 10.0.0.2}}\n---\n\
                 apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  \
                 ports: [{{port: 80, targetPort: 8080}}]\n---\n\
                 apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: {replicas}\n  \
                 selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
                 metadata: {{labels: {{app: web}}}}\n    spec:\n      terminationGracePeriodSeconds: 20\n      \
                 containers:\n      - {{name: app, image: img:1}}\n"
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, &yaml(2));
        let binary = dir.path().join("flotilla-proxy");
        std::fs::write(&binary, b"#!/bin/sh\n").unwrap();
        let mut leader = Leader {
            loader: manifests,
            ..kube_leader(dir.path())
        }
        .with_proxy_image(crate::node::ProxyImage::build(&binary).unwrap());
        leader.reconcile(at(0)).await.unwrap();
        // Created, then served from the next reconcile (once running).
        leader.reconcile(at(1)).await.unwrap();
        let endpoints = |leader: &Leader<MemoryNodes, _>, node: &str| {
            endpoints_of(&leader.nodes.state.lock().unwrap().proxies[node])
        };
        assert_eq!(endpoints(&leader, "n1").len(), 2);
        assert_eq!(endpoints(&leader, "n1"), endpoints(&leader, "n2"));

        // One replica goes, with a connection open to each replica on n2's
        // proxy that never closes: the drain waits out the grace period.
        commit(&repo, &yaml(1));
        let before = endpoints_of(&leader.nodes.state.lock().unwrap().proxies["n1"]);
        leader.nodes.state.lock().unwrap().proxy_connections.insert(
            "n2".into(),
            before
                .iter()
                .map(|&target| crate::proxy::table::TargetConnections { target, open: 1 })
                .collect(),
        );
        leader.nodes.state.lock().unwrap().log.clear();
        let started = tokio::time::Instant::now();
        leader.reconcile(at(10)).await.unwrap();
        let log = leader.nodes.state.lock().unwrap().log.clone();
        let first_stop = log
            .iter()
            .position(|c| c.starts_with("stop "))
            .expect("a stop");
        let applies: Vec<usize> = (0..log.len())
            .filter(|&i| log[i].starts_with("proxy-apply"))
            .collect();
        assert_eq!(applies.len(), 2, "{log:?}");
        assert!(applies.iter().all(|&i| i < first_stop), "{log:?}");
        let statuses_before_stop = log[..first_stop]
            .iter()
            .filter(|c| c.starts_with("proxy-status"))
            .count();
        assert!(statuses_before_stop > 10, "the drain polled: {log:?}");
        assert!(
            started.elapsed() >= Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        let after = endpoints(&leader, "n1");
        assert_eq!(after.len(), 1);
        assert!(before.contains(&after[0]));
    }

    /// Review of issue 13: a leader that starts after the last Service
    /// left Git empties the proxies an earlier leader filled, instead of
    /// leaving them serving the old table; it starts no proxy where none runs.
    #[tokio::test]
    async fn a_new_leader_empties_the_tables_an_earlier_one_left() {
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, "replicas: 1");
        let leader_nodes = kube_leader(dir.path());
        {
            let mut state = leader_nodes.nodes.state.lock().unwrap();
            state.proxy_containers.insert("n1".into());
            state.proxies.insert(
                "n1".into(),
                crate::proxy::table::Table {
                    generation: 7,
                    node: "n1".into(),
                    service_cidr: "10.96.0.0/12".into(),
                    dns_address: core::net::Ipv4Addr::new(10, 96, 0, 10),
                    cluster_domain: "cluster.local".into(),
                    services: vec![crate::proxy::table::Service {
                        namespace: "default".into(),
                        name: "gone".into(),
                        cluster_ip: core::net::Ipv4Addr::new(10, 96, 0, 20),
                        client_ip_affinity_seconds: None,
                        balance: crate::proxy::table::Balance::RoundRobin,
                        ports: Vec::new(),
                        pod: None,
                    }],
                    ingress: Vec::new(),
                    ingress_default_backend: None,
                    ingress_certificates: Vec::new(),
                },
            );
        }
        let mut leader = leader_nodes;
        leader.reconcile(at(0)).await.unwrap();
        leader.reconcile(at(1)).await.unwrap();
        let state = leader.nodes.state.lock().unwrap();
        assert!(
            state.proxies["n1"].services.is_empty(),
            "{:?}",
            state.proxies["n1"]
        );
        assert!(state.proxies["n1"].generation > 7);
        assert!(
            !state.log.iter().any(|c| c.starts_with("ensure-proxy")),
            "{:?}",
            state.log
        );
        assert!(!state.proxy_containers.contains("n2"));
        let applies = state
            .log
            .iter()
            .filter(|c| c.starts_with("proxy-apply"))
            .count();
        assert_eq!(
            applies, 3,
            "one sweep per node, then nothing: {:?}",
            state.log
        );
    }

    fn endpoints_of(table: &crate::proxy::table::Table) -> Vec<core::net::SocketAddrV4> {
        table.services[0].ports[0]
            .endpoints
            .iter()
            .map(|e| e.target)
            .collect()
    }

    #[tokio::test]
    async fn a_completed_rollout_prunes_every_revision_beyond_the_history_limit() {
        // Real manifests: the history is read with the manifest loader.
        fn manifests(files: &[SourceFile]) -> (DesiredState, Vec<Diagnostic>) {
            let loaded = crate::manifest::load(files);
            (loaded.state, loaded.diagnostics)
        }
        let yaml = |image: &str, history: u32| {
            format!(
                "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {{name: n1}}\nspec: {{address: 10.0.0.1}}\n---\n\
                 apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 1\n  \
                 revisionHistoryLimit: {history}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
                 metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n      - {{name: app, image: {image}}}\n"
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let repo = crate::leader::memory::bare_repo(dir.path());
        commit(&repo, &yaml("img:1", 10));
        commit(&repo, &yaml("img:2", 10));
        let (events, _) = mpsc::unbounded_channel();
        let mut leader = Leader::new(
            Arc::new(MemoryNodes::default()),
            RoundRobin,
            manifests,
            dir.path(),
            "main",
            Arc::default(),
            events,
        );
        leader.reconcile(at(0)).await.unwrap();
        // The limit drops to 0 with img:3: img:2 and img:1 are both beyond it.
        commit(&repo, &yaml("img:3", 0));
        for secs in [10, 11, 12] {
            leader.reconcile(at(secs)).await.unwrap();
        }
        let log = leader.nodes.state.lock().unwrap().log.clone();
        let removed: BTreeSet<&str> = log
            .iter()
            .filter_map(|call| call.strip_prefix("remove-image n1 "))
            .collect();
        assert_eq!(removed, BTreeSet::from(["img:1", "img:2"]), "{log:?}");
    }
}
