//! Scoring a replayed run, minute by minute: replica-hours (every configured replica that
//! exists, creating or available, is paid for), breach-minutes (a minute with demand data in
//! which per-replica CPU was above 80 % or demand went unserved), scale actions (replicas
//! created or deleted) and the most replicas at once. Also keeps the per-minute timeline the
//! plot draws. Pure.

use crate::adapters::sim_load::MinuteState;
use serde::Serialize;

/// What produced a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Policy,
    Oracle,
    /// The Aurora-style baselines (`target_tracking` in JSON).
    TargetTracking,
    /// The Kubernetes-HPA-style baseline (`hpa`).
    Hpa,
    Static,
}

/// The result of one run: the JSON object `backtest --output json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub name: String,
    pub kind: RunKind,
    pub replica_hours: f64,
    pub breach_minutes: u64,
    pub actions: u64,
    pub max_replicas: u32,
    /// Minutes replayed, and of those the ones with demand data.
    pub minutes: u64,
    pub minutes_with_data: u64,
}

/// Per-minute series of one run, for the plot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    pub start_minute: i64,
    /// Per-replica (or master) CPU, percent; NaN where there was no data.
    pub cpu: Vec<f32>,
    /// Replicas paid for.
    pub replicas: Vec<u16>,
    /// Replicas the forecast sized for (policies with `predictive`); NaN where it abstained
    /// or there is none.
    pub forecast: Vec<f32>,
}

/// Accumulates a [`Score`] (and optionally a [`Timeline`]) minute by minute.
#[derive(Debug, Clone)]
pub struct Recorder {
    name: String,
    kind: RunKind,
    replica_minutes: u64,
    breach: u64,
    actions: u64,
    max_replicas: u32,
    minutes: u64,
    with_data: u64,
    timeline: Option<Timeline>,
    /// The forecast's count at this minute's tick, taken by the next [`Recorder::minute`].
    forecast: Option<usize>,
}

impl Recorder {
    pub fn new(name: impl Into<String>, kind: RunKind, timeline: bool) -> Recorder {
        Recorder {
            name: name.into(),
            kind,
            replica_minutes: 0,
            breach: 0,
            actions: 0,
            max_replicas: 0,
            minutes: 0,
            with_data: 0,
            timeline: timeline.then(Timeline::default),
            forecast: None,
        }
    }

    /// Account one simulated minute.
    pub fn minute(&mut self, s: &MinuteState) {
        if self.minutes == 0 {
            if let Some(t) = &mut self.timeline {
                t.start_minute = s.minute;
            }
        }
        self.minutes += 1;
        self.replica_minutes += u64::from(s.replicas);
        self.max_replicas = self.max_replicas.max(s.replicas);
        if let Some(sv) = &s.served {
            self.with_data += 1;
            if sv.breach {
                self.breach += 1;
            }
        }
        if let Some(t) = &mut self.timeline {
            t.cpu
                .push(s.served.map_or(f32::NAN, |sv| sv.cpu_percent as f32));
            t.replicas.push(s.replicas.min(u16::MAX as u32) as u16);
            t.forecast
                .push(self.forecast.take().map_or(f32::NAN, |n| n as f32));
        }
    }

    /// The forecast's replica count at this minute's tick (before [`Recorder::minute`]).
    pub fn forecast(&mut self, replicas: Option<usize>) {
        self.forecast = replicas;
    }

    /// Count executed scale actions (replica creations and deletions).
    pub fn actions(&mut self, n: u64) {
        self.actions += n;
    }

    pub fn finish(self) -> (Score, Option<Timeline>) {
        (
            Score {
                name: self.name,
                kind: self.kind,
                replica_hours: self.replica_minutes as f64 / 60.0,
                breach_minutes: self.breach,
                actions: self.actions,
                max_replicas: self.max_replicas,
                minutes: self.minutes,
                minutes_with_data: self.with_data,
            },
            self.timeline,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sim_load::serve;

    #[test]
    fn counts_hours_breaches_and_peaks() {
        let mut r = Recorder::new("x", RunKind::Policy, true);
        let st = |m, d: Option<f64>, replicas, serving| MinuteState {
            minute: m,
            demand: d,
            replicas,
            deleting: 0,
            serving,
            served: d.map(|d| serve(d, serving, true)),
        };
        r.minute(&st(0, Some(1.0), 2, 2));
        r.minute(&st(1, Some(1.7), 3, 2)); // 85 %: breach
        r.minute(&st(2, None, 3, 3)); // gap: paid, not scored
        r.actions(1);
        let (s, t) = r.finish();
        assert_eq!(s.breach_minutes, 1);
        assert!((s.replica_hours - 8.0 / 60.0).abs() < 1e-12);
        assert_eq!(
            (s.actions, s.max_replicas, s.minutes, s.minutes_with_data),
            (1, 3, 3, 2)
        );
        let t = t.unwrap();
        assert_eq!(t.replicas, vec![2, 3, 3]);
        assert!(t.cpu[2].is_nan());
    }
}
