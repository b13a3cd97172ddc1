//! A replay whose ticks fail is an error, not a different score: the backtest counts failed
//! ticks (a port error, an action that failed) and refuses to score such a run, for the policy
//! replay and the Aurora-style and HPA-style baselines alike.

use elasticrds::backtest::baselines::{run_hpa, run_target_tracking, Hpa, TargetTracking};
use elasticrds::backtest::replay::WorldSetup;
use elasticrds::backtest::run::run_policy;
use elasticrds::backtest::trace::Trace;
use elasticrds::backtest::{load_policy, Options};
use elasticrds::ports::ErrorKind;
use std::sync::Arc;

fn setup(faults: Vec<(&'static str, ErrorKind)>) -> (WorldSetup, elasticrds::backtest::Case) {
    let mut csv = String::from("timestamp,value\n");
    for m in 0..180 {
        let v = if m > 60 { 90.0 } else { 20.0 };
        csv.push_str(&format!("2026-01-01 {:02}:{:02}:00,{v}\n", m / 60, m % 60));
    }
    let trace = Trace::parse("t.csv", &csv).expect("trace");
    let text =
        "cluster: c1\nmin_replicas: 1\nmax_replicas: 4\nrules:\n  - metric: cpu\n    target: 60\n";
    let case = load_policy("p", "p.yaml", text, None, 4).expect("policy");
    let opts = Options::default();
    let demand = Arc::new(opts.demand(&trace));
    let mut setup = WorldSetup::new(case.spec.clone(), demand, &opts.model, 1).expect("setup");
    setup.faults = faults;
    (setup, case)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

#[test]
fn a_clean_replay_scores() {
    let (setup, case) = setup(vec![]);
    let (score, _) = rt()
        .block_on(run_policy(&setup, &case.case, false))
        .expect("no failed tick");
    assert!(score.actions > 0, "the rise is scaled out: {score:?}");
}

#[test]
fn a_failed_tick_makes_the_policy_replay_an_error() {
    let (setup, case) = setup(vec![("describe", ErrorKind::Transient)]);
    let err = rt()
        .block_on(run_policy(&setup, &case.case, false))
        .expect_err("a failed tick is an error");
    assert!(
        err.contains("1 of 180 ticks failed") && err.contains("minute 0"),
        "{err}"
    );
}

#[test]
fn a_failed_action_makes_the_baseline_replay_an_error() {
    let (setup, _) = setup(vec![("create_replica", ErrorKind::Fatal)]);
    let err = rt()
        .block_on(run_target_tracking(
            &setup,
            &TargetTracking::aurora(1, 4),
            false,
        ))
        .expect_err("a failed action is an error");
    assert!(err.contains("ticks failed"), "{err}");
}

#[test]
fn a_failed_action_makes_the_hpa_replay_an_error() {
    let (setup, _) = setup(vec![("create_replica", ErrorKind::Fatal)]);
    let err = rt()
        .block_on(run_hpa(&setup, &Hpa::new(60.0, 1, 4), false))
        .expect_err("a failed action is an error");
    assert!(
        err.contains("hpa-target-60") && err.contains("ticks failed"),
        "{err}"
    );
}
