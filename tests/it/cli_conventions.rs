//! The command line's conventions (issue 12, items 3 and 10), with the real
//! binary on scratch repositories: exit codes checked by a CI-style shell
//! script, `--version`, completions, `status --watch` and logs in a pipe,
//! `-q`, `-o`, `FLOTILLA_REPO`, boolean environment variables, durations.
//! The only node is 127.0.0.1:1, which refuses at once: no testbed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::git::{git_ok, WorkTree};

const FLOTILLA: &str = env!("CARGO_BIN_EXE_flotilla");

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

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: flotilla-test:1
          resources:
            requests: {cpu: 100m, memory: 1Gi}
";

fn repo() -> WorkTree {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    work.commit("manifests");
    work
}

/// flotilla in `dir`, without the environment variables a developer's
/// shell may set.
fn flotilla(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(FLOTILLA);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("FLOTILLA_REPO")
        .env_remove("FLOTILLA_LOG")
        .env_remove("FLOTILLA_TRUST_ON_FIRST_USE")
        .env_remove("FLOTILLA_CONNECT_TIMEOUT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shown(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

/// Issue 12's CI-style check (items 3 and 6): `validate`, `plan --offline
/// --detailed-exitcode`, an unreachable node and typo'd flags on prepared
/// repositories, each against the exit-code table of docs/cli.md. A typo
/// exited 2, which reads as "changes"; unschedulable replicas exited 2.
#[test]
fn ci_script_sees_every_exit_code_of_the_table() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/ci-exit-codes.sh");
    let output = Command::new("sh")
        .arg(&script)
        .arg(FLOTILLA)
        .env_remove("FLOTILLA_REPO")
        .output()
        .expect("sh runs");
    let shown = shown(&output);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains("every exit code matches the table in docs/cli.md"),
        "{shown}"
    );
}

/// Issue 12, item 10: `--version` names the commit it was built from.
#[test]
fn version_names_the_commit_it_was_built_from() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = flotilla(here, &["--version"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", shown(&output));
    let version = text(&output.stdout);
    let prefix = format!("flotilla {} (", env!("CARGO_PKG_VERSION"));
    assert!(version.starts_with(&prefix), "{version}");
    let commit = version[prefix.len()..]
        .trim_end()
        .strip_suffix(')')
        .unwrap_or_else(|| panic!("{version}"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(here)
        .output()
        .ok()
        .filter(|o| o.status.success());
    match head {
        // Built in this work tree: its HEAD, marked when tracked files differ.
        Some(head) => {
            let head = text(&head.stdout);
            assert_eq!(commit.strip_suffix("-dirty").unwrap_or(commit), head.trim());
        }
        None => assert_eq!(commit, "unknown commit"),
    }
}

/// Issue 12, item 10: `flotilla completion bash|zsh|fish`.
#[test]
fn completion_scripts_for_each_shell() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, mark) in [
        ("bash", "_flotilla()"),
        ("zsh", "#compdef flotilla"),
        ("fish", "complete -c flotilla"),
    ] {
        let output = flotilla(here, &["completion", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", shown(&output));
        let script = text(&output.stdout);
        assert!(script.contains(mark), "{shell}: {script}");
        assert!(script.contains("detailed-exitcode"), "{shell}: every flag");
    }
    let output = flotilla(here, &["completion", "tcsh"]).output().unwrap();
    assert_eq!(output.status.code(), Some(64), "{}", shown(&output));
}

/// Issue 12, item 10: `status --watch | cat` emitted screen-clearing
/// escapes, and log lines were coloured on a stderr that is no terminal.
/// In a pipe each refresh comes plainly, after a blank line and a header
/// with its time, and logs carry no escapes.
#[test]
fn status_watch_in_a_pipe_prints_frames_plainly_and_logs_without_colour() {
    let work = repo();
    let mut child = flotilla(
        work.path(),
        &["status", "--watch", "--connect-timeout", "3s"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut frames = Vec::new();
    let mut current = Vec::new();
    // A frame is about ten lines: without headers (clearing the screen
    // instead), give up after a few frames rather than wait for ever.
    let mut budget = 60;
    while frames.len() < 2 {
        budget -= 1;
        assert!(budget > 0, "no frame headers: {current:?}");
        let line = lines
            .next()
            .expect("status --watch keeps printing")
            .expect("text");
        if line.starts_with("--- flotilla status at ") {
            frames.push(std::mem::take(&mut current));
        }
        current.push(line);
    }
    child.kill().unwrap();
    let stderr = {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        stderr
    };
    child.wait().unwrap();
    // frames[0] is what came before the first header (nothing); frames[1]
    // the first frame, which ends with the blank line separating it.
    assert!(frames[0].is_empty(), "{frames:?}");
    let first = frames[1].join("\n");
    assert!(first.contains("NODE "), "{first}");
    assert_eq!(
        frames[1].last().map(String::as_str),
        Some(""),
        "a blank line between frames: {first:?}"
    );
    assert!(!first.contains('\x1b'), "no escapes in a pipe: {first:?}");
    let header = &frames[1][0];
    assert!(
        header.ends_with("Z ---")
            && header.len() == "--- flotilla status at 2026-12-03T07:21:47Z ---".len(),
        "{header}"
    );
    assert!(stderr.contains("WARN"), "a warning about n1: {stderr}");
    assert!(!stderr.contains('\x1b'), "no colour in a pipe: {stderr:?}");
}

/// Issue 12, item 10: `-q` leaves only errors on stderr; `-v` adds info.
#[test]
fn quiet_keeps_warnings_off_stderr() {
    let work = repo();
    let args = ["status", "--connect-timeout", "3s"];
    let plain = flotilla(work.path(), &args).output().unwrap();
    assert!(text(&plain.stderr).contains("WARN"), "{}", shown(&plain));
    let quiet = flotilla(work.path(), &[&["-q"][..], &args].concat())
        .output()
        .unwrap();
    assert_eq!(
        quiet.status.code(),
        plain.status.code(),
        "{}",
        shown(&quiet)
    );
    assert_eq!(text(&quiet.stderr), "", "-q: only errors");
    assert!(text(&quiet.stdout).contains("NODE "), "the result stays");
    // FLOTILLA_LOG, when set, wins over -q.
    let logged = flotilla(work.path(), &[&["-q"][..], &args].concat())
        .env("FLOTILLA_LOG", "warn")
        .output()
        .unwrap();
    assert!(text(&logged.stderr).contains("WARN"), "{}", shown(&logged));
    let both = flotilla(work.path(), &["-q", "-v", "status"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(64), "{}", shown(&both));
}

/// Issue 12, item 10: `-o` for `--output`, `FLOTILLA_REPO` for `--repo`,
/// boolean variables that take `1`, durations with units.
#[test]
fn short_output_repo_from_the_environment_booleans_and_durations() {
    let work = repo();
    let elsewhere = tempfile::tempdir().unwrap();
    let output = flotilla(elsewhere.path(), &["plan", "--offline", "-o", "json"])
        .env("FLOTILLA_REPO", work.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", shown(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let head = git_ok(work.path(), &["rev-parse", "HEAD"]);
    assert_eq!(json["commit"], head.as_str());

    // --repo on the command line wins over the environment.
    let output = flotilla(elsewhere.path(), &["validate", "--repo"])
        .arg(work.path())
        .env("FLOTILLA_REPO", elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", shown(&output));

    for value in ["1", "0", "true", "false", "yes", "no", "on", "off"] {
        let output = flotilla(work.path(), &["plan", "--offline"])
            .env("FLOTILLA_TRUST_ON_FIRST_USE", value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{value}: {}", shown(&output));
    }
    let output = flotilla(work.path(), &["plan", "--offline"])
        .env("FLOTILLA_TRUST_ON_FIRST_USE", "maybe")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64), "{}", shown(&output));

    for duration in ["90s", "5m", "1h", "1h30m", "10"] {
        let output = flotilla(
            work.path(),
            &["plan", "--offline", "--request-timeout", duration],
        )
        .env("FLOTILLA_CONNECT_TIMEOUT", duration)
        .output()
        .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{duration}: {}",
            shown(&output)
        );
    }
    let output = flotilla(
        work.path(),
        &["rollout", "status", "--timeout", "5 minutes please"],
    )
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(64), "{}", shown(&output));
    assert!(
        text(&output.stderr).contains("such as 90s, 5m, 1h30m"),
        "{}",
        shown(&output)
    );
}
