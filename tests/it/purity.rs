//! The pure core (`manifest`, `cluster`, `plan`, `reconcile`) does no I/O: it never
//! imports the runtime, SSH, Docker or Git crates, the file system, the
//! network, processes, the environment, or the clock. This test reads their
//! source and fails on any such use, so the boundary stays honest.

use std::path::{Path, PathBuf};

const PURE_MODULES: [&str; 4] = ["manifest", "cluster", "plan", "reconcile"];

const FORBIDDEN: [&str; 12] = [
    "tokio",
    "bollard",
    "russh",
    "git2",
    "hyper",
    "notify",
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "SystemTime::now",
    "Instant::now",
];

/// Every forbidden use in `source`, as `line: text`, ignoring comments.
fn forbidden_uses(source: &str) -> Vec<String> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .filter_map(|(index, line)| {
            let code = line.split("//").next().unwrap_or(line);
            FORBIDDEN
                .iter()
                .find(|word| contains_path(code, word))
                .map(|word| format!("{}: uses `{word}`: {}", index + 1, line.trim()))
        })
        .collect()
}

/// Whether `code` names `word` as a path, not as part of a longer identifier.
fn contains_path(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let is_ident = |c: char| c.is_alphanumeric() || c == '_';
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("module directory exists") {
        let path = entry.expect("readable directory").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn pure_modules_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for module in PURE_MODULES {
        let dir = src.join(module);
        if !dir.exists() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for file in files {
            checked += 1;
            let source = std::fs::read_to_string(&file).expect("readable source");
            for use_ in forbidden_uses(&source) {
                violations.push(format!("{}:{use_}", file.display()));
            }
        }
    }
    assert!(
        checked > 0,
        "no source of the pure modules was found under {}",
        src.display()
    );
    assert!(
        violations.is_empty(),
        "the pure core must not do I/O:\n{}",
        violations.join("\n")
    );
}

#[test]
fn detector_finds_what_it_must() {
    let cases = [
        ("use tokio::sync::Mutex;", true),
        ("let t = std::time::SystemTime::now();", true),
        ("use std::fs;", true),
        ("// tokio is not used here", false),
        ("let now = input.now; // not SystemTime::now", false),
        ("let tokio_like = 1;", false),
        ("use std::fmt;", false),
    ];
    for (code, expected) in cases {
        assert_eq!(!forbidden_uses(code).is_empty(), expected, "{code}");
    }
}

/// The kinds that run pods. The shared machinery takes a workload and never
/// asks which kind it is: what differs between kinds is data in the
/// workload's spec, decided in `manifest` and in the planner's one module
/// per pod set.
const WORKLOAD_KINDS: [&str; 6] = [
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "CronJob",
    "Pod",
];

/// Directories (under `src/`) of the shared machinery.
const KIND_BLIND: [&str; 4] = ["leader", "api", "plan/progress.rs", "plan/planner/mod.rs"];

/// Every place `source` names a workload kind (`Kind::Deployment`, or the
/// kind's name as a string), outside comments and test modules.
fn kind_names(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (index, line) in source.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        if line.trim_start().starts_with("//") {
            continue;
        }
        let code = line.split("//").next().unwrap_or(line);
        for kind in WORKLOAD_KINDS {
            let path = format!("Kind::{kind}");
            let quoted = format!("\"{kind}\"");
            if contains_path(code, &path) || code.contains(&quoted) {
                found.push(format!("{}: names {kind}: {}", index + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn shared_machinery_never_names_a_workload_kind() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for part in KIND_BLIND {
        let path = src.join(part);
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path);
        }
    }
    // The leader's in-memory node double is compiled for tests only.
    files.retain(|f| !f.ends_with("leader/memory.rs"));
    assert!(files.len() > 10, "found {} files", files.len());
    let mut violations = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("readable source");
        for name in kind_names(&source) {
            violations.push(format!("{}:{name}", file.display()));
        }
    }
    assert!(
        violations.is_empty(),
        "the shared machinery must take a workload, not name its kind \
         (put what differs in the workload's spec):\n{}",
        violations.join("\n")
    );
}

#[test]
fn kind_detector_finds_what_it_must() {
    let cases = [
        ("if key.kind == Kind::Deployment {", true),
        ("let kind = Kind::parse(\"DaemonSet\");", true),
        ("// a Deployment's pods", false),
        ("let kind = Kind::Node;", false),
        ("Kind::DeploymentLike", false),
        (
            "#[cfg(test)]\nmod tests { const K: Kind = Kind::Job; }",
            false,
        ),
    ];
    for (code, expected) in cases {
        assert_eq!(!kind_names(code).is_empty(), expected, "{code}");
    }
}
