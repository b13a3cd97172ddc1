//! Benchmark of the service's control tick (not a test): 100 clusters × 15 replicas × 3 metrics
//! through the real daemon (`service::daemon::Daemon`: batched observe, one metrics fetch, the
//! shared decide/plan/execute per cluster, Prometheus export) against counting in-memory fakes.
//! Prints per tick the Fleet/MetricsSource port calls and the AWS calls they stand for
//! (DescribeDBInstances: ceil(ids/100) per describe, as the RDS adapter batches; GetMetricData:
//! ceil(queries/500) per fetch, as the CloudWatch adapter batches), the CPU time per tick and
//! the process's resident memory.
//!
//!     cargo run --release --example bench_service [-- CLUSTERS REPLICAS TICKS]

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::{Config, MasterSpec};
use elasticrds::core::domain::{
    Instance, InstanceClass, InstanceId, MetricKind, MetricQuery, MetricSeries, Sample, Tags,
};
use elasticrds::core::policy::Policy;
use elasticrds::core::template::Settings;
use elasticrds::ports::{Fleet, ManualClock, MetricsSource, PortError, ReplicaRequest};
use elasticrds::service::daemon::{ClusterEntry, Daemon, DaemonOptions};
use elasticrds::service::metrics::Metrics;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Counts {
    describes: AtomicUsize,
    describe_ids: AtomicUsize,
    describe_aws: AtomicUsize,
    fetches: AtomicUsize,
    queries: AtomicUsize,
    fetch_aws: AtomicUsize,
    other: AtomicUsize,
}

struct CountingSim {
    inner: Arc<SimFleet>,
    counts: Arc<Counts>,
}

#[async_trait]
impl Fleet for CountingSim {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError> {
        self.counts.describes.fetch_add(1, Ordering::Relaxed);
        self.counts
            .describe_ids
            .fetch_add(ids.len(), Ordering::Relaxed);
        self.counts
            .describe_aws
            .fetch_add(ids.len().div_ceil(100), Ordering::Relaxed);
        self.inner.describe(ids).await
    }
    async fn restore_master(&self, m: &MasterSpec, t: &Tags) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.restore_master(m, t).await
    }
    async fn create_replica(&self, r: &ReplicaRequest<'_>) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.create_replica(r).await
    }
    async fn modify_settings(&self, id: &InstanceId, s: &Settings) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.modify_settings(id, s).await
    }
    async fn zones(
        &self,
        n: &InstanceId,
        e: &str,
        c: &InstanceClass,
    ) -> Result<Vec<String>, PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.zones(n, e, c).await
    }
    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_replica(id).await
    }
    async fn modify_class(&self, id: &InstanceId, c: &InstanceClass) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.modify_class(id, c).await
    }
    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.read_tags(id).await
    }
    async fn write_tags(&self, id: &InstanceId, t: &Tags) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.write_tags(id, t).await
    }
    async fn remove_tags(&self, id: &InstanceId, k: &[String]) -> Result<(), PortError> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.remove_tags(id, k).await
    }
}

/// Every period of the window present, CPU 50 % (inside the tolerance band: steady state).
struct Load {
    counts: Arc<Counts>,
}

#[async_trait]
impl MetricsSource for Load {
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        self.counts.fetches.fetch_add(1, Ordering::Relaxed);
        self.counts
            .queries
            .fetch_add(queries.len(), Ordering::Relaxed);
        self.counts
            .fetch_aws
            .fetch_add(queries.len().div_ceil(500), Ordering::Relaxed);
        Ok(queries
            .iter()
            .map(|q| {
                let value = match q.metric {
                    MetricKind::Cpu => 58.0,
                    MetricKind::Connections => 100.0,
                    MetricKind::ReplicaLag => 0.5,
                };
                let p = chrono::Duration::seconds(i64::from(q.period_secs));
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
            })
            .collect())
    }
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let clusters = args.first().copied().unwrap_or(100);
    let replicas = args.get(1).copied().unwrap_or(15);
    let ticks = args.get(2).copied().unwrap_or(20).max(1);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let sim = Arc::new(SimFleet::new(clock.clone(), SimOptions::default()));
        let mut yaml = String::new();
        for c in 0..clusters {
            let name = format!("c{c:03}");
            yaml.push_str(&format!(
                "{name}:\n  master_node: {{identifier: snap-{name}, instance_id: {name}-m, instance_class: db.r6g.large}}\n  replica_nodes:\n"
            ));
            sim.insert(sim.available_instance(&format!("{name}-m"), "db.r6g.large"));
            for r in 0..replicas {
                let id = format!("{name}-r{r:02}");
                yaml.push_str(&format!("    - {{id: {id}, instance_class: db.r6g.large}}\n"));
                let mut i = sim.available_instance(&id, "db.r6g.large");
                i.source = Some(InstanceId::from_aws(&format!("{name}-m")));
                i.available_since = Some(start - chrono::Duration::hours(1));
                sim.insert(i);
            }
        }
        let config = Config::parse("bench.yaml", &yaml).expect("config");
        let entries: Vec<ClusterEntry> = config
            .clusters
            .values()
            .map(|s| {
                let y = format!(
                    "cluster: {}\nmin_replicas: 1\nmax_replicas: {replicas}\nrules:\n  - metric: cpu\n    target: 60\n  - metric: connections\n    target: 500\n  - metric: replica_lag\n    statistic: Maximum\n    aggregation: max\n    above: 30\n    add: 1\n",
                    s.name
                );
                ClusterEntry::new(s.clone(), Policy::parse("bench-policy.yaml", &y, &config).expect("policy"))
            })
            .collect();
        let counts = Arc::new(Counts::default());
        let fleet = Arc::new(CountingSim {
            inner: sim.clone(),
            counts: counts.clone(),
        });
        let load = Arc::new(Load {
            counts: counts.clone(),
        });
        let metrics = Metrics::new();
        let mut daemon = Daemon::new(
            fleet,
            load,
            elasticrds::ports::Routers::default(),
            clock.clone(),
            entries,
            metrics.clone(),
            DaemonOptions::default(),
        );
        // Warm-up tick (first reads of state, first metric series), not measured.
        clock.advance(Duration::from_secs(60));
        let first = daemon.tick().await;
        assert!(first.ok(), "first tick failed");
        let take = |a: &AtomicUsize| a.swap(0, Ordering::Relaxed);
        let (d0, di0, da0) = (take(&counts.describes), take(&counts.describe_ids), take(&counts.describe_aws));
        let (f0, q0, fa0, o0) = (take(&counts.fetches), take(&counts.queries), take(&counts.fetch_aws), take(&counts.other));
        let cpu0 = cpu_time();
        let wall0 = std::time::Instant::now();
        for _ in 0..ticks {
            clock.advance(Duration::from_secs(60));
            let t = daemon.tick().await;
            assert!(t.ok(), "tick failed");
        }
        let cpu = cpu_time() - cpu0;
        let wall = wall0.elapsed();
        let n = ticks;
        println!("service tick benchmark: {clusters} clusters x {replicas} replicas x 3 metrics, {n} ticks");
        println!(
            "first tick:    {d0} describe port call(s) for {di0} ids = {da0} DescribeDBInstances; {f0} fetch(es) of {q0} queries = {fa0} GetMetricData; {o0} other calls (state tags)"
        );
        println!(
            "per tick:      {:.1} describe port call(s), {:.0} ids = {:.1} DescribeDBInstances; {:.1} fetch(es), {:.0} queries = {:.1} GetMetricData; {:.1} other calls",
            take(&counts.describes) as f64 / n as f64,
            take(&counts.describe_ids) as f64 / n as f64,
            take(&counts.describe_aws) as f64 / n as f64,
            take(&counts.fetches) as f64 / n as f64,
            take(&counts.queries) as f64 / n as f64,
            take(&counts.fetch_aws) as f64 / n as f64,
            take(&counts.other) as f64 / n as f64,
        );
        println!(
            "goal:          <= {} GetMetricData (ceil(queries/500)), <= {} DescribeDBInstances (1 per 100 instances)",
            (clusters * replicas * 3).div_ceil(500),
            (clusters * (replicas + 1)).div_ceil(100)
        );
        println!(
            "cpu per tick:  {:.1} ms (user+sys over {n} ticks; wall {:.1} ms per tick)",
            cpu.as_secs_f64() * 1000.0 / n as f64,
            wall.as_secs_f64() * 1000.0 / n as f64
        );
        println!(
            "memory:        VmRSS {:.1} MiB, VmHWM (peak) {:.1} MiB; /metrics {} bytes",
            status_kib("VmRSS:") as f64 / 1024.0,
            status_kib("VmHWM:") as f64 / 1024.0,
            metrics.render().len()
        );
    });
}
