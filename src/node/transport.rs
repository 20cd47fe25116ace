//! Docker's HTTP API over any byte stream: each HTTP connection of a
//! hyper-util client is one stream opened by a [`StreamOpener`], either a
//! `direct-streamlocal` channel of the node's SSH session to its Docker
//! socket, or the local Unix socket itself. Over SSH, hyper keeps
//! connections alive between requests, so most requests reuse an open
//! channel (opening one costs a round trip); a local socket connects in
//! microseconds and gets a connection per request, so a daemon gone from
//! its socket is noticed by the next request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bollard::{BollardRequest, ClientVersion, Docker};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// Anything a connection can run over.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(crate) type BoxedIo = Box<dyn Io>;
pub(crate) type OpenFuture = Pin<Box<dyn Future<Output = io::Result<BoxedIo>> + Send>>;

/// Opens one new stream to the Docker daemon.
pub(crate) type StreamOpener = Arc<dyn Fn() -> OpenFuture + Send + Sync>;

/// A stream as hyper-util wants it.
pub(crate) struct DockerConnection(TokioIo<BoxedIo>);

impl Connection for DockerConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl Read for DockerConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl Write for DockerConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The hyper-util connector: ignores the URI, opens a stream.
#[derive(Clone)]
pub(crate) struct Connector(StreamOpener);

impl tower_service::Service<Uri> for Connector {
    type Response = DockerConnection;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<DockerConnection>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let open = (self.0)();
        Box::pin(async move { Ok(DockerConnection(TokioIo::new(open.await?))) })
    }
}

/// bollard's own bound on a request until its answer starts, in seconds: a
/// backstop only. The runtime bounds every request itself (request timeout,
/// progress deadlines, grace periods); what this alone bounds is a load's
/// last phase, the node registering the layers it received.
const DOCKER_TIMEOUT_SECONDS: u64 = 600;

/// A bollard client over the SSH session whose channels `opener` opens,
/// keeping idle connections for reuse; not yet version-negotiated.
pub(crate) fn docker_over_session(opener: StreamOpener) -> Result<Docker, bollard::errors::Error> {
    docker_over(opener, usize::MAX)
}

/// A bollard client for a Docker socket on this machine (a node of
/// `transport: local`, or the leader's own Docker), a connection per
/// request; not yet version-negotiated.
pub(crate) fn docker_on_socket(socket: &str) -> Result<Docker, bollard::errors::Error> {
    docker_over(unix_socket_opener(socket.to_string()), 0)
}

fn docker_over(
    opener: StreamOpener,
    max_idle_per_host: usize,
) -> Result<Docker, bollard::errors::Error> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .pool_max_idle_per_host(max_idle_per_host)
        .build(Connector(opener));
    let transport = move |request: BollardRequest| {
        let client = client.clone();
        async move {
            client
                .request(request)
                .await
                .map_err(|err| bollard::errors::Error::HyperLegacyError { err })
        }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some("http://docker"),
        DOCKER_TIMEOUT_SECONDS,
        // Negotiated down to the daemon's version right after connecting.
        &ClientVersion {
            major_version: 1,
            minor_version: 41,
        },
    )
}

/// Opens streams to a Unix socket on this machine.
fn unix_socket_opener(path: String) -> StreamOpener {
    Arc::new(move || {
        let path = path.clone();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(&path).await?;
            Ok(Box::new(stream) as BoxedIo)
        })
    })
}
