use super::*;
use crate::core::config::Config;
use crate::core::domain::{
    Instance, InstanceClass, InstanceId, InstanceStatus, MetricQuery, Sample, Tags,
};

const CONFIG: &str = "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - {id: c1s2, instance_class: db.t3.micro}\n    - {id: c1s3, instance_class: db.t3.micro}\n    - {id: c1s4, instance_class: db.t3.micro}\n";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
/// 12:00:30Z: the fetch window ends at 11:59, the newest final sample starts at 11:58.
fn now() -> DateTime<Utc> {
    t("2026-11-25T12:00:30Z")
}
fn mins(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

fn config() -> Config {
    Config::parse("c.yaml", CONFIG).unwrap()
}
fn policy(extra: &str) -> Policy {
    Policy::parse("p.yaml", &format!("cluster: c1\n{extra}"), &config()).unwrap()
}

fn inst(id: &str, status: &str, warm_mins: Option<i64>) -> Instance {
    let mut i = Instance::new(
        InstanceId::parse(id).unwrap(),
        InstanceClass::parse("db.t3.micro").unwrap(),
        InstanceStatus::parse(status),
        "mysql",
    );
    i.available_since = warm_mins.map(|m| now() - mins(m));
    i
}

/// Replicas 1..: each `(status, available for minutes)`; master available.
fn view(replicas: &[(&str, Option<i64>)]) -> ClusterView {
    let mut v = ClusterView {
        master: Some(inst("c1m", "available", None).into()),
        replicas: vec![None; 4],
        conflicts: Vec::new(),
        foreign: vec![],
        parked: Vec::new(),
        replacing: Vec::new(),
        ..ClusterView::default()
    };
    for (i, (st, w)) in replicas.iter().enumerate() {
        v.replicas[i] = Some(inst(&format!("c1s{}", i + 1), st, *w).into());
    }
    v
}
fn avail(n: usize) -> ClusterView {
    view(&vec![("available", None); n])
}

fn series(id: &str, metric: MetricKind, stat: Statistic, vals: &[(i64, f64)]) -> MetricSeries {
    // (minutes before 11:58, value)
    let base = t("2026-11-25T11:58:00Z");
    MetricSeries {
        query: MetricQuery {
            instance: InstanceId::parse(id).unwrap(),
            metric,
            statistic: stat,
            period_secs: 60,
        },
        samples: vals
            .iter()
            .rev()
            .map(|(m, v)| Sample {
                at: base - mins(*m),
                value: *v,
            })
            .collect(),
    }
}
fn cpu(ids: &[&str], v: f64) -> Vec<MetricSeries> {
    ids.iter()
        .map(|id| series(id, MetricKind::Cpu, Statistic::Average, &[(0, v), (1, v)]))
        .collect()
}
const IDS: [&str; 4] = ["c1s1", "c1s2", "c1s3", "c1s4"];

fn run(p: &Policy, v: &ClusterView, m: &[MetricSeries], s: &ScaleState) -> Decision {
    decide(p, config().cluster("c1").unwrap(), v, m, s, now())
}
fn has(d: &Decision, code: &str, text: &str) -> bool {
    d.reasons
        .iter()
        .any(|r| r.code() == code && r.to_string().contains(text))
}

struct Case {
    name: &'static str,
    policy: &'static str,
    view: ClusterView,
    metrics: Vec<MetricSeries>,
    state: ScaleState,
    desired: usize,
    primary: &'static str,
    reason: (&'static str, &'static str),
}

fn cases() -> Vec<Case> {
    let st = ScaleState::default;
    vec![
        Case {
            name: "target tracking scales out",
            policy: "",
            view: avail(2),
            metrics: cpu(&IDS[..2], 82.1),
            state: st(),
            desired: 3,
            primary: "target_tracking",
            reason: ("target_tracking", "cpu 82.1% > target 70% → 3"),
        },
        Case {
            name: "within tolerance",
            policy: "",
            view: avail(2),
            metrics: cpu(&IDS[..2], 64.0),
            state: st(),
            desired: 2,
            primary: "within_tolerance",
            reason: ("within_tolerance", "cpu 64.0% within 10% of target 70%"),
        },
        Case {
            name: "scale-in limited to one step",
            policy: "",
            view: avail(3),
            metrics: cpu(&IDS[..3], 10.0),
            state: st(),
            desired: 2,
            primary: "target_tracking",
            reason: ("max_step", "limited to -1 per action → 2"),
        },
        Case {
            name: "scale-out limited to two steps",
            policy: "",
            view: avail(1),
            metrics: cpu(&IDS[..1], 100.0 * 4.0),
            state: st(),
            desired: 3,
            primary: "clamped_max",
            reason: ("max_step", "limited to +2 per action → 3"),
        },
        Case {
            name: "clamped to max",
            policy: "",
            view: avail(3),
            metrics: cpu(&IDS[..3], 95.0),
            state: st(),
            desired: 4,
            primary: "clamped_max",
            reason: ("clamped_max", "clamped to max 4"),
        },
        Case {
            name: "raised to min without data",
            policy: "min_replicas: 2\n",
            view: avail(0),
            metrics: vec![],
            state: st(),
            desired: 2,
            primary: "clamped_min",
            reason: ("clamped_min", "raise to min 2"),
        },
        Case {
            name: "above max lowered without data",
            policy: "max_replicas: 2\n",
            view: avail(4),
            metrics: vec![],
            state: st(),
            desired: 2,
            primary: "clamped_max",
            reason: ("clamped_max", "lower to max 2"),
        },
        Case {
            name: "scale-in cooldown",
            policy: "",
            view: avail(3),
            metrics: cpu(&IDS[..3], 10.0),
            state: ScaleState {
                last_scale_in: Some(now() - mins(7) - chrono::Duration::seconds(48)),
                ..st()
            },
            desired: 3,
            primary: "cooldown",
            reason: ("cooldown", "held: scale-in cooldown 7m12s left"),
        },
        Case {
            name: "scale-in cooldown counts from a scale-out too",
            policy: "",
            view: avail(3),
            metrics: cpu(&IDS[..3], 10.0),
            state: ScaleState {
                last_scale_out: Some(now() - mins(10)),
                ..st()
            },
            desired: 3,
            primary: "cooldown",
            reason: ("cooldown", "held: scale-in cooldown 5m0s left"),
        },
        Case {
            name: "scale-out cooldown",
            policy: "",
            view: avail(2),
            metrics: cpu(&IDS[..2], 90.0),
            state: ScaleState {
                last_scale_out: Some(now() - mins(2)),
                ..st()
            },
            desired: 2,
            primary: "cooldown",
            reason: ("cooldown", "held: scale-out cooldown 3m0s left"),
        },
        Case {
            name: "scale-out ignores an old scale-in",
            policy: "",
            view: avail(2),
            metrics: cpu(&IDS[..2], 90.0),
            state: ScaleState {
                last_scale_in: Some(now() - mins(1)),
                ..st()
            },
            desired: 3,
            primary: "target_tracking",
            reason: ("target_tracking", "→ 3"),
        },
        Case {
            name: "scale-in stabilization",
            policy: "",
            view: avail(3),
            metrics: cpu(&IDS[..3], 10.0),
            state: ScaleState {
                recent_high: vec![(now() - mins(9), 3), (now() - mins(1), 1)],
                ..st()
            },
            desired: 3,
            primary: "stabilization",
            reason: (
                "stabilization",
                "highest recommendation in the last 10m0s is 3",
            ),
        },
        Case {
            name: "stabilization window has passed",
            policy: "",
            view: avail(3),
            metrics: cpu(&IDS[..3], 10.0),
            state: ScaleState {
                recent_high: vec![(now() - mins(11), 3), (now() - mins(1), 1)],
                ..st()
            },
            desired: 2,
            primary: "target_tracking",
            reason: ("target_tracking", "cpu 10.0% < target 70% → 1"),
        },
        Case {
            name: "scale-out stabilization (configured)",
            policy: "scale_out: {stabilization: 3m}\n",
            view: avail(2),
            metrics: cpu(&IDS[..2], 90.0),
            state: ScaleState {
                recent_low: vec![(now() - mins(2), 2)],
                ..st()
            },
            desired: 2,
            primary: "stabilization",
            reason: ("stabilization", "lowest recommendation in the last 3m0s is 2"),
        },
        Case {
            name: "no data for a replica",
            policy: "",
            view: avail(2),
            metrics: cpu(&IDS[..1], 90.0),
            state: st(),
            desired: 2,
            primary: "no_data",
            reason: ("no_data", "held: no data for c1s2"),
        },
        Case {
            name: "no data never scales in, even with act",
            policy: "missing_data: {scale_out: act}\n",
            view: avail(3),
            metrics: cpu(&IDS[..2], 5.0),
            state: st(),
            desired: 3,
            primary: "no_data",
            reason: ("no_data", "held: no data for c1s3"),
        },
        Case {
            name: "act on present metrics for a scale-out",
            policy: "missing_data: {scale_out: act}\n",
            view: avail(2),
            metrics: cpu(&IDS[..1], 90.0),
            state: st(),
            desired: 3,
            primary: "target_tracking",
            reason: ("no_data", "acting despite: no data for c1s2"),
        },
        Case {
            name: "stale data",
            policy: "",
            view: avail(1),
            metrics: vec![series("c1s1", MetricKind::Cpu, Statistic::Average, &[(4, 90.0)])],
            state: st(),
            desired: 1,
            primary: "stale",
            reason: ("stale", "held: stale data for c1s1"),
        },
        Case {
            name: "two missed periods are not stale yet",
            policy: "",
            view: avail(1),
            metrics: vec![series("c1s1", MetricKind::Cpu, Statistic::Average, &[(2, 90.0)])],
            state: st(),
            desired: 2,
            primary: "target_tracking",
            reason: ("target_tracking", "→ 2"),
        },
        Case {
            name: "warming replica left out of the average, counted as capacity",
            policy: "",
            view: view(&[("available", None), ("available", Some(4))]),
            // c1s2 is at 0 % (no traffic yet): left out, the average stays at 45.
            metrics: {
                let mut m = cpu(&IDS[..1], 45.0);
                m.extend(cpu(&IDS[1..2], 0.0));
                m
            },
            state: st(),
            desired: 2,
            primary: "target_tracking",
            reason: ("warmup", "c1s2 available for 4m0s of 10m0s"),
        },
        Case {
            name: "all replicas warming",
            policy: "",
            view: view(&[("available", Some(1)), ("available", Some(2))]),
            metrics: cpu(&IDS[..2], 5.0),
            state: st(),
            desired: 2,
            primary: "warmup",
            reason: ("warmup", "held: every serving replica is warming up"),
        },
        Case {
            name: "scale-in held while a replica is in flight",
            policy: "",
            view: view(&[("available", None), ("available", None), ("creating", None)]),
            metrics: cpu(&IDS[..2], 5.0),
            state: st(),
            desired: 3,
            primary: "in_flight",
            reason: ("in_flight", "held: c1s3 is creating"),
        },
        Case {
            name: "scale-out continues while creating, counting it as capacity",
            policy: "",
            view: view(&[("available", None), ("available", None), ("creating", None)]),
            // load 2 × 120 % = 240 → 4 replicas; 3 exist or are coming → +1.
            metrics: cpu(&IDS[..2], 120.0),
            state: st(),
            desired: 4,
            primary: "target_tracking",
            reason: ("target_tracking", "→ 4"),
        },
        Case {
            name: "scale-out held while in flight when configured",
            policy: "scale_out: {while_in_flight: false}\n",
            view: view(&[("available", None), ("creating", None)]),
            metrics: cpu(&IDS[..1], 150.0),
            state: st(),
            desired: 2,
            primary: "in_flight",
            reason: ("in_flight", "held: c1s2 is creating"),
        },
        Case {
            name: "scale-out paused",
            policy: "scale_out: {enabled: false}\n",
            view: avail(2),
            metrics: cpu(&IDS[..2], 90.0),
            state: st(),
            desired: 2,
            primary: "paused",
            reason: ("paused", "held: scale-out paused"),
        },
        Case {
            name: "scale-in paused",
            policy: "scale_in: {enabled: false}\n",
            view: avail(3),
            metrics: cpu(&IDS[..3], 5.0),
            state: st(),
            desired: 3,
            primary: "paused",
            reason: ("paused", "held: scale-in paused"),
        },
        Case {
            name: "master serves when no replica is available",
            policy: "min_replicas: 0\n",
            view: avail(0),
            metrics: cpu(&["c1m"], 90.0),
            state: st(),
            desired: 2,
            primary: "target_tracking",
            reason: ("master_serving", "the master c1m serves reads"),
        },
        Case {
            name: "threshold rule adds",
            policy: "rules:\n  - {metric: replica_lag, statistic: Maximum, aggregation: max, above: 30, add: 1, below: 5}\n",
            view: avail(2),
            metrics: vec![
                series("c1s1", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 45.0)]),
                series("c1s2", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 2.0)]),
            ],
            state: st(),
            desired: 3,
            primary: "threshold",
            reason: ("threshold", "replica_lag 45.0s > 30s → +1 → 3"),
        },
        Case {
            name: "threshold counts replicas in flight",
            policy: "rules:\n  - {metric: replica_lag, statistic: Maximum, aggregation: max, above: 30}\n",
            view: view(&[("available", None), ("available", None), ("creating", None)]),
            metrics: vec![
                series("c1s1", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 45.0)]),
                series("c1s2", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 2.0)]),
            ],
            state: st(),
            desired: 3,
            primary: "threshold",
            reason: ("threshold", "→ +1 → 3 (replicas in flight counted)"),
        },
        Case {
            name: "raised beyond min when the load needs it",
            policy: "min_replicas: 2\n",
            view: avail(0),
            metrics: cpu(&["c1m"], 150.0),
            state: st(),
            desired: 3,
            primary: "clamped_min",
            reason: ("target_tracking", "the load needs 3: → 3"),
        },
        Case {
            name: "several rules: scale in only if all agree",
            policy: "rules:\n  - {metric: cpu, target: 60}\n  - {metric: connections, above: 500, below: 100}\n",
            view: avail(3),
            metrics: {
                let mut m = cpu(&IDS[..3], 5.0);
                for id in &IDS[..3] {
                    m.push(series(id, MetricKind::Connections, Statistic::Average, &[(0, 300.0)]));
                }
                m
            },
            state: st(),
            desired: 3,
            primary: "steady",
            reason: ("steady", "connections 300 between 100 and 500"),
        },
        Case {
            name: "several rules: the largest proposal wins",
            policy: "rules:\n  - {metric: cpu, target: 60}\n  - {metric: connections, above: 500, add: 1, below: 100}\n",
            view: avail(2),
            metrics: {
                let mut m = cpu(&IDS[..2], 5.0);
                for id in &IDS[..2] {
                    m.push(series(id, MetricKind::Connections, Statistic::Average, &[(0, 900.0)]));
                }
                m
            },
            state: st(),
            desired: 3,
            primary: "threshold",
            reason: ("threshold", "connections 900 > 500 → +1 → 3"),
        },
        Case {
            name: "lagging replica left out of cpu",
            policy: "warmup: {max_lag: 60s}\n",
            view: avail(2),
            metrics: {
                let mut m = cpu(&IDS[..1], 66.0);
                m.extend(cpu(&IDS[1..2], 5.0));
                m.push(series("c1s2", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 300.0)]));
                m.push(series("c1s1", MetricKind::ReplicaLag, Statistic::Maximum, &[(0, 1.0)]));
                m
            },
            state: st(),
            desired: 2,
            primary: "within_tolerance",
            reason: ("warmup", "c1s2 lagging above 60s"),
        },
        Case {
            name: "schedule raises min",
            policy: "schedules:\n  - {name: all-day, cron: '0 0 * * *', timezone: UTC, duration: 24h, min_replicas: 3}\n",
            view: avail(1),
            metrics: cpu(&IDS[..1], 10.0),
            state: st(),
            desired: 3,
            primary: "clamped_min",
            reason: ("schedule", "schedule all-day in force: min 3 max 4"),
        },
    ]
}

#[test]
fn table_of_rules_and_holds() {
    let mut failures = Vec::new();
    for c in cases() {
        let p = policy(c.policy);
        let d = run(&p, &c.view, &c.metrics, &c.state);
        let ok = d.desired == c.desired
            && d.primary_reason() == c.primary
            && has(&d, c.reason.0, c.reason.1)
            && d.target.replicas == d.desired;
        if !ok {
            failures.push(format!(
                "{}: desired {} (want {}), primary {} (want {}), reasons {:?}",
                c.name, d.desired, c.desired, d.primary, c.primary, d.reasons
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn observe_only_decides_but_does_not_scale() {
    let p = policy("observe_only: true\n");
    let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &ScaleState::default());
    assert_eq!(d.desired, 3);
    assert!(d.observe_only);
    assert!(!d.should_scale());
    assert!(has(&d, "observe_only", "nothing will be changed"));
}

#[test]
fn schedule_class_override_reaches_the_target() {
    let p =
        policy("schedules:\n  - {cron: '0 0 * * *', duration: 24h, replica_class: db.r5.large}\n");
    let d = run(&p, &avail(1), &cpu(&IDS[..1], 60.0), &ScaleState::default());
    assert_eq!(
        d.target.replica_class.as_ref().unwrap().as_str(),
        "db.r5.large"
    );
    assert_eq!(d.target.replicas, 1);
}

#[test]
fn master_absent_holds() {
    let p = policy("");
    let mut v = avail(2);
    v.master = None;
    let d = run(&p, &v, &cpu(&IDS[..2], 5.0), &ScaleState::default());
    assert_eq!(d.desired, 2);
    assert_eq!(d.primary, "in_flight");
    assert!(has(&d, "in_flight", "master c1m does not exist"));
}

#[test]
fn record_keeps_cooldown_times_and_a_monotone_history() {
    let p = policy("");
    let mut s = ScaleState::default();
    let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &s);
    assert_eq!(d.direction, Direction::Out);
    s.record(&d, true, now());
    assert_eq!(s.last_scale_out, Some(now()));
    assert_eq!(s.last_scale_in, None);
    assert_eq!(s.recent_high, vec![(now(), 3)]);
    // Not acted: no time recorded.
    let mut s2 = ScaleState::default();
    s2.record(&d, false, now());
    assert_eq!(s2.last_scale_out, None);
    // History keeps strictly decreasing values and forgets what is out of every window.
    let mut s3 = ScaleState {
        recent_high: vec![
            (now() - mins(30), 4),
            (now() - mins(5), 3),
            (now() - mins(2), 2),
        ],
        ..Default::default()
    };
    let mut d2 = d.clone();
    d2.recommendation = Some(2);
    s3.record(&d2, false, now());
    assert_eq!(s3.recent_high, vec![(now() - mins(5), 3), (now(), 2)]);
}

#[test]
fn state_round_trips_through_tags_and_tolerates_junk() {
    let s = ScaleState {
        last_scale_out: Some(t("2026-11-25T11:00:00Z")),
        last_scale_in: None,
        recent_high: vec![
            (t("2026-11-25T11:50:00Z"), 3),
            (t("2026-11-25T11:55:00Z"), 2),
        ],
        recent_low: vec![(t("2026-11-25T11:55:00Z"), 2)],
        last_decision: LastDecision::parse("out 3 target_tracking"),
    };
    assert!(s.last_decision.is_some());
    let tags = s.to_tags();
    assert!(tags.keys().all(|k| k.starts_with("elasticrds:")));
    assert!(tags.values().all(|v| v.len() <= 256));
    assert_eq!(ScaleState::from_tags(&tags), s);
    let mut junk = tags.clone();
    junk.insert(TAG_LAST_SCALE_OUT.into(), "yesterday".into());
    junk.insert(TAG_RECENT_HIGH.into(), "1=2 x=y".into());
    let back = ScaleState::from_tags(&junk);
    assert_eq!(back.last_scale_out, None);
    assert!(back.recent_high.is_empty());
    assert_eq!(back.recent_low, s.recent_low);
    assert_eq!(ScaleState::from_tags(&Tags::new()), ScaleState::default());
    for bad in [
        "",
        "out",
        "up 3 x",
        "out -1 x",
        "out 3 Target",
        "out 3 x y",
        "in 1 ✓",
    ] {
        let mut junk = tags.clone();
        junk.insert(TAG_LAST_DECISION.into(), bad.into());
        assert_eq!(ScaleState::from_tags(&junk).last_decision, None, "{bad:?}");
    }
}

#[test]
fn the_last_decision_is_written_as_direction_count_code() {
    let p = policy("");
    let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &ScaleState::default());
    let mut s = ScaleState::default();
    s.record(&d, true, now());
    let tags = s.to_tags();
    assert_eq!(tags[TAG_LAST_DECISION], "out 3 target_tracking");
    assert_eq!(ScaleState::from_tags(&tags).last_decision, s.last_decision);
    // What the tags hold does not differ from the state they were written from.
    assert!(!PersistedState::read(&tags).differs_from(&s));
    assert!(PersistedState::read(&Tags::new()).differs_from(&s));
}

#[test]
fn a_future_last_scale_time_cannot_block_forever() {
    let p = policy("");
    let s = ScaleState {
        last_scale_out: Some(now() + chrono::Duration::days(365)),
        ..Default::default()
    };
    let d = run(&p, &avail(2), &cpu(&IDS[..2], 90.0), &s);
    assert_eq!(d.cooldown_remaining_out, Duration::from_secs(300));
}

#[test]
fn queries_cover_existing_replicas_or_the_master() {
    let cfg = config();
    let spec = cfg.cluster("c1").unwrap();
    let p = policy("warmup: {max_lag: 30s}\n");
    let q = p.queries(
        spec,
        &view(&[("available", None), ("creating", None), ("deleting", None)]),
    );
    let got: Vec<(String, &str, &str)> = q
        .iter()
        .map(|q| {
            (
                q.instance.to_string(),
                q.metric.as_str(),
                q.statistic.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("c1s1".into(), "cpu", "Average"),
            ("c1s1".into(), "replica_lag", "Maximum"),
            ("c1s2".into(), "cpu", "Average"),
            ("c1s2".into(), "replica_lag", "Maximum"),
        ]
    );
    let q = p.queries(spec, &view(&[("creating", None)]));
    assert!(q.iter().any(|q| q.instance.as_str() == "c1m"));
    let (start, end) = p.fetch_window(now());
    assert_eq!(end, t("2026-11-25T11:59:00Z"));
    assert_eq!(start, t("2026-11-25T11:53:00Z"));
}

#[test]
fn recent_lists_keep_their_newest_entries_within_the_tag_limit() {
    for len in 0..40 {
        for first in [-5_000_000_000i64, 0, 1_700_000_000] {
            let v: Vec<(DateTime<Utc>, usize)> = (0..len)
                .map(|i| {
                    let t = DateTime::from_timestamp(first + 60 * i as i64, 0).unwrap();
                    (t, (i * 37) % 1000)
                })
                .collect();
            let state = ScaleState {
                recent_high: v.clone(),
                ..Default::default()
            };
            let tag = &state.to_tags()[TAG_RECENT_HIGH];
            assert!(tag.len() < 256, "{len} entries from {first}");
            // What is kept is the newest entries, in order, and reads back as such.
            let back = ScaleState::from_tags(&state.to_tags()).recent_high;
            assert_eq!(
                back[..],
                v[v.len() - back.len()..],
                "{len} entries from {first}"
            );
            assert!(len == 0 || !back.is_empty());
        }
    }
}

// ---------------------------------------------------------------- the forecast

fn forecast(replicas: Option<usize>, active: bool) -> Forecast {
    Forecast {
        forecaster: "seasonal",
        metric: MetricKind::Cpu,
        active,
        horizon_secs: 1500,
        lead_learned: false,
        daily_correlation: Some(0.9),
        peak_load: replicas.map(|n| n as f64 * 60.0),
        replicas,
        accuracy: None,
        abstain: replicas.is_none().then_some(Abstain::NoHistory {
            have_secs: 0,
            need_secs: 86_400,
        }),
    }
}

#[test]
fn an_active_forecast_raises_the_count_ahead_of_the_rules() {
    let p = policy("predictive:\n  mode: active\n");
    let m = cpu(&IDS[..2], 65.0); // within tolerance of 70: the rules keep 2
    let f = forecast(Some(4), true);
    let d = decide_with_forecast(
        &p,
        &config().clusters["c1"],
        &avail(2),
        &m,
        &ScaleState::default(),
        Some(&f),
        now(),
    );
    assert_eq!((d.current, d.desired, d.primary), (2, 4, "forecast"));
    let r = d.forecast.as_ref().unwrap();
    assert_eq!(
        (r.reactive, r.desired_with, r.desired_without),
        (Some(2), 4, 2)
    );
    assert!(r.raised());
    assert!(d.reasons.iter().any(|r| matches!(
        r,
        Reason::Forecast {
            replicas: 4,
            raised: true,
            active: true,
            ..
        }
    )));
}

#[test]
fn forecast_only_reports_what_it_would_do_and_changes_nothing() {
    let p = policy("predictive:\n  mode: forecast_only\n");
    let m = cpu(&IDS[..2], 65.0);
    let f = forecast(Some(4), false);
    let d = decide_with_forecast(
        &p,
        &config().clusters["c1"],
        &avail(2),
        &m,
        &ScaleState::default(),
        Some(&f),
        now(),
    );
    assert_eq!((d.desired, d.primary), (2, "within_tolerance"));
    let r = d.forecast.as_ref().unwrap();
    assert_eq!((r.desired_with, r.desired_without), (4, 2));
    assert!(d.reasons.iter().any(|r| matches!(
        r,
        Reason::Forecast {
            raised: true,
            active: false,
            ..
        }
    )));
}

#[test]
fn the_forecast_never_scales_in_by_itself_and_holds_back_a_scale_in_to_what_it_needs() {
    let p = policy("predictive:\n  mode: active\nscale_in:\n  stabilization: 0s\n  cooldown: 0s\n  max_step: 3\n");
    let spec = &config().clusters["c1"];
    // The rules keep 4 (CPU at the target); the forecast wants 1: no scale-in.
    let d = decide_with_forecast(
        &p,
        spec,
        &avail(4),
        &cpu(&IDS, 70.0),
        &ScaleState::default(),
        Some(&forecast(Some(1), true)),
        now(),
    );
    assert_eq!(d.desired, 4);
    // The rules want 1 (CPU at 10 %), the forecast 3: the scale-in stops at 3.
    let d = decide_with_forecast(
        &p,
        spec,
        &avail(4),
        &cpu(&IDS, 10.0),
        &ScaleState::default(),
        Some(&forecast(Some(3), true)),
        now(),
    );
    assert_eq!((d.desired, d.direction), (3, Direction::In));
    // An abstaining forecast changes nothing and says why.
    let d = decide_with_forecast(
        &p,
        spec,
        &avail(4),
        &cpu(&IDS, 10.0),
        &ScaleState::default(),
        Some(&forecast(None, true)),
        now(),
    );
    assert_eq!(d.desired, 1);
    assert!(d.reasons.iter().any(|r| matches!(
        r,
        Reason::ForecastAbstains {
            why: Abstain::NoHistory { .. },
            ..
        }
    )));
}

#[test]
fn a_forecast_is_ignored_by_a_policy_without_a_predictive_section() {
    let p = policy("");
    let d = decide_with_forecast(
        &p,
        &config().clusters["c1"],
        &avail(2),
        &cpu(&IDS[..2], 65.0),
        &ScaleState::default(),
        Some(&forecast(Some(4), true)),
        now(),
    );
    assert_eq!(d.desired, 2);
    assert!(d.forecast.is_none());
}

/// `avail(n)` with a pause tag on the master.
fn paused_view(n: usize, key: &str, value: &str) -> ClusterView {
    let mut v = avail(n);
    let m = std::sync::Arc::make_mut(v.master.as_mut().unwrap());
    let mut tags = (*m.tags).clone();
    tags.insert(key.into(), value.into());
    m.tags = std::sync::Arc::new(tags);
    v.pauses = crate::core::pause::Pauses::from_tags(&m.tags);
    v
}

#[test]
fn an_operator_pause_holds_its_direction_until_it_expires() {
    use crate::core::pause::{TAG_PAUSE_IN, TAG_PAUSE_OUT};
    let p = policy("");
    let low = cpu(&IDS[..3], 5.0);
    let v = paused_view(
        3,
        TAG_PAUSE_IN,
        "until=2026-11-25T13:00:00Z by=ops reason=migration",
    );
    let d = run(&p, &v, &low, &ScaleState::default());
    assert_eq!(d.desired, 3);
    assert_eq!(d.primary, "paused");
    assert!(has(
        &d,
        "paused",
        "held: scale-in paused by ops until 2026-11-25T13:00:00Z (migration)"
    ));
    assert!(d.pauses.scale_in.is_some());
    // The other direction is not held.
    let high = cpu(&IDS[..3], 95.0);
    assert!(run(&p, &v, &high, &ScaleState::default()).desired > 3);
    // Expired: the scale-in goes ahead; the pause is still reported as written.
    let old = paused_view(
        3,
        TAG_PAUSE_IN,
        "until=2026-11-25T12:00:00Z by=ops reason=done",
    );
    let d = run(&p, &old, &low, &ScaleState::default());
    assert!(d.desired < 3);
    assert!(d.pauses.scale_in.is_some());
    // A scale-out pause holds even a bounds correction (below the min).
    let p2 = policy("min_replicas: 3\n");
    let v = paused_view(2, TAG_PAUSE_OUT, "until=never by=ops reason=load test");
    let d = run(&p2, &v, &cpu(&IDS[..2], 50.0), &ScaleState::default());
    assert_eq!(d.desired, 2);
    assert!(has(
        &d,
        "paused",
        "scale-out paused by ops until resumed (load test)"
    ));
}

/// The forecast (active, wanting 4 of 4 replicas while the rules keep 2) under each limit a
/// rule's count meets: the decision's desired count, primary reason, and whether the
/// forecast is reported as having raised the count.
fn limited_forecast(policy_extra: &str, state: ScaleState) -> (usize, &'static str, bool) {
    let p = policy(&format!("predictive:\n  mode: active\n{policy_extra}"));
    let d = decide_with_forecast(
        &p,
        &config().clusters["c1"],
        &avail(2),
        &cpu(&IDS[..2], 65.0),
        &state,
        Some(&forecast(Some(4), true)),
        now(),
    );
    (d.desired, d.primary, d.forecast.as_ref().unwrap().raised())
}

#[test]
fn the_forecast_meets_bounds_cooldowns_schedules_and_the_max_step_as_any_rule_does() {
    let none = ScaleState::default;
    // Unlimited: the forecast's 4.
    assert_eq!(limited_forecast("", none()), (4, "forecast", true));
    // The policy's max_replicas caps it, as it caps a rule (still raised: 3, not the rules' 2).
    assert_eq!(
        limited_forecast("max_replicas: 3\n", none()),
        (3, "clamped_max", true)
    );
    // A schedule's max in force caps it too.
    let sched = "schedules:\n  - {name: night, cron: '0 0 * * *', timezone: UTC, duration: 24h, max_replicas: 3}\n";
    assert_eq!(limited_forecast(sched, none()).0, 3);
    // The scale-out max step: one at a time.
    assert_eq!(limited_forecast("scale_out:\n  max_step: 1\n", none()).0, 3);
    // A scale-out two minutes ago: the cooldown holds it, and it is not reported as raised.
    let recent = ScaleState {
        last_scale_out: Some(now() - mins(2)),
        ..ScaleState::default()
    };
    assert_eq!(limited_forecast("", recent), (2, "cooldown", false));
    // The scale-out stabilization window holds it as it would hold a rule.
    let low = ScaleState {
        recent_low: vec![(now() - mins(1), 2)],
        ..ScaleState::default()
    };
    let (desired, primary, _) = limited_forecast("scale_out:\n  stabilization: 5m\n", low);
    assert_eq!((desired, primary), (2, "stabilization"));
}
