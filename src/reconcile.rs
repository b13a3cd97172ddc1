//! The shared reconciler's effectful half: observe clusters through the [`Fleet`] port (one
//! batched describe for all of them), execute a [`Plan`] action by action, and converge —
//! observe, plan, execute, wait — with progress and a timeout. Used by `create-cluster`,
//! `modify-instance` and the control loop alike. Planning itself is pure (`core::plan`).

use crate::core::config::ClusterSpec;
use crate::core::domain::{InstanceId, Tags, TAG_CLUSTER, TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE};
use crate::core::plan::{plan, Action, ClusterView, Plan, PlannedAction, Target};
use crate::ports::{Clock, ErrorKind, Fleet, PortError};
use serde::Serialize;
use std::time::Duration;

/// Observe several clusters with as few describes as possible: one batched describe for every
/// configured id, plus one for foreign replicas of the masters when there are any.
pub async fn observe(
    fleet: &dyn Fleet,
    specs: &[&ClusterSpec],
) -> Result<Vec<ClusterView>, PortError> {
    let ids: Vec<InstanceId> = specs.iter().flat_map(|s| s.all_ids().cloned()).collect();
    let mut instances = fleet.describe(&ids).await?;
    let foreign: Vec<InstanceId> = specs
        .iter()
        .flat_map(|s| {
            let master = instances.iter().find(|i| i.id.same_as(&s.master.id));
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
    Ok(specs
        .iter()
        .map(|s| ClusterView::build(s, &instances))
        .collect())
}

/// Observe one cluster.
pub async fn observe_one(fleet: &dyn Fleet, spec: &ClusterSpec) -> Result<ClusterView, PortError> {
    Ok(observe(fleet, &[spec]).await?.remove(0))
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
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done => "ok",
            Outcome::DryRun => "dry_run",
            Outcome::AlreadyDone => "already_done",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "error",
        }
    }
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Refused(_) | Outcome::Failed(_))
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
}

#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub dry_run: bool,
}

/// Defence in depth: whatever the planner said, refuse anything outside the config.
fn guard(spec: &ClusterSpec, action: &Action) -> Result<(), String> {
    match action {
        Action::RestoreMaster { master } if master.id.same_as(&spec.master.id) => Ok(()),
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
    }
}

/// Execute one planned action.
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
    };
    if let Err(why) = guard(spec, &planned.action) {
        return done(Outcome::Refused(why), None);
    }
    if opts.dry_run {
        return done(Outcome::DryRun, None);
    }
    let result = match &planned.action {
        Action::RestoreMaster { master } => {
            fleet
                .restore_master(master, &managed_tags(&spec.name))
                .await
        }
        Action::CreateReplica { id, source, class } => {
            fleet
                .create_replica(id, source, class, &managed_tags(&spec.name))
                .await
        }
        Action::DeleteReplica { id } => fleet.delete_replica(id).await,
        Action::ModifyClass { id, to, .. } => fleet.modify_class(id, to).await,
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
    let mut out = Vec::with_capacity(plan.actions.len());
    for a in &plan.actions {
        out.push(execute_action(fleet, spec, a, opts).await);
    }
    out
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
/// Returns every action executed along the way.
pub async fn converge(
    fleet: &dyn Fleet,
    clock: &dyn Clock,
    spec: &ClusterSpec,
    target: &Target,
    timeout: Duration,
    poll: Duration,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Vec<ActionResult>, ConvergeError> {
    let start = clock.now();
    let mut executed = Vec::new();
    loop {
        let view = observe_one(fleet, spec).await?;
        let p = plan(spec, &view, target);
        if p.is_converged() {
            return Ok(executed);
        }
        for r in execute(fleet, spec, &p, &ExecOptions::default()).await {
            if r.outcome.is_failure() {
                let msg = format!(
                    "{}: {}",
                    r.planned.action,
                    r.error
                        .map_or_else(|| format!("{:?}", r.outcome), |e| e.to_string())
                );
                return Err(ConvergeError::Action(msg));
            }
            executed.push(r);
        }
        let elapsed = (clock.now() - start).to_std().unwrap_or_default();
        progress(&Progress {
            elapsed,
            waiting: p
                .waiting
                .iter()
                .map(|w| (w.id.clone(), w.status.clone()))
                .collect(),
            executed: executed.len(),
        });
        if elapsed >= timeout {
            let names: Vec<String> = p
                .waiting
                .iter()
                .map(|w| format!("{} ({})", w.id, w.status.as_deref().unwrap_or("absent")))
                .collect();
            return Err(ConvergeError::Timeout(timeout, names.join(", ")));
        }
        clock.sleep(poll).await;
    }
}
