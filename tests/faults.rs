//! The fault matrix: `elasticrds run` against moto (RDS) and ministack (CloudWatch) through the
//! fault-injecting proxy (tests/faultkit/proxy.rs). For each fault — throttling, 500, 503,
//! connection reset, a 10 s stall past the SDK's 5 s attempt timeout, a truncated response —
//! on every AWS operation the service calls ([`OPERATIONS`]: describe, create, delete, state
//! tags, class change, master restore, GetMetricData) as a burst of the SDK's three attempts,
//! alone (x1) on each service, and in longer bursts, it checks:
//! - the loop keeps ticking (the process stays up, ticks_total grows, SIGTERM exits 0);
//! - the other cluster is unaffected (it converges while cluster `ca` is being faulted);
//! - no replica is created twice (the proxy refuses and counts a create for an existing id);
//! - no action is lost and the fleet converges once the fault stops;
//! - failures that escape the SDK's retries show in /metrics (aws_errors_total, retries_total);
//! - nothing outside the config is touched (the foreign replica ca-x01, the masters).
//!
//! Run by scripts/faults.sh (`cargo test --test faults -- --ignored`), which adds up the
//! outcomes each scenario appends to target/faults-summary.jsonl. Ignored in the plain
//! `cargo test` so the matrix runs once per test command.

mod faultkit;
mod support;

use faultkit::proxy::{Fault, FaultProxy, Rule, Service};
use faultkit::{
    fixed_policy, foreign_touches, lost, metric_sum, record, set, wait_until, Outcome, Rig,
};
use std::time::Duration;

const STALL: Duration = Duration::from_secs(10);
/// The class the Class scenarios' schedule moves ca's replicas to.
const NEW_CLASS: &str = "db.t3.small";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dir {
    /// ca 1 → 3 replicas, cb 0 → 2.
    Out,
    /// ca 3 → 1 replicas, cb 0 → 2.
    In,
    /// ca keeps 2 replicas, a schedule moves them to db.t3.small (ModifyDBInstance), cb 0 → 2.
    Class,
    /// ca's master is gone: restored from its snapshot, then 1 replica; cb 0 → 2.
    Restore,
}

#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    service: Service,
    operation: &'static str,
    fault: Fault,
    /// Consecutive matching requests faulted (3 = every attempt the SDK makes).
    burst: usize,
    /// Scope the fault to cluster ca's identifiers (per-instance operations).
    scoped: bool,
    dir: Dir,
}

/// Every AWS operation `elasticrds run` calls (tests/iam.rs checks the code calls no other,
/// apart from ListTagsForResource, which only `elasticrds plan` uses), with the scenario
/// direction that makes the service call it.
const OPERATIONS: [(Service, &str, Dir); 7] = [
    (Service::Rds, "DescribeDBInstances", Dir::Out),
    (Service::Rds, "CreateDBInstanceReadReplica", Dir::Out),
    (Service::Rds, "DeleteDBInstance", Dir::In),
    (Service::Rds, "AddTagsToResource", Dir::Out),
    (Service::Rds, "ModifyDBInstance", Dir::Class),
    (
        Service::Rds,
        "RestoreDBInstanceFromDBSnapshot",
        Dir::Restore,
    ),
    (Service::CloudWatch, "GetMetricData", Dir::Out),
];

fn faults() -> [Fault; 6] {
    [
        Fault::Throttle,
        Fault::Http500,
        Fault::Http503,
        Fault::Reset,
        Fault::Stall(STALL),
        Fault::Truncate,
    ]
}

fn sc(service: Service, operation: &'static str, fault: Fault, burst: usize, dir: Dir) -> Scenario {
    let scoped = service == Service::Rds && operation != "DescribeDBInstances";
    let short = match operation {
        "DescribeDBInstances" => "describe",
        "CreateDBInstanceReadReplica" => "create",
        "DeleteDBInstance" => "delete",
        "AddTagsToResource" => "addtags",
        "ModifyDBInstance" => "modify",
        "RestoreDBInstanceFromDBSnapshot" => "restore",
        "GetMetricData" => "getmetricdata",
        other => other,
    };
    Scenario {
        name: format!(
            "{} {} {short} x{burst} {}",
            service.label(),
            fault.label(),
            format!("{dir:?}").to_lowercase()
        ),
        service,
        operation,
        fault,
        burst,
        scoped,
        dir,
    }
}

/// Every fault kind on every operation as a burst of 3 (all of the SDK's attempts, so the
/// failure reaches the service); each fault kind alone (x1, absorbed by the SDK's retries) on
/// each service; and a few longer bursts. The slow ones (stalls) first, so that they overlap
/// the rest.
fn matrix() -> Vec<Scenario> {
    use Dir::*;
    use Fault::*;
    use Service::*;
    let mut v = Vec::new();
    for (svc, op, dir) in OPERATIONS {
        for f in faults() {
            v.push(sc(svc, op, f, 3, dir));
        }
    }
    for f in faults() {
        v.push(sc(Rds, "CreateDBInstanceReadReplica", f, 1, Out));
        v.push(sc(CloudWatch, "GetMetricData", f, 1, Out));
    }
    v.push(sc(Rds, "DeleteDBInstance", Truncate, 1, In));
    v.push(sc(Rds, "CreateDBInstanceReadReplica", Throttle, 4, Out));
    v.push(sc(Rds, "DescribeDBInstances", Throttle, 6, Out));
    v.push(sc(CloudWatch, "GetMetricData", Throttle, 5, Out));
    // stalls first
    v.sort_by_key(|s| !matches!(s.fault, Stall(_)));
    v
}

/// What one scenario found; `problems` empty when every check held.
struct Verdict {
    outcome: Outcome,
    problems: Vec<String>,
}

fn run_scenario(s: &Scenario) -> Verdict {
    let rig = Rig::start();
    let (ca_start, ca_target) = match s.dir {
        Dir::Out => (1, 3),
        Dir::In => (3, 1),
        Dir::Class => (2, 2),
        Dir::Restore => (0, 1),
    };
    let mut ca_policy = fixed_policy("ca", ca_target);
    match s.dir {
        Dir::Restore => rig.seed_without_ca_master(0),
        _ => rig.seed(ca_start, 0),
    }
    if s.dir == Dir::Class {
        ca_policy.push_str(&format!(
            "schedules:\n  - cron: \"* * * * *\"\n    duration: 1h\n    replica_class: {NEW_CLASS}\n"
        ));
    }
    rig.set_policy("ca", &ca_policy);
    rig.set_policy("cb", &fixed_policy("cb", 2));
    let proxy: &FaultProxy = match s.service {
        Service::Rds => &rig.rds,
        Service::CloudWatch => &rig.cw,
    };
    let mut rule = Rule::new(s.operation, s.fault, s.burst);
    if s.scoped {
        rule = rule.for_ids("ca-");
    }
    proxy.add_rule(rule);

    let mut problems = Vec::new();
    let mut svc = rig.spawn("run", &[]);
    let expected_cb = set(&["cb-m01", "cb-s01", "cb-s02"]);
    let mut expected = expected_cb.clone();
    expected.insert("ca-m01".to_string());
    if s.dir != Dir::Restore {
        expected.insert(faultkit::FOREIGN.to_string());
    }
    for i in 1..=ca_target {
        expected.insert(format!("ca-s{i:02}"));
    }
    // Class changes: the ca replicas end in the scheduled class, nothing else changes class.
    let classes_ok = || {
        s.dir != Dir::Class || {
            let c = rig.classes();
            c.iter().all(|(id, class)| {
                let want = if id.starts_with("ca-s") {
                    NEW_CLASS
                } else {
                    "db.t3.micro"
                };
                class == want
            })
        }
    };

    // The fault fires (every faulted request seen), and meanwhile the other cluster converges
    // when the fault is scoped to ca.
    let fired = wait_until(Duration::from_secs(90), || proxy.injected() >= s.burst);
    if !fired {
        problems.push(format!(
            "only {} of {} faults fired",
            proxy.injected(),
            s.burst
        ));
    }
    if s.scoped {
        let cb_ok = wait_until(Duration::from_secs(60), || {
            let f = rig.fleet();
            expected_cb.iter().all(|id| f.contains(id))
        });
        if !cb_ok {
            problems.push("cluster cb did not converge while ca was faulted".into());
        }
    }
    rig.rds.clear_rules();
    rig.cw.clear_rules();

    // Once the fault stops the fleet converges.
    let converged = wait_until(Duration::from_secs(90), || {
        rig.fleet() == expected && classes_ok()
    });
    // ... and stays converged over a few more ticks (no late duplicate or deletion).
    std::thread::sleep(Duration::from_secs(3));
    let fleet = rig.fleet();
    let mut lost_ids = lost(&fleet, &expected);
    if !classes_ok() {
        lost_ids.push(format!("class changes: {:?}", rig.classes()));
    }
    if !converged || !lost_ids.is_empty() {
        problems.push(format!(
            "not converged: fleet {fleet:?}, expected {expected:?}; {lost_ids:?}"
        ));
    }
    if !svc.alive() {
        problems.push(format!("the service died:\n{}", svc.log_text()));
    }
    // The loop keeps ticking: at least 3 ticks done (a tick held up by a stall that outlasts
    // the SDK's attempts may end only after the fleet has converged).
    wait_until(Duration::from_secs(60), || {
        metric_sum(
            &svc.metrics().unwrap_or_default(),
            "elasticrds_ticks_total",
            &[],
        ) >= 3.0
    });
    let metrics = svc.metrics().unwrap_or_default();
    let ticks = metric_sum(&metrics, "elasticrds_ticks_total", &[]);
    if ticks < 3.0 {
        problems.push(format!("only {ticks} ticks"));
    }
    // A burst as long as the SDK's attempts escapes its retries: the service must count it.
    if s.burst >= 3 {
        let errors = metric_sum(
            &metrics,
            "elasticrds_aws_errors_total",
            &[("operation", s.operation)],
        );
        if errors < 1.0 {
            problems.push(format!(
                "aws_errors_total for {} is {errors} after a burst of {}",
                s.operation, s.burst
            ));
        }
        let retries = metric_sum(&metrics, "elasticrds_retries_total", &[]);
        let cluster_errors = metric_sum(&metrics, "elasticrds_cluster_errors_total", &[]);
        if retries + cluster_errors < 1.0 && s.operation != "CreateDBInstanceReadReplica" {
            problems
                .push("neither retries_total nor cluster_errors_total moved after a burst".into());
        }
    }
    match svc.stop() {
        Some(st) if st.success() => {}
        other => problems.push(format!("SIGTERM did not exit 0: {other:?}")),
    }
    let foreign = foreign_touches(&rig.rds);
    if !foreign.is_empty() {
        problems.push(format!("touched outside the config: {foreign:?}"));
    }
    let duplicates = rig.rds.duplicates();
    if duplicates > 0 {
        let d: Vec<_> = rig.rds.log().into_iter().filter(|e| e.duplicate).collect();
        problems.push(format!("{duplicates} duplicate creates: {d:?}"));
    }
    if !problems.is_empty() {
        problems.push(format!(
            "--- service log ---\n{}",
            tail(&svc.log_text(), 3000)
        ));
    }
    Verdict {
        outcome: Outcome {
            test: "faults".into(),
            scenario: s.name.clone(),
            injected: rig.rds.injected() + rig.cw.injected(),
            duplicates,
            lost: lost_ids.len(),
            foreign: foreign.len(),
            converged: converged && lost_ids.is_empty(),
        },
        problems,
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// Run scenarios `width` at a time, each on its own emulators and proxies.
fn run_all(list: Vec<Scenario>, width: usize) -> Vec<(Scenario, Verdict)> {
    // Popped from the back: reversed, so the list's order is the start order.
    let queue = std::sync::Mutex::new(list.into_iter().enumerate().rev().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..width {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap().pop();
                let Some((i, s)) = next else { break };
                let v = std::panic::catch_unwind(|| run_scenario(&s)).unwrap_or_else(|e| {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Verdict {
                        outcome: Outcome {
                            test: "faults".into(),
                            scenario: s.name.clone(),
                            ..Default::default()
                        },
                        problems: vec![format!("panicked: {msg}")],
                    }
                });
                record(&v.outcome);
                eprintln!(
                    "[faults] {:<40} injected {:>2}  dup {}  lost {}  foreign {}  converged {}  {}",
                    s.name,
                    v.outcome.injected,
                    v.outcome.duplicates,
                    v.outcome.lost,
                    v.outcome.foreign,
                    v.outcome.converged,
                    if v.problems.is_empty() {
                        "ok"
                    } else {
                        "FAILED"
                    }
                );
                results.lock().unwrap().push((i, s, v));
            });
        }
    });
    let mut r = results.into_inner().unwrap();
    r.sort_by_key(|(i, _, _)| *i);
    r.into_iter().map(|(_, s, v)| (s, v)).collect()
}

#[test]
#[ignore = "the fault matrix: run by scripts/faults.sh (cargo test --test faults -- --ignored)"]
fn fault_matrix() {
    let list = matrix();
    // The matrix covers every fault kind on every operation the service uses, as a burst past
    // the SDK's retries, and every fault kind alone on both services.
    for (svc, op, _) in OPERATIONS {
        for f in faults() {
            assert!(
                list.iter()
                    .any(|s| s.service == svc && s.operation == op && s.fault == f && s.burst >= 3),
                "no burst of {f:?} on {svc:?} {op}"
            );
        }
    }
    for svc in [Service::Rds, Service::CloudWatch] {
        for f in faults() {
            assert!(
                list.iter()
                    .any(|s| s.service == svc && s.fault == f && s.burst == 1),
                "no single {f:?} on {svc:?}"
            );
        }
    }
    // ELASTICRDS_FAULTS_ONLY=<substring> runs the matching scenarios only (for debugging).
    let list: Vec<Scenario> = match std::env::var("ELASTICRDS_FAULTS_ONLY") {
        Ok(f) => list.into_iter().filter(|s| s.name.contains(&f)).collect(),
        Err(_) => list,
    };
    assert!(!list.is_empty(), "no scenario selected");
    let width: usize = std::env::var("ELASTICRDS_FAULTS_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let results = run_all(list, width);
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, v)| !v.problems.is_empty())
        .map(|(s, v)| format!("== {} ==\n{}", s.name, v.problems.join("\n")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n\n")
    );
}

/// The proxy's faults look to the SDK as they would from AWS: each is classified as throttled
/// or transient by the adapters, a single fault is absorbed by the SDK's retries, and a burst
/// of three (the SDK's attempts) reaches the caller.
#[test]
#[ignore = "part of the fault matrix: run by scripts/faults.sh"]
fn proxy_faults_reach_the_sdk_as_aws_errors() {
    use elasticrds::adapters::rds::RdsFleet;
    use elasticrds::core::domain::InstanceId;
    use elasticrds::ports::{ErrorKind, Fleet};
    let rig = Rig::start();
    rig.seed(1, 0);
    let conf = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .region(aws_sdk_rds::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(rig.rds.url())
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            aws_sdk_rds::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(elasticrds::adapters::aws::ATTEMPT_TIMEOUT)
                .operation_timeout(elasticrds::adapters::aws::OPERATION_TIMEOUT)
                .build(),
        )
        .build();
    let fleet = RdsFleet::from_client(aws_sdk_rds::Client::from_conf(conf));
    let ids = [InstanceId::from_aws("ca-m01")];
    let mut problems = Vec::new();
    let cases = [
        (Fault::Throttle, ErrorKind::Throttled),
        (Fault::Http500, ErrorKind::Transient),
        (Fault::Http503, ErrorKind::Transient),
        (Fault::Reset, ErrorKind::Transient),
        (Fault::Truncate, ErrorKind::Transient),
    ];
    for (fault, kind) in cases {
        rig.rds.clear_rules();
        rig.rds.add_rule(Rule::new("DescribeDBInstances", fault, 1));
        match rig.rt.block_on(fleet.describe(&ids)) {
            Ok(v) if v.len() == 1 => {}
            other => problems.push(format!(
                "{fault:?} x1 not absorbed by SDK retries: {other:?}"
            )),
        }
        rig.rds.clear_rules();
        rig.rds.add_rule(Rule::new("DescribeDBInstances", fault, 3));
        match rig.rt.block_on(fleet.describe(&ids)) {
            Err(e) if e.kind == kind => {}
            other => problems.push(format!("{fault:?} x3: want {kind:?}, got {other:?}")),
        }
    }
    // CloudWatch (rpcv2Cbor): the CBOR error body and x-amzn-query-error header.
    let cw = elasticrds::adapters::cloudwatch::CloudWatchMetrics::from_client(
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::Config::builder()
                .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
                .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
                    "testing", "testing", None, None, "test",
                ))
                .endpoint_url(rig.cw.url())
                .retry_config(
                    aws_sdk_cloudwatch::config::retry::RetryConfig::standard().with_max_attempts(3),
                )
                .build(),
        ),
    );
    use elasticrds::core::domain::{MetricKind, MetricQuery, Statistic};
    use elasticrds::ports::MetricsSource;
    let q = [MetricQuery {
        instance: InstanceId::from_aws("ca-s01"),
        metric: MetricKind::Cpu,
        statistic: Statistic::Average,
        period_secs: 60,
    }];
    let end = chrono::Utc::now();
    let start = end - chrono::Duration::minutes(10);
    for (fault, kind) in [
        (Fault::Throttle, ErrorKind::Throttled),
        (Fault::Http500, ErrorKind::Transient),
        (Fault::Http503, ErrorKind::Transient),
        (Fault::Reset, ErrorKind::Transient),
        (Fault::Truncate, ErrorKind::Transient),
    ] {
        rig.cw.clear_rules();
        rig.cw.add_rule(Rule::new("GetMetricData", fault, 1));
        if let Err(e) = rig.rt.block_on(cw.fetch(&q, start, end)) {
            problems.push(format!("cw {fault:?} x1 not absorbed: {e}"));
        }
        rig.cw.clear_rules();
        rig.cw.add_rule(Rule::new("GetMetricData", fault, 3));
        match rig.rt.block_on(cw.fetch(&q, start, end)) {
            Err(e) if e.kind == kind => {}
            other => problems.push(format!("cw {fault:?} x3: want {kind:?}, got {other:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(rig.rds.injected() >= 20 && rig.cw.injected() >= 20);
}
