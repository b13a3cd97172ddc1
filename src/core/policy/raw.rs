//! A policy document as written: the raw model `serde` reads (unknown fields refused), before
//! validation (`super::parse`). Durations are seconds or humantime strings.

use serde::Deserialize;
use std::fmt;

/// A duration: an integer number of seconds, or a humantime string such as `5m`, `90s`, `9h`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dur(pub(super) u64);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds, or a string such as \"90s\", \"5m\", \"9h\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(Dur)
                    .map_err(|_| E::custom(format!("duration {v} is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                if let Ok(n) = v.trim().parse::<u64>() {
                    return Ok(Dur(n));
                }
                let d = humantime::parse_duration(v.trim())
                    .map_err(|e| E::custom(format!("{v:?} is not a duration: {e}")))?;
                if d.subsec_nanos() != 0 {
                    // 500ms would silently be 0s.
                    return Err(E::custom(format!(
                        "{v:?}: policy durations are whole seconds"
                    )));
                }
                Ok(Dur(d.as_secs()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a policy (a mapping of its fields)")]
pub(super) struct RawPolicy {
    pub(super) cluster: String,
    #[serde(default)]
    pub(super) min_replicas: Option<usize>,
    #[serde(default)]
    pub(super) max_replicas: Option<usize>,
    #[serde(default)]
    pub(super) period: Option<Dur>,
    #[serde(default)]
    pub(super) observe_only: bool,
    #[serde(default)]
    pub(super) rules: Option<Vec<RawRule>>,
    #[serde(default)]
    pub(super) scale_out: Option<RawDirection>,
    #[serde(default)]
    pub(super) scale_in: Option<RawDirection>,
    #[serde(default)]
    pub(super) missing_data: Option<RawMissing>,
    #[serde(default)]
    pub(super) warmup: Option<RawWarmup>,
    #[serde(default)]
    pub(super) schedules: Vec<RawSchedule>,
    #[serde(default)]
    pub(super) predictive: Option<RawPredictive>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a rule (a mapping of its fields)")]
pub(super) struct RawRule {
    pub(super) metric: String,
    #[serde(default)]
    pub(super) statistic: Option<String>,
    #[serde(default)]
    pub(super) aggregation: Option<String>,
    #[serde(default)]
    pub(super) target: Option<f64>,
    #[serde(default)]
    pub(super) tolerance: Option<f64>,
    #[serde(default)]
    pub(super) above: Option<f64>,
    #[serde(default)]
    pub(super) add: Option<usize>,
    #[serde(default)]
    pub(super) below: Option<f64>,
    #[serde(default)]
    pub(super) remove: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(
    deny_unknown_fields,
    expecting = "a scale_out or scale_in section (a mapping)"
)]
pub(super) struct RawDirection {
    #[serde(default)]
    pub(super) enabled: Option<bool>,
    #[serde(default)]
    pub(super) cooldown: Option<Dur>,
    #[serde(default)]
    pub(super) stabilization: Option<Dur>,
    #[serde(default)]
    pub(super) max_step: Option<usize>,
    #[serde(default)]
    pub(super) while_in_flight: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a missing_data section (a mapping)")]
pub(super) struct RawMissing {
    #[serde(default)]
    pub(super) stale_after_periods: Option<u32>,
    #[serde(default)]
    pub(super) scale_out: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a warmup section (a mapping)")]
pub(super) struct RawWarmup {
    #[serde(default)]
    pub(super) duration: Option<Dur>,
    #[serde(default)]
    pub(super) max_lag: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a schedule (a mapping of its fields)"
)]
pub(super) struct RawSchedule {
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) cron: String,
    #[serde(default)]
    pub(super) timezone: Option<String>,
    pub(super) duration: Dur,
    #[serde(default)]
    pub(super) min_replicas: Option<usize>,
    #[serde(default)]
    pub(super) max_replicas: Option<usize>,
    #[serde(default)]
    pub(super) replica_class: Option<String>,
    #[serde(default)]
    pub(super) master_class: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a predictive section (a mapping)")]
pub(super) struct RawPredictive {
    #[serde(default)]
    pub(super) mode: Option<String>,
    #[serde(default)]
    pub(super) forecaster: Option<String>,
    #[serde(default)]
    pub(super) metric: Option<String>,
    #[serde(default)]
    pub(super) target: Option<f64>,
    #[serde(default)]
    pub(super) history: Option<Dur>,
    #[serde(default)]
    pub(super) min_history: Option<Dur>,
    #[serde(default)]
    pub(super) lead_time: Option<Dur>,
    #[serde(default)]
    pub(super) margin: Option<Dur>,
    #[serde(default)]
    pub(super) max_error: Option<f64>,
    #[serde(default)]
    pub(super) refresh: Option<Dur>,
    #[serde(default)]
    pub(super) learn_lead_time: Option<bool>,
    #[serde(default)]
    pub(super) min_daily_correlation: Option<f64>,
    #[serde(default)]
    pub(super) seasonal: Option<RawSeasonal>,
    #[serde(default)]
    pub(super) holt_winters: Option<RawHoltWinters>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a holt_winters section (a mapping)")]
pub(super) struct RawHoltWinters {
    #[serde(default)]
    pub(super) alpha: Option<f64>,
    #[serde(default)]
    pub(super) gamma: Option<f64>,
    #[serde(default)]
    pub(super) margin: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, expecting = "a seasonal section (a mapping)")]
pub(super) struct RawSeasonal {
    #[serde(default)]
    pub(super) days: Option<u32>,
    #[serde(default)]
    pub(super) quantile: Option<f64>,
    #[serde(default)]
    pub(super) margin: Option<f64>,
    #[serde(default)]
    pub(super) level: Option<Dur>,
    #[serde(default)]
    pub(super) level_max: Option<f64>,
}
