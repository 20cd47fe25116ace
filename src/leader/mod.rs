//! The leader: the control loop that makes the cluster what the repository
//! says. It watches the deployed branch, and on every change or resync tick
//! reads the tip, observes the nodes, plans and applies; it keeps the
//! writer lock, the restart back-off, probe verdicts and node-unreachable
//! times in memory, and publishes status and metrics.
//!
//! Thin: deciding what to do is `plan`'s job and talking to nodes is
//! `node`'s (through its `NodeOps` seam); this module sequences them. It never prints (the CLI does).

pub mod apply;
pub(crate) mod daemon;
pub(crate) mod hooks;
pub mod lock;
#[cfg(test)]
pub mod memory;
pub mod pod_config;
pub(crate) mod presence;
pub mod probe;
pub mod run;
pub mod services;
pub mod spec;
pub mod volumes;
pub(crate) mod watch;

/// The loader the leader uses: `manifest::load`, as a plain function.
pub fn load_manifests(
    files: &[crate::manifest::SourceFile],
) -> (
    crate::manifest::DesiredState,
    Vec<crate::manifest::Diagnostic>,
) {
    let loaded = crate::manifest::load(files);
    (loaded.state, loaded.diagnostics)
}

#[cfg(test)]
mod tests {
    use crate::manifest::SourceFile;

    /// The quick start's repository must load cleanly: a typo there is the
    /// first thing a new user would meet.
    #[test]
    fn examples_repo_is_valid() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-repo");
        let mut files = Vec::new();
        for relative in [
            "cluster.yaml",
            "nodes.yaml",
            "apps/web.yaml",
            "apps/worker.yaml",
            "apps/node-agent.yaml",
        ] {
            files.push(SourceFile {
                path: relative.to_string(),
                text: std::fs::read_to_string(root.join(relative)).unwrap(),
                excluded: Vec::new(),
            });
        }
        // scripts/demo seals web's Secret for the demo's own key.
        use base64::Engine as _;
        let age = base64::engine::general_purpose::STANDARD.encode(b"age-encryption.org/v1\n");
        files.push(SourceFile::new(
            "apps/web-token.yaml",
            format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\ndata:\n  token: AGE[0123456789abcdef:{age}]\n"),
        ));
        let (state, diagnostics) = super::load_manifests(&files);
        let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert!(rendered.is_empty(), "{}", rendered.join("\n"));
        assert_eq!(state.nodes.len(), 3);
        assert_eq!(state.workloads.len(), 3);
        assert_eq!(state.config_maps.len(), 1);
        assert_eq!(state.cluster.resync_seconds, 30);
    }
}
pub mod planner;
