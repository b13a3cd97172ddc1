//! `elasticrds plan` end to end against moto (RDS): the built binary observes a real (emulated)
//! fleet, reads a recorded-metrics file and the scale state from the master's tags, prints the
//! decision with its reasons and the reconciler's plan — and changes nothing.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::{block_on, elasticrds, rds_client, repo_root, Moto};

const AT: &str = "2026-11-25T12:00:30Z";

fn config_path() -> PathBuf {
    repo_root().join("tests/policy_config.yaml")
}

/// cluster1's master and two of its four replicas, created directly in moto.
fn fleet(moto: &Moto) -> aws_sdk_rds::Client {
    let rds = rds_client(&moto.endpoint());
    block_on(async {
        rds.create_db_instance()
            .db_instance_identifier("cluster1m01")
            .db_instance_class("db.t3.micro")
            .engine("mysql")
            .master_username("admin")
            .master_user_password("password123")
            .allocated_storage(20)
            .send()
            .await
            .expect("CreateDBInstance master");
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

fn plan(moto: &Moto, metrics: &Path, json: bool) -> (i32, String, String) {
    let mut cmd = elasticrds(Some(&moto.endpoint()));
    cmd.current_dir(repo_root())
        .args(["plan", "cluster1", "--config"])
        .arg(config_path())
        .args(["--policies", "policies", "--metrics"])
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

    // High CPU: 2 replicas at 82.1 % with target 60 → 3; the reconciler would create s03.
    let hot = metrics_file(dir.path(), 82.1);
    let (code, out, err) = plan(&moto, &hot, false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("cluster1: 2 → 3 replica(s) (scale out; reason target_tracking)"),
        "{out}"
    );
    assert!(
        out.contains("[target_tracking] cpu 82.1% > target 60% → 3"),
        "{out}"
    );
    assert!(out.contains("policy: policies/cpu-target.yaml"), "{out}");
    assert!(out.contains("create replica cluster1s03"), "{out}");
    assert!(out.contains("nothing was changed"), "{out}");

    let (code, out, err) = plan(&moto, &hot, true);
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
    let (code, out, err) = plan(&moto, &hot, false);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2 → 2 replica(s) (no change; reason cooldown)"),
        "{out}"
    );
    assert!(
        out.contains("[cooldown] held: scale-out cooldown 3m0s left"),
        "{out}"
    );

    // Missing data for a replica: held, named.
    let partial = dir.path().join("partial.csv");
    std::fs::write(
        &partial,
        "timestamp,instance,metric,statistic,value\n2026-11-25T11:58:00Z,cluster1s01,cpu,Average,5\n",
    )
    .unwrap();
    let (code, out, err) = plan(&moto, &partial, false);
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
    let (code, _, err) = plan(&moto, &junk, false);
    assert_eq!(code, 2);
    assert!(err.contains("junk.csv:2:1: timestamp:"), "{err}");

    // Nothing was created, deleted or modified by any of it.
    assert_eq!(instance_ids(&rds), before);
}
