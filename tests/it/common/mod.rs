//! The testbed as the integration tests see it: `TestCluster` brings
//! `scripts/testbed up 3` once per `cargo test` run (the first test that
//! asks for it, in the one test binary) and tears it down when the binary
//! exits.
//!
//! Sharing: the `node` tests run in parallel on the testbed
//! ([`shared_cluster`]), each keeping to its own node where it changes
//! something. An end-to-end scenario ([`deploy::Cluster`]) runs a leader
//! over every node, removes every managed container and takes nodes down,
//! so it has the testbed to itself: it waits until no other test holds it,
//! and the others wait for it.
//!
//! Teardown: the first call to [`cluster`] registers a C `atexit` handler
//! that runs `scripts/testbed down`. Rust's test harness ends the process
//! with `exit()` whether tests passed, failed or panicked, and `exit()` runs
//! `atexit` handlers, so the testbed goes away in every ordinary outcome
//! while tests stay independent `#[test]`s that run in parallel and report
//! separately. If the process is killed outright (SIGKILL), the next `up`
//! repairs the half-built testbed and the next `down` removes it.
//! Set `FLOTILLA_TESTBED_KEEP=1` to leave it up for debugging.

pub mod deploy;

use std::collections::HashMap;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use flotilla::manifest::model::{Capacity, Node, NodeSpec, ObjectMeta, Transport};
use flotilla::node::SshOptions;

/// Nodes every test binary gets. Scenarios declare the first
/// [`DECLARED_NODES`]; the last is there for one to add by a commit.
pub const NODE_COUNT: usize = 4;

/// The nodes a scenario's repository declares at first.
pub const DECLARED_NODES: [&str; 3] = ["n1", "n2", "n3"];

pub struct TestCluster {
    env: HashMap<String, String>,
}

static CLUSTER: OnceLock<TestCluster> = OnceLock::new();

/// Read: a test sharing the testbed; write: a test alone on it.
static IN_USE: RwLock<()> = RwLock::const_new(());

/// The testbed, held by a test that shares it with the other `node` tests;
/// end-to-end scenarios wait until it is dropped.
pub struct SharedCluster {
    cluster: &'static TestCluster,
    _in_use: RwLockReadGuard<'static, ()>,
}

impl Deref for SharedCluster {
    type Target = TestCluster;

    fn deref(&self) -> &TestCluster {
        self.cluster
    }
}

/// The testbed for a test that shares it (brought up on first use), once no
/// end-to-end scenario holds it. Take it before any other lock a test
/// holds, so that the lock order is the same in every test.
pub async fn shared_cluster() -> SharedCluster {
    let in_use = IN_USE.read().await;
    SharedCluster {
        cluster: cluster(),
        _in_use: in_use,
    }
}

/// The testbed for a test that must be alone on it, once no other test
/// holds it. Blocks the thread: for plain `#[test]`s, not async ones.
pub struct ExclusiveCluster {
    cluster: &'static TestCluster,
    _in_use: RwLockWriteGuard<'static, ()>,
}

impl Deref for ExclusiveCluster {
    type Target = TestCluster;

    fn deref(&self) -> &TestCluster {
        self.cluster
    }
}

pub fn exclusive_cluster() -> ExclusiveCluster {
    let in_use = IN_USE.blocking_write();
    ExclusiveCluster {
        cluster: cluster(),
        _in_use: in_use,
    }
}

/// [`exclusive_cluster`] for async tests: waits without blocking the runtime.
pub async fn exclusive_cluster_async() -> ExclusiveCluster {
    let in_use = IN_USE.write().await;
    ExclusiveCluster {
        cluster: cluster(),
        _in_use: in_use,
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed")
}

extern "C" fn tear_down_at_exit() {
    if std::env::var_os("FLOTILLA_TESTBED_KEEP").is_some() {
        return;
    }
    let _ = Command::new(script()).arg("down").status();
}

/// The testbed, brought up on first use. Tests reach it through
/// [`shared_cluster`] or [`exclusive_cluster`].
fn cluster() -> &'static TestCluster {
    CLUSTER.get_or_init(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert!(
            euid == 0,
            "the testbed tests need root (network namespaces, sshd, dockerd): run them as root, \
             e.g. `sudo -E cargo test --test it node::`"
        );
        let output = Command::new(script())
            .args(["up", &NODE_COUNT.to_string()])
            .output()
            .expect("scripts/testbed runs");
        // Registered even when `up` failed half-way, so that what it built is removed.
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(tear_down_at_exit);
        }
        assert!(
            output.status.success(),
            "scripts/testbed up {NODE_COUNT} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&output.stderr).trim_end());
        let env_output = Command::new(script())
            .arg("env")
            .output()
            .expect("scripts/testbed env runs");
        TestCluster {
            env: parse_env(&String::from_utf8_lossy(&env_output.stdout)),
        }
    })
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl TestCluster {
    /// A value of the testbed's env file.
    pub fn env(&self, key: &str) -> String {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("testbed env has no {key}"))
            .clone()
    }

    pub fn node_names(&self) -> Vec<String> {
        self.env("TESTBED_NODES")
            .split(',')
            .map(str::to_string)
            .collect()
    }

    pub fn address(&self, node: &str) -> String {
        self.env(&format!("TESTBED_NODE_{node}_ADDRESS"))
    }

    pub fn docker_socket(&self, node: &str) -> String {
        self.env(&format!("TESTBED_NODE_{node}_DOCKER_SOCKET"))
    }

    /// The node's host public key file (`ssh-ed25519 AAAA… comment`).
    pub fn host_key_file(&self, node: &str) -> PathBuf {
        self.env(&format!("TESTBED_NODE_{node}_HOST_KEY")).into()
    }

    pub fn known_hosts(&self) -> PathBuf {
        self.env("TESTBED_KNOWN_HOSTS").into()
    }

    pub fn identity_file(&self) -> PathBuf {
        self.env("TESTBED_IDENTITY_FILE").into()
    }

    pub fn leader_docker_socket(&self) -> String {
        self.env("TESTBED_LEADER_DOCKER_SOCKET")
    }

    /// `flotilla-test:1`, on every node.
    pub fn image(&self) -> String {
        self.env("TESTBED_IMAGE")
    }

    /// `flotilla-test:2`, on every node; differs from 1 by one file.
    pub fn upgrade_image(&self) -> String {
        self.env("TESTBED_IMAGE_UPGRADE")
    }

    /// The rootfs tar the test images were imported from.
    pub fn image_rootfs(&self) -> PathBuf {
        self.env("TESTBED_IMAGE_ROOTFS").into()
    }

    /// The Node manifest of one testbed node.
    pub fn node(&self, name: &str) -> Node {
        Node {
            meta: ObjectMeta {
                name: name.to_string(),
                ..Default::default()
            },
            spec: NodeSpec {
                address: self.address(name),
                port: 22,
                user: "root".to_string(),
                identity_file: Some(self.identity_file().display().to_string()),
                docker_socket: self.docker_socket(name),
                transport: Transport::Ssh,
                capacity: Capacity::default(),
                taints: Vec::new(),
                unschedulable: false,
            },
        }
    }

    /// The Node manifest of one testbed node, as YAML (a document with its
    /// `---`), with `extra` appended to its spec (indented by two).
    pub fn node_yaml(&self, name: &str, extra: &str) -> String {
        format!(
            "---\napiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  \
             address: {}\n  port: 22\n  user: root\n  identityFile: {}\n  dockerSocket: {}\n{extra}",
            self.address(name),
            self.identity_file().display(),
            self.docker_socket(name),
        )
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.node_names().iter().map(|n| self.node(n)).collect()
    }

    /// SSH options for the testbed: its known_hosts, short timeouts.
    pub fn ssh_options(&self) -> SshOptions {
        SshOptions {
            known_hosts: self.known_hosts(),
            connect_timeout: Duration::from_secs(3),
            reconnect_backoff_min: Duration::from_millis(200),
            reconnect_backoff_max: Duration::from_secs(2),
            ..SshOptions::default()
        }
    }

    /// Runs a command inside a node's network namespace.
    pub fn run_in_node(&self, node: &str, command: &[&str]) -> Output {
        Command::new(script())
            .arg("exec")
            .arg(node)
            .args(command)
            .output()
            .expect("scripts/testbed exec runs")
    }

    fn testbed(&self, args: &[&str]) {
        let output = Command::new(script())
            .args(args)
            .output()
            .expect("scripts/testbed runs");
        assert!(
            output.status.success(),
            "scripts/testbed {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Brings a node back after a test that took it down: its link up and
    /// its sshd running. Never panics (it runs from `Drop`, also while a
    /// failed test unwinds); a failure is printed.
    pub fn restore_node(&self, node: &str) {
        let link = Command::new(script())
            .args(["exec", node, "ip", "link", "set", "eth0", "up"])
            .output();
        let sshd = Command::new(script()).args(["start-sshd", node]).output();
        for (what, output) in [("link up", link), ("start-sshd", sshd)] {
            match output {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "restoring {node}: {what} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ),
                Err(e) => eprintln!("restoring {node}: {what}: {e}"),
            }
        }
    }

    /// Stops the node's sshd and every session it serves.
    pub fn stop_sshd(&self, node: &str) {
        self.testbed(&["stop-sshd", node]);
    }

    pub fn start_sshd(&self, node: &str) {
        self.testbed(&["start-sshd", node]);
    }

    pub fn stop_dockerd(&self, node: &str) {
        self.testbed(&["stop-dockerd", node]);
    }

    pub fn start_dockerd(&self, node: &str) {
        self.testbed(&["start-dockerd", node]);
    }

    /// Runs the docker CLI against the leader's Docker.
    pub fn leader_docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.leader_docker_socket()))
            .args(args)
            .output()
            .expect("docker CLI runs")
    }
}
