//! `git push` to the leader's repository: the pre-receive hook lets valid
//! commits in and rejects invalid ones with every diagnostic shown to the
//! pusher. Real `git` CLI, real hooks, the real `flotilla` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::git::{git, git_ok, WorkTree};

const NODE: &str = "\
apiVersion: flotilla.dev/v1
kind: Node
metadata:
  name: n1
spec:
  address: 127.0.0.1
";

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: flotilla-test:1
";

struct Cluster {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: WorkTree,
}

impl Cluster {
    /// The work tree with node n1 on a port of loopback that refuses at
    /// once (unreachable) and web declared: for a push without nodes.
    fn web_on_an_unreachable_node(&self) -> &WorkTree {
        self.work
            .write("nodes/n1.yaml", &format!("{NODE}  port: 1\n"))
            .write("apps/web.yaml", WEB)
    }

    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("cluster.git");
        let init = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(["init-repo", bare.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let work = WorkTree::new();
        git_ok(
            work.path(),
            &["remote", "add", "cluster", bare.to_str().unwrap()],
        );
        Cluster {
            _dir: dir,
            bare,
            work,
        }
    }

    /// Pushes HEAD to the tracked branch; returns (accepted, what the pusher saw).
    fn push(&self) -> (bool, String) {
        let output = git(self.work.path(), &["push", "cluster", "HEAD:main"]);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn remote_tip(&self) -> Option<String> {
        let output = git(
            &self.bare,
            &["rev-parse", "--verify", "-q", "refs/heads/main"],
        );
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }
}

fn bare_config(bare: &Path, key: &str) -> String {
    git_ok(bare, &["config", key])
}

#[test]
fn init_repo_installs_hooks_and_records_the_branch() {
    let cluster = Cluster::new();
    assert_eq!(bare_config(&cluster.bare, "flotilla.branch"), "main");
    assert!(cluster.bare.join("hooks/pre-receive").exists());
    assert_eq!(
        bare_config(&cluster.bare, "flotilla.bin"),
        env!("CARGO_BIN_EXE_flotilla")
    );
}

#[test]
fn valid_push_lands_and_invalid_push_is_rejected_with_diagnostics() {
    let cluster = Cluster::new();
    cluster
        .work
        .write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    let good = cluster.work.commit("web: two replicas");
    let (accepted, seen) = cluster.push();
    assert!(accepted, "a valid push is accepted:\n{seen}");
    assert!(seen.contains("valid: 1 node and 1 workload"), "{seen}");
    assert_eq!(cluster.remote_tip().as_deref(), Some(good.as_str()));

    cluster
        .work
        .write("apps/web.yaml", &WEB.replace("replicas: 2", "replica: 2"));
    cluster.work.commit("web: typo");
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "an invalid push is rejected:\n{seen}");
    assert!(
        seen.contains("unknown field `replica`, did you mean `replicas`?"),
        "{seen}"
    );
    assert!(seen.contains("--> apps/web.yaml:6:3"), "{seen}");
    assert!(seen.contains("push rejected"), "{seen}");
    assert_eq!(
        cluster.remote_tip().as_deref(),
        Some(good.as_str()),
        "the branch did not move"
    );
}

/// A push of three commits whose middle one is invalid: rejected, whether it
/// creates the branch or moves it, naming the bad commit, though the tip is
/// valid (a later revert could land on the middle one).
#[test]
fn an_invalid_commit_in_the_middle_of_a_push_rejects_it() {
    let cluster = Cluster::new();
    cluster.work.write("nodes/n1.yaml", NODE);
    let base = cluster.work.commit("node");
    cluster.work.write("apps/web.yaml", WEB);
    let first = cluster.work.commit("web");
    cluster
        .work
        .write("apps/web.yaml", &WEB.replace("replicas: 2", "replica: 2"));
    let middle = cluster.work.commit("web: typo");
    cluster.work.write("apps/web.yaml", WEB);
    let tip = cluster.work.commit("web: typo fixed");

    let expect_rejected = |seen: &str| {
        assert!(seen.contains("push rejected"), "{seen}");
        assert!(
            seen.contains(&format!("commit {} (web: typo):", &middle[..12])),
            "the bad commit is named above its diagnostics:\n{seen}"
        );
        assert!(
            seen.contains("unknown field `replica`, did you mean `replicas`?"),
            "{seen}"
        );
        assert!(
            seen.contains(&format!("  {} web: typo", &middle[..12])),
            "{seen}"
        );
        for good in [&first, &tip] {
            assert!(
                !seen.contains(&format!("  {} ", &good[..12])),
                "a valid commit is not listed as invalid:\n{seen}"
            );
        }
    };

    // A new branch: every commit no ref reaches is validated.
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    expect_rejected(&seen);
    assert_eq!(cluster.remote_tip(), None, "the branch was not created");

    // An existing branch: every commit of old..new is validated.
    let output = git(
        cluster.work.path(),
        &["push", "cluster", &format!("{base}:refs/heads/main")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    expect_rejected(&seen);
    assert!(seen.contains("validating 3 commit(s)"), "{seen}");
    assert_eq!(
        cluster.remote_tip().as_deref(),
        Some(base.as_str()),
        "the branch did not move"
    );

    // Without the bad commit the same change lands, and the tip's plan is shown.
    git_ok(cluster.work.path(), &["reset", "-q", "--hard", &first]);
    let (accepted, seen) = cluster.push();
    assert!(accepted, "{seen}");
    assert_eq!(cluster.remote_tip().as_deref(), Some(first.as_str()));
}

/// More commits than `flotilla.maxPushCommits` are refused with a message
/// saying how to raise the limit, not validated for minutes.
#[test]
fn a_push_of_more_commits_than_the_limit_is_refused_clearly() {
    let cluster = Cluster::new();
    git_ok(&cluster.bare, &["config", "flotilla.maxPushCommits", "2"]);
    cluster.work.write("nodes/n1.yaml", NODE);
    cluster.work.commit("one");
    cluster.work.write("apps/web.yaml", WEB);
    cluster.work.commit("two");
    cluster.work.commit("three");
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    assert!(
        seen.contains("it adds 3 commits to main, more than the 2 validated per push"),
        "{seen}"
    );
    assert!(
        seen.contains("git config flotilla.maxPushCommits"),
        "{seen}"
    );
    assert_eq!(cluster.remote_tip(), None);
}

#[test]
fn every_problem_of_the_pushed_commit_is_shown() {
    let cluster = Cluster::new();
    cluster
        .work
        .write(
            "apps/web.yaml",
            &WEB.replace("image: flotilla-test:1", "imag: flotilla-test:1"),
        )
        .write(
            "apps/api.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: Bad_Name}\n",
        )
        .write("broken.yaml", "a: [1, 2\n");
    cluster.work.commit("three broken files");
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    for file in ["apps/web.yaml", "apps/api.yaml", "broken.yaml"] {
        assert!(
            seen.contains(&format!("--> {file}:")),
            "{file} is reported:\n{seen}"
        );
    }
    assert_eq!(cluster.remote_tip(), None);
}

#[test]
fn other_branches_are_not_validated_and_the_tracked_one_cannot_be_deleted() {
    let cluster = Cluster::new();
    cluster.work.write("nodes/n1.yaml", NODE);
    cluster.work.commit("node");
    assert!(cluster.push().0);
    cluster.work.write("wip.yaml", "not: [valid");
    cluster.work.commit("work in progress");
    let output = git(
        cluster.work.path(),
        &["push", "cluster", "HEAD:refs/heads/wip"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = git(cluster.work.path(), &["push", "cluster", ":main"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refusing to delete main"));
    assert!(cluster.remote_tip().is_some());
}

/// The pre-receive hook shows the pusher the plan of the pushed commit; a
/// node it cannot reach is shown as such, its replicas as unknown, and the
/// push still lands.
#[test]
fn valid_push_shows_the_plan_and_an_unreachable_node_does_not_fail_it() {
    let cluster = Cluster::new();
    // Port 1 on loopback refuses at once: the node is unreachable.
    cluster.web_on_an_unreachable_node();
    let pushed = cluster.work.commit("web: two replicas, n1 down");
    let (accepted, seen) = cluster.push();
    assert!(accepted, "an unreachable node never fails a push:\n{seen}");
    assert_eq!(cluster.remote_tip().as_deref(), Some(pushed.as_str()));
    let short = &pushed[..12];
    assert!(
        seen.contains(&format!(
            "Planning {short} against an unknown deployment (node n1 not observed; no manifest \
             diff)."
        )),
        "{seen}"
    );
    assert!(seen.contains("Deployment default/web: 2 desired"), "{seen}");
    assert!(seen.contains("! node n1 unreachable for "), "{seen}");
    assert!(
        seen.contains("? 2 replica(s) of web unknown: node n1 unreachable"),
        "{seen}"
    );
    assert!(
        seen.contains("Plan: 0 to create, 0 to update, 0 to remove, 0 unschedulable, 2 unknown."),
        "{seen}"
    );
    assert!(!seen.contains("no plan shown"), "{seen}");
}

/// Issue 12, item 5: a push of an ordinary repository (a CI workflow, a
/// Helm chart, a kustomization beside the manifests) is accepted, the
/// pusher seeing each foreign file named with the way out; before, the
/// workflow alone rejected it with `missing field kind`.
#[test]
fn a_push_of_an_ordinary_repository_is_accepted_with_warnings() {
    let cluster = Cluster::new();
    cluster
        .web_on_an_unreachable_node()
        .write(
            ".github/workflows/ci.yml",
            "on: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n",
        )
        .write(
            "charts/x/Chart.yaml",
            "apiVersion: v2\nname: x\nversion: 0.1.0\n",
        )
        .write(
            "charts/x/templates/deployment.yaml",
            "kind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n",
        )
        .write("apps/kustomization.yaml", "resources:\n  - web.yaml\n");
    let pushed = cluster.work.commit("an ordinary repository");
    let (accepted, seen) = cluster.push();
    assert!(accepted, "warnings never reject a push:\n{seen}");
    assert_eq!(cluster.remote_tip().as_deref(), Some(pushed.as_str()));
    assert!(seen.contains("valid: 1 node and 1 workload"), "{seen}");
    assert!(
        seen.contains("warning: charts/x is a Helm chart: not read"),
        "{seen}"
    );
    assert!(
        seen.contains("helm template NAME charts/x > rendered.yaml"),
        "{seen}"
    );
    assert!(
        seen.contains("warning: kustomize input is not applied"),
        "{seen}"
    );
    assert!(
        seen.contains("kustomize build apps > rendered.yaml"),
        "{seen}"
    );
    assert!(!seen.contains(".github"), "{seen}");
}

/// Issue 12, item 4: without a leader, the post-receive hook said "the
/// leader deploys it", and `git push -o flotilla.wait` waited the whole
/// rollout timeout (900 s). Now the pusher learns at once that no leader
/// runs and what to run; the push itself lands.
#[test]
fn a_push_without_a_leader_says_so_and_does_not_wait() {
    let cluster = Cluster::new();
    cluster.web_on_an_unreachable_node();
    let pushed = cluster.work.commit("web, and no leader");
    let mut push = Command::new("git")
        .current_dir(cluster.work.path())
        .args(["push", "-o", "flotilla.wait", "cluster", "HEAD:main"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while push.try_wait().unwrap().is_none() {
        if std::time::Instant::now() >= deadline {
            let _ = push.kill();
            panic!("git push -o flotilla.wait still waits after 60 s without a leader");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = push.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{seen}");
    assert_eq!(cluster.remote_tip().as_deref(), Some(pushed.as_str()));
    let repo = std::fs::canonicalize(&cluster.bare).unwrap();
    let repo = repo.display();
    let short = &pushed[..12];
    assert!(!seen.contains("the leader deploys it"), "{seen}");
    assert!(
        seen.contains(&format!(
            "flotilla: main is now {short}; no leader is running on {repo}: nothing deploys new \
             commits until `flotilla leader --repo {repo}` (or `flotilla apply`) runs"
        )),
        "{seen}"
    );
    assert!(
        seen.contains(&format!(
            "unknown: no leader is running on {repo}: nothing rolls this out until"
        )),
        "{seen}"
    );
    assert!(
        seen.contains(&format!(
            "flotilla: the outcome of {short} is unknown (the push itself is in)"
        )),
        "{seen}"
    );
}

/// Issue 10, item 2: `replicas: 2147483647` validated and then aborted the
/// planner; the hook accepted the push anyway and the branch moved.
#[test]
fn a_push_declaring_more_pods_than_a_cluster_runs_is_rejected() {
    let cluster = Cluster::new();
    cluster
        .work
        .write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    let good = cluster.work.commit("web");
    assert!(cluster.push().0);
    cluster.work.write(
        "apps/web.yaml",
        &WEB.replace("replicas: 2", "replicas: 2147483647"),
    );
    cluster.work.commit("web: everything");
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    assert!(
        seen.contains("error: 2147483647 replicas is more than the 150000 pods a cluster may run")
            && seen.contains("--> apps/web.yaml:6:13"),
        "{seen}"
    );
    assert_eq!(cluster.remote_tip().as_deref(), Some(good.as_str()));
}

/// Writes an executable `flotilla` stand-in that runs the real binary for
/// every command but `plan`, which it answers with `plan` (a shell snippet).
fn fake_flotilla(dir: &Path, plan: &str) -> PathBuf {
    let path = dir.join("flotilla-fake");
    let real = env!("CARGO_BIN_EXE_flotilla");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nif [ \"$1\" = plan ]; then\n{plan}\nfi\nexec {real} \"$@\"\n"),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).unwrap();
    path
}

/// Issue 10, item 2: a plan that cannot be computed let the push land
/// ("no plan shown; the push is accepted"); the leader then failed on it.
#[test]
fn a_push_whose_plan_fails_is_rejected() {
    let cluster = Cluster::new();
    let fake = fake_flotilla(
        cluster.bare.parent().unwrap(),
        "echo 'error: planner failed' >&2; exit 1",
    );
    git_ok(
        &cluster.bare,
        &["config", "flotilla.bin", fake.to_str().unwrap()],
    );
    cluster
        .work
        .write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    cluster.work.commit("web");
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    assert!(
        seen.contains("error: planner failed")
            && seen.contains("push rejected: no plan could be computed"),
        "{seen}"
    );
    assert_eq!(cluster.remote_tip(), None);
}

/// Issue 10, item 14: the hook had no overall time bound.
#[test]
fn a_push_that_takes_longer_than_the_hook_allows_is_rejected() {
    let cluster = Cluster::new();
    let fake = fake_flotilla(cluster.bare.parent().unwrap(), "sleep 30; exit 0");
    git_ok(
        &cluster.bare,
        &["config", "flotilla.bin", fake.to_str().unwrap()],
    );
    git_ok(
        &cluster.bare,
        &["config", "flotilla.hookTimeoutSeconds", "2"],
    );
    cluster
        .work
        .write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    cluster.work.commit("web");
    let started = std::time::Instant::now();
    let (accepted, seen) = cluster.push();
    assert!(!accepted, "{seen}");
    assert!(
        seen.contains("push rejected: checking it took longer than the hook's 2 s"),
        "{seen}"
    );
    // Killed at the bound (plus timeout's grace), not after the 30 s sleep.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(cluster.remote_tip(), None);
}

/// Issue 10, item 6: the rollout records are the leader's alone (it writes
/// them locally, never by a push); a push may not forge, rewrite or delete
/// them, and the tracked branch only moves forward: a force-push rewinding
/// it over the leader's revert commits is refused. Other branches and tags
/// are still created (and tags deleted) freely.
#[test]
fn pushes_to_the_rollout_records_and_rewinds_of_the_tracked_branch_are_refused() {
    let cluster = Cluster::new();
    for (key, value) in [
        ("receive.denyDeleteCurrent", "refuse"),
        ("receive.fsckObjects", "true"),
    ] {
        assert_eq!(bare_config(&cluster.bare, key), value, "{key}");
    }
    let work = cluster.work.path();
    cluster.work.write("README.md", "one\n");
    let first = cluster.work.commit("one");
    cluster.work.write("README.md", "two\n");
    let second = cluster.work.commit("two");
    let (accepted, seen) = cluster.push();
    assert!(accepted, "{seen}");

    let push = |args: &[&str]| {
        let output = git(work, args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let notes = || {
        git(
            &cluster.bare,
            &["rev-parse", "--verify", "-q", "refs/notes/flotilla"],
        )
        .stdout
    };
    let refused = |(accepted, seen): (bool, String), expected: &str| {
        assert!(!accepted, "refused:\n{seen}");
        assert!(seen.contains(expected), "{expected}:\n{seen}");
    };
    let notes_refusal = "flotilla: refusing to update refs/notes/flotilla: only the leader \
                         writes rollout records";
    // `init-repo` creates the records' ref, with no note yet (issue 12,
    // item 1: a clone told to fetch it then finds it); a repository made by
    // an older flotilla has none, which a push may not create either.
    assert!(!notes().is_empty(), "init-repo creates refs/notes/flotilla");
    git_ok(&cluster.bare, &["update-ref", "-d", "refs/notes/flotilla"]);

    // Creating the records from a clone.
    git_ok(
        work,
        &["notes", "--ref=flotilla", "add", "-m", "forged", &first],
    );
    refused(
        push(&["push", "cluster", "refs/notes/flotilla"]),
        notes_refusal,
    );
    assert!(notes().is_empty(), "no records created");

    // The leader's records, written in its repository: not rewritten...
    git_ok(
        &cluster.bare,
        &[
            "notes",
            "--ref=flotilla",
            "add",
            "-m",
            "rollout succeeded",
            &second,
        ],
    );
    let recorded = notes();
    git_ok(
        work,
        &[
            "fetch",
            "-q",
            "cluster",
            "+refs/notes/flotilla:refs/notes/flotilla",
        ],
    );
    git_ok(
        work,
        &[
            "notes",
            "--ref=flotilla",
            "add",
            "-f",
            "-m",
            "rollout failed",
            &second,
        ],
    );
    refused(
        push(&["push", "cluster", "refs/notes/flotilla"]),
        notes_refusal,
    );
    refused(
        push(&["push", "-f", "cluster", "refs/notes/flotilla"]),
        notes_refusal,
    );
    // ...nor deleted.
    refused(
        push(&["push", "cluster", ":refs/notes/flotilla"]),
        notes_refusal,
    );
    assert_eq!(notes(), recorded, "the records are unchanged");

    // A force-push rewinding main, or replacing its history, is refused.
    let rewind = "flotilla: refusing a non-fast-forward update of main";
    refused(
        push(&["push", "-f", "cluster", &format!("{first}:main")]),
        rewind,
    );
    git_ok(work, &["reset", "-q", "--hard", &first]);
    cluster.work.write("README.md", "rewritten\n");
    cluster.work.commit("rewritten");
    let (accepted, seen) = push(&["push", "-f", "cluster", "HEAD:main"]);
    refused((accepted, seen.clone()), rewind);
    assert!(
        seen.contains("hint: fetch and rebase (or merge) onto main"),
        "{seen}"
    );
    assert_eq!(cluster.remote_tip().as_deref(), Some(second.as_str()));

    // A fast-forward still lands; other branches and tags are not the hook's.
    git_ok(work, &["reset", "-q", "--hard", &second]);
    cluster.work.write("README.md", "three\n");
    let third = cluster.work.commit("three");
    let (accepted, seen) = cluster.push();
    assert!(accepted, "{seen}");
    assert_eq!(cluster.remote_tip().as_deref(), Some(third.as_str()));
    let (accepted, seen) = push(&["push", "cluster", &format!("{second}:refs/heads/wip")]);
    assert!(accepted, "{seen}");
    let (accepted, seen) = push(&["push", "-f", "cluster", &format!("{first}:refs/heads/wip")]);
    assert!(accepted, "other branches may be rewound: {seen}");
    let (accepted, seen) = push(&["push", "cluster", ":refs/heads/wip"]);
    assert!(accepted, "other branches may be deleted: {seen}");
    let (accepted, seen) = push(&["push", "cluster", &format!("{first}:refs/tags/v1")]);
    assert!(accepted, "{seen}");
    let (accepted, seen) = push(&["push", "cluster", ":refs/tags/v1"]);
    assert!(accepted, "{seen}");
}
