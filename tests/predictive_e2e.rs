//! Predictive pre-scaling end to end: the built `elasticrds run --once` against moto (RDS) and
//! ministack (CloudWatch), with two and a half days of CPU history put through real
//! PutMetricData calls: a rise every day at the time of day that starts a few minutes from
//! now (two replicas at 90 %, one of which no longer exists: CloudWatch keeps its data), and the
//! last hour as quiet as the rest of the day (a total of 60 %: one replica at 60 % now that the
//! other is gone). The rules alone keep one replica.
//! - `forecast_only`: nothing is created; the decision says the forecast would raise the count,
//!   and `/metrics`-bound values are in the JSON log;
//! - `active`: replicas are created before the rise, the decision driven by the forecast;
//! - `active` without enough history: the forecast abstains and nothing is created;
//! - `plan` in both modes prints the forecast and whether it raised the count, changing nothing;
//! - a restart takes the lead time learned earlier from the master's tag as its horizon.
//!
//! And the service itself (`run`, not `--once`) in `forecast_only`: its `/metrics` exports what
//! the forecast would have done (the replicas it sizes for, above the count the rules keep) and
//! passes `promtool check metrics`, tick after tick, while nothing is created; a webhook is
//! told once that the forecast would have raised the count; a reload that removes the section
//! removes the forecast's series.

mod support;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, DurationRound, Utc};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "pe:\n  master_node: {identifier: snap-pe, instance_id: pe-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: pe-s01, instance_class: db.t3.micro}\n    - {id: pe-s02, instance_class: db.t3.micro}\n    - {id: pe-s03, instance_class: db.t3.micro}\n";

fn policy(mode: &str, min_history: &str) -> String {
    format!(
        "cluster: pe\nmin_replicas: 1\nmax_replicas: 3\nrules:\n  - metric: cpu\n    target: 60\nwarmup:\n  duration: 0s\npredictive:\n  mode: {mode}\n  target: 60\n  history: 3d\n  min_history: {min_history}\n  lead_time: 10m\n  margin: 10m\n  learn_lead_time: false\n"
    )
}

struct Env {
    moto: support::Moto,
    ms: support::Ministack,
    rds: aws_sdk_rds::Client,
    cw: aws_sdk_cloudwatch::Client,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let moto = support::Moto::start();
        let ms = support::Ministack::start();
        let rds = support::rds_client(&moto.endpoint());
        let cw = support::cloudwatch_client(&ms.endpoint());
        support::block_on(async {
            support::create_db_instance(&rds, "pe-m01", "mysql").await;
            rds.create_db_instance_read_replica()
                .db_instance_identifier("pe-s01")
                .source_db_instance_identifier("pe-m01")
                .db_instance_class("db.t3.micro")
                .send()
                .await
                .expect("create replica");
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elasticrds.yaml"), CONFIG).unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        Env {
            moto,
            ms,
            rds,
            cw,
            dir,
        }
    }

    fn replicas(&self) -> Vec<String> {
        support::block_on(async {
            let out = self
                .rds
                .describe_db_instances()
                .send()
                .await
                .expect("describe");
            out.db_instances()
                .iter()
                .filter_map(|i| i.db_instance_identifier())
                .filter(|id| id.starts_with("pe-s"))
                .map(str::to_string)
                .collect()
        })
    }

    /// `elasticrds run` with `policy` as the cluster's policy, a JSON log, and `args`.
    fn run(&self, policy: &str, args: &[&str]) -> Command {
        std::fs::write(self.dir.path().join("policies/pe.yaml"), policy).unwrap();
        let mut cmd: Command = support::elasticrds(Some(&self.moto.endpoint()));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", self.ms.endpoint())
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(self.dir.path().join("elasticrds.yaml"))
            .arg("run")
            .arg("--policies")
            .arg(self.dir.path().join("policies"))
            .args(["--log-format", "json"])
            .args(args);
        cmd
    }

    /// `plan pe ARGS` with `policy`.
    fn plan_output(&self, policy: &str, args: &[&str]) -> std::process::Output {
        std::fs::write(self.dir.path().join("policies/pe.yaml"), policy).unwrap();
        support::elasticrds(Some(&self.moto.endpoint()))
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", self.ms.endpoint())
            .arg("--config")
            .arg(self.dir.path().join("elasticrds.yaml"))
            .args(["plan", "pe", "--policies"])
            .arg(self.dir.path().join("policies"))
            .args(args)
            .output()
            .expect("plan")
    }

    /// `plan pe` with `policy`: its exit status and what it printed.
    fn plan(&self, policy: &str) -> (bool, String) {
        let out = self.plan_output(policy, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `plan pe --output json` with `policy`: its exit status and the JSON it printed (with
    /// the errors after it when it failed).
    fn plan_json(&self, policy: &str) -> (bool, String) {
        let out = self.plan_output(policy, &["--output", "json"]);
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            text.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        (out.status.success(), text)
    }

    /// `run --once` with `policy`; its exit status and JSON log.
    fn run_once(&self, policy: &str) -> (bool, String) {
        let out = self.run(policy, &["--once"]).output().expect("run --once");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// CPU history: every 5 minutes over the last `days` (and every minute over the last 12
    /// minutes) for pe-s01 and pe-s02; 90 % for both in the daily rise that starts 3 minutes
    /// from now (a day and two days ago), 30 % otherwise; pe-s02 reports nothing in the last
    /// hour (it no longer exists) and pe-s01 carries the quiet total alone (60 %).
    fn put_history(&self, days: f64) {
        let five = chrono::Duration::minutes(5);
        let now = Utc::now()
            .duration_trunc(chrono::Duration::minutes(1))
            .unwrap();
        let in_rise = |t: DateTime<Utc>| {
            (1..=2).any(|k| {
                let start = now + chrono::Duration::minutes(3) - chrono::Duration::days(k);
                t >= start && t < start + chrono::Duration::minutes(30)
            })
        };
        let mut data = Vec::new();
        let n = (days * 288.0) as i32;
        for id in ["pe-s01", "pe-s02"] {
            for k in 1..=n {
                let at = now - five * k;
                if id == "pe-s02" && now - at < chrono::Duration::hours(1) {
                    continue;
                }
                let alone = now - at < chrono::Duration::hours(1);
                let quiet = if alone { 60.0 } else { 30.0 };
                data.push(datum(id, at, if in_rise(at) { 90.0 } else { quiet }));
            }
        }
        for k in 0..12 {
            data.push(datum("pe-s01", now - chrono::Duration::minutes(k), 60.0));
        }
        support::block_on(async {
            for chunk in data.chunks(500) {
                self.cw
                    .put_metric_data()
                    .namespace("AWS/RDS")
                    .set_metric_data(Some(chunk.to_vec()))
                    .send()
                    .await
                    .expect("PutMetricData");
            }
        });
    }
}

fn datum(id: &str, at: DateTime<Utc>, value: f64) -> MetricDatum {
    MetricDatum::builder()
        .metric_name("CPUUtilization")
        .dimensions(
            Dimension::builder()
                .name("DBInstanceIdentifier")
                .value(id)
                .build(),
        )
        .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp() + 5))
        .value(value)
        .unit(StandardUnit::Percent)
        .build()
}

/// The JSON log lines that mention the forecast.
fn decision_reasons(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .filter(|l| l.contains("forecast"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_forecast_reports_then_creates_replicas_before_a_daily_rise() {
    let env = Env::new();
    env.put_history(2.5);

    // forecast_only: decided and reported, nothing created.
    let (ok, log) = env.run_once(&policy("forecast_only", "1d"));
    assert!(ok, "{log}");
    assert_eq!(env.replicas(), ["pe-s01"], "forecast_only created: {log}");
    let said = decision_reasons(&log).join("\n");
    assert!(
        said.contains("would raise the count (forecast_only)"),
        "no forecast reason in the log:\n{log}"
    );

    // plan: the same decision printed with the forecast, and nothing changed.
    for (mode, effect) in [
        ("forecast_only", "would raise the count (forecast_only)"),
        ("active", "raised the count"),
    ] {
        let (ok, out) = env.plan(&policy(mode, "1d"));
        assert!(ok, "{out}");
        let line = out
            .lines()
            .find(|l| l.contains("forecast (seasonal): peak load"))
            .unwrap_or_else(|| panic!("plan printed no forecast:\n{out}"));
        assert!(line.ends_with(effect), "{mode}: {line}\n{out}");
        assert_eq!(env.replicas(), ["pe-s01"], "plan created: {out}");
    }

    // active, but asking for more history than there is: abstains, nothing created.
    let (ok, log) = env.run_once(&policy("active", "3d"));
    assert!(ok, "{log}");
    assert_eq!(
        env.replicas(),
        ["pe-s01"],
        "an abstaining forecast created: {log}"
    );
    assert!(
        decision_reasons(&log).join("\n").contains("abstains"),
        "{log}"
    );

    // active: replicas created ahead of the rise (the current load needs one).
    let (ok, log) = env.run_once(&policy("active", "1d"));
    assert!(ok, "{log}");
    let now = env.replicas();
    assert!(
        now.len() >= 2,
        "no replica created ahead of the rise: {now:?}\n{log}"
    );
    let said = decision_reasons(&log).join("\n");
    assert!(said.contains("raised the count"), "{log}");
    println!("{said}");
}

/// The value of `name{cluster="pe"}` in a Prometheus text exposition.
fn gauge(body: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{cluster=\"pe\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
}

/// The running service in `forecast_only`: `/metrics` says what the forecast would have done
/// (replicas sized for the coming rise's 180 % of CPU at 60 % each, more than the one replica
/// the rules keep and the service wants), over several ticks, and nothing is created.
#[test]
fn the_service_in_forecast_only_exports_what_it_would_have_done() {
    let env = Env::new();
    env.put_history(2.5);
    // The forecast's notification goes to a webhook on loopback.
    let hook = support::Hook::start(support::HookMode::Ok);
    let notify = format!(
        "notifications:\n  sinks:\n    - name: chat\n      webhook: {{url: '{}'}}\n      events: [forecast_raised]\n",
        hook.url()
    );
    std::fs::write(
        env.dir.path().join("elasticrds.yaml"),
        format!("{CONFIG}{notify}"),
    )
    .unwrap();
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let log_path = env.dir.path().join("service.log");
    let f = std::fs::File::create(&log_path).unwrap();
    let mut child = env
        .run(
            &policy("forecast_only", "1d"),
            &["--interval", "2s", "--listen", &listen],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .spawn()
        .expect("spawn elasticrds run");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let metrics = || support::http_request(port, "GET", "/metrics").unwrap_or_default();
    let ticks = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("elasticrds_decisions_total{cluster=\"pe\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    // Three decisions made, the forecast exported.
    let deadline = Instant::now() + Duration::from_secs(90);
    let body = loop {
        let body = metrics();
        if ticks(&body) >= 3.0 && gauge(&body, "elasticrds_forecast_replicas").is_some() {
            break body;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!(
                "no forecast on /metrics after three decisions:\n{body}\n{}",
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // A reload that removes the predictive section: the forecast's series go with it.
    let plain = policy("forecast_only", "1d");
    let plain = &plain[..plain.find("predictive:").unwrap()];
    std::fs::write(env.dir.path().join("policies/pe.yaml"), plain).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let after = metrics();
        let reloaded = log().contains("config reloaded");
        if reloaded && ticks(&after) > ticks(&body) + 1.0 {
            break after;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("no tick after the reload:\n{after}\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let left: Vec<&str> = (after.lines())
        .filter(|l| l.starts_with("elasticrds_forecast_"))
        .collect();
    assert!(
        left.is_empty(),
        "forecast series after the reload: {left:?}"
    );
    assert!(status.success(), "run exited {status}:\n{}", log());

    let sized = gauge(&body, "elasticrds_forecast_replicas").unwrap();
    let wanted = gauge(&body, "elasticrds_desired_replicas");
    assert!(
        (2.0..=3.0).contains(&sized),
        "forecast sized {sized} replicas:\n{body}"
    );
    assert_eq!(
        wanted,
        Some(1.0),
        "forecast_only changed the target:\n{body}"
    );
    let load = gauge(&body, "elasticrds_forecast_load").expect("forecast_load");
    assert!(
        load > 1.2 && load <= 1.8 + 1e-9,
        "expected peak load {load} (1.8 = two replicas at 90 %):\n{body}"
    );
    assert_eq!(
        gauge(&body, "elasticrds_forecast_horizon_seconds"),
        Some(1200.0),
        "horizon: lead time 10m + margin 10m:\n{body}"
    );
    assert_eq!(
        gauge(&body, "elasticrds_forecast_lead_time_learned"),
        Some(0.0),
        "learn_lead_time is off: the configured lead time:\n{body}"
    );
    let error = gauge(&body, "elasticrds_forecast_error_ratio").expect("forecast_error_ratio");
    // Below the limit (the default 0.3): a forecaster over it abstains and exports no size.
    assert!((0.0..0.3).contains(&error), "forecast error {error}");
    assert_eq!(
        support::promtool_check_metrics(&body),
        "",
        "promtool check metrics printed something"
    );
    assert_eq!(
        env.replicas(),
        ["pe-s01"],
        "forecast_only created:\n{}",
        log()
    );
    assert!(
        log().contains("would raise the count (forecast_only)"),
        "no forecast reason in the log:\n{}",
        log()
    );
    // Told once (the episode lasts), as what it would have done; SIGTERM drained the queue.
    let told: Vec<serde_json::Value> = (hook.got().iter())
        .map(|g| serde_json::from_str(&g.body).expect("the webhook's JSON"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}\n{}", log());
    let n = &told[0];
    assert_eq!(n["type"], "forecast_raised", "{n}");
    assert_eq!(
        (
            n["detail"]["from"].as_u64(),
            n["detail"]["active"].as_bool()
        ),
        (Some(1), Some(false)),
        "{n}"
    );
    let text = n["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("pe: the forecast would raise the replica count from 1 to ")
            && text.ends_with("; forecast_only: nothing changed"),
        "{text}"
    );
}

/// A restart starts from the lead times the fleet taught an earlier run: three measured
/// create-to-available times (25, 26 and 30 minutes) in the master's `elasticrds:lead-times`
/// tag make the horizon their 90th percentile (30 minutes) plus the 10-minute margin, where the
/// configured lead time (10 minutes) made it 20; with `learn_lead_time: false` the tag is not
/// used. `plan --output json` shows the horizon the daemon's tick would use.
#[test]
fn a_restart_uses_the_lead_time_learned_from_the_masters_tag() {
    let env = Env::new();
    env.put_history(2.5);
    support::block_on(async {
        let out = (env.rds.describe_db_instances())
            .db_instance_identifier("pe-m01")
            .send()
            .await
            .expect("describe master");
        let arn = out.db_instances()[0].db_instance_arn().unwrap().to_string();
        let tag = aws_sdk_rds::types::Tag::builder()
            .key("elasticrds:lead-times")
            .value("1500 1560 1800")
            .build();
        (env.rds.add_tags_to_resource())
            .resource_name(arn)
            .tags(tag)
            .send()
            .await
            .expect("tag the master");
    });
    let horizon = |learn: bool| {
        let p = policy("forecast_only", "1d").replace(
            "learn_lead_time: false",
            &format!("learn_lead_time: {learn}"),
        );
        let (ok, out) = env.plan_json(&p);
        assert!(ok, "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let f = &v["decision"]["forecast"];
        (f["horizon_secs"].as_u64(), f["lead_learned"].as_bool())
    };
    assert_eq!(horizon(true), (Some(1800 + 600), Some(true)));
    assert_eq!(horizon(false), (Some(600 + 600), Some(false)));
    assert_eq!(env.replicas(), ["pe-s01"]);
}
