//! One try of a probe through the node seam: the timing and verdicts are
//! [`crate::reconcile::probes`]'s pure bookkeeping.

use std::time::Duration;

use crate::manifest::model::{Container, PortRef, Probe, ProbeHandler};
use crate::reconcile::probes::resolve_port;

use crate::node::{NodeOps, ProbeTarget};

/// Runs one try of `probe` against the container `container_name` (declared
/// as `container`) on `node`. Success per Kubernetes: a TCP connection
/// opened; an HTTP status in 200..400; an exit code of 0.
pub async fn run_probe<N: NodeOps>(
    nodes: &N,
    node: &str,
    container_name: &str,
    container: &Container,
    probe: &Probe,
) -> Result<(), String> {
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.max(1)));
    let target = |port: &PortRef| {
        resolve_port(container, port)
            .map(|(container_port, host_port)| ProbeTarget {
                container: container_name.to_string(),
                container_port,
                host_port,
            })
            .ok_or_else(|| {
                format!(
                    "probe port {port:?} is not a port of container {}",
                    container.name
                )
            })
    };
    let attempt = async {
        match &probe.handler {
            ProbeHandler::TcpSocket { port } => nodes
                .probe_tcp(node, &target(port)?, timeout)
                .await
                .map_err(|e| e.to_string()),
            ProbeHandler::HttpGet {
                path,
                port,
                headers,
                ..
            } => {
                let status = nodes
                    .probe_http(node, &target(port)?, path, headers, timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {status}"))
                }
            }
            ProbeHandler::Exec { command } => {
                let code = nodes
                    .probe_exec(node, container_name, command, timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!("command {command:?} exited with {code}"))
                }
            }
        }
    };
    // The seam enforces the timeout on the wire; this bounds the whole try.
    match tokio::time::timeout(timeout + Duration::from_secs(1), attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}
