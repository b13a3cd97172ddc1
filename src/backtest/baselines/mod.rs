//! The baselines every backtest reports next to its policies, replayed on the same simulated
//! fleet and reconciler as the policies (they act through `plan` + `execute`): Aurora-style
//! target tracking in two readings of AWS's documentation ([`aurora`]), the Kubernetes HPA's
//! algorithm ([`hpa`]), and a static fleet sized for the peak. This file owns what a baseline
//! sees ([`Observation`]), the replay loop, [`run_baselines`] (what a backtest, or a sweep at
//! another target, runs) and the static fleet. Sources and rules: docs/backtest.md, section
//! "Baselines".

pub mod aurora;
pub mod hpa;

pub use aurora::{Capacity, TargetTracker, TargetTracking};
pub use hpa::{Hpa, HpaState};

use super::replay::{World, WorldSetup};
use super::score::{Recorder, RunKind, Score, Timeline};
use crate::adapters::sim_load::{epoch_minute, serve_on, Demand, MinuteState, Serving};
use crate::adapters::sim_model::FleetModel;
use crate::core::plan::{plan, Action, Target};
use crate::reconcile::{execute, observe_one, ExecOptions, Outcome};

/// Whether a run beside the policies could carry `name` (or, without its target, its frontier
/// family): the oracle, the static fleet and the reactive baselines. A policy file named like
/// one gets another display name, so no report or frontier merges the two.
pub fn is_baseline_name(name: &str) -> bool {
    name == "oracle"
        || ["static", "aurora-target", "hpa-target"].iter().any(|b| {
            name.strip_prefix(b)
                .is_some_and(|r| r.is_empty() || r.starts_with('-'))
        })
}

/// What a baseline sees at the start of a minute: the last finished minute's reader-average
/// CPU (`None`: no datapoint) and the replicas then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Epoch seconds.
    pub now: i64,
    pub cpu: Option<f64>,
    /// Replicas that served during the whole last minute.
    pub serving: u32,
    /// Replicas that exist (creating or available).
    pub existing: u32,
}

/// A minute's observation with a CPU datapoint (the baselines' tests).
#[cfg(test)]
pub(crate) fn obs(now: i64, cpu: f64, serving: u32, existing: u32) -> Observation {
    Observation {
        now,
        cpu: Some(cpu),
        serving,
        existing,
    }
}

/// The default target of the baselines (`--baseline-target`), percent CPU.
pub const DEFAULT_TARGET: f64 = 60.0;

/// Replay every reactive baseline at `target` % CPU within `bounds` (min, max replicas; the
/// scored policy's): Aurora-style counting serving replicas, Aurora-style counting replicas
/// being created, HPA-style, in that order. `setup`'s cluster must list at least `max` replicas.
pub async fn run_baselines(
    setup: &WorldSetup,
    bounds: (u32, u32),
    target: f64,
    timelines: bool,
) -> Result<Vec<(Score, Option<Timeline>)>, String> {
    let (min, max) = bounds;
    if !(target.is_finite() && target > 0.0 && target <= 100.0) {
        return Err(format!(
            "baseline target {target}: give a percentage from 1 to 100"
        ));
    }
    if min > max || (max as usize) > setup.spec.replicas.len() {
        return Err(format!(
            "baseline bounds {min}..{max}: the cluster lists {} replicas",
            setup.spec.replicas.len()
        ));
    }
    let mut out = Vec::new();
    for capacity in [Capacity::ServingAfterWait, Capacity::Existing] {
        let p = TargetTracking::new(target, min, max, capacity);
        out.push(run_target_tracking(setup, &p, timelines).await?);
    }
    out.push(run_hpa(setup, &Hpa::new(target, min, max), timelines).await?);
    Ok(out)
}

/// Replay an Aurora-style target-tracking baseline.
pub async fn run_target_tracking(
    setup: &WorldSetup,
    p: &TargetTracking,
    timeline: bool,
) -> Result<(Score, Option<Timeline>), String> {
    let mut tracker = TargetTracker::default();
    let step = |o: &Observation| tracker.step(p, o);
    replay(setup, p.name(), RunKind::TargetTracking, timeline, step).await
}

/// Replay the HPA-style baseline.
pub async fn run_hpa(
    setup: &WorldSetup,
    p: &Hpa,
    timeline: bool,
) -> Result<(Score, Option<Timeline>), String> {
    let mut state = HpaState::default();
    let step = |o: &Observation| state.step(p, o);
    replay(setup, p.name(), RunKind::Hpa, timeline, step).await
}

/// Count the executed replica creations and deletions among reconciler results.
pub fn scale_actions(results: &[crate::reconcile::ActionResult]) -> u64 {
    results
        .iter()
        .filter(|r| {
            matches!(r.outcome, Outcome::Done)
                && matches!(
                    r.planned.action,
                    Action::CreateReplica { .. } | Action::DeleteReplica { .. }
                )
        })
        .count() as u64
}

/// Replay one baseline on a fresh world: at the start of each minute `step` sees the newest
/// visible minute (the last finished one, less the model's metric delay: one minute fresher
/// than a policy's fetch window) and may return a replica count, which is planned and executed through the shared reconciler.
async fn replay(
    setup: &WorldSetup,
    name: String,
    kind: RunKind,
    timeline: bool,
    mut step: impl FnMut(&Observation) -> Option<u32>,
) -> Result<(Score, Option<Timeline>), String> {
    let world = World::new(setup)?;
    let mut rec = Recorder::new(name.clone(), kind, timeline);
    let mut failed = super::run::FailedTicks::default();
    let mut last = world.load.settle(world.clock_now());
    let minutes = setup.demand.len();
    let delay = i64::from(setup.model.metric_delay_minutes);
    for i in 0..minutes {
        let now = world.minute(i);
        if i > 0 {
            // RDSReaderAverageCPUUtilization: the average over the readers that report; with
            // none serving there is no datapoint. The newest datapoint visible is the fleet
            // model's metric delay older than the last finished minute; the replica counts are
            // the fleet's now (a delete under way no longer counts).
            let seen = world.load.minute(last.minute - delay).unwrap_or_default();
            let o = Observation {
                now: now.timestamp(),
                cpu: seen
                    .served
                    .filter(|_| seen.serving > 0 && seen.minute == last.minute - delay)
                    .map(|s| s.cpu_percent),
                serving: last.serving,
                existing: last.replicas - last.deleting,
            };
            if let Some(n) = step(&o) {
                match observe_one(world.fleet.as_ref(), &setup.spec).await {
                    Err(e) => failed.record(i, e.to_string()),
                    Ok(view) => {
                        let pl = plan(&setup.spec, &view, &Target::replicas(n as usize));
                        let res = execute(
                            world.fleet.as_ref(),
                            &setup.spec,
                            &pl,
                            &ExecOptions::default(),
                        )
                        .await;
                        failed.actions(i, &res);
                        rec.actions(scale_actions(&res));
                    }
                }
            }
        }
        last = world.load.settle(now);
        debug_assert_eq!(last.minute, epoch_minute(now));
        rec.minute(&last);
    }
    failed.into_result(&name, minutes)?;
    Ok(rec.finish())
}

/// A static fleet of `replicas`, all there (and warm) from the start: no actions.
pub fn run_static(
    demand: &Demand,
    replicas: u32,
    model: &FleetModel,
    timeline: bool,
) -> (Score, Option<Timeline>) {
    let on = Serving {
        hottest_factor: model.hottest_factor(replicas),
        ..Serving::even(replicas)
    };
    let mut r = Recorder::new(format!("static-{replicas}"), RunKind::Static, timeline);
    for (i, d) in demand.units.iter().enumerate() {
        r.minute(&MinuteState {
            minute: demand.start_minute + i as i64,
            demand: *d,
            replicas,
            deleting: 0,
            serving: replicas,
            served: d.map(|d| serve_on(d, on, true)),
        });
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::replay::synthetic_spec;
    use crate::backtest::trace::Trace;
    use std::sync::Arc;

    #[test]
    fn baseline_names_are_told_apart_from_policy_names() {
        for n in [
            "oracle",
            "static-4",
            "aurora-target-60",
            "aurora-target-counting-creating",
        ] {
            assert!(is_baseline_name(n), "{n}");
        }
        assert!(is_baseline_name("hpa-target"));
        for n in [
            "cpu-target",
            "oracles",
            "statically",
            "hpa-targets",
            "predictive",
        ] {
            assert!(!is_baseline_name(n), "{n}");
        }
    }

    fn setup(replicas: usize) -> WorldSetup {
        let mut csv = String::from("timestamp,value\n");
        for m in 0..120 {
            let v = if (40..80).contains(&m) { 90.0 } else { 20.0 };
            csv.push_str(&format!("2026-01-01 {:02}:{:02}:00,{v}\n", m / 60, m % 60));
        }
        let trace = Trace::parse("t.csv", &csv).expect("trace");
        let demand = Arc::new(trace.demand(4, 0.75));
        let spec = synthetic_spec("baseline", replicas);
        WorldSetup::new(spec, demand, &FleetModel::simple(5), 1).expect("setup")
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    #[test]
    fn runs_each_baseline_at_the_target_within_the_bounds() {
        let runs = rt()
            .block_on(run_baselines(&setup(3), (1, 3), 70.0, false))
            .expect("runs");
        let names: Vec<&str> = runs.iter().map(|(s, _)| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "aurora-target-70",
                "aurora-target-70-counting-creating",
                "hpa-target-70"
            ]
        );
        for (s, _) in &runs {
            assert!(s.actions > 0, "the rise is scaled out: {s:?}");
            assert!(s.max_replicas <= 3, "{s:?}");
        }
        assert_eq!(runs[2].0.kind, RunKind::Hpa);
    }

    #[test]
    fn refuses_a_target_outside_percent_and_bounds_the_cluster_cannot_hold() {
        for t in [0.0, -5.0, 100.5, f64::NAN, f64::INFINITY] {
            let r = rt().block_on(run_baselines(&setup(3), (1, 3), t, false));
            assert!(r.is_err(), "{t}");
        }
        let r = rt().block_on(run_baselines(&setup(3), (1, 4), 60.0, false));
        assert!(r.expect_err("4 > 3").contains("lists 3 replicas"));
        let r = rt().block_on(run_baselines(&setup(3), (3, 2), 60.0, false));
        assert!(r.is_err());
    }

    #[test]
    fn the_goal_is_held_against_the_stronger_aurora_style_run() {
        use crate::backtest::score::Recorder;
        let score = |name: &str, kind, breach: u64, minutes: u32| {
            let (mut s, _) = Recorder::new(name, kind, false).finish();
            s.breach_minutes = breach;
            s.replica_hours = f64::from(minutes) / 60.0;
            s
        };
        let scores = [
            score("a", RunKind::TargetTracking, 20, 600),
            score("b", RunKind::TargetTracking, 20, 540),
            score("c", RunKind::TargetTracking, 25, 60),
            score("h", RunKind::Hpa, 1, 60),
        ];
        let best = crate::backtest::strongest(&scores, RunKind::TargetTracking);
        assert_eq!(best.map(|s| s.name.as_str()), Some("b"));
        assert!(crate::backtest::strongest(&scores, RunKind::Static).is_none());
    }

    #[test]
    fn baselines_keep_the_first_policys_bounds() {
        use crate::backtest::{baseline_bounds, load_policy};
        let case = |min: u32, max: u32| {
            let text = format!("cluster: c1\nmin_replicas: {min}\nmax_replicas: {max}\n");
            load_policy("p", "p.yaml", &text, None, 4).expect("policy")
        };
        assert_eq!(baseline_bounds(&[case(2, 6), case(1, 3)], 4), (2, 6));
        assert_eq!(
            baseline_bounds(&[case(0, 3)], 4),
            (1, 3),
            "at least one reader"
        );
        assert_eq!(baseline_bounds(&[case(0, 0)], 4), (1, 1));
        assert_eq!(baseline_bounds(&[], 4), (1, 5));
    }
}
