//! The rules: each one aggregates its metric over the serving set and proposes a replica count
//! with the reason behind it. The largest proposal wins (scale out if any rule says so, scale
//! in only if all agree); gaps in the data are collected for the data holds.

use super::reason::{Reason, RuleCode};
use super::serving::{newest, Serving, Window};
use super::Observed;
use crate::core::domain::{InstanceId, MetricKind, MetricSeries};
use crate::core::policy::{Aggregation, MissingScaleOut, Policy, Rule, RuleKind};
use chrono::{DateTime, Utc};

/// Instances without data, or with stale data, for any rule.
#[derive(Default)]
pub(super) struct Gaps<'a> {
    pub missing: Vec<&'a InstanceId>,
    pub stale: Vec<(&'a InstanceId, DateTime<Utc>)>,
}

/// What the rules said.
pub(super) struct Evaluated<'a> {
    pub observed: Vec<Observed>,
    /// Every rule had fresh data for every source.
    pub complete: bool,
    /// Some rule had no source at all (every serving replica warming, or none).
    pub warmup_only: bool,
    pub gaps: Gaps<'a>,
    /// The largest proposal, from the rules that had a value.
    pub best: Option<(usize, RuleCode)>,
}

impl Evaluated<'_> {
    /// The winning proposal as far as it may be used: incomplete data is usable only for a
    /// scale-out, and only when the policy says so (`missing_data.scale_out: act`).
    pub fn usable(&self, policy: &Policy, current: usize) -> Option<(usize, RuleCode)> {
        match (self.complete, policy.missing_data.scale_out) {
            (true, _) => self.best,
            (false, MissingScaleOut::Act) => self.best.filter(|(p, _)| *p > current),
            (false, MissingScaleOut::Hold) => None,
        }
    }
}

/// Evaluate every rule of `policy` on the serving set; each rule that had a value adds its
/// reason to `reasons`.
pub(super) fn evaluate<'a>(
    policy: &Policy,
    serving: &Serving<'a>,
    metrics: &[MetricSeries],
    window: &Window,
    current: usize,
    reasons: &mut Vec<Reason>,
) -> Evaluated<'a> {
    let mut out = Evaluated {
        observed: Vec::with_capacity(policy.rules.len()),
        complete: true,
        warmup_only: false,
        gaps: Gaps::default(),
        best: None,
    };
    for rule in &policy.rules {
        let agg = aggregate(rule, serving, metrics, window, &mut out.gaps);
        out.complete &= agg.complete;
        out.warmup_only |= agg.considered == 0;
        let (target, proposal) = match agg.value {
            None => (shown_limit(&rule.kind), None),
            Some(v) => {
                let (count, reason) = propose(rule, v, serving.basis, current);
                let code = match &reason {
                    Reason::WithinTolerance { .. } => RuleCode::WithinTolerance,
                    Reason::TargetTracking { .. } => RuleCode::TargetTracking,
                    Reason::InRange { .. } => RuleCode::Steady,
                    _ => RuleCode::Threshold,
                };
                reasons.push(reason);
                (shown_limit(&rule.kind), Some((count, code)))
            }
        };
        if let Some(p) = proposal {
            if out.best.is_none_or(|(b, _)| p.0 > b) {
                out.best = Some(p);
            }
        }
        out.observed.push(Observed {
            metric: rule.metric,
            statistic: rule.statistic,
            aggregation: rule.aggregation,
            value: agg.value,
            target,
            instances: agg.instances,
            proposal: proposal.map(|p| p.0),
        });
    }
    out
}

/// A rule's target, or its threshold's `above` (else `below`).
fn shown_limit(kind: &RuleKind) -> Option<f64> {
    match kind {
        RuleKind::TargetTracking { target, .. } => Some(*target),
        RuleKind::Threshold { above, below, .. } => (*above).or(*below),
    }
}

struct Aggregate {
    value: Option<f64>,
    /// How many instances the value was aggregated over.
    instances: usize,
    /// How many sources the rule considered (lagging ones are left out of cpu/connections).
    considered: usize,
    complete: bool,
}

/// The rule's metric over the sources with fresh data; gaps recorded in `gaps`.
fn aggregate<'a>(
    rule: &Rule,
    serving: &Serving<'a>,
    metrics: &[MetricSeries],
    window: &Window,
    gaps: &mut Gaps<'a>,
) -> Aggregate {
    let (mut sum, mut hi, mut n, mut considered) = (0.0f64, f64::NEG_INFINITY, 0usize, 0usize);
    let mut complete = true;
    for src in &serving.sources {
        if src.lagging && rule.metric != MetricKind::ReplicaLag {
            continue;
        }
        considered += 1;
        match newest(
            metrics,
            src.id,
            rule.metric,
            Some(rule.statistic),
            window.end,
        ) {
            None => {
                complete = false;
                if !gaps.missing.contains(&src.id) {
                    gaps.missing.push(src.id);
                }
            }
            Some(s) if s.at < window.stale_before || !s.value.is_finite() => {
                complete = false;
                if !gaps.stale.iter().any(|(i, _)| *i == src.id) {
                    gaps.stale.push((src.id, s.at));
                }
            }
            Some(s) => {
                sum += s.value;
                hi = hi.max(s.value);
                n += 1;
            }
        }
    }
    let value = (n > 0).then(|| match rule.aggregation {
        Aggregation::Average => sum / n as f64,
        Aggregation::Max => hi,
    });
    Aggregate {
        value,
        instances: n,
        considered,
        complete: complete && considered > 0,
    }
}

/// What one rule proposes for value `v`, and why.
fn propose(rule: &Rule, v: f64, basis: usize, current: usize) -> (usize, Reason) {
    let metric = rule.metric;
    match rule.kind {
        RuleKind::TargetTracking { target, tolerance } => {
            let ratio = v / target;
            if (ratio - 1.0).abs() <= tolerance {
                let reason = Reason::WithinTolerance {
                    metric,
                    value: v,
                    tolerance,
                    target,
                };
                return (current, reason);
            }
            let want = (basis as f64 * ratio - 1e-9).ceil().clamp(0.0, 10_000.0) as usize;
            let reason = Reason::TargetTracking {
                metric,
                value: v,
                target,
                want,
            };
            (want, reason)
        }
        RuleKind::Threshold {
            above,
            add,
            below,
            remove,
        } => {
            if let Some(limit) = above.filter(|a| v > *a) {
                // Added to the serving replicas: replicas still being created already count,
                // so a breach that persists while they come does not stack more.
                let want = (basis + add).max(current);
                let in_flight_counted = basis + add <= current && basis < current;
                let reason = Reason::ThresholdAbove {
                    metric,
                    value: v,
                    limit,
                    add,
                    want,
                    in_flight_counted,
                };
                (want, reason)
            } else if let Some(limit) = below.filter(|b| v < *b) {
                let want = current.saturating_sub(remove);
                let reason = Reason::ThresholdBelow {
                    metric,
                    value: v,
                    limit,
                    remove,
                    want,
                };
                (want, reason)
            } else {
                let reason = Reason::InRange {
                    metric,
                    value: v,
                    above,
                    below,
                };
                (current, reason)
            }
        }
    }
}
