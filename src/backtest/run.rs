//! Replaying one scaling policy on the simulated world, minute by minute, through the very
//! tick the daemon runs (`control::tick_cluster`): observe the fleet, fetch the policy's
//! metrics from the load model (the `MetricsSource` port), decide with the pure decision core,
//! plan and execute with the shared reconciler, record the scale state (as tags on the
//! simulated master, as the daemon does) — then account the minute.

use super::baselines::scale_actions;
use super::replay::{World, WorldSetup};
use super::score::{Recorder, RunKind, Score, Timeline};
use crate::control::{tick_cluster, TickOptions};
use crate::core::decide::ScaleState;
use crate::core::policy::Policy;
use crate::reconcile::observe_one;

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
    let mut state = ScaleState::default();
    for i in 0..setup.demand.len() {
        let now = world.minute(i);
        // The daemon's tick, on the simulated ports. A failing port call skips the tick as the
        // daemon would (the simulated ports do not fail unless told to).
        if let Ok(view) = observe_one(world.fleet.as_ref(), spec).await {
            if let Ok(report) = tick_cluster(
                world.fleet.as_ref(),
                world.load.as_ref(),
                spec,
                policy,
                view,
                &mut state,
                now,
                TickOptions::default(),
            )
            .await
            {
                rec.actions(scale_actions(&report.actions));
            }
        }
        let m = world.load.settle(now);
        rec.minute(&m);
    }
    Ok(rec.finish())
}
