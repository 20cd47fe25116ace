//! What the proxy counts: open connections per target (what the leader's
//! drain waits on, kept for targets no longer in the table), counters per
//! Service port, and every connection in flight (what a graceful stop
//! waits on). Each open count is a guard that decrements when dropped, so
//! no path can forget to.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::table::{ServiceCounters, TargetConnections};

/// Open connections per target.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    open: Mutex<HashMap<SocketAddrV4, u64>>,
}

impl Targets {
    /// Counts one more connection to `target` until the guard drops.
    pub(crate) fn open(self: &Arc<Self>, target: SocketAddrV4) -> TargetGuard {
        *self.lock().entry(target).or_default() += 1;
        TargetGuard {
            targets: Arc::clone(self),
            target,
        }
    }

    pub(crate) fn count(&self, target: SocketAddrV4) -> u64 {
        self.lock().get(&target).copied().unwrap_or(0)
    }

    /// Every target with an open connection, sorted.
    pub(crate) fn snapshot(&self) -> Vec<TargetConnections> {
        let mut connections: Vec<TargetConnections> = self
            .lock()
            .iter()
            .map(|(&target, &open)| TargetConnections { target, open })
            .collect();
        connections.sort();
        connections
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddrV4, u64>> {
        // A panic while holding this lock leaves whole counts behind: the
        // map stays usable.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[derive(Debug)]
pub(crate) struct TargetGuard {
    targets: Arc<Targets>,
    target: SocketAddrV4,
}

impl TargetGuard {
    pub(crate) fn target(&self) -> SocketAddrV4 {
        self.target
    }
}

impl Drop for TargetGuard {
    fn drop(&mut self) {
        let mut open = self.targets.lock();
        if let Some(count) = open.get_mut(&self.target) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.target);
            }
        }
    }
}

/// One Service port's counters since the proxy started.
#[derive(Debug, Default)]
pub(crate) struct PortCounters {
    requests: AtomicU64,
    errors: AtomicU64,
    open: AtomicU64,
}

impl PortCounters {
    /// Counts a connection (or request) as accepted and open until the
    /// guard drops.
    pub(crate) fn accept(self: &Arc<Self>) -> PortGuard {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        PortGuard {
            counters: Arc::clone(self),
        }
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct PortGuard {
    counters: Arc<PortCounters>,
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A Service port's identity in the counters: (namespace, name, port).
pub(crate) type PortKey = (String, String, u16);

/// The counters as `Status` reports them, sorted.
pub(crate) fn service_counters<'a>(
    ports: impl Iterator<Item = (&'a PortKey, &'a PortCounters)>,
) -> Vec<ServiceCounters> {
    let mut counters: Vec<ServiceCounters> = ports
        .map(|((namespace, name, port), counters)| ServiceCounters {
            namespace: namespace.clone(),
            name: name.clone(),
            port: *port,
            requests: counters.requests.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            open: counters.open.load(Ordering::Relaxed),
        })
        .collect();
    counters.sort();
    counters
}

/// Connections (client side) in flight, for the graceful stop.
#[derive(Debug)]
pub(crate) struct InFlight {
    count: watch::Sender<usize>,
}

impl Default for InFlight {
    fn default() -> Self {
        InFlight {
            count: watch::Sender::new(0),
        }
    }
}

impl InFlight {
    pub(crate) fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.send_modify(|count| *count += 1);
        InFlightGuard {
            in_flight: Arc::clone(self),
        }
    }

    /// Returns once no connection is in flight.
    pub(crate) async fn drained(&self) {
        let mut count = self.count.subscribe();
        // The sender lives in `self`: the wait ends only at zero.
        let _ = count.wait_for(|count| *count == 0).await;
    }

    pub(crate) fn count(&self) -> usize {
        *self.count.borrow()
    }
}

#[derive(Debug)]
pub(crate) struct InFlightGuard {
    in_flight: Arc<InFlight>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.in_flight.count.send_modify(|count| *count -= 1);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_target_is_counted_while_its_guards_live_and_then_forgotten() {
        let targets = Arc::new(Targets::default());
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
        let first = targets.open(a);
        let second = targets.open(a);
        let third = targets.open(b);
        assert_eq!(
            targets.snapshot(),
            [
                TargetConnections { target: a, open: 2 },
                TargetConnections { target: b, open: 1 }
            ]
        );
        drop((first, third));
        assert_eq!(
            targets.snapshot(),
            [TargetConnections { target: a, open: 1 }]
        );
        drop(second);
        assert_eq!(targets.snapshot(), []);
        assert_eq!(targets.count(a), 0);
    }

    #[test]
    fn port_counters_count_requests_errors_and_open() {
        let counters = Arc::new(PortCounters::default());
        let open = counters.accept();
        drop(counters.accept());
        counters.error();
        let key = ("default".to_owned(), "web".to_owned(), 80);
        let ports = [(&key, &*counters)];
        let reported = &service_counters(ports.into_iter())[0];
        assert_eq!(
            (reported.requests, reported.errors, reported.open),
            (2, 1, 1)
        );
        drop(open);
        assert_eq!(service_counters(ports.into_iter())[0].open, 0);
    }

    #[tokio::test]
    async fn drained_waits_for_the_last_connection() {
        let in_flight = Arc::new(InFlight::default());
        let guard = in_flight.enter();
        assert_eq!(in_flight.count(), 1);
        let waiting = tokio::spawn({
            let in_flight = Arc::clone(&in_flight);
            async move { in_flight.drained().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(guard);
        waiting.await.unwrap();
    }
}
