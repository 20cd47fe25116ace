//! The planner with Jobs: pods that run to completion, at most
//! `parallelism` at a time until `completions` succeed (`Indexed`: each
//! index once), failed pods kept and replaced after Kubernetes' back-off,
//! the run finished past `backoffLimit` or its deadline, stopped while
//! suspended, and never run again once its record says it finished.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::plan_support::*;
use flotilla::cluster::{group_replicas, ContainerState, ObservedCluster};
use flotilla::manifest::model::*;
use flotilla::plan::{plan_with_runs, Operation, Plan, RecordedRun, RunState, Runs};
use flotilla::repo::Outcome;

fn two_nodes() -> Vec<Node> {
    vec![node("n1", 4000, 8 * GIB), node("n2", 4000, 8 * GIB)]
}

fn job_spec(completions: Option<u32>, parallelism: u32, mode: CompletionMode) -> JobSpec {
    JobSpec {
        completions,
        parallelism,
        completion_mode: mode,
        backoff_limit: 6,
        active_deadline_seconds: None,
        ttl_seconds_after_finished: None,
        suspend: false,
    }
}

fn job(name: &str, spec: JobSpec) -> Workload {
    let mut w = deployment(name, 0, 100, 64 * MIB);
    w.kind = Kind::Job;
    w.spec.pods = PodSet::Completions(spec);
    w.spec.strategy = Strategy::Recreate;
    w.spec.template.spec.restart_policy = RestartPolicy::Never;
    w
}

fn job_of(state: &DesiredState) -> JobSpec {
    match state.workloads[0].spec.pods {
        PodSet::Completions(job) => job,
        _ => unreachable!("a Job"),
    }
}

fn at(secs: u64) -> SystemTime {
    now() + Duration::from_secs(secs)
}

/// Plans `state` against `cluster` at `when` with `runs`, and plays it.
fn step(
    state: &DesiredState,
    cluster: &mut ObservedCluster,
    runs: &Runs,
    when: SystemTime,
) -> Plan {
    let plan = plan_with_runs(state, cluster, COMMIT, runs, when);
    apply_to_observed(cluster, &plan, when);
    // A created container starts now, not an hour ago.
    for action in &plan.actions {
        if let Operation::Create { containers, .. } = &action.operation {
            for labels in containers {
                let name = labels.container_name();
                for node in cluster.nodes.values_mut() {
                    for c in node.containers.iter_mut().filter(|c| c.name == name) {
                        c.started_at = Some(when);
                    }
                }
            }
        }
    }
    plan
}

/// Ends every running pod of slot `slot` with `code` at `when`.
fn exit(cluster: &mut ObservedCluster, slot: u32, code: i64, when: SystemTime) {
    for node in cluster.nodes.values_mut() {
        for c in node
            .containers
            .iter_mut()
            .filter(|c| c.labels.slot == slot && c.state == ContainerState::Running)
        {
            c.state = ContainerState::Exited { code };
            c.finished_at = Some(when);
        }
    }
}

fn created_slots(plan: &Plan) -> Vec<u32> {
    plan.actions
        .iter()
        .filter(|a| matches!(a.operation, Operation::Create { .. }))
        .map(|a| a.slot)
        .collect()
}

fn removed_slots(plan: &Plan) -> Vec<u32> {
    let mut slots: Vec<u32> = plan
        .actions
        .iter()
        .filter(|a| matches!(a.operation, Operation::Remove { .. }))
        .map(|a| a.slot)
        .collect();
    slots.sort_unstable();
    slots
}

fn run_state(plan: &Plan) -> &RunState {
    &plan.objects[0].run.as_ref().expect("a Job's run").state
}

fn recorded(state: &DesiredState, outcome: Outcome, finished_at: SystemTime) -> Runs {
    let w = &state.workloads[0];
    Runs::Known(
        [(
            (w.key(), flotilla::manifest::template_hash(&w.spec.template)),
            RecordedRun {
                outcome,
                reason: None,
                finished_at,
            },
        )]
        .into(),
    )
}

#[test]
fn an_indexed_job_runs_each_index_once_within_its_parallelism() {
    let state = desired(
        two_nodes(),
        vec![job("pi", job_spec(Some(6), 2, CompletionMode::Indexed))],
    );
    let mut cluster = empty_cluster(&state);
    let runs = Runs::NoneRecorded;
    let mut t = 0;
    let mut order = Vec::new();
    loop {
        let plan = step(&state, &mut cluster, &runs, at(t));
        if let RunState::Finished(finished) = run_state(&plan) {
            assert_eq!(finished.outcome, Outcome::Succeeded);
            break;
        }
        let running: Vec<u32> = group_replicas(&cluster)
            .iter()
            .filter(|r| {
                r.containers
                    .iter()
                    .all(|c| c.state == ContainerState::Running)
            })
            .map(|r| r.key.slot)
            .collect();
        assert!(running.len() <= 2, "{running:?}");
        // The lowest running pod succeeds.
        let first = *running.iter().min().expect("a pod runs");
        order.push(first);
        t += 5;
        exit(&mut cluster, first, 0, at(t));
        assert!(t < 200, "no end");
    }
    assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
    let plan = plan_with_runs(&state, &cluster, COMMIT, &runs, at(t));
    let run = plan.objects[0].run.as_ref().unwrap();
    assert_eq!((run.succeeded, run.active, run.failed), (6, 0, 0));
    assert_eq!(
        run.to_string(),
        format!(
            "6/6 succeeded, 0 active, 0 failed; succeeded at {}, being recorded",
            "2023-11-14T22:13:50Z"
        )
    );
}

#[test]
fn a_failed_pod_is_kept_and_replaced_after_the_back_off() {
    let state = desired(
        two_nodes(),
        vec![job("pi", job_spec(Some(1), 1, CompletionMode::Indexed))],
    );
    let mut cluster = empty_cluster(&state);
    let runs = Runs::NoneRecorded;
    assert_eq!(
        created_slots(&step(&state, &mut cluster, &runs, at(0))),
        vec![0]
    );
    exit(&mut cluster, 0, 1, at(5));
    // 10 s after the first failure, 20 s after the second.
    let plan = step(&state, &mut cluster, &runs, at(6));
    assert!(plan.actions.is_empty(), "{plan}");
    assert_eq!(*run_state(&plan), RunState::BackingOff { until: at(15) });
    // Regression (review of issue 16): the leader slept until its resync
    // (30 s) through a back-off, creating the next pod up to 30 s late;
    // the plan says when it changes by time alone.
    assert_eq!(plan.next_change(), Some(at(15)));
    let second = JobSpec::indexed_slot(0, 1);
    assert_eq!(
        created_slots(&step(&state, &mut cluster, &runs, at(15))),
        vec![second]
    );
    exit(&mut cluster, second, 1, at(20));
    assert!(step(&state, &mut cluster, &runs, at(39)).actions.is_empty());
    let third = JobSpec::indexed_slot(0, 2);
    assert_eq!(
        created_slots(&step(&state, &mut cluster, &runs, at(40))),
        vec![third]
    );
    // The failed pods stay: they are the run's record.
    assert_eq!(group_replicas(&cluster).len(), 3);
    exit(&mut cluster, third, 0, at(50));
    let plan = step(&state, &mut cluster, &runs, at(51));
    let RunState::Finished(finished) = run_state(&plan) else {
        panic!("{:?}", run_state(&plan));
    };
    assert_eq!(
        (finished.outcome, finished.started_at, finished.finished_at),
        (Outcome::Succeeded, at(0), at(50))
    );
    assert_eq!(plan.objects[0].run.as_ref().unwrap().failed, 2);
}

#[test]
fn past_its_backoff_limit_a_run_fails_with_the_last_failed_pod() {
    let mut spec = job_spec(None, 2, CompletionMode::NonIndexed);
    spec.backoff_limit = 1;
    let state = desired(two_nodes(), vec![job("pi", spec)]);
    let mut cluster = empty_cluster(&state);
    let runs = Runs::NoneRecorded;
    assert_eq!(
        created_slots(&step(&state, &mut cluster, &runs, at(0))),
        vec![0, 1]
    );
    exit(&mut cluster, 0, 1, at(3));
    exit(&mut cluster, 1, 2, at(4));
    let plan = step(&state, &mut cluster, &runs, at(5));
    let RunState::Finished(finished) = run_state(&plan) else {
        panic!("{:?}", run_state(&plan));
    };
    assert_eq!(finished.outcome, Outcome::Failed);
    assert_eq!(finished.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(finished.finished_at, at(4));
    let (node, container) = finished.failing.clone().expect("a failed container");
    assert!(container.contains(".pi.1."), "{container} on {node}");
    assert!(plan.actions.is_empty(), "{plan}");
}

#[test]
fn on_failure_restarts_count_as_failures() {
    let mut spec = job_spec(Some(1), 1, CompletionMode::NonIndexed);
    spec.backoff_limit = 2;
    let mut w = job("pi", spec);
    w.spec.template.spec.restart_policy = RestartPolicy::OnFailure;
    let state = desired(two_nodes(), vec![w]);
    let mut cluster = empty_cluster(&state);
    step(&state, &mut cluster, &Runs::NoneRecorded, at(0));
    for node in cluster.nodes.values_mut() {
        for c in &mut node.containers {
            c.restart_count = 3;
            c.finished_at = Some(at(9));
        }
    }
    let plan = plan_with_runs(&state, &cluster, COMMIT, &Runs::NoneRecorded, at(10));
    let RunState::Finished(finished) = run_state(&plan) else {
        panic!("{:?}", run_state(&plan));
    };
    assert_eq!(finished.reason.as_deref(), Some("BackoffLimitExceeded"));
}

#[test]
fn past_its_deadline_a_run_fails() {
    let mut spec = job_spec(Some(1), 1, CompletionMode::NonIndexed);
    spec.active_deadline_seconds = Some(30);
    let state = desired(two_nodes(), vec![job("pi", spec)]);
    let mut cluster = empty_cluster(&state);
    step(&state, &mut cluster, &Runs::NoneRecorded, at(0));
    let plan = step(&state, &mut cluster, &Runs::NoneRecorded, at(29));
    assert_eq!(*run_state(&plan), RunState::Running);
    // The leader wakes at the deadline, not at its next resync.
    assert_eq!(plan.next_change(), Some(at(30)));
    let plan = step(&state, &mut cluster, &Runs::NoneRecorded, at(31));
    let RunState::Finished(finished) = run_state(&plan) else {
        panic!("{:?}", run_state(&plan));
    };
    assert_eq!(
        (finished.reason.as_deref(), finished.finished_at),
        (Some("DeadlineExceeded"), at(30))
    );
    // Recorded: what still runs stops.
    let runs = recorded(&state, Outcome::Failed, at(30));
    let plan = step(&state, &mut cluster, &runs, at(32));
    assert_eq!(removed_slots(&plan), vec![0]);
    assert!(created_slots(&plan).is_empty());
}

/// The record is the run's truth once written: its pods gone (a TTL, a
/// node lost), a restarted leader or a later commit never runs it again;
/// its pods go `ttlSecondsAfterFinished` after it finished.
#[test]
fn a_recorded_run_is_never_run_again_and_its_pods_go_after_the_ttl() {
    let mut spec = job_spec(Some(1), 1, CompletionMode::NonIndexed);
    spec.ttl_seconds_after_finished = Some(60);
    let state = desired(two_nodes(), vec![job("pi", spec)]);
    let mut cluster = empty_cluster(&state);
    step(&state, &mut cluster, &Runs::NoneRecorded, at(0));
    exit(&mut cluster, 0, 0, at(10));
    let runs = recorded(&state, Outcome::Succeeded, at(10));
    let plan = step(&state, &mut cluster, &runs, at(69));
    assert!(plan.actions.is_empty());
    // The leader wakes when the TTL expires, not at its next resync.
    assert_eq!(plan.next_change(), Some(at(70)));
    assert_eq!(
        removed_slots(&step(&state, &mut cluster, &runs, at(70))),
        vec![0]
    );
    // Nothing left of it on the nodes: still not run again, nor a wake.
    let plan = step(&state, &mut cluster, &runs, at(100));
    assert!(plan.actions.is_empty(), "{plan}");
    assert_eq!(plan.next_change(), None);
    assert!(matches!(
        run_state(&plan),
        RunState::Recorded {
            outcome: Outcome::Succeeded,
            ..
        }
    ));
}

#[test]
fn without_its_records_a_job_is_left_alone_and_said_unknown() {
    let state = desired(
        two_nodes(),
        vec![job("pi", job_spec(Some(2), 2, CompletionMode::NonIndexed))],
    );
    let cluster = empty_cluster(&state);
    let runs = Runs::Unknown("the run records were not fetched".into());
    let plan = plan_with_runs(&state, &cluster, COMMIT, &runs, at(0));
    assert!(plan.actions.is_empty());
    insta::assert_snapshot!(flotilla::plan::render(
        &plan,
        flotilla::plan::RenderOptions::default()
    ));
}

#[test]
fn suspended_its_pods_stop_and_resumed_it_carries_on() {
    let spec = job_spec(Some(3), 2, CompletionMode::Indexed);
    let mut state = desired(two_nodes(), vec![job("pi", spec)]);
    let mut cluster = empty_cluster(&state);
    let runs = Runs::NoneRecorded;
    assert_eq!(
        created_slots(&step(&state, &mut cluster, &runs, at(0))),
        vec![0, 1]
    );
    exit(&mut cluster, 0, 0, at(5));
    let PodSet::Completions(ref mut job) = state.workloads[0].spec.pods else {
        unreachable!()
    };
    job.suspend = true;
    let plan = step(&state, &mut cluster, &runs, at(6));
    assert_eq!(removed_slots(&plan), vec![1]);
    assert_eq!(*run_state(&plan), RunState::Suspended);
    let PodSet::Completions(ref mut job) = state.workloads[0].spec.pods else {
        unreachable!()
    };
    job.suspend = false;
    // Index 0 succeeded before: indexes 1 and 2 run.
    let mut created = created_slots(&step(&state, &mut cluster, &runs, at(7)));
    created.sort_unstable();
    assert_eq!(created, vec![1, 2]);
}

#[test]
fn a_changed_template_is_a_new_run_after_the_old_pods_go() {
    let state = desired(
        two_nodes(),
        vec![job("pi", job_spec(Some(1), 1, CompletionMode::NonIndexed))],
    );
    let mut cluster = empty_cluster(&state);
    step(&state, &mut cluster, &Runs::NoneRecorded, at(0));
    exit(&mut cluster, 0, 0, at(5));
    let runs = recorded(&state, Outcome::Succeeded, at(5));
    let changed = desired(
        two_nodes(),
        vec![with_image(state.workloads[0].clone(), "pi:2")],
    );
    let plan = step(&changed, &mut cluster, &runs, at(6));
    assert_eq!(
        (removed_slots(&plan), created_slots(&plan)),
        (vec![0], vec![])
    );
    let plan = step(&changed, &mut cluster, &runs, at(7));
    assert_eq!(created_slots(&plan), vec![0]);
    assert_ne!(
        plan.actions[0].template_hash,
        flotilla::manifest::template_hash(&state.workloads[0].spec.template)
    );
}

/// A finished pod holds no room on its node (Kubernetes counts a
/// terminated pod's requests nowhere): a node full of finished pods takes
/// new ones.
#[test]
fn finished_pods_take_no_room() {
    let mut w = job("pi", job_spec(Some(4), 1, CompletionMode::NonIndexed));
    w.spec.template.spec.containers[0].resources.requests.cpu =
        Some(flotilla::manifest::quantity::CpuMillis(3000));
    let state = desired(vec![node("n1", 4000, 8 * GIB)], vec![w]);
    let mut cluster = empty_cluster(&state);
    let runs = Runs::NoneRecorded;
    for (i, t) in [0u64, 10, 20, 30].into_iter().enumerate() {
        assert_eq!(
            created_slots(&step(&state, &mut cluster, &runs, at(t))).len(),
            1,
            "pod {i}"
        );
        exit(&mut cluster, i as u32, 0, at(t + 5));
    }
}

#[derive(Clone, Debug)]
enum Event {
    /// Time passes, in seconds.
    Wait(u64),
    /// The running pod of this rank (lowest slot first) exits with the code.
    Exit(usize, i64),
}

fn event() -> impl proptest::strategy::Strategy<Value = Event> {
    use proptest::prelude::*;
    prop_oneof![
        (1u64..90).prop_map(Event::Wait),
        (0usize..4, prop_oneof![Just(0i64), Just(1i64)])
            .prop_map(|(rank, code)| Event::Exit(rank, code)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever the pods do: never more than `parallelism` running, never
    /// more successes than `completions` (`Indexed`: each index once), no
    /// pod created within the back-off of the last failure, and nothing run
    /// once the run is recorded finished (as the leader records it).
    #[test]
    fn job_accounting(
        completions in proptest::option::of(0u32..7),
        parallelism in 0u32..4,
        indexed in proptest::bool::ANY,
        backoff_limit in 0u32..4,
        events in proptest::collection::vec(event(), 1..60),
    ) {
        let mode = if indexed && completions.is_some() { CompletionMode::Indexed } else { CompletionMode::NonIndexed };
        let mut spec = job_spec(completions, parallelism, mode);
        spec.backoff_limit = backoff_limit;
        let state = desired(two_nodes(), vec![job("pi", spec)]);
        let job = job_of(&state);
        let mut cluster = empty_cluster(&state);
        let mut runs = Runs::NoneRecorded;
        let mut t = 0u64;
        let mut finished_at: Option<u64> = None;
        for event in events {
            // What the pods say before this plan.
            let replicas = group_replicas(&cluster);
            let failures = replicas.iter().filter(|r| r.containers.iter().any(|c| c.state == ContainerState::Exited { code: 1 })).count() as u32;
            let last_failure = replicas.iter().flat_map(|r| r.containers.iter()).filter(|c| c.state == ContainerState::Exited { code: 1 }).filter_map(|c| c.finished_at).max();
            let plan = step(&state, &mut cluster, &runs, at(t));
            let created = created_slots(&plan);
            if !created.is_empty() {
                proptest::prop_assert!(finished_at.is_none(), "created after the run finished: {plan}");
                if let Some(last) = last_failure {
                    let delay = Duration::from_secs(10 * 2u64.pow(failures.saturating_sub(1).min(6))).min(Duration::from_secs(360));
                    proptest::prop_assert!(at(t) >= last + delay, "created within the back-off: {plan}");
                }
            }
            if let RunState::Finished(finished) = run_state(&plan) {
                // The leader records it.
                runs = recorded(&state, finished.outcome, finished.finished_at);
                finished_at = Some(t);
            }
            let replicas = group_replicas(&cluster);
            let running: Vec<u32> = replicas.iter().filter(|r| r.containers.iter().all(|c| c.state == ContainerState::Running)).map(|r| r.key.slot).collect();
            proptest::prop_assert!(running.len() as u32 <= job.parallelism, "{} running: {plan}", running.len());
            let succeeded: Vec<u32> = replicas.iter().filter(|r| r.containers.iter().all(|c| c.state == ContainerState::Exited { code: 0 })).map(|r| r.key.slot).collect();
            match (job.completion_mode, job.completions) {
                (CompletionMode::Indexed, _) => {
                    let mut per_index: BTreeMap<u32, u32> = BTreeMap::new();
                    for slot in &succeeded {
                        *per_index.entry(job.completion_index(*slot).unwrap()).or_default() += 1;
                    }
                    proptest::prop_assert!(per_index.values().all(|n| *n == 1), "{per_index:?}");
                    proptest::prop_assert!(per_index.keys().all(|i| *i < job.completions.unwrap()));
                }
                (CompletionMode::NonIndexed, Some(c)) => proptest::prop_assert!(succeeded.len() as u32 <= c, "{succeeded:?}"),
                (CompletionMode::NonIndexed, None) => {}
            }
            match event {
                Event::Wait(seconds) => t += seconds,
                Event::Exit(rank, code) => {
                    let mut ranked: Vec<u32> = running.into_iter().collect::<BTreeSet<u32>>().into_iter().collect();
                    ranked.sort_unstable();
                    if let Some(slot) = ranked.get(rank) {
                        t += 1;
                        exit(&mut cluster, *slot, code, at(t));
                    }
                }
            }
        }
    }
}

/// Regression (review of issue 16): a leader restarted while a node was
/// down (never seen since its start) created index 1 again elsewhere while
/// its pod, already succeeded, was on that node: an index run twice. A
/// node never seen within its grace period holds the run's new pods back.
#[test]
fn a_node_never_seen_holds_a_runs_new_pods_back() {
    let state = desired(
        two_nodes(),
        vec![job("pi", job_spec(Some(2), 2, CompletionMode::Indexed))],
    );
    let mut cluster = empty_cluster(&state);
    let runs = Runs::NoneRecorded;
    assert_eq!(
        created_slots(&step(&state, &mut cluster, &runs, at(0))),
        vec![0, 1]
    );
    // The restarted leader never saw the node of one of the pods.
    let unseen = cluster
        .nodes
        .values()
        .find(|n| n.containers.iter().any(|c| c.labels.slot == 1))
        .map(|n| n.name.clone())
        .expect("a node runs slot 1");
    set_never_seen(&mut cluster, &unseen, 5);
    let plan = plan_with_runs(&state, &cluster, COMMIT, &runs, at(10));
    assert!(created_slots(&plan).is_empty(), "{plan}");
    assert_eq!(plan.held.len(), 1, "{plan}");
    assert_eq!(plan.held[0].nodes, vec![unseen.clone()]);
    // Past its grace period, the node's pods are lost: index 1 runs again.
    set_never_seen(&mut cluster, &unseen, 3600);
    let plan = plan_with_runs(&state, &cluster, COMMIT, &runs, at(3600));
    assert_eq!(created_slots(&plan), vec![1]);
}
