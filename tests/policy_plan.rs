//! `elasticrds plan` end to end against moto (RDS): the built binary observes a real (emulated)
//! fleet, reads a recorded-metrics file and the scale state from the master's tags, prints the
//! decision with its reasons and the reconciler's plan — and changes nothing.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{block_on, elasticrds, rds_client, repo_root, Moto, RecordingProxy};

const AT: &str = "2026-11-25T12:00:30Z";

fn config_path() -> PathBuf {
    repo_root().join("tests/policy_config.yaml")
}

/// cluster1's master and two of its four replicas, created directly in moto.
fn fleet(moto: &Moto) -> aws_sdk_rds::Client {
    let rds = rds_client(&moto.endpoint());
    block_on(async {
        support::create_db_instance(&rds, "cluster1m01", "mysql").await;
        for r in ["cluster1s01", "cluster1s02"] {
            rds.create_db_instance_read_replica()
                .db_instance_identifier(r)
                .source_db_instance_identifier("cluster1m01")
                .db_instance_class("db.t3.micro")
                .send()
                .await
                .expect("CreateDBInstanceReadReplica");
        }
    });
    rds
}

fn instance_ids(rds: &aws_sdk_rds::Client) -> Vec<String> {
    let mut v: Vec<String> = block_on(rds.describe_db_instances().send())
        .expect("describe")
        .db_instances()
        .iter()
        .filter_map(|i| i.db_instance_identifier().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Newest final sample for AT is 11:58; two minutes of data per replica.
fn metrics_file(dir: &Path, cpu: f64) -> PathBuf {
    let mut csv = String::from("timestamp,instance,metric,statistic,value\n");
    for id in ["cluster1s01", "cluster1s02"] {
        for t in ["2026-11-25T11:57:00Z", "2026-11-25T11:58:00Z"] {
            csv.push_str(&format!("{t},{id},cpu,Average,{cpu}\n"));
        }
    }
    let f = dir.join(format!("metrics-{cpu}.csv"));
    std::fs::write(&f, csv).unwrap();
    f
}

/// A policies directory with cluster1's policy, every value the tests rely on spelled out (so
/// that tuning the built-in defaults does not change what these tests expect).
fn policies_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("cluster1.yaml"),
        "cluster: cluster1\nmin_replicas: 1\nmax_replicas: 4\nrules:\n  - {metric: cpu, target: 60, tolerance: 0.1}\nscale_out: {cooldown: 5m, max_step: 2}\nscale_in: {cooldown: 15m, stabilization: 10m, max_step: 1}\nwarmup: {duration: 10m}\n",
    )
    .unwrap();
    d
}

/// `plan` through a recording proxy in front of moto, so that every AWS call it makes is seen.
fn plan(
    proxy: &RecordingProxy,
    policies: &Path,
    metrics: &Path,
    json: bool,
) -> (i32, String, String) {
    let mut cmd = elasticrds(Some(&proxy.endpoint()));
    cmd.current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .arg("--policies")
        .arg(policies)
        .arg("--metrics")
        .arg(metrics)
        .args(["--at", AT]);
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plan_explains_itself_and_changes_nothing() {
    let moto = Moto::start();
    let rds = fleet(&moto);
    let before = instance_ids(&rds);
    assert_eq!(before, ["cluster1m01", "cluster1s01", "cluster1s02"]);
    let dir = tempfile::tempdir().unwrap();
    let proxy = RecordingProxy::new(moto.port());
    let pol = policies_dir();

    // High CPU: 2 replicas at 82.1 % with target 60 → 3; the reconciler would create s03.
    let hot = metrics_file(dir.path(), 82.1);
    let (code, out, err) = plan(&proxy, pol.path(), &hot, false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cluster1: 2 → 3 replica(s) (scale out; reason target_tracking)"),
        "{out}"
    );
    assert!(
        out.contains("[target_tracking] cpu 82.1% > target 60% → 3"),
        "{out}"
    );
    let shown = format!("policy: {}", pol.path().join("cluster1.yaml").display());
    assert!(out.contains(&shown), "{out}");
    assert!(out.contains("create replica cluster1s03"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");

    let (code, out, err) = plan(&proxy, pol.path(), &hot, true);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["decision"]["direction"], "out");
    assert_eq!(v["decision"]["desired"], 3);
    assert_eq!(v["decision"]["reason"], "target_tracking");
    assert_eq!(v["plan"]["actions"][0]["action"], "create_replica");
    assert_eq!(v["plan"]["actions"][0]["id"], "cluster1s03");
    assert_eq!(v["would_execute"], true);

    // The scale state comes from the master's tags: a scale-out 2 minutes ago holds it.
    let arn = block_on(
        rds.describe_db_instances()
            .db_instance_identifier("cluster1m01")
            .send(),
    )
    .unwrap()
    .db_instances()[0]
        .db_instance_arn()
        .unwrap()
        .to_string();
    block_on(
        rds.add_tags_to_resource()
            .resource_name(&arn)
            .tags(
                aws_sdk_rds::types::Tag::builder()
                    .key("elasticrds:last-scale-out")
                    .value("2026-11-25T11:58:30Z")
                    .build(),
            )
            .send(),
    )
    .unwrap();
    let (code, out, err) = plan(&proxy, pol.path(), &hot, false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 → 2 replica(s) (no change; reason cooldown)"),
        "{out}"
    );
    assert!(
        out.contains("[cooldown] held: scale-out cooldown 3m0s left"),
        "{out}"
    );

    // An observe-only policy (given with --policy): the same decision, marked, and the plan
    // shown as what would not be executed.
    let observe = dir.path().join("observe.yaml");
    std::fs::write(
        &observe,
        "cluster: cluster1\nmax_replicas: 4\nobserve_only: true\n",
    )
    .unwrap();
    let out = elasticrds(Some(&moto.endpoint()))
        .current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .arg("--policy")
        .arg(&observe)
        .arg("--metrics")
        .arg(&hot)
        .args(["--at", AT, "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["decision"]["observe_only"], true, "{v:#}");
    assert_eq!(v["would_execute"], false, "{v:#}");
    assert!(
        v["decision"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "observe_only"),
        "{v:#}"
    );
    // A --policy for another cluster is bad input.
    let other = dir.path().join("other.yaml");
    std::fs::write(&other, "cluster: cluster2\n").unwrap();
    let out = elasticrds(Some(&moto.endpoint()))
        .current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .arg("--policy")
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the policy is for cluster \"cluster2\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Missing data for a replica: held, named.
    let partial = dir.path().join("partial.csv");
    std::fs::write(
        &partial,
        "timestamp,instance,metric,statistic,value\n2026-11-25T11:58:00Z,cluster1s01,cpu,Average,5\n",
    )
    .unwrap();
    let (code, out, err) = plan(&proxy, pol.path(), &partial, false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[no_data] held: no data for cluster1s02"),
        "{out}"
    );

    // A junk metrics file is bad input, located.
    let junk = dir.path().join("junk.csv");
    std::fs::write(
        &junk,
        "timestamp,instance,metric,statistic,value\nnot-a-time,cluster1s01,cpu,Average,5\n",
    )
    .unwrap();
    let (code, _, err) = plan(&proxy, pol.path(), &junk, false);
    assert_eq!(code, 2);
    assert!(err.contains("junk.csv:2:1: timestamp:"), "{err}");

    // Nothing was created, deleted or modified by any of it, and no tag was written: every
    // call on the wire was a describe (or a list).
    assert_eq!(instance_ids(&rds), before);
    assert!(
        proxy
            .calls()
            .iter()
            .any(|c| c.action == "DescribeDBInstances"),
        "{:?}",
        proxy.calls()
    );
    assert!(proxy.mutations().is_empty(), "{:?}", proxy.mutations());
}

/// A master alone in moto (no replica yet): the default policy raises to min 1 and, when the
/// master's own load needs more, further.
fn master_only(moto: &Moto) -> aws_sdk_rds::Client {
    let rds = rds_client(&moto.endpoint());
    block_on(support::create_db_instance(&rds, "cluster1m01", "mysql"));
    rds
}

#[test]
fn without_metrics_file_plan_reads_cloudwatch() {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    use chrono::{DurationRound, Utc};

    let moto = Moto::start();
    let pol = policies_dir();
    let ms = support::Ministack::start();
    let rds = master_only(&moto);
    let before = instance_ids(&rds);
    // The master's CPU at 95 % for the last five final minutes, put into CloudWatch.
    let cw = support::cloudwatch_client(&ms.endpoint());
    let minute = chrono::Duration::minutes(1);
    let end = (Utc::now() - minute).duration_trunc(minute).unwrap();
    let data: Vec<MetricDatum> = (1..=5)
        .map(|k| {
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(
                    Dimension::builder()
                        .name("DBInstanceIdentifier")
                        .value("cluster1m01")
                        .build(),
                )
                .timestamp(aws_smithy_types::DateTime::from_secs(
                    (end - minute * k).timestamp() + 5,
                ))
                .value(95.0)
                .unit(StandardUnit::Percent)
                .build()
        })
        .collect();
    block_on(
        cw.put_metric_data()
            .namespace("AWS/RDS")
            .set_metric_data(Some(data))
            .send(),
    )
    .expect("PutMetricData");

    let out = elasticrds(Some(&moto.endpoint()))
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", ms.endpoint())
        .current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .arg("--policies")
        .arg(pol.path())
        .args(["--output", "json"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let d = &v["decision"];
    // 95 % on one serving instance with target 60 → ceil(95/60) = 2: above the min of 1.
    assert_eq!(d["observed"][0]["metric"], "cpu", "{v:#}");
    assert_eq!(d["observed"][0]["value"], 95.0, "{v:#}");
    assert_eq!(d["observed"][0]["instances"], 1, "{v:#}");
    assert_eq!(d["current"], 0);
    assert_eq!(d["desired"], 2, "{v:#}");
    let reasons: Vec<String> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("the master cluster1m01 serves reads")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("the load needs 2: → 2")),
        "{reasons:?}"
    );
    let actions: Vec<&str> = v["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["cluster1s01", "cluster1s02"]);
    assert_eq!(instance_ids(&rds), before, "plan changed the fleet");

    // CloudWatch unreachable: a runtime failure (exit 1), not bad input.
    let dead = format!("http://127.0.0.1:{}", support::free_port());
    let out = elasticrds(Some(&moto.endpoint()))
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &dead)
        .current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .arg("--policies")
        .arg(pol.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GetMetricData"), "{stderr}");
}

#[test]
fn replicas_created_minutes_ago_are_warming_up_as_the_daemon_sees_them() {
    use chrono::{DurationRound, Utc};

    let moto = Moto::start();
    let pol = policies_dir();
    let _rds = fleet(&moto);
    // Fresh CPU data for both replicas (they were created just now, by `fleet`).
    let minute = chrono::Duration::minutes(1);
    let end = (Utc::now() - minute).duration_trunc(minute).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("timestamp,instance,metric,statistic,value\n");
    for id in ["cluster1s01", "cluster1s02"] {
        for k in 1..=3 {
            csv.push_str(&format!(
                "{},{id},cpu,Average,90\n",
                (end - minute * k).timestamp()
            ));
        }
    }
    let f = dir.path().join("fresh.csv");
    std::fs::write(&f, csv).unwrap();
    let out = elasticrds(Some(&moto.endpoint()))
        .current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .arg("--policies")
        .arg(pol.path())
        .arg("--metrics")
        .arg(&f)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // Both replicas are within their 10-minute warm-up: left out of the average, and with
    // no warm replica left the decision holds (90 % alone would have asked for 3).
    assert!(
        stdout.contains("[warmup] held: every serving replica is warming up"),
        "{stdout}"
    );
    assert!(stdout.contains("cluster1s01 available for"), "{stdout}");
    assert!(stdout.contains("2 → 2 replica(s)"), "{stdout}");
}
