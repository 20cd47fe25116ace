//! An Ingress's `tls`: its entries decoded (hosts as rules' hosts, and a
//! Secret by name), and the cross-object checks once every object is read:
//! each names a `kubernetes.io/tls` Secret of the Ingress's namespace, no
//! name is given two certificates, and, once the Secrets' values are
//! opened, each certificate and key can be served (what the node proxies
//! will read, [`crate::proxy::tls`]).

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::proxy::tls;

const TLS: Schema = Schema {
    known: &["hosts", "secretName"],
    unsupported: &[],
    ignored: &[],
    hints: &[
        ("secret", "the Secret is named by `secretName`"),
        ("host", "a TLS entry lists its hosts in `hosts`"),
    ],
};

pub(super) const TLS_FIELD: &str = "spec.tls";

/// An entry's `secretName`, for the cross-object checks.
fn secret_name_field(entry: usize) -> String {
    format!("{TLS_FIELD}[{entry}].secretName")
}

impl Decoder<'_> {
    /// One entry of `spec.tls`: its hosts, checked as rules' hosts, and
    /// the Secret (checked to exist, and to be a TLS Secret, once every
    /// object is read).
    pub(super) fn ingress_tls(&mut self, node: &Node, i: usize) -> Option<IngressTls> {
        let path = index(TLS_FIELD, i);
        let fields = self.fields(node, &path, &TLS)?;
        let mut hosts = Some(Vec::new());
        if let Some(hosts_node) = fields.get("hosts") {
            let hosts_path = join(&path, "hosts");
            match self.sequence(hosts_node, &hosts_path) {
                Some(items) => {
                    for (j, item) in items.iter().enumerate() {
                        let host_path = index(&hosts_path, j);
                        self.record(&host_path, item);
                        let host = self.ingress_host(item, &host_path);
                        match (host, hosts.as_mut()) {
                            (Some(host), Some(hosts)) => hosts.push(host),
                            _ => hosts = None,
                        }
                    }
                }
                None => hosts = None,
            }
        }
        let secret_path = join(&path, "secretName");
        let secret_name = match fields.get("secretName") {
            Some(name) => {
                self.record(&secret_path, name);
                self.checked_name(name, &secret_path, "secret name", names::dns1123_subdomain)
            }
            None => {
                let diagnostic = self.error(node, &secret_path, "missing field `secretName`");
                Self::hint(
                    diagnostic,
                    "flotilla ends TLS with the certificate of a `kubernetes.io/tls` Secret of the \
                     Ingress's namespace: name it in `secretName`",
                );
                None
            }
        };
        Some(IngressTls {
            hosts: hosts?,
            secret_name: secret_name?,
        })
    }
}

/// The cross-object checks of Ingresses' `tls`: each `secretName` names a
/// Secret of the Ingress's namespace of type `kubernetes.io/tls`; no host
/// is given the certificates of two Secrets, and at most one Secret is the
/// certificate of every other host (an entry without `hosts`): every node
/// serves one certificate per name, whatever the Ingress.
pub(in crate::manifest) fn check_ingress_tls(
    secrets: &[Secret],
    ingresses: &[Ingress],
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    // Host (`None`: an entry without hosts) -> the Secret, and where.
    let mut claimed: BTreeMap<Option<&IngressHost>, (String, String, SourceLocation)> =
        BTreeMap::new();
    let mut in_source_order: Vec<&Ingress> = ingresses.iter().collect();
    in_source_order.sort_by(|a, b| a.meta.source.cmp(&b.meta.source));
    for ingress in in_source_order {
        let object = ingress.key().to_string();
        let namespace = &ingress.meta.namespace;
        for (i, entry) in ingress.tls.iter().enumerate() {
            let field = secret_name_field(i);
            let at = ingress.meta.field_location(&field);
            let diagnostic = |message: String| {
                Diagnostic::error(message, at.clone())
                    .with_object(object.clone())
                    .with_field_path(field.clone())
            };
            let in_namespace: Vec<&Secret> = secrets
                .iter()
                .filter(|s| s.meta.namespace == *namespace)
                .collect();
            match in_namespace
                .iter()
                .find(|s| s.meta.name == entry.secret_name)
            {
                None => {
                    let names: Vec<&str> =
                        in_namespace.iter().map(|s| s.meta.name.as_str()).collect();
                    let hint = match names::did_you_mean(&entry.secret_name, &names) {
                        Some(close) => format!("did you mean `{close}`?"),
                        None => format!(
                            "declare a Secret `{}` of type `kubernetes.io/tls` in namespace \
                             `{namespace}` (an Ingress reads the Secrets of its own namespace)",
                            entry.secret_name
                        ),
                    };
                    diagnostics.push(
                        diagnostic(format!(
                            "TLS Secret `{}` is not declared in namespace `{namespace}`",
                            entry.secret_name
                        ))
                        .with_hint(hint),
                    );
                }
                Some(secret) if secret.secret_type != SecretType::Tls => {
                    diagnostics.push(
                        diagnostic(format!(
                            "Secret `{}` is of type `{}`, not `kubernetes.io/tls`",
                            entry.secret_name,
                            secret.secret_type.as_str()
                        ))
                        .with_hint(
                            "an Ingress's certificate is a Secret of `type: kubernetes.io/tls` \
                             with `tls.crt` (PEM certificates, the server's first) and `tls.key` \
                             (its PEM private key)",
                        ),
                    );
                }
                Some(_) => {}
            }
            let secret = format!("{namespace}/{}", entry.secret_name);
            let hosts: Vec<(Option<&IngressHost>, String)> = if entry.hosts.is_empty() {
                vec![(None, field.clone())]
            } else {
                (0..entry.hosts.len())
                    .map(|j| {
                        (
                            Some(&entry.hosts[j]),
                            format!("{TLS_FIELD}[{i}].hosts[{j}]"),
                        )
                    })
                    .collect()
            };
            for (host, host_field) in hosts {
                match claimed.get(&host) {
                    Some((first_secret, _, _)) if *first_secret == secret => {}
                    Some((first_secret, first, first_at)) => {
                        let (what, hint) = match host {
                            Some(host) => (
                                format!("host `{host}`"),
                                "a name is served with one certificate: list the host in one \
                                 Secret's entry only",
                            ),
                            None => (
                                "the default certificate (an entry without `hosts`)".to_string(),
                                "one certificate serves the names no entry lists: give the \
                                 other entries their `hosts`",
                            ),
                        };
                        diagnostics.push(
                            Diagnostic::error(
                                format!(
                                    "{what} is given Secret {secret}, but {first} gives it \
                                     Secret {first_secret} (at {first_at})"
                                ),
                                ingress.meta.field_location(&host_field),
                            )
                            .with_object(object.clone())
                            .with_field_path(host_field)
                            .with_hint(hint),
                        );
                    }
                    None => {
                        let at = ingress.meta.field_location(&host_field);
                        claimed.insert(
                            host,
                            (secret.clone(), format!("{object}: {host_field}"), at),
                        );
                    }
                }
            }
        }
    }
    diagnostics
}

/// The certificates of the `kubernetes.io/tls` Secrets the Ingresses
/// name, once their values are opened: `tls.crt` and `tls.key` are PEM, the
/// key is one the proxies can sign with, and it is the first certificate's.
/// A Secret whose values are sealed is not checked (nothing can be read
/// without the key). Each problem is an error at the Secret, and never
/// shows a value.
pub(in crate::manifest) fn check_tls_certificates(
    secrets: &[Secret],
    ingresses: &[Ingress],
) -> Vec<Diagnostic> {
    let named: BTreeSet<(&str, &str)> = ingresses
        .iter()
        .flat_map(|ingress| {
            ingress
                .tls
                .iter()
                .map(|entry| (ingress.meta.namespace.as_str(), entry.secret_name.as_str()))
        })
        .collect();
    let mut diagnostics = Vec::new();
    for secret in secrets {
        if secret.secret_type != SecretType::Tls
            || !named.contains(&(secret.meta.namespace.as_str(), secret.meta.name.as_str()))
        {
            continue;
        }
        let (Some(chain), Some(key)) = (
            secret.opened(tls::CERTIFICATE_KEY),
            secret.opened(tls::PRIVATE_KEY_KEY),
        ) else {
            continue;
        };
        if let Err(error) = tls::check_pair(chain.expose(), key.expose()) {
            let field = key_path_of(error.key());
            diagnostics.push(
                Diagnostic::error(
                    format!("the Ingress certificate cannot be served: {error}"),
                    secret.meta.field_location(&field),
                )
                .with_object(secret.key().to_string())
                .with_field_path(field)
                .with_hint(
                    "`tls.crt` holds the PEM certificates (the server's first, then its \
                     intermediates) and `tls.key` that certificate's PEM private key (PKCS#8, \
                     PKCS#1 or SEC1); seal them again with `flotilla secret edit`",
                ),
            );
        }
    }
    diagnostics
}

/// `data.tls.crt` style field paths of a Secret's key.
fn key_path_of(key: &str) -> String {
    format!("data[{key:?}]")
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::decode::ingress::tests::{ingresses, rendered};

    fn secret(namespace: &str, name: &str, secret_type: SecretType) -> Secret {
        Secret {
            meta: ObjectMeta {
                name: name.to_string(),
                namespace: namespace.to_string(),
                source: SourceLocation {
                    file: format!("{name}.yaml"),
                    line: 1,
                    column: 1,
                },
                ..ObjectMeta::default()
            },
            secret_type,
            data: BTreeMap::new(),
            immutable: false,
        }
    }

    const TLS_SITES: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: shop}
spec:
  tls:
  - {hosts: [shop.example.com, '*.example.com'], secretName: shop-tls}
  - {hosts: [admin.example.com], secretName: shop-tsl}
  - {hosts: [api.example.com], secretName: api-key}
  - {secretName: shop-tls}
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other, namespace: shop}
spec:
  tls:
  - {hosts: [shop.example.com], secretName: shop-tls}
  - {hosts: [www.example.com, '*.example.com'], secretName: other-tls}
  - {secretName: other-tls}
  rules:
  - http:
      paths:
      - {path: /other, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: elsewhere, namespace: blog}
spec:
  tls:
  - {hosts: [blog.example.org], secretName: shop-tls}
  rules:
  - http:
      paths:
      - {path: /blog, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
";

    fn tls_secrets() -> Vec<Secret> {
        vec![
            secret("shop", "shop-tls", SecretType::Tls),
            secret("shop", "other-tls", SecretType::Tls),
            secret("shop", "api-key", SecretType::Opaque),
            secret("blog", "blog-tls", SecretType::Tls),
        ]
    }

    #[test]
    fn tls_cross_object_errors() {
        let diagnostics = check_ingress_tls(&tls_secrets(), &ingresses(TLS_SITES));
        insta::assert_snapshot!(rendered(&diagnostics));
    }

    #[test]
    fn tls_secrets_that_exist_pass() {
        let text = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: shop}
spec:
  tls:
  - {hosts: [shop.example.com, '*.example.com'], secretName: shop-tls}
  - {secretName: shop-tls}
  defaultBackend: {service: {name: web, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: other, namespace: shop}
spec:
  tls:
  - {hosts: [shop.example.com, www.example.com], secretName: shop-tls}
  - {hosts: [a.b.example.com], secretName: other-tls}
  rules:
  - http:
      paths:
      - {path: /other, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
";
        let diagnostics = check_ingress_tls(&tls_secrets(), &ingresses(text));
        assert!(diagnostics.is_empty(), "{}", rendered(&diagnostics));
    }

    /// A TLS Secret's opened values: served only when `tls.crt` is PEM
    /// certificates and `tls.key` the first one's key; the error names the
    /// Secret's key, never a value.
    #[test]
    fn opened_tls_certificates_are_checked() {
        let certified = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()])
            .expect("a certificate");
        let other_key = rcgen::KeyPair::generate().expect("a key").serialize_pem();
        let key = certified.key_pair.serialize_pem();
        let opened = |namespace: &str, name: &str, chain: &str, key: &str| {
            let mut secret = secret(namespace, name, SecretType::Tls);
            for (k, v) in [("tls.crt", chain), ("tls.key", key)] {
                let value = SecretValue::Opened(Sensitive::new(v.as_bytes().to_vec()));
                secret.data.insert(k.to_string(), value);
            }
            secret
        };
        let chain = certified.cert.pem();
        let mut sealed = secret("shop", "other-tls", SecretType::Tls);
        sealed.data.insert(
            "tls.crt".to_string(),
            SecretValue::Sealed(SealedText {
                version: "0123456789abcdef".to_string(),
                ciphertext: String::new(),
            }),
        );
        let secrets = vec![
            opened("shop", "shop-tls", &chain, &key),
            // Not the certificate's key: an error at `tls.key`.
            opened("blog", "shop-tls", &chain, &other_key),
            // Not named by any Ingress: not checked.
            opened("shop", "unused-tls", "not PEM", &key),
            sealed,
        ];
        let diagnostics = check_tls_certificates(&secrets, &ingresses(TLS_SITES));
        let shown = rendered(&diagnostics);
        insta::assert_snapshot!(shown);
        assert!(!shown.contains("PRIVATE KEY"));
    }
}
