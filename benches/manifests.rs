//! Reading one commit of a 10,000-manifest repository and loading it.
//!
//! The repository (about 10 MB: Deployments spread over 100 directories,
//! plus a few multi-document files and the Nodes) is generated and
//! committed with git2 into a temporary directory once; then criterion
//! measures reading the commit's tree, `manifest::load`, and both.
//!
//! Reading the commit goes through `read_commit` below. It walks the tree
//! with git2 directly until `flotilla::repo::read_revision` lands on main;
//! switching is one line in that function.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use flotilla::manifest::{load, SourceFile};
use git2::{Repository, Signature};

const MANIFESTS: usize = 10_000;

fn deployment(i: usize) -> String {
    let app = format!("app-{i:05}");
    let team = ["payments", "search", "catalog", "accounts", "media"][i % 5];
    format!(
        r#"# {app}: owned by the {team} team.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
  namespace: {team}
  labels:
    app.kubernetes.io/name: {app}
    app.kubernetes.io/part-of: {team}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app: {app}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: {app}
        team: {team}
    spec:
      nodeSelector:
        pool: general
      containers:
      - name: server
        image: registry.example.com/{team}/{app}:1.{minor}.3
        args: ["--listen", ":8080", "--log-format", "json"]
        env:
        - name: TEAM
          value: {team}
        ports:
        - containerPort: 8080
          name: http
        resources:
          requests:
            cpu: 100m
            memory: 128Mi
          limits:
            cpu: "1"
            memory: 256Mi
        readinessProbe:
          httpGet:
            path: /healthz
            port: http
          periodSeconds: 5
        livenessProbe:
          tcpSocket:
            port: 8080
          initialDelaySeconds: 10
"#,
        replicas = 1 + i % 5,
        minor = i % 40,
    )
}

fn node(i: usize) -> String {
    format!(
        "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: node-{i:03}\n  labels:\n    pool: general\nspec:\n  address: 10.0.{}.{}\n  capacity:\n    cpu: \"16\"\n    memory: 64Gi\n",
        i / 250,
        i % 250 + 1
    )
}

/// Path and contents of every file: one Deployment per file, except every
/// 500th file which holds five (so 10,000 manifests in all), and the Nodes.
fn repository_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut i = 0;
    let mut file = 0;
    while i < MANIFESTS {
        let dir = format!("apps/team-{:02}", file % 100);
        if file % 500 == 499 {
            let docs: Vec<String> = (i..(i + 5).min(MANIFESTS)).map(deployment).collect();
            files.push((format!("{dir}/bundle-{file}.yaml"), docs.join("---\n")));
            i += 5;
        } else {
            files.push((format!("{dir}/app-{file:05}.yaml"), deployment(i)));
            i += 1;
        }
        file += 1;
    }
    let nodes: Vec<String> = (0..50).map(node).collect();
    files.push(("nodes.yaml".to_string(), nodes.join("---\n")));
    files
}

/// Commits `files` into a fresh repository in `dir`.
fn commit(dir: &std::path::Path, files: &[(String, String)]) -> Repository {
    let repo = Repository::init(dir).expect("init");
    let mut index = repo.index().expect("index");
    for (path, text) in files {
        let blob = repo.blob(text.as_bytes()).expect("blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: text.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).expect("add");
    }
    let tree_id = index.write_tree().expect("tree");
    {
        let tree = repo.find_tree(tree_id).expect("tree");
        let signature = Signature::now("bench", "bench@example.com").expect("signature");
        repo.commit(
            Some("HEAD"),
            &signature,
            &signature,
            "10,000 manifests",
            &tree,
            &[],
        )
        .expect("commit");
    }
    repo
}

/// The `*.yaml`/`*.yml` files of a commit. Once `flotilla::repo` is on main:
/// `flotilla::repo::read_revision(repo, rev).expect("read").files`.
fn read_commit(repo: &Repository, rev: &str) -> Vec<SourceFile> {
    flotilla::repo::read_revision(repo, rev)
        .expect("read the commit")
        .files
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = repository_files();
    let bytes: usize = files.iter().map(|(_, t)| t.len()).sum();
    let repo = commit(dir.path(), &files);
    // A repository that received pushes holds packs, not 10,000 loose
    // objects: pack it as `git gc` would (skipped when git is missing).
    let packed = std::process::Command::new("git")
        .args(["gc", "--quiet"])
        .current_dir(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    let repo = if packed {
        Repository::open(dir.path()).expect("reopen")
    } else {
        repo
    };
    let read = read_commit(&repo, "HEAD");
    let loaded = load(&read);
    assert!(!loaded.has_errors(), "{}", loaded.diagnostics[0]);
    assert_eq!(loaded.state.workloads.len(), MANIFESTS);
    eprintln!(
        "repository: {} files, {} manifests, {:.1} MB, {}",
        read.len(),
        MANIFESTS + 50,
        bytes as f64 / 1e6,
        if packed { "packed" } else { "loose objects" }
    );

    let mut group = c.benchmark_group("manifests_10k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("read_commit", |b| b.iter(|| read_commit(&repo, "HEAD")));
    group.bench_function("load", |b| b.iter(|| load(&read)));
    group.bench_function("read_commit_and_load", |b| {
        b.iter(|| load(&read_commit(&repo, "HEAD")))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
