//! Notifications (issue 19) through a webhook, against a local HTTP sink that can be made slow,
//! failing or unreachable: the control loop in process (the simulated fleet, constant load,
//! real time) tells a scale-out to the webhook with its JSON, text and bearer token, and no
//! tick waits for a slow sink; failures are retried with backoff, then dropped and counted.
//! With a recording sink on paused time: pinned at max (once, after `pinned_for`), a failed
//! action, an ownership conflict, backoff (once per run of failures) and a refused reload.
//! EventBridge against moto is in tests/service_e2e.rs (the built binary, read back through a
//! rule to an SQS queue).

mod support;

use chrono::Utc;
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::adapters::webhook::{read_token, WebhookSink};
use elasticrds::core::config::Config;
use elasticrds::core::domain::InstanceId;
use elasticrds::core::notify::{EventKind, Notifications, Sink, SinkKind, TokenSource};
use elasticrds::core::policy::Policy;
use elasticrds::ports::{EventSink, Notification};
use elasticrds::service::daemon::{ClusterEntry, Daemon, DaemonOptions, TokioClock};
use elasticrds::service::metrics::Metrics;
use elasticrds::service::notify::{Notifier, Retry};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{FakeMetrics, Hook, HookMode as Mode};

fn webhook_sink(name: &str, url: &str) -> Sink {
    Sink {
        name: name.into(),
        kind: SinkKind::Webhook {
            url: url.into(),
            token: None,
            timeout: Duration::from_secs(5),
        },
        events: EventKind::ALL.to_vec(),
        clusters: vec![],
    }
}

fn count(v: &prometheus::IntCounterVec, labels: &[&str]) -> u64 {
    Metrics::counter_value(v, labels)
}

const CONFIG: &str = "ca:\n  master_node: {identifier: snap-ca, instance_id: ca-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: ca-s01, instance_class: db.t3.micro}\n    - {id: ca-s02, instance_class: db.t3.micro}\n    - {id: ca-s03, instance_class: db.t3.micro}\n    - {id: ca-s04, instance_class: db.t3.micro}\n";
const POLICY: &str = "cluster: ca\nmin_replicas: 1\nmax_replicas: 4\nperiod: 60s\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  cooldown: 0s\n  max_step: 1\n  stabilization: 0s\nwarmup:\n  duration: 0s\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_out_reaches_the_webhook_and_no_tick_waits_for_a_slow_one() {
    let hook = Hook::start(Mode::Slow(Duration::from_millis(1500)));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let token = read_token(&TokenSource::File(token_file.display().to_string())).unwrap();
    let sink = WebhookSink::new(&hook.url(), Some(token), Duration::from_secs(5)).unwrap();

    let clock = Arc::new(TokioClock::new(Utc::now()));
    let sim = Arc::new(SimFleet::new(
        clock.clone(),
        SimOptions {
            create_lead: Duration::ZERO,
            ..SimOptions::default()
        },
    ));
    sim.insert(sim.available_instance("ca-m01", "db.t3.micro"));
    let mut r = sim.available_instance("ca-s01", "db.t3.micro");
    r.source = Some(InstanceId::from_aws("ca-m01"));
    sim.insert(r);
    let config = Config::parse("c.yaml", CONFIG).unwrap();
    let policy = Policy::parse("p.yaml", POLICY, &config).unwrap();
    let metrics = Metrics::new();
    let notifier = Notifier::start(
        &Notifications::default(),
        vec![(
            webhook_sink("chat", &hook.url()),
            Arc::new(sink) as Arc<dyn EventSink>,
        )],
        metrics.clone(),
        Retry::default(),
    );
    let mut d = Daemon::new(
        sim.clone(),
        Arc::new(FakeMetrics::constant(95.0, 1.0, 1.0)),
        elasticrds::ports::Routers::default(),
        clock,
        vec![ClusterEntry::new(config.clusters["ca"].clone(), policy)],
        metrics.clone(),
        DaemonOptions::default(),
    )
    .with_notifier(notifier, Duration::from_secs(1800));

    // Three ticks, each a scale-out by one: none waits for the 1.5 s the sink takes.
    for _ in 0..3 {
        let t0 = Instant::now();
        let out = d.tick().await;
        assert!(out.ok(), "{out:?}");
        assert!(
            t0.elapsed() < Duration::from_millis(700),
            "a tick waited: {:?}",
            t0.elapsed()
        );
    }
    assert!(
        hook.got().len() < 3,
        "delivered before the ticks were over: not slow enough"
    );
    d.take_notifier()
        .unwrap()
        .shutdown(Duration::from_secs(20))
        .await;

    let got = hook.got();
    assert_eq!(got.len(), 3, "{got:?}");
    for (i, g) in got.iter().enumerate() {
        assert!(
            g.headers
                .contains(&("authorization".into(), "Bearer s3cret".into())),
            "{:?}",
            g.headers
        );
        let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
        assert_eq!(v["version"], 1, "{v}");
        assert_eq!(v["source"], "elasticrds");
        assert_eq!(v["type"], "scale_out");
        assert_eq!(v["cluster"], "ca");
        assert_eq!(v["detail"]["before"], i + 1, "{v}");
        assert_eq!(v["detail"]["after"], i + 2, "{v}");
        assert_eq!(v["detail"]["replicas"][0], format!("ca-s0{}", i + 2), "{v}");
        let text = v["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!(
                "ca: scaled out {} → {} replicas (created ca-s0{})",
                i + 1,
                i + 2,
                i + 2
            )),
            "{text}"
        );
        assert!(text.contains("cpu 95"), "the reasons, in words: {text}");
    }
    assert_eq!(count(&metrics.notifications_sent_total, &["chat"]), 3);
    let text = metrics.render();
    assert!(
        text.contains("elasticrds_notification_delivery_seconds_count{sink=\"chat\"} 3"),
        "{text}"
    );
}

/// Two events through a webhook sink at `url`, retried quickly; the metrics after shutdown.
async fn deliver_two(url: &str) -> Metrics {
    let metrics = Metrics::new();
    let sink = WebhookSink::new(url, None, Duration::from_secs(2)).unwrap();
    let n = Notifier::start(
        &Notifications::default(),
        vec![(webhook_sink("h", url), Arc::new(sink) as Arc<dyn EventSink>)],
        metrics.clone(),
        Retry {
            attempts: 3,
            first: Duration::from_millis(20),
            cap: Duration::from_millis(50),
        },
    );
    for i in 0..2 {
        n.send(Notification {
            kind: EventKind::Backoff,
            cluster: Some("ca".into()),
            at: Utc::now(),
            text: format!("event {i}"),
            detail: serde_json::json!({}),
        });
    }
    n.shutdown(Duration::from_secs(20)).await;
    metrics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_and_unreachable_webhooks_are_retried_then_dropped_and_counted() {
    // 500: retried twice each, then dropped.
    let failing = Hook::start(Mode::Status(500));
    let m = deliver_two(&failing.url()).await;
    assert_eq!(failing.got().len(), 6);
    assert_eq!(count(&m.notification_retries_total, &["h"]), 4);
    assert_eq!(count(&m.notifications_dropped_total, &["h", "failed"]), 2);
    assert_eq!(count(&m.notifications_sent_total, &["h"]), 0);
    // 400: the hook refuses it; not retried.
    let refusing = Hook::start(Mode::Status(400));
    let m = deliver_two(&refusing.url()).await;
    assert_eq!(refusing.got().len(), 2);
    assert_eq!(count(&m.notification_retries_total, &["h"]), 0);
    assert_eq!(count(&m.notifications_dropped_total, &["h", "failed"]), 2);
    // Nobody listening: retried, then dropped.
    let port = support::free_port();
    let m = deliver_two(&format!("http://127.0.0.1:{port}/hook")).await;
    assert_eq!(count(&m.notification_retries_total, &["h"]), 4);
    assert_eq!(count(&m.notifications_dropped_total, &["h", "failed"]), 2);
    // A hook that answers 200: both delivered, nothing retried.
    let ok = Hook::start(Mode::Ok);
    let m = deliver_two(&ok.url()).await;
    assert_eq!(count(&m.notifications_sent_total, &["h"]), 2);
    assert_eq!(ok.got().len(), 2);
}

#[test]
fn a_token_must_come_from_somewhere_real() {
    let e = read_token(&TokenSource::Env("ELASTICRDS_TEST_NO_SUCH_VAR".into())).unwrap_err();
    assert!(e.contains("ELASTICRDS_TEST_NO_SUCH_VAR is not set"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let e = read_token(&TokenSource::File(empty.display().to_string())).unwrap_err();
    assert!(e.contains("empty"), "{e}");
    let e = read_token(&TokenSource::File("/nonexistent/token".into())).unwrap_err();
    assert!(e.contains("bearer_token_file"), "{e}");
}

/// A sink that keeps what it is given.
#[derive(Default)]
struct Recorder(Mutex<Vec<Notification>>);

#[async_trait::async_trait]
impl EventSink for Recorder {
    async fn deliver(&self, n: &Notification) -> Result<(), elasticrds::ports::PortError> {
        self.0.lock().unwrap().push(n.clone());
        Ok(())
    }
}

impl Recorder {
    fn kinds(&self) -> Vec<(EventKind, Option<String>)> {
        (self.0.lock().unwrap().iter())
            .map(|n| (n.kind, n.cluster.clone()))
            .collect()
    }
    fn texts(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.text.clone())
            .collect()
    }
}

/// The daemon on `fleet` (the sim with master, `replicas` replicas of ca, CPU `cpu`), telling
/// a recorder; `pinned_for` 5 minutes.
fn told_daemon(
    fleet: Arc<dyn elasticrds::ports::Fleet>,
    clock: Arc<TokioClock>,
    policy: &str,
    cpu: f64,
) -> (Daemon, Arc<Recorder>) {
    let config = Config::parse("c.yaml", CONFIG).unwrap();
    let policy = Policy::parse("p.yaml", policy, &config).unwrap();
    let rec = Arc::new(Recorder::default());
    let metrics = Metrics::new();
    let notifier = Notifier::start(
        &Notifications::default(),
        vec![(
            webhook_sink("rec", "http://x"),
            rec.clone() as Arc<dyn EventSink>,
        )],
        metrics.clone(),
        Retry::default(),
    );
    let d = Daemon::new(
        fleet,
        Arc::new(FakeMetrics::constant(cpu, 1.0, 1.0)),
        elasticrds::ports::Routers::default(),
        clock,
        vec![ClusterEntry::new(config.clusters["ca"].clone(), policy)],
        metrics,
        DaemonOptions::default(),
    )
    .with_notifier(notifier, Duration::from_secs(300));
    (d, rec)
}

fn sim_with(clock: &Arc<TokioClock>, replicas: &[&str]) -> Arc<SimFleet> {
    let sim = Arc::new(SimFleet::new(clock.clone(), SimOptions::default()));
    sim.insert(sim.available_instance("ca-m01", "db.t3.micro"));
    for id in replicas {
        let mut r = sim.available_instance(id, "db.t3.micro");
        r.source = Some(InstanceId::from_aws("ca-m01"));
        sim.insert(r);
    }
    sim
}

/// Let the notifier's worker run (paused time: it only needs turns).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn pinned_at_max_is_told_once_and_only_after_pinned_for() {
    let clock = Arc::new(TokioClock::new(Utc::now()));
    let sim = sim_with(&clock, &["ca-s01", "ca-s02"]);
    let policy = POLICY.replace("max_replicas: 4", "max_replicas: 2");
    let (mut d, rec) = told_daemon(sim, clock, &policy, 95.0);
    for _ in 0..4 {
        d.tick().await; // minutes 0..3: pinned, not for long enough
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    settle().await;
    assert!(rec.kinds().is_empty(), "{:?}", rec.texts());
    for _ in 0..4 {
        d.tick().await; // minutes 4..7: told once, at minute 5
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    settle().await;
    assert_eq!(
        rec.kinds(),
        vec![(EventKind::PinnedAtMax, Some("ca".into()))]
    );
    let text = &rec.texts()[0];
    assert!(
        text.starts_with("ca: pinned at its max of 2 replicas for 5m"),
        "{text}"
    );
    assert!(text.contains("cpu 95.0 > target 60"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn backoff_conflicts_failed_actions_and_refused_reloads_are_told() {
    use support::{HookedFleet, Op};
    let clock = Arc::new(TokioClock::new(Utc::now()));
    let sim = sim_with(&clock, &["ca-s01"]);
    // ca-s03 is held by a standalone instance: an ownership conflict.
    sim.insert(sim.available_instance("ca-s03", "db.t3.micro"));
    let fail_describe = Arc::new(Mutex::new(false));
    let flag = fail_describe.clone();
    let fleet = HookedFleet::new(sim.clone())
        .before(Op::Describe, move |_| {
            let fail = *flag.lock().unwrap();
            async move {
                if fail {
                    Err(elasticrds::ports::PortError::new(
                        elasticrds::ports::ErrorKind::Throttled,
                        "DescribeDBInstances",
                        "Rate exceeded",
                    ))
                } else {
                    Ok(())
                }
            }
        })
        .before(Op::CreateReplica, |_| async {
            Err(elasticrds::ports::PortError::new(
                elasticrds::ports::ErrorKind::Fatal,
                "CreateDBInstanceReadReplica",
                "InsufficientDBInstanceCapacity",
            ))
        });
    let (d, rec) = told_daemon(Arc::new(fleet), clock, POLICY, 95.0);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let loader: elasticrds::service::reload::Loader =
        Box::new(|| Err("p.yaml:3:9: rules[0].target: must be a number".into()));
    let mut d = d.with_reloader(loader, rx);
    // Tick 1: the conflict and the failed create (which puts the cluster in backoff).
    d.tick().await;
    // Two more failing ticks (describe throttled): backoff is told once per run of failures.
    *fail_describe.lock().unwrap() = true;
    tokio::time::sleep(Duration::from_secs(120)).await;
    d.tick().await;
    tokio::time::sleep(Duration::from_secs(240)).await;
    d.tick().await;
    tx.send(elasticrds::service::reload::Trigger::Signal)
        .await
        .unwrap();
    let d = support::run_for(d, Duration::from_secs(1)).await;
    settle().await;
    let kinds = rec.kinds();
    let ca = Some("ca".to_string());
    assert_eq!(
        kinds,
        vec![
            (EventKind::ActionFailed, ca.clone()),
            (EventKind::OwnershipConflict, ca.clone()),
            (EventKind::Backoff, ca.clone()),
            (EventKind::ReloadFailed, None),
        ],
        "{:#?}",
        rec.texts()
    );
    let texts = rec.texts();
    assert!(
        texts[0].contains("create_replica ca-s02 failed")
            && texts[0].contains("InsufficientDBInstanceCapacity"),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("ca: ca-s03 holds a configured replica id (position 3)"),
        "{}",
        texts[1]
    );
    assert!(texts[2].contains("backing off"), "{}", texts[2]);
    assert!(texts[3].contains("p.yaml:3:9"), "{}", texts[3]);
    drop(d);
}
