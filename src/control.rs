//! THE control tick, shared by the daemon (`elasticrds run`, `elasticrds demo`) and the
//! backtest: for an already-observed cluster, fetch the policy's metrics in the policy's window,
//! decide (`core::decide`), and unless observe-only plan (`core::plan::plan`) towards the
//! decision's target and execute (`reconcile::execute`) whatever the plan holds (the scale
//! action, a schedule's class change, a repair); then record the scale state and persist it as
//! tags on the master when it changed materially.
//!
//! Batching: [`gather`] gives a cluster's queries and window, [`fetch_all`] fetches the queries
//! of many clusters in ONE [`MetricsSource::fetch`] (which batches ≤ 500 queries per
//! GetMetricData), and [`decide_and_act`] finishes each cluster. [`tick_cluster`] is the three
//! for one cluster. No prometheus, hyper or logging policy here: the caller turns the
//! [`TickReport`] into metrics and logs.

use crate::core::config::ClusterSpec;
use crate::core::decide::{decide, Decision, Direction, ScaleState, TAG_LAST_DECISION};
use crate::core::domain::{MetricQuery, MetricSeries, Tags};
use crate::core::plan::{plan, Action, ClusterView, Plan};
use crate::core::policy::Policy;
use crate::ports::{Fleet, MetricsSource, PortError};
use crate::reconcile::{execute, ActionResult, ExecOptions, Outcome};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// How a tick may act.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickOptions {
    /// Decide, log and export; change nothing (no actions, no state tags).
    pub observe_only: bool,
    /// Plan and report the actions without executing them (no state tags either).
    pub dry_run: bool,
}

/// Everything one cluster's tick did.
#[derive(Debug, Clone, Serialize)]
pub struct TickReport {
    pub cluster: String,
    pub decision: Decision,
    /// Configured replicas that exist (not being deleted) and of those available, as observed.
    pub replicas: usize,
    pub available: usize,
    /// How many metric queries the decision read.
    pub queries: usize,
    /// The reconcile plan (absent when observe-only).
    pub plan: Option<Plan>,
    pub actions: Vec<ActionResult>,
    /// Whether the scale action was carried out (an action done or found already done).
    pub acted: bool,
    /// Whether the state tags were written on the master this tick.
    pub state_written: bool,
}

impl TickReport {
    /// The first failure among the executed actions.
    pub fn action_error(&self) -> Option<&PortError> {
        self.actions
            .iter()
            .find_map(|a| a.error.as_ref().filter(|_| a.outcome.is_failure()))
    }
    /// Whether any action failed or was refused.
    pub fn has_failed_action(&self) -> bool {
        self.actions.iter().any(|a| a.outcome.is_failure())
    }
}

/// A cluster's metric needs at `now`: its queries and the `[start, end)` window.
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered {
    pub queries: Vec<MetricQuery>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// What `policy` needs to read for `spec` as observed in `view`.
pub fn gather(
    policy: &Policy,
    spec: &ClusterSpec,
    view: &ClusterView,
    now: DateTime<Utc>,
) -> Gathered {
    let (start, end) = policy.fetch_window(now);
    Gathered {
        queries: policy.queries(spec, view),
        start,
        end,
    }
}

/// Fetch the queries of several clusters with ONE `fetch` over the union of their windows, and
/// hand each cluster back its own series restricted to its own window (complete periods only).
/// Returns one `Vec<MetricSeries>` per input, in order.
pub async fn fetch_all(
    source: &dyn MetricsSource,
    wanted: &[&Gathered],
) -> Result<Vec<Vec<MetricSeries>>, PortError> {
    let total: usize = wanted.iter().map(|g| g.queries.len()).sum();
    if total == 0 {
        return Ok(wanted.iter().map(|_| Vec::new()).collect());
    }
    let start = wanted
        .iter()
        .filter(|g| !g.queries.is_empty())
        .map(|g| g.start)
        .min()
        .unwrap_or_default();
    let end = wanted
        .iter()
        .filter(|g| !g.queries.is_empty())
        .map(|g| g.end)
        .max()
        .unwrap_or_default();
    let all: Vec<MetricQuery> = wanted
        .iter()
        .flat_map(|g| g.queries.iter().cloned())
        .collect();
    let mut series = source.fetch(&all, start, end).await?.into_iter();
    let mut out = Vec::with_capacity(wanted.len());
    for g in wanted {
        let mut mine = Vec::with_capacity(g.queries.len());
        for q in &g.queries {
            // The port answers in query order; tolerate a short answer as missing data.
            let mut s = match series.next() {
                Some(s) if &s.query == q => s,
                _ => MetricSeries {
                    query: q.clone(),
                    samples: Vec::new(),
                },
            };
            let period = chrono::Duration::seconds(i64::from(q.period_secs.max(1)));
            s.samples
                .retain(|x| x.at >= g.start && x.at + period <= g.end);
            mine.push(s);
        }
        out.push(mine);
    }
    Ok(out)
}

/// Persisted copies of the recommendation history older than this are refreshed even when
/// nothing else changed (bounds what a restart can forget of a stabilization window).
pub const STATE_REFRESH_SECS: i64 = 300;

/// Whether `state` differs materially from what the master's tags hold: scale times, the last
/// decision, the recommendation values, or a recommendation history more than
/// [`STATE_REFRESH_SECS`] newer than the persisted one. (Refreshing timestamps alone every
/// tick would cost two RDS calls per cluster per tick.)
pub fn persist_needed(persisted: &Tags, state: &ScaleState) -> bool {
    let old = ScaleState::from_tags(persisted);
    let secs = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp());
    if secs(old.last_scale_out) != secs(state.last_scale_out)
        || secs(old.last_scale_in) != secs(state.last_scale_in)
    {
        return true;
    }
    let new_tags = state.to_tags();
    if persisted.get(TAG_LAST_DECISION) != new_tags.get(TAG_LAST_DECISION) {
        return true;
    }
    let values = |v: &[(DateTime<Utc>, usize)]| v.iter().map(|(_, n)| *n).collect::<Vec<_>>();
    if values(&old.recent_high) != values(&state.recent_high)
        || values(&old.recent_low) != values(&state.recent_low)
    {
        return true;
    }
    let newest = |s: &ScaleState| {
        s.recent_high
            .iter()
            .chain(&s.recent_low)
            .map(|(t, _)| t.timestamp())
            .max()
    };
    match (newest(&old), newest(state)) {
        (Some(o), Some(n)) => n - o > STATE_REFRESH_SECS,
        (None, None) => false,
        _ => true,
    }
}

/// Decide for one cluster on already-fetched `series`, act when the decision changes the fleet,
/// record `state` and persist it on the master when it changed.
#[allow(clippy::too_many_arguments)]
pub async fn decide_and_act(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    policy: &Policy,
    view: &ClusterView,
    series: &[MetricSeries],
    state: &mut ScaleState,
    now: DateTime<Utc>,
    opts: TickOptions,
) -> Result<TickReport, PortError> {
    let mut decision = decide(policy, spec, view, series, state, now);
    if opts.observe_only && !decision.observe_only {
        decision.observe_only = true;
    }
    let mut report = TickReport {
        cluster: spec.name.clone(),
        replicas: view.replica_count(),
        available: view.available_replicas(),
        queries: series.len(),
        plan: None,
        actions: Vec::new(),
        acted: false,
        state_written: false,
        decision,
    };
    // Plan every tick unless observe-only: besides the scale action, the plan carries class
    // changes from a schedule and repairs; when the fleet matches it is empty.
    if !report.decision.observe_only {
        let p = plan(spec, view, &report.decision.target);
        if !p.actions.is_empty() {
            report.actions = execute(
                fleet,
                spec,
                &p,
                &ExecOptions {
                    dry_run: opts.dry_run,
                },
            )
            .await;
        }
        report.acted = report.decision.direction != Direction::None
            && report.actions.iter().any(|r| {
                matches!(
                    r.planned.action,
                    Action::CreateReplica { .. } | Action::DeleteReplica { .. }
                ) && matches!(r.outcome, Outcome::Done | Outcome::AlreadyDone)
            });
        report.plan = Some(p);
    }
    state.record(&report.decision, report.acted, now);
    let may_write = !opts.dry_run && !report.decision.observe_only;
    if let (true, Some(master)) = (may_write, view.master.as_ref()) {
        if persist_needed(&master.tags, state) {
            fleet.write_tags(&master.id, &state.to_tags()).await?;
            report.state_written = true;
        }
    }
    Ok(report)
}

/// The whole tick for one observed cluster: gather, fetch, decide and act.
#[allow(clippy::too_many_arguments)]
pub async fn tick_cluster(
    fleet: &dyn Fleet,
    metrics: &dyn MetricsSource,
    spec: &ClusterSpec,
    policy: &Policy,
    view: ClusterView,
    state: &mut ScaleState,
    now: DateTime<Utc>,
    opts: TickOptions,
) -> Result<TickReport, PortError> {
    let g = gather(policy, spec, &view, now);
    let series = fetch_all(metrics, &[&g]).await?.remove(0);
    decide_and_act(fleet, spec, policy, &view, &series, state, now, opts).await
}
