//! Predictive pre-scaling, the pure half: a cluster's **load history** ([`LoadHistory`]: the
//! total load per 5-minute bucket, i.e. the per-replica metric summed over the replicas, which
//! does not fall when replicas are added), the [`Forecaster`] trait and its implementations,
//! each forecaster's **accuracy** on the history it has (error of its peak forecast at the
//! horizon, [`accuracy`]), and the **forecast** ([`Forecast`], made by the control loop's
//! `control::predict::forecast_step`): predict the peak load over the next `horizon`, size the
//! replicas for it at the policy's target utilization, or abstain and say why ([`Abstain`]).
//! Words are made at the edges; no I/O, no clock.
//!
//! Where the history comes from: `ports::MetricsSource::load_history` (CloudWatch at 5-minute
//! resolution, summed over the configured ids; the simulated fleet reads the trace's past).

mod holt_winters;
mod seasonal;
pub use holt_winters::HoltWinters;
pub use seasonal::Seasonal;

use super::domain::MetricKind;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;

/// The resolution of load history: 5 minutes (CloudWatch keeps 5-minute data for 63 days).
pub const HISTORY_STEP_SECS: u32 = 300;

/// A cluster's total load over time: for each `step_secs` bucket from `start`, the sum over
/// the cluster's replicas of their per-replica metric (CPU percent: two replicas at 50 % make
/// 100), `None` where no replica had a datapoint. Oldest bucket first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadHistory {
    pub metric: MetricKind,
    pub step_secs: u32,
    /// Start of the first bucket, aligned to `step_secs`.
    pub start: DateTime<Utc>,
    pub values: Vec<Option<f64>>,
}

impl LoadHistory {
    /// An empty history whose first bucket is the one holding `start`.
    pub fn empty(metric: MetricKind, step_secs: u32, start: DateTime<Utc>) -> LoadHistory {
        LoadHistory {
            metric,
            step_secs: step_secs.max(1),
            start: align_down(start, step_secs),
            values: Vec::new(),
        }
    }

    fn step(&self) -> i64 {
        i64::from(self.step_secs.max(1))
    }

    /// The end of the last bucket.
    pub fn end(&self) -> DateTime<Utc> {
        self.start + ChronoDuration::seconds(self.step() * self.values.len() as i64)
    }

    /// Start of bucket `i`.
    pub fn at(&self, i: usize) -> DateTime<Utc> {
        self.start + ChronoDuration::seconds(self.step() * i as i64)
    }

    /// The index of the bucket holding `t`, if `t` is inside the history.
    pub fn index_of(&self, t: DateTime<Utc>) -> Option<usize> {
        let d = (t - self.start).num_seconds();
        (d >= 0)
            .then(|| (d / self.step()) as usize)
            .filter(|&i| i < self.values.len())
    }

    /// The value of the bucket holding `t`.
    pub fn value_at(&self, t: DateTime<Utc>) -> Option<f64> {
        self.index_of(t).and_then(|i| self.values[i])
    }

    /// Buckets that hold a value.
    pub fn known(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
    }

    /// Seconds from the first bucket with a value to the end.
    pub fn span_secs(&self) -> u64 {
        match self.values.iter().position(Option::is_some) {
            Some(i) => (self.values.len() - i) as u64 * self.step() as u64,
            None => 0,
        }
    }

    /// The history as it was known at `origin`: the buckets that start before it.
    pub fn before(&self, origin: DateTime<Utc>) -> LoadHistory {
        let d = (origin - self.start).num_seconds().max(0);
        let n = (((d + self.step() - 1) / self.step()) as usize).min(self.values.len());
        LoadHistory {
            metric: self.metric,
            step_secs: self.step_secs,
            start: self.start,
            values: self.values[..n].to_vec(),
        }
    }

    /// Set the bucket holding `at` to `value` (extending with gaps), then drop the oldest
    /// buckets beyond `max_buckets`. A time before `start` is ignored.
    pub fn record(&mut self, at: DateTime<Utc>, value: f64, max_buckets: usize) {
        let d = (at - self.start).num_seconds();
        if d < 0 || !value.is_finite() {
            return;
        }
        let i = (d / self.step()) as usize;
        if i >= self.values.len() {
            self.values.resize(i + 1, None);
        }
        self.values[i] = Some(value);
        let excess = self.values.len().saturating_sub(max_buckets.max(1));
        if excess > 0 {
            self.values.drain(..excess);
            self.start += ChronoDuration::seconds(self.step() * excess as i64);
        }
    }

    /// The peak known value over the buckets starting in `[from, to)`.
    pub fn peak(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        self.between(from, to)
            .iter()
            .flatten()
            .copied()
            .reduce(f64::max)
    }

    /// The buckets starting in `[from, to)`.
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> &[Option<f64>] {
        let step = self.step();
        // First bucket starting at or after `t` (ceiling division), within the history.
        let first_at = |t: DateTime<Utc>| {
            let d = (t - self.start).num_seconds();
            let i = if d <= 0 { 0 } else { (d + step - 1) / step };
            (i.max(0) as usize).min(self.values.len())
        };
        let (a, b) = (first_at(from), first_at(to));
        if a < b {
            &self.values[a..b]
        } else {
            &[]
        }
    }
}

/// `t` rounded down to a multiple of `step_secs` since the epoch.
pub fn align_down(t: DateTime<Utc>, step_secs: u32) -> DateTime<Utc> {
    let s = i64::from(step_secs.max(1));
    let ts = t.timestamp().div_euclid(s) * s;
    DateTime::from_timestamp(ts, 0).unwrap_or(t)
}

/// A forecaster of a cluster's total load.
pub trait Forecaster: std::fmt::Debug + Send + Sync {
    /// Its name in policies, reasons and metrics (`seasonal`, ...).
    fn name(&self) -> &'static str;
    /// The peak total load expected over the buckets starting in `[origin, to)`, from
    /// `history` (which holds only what was known at `origin`); `None` when it cannot say.
    fn peak(&self, history: &LoadHistory, origin: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64>;
}

/// How well a forecaster did on the history it has.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Origins scored.
    pub origins: usize,
    /// Mean relative error of the peak forecast: |forecast − actual| / actual, over the origins.
    pub error: f64,
    /// Share of origins where the forecast fell short of the actual peak by more than 10 %.
    pub under: f64,
}

/// The Pearson correlation of the history with itself a day earlier (pairs of buckets a day
/// apart, both known): how strong its daily rhythm is (1: each day repeats the last; near 0:
/// none). `None` with fewer than an hour of pairs; a flat history (no variance) has none: 0.
pub fn daily_correlation(h: &LoadHistory) -> Option<f64> {
    let lag = (86_400 / h.step_secs.max(1)) as usize;
    let pairs: Vec<(f64, f64)> = (h.values.iter().zip(h.values.iter().skip(lag)))
        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
        .collect();
    if pairs.len() < (3600 / h.step_secs.max(1)) as usize {
        return None;
    }
    let n = pairs.len() as f64;
    let (ma, mb) = pairs
        .iter()
        .fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (a, b) in &pairs {
        cov += (a - ma) * (b - mb);
        va += (a - ma) * (a - ma);
        vb += (b - mb) * (b - mb);
    }
    if va <= 1e-12 || vb <= 1e-12 {
        return Some(0.0);
    }
    Some((cov / (va.sqrt() * vb.sqrt())).clamp(-1.0, 1.0))
}

/// Score `f` on `history`: at up to `origins` origins, `spacing_secs` apart and ending where a
/// whole `horizon_secs` window still fits in the history, forecast the peak over
/// `[origin, origin + horizon)` from what was known at the origin and compare it with the
/// actual peak. `None` when no origin could be scored (too little history, or no forecast).
pub fn accuracy(
    f: &dyn Forecaster,
    history: &LoadHistory,
    horizon_secs: u64,
    origins: usize,
    spacing_secs: u64,
) -> Option<Accuracy> {
    let horizon = ChronoDuration::seconds(horizon_secs as i64);
    let spacing = ChronoDuration::seconds(spacing_secs.max(1) as i64);
    let last = align_down(history.end() - horizon, history.step_secs);
    let (mut n, mut err, mut under) = (0usize, 0.0, 0usize);
    for k in 0..origins {
        let origin = last - spacing * k as i32;
        if origin <= history.start {
            break;
        }
        let Some(actual) = history.peak(origin, origin + horizon) else {
            continue;
        };
        let known = history.before(origin);
        let Some(predicted) = f.peak(&known, origin, origin + horizon) else {
            continue;
        };
        let scale = actual.abs().max(1.0);
        err += (predicted - actual).abs() / scale;
        if predicted < actual - 0.10 * scale {
            under += 1;
        }
        n += 1;
    }
    (n > 0).then(|| Accuracy {
        origins: n,
        error: err / n as f64,
        under: under as f64 / n as f64,
    })
}

/// Why a forecast gave no replica count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Abstain {
    /// Not enough history yet (a new cluster, or CloudWatch had none).
    NoHistory { have_secs: u64, need_secs: u64 },
    /// The forecaster's recent error is above the policy's limit.
    PoorAccuracy { error: f64, limit: f64 },
    /// The forecaster's accuracy is not known yet: no past forecast on the history could be
    /// scored (the history is only just long enough for it); it does not guess meanwhile.
    Unscored,
    /// The history's daily correlation is below the policy's minimum (or could not be
    /// measured): no daily rhythm for a seasonal forecast to follow.
    NoRhythm { correlation: Option<f64>, min: f64 },
    /// The forecaster could not predict the window (gaps where it looks).
    NoPrediction,
}

/// What the forecast step found for one cluster at one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    pub forecaster: &'static str,
    /// The load forecast (CPU: per-replica percent summed over replicas).
    pub metric: MetricKind,
    /// Whether the policy lets the forecast raise the replica count (`active`), or only
    /// report what it would have done (`forecast_only`).
    pub active: bool,
    /// The horizon looked at: lead time (learned or configured) + margin.
    pub horizon_secs: u64,
    /// Whether the lead time in the horizon was learned from the fleet's own creations.
    pub lead_learned: bool,
    /// The peak total load expected over `[now, now + horizon)`.
    pub peak_load: Option<f64>,
    /// Replicas needed to carry `peak_load` at the policy's target utilization.
    pub replicas: Option<usize>,
    /// The forecaster's recent accuracy (scored when the history was refreshed).
    pub accuracy: Option<Accuracy>,
    /// The history's correlation with itself a day earlier ([`daily_correlation`]).
    pub daily_correlation: Option<f64>,
    /// Set when the forecast gave no count.
    pub abstain: Option<Abstain>,
}

impl LoadHistory {
    /// `self` (an earlier history) brought up to date by `newer`, a read of its recent part:
    /// from `from` (aligned down), this history's buckets before `newer` starts, then all of
    /// `newer` (which replaces what this history had from there on, however it was filled).
    /// A bucket this history does not have is a gap. Equal to a full read from `from` when
    /// the buckets kept have not changed since they were read.
    pub fn spliced(&self, newer: &LoadHistory, from: DateTime<Utc>) -> LoadHistory {
        let mut out = LoadHistory::empty(newer.metric, newer.step_secs, from);
        let mut t = out.start;
        while t < newer.start {
            out.values.push(self.value_at(t));
            t += ChronoDuration::seconds(out.step());
        }
        let skip = ((out.start - newer.start).num_seconds().max(0) / out.step()) as usize;
        out.values
            .extend_from_slice(&newer.values[skip.min(newer.values.len())..]);
        out
    }

    /// The history over `[start, end)` made by summing, per bucket, the samples of `series`
    /// (one per instance, at the bucket resolution); a bucket where no series has a sample is
    /// a gap.
    pub fn sum_of(
        metric: MetricKind,
        step_secs: u32,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        series: &[super::domain::MetricSeries],
    ) -> LoadHistory {
        let mut h = LoadHistory::empty(metric, step_secs, start);
        let n = ((end - h.start).num_seconds().max(0) / h.step()) as usize;
        h.values = vec![None; n];
        for s in series {
            for sample in &s.samples {
                if let Some(i) = h.index_of(sample.at) {
                    h.values[i] = Some(h.values[i].unwrap_or(0.0) + sample.value);
                }
            }
        }
        h
    }
}

/// The forecaster a policy's `predictive` section names, with its settings.
pub fn forecaster_for(p: &crate::core::policy::Predictive) -> Box<dyn Forecaster> {
    match p.forecaster {
        crate::core::policy::ForecasterKind::Seasonal => Box::new(p.seasonal.clone()),
        crate::core::policy::ForecasterKind::HoltWinters => Box::new(p.holt_winters.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_spliced_history_keeps_the_older_buckets_and_takes_the_newer_read() {
        let t = |m: i64| {
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap() + ChronoDuration::minutes(m)
        };
        let mut old = LoadHistory::empty(MetricKind::Cpu, 300, t(0));
        old.values = vec![Some(1.0), None, Some(3.0), Some(4.0), Some(40.0)];
        let mut newer = LoadHistory::empty(MetricKind::Cpu, 300, t(15));
        newer.values = vec![Some(5.0), Some(6.0), None];
        // From the second bucket: old's buckets 2 and 3, then newer's (its 5.0 replaces old's 40.0).
        let s = old.spliced(&newer, t(5));
        assert_eq!(s.start, t(5));
        assert_eq!(s.values, [None, Some(3.0), Some(5.0), Some(6.0), None]);
        // From before the old history: gaps there; from inside the newer read: newer only.
        let s = old.spliced(&newer, t(-10));
        assert_eq!(s.values[..3], [None, None, Some(1.0)]);
        assert_eq!(s.values.len(), 8);
        let s = old.spliced(&newer, t(22));
        assert_eq!((s.start, s.values.clone()), (t(20), vec![Some(6.0), None]));
        // Equal to a full read when the kept buckets did not change.
        let mut full = LoadHistory::empty(MetricKind::Cpu, 300, t(5));
        full.values = vec![None, Some(3.0), Some(5.0), Some(6.0), None];
        assert_eq!(old.spliced(&newer, t(5)), full);
    }

    #[test]
    fn between_and_peak_take_the_buckets_starting_in_the_window() {
        let start = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        let mut h = LoadHistory::empty(MetricKind::Cpu, 300, start);
        h.values = vec![Some(1.0), None, Some(3.0), Some(2.0)];
        let m = |m: i64| start + ChronoDuration::minutes(m);
        for (from, to, want) in [
            (m(0), m(20), vec![Some(1.0), None, Some(3.0), Some(2.0)]),
            (m(-60), m(100), vec![Some(1.0), None, Some(3.0), Some(2.0)]),
            (m(1), m(11), vec![None, Some(3.0)]),
            (m(5), m(10), vec![None]),
            (m(5), m(5), vec![]),
            (m(16), m(30), vec![]),
            (m(10), m(0), vec![]),
        ] {
            assert_eq!(h.between(from, to), want.as_slice(), "{from} {to}");
            // The same as looking at every bucket's start.
            let slow = (0..h.values.len())
                .filter(|&i| h.at(i) >= from && h.at(i) < to)
                .filter_map(|i| h.values[i])
                .reduce(f64::max);
            assert_eq!(h.peak(from, to), slow);
        }
        assert_eq!(h.end(), m(20));
        assert_eq!(h.value_at(m(12)), Some(3.0));
        assert_eq!(h.before(m(11)).values.len(), 3);
        assert_eq!(h.span_secs(), 1200);
        h.record(m(35), 7.0, 5);
        // Bucket 7 set, gaps before it, the oldest three dropped to keep five.
        assert_eq!(h.start, m(15));
        assert_eq!(h.values, [Some(2.0), None, None, None, Some(7.0)]);
    }

    /// `days` days of 5-minute buckets: `base` all day, `base + rise` from 12:00 to 14:00.
    fn daily(days: i64, base: f64, rise: f64) -> LoadHistory {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut h = LoadHistory::empty(MetricKind::Cpu, 300, start);
        h.values = (0..days * 288)
            .map(|i| {
                let hour = (i % 288) / 12;
                Some(if (12..14).contains(&hour) {
                    base + rise
                } else {
                    base
                })
            })
            .collect();
        h
    }

    /// `days` days of a daily wave between `mid - amp` and `mid + amp`.
    fn wave(days: i64, mid: f64, amp: f64) -> LoadHistory {
        let mut h = daily(days, 0.0, 0.0);
        for (i, v) in h.values.iter_mut().enumerate() {
            let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            *v = Some(mid + amp * phase.sin());
        }
        h
    }

    #[test]
    fn todays_level_scales_the_seasonal_forecast_within_its_bounds() {
        // Seven days: 30 all day, 180 from 12:00 to 14:00; then day eight until 11:30 at
        // `today` (the same, half, or one and a half times the usual 30).
        let eighth = |today: f64| {
            let mut h = daily(8, 30.0, 150.0);
            h.values.truncate(7 * 288 + 138);
            for v in &mut h.values[7 * 288..] {
                *v = Some(today);
            }
            h
        };
        let origin = Utc.with_ymd_and_hms(2026, 11, 8, 11, 30, 0).unwrap();
        let to = origin + ChronoDuration::hours(1);
        let off = Seasonal::default();
        let level = |max: f64| Seasonal {
            level_secs: 3600,
            level_max: max,
            ..Seasonal::default()
        };
        let peak = |f: &Seasonal, today: f64| f.peak(&eighth(today), origin, to).unwrap();
        assert_eq!(peak(&off, 15.0), 180.0, "no level: the days as they were");
        assert_eq!(peak(&level(1.0), 30.0), 180.0, "a usual morning");
        assert_eq!(
            peak(&level(1.0), 15.0),
            90.0,
            "a morning at half the usual load"
        );
        assert_eq!(peak(&level(1.0), 3.0), 90.0, "never below half");
        assert_eq!(
            peak(&level(1.0), 45.0),
            180.0,
            "a busier morning: not raised at max 1"
        );
        assert_eq!(peak(&level(1.25), 45.0), 225.0, "raised up to level_max");
        // No data in the last hour: the level is not known, the forecast as it is.
        let mut gap = eighth(15.0);
        for v in &mut gap.values[7 * 288 + 126..] {
            *v = None;
        }
        assert_eq!(level(1.0).peak(&gap, origin, to), Some(180.0));
    }

    /// A forecaster that always says the same peak (or nothing).
    #[derive(Debug)]
    struct Fixed(Option<f64>);
    impl Forecaster for Fixed {
        fn name(&self) -> &'static str {
            "fixed"
        }
        fn peak(&self, _: &LoadHistory, _: DateTime<Utc>, _: DateTime<Utc>) -> Option<f64> {
            self.0
        }
    }

    #[test]
    fn accuracy_scores_the_peak_forecast_at_the_horizon_over_the_origins_that_fit() {
        // Three hours at a steady 100: hourly origins with a whole hour after them fit at
        // 02:00 and 01:00 (00:00 is the history's start, with nothing known before it).
        let mut h = daily(1, 100.0, 0.0);
        h.values.truncate(36);
        let score = |f: f64| accuracy(&Fixed(Some(f)), &h, 3600, 10, 3600).unwrap();
        let exact = score(100.0);
        assert_eq!((exact.origins, exact.error, exact.under), (2, 0.0, 0.0));
        let low = score(50.0);
        assert_eq!(
            (low.error, low.under),
            (0.5, 1.0),
            "half short: always under"
        );
        let high = score(150.0);
        assert_eq!(
            (high.error, high.under),
            (0.5, 0.0),
            "half over: never under"
        );
        let near = score(95.0);
        assert_eq!(near.under, 0.0, "short by 5 %: within the 10 % allowed");
        // The origins asked for bound the count; no forecast or no history scores nothing.
        assert_eq!(
            accuracy(&Fixed(Some(100.0)), &h, 3600, 1, 3600)
                .unwrap()
                .origins,
            1
        );
        assert_eq!(accuracy(&Fixed(None), &h, 3600, 10, 3600), None);
        h.values.truncate(12);
        assert_eq!(accuracy(&Fixed(Some(100.0)), &h, 3600, 10, 3600), None);
        // A seasonal forecast of a rise that comes back each day (origins every 5 minutes
        // over the last two days) never falls short; it is exact except at the two origins a
        // day whose window ends or starts just beside the rise, where its ±5 minutes around
        // the time of day take in a bucket of the rise: 180 for 30, an error of 5 each.
        let days = daily(9, 30.0, 150.0);
        let a = accuracy(&Seasonal::default(), &days, 1800, 576, 300).unwrap();
        assert_eq!((a.origins, a.under), (576, 0.0));
        assert!((a.error - 4.0 * 5.0 / 576.0).abs() < 1e-12, "{}", a.error);
    }

    #[test]
    fn the_daily_correlation_sees_a_rhythm_and_not_a_flat_or_random_load() {
        let c = daily_correlation(&wave(3, 60.0, 40.0)).unwrap();
        assert!(c > 0.99, "{c}");
        let c = daily_correlation(&daily(3, 30.0, 150.0)).unwrap();
        assert!(c > 0.99, "a short rise at the same time each day: {c}");
        assert_eq!(daily_correlation(&daily(3, 40.0, 0.0)), Some(0.0));
        // A day's rise that does not come back the next day.
        let mut once = daily(3, 30.0, 0.0);
        for v in &mut once.values[150..200] {
            *v = Some(180.0);
        }
        let c = daily_correlation(&once).unwrap();
        assert!(c < 0.1, "{c}");
        // Less than a day and an hour of history: no measure.
        assert_eq!(daily_correlation(&daily(1, 30.0, 150.0)), None);
    }
}
