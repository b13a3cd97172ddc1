//! The service's HTTP endpoint on hyper 1: `/metrics` (Prometheus text), `/healthz` (process
//! up) and `/readyz` (the last successful tick is younger than three intervals). Hardened for a
//! long-running process: bounded header size, a header read timeout, a cap on each connection's
//! lifetime and on concurrent connections, and request bodies refused.

use super::metrics::Metrics;
use crate::ports::Clock;
use chrono::{DateTime, Utc};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";
/// Request line plus headers, bytes; larger requests get 431.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// hyper's read buffer (its minimum is 8 KiB).
pub const MAX_BUF_BYTES: usize = 16 * 1024;
/// A client must send its request headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// No connection, idle keep-alive included, lives longer than this.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Connections beyond this many at once are closed at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Liveness and readiness: when the last tick succeeded, on the service's clock.
pub struct Health {
    clock: Arc<dyn Clock>,
    interval: Duration,
    /// Unix milliseconds of the last successful tick; `i64::MIN` when none yet.
    last_ok_ms: AtomicI64,
}

impl Health {
    pub fn new(clock: Arc<dyn Clock>, interval: Duration) -> Self {
        Health {
            clock,
            interval,
            last_ok_ms: AtomicI64::new(i64::MIN),
        }
    }
    pub fn tick_succeeded(&self, at: DateTime<Utc>) {
        self.last_ok_ms
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }
    pub fn last_ok(&self) -> Option<DateTime<Utc>> {
        match self.last_ok_ms.load(Ordering::Relaxed) {
            i64::MIN => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
    /// Ready when the last successful tick is younger than three intervals.
    pub fn is_ready(&self) -> bool {
        let Some(last) = self.last_ok() else {
            return false;
        };
        let age = (self.clock.now() - last).to_std().unwrap_or_default();
        age < self.interval.saturating_mul(3)
    }
}

/// A running HTTP server.
pub struct HttpServer {
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl HttpServer {
    /// Stop accepting, close open connections, and wait for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.handle.await;
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn route(metrics: &Metrics, health: &Health, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.to_str().map_or(true, |s| s.trim() != "0"));
    if has_body {
        let mut r = text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request bodies are not accepted\n",
        );
        r.headers_mut()
            .insert(CONNECTION, hyper::header::HeaderValue::from_static("close"));
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            match health.last_ok() {
                None => "not ready: no successful tick yet\n".to_string(),
                Some(t) => format!("not ready: last successful tick at {}\n", t.to_rfc3339()),
            },
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz, /readyz\n",
        ),
    }
}

/// Bind `addr` and serve until [`HttpServer::stop`]. Returns once bound, with the bound
/// address (give port 0 for a free port).
pub async fn start(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
) -> std::io::Result<HttpServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(accept_loop(listener, metrics, health, rx));
    Ok(HttpServer {
        local_addr,
        shutdown: tx,
        handle,
    })
}

async fn accept_loop(
    listener: TcpListener,
    metrics: Metrics,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF_BYTES)
        .max_headers(64)
        .keep_alive(true);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, _peer) = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let metrics = metrics.clone();
        let health = health.clone();
        let mut stop = shutdown.clone();
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let r = route(&metrics, &health, &req);
                async move { Ok::<_, Infallible>(r) }
            }),
        );
        conns.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_LIFETIME, conn.as_mut()) => {
                    if let Ok(Err(e)) = r {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
    conns.shutdown().await;
}
