//! `elasticrds demo`: the service on the simulated fleet with the embedded trace and policy —
//! it serves /metrics while it runs, scales, stops by itself at the end of the trace or of
//! --duration, and prints a summary.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[test]
fn demo_scales_serves_metrics_and_stops_with_a_summary() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "20ms-per-minute",
            "--duration",
            "5m",
        ])
        .env("COLUMNS", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut s = String::new();
        BufReader::new(stderr).read_to_string(&mut s).unwrap();
        s
    });
    let mut lines = BufReader::new(stdout).lines();
    let mut all = String::new();
    let mut scraped = None;
    while let Some(Ok(line)) = lines.next() {
        all.push_str(&line);
        all.push('\n');
        if let Some(rest) = line.strip_prefix("metrics: http://") {
            let addr = rest.split('/').next().unwrap().to_string();
            assert!(addr.starts_with("127.0.0.1:"), "{addr}");
            // Let a few simulated minutes pass, then scrape.
            std::thread::sleep(std::time::Duration::from_millis(600));
            let health = support::get(addr.as_str(), "/healthz").expect("GET /healthz");
            assert!(health.head.starts_with("HTTP/1.1 200"), "{health}");
            scraped = Some(support::get(addr.as_str(), "/metrics").expect("GET /metrics"));
        }
    }
    let status = child.wait().unwrap();
    let logs = logs.join().unwrap();
    assert!(status.success(), "{all}\n{logs}");
    let metrics = scraped.expect("the demo printed its metrics address");
    assert!(metrics.head.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics
            .body
            .contains("elasticrds_replicas{cluster=\"cluster1\"}"),
        "{metrics}"
    );
    assert!(
        metrics.body.contains("elasticrds_decisions_total"),
        "{metrics}"
    );
    assert!(all.contains("stopped (end of the trace)"), "{all}");
    let summary = all
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary in\n{all}"));
    let actions: u64 = summary
        .split("scale actions ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        actions >= 2,
        "the embedded trace drops and rises again: {summary}"
    );
    assert!(summary.contains("max replicas 4"), "{summary}");
    // Every scale action is printed as it happens, with the decision's reasons.
    assert!(all.contains("  scale-in 4 → 3: cpu "), "{all}");
    assert!(
        all.lines()
            .any(|l| l.contains("  scale-out 2 → ") && l.contains("> target 70%")),
        "{all}"
    );
    // A line every simulated half-hour: load, the bar, serving / paid for.
    let half_hours: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("  load ") && l.ends_with(" paid for"))
        .collect();
    assert!(half_hours.len() >= 25, "{all}");
    assert!(half_hours.iter().any(|l| l.contains("[###")), "{all}");
    // The story, not the logs: nothing on stderr unless asked.
    assert!(logs.is_empty(), "logs without --log-level:\n{logs}");
    // The side-by-side score and the plot.
    for row in [
        "this policy",
        "oracle (clairvoyant)",
        "Aurora-style tracking",
    ] {
        assert!(
            all.lines().any(|l| l.starts_with(row)),
            "{row} missing:\n{all}"
        );
    }
    let text = plot_of(&all);
    assert!(text.contains("<svg") && text.contains("oracle"), "{text}");
    // The default policy has no forecast: no forecast line.
    assert!(!text.contains("forecast replicas"), "{text}");
}

/// The SVG whose path the demo printed (read, then removed).
fn plot_of(out: &str) -> String {
    let svg = out
        .lines()
        .skip_while(|l| !l.starts_with("plot of load, capacity and actions:"))
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("no plot path:\n{out}"));
    let text = std::fs::read_to_string(svg).expect("the plot");
    let _ = std::fs::remove_file(svg);
    text
}

/// The demo in a 40-column terminal without colour: every line fits, no escape code; its
/// logs, asked for, go to a file.
#[test]
fn demo_fits_a_narrow_terminal_and_logs_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("demo.log");
    let out = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--speed",
            "5ms",
            "--log-file",
        ])
        .arg(&log)
        .args(["--log-format", "json"])
        .env("COLUMNS", "40")
        .env("NO_COLOR", "1")
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for l in text.lines() {
        assert!(l.chars().count() <= 40, "wider than 40: {l:?}");
    }
    assert!(!text.contains('\x1b') && out.stderr.is_empty(), "{text}");
    assert!(text.contains("oracle"), "{text}");
    let logs = std::fs::read_to_string(&log).expect("the log file");
    let decision = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "decision")
        .unwrap_or_else(|| panic!("no JSON decision line in the log file:\n{logs}"));
    assert_eq!(decision["cluster"], "cluster1");
}

#[test]
fn demo_stops_at_the_end_of_its_duration() {
    let out = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .args(["demo", "--listen", "127.0.0.1:0", "--duration", "1s"])
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("stopped (end of --duration)"), "{text}");
    assert!(text.contains("summary: replica-hours"), "{text}");
}

/// With a predictive policy and a week of the trace as the cluster's past, the demo shows a
/// replica created because the forecast asked for it, before the rules would have.
#[test]
fn demo_with_a_predictive_policy_scales_out_on_the_forecast() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .current_dir(root)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--trace",
            "tests/data/traces/rds_cpu_utilization_cc0c53.csv",
            "--policy",
            "policies/predictive.yaml",
            "--history",
            "7d",
            "--speed",
            "2ms",
            "--duration",
            "90s",
        ])
        .env("COLUMNS", "1000")
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("starting 7days in"), "{text}");
    assert!(text.contains("policy policies/predictive.yaml"), "{text}");
    let raised: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("  scale-out ") && l.contains("→ raised the count"))
        .collect();
    assert!(
        !raised.is_empty(),
        "no scale-out driven by the forecast:\n{text}"
    );
    assert!(text.contains("summary: replica-hours"), "{text}");
    // The plot draws the forecast line (green) beside this policy's replicas.
    let svg = plot_of(&text);
    assert!(
        svg.contains("forecast replicas (green)"),
        "no forecast line in the demo's plot"
    );

    // A past as long as the trace is refused, with the reason, before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .current_dir(root)
        .args(["demo", "--listen", "127.0.0.1:0", "--history", "2d"])
        .output()
        .expect("run the demo");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--history 2days: the trace is only 14.9 h long"),
        "{err}"
    );
}

/// A line's shape: digit runs as `9`, a bar's content as `[bar]`, runs of spaces as one.
fn shape(line: &str) -> String {
    let mut s = String::new();
    let mut in_bar = false;
    let mut last = ' ';
    for c in line.trim().chars() {
        let c = match c {
            '[' if !in_bar => {
                in_bar = true;
                s.push_str("[bar]");
                last = ']';
                continue;
            }
            ']' if in_bar => {
                in_bar = false;
                continue;
            }
            _ if in_bar => continue,
            d if d.is_ascii_digit() => '9',
            c => c,
        };
        // A digit run is one `9`, a decimal point inside a number is part of it, and a run of
        // spaces is one space.
        if (c == '9' || c == '.') && last == '9' || (c == ' ' && last == ' ') {
            continue;
        }
        s.push(c);
        last = c;
    }
    s
}

/// README's excerpt of the demo's output: every line has the shape of a line the demo prints
/// (the numbers move a little from run to run; what the lines say does not).
#[test]
fn readme_shows_what_the_demo_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block: Vec<&str> = readme
        .split("<!-- demo-output:")
        .nth(1)
        .and_then(|r| r.split("```text\n").nth(1))
        .and_then(|r| r.split("\n```").next())
        .expect("README has the demo-output excerpt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(block.len() >= 8, "{block:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .args(["demo", "--listen", "127.0.0.1:0", "--speed", "5ms"])
        .env("COLUMNS", "80")
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let printed: std::collections::BTreeSet<String> = text.lines().map(shape).collect();
    for line in block {
        assert!(
            printed.contains(&shape(line)),
            "README line {line:?} (shape {:?}) is not what the demo prints:\n{text}",
            shape(line)
        );
    }
}
