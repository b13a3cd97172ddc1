//! The service's HTTP endpoint on hyper 1: `/` (the status page, `service::status`),
//! `/metrics` (Prometheus text), `/healthz` (process up) and `/readyz` (every managed cluster observed within three intervals, [`Health`]). Hardened for a
//! long-running process: bounded header size, a header read timeout, a cap on each connection's
//! lifetime and on concurrent connections, and request bodies refused.

use super::conns::{Slots, TrackedBody};
use super::metrics::Metrics;
use super::status::StatusBoard;
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
use tokio::sync::watch;
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
/// At most this many connections at once: at the cap, a new connection takes the slot of the
/// one idle the longest (else the oldest), which is closed (`service::conns`).
pub const MAX_CONNECTIONS: usize = 64;

/// Readiness: when each managed cluster was last observed, on the service's clock.
///
/// A cluster is observed at a tick when that tick's batched DescribeDBInstances covered it and
/// its metrics were fetched; a cluster skipped by backoff, or whose describe or fetch failed,
/// is not. Ready means every managed cluster was observed less than three intervals ago.
pub struct Health {
    clock: Arc<dyn Clock>,
    interval: Duration,
    /// Per managed cluster: its name and the Unix milliseconds of its last observation
    /// (`i64::MIN` when never). Replaced as a whole when a reload changes the clusters.
    observed_ms: std::sync::RwLock<Vec<(String, AtomicI64)>>,
    /// With a lease table: ready means the table was reached at the last round and every
    /// cluster this copy holds was observed lately (a copy holding none stands by, ready).
    leases: std::sync::OnceLock<Arc<super::leases::LeaseKeeper>>,
}

impl Health {
    /// Readiness over `clusters`, in the daemon's order (see [`Health::observed`]).
    pub fn new(clock: Arc<dyn Clock>, interval: Duration, clusters: Vec<String>) -> Self {
        Health {
            clock,
            interval,
            observed_ms: std::sync::RwLock::new(
                clusters
                    .into_iter()
                    .map(|c| (c, AtomicI64::new(i64::MIN)))
                    .collect(),
            ),
            leases: std::sync::OnceLock::new(),
        }
    }
    /// Readiness of a copy sharing the clusters through leases.
    pub fn set_leases(&self, keeper: Arc<super::leases::LeaseKeeper>) {
        let _ = self.leases.set(keeper);
    }
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, AtomicI64)>> {
        self.observed_ms.read().unwrap_or_else(|p| p.into_inner())
    }
    /// The clusters after a reload, in the daemon's new order: a cluster kept keeps its last
    /// observation, a new one (or one in `restarted`: its master changed) starts as never
    /// observed.
    pub fn set_clusters(&self, clusters: Vec<String>, restarted: &[String]) {
        let old = self.read();
        let next: Vec<(String, AtomicI64)> = clusters
            .into_iter()
            .map(|c| {
                let ms = (old.iter().find(|(n, _)| *n == c && !restarted.contains(n)))
                    .map_or(i64::MIN, |(_, ms)| ms.load(Ordering::Relaxed));
                (c, AtomicI64::new(ms))
            })
            .collect();
        drop(old);
        *self.observed_ms.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
    /// Cluster number `i` was observed `at`.
    pub fn observed(&self, i: usize, at: DateTime<Utc>) {
        if let Some((_, ms)) = self.read().get(i) {
            ms.store(at.timestamp_millis(), Ordering::Relaxed);
        }
    }
    /// When cluster number `i` was last observed.
    pub fn last_observed(&self, i: usize) -> Option<DateTime<Utc>> {
        match self.read().get(i)?.1.load(Ordering::Relaxed) {
            i64::MIN => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }
    /// Ready when every managed cluster was observed less than three intervals ago (never
    /// with no cluster to manage).
    pub fn is_ready(&self) -> bool {
        self.not_ready_reason().is_none()
    }
    /// Why the service is not ready (the clusters not observed lately), `None` when ready.
    pub fn not_ready_reason(&self) -> Option<String> {
        let names: Vec<String> = self.read().iter().map(|(n, _)| n.clone()).collect();
        if names.is_empty() {
            return Some("no cluster to manage".into());
        }
        let now = self.clock.now();
        if self.leases.get().is_some_and(|k| !k.reachable()) {
            return Some("the lease table could not be reached at the last round".into());
        }
        let mine = |name: &str| {
            self.leases
                .get()
                .is_none_or(|k| k.holds(name, now).is_some())
        };
        let window = self.interval.saturating_mul(3);
        let stale: Vec<String> = (names.iter().enumerate())
            .filter(|(_, name)| mine(name))
            .filter_map(|(i, name)| match self.last_observed(i) {
                None => Some(format!("{name} never observed")),
                Some(t) if (now - t).to_std().unwrap_or_default() >= window => {
                    Some(format!("{name} last observed at {}", t.to_rfc3339()))
                }
                Some(_) => None,
            })
            .collect();
        match stale.len() {
            0 => None,
            n if n > 5 => Some(format!("{}; and {} more", stale[..5].join("; "), n - 5)),
            _ => Some(stale.join("; ")),
        }
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

fn route(
    metrics: &Metrics,
    health: &Health,
    board: &StatusBoard,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
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
        "/" => {
            let mut r = text(StatusCode::OK, board.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        "/metrics" => {
            let mut r = text(StatusCode::OK, metrics.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match health.not_ready_reason() {
            None => text(StatusCode::OK, "ready\n"),
            Some(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready: {why} (each cluster must be observed within three intervals)\n"
                ),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /, /metrics, /healthz, /readyz\n",
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
    start_with_status(addr, metrics, health, Arc::default()).await
}

/// [`start`] with the status page of `board` on `GET /`.
pub async fn start_with_status(
    addr: SocketAddr,
    metrics: Metrics,
    health: Arc<Health>,
    board: Arc<StatusBoard>,
) -> std::io::Result<HttpServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(false);
    let handle = tokio::spawn(accept_loop(listener, metrics, health, board, rx));
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
    board: Arc<StatusBoard>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Slots::new(MAX_CONNECTIONS);
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
        let slot = slots.admit();
        let tracker = slot.tracker();
        let metrics = metrics.clone();
        let health = health.clone();
        let board = board.clone();
        let mut stop = shutdown.clone();
        let conn = builder.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(move |req: Request<Incoming>| {
                let r: Response<TrackedBody> =
                    route(&metrics, &health, &board, &req).map(|b| tracker.busy(b));
                async move { Ok::<_, Infallible>(r) }
            }),
        );
        conns.spawn(async move {
            let mut slot = slot;
            tokio::pin!(conn);
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_LIFETIME, conn.as_mut()) => {
                    if let Ok(Err(e)) = r {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                }
                _ = &mut slot.closed => {
                    tracing::debug!("http connection closed to make room for a newer one");
                }
                _ = stop.changed() => {}
            }
        });
    }
    conns.shutdown().await;
}
