//! HTTP: the leader's read-only endpoints, and the client `flotilla status`
//! uses to ask a running leader.
//!
//! - `GET /status`: the [`StatusReport`] of the last reconcile, as JSON;
//! - `GET /healthz`: 200 while the leader's loop completes reconciles,
//!   503 with the reason once none has completed for
//!   [`UNHEALTHY_AFTER_RESYNCS`] resync periods;
//! - `GET /metrics`: Prometheus' text format.
//!
//! Thin: this module serves what the leader computed; it never observes
//! nodes or changes anything.
//!
//! Bounded ([`ServeOptions`]), so that clients that connect and then send
//! nothing, or a header a byte at a time, cannot hold file descriptors for
//! ever: a request's header must arrive within a timeout, a connection lives
//! at most a while, and at most so many are open at once (a new one beyond
//! that closes the oldest, so a prompt client is always served). A request
//! whose `Host` is not a loopback name, an IP address or a configured name
//! is refused, so a web page cannot reach the endpoints through a name it
//! controls (DNS rebinding).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::reconcile::status::StatusReport;

pub(crate) mod metrics;
use metrics::Metrics;

/// `/healthz` fails once no reconcile has completed for this many resync
/// periods: a loop that is stuck, or refused every time, is not healthy.
pub const UNHEALTHY_AFTER_RESYNCS: u32 = 3;

/// What the endpoints serve; the leader updates it after every reconcile.
#[derive(Debug, Default)]
pub struct ApiState {
    pub status: RwLock<Option<StatusReport>>,
    pub metrics: Metrics,
    pub health: RwLock<Health>,
}

impl ApiState {
    pub fn set_status(&self, status: StatusReport) {
        *self.status.write().expect("status lock is never poisoned") = Some(status);
    }

    /// A reconcile completed (or found nothing to do yet, such as a branch
    /// with no commit) at `at`; `resync` is the period the loop now keeps.
    pub fn reconcile_completed(&self, at: Instant, resync: Duration) {
        let mut health = self.health.write().expect("health lock is never poisoned");
        health.last_completed = Some(at);
        health.last_error = None;
        health.resync = resync;
    }

    /// A reconcile ended in `error` instead of completing.
    pub fn reconcile_failed(&self, error: String, resync: Duration) {
        let mut health = self.health.write().expect("health lock is never poisoned");
        health.last_error = Some(error);
        health.resync = resync;
    }
}

/// The loop's health, as `/healthz` reports it.
#[derive(Clone, Debug)]
pub struct Health {
    /// When the leader started: the first reconcile is due from then.
    pub started: Instant,
    pub last_completed: Option<Instant>,
    /// Why the last reconcile did not complete, when it did not.
    pub last_error: Option<String>,
    pub resync: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            started: Instant::now(),
            last_completed: None,
            last_error: None,
            resync: Duration::from_secs(30),
        }
    }
}

impl Health {
    /// Healthy, and what to say about it, at `now`.
    pub fn verdict(&self, now: Instant) -> (bool, String) {
        let limit = self.resync * UNHEALTHY_AFTER_RESYNCS;
        let since = self.last_completed.unwrap_or(self.started);
        let age = now.saturating_duration_since(since);
        let error = match &self.last_error {
            Some(error) => format!("; the last reconcile failed: {error}"),
            None => String::new(),
        };
        match (age <= limit, self.last_completed) {
            (true, Some(_)) => (
                true,
                format!("ok: the last reconcile completed {:.1} s ago{error}", age.as_secs_f64()),
            ),
            (true, None) => (
                true,
                format!("ok: starting, no reconcile completed yet{error}"),
            ),
            (false, Some(_)) => (
                false,
                format!(
                    "unhealthy: no reconcile has completed for {:.0} s ({UNHEALTHY_AFTER_RESYNCS} × the {} s resync period){error}",
                    age.as_secs_f64(),
                    self.resync.as_secs()
                ),
            ),
            (false, None) => (
                false,
                format!(
                    "unhealthy: no reconcile has completed in the {:.0} s since the leader started ({UNHEALTHY_AFTER_RESYNCS} × the {} s resync period){error}",
                    age.as_secs_f64(),
                    self.resync.as_secs()
                ),
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("leader at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("leader at {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("leader at {addr} answered {status}: {body}")]
    Status {
        addr: SocketAddr,
        status: StatusCode,
        body: String,
    },
    #[error("leader at {addr}: status is not valid JSON ({source})")]
    Json {
        addr: SocketAddr,
        source: serde_json::Error,
    },
}

/// The bounds the server keeps, and the names it answers to.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// A request's header must have arrived this long after the connection
    /// opened, or after the previous response on it (an idle keep-alive
    /// connection is closed then too).
    pub header_read_timeout: Duration,
    /// A connection is closed this long after it opened, whatever it does:
    /// the request in progress is answered first, for at most
    /// [`LIFETIME_GRACE`] more.
    pub connection_lifetime: Duration,
    /// At most this many connections are open at once. One more closes the
    /// oldest: idle or slow clients cannot lock a prompt one out, and file
    /// descriptors stay bounded.
    pub max_connections: usize,
    /// The host names a request's `Host` may name, besides loopback names
    /// (`localhost`, `*.localhost`) and IP addresses: this machine's name
    /// and those given with `--api-host`.
    pub host_names: Vec<String>,
}

/// The defaults of [`ServeOptions`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
pub const MAX_CONNECTIONS: usize = 256;
/// How long a connection past its lifetime may take to finish its request.
pub const LIFETIME_GRACE: Duration = Duration::from_secs(5);

impl ServeOptions {
    /// The default bounds; `host_names` (from `--api-host`) and this
    /// machine's name are the names answered to.
    pub fn new(host_names: Vec<String>) -> Self {
        let mut host_names = host_names;
        if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let name = name.trim();
            if !name.is_empty() {
                host_names.push(name.to_string());
            }
        }
        ServeOptions {
            header_read_timeout: HEADER_READ_TIMEOUT,
            connection_lifetime: CONNECTION_LIFETIME,
            max_connections: MAX_CONNECTIONS,
            host_names,
        }
    }
}

/// The open connections, oldest first, each with the way to close it.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

/// How long the server waits after an error accepting a connection (such
/// as running out of file descriptors), instead of trying again at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves the endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    options: ServeOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let options = Arc::new(options);
    let connections = Arc::new(Mutex::new(Connections::default()));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting an HTTP connection");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let (close, closed) = oneshot::channel();
        let id = {
            let mut connections = connections
                .lock()
                .expect("connections lock is never poisoned");
            if connections.open.len() >= options.max_connections {
                // Dropping its sender closes the oldest connection.
                if let Some((_, oldest)) = connections.open.pop_first() {
                    drop(oldest);
                    tracing::debug!(
                        max = options.max_connections,
                        "too many HTTP connections; closing the oldest"
                    );
                }
            }
            let id = connections.next_id;
            connections.next_id += 1;
            connections.open.insert(id, close);
            id
        };
        let state = Arc::clone(&state);
        let service_options = Arc::clone(&options);
        let service = hyper::service::service_fn(move |request| {
            let state = Arc::clone(&state);
            let options = Arc::clone(&service_options);
            async move { Ok::<_, std::convert::Infallible>(respond(&state, &options, &request)) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let lifetime = options.connection_lifetime;
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = closed => {
                    tracing::debug!(%peer, "HTTP connection closed: the oldest of too many");
                    Ok(())
                }
                _ = tokio::time::sleep(lifetime) => {
                    connection.as_mut().graceful_shutdown();
                    tokio::time::timeout(LIFETIME_GRACE, connection.as_mut())
                        .await
                        .unwrap_or(Ok(()))
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, %peer, "HTTP connection ended");
            }
            connections
                .lock()
                .expect("connections lock is never poisoned")
                .open
                .remove(&id);
        });
    }
}

/// Whether `host` (a `Host` header's host, without its port) may be
/// answered: an IP address, a loopback name, or one of `names`; any case,
/// with or without the root's trailing dot.
fn host_is_served(host: &str, names: &[String]) -> bool {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if literal.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || names.iter().any(|name| {
            name.strip_suffix('.')
                .unwrap_or(name)
                .eq_ignore_ascii_case(&host)
        })
}

/// The refusal of a request whose `Host` is missing or not served.
fn refuse_host(request: &Request<Incoming>, names: &[String]) -> Option<Response<Full<Bytes>>> {
    let header = request
        .headers()
        .get(hyper::header::HOST)
        .map(|value| value.to_str().unwrap_or_default().to_string())
        .or_else(|| request.uri().authority().map(ToString::to_string));
    let Some(header) = header else {
        return Some(text(
            StatusCode::BAD_REQUEST,
            "a Host header is required\n".into(),
        ));
    };
    let host = header
        .parse::<hyper::http::uri::Authority>()
        .map(|authority| authority.host().to_string())
        .unwrap_or_default();
    if host_is_served(&host, names) {
        return None;
    }
    Some(text(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "host {header:?} is not served here: the leader answers to localhost, IP addresses, this machine's name and the names given with --api-host (a guard against DNS rebinding)\n"
        ),
    ))
}

fn respond(
    state: &ApiState,
    options: &ServeOptions,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some(refusal) = refuse_host(request, &options.host_names) {
        return refusal;
    }
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served\n".into(),
        );
    }
    match request.uri().path() {
        "/healthz" => {
            let (healthy, why) = state
                .health
                .read()
                .expect("health lock is never poisoned")
                .verdict(Instant::now());
            let status = if healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, format!("{why}\n"))
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        "/status" => {
            let status = state.status.read().expect("status lock is never poisoned");
            match status.as_ref() {
                Some(report) => {
                    let body =
                        serde_json::to_string_pretty(report).expect("a status report serializes");
                    let mut response = text(StatusCode::OK, body);
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    response
                }
                None => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no reconcile has finished yet\n".into(),
                ),
            }
        }
        other => text(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {other}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// `GET path` on the leader at `addr`: the body, when the answer is 200.
pub async fn get(addr: SocketAddr, path: &str) -> Result<String, ApiError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ApiError::Connect { addr, source })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ApiError::Http { addr, source })?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .expect("a GET request with a valid path builds");
    let response = sender
        .send_request(request)
        .await
        .map_err(|source| ApiError::Http { addr, source })?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|source| ApiError::Http { addr, source })?
        .to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    if status != StatusCode::OK {
        return Err(ApiError::Status { addr, status, body });
    }
    Ok(body)
}

/// The status a running leader serves.
pub async fn fetch_status(addr: SocketAddr) -> Result<StatusReport, ApiError> {
    let body = get(addr, "/status").await?;
    serde_json::from_str(&body).map_err(|source| ApiError::Json { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_fails_only_after_three_resyncs_without_a_completed_reconcile() {
        let start = Instant::now();
        let health = Health {
            started: start,
            last_completed: None,
            last_error: None,
            resync: Duration::from_secs(10),
        };
        assert!(health.verdict(start + Duration::from_secs(30)).0);
        let (healthy, why) = health.verdict(start + Duration::from_secs(31));
        assert!(!healthy);
        assert_eq!(why, "unhealthy: no reconcile has completed in the 31 s since the leader started (3 × the 10 s resync period)");
        let done = Health {
            last_completed: Some(start + Duration::from_secs(25)),
            ..health
        };
        assert!(done.verdict(start + Duration::from_secs(55)).0);
        assert!(!done.verdict(start + Duration::from_secs(56)).0);
    }

    #[tokio::test]
    async fn serves_health_metrics_and_status() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ApiState::default());
        let (stop, shutdown) = watch::channel(false);
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&state),
            ServeOptions::new(Vec::new()),
            shutdown,
        ));

        assert_eq!(
            get(addr, "/healthz").await.unwrap(),
            "ok: starting, no reconcile completed yet\n"
        );
        state.reconcile_completed(Instant::now(), Duration::from_secs(2));
        assert!(get(addr, "/healthz")
            .await
            .unwrap()
            .starts_with("ok: the last reconcile completed "));
        // Stuck: nothing completed for longer than three resync periods.
        state.reconcile_completed(
            Instant::now().checked_sub(Duration::from_secs(7)).unwrap(),
            Duration::from_secs(2),
        );
        state.reconcile_failed(
            "the cluster is being changed by apply".into(),
            Duration::from_secs(2),
        );
        match get(addr, "/healthz").await {
            Err(ApiError::Status { status, body, .. }) => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                // The exact wording, with time passed in, is pinned by the
                // verdict's own test; here the seconds are real.
                assert!(
                    body.starts_with("unhealthy: no reconcile has completed for ")
                        && body.contains(" s (3 × the 2 s resync period); the last reconcile failed: the cluster is being changed by apply"),
                    "{body}"
                );
            }
            other => panic!("expected 503, got {other:?}"),
        }
        assert!(matches!(
            fetch_status(addr).await,
            Err(ApiError::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                ..
            })
        ));
        state.metrics.count_action("create", "ok");
        assert!(get(addr, "/metrics")
            .await
            .unwrap()
            .contains("flotilla_actions_total{kind=\"create\",result=\"ok\"} 1\n"));
        let report = StatusReport {
            commit: Some("abc".into()),
            ..StatusReport::default()
        };
        state.set_status(report.clone());
        assert_eq!(fetch_status(addr).await.unwrap(), report);
        assert!(matches!(
            get(addr, "/nope").await,
            Err(ApiError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            })
        ));

        stop.send(true).unwrap();
        server.await.unwrap();
    }

    /// Enough file descriptors for a thousand connections at both ends.
    fn raise_open_file_limit() {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        let wanted = limit.maximum.map_or(8192, |max| max.min(8192));
        if limit.current.is_some_and(|current| current < wanted) {
            limit.current = Some(wanted);
            setrlimit(Resource::Nofile, limit).expect("raise RLIMIT_NOFILE to its hard limit");
        }
    }

    async fn start(options: ServeOptions) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            Arc::new(ApiState::default()),
            options,
            shutdown,
        ));
        (addr, stop)
    }

    /// Opens `count` connections to `addr` that send nothing (even ones) or
    /// half a header (odd ones); then a normal request must be answered
    /// within a second. Returns the idle connections, each with when it was
    /// opened.
    async fn idle_flood(addr: SocketAddr, count: usize) -> Vec<(Instant, TcpStream)> {
        use tokio::io::AsyncWriteExt;
        let mut idle = Vec::with_capacity(count);
        for i in 0..count {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            if i % 2 == 1 {
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    .await
                    .unwrap();
            }
            idle.push((Instant::now(), stream));
        }
        let answered = tokio::time::timeout(Duration::from_secs(1), get(addr, "/healthz")).await;
        assert!(
            matches!(&answered, Ok(Ok(body)) if body.starts_with("ok: ")),
            "a request after {count} idle connections: {answered:?}"
        );
        idle
    }

    /// How many of `idle` the server has closed already.
    fn closed_now(idle: &[(Instant, TcpStream)]) -> usize {
        let mut buffer = [0u8; 64];
        idle.iter()
            .filter(|(_, stream)| match stream.try_read(&mut buffer) {
                Ok(0) => true,
                Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
                Ok(_) => false,
            })
            .count()
    }

    /// Waits until the server has closed every one of `idle`, which must
    /// happen within `within`; when each was seen closed, from its opening.
    async fn wait_closed(idle: Vec<(Instant, TcpStream)>, within: Duration) -> Vec<Duration> {
        use tokio::io::AsyncReadExt;
        let tasks: Vec<_> = idle
            .into_iter()
            .map(|(opened, mut stream)| {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    // End of stream, or a reset.
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return opened.elapsed(),
                            Ok(_) => {}
                        }
                    }
                })
            })
            .collect();
        let mut times = Vec::with_capacity(tasks.len());
        for task in tasks {
            let time = tokio::time::timeout(within, task)
                .await
                .expect("an idle connection is closed by the server")
                .unwrap();
            times.push(time);
        }
        times
    }

    /// Regression (issue 10, item 12): connections that sent nothing, or
    /// half a header, were kept for ever, so slow clients could exhaust the
    /// leader's file descriptors.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_idle_connections_are_closed_by_the_header_timeout() {
        raise_open_file_limit();
        let timeout = Duration::from_secs(1);
        let (addr, _stop) = start(ServeOptions {
            header_read_timeout: timeout,
            // Above the flood: only the timeout closes them here.
            max_connections: 2000,
            ..ServeOptions::new(Vec::new())
        })
        .await;
        let idle = idle_flood(addr, 1000).await;
        let times = wait_closed(idle, Duration::from_secs(10)).await;
        // Not before the timeout: closed by it, and not by something else.
        let earliest = times.iter().min().unwrap();
        assert!(
            *earliest >= timeout - Duration::from_millis(50),
            "{earliest:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_connection_cap_the_oldest_is_closed() {
        raise_open_file_limit();
        // The default cap with a thousand idle connections: the oldest make
        // room at once (long before the timeout), the request after them is
        // answered all the same, and the rest go at the timeout.
        let (addr, _stop) = start(ServeOptions {
            header_read_timeout: Duration::from_secs(4),
            ..ServeOptions::new(Vec::new())
        })
        .await;
        let idle = idle_flood(addr, 1000).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let closed = closed_now(&idle);
        // The request's own connection took one more place.
        assert!(
            (1000 - MAX_CONNECTIONS..=1000 - MAX_CONNECTIONS + 1).contains(&closed),
            "{closed} closed before the timeout"
        );
        wait_closed(idle, Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn a_connection_lives_at_most_its_lifetime() {
        let lifetime = Duration::from_millis(600);
        let (addr, _stop) = start(ServeOptions {
            connection_lifetime: lifetime,
            ..ServeOptions::new(Vec::new())
        })
        .await;
        // A client that keeps its connection busy with requests.
        let stream = TcpStream::connect(addr).await.unwrap();
        let opened = Instant::now();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut answered = 0;
        let ended = loop {
            let request = Request::get("/healthz")
                .header(hyper::header::HOST, addr.to_string())
                .body(Full::new(Bytes::new()))
                .unwrap();
            if sender.send_request(request).await.is_err() || sender.ready().await.is_err() {
                break opened.elapsed();
            }
            answered += 1;
            assert!(opened.elapsed() < Duration::from_secs(5), "never closed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(answered >= 3, "{answered}");
        assert!(
            ended >= lifetime && ended < lifetime + Duration::from_secs(2),
            "{ended:?}"
        );
    }

    /// Sends `request` as is on a new connection; the status and the body.
    async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {response:?}"));
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Regression (issue 10, item 12): any Host was answered, so a web page
    /// whose name is made to resolve to the leader (DNS rebinding) could
    /// read its endpoints.
    #[tokio::test]
    async fn a_host_that_is_not_ours_is_refused() {
        let (addr, _stop) = start(ServeOptions::new(vec!["leader.example".into()])).await;
        let port = addr.port();
        let request = |host: &str| {
            format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
        };
        for host in [
            format!("127.0.0.1:{port}"),
            "127.0.0.1".to_string(),
            format!("[::1]:{port}"),
            format!("10.1.2.3:{port}"),
            format!("localhost:{port}"),
            "LOCALHOST.".to_string(),
            "status.localhost".to_string(),
            format!("leader.example:{port}"),
            "Leader.Example.".to_string(),
        ] {
            let (status, body) = raw(addr, &request(&host)).await;
            assert_eq!(status, 200, "{host}: {body}");
        }
        for host in [
            format!("evil.example:{port}"),
            "leader.example.evil.example".to_string(),
            "localhost.evil.example".to_string(),
            "2130706433".to_string(),
            String::new(),
        ] {
            let (status, body) = raw(addr, &request(&host)).await;
            assert_eq!(status, 421, "{host}: {body}");
            assert_eq!(
                body,
                format!("host {host:?} is not served here: the leader answers to localhost, IP addresses, this machine's name and the names given with --api-host (a guard against DNS rebinding)\n")
            );
        }
        let (status, body) = raw(addr, "GET /healthz HTTP/1.0\r\n\r\n").await;
        assert_eq!(
            (status, body.as_str()),
            (400, "a Host header is required\n")
        );
    }
}
