//! [`FakeMetrics`]: a [`MetricsSource`] with constant values (per metric, optionally per
//! cluster), a sample in every period of the window, an optional delay, and a record of its
//! calls.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elasticrds::core::domain::{MetricKind, MetricQuery, MetricSeries, Sample};
use elasticrds::ports::{MetricsSource, PortError};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// One `fetch`, in tokio time since the first fetch began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchCall {
    pub began: Duration,
    pub ended: Duration,
    /// Queries asked in the call.
    pub queries: usize,
}

/// Constant metrics: `value(kind)` for every instance, except a CPU set per cluster (the
/// cluster of an instance is its identifier up to the first `-`: `ca-s01` is in `ca`).
pub struct FakeMetrics {
    values: BTreeMap<MetricKind, f64>,
    cpu: Mutex<BTreeMap<String, f64>>,
    delay: Mutex<Duration>,
    calls: Mutex<Vec<(Instant, Instant, usize)>>,
}

impl FakeMetrics {
    /// CPU `cpu` %, `connections` connections and `lag` seconds of replica lag everywhere.
    pub fn constant(cpu: f64, connections: f64, lag: f64) -> FakeMetrics {
        FakeMetrics {
            values: BTreeMap::from([
                (MetricKind::Cpu, cpu),
                (MetricKind::Connections, connections),
                (MetricKind::ReplicaLag, lag),
            ]),
            cpu: Mutex::default(),
            delay: Mutex::default(),
            calls: Mutex::default(),
        }
    }

    /// CPU `cpu` % for the instances of `cluster` from now on.
    pub fn set_cpu(&self, cluster: &str, cpu: f64) {
        lock(&self.cpu).insert(cluster.to_string(), cpu);
    }

    /// Make each fetch take `delay` (tokio time) from now on.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.delay) = delay;
    }

    /// The fetches so far, in order.
    pub fn calls(&self) -> Vec<FetchCall> {
        let calls = lock(&self.calls);
        let Some(t0) = calls.iter().map(|c| c.0).min() else {
            return Vec::new();
        };
        calls
            .iter()
            .map(|&(began, ended, queries)| FetchCall {
                began: began - t0,
                ended: ended - t0,
                queries,
            })
            .collect()
    }

    fn value(&self, q: &MetricQuery) -> f64 {
        let cluster = q.instance.as_str().split('-').next().unwrap_or("");
        let per_cluster = match q.metric {
            MetricKind::Cpu => lock(&self.cpu).get(cluster).copied(),
            _ => None,
        };
        per_cluster.unwrap_or(self.values[&q.metric])
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A sample of `value` at the start of every whole period in `[start, end)`.
fn series(q: &MetricQuery, value: f64, start: DateTime<Utc>, end: DateTime<Utc>) -> MetricSeries {
    let p = chrono::Duration::seconds(i64::from(q.period_secs.max(1)));
    let mut samples = Vec::new();
    let mut t = start;
    while t + p <= end {
        samples.push(Sample { at: t, value });
        t += p;
    }
    MetricSeries {
        query: q.clone(),
        samples,
    }
}

#[async_trait]
impl MetricsSource for FakeMetrics {
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        let began = Instant::now();
        let delay = *lock(&self.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        lock(&self.calls).push((began, Instant::now(), queries.len()));
        Ok(queries
            .iter()
            .map(|q| series(q, self.value(q), start, end))
            .collect())
    }
}
