//! `scripts/demo`, the README's first command, run as a newcomer runs it:
//! once, then again without `scripts/demo down` between, after a push of
//! their own and a "reboot" (the leader and the testbed gone, the demo's
//! repository kept). Issue 12, item 11: the second run used to be refused
//! as a non-fast-forward push by the repository kept from the first.
//!
//! The demo brings up a testbed of its own (name and subnet below, so the
//! shared one is untouched) and uses the binary this test run built. It
//! holds the shared testbed exclusively meanwhile, so that its load does
//! not slow the scenarios timed against the shared one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::deploy::{free_port, git_in, FLOTILLA};
use crate::common::exclusive_cluster;

const TESTBED_NAME: &str = "fdemo";
const TESTBED_SUBNET: &str = "10.226.0";

struct Demo {
    dir: tempfile::TempDir,
    listen: String,
}

impl Demo {
    fn command(&self, arg: &str) -> Command {
        let mut command = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo"));
        command
            .arg(arg)
            .env("FLOTILLA_BIN", FLOTILLA)
            .env("DEMO_DIR", self.dir.path())
            .env("DEMO_LISTEN", &self.listen)
            .env("DEMO_TIMEOUT", "240")
            .env("TESTBED_NAME", TESTBED_NAME)
            .env("TESTBED_SUBNET", TESTBED_SUBNET);
        command
    }

    /// Runs `scripts/demo`; its output, or a panic with it.
    fn up(&self, which: &str) -> String {
        let output = self.command("up").output().expect("scripts/demo runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "{which} run of scripts/demo failed:\n{text}"
        );
        text
    }

    fn bare(&self) -> PathBuf {
        self.dir.path().join("cluster.git")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn tip(&self) -> String {
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(self.bare())
            .args(["rev-parse", "refs/heads/main"])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// What a reboot leaves: the demo's files, no leader, no testbed.
    fn reboot(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("leader.pid")).unwrap();
        let _ = Command::new("kill").arg(pid.trim()).status();
        let status = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed"))
            .arg("down")
            .env("TESTBED_NAME", TESTBED_NAME)
            .env("TESTBED_SUBNET", TESTBED_SUBNET)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/testbed down");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.command("down").output();
    }
}

#[test]
fn the_demo_runs_again_without_down_after_a_push_and_a_reboot() {
    let _alone = exclusive_cluster();
    let demo = Demo {
        dir: tempfile::tempdir().unwrap(),
        listen: free_port().to_string(),
    };
    let first = demo.up("first");
    assert!(first.contains("flotilla is running"), "{first}");

    // The newcomer follows the demo's suggestion and pushes a change.
    let work = demo.work();
    let worker = work.join("apps/worker.yaml");
    let yaml = std::fs::read_to_string(&worker).unwrap();
    std::fs::write(&worker, yaml.replace("replicas: 2", "replicas: 4")).unwrap();
    git_in(&work, &["commit", "-qam", "Four workers"]);
    git_in(&work, &["push", "-q"]);
    let pushed = demo.tip();

    demo.reboot();
    let second = demo.up("second");
    assert!(second.contains("flotilla is running"), "{second}");

    // Nothing was rewound: the user's push is in the branch's history, and
    // the example apps are back on top of it.
    let ancestor = Command::new("git")
        .arg("--git-dir")
        .arg(demo.bare())
        .args(["merge-base", "--is-ancestor", &pushed, "refs/heads/main"])
        .status()
        .unwrap();
    assert!(
        ancestor.success(),
        "the push before the second run was rewound"
    );
    let deployed = Command::new("git")
        .arg("--git-dir")
        .arg(demo.bare())
        .args(["show", "refs/heads/main:apps/worker.yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&deployed.stdout).contains("replicas: 2"));

    // The work copy fetches the leader's rollout notes, so `flotilla
    // history` there knows how each revision rolled out (issue 12, item 1).
    git_in(&work, &["pull", "-q"]);
    let history = Command::new(FLOTILLA)
        .current_dir(&work)
        .args(["history", "--output", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&history.stderr);
    assert!(history.status.success(), "{stderr}");
    assert!(!stderr.contains("rollout records"), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&history.stdout).unwrap();
    let outcomes: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| &row["outcome"])
        .collect();
    assert!(
        outcomes.iter().all(|outcome| *outcome != "unknown"),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&&serde_json::json!("succeeded")),
        "{outcomes:?}"
    );
}
