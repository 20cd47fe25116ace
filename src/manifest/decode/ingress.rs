//! `Ingress` (`networking.k8s.io/v1`): HTTP routes by host and path to the
//! Services of the Ingress's namespace, checked as Kubernetes' API server
//! checks them, and the cross-object checks once every object is read (each
//! backend names a declared Service and one of its ports; no two routes
//! claim the same host and path).
//!
//! Its `tls` is `ingress_tls.rs`.
//!
//! An Ingress of another class (`spec.ingressClassName`, or the older
//! `kubernetes.io/ingress.class` annotation) belongs to another controller,
//! as in Kubernetes: it is left out with a warning, its spec unread.

use std::collections::BTreeMap;

use super::*;

const INGRESS_SPEC: Schema = Schema {
    known: &["ingressClassName", "defaultBackend", "rules", "tls"],
    unsupported: &[],
    ignored: &[],
    hints: &[(
        "backend",
        "networking.k8s.io/v1 calls it `defaultBackend`, with `service.name` and `service.port`",
    )],
};

const BACKEND: Schema = Schema {
    // `resource` is read to name it: flotilla routes to Services only.
    known: &["service", "resource"],
    unsupported: &[],
    ignored: &[],
    hints: &[
        (
            "serviceName",
            "networking.k8s.io/v1 writes `service: {name: NAME, port: {number: 80}}`",
        ),
        (
            "servicePort",
            "networking.k8s.io/v1 writes `service: {name: NAME, port: {number: 80}}`",
        ),
    ],
};

const SERVICE_BACKEND: Schema = Schema {
    known: &["name", "port"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const SERVICE_BACKEND_PORT: Schema = Schema {
    known: &["number", "name"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const RULE: Schema = Schema {
    known: &["host", "http"],
    unsupported: &[],
    ignored: &[],
    hints: &[("paths", "a rule's paths are in `http.paths`")],
};

const HTTP_RULE: Schema = Schema {
    known: &["paths"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

const HTTP_PATH: Schema = Schema {
    known: &["path", "pathType", "backend"],
    unsupported: &[],
    ignored: &[],
    hints: NO_HINTS,
};

/// The annotation that named an Ingress's class before `ingressClassName`.
const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// What Kubernetes refuses in an `Exact` or `Prefix` path.
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

/// Characters of the regular expressions other controllers read in
/// `ImplementationSpecific` paths; flotilla reads such a path as a prefix.
const PATTERN_CHARACTERS: &[char] = &[
    '*', '(', ')', '[', ']', '$', '^', '|', '?', '+', '{', '}', '\\',
];

/// One path's place in its Ingress, for the cross-object checks.
fn path_field(rule: usize, path: usize) -> String {
    format!("spec.rules[{rule}].http.paths[{path}]")
}

const DEFAULT_BACKEND_FIELD: &str = "spec.defaultBackend";

/// A Service's name: a DNS-1035 label (a DNS-1123 label that starts with a
/// letter), as Kubernetes requires.
fn service_name(name: &str) -> Result<(), String> {
    names::dns1123_label(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".to_string());
    }
    Ok(())
}

impl Decoder<'_> {
    /// The Ingress `node` (its `spec`) declares, unless it has another
    /// class (a warning) or errors.
    pub(super) fn ingress(&mut self, node: &Node, meta: ObjectMeta) -> Option<Ingress> {
        if let Some((class, from_annotation)) = self.other_ingress_class(node, &meta) {
            let location = if from_annotation {
                meta.source.clone()
            } else {
                self.at(node)
            };
            let field = if from_annotation {
                key_path("metadata.annotations", CLASS_ANNOTATION)
            } else {
                "spec.ingressClassName".to_string()
            };
            let file = self.file;
            let diagnostic = self.push(
                Diagnostic::warning(
                    format!(
                        "Ingress of class `{class}` is left to that class's controller: flotilla \
                         serves class `{INGRESS_CLASS}`"
                    ),
                    location,
                ),
                &field,
            );
            Self::hint(
                diagnostic,
                format!(
                    "to have flotilla serve it, set `spec.ingressClassName: {INGRESS_CLASS}` (or \
                     remove the class); to silence this warning, add the line `{}#Ingress/{}` to \
                     .flotillaignore",
                    file, meta.name
                ),
            );
            return None;
        }
        let path = "spec";
        let fields = self.fields(node, path, &INGRESS_SPEC)?;
        if let Some(class) = fields.get("ingressClassName") {
            // A string naming another class, or an invalid one, was
            // handled above: this is `flotilla`, or not a string.
            self.string(class, "spec.ingressClassName");
        }
        let mut tls = Vec::new();
        if let Some(tls_node) = fields.get("tls") {
            if let Some(items) = self.sequence(tls_node, ingress_tls::TLS_FIELD) {
                for (i, item) in items.iter().enumerate() {
                    if let Some(entry) = self.ingress_tls(item, i) {
                        tls.push(entry);
                    }
                }
            }
        }
        let default_backend = fields.get("defaultBackend").and_then(|backend| {
            self.record(DEFAULT_BACKEND_FIELD, backend);
            self.ingress_backend(backend, DEFAULT_BACKEND_FIELD)
        });
        let mut rules = Vec::new();
        if let Some(rules_node) = fields.get("rules") {
            if let Some(items) = self.sequence(rules_node, "spec.rules") {
                for (i, item) in items.iter().enumerate() {
                    if let Some(rule) = self.ingress_rule(item, i) {
                        rules.push(rule);
                    }
                }
            }
        }
        if fields.get("defaultBackend").is_none() && fields.get("rules").is_none() {
            let diagnostic = self.error(node, path, "an Ingress needs `defaultBackend` or `rules`");
            Self::hint(
                diagnostic,
                "route hosts and paths with `rules`, or everything to one Service with \
                 `defaultBackend`",
            );
        }
        let meta = ObjectMeta {
            field_sources: std::mem::take(&mut self.field_sources),
            ..meta
        };
        Some(Ingress {
            meta,
            default_backend,
            rules,
            tls,
        })
    }

    /// The class of an Ingress that is not flotilla's: `spec.ingressClassName`
    /// or, without it, the `kubernetes.io/ingress.class` annotation. Both
    /// given and different is an error (Kubernetes refuses it too). With
    /// whether it came from the annotation.
    fn other_ingress_class(&mut self, spec: &Node, meta: &ObjectMeta) -> Option<(String, bool)> {
        let class_node = match &spec.value {
            Value::Mapping(entries) => entries
                .iter()
                .find(|e| {
                    e.key
                        .as_scalar()
                        .is_some_and(|k| k.text == "ingressClassName")
                })
                .map(|e| &e.value),
            _ => None,
        };
        // Read leniently: a class that is not a string is reported with
        // the other fields.
        let class = class_node.and_then(|node| match &node.value {
            Value::Scalar(s) if s.plain_type() == PlainType::String => Some((s.text.clone(), node)),
            _ => None,
        });
        let annotation = meta.annotations.get(CLASS_ANNOTATION);
        match (class, annotation) {
            (Some((class, node)), Some(annotation)) if class != *annotation => {
                let diagnostic = self.error(
                    node,
                    "spec.ingressClassName",
                    format!(
                        "`ingressClassName` is `{class}` but the annotation `{CLASS_ANNOTATION}` \
                         is `{annotation}`"
                    ),
                );
                Self::hint(
                    diagnostic,
                    format!(
                        "keep `ingressClassName` and remove the annotation `{CLASS_ANNOTATION}`"
                    ),
                );
                None
            }
            (Some((class, node)), _) if class != INGRESS_CLASS => {
                // An invalid name is an error, not another controller's class.
                self.checked_name(
                    node,
                    "spec.ingressClassName",
                    "ingress class name",
                    names::dns1123_subdomain,
                )
                .map(|class| (class, false))
            }
            (None, Some(annotation)) if annotation != INGRESS_CLASS => {
                Some((annotation.clone(), true))
            }
            _ => None,
        }
    }

    /// Remembers where the field at `path` is, for the cross-object checks.
    pub(super) fn record(&mut self, path: &str, node: &Node) {
        let at = self.at(node);
        self.field_sources.insert(path.to_string(), at);
    }

    fn ingress_rule(&mut self, node: &Node, i: usize) -> Option<IngressRule> {
        let path = index("spec.rules", i);
        let fields = self.fields(node, &path, &RULE)?;
        // An invalid host (reported) leaves the rule out, after its paths
        // are checked.
        let checked_host = fields
            .get("host")
            .map(|host| self.ingress_host(host, &join(&path, "host")));
        let host = checked_host.clone().flatten();
        let mut paths = Vec::new();
        match fields.get("http") {
            Some(http) => {
                let http_path = join(&path, "http");
                let http_fields = self.fields(http, &http_path, &HTTP_RULE)?;
                let items = self.required(&http_fields, http, &http_path, "paths")?;
                let paths_path = join(&http_path, "paths");
                let items = self.sequence(items, &paths_path)?;
                if items.is_empty() {
                    self.error(http, &paths_path, "`paths` must not be empty");
                }
                for (j, item) in items.iter().enumerate() {
                    if let Some(ingress_path) = self.ingress_path(item, i, j) {
                        paths.push(ingress_path);
                    }
                }
            }
            // An invalid host (reported) says nothing of what the rule routes.
            None if checked_host.as_ref().is_some_and(Option::is_none) => {}
            None => {
                let which = match &host {
                    Some(host) => format!("the rule for host `{host}`"),
                    None => "a rule without a host".to_string(),
                };
                let diagnostic = self.warning(
                    node,
                    &path,
                    format!("{which} has no `http` paths: it routes nothing"),
                );
                Self::hint(
                    diagnostic,
                    "its requests go to the other rules or the default backend; add \
                     `http.paths`, or remove the rule",
                );
            }
        }
        if checked_host.is_some_and(|host| host.is_none()) {
            return None;
        }
        Some(IngressRule { host, paths })
    }

    /// A rule's `host`: a DNS name, or `*.` and one, as Kubernetes checks.
    pub(super) fn ingress_host(&mut self, node: &Node, path: &str) -> Option<IngressHost> {
        let host = self.string(node, path)?;
        // `core::net`: the address types alone, no sockets.
        if host.parse::<core::net::IpAddr>().is_ok() {
            let diagnostic = self.error(
                node,
                path,
                format!("invalid host `{host}`: must be a DNS name, not an IP address"),
            );
            Self::hint(
                diagnostic,
                "leave `host` out to route requests for every host (and address)",
            );
            return None;
        }
        let (suffix, wildcard) = match host.strip_prefix("*.") {
            Some(suffix) => (suffix, true),
            None => (host.as_str(), false),
        };
        let checked = if suffix.contains('*') {
            Err(
                "a wildcard `*` may only be the whole first label, as in `*.example.com`"
                    .to_string(),
            )
        } else {
            names::dns1123_subdomain(suffix)
        };
        if let Err(reason) = checked {
            let diagnostic = self.error(node, path, format!("invalid host `{host}`: {reason}"));
            if host.contains(':') {
                Self::hint(
                    diagnostic,
                    "a host has no port: Ingresses are served on ports 80 and 443",
                );
            }
            return None;
        }
        Some(if wildcard {
            IngressHost::Wildcard(suffix.to_string())
        } else {
            IngressHost::Exact(host)
        })
    }

    fn ingress_path(&mut self, node: &Node, rule: usize, i: usize) -> Option<IngressPath> {
        let path = path_field(rule, i);
        self.record(&path, node);
        let fields = self.fields(node, &path, &HTTP_PATH)?;
        let type_node = fields.get("pathType");
        if type_node.is_none() {
            let diagnostic = self.error(node, &join(&path, "pathType"), "missing field `pathType`");
            Self::hint(
                diagnostic,
                "`Prefix` matches the path and every path under it, `Exact` the path alone",
            );
        }
        // ImplementationSpecific is the controller's to define: flotilla's
        // is Prefix.
        let path_type = type_node.and_then(|t| {
            self.enumeration(
                t,
                &join(&path, "pathType"),
                &[
                    ("Prefix", (PathType::Prefix, false)),
                    ("Exact", (PathType::Exact, false)),
                    ("ImplementationSpecific", (PathType::Prefix, true)),
                ],
            )
        });
        let implementation_specific = path_type.is_some_and(|(_, specific)| specific);
        let request_path = match fields.get("path") {
            Some(value) => self.request_path(value, &join(&path, "path"), implementation_specific),
            // Kubernetes allows no path only for ImplementationSpecific.
            None if implementation_specific => Some("/".to_string()),
            None if path_type.is_some() => {
                let diagnostic = self.error(node, &join(&path, "path"), "missing field `path`");
                Self::hint(diagnostic, "a `Prefix` or `Exact` path starts with `/`");
                None
            }
            // Without a valid `pathType` (reported) the path cannot be read.
            None => None,
        };
        let backend = match self.required(&fields, node, &path, "backend") {
            Some(backend) => {
                let backend_path = join(&path, "backend");
                self.record(&backend_path, backend);
                self.ingress_backend(backend, &backend_path)
            }
            None => None,
        };
        Some(IngressPath {
            path: request_path?,
            path_type: path_type?.0,
            backend: backend?,
        })
    }

    fn request_path(
        &mut self,
        node: &Node,
        path: &str,
        implementation_specific: bool,
    ) -> Option<String> {
        let text = self.string(node, path)?;
        if !text.starts_with('/') {
            let diagnostic = self.error(
                node,
                path,
                format!("invalid path `{text}`: must be an absolute path"),
            );
            Self::hint(diagnostic, format!("write `/{text}`"));
            return None;
        }
        for sequence in INVALID_PATH_SEQUENCES {
            if text.contains(sequence) {
                self.error(
                    node,
                    path,
                    format!("invalid path `{text}`: must not contain `{sequence}`"),
                );
                return None;
            }
        }
        for suffix in INVALID_PATH_SUFFIXES {
            if text.ends_with(suffix) {
                self.error(
                    node,
                    path,
                    format!("invalid path `{text}`: must not end with `{suffix}`"),
                );
                return None;
            }
        }
        if implementation_specific && text.contains(PATTERN_CHARACTERS) {
            let diagnostic = self.warning(
                node,
                path,
                format!(
                    "path `{text}` is matched as a prefix, character for character: flotilla \
                     reads `ImplementationSpecific` as `Prefix`, not as a pattern"
                ),
            );
            Self::hint(
                diagnostic,
                "write the prefix itself (`/api`) with `pathType: Prefix`, or the whole path \
                 with `pathType: Exact`",
            );
        }
        Some(text)
    }

    fn ingress_backend(&mut self, node: &Node, path: &str) -> Option<IngressBackend> {
        let fields = self.fields(node, path, &BACKEND)?;
        if let Some(resource) = fields.get("resource") {
            let diagnostic = self.error(
                resource,
                &join(path, "resource"),
                "`resource` backends are not supported: flotilla routes to Services",
            );
            Self::hint(
                diagnostic,
                "use `service: {name: NAME, port: {number: PORT}}`",
            );
            return None;
        }
        let service = self.required(&fields, node, path, "service")?;
        let service_path = join(path, "service");
        let service_fields = self.fields(service, &service_path, &SERVICE_BACKEND)?;
        let name = self
            .required(&service_fields, service, &service_path, "name")
            .and_then(|name| {
                self.checked_name(
                    name,
                    &join(&service_path, "name"),
                    "service name",
                    service_name,
                )
            });
        let port = self
            .required(&service_fields, service, &service_path, "port")
            .and_then(|port| self.backend_port(port, &join(&service_path, "port")));
        Some(IngressBackend {
            service: name?,
            port: port?,
        })
    }

    /// `port`: exactly one of `number` and `name`.
    fn backend_port(&mut self, node: &Node, path: &str) -> Option<PortRef> {
        let fields = self.fields(node, path, &SERVICE_BACKEND_PORT)?;
        match (fields.get("number"), fields.get("name")) {
            (Some(number), None) => self
                .ranged(number, &join(path, "number"), 1, 65535)
                .and_then(|n| u16::try_from(n).ok())
                .map(PortRef::Number),
            (None, Some(name)) => self
                .checked_name(name, &join(path, "name"), "port name", names::port_name)
                .map(PortRef::Name),
            (Some(_), Some(_)) => {
                self.error(
                    node,
                    path,
                    "give the port's `number` or its `name`, not both",
                );
                None
            }
            (None, None) => {
                let diagnostic = self.error(node, path, "missing field `number` or `name`");
                Self::hint(
                    diagnostic,
                    "name the Service's port by number (`number: 80`) or by name (`name: http`)",
                );
                None
            }
        }
    }
}

/// What two routes claim when they conflict: the host, the path type and
/// the path (a `Prefix` path without its trailing `/`, which it ignores).
type RouteKey = (Option<IngressHost>, PathType, String);

fn route_key(host: &Option<IngressHost>, path: &IngressPath) -> RouteKey {
    let matched = match path.path_type {
        PathType::Exact => path.path.clone(),
        PathType::Prefix => path.path.trim_end_matches('/').to_string(),
    };
    (host.clone(), path.path_type, matched)
}

/// The cross-object checks of Ingresses, once every object is read: each
/// backend names a Service of the Ingress's namespace and one of its
/// ports; no host, path type and path is routed twice (Kubernetes merges
/// such routes across Ingresses, picking one silently; flotilla refuses);
/// at most one Ingress declares a default backend (it serves every host).
pub(in crate::manifest) fn check_ingresses(
    services: &[Service],
    ingresses: &[Ingress],
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut routes: BTreeMap<RouteKey, (String, String)> = BTreeMap::new();
    let mut default_backend: Option<(String, SourceLocation)> = None;
    // In the order they are written, so that a conflict is reported at
    // the second route and names the first.
    let mut in_source_order: Vec<&Ingress> = ingresses.iter().collect();
    in_source_order.sort_by(|a, b| a.meta.source.cmp(&b.meta.source));
    for ingress in in_source_order {
        let object = ingress.key().to_string();
        if let Some(backend) = &ingress.default_backend {
            let at = ingress.meta.field_location(DEFAULT_BACKEND_FIELD);
            if let Some((first, first_at)) = &default_backend {
                diagnostics.push(
                    Diagnostic::error(
                        format!("a default backend is also declared by {first} (at {first_at})"),
                        at.clone(),
                    )
                    .with_object(object.clone())
                    .with_field_path(DEFAULT_BACKEND_FIELD)
                    .with_hint(
                        "the default backend serves every request no rule matches, whatever its \
                         host: keep it in one Ingress",
                    ),
                );
            } else {
                default_backend = Some((object.clone(), at.clone()));
            }
            diagnostics.extend(check_backend(
                services,
                ingress,
                backend,
                "the default backend",
                DEFAULT_BACKEND_FIELD,
            ));
        }
        for (i, rule) in ingress.rules.iter().enumerate() {
            for (j, path) in rule.paths.iter().enumerate() {
                let field = path_field(i, j);
                let what = match &rule.host {
                    Some(host) => format!("`{host}{}`", path.path),
                    None => format!("`{}`", path.path),
                };
                diagnostics.extend(check_backend(
                    services,
                    ingress,
                    &path.backend,
                    &what,
                    &format!("{field}.backend"),
                ));
                let at = ingress.meta.field_location(&field);
                let key = route_key(&rule.host, path);
                if let Some((first, first_at)) = routes.get(&key) {
                    let host = match &rule.host {
                        Some(host) => format!("host `{host}`"),
                        None => "every host".to_string(),
                    };
                    let path_type = match path.path_type {
                        PathType::Prefix => "Prefix",
                        PathType::Exact => "Exact",
                    };
                    diagnostics.push(
                        Diagnostic::error(
                            format!(
                                "{path_type} path `{}` of {host} is also routed by {first} \
                                 (at {first_at})",
                                path.path
                            ),
                            at,
                        )
                        .with_object(object.clone())
                        .with_field_path(field)
                        .with_hint(
                            "one host and path goes to one backend: remove one of the routes, \
                             or change its path",
                        ),
                    );
                } else {
                    routes.insert(key, (format!("{object}: {field}"), at.to_string()));
                }
            }
        }
    }
    diagnostics
}

/// `backend` of `ingress` (`what` it serves, at `field`) names a declared
/// Service of its namespace and one of that Service's ports.
fn check_backend(
    services: &[Service],
    ingress: &Ingress,
    backend: &IngressBackend,
    what: &str,
    field: &str,
) -> Option<Diagnostic> {
    let namespace = &ingress.meta.namespace;
    let service_field = format!("{field}.service");
    let at = ingress.meta.field_location(field);
    let diagnostic = |message: String| {
        Diagnostic::error(message, at.clone())
            .with_object(ingress.key().to_string())
            .with_field_path(service_field.clone())
    };
    let in_namespace: Vec<&Service> = services
        .iter()
        .filter(|s| s.meta.namespace == *namespace)
        .collect();
    let Some(service) = in_namespace.iter().find(|s| s.meta.name == backend.service) else {
        let names: Vec<&str> = in_namespace.iter().map(|s| s.meta.name.as_str()).collect();
        let hint = match names::did_you_mean(&backend.service, &names) {
            Some(close) => format!("did you mean `{close}`?"),
            None => format!(
                "declare a Service `{}` in namespace `{namespace}` (an Ingress routes to the \
                 Services of its own namespace)",
                backend.service
            ),
        };
        return Some(
            diagnostic(format!(
                "{what} routes to Service `{}`, which namespace `{namespace}` does not declare",
                backend.service
            ))
            .with_hint(hint),
        );
    };
    if backend.service_port(service).is_some() {
        return None;
    }
    let ports: Vec<String> = service
        .ports
        .iter()
        .map(|p| match &p.name {
            Some(name) => format!("{} ({name})", p.port),
            None => p.port.to_string(),
        })
        .collect();
    let port = match &backend.port {
        PortRef::Number(number) => format!("port {number}"),
        PortRef::Name(name) => format!("port `{name}`"),
    };
    Some(
        diagnostic(format!(
            "{what} routes to {port} of Service `{}`, which has no such port",
            backend.service
        ))
        .with_hint(format!(
            "Service {namespace}/{} has {}",
            backend.service,
            match ports.as_slice() {
                [] => "no port".to_string(),
                [one] => format!("port {one}"),
                _ => format!(
                    "ports {}",
                    names::listed(&ports.iter().map(String::as_str).collect::<Vec<_>>(), "and")
                ),
            }
        )),
    )
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::manifest::yaml;

    const FILE: &str = "ingress.yaml";

    /// Every document of `text`, decoded on its own (no cross-object check).
    fn decode(text: &str) -> Vec<DecodedDocument> {
        let parsed = yaml::parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        parsed
            .documents
            .iter()
            .map(|d| decode_document(FILE, &d.root))
            .collect()
    }

    pub(in crate::manifest::decode) fn rendered(diagnostics: &[Diagnostic]) -> String {
        let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        rendered.join("\n\n")
    }

    /// The diagnostics of decoding `text`, rendered.
    fn decode_diagnostics(text: &str) -> String {
        let diagnostics: Vec<Diagnostic> = decode(text)
            .into_iter()
            .flat_map(|d| d.diagnostics)
            .collect();
        rendered(&diagnostics)
    }

    /// The Ingresses of `text`, each decoded without a problem.
    pub(in crate::manifest::decode) fn ingresses(text: &str) -> Vec<Ingress> {
        decode(text)
            .into_iter()
            .map(|d| match d.object {
                Some(Decoded::Ingress(ingress)) if d.diagnostics.is_empty() => *ingress,
                _ => panic!("not a valid Ingress: {}", rendered(&d.diagnostics)),
            })
            .collect()
    }

    fn service(namespace: &str, name: &str, ports: &[(Option<&str>, u16)]) -> Service {
        Service {
            meta: ObjectMeta {
                name: name.to_string(),
                namespace: namespace.to_string(),
                ..ObjectMeta::default()
            },
            selector: BTreeMap::from([("app".to_string(), name.to_string())]),
            service_type: ServiceType::ClusterIP,
            cluster_ip: core::net::Ipv4Addr::new(10, 96, 0, 20),
            ports: ports
                .iter()
                .map(|(port_name, port)| ServicePort {
                    name: port_name.map(String::from),
                    protocol: Protocol::TCP,
                    port: *port,
                    target_port: PortRef::Number(8080),
                    node_port: None,
                    http: false,
                })
                .collect(),
            session_affinity: SessionAffinity::None,
            external_traffic_local: false,
            balance: Balance::RoundRobin,
            proxy_protocol: false,
            pod_addresses: Vec::new(),
        }
    }

    fn backend(service: &str, port: PortRef) -> IngressBackend {
        IngressBackend {
            service: service.to_string(),
            port,
        }
    }

    #[test]
    fn a_full_ingress() {
        let decoded = ingresses(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: site
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: flotilla
  tls:
  - hosts: [shop.example.com, '*.example.com']
    secretName: shop-tls
  - secretName: fallback-tls
  defaultBackend:
    service: {name: fallback, port: {number: 8080}}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
      - {path: /healthz, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
  - host: '*.example.com'
    http:
      paths:
      - {pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
  - http:
      paths:
      - {path: /static/, pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
",
        );
        let [ingress] = decoded.as_slice() else {
            panic!("one Ingress: {decoded:?}");
        };
        assert_eq!(ingress.key().to_string(), "Ingress shop/site");
        // Annotations flotilla does not know are kept and change nothing.
        assert_eq!(ingress.meta.annotations.len(), 1);
        assert_eq!(
            ingress.default_backend,
            Some(backend("fallback", PortRef::Number(8080)))
        );
        let path = |path: &str, path_type, backend| IngressPath {
            path: path.to_string(),
            path_type,
            backend,
        };
        assert_eq!(
            ingress.rules,
            [
                IngressRule {
                    host: Some(IngressHost::Exact("shop.example.com".to_string())),
                    paths: vec![
                        path(
                            "/api",
                            PathType::Prefix,
                            backend("api", PortRef::Name("http".to_string()))
                        ),
                        path(
                            "/healthz",
                            PathType::Exact,
                            backend("api", PortRef::Number(80))
                        ),
                    ],
                },
                IngressRule {
                    host: Some(IngressHost::Wildcard("example.com".to_string())),
                    // ImplementationSpecific without a path: every path.
                    paths: vec![path(
                        "/",
                        PathType::Prefix,
                        backend("web", PortRef::Number(80))
                    )],
                },
                IngressRule {
                    host: None,
                    paths: vec![path(
                        "/static/",
                        PathType::Prefix,
                        backend("web", PortRef::Number(80))
                    )],
                },
            ]
        );
        assert_eq!(
            ingress.tls,
            [
                IngressTls {
                    hosts: vec![
                        IngressHost::Exact("shop.example.com".to_string()),
                        IngressHost::Wildcard("example.com".to_string()),
                    ],
                    secret_name: "shop-tls".to_string(),
                },
                IngressTls {
                    hosts: Vec::new(),
                    secret_name: "fallback-tls".to_string(),
                },
            ]
        );
        // Where each path, backend and Secret is, for the cross-object checks.
        assert_eq!(
            ingress
                .meta
                .field_location("spec.rules[0].http.paths[1].backend")
                .to_string(),
            "ingress.yaml:21:53"
        );
        assert_eq!(
            ingress
                .meta
                .field_location("spec.tls[1].secretName")
                .to_string(),
            "ingress.yaml:13:17"
        );
    }

    #[test]
    fn field_errors() {
        let text = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad}
spec:
  tls:
  - hosts: [shop.example.com, '*.example.com', 'a.*.com', 10.0.0.2]
    secretName: Shop_TLS
  - hosts: [shop.example.com]
  - {secret: shop-tls, secretName: shop-tls}
  - {hosts: shop.example.com, secretName: shop-tls}
  backend: {serviceName: web, servicePort: 80}
  defaultBackend:
    resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: assets}
  rules:
  - host: 10.0.0.1
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - host: shop.example.com:8080
    http: {paths: []}
  - host: 'shop.*.com'
  - host: Shop.Example.com
    paths: []
  - http:
      paths:
      - {path: api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /a//b, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /a/.., pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /b, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /c, pathType: prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /d, pathType: Prefix}
      - {path: /e, pathType: Prefix, backend: {service: {name: 1web, port: {number: 0}}}}
      - {path: /f, pathType: Prefix, backend: {service: {name: web, port: {number: 80, name: http}}}}
      - {path: /g, pathType: Prefix, backend: {service: {name: web, port: {}}}}
      - {path: /h, pathType: Prefix, backend: {service: {port: {name: Web_Port}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: empty}
spec: {}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: no-spec}
";
        insta::assert_snapshot!(decode_diagnostics(text));
    }

    #[test]
    fn classes() {
        let text = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: nginx-class}
spec:
  ingressClassName: nginx
  tls: [{secretName: x}]
  rules: [{host: 'not checked', http: {paths: []}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: annotated
  annotations: {kubernetes.io/ingress.class: traefik}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: both
  annotations: {kubernetes.io/ingress.class: flotilla}
spec:
  ingressClassName: nginx
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: invalid-class}
spec:
  ingressClassName: Not_A_Class
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: flotilla-both-ways
  annotations: {kubernetes.io/ingress.class: flotilla}
spec:
  ingressClassName: flotilla
  defaultBackend: {service: {name: web, port: {number: 80}}}
";
        let documents = decode(text);
        let kept: Vec<&str> = documents
            .iter()
            .filter(|d| d.object.is_some())
            .filter_map(|d| d.key.as_ref().map(|k| k.name.as_str()))
            .collect();
        // Another class's Ingress has no error (its spec is not read), and
        // is kept out of the model.
        assert_eq!(kept, ["flotilla-both-ways"]);
        for other_class in &documents[..2] {
            assert!(
                !other_class.diagnostics.iter().any(Diagnostic::is_error),
                "{}",
                rendered(&other_class.diagnostics)
            );
        }
        insta::assert_snapshot!(decode_diagnostics(text));
    }

    #[test]
    fn warnings_for_what_routes_nothing_or_not_as_written() {
        let text = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site}
spec:
  rules:
  - host: shop.example.com
  - http:
      paths:
      - {path: '/api(/|$)(.*)', pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
";
        // Valid: warnings only.
        let documents = decode(text);
        assert!(matches!(documents[0].object, Some(Decoded::Ingress(_))));
        assert!(!documents[0].diagnostics.is_empty());
        assert!(!documents[0].diagnostics.iter().any(Diagnostic::is_error));
        insta::assert_snapshot!(decode_diagnostics(text));
    }

    const SITES: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: shop}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
      - {path: /cart, pathType: Prefix, backend: {service: {name: carts, port: {number: 80}}}}
      - {path: /admin, pathType: Prefix, backend: {service: {name: web, port: {number: 9090}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other, namespace: shop}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api/, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /api/, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
  - host: '*.example.com'
    http:
      paths:
      - {path: /api, pathType: ImplementationSpecific, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: elsewhere, namespace: blog}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
";

    fn shop_services() -> Vec<Service> {
        vec![
            service("shop", "api", &[(Some("http"), 80), (Some("grpc"), 9000)]),
            service("shop", "cart", &[(None, 80)]),
            service("shop", "web", &[(None, 80)]),
        ]
    }

    #[test]
    fn cross_object_errors() {
        let diagnostics = check_ingresses(&shop_services(), &ingresses(SITES));
        insta::assert_snapshot!(rendered(&diagnostics));
    }

    #[test]
    fn backends_that_exist_pass() {
        let text = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: shop}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {name: grpc}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
  - host: '*.example.com'
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: cart, port: {number: 80}}}}
  - http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: cart, port: {number: 80}}}}
";
        let diagnostics = check_ingresses(&shop_services(), &ingresses(text));
        assert!(diagnostics.is_empty(), "{}", rendered(&diagnostics));
    }

    /// Through `load`: a valid Ingress is in the desired state, and its
    /// backends are checked against the Services declared.
    #[test]
    fn loaded_with_the_other_objects() {
        let loaded = crate::manifest::load(&[crate::manifest::SourceFile::new(FILE, SITES)]);
        let keys: Vec<String> = loaded
            .state
            .ingresses
            .iter()
            .map(|i| i.key().to_string())
            .collect();
        assert_eq!(
            keys,
            [
                "Ingress blog/elsewhere",
                "Ingress shop/other",
                "Ingress shop/site"
            ]
        );
        // Without the Services (this test declares none), every backend is an
        // error naming its place and the Service.
        let rendered: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert!(
            rendered.contains(
                &"error: `/` routes to Service `api`, which namespace `blog` does not declare
  --> ingress.yaml:38:47 (Ingress blog/elsewhere: spec.rules[0].http.paths[0].backend.service)
  = hint: declare a Service `api` in namespace `blog` (an Ingress routes to the Services of its own namespace)"
                    .to_string()
            ),
            "{rendered:#?}"
        );
        assert!(loaded.has_errors());
    }
}
