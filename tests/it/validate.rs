//! `flotilla validate`, the built binary on repositories made with the real
//! `git` CLI: exit codes, text and JSON output, `--rev`, `--working-tree`,
//! `--revs-from-stdin`, and files that cannot be read as text.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::git::{git_ok, WorkTree};

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
            "valid: 1 node and 1 workload in 2 files at {} (1 warning)",
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
    assert_eq!(report["workloads"], 1);
    assert_eq!(report["diagnostics"], serde_json::json!([]));
}

/// Issue 13: Services are counted in the summary and the JSON.
#[test]
fn services_are_counted() {
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", &format!("{WEB}---\n{service}"));
    work.commit("web and its Service");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("valid: 1 node, 1 workload and 1 service in 2 files"),
        "{out}"
    );
    let (code, out, _) = validate(work.path(), &["--output", "json"], None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json(&out)["services"], 1);
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
    assert_eq!(code, 64, "clap refuses both, a usage error: {err}");
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

// ------------------------------------------------ hostile input (issue 10)

/// What one run of the built binary gave, and the most memory it held.
struct Measured {
    code: i32,
    stdout: String,
    stderr: String,
    /// Peak resident set, KiB (`ru_maxrss` of this child alone).
    max_rss_kib: i64,
}

/// Runs `flotilla ARGS` in `dir`, killing it after 60 s (a hang is a
/// failure, not a stuck test), and measures its peak memory with wait4.
fn run_measured(dir: &Path, args: &[&str]) -> Measured {
    let out = tempfile::tempfile().expect("temp file");
    let err = tempfile::tempfile().expect("temp file");
    let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .expect("flotilla runs");
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        for _ in 0..600 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            // SAFETY: signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                return false;
            }
        }
        // SAFETY: kills the child this test spawned, still unreaped.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        true
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid pointers.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4");
    std::mem::forget(child);
    assert!(
        !watchdog.join().unwrap(),
        "flotilla {args:?} ran for 60 s: killed"
    );
    let read = |mut file: std::fs::File| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    };
    assert!(
        libc::WIFEXITED(status),
        "flotilla {args:?} died: status {status}"
    );
    Measured {
        code: libc::WEXITSTATUS(status),
        stdout: read(out),
        stderr: read(err),
        max_rss_kib: usage.ru_maxrss,
    }
}

/// The binary's own footprint on a small repository, for the bounds below.
fn baseline_rss_kib(work: &WorkTree) -> i64 {
    run_measured(work.path(), &["validate", "--working-tree"]).max_rss_kib
}

/// Issue 10, item 1: one 1 MiB string aliased 1,000 times (a 1 MB file)
/// made `validate` use 1 GiB; 4 MiB aliased 90,000 times aborted it.
#[test]
fn alias_heavy_files_are_refused_in_memory_proportional_to_the_file() {
    for (string_len, aliases) in [(1 << 20, 1_000), (4 << 20, 90_000)] {
        let work = WorkTree::new();
        work.write("nodes/n1.yaml", NODE);
        let baseline = baseline_rss_kib(&work);
        let mut yaml = format!("a: &a \"{}\"\nb: [", "x".repeat(string_len));
        yaml.push_str(&vec!["*a"; aliases].join(","));
        yaml.push_str("]\n");
        let input_kib = (yaml.len() / 1024) as i64;
        work.write("bomb.yaml", &yaml);
        let run = run_measured(work.path(), &["validate", "--working-tree"]);
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("aliases expand to more than")
                && run.stdout.contains("bomb.yaml:2:"),
            "{}",
            run.stdout
        );
        let used = run.max_rss_kib - baseline;
        assert!(
            used < 8 * input_kib,
            "{aliases} aliases of {string_len} bytes: {used} KiB over the baseline for a {input_kib} KiB file"
        );
    }
}

/// Issue 10, item 7: a 1 GB zero-filled blob (1 MB compressed) was read
/// whole before the 8 MiB limit was checked: 961 MiB and 5.5 s.
#[test]
fn a_gigabyte_blob_is_refused_without_reading_it() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE);
    work.commit("a node");
    let baseline = run_measured(work.path(), &["validate", "--rev", "HEAD"]).max_rss_kib;
    let hashed = Command::new("sh")
        .arg("-c")
        .arg("head -c 1073741824 /dev/zero | git hash-object -w --stdin")
        .current_dir(work.path())
        .output()
        .expect("git hash-object runs");
    assert!(hashed.status.success());
    let blob = String::from_utf8(hashed.stdout).unwrap().trim().to_string();
    git_ok(
        work.path(),
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{blob},zero.yaml"),
        ],
    );
    git_ok(work.path(), &["commit", "-q", "-m", "a gigabyte of zeros"]);
    let run = run_measured(work.path(), &["validate", "--rev", "HEAD"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("error: manifest is 1073741824 bytes, more than the 8388608 allowed")
            && run.stdout.contains("--> zero.yaml:1:1"),
        "{}",
        run.stdout
    );
    let used = run.max_rss_kib - baseline;
    assert!(used < 16 * 1024, "{used} KiB over the baseline");
}

/// Issue 10, item 8: `api\377.yaml` was skipped silently in a commit but
/// read in a working tree, and a non-UTF-8 directory failed the walk with
/// an unlocated libgit2 error.
#[test]
fn non_utf8_paths_are_located_in_commits_and_working_trees() {
    use std::os::unix::ffi::OsStrExt;
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE);
    for name in [&b"api\xff.yaml"[..], b"dir\xfe/web.yaml"] {
        let path = work.path().join(std::ffi::OsStr::from_bytes(name));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, WEB).unwrap();
    }
    work.commit("non-UTF-8 names");
    for args in [
        &["validate", "--rev", "HEAD"][..],
        &["validate", "--working-tree"],
    ] {
        let run = run_measured(work.path(), args);
        assert_eq!(run.code, 1, "{args:?}: {}{}", run.stdout, run.stderr);
        for located in [r"--> api\xff.yaml:1:1", r"--> dir\xfe/web.yaml:1:1"] {
            assert!(
                run.stdout.contains(located)
                    && run.stdout.contains("the file's path is not valid UTF-8"),
                "{args:?}: {located} missing from\n{}",
                run.stdout
            );
        }
    }
    let history = run_measured(work.path(), &["history"]);
    assert_eq!(history.code, 0, "{}{}", history.stdout, history.stderr);
}

/// Issue 10, item 7: in a working tree, a `.flotillaignore` symlinked to
/// /dev/zero exhausted memory, and a FIFO blocked for ever.
#[test]
fn working_tree_reads_only_regular_files_and_follows_no_link() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    std::os::unix::fs::symlink("/dev/zero", work.path().join(".flotillaignore")).unwrap();
    let fifo = std::ffi::CString::new(
        work.path()
            .join("fifo.yaml")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let run = run_measured(work.path(), &["validate", "--working-tree"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(".flotillaignore is a symbolic link, which flotilla does not follow")
            && run
                .stdout
                .contains("fifo.yaml is not a regular file, which flotilla does not follow"),
        "{}",
        run.stdout
    );
}

/// Issue 10, item 11: a commit's subject and file names are anyone's text;
/// their terminal escapes (clear the screen, colours, a bell) are shown
/// escaped in the text output, never sent to the terminal. JSON keeps
/// them as they are (JSON escapes them itself).
#[test]
fn terminal_escapes_in_subjects_and_file_names_are_shown_not_run() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE);
    let one = work.commit("one");
    work.write("apps/\x1b[8mweb.yaml", &WEB.replace("image:", "imag:"));
    let subject = "\x1b[2J\x1b[31mpwned\x1b[0m\x07 \u{9b}0m";
    let two = work.commit(subject);
    let list = format!("{one}\n{two}\n");

    let (code, out, _) = validate(work.path(), &["--revs-from-stdin"], Some(&list));
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains(['\x1b', '\x07', '\u{9b}']),
        "no control character reaches the terminal:\n{out:?}"
    );
    let shown = "\\x1b[2J\\x1b[31mpwned\\x1b[0m\\x07 \\u{9b}0m";
    assert!(
        out.contains(&format!("commit {} ({shown}):", &two[..12])),
        "{out}"
    );
    assert!(out.contains(&format!("  {} {shown}", &two[..12])), "{out}");
    assert!(out.contains("--> apps/\\x1b[8mweb.yaml:"), "{out}");

    let (_, out, _) = validate(
        work.path(),
        &["--revs-from-stdin", "--output", "json"],
        Some(&list),
    );
    assert_eq!(json(&out)["revisions"][1]["subject"], subject);
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

/// Issue 12, item 7: validating HEAD of a clone whose manifests were
/// edited (or added, removed, ignored by a changed `.flotillaignore`)
/// says on stderr that the working tree differs, naming the files; JSON on
/// stdout stays as it is. Nothing is said for a clean tree, for files
/// flotilla does not read, for another revision, or with --working-tree.
#[test]
fn uncommitted_manifests_are_named_when_head_is_checked() {
    let work = WorkTree::new();
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB);
    let head = work.commit("good");
    work.commit("nothing changed");
    let (code, _, err) = validate(work.path(), &[], None);
    assert_eq!((code, err.as_str()), (0, ""), "clean");

    work.write("README.md", "not a manifest\n");
    let (_, _, err) = validate(work.path(), &[], None);
    assert_eq!(err, "", "not read by flotilla");

    work.write("apps/web.yaml", &WEB.replace("image:", "imag:"));
    let short = &git_ok(work.path(), &["rev-parse", "HEAD"])[..12];
    let expected = format!(
        "warning: checking HEAD ({short}); the working tree differs in apps/web.yaml: \
         use --working-tree to check the files on disk\n"
    );
    let (code, out, err) = validate(work.path(), &["--output", "json"], None);
    assert_eq!(code, 0, "the commit is valid: {out}");
    assert_eq!(err, expected);
    assert_eq!(json(&out)["valid"], true);
    // Any spelling of HEAD's commit; not another commit, nor the files on disk.
    assert_eq!(validate(work.path(), &["--rev", "main"], None).2, expected);
    assert_eq!(validate(work.path(), &["--rev", &head], None).2, "");
    assert_eq!(validate(work.path(), &["--working-tree"], None).2, "");

    work.write("apps/a.yaml", WEB)
        .write("apps/b.yml", WEB)
        .remove("nodes/n1.yaml");
    let (_, _, err) = validate(work.path(), &[], None);
    assert!(
        err.contains("differs in apps/a.yaml, apps/b.yml, apps/web.yaml and 1 more:"),
        "{err}"
    );

    git_ok(work.path(), &["checkout", "--", "."]);
    git_ok(work.path(), &["clean", "-fdq"]);
    work.write(".flotillaignore", "apps/\n");
    let (_, _, err) = validate(work.path(), &[], None);
    assert!(
        err.contains("differs in .flotillaignore, apps/web.yaml:"),
        "{err}"
    );
}

/// An ordinary repository's other files: a CI workflow, a Helm chart and a
/// kustomization beside the manifests.
fn ordinary_repository(work: &WorkTree) {
    work.write("nodes/n1.yaml", NODE)
        .write("apps/web.yaml", WEB)
        .write(
            ".github/workflows/ci.yml",
            "name: ci\non: [push]\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make\n",
        )
        .write(".gitlab-ci.yml", "test:\n  script: make\n")
        .write("charts/x/Chart.yaml", "apiVersion: v2\nname: x\nversion: 0.1.0\n")
        .write("charts/x/values.yaml", "replicas: 2\nimage: web:1\n")
        .write(
            "charts/x/templates/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicas }}\n",
        )
        .write(
            "apps/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - web.yaml\n",
        )
        .write("config/settings.yaml", "log_level: debug\nfeatures: [a, b]\n");
}

/// Issue 12, item 5 (the acceptance test): a repository holding
/// `.github/workflows`, a Helm chart and a kustomization next to its
/// manifests validates (exit 0) with each foreign file named in a warning
/// that says the way out, from a commit and from the working tree alike.
/// Before, the workflow failed with `missing field kind`, the chart's
/// templates as invalid YAML and the kustomization as an unknown kind.
#[test]
fn an_ordinary_repository_validates_with_the_foreign_files_named() {
    let work = WorkTree::new();
    ordinary_repository(&work);
    work.commit("an ordinary repository");
    for args in [&[][..], &["--working-tree"][..]] {
        let (code, out, err) = validate(work.path(), args, None);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(
            out.contains("valid: 1 node and 1 workload in 4 files"),
            "{args:?}: {out}"
        );
        for expected in [
            "warning: charts/x is a Helm chart: not read (flotilla reads plain manifests, not templates)\n  --> charts/x/Chart.yaml:1:1\n  = hint: render it (`helm template NAME charts/x > rendered.yaml`) and commit that; to silence this warning, list charts/x/ in .flotillaignore",
            "warning: kustomize input is not applied: flotilla reads plain manifests (the ones beside it are read as they are)\n  --> apps/kustomization.yaml:1:1\n  = hint: to deploy what kustomize builds, commit its output (`kustomize build apps > rendered.yaml`) instead of its inputs; to silence this warning, list apps/kustomization.yaml in .flotillaignore",
            "warning: not a Kubernetes manifest (no `apiVersion`, `kind` or `metadata`): skipped\n  --> config/settings.yaml:1:1\n  = hint: list config/settings.yaml in .flotillaignore to silence this warning",
        ] {
            assert!(out.contains(expected), "{args:?}: {expected}\nin:\n{out}");
        }
        // Other tools' dot-files are skipped without a word.
        assert!(
            !out.contains(".github") && !out.contains(".gitlab"),
            "{out}"
        );
    }

    // Each warning goes away the way its hint says.
    work.write(
        ".flotillaignore",
        "charts/x/\napps/kustomization.yaml\nconfig/settings.yaml\n",
    );
    work.commit("silence");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
}

/// Issue 12, item 5: a dot-directory is read when a `!` line of
/// `.flotillaignore` includes it.
#[test]
fn a_dot_directory_is_read_when_flotillaignore_includes_it() {
    let work = WorkTree::new();
    work.write(".deploy/n1.yaml", NODE)
        .write(".deploy/web.yaml", WEB);
    work.commit("manifests under a dot-directory");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("valid: 0 nodes and 0 workloads in 0 files"),
        "{out}"
    );

    work.write(".flotillaignore", "!.deploy/\n");
    work.commit("read .deploy");
    for args in [&[][..], &["--working-tree"][..]] {
        let (code, out, _) = validate(work.path(), args, None);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("valid: 1 node and 1 workload in 2 files"),
            "{out}"
        );
    }
}

/// Issue 12, item 5: `.flotillaignore` excludes single documents of a file
/// (`path#Kind/name`, `path#Kind/namespace/name`), so an all-in-one file
/// with an unsupported document is partly used; a line that excludes
/// nothing is a warning at its line.
#[test]
fn flotillaignore_excludes_single_documents() {
    let job = "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: web\n  namespace: shop\n";
    let work = WorkTree::new();
    work.write("all.yaml", &format!("{NODE}---\n{job}---\n{WEB}"));
    work.commit("all in one");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: CronJob is not supported yet"), "{out}");

    for line in ["all.yaml#CronJob/web", "/all.yaml#CronJob/shop/web"] {
        work.write(
            ".flotillaignore",
            &format!("# the CronJob is Kubernetes'\n{line}\nall.yaml#Ingress/web\nmissing.yaml#Service/web\n"),
        );
        work.commit(line);
        for args in [&[][..], &["--working-tree"][..]] {
            let (code, out, _) = validate(work.path(), args, None);
            assert_eq!(code, 0, "{line} {args:?}: {out}");
            assert!(
                out.contains("valid: 1 node and 1 workload in 1 file"),
                "{out}"
            );
            assert!(
                out.contains("warning: `all.yaml#Ingress/web` excludes nothing: all.yaml declares no Ingress/web\n  --> .flotillaignore:3:1"),
                "{out}"
            );
            assert!(
                out.contains("warning: `missing.yaml#Service/web` excludes nothing: missing.yaml is not a manifest flotilla reads\n  --> .flotillaignore:4:1"),
                "{out}"
            );
        }
    }

    // Another namespace excludes nothing: the CronJob is read again.
    work.write(".flotillaignore", "all.yaml#CronJob/default/web\n");
    work.commit("wrong namespace");
    let (code, out, _) = validate(work.path(), &[], None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("all.yaml declares no CronJob/default/web"),
        "{out}"
    );
}
