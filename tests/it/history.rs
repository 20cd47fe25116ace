//! Writing back to Git: rollout notes and revert commits, checked with the
//! real `git` CLI reading what flotilla wrote.

use crate::support::git::{git_ok, WorkTree};
use flotilla::repo::{self, RevertError};
use git2::Oid;

fn bare_clone(tree: &WorkTree) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("cluster.git");
    git_ok(
        tree.path(),
        &["clone", "-q", "--bare", ".", bare.to_str().unwrap()],
    );
    (dir, bare)
}

#[test]
fn notes_accumulate_and_show_in_git_log() {
    let tree = WorkTree::new();
    tree.write("a.yaml", "a: 1\n");
    let sha = tree.commit("web: image 1.1");
    let repository = repo::open(tree.path()).unwrap();
    let oid = Oid::from_str(&sha).unwrap();
    assert_eq!(repo::read_note(&repository, oid).unwrap(), None);
    repo::append_note(&repository, oid, "rollout Deployment default/web: failed").unwrap();
    repo::append_note(
        &repository,
        oid,
        "rollout Deployment default/web: succeeded",
    )
    .unwrap();
    let log = git_ok(
        tree.path(),
        &["log", "-1", "--notes=flotilla", "--format=%N"],
    );
    assert_eq!(
        log,
        "rollout Deployment default/web: failed\n\nrollout Deployment default/web: succeeded"
    );
}

#[test]
fn revert_in_a_bare_repository_matches_git_revert() {
    let tree = WorkTree::new();
    tree.write("web.yaml", "image: web:1\n")
        .write("api.yaml", "image: api:1\n");
    tree.commit("first");
    tree.write("web.yaml", "image: web:2\n");
    let bad = tree.commit("web: image 2");
    tree.write("api.yaml", "image: api:2\n");
    let tip = tree.commit("api: image 2");
    let (_dir, bare) = bare_clone(&tree);

    let repository = repo::open(&bare).unwrap();
    let reason = "Deployment default/web: replica 0 exited with code 1";
    let revert =
        repo::revert_on_branch(&repository, "main", Oid::from_str(&bad).unwrap(), reason).unwrap();

    assert_eq!(git_ok(&bare, &["rev-parse", "main"]), revert.to_string());
    assert_eq!(git_ok(&bare, &["rev-parse", "main^"]), tip);
    assert_eq!(git_ok(&bare, &["show", "main:web.yaml"]), "image: web:1");
    assert_eq!(git_ok(&bare, &["show", "main:api.yaml"]), "image: api:2");
    let message = git_ok(&bare, &["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message,
        format!("Revert \"web: image 2\"\n\nThis reverts commit {bad}.\n\n{reason}")
    );
}

#[test]
fn revert_refuses_conflicts_and_merges_and_leaves_the_branch() {
    let tree = WorkTree::new();
    tree.write("web.yaml", "image: web:1\n");
    tree.commit("first");
    tree.write("web.yaml", "image: web:2\n");
    let changed = tree.commit("web 2");
    tree.write("web.yaml", "image: web:3\n");
    let tip = tree.commit("web 3");
    let (_dir, bare) = bare_clone(&tree);
    let repository = repo::open(&bare).unwrap();

    let error = repo::revert_on_branch(&repository, "main", Oid::from_str(&changed).unwrap(), "")
        .unwrap_err();
    assert!(matches!(error, RevertError::Conflict { .. }), "{error}");
    assert!(error.to_string().contains("web.yaml"), "{error}");
    let error = repo::revert_on_branch(&repository, "nope", Oid::from_str(&changed).unwrap(), "")
        .unwrap_err();
    assert_eq!(error.to_string(), "branch nope not found");
    assert_eq!(
        git_ok(&bare, &["rev-parse", "main"]),
        tip,
        "the branch did not move"
    );
}
