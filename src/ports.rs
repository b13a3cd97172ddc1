//! Ports: the traits the application uses to reach the outside world, over domain types only
//! (no SDK type crosses them), with one typed error. Adapters in `crate::adapters` implement
//! them for AWS RDS, CloudWatch, HAProxy, the simulated fleet and recorded metrics files,
//! EventBridge and webhooks ([`EventSink`]). Also the injected [`Clock`].

use crate::core::config::MasterSpec;
use crate::core::domain::{
    Instance, InstanceClass, InstanceId, MetricKind, MetricQuery, MetricSeries, Statistic, Tags,
};
use crate::core::forecast::LoadHistory;
use crate::core::lease::LeaseRecord;
use crate::core::template::Settings;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What kind of failure a port call met; decides retry and reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// Throttled by the service: retry after backing off.
    Throttled,
    /// 5xx, timeouts, connection failures: retry.
    Transient,
    /// Anything else (bad request, access denied, invalid state): do not retry blindly.
    Fatal,
    /// No capacity for this class in this zone now (InsufficientDBInstanceCapacity,
    /// ProvisionedIopsNotAvailableInAZ): try another zone or class.
    NoCapacity,
    /// An account quota is reached (InstanceQuotaExceeded, StorageQuotaExceeded): retrying
    /// soon cannot help.
    QuotaExceeded,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::Fatal => "fatal",
            ErrorKind::NoCapacity => "no_capacity",
            ErrorKind::QuotaExceeded => "quota_exceeded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortError {
    pub kind: ErrorKind,
    /// The operation that failed (`DescribeDBInstances`, `GetMetricData`, `add server`, ...).
    pub operation: String,
    pub message: String,
}

impl PortError {
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            kind,
            operation: operation.into(),
            message: message.into(),
        }
    }
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed ({}): {}",
            self.operation,
            self.kind.as_str(),
            self.message
        )
    }
}
impl std::error::Error for PortError {}

/// The shared lease table of several copies of the service (DynamoDB): every write is
/// conditional; a condition that does not hold is [`ErrorKind::AlreadyExists`] (another copy
/// changed the record first).
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Every lease and every copy heartbeat.
    async fn read_all(&self) -> Result<(Vec<LeaseRecord>, Vec<LeaseRecord>), PortError>;
    /// Take the lease of `cluster` for `owner` until `expires`, if it is still as `seen` (or,
    /// `None`, never written); the new record (counter + 1).
    async fn acquire(
        &self,
        cluster: &str,
        seen: Option<&LeaseRecord>,
        owner: &str,
        expires: DateTime<Utc>,
    ) -> Result<LeaseRecord, PortError>;
    /// Extend `held` (still ours, same counter) until `expires`.
    async fn renew(
        &self,
        held: &LeaseRecord,
        expires: DateTime<Utc>,
    ) -> Result<LeaseRecord, PortError>;
    /// Give `held` up at once (if still ours).
    async fn release(&self, held: &LeaseRecord) -> Result<(), PortError>;
    /// Write this copy's heartbeat until `expires`.
    async fn heartbeat(&self, copy: &str, expires: DateTime<Utc>) -> Result<(), PortError>;
}

/// A read replica to create: `id` replicating `source`, of `class`, in `zone` (else where RDS
/// chooses), with its template's settings and the tags.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaRequest<'a> {
    pub id: &'a InstanceId,
    pub source: &'a InstanceId,
    pub class: &'a InstanceClass,
    pub zone: Option<&'a str>,
    pub settings: &'a Settings,
    pub tags: &'a Tags,
}

/// The DB fleet: RDS, or the simulated fleet.
#[async_trait]
pub trait Fleet: Send + Sync {
    /// Describe the instances among `ids` that exist (absent ones are simply not returned).
    /// Implementations batch: one call per up to 100 identifiers. Shared: a view holds
    /// them as described, and a fleet that keeps its instances hands them out uncopied.
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError>;
    /// Restore the master from its snapshot.
    async fn restore_master(&self, master: &MasterSpec, tags: &Tags) -> Result<(), PortError>;
    /// Create a read replica.
    async fn create_replica(&self, r: &ReplicaRequest<'_>) -> Result<(), PortError>;
    /// Apply template settings to an instance (ModifyDBInstance, applied immediately).
    async fn modify_settings(&self, id: &InstanceId, settings: &Settings) -> Result<(), PortError>;
    /// The availability zones RDS offers `class` of `engine` in, in the region of `near` (the
    /// cluster's master), for `availability_zones: spread`.
    async fn zones(
        &self,
        near: &InstanceId,
        engine: &str,
        class: &InstanceClass,
    ) -> Result<Vec<String>, PortError>;
    /// Delete a read replica (no final snapshot: replicas have none).
    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError>;
    /// Change an instance's class, applied immediately.
    async fn modify_class(&self, id: &InstanceId, class: &InstanceClass) -> Result<(), PortError>;
    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError>;
    /// Add or overwrite the given tags (others are kept).
    async fn write_tags(&self, id: &InstanceId, tags: &Tags) -> Result<(), PortError>;
    /// Remove the tags with the given keys (absent ones are no error; others are kept).
    async fn remove_tags(&self, id: &InstanceId, keys: &[String]) -> Result<(), PortError>;
    /// A count that changes whenever an instance of this fleet may have changed (any call
    /// that may change one, a state transition come due) and while a describe would fail, so
    /// that a caller keeping its last describe knows that describing again would give the
    /// same instances. `None`, the default: the fleet cannot tell (RDS), describe every time.
    fn generation(&self) -> Option<u64> {
        None
    }
}

/// Where replica metrics come from: CloudWatch, recorded files, or the simulated fleet.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// Samples for each query with period start in `[start, end)`, in query order. Gaps are
    /// missing samples, never zeros.
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError>;

    /// The load history of each query: per `step_secs` bucket of `[start, end)`, the sum over
    /// the query's instances of their `statistic` of `metric` (instances that no longer exist
    /// count where they have data). This default fetches every instance's series through
    /// [`MetricsSource::fetch`], all queries with the same time range in one fetch (so the
    /// adapter's batching gives one GetMetricData call per 500 series, not one per cluster),
    /// and sums them here; a source that can sum on its side (metric math) or that knows the
    /// total (the simulated fleet) overrides it.
    async fn load_history(&self, queries: &[HistoryQuery]) -> Result<Vec<LoadHistory>, PortError> {
        let mut out: Vec<Option<LoadHistory>> = vec![None; queries.len()];
        for group in HistoryQuery::fetch_groups(queries) {
            let (start, end) = (queries[group[0]].start, queries[group[0]].end);
            let per_instance: Vec<MetricQuery> = (group.iter())
                .flat_map(|&i| queries[i].metric_queries())
                .collect();
            let series = self.fetch(&per_instance, start, end).await?;
            let mut rest = series.as_slice();
            for &i in &group {
                let q = &queries[i];
                let (mine, tail) = rest.split_at(q.instances.len().min(rest.len()));
                rest = tail;
                out[i] = Some(LoadHistory::sum_of(q.metric, q.step_secs, start, end, mine));
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

/// One cluster's load history to read: `metric` (`statistic`) of each of `instances`, summed
/// per `step_secs` bucket of `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryQuery {
    pub cluster: String,
    pub instances: Vec<InstanceId>,
    pub metric: MetricKind,
    pub statistic: Statistic,
    pub step_secs: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl HistoryQuery {
    /// The indices of `queries` grouped by time range (first-seen order): what the default
    /// [`MetricsSource::load_history`] reads in one fetch each.
    pub fn fetch_groups(queries: &[HistoryQuery]) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let same =
                |g: &&mut Vec<usize>| (queries[g[0]].start, queries[g[0]].end) == (q.start, q.end);
            match groups.iter_mut().find(same) {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        groups
    }

    /// The per-instance queries it sums.
    pub fn metric_queries(&self) -> impl Iterator<Item = MetricQuery> + '_ {
        self.instances.iter().map(|id| MetricQuery {
            instance: id.clone(),
            metric: self.metric,
            statistic: self.statistic,
            period_secs: self.step_secs,
        })
    }
}

/// Sessions and state of one replica in the traffic router.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteState {
    /// Whether the router still sends new connections to it.
    pub accepting: bool,
    pub current_sessions: u64,
}

/// The traffic router in front of the replicas (HAProxy's runtime API).
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Add an available replica as a server and let it take traffic. Idempotent.
    async fn add(&self, replica: &Instance) -> Result<(), PortError>;
    /// Stop new connections to the replica (existing ones continue).
    async fn drain(&self, id: &InstanceId) -> Result<(), PortError>;
    /// State of the replica's server; `None` when the router does not know it.
    async fn state(&self, id: &InstanceId) -> Result<Option<RouteState>, PortError>;
    /// Take the replica out of the router for good. Idempotent.
    async fn remove(&self, id: &InstanceId) -> Result<(), PortError>;
}

/// The traffic router of each cluster that has one (a `haproxy` section), by cluster name:
/// built at the edge (the CLI and the service make HAProxy runtime clients) and handed to
/// the tick.
#[derive(Clone, Default)]
pub struct Routers(std::collections::BTreeMap<String, std::sync::Arc<dyn TrafficRouter>>);

impl Routers {
    pub fn insert(&mut self, cluster: &str, router: std::sync::Arc<dyn TrafficRouter>) {
        self.0.insert(cluster.to_string(), router);
    }
    /// The router of `cluster`, if it has one.
    pub fn get(&self, cluster: &str) -> Option<&dyn TrafficRouter> {
        self.0.get(cluster).map(|r| r.as_ref())
    }
}

impl std::fmt::Debug for Routers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Something worth telling people (`service::events` finds them; `service::notify` delivers
/// them to every [`EventSink`] whose filter takes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub kind: crate::core::notify::EventKind,
    /// The cluster it is about; `None` for the service as a whole (a refused reload).
    pub cluster: Option<String>,
    pub at: DateTime<Utc>,
    /// One readable line (a chat message).
    pub text: String,
    /// The kind's own fields (docs/notifications.md).
    pub detail: serde_json::Value,
}

/// Version of the JSON a notification is sent as; raised when a field changes meaning.
pub const NOTIFICATION_VERSION: u32 = 1;

impl Notification {
    /// The JSON every sink sends: `{version, source, type, cluster, time, text, detail}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": NOTIFICATION_VERSION,
            "source": "elasticrds",
            "type": self.kind.code(),
            "cluster": self.cluster,
            "time": self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "text": self.text,
            "detail": self.detail,
        })
    }
}

/// Where notifications go: an EventBridge bus, a webhook.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Deliver one notification (one try; the notifier retries retryable errors).
    async fn deliver(&self, n: &Notification) -> Result<(), PortError>;
}

/// Time, injected: the real clock in production, a manual one in tests and simulations.
#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    async fn sleep(&self, d: Duration);
}

/// Wall-clock time and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await
    }
}

/// A clock that only moves when told to; `sleep` advances it at once (no real waiting).
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: std::sync::Mutex::new(start),
        }
    }
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
    async fn sleep(&self, d: Duration) {
        self.advance(d);
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{MetricKind, Sample, Statistic};
    use chrono::TimeZone;
    use std::sync::Mutex;

    /// Every instance reports its number (`c1-r2`: 2.0) at every 5-minute step; fetches are
    /// recorded by size.
    #[derive(Default)]
    struct Numbered {
        fetches: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl MetricsSource for Numbered {
        async fn fetch(
            &self,
            queries: &[MetricQuery],
            start: DateTime<Utc>,
            end: DateTime<Utc>,
        ) -> Result<Vec<MetricSeries>, PortError> {
            self.fetches.lock().unwrap().push(queries.len());
            let steps = (end - start).num_minutes() / 5;
            Ok((queries.iter())
                .map(|q| {
                    let v: f64 = q
                        .instance
                        .as_str()
                        .rsplit('r')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let samples = (0..steps)
                        .map(|k| Sample {
                            at: start + chrono::Duration::minutes(5 * k),
                            value: v,
                        })
                        .collect();
                    MetricSeries {
                        query: q.clone(),
                        samples,
                    }
                })
                .collect())
        }
    }

    fn query(cluster: &str, n: usize, start: DateTime<Utc>) -> HistoryQuery {
        HistoryQuery {
            cluster: cluster.into(),
            instances: (1..=n)
                .map(|i| InstanceId::from_aws(&format!("{cluster}-r{i}")))
                .collect(),
            metric: MetricKind::Cpu,
            statistic: Statistic::Average,
            step_secs: 300,
            start,
            end: start + chrono::Duration::hours(1),
        }
    }

    #[tokio::test]
    async fn the_default_history_read_fetches_each_time_range_once_and_sums_per_cluster() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let later = t + chrono::Duration::minutes(5);
        let source = Numbered::default();
        let qs = [query("c1", 2, t), query("c2", 3, later), query("c3", 1, t)];
        let h = source.load_history(&qs).await.unwrap();
        // c1 and c3 share a range: one fetch of their 3 series; c2 alone: one of 3.
        assert_eq!(*source.fetches.lock().unwrap(), [3, 3]);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].values, vec![Some(1.0 + 2.0); 12]);
        assert_eq!(h[1].values, vec![Some(1.0 + 2.0 + 3.0); 12]);
        assert_eq!(h[1].start, later);
        assert_eq!(h[2].values, vec![Some(1.0); 12]);
    }
}
