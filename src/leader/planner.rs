//! The planner proper (`plan::plan`) behind the loop's [`Planner`] seam:
//! its actions become node-level steps, each replica's pod template turned
//! into Docker containers by `leader::spec`.

use std::time::{Duration, SystemTime};

use super::apply::{Operation, Step};
use super::run::Planner;
use super::spec::{replica_containers, ServiceDiscovery};
use crate::cluster::{ContainerRole, ManagedLabels, ObservedCluster};
use crate::manifest::model::DesiredState;
use crate::plan;

/// `plan::plan`, as the leader calls it.
#[derive(Clone, Copy, Debug, Default)]
pub struct KubePlanner;

impl Planner for KubePlanner {
    fn steps(
        &self,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        runs: &plan::Runs,
        now: SystemTime,
    ) -> Vec<Step> {
        self.planned(desired, commit, observed, runs, now).1
    }

    fn planned(
        &self,
        desired: &DesiredState,
        commit: &str,
        observed: &ObservedCluster,
        runs: &plan::Runs,
        now: SystemTime,
    ) -> (Option<plan::Plan>, Vec<Step>) {
        let plan = plan::plan_with_runs(desired, observed, commit, runs, now);
        for unschedulable in &plan.unschedulable {
            tracing::warn!(
                object = %unschedulable.object,
                slot = unschedulable.slot,
                reason = %unschedulable.reason,
                "replica cannot be placed"
            );
        }
        for held in &plan.held {
            tracing::warn!(
                object = %held.object,
                replicas = held.replicas,
                nodes = ?held.nodes,
                "replicas unknown: may run on nodes never reached, not replaced within their grace period"
            );
        }
        let steps = steps_from_plan(desired, &plan);
        (Some(plan), steps)
    }
}

/// The plan's actions as executor steps, in the plan's order, then its
/// volume removals.
pub fn steps_from_plan(desired: &DesiredState, plan: &plan::Plan) -> Vec<Step> {
    let volume_removals = plan.volume_removals.iter().map(|removal| Step {
        node: removal.node.clone(),
        operation: Operation::RemoveVolume {
            volume: removal.volume.clone(),
        },
        reason: removal.reason.clone(),
    });
    plan.actions
        .iter()
        .filter_map(|action| {
            let operation = match &action.operation {
                plan::Operation::Create {
                    containers,
                    template,
                } => {
                    // The pod's labels (each container gets its own name
                    // and role from the template).
                    let labels = ManagedLabels {
                        container: String::new(),
                        role: ContainerRole::App,
                        ..containers.first()?.clone()
                    };
                    let discovery = ServiceDiscovery::for_namespace(desired, &labels.namespace);
                    Operation::CreateReplica {
                        containers: replica_containers(template, &labels, &discovery, desired),
                        start: true,
                    }
                }
                plan::Operation::Start { containers } => Operation::Start {
                    containers: containers.iter().map(|c| c.name.clone()).collect(),
                    post_start: containers
                        .iter()
                        .filter_map(|c| Some((c.name.clone(), c.hooks.post_start.clone()?)))
                        .collect(),
                },
                plan::Operation::Remove { containers } => {
                    // An object no longer declared: the grace period its
                    // containers were created with (their preStop's label
                    // says it; Docker's stop timeout bounds the others).
                    let grace = desired
                        .workload(&action.object)
                        .map(|w| w.spec.template.spec.termination_grace_period_seconds)
                        .or_else(|| {
                            containers
                                .iter()
                                .filter_map(|c| c.hooks.grace_seconds)
                                .min()
                        })
                        .map(|seconds| Duration::from_secs(u64::from(seconds)));
                    Operation::Remove {
                        containers: containers.iter().map(|c| c.name.clone()).collect(),
                        pre_stop: containers
                            .iter()
                            .filter_map(|c| Some((c.name.clone(), c.hooks.pre_stop.clone()?)))
                            .collect(),
                        grace,
                    }
                }
            };
            Some(Step {
                node: action.node.clone(),
                operation,
                reason: action.reason.clone(),
            })
        })
        .chain(volume_removals)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{Hook, Hooks};
    use crate::manifest::model::{Kind, ObjectKey};

    /// Regression (review of issue 16): the preStop of a pod whose object
    /// was removed from Git ran for up to 30 s (the default) whatever its
    /// `terminationGracePeriodSeconds`; the grace its containers were
    /// created with (their labels) bounds it now.
    #[test]
    fn an_undeclared_objects_removal_keeps_its_grace_period() {
        let plan = plan::Plan {
            actions: vec![plan::Action {
                object: ObjectKey {
                    kind: Kind::Job,
                    namespace: "default".into(),
                    name: "gone".into(),
                },
                slot: 0,
                node: "n1".into(),
                template_hash: "0123456789".into(),
                rollout: false,
                reason: "no longer declared".into(),
                operation: plan::Operation::Remove {
                    containers: vec![plan::ContainerRef {
                        id: "id".into(),
                        name: "c".into(),
                        hooks: Hooks {
                            post_start: None,
                            pre_stop: Some(Hook::Sleep { seconds: 100 }),
                            grace_seconds: Some(2),
                        },
                    }],
                },
            }],
            ..plan::Plan::default()
        };
        let steps = steps_from_plan(&DesiredState::default(), &plan);
        let Operation::Remove { grace, .. } = &steps[0].operation else {
            unreachable!("a removal");
        };
        assert_eq!(*grace, Some(Duration::from_secs(2)));
    }
}
