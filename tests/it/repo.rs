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

/// Runs the built `flotilla` in `dir`; (exit code, stdout, stderr).
fn flotilla(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("flotilla runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Issue 12, item 8: one default branch for every command: `git config
/// flotilla.branch`, else the branch HEAD names (born or not), else main.
#[test]
fn the_default_branch_is_configured_else_heads_else_main() {
    let tree = WorkTree::new();
    tree.write("n1.yaml", NODE);
    tree.commit("first");
    let default = || repo::default_branch(&repo::open(tree.path()).unwrap());
    assert_eq!(default(), "main");
    git_ok(tree.path(), &["checkout", "-q", "-b", "feature"]);
    assert_eq!(default(), "feature");
    git_ok(tree.path(), &["checkout", "-q", "--orphan", "unborn"]);
    assert_eq!(default(), "unborn");
    git_ok(tree.path(), &["checkout", "-q", "--detach", "feature"]);
    assert_eq!(default(), "main");
    git_ok(tree.path(), &["config", "flotilla.branch", "prod"]);
    assert_eq!(default(), "prod");

    let bare = tempfile::tempdir().unwrap();
    git_ok(bare.path(), &["init", "-q", "--bare", "-b", "trunk"]);
    assert_eq!(
        repo::default_branch(&repo::open(bare.path()).unwrap()),
        "trunk"
    );
}

/// Issue 12, item 8: after `init-repo --branch prod`, every command run in
/// the leader's repository without `--branch` acts on prod, not main:
/// `status` and `apply` (which used main), `history`, `rollback` and
/// `plan`; HEAD names prod, so a clone checks it out.
#[test]
fn commands_in_the_leaders_repository_default_to_its_tracked_branch() {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("cluster.git");
    let (code, out, err) = flotilla(
        dir.path(),
        &["init-repo", "--branch", "prod", bare.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(git_ok(&bare, &["symbolic-ref", "HEAD"]), "refs/heads/prod");
    let web = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  \
               selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      \
               labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          \
               image: web:1\n";
    let tree = WorkTree::new();
    tree.write("web.yaml", web);
    tree.commit("web 1");
    tree.write("web.yaml", &web.replace("web:1", "web:2"));
    let tip = tree.commit("web 2");
    git_ok(
        tree.path(),
        &["push", "-q", bare.to_str().unwrap(), "HEAD:prod"],
    );

    let json = |args: &[&str]| -> serde_json::Value {
        let (code, out, err) = flotilla(&bare, args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} ({e}): {out}"))
    };
    let locks = dir.path().join("locks");
    let lock_dir = locks.to_str().unwrap();
    assert_eq!(
        json(&["status", "--output", "json"])["commit"],
        tip.as_str()
    );
    let applied = json(&["apply", "--yes", "--output", "json", "--lock-dir", lock_dir]);
    assert_eq!(applied["commit"], tip.as_str());
    assert_eq!(
        json(&["history", "--output", "json"])[0]["commit"],
        tip.as_str()
    );
    assert_eq!(
        json(&["plan", "--offline", "--output", "json"])["commit"],
        tip.as_str()
    );
    let (code, out, err) = flotilla(&bare, &["rollback", "deployment/web", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");

    let clone = dir.path().join("clone");
    git_ok(
        dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    assert_eq!(git_ok(&clone, &["branch", "--show-current"]), "prod");
}

/// Issue 12, item 9: `init-repo` never creates the leader's repository
/// among a user's files: a clone (its work tree or its `.git`), a non-empty
/// directory that is not a repository, a file are refused, exit 1, nothing
/// written. Run again on its repository it says "refreshed", keeps the
/// tracked branch unless `--branch` changes it, and says when it does.
#[test]
fn init_repo_refuses_work_trees_and_full_directories_and_refreshes_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let clone = WorkTree::new();
    clone.write("n1.yaml", NODE);
    clone.commit("first");
    let listing = |path: &std::path::Path| {
        let mut names: Vec<_> = walk(path);
        names.sort();
        names
    };
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine\n").unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "mine\n").unwrap();
    for (path, expected) in [
        (clone.path().to_path_buf(), "is a repository with a work tree (a clone), not a bare repository"),
        (clone.path().join(".git"), "is a repository with a work tree (a clone), not a bare repository"),
        (full.clone(), "is not empty and not a git repository; refusing to create the leader's repository among its files"),
        (file.clone(), "is not a directory"),
        (clone.path().join("deploy/cluster.git"), "is inside the work tree of"),
    ] {
        let before = listing(&path);
        let (code, out, err) = flotilla(dir.path(), &["init-repo", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{path:?}: {out}{err}");
        assert!(err.contains(expected), "{path:?}: {err}");
        assert_eq!(listing(&path), before, "{path:?}: nothing written");
    }

    // An empty directory is fine; run again, its hooks are refreshed.
    let bare = dir.path().join("empty");
    std::fs::create_dir(&bare).unwrap();
    let path = bare.to_str().unwrap();
    let (code, out, _) = flotilla(dir.path(), &["init-repo", "--branch", "prod", path]);
    assert_eq!(code, 0);
    assert!(out.starts_with("initialized "), "{out}");
    assert!(
        out.contains(&format!(
            "git clone -c remote.origin.fetch={} ",
            repo::NOTES_REFSPEC
        )),
        "{out}"
    );
    std::fs::remove_file(bare.join("hooks/pre-receive")).unwrap();
    let (code, out, _) = flotilla(dir.path(), &["init-repo", path]);
    assert_eq!(code, 0);
    assert!(out.starts_with("refreshed hooks of "), "{out}");
    assert!(out.contains("(deploys branch prod)"), "kept: {out}");
    assert!(bare.join("hooks/pre-receive").exists());
    let (code, out, _) = flotilla(dir.path(), &["init-repo", "--branch", "main", path]);
    assert_eq!(code, 0);
    assert!(
        out.contains("; the tracked branch changed from prod to main: restart the leader"),
        "{out}"
    );
    assert_eq!(git_ok(&bare, &["config", "flotilla.branch"]), "main");
    assert_eq!(git_ok(&bare, &["symbolic-ref", "HEAD"]), "refs/heads/main");
}

/// Every path under `path` (or `path` itself for a file), relative.
fn walk(path: &std::path::Path) -> Vec<String> {
    if path.is_file() {
        return vec![std::fs::read_to_string(path).unwrap()];
    }
    if !path.exists() {
        return Vec::new();
    }
    let mut found = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap().path();
            found.push(entry.strip_prefix(path).unwrap().display().to_string());
            if entry.is_dir() {
                pending.push(entry);
            }
        }
    }
    found
}
