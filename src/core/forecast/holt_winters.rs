//! The Holt-Winters forecaster: exponential smoothing of a level and a daily season (additive,
//! no trend: over a horizon of minutes a trend adds nothing a level does not follow). The
//! first day of the history sets the level (its mean) and the season (each bucket's
//! difference from it); each later known bucket moves the level by `alpha` toward the value
//! less its season, and that bucket's season by `gamma` toward the value less the level. The
//! forecast for a bucket ahead is the level plus that time of day's season; the window's
//! forecast is its highest bucket, times `1 + margin`. Gaps are skipped. Less than a day of
//! history: no forecast.

use super::{Forecaster, LoadHistory};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HoltWinters {
    /// Smoothing of the level (0 to 1: higher follows the latest values more).
    pub alpha: f64,
    /// Smoothing of the season (0 to 1: higher follows the latest days more).
    pub gamma: f64,
    /// Relative margin added to the forecast.
    pub margin: f64,
}

impl Default for HoltWinters {
    fn default() -> Self {
        HoltWinters {
            alpha: 0.1,
            gamma: 0.2,
            margin: 0.0,
        }
    }
}

/// The smoothed state after the last bucket of a history.
struct State {
    level: f64,
    season: Vec<f64>,
}

impl HoltWinters {
    /// Fit on the whole history; `None` with less than a day of it, or an empty first day.
    fn fit(&self, h: &LoadHistory) -> Option<State> {
        let m = (86_400 / h.step_secs.max(1)) as usize;
        if m == 0 || h.values.len() < m {
            return None;
        }
        let first: Vec<f64> = h.values[..m].iter().flatten().copied().collect();
        if first.is_empty() {
            return None;
        }
        let mut level = first.iter().sum::<f64>() / first.len() as f64;
        let mut season: Vec<f64> = (h.values[..m].iter())
            .map(|v| v.map_or(0.0, |v| v - level))
            .collect();
        let (a, g) = (self.alpha.clamp(0.0, 1.0), self.gamma.clamp(0.0, 1.0));
        for (i, v) in h.values.iter().enumerate().skip(m) {
            let Some(y) = *v else { continue };
            let s = season[i % m];
            let next = a * (y - s) + (1.0 - a) * level;
            season[i % m] = g * (y - next) + (1.0 - g) * s;
            level = next;
        }
        Some(State { level, season })
    }
}

impl Forecaster for HoltWinters {
    fn name(&self) -> &'static str {
        "holt_winters"
    }

    fn peak(&self, h: &LoadHistory, origin: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        let state = self.fit(h)?;
        let step = i64::from(h.step_secs.max(1));
        let m = state.season.len() as i64;
        let from = (origin - h.start).num_seconds().div_euclid(step);
        let end = (to - h.start).num_seconds().div_euclid(step)
            + i64::from((to - h.start).num_seconds().rem_euclid(step) != 0);
        let best = (from.max(0)..end.max(0))
            .map(|i| state.level + state.season[i.rem_euclid(m) as usize])
            .reduce(f64::max)?;
        Some((best * (1.0 + self.margin)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::MetricKind;
    use chrono::{Duration, TimeZone};

    fn history(days: usize, f: impl Fn(usize) -> Option<f64>) -> LoadHistory {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let mut h = LoadHistory::empty(MetricKind::Cpu, 300, start);
        h.values = (0..days * 288).map(f).collect();
        h
    }

    #[test]
    fn a_repeating_day_is_forecast_and_a_level_shift_is_followed() {
        // 40 all day, 100 from 12:00 to 13:00, three days.
        let rise = |i: usize| {
            Some(if (144..156).contains(&(i % 288)) {
                100.0
            } else {
                40.0
            })
        };
        let h = history(3, rise);
        let day4 = Utc.with_ymd_and_hms(2026, 11, 4, 0, 0, 0).unwrap();
        let hw = HoltWinters::default();
        let before = day4 + Duration::minutes(11 * 60 + 45);
        let p = hw.peak(&h, before, before + Duration::minutes(20)).unwrap();
        assert!((p - 100.0).abs() < 1.0, "{p}");
        let quiet = hw.peak(&h, day4, day4 + Duration::minutes(20)).unwrap();
        assert!((quiet - 40.0).abs() < 1.0, "{quiet}");
        // The third day twice as busy all day: the level moves most of the way.
        let shifted = history(3, |i| rise(i).map(|v| if i >= 576 { v + 40.0 } else { v }));
        let q = hw
            .peak(&shifted, day4, day4 + Duration::minutes(20))
            .unwrap();
        assert!(q > 70.0, "{q}");
        // Less than a day: nothing.
        assert_eq!(
            hw.peak(&history(0, rise), day4, day4 + Duration::minutes(20)),
            None
        );
    }

    #[test]
    fn gaps_are_skipped_and_a_margin_is_added() {
        let h = history(2, |i| (i % 7 != 0).then_some(50.0));
        let day3 = Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap();
        let hw = HoltWinters {
            margin: 0.1,
            ..HoltWinters::default()
        };
        let p = hw.peak(&h, day3, day3 + Duration::minutes(15)).unwrap();
        assert!((p - 55.0).abs() < 1e-6, "{p}");
    }
}
