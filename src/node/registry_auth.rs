//! Registry credentials for image pulls, from a `kubernetes.io/dockerconfigjson`
//! Secret: its `.dockerconfigjson` is Docker's `config.json` (an `auths` map
//! by registry), and the entry for an image is chosen as the kubelet's
//! keyring and Docker's client choose it. Pure: bytes in, credentials out.
//!
//! Nothing here prints a value: errors name the field and the registry,
//! never what they hold (a JSON syntax error gives a line and column, not
//! serde_json's message, which may quote the text), and the credentials are
//! [`Sensitive`].

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};

use crate::manifest::model::Sensitive;

/// Credentials for one registry, as Docker's pull takes them
/// (`X-Registry-Auth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry: `host[:port]`, or Docker Hub's
    /// `https://index.docker.io/v1/`, as Docker's client sends it.
    pub server_address: String,
    pub username: String,
    pub password: Sensitive,
    /// An OAuth refresh token for the registry (`identitytoken`), used in
    /// place of the password when set.
    pub identity_token: Option<Sensitive>,
    /// A bearer token for the registry itself (`registrytoken`).
    pub registry_token: Option<Sensitive>,
}

/// Why a `.dockerconfigjson` cannot be used; never quotes a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DockerConfigError {
    #[error("`.dockerconfigjson` is not JSON (line {line}, column {column})")]
    Json { line: usize, column: usize },
    #[error("`.dockerconfigjson` must be a JSON object with an `auths` map")]
    NotAnObject,
    #[error("`.dockerconfigjson` has no `auths` map (Docker's config.json: {{\"auths\": {{\"REGISTRY\": {{\"auth\": ...}}}}}})")]
    NoAuths,
    #[error("`.dockerconfigjson`: `{field}` (a credential helper on the machine that wrote it) is not supported; put the credentials in `auths`")]
    CredentialHelper { field: &'static str },
    #[error("`.dockerconfigjson`: `auths` key `{key}` is not a registry (`host[:port][/path]`, optionally after `https://`)")]
    Key { key: String },
    #[error("`.dockerconfigjson`: `auths.{registry}` must be an object")]
    EntryNotAnObject { registry: String },
    #[error("`.dockerconfigjson`: `auths.{registry}.{field}` must be a string")]
    NotAString { registry: String, field: String },
    #[error("`.dockerconfigjson`: `auths.{registry}`: unknown field `{field}` (known: auth, username, password, identitytoken, registrytoken, email)")]
    UnknownField { registry: String, field: String },
    #[error("`.dockerconfigjson`: `auths.{registry}.auth` is not base64")]
    AuthNotBase64 { registry: String },
    #[error("`.dockerconfigjson`: `auths.{registry}.auth` does not decode to `username:password` in UTF-8")]
    AuthNotUserPassword { registry: String },
    #[error("`.dockerconfigjson`: `auths.{registry}` has no credentials (`auth`, `username` and `password`, or `identitytoken`)")]
    NoCredentials { registry: String },
}

/// The credentials `config_json` (a `.dockerconfigjson`) holds for pulling
/// `image`: the most specific `auths` entry whose registry matches the
/// image's, `None` when none does. Every entry is checked, whichever
/// matches.
pub fn for_image(
    config_json: &[u8],
    image: &str,
) -> Result<Option<RegistryAuth>, DockerConfigError> {
    Ok(DockerConfig::parse(config_json)?.for_image(image))
}

/// A parsed `.dockerconfigjson`: its `auths` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerConfig {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    /// The `auths` key as written.
    key: String,
    pattern: RegistryPattern,
    username: String,
    password: Sensitive,
    identity_token: Option<Sensitive>,
    registry_token: Option<Sensitive>,
}

/// An `auths` key, as the kubelet's keyring reads it: a host (each
/// dot-separated label may hold `*` wildcards), an optional port (matched
/// exactly), and an optional path prefix (`/v1/` and `/v2/` are API
/// versions, not paths).
#[derive(Clone, Debug, PartialEq, Eq)]
struct RegistryPattern {
    host: String,
    port: Option<String>,
    path: Vec<String>,
}

/// Docker Hub's registry, as an image reference names it.
const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's names, as `auths` keys and image references write them.
const DOCKER_HUB_ALIASES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];
/// Docker Hub's address as Docker's client sends it with credentials.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// Standard base64, padded or not (tools writing `config.json` differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl DockerConfig {
    /// Reads and checks a `.dockerconfigjson`. Docker's client settings
    /// beside `auths` (`psFormat`, `HttpHeaders`, ...) concern the machine
    /// that wrote it, not pulls, and are not read; credential helpers are
    /// an error, as the node has none of the writer's.
    pub fn parse(config_json: &[u8]) -> Result<DockerConfig, DockerConfigError> {
        let value: Value =
            serde_json::from_slice(config_json).map_err(|error| DockerConfigError::Json {
                line: error.line(),
                column: error.column(),
            })?;
        let Value::Object(top) = value else {
            return Err(DockerConfigError::NotAnObject);
        };
        for field in ["credsStore", "credHelpers"] {
            if top.contains_key(field) {
                return Err(DockerConfigError::CredentialHelper { field });
            }
        }
        let Some(Value::Object(auths)) = top.get("auths") else {
            return Err(DockerConfigError::NoAuths);
        };
        let mut entries = auths
            .iter()
            .map(|(key, entry)| Entry::parse(key, entry))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(DockerConfig { entries })
    }

    /// The credentials for pulling `image`: among the entries whose
    /// registry matches the image's, the one with the longest path, then
    /// one without wildcards, then the first key in order.
    pub fn for_image(&self, image: &str) -> Option<RegistryAuth> {
        let (host, repository) = split_registry(image);
        let repository: Vec<&str> = repository.split('/').collect();
        let entry = self
            .entries
            .iter()
            .filter(|entry| entry.pattern.matches(&host, &repository))
            .min_by_key(|entry| {
                (
                    std::cmp::Reverse(entry.pattern.path.len()),
                    entry.pattern.host.contains('*'),
                )
            })?;
        Some(RegistryAuth {
            server_address: if host == DOCKER_HUB {
                DOCKER_HUB_SERVER.to_string()
            } else {
                host
            },
            username: entry.username.clone(),
            password: entry.password.clone(),
            identity_token: entry.identity_token.clone(),
            registry_token: entry.registry_token.clone(),
        })
    }
}

impl Entry {
    fn parse(key: &str, entry: &Value) -> Result<Entry, DockerConfigError> {
        let registry = || key.to_string();
        let pattern = RegistryPattern::parse(key).ok_or_else(|| DockerConfigError::Key {
            key: key.to_string(),
        })?;
        let Value::Object(fields) = entry else {
            return Err(DockerConfigError::EntryNotAnObject {
                registry: registry(),
            });
        };
        if let Some(field) = fields.keys().find(|field| {
            !matches!(
                field.as_str(),
                "auth" | "username" | "password" | "identitytoken" | "registrytoken" | "email"
            )
        }) {
            return Err(DockerConfigError::UnknownField {
                registry: registry(),
                field: field.clone(),
            });
        }
        let text = |field: &str| string_field(fields, key, field);
        // `email` is long unused by registries; only its type is checked.
        text("email")?;
        let (mut username, mut password) = (
            text("username")?.unwrap_or_default().to_string(),
            Sensitive::new(text("password")?.unwrap_or_default().as_bytes().to_vec()),
        );
        // `auth` wins over `username` and `password`, as in Docker and the
        // kubelet.
        if let Some(auth) = text("auth")?.filter(|auth| !auth.is_empty()) {
            let decoded = BASE64
                .decode(auth)
                .map_err(|_| DockerConfigError::AuthNotBase64 {
                    registry: registry(),
                })?;
            let (user, secret) = std::str::from_utf8(&decoded)
                .ok()
                .and_then(|text| text.split_once(':'))
                .ok_or_else(|| DockerConfigError::AuthNotUserPassword {
                    registry: registry(),
                })?;
            username = user.to_string();
            password = Sensitive::new(secret.as_bytes().to_vec());
        }
        let token = |field: &str| -> Result<Option<Sensitive>, DockerConfigError> {
            Ok(text(field)?
                .filter(|token| !token.is_empty())
                .map(|token| Sensitive::new(token.as_bytes().to_vec())))
        };
        let identity_token = token("identitytoken")?;
        let registry_token = token("registrytoken")?;
        let has_password = !username.is_empty() || !password.expose().is_empty();
        if !has_password && identity_token.is_none() && registry_token.is_none() {
            return Err(DockerConfigError::NoCredentials {
                registry: registry(),
            });
        }
        Ok(Entry {
            key: key.to_string(),
            pattern,
            username,
            password,
            identity_token,
            registry_token,
        })
    }
}

fn string_field<'a>(
    fields: &'a Map<String, Value>,
    registry: &str,
    field: &str,
) -> Result<Option<&'a str>, DockerConfigError> {
    match fields.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(DockerConfigError::NotAString {
            registry: registry.to_string(),
            field: field.to_string(),
        }),
    }
}

impl RegistryPattern {
    fn parse(key: &str) -> Option<RegistryPattern> {
        let rest = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let host = host.to_ascii_lowercase();
        let host_ok = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'*' | b'_'))
            });
        let port_ok =
            port.is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return None;
        }
        let mut path: Vec<String> = path
            .split('/')
            .filter(|part| !part.is_empty())
            .map(str::to_string)
            .collect();
        if path
            .first()
            .is_some_and(|first| first == "v1" || first == "v2")
        {
            path.remove(0);
        }
        Some(RegistryPattern {
            host: normalize_host(&host).to_string(),
            port: port.map(str::to_string),
            path,
        })
    }

    /// Whether an image of registry `registry` (`host[:port]`, normalized)
    /// and repository path `repository` matches.
    fn matches(&self, registry: &str, repository: &[&str]) -> bool {
        let (host, port) = match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        let labels: Vec<&str> = host.split('.').collect();
        let patterns: Vec<&str> = self.host.split('.').collect();
        labels.len() == patterns.len()
            && patterns
                .iter()
                .zip(&labels)
                .all(|(pattern, label)| glob_matches(pattern, label))
            && self.port.as_deref() == port
            && self.path.len() <= repository.len()
            && self.path.iter().zip(repository).all(|(a, b)| a == b)
    }
}

/// Docker Hub under any of its names is `docker.io`.
fn normalize_host(host: &str) -> &str {
    if DOCKER_HUB_ALIASES.contains(&host) {
        DOCKER_HUB
    } else {
        host
    }
}

/// `pattern` with `*` matching any run of characters, against `text`.
fn glob_matches(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(text) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=text.len())
                .filter(|&at| text.is_char_boundary(at))
                .any(|at| glob_matches(rest, &text[at..]))
        }
    }
}

/// The registry of `image` (`host[:port]`, lowercase, Docker Hub as
/// `docker.io`) and its repository path, as Docker splits a reference: the
/// first component names a registry when it holds a `.` or a `:` or is
/// `localhost`; otherwise the image is Docker Hub's (`library/` for an
/// official image).
fn split_registry(image: &str) -> (String, String) {
    let name = image.split('@').next().unwrap_or(image);
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (
                normalize_host(&first.to_ascii_lowercase()).to_string(),
                rest,
            )
        }
        _ => (DOCKER_HUB.to_string(), name),
    };
    // The tag is in the last component, after its colon.
    let path = match path.rsplit_once('/') {
        Some((parent, last)) => format!("{parent}/{}", last.split(':').next().unwrap_or(last)),
        None => path.split(':').next().unwrap_or(path).to_string(),
    };
    let path = if registry == DOCKER_HUB && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    (registry, path)
}

impl RegistryAuth {
    /// Docker's `X-Registry-Auth`, through bollard.
    pub(crate) fn to_docker(&self) -> bollard::auth::DockerCredentials {
        let text = |value: &Sensitive| String::from_utf8_lossy(value.expose()).into_owned();
        bollard::auth::DockerCredentials {
            username: (!self.username.is_empty()).then(|| self.username.clone()),
            password: (!self.password.expose().is_empty()).then(|| text(&self.password)),
            serveraddress: Some(self.server_address.clone()),
            identitytoken: self.identity_token.as_ref().map(text),
            registrytoken: self.registry_token.as_ref().map(text),
            ..bollard::auth::DockerCredentials::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }

    /// The username and password chosen for `image` from `config`.
    fn chosen(config: &str, image: &str) -> Option<(String, String, String)> {
        for_image(config.as_bytes(), image)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|auth| {
                (
                    auth.server_address,
                    auth.username,
                    String::from_utf8(auth.password.expose().to_vec()).expect("utf-8"),
                )
            })
    }

    /// Which of `keys` (each entry's username is its key, `:` as `_`) is
    /// chosen for `image`, and the server address sent with it.
    fn check(keys: &[&str], image: &str, expected: Option<(&str, &str)>) {
        let user = |key: &str| key.replace(':', "_");
        let entries: Vec<String> = keys
            .iter()
            .map(|key| format!(r#""{key}": {{"auth": "{}"}}"#, auth(&user(key), "pw")))
            .collect();
        let config = format!(r#"{{"auths": {{{}}}}}"#, entries.join(", "));
        assert_eq!(
            chosen(&config, image).map(|(server, user, _)| (server, user)),
            expected.map(|(server, key)| (server.to_string(), user(key))),
            "{image} among {keys:?}"
        );
    }

    #[test]
    fn docker_hub_under_any_of_its_names() {
        let hub = "https://index.docker.io/v1/";
        for key in [
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            "https://registry-1.docker.io/v2/",
            "http://index.docker.io/v1/",
        ] {
            for image in [
                "busybox",
                "busybox:1.36",
                "library/busybox",
                "team/app:1",
                "docker.io/team/app",
                "index.docker.io/team/app@sha256:0123",
            ] {
                check(&[key], image, Some((hub, key)));
            }
            check(&[key], "registry.example/app", None);
            check(&[key], "localhost:5000/app", None);
        }
    }

    #[test]
    fn a_registry_by_host_port_and_path() {
        for (keys, image, expected) in [
            (
                &["registry.example"][..],
                "registry.example/app:1",
                Some(("registry.example", "registry.example")),
            ),
            (
                &["https://registry.example"],
                "registry.example/team/app",
                Some(("registry.example", "https://registry.example")),
            ),
            (
                &["https://registry.example/v2/"],
                "registry.example/app",
                Some(("registry.example", "https://registry.example/v2/")),
            ),
            (
                &["REGISTRY.example"],
                "registry.example/app",
                Some(("registry.example", "REGISTRY.example")),
            ),
            // A port is part of the registry: matched exactly.
            (
                &["localhost:5000"],
                "localhost:5000/app",
                Some(("localhost:5000", "localhost:5000")),
            ),
            (
                &["127.0.0.1:5000"],
                "127.0.0.1:5000/app:2",
                Some(("127.0.0.1:5000", "127.0.0.1:5000")),
            ),
            (&["localhost:5000"], "localhost/app", None),
            (&["localhost"], "localhost:5000/app", None),
            (&["registry.example"], "registry.example:443/app", None),
            (&["registry.example"], "other.example/app", None),
            (&["registry.example"], "sub.registry.example/app", None),
            // A path is a prefix of the repository, by whole components.
            (
                &["registry.example/team"],
                "registry.example/team/app",
                Some(("registry.example", "registry.example/team")),
            ),
            (
                &["registry.example/team"],
                "registry.example/teamster/app",
                None,
            ),
            (&["registry.example/team"], "registry.example/app", None),
            (
                &[
                    "registry.example",
                    "registry.example/team",
                    "registry.example/team/app",
                ],
                "registry.example/team/app:1",
                Some(("registry.example", "registry.example/team/app")),
            ),
            (
                &["registry.example", "registry.example/team"],
                "registry.example/other/app",
                Some(("registry.example", "registry.example")),
            ),
            // Wildcards, one label each; an exact host wins over one.
            (
                &["*.example"],
                "registry.example/app",
                Some(("registry.example", "*.example")),
            ),
            (&["*.example"], "a.registry.example/app", None),
            (
                &["reg*.example"],
                "registry.example/app",
                Some(("registry.example", "reg*.example")),
            ),
            (
                &["*.example", "registry.example"],
                "registry.example/app",
                Some(("registry.example", "registry.example")),
            ),
        ] {
            check(keys, image, expected);
        }
    }

    #[test]
    fn credentials_from_auth_or_username_and_password() {
        let config = format!(
            r#"{{"auths": {{
                "a.example": {{"auth": "{}", "username": "ignored", "password": "ignored", "email": "x@y"}},
                "b.example": {{"username": "bob", "password": "p:w"}},
                "c.example": {{"auth": "{}"}}
            }}}}"#,
            auth("alice", "pa:ss"),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode("carol:pw1"),
        );
        let got = |image| chosen(&config, image).map(|(_, user, password)| (user, password));
        assert_eq!(got("a.example/x"), Some(("alice".into(), "pa:ss".into())));
        assert_eq!(got("b.example/x"), Some(("bob".into(), "p:w".into())));
        assert_eq!(
            got("c.example/x"),
            Some(("carol".into(), "pw1".into())),
            "unpadded"
        );

        let tokens =
            r#"{"auths": {"d.example": {"identitytoken": "refresh", "registrytoken": "bearer"}}}"#;
        let auth = for_image(tokens.as_bytes(), "d.example/x")
            .expect("parses")
            .expect("matches");
        assert_eq!(
            (
                auth.identity_token.map(|t| t.expose().to_vec()),
                auth.registry_token.map(|t| t.expose().to_vec())
            ),
            (Some(b"refresh".to_vec()), Some(b"bearer".to_vec()))
        );
    }

    #[test]
    fn credentials_reach_docker_as_its_client_sends_them() {
        let config = format!(
            r#"{{"auths": {{"docker.io": {{"auth": "{}"}}}}}}"#,
            auth("u", "p")
        );
        let credentials = for_image(config.as_bytes(), "busybox")
            .expect("parses")
            .expect("matches")
            .to_docker();
        assert_eq!(
            (
                credentials.username.as_deref(),
                credentials.password.as_deref(),
                credentials.serveraddress.as_deref(),
                credentials.identitytoken,
            ),
            (
                Some("u"),
                Some("p"),
                Some("https://index.docker.io/v1/"),
                None
            )
        );
    }

    #[test]
    fn errors_name_the_field_never_the_value() {
        let secret = "hunter2";
        for (config, expected) in [
            (format!(r#"{{"auths": {{"r.example": {{"auth": "{secret}"#), "`.dockerconfigjson` is not JSON (line 1, column 41)".to_string()),
            (format!(r#"["{secret}"]"#), "`.dockerconfigjson` must be a JSON object with an `auths` map".into()),
            (format!(r#"{{"r.example": {{"password": "{secret}"}}}}"#), r#"`.dockerconfigjson` has no `auths` map (Docker's config.json: {"auths": {"REGISTRY": {"auth": ...}}})"#.into()),
            (r#"{"auths": {}, "credsStore": "desktop"}"#.into(), "`.dockerconfigjson`: `credsStore` (a credential helper on the machine that wrote it) is not supported; put the credentials in `auths`".into()),
            (r#"{"auths": {"r.example": {}}, "credHelpers": {"r.example": "gcr"}}"#.into(), "`.dockerconfigjson`: `credHelpers` (a credential helper on the machine that wrote it) is not supported; put the credentials in `auths`".into()),
            (format!(r#"{{"auths": {{"r.example": "{secret}"}}}}"#), "`.dockerconfigjson`: `auths.r.example` must be an object".into()),
            (r#"{"auths": {"r.example": {"password": 7}}}"#.into(), "`.dockerconfigjson`: `auths.r.example.password` must be a string".into()),
            (format!(r#"{{"auths": {{"r.example": {{"passwd": "{secret}"}}}}}}"#), "`.dockerconfigjson`: `auths.r.example`: unknown field `passwd` (known: auth, username, password, identitytoken, registrytoken, email)".into()),
            (format!(r#"{{"auths": {{"r.example": {{"auth": "{secret}!"}}}}}}"#), "`.dockerconfigjson`: `auths.r.example.auth` is not base64".into()),
            (format!(r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#, base64::engine::general_purpose::STANDARD.encode(secret)), "`.dockerconfigjson`: `auths.r.example.auth` does not decode to `username:password` in UTF-8".into()),
            (r#"{"auths": {"r.example": {"email": "a@b"}}}"#.into(), "`.dockerconfigjson`: `auths.r.example` has no credentials (`auth`, `username` and `password`, or `identitytoken`)".into()),
            (r#"{"auths": {"https://": {"auth": "dTpw"}}}"#.into(), "`.dockerconfigjson`: `auths` key `https://` is not a registry (`host[:port][/path]`, optionally after `https://`)".into()),
            (r#"{"auths": {"r.example:port": {"auth": "dTpw"}}}"#.into(), "`.dockerconfigjson`: `auths` key `r.example:port` is not a registry (`host[:port][/path]`, optionally after `https://`)".into()),
        ] {
            let error = for_image(config.as_bytes(), "r.example/app").expect_err(&expected);
            let message = error.to_string();
            assert_eq!(message, expected);
            assert!(!format!("{message} {error:?}").contains(secret));
        }
    }

    #[test]
    fn every_entry_is_checked_whichever_matches() {
        let config = r#"{"auths": {"a.example": {"auth": "dTpw"}, "b.example": {"auth": "!"}}}"#;
        assert!(matches!(
            for_image(config.as_bytes(), "a.example/app"),
            Err(DockerConfigError::AuthNotBase64 { .. })
        ));
    }

    #[test]
    fn docker_client_settings_beside_auths_are_not_read() {
        // "dTpwdw==" is `u:pw`.
        let config = r#"{"auths": {"a.example": {"auth": "dTpwdw=="}}, "psFormat": "table", "HttpHeaders": {"X": "y"}}"#;
        assert_eq!(
            chosen(config, "a.example/app").map(|(_, user, password)| (user, password)),
            Some(("u".into(), "pw".into()))
        );
    }

    #[test]
    fn the_registry_of_an_image() {
        for (image, registry, repository) in [
            ("busybox", "docker.io", "library/busybox"),
            ("busybox:1.36", "docker.io", "library/busybox"),
            ("team/app:1", "docker.io", "team/app"),
            ("docker.io/busybox", "docker.io", "library/busybox"),
            ("index.docker.io/team/app", "docker.io", "team/app"),
            ("localhost/app", "localhost", "app"),
            ("localhost:5000/a/b:2", "localhost:5000", "a/b"),
            ("Registry/app", "registry", "app"),
            (
                "registry.example/team/app@sha256:00",
                "registry.example",
                "team/app",
            ),
        ] {
            assert_eq!(
                split_registry(image),
                (registry.to_string(), repository.to_string()),
                "{image}"
            );
        }
    }
}
