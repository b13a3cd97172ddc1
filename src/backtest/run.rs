//! Replaying one scaling policy on the simulated world, minute by minute, through the very
//! tick the daemon runs (`control::tick_cluster`, with the same observation step and memory):
//! observe the fleet, fetch the policy's
//! metrics from the load model (the `MetricsSource` port), decide with the pure decision core,
//! plan and execute with the shared reconciler, record the scale state (as tags on the
//! simulated master, as the daemon does) — then account the minute.

use super::baselines::scale_actions;
use super::replay::{World, WorldSetup};
use super::score::{Recorder, RunKind, Score, Timeline};
use crate::control::{tick_cluster, ClusterMemory, TickContext, TickOptions};
use crate::core::policy::Policy;
use crate::ports::Routers;
use crate::reconcile::ViewMemo;
use std::borrow::Cow;

/// One policy to replay: its display name, the cluster spec it governs and the policy.
#[derive(Debug, Clone)]
pub struct PolicyCase {
    pub name: String,
    pub policy: Policy,
}

/// Replay `case` on a fresh world built from `setup` (whose spec is the policy's cluster).
pub async fn run_policy(
    setup: &WorldSetup,
    case: &PolicyCase,
    timeline: bool,
) -> Result<(Score, Option<Timeline>), String> {
    let world = World::new(setup)?;
    let spec = &setup.spec;
    let policy = &case.policy;
    let mut rec = Recorder::new(case.name.clone(), RunKind::Policy, timeline);
    let mut memory = ClusterMemory::default();
    let mut failed = FailedTicks::default();
    let mut views = ViewMemo::default();
    let routers = Routers::default();
    let ctx = TickContext {
        fleet: world.fleet.as_ref(),
        metrics: world.load.as_ref(),
        routers: &routers,
        clock: world.clock.as_ref(),
    };
    for i in 0..setup.demand.len() {
        let now = world.minute(i);
        // The daemon's tick, on the simulated ports (which fail only when told to): a tick
        // that fails, or an action that fails or is refused, is counted, and the run is an
        // error (a failing tick would silently change the score).
        match views.observe(world.fleet.as_ref(), spec).await {
            Err(e) => failed.record(i, e.to_string()),
            Ok(view) => match tick_cluster(
                &ctx,
                spec,
                policy,
                Cow::Borrowed(view),
                &mut memory,
                TickOptions::default(),
            )
            .await
            {
                Err(e) => failed.record(i, e.to_string()),
                Ok(report) => {
                    failed.actions(i, &report.actions);
                    rec.actions(scale_actions(&report.actions));
                    let f = report.decision.forecast.as_ref();
                    rec.forecast(f.and_then(|f| f.forecast.replicas));
                }
            },
        }
        let m = world.load.settle(now);
        rec.minute(&m);
    }
    failed.into_result(&case.name, setup.demand.len())?;
    Ok(rec.finish())
}

/// The ticks of a replay that failed: counted, the first one kept for the message.
#[derive(Debug, Default)]
pub struct FailedTicks {
    count: usize,
    first: Option<(usize, String)>,
}

impl FailedTicks {
    /// Tick (minute) `i` failed with `why`.
    pub fn record(&mut self, i: usize, why: String) {
        self.count += 1;
        self.first.get_or_insert((i, why));
    }

    /// Count tick `i` as failed when one of its actions failed, was refused or held.
    pub fn actions(&mut self, i: usize, results: &[crate::reconcile::ActionResult]) {
        if let Some(r) = results.iter().find(|r| r.outcome.is_failure()) {
            self.record(i, format!("{}: {:?}", r.planned.action, r.outcome));
        }
    }

    /// `Err` naming the run, the count and the first failure when any tick failed.
    pub fn into_result(self, run: &str, ticks: usize) -> Result<(), String> {
        match self.first {
            None => Ok(()),
            Some((i, why)) => Err(format!(
                "{run}: {} of {ticks} ticks failed (the score would not be the policy's); first at minute {i}: {why}",
                self.count
            )),
        }
    }
}
