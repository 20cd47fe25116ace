//! Volumes on a node: the Docker volumes flotilla makes (claims' and
//! `emptyDir`s'), listed by their label and made before the container that
//! mounts them; the mounts of its create request (their forms are
//! `mounts`'); removal; and the work Docker 20.10 does not do itself,
//! carried out through its API only (never a shell on the node):
//!
//! - a `subPath` is made inside its volume (a missing one as a directory,
//!   as Kubernetes does) by uploading directory entries into a helper
//!   container, and bind-mounted from the volume's mount point, since the
//!   API has no volume-subpath mounts before 1.45;
//! - a `hostPath` of type `FileOrCreate` gets its empty file the same way;
//! - a `hostPath`'s type is checked by stat-ing the mount in the created
//!   container (Docker's archive `HEAD`), which is removed on a mismatch.
//!
//! A helper container is created from an image already on the node, never
//! started, without network, labelled [`HELPER_LABEL`], and removed after
//! use, also when the work failed. An existing volume is used as it is:
//! never recreated, emptied or relabelled.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::container::PathStatResponse;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, Mount};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, CreateContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptions, UploadToContainerOptionsBuilder,
};
use bollard::Docker;

use super::client::{status_code, NodeClient};
use super::decode::parse_docker_time;
use super::mounts::{
    bind_mount, directories_archive, empty_file_archive, host_path_type_name, is_volume_name,
    mount_forms, volume_create_request, volume_mount, HostPathCheck, MountForm, PathType,
};
use super::spec::{ContainerMount, ReplicaContainer};
use super::NodeError;
use crate::cluster::{ObservedVolume, VolumeOwner, VOLUME_LABEL};
use crate::manifest::model::HostPathType;

/// On every helper container, with what it is for (`subpath`, `host-file`,
/// `backup`, `restore`): one left behind by a killed process is found by
/// `docker ps -a --filter label=dev.flotilla.helper`.
pub(crate) const HELPER_LABEL: &str = "dev.flotilla.helper";

/// Where a helper container mounts the volume it works on.
pub(super) const HELPER_VOLUME: &str = "/flotilla-volume";

/// Where a helper container mounts a hostPath's parent directory.
const HELPER_HOST: &str = "/flotilla-host";

/// A helper's entrypoint: Docker wants a command to create a container,
/// and this one is never started.
const HELPER_ENTRYPOINT: &str = "/flotilla-helper-is-never-started";

/// A container that mounts a volume, as `volume rm` and `volume restore`
/// name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeUser {
    pub container: String,
    pub running: bool,
    /// The image it was created from (Docker's image id): present on the
    /// node, so a helper can be made from it.
    pub image_id: Option<String>,
}

/// A helper container's create request: never started, no network.
fn helper_body(image: &str, purpose: &str, mounts: Vec<Mount>) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        entrypoint: Some(vec![HELPER_ENTRYPOINT.to_string()]),
        cmd: Some(Vec::new()),
        labels: Some(HashMap::from([(
            HELPER_LABEL.to_string(),
            purpose.to_string(),
        )])),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            network_mode: Some("none".to_string()),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    }
}

/// A name no other helper has, in this process or another.
fn helper_name(purpose: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "flotilla-helper.{purpose}.{}.{nanos}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether Docker refused a create because a bind's source is missing
/// (the Mount API: `bind source path does not exist: PATH`), and that path.
fn missing_bind_source(error: &bollard::errors::Error) -> Option<&str> {
    match error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 400,
            message,
        } => message
            .split_once("bind source path does not exist: ")
            .map(|(_, path)| path.trim()),
        _ => None,
    }
}

impl NodeClient {
    pub(super) fn checked_volume<'a>(&self, volume: &'a str) -> Result<&'a str, NodeError> {
        if is_volume_name(volume) {
            Ok(volume)
        } else {
            Err(NodeError::InvalidVolumeName {
                node: self.name.clone(),
                volume: volume.to_string(),
            })
        }
    }

    /// The volumes carrying [`VOLUME_LABEL`] (one list call, filtered on
    /// the daemon). A volume whose labels do not decode is skipped with a
    /// warning naming it.
    pub(super) async fn list_volumes(
        &self,
        docker: &Docker,
    ) -> Result<Vec<ObservedVolume>, NodeError> {
        let filters = HashMap::from([("label", vec![VOLUME_LABEL.to_string()])]);
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let listed = docker
            .list_volumes(Some(options))
            .await
            .map_err(self.docker_error("list volumes"))?;
        let mut volumes = Vec::new();
        for volume in listed.volumes.unwrap_or_default() {
            match VolumeOwner::from_docker_labels(&volume.labels) {
                Ok(owner) => volumes.push(ObservedVolume {
                    owner,
                    created_at: volume.created_at.as_deref().and_then(parse_docker_time),
                    name: volume.name,
                }),
                Err(reason) => {
                    tracing::warn!(node = %self.name, volume = %volume.name, %reason,
                        "skipping a volume labelled {VOLUME_LABEL} whose labels do not decode")
                }
            }
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(volumes)
    }

    /// Makes each of `container`'s volumes that is missing, with its
    /// owner's labels; one that exists is used as it is. Their mount points.
    async fn ensure_volumes(
        &self,
        docker: &Docker,
        container: &ReplicaContainer,
    ) -> Result<HashMap<String, String>, NodeError> {
        let mut mount_points = HashMap::new();
        for volume in &container.volumes {
            let name = self.checked_volume(&volume.name)?;
            let operation = format!("create volume {name}");
            let mount_point = self
                .bounded(&operation, self.request_timeout(), async {
                    match docker.inspect_volume(name).await {
                        Ok(existing) => return Ok(existing.mountpoint),
                        Err(error) if status_code(&error) == Some(404) => {}
                        Err(error) => {
                            return Err(self.docker_error(&format!("inspect volume {name}"))(error))
                        }
                    }
                    let created = docker
                        .create_volume(volume_create_request(volume))
                        .await
                        .map_err(self.docker_error(&operation))?;
                    tracing::info!(node = %self.name, volume = %name, "volume created");
                    Ok(created.mountpoint)
                })
                .await?;
            mount_points.insert(volume.name.clone(), mount_point);
        }
        Ok(mount_points)
    }

    /// `container`'s volumes made, its subPaths and `FileOrCreate` files in
    /// place: the mounts and binds of its create request, and the hostPaths
    /// to check once it exists.
    pub(super) async fn prepare_mounts(
        &self,
        docker: &Docker,
        container: &ReplicaContainer,
    ) -> Result<(Vec<Mount>, Vec<String>, Vec<HostPathCheck>), NodeError> {
        let (forms, checks) = mount_forms(container).map_err(|refusal| NodeError::Mount {
            node: self.name.clone(),
            container: container.name.clone(),
            target: refusal.target,
            reason: refusal.reason,
        })?;
        let mount_points = self.ensure_volumes(docker, container).await?;
        let mut mounts = Vec::new();
        let mut binds = Vec::new();
        for form in forms {
            match form {
                MountForm::Volume {
                    volume,
                    target,
                    read_only,
                } => mounts.push(volume_mount(&volume, &target, read_only)),
                MountForm::SubPath {
                    volume,
                    components,
                    target,
                    read_only,
                } => {
                    self.ensure_sub_path(docker, container, &volume, &components, &target)
                        .await?;
                    let mount_point = &mount_points[&volume];
                    let source = format!("{mount_point}/{}", components.join("/"));
                    mounts.push(bind_mount(&source, &target, read_only));
                }
                MountForm::LegacyBind { bind } => binds.push(bind),
                MountForm::Bind {
                    path,
                    target,
                    read_only,
                    create_file,
                } => {
                    if create_file {
                        self.ensure_host_file(docker, container, &path).await?;
                    }
                    mounts.push(bind_mount(&path, &target, read_only));
                }
            }
        }
        Ok((mounts, binds, checks))
    }

    /// The hostPath whose missing source Docker refused the create for, as
    /// an error naming it; `None` when the refusal was about something else.
    pub(super) fn host_path_missing(
        &self,
        container: &ReplicaContainer,
        error: &bollard::errors::Error,
    ) -> Option<NodeError> {
        let missing = missing_bind_source(error)?;
        container.mounts.iter().find_map(|mount| match mount {
            ContainerMount::Host { path, kind, .. } if path == missing => {
                Some(NodeError::HostPathMissing {
                    node: self.name.clone(),
                    container: container.name.clone(),
                    path: path.clone(),
                    kind: host_path_type_name(*kind).to_string(),
                    hint: match kind {
                        HostPathType::Directory => ", or use type DirectoryOrCreate".to_string(),
                        HostPathType::File => ", or use type FileOrCreate".to_string(),
                        _ => String::new(),
                    },
                })
            }
            _ => None,
        })
    }

    /// Checks each hostPath's type in the created container (the mount as
    /// the container sees it); on a mismatch the container is removed.
    pub(super) async fn check_host_paths(
        &self,
        docker: &Docker,
        container: &str,
        checks: &[HostPathCheck],
    ) -> Result<(), NodeError> {
        for check in checks {
            let operation = format!("stat {} in {container}", check.target);
            let stat = self
                .bounded(&operation, self.request_timeout(), async {
                    self.stat(docker, container, &check.target).await
                })
                .await?;
            let found = stat.map(|stat| PathType::of(stat.file_mode));
            if found == Some(check.expected) {
                continue;
            }
            let cleanup = match self.remove(container).await {
                Ok(()) => "the container was removed".to_string(),
                Err(removal) => format!("removing the container failed too ({removal})"),
            };
            return Err(NodeError::HostPathType {
                node: self.name.clone(),
                container: container.to_string(),
                path: check.path.clone(),
                kind: check.kind,
                found: found.map_or("missing", PathType::phrase),
                cleanup,
            });
        }
        Ok(())
    }

    /// Docker's archive stat of `path` in `container`; `None` when missing.
    pub(super) async fn stat(
        &self,
        docker: &Docker,
        container: &str,
        path: &str,
    ) -> Result<Option<PathStatResponse>, NodeError> {
        let options = ContainerArchiveInfoOptionsBuilder::new().path(path).build();
        match docker
            .get_container_archive_info(container, Some(options))
            .await
        {
            Ok(stat) => Ok(Some(stat)),
            Err(error) if status_code(&error) == Some(404) => Ok(None),
            Err(error) => Err(self.docker_error(&format!("stat {path} in {container}"))(
                error,
            )),
        }
    }

    /// Uploads `archive` into `container` at `path`.
    async fn upload(
        &self,
        docker: &Docker,
        container: &str,
        path: &str,
        archive: Vec<u8>,
    ) -> Result<(), NodeError> {
        let operation = format!("upload into {path} of {container}");
        let options = UploadToContainerOptionsBuilder::new()
            .path(path)
            .no_overwrite_dir_non_dir("true")
            .build();
        self.bounded(&operation, self.request_timeout(), async {
            docker
                .upload_to_container(container, Some(options), bollard::body_full(archive.into()))
                .await
                .map_err(self.docker_error(&operation))
        })
        .await
    }

    /// Creates a helper container from `image` with `mounts`, runs `work`
    /// with its name, and removes it whatever `work` gave. A failed
    /// removal is the error only when `work` succeeded.
    pub(super) async fn with_helper<T, F, Fut>(
        &self,
        docker: &Docker,
        image: &str,
        purpose: &str,
        mounts: Vec<Mount>,
        work: F,
    ) -> Result<T, NodeError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, NodeError>>,
    {
        let name = helper_name(purpose);
        let operation = format!("create helper container {name}");
        self.bounded(&operation, self.request_timeout(), async {
            let options = CreateContainerOptionsBuilder::new().name(&name).build();
            docker
                .create_container(Some(options), helper_body(image, purpose, mounts))
                .await
                .map(|_| ())
                .map_err(self.docker_error(&operation))
        })
        .await?;
        let result = work(name.clone()).await;
        let operation = format!("remove helper container {name}");
        // `v`: anonymous volumes its image declares go with it; named
        // volumes never do.
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let removed = self
            .bounded(&operation, self.request_timeout(), async {
                match docker.remove_container(&name, Some(options)).await {
                    Ok(()) => Ok(()),
                    Err(error) if status_code(&error) == Some(404) => Ok(()),
                    Err(error) => Err(self.docker_error(&operation)(error)),
                }
            })
            .await;
        match (result, removed) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(removal)) => Err(removal),
            (Err(error), removal) => {
                if let Err(removal) = removal {
                    tracing::warn!(node = %self.name, helper = %name, error = %removal,
                        "cannot remove a helper container; remove it by hand");
                }
                Err(error)
            }
        }
    }

    /// Makes `components` exist in `volume`: the missing directories are
    /// created with the mode of the volume's root (as the kubelet does),
    /// owned by root; an existing path is used as it is (a file too). A
    /// symbolic link on the way is refused: its bind from the node would
    /// follow it out of the volume.
    async fn ensure_sub_path(
        &self,
        docker: &Docker,
        container: &ReplicaContainer,
        volume: &str,
        components: &[String],
        target: &str,
    ) -> Result<(), NodeError> {
        let refuse = |reason: String| NodeError::Mount {
            node: self.name.clone(),
            container: container.name.clone(),
            target: target.to_string(),
            reason,
        };
        let sub_path = components.join("/");
        let mounts = vec![volume_mount(volume, HELPER_VOLUME, false)];
        self.with_helper(
            docker,
            &container.image,
            "subpath",
            mounts,
            |helper| async move {
                let root = self
                    .bounded("stat a volume's root", self.request_timeout(), async {
                        self.stat(docker, &helper, HELPER_VOLUME).await
                    })
                    .await?
                    .ok_or_else(|| {
                        refuse(format!("volume {volume} is not mounted in the helper"))
                    })?;
                let mut existing = HELPER_VOLUME.to_string();
                for (index, component) in components.iter().enumerate() {
                    let path = format!("{existing}/{component}");
                    let stat = self
                        .bounded("stat a subPath", self.request_timeout(), async {
                            self.stat(docker, &helper, &path).await
                        })
                        .await?;
                    let Some(stat) = stat else {
                        let archive = directories_archive(
                            &components[index..],
                            root.file_mode & 0o777,
                            SystemTime::now(),
                        );
                        return self.upload(docker, &helper, &existing, archive).await;
                    };
                    let within = components[..=index].join("/");
                    match PathType::of(stat.file_mode) {
                        PathType::Directory => existing = path,
                        PathType::Symlink => {
                            return Err(refuse(format!(
                                "subPath {sub_path} of volume {volume}: {within} is a symbolic \
                             link, which a subPath may not follow (it could lead out of the \
                             volume)"
                            )))
                        }
                        _ if index + 1 == components.len() => return Ok(()),
                        found => {
                            return Err(refuse(format!(
                                "subPath {sub_path} of volume {volume}: {within} is {}, not a \
                             directory",
                                found.phrase()
                            )))
                        }
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// Makes an empty file (root's, 0644) at `path` when nothing is there,
    /// as Kubernetes' `FileOrCreate`: its parent directory must exist.
    async fn ensure_host_file(
        &self,
        docker: &Docker,
        container: &ReplicaContainer,
        path: &str,
    ) -> Result<(), NodeError> {
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) if !name.is_empty() => {
                (if parent.is_empty() { "/" } else { parent }, name)
            }
            _ => {
                return Err(NodeError::Mount {
                    node: self.name.clone(),
                    container: container.name.clone(),
                    target: path.to_string(),
                    reason: format!("hostPath {path} of type FileOrCreate names no file"),
                })
            }
        };
        let mounts = vec![bind_mount(parent, HELPER_HOST, false)];
        let made = self
            .with_helper(
                docker,
                &container.image,
                "host-file",
                mounts,
                |helper| async move {
                    let inside = format!("{HELPER_HOST}/{name}");
                    let stat = self
                        .bounded("stat a hostPath", self.request_timeout(), async {
                            self.stat(docker, &helper, &inside).await
                        })
                        .await?;
                    if stat.is_none() {
                        let archive = empty_file_archive(name, SystemTime::now());
                        self.upload(docker, &helper, HELPER_HOST, archive).await?;
                        tracing::info!(node = %self.name, path, "hostPath file created");
                    }
                    Ok(())
                },
            )
            .await;
        match made {
            Err(NodeError::Docker { source, .. }) if missing_bind_source(&source).is_some() => {
                Err(NodeError::HostPathMissing {
                    node: self.name.clone(),
                    container: container.name.clone(),
                    path: parent.to_string(),
                    kind: "FileOrCreate".to_string(),
                    hint: format!(
                        " (FileOrCreate makes the file {name}, not its parent directory, as \
                         in Kubernetes)"
                    ),
                })
            }
            other => other,
        }
    }

    /// The containers (any state) that mount `volume`, by name or through
    /// a bind of a path under its mount point (a subPath): Docker's own
    /// in-use check sees only the first.
    pub(super) async fn users_of(
        &self,
        docker: &Docker,
        volume: &str,
        mount_point: &str,
    ) -> Result<Vec<VolumeUser>, NodeError> {
        let options = ListContainersOptionsBuilder::new().all(true).build();
        let summaries = docker
            .list_containers(Some(options))
            .await
            .map_err(self.docker_error("list containers"))?;
        let under = format!("{mount_point}/");
        let mut users: Vec<VolumeUser> = summaries
            .into_iter()
            .filter(|summary| {
                summary.mounts.iter().flatten().any(|mount| {
                    mount.name.as_deref() == Some(volume)
                        || mount.source.as_deref().is_some_and(|source| {
                            source == mount_point || source.starts_with(&under)
                        })
                })
            })
            .map(|summary| VolumeUser {
                container: summary
                    .names
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|name| name.trim_start_matches('/').to_string())
                    .or(summary.id)
                    .unwrap_or_default(),
                running: matches!(
                    summary.state,
                    Some(
                        ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING
                    )
                ),
                image_id: summary.image_id,
            })
            .collect();
        users.sort_by(|a, b| a.container.cmp(&b.container));
        Ok(users)
    }

    /// The containers that mount `volume` (see [`Self::users_of`]).
    pub(crate) async fn volume_users(&self, volume: &str) -> Result<Vec<VolumeUser>, NodeError> {
        let volume = self.checked_volume(volume)?;
        let docker = self.docker().await?;
        let operation = format!("find the users of volume {volume}");
        self.bounded(&operation, self.request_timeout(), async {
            let mount_point = self.volume_mount_point(&docker, volume).await?;
            self.users_of(&docker, volume, &mount_point).await
        })
        .await
    }

    /// `volume`'s mount point on the node; [`NodeError::VolumeMissing`]
    /// when there is no such volume.
    pub(super) async fn volume_mount_point(
        &self,
        docker: &Docker,
        volume: &str,
    ) -> Result<String, NodeError> {
        match docker.inspect_volume(volume).await {
            Ok(inspected) => Ok(inspected.mountpoint),
            Err(error) if status_code(&error) == Some(404) => Err(NodeError::VolumeMissing {
                node: self.name.clone(),
                volume: volume.to_string(),
            }),
            Err(error) => Err(self.docker_error(&format!("inspect volume {volume}"))(
                error,
            )),
        }
    }

    /// Removes `volume` and its data; a missing one is fine. Never forced:
    /// a volume any container mounts (by name, or a subPath of it, which
    /// Docker does not see) is refused with [`NodeError::VolumeInUse`].
    pub(crate) async fn remove_volume(&self, volume: &str) -> Result<(), NodeError> {
        let volume = self.checked_volume(volume)?;
        let docker = self.docker().await?;
        let operation = format!("remove volume {volume}");
        self.bounded(&operation, self.request_timeout(), async {
            let mount_point = match self.volume_mount_point(&docker, volume).await {
                Ok(mount_point) => mount_point,
                Err(NodeError::VolumeMissing { .. }) => return Ok(()),
                Err(error) => return Err(error),
            };
            let in_use = |users: Vec<VolumeUser>| NodeError::VolumeInUse {
                node: self.name.clone(),
                volume: volume.to_string(),
                containers: describe_users(&users),
            };
            let users = self.users_of(&docker, volume, &mount_point).await?;
            if !users.is_empty() {
                return Err(in_use(users));
            }
            match docker
                .remove_volume(volume, None::<RemoveVolumeOptions>)
                .await
            {
                Ok(()) => {
                    tracing::info!(node = %self.name, volume, "volume removed");
                    Ok(())
                }
                Err(error) if status_code(&error) == Some(404) => Ok(()),
                // A container made since the check above.
                Err(error) if status_code(&error) == Some(409) => {
                    Err(in_use(self.users_of(&docker, volume, &mount_point).await?))
                }
                Err(error) => Err(self.docker_error(&operation)(error)),
            }
        })
        .await
    }
}

/// `container a (running), container b`, for an error; Docker's word when
/// the list came back empty.
pub(crate) fn describe_users(users: &[VolumeUser]) -> String {
    if users.is_empty() {
        return "a container (Docker says so; it is gone from the list)".to_string();
    }
    let names: Vec<String> = users
        .iter()
        .map(|user| {
            if user.running {
                format!("{} (running)", user.container)
            } else {
                user.container.clone()
            }
        })
        .collect();
    let noun = if users.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{noun} {}", names.join(", "))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_described_with_what_runs() {
        let user = |container: &str, running| VolumeUser {
            container: container.into(),
            running,
            image_id: None,
        };
        assert_eq!(
            describe_users(&[user("a", true), user("b", false)]),
            "containers a (running), b"
        );
        assert_eq!(describe_users(&[user("a", false)]), "container a");
    }
}
