//! The Ingress router: which backend an HTTP request goes to, from its
//! `Host` header and path, by Kubernetes' rules. Pure: built from the
//! table's routes, asked per request; it never forwards anything (the HTTP
//! side does, to the Service port the backend names).
//!
//! The rules (<https://kubernetes.io/docs/concepts/services-networking/ingress/>):
//! - a host is exact (`shop.example.com`), a wildcard (`*.example.com`,
//!   matching exactly one more DNS label), or absent (every host); the
//!   `Host` header's port, a trailing dot and case are ignored;
//! - a `Prefix` path matches element by element (`/`-separated): `/foo`
//!   matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`; a trailing `/`
//!   is ignored, and so are empty elements (`//`); an `Exact` path matches
//!   the whole path, case-sensitive; the query is not part of the path;
//! - among the routes that match, the most specific host wins (exact, then
//!   wildcard, then every host), then the longest path, then `Exact` over
//!   `Prefix`. A host's routes do not hide the less specific hosts' routes:
//!   a request no route of its exact host matches may still match a
//!   wildcard's or one for every host (as Gateway API specifies; Kubernetes
//!   leaves it to the controller);
//! - when no route matches, the default backend, if there is one.

use std::collections::HashMap;

use super::table::{IngressBackend, IngressRoute, PathType};

/// The routes of a table, ordered for matching.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    /// By host.
    exact: HashMap<String, Paths>,
    /// By the wildcard's suffix (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Paths>,
    every_host: Paths,
    default_backend: Option<IngressBackend>,
}

/// One host's paths, the one to prefer first.
#[derive(Clone, Debug, Default)]
struct Paths(Vec<PathRoute>);

#[derive(Clone, Debug)]
struct PathRoute {
    matcher: Matcher,
    backend: IngressBackend,
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(String),
    /// The path's elements.
    Prefix(Vec<String>),
}

impl Matcher {
    /// How long a path it matches, to prefer the longest: an `Exact` path's
    /// length, a `Prefix` path's without its trailing `/`.
    fn length(&self) -> usize {
        match self {
            Matcher::Exact(path) => path.len(),
            Matcher::Prefix(elements) => elements.iter().map(|e| e.len() + 1).sum(),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Exact(exact) => path == exact,
            Matcher::Prefix(prefix) => {
                let mut elements = path_elements(path);
                prefix
                    .iter()
                    .all(|element| elements.next() == Some(element.as_str()))
            }
        }
    }
}

/// A path's `/`-separated elements, empty ones left out.
fn path_elements(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|element| !element.is_empty())
}

impl Paths {
    fn find(&self, path: &str) -> Option<&IngressBackend> {
        self.0
            .iter()
            .find(|route| route.matcher.matches(path))
            .map(|route| &route.backend)
    }
}

/// A `Host` header as routes name hosts: without its port or a trailing
/// dot, lowercase.
fn host_name(host: &str) -> String {
    let without_port = if host.starts_with('[') {
        // An IPv6 literal, `[::1]:80`: no rule names one, but its colons
        // are not a port.
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

impl Routes {
    /// Orders `routes` for matching; requests that match none go to
    /// `default_backend`. Of two routes with the same host, path type and
    /// path (the leader never writes such a table), the first is kept.
    pub fn new(routes: &[IngressRoute], default_backend: Option<&IngressBackend>) -> Routes {
        let mut ordered = Routes {
            default_backend: default_backend.cloned(),
            ..Routes::default()
        };
        for route in routes {
            let matcher = match route.path_type {
                PathType::Exact => Matcher::Exact(route.path.clone()),
                PathType::Prefix => {
                    Matcher::Prefix(path_elements(&route.path).map(String::from).collect())
                }
            };
            let paths = match route.host.as_deref().map(str::to_ascii_lowercase) {
                None => &mut ordered.every_host,
                Some(host) => match host.strip_prefix("*.") {
                    Some(suffix) => ordered.wildcard.entry(suffix.to_string()).or_default(),
                    None => ordered.exact.entry(host).or_default(),
                },
            };
            paths.0.push(PathRoute {
                matcher,
                backend: route.backend.clone(),
            });
        }
        let hosts = ordered
            .exact
            .values_mut()
            .chain(ordered.wildcard.values_mut());
        for paths in hosts.chain(std::iter::once(&mut ordered.every_host)) {
            // Longest first, Exact before Prefix at equal length; stable,
            // so a duplicate keeps its first route first.
            paths.0.sort_by_key(|route| {
                let exact_first = !matches!(route.matcher, Matcher::Exact(_));
                (std::cmp::Reverse(route.matcher.length()), exact_first)
            });
        }
        ordered
    }

    /// The backend a request for `host` (its `Host` header) and `path`
    /// (its target, a query allowed) goes to, if any.
    pub fn route(&self, host: &str, path: &str) -> Option<&IngressBackend> {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let host = host_name(host);
        let wildcard = host
            .split_once('.')
            .filter(|(label, _)| !label.is_empty())
            .and_then(|(_, suffix)| self.wildcard.get(suffix));
        [self.exact.get(&host), wildcard, Some(&self.every_host)]
            .into_iter()
            .flatten()
            .find_map(|paths| paths.find(path))
            .or(self.default_backend.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(service: &str) -> IngressBackend {
        IngressBackend {
            namespace: "default".to_string(),
            service: service.to_string(),
            port: 80,
        }
    }

    /// Routes to services named after each route: `(host, path type,
    /// path)` goes to a Service named by its index, `r0`, `r1`, ...
    fn routes(declared: &[(Option<&str>, PathType, &str)], default: Option<&str>) -> Routes {
        let routes: Vec<IngressRoute> = declared
            .iter()
            .enumerate()
            .map(|(i, (host, path_type, path))| IngressRoute {
                host: host.map(String::from),
                path: path.to_string(),
                path_type: *path_type,
                backend: backend(&format!("r{i}")),
            })
            .collect();
        Routes::new(&routes, default.map(backend).as_ref())
    }

    fn check(routes: &Routes, host: &str, path: &str, expected: Option<&str>) {
        let routed = routes.route(host, path).map(|b| b.service.as_str());
        assert_eq!(routed, expected, "{host}{path}");
    }

    use PathType::{Exact, Prefix};

    /// The "Examples" table of Kubernetes' Ingress documentation, row by
    /// row: the paths declared, the request path, and the route it takes
    /// (`r1` is the second path declared; `None`: no route matches, so the
    /// default backend would serve it).
    #[test]
    fn the_kubernetes_documentation_examples() {
        /// The paths declared, the request path, the route taken.
        type Row<'a> = (&'a [(PathType, &'a str)], &'a str, Option<&'a str>);
        let rows: &[Row] = &[
            (&[(Prefix, "/")], "/", Some("r0")),
            (&[(Prefix, "/")], "/anything/at/all", Some("r0")),
            (&[(Exact, "/foo")], "/foo", Some("r0")),
            (&[(Exact, "/foo")], "/bar", None),
            (&[(Exact, "/foo")], "/foo/", None),
            (&[(Exact, "/foo/")], "/foo", None),
            (&[(Prefix, "/foo")], "/foo", Some("r0")),
            (&[(Prefix, "/foo")], "/foo/", Some("r0")),
            (&[(Prefix, "/foo/")], "/foo", Some("r0")),
            (&[(Prefix, "/foo/")], "/foo/", Some("r0")),
            (&[(Prefix, "/aaa/bb")], "/aaa/bbb", None),
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbb", Some("r0")),
            // Ignores the trailing slash.
            (&[(Prefix, "/aaa/bbb/")], "/aaa/bbb", Some("r0")),
            // Matches the trailing slash.
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbb/", Some("r0")),
            // Matches a subpath.
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbb/ccc", Some("r0")),
            // Not a string prefix.
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbbxyz", None),
            (&[(Prefix, "/"), (Prefix, "/aaa")], "/aaa/ccc", Some("r1")),
            (
                &[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")],
                "/aaa/bbb",
                Some("r2"),
            ),
            (
                &[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")],
                "/ccc",
                Some("r0"),
            ),
            // Uses the default backend.
            (&[(Prefix, "/aaa")], "/ccc", None),
            // Exact is preferred, whichever is declared first.
            (&[(Prefix, "/foo"), (Exact, "/foo")], "/foo", Some("r1")),
            (&[(Exact, "/foo"), (Prefix, "/foo")], "/foo", Some("r0")),
        ];
        for (declared, request, expected) in rows {
            let declared: Vec<(Option<&str>, PathType, &str)> =
                declared.iter().map(|(t, p)| (None, *t, *p)).collect();
            check(&routes(&declared, None), "example.com", request, *expected);
        }
    }

    #[test]
    fn matching_is_case_sensitive_and_ignores_the_query() {
        let routes = routes(&[(None, Exact, "/Foo"), (None, Prefix, "/api")], None);
        check(&routes, "h", "/Foo", Some("r0"));
        check(&routes, "h", "/foo", None);
        check(&routes, "h", "/Foo?x=1", Some("r0"));
        check(&routes, "h", "/Foo#top", Some("r0"));
        check(&routes, "h", "/API", None);
        check(&routes, "h", "/api?next=/other", Some("r1"));
        // Empty elements are no elements.
        check(&routes, "h", "//api//v1", Some("r1"));
    }

    /// The "Hostname wildcards" table of Kubernetes' documentation, and
    /// how the `Host` header is read.
    #[test]
    fn hosts_exact_and_wildcard() {
        let routes = routes(
            &[
                (Some("*.foo.com"), Prefix, "/"),
                (Some("bar.foo.com"), Prefix, "/"),
                (Some("Shop.Example.com"), Prefix, "/"),
            ],
            None,
        );
        // The exact host beats the wildcard, declared before it.
        check(&routes, "bar.foo.com", "/", Some("r1"));
        check(&routes, "baz.foo.com", "/", Some("r0"));
        // A wildcard covers exactly one DNS label.
        check(&routes, "baz.bar.foo.com", "/", None);
        check(&routes, "foo.com", "/", None);
        check(&routes, ".foo.com", "/", None);
        // The port, a trailing dot and case are not part of the host.
        check(&routes, "bar.foo.com:8080", "/", Some("r1"));
        check(&routes, "BAR.foo.com.", "/", Some("r1"));
        check(&routes, "shop.example.com", "/x", Some("r2"));
        check(&routes, "[::1]:80", "/", None);
        check(&routes, "", "/", None);
    }

    #[test]
    fn a_request_falls_through_to_less_specific_hosts_then_the_default_backend() {
        let routes = routes(
            &[
                (Some("shop.example.com"), Prefix, "/api"),
                (Some("*.example.com"), Prefix, "/static"),
                (None, Prefix, "/"),
                (None, Exact, "/healthz"),
            ],
            Some("fallback"),
        );
        check(&routes, "shop.example.com", "/api/cart", Some("r0"));
        // Not a path of its host: the wildcard's, then every host's.
        check(&routes, "shop.example.com", "/static/a.css", Some("r1"));
        check(&routes, "shop.example.com", "/", Some("r2"));
        check(&routes, "other.org", "/healthz", Some("r3"));
        check(&routes, "other.org", "/api", Some("r2"));

        let without_catch_all = super::tests::routes(
            &[(Some("shop.example.com"), Prefix, "/api")],
            Some("fallback"),
        );
        check(
            &without_catch_all,
            "shop.example.com",
            "/",
            Some("fallback"),
        );
        check(&without_catch_all, "other.org", "/api", Some("fallback"));
        check(&Routes::new(&[], None), "any", "/", None);
    }

    #[test]
    fn the_most_specific_host_wins_over_a_longer_path() {
        let routes = routes(
            &[
                (None, Prefix, "/api/v1/users"),
                (Some("*.example.com"), Prefix, "/api"),
                (Some("shop.example.com"), Prefix, "/"),
            ],
            None,
        );
        check(&routes, "shop.example.com", "/api/v1/users", Some("r2"));
        check(&routes, "blog.example.com", "/api/v1/users", Some("r1"));
        check(&routes, "other.org", "/api/v1/users/7", Some("r0"));
    }

    #[test]
    fn the_longest_path_wins_whatever_the_order() {
        let routes = routes(
            &[
                (None, Prefix, "/a"),
                (None, Prefix, "/a/b/c"),
                (None, Exact, "/a/b"),
                (None, Prefix, "/a/b"),
            ],
            None,
        );
        check(&routes, "h", "/a/b/c/d", Some("r1"));
        check(&routes, "h", "/a/b", Some("r2"));
        check(&routes, "h", "/a/b/", Some("r3"));
        check(&routes, "h", "/a/bc", Some("r0"));
    }
}
