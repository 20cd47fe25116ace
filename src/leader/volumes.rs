//! A container's storage, from its pod template: the Docker volumes it
//! needs (its claims', its pod's `emptyDir`s) and what it mounts where.
//! `configMap` and `secret` volumes are files, placed by `pod_config`.

use crate::cluster::{
    claim_volume_name, pod_volume_name, ManagedLabels, OrdinalClaim, VolumeOwner,
};
use crate::manifest::model::{
    ClaimRetention, Container, DesiredState, PodSpec, StorageMedium, VolumeSource,
};
use crate::node::{ContainerMount, PodVolume, VolumeMedium};

/// The volumes `container` of the pod `labels` names needs, and its mounts.
/// A claim that is not declared is left out (validation refuses such a
/// pod, so only a desired state changed under it lacks one).
pub fn container_storage(
    container: &Container,
    pod: &PodSpec,
    labels: &ManagedLabels,
    desired: &DesiredState,
) -> (Vec<PodVolume>, Vec<ContainerMount>) {
    let mut volumes: Vec<PodVolume> = Vec::new();
    let mut mounts = Vec::new();
    let stateful = desired
        .workload_named(labels.kind, &labels.namespace, &labels.name)
        .and_then(|w| w.spec.stateful.as_ref().map(|s| (w, s)));
    for mount in &container.volume_mounts {
        // A StatefulSet's volume claim template: this ordinal's own claim.
        let ordinal_claim = stateful.and_then(|(workload, set)| {
            set.claim_templates
                .iter()
                .find(|t| t.name == mount.name)
                .map(|template| {
                    let claim = workload.ordinal_claim_name(&template.name, labels.slot);
                    let owner = VolumeOwner::Claim {
                        namespace: labels.namespace.clone(),
                        claim: claim.clone(),
                        storage: desired
                            .claim(&labels.namespace, &claim)
                            .map_or(template.storage.0, |c| c.storage.0),
                        ordinal: Some(OrdinalClaim {
                            set: workload.meta.name.clone(),
                            ordinal: labels.slot,
                            delete_with_set: set.when_deleted == ClaimRetention::Delete,
                        }),
                    };
                    PodVolume {
                        name: claim_volume_name(&labels.namespace, &claim),
                        owner,
                        medium: VolumeMedium::Disk,
                    }
                })
        });
        if let Some(docker_volume) = ordinal_claim {
            mounts.push(ContainerMount::Volume {
                volume: docker_volume.name.clone(),
                target: mount.mount_path.clone(),
                sub_path: mount.sub_path.clone(),
                read_only: mount.read_only,
            });
            if !volumes.iter().any(|v| v.name == docker_volume.name) {
                volumes.push(docker_volume);
            }
            continue;
        }
        let Some(volume) = pod.volumes.iter().find(|v| v.name == mount.name) else {
            continue;
        };
        let (docker_volume, read_only) = match &volume.source {
            VolumeSource::Config(_) => continue,
            VolumeSource::HostPath(host) => {
                mounts.push(ContainerMount::Host {
                    path: host.path.clone(),
                    target: mount.mount_path.clone(),
                    kind: host.kind,
                    read_only: mount.read_only,
                });
                continue;
            }
            VolumeSource::EmptyDir(empty) => {
                let pod_labels = ManagedLabels {
                    container: String::new(),
                    ..labels.clone()
                };
                let name = pod_volume_name(&pod_labels, &volume.name);
                let medium = match empty.medium {
                    StorageMedium::Disk => VolumeMedium::Disk,
                    StorageMedium::Memory => VolumeMedium::Memory {
                        size_bytes: empty.size_limit.map(|b| b.0),
                    },
                };
                let owner = VolumeOwner::Pod {
                    pod: pod_labels,
                    volume: volume.name.clone(),
                };
                (
                    PodVolume {
                        name,
                        owner,
                        medium,
                    },
                    mount.read_only,
                )
            }
            VolumeSource::Claim(claim_volume) => {
                let Some(claim) = desired.claim(&labels.namespace, &claim_volume.claim_name) else {
                    continue;
                };
                let owner = VolumeOwner::Claim {
                    namespace: labels.namespace.clone(),
                    claim: claim.meta.name.clone(),
                    storage: claim.storage.0,
                    ordinal: None,
                };
                (
                    PodVolume {
                        name: claim_volume_name(&labels.namespace, &claim.meta.name),
                        owner,
                        medium: VolumeMedium::Disk,
                    },
                    mount.read_only || claim_volume.read_only,
                )
            }
        };
        mounts.push(ContainerMount::Volume {
            volume: docker_volume.name.clone(),
            target: mount.mount_path.clone(),
            sub_path: mount.sub_path.clone(),
            read_only,
        });
        if !volumes.iter().any(|v| v.name == docker_volume.name) {
            volumes.push(docker_volume);
        }
    }
    (volumes, mounts)
}
