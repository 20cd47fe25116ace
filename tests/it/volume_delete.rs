//! `flotilla volume delete` on real repositories built with the `git` CLI:
//! the one-line commit in a clone (and its push to the leader's repository,
//! whose hook accepts it), a claim no longer declared, the commit straight
//! on the leader's bare repository, and the refusal while a pod uses the
//! claim. No network, no Docker.

use crate::rollback::{flotilla_fails, flotilla_ok, leader_repository};
use crate::support::git::{git, git_ok, WorkTree};

/// `storage.yaml`: a comment, a claim written as kubectl users write it,
/// and a second claim in another namespace.
const STORAGE: &str = "# The shop's data.
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data   # postgres
  labels: {app: db}
spec:
  storageClassName: standard
  accessModes:
    - ReadWriteOnce
  resources:
    requests:
      storage: 5Gi
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cache, namespace: shop}
spec: {accessModes: [ReadWriteOncePod], resources: {requests: {storage: 1Gi}}}
";

/// A Deployment mounting the claim `data`.
const DB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: data}
      containers:
      - name: postgres
        image: postgres:16
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
";

const NODE: &str = "apiVersion: flotilla.dev/v1
kind: Node
metadata: {name: n1}
spec: {address: 127.0.0.1}
";

fn shop() -> WorkTree {
    let work = WorkTree::new();
    work.write("nodes.yaml", NODE)
        .write("storage.yaml", STORAGE)
        .commit("The shop's storage");
    work
}

#[test]
fn in_a_clone_one_line_is_committed_and_the_push_is_accepted() {
    let work = shop();
    let (_dir, bare) = leader_repository(&work);
    let before = git_ok(work.path(), &["rev-parse", "HEAD"]);

    let out = flotilla_ok(work.path(), &["volume", "delete", "data"]);
    assert!(
        out.starts_with("Marking PersistentVolumeClaim default/data with flotilla.dev/delete-volume: \"true\" in storage.yaml: once pushed, the leader deletes its volume flotilla.pvc.default.data and the data in it.\n"),
        "{out}"
    );
    assert!(out.ends_with("push it: git push\n"), "{out}");
    assert_eq!(git_ok(work.path(), &["rev-parse", "HEAD^"]), before);
    assert_eq!(git_ok(work.path(), &["status", "--porcelain"]), "");
    // Byte for byte: one line added, after the name, nothing else moved.
    let expected = STORAGE.replace(
        "  name: data   # postgres\n",
        "  name: data   # postgres\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n",
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("storage.yaml")).unwrap(),
        expected
    );
    let message = git_ok(work.path(), &["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("Delete the volume of PersistentVolumeClaim default/data\n"),
        "{message}"
    );
    assert!(message.contains("the data\nin it is lost"), "{message}");

    let push = git(work.path(), &["push", "cluster", "HEAD:main"]);
    let seen = String::from_utf8_lossy(&push.stderr);
    assert!(push.status.success(), "{seen}");
    assert_eq!(
        git_ok(&bare, &["rev-parse", "main"]),
        git_ok(work.path(), &["rev-parse", "HEAD"])
    );

    // Asked again: already there, nothing written.
    let out = flotilla_ok(work.path(), &["volume", "delete", "default/data"]);
    assert!(
        out.contains("already has flotilla.dev/delete-volume"),
        "{out}"
    );
    assert_eq!(
        git_ok(work.path(), &["rev-parse", "main"]),
        git_ok(&bare, &["rev-parse", "main"])
    );
}

#[test]
fn a_claim_no_longer_declared_is_declared_again_in_a_file_of_its_own() {
    let work = shop();
    work.write("storage.yaml", &STORAGE[..STORAGE.find("---").unwrap()])
        .commit("Remove the cache's claim (its volume is kept)");
    let out = flotilla_ok(
        work.path(),
        &[
            "volume",
            "delete",
            "shop/cache",
            "-m",
            "The cache moved to Redis.",
        ],
    );
    assert!(
        out.contains("in a new file deleted-volumes/shop.cache.yaml (it is no longer declared)"),
        "{out}"
    );
    let text =
        std::fs::read_to_string(work.path().join("deleted-volumes/shop.cache.yaml")).unwrap();
    assert!(
        text.contains("  name: cache\n  namespace: shop\n  annotations:\n    flotilla.dev/delete-volume: \"true\"\n"),
        "{text}"
    );
    let message = git_ok(work.path(), &["log", "-1", "--format=%B"]);
    assert!(message.ends_with("The cache moved to Redis."), "{message}");
    let validate = flotilla_ok(work.path(), &["validate"]);
    assert!(!validate.contains("error"), "{validate}");
}

#[test]
fn in_the_leaders_repository_the_commit_is_written_on_the_branch() {
    let work = shop();
    let (_dir, bare) = leader_repository(&work);
    let tip = git_ok(&bare, &["rev-parse", "main"]);
    let dry = flotilla_ok(&bare, &["volume", "delete", "shop/cache", "--dry-run"]);
    assert!(
        dry.contains("+metadata: {annotations: {flotilla.dev/delete-volume: \"true\"}, name: cache, namespace: shop}"),
        "{dry}"
    );
    assert!(dry.ends_with("dry run: nothing written\n"), "{dry}");
    assert_eq!(git_ok(&bare, &["rev-parse", "main"]), tip);

    let out = flotilla_ok(&bare, &["volume", "delete", "shop/cache"]);
    assert!(out.contains("committed "), "{out}");
    assert_eq!(git_ok(&bare, &["rev-parse", "main^"]), tip);
    let text = git_ok(&bare, &["show", "main:storage.yaml"]);
    assert!(
        text.ends_with("metadata: {annotations: {flotilla.dev/delete-volume: \"true\"}, name: cache, namespace: shop}\nspec: {accessModes: [ReadWriteOncePod], resources: {requests: {storage: 1Gi}}}"),
        "{text}"
    );
}

#[test]
fn a_claim_a_pod_uses_is_refused_with_the_diagnostic_and_nothing_is_written() {
    let work = shop();
    work.write("db.yaml", DB).commit("The database");
    let head = git_ok(work.path(), &["rev-parse", "HEAD"]);
    let stderr = flotilla_fails(work.path(), &["volume", "delete", "data"]);
    assert!(
        stderr.contains(
            "deleting the volume of PersistentVolumeClaim default/data would leave main invalid"
        ),
        "{stderr}"
    );
    assert_eq!(git_ok(work.path(), &["rev-parse", "HEAD"]), head);
    assert_eq!(git_ok(work.path(), &["status", "--porcelain"]), "");
    let stderr = flotilla_fails(work.path(), &["volume", "delete", "Data"]);
    assert!(stderr.contains("invalid claim name `Data`"), "{stderr}");
}
