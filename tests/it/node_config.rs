//! Configuration reaching containers through the node runtime, on the real
//! testbed (sshd and dockerd in network namespaces, Docker through the SSH
//! tunnel): files placed before a container starts, a Secret's env value,
//! and image pulls from a registry that requires credentials (Debian's
//! `docker-registry`, run in a node's network namespace).
//!
//! Like the `node` tests, these share the testbed: files on n1 (container
//! operations), the registry on n3 (images).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use flotilla::cluster::{ContainerState, ManagedLabels};
use flotilla::manifest::model::{Kind, Sensitive};
use flotilla::node::{
    registry_auth, ContainerEnv, ContainerFile, DockerRestartPolicy, NodeOps, Nodes,
    ReplicaContainer,
};

use crate::common::{shared_cluster, TestCluster};

fn sensitive(text: &str) -> Sensitive {
    Sensitive::new(text.as_bytes().to_vec())
}

fn file(path: &str, mode: u32, content: &str) -> ContainerFile {
    ContainerFile {
        path: path.into(),
        mode,
        content: sensitive(content),
    }
}

/// A container of a Deployment `name` on n1, running `script` once.
fn once(cluster: &TestCluster, name: &str, script: &str) -> ReplicaContainer {
    let labels = ManagedLabels {
        namespace: "default".into(),
        kind: Kind::Deployment,
        name: name.into(),
        slot: 0,
        template_hash: "0123456789".into(),
        commit: "c0ffee".into(),
        node: "n1".into(),
        container: "app".into(),
        role: Default::default(),
    };
    ReplicaContainer {
        name: labels.container_name(),
        image: cluster.image(),
        labels: labels.to_docker_labels(),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        restart_policy: DockerRestartPolicy::No,
        ..ReplicaContainer::default()
    }
}

async fn runtime_on(cluster: &TestCluster, node: &str) -> Nodes {
    let nodes = Nodes::new(cluster.ssh_options());
    nodes
        .observe(&cluster.node(node))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    nodes
}

/// Whether `node` lists the managed container `name`, and in what state.
async fn state_of(
    nodes: &Nodes,
    cluster: &TestCluster,
    node: &str,
    name: &str,
) -> Option<ContainerState> {
    nodes
        .observe(&cluster.node(node))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .containers
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.state)
}

/// What the container printed once it exited.
async fn output_when_exited(nodes: &Nodes, cluster: &TestCluster, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = state_of(nodes, cluster, "n1", name).await;
        if matches!(state, Some(ContainerState::Exited { .. })) {
            return nodes.logs("n1", name, 50).await.expect("logs");
        }
        assert!(Instant::now() < deadline, "{name} did not exit: {state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_in_place_with_their_mode_when_the_process_starts() {
    let cluster = shared_cluster().await;
    let nodes = runtime_on(&cluster, "n1").await;
    let mut run = once(
        &cluster,
        "config-files",
        "stat -c '%a %u:%g %n' /etc/app /etc/app/secret /etc/app/config.yaml \
         /etc/app/secret/token; cat /etc/app/config.yaml /etc/app/secret/token; echo; \
         echo \"token=$TOKEN\"",
    );
    run.files = vec![
        file("/etc/app/config.yaml", 0o644, "a: 1\n"),
        file("/etc/app/secret/token", 0o400, "hunter2-file"),
    ];
    run.env = vec![
        ContainerEnv::plain("PLAIN", "1"),
        ContainerEnv::sensitive("TOKEN", sensitive("hunter2-env")),
    ];
    nodes.remove("n1", &run.name).await.expect("clean slate");

    nodes.create("n1", &run).await.expect("create");
    nodes.start("n1", &run.name).await.expect("start");
    let output = output_when_exited(&nodes, &cluster, &run.name).await;
    assert_eq!(
        output,
        "755 0:0 /etc/app\n\
         755 0:0 /etc/app/secret\n\
         644 0:0 /etc/app/config.yaml\n\
         400 0:0 /etc/app/secret/token\n\
         a: 1\n\
         hunter2-file\n\
         token=hunter2-env\n"
    );
    // Started before: starting it again checks nothing and runs it again.
    nodes.start("n1", &run.name).await.expect("start again");
    // Nothing of a value in what Docker shows of the container but its env.
    let labels = cluster.docker(
        "n1",
        &["inspect", "--format", "{{json .Config.Labels}}", &run.name],
    );
    assert!(!labels.contains("hunter2"), "{labels}");
    assert!(labels.contains("/etc/app/secret/token"), "{labels}");
    nodes.remove("n1", &run.name).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_cannot_be_placed_removes_its_container() {
    let cluster = shared_cluster().await;
    let nodes = runtime_on(&cluster, "n1").await;
    let mut run = once(&cluster, "config-unplaceable", "true");
    // The image has a directory there, which a file never replaces.
    run.files = vec![
        file("/etc/app/fine", 0o644, "fine"),
        file("/etc", 0o644, "hunter2"),
    ];
    nodes.remove("n1", &run.name).await.expect("clean slate");

    let error = nodes
        .create("n1", &run)
        .await
        .expect_err("/etc is a directory");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "node n1: cannot place /etc in container {} (Docker responded with status code ",
            run.name
        )),
        "{message}"
    );
    assert!(
        message.ends_with("); the container was removed, to be created again"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!error.unreachable, "{message}");
    assert_eq!(state_of(&nodes, &cluster, "n1", &run.name).await, None);
}

/// A creation cut between the container's create and its files' upload
/// (the leader stopped, the node went silent, and the removal failed too)
/// leaves a container never started without its files: starting it removes
/// it instead, so the next reconcile creates it whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_container_whose_files_were_never_placed_is_removed_not_started() {
    let cluster = shared_cluster().await;
    let nodes = runtime_on(&cluster, "n1").await;
    let run = once(&cluster, "config-cut", "true");
    nodes.remove("n1", &run.name).await.expect("clean slate");
    // Created as `create` creates it, its upload never made.
    let mut args = vec!["create".to_string(), "--name".into(), run.name.clone()];
    for (key, value) in &run.labels {
        args.extend(["--label".into(), format!("{key}={value}")]);
    }
    args.extend([
        "--label".into(),
        r#"dev.flotilla.files=[["/etc/app/x",420]]"#.into(),
        run.image.clone(),
        "true".into(),
    ]);
    cluster.docker("n1", &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        state_of(&nodes, &cluster, "n1", &run.name).await,
        Some(ContainerState::Created)
    );

    let error = nodes.start("n1", &run.name).await.expect_err("no files");
    assert_eq!(
        error.to_string(),
        format!(
            "node n1: container {} was never started and lacks its file /etc/app/x (its \
             creation was cut before the file was placed); the container was removed, to be \
             created again",
            run.name
        )
    );
    assert_eq!(state_of(&nodes, &cluster, "n1", &run.name).await, None);
}

// ------------------------------------------------------------ registry

const REGISTRY_NODE: &str = "n3";
const REGISTRY: &str = "127.0.0.1:5000";
const USER: &str = "flotilla";
const PASSWORD: &str = "flotilla-pw";
/// bcrypt of [`PASSWORD`] (the only hash the registry's htpasswd takes).
const PASSWORD_BCRYPT: &str = "$2b$05$abcdefghijklmnopqrstuuEnL/fs6uZIxubGIkQLssT0CvdH29sLW";

/// Debian's `docker-registry` serving [`REGISTRY`] inside a node's network
/// namespace (Docker trusts a loopback registry over plain HTTP), with
/// htpasswd authentication; stopped when dropped.
struct Registry {
    process: Child,
    dir: tempfile::TempDir,
}

impl Registry {
    fn start(cluster: &TestCluster, node: &str) -> Registry {
        let binary = "/usr/bin/docker-registry";
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: install Debian's docker-registry (scripts/install-deps does)"
        );
        let dir = tempfile::tempdir().expect("a directory for the registry");
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("{USER}:{PASSWORD_BCRYPT}\n"),
        )
        .expect("htpasswd written");
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: {REGISTRY}\n\
             auth:\n  htpasswd:\n    realm: flotilla-test\n    path: {root}/htpasswd\n",
            root = dir.path().display()
        );
        std::fs::write(dir.path().join("config.yml"), config).expect("config written");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let process =
            Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/testbed"))
                .env("TESTBED_NAME", cluster.env("TESTBED_NAME"))
                .env("TESTBED_SUBNET", cluster.env("TESTBED_SUBNET"))
                .env("TESTBED_DIR", cluster.env("TESTBED_DIR"))
                .args(["exec", node, binary, "serve"])
                .arg(dir.path().join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("the registry starts");
        Registry { process, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // `scripts/testbed exec` execs into the registry: this is its pid.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The docker CLI against the node's daemon, with its own client config.
fn docker_cli(
    cluster: &TestCluster,
    node: &str,
    config: &std::path::Path,
    args: &[&str],
) -> std::process::Output {
    Command::new("docker")
        .arg("--config")
        .arg(config)
        .arg("-H")
        .arg(format!("unix://{}", cluster.docker_socket(node)))
        .args(args)
        .output()
        .expect("docker runs")
}

/// Logs in (retried until the registry answers) and pushes the testbed's
/// image as `image`, then removes it from the node.
fn push_private_image(cluster: &TestCluster, registry: &Registry, image: &str) {
    let client = registry.dir.path().join("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut login = Command::new("docker")
            .arg("--config")
            .arg(&client)
            .arg("-H")
            .arg(format!("unix://{}", cluster.docker_socket(REGISTRY_NODE)))
            .args(["login", REGISTRY, "--username", USER, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker login runs");
        login
            .stdin
            .take()
            .expect("stdin")
            .write_all(PASSWORD.as_bytes())
            .expect("password written");
        let output = login.wait_with_output().expect("docker login ends");
        if output.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "docker login {REGISTRY}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            registry.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for args in [
        &["tag", &cluster.image(), image][..],
        &["push", image],
        &["rmi", image],
    ] {
        let output = docker_cli(cluster, REGISTRY_NODE, &client, args);
        assert!(
            output.status.success(),
            "docker {args:?}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            registry.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_image_is_pulled_with_the_pull_secrets_credentials_only() {
    let cluster = shared_cluster().await;
    let registry = Registry::start(&cluster, REGISTRY_NODE);
    let image = format!("{REGISTRY}/flotilla-private:1");
    push_private_image(&cluster, &registry, &image);
    let nodes = runtime_on(&cluster, REGISTRY_NODE).await;
    assert!(!nodes
        .has_image(REGISTRY_NODE, &image)
        .await
        .expect("inspect"));

    // Anonymous: refused, and said so.
    let error = nodes
        .pull_image(REGISTRY_NODE, &image, None)
        .await
        .expect_err("the registry requires credentials");
    assert!(
        error.message.starts_with(&format!(
            "the registry refused to let image {image} be pulled without credentials (the \
             pod's imagePullSecrets hold none for its registry): "
        )),
        "{error}"
    );
    assert!(!error.unreachable, "{error}");

    // A `.dockerconfigjson` as `kubectl create secret docker-registry`
    // writes it, with a wrong password, then the right one.
    let config = |password: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        format!(
            r#"{{"auths":{{"http://{REGISTRY}":{{"username":"{USER}","password":"{password}","auth":"{auth}"}}}}}}"#
        )
    };
    let wrong = registry_auth::for_image(config("not-it").as_bytes(), &image)
        .expect("parses")
        .expect("matches the registry");
    let error = nodes
        .pull_image(REGISTRY_NODE, &image, Some(&wrong))
        .await
        .expect_err("a wrong password");
    assert!(
        error.message.starts_with(&format!(
            "the registry refused to let image {image} be pulled with the credentials of user \
             {USER} for {REGISTRY}: "
        )),
        "{error}"
    );
    assert!(!error.message.contains("not-it"), "{error}");

    let right = registry_auth::for_image(config(PASSWORD).as_bytes(), &image)
        .expect("parses")
        .expect("matches the registry");
    nodes
        .pull_image(REGISTRY_NODE, &image, Some(&right))
        .await
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));
    assert!(nodes
        .has_image(REGISTRY_NODE, &image)
        .await
        .expect("inspect"));
    assert!(nodes
        .remove_image(REGISTRY_NODE, &image)
        .await
        .expect("remove"));
}
