//! The `Http` mode and the Ingress: an HTTP/1.1 reverse proxy. Each
//! request of a client connection (kept alive) goes to an endpoint chosen
//! for it, over a new connection (directly, or through the endpoint's
//! node's tunnel), with the client's address appended to `X-Forwarded-For`
//! and `X-Forwarded-Proto: http` (`https` on the Ingress's HTTPS port,
//! whose TLS the daemon ends before). No endpoint reachable: 503.
//!
//! On a Service port's address every request goes to that port. On the
//! Ingress port, each request goes to the Service port the table's
//! Ingress routes choose for its host and path (whatever that port's own
//! mode: the Ingress speaks HTTP to it, after a PROXY header if the port
//! asks for one); no route and no default backend: 404.
//!
//! A request's connection to its endpoint lasts until the response's body
//! is sent, and the target's count with it, so a drain waits for it.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::counters::{PortGuard, PortKey, TargetGuard};
use super::daemon::Proxy;
use super::forward::{self, Entry, ForwardError};
use super::served::PortState;

/// Headers that belong to one connection, never forwarded
/// (RFC 9110 section 7.6.1, and what proxies commonly add).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Where a client connection's requests go.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Frontend {
    /// The Service port served at this listen address.
    Service(SocketAddrV4),
    /// The Service port the Ingress routes choose, request by request;
    /// `https`: the client spoke TLS to the proxy.
    Ingress { https: bool },
}

/// Serves one client connection until it closes or the proxy stops (then
/// the request in progress finishes and the connection closes).
pub(crate) async fn serve<S>(
    proxy: Arc<Proxy>,
    client: S,
    peer: SocketAddr,
    frontend: Frontend,
    mut stopping: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        async move { Ok::<_, Infallible>(forward(&proxy, peer, frontend, request).await) }
    });
    let connection =
        // A client may shut its side after the request (`nc`, many HTTP/1.0
        // clients) and still wait for the answer: that is not a hang-up.
        hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .serve_connection(TokioIo::new(client), service);
    tokio::pin!(connection);
    let stop = async move {
        // The sender lives as long as the proxy: an error is a stop too.
        let _ = stopping.wait_for(|stopping| *stopping).await;
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(client = %peer, "HTTP connection ended: {error}");
    }
}

async fn forward(
    proxy: &Proxy,
    peer: SocketAddr,
    frontend: Frontend,
    mut request: Request<Incoming>,
) -> Response<ProxyBody> {
    let ingress_backend;
    let (state, entry) = match frontend {
        Frontend::Service(listen) => {
            let Some(state) = proxy.port_state(listen) else {
                return error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this address serves no Service any more",
                );
            };
            (state, Entry::Address(listen))
        }
        Frontend::Ingress { .. } => match route_ingress(proxy, &request) {
            Ok((state, backend)) => {
                ingress_backend = backend;
                (state, Entry::Ingress(&ingress_backend))
            }
            Err((status, message)) => {
                tracing::debug!(client = %peer, %status, uri = %request.uri(), "no Ingress backend: {message}");
                return error_response(status, &message);
            }
        },
    };
    let open = state.counters.accept();
    let upstream = match forward::connect(proxy, entry, peer).await {
        Ok(upstream) => upstream,
        Err(error) => {
            state.counters.error();
            tracing::warn!(client = %peer, "request answered 503: {error}");
            return error_response(StatusCode::SERVICE_UNAVAILABLE, &error.to_string());
        }
    };
    remove_hop_by_hop(request.headers_mut());
    let https = matches!(frontend, Frontend::Ingress { https: true });
    add_forwarded(request.headers_mut(), peer.ip(), https);
    let target = upstream.guard.target();
    match send(upstream.stream, request).await {
        Ok(mut response) => {
            remove_hop_by_hop(response.headers_mut());
            response.map(|body| ProxyBody {
                inner: body.boxed(),
                _guards: Some((upstream.guard, open)),
            })
        }
        Err(error) => {
            state.counters.error();
            tracing::warn!(client = %peer, %target, "request answered 502: {error}");
            error_response(
                StatusCode::BAD_GATEWAY,
                &format!("endpoint {target}: {error}"),
            )
        }
    }
}

/// The Service port the Ingress routes send `request` to, by its host
/// (the target's in absolute form, else the `Host` header) and path; else
/// the status and message to answer: 404 when no route matches, 503 when
/// the route's Service port is not served.
fn route_ingress(
    proxy: &Proxy,
    request: &Request<Incoming>,
) -> Result<(Arc<PortState>, PortKey), (StatusCode, String)> {
    let host = request
        .uri()
        .host()
        .or_else(|| request.headers().get(HOST)?.to_str().ok())
        .unwrap_or_default();
    let path = request.uri().path();
    let served = proxy.served();
    let backend = served
        .ingress
        .as_ref()
        .and_then(|ingress| ingress.routes.route(host, path))
        .ok_or_else(|| {
            let message = format!("no Ingress route for host {host:?} and path {path:?}");
            (StatusCode::NOT_FOUND, message)
        })?;
    let key = (
        backend.namespace.clone(),
        backend.service.clone(),
        backend.port,
    );
    match served.service_route(&key) {
        Some(route) => Ok((Arc::clone(&route.state), key)),
        None => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            ForwardError::ServiceNotServed(key).to_string(),
        )),
    }
}

async fn send(stream: TcpStream, request: Request<Incoming>) -> hyper::Result<Response<Incoming>> {
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("connection to an endpoint ended: {error}");
        }
    });
    sender.send_request(request).await
}

/// Appends the client to `X-Forwarded-For` (after what earlier proxies
/// wrote), and says whether the client spoke plain HTTP or `https` to the
/// proxy; `X-Forwarded-Host` keeps the host the client asked for.
fn add_forwarded(headers: &mut HeaderMap, client: IpAddr, https: bool) {
    let forwarded_for = HeaderName::from_static("x-forwarded-for");
    let earlier: Vec<&str> = headers
        .get_all(&forwarded_for)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let mut chain = earlier.join(", ");
    if !chain.is_empty() {
        chain.push_str(", ");
    }
    chain.push_str(&client.to_string());
    let chain = HeaderValue::from_str(&chain).expect("addresses and earlier header text");
    headers.insert(forwarded_for, chain);
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Some(host) = headers.get(HOST).cloned() {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
}

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&HOP_BY_HOP.map(HeaderName::from_static)) {
        headers.remove(name);
    }
}

fn error_response(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(ProxyBody {
        inner: body,
        _guards: None,
    });
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response body that keeps its endpoint connection counted (target and
/// Service port) until it has been sent or dropped.
pub(crate) struct ProxyBody {
    inner: http_body_util::combinators::BoxBody<Bytes, hyper::Error>,
    _guards: Option<(TargetGuard, PortGuard)>,
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    fn values(headers: &HeaderMap, name: &str) -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn forwarded_headers_append_the_client_to_earlier_proxies() {
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let mut first = headers(&[("host", "web.example")]);
        add_forwarded(&mut first, client, false);
        assert_eq!(values(&first, "x-forwarded-for"), ["192.0.2.7"]);
        assert_eq!(values(&first, "x-forwarded-proto"), ["http"]);
        assert_eq!(values(&first, "x-forwarded-host"), ["web.example"]);

        let mut later = headers(&[
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "198.51.100.2, 10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        add_forwarded(&mut later, client, false);
        assert_eq!(
            values(&later, "x-forwarded-for"),
            ["203.0.113.1, 198.51.100.2, 10.0.0.1, 192.0.2.7"]
        );
        assert_eq!(values(&later, "x-forwarded-proto"), ["http"]);

        // Over the Ingress's HTTPS, whatever the client claimed.
        let mut secure = headers(&[("host", "web.example"), ("x-forwarded-proto", "http")]);
        add_forwarded(&mut secure, client, true);
        assert_eq!(values(&secure, "x-forwarded-proto"), ["https"]);
        assert!(later.get("x-forwarded-host").is_none());
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut request = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "secret"),
            ("upgrade", "websocket"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut request);
        let left: Vec<&str> = request.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["accept"]);
    }
}
