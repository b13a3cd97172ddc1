//! `elasticrds backtest`: replay a recorded load trace (CloudWatch export CSV) through one or
//! more policy files on the simulated fleet — the same decision core and reconciler as the
//! daemon — and print replica-hours, breach-minutes, actions and max replicas for each, next to
//! the oracle, the Aurora-style and HPA-style baselines and a static fleet. `--plot` writes an
//! SVG; `--sweep KEY=V1,V2,...` draws the cost/breach frontier of every policy given and the
//! baselines (`backtest::frontier`); a bare `--sweep` replays a 100-variant grid of the first.

use super::model_args::ModelArgs;
use super::{load_config, print_json, read_input, CliError, CliResult, Output};
use crate::adapters::sim_model::FleetModel;
use crate::backtest::frontier::{self, Axis, Frontier};
use crate::backtest::score::{RunKind, Score};
use crate::backtest::trace::Trace;
use crate::backtest::{self, load_policy, sweep, Case, Options, Report};
use crate::core::config::Config;
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Policy files to replay (YAML). Without --config, each gets a synthesized cluster with
    /// max(policy max, --peak-replicas) + 1 replicas.
    #[arg(long = "policy", required = true, num_args = 1..)]
    pub policies: Vec<PathBuf>,
    /// The load trace: CloudWatch export CSV `timestamp,value`, 1- or 5-minute samples.
    #[arg(long)]
    pub trace: PathBuf,
    /// Scale the trace so that its peak needs this many replicas at 75 % CPU.
    #[arg(long, allow_negative_numbers = true, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub peak_replicas: u32,
    /// The fleet model (lead times, metric delay, skew, warm-up, deletes).
    #[command(flatten)]
    pub model: ModelArgs,
    /// What is printed on stdout: `text` (the table of policies, oracle and baselines) or
    /// `json` (the whole report as one JSON document; schema in docs/backtest.md). Errors go to
    /// stderr either way.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Write an SVG with demand, per-replica CPU and replica count over time for each run.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// CPU target of the Aurora-style and HPA-style baselines, percent (1–100). They keep the
    /// first policy's min and max replicas.
    #[arg(long, allow_negative_numbers = true, value_name = "PERCENT", default_value_t = backtest::baselines::DEFAULT_TARGET,
          value_parser = parse_baseline_target)]
    pub baseline_target: f64,
    /// Alone: replay a grid of 100 variants of the first policy (CPU target × scale-in
    /// cooldown) in parallel and print each (the elapsed time on stderr). `--sweep
    /// KEY=V1,V2,...` (KEY: target, tolerance, scale_in_cooldown, scale_out_cooldown, and
    /// for a `predictive` section's seasonal forecast quantile and level): the
    /// cost/breach frontier of every policy given at each value, the baselines at the same
    /// target for `target`; with --plot, the frontier as SVG.
    #[arg(long, num_args = 0..=1, value_name = "KEY=V1,V2,...")]
    pub sweep: Option<Option<String>>,
}

fn parse_baseline_target(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if (1.0..=100.0).contains(&t) => Ok(t),
        _ => Err("give a CPU percentage from 1 to 100 (e.g. 60)".into()),
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Load the policies (located errors, exit 2) with unique display names.
fn load_cases(
    config: Option<&Config>,
    files: &[PathBuf],
    peak: u32,
) -> Result<Vec<Case>, CliError> {
    let mut cases: Vec<Case> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let text = read_input(f)?;
        let mut name = stem(f);
        if backtest::baselines::is_baseline_name(&name) {
            name.push_str("#policy");
        }
        if cases.iter().any(|c| c.case.name == name) {
            name = format!("{name}#{}", cases.len() + 1);
        }
        match load_policy(&name, &f.display().to_string(), &text, config, peak) {
            Ok(c) => cases.push(c),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(CliError::input(errors.join("\n")))
    }
}

pub async fn run(config_path: Option<&Path>, a: BacktestArgs) -> CliResult {
    let config = match config_path {
        Some(p) => Some(load_config(Some(p))?.1),
        None => None,
    };
    if let Some(p) = &a.plot {
        crate::input_file::output_path(p)?;
    }
    let trace = Trace::load(&a.trace)?;
    let cases = load_cases(config.as_ref(), &a.policies, a.peak_replicas)?;
    let opts = Options {
        peak_replicas: a.peak_replicas,
        model: a.model.model()?,
        timelines: a.plot.is_some(),
        baseline_target: a.baseline_target,
    };
    match &a.sweep {
        Some(None) => return run_sweep(trace, cases, opts, a.output).await,
        Some(Some(spec)) => {
            let axis = Axis::parse(spec).map_err(CliError::input)?;
            return run_frontier(trace, cases, &axis, opts, a.output, a.plot.as_deref()).await;
        }
        None => {}
    }
    let report = backtest::backtest(&trace, &cases, &opts)
        .await
        .map_err(CliError::input)?;
    if let Some(p) = &a.plot {
        let svg = backtest::plot::render(&report.trace, &report.demand, &report.timelines)
            .map_err(CliError::runtime)?;
        std::fs::write(p, svg)
            .map_err(|e| CliError::runtime(format!("{}: cannot write: {e}", p.display())))?;
    }
    match a.output {
        Output::Json => print_json(&report.scores),
        Output::Text => {
            print!("{}", text_report(&report));
            Ok(())
        }
    }
}

/// `--sweep KEY=V1,V2,...`: the frontier of every policy given on the trace, printed as a table
/// per run family (or JSON), drawn with `--plot`.
async fn run_frontier(
    trace: Trace,
    cases: Vec<Case>,
    axis: &Axis,
    opts: Options,
    output: Output,
    plot: Option<&Path>,
) -> CliResult {
    if cases.is_empty() {
        return Err(CliError::input("--sweep needs a policy"));
    }
    // A policy without the knob is bad input, found before anything runs.
    for c in &cases {
        axis.apply(c, axis.values[0]).map_err(CliError::input)?;
    }
    let f = frontier::run(&trace, &cases, axis, &opts)
        .await
        .map_err(CliError::input)?;
    if let Some(p) = plot {
        let svg = frontier::render(std::slice::from_ref(&f)).map_err(CliError::runtime)?;
        std::fs::write(p, svg)
            .map_err(|e| CliError::runtime(format!("{}: cannot write: {e}", p.display())))?;
    }
    match output {
        Output::Json => print_json(&f),
        Output::Text => {
            print!("{}", frontier_text(&f));
            Ok(())
        }
    }
}

/// The frontier as text: per run family, one line per value.
pub fn frontier_text(f: &Frontier) -> String {
    let (lo, hi) = f.baseline_replicas;
    let mut out = format!(
        "frontier of {} on {}: oracle (the floor) {:.1} replica-hours, 0 breach-minutes\n\
         the baselines keep the first policy's bounds: {lo} to {hi} replicas\n",
        f.key.as_str(),
        f.trace,
        f.oracle_replica_hours
    );
    for fam in frontier::families(f) {
        // A baseline outside a `target` sweep ran once, at its own target: say so.
        let baseline = (f.points.iter()).any(|p| p.family == fam && p.kind != RunKind::Policy);
        let column = match baseline && f.key != frontier::Key::Target {
            true => "target",
            false => f.key.as_str(),
        };
        out.push_str(&format!(
            "\n{fam}\n{:>10}  {:>13}  {:>9}  {:>14}  {:>7}  {:>12}\n",
            column, "replica_hours", "x_oracle", "breach_minutes", "actions", "max_replicas"
        ));
        for p in f.points.iter().filter(|p| p.family == fam) {
            out.push_str(&format!(
                "{:>10}  {:>13.1}  {:>8.3}x  {:>14}  {:>7}  {:>12}\n",
                p.value,
                p.score.replica_hours,
                p.x_oracle,
                p.score.breach_minutes,
                p.score.actions,
                p.score.max_replicas
            ));
        }
    }
    out
}

async fn run_sweep(trace: Trace, cases: Vec<Case>, opts: Options, output: Output) -> CliResult {
    let base = cases
        .first()
        .ok_or_else(|| CliError::input("--sweep needs a policy"))?;
    let variants = sweep::variants(base, 100).map_err(CliError::input)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let n = variants.len();
    let (trace, scores) = tokio::task::spawn_blocking(move || {
        let r = sweep::run_all(&trace, &variants, &opts, threads);
        (trace, r)
    })
    .await
    .map_err(|e| CliError::runtime(format!("sweep failed: {e}")))?;
    let scores = scores.map_err(CliError::input)?;
    let elapsed = started.elapsed();
    eprintln!(
        "sweep: {n} variants of {} on {} ({} minutes each) in {:.2} s on {threads} threads",
        base.case.name,
        trace.name,
        trace.minutes(),
        elapsed.as_secs_f64()
    );
    match output {
        Output::Json => print_json(&scores),
        Output::Text => {
            print!("{}", table(&scores, None));
            Ok(())
        }
    }
}

fn table(scores: &[Score], oracle: Option<f64>) -> String {
    let w = scores
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<w$}  {:>13}  {:>9}  {:>14}  {:>7}  {:>12}\n",
        "name", "replica_hours", "vs_oracle", "breach_minutes", "actions", "max_replicas"
    );
    for s in scores {
        let ratio = oracle
            .filter(|o| *o > 0.0)
            .map_or("-".to_string(), |o| format!("{:.3}x", s.replica_hours / o));
        out.push_str(&format!(
            "{:<w$}  {:>13.1}  {:>9}  {:>14}  {:>7}  {:>12}\n",
            s.name, s.replica_hours, ratio, s.breach_minutes, s.actions, s.max_replicas
        ));
    }
    out
}

/// The fleet model in one line, with the lead times drawn over the replayed minutes.
fn model_line(m: &FleetModel, start_minute: i64, minutes: usize) -> String {
    let l = &m.lead;
    let lead = if l.spread > 0.0 {
        let (lo, _, hi) = l.summary(start_minute, minutes);
        format!(
            "lead time median {}m (spread {}, seed {}; {lo}-{hi}m over the trace)",
            l.median_minutes, l.spread, l.seed
        )
    } else {
        format!("lead time {}m", l.median_minutes)
    };
    format!(
        "fleet model: {lead}; metrics visible {}m late; hottest replica +{:.0} %; warm-up {}m from {:.0} %; deletes paid {}m",
        m.metric_delay_minutes,
        m.skew * 100.0,
        m.warmup.minutes,
        m.warmup.start_capacity * 100.0,
        m.delete_minutes
    )
}

/// The text report: what was replayed, the table, and the goal check per policy.
pub fn text_report(r: &Report) -> String {
    let mut out = format!(
        "trace {}: {} samples every {} s ({} gaps), {:.1} days; peak scaled to {} replicas at 75 % CPU\n{}\n\n",
        r.trace,
        r.samples,
        r.step_secs,
        r.gaps,
        r.minutes as f64 / 1440.0,
        r.peak_replicas,
        model_line(&r.model, r.demand.start_minute, r.minutes),
    );
    let oracle = r.oracle().map(|o| o.replica_hours);
    out.push_str(&table(&r.scores, oracle));
    if let (Some(o), Some(tt)) = (r.oracle(), r.target_tracking()) {
        out.push('\n');
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        for s in r.scores.iter().filter(|s| s.kind == RunKind::Policy) {
            let cost_ok = s.replica_hours <= tt.replica_hours;
            let breach_ok = s.breach_minutes <= tt.breach_minutes;
            out.push_str(&format!(
                "goal {} vs {} (the stronger Aurora-style run), no worse on both axes: replica-hours {:.1} vs {:.1} ({}), breach-minutes {} vs {} ({}); {:.3}x the oracle's replica-hours\n",
                s.name,
                tt.name,
                s.replica_hours,
                tt.replica_hours,
                verdict(cost_ok),
                s.breach_minutes,
                tt.breach_minutes,
                verdict(breach_ok),
                if o.replica_hours > 0.0 { s.replica_hours / o.replica_hours } else { f64::NAN },
            ));
        }
    }
    out
}
