//! Which endpoint a new connection (or HTTP request) goes to: round-robin
//! or least connections, with client-IP affinity when the Service asks for
//! it. Pure: the open connection counts and the time come in as arguments.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::table::{Balance, Endpoint};

/// How a Service port chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) balance: Balance,
    /// How long a client address sticks to its endpoint after its last
    /// connection; `None` without affinity.
    pub(crate) affinity: Option<Duration>,
}

/// The state of one Service port's choices, kept across tables so a new
/// table neither restarts the rotation nor forgets the sticky clients.
#[derive(Debug, Default)]
pub(crate) struct Chooser {
    /// Where the round-robin scan starts next (an index into the endpoints).
    next: usize,
    sticky: HashMap<IpAddr, Sticky>,
    choices_since_cleanup: usize,
}

#[derive(Debug, Clone, Copy)]
struct Sticky {
    target: SocketAddrV4,
    last_used: Instant,
}

/// Expired sticky entries are dropped every this many choices.
const CLEANUP_EVERY: usize = 1024;

impl Chooser {
    /// The endpoint for a connection from `client`, among those of
    /// `endpoints` that `usable` accepts (not yet tried, local when the
    /// port asks for it); `open` gives each target's open connections.
    pub(crate) fn choose<'a>(
        &mut self,
        endpoints: &'a [Endpoint],
        policy: Policy,
        client: IpAddr,
        now: Instant,
        open: impl Fn(SocketAddrV4) -> u64,
        usable: impl Fn(&Endpoint) -> bool,
    ) -> Option<&'a Endpoint> {
        self.cleanup(policy, now);
        if let Some(timeout) = policy.affinity {
            let still_sticky = self
                .sticky
                .get(&client)
                .filter(|sticky| now.saturating_duration_since(sticky.last_used) < timeout)
                .and_then(|sticky| endpoints.iter().find(|e| e.target == sticky.target))
                .filter(|endpoint| usable(endpoint));
            if let Some(endpoint) = still_sticky {
                self.remember(client, endpoint.target, now);
                return Some(endpoint);
            }
        }
        let chosen = match policy.balance {
            Balance::RoundRobin => self.round_robin(endpoints, &usable),
            Balance::LeastConnections => self.least_connections(endpoints, &open, &usable),
        }?;
        if policy.affinity.is_some() {
            self.remember(client, chosen.target, now);
        }
        Some(chosen)
    }

    fn round_robin<'a>(
        &mut self,
        endpoints: &'a [Endpoint],
        usable: &impl Fn(&Endpoint) -> bool,
    ) -> Option<&'a Endpoint> {
        let (index, endpoint) = self.in_rotation(endpoints).find(|(_, e)| usable(e))?;
        self.next = index + 1;
        Some(endpoint)
    }

    /// The usable endpoint with the fewest open connections; ties go to
    /// the one next in rotation, so equal loads still spread.
    fn least_connections<'a>(
        &mut self,
        endpoints: &'a [Endpoint],
        open: &impl Fn(SocketAddrV4) -> u64,
        usable: &impl Fn(&Endpoint) -> bool,
    ) -> Option<&'a Endpoint> {
        let (index, endpoint) = self
            .in_rotation(endpoints)
            .filter(|(_, e)| usable(e))
            .min_by_key(|(_, e)| open(e.target))?;
        self.next = index + 1;
        Some(endpoint)
    }

    /// Every endpoint once, starting at the rotation's position.
    fn in_rotation<'a>(
        &self,
        endpoints: &'a [Endpoint],
    ) -> impl Iterator<Item = (usize, &'a Endpoint)> {
        let start = match endpoints.len() {
            0 => 0,
            count => self.next % count,
        };
        (0..endpoints.len()).map(move |offset| {
            let index = (start + offset) % endpoints.len();
            (index, &endpoints[index])
        })
    }

    fn remember(&mut self, client: IpAddr, target: SocketAddrV4, now: Instant) {
        self.sticky.insert(
            client,
            Sticky {
                target,
                last_used: now,
            },
        );
    }

    fn cleanup(&mut self, policy: Policy, now: Instant) {
        self.choices_since_cleanup += 1;
        if self.choices_since_cleanup < CLEANUP_EVERY {
            return;
        }
        self.choices_since_cleanup = 0;
        match policy.affinity {
            None => self.sticky.clear(),
            Some(timeout) => self
                .sticky
                .retain(|_, sticky| now.saturating_duration_since(sticky.last_used) < timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    use super::*;

    fn endpoints(count: u8) -> Vec<Endpoint> {
        (1..=count)
            .map(|n| Endpoint {
                node: "n1".to_owned(),
                pod: format!("web-{n}"),
                target: SocketAddrV4::new(Ipv4Addr::new(172, 17, 0, n), 8080),
                via: None,
            })
            .collect()
    }

    fn client(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    const ROUND_ROBIN: Policy = Policy {
        balance: Balance::RoundRobin,
        affinity: None,
    };

    /// The pods chosen for `clients`, one choice each at `now`.
    fn choose_all(
        chooser: &mut Chooser,
        endpoints: &[Endpoint],
        policy: Policy,
        clients: &[u8],
        now: Instant,
    ) -> Vec<String> {
        clients
            .iter()
            .map(|&n| {
                chooser
                    .choose(endpoints, policy, client(n), now, |_| 0, |_| true)
                    .map_or("none".to_owned(), |e| e.pod.clone())
            })
            .collect()
    }

    #[test]
    fn round_robin_takes_each_endpoint_in_turn() {
        let mut chooser = Chooser::default();
        let chosen = choose_all(
            &mut chooser,
            &endpoints(3),
            ROUND_ROBIN,
            &[1; 6],
            Instant::now(),
        );
        assert_eq!(
            chosen,
            ["web-1", "web-2", "web-3", "web-1", "web-2", "web-3"]
        );
    }

    #[test]
    fn round_robin_skips_what_is_not_usable_and_keeps_its_place() {
        let endpoints = endpoints(3);
        let mut chooser = Chooser::default();
        let now = Instant::now();
        let skip_2 = |e: &Endpoint| e.pod != "web-2";
        let pick = |chooser: &mut Chooser| {
            chooser
                .choose(&endpoints, ROUND_ROBIN, client(1), now, |_| 0, skip_2)
                .map(|e| e.pod.clone())
        };
        assert_eq!(pick(&mut chooser).as_deref(), Some("web-1"));
        assert_eq!(pick(&mut chooser).as_deref(), Some("web-3"));
        assert_eq!(pick(&mut chooser).as_deref(), Some("web-1"));
    }

    #[test]
    fn nothing_usable_chooses_nothing() {
        let mut chooser = Chooser::default();
        let now = Instant::now();
        assert_eq!(
            chooser.choose(&[], ROUND_ROBIN, client(1), now, |_| 0, |_| true),
            None
        );
        assert_eq!(
            chooser.choose(&endpoints(2), ROUND_ROBIN, client(1), now, |_| 0, |_| false),
            None
        );
    }

    #[test]
    fn least_connections_takes_the_least_loaded_and_rotates_ties() {
        let endpoints = endpoints(3);
        let policy = Policy {
            balance: Balance::LeastConnections,
            affinity: None,
        };
        let mut chooser = Chooser::default();
        let now = Instant::now();
        let load = |target: SocketAddrV4| match target.ip().octets()[3] {
            1 => 5,
            _ => 2,
        };
        let mut chosen = HashSet::new();
        for _ in 0..4 {
            let endpoint = chooser
                .choose(&endpoints, policy, client(1), now, load, |_| true)
                .unwrap();
            chosen.insert(endpoint.pod.clone());
        }
        assert_eq!(
            chosen,
            HashSet::from(["web-2".to_owned(), "web-3".to_owned()])
        );
    }

    #[test]
    fn affinity_keeps_a_client_on_its_endpoint_until_it_is_idle_for_the_timeout() {
        let endpoints = endpoints(3);
        let policy = Policy {
            balance: Balance::RoundRobin,
            affinity: Some(Duration::from_secs(10)),
        };
        let mut chooser = Chooser::default();
        let start = Instant::now();
        let first = choose_all(&mut chooser, &endpoints, policy, &[1, 2, 1, 2], start);
        assert_eq!(first, ["web-1", "web-2", "web-1", "web-2"]);
        // Each use renews the stickiness: 9 s later, then 9 s after that.
        let later = start + Duration::from_secs(9);
        assert_eq!(
            choose_all(&mut chooser, &endpoints, policy, &[1], later),
            ["web-1"]
        );
        let later = later + Duration::from_secs(9);
        assert_eq!(
            choose_all(&mut chooser, &endpoints, policy, &[1], later),
            ["web-1"]
        );
        // Client 2 has been idle 18 s: chosen anew (the rotation's next).
        assert_eq!(
            choose_all(&mut chooser, &endpoints, policy, &[2], later),
            ["web-3"]
        );
    }

    #[test]
    fn affinity_gives_way_when_the_endpoint_left_or_failed() {
        let policy = Policy {
            balance: Balance::RoundRobin,
            affinity: Some(Duration::from_secs(10)),
        };
        let mut chooser = Chooser::default();
        let now = Instant::now();
        assert_eq!(
            choose_all(&mut chooser, &endpoints(3), policy, &[1], now),
            ["web-1"]
        );
        // web-1 left the table: another (the rotation's next).
        let without_1 = endpoints(3)[1..].to_vec();
        assert_eq!(
            choose_all(&mut chooser, &without_1, policy, &[1], now),
            ["web-3"]
        );
        // web-3 was tried and failed: another, and the client sticks to it.
        let all = endpoints(3);
        let chosen = chooser
            .choose(&all, policy, client(1), now, |_| 0, |e| e.pod != "web-3")
            .unwrap();
        assert_eq!(chosen.pod, "web-1");
        assert_eq!(
            choose_all(&mut chooser, &endpoints(3), policy, &[1], now),
            ["web-1"]
        );
    }
}
