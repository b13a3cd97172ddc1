//! Property tests of the decision core: bounds are never crossed, missing data never scales
//! in, cooldowns are never violated (also over simulated runs feeding decisions back through
//! `ScaleState::record`), and the same inputs always give the same decision.

mod support;

use chrono::{DateTime, Duration, Utc};
use elasticrds::core::config::Config;
use elasticrds::core::decide::{decide, Direction, ScaleState};
use elasticrds::core::domain::{
    InstanceId, InstanceStatus, MetricKind, MetricQuery, MetricSeries, Sample, Statistic,
};
use elasticrds::core::plan::ClusterView;
use elasticrds::core::policy::Policy;
use proptest::prelude::*;
use support::instance;

const N: usize = 6;

fn config() -> Config {
    let mut y = String::from(
        "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n",
    );
    for i in 1..=N {
        y.push_str(&format!(
            "    - {{id: c1s{i}, instance_class: db.t3.micro}}\n"
        ));
    }
    Config::parse("c.yaml", &y).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:30Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn view_with(statuses: &[Option<InstanceStatus>]) -> ClusterView {
    ClusterView {
        master: Some(instance("c1m").build().into()),
        replicas: (0..N)
            .map(|i| {
                statuses
                    .get(i)
                    .cloned()
                    .flatten()
                    .map(|s| instance(&format!("c1s{}", i + 1)).status(s).build().into())
            })
            .collect(),
        conflicts: Vec::new(),
        foreign: vec![],
        parked: Vec::new(),
        replacing: Vec::new(),
        ..ClusterView::default()
    }
}

fn available(n: usize) -> ClusterView {
    view_with(&vec![Some(InstanceStatus::Available); n])
}

/// One cpu sample per serving instance (the master when no replica is available) ending at
/// the newest final period for `now`; `None` values leave that instance without data.
fn cpu_for(
    policy: &Policy,
    view: &ClusterView,
    values: &[Option<f64>],
    now: DateTime<Utc>,
) -> Vec<MetricSeries> {
    let (_, end) = policy.fetch_window(now);
    let spec_cfg = config();
    let spec = spec_cfg.cluster("c1").unwrap();
    policy
        .queries(spec, view)
        .into_iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let v = values.get(i % values.len().max(1)).copied().flatten()?;
            Some(MetricSeries {
                samples: vec![Sample {
                    at: end - Duration::seconds(i64::from(q.period_secs)),
                    value: v,
                }],
                query: MetricQuery { ..q },
            })
        })
        .collect()
}

fn policy(min: usize, max: usize, extra: &str) -> Policy {
    Policy::parse(
        "p.yaml",
        &format!("cluster: c1\nmin_replicas: {min}\nmax_replicas: {max}\n{extra}"),
        &config(),
    )
    .unwrap()
}

fn state_strategy() -> impl Strategy<Value = ScaleState> {
    (
        proptest::option::of(0i64..3600),
        proptest::option::of(0i64..3600),
        proptest::collection::vec((0i64..1200, 0usize..=N), 0..4),
    )
        .prop_map(|(out, inn, hist)| {
            let now = t0();
            let mut s = ScaleState {
                last_scale_out: out.map(|s| now - Duration::seconds(s)),
                last_scale_in: inn.map(|s| now - Duration::seconds(s)),
                ..Default::default()
            };
            let mut hist = hist;
            hist.sort_by_key(|h| std::cmp::Reverse(h.0));
            for (ago, v) in hist {
                let at = now - Duration::seconds(ago);
                while s.recent_high.last().is_some_and(|(_, x)| *x <= v) {
                    s.recent_high.pop();
                }
                s.recent_high.push((at, v));
                while s.recent_low.last().is_some_and(|(_, x)| *x >= v) {
                    s.recent_low.pop();
                }
                s.recent_low.push((at, v));
            }
            s
        })
}

fn status_strategy() -> impl Strategy<Value = Option<InstanceStatus>> {
    prop_oneof![
        6 => Just(Some(InstanceStatus::Available)),
        1 => Just(Some(InstanceStatus::Creating)),
        1 => Just(Some(InstanceStatus::Deleting)),
        1 => Just(Some(InstanceStatus::Modifying)),
        2 => Just(None),
    ]
}

const EXTRAS: [&str; 4] = [
    "",
    "missing_data: {scale_out: act}\n",
    "rules:\n  - {metric: cpu, target: 50}\n  - {metric: cpu, statistic: Maximum, aggregation: max, above: 90, add: 2, below: 10}\n",
    "scale_out: {max_step: 3, stabilization: 2m}\nscale_in: {max_step: 2, stabilization: 0s}\n",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn bounds_are_never_crossed(
        min in 0usize..=3, span in 0usize..=3,
        statuses in proptest::collection::vec(status_strategy(), N),
        values in proptest::collection::vec(proptest::option::of(0.0f64..400.0), 1..8),
        state in state_strategy(), extra in 0usize..EXTRAS.len(),
    ) {
        let max = (min + span).min(N);
        let p = policy(min, max, EXTRAS[extra]);
        let cfg = config();
        let spec = cfg.cluster("c1").unwrap();
        let view = view_with(&statuses);
        let m = cpu_for(&p, &view, &values, t0());
        let d = decide(&p, spec, &view, &m, &state, t0());
        let cur = view.replica_count();
        prop_assert_eq!(d.current, cur);
        prop_assert_eq!(d.target.replicas, d.desired);
        if (min..=max).contains(&cur) {
            prop_assert!((min..=max).contains(&d.desired), "{} not in [{min},{max}]: {:?}", d.desired, d.reasons);
        } else if cur < min {
            // Raised to the min (further, up to the max, when the load needs more and a
            // scale-out is allowed), or held where it is (paused, master not available).
            prop_assert!(d.desired >= cur && d.desired <= max, "{} vs [{min},{max}]: {:?}", d.desired, d.reasons);
            prop_assert!(d.desired == cur || d.desired >= min, "{} below min {min}: {:?}", d.desired, d.reasons);
        } else {
            prop_assert!(d.desired <= cur && d.desired >= max);
        }
    }

    #[test]
    fn missing_data_never_scales_in(
        n in 1usize..=N, missing in 0usize..N,
        values in proptest::collection::vec(0.0f64..400.0, 1..8),
        state in state_strategy(), extra in 0usize..EXTRAS.len(),
    ) {
        let p = policy(0, N, EXTRAS[extra]);
        let cfg = config();
        let spec = cfg.cluster("c1").unwrap();
        let view = available(n);
        let mut m = cpu_for(&p, &view, &values.iter().map(|v| Some(*v)).collect::<Vec<_>>(), t0());
        let gone = InstanceId::parse(&format!("c1s{}", missing % n + 1)).unwrap();
        m.retain(|s| s.query.instance != gone);
        let d = decide(&p, spec, &view, &m, &state, t0());
        prop_assert_ne!(d.direction, Direction::In, "{:?}", d.reasons);
        prop_assert!(d.recommendation.is_none());
    }

    #[test]
    fn cooldowns_are_never_violated(
        n in 0usize..=N,
        values in proptest::collection::vec(proptest::option::of(0.0f64..400.0), 1..8),
        state in state_strategy(), extra in 0usize..EXTRAS.len(),
    ) {
        let p = policy(0, N, EXTRAS[extra]);
        let cfg = config();
        let spec = cfg.cluster("c1").unwrap();
        let view = available(n);
        let m = cpu_for(&p, &view, &values, t0());
        let d = decide(&p, spec, &view, &m, &state, t0());
        let now = t0();
        match d.direction {
            Direction::Out => {
                if let Some(last) = state.last_scale_out {
                    prop_assert!((now - last).num_seconds() >= p.scale_out.cooldown_secs as i64);
                }
            }
            Direction::In => {
                if let Some(last) = state.last_scale_out.max(state.last_scale_in) {
                    prop_assert!((now - last).num_seconds() >= p.scale_in.cooldown_secs as i64);
                }
            }
            Direction::None => {}
        }
    }

    #[test]
    fn same_inputs_same_decision(
        statuses in proptest::collection::vec(status_strategy(), N),
        values in proptest::collection::vec(proptest::option::of(0.0f64..400.0), 1..8),
        state in state_strategy(), extra in 0usize..EXTRAS.len(),
    ) {
        let p = policy(1, N, EXTRAS[extra]);
        let cfg = config();
        let spec = cfg.cluster("c1").unwrap();
        let view = view_with(&statuses);
        let m = cpu_for(&p, &view, &values, t0());
        let a = decide(&p, spec, &view, &m, &state, t0());
        let b = decide(&p.clone(), spec, &view.clone(), &m.clone(), &state.clone(), t0());
        prop_assert_eq!(a, b);
    }

    /// A run of minutes: demand moves at random, the fleet follows every decision at once, the
    /// state is fed back; consecutive scale actions respect the cooldowns, and state survives
    /// a round trip through tags at every step (as a restart would).
    #[test]
    fn simulated_runs_respect_cooldowns(
        demand in proptest::collection::vec(0.0f64..500.0, 30..120),
        extra in 0usize..EXTRAS.len(),
    ) {
        let p = policy(1, N, EXTRAS[extra]);
        let cfg = config();
        let spec = cfg.cluster("c1").unwrap();
        let mut current = 1usize;
        let mut state = ScaleState::default();
        let mut outs: Vec<DateTime<Utc>> = vec![];
        let mut last_any: Option<DateTime<Utc>> = None;
        for (i, load) in demand.iter().enumerate() {
            let now = t0() + Duration::minutes(i as i64);
            let view = available(current);
            let per = load / current.max(1) as f64;
            let m = cpu_for(&p, &view, &[Some(per)], now);
            let d = decide(&p, spec, &view, &m, &state, now);
            match d.direction {
                Direction::Out => {
                    if let Some(prev) = outs.last() {
                        prop_assert!((now - *prev).num_seconds() >= p.scale_out.cooldown_secs as i64);
                    }
                    prop_assert!(d.desired - current <= p.scale_out.max_step);
                    outs.push(now);
                    last_any = Some(now);
                }
                Direction::In => {
                    if let Some(prev) = last_any {
                        prop_assert!((now - prev).num_seconds() >= p.scale_in.cooldown_secs as i64);
                    }
                    prop_assert!(current - d.desired <= p.scale_in.max_step);
                    last_any = Some(now);
                }
                Direction::None => {}
            }
            state.record(&d, d.direction != Direction::None, now);
            state = ScaleState::from_tags(&state.to_tags());
            current = d.desired;
        }
    }
}

#[test]
fn metric_kinds_used_by_the_props_are_fetched() {
    // Guards the helper above: the default policy reads cpu Average only.
    let p = policy(0, N, "");
    assert_eq!(
        p.metrics_used().collect::<Vec<_>>(),
        vec![(MetricKind::Cpu, Statistic::Average)]
    );
}
