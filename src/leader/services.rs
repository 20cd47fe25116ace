//! The Services' driver: keeps every reachable node's proxy running and
//! serving the table `plan::endpoints` computes, and drains an endpoint
//! before its container is stopped.
//!
//! The order is what makes a rollout drop no request: the tables without
//! the leaving replicas are pushed to every node and acknowledged, then
//! each leaving replica waits (within its grace period) until no proxy
//! holds a connection to it, and only then is it stopped.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;

use crate::api::metrics::ServiceFigures;
use crate::cluster::ObservedCluster;
use crate::manifest::model::DesiredState;
use crate::node::{NodeOps, ProxyImage};
use crate::plan::endpoints::{self, Leaving};
use crate::proxy::table::{ProxyStatus, Request, Response, Table};

/// How often a drain asks the proxies for their open connections.
const DRAIN_POLL: Duration = Duration::from_millis(100);

/// What the leader knows of the proxies.
#[derive(Default)]
pub struct ServiceProxies {
    /// The image, made once (from the binary beside this one) when a
    /// Service first needs it; the error when it cannot be made.
    image: Option<Result<ProxyImage, String>>,
    /// The last generation sent.
    generation: u64,
    /// node -> the table it acknowledged (generation 0, to compare).
    served: HashMap<String, Table>,
    /// Nodes whose proxy this leader has made sure of since it last failed.
    ensured: HashSet<String>,
    /// Nodes this leader has looked at since it last reached them: a proxy
    /// left by an earlier leader is sent the current table (an empty one
    /// when Git declares no Service any more), never left serving its old
    /// one.
    swept: HashSet<String>,
    /// Why Ingress certificates were left out of the tables, as last
    /// logged: each is logged once, when it appears.
    certificate_problems: Vec<String>,
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Nodes that acknowledged a new table.
    pub updated: Vec<String>,
    /// Nodes whose proxy could not be updated, with why.
    pub failed: Vec<(String, String)>,
}

impl ServiceProxies {
    /// Proxies run from `image` rather than one made from the binary.
    pub fn with_image(image: ProxyImage) -> Self {
        ServiceProxies {
            image: Some(Ok(image)),
            ..ServiceProxies::default()
        }
    }

    /// The tables acknowledged, by node.
    pub fn served(&self) -> &HashMap<String, Table> {
        &self.served
    }

    /// Pushes to every reachable node the table it should serve now, with
    /// the `leaving` replicas out, and waits for the acknowledgements.
    /// Nothing happens while the repository declares no Service and no
    /// proxy was ever given a table.
    pub async fn sync<N: NodeOps>(
        &mut self,
        nodes: &N,
        desired: &DesiredState,
        observed: &ObservedCluster,
        leaving: &Leaving,
        now: SystemTime,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        // Without Services no proxy is started; one that runs (an earlier
        // leader's) is given the empty table once, then kept in step.
        let serving = !desired.services.is_empty();
        let unswept = reachable(observed)
            .into_iter()
            .any(|node| !self.swept.contains(&node));
        if !serving && self.served.is_empty() && !unswept {
            return report;
        }
        let image = if serving {
            match self.image() {
                Ok(image) => Some(image),
                Err(reason) => {
                    for node in reachable(observed) {
                        report.failed.push((node, reason.clone()));
                    }
                    return report;
                }
            }
        } else {
            None
        };
        self.log_certificate_problems(desired);
        let addresses = addresses(desired, observed).await;
        let tables = endpoints::tables(desired, observed, &addresses, leaving, now);
        // A restarted leader's generations must pass its predecessor's,
        // which the proxies remember: they start at the clock's milliseconds.
        let clock = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut pushes = Vec::new();
        for (node, mut table) in tables {
            let known = self.served.contains_key(&node);
            if self.served.get(&node) == Some(&table)
                || (!serving && !known && self.swept.contains(&node))
            {
                continue;
            }
            self.generation = (self.generation + 1).max(clock);
            let compare = table.clone();
            table.generation = self.generation;
            let ensure = image.as_ref().filter(|_| !self.ensured.contains(&node));
            pushes.push((node, table, compare, ensure, known));
        }
        let results = join_all(pushes.into_iter().map(
            |(node, table, compare, ensure, known)| async move {
                let result = push(nodes, &node, ensure, table).await;
                (node, compare, result, known)
            },
        ))
        .await;
        for (node, compare, result, known) in results {
            self.swept.insert(node.clone());
            match result {
                // No proxy there, and none wanted: nothing to do.
                Err(_) if !serving && !known => {}
                Ok(()) => {
                    self.ensured.insert(node.clone());
                    self.served.insert(node.clone(), compare);
                    report.updated.push(node);
                }
                Err(reason) => {
                    tracing::warn!(%node, %reason, "the node proxy did not take its table; it keeps serving its last one");
                    self.ensured.remove(&node);
                    self.served.remove(&node);
                    report.failed.push((node, reason));
                }
            }
        }
        report
    }

    /// Logs each reason an Ingress certificate is left out of the tables
    /// (a sealed value the leader could not open, a certificate that cannot
    /// be served) when it first appears; those names get the default
    /// certificate or no handshake.
    fn log_certificate_problems(&mut self, desired: &DesiredState) {
        let (_, problems) = endpoints::ingress_certificates(desired);
        for problem in &problems {
            if !self.certificate_problems.contains(problem) {
                tracing::warn!(%problem, "an Ingress certificate is not served");
            }
        }
        self.certificate_problems = problems;
    }

    /// The node proxy's image (which pod sandboxes run too), made once; or
    /// why it cannot be made.
    pub(crate) fn image(&mut self) -> Result<ProxyImage, String> {
        self.image
            .get_or_insert_with(|| {
                ProxyImage::locate()
                    .and_then(|path| ProxyImage::build(&path))
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// Every Service port's figures: the counters of every proxy that
    /// answers, summed, and the ready endpoints of the tables written. A
    /// proxy that does not answer (stopped, removed by hand, restarted
    /// without its table) is forgotten, so the next sync makes sure of it
    /// and sends its table again.
    pub async fn figures<N: NodeOps>(
        &mut self,
        nodes: &N,
    ) -> BTreeMap<(String, String, u16), ServiceFigures> {
        let mut figures: BTreeMap<(String, String, u16), ServiceFigures> = BTreeMap::new();
        if let Some(table) = self.served.values().next() {
            for service in &table.services {
                for port in &service.ports {
                    figures
                        .entry((service.namespace.clone(), service.name.clone(), port.port))
                        .or_default()
                        .endpoints = port.endpoints.len() as u64;
                }
            }
        }
        let asked: Vec<String> = self.served.keys().cloned().collect();
        let statuses = join_all(
            asked
                .iter()
                .map(|node| nodes.proxy_request(node, &Request::Status)),
        )
        .await;
        for (node, status) in asked.iter().zip(statuses) {
            let status = match status {
                Ok(Response::Status(status)) => status,
                other => {
                    tracing::warn!(%node, answer = ?other.map_err(|e| e.message), "the node proxy did not answer its status; its table is sent again");
                    self.forget(node);
                    continue;
                }
            };
            if status.generation == 0 {
                // Restarted without its table: send it again.
                self.forget(node);
            }
            for counters in status.services {
                let entry = figures
                    .entry((counters.namespace, counters.name, counters.port))
                    .or_default();
                entry.requests += counters.requests;
                entry.errors += counters.errors;
                entry.open += counters.open;
            }
        }
        figures
    }

    /// Forgets a node's proxy (its node became unreachable): the next sync
    /// makes sure of it and sends its table again.
    pub fn forget(&mut self, node: &str) {
        self.served.remove(node);
        self.ensured.remove(node);
        self.swept.remove(node);
    }
}

/// Sends `table` to the node's proxy, first making sure the proxy runs
/// from `ensure` when given.
async fn push<N: NodeOps>(
    nodes: &N,
    node: &str,
    ensure: Option<&ProxyImage>,
    table: Table,
) -> Result<(), String> {
    if let Some(image) = ensure {
        nodes
            .ensure_proxy(node, image)
            .await
            .map_err(|e| e.message)?;
    }
    let ensure = ensure.is_some();
    let generation = table.generation;
    // A proxy just started takes a moment to open its control socket.
    let mut attempts = 0;
    loop {
        attempts += 1;
        match nodes
            .proxy_request(node, &Request::Apply(table.clone()))
            .await
        {
            Ok(Response::Applied { generation: served }) if served >= generation => return Ok(()),
            Ok(Response::Applied { generation: served }) => {
                return Err(format!("it serves generation {served}, not {generation}"))
            }
            Ok(Response::Error { message }) => return Err(message),
            Ok(Response::Status(_)) => return Err("it answered a status to an apply".into()),
            Err(error) if attempts < 20 && ensure => {
                tracing::debug!(%node, error = %error.message, "node proxy not answering yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error.message),
        }
    }
}

/// The reachable nodes.
fn reachable(observed: &ObservedCluster) -> Vec<String> {
    observed
        .nodes
        .values()
        .filter(|n| n.reachability.is_reachable())
        .map(|n| n.name.clone())
        .collect()
}

/// The IPv4 address of every reachable node: its spec's address, or what
/// that name resolves to. A node without one gets no table (and serves
/// no remote endpoint), with a warning.
async fn addresses(
    desired: &DesiredState,
    observed: &ObservedCluster,
) -> BTreeMap<String, Ipv4Addr> {
    let reachable: BTreeSet<String> = reachable(observed).into_iter().collect();
    let mut addresses = BTreeMap::new();
    for node in desired
        .nodes
        .iter()
        .filter(|n| reachable.contains(&n.meta.name))
    {
        let address = &node.spec.address;
        let resolved = match address.parse::<Ipv4Addr>() {
            Ok(ip) => Some(ip),
            Err(_) => tokio::net::lookup_host((address.as_str(), 0))
                .await
                .ok()
                .and_then(|mut all| {
                    all.find_map(|a| match a.ip() {
                        std::net::IpAddr::V4(ip) => Some(ip),
                        std::net::IpAddr::V6(_) => None,
                    })
                }),
        };
        match resolved {
            Some(ip) => {
                addresses.insert(node.meta.name.clone(), ip);
            }
            None => tracing::warn!(node = %node.meta.name, %address,
                "the node's address has no IPv4 address: its proxy gets no table"),
        }
    }
    addresses
}

/// Waits until no proxy of `ask` holds a connection to any of `targets`
/// (pod addresses), or `limit` has passed. Returns the connections still
/// open when it gave up (0 when drained).
pub async fn drain<N: NodeOps>(
    nodes: &N,
    ask: &[String],
    targets: &BTreeSet<Ipv4Addr>,
    limit: Duration,
) -> u64 {
    if targets.is_empty() || ask.is_empty() {
        return 0;
    }
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let statuses = join_all(
            ask.iter()
                .map(|node| nodes.proxy_request(node, &Request::Status)),
        )
        .await;
        let open: u64 = statuses
            .into_iter()
            .filter_map(|answer| match answer {
                Ok(Response::Status(status)) => Some(open_to(&status, targets)),
                _ => None,
            })
            .sum();
        if open == 0 || tokio::time::Instant::now() >= deadline {
            return open;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn open_to(status: &ProxyStatus, targets: &BTreeSet<Ipv4Addr>) -> u64 {
    status
        .connections
        .iter()
        .filter(|c| targets.contains(c.target.ip()))
        .map(|c| c.open)
        .sum()
}
