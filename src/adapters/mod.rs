//! Adapters: implementations of the ports in `crate::ports` for the outside world.
//! - `aws`: SDK config loading and SDK error → `PortError` mapping, shared by the AWS adapters.
//! - `rds`: the `Fleet` port on aws-sdk-rds.
//! - `sim`: the in-process simulated fleet (fake clock, call log, injected failures).

pub mod aws;
pub mod rds;
pub mod sim;
