//! Every command example in README.md and docs/*.md runs as shown (issue "Ownership and trust",
//! section 3). This file owns the parsing of the examples, running them and the regenerate mode.
//!
//! An example is a line `$ COMMAND` inside a fenced block, followed by its output (stdout, then
//! stderr) up to the next `$ ` line, an `[exit N]` line or the end of the block; `$ echo $?`
//! followed by a number gives the previous command's exit code. Without either, the exit code
//! must be 0. An `elasticrds` command with a redirection or a pipe runs under `sh -c` with the
//! built binary first on PATH. Per markdown file, the examples run in document order, against one fresh moto
//! (RDS, with subnet group `qiita` and snapshot `qiitabase201305111613`) and one ministack
//! (CloudWatch), with cwd a temp dir holding a copy of `docs/examples/`. `elasticrds` commands
//! run the built binary (leading `VAR=value` words become its environment); any other command
//! (`cat`, `head`) runs under `sh -c`.
//!
//! Set-up the reader is told in prose is done by HTML comments, `<!-- docs-examples: STEP -->`:
//! `file PATH` (the next fenced block must equal `docs/examples/PATH`), `run ARGS` (elasticrds,
//! must exit 0), `foreign-replica ID CLASS SOURCE`, `instance ID ENGINE` (a standalone DB
//! instance), `cd DIR` (the following examples run in DIR, made inside the temp dir, empty
//! unless it is one of docs/examples/'s), `delete-instance ID`, `delete-snapshot ID`,
//! `cpu-csv FILE ID=VALUE...` (five one-minute CPU samples per instance, ending a minute before
//! now), `cloudwatch-cpu ID=VALUE...` (the same, put to ministack), `parameter-group NAME`,
//! `modify-instance ID parameter_group NAME` (a change made by hand) and `fault OPERATION CODE
//! COUNT` (from then on `elasticrds` goes through the fault-injecting proxy, which answers the
//! next COUNT calls of OPERATION with RDS's error CODE: what no emulator does).
//!
//! Outputs are compared after [`normalise`]: RFC 3339 times, non-zero durations (`4m38s`) and
//! JSON `*_secs` numbers vary from run to run. Endpoints, ports and ARNs need no rule (the
//! examples print none but the fixed `127.0.0.1:9`).
//!
//! `UPDATE_DOCS=1 cargo test --test docs_examples` rewrites, in the markdown, the output and exit
//! code of every example whose normalised output differs (commands and set-up are kept).
//!
//! Never run: README's two set-up commands (`cargo run --release -- demo`, `scripts/test.sh`),
//! which are not `$ ` examples and are refused by [`NEVER_RUN`] should they become one.

mod faultkit;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{block_on, Ministack, Moto};

/// Commands the docs show that this test must not run (they build or test the whole project).
const NEVER_RUN: &[&str] = &["cargo run --release -- demo", "scripts/test.sh"];
const SNAPSHOT: &str = "qiitabase201305111613";
/// An example still running after this long fails (e.g. a `$ elasticrds run` without `--once`).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const DIRECTIVE: &str = "<!-- docs-examples:";

/// How an example states its exit code.
#[derive(Debug, Clone, PartialEq)]
enum ExitMark {
    /// `[exit N]` at this line index.
    Bracket(usize),
    /// `$ echo $?` then the number at this line index.
    Echo(usize),
    /// Nothing: 0 expected; a rewrite inserts `[exit N]` after the output when it is not 0.
    Implicit,
}

#[derive(Debug, Clone)]
struct Example {
    /// Index of the `$ ` line.
    line: usize,
    command: String,
    /// Output lines `[out_start, out_end)`, trailing blank lines left out.
    out_start: usize,
    out_end: usize,
    expected: String,
    code: i32,
    exit: ExitMark,
}

#[derive(Debug, Clone)]
enum Step {
    Example(Example),
    /// A set-up directive (its words) at a line index.
    Setup(usize, String),
    /// A fenced block shown as the content of `docs/examples/PATH`.
    ShownFile(usize, String, String),
}

fn is_fence(l: &str) -> bool {
    l.trim_start().starts_with("```")
}

fn directive(l: &str) -> Option<String> {
    let rest = l.trim().strip_prefix(DIRECTIVE)?.strip_suffix("-->")?;
    Some(rest.trim().to_string())
}

/// The steps of a markdown file, in document order.
fn parse(lines: &[String]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut pending_file: Option<(usize, String)> = None;
    let mut i = 0;
    while i < lines.len() {
        if let Some(d) = directive(&lines[i]) {
            match d.strip_prefix("file ") {
                Some(p) => pending_file = Some((i, p.trim().to_string())),
                None => steps.push(Step::Setup(i, d)),
            }
            i += 1;
            continue;
        }
        if !is_fence(&lines[i]) {
            i += 1;
            continue;
        }
        let end = (i + 1..lines.len())
            .find(|&j| is_fence(&lines[j]))
            .unwrap_or(lines.len());
        if let Some((at, path)) = pending_file.take() {
            steps.push(Step::ShownFile(at, path, block_text(&lines[i + 1..end])));
        } else {
            steps.extend(
                parse_block(lines, i + 1, end)
                    .into_iter()
                    .map(Step::Example),
            );
        }
        i = end + 1;
    }
    steps
}

fn block_text(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The examples of the fenced block whose lines are `[start, end)`.
fn parse_block(lines: &[String], start: usize, end: usize) -> Vec<Example> {
    let mut out: Vec<Example> = Vec::new();
    let mut i = start;
    while i < end {
        let Some(cmd) = lines[i].strip_prefix("$ ") else {
            i += 1;
            continue;
        };
        if cmd.trim() == "echo $?" {
            if let Some(prev) = out.last_mut() {
                prev.exit = ExitMark::Echo(i + 1);
                prev.code = lines[i + 1]
                    .trim()
                    .parse()
                    .expect("number after `$ echo $?`");
            }
            i += 2;
            continue;
        }
        let (ex, next) = parse_example(lines, i, end, cmd.trim());
        out.push(ex);
        i = next;
    }
    out
}

fn parse_example(lines: &[String], at: usize, end: usize, cmd: &str) -> (Example, usize) {
    let mut j = at + 1;
    while j < end && !lines[j].starts_with("$ ") && exit_code(&lines[j]).is_none() {
        j += 1;
    }
    let mut out_end = j;
    while out_end > at + 1 && lines[out_end - 1].trim().is_empty() {
        out_end -= 1;
    }
    let (code, exit, next) = match (j < end).then(|| exit_code(&lines[j])).flatten() {
        Some(c) => (c, ExitMark::Bracket(j), j + 1),
        None => (0, ExitMark::Implicit, j),
    };
    let ex = Example {
        line: at,
        command: cmd.to_string(),
        out_start: at + 1,
        out_end,
        expected: block_text(&lines[at + 1..out_end]),
        code,
        exit,
    };
    (ex, next)
}

fn exit_code(l: &str) -> Option<i32> {
    l.trim()
        .strip_prefix("[exit ")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/// What may differ between two runs of the same example: RFC 3339 times → `<time>`, non-zero
/// durations such as `33s`, `4m38s`, `1h2m0s` → `<duration>`, and the number after a JSON key
/// ending in `_secs"` → `<secs>`. Trailing whitespace is dropped.
fn normalise(text: &str) -> String {
    text.lines()
        .map(|l| normalise_line(l.trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn normalise_line(l: &str) -> String {
    let l = replace_times(l);
    // An age counts up while the examples run, from zero too ("available for 0s of 10m0s").
    let l = replace_words(&l).replace("available for 0s ", "available for <duration> ");
    match l.find("_secs\": ") {
        Some(k) if l[k + 8..].trim_end_matches(',').parse::<f64>().is_ok() => {
            let comma = if l.ends_with(',') { "," } else { "" };
            format!("{}<secs>{comma}", &l[..k + 8])
        }
        _ => l,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac]Z` → `<time>`.
fn replace_times(l: &str) -> String {
    let b = l.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let fits = i + shape.len() <= b.len()
            && shape.iter().zip(&b[i..]).all(|(s, c)| match s {
                b'd' => c.is_ascii_digit(),
                _ => s == c,
            });
        if !fits {
            out.push(l[i..].chars().next().expect("char"));
            i += l[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let mut j = i + shape.len();
        if b.get(j) == Some(&b'.') {
            j += 1;
            while b.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
        }
        if b.get(j) == Some(&b'Z') {
            j += 1;
        }
        out.push_str("<time>");
        i = j;
    }
    out
}

/// Replace every non-zero duration word (`33s`, `4m38s`, `1h2m0s`) by `<duration>`.
fn replace_words(l: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for c in l.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        out.push_str(if is_duration(&word) && word != "0s" {
            "<duration>"
        } else {
            &word
        });
        word.clear();
        if c != '\n' {
            out.push(c);
        }
    }
    out
}

fn is_duration(w: &str) -> bool {
    let mut rest = w;
    for unit in ['h', 'm', 's'] {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(unit) {
            rest = &rest[digits + 1..];
        }
    }
    rest.is_empty() && w.ends_with('s') && w.starts_with(|c: char| c.is_ascii_digit())
}

// ---------------------------------------------------------------------------------------------
// The world the examples run in

struct World {
    moto: Moto,
    cloudwatch: Ministack,
    dir: tempfile::TempDir,
    /// Where the examples run: the temp dir, or a directory in it after `cd DIR`.
    cwd: std::cell::RefCell<PathBuf>,
    /// The fault-injecting proxy in front of moto, once a `fault` step asked for it (with the
    /// runtime it runs on); `elasticrds` commands then go through it.
    faults: std::cell::RefCell<Option<(tokio::runtime::Runtime, faultkit::proxy::FaultProxy)>>,
}

fn examples_dir() -> PathBuf {
    support::repo_root().join("docs").join("examples")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for e in std::fs::read_dir(from).expect("read docs/examples") {
        let e = e.expect("dir entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy example file");
        }
    }
}

impl World {
    /// Fresh emulators, the subnet group and snapshot the config names, docs/examples/ copied.
    fn new() -> World {
        let moto = Moto::start();
        let cloudwatch = Ministack::start();
        let rds = support::rds_client(&moto.endpoint());
        block_on(async {
            support::create_subnet_group(&moto, &rds, "qiita").await;
            support::create_snapshot(&rds, SNAPSHOT).await;
        });
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&examples_dir(), dir.path());
        World {
            moto,
            cloudwatch,
            cwd: std::cell::RefCell::new(dir.path().to_path_buf()),
            dir,
            faults: std::cell::RefCell::new(None),
        }
    }

    fn elasticrds(&self, env: &[(String, String)], args: &[String]) -> Command {
        let endpoint = match &*self.faults.borrow() {
            Some((_, proxy)) => proxy.url(),
            None => self.moto.endpoint(),
        };
        let mut cmd = support::elasticrds(Some(&endpoint));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", self.cloudwatch.endpoint())
            .envs(env.iter().cloned())
            .args(args)
            .current_dir(self.cwd.borrow().as_path());
        cmd
    }

    /// Run one example's command; its stdout then stderr, and its exit code.
    fn run(&self, command: &str) -> (String, i32) {
        let words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
        let n_env = words.iter().take_while(|w| is_assignment(w)).count();
        let env: Vec<(String, String)> = words[..n_env]
            .iter()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let is_ours = words.get(n_env).map(String::as_str) == Some("elasticrds");
        let mut cmd = if is_ours && command.contains(['>', '|']) {
            // A redirection or a pipe: through sh, with the binary first on PATH and its
            // environment.
            let base = self.elasticrds(&env, &[]);
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(command)
                .current_dir(self.cwd.borrow().as_path());
            for (k, v) in base.get_envs() {
                match v {
                    Some(v) => c.env(k, v),
                    None => c.env_remove(k),
                };
            }
            let bin = Path::new(env!("CARGO_BIN_EXE_elasticrds"))
                .parent()
                .unwrap();
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", bin.display()));
            c
        } else if is_ours {
            self.elasticrds(&env, &words[n_env + 1..])
        } else {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(command)
                .current_dir(self.cwd.borrow().as_path());
            c
        };
        // Outputs go to files outside the example's directory, which the examples may list.
        let (stdout, stderr) = (output_file(), output_file());
        cmd.stdin(Stdio::null())
            .stdout(stdout.reopen().expect("stdout file"))
            .stderr(stderr.reopen().expect("stderr file"));
        let code = wait_bounded(cmd, command);
        let text = std::fs::read_to_string(stdout.path()).expect("read stdout")
            + &std::fs::read_to_string(stderr.path()).expect("read stderr");
        (text, code)
    }

    fn setup(&self, words: &[&str]) {
        let rds = support::rds_client(&self.moto.endpoint());
        match words {
            ["run", args @ ..] => {
                let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
                let out = self.elasticrds(&[], &args).output().expect("run set-up");
                assert!(
                    out.status.success(),
                    "set-up `elasticrds {}` failed: {out:?}",
                    args.join(" ")
                );
            }
            ["foreign-replica", id, class, source] => block_on(async {
                rds.create_db_instance_read_replica()
                    .db_instance_identifier(*id)
                    .source_db_instance_identifier(*source)
                    .db_instance_class(*class)
                    .send()
                    .await
                    .expect("CreateDBInstanceReadReplica (by hand)");
            }),
            ["delete-instance", id] => delete_instance(&rds, id),
            ["instance", id, engine] => block_on(support::create_db_instance(&rds, id, engine)),
            ["cd", dir] => {
                let to = self.dir.path().join(dir);
                std::fs::create_dir_all(&to).expect("create the examples' directory");
                *self.cwd.borrow_mut() = to;
            }
            ["delete-snapshot", id] => block_on(async {
                rds.delete_db_snapshot()
                    .db_snapshot_identifier(*id)
                    .send()
                    .await
                    .expect("DeleteDBSnapshot");
            }),
            ["cpu-csv", file, values @ ..] => {
                std::fs::write(self.cwd.borrow().join(file), cpu_csv(&samples(values)))
                    .expect("write cpu csv");
            }
            ["cloudwatch-cpu", values @ ..] => self.put_cpu(&samples(values)),
            ["parameter-group", name] => block_on(async {
                rds.create_db_parameter_group()
                    .db_parameter_group_name(*name)
                    .db_parameter_group_family("mysql8.0")
                    .description("docs example")
                    .send()
                    .await
                    .expect("CreateDBParameterGroup");
            }),
            ["modify-instance", id, "parameter_group", group] => block_on(async {
                rds.modify_db_instance()
                    .db_instance_identifier(*id)
                    .db_parameter_group_name(*group)
                    .apply_immediately(true)
                    .send()
                    .await
                    .expect("ModifyDBInstance (by hand)");
            }),
            ["fault", operation, code, count] => self.fault(operation, code, count),
            _ => panic!("unknown docs-examples step {words:?}"),
        }
    }

    /// `fault OPERATION CODE COUNT`: from now on `elasticrds` goes through the fault proxy,
    /// which answers the next COUNT calls of OPERATION with RDS error CODE.
    fn fault(&self, operation: &str, code: &str, count: &str) {
        let mut faults = self.faults.borrow_mut();
        if faults.is_none() {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let up: std::net::SocketAddr = ([127, 0, 0, 1], self.moto.port()).into();
            let proxy = rt
                .block_on(faultkit::proxy::FaultProxy::start(
                    faultkit::proxy::Service::Rds,
                    up,
                ))
                .expect("fault proxy");
            *faults = Some((rt, proxy));
        }
        let (_, proxy) = faults.as_ref().expect("proxy");
        let code: &'static str = Box::leak(code.to_string().into_boxed_str());
        let count = count.parse().expect("fault COUNT");
        proxy.add_rule(faultkit::proxy::Rule::new(
            operation,
            faultkit::proxy::Fault::Error(code),
            count,
        ));
    }

    fn put_cpu(&self, samples: &[(String, f64, i64)]) {
        let cw = support::cloudwatch_client(&self.cloudwatch.endpoint());
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        block_on(async {
            for (id, value, at) in samples {
                let datum = MetricDatum::builder()
                    .metric_name("CPUUtilization")
                    .value(*value)
                    .timestamp(aws_smithy_types::DateTime::from_secs(*at))
                    .dimensions(
                        Dimension::builder()
                            .name("DBInstanceIdentifier")
                            .value(id)
                            .build(),
                    )
                    .build();
                cw.put_metric_data()
                    .namespace("AWS/RDS")
                    .metric_data(datum)
                    .send()
                    .await
                    .expect("PutMetricData");
            }
        });
    }
}

fn output_file() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().expect("temp file")
}

/// Run `cmd` to its end, killing it (and failing) after [`COMMAND_TIMEOUT`]; its exit code.
fn wait_bounded(mut cmd: Command, command: &str) -> i32 {
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("run `{command}`: {e}"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for example") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{command}` still running after {COMMAND_TIMEOUT:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

fn delete_instance(rds: &aws_sdk_rds::Client, id: &str) {
    block_on(async {
        rds.delete_db_instance()
            .db_instance_identifier(id)
            .skip_final_snapshot(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DeleteDBInstance {id}: {e:?}"));
    });
}

/// `ID=VALUE` words → (instance, value, unix time): five one-minute samples each, the newest a
/// minute before now.
fn samples(values: &[&str]) -> Vec<(String, f64, i64)> {
    let minute = chrono::Utc::now().timestamp() / 60 * 60;
    let mut out = Vec::new();
    for back in (1..=5).rev() {
        for v in values {
            let (id, value) = v.split_once('=').expect("ID=VALUE");
            let value: f64 = value.parse().expect("a number");
            out.push((id.to_string(), value, minute - back * 60));
        }
    }
    out
}

fn cpu_csv(samples: &[(String, f64, i64)]) -> String {
    let mut s = String::from("timestamp,instance,metric,statistic,value\n");
    for (id, value, at) in samples {
        let t = chrono::DateTime::from_timestamp(*at, 0).expect("time");
        s.push_str(&format!(
            "{},{id},cpu,Average,{value:.1}\n",
            t.format("%Y-%m-%dT%H:%M:%SZ")
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Checking and rewriting

/// An example whose output or exit code differs from the doc.
struct Mismatch {
    example: Example,
    actual: String,
    code: i32,
}

/// Run every step of `doc` (a path relative to the repository); the mismatches.
fn run_doc(doc: &str, steps: &[Step]) -> Vec<Mismatch> {
    let world = World::new();
    let mut bad = Vec::new();
    for step in steps {
        match step {
            Step::Setup(_, d) => world.setup(&d.split_whitespace().collect::<Vec<_>>()),
            Step::ShownFile(at, path, text) => check_shown_file(doc, *at, path, text),
            Step::Example(ex) if NEVER_RUN.iter().any(|n| ex.command.starts_with(n)) => {
                eprintln!("{doc}:{}: not run: `{}`", ex.line + 1, ex.command);
            }
            Step::Example(ex) => {
                let (actual, code) = world.run(&ex.command);
                if code != ex.code || normalise(&actual) != normalise(&ex.expected) {
                    bad.push(Mismatch {
                        example: ex.clone(),
                        actual,
                        code,
                    });
                }
            }
        }
    }
    bad
}

fn check_shown_file(doc: &str, at: usize, path: &str, shown: &str) {
    let file = examples_dir().join(path);
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{doc}:{}: {}: {e}", at + 1, file.display()));
    assert_eq!(
        shown.trim_end(),
        text.trim_end(),
        "{doc}:{}: the block shown differs from docs/examples/{path}",
        at + 1
    );
}

fn report(doc: &str, m: &Mismatch) -> String {
    let ex = &m.example;
    let mut s = format!(
        "{doc}:{}: `$ {}`: exit {} (doc says {})\n",
        ex.line + 1,
        ex.command,
        m.code,
        ex.code
    );
    let (want, got) = (normalise(&ex.expected), normalise(&m.actual));
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    s.push_str(&diff(&w, &g));
    s
}

/// A line diff (longest common subsequence): `-` the doc's line, `+` the binary's.
fn diff(w: &[&str], g: &[&str]) -> String {
    let mut lcs = vec![vec![0usize; g.len() + 1]; w.len() + 1];
    for i in (0..w.len()).rev() {
        for j in (0..g.len()).rev() {
            lcs[i][j] = if w[i] == g[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut s) = (0, 0, String::new());
    while i < w.len() || j < g.len() {
        if i < w.len() && j < g.len() && w[i] == g[j] {
            s.push_str(&format!("   {}\n", w[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < g.len() && (i == w.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            s.push_str(&format!("  +{}\n", g[j]));
            j += 1;
        } else {
            s.push_str(&format!("  -{}\n", w[i]));
            i += 1;
        }
    }
    s
}

/// The doc's lines with the mismatching examples' outputs and exit codes replaced.
fn rewrite(lines: &[String], bad: &[Mismatch]) -> Vec<String> {
    let mut lines = lines.to_vec();
    let mut bad: Vec<&Mismatch> = bad.iter().collect();
    bad.sort_by_key(|m| std::cmp::Reverse(m.example.line));
    for m in bad {
        let ex = &m.example;
        let out: Vec<String> = m.actual.trim_end().lines().map(str::to_string).collect();
        let mut tail = Vec::new();
        match ex.exit {
            ExitMark::Bracket(k) => lines[k] = format!("[exit {}]", m.code),
            ExitMark::Echo(k) => lines[k] = m.code.to_string(),
            ExitMark::Implicit if m.code != 0 => tail.push(format!("[exit {}]", m.code)),
            ExitMark::Implicit => {}
        }
        lines.splice(ex.out_end..ex.out_end, tail);
        lines.splice(ex.out_start..ex.out_end, out);
    }
    lines
}

/// README.md and every docs/*.md with a `$ ` example.
fn docs() -> Vec<String> {
    let root = support::repo_root();
    let mut docs = vec!["README.md".to_string()];
    let mut more: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

fn read_lines(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(support::repo_root().join(doc)).expect("read doc");
    text.lines().map(str::to_string).collect()
}

#[test]
fn every_example_in_the_docs_runs_as_shown() {
    let update = std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1");
    let mut failures = String::new();
    let mut ran = 0;
    for doc in docs() {
        let lines = read_lines(&doc);
        let steps = parse(&lines);
        if !steps.iter().any(|s| matches!(s, Step::Example(_))) {
            continue;
        }
        ran += steps
            .iter()
            .filter(|s| matches!(s, Step::Example(_)))
            .count();
        let bad = run_doc(&doc, &steps);
        if update && !bad.is_empty() {
            let text = rewrite(&lines, &bad).join("\n") + "\n";
            std::fs::write(support::repo_root().join(&doc), text).expect("rewrite doc");
            eprintln!("{doc}: rewrote {} example(s)", bad.len());
        } else {
            failures.extend(bad.iter().map(|m| report(&doc, m)));
        }
    }
    assert!(ran >= 40, "only {ran} examples found in the docs");
    assert!(
        failures.is_empty(),
        "examples in the docs differ from the binary (normalised; `UPDATE_DOCS=1 cargo test --test docs_examples` rewrites them):\n{failures}"
    );
}

#[test]
fn the_parser_reads_commands_outputs_and_exit_codes() {
    let md = "text\n```\n$ elasticrds a\nout 1\n\n[exit 2]\n\n$ elasticrds b\n$ echo $?\n0\n```\n<!-- docs-examples: run status x -->\n<!-- docs-examples: file f.yaml -->\n```yaml\nk: v\n```\n";
    let lines: Vec<String> = md.lines().map(str::to_string).collect();
    let steps = parse(&lines);
    let Step::Example(a) = &steps[0] else {
        panic!("{steps:?}")
    };
    assert_eq!(
        (a.command.as_str(), a.expected.as_str(), a.code),
        ("elasticrds a", "out 1\n", 2)
    );
    let Step::Example(b) = &steps[1] else {
        panic!("{steps:?}")
    };
    assert_eq!(
        (b.expected.as_str(), b.code, &b.exit),
        ("", 0, &ExitMark::Echo(9))
    );
    assert!(matches!(&steps[2], Step::Setup(11, d) if d == "run status x"));
    assert!(matches!(&steps[3], Step::ShownFile(12, p, t) if p == "f.yaml" && t == "k: v\n"));
    let m = Mismatch {
        example: a.clone(),
        actual: "new\n".into(),
        code: 1,
    };
    let out = rewrite(&lines, &[m]);
    assert_eq!(out[2..6], ["$ elasticrds a", "new", "", "[exit 1]"]);
}

#[test]
fn the_normaliser_hides_times_and_durations_only() {
    assert_eq!(
        normalise("at: 2026-12-01T19:34:48.511759699Z, in 4m38s, out 0s, for 33s of 10m0s"),
        "at: <time>, in <duration>, out 0s, for <duration> of <duration>"
    );
    assert_eq!(
        normalise("c1s1 available for 0s of 10m0s, c1s2 available for 1s of 10m0s"),
        "c1s1 available for <duration> of <duration>, c1s2 available for <duration> of <duration>"
    );
    assert_eq!(
        normalise("  \"cooldown_remaining_in_secs\": 278,"),
        "  \"cooldown_remaining_in_secs\": <secs>,"
    );
    assert_eq!(
        normalise("cluster1s01 db.t1.micro 84.5 cron 0 25"),
        "cluster1s01 db.t1.micro 84.5 cron 0 25"
    );
}
