//! What the plan holds back after it is made: creates and deletes an operator's pause forbids
//! (they become `held`), and creates while an account quota stops creation (they wait).

use super::{Action, Held, Plan, PlannedAction, Waiting};
use crate::core::decide::Direction;
use crate::core::pause::Pauses;
use crate::core::template::Offerings;
use chrono::{DateTime, Utc};

/// Hold what an operator's pause forbids. The decision already keeps the desired count
/// still while a direction is paused, but the plan also rebuilds the first N usable slots
/// (a replica deleted by hand is created again, a surplus one deleted): those are scale
/// actions too. Scale-out paused: creates are held — and so are the deletes, which are
/// planned make-before-break on those creates; scale-in paused: deletes are held.
/// Class changes and the master's restore are not scaling and go on.
pub fn hold_paused(p: &mut Plan, pauses: &Pauses, now: DateTime<Utc>) {
    let out = pauses.in_force(Direction::Out, now).cloned();
    let inn = pauses.in_force(Direction::In, now).cloned();
    let creates = |a: &PlannedAction| matches!(a.action, Action::CreateReplica { .. });
    let held_out = out.as_ref().is_some_and(|_| p.actions.iter().any(creates));
    let mut kept = Vec::with_capacity(p.actions.len());
    for a in p.actions.drain(..) {
        let pause = match a.action {
            Action::CreateReplica { .. } => out.clone(),
            Action::DeleteReplica { .. } if held_out => out.clone(),
            Action::DeleteReplica { .. } => inn.clone(),
            _ => None,
        };
        match pause {
            Some(pause) => p.held.push(Held {
                action: a.action,
                pause,
            }),
            None => kept.push(a),
        }
    }
    p.actions = kept;
}

/// While an account quota error stops creation ([`Offerings::quota_stop`]), creates wait
/// (and so do the deletes planned make-before-break on them) instead of retrying into it.
pub fn hold_for_quota(p: &mut Plan, offerings: &Offerings, now: DateTime<Utc>) {
    let Some(stop) = offerings.quota_stop(now) else {
        return;
    };
    let creates = |a: &PlannedAction| matches!(a.action, Action::CreateReplica { .. });
    if !p.actions.iter().any(creates) {
        return;
    }
    let reason = format!(
        "creation stopped until {} after a quota error: {}",
        stop.until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        stop.error
    );
    let (held, kept): (Vec<_>, Vec<_>) = p.actions.drain(..).partition(|a| {
        matches!(
            a.action,
            Action::CreateReplica { .. } | Action::DeleteReplica { .. }
        )
    });
    p.actions = kept;
    for a in held {
        p.waiting.push(Waiting {
            id: a.action.instance().clone(),
            status: None,
            reason: format!("{}: {reason}", a.action.kind()),
        });
    }
}
