//! The fleet-model options of `elasticrds backtest` (`--model`, `--lead-time`, `--lead-spread`,
//! `--metric-delay`, `--skew`, `--warmup`, `--warmup-capacity`, `--delete-time`, `--seed`):
//! parsed and checked into an [`adapters::sim_model::FleetModel`](crate::adapters::sim_model).
//! Each option given overrides that effect of the chosen base model.

use super::CliError;
use crate::adapters::sim_model::FleetModel;
use clap::{Args, ValueEnum};
use std::time::Duration;

/// Which model the options start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelBase {
    /// Drawn lead times, metric delay, skew, warm-up and paid deletes (docs/backtest.md).
    Honest,
    /// A fixed lead time and none of the other effects (the model before them).
    Simple,
}

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The fleet model every run is scored on: `honest` (default) or `simple`.
    #[arg(long = "model", value_enum, default_value_t = ModelBase::Honest)]
    pub base: ModelBase,
    /// Median provisioning lead time of a new replica (whole minutes; default 12m).
    #[arg(long, value_parser = whole_minutes)]
    pub lead_time: Option<Duration>,
    /// Spread of the lead time (log-normal sigma; 0 = always the median; default 0.6).
    #[arg(long, allow_negative_numbers = true)]
    pub lead_spread: Option<f64>,
    /// How long after a minute ends its CloudWatch datapoint is visible (default 2m).
    #[arg(long, value_parser = whole_minutes)]
    pub metric_delay: Option<Duration>,
    /// How much more than the mean the hottest replica carries (0.10 = 10 %; default 0.10).
    #[arg(long, allow_negative_numbers = true)]
    pub skew: Option<f64>,
    /// How long a new replica warms up (default 10m; 0m = none).
    #[arg(long, value_parser = whole_minutes)]
    pub warmup: Option<Duration>,
    /// Capacity of a new replica when it becomes available, as a fraction (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    pub warmup_capacity: Option<f64>,
    /// How long a deleted replica is still paid for (default 5m).
    #[arg(long, value_parser = whole_minutes)]
    pub delete_time: Option<Duration>,
    /// Seed of the lead-time draws (default 1).
    #[arg(long, allow_negative_numbers = true)]
    pub seed: Option<u64>,
}

/// A duration of whole minutes, at most a day.
pub fn whole_minutes(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.as_secs() % 60 != 0 || d > Duration::from_secs(24 * 3600) {
        return Err("give whole minutes, at most 24h (e.g. 12m)".into());
    }
    Ok(d)
}

fn minutes(d: Duration) -> u32 {
    (d.as_secs() / 60) as u32
}

impl ModelArgs {
    /// The model these options describe; an error naming the option when a value is out of
    /// range (exit 2, nothing replayed).
    pub fn model(&self) -> Result<FleetModel, CliError> {
        let lead = self.lead_time.map(minutes);
        let mut m = match self.base {
            ModelBase::Honest => FleetModel::default(),
            ModelBase::Simple => FleetModel::simple(12),
        };
        if let Some(l) = lead {
            m.lead.median_minutes = l;
        }
        if let Some(s) = self.lead_spread {
            m.lead.spread = s;
        }
        if let Some(s) = self.seed {
            m.lead.seed = s;
        }
        if let Some(d) = self.metric_delay {
            m.metric_delay_minutes = minutes(d);
        }
        if let Some(s) = self.skew {
            m.skew = s;
        }
        if let Some(w) = self.warmup {
            m.warmup.minutes = minutes(w);
        }
        if let Some(c) = self.warmup_capacity {
            m.warmup.start_capacity = c;
        }
        if let Some(d) = self.delete_time {
            m.delete_minutes = minutes(d);
        }
        m.check()
            .map_err(|e| CliError::input(format!("fleet model: {e}")))?;
        Ok(m)
    }
}
