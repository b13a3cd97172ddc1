//! The backtest: replay a recorded load trace through scaling policies on the simulated fleet
//! — with the same decision core and reconciler the daemon uses — and score them against an
//! oracle, Aurora-style target tracking, HPA-style scaling and a static fleet. `elasticrds
//! backtest` and the benchmark drive it; docs/backtest.md explains the model and publishes the
//! results.
//!
//! - [`trace`]: CloudWatch export CSV (any interval) → per-minute series with gaps → scaled demand;
//! - [`replay`]: the simulated world each run starts from;
//! - [`run`]: one policy replayed tick by tick;
//! - [`oracle`], [`baselines`]: the comparison runs;
//! - [`score`]: replica-hours, breach-minutes, actions, max replicas;
//! - [`plot`]: the SVG;
//! - [`frontier`]: `--sweep KEY=V1,...`, the cost/breach frontier and its SVG.

pub mod baselines;
pub mod frontier;
pub mod oracle;
pub mod plot;
pub mod replay;
pub mod run;
pub mod score;
pub mod sweep;
pub mod trace;

use crate::adapters::sim_load::Demand;
use crate::adapters::sim_model::FleetModel;
use crate::core::config::{ClusterSpec, Config};
use crate::core::input::InputErrors;
use crate::core::policy::Policy;
use replay::{synthetic_spec, WorldSetup};
pub use run::PolicyCase;
use score::{Score, Timeline};
use serde::Serialize;
use std::sync::Arc;
use trace::Trace;

/// The trace is scaled so that its peak needs `peak_replicas` replicas at this utilization.
pub const PEAK_UTILIZATION: f64 = 0.75;
/// The oracle and the baselines keep at least this many replicas (as the default policy does).
pub const FLOOR_REPLICAS: u32 = 1;

#[derive(Debug, Clone)]
pub struct Options {
    pub peak_replicas: u32,
    /// The world every run is scored on (lead times, metric delay, skew, warm-up, deletes).
    pub model: FleetModel,
    /// Keep per-minute series for the plot.
    pub timelines: bool,
    /// CPU target (percent) of the Aurora-style and HPA-style baselines.
    pub baseline_target: f64,
}

impl Options {
    /// `trace` scaled into demand: at its peak the hottest of `peak_replicas` replicas runs at
    /// [`PEAK_UTILIZATION`] (the mean a little lower when the model's skew applies).
    pub fn demand(&self, trace: &Trace) -> Demand {
        let hot = self.model.hottest_factor(self.peak_replicas);
        trace.demand(self.peak_replicas, PEAK_UTILIZATION / hot)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            peak_replicas: 4,
            model: FleetModel::default(),
            timelines: false,
            baseline_target: baselines::DEFAULT_TARGET,
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
                notifications: Default::default(),
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
    /// The median lead time (the model's `lead.median_minutes`, in seconds).
    pub lead_secs: u64,
    /// The fleet model the runs were scored on.
    pub model: FleetModel,
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
    /// The Aurora-style baseline the goal is held against: of its readings of AWS's
    /// documentation, the stronger run (fewest breach-minutes, then fewest replica-hours).
    pub fn target_tracking(&self) -> Option<&Score> {
        strongest(&self.scores, score::RunKind::TargetTracking)
    }
}

/// The run of `kind` with the fewest breach-minutes, then the fewest replica-hours (the first
/// on a tie).
pub fn strongest(scores: &[Score], kind: score::RunKind) -> Option<&Score> {
    scores.iter().filter(|s| s.kind == kind).reduce(|best, s| {
        let key = |s: &Score| (s.breach_minutes, s.replica_hours);
        if key(s) < key(best) {
            s
        } else {
            best
        }
    })
}

/// Replay every case, then the oracle, the baselines ([`baselines::run_baselines`]) and the
/// static fleet. The baselines keep the first policy's min and max replicas (at least
/// [`FLOOR_REPLICAS`]; without a policy, `FLOOR_REPLICAS..=peak_replicas + 1`), on a synthetic
/// cluster listing exactly `max` replicas.
pub async fn backtest(trace: &Trace, cases: &[Case], opts: &Options) -> Result<Report, String> {
    let demand = Arc::new(opts.demand(trace));
    let model = &opts.model;
    let initial = oracle::initial_replicas(&demand, FLOOR_REPLICAS, model);
    let mut scores = Vec::new();
    let mut timelines = Vec::new();
    let mut keep = |(s, t): (Score, Option<Timeline>)| {
        if let Some(t) = t {
            timelines.push((s.name.clone(), t));
        }
        scores.push(s);
    };
    for c in cases {
        let setup = WorldSetup::new(c.spec.clone(), demand.clone(), model, initial as usize)?;
        keep(run::run_policy(&setup, &c.case, opts.timelines).await?);
    }
    keep(oracle::run(
        &demand,
        FLOOR_REPLICAS,
        model,
        initial,
        opts.timelines,
    ));
    let bounds = baseline_bounds(cases, opts.peak_replicas);
    let spec = synthetic_spec("baseline", bounds.1 as usize);
    let setup = WorldSetup::new(spec, demand.clone(), model, initial as usize)?;
    let runs = baselines::run_baselines(&setup, bounds, opts.baseline_target, opts.timelines);
    for r in runs.await? {
        keep(r);
    }
    let peak_need = oracle::needs(&demand, FLOOR_REPLICAS, model)
        .into_iter()
        .max()
        .unwrap_or(FLOOR_REPLICAS);
    keep(baselines::run_static(
        &demand,
        peak_need,
        model,
        opts.timelines,
    ));
    Ok(Report {
        trace: trace.name.clone(),
        samples: trace.samples,
        gaps: trace.gaps,
        step_secs: trace.step_secs,
        minutes: demand.len(),
        peak_replicas: opts.peak_replicas,
        lead_secs: 60 * u64::from(model.lead.median_minutes),
        model: model.clone(),
        scores,
        timelines,
        demand,
    })
}

/// The baselines' (min, max) replicas: the first policy's bounds, min at least
/// [`FLOOR_REPLICAS`] (a reader-average metric has no datapoint without readers, so no baseline
/// could scale out from zero), max at least min.
pub fn baseline_bounds(cases: &[Case], peak_replicas: u32) -> (u32, u32) {
    let (min, max) = match cases.first() {
        Some(c) => (c.case.policy.min_replicas, c.case.policy.max_replicas),
        None => (0, peak_replicas as usize + 1),
    };
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let min = clamp(min).max(FLOOR_REPLICAS);
    (min, clamp(max).max(min))
}
