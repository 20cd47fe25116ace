//! The corpus of invalid manifests: one file (or a directory of files) per
//! case under tests/invalid/, named by what is wrong. Every case's full
//! rendered diagnostics are pinned by a snapshot of the same name.

use std::fs;
use std::path::{Path, PathBuf};

use flotilla::manifest::{load, SourceFile};

fn read(path: &Path, root: &Path) -> SourceFile {
    SourceFile {
        path: path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        text: fs::read_to_string(path).expect("corpus file"),
        excluded: Vec::new(),
    }
}

/// Each case: its name and its files, paths relative to tests/invalid.
fn cases() -> Vec<(String, Vec<SourceFile>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut entries: Vec<PathBuf> = fs::read_dir(&root)
        .expect("tests/invalid")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    entries
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let files = if path.is_dir() {
                let mut files: Vec<PathBuf> = fs::read_dir(&path)
                    .expect("case directory")
                    .map(|e| e.expect("entry").path())
                    .collect();
                files.sort();
                files.iter().map(|f| read(f, &root)).collect()
            } else {
                vec![read(&path, &root)]
            };
            (name, files)
        })
        .collect()
}

/// The cases that are valid but deserve a warning; every other case must
/// give at least one error (a check demoted to a warning fails here).
const WARNINGS_ONLY: &[&str] = &[
    "exported-from-a-cluster",
    "memory-in-millibytes-warning",
    "node-selector-matches-no-node",
    // Issue 12, item 5: a document that is clearly no manifest (a list, a
    // string) is another tool's file, skipped with a warning.
    "not-a-mapping",
    // Issue 13: a Service may be declared before the workload it selects.
    "service-selector-matches-no-workload",
];

#[test]
fn every_invalid_manifest_is_reported() {
    let cases = cases();
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    for (name, files) in cases {
        let loaded = load(&files);
        assert!(
            !loaded.diagnostics.is_empty(),
            "{name}: no diagnostic for an invalid manifest"
        );
        if WARNINGS_ONLY.contains(&name.as_str()) {
            assert!(
                !loaded.has_errors(),
                "{name}: a warning-only case has an error: {:#?}",
                loaded.diagnostics
            );
        } else {
            assert!(
                loaded.has_errors(),
                "{name}: an invalid case gives only warnings: {:#?}",
                loaded.diagnostics
            );
        }
        let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        insta::with_settings!({ snapshot_path => "snapshots/invalid", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, rendered.join("\n\n"));
        });
    }
}
