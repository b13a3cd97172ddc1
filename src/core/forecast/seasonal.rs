//! TEMPORARY stand-in (replaced by the helper's seasonal forecaster).
use super::{Forecaster, LoadHistory};
use chrono::{DateTime, Duration, Utc};
#[derive(Debug, Clone)]
pub struct Seasonal {
    pub days: usize,
    pub margin: f64,
}
impl Default for Seasonal {
    fn default() -> Self {
        Seasonal {
            days: 7,
            margin: 0.1,
        }
    }
}
impl Forecaster for Seasonal {
    fn name(&self) -> &'static str {
        "seasonal"
    }
    fn peak(&self, h: &LoadHistory, origin: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        let mut best: Option<f64> = None;
        for d in 1..=self.days as i64 {
            let from = origin - Duration::days(d) - Duration::minutes(5);
            let until = to - Duration::days(d) + Duration::minutes(5);
            if let Some(v) = h.peak(from, until) {
                best = Some(best.map_or(v, |b: f64| b.max(v)));
            }
        }
        best.map(|b| b * (1.0 + self.margin))
    }
}
