//! `elasticrds demo`: the whole service — control loop, shared reconciler, the HTTP server
//! (status page, `/metrics`) — on the simulated fleet, driven by a real load trace at
//! compressed time (by default a simulated minute per 100 ms), with the default policy. No AWS
//! account needed. It stops by itself at the end of the trace or of `--duration` (or on Ctrl-C,
//! exit 0 in every case). On stdout the story (`demo_story`): a line every simulated
//! half-hour, every scale action with its reasons, and at the end the stretch scored side by
//! side with the oracle and the Aurora-style baseline plus an SVG plot. The service's logs only
//! when asked (`--log-level`, `--log-format`, `--log-file`).
//!
//! Embedded: src/backtest/demo_trace.csv (15 hours of a real EC2 CPU trace from the Numenta
//! Anomaly Benchmark, MIT licence: src/backtest/demo_trace.LICENSE.txt) and
//! policies/cpu-target.yaml.

use super::{demo_story, CliError, CliResult};
use crate::adapters::sim::{SimFleet, SimOptions};
use crate::adapters::sim_load::Demand;
use crate::adapters::sim_load::{epoch_minute, LoadOptions, SimLoad};
use crate::adapters::sim_model::FleetModel;
use crate::backtest::replay::seed_fleet;
use crate::backtest::replay::{synthetic_spec, WorldSetup};
use crate::backtest::score::{Recorder, RunKind, Score, Timeline};
use crate::backtest::trace::Trace;
use crate::backtest::{
    baseline_bounds, baselines, load_policy, oracle, plot, strongest, FLOOR_REPLICAS,
    PEAK_UTILIZATION,
};
use crate::ports::Clock;
use crate::service::daemon::{ClusterEntry, Daemon, DaemonOptions, TokioClock};
use crate::service::{http, metrics::Metrics};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The embedded load trace (a real CloudWatch CPU series; see the licence note beside it).
pub const EMBEDDED_TRACE: &str = include_str!("../backtest/demo_trace.csv");
/// The embedded default policy.
pub const EMBEDDED_POLICY: &str = include_str!("../../policies/cpu-target.yaml");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Wall time per simulated minute (`100ms`, also written `100ms-per-minute`).
    #[arg(long, default_value = "100ms", value_parser = parse_speed)]
    pub speed: Duration,
    /// Address of the /metrics, /healthz and /readyz server (loopback by default).
    #[arg(long, default_value = "127.0.0.1:9187")]
    pub listen: SocketAddr,
    /// Stop after this much wall time (the demo also stops at the end of the trace).
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// `embedded` (the default), or a CloudWatch export CSV `timestamp,value`.
    #[arg(long, default_value = "embedded")]
    pub trace: String,
    /// Scale the trace so that its peak needs this many replicas at 75 % CPU.
    #[arg(long, allow_negative_numbers = true, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub peak_replicas: u32,
    /// Provisioning lead time of a new replica (simulated; whole minutes, at most 24h).
    #[arg(long, default_value = "12m", value_parser = super::model_args::whole_minutes)]
    pub lead_time: Duration,
    /// A policy file instead of the embedded default (its cluster is simulated with
    /// `--peak-replicas` replicas listed), e.g. policies/predictive.yaml.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Start this far into the trace: what comes before is the cluster's past, the history a
    /// predictive policy's forecast reads (e.g. `7d` on a 14-day trace).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub history: Duration,
    /// Show the service's own logs at this level (error, warn, info, debug) on stderr, or in
    /// --log-file. Without it (and without --log-file) the logs go nowhere: the terminal shows
    /// the story.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Format of those logs.
    #[arg(long, value_enum, default_value_t)]
    pub log_format: super::run::LogFormat,
    /// Write the logs to this file (appended; level info unless --log-level says otherwise).
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// The policy the demo runs: `--policy FILE`, or the embedded default.
fn demo_policy(a: &DemoArgs) -> Result<(String, crate::backtest::Case), CliError> {
    let Some(path) = &a.policy else {
        let case = load_policy(
            "cpu-target",
            "policies/cpu-target.yaml (embedded)",
            EMBEDDED_POLICY,
            None,
            a.peak_replicas,
        )?;
        return Ok(("policies/cpu-target.yaml".into(), case));
    };
    let file = path.display().to_string();
    let text = super::read_input(path)?;
    let name = path
        .file_stem()
        .map_or("policy".into(), |s| s.to_string_lossy().into_owned());
    let case = load_policy(&name, &file, &text, None, a.peak_replicas)?;
    Ok((file, case))
}

fn parse_speed(s: &str) -> Result<Duration, String> {
    let t = s
        .trim()
        .trim_end_matches("-per-minute")
        .trim_end_matches("/min");
    let d = humantime::parse_duration(t).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(60) {
        return Err("give between 1ms and 60s of wall time per simulated minute".into());
    }
    Ok(d)
}

/// The daemon's logs, only when asked: at `--log-level` (info with only `--log-file`), on
/// stderr or appended to `--log-file`, as text or JSON.
fn init_logs(a: &DemoArgs) -> CliResult {
    use tracing_subscriber::EnvFilter;
    if a.log_level.is_none() && a.log_file.is_none() {
        return Ok(());
    }
    let level = a.log_level.as_deref().unwrap_or("info");
    if !["error", "warn", "info", "debug", "trace"].contains(&level) {
        return Err(CliError::input(format!(
            "--log-level {level:?}: one of error, warn, info, debug, trace"
        )));
    }
    let filter = EnvFilter::new(format!(
        "{level},aws_config=warn,aws_smithy_runtime=warn,hyper=warn"
    ));
    let json = a.log_format == super::run::LogFormat::Json;
    // Another subscriber may already be set (tests, embedding): keep it.
    match &a.log_file {
        Some(path) => {
            crate::input_file::output_path(path)?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CliError::input(format!("--log-file {}: {e}", path.display())))?;
            let writer = std::sync::Mutex::new(f);
            let b = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false);
            let _ = if json {
                b.json().flatten_event(true).with_writer(writer).try_init()
            } else {
                b.with_writer(writer).try_init()
            };
        }
        None => {
            let b = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false);
            let _ = if json {
                b.json().try_init()
            } else {
                b.try_init()
            };
        }
    }
    Ok(())
}

/// The demo's world: the trace as demand, the policy, the simulated fleet and its load model.
struct World {
    trace: Trace,
    policy_file: String,
    case: crate::backtest::Case,
    demand: Arc<Demand>,
    /// Minutes of the trace before the start (`--history`).
    past: i64,
    model: FleetModel,
    initial: usize,
    clock: Arc<dyn Clock>,
    fleet: Arc<SimFleet>,
    load: Arc<SimLoad>,
}

impl World {
    fn spec(&self) -> &crate::core::config::ClusterSpec {
        &self.case.spec
    }
}

/// Read the trace and the policy, and build the simulated world at the start.
fn world(a: &DemoArgs) -> Result<World, CliError> {
    let trace = if a.trace == "embedded" {
        let mut t = Trace::parse("embedded demo trace", EMBEDDED_TRACE)?;
        t.name = "embedded: ec2_cpu_utilization_825cc2 (NAB), 15 h".into();
        t
    } else {
        Trace::load(&PathBuf::from(&a.trace))?
    };
    let (policy_file, case) = demo_policy(a)?;
    let demand = Arc::new(trace.demand(a.peak_replicas, PEAK_UTILIZATION));
    let past = a.history.as_secs().div_ceil(60) as i64;
    if past >= demand.len() as i64 {
        return Err(CliError::input(format!(
            "--history {}: the trace is only {:.1} h long",
            humantime::format_duration(a.history),
            demand.len() as f64 / 60.0
        )));
    }
    let start = demand.start() + chrono::Duration::minutes(past);
    // The demo's world: the simple fleet model with the demo's lead time (a fixed lead, no
    // metric delay, skew or warm-up), so that what it shows follows from the policy alone.
    let model = FleetModel::simple(a.lead_time.as_secs().div_ceil(60) as u32);
    let initial = oracle::initial_replicas(&demand, FLOOR_REPLICAS, &model) as usize;
    let factor = 60.0 / a.speed.as_secs_f64();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::scaled(start, factor));
    let options = SimOptions {
        create_lead: a.lead_time,
        delete_time: Duration::ZERO,
        ..Default::default()
    };
    let fleet = Arc::new(SimFleet::new(clock.clone(), options));
    let since = demand.start() - chrono::Duration::days(1);
    seed_fleet(&fleet, &case.spec, initial, since);
    let load_options = LoadOptions {
        // The past is recorded on the first read, as far back as this.
        history_minutes: (LoadOptions::default().history_minutes).max(past as usize + 60),
        ..LoadOptions::default()
    };
    let load = SimLoad::new(
        fleet.clone(),
        clock.clone(),
        &case.spec,
        demand.clone(),
        load_options,
    )
    .map_err(CliError::input)?;
    Ok(World {
        trace,
        policy_file,
        case,
        demand,
        past,
        model,
        initial,
        clock,
        fleet,
        load: Arc::new(load),
    })
}

/// What the demo says before it starts: the world, where the page and metrics are, how to
/// read the lines that follow.
fn print_intro(a: &DemoArgs, w: &World, addr: SocketAddr, width: usize) {
    let intro = format!(
        "trace {} ({:.1} h{}), policy {} on cluster {} ({} replicas listed, {} running \
         at the start), a new replica ready {} after it is asked for; one simulated minute per {:?}.",
        w.trace.name,
        w.demand.len() as f64 / 60.0,
        match w.past {
            0 => String::new(),
            _ => format!(", starting {} in", humantime::format_duration(a.history)),
        },
        w.policy_file,
        w.spec().name,
        w.spec().replicas.len(),
        w.initial,
        humantime::format_duration(a.lead_time),
        a.speed,
    );
    println!(
        "{}",
        demo_story::wrap_indent("elasticrds demo: ", &intro, width, 2)
    );
    println!("status page: http://{addr}/");
    println!("metrics: http://{addr}/metrics");
    let legend = format!(
        "Every half-hour: the load in replicas' worth, a bar of it (#) against the serving \
         capacity (|), replicas serving / paid for; and every scale action with its \
         reasons. Stops at the end of the trace or after {}; Ctrl-C stops it.",
        humantime::format_duration(a.duration)
    );
    println!("{}", demo_story::wrap_indent("", &legend, width, 0));
}

/// Where the loop stopped, and what it scored.
struct Driven {
    why: &'static str,
    rec: Recorder,
    /// The first minute not scored.
    next_minute: i64,
}

/// The control loop: the daemon's own tick on the daemon's interval (as `Daemon::run` drives
/// it), here driven from the demo so that every scale action is printed as it happens and the
/// minutes that are over are scored (and every half-hour printed) on the way.
async fn drive(a: &DemoArgs, w: &World, daemon: &mut Daemon, width: usize) -> Driven {
    let mut ticker = tokio::time::interval(a.speed);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut rec = Recorder::new("this policy", RunKind::Policy, true);
    let mut next_minute = w.demand.start_minute + w.past;
    let mut forecast = None;
    let end_minute = w.demand.start_minute + w.demand.len() as i64;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let why = loop {
        tokio::select! {
            biased;
            _ = &mut ctrl_c => break "interrupted",
            _ = ticker.tick() => {}
        }
        let outcome = daemon.tick().await;
        for r in outcome.reports() {
            if let Some(line) = demo_story::decision_lines(r, width) {
                println!("{line}");
            }
            // The plot's forecast line: what the forecast sized for (none without one).
            forecast = (r.decision.forecast.as_ref()).and_then(|f| f.forecast.replicas);
        }
        // Account the minutes that are over (the load model records them from the fleet).
        let now = w.clock.now();
        let done = (epoch_minute(now) - 1).min(end_minute - 1);
        if done >= next_minute {
            w.load.settle(now - chrono::Duration::minutes(1));
            for minute in next_minute..=done {
                if let Some(st) = w.load.minute(minute) {
                    rec.forecast(forecast);
                    rec.minute(&st);
                    if minute.rem_euclid(30) == 0 {
                        let scale = w.spec().replicas.len();
                        println!("{}", demo_story::half_hour_line(&st, scale, width));
                    }
                }
            }
            next_minute = done + 1;
        }
        if next_minute >= end_minute {
            break "end of the trace";
        }
        if started.elapsed() >= a.duration {
            break "end of --duration";
        }
    };
    Driven {
        why,
        rec,
        next_minute,
    }
}

pub async fn run(a: DemoArgs) -> CliResult {
    let w = world(&a)?;
    init_logs(&a)?;
    let metrics = Metrics::new();
    // Its config and policy were loaded (embedded or --policy): as `run` says at start.
    metrics.config_loaded(true, w.clock.now().timestamp_millis() as f64 / 1000.0);
    // The demo's simulated cluster has no HAProxy in front of it: no routers.
    let mut daemon = Daemon::new(
        w.fleet.clone(),
        w.load.clone(),
        crate::ports::Routers::default(),
        w.clock.clone(),
        vec![ClusterEntry::new(
            w.spec().clone(),
            w.case.case.policy.clone(),
        )],
        metrics.clone(),
        DaemonOptions {
            interval: a.speed,
            ..Default::default()
        },
    );
    let board = daemon.status_board();
    let server = http::start_with_status(a.listen, metrics.clone(), daemon.health(), board)
        .await
        .map_err(|e| CliError::runtime(format!("cannot listen on {}: {e}", a.listen)))?;
    let width = demo_story::width();
    print_intro(&a, &w, server.local_addr, width);
    let started = Instant::now();
    let driven = drive(&a, &w, &mut daemon, width).await;
    tracing::info!("control loop stopped");
    server.stop().await;
    let (score, timeline) = print_summary(&w, &daemon, driven.rec, driven.why, started, width);
    let first = w.demand.start_minute + w.past;
    let units = &w.demand.units;
    let stretch = Demand {
        start_minute: first,
        units: units[(w.past as usize).min(units.len())
            ..((driven.next_minute - w.demand.start_minute) as usize).min(units.len())]
            .to_vec(),
    };
    let compared = Compared {
        stretch: &stretch,
        model: &w.model,
        initial: w.initial,
        case: &w.case,
        peak_replicas: a.peak_replicas,
    };
    compare(&compared, score, timeline).await
}

/// The demo's own run: when and why it stopped, its score and its last decision.
fn print_summary(
    w: &World,
    daemon: &Daemon,
    mut rec: Recorder,
    why: &str,
    started: Instant,
    width: usize,
) -> (Score, Option<Timeline>) {
    let calls = w.fleet.calls();
    let count = |op: &str| calls.iter().filter(|c| c.operation == op).count();
    let (created, deleted) = (count("create_replica"), count("delete_replica"));
    rec.actions((created + deleted) as u64);
    let (score, timeline) = rec.finish();
    let stopped = format!(
        "({why}) after {:.1} s of wall time, {:.1} simulated hours",
        started.elapsed().as_secs_f64(),
        score.minutes as f64 / 60.0
    );
    println!(
        "\n{}",
        demo_story::wrap_indent("stopped ", &stopped, width, 2)
    );
    let summary = format!(
        "replica-hours {:.1}, breach-minutes {} of {} minutes with data, scale actions {} \
         ({created} created, {deleted} deleted), max replicas {}",
        score.replica_hours,
        score.breach_minutes,
        score.minutes_with_data,
        score.actions,
        score.max_replicas,
    );
    println!(
        "{}",
        demo_story::wrap_indent("summary: ", &summary, width, 2)
    );
    let state = daemon.state(&w.spec().name).cloned().unwrap_or_default();
    if let Some(d) = state.last_decision {
        println!("last decision: {}", d.tag_text());
    }
    (score, timeline)
}

/// The stretch the demo ran, for the side-by-side score.
struct Compared<'a> {
    stretch: &'a Demand,
    model: &'a FleetModel,
    initial: usize,
    case: &'a crate::backtest::Case,
    peak_replicas: u32,
}

/// Score the same stretch with the oracle and the Aurora-style baseline, print the three side
/// by side, and draw them into an SVG in the temporary directory.
async fn compare(c: &Compared<'_>, score: Score, timeline: Option<Timeline>) -> CliResult {
    if c.stretch.units.len() < 60 {
        println!(
            "(less than a simulated hour: too short to compare with the oracle and the baseline)"
        );
        return Ok(());
    }
    let initial = c.initial as u32;
    let (oracle, oracle_t) = oracle::run(c.stretch, FLOOR_REPLICAS, c.model, initial, true);
    let bounds = baseline_bounds(std::slice::from_ref(c.case), c.peak_replicas);
    let spec = synthetic_spec("baseline", bounds.1 as usize);
    let stretch = Arc::new(c.stretch.clone());
    let setup = WorldSetup::new(spec, stretch, c.model, c.initial).map_err(CliError::runtime)?;
    let runs = baselines::run_baselines(&setup, bounds, baselines::DEFAULT_TARGET, true)
        .await
        .map_err(CliError::runtime)?;
    let scores: Vec<Score> = runs.iter().map(|(s, _)| s.clone()).collect();
    let aurora = strongest(&scores, RunKind::TargetTracking)
        .cloned()
        .ok_or_else(|| CliError::runtime("no Aurora-style baseline run"))?;
    let aurora_t = (runs.iter())
        .find(|(s, _)| s.name == aurora.name)
        .and_then(|(_, t)| t.clone());
    let width = demo_story::width();
    let title = format!(
        "the same {:.1} simulated hours, scored side by side:",
        c.stretch.units.len() as f64 / 60.0
    );
    println!("\n{}", demo_story::wrap_indent("", &title, width, 0));
    print!(
        "{}",
        demo_story::score_table(
            &[
                ("this policy", "this policy", &score),
                ("oracle (clairvoyant)", "oracle", &oracle),
                ("Aurora-style tracking", "Aurora-style", &aurora),
            ],
            width
        )
    );
    let mut lines = Vec::new();
    for (name, t) in [
        ("this policy", timeline),
        ("oracle", oracle_t),
        ("Aurora-style", aurora_t),
    ] {
        if let Some(t) = t {
            lines.push((name.to_string(), t));
        }
    }
    let svg = plot::render("elasticrds demo", c.stretch, &lines).map_err(CliError::runtime)?;
    // A new file with a random name (created exclusively: never one planted in its place).
    let fail = |e: std::io::Error| CliError::runtime(format!("cannot write the plot: {e}"));
    let mut file = tempfile::Builder::new()
        .prefix("elasticrds-demo-")
        .suffix(".svg")
        .tempfile()
        .map_err(fail)?;
    std::io::Write::write_all(&mut file, svg.as_bytes()).map_err(fail)?;
    let (_, path) = file.keep().map_err(|e| fail(e.error))?;
    println!("plot of load, capacity and actions:\n  {}", path.display());
    Ok(())
}
