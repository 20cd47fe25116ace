//! The cluster's status as `flotilla status` and `/status` show it: nodes,
//! objects and replicas, computed from the desired state and what was
//! observed. No I/O here: the caller passes everything in, time included.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::time::{format_age, format_rfc3339};
use crate::cluster::replica::{container_available, container_ready, ReadinessGate, ReplicaState};
use crate::cluster::{
    ContainerRole, ContainerState, Health, ObservedCluster, ObservedContainer, Reachability,
};
use crate::manifest::model::{DesiredState, ObjectKey, Strategy, Workload};
use crate::manifest::template_hash;
use crate::plan::desired_pods;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// RFC 3339.
    pub generated_at: String,
    /// The commit whose desired state this compares against.
    pub commit: Option<String>,
    pub nodes: Vec<NodeStatus>,
    pub objects: Vec<ObjectStatus>,
    pub replicas: Vec<ReplicaStatus>,
    /// Every Service with the pods it selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub namespace: String,
    pub name: String,
    /// `ClusterIP` or `NodePort`.
    #[serde(rename = "type")]
    pub service_type: String,
    pub cluster_ip: String,
    /// As kubectl shows them: `80/TCP`, `80:31234/TCP`.
    pub ports: Vec<String>,
    pub endpoints: Vec<crate::plan::endpoints::EndpointStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    pub reachable: bool,
    /// Why it is unreachable, and since when (RFC 3339).
    pub unreachable_reason: Option<String>,
    pub unreachable_since: Option<String>,
    pub cpu_capacity_millis: Option<u64>,
    pub memory_capacity_bytes: Option<u64>,
    pub cpu_allocated_millis: u64,
    pub memory_allocated_bytes: u64,
    /// The containers seen on it (when unreachable, when it was last seen).
    pub containers: usize,
    /// Never observed (unreachable since the observer started, or not in
    /// the observation): `containers` says nothing about what runs there.
    #[serde(default)]
    pub containers_unknown: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub desired_replicas: u32,
    pub ready_replicas: u32,
    /// Replicas ready for `minReadySeconds`, as the planner counts them.
    #[serde(default)]
    pub available_replicas: u32,
    /// Replicas of the current template.
    pub updated_replicas: u32,
    /// Replicas of any revision, this one included.
    pub total_replicas: u32,
    /// The current template's revision and the commit running it.
    pub template_hash: String,
    pub deployed_commit: Option<String>,
    /// `complete`, `progressing`, `unknown` (none of its replicas can be
    /// seen: their nodes are unreachable), `failed` or `removing`.
    pub rollout: String,
    /// Why the rollout failed (`failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_reason: Option<String>,
    /// Pods the plan cannot create, and why: `web[1]: ...` (a StatefulSet
    /// ordinal whose pod is on a node away, a replica no node can take).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<String>,
    /// A pod set that completes (Job): its run of the current revision, as
    /// the plan sees it (`2/6 succeeded, 2 active, 1 failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// Adds to each object of `status` the pods `plan` cannot create, and why.
pub fn note_waits(status: &mut StatusReport, plan: &crate::plan::Plan) {
    for object in &mut status.objects {
        let is = |key: &crate::manifest::model::ObjectKey| {
            key.kind.as_str() == object.kind
                && key.namespace == object.namespace
                && key.name == object.name
        };
        for w in plan.waiting.iter().filter(|w| is(&w.object)) {
            object
                .waiting
                .push(format!("{}[{}] waits: {}", object.name, w.slot, w.reason));
        }
        if let Some(run) = plan
            .objects
            .iter()
            .find(|o| is(&o.key))
            .and_then(|o| o.run.as_ref())
        {
            object.run = Some(run.to_string());
        }
        for u in plan.unschedulable.iter().filter(|u| is(&u.object)) {
            object.waiting.push(format!(
                "{}[{}] unschedulable: {}",
                object.name, u.slot, u.reason
            ));
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    /// `Deployment default/web`.
    pub object: String,
    pub slot: u32,
    pub node: String,
    pub container: String,
    /// Docker's container name.
    pub container_name: String,
    /// `running`, `exited (1)`, ...
    pub state: String,
    /// `ready`, `not ready`, `healthy`, `unhealthy`...
    pub health: String,
    pub ready: bool,
    /// Ready for the Deployment's `minReadySeconds`.
    #[serde(default)]
    pub available: bool,
    pub restarts: u32,
    /// Kubernetes-style age since the container started; empty if it never did.
    pub age: String,
    pub template_hash: String,
    pub commit: String,
    /// Ports published on the node, as `docker ps` shows them
    /// (`0.0.0.0:8080->8080/tcp`); absent in reports of older leaders.
    #[serde(default)]
    pub ports: Vec<String>,
}

/// (object, slot, template hash, node).
type PodKey = (ObjectKey, u32, String, String);

/// A declared workload, with the pods it should have now and its revision.
struct Declared<'a> {
    workload: &'a Workload,
    pods: u32,
    revision: String,
}

/// Computes the status of `desired` (read from `commit`) against `observed`.
pub fn build(
    desired: &DesiredState,
    commit: Option<&str>,
    observed: &ObservedCluster,
    now: SystemTime,
) -> StatusReport {
    let templates: BTreeMap<ObjectKey, Declared<'_>> = desired
        .workloads
        .iter()
        .map(|w| {
            let declared = Declared {
                workload: w,
                pods: desired_pods(w, desired, observed, now),
                revision: template_hash(&w.spec.template),
            };
            (w.key(), declared)
        })
        .collect();

    // Where each pod of a current revision stands in its init sequence
    // (`Init:1/2`), shown as the state of its app containers waiting for it.
    let mut init_states: BTreeMap<PodKey, String> = BTreeMap::new();
    // The pods of a current revision the planner's rules hold back whatever
    // their containers say: one whose sandbox, sidecar or app container is
    // missing (not created yet, or its creation failed) is neither ready
    // nor available (`false`), one that runs but has not been ready for
    // `minReadySeconds` is not available (`true`: still ready).
    let mut held_back: BTreeMap<PodKey, bool> = BTreeMap::new();
    for replica in crate::cluster::group_replicas(observed) {
        let object = ObjectKey {
            kind: replica.key.kind,
            namespace: replica.key.namespace.to_string(),
            name: replica.key.name.to_string(),
        };
        let Some(declared) = templates
            .get(&object)
            .filter(|d| d.revision == replica.key.template_hash)
        else {
            continue;
        };
        let spec = &declared.workload.spec.template.spec;
        let key = (
            object,
            replica.key.slot,
            replica.key.template_hash.to_string(),
            replica.node.to_string(),
        );
        let gate = ReadinessGate {
            template: &declared.workload.spec.template,
            min_ready_seconds: declared.workload.spec.min_ready_seconds,
        };
        match replica.state(Some(gate), now) {
            ReplicaState::Running => {
                held_back.insert(key.clone(), true);
            }
            ReplicaState::Pending => {
                held_back.insert(key.clone(), false);
            }
            // Unknown (its node's last word stands), or its containers
            // say it already (ready, stopped, being removed).
            _ => {}
        }
        if let Some(text) = replica.init_progress(spec).text(spec.restart_policy) {
            init_states.insert(key, text);
        }
    }

    let mut replicas = Vec::new();
    // Pods keyed by (namespace, name, slot, template hash, node): all of a
    // pod's containers must be ready (available) for the pod to be (its
    // regular init containers, which ran to completion, aside).
    let mut pods: BTreeMap<PodKey, (bool, bool)> = BTreeMap::new();
    let mut nodes = Vec::new();
    for node in &desired.nodes {
        let observed_node = observed.nodes.get(&node.meta.name);
        let (reachable, unreachable_reason, unreachable_since) =
            match observed_node.map(|n| &n.reachability) {
                Some(Reachability::Reachable) => (true, None, None),
                Some(Reachability::Unreachable { since, reason, .. }) => {
                    (false, Some(reason.clone()), Some(format_rfc3339(*since)))
                }
                None => (false, Some("not observed yet".to_string()), None),
            };
        let facts = observed_node.and_then(|n| n.facts.as_ref());
        let containers = observed_node.map_or(&[][..], |n| &n.containers[..]);
        let mut cpu_allocated = 0;
        let mut memory_allocated = 0;
        let mut counted_pods = std::collections::BTreeSet::new();
        for container in containers {
            let labels = &container.labels;
            let object = ObjectKey {
                kind: labels.kind,
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
            };
            let template = templates.get(&object);
            // An old revision's probes went with its template: like the
            // planner, count it ready while it runs.
            let spec_container = template
                .filter(|d| d.revision == labels.template_hash)
                .and_then(|d| {
                    d.workload
                        .spec
                        .template
                        .spec
                        .all_containers()
                        .find(|c| c.name == labels.container)
                });
            let has_readiness_probe = spec_container
                .is_some_and(|c| c.readiness_probe.is_some() || c.startup_probe.is_some());
            // The planner's rules (cluster::replica), so that status, rollout
            // status and the planner agree on what is ready and available.
            let ready = container_ready(container, spec_container);
            let available = container_available(
                container,
                spec_container,
                template.map_or(0, |d| d.workload.spec.min_ready_seconds),
                now,
            );
            let pod_key = (
                object,
                labels.slot,
                labels.template_hash.clone(),
                labels.node.clone(),
            );
            let pod = pods.entry(pod_key.clone()).or_insert((true, true));
            if labels.role != ContainerRole::Init {
                pod.0 &= ready;
                pod.1 &= available;
            }
            let state = match init_states.get(&pod_key) {
                Some(init)
                    if labels.role == ContainerRole::App
                        && container.state == ContainerState::Created =>
                {
                    init.clone()
                }
                _ => state_text(container.state),
            };
            if container.state != ContainerState::Dead && counted_pods.insert(pod_key) {
                if let Some(d) = template {
                    let requests = d.workload.spec.template.spec.requests();
                    cpu_allocated += requests.cpu.map_or(0, |c| c.0);
                    memory_allocated += requests.memory.map_or(0, |m| m.0);
                }
            }
            replicas.push(ReplicaStatus {
                object: format!("{} {}/{}", labels.kind, labels.namespace, labels.name),
                slot: labels.slot,
                node: node.meta.name.clone(),
                container: match labels.role {
                    ContainerRole::App => labels.container.clone(),
                    ContainerRole::Sandbox => "(sandbox)".to_string(),
                    ContainerRole::Init => format!("{} (init)", labels.container),
                    ContainerRole::Sidecar => format!("{} (sidecar)", labels.container),
                },
                container_name: container.name.clone(),
                state,
                health: health_text(container, has_readiness_probe),
                ready,
                available,
                restarts: container.restart_count,
                age: container
                    .started_at
                    .filter(|_| container.state == ContainerState::Running)
                    .and_then(|started| now.duration_since(started).ok())
                    .map(format_age)
                    .unwrap_or_default(),
                template_hash: labels.template_hash.clone(),
                commit: labels.commit.clone(),
                ports: container.ports.iter().map(ToString::to_string).collect(),
            });
        }
        nodes.push(NodeStatus {
            name: node.meta.name.clone(),
            address: node.spec.address.clone(),
            reachable,
            unreachable_reason,
            unreachable_since,
            cpu_capacity_millis: node
                .spec
                .capacity
                .cpu
                .map(|c| c.0)
                .or(facts.map(|f| f.cpu.0)),
            memory_capacity_bytes: node
                .spec
                .capacity
                .memory
                .map(|m| m.0)
                .or(facts.map(|f| f.memory.0)),
            cpu_allocated_millis: cpu_allocated,
            memory_allocated_bytes: memory_allocated,
            containers: containers.len(),
            containers_unknown: observed_node.is_none_or(|n| n.reachability.contents_unknown()),
        });
    }

    for (key, still_ready) in held_back {
        if let Some(pod) = pods.get_mut(&key) {
            pod.0 &= still_ready;
            pod.1 = false;
        }
    }

    // Where no one can see: a replica missing from the reachable nodes may
    // run on a node never reached.
    let reachable_nodes: std::collections::BTreeSet<&str> = observed
        .nodes
        .values()
        .filter(|n| n.reachability.is_reachable())
        .map(|n| n.name.as_str())
        .collect();
    let any_contents_unknown = desired.nodes.iter().any(|node| {
        observed
            .nodes
            .get(&node.meta.name)
            .is_none_or(|n| n.reachability.contents_unknown())
    });

    let mut objects = Vec::new();
    for (key, declared) in &templates {
        let (desired_replicas, hash) = (&declared.pods, &declared.revision);
        let mut ready = 0;
        let mut available = 0;
        let mut updated_available = 0;
        let mut updated = 0;
        let mut total = 0;
        let mut deployed_commit = None;
        let mut seen_on_reachable = false;
        let mut seen_on_unreachable = false;
        let object_name = format!("{} {}/{}", key.kind, key.namespace, key.name);
        for ((object, _, pod_hash, node), (pod_ready, pod_available)) in &pods {
            if object != key {
                continue;
            }
            if reachable_nodes.contains(node.as_str()) {
                seen_on_reachable = true;
            } else {
                seen_on_unreachable = true;
            }
            total += 1;
            ready += u32::from(*pod_ready);
            available += u32::from(*pod_available);
            if pod_hash == hash {
                updated += 1;
                updated_available += u32::from(*pod_available);
            }
        }
        for replica in &replicas {
            if replica.object == object_name && &replica.template_hash == hash {
                deployed_commit = Some(replica.commit.clone());
                break;
            }
        }
        // Complete when every replica is of this revision and available;
        // with `OnDelete`, old pods stay by design: when every pod is there
        // and available, whatever its revision.
        // Pods that run to completion roll nothing out: their run is
        // followed in `run` (from the plan), and recorded in its note.
        let complete = if declared.workload.spec.pods.completes() {
            true
        } else if declared.workload.spec.strategy == Strategy::OnDelete {
            total == *desired_replicas && available >= *desired_replicas
        } else {
            updated == *desired_replicas
                && total == *desired_replicas
                && updated_available >= *desired_replicas
        };
        objects.push(ObjectStatus {
            kind: key.kind.as_str().to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            desired_replicas: *desired_replicas,
            ready_replicas: ready,
            available_replicas: available,
            updated_replicas: updated,
            total_replicas: total,
            template_hash: hash.clone(),
            deployed_commit,
            rollout: rollout_state(
                complete,
                seen_on_reachable,
                seen_on_unreachable || any_contents_unknown,
            )
            .to_string(),
            rollout_reason: None,
            waiting: Vec::new(),
            run: None,
        });
    }
    // Objects that are gone from the repository but still have containers.
    let mut removing: BTreeMap<&ObjectKey, u32> = BTreeMap::new();
    for (object, _, _, _) in pods.keys() {
        if !templates.contains_key(object) {
            *removing.entry(object).or_default() += 1;
        }
    }
    for (key, total) in removing {
        objects.push(ObjectStatus {
            kind: key.kind.as_str().to_string(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            total_replicas: total,
            rollout: "removing".to_string(),
            ..ObjectStatus::default()
        });
    }

    replicas.sort_by(|a, b| {
        (&a.object, a.slot, &a.node, &a.container).cmp(&(&b.object, b.slot, &b.node, &b.container))
    });
    let services = desired
        .services
        .iter()
        .zip(crate::plan::endpoints::service_endpoints(
            desired,
            &crate::cluster::group_replicas(observed),
            now,
        ))
        .map(|(service, endpoints)| ServiceStatus {
            namespace: service.meta.namespace.clone(),
            name: service.meta.name.clone(),
            service_type: match service.service_type {
                crate::manifest::model::ServiceType::ClusterIP => "ClusterIP",
                crate::manifest::model::ServiceType::NodePort => "NodePort",
            }
            .to_string(),
            cluster_ip: service.cluster_ip.to_string(),
            ports: service.ports.iter().map(service_port_text).collect(),
            endpoints,
        })
        .collect();
    StatusReport {
        generated_at: format_rfc3339(now),
        commit: commit.map(str::to_string),
        nodes,
        objects,
        replicas,
        services,
    }
}

/// A Service port as kubectl shows it: `80/TCP`, `80:31234/TCP`.
pub fn service_port_text(port: &crate::manifest::model::ServicePort) -> String {
    let protocol = port.protocol.as_str();
    match port.node_port {
        Some(node_port) => format!("{}:{node_port}/{protocol}", port.port),
        None => format!("{}/{protocol}", port.port),
    }
}

/// `complete`, `progressing`, or `unknown`: not complete, and none of the
/// object's replicas is on a node that could be observed, while some may be
/// (or are, as last seen) on one that could not. Progress cannot be claimed
/// then: every node may be down, or the replicas running unseen.
fn rollout_state(complete: bool, seen_on_reachable: bool, maybe_unseen: bool) -> &'static str {
    if complete {
        "complete"
    } else if !seen_on_reachable && maybe_unseen {
        "unknown"
    } else {
        "progressing"
    }
}

fn state_text(state: ContainerState) -> String {
    match state {
        ContainerState::Created => "created".into(),
        ContainerState::Running => "running".into(),
        ContainerState::Restarting => "restarting".into(),
        ContainerState::Paused => "paused".into(),
        ContainerState::Exited { code } => format!("exited ({code})"),
        ContainerState::Removing => "removing".into(),
        ContainerState::Dead => "dead".into(),
    }
}

fn health_text(container: &ObservedContainer, has_readiness_probe: bool) -> String {
    match (container.health, has_readiness_probe, container.probe_ready) {
        (Some(Health::Unhealthy), _, _) => "unhealthy".into(),
        (_, true, Some(true)) => "ready".into(),
        (_, true, Some(false)) => "not ready".into(),
        (_, true, None) => "probing".into(),
        (Some(Health::Healthy), false, _) => "healthy".into(),
        (Some(Health::Starting), false, _) => "starting".into(),
        (None, false, _) => "-".into(),
    }
}

impl fmt::Display for StatusReport {
    /// The table `flotilla status` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(commit) = &self.commit {
            writeln!(f, "commit {}", &commit[..commit.len().min(12)])?;
            writeln!(f)?;
        }
        let mut rows = vec![vec![
            "NODE".to_string(),
            "ADDRESS".into(),
            "STATUS".into(),
            "CPU (alloc/cap)".into(),
            "MEMORY (alloc/cap)".into(),
            "CONTAINERS".into(),
        ]];
        for node in &self.nodes {
            rows.push(vec![
                node.name.clone(),
                node.address.clone(),
                if node.reachable {
                    "Ready".into()
                } else {
                    format!(
                        "NotReady: {}",
                        node.unreachable_reason.as_deref().unwrap_or("unreachable")
                    )
                },
                format!(
                    "{}m/{}",
                    node.cpu_allocated_millis,
                    node.cpu_capacity_millis
                        .map_or("?".into(), |c| format!("{c}m"))
                ),
                format!(
                    "{}/{}",
                    mebibytes(node.memory_allocated_bytes),
                    node.memory_capacity_bytes.map_or("?".into(), mebibytes)
                ),
                match (node.reachable, node.containers_unknown) {
                    (true, _) => node.containers.to_string(),
                    (false, true) => "unknown".to_string(),
                    (false, false) => format!("{} (last seen)", node.containers),
                },
            ]);
        }
        write_table(f, &rows)?;
        writeln!(f)?;

        let mut rows = vec![vec![
            "OBJECT".to_string(),
            "READY".into(),
            "AVAILABLE".into(),
            "UP-TO-DATE".into(),
            "REVISION".into(),
            "COMMIT".into(),
            "ROLLOUT".into(),
        ]];
        for object in &self.objects {
            rows.push(vec![
                format!("{} {}/{}", object.kind, object.namespace, object.name),
                format!("{}/{}", object.ready_replicas, object.desired_replicas),
                object.available_replicas.to_string(),
                object.updated_replicas.to_string(),
                object.template_hash.clone(),
                object
                    .deployed_commit
                    .as_deref()
                    .map_or("-".into(), |c| c[..c.len().min(12)].to_string()),
                object.run.clone().unwrap_or_else(|| object.rollout.clone()),
            ]);
        }
        write_table(f, &rows)?;
        for object in &self.objects {
            for line in &object.waiting {
                writeln!(
                    f,
                    "  {} {}/{}: {line}",
                    object.kind, object.namespace, object.name
                )?;
            }
        }
        writeln!(f)?;

        let mut rows = vec![vec![
            "REPLICA".to_string(),
            "NODE".into(),
            "CONTAINER".into(),
            "STATE".into(),
            "HEALTH".into(),
            "RESTARTS".into(),
            "AGE".into(),
            "PORTS".into(),
        ]];
        for replica in &self.replicas {
            rows.push(vec![
                format!("{}#{}", replica.object, replica.slot),
                replica.node.clone(),
                replica.container.clone(),
                replica.state.clone(),
                replica.health.clone(),
                replica.restarts.to_string(),
                if replica.age.is_empty() {
                    "-".into()
                } else {
                    replica.age.clone()
                },
                if replica.ports.is_empty() {
                    "-".into()
                } else {
                    replica.ports.join(",")
                },
            ]);
        }
        write_table(f, &rows)?;
        if self.services.is_empty() {
            return Ok(());
        }
        writeln!(f)?;
        let mut rows = vec![vec![
            "SERVICE".to_string(),
            "TYPE".into(),
            "CLUSTER-IP".into(),
            "PORTS".into(),
            "ENDPOINTS".into(),
        ]];
        let mut endpoint_rows = vec![vec![
            "ENDPOINT".to_string(),
            "POD".into(),
            "NODE".into(),
            "ADDRESS".into(),
            "STATE".into(),
        ]];
        for service in &self.services {
            let name = format!("{}/{}", service.namespace, service.name);
            let ready = service
                .endpoints
                .iter()
                .filter(|e| e.state == "ready")
                .count();
            rows.push(vec![
                name.clone(),
                service.service_type.clone(),
                service.cluster_ip.clone(),
                service.ports.join(","),
                format!("{ready} ready of {}", service.endpoints.len()),
            ]);
            for endpoint in &service.endpoints {
                endpoint_rows.push(vec![
                    name.clone(),
                    endpoint.pod.clone(),
                    endpoint.node.clone(),
                    if endpoint.address.is_empty() {
                        "-".into()
                    } else {
                        endpoint.address.clone()
                    },
                    endpoint.state.clone(),
                ]);
            }
        }
        write_table(f, &rows)?;
        if endpoint_rows.len() > 1 {
            writeln!(f)?;
            write_table(f, &endpoint_rows)?;
        }
        Ok(())
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

fn write_table(f: &mut fmt::Formatter<'_>, rows: &[Vec<String>]) -> fmt::Result {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        writeln!(f, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ManagedLabels, NodeFacts, ObservedNode};
    use crate::leader::memory::load;
    use crate::manifest::quantity::{Bytes, CpuMillis};
    use crate::manifest::SourceFile;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_395_723 + secs)
    }

    fn container(
        desired: &DesiredState,
        node: &str,
        slot: u32,
        state: ContainerState,
        hash: Option<&str>,
    ) -> ObservedContainer {
        let template = &desired.workloads[0].spec.template;
        let labels = ManagedLabels {
            namespace: "default".into(),
            kind: desired.workloads[0].kind,
            name: "web".into(),
            slot,
            template_hash: hash.map_or_else(|| template_hash(template), str::to_string),
            commit: "0123456789abcdef".into(),
            node: node.into(),
            container: "app".into(),
            role: Default::default(),
        };
        ObservedContainer {
            id: format!("id{slot}"),
            name: labels.container_name(),
            labels,
            state,
            health: None,
            restart_count: slot,
            started_at: Some(at(0)),
            finished_at: None,
            image: "img:1".into(),
            ports: Vec::new(),
            probe_ready: None,
            address: None,
            ready_since: None,
            hooks: Default::default(),
        }
    }

    /// Issue 16: a pod waiting for its init containers shows kubectl's
    /// init state on its app containers, each container its role, and is
    /// not ready; once done, the completed init container does not keep
    /// it from being ready.
    #[test]
    fn init_progress_and_roles_show_in_the_replicas() {
        let (mut desired, _) = load(&[SourceFile {
            path: "web.yaml".into(),
            text: "replicas: 1".into(),
            excluded: Vec::new(),
        }]);
        desired.workloads[0].spec.template.spec.init_containers =
            vec![crate::manifest::model::Container {
                name: "setup".into(),
                image: "img:1".into(),
                ..Default::default()
            }];
        let member = |name: &str, role: ContainerRole, state: ContainerState| {
            let mut c = container(&desired, "n1", 0, state, None);
            c.labels.container = name.into();
            c.labels.role = role;
            c.name = c.labels.container_name();
            c.restart_count = 0;
            c
        };
        let report = |setup: ContainerState, app: ContainerState| {
            let mut observed = ObservedCluster::default();
            observed.nodes.insert(
                "n1".into(),
                ObservedNode {
                    name: "n1".into(),
                    reachability: Reachability::Reachable,
                    facts: None,
                    containers: vec![
                        member(
                            crate::cluster::SANDBOX_CONTAINER,
                            ContainerRole::Sandbox,
                            ContainerState::Running,
                        ),
                        member("setup", ContainerRole::Init, setup),
                        member("app", ContainerRole::App, app),
                    ],
                    volumes: Vec::new(),
                },
            );
            build(&desired, None, &observed, at(10))
        };
        let waiting = report(ContainerState::Exited { code: 1 }, ContainerState::Created);
        let rows: Vec<(&str, &str)> = waiting
            .replicas
            .iter()
            .map(|r| (r.container.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("(sandbox)", "running"),
                ("app", "Init:CrashLoopBackOff"),
                ("setup (init)", "exited (1)"),
            ]
        );
        assert_eq!(waiting.objects[0].ready_replicas, 0);
        let done = report(ContainerState::Exited { code: 0 }, ContainerState::Running);
        let app = done.replicas.iter().find(|r| r.container == "app").unwrap();
        assert_eq!(app.state, "running");
        assert_eq!(done.objects[0].ready_replicas, 1);
    }

    /// Regression (review of issue 16): a pod whose app container failed to
    /// be created (only its sandbox and completed init container on the
    /// node) counted as ready and available, so `status` showed 1/1 and
    /// `rollout status` (and `git push -o flotilla.wait`) a complete
    /// rollout while the planner held the pod pending.
    #[test]
    fn a_pod_missing_a_container_is_not_ready() {
        let (mut desired, _) = load(&[SourceFile {
            path: "web.yaml".into(),
            text: "replicas: 1".into(),
            excluded: Vec::new(),
        }]);
        desired.workloads[0].spec.template.spec.init_containers =
            vec![crate::manifest::model::Container {
                name: "setup".into(),
                image: "img:1".into(),
                ..Default::default()
            }];
        let member = |name: &str, role: ContainerRole, state: ContainerState| {
            let mut c = container(&desired, "n1", 0, state, None);
            c.labels.container = name.into();
            c.labels.role = role;
            c.name = c.labels.container_name();
            c
        };
        let report = |with_app: bool| {
            let mut containers = vec![
                member(
                    crate::cluster::SANDBOX_CONTAINER,
                    ContainerRole::Sandbox,
                    ContainerState::Running,
                ),
                member(
                    "setup",
                    ContainerRole::Init,
                    ContainerState::Exited { code: 0 },
                ),
            ];
            if with_app {
                containers.push(member("app", ContainerRole::App, ContainerState::Running));
            }
            let mut observed = ObservedCluster::default();
            observed.nodes.insert(
                "n1".into(),
                ObservedNode {
                    name: "n1".into(),
                    reachability: Reachability::Reachable,
                    facts: None,
                    containers,
                    volumes: Vec::new(),
                },
            );
            build(&desired, None, &observed, at(10))
        };
        let missing = report(false);
        assert_eq!(missing.objects[0].ready_replicas, 0);
        assert_eq!(missing.objects[0].available_replicas, 0);
        assert_ne!(missing.objects[0].rollout, "complete");
        let whole = report(true);
        assert_eq!(whole.objects[0].ready_replicas, 1);
        assert_eq!(whole.objects[0].available_replicas, 1);
    }

    #[test]
    fn nodes_objects_and_replicas() {
        let (desired, _) = load(&[SourceFile {
            path: "web.yaml".into(),
            text: "replicas: 3".into(),
            excluded: Vec::new(),
        }]);
        let facts = Some(NodeFacts {
            cpu: CpuMillis(2000),
            memory: Bytes(4 << 30),
            docker_version: "20.10".into(),
        });
        let mut observed = ObservedCluster::default();
        observed.nodes.insert(
            "n1".into(),
            ObservedNode {
                name: "n1".into(),
                reachability: Reachability::Reachable,
                facts: facts.clone(),
                containers: vec![
                    ObservedContainer {
                        ports: vec![crate::cluster::PublishedPort {
                            container_port: 8080,
                            protocol: crate::manifest::model::Protocol::TCP,
                            host_ip: "0.0.0.0".into(),
                            host_port: 18080,
                        }],
                        ..container(&desired, "n1", 0, ContainerState::Running, None)
                    },
                    container(
                        &desired,
                        "n1",
                        1,
                        ContainerState::Exited { code: 137 },
                        None,
                    ),
                ],
                volumes: Vec::new(),
            },
        );
        observed.nodes.insert(
            "n2".into(),
            ObservedNode {
                name: "n2".into(),
                reachability: Reachability::Reachable,
                facts,
                containers: vec![container(
                    &desired,
                    "n2",
                    2,
                    ContainerState::Running,
                    Some("0ld0ld0ld0"),
                )],
                volumes: Vec::new(),
            },
        );
        observed.nodes.insert(
            "n3".into(),
            ObservedNode {
                name: "n3".into(),
                reachability: Reachability::Unreachable {
                    since: at(0),
                    reason: "connection refused".into(),
                    contents: crate::cluster::Contents::LastSeen,
                },
                facts: None,
                containers: Vec::new(),
                volumes: Vec::new(),
            },
        );
        let report = build(&desired, Some("0123456789abcdef"), &observed, at(300));
        let object = &report.objects[0];
        assert_eq!(
            (
                object.desired_replicas,
                object.ready_replicas,
                object.updated_replicas,
                object.total_replicas
            ),
            (3, 2, 2, 3)
        );
        assert_eq!(object.rollout, "progressing");
        assert_eq!(report.replicas[0].ports, ["0.0.0.0:18080->8080/tcp"]);
        let json = serde_json::to_value(&report).expect("serializes");
        assert_eq!(
            json["replicas"][0]["ports"],
            serde_json::json!(["0.0.0.0:18080->8080/tcp"])
        );
        // A report from a leader that did not know ports still reads.
        let mut old = json.clone();
        for replica in old["replicas"].as_array_mut().expect("replicas") {
            replica.as_object_mut().expect("object").remove("ports");
        }
        let read: StatusReport = serde_json::from_value(old).expect("old report reads");
        assert!(read.replicas.iter().all(|r| r.ports.is_empty()));
        insta::assert_snapshot!(report.to_string());
    }

    /// Review of issue 11: an `OnDelete` workload's old pods stay by design;
    /// with every pod there and available it is complete, not progressing
    /// for ever (which would keep the loop on its follow-up period and the
    /// commit without its note).
    #[test]
    fn on_delete_is_complete_with_old_pods() {
        let (mut desired, _) = load(&[SourceFile {
            path: "web.yaml".into(),
            text: "replicas: 2".into(),
            excluded: Vec::new(),
        }]);
        let mut observed = ObservedCluster::default();
        observed.nodes.insert(
            "n1".into(),
            ObservedNode {
                name: "n1".into(),
                reachability: Reachability::Reachable,
                facts: None,
                containers: vec![
                    container(&desired, "n1", 0, ContainerState::Running, Some("0ld")),
                    container(&desired, "n1", 1, ContainerState::Running, Some("0ld")),
                ],
                volumes: Vec::new(),
            },
        );
        let rollout = |desired: &DesiredState| {
            build(desired, None, &observed, at(5)).objects[0]
                .rollout
                .clone()
        };
        assert_eq!(rollout(&desired), "progressing");
        desired.workloads[0].spec.strategy = Strategy::OnDelete;
        assert_eq!(rollout(&desired), "complete");
    }

    /// Node `name`, as `reachability` says, running web's replicas `slots`.
    fn node_running(
        desired: &DesiredState,
        name: &str,
        reachability: Reachability,
        slots: &[u32],
    ) -> ObservedNode {
        ObservedNode {
            name: name.into(),
            reachability,
            facts: None,
            containers: slots
                .iter()
                .map(|&slot| container(desired, name, slot, ContainerState::Running, None))
                .collect(),
            volumes: Vec::new(),
        }
    }

    /// Issue 12, item 4: `status` showed `progressing` for an object whose
    /// nodes were all unreachable. Progress that no one can see is unknown:
    /// none of its replicas is on a node observed now, and some may be (or
    /// were last seen) on one that is not.
    #[test]
    fn a_rollout_no_one_can_see_is_unknown_not_progressing() {
        let (desired, _) = load(&[SourceFile::new("web.yaml", "replicas: 2")]);
        let reachable = |name: &str, slots: &[u32]| {
            node_running(&desired, name, Reachability::Reachable, slots)
        };
        let unreachable = |name: &str, contents, slots: &[u32]| {
            let down = Reachability::Unreachable {
                since: at(0),
                reason: "connection refused".into(),
                contents,
            };
            node_running(&desired, name, down, slots)
        };
        let check = |nodes: Vec<ObservedNode>, expected: &str| {
            let mut observed = ObservedCluster::default();
            for node in nodes {
                observed.nodes.insert(node.name.clone(), node);
            }
            let report = build(&desired, None, &observed, at(5));
            assert_eq!(report.objects[0].rollout, expected, "{observed:?}");
        };
        use crate::cluster::Contents::{LastSeen, Unknown};
        // Every node unreachable, never reached.
        check(
            vec![
                unreachable("n1", Unknown, &[]),
                unreachable("n2", Unknown, &[]),
                unreachable("n3", Unknown, &[]),
            ],
            "unknown",
        );
        // Nothing observed yet.
        check(vec![], "unknown");
        // Its one replica last seen on a node that is unreachable now.
        check(
            vec![
                unreachable("n1", LastSeen, &[0]),
                reachable("n2", &[]),
                reachable("n3", &[]),
            ],
            "unknown",
        );
        // Nothing of it where one can see, and a node never reached.
        check(
            vec![
                reachable("n1", &[]),
                unreachable("n2", Unknown, &[]),
                reachable("n3", &[]),
            ],
            "unknown",
        );
        // One replica seen: the rollout progresses, whatever else is down.
        check(
            vec![
                reachable("n1", &[0]),
                unreachable("n2", Unknown, &[]),
                unreachable("n3", Unknown, &[]),
            ],
            "progressing",
        );
        // Nothing anywhere, and every node known: not started yet.
        check(
            vec![
                reachable("n1", &[]),
                unreachable("n2", LastSeen, &[]),
                reachable("n3", &[]),
            ],
            "progressing",
        );
        check(
            vec![
                reachable("n1", &[0]),
                reachable("n2", &[1]),
                reachable("n3", &[]),
            ],
            "complete",
        );
    }

    /// Issue 12 (review): a node never reached showed `CONTAINERS 0`, as
    /// if it ran nothing; its containers are unknown, and a node last seen
    /// shows what it ran then, saying so.
    #[test]
    fn a_node_never_reached_has_unknown_containers_not_zero() {
        let (desired, _) = load(&[SourceFile::new("web.yaml", "replicas: 2")]);
        let reachable = |name: &str, slots: &[u32]| {
            node_running(&desired, name, Reachability::Reachable, slots)
        };
        let unreachable = |name: &str, contents, slots: &[u32]| {
            let down = Reachability::Unreachable {
                since: at(0),
                reason: "connection refused".into(),
                contents,
            };
            node_running(&desired, name, down, slots)
        };
        let observed = ObservedCluster {
            nodes: [
                reachable("n1", &[0]),
                unreachable("n2", crate::cluster::Contents::LastSeen, &[1]),
                unreachable("n3", crate::cluster::Contents::Unknown, &[]),
            ]
            .into_iter()
            .map(|node| (node.name.clone(), node))
            .collect(),
        };
        let report = build(&desired, None, &observed, at(5));
        let unknown: Vec<bool> = report.nodes.iter().map(|n| n.containers_unknown).collect();
        assert_eq!(unknown, [false, false, true]);
        let text = report.to_string();
        let row = |node: &str| {
            let line = text.lines().find(|l| l.starts_with(node)).unwrap();
            line.trim_end().to_string()
        };
        assert!(row("n1").ends_with(" 1"), "{text}");
        assert!(row("n2").ends_with(" 1 (last seen)"), "{text}");
        assert!(row("n3").ends_with(" unknown"), "{text}");
    }

    #[test]
    fn a_rollout_is_complete_only_once_every_replica_is_available() {
        let (mut desired, _) = load(&[SourceFile {
            path: "web.yaml".into(),
            text: "replicas: 2".into(),
            excluded: Vec::new(),
        }]);
        desired.workloads[0].spec.min_ready_seconds = 10;
        let mut observed = ObservedCluster::default();
        observed.nodes.insert(
            "n1".into(),
            ObservedNode {
                name: "n1".into(),
                reachability: Reachability::Reachable,
                facts: None,
                containers: vec![
                    container(&desired, "n1", 0, ContainerState::Running, None),
                    container(&desired, "n1", 1, ContainerState::Running, None),
                ],
                volumes: Vec::new(),
            },
        );
        let summary = |desired: &DesiredState, observed: &ObservedCluster, now| {
            let report = build(desired, None, observed, now);
            let o = &report.objects[0];
            (
                o.ready_replicas,
                o.available_replicas,
                o.rollout.clone(),
                report
                    .replicas
                    .iter()
                    .map(|r| r.available)
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            summary(&desired, &observed, at(5)),
            (2, 0, "progressing".into(), vec![false, false])
        );
        assert_eq!(
            summary(&desired, &observed, at(10)),
            (2, 2, "complete".into(), vec![true, true])
        );

        // With a readiness probe, minReadySeconds counts from readiness.
        desired.workloads[0].spec.template.spec.containers[0].readiness_probe =
            Some(crate::manifest::model::Probe {
                handler: crate::manifest::model::ProbeHandler::TcpSocket {
                    port: crate::manifest::model::PortRef::Number(80),
                },
                initial_delay_seconds: 0,
                period_seconds: 10,
                timeout_seconds: 1,
                success_threshold: 1,
                failure_threshold: 3,
            });
        let hash = template_hash(&desired.workloads[0].spec.template);
        for c in &mut observed.nodes.get_mut("n1").unwrap().containers {
            c.labels.template_hash = hash.clone();
            c.probe_ready = Some(true);
            c.ready_since = Some(at(20));
        }
        assert_eq!(
            summary(&desired, &observed, at(25)),
            (2, 0, "progressing".into(), vec![false, false])
        );
        assert_eq!(
            summary(&desired, &observed, at(30)),
            (2, 2, "complete".into(), vec![true, true])
        );
    }
}
