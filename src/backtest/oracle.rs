//! The oracle: a clairvoyant plan that knows the whole demand series and the fleet model
//! (including the lead time each creation will take) and has each replica available and warm
//! exactly when it is needed — the floor of cost at zero breaches.
//!
//! A minute needs the fewest replicas `n ≥ floor` whose hottest stays at or under the 80 %
//! breach line: `demand × hottest_factor(n) / n ≤ 0.80` (the skew applies from two replicas);
//! a minute without data needs the larger of the needs around it. Replicas are
//! interchangeable, so the k-th replica is needed exactly in the minutes needing ≥ k; for each
//! k independently: a stretch starting at minute `a` is served by a replica created at the
//! latest minute `t` whose drawn lead time makes it available by `a − warm-up` (so it is warm
//! at `a`); between two stretches the replica is kept when keeping costs no more than deleting
//! it (paid until the delete finishes) and creating it again. The replicas available at the
//! start (the most any minute needs before the first one a creation could serve) are free of
//! lead time. Pure. A plan that leans on half-warm replicas could in principle be a little
//! cheaper; the backtest's tests check that no policy or baseline without breaches ever is.

use super::score::{Recorder, RunKind, Score, Timeline};
use crate::adapters::sim_load::{serve_on, Demand, MinuteState, Serving, BREACH_UTILIZATION};
use crate::adapters::sim_model::FleetModel;

/// Replicas needed in one minute of `demand` (capacity units) under `model`'s skew.
fn need_of(d: f64, floor: u32, model: &FleetModel) -> u32 {
    let even = (d / BREACH_UTILIZATION - 1e-9).ceil().max(0.0) as u32;
    let n = floor.max(even);
    if n >= 2 {
        let hot = (d * model.hottest_factor(2) / BREACH_UTILIZATION - 1e-9)
            .ceil()
            .max(0.0);
        n.max(hot as u32)
    } else {
        n
    }
}

/// Replicas needed in each minute.
pub fn needs(demand: &Demand, floor: u32, model: &FleetModel) -> Vec<u32> {
    let raw: Vec<Option<u32>> = demand
        .units
        .iter()
        .map(|d| d.map(|d| need_of(d, floor, model)))
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

/// When replicas can be created: the lead and warm-up of the model over a demand's minutes.
struct Creations<'a> {
    model: &'a FleetModel,
    start_minute: i64,
    warm: usize,
}

impl Creations<'_> {
    /// The latest minute (index ≥ 0) to start creating a replica that must be warm at `a`;
    /// `None` when no creation within the series can be.
    fn latest_for(&self, a: usize) -> Option<usize> {
        let ready = a.checked_sub(self.warm)?;
        (0..ready).rev().find(|&t| {
            let lead = self.model.lead.minutes_at(self.start_minute + t as i64) as usize;
            t + lead <= ready
        })
    }

    /// The first minute a created replica can serve warm (every later one can too: a later
    /// minute has every earlier creation to choose from).
    fn first_servable(&self, n: usize) -> usize {
        let mut best = usize::MAX;
        for t in 0..n {
            let lead = self.model.lead.minutes_at(self.start_minute + t as i64) as usize;
            best = best.min(t + lead + self.warm);
            if best <= t {
                break;
            }
        }
        best
    }
}

/// Replicas to start with so that nothing is late before a creation could serve: the most any
/// minute before then needs.
pub fn initial_replicas(demand: &Demand, floor: u32, model: &FleetModel) -> u32 {
    let c = Creations {
        model,
        start_minute: demand.start_minute,
        warm: model.warmup.minutes as usize,
    };
    let first = c.first_servable(demand.len()).max(1);
    needs(demand, floor, model)
        .iter()
        .take(first)
        .copied()
        .max()
        .unwrap_or(floor)
}

/// One replica's life in the plan: created at `created` (`None`: there from the start),
/// available from `from`, needed until `until` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Life {
    created: Option<usize>,
    from: usize,
    until: usize,
}

/// The oracle's plan: replicas paid for and serving per minute, their capacity (less than the
/// serving count while one warms up), and actions taken.
#[derive(Debug, Clone, PartialEq)]
pub struct OraclePlan {
    pub replicas: Vec<u32>,
    pub serving: Vec<u32>,
    pub capacity: Vec<f64>,
    pub actions: u64,
}

pub fn plan(demand: &Demand, floor: u32, model: &FleetModel, initial: u32) -> OraclePlan {
    let need = needs(demand, floor, model);
    let c = Creations {
        model,
        start_minute: demand.start_minute,
        warm: model.warmup.minutes as usize,
    };
    let top = need.iter().copied().max().unwrap_or(0).max(initial);
    let mut lives = Vec::new();
    let mut actions = 0u64;
    for k in 1..=top {
        actions += lives_of(&need, k, k <= initial, &c, model, &mut lives);
    }
    tally(demand.len(), &lives, model, actions)
}

/// Lay out replica `k`'s lives into `lives`; returns the actions they take.
fn lives_of(
    need: &[u32],
    k: u32,
    initial: bool,
    c: &Creations<'_>,
    model: &FleetModel,
    lives: &mut Vec<Life>,
) -> u64 {
    let n = need.len();
    let del = model.delete_minutes as usize;
    let mut life: Option<Life> = initial.then_some(Life {
        created: None,
        from: 0,
        until: 0,
    });
    let mut actions = 0;
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
        // Created as late as it can be (a stretch no creation can serve warm starts at once:
        // only the initial replicas can be there before the first servable minute).
        let t = c.latest_for(a).unwrap_or(0);
        let fresh = Life {
            created: Some(t),
            from: t + (model.lead.minutes_at(c.start_minute + t as i64) as usize),
            until: i,
        };
        life = match life {
            // Keep it when the gap costs no more than a delete and a new creation.
            Some(l) if a - l.until <= (a - t.min(a)) + del => Some(Life { until: i, ..l }),
            Some(l) => {
                lives.push(l);
                actions += 2; // delete, then create again
                Some(fresh)
            }
            None => {
                actions += 1;
                Some(fresh)
            }
        };
    }
    if let Some(l) = life {
        lives.push(l);
        if l.until < n {
            actions += 1; // deleted after its last stretch
        }
    }
    actions
}

/// Per-minute paid, serving and capacity from the lives (difference arrays; the warm-up
/// deficit added per life).
fn tally(n: usize, lives: &[Life], model: &FleetModel, actions: u64) -> OraclePlan {
    let del = model.delete_minutes as usize;
    let mut paid = vec![0i64; n + 1];
    let mut serving = vec![0i64; n + 1];
    let mut deficit = vec![0.0f64; n];
    for l in lives {
        let from = l.from.min(n);
        let until = l.until.max(from).min(n);
        paid[l.created.unwrap_or(0).min(n)] += 1;
        paid[(l.until + if l.until < n { del } else { 0 }).min(n)] -= 1;
        serving[from] += 1;
        serving[until] -= 1;
        if l.created.is_some() {
            for (m, d) in deficit.iter_mut().enumerate().take(until).skip(from) {
                let cap = model.capacity((m - from) as i64);
                if cap >= 1.0 {
                    break;
                }
                *d += 1.0 - cap;
            }
        }
    }
    let (mut p, mut s) = (0i64, 0i64);
    let mut out = OraclePlan {
        replicas: Vec::with_capacity(n),
        serving: Vec::with_capacity(n),
        capacity: Vec::with_capacity(n),
        actions,
    };
    for i in 0..n {
        p += paid[i];
        s += serving[i];
        out.replicas.push(p.max(0) as u32);
        out.serving.push(s.max(0) as u32);
        out.capacity.push((s.max(0) as f64 - deficit[i]).max(0.0));
    }
    out
}

/// Score the oracle with the same load rule as every other run.
pub fn run(
    demand: &Demand,
    floor: u32,
    model: &FleetModel,
    initial: u32,
    timeline: bool,
) -> (Score, Option<Timeline>) {
    let p = plan(demand, floor, model, initial);
    let mut r = Recorder::new("oracle", RunKind::Oracle, timeline);
    for (i, d) in demand.units.iter().enumerate() {
        let on = Serving {
            replicas: p.serving[i],
            capacity: p.capacity[i],
            hottest_factor: model.hottest_factor(p.serving[i]),
        };
        r.minute(&MinuteState {
            minute: demand.start_minute + i as i64,
            demand: *d,
            replicas: p.replicas[i],
            deleting: 0,
            serving: p.serving[i],
            served: d.map(|d| serve_on(d, on, true)),
        });
    }
    r.actions(p.actions);
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn simple(lead: u32) -> FleetModel {
        FleetModel::simple(lead)
    }

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
        let p = plan(&d, 1, &simple(12), 1);
        assert!(p.replicas.iter().all(|&r| r == 1));
        assert_eq!(p.actions, 0);
    }

    #[test]
    fn a_burst_is_met_exactly_one_lead_time_ahead() {
        // 30 min at 0.5, 20 min needing 2 replicas, 50 min at 0.5.
        let d = series(&[(30, 0.5), (20, 1.5), (50, 0.5)]);
        let p = plan(&d, 1, &simple(12), 1);
        assert_eq!(p.replicas[17], 1);
        assert_eq!(p.replicas[18], 2, "created 12 minutes before minute 30");
        assert_eq!(p.serving[29], 1);
        assert_eq!(p.serving[30], 2);
        assert_eq!(p.replicas[49], 2);
        assert_eq!(p.replicas[50], 1, "deleted as soon as not needed");
        assert_eq!(p.actions, 2);
        let paid: u32 = p.replicas.iter().sum();
        assert_eq!(paid, 100 + 32);
        let (s, _) = run(&d, 1, &simple(12), 1, false);
        assert_eq!(s.breach_minutes, 0);
    }

    #[test]
    fn short_gaps_are_bridged_long_ones_are_not() {
        let short = series(&[(20, 0.5), (10, 1.5), (10, 0.5), (10, 1.5), (20, 0.5)]);
        let p = plan(&short, 1, &simple(12), 1);
        assert_eq!(p.actions, 2, "kept through a 10-minute gap");
        assert_eq!(p.replicas.iter().sum::<u32>(), 70 + 12 + 30);
        let long = series(&[(20, 0.5), (10, 1.5), (20, 0.5), (10, 1.5), (20, 0.5)]);
        let p = plan(&long, 1, &simple(12), 1);
        assert_eq!(
            p.actions, 4,
            "deleted and created again across a 20-minute gap"
        );
        assert_eq!(p.replicas.iter().sum::<u32>(), 80 + (12 + 10) * 2);
    }

    #[test]
    fn gaps_need_the_larger_neighbour() {
        let d = demand(vec![Some(0.5), None, None, Some(1.5), Some(0.5)]);
        assert_eq!(needs(&d, 1, &simple(12)), vec![1, 2, 2, 2, 1]);
    }

    proptest! {
        #[test]
        fn never_breaches_and_never_costs_more_than_peak_static(
            units in proptest::collection::vec(proptest::option::weighted(0.9, 0.0f64..3.2), 1..240),
            lead in 1u32..20,
        ) {
            let d = demand(units);
            let m = simple(lead);
            let initial = initial_replicas(&d, 1, &m);
            let (s, _) = run(&d, 1, &m, initial, false);
            prop_assert_eq!(s.breach_minutes, 0);
            let peak = needs(&d, 1, &m).into_iter().max().unwrap_or(1);
            prop_assert!(s.replica_hours <= peak as f64 * d.len() as f64 / 60.0 + 1e-9);
        }

        #[test]
        fn never_breaches_under_the_honest_model_whatever_its_seed(
            units in proptest::collection::vec(proptest::option::weighted(0.9, 0.0f64..3.2), 1..400),
            seed in 0u64..1000,
            skew in 0.0f64..0.3,
        ) {
            let mut m = FleetModel::default();
            m.lead.seed = seed;
            m.skew = skew;
            let d = demand(units);
            let initial = initial_replicas(&d, 1, &m);
            let (s, _) = run(&d, 1, &m, initial, false);
            prop_assert_eq!(s.breach_minutes, 0);
        }
    }
}
