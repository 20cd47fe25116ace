//! From Docker's answers to the observed model: an inspected container to an
//! [`ObservedContainer`], its port bindings, Docker's timestamps. Pure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum};

use crate::cluster::{ContainerState, Health, ManagedLabels, ObservedContainer, PublishedPort};
use crate::manifest::model::Protocol;

/// Why an inspected container labelled managed is not observed: the
/// listing skips it with a warning (it cannot be placed in the model).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Undecodable {
    #[error("Docker reported no configuration for it")]
    NoConfig,
    #[error("its labels do not decode: {0}")]
    Labels(String),
}

/// Decodes an inspected container into the observed model.
///
/// A state the observed model has no word for (`stopping`, which newer
/// daemons report, an empty one, or none at all) is decoded as `Exited` with
/// the exit code Docker reports: the container
/// stays visible (in status, to pruning, to its slot, so it is never created
/// twice) and counts as not running, so it is never taken as ready. Skipping
/// it instead would hide a container that exists, and the planner would
/// then create its name again on every reconcile and never prune it.
pub(crate) fn observed_container(
    inspect: &ContainerInspectResponse,
) -> Result<ObservedContainer, Undecodable> {
    let config = inspect.config.as_ref().ok_or(Undecodable::NoConfig)?;
    let docker_labels = config.labels.clone().unwrap_or_default();
    let labels = ManagedLabels::from_docker_labels(&docker_labels)
        .map_err(|error| Undecodable::Labels(error.to_string()))?;
    let state = inspect.state.clone().unwrap_or_default();
    let container_state = match state.status {
        Some(ContainerStateStatusEnum::CREATED) => ContainerState::Created,
        Some(ContainerStateStatusEnum::RUNNING) => ContainerState::Running,
        Some(ContainerStateStatusEnum::RESTARTING) => ContainerState::Restarting,
        Some(ContainerStateStatusEnum::PAUSED) => ContainerState::Paused,
        Some(ContainerStateStatusEnum::REMOVING) => ContainerState::Removing,
        Some(ContainerStateStatusEnum::DEAD) => ContainerState::Dead,
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::STOPPING
            | ContainerStateStatusEnum::EMPTY,
        )
        | None => ContainerState::Exited {
            code: state.exit_code.unwrap_or(0),
        },
    };
    let health = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .and_then(|status| match status {
            HealthStatusEnum::STARTING => Some(Health::Starting),
            HealthStatusEnum::HEALTHY => Some(Health::Healthy),
            HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
            _ => None,
        });
    Ok(ObservedContainer {
        id: inspect.id.clone().unwrap_or_default(),
        name: inspect
            .name
            .as_deref()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        labels,
        state: container_state,
        health,
        restart_count: u32::try_from(inspect.restart_count.unwrap_or(0)).unwrap_or(0),
        started_at: state.started_at.as_deref().and_then(parse_docker_time),
        finished_at: state.finished_at.as_deref().and_then(parse_docker_time),
        // The reference the container was created with (the listing's
        // `Image` turns into an image id once the tag moves elsewhere).
        image: config.image.clone().unwrap_or_default(),
        ports: published_ports(inspect),
        probe_ready: None,
        ready_since: None,
        address: container_address(inspect),
        hooks: crate::cluster::Hooks::from_docker_labels(&docker_labels),
    })
}

/// The container's IPv4 address on the first of its networks that gives
/// one (sorted by network name, so the choice is stable).
fn container_address(inspect: &ContainerInspectResponse) -> Option<std::net::Ipv4Addr> {
    let networks = inspect.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names.into_iter().find_map(|name| {
        networks[name]
            .ip_address
            .as_deref()
            .and_then(|ip| ip.parse().ok())
    })
}

/// The ports an inspected container publishes on its node: Docker's live
/// bindings (`NetworkSettings.Ports`) while it runs, else the bindings its
/// host config asks for. Sorted, without duplicates; a port exposed but not
/// bound is not published.
pub(crate) fn published_ports(inspect: &ContainerInspectResponse) -> Vec<PublishedPort> {
    let live = inspect
        .network_settings
        .as_ref()
        .and_then(|settings| settings.ports.as_ref())
        .map(decode_port_map)
        .unwrap_or_default();
    let mut ports = if live.is_empty() {
        inspect
            .host_config
            .as_ref()
            .and_then(|host| host.port_bindings.as_ref())
            .map(decode_port_map)
            .unwrap_or_default()
    } else {
        live
    };
    ports.sort();
    ports.dedup();
    ports
}

/// `{"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}`; entries
/// without a numeric host port (not bound, or left for Docker to pick and
/// not picked yet) are left out.
fn decode_port_map(map: &bollard::models::PortMap) -> Vec<PublishedPort> {
    let mut ports = Vec::new();
    for (key, bindings) in map {
        let (port, protocol) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let Ok(container_port) = port.parse::<u16>() else {
            continue;
        };
        let protocol = match protocol {
            "udp" => Protocol::UDP,
            "sctp" => Protocol::SCTP,
            _ => Protocol::TCP,
        };
        for binding in bindings.iter().flatten() {
            let Some(host_port) = binding
                .host_port
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            ports.push(PublishedPort {
                container_port,
                protocol,
                host_ip: binding.host_ip.clone().unwrap_or_default(),
                host_port,
            });
        }
    }
    ports
}

/// Docker's RFC 3339 timestamps (`2026-11-23T01:07:58.768455802Z`, or with
/// a UTC offset, `2026-11-23T02:07:58.5+01:00`); its zero time
/// (`0001-01-01T00:00:00Z`, "never") and anything before 1970 is `None`.
pub(crate) fn parse_docker_time(text: &str) -> Option<SystemTime> {
    let (date, rest) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let (clock, offset_seconds) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, 0)
    } else {
        let split = rest.rfind(['+', '-'])?;
        let (clock, offset) = rest.split_at(split);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        (
            clock,
            sign * (hours.parse::<i64>().ok()? * 3600 + minutes.parse::<i64>().ok()? * 60),
        )
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms_parts = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms_parts.next()??, hms_parts.next()??, hms_parts.next()??);
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().take(9).collect();
        let scale = 10u32.pow(9 - u32::try_from(digits.len()).ok()?);
        digits.parse::<u32>().ok()? * scale
    };
    let days = crate::reconcile::time::days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bollard::models::{
        ContainerConfig, ContainerState as DockerState, HostConfig, NetworkSettings, PortBinding,
        PortMap,
    };

    use super::*;
    use crate::manifest::model::Kind;

    fn labels() -> ManagedLabels {
        ManagedLabels {
            namespace: "default".into(),
            kind: Kind::Deployment,
            name: "web".into(),
            slot: 0,
            template_hash: "0123456789".into(),
            commit: "c0ffee".into(),
            node: "n1".into(),
            container: "app".into(),
            role: Default::default(),
        }
    }

    fn inspected(
        status: Option<ContainerStateStatusEnum>,
        exit_code: i64,
    ) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("abc".into()),
            name: Some(format!("/{}", labels().container_name())),
            config: Some(ContainerConfig {
                image: Some("flotilla-test:1".into()),
                labels: Some(labels().to_docker_labels().into_iter().collect()),
                ..ContainerConfig::default()
            }),
            state: Some(DockerState {
                status,
                exit_code: Some(exit_code),
                started_at: Some("2026-11-23T01:07:58.768455802Z".into()),
                finished_at: Some("0001-01-01T00:00:00Z".into()),
                ..DockerState::default()
            }),
            ..ContainerInspectResponse::default()
        }
    }

    #[test]
    fn an_inspected_container_decodes_into_the_observed_model() {
        let observed = observed_container(&inspected(Some(ContainerStateStatusEnum::RUNNING), 0))
            .expect("decodes");
        assert_eq!(observed.name, labels().container_name());
        assert_eq!(observed.labels, labels());
        assert_eq!(observed.state, ContainerState::Running);
        assert_eq!(observed.image, "flotilla-test:1");
        assert_eq!(
            observed.started_at,
            Some(UNIX_EPOCH + Duration::new(1_795_396_078, 768_455_802))
        );
        assert_eq!(observed.finished_at, None, "Docker's zero time is never");
    }

    /// The two seams this runtime replaced disagreed: one decoded a state it
    /// did not know as `Exited`, the other skipped the container. It is
    /// `Exited` with Docker's exit code: visible, and never running.
    #[test]
    fn an_unknown_state_is_exited_with_dockers_exit_code() {
        for (status, code, expected) in [
            (
                Some(ContainerStateStatusEnum::EXITED),
                3,
                ContainerState::Exited { code: 3 },
            ),
            (
                Some(ContainerStateStatusEnum::EMPTY),
                0,
                ContainerState::Exited { code: 0 },
            ),
            (None, 137, ContainerState::Exited { code: 137 }),
            (
                Some(ContainerStateStatusEnum::STOPPING),
                0,
                ContainerState::Exited { code: 0 },
            ),
            (
                Some(ContainerStateStatusEnum::DEAD),
                1,
                ContainerState::Dead,
            ),
        ] {
            let observed = observed_container(&inspected(status, code)).expect("decodes");
            assert_eq!(observed.state, expected, "{status:?}");
        }
        let mut no_state = inspected(None, 0);
        no_state.state = None;
        assert_eq!(
            observed_container(&no_state).map(|c| c.state),
            Ok(ContainerState::Exited { code: 0 })
        );
    }

    #[test]
    fn a_container_that_cannot_be_placed_in_the_model_is_undecodable() {
        let mut no_config = inspected(Some(ContainerStateStatusEnum::RUNNING), 0);
        no_config.config = None;
        assert_eq!(
            observed_container(&no_config).map(|c| c.name),
            Err(Undecodable::NoConfig)
        );
        let mut bad_labels = inspected(Some(ContainerStateStatusEnum::RUNNING), 0);
        bad_labels.config = Some(ContainerConfig {
            labels: Some(HashMap::from([(
                crate::cluster::MANAGED_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..ContainerConfig::default()
        });
        assert!(matches!(
            observed_container(&bad_labels),
            Err(Undecodable::Labels(_))
        ));
    }

    #[test]
    fn published_ports_prefer_live_bindings_then_the_host_config() {
        let binding = |ip: &str, port: &str| PortBinding {
            host_ip: Some(ip.to_string()),
            host_port: Some(port.to_string()),
        };
        let live: PortMap = HashMap::from([
            (
                "8080/tcp".to_string(),
                Some(vec![binding("::", "18080"), binding("0.0.0.0", "18080")]),
            ),
            (
                "53/udp".to_string(),
                Some(vec![binding("10.0.0.1", "5353")]),
            ),
            // Exposed, not published.
            ("9000/tcp".to_string(), None),
        ]);
        let requested: PortMap = HashMap::from([(
            "8080/tcp".to_string(),
            Some(vec![PortBinding {
                host_ip: None,
                host_port: Some("18080".into()),
            }]),
        )]);
        let port = |container_port, protocol, host_ip: &str, host_port| PublishedPort {
            container_port,
            protocol,
            host_ip: host_ip.to_string(),
            host_port,
        };
        let running = ContainerInspectResponse {
            network_settings: Some(NetworkSettings {
                ports: Some(live),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings: Some(requested.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            published_ports(&running),
            [
                port(53, Protocol::UDP, "10.0.0.1", 5353),
                port(8080, Protocol::TCP, "0.0.0.0", 18080),
                port(8080, Protocol::TCP, "::", 18080),
            ]
        );
        assert_eq!(
            published_ports(&running)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "10.0.0.1:5353->53/udp",
                "0.0.0.0:18080->8080/tcp",
                "[::]:18080->8080/tcp"
            ]
        );
        let stopped = ContainerInspectResponse {
            host_config: Some(HostConfig {
                port_bindings: Some(requested),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            published_ports(&stopped),
            [port(8080, Protocol::TCP, "", 18080)]
        );
        assert_eq!(published_ports(&ContainerInspectResponse::default()), []);
    }

    /// The two seams this runtime replaced had a parser each; the leader's
    /// read `+01:00` as UTC.
    #[test]
    fn docker_times() {
        let check = |text: &str, expected: Option<(u64, u32)>| {
            assert_eq!(
                parse_docker_time(text),
                expected.map(|(s, n)| UNIX_EPOCH + Duration::new(s, n)),
                "{text}"
            );
        };
        check("1970-01-01T00:00:00Z", Some((0, 0)));
        check(
            "2026-11-23T01:07:58.768455802Z",
            Some((1_795_396_078, 768_455_802)),
        );
        check("2026-11-23T01:02:03.5Z", Some((1_795_395_723, 500_000_000)));
        check(
            "2026-11-23T02:07:58.5+01:00",
            Some((1_795_396_078, 500_000_000)),
        );
        check(
            "2026-11-22T20:37:58.5-04:30",
            Some((1_795_396_078, 500_000_000)),
        );
        check("2000-02-29T12:00:00Z", Some((951_825_600, 0)));
        check("2000-02-29T00:00:00.000000001Z", Some((951_782_400, 1)));
        check("0001-01-01T00:00:00Z", None);
        check("garbage", None);
    }
}
