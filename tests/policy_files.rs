//! The shipped policies validate (library and `elasticrds validate`), the default file is the
//! built-in default, and each kind of broken policy gets its own located error.

mod support;

use elasticrds::core::config::Config;
use elasticrds::core::policy::Policy;
use std::path::PathBuf;
use support::{elasticrds, repo_root};

fn config_path() -> PathBuf {
    repo_root().join("tests/policy_config.yaml")
}

fn config() -> Config {
    let p = config_path();
    Config::parse(
        &p.display().to_string(),
        &std::fs::read_to_string(&p).unwrap(),
    )
    .unwrap()
}

fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_shipped_policy_validates() {
    let files = shipped();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "cpu-target.yaml",
        "connections-and-lag.yaml",
        "business-hours-schedule.yaml",
        "predictive.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from policies/: {names:?}"
        );
    }
    let cfg = config();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        if let Err(e) = Policy::parse(&f.display().to_string(), &text, &cfg) {
            panic!("{e}");
        }
    }
    // And through the binary, with the default file list (policies/*.yaml).
    let out = elasticrds(None)
        .current_dir(repo_root())
        .args(["validate", "--config"])
        .arg(config_path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches(": ok (cluster").count(),
        files.len(),
        "{stdout}"
    );
}

#[test]
fn cpu_target_is_the_built_in_default() {
    let cfg = config();
    let f = repo_root().join("policies/cpu-target.yaml");
    let p = Policy::parse(
        "cpu-target.yaml",
        &std::fs::read_to_string(f).unwrap(),
        &cfg,
    )
    .unwrap();
    assert_eq!(p, Policy::default_for(cfg.cluster(&p.cluster).unwrap()));
}

#[test]
fn business_hours_is_the_old_crontab() {
    let cfg = config();
    let f = repo_root().join("policies/business-hours-schedule.yaml");
    let p = Policy::parse("b.yaml", &std::fs::read_to_string(f).unwrap(), &cfg).unwrap();
    let spec = cfg.cluster(&p.cluster).unwrap();
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // Wednesday 2026-11-25, 10:00 in Tokyo: min 3 max 4.
    let b = p.bounds_at(spec, at("2026-11-25T10:00:00+09:00"));
    assert_eq!((b.min, b.max), (3, 4));
    assert_eq!(b.schedules, vec!["business-hours".to_string()]);
    // 17:00 in Tokyo: back to 1..2.
    let b = p.bounds_at(spec, at("2026-11-25T17:00:00+09:00"));
    assert_eq!((b.min, b.max), (1, 2));
    // Saturday noon: 1..2.
    let b = p.bounds_at(spec, at("2026-11-28T12:00:00+09:00"));
    assert_eq!((b.min, b.max), (1, 2));
    // Month end, Monday 2026-11-30 at 21:00 Tokyo: both windows overlap? business hours ended
    // at 17:00, month-end runs 20:00–02:00: min 4 max 4.
    let b = p.bounds_at(spec, at("2026-11-30T21:00:00+09:00"));
    assert_eq!((b.min, b.max), (4, 4));
}

/// (name, policy text, field, line, column, message fragment)
const BROKEN: &[(&str, &str, &str, usize, usize, &str)] = &[
    ("unknown key", "cluster: cluster1\nmin_replica: 1\n", "min_replica", 2, 1, "unknown field `min_replica`"),
    ("wrong type", "cluster: cluster1\nmax_replicas: many\n", "max_replicas", 2, 15, "invalid type"),
    ("min above max", "cluster: cluster1\nmin_replicas: 3\nmax_replicas: 2\n", "min_replicas", 2, 1, "greater than max_replicas 2"),
    ("max beyond the list", "cluster: cluster1\nmax_replicas: 5\n", "max_replicas", 2, 1, "beyond the cluster's replica list (4 configured"),
    ("unknown metric", "cluster: cluster1\nrules:\n  - metric: memory\n    target: 50\n", "rules[0].metric", 3, 5, "unknown metric \"memory\""),
    ("bad cron", "cluster: cluster1\nschedules:\n  - cron: '0 8 * *'\n    duration: 1h\n    min_replicas: 2\n", "schedules[0].cron", 3, 5, "not a valid cron expression"),
    ("unknown timezone", "cluster: cluster1\nschedules:\n  - cron: '0 8 * * *'\n    timezone: Asia/Atlantis\n    duration: 1h\n    min_replicas: 2\n", "schedules[0].timezone", 4, 5, "not an IANA timezone"),
    ("unknown cluster", "cluster: cluster9\n", "cluster", 1, 1, "unknown cluster \"cluster9\""),
    ("bad duration", "cluster: cluster1\nscale_in:\n  cooldown: soon\n", "scale_in.cooldown", 3, 13, "not a duration"),
    ("rule without target or threshold", "cluster: cluster1\nrules:\n  - metric: cpu\n", "rules[0]", 3, 3, "needs either target"),
    ("bad statistic", "cluster: cluster1\nrules:\n  - metric: cpu\n    statistic: Median\n    target: 50\n", "rules[0].statistic", 4, 5, "not one of Average, Maximum"),
    ("bad missing-data mode", "cluster: cluster1\nmissing_data:\n  scale_out: maybe\n", "missing_data.scale_out", 3, 3, "not one of hold, act"),
    ("schedule max beyond the list", "cluster: cluster1\nschedules:\n  - cron: '0 8 * * *'\n    duration: 1h\n    max_replicas: 7\n", "schedules[0].max_replicas", 5, 5, "beyond the cluster's replica list"),
    ("key given twice", "cluster: cluster1\nmin_replicas: 1\nmin_replicas: 2\n", "min_replicas", 3, 1, "duplicate field `min_replicas`"),
    ("rule key given twice", "cluster: cluster1\nrules:\n  - metric: cpu\n    target: 50\n    target: 60\n", "rules[0].target", 5, 5, "duplicate field `target`"),
];

#[test]
fn broken_policies_each_get_a_distinct_located_error() {
    let cfg = config();
    let mut seen = std::collections::BTreeSet::new();
    for (name, text, field, line, col, msg) in BROKEN {
        let file = format!("{}.yaml", name.replace(' ', "-"));
        let errs = match Policy::parse(&file, text, &cfg) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.0,
        };
        assert_eq!(errs.len(), 1, "{name}: {errs:?}");
        let e = &errs[0];
        assert_eq!(
            (e.field.as_str(), e.line, e.column),
            (*field, Some(*line), Some(*col)),
            "{name}: {e}"
        );
        assert!(e.message.contains(msg), "{name}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{file}:{line}:{col}: {field}: ")),
            "{name}: {e}"
        );
        assert!(
            seen.insert(e.message.clone()),
            "{name}: message not distinct: {e}"
        );
    }
}

#[test]
fn json_policies_are_located_by_field_path_not_by_the_first_matching_key() {
    let text = "{\n  \"cluster\": \"cluster1\", // the old tool's comments are fine\n  \"rules\": [{\"metric\": \"cpu\", \"target\": 50},\n            {\"metric\": \"memory\", \"target\": 50}]\n}\n";
    let errs = Policy::parse("p.json", text, &config()).unwrap_err().0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .to_string()
            .starts_with("p.json:4:14: rules[1].metric: unknown metric \"memory\""),
        "{}",
        errs[0]
    );
}

#[test]
fn several_errors_in_one_file_are_all_reported() {
    let text = "cluster: cluster1\nmin_replicas: 3\nmax_replicas: 9\nrules:\n  - metric: memory\n    target: 50\nschedules:\n  - cron: nope\n    timezone: Nowhere/Land\n    duration: 1h\n    min_replicas: 1\n";
    let errs = Policy::parse("p.yaml", text, &config()).unwrap_err().0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "max_replicas",
            "rules[0].metric",
            "schedules[0].cron",
            "schedules[0].timezone"
        ],
        "{errs:?}"
    );
}

#[test]
fn validate_cli_reports_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![];
    for (name, text, ..) in BROKEN {
        let f = dir.path().join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(&f, text).unwrap();
        files.push(f);
    }
    let out = elasticrds(None)
        .arg("validate")
        .args(&files)
        .arg("--config")
        .arg(config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for ((_, _, field, line, col, _), f) in BROKEN.iter().zip(&files) {
        let want = format!("{}:{line}:{col}: {field}: ", f.display());
        assert!(stderr.contains(&want), "missing {want} in:\n{stderr}");
    }
    // JSON: one object per error, same locations.
    let out = elasticrds(None)
        .arg("validate")
        .args(&files)
        .args(["--output", "json", "--config"])
        .arg(config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["errors"].as_array().unwrap().len(), BROKEN.len());
    assert_eq!(v["errors"][4]["field"], "rules[0].metric");
    assert_eq!(v["errors"][4]["line"], 3);
}

#[test]
fn two_policies_for_one_cluster_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["a.yaml", "b.yaml"] {
        std::fs::write(dir.path().join(n), "cluster: cluster1\n").unwrap();
    }
    let out = elasticrds(None)
        .arg("validate")
        .arg(dir.path().join("a.yaml"))
        .arg(dir.path().join("b.yaml"))
        .arg("--config")
        .arg(config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("b.yaml:1:1: cluster: cluster \"cluster1\" already has a policy"),
        "{stderr}"
    );
}

mod never_panics {
    use super::*;
    use elasticrds::adapters::recorded::RecordedMetrics;
    use proptest::prelude::*;

    fn shipped_texts() -> Vec<String> {
        shipped()
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any text, and any shipped policy with lines dropped, duplicated or cut: parse
        /// returns a policy or located errors, never panics.
        #[test]
        fn policy_parse_never_panics(
            junk in "\\PC{0,200}",
            which in 0usize..3, cut in 0usize..4000, drop in 0usize..60, dup in 0usize..60,
        ) {
            let cfg = config();
            let _ = Policy::parse("junk.yaml", &junk, &cfg);
            let texts = shipped_texts();
            let t = &texts[which % texts.len()];
            let mut lines: Vec<&str> = t.lines().collect();
            if drop < lines.len() { lines.remove(drop); }
            if dup < lines.len() { let l = lines[dup]; lines.insert(dup, l); }
            let text = lines.join("\n");
            let cut_at = (0..=cut.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            if let Err(e) = Policy::parse("m.yaml", &text[..cut_at], &cfg) {
                prop_assert!(!e.0.is_empty());
            }
        }

        #[test]
        fn recorded_parse_never_panics(junk in "\\PC{0,300}", rows in proptest::collection::vec(
            ("[0-9T:Z-]{0,25}", "[a-z0-9-]{0,12}", "cpu|connections|replica_lag|x", "Average|Maximum|y", "[0-9.e-]{0,6}"), 0..6)) {
            let _ = RecordedMetrics::parse("j.csv", &junk);
            let _ = RecordedMetrics::parse("j.json", &junk);
            let mut csv = String::from("timestamp,instance,metric,statistic,value\n");
            for (a, b, c, d, e) in rows {
                csv.push_str(&format!("{a},{b},{c},{d},{e}\n"));
            }
            let _ = RecordedMetrics::parse("r.csv", &csv);
        }
    }
}

/// `--default-policy FILE`: a policy that names no cluster (`cluster: "*"`), validated for the
/// cluster it is applied to; one naming a cluster is refused with its position.
#[test]
fn a_default_policy_names_no_cluster_and_is_checked_per_cluster() {
    let config = config();
    let text = "cluster: \"*\"\nmax_replicas: 2\nrules:\n  - metric: cpu\n    target: 50\n";
    let name = config.clusters.keys().next().unwrap().clone();
    let p = Policy::parse_default("d.yaml", text, &config, &name).expect("a default policy");
    assert_eq!(p.cluster, name);
    assert_eq!(p.max_replicas, 2);
    let named = format!("cluster: {name}\nrules:\n  - metric: cpu\n    target: 50\n");
    let e = Policy::parse_default("d.yaml", &named, &config, &name).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("d.yaml:1:") && msg.contains("cluster") && msg.contains("\"*\""),
        "{msg}"
    );
    // Checked against the cluster's list like any policy.
    let big = "cluster: \"*\"\nmax_replicas: 99\n";
    let e = Policy::parse_default("d.yaml", big, &config, &name).unwrap_err();
    assert!(e.to_string().contains("max_replicas"), "{e}");
}

/// `validate --default-policy FILE` checks the default policy against every cluster of the
/// config (each problem once); the same file given as a policy file is refused, saying where
/// it belongs.
#[test]
fn validate_checks_a_default_policy_against_every_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("default.yaml");
    std::fs::write(
        &good,
        "cluster: \"*\"\nmax_replicas: 2\nrules:\n  - metric: cpu\n    target: 50\n",
    )
    .unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        elasticrds(None)
            .arg("--config")
            .arg(config_path())
            .arg("validate")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--default-policy".as_ref(), good.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let n = config().clusters.len();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "{}: ok (default policy, checked against {n} cluster(s))",
            good.display()
        )),
        "{stdout}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "cluster: \"*\"\nmax_replicas: 99\n").unwrap();
    let out = run(&["--default-policy".as_ref(), bad.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:2:", bad.display())) && stderr.contains("max_replicas"),
        "{stderr}"
    );
    let out = run(&[good.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("marks a default policy") && stderr.contains("--default-policy FILE"),
        "{stderr}"
    );
}

/// At the repository root, with no option at all, `validate` reads the shipped example config
/// (elasticrds.yaml) and the shipped policies, and they agree.
#[test]
fn validate_at_the_repository_root_passes() {
    let out = elasticrds(None)
        .current_dir(repo_root())
        .env_remove("ELASTICRDS_CONFIG")
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches(": ok (cluster").count(),
        shipped().len(),
        "{stdout}"
    );
}
