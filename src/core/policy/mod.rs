//! Scaling policies: the model (one policy per file, naming its cluster), the built-in
//! default, and what a policy asks of a tick: the bounds in force, the metric queries and the
//! fetch window. Parsing and validation against the cluster config live in `parse`. Pure.
//! Every field, default and unit is documented in docs/policies.md.

mod parse;
mod predictive;
mod raw;

pub use predictive::{ForecasterKind, Predictive, PredictiveMode};

use super::config::ClusterSpec;
use super::domain::{MetricKind, MetricQuery, Statistic};
use super::plan::ClusterView;
use super::schedule::{Bounds, Schedule};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- defaults

pub const DEFAULT_PERIOD_SECS: u32 = 60;
/// Field defaults (issue-specified, for any field a policy file leaves out).
pub const DEFAULT_TOLERANCE: f64 = 0.10;
pub const DEFAULT_COOLDOWN_OUT_SECS: u64 = 300;
pub const DEFAULT_COOLDOWN_IN_SECS: u64 = 900;
pub const DEFAULT_STABILIZATION_OUT_SECS: u64 = 0;
pub const DEFAULT_STABILIZATION_IN_SECS: u64 = 600;
/// The default *policy* (a cluster without a policy file, and policies/cpu-target.yaml),
/// tuned by backtest on real traces under the honest fleet model (docs/backtest.md,
/// examples/tune_default.rs): CPU target tracking of the hottest replica at 70 % ±10 % with a
/// 20-minute scale-in stabilization window. Also the rule a policy file gets when it leaves out
/// `rules`.
pub const DEFAULT_POLICY_CPU_TARGET: f64 = 70.0;
pub const DEFAULT_POLICY_TOLERANCE: f64 = 0.10;
pub const DEFAULT_POLICY_AGGREGATION: Aggregation = Aggregation::Max;
pub const DEFAULT_POLICY_STABILIZATION_IN_SECS: u64 = 1200;
/// Longest cooldown or stabilization window a policy may set: a day.
pub const MAX_WINDOW_SECS: u64 = 86_400;
pub const DEFAULT_MAX_STEP_OUT: usize = 2;
pub const DEFAULT_MAX_STEP_IN: usize = 1;
pub const DEFAULT_STALE_PERIODS: u32 = 3;
pub const DEFAULT_WARMUP_SECS: u64 = 600;
/// Metrics published by RDS land about a minute after their period ends; the fetch window
/// ends this long before `now` (aligned down to the period).
pub const LANDING_DELAY_SECS: i64 = 60;

// ---------------------------------------------------------------- the model

/// How values of several replicas are combined into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    #[default]
    Average,
    Max,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Average => "average",
            Aggregation::Max => "max",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    /// desired = ceil(serving × value / target), unless |value/target − 1| ≤ tolerance.
    TargetTracking { target: f64, tolerance: f64 },
    /// value > above → current + add; value < below → current − remove; else current.
    Threshold {
        above: Option<f64>,
        add: usize,
        below: Option<f64>,
        remove: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub metric: MetricKind,
    pub statistic: Statistic,
    pub aggregation: Aggregation,
    #[serde(flatten)]
    pub kind: RuleKind,
}

/// Settings for one direction (scale-out or scale-in).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionSettings {
    /// `false` pauses this direction entirely (bounds corrections included).
    pub enabled: bool,
    pub cooldown_secs: u64,
    pub stabilization_secs: u64,
    pub max_step: usize,
    /// Scale-out only: whether a scale-out may be decided while replicas are still being
    /// created, deleted or modified (their capacity is already counted). Scale-in never is.
    pub while_in_flight: bool,
}

/// What a scale-out does when some metric data is missing or stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingScaleOut {
    /// Hold: no scale-out on incomplete data (the default).
    Hold,
    /// Act on the metrics that are present.
    Act,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingData {
    /// A replica's data is stale when its newest sample starts this many periods or more
    /// before the end of the fetch window.
    pub stale_periods: u32,
    pub scale_out: MissingScaleOut,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warmup {
    /// A replica available for less than this is left out of averages.
    pub duration_secs: u64,
    /// A replica whose replica lag exceeds this (seconds) is left out of cpu/connections
    /// averages. `None`: lag does not matter for warm-up.
    pub max_lag_secs: Option<f64>,
}

/// A validated scaling policy for one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub cluster: String,
    pub min_replicas: usize,
    pub max_replicas: usize,
    /// CloudWatch period of every metric, seconds.
    pub period_secs: u32,
    pub rules: Vec<Rule>,
    pub scale_out: DirectionSettings,
    pub scale_in: DirectionSettings,
    pub missing_data: MissingData,
    pub warmup: Warmup,
    pub schedules: Vec<Schedule>,
    pub observe_only: bool,
    /// Predictive pre-scaling (`predictive`); `None`: reactive only.
    pub predictive: Option<Predictive>,
}

fn default_rules() -> Vec<Rule> {
    vec![Rule {
        metric: MetricKind::Cpu,
        statistic: Statistic::Average,
        aggregation: DEFAULT_POLICY_AGGREGATION,
        kind: RuleKind::TargetTracking {
            target: DEFAULT_POLICY_CPU_TARGET,
            tolerance: DEFAULT_POLICY_TOLERANCE,
        },
    }]
}

impl Policy {
    /// The built-in default for a cluster (the same as policies/cpu-target.yaml): cpu target
    /// tracking of the hottest replica at 70 % ±10 %, min 1 (0 when the cluster lists no replica),
    /// max = the replica list.
    pub fn default_for(cluster: &ClusterSpec) -> Policy {
        let mut p = Policy::base_for(cluster);
        p.scale_in.stabilization_secs = DEFAULT_POLICY_STABILIZATION_IN_SECS;
        p
    }

    /// What a policy file starts from before its fields apply: every field default, the
    /// default policy's rule, min 1, max = the replica list.
    fn base_for(cluster: &ClusterSpec) -> Policy {
        let n = cluster.replicas.len();
        Policy {
            cluster: cluster.name.to_string(),
            min_replicas: 1.min(n),
            max_replicas: n,
            period_secs: DEFAULT_PERIOD_SECS,
            rules: default_rules(),
            scale_out: DirectionSettings {
                enabled: true,
                cooldown_secs: DEFAULT_COOLDOWN_OUT_SECS,
                stabilization_secs: DEFAULT_STABILIZATION_OUT_SECS,
                max_step: DEFAULT_MAX_STEP_OUT,
                while_in_flight: true,
            },
            scale_in: DirectionSettings {
                enabled: true,
                cooldown_secs: DEFAULT_COOLDOWN_IN_SECS,
                stabilization_secs: DEFAULT_STABILIZATION_IN_SECS,
                max_step: DEFAULT_MAX_STEP_IN,
                while_in_flight: false,
            },
            missing_data: MissingData {
                stale_periods: DEFAULT_STALE_PERIODS,
                scale_out: MissingScaleOut::Hold,
            },
            warmup: Warmup {
                duration_secs: DEFAULT_WARMUP_SECS,
                max_lag_secs: None,
            },
            schedules: Vec::new(),
            observe_only: false,
            predictive: None,
        }
    }

    /// Bounds (schedules applied, capped by the replica list) in force at `now`.
    pub fn bounds_at(&self, spec: &ClusterSpec, now: DateTime<Utc>) -> Bounds {
        Bounds::combine(
            self.min_replicas,
            self.max_replicas,
            spec.replicas.len(),
            &self.schedules,
            now,
        )
    }

    /// [`Policy::bounds_at`] for an observed cluster: capped by the slots of the replica list
    /// that are usable (slots held by instances that are not replicas of the master are not).
    pub fn bounds_in(&self, spec: &ClusterSpec, view: &ClusterView, now: DateTime<Utc>) -> Bounds {
        Bounds::combine(
            self.min_replicas,
            self.max_replicas,
            view.usable_slots().count().min(spec.replicas.len()),
            &self.schedules,
            now,
        )
    }

    /// The metrics the rules read, with their statistic, deduplicated, plus the replica lag
    /// (Maximum) the warm-up check needs when `warmup.max_lag` is set, and the forecast's
    /// metric (Average) when `predictive` is set.
    pub fn metrics_used(&self) -> impl Iterator<Item = (MetricKind, Statistic)> + '_ {
        fn pair(r: &Rule) -> (MetricKind, Statistic) {
            (r.metric, r.statistic)
        }
        let rules = (self.rules.iter().enumerate())
            .filter(|(i, r)| !self.rules[..*i].iter().any(|p| pair(p) == pair(r)))
            .map(move |(_, r)| pair(r));
        let lag = self.warmup.max_lag_secs.is_some()
            && !self
                .rules
                .iter()
                .any(|r| r.metric == MetricKind::ReplicaLag);
        // The forecast keeps its history current with the tick's own observation.
        let predictive = self
            .predictive
            .as_ref()
            .map(|p| (p.metric, Statistic::Average));
        let forecast = predictive.filter(|m| !self.rules.iter().any(|r| pair(r) == *m));
        rules
            .chain(lag.then_some((MetricKind::ReplicaLag, Statistic::Maximum)))
            .chain(forecast)
    }

    /// Metric queries needed for this cluster now: every configured replica that exists and is
    /// not being deleted × every metric used; plus the master when no replica is available
    /// (the master then serves the reads, and its load is what a scale-out from zero needs).
    pub fn queries(&self, spec: &ClusterSpec, view: &ClusterView) -> Vec<MetricQuery> {
        let mut out = Vec::with_capacity((spec.replicas.len() + 1) * (self.rules.len() + 1));
        for id in view.metric_instances(spec) {
            for (metric, statistic) in self.metrics_used() {
                out.push(MetricQuery {
                    instance: id.clone(),
                    metric,
                    statistic,
                    period_secs: self.period_secs,
                });
            }
        }
        out
    }

    /// The `[start, end)` window of period starts to fetch at `now`: `end` is `now` minus the
    /// landing delay (60 s), aligned down to the period, so the period in progress and a
    /// just-finished one whose datapoint may not have landed are excluded; `start` lies
    /// `max(2 × stale_after_periods, 5)` periods before `end`, enough to tell stale from absent.
    pub fn fetch_window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let (p, end_s) = self.fetch_end_secs(now);
        let n = i64::from((self.missing_data.stale_periods * 2).max(5));
        (at_second(end_s - n * p, now), at_second(end_s, now))
    }

    /// The end of [`Policy::fetch_window`] alone.
    pub fn fetch_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        at_second(self.fetch_end_secs(now).1, now)
    }

    /// The period and the window's end, in Unix seconds.
    fn fetch_end_secs(&self, now: DateTime<Utc>) -> (i64, i64) {
        let p = i64::from(self.period_secs.max(1));
        let t = now.timestamp() - LANDING_DELAY_SECS;
        (p, t.div_euclid(p) * p)
    }

    /// How long the decision core needs recommendation history for stabilization.
    pub fn history_secs(&self) -> u64 {
        self.scale_in
            .stabilization_secs
            .max(self.scale_out.stabilization_secs)
    }
}

/// Unix second `ts` as a time (whole seconds: the sub-second part of `now` dropped); `now`
/// out of range.
fn at_second(ts: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{InstanceClass, InstanceId};

    /// `fetch_window` as first written: both ends worked out from Unix seconds.
    fn fetch_window_reference(p: &Policy, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let period = i64::from(p.period_secs.max(1));
        let t = now.timestamp() - LANDING_DELAY_SECS;
        let end_s = t.div_euclid(period) * period;
        let n = i64::from((p.missing_data.stale_periods * 2).max(5));
        let end = DateTime::from_timestamp(end_s, 0).unwrap_or(now);
        let start = DateTime::from_timestamp(end_s - n * period, 0).unwrap_or(now);
        (start, end)
    }

    #[test]
    fn fetch_window_is_the_window_worked_out_from_seconds() {
        let base = Policy::default_for(&ClusterSpec {
            name: "c".into(),
            master: crate::core::config::MasterSpec {
                snapshot: String::new(),
                id: InstanceId::from_aws("m"),
                class: InstanceClass::from_aws("db.t3.micro"),
                multi_az: false,
                subnet_group: None,
            },
            replicas: Vec::new(),
            haproxy: None,
            template: Default::default(),
            rules: Default::default(),
            target: Default::default(),
        });
        let mut nows: Vec<DateTime<Utc>> = Vec::new();
        // Around midnights, a year end, a leap day, before 1970, with sub-second parts, and
        // at both ends of the representable range.
        for anchor in [
            0i64,
            1_704_067_200,
            1_709_164_800,
            -86_400 * 400,
            1_798_761_600,
        ] {
            for off in (-7_300..7_300).step_by(37) {
                for nanos in [0, 1, 999_999_999, 500_000_000, 1_500_000_000] {
                    if let Some(t) = DateTime::from_timestamp(anchor + off, nanos) {
                        nows.push(t);
                    }
                }
            }
        }
        nows.extend([DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC]);
        nows.push(DateTime::<Utc>::MIN_UTC + chrono::Duration::seconds(90));
        for (period, stale) in [(60, 3), (300, 3), (60, 1), (3600, 10), (1, 2), (86_400, 4)] {
            let mut p = base.clone();
            p.period_secs = period;
            p.missing_data.stale_periods = stale;
            for &now in &nows {
                let want = fetch_window_reference(&p, now);
                assert_eq!(p.fetch_window(now), want, "{now:?} {period} {stale}");
                assert_eq!(p.fetch_end(now), want.1, "{now:?} {period} {stale}");
            }
        }
    }
}
