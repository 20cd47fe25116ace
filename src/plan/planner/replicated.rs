//! A count of pods the scheduler places on any node that fits (Deployment):
//! scaling to `replicas`, and a rollout by `RollingUpdate` within the surge
//! and unavailable budgets or by `Recreate`.

use crate::manifest::model::{ObjectKey, Strategy, WorkloadSpec};
use crate::plan::{Held, RolloutStatus, RolloutStrategy};

use super::{
    free_slots, live_in_removal_order, remove_action, Context, Create, Decision, Location, Seen,
};
use crate::cluster::ReplicaState;

/// Which replicas to create (for the scheduler to place) and remove.
pub(super) fn decide(
    key: &ObjectKey,
    spec: &WorkloadSpec,
    want: u32,
    seen: &[Seen<'_>],
    new_hash: &str,
    context: &Context<'_>,
) -> Decision {
    let is_new = |s: &&Seen<'_>| s.replica.key.template_hash == new_hash;
    let counted = |s: &&Seen<'_>| s.counted();
    let mut creates: Vec<Create> = Vec::new();
    let mut removes = Vec::new();

    let new: Vec<&Seen<'_>> = seen.iter().filter(is_new).filter(counted).collect();
    let old: Vec<&Seen<'_>> = seen.iter().filter(|s| !is_new(s)).filter(counted).collect();
    let lost = seen.iter().filter(|s| s.location == Location::Lost).count() as u32;
    let ready =
        |v: &[&Seen<'_>]| v.iter().filter(|s| s.state == ReplicaState::Ready).count() as u32;
    let mut rollout = None;
    let n_new = new.len() as u32;
    let n_old = old.len() as u32;

    let scale_reason = |present: u32| {
        if lost > 0 {
            format!("replaces {lost} replica(s) on lost node(s); {present}/{want} replicas present")
        } else {
            format!("{present}/{want} replicas present")
        }
    };
    let create = |slot: u32, reason: String| Create {
        slot,
        node: None,
        reason,
        rollout: false,
    };

    // Recreate: every old replica goes first, and no new one starts while
    // an old one is still stopping (Kubernetes waits for the old pods to be
    // gone, terminating ones too).
    let old_terminating = seen
        .iter()
        .any(|s| s.state == ReplicaState::Terminating && s.replica.key.template_hash != new_hash);
    let recreating =
        spec.strategy == Strategy::Recreate && !spec.paused && (n_old > 0 || old_terminating);
    if recreating {
        for s in old.iter().filter(|s| s.location == Location::Live) {
            removes.push(remove_action(
                key,
                s.replica,
                true,
                format!("recreate: old revision {}", s.replica.key.template_hash),
            ));
        }
        rollout = Some(RolloutStatus {
            strategy: RolloutStrategy::Recreate,
            updated: n_new,
            desired: want,
            new_template_hash: new_hash.to_string(),
            max_surge: 0,
            max_unavailable: want,
        });
    } else if n_old == 0 || spec.paused {
        // Steady state (or a paused rollout): scale the current revision.
        let present = n_new + if spec.paused { n_old } else { 0 };
        if present < want {
            let reason = scale_reason(present);
            for slot in free_slots(seen, new_hash, want - present) {
                creates.push(create(slot, reason.clone()));
            }
        } else if n_new > 0 && present > want {
            let surplus = present - want;
            for s in live_in_removal_order(&new)
                .into_iter()
                .take(surplus as usize)
            {
                removes.push(remove_action(
                    key,
                    s.replica,
                    false,
                    format!("scale down to {want}"),
                ));
            }
        }
    } else {
        match &spec.strategy {
            // Recreate is handled above; OnDelete is not a Deployment's
            // strategy (validation refuses it): old replicas stay.
            Strategy::Recreate | Strategy::OnDelete => {}
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => {
                let surge = max_surge.resolve(want, true);
                let mut unavailable = max_unavailable.resolve(want, false);
                if surge == 0 && unavailable == 0 {
                    unavailable = 1;
                }
                let total = n_new + n_old;
                // Old revision: first the unhealthy ones, within what keeps
                // enough replicas, then healthy ones down to minAvailable.
                let min_available = want.saturating_sub(unavailable);
                let new_unavailable = n_new - ready(&new);
                let mut cleanup = total
                    .saturating_sub(min_available)
                    .saturating_sub(new_unavailable);
                let old_live = live_in_removal_order(&old);
                let mut removed_old = 0u32;
                for s in old_live.iter().filter(|s| s.state != ReplicaState::Ready) {
                    if cleanup == 0 {
                        break;
                    }
                    cleanup -= 1;
                    removed_old += 1;
                    removes.push(remove_action(
                        key,
                        s.replica,
                        true,
                        format!(
                            "rolling update: old revision {}, {}",
                            s.replica.key.template_hash,
                            s.state.as_str()
                        ),
                    ));
                }
                let available = ready(&new) + ready(&old);
                let healthy = available.saturating_sub(min_available);
                for s in old_live
                    .iter()
                    .filter(|s| s.state == ReplicaState::Ready)
                    .take(healthy as usize)
                {
                    removed_old += 1;
                    removes.push(remove_action(
                        key,
                        s.replica,
                        true,
                        format!(
                            "rolling update: old revision {}",
                            s.replica.key.template_hash
                        ),
                    ));
                }
                // New revision: up to `want + surge` replicas in all, not
                // counting those removed just above (terminating replicas
                // do not count against maxSurge, as in Kubernetes), so the
                // next wave starts while the old one stops.
                let up = (want + surge)
                    .saturating_sub(total - removed_old)
                    .min(want.saturating_sub(n_new));
                let reason = format!("rolling update to revision {new_hash}");
                for slot in free_slots(seen, new_hash, up) {
                    creates.push(Create {
                        rollout: true,
                        ..create(slot, reason.clone())
                    });
                }
                // Scaled down in the middle of a rollout: trim the new revision too.
                if n_new > want {
                    for s in live_in_removal_order(&new)
                        .into_iter()
                        .take((n_new - want) as usize)
                    {
                        removes.push(remove_action(
                            key,
                            s.replica,
                            false,
                            format!("scale down to {want}"),
                        ));
                    }
                }
                rollout = Some(RolloutStatus {
                    strategy: RolloutStrategy::RollingUpdate,
                    updated: n_new + up,
                    desired: want,
                    new_template_hash: new_hash.to_string(),
                    max_surge: surge,
                    max_unavailable: unavailable,
                });
            }
        }
    }

    // Replicas nobody accounts for may run on a node never seen: creating
    // them elsewhere could duplicate them, so none is created until those
    // nodes answer or their grace period has passed.
    let unaccounted = want.saturating_sub(n_new + n_old);
    let mut held = None;
    if unaccounted > 0 && !context.unknown_nodes.is_empty() {
        creates.clear();
        if let Some(rollout) = &mut rollout {
            rollout.updated = n_new;
        }
        held = Some(Held {
            object: key.clone(),
            replicas: unaccounted,
            nodes: context
                .unknown_nodes
                .iter()
                .map(|n| n.to_string())
                .collect(),
        });
    }
    Decision {
        want,
        creates,
        removes,
        rollout,
        held,
    }
}
