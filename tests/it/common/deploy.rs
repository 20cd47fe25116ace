//! A deployed cluster for end-to-end tests: the leader's bare repository
//! (made by `flotilla init-repo`, hooks and all), a work clone pushed to
//! with the real git CLI, and the `flotilla` binary running as the leader
//! against the shared testbed. Every wait polls with a deadline.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flotilla::reconcile::status::StatusReport;

use super::{ExclusiveCluster, TestCluster};

pub const FLOTILLA: &str = env!("CARGO_BIN_EXE_flotilla");

impl TestCluster {
    /// `docker` against a node's daemon, whatever it answers.
    pub fn try_docker(&self, node: &str, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.docker_socket(node)))
            .args(args)
            .output()
            .unwrap()
    }

    /// `docker` against a node's daemon; panics when it fails.
    pub fn docker(&self, node: &str, args: &[&str]) -> String {
        let output = self.try_docker(node, args);
        assert!(
            output.status.success(),
            "docker {args:?} on {node}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Managed containers of `name` on each of `nodes`: node -> (container
    /// name, state).
    pub fn containers(
        &self,
        name: &str,
        nodes: &[&str],
    ) -> BTreeMap<String, Vec<(String, String)>> {
        nodes
            .iter()
            .map(|node| {
                let listing = self.docker(
                    node,
                    &[
                        "ps",
                        "-a",
                        "--filter",
                        &format!("label=dev.flotilla.name={name}"),
                        "--format",
                        "{{.Names}} {{.State}}",
                    ],
                );
                let rows = listing
                    .lines()
                    .filter_map(|l| l.split_once(' '))
                    .map(|(n, s)| (n.to_string(), s.to_string()))
                    .collect();
                (node.to_string(), rows)
            })
            .collect()
    }

    /// Removes every container flotilla manages on every node: a clean
    /// slate for the next scenario.
    pub fn remove_managed_containers(&self) {
        for node in self.node_names() {
            let ids = self.docker(
                &node,
                &["ps", "-aq", "--filter", "label=dev.flotilla.managed=true"],
            );
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                self.docker(&node, &args);
            }
        }
    }
}

pub struct Cluster {
    pub testbed: &'static TestCluster,
    pub bare: PathBuf,
    pub work: PathBuf,
    pub dir: tempfile::TempDir,
    pub listen: SocketAddr,
    pub leader: Option<Child>,
    pub log: PathBuf,
    /// No other test uses the testbed while this scenario runs. The last
    /// field, so it is released after the leader is stopped and the rest
    /// dropped.
    _alone: ExclusiveCluster,
}

impl Cluster {
    /// A new bare repository with flotilla's hooks, a work clone holding the
    /// testbed's Node manifests and `cluster_yaml` (pushed), and no leader
    /// yet. Waits until no other test uses the testbed, then has it alone
    /// while the returned value lives. Managed containers left by an
    /// earlier scenario are removed.
    pub fn new(cluster_yaml: &str) -> Cluster {
        let alone = super::exclusive_cluster();
        let testbed = alone.cluster;
        testbed.remove_managed_containers();
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("cluster.git");
        let work = dir.path().join("work");
        let init = Command::new(FLOTILLA)
            .arg("init-repo")
            .arg(&bare)
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "init-repo: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        // The test images may be pruned from a node (revisionHistoryLimit)
        // and are then shipped from the leader's Docker: the operator's
        // allow-list names them (docs/security.md).
        let allow = Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["config", "flotilla.shipImages", "flotilla-test:*"])
            .output()
            .unwrap();
        assert!(allow.status.success(), "git config flotilla.shipImages");
        std::fs::create_dir_all(&work).unwrap();
        let cluster = Cluster {
            testbed,
            bare: bare.clone(),
            work,
            listen: free_port(),
            leader: None,
            log: dir.path().join("leader.log"),
            dir,
            _alone: alone,
        };
        cluster.git(&["init", "-q", "-b", "main"]);
        cluster.git(&["remote", "add", "origin", bare.to_str().unwrap()]);
        let nodes: String = super::DECLARED_NODES
            .iter()
            .map(|name| testbed.node_yaml(name, ""))
            .collect();
        std::fs::write(cluster.work.join("nodes.yaml"), nodes).unwrap();
        cluster.push(
            "cluster.yaml",
            Some(cluster_yaml),
            "Nodes and cluster settings",
        );
        cluster
    }

    /// The `flotilla` binary with the testbed's known_hosts.
    pub fn flotilla(&self) -> Command {
        let mut command = Command::new(FLOTILLA);
        command
            .env("FLOTILLA_KNOWN_HOSTS", self.testbed.known_hosts())
            .env("FLOTILLA_LOCK_DIR", self.lock_dir());
        command
    }

    /// The node locks of this scenario's processes (see docs/leader.md).
    pub fn lock_dir(&self) -> PathBuf {
        self.dir.path().join("locks")
    }

    /// `git` in the work clone; panics when it fails.
    pub fn git(&self, args: &[&str]) {
        git_in(&self.work, args);
    }
}

/// `git` in `dir` with an identity of its own; its standard output, or a
/// panic when it fails.
pub fn git_in(dir: &std::path::Path, args: &[&str]) -> String {
    {
        let output = Command::new("git")
            .current_dir(dir)
            .args([
                "-c",
                "user.name=e2e",
                "-c",
                "user.email=e2e@flotilla.invalid",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Cluster {
    /// Writes (or, with `None`, deletes) a file, commits and pushes: returns
    /// when `git push` does.
    pub fn push(&self, path: &str, text: Option<&str>, message: &str) -> Instant {
        let file = self.work.join(path);
        match text {
            Some(text) => {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, text).unwrap();
            }
            None => std::fs::remove_file(&file).unwrap(),
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", message]);
        self.git(&["push", "-q", "origin", "main"]);
        Instant::now()
    }

    /// Commits `text` at `path` and pushes with `-o flotilla.wait`: returns
    /// what the push printed (the hooks' output) once the rollout ended.
    pub fn push_and_wait(&self, path: &str, text: &str, message: &str) -> String {
        std::fs::write(self.work.join(path), text).unwrap();
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", message]);
        let output = Command::new("git")
            .current_dir(&self.work)
            .args(["push", "-o", "flotilla.wait", "origin", "main"])
            .env("FLOTILLA_KNOWN_HOSTS", self.testbed.known_hosts())
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "git push: {printed}");
        printed
    }

    pub fn start_leader(&mut self) {
        self.start_leader_with(&[]);
    }

    /// The leader with more arguments (`--age-identity FILE`, ...).
    pub fn start_leader_with(&mut self, extra: &[&std::ffi::OsStr]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(FLOTILLA)
            .args(["leader", "--repo"])
            .arg(&self.bare)
            .args(["--listen", &self.listen.to_string()])
            .args(extra)
            .env("FLOTILLA_KNOWN_HOSTS", self.testbed.known_hosts())
            .env("FLOTILLA_LOCK_DIR", self.lock_dir())
            .env("FLOTILLA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.leader = Some(child);
        wait_for("the leader's /healthz", Duration::from_secs(20), || {
            rt().block_on(flotilla::api::get(self.listen, "/healthz"))
                .ok()
        });
    }

    /// SIGTERM to the leader; its exit status once it has stopped.
    pub fn stop_leader(&mut self) -> std::process::ExitStatus {
        let mut child = self.leader.take().expect("a leader runs");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        wait_for("the leader to exit", Duration::from_secs(30), || {
            child.try_wait().unwrap()
        })
    }

    pub fn kill_leader(&mut self) {
        if let Some(mut child) = self.leader.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn status(&self) -> Option<StatusReport> {
        rt().block_on(flotilla::api::fetch_status(self.listen)).ok()
    }

    /// Waits until the status shows `name` with `ready` ready replicas of
    /// the current revision and nothing else, in a status computed at the
    /// branch's tip as it is now (so a status from before the last push
    /// never passes).
    pub fn wait_ready(&self, name: &str, ready: u32, within: Duration) -> StatusReport {
        let tip = git_in(&self.bare, &["rev-parse", "main"])
            .trim()
            .to_string();
        wait_for(&format!("{ready} ready replicas of {name}"), within, || {
            let status = self.status()?;
            let object = status.objects.iter().find(|o| o.name == name)?;
            (status.commit.as_deref() == Some(tip.as_str())
                && object.ready_replicas == ready
                && object.desired_replicas == ready
                && object.total_replicas == ready
                && object.rollout == "complete")
                .then_some(status)
        })
    }

    pub fn leader_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_leader();
        if std::thread::panicking() {
            eprintln!("---- leader log\n{}", self.leader_log());
        }
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn http_get(address: &str, port: u16) -> Option<String> {
    let output = Command::new("curl")
        .args(["-fsS", "--max-time", "2"])
        .arg(format!("http://{address}:{port}/"))
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
