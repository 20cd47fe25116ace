//! The Ingress over HTTPS, on a real `flotilla-proxy run` process (see
//! `proxy.rs`): certificates made here with rcgen, a real TLS client
//! (rustls, which checks the server's signature with the certificate's
//! key) and real HTTP backends. The client accepts any certificate and
//! the tests compare the one presented with the one expected.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla::proxy::table::{
    Endpoint, IngressBackend, IngressCertificate, IngressRoute, Mode, PathType, PrivateKeyPem,
    Response, Table,
};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;

use super::proxy::{
    applied, cluster_ip, http_get, named_http_backend, named_service, port, table, Daemon,
};

/// A certificate and its key, made for `hosts`.
struct Made {
    der: Vec<u8>,
    chain: String,
    key: String,
}

fn make(hosts: &[&str]) -> Made {
    let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
    Made {
        der: made.cert.der().to_vec(),
        chain: made.cert.pem(),
        key: made.key_pair.serialize_pem(),
    }
}

fn certificate(secret: &str, hosts: &[&str], made: &Made) -> IngressCertificate {
    IngressCertificate {
        secret: secret.to_owned(),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        chain: made.chain.clone(),
        key: PrivateKeyPem::new(made.key.clone()),
    }
}

/// Accepts any certificate, and checks the handshake's signature with it:
/// the server proves it holds the certificate's key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, certificate, signature, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, certificate, signature, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTPS client connection (kept alive): the certificate it was shown
/// and a sender of requests on it.
struct Https {
    certificate: Vec<u8>,
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

/// Connects to `address` asking for `name` (none: an address, so no SNI
/// is sent); the handshake's error when it fails.
async fn connect(address: SocketAddrV4, name: Option<&str>) -> std::io::Result<Https> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let server_name = match name {
        Some(name) => ServerName::try_from(name.to_owned()).expect("a DNS name"),
        None => ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    };
    let handshake = async {
        let tcp = TcpStream::connect(address).await?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await?;
        let certificate = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(Https {
            certificate,
            sender,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), handshake)
        .await
        .expect("a handshake within 10 s")
}

impl Https {
    /// `GET path` with `Host: host`: the status and the body.
    async fn get(&mut self, host: &str, path: &str) -> (u16, String) {
        let request = hyper::Request::get(path)
            .header("host", host)
            .body(Empty::new())
            .unwrap();
        let exchange = async {
            let response = self
                .sender
                .send_request(request)
                .await
                .expect("the connection is still open");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .expect("an answer within 10 s")
    }
}

/// Services `web` (every host) and `shop` (host `shop.example`) behind the
/// Ingress, on test octet `test`.
fn routed(generation: u64, test: u8, web: &Endpoint, shop: &Endpoint) -> Table {
    let number = 8080;
    let backend = |service: &str| IngressBackend {
        namespace: "default".to_owned(),
        service: service.to_owned(),
        port: number,
    };
    let mut table = table(
        generation,
        "n1",
        vec![
            named_service(
                "shop",
                cluster_ip(test, 1),
                port(number, Mode::Http, vec![shop.clone()]),
            ),
            named_service(
                "web",
                cluster_ip(test, 2),
                port(number, Mode::Http, vec![web.clone()]),
            ),
        ],
    );
    let route = |host: Option<&str>, service: &str| IngressRoute {
        host: host.map(str::to_owned),
        path: "/".to_owned(),
        path_type: PathType::Prefix,
        backend: backend(service),
    };
    table.ingress = vec![route(Some("shop.example"), "shop"), route(None, "web")];
    table
}

/// SNI chooses the certificate (the exact name, then a wildcard, then the
/// default, else no handshake), and the request is routed as on port 80,
/// with `X-Forwarded-Proto: https`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_the_certificate_of_the_name_asked_for_and_routes_the_request() {
    let shop = named_http_backend("shop", "n1", None).await;
    let web = named_http_backend("web", "n1", None).await;
    let proxy = Daemon::start("n1").await;
    let shop_certificate = make(&["shop.example"]);
    let wildcard = make(&["*.example.org"]);
    let fallback = make(&["fallback.invalid"]);

    let mut served = routed(1, 20, &web, &shop);
    served.ingress_certificates = vec![
        certificate("default/shop-tls", &["shop.example"], &shop_certificate),
        certificate("default/org-tls", &["*.example.org"], &wildcard),
    ];
    assert_eq!(proxy.apply(&served).await, applied(1));
    let https = proxy.ingress_tls;

    let mut client = connect(https, Some("shop.example")).await.unwrap();
    assert_eq!(client.certificate, shop_certificate.der);
    let (status, body) = client.get("shop.example", "/cart").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("shop /cart\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1"), "{body}");

    // A wildcard covers one label; the route follows the Host header.
    let mut client = connect(https, Some("blog.example.org")).await.unwrap();
    assert_eq!(client.certificate, wildcard.der);
    let (status, body) = client.get("blog.example.org", "/").await;
    assert_eq!((status, body.lines().next()), (200, Some("web /")));

    // No certificate for the name, and no default: no handshake.
    assert!(connect(https, Some("a.b.example.org")).await.is_err());
    assert!(connect(https, Some("other.example")).await.is_err());
    assert!(connect(https, None).await.is_err());
    // Port 80 is still plain HTTP.
    let (status, body) = http_get(Ipv4Addr::LOCALHOST, proxy.ingress, "shop.example", "/")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.lines().any(|line| line == "x-forwarded-proto: http"),
        "{body}"
    );

    // With a default (an entry without hosts): every other name, and a
    // client that sends none.
    served.generation = 2;
    served
        .ingress_certificates
        .push(certificate("default/fallback-tls", &[], &fallback));
    assert_eq!(proxy.apply(&served).await, applied(2));
    for name in [Some("other.example"), Some("a.b.example.org"), None] {
        let client = connect(https, name).await.unwrap();
        assert_eq!(client.certificate, fallback.der, "{name:?}");
    }
    let client = connect(https, Some("shop.example")).await.unwrap();
    assert_eq!(client.certificate, shop_certificate.der);

    // Without certificates, nothing listens on the HTTPS port.
    served.generation = 3;
    served.ingress_certificates.clear();
    assert_eq!(proxy.apply(&served).await, applied(3));
    assert!(TcpStream::connect(https).await.is_err());
}

/// A rotated certificate: a connection kept alive across the new table
/// goes on (requests before and after, on the same connection, with the
/// certificate it was shown), and a new connection is shown the new one.
/// A certificate that cannot be served is refused, naming its Secret, and
/// the previous table stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_to_new_connections_without_dropping_open_ones() {
    let shop = named_http_backend("shop", "n1", None).await;
    let web = named_http_backend("web", "n1", None).await;
    let proxy = Daemon::start("n1").await;
    let old = make(&["shop.example"]);
    let new = make(&["shop.example"]);

    let mut served = routed(1, 21, &web, &shop);
    served.ingress_certificates = vec![certificate("default/shop-tls", &["shop.example"], &old)];
    assert_eq!(proxy.apply(&served).await, applied(1));
    let https = proxy.ingress_tls;

    let mut long_lived = connect(https, Some("shop.example")).await.unwrap();
    assert_eq!(long_lived.certificate, old.der);
    assert_eq!(long_lived.get("shop.example", "/before").await.0, 200);

    served.generation = 2;
    served.ingress_certificates = vec![certificate("default/shop-tls", &["shop.example"], &new)];
    assert_eq!(proxy.apply(&served).await, applied(2));

    let (status, body) = long_lived.get("shop.example", "/after").await;
    assert_eq!((status, body.lines().next()), (200, Some("shop /after")));
    assert!(!long_lived.sender.is_closed());
    let mut fresh = connect(https, Some("shop.example")).await.unwrap();
    assert_eq!(fresh.certificate, new.der);
    assert_eq!(fresh.get("shop.example", "/").await.0, 200);

    // A key that is not the certificate's: refused, the Secret named, and
    // the new table goes on being served to old and new connections.
    let mismatched = Made {
        key: make(&["shop.example"]).key,
        ..make(&["shop.example"])
    };
    let mut refused = served.clone();
    refused.generation = 3;
    refused.ingress_certificates = vec![certificate(
        "default/shop-tls",
        &["shop.example"],
        &mismatched,
    )];
    let Response::Error { message } = proxy.apply(&refused).await else {
        panic!("a key that is not the certificate's must be refused");
    };
    assert_eq!(
        message,
        "the Ingress certificate of Secret default/shop-tls: tls.key is not the key of the first \
         certificate of tls.crt"
    );
    assert!(!message.contains(&mismatched.key[40..80]));
    assert_eq!(proxy.status().await.generation, 2);
    let again = connect(https, Some("shop.example")).await.unwrap();
    assert_eq!(again.certificate, new.der);
    assert_eq!(long_lived.get("shop.example", "/still").await.0, 200);

    // Not PEM at all: refused too.
    refused.ingress_certificates[0].chain = "not a certificate".to_owned();
    let Response::Error { message } = proxy.apply(&refused).await else {
        panic!("a chain that is not PEM must be refused");
    };
    assert!(
        message.contains("Secret default/shop-tls: tls.crt"),
        "{message}"
    );
    assert_eq!(proxy.status().await.generation, 2);
}

/// The kept table holds the keys: it is root's alone (0600), and a
/// restarted proxy serves HTTPS from it before any leader writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_table_is_private_and_serves_https_after_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let shop = named_http_backend("shop", "n1", None).await;
    let web = named_http_backend("web", "n1", None).await;
    let proxy = Daemon::start("n1").await;
    let made = make(&["shop.example"]);
    let mut served = routed(4, 22, &web, &shop);
    served.ingress_certificates = vec![certificate("default/shop-tls", &["shop.example"], &made)];
    assert_eq!(proxy.apply(&served).await, applied(4));
    let kept = proxy.state.path().join("state").join("table.json");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", kept.display());

    let state = Arc::clone(&proxy.state);
    let (tunnel_port, ingress_port) = (proxy.tunnel.port(), proxy.ingress.port());
    assert!(proxy.stop().success());
    let proxy = Daemon::start_in("n1", state, tunnel_port, ingress_port).await;
    assert_eq!(proxy.status().await.generation, 4);
    let mut client = connect(proxy.ingress_tls, Some("shop.example"))
        .await
        .unwrap();
    assert_eq!(client.certificate, made.der);
    assert_eq!(client.get("shop.example", "/").await.0, 200);
}
