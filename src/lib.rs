//! elasticrds: an autoscaler for Amazon RDS read replicas.
//!
//! Module map (dependencies point downwards; the core depends on nothing below it):
//! - [`core`] — the pure core: domain types ([`core::domain`]), the cluster config
//!   ([`core::config`]), located input errors ([`core::input`]) and reconcile planning
//!   ([`core::plan`]). No I/O, no tokio/AWS/prometheus/hyper.
//! - [`ports`] — traits over domain types for the fleet, metrics source and traffic router,
//!   the typed [`ports::PortError`], and the injected [`ports::Clock`].
//! - [`reconcile`] — the shared reconciler's effectful half: observe, execute, converge.
//! - [`adapters`] — port implementations: the simulated fleet, AWS RDS, ...
//! - [`control`] — THE control tick (fetch metrics, decide, plan, execute, persist state),
//!   shared by the daemon and the backtest.
//! - [`service`] — the always-on service (`elasticrds run`): control loop, metrics, HTTP.
//! - [`backtest`] — replaying load traces through policies on the simulated fleet, scored
//!   against an oracle and baselines (`elasticrds backtest`, `elasticrds demo`).
//! - [`cli`] — the `elasticrds` command line: argument parsing, output, exit codes.

pub mod adapters;
pub mod backtest;
pub mod cli;
pub mod control;
pub mod core;
pub mod ports;
pub mod reconcile;
pub mod service;
