//! Table-driven tests of the decision core through the public API (`Policy::parse` + `decide`),
//! for what the core's own table (src/core/decide.rs) leaves out: threshold rules that remove
//! replicas, the per-metric statistic and the aggregation across replicas, connections, stale
//! data with `missing_data.scale_out: act`, a schedule lowering the max, and observe-only.

mod support;

use chrono::{DateTime, Duration, Utc};
use elasticrds::core::config::Config;
use elasticrds::core::decide::{decide, Decision, Direction, ScaleState};
use elasticrds::core::domain::{
    InstanceId, MetricKind, MetricQuery, MetricSeries, Sample, Statistic,
};
use elasticrds::core::plan::ClusterView;
use elasticrds::core::policy::Policy;
use support::instance;

const CONFIG: &str = "c1:
  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}
  replica_nodes:
    - {id: c1s1, instance_class: db.t3.micro}
    - {id: c1s2, instance_class: db.t3.micro}
    - {id: c1s3, instance_class: db.t3.micro}
    - {id: c1s4, instance_class: db.t3.micro}
";

fn config() -> Config {
    Config::parse("c.yaml", CONFIG).expect("config")
}

/// 12:00:30Z: the fetch window (60 s periods) ends at 11:59; the newest final sample is 11:58.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:30Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// The master and the first `n` replicas, all available (and warm: no "available since").
fn available(n: usize) -> ClusterView {
    ClusterView {
        master: Some(instance("c1m").build().into()),
        replicas: (1..=4)
            .map(|i| (i <= n).then(|| instance(&format!("c1s{i}")).build().into()))
            .collect(),
        conflicts: Vec::new(),
        foreign: vec![],
        parked: Vec::new(),
        replacing: Vec::new(),
        ..ClusterView::default()
    }
}

/// One series: `(minutes before 11:58, value)` samples.
fn series(id: &str, m: MetricKind, s: Statistic, samples: &[(i64, f64)]) -> MetricSeries {
    let base = now() - Duration::seconds(150); // 11:58:00
    let mut samples: Vec<Sample> = samples
        .iter()
        .map(|(ago, v)| Sample {
            at: base - Duration::minutes(*ago),
            value: *v,
        })
        .collect();
    samples.sort_by_key(|x| x.at);
    MetricSeries {
        query: MetricQuery {
            instance: InstanceId::parse(id).expect("id"),
            metric: m,
            statistic: s,
            period_secs: 60,
        },
        samples,
    }
}

/// The newest sample (11:58) of one metric and statistic for each of `values`' replicas.
fn fresh(m: MetricKind, s: Statistic, values: &[f64]) -> Vec<MetricSeries> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| series(&format!("c1s{}", i + 1), m, s, &[(0, *v)]))
        .collect()
}

struct Case {
    name: &'static str,
    policy: &'static str,
    replicas: usize,
    metrics: Vec<MetricSeries>,
    desired: usize,
    direction: Direction,
    primary: &'static str,
    /// (code, fragment of its text) that must be among the reasons.
    reason: (&'static str, &'static str),
}

fn run(c: &Case) -> Decision {
    let cfg = config();
    let p = Policy::parse("p.yaml", &format!("cluster: c1\n{}", c.policy), &cfg)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let spec = cfg.cluster("c1").expect("c1");
    decide(
        &p,
        spec,
        &available(c.replicas),
        &c.metrics,
        &ScaleState::default(),
        now(),
    )
}

fn cases() -> Vec<Case> {
    use MetricKind::*;
    use Statistic::*;
    let lag_rule = "rules:\n  - {metric: replica_lag, statistic: Maximum, aggregation: max, above: 30, add: 1, below: 5, remove: 2}\nscale_in: {stabilization: 0s, max_step: 2}\n";
    vec![
        Case {
            name: "threshold below removes `remove` replicas",
            policy: lag_rule,
            replicas: 3,
            metrics: fresh(ReplicaLag, Maximum, &[1.0, 2.0, 0.5]),
            desired: 1,
            direction: Direction::In,
            primary: "threshold",
            reason: ("threshold", "replica_lag 2.0s < 5s → -2 → 1"),
        },
        Case {
            name: "threshold removal limited by max_step",
            policy: "rules:\n  - {metric: replica_lag, statistic: Maximum, aggregation: max, below: 5, remove: 3}\nscale_in: {stabilization: 0s, max_step: 1}\n",
            replicas: 4,
            metrics: fresh(ReplicaLag, Maximum, &[1.0, 1.0, 1.0, 1.0]),
            desired: 3,
            direction: Direction::In,
            primary: "threshold",
            reason: ("max_step", "limited to -1 per action → 3"),
        },
        Case {
            name: "threshold between its limits: steady",
            policy: lag_rule,
            replicas: 3,
            metrics: fresh(ReplicaLag, Maximum, &[1.0, 12.0, 0.5]),
            desired: 3,
            direction: Direction::None,
            primary: "steady",
            reason: ("steady", "replica_lag 12.0s between 5s and 30s"),
        },
        Case {
            name: "aggregation max: the worst replica drives",
            policy: "rules:\n  - {metric: cpu, aggregation: max, target: 60}\n",
            replicas: 2,
            metrics: fresh(Cpu, Average, &[30.0, 90.0]),
            desired: 3,
            direction: Direction::Out,
            primary: "target_tracking",
            reason: ("target_tracking", "cpu 90.0% > target 60% → 3"),
        },
        Case {
            name: "aggregation average: the same load is on target",
            policy: "rules:\n  - {metric: cpu, aggregation: average, target: 60, tolerance: 0.1}\n",
            replicas: 2,
            metrics: fresh(Cpu, Average, &[30.0, 90.0]),
            desired: 2,
            direction: Direction::None,
            primary: "within_tolerance",
            reason: ("within_tolerance", "cpu 60.0% within 10% of target 60%"),
        },
        Case {
            name: "the rule's statistic is the one read",
            policy: "rules:\n  - {metric: cpu, statistic: Maximum, target: 60}\n",
            replicas: 2,
            metrics: {
                let mut m = fresh(Cpu, Average, &[20.0, 20.0]);
                m.extend(fresh(Cpu, Maximum, &[95.0, 95.0]));
                m
            },
            desired: 4,
            direction: Direction::Out,
            primary: "target_tracking",
            reason: ("target_tracking", "cpu 95.0% > target 60% → 4"),
        },
        Case {
            name: "another statistic is no data for the rule",
            policy: "rules:\n  - {metric: cpu, statistic: Maximum, target: 60}\n",
            replicas: 2,
            metrics: fresh(Cpu, Average, &[95.0, 95.0]),
            desired: 2,
            direction: Direction::None,
            primary: "no_data",
            reason: ("no_data", "held: no data for c1s1"),
        },
        Case {
            name: "connections target tracking",
            policy: "rules:\n  - {metric: connections, target: 200}\n",
            replicas: 2,
            metrics: fresh(Connections, Average, &[310.0, 290.0]),
            desired: 3,
            direction: Direction::Out,
            primary: "target_tracking",
            reason: ("target_tracking", "connections 300 > target 200 → 3"),
        },
        Case {
            // The fresh replica's 95 % stands for both serving replicas: ceil(2 × 95 / 60) = 4.
            name: "stale data with scale_out: act acts on the fresh replica for a scale-out",
            policy: "rules:\n  - {metric: cpu, target: 60}\nmissing_data: {scale_out: act}\n",
            replicas: 2,
            metrics: vec![
                series("c1s1", Cpu, Average, &[(0, 95.0)]),
                series("c1s2", Cpu, Average, &[(6, 95.0)]),
            ],
            desired: 4,
            direction: Direction::Out,
            primary: "target_tracking",
            reason: ("stale", "acting despite: stale data for c1s2"),
        },
        Case {
            name: "stale data never scales in, even with scale_out: act",
            policy: "missing_data: {scale_out: act}\n",
            replicas: 3,
            metrics: vec![
                series("c1s1", Cpu, Average, &[(0, 5.0)]),
                series("c1s2", Cpu, Average, &[(0, 5.0)]),
                series("c1s3", Cpu, Average, &[(6, 5.0)]),
            ],
            desired: 3,
            direction: Direction::None,
            primary: "stale",
            reason: ("stale", "held: stale data for c1s3"),
        },
        Case {
            name: "a schedule lowering the max lowers the count at once",
            policy: "schedules:\n  - {name: night, cron: '0 0 * * *', timezone: UTC, duration: 24h, max_replicas: 2}\n",
            replicas: 4,
            metrics: fresh(Cpu, Average, &[60.0, 60.0, 60.0, 60.0]),
            desired: 2,
            direction: Direction::In,
            primary: "clamped_max",
            reason: ("clamped_max", "4 above max 2: lower to max 2"),
        },
        Case {
            name: "observe-only decides the same, and says so",
            policy: "observe_only: true\n",
            replicas: 2,
            metrics: fresh(Cpu, Average, &[90.0, 90.0]),
            desired: 3,
            direction: Direction::Out,
            primary: "target_tracking",
            reason: ("observe_only", "nothing will be changed"),
        },
    ]
}

#[test]
fn table_of_rule_kinds_statistics_and_data_holds() {
    let mut failures = Vec::new();
    for c in cases() {
        let d = run(&c);
        let found = d
            .reasons
            .iter()
            .any(|r| r.code() == c.reason.0 && r.to_string().contains(c.reason.1));
        if d.desired != c.desired
            || d.direction != c.direction
            || d.primary_reason() != c.primary
            || !found
            || d.target.replicas != d.desired
        {
            failures.push(format!(
                "{}: desired {} (want {}), direction {:?} (want {:?}), primary {} (want {}), reasons {:?}",
                c.name, d.desired, c.desired, d.direction, c.direction, d.primary, c.primary, d.reasons
            ));
        }
        // Observe-only: the decision is made, but it is not to be executed.
        assert_eq!(
            d.should_scale(),
            c.direction != Direction::None && !d.observe_only
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
