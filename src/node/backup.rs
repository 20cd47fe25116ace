//! A volume's content as a tar stream, out and in: Docker's archive API on
//! a helper container that mounts the volume (created from an image on the
//! node, never started, removed after, also on error), streamed through the
//! node's session chunk by chunk, never held whole. The archive's entries
//! are relative to the volume's root (`./`, `./dir/file`), as
//! `tar -C DIR -cf - .` makes them. Everything below the root comes back
//! with its content, owner, mode and time; the root itself keeps the owner
//! and mode the volume has (Docker's extraction leaves an existing target
//! directory as it is).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, ListImagesOptions, UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::client::NodeClient;
use super::mounts::volume_mount;
use super::volumes::HELPER_VOLUME;
use super::NodeError;

/// How long a backup or restore may go without a byte moving.
pub(crate) const ARCHIVE_PROGRESS_DEADLINE: Duration = Duration::from_secs(60);

/// How much of the archive is read from the caller at a time.
const CHUNK: usize = 64 * 1024;

/// The whole volume, as Docker's archive `GET` names it: the entries come
/// relative to the root (`./…`).
fn volume_contents() -> String {
    format!("{HELPER_VOLUME}/.")
}

/// Whether the start of a backup archive shows an empty volume: the root
/// entry `./` and then the end of the archive (a zero block). Anything
/// else (another first entry, an extended header) counts as not empty.
fn shows_empty_volume(start: &[u8]) -> bool {
    const BLOCK: usize = 512;
    if start.len() < 2 * BLOCK {
        return false;
    }
    let name = &start[..100];
    let name_end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    matches!(&name[..name_end], b"./" | b".") && start[BLOCK..2 * BLOCK].iter().all(|&b| b == 0)
}

impl NodeClient {
    /// An image on the node to make a helper of `volume` from: one a
    /// container using the volume was made from, else any.
    async fn helper_image(&self, docker: &Docker, volume: &str) -> Result<String, NodeError> {
        let operation = format!("find an image for a helper of volume {volume}");
        self.bounded(&operation, self.request_timeout(), async {
            let mount_point = self.volume_mount_point(docker, volume).await?;
            let users = self.users_of(docker, volume, &mount_point).await?;
            if let Some(image) = users.into_iter().find_map(|user| user.image_id) {
                return Ok(image);
            }
            let images = docker
                .list_images(None::<ListImagesOptions>)
                .await
                .map_err(self.docker_error("list images"))?;
            images
                .into_iter()
                .map(|image| image.id)
                .find(|id| !id.is_empty())
                .ok_or_else(|| NodeError::NoHelperImage {
                    node: self.name.clone(),
                    volume: volume.to_string(),
                })
        })
        .await
    }

    /// Writes `volume`'s content to `out` as a tar stream, calling
    /// `progress` with the bytes written so far; the total. Given up when
    /// the node sends nothing for [`ARCHIVE_PROGRESS_DEADLINE`].
    pub(crate) async fn backup_volume<W>(
        &self,
        volume: &str,
        out: &mut W,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, NodeError>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let volume = self.checked_volume(volume)?;
        let docker = &self.docker().await?;
        let image = self.helper_image(docker, volume).await?;
        let mounts = vec![volume_mount(volume, HELPER_VOLUME, true)];
        self.with_helper(docker, &image, "backup", mounts, |helper| async move {
            let operation = format!("back up volume {volume}");
            let options = DownloadFromContainerOptionsBuilder::new()
                .path(&volume_contents())
                .build();
            let mut archive = docker.download_from_container(&helper, Some(options));
            let mut total = 0u64;
            loop {
                let chunk = tokio::time::timeout(ARCHIVE_PROGRESS_DEADLINE, archive.next())
                    .await
                    .map_err(|_| NodeError::Stalled {
                        node: self.name.clone(),
                        operation: operation.clone(),
                        deadline: ARCHIVE_PROGRESS_DEADLINE,
                    })?;
                let Some(chunk) = chunk else { break };
                let chunk = chunk.map_err(self.docker_error(&operation))?;
                out.write_all(&chunk).await.map_err(|source| {
                    self.archive_error(volume, "backup: write the archive", source)
                })?;
                total += chunk.len() as u64;
                progress(total);
            }
            out.flush().await.map_err(|source| {
                self.archive_error(volume, "backup: write the archive", source)
            })?;
            Ok(total)
        })
        .await
    }

    /// Extracts the tar stream `archive` into `volume` (files of the same
    /// path are replaced, others kept), calling `progress` with the bytes
    /// read so far; the total. Given up when no byte moves for
    /// [`ARCHIVE_PROGRESS_DEADLINE`]. Whether the volume may be written
    /// (in use, not empty) is the caller's decision.
    pub(crate) async fn restore_volume<R>(
        &self,
        volume: &str,
        archive: R,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<u64, NodeError>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let volume = self.checked_volume(volume)?;
        let docker = &self.docker().await?;
        let image = self.helper_image(docker, volume).await?;
        let mounts = vec![volume_mount(volume, HELPER_VOLUME, false)];
        self.with_helper(docker, &image, "restore", mounts, |helper| async move {
            let operation = format!("restore volume {volume}");
            let read = Arc::new(AtomicU64::new(0));
            let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
            let body = {
                let (read, read_error) = (Arc::clone(&read), Arc::clone(&read_error));
                futures_util::stream::unfold(Some(archive), move |reader| {
                    let (read, read_error, progress) = (
                        Arc::clone(&read),
                        Arc::clone(&read_error),
                        Arc::clone(&progress),
                    );
                    async move {
                        let mut reader = reader?;
                        let mut buffer = vec![0u8; CHUNK];
                        match reader.read(&mut buffer).await {
                            Ok(0) => None,
                            Ok(n) => {
                                buffer.truncate(n);
                                let total = read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                                progress(total);
                                Some((Ok(Bytes::from(buffer)), Some(reader)))
                            }
                            Err(error) => {
                                let copy = std::io::Error::new(error.kind(), error.to_string());
                                *read_error.lock().expect("never poisoned") = Some(copy);
                                Some((Err(error), None))
                            }
                        }
                    }
                })
            };
            let options = UploadToContainerOptionsBuilder::new()
                .path(HELPER_VOLUME)
                .build();
            let upload =
                docker.upload_to_container(&helper, Some(options), bollard::body_try_stream(body));
            let uploaded = tokio::select! {
                uploaded = upload => uploaded,
                () = until_stalled(&read, ARCHIVE_PROGRESS_DEADLINE) => {
                    return Err(NodeError::Stalled {
                        node: self.name.clone(),
                        operation,
                        deadline: ARCHIVE_PROGRESS_DEADLINE,
                    })
                }
            };
            if let Some(error) = read_error.lock().expect("never poisoned").take() {
                return Err(self.archive_error(volume, "restore: read the archive", error));
            }
            uploaded.map_err(self.docker_error(&operation))?;
            Ok(read.load(Ordering::Relaxed))
        })
        .await
    }

    /// Whether `volume` holds nothing (its root may have any owner and
    /// mode): read from the start of its archive, which is then dropped.
    pub(crate) async fn volume_is_empty(&self, volume: &str) -> Result<bool, NodeError> {
        let volume = self.checked_volume(volume)?;
        let docker = &self.docker().await?;
        let image = self.helper_image(docker, volume).await?;
        let mounts = vec![volume_mount(volume, HELPER_VOLUME, true)];
        self.with_helper(docker, &image, "inspect", mounts, |helper| async move {
            let operation = format!("read the start of volume {volume}");
            self.bounded(&operation, self.request_timeout(), async {
                let options = DownloadFromContainerOptionsBuilder::new()
                    .path(&volume_contents())
                    .build();
                let mut archive = docker.download_from_container(&helper, Some(options));
                let mut start = Vec::new();
                while start.len() < 1024 {
                    match archive.next().await {
                        Some(chunk) => {
                            start.extend_from_slice(&chunk.map_err(self.docker_error(&operation))?)
                        }
                        None => break,
                    }
                }
                Ok(shows_empty_volume(&start))
            })
            .await
        })
        .await
    }

    fn archive_error(&self, volume: &str, operation: &str, source: std::io::Error) -> NodeError {
        NodeError::Archive {
            node: self.name.clone(),
            volume: volume.to_string(),
            operation: operation.to_string(),
            source,
        }
    }
}

/// Returns once `moved` has not changed for `deadline`.
async fn until_stalled(moved: &AtomicU64, deadline: Duration) {
    let tick = (deadline / 4).max(Duration::from_millis(1));
    let mut last = moved.load(Ordering::Relaxed);
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let now = moved.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= deadline {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut header = tar::Header::new_gnu();
            if name.ends_with('/') {
                header.set_entry_type(tar::EntryType::Directory);
            }
            header.set_size(content.len() as u64);
            header.set_mode(0o755);
            builder
                .append_data(&mut header, name, *content)
                .expect("appended");
        }
        builder.into_inner().expect("finished")
    }

    #[test]
    fn only_a_lone_root_entry_shows_an_empty_volume() {
        assert!(shows_empty_volume(&archive(&[("./", b"")])));
        assert!(!shows_empty_volume(&archive(&[("./", b""), ("./a", b"x")])));
        assert!(!shows_empty_volume(&archive(&[("./", b""), ("./d/", b"")])));
        assert!(!shows_empty_volume(&archive(&[("other/", b"")])));
        assert!(!shows_empty_volume(&[]), "nothing read is not empty");
    }

    #[tokio::test(start_paused = true)]
    async fn a_transfer_is_stalled_only_when_nothing_moves_for_the_deadline() {
        let moved = Arc::new(AtomicU64::new(0));
        let mover = {
            let moved = Arc::clone(&moved);
            tokio::spawn(async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    moved.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let start = tokio::time::Instant::now();
        until_stalled(&moved, Duration::from_secs(60)).await;
        mover.await.expect("the mover ends");
        let waited = start.elapsed();
        // Moving every 30 s for 300 s, then still for the 60 s deadline.
        assert!(
            waited >= Duration::from_secs(360) && waited <= Duration::from_secs(380),
            "{waited:?}"
        );
    }
}
