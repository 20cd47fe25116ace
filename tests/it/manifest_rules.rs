//! One rule per row: a minimal manifest and the diagnostics it gives, as
//! `line:column severity: message (field path)`.

use flotilla::manifest::model::{IntOrPercent, Kind, PodSet, PullPolicy, SourceLocation, Strategy};
use flotilla::manifest::{default_pull_policy, load, ExcludedDocument, SourceFile};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
";

/// Diagnostics of one file, compactly.
fn diagnostics(yaml: &str) -> Vec<String> {
    let loaded = load(&[SourceFile {
        path: "m.yaml".into(),
        text: yaml.into(),
        excluded: Vec::new(),
    }]);
    loaded
        .diagnostics
        .iter()
        .map(|d| {
            let severity = if d.is_error() { "error" } else { "warning" };
            let path = d.field_path.as_deref().unwrap_or("-");
            format!(
                "{}:{} {severity}: {} ({path})",
                d.location.line, d.location.column, d.message
            )
        })
        .collect()
}

fn check(yaml: &str, expected: &[&str]) {
    assert_eq!(diagnostics(yaml), expected, "for:\n{yaml}");
}

/// The base Deployment with `extra` appended to its container.
fn with_container(extra: &str) -> String {
    format!("{DEPLOYMENT}{extra}")
}

#[test]
fn base_deployment_is_valid() {
    check(DEPLOYMENT, &[]);
}

#[test]
fn scalar_types_follow_strict_decoding() {
    check(&with_container("        workingDir: 42\n"), &["12:21 error: expected a string, found an integer `42` (spec.template.spec.containers[0].workingDir)"]);
    check(&with_container("        workingDir: \"42\"\n"), &[]);
    check(&with_container("        workingDir: true\n"), &["12:21 error: expected a string, found a boolean `true` (spec.template.spec.containers[0].workingDir)"]);
    check(&with_container("        ports: [{containerPort: '80'}]\n"), &["12:33 error: expected an integer, found a string \"80\" (spec.template.spec.containers[0].ports[0].containerPort)"]);
    check(&with_container("        ports: [{containerPort: 8e1}]\n"), &["12:33 error: expected an integer, found a number `8e1` (spec.template.spec.containers[0].ports[0].containerPort)"]);
    check(&with_container("        ports: {containerPort: 80}\n"), &["12:17 error: expected a sequence, found a mapping (spec.template.spec.containers[0].ports)"]);
    // Null is absent, as in Kubernetes.
    check(
        &with_container("        workingDir: ~\n        command:\n"),
        &[],
    );
}

#[test]
fn quantities_accept_numbers_and_strings() {
    check(
        &with_container("        resources: {limits: {cpu: \"500m\"}}\n"),
        &[],
    );
    for quantity in ["1", "0.5", "\"2\"", "1e3", "+1", "128Mi", "1G"] {
        check(
            &with_container(&format!(
                "        resources: {{limits: {{cpu: {quantity}, memory: {quantity}}}}}\n"
            )),
            &[],
        );
    }
}

#[test]
fn unknown_and_unsupported_fields() {
    check(&with_container("        imagePullPolicyy: Always\n"), &["12:9 error: unknown field `imagePullPolicyy`, did you mean `imagePullPolicy`? (spec.template.spec.containers[0].imagePullPolicyy)"]);
    check(&with_container("        Image: x\n"), &["12:9 error: unknown field `Image`, did you mean `image`? (spec.template.spec.containers[0].Image)"]);
    check(
        &with_container("        tty: true\n"),
        &["12:9 error: field `tty` is not supported yet (spec.template.spec.containers[0].tty)"],
    );
    check(
        &format!("{DEPLOYMENT}status: {{replicas: 1}}\n"),
        &["12:1 warning: field `status` is ignored: it is set by Kubernetes, not desired state (status)"],
    );
    check(
        &format!("{DEPLOYMENT}extra: 1\n"),
        &["12:1 error: unknown field `extra` (extra)"],
    );
}

#[test]
fn pull_policy_defaults_like_kubernetes() {
    let cases = [
        ("nginx", PullPolicy::Always),
        ("nginx:latest", PullPolicy::Always),
        ("nginx:1.25", PullPolicy::IfNotPresent),
        ("registry:5000/nginx", PullPolicy::Always),
        ("registry:5000/nginx:1", PullPolicy::IfNotPresent),
        ("nginx@sha256:abc", PullPolicy::IfNotPresent),
    ];
    for (image, expected) in cases {
        assert_eq!(default_pull_policy(image), expected, "{image}");
    }
}

#[test]
fn valid_objects_survive_errors_elsewhere() {
    let broken = DEPLOYMENT
        .replace("name: web}", "name: api}")
        .replace("nginx:1.25", "\"\"");
    let loaded = load(&[
        SourceFile {
            path: "b.yaml".into(),
            text: broken,
            excluded: Vec::new(),
        },
        SourceFile {
            path: "a.yaml".into(),
            text: "kind: [\n".into(),
            excluded: Vec::new(),
        },
        SourceFile {
            path: "c.yaml".into(),
            text: DEPLOYMENT.into(),
            excluded: Vec::new(),
        },
    ]);
    let names: Vec<&str> = loaded
        .state
        .workloads
        .iter()
        .map(|d| d.meta.name.as_str())
        .collect();
    assert_eq!(names, ["web"]);
    let places: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| d.location.to_string())
        .collect();
    assert_eq!(
        places,
        ["a.yaml:2:1", "b.yaml:11:16"],
        "sorted by file, line, column"
    );
    assert!(loaded.has_errors());
}

#[test]
fn documents_flow_style_and_empty_ones() {
    let flow = "---\n{apiVersion: flotilla.dev/v1, kind: Node, metadata: {name: n1}, spec: {address: \"10.0.0.1\"}}\n---\n# nothing\n---\n";
    let loaded = load(&[SourceFile {
        path: "n.yaml".into(),
        text: flow.into(),
        excluded: Vec::new(),
    }]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.state.nodes[0].spec.address, "10.0.0.1");
}

#[test]
fn node_selector_warning_is_not_an_error() {
    let node = "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {name: n1, labels: {disk: ssd}}\nspec: {transport: local}\n---\n";
    let yaml = DEPLOYMENT.replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector: {disk: hdd}\n      containers:",
    );
    let loaded = load(&[SourceFile {
        path: "m.yaml".into(),
        text: format!("{node}{yaml}"),
        excluded: Vec::new(),
    }]);
    assert!(!loaded.has_errors());
    assert_eq!(loaded.diagnostics.len(), 1);
    assert_eq!(loaded.state.workloads.len(), 1);
    // The node's own name is a label too.
    let by_hostname = DEPLOYMENT.replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector: {kubernetes.io/hostname: n1}\n      containers:",
    );
    let loaded = load(&[SourceFile {
        path: "m.yaml".into(),
        text: format!("{node}{by_hostname}"),
        excluded: Vec::new(),
    }]);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
}

#[test]
fn cpu_rounds_up_to_a_millicore() {
    let loaded = load(&[SourceFile {
        path: "m.yaml".into(),
        text: with_container("        resources: {requests: {cpu: 0.0001}}\n"),
        excluded: Vec::new(),
    }]);
    let container = &loaded.state.workloads[0].spec.template.spec.containers[0];
    assert_eq!(container.resources.requests.cpu.unwrap().0, 1);
}

/// Large sets are decoded on several threads; the outcome is the same as
/// one file after another: duplicates across the split are found, and the
/// first declaration wins.
#[test]
fn many_files_give_the_same_result_as_few() {
    let mut files: Vec<SourceFile> = (0..700)
        .map(|i| SourceFile {
            path: format!("apps/{i:03}.yaml"),
            text: DEPLOYMENT.replace("name: web}", &format!("name: web-{i}}}")),
            excluded: Vec::new(),
        })
        .collect();
    files.push(SourceFile {
        path: "zz.yaml".into(),
        text: DEPLOYMENT
            .replace("name: web}", "name: web-3}")
            .replace("nginx:1.25", "nginx:2"),
        excluded: Vec::new(),
    });
    let loaded = load(&files);
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        ["error: Deployment default/web-3 is declared twice (first at apps/003.yaml:1:1)\n  --> zz.yaml:1:1 (Deployment default/web-3)"]
    );
    assert_eq!(loaded.state.workloads.len(), 700);
    let web3 = loaded
        .state
        .workload_named(Kind::Deployment, "default", "web-3")
        .unwrap();
    assert_eq!(web3.spec.template.spec.containers[0].image, "nginx:1.25");
}

#[test]
fn an_https_probe_is_rejected_naming_the_field() {
    check(
        &with_container("        readinessProbe: {httpGet: {port: 80, scheme: HTTP}}\n"),
        &[],
    );
    check(
        &with_container("        readinessProbe: {httpGet: {port: 80, scheme: HTTPS}}\n"),
        &["12:54 error: `scheme: HTTPS` is not supported yet: flotilla's httpGet probes speak plain HTTP (spec.template.spec.containers[0].readinessProbe.httpGet.scheme)"],
    );
}

/// Issue 10, item 2: the pods of every Deployment together are bounded too,
/// reported at the `replicas` that passes the bound.
#[test]
fn the_cluster_declares_at_most_max_pods() {
    let web = |name: &str, replicas: u32| {
        SourceFile {
            path: format!("apps/{name}.yaml"),
            text: format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n"
            ),
            excluded: Vec::new(),
        }
    };
    let at_the_bound = load(&[web("a", 100_000), web("b", 50_000)]);
    assert!(!at_the_bound.has_errors(), "{:?}", at_the_bound.diagnostics);
    let over = load(&[web("a", 100_000), web("b", 50_001)]);
    let errors: Vec<String> = over
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}", d.location, d.message))
        .collect();
    assert_eq!(
        errors,
        ["apps/b.yaml:6:13: the manifests declare more than the 150000 pods a cluster may run"]
    );
}

/// Regression (issue 10, item 9): `x/../../containers/json?` validated and
/// ended up in a Docker API path.
#[test]
fn images_follow_dockers_reference_grammar() {
    check(
        &DEPLOYMENT.replace("nginx:1.25", "registry.example:5000/team/web:v1.2"),
        &[],
    );
    check(
        &DEPLOYMENT.replace("nginx:1.25", "x/../../containers/json?"),
        &["11:16 error: invalid image `x/../../containers/json?`: path component `..` must be lowercase letters and digits, separated by one `.`, one or two `_`, or `-`s (spec.template.spec.containers[0].image)"],
    );
    check(
        &DEPLOYMENT.replace("nginx:1.25", "Nginx:1.25"),
        &["11:16 error: invalid image `Nginx:1.25`: repository name `Nginx` must be lowercase (spec.template.spec.containers[0].image)"],
    );
    check(
        &DEPLOYMENT.replace("nginx:1.25", "nginx@sha256:abc"),
        &["11:16 error: invalid image `nginx@sha256:abc`: a sha256 digest is 64 lowercase hexadecimal digits (spec.template.spec.containers[0].image)"],
    );
}

#[test]
fn host_ip_binds_a_host_port_to_one_address() {
    check(
        &with_container(
            "        ports: [{containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}]\n",
        ),
        &[],
    );
    check(
        &with_container("        ports: [{containerPort: 80, hostPort: 8080, hostIP: '::1'}]\n"),
        &[],
    );
    check(
        &with_container("        ports: [{containerPort: 80, hostPort: 8080, hostIP: localhost}]\n"),
        &["12:61 error: invalid hostIP `localhost`: must be an IPv4 or IPv6 address (spec.template.spec.containers[0].ports[0].hostIP)"],
    );
    check(
        &with_container("        ports: [{containerPort: 80, hostIP: 127.0.0.1}]\n"),
        &["12:45 warning: hostIP has no effect without hostPort (spec.template.spec.containers[0].ports[0].hostIP)"],
    );
    let loaded = load(&[SourceFile {
        path: "m.yaml".into(),
        text: with_container(
            "        ports: [{containerPort: 80, hostPort: 8080, hostIP: 10.0.0.1}]\n",
        ),
        excluded: Vec::new(),
    }]);
    let port = &loaded.state.workloads[0].spec.template.spec.containers[0].ports[0];
    assert_eq!(port.host_ip.as_deref(), Some("10.0.0.1"));
    // A port without hostIP serializes as before hostIP existed, so the
    // templates of running replicas keep their hash (no rollout on upgrade).
    let port = flotilla::manifest::model::ContainerPort {
        host_ip: None,
        ..port.clone()
    };
    assert_eq!(
        serde_json::to_string(&port).unwrap(),
        r#"{"name":null,"containerPort":80,"hostPort":8080,"protocol":"TCP"}"#
    );
}

const CLUSTER_POLICY: &str = "apiVersion: flotilla.dev/v1
kind: Cluster
metadata: {name: c}
spec:
  policy:
    hostPorts:
    - {min: 8000, max: 8999}
    - {min: 443, max: 443}
";

/// The repository's own rule: the Cluster object's `spec.policy.hostPorts`
/// (another file) limits the host ports of every Deployment.
#[test]
fn the_cluster_policy_limits_host_ports() {
    let deployment = with_container(
        "        ports:\n        - {containerPort: 80, hostPort: 8080}\n        - {containerPort: 81, hostPort: 80}\n",
    );
    let loaded = load(&[
        SourceFile {
            path: "cluster.yaml".into(),
            text: CLUSTER_POLICY.into(),
            excluded: Vec::new(),
        },
        SourceFile {
            path: "web.yaml".into(),
            text: deployment.clone(),
            excluded: Vec::new(),
        },
    ]);
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        ["error: hostPort 80 is outside the Cluster's spec.policy.hostPorts (8000-8999,443)\n  \
          --> web.yaml:14:41 (Deployment default/web: spec.template.spec.containers[0].ports[1].hostPort)\n  \
          = hint: use another port, or add it to `spec.policy.hostPorts` of the Cluster object (at cluster.yaml:7:7)"]
    );
    // Without a policy, the repository adds no limit.
    check(&deployment, &[]);
    check(
        &CLUSTER_POLICY.replace("{min: 443, max: 443}", "{min: 9000, max: 8000, step: 1}"),
        &[
            "8:8 error: range 9000-8000 ends before it starts (spec.policy.hostPorts[1])",
            "8:30 error: unknown field `step` (spec.policy.hostPorts[1].step)",
        ],
    );
    check(
        &CLUSTER_POLICY.replace("{min: 443, max: 443}", "{min: 9000, max: 8000}"),
        &["8:8 error: range 9000-8000 ends before it starts (spec.policy.hostPorts[1])"],
    );
    check(
        &CLUSTER_POLICY.replace("{min: 443, max: 443}", "{min: 0, max: 70000}"),
        &[
            "8:13 error: must be at least 1, found 0 (spec.policy.hostPorts[1].min)",
            "8:21 error: must be at most 65535, found 70000 (spec.policy.hostPorts[1].max)",
        ],
    );
}

/// Regression (issue 10, item 10): a push could use `transport: local` and
/// bind any host port, 22 included. The operator's policy refuses both,
/// each at its field, naming the git config setting that would allow it.
#[test]
fn the_operator_policy_refuses_local_transport_and_privileged_host_ports() {
    use flotilla::manifest::{check_operator_policy, OperatorPolicy};
    let node = "apiVersion: flotilla.dev/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  transport: local\n";
    let deployment = with_container(
        "        ports:\n        - {containerPort: 22, hostPort: 22}\n        - {containerPort: 80, hostPort: 80}\n",
    );
    let loaded = load(&[
        SourceFile {
            path: "nodes.yaml".into(),
            text: node.into(),
            excluded: Vec::new(),
        },
        SourceFile {
            path: "web.yaml".into(),
            text: deployment,
            excluded: Vec::new(),
        },
    ]);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
    let rendered: Vec<String> = check_operator_policy(&loaded.state, &OperatorPolicy::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        rendered,
        [
            "error: `transport: local` runs containers on the leader host's own Docker, which the leader's operator has not allowed\n  \
             --> nodes.yaml:5:14 (Node n1: spec.transport)\n  \
             = hint: use `transport: ssh`, or let the leader host's operator allow it with `git config flotilla.allowLocalTransport true` in the leader's repository",
            "error: hostPort 22 is outside the host ports the leader's operator allows (80,443,1024-65535)\n  \
             --> web.yaml:13:41 (Deployment default/web: spec.template.spec.containers[0].ports[0].hostPort)\n  \
             = hint: use another port, or let the leader host's operator allow it with `git config flotilla.hostPorts 22,80,443,1024-65535` in the leader's repository",
        ]
    );
    assert!(check_operator_policy(&loaded.state, &OperatorPolicy::permissive()).is_empty());
}

/// Issue 11: a DaemonSet's spec, with Kubernetes' defaults and rules.
#[test]
fn daemon_set_fields() {
    let daemon_set = |spec: &str| {
        format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {{name: agent}}\nspec:\n{spec}  selector: {{matchLabels: {{app: agent}}}}\n  \
             template:\n    metadata: {{labels: {{app: agent}}}}\n    spec:\n      containers:\n      - {{name: a, image: 'agent:1'}}\n"
        )
    };
    check(&daemon_set(""), &[]);
    let loaded = load(&[SourceFile {
        path: "m.yaml".into(),
        text: daemon_set(""),
        excluded: Vec::new(),
    }]);
    let agent = &loaded.state.workloads[0];
    assert_eq!(agent.spec.pods, PodSet::OnePerNode);
    assert_eq!(
        agent.spec.strategy,
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Int(0),
            max_unavailable: IntOrPercent::Int(1),
        }
    );
    check(&daemon_set("  updateStrategy: {type: OnDelete}\n"), &[]);
    check(
        &daemon_set("  updateStrategy: {type: Recreate}\n"),
        &["5:26 error: invalid value `Recreate`, expected `RollingUpdate` or `OnDelete` (spec.updateStrategy.type)"],
    );
    check(
        &daemon_set("  updateStrategy: {rollingUpdate: {maxSurge: 1}}\n"),
        &["5:46 error: `maxSurge` may not be set when `maxUnavailable` is not 0 (spec.updateStrategy.rollingUpdate.maxSurge)"],
    );
    check(
        &daemon_set("  updateStrategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n"),
        &[],
    );
    let replicas = diagnostics(&daemon_set("  replicas: 3\n"));
    assert!(
        replicas[0].contains("unknown field `replicas`"),
        "{replicas:?}"
    );
}

/// Issue 12, item 5: what is clearly not a manifest is a warning; what is
/// meant as one (any of `apiVersion`, `kind`, `metadata`) is read, errors
/// and all; kustomize's input is a warning whatever its file is called; a
/// template's first error says it is one and how to render it.
#[test]
fn foreign_documents_are_warnings_and_templates_say_so() {
    let load_one = |path: &str, text: &str| {
        load(&[SourceFile::new(path, text)])
            .diagnostics
            .iter()
            .map(|d| {
                let severity = if d.is_error() { "error" } else { "warning" };
                format!(
                    "{}:{} {severity}: {}",
                    d.location.file, d.location.line, d.message
                )
            })
            .collect::<Vec<_>>()
    };
    let not_a_manifest =
        "not a Kubernetes manifest (no `apiVersion`, `kind` or `metadata`): skipped";
    for (path, text, expected) in [
        ("ci.yaml", "on: [push]\njobs: {}\n", format!("ci.yaml:1 warning: {not_a_manifest}")),
        ("a.yaml", "# header\n---\nname: x\n", format!("a.yaml:3 warning: {not_a_manifest}")),
        ("m.yaml", "metadata: {name: web}\n", "m.yaml:1 error: missing field `kind`".to_string()),
        (
            "base/kustomization.yml",
            "resources: [web.yaml]\n",
            "base/kustomization.yml:1 warning: kustomize input is not applied: flotilla reads plain manifests (the ones beside it are read as they are)".to_string(),
        ),
        (
            "component.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
            "component.yaml:1 warning: kustomize input is not applied: flotilla reads plain manifests (the ones beside it are read as they are)".to_string(),
        ),
    ] {
        assert_eq!(load_one(path, text), [expected], "{path}");
    }

    let template = load(&[SourceFile::new(
        "t.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n",
    )]);
    let first = template
        .diagnostics
        .iter()
        .find(|d| d.is_error())
        .expect("an error");
    assert_eq!(
        first.hint.as_deref(),
        Some("t.yaml holds `{{ }}` template expressions: commit what renders it (`helm template NAME DIR > rendered.yaml`), or list it in .flotillaignore")
    );
}

/// Issue 12, item 5: a document excluded by `.flotillaignore` is not read
/// at all (an unsupported kind among supported ones), and an exclusion that
/// matches nothing is a warning at its line.
#[test]
fn excluded_documents_are_not_read() {
    let rule = |line: u32, kind: &str, namespace: Option<&str>, name: &str| ExcludedDocument {
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
        rule: SourceLocation {
            file: ".flotillaignore".into(),
            line,
            column: 1,
        },
    };
    let text = format!(
        "{DEPLOYMENT}---\napiVersion: batch/v1\nkind: Job\nmetadata: {{name: web, namespace: shop}}\n"
    );
    let file = |excluded: Vec<ExcludedDocument>| SourceFile {
        path: "all.yaml".into(),
        text: text.clone(),
        excluded,
    };
    assert!(load(&[file(vec![])]).has_errors());
    for excluded in [
        rule(1, "Job", None, "web"),
        rule(1, "Job", Some("shop"), "web"),
    ] {
        let loaded = load(&[file(vec![excluded])]);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.state.workloads.len(), 1);
    }
    let loaded = load(&[file(vec![
        rule(1, "Job", None, "web"),
        rule(2, "Job", Some("default"), "web"),
    ])]);
    let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        ["warning: `all.yaml#Job/default/web` excludes nothing: all.yaml declares no Job/default/web\n  --> .flotillaignore:2:1\n  = hint: correct the line to a document's `Kind/name` (or `Kind/namespace/name`), or remove it"]
    );
}
