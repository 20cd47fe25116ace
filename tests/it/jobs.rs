//! Jobs end to end (issue 16) on the testbed (real sshd and dockerd), the
//! leader as a child process, pushes with the real git CLI.
//!
//! An `Indexed` Job of 6 completions with parallelism 2 runs each index
//! exactly once (each pod prints `JOB_COMPLETION_INDEX` and its host name),
//! never more than 2 pods at a time. A Job failing every time stops after
//! its `backoffLimit` (one replacement, after the 10 s back-off), the note
//! on its commit says failed with its log lines, and its pods go with its
//! `ttlSecondsAfterFinished`. A leader restart after both finished, and a
//! later commit leaving them unchanged, run neither again; `history
//! job/NAME` lists each run.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::deploy::{git_in, wait_for, Cluster};
use crate::common::DECLARED_NODES;

const CLUSTER: &str = "apiVersion: flotilla.dev/v1
kind: Cluster
metadata:
  name: batch
spec:
  resyncSeconds: 2
";

const JOBS: &str = r#"apiVersion: batch/v1
kind: Job
metadata:
  name: idx
spec:
  completions: 6
  parallelism: 2
  completionMode: Indexed
  template:
    metadata:
      labels: {app: idx}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - name: work
          image: flotilla-test:1
          command: [sh, -c, "echo index=$JOB_COMPLETION_INDEX host=$(hostname); sleep 1"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: fail
spec:
  backoffLimit: 1
  ttlSecondsAfterFinished: 0
  template:
    metadata:
      labels: {app: fail}
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - name: work
          image: flotilla-test:1
          command: [sh, -c, "echo cannot reach the database; exit 3"]
"#;

/// Every container of `name` on the declared nodes: (node, container name).
fn containers_of(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    cluster
        .testbed
        .containers(name, &DECLARED_NODES)
        .into_iter()
        .flat_map(|(node, rows)| rows.into_iter().map(move |(c, _)| (node.clone(), c)))
        .collect()
}

/// Docker's RFC 3339 time with its fraction padded to nanoseconds, so that
/// times compared as text sort as times.
fn sortable(time: &str) -> String {
    let time = time.trim_end_matches('Z');
    let (whole, fraction) = time.split_once('.').unwrap_or((time, ""));
    format!("{whole}.{fraction:0<9}Z")
}

/// (started, finished) of a container, comparable as text.
fn run_times(cluster: &Cluster, node: &str, container: &str) -> (String, String) {
    let times = cluster.testbed.docker(
        node,
        &[
            "inspect",
            "-f",
            "{{.State.StartedAt}} {{.State.FinishedAt}} {{.State.ExitCode}}",
            container,
        ],
    );
    let mut parts = times.split_whitespace();
    let (started, finished, code) = (
        sortable(parts.next().unwrap()),
        sortable(parts.next().unwrap()),
        parts.next().unwrap(),
    );
    assert_eq!(code, "0", "{container} on {node}");
    (started, finished)
}

fn note_of(cluster: &Cluster, commit: &str) -> String {
    let output = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&cluster.bare)
        .args(["notes", "--ref", "flotilla", "show", commit])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn flotilla(cluster: &Cluster, args: &[&str]) -> String {
    let output = cluster
        .flotilla()
        .current_dir(&cluster.work)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "flotilla {args:?}: {text}");
    text
}

/// Waits for `reconciles` more reconciles of the branch's tip, as the
/// status's generation time shows.
fn wait_reconciles(cluster: &Cluster, reconciles: u32) {
    let tip = git_in(&cluster.bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let mut seen = BTreeSet::new();
    wait_for("reconciles of the tip", Duration::from_secs(30), || {
        let status = cluster.status()?;
        if status.commit.as_deref() == Some(tip.as_str()) {
            seen.insert(status.generated_at);
        }
        (seen.len() > reconciles as usize).then_some(())
    });
}

#[test]
fn jobs_run_once_per_revision_and_their_outcome_is_noted() {
    let mut cluster = Cluster::new(CLUSTER);
    cluster.start_leader();
    cluster.push("batch/jobs.yaml", Some(JOBS), "Jobs idx and fail");
    let commit = git_in(&cluster.bare, &["rev-parse", "main"])
        .trim()
        .to_string();

    // Both runs end, and the leader notes them on the commit.
    let note = wait_for("both runs noted", Duration::from_secs(60), || {
        let note = note_of(&cluster, &commit);
        (note.contains("flotilla: run Job default/idx ")
            && note.contains("flotilla: run Job default/fail "))
        .then_some(note)
    });
    assert!(
        note.contains("flotilla: run Job default/idx succeeded"),
        "{note}"
    );
    assert!(note.contains("6/6 succeeded, 0 failed"), "{note}");
    assert!(
        note.contains("flotilla: run Job default/fail failed"),
        "{note}"
    );
    assert!(
        note.contains("0/1 succeeded") || note.contains("0 succeeded (of any pod), 2 failed"),
        "{note}"
    );
    assert!(note.contains("reason: BackoffLimitExceeded"), "{note}");
    assert!(note.contains("|     cannot reach the database"), "{note}");

    // Each index exactly once, on a pod named for it, at most 2 at a time.
    let idx = containers_of(&cluster, "idx");
    assert_eq!(idx.len(), 6, "{idx:?}");
    let mut indexes = BTreeSet::new();
    let mut spans = Vec::new();
    for (node, container) in &idx {
        let logs = cluster.testbed.docker(node, &["logs", container]);
        let index: u32 = logs
            .trim()
            .strip_prefix("index=")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(i, _)| i.parse().ok())
            .unwrap_or_else(|| panic!("{container}: {logs}"));
        assert!(logs.contains(&format!("host=idx-{index}")), "{logs}");
        assert!(indexes.insert(index), "index {index} ran twice");
        spans.push(run_times(&cluster, node, container));
    }
    assert_eq!(indexes, (0..6).collect());
    for (started, _) in &spans {
        let running = spans
            .iter()
            .filter(|(s, f)| s <= started && started < f)
            .count();
        assert!(running <= 2, "{running} pods ran at {started}: {spans:?}");
    }

    // The failed Job's pods went with its TTL of 0, once noted.
    wait_for("fail's pods removed", Duration::from_secs(20), || {
        containers_of(&cluster, "fail").is_empty().then_some(())
    });
    let status = cluster.status().expect("status");
    let run = |name: &str| {
        status
            .objects
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.run.clone())
            .unwrap_or_default()
    };
    assert!(
        run("idx").starts_with("6/6 succeeded, 0 active, 0 failed; succeeded at "),
        "{}",
        run("idx")
    );
    assert!(
        run("fail").contains("failed (BackoffLimitExceeded)"),
        "{}",
        run("fail")
    );

    // A leader restart runs neither again, nor does a later commit that
    // leaves them unchanged.
    cluster.stop_leader();
    cluster.start_leader();
    wait_reconciles(&cluster, 3);
    cluster.push(
        "other.yaml",
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unrelated}\ndata: {a: b}\n"),
        "Something else",
    );
    wait_reconciles(&cluster, 3);
    assert_eq!(containers_of(&cluster, "idx").len(), 6);
    assert!(containers_of(&cluster, "fail").is_empty());
    let log = cluster.leader_log();
    assert_eq!(log.matches("run finished; recorded").count(), 2, "{log}");

    // A clone without the notes cannot tell; the leader's repository can.
    let unknown = flotilla(&cluster, &["history", "job/idx"]);
    assert!(
        unknown.contains("job/idx: its runs are unknown here"),
        "{unknown}"
    );
    let bare = cluster.bare.to_str().unwrap().to_string();
    let history = flotilla(&cluster, &["history", "job/idx", "--repo", &bare]);
    assert!(
        history.contains("succeeded") && history.contains("6/6 succeeded"),
        "{history}"
    );
    assert!(history.contains(&commit[..12]), "{history}");
    let history = flotilla(&cluster, &["history", "job/fail", "--repo", &bare]);
    assert!(
        history.contains("failed") && history.contains("BackoffLimitExceeded"),
        "{history}"
    );
}
