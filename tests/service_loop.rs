//! The control loop in process, on tokio's paused time: the simulated fleet (SimFleet) and a
//! fake metrics source, with the daemon's clock following tokio time. Checks scale-out by at
//! most the policy's step, cooldowns (also across a restart, from the master's tags), per-
//! cluster isolation and capped exponential backoff, ticks that never overlap, and a stop that
//! lets the call in flight finish; the measured replica lead time written on the master.

mod support;

use chrono::{DateTime, TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::Config;
use elasticrds::core::decide::TAG_LAST_SCALE_OUT;
use elasticrds::core::domain::{InstanceId, Tags};
use elasticrds::core::policy::Policy;
use elasticrds::ports::{Clock, ErrorKind, Fleet, PortError};
use elasticrds::service::daemon::{ClusterEntry, ClusterResult, Daemon, DaemonOptions, TokioClock};
use elasticrds::service::metrics::Metrics;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{run_for, FakeMetrics, HookedFleet, Op};

const MIN: Duration = Duration::from_secs(60);

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

fn config() -> Config {
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
    Config::parse("test.yaml", &y).expect("config")
}

/// cpu target 60 %, scale-out step 1 with a 5 min cooldown, scale-in after a 10 min cooldown.
fn policy(cluster: &str, config: &Config) -> Policy {
    policy_with_target(cluster, config, 60)
}

fn policy_with_target(cluster: &str, config: &Config, target: u32) -> Policy {
    let y = policy_yaml(cluster, target);
    Policy::parse(&format!("{cluster}.yaml"), &y, config).expect("policy")
}

fn policy_yaml(cluster: &str, target: u32) -> String {
    format!(
        "cluster: {cluster}\nmin_replicas: 1\nmax_replicas: 4\nperiod: 60s\nrules:\n  - metric: cpu\n    target: {target}\nscale_out:\n  cooldown: 5m\n  max_step: 1\n  stabilization: 0s\nscale_in:\n  cooldown: 10m\n  max_step: 1\n  stabilization: 0s\nwarmup:\n  duration: 0s\n"
    )
}

/// The simulated fleet, failing `create_replica` for ids starting with `prefix` (throttled)
/// `failures` times. Each failed attempt reads the replica's tags first, so that it is in the
/// sim's call log like an attempt on AWS.
fn flaky(sim: &Arc<SimFleet>, prefix: &'static str, failures: usize) -> Arc<HookedFleet> {
    let left = Arc::new(Mutex::new(failures));
    let log = sim.clone();
    Arc::new(
        HookedFleet::new(sim.clone()).before(Op::CreateReplica, move |call| {
            let (left, log) = (left.clone(), log.clone());
            async move {
                let id = call.id();
                {
                    let mut left = left.lock().unwrap();
                    if *left == 0 || !id.as_str().starts_with(prefix) {
                        return Ok(());
                    }
                    *left -= 1;
                }
                let _ = log.read_tags(id).await;
                Err(PortError::new(
                    ErrorKind::Throttled,
                    "CreateDBInstanceReadReplica",
                    "Rate exceeded",
                ))
            }
        }),
    )
}

struct Rig {
    clock: Arc<TokioClock>,
    sim: Arc<SimFleet>,
    load: Arc<FakeMetrics>,
    config: Config,
}

impl Rig {
    /// Masters available; `replicas` of each cluster available; a foreign replica on ca.
    fn new(replicas: usize) -> Rig {
        let clock = Arc::new(TokioClock::new(base()));
        let sim = Arc::new(SimFleet::new(
            clock.clone(),
            SimOptions {
                create_lead: Duration::from_secs(120),
                ..SimOptions::default()
            },
        ));
        for c in ["ca", "cb"] {
            sim.insert(sim.available_instance(&format!("{c}-m01"), "db.t3.micro"));
            for i in 1..=replicas {
                let mut r = sim.available_instance(&format!("{c}-s0{i}"), "db.t3.micro");
                r.source = Some(InstanceId::from_aws(&format!("{c}-m01")));
                sim.insert(r);
            }
        }
        let mut f = sim.available_instance("ca-x01", "db.t3.micro");
        f.source = Some(InstanceId::from_aws("ca-m01"));
        sim.insert(f);
        Rig {
            clock,
            sim,
            load: Arc::new(FakeMetrics::constant(30.0, 1.0, 1.0)),
            config: config(),
        }
    }

    fn daemon(&self, metrics: &Metrics) -> Daemon {
        self.daemon_on(self.sim.clone(), metrics)
    }

    fn daemon_on(&self, fleet: Arc<dyn Fleet>, metrics: &Metrics) -> Daemon {
        let entries = self
            .config
            .clusters
            .values()
            .map(|s| ClusterEntry::new(s.clone(), policy(&s.name, &self.config)))
            .collect();
        Daemon::new(
            fleet,
            self.load.clone(),
            elasticrds::ports::Routers::default(),
            self.clock.clone(),
            entries,
            metrics.clone(),
            DaemonOptions {
                interval: MIN,
                max_backoff: Duration::from_secs(600),
                ..DaemonOptions::default()
            },
        )
    }

    /// Minutes since the start at which `op` was called for ids starting with `prefix`.
    fn call_minutes(&self, op: &str, prefix: &str) -> Vec<i64> {
        self.sim
            .calls()
            .iter()
            .filter(|c| c.operation == op)
            .filter(|c| c.id.as_ref().is_none_or(|i| i.as_str().starts_with(prefix)))
            .map(|c| (c.at - base()).num_seconds() / 60)
            .collect()
    }

    fn existing(&self, prefix: &str) -> Vec<String> {
        self.sim
            .instances()
            .iter()
            .map(|i| i.id.to_string())
            .filter(|i| i.starts_with(prefix) && !i.contains("-m"))
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn scales_out_one_step_per_cooldown_and_in_only_after_the_cooldown() {
    let rig = Rig::new(1);
    rig.load.set_cpu("ca", 95.0);
    let metrics = Metrics::new();
    let d = rig.daemon(&metrics);
    // 0..29 min of high CPU on ca: steps of 1, at least 5 minutes apart, up to max 4.
    let d = run_for(d, Duration::from_secs(29 * 60 + 30)).await;
    let creates = rig.call_minutes("create_replica", "ca-");
    assert_eq!(creates.len(), 3, "creates at {creates:?}");
    assert_eq!(creates[0], 0, "first scale-out at once: {creates:?}");
    for w in creates.windows(2) {
        assert!(
            w[1] - w[0] >= 5,
            "scale-outs closer than the cooldown: {creates:?}"
        );
    }
    assert_eq!(rig.existing("ca-s").len(), 4);
    assert!(
        rig.call_minutes("create_replica", "cb-").is_empty(),
        "cb idle"
    );
    // The foreign replica and both masters were never acted on.
    for c in rig.sim.calls() {
        if let Some(id) = &c.id {
            assert!(!id.as_str().contains("-x"), "foreign touched: {c:?}");
            if c.operation != "write_tags" {
                assert!(!id.as_str().contains("-m"), "master acted on: {c:?}");
            }
        }
    }
    let last_out = *creates.last().unwrap();

    // Low CPU: scale-in waits out the in-cooldown (10 min after the last scale).
    rig.load.set_cpu("ca", 5.0);
    let text = metrics.render();
    assert!(
        text.contains("elasticrds_desired_replicas{cluster=\"ca\"} 4"),
        "{text}"
    );
    let _d = run_for(d, Duration::from_secs(25 * 60)).await;
    let deletes = rig.call_minutes("delete_replica", "ca-");
    assert!(!deletes.is_empty(), "no scale-in at all");
    assert!(
        deletes[0] - last_out >= 10,
        "scale-in {deletes:?} within the cooldown after {last_out}"
    );
    for w in deletes.windows(2) {
        assert!(
            w[1] - w[0] >= 10,
            "scale-ins closer than the cooldown: {deletes:?}"
        );
    }
    let text = metrics.render();
    assert!(
        text.contains(
            "elasticrds_actions_total{action=\"create_replica\",cluster=\"ca\",result=\"ok\"} 3"
        ),
        "{text}"
    );
    assert!(text.contains("elasticrds_decisions_total{cluster=\"ca\",direction=\"in\""));
    assert!(text.contains("elasticrds_cpu_utilization_ratio{cluster=\"ca\"} 0.05"));
    assert!(text.contains("elasticrds_cpu_target_ratio{cluster=\"ca\"} 0.6"));
    // Metrics without a rule: observed and exported, with no made-up target.
    assert!(
        text.contains("elasticrds_connections{cluster=\"ca\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("elasticrds_replica_lag_seconds{cluster=\"ca\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("elasticrds_connections_target{"), "{text}");
    assert!(
        !text.contains("elasticrds_replica_lag_target_seconds{"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_daemon_honours_the_cooldown_from_the_master_tags() {
    let rig = Rig::new(1);
    rig.load.set_cpu("ca", 95.0);
    let metrics = Metrics::new();
    let mut d = rig.daemon(&metrics);
    let first = d.tick().await;
    assert!(first.ok());
    assert_eq!(rig.call_minutes("create_replica", "ca-"), vec![0]);
    let master_tags = rig
        .sim
        .instances()
        .into_iter()
        .find(|i| i.id.as_str() == "ca-m01")
        .unwrap()
        .tags;
    assert!(
        master_tags
            .get(TAG_LAST_SCALE_OUT)
            .is_some_and(|v| !v.is_empty()),
        "state written on the master: {master_tags:?}"
    );
    drop(d);

    // A new process two minutes later: fresh memory, same fleet.
    tokio::time::sleep(2 * MIN).await;
    let metrics2 = Metrics::new();
    let d2 = rig.daemon(&metrics2);
    let _d2 = run_for(d2, Duration::from_secs(4 * 60 + 30)).await;
    let creates = rig.call_minutes("create_replica", "ca-");
    assert_eq!(creates[0], 0);
    // The next scale-out waits for the cooldown started by the first process (minute 5).
    assert_eq!(
        creates,
        vec![0, 5],
        "scale-outs after a restart: {creates:?}"
    );
    let text = metrics2.render();
    assert!(
        text.contains(
            "elasticrds_decisions_total{cluster=\"ca\",direction=\"none\",reason=\"cooldown\"}"
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn one_cluster_failing_backs_off_exponentially_while_the_other_proceeds() {
    let rig = Rig::new(1);
    rig.load.set_cpu("ca", 95.0);
    rig.load.set_cpu("cb", 95.0);
    let metrics = Metrics::new();
    // ca's creates fail (throttled) 4 times in a row; cb is not affected.
    let mut d = rig.daemon_on(flaky(&rig.sim, "ca-", 4), &metrics);
    let t = d.tick().await;
    assert!(!t.ok());
    // cb created its replica in the same tick.
    assert_eq!(rig.call_minutes("create_replica", "cb-"), vec![0]);
    assert_eq!(rig.existing("cb-s").len(), 2);
    assert!(matches!(
        t.clusters.iter().find(|(c, _)| c == "ca").unwrap().1,
        ClusterResult::ActionFailed(..)
    ));
    let _d = run_for(d, Duration::from_secs(20 * 60)).await;
    // ca's create attempts: t=0 fails; backoff 1, 2, 4 minutes between failed retries, then ok.
    let mut ca = rig.call_minutes("read_tags", "ca-s");
    ca.extend(rig.call_minutes("create_replica", "ca-"));
    assert_eq!(&ca[..5], &[0, 1, 3, 7, 15], "attempts {ca:?}");
    let text = metrics.render();
    for line in [
        "elasticrds_cluster_errors_total{cluster=\"ca\",kind=\"throttled\"} 4",
        "elasticrds_retries_total{cluster=\"ca\"} 4",
        "elasticrds_retries_total{cluster=\"cb\"} 0",
        "elasticrds_backoff_seconds{cluster=\"ca\"} 0",
        "elasticrds_aws_errors_total{kind=\"throttled\",operation=\"CreateDBInstanceReadReplica\",service=\"rds\"} 4",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_describe_backs_off_and_the_loop_keeps_ticking() {
    let rig = Rig::new(1);
    let metrics = Metrics::new();
    let d = rig.daemon(&metrics);
    for _ in 0..2 {
        rig.sim.fail_next(
            "describe",
            PortError::new(ErrorKind::Transient, "DescribeDBInstances", "HTTP 503"),
        );
    }
    let _d = run_for(d, Duration::from_secs(10 * 60 + 30)).await;
    // describes at 0 (fail), 1 (fail, backoff now 2 min), 3 (ok), then every minute.
    let mut describes = rig.call_minutes("describe", "");
    describes.dedup();
    assert_eq!(&describes[..4], &[0, 1, 3, 4], "{describes:?}");
    let text = metrics.render();
    // Errors at 0 and 1, and the tick at 2, when the cluster is backing off: not ok either.
    assert!(
        text.contains("elasticrds_ticks_total{result=\"error\"} 3"),
        "{text}"
    );
    assert!(text.contains("elasticrds_cluster_errors_total{cluster=\"cb\",kind=\"transient\"} 2"));
    assert!(text
        .contains("elasticrds_aws_calls_total{operation=\"DescribeDBInstances\",service=\"rds\"}"));
}

#[tokio::test(start_paused = true)]
async fn ticks_never_overlap_even_when_slower_than_the_interval() {
    let rig = Rig::new(1);
    rig.load.set_delay(Duration::from_secs(150));
    let metrics = Metrics::new();
    let d = rig.daemon(&metrics);
    let _d = run_for(d, Duration::from_secs(20 * 60)).await;
    let calls = rig.load.calls();
    assert!(calls.len() >= 6, "{calls:?}");
    for w in calls.windows(2) {
        assert!(w[1].began >= w[0].ended, "fetches overlap: {calls:?}");
    }
    // One fetch per tick for both clusters together: 2 replicas × 3 metrics (the policy's CPU,
    // and connections and replica lag, observed for export although no rule reads them).
    assert!(calls.iter().all(|c| c.queries == 6), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn stop_lets_the_call_in_flight_finish_then_acts_no_more() {
    let rig = Rig::new(1);
    rig.load.set_cpu("ca", 95.0);
    rig.load.set_delay(Duration::from_secs(30));
    let metrics = Metrics::new();
    let mut d = rig.daemon(&metrics);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(async move {
        d.run(rx).await;
        d
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    tx.send(true).unwrap();
    let started = tokio::time::Instant::now();
    let _d = h.await.unwrap();
    // The fetch in flight completed (20 s more), then nothing was created.
    assert!(
        started.elapsed() >= Duration::from_secs(19),
        "{:?}",
        started.elapsed()
    );
    let calls = rig.load.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].ended, Duration::from_secs(30));
    assert!(rig.call_minutes("create_replica", "").is_empty());
    assert_eq!(
        rig.clock.now().signed_duration_since(base()).num_seconds(),
        30
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_the_describe_makes_no_further_aws_call() {
    let rig = Rig::new(1);
    rig.load.set_cpu("ca", 95.0);
    let metrics = Metrics::new();
    let fleet =
        Arc::new(HookedFleet::new(rig.sim.clone()).delay(Op::Describe, Duration::from_secs(30)));
    let mut d = rig.daemon_on(fleet, &metrics);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let h = tokio::spawn(async move {
        d.run(rx).await;
        d
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    tx.send(true).unwrap();
    let _d = h.await.unwrap();
    // The describe in flight completed; no fetch, no action, no tag write followed.
    let describes = rig
        .sim
        .calls()
        .iter()
        .filter(|c| c.operation == "describe")
        .count();
    assert!(describes >= 1, "{:?}", rig.sim.calls());
    assert!(rig.load.calls().is_empty());
    let acted: Vec<_> = rig
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.operation != "describe")
        .collect();
    assert!(acted.is_empty(), "{acted:?}");
}

/// The simulated fleet, watching deletes: each delete of an id under `slow_prefix` takes
/// `delay` (like a HAProxy drain that waits for sessions to end before DeleteDBInstance), and
/// the master's tags at the moment of every delete are recorded (returned).
fn delete_probe(
    sim: &Arc<SimFleet>,
    slow_prefix: &'static str,
    delay: Duration,
) -> (Arc<HookedFleet>, Arc<Mutex<Vec<Tags>>>) {
    let tags_seen = Arc::new(Mutex::new(Vec::new()));
    let (seen, log) = (tags_seen.clone(), sim.clone());
    let fleet = HookedFleet::new(sim.clone()).before(Op::DeleteReplica, move |call| {
        let (seen, log) = (seen.clone(), log.clone());
        async move {
            let id = call.id();
            if !slow_prefix.is_empty() && id.as_str().starts_with(slow_prefix) {
                tokio::time::sleep(delay).await;
            }
            let master = InstanceId::from_aws(&format!("{}-m01", &id.as_str()[..2]));
            let tags = log.read_tags(&master).await?;
            seen.lock().unwrap().push(tags);
            Ok(())
        }
    });
    (Arc::new(fleet), tags_seen)
}

#[tokio::test(start_paused = true)]
async fn a_slow_step_of_one_cluster_does_not_hold_up_another() {
    // ca (first in config order) scales in through a delete that takes 10 minutes; cb
    // scales out in the same tick. cb's create must not wait for ca's delete.
    let rig = Rig::new(2);
    rig.load.set_cpu("ca", 5.0);
    rig.load.set_cpu("cb", 95.0);
    let metrics = Metrics::new();
    let (slow, _) = delete_probe(&rig.sim, "ca-", Duration::from_secs(600));
    let mut d = rig.daemon_on(slow, &metrics);
    let outcome = d.tick().await;
    assert!(outcome.ok(), "{:?}", outcome.clusters);
    let deletes = rig.call_minutes("delete_replica", "ca-");
    let creates = rig.call_minutes("create_replica", "cb-");
    assert_eq!(
        deletes,
        vec![10],
        "ca's delete went through after its 10 minutes"
    );
    assert_eq!(
        creates,
        vec![0],
        "cb's scale-out waited for ca's slow delete: creates at {creates:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_scale_in_time_is_on_the_master_before_the_delete() {
    // A crash right after DeleteDBInstance must not lose the scale-in cooldown: the time is
    // written to the master's tags first.
    let rig = Rig::new(3);
    rig.load.set_cpu("ca", 5.0);
    let metrics = Metrics::new();
    let (fleet, tags_seen) = delete_probe(&rig.sim, "", Duration::ZERO);
    let mut d = rig.daemon_on(fleet, &metrics);
    let outcome = d.tick().await;
    assert!(outcome.ok(), "{:?}", outcome.clusters);
    // Both clusters scale in (ca at 5 % CPU, cb at the fake's default 30 %).
    let seen = tags_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one scale-in delete per cluster");
    for tags in &seen {
        let state = elasticrds::core::decide::ScaleState::from_tags(tags);
        assert_eq!(
            state.last_scale_in,
            Some(base()),
            "tags at delete: {tags:?}"
        );
    }
}

/// The rig's set with `ca`'s policy target changed to `target` and only the clusters named.
fn set_of(rig: &Rig, clusters: &[&str], target: u32) -> elasticrds::service::reload::ConfigSet {
    let entries = clusters
        .iter()
        .map(|c| {
            let spec = rig.config.cluster(c).unwrap().clone();
            ClusterEntry::new(spec, policy_with_target(c, &rig.config, target))
        })
        .collect();
    elasticrds::service::reload::ConfigSet {
        entries,
        routers: elasticrds::ports::Routers::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_reload_keeps_the_memory_of_kept_clusters_and_says_what_changed() {
    let rig = Rig::new(1);
    rig.load.set_cpu("ca", 95.0);
    let metrics = Metrics::new();
    let mut d = rig.daemon(&metrics);
    assert!(d.tick().await.ok());
    assert_eq!(rig.call_minutes("create_replica", "ca-"), vec![0]);
    let before = d.state("ca").cloned().expect("state in memory");

    // cb removed, ca's target changed: ca keeps its memory (its scale state, its cooldown).
    let summary = d.reload(set_of(&rig, &["ca"], 70));
    assert_eq!(summary.removed, vec!["cb".to_string()]);
    assert_eq!(summary.policy_changed, vec!["ca".to_string()]);
    assert!(summary.added.is_empty());
    assert_eq!(d.state("ca"), Some(&before), "memory survives the reload");
    assert_eq!(d.clusters().len(), 1);
    let text = metrics.render();
    let left: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("cluster=\"cb\"") && !l.contains("_total{"))
        .collect();
    // Its gauges are dropped (no replicas shown for a cluster no longer managed); its
    // counters stay, as history.
    assert!(left.is_empty(), "cb gauges left: {left:?}");
    tokio::time::sleep(2 * MIN).await;
    let out = d.tick().await;
    assert!(out.ok());
    assert_eq!(
        rig.call_minutes("create_replica", "ca-"),
        vec![0],
        "the cooldown held across the reload"
    );
    let r = out.reports().next().unwrap();
    assert_eq!(r.decision.primary, "cooldown");

    // cb back: it starts as new; nothing of cb was ever deleted.
    let summary = d.reload(set_of(&rig, &["ca", "cb"], 70));
    assert_eq!(summary.added, vec!["cb".to_string()]);
    assert!(summary.policy_changed.is_empty());
    assert_eq!(d.state("cb"), None);
    assert!(rig.call_minutes("delete_replica", "").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_refused_reload_keeps_the_running_set_and_says_so_in_the_metric() {
    use elasticrds::service::reload::{ConfigSet, Loader, Trigger};
    let rig = Rig::new(1);
    let metrics = Metrics::new();
    metrics.config_loaded(true, 1.0);
    let good = Arc::new(Mutex::new(false));
    let flag = good.clone();
    let next: Arc<Mutex<Option<ConfigSet>>> = Arc::new(Mutex::new(Some(set_of(&rig, &["ca"], 70))));
    let loader: Loader = Box::new(move || {
        if *flag.lock().unwrap() {
            next.lock()
                .unwrap()
                .take()
                .ok_or_else(|| "used".to_string())
        } else {
            Err("p.yaml:3:9: rules[0].target: must be a number".to_string())
        }
    });
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let d = rig.daemon(&metrics).with_reloader(loader, rx);
    tx.send(Trigger::Signal).await.unwrap();
    let d = run_for(d, Duration::from_secs(90)).await;
    assert_eq!(d.clusters().len(), 2, "the old set keeps running");
    let text = metrics.render();
    assert!(
        text.contains("elasticrds_config_last_reload_successful 0"),
        "{text}"
    );
    assert!(
        text.contains("elasticrds_config_last_reload_success_timestamp_seconds 1"),
        "{text}"
    );
    *good.lock().unwrap() = true;
    tx.send(Trigger::FileChange).await.unwrap();
    let d = run_for(d, Duration::from_secs(90)).await;
    assert_eq!(d.clusters().len(), 1, "the new set runs");
    assert_eq!(
        d.clusters()[0].policy,
        policy_with_target("ca", &rig.config, 70)
    );
    assert!(metrics
        .render()
        .contains("elasticrds_config_last_reload_successful 1"));
}

/// The lead time the fleet teaches: a replica created at minute 0 is available two minutes
/// later (the simulated lead time); the loop measures that from creating to available and,
/// with `learn_lead_time`, writes it to the master's `elasticrds:lead-times` tag, which a
/// restart (or another copy) starts from (tests/predictive_e2e.rs). Without
/// `learn_lead_time` nothing is written.
#[tokio::test(start_paused = true)]
async fn the_measured_lead_time_is_written_on_the_master() {
    for learn in [true, false] {
        let rig = Rig::new(1);
        rig.load.set_cpu("ca", 95.0);
        let spec = rig.config.clusters["ca"].clone();
        let y = format!(
            "{}predictive:\n  mode: forecast_only\n  learn_lead_time: {learn}\n",
            policy_yaml("ca", 60)
        );
        let p = Policy::parse("ca.yaml", &y, &rig.config).expect("policy");
        let d = Daemon::new(
            rig.sim.clone(),
            rig.load.clone(),
            elasticrds::ports::Routers::default(),
            rig.clock.clone(),
            vec![ClusterEntry::new(spec, p)],
            Metrics::new(),
            DaemonOptions {
                interval: MIN,
                ..DaemonOptions::default()
            },
        );
        let _d = run_for(d, Duration::from_secs(4 * 60 + 30)).await;
        assert_eq!(rig.call_minutes("create_replica", "ca-")[0], 0);
        let master = (rig.sim.instances().into_iter())
            .find(|i| i.id.as_str() == "ca-m01")
            .unwrap();
        let tag = master.tags.get("elasticrds:lead-times").cloned();
        let want = learn.then(|| "120".to_string());
        assert_eq!(tag, want, "learn_lead_time: {learn}: {:?}", master.tags);
    }
}
