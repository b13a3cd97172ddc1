//! The service's HTTP endpoint over real TCP on 127.0.0.1: /metrics passes `promtool check
//! metrics` (Debian's prometheus package), /healthz, /readyz before and after a successful tick
//! and when it gets old, and the hardening: oversized headers, request bodies, other methods,
//! a slow client that never finishes its headers, and 200 idle connections: the oldest idle ones
//! are closed to make room, so /healthz still answers and at most 64 stay open.

mod support;

use chrono::Utc;
use elasticrds::ports::{Clock, ManualClock};
use elasticrds::service::http::{self, Health, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
use elasticrds::service::metrics::Metrics;
use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Send raw bytes, read until the server closes or `timeout`; returns the response text.
fn raw(port: u16, request: &[u8], timeout: Duration) -> String {
    support::send_raw(("127.0.0.1", port), request, timeout)
        .expect("connect")
        .0
}

fn status(resp: &str) -> u16 {
    support::status_code(resp).unwrap_or(0)
}

fn get(port: u16, path: &str) -> support::Response {
    support::get(("127.0.0.1", port), path).expect("GET")
}

fn populated_metrics() -> Metrics {
    let m = Metrics::new();
    for c in ["c1", "c2"] {
        m.init_cluster(c);
        m.replicas.with_label_values(&[c]).set(2);
        m.available_replicas.with_label_values(&[c]).set(1);
        m.desired_replicas.with_label_values(&[c]).set(3);
        m.min_replicas.with_label_values(&[c]).set(1);
        m.max_replicas.with_label_values(&[c]).set(4);
        m.decisions_total
            .with_label_values(&[c, "out", "target_tracking"])
            .inc();
        m.actions_total
            .with_label_values(&[c, "create_replica", "ok"])
            .inc();
        Metrics::set_optional(&m.cpu_utilization_ratio, c, Some(0.82));
        Metrics::set_optional(&m.cpu_target_ratio, c, Some(0.6));
        Metrics::set_optional(&m.connections, c, Some(120.0));
        Metrics::set_optional(&m.connections_target, c, Some(200.0));
        Metrics::set_optional(&m.replica_lag_seconds, c, Some(1.5));
        Metrics::set_optional(&m.replica_lag_target_seconds, c, Some(30.0));
        for d in ["out", "in"] {
            m.cooldown_remaining_seconds
                .with_label_values(&[c, d])
                .set(42.0);
        }
        m.cluster_errors_total
            .with_label_values(&[c, "throttled"])
            .inc();
        m.retries_total.with_label_values(&[c]).inc();
        m.backoff_seconds.with_label_values(&[c]).set(120.0);
    }
    m.tick_duration_seconds.observe(0.3);
    m.ticks_total.with_label_values(&["ok"]).inc();
    m.aws_call("rds", "DescribeDBInstances", 1);
    m.aws_call("cloudwatch", "GetMetricData", 9);
    m.aws_error("cloudwatch", "GetMetricData", "throttled");
    m.last_successful_tick_timestamp_seconds.set(1.7e9);
    m
}

#[test]
fn endpoints_health_readiness_and_promtool_clean_metrics() {
    support::block_on(async {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let clusters = vec!["c1".to_string(), "c2".to_string()];
        let health = Arc::new(Health::new(
            clock.clone(),
            Duration::from_secs(60),
            clusters,
        ));
        let metrics = populated_metrics();
        let server = http::start(
            "127.0.0.1:0".parse().unwrap(),
            metrics.clone(),
            health.clone(),
        )
        .await
        .unwrap();
        let port = server.local_addr.port();
        assert!(server.local_addr.ip().is_loopback());

        let checks = tokio::task::spawn_blocking(move || {
            let r = get(port, "/healthz");
            assert_eq!(r.status, 200, "{r}");
            let r = get(port, "/readyz");
            assert_eq!(r.status, 503, "not ready before any tick: {r}");
            port
        })
        .await
        .unwrap();

        // One of two clusters observed: not ready; both: ready.
        health.observed(0, clock.now());
        let checks = tokio::task::spawn_blocking(move || {
            let r = get(checks, "/readyz");
            assert_eq!(r.status, 503, "c2 was never observed: {r}");
            assert!(r.body.contains("c2"), "names the cluster: {r}");
            checks
        })
        .await
        .unwrap();
        health.observed(1, clock.now());
        let port = tokio::task::spawn_blocking(move || {
            let r = get(checks, "/readyz");
            assert_eq!(r.status, 200, "{r}");
            checks
        })
        .await
        .unwrap();
        // Three intervals without an observation: not ready any more.
        clock.advance(Duration::from_secs(181));
        let body = tokio::task::spawn_blocking(move || {
            let r = get(port, "/readyz");
            assert_eq!(r.status, 503, "{r}");
            let r = get(port, "/nope");
            assert_eq!(r.status, 404, "{r}");
            let r = get(port, "/metrics");
            assert_eq!(r.status, 200, "{r}");
            assert!(r.head.contains("text/plain; version=0.0.4"), "{r}");
            r.body
        })
        .await
        .unwrap();
        for name in [
            "elasticrds_replicas",
            "elasticrds_available_replicas",
            "elasticrds_conflicting_instances",
            "elasticrds_desired_replicas",
            "elasticrds_min_replicas",
            "elasticrds_max_replicas",
            "elasticrds_decisions_total",
            "elasticrds_actions_total",
            "elasticrds_cpu_utilization_ratio",
            "elasticrds_cpu_target_ratio",
            "elasticrds_connections",
            "elasticrds_connections_target",
            "elasticrds_replica_lag_seconds",
            "elasticrds_replica_lag_target_seconds",
            "elasticrds_cooldown_remaining_seconds",
            "elasticrds_paused",
            "elasticrds_config_last_reload_successful",
            "elasticrds_config_last_reload_success_timestamp_seconds",
            "elasticrds_tick_duration_seconds",
            "elasticrds_ticks_total",
            "elasticrds_cluster_errors_total",
            "elasticrds_aws_calls_total",
            "elasticrds_aws_errors_total",
            "elasticrds_retries_total",
            "elasticrds_backoff_seconds",
            "elasticrds_last_successful_tick_timestamp_seconds",
            "elasticrds_build_info",
        ] {
            assert!(
                body.contains(&format!("# TYPE {name} ")),
                "{name} missing from /metrics:\n{body}"
            );
        }
        assert_eq!(
            support::promtool_check_metrics(&body),
            "",
            "promtool check metrics printed something"
        );
        server.stop().await;
    });
}

#[test]
fn oversized_headers_bodies_methods_and_slow_clients_are_refused() {
    support::block_on(async {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let health = Arc::new(Health::new(clock, Duration::from_secs(60), Vec::new()));
        let server = http::start("127.0.0.1:0".parse().unwrap(), Metrics::new(), health)
            .await
            .unwrap();
        let port = server.local_addr.port();
        tokio::task::spawn_blocking(move || {
            // 64 KiB of header: refused with 431, the connection closed.
            let big = format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
                "a".repeat(64 * 1024)
            );
            let r = raw(port, big.as_bytes(), Duration::from_secs(10));
            assert_eq!(status(&r), 431, "{r}");

            // A request body is refused.
            let r = raw(
                port,
                b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
                Duration::from_secs(10),
            );
            assert_eq!(status(&r), 413, "{r}");
            let r = raw(
                port,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                Duration::from_secs(10),
            );
            assert_eq!(status(&r), 413, "{r}");
            let r = raw(
                port,
                b"DELETE /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                Duration::from_secs(10),
            );
            assert_eq!(status(&r), 405, "{r}");

            // A slow client that never finishes its headers is cut off after the timeout.
            let t = Instant::now();
            let r = raw(
                port,
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
                HEADER_READ_TIMEOUT * 4,
            );
            let waited = t.elapsed();
            assert!(
                waited >= HEADER_READ_TIMEOUT - Duration::from_millis(500)
                    && waited < HEADER_READ_TIMEOUT * 3,
                "closed after {waited:?}: {r:?}"
            );
            assert!(!r.contains("200 OK"), "{r}");

            // The server still serves afterwards.
            let r = get(port, "/healthz");
            assert_eq!(r.status, 200, "{r}");
        })
        .await
        .unwrap();
        server.stop().await;
    });
}

/// Whether the server has closed `s` (EOF or reset); `false` while it is still open.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn healthz_answers_with_200_idle_connections_open_and_at_most_the_cap_stay_open() {
    support::block_on(async {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let health = Arc::new(Health::new(clock, Duration::from_secs(60), Vec::new()));
        let server = http::start("127.0.0.1:0".parse().unwrap(), Metrics::new(), health)
            .await
            .unwrap();
        let port = server.local_addr.port();
        tokio::task::spawn_blocking(move || {
            // 200 connections that send nothing, held open.
            let mut idle: Vec<TcpStream> = (0..200)
                .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
                .collect();
            let r = get(port, "/healthz");
            assert_eq!(
                r.status, 200,
                "liveness probe behind 200 idle connections: {r:?}"
            );
            let open = idle.iter_mut().map(closed_by_server).filter(|c| !c).count();
            assert!(
                open <= MAX_CONNECTIONS,
                "{open} idle connections still open (cap {MAX_CONNECTIONS})"
            );
            // The ones kept are the newest: the oldest idle connection is shed first.
            assert!(closed_by_server(&mut idle[0]), "the oldest is closed");
            assert!(!closed_by_server(&mut idle[199]), "the newest is kept");
            let r = get(port, "/healthz");
            assert_eq!(r.status, 200, "{r:?}");
        })
        .await
        .unwrap();
        server.stop().await;
    });
}
