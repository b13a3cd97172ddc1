//! The pure decision core: (policy, cluster spec, observed fleet, metric samples, remembered
//! scale state, now) → a [`Decision`]: desired replica count, direction, the bounds in force,
//! and the reasons as data ([`Reason`]: a code and its numbers; words are made at the edges,
//! in `crate::text`). No I/O; time only as `now`. The daemon, `elasticrds plan` and the
//! backtest all call [`decide`]; [`ScaleState`] is the state they carry between ticks
//! (persisted as tags on the master by the daemon).
//!
//! Order of evaluation (documented in docs/policies.md), one file per step:
//! 1. bounds in force (policy min/max, overridden by active schedules, capped by the list);
//! 2. serving set (`serving`): available replicas; warm ones (available ≥ warm-up, lag ≤
//!    bound) feed the averages; when no replica is available the master's metrics stand in;
//! 3. rules (`rules`): each proposes a replica count; the largest proposal wins (scale out
//!    if any rule says so, scale in only if all agree);
//! 4. settling (`holds`): bounds corrections (below min / above max) bypass cooldown,
//!    stabilization and max step; otherwise the holds — paused direction, action in flight,
//!    missing/stale/warming data, stabilization window, cooldown — then the max step per
//!    action, the same steps for both directions.

mod forecast;
mod holds;
mod reason;
mod rules;
mod serving;
mod state;
#[cfg(test)]
mod tests;

pub use forecast::ForecastReport;
pub use reason::{Reason, RuleCode, Warming};
pub use state::{
    LastDecision, PersistedState, ScaleState, StateKeys, STATE_REFRESH_SECS, STATE_TAG_KEYS,
    TAG_LAST_DECISION, TAG_LAST_SCALE_IN, TAG_LAST_SCALE_OUT, TAG_RECENT_HIGH, TAG_RECENT_LOW,
};

use super::config::ClusterSpec;
use super::domain::{MetricKind, MetricSeries, Statistic};
use super::forecast::{Abstain, Forecast};
use super::pause::Pauses;
use super::plan::{ClusterView, Target};
use super::policy::{Aggregation, Policy};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Out,
    In,
    None,
}

impl Direction {
    /// The direction of a change from `current` to `desired` replicas.
    pub fn from_to(current: usize, desired: usize) -> Direction {
        match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Out,
            std::cmp::Ordering::Less => Direction::In,
            std::cmp::Ordering::Equal => Direction::None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::None => "none",
        }
    }
}

/// What one rule saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observed {
    pub metric: MetricKind,
    pub statistic: Statistic,
    pub aggregation: Aggregation,
    /// Aggregated value over the instances that had fresh data; `None` when none had.
    pub value: Option<f64>,
    /// Target-tracking target, or the threshold rule's `above` (else `below`).
    pub target: Option<f64>,
    /// How many instances the value was aggregated over.
    pub instances: usize,
    /// The count this rule proposed, when it had a value.
    pub proposal: Option<usize>,
}

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub cluster: Arc<str>,
    pub at: DateTime<Utc>,
    /// Configured replicas that exist and are not being deleted.
    pub current: usize,
    pub desired: usize,
    pub direction: Direction,
    /// Bounds in force at `at` (schedules applied, capped by the replica list).
    pub min: usize,
    pub max: usize,
    /// Schedules in force at `at`.
    pub schedules: Vec<String>,
    /// The primary reason code (also the metrics `reason` label).
    #[serde(rename = "reason")]
    pub primary: &'static str,
    /// Serialized as `{code, text}` by `crate::text`.
    pub reasons: Vec<Reason>,
    pub observed: Vec<Observed>,
    /// The rules' combined recommendation clamped to the bounds, before holds, stabilization
    /// and max step; `None` when data was incomplete. Fed back through [`ScaleState::record`].
    pub recommendation: Option<usize>,
    #[serde(rename = "cooldown_remaining_out_secs", serialize_with = "ser_secs")]
    pub cooldown_remaining_out: Duration,
    #[serde(rename = "cooldown_remaining_in_secs", serialize_with = "ser_secs")]
    pub cooldown_remaining_in: Duration,
    /// When true, nothing may be changed: callers log and export, and never execute.
    pub observe_only: bool,
    /// What to hand to the reconciler: replicas = desired, class overrides from schedules.
    pub target: Target,
    /// How long recommendations are kept for stabilization (from the policy).
    #[serde(skip)]
    pub history_secs: u64,
    /// What the forecast found and changed (policies with a `predictive` section). Boxed:
    /// most policies have none, and the decision is handed through the tick by value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<Box<ForecastReport>>,
    /// The operator's pauses written on the master, in force or expired (`elasticrds pause`).
    #[serde(skip_serializing_if = "Pauses::is_empty")]
    pub pauses: Pauses,
}

impl Decision {
    /// The code used as the metrics `reason` label.
    pub fn primary_reason(&self) -> &str {
        self.primary
    }
    /// True when the decision asks for a different replica count and is not observe-only.
    pub fn should_scale(&self) -> bool {
        !self.observe_only && self.direction != Direction::None
    }
}

/// Decide the replica count for one cluster. Pure and deterministic.
pub fn decide(
    policy: &Policy,
    spec: &ClusterSpec,
    view: &ClusterView,
    metrics: &[MetricSeries],
    state: &ScaleState,
    now: DateTime<Utc>,
) -> Decision {
    decide_with_forecast(policy, spec, view, metrics, state, None, now)
}

/// [`decide`] with the forecast step's outcome (policies with a `predictive` section; `None`
/// otherwise): the rules' count and the forecast's combine as their maximum (`active`), or
/// the forecast is only reported (`forecast_only`).
pub fn decide_with_forecast(
    policy: &Policy,
    spec: &ClusterSpec,
    view: &ClusterView,
    metrics: &[MetricSeries],
    state: &ScaleState,
    forecast: Option<&Forecast>,
    now: DateTime<Utc>,
) -> Decision {
    let bounds = policy.bounds_in(spec, view, now);
    let (min, max) = (bounds.min, bounds.max);
    let current = view.replica_count();
    // The reasons in order: the cluster's context, the serving set, the rules, the forecast,
    // the settling.
    let mut reasons = context(spec, view, &bounds.schedules, min, max, policy.rules.len());
    let (cooldown_out, cooldown_in) = holds::cooldowns(policy, state, now);
    let pauses = view.pauses.clone();

    let window = serving::Window::of(policy, now);
    let mut serving = serving::Serving::of(policy, view, metrics, &window, now);
    reasons.append(&mut serving.reasons);
    let rules = rules::evaluate(policy, &serving, metrics, &window, current, &mut reasons);
    let reactive = rules.usable(policy, current);
    let flight = holds::in_flight(spec, view);
    let data_holds = holds::data_holds(policy, &serving, &rules, &window);
    let settle = |best: Option<(usize, RuleCode)>| {
        holds::settle(holds::Situation {
            policy,
            state,
            now,
            current,
            min,
            max,
            best,
            complete: rules.complete,
            master_ok: view
                .master
                .as_ref()
                .is_some_and(|m| m.status.is_available()),
            replicas_busy: view.existing_replicas().any(|i| i.status.is_busy()),
            flight: flight.clone(),
            data_holds: data_holds.clone(),
            cooldown_out,
            cooldown_in,
            pauses: &pauses,
        })
    };
    let forecast = forecast.filter(|_| policy.predictive.is_some());
    let (best, settled, report) = match forecast {
        None => (reactive, settle(reactive), None),
        Some(f) => {
            let with_best = forecast::combine(reactive, f);
            let (with, without) = (settle(with_best), settle(reactive));
            let report = ForecastReport {
                forecast: f.clone(),
                reactive: reactive.map(|(r, _)| r),
                desired_with: with.desired,
                desired_without: without.desired,
            };
            reasons.push(forecast_reason(&report));
            if f.active {
                (with_best, with, Some(report))
            } else {
                (reactive, without, Some(report))
            }
        }
    };

    let desired = settled.desired;
    let primary = settled.holds.first().map_or(settled.driver, Reason::code);
    reasons.extend(settled.reasons);
    reasons.extend(settled.holds);
    if policy.observe_only {
        reasons.push(Reason::ObserveOnly);
    }
    if policy.rules.is_empty() && reasons.is_empty() {
        reasons.push(Reason::NoRules);
    }
    let direction = Direction::from_to(current, desired);
    let recommendation = best
        .filter(|_| rules.complete)
        .map(|(r, _)| r.clamp(min, max));
    Decision {
        cluster: spec.name.clone(),
        at: now,
        current,
        desired,
        direction,
        min,
        max,
        schedules: bounds.schedules,
        primary,
        reasons,
        observed: rules.observed,
        recommendation,
        cooldown_remaining_out: cooldown_out,
        cooldown_remaining_in: cooldown_in,
        observe_only: policy.observe_only,
        target: Target {
            replicas: desired,
            replica_class: bounds.replica_class,
            master_class: bounds.master_class,
        },
        history_secs: policy.history_secs(),
        forecast: report.map(Box::new),
        pauses,
    }
}

/// The forecast's reason: its count, or why it abstained.
fn forecast_reason(r: &ForecastReport) -> Reason {
    let f = &r.forecast;
    match (f.peak_load, f.replicas, f.abstain) {
        (Some(peak_load), Some(replicas), None) => Reason::Forecast {
            forecaster: f.forecaster,
            active: f.active,
            horizon_secs: f.horizon_secs,
            peak_load,
            replicas,
            raised: r.raised(),
        },
        (_, _, why) => Reason::ForecastAbstains {
            forecaster: f.forecaster,
            why: why.unwrap_or(Abstain::NoPrediction),
        },
    }
}

/// The reasons that describe the cluster before any rule: blocked slots, schedules in force.
fn context(
    spec: &ClusterSpec,
    view: &ClusterView,
    schedules: &[String],
    min: usize,
    max: usize,
    rules: usize,
) -> Vec<Reason> {
    // Room for every reason a decision usually gives: one per rule and a few more.
    let mut reasons = Vec::with_capacity(rules + 4);
    if !view.conflicts.is_empty() {
        reasons.push(Reason::BlockedSlots {
            ids: view
                .conflicts
                .iter()
                .map(|c| c.instance.id.clone())
                .collect(),
            usable: spec.replicas.len().saturating_sub(view.conflicts.len()),
            total: spec.replicas.len(),
        });
    }
    if !schedules.is_empty() {
        reasons.push(Reason::Schedule {
            names: schedules.to_vec(),
            min,
            max,
        });
    }
    reasons
}
