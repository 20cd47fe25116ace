//! The node proxy's container: its image, made from the `flotilla-proxy`
//! binary that sits beside the running `flotilla` (no registry: the image
//! is loaded into each node's Docker the way images are shipped), the one
//! container per node that runs it (host networking, NET_ADMIN for the
//! Services' route), and the control requests the leader sends it through
//! Docker exec over the node's session.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ExecConfig, HostConfig, RestartPolicy};
use bollard::query_parameters::{CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder};
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::client::{status_code, NodeClient};
use super::image::load_with_deadline;
use super::NodeError;
use crate::proxy::table::{Request, Response, CONTAINER_NAME, STATE_DIRECTORY};

/// The label that marks the proxy's container, with its image as value.
pub const PROXY_LABEL: &str = "dev.flotilla.proxy";

/// The Docker volume where the proxy keeps its last table on the node (a
/// named volume: it lives in the node's Docker data root, survives the
/// proxy's replacement, and is one per Docker daemon).
const STATE_VOLUME: &str = "flotilla-proxy-state";

/// The binary's path inside the image.
const BINARY: &str = "/flotilla-proxy";

/// The image a pod sandbox is declared with: the leader puts the node
/// proxy's image in its place (loaded like the proxy's, never pulled).
pub const SANDBOX_IMAGE: &str = "flotilla-sandbox";

/// How long one control request may take (an exec and a line each way).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's image: a tag naming its content, and a `docker save`
/// archive of one layer holding the binary and the libraries it links.
#[derive(Clone, Debug)]
pub struct ProxyImage {
    pub tag: String,
    /// Shared by every node's load, never copied.
    archive: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyImageError {
    #[error("the node proxy's binary {path} is missing: install flotilla-proxy beside flotilla (cargo builds both), or set FLOTILLA_PROXY_BIN")]
    Missing { path: String },
    #[error("cannot read {path} for the node proxy's image: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot list the libraries {path} needs (ldd): {reason}")]
    Libraries { path: String, reason: String },
}

impl ProxyImage {
    /// `FLOTILLA_PROXY_BIN`, else `flotilla-proxy` beside the running binary.
    pub fn locate() -> Result<PathBuf, ProxyImageError> {
        let path = match std::env::var_os("FLOTILLA_PROXY_BIN") {
            Some(path) => PathBuf::from(path),
            None => {
                let exe = std::env::current_exe().map_err(|source| ProxyImageError::Read {
                    path: "the running executable".into(),
                    source,
                })?;
                // Test binaries live one level below the binaries
                // (target/debug/deps): look there too.
                let dir = exe.parent().unwrap_or(Path::new("."));
                let beside = dir.join("flotilla-proxy");
                if !beside.exists() && dir.ends_with("deps") {
                    dir.parent().unwrap_or(dir).join("flotilla-proxy")
                } else {
                    beside
                }
            }
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(ProxyImageError::Missing {
                path: path.display().to_string(),
            })
        }
    }

    /// The image of the binary at `binary`: it and every shared library
    /// `ldd` names, at the same paths.
    pub fn build(binary: &Path) -> Result<ProxyImage, ProxyImageError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ProxyImageError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let content = match without_debug_info(binary) {
            Some(stripped) => stripped,
            None => read(binary)?,
        };
        let mut files: Vec<(String, Vec<u8>, u32)> = vec![(BINARY.to_string(), content, 0o755)];
        for library in libraries(binary)? {
            let content = read(Path::new(&library))?;
            files.push((library, content, 0o755));
        }
        let layer = layer_tar(&files);
        let layer_digest = hex(&Sha256::digest(&layer));
        let tag = format!("flotilla-proxy:{}", &layer_digest[..12]);
        let config = serde_json::json!({
            "architecture": docker_architecture(),
            "os": "linux",
            "config": {
                "Entrypoint": [BINARY],
                "Cmd": ["run"],
                "Labels": { PROXY_LABEL: tag },
            },
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        })
        .to_string();
        let manifest = serde_json::json!([{
            "Config": "config.json",
            "RepoTags": [tag],
            "Layers": ["layer/layer.tar"],
        }])
        .to_string();
        let mut archive = tar::Builder::new(Vec::new());
        append(
            &mut archive,
            "layer/",
            &[],
            0o755,
            tar::EntryType::Directory,
        );
        append(
            &mut archive,
            "layer/layer.tar",
            &layer,
            0o644,
            tar::EntryType::Regular,
        );
        append(
            &mut archive,
            "config.json",
            config.as_bytes(),
            0o644,
            tar::EntryType::Regular,
        );
        append(
            &mut archive,
            "manifest.json",
            manifest.as_bytes(),
            0o644,
            tar::EntryType::Regular,
        );
        let archive = archive.into_inner().expect("writing to a Vec cannot fail");
        Ok(ProxyImage {
            tag,
            archive: Bytes::from(archive),
        })
    }
}

/// The binary without its debug sections (a debug build's are nine tenths
/// of it, shipped to every node for nothing), when `objcopy` is at hand.
fn without_debug_info(binary: &Path) -> Option<Vec<u8>> {
    let dir = tempfile_dir()?;
    let stripped = dir.join("flotilla-proxy");
    let status = std::process::Command::new("objcopy")
        .arg("--strip-debug")
        .arg(binary)
        .arg(&stripped)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let content = status
        .success()
        .then(|| std::fs::read(&stripped).ok())
        .flatten();
    let _ = std::fs::remove_dir_all(&dir);
    content
}

/// A fresh private directory under the system's temporary one.
fn tempfile_dir() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "flotilla-proxy-image-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir(&dir).ok()?;
    Some(dir)
}

fn docker_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shared libraries `ldd` resolves for `binary`, the dynamic loader
/// included (none for a static binary).
fn libraries(binary: &Path) -> Result<Vec<String>, ProxyImageError> {
    let failed = |reason: String| ProxyImageError::Libraries {
        path: binary.display().to_string(),
        reason,
    };
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // A static binary needs no library.
        if errors.contains("not a dynamic executable") || text.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        return Err(failed(errors.trim().to_string()));
    }
    parse_ldd(&text).map_err(failed)
}

/// `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)` lines: the absolute paths.
fn parse_ldd(text: &str) -> Result<Vec<String>, String> {
    let mut paths = BTreeSet::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("=> not found") {
            return Err(format!("a library is missing: {line}"));
        }
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            paths.insert(path.to_string());
        }
    }
    Ok(paths.into_iter().collect())
}

/// A layer: every file at its path, with the directories above it.
fn layer_tar(files: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut directories = BTreeSet::new();
    for (path, ..) in files {
        let mut parent = Path::new(path).parent();
        while let Some(dir) = parent.filter(|d| *d != Path::new("/")) {
            directories.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    for extra in ["/tmp", "/run", "/run/flotilla-proxy", STATE_DIRECTORY] {
        directories.insert(PathBuf::from(extra));
    }
    let mut layer = tar::Builder::new(Vec::new());
    for dir in &directories {
        let name = format!("{}/", dir.display().to_string().trim_start_matches('/'));
        let mode = if dir == Path::new("/tmp") {
            0o1777
        } else {
            0o755
        };
        append(&mut layer, &name, &[], mode, tar::EntryType::Directory);
    }
    for (path, content, mode) in files {
        append(
            &mut layer,
            path.trim_start_matches('/'),
            content,
            *mode,
            tar::EntryType::Regular,
        );
    }
    layer.into_inner().expect("writing to a Vec cannot fail")
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    content: &[u8],
    mode: u32,
    kind: tar::EntryType,
) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    builder
        .append_data(&mut header, path, content)
        .expect("writing to a Vec cannot fail");
}

impl NodeClient {
    /// Makes the node's proxy run from `image`: loads the image when the
    /// node lacks it, replaces a proxy container of another image, starts a
    /// stopped one. A running proxy of this image is left alone.
    /// Makes `image` present in the node's Docker: inspected, else loaded
    /// from the leader's archive (the proxy's and every pod sandbox's).
    pub(crate) async fn load_proxy_image(&self, image: &ProxyImage) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let operation = format!("load the node proxy's image {}", image.tag);
        match docker.inspect_image(&image.tag).await {
            Ok(_) => {}
            Err(error) if status_code(&error) == Some(404) => {
                const CHUNK: usize = 1 << 20;
                let archive = &image.archive;
                let chunks: Vec<Result<Bytes, bollard::errors::Error>> = (0..archive.len())
                    .step_by(CHUNK)
                    .map(|start| Ok(archive.slice(start..archive.len().min(start + CHUNK))))
                    .collect();
                load_with_deadline(
                    &docker,
                    &self.name,
                    &image.tag,
                    futures_util::stream::iter(chunks),
                    super::image::IMAGE_PROGRESS_DEADLINE,
                )
                .await?;
            }
            Err(error) => return Err(self.docker_error(&operation)(error)),
        }
        Ok(())
    }

    pub(crate) async fn ensure_proxy(&self, image: &ProxyImage) -> Result<(), NodeError> {
        let docker = self.docker().await?;
        let operation = format!("start the node proxy {}", image.tag);
        if let Ok(existing) = docker.inspect_container(CONTAINER_NAME, None).await {
            let labels = existing
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            let running = existing
                .state
                .as_ref()
                .and_then(|s| s.running)
                .unwrap_or(false);
            if labels.get(PROXY_LABEL) == Some(&image.tag) {
                if !running {
                    docker
                        .start_container(CONTAINER_NAME, None)
                        .await
                        .map_err(self.docker_error(&operation))?;
                }
                return Ok(());
            }
            if !labels.contains_key(PROXY_LABEL) {
                return Err(NodeError::NameInUse {
                    node: self.name.clone(),
                    container: CONTAINER_NAME.to_string(),
                    label: PROXY_LABEL.to_string(),
                });
            }
            tracing::info!(node = %self.name, image = %image.tag, "replacing the node proxy with a new image");
            docker
                .remove_container(
                    CONTAINER_NAME,
                    Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                )
                .await
                .map_err(self.docker_error(&operation))?;
        }
        self.load_proxy_image(image).await?;
        let body = ContainerCreateBody {
            image: Some(image.tag.clone()),
            cmd: Some(vec!["run".into(), "--node".into(), self.name.clone()]),
            labels: Some(HashMap::from([(
                PROXY_LABEL.to_string(),
                image.tag.clone(),
            )])),
            host_config: Some(HostConfig {
                network_mode: Some("host".into()),
                cap_add: Some(vec!["NET_ADMIN".into()]),
                binds: Some(vec![format!("{STATE_VOLUME}:{STATE_DIRECTORY}")]),
                restart_policy: Some(RestartPolicy {
                    name: Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
                    maximum_retry_count: None,
                }),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(CONTAINER_NAME)
                        .build(),
                ),
                body,
            )
            .await
            .map_err(self.docker_error(&operation))?;
        docker
            .start_container(CONTAINER_NAME, None)
            .await
            .map_err(self.docker_error(&operation))?;
        Ok(())
    }

    /// Sends one control request to the node's proxy (`flotilla-proxy ctl`
    /// through Docker exec) and reads its answer.
    pub(crate) async fn proxy_request(&self, request: &Request) -> Result<Response, NodeError> {
        let docker = self.docker().await?;
        let operation = "ask the node proxy".to_string();
        let mut line = serde_json::to_vec(request).expect("a request always serializes");
        line.push(b'\n');
        self.bounded(&operation, REQUEST_TIMEOUT, async {
            let exec = docker
                .create_exec(
                    CONTAINER_NAME,
                    ExecConfig {
                        cmd: Some(vec![BINARY.into(), "ctl".into()]),
                        attach_stdin: Some(true),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..ExecConfig::default()
                    },
                )
                .await
                .map_err(self.docker_error(&operation))?;
            let started = docker
                .start_exec(&exec.id, None)
                .await
                .map_err(self.docker_error(&operation))?;
            let bollard::exec::StartExecResults::Attached {
                mut output,
                mut input,
            } = started
            else {
                return Err(self.proxy_error("the exec did not attach"));
            };
            input
                .write_all(&line)
                .await
                .map_err(|e| self.proxy_error(&format!("writing the request: {e}")))?;
            input.flush().await.ok();
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            while let Some(item) = output.next().await {
                match item.map_err(self.docker_error(&operation))? {
                    bollard::container::LogOutput::StdOut { message } => {
                        stdout.extend_from_slice(&message);
                        if stdout.contains(&b'\n') {
                            break;
                        }
                    }
                    bollard::container::LogOutput::StdErr { message } => {
                        stderr.extend_from_slice(&message)
                    }
                    _ => {}
                }
            }
            drop(input);
            let text = String::from_utf8_lossy(&stdout);
            let answer = text.lines().next().unwrap_or_default();
            serde_json::from_str::<Response>(answer).map_err(|_| {
                let said = String::from_utf8_lossy(&stderr);
                let said = said.trim();
                self.proxy_error(&if said.is_empty() {
                    format!("no answer (got {answer:?})")
                } else {
                    said.to_string()
                })
            })
        })
        .await
    }

    fn proxy_error(&self, reason: &str) -> NodeError {
        NodeError::Proxy {
            node: self.name.clone(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_absolute_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f99)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f99)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f99)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
    }

    #[test]
    fn the_image_names_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("proxy");
        std::fs::write(&binary, b"#!/bin/sh\n").unwrap();
        let first = ProxyImage::build(&binary).unwrap();
        assert_eq!(first.tag, ProxyImage::build(&binary).unwrap().tag);
        std::fs::write(&binary, b"#!/bin/sh\necho\n").unwrap();
        assert_ne!(first.tag, ProxyImage::build(&binary).unwrap().tag);
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(&first.archive[..]);
        for entry in archive.entries().unwrap() {
            names.push(entry.unwrap().path().unwrap().display().to_string());
        }
        assert_eq!(
            names,
            ["layer/", "layer/layer.tar", "config.json", "manifest.json"]
        );
    }
}
