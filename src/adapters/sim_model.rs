//! The fleet model the simulated world follows (backtest and `elasticrds demo`): how long a new
//! replica takes, when a minute's metric becomes visible, how unevenly replicas share the load,
//! how a new replica warms up and how long a deleted one is still paid for. Shared by the
//! simulated fleet ([`super::sim`]), the load model ([`super::sim_load`]) and the backtest's
//! oracle, so every policy, baseline and the oracle are scored on the same world. Pure and
//! deterministic: the lead time of a replica depends only on the seed and the minute its
//! creation starts, so two runs that create a replica in the same minute wait equally long
//! (and the oracle, which knows the future, knows it too).
//!
//! Defaults and their reasons: docs/backtest.md ("The fleet model"). [`FleetModel::simple`]
//! is the model before these effects: a fixed lead time, metrics visible at once, an even
//! split, no warm-up, deletes free at once.

use rand_core::SeedableRng;
use rand_distr::{Distribution, LogNormal};
use rand_xorshift::XorShiftRng;
use serde::Serialize;

/// Longest lead time a draw gives, in minutes (a day).
pub const MAX_LEAD_MINUTES: u32 = 24 * 60;

/// Every effect of the model, each switchable (0 turns it off).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetModel {
    pub lead: LeadTime,
    /// A minute's datapoint becomes visible this many minutes after the minute ends.
    pub metric_delay_minutes: u32,
    /// With two or more replicas serving, the hottest carries `1 + skew` times the mean load.
    pub skew: f64,
    pub warmup: WarmupModel,
    /// A deleted replica is paid for this many minutes after the delete call.
    pub delete_minutes: u32,
}

/// Replica creation time: `median / 2 + median / 2 × e^(spread × Z)` minutes with `Z` standard
/// normal (a log-normal shifted by half the median: never under half the median, a long right
/// tail), rounded up to whole minutes; drawn from `seed` and the minute the creation starts.
/// `spread` 0: always `median_minutes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadTime {
    pub median_minutes: u32,
    pub spread: f64,
    pub seed: u64,
}

/// A replica that just became available serves at `start_capacity` of a warm one, rising
/// linearly to full capacity over `minutes` (a cold buffer pool; storage loaded lazily).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WarmupModel {
    pub minutes: u32,
    pub start_capacity: f64,
}

impl Default for FleetModel {
    fn default() -> Self {
        FleetModel {
            lead: LeadTime {
                median_minutes: 12,
                spread: 0.6,
                seed: 1,
            },
            metric_delay_minutes: 2,
            skew: 0.10,
            warmup: WarmupModel {
                minutes: 10,
                start_capacity: 0.5,
            },
            delete_minutes: 5,
        }
    }
}

impl FleetModel {
    /// The model without its effects: a fixed `lead_minutes`, metrics visible at once, an
    /// even split, full capacity at once, deletes free at once.
    pub fn simple(lead_minutes: u32) -> FleetModel {
        FleetModel {
            lead: LeadTime {
                median_minutes: lead_minutes,
                spread: 0.0,
                seed: 1,
            },
            metric_delay_minutes: 0,
            skew: 0.0,
            warmup: WarmupModel {
                minutes: 0,
                start_capacity: 1.0,
            },
            delete_minutes: 0,
        }
    }

    /// The check of a model built from options: a message naming the field, or `Ok`.
    pub fn check(&self) -> Result<(), String> {
        let l = &self.lead;
        if l.median_minutes == 0 || l.median_minutes > MAX_LEAD_MINUTES {
            return Err(format!(
                "lead time median must be 1 to {MAX_LEAD_MINUTES} minutes"
            ));
        }
        if !(0.0..=2.0).contains(&l.spread) {
            return Err(format!("lead time spread {} is outside 0 to 2", l.spread));
        }
        if !(0.0..=1.0).contains(&self.skew) {
            return Err(format!("skew {} is outside 0 to 1", self.skew));
        }
        let w = &self.warmup;
        if !(0.05..=1.0).contains(&w.start_capacity) {
            return Err(format!(
                "warm-up start capacity {} is outside 0.05 to 1",
                w.start_capacity
            ));
        }
        if self.metric_delay_minutes > 60 || w.minutes > 24 * 60 || self.delete_minutes > 24 * 60 {
            return Err(
                "metric delay at most 60 minutes; warm-up and delete time at most a day".into(),
            );
        }
        Ok(())
    }

    /// Capacity of a replica `minutes` after it became available (1.0 = warm).
    pub fn capacity(&self, minutes: i64) -> f64 {
        let w = &self.warmup;
        if w.minutes == 0 || minutes >= i64::from(w.minutes) {
            return 1.0;
        }
        let f = minutes.max(0) as f64 / f64::from(w.minutes);
        w.start_capacity + (1.0 - w.start_capacity) * f
    }

    /// How much more than the mean the hottest of `serving` replicas carries.
    pub fn hottest_factor(&self, serving: u32) -> f64 {
        if serving >= 2 {
            1.0 + self.skew
        } else {
            1.0
        }
    }
}

impl LeadTime {
    /// Minutes a replica whose creation starts in epoch minute `minute` takes to be available.
    pub fn minutes_at(&self, minute: i64) -> u32 {
        let median = f64::from(self.median_minutes.max(1));
        if self.spread <= 0.0 {
            return self.median_minutes.max(1);
        }
        // One generator per minute, seeded from the model's seed and the minute: the draw does
        // not depend on what else was drawn before.
        let mixed = self.seed ^ (minute as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut rng = XorShiftRng::seed_from_u64(mixed);
        let factor = LogNormal::new(0.0, self.spread).map_or(1.0, |d| d.sample(&mut rng));
        let minutes = median / 2.0 + median / 2.0 * factor;
        (minutes.ceil() as u32).clamp(1, MAX_LEAD_MINUTES)
    }

    /// The smallest and largest lead of the draws for `minutes` consecutive minutes from
    /// `start`, and the median of them (for reports).
    pub fn summary(&self, start: i64, minutes: usize) -> (u32, u32, u32) {
        let mut v: Vec<u32> = (0..minutes as i64)
            .map(|m| self.minutes_at(start + m))
            .collect();
        v.sort_unstable();
        match (v.first(), v.last()) {
            (Some(&lo), Some(&hi)) => (lo, v[v.len() / 2], hi),
            _ => (
                self.median_minutes,
                self.median_minutes,
                self.median_minutes,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lead_times_have_the_documented_shape_and_repeat_for_a_minute() {
        let l = FleetModel::default().lead;
        let mut v: Vec<u32> = (0..20_000).map(|m| l.minutes_at(29_000_000 + m)).collect();
        assert_eq!(l.minutes_at(29_000_123), v[123], "a minute's draw repeats");
        v.sort_unstable();
        let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        assert!(v[0] >= 6, "never under half the median: {}", v[0]);
        assert!((12..=13).contains(&q(0.5)), "median {}", q(0.5));
        assert!((17..=22).contains(&q(0.9)), "p90 {}", q(0.9));
        assert!((25..=36).contains(&q(0.99)), "p99 {}", q(0.99));
        let other = LeadTime {
            seed: 2,
            ..l.clone()
        };
        let differ = (0..100)
            .filter(|&m| l.minutes_at(m) != other.minutes_at(m))
            .count();
        assert!(
            differ > 50,
            "another seed draws other lead times ({differ} of 100 differ)"
        );
    }

    #[test]
    fn the_simple_model_has_no_effects() {
        let m = FleetModel::simple(12);
        assert!((0..100).all(|i| m.lead.minutes_at(i) == 12));
        assert_eq!(m.capacity(0), 1.0);
        assert_eq!(m.hottest_factor(5), 1.0);
        assert!(m.check().is_ok() && FleetModel::default().check().is_ok());
    }

    #[test]
    fn warm_up_rises_linearly_and_skew_needs_two_replicas() {
        let m = FleetModel::default();
        assert_eq!(m.capacity(0), 0.5);
        assert!((m.capacity(5) - 0.75).abs() < 1e-12);
        assert_eq!(m.capacity(10), 1.0);
        assert_eq!(m.hottest_factor(1), 1.0);
        assert!((m.hottest_factor(2) - 1.1).abs() < 1e-12);
        let bad = FleetModel {
            skew: 3.0,
            ..FleetModel::default()
        };
        assert!(bad.check().unwrap_err().contains("skew"));
    }
}
