//! Several copies of `elasticrds run` sharing clusters through leases in moto's DynamoDB, with
//! RDS on moto (behind a recording proxy: the fleet's side of every action) and CloudWatch on
//! ministack (three copies, 30 clusters): every cluster is held by exactly one copy at every sampled instant, about a third
//! each; `kill -9` of a copy moves its clusters within the lease duration plus a renewal; no
//! replica is created twice; SIGTERM hands the leases over at once; `leases` shows who holds
//! what; `lease-table create` makes the table.

mod faultkit;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{elasticrds, Moto, RecordingProxy};

const CLUSTERS: usize = 30;
const TABLE: &str = "elasticrds-leases";

fn config() -> String {
    (0..CLUSTERS)
        .map(|i| {
            format!(
                "k{i:02}:\n  master_node: {{identifier: snap, instance_id: k{i:02}-m, instance_class: db.t3.micro}}\n  replica_nodes:\n    - {{id: k{i:02}-r1, instance_class: db.t3.micro}}\n"
            )
        })
        .collect()
}

struct Rig {
    moto: Moto,
    ms: support::Ministack,
    proxy: RecordingProxy,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let moto = Moto::start();
        let rds = support::rds_client(&moto.endpoint());
        support::block_on(async {
            for i in 0..CLUSTERS {
                support::create_db_instance(&rds, &format!("k{i:02}-m"), "mysql").await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elasticrds.yaml"), config()).unwrap();
        std::fs::write(
            dir.path().join("default.yaml"),
            "cluster: \"*\"\nmin_replicas: 1\nmax_replicas: 1\nrules:\n  - metric: cpu\n    target: 60\n",
        )
        .unwrap();
        let proxy = RecordingProxy::new(moto.port());
        let rig = Rig {
            ms: support::Ministack::start(),
            proxy,
            moto,
            dir,
        };
        let out = rig.cli(&["lease-table", "create", TABLE]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        rig
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut c = elasticrds(Some(&self.proxy.endpoint()));
        c.env("AWS_ENDPOINT_URL_DYNAMODB", self.moto.endpoint())
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", self.ms.endpoint())
            .arg("--config")
            .arg(self.dir.path().join("elasticrds.yaml"))
            .args(args)
            .current_dir(self.dir.path());
        c
    }

    fn copy(&self, id: &str) -> Child {
        self.copy_via(id, &self.moto.endpoint(), None)
    }

    /// A copy whose DynamoDB calls go to `dynamodb` (moto, or a fault proxy in front of it),
    /// logging JSON at debug level to `<id>.log`.
    fn copy_via(&self, id: &str, dynamodb: &str, rds: Option<&RecordingProxy>) -> Child {
        let default = self.dir.path().join("default.yaml");
        let mut c = self.cli(&[
            "run",
            "--interval",
            "1s",
            "--lease-table",
            TABLE,
            "--lease-duration",
            "6s",
            "--lease-renew",
            "2s",
            "--lease-skew",
            "1s",
            "--copy-id",
            id,
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--default-policy",
        ]);
        c.env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
            .env("RUST_LOG", "debug");
        if let Some(p) = rds {
            c.env("AWS_ENDPOINT_URL_RDS", p.endpoint());
        }
        let log = std::fs::File::create(self.dir.path().join(format!("{id}.log"))).unwrap();
        c.arg(default).stdout(Stdio::null()).stderr(log);
        c.spawn().expect("spawn a copy")
    }

    /// cluster → holder, of the leases in force now (from `elasticrds leases --output json`).
    fn holders(&self) -> BTreeMap<String, String> {
        let out = self
            .cli(&["leases", "--lease-table", TABLE, "--output", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(v["at"].as_str().unwrap()).unwrap();
        (v["leases"].as_array().unwrap().iter())
            .filter(|l| l["owner"].as_str().is_some_and(|o| !o.is_empty()))
            .filter(|l| {
                chrono::DateTime::parse_from_rfc3339(l["expires"].as_str().unwrap()).unwrap() > at
            })
            .map(|l| {
                (
                    l["key"].as_str().unwrap().to_string(),
                    l["owner"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Creates per replica id, over every copy's recorder.
fn creates(seen: &[RecordingProxy]) -> BTreeMap<String, usize> {
    // Attempts of one SDK invocation count once: a retry of a call whose answer was lost (RDS
    // refuses it with DBInstanceAlreadyExists when the first attempt landed; moto would
    // overwrite) is not a second decision to create, as in the fault matrix's ledger.
    let mut calls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in seen.iter().flat_map(|p| p.calls()) {
        if c.action == "CreateDBInstanceReadReplica" {
            let once = c
                .invocation
                .clone()
                .unwrap_or_else(|| format!("{:?}", c.at));
            (calls.entry(c.instance().unwrap_or("?").to_string()))
                .or_default()
                .insert(once);
        }
    }
    calls.into_iter().map(|(id, inv)| (id, inv.len())).collect()
}

/// Who sent each CreateDBInstanceReadReplica of the replicas in `dup`, and when (ms since the
/// first of them): the failure message tells a retry by one copy from two copies acting.
fn creators(seen: &[RecordingProxy], names: &[&str], dup: &[(String, usize)]) -> Vec<String> {
    let mut out: Vec<(Instant, String)> = Vec::new();
    for (p, name) in seen.iter().zip(names) {
        for c in p.calls() {
            let id = c.instance().unwrap_or("?").to_string();
            if c.action == "CreateDBInstanceReadReplica" && dup.iter().any(|(d, _)| *d == id) {
                let inv = c.invocation.as_deref().unwrap_or("-");
                out.push((c.at, format!("{name} {id} invocation {inv}")));
            }
        }
    }
    out.sort();
    let first = out.first().map(|(t, _)| *t);
    (out.into_iter())
        .map(|(t, w)| format!("{w} +{}ms", first.map_or(0, |f| (t - f).as_millis())))
        .collect()
}

/// From the fleet's side: per cluster, the changes (creates, tag writes) made by each copy form
/// one unbroken run in time — a copy never acts on a cluster again once another one has —
/// within each phase between `stops` (the instants a copy was told to stop). Across a stop, a
/// cluster may go back to a copy that held it before (c holds k15, hands it to a for a fair
/// share, and takes it again when a dies): that is a hand-over, not an interleaving.
fn no_interleaving(seen: &[RecordingProxy], names: &[&str], stops: &[Instant]) {
    let mut acts: Vec<(Instant, String, &str)> = Vec::new();
    for (p, name) in seen.iter().zip(names) {
        for c in p.mutations() {
            let target = c
                .instance()
                .or(c.param("ResourceName"))
                .unwrap_or("")
                .to_string();
            let cluster = target
                .rsplit(':')
                .next()
                .unwrap_or("")
                .get(..3)
                .unwrap_or("")
                .to_string();
            acts.push((c.at, cluster, name));
        }
    }
    acts.sort();
    let mut runs: BTreeMap<(usize, String), Vec<&str>> = BTreeMap::new();
    for (at, cluster, name) in &acts {
        let phase = stops.iter().filter(|s| *s <= at).count();
        let r = runs.entry((phase, cluster.clone())).or_default();
        if r.last() != Some(name) {
            assert!(
                !r.contains(name),
                "{cluster}: acted on by {r:?} then {name} again, between stops {phase} and {}",
                phase + 1
            );
            r.push(name);
        }
    }
    let clusters: BTreeSet<&String> = runs.keys().map(|(_, c)| c).collect();
    assert!(
        clusters.len() >= CLUSTERS,
        "every cluster was acted on: {runs:?}"
    );
}

fn wait_for(what: &str, limit: Duration, ok: impl FnMut() -> bool) -> Duration {
    wait_for_in(None, what, limit, ok)
}

fn wait_for_in(
    dir: Option<&std::path::Path>,
    what: &str,
    limit: Duration,
    mut ok: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() >= limit {
            let logs: String = ["a", "b", "c"]
                .iter()
                .filter_map(|c| std::fs::read_to_string(dir?.join(format!("{c}.log"))).ok())
                .map(|l| l.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
                .collect::<Vec<_>>()
                .join("\n----\n");
            panic!("timed out waiting for {what}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    start.elapsed()
}

#[test]
fn three_copies_share_the_clusters_and_a_dead_ones_move() {
    let rig = Rig::new();
    // Each copy's RDS calls through a recorder of its own: the fleet's side of who acted when.
    let seen: Vec<RecordingProxy> = (0..3)
        .map(|_| RecordingProxy::new(rig.moto.port()))
        .collect();
    let mut copies: Vec<(String, Child)> = ["a", "b", "c"]
        .iter()
        .zip(&seen)
        .map(|(id, p)| {
            (
                id.to_string(),
                rig.copy_via(id, &rig.moto.endpoint(), Some(p)),
            )
        })
        .collect();
    // All held, and fairly: 30 clusters, 3 copies → 10 each once the shares settle.
    wait_for_in(
        Some(rig.dir.path()),
        "a fair share",
        Duration::from_secs(40),
        || {
            let h = rig.holders();
            let mut per: BTreeMap<&str, usize> = BTreeMap::new();
            for o in h.values() {
                *per.entry(o.as_str()).or_default() += 1;
            }
            h.len() == CLUSTERS && per.len() == 3 && per.values().all(|n| *n == 10)
        },
    );
    // Exactly one holder per cluster at every sample (a map cannot hold two; no gap either).
    for _ in 0..8 {
        assert_eq!(rig.holders().len(), CLUSTERS);
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for("a replica per cluster", Duration::from_secs(30), || {
        creates(&seen).len() == CLUSTERS
    });
    // kill -9 of "a": its clusters move within the lease duration plus a renewal.
    let a_held: BTreeSet<String> = (rig.holders().into_iter())
        .filter(|(_, o)| o == "a")
        .map(|(c, _)| c)
        .collect();
    let a_stopped = Instant::now();
    copies[0].1.kill().unwrap();
    let _ = copies[0].1.wait();
    let moved = wait_for_in(
        Some(rig.dir.path()),
        "the dead copy's clusters to move",
        Duration::from_secs(30),
        || {
            let h = rig.holders();
            a_held.iter().all(|c| h.get(c).is_some_and(|o| o != "a"))
        },
    );
    // Lease duration 6 s + skew 1 s + one renewal round 2 s, plus the take-over round itself
    // (a conditional write per cluster on the emulator, ten clusters) and the 250 ms probe: 4 s
    // of slack (2 s was exceeded by 0.24 s once on a slow day of this 2-core VM).
    assert!(
        moved <= Duration::from_secs(6 + 1 + 2 + 4),
        "moved after {moved:?}"
    );
    eprintln!("failover after kill -9: {moved:?}");
    // SIGTERM of "b": its leases are released, "c" takes everything at its next rounds.
    let b = copies[1].1.id().to_string();
    let b_stopped = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &b])
        .status()
        .unwrap()
        .success());
    let _ = copies[1].1.wait();
    let handed = wait_for_in(
        Some(rig.dir.path()),
        "c to hold everything",
        Duration::from_secs(20),
        || rig.holders().values().all(|o| o == "c") && rig.holders().len() == CLUSTERS,
    );
    eprintln!("hand-over after SIGTERM: {handed:?}");
    assert!(
        handed <= Duration::from_secs(2 + 2),
        "handed over after {handed:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let retried: Vec<(String, usize)> = (seen.iter().flat_map(|p| p.calls()))
        .filter(|c| c.action == "CreateDBInstanceReadReplica")
        .fold(BTreeMap::<String, usize>::new(), |mut m, c| {
            *m.entry(c.instance().unwrap_or("?").to_string())
                .or_default() += 1;
            m
        })
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    if !retried.is_empty() {
        eprintln!(
            "creates sent more than once (SDK attempts included): {:?}",
            creators(&seen, &["a", "b", "c"], &retried)
        );
    }
    let dup: Vec<(String, usize)> = creates(&seen).into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(
        dup.is_empty(),
        "created twice: {dup:?}; by copy: {:?}",
        creators(&seen, &["a", "b", "c"], &dup)
    );
    assert_eq!(
        creates(&seen).len(),
        CLUSTERS,
        "one replica per cluster, none lost"
    );
    no_interleaving(&seen, &["a", "b", "c"], &[a_stopped, b_stopped]);
    for (_, mut c) in copies.drain(..) {
        let _ = c.kill();
        let _ = c.wait();
    }
    // `leases` as text names the holders.
    let out = rig
        .cli(&["leases", "--lease-table", TABLE])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("k00") && text.contains("counter"), "{text}");
}

/// `(time, cluster)` of the log lines of `copy` whose message is `message`.
fn logged(
    dir: &std::path::Path,
    copy: &str,
    message: &str,
) -> Vec<(chrono::DateTime<chrono::Utc>, String)> {
    let text = std::fs::read_to_string(dir.join(format!("{copy}.log"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .filter_map(|v| {
            let at = chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
            let cluster = v["cluster"].as_str()?.to_string();
            Some((at.with_timezone(&chrono::Utc), cluster))
        })
        .collect()
}

/// A copy cut off from DynamoDB (the fault-injecting proxy answers every call 503) stops
/// deciding on its clusters before the other copy takes their leases over: from each copy's
/// own log, a's last decision on a cluster comes before b's acquisition of its lease.
#[test]
fn a_copy_cut_off_from_the_table_stops_acting_before_its_leases_move() {
    use faultkit::proxy::{Fault, FaultProxy, Rule, Service};
    let rig = Rig::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let up: std::net::SocketAddr = ([127, 0, 0, 1], rig.moto.port()).into();
    let proxy = rt
        .block_on(FaultProxy::start(Service::Rds, up))
        .expect("proxy");
    let mut a = rig.copy_via("a", &proxy.url(), None);
    let mut b = rig.copy("b");
    wait_for("two even shares", Duration::from_secs(40), || {
        let h = rig.holders();
        let n = h.values().filter(|o| *o == "a").count();
        h.len() == CLUSTERS && n == CLUSTERS / 2
    });
    std::thread::sleep(Duration::from_secs(2));
    let a_held: BTreeSet<String> = (rig.holders().into_iter())
        .filter(|(_, o)| o == "a")
        .map(|(c, _)| c)
        .collect();
    let cut = chrono::Utc::now();
    proxy.add_rule(Rule::new("*", Fault::Http503, 1_000_000));
    wait_for("b to hold everything", Duration::from_secs(40), || {
        let h = rig.holders();
        h.len() == CLUSTERS && h.values().all(|o| o == "b")
    });
    std::thread::sleep(Duration::from_secs(2));
    let _ = a.kill();
    let _ = b.kill();
    let (_, _) = (a.wait(), b.wait());
    let decided = logged(rig.dir.path(), "a", "decision");
    let acquired = logged(rig.dir.path(), "b", "lease acquired");
    assert!(
        decided.iter().any(|(t, _)| *t < cut),
        "a decided before the cut"
    );
    for c in &a_held {
        let last_a = decided
            .iter()
            .filter(|(_, x)| x == c)
            .map(|(t, _)| *t)
            .max();
        let first_b = (acquired.iter())
            .filter(|(t, x)| x == c && *t > cut)
            .map(|(t, _)| *t)
            .min()
            .unwrap_or_else(|| panic!("b never acquired {c}"));
        let last_a = last_a.unwrap_or_else(|| panic!("a never decided on {c}"));
        assert!(
            last_a < first_b,
            "{c}: a decided at {last_a}, b took it at {first_b}"
        );
    }
    drop(rt);
}
