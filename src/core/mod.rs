//! The pure core: domain types, the cluster config, located input errors, membership
//! (`view`), reconcile planning, scaling policies, operators' pauses and the decision core. No I/O and no tokio,
//! aws_sdk_*, prometheus or hyper imports; time comes in as a value. Decisions and reasons are
//! data: no text is made here (the edges word them, `crate::text`), and no speed tricks.

pub mod config;
pub mod decide;
pub mod domain;
pub mod forecast;
pub mod input;
pub mod lease;
pub mod notify;
pub mod pause;
pub mod plan;
pub mod policy;
pub mod schedule;
pub mod target;
pub mod template;
pub mod view;
