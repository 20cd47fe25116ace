//! The Ingress's HTTPS: the certificates of a table read into what
//! rustls serves, and the choice of one by the name the client asks for
//! (SNI). Reading a certificate is pure, so the leader checks the same
//! way before it writes a table ([`check_pair`]).
//!
//! The choice, for the name a client sends: the certificate listing that
//! name exactly; else one listing the wildcard of its parent
//! (`*.example.com` for `a.example.com`, one label only); else the
//! certificate of an Ingress TLS entry without hosts (the default), if
//! the table has one; else none, and the handshake fails (a client that
//! sends no name gets the default or nothing). flotilla makes no
//! self-signed stand-in certificate as ingress-nginx does: a client is
//! refused rather than shown a certificate no one issued.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::table::IngressCertificate;

/// The key of a `kubernetes.io/tls` Secret holding the PEM certificates.
pub const CERTIFICATE_KEY: &str = "tls.crt";
/// The key of a `kubernetes.io/tls` Secret holding the PEM private key.
pub const PRIVATE_KEY_KEY: &str = "tls.key";

/// Why a certificate and key cannot be served. No message shows any part
/// of the key (nor the library's own messages about it, which may quote
/// a line of it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("tls.crt is not text")]
    CertificateNotText,
    #[error("tls.crt holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    NoCertificate,
    #[error("tls.crt is not valid PEM")]
    CertificatePem,
    #[error("tls.crt: the first certificate cannot be read ({0})")]
    Certificate(String),
    #[error("tls.key is not text")]
    KeyNotText,
    #[error("tls.key holds no PEM private key (`-----BEGIN PRIVATE KEY-----`, PKCS#1 or SEC1)")]
    NoKey,
    #[error("tls.key is not valid PEM")]
    KeyPem,
    #[error("tls.key is not a key the proxy can sign with (RSA, ECDSA P-256 or P-384, Ed25519)")]
    UnsupportedKey,
    #[error("tls.key is not the key of the first certificate of tls.crt")]
    KeyMismatch,
}

impl CertificateError {
    /// The Secret key the problem is in: `tls.crt` or `tls.key`.
    pub fn key(&self) -> &'static str {
        match self {
            CertificateError::CertificateNotText
            | CertificateError::NoCertificate
            | CertificateError::CertificatePem
            | CertificateError::Certificate(_) => CERTIFICATE_KEY,
            CertificateError::KeyNotText
            | CertificateError::NoKey
            | CertificateError::KeyPem
            | CertificateError::UnsupportedKey
            | CertificateError::KeyMismatch => PRIVATE_KEY_KEY,
        }
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Whether `chain` (PEM certificates, the server's first) and `key` (its
/// PEM private key) can be served; the bytes of a Secret's `tls.crt` and
/// `tls.key`.
pub fn check_pair(chain: &[u8], key: &[u8]) -> Result<(), CertificateError> {
    let chain = std::str::from_utf8(chain).map_err(|_| CertificateError::CertificateNotText)?;
    let key = std::str::from_utf8(key).map_err(|_| CertificateError::KeyNotText)?;
    certified_key(chain, key).map(drop)
}

/// The chain and key, read and checked against each other.
fn certified_key(chain: &str, key: &str) -> Result<CertifiedKey, CertificateError> {
    let certificates = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| CertificateError::CertificatePem)?;
    if certificates.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|error| match error {
        pem::Error::NoItemsFound => CertificateError::NoKey,
        _ => CertificateError::KeyPem,
    })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|_| CertificateError::UnsupportedKey)?;
    let certified = CertifiedKey::new(certificates, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertificateError::KeyMismatch)
        }
        // Every key ring loads knows its public key; were one not to, the
        // handshake's signature would still fail for a wrong key.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(error) => Err(CertificateError::Certificate(error.to_string())),
    }
}

/// What a TLS handshake is given, by the name the client asks for; see
/// the module documentation. Generic so the choice is tested on its own.
#[derive(Clone, Debug)]
pub(crate) struct ByName<T> {
    /// By host, lowercase.
    exact: HashMap<String, T>,
    /// By the wildcard's suffix (`example.com` for `*.example.com`).
    wildcard: HashMap<String, T>,
    default: Option<T>,
}

impl<T> Default for ByName<T> {
    fn default() -> Self {
        ByName {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        }
    }
}

impl<T: Clone> ByName<T> {
    /// Serves `value` for `hosts` (none: the default). A name already
    /// given keeps its first value (the leader writes no table that gives
    /// one twice).
    pub(crate) fn insert(&mut self, hosts: &[String], value: T) {
        if hosts.is_empty() {
            self.default.get_or_insert(value);
            return;
        }
        for host in hosts {
            let host = host.to_ascii_lowercase();
            match host.strip_prefix("*.") {
                Some(suffix) => self.wildcard.entry(suffix.to_string()),
                None => self.exact.entry(host),
            }
            .or_insert_with(|| value.clone());
        }
    }

    /// What a client asking for `name` (none: it sent no SNI) is given.
    pub(crate) fn select(&self, name: Option<&str>) -> Option<&T> {
        let chosen = name.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (label, suffix) = name.split_once('.')?;
                if label.is_empty() {
                    return None;
                }
                self.wildcard.get(suffix)
            })
        });
        chosen.or(self.default.as_ref())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }
}

/// The certificate resolver of one table's HTTPS.
struct Resolver {
    certificates: ByName<Arc<CertifiedKey>>,
    /// The hosts served, for `Debug` (which must not show the keys).
    hosts: Vec<String>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = client_hello.server_name();
        let chosen = self.certificates.select(name).cloned();
        if chosen.is_none() {
            tracing::debug!(?name, "TLS handshake refused: no certificate for this name");
        }
        chosen
    }
}

/// A certificate of the table that cannot be served, naming its Secret.
#[derive(Debug, thiserror::Error)]
#[error("the Ingress certificate of Secret {secret}: {source}")]
pub(crate) struct TableCertificateError {
    pub(crate) secret: String,
    pub(crate) source: CertificateError,
}

/// What the HTTPS listener serves for `certificates` (`None`: there are
/// none); every certificate is read and checked, or the first that
/// cannot be is the error.
pub(crate) fn server_config(
    certificates: &[IngressCertificate],
) -> Result<Option<Arc<ServerConfig>>, TableCertificateError> {
    let mut by_name = ByName::default();
    let mut hosts = Vec::new();
    for certificate in certificates {
        let certified =
            certified_key(&certificate.chain, certificate.key.expose()).map_err(|source| {
                TableCertificateError {
                    secret: certificate.secret.clone(),
                    source,
                }
            })?;
        by_name.insert(&certificate.hosts, Arc::new(certified));
        if certificate.hosts.is_empty() {
            hosts.push(format!("(default: {})", certificate.secret));
        }
        hosts.extend(certificate.hosts.iter().cloned());
    }
    if by_name.is_empty() {
        return Ok(None);
    }
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver {
            certificates: by_name,
            hosts,
        }));
    // The proxy speaks HTTP/1.1 to its clients.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_name(entries: &[(&[&str], &'static str)]) -> ByName<&'static str> {
        let mut by_name = ByName::default();
        for (hosts, value) in entries {
            let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
            by_name.insert(&hosts, *value);
        }
        by_name
    }

    fn check(by_name: &ByName<&'static str>, name: Option<&str>, expected: Option<&str>) {
        assert_eq!(by_name.select(name).copied(), expected, "{name:?}");
    }

    #[test]
    fn the_exact_name_then_the_wildcard_then_the_default() {
        let certificates = by_name(&[
            (&["shop.example.com", "SHOP.example.org"], "shop"),
            (&["*.example.com"], "wild"),
            (&[], "default"),
            (&["*.a.example.com"], "deep"),
        ]);
        check(&certificates, Some("shop.example.com"), Some("shop"));
        // Case and a trailing dot do not matter.
        check(&certificates, Some("Shop.Example.COM."), Some("shop"));
        check(&certificates, Some("shop.example.org"), Some("shop"));
        check(&certificates, Some("blog.example.com"), Some("wild"));
        // A wildcard covers one label only.
        check(&certificates, Some("x.blog.example.com"), Some("default"));
        check(&certificates, Some("x.a.example.com"), Some("deep"));
        check(&certificates, Some("example.com"), Some("default"));
        check(&certificates, Some(".example.com"), Some("default"));
        // No name sent (an address): the default.
        check(&certificates, None, Some("default"));
    }

    #[test]
    fn without_a_default_an_unknown_name_gets_nothing() {
        let certificates = by_name(&[(&["shop.example.com"], "shop"), (&["*.example.org"], "org")]);
        check(&certificates, Some("other.example.com"), None);
        check(&certificates, None, None);
        check(&certificates, Some("a.example.org"), Some("org"));
        assert!(!certificates.is_empty());
        assert!(ByName::<&str>::default().is_empty());
    }

    #[test]
    fn a_name_given_twice_keeps_its_first_certificate() {
        let certificates = by_name(&[
            (&["shop.example.com"], "first"),
            (&["shop.example.com", "*.example.com"], "second"),
            (&[], "default"),
            (&[], "another default"),
        ]);
        check(&certificates, Some("shop.example.com"), Some("first"));
        check(&certificates, Some("a.example.com"), Some("second"));
        check(&certificates, None, Some("default"));
    }

    #[test]
    fn what_is_not_a_certificate_and_its_key_is_refused_with_the_reason() {
        let pair = rcgen::generate_simple_self_signed(vec!["shop.example.com".to_string()])
            .expect("a certificate");
        let chain = pair.cert.pem();
        let key = pair.key_pair.serialize_pem();
        let other = rcgen::KeyPair::generate().expect("a key").serialize_pem();
        assert_eq!(check_pair(chain.as_bytes(), key.as_bytes()), Ok(()));
        let refused = |chain: &str, key: &str| check_pair(chain.as_bytes(), key.as_bytes());
        assert_eq!(refused(&chain, &other), Err(CertificateError::KeyMismatch));
        assert_eq!(refused("", &key), Err(CertificateError::NoCertificate));
        assert_eq!(refused(&key, &key), Err(CertificateError::NoCertificate));
        assert_eq!(refused(&chain, &chain), Err(CertificateError::NoKey));
        let truncated = &chain[..chain.len() / 2];
        assert_eq!(
            refused(truncated, &key),
            Err(CertificateError::CertificatePem)
        );
        let garbled = chain.replacen("MII", "M*I", 1);
        assert_eq!(
            refused(&garbled, &key),
            Err(CertificateError::CertificatePem)
        );
        let not_a_certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            refused(not_a_certificate, &key),
            Err(CertificateError::Certificate(_))
        ));
        let not_a_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            refused(&chain, not_a_key),
            Err(CertificateError::UnsupportedKey)
        );
        assert_eq!(
            check_pair(&[0xff], key.as_bytes()),
            Err(CertificateError::CertificateNotText)
        );
        assert_eq!(
            check_pair(chain.as_bytes(), &[0xff]),
            Err(CertificateError::KeyNotText)
        );
        // No message quotes the key.
        let errors = [
            CertificateError::KeyMismatch,
            CertificateError::KeyPem,
            CertificateError::NoKey,
        ];
        for error in errors {
            assert_eq!(error.key(), "tls.key");
            assert!(!error.to_string().contains(&key[30..60]));
        }
    }
}
