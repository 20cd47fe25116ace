//! Images moving to a node: pulls from a registry and shipments from the
//! leader's own Docker, each given up when it stops making progress, like
//! the kubelet's image-pull progress deadline: a stalled registry or
//! transfer must not hold the reconcile (which waits for every node's
//! actions) for ever, and a slow transfer that keeps moving is not cut.

use std::sync::Arc;
use std::time::Duration;

use bollard::query_parameters::{CreateImageOptions, ImportImageOptionsBuilder};
use bollard::Docker;
use bytes::Bytes;
use futures_util::StreamExt;

use super::registry_auth::RegistryAuth;
use super::NodeError;

/// How long an image pull or shipment may go without progress.
pub(crate) const IMAGE_PROGRESS_DEADLINE: Duration = Duration::from_secs(60);

/// Pulls `image` on `node`, with `auth` when given (else anonymously),
/// given up when Docker reports no progress for `deadline` (Docker streams a
/// progress message for every layer step).
pub(crate) async fn pull_with_deadline(
    docker: &Docker,
    node: &str,
    image: &str,
    options: CreateImageOptions,
    auth: Option<&RegistryAuth>,
    deadline: Duration,
) -> Result<(), NodeError> {
    let what = format!("pull {image}");
    let mut progress = docker.create_image(Some(options), None, auth.map(RegistryAuth::to_docker));
    loop {
        match tokio::time::timeout(deadline, progress.next()).await {
            Ok(Some(item)) => {
                item.map_err(|source| pull_error(node, image, auth, source))?;
            }
            Ok(None) => return Ok(()),
            Err(_) => return Err(stalled(node, &what, deadline)),
        }
    }
}

/// Streams `archive` (a `docker save` stream) into `node`'s Docker, given up
/// when the archive, once flowing, stops for `deadline`. Docker answers a
/// load only at its end, so progress is the archive moving to the node.
/// Two quiet phases grow with the image and are not cut by `deadline`:
/// `docker save` may gather every layer before its first byte (allowed
/// [`FIRST_CHUNK_ALLOWANCE`] deadlines), and the node registers the layers
/// after the last one (not bounded here, as a slow disk is no stall).
pub(crate) async fn load_with_deadline<S>(
    docker: &Docker,
    node: &str,
    image: &str,
    archive: S,
    deadline: Duration,
) -> Result<(), NodeError>
where
    S: futures_util::Stream<Item = Result<Bytes, bollard::errors::Error>> + Send + Unpin + 'static,
{
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let what = format!("load {image}");
    let started = tokio::time::Instant::now();
    // Milliseconds from `started` to the last chunk taken from the archive
    // (0: none yet), and whether the archive has ended.
    let last_chunk = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(AtomicBool::new(false));
    let (seen, end) = (Arc::clone(&last_chunk), Arc::clone(&ended));
    let archive = archive
        .inspect(move |_| {
            let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            seen.store(millis.max(1), Ordering::Relaxed);
        })
        .chain(futures_util::stream::poll_fn(move |_| {
            end.store(true, Ordering::Relaxed);
            std::task::Poll::Ready(None)
        }));
    let load = async {
        let mut answers = docker.import_image_stream(
            ImportImageOptionsBuilder::new().quiet(true).build(),
            archive,
            None,
        );
        while let Some(item) = answers.next().await {
            item.map_err(|source| docker_error(node, &what, source))?;
        }
        Ok(())
    };
    let watchdog = async {
        loop {
            if ended.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            let due = match last_chunk.load(Ordering::Relaxed) {
                0 => started + deadline * FIRST_CHUNK_ALLOWANCE,
                millis => started + Duration::from_millis(millis) + deadline,
            };
            if tokio::time::Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due).await;
        }
    };
    tokio::select! {
        biased;
        result = load => result,
        () = watchdog => Err(stalled(node, &what, deadline)),
    }
}

/// How many progress deadlines a shipment may wait for the first byte of
/// the leader's `docker save`, which may first gather every layer.
const FIRST_CHUNK_ALLOWANCE: u32 = 5;

fn stalled(node: &str, operation: &str, deadline: Duration) -> NodeError {
    NodeError::Stalled {
        node: node.to_string(),
        operation: operation.to_string(),
        deadline,
    }
}

/// A failed pull; a registry's refusal says which credentials it refused.
fn pull_error(
    node: &str,
    image: &str,
    auth: Option<&RegistryAuth>,
    source: bollard::errors::Error,
) -> NodeError {
    let refused = match &source {
        bollard::errors::Error::DockerResponseServerError { message, .. }
        | bollard::errors::Error::DockerStreamError { error: message } => {
            let message = message.to_ascii_lowercase();
            [
                "unauthorized",
                "no basic auth credentials",
                "authentication required",
                "access denied",
                "denied:",
            ]
            .iter()
            .any(|word| message.contains(word))
        }
        _ => false,
    };
    if !refused {
        return docker_error(node, &format!("pull {image}"), source);
    }
    NodeError::PullRefused {
        node: node.to_string(),
        image: image.to_string(),
        credentials: match auth {
            Some(auth) if !auth.username.is_empty() => {
                format!(
                    "with the credentials of user {} for {}",
                    auth.username, auth.server_address
                )
            }
            Some(auth) => format!("with a token for {}", auth.server_address),
            None => "without credentials (the pod's imagePullSecrets hold none for its registry)"
                .to_string(),
        },
        reason: source.to_string(),
    }
}

fn docker_error(node: &str, operation: &str, source: bollard::errors::Error) -> NodeError {
    NodeError::Docker {
        node: node.to_string(),
        operation: operation.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use bollard::query_parameters::CreateImageOptionsBuilder;
    use http_body_util::combinators::BoxBody;
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::Frame;
    use hyper_util::rt::TokioIo;

    type FakeBody = BoxBody<Bytes, Infallible>;

    /// A Docker daemon that stalls where a real one would when its registry
    /// or an image transfer does, on a unix socket in `dir`:
    /// `POST /images/create?fromImage=stalled` sends one progress message
    /// and then nothing, `fromImage=slow` one every 100 ms for 2 s, and
    /// `POST /images/load` reads the whole archive, then answers
    /// `load_answer_after` later (registering the layers).
    fn fake_docker(dir: &std::path::Path, load_answer_after: Duration) -> Docker {
        let socket = dir.join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    hyper::service::service_fn(move |request| answer(request, load_answer_after)),
                ));
            }
        });
        super::super::transport::docker_on_socket(socket.to_str().unwrap()).unwrap()
    }

    async fn answer(
        request: hyper::Request<hyper::body::Incoming>,
        load_answer_after: Duration,
    ) -> Result<hyper::Response<FakeBody>, Infallible> {
        let line = |text: &str| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{text}\n"))));
        let query = request.uri().query().unwrap_or("").to_string();
        let body: FakeBody = if request.uri().path().ends_with("/images/load") {
            // Docker answers a load once the archive has ended.
            let _ = request.into_body().collect().await;
            tokio::time::sleep(load_answer_after).await;
            BodyExt::boxed(StreamBody::new(futures_util::stream::iter([line(
                r#"{"stream":"Loaded image"}"#,
            )])))
        } else if query.contains("fromImage=stalled") {
            let first = futures_util::stream::iter([line(r#"{"status":"Pulling fs layer"}"#)]);
            BodyExt::boxed(StreamBody::new(
                first.chain(futures_util::stream::pending()),
            ))
        } else {
            let progress = futures_util::stream::unfold(0, move |sent| async move {
                (sent < 20).then_some(())?;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((line(r#"{"status":"Downloading"}"#), sent + 1))
            });
            BodyExt::boxed(StreamBody::new(progress))
        };
        Ok(hyper::Response::new(body))
    }

    fn pull_options(image: &str) -> bollard::query_parameters::CreateImageOptions {
        CreateImageOptionsBuilder::new()
            .from_image(image)
            .tag("1")
            .build()
    }

    #[tokio::test]
    async fn a_stalled_pull_is_given_up_after_its_progress_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        let deadline = Duration::from_millis(500);
        let pulled = tokio::time::timeout(
            Duration::from_secs(30),
            pull_with_deadline(
                &docker,
                "n1",
                "stalled:1",
                pull_options("stalled"),
                None,
                deadline,
            ),
        )
        .await
        .expect("the pull ends by itself");
        let error = pulled.expect_err("stalled");
        assert_eq!(
            error.to_string(),
            "node n1: pull stalled:1: no progress for 0.5s; the registry, the node or the transfer is stalled"
        );
        assert!(!error.is_unreachable());
    }

    #[tokio::test]
    async fn a_slow_pull_that_keeps_moving_is_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        // 2 s in all, a message every 100 ms: longer than the deadline,
        // never that long without progress.
        let started = std::time::Instant::now();
        pull_with_deadline(
            &docker,
            "n1",
            "slow:1",
            pull_options("slow"),
            None,
            Duration::from_secs(1),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    fn chunk() -> Result<Bytes, bollard::errors::Error> {
        Ok(Bytes::from_static(&[0u8; 1024]))
    }

    #[tokio::test]
    async fn a_shipment_whose_archive_stops_flowing_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        // The leader's `docker save` sends a little, then stalls.
        let stalled =
            futures_util::stream::iter([chunk(), chunk()]).chain(futures_util::stream::pending());
        let shipped = tokio::time::timeout(
            Duration::from_secs(30),
            load_with_deadline(&docker, "n2", "img:1", stalled, Duration::from_millis(500)),
        )
        .await
        .expect("the shipment ends by itself");
        assert_eq!(
            shipped.expect_err("stalled").to_string(),
            "node n2: load img:1: no progress for 0.5s; the registry, the node or the transfer is stalled"
        );
    }

    #[tokio::test]
    async fn a_shipment_that_keeps_flowing_is_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let docker = fake_docker(dir.path(), Duration::ZERO);
        // 3 s in all, a chunk every 100 ms, against a 2 s deadline.
        let flowing = futures_util::stream::unfold(0, move |sent| async move {
            (sent < 30).then_some(())?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((chunk(), sent + 1))
        });
        load_with_deadline(
            &docker,
            "n2",
            "img:1",
            Box::pin(flowing),
            Duration::from_secs(2),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The quiet phases of a large image's shipment are not stalls:
    /// `docker save` gathering layers before its first byte, and the node
    /// registering them after the last.
    #[tokio::test]
    async fn a_shipment_is_not_cut_while_layers_are_gathered_or_registered() {
        let dir = tempfile::tempdir().unwrap();
        let deadline = Duration::from_millis(500);
        // The node answers two deadlines after the archive ended.
        let docker = fake_docker(dir.path(), 2 * deadline);
        // The first byte comes two deadlines after the start.
        let late = futures_util::stream::once(async move {
            tokio::time::sleep(2 * deadline).await;
            chunk()
        });
        load_with_deadline(&docker, "n2", "img:1", Box::pin(late), deadline)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
