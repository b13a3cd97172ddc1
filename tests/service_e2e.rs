//! End to end: the built `elasticrds run` against moto (RDS) and ministack (CloudWatch), with
//! CPU datapoints put through the SDK. One cluster, 4 replicas configured, policy min 1 max 4,
//! cpu target 60 %, step 1, short cooldowns (out 20 s, in 40 s):
//! 1. high CPU, a long-running `run`: replicas are created one step per action, the second only
//!    after the scale-out cooldown; /metrics shows decisions, actions and AWS calls; SIGTERM
//!    exits 0;
//! 2. a restarted `run --once` inside the cooldown creates nothing (state from the master's tags)
//!    and logs the cooldown as its reason (JSON logs);
//! 3. low CPU, another `run`: the scale-in comes only once the scale-in cooldown has passed
//!    since the last scale-out, one replica per action;
//!
//! and the foreign replica of the master is never touched; created replicas carry managed tags.
//!
//! Day two (issue 18): a running `run` reloads a changed policy on SIGHUP and on a file change,
//! refuses a broken edit and keeps the old policy acting; an operator's pause written by the
//! CLI holds a running service, a second copy and `plan` until it expires or is resumed; `init`
//! adopts the master and its replicas into a config that validates and with which `plan`
//! changes nothing.
//!
//! Notifications (issue 19): a scale-out is put on an EventBridge bus of moto and read back
//! through a rule to an SQS queue, with boto3 (an independent client).

mod support;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, DurationRound, Utc};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "e2e:\n  master_node: {identifier: snap-e2e, instance_id: e2e-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: e2e-s01, instance_class: db.t3.micro}\n    - {id: e2e-s02, instance_class: db.t3.micro}\n    - {id: e2e-s03, instance_class: db.t3.micro}\n    - {id: e2e-s04, instance_class: db.t3.micro}\n";

const POLICY: &str = "cluster: e2e\nmin_replicas: 1\nmax_replicas: 4\nperiod: 60s\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  cooldown: 20s\n  max_step: 1\n  stabilization: 0s\nscale_in:\n  cooldown: 40s\n  max_step: 1\n  stabilization: 0s\nwarmup:\n  duration: 0s\n";

struct Env {
    moto: support::Moto,
    ms: support::Ministack,
    rds: aws_sdk_rds::Client,
    cw: aws_sdk_cloudwatch::Client,
    dir: tempfile::TempDir,
}

impl Env {
    /// The binary with the config and the emulators, running `args` (a command and its flags).
    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = support::elasticrds(Some(&self.moto.endpoint()));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", self.ms.endpoint())
            .arg("--config")
            .arg(self.dir.path().join("elasticrds.yaml"))
            .args(args)
            .current_dir(self.dir.path());
        cmd
    }

    fn policy_file(&self) -> std::path::PathBuf {
        self.dir.path().join("policies/e2e.yaml")
    }

    /// Rewrite the policy with another CPU target.
    fn set_target(&self, target: u32) {
        let text = POLICY.replace("target: 60", &format!("target: {target}"));
        std::fs::write(self.policy_file(), text).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = support::elasticrds(Some(&self.moto.endpoint()));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", self.ms.endpoint())
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(self.dir.path().join("elasticrds.yaml"))
            .arg("run")
            .arg("--policies")
            .arg(self.dir.path().join("policies"))
            .args(args);
        cmd
    }

    /// Existing instances: id → tags.
    fn instances(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        support::block_on(async {
            let out = self
                .rds
                .describe_db_instances()
                .send()
                .await
                .expect("describe");
            out.db_instances()
                .iter()
                .map(|i| {
                    let tags = i
                        .tag_list()
                        .iter()
                        .map(|t| {
                            (
                                t.key().unwrap_or("").to_string(),
                                t.value().unwrap_or("").to_string(),
                            )
                        })
                        .collect();
                    (i.db_instance_identifier().unwrap_or("").to_string(), tags)
                })
                .collect()
        })
    }

    fn replicas(&self) -> Vec<String> {
        self.instances()
            .into_keys()
            .filter(|k| k.starts_with("e2e-s"))
            .collect()
    }

    fn master_time(&self, key: &str) -> Option<DateTime<Utc>> {
        let tags = self.instances().remove("e2e-m01")?;
        DateTime::parse_from_rfc3339(tags.get(key)?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Fresh CPU datapoints at `value` for every configured replica and the master, one per
    /// minute over the last 12 minutes (ministack is reset first so old values do not mix in).
    fn put_cpu(&self, value: f64) {
        self.ms.reset();
        support::block_on(async {
            let minute = chrono::Duration::minutes(1);
            let now = Utc::now().duration_trunc(minute).unwrap();
            let mut data = Vec::new();
            for id in ["e2e-m01", "e2e-s01", "e2e-s02", "e2e-s03", "e2e-s04"] {
                for k in 0..12 {
                    let at = now - minute * k + chrono::Duration::seconds(5);
                    data.push(
                        MetricDatum::builder()
                            .metric_name("CPUUtilization")
                            .dimensions(
                                Dimension::builder()
                                    .name("DBInstanceIdentifier")
                                    .value(id)
                                    .build(),
                            )
                            .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
                            .value(value)
                            .unit(StandardUnit::Percent)
                            .build(),
                    );
                }
            }
            self.cw
                .put_metric_data()
                .namespace("AWS/RDS")
                .set_metric_data(Some(data))
                .send()
                .await
                .expect("PutMetricData");
        });
    }
}

fn setup() -> Env {
    let moto = support::Moto::start();
    let ms = support::Ministack::start();
    let rds = support::rds_client(&moto.endpoint());
    let cw = support::cloudwatch_client(&ms.endpoint());
    support::block_on(async {
        support::create_db_instance(&rds, "e2e-m01", "mysql").await;
        for id in ["e2e-s01", "e2e-x01"] {
            rds.create_db_instance_read_replica()
                .db_instance_identifier(id)
                .source_db_instance_identifier("e2e-m01")
                .db_instance_class("db.t3.micro")
                .send()
                .await
                .expect("create replica");
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("elasticrds.yaml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(dir.path().join("policies/e2e.yaml"), POLICY).unwrap();
    Env {
        moto,
        ms,
        rds,
        cw,
        dir,
    }
}

struct Proc {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Proc {
    fn spawn(env: &Env, name: &str) -> Proc {
        Proc::spawn_with(env, name, &[])
    }
    fn spawn_with(env: &Env, name: &str, extra: &[&str]) -> Proc {
        let port = support::free_port();
        let log = env.dir.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["--interval", "2s", "--listen", &listen];
        args.extend_from_slice(extra);
        let child = env
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .expect("spawn elasticrds run");
        Proc { child, port, log }
    }
    fn metrics(&self) -> String {
        support::http_request(self.port, "GET", "/metrics").unwrap_or_default()
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig}");
    }
    /// SIGTERM; the exit status (bounded wait).
    fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        panic!("run did not exit within 30 s of SIGTERM\n{}", self.log());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(
    what: &str,
    timeout: Duration,
    log: &dyn Fn() -> String,
    mut f: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}\n--- log ---\n{}", log());
}

fn metric(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn run_scales_out_and_in_on_moto_and_ministack_with_cooldowns_across_restarts() {
    let env = setup();
    assert_eq!(env.replicas(), vec!["e2e-s01"]);

    // ---- 1. high CPU: one step per action, the next only after the 20 s cooldown.
    env.put_cpu(90.0);
    let p1 = Proc::spawn(&env, "p1");
    wait_until("e2e-s02", Duration::from_secs(60), &|| p1.log(), || {
        env.replicas().len() >= 2
    });
    assert_eq!(
        env.replicas(),
        vec!["e2e-s01", "e2e-s02"],
        "one step: {}",
        p1.log()
    );
    let t_s02 = Instant::now();
    wait_until("e2e-s03", Duration::from_secs(90), &|| p1.log(), || {
        env.replicas().len() >= 3
    });
    let gap = t_s02.elapsed();
    assert!(
        gap >= Duration::from_secs(15),
        "second scale-out {gap:?} after the first, inside the 20 s cooldown"
    );
    assert_eq!(env.replicas(), vec!["e2e-s01", "e2e-s02", "e2e-s03"]);
    let out_at = env
        .master_time("elasticrds:last-scale-out")
        .expect("state tag");
    wait_until(
        "metrics scrape",
        Duration::from_secs(20),
        &|| p1.log(),
        || metric(&p1.metrics(), "elasticrds_replicas{cluster=\"e2e\"}") == Some(3.0),
    );
    let m = p1.metrics();
    for (line, want) in [
        (
            "elasticrds_actions_total{action=\"create_replica\",cluster=\"e2e\",result=\"ok\"}",
            Some(2.0),
        ),
        ("elasticrds_max_replicas{cluster=\"e2e\"}", Some(4.0)),
        ("elasticrds_min_replicas{cluster=\"e2e\"}", Some(1.0)),
        (
            "elasticrds_cpu_utilization_ratio{cluster=\"e2e\"}",
            Some(0.9),
        ),
        ("elasticrds_cpu_target_ratio{cluster=\"e2e\"}", Some(0.6)),
    ] {
        assert_eq!(metric(&m, line), want, "{line}\n{m}");
    }
    assert!(
        metric(
            &m,
            "elasticrds_decisions_total{cluster=\"e2e\",direction=\"out\""
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "elasticrds_aws_calls_total{operation=\"GetMetricData\",service=\"cloudwatch\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "elasticrds_aws_calls_total{operation=\"DescribeDBInstances\",service=\"rds\"}"
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{m}"
    );
    assert!(metric(&m, "elasticrds_last_successful_tick_timestamp_seconds").unwrap_or(0.0) > 1e9);
    assert!(support::http_request(p1.port, "GET", "/readyz").is_ok());
    let status = p1.stop();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");

    // ---- 2. a restarted process inside the cooldown creates nothing, and says why.
    let out = env
        .command(&["--once", "--log-format", "json"])
        .output()
        .expect("run --once");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "--once: {stderr}");
    let since_out = Utc::now() - out_at;
    if since_out < chrono::Duration::seconds(19) {
        assert_eq!(
            env.replicas().len(),
            3,
            "created inside the cooldown: {stderr}"
        );
        let decision = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "decision")
            .unwrap_or_else(|| panic!("no decision logged as JSON: {stderr}"));
        assert_eq!(decision["reason"], "cooldown", "{decision}");
        assert_eq!(decision["cluster"], "e2e");
        assert_eq!(decision["desired"], 3);
    } else {
        panic!("too slow to test the restart inside the cooldown ({since_out}); log:\n{stderr}");
    }

    // ---- 3. low CPU: scale-in only after the 40 s scale-in cooldown, one per action.
    env.put_cpu(10.0);
    let p3 = Proc::spawn(&env, "p3");
    wait_until("a scale-in", Duration::from_secs(90), &|| p3.log(), || {
        env.replicas().len() < 3
    });
    assert_eq!(
        env.replicas(),
        vec!["e2e-s01", "e2e-s02"],
        "deleted from the end, one step"
    );
    let in_at = env
        .master_time("elasticrds:last-scale-in")
        .expect("scale-in tag");
    let out_at2 = env.master_time("elasticrds:last-scale-out").unwrap();
    assert_eq!(out_at2, out_at, "no scale-out since");
    assert!(
        in_at - out_at >= chrono::Duration::seconds(40),
        "scale-in at {in_at} only {} after the scale-out at {out_at}",
        in_at - out_at
    );
    wait_until(
        "metrics after scale-in",
        Duration::from_secs(20),
        &|| p3.log(),
        || metric(&p3.metrics(), "elasticrds_replicas{cluster=\"e2e\"}") == Some(2.0),
    );
    let m = p3.metrics();
    assert_eq!(
        metric(
            &m,
            "elasticrds_actions_total{action=\"delete_replica\",cluster=\"e2e\",result=\"ok\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        m.contains("elasticrds_decisions_total{cluster=\"e2e\",direction=\"in\""),
        "{m}"
    );
    assert!(
        m.contains(
            "elasticrds_decisions_total{cluster=\"e2e\",direction=\"none\",reason=\"cooldown\"}"
        ),
        "the wait was a cooldown hold: {m}"
    );
    assert_eq!(
        metric(&m, "elasticrds_cpu_utilization_ratio{cluster=\"e2e\"}"),
        Some(0.1)
    );
    assert!(p3.stop().success());

    // ---- Never touched: the foreign replica and the master; created replicas are tagged.
    let all = env.instances();
    let foreign = all.get("e2e-x01").expect("foreign replica still exists");
    assert!(
        !foreign.keys().any(|k| k.starts_with("elasticrds:")),
        "foreign replica tagged: {foreign:?}"
    );
    assert!(all.contains_key("e2e-m01"));
    let s02 = &all["e2e-s02"];
    assert_eq!(
        s02.get("elasticrds:managed-by").map(String::as_str),
        Some("elasticrds")
    );
    assert_eq!(
        s02.get("elasticrds:cluster").map(String::as_str),
        Some("e2e")
    );
}

/// Ownership (issue 12) in the service: a standalone instance (`e2e-s02`) and another master's
/// replica (`e2e-s03`, of `other-m01`) hold configured ids. Under high CPU `run` scales out
/// into the one usable free slot (`e2e-s04`) only, under low CPU it scales in by deleting
/// `e2e-s04` only; the two are never touched (the SDK's describe is the witness), exported as
/// `elasticrds_conflicting_instances` 2, and logged once, not every tick.
#[test]
fn run_never_touches_instances_that_are_not_replicas_of_the_master() {
    let env = setup();
    support::block_on(async {
        support::create_db_instance(&env.rds, "other-m01", "mysql").await;
        support::create_db_instance(&env.rds, "e2e-s02", "mysql").await;
        env.rds
            .create_db_instance_read_replica()
            .db_instance_identifier("e2e-s03")
            .source_db_instance_identifier("other-m01")
            .db_instance_class("db.t3.micro")
            .send()
            .await
            .expect("create replica of other-m01");
    });
    let before = env.instances();
    let untouched = |why: &str| {
        let now = env.instances();
        for id in ["e2e-s02", "e2e-s03", "other-m01"] {
            assert_eq!(now.get(id), before.get(id), "{id} changed ({why})");
        }
    };
    env.put_cpu(90.0);
    let p = Proc::spawn(&env, "conflicts");
    wait_until("e2e-s04", Duration::from_secs(60), &|| p.log(), || {
        env.replicas().contains(&"e2e-s04".to_string())
    });
    wait_until(
        "the conflict gauge at 2 and the members (s01, s04) counted as 2 replicas",
        Duration::from_secs(20),
        &|| p.log(),
        || {
            let m = p.metrics();
            metric(&m, "elasticrds_conflicting_instances{cluster=\"e2e\"}") == Some(2.0)
                && metric(&m, "elasticrds_replicas{cluster=\"e2e\"}") == Some(2.0)
        },
    );
    let m = p.metrics();
    assert_eq!(
        metric(&m, "elasticrds_max_replicas{cluster=\"e2e\"}"),
        Some(2.0),
        "the maximum shrinks by the blocked slots:\n{m}"
    );
    untouched("scale-out");

    // Low CPU: the scale-in deletes e2e-s04 (the last usable slot), never s03 or s02.
    env.put_cpu(5.0);
    wait_until(
        "e2e-s04 deleted",
        Duration::from_secs(120),
        &|| p.log(),
        || !env.replicas().contains(&"e2e-s04".to_string()),
    );
    std::thread::sleep(Duration::from_secs(5));
    untouched("scale-in");
    assert!(env.replicas().contains(&"e2e-s01".to_string()));
    let log = p.log();
    assert!(p.stop().success());
    for id in ["e2e-s02", "e2e-s03"] {
        let lines = log
            .lines()
            .filter(|l| l.contains(&format!("{id} holds a configured replica id")))
            .count();
        assert_eq!(lines, 1, "{id} logged {lines} times, not once:\n{log}");
    }
}

/// One rule for which policy governs a cluster (issue 12): a cluster no policy file names is
/// observed only. With the load asking for more replicas, `run` (no policy for `e2e`) changes
/// nothing and says at start that the cluster is observed only; `plan` shows the same; with
/// `--default-policy builtin` the same tick scales out. A `--policies` directory that does not
/// exist is bad input (exit 2) for `run` and `plan` alike.
#[test]
fn a_cluster_no_policy_names_is_observed_not_scaled() {
    let env = setup();
    std::fs::remove_file(env.dir.path().join("policies/e2e.yaml")).unwrap();
    env.put_cpu(95.0);
    let once = |extra: &[&str]| {
        let mut args = vec!["--once"];
        args.extend_from_slice(extra);
        env.command(&args).output().expect("run --once")
    };
    let out = once(&[]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("cluster observed only") && log.contains("e2e"),
        "run does not say the cluster is observed only:\n{log}"
    );
    assert_eq!(env.replicas(), vec!["e2e-s01"], "{log}");

    // plan says the same, and would not execute.
    let plan = support::elasticrds(Some(&env.moto.endpoint()))
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", env.ms.endpoint())
        .current_dir(env.dir.path())
        .args(["--config", "elasticrds.yaml", "plan", "e2e"])
        .output()
        .expect("plan");
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        text.contains("observed only") && text.contains("would not be executed"),
        "{text}"
    );

    // An explicit default policy governs it: the same load scales out. (A file with
    // `cluster: "*"`; `builtin` would wait out its 10-minute warm-up of the new e2e-s01.)
    let default = env.dir.path().join("default.yaml");
    std::fs::write(
        &default,
        "cluster: \"*\"\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  max_step: 1\n  stabilization: 0s\nwarmup:\n  duration: 0s\n",
    )
    .unwrap();
    let out = once(&["--default-policy", default.to_str().unwrap()]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("cluster managed"), "{log}");
    assert_eq!(env.replicas(), vec!["e2e-s01", "e2e-s02"], "{log}");

    // A --policies directory that does not exist: exit 2 for run and plan alike.
    let missing = env.dir.path().join("nowhere");
    let missing = missing.to_str().unwrap();
    let run = support::elasticrds(Some(&env.moto.endpoint()))
        .args(["--config"])
        .arg(env.dir.path().join("elasticrds.yaml"))
        .args(["run", "--once", "--policies", missing])
        .output()
        .unwrap();
    let plan = support::elasticrds(Some(&env.moto.endpoint()))
        .args(["--config"])
        .arg(env.dir.path().join("elasticrds.yaml"))
        .args(["plan", "e2e", "--policies", missing])
        .output()
        .unwrap();
    for (what, out) in [("run", run), ("plan", plan)] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("nowhere") && err.contains("--policies"),
            "{what}: {err}"
        );
    }
}

/// A CLI command's output; fails with its stderr unless it exits with `code`.
fn expect_exit(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().expect("run elasticrds");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{cmd:?}:\n{text}");
    text
}

#[test]
fn run_reloads_its_policy_on_sighup_and_on_a_file_change_and_refuses_a_broken_edit() {
    let env = setup();
    env.put_cpu(50.0);
    // ---- SIGHUP (the file check off, so that only the signal reloads).
    let p = Proc::spawn_with(&env, "hup", &["--reload-check", "0s"]);
    let target = |p: &Proc| metric(&p.metrics(), "elasticrds_cpu_target_ratio{cluster=\"e2e\"}");
    wait_until(
        "the first tick",
        Duration::from_secs(30),
        &|| p.log(),
        || target(&p) == Some(0.6),
    );
    assert_eq!(
        env.replicas(),
        vec!["e2e-s01"],
        "50 % is steady at target 60"
    );
    env.set_target(30);
    p.signal("-HUP");
    wait_until(
        "the new target",
        Duration::from_secs(20),
        &|| p.log(),
        || target(&p) == Some(0.3),
    );
    wait_until(
        "a scale-out under the new target",
        Duration::from_secs(30),
        &|| p.log(),
        || env.replicas().len() == 2,
    );
    let log = p.log();
    assert!(
        log.contains("config reloaded") && log.contains("trigger=\"SIGHUP\""),
        "{log}"
    );
    assert!(log.contains("policy changed: e2e"), "{log}");
    assert_eq!(
        metric(&p.metrics(), "elasticrds_config_last_reload_successful"),
        Some(1.0)
    );

    // ---- A broken edit: refused, located, the old policy keeps acting.
    std::fs::write(
        env.policy_file(),
        POLICY.replace("target: 60", "target: lots"),
    )
    .unwrap();
    p.signal("-HUP");
    wait_until("the refusal", Duration::from_secs(20), &|| p.log(), || {
        p.log().contains("config reload refused")
    });
    let log = p.log();
    assert!(
        log.contains("policies/e2e.yaml:"),
        "the error names the file: {log}"
    );
    assert!(log.contains("target"), "and the field: {log}");
    let m = p.metrics();
    assert_eq!(
        metric(&m, "elasticrds_config_last_reload_successful"),
        Some(0.0),
        "{m}"
    );
    assert!(
        metric(
            &m,
            "elasticrds_config_last_reload_success_timestamp_seconds"
        )
        .unwrap()
            > 1e9
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(target(&p), Some(0.3), "the old policy keeps acting");
    assert!(p.stop().success());

    // ---- A file change, no signal: loaded once the save has held still.
    env.set_target(30);
    let p = Proc::spawn_with(&env, "watch", &["--reload-check", "1s"]);
    wait_until(
        "the first tick",
        Duration::from_secs(30),
        &|| p.log(),
        || target(&p) == Some(0.3),
    );
    env.set_target(80);
    wait_until(
        "the reload on a file change",
        Duration::from_secs(20),
        &|| p.log(),
        || target(&p) == Some(0.8),
    );
    let log = p.log();
    assert!(log.contains("trigger=\"file change\""), "{log}");
    assert_eq!(
        metric(&p.metrics(), "elasticrds_config_last_reload_successful"),
        Some(1.0)
    );
    assert!(p.stop().success());
}

#[test]
fn a_pause_holds_a_running_service_a_second_copy_and_plan_until_it_ends() {
    let env = setup();
    support::block_on(async {
        for id in ["e2e-s02", "e2e-s03"] {
            env.rds
                .create_db_instance_read_replica()
                .db_instance_identifier(id)
                .source_db_instance_identifier("e2e-m01")
                .db_instance_class("db.t3.micro")
                .send()
                .await
                .expect("create replica");
        }
    });
    // Scale-in at once whenever allowed: no cooldown, no stabilization.
    let policy = POLICY.replace("cooldown: 40s", "cooldown: 0s");
    std::fs::write(env.policy_file(), &policy).unwrap();
    env.put_cpu(5.0);
    let paused_at = Instant::now();
    let out = expect_exit(
        env.cli(&[
            "pause",
            "e2e",
            "--direction",
            "in",
            "--for",
            "12s",
            "--reason",
            "migration",
        ])
        .env("USER", "ops"),
        0,
    );
    assert!(out.contains("scale-in paused by ops until"), "{out}");
    // `plan` and a second copy (`run --once`) hold, and say why.
    let plan = expect_exit(&mut env.cli(&["plan", "e2e"]), 0);
    assert!(
        plan.contains("[paused] held: scale-in paused by ops until"),
        "{plan}"
    );
    assert!(plan.contains("(migration)"), "{plan}");
    let status = expect_exit(&mut env.cli(&["status", "e2e"]), 0);
    assert!(
        status.contains("paused: scale-in paused by ops"),
        "{status}"
    );
    let once = expect_exit(env.command(&["--once"]).env("RUST_LOG", "info"), 0);
    assert!(once.contains("held: scale-in paused by ops"), "{once}");
    assert_eq!(env.replicas().len(), 3);
    // A running service holds too, then scales in once the pause has expired.
    let p = Proc::spawn(&env, "paused");
    let paused = |p: &Proc| {
        metric(
            &p.metrics(),
            "elasticrds_paused{cluster=\"e2e\",direction=\"in\"}",
        )
    };
    wait_until(
        "the pause exported",
        Duration::from_secs(30),
        &|| p.log(),
        || paused(&p) == Some(1.0),
    );
    assert_eq!(env.replicas().len(), 3, "held while paused: {}", p.log());
    wait_until(
        "the scale-in after expiry",
        Duration::from_secs(40),
        &|| p.log(),
        || env.replicas().len() == 2,
    );
    assert!(
        paused_at.elapsed() >= Duration::from_secs(11),
        "deleted before the pause expired"
    );
    assert_eq!(env.replicas(), vec!["e2e-s01", "e2e-s02"]);
    wait_until(
        "the pause over",
        Duration::from_secs(20),
        &|| p.log(),
        || paused(&p) == Some(0.0),
    );

    // Paused until resumed: held, then `resume` lets the service go on.
    expect_exit(&mut env.cli(&["pause", "e2e", "--direction", "in"]), 0);
    wait_until(
        "the pause exported",
        Duration::from_secs(20),
        &|| p.log(),
        || paused(&p) == Some(1.0),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(env.replicas().len(), 2, "held while paused: {}", p.log());
    // Scale-out paused as well, and the first replica deleted by hand: the plan would
    // create it again (and later delete the surplus one kept for it); both are held.
    expect_exit(&mut env.cli(&["pause", "e2e", "--direction", "out"]), 0);
    support::block_on(async {
        env.rds
            .delete_db_instance()
            .db_instance_identifier("e2e-s01")
            .skip_final_snapshot(true)
            .send()
            .await
            .expect("delete e2e-s01 by hand")
    });
    let plan = expect_exit(&mut env.cli(&["plan", "e2e"]), 0);
    assert!(
        plan.contains("held: create replica e2e-s01") && plan.contains("scale-out paused by"),
        "{plan}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(env.replicas(), vec!["e2e-s02"], "held: {}", p.log());
    let dry = expect_exit(&mut env.cli(&["resume", "e2e", "--dry-run"]), 0);
    assert!(dry.contains("nothing removed"), "{dry}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.replicas(), vec!["e2e-s02"], "a dry run resumes nothing");
    expect_exit(&mut env.cli(&["resume", "e2e"]), 0);
    wait_until(
        "the first slot rebuilt after resume, make-before-break",
        Duration::from_secs(30),
        &|| p.log(),
        || env.replicas() == vec!["e2e-s01"],
    );
    assert!(p.stop().success());
    let master = &env.instances()["e2e-m01"];
    assert!(!master.contains_key("elasticrds:pause-in"), "{master:?}");
}

#[test]
fn init_adopts_the_master_and_its_replicas_and_plan_then_changes_nothing() {
    let env = setup();
    // An instance already holding the first slot's id: skipped.
    support::block_on(support::create_db_instance(
        &env.rds,
        "e2e-m01-r01",
        "mysql",
    ));
    let order: Vec<String> = support::block_on(async {
        let out = env
            .rds
            .describe_db_instances()
            .db_instance_identifier("e2e-m01")
            .send()
            .await
            .expect("describe the master");
        out.db_instances()[0]
            .read_replica_db_instance_identifiers()
            .to_vec()
    });
    assert_eq!(order.len(), 2, "{order:?}");
    let adopt = env.dir.path().join("adopt");
    std::fs::create_dir(&adopt).unwrap();
    let init = |extra: &[&str]| {
        let mut cmd = support::elasticrds(Some(&env.moto.endpoint()));
        cmd.args([
            "init",
            "--master",
            "e2e-m01",
            "--cluster",
            "shop",
            "--slots",
            "2",
        ])
        .args(extra)
        .current_dir(&adopt);
        cmd
    };
    let dry = expect_exit(&mut init(&["--dry-run"]), 0);
    assert!(dry.contains("would write elasticrds.yaml"), "{dry}");
    assert!(
        !adopt.join("elasticrds.yaml").exists(),
        "a dry run writes nothing"
    );
    let tagged = |id: &str| env.instances()[id].get("elasticrds:managed-by").cloned();
    assert_eq!(tagged(&order[0]), None, "a dry run tags nothing");
    let out = expect_exit(&mut init(&[]), 0);
    assert!(
        out.contains("2 existing replica(s), 2 new slot(s)"),
        "{out}"
    );
    // The adopted replicas are marked as ours (the IAM policy deletes only those), nothing else.
    for id in &order {
        assert_eq!(tagged(id).as_deref(), Some("elasticrds"), "{id}");
    }
    assert_eq!(tagged("e2e-m01-r01"), None, "not a replica of the master");
    assert_eq!(tagged("e2e-m01"), None, "the master");
    let config = std::fs::read_to_string(adopt.join("elasticrds.yaml")).unwrap();
    let ids: Vec<&str> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- {id: "))
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let mut want: Vec<&str> = order.iter().map(String::as_str).collect();
    want.extend(["e2e-m01-r02", "e2e-m01-r03"]);
    assert_eq!(
        ids, want,
        "existing replicas first, in the master's order:\n{config}"
    );
    // Never over an existing file.
    let refused = expect_exit(&mut init(&[]), 2);
    assert!(refused.contains("exists"), "{refused}");
    assert_eq!(
        std::fs::read_to_string(adopt.join("elasticrds.yaml")).unwrap(),
        config
    );
    // The written files validate, and `plan` with them changes nothing.
    let cli = |args: &[&str]| {
        let mut cmd = support::elasticrds(Some(&env.moto.endpoint()));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", env.ms.endpoint())
            .args(args)
            .current_dir(&adopt);
        cmd
    };
    let ok = expect_exit(&mut cli(&["validate"]), 0);
    assert!(ok.contains("policies/shop.yaml: ok (cluster shop)"), "{ok}");
    let before = env.instances();
    let plan = expect_exit(&mut cli(&["plan", "shop", "--output", "json"]), 0);
    let v: serde_json::Value = serde_json::from_str(&plan).expect("plan JSON");
    assert_eq!(v["decision"]["observe_only"], true, "{v}");
    assert_eq!(v["decision"]["current"], 2, "{v}");
    assert_eq!(v["would_execute"], false, "{v}");
    assert_eq!(
        v["plan"]["actions"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );
    assert_eq!(env.instances(), before, "nothing changed on AWS");
}

/// boto3 against moto, for what the SDKs of this crate do not cover (EventBridge rules, SQS):
/// runs `script` with the endpoint as `EP` and the usual client arguments as `KW`; its stdout.
fn boto3(env: &Env, script: &str) -> String {
    let prelude = "import boto3, json, os\nEP = os.environ['EP']\nKW = dict(endpoint_url=EP, region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n";
    let out = Command::new(support::venv_bin("python"))
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("EP", env.moto.endpoint())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn a_scale_out_is_put_on_an_eventbridge_bus() {
    let env = setup();
    boto3(
        &env,
        "sqs = boto3.client('sqs', **KW); ev = boto3.client('events', **KW)\n\
         q = sqs.create_queue(QueueName='elasticrds-events')['QueueUrl']\n\
         arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
         ev.create_event_bus(Name='ops')\n\
         ev.put_rule(Name='elasticrds', EventBusName='ops', EventPattern=json.dumps({'source': ['elasticrds']}))\n\
         ev.put_targets(Rule='elasticrds', EventBusName='ops', Targets=[{'Id': 'q', 'Arn': arn}])\n",
    );
    let config = format!(
        "{CONFIG}notifications:\n  sinks:\n    - name: ops-bus\n      eventbridge: {{bus: ops}}\n      events: [scale_out, scale_in]\n"
    );
    std::fs::write(env.dir.path().join("elasticrds.yaml"), config).unwrap();
    env.put_cpu(90.0);
    let out = env
        .command(&["--once"])
        .env("AWS_ENDPOINT_URL_EVENTBRIDGE", env.moto.endpoint())
        .output()
        .expect("run --once");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{log}");
    assert_eq!(env.replicas(), vec!["e2e-s01", "e2e-s02"], "{log}");
    let got = boto3(
        &env,
        "sqs = boto3.client('sqs', **KW)\n\
         q = sqs.get_queue_url(QueueName='elasticrds-events')['QueueUrl']\n\
         m = sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=10, WaitTimeSeconds=2).get('Messages', [])\n\
         print(json.dumps([json.loads(x['Body']) for x in m]))\n",
    );
    let events: Vec<serde_json::Value> = serde_json::from_str(got.trim()).expect("SQS bodies");
    assert_eq!(events.len(), 1, "{events:?}\n{log}");
    let e = &events[0];
    assert_eq!(e["source"], "elasticrds", "{e}");
    assert_eq!(e["detail-type"], "elasticrds scale-out", "{e}");
    let d = &e["detail"];
    assert_eq!(d["version"], 1, "{e}");
    assert_eq!(d["type"], "scale_out", "{e}");
    assert_eq!(d["cluster"], "e2e", "{e}");
    assert_eq!(d["detail"]["replicas"][0], "e2e-s02", "{e}");
    assert!(
        d["text"]
            .as_str()
            .unwrap()
            .starts_with("e2e: scaled out 1 → 2 replicas"),
        "{e}"
    );
}
