//! `flotilla validate`, the built binary on repositories made with the real
//! `git` CLI: exit codes, text and JSON output, `--rev`, `--working-tree`,
//! `--revs-from-stdin`, and files that cannot be read as text.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::git::{git_ok, WorkTree};

const NODE: &str = "\
apiVersion: flotilla.dev/v1
kind: Node
metadata:
  name: n1
spec:
  address: 127.0.0.1
";

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: flotilla-test:1
";

/// Runs `flotilla validate ARGS` in `dir`; (exit code, stdout, stderr).
fn validate(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .arg("validate")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flotilla runs");
    let mut input = child.stdin.take().expect("piped");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("stdin");
    drop(input);
    let output = child.wait_with_output().expect("flotilla exits");
    (
        output.status.code().expect("an exit code"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

#[test]
fn warnings_alone_exit_0_and_are_printed() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE).write(
        "apps/web.yaml",
        &WEB.replace(
            "    spec:\n",
            "    spec:\n      nodeSelector: {disk: ssd}\n",
        ),
    );
    let commit = work.commit("web on ssd");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: nodeSelector matches no Node"),
        "{out}"
    );
    assert!(out.contains("--> apps/web.yaml:"), "{out}");
    assert!(
        out.contains(&format!(
            "valid: 1 node and 1 deployment in 2 files at {} (1 warning)",
            &commit[..12]
        )),
        "{out}"
    );
}

#[test]
fn errors_exit_1_with_every_diagnostic_and_a_summary() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", &WEB.replace("selector:", "selectr:"))
        .write("broken.yaml", "a: [1, 2\n");
    work.commit("broken");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: unknown field `selectr`, did you mean `selector`?"),
        "{out}"
    );
    assert!(out.contains("--> apps/web.yaml:6:3"), "{out}");
    assert!(out.contains("--> broken.yaml:"), "{out}");
    assert!(out.contains("invalid: "), "{out}");
}

#[test]
fn json_output_has_the_documented_shape() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", &WEB.replace("selector:", "selectr:"));
    let commit = work.commit("typo");
    let (code, out, _) = validate(work.path(), &["--output", "json"], None);
    assert_eq!(code, 1, "{out}");
    let report = json(&out);
    assert_eq!(report["valid"], false);
    assert_eq!(report["commit"], commit.as_str());
    assert_eq!(report["files"], 2);
    assert_eq!(report["nodes"], 1);
    assert!(report["errors"].as_u64().unwrap() >= 1, "{report}");
    assert!(report["warnings"].is_u64(), "{report}");
    let first = &report["diagnostics"][0];
    assert_eq!(first["severity"], "error");
    assert_eq!(
        first["message"],
        "unknown field `selectr`, did you mean `selector`?"
    );
    assert_eq!(first["location"]["file"], "apps/web.yaml");
    assert_eq!(first["location"]["line"], 6);
    assert_eq!(first["location"]["column"], 3);
    assert_eq!(first["object"], "Deployment default/web");
    assert_eq!(first["fieldPath"], "spec.selectr");
    assert!(first.get("hint").is_some(), "{first}");

    work.write("apps/web.yaml", WEB);
    work.commit("fixed");
    let (code, out, _) = validate(work.path(), &["--output", "json"], None);
    assert_eq!(code, 0, "{out}");
    let report = json(&out);
    assert_eq!(report["valid"], true);
    assert_eq!(report["deployments"], 1);
    assert_eq!(report["diagnostics"], serde_json::json!([]));
}

#[test]
fn rev_picks_the_commit_in_a_work_tree_or_a_bare_repository() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    let good = work.commit("good");
    git_ok(work.path(), &["tag", "v1"]);
    work.write("apps/web.yaml", &WEB.replace("image:", "imag:"));
    let bad = work.commit("bad");

    assert_eq!(validate(work.path(), &[], None).0, 1, "HEAD is the bad one");
    for rev in ["HEAD~1", "v1", good.as_str(), &good[..12]] {
        let (code, out, _) = validate(work.path(), &["--rev", rev], None);
        assert_eq!(code, 0, "--rev {rev}: {out}");
        assert!(out.contains(&format!("at {}", &good[..12])), "{out}");
    }
    let (code, out, _) = validate(work.path(), &["--rev", &bad], None);
    assert_eq!(code, 1, "{out}");

    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare.git");
    git_ok(
        dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.path().to_str().unwrap(),
            "bare.git",
        ],
    );
    let (code, out, _) = validate(
        dir.path(),
        &["--repo", bare.to_str().unwrap(), "--rev", "v1"],
        None,
    );
    assert_eq!(code, 0, "{out}");

    let (code, _, err) = validate(work.path(), &["--rev", "no-such-rev"], None);
    assert_eq!(code, 1);
    assert!(err.contains("revision `no-such-rev` not found"), "{err}");
}

#[test]
fn working_tree_reads_the_files_on_disk_not_the_commit() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    work.commit("good");
    work.write("apps/web.yaml", &WEB.replace("image:", "imag:"))
        .write(
            "apps/new.yaml",
            &WEB.replace("name: web\nspec", "name: new\nspec"),
        );
    assert_eq!(validate(work.path(), &[], None).0, 0, "the commit is valid");
    let (code, out, _) = validate(work.path(), &["--working-tree"], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("unknown field `imag`, did you mean `image`?"),
        "{out}"
    );
    assert!(out.contains("in 3 files at working-tree"), "{out}");

    let (code, _, err) = validate(work.path(), &["--working-tree", "--rev", "HEAD"], None);
    assert_eq!(code, 2, "clap refuses both: {err}");
}

/// A file that is not UTF-8, or too large, is an error at its path; every
/// other file is still reported, in text and in JSON, from a commit and from
/// the working tree.
#[test]
fn unreadable_files_are_diagnostics_and_hide_nothing_else() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", &WEB.replace("image:", "imag:"));
    std::fs::write(
        work.path().join("latin1.yaml"),
        b"apiVersion: v1\nkind: ConfigMap # caf\xe9\n",
    )
    .unwrap();
    let big = "# padding\n".repeat(flotilla::repo::MAX_MANIFEST_BYTES / 10 + 1);
    work.write("big.yaml", &big);
    work.commit("unreadable files");

    for args in [&[][..], &["--working-tree"][..]] {
        let (code, out, _) = validate(work.path(), args, None);
        assert_eq!(code, 1, "{args:?}: {out}");
        assert!(
            out.contains("error: not valid UTF-8 (byte 0xe9); manifests must be UTF-8 text\n  --> latin1.yaml:2:22"),
            "{args:?}: {out}"
        );
        assert!(
            out.contains(&format!(
                "error: manifest is {} bytes, more than the {} allowed\n  --> big.yaml:1:1",
                big.len(),
                flotilla::repo::MAX_MANIFEST_BYTES
            )),
            "{args:?}: {out}"
        );
        assert!(out.contains("unknown field `imag`"), "{args:?}: {out}");

        let mut json_args = args.to_vec();
        json_args.extend(["--output", "json"]);
        let (code, out, _) = validate(work.path(), &json_args, None);
        assert_eq!(code, 1);
        let report = json(&out);
        let files: Vec<&str> = report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["severity"] == "error")
            .map(|d| d["location"]["file"].as_str().unwrap())
            .collect();
        for file in ["latin1.yaml", "big.yaml", "apps/web.yaml"] {
            assert!(files.contains(&file), "{file} in {report}");
        }
    }
}

#[test]
fn revs_from_stdin_validates_each_and_names_the_invalid_ones() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    let one = work.commit("one");
    work.write("apps/web.yaml", &WEB.replace("image:", "imag:"));
    let two = work.commit("two");
    work.write("apps/web.yaml", WEB);
    let three = work.commit("three");
    let list = format!("{one}\n{two}\n{three}\n{three}\n");

    let (code, out, _) = validate(work.path(), &["--revs-from-stdin"], Some(&list));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("commit {} (two):", &two[..12])),
        "{out}"
    );
    assert!(out.contains("invalid: 1 of 3 commits invalid:"), "{out}");
    assert!(out.contains(&format!("  {} two", &two[..12])), "{out}");

    let (code, out, _) = validate(
        work.path(),
        &["--revs-from-stdin", "--output", "json"],
        Some(&list),
    );
    assert_eq!(code, 1);
    let reports = json(&out);
    assert_eq!(reports["valid"], false);
    let revisions = reports["revisions"].as_array().unwrap();
    let seen: Vec<(&str, bool, &str)> = revisions
        .iter()
        .map(|r| {
            (
                r["commit"].as_str().unwrap(),
                r["valid"].as_bool().unwrap(),
                r["subject"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (one.as_str(), true, "one"),
            (two.as_str(), false, "two"),
            (three.as_str(), true, "three")
        ]
    );

    let valid = format!("{one}\n{three}\n");
    assert_eq!(
        validate(work.path(), &["--revs-from-stdin"], Some(&valid)).0,
        0
    );
}

/// Regression (issue 10, item 10): `transport: local` (containers on the
/// leader host's own Docker) validated in any push. It is refused unless the
/// operator set `flotilla.allowLocalTransport` in the repository's git
/// config, which no push can change; so is a host port below 1024 other
/// than 80 and 443 unless `flotilla.hostPorts` allows it.
#[test]
fn the_operator_policy_is_read_from_the_repositorys_git_config() {
    let work = WorkTree::new();
    work.write(
        "nodes/n1.yaml",
        "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: n1\nspec:\n  transport: local\n",
    )
    .write(
        "apps/web.yaml",
        &format!("{WEB}          ports: [{{containerPort: 22, hostPort: 22}}]\n"),
    );
    work.commit("local node, port 22");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`git config flotilla.allowLocalTransport true`"),
        "{out}"
    );
    assert!(
        out.contains("--> nodes/n1.yaml:6:14 (Node n1: spec.transport)"),
        "{out}"
    );
    assert!(out.contains("hostPort 22 is outside the host ports the leader's operator allows (80,443,1024-65535)"), "{out}");

    git_ok(
        work.path(),
        &["config", "flotilla.allowLocalTransport", "true"],
    );
    git_ok(
        work.path(),
        &["config", "flotilla.hostPorts", "22,80,443,1024-65535"],
    );
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 0, "{out}");

    git_ok(work.path(), &["config", "flotilla.hostPorts", "ssh"]);
    let (code, _, errors) = validate(work.path(), &[], None);
    assert_eq!(code, 1);
    assert!(
        errors.contains("git config flotilla.hostPorts: `ssh` is not a port"),
        "{errors}"
    );
}
