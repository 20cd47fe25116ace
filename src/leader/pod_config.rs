//! What a pod reads from ConfigMaps and Secrets, resolved into what the
//! node runtime gives Docker: variables (`envFrom`, then `env`), files of
//! `configMap` and `secret` volumes at their mounts, and the registry
//! credentials of `imagePullSecrets`. Pure.
//!
//! The references were checked when the commit was loaded
//! (`manifest::config`), and the leader acts only on a commit whose Secret
//! values it opened: a value missing here is an optional one, left out as
//! Kubernetes leaves it out. A value still sealed cannot be given to a
//! container: it is left out with an error in the log (the leader refuses
//! such a commit before it gets here).

use crate::manifest::model::{
    ConfigSource, ConfigValue, Container, DesiredState, PodSpec, SecretValue, Sensitive,
    VolumeSource,
};
use crate::node::registry_auth::DockerConfig;
use crate::node::{ContainerEnv, ContainerFile, RegistryAuth};

/// A value for a container, from its object: a ConfigMap's in clear, a
/// Secret's sensitive; `None` when it is still sealed.
fn value_of(value: ConfigValue<'_>) -> Option<Value> {
    match value {
        ConfigValue::Plain(bytes) => Some(Value::Plain(bytes.to_vec())),
        ConfigValue::Secret(SecretValue::Opened(opened)) => Some(Value::Sensitive(opened.clone())),
        ConfigValue::Secret(SecretValue::Sealed(_)) => None,
    }
}

enum Value {
    Plain(Vec<u8>),
    Sensitive(Sensitive),
}

impl Value {
    fn env(self, name: String) -> ContainerEnv {
        match self {
            Value::Plain(bytes) => {
                ContainerEnv::plain(name, String::from_utf8_lossy(&bytes).into_owned())
            }
            Value::Sensitive(value) => ContainerEnv::sensitive(name, value),
        }
    }

    fn into_sensitive(self) -> Sensitive {
        match self {
            Value::Plain(bytes) => Sensitive::new(bytes),
            Value::Sensitive(value) => value,
        }
    }
}

fn sealed_left_out(namespace: &str, source: &ConfigSource, key: &str) {
    tracing::error!(
        %namespace,
        source = %source,
        key,
        "a value still sealed is left out of a container; the leader should have refused the commit"
    );
}

/// The container's variables from ConfigMaps and Secrets, in Kubernetes'
/// order: each `envFrom` source (its keys in order, those that are not
/// variable names left out), then `env` (a literal value, or the key it
/// names). A later entry of a name wins.
pub fn container_env(
    container: &Container,
    namespace: &str,
    desired: &DesiredState,
) -> Vec<ContainerEnv> {
    let mut env = Vec::new();
    for from in &container.env_from {
        let Some(values) = desired.config_source(namespace, &from.source) else {
            continue;
        };
        for (key, value) in values {
            // `binaryData` is not read by `envFrom` (Kubernetes reads `data`).
            let binary = matches!(value, ConfigValue::Plain(bytes) if !crate::manifest::is_variable_text(bytes));
            if crate::manifest::is_env_var_name(key) && !binary {
                match value_of(value) {
                    Some(value) => env.push(value.env(format!("{}{key}", from.prefix))),
                    None => sealed_left_out(namespace, &from.source, key),
                }
            }
        }
    }
    for var in &container.env {
        let Some(key_ref) = &var.value_from else {
            env.push(ContainerEnv::plain(&var.name, &var.value));
            continue;
        };
        let value = desired.config_value(namespace, &key_ref.source, &key_ref.key);
        match value.map(value_of) {
            Some(Some(value)) => env.push(value.env(var.name.clone())),
            Some(None) => sealed_left_out(namespace, &key_ref.source, &key_ref.key),
            None => {} // optional, and absent
        }
    }
    env
}

/// The files of the container's `configMap` and `secret` volume mounts:
/// each key (or `items` entry) at `mountPath/path`, with its mode; with a
/// `subPath`, only that file (at `mountPath` itself) or that directory's.
pub fn container_files(
    container: &Container,
    pod: &PodSpec,
    namespace: &str,
    desired: &DesiredState,
) -> Vec<ContainerFile> {
    let mut files = Vec::new();
    for mount in &container.volume_mounts {
        let Some(volume) = pod.volumes.iter().find(|v| v.name == mount.name) else {
            continue;
        };
        let VolumeSource::Config(config) = &volume.source else {
            continue;
        };
        let Some(values) = desired.config_source(namespace, &config.source) else {
            continue;
        };
        let entries: Vec<(String, &str, u32)> = if config.items.is_empty() {
            values
                .keys()
                .map(|key| (key.to_string(), *key, config.default_mode))
                .collect()
        } else {
            config
                .items
                .iter()
                .map(|item| {
                    (
                        item.path.clone(),
                        item.key.as_str(),
                        item.mode.unwrap_or(config.default_mode),
                    )
                })
                .collect()
        };
        let base = mount.mount_path.trim_end_matches('/');
        for (relative, key, mode) in entries {
            let Some(value) = values.get(key).copied() else {
                continue; // optional, and absent
            };
            let path = match &mount.sub_path {
                None => format!("{base}/{relative}"),
                Some(sub) => {
                    let sub = sub.trim_end_matches('/');
                    if relative == sub {
                        base.to_string()
                    } else if let Some(rest) = relative.strip_prefix(&format!("{sub}/")) {
                        format!("{base}/{rest}")
                    } else {
                        continue;
                    }
                }
            };
            match value_of(value) {
                Some(value) => files.push(ContainerFile {
                    path: if path.is_empty() {
                        "/".to_string()
                    } else {
                        path
                    },
                    mode,
                    content: value.into_sensitive(),
                }),
                None => sealed_left_out(namespace, &config.source, key),
            }
        }
    }
    files
}

/// The credentials to pull `image` with: the first of the pod's
/// `imagePullSecrets` that holds some for its registry (Kubernetes tries
/// them in order too). A Secret whose config does not parse holds none
/// (the leader checks them when it opens a commit, with the reason).
pub fn pull_auth(
    image: &str,
    pod: &PodSpec,
    namespace: &str,
    desired: &DesiredState,
) -> Option<RegistryAuth> {
    pod.image_pull_secrets.iter().find_map(|name| {
        let secret = desired.secret(namespace, name)?;
        let config = secret.opened(crate::manifest::model::DOCKER_CONFIG_KEY)?;
        DockerConfig::parse(config.expose()).ok()?.for_image(image)
    })
}

/// What can only be checked once Secret values are open (by the leader,
/// and by the pre-receive hook with the leader's identity): each
/// `kubernetes.io/dockerconfigjson` Secret holds a config Docker reads,
/// and each Secret value a pod reads as a variable is UTF-8 text. Errors
/// name the Secret and key, never the value.
pub fn check_opened(desired: &DesiredState) -> Vec<crate::manifest::Diagnostic> {
    use crate::manifest::model::SecretType;
    use crate::manifest::Diagnostic;
    let mut diagnostics = Vec::new();
    for secret in &desired.secrets {
        if secret.secret_type != SecretType::DockerConfigJson {
            continue;
        }
        let key = crate::manifest::model::DOCKER_CONFIG_KEY;
        if let Some(config) = secret.opened(key) {
            if let Err(error) = DockerConfig::parse(config.expose()) {
                diagnostics.push(
                    Diagnostic::error(format!("{}: `{key}` is not a Docker config: {error}", secret.key()), secret.meta.source.clone())
                        .with_object(secret.key().to_string())
                        .with_hint("seal the content of a `~/.docker/config.json` with an `auths` entry per registry (`flotilla secret edit`)"),
                );
            }
        }
    }
    for workload in &desired.workloads {
        let namespace = workload.meta.namespace.as_str();
        for (c, container) in workload.spec.template.spec.containers_with_fields() {
            let mut read: Vec<(String, &str, String)> = Vec::new();
            for (j, var) in container.env.iter().enumerate() {
                if let Some(key_ref) = &var.value_from {
                    if let ConfigSource::Secret(name) = &key_ref.source {
                        read.push((
                            name.clone(),
                            key_ref.key.as_str(),
                            format!("spec.template.spec.{c}.env[{j}].valueFrom.secretKeyRef"),
                        ));
                    }
                }
            }
            for (j, from) in container.env_from.iter().enumerate() {
                if let ConfigSource::Secret(name) = &from.source {
                    if let Some(secret) = desired.secret(namespace, name) {
                        for key in secret.data.keys() {
                            read.push((
                                name.clone(),
                                key.as_str(),
                                format!("spec.template.spec.{c}.envFrom[{j}]"),
                            ));
                        }
                    }
                }
            }
            for (name, key, path) in read {
                let Some(secret) = desired.secret(namespace, &name) else {
                    continue;
                };
                if secret
                    .opened(key)
                    .is_some_and(|v| !crate::manifest::is_variable_text(v.expose()))
                {
                    diagnostics.push(
                        Diagnostic::error(
                            format!(
                                "value `{key}` of {} is not text without NUL bytes, which a variable must be",
                                secret.key()
                            ),
                            workload.meta.field_location(&path),
                        )
                        .with_object(workload.key().to_string())
                        .with_field_path(path)
                        .with_hint("read it as a file (a `secret` volume) instead"),
                    );
                }
            }
        }
    }
    diagnostics
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::model::{
        ConfigMap, ConfigVolume, EnvFromSource, EnvVar, KeyRef, KeyToPath, ObjectMeta, Secret,
        SecretType, Volume, VolumeMount,
    };
    use crate::node::EnvValue;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        }
    }

    fn desired() -> DesiredState {
        DesiredState {
            config_maps: vec![ConfigMap {
                meta: meta("app"),
                data: [
                    ("LEVEL", "debug"),
                    ("bad name", "x"),
                    ("site.conf", "listen 80"),
                    ("conf.d/extra", "x=1"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
                immutable: false,
            }],
            secrets: vec![Secret {
                meta: meta("db"),
                secret_type: SecretType::Opaque,
                data: [(
                    "password".to_string(),
                    SecretValue::Opened(Sensitive::new(b"hunter2".to_vec())),
                )]
                .into_iter()
                .collect(),
                immutable: false,
            }],
            ..DesiredState::default()
        }
    }

    fn shown(env: &[ContainerEnv]) -> Vec<String> {
        env.iter()
            .map(|e| match &e.value {
                EnvValue::Plain(v) => format!("{}={v}", e.name),
                EnvValue::Sensitive(v) => {
                    format!("{}={}", e.name, String::from_utf8_lossy(v.expose()))
                }
            })
            .collect()
    }

    #[test]
    fn variables_come_from_env_from_then_env() {
        let container = Container {
            env_from: vec![EnvFromSource {
                source: ConfigSource::ConfigMap("app".into()),
                prefix: "APP_".into(),
                optional: false,
            }],
            env: vec![
                EnvVar {
                    name: "PW".into(),
                    value: String::new(),
                    value_from: Some(KeyRef {
                        source: ConfigSource::Secret("db".into()),
                        key: "password".into(),
                        optional: false,
                    }),
                },
                EnvVar {
                    name: "GONE".into(),
                    value: String::new(),
                    value_from: Some(KeyRef {
                        source: ConfigSource::Secret("nope".into()),
                        key: "x".into(),
                        optional: true,
                    }),
                },
                EnvVar {
                    name: "APP_LEVEL".into(),
                    value: "override".into(),
                    value_from: None,
                },
            ],
            ..Container::default()
        };
        let env = container_env(&container, "default", &desired());
        // `bad name` and `conf.d/extra` are not variable names: left out.
        assert_eq!(
            shown(&env),
            [
                "APP_LEVEL=debug",
                "APP_site.conf=listen 80",
                "PW=hunter2",
                "APP_LEVEL=override"
            ]
        );
        assert!(matches!(env[2].value, EnvValue::Sensitive(_)));
        assert!(!format!("{env:?}").contains("hunter2"));
    }

    #[test]
    fn opened_values_are_checked_for_what_reads_them() {
        let mut state = desired();
        state.secrets[0].data.insert(
            "binary".into(),
            SecretValue::Opened(Sensitive::new(vec![0xff, 0xfe])),
        );
        state.secrets.push(Secret {
            meta: meta("registry"),
            secret_type: SecretType::DockerConfigJson,
            data: [(
                crate::manifest::model::DOCKER_CONFIG_KEY.to_string(),
                SecretValue::Opened(Sensitive::new(b"{not json hunter2".to_vec())),
            )]
            .into_iter()
            .collect(),
            immutable: false,
        });
        let mut workload = crate::manifest::model::Workload {
            kind: crate::manifest::model::Kind::Deployment,
            meta: meta("web"),
            spec: crate::manifest::model::WorkloadSpec {
                pods: crate::manifest::model::PodSet::Replicas(1),
                selector: Default::default(),
                template: Default::default(),
                strategy: Default::default(),
                min_ready_seconds: 0,
                progress_deadline_seconds: 600,
                revision_history_limit: 10,
                paused: false,
                stateful: None,
            },
        };
        workload.spec.template.spec.containers = vec![Container {
            env_from: vec![EnvFromSource {
                source: ConfigSource::Secret("db".into()),
                prefix: String::new(),
                optional: false,
            }],
            ..Container::default()
        }];
        state.workloads.push(workload);
        let messages: Vec<String> = check_opened(&state)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0]
                .contains("Secret default/registry: `.dockerconfigjson` is not a Docker config"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("value `binary` of Secret default/db is not text"),
            "{}",
            messages[1]
        );
        assert!(!messages.concat().contains("hunter2"));
    }

    #[test]
    fn files_land_at_their_mounts_with_their_modes() {
        let pod = PodSpec {
            volumes: vec![
                Volume {
                    name: "config".into(),
                    source: VolumeSource::Config(ConfigVolume {
                        source: ConfigSource::ConfigMap("app".into()),
                        items: vec![KeyToPath {
                            key: "site.conf".into(),
                            path: "sites/site.conf".into(),
                            mode: Some(0o440),
                        }],
                        default_mode: 0o644,
                        optional: false,
                    }),
                },
                Volume {
                    name: "secret".into(),
                    source: VolumeSource::Config(ConfigVolume {
                        source: ConfigSource::Secret("db".into()),
                        items: vec![],
                        default_mode: 0o400,
                        optional: false,
                    }),
                },
            ],
            ..PodSpec::default()
        };
        let mount = |name: &str, path: &str, sub: Option<&str>| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub.map(Into::into),
            read_only: true,
        };
        let container = Container {
            volume_mounts: vec![
                mount("config", "/etc/app/", None),
                mount("secret", "/run/secrets", None),
                mount("secret", "/etc/pw", Some("password")),
                mount("config", "/srv", Some("sites")),
            ],
            ..Container::default()
        };
        let files = container_files(&container, &pod, "default", &desired());
        let listed: Vec<(String, u32, String)> = files
            .iter()
            .map(|f| {
                (
                    f.path.clone(),
                    f.mode,
                    String::from_utf8_lossy(f.content.expose()).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("/etc/app/sites/site.conf", 0o440, "listen 80"),
                ("/run/secrets/password", 0o400, "hunter2"),
                ("/etc/pw", 0o400, "hunter2"),
                ("/srv/site.conf", 0o440, "listen 80"),
            ]
            .map(|(p, m, c)| (p.to_string(), m, c.to_string()))
        );
    }
}
