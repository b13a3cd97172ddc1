//! Bad input, through the built binary: a table of broken cluster configs and scaling policies
//! (syntax, types, ranges, unknown keys, cross-file errors, huge files, binary junk, deep
//! nesting). Each must end with exit code 2, a message on stderr that names the file (and, where
//! the parser can know it, `file:line:column` and the field), no panic, and no AWS call (the
//! SDK endpoints point at a tripwire listener that counts connections).
//!
//! Also: recorded-metrics files and backtest traces with junk rows, gaps, duplicate and unordered
//! timestamps, checked against the rules documented in docs/reliability.md.

mod support;

use std::path::Path;
use std::process::Output;
use support::Tripwire;

const GOOD_CONFIG: &str = r#"{
    "cluster1": {                                    //cluster name(only used in the script)
        "master_node": {
            "identifier": "qiitabase201305111613",   //name of db snapshot
            "instance_id": "cluster1m01",
            "instance_class": "db.t1.micro",
            "multi_az": true,
            "db_subnet_group_name" : "qiita"         //(optional) if you'd like to create in VPC
        },
        "replica_nodes": [
            { "id": "cluster1s01", "instance_class": "db.t1.micro" },
            { "id": "cluster1s02", "instance_class": "db.t1.micro" }
        ]
    }
}
"#;

const GOOD_YAML: &str = "cluster1:\n  master_node:\n    identifier: snap1\n    instance_id: cluster1m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - id: cluster1s01\n      instance_class: db.t3.micro\n    - id: cluster1s02\n      instance_class: db.t3.micro\n";

const GOOD_POLICY: &str = "cluster: cluster1\nmin_replicas: 1\nmax_replicas: 2\nrules:\n  - metric: cpu\n    target: 60\nscale_out:\n  cooldown: 5m\nscale_in:\n  cooldown: 15m\n";

/// Where a case's error must be located.
#[derive(Clone, Copy, Debug)]
enum Loc {
    /// `file:line:column:`
    LineCol,
    /// The file is named (whole-file problems: size, encoding, emptiness).
    File,
}

struct Case {
    name: &'static str,
    file: &'static str,
    content: Vec<u8>,
    loc: Loc,
    /// Lower-case words of which at least one must appear in stderr (the field or the problem).
    any_of: &'static [&'static str],
}

fn case(
    name: &'static str,
    file: &'static str,
    content: impl Into<Vec<u8>>,
    loc: Loc,
    any_of: &'static [&'static str],
) -> Case {
    Case {
        name,
        file,
        content: content.into(),
        loc,
        any_of,
    }
}

fn replace(base: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(base.contains(from), "fixture lacks {from:?}");
    base.replacen(from, to, 1).into_bytes()
}

/// Pseudo-random junk (deterministic xorshift), never valid UTF-8 as a whole.
fn junk(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    v[0] = 0xff; // never a valid UTF-8 lead byte
    v
}

fn config_cases() -> Vec<Case> {
    use Loc::*;
    let g = GOOD_CONFIG;
    let y = GOOD_YAML;
    let huge = {
        let mut s = String::from("# padding\n");
        while s.len() < 5 * 1024 * 1024 {
            s.push_str("# ............................................................\n");
        }
        s.push_str(y);
        s
    };
    let alias_bomb = {
        let mut s = String::from("a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n");
        for (i, c) in "bcdefghi".chars().enumerate() {
            let prev = (b'a' + i as u8) as char;
            s.push_str(&format!("{c}: &{c} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        }
        s
    };
    // One anchored string of 64 KiB repeated 300 times: a 20 KB file, 19 MiB once expanded.
    let scalar_bomb = format!(
        "{y}  replica_template:\n    fallback_classes: [&s \"{}\"{}]\n",
        "x".repeat(64 * 1024),
        ", *s".repeat(300)
    );
    // 5000 replicas with bad ids: the first problems are reported, the rest counted (each one
    // reported would be located by a scan of the document).
    let many_bad = {
        let mut s = String::from("cluster1:\n  master_node:\n    identifier: snap1\n    instance_id: cluster1m01\n    instance_class: db.t3.micro\n  replica_nodes:\n");
        for i in 0..5000 {
            s.push_str(&format!(
                "    - {{id: 1r{i}, instance_class: db.t3.micro}}\n"
            ));
        }
        s
    };
    vec![
        case("empty json", "c.json", "", File, &["document is empty"]),
        case("blank json", "c.json", "\n \n", File, &["document is empty"]),
        case("empty yaml", "c.yaml", "", File, &["empty"]),
        case("only a comment", "c.json", "// nothing here\n", File, &["document is empty"]),
        case("missing closing brace", "c.json", g.trim_end().trim_end_matches('}'), LineCol, &["eof"]),
        case("trailing comma", "c.json", replace(g, "\"db.t1.micro\" }\n        ]", "\"db.t1.micro\" },\n        ]"), LineCol, &["trailing comma", "expected"]),
        case("unterminated string", "c.json", replace(g, "\"cluster1m01\",", "\"cluster1m01,"), LineCol, &["control character", "eof", "expected"]),
        case("unclosed block comment", "c.json", format!("/* {g}"), LineCol, &["eof"]),
        case("garbage after document", "c.json", format!("{g} extra"), LineCol, &["trailing characters"]),
        case("multi_az is a string", "c.json", replace(g, "\"multi_az\": true", "\"multi_az\": \"yes\""), LineCol, &["multi_az"]),
        case("replica_nodes is an object", "c.json", replace(g, "\"replica_nodes\": [", "\"replica_nodes\": {\"a\": 1}, \"x\": ["), LineCol, &["replica_nodes"]),
        case("instance_class is a number", "c.json", replace(g, "\"instance_class\": \"db.t1.micro\",", "\"instance_class\": 42,"), LineCol, &["instance_class"]),
        case("cluster is a list", "c.yaml", "cluster1: [1, 2]\n", LineCol, &["expected a cluster (a mapping"]),
        case("top level is a list", "c.yaml", "- a\n- b\n", LineCol, &["expected a map", "invalid type"]),
        case("top level is a scalar", "c.yaml", "hello\n", LineCol, &["invalid type"]),
        case("unknown key in master", "c.json", replace(g, "\"multi_az\"", "\"multi_azz\""), LineCol, &["multi_azz"]),
        case("unknown key in cluster", "c.yaml", format!("{y}  replicas_max: 3\n"), LineCol, &["replicas_max"]),
        case("unknown key in replica", "c.yaml", replace(y, "      instance_class: db.t3.micro\n    - id: cluster1s02", "      instance_class: db.t3.micro\n      zone: a\n    - id: cluster1s02"), LineCol, &["zone"]),
        case("missing master_node", "c.yaml", "cluster1:\n  replica_nodes: []\n", LineCol, &["master_node"]),
        case("missing instance_id", "c.yaml", replace(y, "    instance_id: cluster1m01\n", ""), LineCol, &["instance_id"]),
        case("id with double hyphen", "c.json", replace(g, "cluster1s02", "bad--id"), LineCol, &["replica_nodes[1].id"]),
        case("id starts with a digit", "c.json", replace(g, "cluster1s01", "1cluster"), LineCol, &["replica_nodes[0].id"]),
        case("id too long", "c.yaml", replace(y, "cluster1s01", &"a".repeat(64)), LineCol, &["longer than 63"]),
        // Never echoed whole (the judge refuses a stderr over 20,000 bytes).
        case("id of 100,000 characters", "c.yaml", replace(y, "cluster1s01", &"a".repeat(100_000)), LineCol, &["longer than 63 characters (100000)"]),
        case("unknown key of 100,000 characters", "c.json", replace(g, "{ \"id\": \"cluster1s02\",", &format!("{{ \"{}\": 1, \"id\": \"cluster1s02\",", "k".repeat(100_000))), LineCol, &["more characters"]),
        case("id with underscore", "c.yaml", replace(y, "cluster1s02", "cluster1_s02"), LineCol, &["replica_nodes[1].id"]),
        case("id with trailing hyphen", "c.yaml", replace(y, "cluster1m01", "cluster1m01-"), LineCol, &["master_node.instance_id"]),
        case("empty id", "c.json", replace(g, "\"cluster1s01\"", "\"\""), LineCol, &["empty"]),
        case("id twice in a cluster", "c.json", replace(g, "cluster1s02", "cluster1s01"), LineCol, &["used twice"]),
        case("id twice across clusters", "c.yaml", format!("{y}cluster2:\n  master_node:\n    identifier: snap2\n    instance_id: cluster2m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - id: cluster1s01\n      instance_class: db.t3.micro\n"), LineCol, &["used twice"]),
        case("bad instance class", "c.yaml", replace(y, "instance_class: db.t3.micro\n  replica", "instance_class: t3.micro\n  replica"), LineCol, &["db.<family>.<size>"]),
        case("instance class with four parts", "c.yaml", replace(y, "instance_class: db.t3.micro\n  replica", "instance_class: db.x.y.z\n  replica"), LineCol, &["db.<family>.<size>"]),
        case("instance class in upper case", "c.json", replace(g, "\"db.t1.micro\",", "\"db.T1.micro\","), LineCol, &["db.<family>.<size>"]),
        case("instance class of 5000 characters", "c.yaml", replace(y, "instance_class: db.t3.micro\n  replica", &format!("instance_class: db.r6g.{}\n  replica", "x".repeat(5000))), LineCol, &["limit is 64"]),
        case("bad snapshot identifier", "c.yaml", replace(y, "identifier: snap1", "identifier: \"snap shot\""), LineCol, &["snapshot"]),
        case("no cluster at all", "c.json", "{}", File, &["no cluster"]),
        case("haproxy duration", "c.yaml", format!("{y}  haproxy:\n    socket: /tmp/h.sock\n    backend: replicas\n    drain_timeout: soon\n"), LineCol, &["drain_timeout"]),
        case("haproxy drain longer than a day", "c.yaml", format!("{y}  haproxy:\n    socket: /tmp/h.sock\n    backend: replicas\n    drain_timeout: 2d\n"), LineCol, &["drain_timeout", "longer than a day"]),
        case("notifications drain longer than an hour", "c.yaml", format!("{y}notifications:\n  drain_timeout: 3h\n  sinks:\n    - {{name: x, webhook: {{url: 'https://h.example.com/'}}}}\n"), LineCol, &["notifications.drain_timeout", "longer than an hour"]),
        case("haproxy on_unreachable", "c.yaml", format!("{y}  haproxy:\n    socket: /tmp/h.sock\n    backend: replicas\n    on_unreachable: maybe\n"), LineCol, &["on_unreachable"]),
        case("yaml tab indentation", "c.yaml", "cluster1:\n\tmaster_node: {}\n", LineCol, &["tab", "found character"]),
        case("yaml unclosed flow", "c.yaml", "cluster1: {master_node: [\n", LineCol, &["end of stream", "did not find", "invalid type"]),
        case("yaml duplicate cluster", "c.yaml", format!("{y}{}", y.replace("cluster1m01", "cluster1m02").replace("cluster1s0", "cluster1t0")), LineCol, &["duplicate"]),
        case("json duplicate cluster", "c.json", "{\"cluster1\": {\"master_node\": {\"identifier\": \"s\", \"instance_id\": \"cm01\", \"instance_class\": \"db.t3.micro\"}},\n \"cluster1\": {\"master_node\": {\"identifier\": \"s\", \"instance_id\": \"cm02\", \"instance_class\": \"db.t3.micro\"}}}", LineCol, &["duplicate"]),
        case("deep nesting json", "c.json", "[".repeat(100_000), File, &["nesting"]),
        case("deep nesting yaml", "c.yaml", format!("a: {}", "[".repeat(100_000)), File, &["nesting", "recursion"]),
        case("yaml alias bomb", "c.yaml", alias_bomb, LineCol, &["repetition limit", "too large once its yaml aliases", "expected a cluster"]),
        case("yaml alias of a long string", "c.yaml", scalar_bomb, LineCol, &["too large once its yaml aliases are expanded"]),
        case("thousands of problems", "c.yaml", many_bad, LineCol, &["more problem(s) not shown"]),
        case("cluster name with a space", "c.yaml", y.replacen("cluster1:", "my cluster:", 1), LineCol, &["\"my cluster\": a cluster name is 1 to 63"]),
        case("cluster name with a bell", "c.yaml", y.replacen("cluster1:", "\"bell\\a\":", 1), File, &["\"bell\\u{7}\": a cluster name is 1 to 63"]),
        case("template tag key twice", "c.yaml", format!("{y}  replica_template:\n    tags: {{team: a, team: b}}\n"), LineCol, &["duplicate key `team`"]),
        case("template with 60 tags", "c.yaml", format!("{y}  replica_template:\n    tags: {{{}}}\n", (0..60).map(|i| format!("k{i}: v")).collect::<Vec<_>>().join(", ")), LineCol, &["at most 48"]),
        case("huge file", "c.yaml", huge, File, &["limit"]),
        case("binary junk", "c.json", junk(4096), File, &["utf-8"]),
        case("nul bytes", "c.json", replace(g, "cluster1m01", "cluster1\0m01"), File, &["nul"]),
    ]
}

fn policy_cases() -> Vec<Case> {
    use Loc::*;
    let p = GOOD_POLICY;
    let many_rules = replace(
        p,
        "    target: 60\n",
        &format!(
            "    target: 60\n{}",
            "  - metric: memory\n    target: 5\n".repeat(3000)
        ),
    );
    let long_schedule = format!(
        "{p}schedules: [&s {{name: \"{}\", cron: '0 8 * * *', duration: 1h, min_replicas: 1}}{}]\n",
        "n".repeat(64 * 1024),
        ", *s".repeat(300)
    );
    vec![
        case("policy thousands of problems", "p.yaml", many_rules, LineCol, &["more problem(s) not shown"]),
        case("policy yaml alias of a long string", "p.yaml", long_schedule, LineCol, &["too large once its yaml aliases are expanded"]),
        case("policy predictive is a list", "p.yaml", format!("{p}predictive: []\n"), LineCol, &["expected a predictive section"]),
        case("policy with 40 rules", "p.yaml", replace(p, "    target: 60\n", &format!("    target: 60\n{}", "  - metric: cpu\n    target: 60\n".repeat(39))), LineCol, &["40 rules: at most 32"]),
        case("policy with 100 schedules", "p.yaml", format!("{p}schedules:\n{}", (0..100).map(|i| format!("  - {{name: s{i}, cron: '0 8 * * *', duration: 1h, min_replicas: 1}}\n")).collect::<String>()), LineCol, &["100 schedules: at most 64"]),
        case("policy sub-second cooldown", "p.yaml", replace(p, "cooldown: 5m", "cooldown: 500ms"), LineCol, &["whole seconds"]),
        case("policy syntax", "p.yaml", "cluster: cluster1\nrules: [\n", LineCol, &["end of stream", "did not find"]),
        case("policy empty", "p.yaml", "", File, &["empty"]),
        case("policy unknown key", "p.yaml", format!("{p}max_replica: 3\n"), LineCol, &["max_replica"]),
        case("policy unknown rule key", "p.yaml", replace(p, "    target: 60\n", "    target: 60\n    threshold: 3\n"), LineCol, &["threshold"]),
        case("policy min is a string", "p.yaml", replace(p, "min_replicas: 1", "min_replicas: two"), LineCol, &["min_replicas"]),
        case("policy negative min", "p.yaml", replace(p, "min_replicas: 1", "min_replicas: -1"), LineCol, &["min_replicas"]),
        case("policy min above max", "p.yaml", replace(p, "min_replicas: 1", "min_replicas: 3"), LineCol, &["min_replicas"]),
        case("policy max beyond replica list", "p.yaml", replace(p, "max_replicas: 2", "max_replicas: 9"), LineCol, &["max_replicas"]),
        case("policy unknown cluster", "p.yaml", replace(p, "cluster: cluster1", "cluster: cluster9"), LineCol, &["unknown cluster"]),
        case("policy missing cluster", "p.yaml", replace(p, "cluster: cluster1\n", ""), LineCol, &["cluster"]),
        case("policy unknown metric", "p.yaml", replace(p, "metric: cpu", "metric: iops"), LineCol, &["metric"]),
        case("policy bad statistic", "p.yaml", replace(p, "    target: 60\n", "    target: 60\n    statistic: Median\n"), LineCol, &["statistic"]),
        case("policy bad aggregation", "p.yaml", replace(p, "    target: 60\n", "    target: 60\n    aggregation: median\n"), LineCol, &["aggregation"]),
        case("policy target zero", "p.yaml", replace(p, "target: 60", "target: 0"), LineCol, &["target"]),
        case("policy negative cooldown", "p.yaml", replace(p, "cooldown: 5m", "cooldown: -5"), LineCol, &["cooldown"]),
        case("policy cooldown longer than a day", "p.yaml", replace(p, "cooldown: 15m", "cooldown: 400d"), LineCol, &["scale_in.cooldown"]),
        case("policy bad duration", "p.yaml", replace(p, "cooldown: 5m", "cooldown: 5 parsecs"), LineCol, &["cooldown"]),
        case("policy max_step zero", "p.yaml", replace(p, "  cooldown: 5m\n", "  cooldown: 5m\n  max_step: 0\n"), LineCol, &["max_step"]),
        case("policy period not a minute multiple", "p.yaml", format!("{p}period: 90s\n"), LineCol, &["period"]),
        case("policy bad missing-data mode", "p.yaml", format!("{p}missing_data:\n  scale_out: guess\n"), LineCol, &["missing_data.scale_out"]),
        case("policy bad cron", "p.yaml", format!("{p}schedules:\n  - cron: \"61 8 * * *\"\n    duration: 9h\n    min_replicas: 2\n"), LineCol, &["cron"]),
        case("policy unknown timezone", "p.yaml", format!("{p}schedules:\n  - cron: \"0 8 * * 1-5\"\n    timezone: Mars/Olympus\n    duration: 9h\n    min_replicas: 2\n"), LineCol, &["timezone"]),
        case("policy schedule min above max", "p.yaml", format!("{p}schedules:\n  - cron: \"0 8 * * 1-5\"\n    duration: 9h\n    min_replicas: 2\n    max_replicas: 1\n"), LineCol, &["min_replicas"]),
        case("policy schedule overrides nothing", "p.yaml", format!("{p}schedules:\n  - cron: \"0 8 * * 1-5\"\n    duration: 9h\n"), LineCol, &["overrides nothing"]),
        case("policy two schedules of one name", "p.yaml", format!("{p}schedules:\n  - {{name: peak, cron: '0 8 * * *', duration: 1h, min_replicas: 2}}\n  - {{name: peak, cron: '0 9 * * *', duration: 1h, min_replicas: 3}}\n"), LineCol, &["schedules[1].name", "\"peak\" is also the name of schedules[0]"]),
        case("policy schedule named as another's default", "p.yaml", format!("{p}schedules:\n  - {{cron: '0 8 * * *', duration: 1h, min_replicas: 2}}\n  - {{name: schedule 1, cron: '0 9 * * *', duration: 1h, min_replicas: 3}}\n"), LineCol, &["\"schedule 1\" is also the name of schedules[0]"]),
        case("policy warm-up longer than a day", "p.yaml", format!("{p}warmup:\n  duration: 2d\n"), LineCol, &["warmup.duration", "longer than a day"]),
        case("policy lag bound longer than a day", "p.yaml", format!("{p}warmup:\n  max_lag: 5M\n"), LineCol, &["warmup.max_lag", "longer than a day"]),
        case("policy schedule with an empty name", "p.yaml", format!("{p}schedules:\n  - {{name: ' ', cron: '0 8 * * *', duration: 1h, min_replicas: 2}}\n"), LineCol, &["schedules[0].name", "is empty"]),
        case("policy schedule name with a control character", "p.yaml", format!("{p}schedules:\n  - {{name: \"a\\u0007b\", cron: '0 8 * * *', duration: 1h, min_replicas: 2}}\n"), LineCol, &["schedules[0].name", "without control characters"]),
        case("policy binary junk", "p.yaml", junk(2048), File, &["utf-8"]),
        case("policy deep nesting", "p.yaml", format!("cluster: cluster1\nrules: {}", "[".repeat(50_000)), File, &["nesting", "recursion"]),
        case("policy nul bytes", "p.yaml", replace(p, "cluster1", "clus\0ter1"), File, &["nul"]),
    ]
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Judge one answer; returns a description of what is wrong, if anything.
fn judge(c: &Case, path: &Path, out: &Output, trip: &Tripwire) -> Option<String> {
    let err = stderr_of(out);
    let lower = err.to_ascii_lowercase();
    let shown = path.display().to_string();
    let mut problems = Vec::new();
    if out.status.code() != Some(2) {
        problems.push(format!("exit {:?}, want 2", out.status.code()));
    }
    if lower.contains("panicked") || lower.contains("stack backtrace") {
        problems.push("panicked".into());
    }
    if !err.contains(&shown) {
        problems.push(format!("stderr does not name {shown}"));
    }
    if let Loc::LineCol = c.loc {
        let located = err.lines().any(|l| {
            l.find(&shown).is_some_and(|i| {
                let rest = &l[i + shown.len()..];
                let mut parts = rest.splitn(4, ':');
                // Lines and columns count from 1, as editors show them.
                let from_one = |x: &str| x.parse::<usize>().is_ok_and(|n| n >= 1);
                parts.next() == Some("")
                    && parts.next().is_some_and(from_one)
                    && parts.next().is_some_and(from_one)
            })
        });
        if !located {
            problems.push("no file:line:column".into());
        }
    }
    if !c
        .any_of
        .iter()
        .any(|w| lower.contains(&w.to_ascii_lowercase()))
    {
        problems.push(format!("stderr mentions none of {:?}", c.any_of));
    }
    if err.len() > 20_000 {
        problems.push(format!(
            "stderr is {} bytes: not a clear message",
            err.len()
        ));
    }
    if trip.hits() != 0 {
        problems.push("an AWS endpoint was contacted".into());
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{}: {}\n    stderr: {}",
            c.name,
            problems.join("; "),
            err.chars().take(400).collect::<String>()
        )
    })
}

fn run_table(cases: Vec<Case>, mut command: impl FnMut(&Path, &Tripwire) -> Output) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let n = cases.len();
    for (i, c) in cases.iter().enumerate() {
        let sub = dir.path().join(format!("{i:02}"));
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join(c.file);
        std::fs::write(&path, &c.content).unwrap();
        let trip = Tripwire::new();
        let out = command(&path, &trip);
        if let Some(f) = judge(c, &path, &out, &trip) {
            failures.push(f);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} bad inputs were not answered with exit 2 and a located message:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn elasticrds(trip: &Tripwire) -> std::process::Command {
    let mut cmd = support::elasticrds(Some(&trip.endpoint()));
    cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", trip.endpoint());
    cmd
}

#[test]
fn the_table_is_large_enough() {
    assert!(config_cases().len() + policy_cases().len() >= 40);
}

#[test]
fn broken_configs_exit_2_with_a_located_message_and_no_aws_call() {
    run_table(config_cases(), |path, trip| {
        elasticrds(trip)
            .arg("--config")
            .arg(path)
            .args(["status", "cluster1"])
            .output()
            .unwrap()
    });
}

#[test]
fn broken_configs_stop_the_service_before_any_aws_call() {
    // The service refuses a broken config the same way (a subset: one per kind of problem).
    let cases: Vec<Case> = config_cases()
        .into_iter()
        .filter(|c| {
            [
                "trailing comma",
                "multi_az is a string",
                "unknown key in master",
                "id with double hyphen",
                "binary junk",
                "deep nesting json",
            ]
            .contains(&c.name)
        })
        .collect();
    assert_eq!(cases.len(), 6);
    run_table(cases, |path, trip| {
        elasticrds(trip)
            .arg("--config")
            .arg(path)
            .args(["run", "--once", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap()
    });
}

#[test]
fn broken_policies_exit_2_with_a_located_message_and_no_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("elasticrds.json");
    std::fs::write(&config, GOOD_CONFIG).unwrap();
    // The good policy passes: the table's failures are the broken parts, not the fixture.
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, GOOD_POLICY).unwrap();
    let trip = Tripwire::new();
    let out = elasticrds(&trip)
        .arg("--config")
        .arg(&config)
        .arg("validate")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "good policy: {}",
        stderr_of(&out)
    );
    run_table(policy_cases(), |path, trip| {
        elasticrds(trip)
            .arg("--config")
            .arg(&config)
            .arg("validate")
            .arg(path)
            .output()
            .unwrap()
    });
}

#[test]
fn missing_and_unreadable_files_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let trip = Tripwire::new();
    let missing = dir.path().join("nope.yaml");
    let out = elasticrds(&trip)
        .arg("--config")
        .arg(&missing)
        .args(["status", "cluster1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains(&missing.display().to_string()));
    let out = elasticrds(&trip)
        .arg("--config")
        .arg(dir.path())
        .args(["status", "cluster1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert_eq!(trip.hits(), 0);
}

// ---------------------------------------------------------------- recorded metrics and traces

/// Lines `file:N:` that stderr locates.
fn located_lines(err: &str, shown: &str) -> Vec<usize> {
    err.lines()
        .filter_map(|l| {
            let rest = &l[l.find(shown)? + shown.len()..];
            rest.strip_prefix(':')?.split(':').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn recorded_metrics_with_junk_rows_exit_2_naming_every_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("elasticrds.json");
    std::fs::write(&config, GOOD_CONFIG).unwrap();
    let metrics = dir.path().join("m.csv");
    std::fs::write(
        &metrics,
        "timestamp,instance,metric,statistic,value\n\
         2026-11-25T12:00:00Z,cluster1s01,cpu,Average,50\n\
         not-a-time,cluster1s01,cpu,Average,50\n\
         2026-11-25T12:01:00Z,cluster1s01,iops,Average,50\n\
         2026-11-25T12:02:00Z,cluster1s01,cpu,Median,50\n\
         2026-11-25T12:03:00Z,cluster1s01,cpu,Average,abc\n\
         2026-11-25T12:04:00Z,cluster1s01,cpu\n\
         2026-11-25T12:00:00Z,cluster1s01,cpu,Average,51\n\
         2026-11-25T12:05:00Z,bad--id,cpu,Average,5\n",
    )
    .unwrap();
    let trip = Tripwire::new();
    let out = elasticrds(&trip)
        .arg("--config")
        .arg(&config)
        .args(["plan", "cluster1", "--metrics"])
        .arg(&metrics)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines = located_lines(&err, &metrics.display().to_string());
    for want in 3..=9 {
        assert!(lines.contains(&want), "line {want} not located:\n{err}");
    }
    assert!(!lines.contains(&2), "the good row was blamed:\n{err}");
    // The conflicting duplicate names the earlier row too.
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(trip.hits(), 0, "an AWS endpoint was contacted");
}

#[test]
fn recorded_metrics_gaps_duplicates_and_disorder_follow_the_documented_rule() {
    use elasticrds::adapters::recorded::RecordedMetrics;
    use elasticrds::core::domain::{InstanceId, MetricKind, Statistic};
    let t = |m: u32| format!("2026-11-25T12:{m:02}:00Z");
    // Unordered rows, a gap (12:02 absent, 12:03 empty), a repeated row with the same value.
    let csv = format!(
        "{},cluster1s01,cpu,Average,40\n{},cluster1s01,cpu,Average,10\n{},cluster1s01,cpu,Average,\n{},cluster1s01,cpu,Average,20\n{},cluster1s01,cpu,Average,10\n",
        t(4),
        t(0),
        t(3),
        t(1),
        t(0)
    );
    let json = format!(
        "[{{\"timestamp\":\"{}\",\"instance\":\"cluster1s01\",\"metric\":\"cpu\",\"statistic\":\"Average\",\"value\":40}},\
          {{\"timestamp\":\"{}\",\"instance\":\"cluster1s01\",\"metric\":\"cpu\",\"statistic\":\"Average\",\"value\":10}},\
          {{\"timestamp\":\"{}\",\"instance\":\"cluster1s01\",\"metric\":\"cpu\",\"statistic\":\"Average\",\"value\":null}},\
          {{\"timestamp\":\"{}\",\"instance\":\"cluster1s01\",\"metric\":\"cpu\",\"statistic\":\"Average\",\"value\":20}},\
          {{\"timestamp\":\"{}\",\"instance\":\"cluster1s01\",\"metric\":\"cpu\",\"statistic\":\"Average\",\"value\":10}}]",
        t(4),
        t(0),
        t(3),
        t(1),
        t(0)
    );
    let start = chrono::DateTime::parse_from_rfc3339(&t(0))
        .unwrap()
        .to_utc();
    let end = start + chrono::Duration::minutes(10);
    for (file, text) in [("m.csv", csv.as_str()), ("m.json", json.as_str())] {
        let r = RecordedMetrics::parse(file, text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let s = r.samples(
            &InstanceId::from_aws("cluster1s01"),
            MetricKind::Cpu,
            Statistic::Average,
            start,
            end,
        );
        let got: Vec<(i64, f64)> = s
            .iter()
            .map(|x| ((x.at - start).num_minutes(), x.value))
            .collect();
        // Sorted by time, the duplicate kept once, gaps missing (never zero).
        assert_eq!(got, vec![(0, 10.0), (1, 20.0), (4, 40.0)], "{file}");
    }
    // The same timestamp with a different value is an error naming both rows.
    let e = RecordedMetrics::parse(
        "m.csv",
        &format!(
            "{},cluster1s01,cpu,Average,10\n{},cluster1s01,cpu,Average,11\n",
            t(0),
            t(0)
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("m.csv:2:") && e.contains("line 1"), "{e}");
    // Binary junk and an empty file: a clear, located error, no panic.
    assert!(RecordedMetrics::parse("m.csv", "\u{0}\u{1}junk,,,\n").is_err());
    // Empty, blank or comments only: refused as empty (as an empty config is).
    for (file, text) in [
        ("m.csv", ""),
        ("m.csv", "\n \n"),
        ("m.csv", "# recorded nothing\n"),
        ("m.json", ""),
    ] {
        let e = RecordedMetrics::parse(file, text)
            .err()
            .unwrap_or_else(|| panic!("{file} {text:?} accepted"))
            .to_string();
        assert!(
            e.starts_with(&format!("{file}:1:1:")) && e.contains("document is empty"),
            "{e}"
        );
    }
    // A record of no samples says so explicitly (a header row, `[]`) and reads as no data.
    for (file, text) in [
        ("m.csv", "timestamp,instance,metric,statistic,value\n"),
        ("m.json", "[]"),
    ] {
        assert!(
            RecordedMetrics::parse(file, text).is_ok(),
            "{file} {text:?}"
        );
    }
}

#[test]
fn traces_with_junk_rows_exit_2_and_odd_rows_follow_the_documented_rule() {
    use elasticrds::backtest::trace::Trace;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, GOOD_POLICY).unwrap();
    let trace = dir.path().join("t.csv");
    std::fs::write(
        &trace,
        "timestamp,value\n2014-01-01 00:00:00,1\nnope,2\n2014-01-01 00:02:00,x\n2014-01-01 00:03:00,-1\n2014-01-01 00:04:00\n2014-01-01 00:05:00,NaN\n",
    )
    .unwrap();
    let trip = Tripwire::new();
    let out = elasticrds(&trip)
        .args(["backtest", "--policy"])
        .arg(&policy)
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines = located_lines(&err, &trace.display().to_string());
    for want in 3..=7 {
        assert!(lines.contains(&want), "line {want} not located:\n{err}");
    }
    assert_eq!(trip.hits(), 0);
    // Binary junk: refused with the file named.
    std::fs::write(&trace, junk(1024)).unwrap();
    let out = elasticrds(&trip)
        .args(["backtest", "--policy"])
        .arg(&policy)
        .arg("--trace")
        .arg(&trace)
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&trace.display().to_string()), "{err}");

    // Unordered rows, a repeated timestamp with the same value (kept once), a gap (00:03
    // absent, 00:05 empty): replayed as documented, gaps stay missing.
    let t = Trace::parse(
        "t.csv",
        "2014-01-01 00:04:00,4\n2014-01-01 00:00:00,0\n2014-01-01 00:01:00,1\n2014-01-01 00:02:00,2\n2014-01-01 00:02:00,2\n2014-01-01 00:05:00,\n2014-01-01 00:06:00,6\n",
    )
    .unwrap();
    assert_eq!(t.step_secs, 60);
    assert_eq!(
        t.values,
        vec![
            Some(0.0),
            Some(1.0),
            Some(2.0),
            None,
            Some(4.0),
            None,
            Some(6.0)
        ]
    );
    assert_eq!(t.rows, 7);
}

#[test]
fn a_trace_written_with_quotes_crlf_a_bom_and_blank_lines_reads_as_the_plain_export() {
    use elasticrds::backtest::trace::Trace;
    let plain =
        std::fs::read_to_string("tests/data/traces/rds_cpu_utilization_cc0c53.csv").unwrap();
    // Every field quoted, CRLF line ends, a byte-order mark, a blank line every 100 rows.
    let mut odd = String::from("\u{feff}");
    for (i, line) in plain.lines().enumerate() {
        let quoted: Vec<String> = line.split(',').map(|f| format!("\"{f}\"")).collect();
        odd.push_str(&quoted.join(","));
        odd.push_str(if i % 100 == 99 { "\r\n\r\n" } else { "\r\n" });
    }
    let a = Trace::parse("t.csv", &plain).unwrap();
    let b = Trace::parse("t.csv", &odd).unwrap();
    assert_eq!(
        (a.start, a.step_secs, a.rows),
        (b.start, b.step_secs, b.rows)
    );
    assert_eq!(a.values, b.values);
    // A bad value deep in the odd file is located at its line (blank lines counted) and at
    // its opening quote.
    let bad = odd.replacen("\"5.816\"", "\"five\"", 1);
    let line = 1 + bad[..bad.find("five").unwrap()].matches('\n').count();
    let e = Trace::parse("t.csv", &bad).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("t.csv:{line}:23: value: \"five\" is not a number")
    );
}

// ---------------------------------------------------------------- one set of rules for both data files

#[test]
fn one_timestamp_with_two_different_values_is_an_error_in_traces_and_recorded_metrics() {
    use elasticrds::adapters::recorded::RecordedMetrics;
    use elasticrds::backtest::trace::Trace;
    // The trace: line 3 repeats line 2's timestamp with another value.
    let trace = "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:00:00,5\n2014-01-01 00:01:00,2\n2014-01-01 00:02:00,3\n";
    let e = Trace::parse("t.csv", trace).unwrap_err().to_string();
    assert!(e.starts_with("t.csv:3:21: value: "), "{e}");
    assert!(e.contains("line 2"), "{e}");
    // The same in a recorded-metrics file (the rule it already had).
    let metrics = "timestamp,instance,metric,statistic,value\n2026-11-25T12:00:00Z,cluster1s01,cpu,Average,1\n2026-11-25T12:00:00Z,cluster1s01,cpu,Average,5\n";
    let e = RecordedMetrics::parse("m.csv", metrics)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("m.csv:3:46: value: "), "{e}");
    assert!(e.contains("line 2"), "{e}");
    // The same value repeated is one sample in both; an empty row beside a value is no conflict.
    let t = Trace::parse(
        "t.csv",
        "2014-01-01 00:00:00,1\n2014-01-01 00:00:00,1\n2014-01-01 00:01:00,2\n2014-01-01 00:01:00,\n2014-01-01 00:02:00,\n2014-01-01 00:02:00,3\n",
    )
    .unwrap();
    assert_eq!(t.values, vec![Some(1.0), Some(2.0), Some(3.0)]);
    assert_eq!(t.rows, 6);
    assert!(RecordedMetrics::parse("m.csv", &metrics.replace(",5\n", ",1\n")).is_ok());
}

#[test]
fn recorded_metric_values_follow_one_range_rule() {
    use elasticrds::adapters::recorded::RecordedMetrics;
    let row = |m: u32, metric: &str, v: &str| {
        format!("2026-11-25T12:{m:02}:00Z,cluster1s01,{metric},Average,{v}\n")
    };
    // CPU is a percentage: 0 and 100 are fine, -50 and 300 are not; connections and lag are
    // counts and seconds: never negative.
    let good = [
        row(0, "cpu", "0"),
        row(1, "cpu", "100"),
        row(0, "connections", "0"),
        row(0, "replica_lag", "0.5"),
    ]
    .concat();
    RecordedMetrics::parse("m.csv", &good).unwrap();
    let bad = [
        row(0, "cpu", "-50"),
        row(1, "cpu", "300"),
        row(2, "connections", "-1"),
        row(3, "replica_lag", "-1"),
        row(4, "cpu", "100.5"),
    ]
    .concat();
    let e = RecordedMetrics::parse("m.csv", &bad).unwrap_err().0;
    let got: Vec<(Option<usize>, &str)> = e.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (Some(1), "value"),
            (Some(2), "value"),
            (Some(3), "value"),
            (Some(4), "value"),
            (Some(5), "value")
        ],
        "{e:?}"
    );
    assert!(e[0].message.contains("0 to 100"), "{}", e[0]);
    assert!(e[2].message.contains(">= 0"), "{}", e[2]);
    // CloudWatch reports a ReplicaLag of -1 when replication is not active: say so.
    assert!(
        e[3].message.contains("replication is not active"),
        "{}",
        e[3]
    );
    // JSON: the same rule, located at the row.
    let json = "[\n{\"timestamp\": 1795608000, \"instance\": \"cluster1s01\", \"metric\": \"cpu\", \"statistic\": \"Average\", \"value\": 10},\n{\"timestamp\": 1795608060, \"instance\": \"cluster1s01\", \"metric\": \"cpu\", \"statistic\": \"Average\", \"value\": 300}\n]";
    let e = RecordedMetrics::parse("m.json", json).unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (e[0].line, e[0].field.as_str()),
        (Some(3), "[1].value"),
        "{}",
        e[0]
    );
    assert!(e[0].message.contains("0 to 100"), "{}", e[0]);
    // Traces hold load samples (any unit): finite and >= 0, as before.
    let e = elasticrds::backtest::trace::Trace::parse(
        "t.csv",
        "2014-01-01 00:00:00,-1\n2014-01-01 00:01:00,1\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("t.csv:1:21: value: -1 is not a finite number >= 0"),
        "{e}"
    );
}

// ---------------------------------------------------------------- files that are not files

const GOOD_TRACE: &str =
    "timestamp,value\n2014-02-14 14:30:00,6.4\n2014-02-14 14:35:00,5.8\n2014-02-14 14:40:00,6.1\n";

/// Run `cmd` with its output in files, killing it after `limit` (a hang is an `Err`). The child
/// runs under `ulimit -v` (4 GiB) so that an unbounded read fails fast instead of eating the
/// machine before the time limit.
fn run_bounded(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> Result<Output, String> {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let program = cmd.get_program().to_owned();
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("ulimit -v 4194304 && exec \"$0\" \"$@\"")
        .arg(program)
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    let mut child = sh
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {limit:?}: killed"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Ok(Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    })
}

/// A named pipe at `path`, made with mkfifo(1). Nobody ever writes to it: opening it for
/// reading blocks forever.
fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Every command that reads a file, with the file given by `bad`; the other inputs are good.
/// `dir` holds good fixtures; `bad_dir` is a policies directory whose `p.yaml` is the bad file.
fn commands_reading(
    bad: &Path,
    bad_dir: &Path,
    dir: &Path,
) -> Vec<(&'static str, Vec<std::ffi::OsString>)> {
    let config = dir.join("elasticrds.json");
    let policy = dir.join("good.yaml");
    let trace = dir.join("t.csv");
    let os = |v: &[&dyn AsRef<std::ffi::OsStr>]| -> Vec<std::ffi::OsString> {
        v.iter().map(|x| x.as_ref().to_owned()).collect()
    };
    let listen = "127.0.0.1:0";
    vec![
        (
            "status --config",
            os(&[&"--config", &bad, &"status", &"cluster1"]),
        ),
        (
            "create-cluster --config",
            os(&[
                &"--config",
                &bad,
                &"create-cluster",
                &"cluster1",
                &"--dry-run",
            ]),
        ),
        (
            "run --config",
            os(&[&"--config", &bad, &"run", &"--once", &"--listen", &listen]),
        ),
        (
            "run --policies",
            os(&[
                &"--config",
                &config,
                &"run",
                &"--once",
                &"--listen",
                &listen,
                &"--policies",
                &bad_dir,
            ]),
        ),
        ("validate", os(&[&"--config", &config, &"validate", &bad])),
        (
            "plan --policy",
            os(&[
                &"--config",
                &config,
                &"plan",
                &"cluster1",
                &"--policy",
                &bad,
            ]),
        ),
        (
            "plan --policies",
            os(&[
                &"--config",
                &config,
                &"plan",
                &"cluster1",
                &"--policies",
                &bad_dir,
            ]),
        ),
        (
            "plan --metrics",
            os(&[
                &"--config",
                &config,
                &"plan",
                &"cluster1",
                &"--policy",
                &policy,
                &"--metrics",
                &bad,
            ]),
        ),
        (
            "backtest --trace",
            os(&[&"backtest", &"--policy", &policy, &"--trace", &bad]),
        ),
        (
            "backtest --policy",
            os(&[&"backtest", &"--policy", &bad, &"--trace", &trace]),
        ),
        (
            "backtest --config",
            os(&[
                &"--config",
                &bad,
                &"backtest",
                &"--policy",
                &policy,
                &"--trace",
                &trace,
            ]),
        ),
        (
            "haproxy render --template",
            os(&[
                &"--config",
                &config,
                &"haproxy",
                &"render",
                &"cluster1",
                &"--template",
                &bad,
            ]),
        ),
        (
            "demo --trace",
            os(&[
                &"demo",
                &"--listen",
                &listen,
                &"--duration",
                &"1m",
                &"--trace",
                &bad,
            ]),
        ),
    ]
}

/// `bad` (or `bad_dir/p.yaml`) given to every command that reads a file: each must exit 2
/// within 20 s, name the path, and make no AWS call.
fn refuse_everywhere(bad: &Path, bad_dir: &Path) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("elasticrds.json"), GOOD_CONFIG).unwrap();
    std::fs::write(dir.path().join("good.yaml"), GOOD_POLICY).unwrap();
    std::fs::write(dir.path().join("t.csv"), GOOD_TRACE).unwrap();
    let entry = bad_dir.join("p.yaml");
    let mut failures = Vec::new();
    for (name, args) in commands_reading(bad, bad_dir, dir.path()) {
        let trip = Tripwire::new();
        let shown = if args.iter().any(|a| a.as_os_str() == bad_dir.as_os_str()) {
            entry.display().to_string()
        } else {
            bad.display().to_string()
        };
        let mut cmd = elasticrds(&trip);
        cmd.args(&args).current_dir(dir.path());
        match run_bounded(&mut cmd, std::time::Duration::from_secs(20)) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(out) => {
                let err = stderr_of(&out);
                let mut p = Vec::new();
                if out.status.code() != Some(2) {
                    p.push(format!("exit {:?}, want 2", out.status.code()));
                }
                if !err.contains(&shown) {
                    p.push(format!("stderr does not name {shown}"));
                }
                if !err.contains("not a regular file") {
                    p.push("stderr does not say `not a regular file`".into());
                }
                if trip.hits() != 0 {
                    p.push("an AWS endpoint was contacted".into());
                }
                if !p.is_empty() {
                    failures.push(format!(
                        "{name}: {}\n    stderr: {}",
                        p.join("; "),
                        err.chars().take(300).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn dev_zero_is_refused_by_every_command_that_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("p.yaml")).unwrap();
    refuse_everywhere(Path::new("/dev/zero"), dir.path());
}

#[test]
fn a_fifo_is_refused_by_every_command_that_reads_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    mkfifo(&fifo);
    mkfifo(&dir.path().join("p.yaml"));
    refuse_everywhere(&fifo, dir.path());
}

#[test]
fn dev_urandom_and_a_directory_are_refused_as_a_config() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [Path::new("/dev/urandom"), dir.path()] {
        let trip = Tripwire::new();
        let mut cmd = elasticrds(&trip);
        cmd.arg("--config").arg(bad).args(["status", "cluster1"]);
        let out = run_bounded(&mut cmd, std::time::Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{}: {e}", bad.display()));
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("{}: ", bad.display())), "{err}");
        assert!(err.contains("not a regular file"), "{err}");
        assert_eq!(trip.hits(), 0);
    }
}

// ---------------------------------------------------------------- bounded fuzzing on stable

mod parser_fuzz {
    //! The stable-toolchain companion of `fuzz/` (cargo fuzz needs nightly): random byte-level
    //! mutations of good inputs (replace, insert, delete, duplicate a span) and plain random
    //! bytes, through every parser of user files. Each must answer `Ok` or errors that name the
    //! file, never panic. Bounded: a fixed number of cases per run (`PROPTEST_CASES` raises it).
    use super::{GOOD_CONFIG, GOOD_POLICY, GOOD_YAML};
    use elasticrds::adapters::recorded::RecordedMetrics;
    use elasticrds::backtest::trace::Trace;
    use elasticrds::core::config::Config;
    use elasticrds::core::input::InputErrors;
    use elasticrds::core::policy::Policy;
    use proptest::prelude::*;

    const METRICS: &str = "timestamp,instance,metric,statistic,value\n2026-11-25T12:00:00Z,cluster1s01,cpu,Average,50\n2026-11-25T12:01:00Z,cluster1s01,cpu,Average,\n";
    const TRACE: &str = "timestamp,value\n2014-02-14 14:30:00,6.4\n2014-02-14 14:35:00,5.8\n";
    const POLICY_EXTRA: &str = "schedules:\n  - cron: \"0 8 * * 1-5\"\n    timezone: Asia/Tokyo\n    duration: 9h\n    min_replicas: 2\nmissing_data:\n  scale_out: hold\n";

    #[derive(Debug, Clone)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, Vec<u8>),
        Delete(usize, usize),
        Repeat(usize, usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let token = prop_oneof![
            Just(b"{".to_vec()),
            Just(b"}".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"/*".to_vec()),
            Just(b"//".to_vec()),
            Just(b":".to_vec()),
            Just(b",".to_vec()),
            Just(b"\n  ".to_vec()),
            Just(b"&a ".to_vec()),
            Just(b"*a".to_vec()),
            Just(b"!!binary ".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"1e999".to_vec()),
            Just(b"\xff".to_vec()),
            Just(b"\0".to_vec()),
            prop::collection::vec(any::<u8>(), 1..8),
        ];
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), token).prop_map(|(i, t)| Edit::Insert(i, t)),
            (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
            (any::<usize>(), 1usize..60, 1usize..50).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
        ]
    }

    fn apply(base: &str, edits: &[Edit]) -> Vec<u8> {
        let mut v = base.as_bytes().to_vec();
        for e in edits {
            let len = v.len().max(1);
            match e {
                Edit::Replace(i, b) => {
                    if !v.is_empty() {
                        let i = i % v.len();
                        v[i] = *b;
                    }
                }
                Edit::Insert(i, t) => {
                    let i = i % (v.len() + 1);
                    v.splice(i..i, t.iter().copied());
                }
                Edit::Delete(i, n) => {
                    let i = i % len;
                    let end = (i + n).min(v.len());
                    if i < end {
                        v.drain(i..end);
                    }
                }
                Edit::Repeat(i, n, k) => {
                    let i = i % len;
                    let end = (i + n).min(v.len());
                    if i < end {
                        let span: Vec<u8> = v[i..end].to_vec();
                        for _ in 0..*k {
                            v.splice(end..end, span.iter().copied());
                        }
                    }
                }
            }
        }
        v
    }

    fn config() -> Config {
        Config::parse("c.json", GOOD_CONFIG).expect("good config")
    }

    fn check(file: &str, r: Result<(), InputErrors>) -> Result<(), TestCaseError> {
        if let Err(e) = r {
            prop_assert!(
                !e.0.is_empty(),
                "{}: an error result without any error",
                file
            );
            for x in &e.0 {
                prop_assert_eq!(&x.file, file);
                prop_assert!(!x.to_string().is_empty());
            }
        }
        Ok(())
    }

    /// Every parser of user files on one input (the lossy text where the parser takes text, as
    /// the binary does only after its UTF-8 check).
    fn all_parsers(bytes: &[u8]) -> Result<(), TestCaseError> {
        let text = String::from_utf8_lossy(bytes);
        for file in ["f.json", "f.yaml", "f"] {
            check(file, Config::parse(file, &text).map(|_| ()))?;
        }
        let c = config();
        check("p.yaml", Policy::parse("p.yaml", &text, &c).map(|_| ()))?;
        check("p.json", Policy::parse("p.json", &text, &c).map(|_| ()))?;
        check("m.csv", RecordedMetrics::parse("m.csv", &text).map(|_| ()))?;
        check(
            "m.json",
            RecordedMetrics::parse("m.json", &text).map(|_| ()),
        )?;
        check("t.csv", Trace::parse("t.csv", &text).map(|_| ()))?;
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn mutated_inputs_never_panic(
            base in prop::sample::select(vec![0usize, 1, 2, 3, 4, 5]),
            edits in prop::collection::vec(edit(), 1..12),
        ) {
            let policy = format!("{GOOD_POLICY}{POLICY_EXTRA}");
            let b = [GOOD_CONFIG, GOOD_YAML, GOOD_POLICY, policy.as_str(), METRICS, TRACE][base];
            all_parsers(&apply(b, &edits))?;
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            all_parsers(&bytes)?;
        }
    }
}

/// Paths the tool writes to (`backtest --plot`, `demo --log-file`) must be absent or regular
/// files (a FIFO would block the write forever), checked before any work; `demo` refuses the
/// options it cannot honour (`--config`, a lead time that is not whole minutes); `haproxy
/// render` refuses a bad `--bind` before any AWS call. Each exits 2 within 20 s, names the
/// option or path, and contacts no AWS endpoint.
#[test]
fn bad_output_paths_and_options_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("elasticrds.json"), GOOD_CONFIG).unwrap();
    std::fs::write(d.join("t.csv"), GOOD_TRACE).unwrap();
    let fifo = d.join("out.fifo");
    mkfifo(&fifo);
    let policy =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies/cpu-target.yaml");
    let fifo_s = fifo.display().to_string();
    // Absolute paths: `run_bounded` runs the command through a shell in another directory.
    let config = d.join("elasticrds.json").display().to_string();
    let trace = d.join("t.csv").display().to_string();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            "backtest --plot FIFO",
            vec![
                "backtest".into(),
                "--policy".into(),
                policy.display().to_string(),
                "--trace".into(),
                trace.clone(),
                "--plot".into(),
                fifo_s.clone(),
            ],
            format!("{fifo_s}: is a FIFO (named pipe), not a regular file"),
        ),
        (
            "demo --log-file FIFO",
            vec![
                "demo".into(),
                "--duration".into(),
                "2s".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--log-file".into(),
                fifo_s.clone(),
            ],
            format!("{fifo_s}: is a FIFO (named pipe), not a regular file"),
        ),
        (
            "demo --log-file /dev/full",
            vec![
                "demo".into(),
                "--duration".into(),
                "2s".into(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--log-file".into(),
                "/dev/full".into(),
            ],
            "/dev/full: is a character device, not a regular file".into(),
        ),
        (
            "demo --config",
            vec![
                "--config".into(),
                config.clone(),
                "demo".into(),
                "--duration".into(),
                "2s".into(),
            ],
            "--config: `demo` runs its own simulated cluster".into(),
        ),
        (
            "demo --lead-time 30s",
            vec![
                "demo".into(),
                "--lead-time".into(),
                "30s".into(),
                "--duration".into(),
                "2s".into(),
            ],
            "give whole minutes".into(),
        ),
        (
            "haproxy render --bind nonsense",
            vec![
                "--config".into(),
                config.clone(),
                "haproxy".into(),
                "render".into(),
                "cluster1".into(),
                "--bind".into(),
                "nonsense".into(),
            ],
            "--bind \"nonsense\": give HOST:PORT".into(),
        ),
        (
            "demo --peak-replicas -3 (a negative number gets the range, not \"unexpected argument\")",
            vec!["demo".into(), "--peak-replicas".into(), "-3".into()],
            "-3 is not in 1..=20".into(),
        ),
        (
            "init --slots -2",
            vec![
                "--config".into(),
                config.clone(),
                "init".into(),
                "--slots".into(),
                "-2".into(),
            ],
            "invalid value '-2' for '--slots".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, args, want) in cases {
        let trip = Tripwire::new();
        let mut cmd = elasticrds(&trip);
        cmd.args(&args);
        match run_bounded(&mut cmd, std::time::Duration::from_secs(20)) {
            Err(e) => failures.push(format!("{name}: {e}")),
            Ok(out) => {
                let err = stderr_of(&out);
                if out.status.code() != Some(2) || !err.contains(&want) || trip.hits() != 0 {
                    failures.push(format!(
                        "{name}: exit {:?}, {} AWS call(s), want exit 2 and {want:?}; stderr: {}",
                        out.status.code(),
                        trip.hits(),
                        err.chars().take(300).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
