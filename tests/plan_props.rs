//! The pure reconcile planner (`core::plan`): table-driven cases and proptest properties.
//!
//! Properties: N is clamped to the list; replicas are created in config order and only once
//! the master is available; surplus is deleted from the end; the master is never deleted;
//! foreign instances are never acted on; no instance gets two actions; no create for an id
//! that exists; busy instances are waited for, not acted on; class drift is reported; and
//! applying a plan then planning again converges (idempotence).

use elasticrds::core::config::{ClusterSpec, MasterSpec, ReplicaSpec};
mod support;

use elasticrds::core::domain::{Instance, InstanceClass, InstanceId, InstanceStatus};
use elasticrds::core::pause::{Pause, Pauses};
use elasticrds::core::plan::{
    hold_paused, plan, plan_modify, Action, ClusterView, ModifyRefusal, Plan, Target,
};
use proptest::prelude::*;
use support::instance;

const CLASS: &str = "db.t3.micro";
const OTHER_CLASS: &str = "db.m5.large";

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid id")
}

fn class(s: &str) -> InstanceClass {
    InstanceClass::parse(s).expect("valid class")
}

fn master_id() -> InstanceId {
    id("cluster1m01")
}

fn replica_id(i: usize) -> InstanceId {
    id(&format!("cluster1s{:02}", i + 1))
}

fn spec(replicas: usize, multi_az: bool) -> ClusterSpec {
    ClusterSpec {
        name: "cluster1".into(),
        master: MasterSpec {
            snapshot: "snap".into(),
            id: master_id(),
            class: class(CLASS),
            multi_az,
            subnet_group: None,
        },
        replicas: (0..replicas)
            .map(|i| ReplicaSpec {
                id: replica_id(i),
                class: class(CLASS),
                template: Default::default(),
            })
            .collect(),
        haproxy: None,
        template: Default::default(),
        rules: Default::default(),
        target: Default::default(),
    }
}

/// Instances for a cluster: the master (if `Some(status)`), replicas by index, foreign
/// replicas of the master. Source/replica links are filled in as RDS reports them.
fn fleet(
    master: Option<InstanceStatus>,
    replicas: &[(usize, &str, InstanceStatus)],
    foreign: &[(&str, InstanceStatus)],
) -> Vec<Instance> {
    let mut out = Vec::new();
    let mut m = master.map(|st| instance(&master_id()).status(st).build());
    for (i, cls, st) in replicas {
        let r = instance(&replica_id(*i))
            .class(cls)
            .status(st.clone())
            .of(&master_id())
            .build();
        if let Some(m) = &mut m {
            m.replicas.push(r.id.clone());
        }
        out.push(r);
    }
    for (f, st) in foreign {
        let r = instance(*f).status(st.clone()).of(&master_id()).build();
        if let Some(m) = &mut m {
            m.replicas.push(r.id.clone());
        }
        out.push(r);
    }
    out.extend(m);
    out
}

use InstanceStatus::{Available, Creating, Deleting, Modifying};

/// `(kind, instance)` of each action, in order.
fn acts(p: &Plan) -> Vec<(&'static str, String)> {
    p.actions
        .iter()
        .map(|a| (a.action.kind(), a.action.instance().to_string()))
        .collect()
}

fn waiting(p: &Plan) -> Vec<String> {
    p.waiting.iter().map(|w| w.id.to_string()).collect()
}

fn plan_for(spec: &ClusterSpec, instances: &[Instance], n: usize) -> Plan {
    plan(
        spec,
        &ClusterView::build(spec, instances),
        &Target::replicas(n),
    )
}

fn held(p: &Plan) -> Vec<(&'static str, String)> {
    p.held
        .iter()
        .map(|h| (h.action.kind(), h.action.instance().to_string()))
        .collect()
}

fn pauses(out: bool, inn: bool) -> Pauses {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let pause = |direction| Pause {
        direction,
        until: Some(at),
        by: "ops".into(),
        reason: "migration".into(),
        readable: true,
    };
    use elasticrds::core::decide::Direction;
    Pauses {
        scale_out: out.then(|| pause(Direction::Out)),
        scale_in: inn.then(|| pause(Direction::In)),
    }
}

/// A pause holds the plan's own scale actions too: a replica deleted by hand within the
/// target is not created again while scale-out is paused (nor is the surplus replica kept
/// for it deleted), a surplus one is not deleted while scale-in is paused; an expired pause
/// holds nothing.
#[test]
fn a_pause_holds_the_plans_creates_and_deletes() {
    let s = spec(4, false);
    // Slot 2 deleted by hand; 1, 3, 4 present; target 3 → create 2, delete 4.
    let inst = fleet(
        Some(Available),
        &[
            (0, CLASS, Available),
            (2, CLASS, Available),
            (3, CLASS, Available),
        ],
        &[],
    );
    let before = "2026-12-04T11:00:00Z".parse().expect("time");
    let after = "2026-12-04T13:00:00Z".parse().expect("time");
    let base = plan_for(&s, &inst, 3);
    assert_eq!(
        acts(&base),
        vec![
            ("create_replica", "cluster1s02".into()),
            ("delete_replica", "cluster1s04".into())
        ]
    );
    let mut p = base.clone();
    hold_paused(&mut p, &pauses(true, false), before);
    assert!(p.actions.is_empty(), "{:?}", acts(&p));
    assert_eq!(held(&p), acts(&base));
    assert!(p.held.iter().all(|h| h.pause.reason == "migration"));

    let mut p = base.clone();
    hold_paused(&mut p, &pauses(false, true), before);
    assert_eq!(acts(&p), vec![("create_replica", "cluster1s02".into())]);
    assert_eq!(held(&p), vec![("delete_replica", "cluster1s04".into())]);

    let mut p = base.clone();
    hold_paused(&mut p, &pauses(true, true), after);
    assert_eq!(p, base, "an expired pause holds nothing");
}

// ---------------------------------------------------------------- table-driven

#[test]
fn table_of_cases() {
    struct Case {
        name: &'static str,
        config_replicas: usize,
        instances: Vec<Instance>,
        n: usize,
        actions: Vec<(&'static str, &'static str)>,
        waiting: Vec<&'static str>,
    }
    let cases = vec![
        Case {
            name: "empty fleet: restore the master, replicas wait for it",
            config_replicas: 3,
            instances: vec![],
            n: 2,
            actions: vec![("restore_master", "cluster1m01")],
            waiting: vec!["cluster1s01", "cluster1s02"],
        },
        Case {
            name: "master creating: wait for it, act on nothing",
            config_replicas: 3,
            instances: fleet(Some(Creating), &[], &[]),
            n: 3,
            actions: vec![],
            waiting: vec!["cluster1m01", "cluster1s01", "cluster1s02", "cluster1s03"],
        },
        Case {
            name: "master available, N=2 of 3: the first two in order",
            config_replicas: 3,
            instances: fleet(Some(Available), &[], &[]),
            n: 2,
            actions: vec![
                ("create_replica", "cluster1s01"),
                ("create_replica", "cluster1s02"),
            ],
            waiting: vec![],
        },
        Case {
            name: "3 running, N=2: the last one is deleted",
            config_replicas: 3,
            instances: fleet(
                Some(Available),
                &[
                    (0, CLASS, Available),
                    (1, CLASS, Available),
                    (2, CLASS, Available),
                ],
                &[],
            ),
            n: 2,
            actions: vec![("delete_replica", "cluster1s03")],
            waiting: vec![],
        },
        Case {
            name: "surplus kept while the replica within the target cannot be created yet",
            config_replicas: 3,
            instances: fleet(Some(Creating), &[(2, CLASS, Available)], &[]),
            n: 1,
            actions: vec![],
            waiting: vec!["cluster1m01", "cluster1s01", "cluster1s03"],
        },
        Case {
            name: "make-before-break: one serving surplus replica kept while s01 is created",
            config_replicas: 3,
            instances: fleet(
                Some(Available),
                &[(1, CLASS, Available), (2, CLASS, Available)],
                &[],
            ),
            n: 1,
            actions: vec![
                ("create_replica", "cluster1s01"),
                ("delete_replica", "cluster1s03"),
            ],
            waiting: vec!["cluster1s02"],
        },
        Case {
            name: "make-before-break: the kept surplus goes once s01 serves",
            config_replicas: 3,
            instances: fleet(
                Some(Available),
                &[
                    (0, CLASS, Available),
                    (1, CLASS, Available),
                    (2, CLASS, Available),
                ],
                &[],
            ),
            n: 1,
            actions: vec![
                ("delete_replica", "cluster1s03"),
                ("delete_replica", "cluster1s02"),
            ],
            waiting: vec![],
        },
        Case {
            name: "make-before-break: surplus kept while s01 is still being created",
            config_replicas: 2,
            instances: fleet(
                Some(Available),
                &[(0, CLASS, Creating), (1, CLASS, Available)],
                &[],
            ),
            n: 1,
            actions: vec![],
            waiting: vec!["cluster1s01", "cluster1s02"],
        },
        Case {
            name: "N=4 of 3: clamped, only 3 created",
            config_replicas: 3,
            instances: fleet(Some(Available), &[(0, CLASS, Available)], &[]),
            n: 4,
            actions: vec![
                ("create_replica", "cluster1s02"),
                ("create_replica", "cluster1s03"),
            ],
            waiting: vec![],
        },
        Case {
            name: "N=0: every replica deleted from the end, the master stays",
            config_replicas: 3,
            instances: fleet(
                Some(Available),
                &[
                    (0, CLASS, Available),
                    (1, CLASS, Available),
                    (2, CLASS, Available),
                ],
                &[],
            ),
            n: 0,
            actions: vec![
                ("delete_replica", "cluster1s03"),
                ("delete_replica", "cluster1s02"),
                ("delete_replica", "cluster1s01"),
            ],
            waiting: vec![],
        },
        Case {
            name: "a gap in the list is filled, existing ones are not created again",
            config_replicas: 3,
            instances: fleet(Some(Available), &[(1, CLASS, Available)], &[]),
            n: 3,
            actions: vec![
                ("create_replica", "cluster1s01"),
                ("create_replica", "cluster1s03"),
            ],
            waiting: vec![],
        },
        Case {
            name: "busy replicas are waited for, inside and beyond the target",
            config_replicas: 3,
            instances: fleet(
                Some(Available),
                &[
                    (0, CLASS, Creating),
                    (1, CLASS, Deleting),
                    (2, CLASS, Modifying),
                ],
                &[],
            ),
            n: 2,
            actions: vec![],
            waiting: vec!["cluster1s01", "cluster1s02", "cluster1s03"],
        },
        Case {
            name: "foreign replicas are never touched, even at N=0",
            config_replicas: 1,
            instances: fleet(
                Some(Available),
                &[(0, CLASS, Available)],
                &[("adhoc", Available), ("other", Creating)],
            ),
            n: 0,
            actions: vec![("delete_replica", "cluster1s01")],
            waiting: vec![],
        },
        Case {
            name: "converged: nothing to do",
            config_replicas: 2,
            instances: fleet(
                Some(Available),
                &[(0, CLASS, Available), (1, CLASS, Available)],
                &[("adhoc", Available)],
            ),
            n: 2,
            actions: vec![],
            waiting: vec![],
        },
        Case {
            name: "no replicas configured: only the master",
            config_replicas: 0,
            instances: vec![],
            n: 5,
            actions: vec![("restore_master", "cluster1m01")],
            waiting: vec![],
        },
    ];
    for c in cases {
        let sp = spec(c.config_replicas, true);
        let p = plan_for(&sp, &c.instances, c.n);
        let want: Vec<(&str, String)> =
            c.actions.iter().map(|(k, i)| (*k, i.to_string())).collect();
        assert_eq!(acts(&p), want, "{}: {p:#?}", c.name);
        let mut w = waiting(&p);
        w.sort();
        assert_eq!(w, c.waiting, "{}: waiting {p:#?}", c.name);
        assert_eq!(p.target_replicas, c.n.min(c.config_replicas), "{}", c.name);
        assert_eq!(p.requested_replicas, c.n, "{}", c.name);
        for a in &p.actions {
            assert!(!a.reason.is_empty(), "{}: action without a reason", c.name);
        }
    }
}

#[test]
fn foreign_instances_are_reported_from_either_side() {
    let sp = spec(1, true);
    // Seen in the master's replica list only.
    let mut m = instance(&master_id()).build();
    m.replicas.push(id("adhoc"));
    let v = ClusterView::build(&sp, &[m.clone()]);
    assert_eq!(v.foreign.len(), 1);
    assert_eq!(v.foreign[0].id.as_str(), "adhoc");
    assert!(v.foreign[0].instance.is_none());
    // Seen as an instance whose source is the master.
    let f = instance("other").of(&master_id()).build();
    let v = ClusterView::build(&sp, &[m, f]);
    let ids: Vec<&str> = v.foreign.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["adhoc", "other"]);
    let p = plan(&sp, &v, &Target::replicas(0));
    assert_eq!(
        p.foreign.iter().map(InstanceId::as_str).collect::<Vec<_>>(),
        ["adhoc", "other"]
    );
    assert!(p.actions.iter().all(|a| sp.contains(a.action.instance())));
}

#[test]
fn ids_match_case_insensitively() {
    // RDS reports identifiers in lower case; the config may spell them otherwise.
    let mut sp = spec(1, true);
    sp.master.id = id("Cluster1M01");
    sp.replicas[0].id = id("Cluster1S01");
    let mut m = instance("cluster1m01").build();
    let r = instance("cluster1s01").of(&m.id).build();
    m.replicas.push(r.id.clone());
    let p = plan_for(&sp, &[m, r], 1);
    assert!(p.is_converged(), "{p:#?}");
    assert!(
        p.foreign.is_empty(),
        "own replica taken for foreign: {p:#?}"
    );
}

#[test]
fn drift_is_reported_not_changed() {
    let sp = spec(2, true);
    let mut instances = fleet(
        Some(Available),
        &[(0, OTHER_CLASS, Available), (1, CLASS, Available)],
        &[],
    );
    instances
        .iter_mut()
        .find(|i| i.id == master_id())
        .expect("master")
        .class = class("db.r5.large");
    let p = plan_for(&sp, &instances, 2);
    assert!(p.actions.is_empty(), "{p:#?}");
    let drift: Vec<(&str, &str, &str)> = p
        .drift
        .iter()
        .map(|d| (d.id.as_str(), d.configured.as_str(), d.actual.as_str()))
        .collect();
    assert_eq!(
        drift,
        [
            ("cluster1m01", CLASS, "db.r5.large"),
            ("cluster1s01", CLASS, OTHER_CLASS)
        ]
    );
}

#[test]
fn a_class_override_modifies_idle_instances_only() {
    let sp = spec(3, false);
    let instances = fleet(
        Some(Available),
        &[
            (0, CLASS, Available),
            (1, CLASS, Creating),
            (2, OTHER_CLASS, Available),
        ],
        &[],
    );
    let target = Target {
        replicas: 3,
        replica_class: Some(class(OTHER_CLASS)),
        master_class: None,
    };
    let p = plan(&sp, &ClusterView::build(&sp, &instances), &target);
    assert_eq!(acts(&p), [("modify_class", "cluster1s01".to_string())]);
    match &p.actions[0].action {
        Action::ModifyClass { from, to, .. } => {
            assert_eq!(from.as_str(), CLASS);
            assert_eq!(to.as_str(), OTHER_CLASS);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        p.drift.is_empty(),
        "with an override, differences are acted on, not drift"
    );
    // Creation uses the override class.
    let p = plan_for_target(&sp, &fleet(Some(Available), &[], &[]), &target);
    for a in &p.actions {
        match &a.action {
            Action::CreateReplica { class: c, .. } => assert_eq!(c.as_str(), OTHER_CLASS),
            other => panic!("{other:?}"),
        }
    }
}

fn plan_for_target(spec: &ClusterSpec, instances: &[Instance], t: &Target) -> Plan {
    plan(spec, &ClusterView::build(spec, instances), t)
}

#[test]
fn modify_rules() {
    let single = spec(2, false);
    let multi = spec(2, true);
    let big = class(OTHER_CLASS);
    let only_master = |multi_az: bool| {
        let mut f = fleet(Some(Available), &[], &[]);
        f[0].multi_az = multi_az;
        f
    };
    // Not in the config (foreign or unknown): refused.
    let with_foreign = fleet(
        Some(Available),
        &[(0, CLASS, Available)],
        &[("adhoc", Available)],
    );
    let v = ClusterView::build(&multi, &with_foreign);
    assert!(matches!(
        plan_modify(&multi, &v, &id("adhoc"), &big, true),
        Err(ModifyRefusal::NotConfigured(_))
    ));
    // Configured but absent.
    assert!(matches!(
        plan_modify(&multi, &v, &replica_id(1), &big, false),
        Err(ModifyRefusal::Absent(_))
    ));
    // Busy.
    let busy = fleet(Some(Available), &[(0, CLASS, Modifying)], &[]);
    let v = ClusterView::build(&multi, &busy);
    assert!(matches!(
        plan_modify(&multi, &v, &replica_id(0), &big, true),
        Err(ModifyRefusal::Busy(..))
    ));
    // Same class: nothing to do.
    let v = ClusterView::build(&multi, &with_foreign);
    assert_eq!(
        plan_modify(&multi, &v, &replica_id(0), &class(CLASS), false),
        Ok(None)
    );
    // A single-AZ master alone: unsafe unless forced; multi-AZ: fine.
    let v = ClusterView::build(&single, &only_master(false));
    match plan_modify(&single, &v, &master_id(), &big, false) {
        Err(ModifyRefusal::Unsafe(why)) => assert!(why.contains("--force"), "{why}"),
        other => panic!("{other:?}"),
    }
    let forced = plan_modify(&single, &v, &master_id(), &big, true)
        .expect("forced")
        .expect("an action");
    assert!(forced.reason.contains("forced"), "{}", forced.reason);
    let v = ClusterView::build(&multi, &only_master(true));
    assert!(plan_modify(&multi, &v, &master_id(), &big, false)
        .expect("multi-AZ master may change")
        .is_some());
    // A single-AZ master with an available replica may change.
    let f = fleet(Some(Available), &[(0, CLASS, Available)], &[]);
    let v = ClusterView::build(&single, &f);
    assert!(plan_modify(&single, &v, &master_id(), &big, false).is_ok());
    // A replica may change while the master serves ...
    assert!(plan_modify(&single, &v, &replica_id(0), &big, false).is_ok());
    // ... but not when neither the master nor another replica is available.
    let f = fleet(Some(Modifying), &[(0, CLASS, Available)], &[]);
    let v = ClusterView::build(&single, &f);
    assert!(matches!(
        plan_modify(&single, &v, &replica_id(0), &big, false),
        Err(ModifyRefusal::Unsafe(_))
    ));
    let f = fleet(
        Some(Modifying),
        &[(0, CLASS, Available), (1, CLASS, Available)],
        &[],
    );
    let v = ClusterView::build(&single, &f);
    assert!(plan_modify(&single, &v, &replica_id(0), &big, false).is_ok());
}

// ---------------------------------------------------------------- properties

fn status_strategy() -> impl Strategy<Value = InstanceStatus> {
    prop_oneof![
        4 => Just(Available),
        1 => Just(Creating),
        1 => Just(Modifying),
        1 => Just(Deleting),
        1 => Just(InstanceStatus::BackingUp),
        1 => Just(InstanceStatus::Other("storage-optimization".into())),
    ]
}

/// One generated situation: config size, the fleet, the requested N.
#[derive(Debug, Clone)]
struct World {
    config_replicas: usize,
    multi_az: bool,
    master: Option<(InstanceStatus, bool)>,
    /// Per configured replica: absent, or (status, has the configured class).
    replicas: Vec<Option<(InstanceStatus, bool)>>,
    foreign: Vec<InstanceStatus>,
    n: usize,
}

fn world_strategy() -> impl Strategy<Value = World> {
    (0usize..7)
        .prop_flat_map(|k| {
            (
                Just(k),
                any::<bool>(),
                proptest::option::weighted(0.85, (status_strategy(), any::<bool>())),
                proptest::collection::vec(
                    proptest::option::of((status_strategy(), prop::bool::weighted(0.8))),
                    k,
                ),
                proptest::collection::vec(status_strategy(), 0..3),
                0usize..10,
            )
        })
        .prop_map(|(k, multi_az, master, mut replicas, foreign, n)| {
            // Replicas of a master that does not exist (or is going) cannot be members: they
            // are conflicts (tests/invariants.rs covers them); this world keeps to members.
            if master
                .as_ref()
                .is_none_or(|(st, _)| *st == InstanceStatus::Deleting)
            {
                replicas.iter_mut().for_each(|r| *r = None);
            }
            World {
                config_replicas: k,
                multi_az,
                master,
                replicas,
                foreign,
                n,
            }
        })
}

impl World {
    fn spec(&self) -> ClusterSpec {
        spec(self.config_replicas, self.multi_az)
    }
    fn instances(&self) -> Vec<Instance> {
        let mut out = Vec::new();
        let mut m = self.master.as_ref().map(|(st, same)| {
            instance(&master_id())
                .class(if *same { CLASS } else { OTHER_CLASS })
                .status(st.clone())
                .multi_az(self.multi_az)
                .build()
        });
        for (i, r) in self.replicas.iter().enumerate() {
            if let Some((st, same)) = r {
                let r = instance(&replica_id(i))
                    .class(if *same { CLASS } else { OTHER_CLASS })
                    .status(st.clone())
                    .of(&master_id())
                    .build();
                if let Some(m) = &mut m {
                    m.replicas.push(r.id.clone());
                }
                out.push(r);
            }
        }
        for (j, st) in self.foreign.iter().enumerate() {
            let f = instance(&format!("foreign{j}"))
                .status(st.clone())
                .of(&master_id())
                .build();
            if let Some(m) = &mut m {
                m.replicas.push(f.id.clone());
            }
            out.push(f);
        }
        out.extend(m);
        out
    }
}

/// Apply a plan's actions to a fleet the way an instant fleet would (restore and create make
/// available instances, delete removes, modify changes the class).
fn apply(spec: &ClusterSpec, instances: &mut Vec<Instance>, p: &Plan) {
    for a in &p.actions {
        match &a.action {
            Action::RestoreMaster { master } => {
                assert!(!instances.iter().any(|i| i.id == master.id));
                let m = instance(&master.id)
                    .class(master.class.as_str())
                    .multi_az(master.multi_az)
                    .build();
                instances.push(m);
            }
            Action::CreateReplica {
                id, source, class, ..
            } => {
                assert!(
                    !instances.iter().any(|i| i.id == *id),
                    "create of existing {id}"
                );
                let r = instance(id).class(class.as_str()).of(source).build();
                instances
                    .iter_mut()
                    .find(|i| i.id == *source)
                    .expect("source exists")
                    .replicas
                    .push(id.clone());
                instances.push(r);
            }
            Action::DeleteReplica { id } => {
                assert!(!spec.is_master(id));
                instances.retain(|i| i.id != *id);
                for i in instances.iter_mut() {
                    i.replicas.retain(|r| r != id);
                }
            }
            Action::ModifyClass { id, to, .. } => {
                instances
                    .iter_mut()
                    .find(|i| i.id == *id)
                    .expect("modified instance exists")
                    .class = to.clone();
            }
            Action::ModifySettings { .. } => panic!("no template in these worlds: {a:?}"),
        }
    }
}

/// Let every transition finish: busy instances become available, deleting ones disappear.
fn settle(instances: &mut Vec<Instance>) {
    let gone: Vec<InstanceId> = instances
        .iter()
        .filter(|i| i.status == Deleting)
        .map(|i| i.id.clone())
        .collect();
    instances.retain(|i| i.status != Deleting);
    for i in instances.iter_mut() {
        i.replicas.retain(|r| !gone.iter().any(|g| g == r));
        i.status = Available;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plan_invariants(w in world_strategy()) {
        let sp = w.spec();
        let instances = w.instances();
        let view = ClusterView::build(&sp, &instances);
        let p = plan(&sp, &view, &Target::replicas(w.n));
        let n = w.n.min(w.config_replicas);
        prop_assert_eq!(p.target_replicas, n);
        prop_assert_eq!(p.requested_replicas, w.n);

        let exists = |x: &InstanceId| instances.iter().any(|i| i.id == *x);
        let status_of = |x: &InstanceId| instances.iter().find(|i| i.id == *x).map(|i| i.status.clone());
        let master_available = matches!(w.master, Some((Available, _)));

        let mut seen: Vec<InstanceId> = Vec::new();
        let mut created_idx = Vec::new();
        let mut deleted_idx = Vec::new();
        for a in &p.actions {
            let target = a.action.instance();
            // Only configured instances, never two actions on one.
            prop_assert!(sp.contains(target), "action outside the config: {:?}", a);
            prop_assert!(!seen.iter().any(|s| s == target), "two actions on {}", target);
            seen.push(target.clone());
            // Nothing busy is acted on.
            if let Some(st) = status_of(target) {
                prop_assert!(st.is_available(), "acted on busy {} ({})", target, st);
            }
            match &a.action {
                Action::RestoreMaster { master } => {
                    prop_assert!(w.master.is_none());
                    prop_assert_eq!(&master.id, &sp.master.id);
                }
                Action::CreateReplica { id, source, class, .. } => {
                    prop_assert!(!exists(id), "create for existing {}", id);
                    prop_assert!(master_available, "create while the master is not available");
                    prop_assert_eq!(source, &sp.master.id);
                    let i = sp.replica_index(id).expect("configured replica");
                    prop_assert!(i < n, "create beyond the target");
                    prop_assert_eq!(class, &sp.replicas[i].class);
                    created_idx.push(i);
                }
                Action::DeleteReplica { id } => {
                    prop_assert!(!sp.is_master(id), "the master is never deleted");
                    let i = sp.replica_index(id).expect("configured replica");
                    prop_assert!(i >= n, "delete within the target");
                    deleted_idx.push(i);
                }
                Action::ModifyClass { .. } => {
                    prop_assert!(false, "no class change without an override: {:?}", a);
                }
                Action::ModifySettings { .. } => {
                    prop_assert!(false, "no settings change without a template: {:?}", a);
                }
            }
        }
        // Creation in config order, deletion from the end.
        prop_assert!(created_idx.windows(2).all(|w| w[0] < w[1]), "{:?}", created_idx);
        prop_assert!(deleted_idx.windows(2).all(|w| w[0] > w[1]), "{:?}", deleted_idx);
        // Every wanted-but-absent replica is created (master available) or waited for.
        for i in 0..n {
            let rid = replica_id(i);
            if !exists(&rid) {
                let planned = created_idx.contains(&i);
                let waits = p.waiting.iter().any(|x| x.id == rid);
                prop_assert!(planned != waits, "{} neither created nor waited for", rid);
                prop_assert_eq!(planned, master_available);
            }
        }
        // Idle surplus replicas are deleted from the end, but never so many that the replicas
        // that exist (not being deleted) plus those created now drop below the target (a
        // surplus replica is kept, and waited for, while one within the target cannot be
        // created yet), and, make-before-break, serving surplus replicas make up for those
        // within the target that do not serve yet, as long as the count stays within
        // max(count before, target). Busy ones are waited for.
        let alive = |i: usize| status_of(&replica_id(i)).is_some_and(|st| st != InstanceStatus::Deleting);
        let serving = |i: usize| status_of(&replica_id(i)).is_some_and(|st| st.is_available());
        let count = (0..w.config_replicas).filter(|&i| alive(i)).count();
        let n_in = n.min(w.config_replicas);
        let within_after = (0..n_in).filter(|&i| alive(i)).count() + created_idx.len();
        let serving_within = (0..n_in).filter(|&i| serving(i)).count();
        let surplus_idle = (n_in..w.config_replicas).filter(|&i| serving(i)).count();
        let surplus_busy = (n_in..w.config_replicas).filter(|&i| alive(i) && !serving(i)).count();
        let keep = (n.saturating_sub(within_after + surplus_busy))
            .max(n.min(serving_within + surplus_idle).saturating_sub(serving_within)
                .min(count.max(n).saturating_sub(within_after + surplus_busy)))
            .min(surplus_idle);
        let mut budget = surplus_idle - keep;
        // Serving capacity never drops below what it was or the target, whichever is less,
        // unless the count bound forbids keeping it.
        prop_assert!(
            serving_within + keep >= n.min(serving_within + surplus_idle)
                || within_after + surplus_busy + keep >= count.max(n),
            "reads left short"
        );
        for i in (n..w.config_replicas).rev() {
            let rid = replica_id(i);
            let waits = p.waiting.iter().any(|x| x.id == rid);
            match status_of(&rid) {
                None => prop_assert!(!deleted_idx.contains(&i)),
                Some(st) if st.is_available() && budget > 0 => {
                    prop_assert!(deleted_idx.contains(&i), "{} not deleted", rid);
                    budget -= 1;
                }
                Some(_) => {
                    prop_assert!(!deleted_idx.contains(&i), "{} deleted", rid);
                    prop_assert!(waits, "{} neither deleted nor waited for", rid);
                }
            }
        }
        prop_assert!(
            count + created_idx.len() - deleted_idx.len() >= n.min(count + created_idx.len()),
            "deleted below the target"
        );
        // Busy configured instances are reported as waiting.
        for i in instances.iter().filter(|i| sp.contains(&i.id) && i.status.is_busy()) {
            let in_scope = sp.is_master(&i.id)
                || sp.replica_index(&i.id).is_some();
            if in_scope {
                prop_assert!(p.waiting.iter().any(|x| x.id == i.id), "{} busy but not waited for", i.id);
            }
        }
        // Foreign instances: reported, never acted on.
        let mut foreign: Vec<String> = (0..w.foreign.len()).map(|j| format!("foreign{}", j)).collect();
        foreign.sort();
        if w.master.is_some() || !w.foreign.is_empty() {
            let got: Vec<String> = p.foreign.iter().map(|f| f.to_string()).collect();
            prop_assert_eq!(got, foreign);
        }
        // Drift: exactly the idle, kept, configured instances whose class differs.
        let mut want_drift: Vec<String> = Vec::new();
        if let Some((Available, false)) = &w.master { want_drift.push(master_id().to_string()); }
        for (i, r) in w.replicas.iter().enumerate().take(n) {
            if let Some((Available, false)) = r { want_drift.push(replica_id(i).to_string()); }
        }
        let got_drift: Vec<String> = p.drift.iter().map(|d| d.id.to_string()).collect();
        prop_assert_eq!(got_drift, want_drift);
    }

    #[test]
    fn applying_a_plan_converges_and_is_idempotent(w in world_strategy()) {
        let sp = w.spec();
        let target = Target::replicas(w.n);
        let mut instances = w.instances();
        let foreign_before: Vec<Instance> = instances
            .iter()
            // (one that was already being deleted goes away by itself)
            .filter(|i| !sp.contains(&i.id) && i.status != Deleting)
            .cloned()
            .collect();
        // A fully idle fleet with its master: one application, then at most the deletion of
        // surplus replicas kept (make-before-break) while those within the target were being
        // created, reaches the fixed point.
        let idle = w.master.as_ref().is_some_and(|(s, _)| s.is_available())
            && instances.iter().all(|i| i.status.is_available());
        if idle {
            let mut probe = instances.clone();
            let p = plan(&sp, &ClusterView::build(&sp, &probe), &target);
            apply(&sp, &mut probe, &p);
            settle(&mut probe);
            let again = plan(&sp, &ClusterView::build(&sp, &probe), &target);
            prop_assert!(
                again.actions.iter().all(|a| matches!(a.action, Action::DeleteReplica { .. })),
                "second plan does more than delete kept surplus: {:?}", again
            );
            apply(&sp, &mut probe, &again);
            settle(&mut probe);
            let third = plan(&sp, &ClusterView::build(&sp, &probe), &target);
            prop_assert!(third.is_converged(), "third plan not empty: {:?}", third);
        }
        // In general: plan, apply, let transitions finish; at most 3 rounds to converge.
        let max_rounds = 3;
        let mut rounds = 0;
        loop {
            let p = plan(&sp, &ClusterView::build(&sp, &instances), &target);
            if p.is_converged() { break; }
            rounds += 1;
            prop_assert!(rounds <= max_rounds, "not converged after {} rounds: {:?}", max_rounds, p);
            apply(&sp, &mut instances, &p);
            settle(&mut instances);
        }
        // Converged: the master and exactly the first N replicas; foreign ones untouched.
        let n = w.n.min(w.config_replicas);
        prop_assert!(instances.iter().any(|i| sp.is_master(&i.id)));
        let mut want: Vec<String> = (0..n).map(|i| replica_id(i).to_string()).collect();
        want.sort();
        let mut got: Vec<String> = instances
            .iter()
            .filter(|i| sp.replica_index(&i.id).is_some())
            .map(|i| i.id.to_string())
            .collect();
        got.sort();
        prop_assert_eq!(got, want);
        for f in &foreign_before {
            let now = instances.iter().find(|i| i.id == f.id);
            prop_assert!(now.is_some(), "foreign {} lost", f.id);
            let now = now.expect("present");
            prop_assert_eq!(&now.class, &f.class);
        }
    }

    #[test]
    fn with_a_class_override_only_idle_configured_instances_change(
        w in world_strategy(),
        override_master in any::<bool>(),
    ) {
        let sp = w.spec();
        let instances = w.instances();
        let target = Target {
            replicas: w.n,
            replica_class: Some(class(OTHER_CLASS)),
            master_class: override_master.then(|| class(OTHER_CLASS)),
        };
        let view = ClusterView::build(&sp, &instances);
        let p = plan(&sp, &view, &target);
        let mut seen: Vec<InstanceId> = Vec::new();
        for a in &p.actions {
            let t = a.action.instance();
            prop_assert!(sp.contains(t));
            prop_assert!(!seen.iter().any(|s| s == t), "two actions on {}", t);
            seen.push(t.clone());
            if let Action::ModifyClass { id, from, to } = &a.action {
                let cur = instances.iter().find(|i| i.id == *id).expect("exists");
                prop_assert!(cur.status.is_available());
                prop_assert_eq!(&cur.class, from);
                prop_assert_ne!(from, to);
                prop_assert_eq!(to.as_str(), OTHER_CLASS);
                if sp.is_master(id) {
                    prop_assert!(override_master);
                } else {
                    prop_assert!(sp.replica_index(id).expect("replica") < w.n.min(w.config_replicas));
                }
            }
        }
    }
}
