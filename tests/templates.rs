//! Replica templates and capacity on the simulated fleet, through the executor the service
//! uses: a replica is created with its template's settings, zone and tags; what RDS cannot set
//! at creation is applied once it is available; drift is reported and, with `repair_drift`,
//! repaired, never on the master; RDS's "no capacity" moves on to the next zone and then the
//! fallback classes, remembered for a while; a quota error stops creation instead of retrying.

mod support;

use chrono::{TimeZone, Utc};
use elasticrds::adapters::sim::{SimFleet, SimOptions};
use elasticrds::core::config::{ClusterSpec, Config};
use elasticrds::core::domain::{InstanceId, TAG_MANAGED_BY};
use elasticrds::core::plan::{hold_for_quota, plan, Action, ClusterView, PlannedAction, Target};
use elasticrds::core::template::{Offerings, Settings};
use elasticrds::ports::{Clock, ErrorKind, Fleet, ManualClock, PortError};
use elasticrds::reconcile::{execute_action, ExecOptions, Outcome};
use std::sync::{Arc, Mutex};
use support::{HookedFleet, Op};

const CONFIG: &str = "\
c1:
  master_node: {identifier: snap, instance_id: c1m01, instance_class: db.t3.micro}
  replica_template:
    parameter_group: replicas-pg
    backup_retention_period: 7
    availability_zones: [zone-a, zone-b]
    tags: {team: data}
    fallback_classes: [db.t3.small, db.t3.medium]
  replica_nodes:
    - {id: c1s01, instance_class: db.t3.micro}
    - {id: c1s02, instance_class: db.t3.micro}
";

fn spec(extra: &str) -> ClusterSpec {
    let text = CONFIG.replace(
        "    tags: {team: data}\n",
        &format!("    tags: {{team: data}}\n{extra}"),
    );
    Config::parse("c.yaml", &text).expect("config").clusters["c1"].clone()
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("id")
}

fn world() -> (Arc<ManualClock>, Arc<SimFleet>) {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap(),
    ));
    // Created replicas are available at once (as on the emulator).
    let opts = SimOptions {
        create_lead: std::time::Duration::ZERO,
        ..SimOptions::default()
    };
    let fleet = Arc::new(SimFleet::new(clock.clone(), opts));
    let master = fleet.available_instance("c1m01", "db.t3.micro");
    fleet.insert(master);
    (clock, fleet)
}

async fn view(fleet: &dyn Fleet, spec: &ClusterSpec) -> ClusterView {
    let ids: Vec<InstanceId> = spec.all_ids().cloned().collect();
    ClusterView::build_shared(spec, &fleet.describe(&ids).await.expect("describe"))
}

fn no_capacity() -> PortError {
    PortError::new(
        ErrorKind::NoCapacity,
        "CreateDBInstanceReadReplica",
        "InsufficientDBInstanceCapacity",
    )
}

#[tokio::test]
async fn a_replica_is_created_from_its_template_and_completed_once_available() {
    let (_, fleet) = world();
    let s = spec("");
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(1));
    let create = &p.actions[0];
    assert!(
        create.action.to_string().contains("in zone-a or zone-b"),
        "{}",
        create.action
    );
    let r = execute_action(&*fleet, &s, create, &ExecOptions::default()).await;
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    let made = &fleet
        .instances()
        .into_iter()
        .find(|i| i.id == id("c1s01"))
        .unwrap();
    assert_eq!(made.zone.as_deref(), Some("zone-a"));
    assert_eq!(made.tags.get("team").map(String::as_str), Some("data"));
    assert!(made.tags.contains_key(TAG_MANAGED_BY));
    let got = made.settings.as_deref().unwrap();
    assert_eq!(got.parameter_group.as_deref(), Some("replicas-pg"));
    // RDS cannot set the backup retention at creation: the next plan applies it (even
    // without repair_drift: it completes the creation of a replica elasticrds made).
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(1));
    assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
    let Action::ModifySettings { settings, .. } = &p.actions[0].action else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(
        settings,
        &Settings {
            backup_retention_period: Some(7),
            ..Settings::default()
        }
    );
    assert!(p.template_drift[0].repaired);
    let r = execute_action(&*fleet, &s, &p.actions[0], &ExecOptions::default()).await;
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(1));
    assert!(
        p.actions.is_empty() && p.template_drift.is_empty(),
        "converged: {p:?}"
    );
    // The second replica goes to the zone with fewer of the cluster's replicas.
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(2));
    assert!(
        p.actions[0]
            .action
            .to_string()
            .contains("in zone-b or zone-a"),
        "{:?}",
        p.actions
    );
}

#[tokio::test]
async fn spread_fills_the_least_used_of_the_zones_rds_offers() {
    let (_, fleet) = world();
    let s = spec("").clone();
    let text = CONFIG.replace("[zone-a, zone-b]", "spread");
    let s2 = Config::parse("c.yaml", &text).unwrap().clusters["c1"].clone();
    assert_ne!(s, s2);
    let p = plan(&s2, &view(&*fleet, &s2).await, &Target::replicas(2));
    for a in &p.actions {
        let r = execute_action(&*fleet, &s2, a, &ExecOptions::default()).await;
        assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    }
    let zones: Vec<Option<String>> = (fleet.instances().into_iter())
        .filter(|i| i.id != id("c1m01"))
        .map(|i| i.zone)
        .collect();
    assert_eq!(
        zones,
        [Some("sim-1a".to_string()), Some("sim-1b".to_string())]
    );
}

#[tokio::test]
async fn drift_is_reported_and_repaired_only_with_repair_drift_and_never_on_the_master() {
    let (_, fleet) = world();
    let mut adopted = fleet.available_instance("c1s01", "db.t3.micro");
    adopted.source = Some(id("c1m01"));
    adopted.settings = Some(Arc::new(Settings {
        parameter_group: Some("default.mysql8.0".into()),
        backup_retention_period: Some(0),
        ..Settings::default()
    }));
    fleet.insert(adopted);
    let mut master = fleet.available_instance("c1m01", "db.t3.micro");
    master.replicas = vec![id("c1s01")];
    master.settings = Some(Arc::new(Settings::default()));
    fleet.insert(master);
    let s = spec("");
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(1));
    // Reported, not repaired: not tagged as created by elasticrds, and no repair_drift.
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let settings: Vec<&str> = p.template_drift[0]
        .settings
        .iter()
        .map(|d| d.setting.as_str())
        .collect();
    assert_eq!(
        settings,
        ["parameter_group", "backup_retention_period", "tags.team"]
    );
    assert_eq!(p.template_drift.len(), 1, "the master is never compared");
    let s = spec("    repair_drift: true\n");
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(1));
    assert_eq!(p.actions.len(), 1);
    let r = execute_action(&*fleet, &s, &p.actions[0], &ExecOptions::default()).await;
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    let p = plan(&s, &view(&*fleet, &s).await, &Target::replicas(1));
    assert!(p.template_drift.is_empty(), "{:?}", p.template_drift);
    // The executor refuses a settings change on the master whatever the plan says.
    let on_master = PlannedAction {
        action: Action::ModifySettings {
            id: id("c1m01"),
            settings: Settings {
                parameter_group: Some("x".into()),
                ..Settings::default()
            },
            tags: Default::default(),
        },
        reason: "hand-made".into(),
    };
    let r = execute_action(&*fleet, &s, &on_master, &ExecOptions::default()).await;
    assert!(matches!(r.outcome, Outcome::Refused(_)), "{r:?}");
}

#[tokio::test]
async fn no_capacity_moves_to_the_next_zone_then_class_and_is_remembered() {
    let (clock, sim) = world();
    // zone-a has nothing at all; db.t3.micro has nothing anywhere.
    let fleet = HookedFleet::new(sim.clone()).before(Op::CreateReplica, |c| async move {
        let class = c.class.as_ref().map(|c| c.as_str().to_string());
        if c.zone.as_deref() == Some("zone-a") || class.as_deref() == Some("db.t3.micro") {
            Err(no_capacity())
        } else {
            Ok(())
        }
    });
    let s = spec("");
    let offerings = Arc::new(Mutex::new(Offerings::default()));
    let opts = ExecOptions {
        dry_run: false,
        capacity: Some((offerings.clone(), clock.now())),
    };
    let p = plan(&s, &view(&fleet, &s).await, &Target::replicas(1));
    let r = execute_action(&fleet, &s, &p.actions[0], &opts).await;
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    assert_eq!(
        r.notes,
        [
            "no capacity for db.t3.micro in zone-a: InsufficientDBInstanceCapacity",
            "no capacity for db.t3.micro in zone-b: InsufficientDBInstanceCapacity",
            "no capacity for db.t3.small in zone-a: InsufficientDBInstanceCapacity",
            "created as db.t3.small in zone-b",
        ]
    );
    let made = sim
        .instances()
        .into_iter()
        .find(|i| i.id == id("c1s01"))
        .unwrap();
    assert_eq!(
        (made.class.as_str(), made.zone.as_deref()),
        ("db.t3.small", Some("zone-b"))
    );
    assert_eq!(offerings.lock().unwrap().unavailable.len(), 3);
    // The next create skips what failed lately, without asking RDS again.
    let p = plan(&s, &view(&fleet, &s).await, &Target::replicas(2));
    let r = execute_action(&fleet, &s, &p.actions[0], &opts).await;
    assert_eq!(r.outcome, Outcome::Done, "{r:?}");
    assert_eq!(
        r.notes.iter().filter(|n| n.starts_with("skipped")).count(),
        3,
        "{:?}",
        r.notes
    );
    // Once the memory expires, the configured class is tried again.
    let later = clock.now() + chrono::Duration::minutes(16);
    offerings.lock().unwrap().expire(later);
    assert!(offerings.lock().unwrap().unavailable.is_empty());
}

#[tokio::test]
async fn a_quota_error_stops_creation_for_the_cluster_instead_of_retrying() {
    let (clock, sim) = world();
    let fleet = HookedFleet::new(sim.clone()).before(Op::CreateReplica, |_| async {
        Err(PortError::new(
            ErrorKind::QuotaExceeded,
            "CreateDBInstanceReadReplica",
            "InstanceQuotaExceeded",
        ))
    });
    let s = spec("");
    let offerings = Arc::new(Mutex::new(Offerings::default()));
    let now = clock.now();
    let opts = ExecOptions {
        dry_run: false,
        capacity: Some((offerings.clone(), now)),
    };
    let p = plan(&s, &view(&fleet, &s).await, &Target::replicas(1));
    let r = execute_action(&fleet, &s, &p.actions[0], &opts).await;
    assert!(r.outcome.is_failure(), "{r:?}");
    assert!(
        r.notes.is_empty(),
        "one call, no fallback into a quota: {:?}",
        r.notes
    );
    assert!(offerings.lock().unwrap().quota_stop(now).is_some());
    // The next plan holds its creates while the stop is in force.
    let mut p = plan(&s, &view(&fleet, &s).await, &Target::replicas(2));
    hold_for_quota(&mut p, &offerings.lock().unwrap(), now);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(
        p.waiting
            .iter()
            .all(|w| w.reason.contains("creation stopped until")),
        "{:?}",
        p.waiting
    );
    assert!(
        sim.instances().iter().all(|i| i.id == id("c1m01")),
        "nothing created"
    );
}

/// The control step on the simulated fleet: a replica that RDS leaves `failed` is not serving,
/// is replaced after the grace period (the new one first, then the failed one deleted), and a
/// slot whose replica fails a second time is parked (a tag on the master), never looped on.
#[tokio::test]
async fn a_failed_replica_is_replaced_make_before_break_and_a_repeat_parks_its_slot() {
    use elasticrds::control::{tick_cluster, ClusterMemory, TickContext, TickOptions};
    use elasticrds::core::domain::InstanceStatus;
    use elasticrds::core::policy::Policy;
    let (clock, fleet) = world();
    let text = CONFIG.replace(
        "  replica_template:\n",
        "  replica_template:\n    storage_type: gp3\n",
    );
    let config = Config::parse("c.yaml", &text).unwrap();
    let s = config.clusters["c1"].clone();
    let policy = Policy::parse(
        "p.yaml",
        "cluster: c1\nmin_replicas: 1\nmax_replicas: 1\nrules:\n  - metric: cpu\n    target: 50\n",
        &config,
    )
    .unwrap();
    let fail = |name: &str| {
        let mut r = fleet.available_instance(name, "db.t3.micro");
        r.source = Some(id("c1m01"));
        r.status = InstanceStatus::Other("failed".into());
        fleet.insert(r);
    };
    fail("c1s01");
    let metrics = support::FakeMetrics::constant(30.0, 10.0, 0.0);
    let routers = elasticrds::ports::Routers::default();
    let ctx = TickContext {
        fleet: &*fleet,
        metrics: &metrics,
        routers: &routers,
        clock: clock.as_ref(),
    };
    let mut memory = ClusterMemory::default();
    macro_rules! tick {
        () => {
            tick_cluster(
                &ctx,
                &s,
                &policy,
                std::borrow::Cow::Owned(view(&*fleet, &s).await),
                &mut memory,
                TickOptions::default(),
            )
            .await
            .expect("tick")
        };
    }
    let ids = || -> Vec<String> { fleet.instances().iter().map(|i| i.id.to_string()).collect() };
    let r = tick!();
    assert_eq!(r.broken, [id("c1s01")]);
    assert!(
        r.actions.is_empty(),
        "within the grace period: {:?}",
        r.actions
    );
    clock.advance(std::time::Duration::from_secs(11 * 60));
    let r = tick!();
    let kinds: Vec<String> = r
        .actions
        .iter()
        .map(|a| a.planned.action.to_string())
        .collect();
    assert!(
        kinds[0].starts_with("create replica c1s02"),
        "the replacement first: {kinds:?}"
    );
    assert_eq!(
        ids(),
        ["c1m01", "c1s01", "c1s02"],
        "the failed one kept meanwhile"
    );
    let r = tick!();
    assert!(
        r.actions
            .iter()
            .any(|a| a.planned.action.to_string() == "delete replica c1s01"),
        "{:?}",
        r.actions
    );
    // The first slot is used again; its new replica fails too: parked, left alone.
    for _ in 0..3 {
        tick!();
    }
    assert!(ids().contains(&"c1s01".to_string()), "{:?}", ids());
    fail("c1s01");
    let r = tick!();
    let master = fleet
        .instances()
        .into_iter()
        .find(|i| i.id == id("c1m01"))
        .unwrap();
    assert_eq!(
        master.tags.get("elasticrds:parked").map(String::as_str),
        Some("c1s01"),
        "{r:?}"
    );
    clock.advance(std::time::Duration::from_secs(30 * 60));
    for _ in 0..3 {
        let r = tick!();
        assert_eq!(r.parked, [id("c1s01")]);
        assert!(
            r.actions
                .iter()
                .all(|a| a.planned.action.instance() != &id("c1s01")),
            "a parked slot is never acted on: {:?}",
            r.actions
        );
    }
    assert!(
        ids().contains(&"c1s01".to_string()),
        "left for the operator: {:?}",
        ids()
    );
    assert!(
        ids().contains(&"c1s02".to_string()),
        "the cluster still has its replica"
    );
}

/// Random capacity failures (per class and zone, changing over time) on the simulated fleet,
/// through the control step, for many seeds: no replica is ever created over an existing one,
/// the master is never modified or deleted, and the cluster reaches its target once capacity
/// comes back.
#[tokio::test]
async fn under_random_capacity_failures_nothing_is_created_twice_and_the_cluster_converges() {
    use elasticrds::control::{tick_cluster, ClusterMemory, TickContext, TickOptions};
    use elasticrds::core::policy::Policy;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    let config = Config::parse(
        "c.yaml",
        &CONFIG.replace(
            "    - {id: c1s02",
            "    - {id: c1s03, instance_class: db.t3.micro}\n    - {id: c1s02",
        ),
    )
    .unwrap();
    let s = config.clusters["c1"].clone();
    let policy = Policy::parse(
        "p.yaml",
        "cluster: c1\nmin_replicas: 3\nmax_replicas: 3\nrules:\n  - metric: cpu\n    target: 50\n",
        &config,
    )
    .unwrap();
    let injected = Arc::new(AtomicUsize::new(0));
    for seed in 0..40u64 {
        let (clock, sim) = world();
        let inj = injected.clone();
        let state = Arc::new(AtomicU64::new(
            seed.wrapping_mul(6364136223846793005).wrapping_add(1),
        ));
        let dupes = Arc::new(AtomicUsize::new(0));
        let (st, d, simc, ck) = (state.clone(), dupes.clone(), sim.clone(), clock.clone());
        // For the first 20 minutes, about half the (class, zone) offers have no capacity.
        let fleet = HookedFleet::new(sim.clone()).before(Op::CreateReplica, move |c| {
            let next = st.fetch_add(0x9E3779B97F4A7C15, Ordering::Relaxed);
            let early = ck.now() < Utc.with_ymd_and_hms(2026, 12, 4, 9, 20, 0).unwrap();
            if simc.instances().iter().any(|i| i.id == c.ids[0]) {
                d.fetch_add(1, Ordering::Relaxed);
            }
            let fail = early && (next >> 33) % 2 == 0;
            if fail {
                inj.fetch_add(1, Ordering::Relaxed);
            }
            async move {
                if fail {
                    Err(no_capacity())
                } else {
                    Ok(())
                }
            }
        });
        let metrics = support::FakeMetrics::constant(30.0, 10.0, 0.0);
        let routers = elasticrds::ports::Routers::default();
        let ctx = TickContext {
            fleet: &fleet,
            metrics: &metrics,
            routers: &routers,
            clock: clock.as_ref(),
        };
        let mut memory = ClusterMemory::default();
        for _ in 0..45 {
            let v = view(&fleet, &s).await;
            let v = std::borrow::Cow::Owned(v);
            let r = tick_cluster(&ctx, &s, &policy, v, &mut memory, TickOptions::default()).await;
            assert!(r.is_ok(), "seed {seed}: {r:?}");
            clock.advance(std::time::Duration::from_secs(60));
        }
        assert_eq!(
            dupes.load(Ordering::Relaxed),
            0,
            "seed {seed}: a create over an existing id"
        );
        let all = sim.instances();
        let replicas = all
            .iter()
            .filter(|i| i.source.as_ref() == Some(&id("c1m01")))
            .count();
        assert_eq!(replicas, 3, "seed {seed}: converged to the target: {all:?}");
        let master = all
            .iter()
            .find(|i| i.id == id("c1m01"))
            .expect("the master is there");
        assert_eq!(master.class.as_str(), "db.t3.micro", "seed {seed}");
        let touched = sim
            .calls()
            .iter()
            .filter(|c| {
                c.id.as_ref() == Some(&id("c1m01"))
                    && c.operation != "describe"
                    && c.operation != "write_tags"
            })
            .count();
        assert_eq!(
            touched, 0,
            "seed {seed}: the master is only read and tagged"
        );
    }
}
