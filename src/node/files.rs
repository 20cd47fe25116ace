//! A container's files, placed between its create and its start: the
//! upload (Docker's archive upload, one in-memory tar per file, nothing
//! written to the node's disk outside Docker), and the check that a
//! never-started container has them before it may start.

use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, UploadToContainerOptionsBuilder,
};
use bollard::Docker;

use super::client::{status_code, NodeClient};
use super::spec::{expected_files, FILES_LABEL};
use super::NodeError;

impl NodeClient {
    /// Uploads each file's archive into the created container (Docker's
    /// archive upload, extracted at `/`), one request per file so that a
    /// failure names its path. On a failure the container is removed: it
    /// is created again by the next reconcile, never started without its
    /// files.
    pub(super) async fn place_files(
        &self,
        docker: &Docker,
        container: &str,
        archives: Vec<(&str, Vec<u8>)>,
    ) -> Result<(), NodeError> {
        for (path, archive) in archives {
            let operation = format!("place {path} in {container}");
            let options = UploadToContainerOptionsBuilder::new()
                .path("/")
                // A file never replaces a directory of the image, nor the
                // reverse.
                .no_overwrite_dir_non_dir("true")
                .build();
            let placed = self
                .bounded(&operation, self.request_timeout(), async {
                    docker
                        .upload_to_container(
                            container,
                            Some(options),
                            bollard::body_full(archive.into()),
                        )
                        .await
                        .map_err(self.docker_error(&operation))
                })
                .await;
            if let Err(error) = placed {
                let cleanup = self.remove_after_files_failed(container, &error).await;
                // What went wrong, without the node and operation the
                // error names again.
                let reason = error.to_string();
                let prefix = format!("node {}: {operation}: ", self.name);
                return Err(NodeError::FileNotPlaced {
                    node: self.name.clone(),
                    container: container.to_string(),
                    path: path.to_string(),
                    unreachable: error.is_unreachable(),
                    reason: reason.strip_prefix(&prefix).unwrap_or(&reason).to_string(),
                    cleanup,
                });
            }
        }
        Ok(())
    }

    /// Removes a container whose files are not all in place, and says how
    /// that went, for the error that follows.
    pub(super) async fn remove_after_files_failed(
        &self,
        container: &str,
        cause: &NodeError,
    ) -> String {
        match self.remove(container).await {
            Ok(()) => "the container was removed, to be created again".to_string(),
            Err(removal) => {
                tracing::warn!(node = %self.name, container, error = %removal, %cause,
                    "cannot remove a container whose files are not in place");
                format!(
                    "removing the container failed too ({removal}); it is never started \
                     without its files"
                )
            }
        }
    }

    /// The first file a never-started container lacks (absent, not a
    /// regular file, or of another mode), if any. A container started
    /// before had its files when it first started.
    pub(super) async fn missing_file(
        &self,
        docker: &Docker,
        container: &str,
    ) -> Result<Option<String>, NodeError> {
        let inspected = match docker.inspect_container(container, None).await {
            Ok(inspected) => inspected,
            // Docker's start says it better.
            Err(error) if status_code(&error) == Some(404) => return Ok(None),
            Err(error) => return Err(self.docker_error(&format!("inspect {container}"))(error)),
        };
        let never_started = inspected
            .state
            .and_then(|state| state.status)
            .is_some_and(|status| status == ContainerStateStatusEnum::CREATED);
        let label = inspected
            .config
            .and_then(|config| config.labels)
            .and_then(|mut labels| labels.remove(FILES_LABEL));
        let (true, Some(label)) = (never_started, label) else {
            return Ok(None);
        };
        let Some(files) = expected_files(&label) else {
            return Ok(Some(format!("(label {FILES_LABEL} does not decode)")));
        };
        for (path, mode) in files {
            let options = ContainerArchiveInfoOptionsBuilder::new()
                .path(&path)
                .build();
            match docker
                .get_container_archive_info(container, Some(options))
                .await
            {
                // Go's FileMode: the permission bits, and no type bit for a
                // regular file.
                Ok(stat) if stat.file_mode == mode => {}
                Ok(_) => return Ok(Some(path)),
                Err(error) if status_code(&error) == Some(404) => return Ok(Some(path)),
                Err(error) => {
                    return Err(self.docker_error(&format!("stat {path} in {container}"))(
                        error,
                    ))
                }
            }
        }
        Ok(None)
    }
}
