//! Pods of several containers end to end (issue 16, items 1-3) on the
//! testbed, the leader as a child process, pushes with the real git CLI.
//!
//! One pod: an init container writes a file into an `emptyDir` that the app
//! container then reads; a sidecar (an init container with `restartPolicy:
//! Always`) serves HTTP that the app reaches on `localhost`, also after the
//! app container and the sidecar restart (the bug of the old layout, where
//! the containers joined the first one's namespace and lost it when it
//! restarted); the app's postStart GETs the sidecar at the pod's address;
//! the pod runs in a sandbox that holds its address. Scaled to
//! 0, the app's `preStop` writes a marker into a hostPath before its
//! SIGTERM, which its TERM trap follows with its own line.

use std::time::Duration;

use crate::common::deploy::{wait_for, Cluster};
use crate::common::DECLARED_NODES;

const CLUSTER: &str = "apiVersion: flotilla.dev/v1
kind: Cluster
metadata:
  name: pods
spec:
  resyncSeconds: 2
  policy:
    allowedHostPaths:
      - {pathPrefix: /tmp/flotilla-pods-test}
";

fn pod(replicas: u32, marks: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: pod
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: pod}}
  template:
    metadata:
      labels: {{app: pod}}
    spec:
      terminationGracePeriodSeconds: 5
      initContainers:
        - name: setup
          image: flotilla-test:1
          command: [sh, -c, "echo made-by-init > /work/init.txt"]
          volumeMounts:
            - {{name: work, mountPath: /work}}
        - name: side
          image: flotilla-test:1
          restartPolicy: Always
          command: [sh, -c, "mkdir -p /www && echo sidecar-ok > /www/index.html && exec httpd -f -p 9000 -h /www"]
      containers:
        - name: app
          image: flotilla-test:1
          command: [sh, -c, "trap 'echo term >> /marks/log; exit 0' TERM; cat /work/init.txt > /work/read-by-app; while true; do sleep 0.2; done"]
          lifecycle:
            postStart:
              httpGet: {{path: /, port: 9000}}
            preStop:
              exec: {{command: [sh, -c, "echo prestop >> /marks/log"]}}
          volumeMounts:
            - {{name: work, mountPath: /work}}
            - {{name: marks, mountPath: /marks}}
      volumes:
        - name: work
          emptyDir: {{}}
        - name: marks
          hostPath: {{path: {marks}, type: DirectoryOrCreate}}
"#
    )
}

/// (node, container name) of each running container of `pod` whose name
/// ends with `.suffix`.
fn running(cluster: &Cluster, suffix: &str) -> Option<(String, String)> {
    cluster
        .testbed
        .containers("pod", &DECLARED_NODES)
        .into_iter()
        .flat_map(|(node, rows)| rows.into_iter().map(move |row| (node.clone(), row)))
        .find(|(_, (name, state))| name.ends_with(&format!(".{suffix}")) && state == "running")
        .map(|(node, (name, _))| (node, name))
}

/// What the app gets from `localhost:9000`, if anything.
fn from_sidecar(cluster: &Cluster, node: &str, app: &str) -> Option<String> {
    let output = cluster.testbed.try_docker(
        node,
        &[
            "exec",
            app,
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 9000",
        ],
    );
    let body = String::from_utf8_lossy(&output.stdout).into_owned();
    body.contains("sidecar-ok").then_some(body)
}

#[test]
fn a_pod_with_an_init_container_a_sidecar_and_a_pre_stop_hook() {
    let marks = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in({
            std::fs::create_dir_all("/tmp/flotilla-pods-test").unwrap();
            "/tmp/flotilla-pods-test"
        })
        .unwrap();
    let marks_path = marks.path().to_str().unwrap().to_string();
    let mut cluster = Cluster::new(CLUSTER);
    cluster.start_leader();
    let within = Duration::from_secs(40);

    cluster.push("apps/pod.yaml", Some(&pod(1, &marks_path)), "pod");
    let status = cluster.wait_ready("pod", 1, within);
    let (node, app) = running(&cluster, "app").expect("the app runs");
    let (sandbox_node, sandbox) = running(&cluster, "_sandbox").expect("the sandbox runs");
    assert_eq!(node, sandbox_node, "one pod, one node");
    let docker = |args: &[&str]| cluster.testbed.docker(&node, args);
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &app]).trim(),
        format!(
            "container:{}",
            docker(&["inspect", "-f", "{{.Id}}", &sandbox]).trim()
        )
    );
    assert_eq!(
        docker(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"dev.flotilla.role\"}}",
            &sandbox
        ])
        .trim(),
        "sandbox"
    );
    // The init container ran to completion before the app read its file.
    let setup = docker(&[
        "ps",
        "-a",
        "--filter",
        "label=dev.flotilla.container=setup",
        "--format",
        "{{.Names}} {{.Status}}",
    ]);
    assert!(setup.contains("Exited (0)"), "{setup}");
    assert_eq!(
        docker(&["exec", &app, "cat", "/work/read-by-app"]).trim(),
        "made-by-init"
    );
    // The app's postStart reached the sidecar at the pod's address (the
    // sandbox's: the app has none of its own).
    assert!(
        !cluster.leader_log().contains("postStart hook"),
        "{}",
        cluster.leader_log()
    );
    // The status shows the pod's containers by role.
    let rows: Vec<&str> = status
        .replicas
        .iter()
        .filter(|r| r.object.ends_with("/pod"))
        .map(|r| r.container.as_str())
        .collect();
    for role in ["(sandbox)", "setup (init)", "side (sidecar)", "app"] {
        assert!(rows.contains(&role), "{role} in {rows:?}");
    }

    // The sidecar answers the app on localhost, and still does after the
    // app container restarts (the old layout's bug: the others lost the
    // namespace of the restarted first container) and after the sidecar
    // is killed (Docker starts it again).
    wait_for("the sidecar on localhost", within, || {
        from_sidecar(&cluster, &node, &app)
    });
    docker(&["restart", "-t", "1", &app]);
    wait_for(
        "the sidecar on localhost after the app restarted",
        within,
        || from_sidecar(&cluster, &node, &app),
    );
    let (_, side) = running(&cluster, "side").expect("the sidecar runs");
    docker(&["kill", &side]);
    wait_for(
        "the sidecar on localhost after it was killed",
        within,
        || from_sidecar(&cluster, &node, &app),
    );

    // Scaled to 0: the preStop hook writes its marker before the SIGTERM,
    // which the app's trap follows (its restart above left one line).
    let log_path = marks.path().join("log");
    let before = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(before, "term\n", "the app's restart was a SIGTERM");
    cluster.push("apps/pod.yaml", Some(&pod(0, &marks_path)), "pod to 0");
    wait_for("the pod gone", within, || {
        cluster
            .testbed
            .containers("pod", &DECLARED_NODES)
            .values()
            .all(Vec::is_empty)
            .then_some(())
    });
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        &log[before.len()..],
        "prestop\nterm\n",
        "the preStop marker, then the TERM trap's"
    );
}
