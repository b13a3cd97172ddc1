//! THE control tick, shared by the daemon (`elasticrds run`, `elasticrds demo`), `plan` and the
//! backtest. Its ports come in a [`TickContext`] (fleet, metrics source, traffic routers,
//! clock), built at the edge; nothing here constructs an adapter or reads the system clock.
//! For one cluster: the observation step ([`ClusterMemory::observe`]: available-since times,
//! the scale state read from the master's tags, drains under way), fetch the policy's metrics
//! in the policy's window, decide (`core::decide`), and unless observe-only plan
//! (`core::plan::plan`) towards the decision's target and execute whatever the plan holds (the
//! scale action, a schedule's class change, a repair; a delete behind HAProxy waits for its
//! drain, carried across ticks: `reconcile::gate_deletes`), add caught-up replicas to HAProxy
//! (`reconcile::sync_router_for_tick`); then record the scale state and persist it as tags on
//! the master when it changed materially.
//!
//! Batching: [`gather`] gives a cluster's queries and window, [`fetch_all`] fetches the queries
//! of many clusters in ONE [`MetricsSource::fetch`] (which batches ≤ 500 queries per
//! GetMetricData), and [`decide_and_act`] finishes each cluster. [`tick_cluster`] is the
//! whole tick for one cluster. No prometheus, hyper or logging policy here: the caller turns
//! the [`TickReport`] into metrics and logs.
//!
//! Observation beyond the rules: the daemon gathers with [`gather_all_metrics`], which adds
//! queries for the metrics no rule reads (CPU, connections and replica lag are always
//! fetched), and every [`TickReport`] carries [`ObservedMetric`]s for all three metrics: the
//! value the decision used (or, for a metric without a rule, the plain aggregate of the
//! serving instances' newest fresh datapoints) and the target only where a rule has one.

use crate::core::config::ClusterSpec;
pub use crate::core::decide::STATE_REFRESH_SECS;
use crate::core::decide::{decide_with_forecast, Decision, Direction, PersistedState, ScaleState};
use crate::core::domain::InstanceId;
use crate::core::domain::{MetricKind, MetricQuery, MetricSeries, Statistic, Tags};
use crate::core::plan::{
    blocked_of, hold_for_quota, hold_paused, plan, template_drift, Action, Blocked, ClusterView,
    Plan, TemplateDrift,
};
use crate::core::policy::Policy;
use crate::core::template::Offerings;
use crate::ports::{Clock, Fleet, MetricsSource, PortError, Routers};
use crate::reconcile::{
    execute_actions, gate_deletes, router_lag_queries, sync_router_for_tick, ActionResult,
    ExecOptions, Outcome, Route, SyncReport,
};

mod broken;
pub use broken::{Stuck, GRACE_SECS as BROKEN_GRACE_SECS};
mod observe;
pub mod predict;
pub use observe::ClusterMemory;

/// The ports a tick works through, built at the edge and handed in.
#[derive(Clone, Copy)]
pub struct TickContext<'a> {
    pub fleet: &'a dyn Fleet,
    pub metrics: &'a dyn MetricsSource,
    /// The traffic router of each cluster behind HAProxy.
    pub routers: &'a Routers,
    /// The tick's time ([`tick_cluster`] reads it once).
    pub clock: &'a dyn Clock,
}

impl<'a> TickContext<'a> {
    /// The router in front of `spec`'s replicas with its `haproxy` section, when it has both.
    pub fn route(&self, spec: &'a ClusterSpec) -> Option<Route<'a>> {
        Route::of(self.routers, spec)
    }
}
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;

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
    pub cluster: Arc<str>,
    pub decision: Decision,
    /// Configured replicas that exist (not being deleted) and of those available, as observed.
    pub replicas: usize,
    pub available: usize,
    /// How many metric series the tick read (the rules' and the observation-only ones).
    pub queries: usize,
    /// Observed value per metric (all three, in [`MetricKind::ALL`] order) next to its target.
    pub metrics: Vec<ObservedMetric>,
    /// The reconcile plan (absent when observe-only).
    pub plan: Option<Plan>,
    pub actions: Vec<ActionResult>,
    /// Whether the scale action was carried out (an action done or found already done).
    pub acted: bool,
    /// Whether the state tags were written on the master this tick.
    pub state_written: bool,
    /// Replicas added to HAProxy this tick (clusters with a `haproxy` section; not when
    /// observe-only or dry-run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<SyncReport>,
    /// Configured replica ids held by instances that are not replicas of the master (never
    /// touched or counted; their slots are blocked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Blocked>,
    /// Replicas whose settings differ from their template (observe-only too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub template_drift: Vec<TemplateDrift>,
    /// What RDS could not give lately, after this tick's creates.
    #[serde(skip_serializing_if = "is_default")]
    pub offerings: Offerings,
    /// Replicas in a failed state (not serving), and slots parked after repeated failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub broken: Vec<InstanceId>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<InstanceId>,
    /// Replicas creating or modifying far beyond the learned lead time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stuck: Vec<broken::Stuck>,
}

/// The master's parked tag with `more` ids added.
fn parked_tag(
    master: &crate::core::domain::Instance,
    more: &std::collections::BTreeSet<crate::core::domain::InstanceId>,
) -> Tags {
    use crate::core::view::{parked_ids, TAG_PARKED};
    let mut ids = (master.tags.get(TAG_PARKED)).map_or_else(Vec::new, |v| parked_ids(v));
    for id in more {
        if !ids.iter().any(|p| p.eq_ignore_ascii_case(id.as_str())) {
            ids.push(id.to_string());
        }
    }
    Tags::from([(TAG_PARKED.to_string(), ids.join(" "))])
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
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

/// One metric of a cluster as a tick saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedMetric {
    pub metric: MetricKind,
    /// Aggregated over the serving instances with fresh data; `None` when none had any.
    pub value: Option<f64>,
    /// The target (or threshold) of the first rule on this metric that has one; `None` when
    /// no rule reads the metric.
    pub target: Option<f64>,
}

/// The statistic and how instances are combined for a metric no rule reads: the average of
/// per-instance averages for CPU and connections, the worst instance's maximum for lag.
fn display_statistic(m: MetricKind) -> (Statistic, bool) {
    match m {
        MetricKind::Cpu | MetricKind::Connections => (Statistic::Average, false),
        MetricKind::ReplicaLag => (Statistic::Maximum, true),
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
    let mut queries = policy.queries(spec, view);
    // A cluster behind HAProxy also needs each available replica's lag (the router step).
    queries.extend(router_lag_queries(spec, view, policy.period_secs, &queries));
    Gathered {
        queries,
        start,
        end,
    }
}

/// [`gather`], plus queries for every metric the policy's rules do not read, so that a tick
/// observes CPU, connections and replica lag whatever the policy. The extra series do not
/// change the decision (the core reads only the metric and statistic each rule names).
pub fn gather_all_metrics(
    policy: &Policy,
    spec: &ClusterSpec,
    view: &ClusterView,
    now: DateTime<Utc>,
) -> Gathered {
    let mut g = gather(policy, spec, view, now);
    let used: Vec<_> = policy.metrics_used().collect();
    for m in MetricKind::ALL {
        if used.iter().any(|(u, _)| *u == m) {
            continue;
        }
        let (statistic, _) = display_statistic(m);
        for id in view.metric_instances(spec) {
            let q = MetricQuery {
                instance: id.clone(),
                metric: m,
                statistic,
                period_secs: policy.period_secs,
            };
            // `gather` may already ask for it (replica lag for the HAProxy router step).
            if !g.queries.contains(&q) {
                g.queries.push(q);
            }
        }
    }
    g
}

/// Observed value and target of every metric, for export: from the decision where a rule
/// reads the metric, else aggregated from `series` over the serving instances (available
/// replicas, or the master when none is) with fresh data (newer than the policy's
/// `stale_after_periods`). Gaps and stale data give `None`, never zero.
pub fn observed_metrics(
    policy: &Policy,
    view: &ClusterView,
    decision: &Decision,
    series: &[MetricSeries],
    now: DateTime<Utc>,
) -> Vec<ObservedMetric> {
    // The window's end and the staleness bound, worked out only for a metric that needs them.
    let bounds = std::cell::OnceCell::new();
    let bounds = || {
        *bounds.get_or_init(|| {
            let end = policy.fetch_end(now);
            let period = i64::from(policy.period_secs.max(1));
            let stale = period * i64::from(policy.missing_data.stale_periods);
            (end, end - chrono::Duration::seconds(stale))
        })
    };
    let serving_replicas = || {
        view.existing_replicas()
            .filter(|i| i.status.is_available())
            .map(|i| &i.id)
    };
    let master = match serving_replicas().next() {
        Some(_) => None,
        None => view
            .master
            .as_ref()
            .filter(|m| m.status.is_available())
            .map(|m| &m.id),
    };
    let serving = || serving_replicas().chain(master);
    MetricKind::ALL
        .iter()
        .map(|&m| {
            let mut ruled = decision
                .observed
                .iter()
                .filter(|o| o.metric == m)
                .peekable();
            if ruled.peek().is_some() {
                return ObservedMetric {
                    metric: m,
                    value: ruled.clone().find_map(|o| o.value),
                    target: ruled.find_map(|o| o.target),
                };
            }
            let (statistic, use_max) = display_statistic(m);
            let read = |s: &&MetricSeries| s.query.metric == m && s.query.statistic == statistic;
            // No series of this metric at all (the tick read none): nothing observed.
            if !series.iter().any(|s| read(&s)) {
                return ObservedMetric {
                    metric: m,
                    value: None,
                    target: None,
                };
            }
            ObservedMetric {
                metric: m,
                value: aggregate_newest(series, (m, statistic), use_max, serving(), bounds()),
                target: None,
            }
        })
        .collect()
}

/// The newest fresh (`[stale_before, end)`) datapoint of `metric` for each instance of
/// `serving`, combined: their maximum (`use_max`) or mean; `None` when none has one. A fold in
/// serving order (no list: it gives the same sum and maximum).
fn aggregate_newest<'a>(
    series: &[MetricSeries],
    (metric, statistic): (MetricKind, Statistic),
    use_max: bool,
    serving: impl Iterator<Item = &'a InstanceId>,
    (end, stale_before): (DateTime<Utc>, DateTime<Utc>),
) -> Option<f64> {
    let mut vals: Option<(f64, usize)> = None;
    for id in serving {
        let newest = series
            .iter()
            .filter(|s| {
                s.query.metric == metric
                    && s.query.statistic == statistic
                    && s.query.instance == *id
            })
            .flat_map(|s| s.samples.iter())
            .filter(|x| x.at < end && x.at >= stale_before && x.value.is_finite())
            .max_by_key(|x| x.at);
        if let Some(x) = newest {
            vals = Some(match vals {
                None => (x.value, 1),
                Some((acc, n)) if use_max => (acc.max(x.value), n + 1),
                Some((acc, n)) => (acc + x.value, n + 1),
            });
        }
    }
    vals.map(|(acc, n)| if use_max { acc } else { acc / n as f64 })
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
    // One cluster (the backtest, a one-cluster daemon): its queries as they are, no copy.
    let joined: Vec<MetricQuery>;
    let all: &[MetricQuery] = match wanted {
        [g] => &g.queries,
        _ => {
            joined = wanted
                .iter()
                .flat_map(|g| g.queries.iter().cloned())
                .collect();
            &joined
        }
    };
    let series = source.fetch(all, start, end).await?;
    // One cluster answered query by query in order (as the ports do): its series as they are.
    if let [g] = wanted {
        if series.len() == g.queries.len()
            && series.iter().zip(&g.queries).all(|(s, q)| &s.query == q)
        {
            let mut mine = series;
            for s in &mut mine {
                keep_window(s, g);
            }
            return Ok(vec![mine]);
        }
    }
    let mut series = series.into_iter();
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
            keep_window(&mut s, g);
            mine.push(s);
        }
        out.push(mine);
    }
    Ok(out)
}

/// Keep the samples of `s` whose whole period lies in `g`'s window.
fn keep_window(s: &mut MetricSeries, g: &Gathered) {
    let period = chrono::Duration::seconds(i64::from(s.query.period_secs.max(1)));
    // `at + period <= end`, without a date addition per sample.
    match g.end.checked_sub_signed(period) {
        Some(last) => s.samples.retain(|x| x.at >= g.start && x.at <= last),
        None => s.samples.clear(),
    }
}

/// Whether `state` differs materially from what the master's tags hold
/// ([`PersistedState::differs_from`]): scale times, the last decision, the recommendation
/// values, or a recommendation history more than [`STATE_REFRESH_SECS`] newer than the
/// persisted one. A tick uses [`ClusterMemory::persist_needed`], the same with the tags read
/// once per distinct tag map.
pub fn persist_needed(persisted: &Tags, state: &ScaleState) -> bool {
    PersistedState::read(persisted).differs_from(state)
}

/// Decide for one cluster on already-fetched `series` (its `view` completed by the
/// observation step), act when the decision changes the fleet, record the scale state in
/// `memory` and persist it on the master when it changed.
#[allow(clippy::too_many_arguments)]
pub async fn decide_and_act(
    ctx: &TickContext<'_>,
    spec: &ClusterSpec,
    policy: &Policy,
    view: &ClusterView,
    series: &[MetricSeries],
    memory: &mut ClusterMemory,
    now: DateTime<Utc>,
    opts: TickOptions,
) -> Result<Box<TickReport>, PortError> {
    let forecast = predict::forecast_step(policy, spec, &mut memory.forecast, series, now);
    let state = memory.state();
    let mut decision =
        decide_with_forecast(policy, spec, view, series, state, forecast.as_ref(), now);
    if opts.observe_only && !decision.observe_only {
        decision.observe_only = true;
    }
    let metrics = observed_metrics(policy, view, &decision, series, now);
    // Boxed: the report (over a kilobyte) is handed up through the tick's futures by pointer
    // rather than copied at each step (measured by the year benchmark).
    let mut report = Box::new(new_report(spec, view, series, memory, metrics, decision));
    // The master's tags as they stand on AWS (updated below when an intent is written).
    // Borrowed until an intent write changes it (no copy of the tags every tick).
    let mut persisted: Cow<'_, Tags> = view
        .master
        .as_ref()
        .map_or_else(|| Cow::Owned(Tags::new()), |m| Cow::Borrowed(&*m.tags));
    if !report.decision.observe_only {
        let mut p = plan(spec, view, &report.decision.target);
        hold_paused(&mut p, &report.decision.pauses, now);
        {
            let mut offerings = memory.offerings.lock().unwrap_or_else(|e| e.into_inner());
            offerings.expire(now);
            hold_for_quota(&mut p, &offerings, now);
        }
        if p.actions.is_empty() && ctx.route(spec).is_none() {
            // Nothing to execute and no router step: the acting half has nothing to do.
            report.plan = Some(p);
        } else {
            // Boxed: the acting half's future is large and most ticks do not act; inline, its
            // size would be moved with every tick's future (measured by the year benchmark).
            Box::pin(act(
                ctx,
                spec,
                view,
                series,
                p,
                memory,
                now,
                opts,
                &mut report,
                &mut persisted,
            ))
            .await?;
        }
    }
    report.template_drift = match &report.plan {
        Some(p) => p.template_drift.clone(),
        None => template_drift(spec, view),
    };
    report.offerings = (memory.offerings.lock())
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    memory
        .state_mut()
        .record(&report.decision, report.acted, now);
    let may_write = !opts.dry_run && !report.decision.observe_only;
    if let (true, Some(master)) = (may_write, view.master.as_ref()) {
        write_master_tags(ctx, policy, master, memory, &persisted, &mut report).await?;
    }
    Ok(report)
}

/// The tick's report before the acting half: what was observed and decided.
fn new_report(
    spec: &ClusterSpec,
    view: &ClusterView,
    series: &[MetricSeries],
    memory: &ClusterMemory,
    metrics: Vec<ObservedMetric>,
    decision: Decision,
) -> TickReport {
    TickReport {
        cluster: spec.name.clone(),
        replicas: view.replica_count(),
        available: view.available_replicas(),
        queries: series.len(),
        metrics,
        plan: None,
        actions: Vec::new(),
        acted: false,
        state_written: false,
        router: None,
        conflicts: blocked_of(view),
        template_drift: Vec::new(),
        offerings: Offerings::default(),
        broken: (view.replicas.iter().flatten())
            .filter(|r| r.status.is_broken())
            .map(|r| r.id.clone())
            .collect(),
        parked: (view.parked.iter())
            .map(|&i| spec.replicas[i].id.clone())
            .collect(),
        stuck: memory.broken.stuck.clone(),
        decision,
    }
}

/// What the tick keeps on the master (not in dry runs or observe-only): the scale state when it
/// changed, slots to park, and the lead times learned. `persisted` is a `Cow` on purpose: borrowed,
/// the tags are as observed (their reading is cached); owned, this tick changed them.
#[allow(clippy::ptr_arg)]
async fn write_master_tags(
    ctx: &TickContext<'_>,
    policy: &Policy,
    master: &crate::core::domain::Instance,
    memory: &mut ClusterMemory,
    persisted: &Cow<'_, Tags>,
    report: &mut TickReport,
) -> Result<(), PortError> {
    // The master's tags as observed, or as updated by this tick's intent write.
    let keys = match persisted {
        // Borrowed: the master's own map.
        Cow::Borrowed(_) => memory.to_write(&master.tags),
        Cow::Owned(tags) => PersistedState::read(tags).to_write(memory.state()),
    };
    // Only the keys whose values changed (and any missing) are sent.
    if let Some(keys) = keys {
        let tags = memory.state().tags_of(keys);
        ctx.fleet.write_tags(&master.id, &tags).await?;
        memory.wrote(tags);
        report.state_written = true;
    }
    if !memory.broken.to_park.is_empty() {
        let tags = parked_tag(master, &memory.broken.to_park);
        ctx.fleet.write_tags(&master.id, &tags).await?;
        memory.broken.parked_written();
    }
    let learning = policy
        .predictive
        .as_ref()
        .is_some_and(|p| p.learn_lead_time);
    if let Some(value) = memory.forecast.leads.take_unsaved().filter(|_| learning) {
        let tags = Tags::from([(predict::TAG_LEAD_TIMES.to_string(), value)]);
        ctx.fleet.write_tags(&master.id, &tags).await?;
    }
    Ok(())
}

/// The acting half of a tick that is not observe-only, on the tick's plan `p` (made every
/// tick: besides the scale action it carries class changes from a schedule and repairs; when
/// it is empty and the cluster has no router step, [`decide_and_act`] does not call this):
/// let deletes behind HAProxy wait for their drain, write the scale-in intent, execute, and
/// run the router step.
#[allow(clippy::too_many_arguments)]
async fn act(
    ctx: &TickContext<'_>,
    spec: &ClusterSpec,
    view: &ClusterView,
    series: &[MetricSeries],
    p: Plan,
    memory: &mut ClusterMemory,
    now: DateTime<Utc>,
    opts: TickOptions,
    report: &mut TickReport,
    persisted: &mut Cow<'_, Tags>,
) -> Result<(), PortError> {
    let route = ctx.route(spec);
    let drains = &mut memory.drains;
    let gated = gate_deletes(ctx.fleet, spec, route, &p, drains, now, opts.dry_run).await;
    // A scale-in is recorded on the master *before* the delete: a crash right after
    // DeleteDBInstance (the instance may be gone at restart) must not lose the scale-in
    // cooldown. If the delete does not happen, the state written after it puts the previous
    // time back. No intent write, no delete.
    if gated.deletes(&p) && !opts.dry_run && report.decision.direction == Direction::In {
        if let Some(master) = view.master.as_ref() {
            let mut intent = memory.state().clone();
            intent.last_scale_in = Some(now);
            let tags = intent.to_tags();
            ctx.fleet.write_tags(&master.id, &tags).await?;
            persisted.to_mut().extend(tags);
        }
    }
    let exec = ExecOptions {
        dry_run: opts.dry_run,
        capacity: Some((memory.offerings.clone(), now)),
    };
    let results = execute_actions(ctx.fleet, spec, gated.ready(&p), &exec).await;
    report.actions = gated.finish(results);
    report.acted = report.decision.direction != Direction::None
        && report.actions.iter().any(|r| {
            matches!(
                r.planned.action,
                Action::CreateReplica { .. } | Action::DeleteReplica { .. }
            ) && matches!(r.outcome, Outcome::Done | Outcome::AlreadyDone)
        });
    if !opts.dry_run {
        // Add replicas that are available and caught up to HAProxy (with a `haproxy`
        // section); the pre-execution view with this plan leaves out what it deletes.
        report.router =
            sync_router_for_tick(route, spec, view, series, &p, &mut memory.drains).await;
    }
    report.plan = Some(p);
    Ok(())
}

/// The whole tick for one cluster as observed in `view`, at the context clock's time: the
/// observation step, gather, fetch, decide and act.
pub async fn tick_cluster(
    ctx: &TickContext<'_>,
    spec: &ClusterSpec,
    policy: &Policy,
    mut view: Cow<'_, ClusterView>,
    memory: &mut ClusterMemory,
    opts: TickOptions,
) -> Result<Box<TickReport>, PortError> {
    let now = ctx.clock.now();
    memory.observe_shared(&mut view, now);
    tick_observed(ctx, spec, policy, &view, memory, now, opts).await
}

/// [`tick_cluster`] after the observation step (for callers that show the state it read).
pub async fn tick_observed(
    ctx: &TickContext<'_>,
    spec: &ClusterSpec,
    policy: &Policy,
    view: &ClusterView,
    memory: &mut ClusterMemory,
    now: DateTime<Utc>,
    opts: TickOptions,
) -> Result<Box<TickReport>, PortError> {
    // The history read failing leaves the forecast to abstain or use what it had: the tick
    // goes on reactively (the daemon logs it).
    if policy.predictive.is_some() {
        // Boxed, and only for a predictive policy: the others would carry its future's size.
        let items = &mut [(policy, spec, &mut *memory)];
        let _ = Box::pin(predict::refresh_histories(ctx.metrics, items, now)).await;
    }
    let g = gather(policy, spec, view, now);
    let series = fetch_all(ctx.metrics, &[&g]).await?.remove(0);
    decide_and_act(ctx, spec, policy, view, &series, memory, now, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sim::SimFleet;
    use crate::core::config::Config;
    use crate::core::decide::decide;
    use crate::core::decide::{
        TAG_LAST_DECISION, TAG_LAST_SCALE_IN, TAG_LAST_SCALE_OUT, TAG_RECENT_HIGH, TAG_RECENT_LOW,
    };
    use crate::core::domain::{InstanceId, Sample};
    use crate::ports::ManualClock;
    use chrono::TimeZone;
    use std::sync::Arc;

    const CONFIG: &str = "c1:\n  master_node: {identifier: snap-c1, instance_id: c1-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1-s01, instance_class: db.t3.micro}\n    - {id: c1-s02, instance_class: db.t3.micro}\n    - {id: c1-s03, instance_class: db.t3.micro}\n";

    /// `persist_needed` as first written: both sides decoded and encoded in full.
    fn persist_needed_reference(persisted: &Tags, state: &ScaleState) -> bool {
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

    #[test]
    fn persist_needed_agrees_with_decoding_and_encoding_in_full() {
        let t = |m: i64| {
            Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + chrono::Duration::minutes(m)
        };
        let mut states = vec![ScaleState::default()];
        for (out, inn, high, low, d) in [
            (
                Some(0),
                None,
                vec![(0, 3)],
                vec![(0, 3)],
                Some("out 3 target_tracking"),
            ),
            (
                None,
                Some(2),
                vec![(0, 4), (3, 2)],
                vec![(3, 2)],
                Some("in 2 target_tracking"),
            ),
            (
                Some(0),
                Some(2),
                vec![(0, 4), (9, 2)],
                vec![(1, 1), (9, 2)],
                Some("none 2 steady"),
            ),
            (None, None, vec![(20, 2)], vec![], None),
        ] {
            states.push(ScaleState {
                last_scale_out: out.map(t),
                last_scale_in: inn.map(t),
                recent_high: high.iter().map(|&(m, n)| (t(m), n)).collect(),
                recent_low: low.iter().map(|&(m, n)| (t(m), n)).collect(),
                last_decision: d.and_then(crate::core::decide::LastDecision::parse),
            });
        }
        // What each state writes, and variants: another spelling of a time, malformed,
        // out-of-range or unordered histories, missing and empty tags, extra tags.
        let mut tag_sets: Vec<Tags> = vec![Tags::new()];
        for s in &states {
            let tags = s.to_tags();
            tag_sets.push(tags.clone());
            let variants: [(&str, String); 9] = [
                (TAG_LAST_SCALE_OUT, "2026-03-02T10:00:00+00:00".into()),
                (TAG_LAST_SCALE_IN, " 2026-03-02T10:02:00Z ".into()),
                (TAG_LAST_SCALE_OUT, "yesterday".into()),
                (TAG_RECENT_HIGH, format!("{} x", tags[TAG_RECENT_HIGH])),
                (TAG_RECENT_HIGH, "1772445600=4 1772445500=2".into()),
                (TAG_RECENT_LOW, "1772445600=10001".into()),
                (TAG_RECENT_LOW, "99999999999999999=1".into()),
                (TAG_RECENT_HIGH, "  1772445600=4\t1772445780=2 ".into()),
                (TAG_LAST_DECISION, "".into()),
            ];
            for (k, v) in variants {
                let mut changed = tags.clone();
                changed.insert(k.to_string(), v);
                tag_sets.push(changed);
            }
            let mut partial = tags.clone();
            partial.remove(TAG_RECENT_LOW);
            partial.insert("other".into(), "x".into());
            tag_sets.push(partial);
        }
        let mut differ = 0;
        // The memory of a cluster that carries on from tick to tick (it reads the tags again
        // only when they changed): the same answers whether the tags are seen again or new.
        let mut carried = ClusterMemory::default();
        for tags in &tag_sets {
            // One shared map seen tick after tick (no lookup after the first), and a new
            // map with the same tags (looked up again).
            let shared = std::sync::Arc::new(tags.clone());
            for s in &states {
                let want = persist_needed_reference(tags, s);
                assert_eq!(persist_needed(tags, s), want, "{tags:?} {s:?}");
                *carried.state_mut() = s.clone();
                for _ in 0..2 {
                    assert_eq!(carried.persist_needed(&shared), want, "{tags:?} {s:?}");
                }
                let copy = std::sync::Arc::new(tags.clone());
                assert_eq!(carried.persist_needed(&copy), want, "{tags:?} {s:?}");
                differ += usize::from(want);
            }
        }
        // A memory that wrote a state's tags itself (after reading others before) takes what
        // they hold from the state, without reading them again, and answers the same.
        for written in &states {
            let tags = written.to_tags();
            let mut wrote = carried.clone();
            *wrote.state_mut() = written.clone();
            wrote.wrote(tags.clone());
            let shared = std::sync::Arc::new(tags.clone());
            for s in &states {
                *wrote.state_mut() = s.clone();
                let want = persist_needed_reference(&tags, s);
                assert_eq!(wrote.persist_needed(&shared), want, "{tags:?} {s:?}");
            }
        }
        // Both answers occur.
        assert!(differ > 0 && differ < tag_sets.len() * states.len());
        // A write sends only the keys that changed (and any missing): afterwards the master's
        // tags hold the state (nothing more to write), and a memory that read the tags
        // before and wrote those keys answers as reading the merged tags does.
        let mut partial = 0;
        for tags in &tag_sets {
            for written in &states {
                let Some(keys) = PersistedState::read(tags).to_write(written) else {
                    continue;
                };
                let sent = written.tags_of(keys);
                partial += usize::from(sent.len() < crate::core::decide::STATE_TAG_KEYS.len());
                let mut merged = tags.clone();
                merged.extend(sent.clone());
                assert!(
                    !persist_needed_reference(&merged, written),
                    "{tags:?} {written:?}"
                );
                let mut memory = ClusterMemory::default();
                *memory.state_mut() = written.clone();
                assert!(memory.persist_needed(&std::sync::Arc::new(tags.clone())));
                memory.wrote(sent);
                let merged_shared = std::sync::Arc::new(merged.clone());
                for s in &states {
                    *memory.state_mut() = s.clone();
                    let want = persist_needed_reference(&merged, s);
                    assert_eq!(
                        memory.persist_needed(&merged_shared),
                        want,
                        "{merged:?} {s:?}"
                    );
                }
            }
        }
        assert!(partial > 0, "some writes send fewer keys than all");
    }

    #[test]
    fn every_metric_is_observed_and_only_ruled_ones_have_a_target() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 30).unwrap();
        let config = Config::parse("c.yaml", CONFIG).unwrap();
        let spec = config.cluster("c1").unwrap().clone();
        let policy = Policy::parse(
            "p.yaml",
            "cluster: c1\nrules:\n  - metric: cpu\n    target: 60\nwarmup:\n  duration: 0s\n",
            &config,
        )
        .unwrap();
        let sim = SimFleet::new(Arc::new(ManualClock::new(now)), Default::default());
        let view = ClusterView {
            master: Some(sim.available_instance("c1-m01", "db.t3.micro").into()),
            replicas: vec![
                Some(sim.available_instance("c1-s01", "db.t3.micro").into()),
                Some(sim.available_instance("c1-s02", "db.t3.micro").into()),
                None,
            ],
            conflicts: Vec::new(),
            foreign: Vec::new(),
            parked: Vec::new(),
            replacing: Vec::new(),
            ..ClusterView::default()
        };

        // The rules read CPU only; gathering adds connections and lag for both replicas.
        let g = gather_all_metrics(&policy, &spec, &view, now);
        assert_eq!(g, {
            let mut want = gather(&policy, &spec, &view, now);
            for (m, st) in [
                (MetricKind::Connections, Statistic::Average),
                (MetricKind::ReplicaLag, Statistic::Maximum),
            ] {
                for id in ["c1-s01", "c1-s02"] {
                    want.queries.push(MetricQuery {
                        instance: InstanceId::from_aws(id),
                        metric: m,
                        statistic: st,
                        period_secs: 60,
                    });
                }
            }
            want
        });

        // Newest complete period: 09:58 (the window ends at 09:59). s02's lag is stale.
        let at = |h: u32, m: u32| Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap();
        let value = |q: &MetricQuery| -> Vec<Sample> {
            let v = match (q.metric, q.instance.as_str()) {
                (MetricKind::Cpu, "c1-s01") => 70.0,
                (MetricKind::Cpu, _) => 50.0,
                (MetricKind::Connections, "c1-s01") => 100.0,
                (MetricKind::Connections, _) => 300.0,
                (MetricKind::ReplicaLag, "c1-s01") => 2.0,
                (MetricKind::ReplicaLag, _) => 50.0,
            };
            let t = if q.metric == MetricKind::ReplicaLag && q.instance.as_str() == "c1-s02" {
                at(9, 40)
            } else {
                at(9, 58)
            };
            vec![Sample { at: t, value: v }]
        };
        let series: Vec<MetricSeries> = g
            .queries
            .iter()
            .map(|q| MetricSeries {
                query: q.clone(),
                samples: value(q),
            })
            .collect();
        let mut state = ScaleState::default();
        let d = decide(&policy, &spec, &view, &series, &state, now);
        state.record(&d, false, now);
        let got = observed_metrics(&policy, &view, &d, &series, now);
        assert_eq!(
            got,
            vec![
                ObservedMetric {
                    metric: MetricKind::Cpu,
                    value: Some(60.0),
                    target: Some(60.0),
                },
                ObservedMetric {
                    metric: MetricKind::Connections,
                    value: Some(200.0),
                    target: None,
                },
                ObservedMetric {
                    metric: MetricKind::ReplicaLag,
                    value: Some(2.0),
                    target: None,
                },
            ]
        );
        // The extra series did not change the decision.
        let rules_only: Vec<MetricSeries> = series
            .iter()
            .filter(|s| s.query.metric == MetricKind::Cpu)
            .cloned()
            .collect();
        assert_eq!(
            decide(
                &policy,
                &spec,
                &view,
                &rules_only,
                &ScaleState::default(),
                now
            ),
            d
        );

        // No fresh data at all: observed values absent, never zero.
        let empty: Vec<MetricSeries> = g
            .queries
            .iter()
            .map(|q| MetricSeries {
                query: q.clone(),
                samples: Vec::new(),
            })
            .collect();
        let d = decide(&policy, &spec, &view, &empty, &ScaleState::default(), now);
        let got = observed_metrics(&policy, &view, &d, &empty, now);
        assert!(got.iter().all(|o| o.value.is_none()), "{got:?}");
        assert_eq!(got[0].target, Some(60.0));
    }
}
