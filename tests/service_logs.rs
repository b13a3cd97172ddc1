//! The daemon's decision log, in process on tokio's paused time (its own test binary: the
//! tracing subscriber installed here must not see other tests' events): a decision repeated
//! unchanged tick after tick is logged once at INFO and then at DEBUG; a changed decision is
//! logged at INFO again, once. JSON lines, as `--log-format json` writes them.

mod support;

use chrono::{DateTime, TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::Config;
use elasticrds::core::domain::InstanceId;
use elasticrds::core::policy::Policy;
use elasticrds::service::daemon::{ClusterEntry, Daemon, DaemonOptions, TokioClock};
use elasticrds::service::metrics::Metrics;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{run_for, FakeMetrics};

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

/// A `MakeWriter` collecting formatted log lines.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    /// (level, cluster) of every `decision` event so far.
    fn decisions(&self) -> Vec<(String, String)> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["message"] == "decision")
            .map(|v| {
                (
                    v["level"].as_str().unwrap_or("").to_string(),
                    v["cluster"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
    fn count(&self, level: &str, cluster: &str) -> usize {
        self.decisions()
            .iter()
            .filter(|(l, c)| l == level && c == cluster)
            .count()
    }
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_decision_is_logged_once_at_info_then_at_debug() {
    let logs = LogBuf::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || w.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let mut y = String::new();
    for c in ["ca", "cb"] {
        y.push_str(&format!(
            "{c}:\n  master_node: {{identifier: snap-{c}, instance_id: {c}-m01, instance_class: db.t3.micro}}\n  replica_nodes:\n"
        ));
        for i in 1..=4 {
            y.push_str(&format!(
                "    - {{id: {c}-s0{i}, instance_class: db.t3.micro}}\n"
            ));
        }
    }
    let config = Config::parse("test.yaml", &y).expect("config");
    let clock = Arc::new(TokioClock::new(base()));
    let sim = Arc::new(SimFleet::new(clock.clone(), SimOptions::default()));
    for c in ["ca", "cb"] {
        sim.insert(sim.available_instance(&format!("{c}-m01"), "db.t3.micro"));
        for i in 1..=2 {
            let mut r = sim.available_instance(&format!("{c}-s0{i}"), "db.t3.micro");
            r.source = Some(InstanceId::from_aws(&format!("{c}-m01")));
            sim.insert(r);
        }
    }
    let entries = config
        .clusters
        .values()
        .map(|s| {
            let y = format!(
                "cluster: {}\nmin_replicas: 1\nmax_replicas: 4\nperiod: 60s\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  cooldown: 5m\n  max_step: 1\n  stabilization: 0s\nwarmup:\n  duration: 0s\n",
                s.name
            );
            let p = Policy::parse("p.yaml", &y, &config).expect("policy");
            ClusterEntry::new(s.clone(), p)
        })
        .collect();
    // Within 10 % of the 60 % target: the same decision (no change) every tick.
    let load = Arc::new(FakeMetrics::constant(60.0, 1.0, 1.0));
    let d = Daemon::new(
        sim,
        load.clone(),
        elasticrds::ports::Routers::default(),
        clock,
        entries,
        Metrics::new(),
        DaemonOptions {
            interval: Duration::from_secs(60),
            ..DaemonOptions::default()
        },
    );
    let d = run_for(d, Duration::from_secs(10 * 60 + 30)).await;
    for c in ["ca", "cb"] {
        assert_eq!(logs.count("INFO", c), 1, "{:?}", logs.decisions());
        assert!(logs.count("DEBUG", c) >= 9, "{:?}", logs.decisions());
    }
    // A changed decision (CPU far above target: scale out) is logged at INFO again, once.
    load.set_cpu("ca", 95.0);
    let _d = run_for(d, Duration::from_secs(30)).await;
    assert_eq!(logs.count("INFO", "ca"), 2, "{:?}", logs.decisions());
    assert_eq!(logs.count("INFO", "cb"), 1, "{:?}", logs.decisions());
}
