//! The seasonal forecaster: the load at the same time of day on each of the last days. For
//! each 5-minute bucket of the window, each past day contributes its highest value within
//! ±`window_buckets` of that time of day; the forecast for the bucket is the `quantile` of
//! those daily values (1.0: the highest day; 0.5: a typical day), and the window's forecast is
//! its highest bucket, times `1 + margin`. Days without data are skipped; fewer than
//! `min_days` with data for the window: no forecast.

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
}

impl Default for Seasonal {
    fn default() -> Self {
        Seasonal {
            days: 7,
            window_buckets: 1,
            quantile: 0.75,
            margin: 0.0,
            min_days: 1,
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
        best.map(|b| (b * (1.0 + self.margin)).max(0.0))
    }
}
