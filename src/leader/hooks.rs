//! Running a container's lifecycle hooks (`postStart`, `preStop`) through
//! the node seam: exec through Docker exec, httpGet the way the leader's
//! httpGet probes go (from the node, to the pod's address), sleep in the
//! leader. What to run comes from the container's labels
//! ([`crate::cluster::Hooks`]); when to run it is `apply`'s.

use std::time::Duration;

use crate::cluster::Hook;
use crate::node::{NodeOps, ProbeTarget};

/// Runs `hook` for `container` on `node`, within `limit`. Success as
/// Kubernetes has it: exit code 0, an HTTP status in 200..400, a sleep
/// waited out (a sleep longer than `limit` is cut to it and succeeds).
pub(crate) async fn run_hook<N: NodeOps>(
    nodes: &N,
    node: &str,
    container: &str,
    hook: &Hook,
    limit: Duration,
) -> Result<(), String> {
    let attempt = async {
        match hook {
            Hook::Sleep { seconds } => {
                tokio::time::sleep(Duration::from_secs(u64::from(*seconds)).min(limit)).await;
                Ok(())
            }
            Hook::Exec { command } => {
                let code = nodes
                    .probe_exec(node, container, command, limit)
                    .await
                    .map_err(|e| e.to_string())?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!("command {command:?} exited with {code}"))
                }
            }
            Hook::HttpGet {
                path,
                port,
                host_port,
                headers,
            } => {
                let target = ProbeTarget {
                    container: container.to_string(),
                    container_port: *port,
                    host_port: *host_port,
                };
                let status = nodes
                    .probe_http(node, &target, path, headers, limit)
                    .await
                    .map_err(|e| e.to_string())?;
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    Err(format!("GET {path} answered {status}"))
                }
            }
        }
    };
    // A sleep is cut to the limit above; the others are bounded here.
    match tokio::time::timeout(limit + Duration::from_millis(500), attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {}s", limit.as_secs())),
    }
}
