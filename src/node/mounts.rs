//! What a container's volumes and mounts become in Docker's requests
//! (pure: no I/O): a volume's create request, each mount's form on Docker
//! 20.10 (a volume, a bind from a volume's mount point for a subPath, a
//! legacy bind that creates a directory, a Mount-API bind that does not),
//! the hostPath types to check, and the small archives that make a subPath
//! or a `FileOrCreate` file. `volumes` carries them out.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::models::{Mount, MountType, VolumeCreateRequest};

use super::spec::{ContainerMount, PodVolume, ReplicaContainer, VolumeMedium};
use crate::manifest::model::HostPathType;

/// What a path of the node is, as Docker's archive stat reports it (Go's
/// `FileMode` type bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PathType {
    Directory,
    File,
    Symlink,
    Other(&'static str),
}

impl PathType {
    pub(super) fn of(file_mode: u32) -> PathType {
        const DIR: u32 = 1 << 31;
        const SYMLINK: u32 = 1 << 27;
        const DEVICE: u32 = 1 << 26;
        const NAMED_PIPE: u32 = 1 << 25;
        const SOCKET: u32 = 1 << 24;
        const CHAR_DEVICE: u32 = 1 << 21;
        const IRREGULAR: u32 = 1 << 19;
        if file_mode & DIR != 0 {
            PathType::Directory
        } else if file_mode & SYMLINK != 0 {
            PathType::Symlink
        } else if file_mode & CHAR_DEVICE != 0 {
            PathType::Other("a character device")
        } else if file_mode & DEVICE != 0 {
            PathType::Other("a block device")
        } else if file_mode & NAMED_PIPE != 0 {
            PathType::Other("a named pipe")
        } else if file_mode & SOCKET != 0 {
            PathType::Other("a socket")
        } else if file_mode & IRREGULAR != 0 {
            PathType::Other("an irregular file")
        } else {
            PathType::File
        }
    }

    pub(super) fn phrase(self) -> &'static str {
        match self {
            PathType::Directory => "a directory",
            PathType::File => "a regular file",
            PathType::Symlink => "a symbolic link",
            PathType::Other(phrase) => phrase,
        }
    }
}

/// `hostPath.type` as Kubernetes spells it.
pub(super) fn host_path_type_name(kind: HostPathType) -> &'static str {
    match kind {
        HostPathType::Unset => "\"\"",
        HostPathType::Directory => "Directory",
        HostPathType::DirectoryOrCreate => "DirectoryOrCreate",
        HostPathType::File => "File",
        HostPathType::FileOrCreate => "FileOrCreate",
    }
}

/// What a hostPath of `kind` needs, for an error.
pub(super) fn host_path_type_needs(kind: HostPathType) -> &'static str {
    expected_type(kind).map_or("anything", PathType::phrase)
}

/// What must be at a hostPath of `kind` once it is mounted; `None`: no check.
fn expected_type(kind: HostPathType) -> Option<PathType> {
    match kind {
        HostPathType::Unset => None,
        HostPathType::Directory | HostPathType::DirectoryOrCreate => Some(PathType::Directory),
        HostPathType::File | HostPathType::FileOrCreate => Some(PathType::File),
    }
}

/// Docker's volume create request for `volume`: the `local` driver, its
/// owner's labels, and for `medium: Memory` a tmpfs (mounted once by the
/// driver, shared by every container of the pod that mounts the volume).
pub(super) fn volume_create_request(volume: &PodVolume) -> VolumeCreateRequest {
    let driver_opts = match volume.medium {
        VolumeMedium::Disk => None,
        VolumeMedium::Memory { size_bytes } => {
            let mut opts = HashMap::from([
                ("type".to_string(), "tmpfs".to_string()),
                ("device".to_string(), "tmpfs".to_string()),
            ]);
            if let Some(size) = size_bytes {
                opts.insert("o".to_string(), format!("size={size}"));
            }
            Some(opts)
        }
    };
    VolumeCreateRequest {
        name: Some(volume.name.clone()),
        driver: Some("local".to_string()),
        driver_opts,
        labels: Some(volume.owner.to_docker_labels()),
        ..VolumeCreateRequest::default()
    }
}

/// A named volume at `target`.
pub(super) fn volume_mount(volume: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(volume.to_string()),
        typ: Some(MountType::VOLUME),
        read_only: Some(read_only),
        ..Mount::default()
    }
}

/// A path of the node at `target` (the Mount API: the source must exist).
pub(super) fn bind_mount(source: &str, target: &str, read_only: bool) -> Mount {
    Mount {
        target: Some(target.to_string()),
        source: Some(source.to_string()),
        typ: Some(MountType::BIND),
        read_only: Some(read_only),
        ..Mount::default()
    }
}

/// A legacy `Binds` entry, which (unlike the Mount API) creates a missing
/// source directory: `path:target[:ro]`. A `:` in either path cannot be
/// said in that form.
fn legacy_bind(path: &str, target: &str, read_only: bool) -> Result<String, String> {
    if path.contains(':') || target.contains(':') {
        return Err(format!(
            "hostPath {path} at {target}: a path with `:` cannot be given to Docker as a \
             bind that creates its directory; use type Directory (the path must exist)"
        ));
    }
    Ok(if read_only {
        format!("{path}:{target}:ro")
    } else {
        format!("{path}:{target}")
    })
}

/// The components of a `subPath`, checked: relative, no `..` (empty and
/// `.` components are dropped, as Kubernetes' path cleaning does).
pub(super) fn sub_path_components(sub_path: &str) -> Result<Vec<&str>, String> {
    if sub_path.starts_with('/') {
        return Err(format!("subPath {sub_path:?} must be a relative path"));
    }
    let components: Vec<&str> = sub_path
        .split('/')
        .filter(|part| !matches!(*part, "" | "."))
        .collect();
    if components.contains(&"..") {
        return Err(format!("subPath {sub_path:?} must not contain `..`"));
    }
    if components.is_empty() {
        return Err(format!("subPath {sub_path:?} names no path in the volume"));
    }
    Ok(components)
}

/// One mount as the create request will carry it, once the node has done
/// what it needs (a subPath made, a hostPath file created).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum MountForm {
    /// Ready as it is.
    Volume {
        volume: String,
        target: String,
        read_only: bool,
    },
    /// `sub_path` of `volume`, to make and bind from its mount point.
    SubPath {
        volume: String,
        components: Vec<String>,
        target: String,
        read_only: bool,
    },
    /// A legacy bind (creates a missing directory).
    LegacyBind { bind: String },
    /// A bind through the Mount API (the source must exist); with
    /// `create_file`, an empty file is made first when nothing is there.
    Bind {
        path: String,
        target: String,
        read_only: bool,
        create_file: bool,
    },
}

/// A hostPath to check once the container is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct HostPathCheck {
    pub(super) path: String,
    pub(super) target: String,
    pub(super) kind: HostPathType,
    pub(super) expected: PathType,
}

/// A refused mount: its target and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct MountRefusal {
    pub(super) target: String,
    pub(super) reason: String,
}

/// What each of `container`'s mounts needs, and the hostPath checks after
/// its creation; no I/O. Refuses a subPath of a `medium: Memory` volume
/// (its directory would be made on the node's disk, not in the tmpfs), a
/// mount of a volume the container does not list, and a bad subPath.
pub(super) fn mount_forms(
    container: &ReplicaContainer,
) -> Result<(Vec<MountForm>, Vec<HostPathCheck>), MountRefusal> {
    let mut forms = Vec::new();
    let mut checks = Vec::new();
    for mount in &container.mounts {
        match mount {
            ContainerMount::Volume {
                volume,
                target,
                sub_path,
                read_only,
            } => {
                let refuse = |reason: String| MountRefusal {
                    target: target.clone(),
                    reason,
                };
                let listed = container
                    .volumes
                    .iter()
                    .find(|listed| listed.name == *volume)
                    .ok_or_else(|| {
                        refuse(format!(
                            "volume {volume} is not among the container's volumes (a bug in \
                             the leader's container description)"
                        ))
                    })?;
                match sub_path {
                    None => forms.push(MountForm::Volume {
                        volume: volume.clone(),
                        target: target.clone(),
                        read_only: *read_only,
                    }),
                    Some(sub_path) => {
                        if matches!(listed.medium, VolumeMedium::Memory { .. }) {
                            return Err(refuse(format!(
                                "subPath {sub_path:?} of volume {volume}, an emptyDir of medium \
                                 Memory: Docker 20.10 cannot mount part of a volume, and the \
                                 bind flotilla uses instead would put the subPath on the node's \
                                 disk; mount the whole volume"
                            )));
                        }
                        let components = sub_path_components(sub_path).map_err(refuse)?;
                        forms.push(MountForm::SubPath {
                            volume: volume.clone(),
                            components: components.into_iter().map(str::to_string).collect(),
                            target: target.clone(),
                            read_only: *read_only,
                        });
                    }
                }
            }
            ContainerMount::Host {
                path,
                target,
                kind,
                read_only,
            } => {
                match kind {
                    HostPathType::Unset | HostPathType::DirectoryOrCreate => {
                        forms.push(MountForm::LegacyBind {
                            bind: legacy_bind(path, target, *read_only).map_err(|reason| {
                                MountRefusal {
                                    target: target.clone(),
                                    reason,
                                }
                            })?,
                        });
                    }
                    HostPathType::Directory | HostPathType::File | HostPathType::FileOrCreate => {
                        forms.push(MountForm::Bind {
                            path: path.clone(),
                            target: target.clone(),
                            read_only: *read_only,
                            create_file: *kind == HostPathType::FileOrCreate,
                        });
                    }
                }
                if let Some(expected) = expected_type(*kind) {
                    checks.push(HostPathCheck {
                        path: path.clone(),
                        target: target.clone(),
                        kind: *kind,
                        expected,
                    });
                }
            }
        }
    }
    Ok((forms, checks))
}

/// A tar of the directories `components[..]`, each inside the one before
/// (`a/`, `a/b/`), owned by root with `mode`: extracted where the first is
/// missing, it makes the rest of a subPath.
pub(super) fn directories_archive(
    components: &[String],
    mode: u32,
    modified: SystemTime,
) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut path = String::new();
    for component in components {
        path.push_str(component);
        path.push('/');
        let mut header = root_header(tar::EntryType::Directory, mode, modified);
        builder
            .append_data(&mut header, &path, std::io::empty())
            .expect("an in-memory archive of short names is written");
    }
    builder
        .into_inner()
        .expect("an in-memory archive is finished")
}

/// A tar of one empty regular file `name`, root's, mode 0644: a hostPath
/// `FileOrCreate` made as Kubernetes makes it.
pub(super) fn empty_file_archive(name: &str, modified: SystemTime) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = root_header(tar::EntryType::Regular, 0o644, modified);
    builder
        .append_data(&mut header, name, std::io::empty())
        .expect("an in-memory archive of one name is written");
    builder
        .into_inner()
        .expect("an in-memory archive is finished")
}

fn root_header(kind: tar::EntryType, mode: u32, modified: SystemTime) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(0);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(
        modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
    );
    header
}

/// Docker's rule for a volume name (it goes into API paths): letters,
/// digits and `_.-`, starting with a letter or digit.
pub(super) fn is_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::VolumeOwner;

    fn claim_volume(name: &str) -> PodVolume {
        PodVolume {
            name: name.into(),
            owner: VolumeOwner::Claim {
                namespace: "default".into(),
                claim: "data".into(),
                storage: 1 << 30,
                ordinal: None,
            },
            medium: VolumeMedium::Disk,
        }
    }

    fn json(value: &impl serde::Serialize) -> serde_json::Value {
        serde_json::to_value(value).expect("serializes")
    }

    #[test]
    fn a_disk_volume_is_a_local_volume_with_its_owners_labels() {
        let request = volume_create_request(&claim_volume("flotilla.pvc.default.data"));
        assert_eq!(
            json(&request),
            serde_json::json!({
                "Name": "flotilla.pvc.default.data",
                "Driver": "local",
                "Labels": {
                    "dev.flotilla.volume": "claim",
                    "dev.flotilla.namespace": "default",
                    "dev.flotilla.claim": "data",
                    "dev.flotilla.storage": "1073741824",
                },
            })
        );
    }

    #[test]
    fn a_memory_volume_is_a_tmpfs_of_its_size() {
        for (size_bytes, opts) in [
            (
                Some(64 << 20),
                serde_json::json!({"type": "tmpfs", "device": "tmpfs", "o": "size=67108864"}),
            ),
            (
                None,
                serde_json::json!({"type": "tmpfs", "device": "tmpfs"}),
            ),
        ] {
            let mut volume = claim_volume("v");
            volume.medium = VolumeMedium::Memory { size_bytes };
            assert_eq!(json(&volume_create_request(&volume))["DriverOpts"], opts);
        }
    }

    fn container(volumes: Vec<PodVolume>, mounts: Vec<ContainerMount>) -> ReplicaContainer {
        ReplicaContainer {
            name: "c".into(),
            volumes,
            mounts,
            ..ReplicaContainer::default()
        }
    }

    fn volume(
        volume: &str,
        target: &str,
        sub_path: Option<&str>,
        read_only: bool,
    ) -> ContainerMount {
        ContainerMount::Volume {
            volume: volume.into(),
            target: target.into(),
            sub_path: sub_path.map(Into::into),
            read_only,
        }
    }

    fn host(path: &str, target: &str, kind: HostPathType, read_only: bool) -> ContainerMount {
        ContainerMount::Host {
            path: path.into(),
            target: target.into(),
            kind,
            read_only,
        }
    }

    #[test]
    fn mounts_take_the_form_docker_20_10_can_do() {
        let (forms, checks) = mount_forms(&container(
            vec![claim_volume("v")],
            vec![
                volume("v", "/data", None, false),
                volume("v", "/etc/app", Some("./config//app/"), true),
                host("/srv/logs", "/logs", HostPathType::Unset, false),
                host(
                    "/srv/cache",
                    "/cache",
                    HostPathType::DirectoryOrCreate,
                    true,
                ),
                host("/srv/dir", "/dir", HostPathType::Directory, false),
                host("/etc/hosts", "/h", HostPathType::File, true),
                host("/run/app.lock", "/lock", HostPathType::FileOrCreate, false),
            ],
        ))
        .expect("accepted");
        assert_eq!(
            forms,
            [
                MountForm::Volume {
                    volume: "v".into(),
                    target: "/data".into(),
                    read_only: false
                },
                MountForm::SubPath {
                    volume: "v".into(),
                    components: vec!["config".into(), "app".into()],
                    target: "/etc/app".into(),
                    read_only: true
                },
                MountForm::LegacyBind {
                    bind: "/srv/logs:/logs".into()
                },
                MountForm::LegacyBind {
                    bind: "/srv/cache:/cache:ro".into()
                },
                MountForm::Bind {
                    path: "/srv/dir".into(),
                    target: "/dir".into(),
                    read_only: false,
                    create_file: false
                },
                MountForm::Bind {
                    path: "/etc/hosts".into(),
                    target: "/h".into(),
                    read_only: true,
                    create_file: false
                },
                MountForm::Bind {
                    path: "/run/app.lock".into(),
                    target: "/lock".into(),
                    read_only: false,
                    create_file: true
                },
            ]
        );
        let checked: Vec<(&str, PathType)> = checks
            .iter()
            .map(|check| (check.path.as_str(), check.expected))
            .collect();
        assert_eq!(
            checked,
            [
                ("/srv/cache", PathType::Directory),
                ("/srv/dir", PathType::Directory),
                ("/etc/hosts", PathType::File),
                ("/run/app.lock", PathType::File),
            ],
            "an unset type is not checked"
        );
    }

    #[test]
    fn mounts_in_dockers_json() {
        assert_eq!(
            json(&volume_mount("flotilla.pvc.default.data", "/data", true)),
            serde_json::json!({
                "Target": "/data",
                "Source": "flotilla.pvc.default.data",
                "Type": "volume",
                "ReadOnly": true,
            })
        );
        assert_eq!(
            json(&bind_mount(
                "/var/lib/docker/volumes/v/_data/app",
                "/etc/app",
                false
            )),
            serde_json::json!({
                "Target": "/etc/app",
                "Source": "/var/lib/docker/volumes/v/_data/app",
                "Type": "bind",
                "ReadOnly": false,
            })
        );
    }

    #[test]
    fn refused_mounts_name_their_target_and_why() {
        let mut memory = claim_volume("m");
        memory.medium = VolumeMedium::Memory { size_bytes: None };
        for (mounts, volumes, reason) in [
            (
                vec![volume("m", "/t", Some("x"), false)],
                vec![memory.clone()],
                "subPath \"x\" of volume m, an emptyDir of medium Memory: Docker 20.10 cannot \
                 mount part of a volume, and the bind flotilla uses instead would put the \
                 subPath on the node's disk; mount the whole volume",
            ),
            (
                vec![volume("v", "/t", Some("a/../../etc"), false)],
                vec![claim_volume("v")],
                "subPath \"a/../../etc\" must not contain `..`",
            ),
            (
                vec![volume("v", "/t", Some("/etc"), false)],
                vec![claim_volume("v")],
                "subPath \"/etc\" must be a relative path",
            ),
            (
                vec![volume("v", "/t", Some("./"), false)],
                vec![claim_volume("v")],
                "subPath \"./\" names no path in the volume",
            ),
            (
                vec![volume("other", "/t", None, false)],
                vec![claim_volume("v")],
                "volume other is not among the container's volumes (a bug in the leader's \
                 container description)",
            ),
            (
                vec![host("/srv/a:b", "/t", HostPathType::Unset, false)],
                vec![],
                "hostPath /srv/a:b at /t: a path with `:` cannot be given to Docker as a bind \
                 that creates its directory; use type Directory (the path must exist)",
            ),
        ] {
            assert_eq!(
                mount_forms(&container(volumes, mounts)),
                Err(MountRefusal {
                    target: "/t".into(),
                    reason: reason.into()
                })
            );
        }
    }

    #[test]
    fn path_types_from_gos_file_mode() {
        for (mode, expected) in [
            ((1 << 31) | 0o755, PathType::Directory),
            (0o644, PathType::File),
            ((1 << 27) | 0o777, PathType::Symlink),
            (
                (1 << 26) | (1 << 21) | 0o666,
                PathType::Other("a character device"),
            ),
            ((1 << 26) | 0o660, PathType::Other("a block device")),
            ((1 << 24) | 0o755, PathType::Other("a socket")),
            ((1 << 25) | 0o644, PathType::Other("a named pipe")),
        ] {
            assert_eq!(PathType::of(mode), expected, "{mode:o}");
        }
    }

    #[test]
    fn archives_make_missing_directories_and_an_empty_file() {
        let when = UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let archive = directories_archive(&["a".into(), "b".into()], 0o750, when);
        let mut archive = tar::Archive::new(&archive[..]);
        let entries: Vec<(String, tar::EntryType, u32, u64)> = archive
            .entries()
            .expect("entries")
            .map(|entry| {
                let entry = entry.expect("an entry");
                let header = entry.header();
                (
                    entry.path().expect("path").display().to_string(),
                    header.entry_type(),
                    header.mode().expect("mode"),
                    header.uid().expect("uid"),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("a/".into(), tar::EntryType::Directory, 0o750, 0),
                ("a/b/".into(), tar::EntryType::Directory, 0o750, 0),
            ]
        );
        let archive = empty_file_archive("app.lock", when);
        let mut archive = tar::Archive::new(&archive[..]);
        let mut entries = archive.entries().expect("entries");
        let entry = entries.next().expect("one").expect("an entry");
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
        assert_eq!(entry.header().mode().expect("mode"), 0o644);
        assert_eq!(entry.header().size().expect("size"), 0);
        drop(entry);
        assert!(entries.next().is_none());
    }

    #[test]
    fn volume_names_that_reach_dockers_api_paths() {
        for good in ["flotilla.pvc.default.data-web-0", "v", "a_b-c.1"] {
            assert!(is_volume_name(good), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "../x", "a b", "v?x=1"] {
            assert!(!is_volume_name(bad), "{bad}");
        }
    }
}
