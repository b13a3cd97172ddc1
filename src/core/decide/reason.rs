//! Why a decision came out as it did, as data: each [`Reason`] is a stable code and the ids
//! and numbers behind it. No words here: the text is made at the edges (`crate::text`), only
//! when a reason is shown (a year-long backtest makes none).

use super::Direction;
use crate::core::domain::{InstanceId, InstanceStatus, MetricKind};
use crate::core::pause::Pause;
use chrono::{DateTime, Utc};

/// The kind of rule a proposal came from (its reason code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleCode {
    TargetTracking,
    Threshold,
    WithinTolerance,
    Steady,
    /// The forecast's count (policy `predictive`, mode `active`).
    Forecast,
}

impl RuleCode {
    pub fn code(self) -> &'static str {
        match self {
            RuleCode::TargetTracking => "target_tracking",
            RuleCode::Threshold => "threshold",
            RuleCode::WithinTolerance => "within_tolerance",
            RuleCode::Steady => "steady",
            RuleCode::Forecast => "forecast",
        }
    }
}

/// A replica left out of the averages while it warms up.
#[derive(Debug, Clone, PartialEq)]
pub enum Warming {
    /// Available for `age_secs` of the `warm_secs` warm-up.
    Young {
        id: InstanceId,
        age_secs: u64,
        warm_secs: u64,
    },
    /// Its replica lag is above the warm-up bound (seconds).
    Lagging { id: InstanceId, bound: f64 },
}

/// One reason. Codes ([`Reason::code`]): `blocked_slots`, `schedule`, `master_serving`,
/// `warmup`, `target_tracking`, `threshold`, `within_tolerance`, `steady`, `clamped_max`,
/// `clamped_min`, `max_step`, and the holds `cooldown`, `stabilization`, `no_data`, `stale`,
/// `in_flight`, `paused`; plus `forecast` and `observe_only`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Configured ids held by instances that are not replicas of the master.
    BlockedSlots {
        ids: Vec<InstanceId>,
        usable: usize,
        total: usize,
    },
    /// Schedules in force and the bounds they give.
    Schedule {
        names: Vec<String>,
        min: usize,
        max: usize,
    },
    /// No replica is available: the master's metrics are used.
    MasterServing { master: InstanceId },
    /// Replicas left out of the averages, counted as capacity.
    Warmup { replicas: Vec<Warming> },
    /// A target-tracking rule's value is within its tolerance of the target.
    WithinTolerance {
        metric: MetricKind,
        value: f64,
        tolerance: f64,
        target: f64,
    },
    /// A target-tracking rule proposes `want`.
    TargetTracking {
        metric: MetricKind,
        value: f64,
        target: f64,
        want: usize,
    },
    /// A threshold rule's value is above its bound: `add` more, `want` in all (replicas in
    /// flight counted when `in_flight_counted`).
    ThresholdAbove {
        metric: MetricKind,
        value: f64,
        limit: f64,
        add: usize,
        want: usize,
        in_flight_counted: bool,
    },
    /// A threshold rule's value is below its bound: `remove` fewer, `want` in all.
    ThresholdBelow {
        metric: MetricKind,
        value: f64,
        limit: f64,
        remove: usize,
        want: usize,
    },
    /// A threshold rule's value is within its bounds (code `steady`).
    InRange {
        metric: MetricKind,
        value: f64,
        above: Option<f64>,
        below: Option<f64>,
    },
    /// No sample for an instance (a hold, unless acting on partial data).
    NoData { id: InstanceId, acting: bool },
    /// An instance's newest sample is `periods` periods old.
    Stale {
        id: InstanceId,
        newest: DateTime<Utc>,
        periods: i64,
        acting: bool,
    },
    /// Every serving replica is warming up (code `warmup`).
    AllWarming { acting: bool },
    /// No replica and no available master to read metrics from (code `no_data`).
    NoSource { acting: bool },
    /// The master does not exist (code `in_flight`).
    MasterMissing { id: InstanceId },
    /// The master is not available (code `in_flight`).
    MasterBusy {
        id: InstanceId,
        status: InstanceStatus,
    },
    /// A replica is being created, deleted or modified (code `in_flight`).
    ReplicaBusy {
        id: InstanceId,
        status: InstanceStatus,
    },
    /// Fewer replicas than the min (code `clamped_min`).
    BelowMin { current: usize, min: usize },
    /// More replicas than the max (code `clamped_max`).
    AboveMax { current: usize, max: usize },
    /// The rules' proposal clamped to the min.
    ClampedMin { min: usize },
    /// The rules' proposal clamped to the max.
    ClampedMax { max: usize },
    /// Raised to the min, the load needs more: going to `to` (code of the rule's kind).
    LoadNeeds {
        by: RuleCode,
        needs: usize,
        to: usize,
    },
    /// The direction is paused by the policy.
    Paused { direction: Direction },
    /// The direction is paused by an operator (`elasticrds pause`, a tag on the master); code
    /// `paused` too.
    OperatorPaused { pause: Pause },
    /// Held by the stabilization window: `value` is the lowest (scale-out) or highest
    /// (scale-in) recommendation in the last `window_secs`.
    Stabilization {
        direction: Direction,
        window_secs: u64,
        value: usize,
    },
    /// Held by the cooldown, `left_secs` left.
    Cooldown {
        direction: Direction,
        left_secs: u64,
    },
    /// Limited to `step` per action, to `to`.
    MaxStep {
        direction: Direction,
        step: usize,
        to: usize,
    },
    /// The forecast (policy `predictive`): the peak load expected within the horizon and
    /// the replicas it needs; `raised`: it raised the count (`active`) or would have
    /// (`forecast_only`).
    Forecast {
        forecaster: &'static str,
        active: bool,
        horizon_secs: u64,
        peak_load: f64,
        replicas: usize,
        raised: bool,
    },
    /// The forecast gave no count, and why.
    ForecastAbstains {
        forecaster: &'static str,
        why: crate::core::forecast::Abstain,
    },
    /// The policy observes only.
    ObserveOnly,
    /// The policy has no rules (code `steady`).
    NoRules,
}

impl Reason {
    /// The stable machine-readable code (also the metrics `reason` label).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::BlockedSlots { .. } => "blocked_slots",
            Reason::Schedule { .. } => "schedule",
            Reason::MasterServing { .. } => "master_serving",
            Reason::Warmup { .. } | Reason::AllWarming { .. } => "warmup",
            Reason::WithinTolerance { .. } => "within_tolerance",
            Reason::TargetTracking { .. } => "target_tracking",
            Reason::ThresholdAbove { .. } | Reason::ThresholdBelow { .. } => "threshold",
            Reason::InRange { .. } | Reason::NoRules => "steady",
            Reason::NoData { .. } | Reason::NoSource { .. } => "no_data",
            Reason::Stale { .. } => "stale",
            Reason::MasterMissing { .. }
            | Reason::MasterBusy { .. }
            | Reason::ReplicaBusy { .. } => "in_flight",
            Reason::BelowMin { .. } | Reason::ClampedMin { .. } => "clamped_min",
            Reason::AboveMax { .. } | Reason::ClampedMax { .. } => "clamped_max",
            Reason::LoadNeeds { by, .. } => by.code(),
            Reason::Paused { .. } | Reason::OperatorPaused { .. } => "paused",
            Reason::Stabilization { .. } => "stabilization",
            Reason::Cooldown { .. } => "cooldown",
            Reason::MaxStep { .. } => "max_step",
            Reason::Forecast { .. } | Reason::ForecastAbstains { .. } => "forecast",
            Reason::ObserveOnly => "observe_only",
        }
    }

    /// Whether this reason held the decision back (a hold, not an explanation).
    pub fn is_hold(&self) -> bool {
        match self {
            Reason::NoData { acting, .. }
            | Reason::Stale { acting, .. }
            | Reason::AllWarming { acting }
            | Reason::NoSource { acting } => !acting,
            Reason::MasterMissing { .. }
            | Reason::MasterBusy { .. }
            | Reason::ReplicaBusy { .. }
            | Reason::Paused { .. }
            | Reason::OperatorPaused { .. }
            | Reason::Stabilization { .. }
            | Reason::Cooldown { .. } => true,
            _ => false,
        }
    }

    /// A data hold turned into a note when the decision acts on partial data anyway.
    pub(super) fn acting_despite(self) -> Reason {
        match self {
            Reason::NoData { id, .. } => Reason::NoData { id, acting: true },
            Reason::Stale {
                id,
                newest,
                periods,
                ..
            } => Reason::Stale {
                id,
                newest,
                periods,
                acting: true,
            },
            Reason::AllWarming { .. } => Reason::AllWarming { acting: true },
            Reason::NoSource { .. } => Reason::NoSource { acting: true },
            other => other,
        }
    }
}
