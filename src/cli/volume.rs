//! `flotilla volume list|backup|restore`: the claims' Docker volumes on the
//! nodes the branch tip declares, and their content as a tar stream over
//! each node's session (Docker's archive API). Nothing here decides where a
//! claim lives: its node is the one observed to hold its volume.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde::Serialize;

use super::{exit, Output, OutputFormat};
use crate::cluster::{claim_volume_name, ObservedVolume, VolumeOwner};
use crate::manifest::model::Node;
use crate::node::{NodeOps, Nodes};

#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    pub command: VolumeCommand,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Every claim's volume on every node the branch declares.
    List(ListArgs),
    /// Write a claim's volume to stdout as a tar archive (`> data.tar`).
    Backup(BackupArgs),
    /// Extract a tar archive from stdin into a claim's volume (`< data.tar`).
    Restore(RestoreArgs),
    /// Commit the annotation that deletes a claim's volume and its data once deployed.
    Delete(super::volume_delete::VolumeDeleteArgs),
}

/// Which nodes to look at: those the branch tip declares.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[arg(long, env = "FLOTILLA_REPO", default_value = ".")]
    pub repo: PathBuf,
    /// The branch whose Node manifests are read (default: `git config
    /// flotilla.branch`, else the branch HEAD names, else main).
    #[arg(long)]
    pub branch: Option<String>,
    #[command(flatten)]
    pub nodes: super::NodeArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(short, long, value_enum, default_value_t)]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The claim: NAMESPACE/NAME, or NAME in namespace default.
    pub claim: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The claim: NAMESPACE/NAME, or NAME in namespace default.
    pub claim: String,
    /// Restore even when a running container uses the volume, or the
    /// volume is not empty (the archive is extracted over what is there).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub(super) fn run(args: &VolumeArgs, out: &mut Output) -> anyhow::Result<u8> {
    match &args.command {
        VolumeCommand::List(args) => list(args, out),
        VolumeCommand::Backup(args) => backup(args, out),
        VolumeCommand::Restore(args) => restore(args, out),
        VolumeCommand::Delete(args) => super::volume_delete::run(args, out),
    }
}

/// `NAMESPACE/NAME` or `NAME` (namespace `default`), each a DNS name as
/// Kubernetes has them (lowercase letters, digits, `-` and `.`).
fn parse_claim(text: &str) -> anyhow::Result<(String, String)> {
    let (namespace, name) = text.split_once('/').unwrap_or(("default", text));
    for (what, part) in [("namespace", namespace), ("claim name", name)] {
        let valid = !part.is_empty()
            && part.len() <= 253
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            anyhow::bail!(
                "{text:?}: the {what} {part:?} is not a valid name (lowercase letters, digits, \
                 `-` and `.`); name a claim as NAMESPACE/NAME or NAME"
            );
        }
    }
    Ok((namespace.to_string(), name.to_string()))
}

/// The nodes the branch tip declares.
fn declared_nodes(args: &ClusterArgs) -> anyhow::Result<Vec<Node>> {
    let branch = super::branch_or_default(&args.repo, args.branch.as_deref())?;
    let repository = crate::repo::open(&args.repo)?;
    let snapshot = crate::repo::read_revision(&repository, &branch)?;
    let nodes = crate::manifest::load(&snapshot.files).state.nodes;
    if nodes.is_empty() {
        anyhow::bail!(
            "branch {branch} of {} declares no node",
            args.repo.display()
        );
    }
    Ok(nodes)
}

/// One node's volumes, or why it was not reached.
struct Observed {
    node: String,
    volumes: Result<Vec<ObservedVolume>, String>,
}

async fn observe_all(runtime: &Nodes, nodes: &[Node]) -> Vec<Observed> {
    futures_util::future::join_all(nodes.iter().map(|node| async move {
        Observed {
            node: node.meta.name.clone(),
            volumes: runtime
                .observe(node)
                .await
                .map(|observation| observation.volumes)
                .map_err(|error| error.message),
        }
    }))
    .await
}

fn tokio_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedVolume {
    namespace: String,
    claim: String,
    node: String,
    volume: String,
    /// The storage the claim requested when the volume was made, in bytes.
    storage: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VolumeList {
    volumes: Vec<ListedVolume>,
    /// Nodes not reached, with why: their volumes are unknown.
    unknown_nodes: Vec<UnknownNode>,
}

#[derive(Serialize)]
struct UnknownNode {
    node: String,
    reason: String,
}

fn list(args: &ListArgs, out: &mut Output) -> anyhow::Result<u8> {
    let nodes = declared_nodes(&args.cluster)?;
    let runtime = args.cluster.nodes.nodes();
    let observed = tokio_runtime()?.block_on(observe_all(&runtime, &nodes));
    let mut listing = VolumeList {
        volumes: Vec::new(),
        unknown_nodes: Vec::new(),
    };
    for node in observed {
        match node.volumes {
            Ok(volumes) => {
                for volume in volumes {
                    if let VolumeOwner::Claim {
                        namespace,
                        claim,
                        storage,
                        ..
                    } = volume.owner
                    {
                        listing.volumes.push(ListedVolume {
                            namespace,
                            claim,
                            node: node.node.clone(),
                            volume: volume.name,
                            storage,
                            created_at: volume
                                .created_at
                                .map(|at| humantime::format_rfc3339_seconds(at).to_string()),
                        });
                    }
                }
            }
            Err(reason) => listing.unknown_nodes.push(UnknownNode {
                node: node.node,
                reason,
            }),
        }
    }
    listing
        .volumes
        .sort_by(|a, b| (&a.namespace, &a.claim, &a.node).cmp(&(&b.namespace, &b.claim, &b.node)));
    match args.output {
        OutputFormat::Json => out.json(&listing)?,
        OutputFormat::Text => print_list(&listing, out)?,
    }
    Ok(if listing.unknown_nodes.is_empty() {
        exit::OK
    } else {
        exit::UNKNOWN
    })
}

fn print_list(listing: &VolumeList, out: &mut Output) -> anyhow::Result<()> {
    let rows: Vec<[String; 4]> = listing
        .volumes
        .iter()
        .map(|volume| {
            [
                format!("{}/{}", volume.namespace, volume.claim),
                volume.node.clone(),
                storage_text(volume.storage),
                volume.created_at.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    if rows.is_empty() {
        let known = if listing.unknown_nodes.is_empty() {
            "no claim has a volume on any node"
        } else {
            "no claim has a volume on the nodes reached"
        };
        out.line(known)?;
    } else {
        let header = ["CLAIM", "NODE", "STORAGE", "CREATED"].map(str::to_string);
        let mut widths = [0usize; 4];
        for row in std::iter::once(&header).chain(&rows) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
            out.line(line.trim_end())?;
        }
    }
    for unknown in &listing.unknown_nodes {
        out.line(format!(
            "{}: unknown: not reached ({}), so its volumes are not known",
            unknown.node, unknown.reason
        ))?;
    }
    Ok(())
}

/// A claim's storage as Kubernetes writes it (`10Gi`, `512Mi`), in bytes
/// when no binary unit divides it.
fn storage_text(bytes: u64) -> String {
    crate::manifest::quantity::Bytes(bytes).to_string()
}

/// Where a claim's volume is: the node observed to hold it.
struct Located {
    node: String,
    volume: String,
}

/// Finds the node holding the volume of claim `text`. Refuses (exit 3)
/// when it is on none of the nodes reached but some were not reached, and
/// when two nodes hold one (the claim is then ambiguous: say which).
fn locate(
    runtime: &tokio::runtime::Runtime,
    nodes: &Nodes,
    args: &ClusterArgs,
    text: &str,
) -> anyhow::Result<Result<Located, (u8, String)>> {
    let (namespace, claim) = parse_claim(text)?;
    let volume = claim_volume_name(&namespace, &claim);
    let declared = declared_nodes(args)?;
    let observed = runtime.block_on(observe_all(nodes, &declared));
    let mut holders = Vec::new();
    let mut unreached = Vec::new();
    for node in observed {
        match node.volumes {
            Ok(volumes) => {
                if volumes.iter().any(|listed| listed.name == volume) {
                    holders.push(node.node);
                }
            }
            Err(reason) => unreached.push(format!("{} ({reason})", node.node)),
        }
    }
    Ok(match (holders.as_slice(), unreached.is_empty()) {
        ([node], _) => Ok(Located {
            node: node.clone(),
            volume,
        }),
        ([], true) => Err((
            exit::FAILURE,
            format!(
                "claim {namespace}/{claim} has no volume ({volume}) on any node; a claim's volume \
                 is made on the node where its first pod is created"
            ),
        )),
        ([], false) => Err((
            exit::UNKNOWN,
            format!(
                "claim {namespace}/{claim} has no volume ({volume}) on the nodes reached; not \
                 reached: {}",
                unreached.join(", ")
            ),
        )),
        (several, _) => Err((
            exit::FAILURE,
            format!(
                "claim {namespace}/{claim} has a volume ({volume}) on several nodes: {}; a claim \
                 lives on one node: remove the copy that is not in use by hand (`docker volume \
                 rm`) after backing it up",
                several.join(", ")
            ),
        )),
    })
}

/// Bytes moved, redrawn on one line of stderr (a terminal only) at most
/// ten times a second.
struct Progress {
    verb: &'static str,
    shown: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    fn new(verb: &'static str, out: &Output) -> Arc<Progress> {
        Arc::new(Progress {
            verb,
            shown: std::io::stderr().is_terminal() && !out.is_quiet(),
            last: Mutex::new(None),
        })
    }

    fn update(&self, bytes: u64) {
        if !self.shown {
            return;
        }
        let mut last = self.last.lock().expect("never poisoned");
        if last.is_some_and(|at| at.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\r\x1b[K{} {}", self.verb, bytes_text(bytes));
        let _ = stderr.flush();
    }

    /// Ends the progress line, if one was drawn.
    fn finish(&self) {
        if self.shown && self.last.lock().expect("never poisoned").is_some() {
            eprint!("\r\x1b[K");
        }
    }
}

/// `1.5 MiB`, `512 bytes`.
fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn backup(args: &BackupArgs, out: &mut Output) -> anyhow::Result<u8> {
    if std::io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write a tar archive to a terminal; redirect it: flotilla volume backup \
             {} > backup.tar",
            args.claim
        );
    }
    let runtime = tokio_runtime()?;
    let nodes = args.cluster.nodes.nodes();
    let located = match locate(&runtime, &nodes, &args.cluster, &args.claim)? {
        Ok(located) => located,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return Ok(code);
        }
    };
    let progress = Progress::new("backed up", out);
    let written = runtime.block_on(async {
        let mut stdout = tokio::io::stdout();
        let shown = Arc::clone(&progress);
        nodes
            .backup_volume(&located.node, &located.volume, &mut stdout, move |bytes| {
                shown.update(bytes)
            })
            .await
    });
    progress.finish();
    let written = written
        .map_err(|error| anyhow::anyhow!("{error}; the archive written so far is incomplete"))?;
    out.warn(format!(
        "backed up volume {} from node {}: {}",
        located.volume,
        located.node,
        bytes_text(written)
    ));
    Ok(exit::OK)
}

fn restore(args: &RestoreArgs, out: &mut Output) -> anyhow::Result<u8> {
    if std::io::stdin().is_terminal() {
        anyhow::bail!(
            "refusing to read a tar archive from a terminal; redirect it: flotilla volume \
             restore {} < backup.tar",
            args.claim
        );
    }
    let runtime = tokio_runtime()?;
    let nodes = args.cluster.nodes.nodes();
    let located = match locate(&runtime, &nodes, &args.cluster, &args.claim)? {
        Ok(located) => located,
        Err((code, message)) => {
            eprintln!("error: {message}");
            return Ok(code);
        }
    };
    let (node, volume) = (located.node.as_str(), located.volume.as_str());
    if !args.force {
        let refusal = runtime.block_on(async {
            let users = nodes.volume_users(node, volume).await?;
            let running: Vec<&str> = users
                .iter()
                .filter(|user| user.running)
                .map(|user| user.container.as_str())
                .collect();
            if !running.is_empty() {
                return Ok::<_, crate::node::NodeOpError>(Some(format!(
                    "volume {volume} on node {node} is in use by running {}: restoring under a \
                     running application can corrupt its data; scale its workload to 0 in Git \
                     (the claim and its volume stay), restore, then scale back (or pass --force)",
                    running.join(", ")
                )));
            }
            if !nodes.volume_is_empty(node, volume).await? {
                return Ok(Some(format!(
                    "volume {volume} on node {node} is not empty: a restore extracts the archive \
                     over what is there (files of the same path replaced, the others kept); pass \
                     --force to do so"
                )));
            }
            Ok(None)
        })?;
        if let Some(refusal) = refusal {
            anyhow::bail!("{refusal}");
        }
    }
    let progress = Progress::new("restored", out);
    let shown = Arc::clone(&progress);
    let read = runtime.block_on(nodes.restore_volume(
        node,
        volume,
        tokio::io::stdin(),
        move |bytes| shown.update(bytes),
    ));
    progress.finish();
    let read = read.map_err(|error| {
        anyhow::anyhow!(
            "{error}; the volume may hold part of the archive: restore again (with --force) \
             once the cause is fixed"
        )
    })?;
    out.warn(format!(
        "restored volume {volume} on node {node} from {} of archive",
        bytes_text(read)
    ));
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_named_namespace_slash_name_or_name() {
        assert_eq!(
            parse_claim("data").unwrap(),
            ("default".to_string(), "data".to_string())
        );
        assert_eq!(
            parse_claim("shop/data-web-0").unwrap(),
            ("shop".to_string(), "data-web-0".to_string())
        );
        for bad in ["", "/data", "shop/", "Data", "a/b/c", "-x", "x y"] {
            assert!(parse_claim(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_claim("Shop/data").unwrap_err().to_string(),
            "\"Shop/data\": the namespace \"Shop\" is not a valid name (lowercase letters, \
             digits, `-` and `.`); name a claim as NAMESPACE/NAME or NAME"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(storage_text(10 << 30), "10Gi");
        assert_eq!(storage_text(512 << 20), "512Mi");
        assert_eq!(storage_text(1_000_000_000), "1000000000");
        assert_eq!(storage_text(0), "0");
        assert_eq!(bytes_text(17), "17 bytes");
        assert_eq!(bytes_text(3 * 1024 * 1024 + 512 * 1024), "3.5 MiB");
    }
}
