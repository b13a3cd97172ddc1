//! Adapters: implementations of the ports in `crate::ports` for the outside world.
//! - `aws`: SDK config loading and SDK error → `PortError` mapping, shared by the AWS adapters.
//! - `rds`: the `Fleet` port on aws-sdk-rds.
//! - `cloudwatch`: the `MetricsSource` port on aws-sdk-cloudwatch (batched GetMetricData).
//! - `dynamodb`: the `LeaseStore` port on a DynamoDB table (copies sharing clusters).
//! - `targets`: clusters in other regions and accounts (a role assumed per cluster): clients
//!   per (region, role), and a fleet and metrics source that route each call by instance.
//! - `eventbridge`, `webhook`: the `EventSink` port (notifications) on EventBridge PutEvents
//!   and on an HTTP POST.
//! - `haproxy`: the `TrafficRouter` port on HAProxy's runtime API, and config rendering.
//! - `recorded`: the `MetricsSource` port over a recorded-metrics file (CSV or JSON).
//! - `sim`: the in-process simulated fleet (fake clock, call log, injected failures).
//! - `sim_load`: the simulated fleet's load model (demand → CPU, connections, lag) as a `MetricsSource`.

pub mod aws;
pub mod cloudwatch;
pub mod dynamodb;
pub mod eventbridge;
pub mod haproxy;
pub mod rds;
pub mod recorded;
pub mod sim;
pub mod sim_load;
pub mod sim_model;
pub mod targets;
pub mod webhook;
