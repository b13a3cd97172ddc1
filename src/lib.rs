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
//! - [`cli`] — the `elasticrds` command line: argument parsing, output, exit codes.

pub mod adapters;
pub mod cli;
pub mod core;
pub mod ports;
pub mod reconcile;
