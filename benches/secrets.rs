//! The cost of Secrets sealed with age: sealing 1,000 Secrets (two values
//! each, for two recipients), the leader opening every value of a commit
//! with them (first with a cold cache, then as every later reconcile does),
//! and `manifest::load` of the commit's files. See docs/benchmarks.md.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use flotilla::manifest::{load, SourceFile};
use flotilla::seal::{self, Identities, Recipients};

const SECRETS: usize = 1_000;

/// A plaintext Secret, as written before `flotilla secret seal`.
fn plaintext(i: usize) -> SourceFile {
    SourceFile::new(
        format!("secrets/app-{i:04}.yaml"),
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-{i:04}\n  namespace: payments\n\
             type: Opaque\nstringData:\n  username: app-{i:04}\n  password: {:032x}\n",
            i * 7919
        ),
    )
}

fn identity_file(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    use std::os::unix::fs::PermissionsExt as _;
    let (text, recipient) = seal::generate("bench");
    let path = dir.join(name);
    std::fs::write(&path, text.expose()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, recipient)
}

fn secrets(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (leader_key, leader) = identity_file(dir.path(), "leader.key");
    let (_, person) = identity_file(dir.path(), "person.key");
    let recipients = Recipients::parse(&[leader.clone(), person.clone()]).unwrap();
    let files: Vec<SourceFile> = (0..SECRETS).map(plaintext).collect();

    // The sealed commit: the Cluster and 1,000 sealed Secrets.
    let mut commit = vec![SourceFile::new(
        "cluster.yaml",
        format!(
            "apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata:\n  name: c\nspec:\n  secrets:\n    recipients: [{leader}, {person}]\n"
        ),
    )];
    for file in &files {
        let (text, _) = seal::seal_clear_values(file, &recipients).unwrap().unwrap();
        commit.push(SourceFile::new(file.path.clone(), text));
    }
    let loaded = load(&commit);
    let errors: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(loaded.state.secrets.len(), SECRETS);

    let mut group = c.benchmark_group("secrets_1000");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.bench_function("seal_files", |b| {
        b.iter(|| {
            for file in &files {
                seal::seal_clear_values(file, &recipients).unwrap();
            }
        })
    });
    group.bench_function("load", |b| b.iter(|| load(&commit)));
    group.bench_function("open_cold", |b| {
        b.iter_batched(
            || (loaded.state.clone(), Identities::load(&leader_key).unwrap()),
            |(mut state, identities)| {
                assert!(state.open_secrets(&identities).is_empty());
                state
            },
            BatchSize::LargeInput,
        )
    });
    let identities = Identities::load(&leader_key).unwrap();
    assert!(loaded.state.clone().open_secrets(&identities).is_empty());
    group.bench_function("open_cached", |b| {
        b.iter_batched(
            || loaded.state.clone(),
            |mut state| {
                assert!(state.open_secrets(&identities).is_empty());
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, secrets);
criterion_main!(benches);
