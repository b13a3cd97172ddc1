//! Scaling policies: the YAML model (one policy per file, naming its cluster), parsing with
//! located errors through `core::input::parse_document`, semantic validation against the
//! cluster config, the built-in default, and the metric queries / fetch window a policy needs.
//! Pure. Every field, default and unit is documented in docs/policies.md.

use super::config::{ClusterSpec, Config};
use super::domain::{InstanceClass, InstanceId, MetricKind, MetricQuery, Statistic};
use super::input::{locate, parse_document, InputError, InputErrors, Syntax};
use super::plan::ClusterView;
use super::schedule::{parse_cron, parse_timezone, Bounds, Schedule};
use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

// ---------------------------------------------------------------- defaults

pub const DEFAULT_PERIOD_SECS: u32 = 60;
/// Field defaults (issue-specified, for any field a policy file leaves out).
pub const DEFAULT_TOLERANCE: f64 = 0.10;
pub const DEFAULT_COOLDOWN_OUT_SECS: u64 = 300;
pub const DEFAULT_COOLDOWN_IN_SECS: u64 = 900;
pub const DEFAULT_STABILIZATION_OUT_SECS: u64 = 0;
pub const DEFAULT_STABILIZATION_IN_SECS: u64 = 600;
/// The default *policy* (a cluster without a policy file, and policies/cpu-target.yaml),
/// tuned by backtest on real traces (docs/backtest.md): CPU target tracking at 66 % ±15 %
/// with a 20-minute scale-in stabilization window. Also the rule a policy file gets when it
/// leaves out `rules`.
pub const DEFAULT_POLICY_CPU_TARGET: f64 = 66.0;
pub const DEFAULT_POLICY_TOLERANCE: f64 = 0.15;
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
}

// ---------------------------------------------------------------- raw, as written

/// A duration: an integer number of seconds, or a humantime string such as `5m`, `90s`, `9h`.
#[derive(Debug, Clone, Copy)]
struct Dur(u64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds, or a string such as \"90s\", \"5m\", \"9h\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(Dur)
                    .map_err(|_| E::custom(format!("duration {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                if let Ok(n) = v.trim().parse::<u64>() {
                    return Ok(Dur(n));
                }
                humantime::parse_duration(v.trim())
                    .map(|d| Dur(d.as_secs()))
                    .map_err(|e| E::custom(format!("{v:?} is not a duration: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    cluster: String,
    #[serde(default)]
    min_replicas: Option<usize>,
    #[serde(default)]
    max_replicas: Option<usize>,
    #[serde(default)]
    period: Option<Dur>,
    #[serde(default)]
    observe_only: bool,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    scale_out: Option<RawDirection>,
    #[serde(default)]
    scale_in: Option<RawDirection>,
    #[serde(default)]
    missing_data: Option<RawMissing>,
    #[serde(default)]
    warmup: Option<RawWarmup>,
    #[serde(default)]
    schedules: Vec<RawSchedule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    metric: String,
    #[serde(default)]
    statistic: Option<String>,
    #[serde(default)]
    aggregation: Option<String>,
    #[serde(default)]
    target: Option<f64>,
    #[serde(default)]
    tolerance: Option<f64>,
    #[serde(default)]
    above: Option<f64>,
    #[serde(default)]
    add: Option<usize>,
    #[serde(default)]
    below: Option<f64>,
    #[serde(default)]
    remove: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDirection {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    cooldown: Option<Dur>,
    #[serde(default)]
    stabilization: Option<Dur>,
    #[serde(default)]
    max_step: Option<usize>,
    #[serde(default)]
    while_in_flight: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMissing {
    #[serde(default)]
    stale_after_periods: Option<u32>,
    #[serde(default)]
    scale_out: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWarmup {
    #[serde(default)]
    duration: Option<Dur>,
    #[serde(default)]
    max_lag: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(default)]
    name: Option<String>,
    cron: String,
    #[serde(default)]
    timezone: Option<String>,
    duration: Dur,
    #[serde(default)]
    min_replicas: Option<usize>,
    #[serde(default)]
    max_replicas: Option<usize>,
    #[serde(default)]
    replica_class: Option<String>,
    #[serde(default)]
    master_class: Option<String>,
}

// ---------------------------------------------------------------- parsing and validation

struct Errs<'a> {
    file: &'a str,
    text: &'a str,
    syntax: Syntax,
    list: Vec<InputError>,
}

impl Errs<'_> {
    /// A problem with `field`, located at its key.
    fn push(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        let field = field.into();
        let pos = locate(self.text, self.syntax, &field).map(|l| l.key);
        self.list
            .push(InputError::new(self.file, field, msg).at(pos));
    }
}

fn metric_of(s: &str) -> Option<MetricKind> {
    match s {
        "cpu" => Some(MetricKind::Cpu),
        "connections" => Some(MetricKind::Connections),
        "replica_lag" => Some(MetricKind::ReplicaLag),
        _ => None,
    }
}

fn default_rules() -> Vec<Rule> {
    vec![Rule {
        metric: MetricKind::Cpu,
        statistic: Statistic::Average,
        aggregation: Aggregation::Average,
        kind: RuleKind::TargetTracking {
            target: DEFAULT_POLICY_CPU_TARGET,
            tolerance: DEFAULT_POLICY_TOLERANCE,
        },
    }]
}

impl Policy {
    /// The built-in default for a cluster (the same as policies/cpu-target.yaml): cpu target
    /// tracking at 66 % ±15 %, min 1 (0 when the cluster lists no replica), max = the replica list.
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
            cluster: cluster.name.clone(),
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
        }
    }

    /// Parse and validate a policy document against the cluster config. `file` names it in
    /// errors; every problem found is reported, each with its position and field.
    pub fn parse(file: &str, text: &str, config: &Config) -> Result<Policy, InputErrors> {
        let syntax = Syntax::detect(file, text);
        let raw: RawPolicy = parse_document(file, text, syntax)?;
        Policy::from_raw(file, text, syntax, raw, config)
    }

    /// Parse a *default* policy (`run --default-policy FILE`) for `cluster`: the same document
    /// and checks as [`Policy::parse`], except that it names no cluster (`cluster: "*"`) and
    /// is validated against `cluster`'s replica list.
    pub fn parse_default(
        file: &str,
        text: &str,
        config: &Config,
        cluster: &str,
    ) -> Result<Policy, InputErrors> {
        let syntax = Syntax::detect(file, text);
        let mut raw: RawPolicy = parse_document(file, text, syntax)?;
        if raw.cluster != "*" {
            return Err(InputErrors(vec![InputError::new(
                file,
                "cluster",
                format!(
                    "a default policy governs every cluster no policy file names: write cluster: \"*\", not {:?}",
                    raw.cluster
                ),
            )
            .at(locate(text, syntax, "cluster").map(|l| l.key))]));
        }
        raw.cluster = cluster.to_string();
        Policy::from_raw(file, text, syntax, raw, config)
    }

    fn from_raw(
        file: &str,
        text: &str,
        syntax: Syntax,
        raw: RawPolicy,
        config: &Config,
    ) -> Result<Policy, InputErrors> {
        let mut e = Errs {
            file,
            text,
            syntax,
            list: Vec::new(),
        };
        let spec = config.cluster(&raw.cluster);
        if spec.is_none() {
            let known: Vec<&str> = config.clusters.keys().map(String::as_str).collect();
            e.push(
                "cluster",
                format!(
                    "unknown cluster {:?}: not in the cluster config (known: {})",
                    raw.cluster,
                    known.join(", ")
                ),
            );
        }
        let cap = spec.map(|s| s.replicas.len());
        let mut p = match spec {
            Some(s) => Policy::base_for(s),
            None => {
                let mut p = Policy::base_for(&ClusterSpec {
                    name: raw.cluster.clone(),
                    master: crate::core::config::MasterSpec {
                        snapshot: String::new(),
                        id: InstanceId::from_aws("unknown"),
                        class: InstanceClass::from_aws("db.unknown.unknown"),
                        multi_az: false,
                        subnet_group: None,
                    },
                    replicas: Vec::new(),
                    haproxy: None,
                });
                p.min_replicas = 0;
                p.max_replicas = usize::MAX;
                p
            }
        };
        p.observe_only = raw.observe_only;
        if let Some(m) = raw.max_replicas {
            if let Some(cap) = cap {
                if m > cap {
                    e.push(
                        "max_replicas",
                        format!(
                            "{m} is beyond the cluster's replica list ({cap} configured in {})",
                            raw.cluster
                        ),
                    );
                }
            }
            p.max_replicas = m;
        }
        if let Some(m) = raw.min_replicas {
            p.min_replicas = m;
        }
        if p.min_replicas > p.max_replicas {
            e.push(
                "min_replicas",
                format!(
                    "min_replicas {} is greater than max_replicas {}",
                    p.min_replicas, p.max_replicas
                ),
            );
        }
        if let Some(Dur(s)) = raw.period {
            if s < 60 || s % 60 != 0 || s > 86_400 {
                e.push(
                    "period",
                    format!("{s}s: CloudWatch RDS periods are a multiple of 60 s (60 s to 1 day)"),
                );
            } else {
                p.period_secs = s as u32;
            }
        }

        // rules
        if let Some(rules) = &raw.rules {
            if rules.is_empty() {
                e.push("rules", "is empty: give at least one rule, or leave it out for the default (cpu target 66 %)");
            }
            p.rules = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                if let Some(rule) = check_rule(r, &format!("rules[{i}]"), &mut e) {
                    p.rules.push(rule);
                }
            }
        }

        // directions
        let dir = |raw: &Option<RawDirection>,
                   name: &str,
                   base: &DirectionSettings,
                   e: &mut Errs|
         -> DirectionSettings {
            let Some(r) = raw else { return base.clone() };
            let mut d = base.clone();
            if let Some(v) = r.enabled {
                d.enabled = v;
            }
            if let Some(Dur(v)) = r.cooldown {
                if v > MAX_WINDOW_SECS {
                    e.push(format!("{name}.cooldown"), "is longer than a day");
                }
                d.cooldown_secs = v.min(MAX_WINDOW_SECS);
            }
            if let Some(Dur(v)) = r.stabilization {
                if v > MAX_WINDOW_SECS {
                    e.push(format!("{name}.stabilization"), "is longer than a day");
                }
                d.stabilization_secs = v.min(MAX_WINDOW_SECS);
            }
            if let Some(v) = r.max_step {
                if v == 0 {
                    e.push(
                        format!("{name}.max_step"),
                        "must be at least 1 (use enabled: false to pause this direction)",
                    );
                }
                d.max_step = v.max(1);
            }
            if let Some(v) = r.while_in_flight {
                if name == "scale_in" {
                    e.push(
                        format!("{name}.while_in_flight"),
                        "only applies to scale_out: a scale-in never stacks on an action in flight",
                    );
                } else {
                    d.while_in_flight = v;
                }
            }
            d
        };
        p.scale_out = dir(&raw.scale_out, "scale_out", &p.scale_out, &mut e);
        p.scale_in = dir(&raw.scale_in, "scale_in", &p.scale_in, &mut e);

        if let Some(m) = &raw.missing_data {
            if let Some(n) = m.stale_after_periods {
                if n == 0 {
                    e.push("missing_data.stale_after_periods", "must be at least 1");
                } else {
                    p.missing_data.stale_periods = n.min(1440);
                }
            }
            match m.scale_out.as_deref() {
                None | Some("hold") => {}
                Some("act") => p.missing_data.scale_out = MissingScaleOut::Act,
                Some(other) => e.push(
                    "missing_data.scale_out",
                    format!("{other:?} is not one of hold, act"),
                ),
            }
        }
        if let Some(w) = &raw.warmup {
            if let Some(Dur(v)) = w.duration {
                p.warmup.duration_secs = v;
            }
            if let Some(Dur(v)) = w.max_lag {
                p.warmup.max_lag_secs = Some(v as f64);
            }
        }

        // schedules
        for (i, s) in raw.schedules.iter().enumerate() {
            let f = format!("schedules[{i}]");
            let cron = parse_cron(&s.cron);
            if let Err(m) = &cron {
                e.push(format!("{f}.cron"), m.clone());
            }
            let tz = parse_timezone(s.timezone.as_deref().unwrap_or("UTC"));
            if let Err(m) = &tz {
                e.push(format!("{f}.timezone"), m.clone());
            }
            if s.duration.0 == 0 {
                e.push(format!("{f}.duration"), "must be longer than 0 s");
            }
            if s.duration.0 > 366 * 86_400 {
                e.push(format!("{f}.duration"), "is longer than a year");
            }
            if s.min_replicas.is_none()
                && s.max_replicas.is_none()
                && s.replica_class.is_none()
                && s.master_class.is_none()
            {
                e.push(
                    f.clone(),
                    "overrides nothing: set min_replicas, max_replicas, replica_class or master_class",
                );
            }
            if let Some(m) = s.max_replicas {
                if let Some(cap) = cap {
                    if m > cap {
                        e.push(
                            format!("{f}.max_replicas"),
                            format!("{m} is beyond the cluster's replica list ({cap} configured)"),
                        );
                    }
                }
            }
            let eff_max = s.max_replicas.unwrap_or(p.max_replicas);
            if let Some(m) = s.min_replicas {
                if m > eff_max {
                    e.push(
                        format!("{f}.min_replicas"),
                        format!(
                            "min_replicas {m} is greater than {} {eff_max}",
                            if s.max_replicas.is_some() {
                                "this schedule's max_replicas"
                            } else {
                                "the policy's max_replicas"
                            }
                        ),
                    );
                }
            }
            let class = |v: &Option<String>, name: &str, e: &mut Errs| {
                v.as_ref().and_then(|c| match InstanceClass::parse(c) {
                    Ok(c) => Some(c),
                    Err(m) => {
                        e.push(format!("{f}.{name}"), m);
                        None
                    }
                })
            };
            let rc = class(&s.replica_class, "replica_class", &mut e);
            let mc = class(&s.master_class, "master_class", &mut e);
            if let (Ok(_), Ok(tz)) = (cron, tz) {
                let name = s
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("schedule {}", i + 1));
                match Schedule::new(
                    name,
                    &s.cron,
                    tz,
                    s.duration.0,
                    s.min_replicas,
                    s.max_replicas,
                    rc,
                    mc,
                ) {
                    Ok(s) => p.schedules.push(s),
                    Err(m) => e.push(format!("{f}.cron"), m),
                }
            }
        }

        if e.list.is_empty() {
            Ok(p)
        } else {
            Err(InputErrors(e.list))
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
    /// (Maximum) the warm-up check needs when `warmup.max_lag` is set.
    pub fn metrics_used(&self) -> Vec<(MetricKind, Statistic)> {
        let (pairs, n) = self.metrics_used_inline();
        pairs[..n].to_vec()
    }

    /// [`Policy::metrics_used`] without an allocation (every tick asks): the pairs in the
    /// first `n` places. There are at most 6 (3 metrics × 2 statistics).
    fn metrics_used_inline(&self) -> ([(MetricKind, Statistic); 6], usize) {
        let mut out = [(MetricKind::Cpu, Statistic::Average); 6];
        let mut n = 0;
        for r in &self.rules {
            if !out[..n].contains(&(r.metric, r.statistic)) {
                out[n] = (r.metric, r.statistic);
                n += 1;
            }
        }
        if self.warmup.max_lag_secs.is_some()
            && !out[..n].iter().any(|(m, _)| *m == MetricKind::ReplicaLag)
        {
            out[n] = (MetricKind::ReplicaLag, Statistic::Maximum);
            n += 1;
        }
        (out, n)
    }

    /// Metric queries needed for this cluster now: every configured replica that exists and is
    /// not being deleted × every metric used; plus the master when no replica is available
    /// (the master then serves the reads, and its load is what a scale-out from zero needs).
    pub fn queries(&self, spec: &ClusterSpec, view: &ClusterView) -> Vec<MetricQuery> {
        let replicas = spec
            .replicas
            .iter()
            .zip(&view.replicas)
            .filter(|(_, inst)| {
                inst.as_ref()
                    .is_some_and(|i| i.status != crate::core::domain::InstanceStatus::Deleting)
            })
            .map(|(rs, _)| &rs.id);
        let master = (view.available_replicas() == 0).then_some(&spec.master.id);
        let (metrics, n) = self.metrics_used_inline();
        let metrics = &metrics[..n];
        let mut out = Vec::with_capacity((spec.replicas.len() + 1) * metrics.len());
        for id in replicas.chain(master) {
            for (m, s) in metrics {
                out.push(MetricQuery {
                    instance: id.clone(),
                    metric: *m,
                    statistic: *s,
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
        let p = i64::from(self.period_secs.max(1));
        let t = now.timestamp() - LANDING_DELAY_SECS;
        let end_s = t.div_euclid(p) * p;
        let n = i64::from((self.missing_data.stale_periods * 2).max(5));
        // The same instants as `DateTime::from_timestamp` of `end_s` and `end_s - n·p`
        // (`now` when out of range), built on `now`'s date when they fall on it (every tick
        // asks; working out a date from seconds is the expensive part).
        // (UTC: the naive parts are the fields as they are, no offset to apply.)
        let naive = now.naive_utc();
        let now_s = now.timestamp();
        let midnight = now_s - i64::from(naive.time().num_seconds_from_midnight());
        let at = |ts: i64| {
            let same_day = (midnight..now_s + 1).contains(&ts).then(|| {
                chrono::NaiveTime::from_num_seconds_from_midnight_opt((ts - midnight) as u32, 0)
                    .map(|t| chrono::NaiveDateTime::new(naive.date(), t).and_utc())
            });
            same_day
                .flatten()
                .or_else(|| DateTime::from_timestamp(ts, 0))
                .unwrap_or(now)
        };
        let end = at(end_s);
        let start = at(end_s - n * p);
        (start, end)
    }

    /// How long the decision core needs recommendation history for stabilization.
    pub fn history_secs(&self) -> u64 {
        self.scale_in
            .stabilization_secs
            .max(self.scale_out.stabilization_secs)
    }
}

fn check_rule(r: &RawRule, f: &str, e: &mut Errs) -> Option<Rule> {
    let mut ok = true;
    let metric = metric_of(&r.metric);
    if metric.is_none() {
        e.push(
            format!("{f}.metric"),
            format!(
                "unknown metric {:?}: one of cpu (%), connections (count), replica_lag (s)",
                r.metric
            ),
        );
        ok = false;
    }
    let statistic = match r.statistic.as_deref() {
        None | Some("Average") | Some("average") => Statistic::Average,
        Some("Maximum") | Some("maximum") => Statistic::Maximum,
        Some(o) => {
            e.push(
                format!("{f}.statistic"),
                format!("{o:?} is not one of Average, Maximum"),
            );
            ok = false;
            Statistic::Average
        }
    };
    let aggregation = match r.aggregation.as_deref() {
        None | Some("average") => Aggregation::Average,
        Some("max") => Aggregation::Max,
        Some(o) => {
            e.push(
                format!("{f}.aggregation"),
                format!("{o:?} is not one of average, max"),
            );
            ok = false;
            Aggregation::Average
        }
    };
    let threshold = r.above.is_some() || r.below.is_some();
    let kind = match (r.target, threshold) {
        (Some(_), true) => {
            e.push(
                format!("{f}.target"),
                "a rule is either target tracking (target) or threshold (above/below), not both",
            );
            ok = false;
            None
        }
        (None, false) => {
            e.push(
                f.to_string(),
                "needs either target (target tracking) or above/below (threshold)",
            );
            ok = false;
            None
        }
        (Some(t), false) => {
            if !(t.is_finite() && t > 0.0) {
                e.push(
                    format!("{f}.target"),
                    format!("{t} must be a positive number"),
                );
                ok = false;
            } else if metric == Some(MetricKind::Cpu) && t > 100.0 {
                e.push(format!("{f}.target"), format!("{t} % is above 100 %"));
                ok = false;
            }
            for (name, v) in [("add", r.add), ("remove", r.remove)] {
                if v.is_some() {
                    e.push(
                        format!("{f}.{name}"),
                        "only for threshold rules (above/below), not with target",
                    );
                    ok = false;
                }
            }
            let tolerance = r.tolerance.unwrap_or(DEFAULT_TOLERANCE);
            if !(0.0..1.0).contains(&tolerance) {
                e.push(
                    format!("{f}.tolerance"),
                    format!("{tolerance} must be a fraction in [0, 1): 0.1 means 10 %"),
                );
                ok = false;
            }
            Some(RuleKind::TargetTracking {
                target: t,
                tolerance,
            })
        }
        (None, true) => {
            if r.tolerance.is_some() {
                e.push(
                    format!("{f}.tolerance"),
                    "only for target tracking rules (target)",
                );
                ok = false;
            }
            for (name, v) in [("above", r.above), ("below", r.below)] {
                if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                    e.push(format!("{f}.{name}"), "must be a number ≥ 0");
                    ok = false;
                }
            }
            if let (Some(a), Some(b)) = (r.above, r.below) {
                if b >= a {
                    e.push(
                        format!("{f}.below"),
                        format!("below {b} must be less than above {a}"),
                    );
                    ok = false;
                }
            }
            let add = r.add.unwrap_or(1);
            let remove = r.remove.unwrap_or(1);
            if r.above.is_some() && add == 0 {
                e.push(format!("{f}.add"), "must be at least 1");
                ok = false;
            }
            if r.below.is_some() && remove == 0 {
                e.push(format!("{f}.remove"), "must be at least 1");
                ok = false;
            }
            if r.above.is_none() && r.add.is_some() {
                e.push(format!("{f}.add"), "needs above");
                ok = false;
            }
            if r.below.is_none() && r.remove.is_some() {
                e.push(format!("{f}.remove"), "needs below");
                ok = false;
            }
            Some(RuleKind::Threshold {
                above: r.above,
                add,
                below: r.below,
                remove,
            })
        }
    };
    match (ok, metric, kind) {
        (true, Some(metric), Some(kind)) => Some(Rule {
            metric,
            statistic,
            aggregation,
            kind,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                assert_eq!(
                    p.fetch_window(now),
                    fetch_window_reference(&p, now),
                    "{now:?} {period} {stale}"
                );
            }
        }
    }
}
