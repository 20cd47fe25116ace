//! `flotilla secret keygen|seal|edit|rekey`, the pre-receive hook opening
//! pushed Secret values, and the leader's `--age-identity`: the real
//! `flotilla` binary, real `git`, real age keys. A planted value must
//! never show in what the commands print.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::git::{git, git_ok, WorkTree};

const FLOTILLA: &str = env!("CARGO_BIN_EXE_flotilla");

/// The value no output may show.
const PLANTED: &str = "planted-s3cr3t-value";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs flotilla in `dir` with no identity from the environment.
fn flotilla(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(FLOTILLA);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("FLOTILLA_AGE_IDENTITY")
        .env_remove("VISUAL")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null());
    command
}

/// Runs it and returns (success, stdout, stderr), checking that the
/// planted value shows nowhere.
fn run(mut command: impl std::borrow::BorrowMut<Command>) -> (bool, String, String) {
    let output: Output = command.borrow_mut().output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        !stdout.contains(PLANTED) && !stderr.contains(PLANTED),
        "the value was printed:\n{stdout}\n{stderr}"
    );
    (output.status.success(), stdout, stderr)
}

/// A new identity file at `path`; returns its recipient.
fn keygen(dir: &Path, path: &Path) -> String {
    let (ok, stdout, stderr) = run(flotilla(dir, &["secret", "keygen", "--output"]).arg(path));
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("recipient: "))
        .expect("keygen prints the recipient")
        .to_string()
}

fn cluster(recipients: &[&str]) -> String {
    let mut text = "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata:\n  name: c\nspec:\n  secrets:\n    recipients:\n".to_string();
    for recipient in recipients {
        text.push_str(&format!("      - {recipient}\n"));
    }
    text
}

const CONFIG_MAP: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings   # kept as written
data: {mode: fast}
";

fn secret_file() -> String {
    format!(
        "{CONFIG_MAP}---\n# the database's credentials\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  user: YWRtaW4=\nstringData:\n  password: {PLANTED}\n"
    )
}

/// Every `key: AGE[version:...]` of a file: (key, version, whole text).
fn sealed_values(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(": ")?;
            let inner = value.strip_prefix("AGE[")?;
            Some((key.to_string(), inner[..16].to_string(), value.to_string()))
        })
        .collect()
}

struct Repo {
    work: WorkTree,
    keys: tempfile::TempDir,
}

impl Repo {
    /// A work tree whose Cluster declares one new identity's recipient.
    fn new() -> (Repo, PathBuf) {
        let repo = Repo {
            work: WorkTree::new(),
            keys: tempfile::tempdir().unwrap(),
        };
        let key = repo.key("leader.key");
        let recipient = keygen(repo.path(), &key);
        repo.work.write("cluster.yaml", &cluster(&[&recipient]));
        (repo, key)
    }

    fn path(&self) -> &Path {
        self.work.path()
    }

    fn key(&self, name: &str) -> PathBuf {
        self.keys.path().join(name)
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap()
    }

    /// `validate --working-tree --open-secrets` with `identity`.
    fn opens_with(&self, identity: &Path) -> (bool, String) {
        let (ok, stdout, stderr) = run(flotilla(
            self.path(),
            &[
                "validate",
                "--working-tree",
                "--open-secrets",
                "--age-identity",
            ],
        )
        .arg(identity));
        (ok, format!("{stdout}{stderr}"))
    }
}

#[test]
fn keygen_writes_a_private_identity_and_never_overwrites_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("age.key");
    let recipient = keygen(dir.path(), &path);
    assert!(recipient.starts_with("age1"), "{recipient}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains(&format!("# public key: {recipient}\n")));
    assert_eq!(
        written
            .lines()
            .filter(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .count(),
        1
    );

    let (ok, _, stderr) = run(flotilla(dir.path(), &["secret", "keygen", "-o"]).arg(&path));
    assert!(!ok);
    assert!(
        stderr.contains("exists: an identity file is never overwritten"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);
}

#[test]
fn seal_rewrites_only_the_values_in_clear_and_a_second_seal_changes_nothing() {
    let (repo, key) = Repo::new();
    repo.work.write("db.yaml", &secret_file());
    let (ok, stdout, stderr) = run(flotilla(repo.path(), &["secret", "seal", "db.yaml"]));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "db.yaml: Secret default/db: sealed user, password for 1 recipient\n"
    );
    let sealed = repo.read("db.yaml");
    assert!(
        !sealed.contains(PLANTED) && !sealed.contains("stringData"),
        "{sealed}"
    );
    // The ConfigMap and the Secret's other lines are as written.
    assert!(sealed.starts_with(&format!("{CONFIG_MAP}---\n# the database's credentials\napiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n")), "{sealed}");
    let values = sealed_values(&sealed);
    assert_eq!(
        values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["user", "password"]
    );
    assert_ne!(values[0].1, values[1].1, "each value has its own version");
    assert_eq!(
        repo.opens_with(&key),
        (
            true,
            "valid: 0 nodes and 0 workloads in 2 files at working-tree\n".to_string()
        )
    );

    let (ok, stdout, _) = run(flotilla(repo.path(), &["secret", "seal", "db.yaml"]));
    assert!(ok);
    assert_eq!(stdout, "db.yaml: has no value in clear; left as it was\n");
    assert_eq!(repo.read("db.yaml"), sealed);
}

#[test]
fn seal_without_recipients_is_refused_with_a_hint() {
    let work = WorkTree::new();
    work.write("db.yaml", &secret_file());
    let (ok, _, stderr) = run(flotilla(work.path(), &["secret", "seal", "db.yaml"]));
    assert!(!ok);
    assert!(
        stderr.contains("no recipients to seal for: the Cluster object of"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: add the leader's recipient"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(work.path().join("db.yaml")).unwrap(),
        secret_file()
    );
}

/// An editor script: records the file it was given, shows what it was
/// given, then applies `sed` expressions to it.
fn editor(dir: &Path, sed: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("editor.sh");
    let record = dir.join("edited");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" > {record}\nls -l \"$1\" >> {record}\nsed -i {sed} \"$1\"\n",
            record = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn edit_reseals_what_changed_keeps_the_rest_and_removes_its_file() {
    let (repo, key) = Repo::new();
    repo.work.write("db.yaml", &secret_file());
    assert!(run(flotilla(repo.path(), &["secret", "seal", "db.yaml"])).0);
    let before = repo.read("db.yaml");
    let old = sealed_values(&before);
    let scripts = tempfile::tempdir().unwrap();

    // Saved unchanged: nothing changes.
    let unchanged = editor(scripts.path(), "-e ''");
    let (ok, stdout, stderr) = run(flotilla(
        repo.path(),
        &["secret", "edit", "db.yaml", "--age-identity"],
    )
    .arg(&key)
    .env("EDITOR", &unchanged));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "db.yaml: Secret default/db unchanged; the file is left as it was\n"
    );
    assert_eq!(repo.read("db.yaml"), before);

    // One value changed, one added: user keeps its sealed text exactly.
    let changing = editor(
        scripts.path(),
        &format!("-e 's/{PLANTED}/{PLANTED}-2/' -e 's/^stringData:/stringData:\\n  token: abc/'"),
    );
    let (ok, stdout, stderr) = run(flotilla(
        repo.path(),
        &[
            "secret",
            "edit",
            "db.yaml",
            "--name",
            "db",
            "--age-identity",
        ],
    )
    .arg(&key)
    .env("EDITOR", &changing));
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "db.yaml: Secret default/db: changed password; added token (for 1 recipient)\n"
    );
    let record = std::fs::read_to_string(scripts.path().join("edited")).unwrap();
    let edited_file = record.lines().next().unwrap();
    assert!(
        record.lines().nth(1).unwrap().starts_with("-rw-------"),
        "{record}"
    );
    assert!(
        !Path::new(edited_file).exists(),
        "{edited_file} was left behind"
    );
    assert!(!Path::new(edited_file).parent().unwrap().exists());

    let after = repo.read("db.yaml");
    let new = sealed_values(&after);
    assert_eq!(
        new.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(),
        ["user", "password", "token"]
    );
    assert_eq!(new[0], old[0], "an unchanged value keeps its sealed text");
    assert_ne!(new[1].1, old[1].1, "a changed value gets a new version");
    assert!(repo.opens_with(&key).0);

    // An editor that fails changes nothing, and leaves no file behind.
    let (ok, _, stderr) = run(flotilla(
        repo.path(),
        &["secret", "edit", "db.yaml", "--age-identity"],
    )
    .arg(&key)
    .env("EDITOR", "false"));
    assert!(!ok);
    assert!(stderr.contains("the editor `false` failed"), "{stderr}");
    assert_eq!(repo.read("db.yaml"), after);
}

#[test]
fn rekey_keeps_versions_and_the_new_identity_opens_every_value() {
    let (repo, old_key) = Repo::new();
    repo.work
        .write("db.yaml", &secret_file())
        .write("apps/api.yaml", &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  token: {PLANTED}\n"));
    assert!(
        run(flotilla(
            repo.path(),
            &["secret", "seal", "db.yaml", "apps/api.yaml"]
        ))
        .0
    );
    let versions = |repo: &Repo| {
        let mut all = sealed_values(&repo.read("db.yaml"));
        all.extend(sealed_values(&repo.read("apps/api.yaml")));
        all.into_iter().map(|(k, v, _)| (k, v)).collect::<Vec<_>>()
    };
    let before = versions(&repo);
    let new_key = repo.key("new.key");
    let new_recipient = keygen(repo.path(), &new_key);
    assert!(!repo.opens_with(&new_key).0, "not a recipient yet");

    // The Cluster names the old and the new recipient; rekey with the old.
    let old_recipient = repo
        .read("cluster.yaml")
        .lines()
        .last()
        .unwrap()
        .trim()
        .trim_start_matches("- ")
        .to_string();
    repo.work
        .write("cluster.yaml", &cluster(&[&old_recipient, &new_recipient]));
    let (ok, _, stderr) = run(flotilla(repo.path(), &["secret", "rekey"]));
    assert!(!ok);
    assert!(
        stderr.contains("rekey opens every value, so it needs an identity"),
        "{stderr}"
    );
    let (ok, stdout, stderr) =
        run(flotilla(repo.path(), &["secret", "rekey", "--age-identity"]).arg(&old_key));
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("re-sealed 3 values of 2 Secrets in 2 files for 2 recipients (versions kept: no pod rolls)\ncommit and push"), "{stdout}");
    assert_eq!(versions(&repo), before);
    assert!(repo.opens_with(&new_key).0);
    assert!(repo.opens_with(&old_key).0);

    // Only the new recipient: the old identity no longer opens anything,
    // and a rekey with it is refused, naming every value, writing nothing.
    repo.work.write("cluster.yaml", &cluster(&[&new_recipient]));
    assert!(run(flotilla(repo.path(), &["secret", "rekey", "--age-identity"]).arg(&new_key)).0);
    assert_eq!(versions(&repo), before);
    let (ok, shown) = repo.opens_with(&old_key);
    assert!(!ok);
    assert!(
        shown.contains("`token` cannot be opened: no identity of"),
        "{shown}"
    );
    let written = repo.read("db.yaml");
    let (ok, _, stderr) =
        run(flotilla(repo.path(), &["secret", "rekey", "--age-identity"]).arg(&old_key));
    assert!(!ok);
    assert!(stderr.contains("nothing was re-sealed:\n  apps/api.yaml:6:10: Secret default/api: `token` does not open"), "{stderr}");
    assert_eq!(repo.read("db.yaml"), written);
}

/// The leader's repository, made by `init-repo`, and a clone to push from.
struct Pushed {
    _dir: tempfile::TempDir,
    bare: PathBuf,
}

impl Pushed {
    fn new(repo: &Repo) -> Pushed {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("cluster.git");
        let (ok, _, stderr) = run(flotilla(dir.path(), &["init-repo"]).arg(&bare));
        assert!(ok, "{stderr}");
        git_ok(
            repo.path(),
            &["remote", "add", "cluster", bare.to_str().unwrap()],
        );
        Pushed { _dir: dir, bare }
    }

    fn leader_identity(&self, path: Option<&Path>) {
        let bare = self.bare.to_str().unwrap();
        match path {
            Some(path) => git_ok(
                Path::new("/"),
                &[
                    "--git-dir",
                    bare,
                    "config",
                    "flotilla.ageIdentity",
                    path.to_str().unwrap(),
                ],
            ),
            None => git_ok(
                Path::new("/"),
                &[
                    "--git-dir",
                    bare,
                    "config",
                    "--unset-all",
                    "flotilla.ageIdentity",
                ],
            ),
        };
    }

    /// Pushes HEAD; (accepted, what the pusher saw).
    fn push(&self, repo: &Repo) -> (bool, String) {
        let output = git(repo.path(), &["push", "cluster", "HEAD:main"]);
        let seen = text(&output.stderr);
        assert!(!seen.contains(PLANTED), "{seen}");
        (output.status.success(), seen)
    }
}

#[test]
fn the_hook_rejects_a_secret_the_leaders_identity_cannot_open() {
    let (repo, key) = Repo::new();
    repo.work.write("db.yaml", &secret_file());
    assert!(run(flotilla(repo.path(), &["secret", "seal", "db.yaml"])).0);
    repo.work.commit("db credentials, sealed");
    let pushed = Pushed::new(&repo);

    // No identity recorded: the leader could not open them.
    let (accepted, seen) = pushed.push(&repo);
    assert!(!accepted, "{seen}");
    assert!(seen.contains("error: the leader has no age identity to open the values of the 1 Secret of this revision"), "{seen}");
    assert!(
        seen.contains("flotilla leader --age-identity FILE"),
        "{seen}"
    );

    // An identity that is not a recipient: each value named, with its place.
    let stranger = repo.key("stranger.key");
    keygen(repo.path(), &stranger);
    pushed.leader_identity(Some(&stranger));
    // The pusher's environment does not count: the leader's identity does.
    let output = Command::new("git")
        .args(["push", "cluster", "HEAD:main"])
        .current_dir(repo.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("FLOTILLA_AGE_IDENTITY", &key)
        .output()
        .unwrap();
    let seen = text(&output.stderr);
    assert!(!output.status.success(), "{seen}");
    assert!(
        seen.contains("error: `password` cannot be opened: no identity of"),
        "{seen}"
    );
    assert!(
        seen.contains("--> db.yaml:15:13 (Secret default/db: data.password)"),
        "{seen}"
    );
    assert!(seen.contains("flotilla secret rekey"), "{seen}");
    assert!(!seen.contains(PLANTED));

    // The leader's identity opens them: the push lands.
    pushed.leader_identity(Some(&key));
    let (accepted, seen) = pushed.push(&repo);
    assert!(accepted, "{seen}");
}

#[test]
fn the_leader_records_its_identity_for_the_hook_and_refuses_a_bad_one() {
    let (repo, key) = Repo::new();
    let pushed = Pushed::new(&repo);
    let locks = tempfile::tempdir().unwrap();
    let leader = |identity: Option<&Path>| {
        let mut command = flotilla(repo.path(), &["leader", "--repo"]);
        command
            .arg(&pushed.bare)
            .env("FLOTILLA_LOCK_DIR", locks.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(identity) = identity {
            command.arg("--age-identity").arg(identity);
        }
        command
    };
    let recorded = || {
        let output = git(
            Path::new("/"),
            &[
                "--git-dir",
                pushed.bare.to_str().unwrap(),
                "config",
                "flotilla.ageIdentity",
            ],
        );
        output
            .status
            .success()
            .then(|| text(&output.stdout).trim().to_string())
    };
    let wait_for = |expected: Option<String>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while recorded() != expected {
            assert!(
                Instant::now() < deadline,
                "git config never became {expected:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // A missing file stops the start, naming it.
    let output = leader(Some(&repo.key("absent.key"))).output().unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("absent.key does not exist"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(recorded(), None);

    let mut child = leader(Some(&key)).spawn().unwrap();
    wait_for(Some(key.display().to_string()));
    child.kill().unwrap();
    child.wait().unwrap();

    // Restarted without one, the leader removes the record.
    let mut child = leader(None).spawn().unwrap();
    wait_for(None);
    child.kill().unwrap();
    child.wait().unwrap();
}
