//! Signals on the built `elasticrds run`: with its first AWS call hanging (an endpoint that
//! accepts connections and never answers), a first SIGTERM lets that call go on — the process
//! is still running — and a second SIGTERM ends it at once with status 130 instead of waiting
//! for the call. (A SIGTERM between calls exits 0: tests/service_e2e.rs.)

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A listener that accepts connections, keeps them open and never answers.
struct Hang {
    port: u16,
    accepted: Arc<AtomicUsize>,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Hang {
    fn start() -> Hang {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(Mutex::new(Vec::new()));
        let (a, h) = (accepted.clone(), held.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                h.lock().unwrap().push(s);
                a.fetch_add(1, Ordering::SeqCst);
            }
        });
        Hang {
            port,
            accepted,
            _held: held,
        }
    }
}

fn kill_term(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -TERM {pid} failed");
}

#[test]
fn a_second_signal_exits_at_once_while_the_first_waits_for_the_call_in_flight() {
    let hang = Hang::start();
    let endpoint = format!("http://127.0.0.1:{}", hang.port);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("elasticrds.yaml");
    std::fs::write(
        &config,
        "c1:\n  master_node: {identifier: snap-c1, instance_id: c1-m01, instance_class: db.t3.micro}\n  replica_nodes:\n    - {id: c1-s01, instance_class: db.t3.micro}\n",
    )
    .unwrap();
    let log = dir.path().join("run.log");
    let f = std::fs::File::create(&log).unwrap();
    let port = support::free_port();
    let mut child = support::elasticrds(Some(&endpoint))
        .current_dir(dir.path())
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", &endpoint)
        .env("RUST_LOG", "info")
        .arg("--config")
        .arg(&config)
        .args(["run", "--interval", "1s", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .spawn()
        .expect("spawn elasticrds run");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // The first describe is in flight (the hanging endpoint got its connection).
    let deadline = Instant::now() + Duration::from_secs(30);
    while hang.accepted.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no AWS call reached the endpoint\n{}",
            read_log()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run exited early\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // First signal: the process keeps waiting for the call in flight.
    kill_term(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_log().contains("stopping after the call in flight") {
        assert!(
            Instant::now() < deadline,
            "first SIGTERM not acknowledged\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited on the first signal with the call still in flight\n{}",
        read_log()
    );

    // Second signal: out at once, status 130 (not the 0 of an orderly stop).
    kill_term(child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("second SIGTERM did not end the process\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{status:?}\n{}", read_log());
    assert!(read_log().contains("second signal"), "{}", read_log());
}
