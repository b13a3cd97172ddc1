//! The control loop. Each tick observes every configured cluster with ONE batched describe,
//! fetches every cluster's metrics with ONE metrics-source fetch (≤ 500 queries per
//! GetMetricData inside the adapter), then runs the shared `control::decide_and_act` per
//! cluster. A cluster's failure is logged, counted and retried after a capped exponential
//! backoff without stopping the others or the loop. Ticks run sequentially on a tokio interval
//! (`MissedTickBehavior::Delay`), so they never overlap; a stop request is honoured between
//! clusters, after the AWS call in flight. Scale state comes from the master's tags when not
//! in memory, so a restarted or second instance honours cooldowns: each cluster's
//! [`ClusterMemory`] goes through the control loop's one observation step. The ports (fleet,
//! metrics source, traffic routers, clock) are handed in by the caller; so is, for `run`, the
//! reloader (`service::reload`): a validated set replaces the running one between ticks,
//! each kept cluster keeping its memory ([`Daemon::reload`]).

use super::counting::{CountingFleet, CountingMetrics};
use super::events::{self, EventMemory};
use super::http::Health;
use super::leases::LeaseKeeper;
use super::metrics::Metrics;
use super::notify::Notifier;
use super::reload::{ConfigSet, Loader, ReloadSummary, Trigger};
use super::status::StatusBoard;
use crate::control::{
    decide_and_act, fetch_all, gather_all_metrics, predict::refresh_histories, ClusterMemory,
    Gathered, TickContext, TickOptions, TickReport,
};
use crate::core::config::ClusterSpec;
use crate::core::decide::{Decision, Direction, ScaleState};
use crate::core::domain::{MetricKind, MetricSeries};
use crate::core::plan::ClusterView;
use crate::core::policy::Policy;
use crate::ports::{Clock, ErrorKind, Fleet, MetricsSource, PortError, Routers};
use crate::reconcile::observe;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// One configured cluster and the policy that governs it.
#[derive(Debug, Clone)]
pub struct ClusterEntry {
    pub spec: ClusterSpec,
    pub policy: Policy,
    /// Where the policy came from (a file path, the default policy), for logs and `plan`.
    pub policy_source: String,
    /// Whether a policy governs the cluster. An unmanaged cluster is observed and exported,
    /// never changed (its policy is the built-in default in observe-only mode); see
    /// `cli::govern` for the rule.
    pub managed: bool,
}

impl ClusterEntry {
    pub fn new(spec: ClusterSpec, policy: Policy) -> Self {
        ClusterEntry::governed(spec, policy, "given".into())
    }

    /// A cluster governed by `policy`, read from `source`.
    pub fn governed(spec: ClusterSpec, policy: Policy, source: String) -> Self {
        ClusterEntry {
            spec,
            policy,
            policy_source: source,
            managed: true,
        }
    }

    /// A cluster no policy names: observed and exported, never changed.
    pub fn observed_only(spec: ClusterSpec) -> Self {
        let mut policy = Policy::default_for(&spec);
        policy.observe_only = true;
        ClusterEntry {
            spec,
            policy,
            policy_source:
                "none: observed only, not managed (no policy file names it; see --default-policy)"
                    .into(),
            managed: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Time between tick starts (tokio time).
    pub interval: Duration,
    pub observe_only: bool,
    pub dry_run: bool,
    /// Cap of the per-cluster backoff after failures.
    pub max_backoff: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            interval: Duration::from_secs(60),
            observe_only: false,
            dry_run: false,
            max_backoff: Duration::from_secs(15 * 60),
        }
    }
}

/// The backoff after `failures` consecutive failures: one interval, doubling, capped.
pub fn backoff_delay(interval: Duration, failures: u32, cap: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << failures.saturating_sub(1).min(20);
    interval.saturating_mul(factor).min(cap.max(interval))
}

/// Per-cluster memory of the loop.
#[derive(Debug, Default)]
struct ClusterRuntime {
    /// What the control loop remembers between ticks (the observation step's memory).
    memory: ClusterMemory,
    failures: u32,
    last_failure_retryable: bool,
    retry_at: Option<DateTime<Utc>>,
    /// What the last INFO decision line said (see [`decision_key`]).
    last_logged: Option<String>,
    /// The conflicts last logged (ids and kinds): logged again only when they change.
    last_conflicts: String,
    /// What was already told about the cluster (`service::events`).
    events: EventMemory,
}

/// What became of one cluster in a tick.
#[derive(Debug)]
pub enum ClusterResult {
    Done(Box<TickReport>),
    /// Decided, but an action failed (or was refused): counted as a failure for backoff.
    ActionFailed(Box<TickReport>, PortError),
    Failed(PortError),
    /// Still backing off after earlier failures, or the loop was stopping.
    Skipped,
}

/// One tick's outcome.
#[derive(Debug)]
pub struct TickOutcome {
    pub at: DateTime<Utc>,
    pub clusters: Vec<(String, ClusterResult)>,
    pub duration: Duration,
}

impl TickOutcome {
    /// A tick is ok when every cluster was ticked and none failed: a cluster skipped while it
    /// backs off after a failure makes the tick not ok, so that `ticks_total{result="ok"}` and
    /// the last-successful-tick timestamp do not count ticks that reached nothing.
    pub fn ok(&self) -> bool {
        self.clusters
            .iter()
            .all(|(_, r)| matches!(r, ClusterResult::Done(_)))
    }
    pub fn reports(&self) -> impl Iterator<Item = &TickReport> {
        self.clusters.iter().filter_map(|(_, r)| match r {
            ClusterResult::Done(r) | ClusterResult::ActionFailed(r, _) => Some(r.as_ref()),
            _ => None,
        })
    }
    pub fn errors(&self) -> impl Iterator<Item = (&str, &PortError)> {
        self.clusters.iter().filter_map(|(c, r)| match r {
            ClusterResult::Failed(e) | ClusterResult::ActionFailed(_, e) => Some((c.as_str(), e)),
            _ => None,
        })
    }
}

/// The long-running service core, constructible in-process with any ports.
pub struct Daemon {
    fleet: Arc<dyn Fleet>,
    source: Arc<dyn MetricsSource>,
    routers: Routers,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    health: Arc<Health>,
    clusters: Vec<ClusterEntry>,
    runtime: Vec<ClusterRuntime>,
    opts: DaemonOptions,
    stop: Option<watch::Receiver<bool>>,
    ticks: u64,
    /// How to reload the config and policy files, and when (`run`; none in tests and demo).
    reloader: Option<(Loader, mpsc::Receiver<Trigger>)>,
    /// Where events go, and how long at the max makes `pinned_at_max` (`run` with sinks).
    notifier: Option<(Notifier, Duration)>,
    /// What the status page shows.
    board: Arc<StatusBoard>,
    /// With a lease table (`run --lease-table`): the clusters this copy may act on.
    leases: Option<Arc<LeaseKeeper>>,
}

impl Daemon {
    /// Build the daemon; `fleet` and `source` are wrapped in the counting decorators.
    pub fn new(
        fleet: Arc<dyn Fleet>,
        source: Arc<dyn MetricsSource>,
        routers: Routers,
        clock: Arc<dyn Clock>,
        clusters: Vec<ClusterEntry>,
        metrics: Metrics,
        opts: DaemonOptions,
    ) -> Daemon {
        for c in &clusters {
            metrics.init_cluster(&c.spec.name);
        }
        let clusters_names: Vec<String> =
            clusters.iter().map(|c| c.spec.name.to_string()).collect();
        Daemon {
            fleet: Arc::new(CountingFleet::new(fleet, metrics.clone())),
            source: Arc::new(CountingMetrics::new(source, metrics.clone())),
            routers,
            health: Arc::new(Health::new(
                clock.clone(),
                opts.interval,
                clusters.iter().map(|c| c.spec.name.to_string()).collect(),
            )),
            clock,
            runtime: clusters.iter().map(|_| ClusterRuntime::default()).collect(),
            clusters,
            metrics,
            opts,
            stop: None,
            ticks: 0,
            reloader: None,
            notifier: None,
            leases: None,
            board: {
                let b = StatusBoard::default();
                b.set_clusters(&clusters_names, &[]);
                Arc::new(b)
            },
        }
    }

    /// The status page's board, for the HTTP server (`http::start_with_status`).
    pub fn status_board(&self) -> Arc<StatusBoard> {
        self.board.clone()
    }

    /// Tell `notifier` about scale actions, failures and the rest (`service::events`);
    /// `pinned_for`: how long at the max with a metric above target makes `pinned_at_max`.
    pub fn with_notifier(mut self, notifier: Notifier, pinned_for: Duration) -> Self {
        self.notifier = Some((notifier, pinned_for));
        self
    }

    /// The notifier back, to drain its queues at shutdown.
    pub fn take_notifier(&mut self) -> Option<Notifier> {
        self.notifier.take().map(|(n, _)| n)
    }

    fn notify(&self, n: Option<crate::ports::Notification>) {
        if let (Some((notifier, _)), Some(n)) = (&self.notifier, n) {
            notifier.send(n);
        }
    }

    /// Reload the config and policy files with `loader` whenever `triggers` says so, between
    /// ticks (see [`Daemon::reload`]).
    pub fn with_reloader(mut self, loader: Loader, triggers: mpsc::Receiver<Trigger>) -> Self {
        self.set_reloader(loader, triggers);
        self
    }

    /// [`Daemon::with_reloader`] on a daemon held by reference.
    pub fn set_reloader(&mut self, loader: Loader, triggers: mpsc::Receiver<Trigger>) {
        self.reloader = Some((loader, triggers));
    }

    /// Replace the clusters, their policies and routers by a validated set. A cluster kept
    /// keeps its memory (scale state, cooldowns, stabilization history, warm-up times, drains
    /// under way) and its backoff, unless its master changed (then it starts as new); a cluster
    /// removed is no longer managed (nothing is deleted) and its series are dropped; a cluster
    /// added starts as new.
    pub fn reload(&mut self, set: ConfigSet) -> ReloadSummary {
        let summary = ReloadSummary::of(&self.clusters, &set.entries);
        let mut old: Vec<(ClusterEntry, ClusterRuntime)> = std::mem::take(&mut self.clusters)
            .into_iter()
            .zip(std::mem::take(&mut self.runtime))
            .collect();
        let mut runtime = Vec::with_capacity(set.entries.len());
        // Clusters kept by name whose master changed: another database, started afresh.
        let mut restarted = Vec::new();
        for e in &set.entries {
            let kept = (old.iter().position(|(o, _)| o.spec.name == e.spec.name))
                .map(|i| old.swap_remove(i));
            match kept {
                Some((o, rt)) if o.spec.master.id == e.spec.master.id => runtime.push(rt),
                other => {
                    if other.is_some() {
                        restarted.push(e.spec.name.to_string());
                    }
                    self.metrics.init_cluster(&e.spec.name);
                    runtime.push(ClusterRuntime::default());
                }
            }
        }
        for name in &summary.removed {
            self.metrics.forget_cluster(name);
        }
        let names: Vec<String> = set
            .entries
            .iter()
            .map(|c| c.spec.name.to_string())
            .collect();
        self.board.set_clusters(&names, &restarted);
        if let Some(k) = &self.leases {
            k.set_clusters(names.clone());
        }
        self.health.set_clusters(names, &restarted);
        self.clusters = set.entries;
        self.runtime = runtime;
        self.routers = set.routers;
        summary
    }

    /// Run the loader and apply its set; a refused set leaves the running one as it is, and
    /// the log and `elasticrds_config_last_reload_successful` say why.
    fn reload_now(&mut self, trigger: Trigger) {
        let Some((loader, _)) = &self.reloader else {
            return;
        };
        let at = self.clock.now().timestamp_millis() as f64 / 1000.0;
        match loader() {
            Ok(set) => {
                let summary = self.reload(set);
                self.metrics.config_loaded(true, at);
                tracing::info!(
                    trigger = trigger.as_str(),
                    changes = %summary.describe(),
                    "config reloaded"
                );
            }
            Err(errors) => {
                self.metrics.config_loaded(false, at);
                self.notify(Some(events::of_refused_reload(&errors, self.clock.now())));
                for line in errors.lines() {
                    tracing::error!(trigger = trigger.as_str(), error = %line, "config reload refused");
                }
                tracing::warn!(
                    trigger = trigger.as_str(),
                    "config reload refused: the service keeps running the previous config and policies"
                );
            }
        }
    }

    /// The next reload trigger, or never without a reloader.
    async fn next_trigger(reloader: &mut Option<(Loader, mpsc::Receiver<Trigger>)>) -> Trigger {
        match reloader {
            Some((_, rx)) => match rx.recv().await {
                Some(t) => t,
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub fn clusters(&self) -> &[ClusterEntry] {
        &self.clusters
    }
    /// The scale state held in memory for `cluster`, if read yet.
    pub fn state(&self, cluster: &str) -> Option<&ScaleState> {
        let i = self
            .clusters
            .iter()
            .position(|c| *c.spec.name == *cluster)?;
        self.runtime[i].memory.known_state()
    }
    /// Current backoff of `cluster` (zero when healthy).
    pub fn backoff(&self, cluster: &str) -> Option<Duration> {
        let i = self
            .clusters
            .iter()
            .position(|c| *c.spec.name == *cluster)?;
        let rt = &self.runtime[i];
        Some(backoff_delay(
            self.opts.interval,
            rt.failures,
            self.opts.max_backoff,
        ))
    }

    fn stopping(&self) -> bool {
        self.stop.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Tick on the interval until `stop` turns true (or its sender is dropped). A tick in
    /// flight finishes its current AWS call and skips the clusters it has not started.
    pub async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        self.stop = Some(stop.clone());
        let mut iv = tokio::time::interval(self.opts.interval);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|v| *v) => break,
                t = Self::next_trigger(&mut self.reloader) => {
                    self.reload_now(t);
                    continue;
                }
                _ = iv.tick() => {}
            }
            if *stop.borrow() {
                break;
            }
            self.tick().await;
        }
        tracing::info!("control loop stopped");
    }

    /// Run exactly one tick.
    /// The managed clusters' names, in order.
    pub fn cluster_names(&self) -> Vec<String> {
        self.clusters
            .iter()
            .map(|c| c.spec.name.to_string())
            .collect()
    }

    /// Share the clusters with other copies: tick only those whose lease this copy holds.
    pub fn with_leases(mut self, keeper: Arc<LeaseKeeper>) -> Daemon {
        self.health.set_leases(keeper.clone());
        self.leases = Some(keeper);
        self
    }

    pub async fn tick(&mut self) -> TickOutcome {
        self.ticks += 1;
        let span = tracing::info_span!("tick", n = self.ticks);
        self.tick_inner().instrument(span).await
    }

    async fn tick_inner(&mut self) -> TickOutcome {
        let started = tokio::time::Instant::now();
        let now = self.clock.now();
        let n = self.clusters.len();
        let mut results: Vec<Option<ClusterResult>> = (0..n).map(|_| None).collect();

        // Who is due: clusters not backing off (half an interval of slack for timer jitter).
        let slack = chrono::Duration::from_std(self.opts.interval / 2).unwrap_or_default();
        let held = |i: usize| {
            let name = &self.clusters[i].spec.name;
            self.leases
                .as_ref()
                .is_none_or(|k| k.holds(name, now).is_some())
        };
        let due: Vec<usize> = (0..n)
            .filter(|&i| self.runtime[i].retry_at.is_none_or(|t| t <= now + slack))
            .filter(|&i| held(i))
            .collect();
        for (i, r) in results.iter_mut().enumerate() {
            if !due.contains(&i) {
                *r = Some(ClusterResult::Skipped);
            }
        }
        for &i in &due {
            let rt = &self.runtime[i];
            if rt.failures > 0 && rt.last_failure_retryable {
                self.metrics
                    .retries_total
                    .with_label_values(&[&self.clusters[i].spec.name])
                    .inc();
            }
        }

        if !due.is_empty() {
            self.tick_due(&due, now, &mut results).await;
        }

        let clusters: Vec<(String, ClusterResult)> = self
            .clusters
            .iter()
            .zip(results)
            .map(|(c, r)| (c.spec.name.to_string(), r.unwrap_or(ClusterResult::Skipped)))
            .collect();
        let outcome = TickOutcome {
            at: now,
            clusters,
            duration: started.elapsed(),
        };
        self.metrics
            .tick_duration_seconds
            .observe(outcome.duration.as_secs_f64());
        let ok = outcome.ok();
        self.metrics
            .ticks_total
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
        if ok {
            let end = self.clock.now();
            self.metrics
                .last_successful_tick_timestamp_seconds
                .set(end.timestamp_millis() as f64 / 1000.0);
        }
        tracing::debug!(
            ok,
            duration_ms = outcome.duration.as_millis() as u64,
            "tick done"
        );
        outcome
    }

    async fn tick_due(
        &mut self,
        due: &[usize],
        now: DateTime<Utc>,
        results: &mut [Option<ClusterResult>],
    ) {
        // Per target (region and account): batching is per target, and a target that cannot be
        // reached (a role that cannot be assumed) fails only its own clusters.
        let mut groups: Vec<(&crate::core::target::Target, Vec<usize>)> = Vec::new();
        for &i in due {
            let t = &self.clusters[i].spec.target;
            match groups.iter_mut().find(|(g, _)| *g == t) {
                Some((_, v)) => v.push(i),
                None => groups.push((t, vec![i])),
            }
        }
        let groups: Vec<Vec<usize>> = groups.into_iter().map(|(_, v)| v).collect();
        for group in groups {
            self.tick_group(&group, now, results).await;
        }
    }

    /// [`Daemon::tick_due`] for the due clusters of one target.
    async fn tick_group(
        &mut self,
        due: &[usize],
        now: DateTime<Utc>,
        results: &mut [Option<ClusterResult>],
    ) {
        // 1. One batched describe for every due cluster.
        let Some(views) = self.observe_group(due, now, results).await else {
            return;
        };
        // 1b. One history read for every due cluster whose forecast needs one (policies with
        // `predictive`); a failure leaves the forecast with what it had.
        self.refresh_histories(due, now).await;
        // 2. One fetch for every due cluster's metrics.
        let Some(series) = self.fetch_group(due, &views, now, results).await else {
            return;
        };
        // 3. Decide and act per cluster; one failing does not stop the others.
        self.act_group(due, views, series, now, results).await;
    }

    /// Step 1 of [`Daemon::tick_group`]: one describe for the due clusters, each view through
    /// its cluster's observation step. `None` (each cluster's result set) when the describe
    /// failed or a stop was requested during it.
    async fn observe_group(
        &mut self,
        due: &[usize],
        now: DateTime<Utc>,
        results: &mut [Option<ClusterResult>],
    ) -> Option<Vec<ClusterView>> {
        let specs: Vec<&ClusterSpec> = due.iter().map(|&i| &self.clusters[i].spec).collect();
        let mut views = match observe(self.fleet.as_ref(), &specs).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, clusters = due.len(), "observing the fleet failed");
                for &i in due {
                    results[i] = Some(self.fail(i, e.clone(), now));
                }
                return None;
            }
        };
        if self.stopping() {
            // Stop requested during the describe: make no further AWS call this tick.
            for &i in due {
                results[i] = Some(ClusterResult::Skipped);
            }
            return None;
        }
        for (&i, view) in due.iter().zip(views.iter_mut()) {
            self.runtime[i].memory.observe(view, now);
        }
        Some(views)
    }

    /// Step 2 of [`Daemon::tick_group`]: one fetch for every due cluster's metrics. `None`
    /// (each cluster's result set) when it failed.
    async fn fetch_group(
        &mut self,
        due: &[usize],
        views: &[ClusterView],
        now: DateTime<Utc>,
        results: &mut [Option<ClusterResult>],
    ) -> Option<Vec<Vec<MetricSeries>>> {
        let gathered: Vec<Gathered> = due
            .iter()
            .zip(views)
            .map(|(&i, v)| {
                let c = &self.clusters[i];
                gather_all_metrics(&c.policy, &c.spec, v, now)
            })
            .collect();
        let refs: Vec<&Gathered> = gathered.iter().collect();
        let series = match fetch_all(self.source.as_ref(), &refs).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, clusters = due.len(), "fetching metrics failed");
                for &i in due {
                    results[i] = Some(self.fail(i, e.clone(), now));
                }
                return None;
            }
        };
        // Described and fetched: observed, for readiness (a cluster skipped by backoff is not).
        let seen = self.clock.now();
        for &i in due {
            self.health.observed(i, seen);
        }
        Some(series)
    }

    /// Step 3 of [`Daemon::tick_group`]: decide and act for each due cluster (behind its lease
    /// when copies share the clusters), concurrently, so that a long step of one (a HAProxy
    /// drain, a slow AWS call) does not hold up the others; results are then recorded in config
    /// order.
    async fn act_group(
        &mut self,
        due: &[usize],
        views: Vec<ClusterView>,
        series: Vec<Vec<MetricSeries>>,
        now: DateTime<Utc>,
        results: &mut [Option<ClusterResult>],
    ) {
        let opts = TickOptions {
            observe_only: self.opts.observe_only,
            dry_run: self.opts.dry_run,
        };
        let mut jobs = Vec::new();
        for ((&i, view), series) in due.iter().zip(views).zip(series) {
            if self.stopping() {
                results[i] = Some(ClusterResult::Skipped);
                continue;
            }
            let entry = &self.clusters[i];
            let span = tracing::info_span!("cluster", cluster = %entry.spec.name);
            let mut memory = std::mem::take(&mut self.runtime[i].memory);
            let ctx = TickContext {
                fleet: self.fleet.as_ref(),
                metrics: self.source.as_ref(),
                routers: &self.routers,
                clock: self.clock.as_ref(),
            };
            let keeper = self.leases.clone();
            jobs.push(async move {
                if let Some(k) = keeper {
                    let quiet = opts.dry_run || opts.observe_only;
                    let fenced = fence(ctx.fleet, &k, &entry.spec, &view, now, quiet);
                    if !fenced.instrument(span.clone()).await {
                        return (i, span, memory, None);
                    }
                }
                let r = decide_and_act(
                    &ctx,
                    &entry.spec,
                    &entry.policy,
                    &view,
                    &series,
                    &mut memory,
                    now,
                    opts,
                )
                .instrument(span.clone())
                .await;
                (i, span, memory, Some(r))
            });
        }
        for (i, span, memory, r) in futures_util::future::join_all(jobs).await {
            self.runtime[i].memory = memory;
            let _g = span.enter();
            let Some(r) = r else {
                results[i] = Some(ClusterResult::Skipped);
                continue;
            };
            results[i] = Some(self.finish(i, r, now));
        }
    }

    /// Record one cluster's tick: export, notify, log and show its report, and the failure or
    /// success that sets its backoff.
    fn finish(
        &mut self,
        i: usize,
        r: Result<Box<TickReport>, PortError>,
        now: DateTime<Utc>,
    ) -> ClusterResult {
        match r {
            Ok(report) => {
                self.export(&report);
                if let Some((notifier, pinned_for)) = &self.notifier {
                    let mem = &mut self.runtime[i].events;
                    for n in events::of_report(&report, mem, *pinned_for) {
                        notifier.send(n);
                    }
                }
                self.log_conflicts(i, &report);
                let key = decision_key(&report.decision);
                let line = (self.board.is_new(&report.cluster, &key)).then(|| status_line(&report));
                self.board.record(&report, line);
                let changed = self.runtime[i].last_logged.as_deref() != Some(key.as_str());
                log_report(&report, changed);
                self.runtime[i].last_logged = Some(key);
                match report.action_error().cloned().or_else(|| {
                    report
                        .has_failed_action()
                        .then(|| PortError::new(ErrorKind::Fatal, "reconcile", "action refused"))
                }) {
                    Some(e) => {
                        self.fail(i, e.clone(), now);
                        ClusterResult::ActionFailed(report, e)
                    }
                    None => {
                        self.succeed(i);
                        ClusterResult::Done(report)
                    }
                }
            }
            Err(e) => {
                // Decided and maybe acted, but the state could not be persisted: the
                // in-memory state holds; the write is retried on the next tick.
                self.fail(i, e, now)
            }
        }
    }

    /// Read the load history of the due clusters whose forecast is due for one, in one call.
    async fn refresh_histories(&mut self, due: &[usize], now: DateTime<Utc>) {
        let clusters = &self.clusters;
        let mut items: Vec<_> = (self.runtime.iter_mut().enumerate())
            .filter(|(i, _)| due.contains(i))
            .map(|(i, rt)| (&clusters[i].policy, &clusters[i].spec, &mut rt.memory))
            .collect();
        match refresh_histories(self.source.as_ref(), &mut items, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(clusters = n, "load history read for the forecast"),
            Err(e) => tracing::warn!(
                error = %e,
                "reading the load history failed: the forecast keeps what it had, retried in 5 minutes"
            ),
        }
    }

    fn succeed(&mut self, i: usize) {
        let rt = &mut self.runtime[i];
        if rt.failures > 0 {
            tracing::info!(
                cluster = %self.clusters[i].spec.name,
                after_failures = rt.failures,
                "cluster recovered"
            );
        }
        rt.failures = 0;
        rt.retry_at = None;
        rt.last_failure_retryable = false;
        self.metrics
            .backoff_seconds
            .with_label_values(&[&self.clusters[i].spec.name])
            .set(0.0);
    }

    fn fail(&mut self, i: usize, e: PortError, now: DateTime<Utc>) -> ClusterResult {
        let name = self.clusters[i].spec.name.clone();
        let rt = &mut self.runtime[i];
        rt.failures = rt.failures.saturating_add(1);
        rt.last_failure_retryable = e.is_retryable();
        let delay = backoff_delay(self.opts.interval, rt.failures, self.opts.max_backoff);
        rt.retry_at = Some(now + chrono::Duration::from_std(delay).unwrap_or_default());
        self.metrics
            .cluster_errors_total
            .with_label_values(&[&name, e.kind.as_str()])
            .inc();
        self.metrics
            .backoff_seconds
            .with_label_values(&[&name])
            .set(delay.as_secs_f64());
        tracing::warn!(
            cluster = %name,
            kind = e.kind.as_str(),
            operation = %e.operation,
            error = %e.message,
            failures = rt.failures,
            backoff_secs = delay.as_secs(),
            "cluster tick failed; retrying after backoff"
        );
        let failures = rt.failures;
        self.board.failed(&name, e.to_string());
        if self.notifier.is_some() {
            let mem = &mut self.runtime[i].events;
            let n = events::of_failure(&name, mem, &e, failures, delay, now);
            self.notify(n);
        }
        ClusterResult::Failed(e)
    }

    /// Log the cluster's ownership conflicts when they change (a WARN line per conflicting
    /// instance; an INFO line when the last one is gone), not every tick.
    fn log_conflicts(&mut self, i: usize, r: &TickReport) {
        let key: Vec<String> = r
            .conflicts
            .iter()
            .map(|b| format!("{}@{}:{}", b.id, b.position, b.kind.label()))
            .collect();
        let key = key.join(",");
        if key == self.runtime[i].last_conflicts {
            return;
        }
        let master = &self.clusters[i].spec.master.id;
        for b in &r.conflicts {
            tracing::warn!(
                cluster = %r.cluster,
                instance = %b.id,
                position = b.position,
                kind = b.kind.label(),
                "{}",
                crate::text::conflict_message(&b.id, &b.kind, master)
            );
        }
        if r.conflicts.is_empty() {
            tracing::info!(cluster = %r.cluster, "ownership conflicts resolved: every configured id held is a replica of the master");
        }
        self.runtime[i].last_conflicts = key;
    }

    fn export(&self, r: &TickReport) {
        let m = &self.metrics;
        let c = &*r.cluster;
        let d: &Decision = &r.decision;
        m.replicas.with_label_values(&[c]).set(r.replicas as i64);
        m.available_replicas
            .with_label_values(&[c])
            .set(r.available as i64);
        m.conflicting_instances
            .with_label_values(&[c])
            .set(r.conflicts.len() as i64);
        let troubles = [
            (&m.template_drift_replicas, r.template_drift.len()),
            (&m.failed_replicas, r.broken.len()),
            (&m.parked_slots, r.parked.len()),
            (&m.stuck_replicas, r.stuck.len()),
            (&m.unavailable_offerings, r.offerings.unavailable.len()),
            (
                &m.creation_stopped,
                usize::from(r.offerings.quota.is_some()),
            ),
        ];
        for (g, n) in troubles {
            g.with_label_values(&[c]).set(n as i64);
        }
        m.desired_replicas
            .with_label_values(&[c])
            .set(d.desired as i64);
        m.min_replicas.with_label_values(&[c]).set(d.min as i64);
        m.max_replicas.with_label_values(&[c]).set(d.max as i64);
        m.decisions_total
            .with_label_values(&[c, d.direction.as_str(), d.primary_reason()])
            .inc();
        for a in &r.actions {
            m.actions_total
                .with_label_values(&[c, a.planned.action.kind(), a.outcome.label()])
                .inc();
        }
        m.cooldown_remaining_seconds
            .with_label_values(&[c, "out"])
            .set(d.cooldown_remaining_out.as_secs_f64());
        m.cooldown_remaining_seconds
            .with_label_values(&[c, "in"])
            .set(d.cooldown_remaining_in.as_secs_f64());
        for dir in [Direction::Out, Direction::In] {
            let held = d.pauses.in_force(dir, d.at).is_some();
            m.paused
                .with_label_values(&[c, dir.as_str()])
                .set(held as i64);
        }
        // Every metric's observed value (absent on a gap, never zero); a target only where a
        // rule of the policy has one.
        for o in &r.metrics {
            let (value, target, scale) = match o.metric {
                MetricKind::Cpu => (&m.cpu_utilization_ratio, &m.cpu_target_ratio, 0.01),
                MetricKind::Connections => (&m.connections, &m.connections_target, 1.0),
                MetricKind::ReplicaLag => {
                    (&m.replica_lag_seconds, &m.replica_lag_target_seconds, 1.0)
                }
            };
            Metrics::set_optional(value, c, o.value.map(|v| v * scale));
            Metrics::set_optional(target, c, o.target.map(|v| v * scale));
        }
        export_forecast(m, c, d);
    }
}

/// The forecast's gauges; all absent when the policy has no forecast (a reload may have
/// removed it: its last values must not stay).
fn export_forecast(m: &Metrics, c: &str, d: &Decision) {
    let f = d.forecast.as_ref().map(|f| &f.forecast);
    // CPU summed over replicas as a ratio (1.5 = 150 %: one and a half replicas' worth).
    let scale = |f: &crate::core::forecast::Forecast| match f.metric {
        MetricKind::Cpu => 0.01,
        _ => 1.0,
    };
    let load = f.and_then(|f| Some(f.peak_load? * scale(f)));
    Metrics::set_optional(&m.forecast_load, c, load);
    let sized = f.and_then(|f| f.replicas).map(|v| v as f64);
    Metrics::set_optional(&m.forecast_replicas, c, sized);
    let error = f.and_then(|f| f.accuracy).map(|a| a.error);
    Metrics::set_optional(&m.forecast_error_ratio, c, error);
    let horizon = f.map(|f| f.horizon_secs as f64);
    Metrics::set_optional(&m.forecast_horizon_seconds, c, horizon);
    let learned = f.map(|f| f64::from(u8::from(f.lead_learned)));
    Metrics::set_optional(&m.forecast_lead_time_learned, c, learned);
}

/// A decision in one line for the status page: `2 → 3 (scale out): cpu 82.1% > target 70% → 3`.
fn status_line(r: &TickReport) -> String {
    let d = &r.decision;
    let reasons: Vec<String> = d.reasons.iter().map(|x| x.to_string()).collect();
    let what = match d.direction {
        Direction::Out => "scale out",
        Direction::In => "scale in",
        Direction::None => "no change",
    };
    format!(
        "{} → {} ({what}): {}",
        d.current,
        d.desired,
        reasons.join("; ")
    )
}

/// What makes a decision worth an INFO line: its direction, counts, bounds, observe-only flag
/// and reason codes. Values inside the reason texts (the CPU moving by a percent, a cooldown
/// counting down) do not: a decision repeated unchanged tick after tick is logged once at INFO
/// and then at DEBUG.
pub fn decision_key(d: &Decision) -> String {
    let codes: Vec<&str> = d.reasons.iter().map(|r| r.code()).collect();
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        d.direction.as_str(),
        d.current,
        d.desired,
        d.min,
        d.max,
        d.primary_reason(),
        d.observe_only,
        codes.join(",")
    )
}

/// The master's tag holding the fencing counter of the lease of the copy acting on the cluster.
pub const TAG_LEASE: &str = "elasticrds:lease";

/// Whether this copy may act on `spec` this tick: its lease's counter is not below the one on
/// the master (else another copy took the lease over while this one was stalled: dropped). A
/// take-over writes its counter there first (not in a dry run or observe-only: `quiet`).
async fn fence(
    fleet: &dyn Fleet,
    keeper: &LeaseKeeper,
    spec: &ClusterSpec,
    view: &ClusterView,
    now: DateTime<Utc>,
    quiet: bool,
) -> bool {
    let Some(mine) = keeper.holds(&spec.name, now) else {
        return false;
    };
    let Some(master) = view.master.as_ref() else {
        return true;
    };
    let seen: u64 = (master.tags.get(TAG_LEASE))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if seen > mine {
        tracing::warn!(cluster = %spec.name, mine, seen, "lease taken over by another copy: not acting");
        keeper.lost(&spec.name);
        return false;
    }
    if seen < mine && !quiet {
        let tags = crate::core::domain::Tags::from([(TAG_LEASE.to_string(), mine.to_string())]);
        if let Err(e) = fleet.write_tags(&master.id, &tags).await {
            tracing::warn!(cluster = %spec.name, error = %e, "fencing counter not written: not acting");
            return false;
        }
    }
    true
}

/// Log the decision with its reasons — at INFO when `changed` (see [`decision_key`]), else at
/// DEBUG — and each action (always: an action is never a repeat).
fn log_report(r: &TickReport, changed: bool) {
    let d = &r.decision;
    let reasons: Vec<String> = d
        .reasons
        .iter()
        .map(|x| format!("{}: {x}", x.code()))
        .collect();
    macro_rules! decision_event {
        ($level:expr) => {
            tracing::event!(
                $level,
                cluster = %d.cluster,
                direction = d.direction.as_str(),
                current = d.current,
                desired = d.desired,
                min = d.min,
                max = d.max,
                reason = d.primary_reason(),
                reasons = %reasons.join("; "),
                observe_only = d.observe_only,
                cooldown_out_secs = d.cooldown_remaining_out.as_secs(),
                cooldown_in_secs = d.cooldown_remaining_in.as_secs(),
                "decision"
            )
        };
    }
    if changed {
        decision_event!(tracing::Level::INFO);
    } else {
        decision_event!(tracing::Level::DEBUG);
    }
    log_held(r, changed);
    for a in &r.actions {
        if a.outcome.is_failure() {
            tracing::warn!(
                cluster = %d.cluster,
                action = a.planned.action.kind(),
                instance = %a.planned.action.instance(),
                result = a.outcome.label(),
                error = ?a.error.as_ref().map(|e| e.to_string()),
                notes = %a.notes.join("; "),
                "action failed"
            );
        } else {
            tracing::info!(
                cluster = %d.cluster,
                action = a.planned.action.kind(),
                instance = %a.planned.action.instance(),
                result = a.outcome.label(),
                reason = %a.planned.reason,
                notes = %a.notes.join("; "),
                "action"
            );
        }
    }
}

/// The plan's actions an operator's pause holds, at the decision's level.
fn log_held(r: &TickReport, changed: bool) {
    for h in r.plan.iter().flat_map(|p| &p.held) {
        let pause = crate::text::pause_text(&h.pause);
        let (action, instance) = (h.action.kind(), h.action.instance());
        if changed {
            tracing::info!(cluster = %r.cluster, action, %instance, %pause, "action held");
        } else {
            tracing::debug!(cluster = %r.cluster, action, %instance, %pause, "action held");
        }
    }
}

/// A clock that follows tokio's time (so `#[tokio::test(start_paused = true)]` drives it),
/// optionally `factor` times faster for compressed-time simulations.
#[derive(Debug)]
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
    factor: f64,
}

impl TokioClock {
    pub fn new(base: DateTime<Utc>) -> Self {
        Self::scaled(base, 1.0)
    }
    /// `factor` simulated seconds per tokio second (must be positive).
    pub fn scaled(base: DateTime<Utc>, factor: f64) -> Self {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
            factor: if factor.is_finite() && factor > 0.0 {
                factor
            } else {
                1.0
            },
        }
    }
}

#[async_trait]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let real = self.start.elapsed().as_secs_f64() * self.factor;
        self.base + chrono::Duration::microseconds((real * 1e6) as i64)
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d.div_f64(self.factor)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_interval_and_is_capped() {
        let i = Duration::from_secs(60);
        let cap = Duration::from_secs(600);
        let d: Vec<u64> = (0..7).map(|f| backoff_delay(i, f, cap).as_secs()).collect();
        assert_eq!(d, vec![0, 60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff_delay(i, 1000, cap).as_secs(), 600);
    }
}
