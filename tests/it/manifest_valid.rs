//! Valid manifests that use every supported field: the typed result, with
//! Kubernetes' defaults applied, is what the planner will see.

use std::fs;
use std::path::Path;

use flotilla::manifest::model::*;
use flotilla::manifest::quantity::{Bytes, CpuMillis};
use flotilla::manifest::{load, Loaded, Severity, SourceFile};

fn load_fixtures() -> Loaded {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let files: Vec<SourceFile> = ["cluster.yaml", "config.yaml", "services.yaml", "web.yaml"]
        .iter()
        .map(|name| SourceFile {
            path: name.to_string(),
            text: fs::read_to_string(dir.join(name)).expect("fixture"),
            excluded: Vec::new(),
        })
        .collect();
    load(&files)
}

#[test]
fn every_supported_field_decodes_without_diagnostics() {
    let loaded = load_fixtures();
    // The fixture also carries fields Kubernetes sets, as an export from a
    // cluster does: accepted, each named in a warning, nothing else said.
    let rendered: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| {
            !(d.severity == Severity::Warning
                && d.message
                    .ends_with("is ignored: it is set by Kubernetes, not desired state"))
        })
        .map(ToString::to_string)
        .collect();
    assert_eq!(rendered, Vec::<String>::new());
    let ignored: Vec<String> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            format!(
                "{}:{} {}",
                d.location.file,
                d.location.line,
                d.field_path.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        ignored,
        [
            "web.yaml:12 metadata.creationTimestamp",
            "web.yaml:13 metadata.uid",
            "web.yaml:14 metadata.resourceVersion",
            "web.yaml:15 metadata.generation",
            "web.yaml:35 spec.template.metadata.creationTimestamp",
            "web.yaml:146 status",
        ]
    );
    insta::assert_yaml_snapshot!("valid_state", loaded.state);
}

#[test]
fn cluster_and_nodes() {
    let state = load_fixtures().state;
    assert_eq!(
        state.cluster.scoring_strategy,
        ScoringStrategy::MostAllocated
    );
    assert_eq!(state.cluster.node_grace_period_seconds, 60);
    assert_eq!(state.cluster.resync_seconds, 15);
    let names: Vec<&str> = state.nodes.iter().map(|n| n.meta.name.as_str()).collect();
    assert_eq!(names, ["n1", "n2"], "sorted by name");

    let n1 = state.node("n1").unwrap();
    assert_eq!(n1.spec.transport, Transport::Local);
    assert_eq!(n1.spec.port, 22);
    assert_eq!(n1.spec.user, "root");
    assert_eq!(n1.spec.docker_socket, "/var/run/docker.sock");
    assert_eq!(n1.spec.capacity, Capacity::default());
    assert_eq!(n1.meta.namespace, "", "nodes are cluster-scoped");

    let n2 = state.node("n2").unwrap();
    assert_eq!(n2.spec.capacity.cpu, Some(CpuMillis(3500)));
    assert_eq!(n2.spec.capacity.memory, Some(Bytes(8_053_063_680)));
    assert_eq!(n2.spec.capacity.pods, Some(50));
    assert_eq!(n2.spec.taints.len(), 2);
    assert_eq!(n2.spec.taints[1].value, "");
    assert!(n2.spec.unschedulable);
    assert_eq!(n2.meta.labels["topology.kubernetes.io/zone"], "b");
    assert_eq!(n2.meta.source.line, 15);
    assert_eq!(
        state.cluster.service_cidr,
        ServiceCidr::new(10, 100, 0, 0, 16)
    );
}

/// Issue 13: every field of a Service, and Kubernetes' defaults.
#[test]
fn services_with_every_field() {
    let state = load_fixtures().state;
    let keys: Vec<String> = state.services.iter().map(|s| s.key().to_string()).collect();
    assert_eq!(
        keys,
        ["Service default/api", "Service shop/web"],
        "sorted by key"
    );

    let web = state.service("shop", "web").unwrap();
    assert_eq!(web.service_type, ServiceType::NodePort);
    assert_eq!(web.cluster_ip, core::net::Ipv4Addr::new(10, 100, 0, 80));
    assert_eq!(web.selector.len(), 2);
    assert_eq!(
        web.session_affinity,
        SessionAffinity::ClientIP {
            timeout_seconds: 600
        }
    );
    assert!(web.external_traffic_local);
    assert_eq!(web.balance, Balance::LeastConnections);
    assert!(!web.proxy_protocol);
    let http = &web.ports[0];
    assert_eq!(http.target_port, PortRef::Name("http".to_string()));
    assert_eq!((http.node_port, http.http), (Some(30080), true));
    let metrics = &web.ports[1];
    assert_eq!(metrics.protocol, Protocol::TCP);
    // A NodePort Service's port without `nodePort` gets one allocated.
    assert!(metrics
        .node_port
        .is_some_and(|p| (30000..=32767).contains(&p)));

    let api = state.service("default", "api").unwrap();
    assert_eq!(api.service_type, ServiceType::ClusterIP);
    assert!(state.cluster.service_cidr.contains(api.cluster_ip));
    assert_eq!(api.ports[0].target_port, PortRef::Number(8080));
    assert_eq!(api.ports[0].protocol, Protocol::TCP);
    assert_eq!(api.ports[0].node_port, None);
    assert_eq!(api.session_affinity, SessionAffinity::None);
    assert_eq!(api.balance, Balance::RoundRobin);
    assert!(api.proxy_protocol);
}

#[test]
fn deployment_with_every_field() {
    let state = load_fixtures().state;
    let keys: Vec<String> = state
        .workloads
        .iter()
        .map(|d| d.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "Deployment default/api",
            "Deployment shop/web",
            "Deployment shop/worker"
        ]
    );
    let web = state
        .workload_named(Kind::Deployment, "shop", "web")
        .unwrap();
    assert_eq!(web.replicas(), Some(4));
    assert_eq!(
        web.spec.strategy,
        Strategy::RollingUpdate {
            max_surge: IntOrPercent::Int(1),
            max_unavailable: IntOrPercent::Percent(10)
        }
    );
    let pod = &web.spec.template.spec;
    assert_eq!(pod.termination_grace_period_seconds, 45);
    assert_eq!(pod.required_node_affinity.len(), 2);
    assert_eq!(
        pod.required_node_affinity[0].match_expressions[0].operator,
        SelectorOperator::Gt
    );
    assert_eq!(pod.tolerations[2].key, "");
    assert_eq!(pod.tolerations[1].toleration_seconds, Some(300));
    let web_container = &pod.containers[0];
    assert_eq!(web_container.resources.requests.cpu, Some(CpuMillis(250)));
    assert_eq!(web_container.resources.limits.cpu, Some(CpuMillis(1000)));
    assert_eq!(
        web_container.env[1],
        EnvVar {
            name: "EMPTY".into(),
            value: String::new(),
            value_from: None,
        }
    );
    assert_eq!(web_container.ports[1].host_port, Some(9090));
    assert_eq!(web_container.ports[1].protocol, Protocol::UDP);
    let readiness = web_container.readiness_probe.as_ref().unwrap();
    assert_eq!(readiness.success_threshold, 2);
    assert_eq!(
        readiness.handler,
        ProbeHandler::HttpGet {
            path: "/ready".into(),
            port: PortRef::Name("http".into()),
            scheme: HttpScheme::HTTP,
            headers: vec![("X-Probe".into(), "flotilla".into())],
        }
    );
    let liveness = web_container.liveness_probe.as_ref().unwrap();
    assert_eq!(
        liveness.handler,
        ProbeHandler::TcpSocket {
            port: PortRef::Number(8080)
        }
    );
    assert_eq!(
        (
            liveness.period_seconds,
            liveness.timeout_seconds,
            liveness.success_threshold,
            liveness.failure_threshold
        ),
        (10, 1, 1, 3),
        "probe defaults"
    );
    // A limit without a request: the request is the limit.
    let sidecar = &pod.containers[1];
    assert_eq!(sidecar.resources.requests.cpu, Some(CpuMillis(100)));
    assert_eq!(sidecar.resources.requests.memory, Some(Bytes(64 << 20)));
    assert_eq!(
        sidecar.image_pull_policy,
        PullPolicy::Always,
        "untagged image"
    );
    assert_eq!(pod.requests().cpu, Some(CpuMillis(350)));
}

#[test]
fn deployment_defaults() {
    let state = load_fixtures().state;
    let api = state
        .workload_named(Kind::Deployment, "default", "api")
        .unwrap();
    assert_eq!(api.replicas(), Some(1));
    assert_eq!(api.spec.strategy, Strategy::Recreate);
    assert_eq!(api.spec.min_ready_seconds, 0);
    assert_eq!(api.spec.progress_deadline_seconds, 600);
    assert_eq!(api.spec.revision_history_limit, 10);
    assert!(!api.spec.paused);
    let pod = &api.spec.template.spec;
    assert_eq!(pod.restart_policy, RestartPolicy::Always);
    assert_eq!(pod.termination_grace_period_seconds, 30);
    assert_eq!(
        pod.containers[0].image_pull_policy,
        PullPolicy::Always,
        ":latest"
    );
    assert_eq!(
        pod.containers[1].image_pull_policy,
        PullPolicy::IfNotPresent,
        "digest"
    );
    assert_eq!(pod.containers[0].resources, Resources::default());
}

#[test]
fn config_maps_secrets_and_what_pods_read_from_them() {
    let state = load_fixtures().state;
    assert_eq!(
        state.cluster.secret_recipients,
        ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]
    );
    let keys: Vec<String> = state
        .config_maps
        .iter()
        .map(|c| c.key().to_string())
        .chain(state.secrets.iter().map(|s| s.key().to_string()))
        .collect();
    assert_eq!(
        keys,
        [
            "ConfigMap shop/app",
            "Secret shop/db",
            "Secret shop/registry",
            "Secret shop/tls",
        ],
        "sorted by key"
    );
    let app = state.config_map("shop", "app").unwrap();
    assert_eq!(app.data["level"], b"debug");
    assert_eq!(app.data["app.conf"], b"listen 8080\nworkers 4\n");
    assert_eq!(app.data["logo.png"], b"\x89PNG\r\n\x1a\n");
    assert!(app.immutable);

    let db = state.secret("shop", "db").unwrap();
    assert_eq!(db.secret_type, SecretType::Opaque);
    let versions: Vec<(&str, &str)> = db
        .data
        .iter()
        .map(|(key, value)| match value {
            SecretValue::Sealed(sealed) => (key.as_str(), sealed.version.as_str()),
            SecretValue::Opened(_) => panic!("{key} is sealed in the fixture"),
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("password", "0123456789abcdef"),
            ("user", "89abcdef01234567")
        ]
    );
    assert_eq!(
        state.secret("shop", "tls").unwrap().secret_type,
        SecretType::Tls
    );
    assert_eq!(
        state.secret("shop", "registry").unwrap().secret_type,
        SecretType::DockerConfigJson
    );

    let worker = state
        .workload_named(Kind::Deployment, "shop", "worker")
        .unwrap();
    let pod = &worker.spec.template.spec;
    assert_eq!(pod.image_pull_secrets, ["registry"]);
    let volumes: Vec<(&str, &ConfigVolume)> = pod
        .volumes
        .iter()
        .filter_map(|v| match &v.source {
            VolumeSource::Config(config) => Some((v.name.as_str(), config)),
            _ => None,
        })
        .collect();
    assert_eq!(volumes[0].0, "config");
    assert_eq!(volumes[0].1.source, ConfigSource::ConfigMap("app".into()));
    assert_eq!(
        volumes[0].1.items,
        [
            KeyToPath {
                key: "app.conf".into(),
                path: "conf/app.conf".into(),
                mode: Some(0o640),
            },
            KeyToPath {
                key: "logo.png".into(),
                path: "logo.png".into(),
                mode: None,
            },
        ]
    );
    assert_eq!(volumes[0].1.default_mode, 0o444);
    assert_eq!(volumes[1].1.source, ConfigSource::Secret("tls".into()));
    assert_eq!(volumes[1].1.default_mode, 0o400, "256 in decimal");
    assert_eq!(volumes[2].1.default_mode, 0o644, "Kubernetes' default");
    assert!(volumes[2].1.optional);

    let container = &pod.containers[0];
    let env: Vec<(&str, Option<&KeyRef>)> = container
        .env
        .iter()
        .map(|e| (e.name.as_str(), e.value_from.as_ref()))
        .collect();
    assert_eq!(
        env,
        [
            (
                "LOG_LEVEL",
                Some(&KeyRef {
                    source: ConfigSource::ConfigMap("app".into()),
                    key: "level".into(),
                    optional: false,
                })
            ),
            (
                "DB_PASSWORD",
                Some(&KeyRef {
                    source: ConfigSource::Secret("db".into()),
                    key: "password".into(),
                    optional: false,
                })
            ),
            (
                "FEATURE",
                Some(&KeyRef {
                    source: ConfigSource::ConfigMap("app".into()),
                    key: "feature".into(),
                    optional: true,
                })
            ),
        ]
    );
    assert_eq!(
        container.env_from,
        [
            EnvFromSource {
                source: ConfigSource::ConfigMap("app".into()),
                prefix: "APP_".into(),
                optional: false,
            },
            EnvFromSource {
                source: ConfigSource::Secret("db".into()),
                prefix: String::new(),
                optional: true,
            },
        ]
    );
    let mounts: Vec<(&str, &str, Option<&str>, bool)> = container
        .volume_mounts
        .iter()
        .map(|m| {
            (
                m.name.as_str(),
                m.mount_path.as_str(),
                m.sub_path.as_deref(),
                m.read_only,
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("config", "/etc/worker", None, true),
            ("certs", "/etc/tls/tls.crt", Some("tls.crt"), false),
            ("certs", "/etc/tls/tls.key", Some("tls.key"), false),
            ("extra", "/etc/extra", None, false),
        ]
    );
}
