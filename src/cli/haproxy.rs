//! `elasticrds haproxy ...`: `render` writes the HAProxy config for a cluster from the live
//! fleet (available replicas as servers, the master as backup, the engine's health check, a
//! runtime API socket); `status` shows the backend's servers as HAProxy's runtime API reports
//! them.

use super::cluster::find_cluster;
use super::{load_config, print_json, read_input, CliError, CliResult, Output};
use crate::adapters::haproxy::render::{effective_spec, render, write_atomic, RenderOptions};
use crate::adapters::haproxy::HaproxyRuntime;
use crate::core::config::ClusterSpec;
use crate::core::plan::ClusterView;
use crate::ports::Fleet;
use crate::reconcile::observe_one;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum HaproxyCommand {
    /// Print (or write) the HAProxy config for a cluster from the live fleet.
    Render(RenderArgs),
    /// Show the backend's servers as HAProxy's runtime API reports them.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct HaproxyArgs {
    #[command(subcommand)]
    pub command: HaproxyCommand,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// A config template with a `{{servers}}` line (also `{{backend}}`, `{{bind}}`,
    /// `{{stats_socket}}`, `{{health_check}}`).
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// Write the config to FILE (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Address clients connect to. Default: 127.0.0.1 and the engine's port.
    #[arg(long, value_name = "HOST:PORT")]
    pub bind: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub cluster: String,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub async fn run(config: Option<&Path>, a: HaproxyArgs) -> CliResult {
    match a.command {
        HaproxyCommand::Render(r) => render_cmd(config, r).await,
        HaproxyCommand::Status(s) => status_cmd(config, s).await,
    }
}

/// The rendered config of `spec` from `fleet`.
pub async fn render_on(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    a: &RenderArgs,
) -> Result<String, CliError> {
    let template = match &a.template {
        Some(p) => Some(read_input(p)?),
        None => None,
    };
    if let Some(b) = &a.bind {
        check_bind(b)?;
    }
    let opts = RenderOptions {
        bind: a.bind.clone(),
        template,
    };
    let refused = |e: crate::adapters::haproxy::render::RenderError| {
        let what = a
            .template
            .as_ref()
            .map_or_else(String::new, |p| format!("{}: ", p.display()));
        CliError::input(format!("{what}{e}"))
    };
    // The options and template are checked on a cluster with no instance first: bad input is
    // refused before any AWS call.
    render(spec, &ClusterView::build(spec, &[]), &opts).map_err(refused)?;
    let view = observe_one(fleet, spec).await?;
    render(spec, &view, &opts).map_err(refused)
}

/// `--bind HOST:PORT`: a port from 1 to 65535 after the last colon, a host before it.
fn check_bind(b: &str) -> Result<(), CliError> {
    let ok = b
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(())
    } else {
        Err(CliError::input(format!(
            "--bind {b:?}: give HOST:PORT (e.g. 127.0.0.1:3306)"
        )))
    }
}

async fn render_cmd(config: Option<&Path>, a: RenderArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let fleet = crate::adapters::targets::fleet_for(spec).await;
    let text = render_on(&fleet, spec, &a).await?;
    match &a.output {
        None => print!("{text}"),
        Some(p) => {
            write_atomic(p, &text).map_err(|e| CliError::runtime(e.to_string()))?;
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

async fn status_cmd(config: Option<&Path>, a: StatusArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let h = effective_spec(spec);
    let rt = HaproxyRuntime::from_spec(&h);
    let servers = rt.servers().await?;
    match a.output {
        Output::Json => print_json(&serde_json::json!({
            "cluster": spec.name,
            "backend": h.backend,
            "socket": h.socket,
            "servers": servers,
        }))?,
        Output::Text => {
            println!(
                "{} (HAProxy backend {} at {})",
                spec.name, h.backend, h.socket
            );
            for s in &servers {
                println!(
                    "  {:<24} {:<22} {:<20} sessions {}{}",
                    s.name,
                    s.addr,
                    s.status,
                    s.current_sessions,
                    if s.backup { "  (backup)" } else { "" }
                );
            }
        }
    }
    Ok(())
}
