//! The generated sections of README.md and docs/*.md (run by `tests/golden.rs`, rewritten by
//! `scripts/gen-docs`). This module owns the section markers and turning the committed data
//! into markdown:
//!
//! - `tests/golden/backtest/<trace>.json` (the default policy's backtest of each trace of
//!   `tests/data/traces`):
//!   `backtest-table` and `backtest-summary` (README), `backtest-runs-table` and `backtest-goal` (docs/backtest.md);
//! - `benches/results/backtest.json` (written by `cargo bench --bench backtest`):
//!   `bench-speed` (README) and `bench-table` (docs/backtest.md);
//! - `tests/golden/faults-summary.json` (written by `scripts/faults.sh`): `faults-line` (README)
//!   and `faults-block` (the line and the scenario counts, docs/reliability.md);
//! - `tests/golden/backtest/<trace>.all-policies.json`: `predictive-table`, `predictive-goal`
//!   and `predictive-misses` (README);
//! - the golden frontier text ([`FRONTIER`]): `predictive-frontier` (README).
//!
//! A section is the lines between `<!-- generated:NAME (where it comes from) -->` and
//! `<!-- /generated -->`; its content is indented like the opening marker (so a section can sit
//! in a list item). Everything else in the file is left as it is.

use serde_json::Value;
use std::path::Path;

/// What a run found: sections whose text differs from the generator's (rewritten when updating).
pub struct Report {
    pub stale: Vec<String>,
    pub sections: usize,
}

const OPEN: &str = "<!-- generated:";
const CLOSE: &str = "<!-- /generated -->";
/// The traces kept out of the policy tuning (examples/tune_default.rs; README names them so).
const HELD_OUT: [&str; 3] = [
    "Twitter_volume_AMZN",
    "ec2_cpu_utilization_53ea38",
    "exchange-2_cpc_results",
];
/// The traces with a daily rhythm (daily autocorrelation >= 0.6, tests/data/traces/README.md;
/// the same list as examples/tune_predictive.rs).
const DAILY: [&str; 3] = [
    "exchange-2_cpc_results",
    "rds_cpu_utilization_cc0c53",
    "rds_cpu_utilization_e47b3b",
];
/// The cost goal: the median over the traces of replica-hours at most this many times the
/// oracle's.
const COST_GOAL: f64 = 1.15;

/// Check (or, with `update`, rewrite) every generated section of README.md and docs/*.md.
pub fn run(root: &Path, update: bool) -> Result<Report, String> {
    let data = Data::load(root)?;
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .map_err(|e| format!("docs/: {e}"))?
        .map(|e| e.map(|e| e.path()).map_err(|e| format!("docs/: {e}")))
        .collect::<Result<_, _>>()?;
    docs.retain(|p| p.extension().is_some_and(|x| x == "md"));
    docs.sort();
    files.extend(docs);
    let mut report = Report {
        stale: Vec::new(),
        sections: 0,
    };
    for path in files {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{rel}: {e}"))?;
        let (new, n, stale) = regenerate(&rel, &text, &data)?;
        report.sections += n;
        if !stale.is_empty() && update {
            std::fs::write(&path, new).map_err(|e| format!("{rel}: {e}"))?;
            eprintln!("rewrote {} section(s) of {rel}", stale.len());
        } else {
            report.stale.extend(stale);
        }
    }
    Ok(report)
}

/// The file's text with every section regenerated, the number of sections, and a message per
/// section that differed.
fn regenerate(rel: &str, text: &str, data: &Data) -> Result<(String, usize, Vec<String>), String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out: Vec<String> = Vec::new();
    let (mut sections, mut stale) = (0, Vec::new());
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        let Some(name) = section_name(lines[i]) else {
            i += 1;
            continue;
        };
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].trim() == CLOSE)
            .ok_or_else(|| format!("{rel}:{}: section {name} has no {CLOSE}", i + 1))?;
        if let Some(j) = (i + 1..end).find(|&j| section_name(lines[j]).is_some()) {
            return Err(format!("{rel}:{}: a section opens inside {name}", j + 1));
        }
        let indent = &lines[i][..lines[i].len() - lines[i].trim_start().len()];
        let body = data
            .section(name)
            .map_err(|e| format!("{rel}:{}: section {name}: {e}", i + 1))?;
        let new: Vec<String> = body
            .lines()
            .map(|l| match l.is_empty() {
                true => String::new(),
                false => format!("{indent}{l}"),
            })
            .collect();
        let old: Vec<String> = lines[i + 1..end].iter().map(|l| l.to_string()).collect();
        if old != new {
            let labels = ["in the file", "generated  "];
            let (k, diff) = super::first_difference(&old.join("\n"), &new.join("\n"), labels);
            stale.push(format!("{rel}:{}: section {name}:{diff}", i + 2 + k));
        }
        sections += 1;
        out.extend(new);
        i = end;
    }
    Ok((out.join("\n"), sections, stale))
}

/// `NAME` of a line `<!-- generated:NAME ... -->`.
fn section_name(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix(OPEN)?;
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches("-->"))
}

/// The committed inputs of the generator.
struct Data {
    /// Per trace (sorted by name): its runs as `elasticrds backtest --output json` prints them.
    traces: Vec<(String, Vec<Value>)>,
    /// Per trace: the runs of every shipped policy (`<trace>.all-policies.json`).
    all_policies: Vec<(String, Vec<Value>)>,
    bench: Value,
    faults: Value,
    /// The golden frontier text ([`FRONTIER`]).
    frontier: String,
}

fn read_json(root: &Path, rel: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{rel}: {e}"))
}

/// A report's runs (a JSON array).
fn read_runs(root: &Path, rel: &str) -> Result<Vec<Value>, String> {
    match read_json(root, rel)? {
        Value::Array(runs) => Ok(runs),
        _ => Err(format!("{rel}: not an array")),
    }
}

impl Data {
    fn load(root: &Path) -> Result<Data, String> {
        // The traces of tests/data/traces, each by its golden default-policy backtest.
        let mut names: Vec<String> = std::fs::read_dir(root.join("tests/data/traces"))
            .map_err(|e| format!("tests/data/traces: {e}"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| Some(n.strip_suffix(".csv")?.to_string() + ".json"))
            .collect();
        names.sort();
        let (mut traces, mut all_policies) = (Vec::new(), Vec::new());
        for n in names {
            let t = n.trim_end_matches(".json").to_string();
            traces.push((
                t.clone(),
                read_runs(root, &format!("tests/golden/backtest/{n}"))?,
            ));
            let all = format!("tests/golden/backtest/{t}.all-policies.json");
            all_policies.push((t, read_runs(root, &all)?));
        }
        Ok(Data {
            traces,
            all_policies,
            bench: read_json(root, "benches/results/backtest.json")?,
            faults: read_json(root, "tests/golden/faults-summary.json")?,
            frontier: std::fs::read_to_string(root.join(FRONTIER))
                .map_err(|e| format!("{FRONTIER}: {e}"))?,
        })
    }

    fn section(&self, name: &str) -> Result<String, String> {
        match name {
            "backtest-table" => self.backtest_table(),
            "backtest-runs-table" => self.backtest_runs_table(),
            "backtest-goal" => self.backtest_goal(),
            "backtest-summary" => self.backtest_summary(),
            "predictive-table" => self.predictive_table(),
            "predictive-goal" => self.predictive_goal(),
            "predictive-misses" => self.predictive_misses(),
            "predictive-frontier" => self.predictive_frontier(),
            "bench-speed" => bench_speed(&self.bench),
            "bench-table" => bench_table(&self.bench),
            "faults-line" => faults_line(&self.faults),
            "faults-block" => faults_block(&self.faults),
            _ => Err("no such generated section (see tests/golden/gen_docs.rs)".into()),
        }
    }
}

/// One run of a backtest report.
#[derive(Clone)]
struct Run {
    name: String,
    hours: f64,
    breach: u64,
    actions: u64,
    max: u64,
}

/// The runs of a trace's default-policy backtest: the four the goal reads (`aurora` is the
/// stronger Aurora-style run, fewest breach-minutes then fewest replica-hours, as the CLI's goal
/// line holds it) and every run in the report's order (`all`, for the runs table).
struct TraceRuns {
    policy: Run,
    oracle: Run,
    aurora: Run,
    fixed: Run,
    all: Vec<Run>,
}

/// One run of a report, read from its JSON object.
fn run_of(trace: &str, v: &Value) -> Result<Run, String> {
    let k = v["name"].as_str().unwrap_or_default();
    let num = |f: &str| {
        v[f].as_u64()
            .ok_or_else(|| format!("{trace}.json: {k}: `{f}` is not a count"))
    };
    Ok(Run {
        name: k.to_string(),
        hours: v["replica_hours"]
            .as_f64()
            .ok_or_else(|| format!("{trace}.json: {k}: `replica_hours` is not a number"))?,
        breach: num("breach_minutes")?,
        actions: num("actions")?,
        max: num("max_replicas")?,
    })
}

impl TraceRuns {
    fn of(trace: &str, runs: &[Value]) -> Result<TraceRuns, String> {
        let all = runs
            .iter()
            .map(|v| Ok((v["kind"].as_str().unwrap_or_default(), run_of(trace, v)?)))
            .collect::<Result<Vec<(&str, Run)>, String>>()?;
        let of_kind = |k: &'static str| {
            all.iter()
                .filter(move |(kind, _)| *kind == k)
                .map(|(_, r)| r)
        };
        let first = |k: &'static str| -> Result<Run, String> {
            of_kind(k)
                .next()
                .cloned()
                .ok_or_else(|| format!("tests/golden/backtest/{trace}.json: no run of kind {k}"))
        };
        let aurora = of_kind("target_tracking")
            .reduce(
                |best, r| match (r.breach, r.hours) < (best.breach, best.hours) {
                    true => r,
                    false => best,
                },
            )
            .cloned()
            .ok_or_else(|| {
                format!("tests/golden/backtest/{trace}.json: no run of kind target_tracking")
            })?;
        Ok(TraceRuns {
            policy: first("policy")?,
            oracle: first("oracle")?,
            aurora,
            fixed: first("static")?,
            all: all.into_iter().map(|(_, r)| r).collect(),
        })
    }

    fn ratio(&self, r: &Run) -> f64 {
        r.hours / self.oracle.hours
    }

    /// No more replica-hours than the stronger Aurora-style run.
    fn cost_met(&self) -> bool {
        self.policy.hours <= self.aurora.hours
    }

    /// No more breach-minutes than the stronger Aurora-style run.
    fn breach_met(&self) -> bool {
        self.policy.breach <= self.aurora.breach
    }

    fn met(&self) -> bool {
        self.cost_met() && self.breach_met()
    }
}

/// `1.110×`, in bold when above the cost goal and `mark` is set.
fn times(ratio: f64, mark: bool) -> String {
    match mark && ratio > COST_GOAL {
        true => format!("**{ratio:.3}×**"),
        false => format!("{ratio:.3}×"),
    }
}

impl Data {
    fn each_trace(&self) -> Result<Vec<(&str, TraceRuns)>, String> {
        if self.traces.is_empty() {
            return Err("no tests/golden/backtest/*.json".into());
        }
        self.traces
            .iter()
            .map(|(t, runs)| Ok((t.as_str(), TraceRuns::of(t, runs)?)))
            .collect()
    }

    fn backtest_table(&self) -> Result<String, String> {
        let mut s = String::from(
            "| trace | default policy: replica-h (× oracle) / breach-min | oracle replica-h | Aurora-style: replica-h / breach-min | static: replica-h |\n|---|---|---:|---|---:|\n",
        );
        for (t, r) in self.each_trace()? {
            let note = if HELD_OUT.contains(&t) {
                " (held out while tuning)"
            } else {
                ""
            };
            s.push_str(&format!(
                "| {t}{note} | {:.1} ({}) / {} | {:.1} | {:.1} / {} | {:.1} |\n",
                r.policy.hours,
                times(r.ratio(&r.policy), true),
                r.policy.breach,
                r.oracle.hours,
                r.aurora.hours,
                r.aurora.breach,
                r.fixed.hours
            ));
        }
        Ok(s)
    }

    fn backtest_runs_table(&self) -> Result<String, String> {
        let mut s = String::from(
            "| trace | run | replica_hours | vs oracle | breach_minutes | actions | max_replicas |\n|---|---|---:|---:|---:|---:|---:|\n",
        );
        for (t, r) in self.each_trace()? {
            for (i, run) in r.all.iter().enumerate() {
                let (trace, name) = match i {
                    0 => (format!(" {t}"), format!("**{}**", run.name)),
                    _ => (String::new(), run.name.clone()),
                };
                s.push_str(&format!(
                    "|{trace} | {name} | {:.1} | {} | {} | {} | {} |\n",
                    run.hours,
                    times(r.ratio(run), i == 0),
                    run.breach,
                    run.actions,
                    run.max
                ));
            }
        }
        Ok(s)
    }

    /// The goal line under the runs table: on how many traces the default policy was no worse
    /// than the stronger Aurora-style run on both axes (training and held-out traces counted
    /// apart), what missed on the others, and the median cost ratio.
    fn backtest_goal(&self) -> Result<String, String> {
        let all = self.each_trace()?;
        let misses: Vec<String> = all
            .iter()
            .filter(|(_, r)| !r.met())
            .map(|(t, r)| goal_miss(t, r))
            .collect();
        let head = "Goal (no more replica-hours and no more breach-minutes than the stronger \
                    Aurora-style run on each trace; median replica-hours ≤ 1.15 × the oracle's):";
        let text = format!(
            "{head} {}{}.{}",
            met_counts(&all),
            median_line(&all),
            match misses.is_empty() {
                true => String::new(),
                false => format!(" Missed {}.", misses.join("; ")),
            }
        );
        Ok(wrap(&text))
    }
}

/// `**met on 4 of the 5 training traces and all 3 held-out traces**`.
fn met_counts(all: &[(&str, TraceRuns)]) -> String {
    let count = |held: bool| {
        let of: Vec<_> = all
            .iter()
            .filter(|(t, _)| HELD_OUT.contains(t) == held)
            .collect();
        (of.iter().filter(|(_, r)| r.met()).count(), of.len())
    };
    let (tm, tn) = count(false);
    let (hm, hn) = count(true);
    format!(
        "**met on {} training traces and {} held-out traces**",
        of_n(tm, tn),
        of_n(hm, hn)
    )
}

/// The median of the policy's cost ratio over all traces, against the goal.
/// The median (with an even count, the mean of the two middle values; none: NaN).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn median_line(all: &[(&str, TraceRuns)]) -> String {
    let m = median(all.iter().map(|(_, r)| r.ratio(&r.policy)).collect());
    format!(
        "; the median replica-hours is **{m:.3} × the oracle's** ({})",
        if m <= COST_GOAL { "met" } else { "MISSED" }
    )
}

/// What missed on one trace, in words.
fn goal_miss(t: &str, r: &TraceRuns) -> String {
    format!("on `{t}` {}", miss_detail(r))
}

/// Which axis missed, with the figures.
fn miss_detail(r: &TraceRuns) -> String {
    let (b, a) = (r.policy.breach, r.aurora.breach);
    // Two decimals when one would print the two costs alike.
    let d = if format!("{:.1}", r.policy.hours) == format!("{:.1}", r.aurora.hours) {
        2
    } else {
        1
    };
    let (ph, ah) = (r.policy.hours, r.aurora.hours);
    let name = &r.aurora.name;
    match (r.cost_met(), r.breach_met()) {
        (true, false) => format!(
            "(breach-minutes {b} vs {a} for {name}, though cheaper: {ph:.d$} vs {ah:.d$} replica-hours)"
        ),
        (false, true) => format!(
            "(replica-hours {ph:.d$} vs {ah:.d$} for {name}, with no more breach-minutes: {b} vs {a})"
        ),
        _ => format!("(replica-hours {ph:.d$} vs {ah:.d$} and breach-minutes {b} vs {a} for {name})"),
    }
}

/// `all 5` or `3 of the 5`.
fn of_n(k: usize, n: usize) -> String {
    match k == n {
        true => format!("all {n}"),
        false => format!("{k} of the {n}"),
    }
}

impl Data {
    /// README's summary under its backtest table.
    fn backtest_summary(&self) -> Result<String, String> {
        let all = self.each_trace()?;
        let n = all.len();
        let better = all
            .iter()
            .filter(|(_, r)| r.policy.hours < r.aurora.hours && r.policy.breach < r.aurora.breach)
            .count();
        let mut text = format!(
            "The goal — no more replica-hours and no more breach-minutes than the stronger \
             Aurora-style run on every trace, and a median within 1.15 × the oracle's \
             replica-hours — is {}{}. The default policy is strictly better than Aurora-style on \
             both axes on {}.",
            met_counts(&all),
            median_line(&all),
            of_n(better, n)
        );
        for (t, r) in all.iter().filter(|(_, r)| !r.met()) {
            text.push_str(&format!(" **It loses on `{t}`** {}.", miss_detail(r)));
        }
        Ok(wrap(&text))
    }
}

/// Word-wrap a paragraph at 100 columns (the docs' line length).
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + w.chars().count() > 100 {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// `lo–hi` of a `[lo, hi]` figure of the results file, with `decimals` digits (one value when
/// both print the same).
fn range(v: &Value, key: &str, decimals: usize) -> Result<String, String> {
    let pair = v[key]
        .as_array()
        .filter(|a| a.len() == 2 && a.iter().all(Value::is_number))
        .ok_or_else(|| format!("benches/results/backtest.json: `{key}` is not [low, high]"))?;
    let (lo, hi) = (pair[0].as_f64().unwrap(), pair[1].as_f64().unwrap());
    let (lo, hi) = (format!("{lo:.decimals$}"), format!("{hi:.decimals$}"));
    Ok(match lo == hi {
        true => lo,
        false => format!("{lo}–{hi}"),
    })
}

fn count(v: &Value, key: &str, file: &str) -> Result<u64, String> {
    v[key]
        .as_u64()
        .ok_or_else(|| format!("{file}: `{key}` is not a count"))
}

/// `525,600`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Whether the slowest median of the one-year replay is within the 1 s goal.
fn year_goal_met(b: &Value) -> Result<bool, String> {
    b["one_policy_median_secs"][1]
        .as_f64()
        .map(|s| s <= 1.0)
        .ok_or_else(|| "benches/results/backtest.json: no `one_policy_median_secs`".into())
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// README's speed paragraph.
fn bench_speed(b: &Value) -> Result<String, String> {
    const F: &str = "benches/results/backtest.json";
    let text = format!(
        "Speed (`cargo bench --bench backtest`: the release profile, {cores} cores, {inv} \
         invocation(s); details in [docs/backtest.md](docs/backtest.md)): one year of 1-minute \
         samples through the full daemon tick (observe, decide, plan, execute, state tags) for \
         one policy takes **{year} s**, median of three runs per invocation, {us} µs per \
         simulated minute (goal ≤ 1 s: {goal}), measured on {day}, when each run took {ratio} × a \
         fixed reference workload timed just before it ({reference} s; the ratio is meant to \
         compare runs made while this shared machine runs at different speeds, and is steadier \
         than the seconds, not steady); with the forecast on (policies/predictive.yaml) the same year takes \
         {fyear} s, {fus} µs more per tick (goal ≤ 1 ms per cluster per tick: {fgoal}); a \
         {n}-variant sweep of the default policy over a 14-day trace runs in **{sweep} s** (goal \
         ≤ 60 s). The backtest runs the daemon's own tick, not a shortcut.",
        fyear = range(b, "forecast_one_policy_median_secs", 2)?,
        fus = range(b, "forecast_us_per_tick", 1)?,
        fgoal = met(b["forecast_us_per_tick"][1]
            .as_f64()
            .is_some_and(|us| us <= 1000.0)),
        cores = count(b, "cores", F)?,
        inv = count(b, "invocations", F)?,
        year = range(b, "one_policy_median_secs", 2)?,
        us = range(b, "us_per_minute", 2)?,
        goal = met(year_goal_met(b)?),
        n = count(b, "sweep_variants", F)?,
        sweep = range(b, "sweep_secs", 1)?,
        day = b["recorded_on"]
            .as_str()
            .ok_or_else(|| format!("{F}: `recorded_on` is not a day"))?,
        ratio = range(b, "year_over_reference", 1)?,
        reference = range(b, "reference_secs", 2)?,
    );
    Ok(wrap(&text))
}

/// docs/backtest.md's benchmark table.
fn bench_table(b: &Value) -> Result<String, String> {
    const F: &str = "benches/results/backtest.json";
    let minutes = thousands(count(b, "year_minutes", F)?);
    let mb = count(b, "year_csv_bytes", F)? as f64 / 1e6;
    let sweep_ok = b["sweep_secs"][1].as_f64().is_some_and(|s| s <= 60.0);
    let trace = b["sweep_trace"]
        .as_str()
        .ok_or_else(|| format!("{F}: `sweep_trace` is not a name"))?;
    Ok(format!(
        "| what | measured | goal |\n|---|---|---|\n\
         | parse one year of 1-minute samples ({minutes} rows, {mb:.0} MB of CSV) | {parse} s | – |\n\
         | **one year of 1-minute samples, one policy** (`cpu-target`, {minutes} ticks through the daemon's tick) | **{year} s** median (runs {runs} s), {us} µs per simulated minute; {alloc} heap allocations per simulated minute | ≤ 1 s: **{goal}** |\n\
         | the same year, full backtest (policy + oracle + Aurora-style + static) | {full} s | – |\n\
         | **{n}-variant sweep** (CPU target × scale-in cooldown) of `cpu-target` on `{trace}` ({sweep_minutes} minutes each), {threads} threads | **{sweep} s** | ≤ 60 s: {sweep_goal} |\n\
         | a fixed reference workload (sort 4 Mi numbers; `reference_workload` in benches/backtest.rs) timed just before each run of the year, measured on {day} | {reference} s; each one-policy run is {ratio} × it (median of the three) | – |\n",
        parse = range(b, "parse_secs", 2)?,
        year = range(b, "one_policy_median_secs", 2)?,
        runs = range(b, "one_policy_run_secs", 2)?,
        us = range(b, "us_per_minute", 2)?,
        alloc = range(b, "allocations_per_minute", 1)?,
        goal = met(year_goal_met(b)?),
        full = range(b, "full_backtest_secs", 2)?,
        n = count(b, "sweep_variants", F)?,
        sweep_minutes = thousands(count(b, "sweep_minutes", F)?),
        threads = count(b, "sweep_threads", F)?,
        sweep = range(b, "sweep_secs", 1)?,
        sweep_goal = met(sweep_ok),
        day = b["recorded_on"]
            .as_str()
            .ok_or_else(|| format!("{F}: `recorded_on` is not a day"))?,
        reference = range(b, "reference_secs", 2)?,
        ratio = range(b, "year_over_reference", 1)?,
    ))
}

/// The last line of `scripts/faults.sh`, as a fenced block.
fn faults_line(f: &Value) -> Result<String, String> {
    const F: &str = "tests/golden/faults-summary.json";
    Ok(format!(
        "```\nfaults: {} injected, {} duplicates, {} lost actions, {} foreign touched, {} converged/{}\n```\n",
        count(f, "injected", F)?,
        count(f, "duplicates", F)?,
        count(f, "lost_actions", F)?,
        count(f, "foreign_touched", F)?,
        count(f, "converged", F)?,
        count(f, "scenarios", F)?,
    ))
}

/// The last line of `scripts/faults.sh` and how many scenarios each test ran.
fn faults_block(f: &Value) -> Result<String, String> {
    const F: &str = "tests/golden/faults-summary.json";
    let by = &f["by_test"];
    Ok(format!(
        "{}\n({} fault scenarios and {} crash cases.)\n",
        faults_line(f)?,
        count(by, "faults", F)?,
        count(by, "crash", F)?
    ))
}

/// One trace's predictive comparison: the default policy, the same with `predictive` on
/// (policies/predictive.yaml), the stronger Aurora-style run and the oracle.
struct Predicted {
    reactive: Run,
    predictive: Run,
    aurora: Run,
    oracle: Run,
}

impl Predicted {
    /// From the trace's default-policy report (the oracle and the baselines, bounded like the
    /// default policy, whose bounds policies/predictive.yaml keeps) and its every-policy report.
    fn of(trace: &str, default: &[Value], runs: &[Value]) -> Result<Predicted, String> {
        let named = |name: &str| -> Result<Run, String> {
            let v = runs.iter().find(|v| v["name"] == name).ok_or_else(|| {
                format!("tests/golden/backtest/{trace}.all-policies.json: no run {name}")
            })?;
            run_of(trace, v)
        };
        let base = TraceRuns::of(trace, default)?;
        Ok(Predicted {
            reactive: named("cpu-target")?,
            predictive: named("predictive")?,
            aurora: base.aurora,
            oracle: base.oracle,
        })
    }

    /// The goals of the predictive issue, each part with its limit: with a daily rhythm, at
    /// most half the reactive policy's breach-minutes at no more than +5 % replica-hours, or at
    /// most 0.9 × its replica-hours at no more breach-minutes; without one, no more than 2 %
    /// above the reactive policy on both axes (less is no harm; breach-minutes: at least one
    /// more allowed); and no worse than the stronger Aurora-style run on both axes.
    fn goals(&self, daily: bool) -> [Goal; 2] {
        let (p, r, a) = (&self.predictive, &self.reactive, &self.aurora);
        let cost = (p.hours / r.hours - 1.0) * 100.0;
        let (pb, rb) = (p.breach as f64, r.breach as f64);
        let breach =
            |limit: f64, d| Part::new("breach-minutes", pb, limit, d, "breach-minutes").whole();
        let own = match daily {
            true => vec![
                vec![
                    breach(0.5 * rb, 1),
                    Part::new("replica-hours", cost, 5.0, 1, "percentage points").percent(),
                ],
                vec![
                    Part::new("replica-hours", p.hours / r.hours, 0.9, 3, "×").times(),
                    breach(rb, 0),
                ],
            ],
            false => vec![vec![
                Part::new("replica-hours", cost, 2.0, 1, "percentage points").percent(),
                breach((1.02 * rb).max(rb + 1.0), 0),
            ]],
        };
        // Two decimals when one would print the two costs alike.
        let d = match format!("{:.1}", p.hours) == format!("{:.1}", a.hours) {
            true => 2,
            false => 1,
        };
        [
            Goal {
                against: format!(
                    "the default policy ({:.1} replica-hours / {} breach-minutes)",
                    r.hours, r.breach
                ),
                ways: own,
            },
            Goal {
                against: format!(
                    "{} ({:.d$} replica-hours / {} breach-minutes)",
                    a.name, a.hours, a.breach
                ),
                ways: vec![vec![
                    Part::new("replica-hours", p.hours, a.hours, d, "replica-hours"),
                    breach(a.breach as f64, 0),
                ]],
            },
        ]
    }

    fn met(&self, daily: bool) -> bool {
        self.goals(daily).iter().all(Goal::met)
    }
}

/// One part of a goal: `value` at most `limit`, printed with `d` decimals; `unit` names what
/// "over by" counts.
struct Part {
    label: &'static str,
    value: f64,
    limit: f64,
    d: usize,
    unit: &'static str,
    /// How the value and limit print: a plain number, a signed percentage, or a ratio.
    form: Form,
    /// The value is a count (printed without decimals; the limit with `d`).
    whole: bool,
}

#[derive(Clone, Copy)]
enum Form {
    Plain,
    Percent,
    Times,
}

impl Part {
    fn new(label: &'static str, value: f64, limit: f64, d: usize, unit: &'static str) -> Part {
        Part {
            label,
            value,
            limit,
            d,
            unit,
            form: Form::Plain,
            whole: false,
        }
    }
    fn whole(self) -> Part {
        Part {
            whole: true,
            ..self
        }
    }
    fn percent(self) -> Part {
        Part {
            form: Form::Percent,
            ..self
        }
    }
    fn times(self) -> Part {
        Part {
            form: Form::Times,
            ..self
        }
    }

    /// The one comparison: the words and the goal's verdict both come from it.
    fn ok(&self) -> bool {
        self.value <= self.limit + 1e-9
    }

    fn show(&self, x: f64, d: usize) -> String {
        match self.form {
            Form::Plain => format!("{x:.d$}"),
            Form::Percent => format!("{x:+.d$} %"),
            Form::Times => format!("{x:.d$} ×"),
        }
    }

    /// `replica-hours +6.1 % (≤ +5.0 %: over by 1.1 percentage points)`; the excess gets more
    /// decimals when `d` would print it as zero.
    fn words(&self) -> String {
        let over = self.value - self.limit;
        // When over, enough decimals that value and limit print apart and the excess is not
        // zero (six at most: an excess below that prints as "less than").
        let d = match self.ok() {
            true => self.d,
            false => (self.d..=6)
                .find(|&d| {
                    let nonzero = !format!("{over:.d$}").trim_matches(['0', '.']).is_empty();
                    nonzero && self.show(self.value, d) != self.show(self.limit, d)
                })
                .unwrap_or(6),
        };
        let verdict = match (self.ok(), format!("{over:.d$}")) {
            (true, _) => "met".to_string(),
            (false, o) if o.trim_matches(['0', '.']).is_empty() => {
                format!(
                    "over by less than {:.d$} {}",
                    10f64.powi(-(d as i32)),
                    self.unit
                )
            }
            (false, o) => format!("over by {o} {}", self.unit),
        };
        format!(
            "{} {} (≤ {}: {verdict})",
            self.label,
            self.show(self.value, if self.whole { 0 } else { d }),
            self.show(self.limit, d)
        )
    }
}

/// A goal against one run: met when every part of one of its ways is.
struct Goal {
    against: String,
    ways: Vec<Vec<Part>>,
}

impl Goal {
    fn met(&self) -> bool {
        self.ways.iter().any(|w| w.iter().all(Part::ok))
    }

    /// The goal in words, starting a sentence when `capital`.
    fn words(&self, capital: bool) -> String {
        let ways: Vec<String> = (self.ways.iter())
            .map(|w| w.iter().map(Part::words).collect::<Vec<_>>().join(" with "))
            .collect();
        format!(
            "{} against {}: {}",
            match (self.met(), capital) {
                (true, true) => "Met",
                (true, false) => "met",
                (false, true) => "**Missed**",
                (false, false) => "**missed**",
            },
            self.against,
            ways.join("; or ")
        )
    }
}

impl Data {
    /// Per trace whose goal the predictive policy misses: the goal it misses first, then the
    /// one it meets, each part with its limit and by how much it is over.
    fn predictive_misses(&self) -> Result<String, String> {
        let mut s = String::new();
        for (t, p) in self.predicted()? {
            let daily = DAILY.contains(&t);
            if p.met(daily) {
                continue;
            }
            let held = if HELD_OUT.contains(&t) {
                ", held out"
            } else {
                ""
            };
            let rhythm = if daily { "daily" } else { "no rhythm" };
            let mut goals = p.goals(daily);
            goals.sort_by_key(Goal::met);
            let words: Vec<String> = (goals.iter().enumerate())
                .map(|(i, g)| g.words(i > 0))
                .collect();
            let item = wrap(&format!("- `{t}` ({rhythm}{held}): {}.", words.join(". ")));
            // The list item's continuation lines indented under its text.
            for (i, line) in item.lines().enumerate() {
                s.push_str(if i == 0 { "" } else { "  " });
                s.push_str(line);
                s.push('\n');
            }
        }
        Ok(s)
    }

    fn predicted(&self) -> Result<Vec<(&str, Predicted)>, String> {
        (self.traces.iter().zip(&self.all_policies))
            .map(|((t, default), (_, all))| Ok((t.as_str(), Predicted::of(t, default, all)?)))
            .collect()
    }

    /// Per trace: the default policy without and with its predictive section.
    fn predictive_table(&self) -> Result<String, String> {
        let mut s = String::from(
            "| trace | rhythm | default: replica-h / breach-min | with predictive: replica-h / breach-min | change | Aurora-style | oracle replica-h | goal |\n|---|---|---|---|---|---|---:|---|\n",
        );
        for (t, p) in self.predicted()? {
            let daily = DAILY.contains(&t);
            let (r, q) = (&p.reactive, &p.predictive);
            s.push_str(&format!(
                "| {t}{} | {} | {:.1} / {} | {:.1} / {} | {:+.1} % / {:+} | {:.1} / {} | {:.1} | {} |\n",
                if HELD_OUT.contains(&t) { " (held out)" } else { "" },
                if daily { "daily" } else { "none" },
                r.hours,
                r.breach,
                q.hours,
                q.breach,
                (q.hours / r.hours - 1.0) * 100.0,
                q.breach as i64 - r.breach as i64,
                p.aurora.hours,
                p.aurora.breach,
                p.oracle.hours,
                if p.met(daily) { "met" } else { "missed" }
            ));
        }
        Ok(s)
    }

    /// The goal line under the predictive table.
    fn predictive_goal(&self) -> Result<String, String> {
        let all = self.predicted()?;
        let count = |held: bool| {
            let of: Vec<_> = (all.iter())
                .filter(|(t, _)| HELD_OUT.contains(t) == held)
                .collect();
            let met = of.iter().filter(|(t, p)| p.met(DAILY.contains(t))).count();
            of_n(met, of.len())
        };
        let median = median(
            (all.iter())
                .map(|(_, p)| p.predictive.hours / p.oracle.hours)
                .collect(),
        );
        let no_worse = |r: &dyn Fn(&Predicted) -> &Run| {
            let n = (all.iter())
                .filter(|(_, p)| r(p).hours <= p.aurora.hours && r(p).breach <= p.aurora.breach)
                .count();
            of_n(n, all.len())
        };
        Ok(wrap(&format!(
            "With predictive scaling the goals are **met on {} training traces and {} held-out \
             traces**; the median replica-hours is {median:.3} × the oracle's (goal ≤ 1.12: {}). \
             No worse than the \
             stronger Aurora-style run on both axes on {} traces (the default policy alone: {}).",
            count(false),
            count(true),
            if median <= 1.12 { "met" } else { "MISSED" },
            no_worse(&|p| &p.predictive),
            no_worse(&|p| &p.reactive),
        )))
    }
}

/// The golden frontier README plots (`tests/golden.rs` writes it).
const FRONTIER: &str = "tests/golden/backtest/rds_cpu_utilization_cc0c53.frontier.txt";

/// One point of a frontier text: the knob's value, replica-hours, breach-minutes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct FrontierPoint {
    value: f64,
    hours: f64,
    breach: f64,
}

/// The families of a frontier as `backtest --sweep KEY=...` prints it (a family's name on its
/// own line, a header row, then one row per value).
fn parse_frontier(text: &str) -> Result<Vec<(String, Vec<FrontierPoint>)>, String> {
    let mut out: Vec<(String, Vec<FrontierPoint>)> = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match (line.starts_with(' '), f.len()) {
            (_, 0) => {}
            (false, 1) => out.push((f[0].to_string(), Vec::new())),
            (true, 6) if f[1] == "replica_hours" => {}
            (true, 6) => {
                let num = |s: &str| {
                    s.trim_end_matches('x')
                        .parse::<f64>()
                        .map_err(|_| format!("{FRONTIER}:{}: {s:?} is not a number", i + 1))
                };
                let p = FrontierPoint {
                    value: num(f[0])?,
                    hours: num(f[1])?,
                    breach: num(f[3])?,
                };
                let fam = out.last_mut().ok_or_else(|| {
                    format!("{FRONTIER}:{}: a row before any family's name", i + 1)
                })?;
                fam.1.push(p);
            }
            _ => {
                return Err(format!(
                    "{FRONTIER}:{}: not a frontier line: {line:?}",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

/// The breach-minutes of the `line` (points in the knob's order, joined straight) at
/// `hours` replica-hours: the fewest where several segments reach that cost; `None` outside.
fn line_at(line: &[FrontierPoint], hours: f64) -> Option<f64> {
    (line.windows(2))
        .filter_map(|w| {
            let (a, b) = (w[0], w[1]);
            let (lo, hi) = (a.hours.min(b.hours), a.hours.max(b.hours));
            if !(lo..=hi).contains(&hours) {
                return None;
            }
            Some(match hi - lo > 0.0 {
                true => a.breach + (hours - a.hours) / (b.hours - a.hours) * (b.breach - a.breach),
                false => a.breach.min(b.breach),
            })
        })
        .reduce(f64::min)
}

impl Data {
    /// README's frontier comparison: each `predictive` point against the reactive policy's
    /// line at the same replica-hours, and a sentence saying how far below (or above) it lies.
    fn predictive_frontier(&self) -> Result<String, String> {
        let fams = parse_frontier(&self.frontier)?;
        let fam = |n: &str| {
            (fams.iter())
                .find(|(f, _)| f == n)
                .map(|(_, p)| p.as_slice())
                .ok_or_else(|| format!("{FRONTIER}: no family {n}"))
        };
        let (reactive, predictive) = (fam("cpu-target")?, fam("predictive")?);
        let mut s = String::from(
            "| target | predictive: replica-h / breach-min | default policy at that target | default policy's line at the same replica-h: breach-min | predictive's difference |\n|---:|---|---|---:|---:|\n",
        );
        // Differences judged as printed (one decimal; no "-0.0"), so the sentence below agrees
        // with the table.
        let shown = |d: f64| (d * 10.0).round() / 10.0 + 0.0;
        let mut diffs = Vec::new();
        for p in predictive {
            let same = (reactive.iter()).find(|r| r.value == p.value);
            let at = line_at(reactive, p.hours);
            let diff = at.map(|b| p.breach - b);
            diffs.extend(diff.map(|d| (d, p.value)));
            s.push_str(&format!(
                "| {} | {:.1} / {} | {} | {} | {} |\n",
                p.value,
                p.hours,
                p.breach,
                same.map_or("–".into(), |r| format!("{:.1} / {}", r.hours, r.breach)),
                at.map_or("outside its range".into(), |b| format!("{b:.1}")),
                diff.map_or("–".into(), |d| format!("{:+.1}", shown(d))),
            ));
        }
        let below: Vec<_> = diffs.iter().filter(|(d, _)| shown(*d) < 0.0).collect();
        let above: Vec<_> = diffs.iter().filter(|(d, _)| shown(*d) > 0.0).collect();
        let outside = predictive.len() - diffs.len();
        let most = |v: &[&(f64, f64)], what: &str| {
            v.iter()
                .max_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
                .map_or(String::new(), |(d, t)| {
                    format!(
                        " (at most {:.1} breach-minutes {what} at the same replica-hours, at {t})",
                        d.abs()
                    )
                })
        };
        let on = diffs.len() - below.len() - above.len();
        let outside = match outside {
            0 => String::new(),
            n => format!(", and {n} outside the line's range of replica-hours"),
        };
        s.push_str(&format!(
            "\n{}\n",
            wrap(&format!(
                "Of the {} predictive points, {} lie below the default policy's line{}, {} above \
                 it{} and {on} on it{outside}.",
                predictive.len(),
                below.len(),
                most(&below, "fewer"),
                above.len(),
                most(&above, "more"),
            ))
            .trim_end()
        ));
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> Data {
        Data {
            traces: Vec::new(),
            all_policies: Vec::new(),
            bench: Value::Null,
            faults: serde_json::json!({
                "injected": 5, "duplicates": 0, "lost_actions": 0, "foreign_touched": 0,
                "converged": 2, "scenarios": 2, "by_test": {"faults": 1, "crash": 1}
            }),
            frontier: String::new(),
        }
    }

    #[test]
    fn a_section_is_rewritten_with_the_markers_indentation_and_the_rest_kept() {
        let text = "intro\n- item\n\n  <!-- generated:faults-line (x) -->\n  old\n  <!-- /generated -->\nend\n";
        let (new, n, stale) = regenerate("f.md", text, &data()).unwrap();
        assert_eq!(n, 1);
        assert_eq!(stale.len(), 1);
        assert!(
            stale[0].starts_with("f.md:5: section faults-line:"),
            "{stale:?}"
        );
        let want = "intro\n- item\n\n  <!-- generated:faults-line (x) -->\n  ```\n  faults: 5 injected, 0 duplicates, 0 lost actions, 0 foreign touched, 2 converged/2\n  ```\n  <!-- /generated -->\nend\n";
        assert_eq!(new, want);
        let (again, _, stale) = regenerate("f.md", &new, &data()).unwrap();
        assert!(stale.is_empty(), "{stale:?}");
        assert_eq!(again, new);
    }

    #[test]
    fn bad_markers_and_data_are_errors_naming_file_and_line() {
        let open = "a\n<!-- generated:faults-line -->\nb\n";
        let e = regenerate("R.md", open, &data()).err().unwrap();
        assert!(e.starts_with("R.md:2: section faults-line has no"), "{e}");
        let unknown = "<!-- generated:nope -->\n<!-- /generated -->\n";
        let e = regenerate("R.md", unknown, &data()).err().unwrap();
        assert!(e.starts_with("R.md:1: section nope: no such"), "{e}");
        let nested =
            "<!-- generated:faults-line -->\n<!-- generated:faults-line -->\n<!-- /generated -->\n";
        let e = regenerate("R.md", nested, &data()).err().unwrap();
        assert!(e.starts_with("R.md:2: a section opens inside"), "{e}");
        let bench = "<!-- generated:bench-table -->\n<!-- /generated -->\n";
        let e = regenerate("R.md", bench, &data()).err().unwrap();
        assert!(
            e.contains("benches/results/backtest.json: `year_minutes`"),
            "{e}"
        );
    }

    #[test]
    fn a_frontier_is_read_and_its_line_joined_straight() {
        let text = "frontier of target on t: oracle 1 replica-hours\nthe baselines keep...\n\na\n    target  replica_hours   x_oracle  breach_minutes  actions  max_replicas\n        55          100.0     1.000x              10        5             4\n        60           80.0     0.800x              30        5             4\n";
        let f = parse_frontier(text).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "a");
        let line = &f[0].1;
        assert_eq!(line.len(), 2);
        assert_eq!(line_at(line, 90.0), Some(20.0));
        assert_eq!(line_at(line, 100.0), Some(10.0));
        assert_eq!(line_at(line, 120.0), None);
        let e = parse_frontier(&text.replace("30", "x3")).unwrap_err();
        assert!(e.ends_with(":7: \"x3\" is not a number"), "{e}");
    }

    #[test]
    fn a_part_over_its_limit_prints_value_and_limit_apart() {
        let p = Part::new("replica-hours", 5.04, 5.0, 1, "percentage points").percent();
        assert_eq!(
            p.words(),
            "replica-hours +5.04 % (≤ +5.00 %: over by 0.04 percentage points)"
        );
        let met = Part::new("breach-minutes", 13.0, 19.5, 1, "breach-minutes").whole();
        assert_eq!(met.words(), "breach-minutes 13 (≤ 19.5: met)");
        let tiny = Part::new("replica-hours", 1.0 + 1e-8, 1.0, 1, "replica-hours");
        assert!(!tiny.ok());
        assert!(
            tiny.words()
                .ends_with("over by less than 0.000001 replica-hours)"),
            "{}",
            tiny.words()
        );
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn ranges_and_counts_print_as_the_docs_write_them() {
        let b = serde_json::json!({"a": [0.85, 0.88], "b": [28.3, 28.3], "c": [2.94, 3.01]});
        assert_eq!(range(&b, "a", 2).unwrap(), "0.85–0.88");
        assert_eq!(range(&b, "b", 1).unwrap(), "28.3");
        assert_eq!(range(&b, "c", 1).unwrap(), "2.9–3.0");
        assert_eq!(thousands(525_600), "525,600");
        assert_eq!(thousands(999), "999");
        assert_eq!(of_n(5, 5), "all 5");
        assert_eq!(of_n(4, 5), "4 of the 5");
    }
}
