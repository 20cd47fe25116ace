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
