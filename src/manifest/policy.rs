//! What a push may ask of the hosts, in two layers (docs/security.md):
//!
//! - the repository's own rules, in the `Cluster` object
//!   (`spec.policy.hostPorts`, `spec.policy.allowedHostPaths`), checked by
//!   [`super::load`] with the rest of the manifests; a push can change them,
//!   so they guard against mistakes, not against the pusher;
//! - the leader host operator's, [`OperatorPolicy`], set outside the
//!   repository (git config `flotilla.*` of the leader's repository, which
//!   no push can change) and checked by [`check_operator_policy`]: running
//!   containers on the leader's own Docker (`transport: local`), host ports
//!   outside the allowed ranges, host paths outside the allowed prefixes,
//!   shipping the leader's images.
//!
//! Pure: the shell reads the settings and hands them in.

use std::fmt;

use super::diagnostic::Diagnostic;
use super::model::{AllowedHostPath, DesiredState, Transport, VolumeSource, Workload};
use super::names;

/// The host ports a push may publish when the operator has not said
/// otherwise: HTTP and HTTPS, and every unprivileged port. The other
/// privileged ports (22 for SSH, 25, 53, ...) belong to the node's own
/// services, which a container bound there would stand in for.
pub(crate) const DEFAULT_HOST_PORTS: &str = "80,443,1024-65535";

/// Port ranges, written `80,443,1024-65535` (git config) or as a list of
/// `{min, max}` (a Cluster object, like Kubernetes' PodSecurityPolicy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRanges(Vec<(u16, u16)>);

impl PortRanges {
    pub fn new(ranges: Vec<(u16, u16)>) -> Self {
        PortRanges(ranges)
    }

    /// `80,443,1024-65535`: ports and inclusive ranges, comma-separated;
    /// an empty text allows no port.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() && !text.trim().is_empty() {
                return Err(format!("empty item in `{text}`"));
            }
            if item.is_empty() {
                continue;
            }
            let port = |p: &str| -> Result<u16, String> {
                match p.trim().parse::<u16>() {
                    Ok(port) if port > 0 => Ok(port),
                    _ => Err(format!("`{p}` is not a port (1-65535)")),
                }
            };
            let (min, max) = match item.split_once('-') {
                Some((min, max)) => (port(min)?, port(max)?),
                None => (port(item)?, port(item)?),
            };
            if min > max {
                return Err(format!("range `{item}` ends before it starts"));
            }
            ranges.push((min, max));
        }
        Ok(PortRanges(ranges))
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0
            .iter()
            .any(|(min, max)| (*min..=*max).contains(&port))
    }
}

impl serde::Serialize for PortRanges {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for PortRanges {
    /// `80,443,1024-65535`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (min, max)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if min == max {
                write!(f, "{min}")?;
            } else {
                write!(f, "{min}-{max}")?;
            }
        }
        Ok(())
    }
}

/// The leader host operator's settings: git config `flotilla.*` in the
/// leader's repository. The default is the restrictive one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorPolicy {
    /// `flotilla.allowLocalTransport` (false): whether a Node may use
    /// `transport: local`, which runs containers on the leader host's own
    /// Docker.
    pub allow_local_transport: bool,
    /// `flotilla.hostPorts` ([`DEFAULT_HOST_PORTS`]): the host ports a pod
    /// may publish.
    pub host_ports: PortRanges,
    /// `flotilla.shipImages` (none): patterns of the images the leader may
    /// ship from its own Docker to a node that cannot pull them; `*`
    /// matches any run of characters (`registry.example/team/*`, `*`).
    pub ship_images: Vec<String>,
    /// `flotilla.hostPaths` (unset: no limit of the operator's, the
    /// repository's `spec.policy.allowedHostPaths` alone decides): the host
    /// directories a `hostPath` volume may be under, whatever the
    /// repository allows. Empty: none.
    pub host_paths: Option<Vec<String>>,
}

impl Default for OperatorPolicy {
    fn default() -> Self {
        OperatorPolicy {
            allow_local_transport: false,
            host_ports: PortRanges::parse(DEFAULT_HOST_PORTS).expect("the default parses"),
            ship_images: Vec::new(),
            host_paths: None,
        }
    }
}

/// `/srv/data,/var/log`: absolute, normalized path prefixes,
/// comma-separated; an empty text allows no path.
pub(crate) fn parse_host_paths(text: &str) -> Result<Vec<String>, String> {
    let mut prefixes = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(format!("empty item in `{text}`"));
        }
        names::host_path(item).map_err(|reason| format!("`{item}` {reason}"))?;
        prefixes.push(item.to_string());
    }
    Ok(prefixes)
}

impl OperatorPolicy {
    /// Everything allowed: for tests and tools that check a repository's
    /// own rules only.
    pub fn permissive() -> Self {
        OperatorPolicy {
            allow_local_transport: true,
            host_ports: PortRanges(vec![(1, 65535)]),
            ship_images: vec!["*".to_string()],
            host_paths: None,
        }
    }

    /// Whether the leader may ship `image` from its own Docker.
    pub fn may_ship(&self, image: &str) -> bool {
        self.ship_images
            .iter()
            .any(|pattern| glob_matches(pattern, image))
    }
}

/// `*` matches any run of characters (`/` included); everything else
/// matches itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Host ports the node proxies need on every node where they run: a pod
/// publishing one of them would never start (Docker refuses the bind), or
/// would keep the proxy from taking its table. Each an error at the field.
pub(crate) fn check_proxy_ports(state: &DesiredState) -> Vec<Diagnostic> {
    if state.services.is_empty() {
        return Vec::new();
    }
    let mut taken: Vec<(u16, String)> = vec![(
        crate::proxy::table::TUNNEL_PORT,
        "the node proxies' tunnel between nodes".to_string(),
    )];
    if !state.ingresses.is_empty() {
        taken.push((80, "the node proxies' Ingress listener".to_string()));
    }
    if state
        .ingresses
        .iter()
        .any(|ingress| !ingress.tls.is_empty())
    {
        taken.push((443, "the node proxies' Ingress HTTPS listener".to_string()));
    }
    for service in &state.services {
        for port in &service.ports {
            if let Some(node_port) = port.node_port {
                taken.push((
                    node_port,
                    format!(
                        "Service {}/{}'s node port",
                        service.meta.namespace, service.meta.name
                    ),
                ));
            }
        }
    }
    let mut diagnostics = Vec::new();
    for workload in &state.workloads {
        for (path, port) in host_port_fields(&workload.spec.template.spec) {
            let Some((_, owner)) = taken.iter().find(|(taken, _)| *taken == port) else {
                continue;
            };
            diagnostics.push(
                Diagnostic::error(
                    format!("hostPort {port} is taken on every node by {owner}"),
                    workload.meta.field_location(&path),
                )
                .with_object(workload.key().to_string())
                .with_field_path(path)
                .with_hint("publish another host port, or reach the pods through a Service"),
            );
        }
    }
    diagnostics
}

/// Every use `state` makes of what the operator has not allowed, each an
/// error at the field that declares it, saying which setting to change.
pub fn check_operator_policy(state: &DesiredState, policy: &OperatorPolicy) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    if !policy.allow_local_transport {
        for node in &state.nodes {
            if node.spec.transport != Transport::Local {
                continue;
            }
            let path = "spec.transport";
            diagnostics.push(
                Diagnostic::error(
                    "`transport: local` runs containers on the leader host's own Docker, \
                     which the leader's operator has not allowed",
                    node.meta.field_location(path),
                )
                .with_object(node.key().to_string())
                .with_field_path(path)
                .with_hint(
                    "use `transport: ssh`, or let the leader host's operator allow it with \
                     `git config flotilla.allowLocalTransport true` in the leader's repository",
                ),
            );
        }
    }
    for workload in &state.workloads {
        for (path, port) in host_port_fields(&workload.spec.template.spec) {
            if policy.host_ports.contains(port) {
                continue;
            }
            diagnostics.push(
                Diagnostic::error(
                    format!(
                        "hostPort {port} is outside the host ports the leader's operator allows ({})",
                        policy.host_ports
                    ),
                    workload.meta.field_location(&path),
                )
                .with_object(workload.key().to_string())
                .with_field_path(path)
                .with_hint(format!(
                    "use another port, or let the leader host's operator allow it with \
                     `git config flotilla.hostPorts {}` in the leader's repository",
                    widened(&policy.host_ports, port)
                )),
            );
        }
    }
    if let Some(prefixes) = &policy.host_paths {
        for workload in &state.workloads {
            for (path, host_path, _) in host_path_fields(workload) {
                if prefixes
                    .iter()
                    .any(|p| names::host_path_under(host_path, p))
                {
                    continue;
                }
                let allowed = if prefixes.is_empty() {
                    "none".to_string()
                } else {
                    prefixes.join(",")
                };
                let mut wider = prefixes.clone();
                wider.push(host_path.to_string());
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "hostPath `{host_path}` is outside the host paths the leader's operator allows ({allowed})"
                        ),
                        workload.meta.field_location(&path),
                    )
                    .with_object(workload.key().to_string())
                    .with_field_path(path)
                    .with_hint(format!(
                        "use a volume instead, or let the leader host's operator allow it with \
                         `git config flotilla.hostPaths {}` in the leader's repository",
                        wider.join(",")
                    )),
                );
            }
        }
    }
    diagnostics
}

/// Each `hostPath` volume of a workload's pod with the field path of its
/// `path`.
/// Each `hostPath` volume of the pod: its path's field path, the host path
/// and the volume's name.
fn host_path_fields(workload: &Workload) -> Vec<(String, &str, &str)> {
    workload
        .spec
        .template
        .spec
        .volumes
        .iter()
        .enumerate()
        .filter_map(|(i, volume)| match &volume.source {
            VolumeSource::HostPath(host) => Some((
                format!("spec.template.spec.volumes[{i}].hostPath.path"),
                host.path.as_str(),
                volume.name.as_str(),
            )),
            _ => None,
        })
        .collect()
}

/// The entry of `allowed` that lets `path` be mounted, PodSecurityPolicy's
/// way: one that allows writing wins over a read-only one.
fn allowing_entry<'a>(allowed: &'a [AllowedHostPath], path: &str) -> Option<&'a AllowedHostPath> {
    let matching = allowed
        .iter()
        .filter(|entry| names::host_path_under(path, &entry.path_prefix));
    matching.min_by_key(|entry| entry.read_only)
}

/// The repository's `spec.policy.allowedHostPaths`: a `hostPath` volume
/// outside it is an error at its path; under a read-only entry, each mount
/// of it that is not `readOnly` is an error at the mount.
fn check_host_paths(state: &DesiredState) -> Vec<Diagnostic> {
    let allowed = &state.cluster.policy.allowed_host_paths;
    let mut diagnostics = Vec::new();
    for workload in &state.workloads {
        let object = workload.key().to_string();
        let pod = &workload.spec.template.spec;
        for (path, host_path, volume_name) in host_path_fields(workload) {
            let Some(entry) = allowing_entry(allowed, host_path) else {
                diagnostics.push(
                    Diagnostic::error(
                        format!(
                            "hostPath `{host_path}` is not allowed: hostPath volumes are off unless \
                             the Cluster object's spec.policy.allowedHostPaths allows the path"
                        ),
                        workload.meta.field_location(&path),
                    )
                    .with_object(object.clone())
                    .with_field_path(path)
                    .with_hint(format!(
                        "a host mount is a way out of the container; if this pod may have it, add to \
                         the Cluster object `spec: {{policy: {{allowedHostPaths: [{{pathPrefix: {host_path}, readOnly: true}}]}}}}` \
                         (readOnly: false to let it write)"
                    )),
                );
                continue;
            };
            if !entry.read_only {
                continue;
            }
            // Every volume is checked on its own: two volumes of one path
            // are two mounts of it.
            for (c, container) in pod.containers_with_fields() {
                for (m, mount) in container.volume_mounts.iter().enumerate() {
                    if mount.name != volume_name || mount.read_only {
                        continue;
                    }
                    let mount_path = format!("spec.template.spec.{c}.volumeMounts[{m}]");
                    let read_only_path = format!("{mount_path}.readOnly");
                    let at = match workload.meta.field_sources.get(&read_only_path) {
                        Some(at) => at.clone(),
                        None => workload.meta.field_location(&mount_path),
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            format!(
                                "hostPath `{host_path}` may only be mounted read-only: \
                                 spec.policy.allowedHostPaths allows `{}` with readOnly: true",
                                entry.path_prefix
                            ),
                            at,
                        )
                        .with_object(object.clone())
                        .with_field_path(read_only_path)
                        .with_hint(
                            "mount it with `readOnly: true`, or set `readOnly: false` on the \
                             allowedHostPaths entry of the Cluster object",
                        ),
                    );
                }
            }
        }
    }
    diagnostics
}

/// The repository's own rules, `spec.policy` of its Cluster object: every
/// host port outside `hostPorts`, an error at the port; every host path
/// outside `allowedHostPaths` (none by default), an error at the path.
pub(crate) fn check_cluster_policy(state: &DesiredState) -> Vec<Diagnostic> {
    let mut diagnostics = check_host_ports(state);
    diagnostics.extend(check_host_paths(state));
    diagnostics
}

fn check_host_ports(state: &DesiredState) -> Vec<Diagnostic> {
    let policy = &state.cluster.policy;
    let Some(allowed) = &policy.host_ports else {
        return Vec::new();
    };
    let declared_at = policy
        .host_ports_source
        .as_ref()
        .map(|at| format!(" (at {at})"))
        .unwrap_or_default();
    let mut diagnostics = Vec::new();
    for workload in &state.workloads {
        for (path, port) in host_port_fields(&workload.spec.template.spec) {
            if allowed.contains(port) {
                continue;
            }
            diagnostics.push(
                Diagnostic::error(
                    format!(
                        "hostPort {port} is outside the Cluster's spec.policy.hostPorts ({allowed})"
                    ),
                    workload.meta.field_location(&path),
                )
                .with_object(workload.key().to_string())
                .with_field_path(path)
                .with_hint(format!(
                    "use another port, or add it to `spec.policy.hostPorts` of the Cluster object{declared_at}"
                )),
            );
        }
    }
    diagnostics
}

/// Each published host port of a pod with its field path under the
/// workload (`spec.template.spec.containers[0].ports[1].hostPort`).
pub(crate) fn host_port_fields(spec: &super::model::PodSpec) -> Vec<(String, u16)> {
    let mut fields = Vec::new();
    for (c, container) in spec.containers_with_fields() {
        for (p, port) in container.ports.iter().enumerate() {
            if let Some(host_port) = port.host_port {
                fields.push((
                    format!("spec.template.spec.{c}.ports[{p}].hostPort"),
                    host_port,
                ));
            }
        }
    }
    fields
}

/// `ranges` with `port` added, for a hint.
fn widened(ranges: &PortRanges, port: u16) -> PortRanges {
    let mut wider = ranges.0.clone();
    wider.push((port, port));
    wider.sort_unstable();
    PortRanges(wider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        for (text, expected) in [
            ("80,443,1024-65535", Ok("80,443,1024-65535")),
            (" 22 , 8000-8999 ", Ok("22,8000-8999")),
            ("", Ok("none")),
            ("0", Err("`0` is not a port (1-65535)")),
            ("70000", Err("`70000` is not a port (1-65535)")),
            ("http", Err("`http` is not a port (1-65535)")),
            ("9000-8000", Err("range `9000-8000` ends before it starts")),
            ("80,,443", Err("empty item in `80,,443`")),
        ] {
            let parsed = PortRanges::parse(text).map(|r| r.to_string());
            assert_eq!(
                parsed,
                expected.map(String::from).map_err(String::from),
                "{text:?}"
            );
        }
        let default = PortRanges::parse(DEFAULT_HOST_PORTS).unwrap();
        for (port, allowed) in [
            (22, false),
            (25, false),
            (79, false),
            (80, true),
            (443, true),
            (1023, false),
            (1024, true),
            (65535, true),
        ] {
            assert_eq!(default.contains(port), allowed, "{port}");
        }
    }

    #[test]
    fn image_patterns() {
        let policy = OperatorPolicy {
            ship_images: vec![
                "flotilla-test:*".into(),
                "registry.example/team/*".into(),
                "exact:1".into(),
            ],
            ..OperatorPolicy::default()
        };
        for (image, allowed) in [
            ("flotilla-test:1", true),
            ("flotilla-test", false),
            ("registry.example/team/app:2", true),
            ("registry.example/other/app:2", false),
            ("exact:1", true),
            ("exact:12", false),
            ("secret:1", false),
        ] {
            assert_eq!(policy.may_ship(image), allowed, "{image}");
        }
        assert!(!OperatorPolicy::default().may_ship("anything"));
        assert!(OperatorPolicy::permissive().may_ship("anything/at:all"));
        assert!(glob_matches("a*b*c", "a-x-b-y-c"));
        assert!(!glob_matches("a*b*c", "a-x-c-y-b"));
        assert!(glob_matches("*ab", "ab"));
        assert!(!glob_matches("ab*ab", "ab"));
    }

    /// A Deployment mounting `host_path` through `mounts`, with a Cluster
    /// object whose `spec.policy` is `policy` (none when empty).
    fn host_path_files(
        policy: &str,
        host_path: &str,
        mounts: &str,
    ) -> Vec<crate::manifest::SourceFile> {
        let mut files = vec![crate::manifest::SourceFile::new(
            "web.yaml",
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      volumes:\n      - name: host\n        hostPath: {{path: {host_path}}}\n      containers:\n      - name: web\n        image: nginx:1.25\n        volumeMounts:\n{mounts}"
            ),
        )];
        if !policy.is_empty() {
            files.push(crate::manifest::SourceFile::new(
                "cluster.yaml",
                format!("apiVersion: flotilla.dev/v1\nkind: Cluster\nmetadata: {{name: c}}\nspec:\n  policy:\n{policy}"),
            ));
        }
        files
    }

    fn loaded_errors(files: &[crate::manifest::SourceFile]) -> Vec<String> {
        crate::manifest::load(files)
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn host_paths_allowed_by_the_repository() {
        let writable = "        - {name: host, mountPath: /data}\n";
        let read_only = "        - {name: host, mountPath: /data, readOnly: true}\n";
        let allowed = "    allowedHostPaths:\n    - {pathPrefix: /srv/data}\n    - {pathPrefix: /var/log, readOnly: true}\n    - {pathPrefix: /var/log/app}\n";
        // (policy, path, mounts, errors)
        let cases = [
            (allowed, "/srv/data", writable, 0),
            (allowed, "/srv/data/db", writable, 0),
            (allowed, "/var/log/nginx", read_only, 0),
            // A writable entry wins over a read-only one (PodSecurityPolicy).
            (allowed, "/var/log/app/x", writable, 0),
            (allowed, "/srv/database", writable, 1),
            (allowed, "/var/log/nginx", writable, 1),
            ("", "/srv/data", read_only, 1),
        ];
        for (policy, path, mounts, count) in cases {
            let errors = loaded_errors(&host_path_files(policy, path, mounts));
            assert_eq!(errors.len(), count, "{path} {mounts}: {errors:#?}");
        }
        let mut errors = loaded_errors(&host_path_files("", "/srv/data", writable));
        errors.extend(loaded_errors(&host_path_files(
            allowed,
            "/var/log/nginx",
            "        - {name: host, mountPath: /a}\n        - {name: host, mountPath: /b, readOnly: false}\n",
        )));
        errors.extend(loaded_errors(&host_path_files(
            "    allowedHostPaths:\n    - {pathPrefix: srv}\n    - {pathPrefix: /srv/}\n    - {pathPrefix: /srv}\n    - {pathPrefix: /srv, readOnly: yes}\n    - {readOnly: true}\n",
            "/srv",
            writable,
        )));
        insta::assert_snapshot!(errors.join("\n\n"));
    }

    /// Review of issue 15: a second volume of the same read-only path,
    /// mounted writable, was not checked (only the first volume's mounts were).
    #[test]
    fn every_volume_of_a_read_only_path_is_checked() {
        let mut files = host_path_files(
            "    allowedHostPaths:\n    - {pathPrefix: /srv/ro, readOnly: true}\n",
            "/srv/ro",
            "        - {name: host, mountPath: /ro, readOnly: true}\n        - {name: again, mountPath: /rw}\n",
        );
        files[0].text = files[0].text.replace(
            "      containers:",
            "      - name: again\n        hostPath: {path: /srv/ro}\n      containers:",
        );
        let errors = loaded_errors(&files);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains("may only be mounted read-only"),
            "{errors:#?}"
        );
    }

    #[test]
    fn host_paths_allowed_by_the_operator() {
        let files = host_path_files(
            "    allowedHostPaths: [{pathPrefix: /}]\n",
            "/srv/data",
            "        - {name: host, mountPath: /data}\n",
        );
        let loaded = crate::manifest::load(&files);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        let with = |host_paths: Option<&str>| {
            let policy = OperatorPolicy {
                host_paths: host_paths.map(|text| parse_host_paths(text).unwrap()),
                ..OperatorPolicy::default()
            };
            check_operator_policy(&loaded.state, &policy)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        assert_eq!(with(None), Vec::<String>::new());
        assert_eq!(with(Some("/srv")), Vec::<String>::new());
        assert_eq!(with(Some("/var/lib, /srv/data")), Vec::<String>::new());
        assert_eq!(
            with(Some("/srv/dat")),
            ["error: hostPath `/srv/data` is outside the host paths the leader's operator allows (/srv/dat)\n  --> web.yaml:11:26 (Deployment default/web: spec.template.spec.volumes[0].hostPath.path)\n  = hint: use a volume instead, or let the leader host's operator allow it with `git config flotilla.hostPaths /srv/dat,/srv/data` in the leader's repository"]
        );
        assert_eq!(
            with(Some("")),
            ["error: hostPath `/srv/data` is outside the host paths the leader's operator allows (none)\n  --> web.yaml:11:26 (Deployment default/web: spec.template.spec.volumes[0].hostPath.path)\n  = hint: use a volume instead, or let the leader host's operator allow it with `git config flotilla.hostPaths /srv/data` in the leader's repository"]
        );
        for (text, expected) in [
            ("/srv,/var/log", Ok(vec!["/srv", "/var/log"])),
            ("", Ok(vec![])),
            ("srv", Err("`srv` must be absolute")),
            ("/srv,,/x", Err("empty item in `/srv,,/x`")),
        ] {
            let expected = expected
                .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
                .map_err(String::from);
            assert_eq!(parse_host_paths(text), expected, "{text:?}");
        }
    }
}
