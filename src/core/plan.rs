//! Reconcile planning: (cluster config, observed fleet, target) → an ordered list of actions,
//! each with its reason, plus what is being waited for, class drift and foreign instances.
//! Pure and deterministic; execution lives in `crate::reconcile`.
//!
//! Rules: restore the master only when absent; replicas are the first N usable slots of the
//! configured list (N clamped to their count; a slot held by an instance that is not a replica
//! of the master is blocked, see `core::view`), created in order once their source is
//! available, surplus deleted from the end; busy instances (creating, modifying, deleting, ...)
//! are waited for, never acted on twice; the master is never deleted; instances outside the
//! membership are never touched.

use super::config::{ClusterSpec, MasterSpec};
use super::domain::{Instance, InstanceClass, InstanceId, InstanceStatus, Tags};
use super::template::{SettingDrift, Settings};

mod holds;
mod modify;
mod settings;
use super::pause::Pause;
pub use super::view::{ClusterView, Conflict, ConflictKind, Foreign, MasterIssue};
pub use holds::{hold_for_quota, hold_paused};
pub use modify::{modify_is_safe, plan_modify, ModifyRefusal};
use serde::Serialize;
pub use settings::template_drift;
use std::fmt;
use std::sync::Arc;

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
        /// Where it goes (the replica's template); its settings are the template's too.
        #[serde(default, skip_serializing_if = "Placing::is_any")]
        placement: Placing,
    },
    DeleteReplica {
        id: InstanceId,
    },
    ModifyClass {
        id: InstanceId,
        from: InstanceClass,
        to: InstanceClass,
    },
    /// Bring a replica's settings and tags to its template (ModifyDBInstance, AddTagsToResource):
    /// what RDS cannot set at creation, or drift with `repair_drift`.
    ModifySettings {
        id: InstanceId,
        #[serde(skip_serializing_if = "Settings::is_empty")]
        settings: Settings,
        #[serde(skip_serializing_if = "Tags::is_empty")]
        tags: Tags,
    },
}

/// The zone of a replica to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Placing {
    /// RDS chooses.
    #[default]
    Any,
    /// The template's zones, best first (fewest of the cluster's replicas); the next ones are
    /// the fallbacks when one has no capacity.
    Zones { zones: Vec<String> },
    /// The zones RDS offers the class in, chosen at creation the same way; `used`: the zones
    /// of the cluster's replicas.
    Spread { used: Vec<String> },
}

impl Placing {
    pub fn is_any(&self) -> bool {
        *self == Placing::Any
    }
}

impl Action {
    pub fn instance(&self) -> &InstanceId {
        match self {
            Action::RestoreMaster { master } => &master.id,
            Action::CreateReplica { id, .. }
            | Action::DeleteReplica { id }
            | Action::ModifyClass { id, .. }
            | Action::ModifySettings { id, .. } => id,
        }
    }
    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RestoreMaster { .. } => "restore_master",
            Action::CreateReplica { .. } => "create_replica",
            Action::DeleteReplica { .. } => "delete_replica",
            Action::ModifyClass { .. } => "modify_class",
            Action::ModifySettings { .. } => "modify_settings",
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
            Action::CreateReplica {
                id,
                source,
                class,
                placement,
            } => {
                write!(f, "create replica {id} ({class}) of {source}")?;
                match placement {
                    Placing::Any => Ok(()),
                    Placing::Zones { zones } => write!(f, " in {}", zones.join(" or ")),
                    Placing::Spread { .. } => write!(f, " in the least used zone"),
                }
            }
            Action::DeleteReplica { id } => write!(f, "delete replica {id}"),
            Action::ModifyClass { id, from, to } => write!(f, "modify {id} class {from} -> {to}"),
            Action::ModifySettings { id, settings, tags } => {
                write!(f, "modify {id} settings")?;
                if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(settings) {
                    for (k, v) in m {
                        write!(f, " {k}={v}")?;
                    }
                }
                for (k, v) in tags {
                    write!(f, " tags.{k}={v}")?;
                }
                Ok(())
            }
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
    pub cluster: Arc<str>,
    /// Requested replica count, and the count actually planned for (clamped to the list).
    pub requested_replicas: usize,
    pub target_replicas: usize,
    pub actions: Vec<PlannedAction>,
    pub waiting: Vec<Waiting>,
    pub drift: Vec<Drift>,
    pub foreign: Vec<InstanceId>,
    /// Slots held by instances that are not replicas of the master: not created, not counted.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub blocked: Vec<Blocked>,
    /// The replicas the list allows: its length less the blocked slots.
    pub usable_slots: usize,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub master_issues: Vec<MasterIssue>,
    /// Replicas whose settings or tags differ from their template (repaired only with
    /// `repair_drift`, or when RDS could not set them at creation).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub template_drift: Vec<TemplateDrift>,
    /// Actions an operator's pause holds ([`hold_paused`]): planned, not executed.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub held: Vec<Held>,
}

/// Where one replica differs from its template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateDrift {
    pub id: InstanceId,
    pub settings: Vec<SettingDrift>,
    /// Whether this plan repairs it.
    pub repaired: bool,
}

/// A planned create or delete held by an operator's pause of its direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    #[serde(flatten)]
    pub action: Action,
    pub pause: Pause,
}

/// A slot of the replica list held by a conflicting instance ([`Conflict`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    pub id: InstanceId,
    /// Position in the replica list, from 1.
    pub position: usize,
    #[serde(flatten)]
    pub kind: ConflictKind,
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
///
/// The replicas are the first N *usable* slots of the list (slots held by a conflicting
/// instance are skipped, never created or deleted); N is the target clamped to the usable count.
pub fn plan(spec: &ClusterSpec, view: &ClusterView, target: &Target) -> Plan {
    let mut usable: Vec<usize> = Vec::with_capacity(spec.replicas.len());
    usable.extend(view.usable_slots());
    let n = target.replicas.min(usable.len());
    let mut p = Plan {
        cluster: spec.name.clone(),
        requested_replicas: target.replicas,
        target_replicas: n,
        actions: Vec::new(),
        waiting: Vec::new(),
        drift: Vec::new(),
        foreign: view.foreign.iter().map(|f| f.id.clone()).collect(),
        blocked: blocked_of(view),
        usable_slots: usable.len(),
        master_issues: view.master_issues.clone(),
        template_drift: Vec::new(),
        held: Vec::new(),
    };
    let master_available = plan_master(spec, view, &mut p);
    let (within, surplus) = usable.split_at(n);
    plan_within(spec, view, target, within, master_available, &mut p);
    plan_surplus(spec, view, within, surplus, &mut p);
    plan_classes(spec, view, target, within, &mut p);
    settings::plan_settings(spec, view, within, &mut p);
    plan_replaced(view, within, &mut p);
    p
}

/// Replicas being replaced (in a failed state past the grace period; their slots are not
/// usable, so the target already counts another slot): deleted once every replica within the
/// target serves — make-before-break; waited for until then.
fn plan_replaced(view: &ClusterView, within: &[usize], p: &mut Plan) {
    let serving = within.iter().all(|&i| {
        view.replicas[i]
            .as_ref()
            .is_some_and(|r| r.status.is_available())
    });
    for &i in &view.replacing {
        let Some(inst) = view.replicas[i].as_ref() else {
            continue;
        };
        if serving {
            p.actions.push(PlannedAction {
                action: Action::DeleteReplica {
                    id: inst.id.clone(),
                },
                reason: format!("replaced: {} past the grace period", inst.status),
            });
        } else {
            p.waiting.push(Waiting {
                id: inst.id.clone(),
                status: Some(inst.status.to_string()),
                reason: "failed: kept until its replacement serves".into(),
            });
        }
    }
}

/// The view's conflicts as blocked slots.
pub fn blocked_of(view: &ClusterView) -> Vec<Blocked> {
    view.conflicts
        .iter()
        .map(|c| Blocked {
            id: c.instance.id.clone(),
            position: c.slot + 1,
            kind: c.kind.clone(),
        })
        .collect()
}

/// The note on a create when the target was clamped: by the list, or by blocked slots.
fn clamp_note(spec: &ClusterSpec, p: &Plan) -> String {
    if p.requested_replicas <= p.target_replicas {
        String::new()
    } else if p.blocked.is_empty() {
        format!(
            " (requested {} clamped to the {} configured)",
            p.requested_replicas,
            spec.replicas.len()
        )
    } else {
        format!(
            " (requested {} clamped to {}: {} configured, {} blocked by instances that are not replicas of the master)",
            p.requested_replicas,
            p.usable_slots,
            spec.replicas.len(),
            p.blocked.len()
        )
    }
}

/// The master: restored when absent, waited for when busy. True when it is available.
fn plan_master(spec: &ClusterSpec, view: &ClusterView, p: &mut Plan) -> bool {
    match &view.master {
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
    }
}

/// Replicas that should exist (the slots `within` the target, in list order).
fn plan_within(
    spec: &ClusterSpec,
    view: &ClusterView,
    target: &Target,
    within: &[usize],
    master_available: bool,
    p: &mut Plan,
) {
    let note = clamp_note(spec, p);
    let n = within.len();
    for (k, &i) in within.iter().enumerate() {
        let rs = &spec.replicas[i];
        match &view.replicas[i] {
            None if master_available => p.actions.push(PlannedAction {
                action: Action::CreateReplica {
                    id: rs.id.clone(),
                    source: spec.master.id.clone(),
                    class: target
                        .replica_class
                        .clone()
                        .unwrap_or_else(|| rs.class.clone()),
                    placement: settings::placing(&rs.template, view, &p.actions),
                },
                reason: format!(
                    "replica {} of {} wanted{}{}",
                    k + 1,
                    n,
                    note,
                    settings::after_create_note(&rs.template)
                ),
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
}

/// Surplus replicas (usable slots beyond the target), deleted from the end of the list,
/// make-before-break within bounds:
/// - never so many that the count (existing plus planned creates) drops below the target
///   (a surplus replica stays while one within the target cannot be created yet);
/// - while replicas within the target are not serving yet (being created), keep as many
///   serving surplus replicas as make up for them, as long as the count stays within
///   max(count before, target): reads are never left without the capacity they had.
fn plan_surplus(
    spec: &ClusterSpec,
    view: &ClusterView,
    within: &[usize],
    surplus: &[usize],
    p: &mut Plan,
) {
    let n = within.len();
    let creates = p
        .actions
        .iter()
        .filter(|a| matches!(a.action, Action::CreateReplica { .. }))
        .count();
    let slot = |i: usize| view.replicas[i].as_ref();
    let alive = |i: &usize| slot(*i).is_some_and(|r| r.status != InstanceStatus::Deleting);
    let idle = |i: &usize| slot(*i).is_some_and(|r| !r.status.is_busy());
    let before = view.replica_count();
    let within_after = within.iter().filter(|i| alive(i)).count() + creates;
    let serving_within = within
        .iter()
        .filter(|&&i| slot(i).is_some_and(|r| r.status.is_available()))
        .count();
    let surplus_idle = surplus.iter().filter(|i| idle(i)).count();
    let surplus_busy = surplus.iter().filter(|i| alive(i) && !idle(i)).count();
    let keep_for_count = n.saturating_sub(within_after + surplus_busy);
    let keep_for_reads = n
        .min(serving_within + surplus_idle)
        .saturating_sub(serving_within)
        .min(before.max(n).saturating_sub(within_after + surplus_busy));
    let keep = keep_for_count.max(keep_for_reads).min(surplus_idle);
    let mut deletable = surplus_idle - keep;
    for &i in surplus.iter().rev() {
        let Some(inst) = &view.replicas[i] else {
            continue;
        };
        let status = Some(inst.status.to_string());
        let wait = |reason: String| Waiting {
            id: inst.id.clone(),
            status: status.clone(),
            reason,
        };
        if inst.status == InstanceStatus::Deleting {
            p.waiting.push(wait("being deleted".into()));
        } else if inst.status.is_busy() {
            p.waiting.push(wait(format!(
                "beyond target {n}; will be deleted once available"
            )));
        } else if deletable == 0 {
            p.waiting.push(wait(format!(
                "beyond target {n}; kept until the replicas within the target exist and serve"
            )));
        } else {
            deletable -= 1;
            p.actions.push(PlannedAction {
                action: Action::DeleteReplica {
                    id: spec.replicas[i].id.clone(),
                },
                reason: format!("replica {} of the list is beyond target {n}", i + 1),
            });
        }
    }
}

/// Classes of the master and the replicas within the target that stay and are idle: changed
/// when the target names a class, otherwise differences are reported as drift.
fn plan_classes(
    spec: &ClusterSpec,
    view: &ClusterView,
    target: &Target,
    within: &[usize],
    p: &mut Plan,
) {
    let acted: Vec<InstanceId> = p
        .actions
        .iter()
        .map(|a| a.action.instance().clone())
        .collect();
    let class_check = |inst: &Instance,
                       configured: &InstanceClass,
                       wanted: Option<&InstanceClass>,
                       p: &mut Plan| {
        if inst.status.is_busy() || acted.contains(&inst.id) {
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
        class_check(m, &spec.master.class, target.master_class.as_ref(), p);
    }
    for &i in within {
        if let Some(inst) = &view.replicas[i] {
            class_check(
                inst,
                &spec.replicas[i].class,
                target.replica_class.as_ref(),
                p,
            );
        }
    }
}
