//! Shared rig for the fault and crash tests (tests/faults.rs, tests/crash.rs): moto (RDS) and
//! ministack (CloudWatch) on loopback, each behind a [`proxy::FaultProxy`]; a two-cluster config
//! and policy files; the built `elasticrds run` pointed at the proxies; the oracle that reads
//! the fleet straight from moto; and the summary lines scripts/faults.sh adds up.
//!
//! Clusters: `ca` (master ca-m01, replicas ca-s01..ca-s04, a foreign replica ca-x01 of its
//! master made by hand) and `cb` (master cb-m01, replicas cb-s01..cb-s03). Fault rules are
//! usually scoped to `ca-` so that `cb` shows the other clusters are unaffected.
#![allow(dead_code)]

pub mod proxy;

use crate::support;
use proxy::{FaultProxy, Service};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CONFIG: &str = "ca:\n  master_node:\n    identifier: snap-ca\n    instance_id: ca-m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - {id: ca-s01, instance_class: db.t3.micro}\n    - {id: ca-s02, instance_class: db.t3.micro}\n    - {id: ca-s03, instance_class: db.t3.micro}\n    - {id: ca-s04, instance_class: db.t3.micro}\ncb:\n  master_node:\n    identifier: snap-cb\n    instance_id: cb-m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - {id: cb-s01, instance_class: db.t3.micro}\n    - {id: cb-s02, instance_class: db.t3.micro}\n    - {id: cb-s03, instance_class: db.t3.micro}\n";

pub const FOREIGN: &str = "ca-x01";

/// Every identifier the config lists.
pub fn configured() -> BTreeSet<String> {
    [
        "ca-m01", "ca-s01", "ca-s02", "ca-s03", "ca-s04", "cb-m01", "cb-s01", "cb-s02", "cb-s03",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A policy that holds the cluster at exactly `n` replicas (bounds corrections act at once,
/// whatever the metrics say), with short cooldowns.
pub fn fixed_policy(cluster: &str, n: usize) -> String {
    format!(
        "cluster: {cluster}\nmin_replicas: {n}\nmax_replicas: {n}\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  cooldown: 1s\nscale_in:\n  cooldown: 1s\n  stabilization: 0s\n"
    )
}

pub struct Rig {
    pub rt: tokio::runtime::Runtime,
    pub moto: support::Moto,
    pub ministack: support::Ministack,
    pub rds: FaultProxy,
    pub cw: FaultProxy,
    pub dir: tempfile::TempDir,
}

impl Rig {
    pub fn start() -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let moto = support::Moto::start();
        let ministack = support::Ministack::start();
        let up = |port: u16| -> std::net::SocketAddr { ([127, 0, 0, 1], port).into() };
        let rds = rt
            .block_on(FaultProxy::start(Service::Rds, up(moto.port())))
            .expect("rds proxy");
        let cw = rt
            .block_on(FaultProxy::start(Service::CloudWatch, up(ministack.port())))
            .expect("cloudwatch proxy");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("elasticrds.yaml"), CONFIG).unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        Rig {
            rt,
            moto,
            ministack,
            rds,
            cw,
            dir,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("elasticrds.yaml")
    }
    pub fn policies_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }
    pub fn set_policy(&self, cluster: &str, text: &str) {
        std::fs::write(self.policies_dir().join(format!("{cluster}.yaml")), text).unwrap();
    }

    /// Masters of both clusters, `ca_replicas` / `cb_replicas` of their configured replicas and
    /// the foreign replica, created straight on moto (not through the proxy).
    pub fn seed(&self, ca_replicas: usize, cb_replicas: usize) {
        let c = support::rds_client(&self.moto.endpoint());
        self.rt.block_on(async {
            for m in ["ca-m01", "cb-m01"] {
                support::create_db_instance(&c, m, "mysql").await;
            }
            let mut replicas: Vec<(String, &str)> = (1..=ca_replicas)
                .map(|i| (format!("ca-s{i:02}"), "ca-m01"))
                .chain((1..=cb_replicas).map(|i| (format!("cb-s{i:02}"), "cb-m01")))
                .collect();
            replicas.push((FOREIGN.to_string(), "ca-m01"));
            for (id, src) in replicas {
                c.create_db_instance_read_replica()
                    .db_instance_identifier(&id)
                    .source_db_instance_identifier(src)
                    .db_instance_class("db.t3.micro")
                    .send()
                    .await
                    .expect("seed replica");
            }
        });
    }

    /// For the restore scenarios: cluster ca has lost its master (a snapshot `snap-ca` of it
    /// remains, as the config names), cluster cb has its master and `cb_replicas` replicas.
    /// Created straight on moto (not through the proxy).
    pub fn seed_without_ca_master(&self, cb_replicas: usize) {
        let c = support::rds_client(&self.moto.endpoint());
        self.rt.block_on(async {
            for m in ["ca-m01", "cb-m01"] {
                support::create_db_instance(&c, m, "mysql").await;
            }
            c.create_db_snapshot()
                .db_instance_identifier("ca-m01")
                .db_snapshot_identifier("snap-ca")
                .send()
                .await
                .expect("seed snapshot");
            c.delete_db_instance()
                .db_instance_identifier("ca-m01")
                .skip_final_snapshot(true)
                .send()
                .await
                .expect("drop the master");
            for i in 1..=cb_replicas {
                c.create_db_instance_read_replica()
                    .db_instance_identifier(format!("cb-s{i:02}"))
                    .source_db_instance_identifier("cb-m01")
                    .db_instance_class("db.t3.micro")
                    .send()
                    .await
                    .expect("seed replica");
            }
        });
    }

    /// Instance classes on moto now, by identifier.
    pub fn classes(&self) -> std::collections::BTreeMap<String, String> {
        let c = support::rds_client(&self.moto.endpoint());
        self.rt.block_on(async {
            let out = c.describe_db_instances().send().await.expect("describe");
            out.db_instances()
                .iter()
                .filter_map(|i| {
                    Some((
                        i.db_instance_identifier()?.to_string(),
                        i.db_instance_class()?.to_string(),
                    ))
                })
                .collect()
        })
    }

    /// Identifiers that exist on moto now (read directly, not through the proxy).
    pub fn fleet(&self) -> BTreeSet<String> {
        let c = support::rds_client(&self.moto.endpoint());
        self.rt.block_on(async {
            let out = c.describe_db_instances().send().await.expect("describe");
            out.db_instances()
                .iter()
                .filter_map(|i| i.db_instance_identifier().map(str::to_string))
                .collect()
        })
    }

    /// Tags on an instance (directly on moto).
    pub fn tags(&self, id: &str) -> Vec<(String, String)> {
        let c = support::rds_client(&self.moto.endpoint());
        self.rt.block_on(async {
            let d = c
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .expect("describe");
            let arn = d.db_instances()[0].db_instance_arn().unwrap().to_string();
            let t = c
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .expect("tags");
            t.tag_list()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or("").to_string(),
                        t.value().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
    }

    /// `elasticrds run` pointed at the proxies.
    pub fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = support::elasticrds(Some(&self.rds.url()));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", self.cw.url())
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(self.config_path())
            .arg("run")
            .arg("--policies")
            .arg(self.policies_dir())
            .args(extra);
        cmd
    }

    /// Start `elasticrds run --interval 1s` with a /metrics listener; its stderr goes to a log
    /// file in the rig's directory.
    pub fn spawn(&self, name: &str, extra: &[&str]) -> RunProc {
        let port = support::free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = self.dir.path().join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let mut args = vec![
            "--interval",
            "1s",
            "--max-backoff",
            "2s",
            "--listen",
            &listen,
        ];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .expect("spawn elasticrds run");
        RunProc {
            child: Some(child),
            port,
            log,
        }
    }
}

/// A running `elasticrds run`.
pub struct RunProc {
    pub child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
}

impl RunProc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
    /// The /metrics text, when the server answers.
    pub fn metrics(&self) -> Option<String> {
        support::http_request(self.port, "GET", "/metrics").ok()
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// SIGKILL, at once.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
    /// SIGTERM and wait (bounded) for the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok();
        None
    }
}

impl Drop for RunProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sum of a metric's samples whose label set contains every `label="value"` given.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Poll `f` every 200 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The judged outcome of one scenario, as scripts/faults.sh adds them up.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Outcome {
    pub test: String,
    pub scenario: String,
    pub injected: usize,
    pub duplicates: usize,
    pub lost: usize,
    pub foreign: usize,
    pub converged: bool,
}

/// Mutating requests that named an identifier outside the config, or deleted a master.
pub fn foreign_touches(p: &FaultProxy) -> Vec<String> {
    let conf = configured();
    p.log()
        .iter()
        .filter(|e| {
            matches!(
                e.operation.as_str(),
                "CreateDBInstanceReadReplica"
                    | "DeleteDBInstance"
                    | "ModifyDBInstance"
                    | "RestoreDBInstanceFromDBSnapshot"
                    | "AddTagsToResource"
                    | "RemoveTagsFromResource"
            )
        })
        .filter(|e| {
            e.ids.iter().any(|id| {
                let id = id.to_ascii_lowercase();
                // The source of a create is the master: allowed; everything else must be listed.
                !conf.contains(&id) || (e.operation == "DeleteDBInstance" && id.ends_with("-m01"))
            })
        })
        .map(|e| format!("{} {:?}", e.operation, e.ids))
        .collect()
}

/// Instances whose presence differs from `expected` (among the configured replicas and the
/// foreign one, which must stay).
pub fn lost(fleet: &BTreeSet<String>, expected: &BTreeSet<String>) -> Vec<String> {
    let mut all: BTreeSet<String> = configured();
    all.insert(FOREIGN.to_string());
    all.into_iter()
        .filter(|id| fleet.contains(id) != expected.contains(id))
        .collect()
}

/// Append one outcome to target/faults-summary.jsonl (or $ELASTICRDS_FAULTS_SUMMARY).
pub fn record(o: &Outcome) {
    let path = std::env::var_os("ELASTICRDS_FAULTS_SUMMARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join("target/faults-summary.jsonl"));
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open summary");
    writeln!(f, "{}", serde_json::to_string(o).unwrap()).unwrap();
}

pub fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
