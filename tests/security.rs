//! Security of the service, through the built binary:
//! - `/metrics` and the health endpoints bind 127.0.0.1 unless told otherwise (checked on the
//!   process's own listening sockets in /proc, not by trying an address);
//! - no credentials in config, logs or metrics: a full `run` (scale-out included) with
//!   distinctive fake keys, RUST_LOG=debug, text and JSON logs; stdout, stderr and /metrics
//!   are searched for the key id, the secret and the session token; a config cannot carry keys;
//! - the HTTP server bounds header size, body size, idle and slow clients, and connection count
//!   (each check bounded in time; none measures speed).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::read_until_closed;

const KEY_ID: &str = "AKIATESTKEYDONOTLOG";
const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYDONOTLOGSECRET";
const TOKEN: &str = "FQoGZXIvYXdzEDONOTLOGTOKEN0123456789";

const CONFIG: &str = "cs:\n  master_node:\n    identifier: snap-cs\n    instance_id: cs-m01\n    instance_class: db.t3.micro\n  replica_nodes:\n    - {id: cs-s01, instance_class: db.t3.micro}\n    - {id: cs-s02, instance_class: db.t3.micro}\n";
const POLICY: &str =
    "cluster: cs\nmin_replicas: 2\nmax_replicas: 2\nrules:\n  - metric: cpu\n    target: 60\n";

struct Proc {
    child: Child,
}
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let config = dir.join("elasticrds.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let policies = dir.join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(policies.join("cs.yaml"), POLICY).unwrap();
    (config, policies)
}

/// `elasticrds run` (no --once) against a tripwire endpoint: ticks fail, the server runs.
fn serve(extra: &[&str]) -> (Proc, tempfile::TempDir, support::Tripwire) {
    let dir = tempfile::tempdir().unwrap();
    let (config, policies) = write_files(dir.path());
    let trip = support::Tripwire::new();
    let mut cmd = support::elasticrds(Some(&trip.endpoint()));
    cmd.env("AWS_ENDPOINT_URL_CLOUDWATCH", trip.endpoint())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .arg("--policies")
        .arg(&policies)
        .args(["--interval", "1h"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("spawn elasticrds run");
    (Proc { child }, dir, trip)
}

/// Local addresses of the TCP sockets process `pid` listens on, from /proc.
fn listening_addrs(pid: u32) -> Vec<String> {
    let mut inodes = Vec::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for e in rd.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy().to_string();
                if let Some(i) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.push(i.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" || !inodes.iter().any(|i| i == f[9]) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let ip = if v6 {
                format!("[{addr}]")
            } else {
                let n = u32::from_str_radix(addr, 16).unwrap();
                std::net::Ipv4Addr::from(n.to_le_bytes()).to_string()
            };
            out.push(format!("{ip}:{port}"));
        }
    }
    out
}

#[test]
fn metrics_and_health_bind_loopback_by_default() {
    let (p, _dir, _trip) = serve(&[]);
    let pid = p.child.id();
    let mut addrs = Vec::new();
    let up = (0..100).any(|_| {
        addrs = listening_addrs(pid);
        if addrs.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            false
        } else {
            true
        }
    });
    assert!(up, "the service never listened");
    assert_eq!(
        addrs,
        vec!["127.0.0.1:9187".to_string()],
        "listening on {addrs:?}"
    );
    let body = support::http_request(9187, "GET", "/healthz").expect("healthz");
    assert!(body.contains("ok"));
}

#[test]
fn an_explicit_listen_address_is_honoured() {
    let port = support::free_port();
    let (p, _dir, _trip) = serve(&["--listen", &format!("127.0.0.1:{port}")]);
    assert!(support::wait_for_port(port, Duration::from_secs(20)));
    assert_eq!(
        listening_addrs(p.child.id()),
        vec![format!("127.0.0.1:{port}")]
    );
}

fn run_with_keys(
    moto: &support::Moto,
    ministack: &support::Ministack,
    log_format: &str,
) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (config, policies) = write_files(dir.path());
    let port = support::free_port();
    let mut cmd = support::elasticrds(Some(&moto.endpoint()));
    support::aws_env(
        &mut cmd,
        Some(&moto.endpoint()),
        Some(&ministack.endpoint()),
    );
    cmd.env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("RUST_LOG", "debug")
        .arg("--config")
        .arg(&config)
        .arg("run")
        .arg("--policies")
        .arg(&policies)
        .args(["--interval", "1s", "--log-format", log_format])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        // Files, not pipes: a debug log fills a pipe nobody drains yet and stalls the child.
        .stdout(std::fs::File::create(dir.path().join("out.log")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err.log")).unwrap());
    let mut child = cmd.spawn().unwrap();
    // Let it tick and scale out (2 replicas wanted), then scrape and stop.
    let c = support::rds_client(&moto.endpoint());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = support::block_on(async {
            c.describe_db_instances()
                .send()
                .await
                .map(|o| {
                    o.db_instances()
                        .iter()
                        .filter(|i| {
                            i.db_instance_identifier()
                                .is_some_and(|s| s.starts_with("cs-s"))
                        })
                        .count()
                })
                .unwrap_or(0)
        });
        if n == 2 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    let metrics = support::http_request(port, "GET", "/metrics").unwrap_or_default();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let out = std::fs::read_to_string(dir.path().join("out.log")).unwrap();
    let err = std::fs::read_to_string(dir.path().join("err.log")).unwrap();
    (out, err, metrics)
}

#[test]
fn no_credentials_in_logs_or_metrics() {
    let moto = support::Moto::start();
    let ministack = support::Ministack::start();
    // Masters to act on (created directly on moto).
    let c = support::rds_client(&moto.endpoint());
    support::block_on(async {
        support::create_db_instance(&c, "cs-m01", "mysql").await;
    });
    for (i, format) in ["text", "json"].iter().enumerate() {
        if i == 1 {
            // Start the JSON run from the same initial fleet: drop the replicas again.
            support::block_on(async {
                for id in ["cs-s01", "cs-s02"] {
                    let _ = c
                        .delete_db_instance()
                        .db_instance_identifier(id)
                        .skip_final_snapshot(true)
                        .send()
                        .await;
                }
            });
        }
        let (out, err, metrics) = run_with_keys(&moto, &ministack, format);
        let all = format!("{out}\n{err}\n{metrics}");
        // The run did real work, logged at debug, and exported metrics: the search means something.
        assert!(err.len() > 1000, "{format}: too little log output:\n{err}");
        assert!(
            err.contains("cs-s01") || err.contains("cs-s02"),
            "{format}: the log shows no action:\n{err}"
        );
        assert!(metrics.contains("elasticrds_"), "{format}: no metrics");
        for secret in [KEY_ID, SECRET, TOKEN] {
            assert!(
                !all.contains(secret),
                "{format}: {secret} leaked:\n{}",
                all.lines()
                    .filter(|l| l.contains(secret))
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        // Not even a recognisable part of the secret (e.g. a truncated signing key).
        assert!(
            !all.contains(&SECRET[..20]),
            "{format}: part of the secret leaked"
        );
    }
}

#[test]
fn a_config_cannot_carry_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!("{CONFIG}  aws_secret_access_key: {SECRET}\n"),
    )
    .unwrap();
    let trip = support::Tripwire::new();
    let out = support::elasticrds(Some(&trip.endpoint()))
        .arg("--config")
        .arg(&config)
        .args(["status", "cs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("aws_secret_access_key"), "{err}");
    assert!(
        !err.contains(SECRET),
        "the rejected value was echoed: {err}"
    );
    assert_eq!(trip.hits(), 0);
}

fn server() -> (Proc, tempfile::TempDir, support::Tripwire, u16) {
    let port = support::free_port();
    let (p, d, t) = serve(&["--listen", &format!("127.0.0.1:{port}")]);
    assert!(support::wait_for_port(port, Duration::from_secs(20)));
    (p, d, t, port)
}

#[test]
fn oversized_headers_are_refused_and_the_server_keeps_serving() {
    let (_p, _d, _t, port) = server();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let big = "a".repeat(64 * 1024);
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    );
    let (resp, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed, "the connection stayed open after 64 KiB of headers");
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431"),
        "oversized headers answered: {resp:?}"
    );
    // Many headers are refused too.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    let (resp, closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(closed && !resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    assert!(support::http_request(port, "GET", "/healthz").is_ok());
}

#[test]
fn request_bodies_are_refused() {
    let (_p, _d, _t, port) = server();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = "x".repeat(1024 * 1024);
    let _ = write!(
        s,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (resp, _closed) = read_until_closed(&mut s, Duration::from_secs(10));
    assert!(resp.starts_with("HTTP/1.1 413"), "{resp:?}");
}

#[test]
fn slow_and_idle_clients_are_cut_off() {
    let (_p, _d, _t, port) = server();
    // Slowloris: a request line, then one header byte every second, never finishing.
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
        let start = Instant::now();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 256];
        while start.elapsed() < Duration::from_secs(40) {
            if s.write_all(b"a").is_err() {
                return start.elapsed();
            }
            match s.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return start.elapsed(),
            }
            std::thread::sleep(Duration::from_millis(950));
        }
        start.elapsed()
    });
    // Idle: a complete request on a keep-alive connection, then silence.
    let idle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        let (_resp, closed) = read_until_closed(&mut s, Duration::from_secs(45));
        (closed, start.elapsed())
    });
    // Silent: connects and never sends a byte.
    let silent = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let start = Instant::now();
        let (_r, closed) = read_until_closed(&mut s, Duration::from_secs(45));
        (closed, start.elapsed())
    });
    let slow_cut = slow.join().unwrap();
    assert!(
        slow_cut < Duration::from_secs(40),
        "a slow client dribbling headers was never cut off"
    );
    let (closed, _) = idle.join().unwrap();
    assert!(closed, "an idle keep-alive connection was never closed");
    let (closed, _) = silent.join().unwrap();
    assert!(closed, "a silent connection was never closed");
}

#[test]
fn a_connection_flood_does_not_lock_out_the_endpoint_for_long() {
    let (_p, _d, _t, port) = server();
    // More idle connections than the server allows at once.
    let flood: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(flood.len() >= 64);
    // Silent connections are cut by the header read timeout; then it serves again.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut ok = false;
    while Instant::now() < deadline {
        if support::http_request(port, "GET", "/healthz").is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(flood);
    assert!(ok, "the endpoint stayed locked out by idle connections");
}
