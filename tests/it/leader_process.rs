//! The `flotilla leader` process itself: SIGTERM stops it cleanly and frees
//! its locks, and an apply from another clone of its repository is refused
//! while it runs. The one node is a local Docker socket that does not
//! exist: the leader reconciles (finding the node unreachable) without any
//! Docker daemon, which is all these tests need.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::git::{git_ok, WorkTree};
use flotilla::leader::lock;

const FLOTILLA: &str = env!("CARGO_BIN_EXE_flotilla");

const MANIFESTS: &str = "\
apiVersion: flotilla.dev/v1
kind: Cluster
metadata:
  name: solo
spec:
  resyncSeconds: 1
---
apiVersion: flotilla.dev/v1
kind: Node
metadata:
  name: local-1
spec:
  transport: local
  dockerSocket: /nonexistent/flotilla-test/docker.sock
";

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
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

struct Setup {
    dir: tempfile::TempDir,
    bare: PathBuf,
    work: WorkTree,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("cluster.git");
        let init = Command::new(FLOTILLA)
            .arg("init-repo")
            .arg(&bare)
            .output()
            .unwrap();
        assert!(init.status.success(), "{}", text(&init.stderr));
        // `transport: local` needs the operator's consent (docs/security.md).
        git_ok(
            dir.path(),
            &[
                "--git-dir",
                bare.to_str().unwrap(),
                "config",
                "flotilla.allowLocalTransport",
                "true",
            ],
        );
        let work = WorkTree::new();
        // An apply from the work clone reads the clone's settings: the same
        // operator consents there.
        git_ok(
            work.path(),
            &["config", "flotilla.allowLocalTransport", "true"],
        );
        work.write("cluster.yaml", MANIFESTS)
            .commit("one local node");
        git_ok(
            work.path(),
            &["push", "-q", bare.to_str().unwrap(), "HEAD:main"],
        );
        Setup { dir, bare, work }
    }

    fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }

    fn flotilla(&self, args: &[&str]) -> Command {
        let mut command = Command::new(FLOTILLA);
        command
            .args(args)
            .env("FLOTILLA_LOCK_DIR", self.lock_dir())
            .stdin(Stdio::null());
        command
    }

    fn apply(&self, repo: &Path) -> Output {
        self.flotilla(&["apply", "--yes", "--repo"])
            .arg(repo)
            .output()
            .unwrap()
    }

    /// Declares a Deployment on the one node (which never answers, so its
    /// rollout never finishes) and pushes it.
    fn push_web(&self) {
        self.work.write("web.yaml", WEB).commit("web");
        git_ok(
            self.work.path(),
            &["push", "-q", self.bare.to_str().unwrap(), "HEAD:main"],
        );
    }

    /// The bare repository as commands name it (absolute, canonical).
    fn bare_named(&self) -> String {
        std::fs::canonicalize(&self.bare)
            .unwrap()
            .display()
            .to_string()
    }

    /// A leader started without --listen, once its lock names it.
    fn start_leader_without_listen(&self) -> Leader {
        let leader = Leader(
            self.flotilla(&["leader", "--repo"])
                .arg(&self.bare)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock::current_holder(&self.bare)
            .unwrap()
            .is_none_or(|h| h.role != "leader")
        {
            assert!(Instant::now() < deadline, "the leader never took the lock");
            std::thread::sleep(Duration::from_millis(20));
        }
        leader
    }

    /// A leader on the bare repository, once it has reconciled.
    fn start_leader(&self) -> Leader {
        let leader = Leader(
            self.flotilla(&["leader", "--listen", "127.0.0.1:0", "--repo"])
                .arg(&self.bare)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        loop {
            let api = lock::current_holder(&self.bare)
                .unwrap()
                .and_then(|h| h.api);
            if let Some(addr) = api {
                if rt
                    .block_on(flotilla::api::get(addr, "/healthz"))
                    .is_ok_and(|body| body.starts_with("ok: the last reconcile completed"))
                {
                    return leader;
                }
            }
            assert!(Instant::now() < deadline, "the leader never reconciled");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The leader process; killed, if still running, when dropped.
struct Leader(Child);

impl Drop for Leader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the leader did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_the_leader_cleanly_and_releases_its_locks() {
    let setup = Setup::new();
    let mut leader = setup.start_leader();

    let refused = setup.apply(&setup.bare);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
    assert!(
        text(&refused.stderr).contains(&format!(
            "the cluster is being changed by leader (pid {} on ",
            leader.0.id()
        )),
        "{}",
        text(&refused.stderr)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &leader.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_exit(&mut leader.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert_eq!(lock::current_holder(&setup.bare).unwrap(), None);

    // The locks are free: an apply takes them. Its one node does not
    // answer, so it has nothing to do that it knows of, and says so (3).
    let apply = setup.apply(&setup.bare);
    assert_eq!(
        apply.status.code(),
        Some(3),
        "{}{}",
        text(&apply.stdout),
        text(&apply.stderr)
    );
}

/// Issue 12, item 2: `apply` with every node unreachable said "No changes:
/// the cluster already matches" and exited 0 (JSON: `"applied": false`,
/// exit 0). The state is unknown, not matching: it says which node and
/// exits 3, and the JSON says so in `unknown`.
#[test]
fn apply_with_its_node_unreachable_says_the_state_is_unknown_and_exits_3() {
    let setup = Setup::new();
    let apply = setup.apply(&setup.bare);
    let shown = text(&apply.stdout);
    assert_eq!(
        apply.status.code(),
        Some(3),
        "{shown}{}",
        text(&apply.stderr)
    );
    assert!(!shown.contains("No changes:"), "{shown}");
    assert!(!shown.contains("already matches"), "{shown}");
    assert!(
        shown.contains("Nothing to do on the nodes observed, but the cluster may not match ")
            && shown.contains(": the state of node local-1 (")
            && shown.contains(") is unknown; apply again once it answers."),
        "{shown}"
    );

    let json = setup
        .flotilla(&["apply", "--yes", "-o", "json", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(3), "{}", text(&json.stderr));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
    assert_eq!(json["applied"], false);
    assert_eq!(json["steps"], 0);
    let nodes = json["unknown"]["nodes"].as_array().expect("unknown.nodes");
    assert_eq!(nodes.len(), 1, "{json}");
    assert_eq!(nodes[0]["name"], "local-1");
    assert!(
        nodes[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{json}"
    );
}

#[test]
fn apply_from_a_clone_is_refused_while_the_leader_acts_on_its_nodes() {
    let setup = Setup::new();
    let mut leader = setup.start_leader();

    // The work clone has a repository lock of its own; the node's is shared.
    let refused = setup.apply(setup.work.path());
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the cluster is being changed by leader (pid {} on ",
            leader.0.id()
        )) && stderr.contains(
            "which holds node local-1 (local /nonexistent/flotilla-test/docker.sock); lock "
        ),
        "{stderr}"
    );

    leader.0.kill().unwrap();
    leader.0.wait().unwrap();
    // The leader died without a word: the OS released its locks (the apply
    // runs, and finds its one node unreachable: 3, not a refusal).
    let apply = setup.apply(setup.work.path());
    assert_eq!(apply.status.code(), Some(3), "{}", text(&apply.stderr));
}

/// Runs `command` to its end, failing the test if it takes longer than
/// `within` (the command is killed then): (exit code, stdout, stderr).
fn run_within(command: &mut Command, within: Duration) -> (Option<i32>, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running after {within:?}:\n{}{}",
                text(&output.stdout),
                text(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

/// Issue 12, item 4: without a leader, `rollout status` waited its whole
/// timeout (900 s) printing `node is unreachable` several times a second.
/// It observes once, and as the rollout is not done and nothing will carry
/// it on, says so and exits 3 (unknown) at once; `--output json` (item 10)
/// prints one document and nothing else.
#[test]
fn rollout_status_without_a_leader_says_so_and_exits_3_at_once() {
    let setup = Setup::new();
    setup.push_web();
    let no_leader = format!(
        "no leader is running on {repo}: nothing rolls this out until `flotilla leader --repo {repo}` (or `flotilla apply`) runs",
        repo = setup.bare_named()
    );

    let (code, stdout, stderr) = run_within(
        setup
            .flotilla(&["rollout", "status", "deployment/web", "--repo"])
            .arg(&setup.bare),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert_eq!(stdout, format!("unknown: {no_leader}\n"), "{stderr}");
    assert!(
        stderr.matches("node is unreachable").count() <= 1,
        "{stderr}"
    );

    let (code, stdout, stderr) = run_within(
        setup
            .flotilla(&["rollout", "status", "--output", "json", "--repo"])
            .arg(&setup.bare),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(report["outcome"], "unknown", "{report}");
    assert_eq!(report["reason"], no_leader.as_str(), "{report}");
    let tip = git_ok(&setup.bare, &["rev-parse", "main"]);
    assert_eq!(report["commit"], tip.as_str(), "{report}");
    let objects = report["objects"].as_array().expect("objects");
    assert_eq!(objects.len(), 1, "{report}");
    assert_eq!(
        (
            &objects[0]["kind"],
            &objects[0]["name"],
            &objects[0]["outcome"]
        ),
        (
            &serde_json::json!("Deployment"),
            &serde_json::json!("web"),
            &serde_json::json!("unfinished")
        ),
        "{report}"
    );
    assert_eq!(objects[0]["replicas"]["desired"], 1, "{report}");
}

/// Issue 12, item 4: a leader that goes away while `rollout status` waits
/// on it is noticed within seconds (not at the timeout), and the node the
/// command observes itself (the leader serves no endpoints here) is
/// reported unreachable once, not at every observation.
#[test]
fn rollout_status_notices_the_leader_leaving_and_warns_once_per_node() {
    let setup = Setup::new();
    setup.push_web();
    let mut leader = setup.start_leader_without_listen();
    let waiting = setup
        .flotilla(&["rollout", "status", "deployment/web", "--repo"])
        .arg(&setup.bare)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Several observations while the leader runs.
    std::thread::sleep(Duration::from_secs(3));
    leader.0.kill().unwrap();
    leader.0.wait().unwrap();
    let left = Instant::now();
    let mut waiting = waiting;
    let status = loop {
        if let Some(status) = waiting.try_wait().unwrap() {
            break status;
        }
        if left.elapsed() > Duration::from_secs(10) {
            let _ = waiting.kill();
            panic!("rollout status still waits 10 s after the leader left");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = waiting.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(status.code(), Some(3), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("Waiting for deployment \"web\" rollout to finish: "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with(&format!(
            "unknown: no leader is running on {}: nothing rolls this out until `flotilla leader --repo {}` (or `flotilla apply`) runs\n",
            setup.bare_named(),
            setup.bare_named()
        )),
        "{stdout}"
    );
    assert_eq!(
        stderr.matches("node is unreachable").count(),
        1,
        "one warning for the one node:\n{stderr}"
    );
}

/// Issue 12, item 4: `status` says where its figures come from, and
/// `leader --check` (which the post-receive hook runs) whether a leader
/// runs; while one runs and answers, `rollout status` waits on it (here
/// until its timeout: the node never answers).
#[test]
fn status_and_leader_check_say_whether_the_leader_runs() {
    let setup = Setup::new();
    setup.push_web();
    let mut leader = setup.start_leader();
    let pid = leader.0.id();
    let api = lock::current_holder(&setup.bare)
        .unwrap()
        .and_then(|h| h.api)
        .expect("the leader serves");

    // The post-receive hook says "the leader deploys it" only now.
    setup
        .work
        .write("web.yaml", &WEB.replace("replicas: 1", "replicas: 2"));
    setup.work.commit("web: two replicas");
    let push = Command::new("git")
        .current_dir(setup.work.path())
        .args(["push", setup.bare.to_str().unwrap(), "HEAD:main"])
        .env("FLOTILLA_LOCK_DIR", setup.lock_dir())
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", text(&push.stderr));
    assert!(
        text(&push.stderr).contains("; the leader deploys it"),
        "{}",
        text(&push.stderr)
    );
    // So does a rollback in the leader's repository.
    let rollback = setup
        .flotilla(&["rollback", "deployment/web", "--to", "main~1", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    assert!(
        text(&rollback.stdout).ends_with("\nthe leader deploys it\n"),
        "{}{}",
        text(&rollback.stdout),
        text(&rollback.stderr)
    );

    let check = setup
        .flotilla(&["leader", "--check", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    assert!(
        text(&check.stdout).starts_with(&format!(
            "a leader is running on {}: leader (pid {pid} on ",
            setup.bare_named()
        )) && text(&check.stdout).ends_with(&format!("answering at http://{api}\n")),
        "{}",
        text(&check.stdout)
    );
    let status = setup
        .flotilla(&["status", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    assert_eq!(
        text(&status.stdout).lines().next(),
        Some(format!("From the leader (pid {pid}, http://{api})").as_str()),
        "{}",
        text(&status.stdout)
    );
    assert!(
        text(&status.stdout).contains("Deployment default/web "),
        "{}",
        text(&status.stdout)
    );
    let json = setup
        .flotilla(&["status", "--output", "json", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["source"]["from"], "leader", "{report}");
    assert_eq!(report["source"]["pid"], pid, "{report}");
    // The node never answers: every replica unknown, not progressing.
    assert_eq!(report["objects"][0]["rollout"], "unknown", "{report}");

    let (code, stdout, _) = run_within(
        setup
            .flotilla(&["rollout", "status", "--timeout", "2", "--repo"])
            .arg(&setup.bare),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("error: timed out after 2s waiting for the rollout of "),
        "{stdout}"
    );

    // `-o flotilla.wait=2s` bounds a push's wait the same way, so a CI push
    // never hangs on nodes that do not answer; a bad value is said, not
    // waited on. The push itself is in either way.
    for (option, said) in [
        (
            "flotilla.wait=2s",
            "did not succeed (the push itself is in)",
        ),
        (
            "flotilla.wait=soon",
            "-o flotilla.wait=soon is not a duration",
        ),
    ] {
        // On top of the rollback committed above.
        for args in [
            &["fetch", "-q", setup.bare.to_str().unwrap(), "main"][..],
            &["reset", "-q", "--hard", "FETCH_HEAD"][..],
        ] {
            let git = Command::new("git")
                .current_dir(setup.work.path())
                .args(args)
                .output()
                .unwrap();
            assert!(git.status.success(), "{}", text(&git.stderr));
        }
        setup
            .work
            .write("web.yaml", &WEB.replace("replicas: 1", "replicas: 3"));
        setup.work.commit(&format!("web: pushed with {option}"));
        let (code, _, stderr) = run_within(
            Command::new("git")
                .current_dir(setup.work.path())
                .args([
                    "push",
                    "-o",
                    option,
                    setup.bare.to_str().unwrap(),
                    "HEAD:main",
                ])
                .env("FLOTILLA_LOCK_DIR", setup.lock_dir()),
            Duration::from_secs(30),
        );
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stderr.contains(said), "{option}: {stderr}");
    }

    leader.0.kill().unwrap();
    leader.0.wait().unwrap();
    let check = setup
        .flotilla(&["leader", "--check", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(3), "{}", text(&check.stdout));
    assert_eq!(
        text(&check.stdout),
        format!(
            "no leader is running on {repo}: nothing deploys new commits until `flotilla leader --repo {repo}` (or `flotilla apply`) runs\n",
            repo = setup.bare_named()
        )
    );
    let status = setup
        .flotilla(&["status", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    assert_eq!(
        text(&status.stdout).lines().next(),
        Some(
            format!(
                "Observed by this command: no leader is running on {}",
                setup.bare_named()
            )
            .as_str()
        ),
        "{}",
        text(&status.stdout)
    );
}

/// Issue 12, item 4: a lock that names a leader whose address does not
/// answer (on another machine, or hung) is no running leader: said so,
/// and `rollout status` does not wait on it.
#[test]
fn a_leader_that_does_not_answer_is_named_and_not_waited_on() {
    let setup = Setup::new();
    setup.push_web();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let _held = lock::acquire_with_api(&setup.bare, "leader", Some(closed)).unwrap();

    let check = setup
        .flotilla(&["leader", "--check", "--repo"])
        .arg(&setup.bare)
        .output()
        .unwrap();
    let said = text(&check.stdout);
    assert_eq!(check.status.code(), Some(3), "{said}");
    assert!(
        said.starts_with(&format!(
            "the leader of {}, leader (pid {} on ",
            setup.bare_named(),
            std::process::id()
        )) && said.contains(&format!("does not answer at http://{closed} ("))
            && said.contains("it may run on another machine, or be hung: nothing deploys new commits until it answers again, or is stopped and `flotilla leader --repo "),
        "{said}"
    );
    let (code, stdout, stderr) = run_within(
        setup
            .flotilla(&["rollout", "status", "--repo"])
            .arg(&setup.bare),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(3), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("does not answer at http://{closed} (")),
        "{stdout}"
    );
}

/// Issue 12 (review of item 4): in a clone on the leader's host, the
/// clone's own lock names no leader, and `rollout status`, `leader --check`
/// and `status` said "no leader is running" and suggested starting a second
/// one (which would only wait for the first). The leader holds the lock of
/// every node it acts on: found by it, it is named with its repository.
/// Without it, a clone is told the leader may run on the host of its
/// remote, and `rollout status` follows the rollout from the nodes until
/// its timeout instead of stopping at once.
#[test]
fn in_a_clone_the_leader_is_found_by_the_lock_of_its_nodes() {
    let setup = Setup::new();
    setup.push_web();
    let clone = setup.dir.path().join("clone");
    git_ok(
        setup.dir.path(),
        &[
            "clone",
            "-q",
            setup.bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let clone_named = std::fs::canonicalize(&clone).unwrap().display().to_string();
    let url = git_ok(&clone, &["config", "remote.origin.url"]);
    // Observing from the clone reads the clone's settings (docs/security.md).
    git_ok(&clone, &["config", "flotilla.allowLocalTransport", "true"]);

    let leader = setup.start_leader();
    let pid = leader.0.id();
    let api = lock::current_holder(&setup.bare)
        .unwrap()
        .and_then(|h| h.api)
        .expect("the leader serves");
    let check = setup
        .flotilla(&["leader", "--check", "--repo"])
        .arg(&clone)
        .output()
        .unwrap();
    let said = text(&check.stdout);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{said}{}",
        text(&check.stderr)
    );
    assert!(
        said.starts_with(&format!(
            "the leader of {} is running: leader (pid {pid} on ",
            setup.bare_named()
        )) && said.ends_with(&format!(
            ", holding the lock of node local-1 that {clone_named} declares, answering at http://{api}\n"
        )),
        "{said}"
    );
    let status = setup
        .flotilla(&["status", "--repo"])
        .arg(&clone)
        .output()
        .unwrap();
    assert_eq!(
        text(&status.stdout).lines().next(),
        Some(
            format!(
                "From the leader of {} (pid {pid}, http://{api})",
                setup.bare_named()
            )
            .as_str()
        ),
        "{}{}",
        text(&status.stdout),
        text(&status.stderr)
    );
    // Waits on the leader (until its timeout: the node never answers).
    let (code, stdout, stderr) = run_within(
        setup
            .flotilla(&["rollout", "status", "--timeout", "2", "--repo"])
            .arg(&clone),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("error: timed out after 2s waiting for the rollout of "),
        "{stdout}"
    );
    assert!(!stdout.contains("no leader"), "{stdout}");
    drop(leader);

    // No leader on this machine: it may run where the remote is.
    let elsewhere = format!(
        "no leader found on this machine for {clone_named}: the leader may run on the host of {url}"
    );
    let check = setup
        .flotilla(&["leader", "--check", "--repo"])
        .arg(&clone)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(3));
    assert_eq!(text(&check.stdout), format!("{elsewhere}\n"));
    let status = setup
        .flotilla(&["status", "--repo"])
        .arg(&clone)
        .output()
        .unwrap();
    assert_eq!(
        text(&status.stdout).lines().next(),
        Some(format!("Observed by this command: {elsewhere}").as_str()),
        "{}",
        text(&status.stderr)
    );
    let started = Instant::now();
    let (code, stdout, stderr) = run_within(
        setup
            .flotilla(&["rollout", "status", "--timeout", "3", "--repo"])
            .arg(&clone),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "it followed until its timeout"
    );
    assert_eq!(
        stderr
            .matches(&format!(
                "note: {elsewhere}; following the rollout by observing its nodes from here \
                 (for up to 3s, --timeout)\n"
            ))
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stdout.starts_with("Waiting for deployment \"web\" rollout to finish: ")
            && stdout.contains("\nerror: timed out after 3s waiting for the rollout of "),
        "{stdout}"
    );
    assert!(!stdout.contains("flotilla leader --repo"), "{stdout}");
}
