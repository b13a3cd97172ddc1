//! The Kubernetes-HPA-style baseline, a second anchor next to the Aurora-style one: the
//! HorizontalPodAutoscaler's algorithm on the reader-average CPU, as the Kubernetes
//! documentation describes it. This file owns the parameters ([`Hpa`]) and the state machine
//! ([`HpaState`]); the replay on the simulated fleet is in `super` (mod.rs). Quotes in
//! docs/backtest.md, section "Baselines".
//!
//! Source \[HPA\]: Kubernetes documentation, "Horizontal Pod Autoscaling", sections "Algorithm
//! details", "Tolerance" and "Default Behavior":
//! <https://kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/>.
//! A replica being created is an unready pod; one that serves is a ready pod; the replicas that
//! exist are the scale target's `currentReplicas`. The controller runs once per simulated minute
//! (the metric's resolution; the HPA's own sync period is 15 s).

use super::Observation;
use std::collections::VecDeque;

/// Parameters of the HPA-style baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Hpa {
    /// Target of the average CPU over ready replicas, percent.
    pub target_cpu: f64,
    /// "0.1 by default": no scaling while the usage ratio is within 1 ± tolerance \[HPA\].
    pub tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, "defaults to 5 minutes" \[HPA\];
    /// scale-up has no stabilization window by default ("immediate").
    pub down_window_secs: i64,
    /// minReplicas, maxReplicas.
    pub min: u32,
    pub max: u32,
}

impl Hpa {
    pub fn new(target_cpu: f64, min: u32, max: u32) -> Hpa {
        Hpa {
            target_cpu,
            tolerance: 0.1,
            down_window_secs: 300,
            min,
            max,
        }
    }

    /// `hpa-target-60`.
    pub fn name(&self) -> String {
        format!("hpa-target-{}", self.target_cpu)
    }

    fn within_tolerance(&self, ratio: f64) -> bool {
        1.0 - self.tolerance <= ratio && ratio <= 1.0 + self.tolerance
    }

    /// The raw recommendation for the last minute's CPU (`None`: no metric, no recommendation).
    /// "desiredReplicas = ceil[currentReplicas × (currentMetricValue / desiredMetricValue)]",
    /// the ratio over ready pods only; with not-yet-ready pods on a scale-up "the controller
    /// conservatively assumes that the not-yet-ready pods are consuming 0% of the desired
    /// metric", and "If the new ratio reverses the scale direction, or is within the tolerance,
    /// the controller doesn't take any scaling action" \[HPA\]. (The ready-pod count multiplies the
    /// ratio, as the controller does: replicas being created do not dilute a scale-down.)
    pub fn recommend(&self, o: &Observation) -> Option<u32> {
        let cpu = o.cpu.filter(|c| c.is_finite())?;
        let ready = f64::from(o.serving);
        let ratio = cpu / self.target_cpu;
        let unready = o.existing.saturating_sub(o.serving);
        if unready == 0 || ratio <= 1.0 {
            if self.within_tolerance(ratio) {
                return Some(o.existing);
            }
            return Some(ceil_u32(ratio * ready));
        }
        let all = f64::from(o.existing);
        let new_ratio = cpu * ready / (self.target_cpu * all);
        if self.within_tolerance(new_ratio) || new_ratio < 1.0 {
            return Some(o.existing);
        }
        Some(ceil_u32(new_ratio * all))
    }
}

fn ceil_u32(x: f64) -> u32 {
    // Clamped before the conversion: no overflow whatever the metric.
    (x - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// The HPA state: the recommendations of the down-scale stabilization window.
#[derive(Debug, Clone, Default)]
pub struct HpaState {
    recommendations: VecDeque<(i64, u32)>,
}

impl HpaState {
    /// One evaluation. Returns the replica count to set, if any.
    pub fn step(&mut self, p: &Hpa, o: &Observation) -> Option<u32> {
        let current = o.existing;
        let Some(raw) = p.recommend(o) else {
            // No metric: no recommendation and no scaling, except into the bounds.
            return (current < p.min || current > p.max).then(|| current.clamp(p.min, p.max));
        };
        // "The controller considers all recommendations within a configurable window choosing
        // the highest recommendation from within that window" for scale-down; scale-up uses
        // the newest one (stabilizationWindowSeconds 0) [HPA].
        let cutoff = o.now - p.down_window_secs;
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| *t <= cutoff)
        {
            self.recommendations.pop_front();
        }
        let down = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .fold(raw, u32::max);
        self.recommendations.push_back((o.now, raw));
        let mut next = current;
        if next < raw {
            next = raw;
        }
        if next > down {
            next = down;
        }
        // Default scale-up policies: 100 % or 4 pods per 15 s, the larger [HPA] (per minute
        // here); scale-down: 100 %, no limit that matters.
        let up_limit = current.saturating_mul(2).max(current.saturating_add(4));
        let next = next.min(up_limit).clamp(p.min, p.max);
        (next != current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::backtest::baselines::obs;

    #[test]
    fn nothing_within_ten_percent_of_the_target() {
        let p = Hpa::new(60.0, 1, 10);
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 66.0, 4, 4)), None, "ratio 1.10");
        assert_eq!(s.step(&p, &obs(60, 54.0, 4, 4)), None, "ratio 0.90");
        // ratio 1.12: ceil(4 × 1.12) = 5
        assert_eq!(s.step(&p, &obs(120, 67.2, 4, 4)), Some(5));
    }

    #[test]
    fn scale_up_is_immediate_and_sized_by_the_ratio() {
        let p = Hpa::new(60.0, 1, 10);
        let mut s = HpaState::default();
        // ceil(2 × 90 / 60) = 3 at the first hot minute
        assert_eq!(s.step(&p, &obs(0, 90.0, 2, 2)), Some(3));
        // limited to max(2 × 1, 1 + 4) = 5 per step
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 100.0, 1, 1)), Some(2));
        let p = Hpa::new(10.0, 1, 10);
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 100.0, 1, 1)), Some(5));
    }

    #[test]
    fn replicas_being_created_count_as_idle_on_a_scale_up() {
        let p = Hpa::new(60.0, 1, 10);
        let mut s = HpaState::default();
        // 1 ready at 100 %, 1 creating: (100 × 1) / (60 × 2) = 0.83 reverses the direction.
        assert_eq!(s.step(&p, &obs(0, 100.0, 1, 2)), None);
        // 1 ready at 100 %, 1 creating, target 40: 100 / 80 = 1.25 → ceil(1.25 × 2) = 3
        let p = Hpa::new(40.0, 1, 10);
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 100.0, 1, 2)), Some(3));
        // 2 ready of 3 at 99 %, target 90: 1.10 over the ready ones, 99 × 2 / (90 × 3) = 0.73
        // with the creating one at 0 %: the direction reverses, nothing.
        let p = Hpa::new(90.0, 1, 10);
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 99.0, 2, 3)), None);
    }

    #[test]
    fn scale_down_takes_the_highest_recommendation_of_the_last_five_minutes() {
        let p = Hpa::new(60.0, 1, 10);
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 60.0, 4, 4)), None, "recommends 4");
        // recommends ceil(4 × 30 / 60) = 2, but 4 was recommended within 300 s
        for now in [60, 120, 180, 240] {
            assert_eq!(s.step(&p, &obs(now, 30.0, 4, 4)), None, "{now}");
        }
        // the 4 of t=0 is 300 s old: out of the window
        assert_eq!(s.step(&p, &obs(300, 30.0, 4, 4)), Some(2));
    }

    #[test]
    fn a_dip_shorter_than_the_window_does_not_scale_down() {
        let p = Hpa::new(60.0, 1, 10);
        let mut s = HpaState::default();
        s.step(&p, &obs(0, 60.0, 3, 3));
        assert_eq!(s.step(&p, &obs(60, 10.0, 3, 3)), None);
        assert_eq!(s.step(&p, &obs(120, 10.0, 3, 3)), None);
        assert_eq!(s.step(&p, &obs(180, 60.0, 3, 3)), None);
        // recommendations 3 (t=180) keep it at 3 until t=480
        for now in [240, 300, 360, 420] {
            assert_eq!(s.step(&p, &obs(now, 10.0, 3, 3)), None, "{now}");
        }
        assert_eq!(s.step(&p, &obs(480, 10.0, 3, 3)), Some(1));
    }

    #[test]
    fn stays_within_min_and_max_and_holds_without_a_metric() {
        let p = Hpa::new(60.0, 2, 4);
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 100.0, 4, 4)), None, "at max");
        let mut s = HpaState::default();
        assert_eq!(s.step(&p, &obs(0, 1.0, 2, 2)), None, "at min");
        let gap = Observation {
            cpu: None,
            ..obs(60, 0.0, 2, 2)
        };
        assert_eq!(s.step(&p, &gap), None);
        let below = Observation {
            cpu: None,
            ..obs(120, 0.0, 1, 1)
        };
        assert_eq!(s.step(&p, &below), Some(2));
        assert_eq!(s.step(&p, &obs(180, f64::INFINITY, 2, 2)), None);
    }

    #[test]
    fn name_carries_the_target() {
        assert_eq!(Hpa::new(60.0, 1, 4).name(), "hpa-target-60");
    }
}
