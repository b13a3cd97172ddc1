//! Replica templates against moto, checked with an independent client: `create-cluster` creates
//! replicas with the template's parameter group, monitoring, zones, tags and switches (the old
//! JSON config takes the same keys); what RDS cannot set at creation (backup retention) is
//! applied by the next run; a replica changed by hand shows as drift in `status` and `plan`,
//! and is brought back only with `repair_drift`; the master is never modified. And `unpark`
//! edits the master's parked tag, `--dry-run` changing nothing. Through the fault-injecting
//! proxy (what no emulator does): RDS's "no capacity" in the first zone moves the create to
//! the next one, a quota error stops after one call, and a replica RDS reports as
//! `incompatible-parameters` is shown as failed and not counted as serving.

mod faultkit;
mod support;

use aws_sdk_rds::types::DbInstance;
use std::collections::BTreeMap;
use std::path::PathBuf;
use support::{block_on, elasticrds, rds_client, Moto, RecordingProxy};

const ROLE: &str = "arn:aws:iam::123456789012:role/rds-monitoring";

fn config(repair: bool) -> String {
    format!(
        r#"{{
    "cluster1": {{
        "master_node": {{ "identifier": "snap1", "instance_id": "cluster1m01", "instance_class": "db.t3.micro" }},
        // The same keys as the YAML config.
        "replica_template": {{
            "parameter_group": "replicas-pg",
            "monitoring_interval": 60,
            "monitoring_role_arn": "{ROLE}",
            "availability_zones": ["us-east-1b", "us-east-1c"],
            "backup_retention_period": 3,
            "auto_minor_version_upgrade": false,
            "copy_tags_to_snapshot": true,
            "tags": {{ "team": "data" }},
            "repair_drift": {repair}
        }},
        "replica_nodes": [
            {{ "id": "cluster1s01", "instance_class": "db.t3.micro" }},
            {{ "id": "cluster1s02", "instance_class": "db.t3.micro",
               "template": {{ "availability_zones": ["us-east-1c"] }} }}
        ]
    }}
}}
"#
    )
}

struct World {
    /// Kept alive for the test (the proxy forwards to it).
    _moto: Moto,
    proxy: RecordingProxy,
    rds: aws_sdk_rds::Client,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let moto = Moto::start();
        let rds = rds_client(&moto.endpoint());
        block_on(async {
            support::create_snapshot(&rds, "snap1").await;
            rds.create_db_parameter_group()
                .db_parameter_group_name("replicas-pg")
                .db_parameter_group_family("mysql8.0")
                .description("replicas")
                .send()
                .await
                .expect("CreateDBParameterGroup");
        });
        let proxy = RecordingProxy::new(moto.port());
        let w = World {
            _moto: moto,
            proxy,
            rds,
            dir: tempfile::tempdir().unwrap(),
        };
        w.write(false);
        w
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("rds_cluster_conf.json")
    }

    fn write(&self, repair: bool) {
        std::fs::write(self.path(), config(repair)).unwrap();
    }

    fn run(&self, args: &[&str], code: i32) -> String {
        self.proxy.clear();
        let (got, text) = run_with(&self.proxy.endpoint(), &self.path(), args);
        assert_eq!(got, code, "{args:?}:\n{text}");
        text
    }

    /// Every instance on moto, as an independent client describes it.
    fn instances(&self) -> BTreeMap<String, DbInstance> {
        block_on(async {
            let out = self
                .rds
                .describe_db_instances()
                .send()
                .await
                .expect("describe");
            out.db_instances()
                .iter()
                .map(|d| (d.db_instance_identifier().unwrap().to_string(), d.clone()))
                .collect()
        })
    }

    /// The `ModifyDBInstance` calls of the last run, by instance.
    fn modified(&self) -> Vec<String> {
        (self.proxy.calls().iter())
            .filter(|c| c.action == "ModifyDBInstance")
            .filter_map(|c| c.param("DBInstanceIdentifier").map(str::to_string))
            .collect()
    }
}

/// The binary with `config`, RDS at `endpoint`: its exit code and its stdout then stderr.
fn run_with(endpoint: &str, config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = elasticrds(Some(endpoint))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn pg(d: &DbInstance) -> String {
    (d.db_parameter_groups().first())
        .and_then(|g| g.db_parameter_group_name())
        .unwrap_or_default()
        .to_string()
}

fn tag(d: &DbInstance, k: &str) -> Option<String> {
    (d.tag_list().iter())
        .find(|t| t.key() == Some(k))
        .and_then(|t| t.value().map(str::to_string))
}

#[test]
fn replicas_are_created_from_the_template_and_drift_is_reported_then_repaired() {
    let w = World::new();
    w.run(&["create-cluster", "cluster1"], 0);
    let all = w.instances();
    let master_pg = pg(&all["cluster1m01"]);
    for (id, zone) in [("cluster1s01", "us-east-1b"), ("cluster1s02", "us-east-1c")] {
        let r = &all[id];
        assert_eq!(pg(r), "replicas-pg", "{id}");
        assert_eq!(r.monitoring_interval(), Some(60), "{id}");
        assert_eq!(r.monitoring_role_arn(), Some(ROLE), "{id}");
        assert_eq!(r.availability_zone(), Some(zone), "{id}");
        assert_eq!(r.auto_minor_version_upgrade(), Some(false), "{id}");
        assert_eq!(r.copy_tags_to_snapshot(), Some(true), "{id}");
        assert_eq!(r.deletion_protection(), Some(false), "{id}");
        assert_eq!(r.publicly_accessible(), Some(false), "{id}");
        assert_eq!(tag(r, "team").as_deref(), Some("data"), "{id}");
        assert_eq!(
            tag(r, "elasticrds:managed-by").as_deref(),
            Some("elasticrds")
        );
    }
    // Backup retention is applied once the replicas are available (here: the next run).
    let plan = w.run(&["create-cluster", "cluster1", "--dry-run"], 0);
    assert!(
        plan.contains("modify cluster1s01 settings backup_retention_period=3"),
        "{plan}"
    );
    w.run(&["create-cluster", "cluster1"], 0);
    let all = w.instances();
    for id in ["cluster1s01", "cluster1s02"] {
        assert_eq!(all[id].backup_retention_period(), Some(3), "{id}");
    }
    assert!(!w.modified().contains(&"cluster1m01".to_string()));
    // Changed by hand: reported, not changed, until repair_drift is on.
    block_on(async {
        w.rds
            .modify_db_instance()
            .db_instance_identifier("cluster1s01")
            .db_parameter_group_name(master_pg.clone())
            .apply_immediately(true)
            .send()
            .await
            .expect("modify by hand")
    });
    let status = w.run(&["status", "cluster1"], 0);
    let want = format!("template drift: cluster1s01: parameter_group {master_pg} (template replicas-pg) [reported]");
    assert!(status.contains(&want), "{status}");
    let json = w.run(&["status", "cluster1", "--output", "json"], 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["template_drift"][0]["settings"][0]["setting"], "parameter_group",
        "{v}"
    );
    w.run(&["create-cluster", "cluster1"], 0);
    assert_eq!(
        pg(&w.instances()["cluster1s01"]),
        master_pg,
        "reported only"
    );
    assert!(w.modified().is_empty(), "{:?}", w.modified());
    w.write(true);
    w.run(&["create-cluster", "cluster1"], 0);
    assert_eq!(w.modified(), ["cluster1s01"]);
    let all = w.instances();
    assert_eq!(pg(&all["cluster1s01"]), "replicas-pg");
    assert_eq!(
        pg(&all["cluster1m01"]),
        master_pg,
        "the master is never modified"
    );
}

#[test]
fn unpark_takes_a_slot_out_of_the_masters_parked_tag() {
    let w = World::new();
    w.run(&["create-cluster", "cluster1", "--max-replicas", "1"], 0);
    let arn = w.instances()["cluster1m01"]
        .db_instance_arn()
        .unwrap()
        .to_string();
    block_on(async {
        let t = aws_sdk_rds::types::Tag::builder()
            .key("elasticrds:parked")
            .value("cluster1s02 cluster1s01")
            .build();
        w.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .tags(t)
            .send()
            .await
            .expect("tag")
    });
    let status = w.run(&["status", "cluster1"], 0);
    assert!(
        status.contains("parked: cluster1s02 (absent) failed repeatedly"),
        "{status}"
    );
    assert!(
        status.contains("elasticrds unpark cluster1 cluster1s02"),
        "{status}"
    );
    let parked = || tag(&w.instances()["cluster1m01"], "elasticrds:parked");
    let dry = w.run(&["unpark", "cluster1", "cluster1s02", "--dry-run"], 0);
    assert!(dry.contains("nothing changed"), "{dry}");
    assert_eq!(parked().as_deref(), Some("cluster1s02 cluster1s01"));
    w.run(&["unpark", "cluster1", "cluster1s02"], 0);
    assert_eq!(parked().as_deref(), Some("cluster1s01"));
    w.run(&["unpark", "cluster1", "cluster1s01"], 0);
    assert_eq!(parked(), None, "the last one removes the tag");
    let again = w.run(&["unpark", "cluster1", "cluster1s01"], 0);
    assert!(again.contains("is not parked"), "{again}");
    let bad = w.run(&["unpark", "cluster1", "cluster1m01"], 2);
    assert!(
        bad.contains("is not a replica of cluster cluster1"),
        "{bad}"
    );
}

/// moto behind the fault-injecting proxy, with the template config.
struct Faulty {
    rt: tokio::runtime::Runtime,
    _moto: Moto,
    proxy: faultkit::proxy::FaultProxy,
    rds: aws_sdk_rds::Client,
    dir: tempfile::TempDir,
}

impl Faulty {
    fn new() -> Faulty {
        let w = World::new();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let up: std::net::SocketAddr = ([127, 0, 0, 1], w._moto.port()).into();
        let proxy = rt
            .block_on(faultkit::proxy::FaultProxy::start(
                faultkit::proxy::Service::Rds,
                up,
            ))
            .expect("proxy");
        Faulty {
            rt,
            _moto: w._moto,
            proxy,
            rds: w.rds,
            dir: w.dir,
        }
    }

    fn run(&self, args: &[&str]) -> (i32, String) {
        let config = self.dir.path().join("rds_cluster_conf.json");
        run_with(&self.proxy.url(), &config, args)
    }

    fn creates(&self) -> usize {
        self.proxy.count("CreateDBInstanceReadReplica")
    }
}

#[test]
fn rds_capacity_and_state_faults_through_the_proxy() {
    use faultkit::proxy::{Fault, Rule};
    let f = Faulty::new();
    // No capacity in the first zone (us-east-1b) for the first replica: created in us-east-1c.
    f.proxy.add_rule(Rule::new(
        "CreateDBInstanceReadReplica",
        Fault::Error("InsufficientDBInstanceCapacity"),
        1,
    ));
    let (code, out) = f.run(&["create-cluster", "cluster1", "--max-replicas", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no capacity for db.t3.micro in us-east-1b"),
        "{out}"
    );
    assert!(
        out.contains("created as db.t3.micro in us-east-1c"),
        "{out}"
    );
    assert_eq!(f.creates(), 2, "one failed attempt, one in the next zone");
    let zone = block_on(async {
        let d = f
            .rds
            .describe_db_instances()
            .db_instance_identifier("cluster1s01")
            .send()
            .await;
        d.unwrap().db_instances()[0]
            .availability_zone()
            .map(str::to_string)
    });
    assert_eq!(zone.as_deref(), Some("us-east-1c"));
    // An account quota: one call, no fallback into it, exit 1 naming it.
    f.proxy.clear_rules();
    f.proxy.add_rule(Rule::new(
        "CreateDBInstanceReadReplica",
        Fault::Error("InstanceQuotaExceeded"),
        5,
    ));
    let before = f.creates();
    let (code, out) = f.run(&["create-cluster", "cluster1"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("quota_exceeded") && out.contains("InstanceQuotaExceeded"),
        "{out}"
    );
    assert_eq!(f.creates() - before, 1, "{out}");
    // A replica RDS reports as incompatible-parameters: failed, not serving.
    f.proxy.clear_rules();
    f.proxy.add_rule(Rule::new(
        "DescribeDBInstances",
        Fault::Status {
            id: "cluster1s01",
            status: "incompatible-parameters",
        },
        100,
    ));
    let (code, out) = f.run(&["status", "cluster1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("failed: cluster1s01 is incompatible-parameters (not serving"),
        "{out}"
    );
    let (_, json) = f.run(&["status", "cluster1", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["broken"][0]["id"], "cluster1s01", "{v}");
    drop(f.rt);
}

/// `spread` asks RDS which zones offer the class; moto offers none for MySQL, and then RDS
/// chooses (the spreading itself is tested on the simulated fleet, tests/templates.rs).
#[test]
fn spread_asks_rds_for_the_zones_it_offers() {
    let w = World::new();
    let text = config(false).replace(
        r#""availability_zones": ["us-east-1b", "us-east-1c"],"#,
        r#""availability_zones": "spread","#,
    );
    let text = text.replace(
        r#",
               "template": { "availability_zones": ["us-east-1c"] }"#,
        "",
    );
    std::fs::write(w.path(), text).unwrap();
    w.run(&["create-cluster", "cluster1"], 0);
    let asked = (w.proxy.calls().iter())
        .filter(|c| c.action == "DescribeOrderableDBInstanceOptions")
        .count();
    assert!(asked > 0, "the zones RDS offers were asked for");
    let creates: Vec<Option<String>> = (w.proxy.calls().iter())
        .filter(|c| c.action == "CreateDBInstanceReadReplica")
        .map(|c| c.param("AvailabilityZone").map(str::to_string))
        .collect();
    assert_eq!(creates, [None, None], "no zone offered: RDS chooses");
    assert!(w.instances().contains_key("cluster1s02"));
}

/// The service (`run --once`, with ministack for CloudWatch) creates its replica from the
/// template too: the same executor as `create-cluster`.
#[test]
fn the_service_creates_replicas_from_the_template() {
    let w = World::new();
    let ms = support::Ministack::start();
    w.run(&["create-cluster", "cluster1", "--max-replicas", "0"], 0);
    let policies = w.dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(
        policies.join("cluster1.yaml"),
        "cluster: cluster1\nmin_replicas: 1\nmax_replicas: 2\nrules:\n  - metric: cpu\n    target: 60\n",
    )
    .unwrap();
    let out = elasticrds(Some(&w.proxy.endpoint()))
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", ms.endpoint())
        .arg("--config")
        .arg(w.path())
        .args(["run", "--once", "--policies"])
        .arg(&policies)
        .output()
        .expect("run --once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = w.instances();
    let r = &all["cluster1s01"];
    assert_eq!(pg(r), "replicas-pg");
    assert_eq!(r.availability_zone(), Some("us-east-1b"));
    assert_eq!(tag(r, "team").as_deref(), Some("data"));
    assert!(!all.contains_key("cluster1s02"), "min 1: one replica");
}
