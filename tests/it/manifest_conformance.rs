//! Real Kubernetes example manifests (Apache-2.0): every Deployment
//! validates, and every field or kind flotilla does not support is reported
//! by name with its place.
//!
//! The inputs are the project's copy under tests/fixtures/kubernetes-examples
//! and, when present (CI has `shared/` beside the checkout), the shared
//! conformance set `../shared/conformance/kubernetes-examples`; the copy must
//! equal it, so the test runs the real set, not a drifted one.

use std::fs;
use std::path::{Path, PathBuf};

use flotilla::manifest::model::{Kind, PodSet, RestartPolicy};
use flotilla::manifest::{load, SourceFile};

fn read_dir(dir: &Path) -> Vec<SourceFile> {
    let mut files: Vec<SourceFile> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|path| SourceFile {
            path: path.file_name().unwrap().to_string_lossy().into_owned(),
            text: fs::read_to_string(&path).expect("fixture"),
            excluded: Vec::new(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn copy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubernetes-examples")
}

fn shared_dir() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/kubernetes-examples");
    dir.is_dir().then_some(dir)
}

/// The shared set when present (checked equal to the copy), else the copy.
fn fixtures() -> Vec<SourceFile> {
    let copy = read_dir(&copy_dir());
    match shared_dir() {
        Some(dir) => {
            let shared = read_dir(&dir);
            let names = |files: &[SourceFile]| -> Vec<String> {
                files.iter().map(|f| f.path.clone()).collect()
            };
            assert_eq!(
                names(&copy),
                names(&shared),
                "tests/fixtures/kubernetes-examples lists other files than {}",
                dir.display()
            );
            for (a, b) in copy.iter().zip(&shared) {
                assert!(
                    a.text == b.text,
                    "tests/fixtures/kubernetes-examples/{} differs from {}; copy it again",
                    a.path,
                    dir.join(&b.path).display()
                );
            }
            shared
        }
        None => copy,
    }
}

#[test]
fn the_shared_set_is_read_when_present() {
    // This checkout sits in a worktree or CI layout with shared/ beside it
    // or not; either way the files read are the copy's names.
    let names: Vec<String> = fixtures().into_iter().map(|f| f.path).collect();
    assert!(names.contains(&"job.yaml".to_string()), "{names:?}");
    if let Some(dir) = shared_dir() {
        assert_eq!(
            names,
            read_dir(&dir)
                .into_iter()
                .map(|f| f.path)
                .collect::<Vec<_>>()
        );
    }
}

/// The Pod examples: besides their kind, every field of their pod
/// templates flotilla does not support is named with file:line. The Job
/// example (`pi`, issue 16) decodes as Kubernetes reads it.
#[test]
fn pods_and_jobs_name_what_is_unsupported() {
    let files: Vec<SourceFile> = fixtures()
        .into_iter()
        .filter(|f| {
            [
                "http-liveness.yaml",
                "tcp-liveness-readiness.yaml",
                "job.yaml",
            ]
            .contains(&f.path.as_str())
        })
        .collect();
    assert_eq!(files.len(), 3);
    let loaded = load(&files);
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    let all = rendered.join("\n\n");
    for (file, kind) in [
        ("http-liveness.yaml", "Pod"),
        ("tcp-liveness-readiness.yaml", "Pod"),
    ] {
        assert!(
            loaded
                .diagnostics
                .iter()
                .any(|d| d.location.file == file
                    && d.message == format!("{kind} is not supported yet")),
            "{file}: {all}"
        );
    }
    assert!(
        !loaded
            .diagnostics
            .iter()
            .any(|d| d.location.file == "job.yaml"),
        "{all}"
    );
    let pi = loaded
        .state
        .workload_named(Kind::Job, "default", "pi")
        .expect("the Job decodes");
    let PodSet::Completions(job) = pi.spec.pods else {
        panic!("{:?}", pi.spec.pods);
    };
    assert_eq!(
        (job.backoff_limit, job.completions, job.parallelism),
        (4, None, 1)
    );
    assert_eq!(pi.spec.template.spec.restart_policy, RestartPolicy::Never);
    insta::assert_snapshot!("pods_and_jobs", all);
}

#[test]
fn kubernetes_examples() {
    let loaded = load(&fixtures());
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("diagnostics", rendered.join("\n\n"));
    let workloads: Vec<String> = loaded
        .state
        .workloads
        .iter()
        .map(|d| {
            format!(
                "{} replicas={} containers={}",
                d.key(),
                d.replicas().unwrap_or(0),
                d.spec.template.spec.containers.len()
            )
        })
        .collect();
    assert_eq!(
        workloads,
        [
            "Deployment default/frontend replicas=3 containers=1",
            "Deployment default/nginx-deployment replicas=3 containers=1",
            "Deployment default/redis-master replicas=1 containers=1",
            "Deployment default/redis-replica replicas=2 containers=1",
            // Decoded; its hostPath volumes are refused by the policy
            // (no Cluster object allows a host path), not by its decoder.
            "DaemonSet kube-system/fluentd-elasticsearch replicas=0 containers=1",
            "StatefulSet default/web replicas=3 containers=1",
            "Job default/pi replicas=1 containers=1",
        ]
    );
    // The StatefulSet's volume claim template: a claim per ordinal.
    let claims: Vec<String> = loaded
        .state
        .claims
        .iter()
        .map(|c| format!("{}/{}", c.meta.namespace, c.meta.name))
        .collect();
    assert_eq!(
        claims,
        [
            "default/www-web-0",
            "default/www-web-1",
            "default/www-web-2"
        ]
    );
    // The guestbook's Services are deployed (the StatefulSet example's is
    // headless: an error).
    let services: Vec<String> = loaded
        .state
        .services
        .iter()
        .map(|s| s.key().to_string())
        .collect();
    assert_eq!(
        services,
        [
            "Service default/frontend",
            "Service default/redis-master",
            "Service default/redis-replica",
        ]
    );
    // No Deployment or StatefulSet of the examples has an error.
    assert!(loaded.diagnostics.iter().all(|d| {
        let object = d.object.as_deref().unwrap_or("");
        !d.is_error() || !(object.starts_with("Deployment") || object.starts_with("StatefulSet"))
    }));
}

/// The DaemonSet and StatefulSet examples read as Deployments: what their
/// pod templates may not do (`hostPath` volumes the policy does not allow,
/// a mount of a volume claim template) and the StatefulSet-only fields are
/// each named with their place.
#[test]
fn pod_templates_of_other_kinds_as_deployments() {
    let files: Vec<SourceFile> = fixtures()
        .into_iter()
        .filter(|f| f.path == "daemonset.yaml" || f.path == "statefulset.yaml")
        .map(|f| SourceFile {
            text: f
                .text
                .replace("kind: DaemonSet", "kind: Deployment")
                .replace("kind: StatefulSet", "kind: Deployment"),
            ..f
        })
        .collect();
    let loaded = load(&files);
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!("pod_templates_as_deployments", rendered.join("\n\n"));
    // The DaemonSet's template decodes; only the policy refuses it.
    let workloads: Vec<String> = loaded
        .state
        .workloads
        .iter()
        .map(|w| w.key().to_string())
        .collect();
    assert_eq!(workloads, ["Deployment kube-system/fluentd-elasticsearch"]);
}
