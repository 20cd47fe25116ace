//! Storage end to end (issue 15) on the testbed (real sshd and dockerd),
//! the leader as a child process, pushes with the real git CLI.
//!
//! A 3-replica StatefulSet writes its ordinal into its own claim's volume:
//! its pods are created in ordinal order, each once the one before is
//! ready; after a rolling update, a leader restart, and a scale to 1 and
//! back to 3, each pod reads back its own data, on its claim's node. With
//! the sshd of `web-1`'s node stopped past the grace period, `web-1` is not
//! recreated elsewhere and `status` says why. A claim removed from Git
//! keeps its volume and `plan` says so; a backup, `flotilla volume delete`
//! (a commit), and a restore into the claim made again round-trip its data
//! byte for byte.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::deploy::{git_in, wait_for, Cluster};
use crate::common::DECLARED_NODES;

const CLUSTER: &str = "apiVersion: flotilla.dev/v1
kind: Cluster
metadata:
  name: storage
spec:
  resyncSeconds: 2
  nodeGracePeriodSeconds: 6
";

/// `web`: each pod writes its host name into its volume once, and serves
/// the volume over HTTP. `VERSION` changes for the rolling update.
fn stateful_set(replicas: u32, version: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
    - {{name: http, port: 80, targetPort: 8080}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: flotilla-test:1
          command: [sh, -c, "[ -f /data/ordinal ] || hostname > /data/ordinal; exec httpd -f -p 8080 -h /data"]
          env:
            - {{name: VERSION, value: "{version}"}}
          ports:
            - {{name: http, containerPort: 8080}}
          readinessProbe:
            httpGet: {{path: /ordinal, port: http}}
            initialDelaySeconds: 2
            periodSeconds: 1
          volumeMounts:
            - {{name: data, mountPath: /data}}
  volumeClaimTemplates:
    - metadata:
        name: data
      spec:
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 64Mi
"#
    )
}

/// A claim `notes` and the Deployment that writes random bytes into it once.
const NOTES: &str = r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: notes
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 32Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: notes
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector:
    matchLabels: {app: notes}
  template:
    metadata:
      labels: {app: notes}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: flotilla-test:1
          command: [sh, -c, "[ -f /notes/blob ] || { mkdir -p /notes/deep/er && head -c 300000 /dev/urandom > /notes/blob && echo kept > /notes/deep/er/line; }; exec sleep 100000"]
          volumeMounts:
            - {name: notes, mountPath: /notes}
      volumes:
        - name: notes
          persistentVolumeClaim: {claimName: notes}
"#;

/// The running pods of `name`: ordinal -> (node, container).
fn pods(cluster: &Cluster, name: &str) -> BTreeMap<u32, (String, String)> {
    let mut pods = BTreeMap::new();
    for (node, rows) in cluster.testbed.containers(name, &DECLARED_NODES) {
        for (container, state) in rows {
            if state != "running" {
                continue;
            }
            let ordinal: u32 = container.split('.').nth(4).unwrap().parse().unwrap();
            let previous = pods.insert(ordinal, (node.clone(), container));
            assert!(previous.is_none(), "two pods of ordinal {ordinal}");
        }
    }
    pods
}

fn exec(cluster: &Cluster, node: &str, container: &str, script: &str) -> String {
    cluster
        .testbed
        .docker(node, &["exec", container, "sh", "-c", script])
}

/// Every pod of `web` reads back what it wrote: `web-<ordinal>`.
fn each_reads_its_own(cluster: &Cluster, expected: &BTreeMap<u32, String>) {
    let pods = pods(cluster, "web");
    assert_eq!(pods.len(), expected.len(), "{pods:?}");
    for (ordinal, (node, container)) in &pods {
        assert_eq!(
            exec(cluster, node, container, "cat /data/ordinal").trim(),
            format!("web-{ordinal}")
        );
        assert_eq!(&expected[ordinal], node, "ordinal {ordinal} moved");
    }
}

fn tip(cluster: &Cluster) -> String {
    git_in(&cluster.bare, &["rev-parse", "main"])
        .trim()
        .to_string()
}

fn flotilla(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let output = cluster
        .flotilla()
        .current_dir(&cluster.work)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

fn volume_on(cluster: &Cluster, node: &str, volume: &str) -> bool {
    cluster
        .testbed
        .try_docker(node, &["volume", "inspect", volume])
        .status
        .success()
}

fn remove_claim_volumes(cluster: &Cluster) {
    for node in DECLARED_NODES {
        let names = cluster.testbed.docker(
            node,
            &[
                "volume",
                "ls",
                "-q",
                "--filter",
                "label=dev.flotilla.volume",
            ],
        );
        for name in names.split_whitespace() {
            let _ = cluster
                .testbed
                .try_docker(node, &["volume", "rm", "-f", name]);
        }
    }
}

#[test]
fn stateful_pods_keep_their_data_through_updates_restarts_scaling_and_partitions() {
    let mut cluster = Cluster::new(CLUSTER);
    remove_claim_volumes(&cluster);
    cluster.start_leader();
    let within = Duration::from_secs(120);

    // Created in ordinal order, each once the one before is ready.
    cluster.push("apps/web.yaml", Some(&stateful_set(3, "1")), "web");
    cluster.wait_ready("web", 3, within);
    let created: Vec<String> = pods(&cluster, "web")
        .values()
        .map(|(node, container)| {
            cluster
                .testbed
                .docker(node, &["inspect", "-f", "{{.Created}}", container])
                .trim()
                .to_string()
        })
        .collect();
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(created, sorted, "web-0, web-1, web-2 created in order");
    let homes: BTreeMap<u32, String> = pods(&cluster, "web")
        .into_iter()
        .map(|(o, (node, _))| (o, node))
        .collect();
    each_reads_its_own(&cluster, &homes);
    for (ordinal, node) in &homes {
        assert!(volume_on(
            &cluster,
            node,
            &format!("flotilla.pvc.default.data-web-{ordinal}")
        ));
    }

    // A rolling update: new containers, same data, same nodes.
    let before = pods(&cluster, "web");
    cluster.push("apps/web.yaml", Some(&stateful_set(3, "2")), "web v2");
    cluster.wait_ready("web", 3, within);
    let after = pods(&cluster, "web");
    assert!(before.values().all(|b| !after.values().any(|a| a.1 == b.1)));
    each_reads_its_own(&cluster, &homes);

    // A crashing revision is reverted by the leader as a commit, the broken
    // pod replaced; every pod keeps its data. rollout status, notes and
    // history say so.
    let broken =
        stateful_set(3, "2").replace("[ -f /data/ordinal ]", "exit 1; [ -f /data/ordinal ]");
    cluster.push("apps/web.yaml", Some(&broken), "Break web");
    let bad = tip(&cluster);
    let revert = wait_for("the leader's revert", Duration::from_secs(180), || {
        let tip = tip(&cluster);
        git_in(&cluster.bare, &["log", "-1", "--format=%B", &tip])
            .contains(&format!("This reverts commit {bad}"))
            .then_some(tip)
    });
    cluster.git(&["pull", "-q", "--ff-only", "origin", "main"]);
    cluster.wait_ready("web", 3, within);
    each_reads_its_own(&cluster, &homes);
    let note = git_in(&cluster.bare, &["notes", "--ref=flotilla", "show", &bad]);
    assert!(note.contains(&format!("reverted by {revert}")), "{note}");
    let bare = cluster.bare.to_string_lossy().to_string();
    let (ok, said) = flotilla(
        &cluster,
        &[
            "rollout",
            "status",
            "statefulset/web",
            "--timeout",
            "60",
            "--repo",
            &bare,
        ],
    );
    assert!(ok, "{said}");
    let (ok, said) = flotilla(&cluster, &["history", "statefulset/web", "--repo", &bare]);
    assert!(ok && said.contains("failed"), "{said}");

    // A leader restart changes nothing.
    cluster.stop_leader();
    cluster.start_leader();
    let (ok, said) = flotilla(&cluster, &["plan"]);
    assert!(ok, "{said}");
    assert!(said.contains("No changes"), "{said}");
    each_reads_its_own(&cluster, &homes);

    // Scaled to 1 (highest first), the claims stay; back to 3, each pod
    // returns to its claim.
    cluster.push("apps/web.yaml", Some(&stateful_set(1, "2")), "web to 1");
    cluster.wait_ready("web", 1, within);
    let (_, said) = flotilla(&cluster, &["plan"]);
    assert!(said.contains("claim default/data-web-2 (64Mi)"), "{said}");
    assert!(said.contains("its volume and data are kept"), "{said}");
    cluster.push("apps/web.yaml", Some(&stateful_set(3, "2")), "web to 3");
    cluster.wait_ready("web", 3, within);
    each_reads_its_own(&cluster, &homes);

    // web-1's node away past the grace period: web-1 is not recreated
    // elsewhere, and status says why.
    let away = homes[&1].clone();
    cluster.testbed.stop_sshd(&away);
    let status = wait_for("status to say web[1] waits", within, || {
        let status = cluster.status()?;
        let web = status.objects.iter().find(|o| o.name == "web")?;
        web.waiting
            .iter()
            .any(|w| w.contains("web[1] waits") && w.contains(&away))
            .then_some(status)
    });
    std::thread::sleep(Duration::from_secs(8));
    let elsewhere: Vec<String> = DECLARED_NODES
        .iter()
        .filter(|n| **n != away)
        .flat_map(|n| {
            cluster
                .testbed
                .containers("web", &[n])
                .into_values()
                .flatten()
        })
        .map(|(c, _)| c)
        .filter(|c| c.split('.').nth(4) == Some("1"))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "web-1 made elsewhere: {elsewhere:?}\n{status:?}"
    );
    cluster.testbed.start_sshd(&away);
    cluster.wait_ready("web", 3, within);
    each_reads_its_own(&cluster, &homes);
}

#[test]
fn a_claim_removed_from_git_is_kept_and_a_backup_restores_it_byte_for_byte() {
    let mut cluster = Cluster::new(CLUSTER);
    remove_claim_volumes(&cluster);
    cluster.start_leader();
    let within = Duration::from_secs(120);
    cluster.push("apps/notes.yaml", Some(NOTES), "notes");
    cluster.wait_ready("notes", 1, within);
    let (node, container) = pods(&cluster, "notes").into_values().next().unwrap();
    let digest = |node: &str, container: &str| {
        exec(
            &cluster,
            node,
            container,
            "sha256sum /notes/blob /notes/deep/er/line",
        )
    };
    let original = digest(&node, &container);

    // Removed from Git: the volume stays, and plan says so.
    cluster.push("apps/notes.yaml", None, "no more notes");
    wait_for("notes gone", within, || {
        pods(&cluster, "notes").is_empty().then_some(())
    });
    let (_, said) = flotilla(&cluster, &["plan"]);
    assert!(
        said.contains("claim default/notes (32Mi) on") && said.contains("kept"),
        "{said}"
    );
    assert!(volume_on(&cluster, &node, "flotilla.pvc.default.notes"));

    // Backed up, deleted by a commit, declared again, restored.
    let backup = cluster.dir.path().join("notes.tar");
    let status = cluster
        .flotilla()
        .current_dir(&cluster.work)
        .args(["volume", "backup", "notes"])
        .stdout(Stdio::from(std::fs::File::create(&backup).unwrap()))
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, said) = flotilla(&cluster, &["volume", "delete", "notes"]);
    assert!(ok, "{said}");
    let (_, said) = flotilla(&cluster, &["plan"]);
    assert!(said.contains("DELETES DATA"), "{said}");
    cluster.git(&["push", "-q", "origin", "main"]);
    wait_for("the volume deleted", within, || {
        (!volume_on(&cluster, &node, "flotilla.pvc.default.notes")).then_some(())
    });
    cluster.git(&["rm", "-q", "-r", "deleted-volumes"]);
    cluster.push("apps/notes.yaml", Some(NOTES), "notes again");
    cluster.wait_ready("notes", 1, within);
    let (node, container) = pods(&cluster, "notes").into_values().next().unwrap();
    assert_ne!(digest(&node, &container), original, "a new, empty volume");
    let restored = cluster
        .flotilla()
        .current_dir(&cluster.work)
        .args(["volume", "restore", "notes", "--force"])
        .stdin(Stdio::from(std::fs::File::open(&backup).unwrap()))
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(digest(&node, &container), original);
}
