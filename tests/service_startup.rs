//! The built `elasticrds run` as a new operator first meets it (faults reported in one issue):
//! - `/readyz` is never 200 while RDS is unreachable (clusters skipped by backoff are not
//!   observed), and becomes 200 against moto and ministack;
//! - `--listen` takes a host name that resolves (`localhost:PORT`) and refuses one that does not,
//!   with exit 2;
//! - text logs carry no ANSI colour codes when stderr is a pipe;
//! - a missing region or missing credentials ends `run` at start (exit 2, a hint), with or
//!   without endpoint overrides, instead of a loop retrying forever; `status` without a region
//!   and without an endpoint override is fatal with the hint too;
//! - `run --help` and `backtest --help` explain `--log-format`, `--output`, `--dry-run` and
//!   `--observe-only`.

mod support;

use std::net::ToSocketAddrs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = "st:\n  master_node: {identifier: snap-st, instance_id: st-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: st-s01, instance_class: db.t3.micro}\n";

fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("elasticrds.yaml"), CONFIG).expect("write config");
    dir
}

/// `http://127.0.0.1:PORT` where nothing listens.
fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", support::free_port())
}

/// GET `path` from `addr`; the status code, `None` when no answer came.
fn status_at(addr: impl ToSocketAddrs, path: &str) -> Option<u16> {
    support::get(addr, path).ok().map(|r| r.status)
}

fn status(port: u16, path: &str) -> Option<u16> {
    status_at(("127.0.0.1", port), path)
}

/// Sum of a counter's samples in /metrics (0 when absent or unreachable).
fn counter(port: u16, name: &str) -> f64 {
    support::http_request(port, "GET", "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A running `elasticrds run`, its stderr in a file; killed on drop.
struct Run {
    child: Child,
    log: std::path::PathBuf,
}

impl Run {
    fn spawn(mut cmd: Command, dir: &Path, args: &[&str]) -> Run {
        let log = dir.join("run.log");
        let f = std::fs::File::create(&log).expect("log file");
        // In the config's directory: no ./policies there (the cluster is observed only).
        let child = cmd
            .current_dir(dir)
            .arg("--config")
            .arg(dir.join("elasticrds.yaml"))
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().expect("clone")))
            .stderr(Stdio::from(f))
            .spawn()
            .expect("spawn elasticrds run");
        Run { child, log }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// The exit status if the process ends within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        self.wait(Duration::from_secs(30))
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn readyz_is_never_ready_while_rds_is_unreachable() {
    let dir = config_dir();
    let port = support::free_port();
    let dead = dead_endpoint();
    let mut cmd = support::elasticrds(Some(&dead));
    cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", &dead);
    let listen = format!("127.0.0.1:{port}");
    let mut run = Run::spawn(cmd, dir.path(), &["--interval", "1s", "--listen", &listen]);
    assert!(
        support::wait_for_port(port, Duration::from_secs(30)),
        "no listener\n{}",
        run.log()
    );
    // Poll across at least six ticks: failures back the cluster off (1, 2, 4 intervals), so
    // some of these ticks skip it; none of them may read as ready.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut polls = Vec::new();
    while counter(port, "elasticrds_ticks_total") < 6.0 {
        assert!(Instant::now() < deadline, "too few ticks\n{}", run.log());
        polls.push(status(port, "/readyz"));
        std::thread::sleep(Duration::from_millis(200));
    }
    polls.push(status(port, "/readyz"));
    assert!(polls.len() > 10, "{polls:?}");
    assert!(
        polls.iter().all(|s| *s == Some(503)),
        "/readyz while RDS is unreachable: {polls:?}\n{}",
        run.log()
    );
    assert_eq!(status(port, "/healthz"), Some(200));
    assert_eq!(run.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn readyz_becomes_ready_against_moto_and_ministack() {
    let moto = support::Moto::start();
    let ms = support::Ministack::start();
    let rds = support::rds_client(&moto.endpoint());
    support::block_on(support::create_db_instance(&rds, "st-m01", "mysql"));
    let dir = config_dir();
    let port = support::free_port();
    let mut cmd = support::elasticrds(Some(&moto.endpoint()));
    cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", ms.endpoint());
    let listen = format!("127.0.0.1:{port}");
    let mut run = Run::spawn(
        cmd,
        dir.path(),
        &["--interval", "1s", "--observe-only", "--listen", &listen],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(port, "/readyz") != Some(200) {
        assert!(
            Instant::now() < deadline,
            "never ready against moto\n{}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(run.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn listen_takes_a_host_name_that_resolves() {
    let dir = config_dir();
    let port = support::free_port();
    let mut run = Run::spawn(
        support::elasticrds(Some(&dead_endpoint())),
        dir.path(),
        &["--interval", "1s", "--listen", &format!("localhost:{port}")],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while status_at(("localhost", port), "/healthz") != Some(200) {
        if let Ok(Some(s)) = run.child.try_wait() {
            panic!(
                "run exited ({s}) with --listen localhost:{port}\n{}",
                run.log()
            );
        }
        assert!(Instant::now() < deadline, "no /healthz\n{}", run.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(run.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn listen_refuses_a_host_name_that_does_not_resolve() {
    let dir = config_dir();
    for (listen, want) in [
        ("no-such-host.invalid:9187", "cannot resolve"),
        ("localhost", "--listen"),
    ] {
        let mut run = Run::spawn(
            support::elasticrds(Some(&dead_endpoint())),
            dir.path(),
            &["--listen", listen],
        );
        let code = run.wait(Duration::from_secs(60)).and_then(|s| s.code());
        let log = run.log();
        assert_eq!(code, Some(2), "--listen {listen}: {log}");
        assert!(
            log.contains(want),
            "--listen {listen}: want {want:?}: {log}"
        );
        assert!(log.contains(listen), "names the address: {log}");
    }
}

#[test]
fn text_logs_have_no_colour_codes_when_stderr_is_a_pipe() {
    let dir = config_dir();
    let dead = dead_endpoint();
    for no_color in [None, Some("1")] {
        let mut cmd = support::elasticrds(Some(&dead));
        cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", &dead)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd
            .current_dir(dir.path())
            .arg("--config")
            .arg(dir.path().join("elasticrds.yaml"))
            .args(["run", "--once"])
            .stdin(Stdio::null())
            .output()
            .expect("run --once");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("WARN"), "a warning was logged: {err}");
        assert!(err.contains("cluster observed only"), "{err}");
        assert!(
            !err.contains("\x1b["),
            "colour codes in piped logs (NO_COLOR={no_color:?}): {err:?}"
        );
    }
}

/// `elasticrds` with a cleared environment: HOME a temp dir (no profile files), instance
/// metadata at a dead loopback port, plus `vars`.
fn bare(home: &Path, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_elasticrds"));
    cmd.env_clear()
        .env("HOME", home)
        .env("RUST_LOG", "warn")
        .env(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{}", support::free_port()),
        );
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

#[test]
fn missing_region_or_credentials_ends_run_at_start_with_a_hint() {
    let dir = config_dir();
    let home = tempfile::tempdir().expect("home");
    let dead = dead_endpoint();
    let creds: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let region: &[(&str, &str)] = &[("AWS_REGION", "us-east-1")];
    let endpoints: &[(&str, &str)] = &[
        ("AWS_ENDPOINT_URL_RDS", &dead),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", &dead),
    ];
    type Vars<'a> = Vec<(&'a str, &'a str)>;
    let cases: [(&str, Vars, &str); 5] = [
        ("no region", creds.to_vec(), "AWS_REGION"),
        (
            "no region, endpoints",
            [creds, endpoints].concat(),
            "AWS_REGION",
        ),
        ("no credentials", region.to_vec(), "AWS_PROFILE"),
        (
            "no credentials, endpoints",
            [region, endpoints].concat(),
            "AWS_PROFILE",
        ),
        ("nothing", Vec::new(), "AWS_REGION"),
    ];
    for (what, vars, hint) in cases {
        let port = support::free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut run = Run::spawn(
            bare(home.path(), &vars),
            dir.path(),
            &["--interval", "1s", "--listen", &listen],
        );
        let code = run.wait(Duration::from_secs(30)).and_then(|s| s.code());
        let log = run.log();
        assert_eq!(code, Some(2), "{what}: run must end at start: {log}");
        assert!(log.contains(hint), "{what}: want the hint {hint:?}: {log}");
        assert!(!log.contains("tick"), "{what}: no tick may start: {log}");
    }
}

#[test]
fn status_without_region_or_endpoint_override_is_fatal_with_the_hint() {
    let dir = config_dir();
    let home = tempfile::tempdir().expect("home");
    let out: Output = bare(
        home.path(),
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    )
    .arg("--config")
    .arg(dir.path().join("elasticrds.yaml"))
    .args(["status", "st"])
    .output()
    .expect("status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no AWS region configured"), "{err}");
    assert!(err.contains("(fatal)"), "{err}");
}

/// The help block of `option` in a `--help` text: its line and the indented lines under it.
fn option_help(help: &str, option: &str) -> String {
    let mut lines = help
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(option));
    let first = lines.next().unwrap_or_default().to_string();
    let rest: Vec<&str> = lines
        .take_while(|l| !l.trim_start().starts_with('-') && !l.trim().is_empty())
        .collect();
    format!("{first}\n{}", rest.join("\n"))
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_elasticrds"))
        .args(args)
        .arg("--help")
        .output()
        .expect("--help");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn help_explains_log_format_output_dry_run_and_observe_only() {
    let run = help(&["run"]);
    let log_format = option_help(&run, "--log-format");
    assert!(
        log_format.contains("stderr") && log_format.contains("JSON"),
        "{log_format}"
    );
    for option in ["--dry-run", "--observe-only"] {
        let h = option_help(&run, option);
        for word in ["Reads", "AWS", "HAProxy", "tags"] {
            assert!(h.contains(word), "run {option} help lacks {word:?}:\n{h}");
        }
    }
    assert!(option_help(&run, "--dry-run").contains("dry_run"));
    assert!(option_help(&run, "--listen").contains("host name"));
    let backtest = help(&["backtest"]);
    let output = option_help(&backtest, "--output");
    assert!(
        output.contains("stdout") && output.contains("JSON"),
        "{output}"
    );
}
