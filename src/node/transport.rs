//! Docker's HTTP API over any byte stream: each HTTP connection of a
//! hyper-util client is one stream opened by a [`StreamOpener`], either a
//! `direct-streamlocal` channel of the node's SSH session to its Docker
//! socket, or the local Unix socket itself. hyper keeps connections alive
//! between requests, so most requests reuse an open channel.

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
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub type BoxedIo = Box<dyn Io>;
pub type OpenFuture = Pin<Box<dyn Future<Output = io::Result<BoxedIo>> + Send>>;

/// Opens one new stream to the Docker daemon.
pub type StreamOpener = Arc<dyn Fn() -> OpenFuture + Send + Sync>;

/// A stream as hyper-util wants it.
pub struct DockerConnection(TokioIo<BoxedIo>);

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
pub struct Connector(StreamOpener);

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

/// Request timeout of the Docker client, in seconds (image loads are long).
const DOCKER_TIMEOUT_SECONDS: u64 = 600;

/// A bollard client whose connections come from `opener`, not yet
/// version-negotiated.
pub fn docker_over(opener: StreamOpener) -> Result<Docker, bollard::errors::Error> {
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
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
pub fn unix_socket_opener(path: String) -> StreamOpener {
    Arc::new(move || {
        let path = path.clone();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::connect(&path).await?;
            Ok(Box::new(stream) as BoxedIo)
        })
    })
}

/// A bollard client for a Docker daemon on this machine (the leader's own,
/// or a node of `transport: local`).
pub async fn local_docker(socket: &str) -> Result<Docker, bollard::errors::Error> {
    docker_over(unix_socket_opener(socket.to_string()))?
        .negotiate_version()
        .await
}
