//! The control channel's client side (`flotilla-proxy ctl`): one request
//! line to the daemon's socket, one response line back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long the daemon may take to answer (an `Apply` binds every new
/// listener first).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("connecting to the proxy's control socket {path}: {source} (is `flotilla-proxy run` running?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("talking to the proxy on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the proxy on {path} did not answer within {ANSWER_TIMEOUT:?}")]
    Timeout { path: PathBuf },
    #[error("the proxy on {path} closed the connection without answering")]
    NoAnswer { path: PathBuf },
}

/// Sends `request` (one JSON line, without its newline) and returns the
/// answer line, without its newline.
pub async fn send_line(socket: &Path, request: &str) -> Result<String, ControlError> {
    let io = |source| ControlError::Io {
        path: socket.to_owned(),
        source,
    };
    let exchange = async {
        let mut stream =
            UnixStream::connect(socket)
                .await
                .map_err(|source| ControlError::Connect {
                    path: socket.to_owned(),
                    source,
                })?;
        stream
            .write_all(request.trim_end().as_bytes())
            .await
            .map_err(io)?;
        stream.write_all(b"\n").await.map_err(io)?;
        let mut answer = String::new();
        BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(io)?;
        if answer.is_empty() {
            return Err(ControlError::NoAnswer {
                path: socket.to_owned(),
            });
        }
        Ok(answer.trim_end().to_owned())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| ControlError::Timeout {
            path: socket.to_owned(),
        })?
}
