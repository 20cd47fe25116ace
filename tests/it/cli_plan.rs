//! `flotilla plan` as a person or a CI job runs it: the real binary on
//! scratch repositories built with the git CLI. `--offline` contacts no
//! node; the online cases point at a closed loopback port, so no node (and
//! no testbed) is needed.

use std::ffi::{CStr, OsStr};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Output, Stdio};

use crate::support::git::WorkTree;

/// A node with declared capacity, reachable at no address it is ever
/// asked for offline; online, port 1 on loopback refuses at once.
const NODE: &str = "\
apiVersion: flotilla.dev/v1
kind: Node
metadata:
  name: n1
spec:
  address: 127.0.0.1
  port: 1
  capacity:
    cpu: '4'
    memory: 8Gi
";

fn web(replicas: u32, memory: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: flotilla-test:1
          resources:
            requests: {{cpu: 100m, memory: {memory}}}
"
    )
}

fn repo(files: &[(&str, &str)]) -> WorkTree {
    let work = WorkTree::new();
    for (path, text) in files {
        work.write(path, text);
    }
    work.commit("manifests");
    work
}

fn flotilla(work: &WorkTree, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flotilla"));
    command
        .arg("plan")
        .args(args)
        .arg("--repo")
        .arg(work.path())
        .env_remove("NO_COLOR");
    command
}

fn run(work: &WorkTree, args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = flotilla(work, args).output().expect("flotilla runs");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn offline_detailed_exitcode_is_2_with_changes_0_without_and_1_on_error() {
    let changes = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(2, "1Gi"))]);
    let (code, shown, _) = run(&changes, &["--offline", "--detailed-exitcode"]);
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("Plan: 2 to create, 0 to update, 0 to remove, 0 unschedulable."),
        "{shown}"
    );
    assert!(shown.contains("+ web[0] create on n1 ("), "{shown}");
    // Without --detailed-exitcode, changes exit 0.
    assert_eq!(run(&changes, &["--offline"]).0, Some(0));

    let nothing = repo(&[("nodes/n1.yaml", NODE)]);
    let (code, shown, _) = run(&nothing, &["--offline", "--detailed-exitcode"]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("No changes."), "{shown}");

    let invalid = repo(&[
        ("nodes/n1.yaml", NODE),
        (
            "apps/web.yaml",
            &web(2, "1Gi").replace("replicas:", "replica:"),
        ),
    ]);
    let (code, shown, errors) = run(&invalid, &["--offline", "--detailed-exitcode"]);
    assert_eq!(code, Some(1), "{shown}{errors}");
    assert!(
        format!("{shown}{errors}").contains("unknown field `replica`, did you mean `replicas`?"),
        "{shown}{errors}"
    );
}

/// Issue 12, item 6: unschedulable replicas exited 2 ("changes") or 0;
/// `--detailed-exitcode` now exits 4, above the changes of the same plan.
#[test]
fn offline_unschedulable_replica_shows_kubernetes_message() {
    let work = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(3, "3Gi"))]);
    let (code, shown, _) = run(&work, &["--offline", "--detailed-exitcode"]);
    assert_eq!(code, Some(4), "{shown}");
    assert!(
        shown.contains("! web[2] unschedulable: 0/1 nodes are available: 1 Insufficient memory."),
        "{shown}"
    );
    assert!(
        shown.contains("Plan: 2 to create, 0 to update, 0 to remove, 1 unschedulable."),
        "{shown}"
    );
}

#[test]
fn offline_json_has_the_plan_and_its_replicas_nodes() {
    let work = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(3, "3Gi"))]);
    let (code, shown, errors) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(code, Some(0), "{errors}");
    let json: serde_json::Value = serde_json::from_str(&shown).expect("one JSON document");
    assert_eq!(json["offline"], true);
    assert_eq!(json["commit"].as_str().map(str::len), Some(40));
    assert_eq!(json["deployedCommit"], serde_json::Value::Null);
    let actions = json["plan"]["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 2, "{shown}");
    for action in actions {
        assert_eq!(action["node"], "n1");
        assert_eq!(action["operation"]["type"], "create");
        assert_eq!(action["object"]["name"], "web");
    }
    let unschedulable = json["plan"]["unschedulable"].as_array().expect("list");
    assert_eq!(unschedulable.len(), 1);
    assert_eq!(
        unschedulable[0]["reason"],
        "0/1 nodes are available: 1 Insufficient memory."
    );
    assert_eq!(json["plan"]["objects"][0]["desired"], 3);
    assert!(json["manifestDiff"]
        .as_str()
        .expect("a string")
        .contains("+  name: web"));
}

/// Regression: `flotilla plan` saw a node it could not reach as empty and
/// planned its replicas on the other nodes, reporting "0 unknown". Issue
/// 12, item 6: held replicas exited 2 ("changes"); they are unknown (3).
#[test]
fn online_unreachable_node_holds_its_replicas_as_unknown() {
    let work = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(2, "1Gi"))]);
    let (code, shown, errors) = run(&work, &["--detailed-exitcode", "--connect-timeout", "3"]);
    assert_eq!(code, Some(3), "{shown}{errors}");
    assert!(shown.contains("! node n1 unreachable for "), "{shown}");
    assert!(shown.contains("its containers were never seen"), "{shown}");
    assert!(
        shown.contains("? 2 replica(s) of web unknown: node n1 unreachable"),
        "{shown}"
    );
    assert!(!shown.contains("+ web["), "nothing created: {shown}");
    assert!(
        shown.contains("Plan: 0 to create, 0 to update, 0 to remove, 0 unschedulable, 2 unknown."),
        "{shown}"
    );
}

/// Issue 12, item 6: a plan with nothing to do on the nodes it reached,
/// and a node it could not reach, exited 0 ("no changes"): what runs
/// there is unknown (3).
#[test]
fn online_unreachable_node_with_nothing_to_do_is_unknown_not_no_changes() {
    let work = repo(&[("nodes/n1.yaml", NODE)]);
    let (code, shown, errors) = run(&work, &["--detailed-exitcode", "--connect-timeout", "3s"]);
    assert_eq!(code, Some(3), "{shown}{errors}");
    assert!(
        shown.contains("No changes on the nodes observed; 1 node(s) never observed"),
        "{shown}"
    );
}

#[test]
fn no_colour_when_piped() {
    let work = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(3, "3Gi"))]);
    let (_, shown, _) = run(&work, &["--offline"]);
    assert!(shown.contains("+ web[0]"), "{shown}");
    assert!(!shown.contains('\x1b'), "no escapes when piped: {shown:?}");
}

/// A new pseudo-terminal: its master and its slave, both close-on-exec as
/// the standard library opens every file. openpty(3) gives descriptors
/// without that flag: a process another test of this binary spawned
/// meanwhile (a leader, a testbed daemon) would inherit the slave and keep
/// the master's reader below waiting long after our child has exited.
fn pseudo_terminal() -> (File, File) {
    let master = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("/dev/ptmx opens");
    let fd = master.as_raw_fd();
    let mut name: [libc::c_char; 128] = [0; 128];
    // SAFETY: `fd` is the master just opened; `name` is a writable buffer
    // of the length given.
    let ready = unsafe {
        libc::grantpt(fd) == 0
            && libc::unlockpt(fd) == 0
            && libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) == 0
    };
    assert!(
        ready,
        "pseudo-terminal: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated path.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) };
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(OsStr::from_bytes(name.to_bytes()))
        .expect("the pseudo-terminal's slave opens");
    (master, slave)
}

/// Runs the plan with stdout on a pseudo-terminal; returns what it printed.
fn on_a_terminal(mut command: Command) -> String {
    let (mut reader, slave) = pseudo_terminal();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null())
        .spawn()
        .expect("flotilla runs");
    // The child holds the only other end: reading ends (EIO) when it exits.
    drop(command);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
    child.wait().expect("flotilla exits");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let work = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(3, "3Gi"))]);
    let coloured = on_a_terminal(flotilla(&work, &["--offline"]));
    assert!(
        coloured.contains("\x1b[32m  + web[0] create on n1"),
        "a create is green on a terminal: {coloured:?}"
    );
    let mut plain = flotilla(&work, &["--offline"]);
    plain.env("NO_COLOR", "1");
    let plain = on_a_terminal(plain);
    assert!(plain.contains("+ web[0] create on n1"), "{plain:?}");
    assert!(!plain.contains('\x1b'), "NO_COLOR: no escapes: {plain:?}");
}

/// A loopback listener that counts the connections made to it, and the
/// Node manifest of a node at its port.
fn probe_target(name: &str) -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let node = format!(
        "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: {name}\nspec:\n  address: 127.0.0.1\n  port: {port}\n"
    );
    (listener, node)
}

fn connections(listener: &std::net::TcpListener) -> usize {
    std::iter::from_fn(|| listener.accept().ok()).count()
}

/// Regression (issue 10, item 10): the pre-receive hook's plan connected to
/// every node the pushed commit declared, so a push could make the git host
/// probe any address. With `--observe-nodes-of REV` only the nodes REV
/// declares with the same settings are contacted; the others are shown as
/// not yet observed, never as "no changes".
#[test]
fn observe_nodes_of_contacts_only_the_nodes_the_landed_tip_declares() {
    let work = repo(&[("nodes/n1.yaml", NODE)]);
    let landed = crate::support::git::git_ok(work.path(), &["rev-parse", "HEAD"]);
    let landed = landed.trim();
    let (listener, pushed_node) = probe_target("n2");
    work.write("nodes/n2.yaml", &pushed_node);
    work.commit("a node only this commit declares");

    let (code, shown, errors) = run(
        &work,
        &["--observe-nodes-of", landed, "--connect-timeout", "3"],
    );
    assert_eq!(code, Some(0), "{shown}{errors}");
    assert_eq!(connections(&listener), 0, "n2 was contacted: {shown}");
    assert!(shown.contains("! node n2 unreachable for "), "{shown}");
    assert!(
        shown.contains(&format!(
            "(not yet observed: {} does not declare it with these connection settings",
            &landed[..12]
        )),
        "{shown}"
    );
    assert!(
        shown.contains("No changes on the nodes observed; 2 node(s) never observed, what runs there is unknown."),
        "{shown}"
    );

    // The same node moved to another port by a push is not contacted either.
    let (moved, moved_node) = probe_target("n1");
    work.write("nodes/n1.yaml", &moved_node);
    work.commit("n1 somewhere else");
    run(
        &work,
        &["--observe-nodes-of", landed, "--connect-timeout", "3"],
    );
    assert_eq!(connections(&moved), 0);

    // A branch not created yet (the all-zero id) declares no node.
    let zero = "0".repeat(40);
    run(
        &work,
        &["--observe-nodes-of", &zero, "--connect-timeout", "3"],
    );
    assert_eq!(connections(&listener) + connections(&moved), 0);

    // Without the option, every declared node is contacted (what the test
    // would see if the option did nothing).
    run(&work, &["--connect-timeout", "3"]);
    assert!(
        connections(&listener) > 0,
        "n2 is contacted without the option"
    );
}

/// Issue 12, items 7 and 8: `plan` without `--rev` plans the default
/// branch (`git config flotilla.branch`, else the checked-out one), which
/// is what `apply` applies, and says so when another branch is checked
/// out; planning the checked-out commit with edited manifests on disk says
/// that the working tree differs. JSON on stdout stays JSON.
#[test]
fn plan_defaults_to_the_default_branch_and_names_uncommitted_manifests() {
    let work = repo(&[("nodes/n1.yaml", NODE), ("apps/web.yaml", &web(1, "1Gi"))]);
    let git = |args: &[&str]| crate::support::git::git_ok(work.path(), args);
    let main = git(&["rev-parse", "HEAD"]);
    let commit_of = |stdout: &str| {
        let json: serde_json::Value = serde_json::from_str(stdout).expect("JSON on stdout");
        json["commit"].as_str().unwrap().to_string()
    };

    // The checked-out branch, its files edited on disk.
    work.write("apps/web.yaml", &web(3, "1Gi"));
    let (code, stdout, stderr) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(commit_of(&stdout), main);
    assert_eq!(
        stderr,
        format!(
            "warning: checking HEAD ({}); the working tree differs in apps/web.yaml: \
             use --working-tree to check the files on disk\n",
            &main[..12]
        )
    );
    let (_, _, stderr) = run(&work, &["--offline", "--working-tree"]);
    assert_eq!(stderr, "");
    git(&["checkout", "--", "."]);

    // Another branch checked out, flotilla.branch naming main: main is
    // planned, as apply would apply it, and the note says so.
    git(&["checkout", "-q", "-b", "feature"]);
    work.write("apps/web.yaml", &web(2, "1Gi"));
    let feature = work.commit("feature: two replicas");
    let (_, stdout, stderr) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(
        commit_of(&stdout),
        feature,
        "the checked-out branch: {stderr}"
    );
    assert_eq!(stderr, "");
    git(&["config", "flotilla.branch", "main"]);
    let (code, stdout, stderr) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(commit_of(&stdout), main);
    assert_eq!(
        stderr,
        "note: planning branch main, what `flotilla apply` applies (feature is checked out): \
         --rev HEAD plans what is checked out\n"
    );
    let (_, stdout, _) = run(&work, &["--offline", "--output", "json", "--rev", "HEAD"]);
    assert_eq!(commit_of(&stdout), feature);

    // A detached checkout with no local branch, as CI systems make them:
    // what is checked out is planned, not a `main` that is not there.
    git(&["config", "--unset", "flotilla.branch"]);
    git(&["checkout", "-q", "--detach", "feature"]);
    let (code, stdout, stderr) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(commit_of(&stdout), feature);
    assert_eq!(
        stderr,
        format!(
            "note: planning HEAD ({}, detached); `flotilla apply` applies branch main ({}): \
             --rev main plans that\n",
            &feature[..12],
            &main[..12]
        )
    );
    git(&["branch", "-q", "-D", "main", "feature"]);
    let (code, stdout, stderr) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(commit_of(&stdout), feature);
    assert_eq!(stderr, "");
}

/// Issue 12, items 6 and 10: `plan --offline` on the shipped examples
/// (Nodes that declare no capacity: the testbed's, read online) reported
/// every replica unschedulable ("3 node(s) had no known capacity"). Now
/// every replica is placed, the replicas of each Deployment on distinct
/// nodes, and the plan says once that CPU and memory were not checked.
#[test]
fn offline_plan_of_the_shipped_examples_places_and_spreads_every_replica() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-repo");
    let work = WorkTree::new();
    for entry in walk(&examples) {
        let relative = entry.strip_prefix(&examples).unwrap().to_str().unwrap();
        work.write(relative, &std::fs::read_to_string(&entry).unwrap());
    }
    // scripts/demo seals web's Secret for the demo's own key.
    work.write(
        "apps/web-token.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\ndata:\n  token: AGE[0123456789abcdef:YWdlLWVuY3J5cHRpb24ub3JnL3YxCg==]\n",
    );
    work.commit("the shipped examples");
    let (code, shown, errors) = run(&work, &["--offline", "--output", "json"]);
    assert_eq!(code, Some(0), "{errors}");
    let json: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let plan = &json["plan"];
    assert_eq!(plan["unschedulable"], serde_json::json!([]), "{shown}");
    assert_eq!(
        plan["unknownCapacity"],
        serde_json::json!(["n1", "n2", "n3"])
    );
    let mut nodes_of: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for action in plan["actions"].as_array().unwrap() {
        if action["object"]["kind"] == "Deployment" {
            nodes_of
                .entry(action["object"]["name"].as_str().unwrap().to_string())
                .or_default()
                .push(action["node"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(nodes_of.len(), 2, "{nodes_of:?}");
    for (name, mut nodes) in nodes_of {
        let replicas = nodes.len();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), replicas, "{name} spread over distinct nodes");
    }

    let (_, text, _) = run(&work, &["--offline"]);
    assert_eq!(
        text.matches("declare no capacity").count(),
        1,
        "said once:\n{text}"
    );
    assert!(
        text.contains("Plan: 10 to create, 0 to update, 0 to remove, 0 unschedulable."),
        "{text}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
