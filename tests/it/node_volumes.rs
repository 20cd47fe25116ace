//! Volumes through the node runtime, on the real testbed (Docker 20.10
//! through the SSH tunnel): claim volumes made once with their labels and
//! kept across containers, a `medium: Memory` emptyDir as a tmpfs shared by
//! a pod's containers, subPaths made and mounted, hostPath types checked,
//! removal refused while in use, and backup/restore round trips.
//!
//! Like the other `node` tests these share the testbed; they keep to n4,
//! which no other `node` test changes, and each uses names of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flotilla::cluster::{ContainerState, ManagedLabels, VolumeOwner};
use flotilla::manifest::model::{HostPathType, Kind};
use flotilla::node::{
    ContainerMount, DockerRestartPolicy, NodeOps, Nodes, PodVolume, ReplicaContainer, VolumeMedium,
};

use crate::common::{shared_cluster, TestCluster};

const NODE: &str = "n4";

fn labels(name: &str, container: &str) -> ManagedLabels {
    ManagedLabels {
        namespace: "default".into(),
        kind: Kind::Deployment,
        name: name.into(),
        slot: 0,
        template_hash: "0123456789".into(),
        commit: "c0ffee".into(),
        node: NODE.into(),
        container: container.into(),
        role: Default::default(),
    }
}

/// Container `container` of a pod of Deployment `name` on n4, running
/// `script` once.
fn once(cluster: &TestCluster, name: &str, container: &str, script: &str) -> ReplicaContainer {
    let labels = labels(name, container);
    ReplicaContainer {
        name: labels.container_name(),
        image: cluster.image(),
        labels: labels.to_docker_labels(),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        restart_policy: DockerRestartPolicy::No,
        ..ReplicaContainer::default()
    }
}

fn claim(claim: &str) -> PodVolume {
    PodVolume {
        name: flotilla::cluster::claim_volume_name("default", claim),
        owner: VolumeOwner::Claim {
            namespace: "default".into(),
            claim: claim.into(),
            storage: 1 << 30,
            ordinal: None,
        },
        medium: VolumeMedium::Disk,
    }
}

fn volume_mount(volume: &str, target: &str, sub_path: Option<&str>) -> ContainerMount {
    ContainerMount::Volume {
        volume: volume.into(),
        target: target.into(),
        sub_path: sub_path.map(Into::into),
        read_only: false,
    }
}

fn host_mount(path: &Path, target: &str, kind: HostPathType) -> ContainerMount {
    ContainerMount::Host {
        path: path.display().to_string(),
        target: target.into(),
        kind,
        read_only: false,
    }
}

/// `docker` against n4's daemon; panics when it fails.
fn docker(cluster: &TestCluster, args: &[&str]) -> String {
    let output = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", cluster.docker_socket(NODE)))
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

async fn runtime(cluster: &TestCluster) -> Nodes {
    let nodes = Nodes::new(cluster.ssh_options());
    nodes
        .observe(&cluster.node(NODE))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    nodes
}

async fn state_of(nodes: &Nodes, cluster: &TestCluster, name: &str) -> Option<ContainerState> {
    nodes
        .observe(&cluster.node(NODE))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .containers
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.state)
}

/// Creates and starts `run`, and returns what it printed once it exited.
async fn run_to_exit(nodes: &Nodes, cluster: &TestCluster, run: &ReplicaContainer) -> String {
    nodes.remove(NODE, &run.name).await.expect("clean slate");
    nodes
        .create(NODE, run)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", run.name));
    nodes.start(NODE, &run.name).await.expect("start");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = state_of(nodes, cluster, &run.name).await;
        if matches!(state, Some(ContainerState::Exited { .. })) {
            return nodes.logs(NODE, &run.name, 50).await.expect("logs");
        }
        assert!(
            Instant::now() < deadline,
            "{} did not exit: {state:?}",
            run.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes `volume` and every container named in `containers`, so that a
/// test starts from nothing.
async fn clean(nodes: &Nodes, containers: &[&ReplicaContainer], volumes: &[&str]) {
    for container in containers {
        nodes.remove(NODE, &container.name).await.expect("remove");
    }
    for volume in volumes {
        nodes
            .remove_volume(NODE, volume)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_volume_is_made_once_with_its_labels_and_outlives_its_containers() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster).await;
    let volume = claim("vol-keep");
    let mut writer = once(
        &cluster,
        "vol-keep",
        "writer",
        "echo kept > /data/x; echo written",
    );
    writer.volumes = vec![volume.clone()];
    writer.mounts = vec![volume_mount(&volume.name, "/data", None)];
    let mut reader = once(&cluster, "vol-keep", "reader", "cat /data/x");
    reader.volumes = writer.volumes.clone();
    reader.mounts = writer.mounts.clone();
    clean(&nodes, &[&writer, &reader], &[&volume.name]).await;

    let before = std::time::SystemTime::now() - Duration::from_secs(5);
    assert_eq!(run_to_exit(&nodes, &cluster, &writer).await, "written\n");
    nodes.remove(NODE, &writer.name).await.expect("remove");
    // Another container of the claim: the same volume, its data there.
    assert_eq!(run_to_exit(&nodes, &cluster, &reader).await, "kept\n");

    let observed = nodes.observe(&cluster.node(NODE)).await.expect("observed");
    let listed: Vec<_> = observed
        .volumes
        .iter()
        .filter(|listed| listed.name == volume.name)
        .collect();
    assert_eq!(listed.len(), 1, "{:?}", observed.volumes);
    assert_eq!(listed[0].owner, volume.owner);
    let created = listed[0].created_at.expect("Docker's CreatedAt");
    assert!(created >= before, "{created:?}");
    let labels = docker(
        &cluster,
        &[
            "volume",
            "inspect",
            "--format",
            "{{json .Labels}}",
            &volume.name,
        ],
    );
    assert!(
        labels.contains(r#""dev.flotilla.volume":"claim""#),
        "{labels}"
    );
    assert!(
        labels.contains(r#""dev.flotilla.claim":"vol-keep""#),
        "{labels}"
    );

    // In use by the (exited) reader: refused, naming it; nothing removed.
    let error = nodes
        .remove_volume(NODE, &volume.name)
        .await
        .expect_err("in use");
    assert_eq!(
        error.to_string(),
        format!(
            "node n4: volume {} is in use by container {}; nothing was removed (remove or stop \
             those containers first: scale their workload to 0 in Git)",
            volume.name, reader.name
        )
    );
    assert!(!error.unreachable);
    nodes.remove(NODE, &reader.name).await.expect("remove");
    nodes
        .remove_volume(NODE, &volume.name)
        .await
        .expect("unused: removed");
    nodes
        .remove_volume(NODE, &volume.name)
        .await
        .expect("missing: fine");
    let observed = nodes.observe(&cluster.node(NODE)).await.expect("observed");
    assert!(observed.volumes.iter().all(|v| v.name != volume.name));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_empty_dir_is_a_tmpfs_of_its_size_shared_by_the_pods_containers() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster).await;
    let pod = labels("vol-memory", "");
    let scratch = PodVolume {
        name: flotilla::cluster::pod_volume_name(&pod, "scratch"),
        owner: VolumeOwner::Pod {
            pod,
            volume: "scratch".into(),
        },
        medium: VolumeMedium::Memory {
            size_bytes: Some(8 << 20),
        },
    };
    let mut first = once(
        &cluster,
        "vol-memory",
        "first",
        "echo shared > /scratch/f; sleep 30",
    );
    first.restart_policy = DockerRestartPolicy::No;
    first.volumes = vec![scratch.clone()];
    first.mounts = vec![volume_mount(&scratch.name, "/scratch", None)];
    let mut second = once(
        &cluster,
        "vol-memory",
        "second",
        "cat /scratch/f; grep ' /scratch ' /proc/mounts",
    );
    second.volumes = first.volumes.clone();
    second.mounts = first.mounts.clone();
    second.network_mode = Some(format!("container:{}", first.name));
    clean(&nodes, &[&first, &second], &[&scratch.name]).await;

    nodes.create(NODE, &first).await.expect("create first");
    nodes.start(NODE, &first.name).await.expect("start first");
    let output = run_to_exit(&nodes, &cluster, &second).await;
    let mut lines = output.lines();
    assert_eq!(lines.next(), Some("shared"), "{output}");
    let mount = lines.next().unwrap_or_default();
    assert!(mount.contains("tmpfs"), "{output}");
    assert!(mount.contains("size=8192k"), "{output}");
    clean(&nodes, &[&first, &second], &[&scratch.name]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sub_path_is_made_in_its_volume_and_mounted_alone() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster).await;
    let volume = claim("vol-subpath");
    let mut writer = once(
        &cluster,
        "vol-subpath",
        "writer",
        "echo in-sub > /sub/file; ls -a /sub",
    );
    writer.volumes = vec![volume.clone()];
    writer.mounts = vec![volume_mount(&volume.name, "/sub", Some("config/app"))];
    let mut whole = once(
        &cluster,
        "vol-subpath",
        "whole",
        "cat /data/config/app/file; ls -ld /data/config /data/config/app | busybox cut -c1-10; \
         busybox ln -s /etc /data/link",
    );
    whole.volumes = writer.volumes.clone();
    whole.mounts = vec![volume_mount(&volume.name, "/data", None)];
    clean(&nodes, &[&writer, &whole], &[&volume.name]).await;

    let output = run_to_exit(&nodes, &cluster, &writer).await;
    assert_eq!(output, ".\n..\nfile\n");
    // The subPath is the volume's, made with its root's mode.
    assert_eq!(
        run_to_exit(&nodes, &cluster, &whole).await,
        "in-sub\ndrwxr-xr-x\ndrwxr-xr-x\n"
    );
    // Made again for another container: the existing path is used as it is.
    let mut again = once(&cluster, "vol-subpath", "again", "cat /sub/file");
    again.volumes = writer.volumes.clone();
    again.mounts = writer.mounts.clone();
    assert_eq!(run_to_exit(&nodes, &cluster, &again).await, "in-sub\n");

    // A symbolic link on the way (made by the last run) is refused.
    let mut through_link = once(&cluster, "vol-subpath", "link", "true");
    through_link.volumes = writer.volumes.clone();
    through_link.mounts = vec![volume_mount(&volume.name, "/sub", Some("link/ssh"))];
    let error = nodes
        .create(NODE, &through_link)
        .await
        .expect_err("a symbolic link");
    assert_eq!(
        error.to_string(),
        format!(
            "node n4: container {}: the mount at /sub: subPath link/ssh of volume {}: link is a \
             symbolic link, which a subPath may not follow (it could lead out of the volume)",
            through_link.name, volume.name
        )
    );
    assert_eq!(state_of(&nodes, &cluster, &through_link.name).await, None);
    // No helper container is left behind.
    let helpers = docker(
        &cluster,
        &["ps", "-aq", "--filter", "label=dev.flotilla.helper"],
    );
    assert_eq!(helpers, "");
    clean(&nodes, &[&writer, &whole, &again], &[&volume.name]).await;
}

/// A directory of this machine (the testbed's dockerd shares its mount
/// namespace) for one test's hostPaths, removed when dropped.
struct HostDir(PathBuf);

impl HostDir {
    fn new(name: &str) -> HostDir {
        let dir =
            std::env::temp_dir().join(format!("flotilla-hostpath-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        HostDir(dir)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn host_paths_are_made_or_checked_by_their_type() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster).await;
    let dir = HostDir::new("types");
    let path = |name: &str| dir.0.join(name);
    std::fs::create_dir(path("a-dir")).expect("a directory");
    std::fs::write(path("a-file"), "file content\n").expect("a file");

    // Accepted: each run prints what it sees at /h.
    for (index, (name, kind, expected)) in [
        ("unset-missing", HostPathType::Unset, "dir"),
        ("a-file", HostPathType::Unset, "file"),
        ("made-dir", HostPathType::DirectoryOrCreate, "dir"),
        ("a-dir", HostPathType::DirectoryOrCreate, "dir"),
        ("a-dir", HostPathType::Directory, "dir"),
        ("a-file", HostPathType::File, "file"),
        ("a-file", HostPathType::FileOrCreate, "file"),
        ("made-file", HostPathType::FileOrCreate, "file"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut run = once(
            &cluster,
            "vol-host",
            &format!("ok{index}"),
            "if test -d /h; then echo dir; elif test -f /h; then echo file; fi",
        );
        run.mounts = vec![host_mount(&path(name), "/h", kind)];
        assert_eq!(
            run_to_exit(&nodes, &cluster, &run).await,
            format!("{expected}\n"),
            "{name} {kind:?}"
        );
        nodes.remove(NODE, &run.name).await.expect("remove");
    }
    assert!(path("unset-missing").is_dir());
    assert!(path("made-dir").is_dir());
    let made = std::fs::metadata(path("made-file")).expect("made");
    assert!(made.is_file() && made.len() == 0);
    assert_eq!(made.permissions().mode() & 0o777, 0o644);
    assert_eq!(
        std::fs::read_to_string(path("a-file")).expect("read"),
        "file content\n",
        "an existing file is left as it is"
    );

    // Refused, each with what is wrong, and no container left.
    for (index, (name, kind, message)) in [
        (
            "a-file",
            HostPathType::Directory,
            "hostPath {path} is a regular file, but type Directory needs a directory; the \
             container was removed",
        ),
        (
            "a-file",
            HostPathType::DirectoryOrCreate,
            "hostPath {path} is a regular file, but type DirectoryOrCreate needs a directory; \
             the container was removed",
        ),
        (
            "a-dir",
            HostPathType::File,
            "hostPath {path} is a directory, but type File needs a regular file; the container \
             was removed",
        ),
        (
            "a-dir",
            HostPathType::FileOrCreate,
            "hostPath {path} is a directory, but type FileOrCreate needs a regular file; the \
             container was removed",
        ),
        (
            "missing",
            HostPathType::Directory,
            "hostPath {path} does not exist, and type Directory needs it there; create it on \
             the node, or use type DirectoryOrCreate",
        ),
        (
            "missing",
            HostPathType::File,
            "hostPath {path} does not exist, and type File needs it there; create it on the \
             node, or use type FileOrCreate",
        ),
        (
            "no-parent/app.lock",
            HostPathType::FileOrCreate,
            "hostPath {parent} does not exist, and type FileOrCreate needs it there; create it \
             on the node (FileOrCreate makes the file app.lock, not its parent directory, as \
             in Kubernetes)",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut run = once(&cluster, "vol-host", &format!("refused{index}"), "true");
        run.mounts = vec![host_mount(&path(name), "/h", kind)];
        nodes.remove(NODE, &run.name).await.expect("clean slate");
        let error = nodes.create(NODE, &run).await.expect_err(name);
        let expected = message
            .replace("{path}", &path(name).display().to_string())
            .replace("{parent}", &path("no-parent").display().to_string());
        assert_eq!(
            error.to_string(),
            format!("node n4: container {}: {expected}", run.name),
            "{name} {kind:?}"
        );
        assert!(!error.unreachable);
        assert_eq!(state_of(&nodes, &cluster, &run.name).await, None);
    }
    assert!(!path("missing").exists(), "a missing path is not made");
}

/// A tar of a file of random bytes, an empty directory and a nested file,
/// as `tar -C DIR -cf - .` makes one.
fn sample_archive(random: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, mode: u32, content: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_uid(1000);
        header.set_gid(1000);
        header.set_mtime(1_700_000_000);
        builder
            .append_data(&mut header, name, content)
            .expect("appended");
    };
    add("./", tar::EntryType::Directory, 0o750, b"");
    add("./random.bin", tar::EntryType::Regular, 0o600, random);
    add("./empty/", tar::EntryType::Directory, 0o700, b"");
    add("./nested/", tar::EntryType::Directory, 0o755, b"");
    add("./nested/deeper/", tar::EntryType::Directory, 0o755, b"");
    add(
        "./nested/deeper/notes.txt",
        tar::EntryType::Regular,
        0o644,
        b"line one\nline two\n",
    );
    builder.into_inner().expect("finished")
}

/// Each entry's path, type, mode, owner, time and content.
type Entry = (String, tar::EntryType, u32, (u64, u64), u64, Vec<u8>);

/// The entries below the root, sorted. The root's own owner and mode are
/// not compared: Docker's extraction leaves the volume's root as it is.
fn entries(archive: &[u8]) -> Vec<Entry> {
    let mut archive = tar::Archive::new(archive);
    let mut entries: Vec<Entry> = archive
        .entries()
        .expect("entries")
        .map(|entry| {
            let mut entry = entry.expect("an entry");
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).expect("content");
            let header = entry.header();
            let path = entry.path().expect("path").display().to_string();
            (
                path.trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string(),
                header.entry_type(),
                header.mode().expect("mode") & 0o7777,
                (header.uid().expect("uid"), header.gid().expect("gid")),
                header.mtime().expect("mtime"),
                content,
            )
        })
        .filter(|entry: &Entry| !matches!(entry.0.as_str(), "." | ""))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(entries.len(), 5, "every entry is there");
    entries
}

async fn backup(nodes: &Nodes, volume: &str) -> Vec<u8> {
    let mut archive = Vec::new();
    let progressed = std::sync::atomic::AtomicU64::new(0);
    let total = nodes
        .backup_volume(NODE, volume, &mut archive, |bytes| {
            progressed.store(bytes, std::sync::atomic::Ordering::Relaxed)
        })
        .await
        .unwrap_or_else(|e| panic!("backup: {e}"));
    assert_eq!(total, archive.len() as u64);
    assert_eq!(progressed.into_inner(), total, "progress reaches the total");
    archive
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restored_into_a_new_volume_gives_back_every_byte() {
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster).await;
    let volume = claim("vol-backup");
    let mut holder = once(
        &cluster,
        "vol-backup",
        "app",
        "cat /data/random.bin | wc -c",
    );
    holder.volumes = vec![volume.clone()];
    holder.mounts = vec![volume_mount(&volume.name, "/data", None)];
    clean(&nodes, &[&holder], &[&volume.name]).await;

    let mut random = vec![0u8; 3 * 1024 * 1024 + 17];
    getrandom::getrandom(&mut random).expect("random bytes");
    let original = sample_archive(&random);

    // The volume is made by its first container; empty until restored.
    nodes.create(NODE, &holder).await.expect("create");
    assert!(nodes
        .volume_is_empty(NODE, &volume.name)
        .await
        .expect("empty?"));
    let users = nodes.volume_users(NODE, &volume.name).await.expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(
        (users[0].container.as_str(), users[0].running),
        (holder.name.as_str(), false)
    );
    let restored = nodes
        .restore_volume(
            NODE,
            &volume.name,
            std::io::Cursor::new(original.clone()),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("restore: {e}"));
    assert_eq!(restored, original.len() as u64);
    assert!(!nodes
        .volume_is_empty(NODE, &volume.name)
        .await
        .expect("empty?"));
    assert_eq!(
        run_to_exit(&nodes, &cluster, &holder).await.trim(),
        random.len().to_string()
    );

    let first = backup(&nodes, &volume.name).await;
    assert_eq!(
        entries(&first),
        entries(&original),
        "what was restored, as it was"
    );

    // Removed with its container, made anew (empty), restored from the backup.
    nodes.remove(NODE, &holder.name).await.expect("remove");
    nodes
        .remove_volume(NODE, &volume.name)
        .await
        .expect("removed");
    nodes.create(NODE, &holder).await.expect("create again");
    assert!(nodes
        .volume_is_empty(NODE, &volume.name)
        .await
        .expect("empty?"));
    nodes
        .restore_volume(
            NODE,
            &volume.name,
            std::io::Cursor::new(first.clone()),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("restore: {e}"));
    let second = backup(&nodes, &volume.name).await;
    assert_eq!(entries(&second), entries(&original), "byte for byte");

    // A volume that does not exist is said so.
    let error = nodes
        .backup_volume(NODE, "flotilla.pvc.default.absent", &mut Vec::new(), |_| {})
        .await
        .expect_err("absent");
    assert_eq!(
        error.to_string(),
        "node n4: volume flotilla.pvc.default.absent does not exist"
    );
    let helpers = docker(
        &cluster,
        &["ps", "-aq", "--filter", "label=dev.flotilla.helper"],
    );
    assert_eq!(helpers, "", "no helper container is left behind");
    clean(&nodes, &[&holder], &[&volume.name]).await;
}

/// `flotilla volume` as people run it: the real binary, a repository that
/// declares n4 and a node that cannot be reached.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_lists_backs_up_and_restores_a_claim_refusing_what_is_unsafe() {
    use std::process::{Command, Stdio};
    let cluster = shared_cluster().await;
    let nodes = runtime(&cluster).await;
    let volume = claim("vol-cli");
    let mut holder = once(&cluster, "vol-cli", "app", "sleep 30");
    holder.volumes = vec![volume.clone()];
    holder.mounts = vec![volume_mount(&volume.name, "/data", None)];
    clean(&nodes, &[&holder], &[&volume.name]).await;
    let mut random = vec![0u8; 200_000];
    getrandom::getrandom(&mut random).expect("random bytes");
    let original = sample_archive(&random);
    nodes.create(NODE, &holder).await.expect("create");
    nodes
        .restore_volume(
            NODE,
            &volume.name,
            std::io::Cursor::new(original.clone()),
            |_| {},
        )
        .await
        .expect("restore");

    let work = crate::support::git::WorkTree::new();
    work.write("nodes/n4.yaml", &cluster.node_yaml(NODE, ""));
    work.write(
        "nodes/gone.yaml",
        "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata:\n  name: gone\nspec:\n  \
         address: 127.0.0.1\n  port: 1\n",
    );
    work.commit("nodes");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let flotilla = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flotilla"));
        command
            .arg("volume")
            .args(args)
            .arg("--repo")
            .arg(work.path())
            .arg("--known-hosts")
            .arg(cluster.known_hosts())
            .arg("--connect-timeout")
            .arg("3s");
        command
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    let listed = flotilla(&["list"]).output().expect("runs");
    let stdout = text(&listed.stdout);
    assert_eq!(
        listed.status.code(),
        Some(3),
        "{stdout}{}",
        text(&listed.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>()[..3]
                == ["default/vol-cli", "n4", "1Gi"]
                && line.contains(" 20")),
        "{stdout}"
    );
    assert!(
        stdout.contains("gone: unknown: not reached ("),
        "an unreached node is never said to have none: {stdout}"
    );

    // Backup to a file; the unreachable node does not matter, n4 holds it.
    let backup_path = dir.path().join("vol-cli.tar");
    let backed_up = flotilla(&["backup", "default/vol-cli"])
        .stdout(std::fs::File::create(&backup_path).expect("a file"))
        .output()
        .expect("runs");
    assert_eq!(
        backed_up.status.code(),
        Some(0),
        "{}",
        text(&backed_up.stderr)
    );
    let archive = std::fs::read(&backup_path).expect("read");
    assert_eq!(entries(&archive), entries(&original));

    // Refused while its container runs, then while the volume is not empty.
    nodes.start(NODE, &holder.name).await.expect("start");
    let restore = |args: &[&str]| {
        flotilla(args)
            .stdin(std::fs::File::open(&backup_path).expect("the backup"))
            .stdout(Stdio::piped())
            .output()
            .expect("runs")
    };
    let refused = restore(&["restore", "vol-cli"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "error: volume {} on node n4 is in use by running {}: restoring under a running \
             application can corrupt its data; scale its workload to 0 in Git (the claim and its \
             volume stay), restore, then scale back (or pass --force)\n",
            volume.name, holder.name
        )
    );
    nodes
        .stop(NODE, &holder.name, Some(Duration::ZERO))
        .await
        .expect("stop");
    let refused = restore(&["restore", "vol-cli"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("is not empty: a restore extracts the archive over"),
        "{}",
        text(&refused.stderr)
    );

    // Gone, made anew by its container, restored: every byte back.
    nodes.remove(NODE, &holder.name).await.expect("remove");
    nodes
        .remove_volume(NODE, &volume.name)
        .await
        .expect("removed");
    let refused = restore(&["restore", "vol-cli"]);
    assert_eq!(refused.status.code(), Some(3), "gone is not reached");
    assert!(
        text(&refused.stderr).contains("has no volume (flotilla.pvc.default.vol-cli) on the nodes reached; not reached: gone ("),
        "{}",
        text(&refused.stderr)
    );
    nodes.create(NODE, &holder).await.expect("create again");
    let restored = restore(&["restore", "default/vol-cli"]);
    assert_eq!(
        restored.status.code(),
        Some(0),
        "{}",
        text(&restored.stderr)
    );
    assert!(
        text(&restored.stderr)
            .starts_with("restored volume flotilla.pvc.default.vol-cli on node n4 from "),
        "{}",
        text(&restored.stderr)
    );
    assert_eq!(
        entries(&backup(&nodes, &volume.name).await),
        entries(&original)
    );

    // A terminal is never written a tar to; a bad claim name is said so.
    let bad = flotilla(&["backup", "Default/x"]).output().expect("runs");
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("the namespace \"Default\" is not a valid name"));
    clean(&nodes, &[&holder], &[&volume.name]).await;
}
