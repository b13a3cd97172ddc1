//! The policy's `predictive` section: forecast the cluster's total load and have replicas
//! ready before a rise (issue 15). The model ([`Predictive`]) with its defaults, and its
//! validation from the raw document. `forecast_only` decides, logs and exports what the
//! forecast would have done and changes nothing; `active` takes the larger of the rules' and
//! the forecast's count, and the forecast never scales in by itself. Documented in
//! docs/policies.md.

use super::parse::Errs;
use super::raw::{Dur, RawHoltWinters, RawPredictive, RawSeasonal};
use crate::core::domain::MetricKind;
use crate::core::forecast::{HoltWinters, Seasonal};
use serde::Serialize;

/// Defaults (docs/policies.md gives their reasons).
pub const DEFAULT_HISTORY_SECS: u64 = 14 * 86_400;
pub const DEFAULT_MIN_HISTORY_SECS: u64 = 86_400;
/// The lead time a replica takes from create to available, before any was measured: the
/// backtest's honest model puts the median at 12 minutes with a long tail.
pub const DEFAULT_LEAD_TIME_SECS: u64 = 900;
pub const DEFAULT_MARGIN_SECS: u64 = 0;
pub const DEFAULT_TARGET_CPU: f64 = 70.0;
pub const DEFAULT_MAX_ERROR: f64 = 0.3;
pub const DEFAULT_REFRESH_SECS: u64 = 3600;
/// The daily rhythm a history needs: any positive correlation (tuned; 0.3 and 0.6 did no
/// better on the training traces).
pub const DEFAULT_MIN_DAILY_CORRELATION: f64 = 0.0;
/// The longest stretch today's level is measured over (`seasonal.level`).
pub const MAX_LEVEL_SECS: u64 = 12 * 3600;
/// CloudWatch keeps 5-minute data for 63 days.
pub const MAX_HISTORY_SECS: u64 = 63 * 86_400;

/// What the forecast may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictiveMode {
    /// Decide, log and export what the forecast would have done; change nothing.
    ForecastOnly,
    /// The desired count is the larger of the rules' and the forecast's.
    Active,
}

/// Which forecaster (core::forecast) predicts the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecasterKind {
    /// The same time of day over the last days: their high values, plus a margin.
    Seasonal,
    /// Exponential smoothing of a level and a daily season.
    HoltWinters,
}

impl ForecasterKind {
    pub const ALL: [ForecasterKind; 2] = [ForecasterKind::Seasonal, ForecasterKind::HoltWinters];
    pub fn as_str(self) -> &'static str {
        match self {
            ForecasterKind::Seasonal => "seasonal",
            ForecasterKind::HoltWinters => "holt_winters",
        }
    }
}

/// A validated `predictive` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Predictive {
    pub mode: PredictiveMode,
    pub forecaster: ForecasterKind,
    /// The load forecast: `cpu` (per-replica CPU × replicas) or `connections` (a total).
    pub metric: MetricKind,
    /// Per-replica utilization the forecast sizes for (CPU percent, or connections).
    pub target: f64,
    /// How much history the forecaster reads (CloudWatch, 5-minute resolution).
    pub history_secs: u64,
    /// Less history than this: the forecast abstains.
    pub min_history_secs: u64,
    /// The replica lead time to start from; replaced by the fleet's own measurements when
    /// `learn_lead_time` is on and three creations were seen.
    pub lead_time_secs: u64,
    /// Added to the lead time to make the horizon.
    pub margin_secs: u64,
    /// The forecaster abstains when its recent relative error is above this.
    pub max_error: f64,
    /// How often the history is read again.
    pub refresh_secs: u64,
    pub learn_lead_time: bool,
    /// Abstain while the history's daily correlation is below this (-1: never).
    pub min_daily_correlation: f64,
    /// The seasonal forecaster's settings (`seasonal:` in the section).
    pub seasonal: Seasonal,
    /// The Holt-Winters forecaster's settings (`holt_winters:` in the section).
    pub holt_winters: HoltWinters,
}

impl Predictive {
    /// The section's defaults in `mode`.
    pub fn new(mode: PredictiveMode) -> Predictive {
        Predictive {
            mode,
            forecaster: ForecasterKind::Seasonal,
            metric: MetricKind::Cpu,
            target: DEFAULT_TARGET_CPU,
            history_secs: DEFAULT_HISTORY_SECS,
            min_history_secs: DEFAULT_MIN_HISTORY_SECS,
            lead_time_secs: DEFAULT_LEAD_TIME_SECS,
            margin_secs: DEFAULT_MARGIN_SECS,
            max_error: DEFAULT_MAX_ERROR,
            refresh_secs: DEFAULT_REFRESH_SECS,
            learn_lead_time: true,
            min_daily_correlation: DEFAULT_MIN_DAILY_CORRELATION,
            seasonal: Seasonal::default(),
            holt_winters: HoltWinters::default(),
        }
    }

    pub fn is_active(&self) -> bool {
        self.mode == PredictiveMode::Active
    }

    /// The horizon for a lead time: lead + margin.
    pub fn horizon_secs(&self, lead_secs: u64) -> u64 {
        lead_secs + self.margin_secs
    }
}

/// Validate the raw section (field names as written, under `predictive.`).
pub(super) fn check(raw: &RawPredictive, e: &mut Errs) -> Option<Predictive> {
    let f = |name: &str| format!("predictive.{name}");
    let mode = match raw.mode.as_deref() {
        None | Some("forecast_only") => PredictiveMode::ForecastOnly,
        Some("active") => PredictiveMode::Active,
        Some(other) => {
            e.push(
                f("mode"),
                format!("{other:?} is not one of forecast_only, active"),
            );
            PredictiveMode::ForecastOnly
        }
    };
    let mut p = Predictive::new(mode);
    if let Some(name) = &raw.forecaster {
        match ForecasterKind::ALL.iter().find(|k| k.as_str() == name) {
            Some(k) => p.forecaster = *k,
            None => {
                let known: Vec<&str> = ForecasterKind::ALL.iter().map(|k| k.as_str()).collect();
                e.push(
                    f("forecaster"),
                    format!("{name:?} is not one of {}", known.join(", ")),
                );
            }
        }
    }
    match raw.metric.as_deref() {
        None | Some("cpu") => {}
        Some("connections") => p.metric = MetricKind::Connections,
        Some(other) => e.push(
            f("metric"),
            format!("{other:?} is not one of cpu, connections"),
        ),
    }
    check_numbers(raw, &mut p, e);
    Some(p).filter(|_| e.is_empty())
}

/// `target`, the durations and `max_error`.
fn check_numbers(raw: &RawPredictive, p: &mut Predictive, e: &mut Errs) {
    check_target(raw.target, p, e);
    check_durations(raw, p, e);
    if let Some(m) = raw.max_error {
        if !(m > 0.0 && m.is_finite()) {
            e.push(
                "predictive.max_error",
                format!("{m}: a relative error above 0 (0.3 = 30 %)"),
            );
        } else {
            p.max_error = m;
        }
    }
    if let Some(v) = raw.learn_lead_time {
        p.learn_lead_time = v;
    }
    let corr = "a correlation, -1 (never abstain for it) to 1";
    let m = &mut p.min_daily_correlation;
    set_within(
        e,
        "min_daily_correlation",
        raw.min_daily_correlation,
        (-1.0, 1.0),
        corr,
        m,
    );
    if let Some(r) = &raw.seasonal {
        check_seasonal(r, &mut p.seasonal, e);
    }
    if let Some(r) = &raw.holt_winters {
        check_holt_winters(r, &mut p.holt_winters, e);
    }
}

/// `target`: above 0 (at most 100 for CPU); required for connections.
fn check_target(target: Option<f64>, p: &mut Predictive, e: &mut Errs) {
    let cpu = p.metric == MetricKind::Cpu;
    match target {
        Some(t) if !(t > 0.0 && t.is_finite()) || (cpu && t > 100.0) => {
            let cap = if cpu {
                " and at most 100 (percent)"
            } else {
                ""
            };
            e.push(
                "predictive.target",
                format!("{t}: a per-replica utilization above 0{cap}"),
            );
        }
        Some(t) => p.target = t,
        None if p.metric == MetricKind::Connections => e.push(
            "predictive.target",
            "is required for metric connections (connections per replica)",
        ),
        None => {}
    }
}

/// `history`, `min_history`, `lead_time`, `margin`, `refresh`, each within its range.
fn check_durations(raw: &RawPredictive, p: &mut Predictive, e: &mut Errs) {
    let h = (3600, MAX_HISTORY_SECS);
    set_duration(e, "history", raw.history, h, &mut p.history_secs);
    let mh = (0, MAX_HISTORY_SECS);
    set_duration(
        e,
        "min_history",
        raw.min_history,
        mh,
        &mut p.min_history_secs,
    );
    let lead = (60, 86_400);
    set_duration(e, "lead_time", raw.lead_time, lead, &mut p.lead_time_secs);
    set_duration(e, "margin", raw.margin, (0, 86_400), &mut p.margin_secs);
    set_duration(
        e,
        "refresh",
        raw.refresh,
        (300, 86_400),
        &mut p.refresh_secs,
    );
    if p.min_history_secs > p.history_secs {
        e.push("predictive.min_history", "is longer than history");
    }
}

/// Set `slot` to the duration at `predictive.<field>` when it lies in `[lo, hi]` seconds.
fn set_duration(
    e: &mut Errs,
    field: &str,
    value: Option<Dur>,
    (lo, hi): (u64, u64),
    slot: &mut u64,
) {
    match value {
        Some(Dur(s)) if s < lo || s > hi => e.push(
            format!("predictive.{field}"),
            format!("{s}s is outside {lo}s to {hi}s"),
        ),
        Some(Dur(s)) => *slot = s,
        None => {}
    }
}

const MARGIN: &str = "a relative margin, 0 to 10 (0.1 = 10 %)";

/// Set `slot` to `value` when it lies within `[lo, hi]`; otherwise report
/// `predictive.<field>: <value>: <what>`.
fn set_within(
    e: &mut Errs,
    field: &str,
    value: Option<f64>,
    (lo, hi): (f64, f64),
    what: &str,
    slot: &mut f64,
) {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => {
            e.push(format!("predictive.{field}"), format!("{v}: {what}"))
        }
        Some(v) => *slot = v,
        None => {}
    }
}

/// `holt_winters.alpha`, `.gamma`, `.margin`.
fn check_holt_winters(r: &RawHoltWinters, hw: &mut HoltWinters, e: &mut Errs) {
    let smoothing = "a smoothing factor, 0 to 1";
    set_within(
        e,
        "holt_winters.alpha",
        r.alpha,
        (0.0, 1.0),
        smoothing,
        &mut hw.alpha,
    );
    set_within(
        e,
        "holt_winters.gamma",
        r.gamma,
        (0.0, 1.0),
        smoothing,
        &mut hw.gamma,
    );
    set_within(
        e,
        "holt_winters.margin",
        r.margin,
        (0.0, 10.0),
        MARGIN,
        &mut hw.margin,
    );
}

/// `seasonal.days`, `.quantile`, `.margin`, `.level`, `.level_max`.
fn check_seasonal(r: &RawSeasonal, s: &mut Seasonal, e: &mut Errs) {
    let level = (0, MAX_LEVEL_SECS);
    set_duration(e, "seasonal.level", r.level, level, &mut s.level_secs);
    set_within(
        e,
        "seasonal.level_max",
        r.level_max,
        (1.0, 4.0),
        "1 (the level only lowers the forecast) to 4",
        &mut s.level_max,
    );
    match r.days {
        Some(d) if !(1..=56).contains(&d) => {
            e.push("predictive.seasonal.days", format!("{d}: 1 to 56 days"))
        }
        Some(d) => s.days = d,
        None => {}
    }
    let quantile = "0 (the lowest day) to 1 (the highest)";
    set_within(
        e,
        "seasonal.quantile",
        r.quantile,
        (0.0, 1.0),
        quantile,
        &mut s.quantile,
    );
    set_within(
        e,
        "seasonal.margin",
        r.margin,
        (0.0, 10.0),
        MARGIN,
        &mut s.margin,
    );
}

#[cfg(test)]
mod tests {
    use crate::core::config::Config;
    use crate::core::policy::{ForecasterKind, Policy, PredictiveMode};

    const CONFIG: &str = "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n";

    fn parse(text: &str) -> Result<Policy, String> {
        let config = Config::parse("c.yaml", CONFIG).unwrap();
        Policy::parse("p.yaml", text, &config).map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_defaults_to_forecast_only_with_the_documented_values() {
        let p = parse("cluster: c1\npredictive: {}\n")
            .unwrap()
            .predictive
            .unwrap();
        assert_eq!(p.mode, PredictiveMode::ForecastOnly);
        assert_eq!(p.forecaster, ForecasterKind::Seasonal);
        assert_eq!((p.history_secs, p.min_history_secs), (14 * 86_400, 86_400));
        assert_eq!(
            (p.lead_time_secs, p.margin_secs, p.refresh_secs),
            (900, 0, 3600)
        );
        assert_eq!(
            (p.target, p.max_error, p.learn_lead_time),
            (70.0, 0.3, true)
        );
        let p = parse("cluster: c1\npredictive:\n  mode: active\n  lead_time: 20m\n  margin: 0s\n  target: 55\n")
            .unwrap()
            .predictive
            .unwrap();
        assert_eq!(
            (p.mode, p.lead_time_secs, p.margin_secs, p.target),
            (PredictiveMode::Active, 1200, 0, 55.0)
        );
        assert!(parse("cluster: c1\n").unwrap().predictive.is_none());
    }

    #[test]
    fn bad_fields_are_named_with_their_line() {
        let e = parse("cluster: c1\npredictive:\n  mode: eager\n  forecaster: crystal_ball\n  target: 150\n  history: 90d\n").unwrap_err();
        for want in [
            "p.yaml:3:3: predictive.mode: \"eager\" is not one of forecast_only, active",
            "p.yaml:4:3: predictive.forecaster: \"crystal_ball\" is not one of seasonal, holt_winters",
            "p.yaml:5:3: predictive.target",
            "p.yaml:6:3: predictive.history",
        ] {
            assert!(e.contains(want), "{want} not in:\n{e}");
        }
        let e = parse("cluster: c1\npredictive:\n  metric: connections\n").unwrap_err();
        assert!(
            e.contains("predictive.target: is required for metric connections"),
            "{e}"
        );
        let e = parse("cluster: c1\npredictive:\n  horizon: 5m\n").unwrap_err();
        assert!(e.contains("horizon"), "{e}");
    }

    #[test]
    fn todays_level_is_read_and_checked() {
        let p = parse("cluster: c1\npredictive:\n  seasonal: {level: 1h, level_max: 1.25}\n")
            .unwrap()
            .predictive
            .unwrap();
        assert_eq!((p.seasonal.level_secs, p.seasonal.level_max), (3600, 1.25));
        let off = parse("cluster: c1\npredictive: {}\n")
            .unwrap()
            .predictive
            .unwrap();
        assert_eq!((off.seasonal.level_secs, off.seasonal.level_max), (0, 1.0));
        let e = parse("cluster: c1\npredictive:\n  seasonal: {level: 13h, level_max: 0.5}\n")
            .unwrap_err();
        assert!(
            e.contains("predictive.seasonal.level: 46800s is outside 0s to 43200s"),
            "{e}"
        );
        assert!(
            e.contains("predictive.seasonal.level_max: 0.5: 1 (the level only lowers"),
            "{e}"
        );
    }

    #[test]
    fn the_seasonal_settings_are_read_and_checked() {
        let p = parse("cluster: c1\npredictive:\n  seasonal: {days: 14, quantile: 1, margin: 0}\n")
            .unwrap()
            .predictive
            .unwrap();
        assert_eq!(
            (p.seasonal.days, p.seasonal.quantile, p.seasonal.margin),
            (14, 1.0, 0.0)
        );
        let e = parse(
            "cluster: c1\npredictive:\n  seasonal:\n    days: 0\n    quantile: 2\n    margin: -1\n",
        )
        .unwrap_err();
        for want in [
            "predictive.seasonal.days: 0: 1 to 56 days",
            "predictive.seasonal.quantile: 2: 0 (the lowest day) to 1",
            "predictive.seasonal.margin: -1: a relative margin",
        ] {
            assert!(e.contains(want), "{want} not in:\n{e}");
        }
        let e = parse("cluster: c1\npredictive:\n  min_daily_correlation: 2\n").unwrap_err();
        assert!(
            e.contains("predictive.min_daily_correlation: 2: a correlation"),
            "{e}"
        );
        let e = parse("cluster: c1\npredictive:\n  seasonal: {weeks: 2}\n").unwrap_err();
        assert!(e.contains("weeks"), "{e}");
    }
}
