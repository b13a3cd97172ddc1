//! The shared reconciler's effectful half: observe clusters through the [`Fleet`] port (one
//! batched describe for all of them), execute a [`Plan`] action by action (each checked
//! against the fleet first: never act on what is not ours), and converge — observe, plan,
//! execute, wait — with progress and a timeout. Used by `create-cluster`, `modify-instance`
//! and the control loop alike. Planning itself is pure (`core::plan`).
//!
//! - [`drain`]: the HAProxy drain before a delete, as state carried across ticks
//!   ([`gate_deletes`] holds a delete until its replica is out of the router).
//! - [`router`]: the router step of a tick (add caught-up replicas, undo abandoned drains).
//! - [`ViewMemo`]: the backtest replay's observation, keeping its last view (a speed measure).

mod capacity;
pub mod drain;
mod memo;
pub mod router;

pub use drain::{drain_step, gate_deletes, DrainStep, Drains, Gated, Route};
pub use memo::ViewMemo;
pub use router::{
    latest_replica_lag, router_lag_queries, sync_router, sync_router_for_tick, SyncReport,
};

use crate::core::config::ClusterSpec;
use crate::core::domain::Instance;
use crate::core::domain::{InstanceId, Tags, TAG_CLUSTER, TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE};
use crate::core::plan::{plan, Action, ClusterView, ConflictKind, Plan, PlannedAction, Target};
use crate::core::template::Offerings;
use crate::core::view::TAG_SNAPSHOT;
use crate::ports::{Clock, ErrorKind, Fleet, PortError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Observe several clusters with as few describes as possible: one batched describe for every
/// configured id, plus one for foreign replicas of the masters when there are any.
pub async fn observe(
    fleet: &dyn Fleet,
    specs: &[&ClusterSpec],
) -> Result<Vec<ClusterView>, PortError> {
    let instances = describe_all(fleet, specs).await?;
    Ok(specs
        .iter()
        .map(|s| ClusterView::build_shared(s, &instances))
        .collect())
}

/// The describes of [`observe`]: every configured id in one, then the foreign replicas of
/// the masters, if any, in a second.
async fn describe_all(
    fleet: &dyn Fleet,
    specs: &[&ClusterSpec],
) -> Result<Vec<Arc<Instance>>, PortError> {
    describe_ids(fleet, specs, &configured_ids(specs)).await
}

/// Every configured id of `specs`, in order.
fn configured_ids(specs: &[&ClusterSpec]) -> Vec<InstanceId> {
    specs.iter().flat_map(|s| s.all_ids().cloned()).collect()
}

/// [`describe_all`] with the configured ids given (`ids`: [`configured_ids`] of `specs`).
async fn describe_ids(
    fleet: &dyn Fleet,
    specs: &[&ClusterSpec],
    ids: &[InstanceId],
) -> Result<Vec<Arc<Instance>>, PortError> {
    let mut instances = fleet.describe(ids).await?;
    let foreign: Vec<InstanceId> = specs
        .iter()
        .flat_map(|s| {
            let master = instances.iter().find(|i| i.id == s.master.id);
            master
                .map(|m| {
                    m.replicas
                        .iter()
                        .filter(|r| !s.contains(r))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    if !foreign.is_empty() {
        instances.extend(fleet.describe(&foreign).await?);
    }
    Ok(instances)
}

/// Observe one cluster: [`observe`] of `[spec]` (the same describes and view, without the
/// list of views).
pub async fn observe_one(fleet: &dyn Fleet, spec: &ClusterSpec) -> Result<ClusterView, PortError> {
    let instances = describe_all(fleet, &[spec]).await?;
    Ok(ClusterView::build_shared(spec, &instances))
}

/// The tags every replica elasticrds creates carries.
pub fn managed_tags(cluster: &str) -> Tags {
    Tags::from([
        (TAG_MANAGED_BY.to_string(), TAG_MANAGED_BY_VALUE.to_string()),
        (TAG_CLUSTER.to_string(), cluster.to_string()),
    ])
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "detail", rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// `--dry-run`: planned, not executed.
    DryRun,
    /// The fleet was already as the action wanted (created meanwhile, already gone).
    AlreadyDone,
    /// Refused by the executor's own guard: the action was outside the cluster config.
    Refused(String),
    Failed(String),
    /// Not done this time, on purpose (a scale-in held because HAProxy could not drain the
    /// replica first); the next tick plans it again.
    Held(String),
    /// A delete waiting for its replica's HAProxy drain (sessions still open, within the
    /// drain timeout); a later tick that still plans it deletes it.
    Draining(String),
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "ok",
            Outcome::DryRun => "dry_run",
            Outcome::AlreadyDone => "already_done",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "error",
            Outcome::Held(_) => "held",
            Outcome::Draining(_) => "draining",
        }
    }
    /// Refused, failed and held actions did not happen: the command reports failure.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Outcome::Refused(_) | Outcome::Failed(_) | Outcome::Held(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionResult {
    #[serde(flatten)]
    pub planned: PlannedAction,
    #[serde(flatten)]
    pub outcome: Outcome,
    #[serde(skip)]
    pub error: Option<PortError>,
    /// What happened around the action (HAProxy drain steps, an unreachable HAProxy passed
    /// over with `on_unreachable: proceed`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub dry_run: bool,
    /// What RDS could not give lately, kept across ticks by the caller, and the time now:
    /// creates skip the (class, zone) pairs without capacity and record new ones.
    pub capacity: Option<(Arc<Mutex<Offerings>>, DateTime<Utc>)>,
}

/// Defence in depth: whatever the planner said, refuse anything outside the config.
fn guard(spec: &ClusterSpec, action: &Action) -> Result<(), String> {
    match action {
        Action::RestoreMaster { master } if master.id == spec.master.id => Ok(()),
        Action::RestoreMaster { master } => {
            Err(format!("{} is not this cluster's master", master.id))
        }
        Action::CreateReplica { id, source, .. } => {
            if spec.replica_index(id).is_none() {
                Err(format!("{id} is not a configured replica"))
            } else if !spec.is_master(source) {
                Err(format!("{source} is not this cluster's master"))
            } else {
                Ok(())
            }
        }
        Action::DeleteReplica { id } if spec.is_master(id) => {
            Err(format!("{id} is the master: never deleted"))
        }
        Action::DeleteReplica { id } if spec.replica_index(id).is_none() => {
            Err(format!("{id} is not a configured replica"))
        }
        Action::DeleteReplica { .. } => Ok(()),
        Action::ModifyClass { id, .. } if !spec.contains(id) => {
            Err(format!("{id} is not in the config"))
        }
        Action::ModifyClass { .. } => Ok(()),
        Action::ModifySettings { id, .. } if spec.is_master(id) => Err(format!(
            "{id} is the master: its settings are never changed"
        )),
        Action::ModifySettings { id, .. } if spec.replica_index(id).is_none() => {
            Err(format!("{id} is not a configured replica"))
        }
        Action::ModifySettings { .. } => Ok(()),
    }
}

/// Defence in depth against a view that went stale between observing and acting: describe the
/// instance (and the master) again just before the call, and stop the action when the fleet
/// already is as it wants (`AlreadyDone`) or when the instance holding a replica id is not a
/// read replica of the master (`Refused`: never deleted, modified or drained; never created
/// over, which an emulator would do silently). Read-only, so dry runs check too.
pub(crate) async fn check_ownership(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    action: &Action,
) -> Result<(), (Outcome, Option<PortError>)> {
    let id = match action {
        Action::RestoreMaster { .. } => &spec.master.id,
        Action::ModifyClass { id, .. } if spec.is_master(id) => return Ok(()),
        Action::CreateReplica { id, .. }
        | Action::DeleteReplica { id }
        | Action::ModifyClass { id, .. }
        | Action::ModifySettings { id, .. } => id,
    };
    let ids = [id.clone(), spec.master.id.clone()];
    let found = fleet
        .describe(&ids)
        .await
        .map_err(|e| (Outcome::Failed(e.to_string()), Some(e)))?;
    let master = found.iter().find(|i| spec.is_master(&i.id)).map(|i| &**i);
    let inst = found.iter().find(|i| i.id == *id).map(|i| &**i);
    let member =
        |i: &Instance| master.is_some_and(|m| i.replicates_from(m)) && !spec.is_master(&i.id);
    let refuse = |i: &Instance| {
        let kind = ConflictKind::of(i, master, &spec.master.id);
        Err((
            Outcome::Refused(format!(
                "{} is {}, not a read replica of master {}: never touched",
                i.id,
                crate::text::conflict_kind(&kind),
                spec.master.id
            )),
            None,
        ))
    };
    match (action, inst) {
        (Action::RestoreMaster { .. }, Some(_)) => Err((Outcome::AlreadyDone, None)),
        (Action::RestoreMaster { .. }, None) => Ok(()),
        (Action::CreateReplica { .. }, Some(i)) if member(i) => Err((Outcome::AlreadyDone, None)),
        (Action::CreateReplica { .. }, Some(i)) => refuse(i),
        (Action::CreateReplica { .. }, None) => Ok(()),
        (Action::DeleteReplica { .. }, None) => Err((Outcome::AlreadyDone, None)),
        (Action::ModifyClass { .. } | Action::ModifySettings { .. }, None) => {
            Err((Outcome::Failed(format!("{id} does not exist")), None))
        }
        (_, Some(i)) if member(i) => Ok(()),
        (_, Some(i)) => refuse(i),
    }
}

/// Execute one planned action, after checking it against the config (`guard`) and the fleet
/// (`check_ownership`). A delete behind HAProxy must have been through [`gate_deletes`]
/// first (the control tick and [`converge`] do that).
pub async fn execute_action(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    planned: &PlannedAction,
    opts: &ExecOptions,
) -> ActionResult {
    let done = |outcome: Outcome, error: Option<PortError>| ActionResult {
        planned: planned.clone(),
        outcome,
        error,
        notes: Vec::new(),
    };
    if let Err(why) = guard(spec, &planned.action) {
        return done(Outcome::Refused(why), None);
    }
    if let Err((outcome, e)) = check_ownership(fleet, spec, &planned.action).await {
        return done(outcome, e);
    }
    if opts.dry_run {
        return done(Outcome::DryRun, None);
    }
    let result = match &planned.action {
        Action::RestoreMaster { master } => {
            let mut tags = managed_tags(&spec.name);
            tags.insert(TAG_SNAPSHOT.to_string(), master.snapshot.clone());
            fleet.restore_master(master, &tags).await
        }
        Action::CreateReplica { .. } => {
            let (r, notes) = capacity::create(fleet, spec, &planned.action, opts).await;
            let mut result = match r {
                Ok(()) => done(Outcome::Done, None),
                Err(e) if e.kind == ErrorKind::AlreadyExists => done(Outcome::AlreadyDone, Some(e)),
                Err(e) => done(Outcome::Failed(e.to_string()), Some(e)),
            };
            result.notes = notes;
            return result;
        }
        Action::DeleteReplica { id } => fleet.delete_replica(id).await,
        Action::ModifyClass { id, to, .. } => fleet.modify_class(id, to).await,
        Action::ModifySettings { id, settings, tags } => {
            let mut r = Ok(());
            if !settings.is_empty() {
                r = fleet.modify_settings(id, settings).await;
            }
            if r.is_ok() && !tags.is_empty() {
                r = fleet.write_tags(id, tags).await;
            }
            r
        }
    };
    match result {
        Ok(()) => done(Outcome::Done, None),
        Err(e) => match (&planned.action, e.kind) {
            (
                Action::RestoreMaster { .. } | Action::CreateReplica { .. },
                ErrorKind::AlreadyExists,
            )
            | (Action::DeleteReplica { .. }, ErrorKind::NotFound) => {
                done(Outcome::AlreadyDone, Some(e))
            }
            _ => {
                let msg = e.to_string();
                done(Outcome::Failed(msg), Some(e))
            }
        },
    }
}

/// Execute a plan's actions in order. A failed action does not stop the independent ones after
/// it; every result is reported.
pub async fn execute(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    plan: &Plan,
    opts: &ExecOptions,
) -> Vec<ActionResult> {
    execute_actions(fleet, spec, plan.actions.iter(), opts).await
}

/// [`execute`] for some of a plan's actions.
pub async fn execute_actions<'p>(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    actions: impl Iterator<Item = &'p PlannedAction>,
    opts: &ExecOptions,
) -> Vec<ActionResult> {
    let mut out = Vec::new();
    for a in actions {
        out.push(execute_action(fleet, spec, a, opts).await);
    }
    out
}

/// [`gate_deletes`] then [`execute`]: the plan's deletes behind `route` wait for their drain
/// (carried in `drains` from one call to the next), the rest is executed.
pub async fn apply(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    route: Option<Route<'_>>,
    plan: Plan,
    drains: &mut Drains,
    now: chrono::DateTime<chrono::Utc>,
    opts: &ExecOptions,
) -> Vec<ActionResult> {
    let gated = gate_deletes(fleet, spec, route, &plan, drains, now, opts.dry_run).await;
    let results = execute_actions(fleet, spec, gated.ready(&plan), opts).await;
    gated.finish(results)
}

/// Progress of a converge loop, reported after each observation.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub elapsed: Duration,
    pub waiting: Vec<(InstanceId, Option<String>)>,
    pub executed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvergeError {
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("action failed: {0}")]
    Action(String),
}

/// Observe, plan, execute and wait until the cluster matches `target` and nothing is in flight.
/// A delete behind `route` waits for its drain from one round to the next (shown as waiting).
/// Returns every action executed along the way.
#[allow(clippy::too_many_arguments)]
pub async fn converge(
    fleet: &dyn Fleet,
    clock: &dyn Clock,
    spec: &ClusterSpec,
    route: Option<Route<'_>>,
    target: &Target,
    timeout: Duration,
    poll: Duration,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Vec<ActionResult>, ConvergeError> {
    let start = clock.now();
    let mut executed = Vec::new();
    let mut drains = Drains::default();
    loop {
        let view = observe_one(fleet, spec).await?;
        let p = plan(spec, &view, target);
        if p.is_converged() {
            return Ok(executed);
        }
        let mut waiting: Vec<(InstanceId, Option<String>)> = p
            .waiting
            .iter()
            .map(|w| (w.id.clone(), w.status.clone()))
            .collect();
        let opts = ExecOptions::default();
        for r in apply(fleet, spec, route, p, &mut drains, clock.now(), &opts).await {
            if r.outcome.is_failure() {
                let msg = format!(
                    "{}: {}",
                    r.planned.action,
                    r.error
                        .map_or_else(|| format!("{:?}", r.outcome), |e| e.to_string())
                );
                return Err(ConvergeError::Action(msg));
            }
            match &r.outcome {
                Outcome::Draining(why) => {
                    waiting.push((r.planned.action.instance().clone(), Some(why.clone())))
                }
                _ => executed.push(r),
            }
        }
        let elapsed = (clock.now() - start).to_std().unwrap_or_default();
        progress(&Progress {
            elapsed,
            waiting: waiting.clone(),
            executed: executed.len(),
        });
        if elapsed >= timeout {
            let names: Vec<String> = waiting
                .iter()
                .map(|(id, st)| format!("{id} ({})", st.as_deref().unwrap_or("absent")))
                .collect();
            return Err(ConvergeError::Timeout(timeout, names.join(", ")));
        }
        clock.sleep(poll).await;
    }
}
