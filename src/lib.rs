//! elasticrds: an autoscaler for Amazon RDS read replicas.
//!
//! Module map (dependencies point downwards; the core depends on nothing below it):
//! - [`core`] — the pure core, no I/O and no tokio/AWS/prometheus/hyper; time comes in as a
//!   value: domain types ([`core::domain`]), the cluster config ([`core::config`]), located
//!   input errors and the one field locator ([`core::input`]), membership ([`core::view`]),
//!   reconcile planning ([`core::plan`]), scaling policies ([`core::policy`],
//!   [`core::schedule`]), operators' pauses as tags on the master ([`core::pause`]) and the
//!   decision core ([`core::decide`]: serving set, rules, holds,
//!   the scale state, reasons as data).
//! - [`ports`] — traits over domain types for the fleet, metrics source and traffic router
//!   (and [`ports::Routers`], one per cluster behind HAProxy), the typed
//!   [`ports::PortError`] (NotFound / AlreadyExists / retryable / fatal), and the injected
//!   [`ports::Clock`].
//! - [`reconcile`] — the shared reconciler's effectful half: observe, execute (each action
//!   checked against the fleet first), converge; the HAProxy drain before a delete as state
//!   carried across ticks ([`reconcile::drain`]) and the router step ([`reconcile::router`]).
//! - [`adapters`] — port implementations: AWS RDS, CloudWatch, HAProxy's runtime API, the
//!   simulated fleet and its load model, recorded metrics files.
//! - [`control`] — THE control tick, its ports in a [`control::TickContext`] built at the
//!   edge: the one observation step ([`control::ClusterMemory`]: available-since times, the
//!   scale state read from the master's tags, drains under way), gather metrics, decide,
//!   plan, execute, persist the state on the master's tags; shared by the daemon, `plan`, the
//!   backtest and the demo. docs/development.md explains the model in five minutes.
//! - [`service`] — the always-on service (`elasticrds run`): the daemon loop, its Prometheus
//!   metrics (a `Metrics` struct owning its registry), the HTTP server, and reloading the
//!   config and policies on SIGHUP or a file change ([`service::reload`]).
//! - [`backtest`] — replaying load traces through policies on the simulated fleet, scored
//!   against an oracle and baselines (`elasticrds backtest`, `elasticrds demo`).
//! - [`text`] — words for the core's data that several edges print alike (ownership conflicts,
//!   master issues, the decision's reasons and their JSON form).
//! - [`input_file`] — the one bounded reader of user files (regular files only, size limits).
//! - [`cli`] — the `elasticrds` command line: argument parsing, output, exit codes.
//! - [`alloc`] — the global allocator the binary and the benchmark install (mimalloc, the
//!   plain calls for word-aligned layouts); the library itself does not install one.

pub mod adapters;
pub mod alloc;
pub mod backtest;
pub mod cli;
pub mod control;
pub mod core;
pub mod input_file;
pub mod ports;
pub mod reconcile;
pub mod service;
pub mod text;
