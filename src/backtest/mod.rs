//! The backtest: replay a recorded load trace through scaling policies on the simulated fleet
//! — with the same decision core and reconciler the daemon uses — and score them against an
//! oracle, Aurora-style target tracking and a static fleet. `elasticrds backtest` and the
//! benchmark drive it; docs/backtest.md explains the model and publishes the results.
//!
//! - [`trace`]: CloudWatch export CSV (any interval) → per-minute series with gaps → scaled demand;
//! - [`replay`]: the simulated world each run starts from;
//! - [`run`]: one policy replayed tick by tick;
//! - [`oracle`], [`baselines`]: the comparison runs;
//! - [`score`]: replica-hours, breach-minutes, actions, max replicas;
//! - [`plot`]: the SVG.

pub mod baselines;
pub mod oracle;
pub mod plot;
pub mod replay;
pub mod run;
pub mod score;
pub mod sweep;
pub mod trace;

use crate::adapters::sim_load::Demand;
use crate::core::config::{ClusterSpec, Config};
use crate::core::input::InputErrors;
use crate::core::policy::Policy;
use replay::{synthetic_spec, WorldSetup};
pub use run::PolicyCase;
use score::{Score, Timeline};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use trace::Trace;

/// The trace is scaled so that its peak needs `peak_replicas` replicas at this utilization.
pub const PEAK_UTILIZATION: f64 = 0.75;
/// The oracle and the baselines keep at least this many replicas (as the default policy does).
pub const FLOOR_REPLICAS: u32 = 1;

#[derive(Debug, Clone)]
pub struct Options {
    pub peak_replicas: u32,
    pub lead: Duration,
    /// Keep per-minute series for the plot.
    pub timelines: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            peak_replicas: 4,
            lead: Duration::from_secs(12 * 60),
            timelines: false,
        }
    }
}

/// A policy with the cluster spec it is replayed on.
#[derive(Debug, Clone)]
pub struct Case {
    pub spec: ClusterSpec,
    pub case: PolicyCase,
}

/// Load a policy file for a backtest. With a cluster config the policy's cluster comes from
/// it; without one a cluster spec is synthesized under the policy's cluster name, listing
/// `max(policy max, peak_replicas) + 1` replicas so that every bound the policy sets fits.
pub fn load_policy(
    name: &str,
    file: &str,
    text: &str,
    config: Option<&Config>,
    peak_replicas: u32,
) -> Result<Case, InputErrors> {
    let synthesized;
    let config = match config {
        Some(c) => c,
        None => {
            let (cluster, max) = peek_policy(text);
            let n = max.unwrap_or(0).max(peak_replicas as usize) + 1;
            let spec = synthetic_spec(&cluster, n);
            synthesized = Config {
                clusters: [(cluster, spec)].into_iter().collect(),
            };
            &synthesized
        }
    };
    let policy = Policy::parse(file, text, config)?;
    let spec = config
        .cluster(&policy.cluster)
        .cloned()
        .unwrap_or_else(|| synthetic_spec(&policy.cluster, peak_replicas as usize + 1));
    Ok(Case {
        spec,
        case: PolicyCase {
            name: name.to_string(),
            policy,
        },
    })
}

/// The cluster a policy names and the largest max_replicas it sets (policy or schedule),
/// read leniently: the real parse reports anything wrong with its position.
fn peek_policy(text: &str) -> (String, Option<usize>) {
    let v: serde_yaml::Value = serde_yaml::from_str(text).unwrap_or(serde_yaml::Value::Null);
    let cluster = v
        .get("cluster")
        .and_then(|c| c.as_str())
        .filter(|c| !c.trim().is_empty())
        .unwrap_or("backtest")
        .to_string();
    let mut max = v.get("max_replicas").and_then(|m| m.as_u64());
    if let Some(s) = v.get("schedules").and_then(|s| s.as_sequence()) {
        for s in s {
            max = max.max(s.get("max_replicas").and_then(|m| m.as_u64()));
        }
    }
    // Bounded so that a hostile file cannot make the world huge (the parse refuses it anyway).
    (cluster, max.map(|m| m.min(1000) as usize))
}

/// Everything a backtest run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub trace: String,
    pub samples: usize,
    pub gaps: usize,
    pub step_secs: u32,
    pub minutes: usize,
    pub peak_replicas: u32,
    pub lead_secs: u64,
    pub scores: Vec<Score>,
    #[serde(skip)]
    pub timelines: Vec<(String, Timeline)>,
    #[serde(skip)]
    pub demand: Arc<Demand>,
}

impl Report {
    pub fn score(&self, name: &str) -> Option<&Score> {
        self.scores.iter().find(|s| s.name == name)
    }
    pub fn oracle(&self) -> Option<&Score> {
        self.scores
            .iter()
            .find(|s| s.kind == score::RunKind::Oracle)
    }
    pub fn target_tracking(&self) -> Option<&Score> {
        self.scores
            .iter()
            .find(|s| s.kind == score::RunKind::TargetTracking)
    }
}

/// Replay every case, then the oracle, the target-tracking baseline and the static fleet.
pub async fn backtest(trace: &Trace, cases: &[Case], opts: &Options) -> Result<Report, String> {
    let demand = Arc::new(trace.demand(opts.peak_replicas, PEAK_UTILIZATION));
    let lead_minutes = opts.lead.as_secs().div_ceil(60) as usize;
    let initial = oracle::initial_replicas(&demand, FLOOR_REPLICAS, lead_minutes);
    let mut scores = Vec::new();
    let mut timelines = Vec::new();
    let mut keep = |(s, t): (Score, Option<Timeline>)| {
        if let Some(t) = t {
            timelines.push((s.name.clone(), t));
        }
        scores.push(s);
    };
    let mut biggest = opts.peak_replicas as usize + 1;
    for c in cases {
        biggest = biggest.max(c.spec.replicas.len());
        let setup = WorldSetup::new(c.spec.clone(), demand.clone(), opts.lead, initial as usize)?;
        keep(run::run_policy(&setup, &c.case, opts.timelines).await?);
    }
    keep(oracle::run(
        &demand,
        FLOOR_REPLICAS,
        lead_minutes,
        initial,
        opts.timelines,
    ));
    let spec = synthetic_spec("baseline", biggest);
    let tt = baselines::TargetTracking::aurora(FLOOR_REPLICAS, biggest as u32);
    let setup = WorldSetup::new(spec, demand.clone(), opts.lead, initial as usize)?;
    keep(baselines::run_target_tracking(&setup, &tt, opts.timelines).await?);
    keep(baselines::run_static(
        &demand,
        opts.peak_replicas,
        opts.timelines,
    ));
    Ok(Report {
        trace: trace.name.clone(),
        samples: trace.samples,
        gaps: trace.gaps,
        step_secs: trace.step_secs,
        minutes: demand.len(),
        peak_replicas: opts.peak_replicas,
        lead_secs: opts.lead.as_secs(),
        scores,
        timelines,
        demand,
    })
}
