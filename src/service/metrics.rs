//! The service's Prometheus metrics: a [`Metrics`] struct that owns its own `Registry` (no
//! global registry), with exactly the names agreed in docs/metrics.md, and the text rendering
//! served on `/metrics`.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the service, registered in `registry`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub replicas: IntGaugeVec,
    pub available_replicas: IntGaugeVec,
    pub conflicting_instances: IntGaugeVec,
    pub template_drift_replicas: IntGaugeVec,
    pub failed_replicas: IntGaugeVec,
    pub parked_slots: IntGaugeVec,
    pub stuck_replicas: IntGaugeVec,
    pub unavailable_offerings: IntGaugeVec,
    pub creation_stopped: IntGaugeVec,
    pub desired_replicas: IntGaugeVec,
    pub min_replicas: IntGaugeVec,
    pub max_replicas: IntGaugeVec,
    pub decisions_total: IntCounterVec,
    pub actions_total: IntCounterVec,
    pub cpu_utilization_ratio: GaugeVec,
    pub cpu_target_ratio: GaugeVec,
    pub connections: GaugeVec,
    pub connections_target: GaugeVec,
    pub replica_lag_seconds: GaugeVec,
    pub replica_lag_target_seconds: GaugeVec,
    pub cooldown_remaining_seconds: GaugeVec,
    pub paused: IntGaugeVec,
    pub config_last_reload_successful: Gauge,
    pub config_last_reload_success_timestamp_seconds: Gauge,
    pub notifications_sent_total: IntCounterVec,
    pub notifications_dropped_total: IntCounterVec,
    pub notification_retries_total: IntCounterVec,
    pub notification_delivery_seconds: HistogramVec,
    pub forecast_load: GaugeVec,
    pub forecast_replicas: GaugeVec,
    pub forecast_error_ratio: GaugeVec,
    pub forecast_horizon_seconds: GaugeVec,
    pub forecast_lead_time_learned: GaugeVec,
    pub tick_duration_seconds: Histogram,
    pub ticks_total: IntCounterVec,
    pub cluster_errors_total: IntCounterVec,
    pub aws_calls_total: IntCounterVec,
    pub aws_errors_total: IntCounterVec,
    pub retries_total: IntCounterVec,
    pub backoff_seconds: GaugeVec,
    pub last_successful_tick_timestamp_seconds: Gauge,
    pub build_info: IntGaugeVec,
    pub leases_owned: IntGauge,
    pub lease_acquisitions_total: IntCounter,
    pub lease_losses_total: IntCounter,
    pub lease_renew_failures_total: IntCounter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics { .. }")
    }
}

/// Buckets of the tick duration histogram, seconds.
pub const TICK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Buckets of the notification delivery latency, seconds.
pub const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Why a notification was dropped (the `reason` label), pre-created at zero per sink.
pub const DROP_REASONS: [&str; 3] = ["queue_full", "failed", "shutdown"];

/// The `kind` label values (`ports::ErrorKind::as_str`), pre-created at zero so that the first
/// error is an increase Prometheus can see (a counter born at 1 is invisible to `increase()`).
pub const ERROR_KINDS: [&str; 7] = [
    "not_found",
    "already_exists",
    "throttled",
    "transient",
    "fatal",
    "no_capacity",
    "quota_exceeded",
];
/// Scale actions and the results an alert watches, pre-created at zero per cluster.
const SCALE_ACTIONS: [&str; 2] = ["create_replica", "delete_replica"];
const ACTION_RESULTS: [&str; 3] = ["ok", "error", "refused"];

fn name(n: &str) -> String {
    format!("elasticrds_{n}")
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered and `build_info` set.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("metric definition");
                registry
                    .register(Box::new(m.clone()))
                    .expect("unique metric name");
                m
            }};
        }
        let int_gauge = |n: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name(n), help), labels)
        };
        let gauge =
            |n: &str, help: &str, labels: &[&str]| GaugeVec::new(Opts::new(name(n), help), labels);
        let counter = |n: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name(n), help), labels)
        };
        let c = &["cluster"];
        let m = Metrics {
            replicas: reg!(int_gauge(
                "replicas",
                "Configured replicas that exist (not being deleted).",
                c
            )),
            available_replicas: reg!(int_gauge(
                "available_replicas",
                "Configured replicas that are available.",
                c
            )),
            conflicting_instances: reg!(int_gauge(
                "conflicting_instances",
                "Instances holding a configured replica id that are not read replicas of the master (never touched or counted; their slots are blocked).",
                c
            )),
            template_drift_replicas: reg!(int_gauge(
                "template_drift_replicas",
                "Replicas whose settings or tags differ from their replica template.",
                c
            )),
            failed_replicas: reg!(int_gauge(
                "failed_replicas",
                "Replicas in a state RDS does not recover from by itself (failed, incompatible-parameters, storage-full, ...): not serving.",
                c
            )),
            parked_slots: reg!(int_gauge(
                "parked_slots",
                "Replica slots parked after their replica failed repeatedly (elasticrds unpark).",
                c
            )),
            stuck_replicas: reg!(int_gauge(
                "stuck_replicas",
                "Replicas creating or modifying far beyond the learned lead time.",
                c
            )),
            unavailable_offerings: reg!(int_gauge(
                "unavailable_offerings",
                "(class, zone) pairs RDS had no capacity for lately, skipped until they expire.",
                c
            )),
            creation_stopped: reg!(int_gauge(
                "creation_stopped",
                "1 while creation is stopped for the cluster after an account quota error.",
                c
            )),
            desired_replicas: reg!(int_gauge(
                "desired_replicas",
                "Replica count the last decision wants.",
                c
            )),
            min_replicas: reg!(int_gauge(
                "min_replicas",
                "Policy minimum in force (schedules applied).",
                c
            )),
            max_replicas: reg!(int_gauge(
                "max_replicas",
                "Policy maximum in force (schedules applied).",
                c
            )),
            decisions_total: reg!(counter(
                "decisions_total",
                "Decisions made, by direction and primary reason code.",
                &["cluster", "direction", "reason"]
            )),
            actions_total: reg!(counter(
                "actions_total",
                "Reconciler actions by kind and result.",
                &["cluster", "action", "result"]
            )),
            cpu_utilization_ratio: reg!(gauge(
                "cpu_utilization_ratio",
                "Observed aggregated replica CPU utilization (0-1).",
                c
            )),
            cpu_target_ratio: reg!(gauge(
                "cpu_target_ratio",
                "Policy CPU utilization target (0-1).",
                c
            )),
            connections: reg!(gauge(
                "connections",
                "Observed aggregated DatabaseConnections.",
                c
            )),
            connections_target: reg!(gauge(
                "connections_target",
                "Policy DatabaseConnections target.",
                c
            )),
            replica_lag_seconds: reg!(gauge(
                "replica_lag_seconds",
                "Observed aggregated ReplicaLag in seconds.",
                c
            )),
            replica_lag_target_seconds: reg!(gauge(
                "replica_lag_target_seconds",
                "Policy ReplicaLag target or threshold in seconds.",
                c
            )),
            cooldown_remaining_seconds: reg!(gauge(
                "cooldown_remaining_seconds",
                "Seconds until the next action in that direction is allowed.",
                &["cluster", "direction"]
            )),
            paused: reg!(int_gauge(
                "paused",
                "1 while an operator's pause (elasticrds pause) holds that direction, else 0.",
                &["cluster", "direction"]
            )),
            config_last_reload_successful: reg!(Gauge::new(
                name("config_last_reload_successful"),
                "Whether the last reload of the config and policy files succeeded (1) or was refused (0)."
            )),
            config_last_reload_success_timestamp_seconds: reg!(Gauge::new(
                name("config_last_reload_success_timestamp_seconds"),
                "Unix time of the last successful load of the config and policy files (start or reload)."
            )),
            notifications_sent_total: reg!(counter(
                "notifications_sent_total",
                "Notifications delivered, by sink.",
                &["sink"]
            )),
            notifications_dropped_total: reg!(counter(
                "notifications_dropped_total",
                "Notifications not delivered, by sink and reason (queue_full, failed, shutdown).",
                &["sink", "reason"]
            )),
            notification_retries_total: reg!(counter(
                "notification_retries_total",
                "Delivery attempts retried after a retryable failure, by sink.",
                &["sink"]
            )),
            notification_delivery_seconds: reg!(HistogramVec::new(
                HistogramOpts::new(
                    name("notification_delivery_seconds"),
                    "Time from an event to its delivery (queue wait and retries included), by sink."
                )
                .buckets(DELIVERY_BUCKETS.to_vec()),
                &["sink"]
            )),
            forecast_load: reg!(gauge(
                "forecast_load",
                "Peak total load the forecast expects within its horizon (CPU: summed over replicas, 1 = 100 %).",
                c
            )),
            forecast_replicas: reg!(gauge(
                "forecast_replicas",
                "Replicas the forecast sizes for its expected peak; absent while it abstains.",
                c
            )),
            forecast_error_ratio: reg!(gauge(
                "forecast_error_ratio",
                "The forecaster's recent relative error of its peak forecast at the horizon.",
                c
            )),
            forecast_horizon_seconds: reg!(gauge(
                "forecast_horizon_seconds",
                "How far ahead the forecast looks: replica lead time (learned or configured) + margin.",
                c
            )),
            forecast_lead_time_learned: reg!(gauge(
                "forecast_lead_time_learned",
                "1 when the horizon's lead time is learned from the replicas' measured create-to-available times, 0 when it is the configured one.",
                c
            )),
            tick_duration_seconds: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    name("tick_duration_seconds"),
                    "Duration of one control-loop tick."
                )
                .buckets(TICK_BUCKETS.to_vec())
            )),
            ticks_total: reg!(counter(
                "ticks_total",
                "Control-loop ticks run.",
                &["result"]
            )),
            cluster_errors_total: reg!(counter(
                "cluster_errors_total",
                "Per-cluster tick failures by error kind.",
                &["cluster", "kind"]
            )),
            aws_calls_total: reg!(counter(
                "aws_calls_total",
                "AWS API calls made.",
                &["service", "operation"]
            )),
            aws_errors_total: reg!(counter(
                "aws_errors_total",
                "AWS API errors by kind.",
                &["service", "operation", "kind"]
            )),
            retries_total: reg!(counter(
                "retries_total",
                "Cluster ticks retried after a retryable failure.",
                c
            )),
            backoff_seconds: reg!(gauge(
                "backoff_seconds",
                "Current backoff delay before the cluster is tried again (0 when healthy).",
                c
            )),
            last_successful_tick_timestamp_seconds: reg!(Gauge::new(
                name("last_successful_tick_timestamp_seconds"),
                "Unix time of the last tick that completed."
            )),
            build_info: reg!(int_gauge(
                "build_info",
                "Build information; always 1.",
                &["version"]
            )),
            leases_owned: reg!(IntGauge::new(
                name("leases_owned"),
                "Clusters whose lease this copy holds (run --lease-table; 0 without)."
            )),
            lease_acquisitions_total: reg!(IntCounter::new(
                name("lease_acquisitions_total"),
                "Cluster leases this copy took (free, released or expired ones)."
            )),
            lease_losses_total: reg!(IntCounter::new(
                name("lease_losses_total"),
                "Cluster leases this copy lost: taken over while it could not renew them."
            )),
            lease_renew_failures_total: reg!(IntCounter::new(
                name("lease_renew_failures_total"),
                "Lease rounds that could not reach the lease table."
            )),
            registry: registry.clone(),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for r in ["ok", "error"] {
            m.ticks_total.with_label_values(&[r]);
        }
        m
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Set or clear (absent, not zero) an optional per-cluster gauge.
    pub fn set_optional(g: &GaugeVec, cluster: &str, v: Option<f64>) {
        match v {
            Some(v) if v.is_finite() => g.with_label_values(&[cluster]).set(v),
            _ => {
                let _ = g.remove_label_values(&[cluster]);
            }
        }
    }

    /// Make the per-cluster series exist from the start (counters at 0, backoff 0): retries,
    /// tick failures by kind, and scale actions by result.
    pub fn init_cluster(&self, cluster: &str) {
        self.retries_total.with_label_values(&[cluster]);
        for kind in ERROR_KINDS {
            self.cluster_errors_total
                .with_label_values(&[cluster, kind]);
        }
        for action in SCALE_ACTIONS {
            for result in ACTION_RESULTS {
                self.actions_total
                    .with_label_values(&[cluster, action, result]);
            }
        }
        self.backoff_seconds.with_label_values(&[cluster]).set(0.0);
        self.conflicting_instances
            .with_label_values(&[cluster])
            .set(0);
        for g in self.trouble_gauges() {
            g.with_label_values(&[cluster]).set(0);
        }
        for direction in ["out", "in"] {
            self.paused.with_label_values(&[cluster, direction]).set(0);
        }
    }

    /// Drop the per-cluster gauges of a cluster no longer configured (after a reload), so that
    /// no dashboard shows replicas of a cluster nobody manages; its counters stay, as history.
    pub fn forget_cluster(&self, cluster: &str) {
        let one = [
            &self.replicas,
            &self.available_replicas,
            &self.conflicting_instances,
            &self.desired_replicas,
            &self.min_replicas,
            &self.max_replicas,
        ];
        for g in one.into_iter().chain(self.trouble_gauges()) {
            let _ = g.remove_label_values(&[cluster]);
        }
        let gauges = [
            &self.cpu_utilization_ratio,
            &self.cpu_target_ratio,
            &self.connections,
            &self.connections_target,
            &self.replica_lag_seconds,
            &self.replica_lag_target_seconds,
            &self.forecast_load,
            &self.forecast_replicas,
            &self.forecast_error_ratio,
            &self.forecast_horizon_seconds,
            &self.forecast_lead_time_learned,
            &self.backoff_seconds,
        ];
        for g in gauges {
            let _ = g.remove_label_values(&[cluster]);
        }
        for direction in ["out", "in"] {
            let _ = self.paused.remove_label_values(&[cluster, direction]);
            let _ = (self.cooldown_remaining_seconds).remove_label_values(&[cluster, direction]);
        }
    }

    /// The per-cluster gauges of what went wrong with replicas (templates, failures, capacity).
    fn trouble_gauges(&self) -> [&IntGaugeVec; 6] {
        [
            &self.template_drift_replicas,
            &self.failed_replicas,
            &self.parked_slots,
            &self.stuck_replicas,
            &self.unavailable_offerings,
            &self.creation_stopped,
        ]
    }

    /// Make a sink's series exist from the start (counters at 0).
    pub fn init_sink(&self, sink: &str) {
        self.notifications_sent_total.with_label_values(&[sink]);
        self.notification_retries_total.with_label_values(&[sink]);
        for reason in DROP_REASONS {
            self.notifications_dropped_total
                .with_label_values(&[sink, reason]);
        }
    }

    pub fn notification_sent(&self, sink: &str, latency: std::time::Duration) {
        self.notifications_sent_total
            .with_label_values(&[sink])
            .inc();
        self.notification_delivery_seconds
            .with_label_values(&[sink])
            .observe(latency.as_secs_f64());
    }

    pub fn notification_dropped(&self, sink: &str, reason: &str, n: u64) {
        self.notifications_dropped_total
            .with_label_values(&[sink, reason])
            .inc_by(n);
    }

    pub fn notification_retry(&self, sink: &str) {
        self.notification_retries_total
            .with_label_values(&[sink])
            .inc();
    }

    /// A load of the config and policy files: successful (at start or reload) or refused.
    pub fn config_loaded(&self, ok: bool, unix_secs: f64) {
        self.config_last_reload_successful
            .set(if ok { 1.0 } else { 0.0 });
        if ok {
            self.config_last_reload_success_timestamp_seconds
                .set(unix_secs);
        }
    }

    /// An AWS call made through a port (`service` is `rds` or `cloudwatch`). The operation's
    /// error counters are created at zero with its first call.
    pub fn aws_call(&self, service: &str, operation: &str, calls: u64) {
        self.aws_calls_total
            .with_label_values(&[service, operation])
            .inc_by(calls);
        for kind in ERROR_KINDS {
            self.aws_errors_total
                .with_label_values(&[service, operation, kind]);
        }
    }

    pub fn aws_error(&self, service: &str, operation: &str, kind: &str) {
        self.aws_errors_total
            .with_label_values(&[service, operation, kind])
            .inc();
    }

    /// Value of one series of a counter vector, for tests and reports.
    pub fn counter_value(v: &IntCounterVec, labels: &[&str]) -> u64 {
        v.get_metric_with_label_values(labels)
            .map(|c| c.get())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_agreed_names_and_no_global_registry() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.replicas.with_label_values(&["c1"]).set(2);
        a.init_cluster("c1");
        a.aws_call("rds", "DescribeDBInstances", 1);
        Metrics::set_optional(&a.cpu_utilization_ratio, "c1", Some(0.5));
        let text = a.render();
        for n in [
            "elasticrds_replicas{cluster=\"c1\"} 2",
            "elasticrds_build_info{version=",
            "elasticrds_ticks_total{result=\"ok\"} 0",
            "elasticrds_aws_calls_total{operation=\"DescribeDBInstances\",service=\"rds\"} 1",
            "elasticrds_cpu_utilization_ratio{cluster=\"c1\"} 0.5",
            "elasticrds_backoff_seconds{cluster=\"c1\"} 0",
            "elasticrds_cluster_errors_total{cluster=\"c1\",kind=\"throttled\"} 0",
            "elasticrds_actions_total{action=\"create_replica\",cluster=\"c1\",result=\"error\"} 0",
            "elasticrds_aws_errors_total{kind=\"transient\",operation=\"DescribeDBInstances\",service=\"rds\"} 0",
            "elasticrds_tick_duration_seconds_bucket",
            "elasticrds_last_successful_tick_timestamp_seconds 0",
        ] {
            assert!(text.contains(n), "missing {n} in\n{text}");
        }
        Metrics::set_optional(&a.cpu_utilization_ratio, "c1", None);
        assert!(!a.render().contains("elasticrds_cpu_utilization_ratio{"));
        // Separate registries: b saw none of a's values.
        assert!(!b.render().contains("cluster=\"c1\""));
    }

    #[test]
    fn pre_created_error_kinds_are_the_port_error_kinds() {
        use crate::ports::ErrorKind::*;
        let kinds = [
            NotFound,
            AlreadyExists,
            Throttled,
            Transient,
            Fatal,
            NoCapacity,
            QuotaExceeded,
        ]
        .map(|k| k.as_str());
        assert_eq!(kinds, ERROR_KINDS);
    }
}
