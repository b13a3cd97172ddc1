//! Backtest benchmark (a plain binary, `harness = false`; not a timed test):
//!
//!   cargo bench --bench backtest
//!
//! 1. one year of 1-minute samples (generated deterministically: a daily and weekly pattern,
//!    noise and bursts), written as CloudWatch export CSV, parsed, and replayed for one policy
//!    (policies/cpu-target.yaml) through the daemon's tick — goal ≤ 1 s in a release build;
//!    the same year with the three baselines as `elasticrds backtest` runs it;
//!    just before each of the year's runs, a fixed reference workload that has nothing to do
//!    with elasticrds is timed, and the median of the runs' ratios to it recorded (this shared
//!    machine runs at different speeds from hour to hour; the ratio is meant to tell a slow
//!    moment from a slower program, and is itself only as steady as the two workloads are
//!    alike);
//! 2. a 100-variant parameter sweep (CPU target × scale-in cooldown) of the same policy on the
//!    14-day trace tests/data/traces/rds_cpu_utilization_cc0c53.csv — goal ≤ 60 s.
//!
//! Prints the measured figures and, with `--bench`, records them in benches/results/backtest.json
//! (README's and docs/backtest.md's speed figures are generated from that file by
//! scripts/gen-docs). Each invocation replaces the file; with ELASTICRDS_BENCH_APPEND=1 it widens
//! the recorded ranges instead (run it three times that way for the usual "lo–hi" figures).
//! ELASTICRDS_BENCH_RESULTS=PATH writes elsewhere. The smoke run writes nothing.

use elasticrds::backtest::replay::WorldSetup;
use elasticrds::backtest::run::run_policy;
use elasticrds::backtest::trace::Trace;
use elasticrds::backtest::{backtest, load_policy, oracle, sweep, Options, FLOOR_REPLICAS};
use serde_json::{json, Value};
use std::alloc::{GlobalAlloc, Layout};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary's allocator (`elasticrds::alloc::Allocator`, see src/main.rs), counting allocations while [`COUNTING`]
/// is on (only around the allocation measurement, not the timed runs).
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { elasticrds::alloc::Allocator.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { elasticrds::alloc::Allocator.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { elasticrds::alloc::Allocator.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A deterministic year of 1-minute CPU-like samples (percent).
fn year_csv(minutes: i64) -> String {
    let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::with_capacity(30 * 525_600);
    out.push_str("timestamp,value\n");
    let mut burst = 0u32;
    for m in 0..minutes {
        let day = (m % 1440) as f64 / 1440.0;
        let weekday = (m / 1440) % 7 < 5;
        let base = 20.0 + 25.0 * (std::f64::consts::TAU * (day - 0.3)).sin().max(-0.6);
        let mut v = base * if weekday { 1.0 } else { 0.6 } + 4.0 * rnd();
        if burst == 0 && rnd() < 0.0005 {
            burst = 20 + (rnd() * 60.0) as u32;
        }
        if burst > 0 {
            burst -= 1;
            v += 30.0;
        }
        let t = start + chrono::Duration::minutes(m);
        let _ = writeln!(out, "{},{:.3}", t.format("%Y-%m-%d %H:%M:%S"), v.max(0.0));
    }
    out
}

/// A fixed workload that has nothing to do with elasticrds (sort 4 Mi pseudo-random numbers,
/// then sum every other one): timed just before each run of the year, so that a figure recorded
/// at a slow moment of a shared machine can be told from a slower program, as far as the two
/// workloads slow down alike (recordings show they do not entirely).
fn reference_workload(n: usize) -> Duration {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        })
        .collect();
    let t = Instant::now();
    v.sort_unstable();
    let sum = v
        .iter()
        .step_by(2)
        .fold(0u64, |a, &x| a.wrapping_add(x >> 8));
    let took = t.elapsed();
    std::hint::black_box(sum);
    took
}

/// The reference's size: 4 Mi numbers (the smoke run sorts 64 Ki: it only checks the code runs).
fn reference_size(bench: bool) -> usize {
    if bench {
        1 << 22
    } else {
        1 << 16
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// What one `--bench` invocation measured, for benches/results/backtest.json.
struct Figures {
    year_minutes: usize,
    year_csv_bytes: usize,
    parse: Duration,
    /// The three timed runs, sorted.
    runs: Vec<Duration>,
    allocations_per_minute: f64,
    full_backtest: Duration,
    /// The same year with policies/predictive.yaml (the forecast on), median of three.
    forecast_run: Duration,
    sweep_variants: usize,
    sweep_trace: String,
    sweep_minutes: usize,
    sweep_threads: usize,
    sweep: Duration,
    /// The reference workload, timed just before each of the year's runs (sorted).
    references: Vec<Duration>,
    /// Each run's time over the reference timed just before it (sorted): the speed of the
    /// machine in that moment divided out.
    ratios: Vec<f64>,
    /// The day of the invocation (UTC).
    day: String,
}

/// `[x, x]` in seconds, rounded to 0.1 ms.
fn secs_range(d: Duration) -> Value {
    let s = (d.as_secs_f64() * 1e4).round() / 1e4;
    json!([s, s])
}

impl Figures {
    fn to_json(&self) -> Value {
        let us = self.runs[1].as_secs_f64() * 1e6 / self.year_minutes as f64;
        let us = (us * 1e3).round() / 1e3;
        let allocs = (self.allocations_per_minute * 100.0).round() / 100.0;
        // What the forecast adds per tick (one tick per simulated minute).
        let extra = (self.forecast_run.as_secs_f64() - self.runs[1].as_secs_f64()) * 1e6
            / self.year_minutes as f64;
        let extra = (extra.max(0.0) * 1e3).round() / 1e3;
        let ratio = (self.ratios[1] * 100.0).round() / 100.0;
        json!({
            "about": "written by `cargo bench --bench backtest` (see benches/backtest.rs); [low, high] over the invocations; scripts/gen-docs puts the figures into README.md and docs/backtest.md",
            "invocations": 1,
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "year_minutes": self.year_minutes,
            "year_csv_bytes": self.year_csv_bytes,
            "parse_secs": secs_range(self.parse),
            "one_policy_median_secs": secs_range(self.runs[1]),
            "one_policy_run_secs": [secs_range(self.runs[0])[0], secs_range(self.runs[2])[0]],
            "us_per_minute": [us, us],
            "allocations_per_minute": [allocs, allocs],
            "full_backtest_secs": secs_range(self.full_backtest),
            "forecast_one_policy_median_secs": secs_range(self.forecast_run),
            "forecast_us_per_tick": [extra, extra],
            "sweep_variants": self.sweep_variants,
            "sweep_trace": self.sweep_trace,
            "sweep_minutes": self.sweep_minutes,
            "sweep_threads": self.sweep_threads,
            "sweep_secs": secs_range(self.sweep),
            "reference_secs": secs_range(self.references[1]),
            "year_over_reference": [ratio, ratio],
            "recorded_on": self.day,
        })
    }
}

/// `new` with every `[low, high]` widened to cover `old`'s, and the invocations added up.
fn widen(old: &Value, mut new: Value) -> Value {
    let map = new.as_object_mut().expect("an object");
    for (k, v) in map.iter_mut() {
        let (Some(n), Some(o)) = (v.as_array(), old[k].as_array()) else {
            continue;
        };
        let f = |a: &Vec<Value>, i: usize| a.get(i).and_then(Value::as_f64);
        if let (Some(nl), Some(nh), Some(ol), Some(oh)) = (f(n, 0), f(n, 1), f(o, 0), f(o, 1)) {
            *v = json!([nl.min(ol), nh.max(oh)]);
        }
    }
    // The days of the invocations: the first's and the last's.
    if let (Some(first), Some(last)) = (old["recorded_on"].as_str(), map.get("recorded_on")) {
        let first = first.split(" to ").next().unwrap_or(first);
        if last.as_str() != Some(first) {
            let both = format!("{first} to {}", last.as_str().unwrap_or_default());
            map.insert("recorded_on".into(), json!(both));
        }
    }
    let before = old["invocations"].as_u64().unwrap_or(0);
    map.insert("invocations".into(), json!(before + 1));
    new
}

/// Write the figures to benches/results/backtest.json (or $ELASTICRDS_BENCH_RESULTS).
fn record(repo: &std::path::Path, figures: &Figures) {
    let path = std::env::var_os("ELASTICRDS_BENCH_RESULTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("benches/results/backtest.json"));
    let mut value = figures.to_json();
    if std::env::var_os("ELASTICRDS_BENCH_APPEND").is_some_and(|v| v == "1") {
        let old = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(old) = old {
            value = widen(&old, value);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the results directory");
    }
    let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    println!(
        "recorded in {} (scripts/gen-docs updates the docs)",
        path.display()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // in the dev profile: then it is a quick smoke run of the same code (a week, 4 variants),
    // whose times are not measurements.
    let bench = std::env::args().any(|a| a == "--bench");
    let (minutes, n_variants) = if bench { (525_600, 100) } else { (7 * 1440, 4) };
    if !bench {
        println!("smoke run (no --bench: not a measurement; use `cargo bench --bench backtest`)");
    }
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let policy_text = std::fs::read_to_string(repo.join("policies/cpu-target.yaml"))
        .expect("policies/cpu-target.yaml");
    let case = load_policy(
        "cpu-target",
        "policies/cpu-target.yaml",
        &policy_text,
        None,
        4,
    )
    .expect("the default policy parses");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    // 1. One year, one policy.
    let csv = year_csv(minutes);
    let t = Instant::now();
    let trace = Trace::parse("year.csv", &csv).expect("generated trace parses");
    let parse = t.elapsed();
    let opts = Options::default();
    let demand = Arc::new(opts.demand(&trace));
    let initial = oracle::initial_replicas(&demand, FLOOR_REPLICAS, &opts.model) as usize;
    let setup = WorldSetup::new(case.spec.clone(), demand.clone(), &opts.model, initial).unwrap();
    // Three timed runs (the machine is noisy): the median is the figure, the spread is shown.
    // The reference workload is timed just before each run, so that each run's ratio to it
    // is taken at the machine's speed of that moment.
    let mut times = Vec::new();
    let mut references = Vec::new();
    let mut ratios = Vec::new();
    let mut score = None;
    for _ in 0..3 {
        let r = reference_workload(reference_size(bench));
        let t = Instant::now();
        let (s, _) = rt.block_on(run_policy(&setup, &case.case, false)).unwrap();
        let took = t.elapsed();
        times.push(took);
        references.push(r);
        ratios.push(took.as_secs_f64() / r.as_secs_f64());
        score = Some(s);
    }
    let score = score.unwrap();
    times.sort();
    references.sort();
    ratios.sort_by(f64::total_cmp);
    println!(
        "reference: a fixed workload (`reference_workload`) in {} (median of the three timed before each run)",
        secs(references[1])
    );
    let one = times[1];
    // One more run, untimed, counting heap allocations.
    COUNTING.store(true, Ordering::Relaxed);
    rt.block_on(run_policy(&setup, &case.case, false)).unwrap();
    COUNTING.store(false, Ordering::Relaxed);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    println!(
        "year: {} samples ({} bytes of CSV) parsed in {}",
        trace.rows,
        csv.len(),
        secs(parse)
    );
    println!(
        "year: one policy (cpu-target) replayed over {} minutes in {} ({:.2} µs per simulated minute; goal <= 1 s) -> {:.0} replica-hours, {} breach-minutes, {} actions",
        demand.len(),
        secs(one),
        one.as_secs_f64() * 1e6 / demand.len() as f64,
        score.replica_hours,
        score.breach_minutes,
        score.actions
    );
    println!(
        "year: runs {} / {} / {} (min / median / max; each over the reference timed just before it: median {:.2} x, {:.2}–{:.2}); {:.1} heap allocations per simulated minute",
        secs(times[0]),
        secs(times[1]),
        secs(times[2]),
        ratios[1],
        ratios[0],
        ratios[2],
        allocations as f64 / demand.len() as f64
    );
    let t = Instant::now();
    let report = rt
        .block_on(backtest(&trace, std::slice::from_ref(&case), &opts))
        .unwrap();
    let full_backtest = t.elapsed();
    println!(
        "year: the full backtest (policy + oracle + the reactive baselines + static) in {}",
        secs(full_backtest)
    );
    for s in &report.scores {
        println!(
            "  {:<18} {:>9.0} replica-hours {:>6} breach-minutes {:>6} actions",
            s.name, s.replica_hours, s.breach_minutes, s.actions
        );
    }

    let forecast_run = forecast_year(&rt, &repo, &setup);
    println!(
        "year: the same with policies/predictive.yaml (the forecast on) in {} (median of three; {:.2} µs more per tick; goal <= 1 ms)",
        secs(forecast_run),
        (forecast_run.as_secs_f64() - one.as_secs_f64()).max(0.0) * 1e6 / demand.len() as f64
    );

    // 2. 100-variant sweep on a real 14-day trace.
    let path = repo.join("tests/data/traces/rds_cpu_utilization_cc0c53.csv");
    let trace = Trace::load(&path).unwrap_or_else(|e| panic!("{e} (the shared traces are needed)"));
    let variants = sweep::variants(&case, n_variants).unwrap();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    let scores = sweep::run_all(&trace, &variants, &opts, threads).unwrap();
    let took = t.elapsed();
    println!(
        "sweep: {} variants x {} minutes ({}) in {} on {threads} threads (goal <= 60 s)",
        scores.len(),
        trace.minutes(),
        trace.name,
        secs(took)
    );
    if bench {
        let figures = Figures {
            year_minutes: demand.len(),
            year_csv_bytes: csv.len(),
            parse,
            runs: times,
            allocations_per_minute: allocations as f64 / demand.len() as f64,
            full_backtest,
            forecast_run,
            sweep_variants: scores.len(),
            sweep_trace: trace.name.trim_end_matches(".csv").to_string(),
            sweep_minutes: trace.minutes(),
            sweep_threads: threads,
            sweep: took,
            references,
            ratios,
            day: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        };
        record(&repo, &figures);
    }
}

/// The year's one-policy run with policies/predictive.yaml (its cluster renamed to the
/// default policy's, so the same world serves): the median of three timed runs.
fn forecast_year(
    rt: &tokio::runtime::Runtime,
    repo: &std::path::Path,
    setup: &WorldSetup,
) -> Duration {
    let text = std::fs::read_to_string(repo.join("policies/predictive.yaml"))
        .expect("policies/predictive.yaml")
        .replace("cluster: cluster4", "cluster: cluster1");
    let case = load_policy("predictive", "policies/predictive.yaml", &text, None, 4)
        .expect("the predictive policy parses");
    let mut times: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            rt.block_on(run_policy(setup, &case.case, false)).unwrap();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[1]
}
