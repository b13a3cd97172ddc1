//! The operator CLI and the RDS adapter against moto's standalone server (issue 2, "Done when").
//!
//! The built `elasticrds` binary talks to moto through a [`support::RecordingProxy`], so every
//! test can assert exactly which AWS calls a command made: moto makes instances available at
//! once and silently overwrites an existing replica on a duplicate CreateDBInstanceReadReplica,
//! so "no create for an existing id" is checked on the wire, not only on moto's state.
//! Set-up (subnet group, the snapshot, the foreign replica) uses the SDK directly.

mod support;

use aws_sdk_rds::Client;
use elasticrds::adapters::rds::RdsFleet;
use elasticrds::core::domain::{InstanceClass, InstanceId, InstanceStatus, Tags};
use elasticrds::ports::{ErrorKind, Fleet};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::{block_on, elasticrds, rds_client, Moto, RecordedCall, RecordingProxy, Tripwire};

const SNAPSHOT: &str = "qiitabase201305111613";
const MASTER: &str = "cluster1m01";
const FOREIGN: &str = "adhoc-reporting";

/// The old README's example, `//` comments included, extended to three replicas.
const EXAMPLE: &str = r#"{
    "cluster1": {                                    //cluster name(only used in the script)
        "master_node": {
            "identifier": "qiitabase201305111613",   //name of db snapshot
            "instance_id": "cluster1m01",
            "instance_class": "db.t1.micro",
            "multi_az": true,
            "db_subnet_group_name" : "qiita"         //(optional) if you'd like to create in VPC
        },
        "replica_nodes": [
            { "id": "cluster1s01", "instance_class": "db.t1.micro" },
            { "id": "cluster1s02", "instance_class": "db.t1.micro" },
            { "id": "cluster1s03", "instance_class": "db.t1.micro" }
        ]
    }
}
"#;

/// moto with the snapshot and subnet group of the example, a recording proxy in front of it
/// and the example config in a temp dir.
struct World {
    moto: Moto,
    proxy: RecordingProxy,
    rds: Client,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl World {
    fn new() -> World {
        let moto = Moto::start();
        let rds = rds_client(&moto.endpoint());
        block_on(async {
            support::create_subnet_group(&moto, &rds, "qiita").await;
            support::create_snapshot(&rds, SNAPSHOT).await;
        });
        let proxy = RecordingProxy::new(moto.port());
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("rds_cluster_conf.json");
        std::fs::write(&config, EXAMPLE).expect("write config");
        let w = World {
            moto,
            proxy,
            rds,
            _dir: dir,
            config,
        };
        assert!(
            w.instances().is_empty(),
            "fresh moto has instances: {:?}",
            w.instances()
        );
        w
    }

    /// Run the binary with the example config, through the proxy; the proxy's log is cleared
    /// first so that `self.proxy.calls()` are this command's calls.
    fn run(&self, args: &[&str]) -> Run {
        self.proxy.clear();
        let out = elasticrds(Some(&self.proxy.endpoint()))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("run elasticrds");
        Run::from(args, out)
    }

    /// Every instance on moto: id → facts.
    fn instances(&self) -> BTreeMap<String, Facts> {
        block_on(async {
            let out = self
                .rds
                .describe_db_instances()
                .send()
                .await
                .expect("DescribeDBInstances");
            out.db_instances()
                .iter()
                .map(|d| {
                    let id = d.db_instance_identifier().unwrap_or_default().to_string();
                    let facts = Facts {
                        class: d.db_instance_class().unwrap_or_default().to_string(),
                        status: d.db_instance_status().unwrap_or_default().to_string(),
                        source: d
                            .read_replica_source_db_instance_identifier()
                            .map(str::to_string),
                        replicas: d
                            .read_replica_db_instance_identifiers()
                            .iter()
                            .map(String::clone)
                            .collect(),
                        multi_az: d.multi_az().unwrap_or(false),
                        subnet_group: d
                            .db_subnet_group()
                            .and_then(|g| g.db_subnet_group_name())
                            .map(str::to_string),
                        tags: d
                            .tag_list()
                            .iter()
                            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                            .collect(),
                    };
                    (id, facts)
                })
                .collect()
        })
    }

    fn ids(&self) -> Vec<String> {
        self.instances().into_keys().collect()
    }

    /// Add a replica of the master by hand, outside elasticrds.
    fn add_foreign_replica(&self) {
        block_on(async {
            self.rds
                .create_db_instance_read_replica()
                .db_instance_identifier(FOREIGN)
                .source_db_instance_identifier(MASTER)
                .db_instance_class("db.t3.small")
                .send()
                .await
                .expect("CreateDBInstanceReadReplica (foreign)");
        });
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Facts {
    class: String,
    status: String,
    source: Option<String>,
    replicas: Vec<String>,
    multi_az: bool,
    subnet_group: Option<String>,
    tags: BTreeMap<String, String>,
}

struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], out: std::process::Output) -> Run {
        Run {
            args: args.join(" "),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "`elasticrds {}` exited {} (wanted {code})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    fn ok(&self) -> &Run {
        self.expect_code(0)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "`elasticrds {}` printed no JSON ({e}):\n{}",
                self.args, self.stdout
            )
        })
    }
}

/// `(action, instance)` of the state-changing calls.
fn mutations(calls: &[RecordedCall]) -> Vec<(String, String)> {
    calls
        .iter()
        .filter(|c| !c.action.starts_with("Describe") && !c.action.starts_with("List"))
        .map(|c| (c.action.clone(), c.instance().unwrap_or("").to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// The `action` and instance of each planned action in a create-cluster JSON report.
fn planned(report: &Value) -> Vec<(String, String)> {
    report["actions"]
        .as_array()
        .expect("actions array")
        .iter()
        .map(|a| {
            let kind = a["action"].as_str().expect("action kind").to_string();
            let id = a["id"]
                .as_str()
                .or_else(|| a["master"]["id"].as_str())
                .expect("action instance")
                .to_string();
            (kind, id)
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn done_when_scenario() {
    let w = World::new();

    // --- create-cluster --max-replicas 2: the master is restored, then s01 and s02 created.
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "2",
        "--output",
        "json",
    ]);
    r.ok();
    let report = r.json();
    assert_eq!(
        planned(&report),
        pairs(&[
            ("restore_master", MASTER),
            ("create_replica", "cluster1s01"),
            ("create_replica", "cluster1s02"),
        ]),
        "{report:#}"
    );
    assert_eq!(report["target_replicas"], 2);
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[
            ("RestoreDBInstanceFromDBSnapshot", MASTER),
            ("CreateDBInstanceReadReplica", "cluster1s01"),
            ("CreateDBInstanceReadReplica", "cluster1s02"),
        ])
    );
    let restore = w
        .proxy
        .calls()
        .into_iter()
        .find(|c| c.action == "RestoreDBInstanceFromDBSnapshot")
        .expect("restore call");
    assert_eq!(restore.param("DBSnapshotIdentifier"), Some(SNAPSHOT));
    assert_eq!(restore.param("DBInstanceClass"), Some("db.t1.micro"));
    assert_eq!(restore.param("DBSubnetGroupName"), Some("qiita"));
    assert_eq!(restore.param("MultiAZ"), Some("true"));

    let inst = w.instances();
    assert_eq!(
        sorted(inst.keys().cloned().collect()),
        s(&[MASTER, "cluster1s01", "cluster1s02"])
    );
    assert_eq!(inst[MASTER].class, "db.t1.micro");
    assert!(inst[MASTER].multi_az, "master restored multi-AZ");
    assert_eq!(inst[MASTER].subnet_group.as_deref(), Some("qiita"));
    assert_eq!(inst["cluster1s01"].source.as_deref(), Some(MASTER));
    assert_eq!(inst["cluster1s02"].source.as_deref(), Some(MASTER));
    assert_eq!(
        inst["cluster1s01"]
            .tags
            .get("elasticrds:managed-by")
            .map(String::as_str),
        Some("elasticrds"),
        "created replicas carry the managed-by tag: {:?}",
        inst["cluster1s01"].tags
    );

    // --- a foreign replica of the master, added by hand.
    w.add_foreign_replica();
    let foreign_before = w.instances()[FOREIGN].clone();
    let s01_before = w.instances()["cluster1s01"].clone();

    // --- --max-replicas 1: s02 deleted; s01 and the foreign replica untouched.
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "1",
        "--output",
        "json",
    ]);
    r.ok();
    let report = r.json();
    assert_eq!(
        planned(&report),
        pairs(&[("delete_replica", "cluster1s02")]),
        "{report:#}"
    );
    assert_eq!(report["foreign"], serde_json::json!([FOREIGN]));
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[("DeleteDBInstance", "cluster1s02")])
    );
    let inst = w.instances();
    assert_eq!(
        sorted(inst.keys().cloned().collect()),
        s(&[FOREIGN, MASTER, "cluster1s01"])
    );
    assert_eq!(inst[FOREIGN], foreign_before, "foreign replica changed");
    assert_eq!(inst["cluster1s01"], s01_before, "s01 changed");

    // --- the same command again changes nothing.
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "1",
        "--output",
        "json",
    ]);
    r.ok();
    let report = r.json();
    assert_eq!(report["actions"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["results"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["waiting"], serde_json::json!([]), "{report:#}");
    assert!(
        mutations(&w.proxy.calls()).is_empty(),
        "{:?}",
        w.proxy.calls()
    );
    assert!(
        !w.proxy.calls().is_empty(),
        "the command must have looked at the fleet"
    );
    assert_eq!(w.instances(), inst);
    // Text output says so as well.
    let r = w.run(&["create-cluster", "cluster1", "--max-replicas", "1"]);
    r.ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    assert!(r.stdout.contains(FOREIGN), "foreign reported: {}", r.stdout);
    assert!(mutations(&w.proxy.calls()).is_empty());

    // --- --max-replicas 9: clamped to the list; exactly s01–s03 (s01 not created again).
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "9",
        "--output",
        "json",
    ]);
    r.ok();
    let report = r.json();
    assert_eq!(report["requested_replicas"], 9);
    assert_eq!(report["target_replicas"], 3);
    assert_eq!(
        planned(&report),
        pairs(&[
            ("create_replica", "cluster1s02"),
            ("create_replica", "cluster1s03")
        ]),
        "{report:#}"
    );
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[
            ("CreateDBInstanceReadReplica", "cluster1s02"),
            ("CreateDBInstanceReadReplica", "cluster1s03"),
        ])
    );
    let inst = w.instances();
    assert_eq!(
        sorted(inst.keys().cloned().collect()),
        s(&[FOREIGN, MASTER, "cluster1s01", "cluster1s02", "cluster1s03"])
    );
    assert_eq!(inst["cluster1s01"], s01_before, "s01 must not be recreated");
    assert_eq!(inst[FOREIGN], foreign_before, "foreign replica changed");
    // moto appends to the master's replica list on every create: no duplicates means no
    // second create was ever issued for an existing id.
    assert_eq!(
        sorted(inst[MASTER].replicas.clone()),
        s(&[FOREIGN, "cluster1s01", "cluster1s02", "cluster1s03"]),
        "master's replica list"
    );

    // --- status --output json reports master, replicas and the foreign replica.
    let r = w.run(&["status", "cluster1", "--output", "json"]);
    r.ok();
    let st = r.json();
    assert_eq!(st["cluster"], "cluster1");
    assert_eq!(st["master"]["id"], MASTER);
    assert_eq!(st["master"]["class"], "db.t1.micro");
    assert_eq!(st["master"]["status"], "available");
    let replicas: Vec<&str> = st["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(replicas, ["cluster1s01", "cluster1s02", "cluster1s03"]);
    for r in st["replicas"].as_array().expect("replicas") {
        assert_eq!(r["status"], "available", "{r}");
        assert_eq!(r["class"], "db.t1.micro", "{r}");
        assert_eq!(r["drift"], false, "{r}");
    }
    assert_eq!(st["absent"], serde_json::json!([]));
    let foreign = st["foreign"].as_array().expect("foreign");
    assert_eq!(foreign.len(), 1, "{st:#}");
    assert_eq!(foreign[0]["id"], FOREIGN);
    assert_eq!(foreign[0]["class"], "db.t3.small");
    assert_eq!(foreign[0]["status"], "available");
    assert!(mutations(&w.proxy.calls()).is_empty(), "status changed AWS");

    // --- the text status has the old shape.
    let r = w.run(&["status", "cluster1"]);
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.len() >= 8, "{}", r.stdout);
    assert_eq!(lines[0], "cluster1");
    assert_eq!(lines[1], "    master");
    assert_eq!(
        lines[2],
        "          cluster1m01     db.t1.micro     available"
    );
    assert_eq!(lines[3], "     read replica");
    assert_eq!(
        lines[4],
        "          cluster1s01     db.t1.micro     available"
    );
    assert_eq!(
        lines[5],
        "          cluster1s02     db.t1.micro     available"
    );
    assert_eq!(
        lines[6],
        "          cluster1s03     db.t1.micro     available"
    );
    assert!(
        lines[7..].iter().any(|l| l.contains("foreign"))
            && lines[7..].iter().any(|l| l.contains(FOREIGN)),
        "foreign section: {}",
        r.stdout
    );

    // --- --dry-run prints the plan and changes nothing.
    let before = w.instances();
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "0",
        "--dry-run",
        "--output",
        "json",
    ]);
    r.ok();
    let report = r.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        planned(&report),
        pairs(&[
            ("delete_replica", "cluster1s03"),
            ("delete_replica", "cluster1s02"),
            ("delete_replica", "cluster1s01"),
        ]),
        "surplus deleted from the end: {report:#}"
    );
    for res in report["results"].as_array().expect("results") {
        assert_eq!(res["outcome"], "dry_run", "{res}");
    }
    assert!(
        mutations(&w.proxy.calls()).is_empty(),
        "{:?}",
        w.proxy.calls()
    );
    assert_eq!(w.instances(), before);
    let r = w.run(&["modify-instance", "cluster1s01", "db.m5.large", "--dry-run"]);
    r.ok();
    assert!(r.stdout.contains("[dry-run]"), "{}", r.stdout);
    assert!(mutations(&w.proxy.calls()).is_empty());
    assert_eq!(w.instances(), before);
    let v = w
        .run(&[
            "modify-instance",
            "cluster1s01",
            "db.m5.large",
            "--dry-run",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(v["dry_run"], true, "{v:#}");
    assert_eq!(v["changed"], false, "{v:#}");
    assert_eq!(v["outcome"], "dry_run", "{v:#}");
    assert_eq!(v["from"], "db.t1.micro", "{v:#}");
    assert_eq!(v["to"], "db.m5.large", "{v:#}");
    assert!(
        v["warning"]
            .as_str()
            .unwrap_or("")
            .contains("out of service"),
        "{v:#}"
    );
    assert!(mutations(&w.proxy.calls()).is_empty());
    assert_eq!(w.instances(), before);

    // --- modify-instance changes the class.
    let r = w.run(&["modify-instance", "cluster1s01", "db.m5.large"]);
    r.ok();
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[("ModifyDBInstance", "cluster1s01")])
    );
    let modify = w
        .proxy
        .calls()
        .into_iter()
        .find(|c| c.action == "ModifyDBInstance")
        .expect("modify call");
    assert_eq!(modify.param("DBInstanceClass"), Some("db.m5.large"));
    assert_eq!(modify.param("ApplyImmediately"), Some("true"));
    assert_eq!(w.instances()["cluster1s01"].class, "db.m5.large");
    // The old tool's warning, made specific: out of service meanwhile, and who serves.
    assert!(
        r.stderr.contains(
            "warning: cluster1s01 is out of service while its class changes; served meanwhile by the master cluster1m01 and replica(s) cluster1s02, cluster1s03"
        ),
        "{}",
        r.stderr
    );
    // JSON: the same facts; asking again changes nothing.
    let v = w
        .run(&[
            "modify-instance",
            "cluster1s01",
            "db.m5.large",
            "--output",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(v["changed"], false, "{v:#}");
    assert!(mutations(&w.proxy.calls()).is_empty());
    // ... and status now reports the drift from the config.
    let st = w
        .run(&["status", "cluster1", "--output", "json"])
        .ok()
        .json();
    let s01 = &st["replicas"][0];
    assert_eq!(s01["id"], "cluster1s01");
    assert_eq!(s01["class"], "db.m5.large");
    assert_eq!(s01["configured_class"], "db.t1.micro");
    assert_eq!(s01["drift"], true);
    // ... which create-cluster reports, and does not "fix".
    let report = w
        .run(&["create-cluster", "cluster1", "--output", "json"])
        .ok()
        .json();
    assert_eq!(report["actions"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["drift"][0]["id"], "cluster1s01", "{report:#}");
    assert_eq!(report["drift"][0]["actual"], "db.m5.large");
    assert!(mutations(&w.proxy.calls()).is_empty());

    // --- modify-instance on the foreign replica is refused as bad input, before any call.
    let before = w.instances();
    let r = w.run(&["modify-instance", FOREIGN, "db.m5.large"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains(FOREIGN) && r.stderr.contains("not in the cluster config"),
        "{}",
        r.stderr
    );
    assert!(w.proxy.calls().is_empty(), "{:?}", w.proxy.calls());
    assert_eq!(w.instances(), before);
    // Likewise an id that exists nowhere.
    let r = w.run(&["modify-instance", "nosuchdb", "db.m5.large"]);
    r.expect_code(2);
    assert!(r.stderr.contains("nosuchdb"), "{}", r.stderr);
    // A class that is not a class is bad input too.
    let r = w.run(&["modify-instance", "cluster1s02", "large"]);
    r.expect_code(2);
    assert!(r.stderr.contains("class"), "{}", r.stderr);
    assert!(w.proxy.calls().is_empty());
    assert_eq!(w.instances(), before);

    // --- the master is never deleted, even at --max-replicas 0; the foreign replica stays.
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "0",
        "--output",
        "json",
    ]);
    r.ok();
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[
            ("DeleteDBInstance", "cluster1s03"),
            ("DeleteDBInstance", "cluster1s02"),
            ("DeleteDBInstance", "cluster1s01"),
        ])
    );
    assert_eq!(w.ids(), sorted(s(&[FOREIGN, MASTER])));
}

#[test]
fn unsafe_modify_is_refused_unless_forced() {
    let w = World::new();
    // A single-AZ master with no replica: changing its class would take the cluster down.
    let single_az = EXAMPLE.replace("\"multi_az\": true", "\"multi_az\": false");
    std::fs::write(&w.config, single_az).expect("write config");
    w.run(&["create-cluster", "cluster1", "--max-replicas", "0"])
        .ok();
    assert_eq!(w.ids(), s(&[MASTER]));

    let r = w.run(&["modify-instance", MASTER, "db.m5.large"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("not multi-AZ") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert!(mutations(&w.proxy.calls()).is_empty());
    assert_eq!(w.instances()[MASTER].class, "db.t1.micro");

    let r = w.run(&["modify-instance", MASTER, "db.m5.large", "--force"]);
    r.ok();
    assert!(r.stdout.contains("forced although"), "{}", r.stdout);
    assert!(
        r.stderr.contains(
            "warning: cluster1m01 is out of service while its class changes; nothing else serves meanwhile"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[("ModifyDBInstance", MASTER)])
    );
    assert_eq!(w.instances()[MASTER].class, "db.m5.large");

    // With a replica available, the master may change without --force.
    w.run(&["create-cluster", "cluster1", "--max-replicas", "1"])
        .ok();
    let r = w.run(&["modify-instance", MASTER, "db.m5.xlarge"]);
    r.ok();
    assert_eq!(w.instances()[MASTER].class, "db.m5.xlarge");
    // Already that class: nothing to do, no call.
    let r = w.run(&["modify-instance", MASTER, "db.m5.xlarge"]);
    r.ok();
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    assert!(mutations(&w.proxy.calls()).is_empty());
}

#[test]
fn bad_config_exits_2_with_location_and_makes_no_call() {
    let trip = Tripwire::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.json");
    std::fs::write(&path, EXAMPLE.replace("cluster1s02", "bad--id")).expect("write");
    for args in [
        vec!["create-cluster", "cluster1", "--max-replicas", "2"],
        vec!["status", "cluster1"],
        vec!["modify-instance", "cluster1s01", "db.m5.large"],
        vec!["pause", "cluster1", "--for", "1h"],
        vec!["resume", "cluster1"],
    ] {
        let out = elasticrds(Some(&trip.endpoint()))
            .arg("--config")
            .arg(&path)
            .args(&args)
            .output()
            .expect("run");
        let r = Run::from(&args, out);
        r.expect_code(2);
        // file:line:col: field: message — "bad--id" is on line 12, column 21.
        let want = format!("{}:12:21: cluster1.replica_nodes[1].id:", path.display());
        assert!(r.stderr.contains(&want), "want {want:?} in:\n{}", r.stderr);
        assert!(r.stderr.contains("two consecutive hyphens"), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
    // The same in YAML.
    let ypath = dir.path().join("bad.yaml");
    std::fs::write(
        &ypath,
        "cluster1:\n  master_node:\n    identifier: snap\n    instance_id: bad--id\n    instance_class: db.t3.micro\n",
    )
    .expect("write");
    let out = elasticrds(Some(&trip.endpoint()))
        .arg("--config")
        .arg(&ypath)
        .args(["status", "cluster1"])
        .output()
        .expect("run");
    let r = Run::from(&["status", "cluster1"], out);
    r.expect_code(2);
    let want = format!(
        "{}:4:18: cluster1.master_node.instance_id:",
        ypath.display()
    );
    assert!(r.stderr.contains(&want), "want {want:?} in:\n{}", r.stderr);
    // A missing config file, an unknown cluster: bad input as well.
    let r = Run::from(
        &["status"],
        elasticrds(Some(&trip.endpoint()))
            .arg("--config")
            .arg(dir.path().join("absent.json"))
            .args(["status", "cluster1"])
            .output()
            .expect("run"),
    );
    r.expect_code(2);
    assert!(r.stderr.contains("absent.json"), "{}", r.stderr);
    let good = dir.path().join("good.json");
    std::fs::write(&good, EXAMPLE).expect("write");
    let r = Run::from(
        &["status", "cluster9"],
        elasticrds(Some(&trip.endpoint()))
            .arg("--config")
            .arg(&good)
            .args(["status", "cluster9"])
            .output()
            .expect("run"),
    );
    r.expect_code(2);
    assert!(r.stderr.contains("cluster9"), "{}", r.stderr);
    // The day-two commands' own bad input: an unknown cluster, text RDS refuses in a tag, a
    // zero pause, init's ids, names and counts; nothing is read or written.
    for (args, says) in [
        (vec!["pause", "cluster9"], "cluster9"),
        (vec!["resume", "cluster9"], "cluster9"),
        (
            vec!["pause", "cluster1", "--reason", "a;b"],
            "--reason: ';'",
        ),
        (vec!["pause", "cluster1", "--by", "a,b"], "--by: ','"),
        (vec!["pause", "cluster1", "--for", "0s"], "--for"),
        (
            vec!["pause", "cluster1", "--direction", "sideways"],
            "sideways",
        ),
        (vec!["init", "--master", "bad--id"], "--master"),
        (
            vec!["init", "--master", "db1", "--cluster", "a b"],
            "--cluster",
        ),
        (
            vec!["init", "--master", "db1", "--slots", "99"],
            "--slots 99",
        ),
        (
            vec!["init", "--master", "db1", "--name-pattern", "x"],
            "{n}",
        ),
        (
            vec!["init", "--master", "db1", "--name-pattern", "x_{n}"],
            "x_01",
        ),
        (
            vec![
                "init",
                "--master",
                "db1",
                "--output",
                good.to_str().unwrap(),
            ],
            "exists",
        ),
    ] {
        let out = elasticrds(Some(&trip.endpoint()))
            .arg("--config")
            .arg(&good)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("run");
        let r = Run::from(&args, out);
        r.expect_code(2);
        assert!(
            r.stderr.contains(says),
            "{args:?}: want {says:?} in:\n{}",
            r.stderr
        );
    }
    assert_eq!(trip.hits(), 0, "a bad-input command connected to AWS");
}

#[test]
fn unreachable_endpoint_exits_1_with_a_clear_message() {
    // A port that was free a moment ago: nothing listens there.
    let port = support::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.json");
    std::fs::write(&path, EXAMPLE).expect("write");
    let endpoint = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["status", "cluster1"],
        vec!["create-cluster", "cluster1"],
        vec!["modify-instance", "cluster1s01", "db.m5.large"],
    ] {
        let started = std::time::Instant::now();
        let out = elasticrds(Some(&endpoint))
            .arg("--config")
            .arg(&path)
            .args(&args)
            .output()
            .expect("run");
        let r = Run::from(&args, out);
        r.expect_code(1);
        assert!(
            r.stderr.contains("DescribeDBInstances failed"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("transient") && r.stderr.to_lowercase().contains("connect"),
            "the message should say it could not connect: {}",
            r.stderr
        );
        // Bounded by the SDK's timeouts and retries, not hanging.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn missing_region_or_credentials_exit_1_with_a_hint() {
    let port = support::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.json");
    std::fs::write(&path, EXAMPLE).expect("write");
    let endpoint = format!("http://127.0.0.1:{port}");
    let cases: [(&[&str], &str); 2] = [
        (
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
            "no AWS region configured",
        ),
        (
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            "no AWS credentials found",
        ),
    ];
    for (unset, want) in cases {
        let mut cmd = elasticrds(Some(&endpoint));
        for v in unset {
            cmd.env_remove(v);
        }
        let args = ["status", "cluster1"];
        let out = cmd
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .expect("run");
        let r = Run::from(&args, out);
        r.expect_code(1);
        assert!(r.stderr.contains(want), "want {want:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("(fatal)"),
            "not worth retrying: {}",
            r.stderr
        );
    }
}

// ---- the RDS adapter directly ----

fn fleet(moto: &Moto) -> RdsFleet {
    RdsFleet::from_client(rds_client(&moto.endpoint()))
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid id")
}

#[test]
fn rds_adapter_describes_in_batches_and_maps_errors() {
    let w = World::new();
    let f = fleet(&w.moto);
    let cfg = elasticrds::core::config::Config::parse("c.json", EXAMPLE).expect("config");
    let spec = cfg.cluster("cluster1").expect("cluster1");
    block_on(async {
        // Restore the master; a second restore is AlreadyExists.
        let tags: Tags = elasticrds::reconcile::managed_tags("cluster1");
        f.restore_master(&spec.master, &tags)
            .await
            .expect("restore");
        let e = f.restore_master(&spec.master, &tags).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
        assert_eq!(e.operation, "RestoreDBInstanceFromDBSnapshot");

        // A missing snapshot is NotFound.
        let mut other = spec.master.clone();
        other.id = id("othermaster");
        other.snapshot = "nosuchsnapshot".into();
        let e = f.restore_master(&other, &tags).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");

        // Replicas, then a describe of 150 ids (two batches) returns exactly the existing ones.
        let class = InstanceClass::parse("db.t3.small").expect("class");
        for i in 0..3 {
            f.create_replica(&elasticrds::ports::ReplicaRequest {
                id: &id(&format!("r{i}")),
                source: &spec.master.id,
                class: &class,
                zone: None,
                settings: &Default::default(),
                tags: &tags,
            })
            .await
            .expect("create replica");
        }
        let mut ids: Vec<InstanceId> = (0..150).map(|i| id(&format!("absent{i}"))).collect();
        ids.insert(120, id("r2"));
        ids.insert(10, id("r0"));
        ids.push(spec.master.id.clone());
        let got = f.describe(&ids).await.expect("describe");
        let mut names: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
        names.sort();
        assert_eq!(names, ["cluster1m01", "r0", "r2"]);
        let master = got.iter().find(|i| i.id.as_str() == MASTER).expect("m");
        assert_eq!(master.status, InstanceStatus::Available);
        assert!(master.multi_az);
        assert_eq!(&*master.engine, "mysql");
        let mut reps: Vec<&str> = master.replicas.iter().map(InstanceId::as_str).collect();
        reps.sort();
        assert_eq!(reps, ["r0", "r1", "r2"]);
        let r0 = got.iter().find(|i| i.id.as_str() == "r0").expect("r0");
        assert_eq!(r0.source.as_ref().map(InstanceId::as_str), Some(MASTER));
        assert_eq!(r0.class.as_str(), "db.t3.small");
        assert!(r0.endpoint.is_some(), "endpoint reported");
        assert!(r0.created_at.is_some(), "create time reported");
        // Tags round-trip.
        let t = f.read_tags(&id("r0")).await.expect("read tags");
        assert_eq!(
            t.get("elasticrds:cluster").map(String::as_str),
            Some("cluster1")
        );
        let extra: Tags = [("team".to_string(), "db".to_string())].into();
        f.write_tags(&id("r0"), &extra).await.expect("write tags");
        let t = f.read_tags(&id("r0")).await.expect("read tags");
        assert_eq!(t.get("team").map(String::as_str), Some("db"));
        assert_eq!(
            t.get("elasticrds:cluster").map(String::as_str),
            Some("cluster1")
        );
        // An empty describe is fine.
        assert!(f.describe(&[]).await.expect("describe none").is_empty());

        // Modify, delete; deleting or tagging what is gone is NotFound.
        f.modify_class(&id("r1"), &InstanceClass::parse("db.m5.large").unwrap())
            .await
            .expect("modify");
        f.delete_replica(&id("r1")).await.expect("delete");
        let e = f.delete_replica(&id("r1")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert_eq!(e.operation, "DeleteDBInstance");
        let e = f.read_tags(&id("r1")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        let e = f
            .modify_class(&id("r1"), &InstanceClass::parse("db.m5.large").unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    });
}

#[test]
fn rds_adapter_pages_through_many_instances() {
    let moto = Moto::start();
    let rds = rds_client(&moto.endpoint());
    // More than one page of DescribeDBInstances (moto pages at 100 by default).
    let n = 130;
    block_on(async {
        for i in 0..n {
            support::create_db_instance(&rds, &format!("db{i:03}"), "postgres").await;
        }
        let f = fleet(&moto);
        let ids: Vec<InstanceId> = (0..n).map(|i| id(&format!("db{i:03}"))).collect();
        let got = f.describe(&ids).await.expect("describe");
        assert_eq!(got.len(), n);
        let mut names: Vec<String> = got.iter().map(|i| i.id.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicates across pages");
    });
}

#[test]
fn tags_after_a_describe_need_no_arn_look_up() {
    let moto = Moto::start();
    let rds = rds_client(&moto.endpoint());
    let proxy = support::RecordingProxy::new(moto.port());
    block_on(async {
        support::create_db_instance(&rds, "tagged01", "mysql").await;
        let f = RdsFleet::from_client(rds_client(&proxy.endpoint()));
        // Without a describe first, the ARN is looked up once.
        let mut tags = elasticrds::core::domain::Tags::new();
        tags.insert("k".into(), "v".into());
        f.write_tags(&id("tagged01"), &tags).await.expect("write");
        f.write_tags(&id("TAGGED01"), &tags)
            .await
            .expect("write again");
        let got = f.read_tags(&id("tagged01")).await.expect("read");
        assert_eq!(got.get("k").map(String::as_str), Some("v"));
        let actions: Vec<String> = proxy.calls().into_iter().map(|c| c.action).collect();
        assert_eq!(
            actions,
            [
                "DescribeDBInstances",
                "AddTagsToResource",
                "AddTagsToResource",
                "ListTagsForResource"
            ],
            "one look-up, then the remembered ARN"
        );
        // A fresh adapter that has described the instance looks nothing up.
        let g = RdsFleet::from_client(rds_client(&proxy.endpoint()));
        let before = proxy.calls().len();
        g.describe(&[id("tagged01")]).await.expect("describe");
        g.write_tags(&id("tagged01"), &tags).await.expect("write");
        let actions: Vec<String> = proxy.calls()[before..]
            .iter()
            .map(|c| c.action.clone())
            .collect();
        assert_eq!(actions, ["DescribeDBInstances", "AddTagsToResource"]);
    });
}

#[test]
fn harness_emulators_listen_on_loopback_only() {
    let moto = Moto::start();
    let ms = support::Ministack::start();
    for port in [moto.port(), ms.port()] {
        let ss = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .expect("ss");
        let text = String::from_utf8_lossy(&ss.stdout).into_owned();
        assert!(
            text.contains(&format!("127.0.0.1:{port}")),
            "port {port} not on 127.0.0.1: {text:?}"
        );
        assert!(
            !text.contains(&format!("0.0.0.0:{port}")) && !text.contains(&format!("*:{port}")),
            "port {port} listens on all interfaces: {text:?}"
        );
    }
    // Both answer real API calls.
    block_on(async {
        let out = rds_client(&moto.endpoint())
            .describe_db_instances()
            .send()
            .await
            .expect("moto answers DescribeDBInstances");
        assert!(out.db_instances().is_empty());
        let cw = support::cloudwatch_client(&ms.endpoint());
        cw.put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name("CPUUtilization")
                    .value(42.0)
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value("cluster1s01")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("ministack answers PutMetricData");
        let listed = cw
            .list_metrics()
            .namespace("AWS/RDS")
            .send()
            .await
            .expect("ministack answers ListMetrics");
        assert!(
            listed
                .metrics()
                .iter()
                .any(|m| m.metric_name() == Some("CPUUtilization")),
            "{listed:?}"
        );
    });
    // Dropping the handles stops the servers.
    let (mp, sp) = (moto.port(), ms.port());
    drop(moto);
    drop(ms);
    assert!(
        !support::wait_for_port(mp, std::time::Duration::from_millis(300)),
        "moto still listening"
    );
    assert!(
        !support::wait_for_port(sp, std::time::Duration::from_millis(300)),
        "ministack still listening"
    );
}

#[test]
fn a_failed_action_exits_1_naming_the_aws_error() {
    // No snapshot in this moto: the master cannot be restored.
    let moto = Moto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.json");
    std::fs::write(&path, EXAMPLE).expect("write");
    let args = ["create-cluster", "cluster1", "--max-replicas", "1"];
    let r = Run::from(
        &args,
        elasticrds(Some(&moto.endpoint()))
            .arg("--config")
            .arg(&path)
            .args(args)
            .output()
            .expect("run"),
    );
    r.expect_code(1);
    assert!(
        r.stdout.contains("restore master cluster1m01")
            && r.stdout
                .contains("FAILED: RestoreDBInstanceFromDBSnapshot failed (not_found)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("error: 1 action(s) failed: restore master cluster1m01")
            && r.stderr.contains("DBSnapshotNotFound"),
        "{}",
        r.stderr
    );
    // The replica was not attempted: its source does not exist.
    assert!(
        r.stdout.contains("waiting: cluster1s01 absent"),
        "{}",
        r.stdout
    );
}

/// Ownership (issue 12): an instance holding a configured replica id is ours only if it is a
/// read replica of the cluster's master. A standalone instance (`cluster1s02`) and another
/// master's replica (`cluster1s03`, of `cluster2m01`), both made with the SDK outside
/// elasticrds, are never deleted, modified or counted; their slots are blocked and reported in
/// `create-cluster`, `status` (text and JSON) and refused by `modify-instance`. The SDK's
/// describe is the independent witness, the recording proxy shows every call made.
#[test]
fn instances_that_are_not_replicas_of_the_master_are_never_touched() {
    let w = World::new();
    w.run(&["create-cluster", "cluster1", "--max-replicas", "0"])
        .ok();
    block_on(async {
        support::create_db_instance(&w.rds, "cluster2m01", "mysql").await;
        support::create_db_instance(&w.rds, "cluster1s02", "mysql").await;
        w.rds
            .create_db_instance_read_replica()
            .db_instance_identifier("cluster1s03")
            .source_db_instance_identifier("cluster2m01")
            .db_instance_class("db.t3.small")
            .send()
            .await
            .expect("CreateDBInstanceReadReplica cluster1s03 of cluster2m01");
    });
    let before = w.instances();
    let untouched = |w: &World| {
        let now = w.instances();
        for id in ["cluster1s02", "cluster1s03", "cluster2m01"] {
            assert_eq!(now.get(id), before.get(id), "{id} changed");
        }
    };

    // The most the list allows now is one replica: s01 is created, nothing else is touched.
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "3",
        "--output",
        "json",
    ]);
    r.ok();
    let report = r.json();
    assert_eq!(
        planned(&report),
        pairs(&[("create_replica", "cluster1s01")]),
        "{report:#}"
    );
    assert_eq!(report["target_replicas"], 1, "{report:#}");
    assert_eq!(report["usable_slots"], 1, "{report:#}");
    let blocked: Vec<(String, String)> = report["blocked"]
        .as_array()
        .expect("blocked slots in the JSON")
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                b["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        blocked,
        pairs(&[
            ("cluster1s02", "standalone"),
            ("cluster1s03", "replica_of_other")
        ])
    );
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[("CreateDBInstanceReadReplica", "cluster1s01")])
    );
    untouched(&w);

    // The text output says why, and so does status (text and JSON).
    let r = w.run(&[
        "create-cluster",
        "cluster1",
        "--max-replicas",
        "3",
        "--dry-run",
    ]);
    r.ok();
    assert!(
        r.stdout
            .contains("conflict: cluster1s02 (position 2 of the list) is a standalone instance")
            && r.stdout.contains(
                "conflict: cluster1s03 (position 3 of the list) is a read replica of cluster2m01"
            )
            && r.stdout.contains("usable replica slots: 1 of 3"),
        "{}",
        r.stdout
    );
    let r = w.run(&["status", "cluster1"]);
    r.ok();
    let conflict_section = r
        .stdout
        .split_once("conflict (holds a configured id")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| panic!("no conflict section:\n{}", r.stdout));
    assert!(
        conflict_section.contains("cluster1s02") && conflict_section.contains("cluster1s03"),
        "{}",
        r.stdout
    );
    let (replicas_part, _) = r.stdout.split_once("conflict (").unwrap();
    assert!(
        !replicas_part.contains("cluster1s02") && !replicas_part.contains("cluster1s03"),
        "a conflicting instance listed as a read replica:\n{}",
        r.stdout
    );
    let st = w.run(&["status", "cluster1", "--output", "json"]);
    st.ok();
    let st = st.json();
    let kinds: Vec<&str> = st["conflicts"]
        .as_array()
        .expect("conflicts in status JSON")
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["standalone", "replica_of_other"], "{st:#}");
    let replica_ids: Vec<&str> = st["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(replica_ids, ["cluster1s01"], "{st:#}");

    // modify-instance refuses a conflicting instance, with no call.
    let r = w.run(&["modify-instance", "cluster1s02", "db.m5.large"]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("not a read replica of this cluster's master"),
        "{}",
        r.stderr
    );
    assert!(mutations(&w.proxy.calls()).is_empty());

    // Scale to 0: only s01 goes; the old code deleted s02 (a primary!) and s03 here.
    let r = w.run(&["create-cluster", "cluster1", "--max-replicas", "0"]);
    r.ok();
    assert_eq!(
        mutations(&w.proxy.calls()),
        pairs(&[("DeleteDBInstance", "cluster1s01")])
    );
    untouched(&w);
    assert!(w.instances().contains_key(MASTER));
}

/// `status` shows multi-AZ drift of the master (text and JSON) and lists the configured
/// replicas that do not exist in the text too, not only in the JSON.
#[test]
fn status_shows_multi_az_drift_and_absent_replicas() {
    let w = World::new();
    w.run(&["create-cluster", "cluster1", "--max-replicas", "1"])
        .ok();
    block_on(async {
        w.rds
            .modify_db_instance()
            .db_instance_identifier(MASTER)
            .multi_az(false)
            .apply_immediately(true)
            .send()
            .await
            .expect("ModifyDBInstance multi_az=false");
    });
    assert!(!w.instances()[MASTER].multi_az, "moto applied the change");
    let r = w.run(&["status", "cluster1"]);
    r.ok();
    let master_line = r
        .stdout
        .lines()
        .find(|l| l.contains(MASTER))
        .unwrap_or_default();
    assert!(
        master_line.contains("(drift: config says multi-AZ)"),
        "{}",
        r.stdout
    );
    let absent = r
        .stdout
        .split_once("absent (configured, not created)")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| panic!("no absent section:\n{}", r.stdout));
    assert!(
        absent.contains("cluster1s02") && absent.contains("cluster1s03"),
        "{}",
        r.stdout
    );
    let st = w.run(&["status", "cluster1", "--output", "json"]);
    st.ok();
    let st = st.json();
    assert_eq!(st["master"]["multi_az"], false, "{st:#}");
    assert_eq!(st["master"]["configured_multi_az"], true, "{st:#}");
    assert_eq!(st["master"]["multi_az_drift"], true, "{st:#}");
}
