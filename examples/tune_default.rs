//! How the default policy (policies/cpu-target.yaml) was tuned: a grid of its knobs replayed on
//! the TRAINING traces under the default (honest) fleet model, each variant scored against the
//! oracle and the AWS-faithful Aurora-style baseline of the same trace; then the chosen
//! variant, and every other variant's rank, on the HELD-OUT traces, reported separately.
//!
//!     cargo run --release --example tune_default > benches/results/tuning.txt
//!
//! A variant "meets" a trace when its replica-hours and breach-minutes are both no worse than
//! the Aurora-style baseline's (the held-to baseline: the stronger of its variants) and its
//! cost is within 1.15 × the oracle's. The grid is ranked by traces met, then by the median
//! cost ratio, then by total breach-minutes. Deterministic.

use elasticrds::backtest::score::{RunKind, Score};
use elasticrds::backtest::trace::Trace;
use elasticrds::backtest::{backtest, sweep, Case, Options};
use elasticrds::core::policy::{Aggregation, RuleKind};

#[path = "common/tuning.rs"]
mod tuning;
/// Traces tuned on; the rest of tests/data/traces is held out (the three added with the
/// realistic backtest were never looked at while tuning).
use tuning::{median, TRAINING};

const TARGETS: [f64; 4] = [60.0, 63.0, 66.0, 70.0];
const TOLERANCES: [f64; 2] = [0.10, 0.15];
const IN_STABILIZATION_MIN: [u64; 3] = [10, 20, 30];
const OUT_COOLDOWN_MIN: [u64; 2] = [2, 5];
const AGGREGATIONS: [Aggregation; 2] = [Aggregation::Average, Aggregation::Max];
const WARMUP_MIN: [u64; 2] = [5, 10];

/// One point of the grid applied to a copy of `base`.
fn variant(
    base: &Case,
    t: f64,
    tol: f64,
    stab: u64,
    cool: u64,
    agg: Aggregation,
    warm: u64,
) -> Case {
    let mut v = base.clone();
    let p = &mut v.case.policy;
    if let Some(rule) = p.rules.first_mut() {
        rule.aggregation = agg;
        if let RuleKind::TargetTracking { target, tolerance } = &mut rule.kind {
            *target = t;
            *tolerance = tol;
        }
    }
    p.scale_in.stabilization_secs = stab * 60;
    p.scale_out.cooldown_secs = cool * 60;
    p.warmup.duration_secs = warm * 60;
    v.case.name = format!(
        "target={t} tol={tol} in-stab={stab}m out-cool={cool}m agg={} warmup={warm}m",
        agg.as_str()
    );
    v
}

fn variants(base: &Case) -> Vec<Case> {
    let mut out = Vec::new();
    for t in TARGETS {
        for tol in TOLERANCES {
            for s in IN_STABILIZATION_MIN {
                for c in OUT_COOLDOWN_MIN {
                    for a in AGGREGATIONS {
                        for w in WARMUP_MIN {
                            out.push(variant(base, t, tol, s, c, a, w));
                        }
                    }
                }
            }
        }
    }
    out
}

/// Per trace: the oracle's and the held-to baseline's scores.
struct Anchors {
    oracle: Score,
    baseline: Score,
}

fn anchors(report: &elasticrds::backtest::Report) -> Anchors {
    let oracle = report.oracle().expect("oracle").clone();
    // The strongest Aurora-style run: fewest breach-minutes, then cheapest.
    let baseline = report
        .scores
        .iter()
        .filter(|s| s.name.starts_with("aurora"))
        .min_by(|a, b| {
            (a.breach_minutes, a.replica_hours)
                .partial_cmp(&(b.breach_minutes, b.replica_hours))
                .unwrap()
        })
        .or_else(|| {
            report
                .scores
                .iter()
                .find(|s| s.kind == RunKind::TargetTracking)
        })
        .expect("a target-tracking baseline")
        .clone();
    Anchors { oracle, baseline }
}

fn meets(s: &Score, a: &Anchors) -> bool {
    s.replica_hours <= a.baseline.replica_hours
        && s.breach_minutes <= a.baseline.breach_minutes
        && s.replica_hours <= 1.15 * a.oracle.replica_hours
}

struct Row {
    name: String,
    met: usize,
    median_ratio: f64,
    breaches: u64,
}

fn main() {
    let dir = tuning::traces_dir();
    let opts = Options::default();
    let base = tuning::default_case(&opts);
    let grid = variants(&base);
    let names = tuning::trace_names(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Per trace: anchors and every variant's score.
    let mut per_trace = Vec::new();
    for n in &names {
        let trace = Trace::load(&dir.join(format!("{n}.csv"))).expect("trace");
        let report = rt
            .block_on(backtest(&trace, std::slice::from_ref(&base), &opts))
            .expect("backtest");
        let scores = sweep::run_all(&trace, &grid, &opts, threads).expect("sweep");
        per_trace.push((n.clone(), anchors(&report), scores));
    }
    let rows = |training: bool| -> Vec<Row> {
        let chosen: Vec<_> = per_trace
            .iter()
            .filter(|(n, _, _)| TRAINING.contains(&n.as_str()) == training)
            .collect();
        if chosen.is_empty() {
            return Vec::new();
        }
        let mut rows: Vec<Row> = (0..grid.len())
            .map(|i| Row {
                name: grid[i].case.name.clone(),
                met: chosen.iter().filter(|(_, a, s)| meets(&s[i], a)).count(),
                median_ratio: median(
                    chosen
                        .iter()
                        .map(|(_, a, s)| s[i].replica_hours / a.oracle.replica_hours)
                        .collect(),
                ),
                breaches: chosen.iter().map(|(_, _, s)| s[i].breach_minutes).sum(),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.met
                .cmp(&a.met)
                .then(a.median_ratio.partial_cmp(&b.median_ratio).unwrap())
                .then(a.breaches.cmp(&b.breaches))
        });
        rows
    };
    let print = |title: &str, rows: &[Row], n: usize| {
        println!("{title}");
        println!(
            "{:<48} {:>5} {:>13} {:>9}",
            "variant", "met", "median x orc", "breaches"
        );
        for r in rows.iter().take(n) {
            println!(
                "{:<72} {:>5} {:>13.3} {:>9}",
                r.name, r.met, r.median_ratio, r.breaches
            );
        }
        println!();
    };
    let train = rows(true);
    print(
        &format!(
            "training traces ({}): the 15 best of {} variants",
            TRAINING.len(),
            grid.len()
        ),
        &train,
        15,
    );
    // TUNE_ALL=1: every variant, with its held-out figures beside its training ones.
    if std::env::var_os("TUNE_ALL").is_some() {
        let held = rows(false);
        for r in &train {
            if let Some(h) = held.iter().find(|h| h.name == r.name) {
                println!(
                    "{:<72} train {} {:.3} {:>5} | held {} {:.3} {:>5}",
                    r.name, r.met, r.median_ratio, r.breaches, h.met, h.median_ratio, h.breaches
                );
            }
        }
        println!();
    }
    let best = &train[0].name;
    for (n, a, s) in &per_trace {
        let i = grid.iter().position(|c| &c.case.name == best).unwrap();
        let tag = if TRAINING.contains(&n.as_str()) {
            "training"
        } else {
            "held out"
        };
        println!(
            "{n:<30} {tag:<9} best: {:.1} rh ({:.3}x) {} bm | {}: {:.1} rh {} bm | oracle {:.1} rh",
            s[i].replica_hours,
            s[i].replica_hours / a.oracle.replica_hours,
            s[i].breach_minutes,
            a.baseline.name,
            a.baseline.replica_hours,
            a.baseline.breach_minutes,
            a.oracle.replica_hours
        );
    }
    println!();
    let held = rows(false);
    if held.is_empty() {
        return;
    }
    let rank = held.iter().position(|r| &r.name == best).unwrap_or(0);
    print(
        &format!(
            "held-out traces ({}): the best training variant ranks {} of {} here",
            names.len() - TRAINING.len(),
            rank + 1,
            held.len()
        ),
        &held[rank..=rank],
        1,
    );
}
