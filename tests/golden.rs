//! Golden files: the deterministic outputs of the built binary, compared byte for byte with the
//! committed files under `tests/golden/`, and the generated sections of README.md and docs/*.md
//! (issue 13, "Numbers that cannot drift"). This file owns running the commands and comparing;
//! `tests/golden/gen_docs.rs` owns turning the goldens and result files into markdown.
//!
//! - `tests/golden/backtest/<trace>.txt` / `.json`: `elasticrds backtest --policy
//!   policies/cpu-target.yaml --trace tests/data/traces/<trace>.csv` (every option at its
//!   default), text and `--output json`; `<trace>.all-policies.json`: every policy in
//!   `policies/` in one run; `demo_trace.*` (the embedded demo trace, every policy),
//!   `*.peak8-lead5m.json` (`--peak-replicas 8 --lead-time 5m`), `demo_trace.sweep.txt`
//!   (`--sweep`'s table) and `demo_trace.plot.svg` (`--plot`).
//! - `tests/golden/fleet/*`: `status` and `plan` of a fixed fleet on moto (cluster1 of
//!   `tests/golden/fleet/config.yaml`: the master, two of four replicas, one with drifted
//!   class, a foreign replica), `plan` at a fixed `--at` with recorded metrics.
//!
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the golden files;
//! `UPDATE_DOCS=1 cargo test --test golden` (or `scripts/gen-docs`) rewrites the generated
//! markdown sections. A change of a golden file is a change of behaviour: commit it only when it
//! is meant.

mod support;

#[path = "golden/gen_docs.rs"]
mod gen_docs;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{block_on, elasticrds, rds_client, repo_root, Moto};

/// Compares outputs with golden files, collecting every difference (or rewriting the files
/// under `UPDATE_GOLDEN=1`).
struct Goldens {
    update: bool,
    failures: Vec<String>,
}

impl Goldens {
    fn new() -> Goldens {
        Goldens {
            update: std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1"),
            failures: Vec::new(),
        }
    }

    /// Compare `actual` with `tests/golden/<rel>`.
    fn check(&mut self, rel: &str, actual: &str) {
        let path = golden_dir().join(rel);
        let expected = std::fs::read_to_string(&path).ok();
        if expected.as_deref() == Some(actual) {
            return;
        }
        if self.update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            eprintln!("rewrote {}", path.display());
            return;
        }
        self.failures.push(match expected {
            None => format!("tests/golden/{rel}: missing (actual output:\n{actual})"),
            Some(e) => {
                let (i, diff) = first_difference(&e, actual, ["golden", "output"]);
                format!("tests/golden/{rel}:{}:{diff}", i + 1)
            }
        });
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} golden file(s) differ from the output (if the change is meant: \
             UPDATE_GOLDEN=1 cargo test --test golden, and review the diff):\n\n{}",
            self.failures.len(),
            self.failures.join("\n\n")
        );
    }
}

fn golden_dir() -> PathBuf {
    repo_root().join("tests/golden")
}

/// The first line where two texts differ (0-based) and both versions of it, labelled.
fn first_difference(old: &str, new: &str, labels: [&str; 2]) -> (usize, String) {
    let (o, n): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    for i in 0..o.len().max(n.len()) {
        let (x, y) = (o.get(i), n.get(i));
        if x != y {
            let [lo, ln] = labels;
            let text = format!(
                "\n  {lo}: {}\n  {ln}: {}",
                x.copied().unwrap_or("<end>"),
                y.copied().unwrap_or("<end>")
            );
            return (i, text);
        }
    }
    (
        o.len(),
        " only the line endings or the final newline differ".into(),
    )
}

/// Run the binary; it must exit 0. Returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run elasticrds");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert!(
        out.status.success(),
        "{cmd:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `.csv` files of a directory, sorted by name.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

/// `elasticrds backtest` with paths relative to the repository root (they appear in the
/// output as file names).
fn backtest(policies: &[String], trace: &str, extra: &[&str]) -> String {
    let mut cmd = elasticrds(None);
    cmd.current_dir(repo_root())
        .arg("backtest")
        .arg("--policy")
        .args(policies)
        .args(["--trace", trace])
        .args(extra);
    run(&mut cmd)
}

/// Every policy file in `policies/`, as paths relative to the repository root.
fn all_policies() -> Vec<String> {
    files_with_ext(&repo_root().join("policies"), "yaml")
        .iter()
        .map(|p| format!("policies/{}", p.file_name().unwrap().to_string_lossy()))
        .collect()
}

#[test]
fn backtest_of_every_trace_matches_its_golden_file() {
    let root = repo_root();
    let traces = files_with_ext(&root.join("tests/data/traces"), "csv");
    assert!(traces.len() >= 5, "the shared traces are missing");
    let all = all_policies();
    let default = vec!["policies/cpu-target.yaml".to_string()];
    let mut g = Goldens::new();
    for t in &traces {
        let stem = t.file_stem().unwrap().to_string_lossy().into_owned();
        let rel = format!("tests/data/traces/{stem}.csv");
        g.check(
            &format!("backtest/{stem}.txt"),
            &backtest(&default, &rel, &[]),
        );
        g.check(
            &format!("backtest/{stem}.json"),
            &backtest(&default, &rel, &["--output", "json"]),
        );
        g.check(
            &format!("backtest/{stem}.all-policies.json"),
            &backtest(&all, &rel, &["--output", "json"]),
        );
    }
    g.finish();
}

/// The other outputs docs/backtest.md calls byte for byte the same across changes: the embedded
/// demo trace with every policy, another scaling and lead time, the `--sweep` table and the
/// `--plot` SVG (on the short demo trace, so that the suite stays quick), and the cost/breach
/// frontier (`--sweep target=...`) of `rds_cpu_utilization_cc0c53`, the default policy with and
/// without its forecast.
#[test]
fn backtest_options_sweep_and_plot_match_their_golden_files() {
    let all = all_policies();
    let demo = "src/backtest/demo_trace.csv";
    let e47 = "tests/data/traces/rds_cpu_utilization_e47b3b.csv";
    let scaled = ["--peak-replicas", "8", "--lead-time", "5m"];
    let mut g = Goldens::new();
    g.check("backtest/demo_trace.txt", &backtest(&all, demo, &[]));
    g.check(
        "backtest/demo_trace.json",
        &backtest(&all, demo, &["--output", "json"]),
    );
    for (name, trace) in [("demo_trace", demo), ("rds_cpu_utilization_e47b3b", e47)] {
        let json = [&scaled[..], &["--output", "json"]].concat();
        g.check(
            &format!("backtest/{name}.peak8-lead5m.json"),
            &backtest(&all, trace, &json),
        );
    }
    let default = ["policies/cpu-target.yaml".to_string()];
    g.check(
        "backtest/demo_trace.sweep.txt",
        &backtest(&default, demo, &["--sweep"]),
    );
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plot.svg");
    let plot = ["--plot", svg.to_str().unwrap()];
    backtest(&default, demo, &plot);
    let drawn = std::fs::read_to_string(&svg).expect("the plot was written");
    g.check("backtest/demo_trace.plot.svg", &drawn);
    // The cost/breach frontier docs/backtest.md shows, text and SVG.
    let cc0 = "tests/data/traces/rds_cpu_utilization_cc0c53.csv";
    let frontier = dir.path().join("frontier.svg");
    let sweep = [
        "--sweep",
        "target=55,60,66,70,72,80",
        "--plot",
        frontier.to_str().unwrap(),
    ];
    // The default policy and the same with its forecast (policies/predictive.yaml), so that
    // README's predictive section shows what the forecast buys at every target.
    let both = [
        "policies/cpu-target.yaml".to_string(),
        "policies/predictive.yaml".to_string(),
    ];
    g.check(
        "backtest/rds_cpu_utilization_cc0c53.frontier.txt",
        &backtest(&both, cc0, &sweep),
    );
    let drawn = std::fs::read_to_string(&frontier).expect("the frontier was written");
    g.check("backtest/rds_cpu_utilization_cc0c53.frontier.svg", &drawn);
    g.finish();
}

#[test]
fn generated_docs_sections_match_the_generator() {
    let update = std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1");
    let report = gen_docs::run(&repo_root(), update).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.stale.is_empty(),
        "{} generated section(s) of the docs differ from what scripts/gen-docs produces from \
         tests/golden/ and the committed result files; rewrite them with `scripts/gen-docs` \
         (or UPDATE_DOCS=1 cargo test --test golden generated_docs) and change the data or the \
         generator (tests/golden/gen_docs.rs), not the section:\n\n{}",
        report.stale.len(),
        report.stale.join("\n\n")
    );
    assert!(
        report.sections >= 7,
        "only {} generated sections found",
        report.sections
    );
}

/// cluster1 on moto: the master, replicas s01 and s02 (s02 of another class than configured)
/// and a replica of the master that is not in the config.
fn fixed_fleet(moto: &Moto) {
    let rds = rds_client(&moto.endpoint());
    block_on(async {
        support::create_db_instance(&rds, "cluster1m01", "mysql").await;
        for (id, class) in [
            ("cluster1s01", "db.t3.micro"),
            ("cluster1s02", "db.t3.small"),
            ("adhoc-reporting", "db.t3.micro"),
        ] {
            rds.create_db_instance_read_replica()
                .db_instance_identifier(id)
                .source_db_instance_identifier("cluster1m01")
                .db_instance_class(class)
                .send()
                .await
                .unwrap_or_else(|e| panic!("CreateDBInstanceReadReplica {id}: {e:?}"));
        }
    });
}

/// Tag cluster1's master on moto.
fn tag_master(moto: &Moto, key: &str, value: &str) {
    let rds = rds_client(&moto.endpoint());
    block_on(async {
        let d = rds
            .describe_db_instances()
            .db_instance_identifier("cluster1m01")
            .send()
            .await
            .expect("DescribeDBInstances cluster1m01");
        let arn = d.db_instances()[0].db_instance_arn().expect("arn");
        let tag = aws_sdk_rds::types::Tag::builder()
            .key(key)
            .value(value)
            .build();
        rds.add_tags_to_resource()
            .resource_name(arn)
            .tags(tag)
            .send()
            .await
            .expect("AddTagsToResource");
    });
}

/// A command of the binary against moto, cwd the repository root, config the fleet's.
fn fleet_command(moto: &Moto, args: &[&str]) -> String {
    let mut cmd = elasticrds(Some(&moto.endpoint()));
    cmd.current_dir(repo_root())
        .args(args)
        .args(["--config", "tests/golden/fleet/config.yaml"]);
    run(&mut cmd)
}

#[test]
fn status_and_plan_of_a_fixed_fleet_match_their_golden_files() {
    let moto = Moto::start();
    fixed_fleet(&moto);
    let mut g = Goldens::new();
    g.check(
        "fleet/status.txt",
        &fleet_command(&moto, &["status", "cluster1"]),
    );
    g.check(
        "fleet/status.json",
        &fleet_command(&moto, &["status", "cluster1", "--output", "json"]),
    );
    let at = ["--at", "2026-11-25T12:00:30Z"];
    let pol = ["--policies", "tests/golden/fleet/policies"];
    for (name, metrics) in [("hot", "metrics-hot.csv"), ("cold", "metrics-cold.csv")] {
        let m = format!("tests/golden/fleet/{metrics}");
        let base = [&["plan", "cluster1"][..], &pol, &at, &["--metrics", &m]].concat();
        g.check(
            &format!("fleet/plan-{name}.txt"),
            &fleet_command(&moto, &base),
        );
        let json = [&base[..], &["--output", "json"]].concat();
        g.check(
            &format!("fleet/plan-{name}.json"),
            &fleet_command(&moto, &json),
        );
    }
    let builtin = [
        "plan",
        "cluster1",
        "--policies",
        "tests/golden/fleet/no-policies",
        "--default-policy",
        "builtin",
        "--metrics",
        "tests/golden/fleet/metrics-hot.csv",
    ];
    g.check(
        "fleet/plan-builtin.txt",
        &fleet_command(&moto, &[&builtin[..], &at].concat()),
    );
    // The scale state read from the master's tags: a scale-out two minutes ago holds it.
    tag_master(&moto, "elasticrds:last-scale-out", "2026-11-25T11:58:30Z");
    let hot = "tests/golden/fleet/metrics-hot.csv";
    let held = [&["plan", "cluster1"][..], &pol, &at, &["--metrics", hot]].concat();
    g.check(
        "fleet/plan-hot-after-scale-out.txt",
        &fleet_command(&moto, &held),
    );
    g.finish();
}
