//! Graceful scale-in through Debian's haproxy 2.6 on loopback: the test renders the config with
//! elasticrds from a simulated fleet whose replica endpoints are small loopback listeners
//! ("stand-ins", which count the client sessions they serve), starts haproxy (stats socket in a
//! temp dir), holds connections open to one replica and scales in through the shared
//! reconciler. The fleet is wrapped in a witness that, at the moment DeleteDBInstance is
//! called, asks HAProxy whether the server still exists and the stand-in how many client
//! sessions are still open on it. The drain is state carried across ticks: each call of
//! `reconcile::apply` (one tick's delete path) starts or checks the drain and returns. Shown:
//! new connections go elsewhere once the drain starts; while the held connections stay open
//! every tick reports the delete as draining and deletes nothing; the delete comes after they
//! closed (at that moment HAProxy no longer has the server and the replica serves no session),
//! or at the drain timeout (which ends them); the server is gone from HAProxy and from the
//! config file afterwards; an unreachable HAProxy holds the scale-in (`wait`) or lets it go
//! ahead (`proceed`); replicas are added at runtime by `sync_router` once their lag is under
//! the bound, and a replica whose drain was abandoned is put back into service; and the
//! daemon's tick (`elasticrds run`) does all this for a cluster with a `haproxy` section
//! without waiting inside a tick.
//! haproxy missing or not starting makes these tests FAIL.

mod support;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elasticrds::adapters::haproxy::render::{render, RenderOptions};
use elasticrds::adapters::haproxy::HaproxyRuntime;
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::{ClusterSpec, Config};
use elasticrds::core::domain::{Endpoint, Instance, InstanceId};
use elasticrds::core::plan::{plan, Action, Plan, Target};
use elasticrds::core::policy::Policy;
use elasticrds::ports::{
    Clock, ErrorKind, Fleet, ManualClock, PortError, RouteState, SystemClock, TrafficRouter,
};
use elasticrds::reconcile::{
    apply, observe_one, sync_router, ActionResult, Drains, ExecOptions, Outcome, Route,
};
use elasticrds::service::daemon::{ClusterEntry, ClusterResult, Daemon, DaemonOptions};
use elasticrds::service::metrics::Metrics;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{FakeMetrics, HookedFleet, Op};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const IO: Duration = Duration::from_secs(5);

/// Client sessions a stand-in served: connections on which a client said hello (HAProxy's
/// health checks connect and close without a word, so they are not counted).
#[derive(Debug, Default)]
struct Sessions {
    /// Client sessions ever opened.
    opened: AtomicUsize,
    /// Client sessions open now (decremented when the stand-in sees the end of the session,
    /// before it closes its side).
    open: AtomicUsize,
}

impl Sessions {
    fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }
    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// A loopback listener standing in for a DB instance: greets every connection with its name;
/// a client answers `hi`, which makes it a counted client session and is acknowledged with
/// `ok`; the connection is kept open until the peer closes it.
struct StandIn {
    port: u16,
    sessions: Arc<Sessions>,
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
    let sessions = Arc::new(Sessions::default());
    let counts = sessions.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let name = name.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                let _ = s.write_all(format!("{name}\n").as_bytes()).await;
                let mut client = false;
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if !client {
                        client = true;
                        counts.opened.fetch_add(1, Ordering::SeqCst);
                        counts.open.fetch_add(1, Ordering::SeqCst);
                        if s.write_all(b"ok\n").await.is_err() {
                            break;
                        }
                    }
                }
                if client {
                    counts.open.fetch_sub(1, Ordering::SeqCst);
                }
                // `s` is closed here, after the count went down.
            });
        }
    });
    StandIn {
        port,
        sessions,
        task,
    }
}

async fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(IO, s.read(&mut b))
            .await
            .expect("read through haproxy: timeout")
            .expect("read through haproxy");
        assert!(n == 1, "haproxy closed the connection mid-line");
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap()
}

/// Connect through HAProxy, say hello, and return the connection and the name of the instance
/// it reached (which has counted the session when this returns).
async fn client(port: u16) -> (TcpStream, String) {
    let mut s = tokio::time::timeout(IO, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect through haproxy: timeout")
        .expect("connect through haproxy");
    let who = read_line(&mut s).await;
    s.write_all(b"hi\n").await.expect("say hello");
    assert_eq!(read_line(&mut s).await, "ok");
    (s, who)
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
    /// `fleet` behind the delete witness: what the reconciler is given.
    witness: Arc<HookedFleet>,
    /// What the witness saw at each delete.
    deletes: Arc<Mutex<Vec<AtDelete>>>,
    /// The stand-ins' sessions, as the witness reads them.
    witness_sessions: SessionMap,
    front_port: u16,
    cfg_path: PathBuf,
    _haproxy: support::Server,
    standins: HashMap<String, StandIn>,
}

/// What was true when DeleteDBInstance was called for a replica.
#[derive(Debug, Clone)]
struct AtDelete {
    id: String,
    /// The fleet clock's time of the call.
    at: DateTime<Utc>,
    /// HAProxy's status of the server then (`None`: not a server of the backend).
    haproxy_status: Option<String>,
    /// Client sessions the replica's stand-in had open then.
    open_sessions: usize,
}

/// Stand-in sessions by replica name, shared with the witness.
type SessionMap = Arc<Mutex<HashMap<String, Arc<Sessions>>>>;

/// The simulated fleet behind a witness that records on each `delete_replica` (before passing
/// it on) what HAProxy and the replica's stand-in say at that moment, and the clock's time.
fn delete_witness(
    fleet: Arc<SimFleet>,
    router: HaproxyRuntime,
    clock: Arc<dyn Clock>,
    sessions: SessionMap,
    deletes: Arc<Mutex<Vec<AtDelete>>>,
) -> Arc<HookedFleet> {
    let router = Arc::new(router);
    let hooked = HookedFleet::new(fleet).before(Op::DeleteReplica, move |call| {
        let (router, clock) = (router.clone(), clock.clone());
        let (sessions, deletes) = (sessions.clone(), deletes.clone());
        async move {
            let name = call.id().as_str().to_ascii_lowercase();
            let haproxy_status = router
                .server(&name)
                .await
                .expect("show stat at delete time")
                .map(|s| s.status);
            let open_sessions = sessions.lock().unwrap().get(&name).map_or(0, |s| s.open());
            deletes.lock().unwrap().push(AtDelete {
                id: name,
                at: clock.now(),
                haproxy_status,
                open_sessions,
            });
            Ok(())
        }
    });
    Arc::new(hooked)
}

/// The HAProxy runtime, counting the `state` polls and remembering the sessions each saw.
struct Polled {
    inner: HaproxyRuntime,
    polls: Mutex<Vec<Option<u64>>>,
}

impl Polled {
    fn polls(&self) -> Vec<Option<u64>> {
        self.polls.lock().unwrap().clone()
    }
}

#[async_trait]
impl TrafficRouter for Polled {
    async fn add(&self, replica: &Instance) -> Result<(), PortError> {
        self.inner.add(replica).await
    }
    async fn drain(&self, id: &InstanceId) -> Result<(), PortError> {
        self.inner.drain(id).await
    }
    async fn state(&self, id: &InstanceId) -> Result<Option<RouteState>, PortError> {
        let st = self.inner.state(id).await?;
        self.polls
            .lock()
            .unwrap()
            .push(st.as_ref().map(|s| s.current_sessions));
        Ok(st)
    }
    async fn remove(&self, id: &InstanceId) -> Result<(), PortError> {
        self.inner.remove(id).await
    }
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
    // Also on disk, for the CLI.
    std::fs::write(dir.join("c.yaml"), &y).expect("write the test config");
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
    let witness_clock = clock.clone();
    let fleet = Arc::new(SimFleet::new(
        clock,
        SimOptions {
            engine: "loopback-test".into(),
            ..Default::default()
        },
    ));
    let mut standins = HashMap::new();
    let m = stand_in("m1").await;
    seed(&fleet, "m1", m.port, None);
    standins.insert("m1".to_string(), m);
    for r in available {
        let s = stand_in(r).await;
        seed(&fleet, r, s.port, Some("m1"));
        standins.insert(r.to_string(), s);
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
    let sessions: SessionMap = Arc::new(Mutex::new(
        standins
            .iter()
            .map(|(k, v)| (k.clone(), v.sessions.clone()))
            .collect(),
    ));
    let deletes = Arc::default();
    let witness = delete_witness(
        fleet.clone(),
        HaproxyRuntime::from_spec(spec.haproxy.as_ref().unwrap()),
        witness_clock,
        sessions.clone(),
        Arc::clone(&deletes),
    );
    Rig {
        _dir: dir,
        spec,
        fleet,
        witness,
        deletes,
        witness_sessions: sessions,
        front_port,
        cfg_path,
        _haproxy: haproxy,
        standins,
    }
}

impl Rig {
    fn runtime(&self) -> HaproxyRuntime {
        HaproxyRuntime::from_spec(self.spec.haproxy.as_ref().unwrap())
    }
    /// A runtime that counts its `state` polls.
    fn polled(&self) -> Arc<Polled> {
        Arc::new(Polled {
            inner: self.runtime(),
            polls: Mutex::new(Vec::new()),
        })
    }
    fn deletes(&self) -> Vec<AtDelete> {
        self.deletes.lock().unwrap().clone()
    }
    fn config_yaml(&self) -> PathBuf {
        self._dir.path().join("c.yaml")
    }
    fn sessions(&self, name: &str) -> &Sessions {
        &self.standins[name].sessions
    }
    /// A replica that became available after the config was rendered: its stand-in, on the
    /// fleet; returns its port.
    async fn add_replica(&mut self, name: &str) -> u16 {
        let s = stand_in(name).await;
        seed(&self.fleet, name, s.port, Some("m1"));
        self.witness_sessions
            .lock()
            .unwrap()
            .insert(name.to_string(), s.sessions.clone());
        let port = s.port;
        self.standins.insert(name.to_string(), s);
        port
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

/// The delete path as successive ticks run it: `apply` the plan (one tick's step: start or
/// check the drain, delete once drained), then wait `pause` on `clock`, until no delete is
/// draining any more. Returns the last results and how many ticks reported a drain.
async fn tick_until_drained(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    router: &dyn TrafficRouter,
    p: &Plan,
    clock: &dyn Clock,
    pause: Duration,
) -> (Vec<ActionResult>, usize) {
    let route = Route::of_parts(router, spec.haproxy.as_ref().unwrap());
    let mut drains = Drains::default();
    let mut draining_ticks = 0;
    loop {
        let opts = ExecOptions::default();
        let results = apply(
            fleet,
            spec,
            Some(route),
            p.clone(),
            &mut drains,
            clock.now(),
            &opts,
        )
        .await;
        if !results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Draining(_)))
        {
            return (results, draining_ticks);
        }
        draining_ticks += 1;
        clock.sleep(pause).await;
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

/// Wait until `f` holds, polling; fail after `within` (a bound on a hang, not a timing claim).
async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    assert_eq!(rig.sessions("r2").open(), 2);
    let opened_before = rig.sessions("r2").opened();
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
    let polled = rig.polled();
    let (fleet, spec, router) = (rig.witness.clone(), rig.spec.clone(), polled.clone());
    let task = tokio::spawn(async move {
        let pause = Duration::from_millis(100);
        tick_until_drained(&*fleet, &spec, &*router, &p, &SystemClock, pause).await
    });

    wait_status(&rig, "r2", "DRAIN", Duration::from_secs(10)).await;
    // Draining: every new connection goes to r1; r2 serves no new session.
    for _ in 0..6 {
        let (_s, who) = client(rig.front_port).await;
        assert_eq!(who, "r1", "a new connection reached the draining replica");
    }
    assert_eq!(rig.sessions("r2").opened(), opened_before);
    // Tick after tick the drain is checked while the sessions are open, and nothing is
    // deleted: wait for five more polls, all of which saw the two sessions.
    let seen = polled.polls().len();
    until("five more drain polls", Duration::from_secs(20), || {
        polled.polls().len() >= seen + 5
    })
    .await;
    assert!(
        polled.polls().iter().all(|p| *p == Some(2)),
        "{:?}",
        polled.polls()
    );
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

    let (results, draining_ticks) = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the scale-in finished")
        .unwrap();
    assert!(
        draining_ticks >= 2,
        "{draining_ticks} tick(s) reported the drain"
    );
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Done, "{:?}", results[0]);
    assert!(
        results[0].notes.iter().any(|n| n.contains("drained")),
        "{:?}",
        results[0].notes
    );
    // One delete, of r2, after the clients closed; at that moment HAProxy no longer had the
    // server and r2 served no session any more.
    let deletes = rig.deletes();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    let d = &deletes[0];
    assert_eq!(d.id, "r2");
    assert!(
        d.at >= closed_at,
        "delete at {} before the connections closed at {closed_at}",
        d.at
    );
    assert_eq!(d.haproxy_status, None, "deleted while still in HAProxy");
    assert_eq!(d.open_sessions, 0, "deleted while serving sessions");
    assert_eq!(rig.sessions("r2").opened(), opened_before);
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
    let polled = rig.polled();
    let pause = Duration::from_secs(5);
    let (results, draining_ticks) = tokio::time::timeout(
        Duration::from_secs(30),
        tick_until_drained(&*rig.witness, &rig.spec, &*polled, &p, &*clock, pause),
    )
    .await
    .expect("the scale-in finished");
    // A tick every 5 s of the injected clock: 30 s of drain are six ticks that held it.
    assert_eq!(draining_ticks, 6);
    assert_eq!(results[0].outcome, Outcome::Done, "{:?}", results[0]);
    assert!(
        results[0]
            .notes
            .iter()
            .any(|n| n.contains("drain timeout 30s reached with 1 session(s)")),
        "{:?}",
        results[0].notes
    );
    // Every poll during the drain (two per tick, one tick per 5 s of the injected clock) saw
    // the session open.
    let polls = polled.polls();
    assert!(polls.len() > 30 / 5, "{polls:?}");
    assert!(polls.iter().all(|p| *p == Some(1)), "{polls:?}");
    // The delete came at the drain timeout on the injected clock, not before, and HAProxy no
    // longer had the server then.
    let deletes = rig.deletes();
    assert_eq!(deletes.len(), 1);
    assert!(
        deletes[0].at - t0 >= chrono::Duration::seconds(30),
        "deleted after {} only",
        deletes[0].at - t0
    );
    assert_eq!(deletes[0].haproxy_status, None);
    // The session left open was ended, and the server is gone.
    assert!(closed_within(&mut held[0], Duration::from_secs(5)).await);
    assert_eq!(rig.status_of("r2").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_status_shows_the_backend_servers() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let rig = rig(clock, &["r1", "r2"], &["r1"], "").await;
    let _held = rig.hold_on("r1", 1).await;
    let out = support::elasticrds(None)
        .arg("--config")
        .arg(rig.config_yaml())
        .args(["haproxy", "status", "c1", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "replicas");
    let servers = v["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["r1", "m1"]);
    assert_eq!(servers[0]["current_sessions"], 1);
    assert_eq!(servers[0]["backup"], false);
    assert_eq!(servers[1]["backup"], true);
    assert!(
        servers[0]["status"].as_str().unwrap().starts_with("UP"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_unknown_to_haproxy_is_deleted_at_once_and_left_out_of_the_file() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let rig = rig(clock.clone(), &["r1", "r2"], &["r1", "r2"], "").await;
    // An operator took r2 out of the running HAProxy; the file still has it.
    let rt = rig.runtime();
    for cmd in [
        "set server replicas/r2 state maint",
        "del server replicas/r2",
    ] {
        let answer = rt.command(cmd).await.unwrap();
        assert!(!answer.contains("No such"), "{cmd}: {answer}");
    }
    assert_eq!(rig.status_of("r2").await, None);
    assert!(std::fs::read_to_string(&rig.cfg_path)
        .unwrap()
        .contains("server r2 "));

    let view = observe_one(&*rig.fleet, &rig.spec).await.unwrap();
    let p = plan(&rig.spec, &view, &Target::replicas(1));
    let router = rig.runtime();
    let (results, draining_ticks) = tick_until_drained(
        &*rig.witness,
        &rig.spec,
        &router,
        &p,
        &*clock,
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(
        draining_ticks, 0,
        "nothing to drain: deleted on the first tick"
    );
    assert_eq!(results[0].outcome, Outcome::Done, "{:?}", results[0]);
    assert!(
        results[0]
            .notes
            .iter()
            .any(|n| n.contains("nothing to drain")),
        "{:?}",
        results[0].notes
    );
    assert_eq!(rig.deletes().len(), 1);
    // A reload would not bring the deleted replica back.
    let cfg = std::fs::read_to_string(&rig.cfg_path).unwrap();
    assert!(!cfg.contains("server r2 "), "{cfg}");
    assert!(cfg.contains("server r1 "), "{cfg}");
    check_config(&rig.cfg_path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_router_adds_replicas_under_the_lag_bound() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // r2 and r3 are configured but do not exist when the config is rendered.
    let mut rig = rig(clock.clone(), &["r1", "r2", "r3"], &["r1"], "").await;
    assert_eq!(rig.status_of("r2").await, None);
    let r2_port = rig.add_replica("r2").await;
    rig.add_replica("r3").await;

    let view = observe_one(&*rig.fleet, &rig.spec).await.unwrap();
    let lag = BTreeMap::from([
        (InstanceId::from_aws("r1"), Duration::from_secs(1)),
        (InstanceId::from_aws("r2"), Duration::from_secs(2)),
        (InstanceId::from_aws("r3"), Duration::from_secs(90)),
    ]);
    let router = rig.runtime();
    let report = sync_router(
        &router,
        &rig.spec,
        &view,
        &lag,
        None,
        &mut Drains::default(),
    )
    .await;
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
            "server r2 127.0.0.1:{r2_port} check inter 10s fall 2\n"
        )),
        "{cfg}"
    );
    check_config(&rig.cfg_path);
    // A second pass changes nothing.
    let again = sync_router(
        &router,
        &rig.spec,
        &view,
        &lag,
        None,
        &mut Drains::default(),
    )
    .await;
    assert!(
        again.added.is_empty() && again.errors.is_empty(),
        "{again:?}"
    );
}

/// A drain whose delete is no longer planned (the load came back before the sessions ended)
/// is undone by the router step: the replica takes traffic again and the drain is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_drain_puts_the_replica_back_into_service() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let rig = rig(
        clock.clone(),
        &["r1", "r2"],
        &["r1", "r2"],
        ", drain_timeout: 60s",
    )
    .await;
    let _held = rig.hold_on("r2", 1).await;
    let view = observe_one(&*rig.fleet, &rig.spec).await.unwrap();
    let router = rig.runtime();
    let route = Route::of_parts(&router, rig.spec.haproxy.as_ref().unwrap());
    let mut drains = Drains::default();
    let p = plan(&rig.spec, &view, &Target::replicas(1));
    let opts = ExecOptions::default();
    let results = apply(
        &*rig.witness,
        &rig.spec,
        Some(route),
        p,
        &mut drains,
        clock.now(),
        &opts,
    )
    .await;
    assert!(
        matches!(results[0].outcome, Outcome::Draining(_)),
        "{results:?}"
    );
    wait_status(&rig, "r2", "DRAIN", Duration::from_secs(10)).await;
    assert_eq!(drains.ids().map(|i| i.as_str()).collect::<Vec<_>>(), ["r2"]);

    // The next tick wants two replicas again: no delete planned, the router step runs.
    let keep = plan(&rig.spec, &view, &Target::replicas(2));
    assert!(keep.actions.is_empty());
    let lag = BTreeMap::from([
        (InstanceId::from_aws("r1"), Duration::from_secs(1)),
        (InstanceId::from_aws("r2"), Duration::from_secs(1)),
    ]);
    let report = sync_router(&router, &rig.spec, &view, &lag, Some(&keep), &mut drains).await;
    assert_eq!(report.added, vec![InstanceId::from_aws("r2")], "{report:?}");
    assert!(drains.is_empty(), "{drains:?}");
    wait_status(&rig, "r2", "UP", Duration::from_secs(10)).await;
    assert!(rig.deletes().is_empty());
}

/// The daemon (`elasticrds run`'s control loop) on the rig's cluster with exactly `n`
/// replicas wanted.
fn daemon(rig: &Rig, n: usize, clock: Arc<dyn Clock>) -> Daemon {
    let config = Config {
        clusters: BTreeMap::from([("c1".to_string(), rig.spec.clone())]),
        notifications: Default::default(),
    };
    let y = format!(
        "cluster: c1\nmin_replicas: {n}\nmax_replicas: {n}\nperiod: 60s\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  cooldown: 0s\n  max_step: 1\n  stabilization: 0s\nscale_in:\n  cooldown: 0s\n  max_step: 1\n  stabilization: 0s\nwarmup:\n  duration: 0s\n"
    );
    let policy = Policy::parse("c1.yaml", &y, &config).expect("policy");
    Daemon::new(
        rig.witness.clone(),
        // CPU 10 %, 5 connections, replica lag 1 s.
        Arc::new(FakeMetrics::constant(10.0, 5.0, 1.0)),
        HaproxyRuntime::routers_for([&rig.spec]),
        clock,
        vec![ClusterEntry::new(rig.spec.clone(), policy)],
        Metrics::new(),
        DaemonOptions::default(),
    )
}

fn report_of(
    outcome: &elasticrds::service::daemon::TickOutcome,
) -> elasticrds::control::TickReport {
    match &outcome.clusters[..] {
        [(_, ClusterResult::Done(r))] => (**r).clone(),
        other => panic!("tick: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_tick_adds_caught_up_replicas_and_drains_before_delete() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // r2 is configured but not in the rendered config: it becomes available afterwards.
    let mut rig = rig(clock.clone(), &["r1", "r2"], &["r1"], "").await;
    rig.add_replica("r2").await;
    assert_eq!(rig.status_of("r2").await, None);

    // Tick with two replicas wanted: nothing to create or delete, and r2 (lag 1 s, under the
    // default 30 s bound) is added to HAProxy.
    let mut d = daemon(&rig, 2, clock.clone());
    let report = report_of(&d.tick().await);
    assert!(report.actions.is_empty(), "{:?}", report.actions);
    let router = report.router.expect("the tick ran the router step");
    assert_eq!(router.added, vec![InstanceId::from_aws("r2")], "{router:?}");
    assert!(router.errors.is_empty(), "{router:?}");
    wait_status(&rig, "r2", "UP", Duration::from_secs(5)).await;
    let cfg = std::fs::read_to_string(&rig.cfg_path).unwrap();
    assert!(cfg.contains("server r2 127.0.0.1:"), "{cfg}");
    // A second tick adds nothing more.
    let again = report_of(&d.tick().await).router.unwrap();
    assert!(
        again.added.is_empty() && again.errors.is_empty(),
        "{again:?}"
    );

    // Ticks with one replica wanted while a client holds a session on r2: the first tick
    // starts the drain and returns (no tick waits); new connections go to r1; the ticks after
    // it check the sessions and delete nothing while the session is open; the tick after the
    // client closed deletes r2.
    let mut held = rig.hold_on("r2", 1).await;
    let mut d = daemon(&rig, 1, clock.clone());
    let draining = |r: &elasticrds::control::TickReport| matches!(&r.actions[..], [a] if matches!(&a.planned.action, Action::DeleteReplica { id } if id.as_str() == "r2") && matches!(&a.outcome, Outcome::Draining(why) if why.contains("1 session(s) open")));
    for _ in 0..3 {
        let report = tokio::time::timeout(Duration::from_secs(10), d.tick())
            .await
            .map(|o| report_of(&o))
            .expect("a tick returns while the drain goes on");
        assert!(draining(&report), "{:?}", report.actions);
        assert!(
            !report.acted,
            "a draining delete is not a scale action done"
        );
    }
    assert_eq!(
        rig.status_of("r2").await.as_deref().map(|s| &s[..5]),
        Some("DRAIN")
    );
    for _ in 0..4 {
        let (_s, who) = client(rig.front_port).await;
        assert_eq!(who, "r1", "a new connection reached the draining replica");
    }
    assert!(rig.deletes().is_empty(), "deleted while a session was open");
    held[0].shutdown().await.unwrap();
    drop(held);
    until(
        "the stand-in saw the session end",
        Duration::from_secs(10),
        || rig.sessions("r2").open() == 0,
    )
    .await;
    let mut report = report_of(&d.tick().await);
    for _ in 0..50 {
        // HAProxy counts the session until it notices the close.
        if !draining(&report) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        report = report_of(&d.tick().await);
    }
    assert!(
        matches!(&report.actions[..], [a] if matches!(&a.planned.action, Action::DeleteReplica { id } if id.as_str() == "r2") && a.outcome == Outcome::Done),
        "{:?}",
        report.actions
    );
    assert!(report.acted);
    let router = report.router.unwrap();
    assert!(
        router.added.is_empty(),
        "re-added a replica being deleted: {router:?}"
    );
    let deletes = rig.deletes();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].id, "r2");
    assert_eq!(
        deletes[0].haproxy_status, None,
        "deleted while still in HAProxy"
    );
    assert_eq!(
        deletes[0].open_sessions, 0,
        "deleted while serving a session"
    );
    assert_eq!(rig.status_of("r2").await, None);
    let cfg = std::fs::read_to_string(&rig.cfg_path).unwrap();
    assert!(!cfg.contains("server r2 "), "{cfg}");
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
    let router = HaproxyRuntime::from_spec(spec.haproxy.as_ref().unwrap());
    let route = Route::of_parts(&router, spec.haproxy.as_ref().unwrap());
    let mut drains = Drains::default();
    let results = tokio::time::timeout(
        Duration::from_secs(20),
        apply(
            &*fleet,
            &spec,
            Some(route),
            p,
            &mut drains,
            clock.now(),
            &ExecOptions::default(),
        ),
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
    let router = HaproxyRuntime::from_spec(spec.haproxy.as_ref().unwrap());
    let route = Route::of_parts(&router, spec.haproxy.as_ref().unwrap());
    let opts = ExecOptions {
        dry_run: true,
        ..ExecOptions::default()
    };
    let mut drains = Drains::default();
    let results = apply(
        &fleet,
        &spec,
        Some(route),
        p,
        &mut drains,
        Utc::now(),
        &opts,
    )
    .await;
    assert!(drains.is_empty());
    assert_eq!(results[0].outcome, Outcome::DryRun);
    assert!(
        results[0].notes[0].contains("would drain r1"),
        "{:?}",
        results[0].notes
    );
    assert!(fleet.calls().iter().all(|c| c.operation == "describe"));
}
