//! Benchmark of the decision core alone: one `decide()` per simulated minute for a year
//! (525,600 calls) on a 4-replica cluster with cpu target tracking and a business-hours schedule,
//! the fleet following each decision at once. Run:
//!
//!     cargo run --release --example decide_year
//!
//! Prints the wall time of the decide() calls (series updates included) and the decisions made.

use chrono::{DateTime, Duration, Utc};
use elasticrds::core::config::Config;
use elasticrds::core::decide::{decide, Direction, ScaleState};
use elasticrds::core::domain::{
    Instance, InstanceClass, InstanceId, InstanceStatus, MetricKind, MetricQuery, MetricSeries,
    Sample, Statistic,
};
use elasticrds::core::plan::ClusterView;
use elasticrds::core::policy::Policy;
use std::time::Instant;

const CONFIG: &str = "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - {id: c1s2, instance_class: db.t3.micro}\n    - {id: c1s3, instance_class: db.t3.micro}\n    - {id: c1s4, instance_class: db.t3.micro}\n";
const POLICY: &str = "cluster: c1\nmin_replicas: 1\nmax_replicas: 4\nrules:\n  - {metric: cpu, target: 60}\nschedules:\n  - {name: business-hours, cron: '0 8 * * MON-FRI', timezone: Asia/Tokyo, duration: 9h, min_replicas: 2}\n";

fn inst(id: &str) -> Instance {
    Instance::new(
        InstanceId::parse(id).unwrap(),
        InstanceClass::parse("db.t3.micro").unwrap(),
        InstanceStatus::Available,
        "mysql",
    )
}

fn main() {
    let config = Config::parse("c.yaml", CONFIG).unwrap();
    let spec = config.cluster("c1").unwrap();
    let policy = Policy::parse("p.yaml", POLICY, &config).unwrap();
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
        .unwrap()
        .with_timezone(&Utc);
    let replicas: Vec<std::sync::Arc<Instance>> =
        (1..=4).map(|i| inst(&format!("c1s{i}")).into()).collect();
    let mut view = ClusterView {
        master: Some(inst("c1m").into()),
        replicas: vec![None; 4],
        conflicts: Vec::new(),
        foreign: vec![],
        parked: Vec::new(),
        replacing: Vec::new(),
        ..ClusterView::default()
    };
    let mut series: Vec<MetricSeries> = replicas
        .iter()
        .map(|r| MetricSeries {
            query: MetricQuery {
                instance: r.id.clone(),
                metric: MetricKind::Cpu,
                statistic: Statistic::Average,
                period_secs: 60,
            },
            samples: Vec::with_capacity(1),
        })
        .collect();
    let mut state = ScaleState::default();
    let mut current = 1usize;
    let (mut outs, mut ins) = (0u32, 0u32);
    let minutes = 525_600i64;
    let t = Instant::now();
    for m in 0..minutes {
        let now = start + Duration::minutes(m);
        for (i, r) in replicas.iter().enumerate() {
            view.replicas[i] = (i < current).then(|| r.clone());
        }
        // Demand: a daily wave between 0.3 and 2.5 replicas' worth at 100 % CPU.
        let day = (m % 1440) as f64 / 1440.0;
        let demand = 140.0 + 110.0 * (day * std::f64::consts::TAU).sin();
        let (_, end) = policy.fetch_window(now);
        let per = demand / current as f64;
        for s in series.iter_mut() {
            s.samples.clear();
            s.samples.push(Sample {
                at: end - Duration::minutes(1),
                value: per,
            });
        }
        let d = decide(&policy, spec, &view, &series[..current], &state, now);
        match d.direction {
            Direction::Out => outs += 1,
            Direction::In => ins += 1,
            Direction::None => {}
        }
        state.record(&d, d.direction != Direction::None, now);
        current = d.desired.max(1);
    }
    let el = t.elapsed();
    println!(
        "{minutes} decide() calls in {:.3} s ({:.2} µs each); {outs} scale-outs, {ins} scale-ins",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / minutes as f64
    );
}
