//! The `elasticrds` command line: clap definitions, config loading, output format and exit
//! codes (0 ok, 1 runtime or AWS failure, 2 bad input). Each subcommand lives in its own
//! module and calls the same library functions the service uses.

use crate::core::config::{Config, DEFAULT_CONFIG_PATH, LEGACY_CONFIG_PATH};
use crate::core::input::{InputError, InputErrors};
use crate::ports::PortError;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub mod backtest;
pub mod cluster;
pub mod demo;
pub mod demo_story;
pub mod generate;
pub mod govern;
pub mod haproxy;
pub mod iam;
pub mod init;
pub mod leases;
pub mod model_args;
pub mod pause;
pub mod policy;
pub mod run;

/// `elasticrds --version`: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ELASTICRDS_GIT_COMMIT"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "elasticrds",
    version = VERSION,
    about = "Autoscaler for Amazon RDS read replicas"
)]
pub struct Cli {
    /// Cluster config (YAML, or the old tool's JSON). Default: elasticrds.yaml, else
    /// conf/rds_cluster_conf.json.
    #[arg(long, global = true, env = "ELASTICRDS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring a cluster to its config: restore the master if absent, create/delete replicas.
    CreateCluster(cluster::CreateArgs),
    /// Change the instance class of a configured master or replica.
    ModifyInstance(cluster::ModifyArgs),
    /// Show a cluster: master, replicas, drift and foreign instances.
    Status(cluster::StatusArgs),
    /// HAProxy in front of the replicas: render its config, show its servers.
    Haproxy(haproxy::HaproxyArgs),
    /// Replay a load trace through policies on the simulated fleet; compare with an oracle
    /// and baselines.
    Backtest(backtest::BacktestArgs),
    /// The whole service on a simulated fleet driven by a real load trace, at compressed
    /// time: no AWS account needed.
    Demo(demo::DemoArgs),
    /// The always-on service: control loop, Prometheus metrics, health endpoints.
    Run(run::RunArgs),
    /// Check scaling policy files (default policies/*.yaml) against the cluster config.
    Validate(policy::ValidateArgs),
    /// Show what the policy decides for a cluster now, with its reasons, and what the
    /// reconciler would then do. Changes nothing.
    Plan(policy::PlanArgs),
    /// Hold a cluster's scale-in, scale-out or both (tags on the master, honoured by every
    /// running copy), for a while or until `resume`.
    Pause(pause::PauseArgs),
    /// End a pause written by `pause`.
    Resume(pause::ResumeArgs),
    /// Use a parked slot again (a slot whose replica failed repeatedly is parked: left alone
    /// until an operator has looked; `status` lists them).
    Unpark(pause::UnparkArgs),
    /// Adopt an existing master and its read replicas: write a cluster config and a starter
    /// policy in observe-only mode.
    Init(init::InitArgs),
    /// The least-privilege IAM policy (JSON) for the config's clusters and notifications.
    IamPolicy(iam::IamArgs),
    /// Who holds which cluster's lease, and the live copies (`run --lease-table`).
    Leases(leases::LeasesArgs),
    /// The lease table several copies share: `lease-table create NAME`.
    LeaseTable(leases::LeaseTableArgs),
    /// The man page or shell completions, from these very definitions (for packagers).
    #[command(hide = true)]
    Generate(generate::GenerateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// An error that ends the command, with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn input(message: impl Into<String>) -> Self {
        CliError {
            code: 2,
            message: message.into(),
        }
    }
    pub fn runtime(message: impl Into<String>) -> Self {
        CliError {
            code: 1,
            message: message.into(),
        }
    }
}

impl From<InputErrors> for CliError {
    fn from(e: InputErrors) -> Self {
        CliError::input(e.to_string())
    }
}
impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        CliError::input(e.to_string())
    }
}
impl From<PortError> for CliError {
    fn from(e: PortError) -> Self {
        CliError::runtime(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

/// Read a config, policy or template for parsing, through the bounded reader
/// ([`crate::input_file`]): unreadable, non-regular, oversized or non-UTF-8 files are bad input.
pub fn read_input(path: &Path) -> Result<String, CliError> {
    Ok(crate::input_file::read_text(
        path,
        crate::input_file::MAX_CONFIG_BYTES,
    )?)
}

/// Load the cluster config from `path`, or the default paths.
pub fn load_config(path: Option<&Path>) -> Result<(PathBuf, Config), CliError> {
    let path = config_path(path)?;
    let text = read_input(&path)?;
    let config = Config::parse(&path.display().to_string(), &text)?;
    Ok((path, config))
}

/// The cluster config file: `path`, else the default one, else the old tool's.
pub fn config_path(path: Option<&Path>) -> Result<PathBuf, CliError> {
    match path {
        Some(p) => Ok(p.to_path_buf()),
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => Ok(PathBuf::from(DEFAULT_CONFIG_PATH)),
        None if Path::new(LEGACY_CONFIG_PATH).exists() => Ok(PathBuf::from(LEGACY_CONFIG_PATH)),
        None => Err(CliError::input(format!(
            "no cluster config: give --config PATH, or create {DEFAULT_CONFIG_PATH} (or the old {LEGACY_CONFIG_PATH})"
        ))),
    }
}

/// Print a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> CliResult {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::runtime(e.to_string()))?;
    println!("{s}");
    Ok(())
}

/// Parse arguments, run, and map the outcome to an exit code. Errors go to stderr.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Ok((Cli::from_arg_matches(&m)?, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // `demo` reads no cluster config: `--config` on its command line is a mistake (the
    // environment variable, set for the other commands, is not).
    let config_given =
        matches.value_source("config") == Some(clap::parser::ValueSource::CommandLine);
    if config_given && matches!(cli.command, Command::Demo(_)) {
        eprintln!("error: --config: `demo` runs its own simulated cluster and reads no cluster config (--policy gives it another policy)");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Backtest(a) => backtest::run(config, a).await,
        Command::Demo(a) => demo::run(a).await,
        Command::CreateCluster(a) => cluster::create_cluster(config, a).await,
        Command::ModifyInstance(a) => cluster::modify_instance(config, a).await,
        Command::Status(a) => cluster::status(config, a).await,
        Command::Haproxy(a) => haproxy::run(config, a).await,
        Command::Run(a) => run::run(config, a).await,
        Command::Validate(a) => policy::validate(config, a).await,
        Command::Plan(a) => policy::run_plan(config, a).await,
        Command::Pause(a) => pause::pause(config, a).await,
        Command::Resume(a) => pause::resume(config, a).await,
        Command::Unpark(a) => pause::unpark(config, a).await,
        Command::Init(a) => init::init(config, a).await,
        Command::Generate(a) => generate::run(a),
        Command::IamPolicy(a) => iam::run(config, a).await,
        Command::Leases(a) => leases::leases(a).await,
        Command::LeaseTable(a) => leases::lease_table(a).await,
    }
}
