//! The Aurora-style baseline: Application Auto Scaling target tracking on
//! `RDSReaderAverageCPUUtilization`, as AWS documents it for Aurora replica auto scaling. This
//! file owns the parameters ([`TargetTracking`]) and the state machine ([`TargetTracker`]); the
//! replay on the simulated fleet is in `super` (mod.rs). Every rule cites its source; the
//! sources are quoted in docs/backtest.md, section "Baselines".
//!
//! Sources:
//! - \[AAS-TT\] Application Auto Scaling User Guide, "Target tracking scaling policies" and "How
//!   target tracking scaling works":
//!   <https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-target-tracking.html>,
//!   <https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html>
//! - \[AAS-API\] `TargetTrackingScalingPolicyConfiguration`:
//!   <https://docs.aws.amazon.com/autoscaling/application/APIReference/API_TargetTrackingScalingPolicyConfiguration.html>
//! - \[AURORA\] Aurora User Guide, "Amazon Aurora Auto Scaling with Aurora Replicas":
//!   <https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Aurora.Integrating.AutoScaling.html>
//! - \[ALARMS\] the alarms target tracking creates, as the CloudWatch console shows them
//!   ("> 70.00 for 3 datapoints within 3 minutes", "< 63.00 for 15 datapoints within 15
//!   minutes" for a target of 70), e.g. AWS Copilot's docs, `copilot svc status`:
//!   <https://aws.github.io/copilot-cli/docs/concepts/services/>

use super::Observation;

/// What the policy counts as the cluster's current capacity, the one ambiguity in AWS's
/// documentation (docs/backtest.md, "Baselines"): both are scored, and the goal is held against
/// the stronger run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// \[AURORA\], earlier wording: "Aurora Auto Scaling only scales a DB cluster if all Aurora
    /// Replicas in a DB cluster are in the available state ... waits until the whole DB cluster
    /// becomes available for scaling". No scaling activity while a replica is being created;
    /// when it acts, every replica serves, so the capacity is the serving replicas.
    ServingAfterWait,
    /// \[AURORA\], current wording ("only scales a DB cluster if the DB cluster is in the
    /// available state") with \[AAS-TT\]'s scale-out cooldown: it acts while replicas are being
    /// created, and the capacity is every replica that exists (`rds:cluster:ReadReplicaCount`
    /// as Application Auto Scaling set it), creating ones included.
    Existing,
}

/// Parameters of the Aurora-style target-tracking baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTracking {
    /// Target of the reader-average CPU, percent.
    pub target_cpu: f64,
    /// The scale-out alarm: this many consecutive 1-minute datapoints above the target \[ALARMS\].
    pub out_minutes: u32,
    /// The scale-in alarm: this many consecutive 1-minute datapoints below
    /// `in_fraction × target` \[ALARMS\].
    pub in_minutes: u32,
    /// 0.9: "usually more than 10% lower" \[AAS-TT\]; 63 for a target of 70 \[ALARMS\].
    pub in_fraction: f64,
    /// 300 s each, the default for Aurora DB clusters \[AAS-API\], \[AURORA\].
    pub out_cooldown_secs: i64,
    pub in_cooldown_secs: i64,
    /// The scalable target's MinCapacity and MaxCapacity \[AURORA\].
    pub min: u32,
    pub max: u32,
    pub capacity: Capacity,
}

impl TargetTracking {
    /// The documented defaults at a 60 % target, counting serving replicas.
    pub fn aurora(min: u32, max: u32) -> TargetTracking {
        TargetTracking::new(60.0, min, max, Capacity::ServingAfterWait)
    }

    pub fn new(target_cpu: f64, min: u32, max: u32, capacity: Capacity) -> TargetTracking {
        TargetTracking {
            target_cpu,
            out_minutes: 3,
            in_minutes: 15,
            in_fraction: 0.9,
            out_cooldown_secs: 300,
            in_cooldown_secs: 300,
            min,
            max,
            capacity,
        }
    }

    /// `aurora-target-60`, or `aurora-target-60-counting-creating` for [`Capacity::Existing`].
    pub fn name(&self) -> String {
        match self.capacity {
            Capacity::ServingAfterWait => format!("aurora-target-{}", self.target_cpu),
            Capacity::Existing => format!("aurora-target-{}-counting-creating", self.target_cpu),
        }
    }

    /// `ceil(capacity × metric / target)` within min and max: "calculates the scaling
    /// adjustment based on the metric and the target value"; it "always acts conservatively by
    /// rounding up or down ... This prevents it from adding insufficient capacity or removing
    /// too much capacity" \[AAS-TT\]. Rounding the capacity up does both.
    pub fn desired(&self, capacity: u32, cpu: f64) -> u32 {
        let raw = (f64::from(capacity) * cpu / self.target_cpu - 1e-9).ceil();
        if raw.is_nan() {
            return self.min;
        }
        // Clamped before the conversion: no overflow whatever the metric.
        raw.clamp(f64::from(self.min), f64::from(self.max)) as u32
    }
}

/// The target-tracking state machine, fed one [`Observation`] per minute.
#[derive(Debug, Clone, Default)]
pub struct TargetTracker {
    /// Consecutive datapoints above the target / below `in_fraction` of it.
    above: u32,
    below: u32,
    /// The last policy scale-out: when, and the capacity it set.
    last_out: Option<(i64, u32)>,
    /// The last scale-in, while its cooldown can still be running.
    last_in: Option<i64>,
}

impl TargetTracker {
    /// One evaluation. Returns the replica count to set, if any.
    pub fn step(&mut self, p: &TargetTracking, o: &Observation) -> Option<u32> {
        // A value that is not a number is no datapoint.
        let cpu = o.cpu.filter(|c| c.is_finite());
        self.alarms(p, cpu);
        // The scalable target's bounds: capacity is brought within MinCapacity and
        // MaxCapacity [AURORA] (the start of a replay may be below the policy's minimum).
        if o.existing < p.min {
            return Some(p.min);
        }
        if o.existing > p.max {
            return Some(p.max);
        }
        if p.capacity == Capacity::ServingAfterWait && o.serving < o.existing {
            // "waits until the whole DB cluster becomes available for scaling" [AURORA].
            return None;
        }
        let cpu = cpu?;
        let current = match p.capacity {
            Capacity::ServingAfterWait => o.serving,
            Capacity::Existing => o.existing,
        };
        let desired = p.desired(current, cpu);
        if self.above >= p.out_minutes {
            return self.scale_out(p, o.now, current, desired);
        }
        if self.below >= p.in_minutes {
            return self.scale_in(p, o.now, current, desired);
        }
        None
    }

    /// The two alarms' streaks. A missing datapoint breaks both: "A target tracking scaling
    /// policy does not scale in when the state of the alarm is INSUFFICIENT_DATA" \[AAS-TT\]
    /// (a simplification for scale-out: CloudWatch can evaluate an alarm over fewer points).
    fn alarms(&mut self, p: &TargetTracking, cpu: Option<f64>) {
        match cpu {
            Some(c) if c > p.target_cpu => {
                self.above = self.above.saturating_add(1);
                self.below = 0;
            }
            Some(c) if c < p.target_cpu * p.in_fraction => {
                self.below = self.below.saturating_add(1);
                self.above = 0;
            }
            _ => {
                self.above = 0;
                self.below = 0;
            }
        }
    }

    /// The scale-out alarm is in ALARM (it invokes the policy every minute while it stays so).
    /// Within the scale-out cooldown "the capacity added by the initiating scale-out activity is
    /// calculated as part of the desired capacity for the next scale-out activity": only a
    /// larger scale-out than the one that started the cooldown is made \[AAS-TT\]. A scale-out
    /// ends a running scale-in cooldown: "the scale-in cooldown period stops and doesn't
    /// complete" \[AAS-TT\].
    fn scale_out(
        &mut self,
        p: &TargetTracking,
        now: i64,
        current: u32,
        desired: u32,
    ) -> Option<u32> {
        let floor = match self.last_out {
            Some((t, set)) if now - t < p.out_cooldown_secs => set.max(current),
            _ => current,
        };
        if desired <= floor {
            return None;
        }
        self.last_out = Some((now, desired));
        self.last_in = None;
        Some(desired)
    }

    /// The scale-in alarm is in ALARM: "scale-in activities are blocked until the cooldown
    /// period has expired" \[AAS-TT\]. The alarm stays in ALARM after a scale-in while the metric
    /// stays low, so the next one comes after the cooldown. (Whether a scale-out cooldown also
    /// blocks scale-in is not documented, and cannot matter here: 15 low datapoints after the
    /// last high one take longer than the 300 s cooldown.)
    fn scale_in(
        &mut self,
        p: &TargetTracking,
        now: i64,
        current: u32,
        desired: u32,
    ) -> Option<u32> {
        if matches!(self.last_in, Some(t) if now - t < p.in_cooldown_secs) || desired >= current {
            return None;
        }
        self.last_in = Some(now);
        Some(desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::backtest::baselines::obs;

    fn p(capacity: Capacity) -> TargetTracking {
        TargetTracking::new(60.0, 1, 8, capacity)
    }

    #[test]
    fn scale_out_alarm_needs_three_of_three_datapoints_above_the_target() {
        let p = p(Capacity::ServingAfterWait);
        let mut t = TargetTracker::default();
        assert_eq!(t.step(&p, &obs(60, 90.0, 2, 2)), None);
        assert_eq!(t.step(&p, &obs(120, 90.0, 2, 2)), None);
        // A datapoint at the target is not above it: the streak starts again.
        assert_eq!(t.step(&p, &obs(180, 60.0, 2, 2)), None);
        assert_eq!(t.step(&p, &obs(240, 90.0, 2, 2)), None);
        assert_eq!(t.step(&p, &obs(300, 90.0, 2, 2)), None);
        // A missing datapoint breaks it too.
        let gap = Observation {
            cpu: None,
            ..obs(360, 0.0, 2, 2)
        };
        assert_eq!(t.step(&p, &gap), None);
        for (i, now) in [420, 480].into_iter().enumerate() {
            assert_eq!(t.step(&p, &obs(now, 90.0, 2, 2)), None, "{i}");
        }
        // ceil(2 × 90 / 60) = 3
        assert_eq!(t.step(&p, &obs(540, 90.0, 2, 2)), Some(3));
    }

    #[test]
    fn scale_in_alarm_needs_fifteen_of_fifteen_datapoints_below_ninety_percent_of_target() {
        let p = p(Capacity::ServingAfterWait);
        let mut t = TargetTracker::default();
        // 54 % is 90 % of 60: not below it, so no streak.
        for k in 0..20 {
            assert_eq!(t.step(&p, &obs(60 * k, 54.0, 4, 4)), None);
        }
        for k in 0..14 {
            assert_eq!(t.step(&p, &obs(2000 + 60 * k, 20.0, 4, 4)), None, "{k}");
        }
        // ceil(4 × 20 / 60) = 2
        assert_eq!(t.step(&p, &obs(2000 + 60 * 14, 20.0, 4, 4)), Some(2));
    }

    #[test]
    fn new_capacity_is_the_ceiling_of_capacity_times_metric_over_target_within_bounds() {
        let p = TargetTracking::new(60.0, 2, 5, Capacity::Existing);
        assert_eq!(p.desired(3, 60.0), 3, "exactly on target");
        assert_eq!(p.desired(3, 61.0), 4);
        assert_eq!(p.desired(1, 100.0), 2);
        assert_eq!(p.desired(4, 99.0), 5, "ceil(6.6) = 7, capped at max 5");
        assert_eq!(p.desired(4, 1.0), 2, "floored at min 2");
        assert_eq!(p.desired(4, f64::INFINITY), 5);
        assert_eq!(p.desired(4, f64::NAN), 2);
    }

    #[test]
    fn a_larger_scale_out_is_made_during_the_scale_out_cooldown_and_only_a_larger_one() {
        let p = p(Capacity::Existing);
        let mut t = TargetTracker::default();
        t.step(&p, &obs(0, 70.0, 2, 2));
        t.step(&p, &obs(60, 70.0, 2, 2));
        // ceil(2 × 70 / 60) = 3
        assert_eq!(t.step(&p, &obs(120, 70.0, 2, 2)), Some(3));
        // In the cooldown, 3 already counts: ceil(3 × 65 / 60) = 4 is larger, so it is made.
        assert_eq!(t.step(&p, &obs(180, 65.0, 2, 3)), Some(4));
        // ceil(4 × 61 / 60) = 5 > 4: larger again.
        assert_eq!(t.step(&p, &obs(240, 61.0, 2, 4)), Some(5));
        // A smaller one is not: ceil(4 × 61 / 60) = 5 with 4 existing (one deleted outside
        // the policy) is not larger than the 5 the last scale-out set.
        assert_eq!(t.step(&p, &obs(300, 61.0, 4, 4)), None);
        // After the cooldown (300 s from the last scale-out at 240) it sizes from capacity.
        assert_eq!(t.step(&p, &obs(540, 61.0, 4, 4)), Some(5));
    }

    #[test]
    fn counting_serving_replicas_waits_while_a_replica_is_being_created() {
        let p = p(Capacity::ServingAfterWait);
        let mut t = TargetTracker::default();
        t.step(&p, &obs(0, 100.0, 1, 1));
        t.step(&p, &obs(60, 100.0, 1, 1));
        assert_eq!(t.step(&p, &obs(120, 100.0, 1, 1)), Some(2));
        // Still hot, the cooldown over, but one replica is creating: it waits.
        for now in [480, 540, 600] {
            assert_eq!(t.step(&p, &obs(now, 100.0, 1, 2)), None);
        }
        // Both available: ceil(2 × 100 / 60) = 4.
        assert_eq!(t.step(&p, &obs(660, 100.0, 2, 2)), Some(4));
    }

    #[test]
    fn counting_creating_replicas_acts_while_they_are_being_created() {
        let p = p(Capacity::Existing);
        let mut t = TargetTracker::default();
        t.step(&p, &obs(0, 100.0, 1, 1));
        t.step(&p, &obs(60, 100.0, 1, 1));
        assert_eq!(t.step(&p, &obs(120, 100.0, 1, 1)), Some(2));
        // After the cooldown, with the second replica still creating: ceil(2 × 100 / 60) = 4.
        assert_eq!(t.step(&p, &obs(420, 100.0, 1, 2)), Some(4));
    }

    #[test]
    fn cooldowns_block_a_second_scale_in_and_a_scale_out_ends_the_scale_in_cooldown() {
        let p = p(Capacity::ServingAfterWait);
        let mut t = TargetTracker::default();
        let mut now = 0;
        let mut last = None;
        for _ in 0..15 {
            now += 60;
            last = t.step(&p, &obs(now, 10.0, 6, 6));
        }
        assert_eq!(last, Some(1), "ceil(6 × 10 / 60) = 1");
        // Still low with 3 replicas (say the fleet kept more): blocked for 300 s.
        for _ in 0..4 {
            now += 60;
            assert_eq!(t.step(&p, &obs(now, 20.0, 3, 3)), None);
        }
        now += 60;
        assert_eq!(t.step(&p, &obs(now, 20.0, 3, 3)), Some(1), "300 s later");
        // Hot within the new scale-in cooldown: the scale-out is made at once...
        for _ in 0..2 {
            now += 60;
            assert_eq!(t.step(&p, &obs(now, 90.0, 1, 1)), None);
        }
        now += 60;
        assert_eq!(t.step(&p, &obs(now, 90.0, 1, 1)), Some(2));
        // ...and the scale-in cooldown is over: 15 low minutes later it scales in again.
        for k in 0..15 {
            now += 60;
            let r = t.step(&p, &obs(now, 10.0, 4, 4));
            assert_eq!(r, (k == 14).then_some(1), "{k}");
        }
    }

    #[test]
    fn stays_within_min_and_max() {
        let p = TargetTracking::new(60.0, 2, 3, Capacity::Existing);
        let mut t = TargetTracker::default();
        assert_eq!(t.step(&p, &obs(0, 10.0, 1, 1)), Some(2), "below min");
        assert_eq!(t.step(&p, &obs(60, 10.0, 4, 4)), Some(3), "above max");
        let mut n = None;
        for k in 0..3 {
            n = t.step(&p, &obs(120 + 60 * k, 100.0, 3, 3));
        }
        assert_eq!(n, None, "at max: no scale-out");
        let mut t = TargetTracker::default();
        for k in 0..15 {
            n = t.step(&p, &obs(60 * k, 1.0, 2, 2));
        }
        assert_eq!(n, None, "at min: no scale-in");
    }

    #[test]
    fn names_carry_the_target_and_the_variant() {
        assert_eq!(TargetTracking::aurora(1, 4).name(), "aurora-target-60");
        let p = TargetTracking::new(72.5, 1, 4, Capacity::Existing);
        assert_eq!(p.name(), "aurora-target-72.5-counting-creating");
    }
}
