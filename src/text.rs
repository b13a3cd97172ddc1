//! Text for the core's data that several edges print the same way (the CLI's output, the
//! service's logs, the reconciler's refusals, the JSON reports): ownership conflicts, master
//! issues and the decision's reasons. The core keeps these as data (`core::view`,
//! `core::decide::Reason`); the words are made here, at the edges, and only when shown.

use crate::core::decide::{Decision, Direction, Reason, Warming};
use crate::core::domain::{InstanceId, MetricKind};
use crate::core::forecast::Abstain;
use crate::core::view::{ConflictKind, MasterIssue};
use serde::ser::SerializeStruct;
use std::fmt;

/// What a conflicting instance is, e.g. "a read replica of cluster2m01".
pub fn conflict_kind(kind: &ConflictKind) -> String {
    match kind {
        ConflictKind::Standalone => "a standalone instance (no source)".to_string(),
        ConflictKind::ReplicaOfOther { source } => format!("a read replica of {source}"),
        ConflictKind::MasterNotObserved { source } => {
            format!("a read replica of {source}, which was not observed as the master")
        }
        ConflictKind::IsMaster => "the cluster's master".to_string(),
    }
}

/// One line on a conflicting instance, the same in `status`, `plan`, `create-cluster` and the
/// service's log.
pub fn conflict_message(id: &InstanceId, kind: &ConflictKind, master: &InstanceId) -> String {
    format!(
        "{id} holds a configured replica id but is {}, not a read replica of master {master}: never touched or counted, its slot is blocked",
        conflict_kind(kind)
    )
}

/// A master issue as a warning's text.
pub fn master_issue(issue: &MasterIssue) -> String {
    match issue {
        MasterIssue::IsReplica { source } => {
            format!("the configured master is itself a read replica of {source}")
        }
        MasterIssue::SnapshotMismatch {
            configured,
            restored_from,
        } => format!(
            "the master was restored from snapshot {restored_from}, not the configured {configured}"
        ),
    }
}

// ---------------------------------------------------------------- decision reasons

/// `7m12s`, `45s`, `1h0m5s`.
/// An operator's pause in words: `scale-in paused by alice until 2026-12-04T10:00:00Z
/// (migration)`; an unreadable tag value is quoted as it is.
pub fn pause_text(p: &crate::core::pause::Pause) -> String {
    let dir = dir_word(p.direction);
    if !p.readable {
        return format!(
            "{dir} paused by an unreadable {} tag {:?} (until resumed)",
            crate::core::pause::Pause::tag_key(p.direction),
            p.reason
        );
    }
    let until = p.until.map_or("until resumed".to_string(), |u| {
        format!(
            "until {}",
            u.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    });
    let by = if p.by.is_empty() {
        "an operator"
    } else {
        &p.by
    };
    if p.reason.is_empty() {
        format!("{dir} paused by {by} {until}")
    } else {
        format!("{dir} paused by {by} {until} ({})", p.reason)
    }
}

pub fn fmt_secs(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn unit(metric: MetricKind) -> &'static str {
    match metric {
        MetricKind::Cpu => "%",
        MetricKind::Connections => "",
        MetricKind::ReplicaLag => "s",
    }
}

/// An observed value as reasons show it (`63.2%`, `180`, `4.0s`).
struct Value(MetricKind, f64);

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Value(metric, v) = *self;
        match metric {
            MetricKind::Connections => write!(f, "{v:.0}"),
            _ => write!(f, "{v:.1}{}", unit(metric)),
        }
    }
}

/// A target or threshold as reasons show it (`60%`, `62.5%`, `200`, `30s`).
struct Limit(MetricKind, f64);

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Limit(metric, v) = *self;
        if v.fract() == 0.0 {
            write!(f, "{v:.0}{}", unit(metric))
        } else {
            write!(f, "{v}{}", unit(metric))
        }
    }
}

fn dir_word(d: Direction) -> &'static str {
    match d {
        Direction::In => "scale-in",
        _ => "scale-out",
    }
}

fn held(acting: bool) -> &'static str {
    if acting {
        "acting despite"
    } else {
        "held"
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Warming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warming::Young {
                id,
                age_secs,
                warm_secs,
            } => write!(
                f,
                "{id} available for {} of {}",
                fmt_secs(*age_secs),
                fmt_secs(*warm_secs)
            ),
            Warming::Lagging { id, bound } => {
                write!(
                    f,
                    "{id} lagging above {}",
                    Limit(MetricKind::ReplicaLag, *bound)
                )
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BlockedSlots { ids, usable, total } => write!(
                f,
                "{} configured replica id(s) held by instances that are not replicas of the master ({}): at most {usable} of {total} usable",
                ids.len(),
                join(ids)
            ),
            Reason::Schedule { names, min, max } => write!(
                f,
                "schedule {} in force: min {min} max {max}",
                names.join(", ")
            ),
            Reason::MasterServing { master } => write!(
                f,
                "no replica available: the master {master} serves reads, its metrics are used"
            ),
            Reason::Warmup { replicas } => write!(
                f,
                "warming up, left out of averages but counted as capacity: {}",
                join(replicas)
            ),
            _ => rule_text(self, f),
        }
    }
}

/// The rules' and the settling step's reasons.
fn rule_text(r: &Reason, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match r {
        Reason::WithinTolerance {
            metric,
            value,
            tolerance,
            target,
        } => write!(
            f,
            "{metric} {} within {:.0}% of target {}",
            Value(*metric, *value),
            tolerance * 100.0,
            Limit(*metric, *target)
        ),
        Reason::TargetTracking {
            metric,
            value,
            target,
            want,
        } => write!(
            f,
            "{metric} {} {} target {} → {want}",
            Value(*metric, *value),
            if value / target > 1.0 { ">" } else { "<" },
            Limit(*metric, *target)
        ),
        Reason::ThresholdAbove {
            metric,
            value,
            limit,
            add,
            want,
            in_flight_counted,
        } => write!(
            f,
            "{metric} {} > {} → +{add} → {want}{}",
            Value(*metric, *value),
            Limit(*metric, *limit),
            if *in_flight_counted {
                " (replicas in flight counted)"
            } else {
                ""
            }
        ),
        Reason::ThresholdBelow {
            metric,
            value,
            limit,
            remove,
            want,
        } => write!(
            f,
            "{metric} {} < {} → -{remove} → {want}",
            Value(*metric, *value),
            Limit(*metric, *limit)
        ),
        Reason::InRange {
            metric,
            value,
            above,
            below,
        } => {
            let range = match (above, below) {
                (Some(a), Some(b)) => {
                    format!("between {} and {}", Limit(*metric, *b), Limit(*metric, *a))
                }
                (Some(a), None) => format!("≤ {}", Limit(*metric, *a)),
                (None, Some(b)) => format!("≥ {}", Limit(*metric, *b)),
                (None, None) => String::new(),
            };
            write!(f, "{metric} {} {range}", Value(*metric, *value))
        }
        _ => hold_text(r, f),
    }
}

/// The holds and bounds reasons.
fn hold_text(r: &Reason, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match r {
        Reason::NoData { id, acting } => write!(f, "{}: no data for {id}", held(*acting)),
        Reason::Stale {
            id,
            newest,
            periods,
            acting,
        } => write!(
            f,
            "{}: stale data for {id} (newest sample {} is {periods} periods old)",
            held(*acting),
            newest.format("%Y-%m-%dT%H:%M:%SZ")
        ),
        Reason::AllWarming { acting } => {
            write!(f, "{}: every serving replica is warming up", held(*acting))
        }
        Reason::NoSource { acting } => write!(
            f,
            "{}: no replica and no available master to read metrics from",
            held(*acting)
        ),
        Reason::MasterMissing { id } => write!(f, "held: master {id} does not exist"),
        Reason::MasterBusy { id, status } => write!(f, "held: master {id} is {status}"),
        Reason::ReplicaBusy { id, status } => write!(f, "held: {id} is {status}"),
        Reason::BelowMin { current, min } => {
            write!(f, "{current} below min {min}: raise to min {min}")
        }
        Reason::AboveMax { current, max } => {
            write!(f, "{current} above max {max}: lower to max {max}")
        }
        Reason::ClampedMin { min } => write!(f, "clamped to min {min}"),
        Reason::ClampedMax { max } => write!(f, "clamped to max {max}"),
        Reason::LoadNeeds { needs, to, .. } => write!(f, "the load needs {needs}: → {to}"),
        Reason::Paused { direction } => write!(f, "held: {} paused", dir_word(*direction)),
        Reason::OperatorPaused { pause } => write!(f, "held: {}", pause_text(pause)),
        Reason::Stabilization {
            direction,
            window_secs,
            value,
        } => write!(
            f,
            "held: {} stabilization: {} recommendation in the last {} is {value}",
            dir_word(*direction),
            if *direction == Direction::In {
                "highest"
            } else {
                "lowest"
            },
            fmt_secs(*window_secs)
        ),
        Reason::Cooldown {
            direction,
            left_secs,
        } => write!(
            f,
            "held: {} cooldown {} left",
            dir_word(*direction),
            fmt_secs(*left_secs)
        ),
        Reason::MaxStep {
            direction,
            step,
            to,
        } => {
            let sign = if *direction == Direction::In {
                "-"
            } else {
                "+"
            };
            write!(f, "limited to {sign}{step} per action → {to}")
        }
        Reason::ObserveOnly => {
            f.write_str("observe-only: decided and reported, nothing will be changed")
        }
        Reason::NoRules => f.write_str("no rules"),
        Reason::Forecast { .. } | Reason::ForecastAbstains { .. } => forecast_text(r, f),
        other => write!(f, "{}", other.code()),
    }
}

/// The forecast's reasons (policy `predictive`).
fn forecast_text(r: &Reason, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match r {
        Reason::Forecast {
            forecaster,
            active,
            horizon_secs,
            peak_load,
            replicas,
            raised,
        } => {
            let effect = match (raised, active) {
                (true, true) => " → raised the count",
                (true, false) => " → would raise the count (forecast_only)",
                (false, _) => " → did not raise the count",
            };
            write!(
                f,
                "forecast ({forecaster}): peak load {peak_load:.1} within {} needs {replicas}{effect}",
                fmt_secs(*horizon_secs)
            )
        }
        Reason::ForecastAbstains { forecaster, why } => {
            write!(f, "forecast ({forecaster}) abstains: ")?;
            match why {
                Abstain::NoHistory {
                    have_secs,
                    need_secs,
                } => write!(
                    f,
                    "{} of history, needs {}",
                    fmt_secs(*have_secs),
                    fmt_secs(*need_secs)
                ),
                Abstain::PoorAccuracy { error, limit } => write!(
                    f,
                    "recent error {:.0} % is above the limit {:.0} %",
                    error * 100.0,
                    limit * 100.0
                ),
                Abstain::NoRhythm {
                    correlation: Some(c),
                    min,
                } => write!(
                    f,
                    "the history's daily correlation {c:.2} is below {min:.2} (no daily rhythm)"
                ),
                Abstain::NoRhythm {
                    correlation: None,
                    min,
                } => write!(
                    f,
                    "the history's daily correlation cannot be measured yet (needs above {min:.2})"
                ),
                Abstain::NoPrediction => f.write_str("no prediction for the horizon (gaps)"),
                Abstain::Unscored => f.write_str(
                    "its accuracy is not known yet (no past forecast on the history could be scored)",
                ),
            }
        }
        other => write!(f, "{}", other.code()),
    }
}

/// A reason in JSON: its code and its text.
impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Reason", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("text", &self.to_string())?;
        st.end()
    }
}

/// The decision as one log line: `cluster current → desired (direction); reason; ...`.
pub fn decision_summary(d: &Decision) -> String {
    let mut s = format!(
        "{} {} → {} ({})",
        d.cluster,
        d.current,
        d.desired,
        d.direction.as_str()
    );
    for r in &d.reasons {
        s.push_str("; ");
        s.push_str(&r.to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_compactly() {
        assert_eq!(fmt_secs(432), "7m12s");
        assert_eq!(fmt_secs(3605), "1h0m5s");
        assert_eq!(fmt_secs(5), "5s");
    }

    #[test]
    fn limits_print_as_whole_or_shortest_numbers_and_values_to_a_tenth() {
        for (v, plain) in [
            (0.0f64, "0"),
            (-0.0, "-0"),
            (60.0, "60"),
            (-5.0, "-5"),
            (62.5, "62.5"),
            (0.1, "0.1"),
            (1e20, "100000000000000000000"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(Limit(MetricKind::Cpu, v).to_string(), format!("{plain}%"));
            assert_eq!(Limit(MetricKind::Connections, v).to_string(), plain);
            assert_eq!(
                Limit(MetricKind::ReplicaLag, v).to_string(),
                format!("{plain}s")
            );
        }
        assert_eq!(Value(MetricKind::Cpu, 63.25).to_string(), "63.2%");
        assert_eq!(Value(MetricKind::Connections, 180.4).to_string(), "180");
        assert_eq!(Value(MetricKind::ReplicaLag, 4.0).to_string(), "4.0s");
    }

    #[test]
    fn reasons_serialize_as_code_and_text() {
        let r = Reason::Cooldown {
            direction: Direction::In,
            left_secs: 432,
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"code": "cooldown", "text": "held: scale-in cooldown 7m12s left"})
        );
        assert!(r.is_hold());
    }

    #[test]
    fn a_forecast_says_whether_it_raised_the_count() {
        let text = |active, raised| {
            let r = Reason::Forecast {
                forecaster: "seasonal",
                active,
                horizon_secs: 900,
                peak_load: 182.0,
                replicas: 4,
                raised,
            };
            serde_json::to_value(&r).unwrap()["text"].clone()
        };
        let head = "forecast (seasonal): peak load 182.0 within 15m0s needs 4 → ";
        for (active, raised, effect) in [
            (true, true, "raised the count"),
            (false, true, "would raise the count (forecast_only)"),
            (true, false, "did not raise the count"),
            (false, false, "did not raise the count"),
        ] {
            assert_eq!(text(active, raised), format!("{head}{effect}"));
        }
    }

    #[test]
    fn a_forecast_that_abstains_says_why() {
        use crate::core::forecast::Abstain;
        let text = |why| {
            let r = Reason::ForecastAbstains {
                forecaster: "seasonal",
                why,
            };
            let v = serde_json::to_value(&r).unwrap();
            assert_eq!(v["code"], "forecast");
            v["text"].as_str().unwrap().to_string()
        };
        let head = "forecast (seasonal) abstains: ";
        for (why, said) in [
            (
                Abstain::NoHistory {
                    have_secs: 10_800,
                    need_secs: 86_400,
                },
                "3h0m0s of history, needs 24h0m0s",
            ),
            (
                Abstain::PoorAccuracy {
                    error: 0.42,
                    limit: 0.3,
                },
                "recent error 42 % is above the limit 30 %",
            ),
            (
                Abstain::Unscored,
                "its accuracy is not known yet (no past forecast on the history could be scored)",
            ),
            (
                Abstain::NoRhythm {
                    correlation: Some(0.31),
                    min: 0.6,
                },
                "the history's daily correlation 0.31 is below 0.60 (no daily rhythm)",
            ),
            (
                Abstain::NoPrediction,
                "no prediction for the horizon (gaps)",
            ),
        ] {
            assert_eq!(text(why), format!("{head}{said}"));
        }
    }
}
