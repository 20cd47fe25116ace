//! Reading the desired state from commits and working trees (real git).

use crate::support::git::{git_ok, WorkTree};
use flotilla::repo::{self, RepoError};

const NODE: &str =
    "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: n1\nspec:\n  address: 127.0.0.1\n";

fn paths(snapshot: &repo::Snapshot) -> Vec<&str> {
    snapshot.files.iter().map(|f| f.path.as_str()).collect()
}

#[test]
fn reads_yaml_and_yml_blobs_of_a_commit_sorted() {
    let tree = WorkTree::new();
    tree.write("nodes/n1.yaml", NODE)
        .write("apps/web.yml", "kind: Deployment\n")
        .write("README.md", "not a manifest\n")
        .write("apps/notes.txt", "nor this\n");
    let sha = tree.commit("first");
    let repository = repo::open(tree.path()).unwrap();
    let snapshot = repo::read_revision(&repository, "HEAD").unwrap();
    assert_eq!(snapshot.commit, sha);
    assert_eq!(paths(&snapshot), ["apps/web.yml", "nodes/n1.yaml"]);
    assert_eq!(snapshot.files[1].text, NODE);
}

#[test]
fn any_revision_expression_reads_that_commit() {
    let tree = WorkTree::new();
    tree.write("a.yaml", "kind: A\n");
    let first = tree.commit("first");
    git_ok(tree.path(), &["tag", "v1"]);
    tree.write("b.yaml", "kind: B\n");
    tree.commit("second");
    tree.write("c.yaml", "kind: C\n");
    let third = tree.commit("third");
    let repository = repo::open(tree.path()).unwrap();
    for (rev, expected) in [
        ("HEAD~2", &first),
        ("v1", &first),
        ("main", &third),
        (&first[..10], &first),
    ] {
        assert_eq!(
            &repo::read_revision(&repository, rev).unwrap().commit,
            expected,
            "{rev}"
        );
    }
    assert_eq!(
        paths(&repo::read_revision(&repository, "HEAD~1").unwrap()),
        ["a.yaml", "b.yaml"]
    );
}

#[test]
fn a_bare_clone_reads_the_same() {
    let tree = WorkTree::new();
    tree.write("n1.yaml", NODE);
    let sha = tree.commit("first");
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().join("cluster.git");
    git_ok(
        tree.path(),
        &["clone", "-q", "--bare", ".", bare_path.to_str().unwrap()],
    );
    let repository = repo::open(&bare_path).unwrap();
    let snapshot = repo::read_revision(&repository, "main").unwrap();
    assert_eq!(snapshot.commit, sha);
    assert_eq!(paths(&snapshot), ["n1.yaml"]);
}

#[test]
fn flotillaignore_skips_files_and_directories() {
    let tree = WorkTree::new();
    tree.write(".flotillaignore", "drafts/\n*.example.yaml\n# a comment\n")
        .write("drafts/web.yaml", "kind: X\n")
        .write("apps/web.example.yaml", "kind: X\n")
        .write("apps/web.yaml", "kind: Deployment\n");
    tree.commit("first");
    let repository = repo::open(tree.path()).unwrap();
    assert_eq!(
        paths(&repo::read_revision(&repository, "HEAD").unwrap()),
        ["apps/web.yaml"]
    );
    assert_eq!(
        paths(&repo::read_working_tree(&repository).unwrap()),
        ["apps/web.yaml"]
    );
}

#[test]
fn working_tree_is_read_only_when_asked_and_includes_uncommitted_files() {
    let tree = WorkTree::new();
    tree.write("a.yaml", "kind: A\n");
    tree.commit("first");
    tree.write("b.yaml", "kind: B\n")
        .write(".gitignore", "secret.yaml\n")
        .write("secret.yaml", "x");
    let repository = repo::open(tree.path()).unwrap();
    assert_eq!(
        paths(&repo::read_revision(&repository, "HEAD").unwrap()),
        ["a.yaml"]
    );
    let working = repo::read_working_tree(&repository).unwrap();
    assert_eq!(working.commit, repo::WORKING_TREE);
    assert_eq!(paths(&working), ["a.yaml", "b.yaml"]);
}

#[test]
fn symlinked_manifest_is_reported_not_followed() {
    let tree = WorkTree::new();
    tree.write("real.yaml", NODE);
    std::os::unix::fs::symlink("real.yaml", tree.path().join("link.yaml")).unwrap();
    tree.commit("first");
    let repository = repo::open(tree.path()).unwrap();
    let snapshot = repo::read_revision(&repository, "HEAD").unwrap();
    assert_eq!(paths(&snapshot), ["real.yaml"]);
    assert_eq!(snapshot.diagnostics.len(), 1);
    assert!(snapshot.diagnostics[0]
        .message
        .contains("link.yaml is a symbolic link"));
}

#[test]
fn errors_name_what_went_wrong() {
    let tree = WorkTree::new();
    std::fs::write(tree.path().join("bad.yaml"), [0x66, 0xff, 0xfe]).unwrap();
    tree.commit("first");
    let repository = repo::open(tree.path()).unwrap();
    let cases = [(
        repo::read_revision(&repository, "nope").unwrap_err(),
        "revision `nope` not found",
    )];
    for (error, expected) in cases {
        assert!(
            error.to_string().contains(expected),
            "{error} should contain {expected}"
        );
    }
    // A file that is not UTF-8 is an error diagnostic at its place, not a
    // failure to read the commit: the other files are still read.
    let snapshot = repo::read_revision(&repository, "HEAD").unwrap();
    assert!(snapshot.files.is_empty());
    assert!(snapshot.has_errors());
    let rendered: Vec<String> = snapshot
        .diagnostics
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(rendered.len(), 1, "{rendered:?}");
    assert!(
        rendered[0].starts_with(
            "error: not valid UTF-8 (byte 0xff); manifests must be UTF-8 text\n  --> bad.yaml:1:2"
        ),
        "{rendered:?}"
    );
    let not_a_repo = tempfile::tempdir().unwrap();
    assert!(matches!(
        repo::open(not_a_repo.path()),
        Err(RepoError::Open { .. })
    ));
}
