//! The shared reconciler's effectful half (`reconcile::{execute, execute_action, converge}`) on
//! the simulated fleet under a manual clock: provisioning delay without real sleeping.
//!
//! Covered: the master is restored and the replicas are created only once it is available;
//! progress is reported; a lead time beyond the timeout is a timeout error naming what was
//! waited for; busy instances are waited for and never acted on twice (checked on the call
//! log); AlreadyExists / NotFound count as already done; throttling surfaces as an error.

use chrono::{TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::{ClusterSpec, Config};
use elasticrds::core::domain::{InstanceClass, InstanceId, InstanceStatus};
use elasticrds::core::plan::{plan, Action, ClusterView, PlannedAction, Target};
use elasticrds::ports::{Clock, ErrorKind, Fleet, ManualClock, PortError};
use elasticrds::reconcile::{
    converge, execute, execute_action, observe_one, ConvergeError, ExecOptions, Outcome, Progress,
};
use std::sync::Arc;
use std::time::Duration;

const MIN: Duration = Duration::from_secs(60);

const CONFIG: &str = "\
cluster1:
  master_node:
    identifier: qiitabase201305111613
    instance_id: cluster1m01
    instance_class: db.t3.micro
    multi_az: true
  replica_nodes:
    - id: cluster1s01
      instance_class: db.t3.micro
    - id: cluster1s02
      instance_class: db.t3.micro
    - id: cluster1s03
      instance_class: db.t3.micro
";

fn spec() -> ClusterSpec {
    Config::parse("c.yaml", CONFIG)
        .expect("config")
        .cluster("cluster1")
        .expect("cluster1")
        .clone()
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

struct Sim {
    clock: Arc<ManualClock>,
    fleet: SimFleet,
    spec: ClusterSpec,
}

fn sim(opts: SimOptions) -> Sim {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap(),
    ));
    let fleet = SimFleet::new(clock.clone(), opts);
    fleet.add_snapshot("qiitabase201305111613");
    Sim {
        clock,
        fleet,
        spec: spec(),
    }
}

fn lead_times() -> SimOptions {
    SimOptions {
        restore_lead: 15 * MIN,
        create_lead: 12 * MIN,
        modify_time: 10 * MIN,
        delete_time: 5 * MIN,
        ..SimOptions::default()
    }
}

impl Sim {
    /// A master (and replicas of it) that already exist and are available.
    fn seed(&self, replicas: &[&str]) {
        let mut m = self.fleet.available_instance("cluster1m01", "db.t3.micro");
        m.multi_az = true;
        self.fleet.insert(m);
        for r in replicas {
            let mut i = self.fleet.available_instance(r, "db.t3.micro");
            i.source = Some(id("cluster1m01"));
            self.fleet.insert(i);
        }
    }

    async fn converge(
        &self,
        target: &Target,
        timeout: Duration,
        poll: Duration,
    ) -> (
        Result<Vec<elasticrds::reconcile::ActionResult>, ConvergeError>,
        Vec<Progress>,
    ) {
        let mut seen = Vec::new();
        let mut progress = |p: &Progress| seen.push(p.clone());
        let r = converge(
            &self.fleet,
            self.clock.as_ref(),
            &self.spec,
            None,
            target,
            timeout,
            poll,
            &mut progress,
        )
        .await;
        (r, seen)
    }

    /// `(operation, id)` of every call that is not a describe, in order.
    fn mutations(&self) -> Vec<(&'static str, String)> {
        self.fleet
            .calls()
            .into_iter()
            .filter(|c| c.operation != "describe")
            .map(|c| (c.operation, c.id.map(|i| i.to_string()).unwrap_or_default()))
            .collect()
    }

    fn ids(&self) -> Vec<String> {
        self.fleet
            .instances()
            .iter()
            .map(|i| i.id.to_string())
            .collect()
    }

    fn elapsed(&self, since: chrono::DateTime<Utc>) -> Duration {
        (self.clock.now() - since)
            .to_std()
            .expect("clock moved forward")
    }
}

fn muts(v: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    v.iter().map(|(o, i)| (*o, i.to_string())).collect()
}

#[tokio::test]
async fn master_first_then_replicas_once_it_is_available() {
    let s = sim(lead_times());
    let start = s.clock.now();
    let (r, progress) = s.converge(&Target::replicas(2), 60 * MIN, MIN).await;
    let done = r.expect("converged");

    // One restore, then one create per wanted replica, in config order.
    assert_eq!(
        s.mutations(),
        muts(&[
            ("restore_master", "cluster1m01"),
            ("create_replica", "cluster1s01"),
            ("create_replica", "cluster1s02"),
        ])
    );
    let kinds: Vec<&str> = done.iter().map(|r| r.planned.action.kind()).collect();
    assert_eq!(
        kinds,
        ["restore_master", "create_replica", "create_replica"]
    );
    assert!(done.iter().all(|r| r.outcome == Outcome::Done));

    // The creates happened only once the master's restore lead time had passed.
    let calls = s.fleet.calls();
    let restore_at = calls
        .iter()
        .find(|c| c.operation == "restore_master")
        .expect("restore")
        .at;
    let first_create_at = calls
        .iter()
        .find(|c| c.operation == "create_replica")
        .expect("create")
        .at;
    let gap = (first_create_at - restore_at).to_std().expect("order");
    assert!(
        gap >= 15 * MIN && gap <= 16 * MIN,
        "replicas created {gap:?} after the restore"
    );
    // And the whole run took restore + create lead time, to within a poll or two.
    let took = s.elapsed(start);
    assert!(took >= 27 * MIN && took <= 29 * MIN, "took {took:?}");

    // Fleet: the master and exactly s01, s02, all available.
    assert_eq!(s.ids(), ["cluster1m01", "cluster1s01", "cluster1s02"]);
    assert!(s
        .fleet
        .instances()
        .iter()
        .all(|i| i.status == InstanceStatus::Available));

    // Progress: reported on every round, time moving forward, first the master being
    // created, then the replicas, and the executed count growing to 3.
    assert!(progress.len() >= 27, "{} progress reports", progress.len());
    assert!(progress
        .windows(2)
        .all(|w| w[0].elapsed < w[1].elapsed && w[0].executed <= w[1].executed));
    let first = &progress[0];
    assert_eq!(first.executed, 1);
    assert!(first
        .waiting
        .iter()
        .any(|(i, st)| i.as_str() == "cluster1s01" && st.is_none()));
    let replica_wait = progress
        .iter()
        .find(|p| {
            p.waiting
                .iter()
                .any(|(i, st)| i.as_str() == "cluster1s01" && st.as_deref() == Some("creating"))
        })
        .expect("replicas reported as creating");
    assert_eq!(replica_wait.executed, 3);
    assert!(progress.iter().any(|p| p
        .waiting
        .iter()
        .any(|(i, st)| i.as_str() == "cluster1m01" && st.as_deref() == Some("creating"))));

    // Converged: a second converge does nothing but look.
    let before = s.fleet.calls().len();
    let (r, progress) = s.converge(&Target::replicas(2), 60 * MIN, MIN).await;
    assert!(r.expect("converged").is_empty());
    assert!(progress.is_empty());
    let after = s.fleet.calls();
    assert!(after[before..].iter().all(|c| c.operation == "describe"));
}

#[tokio::test]
async fn a_lead_time_beyond_the_timeout_is_a_timeout_error() {
    let s = sim(lead_times());
    s.seed(&[]);
    let start = s.clock.now();
    let (r, progress) = s.converge(&Target::replicas(1), 5 * MIN, MIN).await;
    match r {
        Err(ConvergeError::Timeout(t, what)) => {
            assert_eq!(t, 5 * MIN);
            assert!(what.contains("cluster1s01 (creating)"), "{what}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let took = s.elapsed(start);
    assert!(took >= 5 * MIN && took < 7 * MIN, "gave up after {took:?}");
    assert!(!progress.is_empty());
    // It created the replica once and did not retry while waiting.
    assert_eq!(s.mutations(), muts(&[("create_replica", "cluster1s01")]));
    // The replica still completes afterwards; converging again is then a no-op.
    s.clock.advance(10 * MIN);
    let (r, _) = s.converge(&Target::replicas(1), 5 * MIN, MIN).await;
    assert!(r.expect("converged").is_empty());
    assert_eq!(s.mutations().len(), 1);
}

#[tokio::test]
async fn busy_instances_are_waited_for_and_never_acted_on_twice() {
    let s = sim(lead_times());
    s.seed(&["cluster1s01", "cluster1s02", "cluster1s03"]);
    // Scale in to 1: s03 and s02 are deleted (5 minutes in `deleting`), each exactly once.
    let (r, progress) = s.converge(&Target::replicas(1), 60 * MIN, MIN).await;
    let done = r.expect("converged");
    assert_eq!(done.len(), 2);
    assert_eq!(
        s.mutations(),
        muts(&[
            ("delete_replica", "cluster1s03"),
            ("delete_replica", "cluster1s02")
        ])
    );
    assert!(progress.iter().any(|p| p
        .waiting
        .iter()
        .any(|(i, st)| i.as_str() == "cluster1s03" && st.as_deref() == Some("deleting"))));
    assert_eq!(s.ids(), ["cluster1m01", "cluster1s01"]);

    // A replica that is modifying when the run starts: nothing is done to it until it is
    // available again, and the new replica is still created once.
    s.fleet
        .modify_class(
            &id("cluster1s01"),
            &InstanceClass::parse("db.t3.micro").unwrap(),
        )
        .await
        .expect("modify");
    let before = s.mutations().len();
    let (r, _) = s.converge(&Target::replicas(2), 60 * MIN, MIN).await;
    r.expect("converged");
    assert_eq!(
        s.mutations()[before..].to_vec(),
        muts(&[("create_replica", "cluster1s02")])
    );

    // A class change (schedule override) waits out the modification, changing each once.
    let target = Target {
        replicas: 2,
        replica_class: Some(InstanceClass::parse("db.m5.large").unwrap()),
        master_class: None,
    };
    let before = s.mutations().len();
    let (r, _) = s.converge(&target, 60 * MIN, MIN).await;
    r.expect("converged");
    let mut changed = s.mutations()[before..].to_vec();
    changed.sort();
    assert_eq!(
        changed,
        muts(&[
            ("modify_class", "cluster1s01"),
            ("modify_class", "cluster1s02")
        ])
    );
    assert!(s
        .fleet
        .instances()
        .iter()
        .filter(|i| i.id.as_str() != "cluster1m01")
        .all(|i| i.class.as_str() == "db.m5.large"));
}

#[tokio::test]
async fn foreign_replicas_and_the_master_survive_a_scale_to_zero() {
    let s = sim(lead_times());
    s.seed(&["cluster1s01", "cluster1s02"]);
    let mut f = s.fleet.available_instance("adhoc-reporting", "db.t3.small");
    f.source = Some(id("cluster1m01"));
    s.fleet.insert(f);
    let (r, _) = s.converge(&Target::replicas(0), 60 * MIN, MIN).await;
    r.expect("converged");
    assert_eq!(s.ids(), ["adhoc-reporting", "cluster1m01"]);
    assert!(s
        .mutations()
        .iter()
        .all(|(op, i)| *op == "delete_replica" && i.starts_with("cluster1s")));
}

#[tokio::test]
async fn already_exists_and_not_found_count_as_already_done() {
    let s = sim(SimOptions {
        create_lead: Duration::ZERO,
        delete_time: Duration::ZERO,
        ..lead_times()
    });
    s.seed(&["cluster1s03"]);

    // A plan made from a stale view: s01 was created by someone else meanwhile, s03 is gone.
    let view = observe_one(&s.fleet, &s.spec).await.expect("observe");
    let mut p = plan(&s.spec, &view, &Target::replicas(1));
    assert_eq!(
        p.actions
            .iter()
            .map(|a| (a.action.kind(), a.action.instance().to_string()))
            .collect::<Vec<_>>(),
        [
            ("create_replica", "cluster1s01".to_string()),
            ("delete_replica", "cluster1s03".to_string())
        ]
    );
    let mut other = s.fleet.available_instance("cluster1s01", "db.t3.micro");
    other.source = Some(id("cluster1m01"));
    s.fleet.insert(other);
    s.fleet
        .delete_replica(&id("cluster1s03"))
        .await
        .expect("gone");
    // The executor describes the instance again just before acting: both are found already
    // done, and neither a create nor a delete is issued.
    let calls_before = s.fleet.calls().len();
    let results = execute(&s.fleet, &s.spec, &p, &ExecOptions::default()).await;
    let outcomes: Vec<&Outcome> = results.iter().map(|r| &r.outcome).collect();
    assert_eq!(outcomes, [&Outcome::AlreadyDone, &Outcome::AlreadyDone]);
    assert!(s.fleet.calls()[calls_before..]
        .iter()
        .all(|c| c.operation == "describe"));

    // A change between that check and the call: AWS's AlreadyExists / NotFound answers also
    // count as already done.
    p = plan(
        &s.spec,
        &observe_one(&s.fleet, &s.spec).await.expect("observe"),
        &Target::replicas(2),
    );
    s.fleet.fail_next(
        "create_replica",
        PortError::new(
            ErrorKind::AlreadyExists,
            "CreateDBInstanceReadReplica",
            "exists",
        ),
    );
    let results = execute(&s.fleet, &s.spec, &p, &ExecOptions::default()).await;
    assert_eq!(results[0].outcome, Outcome::AlreadyDone);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::AlreadyExists)
    );
    let mut q = plan(
        &s.spec,
        &observe_one(&s.fleet, &s.spec).await.expect("observe"),
        &Target::replicas(0),
    );
    q.actions.truncate(1);
    s.fleet.fail_next(
        "delete_replica",
        PortError::new(ErrorKind::NotFound, "DeleteDBInstance", "gone"),
    );
    let results = execute(&s.fleet, &s.spec, &q, &ExecOptions::default()).await;
    assert_eq!(results[0].outcome, Outcome::AlreadyDone, "{:?}", q.actions);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.kind),
        Some(ErrorKind::NotFound)
    );

    // Injected answers behave the same.
    s.fleet.fail_next(
        "restore_master",
        PortError::new(
            ErrorKind::AlreadyExists,
            "RestoreDBInstanceFromDBSnapshot",
            "exists",
        ),
    );
    let restore = PlannedAction {
        action: Action::RestoreMaster {
            master: s.spec.master.clone(),
        },
        reason: "test".into(),
    };
    let r = execute_action(&s.fleet, &s.spec, &restore, &ExecOptions::default()).await;
    assert_eq!(r.outcome, Outcome::AlreadyDone);

    // NotFound on a create is not "already done": it is a failure.
    s.fleet.fail_next(
        "create_replica",
        PortError::new(
            ErrorKind::NotFound,
            "CreateDBInstanceReadReplica",
            "no source",
        ),
    );
    p = plan(
        &s.spec,
        &observe_one(&s.fleet, &s.spec).await.expect("observe"),
        &Target::replicas(2),
    );
    let results = execute(&s.fleet, &s.spec, &p, &ExecOptions::default()).await;
    assert!(
        matches!(results[0].outcome, Outcome::Failed(ref m) if m.contains("no source")),
        "{:?}",
        results[0].outcome
    );

    // Dry run: planned, nothing changed (the ownership check before each action only reads).
    let before = s.fleet.calls().len();
    let results = execute(
        &s.fleet,
        &s.spec,
        &p,
        &ExecOptions {
            dry_run: true,
            ..ExecOptions::default()
        },
    )
    .await;
    assert!(results.iter().all(|r| r.outcome == Outcome::DryRun));
    let calls = &s.fleet.calls()[before..];
    assert_eq!(calls.len(), p.actions.len(), "{calls:?}");
    assert!(calls.iter().all(|c| c.operation == "describe"), "{calls:?}");
}

#[tokio::test]
async fn the_executor_refuses_actions_outside_the_config() {
    let s = sim(lead_times());
    s.seed(&[]);
    let mut f = s.fleet.available_instance("adhoc-reporting", "db.t3.small");
    f.source = Some(id("cluster1m01"));
    s.fleet.insert(f);
    for action in [
        Action::DeleteReplica {
            id: id("cluster1m01"),
        },
        Action::DeleteReplica {
            id: id("adhoc-reporting"),
        },
        Action::CreateReplica {
            id: id("adhoc-two"),
            source: id("cluster1m01"),
            class: InstanceClass::parse("db.t3.micro").unwrap(),
            placement: Default::default(),
        },
        Action::ModifySettings {
            id: id("cluster1m01"),
            settings: Default::default(),
            tags: Default::default(),
        },
        Action::ModifyClass {
            id: id("adhoc-reporting"),
            from: InstanceClass::parse("db.t3.small").unwrap(),
            to: InstanceClass::parse("db.m5.large").unwrap(),
        },
    ] {
        let planned = PlannedAction {
            action,
            reason: "hand-made".into(),
        };
        let r = execute_action(&s.fleet, &s.spec, &planned, &ExecOptions::default()).await;
        assert!(
            matches!(r.outcome, Outcome::Refused(_)),
            "{}: {:?}",
            planned.action,
            r.outcome
        );
    }
    assert!(s.mutations().is_empty(), "{:?}", s.mutations());
    assert_eq!(s.ids(), ["adhoc-reporting", "cluster1m01"]);
}

#[tokio::test]
async fn throttling_surfaces_as_an_error() {
    let s = sim(lead_times());
    s.seed(&[]);
    // On the observation: the port error itself, kind throttled.
    s.fleet.fail_next(
        "describe",
        PortError::new(ErrorKind::Throttled, "DescribeDBInstances", "Rate exceeded"),
    );
    let (r, _) = s.converge(&Target::replicas(1), 60 * MIN, MIN).await;
    match r {
        Err(ConvergeError::Port(e)) => {
            assert_eq!(e.kind, ErrorKind::Throttled);
            assert!(e.is_retryable());
            assert!(e.to_string().contains("Rate exceeded"), "{e}");
        }
        other => panic!("expected a throttling error, got {other:?}"),
    }
    assert!(s.mutations().is_empty());

    // On an action: the run stops with the action named.
    s.fleet.fail_next(
        "create_replica",
        PortError::new(
            ErrorKind::Throttled,
            "CreateDBInstanceReadReplica",
            "Rate exceeded",
        ),
    );
    let (r, _) = s.converge(&Target::replicas(1), 60 * MIN, MIN).await;
    match r {
        Err(ConvergeError::Action(msg)) => {
            assert!(msg.contains("cluster1s01"), "{msg}");
            assert!(msg.contains("throttled"), "{msg}");
        }
        other => panic!("expected the action to fail, got {other:?}"),
    }
    // Nothing was created; the next run creates it, once.
    assert_eq!(s.ids(), ["cluster1m01"]);
    let (r, _) = s.converge(&Target::replicas(1), 60 * MIN, MIN).await;
    r.expect("converged");
    let creates: Vec<_> = s
        .mutations()
        .into_iter()
        .filter(|(op, _)| *op == "create_replica")
        .collect();
    assert_eq!(creates.len(), 2, "one throttled attempt, one real create");
    assert_eq!(s.ids(), ["cluster1m01", "cluster1s01"]);
}

#[tokio::test]
async fn observation_sees_foreign_replicas_through_the_port() {
    let s = sim(lead_times());
    s.seed(&["cluster1s01"]);
    let mut f = s.fleet.available_instance("adhoc-reporting", "db.t3.small");
    f.source = Some(id("cluster1m01"));
    s.fleet.insert(f);
    let v: ClusterView = observe_one(&s.fleet, &s.spec).await.expect("observe");
    assert!(v.master.is_some());
    assert_eq!(v.replicas.iter().flatten().count(), 1);
    assert_eq!(v.foreign.len(), 1);
    let fi = v.foreign[0].instance.as_ref().expect("foreign described");
    assert_eq!(fi.class.as_str(), "db.t3.small");
    // One describe for the configured ids, one for the foreign replica.
    let describes = s
        .fleet
        .calls()
        .iter()
        .filter(|c| c.operation == "describe")
        .count();
    assert_eq!(describes, 2);
}

fn create_args(max: usize, wait: bool, timeout: Duration) -> elasticrds::cli::cluster::CreateArgs {
    elasticrds::cli::cluster::CreateArgs {
        cluster: "cluster1".into(),
        max_replicas: Some(max),
        dry_run: false,
        wait,
        timeout,
        poll: MIN,
        output: elasticrds::cli::Output::Json,
    }
}

/// `create-cluster --wait` as the CLI runs it, on the simulated fleet: the first round restores
/// the master, the wait then creates the replicas once it is available, with a progress line
/// per poll, until everything is available.
#[tokio::test]
async fn create_cluster_wait_reports_progress_until_available() {
    use elasticrds::cli::cluster::create_cluster_on;
    let s = sim(lead_times());
    let start = s.clock.now();
    let mut lines: Vec<String> = Vec::new();
    let mut sink = |l: String| lines.push(l);
    create_cluster_on(
        &s.fleet,
        s.clock.as_ref(),
        &elasticrds::ports::Routers::default(),
        &s.spec,
        &create_args(2, true, 60 * MIN),
        &mut sink,
    )
    .await
    .expect("create-cluster --wait");
    assert_eq!(
        s.mutations(),
        muts(&[
            ("restore_master", "cluster1m01"),
            ("create_replica", "cluster1s01"),
            ("create_replica", "cluster1s02"),
        ])
    );
    assert!(s
        .fleet
        .instances()
        .iter()
        .all(|i| i.status == InstanceStatus::Available));
    let took = s.elapsed(start);
    assert!(took >= 27 * MIN && took <= 29 * MIN, "took {took:?}");
    // Progress: one line per poll while waiting, first for the master being restored, then
    // for the replicas being created; then the actions of the wait, then "converged".
    let waits: Vec<&String> = lines.iter().filter(|l| l.contains("waiting for")).collect();
    assert!(waits.len() >= 26, "{lines:#?}");
    assert!(
        waits[0].starts_with("[0s] waiting for cluster1m01 (creating)")
            && waits[0].contains("cluster1s01 (not created yet)"),
        "{lines:#?}"
    );
    assert!(
        waits.iter().any(|l| l.contains("cluster1s02 (creating)")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("create replica cluster1s01") && l.ends_with("[done]")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("cluster1: converged, every planned instance is available")
    );
}

/// `--wait` gives up at `--timeout` with a runtime error (exit 1) naming what it waited for;
/// what was started keeps going and a later run finds it done.
#[tokio::test]
async fn create_cluster_wait_times_out_with_exit_1() {
    use elasticrds::cli::cluster::create_cluster_on;
    let s = sim(lead_times());
    s.seed(&[]);
    let mut lines: Vec<String> = Vec::new();
    let mut sink = |l: String| lines.push(l);
    let err = create_cluster_on(
        &s.fleet,
        s.clock.as_ref(),
        &elasticrds::ports::Routers::default(),
        &s.spec,
        &create_args(1, true, 5 * MIN),
        &mut sink,
    )
    .await
    .expect_err("a 12-minute create cannot finish within 5 minutes");
    assert_eq!(err.code, 1);
    assert!(
        err.message.contains("timed out") && err.message.contains("cluster1s01 (creating)"),
        "{}",
        err.message
    );
    assert!(!lines.is_empty(), "progress was reported");
    assert_eq!(s.mutations(), muts(&[("create_replica", "cluster1s01")]));
    // Without --wait the same command returns at once and creates nothing twice.
    s.clock.advance(10 * MIN);
    let mut none = |_: String| {};
    create_cluster_on(
        &s.fleet,
        s.clock.as_ref(),
        &elasticrds::ports::Routers::default(),
        &s.spec,
        &create_args(1, false, 5 * MIN),
        &mut none,
    )
    .await
    .expect("converged");
    assert_eq!(s.mutations().len(), 1);
}

/// The backtest's view memo skips describing a fleet whose change count did not move, and
/// describes again after a change (here a tag write) or while a describe failure is queued,
/// which it then meets.
#[tokio::test]
async fn the_view_memo_describes_again_only_after_a_change() {
    let s = sim(lead_times());
    s.seed(&["cluster1s01"]);
    let describes = || {
        (s.fleet.calls().iter())
            .filter(|c| c.operation == "describe")
            .count()
    };
    let mut memo = elasticrds::reconcile::ViewMemo::default();
    let first = memo.observe(&s.fleet, &s.spec).await.expect("view").clone();
    assert_eq!(first.replica_count(), 1);
    let after_first = describes();
    assert!(after_first >= 1, "the first observation describes");
    s.clock.advance(MIN);
    let again = memo.observe(&s.fleet, &s.spec).await.expect("view").clone();
    assert_eq!(describes(), after_first, "nothing changed: no describe");
    assert_eq!(again, first);

    // A tag write on the master changes the count: described again, the new tags seen and
    // read into the view (parked slots, pauses, the master's issues) exactly as a view built
    // afresh has them.
    let tags = elasticrds::core::domain::Tags::from([
        ("k".to_string(), "v".to_string()),
        ("elasticrds:parked".to_string(), "cluster1s01".to_string()),
        (
            "elasticrds:pause-out".to_string(),
            "2026-01-05T12:00:00Z".to_string(),
        ),
        (
            "elasticrds:snapshot".to_string(),
            "another-snapshot".to_string(),
        ),
    ]);
    s.fleet
        .write_tags(&id("cluster1m01"), &tags)
        .await
        .expect("tags");
    let seen = memo.observe(&s.fleet, &s.spec).await.expect("view").clone();
    assert!(describes() > after_first, "a change is described");
    let master = seen.master.as_ref().expect("master");
    assert_eq!(master.tags.get("k").map(String::as_str), Some("v"));
    assert_eq!(seen.parked, vec![0]);
    assert!(!seen.pauses.is_empty() && !seen.master_issues.is_empty());
    let fresh = observe_one(&s.fleet, &s.spec).await.expect("fresh view");
    assert_eq!(
        seen, fresh,
        "the kept view, updated, is the view built afresh"
    );

    // Anything else changed (here a replica's tags) builds the view afresh: still equal.
    s.fleet
        .write_tags(&id("cluster1s01"), &tags)
        .await
        .expect("tags");
    let rebuilt = memo.observe(&s.fleet, &s.spec).await.expect("view").clone();
    let fresh = observe_one(&s.fleet, &s.spec).await.expect("fresh view");
    assert_eq!(rebuilt, fresh);
    let seen = rebuilt;

    // A describe failure queued: the memo describes and meets it, then describes again.
    s.fleet.fail_next(
        "describe",
        PortError::new(ErrorKind::Transient, "describe", "boom"),
    );
    let err = memo
        .observe(&s.fleet, &s.spec)
        .await
        .expect_err("a queued failure is met");
    assert_eq!(err.kind, ErrorKind::Transient);
    let after = memo.observe(&s.fleet, &s.spec).await.expect("view").clone();
    assert_eq!(after, seen, "the same fleet, the same view");
}
