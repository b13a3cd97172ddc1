//! The always-on service behind `elasticrds run` (and reused by `elasticrds demo`):
//! - `daemon`: the control loop — ticks that never overlap, per-cluster isolation and capped
//!   exponential backoff, state kept as tags on the master, graceful shutdown.
//! - `metrics`: the [`metrics::Metrics`] struct owning its Prometheus registry.
//! - `http`: the hyper server for `/` (the status page, `status`), `/metrics`, `/healthz` and
//!   `/readyz`.
//! - `conns`: the HTTP server's connection slots (a full house sheds its longest-idle one).
//! - `reload`: reloading the config and policy files on SIGHUP or a file change (the loader,
//!   the file watcher, what changed).
//! - `events` and `notify`: what is worth telling people, found in the tick reports, and its
//!   delivery to the configured sinks through bounded queues that never hold up a tick.
//! - `leases`: several copies sharing the clusters through a lease table (`run --lease-table`).
//! - `counting`: decorators counting AWS calls and errors on the Fleet and MetricsSource ports.
//!
//! The decision itself is made by `crate::control`, shared with the backtest.

pub mod conns;
pub mod counting;
pub mod daemon;
pub mod events;
pub mod http;
pub mod leases;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod status;
