//! Reading a policy document: the raw model as written (`serde`, unknown fields refused),
//! then validation against the cluster config into a [`Policy`], every problem reported with
//! its position and field (`core::input`).

use super::raw::*;
use super::*;
use crate::core::config::{ClusterSpec, Config, MasterSpec};
use crate::core::domain::{InstanceClass, InstanceId};
use crate::core::input::{locate, parse_document, InputError, InputErrors, Problems, Syntax};
use crate::core::schedule::{parse_cron, parse_timezone};

// ---------------------------------------------------------------- validation

/// The problems found so far, each located in the document.
pub(super) struct Errs<'a> {
    file: &'a str,
    text: &'a str,
    syntax: Syntax,
    list: Problems,
}

impl Errs<'_> {
    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(super) fn push(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        let (file, text, syntax) = (self.file, self.text, self.syntax);
        self.list.push(|| {
            let field = field.into();
            let pos = locate(text, syntax, &field).map(|l| l.key);
            InputError::new(file, field, msg).at(pos)
        });
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

impl Policy {
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
            list: Problems::default(),
        };
        let spec = config.cluster(&raw.cluster);
        if raw.cluster == "*" {
            e.push("cluster", "\"*\" marks a default policy, which is not one of the policy files: give it with --default-policy FILE (run, plan and validate take it)");
        } else if spec.is_none() {
            let known: Vec<&str> = config.clusters.keys().map(String::as_str).collect();
            let msg = format!(
                "unknown cluster {:?}: not in the cluster config (known: {})",
                raw.cluster,
                known.join(", ")
            );
            e.push("cluster", msg);
        }
        let cap = spec.map(|s| s.replicas.len());
        let mut p = match spec {
            Some(s) => Policy::base_for(s),
            None => Policy::base_for_unknown(&raw.cluster),
        };
        p.observe_only = raw.observe_only;
        check_bounds(&raw, cap, &mut p, &mut e);
        check_counts(&raw, &mut e);
        if let Some(rules) = &raw.rules {
            if rules.is_empty() {
                e.push("rules", "is empty: give at least one rule, or leave it out for the default (cpu target 70 % of the hottest replica)");
            }
            p.rules = (rules.iter().enumerate())
                .filter_map(|(i, r)| check_rule(r, &format!("rules[{i}]"), &mut e))
                .collect();
        }
        p.scale_out = direction(&raw.scale_out, "scale_out", &p.scale_out, &mut e);
        p.scale_in = direction(&raw.scale_in, "scale_in", &p.scale_in, &mut e);
        check_data_settings(&raw, &mut p, &mut e);
        for (i, s) in raw.schedules.iter().enumerate() {
            if let Some(s) = check_schedule(i, s, cap, p.max_replicas, &mut e) {
                p.schedules.push(s);
            }
        }
        check_schedule_names(&raw.schedules, &mut e);
        if let Some(r) = &raw.predictive {
            p.predictive = super::predictive::check(r, &mut e);
        }
        if e.list.is_empty() {
            Ok(p)
        } else {
            Err(e.list.into_errors(e.file))
        }
    }

    /// The base of a policy naming a cluster that is not configured (its errors are reported;
    /// the rest is still checked).
    fn base_for_unknown(name: &str) -> Policy {
        let mut p = Policy::base_for(&ClusterSpec {
            name: name.into(),
            master: MasterSpec {
                snapshot: String::new(),
                id: InstanceId::from_aws("unknown"),
                class: InstanceClass::from_aws("db.unknown.unknown"),
                multi_az: false,
                subnet_group: None,
            },
            replicas: Vec::new(),
            haproxy: None,
            template: Default::default(),
            rules: Default::default(),
            target: Default::default(),
        });
        p.min_replicas = 0;
        p.max_replicas = usize::MAX;
        p
    }
}

/// `min_replicas`, `max_replicas` (within the replica list of `cap`) and `period`.
fn check_bounds(raw: &RawPolicy, cap: Option<usize>, p: &mut Policy, e: &mut Errs) {
    if let Some(m) = raw.max_replicas {
        if let Some(cap) = cap.filter(|cap| m > *cap) {
            let msg = format!(
                "{m} is beyond the cluster's replica list ({cap} configured in {})",
                raw.cluster
            );
            e.push("max_replicas", msg);
        }
        p.max_replicas = m;
    }
    if let Some(m) = raw.min_replicas {
        p.min_replicas = m;
    }
    if p.min_replicas > p.max_replicas {
        let msg = format!(
            "min_replicas {} is greater than max_replicas {}",
            p.min_replicas, p.max_replicas
        );
        e.push("min_replicas", msg);
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
}

/// One direction's settings (`scale_out` or `scale_in`) over its defaults `base`.
fn direction(
    raw: &Option<RawDirection>,
    name: &str,
    base: &DirectionSettings,
    e: &mut Errs,
) -> DirectionSettings {
    let Some(r) = raw else { return base.clone() };
    let mut d = base.clone();
    if let Some(v) = r.enabled {
        d.enabled = v;
    }
    let mut window = |v: Option<Dur>, field: &str, to: &mut u64| {
        if let Some(Dur(v)) = v {
            if v > MAX_WINDOW_SECS {
                e.push(format!("{name}.{field}"), "is longer than a day");
            }
            *to = v.min(MAX_WINDOW_SECS);
        }
    };
    window(r.cooldown, "cooldown", &mut d.cooldown_secs);
    window(r.stabilization, "stabilization", &mut d.stabilization_secs);
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
}

/// Most rules a policy may have (a rule per metric and statistic is a handful; the decision
/// evaluates every rule on every tick).
pub const MAX_RULES: usize = 32;
/// Most schedules a policy may have (each is checked on every tick).
pub const MAX_SCHEDULES: usize = 64;

/// The number of rules and schedules, bounded.
fn check_counts(raw: &RawPolicy, e: &mut Errs) {
    let rules = raw.rules.as_ref().map_or(0, Vec::len);
    if rules > MAX_RULES {
        e.push("rules", format!("{rules} rules: at most {MAX_RULES}"));
    }
    if raw.schedules.len() > MAX_SCHEDULES {
        let n = raw.schedules.len();
        e.push(
            "schedules",
            format!("{n} schedules: at most {MAX_SCHEDULES}"),
        );
    }
}

/// `missing_data` and `warmup`.
fn check_data_settings(raw: &RawPolicy, p: &mut Policy, e: &mut Errs) {
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
        // A day at most: a replica warming up (or lagging) longer is broken, not warming up.
        let mut day = |v: u64, field: &str| {
            if v > MAX_WINDOW_SECS {
                e.push(format!("warmup.{field}"), "is longer than a day");
            }
            v.min(MAX_WINDOW_SECS)
        };
        if let Some(Dur(v)) = w.duration {
            p.warmup.duration_secs = day(v, "duration");
        }
        if let Some(Dur(v)) = w.max_lag {
            p.warmup.max_lag_secs = Some(day(v, "max_lag") as f64);
        }
    }
}

/// Schedule `i`: its cron, timezone, duration and overrides (bounds within the replica list
/// of `cap` and the policy's `max_replicas`).
fn check_schedule(
    i: usize,
    s: &RawSchedule,
    cap: Option<usize>,
    policy_max: usize,
    e: &mut Errs,
) -> Option<Schedule> {
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
    check_schedule_overrides(&f, s, cap, policy_max, e);
    let mut class = |v: &Option<String>, name: &str| {
        v.as_ref().and_then(|c| match InstanceClass::parse(c) {
            Ok(c) => Some(c),
            Err(m) => {
                e.push(format!("{f}.{name}"), m);
                None
            }
        })
    };
    let rc = class(&s.replica_class, "replica_class");
    let mc = class(&s.master_class, "master_class");
    let (Ok(_), Ok(tz)) = (cron, tz) else {
        return None;
    };
    let name = schedule_name(i, s);
    let (min, max, d) = (s.min_replicas, s.max_replicas, s.duration.0);
    match Schedule::new(name, &s.cron, tz, d, min, max, rc, mc) {
        Ok(s) => Some(s),
        Err(m) => {
            e.push(format!("{f}.cron"), m);
            None
        }
    }
}

/// Schedule `i`'s name: the one given, else `schedule N` (N from 1).
fn schedule_name(i: usize, s: &RawSchedule) -> String {
    s.name
        .clone()
        .unwrap_or_else(|| format!("schedule {}", i + 1))
}

/// Most characters in a schedule's name (it is shown in reports and logs).
const MAX_SCHEDULE_NAME: usize = 64;

/// Schedule names tell schedules apart in reports: each one given is 1–64 characters without
/// control characters, and no two schedules have the same name (a schedule without one is
/// `schedule N`).
fn check_schedule_names(schedules: &[RawSchedule], e: &mut Errs) {
    let name = |i: usize| schedule_name(i, &schedules[i]);
    for (i, s) in schedules.iter().enumerate() {
        let f = format!("schedules[{i}].name");
        if let Some(given) = &s.name {
            if given.trim().is_empty() {
                e.push(f, "is empty: name the schedule, or leave the name out (it is then \"schedule N\")");
                continue;
            }
            if given.chars().count() > MAX_SCHEDULE_NAME || given.chars().any(char::is_control) {
                e.push(
                    f,
                    format!("must be 1–{MAX_SCHEDULE_NAME} characters without control characters"),
                );
                continue;
            }
        }
        let n = name(i);
        if let Some(j) = (0..i).find(|&j| name(j) == n) {
            e.push(
                f,
                format!(
                    "{n:?} is also the name of schedules[{j}]: give each schedule its own name"
                ),
            );
        }
    }
}

/// A schedule overrides something, within the replica list and its max.
fn check_schedule_overrides(
    f: &str,
    s: &RawSchedule,
    cap: Option<usize>,
    policy_max: usize,
    e: &mut Errs,
) {
    if s.min_replicas.is_none()
        && s.max_replicas.is_none()
        && s.replica_class.is_none()
        && s.master_class.is_none()
    {
        e.push(
            f.to_string(),
            "overrides nothing: set min_replicas, max_replicas, replica_class or master_class",
        );
    }
    if let (Some(m), Some(cap)) = (s.max_replicas, cap) {
        if m > cap {
            e.push(
                format!("{f}.max_replicas"),
                format!("{m} is beyond the cluster's replica list ({cap} configured)"),
            );
        }
    }
    let eff_max = s.max_replicas.unwrap_or(policy_max);
    if let Some(m) = s.min_replicas.filter(|m| *m > eff_max) {
        let whose = if s.max_replicas.is_some() {
            "this schedule's max_replicas"
        } else {
            "the policy's max_replicas"
        };
        e.push(
            format!("{f}.min_replicas"),
            format!("min_replicas {m} is greater than {whose} {eff_max}"),
        );
    }
}

/// One rule: metric, statistic, aggregation, and either target tracking or threshold.
fn check_rule(r: &RawRule, f: &str, e: &mut Errs) -> Option<Rule> {
    let mut ok = true;
    let metric = metric_of(&r.metric);
    if metric.is_none() {
        let msg = format!(
            "unknown metric {:?}: one of cpu (%), connections (count), replica_lag (s)",
            r.metric
        );
        e.push(format!("{f}.metric"), msg);
        ok = false;
    }
    let statistic = match r.statistic.as_deref() {
        None | Some("Average") | Some("average") => Statistic::Average,
        Some("Maximum") | Some("maximum") => Statistic::Maximum,
        Some(o) => {
            let msg = format!("{o:?} is not one of Average, Maximum");
            e.push(format!("{f}.statistic"), msg);
            ok = false;
            Statistic::Average
        }
    };
    let aggregation = match r.aggregation.as_deref() {
        None | Some("average") => Aggregation::Average,
        Some("max") => Aggregation::Max,
        Some(o) => {
            let msg = format!("{o:?} is not one of average, max");
            e.push(format!("{f}.aggregation"), msg);
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
            None
        }
        (None, false) => {
            e.push(
                f.to_string(),
                "needs either target (target tracking) or above/below (threshold)",
            );
            None
        }
        (Some(t), false) => target_tracking(r, t, metric, f, e),
        (None, true) => threshold_rule(r, f, e),
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

/// A target-tracking rule's target and tolerance; `None` when any is wrong (all reported).
fn target_tracking(
    r: &RawRule,
    t: f64,
    metric: Option<MetricKind>,
    f: &str,
    e: &mut Errs,
) -> Option<RuleKind> {
    let mut ok = true;
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
        let msg = format!("{tolerance} must be a fraction in [0, 1): 0.1 means 10 %");
        e.push(format!("{f}.tolerance"), msg);
        ok = false;
    }
    ok.then_some(RuleKind::TargetTracking {
        target: t,
        tolerance,
    })
}

/// A threshold rule's bounds and steps; `None` when any is wrong (all reported).
fn threshold_rule(r: &RawRule, f: &str, e: &mut Errs) -> Option<RuleKind> {
    let mut ok = true;
    let mut fail = |field: &str, msg: String| {
        e.push(format!("{f}.{field}"), msg);
        ok = false;
    };
    if r.tolerance.is_some() {
        fail(
            "tolerance",
            "only for target tracking rules (target)".into(),
        );
    }
    for (name, v) in [("above", r.above), ("below", r.below)] {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            fail(name, "must be a number ≥ 0".into());
        }
    }
    if let (Some(a), Some(b)) = (r.above, r.below) {
        if b >= a {
            fail("below", format!("below {b} must be less than above {a}"));
        }
    }
    let add = r.add.unwrap_or(1);
    let remove = r.remove.unwrap_or(1);
    if r.above.is_some() && add == 0 {
        fail("add", "must be at least 1".into());
    }
    if r.below.is_some() && remove == 0 {
        fail("remove", "must be at least 1".into());
    }
    if r.above.is_none() && r.add.is_some() {
        fail("add", "needs above".into());
    }
    if r.below.is_none() && r.remove.is_some() {
        fail("remove", "needs below".into());
    }
    ok.then_some(RuleKind::Threshold {
        above: r.above,
        add,
        below: r.below,
        remove,
    })
}
