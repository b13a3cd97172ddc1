//! What the tuning examples (tune_default, tune_predictive) share: the training split of
//! tests/data/traces, the trace names, the default policy as the base case, and the median.
//! Included with `#[path]`; not an example of its own.

use elasticrds::backtest::{load_policy, Case, Options};
use std::path::{Path, PathBuf};

/// Tuned on; the rest of tests/data/traces is held out.
pub const TRAINING: [&str; 5] = [
    "ec2_cpu_utilization_825cc2",
    "elb_request_count_8c0756",
    "rds_cpu_utilization_cc0c53",
    "rds_cpu_utilization_e47b3b",
    "ec2_cpu_utilization_5f5533",
];

/// tests/data/traces.
pub fn traces_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/traces")
}

/// The names (file stems) of the CSV traces in `dir`, sorted.
pub fn trace_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension()? == "csv").then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// policies/cpu-target.yaml as a backtest case.
pub fn default_case(opts: &Options) -> Case {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/cpu-target.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    load_policy(
        "cpu-target",
        "cpu-target.yaml",
        &text,
        None,
        opts.peak_replicas,
    )
    .expect("policy")
}

/// The upper median.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
