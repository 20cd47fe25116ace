//! Kubernetes' crash-loop back-off, kept in the leader's memory.
//!
//! The kubelet's rule (flowcontrol.Backoff as used by `doBackOff`): the first
//! restart of a failed container is immediate; each later one waits for the
//! current delay counted from the container's finish, the delay starting at
//! 10 s and doubling up to 5 min; a container that ran for more than 10 min
//! since its last restart starts over at the beginning. Time comes in as an
//! argument, so every case is a table row.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

pub(crate) const INITIAL_DELAY: Duration = Duration::from_secs(10);
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(300);
/// A container that ran this long after its last restart is forgiven.
pub(crate) const RESET_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    delay: Duration,
    last_restart: SystemTime,
}

/// What to do with a container that exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackoffVerdict {
    RestartNow,
    /// In back-off: may restart at `until`; `delay` is the current step.
    Wait {
        until: SystemTime,
        delay: Duration,
    },
}

/// Back-off per container, keyed by the container's Docker name.
#[derive(Debug, Default)]
pub(crate) struct RestartBackoff {
    entries: HashMap<String, Entry>,
}

impl RestartBackoff {
    /// Whether the container `key`, which exited at `finished_at`, may be
    /// restarted at `now`.
    pub(crate) fn verdict(
        &self,
        key: &str,
        finished_at: SystemTime,
        now: SystemTime,
    ) -> BackoffVerdict {
        let Some(entry) = self.entries.get(key) else {
            return BackoffVerdict::RestartNow;
        };
        if expired(entry, finished_at) {
            return BackoffVerdict::RestartNow;
        }
        let until = finished_at + entry.delay;
        if now < until {
            BackoffVerdict::Wait {
                until,
                delay: entry.delay,
            }
        } else {
            BackoffVerdict::RestartNow
        }
    }

    /// Records that the container `key`, which exited at `finished_at`, was
    /// restarted at `now`; the next restart waits longer.
    pub(crate) fn record_restart(&mut self, key: &str, finished_at: SystemTime, now: SystemTime) {
        let delay = match self.entries.get(key) {
            Some(entry) if !expired(entry, finished_at) => (entry.delay * 2).min(MAX_DELAY),
            _ => INITIAL_DELAY,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_restart: now,
            },
        );
    }

    /// Forgets containers that are gone, so the map does not grow forever.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.entries.retain(|key, _| keep(key));
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn expired(entry: &Entry, finished_at: SystemTime) -> bool {
    finished_at
        .duration_since(entry.last_restart)
        .is_ok_and(|ran| ran > RESET_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    /// A container that crashes `ran` seconds after each restart, restarted
    /// as soon as the back-off allows: the waits between finish and restart.
    fn waits(crashes: usize, ran: u64) -> Vec<u64> {
        let mut backoff = RestartBackoff::default();
        let mut clock = at(0);
        let mut waits = Vec::new();
        for _ in 0..crashes {
            let finished = clock + Duration::from_secs(ran);
            let restart_at = match backoff.verdict("c", finished, finished) {
                BackoffVerdict::RestartNow => finished,
                BackoffVerdict::Wait { until, .. } => {
                    // Not before `until`: one second earlier is still a wait.
                    let early = until - Duration::from_secs(1);
                    assert!(matches!(
                        backoff.verdict("c", finished, early),
                        BackoffVerdict::Wait { .. }
                    ));
                    assert_eq!(
                        backoff.verdict("c", finished, until),
                        BackoffVerdict::RestartNow
                    );
                    until
                }
            };
            waits.push(restart_at.duration_since(finished).unwrap().as_secs());
            backoff.record_restart("c", finished, restart_at);
            clock = restart_at;
        }
        waits
    }

    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        assert_eq!(waits(9, 1), [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn running_ten_minutes_resets_the_back_off() {
        assert_eq!(waits(4, 601), [0, 0, 0, 0]);
        assert_eq!(waits(4, 600), [0, 10, 20, 40]);
    }

    #[test]
    fn containers_are_independent_and_forgotten() {
        let mut backoff = RestartBackoff::default();
        backoff.record_restart("a", at(0), at(0));
        assert_eq!(
            backoff.verdict("b", at(1), at(1)),
            BackoffVerdict::RestartNow
        );
        assert_eq!(
            backoff.verdict("a", at(1), at(1)),
            BackoffVerdict::Wait {
                until: at(11),
                delay: INITIAL_DELAY
            }
        );
        backoff.retain(|key| key != "a");
        assert!(backoff.is_empty());
        assert_eq!(
            backoff.verdict("a", at(1), at(1)),
            BackoffVerdict::RestartNow
        );
    }
}
