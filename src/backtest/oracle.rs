//! The oracle: a clairvoyant plan that knows the whole demand series and starts each replica
//! exactly one lead time before it is needed — the lower bound of cost at zero breaches.
//!
//! A minute needs `max(floor, ceil(demand / 0.80))` replicas (per-replica CPU never above the
//! 80 % breach line); a minute without data needs the larger of the needs around it. Replicas
//! are interchangeable, so the k-th replica is needed exactly in the minutes needing ≥ k; for
//! each k independently the cheapest cover is: between two needed stretches keep the replica
//! when the gap is at most one lead time, otherwise delete it and create it again one lead time
//! before the next stretch (paying the lead time, as every created replica does). The replicas
//! available at the start are free of lead time. Pure.

use super::score::{Recorder, RunKind, Score, Timeline};
use crate::adapters::sim_load::{serve, Demand, MinuteState, BREACH_UTILIZATION};

/// Replicas needed in each minute.
pub fn needs(demand: &Demand, floor: u32) -> Vec<u32> {
    let raw: Vec<Option<u32>> = demand
        .units
        .iter()
        .map(|d| d.map(|d| floor.max((d / BREACH_UTILIZATION - 1e-9).ceil().max(0.0) as u32)))
        .collect();
    // Gaps: the larger of the last known need before and the next known need after.
    let mut next = vec![None; raw.len()];
    let mut nxt = None;
    for i in (0..raw.len()).rev() {
        if raw[i].is_some() {
            nxt = raw[i];
        }
        next[i] = nxt;
    }
    let mut prev = None;
    raw.iter()
        .enumerate()
        .map(|(i, r)| match r {
            Some(n) => {
                prev = Some(*n);
                *n
            }
            None => prev.max(next[i]).unwrap_or(floor),
        })
        .collect()
}

/// Replicas to start with so that nothing is late in the first lead time: the most any minute
/// of it needs.
pub fn initial_replicas(demand: &Demand, floor: u32, lead_minutes: usize) -> u32 {
    needs(demand, floor)
        .iter()
        .take(lead_minutes.max(1))
        .copied()
        .max()
        .unwrap_or(floor)
}

/// The oracle's plan: replicas paid for and serving per minute, and actions taken.
#[derive(Debug, Clone, PartialEq)]
pub struct OraclePlan {
    pub replicas: Vec<u32>,
    pub serving: Vec<u32>,
    pub actions: u64,
}

pub fn plan(demand: &Demand, floor: u32, lead_minutes: usize, initial: u32) -> OraclePlan {
    let need = needs(demand, floor);
    let n = need.len();
    let top = need.iter().copied().max().unwrap_or(0).max(initial);
    // Difference arrays for paid and serving replica counts.
    let mut paid = vec![0i64; n + 1];
    let mut serving = vec![0i64; n + 1];
    let mut actions = 0u64;
    let lead = lead_minutes;
    for k in 1..=top {
        // Lay out replica k's lives: serving [s, e), paid from one lead time before s when it
        // was created (the initial replica was not).
        let mut close = |s: usize, e: usize, created: bool| {
            let from = if created { s.saturating_sub(lead) } else { s };
            paid[from] += 1;
            paid[e] -= 1;
            serving[s] += 1;
            serving[e] -= 1;
        };
        let mut life: Option<(usize, usize, bool)> = (k <= initial).then_some((0, 0, false));
        let mut i = 0;
        while i < n {
            if need[i] < k {
                i += 1;
                continue;
            }
            let a = i;
            while i < n && need[i] >= k {
                i += 1;
            }
            let b = i;
            life = match life {
                Some((s, e, c)) if a - e <= lead => Some((s, b, c)),
                Some((s, e, c)) => {
                    close(s, e, c);
                    actions += 2; // delete, then create again
                    Some((a, b, true))
                }
                None => {
                    actions += 1;
                    Some((a, b, true))
                }
            };
        }
        if let Some((s, e, c)) = life {
            close(s, e, c);
            if e < n {
                actions += 1; // deleted after its last stretch
            }
        }
    }
    let mut rep = Vec::with_capacity(n);
    let mut srv = Vec::with_capacity(n);
    let (mut p, mut s) = (0i64, 0i64);
    for i in 0..n {
        p += paid[i];
        s += serving[i];
        rep.push(p.max(0) as u32);
        srv.push(s.max(0) as u32);
    }
    OraclePlan {
        replicas: rep,
        serving: srv,
        actions,
    }
}

/// Score the oracle with the same load rule as every other run.
pub fn run(
    demand: &Demand,
    floor: u32,
    lead_minutes: usize,
    initial: u32,
    timeline: bool,
) -> (Score, Option<Timeline>) {
    let p = plan(demand, floor, lead_minutes, initial);
    let mut r = Recorder::new("oracle", RunKind::Oracle, timeline);
    for (i, d) in demand.units.iter().enumerate() {
        r.minute(&MinuteState {
            minute: demand.start_minute + i as i64,
            demand: *d,
            replicas: p.replicas[i],
            serving: p.serving[i],
            served: d.map(|d| serve(d, p.serving[i], true)),
        });
    }
    r.actions(p.actions);
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn demand(units: Vec<Option<f64>>) -> Demand {
        Demand {
            start_minute: 0,
            units,
        }
    }
    fn series(parts: &[(usize, f64)]) -> Demand {
        demand(
            parts
                .iter()
                .flat_map(|(n, v)| std::iter::repeat_n(Some(*v), *n))
                .collect(),
        )
    }

    #[test]
    fn constant_load_needs_nothing_more() {
        let d = series(&[(100, 0.5)]);
        let p = plan(&d, 1, 12, 1);
        assert!(p.replicas.iter().all(|&r| r == 1));
        assert_eq!(p.actions, 0);
    }

    #[test]
    fn a_burst_is_met_exactly_one_lead_time_ahead() {
        // 30 min at 0.5, 20 min needing 2 replicas, 50 min at 0.5.
        let d = series(&[(30, 0.5), (20, 1.5), (50, 0.5)]);
        let p = plan(&d, 1, 12, 1);
        assert_eq!(p.replicas[17], 1);
        assert_eq!(p.replicas[18], 2, "created 12 minutes before minute 30");
        assert_eq!(p.serving[29], 1);
        assert_eq!(p.serving[30], 2);
        assert_eq!(p.replicas[49], 2);
        assert_eq!(p.replicas[50], 1, "deleted as soon as not needed");
        assert_eq!(p.actions, 2);
        let paid: u32 = p.replicas.iter().sum();
        assert_eq!(paid, 100 + 32);
        let (s, _) = run(&d, 1, 12, 1, false);
        assert_eq!(s.breach_minutes, 0);
    }

    #[test]
    fn short_gaps_are_bridged_long_ones_are_not() {
        let short = series(&[(20, 0.5), (10, 1.5), (10, 0.5), (10, 1.5), (20, 0.5)]);
        let p = plan(&short, 1, 12, 1);
        assert_eq!(p.actions, 2, "kept through a 10-minute gap");
        assert_eq!(p.replicas.iter().sum::<u32>(), 70 + 12 + 30);
        let long = series(&[(20, 0.5), (10, 1.5), (20, 0.5), (10, 1.5), (20, 0.5)]);
        let p = plan(&long, 1, 12, 1);
        assert_eq!(
            p.actions, 4,
            "deleted and created again across a 20-minute gap"
        );
        assert_eq!(p.replicas.iter().sum::<u32>(), 80 + (12 + 10) * 2);
    }

    #[test]
    fn gaps_need_the_larger_neighbour() {
        let d = demand(vec![Some(0.5), None, None, Some(1.5), Some(0.5)]);
        assert_eq!(needs(&d, 1), vec![1, 2, 2, 2, 1]);
    }

    proptest! {
        #[test]
        fn never_breaches_and_never_costs_more_than_peak_static(
            units in proptest::collection::vec(proptest::option::weighted(0.9, 0.0f64..3.2), 1..240),
            lead in 1usize..20,
        ) {
            let d = demand(units);
            let initial = initial_replicas(&d, 1, lead);
            let (s, _) = run(&d, 1, lead, initial, false);
            prop_assert_eq!(s.breach_minutes, 0);
            let peak = needs(&d, 1).into_iter().max().unwrap_or(1);
            prop_assert!(s.replica_hours <= peak as f64 * d.len() as f64 / 60.0 + 1e-9);
        }
    }
}
