//! Graceful scale-in through Debian's haproxy 2.6 on loopback: the test renders the config with
//! elasticrds from a simulated fleet whose replica endpoints are small loopback listeners,
//! starts haproxy (stats socket in a temp dir), holds connections open to one replica and
//! scales in through the shared reconciler. Shown: new connections go elsewhere once the drain
//! starts, the delete happens only after the held connections close (or at the drain timeout,
//! which ends them), the server is gone from HAProxy and from the config file afterwards; an
//! unreachable HAProxy holds the scale-in (`wait`) or lets it go ahead (`proceed`); replicas
//! are added at runtime by `sync_router` once their lag is under the bound.
//! haproxy missing or not starting makes these tests FAIL.

mod support;

use chrono::{DateTime, Utc};
use elasticrds::adapters::haproxy::render::{render, RenderOptions};
use elasticrds::adapters::haproxy::HaproxyRuntime;
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::{ClusterSpec, Config};
use elasticrds::core::domain::{Endpoint, InstanceId};
use elasticrds::core::plan::{plan, Action, Target};
use elasticrds::ports::{Clock, ErrorKind, ManualClock, SystemClock, TrafficRouter};
use elasticrds::reconcile::{
    execute_routed, observe_one, sync_router, ExecOptions, Outcome, RouterHook,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IO: Duration = Duration::from_secs(5);

/// A loopback listener standing in for a DB instance: greets every connection with its name
/// and keeps it open until the peer closes.
struct StandIn {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stand_in(name: &str) -> StandIn {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind stand-in");
    let port = l.local_addr().unwrap().port();
    let name = name.to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let name = name.clone();
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            });
        }
    });
    StandIn { port, task }
}

/// Connect through HAProxy and return the connection and the name of the instance it reached.
async fn client(port: u16) -> (TcpStream, String) {
    let mut s = tokio::time::timeout(IO, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect through haproxy: timeout")
        .expect("connect through haproxy");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(IO, s.read(&mut b))
            .await
            .expect("greeting through haproxy: timeout")
            .expect("read greeting");
        assert!(n == 1, "haproxy closed the connection before a greeting");
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    (s, String::from_utf8(line).unwrap())
}

/// Whether the peer closed `s` within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 16];
    matches!(
        tokio::time::timeout(within, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

struct Rig {
    _dir: tempfile::TempDir,
    spec: ClusterSpec,
    fleet: Arc<SimFleet>,
    front_port: u16,
    cfg_path: PathBuf,
    _haproxy: support::Server,
    _standins: Vec<StandIn>,
}

fn spec_for(dir: &Path, replicas: &[&str], extra: &str) -> ClusterSpec {
    let sock = dir.join("admin.sock");
    let cfg = dir.join("haproxy.cfg");
    let mut y = String::from(
        "c1:\n  master_node: {identifier: snap, instance_id: m1, instance_class: db.t3.micro}\n  replica_nodes:\n",
    );
    for r in replicas {
        y.push_str(&format!("    - {{id: {r}, instance_class: db.t3.micro}}\n"));
    }
    y.push_str(&format!(
        "  haproxy: {{socket: {}, backend: replicas, config_file: {}{extra}}}\n",
        sock.display(),
        cfg.display()
    ));
    Config::parse("c.yaml", &y)
        .expect("test config")
        .cluster("c1")
        .unwrap()
        .clone()
}

/// Put `id` on the fleet as available, its endpoint the stand-in's port.
fn seed(fleet: &SimFleet, id: &str, port: u16, source: Option<&str>) {
    let mut i = fleet.available_instance(id, "db.t3.micro");
    i.endpoint = Some(Endpoint {
        address: "127.0.0.1".into(),
        port,
    });
    i.source = source.map(InstanceId::from_aws);
    fleet.insert(i);
}

/// Seed the fleet (master m1 and `available` replicas), render the config with elasticrds
/// and start haproxy on it. `configured` replicas are in the cluster config; only the
/// `available` ones exist on the fleet when the config is rendered.
async fn rig(clock: Arc<dyn Clock>, configured: &[&str], available: &[&str], extra: &str) -> Rig {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = spec_for(dir.path(), configured, extra);
    // An engine without a protocol check: the stand-ins speak no DB protocol.
    let fleet = Arc::new(SimFleet::new(
        clock,
        SimOptions {
            engine: "loopback-test".into(),
            ..Default::default()
        },
    ));
    let mut standins = Vec::new();
    let m = stand_in("m1").await;
    seed(&fleet, "m1", m.port, None);
    standins.push(m);
    for r in available {
        let s = stand_in(r).await;
        seed(&fleet, r, s.port, Some("m1"));
        standins.push(s);
    }
    let front_port = support::free_port();
    let view = observe_one(&*fleet, &spec).await.expect("observe");
    let text = render(
        &spec,
        &view,
        &RenderOptions {
            bind: Some(format!("127.0.0.1:{front_port}")),
            template: None,
        },
    )
    .expect("render");
    let cfg_path = PathBuf::from(spec.haproxy.as_ref().unwrap().config_file.clone().unwrap());
    std::fs::write(&cfg_path, &text).unwrap();
    let mut cmd = Command::new(support::haproxy_bin());
    cmd.arg("-db").arg("-f").arg(&cfg_path);
    let haproxy = tokio::task::block_in_place(|| {
        support::Server::spawn("haproxy", cmd, front_port, Duration::from_secs(20))
    });
    Rig {
        _dir: dir,
        spec,
        fleet,
        front_port,
        cfg_path,
        _haproxy: haproxy,
        _standins: standins,
    }
}

impl Rig {
    fn runtime(&self) -> HaproxyRuntime {
        HaproxyRuntime::from_spec(self.spec.haproxy.as_ref().unwrap())
    }
    fn hook(&self, clock: Arc<dyn Clock>, poll: Duration) -> RouterHook {
        let mut h = RouterHook::new(
            Arc::new(self.runtime()),
            self.spec.haproxy.clone().unwrap(),
            clock,
        );
        h.poll = poll;
        h
    }
    fn deletes(&self) -> Vec<(String, DateTime<Utc>)> {
        self.fleet
            .calls()
            .into_iter()
            .filter(|c| c.operation == "delete_replica")
            .map(|c| (c.id.unwrap().to_string(), c.at))
            .collect()
    }
    async fn status_of(&self, name: &str) -> Option<String> {
        self.runtime()
            .server(name)
            .await
            .expect("show stat")
            .map(|s| s.status)
    }
    /// Open connections until `n` of them reached `name`; the others are closed.
    async fn hold_on(&self, name: &str, n: usize) -> Vec<TcpStream> {
        let mut held = Vec::new();
        for _ in 0..n * 6 {
            let (s, who) = client(self.front_port).await;
            if who == name {
                held.push(s);
                if held.len() == n {
                    return held;
                }
            }
        }
        panic!("could not get {n} connections onto {name}");
    }
}

async fn wait_status(rig: &Rig, name: &str, want: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let st = rig.status_of(name).await;
        if st.as_deref().is_some_and(|s| s.starts_with(want)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} did not reach {want} within {within:?} (now {st:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_drains_then_deletes_after_connections_close() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let rig = rig(
        clock.clone(),
        &["r1", "r2"],
        &["r1", "r2"],
        ", drain_timeout: 60s",
    )
    .await;
    assert!(rig.status_of("r2").await.unwrap().starts_with("UP"));

    let mut held = rig.hold_on("r2", 2).await;
    let st = rig
        .runtime()
        .state(&InstanceId::from_aws("r2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.current_sessions, 2);
    assert!(st.accepting);

    // Scale in to one replica: the plan deletes r2 (the end of the list).
    let view = observe_one(&*rig.fleet, &rig.spec).await.unwrap();
    let p = plan(&rig.spec, &view, &Target::replicas(1));
    assert!(
        matches!(&p.actions[..], [a] if matches!(&a.action, Action::DeleteReplica { id } if id.as_str() == "r2"))
    );
    let hook = rig.hook(clock.clone(), Duration::from_millis(100));
    let (fleet, spec) = (rig.fleet.clone(), rig.spec.clone());
    let task = tokio::spawn(async move {
        execute_routed(&*fleet, &spec, &p, &ExecOptions::default(), Some(&hook)).await
    });

    wait_status(&rig, "r2", "DRAIN", Duration::from_secs(10)).await;
    // Draining: every new connection goes to r1, and nothing is deleted yet.
    for _ in 0..6 {
        let (_s, who) = client(rig.front_port).await;
        assert_eq!(who, "r1", "a new connection reached the draining replica");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rig.deletes().is_empty(), "deleted while sessions were open");
    assert!(!task.is_finished());
    let st = rig
        .runtime()
        .state(&InstanceId::from_aws("r2"))
        .await
        .unwrap()
        .unwrap();
    assert!(!st.accepting);
    assert_eq!(st.current_sessions, 2);

    let closed_at = Utc::now();
    for s in held.iter_mut() {
        s.shutdown().await.unwrap();
    }
    drop(held);

    let results = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the scale-in finished")
        .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Done, "{:?}", results[0]);
    assert!(
        results[0].notes.iter().any(|n| n.contains("drained")),
        "{:?}",
        results[0].notes
    );
    let deletes = rig.deletes();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].0, "r2");
    assert!(
        deletes[0].1 >= closed_at,
        "delete at {} before the connections closed at {closed_at}",
        deletes[0].1
    );
    // Gone from HAProxy and from the config file; traffic still flows.
    assert_eq!(rig.status_of("r2").await, None);
    let (_s, who) = client(rig.front_port).await;
    assert_eq!(who, "r1");
    let cfg = std::fs::read_to_string(&rig.cfg_path).unwrap();
    assert!(!cfg.contains("server r2 "), "{cfg}");
    assert!(cfg.contains("server r1 "), "{cfg}");
    check_config(&rig.cfg_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_ends_sessions_then_deletes() {
    let t0 = Utc::now();
    let manual = Arc::new(ManualClock::new(t0));
    let clock: Arc<dyn Clock> = manual.clone();
    let rig = rig(
        clock.clone(),
        &["r1", "r2"],
        &["r1", "r2"],
        ", drain_timeout: 30s",
    )
    .await;
    let mut held = rig.hold_on("r2", 1).await;

    let view = observe_one(&*rig.fleet, &rig.spec).await.unwrap();
    let p = plan(&rig.spec, &view, &Target::replicas(1));
    let hook = rig.hook(clock.clone(), Duration::from_secs(5));
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        execute_routed(
            &*rig.fleet,
            &rig.spec,
            &p,
            &ExecOptions::default(),
            Some(&hook),
        ),
    )
    .await
    .expect("the scale-in finished");
    assert_eq!(results[0].outcome, Outcome::Done, "{:?}", results[0]);
    assert!(
        results[0].notes.iter().any(|n| n.contains("drain timeout")),
        "{:?}",
        results[0].notes
    );
    // The delete came at the drain timeout on the injected clock, not before.
    let deletes = rig.deletes();
    assert_eq!(deletes.len(), 1);
    assert!(
        deletes[0].1 - t0 >= chrono::Duration::seconds(30),
        "deleted after {} only",
        deletes[0].1 - t0
    );
    // The session left open was ended, and the server is gone.
    assert!(closed_within(&mut held[0], Duration::from_secs(5)).await);
    assert_eq!(rig.status_of("r2").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_router_adds_replicas_under_the_lag_bound() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // r2 and r3 are configured but do not exist when the config is rendered.
    let rig = rig(clock.clone(), &["r1", "r2", "r3"], &["r1"], "").await;
    assert_eq!(rig.status_of("r2").await, None);
    let s2 = stand_in("r2").await;
    seed(&rig.fleet, "r2", s2.port, Some("m1"));
    let s3 = stand_in("r3").await;
    seed(&rig.fleet, "r3", s3.port, Some("m1"));

    let view = observe_one(&*rig.fleet, &rig.spec).await.unwrap();
    let lag = BTreeMap::from([
        (InstanceId::from_aws("r1"), Duration::from_secs(1)),
        (InstanceId::from_aws("r2"), Duration::from_secs(2)),
        (InstanceId::from_aws("r3"), Duration::from_secs(90)),
    ]);
    let router = rig.runtime();
    let report = sync_router(&router, &rig.spec, &view, &lag, None).await;
    assert_eq!(report.errors, vec![], "{report:?}");
    assert_eq!(report.added, vec![InstanceId::from_aws("r2")]);
    assert_eq!(report.held.len(), 1, "{report:?}");
    assert_eq!(report.held[0].0.as_str(), "r3");

    wait_status(&rig, "r2", "UP", Duration::from_secs(5)).await;
    assert_eq!(rig.status_of("r3").await, None);
    // r1 holds a session, so leastconn sends the next connection to the new server.
    let (_a, first) = client(rig.front_port).await;
    let (_b, second) = client(rig.front_port).await;
    let mut got = vec![first, second];
    got.sort();
    assert_eq!(got, ["r1", "r2"]);
    // The config file has the new server too, and still passes haproxy -c.
    let cfg = std::fs::read_to_string(&rig.cfg_path).unwrap();
    assert!(
        cfg.contains(&format!(
            "server r2 127.0.0.1:{} check inter 10s fall 2\n",
            s2.port
        )),
        "{cfg}"
    );
    check_config(&rig.cfg_path);
    // A second pass changes nothing.
    let again = sync_router(&router, &rig.spec, &view, &lag, None).await;
    assert!(
        again.added.is_empty() && again.errors.is_empty(),
        "{again:?}"
    );
}

fn check_config(path: &Path) {
    let out = Command::new(support::haproxy_bin())
        .arg("-c")
        .arg("-f")
        .arg(path)
        .output()
        .expect("run haproxy -c");
    assert!(
        out.status.success(),
        "haproxy -c failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A cluster whose HAProxy socket does not exist, with one surplus replica.
async fn unreachable_case(
    on_unreachable: &str,
) -> (Arc<SimFleet>, Vec<elasticrds::reconcile::ActionResult>) {
    let dir = tempfile::tempdir().unwrap();
    let y = format!(
        "c1:\n  master_node: {{identifier: snap, instance_id: m1, instance_class: db.t3.micro}}\n  replica_nodes:\n    - {{id: r1, instance_class: db.t3.micro}}\n  haproxy: {{socket: {}, backend: replicas, on_unreachable: {on_unreachable}}}\n",
        dir.path().join("absent.sock").display()
    );
    let spec = Config::parse("c.yaml", &y)
        .unwrap()
        .cluster("c1")
        .unwrap()
        .clone();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let fleet = Arc::new(SimFleet::new(clock.clone(), SimOptions::default()));
    let m = fleet.available_instance("m1", "db.t3.micro");
    fleet.insert(m);
    let mut r = fleet.available_instance("r1", "db.t3.micro");
    r.source = Some(InstanceId::from_aws("m1"));
    fleet.insert(r);
    let view = observe_one(&*fleet, &spec).await.unwrap();
    let p = plan(&spec, &view, &Target::replicas(0));
    assert_eq!(p.actions.len(), 1);
    let hook = RouterHook::for_cluster(&spec, clock).unwrap();
    let results = tokio::time::timeout(
        Duration::from_secs(20),
        execute_routed(&*fleet, &spec, &p, &ExecOptions::default(), Some(&hook)),
    )
    .await
    .expect("bounded");
    (fleet, results)
}

#[tokio::test]
async fn unreachable_haproxy_holds_the_scale_in_by_default() {
    let (fleet, results) = unreachable_case("wait").await;
    assert!(
        matches!(&results[0].outcome, Outcome::Held(why) if why.contains("unreachable")),
        "{:?}",
        results[0]
    );
    assert_eq!(results[0].outcome.label(), "held");
    assert_eq!(
        results[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::Transient)
    );
    assert!(fleet
        .calls()
        .iter()
        .all(|c| c.operation != "delete_replica"));
    assert_eq!(fleet.instances().len(), 2, "the replica is still there");
}

#[tokio::test]
async fn unreachable_haproxy_with_proceed_deletes_and_says_so() {
    let (fleet, results) = unreachable_case("proceed").await;
    assert_eq!(results[0].outcome, Outcome::Done, "{:?}", results[0]);
    assert!(
        results[0]
            .notes
            .iter()
            .any(|n| n.contains("on_unreachable: proceed")),
        "{:?}",
        results[0].notes
    );
    let deletes: Vec<_> = fleet
        .calls()
        .into_iter()
        .filter(|c| c.operation == "delete_replica")
        .collect();
    assert_eq!(deletes.len(), 1);
}

#[tokio::test]
async fn dry_run_contacts_no_router_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let y = format!(
        "c1:\n  master_node: {{identifier: snap, instance_id: m1, instance_class: db.t3.micro}}\n  replica_nodes:\n    - {{id: r1, instance_class: db.t3.micro}}\n  haproxy: {{socket: {}, backend: replicas}}\n",
        dir.path().join("absent.sock").display()
    );
    let spec = Config::parse("c.yaml", &y)
        .unwrap()
        .cluster("c1")
        .unwrap()
        .clone();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Utc::now()));
    let fleet = SimFleet::new(clock, SimOptions::default());
    fleet.insert(fleet.available_instance("m1", "db.t3.micro"));
    let mut r = fleet.available_instance("r1", "db.t3.micro");
    r.source = Some(InstanceId::from_aws("m1"));
    fleet.insert(r);
    let view = observe_one(&fleet, &spec).await.unwrap();
    let p = plan(&spec, &view, &Target::replicas(0));
    let results =
        elasticrds::reconcile::execute(&fleet, &spec, &p, &ExecOptions { dry_run: true }).await;
    assert_eq!(results[0].outcome, Outcome::DryRun);
    assert!(
        results[0].notes[0].contains("would drain r1"),
        "{:?}",
        results[0].notes
    );
    assert!(fleet.calls().iter().all(|c| c.operation == "describe"));
}
