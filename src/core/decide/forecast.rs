//! The forecast's part in a decision (the policy's `predictive` section): the rules' count
//! and the forecast-sized count combine as their maximum, so the forecast can only raise the
//! count or hold back a scale-in down to what it needs, never scale in by itself; the holds,
//! bounds, cooldowns and max step then apply as to any rule. Both outcomes are settled, so a
//! decision reports what the forecast changed (or, in `forecast_only` mode, would have).

use super::reason::RuleCode;
use crate::core::forecast::Forecast;
use serde::Serialize;

/// What the forecast did to one decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastReport {
    #[serde(flatten)]
    pub forecast: Forecast,
    /// The rules' own count (clamped later), when they had one.
    pub reactive: Option<usize>,
    /// The desired count with the forecast taken in (what `active` does).
    pub desired_with: usize,
    /// The desired count from the rules alone (what `forecast_only` does).
    pub desired_without: usize,
}

impl ForecastReport {
    /// Whether the forecast raised (or, in `forecast_only`, would have raised) the count.
    pub fn raised(&self) -> bool {
        self.desired_with > self.desired_without
    }
}

/// The rules' winning proposal with the forecast's count taken in: the larger wins, the
/// forecast only when strictly larger (so a tie stays the rules'). No rule proposal (data
/// missing) stays none: the forecast does not act on a cluster it cannot observe.
pub(super) fn combine(
    reactive: Option<(usize, RuleCode)>,
    forecast: &Forecast,
) -> Option<(usize, RuleCode)> {
    match (reactive, forecast.replicas) {
        (Some((r, _)), Some(n)) if n > r => Some((n, RuleCode::Forecast)),
        (r, _) => r,
    }
}
