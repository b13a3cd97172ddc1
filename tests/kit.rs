//! The test kit in tests/support checked on its own, so that a test relying on it relies on
//! something that does what it says: HookedFleet's hooks (order, a failing `before` that keeps
//! the call from the wrapped fleet, an `after` that sees the answer and can replace it, a
//! delay), FakeMetrics (values, per-cluster CPU, every period, the record of its fetches), the
//! instance builder, the HTTP client against a real loopback server (status, head, chunked
//! body, a 404 as a response and as an error), the form decoder, and that a server start
//! recognises its own listener and refuses a neighbour's.

mod support;

use chrono::{DateTime, TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::domain::{
    InstanceClass, InstanceId, InstanceStatus, MetricKind, MetricQuery, Statistic, Tags,
};
use elasticrds::core::template::Settings;
use elasticrds::ports::ReplicaRequest;
use elasticrds::ports::{ErrorKind, Fleet, ManualClock, MetricsSource, PortError};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{instance, FakeMetrics, HookedFleet, Op};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

fn sim() -> Arc<SimFleet> {
    let sim = SimFleet::new(Arc::new(ManualClock::new(t0())), SimOptions::default());
    sim.insert(sim.available_instance("c1-m01", "db.t3.micro"));
    Arc::new(sim)
}

fn throttled() -> PortError {
    PortError::new(ErrorKind::Throttled, "DeleteDBInstance", "Rate exceeded")
}

#[tokio::test(start_paused = true)]
async fn hooked_fleet_runs_its_hooks_around_the_wrapped_call() {
    let sim = sim();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let fleet = HookedFleet::new(sim.clone())
        .before(Op::CreateReplica, move |c| {
            s1.lock().unwrap().push(format!("before {}", c.id()));
            async { Ok(()) }
        })
        .after(Op::CreateReplica, move |c, err| {
            s2.lock().unwrap().push(format!("after {} {err:?}", c.id()));
            async { Ok(()) }
        })
        // A delete answered "throttled" although it was done (the answer was lost).
        .after(Op::DeleteReplica, move |c, err| {
            s3.lock().unwrap().push(format!("after {} {err:?}", c.id()));
            async { Err(throttled()) }
        })
        .delay(Op::Describe, Duration::from_secs(30));
    let (r, m) = (
        InstanceId::from_aws("c1-s01"),
        InstanceId::from_aws("c1-m01"),
    );
    let class = InstanceClass::from_aws("db.t3.micro");
    fleet
        .create_replica(&ReplicaRequest {
            id: &r,
            source: &m,
            class: &class,
            zone: None,
            settings: &Settings::default(),
            tags: &Tags::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        ["before c1-s01", "after c1-s01 None"]
    );
    assert_eq!(fleet.delete_replica(&r).await, Err(throttled()));
    assert_eq!(seen.lock().unwrap()[2], "after c1-s01 None");
    let ops: Vec<_> = sim.calls().iter().map(|c| c.operation).collect();
    assert_eq!(ops, ["create_replica", "delete_replica"]);

    let started = tokio::time::Instant::now();
    let found = fleet.describe(std::slice::from_ref(&m)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(found.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_before_hook_is_the_answer_and_the_fleet_is_not_called() {
    let sim = sim();
    let fleet =
        HookedFleet::new(sim.clone()).before(Op::DeleteReplica, |_| async { Err(throttled()) });
    let m = InstanceId::from_aws("c1-m01");
    assert_eq!(fleet.delete_replica(&m).await, Err(throttled()));
    assert!(sim.calls().is_empty(), "{:?}", sim.calls());
    // Other operations pass straight through.
    assert!(fleet.read_tags(&m).await.is_ok());
    assert_eq!(sim.calls().len(), 1);
}

fn query(id: &str, metric: MetricKind) -> MetricQuery {
    MetricQuery {
        instance: InstanceId::from_aws(id),
        metric,
        statistic: Statistic::Average,
        period_secs: 60,
    }
}

#[tokio::test(start_paused = true)]
async fn fake_metrics_are_constant_per_metric_and_cluster_and_recorded() {
    let m = FakeMetrics::constant(30.0, 5.0, 1.0);
    m.set_cpu("ca", 95.0);
    m.set_delay(Duration::from_secs(10));
    let qs = [
        query("ca-s01", MetricKind::Cpu),
        query("cb-s01", MetricKind::Cpu),
        query("ca-s01", MetricKind::Connections),
        query("ca-s01", MetricKind::ReplicaLag),
    ];
    let end = t0() + chrono::Duration::seconds(5 * 60 + 30);
    let got = m.fetch(&qs, t0(), end).await.unwrap();
    let values: Vec<Vec<f64>> = got
        .iter()
        .map(|s| s.samples.iter().map(|x| x.value).collect())
        .collect();
    assert_eq!(
        values[0], [95.0; 5],
        "every whole period, the cluster's CPU"
    );
    assert_eq!(values[1], [30.0; 5]);
    assert_eq!(values[2], [5.0; 5]);
    assert_eq!(values[3], [1.0; 5]);
    assert_eq!(got[0].samples[4].at, t0() + chrono::Duration::minutes(4));
    m.fetch(&qs[..1], t0(), end).await.unwrap();
    let calls = m.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[1].began, calls[1].ended, calls[1].queries),
        (Duration::from_secs(10), Duration::from_secs(20), 1)
    );
}

#[test]
fn the_instance_builder_sets_what_it_is_told_and_defaults_the_rest() {
    let i = instance("c1-s01")
        .of("c1-m01")
        .class("db.r6g.large")
        .status(InstanceStatus::Creating)
        .multi_az(true)
        .build();
    assert_eq!(i.id.as_str(), "c1-s01");
    assert_eq!(i.source.as_ref().map(InstanceId::as_str), Some("c1-m01"));
    assert_eq!(i.class.as_str(), "db.r6g.large");
    assert_eq!(i.status, InstanceStatus::Creating);
    assert!(i.multi_az);
    let d = instance("c1-m01").build();
    assert_eq!(
        (d.class.as_str(), &d.status, &*d.engine, d.multi_az),
        ("db.t3.micro", &InstanceStatus::Available, "mysql", false)
    );
    assert!(d.source.is_none() && d.replicas.is_empty() && d.tags.is_empty());
}

/// A loopback server answering each connection with `answers[n]` (after reading the head).
fn serve(answers: Vec<&'static str>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (s, answer) in l.incoming().zip(answers) {
            let mut s = s.unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).unwrap() > 0 && !line.ends_with("\r\n\r\n") {}
            s.write_all(answer.as_bytes()).unwrap();
        }
    });
    port
}

#[test]
fn the_http_client_reads_status_head_and_body() {
    let port = serve(vec![
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
    ]);
    let r = support::get(("127.0.0.1", port), "/x").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.body, "abcde");
    let r = support::get(("127.0.0.1", port), "/y").unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "nope"));
    let e = support::http_request(port, "GET", "/z").unwrap_err();
    assert!(e.contains("HTTP 404"), "{e}");
    let dead = support::free_port();
    assert!(support::get(("127.0.0.1", dead), "/").is_err());
}

#[test]
fn forms_are_decoded() {
    assert_eq!(
        support::parse_form("Action=DescribeDBInstances&Filters.1.Name=db%2Dinstance+id&x=%zz&&y"),
        [
            ("Action".into(), "DescribeDBInstances".into()),
            ("Filters.1.Name".into(), "db-instance id".into()),
            ("x".into(), "%zz".into()),
            ("y".into(), String::new()),
        ]
    );
    assert_eq!(support::url_decode("100%"), "100%");
}

/// A server start must not hand a test a neighbour's server: the listener on the port has to
/// belong to the child that was started (or its descendants), and a port already held by
/// someone else is refused at once, so `Server::start` moves on to another port.
#[test]
fn a_port_held_by_another_process_is_not_taken_for_our_server() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    assert!(support::listener_owned_by(std::process::id(), port));
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    assert!(!support::listener_owned_by(sleeper.id(), port));
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();

    // A "server" that never binds, started on the held port: refused as not ours.
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        support::Server::spawn("sleeper", cmd, port, Duration::from_secs(5))
    }));
    let msg = refused
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .unwrap();
    assert!(msg.contains("not from the sleeper we started"), "{msg}");

    // A real listener started by the kit is recognised as its own.
    let server = support::Server::start("nc", Duration::from_secs(10), |port| {
        let mut cmd = std::process::Command::new("python3");
        cmd.args([
            "-c",
            &format!("import socket,time;s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(30)"),
        ]);
        cmd
    });
    assert_ne!(server.port, port);
    drop(held);
}
