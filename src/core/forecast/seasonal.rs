//! The seasonal forecaster: the load at the same time of day on each of the last days. For
//! each 5-minute bucket of the window, each past day contributes its highest value within
//! ±`window_buckets` of that time of day; the forecast for the bucket is the `quantile` of
//! those daily values (1.0: the highest day; 0.5: a typical day), and the window's forecast is
//! its highest bucket, times `1 + margin`. Days without data are skipped; fewer than
//! `min_days` with data for the window: no forecast.
//!
//! Today's level (`level_secs` > 0): the same forecast made for the last `level_secs` before
//! the origin is compared with what the load actually was then; the window's forecast is scaled
//! by that ratio, between [`LEVEL_MIN`] and `level_max`. A day running quieter than the days it is
//! forecast from gets fewer replicas ahead of its rise; a busier one more, up to `level_max`.

use super::{Forecaster, LoadHistory};
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Seasonal {
    /// Past days looked at.
    pub days: u32,
    /// Buckets either side of the time of day a day contributes from.
    pub window_buckets: u32,
    /// Quantile of the daily values (0 to 1).
    pub quantile: f64,
    /// Relative margin added to the forecast.
    pub margin: f64,
    /// Fewest days with data for a forecast.
    pub min_days: u32,
    /// How far back today's level is measured (0: not measured, the forecast as it is).
    pub level_secs: u64,
    /// The highest the level may scale the forecast.
    pub level_max: f64,
}

/// The lowest the level may scale the forecast: a half-quiet hour does not remove the rise.
pub const LEVEL_MIN: f64 = 0.5;

impl Default for Seasonal {
    fn default() -> Self {
        Seasonal {
            days: 7,
            window_buckets: 1,
            quantile: 0.75,
            margin: 0.0,
            min_days: 1,
            level_secs: 0,
            level_max: 1.0,
        }
    }
}

impl Seasonal {
    /// The forecast for the bucket starting at `t`: the quantile of the past days' values.
    fn bucket(&self, h: &LoadHistory, t: DateTime<Utc>) -> Option<f64> {
        let step = Duration::seconds(i64::from(h.step_secs));
        let w = step * self.window_buckets as i32;
        let mut daily: Vec<f64> = (1..=i64::from(self.days))
            .filter_map(|d| {
                let at = t - Duration::days(d);
                h.peak(at - w, at + w + step)
            })
            .collect();
        if daily.len() < self.min_days.max(1) as usize {
            return None;
        }
        daily.sort_by(f64::total_cmp);
        let i = ((daily.len() - 1) as f64 * self.quantile.clamp(0.0, 1.0)).round() as usize;
        Some(daily[i])
    }

    /// Today's level at `origin`: the load of the last `level_secs` over what this forecaster
    /// says for those buckets, between [`LEVEL_MIN`] and `level_max`; 1 when either is unknown.
    fn level(&self, h: &LoadHistory, origin: DateTime<Utc>) -> f64 {
        if self.level_secs == 0 {
            return 1.0;
        }
        let step = Duration::seconds(i64::from(h.step_secs.max(1)));
        let end = super::align_down(origin, h.step_secs);
        let mut t = end - Duration::seconds(self.level_secs as i64);
        let (mut actual, mut expected) = (0.0, 0.0);
        while t < end {
            if let (Some(a), Some(f)) = (h.value_at(t), self.bucket(h, t)) {
                actual += a;
                expected += f;
            }
            t += step;
        }
        if expected <= 0.0 || !actual.is_finite() {
            return 1.0;
        }
        (actual / expected).clamp(LEVEL_MIN, self.level_max.max(LEVEL_MIN))
    }
}

impl Forecaster for Seasonal {
    fn name(&self) -> &'static str {
        "seasonal"
    }

    fn peak(&self, h: &LoadHistory, origin: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        let step = Duration::seconds(i64::from(h.step_secs.max(1)));
        let mut t = super::align_down(origin, h.step_secs);
        let mut best: Option<f64> = None;
        while t < to {
            if let Some(v) = self.bucket(h, t) {
                best = Some(best.map_or(v, |b| b.max(v)));
            }
            t += step;
        }
        let level = self.level(h, origin);
        best.map(|b| (b * level * (1.0 + self.margin)).max(0.0))
    }
}
