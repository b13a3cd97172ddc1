//! What is worth telling people, found in the control loop's results: each tick's report
//! gives scale-outs and scale-ins (with the counts, the reasons and the replicas), failed
//! actions, an ownership conflict that appeared, the forecast raising the count, and — after
//! `pinned_for` — a cluster pinned at its max with a metric above target; the daemon adds a
//! cluster entering backoff and a refused reload. [`EventMemory`] keeps per cluster what makes
//! an event once per episode rather than every tick. The words are made here, at the edge.

use crate::control::TickReport;
use crate::core::notify::EventKind;
use crate::core::plan::Action;
use crate::ports::Notification;
use crate::reconcile::Outcome;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;

/// Per cluster: what was already told.
#[derive(Debug, Default, Clone)]
pub struct EventMemory {
    /// Since when the cluster has been at its max with a metric above target.
    pinned_since: Option<DateTime<Utc>>,
    pinned_sent: bool,
    /// The conflicting ids last seen.
    conflicts: Vec<String>,
    forecast_raised: bool,
    /// Whether the current run of failures was told.
    backoff_sent: bool,
}

fn event(
    kind: EventKind,
    cluster: Option<&str>,
    at: DateTime<Utc>,
    text: String,
    detail: serde_json::Value,
) -> Notification {
    Notification {
        kind,
        cluster: cluster.map(str::to_string),
        at,
        text,
        detail,
    }
}

/// The events of one tick's report (`pinned_for`: from the notifications config).
pub fn of_report(r: &TickReport, mem: &mut EventMemory, pinned_for: Duration) -> Vec<Notification> {
    let mut out = Vec::new();
    let d = &r.decision;
    let c = &*r.cluster;
    out.extend(scale_events(r));
    for a in r.actions.iter().filter(|a| a.outcome.is_failure()) {
        let error = a
            .error
            .as_ref()
            .map_or_else(|| a.outcome.label().to_string(), |e| e.to_string());
        let text = format!(
            "{c}: {} {} failed: {error}",
            a.planned.action.kind(),
            a.planned.action.instance()
        );
        let detail = json!({"action": a.planned.action.kind(), "instance": a.planned.action.instance().as_str(), "result": a.outcome.label(), "error": error});
        out.push(event(EventKind::ActionFailed, Some(c), d.at, text, detail));
    }
    out.extend(pinned(r, mem, pinned_for));
    let ids: Vec<String> = r.conflicts.iter().map(|b| b.id.to_string()).collect();
    for b in r
        .conflicts
        .iter()
        .filter(|b| !mem.conflicts.contains(&b.id.to_string()))
    {
        let text = format!("{c}: {} holds a configured replica id (position {}) but {}: never touched; its slot is blocked", b.id, b.position, crate::text::conflict_kind(&b.kind));
        let detail =
            json!({"instance": b.id.as_str(), "position": b.position, "conflict": b.kind.label()});
        out.push(event(
            EventKind::OwnershipConflict,
            Some(c),
            d.at,
            text,
            detail,
        ));
    }
    mem.conflicts = ids;
    let raised = d.forecast.as_ref().is_some_and(|f| f.raised());
    if let (true, false, Some(f)) = (raised, mem.forecast_raised, &d.forecast) {
        out.push(forecast_event(c, d.at, f));
    }
    mem.forecast_raised = raised;
    if r.action_error().is_none() && !r.has_failed_action() {
        // A tick that went through ends a run of failures: the next one is told again.
        mem.backoff_sent = false;
    }
    out
}

/// The forecast raised the count above the rules' (`active`), or would have
/// (`forecast_only`: then the text says nothing was changed).
fn forecast_event(
    c: &str,
    at: DateTime<Utc>,
    f: &crate::core::decide::ForecastReport,
) -> Notification {
    let verb = if f.forecast.active {
        "raises"
    } else {
        "would raise"
    };
    let peak = (f.forecast.peak_load).map_or("a".to_string(), |p| format!("{p:.0}"));
    let mut text = format!(
        "{c}: the forecast {verb} the replica count from {} to {} ({peak} peak expected within {})",
        f.desired_without,
        f.desired_with,
        crate::text::fmt_secs(f.forecast.horizon_secs)
    );
    if !f.forecast.active {
        text.push_str("; forecast_only: nothing changed");
    }
    let detail = json!({"from": f.desired_without, "to": f.desired_with, "peak_load": f.forecast.peak_load, "horizon_secs": f.forecast.horizon_secs, "active": f.forecast.active});
    event(EventKind::ForecastRaised, Some(c), at, text, detail)
}

/// A scale-out or scale-in done this tick: replicas created or deleted.
fn scale_events(r: &TickReport) -> Vec<Notification> {
    let d = &r.decision;
    let done = |a: &&crate::reconcile::ActionResult| a.outcome == Outcome::Done;
    let created: Vec<&str> = (r.actions.iter().filter(done))
        .filter_map(|a| match &a.planned.action {
            Action::CreateReplica { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let deleted: Vec<&str> = (r.actions.iter().filter(done))
        .filter_map(|a| match &a.planned.action {
            Action::DeleteReplica { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let reasons: Vec<String> = d.reasons.iter().map(|x| x.to_string()).collect();
    let mut out = Vec::new();
    for (kind, ids, verb) in [
        (EventKind::ScaleOut, &created, "scaled out"),
        (EventKind::ScaleIn, &deleted, "scaled in"),
    ] {
        if ids.is_empty() {
            continue;
        }
        let after = if kind == EventKind::ScaleOut {
            d.current + ids.len()
        } else {
            d.current.saturating_sub(ids.len())
        };
        let text = format!(
            "{}: {verb} {} → {} replicas ({} {}): {}",
            r.cluster,
            d.current,
            after,
            if kind == EventKind::ScaleOut {
                "created"
            } else {
                "deleted"
            },
            ids.join(", "),
            reasons.join("; ")
        );
        let detail = json!({"before": d.current, "after": after, "desired": d.desired, "min": d.min, "max": d.max, "replicas": ids, "reason": d.primary, "reasons": reasons});
        out.push(event(kind, Some(&r.cluster), d.at, text, detail));
    }
    out
}

/// At the max with a metric above its target: told once `pinned_for` has passed, once per
/// episode.
fn pinned(r: &TickReport, mem: &mut EventMemory, pinned_for: Duration) -> Option<Notification> {
    let d = &r.decision;
    let above: Vec<&crate::control::ObservedMetric> = (r.metrics.iter())
        .filter(|m| matches!((m.value, m.target), (Some(v), Some(t)) if v > t))
        .collect();
    if d.current < d.max || above.is_empty() {
        mem.pinned_since = None;
        mem.pinned_sent = false;
        return None;
    }
    let since = *mem.pinned_since.get_or_insert(d.at);
    let long = (d.at - since).to_std().unwrap_or_default() >= pinned_for;
    if !long || mem.pinned_sent {
        return None;
    }
    mem.pinned_sent = true;
    let words: Vec<String> = above
        .iter()
        .map(|m| {
            format!(
                "{} {:.1} > target {}",
                m.metric,
                m.value.unwrap_or_default(),
                m.target.unwrap_or_default()
            )
        })
        .collect();
    let text = format!(
        "{}: pinned at its max of {} replicas for {} with {}",
        r.cluster,
        d.max,
        crate::text::fmt_secs((d.at - since).num_seconds().max(0) as u64),
        words.join(", ")
    );
    let metrics: Vec<serde_json::Value> = above
        .iter()
        .map(|m| json!({"metric": m.metric.to_string(), "value": m.value, "target": m.target}))
        .collect();
    let detail = json!({"replicas": d.current, "max": d.max, "since": since, "metrics": metrics});
    Some(event(
        EventKind::PinnedAtMax,
        Some(&r.cluster),
        d.at,
        text,
        detail,
    ))
}

/// A cluster whose tick failed, once per run of failures.
pub fn of_failure(
    cluster: &str,
    mem: &mut EventMemory,
    error: &crate::ports::PortError,
    failures: u32,
    backoff: Duration,
    at: DateTime<Utc>,
) -> Option<Notification> {
    if mem.backoff_sent {
        return None;
    }
    mem.backoff_sent = true;
    let text = format!(
        "{cluster}: tick failed ({}): backing off {} before the next try",
        error,
        crate::text::fmt_secs(backoff.as_secs())
    );
    let detail = json!({"error": error.to_string(), "kind": error.kind.as_str(), "operation": error.operation, "failures": failures, "backoff_secs": backoff.as_secs()});
    Some(event(EventKind::Backoff, Some(cluster), at, text, detail))
}

/// A refused reload (no cluster).
pub fn of_refused_reload(errors: &str, at: DateTime<Utc>) -> Notification {
    let lines: Vec<&str> = errors.lines().collect();
    let text = format!(
        "config reload refused, the previous config keeps running: {}",
        lines.first().copied().unwrap_or("")
    );
    event(
        EventKind::ReloadFailed,
        None,
        at,
        text,
        json!({"errors": lines}),
    )
}
