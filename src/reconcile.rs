//! The shared reconciler's effectful half: observe clusters through the [`Fleet`] port (one
//! batched describe for all of them), execute a [`Plan`] action by action, and converge —
//! observe, plan, execute, wait — with progress and a timeout. Used by `create-cluster`,
//! `modify-instance` and the control loop alike. Planning itself is pure (`core::plan`).

use crate::core::config::{ClusterSpec, HaproxySpec, OnUnreachable};
use crate::core::domain::Instance;
use crate::core::domain::{
    InstanceId, MetricKind, MetricQuery, MetricSeries, Statistic, Tags, TAG_CLUSTER,
    TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE,
};
use crate::core::plan::{plan, Action, ClusterView, ConflictKind, Plan, PlannedAction, Target};
use crate::core::view::TAG_SNAPSHOT;
use crate::ports::{Clock, ErrorKind, Fleet, PortError, SystemClock, TrafficRouter};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Observe several clusters with as few describes as possible: one batched describe for every
/// configured id, plus one for foreign replicas of the masters when there are any.
pub async fn observe(
    fleet: &dyn Fleet,
    specs: &[&ClusterSpec],
) -> Result<Vec<ClusterView>, PortError> {
    let instances = describe_all(fleet, specs).await?;
    // The last cluster takes the instances by value (no copies; the same view).
    let mut views: Vec<ClusterView> = Vec::with_capacity(specs.len());
    if let Some((last, rest)) = specs.split_last() {
        views.extend(rest.iter().map(|s| ClusterView::build(s, &instances)));
        views.push(ClusterView::build_owned(last, instances));
    }
    Ok(views)
}

/// The describes of [`observe`]: every configured id in one, then the foreign replicas of
/// the masters, if any, in a second.
async fn describe_all(
    fleet: &dyn Fleet,
    specs: &[&ClusterSpec],
) -> Result<Vec<crate::core::domain::Instance>, PortError> {
    let ids: Vec<InstanceId> = specs.iter().flat_map(|s| s.all_ids().cloned()).collect();
    let mut instances = fleet.describe(&ids).await?;
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
    Ok(ClusterView::build_owned(spec, instances))
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
}

/// The traffic router in front of a cluster's replicas, as the delete path uses it.
#[derive(Clone)]
pub struct RouterHook {
    pub router: Arc<dyn TrafficRouter>,
    /// Backend, drain timeout, on_unreachable, max_lag.
    pub spec: HaproxySpec,
    /// Time for the drain wait (a `ManualClock` in tests).
    pub clock: Arc<dyn Clock>,
    /// How often current sessions are polled while draining.
    pub poll: Duration,
}

impl std::fmt::Debug for RouterHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterHook")
            .field("spec", &self.spec)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl RouterHook {
    pub fn new(router: Arc<dyn TrafficRouter>, spec: HaproxySpec, clock: Arc<dyn Clock>) -> Self {
        RouterHook {
            router,
            spec,
            clock,
            poll: Duration::from_secs(5),
        }
    }

    /// The HAProxy runtime API of the cluster's `haproxy` section, if it has one.
    pub fn for_cluster(spec: &ClusterSpec, clock: Arc<dyn Clock>) -> Option<Self> {
        spec.haproxy.as_ref().map(|h| {
            let router = crate::adapters::haproxy::HaproxyRuntime::from_spec(h);
            RouterHook::new(Arc::new(router), h.clone(), clock)
        })
    }
}

/// Whether the delete may go ahead after the router step, with what to report.
enum Gate {
    Proceed(Vec<String>),
    Held(String, Option<PortError>),
}

/// Take replica `id` out of the router before it is deleted: drain, wait until its current
/// sessions reach 0 or the drain timeout, then remove it (maint, end what is left, del
/// server). A router that cannot be asked or cannot act holds the delete
/// (`on_unreachable: wait`) or lets it go ahead with a note (`proceed`).
async fn drain_before_delete(hook: &RouterHook, id: &InstanceId) -> Gate {
    let h = &hook.spec;
    let mut notes = Vec::new();
    let blocked = |e: PortError, mut notes: Vec<String>| {
        match h.on_unreachable {
        OnUnreachable::Wait => Gate::Held(
            format!(
                "HAProxy backend {} could not drain {id} ({e}); delete held until it can (on_unreachable: wait)",
                h.backend
            ),
            Some(e),
        ),
        OnUnreachable::Proceed => {
            notes.push(format!(
                "HAProxy backend {} could not drain {id} ({e}); deleting anyway (on_unreachable: proceed)",
                h.backend
            ));
            tracing::warn!(replica = %id, error = %e, "HAProxy unreachable: deleting without drain");
            Gate::Proceed(notes)
        }
    }
    };
    match hook.router.state(id).await {
        Err(e) => return blocked(e, notes),
        Ok(None) => {
            notes.push(format!(
                "{id} is not a server of HAProxy backend {}: nothing to drain",
                h.backend
            ));
            // A line left in the config file (an older render) would bring the deleted
            // replica back at the next reload: drop it too.
            if let Err(e) = hook.router.remove(id).await {
                notes.push(format!("{id}: config file not updated: {e}"));
            }
            return Gate::Proceed(notes);
        }
        Ok(Some(_)) => {}
    }
    match hook.router.drain(id).await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::NotFound => {
            notes.push(format!("{id} left HAProxy backend {} meanwhile", h.backend));
            return Gate::Proceed(notes);
        }
        Err(e) => return blocked(e, notes),
    }
    let start = hook.clock.now();
    loop {
        let st = match hook.router.state(id).await {
            Err(e) => return blocked(e, notes),
            Ok(None) => break,
            Ok(Some(st)) => st,
        };
        let elapsed = (hook.clock.now() - start).to_std().unwrap_or_default();
        if st.current_sessions == 0 {
            notes.push(format!(
                "drained from HAProxy backend {} in {}s",
                h.backend,
                elapsed.as_secs()
            ));
            break;
        }
        if elapsed >= h.drain_timeout {
            notes.push(format!(
                "drain timeout {} reached with {} session(s) still open on {id}: ending them",
                humantime::format_duration(h.drain_timeout),
                st.current_sessions
            ));
            break;
        }
        if st.accepting {
            // Someone (a reload, an operator) made it take traffic again: drain again.
            if let Err(e) = hook.router.drain(id).await {
                if e.kind != ErrorKind::NotFound {
                    return blocked(e, notes);
                }
            }
        }
        hook.clock
            .sleep(
                hook.poll
                    .min(h.drain_timeout - elapsed)
                    .max(Duration::from_millis(1)),
            )
            .await;
    }
    match hook.router.remove(id).await {
        Ok(()) => {
            notes.push(format!("removed from HAProxy backend {}", h.backend));
            Gate::Proceed(notes)
        }
        Err(e) => blocked(e, notes),
    }
}

/// What [`sync_router`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncReport {
    /// Added to HAProxy (or re-enabled there) this time.
    pub added: Vec<InstanceId>,
    /// Available replicas not added, and why (lag unknown or over the bound, planned for
    /// deletion).
    pub held: Vec<(InstanceId, String)>,
    /// Replicas the router failed on; when HAProxy is unreachable the first error ends the
    /// pass.
    pub errors: Vec<(InstanceId, String)>,
}

/// Add every available configured replica whose replica lag is known and under
/// `haproxy.max_lag` and that HAProxy does not have yet (`add server`, `enable health`,
/// `state ready`, and the config file's server block when one is configured). Replicas the
/// `plan` deletes or that are beyond its target are left out. Does nothing for a cluster
/// without a `haproxy` section. Call it each tick with a view observed after the tick's
/// actions were executed (or before executing, passing the tick's plan).
pub async fn sync_router(
    router: &dyn TrafficRouter,
    spec: &ClusterSpec,
    view: &ClusterView,
    replica_lag: &BTreeMap<InstanceId, Duration>,
    plan: Option<&Plan>,
) -> SyncReport {
    let mut report = SyncReport::default();
    let Some(h) = &spec.haproxy else {
        return report;
    };
    for (i, inst) in view.replicas.iter().enumerate() {
        let Some(inst) = inst else { continue };
        if !inst.status.is_available() || inst.endpoint.is_none() {
            continue;
        }
        if let Some(p) = plan {
            let deleted = p
                .actions
                .iter()
                .any(|a| matches!(&a.action, Action::DeleteReplica { id } if *id == inst.id));
            let within = view.usable_slots().take(p.target_replicas).any(|u| u == i);
            if deleted || !within {
                report
                    .held
                    .push((inst.id.clone(), "planned for deletion".into()));
                continue;
            }
        }
        let lag = replica_lag
            .iter()
            .find(|(k, _)| **k == inst.id)
            .map(|(_, v)| *v);
        match lag {
            None => {
                report
                    .held
                    .push((inst.id.clone(), "replica lag not known yet".into()));
                continue;
            }
            Some(l) if l >= h.max_lag => {
                report.held.push((
                    inst.id.clone(),
                    format!(
                        "replica lag {}s is not under {}s",
                        l.as_secs(),
                        h.max_lag.as_secs()
                    ),
                ));
                continue;
            }
            Some(_) => {}
        }
        let result = match router.state(&inst.id).await {
            Ok(Some(_)) => continue,
            Ok(None) => router.add(inst).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => report.added.push(inst.id.clone()),
            Err(e) => {
                let stop = e.is_retryable();
                report.errors.push((inst.id.clone(), e.to_string()));
                if stop {
                    break;
                }
            }
        }
    }
    report
}

/// The ReplicaLag queries [`sync_router`] needs each tick for a cluster with a `haproxy`
/// section: the maximum lag of every configured replica that is available, except those
/// `have` (the policy's own queries) already asks for. Empty without a `haproxy` section.
pub fn router_lag_queries(
    spec: &ClusterSpec,
    view: &ClusterView,
    period_secs: u32,
    have: &[MetricQuery],
) -> Vec<MetricQuery> {
    if spec.haproxy.is_none() {
        return Vec::new();
    }
    view.replicas
        .iter()
        .flatten()
        .filter(|i| i.status.is_available())
        .filter(|i| {
            !have
                .iter()
                .any(|q| q.metric == MetricKind::ReplicaLag && q.instance == i.id)
        })
        .map(|i| MetricQuery {
            instance: i.id.clone(),
            metric: MetricKind::ReplicaLag,
            statistic: Statistic::Maximum,
            period_secs,
        })
        .collect()
}

/// The newest ReplicaLag sample of each instance in `series` (the largest when statistics
/// disagree). Negative or non-finite values are left out (the lag is then unknown).
pub fn latest_replica_lag(series: &[MetricSeries]) -> BTreeMap<InstanceId, Duration> {
    let mut newest: BTreeMap<InstanceId, (chrono::DateTime<chrono::Utc>, f64)> = BTreeMap::new();
    for s in series
        .iter()
        .filter(|s| s.query.metric == MetricKind::ReplicaLag)
    {
        for x in s
            .samples
            .iter()
            .filter(|x| x.value.is_finite() && x.value >= 0.0)
        {
            let e = newest
                .entry(s.query.instance.clone())
                .or_insert((x.at, x.value));
            if x.at > e.0 || (x.at == e.0 && x.value > e.1) {
                *e = (x.at, x.value);
            }
        }
    }
    newest
        .into_iter()
        .filter_map(|(id, (_, v))| Duration::try_from_secs_f64(v).ok().map(|d| (id, d)))
        .collect()
}

/// The control tick's router step for one cluster: when it has a `haproxy` section, add the
/// replicas that are available and caught up (lag from the tick's fetched `series`) through
/// its runtime API, leaving out what `plan` deletes ([`sync_router`]); the outcome is logged.
/// `None` for a cluster without a `haproxy` section.
pub async fn sync_router_for_tick(
    spec: &ClusterSpec,
    view: &ClusterView,
    series: &[MetricSeries],
    plan: &Plan,
) -> Option<SyncReport> {
    let h = spec.haproxy.as_ref()?;
    let router = crate::adapters::haproxy::HaproxyRuntime::from_spec(h);
    let report = sync_router(&router, spec, view, &latest_replica_lag(series), Some(plan)).await;
    for id in &report.added {
        tracing::info!(cluster = %spec.name, replica = %id, backend = %h.backend, "added to HAProxy");
    }
    for (id, e) in &report.errors {
        tracing::warn!(cluster = %spec.name, replica = %id, backend = %h.backend, error = %e, "HAProxy add failed");
    }
    Some(report)
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
    }
}

/// Defence in depth against a view that went stale between observing and acting: describe the
/// instance (and the master) again just before the call, and stop the action when the fleet
/// already is as it wants (`AlreadyDone`) or when the instance holding a replica id is not a
/// read replica of the master (`Refused`: never deleted, modified or drained; never created
/// over, which an emulator would do silently). Read-only, so dry runs check too.
async fn check_ownership(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    action: &Action,
) -> Result<(), (Outcome, Option<PortError>)> {
    let id = match action {
        Action::RestoreMaster { .. } => &spec.master.id,
        Action::ModifyClass { id, .. } if spec.is_master(id) => return Ok(()),
        Action::CreateReplica { id, .. }
        | Action::DeleteReplica { id }
        | Action::ModifyClass { id, .. } => id,
    };
    let ids = [id.clone(), spec.master.id.clone()];
    let found = fleet
        .describe(&ids)
        .await
        .map_err(|e| (Outcome::Failed(e.to_string()), Some(e)))?;
    let master = found.iter().find(|i| spec.is_master(&i.id));
    let inst = found.iter().find(|i| i.id == *id);
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
        (Action::ModifyClass { .. }, None) => {
            Err((Outcome::Failed(format!("{id} does not exist")), None))
        }
        (_, Some(i)) if member(i) => Ok(()),
        (_, Some(i)) => refuse(i),
    }
}

/// Execute one planned action. A replica of a cluster with a `haproxy` section is drained
/// from HAProxy (its runtime API, timed by the system clock) before it is deleted; see
/// [`execute_action_routed`].
pub async fn execute_action(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    planned: &PlannedAction,
    opts: &ExecOptions,
) -> ActionResult {
    execute_action_routed(fleet, spec, planned, opts, None).await
}

/// Execute one planned action, with `router` drained before a replica is deleted (`None`: the
/// cluster's `haproxy` section on the system clock, when it has one). The delete happens only
/// once the replica's sessions reached 0 or the drain timed out, and it is out of the router;
/// when the router cannot be reached the delete is held (`Outcome::Held`) or, with
/// `on_unreachable: proceed`, done with a note.
pub async fn execute_action_routed(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    planned: &PlannedAction,
    opts: &ExecOptions,
    router: Option<&RouterHook>,
) -> ActionResult {
    let mut notes = Vec::new();
    let done = |outcome: Outcome, error: Option<PortError>, notes: Vec<String>| ActionResult {
        planned: planned.clone(),
        outcome,
        error,
        notes,
    };
    if let Err(why) = guard(spec, &planned.action) {
        return done(Outcome::Refused(why), None, notes);
    }
    if let Err((outcome, e)) = check_ownership(fleet, spec, &planned.action).await {
        return done(outcome, e, notes);
    }
    if let Action::DeleteReplica { id } = &planned.action {
        let hook = router
            .cloned()
            .or_else(|| RouterHook::for_cluster(spec, Arc::new(SystemClock)));
        if let Some(hook) = hook {
            if opts.dry_run {
                notes.push(format!(
                    "would drain {id} from HAProxy backend {} first (up to {})",
                    hook.spec.backend,
                    humantime::format_duration(hook.spec.drain_timeout)
                ));
            } else {
                match drain_before_delete(&hook, id).await {
                    Gate::Proceed(n) => notes = n,
                    Gate::Held(why, e) => return done(Outcome::Held(why), e, notes),
                }
            }
        }
    }
    if opts.dry_run {
        return done(Outcome::DryRun, None, notes);
    }
    let result = match &planned.action {
        Action::RestoreMaster { master } => {
            let mut tags = managed_tags(&spec.name);
            tags.insert(TAG_SNAPSHOT.to_string(), master.snapshot.clone());
            fleet.restore_master(master, &tags).await
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
        Ok(()) => done(Outcome::Done, None, notes),
        Err(e) => match (&planned.action, e.kind) {
            (
                Action::RestoreMaster { .. } | Action::CreateReplica { .. },
                ErrorKind::AlreadyExists,
            )
            | (Action::DeleteReplica { .. }, ErrorKind::NotFound) => {
                done(Outcome::AlreadyDone, Some(e), notes)
            }
            _ => {
                let msg = e.to_string();
                done(Outcome::Failed(msg), Some(e), notes)
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
    execute_routed(fleet, spec, plan, opts, None).await
}

/// [`execute`] with an explicit traffic router for the delete path (see
/// [`execute_action_routed`]).
pub async fn execute_routed(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    plan: &Plan,
    opts: &ExecOptions,
    router: Option<&RouterHook>,
) -> Vec<ActionResult> {
    let mut out = Vec::with_capacity(plan.actions.len());
    for a in &plan.actions {
        out.push(execute_action_routed(fleet, spec, a, opts, router).await);
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

#[cfg(test)]
mod router_tests {
    use super::*;
    use crate::core::domain::Sample;
    use chrono::{TimeZone, Utc};

    fn lag(id: &str, stat: Statistic, points: &[(i64, f64)]) -> MetricSeries {
        MetricSeries {
            query: MetricQuery {
                instance: InstanceId::from_aws(id),
                metric: MetricKind::ReplicaLag,
                statistic: stat,
                period_secs: 60,
            },
            samples: points
                .iter()
                .map(|(t, v)| Sample {
                    at: Utc.timestamp_opt(*t, 0).unwrap(),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn latest_lag_is_the_newest_sample_and_ignores_bad_values() {
        let mut cpu = lag("r1", Statistic::Average, &[(300, 99.0)]);
        cpu.query.metric = MetricKind::Cpu;
        let series = vec![
            lag("r1", Statistic::Maximum, &[(0, 50.0), (60, 2.0)]),
            lag("r1", Statistic::Average, &[(60, 1.0)]),
            cpu,
            lag(
                "r2",
                Statistic::Maximum,
                &[(0, 3.0), (60, f64::NAN), (120, -1.0)],
            ),
            lag("r3", Statistic::Maximum, &[(0, f64::INFINITY)]),
        ];
        let got = latest_replica_lag(&series);
        assert_eq!(
            got,
            BTreeMap::from([
                (InstanceId::from_aws("r1"), Duration::from_secs(2)),
                (InstanceId::from_aws("r2"), Duration::from_secs(3)),
            ])
        );
    }
}
