//! `elasticrds demo`: the whole service — control loop, shared reconciler, `/metrics` server,
//! decision logs — on the simulated fleet, driven by a real load trace at compressed time (by
//! default a simulated minute per 100 ms), with the default policy. No AWS account needed. It
//! stops by itself at the end of the trace or of `--duration` (or on Ctrl-C, exit 0 in every
//! case) and prints a summary scored like the backtest. On stdout: every scale action as it is
//! carried out with the decision's reasons (`[sim 2014-04-16 14:21] scale-out 2 -> 4: cpu
//! 100.0% > target 70% → 4`), every change in serving replicas, and a status line every 30
//! simulated minutes; decision logs on stderr (a decision only when it changes, as the daemon
//! logs them).
//!
//! Embedded: src/backtest/demo_trace.csv (15 hours of a real EC2 CPU trace from the Numenta
//! Anomaly Benchmark, MIT licence: src/backtest/demo_trace.LICENSE.txt) and
//! policies/cpu-target.yaml.

use super::{CliError, CliResult};
use crate::adapters::sim::{SimFleet, SimOptions};
use crate::adapters::sim_load::{epoch_minute, LoadOptions, SimLoad};
use crate::adapters::sim_model::FleetModel;
use crate::backtest::replay::seed_fleet;
use crate::backtest::score::{Recorder, RunKind};
use crate::backtest::trace::Trace;
use crate::backtest::{load_policy, oracle, FLOOR_REPLICAS, PEAK_UTILIZATION};
use crate::control::TickReport;
use crate::core::decide::Direction;
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
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub peak_replicas: u32,
    /// Provisioning lead time of a new replica (simulated).
    #[arg(long, default_value = "12m", value_parser = humantime::parse_duration)]
    pub lead_time: Duration,
    /// A policy file instead of the embedded default (its cluster is simulated with
    /// `--peak-replicas` replicas listed), e.g. policies/predictive.yaml.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Start this far into the trace: what comes before is the cluster's past, the history a
    /// predictive policy's forecast reads (e.g. `7d` on a 14-day trace).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub history: Duration,
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

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Another subscriber may already be set (tests, embedding): keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn sim_time(minute: i64) -> String {
    crate::adapters::sim_load::minute_time(minute)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `[sim 2014-04-16 14:31] scale-out 2 -> 4: cpu 100.0% > target 70% → 6; clamped to max 4`
/// for a tick that carried out a scale action; `None` otherwise.
pub fn scale_line(r: &TickReport) -> Option<String> {
    let d = &r.decision;
    if !r.acted || d.direction == Direction::None {
        return None;
    }
    let why: Vec<String> = d
        .reasons
        .iter()
        .filter(|x| !x.is_hold())
        .map(|x| x.to_string())
        .collect();
    Some(format!(
        "[sim {}] scale-{} {} -> {}: {}",
        d.at.format("%Y-%m-%d %H:%M"),
        d.direction.as_str(),
        d.current,
        d.desired,
        why.join("; ")
    ))
}

pub async fn run(a: DemoArgs) -> CliResult {
    let trace = if a.trace == "embedded" {
        let mut t = Trace::parse("embedded demo trace", EMBEDDED_TRACE)?;
        t.name = "embedded: ec2_cpu_utilization_825cc2 (NAB), 15 h".into();
        t
    } else {
        Trace::load(&PathBuf::from(&a.trace))?
    };
    let (policy_file, case) = demo_policy(&a)?;
    let spec = case.spec.clone();
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
    let fleet = Arc::new(SimFleet::new(
        clock.clone(),
        SimOptions {
            create_lead: a.lead_time,
            delete_time: Duration::ZERO,
            ..Default::default()
        },
    ));
    seed_fleet(
        &fleet,
        &spec,
        initial,
        demand.start() - chrono::Duration::days(1),
    );
    let load = Arc::new(
        SimLoad::new(
            fleet.clone(),
            clock.clone(),
            &spec,
            demand.clone(),
            LoadOptions {
                // The past is recorded on the first read, as far back as this.
                history_minutes: LoadOptions::default()
                    .history_minutes
                    .max(past as usize + 60),
                ..LoadOptions::default()
            },
        )
        .map_err(CliError::input)?,
    );

    init_logs();
    let metrics = Metrics::new();
    // Its config and policy were loaded (embedded or --policy): as `run` says at start.
    metrics.config_loaded(true, clock.now().timestamp_millis() as f64 / 1000.0);
    // The demo's simulated cluster has no HAProxy in front of it: no routers.
    let mut daemon = Daemon::new(
        fleet.clone(),
        load.clone(),
        crate::ports::Routers::default(),
        clock.clone(),
        vec![ClusterEntry::new(spec.clone(), case.case.policy.clone())],
        metrics.clone(),
        DaemonOptions {
            interval: a.speed,
            ..Default::default()
        },
    );
    let server = http::start_with_status(
        a.listen,
        metrics.clone(),
        daemon.health(),
        daemon.status_board(),
    )
    .await
    .map_err(|e| CliError::runtime(format!("cannot listen on {}: {e}", a.listen)))?;
    println!(
        "elasticrds demo: trace {} ({:.1} h{}), policy {policy_file} on cluster {} \
         ({} replicas listed, {} running at the start), lead time {}, one simulated minute per {:?}",
        trace.name,
        demand.len() as f64 / 60.0,
        match past {
            0 => String::new(),
            _ => format!(", starting {} in", humantime::format_duration(a.history)),
        },
        spec.name,
        spec.replicas.len(),
        initial,
        humantime::format_duration(a.lead_time),
        a.speed,
    );
    println!(
        "metrics: http://{}/metrics  (also /healthz, /readyz); stops after {} of wall time or at the end of the trace; Ctrl-C stops it",
        server.local_addr,
        humantime::format_duration(a.duration)
    );

    // The control loop: the daemon's own tick on the daemon's interval (as `Daemon::run`
    // drives it), here driven from the demo so that every scale action is printed as it
    // happens and the minutes that are over are scored on the way.
    let mut ticker = tokio::time::interval(a.speed);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut rec = Recorder::new("cpu-target (demo)", RunKind::Policy, false);
    let mut next_minute = demand.start_minute + past;
    let mut last_report = next_minute;
    let mut last_serving: Option<u32> = None;
    let end_minute = demand.start_minute + demand.len() as i64;
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    let why = loop {
        tokio::select! {
            biased;
            _ = &mut ctrl_c => break "interrupted",
            _ = ticker.tick() => {}
        }
        let outcome = daemon.tick().await;
        for r in outcome.reports() {
            if let Some(line) = scale_line(r) {
                println!("{line}");
            }
        }
        // Account the minutes that are over (the load model records them from the fleet).
        let now = clock.now();
        let done = (epoch_minute(now) - 1).min(end_minute - 1);
        if done >= next_minute {
            load.settle(now - chrono::Duration::minutes(1));
            while next_minute <= done {
                if let Some(st) = load.minute(next_minute) {
                    rec.minute(&st);
                    if last_serving.is_some_and(|s| s != st.serving) {
                        println!(
                            "[sim {}] serving replicas {} -> {} ({} paid for)",
                            sim_time(next_minute),
                            last_serving.unwrap_or(0),
                            st.serving,
                            st.replicas
                        );
                    }
                    last_serving = Some(st.serving);
                    if next_minute - last_report >= 30 {
                        last_report = next_minute;
                        println!(
                            "[sim {}] demand {:>4} replicas {} ({} serving) per-replica cpu {:>5}",
                            sim_time(next_minute),
                            st.demand.map_or("-".into(), |d| format!("{d:.2}")),
                            st.replicas,
                            st.serving,
                            st.served
                                .map_or("-".into(), |s| format!("{:.0}%", s.cpu_percent)),
                        );
                    }
                }
                next_minute += 1;
            }
        }
        if next_minute >= end_minute {
            break "end of the trace";
        }
        if started.elapsed() >= a.duration {
            break "end of --duration";
        }
    };
    tracing::info!("control loop stopped");
    server.stop().await;

    let calls = fleet.calls();
    let actions = calls
        .iter()
        .filter(|c| matches!(c.operation, "create_replica" | "delete_replica"))
        .count() as u64;
    rec.actions(actions);
    let (score, _) = rec.finish();
    let state = daemon.state(&spec.name).cloned().unwrap_or_default();
    println!(
        "\nstopped ({why}) after {:.1} s of wall time, {:.1} simulated hours",
        started.elapsed().as_secs_f64(),
        score.minutes as f64 / 60.0
    );
    println!(
        "summary: replica-hours {:.1}, breach-minutes {} of {} minutes with data, scale actions {} \
         ({} created, {} deleted), max replicas {}",
        score.replica_hours,
        score.breach_minutes,
        score.minutes_with_data,
        score.actions,
        calls.iter().filter(|c| c.operation == "create_replica").count(),
        calls.iter().filter(|c| c.operation == "delete_replica").count(),
        score.max_replicas,
    );
    if let Some(d) = state.last_decision {
        println!("last decision: {}", d.tag_text());
    }
    Ok(())
}
