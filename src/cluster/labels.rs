//! The labels flotilla puts on every container it creates (prefix
//! `dev.flotilla.`), and the deterministic container names that make every
//! create idempotent.

use std::collections::HashMap;

use serde::Serialize;

use crate::manifest::model::Kind;

pub const LABEL_PREFIX: &str = "dev.flotilla.";
/// Only containers with this label set to `true` are ever touched.
pub const MANAGED_LABEL: &str = "dev.flotilla.managed";

/// What the labels of one managed container say.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedLabels {
    pub namespace: String,
    pub kind: Kind,
    /// The owning object's name.
    pub name: String,
    /// Replica ordinal.
    pub slot: u32,
    /// Hash of the pod template (the revision).
    pub template_hash: String,
    /// The commit that declared this revision.
    pub commit: String,
    pub node: String,
    /// The container's name within its pod.
    pub container: String,
    /// What the container is to its pod (`dev.flotilla.role`; absent on an
    /// app container, so containers made before roles decode unchanged).
    #[serde(skip_serializing_if = "ContainerRole::is_app")]
    pub role: ContainerRole,
}

/// What a container is to its pod.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerRole {
    /// One of the pod's `containers`.
    #[default]
    App,
    /// The container that holds the pod's network namespace, host name,
    /// published ports and resolver, which every other container joins.
    Sandbox,
    /// A regular init container: runs to completion before the next.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
}

impl ContainerRole {
    /// The role of one of a pod's `initContainers`: a sidecar
    /// (`restartPolicy: Always`) or a regular init container.
    pub fn of_init(container: &crate::manifest::model::Container) -> ContainerRole {
        if container.sidecar {
            ContainerRole::Sidecar
        } else {
            ContainerRole::Init
        }
    }

    pub fn is_app(&self) -> bool {
        *self == ContainerRole::App
    }

    /// The value of `dev.flotilla.role`; `None` for an app container.
    pub fn label(self) -> Option<&'static str> {
        match self {
            ContainerRole::App => None,
            ContainerRole::Sandbox => Some("sandbox"),
            ContainerRole::Init => Some("init"),
            ContainerRole::Sidecar => Some("sidecar"),
        }
    }

    fn parse(value: &str) -> Option<ContainerRole> {
        [
            ContainerRole::Sandbox,
            ContainerRole::Init,
            ContainerRole::Sidecar,
        ]
        .into_iter()
        .find(|role| role.label() == Some(value))
    }
}

/// A lifecycle hook as the leader runs it, with a named port resolved:
/// carried in the container's labels (`dev.flotilla.post-start`,
/// `dev.flotilla.pre-stop`, JSON), so a container's own hooks run even
/// when Git no longer declares its revision (a rollout's old pods).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Hook {
    /// Run in the container (Docker exec); exit 0 is success.
    Exec { command: Vec<String> },
    /// GET from the node to the pod; a status in 200..400 is success.
    HttpGet {
        path: String,
        port: u16,
        /// The port's hostPort, for a pod without an address of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host_port: Option<u16>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        headers: Vec<(String, String)>,
    },
    /// Waited out by the leader.
    Sleep { seconds: u32 },
}

/// A container's hooks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hooks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Hook>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Hook>,
    /// The pod's `terminationGracePeriodSeconds`, beside a preStop: what
    /// bounds the hook and the stop once Git no longer has the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u32>,
}

const POST_START_LABEL: &str = "dev.flotilla.post-start";
const PRE_STOP_LABEL: &str = "dev.flotilla.pre-stop";
const GRACE_LABEL: &str = "dev.flotilla.grace-seconds";

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.post_start.is_none() && self.pre_stop.is_none()
    }

    /// Adds the hooks' labels to a container's.
    pub fn add_docker_labels(&self, labels: &mut HashMap<String, String>) {
        for (label, hook) in [
            (POST_START_LABEL, &self.post_start),
            (PRE_STOP_LABEL, &self.pre_stop),
        ] {
            if let Some(hook) = hook {
                labels.insert(
                    label.to_string(),
                    serde_json::to_string(hook).expect("a hook always serializes"),
                );
            }
        }
        if let (Some(_), Some(grace)) = (&self.pre_stop, self.grace_seconds) {
            labels.insert(GRACE_LABEL.to_string(), grace.to_string());
        }
    }

    /// The hooks a container's labels carry; a label that does not parse
    /// (written by someone else) is no hook.
    pub fn from_docker_labels(labels: &HashMap<String, String>) -> Hooks {
        let hook = |label: &str| {
            labels
                .get(label)
                .and_then(|json| serde_json::from_str(json).ok())
        };
        let pre_stop: Option<Hook> = hook(PRE_STOP_LABEL);
        Hooks {
            post_start: hook(POST_START_LABEL),
            grace_seconds: pre_stop
                .as_ref()
                .and_then(|_| labels.get(GRACE_LABEL)?.parse().ok()),
            pre_stop,
        }
    }
}

/// The name of a pod's sandbox container within its pod: not a DNS-1123
/// label, so no declared container can take it.
pub const SANDBOX_CONTAINER: &str = "_sandbox";

/// The value of `dev.flotilla.<key>`.
fn label(labels: &HashMap<String, String>, key: &'static str) -> Result<String, LabelError> {
    labels
        .get(&format!("{LABEL_PREFIX}{key}"))
        .cloned()
        .ok_or(LabelError::Missing(key))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("label {0} is missing")]
    Missing(&'static str),
    #[error("label {label} has invalid value {value:?}")]
    Invalid { label: &'static str, value: String },
}

impl ManagedLabels {
    /// The labels to put on a Docker container.
    pub fn to_docker_labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::new();
        labels.insert(MANAGED_LABEL.to_string(), "true".to_string());
        let mut put = |key: &str, value: String| {
            labels.insert(format!("{LABEL_PREFIX}{key}"), value);
        };
        put("namespace", self.namespace.clone());
        put("kind", self.kind.as_str().to_string());
        put("name", self.name.clone());
        put("slot", self.slot.to_string());
        put("template-hash", self.template_hash.clone());
        put("commit", self.commit.clone());
        put("node", self.node.clone());
        put("container", self.container.clone());
        if let Some(role) = self.role.label() {
            put("role", role.to_string());
        }
        labels
    }

    /// Decodes a container's labels; fails when it is not managed by flotilla
    /// or a label is missing or malformed.
    pub fn from_docker_labels(labels: &HashMap<String, String>) -> Result<Self, LabelError> {
        let get = |key: &'static str| label(labels, key);
        if labels.get(MANAGED_LABEL).map(String::as_str) != Some("true") {
            return Err(LabelError::Missing("managed"));
        }
        let kind = get("kind")?;
        let kind = Kind::parse(&kind).ok_or(LabelError::Invalid {
            label: "kind",
            value: kind,
        })?;
        let slot = get("slot")?;
        let slot = slot.parse().map_err(|_| LabelError::Invalid {
            label: "slot",
            value: slot,
        })?;
        Ok(ManagedLabels {
            namespace: get("namespace")?,
            kind,
            name: get("name")?,
            slot,
            template_hash: get("template-hash")?,
            commit: get("commit")?,
            node: get("node")?,
            container: get("container")?,
            role: match labels.get(&format!("{LABEL_PREFIX}role")) {
                None => ContainerRole::App,
                Some(value) => ContainerRole::parse(value).ok_or(LabelError::Invalid {
                    label: "role",
                    value: value.clone(),
                })?,
            },
        })
    }

    /// The container's deterministic Docker name:
    /// `flotilla.<namespace>.<name>.<slot>.<template-hash>.<container>`.
    /// Names are DNS-1123 labels, so the dots cannot be ambiguous; the same
    /// replica of the same revision always gets the same name, which makes a
    /// repeated create a no-op.
    pub fn container_name(&self) -> String {
        format!(
            "flotilla.{}.{}.{}.{}.{}.{}",
            self.kind.as_str().to_ascii_lowercase(),
            self.namespace,
            self.name,
            self.slot,
            self.template_hash,
            self.container
        )
    }
}

/// On every Docker volume flotilla creates: what owns it, `claim` (a
/// PersistentVolumeClaim's, kept until Git says to delete it) or `pod` (an
/// `emptyDir`, removed with its pod).
pub const VOLUME_LABEL: &str = "dev.flotilla.volume";

/// The Docker volume of claim `namespace/claim`:
/// `flotilla.pvc.<namespace>.<claim>` (a namespace has no dot, so the name
/// is unambiguous).
pub fn claim_volume_name(namespace: &str, claim: &str) -> String {
    format!("flotilla.pvc.{namespace}.{claim}")
}

/// The Docker volume of the `emptyDir` volume `volume` of the pod whose
/// containers carry `labels`: the pod's container names' prefix, then
/// `volume`.
pub fn pod_volume_name(labels: &ManagedLabels, volume: &str) -> String {
    format!(
        "flotilla.{}.{}.{}.{}.{}.{volume}",
        labels.kind.as_str().to_ascii_lowercase(),
        labels.namespace,
        labels.name,
        labels.slot,
        labels.template_hash,
    )
}

/// One Docker volume flotilla created, as its labels describe it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedVolume {
    /// Docker's name.
    pub name: String,
    pub owner: VolumeOwner,
    /// Docker's `CreatedAt`, when it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<std::time::SystemTime>,
}

/// The StatefulSet pod a claim was made for, and whether the claim goes
/// when the StatefulSet does (`whenDeleted: Delete` when the volume was
/// made): read only once the StatefulSet is gone from Git.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrdinalClaim {
    pub set: String,
    pub ordinal: u32,
    pub delete_with_set: bool,
}

/// Who a volume belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum VolumeOwner {
    /// A PersistentVolumeClaim's, with the storage it requested when the
    /// volume was made (counted against the node's `capacity.storage` even
    /// once the claim is gone from Git).
    Claim {
        namespace: String,
        claim: String,
        storage: u64,
        /// The StatefulSet ordinal whose volume claim template made the
        /// claim, when one did.
        #[serde(skip_serializing_if = "Option::is_none")]
        ordinal: Option<OrdinalClaim>,
    },
    /// An `emptyDir` of one pod: `pod` names the pod as its containers'
    /// labels do (the container name left empty).
    Pod { pod: ManagedLabels, volume: String },
}

impl VolumeOwner {
    /// The labels to put on the Docker volume.
    pub fn to_docker_labels(&self) -> HashMap<String, String> {
        let mut labels = HashMap::new();
        match self {
            VolumeOwner::Claim {
                namespace,
                claim,
                storage,
                ordinal,
            } => {
                labels.insert(VOLUME_LABEL.to_string(), "claim".to_string());
                labels.insert(format!("{LABEL_PREFIX}namespace"), namespace.clone());
                labels.insert(format!("{LABEL_PREFIX}claim"), claim.clone());
                labels.insert(format!("{LABEL_PREFIX}storage"), storage.to_string());
                if let Some(ordinal) = ordinal {
                    labels.insert(format!("{LABEL_PREFIX}statefulset"), ordinal.set.clone());
                    labels.insert(
                        format!("{LABEL_PREFIX}ordinal"),
                        ordinal.ordinal.to_string(),
                    );
                    labels.insert(
                        format!("{LABEL_PREFIX}when-deleted"),
                        if ordinal.delete_with_set {
                            "Delete"
                        } else {
                            "Retain"
                        }
                        .to_string(),
                    );
                }
            }
            VolumeOwner::Pod { pod, volume } => {
                labels = pod.to_docker_labels();
                labels.remove(MANAGED_LABEL);
                labels.remove(&format!("{LABEL_PREFIX}container"));
                labels.insert(VOLUME_LABEL.to_string(), "pod".to_string());
                labels.insert(format!("{LABEL_PREFIX}volume-name"), volume.clone());
            }
        }
        labels
    }

    /// Decodes a volume's labels; fails when [`VOLUME_LABEL`] is missing or
    /// a label it needs is missing or malformed.
    pub fn from_docker_labels(labels: &HashMap<String, String>) -> Result<Self, LabelError> {
        let get = |key: &'static str| label(labels, key);
        match labels.get(VOLUME_LABEL).map(String::as_str) {
            Some("claim") => {
                let storage = get("storage")?;
                let ordinal = match get("statefulset") {
                    Err(_) => None,
                    Ok(set) => {
                        let ordinal = get("ordinal")?;
                        Some(OrdinalClaim {
                            set,
                            ordinal: ordinal.parse().map_err(|_| LabelError::Invalid {
                                label: "ordinal",
                                value: ordinal,
                            })?,
                            delete_with_set: get("when-deleted")? == "Delete",
                        })
                    }
                };
                Ok(VolumeOwner::Claim {
                    namespace: get("namespace")?,
                    claim: get("claim")?,
                    storage: storage.parse().map_err(|_| LabelError::Invalid {
                        label: "storage",
                        value: storage,
                    })?,
                    ordinal,
                })
            }
            Some("pod") => {
                let mut pod_labels = labels.clone();
                pod_labels.insert(MANAGED_LABEL.to_string(), "true".to_string());
                pod_labels.insert(format!("{LABEL_PREFIX}container"), String::new());
                Ok(VolumeOwner::Pod {
                    pod: ManagedLabels::from_docker_labels(&pod_labels)?,
                    volume: get("volume-name")?,
                })
            }
            Some(other) => Err(LabelError::Invalid {
                label: "volume",
                value: other.to_string(),
            }),
            None => Err(LabelError::Missing("volume")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ManagedLabels {
        ManagedLabels {
            namespace: "default".into(),
            kind: Kind::Deployment,
            name: "web".into(),
            slot: 2,
            template_hash: "5f2c9a1b7d".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            node: "n1".into(),
            container: "app".into(),
            role: Default::default(),
        }
    }

    #[test]
    fn labels_round_trip() {
        let labels = sample();
        assert_eq!(
            ManagedLabels::from_docker_labels(&labels.to_docker_labels()),
            Ok(labels)
        );
    }

    #[test]
    fn hooks_round_trip_through_labels() {
        let hooks = Hooks {
            post_start: Some(Hook::Exec {
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            }),
            pre_stop: Some(Hook::HttpGet {
                path: "/quit".into(),
                port: 8080,
                host_port: None,
                headers: vec![("X-A".into(), "b".into())],
            }),
            grace_seconds: Some(5),
        };
        let mut labels = HashMap::new();
        hooks.add_docker_labels(&mut labels);
        assert_eq!(labels["dev.flotilla.grace-seconds"], "5");
        assert_eq!(
            labels["dev.flotilla.pre-stop"],
            r#"{"httpGet":{"path":"/quit","port":8080,"headers":[["X-A","b"]]}}"#
        );
        assert_eq!(Hooks::from_docker_labels(&labels), hooks);
        let sleep = Hooks {
            pre_stop: Some(Hook::Sleep { seconds: 3 }),
            ..Hooks::default()
        };
        let mut labels = HashMap::new();
        sleep.add_docker_labels(&mut labels);
        assert_eq!(labels.len(), 1);
        assert_eq!(Hooks::from_docker_labels(&labels), sleep);
        labels.insert("dev.flotilla.pre-stop".into(), "not json".into());
        assert_eq!(Hooks::from_docker_labels(&labels), Hooks::default());
    }

    /// Issue 16: a container's role in its pod is a label, absent on an app
    /// container (as on every container made before roles).
    #[test]
    fn roles_round_trip_and_an_app_container_has_no_role_label() {
        for (role, label) in [
            (ContainerRole::App, None),
            (ContainerRole::Sandbox, Some("sandbox")),
            (ContainerRole::Init, Some("init")),
            (ContainerRole::Sidecar, Some("sidecar")),
        ] {
            let labels = ManagedLabels { role, ..sample() };
            let docker = labels.to_docker_labels();
            assert_eq!(docker.get("dev.flotilla.role").map(String::as_str), label);
            assert_eq!(ManagedLabels::from_docker_labels(&docker), Ok(labels));
        }
        let mut docker = sample().to_docker_labels();
        docker.insert("dev.flotilla.role".into(), "helper".into());
        assert_eq!(
            ManagedLabels::from_docker_labels(&docker),
            Err(LabelError::Invalid {
                label: "role",
                value: "helper".into()
            })
        );
    }

    #[test]
    fn unmanaged_container_is_rejected() {
        let mut docker = sample().to_docker_labels();
        docker.insert(MANAGED_LABEL.into(), "false".into());
        assert_eq!(
            ManagedLabels::from_docker_labels(&docker),
            Err(LabelError::Missing("managed"))
        );
    }

    #[test]
    fn bad_slot_is_named() {
        let mut docker = sample().to_docker_labels();
        docker.insert("dev.flotilla.slot".into(), "x".into());
        assert_eq!(
            ManagedLabels::from_docker_labels(&docker),
            Err(LabelError::Invalid {
                label: "slot",
                value: "x".into()
            })
        );
    }

    #[test]
    fn volume_labels_round_trip() {
        let claim = VolumeOwner::Claim {
            namespace: "default".into(),
            claim: "logs".into(),
            storage: 1 << 30,
            ordinal: None,
        };
        let ordinal = VolumeOwner::Claim {
            namespace: "default".into(),
            claim: "data-web-0".into(),
            storage: 1 << 30,
            ordinal: Some(OrdinalClaim {
                set: "web".into(),
                ordinal: 0,
                delete_with_set: true,
            }),
        };
        let pod = VolumeOwner::Pod {
            pod: ManagedLabels {
                container: String::new(),
                ..sample()
            },
            volume: "scratch".into(),
        };
        for owner in [claim, ordinal, pod] {
            let labels = owner.to_docker_labels();
            assert!(
                !labels.contains_key(MANAGED_LABEL),
                "not listed as a container's"
            );
            assert_eq!(VolumeOwner::from_docker_labels(&labels), Ok(owner));
        }
    }

    #[test]
    fn volume_names_are_deterministic() {
        assert_eq!(
            claim_volume_name("default", "data-web-0"),
            "flotilla.pvc.default.data-web-0"
        );
        assert_eq!(
            pod_volume_name(&sample(), "scratch"),
            "flotilla.deployment.default.web.2.5f2c9a1b7d.scratch"
        );
    }

    #[test]
    fn container_name_is_deterministic() {
        assert_eq!(
            sample().container_name(),
            "flotilla.deployment.default.web.2.5f2c9a1b7d.app"
        );
    }
}
