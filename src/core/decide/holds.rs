//! From the rules' proposal to the desired count: bounds corrections (below the min, above
//! the max) bypass cooldown, stabilization and the max step; otherwise a scale in either
//! direction goes through the same steps — paused direction, action in flight, stabilization
//! window, cooldown — and is limited to the max step. Also the holds themselves: what is in
//! flight and which data is missing, stale or still warming.

use super::reason::{Reason, RuleCode};
use super::rules::Evaluated;
use super::serving::{Serving, Window};
use super::{Direction, ScaleState};
use crate::core::config::ClusterSpec;
use crate::core::pause::Pauses;
use crate::core::plan::ClusterView;
use crate::core::policy::{DirectionSettings, Policy};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The data holds: what is missing, stale or still warming.
pub(super) fn data_holds(
    policy: &Policy,
    serving: &Serving,
    rules: &Evaluated,
    window: &Window,
) -> Vec<Reason> {
    let mut holds: Vec<Reason> = (rules.gaps.missing.iter())
        .map(|id| Reason::NoData {
            id: (*id).clone(),
            acting: false,
        })
        .collect();
    for (id, at) in &rules.gaps.stale {
        holds.push(Reason::Stale {
            id: (*id).clone(),
            newest: *at,
            periods: (window.end - *at).num_seconds().max(0) / window.period,
            acting: false,
        });
    }
    if rules.warmup_only && !policy.rules.is_empty() {
        let nothing = serving.sources.is_empty() && !serving.replicas_available;
        holds.push(if nothing {
            Reason::NoSource { acting: false }
        } else {
            Reason::AllWarming { acting: false }
        });
    }
    holds
}

/// The in-flight holds: a master that does not exist or is not available, replicas being
/// created, deleted or modified.
pub(super) fn in_flight(spec: &ClusterSpec, view: &ClusterView) -> Vec<Reason> {
    let mut flight = Vec::new();
    match &view.master {
        None => flight.push(Reason::MasterMissing {
            id: spec.master.id.clone(),
        }),
        Some(m) if !m.status.is_available() => flight.push(Reason::MasterBusy {
            id: m.id.clone(),
            status: m.status.clone(),
        }),
        _ => {}
    }
    for i in view.existing_replicas().filter(|i| i.status.is_busy()) {
        flight.push(Reason::ReplicaBusy {
            id: i.id.clone(),
            status: i.status.clone(),
        });
    }
    flight
}

/// Everything the settling step reads.
pub(super) struct Situation<'a> {
    pub policy: &'a Policy,
    pub state: &'a ScaleState,
    pub now: DateTime<Utc>,
    pub current: usize,
    pub min: usize,
    pub max: usize,
    /// The rules' winning proposal (usable on the data there is).
    pub best: Option<(usize, RuleCode)>,
    pub complete: bool,
    pub master_ok: bool,
    pub replicas_busy: bool,
    pub flight: Vec<Reason>,
    pub data_holds: Vec<Reason>,
    pub cooldown_out: Duration,
    pub cooldown_in: Duration,
    /// The operator's pauses written on the master (`elasticrds pause`).
    pub pauses: &'a Pauses,
}

/// The hold of a paused direction: by the policy (`enabled: false`) or by an operator's pause
/// in force. A paused direction holds everything, bounds corrections included.
fn paused(s: &Situation, direction: Direction) -> Option<Reason> {
    let d = if direction == Direction::Out {
        &s.policy.scale_out
    } else {
        &s.policy.scale_in
    };
    if !d.enabled {
        return Some(Reason::Paused { direction });
    }
    (s.pauses.in_force(direction, s.now)).map(|p| Reason::OperatorPaused { pause: p.clone() })
}

/// The outcome: the desired count, the code that drove it, reasons and holds.
pub(super) struct Settled {
    pub desired: usize,
    pub driver: &'static str,
    pub reasons: Vec<Reason>,
    pub holds: Vec<Reason>,
}

/// Settle the desired count.
pub(super) fn settle(s: Situation) -> Settled {
    let mut out = Settled {
        desired: s.current,
        driver: s.best.map_or("steady", |(_, c)| c.code()),
        reasons: Vec::new(),
        holds: Vec::new(),
    };
    let in_bounds = s.current >= s.min && s.current <= s.max;
    if s.current < s.min {
        raise_to_min(&s, &mut out);
    } else if s.current > s.max {
        lower_to_max(&s, &mut out);
    } else if let Some((raw, code)) = s.best {
        let r = raw.clamp(s.min, s.max);
        if raw > s.max {
            out.reasons.push(Reason::ClampedMax { max: s.max });
            out.driver = "clamped_max";
        } else if raw < s.min {
            out.reasons.push(Reason::ClampedMin { min: s.min });
            out.driver = "clamped_min";
        } else {
            out.driver = code.code();
        }
        match r.cmp(&s.current) {
            std::cmp::Ordering::Greater => scale(&s, Direction::Out, r, &mut out),
            std::cmp::Ordering::Less => scale(&s, Direction::In, r, &mut out),
            std::cmp::Ordering::Equal => {}
        }
    }
    // Incomplete data holds whatever it prevented (and is always reported).
    if !s.complete {
        if in_bounds && s.best.is_none() {
            out.holds.extend(s.data_holds);
        } else if !in_bounds {
            out.reasons.extend(s.data_holds);
        }
    }
    out
}

/// Below the min: raise to the min (and further when the load needs it and a scale-out would
/// be allowed anyway, within the step counted from the min).
fn raise_to_min(s: &Situation, out: &mut Settled) {
    let (current, min) = (s.current, s.min);
    out.driver = "clamped_min";
    out.reasons.push(Reason::BelowMin { current, min });
    if let Some(hold) = paused(s, Direction::Out) {
        out.holds.push(hold);
    } else if !s.master_ok {
        out.holds.extend(s.flight.iter().take(1).cloned());
    } else {
        out.desired = min;
        let recommendation = s.best.map(|(r, _)| r.clamp(min, s.max));
        if let Some(r) = recommendation.filter(|r| *r > min && s.cooldown_out.is_zero()) {
            out.desired = r.min(min + s.policy.scale_out.max_step);
            out.reasons.push(Reason::LoadNeeds {
                by: s.best.map_or(RuleCode::TargetTracking, |(_, c)| c),
                needs: r,
                to: out.desired,
            });
        }
    }
}

/// Above the max: lower to the max, unless paused or something is in flight.
fn lower_to_max(s: &Situation, out: &mut Settled) {
    out.driver = "clamped_max";
    out.reasons.push(Reason::AboveMax {
        current: s.current,
        max: s.max,
    });
    if let Some(hold) = paused(s, Direction::In) {
        out.holds.push(hold);
    } else if !s.flight.is_empty() {
        out.holds.extend(s.flight.iter().cloned());
    } else {
        out.desired = s.max;
    }
}

/// A scale towards `r` in `direction` (`Out` or `In`): the holds that apply, then the max step.
fn scale(s: &Situation, direction: Direction, r: usize, out: &mut Settled) {
    let out_ = direction == Direction::Out;
    let d: &DirectionSettings = if out_ {
        &s.policy.scale_out
    } else {
        &s.policy.scale_in
    };
    if let Some(hold) = paused(s, direction) {
        out.holds.push(hold);
    }
    // A scale-out may wait for replicas in flight only when the policy says so; a scale-in
    // always waits for anything in flight.
    let flight_holds = if out_ {
        !s.master_ok || (s.replicas_busy && !d.while_in_flight)
    } else {
        !s.flight.is_empty()
    };
    if flight_holds {
        out.holds.extend(s.flight.iter().cloned());
    }
    if !s.complete {
        // Acting on partial data (missing_data.scale_out: act): say so, no hold.
        let notes = s.data_holds.iter().cloned().map(Reason::acting_despite);
        out.reasons.extend(notes);
    }
    // Stabilization: a scale-out goes no higher than the lowest recommendation in its window,
    // a scale-in no lower than the highest.
    let seen = s.state.stabilizing(direction, s.now, d.stabilization_secs);
    let stab = match (seen, out_) {
        (None, _) => r,
        (Some(low), true) => low.min(r),
        (Some(high), false) => high.max(r),
    };
    if (out_ && stab <= s.current) || (!out_ && stab >= s.current) {
        out.holds.push(Reason::Stabilization {
            direction,
            window_secs: d.stabilization_secs,
            value: stab,
        });
    }
    let cooldown = if out_ { s.cooldown_out } else { s.cooldown_in };
    if !cooldown.is_zero() {
        out.holds.push(Reason::Cooldown {
            direction,
            left_secs: cooldown.as_secs(),
        });
    }
    let want = if out_ {
        stab.min(s.current + d.max_step)
    } else {
        stab.max(s.current.saturating_sub(d.max_step))
    };
    if want != stab {
        out.reasons.push(Reason::MaxStep {
            direction,
            step: d.max_step,
            to: want,
        });
    }
    if out.holds.is_empty() {
        out.desired = want;
    }
}

/// The cooldowns left at `now`: scale-out since the last scale-out, scale-in since the last
/// scale in either direction.
pub(super) fn cooldowns(
    policy: &Policy,
    state: &ScaleState,
    now: DateTime<Utc>,
) -> (Duration, Duration) {
    let last_any = state.last_scale_out.max(state.last_scale_in);
    (
        remaining(state.last_scale_out, policy.scale_out.cooldown_secs, now),
        remaining(last_any, policy.scale_in.cooldown_secs, now),
    )
}

/// Remaining cooldown: `cooldown − (now − last)`, never more than the cooldown itself (a
/// last-scale time in the future, e.g. a skewed clock, cannot block forever).
fn remaining(last: Option<DateTime<Utc>>, cooldown: u64, now: DateTime<Utc>) -> Duration {
    let Some(last) = last else {
        return Duration::ZERO;
    };
    let elapsed = (now - last).num_seconds();
    let cd = cooldown.min(i64::MAX as u64) as i64;
    Duration::from_secs((cd - elapsed.max(0)).clamp(0, cd) as u64)
}
