//! `flotilla history` and `flotilla rollback` on real repositories built with
//! the `git` CLI: outcomes read from rollout notes, rollbacks in the
//! leader's bare repository and in a clone, the same tree as `git revert`,
//! and the refusals. No network, no Docker.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::git::{git, git_ok, WorkTree};
use flotilla::repo::{self, ObjectOutcome, Outcome, RolloutRecord};
use git2::Oid;

const NODE: &str = "\
apiVersion: flotilla.dev/v1
kind: Node
metadata:
  name: n1
spec:
  address: 127.0.0.1
";

/// A Deployment manifest; `image` tells its versions apart.
fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: {name}
          image: {image}
"
    )
}

/// `apps.yaml` with a header comment and three documents.
fn apps(api: &str, web: &str, db: &str) -> String {
    format!(
        "# Everything the shop runs.\n{}---\n# The storefront.\n{}---\n{}",
        deployment("api", api),
        deployment("web", web),
        deployment("db", db)
    )
}

pub(crate) struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub(crate) fn flotilla(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("flotilla runs");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub(crate) fn flotilla_ok(dir: &Path, args: &[&str]) -> String {
    let run = flotilla(dir, args);
    assert!(
        run.ok,
        "flotilla {args:?} failed:\n{}{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// Runs `flotilla` expecting exit 1; returns stderr.
pub(crate) fn flotilla_fails(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("flotilla runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "flotilla {args:?}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A rollout record of `objects` (name, outcome), as the leader writes it.
fn record(outcome: Outcome, objects: &[(&str, Outcome)], reverted_by: Option<&str>) -> String {
    RolloutRecord {
        outcome,
        finished_at: "2026-11-24T01:02:03Z".to_string(),
        duration: Duration::from_millis(12_300),
        objects: objects
            .iter()
            .map(|(name, outcome)| ObjectOutcome {
                kind: "Deployment".to_string(),
                namespace: "default".to_string(),
                name: name.to_string(),
                outcome: *outcome,
                revision: "5f2c1a9e8b".to_string(),
                ready: 2,
                desired: 2,
                per_node: vec![("n1".to_string(), 2)],
            })
            .collect(),
        reason: (outcome == Outcome::Failed).then(|| "progress deadline exceeded".to_string()),
        reverted_by: reverted_by.map(str::to_string),
    }
    .render()
}

fn note(repository: &Path, commit: &str, text: &str) {
    let repository = repo::open(repository).unwrap();
    repo::append_note(&repository, Oid::from_str(commit).unwrap(), text).unwrap();
}

/// The leader's bare repository (made by `flotilla init-repo`) with `work`
/// pushed to it.
pub(crate) fn leader_repository(work: &WorkTree) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("cluster.git");
    flotilla_ok(dir.path(), &["init-repo", bare.to_str().unwrap()]);
    git_ok(
        work.path(),
        &["remote", "add", "cluster", bare.to_str().unwrap()],
    );
    git_ok(work.path(), &["push", "-q", "cluster", "HEAD:main"]);
    (dir, bare)
}

/// Tells the clone `work` to fetch the rollout records from `remote`, and
/// fetches, as docs/rollouts.md says.
fn fetch_notes(work: &Path, remote: &str) {
    git_ok(
        work,
        &[
            "config",
            "--add",
            &format!("remote.{remote}.fetch"),
            repo::NOTES_REFSPEC,
        ],
    );
    git_ok(work, &["fetch", "-q", remote]);
}

fn show(repository: &Path, object: &str) -> String {
    let output = git(repository, &["show", object]);
    assert!(output.status.success(), "git show {object}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// web v1 rolled out, v2 failed, then api and db changed (web still v2,
/// never rolled out since), then web v3 failed: the history
/// `flotilla rollback` chooses from.
struct Shop {
    work: WorkTree,
    first: String,
    web2: String,
    others: String,
    web3: String,
}

impl Shop {
    fn new() -> Shop {
        let work = WorkTree::new();
        work.write("nodes.yaml", NODE)
            .write("apps.yaml", &apps("api:1", "web:1", "db:1"));
        let first = work.commit("shop: first version");
        work.write("README.md", "# shop\n");
        work.commit("docs: readme");
        work.write("apps.yaml", &apps("api:1", "web:2", "db:1"));
        let web2 = work.commit("web: image 2");
        work.write("apps.yaml", &apps("api:2", "web:2", "db:2"));
        let others = work.commit("api, db: image 2");
        work.write("apps.yaml", &apps("api:2", "web:3", "db:2"));
        let web3 = work.commit("web: image 3");
        Shop {
            work,
            first,
            web2,
            others,
            web3,
        }
    }

    /// Notes as the leader would have written them into `repository`.
    fn record_rollouts(&self, repository: &Path) {
        use Outcome::{Failed, Succeeded};
        // The rollout of the first version is recorded on the readme commit,
        // deployed with it: it counts for the first version.
        let readme = git_ok(self.work.path(), &["rev-parse", &format!("{}^", self.web2)]);
        note(
            repository,
            &readme,
            &record(
                Succeeded,
                &[("api", Succeeded), ("web", Succeeded), ("db", Succeeded)],
                None,
            ),
        );
        note(
            repository,
            &self.web2,
            &record(Failed, &[("web", Failed)], Some(&self.others)),
        );
        note(
            repository,
            &self.web3,
            &record(Failed, &[("web", Failed)], None),
        );
    }
}

fn short(commit: &str) -> &str {
    &commit[..12]
}

#[test]
fn history_lists_revisions_with_outcomes_from_notes() {
    let shop = Shop::new();
    shop.record_rollouts(shop.work.path());
    let dir = shop.work.path();

    let json: serde_json::Value =
        serde_json::from_str(&flotilla_ok(dir, &["history", "--output", "json"])).unwrap();
    let rows: Vec<(String, String, serde_json::Value)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["commit"].as_str().unwrap().to_string(),
                row["subject"].as_str().unwrap().to_string(),
                row["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (shop.web3.clone(), "web: image 3".into(), "failed".into()),
            (
                shop.others.clone(),
                "api, db: image 2".into(),
                serde_json::Value::Null
            ),
            (shop.web2.clone(), "web: image 2".into(), "failed".into()),
            // The readme commit changed no manifest; its note counts here.
            (
                shop.first.clone(),
                "shop: first version".into(),
                "succeeded".into()
            ),
        ]
    );

    // One object: only the commits that changed it, as a table.
    let table = flotilla_ok(dir, &["history", "deploy/web"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("COMMIT        WHEN"), "{table}");
    assert!(lines[0].ends_with("  OUTCOME"), "{table}");
    let expected = [
        (&shop.web3, "web: image 3", "failed in 12.3s".to_string()),
        (
            &shop.web2,
            "web: image 2",
            format!("failed in 12.3s, reverted by {}", short(&shop.others)),
        ),
        (
            &shop.first,
            "shop: first version",
            "succeeded in 12.3s".to_string(),
        ),
    ];
    for (line, (commit, subject, outcome)) in lines[1..].iter().zip(&expected) {
        assert!(line.starts_with(short(commit)), "{line}");
        assert!(line.contains(subject), "{line}");
        assert!(line.contains("  Test  "), "the author: {line}");
        assert!(line.ends_with(outcome.as_str()), "{line}");
    }
    // Columns line up.
    let at = lines[0].find("OUTCOME").unwrap();
    assert!(lines[1..].iter().all(|l| l[at - 2..at] == *"  "), "{table}");

    // Other spellings of the object, and --limit.
    let json = flotilla_ok(
        dir,
        &[
            "history",
            "Deployment/default/web",
            "--limit",
            "2",
            "--output",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let commits: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["commit"].as_str().unwrap())
        .collect();
    assert_eq!(commits, [shop.web3.as_str(), shop.web2.as_str()]);
    assert_eq!(json[1]["rollout"]["revertedBy"], shop.others.as_str());
    assert_eq!(json[1]["rolloutCommit"], shop.web2.as_str());
    assert_eq!(json[1]["present"], true);

    let api = flotilla_ok(dir, &["history", "deployment/api", "-n", "default"]);
    assert_eq!(api.lines().count(), 3, "{api}");
    // api's latest record is from the first rollout: its version of the
    // second change was never rolled out.
    assert!(api.lines().nth(1).unwrap().ends_with("  -"), "{api}");
    assert!(
        api.lines().nth(2).unwrap().ends_with("succeeded in 12.3s"),
        "{api}"
    );
}

#[test]
fn history_shows_invalid_commits_and_removals_never_failing() {
    let work = WorkTree::new();
    work.write("web.yaml", &deployment("web", "web:1"));
    work.commit("web 1");
    work.write(
        "web.yaml",
        &deployment("web", "web:1").replace("replicas: 2", "replicas: two"),
    );
    let broken = work.commit("web: broken");
    work.write("other.yaml", "a: [1, 2\n");
    let unparsable = work.commit("a file that does not parse");
    work.remove("other.yaml");
    work.write("web.yaml", &deployment("web", "web:2"));
    work.commit("web 2");
    work.remove("web.yaml");
    let removed = work.commit("web: gone");

    let json: serde_json::Value =
        serde_json::from_str(&flotilla_ok(work.path(), &["history", "--output", "json"])).unwrap();
    let outcomes: Vec<(&str, &serde_json::Value)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["subject"].as_str().unwrap(), &r["outcome"]))
        .collect();
    let null = serde_json::Value::Null;
    let invalid = serde_json::Value::from("invalid");
    assert_eq!(
        outcomes,
        [
            ("web: gone", &null),
            ("web 2", &null),
            ("a file that does not parse", &invalid),
            ("web: broken", &invalid),
            ("web 1", &null),
        ]
    );

    let web: serde_json::Value = serde_json::from_str(&flotilla_ok(
        work.path(),
        &["history", "deployment/web", "--output", "json"],
    ))
    .unwrap();
    let rows: Vec<(&str, bool)> = web
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["commit"].as_str().unwrap(),
                r["present"].as_bool().unwrap(),
            )
        })
        .collect();
    let first = git_ok(work.path(), &["rev-parse", "HEAD~4"]);
    let web2 = git_ok(work.path(), &["rev-parse", "HEAD~1"]);
    assert_eq!(
        rows,
        [
            (removed.as_str(), false),
            (web2.as_str(), true),
            (broken.as_str(), true),
            (first.as_str(), true),
        ],
        "the unparsable file did not change web; {unparsable} is not listed"
    );
    let table = flotilla_ok(work.path(), &["history", "deployment/web"]);
    assert!(
        table.lines().nth(3).unwrap().ends_with("  invalid"),
        "{table}"
    );
}

#[test]
fn rollback_in_the_leaders_repository_restores_the_last_successful_revision() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    shop.record_rollouts(&bare);

    let out = flotilla_ok(&bare, &["rollback", "deployment/web"]);
    assert!(
        out.starts_with(&format!(
            "Restoring Deployment default/web as of {} (\"shop: first version\"): its last successful rollout.",
            short(&shop.first)
        )),
        "{out}"
    );
    // Issue 12, item 4: no leader runs here; "the leader deploys it" would
    // be a false reassurance.
    let named = std::fs::canonicalize(&bare).unwrap();
    assert!(
        out.ends_with(&format!(
            "\nno leader is running on {repo}: nothing deploys it until `flotilla leader --repo \
             {repo}` (or `flotilla apply`) runs\n",
            repo = named.display()
        )),
        "{out}"
    );
    assert!(!out.contains("the leader deploys it"), "{out}");

    // One new commit on main, a child of the old tip...
    assert_eq!(git_ok(&bare, &["rev-parse", "main^"]), shop.web3);
    // ...changing only web's document: api and db stay at image 2, the
    // comments and marker lines as they were.
    assert_eq!(
        git_ok(&bare, &["diff", "--name-only", "main^", "main"]),
        "apps.yaml"
    );
    assert_eq!(
        show(&bare, "main:apps.yaml"),
        apps("api:2", "web:1", "db:2")
    );
    assert_eq!(show(&bare, "main:nodes.yaml"), NODE);
    assert_eq!(
        git_ok(&bare, &["log", "-1", "--format=%B", "main"]),
        format!(
            "Rollback deployment/web to {s}\n\nRestores Deployment default/web as of {s} (\"shop: first version\").",
            s = short(&shop.first)
        )
    );
    // It loads, and the branch it moved is the tracked one.
    flotilla_ok(&bare, &["validate", "--rev", "main"]);
}

#[test]
fn rollback_without_notes_restores_the_previous_version() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    flotilla_ok(
        &bare,
        &["rollback", "deploy/web", "-m", "web 3 leaks memory"],
    );
    assert_eq!(
        show(&bare, "main:apps.yaml"),
        apps("api:2", "web:2", "db:2")
    );
    let message = git_ok(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.ends_with("(\"web: image 2\").\n\nweb 3 leaks memory"),
        "{message}"
    );
}

#[test]
fn rollback_to_a_named_commit() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    shop.record_rollouts(&bare);
    // A failed revision, when asked for by name.
    flotilla_ok(&bare, &["rollback", "deployment/web", "--to", &shop.others]);
    assert_eq!(
        show(&bare, "main:apps.yaml"),
        apps("api:2", "web:2", "db:2")
    );
    let error = flotilla_fails(&bare, &["rollback", "deployment/web", "--to", &shop.web2]);
    assert_eq!(error, "error: deployment/web is already at that revision\n");
    flotilla_ok(&bare, &["rollback", "deployment/web", "--to", "main~1"]);
    assert_eq!(
        show(&bare, "main:apps.yaml"),
        apps("api:2", "web:3", "db:2")
    );
}

#[test]
fn dry_run_prints_the_diff_and_writes_nothing() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    let refs_before = git_ok(&bare, &["show-ref"]);
    let out = flotilla_ok(&bare, &["rollback", "deployment/web", "--dry-run"]);
    assert!(out.contains("--- a/apps.yaml\n+++ b/apps.yaml\n"), "{out}");
    assert!(
        out.contains("\n-          image: web:3\n+          image: web:2\n"),
        "{out}"
    );
    assert!(out.ends_with("dry run: nothing written\n"), "{out}");
    assert_eq!(git_ok(&bare, &["show-ref"]), refs_before);

    fetch_notes(shop.work.path(), "cluster");
    let before = show(shop.work.path(), "HEAD:apps.yaml");
    flotilla_ok(
        shop.work.path(),
        &["rollback", "deployment/web", "--dry-run"],
    );
    assert_eq!(git_ok(shop.work.path(), &["rev-parse", "HEAD"]), shop.web3);
    assert_eq!(
        std::fs::read_to_string(shop.work.path().join("apps.yaml")).unwrap(),
        before
    );
    assert_eq!(git_ok(shop.work.path(), &["status", "--porcelain"]), "");
}

#[test]
fn rollback_in_a_clone_commits_updates_the_work_tree_and_the_push_is_accepted() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    let work = shop.work.path();
    fetch_notes(work, "cluster");

    let out = flotilla_ok(work, &["rollback", "deployment/web"]);
    assert!(out.ends_with("push it: git push\n"), "{out}");
    assert_eq!(git_ok(work, &["rev-parse", "HEAD^"]), shop.web3);
    assert_eq!(
        git_ok(work, &["status", "--porcelain"]),
        "",
        "work tree and index follow"
    );
    assert_eq!(
        std::fs::read_to_string(work.join("apps.yaml")).unwrap(),
        apps("api:2", "web:2", "db:2")
    );

    let push = git(work, &["push", "cluster", "HEAD:main"]);
    let seen = String::from_utf8_lossy(&push.stderr);
    assert!(push.status.success(), "{seen}");
    assert!(seen.contains("valid: 1 node and 3 workloads"), "{seen}");
    assert_eq!(
        git_ok(&bare, &["rev-parse", "main"]),
        git_ok(work, &["rev-parse", "HEAD"])
    );
}

#[test]
fn rollback_in_a_clone_refuses_uncommitted_changes_to_the_files_it_touches() {
    let shop = Shop::new();
    let work = shop.work.path();
    // A change elsewhere is no obstacle to a dry run or to the refusal.
    shop.work.write("nodes.yaml", &format!("{NODE}# edited\n"));
    shop.work.write(
        "apps.yaml",
        &format!("{}# edited\n", apps("api:2", "web:3", "db:2")),
    );
    let error = flotilla_fails(work, &["rollback", "deployment/web"]);
    assert_eq!(
        error,
        "error: apps.yaml: uncommitted changes; commit or stash them first\n"
    );
    assert_eq!(git_ok(work, &["rev-parse", "HEAD"]), shop.web3);

    // Only the touched files count.
    git_ok(work, &["checkout", "apps.yaml"]);
    flotilla_ok(work, &["rollback", "deployment/web"]);
    assert_eq!(git_ok(work, &["status", "--porcelain"]), "M nodes.yaml");
}

/// For a commit that changes one object, `git revert` and `flotilla
/// rollback` (no notes: the previous version) give the same tree.
#[test]
fn rollback_gives_the_same_tree_as_git_revert() {
    let web1 = deployment("web", "web:1");
    let web2 = deployment("web", "web:2");
    let api = deployment("api", "api:1");
    let db = deployment("db", "db:1");
    // (case, the files before, the change: a file's new text or its removal)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, String)>,
        Vec<(&'a str, Option<String>)>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "changed in a file of several documents",
            vec![("apps.yaml", format!("{api}---\n{web1}---\n{db}"))],
            vec![("apps.yaml", Some(format!("{api}---\n{web2}---\n{db}")))],
        ),
        (
            "changed, its file without a final line break",
            vec![("apps.yaml", format!("{api}---\n{}", web1.trim_end()))],
            vec![("apps.yaml", Some(format!("{api}---\n{}", web2.trim_end())))],
        ),
        (
            "added to a file",
            vec![("apps.yaml", format!("{api}---\n{db}"))],
            vec![("apps.yaml", Some(format!("{api}---\n{db}---\n{web2}")))],
        ),
        (
            "added in a file of its own",
            vec![("api.yaml", api.clone())],
            vec![("web.yaml", Some(web2.clone()))],
        ),
        (
            "removed from the middle of a file",
            vec![("apps.yaml", format!("{api}---\n{web1}---\n{db}"))],
            vec![("apps.yaml", Some(format!("{api}---\n{db}")))],
        ),
        (
            "removed with its file",
            vec![
                ("api.yaml", api.clone()),
                ("web.yaml", format!("# web\n{web1}")),
            ],
            vec![("web.yaml", None)],
        ),
    ];
    for (name, before, change) in cases {
        let work = WorkTree::new();
        work.write("nodes.yaml", NODE);
        for (path, text) in &before {
            work.write(path, text);
        }
        work.commit("before");
        for (path, text) in &change {
            match text {
                Some(text) => work.write(path, text),
                None => work.remove(path),
            };
        }
        let changed = work.commit("the change");

        git_ok(work.path(), &["revert", "--no-edit", "HEAD"]);
        let reverted = git_ok(work.path(), &["rev-parse", "HEAD^{tree}"]);
        git_ok(work.path(), &["reset", "-q", "--hard", &changed]);

        flotilla_ok(work.path(), &["rollback", "deployment/web"]);
        let rolled_back = git_ok(work.path(), &["rev-parse", "HEAD^{tree}"]);
        assert_eq!(rolled_back, reverted, "{name}");
        assert_eq!(
            git_ok(work.path(), &["status", "--porcelain"]),
            "",
            "{name}"
        );
    }
}

#[test]
fn refusals_are_one_clear_line() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    let check = |args: &[&str], expected: &str| {
        let refs = git_ok(&bare, &["show-ref"]);
        let error = flotilla_fails(&bare, args);
        assert_eq!(error, format!("error: {expected}\n"), "{args:?}");
        assert_eq!(
            git_ok(&bare, &["show-ref"]),
            refs,
            "nothing written: {args:?}"
        );
    };
    check(
        &["rollback", "deployment/webb"],
        "deployment/webb is not declared on main, now or before (did you mean deployment/web?)",
    );
    check(
        &["history", "deployment/webb"],
        "deployment/webb is not declared on main, now or before (did you mean deployment/web?)",
    );
    check(
        &["rollback", "node/n1"],
        "node/n1 has no earlier revision on main",
    );
    check(
        &["rollback", "cronjob/web"],
        "flotilla does not deploy CronJob objects yet (it deploys cluster, node, deployment, service, daemonset, statefulset, job, configmap, secret, ingress and persistentvolumeclaim)",
    );
    check(
        &["rollback", "deployment/web", "--branch", "nope"],
        &format!(
            "branch nope not found in {}/ (nothing pushed yet?)",
            bare.display()
        ),
    );
    check(
        &["rollback", "deployment/web", "--to", "no-such-rev"],
        &format!("revision `no-such-rev` not found in {}/", bare.display()),
    );

    // Notes that record only failures leave nothing to roll back to.
    note(
        &bare,
        &shop.web3,
        &record(Outcome::Failed, &[("web", Outcome::Failed)], None),
    );
    note(
        &bare,
        &shop.first,
        &record(Outcome::Failed, &[("web", Outcome::Failed)], None),
    );
    check(
        &["rollback", "deployment/web"],
        "no earlier revision of deployment/web on main was rolled out successfully; \
         choose one with --to (see `flotilla history deployment/web`)",
    );
}

#[test]
fn a_rollback_that_would_not_load_is_refused_with_the_diagnostics() {
    let work = WorkTree::new();
    work.write("web.yaml", &deployment("web", "web:1"));
    work.commit("web 1");
    work.write(
        "web.yaml",
        &deployment("web", "web:2").replace("replicas: 2", "replica: 2"),
    );
    let broken = work.commit("web: broken (committed without the hook)");
    work.write("web.yaml", &deployment("web", "web:3"));
    work.commit("web 3");

    let run = flotilla(
        work.path(),
        &["rollback", "deployment/web", "--to", &broken],
    );
    assert!(!run.ok);
    assert!(
        run.stdout.contains(
            "error: unknown field `replica`, did you mean `replicas`?\n  --> web.yaml:6:3"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "error: rolling back deployment/web would leave main invalid: fix the errors above, \
         or choose another revision with --to\n"
    );
    // Without --to, the broken version is skipped: it never loaded.
    flotilla_ok(work.path(), &["rollback", "deployment/web"]);
    assert_eq!(
        std::fs::read_to_string(work.path().join("web.yaml")).unwrap(),
        deployment("web", "web:1")
    );
}

/// The tree of `rev` without the files `flotilla` does not read: what the
/// manifests of a whole-tree rollback are compared with.
fn manifests_at(repository: &Path, rev: &str) -> Vec<(String, String)> {
    let repository = repo::open(repository).unwrap();
    repo::read_revision(&repository, rev)
        .unwrap()
        .files
        .into_iter()
        .map(|f| (f.path, f.text))
        .collect()
}

#[test]
fn rollback_without_an_object_restores_every_manifest_as_of_the_last_successful_rollout() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    shop.record_rollouts(&bare);

    let out = flotilla_ok(&bare, &["rollback"]);
    let new = git_ok(&bare, &["rev-parse", "main"]);
    assert_eq!(
        out,
        format!(
            "Restoring every manifest as of {first} (\"shop: first version\"): the last \
             successful rollout.\n  apps.yaml: changed\n\ncommitted {new} on main: Rollback to \
             {first}\nno leader is running on {repo}: nothing deploys it until `flotilla leader \
             --repo {repo}` (or `flotilla apply`) runs\n",
            first = short(&shop.first),
            new = short(&new),
            repo = std::fs::canonicalize(&bare).unwrap().display()
        )
    );
    // One commit, a child of the old tip: api, web and db all back at
    // image 1 (the per-object form would have left api and db at 2), the
    // readme added since left alone.
    assert_eq!(git_ok(&bare, &["rev-parse", "main^"]), shop.web3);
    assert_eq!(
        show(&bare, "main:apps.yaml"),
        apps("api:1", "web:1", "db:1")
    );
    assert_eq!(
        manifests_at(&bare, "main"),
        manifests_at(&bare, &shop.first)
    );
    assert_eq!(
        git_ok(&bare, &["diff", "--name-status", &shop.first, "main"]),
        "A\tREADME.md"
    );
    assert_eq!(
        git_ok(&bare, &["log", "-1", "--format=%B", "main"]),
        format!(
            "Rollback to {s}\n\nRestores every manifest as of {s} (\"shop: first version\"), \
             undoing the changes to them since.",
            s = short(&shop.first)
        )
    );
    flotilla_ok(&bare, &["validate", "--rev", "main"]);

    // Now the tip declares what the first version did, which succeeded:
    // the next one back is the one before it that succeeded and differs.
    // There is none.
    let error = flotilla_fails(&bare, &["rollback"]);
    assert_eq!(
        error,
        "error: no earlier commit on main was rolled out successfully; choose one with --to \
         (see `flotilla history`)\n"
    );
}

#[test]
fn rollback_without_an_object_or_notes_restores_the_previous_version() {
    let shop = Shop::new();
    let work = shop.work.path();
    // A readme-only commit on top does not count as a version.
    shop.work.write("README.md", "# shop\n\nnow with docs\n");
    let readme = shop.work.commit("docs: more");
    let out = flotilla_ok(work, &["rollback", "-m", "web 3 leaks memory"]);
    assert!(
        out.starts_with(&format!(
            "Restoring every manifest as of {} (\"api, db: image 2\"): the previous version \
             (no rollout recorded).\n",
            short(&shop.others)
        )),
        "{out}"
    );
    assert!(out.ends_with("push it: git push\n"), "{out}");
    // In a clone: the work tree and index follow.
    assert_eq!(git_ok(work, &["rev-parse", "HEAD^"]), readme);
    assert_eq!(git_ok(work, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(work.join("apps.yaml")).unwrap(),
        apps("api:2", "web:2", "db:2")
    );
    assert_eq!(
        std::fs::read_to_string(work.join("README.md")).unwrap(),
        "# shop\n\nnow with docs\n"
    );
    let message = git_ok(work, &["log", "-1", "--format=%B"]);
    assert!(
        message.ends_with("undoing the changes to them since.\n\nweb 3 leaks memory"),
        "{message}"
    );
    // The same tree as `git revert` of the one commit that changed a
    // manifest since.
    git_ok(work, &["reset", "-q", "--hard", &readme]);
    git_ok(work, &["revert", "--no-edit", &shop.web3]);
    let reverted = git_ok(work, &["rev-parse", "HEAD^{tree}"]);
    git_ok(work, &["reset", "-q", "--hard", &readme]);
    flotilla_ok(work, &["rollback"]);
    assert_eq!(git_ok(work, &["rev-parse", "HEAD^{tree}"]), reverted);
}

#[test]
fn rollback_without_an_object_to_a_named_commit_removes_manifests_added_since() {
    let work = WorkTree::new();
    // Drafts are not read: ignored files are no manifests, before or after.
    work.write(".flotillaignore", "drafts/\n")
        .write("nodes.yaml", NODE)
        .write("web.yaml", &deployment("web", "web:1"));
    let first = work.commit("web 1");
    work.write("web.yaml", &deployment("web", "web:2"))
        .write("api/api.yaml", &deployment("api", "api:1"))
        .write("drafts/db.yaml", "not: [valid")
        .write("NOTES.md", "api is new\n");
    work.commit("web 2, api");
    work.write("web.yaml", &deployment("web", "web:3"));
    let tip = work.commit("web 3");
    let (_dir, bare) = leader_repository(&work);

    flotilla_ok(&bare, &["rollback", "--to", &first]);
    assert_eq!(git_ok(&bare, &["rev-parse", "main^"]), tip);
    assert_eq!(manifests_at(&bare, "main"), manifests_at(&bare, &first));
    // Only the manifests changed: the ignored draft and the notes stay.
    assert_eq!(
        git_ok(&bare, &["diff", "--name-status", "main^", "main"]),
        "D\tapi/api.yaml\nM\tweb.yaml"
    );
    assert_eq!(show(&bare, "main:drafts/db.yaml"), "not: [valid");
    assert_eq!(show(&bare, "main:NOTES.md"), "api is new\n");
    let message = git_ok(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        message.ends_with("Removes api/api.yaml: not there then."),
        "{message}"
    );
    flotilla_ok(&bare, &["validate", "--rev", "main"]);

    // A .flotillaignore changed since is restored with the manifests:
    // after the rollback the branch reads as the target did.
    work.write(".flotillaignore", "drafts/\nold/\n")
        .write("old/web.yaml", &deployment("web", "web:old"));
    git_ok(work.path(), &["rm", "-q", "web.yaml"]);
    work.commit("web moves to old/, ignored");
    work.write(".flotillaignore", "drafts/\n");
    git_ok(work.path(), &["mv", "old/web.yaml", "web.yaml"]);
    work.write("web.yaml", &deployment("web", "web:4"));
    let web4 = work.commit("web 4");
    work.write(".flotillaignore", "drafts/\nweb.yaml\n")
        .write("web.yml", &deployment("web", "web:5"));
    work.commit("web 5 in web.yml");
    flotilla_ok(work.path(), &["rollback", "--to", &web4]);
    assert_eq!(
        manifests_at(work.path(), "HEAD"),
        manifests_at(work.path(), &web4)
    );
    assert_eq!(
        git_ok(work.path(), &["diff", "--name-status", "HEAD^", "HEAD"]),
        "M\t.flotillaignore\nD\tweb.yml"
    );
    assert_eq!(git_ok(work.path(), &["status", "--porcelain"]), "");
}

#[test]
fn whole_tree_dry_run_prints_the_diff_and_writes_nothing() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    shop.record_rollouts(&bare);
    let refs_before = git_ok(&bare, &["show-ref"]);
    let out = flotilla_ok(&bare, &["rollback", "--dry-run"]);
    assert!(out.starts_with("Restoring every manifest as of "), "{out}");
    assert!(out.contains("  apps.yaml: changed\n"), "{out}");
    assert!(out.contains("--- a/apps.yaml\n+++ b/apps.yaml\n"), "{out}");
    for (now, then) in [("api:2", "api:1"), ("web:3", "web:1"), ("db:2", "db:1")] {
        assert!(
            out.contains(&format!(
                "\n-          image: {now}\n+          image: {then}\n"
            )),
            "{now} -> {then}: {out}"
        );
    }
    assert!(out.ends_with("dry run: nothing written\n"), "{out}");
    assert_eq!(git_ok(&bare, &["show-ref"]), refs_before);
}

#[test]
fn a_whole_tree_rollback_that_would_not_load_is_refused_with_the_diagnostics() {
    let work = WorkTree::new();
    work.write("web.yaml", &deployment("web", "web:1"));
    work.commit("web 1");
    work.write(
        "web.yaml",
        &deployment("web", "web:2").replace("replicas: 2", "replica: 2"),
    );
    let broken = work.commit("web: broken (committed without the hook)");
    work.write("web.yaml", &deployment("web", "web:3"));
    let tip = work.commit("web 3");

    let run = flotilla(work.path(), &["rollback", "--to", &broken]);
    assert!(!run.ok);
    assert!(
        run.stdout.contains(
            "error: unknown field `replica`, did you mean `replicas`?\n  --> web.yaml:6:3"
        ),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        format!(
            "error: rolling back main to {} would leave main invalid: fix the errors above, \
             or choose another revision with --to\n",
            short(&broken)
        )
    );
    assert_eq!(git_ok(work.path(), &["rev-parse", "HEAD"]), tip);
    // Without --to, the broken version is skipped: it never loaded.
    flotilla_ok(work.path(), &["rollback"]);
    assert_eq!(
        std::fs::read_to_string(work.path().join("web.yaml")).unwrap(),
        deployment("web", "web:1")
    );
}

#[test]
fn a_whole_tree_rollback_with_nothing_to_do_is_refused() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    let refs = git_ok(&bare, &["show-ref"]);
    // The readme commit declares what the first one did.
    let readme = git_ok(&bare, &["rev-parse", &format!("{}^", shop.web2)]);
    let error = flotilla_fails(&bare, &["rollback", "--to", "main"]);
    assert_eq!(
        error,
        format!(
            "error: nothing to roll back: the manifests on main are already as they were at {}\n",
            short(&shop.web3)
        )
    );
    // A -n without an object is refused, not ignored.
    let run = flotilla(&bare, &["rollback", "-n", "staging"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("--namespace"), "{}", run.stderr);
    assert_eq!(git_ok(&bare, &["show-ref"]), refs);

    // First version, readme: the same manifests.
    let work = shop.work.path();
    git_ok(work, &["reset", "-q", "--hard", &readme]);
    let error = flotilla_fails(work, &["rollback", "--to", &shop.first]);
    assert_eq!(
        error,
        format!(
            "error: nothing to roll back: the manifests on main are already as they were at {}\n",
            short(&shop.first)
        )
    );
    assert_eq!(git_ok(work, &["rev-parse", "HEAD"]), readme);
}

/// A long history stays quick: trees and blobs are read once, commits that
/// change nothing are skipped. (Built with `git fast-import`: 1,000 commits.)
#[test]
fn history_of_a_thousand_commits() {
    let work = WorkTree::new();
    let mut stream = String::new();
    let blob = |stream: &mut String, path: &str, text: &str| {
        stream.push_str(&format!(
            "M 100644 inline {path}\ndata {}\n{text}\n",
            text.len()
        ));
    };
    for i in 0..1000 {
        let message = format!("commit {i}");
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter Test <test@example.invalid> {} +0000\ndata {}\n{message}\n",
            1_795_000_000 + i,
            message.len()
        ));
        if i == 0 {
            for n in 0..20 {
                blob(
                    &mut stream,
                    &format!("apps/app-{n}.yaml"),
                    &deployment(&format!("app-{n}"), "img:0"),
                );
            }
        } else if i % 10 == 0 {
            blob(&mut stream, "README.md", &format!("readme {i}"));
        } else {
            let n = i % 20;
            blob(
                &mut stream,
                &format!("apps/app-{n}.yaml"),
                &deployment(&format!("app-{n}"), &format!("img:{i}")),
            );
        }
        stream.push('\n');
    }
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(work.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stream.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    git_ok(work.path(), &["reset", "-q", "--hard", "main"]);

    let started = std::time::Instant::now();
    let all = flotilla_ok(work.path(), &["history", "--output", "json"]);
    let one = flotilla_ok(work.path(), &["history", "deployment/app-3"]);
    let elapsed = started.elapsed();
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        901,
        "every commit but the readme ones"
    );
    // app-3 changes in commits 3, 23, 43... (50 of them, none a multiple
    // of 10), plus the first.
    assert_eq!(one.lines().count(), 1 + 50 + 1, "{one}");
    eprintln!("history of 1,000 commits, twice: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}

/// Everything under `dir`, sorted (to show nothing was created there).
fn listing(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

/// A clone whose `apps` directory became, in its last commit, a symbolic
/// link to a directory outside the repository; returns (work tree, the
/// commit with the directory, the outside directory).
fn apps_replaced_by_a_link() -> (WorkTree, String, tempfile::TempDir) {
    let outside = tempfile::tempdir().unwrap();
    let work = WorkTree::new();
    work.write("nodes.yaml", NODE)
        .write("apps/web.yaml", &deployment("web", "web:1"));
    let first = work.commit("web 1");
    std::fs::remove_dir_all(work.path().join("apps")).unwrap();
    std::os::unix::fs::symlink(outside.path(), work.path().join("apps")).unwrap();
    work.commit("apps: a link now");
    (work, first, outside)
}

/// Issue 10, item 5: rolling back over a commit that replaced a directory
/// by a link to elsewhere wrote the restored file through the link, outside
/// the repository. The link is replaced by the directory, as `git checkout`
/// does, and nothing is written outside.
#[test]
fn rollback_replaces_a_committed_link_and_never_writes_through_it() {
    for args in [&["rollback"][..], &["rollback", "deployment/web"]] {
        let (work, first, outside) = apps_replaced_by_a_link();
        let work = work.path();
        flotilla_ok(work, args);
        assert_eq!(listing(outside.path()), Vec::<String>::new(), "{args:?}");
        let apps = work.join("apps");
        assert!(apps.symlink_metadata().unwrap().is_dir(), "{args:?}");
        assert_eq!(
            std::fs::read_to_string(apps.join("web.yaml")).unwrap(),
            deployment("web", "web:1")
        );
        assert_eq!(git_ok(work, &["status", "--porcelain"]), "", "{args:?}");
        assert_eq!(
            git_ok(work, &["rev-parse", "HEAD^{tree}"]),
            git_ok(work, &["rev-parse", &format!("{first}^{{tree}}")]),
            "{args:?}"
        );
    }

    // A manifest replaced by a link to a file elsewhere: the link goes, the
    // file it points to stays as it is.
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let work = WorkTree::new();
    work.write("nodes.yaml", NODE)
        .write("web.yaml", &deployment("web", "web:1"));
    work.commit("web 1");
    work.remove("web.yaml");
    std::os::unix::fs::symlink(&victim, work.path().join("web.yaml")).unwrap();
    work.commit("web: a link now");
    flotilla_ok(work.path(), &["rollback"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let web = work.path().join("web.yaml");
    assert!(web.symlink_metadata().unwrap().is_file());
    assert_eq!(
        std::fs::read_to_string(web).unwrap(),
        deployment("web", "web:1")
    );
    assert_eq!(git_ok(work.path(), &["status", "--porcelain"]), "");
}

/// A link the tip does not hold (made in the working tree only) where the
/// rollback puts a directory back is refused before anything is written.
#[test]
fn rollback_refuses_a_link_of_the_working_tree_in_its_way() {
    let outside = tempfile::tempdir().unwrap();
    let work = WorkTree::new();
    work.write("nodes.yaml", NODE)
        .write("apps/web.yaml", &deployment("web", "web:1"));
    work.commit("web 1");
    std::fs::remove_dir_all(work.path().join("apps")).unwrap();
    let gone = work.commit("apps: none");
    std::os::unix::fs::symlink(outside.path(), work.path().join("apps")).unwrap();
    // Even when ignored.
    std::fs::write(work.path().join(".git/info/exclude"), "apps\n").unwrap();

    let error = flotilla_fails(work.path(), &["rollback"]);
    assert_eq!(
        error,
        "error: apps: a symbolic link in the working tree where the commit writes \
         apps/web.yaml; refusing to write through it (commit or remove it first)\n"
    );
    assert_eq!(listing(outside.path()), Vec::<String>::new());
    assert_eq!(git_ok(work.path(), &["rev-parse", "HEAD"]), gone);
}

/// Issue 10, item 11: authors and subjects are anyone's text; `history`
/// and `rollback` show their terminal escapes escaped, `history --output
/// json` keeps them as they are.
#[test]
fn terminal_escapes_in_authors_and_subjects_are_shown_not_run() {
    let work = WorkTree::new();
    work.write("web.yaml", &deployment("web", "web:1"));
    work.commit("web 1");
    work.write("web.yaml", &deployment("web", "web:2"));
    let subject = "\x1b]0;owned\x07\x1b[2Jweb 2\r";
    let author = "Mallory\x1b[8m <m@example.invalid>";
    git_ok(work.path(), &["add", "-A"]);
    git_ok(
        work.path(),
        &["commit", "-q", "--author", author, "-m", subject],
    );

    let out = flotilla_ok(work.path(), &["history"]);
    assert!(!out.contains(['\x1b', '\x07', '\r']), "{out:?}");
    assert!(out.contains("Mallory\\x1b[8m"), "{out}");
    assert!(out.contains("\\x1b]0;owned\\x07\\x1b[2Jweb 2"), "{out}");
    let out = flotilla_ok(work.path(), &["history", "--output", "json"]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json[0]["author"], "Mallory\x1b[8m");

    work.write("web.yaml", &deployment("web", "web:3"));
    work.commit("web 3");
    let out = flotilla_ok(
        work.path(),
        &["rollback", "deployment/web", "--to", "HEAD^", "--dry-run"],
    );
    assert!(!out.contains(['\x1b', '\x07', '\r']), "{out:?}");
    assert!(
        out.contains("(\"\\x1b]0;owned\\x07\\x1b[2Jweb 2\")"),
        "{out}"
    );
}

/// Runs `flotilla` in `dir` with `env` added; returns (exit code, stdout, stderr).
fn flotilla_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("flotilla runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The outcome column of `flotilla history --output json` in `dir`.
fn outcomes(dir: &Path, object: Option<&str>) -> (Vec<serde_json::Value>, String) {
    let mut args = vec!["history", "--output", "json"];
    args.extend(object);
    let (code, stdout, stderr) = flotilla_env(dir, &args, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let outcomes = json
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["outcome"].clone())
        .collect();
    (outcomes, stderr)
}

/// Issue 12, item 1: `git clone` does not fetch `refs/notes/flotilla`.
/// Without the records, `history` says every outcome is unknown (not `-`,
/// not "never rolled out") and `rollback` refuses to choose a revision,
/// instead of bringing back web 3, whose rollout failed; `--to` still
/// works. Cloned with the refspec init-repo prints, or once a clone fetches
/// them, both decide as in the leader's repository.
#[test]
fn a_clone_without_the_rollout_records_says_so_and_rollback_refuses() {
    let shop = Shop::new();
    let (dir, bare) = leader_repository(&shop.work);
    shop.record_rollouts(&bare);
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

    let hint = "hint: fetch them with `git config --add remote.origin.fetch \
                +refs/notes/flotilla:refs/notes/flotilla && git fetch origin`";
    let (rows, warning) = outcomes(&clone, None);
    assert_eq!(rows, ["unknown"; 4], "{warning}");
    assert!(
        warning.starts_with(
            "warning: the rollout records (refs/notes/flotilla) were not fetched into this \
             repository (git fetches notes only when told to): every outcome below is unknown\n"
        ),
        "{warning}"
    );
    assert!(warning.contains(hint), "{warning}");
    let table = flotilla_ok(&clone, &["history", "deployment/web"]);
    assert!(
        table.lines().skip(1).all(|l| l.ends_with("  unknown")),
        "{table}"
    );

    for args in [&["rollback", "deployment/web"][..], &["rollback"][..]] {
        let (code, stdout, stderr) = flotilla_env(&clone, args, &[]);
        assert_eq!(code, 1, "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.starts_with(
                "error: the rollout records (refs/notes/flotilla) were not fetched into this \
                 repository, so which revision of "
            ),
            "{stderr}"
        );
        assert!(stderr.contains(hint), "{stderr}");
        assert!(stderr.contains("--to COMMIT"), "{stderr}");
    }
    assert_eq!(git_ok(&clone, &["rev-parse", "HEAD"]), shop.web3);
    // `rollout status` cannot see a failure the leader recorded: it says so.
    let args = [
        "rollout",
        "status",
        "deployment/web",
        "--timeout",
        "0",
        "--connect-timeout",
        "1",
        "--known-hosts",
        "/dev/null",
    ];
    let (_, _, stderr) = flotilla_env(&clone, &args, &[]);
    assert!(
        stderr.contains(
            "were not fetched into this repository (git fetches notes only when told to): \
             a failure the leader recorded cannot be seen here"
        ),
        "{stderr}"
    );
    assert!(stderr.contains(hint), "{stderr}");
    // Named by hand, a revision needs no records.
    let out = flotilla_ok(
        &clone,
        &[
            "rollback",
            "deployment/web",
            "--to",
            &shop.first,
            "--dry-run",
        ],
    );
    assert!(out.contains("as asked"), "{out}");

    // Fetched once by hand, without the refspec: decided from, with a
    // warning that they may be stale.
    git_ok(
        &clone,
        &[
            "fetch",
            "-q",
            "origin",
            "refs/notes/flotilla:refs/notes/flotilla",
        ],
    );
    let (rows, warning) = outcomes(&clone, Some("deployment/web"));
    assert_eq!(rows, ["failed", "failed", "succeeded"]);
    assert!(
        warning.starts_with(
            "warning: no remote of this repository fetches the rollout records \
             (refs/notes/flotilla): those here may be older than the leader's\n"
        ),
        "{warning}"
    );

    // With the refspec: no warning, and the rollback of the leader's repository.
    fetch_notes(&clone, "origin");
    let (rows, warning) = outcomes(&clone, Some("deployment/web"));
    assert_eq!(rows, ["failed", "failed", "succeeded"]);
    assert_eq!(warning, "");
    let out = flotilla_ok(&clone, &["rollback", "deployment/web", "--dry-run"]);
    assert!(out.contains("its last successful rollout"), "{out}");

    // Cloned as init-repo says: the records come with the clone.
    let with_notes = dir.path().join("with-notes");
    git_ok(
        dir.path(),
        &[
            "clone",
            "-q",
            "-c",
            &format!("remote.origin.fetch={}", repo::NOTES_REFSPEC),
            bare.to_str().unwrap(),
            with_notes.to_str().unwrap(),
        ],
    );
    let (rows, warning) = outcomes(&with_notes, Some("deployment/web"));
    assert_eq!(rows, ["failed", "failed", "succeeded"]);
    assert_eq!(warning, "");
    // The leader's own repository holds the records, whatever remote it has.
    git_ok(&bare, &["remote", "add", "backup", "/nowhere"]);
    let (rows, warning) = outcomes(&bare, Some("deployment/web"));
    assert_eq!(rows, ["failed", "failed", "succeeded"]);
    assert_eq!(warning, "");
}

/// Issue 12, item 10: the commits flotilla writes honour `GIT_AUTHOR_*` and
/// `GIT_COMMITTER_*` as git does (CI bots set them), in a clone and in the
/// leader's bare repository; without them, git config's identity.
#[test]
fn rollback_commits_honour_the_git_identity_variables() {
    let shop = Shop::new();
    let (_dir, bare) = leader_repository(&shop.work);
    let identity = [
        ("GIT_AUTHOR_NAME", "CI Bot"),
        ("GIT_AUTHOR_EMAIL", "bot@ci.example"),
        ("GIT_AUTHOR_DATE", "@1795395723 +0100"),
        ("GIT_COMMITTER_NAME", "Release Train"),
        ("GIT_COMMITTER_EMAIL", "train@ci.example"),
        ("GIT_COMMITTER_DATE", "2026-11-24T01:02:03Z"),
    ];
    let format = "--format=%an|%ae|%aI|%cn|%ce|%cI";
    let expected = "CI Bot|bot@ci.example|2026-11-23T02:02:03+01:00|\
                    Release Train|train@ci.example|2026-11-24T01:02:03Z";
    for repository in [shop.work.path(), bare.as_path()] {
        let args = ["rollback", "deployment/web", "--to", &shop.first];
        let (code, stdout, stderr) = flotilla_env(repository, &args, &identity);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert_eq!(git_ok(repository, &["log", "-1", format, "main"]), expected);
    }

    // Without them: the repository's git config, as before.
    git_ok(&bare, &["config", "user.name", "Ops"]);
    git_ok(&bare, &["config", "user.email", "ops@example.com"]);
    let args = ["rollback", "deployment/web", "--to", &shop.web2];
    let (code, stdout, stderr) = flotilla_env(&bare, &args, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        git_ok(&bare, &["log", "-1", "--format=%an|%ae|%cn|%ce", "main"]),
        "Ops|ops@example.com|Ops|ops@example.com"
    );

    // A date git would not read either is an error, and nothing is written.
    let tip = git_ok(&bare, &["rev-parse", "main"]);
    let args = ["rollback", "deployment/web", "--to", &shop.first];
    let (code, _, stderr) = flotilla_env(&bare, &args, &[("GIT_AUTHOR_DATE", "soon")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("GIT_AUTHOR_DATE=`soon`"), "{stderr}");
    assert_eq!(git_ok(&bare, &["rev-parse", "main"]), tip);
}

/// Issue 12, item 5: `history` and `rollback` read a file as `validate` and
/// the leader do, without the documents `.flotillaignore` excludes: a file
/// with an unsupported Service beside the Deployment is valid in the
/// history, and a rollback of the Deployment is checked (and written) with
/// the Service left out of the check and kept in the file byte-for-byte.
#[test]
fn history_and_rollback_leave_out_the_documents_flotillaignore_excludes() {
    let service =
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n";
    let file = |image: &str| format!("{}---\n{service}", deployment("web", image));
    let work = WorkTree::new();
    work.write(".flotillaignore", "web.yaml#Service/web\n")
        .write("web.yaml", &file("web:1"));
    work.commit("web 1");
    work.write("web.yaml", &file("web:2"));
    work.commit("web 2");

    let json: serde_json::Value = serde_json::from_str(&flotilla_ok(
        work.path(),
        &["history", "deployment/web", "--output", "json"],
    ))
    .unwrap();
    let outcomes: Vec<&serde_json::Value> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["outcome"])
        .collect();
    assert_eq!(outcomes, [&serde_json::Value::Null; 2], "{json}");

    flotilla_ok(work.path(), &["rollback", "deployment/web"]);
    assert_eq!(
        std::fs::read_to_string(work.path().join("web.yaml")).unwrap(),
        file("web:1")
    );
}

/// `flotilla rollout status` in `dir`: (exit code, stdout, stderr). Its
/// one node (127.0.0.1:22) is observed once, and nothing there matters.
fn rollout_status(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["rollout", "status", "--connect-timeout", "2s"];
    all.extend(args);
    flotilla_env(dir, &all, &[])
}

/// Issue 12 (review of items 4 and 10): `rollout status --rev` of a commit
/// whose rollout the notes record as failed said "superseded by <a later
/// commit> before it finished" when the recorded revision did not match,
/// and in a clone gave only "rolled back by ..." and a blank line; the
/// note's reason was never shown and the JSON's top-level `reason` was
/// null. The recorded outcome, on the commits of the object's revision
/// (`others` only changed api and db: web's rollout is noted on web2),
/// comes first, with its reason, duration and revert, in the leader's
/// repository and in a clone that fetched the records.
#[test]
fn rollout_status_reports_the_recorded_failure_with_its_reason_and_revert() {
    let shop = Shop::new();
    let (dir, bare) = leader_repository(&shop.work);
    shop.record_rollouts(&bare);
    fetch_notes(shop.work.path(), "cluster");
    let rolled_back = format!(
        "progress deadline exceeded\nfailed in 12.3s, rolled back by {} (api, db: image 2)",
        short(&shop.others)
    );
    for repository in [bare.as_path(), shop.work.path()] {
        for rev in [&shop.web2, &shop.others] {
            let (code, stdout, stderr) =
                rollout_status(repository, &["deployment/web", "--rev", rev]);
            assert_eq!(code, 1, "{stdout}{stderr}");
            assert_eq!(
                stdout,
                format!("error: deployment \"web\" rollout failed: {rolled_back}\n"),
                "{}",
                repository.display()
            );
            let (code, stdout, stderr) =
                rollout_status(repository, &["deployment/web", "--rev", rev, "-o", "json"]);
            assert_eq!(code, 1, "{stdout}{stderr}");
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(report["outcome"], "failed", "{report}");
            assert_eq!(report["reason"], rolled_back.as_str(), "{report}");
            assert_eq!(report["objects"][0]["reason"], rolled_back.as_str());
        }
    }
    // Recorded without a revert: the reason and how long it took.
    let (code, stdout, _) = rollout_status(&bare, &["deployment/web", "--rev", &shop.web3]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        "error: deployment \"web\" rollout failed: progress deadline exceeded\nfailed in 12.3s\n"
    );
    // Recorded as rolled out (on the readme commit): succeeded, without
    // waiting on a leader.
    let readme = git_ok(shop.work.path(), &["rev-parse", &format!("{}^", shop.web2)]);
    let (code, stdout, stderr) = rollout_status(&bare, &["deployment/api", "--rev", &readme]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!(
            "deployment \"api\" successfully rolled out ({})\n",
            short(&readme)
        )
    );
    drop(dir);
}
