//! Reconcile planning: (cluster config, observed fleet, target) → an ordered list of actions,
//! each with its reason, plus what is being waited for, class drift and foreign instances.
//! Pure and deterministic; execution lives in `crate::reconcile`.
//!
//! Rules: restore the master only when absent; replicas are the first N of the configured list
//! (N clamped to its length), created in order once their source is available, surplus deleted
//! from the end; busy instances (creating, modifying, deleting, ...) are waited for, never acted
//! on twice; the master is never deleted; instances outside the config are never touched.

use super::config::{ClusterSpec, MasterSpec};
use super::domain::{Instance, InstanceClass, InstanceId, InstanceStatus};
use serde::Serialize;
use std::fmt;

/// A cluster as observed: the master, each configured replica (index-aligned with the config)
/// and replicas of the master that are not in the config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    pub master: Option<Instance>,
    pub replicas: Vec<Option<Instance>>,
    pub foreign: Vec<Foreign>,
}

/// An instance replicating from the master that the config does not list. Reported, never touched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Foreign {
    pub id: InstanceId,
    /// Present when the observer described it.
    pub instance: Option<Instance>,
}

impl ClusterView {
    /// Build the view of `spec` from any set of observed instances (extra ones are ignored).
    pub fn build(spec: &ClusterSpec, instances: &[Instance]) -> ClusterView {
        Layout::of(spec, instances).view(|i| instances.get(i).cloned())
    }

    /// [`ClusterView::build`] from instances given by value: each one the view holds is moved
    /// into it rather than copied. Same view.
    pub fn build_owned(spec: &ClusterSpec, instances: Vec<Instance>) -> ClusterView {
        let layout = Layout::of(spec, &instances);
        let distinct = layout
            .indices()
            .enumerate()
            .all(|(k, i)| layout.indices().take(k).all(|p| p != i));
        if !distinct {
            // An instance the view holds twice (never with a valid config): copy.
            return layout.view(|i| instances.get(i).cloned());
        }
        let Layout {
            master,
            replicas,
            foreign,
        } = layout;
        let foreign_at: Vec<Option<usize>> = foreign.iter().map(|(_, i)| *i).collect();
        let mut view = ClusterView {
            master: None,
            replicas: replicas.iter().map(|_| None).collect(),
            foreign: foreign
                .into_iter()
                .map(|(id, _)| Foreign { id, instance: None })
                .collect(),
        };
        for (j, inst) in instances.into_iter().enumerate() {
            let slot = if master == Some(j) {
                Some(&mut view.master)
            } else if let Some(k) = replicas.iter().position(|r| *r == Some(j)) {
                view.replicas.get_mut(k)
            } else if let Some(k) = foreign_at.iter().position(|f| *f == Some(j)) {
                view.foreign.get_mut(k).map(|f| &mut f.instance)
            } else {
                None
            };
            if let Some(slot) = slot {
                *slot = Some(inst);
            }
        }
        view
    }

    /// Configured replicas that exist, in config order.
    pub fn existing_replicas(&self) -> impl Iterator<Item = &Instance> {
        self.replicas.iter().flatten()
    }

    /// Configured replicas that exist and are not being deleted: the capacity the cluster has
    /// or is getting.
    pub fn replica_count(&self) -> usize {
        self.existing_replicas()
            .filter(|i| i.status != InstanceStatus::Deleting)
            .count()
    }

    pub fn available_replicas(&self) -> usize {
        self.existing_replicas()
            .filter(|i| i.status.is_available())
            .count()
    }
}

/// Where each part of a [`ClusterView`] is among the observed instances (indices).
struct Layout {
    master: Option<usize>,
    replicas: Vec<Option<usize>>,
    /// Sorted by id.
    foreign: Vec<(InstanceId, Option<usize>)>,
}

impl Layout {
    fn of(spec: &ClusterSpec, instances: &[Instance]) -> Layout {
        // One pass over the instances (every tick builds a view): each configured id gets the
        // first instance of that id, as a search per id would give.
        let mut master = None;
        let mut replicas: Vec<Option<usize>> = vec![None; spec.replicas.len()];
        // Bit j: instance j is configured (the first 64; the rest are checked in full).
        let mut configured = 0u64;
        for (j, inst) in instances.iter().enumerate() {
            let mut matched = false;
            if inst.id.same_as(&spec.master.id) {
                matched = true;
                master = master.or(Some(j));
            }
            for (slot, r) in replicas.iter_mut().zip(&spec.replicas) {
                if r.id.same_as(&inst.id) {
                    matched = true;
                    *slot = slot.or(Some(j));
                }
            }
            if matched && j < 64 {
                configured |= 1 << j;
            }
        }
        Layout {
            master,
            replicas,
            foreign: Layout::foreign_of(spec, instances, master, |j| {
                j < 64 && configured & (1 << j) != 0
            }),
        }
    }

    /// The foreign replicas of the master (the instance at `master`): listed by it or naming
    /// it as their source, not configured; each with the first instance of its id; sorted.
    /// `configured(j)`: the instance at `j` is known to be configured (skipped unchecked).
    fn foreign_of(
        spec: &ClusterSpec,
        instances: &[Instance],
        master: Option<usize>,
        configured: impl Fn(usize) -> bool,
    ) -> Vec<(InstanceId, Option<usize>)> {
        let find = |id: &InstanceId| instances.iter().position(|i| i.id.same_as(id));
        let mut foreign: Vec<(InstanceId, Option<usize>)> = Vec::new();
        let mut add = |id: &InstanceId| {
            if !spec.contains(id) && !foreign.iter().any(|(f, _)| f.same_as(id)) {
                foreign.push((id.clone(), find(id)));
            }
        };
        if let Some(m) = master.and_then(|i| instances.get(i)) {
            for id in &m.replicas {
                add(id);
            }
        }
        for (j, i) in instances.iter().enumerate() {
            if !configured(j)
                && i.source
                    .as_ref()
                    .is_some_and(|s| s.same_as(&spec.master.id))
            {
                add(&i.id);
            }
        }
        foreign.sort_by(|a, b| a.0.cmp(&b.0));
        foreign
    }

    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.master
            .iter()
            .chain(self.replicas.iter().flatten())
            .chain(self.foreign.iter().filter_map(|(_, i)| i.as_ref()))
            .copied()
    }

    /// The view, taking the instance at an index from `get`.
    fn view(self, mut get: impl FnMut(usize) -> Option<Instance>) -> ClusterView {
        let master = self.master.and_then(&mut get);
        let replicas = self
            .replicas
            .into_iter()
            .map(|i| i.and_then(&mut get))
            .collect();
        let foreign = self
            .foreign
            .into_iter()
            .map(|(id, i)| Foreign {
                id,
                instance: i.and_then(&mut get),
            })
            .collect();
        ClusterView {
            master,
            replicas,
            foreign,
        }
    }
}

/// One change to the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    RestoreMaster {
        master: MasterSpec,
    },
    CreateReplica {
        id: InstanceId,
        source: InstanceId,
        class: InstanceClass,
    },
    DeleteReplica {
        id: InstanceId,
    },
    ModifyClass {
        id: InstanceId,
        from: InstanceClass,
        to: InstanceClass,
    },
}

impl Action {
    pub fn instance(&self) -> &InstanceId {
        match self {
            Action::RestoreMaster { master } => &master.id,
            Action::CreateReplica { id, .. }
            | Action::DeleteReplica { id }
            | Action::ModifyClass { id, .. } => id,
        }
    }
    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RestoreMaster { .. } => "restore_master",
            Action::CreateReplica { .. } => "create_replica",
            Action::DeleteReplica { .. } => "delete_replica",
            Action::ModifyClass { .. } => "modify_class",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::RestoreMaster { master } => write!(
                f,
                "restore master {} ({}) from snapshot {}",
                master.id, master.class, master.snapshot
            ),
            Action::CreateReplica { id, source, class } => {
                write!(f, "create replica {id} ({class}) of {source}")
            }
            Action::DeleteReplica { id } => write!(f, "delete replica {id}"),
            Action::ModifyClass { id, from, to } => write!(f, "modify {id} class {from} -> {to}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedAction {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
}

/// Something the plan cannot act on yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    pub id: InstanceId,
    pub status: Option<String>,
    pub reason: String,
}

/// An instance whose class differs from the desired one, reported (not changed) when the
/// target does not enforce classes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub id: InstanceId,
    pub configured: InstanceClass,
    pub actual: InstanceClass,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub cluster: String,
    /// Requested replica count, and the count actually planned for (clamped to the list).
    pub requested_replicas: usize,
    pub target_replicas: usize,
    pub actions: Vec<PlannedAction>,
    pub waiting: Vec<Waiting>,
    pub drift: Vec<Drift>,
    pub foreign: Vec<InstanceId>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
    /// True when nothing is to be done and nothing is in flight.
    pub fn is_converged(&self) -> bool {
        self.actions.is_empty() && self.waiting.is_empty()
    }
}

/// What the cluster should look like.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Target {
    pub replicas: usize,
    /// When set, replicas are created with and modified to this class (a schedule's override);
    /// when unset the configured class is used for creation and differences are only reported.
    pub replica_class: Option<InstanceClass>,
    /// Likewise for the master.
    pub master_class: Option<InstanceClass>,
}

impl Target {
    pub fn replicas(n: usize) -> Self {
        Target {
            replicas: n,
            ..Default::default()
        }
    }
}

/// Plan the actions that bring `view` to `target` for `spec`.
pub fn plan(spec: &ClusterSpec, view: &ClusterView, target: &Target) -> Plan {
    let n = target.replicas.min(spec.replicas.len());
    let mut p = Plan {
        cluster: spec.name.clone(),
        requested_replicas: target.replicas,
        target_replicas: n,
        actions: Vec::new(),
        waiting: Vec::new(),
        drift: Vec::new(),
        foreign: view.foreign.iter().map(|f| f.id.clone()).collect(),
    };
    let clamp_note = if target.replicas > n {
        format!(
            " (requested {} clamped to the {} configured)",
            target.replicas,
            spec.replicas.len()
        )
    } else {
        String::new()
    };

    let master_available = match &view.master {
        None => {
            p.actions.push(PlannedAction {
                action: Action::RestoreMaster {
                    master: spec.master.clone(),
                },
                reason: format!("master {} does not exist", spec.master.id),
            });
            false
        }
        Some(m) if m.status.is_busy() => {
            p.waiting.push(Waiting {
                id: m.id.clone(),
                status: Some(m.status.to_string()),
                reason: format!("master is {}", m.status),
            });
            false
        }
        Some(_) => true,
    };

    // Replicas that should exist, in config order.
    for (i, rs) in spec.replicas.iter().enumerate().take(n) {
        match &view.replicas[i] {
            None if master_available => p.actions.push(PlannedAction {
                action: Action::CreateReplica {
                    id: rs.id.clone(),
                    source: spec.master.id.clone(),
                    class: target
                        .replica_class
                        .clone()
                        .unwrap_or_else(|| rs.class.clone()),
                },
                reason: format!("replica {} of {} wanted{}", i + 1, n, clamp_note),
            }),
            None => p.waiting.push(Waiting {
                id: rs.id.clone(),
                status: None,
                reason: format!("to be created once source {} is available", spec.master.id),
            }),
            Some(inst) if inst.status == InstanceStatus::Deleting => p.waiting.push(Waiting {
                id: inst.id.clone(),
                status: Some(inst.status.to_string()),
                reason: "being deleted; will be created again once gone".into(),
            }),
            Some(inst) if inst.status.is_busy() => p.waiting.push(Waiting {
                id: inst.id.clone(),
                status: Some(inst.status.to_string()),
                reason: format!("replica is {}", inst.status),
            }),
            Some(_) => {}
        }
    }

    // Surplus replicas, deleted from the end of the list, make-before-break within bounds:
    // - never so many that the count (existing plus planned creates) drops below the target
    //   (a surplus replica stays while one within the target cannot be created yet);
    // - while replicas within the target are not serving yet (being created), keep as many
    //   serving surplus replicas as make up for them, as long as the count stays within
    //   max(count before, target): reads are never left without the capacity they had.
    let creates = p
        .actions
        .iter()
        .filter(|a| matches!(a.action, Action::CreateReplica { .. }))
        .count();
    let slot = |i: usize| view.replicas[i].as_ref();
    let alive = |i: usize| slot(i).is_some_and(|r| r.status != InstanceStatus::Deleting);
    let idle = |i: usize| slot(i).is_some_and(|r| !r.status.is_busy());
    let len = spec.replicas.len();
    let n_in = n.min(len);
    let before = view.replica_count();
    let within_after = (0..n_in).filter(|&i| alive(i)).count() + creates;
    let serving_within = (0..n_in)
        .filter(|&i| slot(i).is_some_and(|r| r.status.is_available()))
        .count();
    let surplus_idle = (n_in..len).filter(|&i| idle(i)).count();
    let surplus_busy = (n_in..len).filter(|&i| alive(i) && !idle(i)).count();
    let keep_for_count = n.saturating_sub(within_after + surplus_busy);
    let keep_for_reads = n
        .min(serving_within + surplus_idle)
        .saturating_sub(serving_within)
        .min(before.max(n).saturating_sub(within_after + surplus_busy));
    let keep = keep_for_count.max(keep_for_reads).min(surplus_idle);
    let mut deletable = surplus_idle - keep;
    for (i, rs) in spec.replicas.iter().enumerate().skip(n).rev() {
        match &view.replicas[i] {
            None => {}
            Some(inst) if inst.status == InstanceStatus::Deleting => p.waiting.push(Waiting {
                id: inst.id.clone(),
                status: Some(inst.status.to_string()),
                reason: "being deleted".into(),
            }),
            Some(inst) if inst.status.is_busy() => p.waiting.push(Waiting {
                id: inst.id.clone(),
                status: Some(inst.status.to_string()),
                reason: format!("beyond target {n}; will be deleted once available"),
            }),
            Some(inst) if deletable == 0 => p.waiting.push(Waiting {
                id: inst.id.clone(),
                status: Some(inst.status.to_string()),
                reason: format!(
                    "beyond target {n}; kept until the replicas within the target exist and serve"
                ),
            }),
            Some(_) => {
                deletable -= 1;
                p.actions.push(PlannedAction {
                    action: Action::DeleteReplica { id: rs.id.clone() },
                    reason: format!("replica {} of the list is beyond target {n}", i + 1),
                })
            }
        }
    }

    // Classes of instances that stay and are idle.
    let acted: Vec<InstanceId> = p
        .actions
        .iter()
        .map(|a| a.action.instance().clone())
        .collect();
    let class_check = |inst: &Instance,
                       configured: &InstanceClass,
                       wanted: Option<&InstanceClass>,
                       p: &mut Plan| {
        if inst.status.is_busy() || acted.iter().any(|a| a.same_as(&inst.id)) {
            return;
        }
        match wanted {
            Some(w) if &inst.class != w => match modify_is_safe(spec, view, &inst.id) {
                Ok(()) => p.actions.push(PlannedAction {
                    action: Action::ModifyClass {
                        id: inst.id.clone(),
                        from: inst.class.clone(),
                        to: w.clone(),
                    },
                    reason: format!("schedule wants class {w}"),
                }),
                Err(why) => p.waiting.push(Waiting {
                    id: inst.id.clone(),
                    status: Some(inst.status.to_string()),
                    reason: format!("class change to {w} held: {why}"),
                }),
            },
            Some(_) => {}
            None if &inst.class != configured => p.drift.push(Drift {
                id: inst.id.clone(),
                configured: configured.clone(),
                actual: inst.class.clone(),
            }),
            None => {}
        }
    };
    if let Some(m) = &view.master {
        class_check(m, &spec.master.class, target.master_class.as_ref(), &mut p);
    }
    for (i, rs) in spec.replicas.iter().enumerate().take(n) {
        if let Some(inst) = &view.replicas[i] {
            class_check(inst, &rs.class, target.replica_class.as_ref(), &mut p);
        }
    }
    p
}

/// Why a class change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModifyRefusal {
    #[error("{0} is not in the cluster config; elasticrds only changes configured instances")]
    NotConfigured(InstanceId),
    #[error("{0} does not exist")]
    Absent(InstanceId),
    #[error("{0} is {1}; wait until it is available")]
    Busy(InstanceId, String),
    #[error("{0}")]
    Unsafe(String),
}

/// The documented rule: an instance is out of service while its class changes, so the master
/// may change only if it is multi-AZ or a replica is available to serve reads, and a replica
/// only if the master or another replica still serves.
pub fn modify_is_safe(
    spec: &ClusterSpec,
    view: &ClusterView,
    id: &InstanceId,
) -> Result<(), String> {
    let other_replica_available = view
        .existing_replicas()
        .any(|r| !r.id.same_as(id) && r.status.is_available());
    if spec.is_master(id) {
        let multi_az = view.master.as_ref().is_some_and(|m| m.multi_az);
        if multi_az || other_replica_available {
            Ok(())
        } else {
            Err(format!(
                "master {id} is not multi-AZ and no replica is available: it would be out of service during the change"
            ))
        }
    } else {
        let master_serves = view
            .master
            .as_ref()
            .is_some_and(|m| m.status.is_available());
        if master_serves || other_replica_available {
            Ok(())
        } else {
            Err(format!(
                "no other instance of the cluster is available to serve while {id} changes"
            ))
        }
    }
}

/// Plan `modify-instance ID CLASS`: `Ok(None)` when the class is already right.
pub fn plan_modify(
    spec: &ClusterSpec,
    view: &ClusterView,
    id: &InstanceId,
    class: &InstanceClass,
    force: bool,
) -> Result<Option<PlannedAction>, ModifyRefusal> {
    if !spec.contains(id) {
        return Err(ModifyRefusal::NotConfigured(id.clone()));
    }
    let inst = if spec.is_master(id) {
        view.master.as_ref()
    } else {
        spec.replica_index(id)
            .and_then(|i| view.replicas[i].as_ref())
    }
    .ok_or_else(|| ModifyRefusal::Absent(id.clone()))?;
    if inst.status.is_busy() {
        return Err(ModifyRefusal::Busy(id.clone(), inst.status.to_string()));
    }
    if &inst.class == class {
        return Ok(None);
    }
    let mut reason = format!("requested class {class}");
    if let Err(why) = modify_is_safe(spec, view, id) {
        if !force {
            return Err(ModifyRefusal::Unsafe(format!(
                "{why} (use --force to change it anyway)"
            )));
        }
        reason.push_str(&format!("; forced although {why}"));
    }
    Ok(Some(PlannedAction {
        action: Action::ModifyClass {
            id: inst.id.clone(),
            from: inst.class.clone(),
            to: class.clone(),
        },
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use std::sync::Arc;

    fn inst(id: &str, source: Option<&str>, replicas: &[&str]) -> Instance {
        Instance {
            id: InstanceId::from_aws(id),
            class: InstanceClass::from_aws("db.t3.micro"),
            status: InstanceStatus::Available,
            engine: "mysql".into(),
            multi_az: false,
            source: source.map(InstanceId::from_aws),
            replicas: replicas.iter().map(|r| InstanceId::from_aws(r)).collect(),
            endpoint: None,
            created_at: None,
            available_since: None,
            tags: Arc::new([("k".to_string(), id.to_string())].into_iter().collect()),
        }
    }

    #[test]
    fn build_owned_gives_the_view_build_gives() {
        let config = Config::parse(
            "c.yaml",
            "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - {id: c1s2, instance_class: db.t3.micro}\n    - {id: c1s3, instance_class: db.t3.micro}\n",
        )
        .unwrap();
        let spec = config.cluster("c1").unwrap();
        let cases: Vec<Vec<Instance>> = vec![
            vec![],
            vec![inst("c1m", None, &[])],
            // Ids in another case, a foreign replica on either side, an unrelated instance,
            // a configured replica described twice (the first one wins), out of order.
            vec![
                inst("C1S3", Some("c1m"), &[]),
                inst("other", None, &[]),
                inst("c1m", None, &["c1s3", "adhoc", "c1s1"]),
                inst("zz-foreign", Some("C1M"), &[]),
                inst("c1s1", Some("c1m"), &[]),
                inst("c1S1", Some("c1m"), &[]),
            ],
        ];
        // A spec that names one instance twice (as master and replica, and as two replicas):
        // never from a valid config; the view is still the one `build` gives.
        let mut twice = spec.clone();
        twice.replicas[1].id = InstanceId::from_aws("C1M");
        twice.replicas[2].id = InstanceId::from_aws("c1s1");
        let many: Vec<Instance> = (0..40)
            .map(|i| inst(&format!("x{i}"), Some("c1m"), &[]))
            .chain([
                inst("c1m", None, &["x3", "c1s2"]),
                inst("c1s2", Some("c1m"), &[]),
            ])
            .collect();
        for instances in cases.iter().chain([&many]) {
            for spec in [spec, &twice] {
                // The one-pass layout is a search per configured id.
                let find = |id: &InstanceId| instances.iter().position(|i| i.id.same_as(id));
                let layout = Layout::of(spec, instances);
                assert_eq!(layout.master, find(&spec.master.id));
                let per_id: Vec<Option<usize>> =
                    spec.replicas.iter().map(|r| find(&r.id)).collect();
                assert_eq!(layout.replicas, per_id);
                assert_eq!(
                    layout.foreign,
                    Layout::foreign_of(spec, instances, layout.master, |_| false)
                );
                let want = ClusterView::build(spec, instances);
                assert_eq!(ClusterView::build_owned(spec, instances.clone()), want);
            }
        }
    }
}
