//! The leader's Prometheus metrics, kept in memory and written in the text
//! exposition format by hand (a handful of series needs no client crate).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds, in seconds, of the reconcile-duration histogram buckets.
pub(crate) const RECONCILE_BUCKETS: [f64; 10] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    reconcile_bucket_counts: [u64; RECONCILE_BUCKETS.len()],
    reconcile_count: u64,
    reconcile_sum_seconds: f64,
    /// (result) -> count: `ok`, `invalid`, `error`.
    reconciles: BTreeMap<String, u64>,
    /// (action kind, result) -> count.
    actions: BTreeMap<(String, String), u64>,
    /// (result) -> count: `succeeded`, `failed`.
    rollouts: BTreeMap<String, u64>,
    nodes_reachable: u64,
    nodes_total: u64,
    /// (namespace/name) -> (ready, desired).
    /// (kind, namespace, name) -> (ready, desired).
    replicas: BTreeMap<(String, String, String), (u32, u32)>,
    /// When the last reconcile started, seconds since the Unix epoch.
    last_reconcile_start: f64,
    /// From the first file-system event of the last push to its reconcile.
    last_wake_latency_seconds: f64,
    last_reconcile_seconds: f64,
    /// (namespace, name, port) -> what every node proxy counted.
    services: BTreeMap<(String, String, u16), ServiceFigures>,
}

/// One Service port's figures, summed over the node proxies that answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceFigures {
    /// Connections (TCP) or requests (HTTP) the proxies served.
    pub requests: u64,
    /// Those that reached no endpoint.
    pub errors: u64,
    /// Connections open now.
    pub open: u64,
    /// Ready endpoints in the tables the leader wrote.
    pub endpoints: u64,
}

/// One per-Service-port series of `/metrics`: name, type, help, and the
/// figure it reads.
type ServiceSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ServiceFigures) -> u64,
);

impl Metrics {
    pub fn observe_reconcile(&self, duration: Duration, result: &str) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        let seconds = duration.as_secs_f64();
        for (count, bound) in inner
            .reconcile_bucket_counts
            .iter_mut()
            .zip(RECONCILE_BUCKETS)
        {
            if seconds <= bound {
                *count += 1;
            }
        }
        inner.reconcile_count += 1;
        inner.reconcile_sum_seconds += seconds;
        inner.last_reconcile_seconds = seconds;
        *inner.reconciles.entry(result.to_string()).or_default() += 1;
    }

    /// Notes that a reconcile starts at `unix_seconds`; `wake_latency` is
    /// how long after the ref update that woke it, when a push did.
    pub fn reconcile_started(&self, unix_seconds: f64, wake_latency: Option<Duration>) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        inner.last_reconcile_start = unix_seconds;
        if let Some(latency) = wake_latency {
            inner.last_wake_latency_seconds = latency.as_secs_f64();
        }
    }

    pub fn count_action(&self, kind: &str, result: &str) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        *inner
            .actions
            .entry((kind.to_string(), result.to_string()))
            .or_default() += 1;
    }

    pub fn rollout_finished(&self, result: &str) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        *inner.rollouts.entry(result.to_string()).or_default() += 1;
    }

    pub fn set_nodes(&self, reachable: u64, total: u64) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        inner.nodes_reachable = reachable;
        inner.nodes_total = total;
    }

    /// Replaces the replica gauges: (namespace, name, ready, desired).
    /// Ready and desired replicas per (kind, namespace, name).
    pub fn set_replicas(
        &self,
        objects: impl IntoIterator<Item = ((String, String, String), u32, u32)>,
    ) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        inner.replicas = objects
            .into_iter()
            .map(|(object, ready, desired)| (object, (ready, desired)))
            .collect();
    }

    /// Replaces the Services' figures.
    pub fn set_services(&self, figures: BTreeMap<(String, String, u16), ServiceFigures>) {
        let mut inner = self.inner.lock().expect("metrics lock is never poisoned");
        inner.services = figures;
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let inner = self.inner.lock().expect("metrics lock is never poisoned");
        let mut out = String::new();
        out.push_str("# HELP flotilla_reconcile_duration_seconds Time taken by one reconcile: read, observe, plan, apply.\n");
        out.push_str("# TYPE flotilla_reconcile_duration_seconds histogram\n");
        for (count, bound) in inner.reconcile_bucket_counts.iter().zip(RECONCILE_BUCKETS) {
            let _ = writeln!(
                out,
                "flotilla_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "flotilla_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            inner.reconcile_count
        );
        let _ = writeln!(
            out,
            "flotilla_reconcile_duration_seconds_sum {}",
            inner.reconcile_sum_seconds
        );
        let _ = writeln!(
            out,
            "flotilla_reconcile_duration_seconds_count {}",
            inner.reconcile_count
        );
        out.push_str("# HELP flotilla_last_reconcile_start_timestamp_seconds When the last reconcile started.\n");
        out.push_str("# TYPE flotilla_last_reconcile_start_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "flotilla_last_reconcile_start_timestamp_seconds {}",
            inner.last_reconcile_start
        );
        out.push_str("# HELP flotilla_push_to_reconcile_seconds From the ref update of the last push to the start of its reconcile.\n");
        out.push_str("# TYPE flotilla_push_to_reconcile_seconds gauge\n");
        let _ = writeln!(
            out,
            "flotilla_push_to_reconcile_seconds {}",
            inner.last_wake_latency_seconds
        );
        out.push_str(
            "# HELP flotilla_last_reconcile_duration_seconds How long the last reconcile took.\n",
        );
        out.push_str("# TYPE flotilla_last_reconcile_duration_seconds gauge\n");
        let _ = writeln!(
            out,
            "flotilla_last_reconcile_duration_seconds {}",
            inner.last_reconcile_seconds
        );
        out.push_str("# HELP flotilla_rollouts_total Rollouts finished, by result.\n");
        out.push_str("# TYPE flotilla_rollouts_total counter\n");
        for (result, count) in &inner.rollouts {
            let _ = writeln!(
                out,
                "flotilla_rollouts_total{{result=\"{result}\"}} {count}"
            );
        }
        out.push_str("# HELP flotilla_reconciles_total Reconciles by result.\n");
        out.push_str("# TYPE flotilla_reconciles_total counter\n");
        for (result, count) in &inner.reconciles {
            let _ = writeln!(
                out,
                "flotilla_reconciles_total{{result=\"{}\"}} {count}",
                escape(result)
            );
        }
        out.push_str(
            "# HELP flotilla_actions_total Actions carried out on nodes, by kind and result.\n",
        );
        out.push_str("# TYPE flotilla_actions_total counter\n");
        for ((kind, result), count) in &inner.actions {
            let _ = writeln!(
                out,
                "flotilla_actions_total{{kind=\"{}\",result=\"{}\"}} {count}",
                escape(kind),
                escape(result)
            );
        }
        out.push_str(
            "# HELP flotilla_nodes_reachable Nodes the leader reached in the last reconcile.\n",
        );
        out.push_str("# TYPE flotilla_nodes_reachable gauge\n");
        let _ = writeln!(out, "flotilla_nodes_reachable {}", inner.nodes_reachable);
        out.push_str("# HELP flotilla_nodes Nodes declared in the desired state.\n");
        out.push_str("# TYPE flotilla_nodes gauge\n");
        let _ = writeln!(out, "flotilla_nodes {}", inner.nodes_total);
        out.push_str("# HELP flotilla_replicas_ready Ready replicas per object.\n");
        out.push_str("# TYPE flotilla_replicas_ready gauge\n");
        for ((kind, namespace, name), (ready, _)) in &inner.replicas {
            let _ = writeln!(
                out,
                "flotilla_replicas_ready{{kind=\"{}\",namespace=\"{}\",name=\"{}\"}} {ready}",
                escape(kind),
                escape(namespace),
                escape(name)
            );
        }
        out.push_str("# HELP flotilla_replicas_desired Desired replicas per object.\n");
        out.push_str("# TYPE flotilla_replicas_desired gauge\n");
        for ((kind, namespace, name), (_, desired)) in &inner.replicas {
            let _ = writeln!(
                out,
                "flotilla_replicas_desired{{kind=\"{}\",namespace=\"{}\",name=\"{}\"}} {desired}",
                escape(kind),
                escape(namespace),
                escape(name)
            );
        }
        let series: [ServiceSeries; 4] = [
            (
                "flotilla_service_requests_total",
                "counter",
                "Connections (TCP) or requests (HTTP) the node proxies served, per Service port, since each proxy started.",
                |f| f.requests,
            ),
            (
                "flotilla_service_errors_total",
                "counter",
                "Connections or requests that reached no endpoint, per Service port.",
                |f| f.errors,
            ),
            (
                "flotilla_service_open_connections",
                "gauge",
                "Connections open through the node proxies, per Service port.",
                |f| f.open,
            ),
            (
                "flotilla_service_endpoints",
                "gauge",
                "Ready endpoints per Service port, as the leader last wrote them.",
                |f| f.endpoints,
            ),
        ];
        for (metric, kind, help, value) in series {
            if inner.services.is_empty() {
                break;
            }
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} {kind}");
            for ((namespace, name, port), figures) in &inner.services {
                let _ = writeln!(
                    out,
                    "{metric}{{namespace=\"{}\",name=\"{}\",port=\"{port}\"}} {}",
                    escape(namespace),
                    escape(name),
                    value(figures)
                );
            }
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_histogram_counters_and_gauges() {
        let metrics = Metrics::default();
        metrics.observe_reconcile(Duration::from_millis(30), "ok");
        metrics.observe_reconcile(Duration::from_millis(700), "ok");
        metrics.count_action("create", "ok");
        metrics.count_action("create", "ok");
        metrics.count_action("remove", "error");
        metrics.set_nodes(2, 3);
        metrics.set_replicas([(
            (
                "Deployment".to_string(),
                "default".to_string(),
                "web".to_string(),
            ),
            2,
            3,
        )]);
        insta::assert_snapshot!(metrics.render());
    }
}
