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
        labels
    }

    /// Decodes a container's labels; fails when it is not managed by flotilla
    /// or a label is missing or malformed.
    pub fn from_docker_labels(labels: &HashMap<String, String>) -> Result<Self, LabelError> {
        let get = |key: &'static str| -> Result<String, LabelError> {
            labels
                .get(&format!("{LABEL_PREFIX}{key}"))
                .cloned()
                .ok_or(LabelError::Missing(key))
        };
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
    fn container_name_is_deterministic() {
        assert_eq!(
            sample().container_name(),
            "flotilla.deployment.default.web.2.5f2c9a1b7d.app"
        );
    }
}
