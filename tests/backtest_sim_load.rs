//! The simulated fleet's load model, read through the MetricsSource port exactly as the
//! decision core reads CloudWatch: CPU and connections split over serving replicas, the
//! master as the fallback, lag above 90 % CPU, gaps as missing samples, creating replicas
//! silent, period aggregation, determinism.

use chrono::{DateTime, Duration as CDuration, TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::adapters::sim_load::{Demand, LoadOptions, SimLoad};
use elasticrds::backtest::replay::{seed_fleet, synthetic_spec};
use elasticrds::core::config::ClusterSpec;
use elasticrds::core::domain::{InstanceId, MetricKind, MetricQuery, MetricSeries, Statistic};
use elasticrds::ports::{Clock, Fleet, ManualClock, MetricsSource};
use std::sync::Arc;
use std::time::Duration;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap()
}

struct World {
    clock: Arc<ManualClock>,
    fleet: Arc<SimFleet>,
    load: SimLoad,
    spec: ClusterSpec,
}

fn world(units: Vec<Option<f64>>, replicas: usize, running: usize) -> World {
    let clock = Arc::new(ManualClock::new(t0()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let fleet = Arc::new(SimFleet::new(
        dyn_clock.clone(),
        SimOptions {
            create_lead: Duration::from_secs(12 * 60),
            ..Default::default()
        },
    ));
    let spec = synthetic_spec("c1", replicas);
    seed_fleet(&fleet, &spec, running, t0() - CDuration::days(1));
    let load = SimLoad::new(
        fleet.clone(),
        dyn_clock,
        &spec,
        Arc::new(Demand::new(t0(), units)),
        LoadOptions::default(),
    )
    .unwrap();
    World {
        clock,
        fleet,
        load,
        spec,
    }
}

fn q(id: &InstanceId, metric: MetricKind, statistic: Statistic, period: u32) -> MetricQuery {
    MetricQuery {
        instance: id.clone(),
        metric,
        statistic,
        period_secs: period,
    }
}

fn min(m: i64) -> DateTime<Utc> {
    t0() + CDuration::minutes(m)
}

async fn fetch(w: &World, qs: &[MetricQuery], from: i64, to: i64) -> Vec<MetricSeries> {
    w.load.fetch(qs, min(from), min(to)).await.unwrap()
}

fn values(s: &MetricSeries) -> Vec<f64> {
    s.samples
        .iter()
        .map(|x| (x.value * 1000.0).round() / 1000.0)
        .collect()
}

#[tokio::test]
async fn cpu_and_connections_split_over_serving_replicas() {
    let w = world(vec![Some(1.2); 60], 3, 2);
    w.clock.set(min(10));
    let r = &w.spec.replicas;
    let qs = [
        q(&r[0].id, MetricKind::Cpu, Statistic::Average, 60),
        q(&r[1].id, MetricKind::Connections, Statistic::Average, 60),
        q(&r[2].id, MetricKind::Cpu, Statistic::Average, 60),
    ];
    let s = fetch(&w, &qs, 0, 10).await;
    assert_eq!(values(&s[0]), vec![60.0; 10]);
    assert_eq!(
        values(&s[1]),
        vec![60.0; 10],
        "100 connections per unit, split in two"
    );
    assert!(s[2].samples.is_empty(), "an absent replica reports nothing");
    assert_eq!(s[0].samples[3].at, min(3));
}

#[tokio::test]
async fn a_new_replica_serves_after_its_lead_time_and_only_then_reports() {
    let w = world(vec![Some(1.2); 60], 3, 2);
    w.clock.set(min(10));
    let r = &w.spec.replicas;
    w.fleet
        .create_replica(&elasticrds::ports::ReplicaRequest {
            id: &r[2].id,
            source: &w.spec.master.id,
            class: &r[2].class,
            zone: None,
            settings: &Default::default(),
            tags: &Default::default(),
        })
        .await
        .unwrap();
    w.clock.set(min(30));
    let qs = [
        q(&r[0].id, MetricKind::Cpu, Statistic::Average, 60),
        q(&r[2].id, MetricKind::Cpu, Statistic::Average, 60),
    ];
    let s = fetch(&w, &qs, 20, 30).await;
    assert_eq!(
        values(&s[0]),
        vec![60.0, 60.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0, 40.0]
    );
    assert_eq!(values(&s[1]), vec![40.0; 8]);
    assert_eq!(s[1].samples[0].at, min(22));
    let st = w.load.minute(t0().timestamp() / 60 + 15).unwrap();
    assert_eq!(
        (st.replicas, st.serving),
        (3, 2),
        "creating replicas are paid, not serving"
    );
}

#[tokio::test]
async fn the_master_serves_when_no_replica_is_available() {
    let w = world(vec![Some(0.7); 30], 2, 1);
    w.clock.set(min(5));
    let r = &w.spec.replicas;
    w.fleet.delete_replica(&r[0].id).await.unwrap();
    w.clock.set(min(10));
    let qs = [
        q(&w.spec.master.id, MetricKind::Cpu, Statistic::Average, 60),
        q(&r[0].id, MetricKind::Cpu, Statistic::Average, 60),
    ];
    let s = fetch(&w, &qs, 0, 10).await;
    // Minutes 0-4 were recorded while the replica served (the fetch catches up lazily from the
    // fleet as it is now, so the whole window reflects the deletion); the master took the reads.
    assert_eq!(values(&s[0]), vec![70.0; 10]);
    assert!(s[1].samples.is_empty());
    let st = w.load.minute(t0().timestamp() / 60 + 9).unwrap();
    assert!(st.served.unwrap().master_serves);
    assert_eq!(st.replicas, 0);
}

#[tokio::test]
async fn overload_is_capped_unserved_and_grows_replica_lag() {
    // 2 replicas at 100 % of capacity for 5 minutes, then 1.2 units (60 %).
    let mut units = vec![Some(2.0); 5];
    units.extend(vec![Some(1.2); 5]);
    let w = world(units, 2, 2);
    w.clock.set(min(10));
    let r = &w.spec.replicas;
    let qs = [
        q(&r[0].id, MetricKind::ReplicaLag, Statistic::Maximum, 60),
        q(&r[1].id, MetricKind::Cpu, Statistic::Maximum, 60),
    ];
    let s = fetch(&w, &qs, 0, 10).await;
    assert_eq!(
        values(&s[0]),
        vec![60.0, 120.0, 180.0, 240.0, 300.0, 120.0, 0.0, 0.0, 0.0, 0.0],
        "+60 s per minute at 100 %, drains 180 s per minute at 60 %"
    );
    assert_eq!(values(&s[1])[..5], [100.0; 5]);
    let st = w.load.minute(t0().timestamp() / 60).unwrap();
    assert!(st.served.unwrap().breach);
    let st = w.load.minute(t0().timestamp() / 60 + 7).unwrap();
    assert!(!st.served.unwrap().breach);
}

#[tokio::test]
async fn gaps_are_missing_samples_never_zeros_and_periods_aggregate() {
    let mut units: Vec<Option<f64>> = (0..10).map(|i| Some(0.2 * i as f64)).collect();
    units[3] = None;
    units[4] = None;
    let w = world(units, 1, 1);
    w.clock.set(min(10));
    let id = &w.spec.replicas[0].id;
    let qs = [
        q(id, MetricKind::Cpu, Statistic::Average, 60),
        q(id, MetricKind::Cpu, Statistic::Average, 300),
        q(id, MetricKind::Cpu, Statistic::Maximum, 300),
    ];
    let s = fetch(&w, &qs, 0, 10).await;
    let at: Vec<i64> = s[0]
        .samples
        .iter()
        .map(|x| (x.at - t0()).num_minutes())
        .collect();
    assert_eq!(at, vec![0, 1, 2, 5, 6, 7, 8, 9]);
    assert_eq!(
        values(&s[0])[..3],
        [0.0, 20.0, 40.0],
        "a real zero load is a zero"
    );
    // 5-minute periods: minutes 0-2 present in the first, 5-9 in the second (100 % cap).
    assert_eq!(values(&s[1]), vec![20.0, 100.0]);
    assert_eq!(values(&s[2]), vec![40.0, 100.0]);
}

#[tokio::test]
async fn the_minute_in_progress_is_never_reported_and_replays_are_identical() {
    let units: Vec<Option<f64>> = (0..30).map(|i| Some(0.05 * i as f64)).collect();
    let a = world(units.clone(), 3, 2);
    let b = world(units, 3, 2);
    let qs: Vec<MetricQuery> = a
        .spec
        .replicas
        .iter()
        .flat_map(|r| {
            MetricKind::ALL
                .into_iter()
                .map(|m| q(&r.id, m, Statistic::Average, 60))
        })
        .collect();
    for w in [&a, &b] {
        w.clock.set(min(20) + CDuration::seconds(30));
    }
    let sa = fetch(&a, &qs, 0, 30).await;
    let sb = fetch(&b, &qs, 0, 30).await;
    assert_eq!(sa, sb);
    assert_eq!(sa[0].samples.last().unwrap().at, min(19));
}

/// The load history the forecast reads: per 5-minute bucket, the replicas' summed CPU (each
/// capped at 100 %, as CloudWatch shows it) or summed connections (not capped: they follow the
/// demand), equal to the sum of the replicas' own 5-minute averages; replica lag is refused.
#[tokio::test]
async fn the_history_sums_cpu_or_connections_over_the_replicas_per_five_minutes() {
    use elasticrds::ports::HistoryQuery;
    // 1.2 units for 10 minutes, then 2.4 (more than the two serving replicas hold).
    let mut units = vec![Some(1.2); 10];
    units.extend(vec![Some(2.4); 10]);
    let w = world(units, 3, 2);
    w.clock.set(min(20));
    let ids: Vec<InstanceId> = w.spec.replicas.iter().map(|r| r.id.clone()).collect();
    let query = |metric| HistoryQuery {
        cluster: "c1".into(),
        instances: ids.clone(),
        metric,
        statistic: Statistic::Average,
        step_secs: 300,
        start: min(0),
        end: min(20),
    };
    let cpu = w.load.load_history(&[query(MetricKind::Cpu)]).await;
    let conns = w.load.load_history(&[query(MetricKind::Connections)]).await;
    let (cpu, conns) = (cpu.unwrap().remove(0), conns.unwrap().remove(0));
    let round = |v: &[Option<f64>]| -> Vec<f64> {
        v.iter()
            .map(|x| (x.unwrap() * 1000.0).round() / 1000.0)
            .collect()
    };
    assert_eq!(round(&cpu.values), [120.0, 120.0, 200.0, 200.0]);
    assert_eq!(round(&conns.values), [120.0, 120.0, 240.0, 240.0]);
    // The same as summing each replica's own 5-minute averages.
    for (metric, h) in [(MetricKind::Cpu, &cpu), (MetricKind::Connections, &conns)] {
        let qs: Vec<MetricQuery> = (ids.iter())
            .map(|id| q(id, metric, Statistic::Average, 300))
            .collect();
        let each = fetch(&w, &qs, 0, 20).await;
        let summed: Vec<f64> = (0..4)
            .map(|b| {
                each.iter()
                    .filter_map(|s| s.samples.get(b))
                    .map(|x| x.value)
                    .sum()
            })
            .collect();
        let summed: Vec<f64> = summed
            .iter()
            .map(|x| (x * 1000.0).round() / 1000.0)
            .collect();
        assert_eq!(round(&h.values), summed, "{metric:?}");
    }
    let lag = w.load.load_history(&[query(MetricKind::ReplicaLag)]).await;
    let e = lag.unwrap_err();
    assert!(e.to_string().contains("CPU and connections history"), "{e}");
}
