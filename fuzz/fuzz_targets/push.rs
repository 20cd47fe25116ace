//! The whole path a push takes, on arbitrary bytes: a commit is made of them
//! (in an in-memory object database), read as the pre-receive hook reads it
//! (tree walk, blob size checks, UTF-8), validated, planned against an empty
//! cluster as `flotilla plan --offline` does, and rendered with a manifest
//! diff. None of it may panic, hang or exhaust memory, whatever is pushed.
//!
//! Input: segments separated by 0xFF bytes, taken in pairs as a file's path
//! (`/` makes directories; any bytes, UTF-8 or not) and its contents.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use flotilla::manifest::load;
use flotilla::plan::{self, RenderOptions};
use flotilla::repo;
use git2::build::TreeUpdateBuilder;
use git2::{FileMode, Odb, Repository, Signature, Time};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let odb = Odb::new().expect("an object database");
    odb.add_new_mempack_backend(1000).expect("a mempack backend");
    let repository = Repository::from_odb(odb).expect("a repository on it");
    let empty = repository
        .find_tree(repository.treebuilder(None).unwrap().write().unwrap())
        .unwrap();
    let mut update = TreeUpdateBuilder::new();
    let mut segments = data.split(|&b| b == 0xff);
    let mut files = 0;
    while let (Some(path), Some(contents)) = (segments.next(), segments.next()) {
        // git2's tree builder takes C strings: a NUL cannot be in a path
        // (git's own trees cannot hold one either).
        if path.contains(&0) {
            continue;
        }
        let Ok(blob) = repository.blob(contents) else {
            continue;
        };
        // Paths git itself would refuse (empty, `..`) fail here.
        let mut attempt = TreeUpdateBuilder::new();
        attempt.upsert(path.to_vec(), blob, FileMode::Blob);
        if attempt.create_updated(&repository, &empty).is_err() {
            continue;
        }
        update.upsert(path.to_vec(), blob, FileMode::Blob);
        files += 1;
        if files == 16 {
            break;
        }
    }
    let Ok(tree) = update.create_updated(&repository, &empty) else {
        return;
    };
    let tree = repository.find_tree(tree).unwrap();
    let signature = Signature::new("fuzz", "fuzz@example.invalid", &Time::new(0, 0)).unwrap();
    let commit = repository
        .commit(None, &signature, &signature, "fuzz", &tree, &[])
        .unwrap();

    let Ok(snapshot) = repo::read_revision(&repository, &commit.to_string()) else {
        return;
    };
    for diagnostic in &snapshot.diagnostics {
        let _ = diagnostic.to_string();
    }
    let loaded = load(&snapshot.files);
    for diagnostic in &loaded.diagnostics {
        let _ = diagnostic.to_string();
    }
    if loaded.has_errors() || snapshot.has_errors() {
        return;
    }
    let observed = plan::offline_cluster(&loaded.state);
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let planned = plan::plan(&loaded.state, &observed, &snapshot.commit, now);
    // The diff from the same commit less its first file.
    let deployed = snapshot.files.get(1..).unwrap_or_default();
    let diff = plan::manifest_diff(deployed, &snapshot.files);
    let _ = plan::render(
        &planned,
        RenderOptions {
            colour: false,
            manifest_diff: Some(&diff),
        },
    );
});
