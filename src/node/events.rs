//! Docker's event stream of one node, followed over its session: a managed
//! container that dies, stops or is removed behind the leader's back wakes
//! the leader at once, so it leaves the Services' endpoints and is
//! replaced within a second instead of at the next resync.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::Notify;

use super::client::NodeClient;
use crate::cluster::MANAGED_LABEL;

/// How long to wait before following again after the stream broke (the
/// node unreachable, say; the session's own back-off applies too).
const RETRY: Duration = Duration::from_secs(1);

/// Follows the node's events until its client is dropped (the node left
/// the repository or its spec changed: a new client follows instead).
pub(super) async fn follow(client: Weak<NodeClient>, wake: Arc<Notify>) {
    let filters = HashMap::from([
        ("type", vec!["container".to_string()]),
        ("label", vec![format!("{MANAGED_LABEL}=true")]),
        (
            "event",
            vec![
                "die".to_string(),
                "stop".to_string(),
                "kill".to_string(),
                "oom".to_string(),
                "destroy".to_string(),
            ],
        ),
    ]);
    loop {
        let Some(docker) = (match client.upgrade() {
            Some(client) => client.docker().await.ok(),
            None => return,
        }) else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let options = EventsOptionsBuilder::new().filters(&filters).build();
        let mut events = docker.events(Some(options));
        loop {
            let next = tokio::time::timeout(RETRY * 5, events.next()).await;
            if client.strong_count() == 0 {
                return;
            }
            match next {
                Ok(Some(Ok(event))) => {
                    tracing::debug!(action = ?event.action, actor = ?event.actor.and_then(|a| a.attributes).and_then(|a| a.get("name").cloned()), "container event");
                    wake.notify_one();
                }
                // Quiet: look whether the client is still wanted.
                Err(_) => continue,
                Ok(Some(Err(_)) | None) => break,
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
