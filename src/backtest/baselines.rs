//! The baselines every backtest reports next to its policies: Aurora-style target tracking
//! (60 % CPU; scale out after 3 consecutive breaching minutes, in after 15; 300 s cooldowns)
//! replayed on the same simulated fleet and reconciler, and a static fleet sized for the peak.

use super::replay::{World, WorldSetup};
use super::score::{Recorder, RunKind, Score, Timeline};
use crate::adapters::sim_load::{epoch_minute, serve_on, Demand, MinuteState, Serving};
use crate::adapters::sim_model::FleetModel;
use crate::core::plan::{plan, Action, Target};
use crate::reconcile::{execute, observe_one, ExecOptions, Outcome};

/// Parameters of the Aurora-style target-tracking baseline (Application Auto Scaling's
/// behaviour for Aurora replicas, on the reader-average CPU).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTracking {
    pub target_cpu: f64,
    /// Consecutive 1-minute datapoints above the target before scaling out.
    pub out_minutes: u32,
    /// Consecutive 1-minute datapoints below 90 % of the target before scaling in.
    pub in_minutes: u32,
    pub out_cooldown_secs: i64,
    pub in_cooldown_secs: i64,
    pub min: u32,
    pub max: u32,
}

impl TargetTracking {
    pub fn aurora(min: u32, max: u32) -> TargetTracking {
        TargetTracking {
            target_cpu: 60.0,
            out_minutes: 3,
            in_minutes: 15,
            out_cooldown_secs: 300,
            in_cooldown_secs: 300,
            min,
            max,
        }
    }
    pub fn name(&self) -> String {
        format!("aurora-target-{}", self.target_cpu)
    }
}

/// The target-tracking state machine: fed the reader-average CPU of each finished minute.
#[derive(Debug, Clone, Default)]
pub struct TargetTracker {
    above: u32,
    below: u32,
    last_out: Option<i64>,
    last_in: Option<i64>,
}

impl TargetTracker {
    /// One evaluation at epoch second `now` with the last minute's CPU (None: no datapoint),
    /// the replicas serving in it and the replicas that exist. Returns a new replica count.
    pub fn step(
        &mut self,
        p: &TargetTracking,
        now: i64,
        cpu: Option<f64>,
        serving: u32,
        existing: u32,
    ) -> Option<u32> {
        match cpu {
            Some(c) if c > p.target_cpu => {
                self.above += 1;
                self.below = 0;
            }
            Some(c) if c < p.target_cpu * 0.9 => {
                self.below += 1;
                self.above = 0;
            }
            Some(_) => {
                self.above = 0;
                self.below = 0;
            }
            None => {
                // Missing datapoints break both streaks (the alarm goes to INSUFFICIENT_DATA).
                self.above = 0;
                self.below = 0;
            }
        }
        let since = |t: Option<i64>| t.map_or(i64::MAX, |t| now - t);
        if existing < p.min {
            self.last_out = Some(now);
            return Some(p.min);
        }
        let cpu = cpu?;
        let desired = ((serving.max(1) as f64) * cpu / p.target_cpu - 1e-9)
            .ceil()
            .clamp(p.min as f64, p.max as f64) as u32;
        if self.above >= p.out_minutes
            && since(self.last_out) >= p.out_cooldown_secs
            && desired > existing
        {
            self.last_out = Some(now);
            return Some(desired);
        }
        if self.below >= p.in_minutes
            && existing == serving
            && since(self.last_in) >= p.in_cooldown_secs
            && since(self.last_out) >= p.out_cooldown_secs
            && desired < existing
        {
            self.last_in = Some(now);
            self.below = 0;
            return Some(desired);
        }
        None
    }
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

/// Replay the target-tracking baseline on the simulated fleet, through the shared reconciler.
pub async fn run_target_tracking(
    setup: &WorldSetup,
    p: &TargetTracking,
    timeline: bool,
) -> Result<(Score, Option<Timeline>), String> {
    let world = World::new(setup)?;
    let mut rec = Recorder::new(p.name(), RunKind::TargetTracking, timeline);
    let mut tracker = TargetTracker::default();
    let mut failed = super::run::FailedTicks::default();
    let mut last = world.load.settle(world.clock_now());
    let minutes = setup.demand.len();
    for i in 0..minutes {
        let now = world.minute(i);
        let t = now.timestamp();
        if i > 0 {
            let cpu = last
                .served
                .filter(|_| last.serving > 0)
                .map(|s| s.cpu_percent);
            if let Some(n) = tracker.step(p, t, cpu, last.serving, last.replicas) {
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
    failed.into_result(&p.name(), minutes)?;
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
            serving: replicas,
            served: d.map(|d| serve_on(d, on, true)),
        });
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_out_after_three_hot_minutes_and_in_after_fifteen_cool_ones() {
        let p = TargetTracking::aurora(1, 8);
        let mut t = TargetTracker::default();
        assert_eq!(t.step(&p, 60, Some(90.0), 2, 2), None);
        assert_eq!(t.step(&p, 120, Some(90.0), 2, 2), None);
        assert_eq!(t.step(&p, 180, Some(90.0), 2, 2), Some(3));
        // cooldown: no second scale-out within 300 s even though still hot
        assert_eq!(t.step(&p, 240, Some(99.0), 2, 3), None);
        assert_eq!(t.step(&p, 480, Some(99.0), 2, 3), Some(4));
        let mut n = None;
        for k in 0..15 {
            n = t.step(&p, 1000 + 60 * k, Some(20.0), 4, 4);
            if k < 14 {
                assert_eq!(n, None, "minute {k}");
            }
        }
        assert_eq!(n, Some(2));
    }
}
