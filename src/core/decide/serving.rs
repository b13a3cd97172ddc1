//! Who serves the reads this tick and whose metrics count: the available replicas (warm ones
//! feed the averages; young or lagging ones are capacity but left out), or the master when no
//! replica is available. Also the tick's metric window and the newest-sample lookup.

use super::reason::{Reason, Warming};
use crate::core::domain::{Instance, InstanceId, MetricKind, MetricSeries, Sample, Statistic};
use crate::core::plan::ClusterView;
use crate::core::policy::Policy;
use chrono::{DateTime, Utc};

/// The tick's metric window: samples of periods starting before `end` count; a newest sample
/// starting before `stale_before` is stale.
pub(super) struct Window {
    pub end: DateTime<Utc>,
    pub stale_before: DateTime<Utc>,
    /// The policy's period, seconds (at least 1).
    pub period: i64,
}

impl Window {
    pub fn of(policy: &Policy, now: DateTime<Utc>) -> Window {
        let period = i64::from(policy.period_secs.max(1));
        let end = policy.fetch_end(now);
        let stale = period * i64::from(policy.missing_data.stale_periods);
        Window {
            end,
            stale_before: end - chrono::Duration::seconds(stale),
            period,
        }
    }
}

/// An instance whose metrics the rules read.
pub(super) struct Source<'a> {
    pub id: &'a InstanceId,
    /// Left out of cpu/connections because its lag is above the warm-up bound.
    pub lagging: bool,
}

/// The serving set of a tick.
pub(super) struct Serving<'a> {
    pub sources: Vec<Source<'a>>,
    /// The count the rules scale from: the available replicas, or 1 for the master.
    pub basis: usize,
    /// Whether any replica is available.
    pub replicas_available: bool,
    /// `master_serving` and `warmup` reasons.
    pub reasons: Vec<Reason>,
}

impl<'a> Serving<'a> {
    pub fn of(
        policy: &Policy,
        view: &'a ClusterView,
        metrics: &[MetricSeries],
        window: &Window,
        now: DateTime<Utc>,
    ) -> Serving<'a> {
        let available = || view.existing_replicas().filter(|i| i.status.is_available());
        let n = available().count();
        if n == 0 {
            return Serving::master(policy, view);
        }
        let mut serving = Serving {
            sources: Vec::with_capacity(n),
            basis: n,
            replicas_available: true,
            reasons: Vec::new(),
        };
        let mut warming = Vec::new();
        for i in available() {
            match warmth(policy, i, metrics, window, now) {
                Warmth::Young(w) => warming.push(w),
                Warmth::Lagging(w) => {
                    warming.push(w);
                    serving.sources.push(Source {
                        id: &i.id,
                        lagging: true,
                    });
                }
                Warmth::Warm => serving.sources.push(Source {
                    id: &i.id,
                    lagging: false,
                }),
            }
        }
        if !warming.is_empty() {
            serving.reasons.push(Reason::Warmup { replicas: warming });
        }
        serving
    }

    /// No replica available: the master serves the reads (when it is available).
    fn master(policy: &Policy, view: &'a ClusterView) -> Serving<'a> {
        let mut serving = Serving {
            sources: Vec::new(),
            basis: 1,
            replicas_available: false,
            reasons: Vec::new(),
        };
        if let Some(m) = view.master.as_ref().filter(|m| m.status.is_available()) {
            serving.sources.push(Source {
                id: &m.id,
                lagging: false,
            });
            if !policy.rules.is_empty() {
                serving.reasons.push(Reason::MasterServing {
                    master: m.id.clone(),
                });
            }
        }
        serving
    }
}

enum Warmth {
    Warm,
    /// Available for less than the warm-up: left out entirely.
    Young(Warming),
    /// Lag above the bound: left out of cpu/connections.
    Lagging(Warming),
}

fn warmth(
    policy: &Policy,
    i: &Instance,
    metrics: &[MetricSeries],
    window: &Window,
    now: DateTime<Utc>,
) -> Warmth {
    let warm_secs = policy.warmup.duration_secs.min(i64::MAX as u64) as i64;
    if let Some(since) = i.available_since {
        let age = (now - since).num_seconds();
        if age < warm_secs {
            return Warmth::Young(Warming::Young {
                id: i.id.clone(),
                age_secs: age.max(0) as u64,
                warm_secs: warm_secs as u64,
            });
        }
    }
    let Some(bound) = policy.warmup.max_lag_secs else {
        return Warmth::Warm;
    };
    let lagging = newest(metrics, &i.id, MetricKind::ReplicaLag, None, window.end)
        .is_some_and(|s| s.value > bound && s.at >= window.stale_before);
    if lagging {
        Warmth::Lagging(Warming::Lagging {
            id: i.id.clone(),
            bound,
        })
    } else {
        Warmth::Warm
    }
}

/// Newest sample of `instance`'s series of `metric` (of `statistic`, or any) with a period
/// start before `end`.
pub(super) fn newest<'a>(
    metrics: &'a [MetricSeries],
    instance: &InstanceId,
    metric: MetricKind,
    statistic: Option<Statistic>,
    end: DateTime<Utc>,
) -> Option<&'a Sample> {
    let mut best: Option<&Sample> = None;
    for s in metrics {
        let q = &s.query;
        if q.metric != metric
            || statistic.is_some_and(|st| st != q.statistic)
            || q.instance != *instance
        {
            continue;
        }
        let n = s.samples.partition_point(|x| x.at < end);
        if let Some(x) = n.checked_sub(1).and_then(|i| s.samples.get(i)) {
            if best.is_none_or(|b| x.at > b.at) {
                best = Some(x);
            }
        }
    }
    best
}
