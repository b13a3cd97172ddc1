//! The oracle stays the floor under the fleet model: on every trace in tests/data/traces, with
//! every policy in policies/ and both baselines, no run without breach-minutes costs fewer
//! replica-hours than the oracle, and the oracle itself never breaches. Checked with the honest
//! model (two seeds and a wider skew) and the simple one. A run that breaches may be cheaper
//! than the oracle (docs/backtest.md says so); those are not compared.

use elasticrds::adapters::sim_model::FleetModel;
use elasticrds::backtest::score::RunKind;
use elasticrds::backtest::trace::Trace;
use elasticrds::backtest::{backtest, load_policy, Case, Options};
use std::path::{Path, PathBuf};

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .expect("directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn cases(peak: u32) -> Vec<Case> {
    files("policies", "yaml")
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("policy");
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            load_policy(&name, &p.display().to_string(), &text, None, peak).expect("parses")
        })
        .collect()
}

fn models() -> Vec<(&'static str, FleetModel)> {
    let mut seed2 = FleetModel::default();
    seed2.lead.seed = 2;
    let mut skewed = FleetModel {
        skew: 0.3,
        ..FleetModel::default()
    };
    skewed.lead.seed = 3;
    vec![
        ("honest", FleetModel::default()),
        ("honest seed 2", seed2),
        ("skew 0.3 seed 3", skewed),
        ("simple", FleetModel::simple(12)),
    ]
}

#[test]
fn no_run_without_breaches_costs_less_than_the_oracle() {
    let traces = files("tests/data/traces", "csv");
    assert!(traces.len() >= 5, "the vendored traces are there");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cases = cases(4);
    let mut compared = 0;
    for t in &traces {
        let trace = Trace::load(t).expect("every vendored trace parses");
        for (label, model) in models() {
            let opts = Options {
                model,
                ..Options::default()
            };
            let r = rt.block_on(backtest(&trace, &cases, &opts)).expect("runs");
            let oracle = r.oracle().expect("an oracle");
            assert_eq!(
                oracle.breach_minutes, 0,
                "{} ({label}): oracle breached",
                r.trace
            );
            for s in r.scores.iter().filter(|s| s.kind != RunKind::Oracle) {
                if s.breach_minutes == 0 {
                    compared += 1;
                    assert!(
                        s.replica_hours >= oracle.replica_hours - 1e-9,
                        "{} ({label}): {} costs {:.1} replica-hours without a breach, under the oracle's {:.1}",
                        r.trace,
                        s.name,
                        s.replica_hours,
                        oracle.replica_hours
                    );
                }
            }
        }
    }
    assert!(compared > 0, "some run had no breaches to compare");
}
