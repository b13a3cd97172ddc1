//! Parameter sweeps: variants of one policy (CPU target × scale-in cooldown) replayed on the
//! same trace in parallel threads, each on its own simulated world. `backtest --sweep`.

use super::replay::WorldSetup;
use super::run::run_policy;
use super::score::Score;
use super::trace::Trace;
use super::{oracle, Case, Options, FLOOR_REPLICAS};
use crate::core::policy::RuleKind;
use std::sync::Arc;

/// CPU targets (%) and scale-in cooldowns (minutes) of the 100-variant grid.
pub const TARGETS: [f64; 10] = [45.0, 50.0, 55.0, 60.0, 65.0, 70.0, 72.5, 75.0, 77.5, 80.0];
pub const IN_COOLDOWNS_MIN: [u64; 10] = [0, 2, 5, 10, 15, 20, 30, 45, 60, 90];

/// The grid of variants of `base` (its first target-tracking rule's target and its scale-in
/// cooldown), at most `n` of them.
pub fn variants(base: &Case, n: usize) -> Result<Vec<Case>, String> {
    let rule = base
        .case
        .policy
        .rules
        .iter()
        .position(|r| matches!(r.kind, RuleKind::TargetTracking { .. }))
        .ok_or_else(|| {
            format!(
                "{}: --sweep varies the target of a target-tracking rule, and this policy has none",
                base.case.name
            )
        })?;
    let mut out = Vec::new();
    for t in TARGETS {
        for c in IN_COOLDOWNS_MIN {
            if out.len() >= n {
                return Ok(out);
            }
            let mut v = base.clone();
            if let RuleKind::TargetTracking { target, .. } = &mut v.case.policy.rules[rule].kind {
                *target = t;
            }
            v.case.policy.scale_in.cooldown_secs = c * 60;
            v.case.name = format!("{} target={t} in-cooldown={c}m", base.case.name);
            out.push(v);
        }
    }
    Ok(out)
}

/// Replay every case on `threads` threads (each with its own single-threaded runtime); scores
/// come back in the order of `cases`.
pub fn run_all(
    trace: &Trace,
    cases: &[Case],
    opts: &Options,
    threads: usize,
) -> Result<Vec<Score>, String> {
    let demand = Arc::new(opts.demand(trace));
    let initial = oracle::initial_replicas(&demand, FLOOR_REPLICAS, &opts.model) as usize;
    let threads = threads.clamp(1, cases.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Score, String>>>> =
        cases.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .map_err(|e| format!("cannot start a runtime: {e}"));
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(c) = cases.get(i) else { break };
                    let r = match &rt {
                        Ok(rt) => {
                            WorldSetup::new(c.spec.clone(), demand.clone(), &opts.model, initial)
                                .and_then(|setup| {
                                    rt.block_on(run_policy(&setup, &c.case, false))
                                        .map(|(s, _)| s)
                                })
                        }
                        Err(e) => Err(e.clone()),
                    };
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err("a sweep worker stopped early".into()))
        })
        .collect()
}
