//! ConfigMaps and sealed Secrets end to end (issue 14) on the testbed (real
//! sshd and dockerd), the leader as a child process, pushes with the real
//! git CLI, sealing with the real `flotilla secret` commands.
//!
//! A pod sees variables and files from a ConfigMap and a sealed Secret
//! (content and mode checked inside the container); a plaintext Secret is
//! refused at push time with the seal command in the message; changing one
//! ConfigMap key rolls only the Deployment that reads it, without an
//! unready gap; `secret rekey` for a new recipient, pushed, and the leader
//! restarted with the new identity keep everything running and roll
//! nothing; an Ingress with `tls` serves HTTPS on every node with the
//! certificate of a sealed `kubernetes.io/tls` Secret, and a rotated
//! certificate is served after a push; and a value planted in the Secret is found in the container but
//! in none of plan, push output, status, notes, history, the leader's log
//! and `/metrics`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::deploy::{git_in, rt, wait_for, Cluster};

/// The value every output is searched for.
const PLANTED: &str = "pl4nted-s3cret-Qx7";

fn cluster_yaml(recipients: &[&str]) -> String {
    let listed: Vec<String> = recipients.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        "apiVersion: flotilla.dev/v1
kind: Cluster
metadata:
  name: config
spec:
  resyncSeconds: 2
  secrets:
    recipients: [{}]
",
        listed.join(", ")
    )
}

fn config_maps(greeting: &str, other: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  GREETING: \"{greeting}\"
  app.conf: |
    listen=8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: other-config
data:
  MODE: \"{other}\"
"
    )
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
type: Opaque
stringData:
  password: pl4nted-s3cret-Qx7
  user: app
";

/// `web` reads the ConfigMap by key, by `envFrom` and as a file, and the
/// Secret by key and as files; `other` reads only `other-config`.
const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: flotilla-test:1
          command: [sh, -c, "exec httpd -f -p 8080 -h /etc/app"]
          env:
            - name: GREETING
              valueFrom:
                configMapKeyRef: {name: web-config, key: GREETING}
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef: {name: db, key: password}
          envFrom:
            - prefix: CFG_
              configMapRef: {name: web-config}
          ports:
            - {name: http, containerPort: 8080}
          readinessProbe:
            httpGet: {path: /app.conf, port: http}
            periodSeconds: 1
          volumeMounts:
            - {name: config, mountPath: /etc/app, readOnly: true}
            - {name: secret, mountPath: /etc/secret}
      volumes:
        - name: config
          configMap:
            name: web-config
            items: [{key: app.conf, path: app.conf, mode: 0440}]
        - name: secret
          secret: {secretName: db, defaultMode: 0400}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  replicas: 1
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: other}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: flotilla-test:1
          command: [sh, -c, "exec sleep 100000"]
          env:
            - name: MODE
              valueFrom:
                configMapKeyRef: {name: other-config, key: MODE}
"#;

/// A Service for web and an Ingress serving `shop.test` over TLS with the
/// certificate of the Secret `shop-tls`.
const INGRESS: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http, appProtocol: http}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
spec:
  tls:
    - hosts: [shop.test]
      secretName: shop-tls
  rules:
    - host: shop.test
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {name: web, port: {name: http}}
";

/// A self-signed certificate for `shop.test`: the Secret (in clear, to be
/// sealed) and the certificate's PEM, for the client to trust.
fn tls_secret() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["shop.test".to_string()]).unwrap();
    let (cert, key) = (made.cert.pem(), made.key_pair.serialize_pem());
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    let secret = format!(
        "apiVersion: v1
kind: Secret
metadata:
  name: shop-tls
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}",
        indent(&cert),
        indent(&key)
    );
    (secret, cert)
}

/// `https://shop.test/app.conf` through `address`'s port 443, trusting only
/// `cert`: the body, when the handshake presents that certificate.
fn https_get(address: &str, cert: &Path) -> Option<String> {
    let output = Command::new("curl")
        .args(["-fsS", "--max-time", "3", "--cacert"])
        .arg(cert)
        .args(["--resolve", &format!("shop.test:443:{address}")])
        .arg("https://shop.test/app.conf")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `flotilla secret keygen` into `path`: the recipient it prints.
fn keygen(cluster: &Cluster, path: &Path) -> String {
    let output = cluster
        .flotilla()
        .args(["secret", "keygen", "--output"])
        .arg(path)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "keygen: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    printed
        .split_whitespace()
        .find(|w| w.starts_with("age1"))
        .unwrap_or_else(|| panic!("no recipient in {printed}"))
        .to_string()
}

/// `flotilla ARGS` in the work clone with `identity`; what it printed.
fn flotilla_in_work(cluster: &Cluster, identity: Option<&Path>, args: &[&str]) -> (bool, String) {
    let mut command = cluster.flotilla();
    command.current_dir(&cluster.work).args(args);
    if let Some(identity) = identity {
        command.env("FLOTILLA_AGE_IDENTITY", identity);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Commits what the work clone holds and pushes: success and the hooks' output.
fn commit_and_push(cluster: &Cluster, message: &str) -> (bool, String) {
    cluster.git(&["add", "-A"]);
    cluster.git(&["commit", "-qm", message]);
    let output = Command::new("git")
        .current_dir(&cluster.work)
        .args(["push", "origin", "main"])
        .env("FLOTILLA_KNOWN_HOSTS", cluster.testbed.known_hosts())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The running containers of `name` on the testbed: (node, container name).
fn running(cluster: &Cluster, name: &str) -> Vec<(String, String)> {
    cluster
        .testbed
        .containers(name, &crate::common::DECLARED_NODES)
        .into_iter()
        .flat_map(|(node, rows)| {
            rows.into_iter()
                .filter(|(_, state)| state == "running")
                .map(move |(container, _)| (node.clone(), container))
        })
        .collect()
}

fn exec(cluster: &Cluster, (node, container): &(String, String), script: &str) -> String {
    cluster
        .testbed
        .docker(node, &["exec", container, "sh", "-c", script])
}

#[test]
fn config_and_sealed_secrets_reach_pods_roll_them_and_are_never_printed() {
    let keys = tempfile::tempdir().unwrap();
    let first_key = keys.path().join("first.key");
    let second_key = keys.path().join("second.key");
    // The recipients go in the Cluster object, which Cluster::new pushes.
    let probe = Cluster::new(&cluster_yaml(&[]));
    let first = keygen(&probe, &first_key);
    let second = keygen(&probe, &second_key);
    drop(probe);
    let mut cluster = Cluster::new(&cluster_yaml(&[&first]));
    let mut outputs: Vec<(String, String)> = Vec::new();
    // The leader records its identity for the pre-receive hook.
    cluster.start_leader_with(&[OsStr::new("--age-identity"), first_key.as_os_str()]);

    // A Secret in clear is refused, with the command that seals it.
    std::fs::create_dir_all(cluster.work.join("apps")).unwrap();
    std::fs::write(cluster.work.join("apps/db.yaml"), SECRET).unwrap();
    std::fs::write(
        cluster.work.join("apps/config.yaml"),
        config_maps("hello", "a"),
    )
    .unwrap();
    std::fs::write(cluster.work.join("apps/workloads.yaml"), WORKLOADS).unwrap();
    let (pushed, said) = commit_and_push(&cluster, "Secret in clear");
    assert!(!pushed, "{said}");
    assert!(said.contains("flotilla secret seal"), "{said}");
    assert!(!said.contains(PLANTED), "{said}");
    cluster.git(&["reset", "-q", "--soft", "HEAD~1"]);

    // Sealed, it is accepted.
    let (sealed, said) = flotilla_in_work(&cluster, None, &["secret", "seal", "apps/db.yaml"]);
    assert!(sealed, "{said}");
    outputs.push(("secret seal".into(), said));
    let sealed_text = std::fs::read_to_string(cluster.work.join("apps/db.yaml")).unwrap();
    assert!(!sealed_text.contains(PLANTED), "{sealed_text}");
    assert!(sealed_text.contains("AGE["), "{sealed_text}");
    let (pushed, said) = commit_and_push(&cluster, "Config, sealed Secret and two workloads");
    assert!(pushed, "{said}");
    outputs.push(("first push".into(), said));

    let within = Duration::from_secs(120);
    cluster.wait_ready("web", 2, within);
    cluster.wait_ready("other", 1, within);

    // Variables and files, with their modes, inside the container.
    let webs = running(&cluster, "web");
    assert_eq!(webs.len(), 2, "{webs:?}");
    let seen = exec(
        &cluster,
        &webs[0],
        "echo \"$GREETING|$CFG_GREETING|$DB_PASSWORD\"; \
         stat -c '%a' /etc/app/app.conf; cat /etc/app/app.conf; \
         stat -c '%a' /etc/secret/password; cat /etc/secret/password; echo; cat /etc/secret/user",
    );
    assert_eq!(
        seen,
        format!("hello|hello|{PLANTED}\n440\nlisten=8080\n400\n{PLANTED}\napp"),
        "{seen}"
    );

    // One ConfigMap key changes: web rolls (and says why), other does not,
    // and web never has fewer ready replicas than it declares.
    let others_before = running(&cluster, "other");
    std::fs::write(
        cluster.work.join("apps/config.yaml"),
        config_maps("bonjour", "a"),
    )
    .unwrap();
    let (planned_ok, plan) = flotilla_in_work(
        &cluster,
        None,
        &["plan", "--repo", cluster.work.to_str().unwrap()],
    );
    outputs.push(("plan".into(), plan.clone()));
    let _ = planned_ok;
    let (pushed, said) = commit_and_push(&cluster, "web: bonjour");
    assert!(pushed, "{said}");
    assert!(
        said.contains("rolls because ConfigMap web-config key GREETING changed"),
        "{said}"
    );
    assert!(!said.contains("deployment default/other"), "{said}");
    outputs.push(("second push".into(), said));
    let tip = git_in(&cluster.bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let started = Instant::now();
    let mut fewest_ready = u32::MAX;
    wait_for("web rolled to bonjour", within, || {
        let status = cluster.status()?;
        let web = status.objects.iter().find(|o| o.name == "web")?;
        if status.commit.as_deref() == Some(tip.as_str()) {
            fewest_ready = fewest_ready.min(web.ready_replicas);
        }
        (status.commit.as_deref() == Some(tip.as_str())
            && web.rollout == "complete"
            && web.ready_replicas == 2
            && web.total_replicas == 2)
            .then_some(())
    });
    assert!(
        fewest_ready >= 2,
        "web had {fewest_ready} ready replicas during its rollout"
    );
    let webs = running(&cluster, "web");
    assert_eq!(exec(&cluster, &webs[0], "echo $GREETING").trim(), "bonjour");
    assert_eq!(
        running(&cluster, "other"),
        others_before,
        "other must not roll"
    );
    eprintln!("config rollout took {:?}", started.elapsed());

    // TLS: the Ingress serves shop.test on port 443 of every node with the
    // sealed certificate; a new certificate, pushed, is served next.
    let (secret, cert) = tls_secret();
    let first_cert = keys.path().join("first.pem");
    std::fs::write(&first_cert, cert).unwrap();
    std::fs::write(cluster.work.join("apps/shop-tls.yaml"), secret).unwrap();
    std::fs::write(cluster.work.join("apps/ingress.yaml"), INGRESS).unwrap();
    let (sealed, said) =
        flotilla_in_work(&cluster, None, &["secret", "seal", "apps/shop-tls.yaml"]);
    assert!(sealed, "{said}");
    let (pushed, said) = commit_and_push(&cluster, "HTTPS for shop.test");
    assert!(pushed, "{said}");
    outputs.push(("tls push".into(), said));
    for node in crate::common::DECLARED_NODES {
        let address = cluster.testbed.address(node);
        let body = wait_for(&format!("HTTPS on {node}"), within, || {
            https_get(&address, &first_cert)
        });
        assert_eq!(body, "listen=8080\n");
    }
    let (secret, cert) = tls_secret();
    let second_cert = keys.path().join("second.pem");
    std::fs::write(&second_cert, cert).unwrap();
    std::fs::write(cluster.work.join("apps/shop-tls.yaml"), secret).unwrap();
    let (sealed, said) =
        flotilla_in_work(&cluster, None, &["secret", "seal", "apps/shop-tls.yaml"]);
    assert!(sealed, "{said}");
    let (pushed, said) = commit_and_push(&cluster, "A new certificate for shop.test");
    assert!(pushed, "{said}");
    let n1 = cluster.testbed.address("n1");
    wait_for("the new certificate", within, || {
        https_get(&n1, &second_cert)
    });
    assert_eq!(
        https_get(&n1, &first_cert),
        None,
        "the old certificate is still served"
    );

    // The revision running now, `.<hash>.` in its containers' names
    // (`...web.<slot>.<hash>.app`).
    let good = format!(
        ".{}.",
        running(&cluster, "web")[0].1.split('.').nth(5).unwrap()
    );
    // A revision that prints its secret and crashes: the leader reverts it,
    // and the log lines it records (revert commit, note) hide the value.
    let crashing = WORKLOADS.replacen(
        "command: [sh, -c, \"exec httpd -f -p 8080 -h /etc/app\"]",
        "command: [sh, -c, \"echo token $DB_PASSWORD; cat /etc/secret/password; exit 1\"]",
        1,
    );
    assert_ne!(crashing, WORKLOADS);
    std::fs::write(cluster.work.join("apps/workloads.yaml"), &crashing).unwrap();
    let (pushed, said) = commit_and_push(&cluster, "web prints its token and crashes");
    assert!(pushed, "{said}");
    let bad = git_in(&cluster.bare, &["rev-parse", "main"])
        .trim()
        .to_string();
    let revert = wait_for("the revert of the crashing revision", within, || {
        let tip = git_in(&cluster.bare, &["rev-parse", "main"])
            .trim()
            .to_string();
        let message = git_in(&cluster.bare, &["log", "-1", "--format=%B", &tip]);
        message
            .contains(&format!("This reverts commit {bad}"))
            .then_some(message)
    });
    assert!(revert.contains("last log lines"), "{revert}");
    assert!(revert.contains("token (sensitive value)"), "{revert}");
    outputs.push(("revert commit".into(), revert));
    cluster.git(&["pull", "-q", "--rebase", "origin", "main"]);
    cluster.wait_ready("web", 2, within);
    // The crashing revision's replica is gone too (its name carries the
    // revision: `...web.<slot>.<revision>.app`).
    wait_for("only the good revision of web running", within, || {
        let webs = running(&cluster, "web");
        (webs.len() == 2 && webs.iter().all(|(_, name)| name.contains(&good))).then_some(())
    });

    // A new recipient: rekey, push, restart the leader with the new
    // identity only. Nothing rolls; everything stays ready.
    let webs_before = running(&cluster, "web");
    std::fs::write(
        cluster.work.join("cluster.yaml"),
        cluster_yaml(&[&first, &second]),
    )
    .unwrap();
    let (rekeyed, said) = flotilla_in_work(&cluster, Some(&first_key), &["secret", "rekey"]);
    assert!(rekeyed, "{said}");
    outputs.push(("secret rekey".into(), said));
    let (pushed, said) = commit_and_push(&cluster, "Secrets for a second recipient");
    assert!(pushed, "{said}");
    outputs.push(("rekey push".into(), said));
    cluster.stop_leader();
    cluster.start_leader_with(&[OsStr::new("--age-identity"), second_key.as_os_str()]);
    cluster.wait_ready("web", 2, within);
    cluster.wait_ready("other", 1, within);
    // Two resyncs later, still the same containers.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        running(&cluster, "web"),
        webs_before,
        "a rekey must roll nothing"
    );
    assert_eq!(running(&cluster, "other"), others_before);

    // The planted value is in the container (the control) and nowhere else.
    assert!(exec(&cluster, &webs_before[0], "cat /etc/secret/password").contains(PLANTED));
    let bare = cluster.bare.to_str().unwrap().to_string();
    for args in [
        vec!["status", "--repo", bare.as_str()],
        vec!["status", "--repo", bare.as_str(), "--output", "json"],
        vec!["history", "deployment/web", "--repo", bare.as_str()],
        vec!["plan", "--repo", bare.as_str()],
        vec!["plan", "--repo", bare.as_str(), "--output", "json"],
        vec!["validate", "--repo", bare.as_str()],
    ] {
        let output = cluster.flotilla().args(&args).output().unwrap();
        outputs.push((
            args.join(" "),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ));
    }
    outputs.push((
        "notes".into(),
        git_in(&cluster.bare, &["log", "--notes=flotilla", "main"]),
    ));
    for path in ["/metrics", "/status"] {
        let body = rt()
            .block_on(flotilla::api::get(cluster.listen, path))
            .unwrap_or_default();
        outputs.push((path.into(), body));
    }
    cluster.stop_leader();
    outputs.push(("leader log".into(), cluster.leader_log()));
    for (what, text) in &outputs {
        assert!(!text.is_empty(), "{what} printed nothing");
        assert!(!text.contains(PLANTED), "{what} shows the secret:\n{text}");
    }
}
