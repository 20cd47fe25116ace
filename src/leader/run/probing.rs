//! The probe task: runs due readiness, liveness and startup probes through
//! the node seam, records verdicts in [`crate::reconcile::probes`]'
//! bookkeeping, restarts containers whose liveness failed, and wakes the
//! loop when readiness changes.

use super::*;

/// Whether a probe round runs every due probe and restarts the containers
/// whose liveness (or startup) probe failed, or leaves both to the probe task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Restarts {
    Now,
    /// Preparing a reconcile changes nothing on the nodes: only readiness
    /// probes run (no verdict of them asks for a restart, and the liveness
    /// and startup counts are left for the probe task to carry on).
    Deferred,
}

impl<N: NodeOps, P: Planner> Leader<N, P> {
    /// A task that runs due probes every second until `stop` is notified:
    /// readiness verdicts feed the next observation (and wake `changed` so a
    /// rollout waiting on readiness goes on at once); failed liveness
    /// restarts the container.
    pub fn probe_task(
        &self,
        changed: Arc<Notify>,
        stop: Arc<Notify>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let nodes = Arc::clone(&self.nodes);
        let shared = Arc::clone(&self.shared);
        let tracker = Arc::clone(&self.probes);
        let round = Arc::clone(&self.probe_round);
        let events = self.events.clone();
        async move {
            // Frequent ticks so that a new container's first probe (and so
            // the next rollout step) follows its start closely; each probe
            // still runs only every periodSeconds.
            let mut tick = tokio::time::interval(PROBE_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.notified() => return,
                }
                let _round = round.lock().await;
                if probe_round(&*nodes, &shared, &tracker, &events, Restarts::Now).await {
                    changed.notify_one();
                }
            }
        }
    }
}

/// Runs every probe that is due once, concurrently; restarts containers
/// whose liveness failed. Whether any readiness verdict changed.
pub(super) async fn probe_round<N: NodeOps>(
    nodes: &N,
    shared: &Mutex<ProbeInputs>,
    tracker: &Mutex<ProbeTracker>,
    events: &mpsc::UnboundedSender<ApplyEvent>,
    restarts: Restarts,
) -> bool {
    let now = SystemTime::now();
    let mut due = due_probes(shared, tracker, now);
    if restarts == Restarts::Deferred {
        due.retain(|probe| probe.kind == ProbeKind::Readiness);
    }
    let results = join_all(due.into_iter().map(|probe| async move {
        let result = run_probe(
            nodes,
            &probe.node,
            &probe.container_name,
            &probe.container,
            &probe.probe,
        )
        .await;
        (probe, result)
    }))
    .await;
    let mut readiness_changed = false;
    for (probe, result) in results {
        if let Err(error) = &result {
            tracing::debug!(container = %probe.container_name, kind = ?probe.kind, %error, "probe failed");
        }
        let outcome = tracker
            .lock()
            .expect("probe lock is never poisoned")
            .record(
                &container_key(&probe.node, &probe.container_name),
                probe.kind,
                &probe.probe,
                probe.started_at,
                SystemTime::now(),
                result.is_ok(),
            );
        match outcome {
            ProbeOutcome::BecameReady | ProbeOutcome::BecameNotReady | ProbeOutcome::Started => {
                readiness_changed = true
            }
            ProbeOutcome::RestartNeeded => {
                let reason = match probe.kind {
                    ProbeKind::Startup => "startup probe failed",
                    _ => "liveness probe failed",
                };
                tracing::warn!(container = %probe.container_name, node = %probe.node, "{reason}; restarting");
                let _ = events.send(ApplyEvent::Started {
                    node: probe.node.clone(),
                    kind: "restart",
                    target: probe.container_name.clone(),
                    reason: reason.into(),
                });
                // As Kubernetes kills a container whose liveness failed:
                // its preStop first, within the grace period; its postStart
                // after it runs again.
                let hooks = crate::leader::spec::container_hooks(&probe.container);
                let mut grace = Duration::from_secs(u64::from(probe.grace_seconds));
                if let Some(hook) = &hooks.pre_stop {
                    let started = std::time::Instant::now();
                    if let Err(error) = crate::leader::hooks::run_hook(
                        nodes,
                        &probe.node,
                        &probe.container_name,
                        hook,
                        grace,
                    )
                    .await
                    {
                        tracing::warn!(container = %probe.container_name, %error, "preStop hook failed");
                    }
                    grace = grace.saturating_sub(started.elapsed());
                }
                match nodes
                    .restart(&probe.node, &probe.container_name, grace)
                    .await
                {
                    Err(error) => tracing::warn!(%error, "restart after a failed probe"),
                    Ok(()) => {
                        if let Some(hook) = &hooks.post_start {
                            let limit = Duration::from_secs(u64::from(probe.grace_seconds));
                            if let Err(error) = crate::leader::hooks::run_hook(
                                nodes,
                                &probe.node,
                                &probe.container_name,
                                hook,
                                limit,
                            )
                            .await
                            {
                                tracing::warn!(container = %probe.container_name, %error, "postStart hook failed; killing the container");
                                let _ = nodes
                                    .stop(&probe.node, &probe.container_name, Some(Duration::ZERO))
                                    .await;
                            }
                        }
                    }
                }
            }
            ProbeOutcome::Unchanged => {}
        }
    }
    readiness_changed
}

struct DueProbe {
    node: String,
    container_name: String,
    container: crate::manifest::model::Container,
    probe: crate::manifest::model::Probe,
    kind: ProbeKind,
    started_at: SystemTime,
    grace_seconds: u32,
}

fn due_probes(
    shared: &Mutex<ProbeInputs>,
    tracker: &Mutex<ProbeTracker>,
    now: SystemTime,
) -> Vec<DueProbe> {
    let shared = shared.lock().expect("probe inputs lock is never poisoned");
    let mut tracker = tracker.lock().expect("probe lock is never poisoned");
    let templates = current_templates(&shared.desired);
    let running: Vec<(&str, &ObservedContainer)> = shared
        .observed
        .nodes
        .values()
        // An unreachable node's containers are only remembered: not probed.
        .filter(|n| n.reachability.is_reachable())
        .flat_map(|n| n.containers.iter().map(|c| (n.name.as_str(), c)))
        .filter(|(_, c)| c.state == ContainerState::Running)
        .collect();
    let running_keys: BTreeSet<String> = running
        .iter()
        .map(|(node, c)| container_key(node, &c.name))
        .collect();
    tracker.retain(|key| running_keys.contains(key));
    let mut due = Vec::new();
    for (node, container) in running {
        // An old revision's probes are the old template's, which the desired
        // state no longer has; it is on its way out.
        let Some((template, spec)) = declared_container(&templates, container) else {
            continue;
        };
        let Some(started_at) = container.started_at else {
            continue;
        };
        let key = container_key(node, &container.name);
        for (kind, probe) in tracker.due(&key, spec, started_at, now) {
            due.push(DueProbe {
                node: node.to_string(),
                container_name: container.name.clone(),
                container: spec.clone(),
                probe: probe.clone(),
                kind,
                started_at,
                grace_seconds: template.spec.termination_grace_period_seconds,
            });
        }
    }
    due
}

type Templates<'a> =
    BTreeMap<(Kind, &'a str, &'a str), (&'a crate::manifest::model::PodTemplate, String)>;

/// Each workload's pod template and its revision.
pub(super) fn current_templates(desired: &DesiredState) -> Templates<'_> {
    desired
        .workloads
        .iter()
        .map(|d| {
            (
                (d.kind, d.meta.namespace.as_str(), d.meta.name.as_str()),
                (
                    &d.spec.template,
                    crate::manifest::template_hash(&d.spec.template),
                ),
            )
        })
        .collect()
}

/// The template and declared container of `container` when it is of its
/// workload's current revision.
pub(super) fn declared_container<'a>(
    templates: &Templates<'a>,
    container: &ObservedContainer,
) -> Option<(
    &'a crate::manifest::model::PodTemplate,
    &'a crate::manifest::model::Container,
)> {
    let labels = &container.labels;
    let (template, hash) =
        templates.get(&(labels.kind, labels.namespace.as_str(), labels.name.as_str()))?;
    if *hash != labels.template_hash {
        return None;
    }
    let spec = template
        .spec
        .all_containers()
        .find(|c| c.name == labels.container)?;
    Some((template, spec))
}
