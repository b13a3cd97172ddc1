//! `elasticrds run`: the always-on service on AWS — the control loop (`service::daemon`) on
//! the RDS and CloudWatch adapters, the `/metrics` + health server, logging, and signals
//! (SIGTERM/SIGINT finish the AWS call in flight and exit 0; a second signal exits at once;
//! SIGHUP reloads the config and policy files, as does a change to them on disk:
//! `service::reload`).

use super::govern::{govern, DefaultPolicy, DEFAULT_POLICIES_DIR};
use super::{load_config, CliError, CliResult};
use crate::adapters::eventbridge::EventBridgeSink;
use crate::adapters::webhook::{read_token, WebhookSink};
use crate::core::config::ClusterSpec;
use crate::core::notify::{Notifications, Sink, SinkKind};
use crate::ports::EventSink;
use crate::ports::{Clock, SystemClock};
use crate::service::daemon::{Daemon, DaemonOptions};
use crate::service::http::{self, DEFAULT_LISTEN};
use crate::service::leases::LeaseKeeper;
use crate::service::metrics::Metrics;
use crate::service::notify::{Notifier, Retry};
use crate::service::reload::{watch_files, ConfigSet, Loader, Trigger, Watched};
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory of policy files (*.yaml, *.yml), each naming the cluster it governs
    /// [default: ./policies when it exists]. A cluster no policy names is observed only, never
    /// changed, unless --default-policy is given.
    #[arg(long, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// What governs the clusters no policy file names: `builtin` (the built-in default policy)
    /// or a policy file with `cluster: "*"`. Without it those clusters are observed only.
    #[arg(long, value_name = "FILE|builtin")]
    pub default_policy: Option<PathBuf>,
    /// Address for /metrics, /healthz and /readyz, as IP:PORT or a host name that resolves
    /// (localhost:9187) [default: 127.0.0.1:9187; with --once the server only runs when
    /// --listen is given].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Time between the starts of two ticks (ticks never overlap).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Run exactly one tick, then exit (1 if the tick failed).
    #[arg(long)]
    pub once: bool,
    /// Reads the fleet and the metrics, decides, logs and exports the decision; plans no
    /// action. Writes nothing: no change on AWS, no state tags on the master, no HAProxy change.
    /// (What a policy's `observe_only: true` does for one cluster.)
    #[arg(long)]
    pub observe_only: bool,
    /// Reads and decides as a normal run and also plans the reconciler's actions: each is
    /// logged and counted in elasticrds_actions_total with result="dry_run", none is executed.
    /// Writes nothing: no change on AWS, no state tags on the master, no HAProxy change.
    #[arg(long)]
    pub dry_run: bool,
    /// Log lines on stderr: `text` (human-readable; coloured only on a terminal and never with
    /// NO_COLOR set) or `json` (one JSON object per line, for log collectors).
    #[arg(long, value_enum, default_value_t)]
    pub log_format: LogFormat,
    /// Cap of the per-cluster backoff after failures.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub max_backoff: Duration,
    /// Share the clusters with other copies of the service through leases in this DynamoDB
    /// table (made with `elasticrds lease-table create`): each cluster is acted on by at most
    /// one copy at a time [default: none: this copy manages every cluster].
    #[arg(long, value_name = "TABLE")]
    pub lease_table: Option<String>,
    /// How long a lease lasts without renewal (a dead copy's clusters move after this).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// How often the leases are renewed (and free ones taken).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub lease_renew: Duration,
    /// The largest clock difference between copies the leases tolerate: a copy stops acting
    /// this long before its lease ends, and another takes it over this long after.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub lease_skew: Duration,
    /// This copy's id in the lease table [default: host name and process id].
    #[arg(long)]
    pub copy_id: Option<String>,
    /// How often the config and policy files are checked for changes (a change is loaded once
    /// it has held still for one period); 0s turns the check off (SIGHUP still reloads).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_check: Duration,
}

/// Where `run` reads its set from, for the first load and every reload.
#[derive(Debug, Clone)]
struct Sources {
    config: Option<PathBuf>,
    policies: Option<PathBuf>,
    default_policy: Option<PathBuf>,
}

impl Sources {
    /// Read and validate the whole set (config, policy files, default policy) and build its
    /// HAProxy routers: one path for the start and every reload. Also the notifications
    /// section (applied at start only).
    fn load(&self) -> Result<(PathBuf, ConfigSet, Notifications), CliError> {
        let (config_file, config) = load_config(self.config.as_deref())?;
        let default = DefaultPolicy::from_arg(self.default_policy.as_deref())?;
        let entries = govern(&config, self.policies.as_deref(), default.as_ref())?;
        if entries.is_empty() {
            return Err(CliError::input(format!(
                "{}: no cluster configured",
                config_file.display()
            )));
        }
        let routers =
            crate::adapters::haproxy::HaproxyRuntime::routers_for(entries.iter().map(|e| &e.spec));
        let notifications = config.notifications.clone();
        Ok((config_file, ConfigSet { entries, routers }, notifications))
    }

    /// The files the watcher checks.
    fn watched(&self, config_file: &Path) -> Watched {
        let mut files = vec![config_file.to_path_buf()];
        if let Some(p) = self
            .default_policy
            .as_ref()
            .filter(|p| *p != Path::new("builtin"))
        {
            files.push(p.clone());
        }
        let dir = (self.policies.clone()).unwrap_or_else(|| PathBuf::from(DEFAULT_POLICIES_DIR));
        Watched {
            files,
            dirs: vec![dir],
        }
    }
}

/// The SIGHUP handler, installed first thing: SIGHUP's default action ends the process, so a
/// reload asked for while the service starts must find the handler in place (it is then
/// delivered once the reloader is running).
fn install_sighup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    if hup.is_err() {
        tracing::error!("cannot install the SIGHUP handler: reload on SIGHUP is off");
    }
    hup.ok()
}

/// Forward every SIGHUP as a reload trigger.
async fn forward_sighup(mut hup: tokio::signal::unix::Signal, tx: mpsc::Sender<Trigger>) {
    while hup.recv().await.is_some() {
        tracing::info!(signal = "SIGHUP", "reloading the config and policy files");
        if tx.send(Trigger::Signal).await.is_err() {
            return;
        }
    }
}

/// Logging to stderr; level from RUST_LOG (default `info`, AWS SDK internals at `warn`).
///
/// Whatever RUST_LOG says, the AWS SDK's own targets are capped at `info`: at `debug` and
/// `trace` they print the resolved credentials' access key id, the signed request and its
/// session-token header. As a second guard every log line passes through [`RedactingStderr`],
/// which blanks the credential values found in the environment.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,aws_sdk_rds=warn,aws_sdk_cloudwatch=warn,hyper=warn")
    });
    // Target prefixes: `aws_smithy` covers aws_smithy_runtime, aws_smithy_http_client, ...
    let sdk_cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            [
                "aws_smithy",
                "aws_sigv4",
                "aws_credential_types",
                "aws_config",
                "aws_runtime",
                "aws_sdk",
            ]
            .map(|t| (t, LevelFilter::INFO)),
        );
    let writer = RedactingStderr::from_env();
    let registry = tracing_subscriber::registry();
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(colour_logs())
                    .with_writer(writer)
                    .with_filter(filter.and(sdk_cap)),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(writer)
                    .with_filter(filter.and(sdk_cap)),
            )
            .try_init(),
    };
}

/// Colour in text logs only when stderr is a terminal and NO_COLOR is unset or empty
/// (no-color.org).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `--listen HOST:PORT`: an IP literal, or a host name that resolves (the first address).
async fn resolve_listen(s: &str) -> Result<SocketAddr, CliError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(CliError::input(format!(
            "--listen {s}: expected HOST:PORT (e.g. 127.0.0.1:9187 or localhost:9187)"
        )));
    };
    if port.parse::<u16>().is_err() || host.is_empty() {
        return Err(CliError::input(format!(
            "--listen {s}: expected HOST:PORT with a port from 0 to 65535"
        )));
    }
    let found = tokio::time::timeout(Duration::from_secs(10), tokio::net::lookup_host(s)).await;
    match found {
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| {
            CliError::input(format!("--listen {s}: cannot resolve {host}: no address"))
        }),
        Ok(Err(e)) => Err(CliError::input(format!(
            "--listen {s}: cannot resolve {host}: {e}"
        ))),
        Err(_) => Err(CliError::input(format!(
            "--listen {s}: cannot resolve {host} within 10s"
        ))),
    }
}

/// A stderr writer that replaces the values of `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
/// and `AWS_SESSION_TOKEN` by `** redacted **`. The fmt layer makes one writer per event and
/// writes the whole line before dropping it, so each line is buffered and checked whole.
pub struct RedactingStderr {
    secrets: Arc<Vec<String>>,
}

impl RedactingStderr {
    pub fn from_env() -> Self {
        let secrets = [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .filter(|v| v.len() >= 4)
        .collect();
        RedactingStderr {
            secrets: Arc::new(secrets),
        }
    }
}

/// One log line of [`RedactingStderr`], written out on drop.
pub struct RedactedLine {
    secrets: Arc<Vec<String>>,
    buf: Vec<u8>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactedLine;
    fn make_writer(&'a self) -> RedactedLine {
        RedactedLine {
            secrets: Arc::clone(&self.secrets),
            buf: Vec::new(),
        }
    }
}

impl std::io::Write for RedactedLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for RedactedLine {
    fn drop(&mut self) {
        use std::io::Write;
        if self.buf.is_empty() {
            return;
        }
        let mut line = String::from_utf8_lossy(&self.buf).into_owned();
        for s in self.secrets.iter() {
            if line.contains(s.as_str()) {
                line = line.replace(s.as_str(), "** redacted **");
            }
        }
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// Wait for SIGTERM or SIGINT, then ask the loop to stop; a second signal exits at once.
async fn handle_signals(stop: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        // Keep `stop` alive: dropping it would read as a stop request.
        return std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stopping after the call in flight"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "stopping after the call in flight"),
    }
    let _ = stop.send(true);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("second signal: exiting now");
    std::process::exit(130);
}

pub async fn run(config_path: Option<&Path>, a: RunArgs) -> CliResult {
    init_logging(a.log_format);
    if a.interval < Duration::from_millis(100) {
        return Err(CliError::input(format!(
            "--interval: {} is too short (at least 100ms)",
            humantime::format_duration(a.interval)
        )));
    }
    check_lease_flags(&a)?;
    let hup = install_sighup();
    let sources = Sources {
        config: config_path.map(Path::to_path_buf),
        policies: a.policies.clone(),
        default_policy: a.default_policy.clone(),
    };
    // The files' fingerprint before they are read: an edit made from here on is reloaded.
    let watched = sources.watched(&super::config_path(config_path)?);
    let baseline = (!a.reload_check.is_zero() && !a.once).then(|| watched.fingerprint());
    let (_, set, notifications) = sources.load()?;
    let sinks = build_sinks(&notifications).await?;
    let listen = match &a.listen {
        Some(s) => Some(resolve_listen(s).await?),
        None => None,
    };
    let entries = set.entries;
    log_governance(&entries);

    let metrics = Metrics::new();
    let (mut daemon, started) = build_daemon(entries, set.routers, &a, &metrics).await?;

    let server = serve_http(listen, a.once, &metrics, &daemon).await?;

    if !sinks.is_empty() {
        let names: Vec<&str> = sinks.iter().map(|(s, _)| s.name.as_str()).collect();
        tracing::info!(sinks = %names.join(", "), "notifications on");
        let notifier = Notifier::start(&notifications, sinks, metrics.clone(), Retry::default());
        daemon = daemon.with_notifier(notifier, notifications.pinned_for);
    }
    let leases = start_leases(&a, &daemon.cluster_names(), &metrics).await?;
    if let Some(k) = &leases {
        daemon = daemon.with_leases(k.clone());
    }
    let result = if a.once {
        let r = once(&mut daemon).await;
        if let Some(k) = &leases {
            k.release_all().await;
        }
        r
    } else {
        let watch = baseline.map(|b| (watched, b));
        serve(
            &mut daemon,
            sources,
            hup,
            watch,
            &a,
            &notifications,
            Shared { started, leases },
        )
        .await;
        Ok(())
    };
    if let Some(n) = daemon.take_notifier() {
        n.shutdown(notifications.drain_timeout).await;
    }
    if let Some(s) = server {
        s.stop().await;
    }
    result
}

/// The service until SIGTERM/SIGINT: signals, SIGHUP and the file watcher for reloads.
async fn serve(
    daemon: &mut Daemon,
    sources: Sources,
    hup: Option<tokio::signal::unix::Signal>,
    watch: Option<(Watched, u64)>,
    a: &RunArgs,
    notifications: &Notifications,
    shared: Shared,
) {
    let Shared { started, leases } = shared;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(handle_signals(tx));
    let keeping = leases.map(|k| {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        tokio::spawn(crate::service::leases::keep(
            k,
            clock,
            a.lease_renew,
            rx.clone(),
        ))
    });
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let hup = hup.map(|h| tokio::spawn(forward_sighup(h, reload_tx.clone())));
    let watcher =
        watch.map(|(w, loaded)| tokio::spawn(watch_files(w, loaded, a.reload_check, reload_tx)));
    let started_with = notifications.clone();
    let loader: Loader = Box::new(move || {
        let (_, set, n) = sources.load().map_err(|e| e.message)?;
        same_targets(&started, &set)?;
        if n != started_with {
            tracing::warn!(
                "the notifications section changed: it takes effect at the next restart"
            );
        }
        Ok(set)
    });
    daemon.set_reloader(loader, reload_rx);
    daemon.run(rx).await;
    if let Some(k) = keeping {
        // Stopped with the loop: it releases every lease, for the other copies to take.
        let _ = k.await;
    }
    signals.abort();
    for task in hup.into_iter().chain(watcher) {
        task.abort();
    }
}

/// The daemon over the clusters' AWS clients (one per region and role); the clusters' targets
/// at start, which a reload may not change.
async fn build_daemon(
    entries: Vec<crate::service::daemon::ClusterEntry>,
    routers: crate::ports::Routers,
    a: &RunArgs,
    metrics: &Metrics,
) -> Result<(Daemon, Vec<(String, crate::core::target::Target)>), CliError> {
    // A missing region or credentials ends the service here, before any tick, with a hint.
    crate::adapters::aws::check_environment()
        .await
        .map_err(|e| CliError::input(e.to_string()))?;
    let specs: Vec<&ClusterSpec> = entries.iter().map(|e| &e.spec).collect();
    let targets = crate::adapters::targets::targets_of(&specs);
    for t in targets.iter().filter(|t| !t.is_default()) {
        tracing::info!(target = %t.label(), "clusters in another region or account");
    }
    let (fleet, source) = crate::adapters::targets::clients_for(&specs).await;
    let started: Vec<(String, crate::core::target::Target)> = (entries.iter())
        .map(|e| (e.spec.name.to_string(), e.spec.target.clone()))
        .collect();
    metrics.config_loaded(true, SystemClock.now().timestamp_millis() as f64 / 1000.0);
    let daemon = Daemon::new(
        fleet,
        source,
        routers,
        Arc::new(SystemClock),
        entries,
        metrics.clone(),
        DaemonOptions {
            interval: a.interval,
            observe_only: a.observe_only,
            dry_run: a.dry_run,
            max_backoff: a.max_backoff,
        },
    );
    Ok((daemon, started))
}

/// What the service loop carries besides its files: the clusters' targets at start and the
/// leases of this copy.
struct Shared {
    started: Vec<(String, crate::core::target::Target)>,
    leases: Option<Arc<LeaseKeeper>>,
}

/// The lease keeper of `--lease-table`, after its first round (so that the first tick acts
/// on the clusters this copy holds); `None` without a table.
async fn start_leases(
    a: &RunArgs,
    clusters: &[String],
    metrics: &Metrics,
) -> Result<Option<Arc<LeaseKeeper>>, CliError> {
    let Some(table) = &a.lease_table else {
        return Ok(None);
    };
    let me = a.copy_id.clone().unwrap_or_else(default_copy_id);
    let cfg = crate::adapters::aws::sdk_config().await;
    let store =
        crate::adapters::dynamodb::DynamoLeases::new(aws_sdk_dynamodb::Client::new(&cfg), table);
    let times = crate::core::lease::LeaseTimes {
        duration: chrono::Duration::from_std(a.lease_duration).unwrap_or_default(),
        skew: chrono::Duration::from_std(a.lease_skew).unwrap_or_default(),
    };
    let keeper = Arc::new(LeaseKeeper::new(
        Arc::new(store),
        me.clone(),
        times,
        clusters.to_vec(),
        metrics.clone(),
    ));
    if let Err(e) = keeper.round(SystemClock.now()).await {
        tracing::warn!(table = %table, error = %e, "lease table not reachable yet");
    }
    let held: Vec<String> = keeper.owned().into_iter().map(|l| l.key).collect();
    tracing::info!(copy = %me, table = %table, held = %held.join(","), "sharing the clusters through leases");
    Ok(Some(keeper))
}

/// The lease flags, checked before anything is set up.
fn check_lease_flags(a: &RunArgs) -> CliResult {
    if a.lease_table.is_none() {
        return Ok(());
    }
    if a.lease_renew.is_zero() || a.lease_renew * 2 > a.lease_duration {
        return Err(CliError::input(
            "--lease-renew must be above 0 and at most half of --lease-duration",
        ));
    }
    if a.lease_skew * 4 > a.lease_duration {
        return Err(CliError::input(
            "--lease-skew must be at most a quarter of --lease-duration",
        ));
    }
    Ok(())
}

/// `<host name>-<process id>`.
fn default_copy_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "copy".into());
    format!("{host}-{}", std::process::id())
}

/// A reload may not move a cluster to another region or account, nor add a cluster whose
/// region or role the service has no client for (they are made at start): restart for those.
fn same_targets(
    started: &[(String, crate::core::target::Target)],
    set: &ConfigSet,
) -> Result<(), String> {
    let known = |t: &crate::core::target::Target| started.iter().any(|(_, s)| s == t);
    for e in &set.entries {
        let was = started
            .iter()
            .find(|(n, _)| **n == *e.spec.name)
            .map(|(_, t)| t);
        let moved = was.is_some_and(|t| *t != e.spec.target);
        if moved || !known(&e.spec.target) {
            return Err(format!(
                "cluster {}: its region or role ({}) is not the one the service started with: restart to apply",
                e.spec.name,
                e.spec.target.label()
            ));
        }
    }
    Ok(())
}

/// Log at start which policy governs each cluster.
fn log_governance(entries: &[crate::service::daemon::ClusterEntry]) {
    for e in entries {
        if e.managed {
            tracing::info!(
                cluster = %e.spec.name,
                policy = %e.policy_source,
                min = e.policy.min_replicas,
                max = e.policy.max_replicas,
                "cluster managed"
            );
        } else {
            tracing::info!(cluster = %e.spec.name, policy = %e.policy_source, "cluster observed only");
        }
    }
}

/// The HTTP server (status page, metrics, health): on `--listen`, else the default address,
/// and not at all for `--once` without `--listen`.
async fn serve_http(
    listen: Option<SocketAddr>,
    once: bool,
    metrics: &Metrics,
    daemon: &Daemon,
) -> Result<Option<http::HttpServer>, CliError> {
    let addr = match (listen, once) {
        (Some(addr), _) => addr,
        (None, false) => DEFAULT_LISTEN.parse().expect("default listen address"),
        (None, true) => return Ok(None),
    };
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "serving metrics on a non-loopback address");
    }
    let s = http::start_with_status(
        addr,
        metrics.clone(),
        daemon.health(),
        daemon.status_board(),
    )
    .await
    .map_err(|e| CliError::runtime(format!("cannot listen on {addr}: {e}")))?;
    tracing::info!(addr = %s.local_addr, "listening on http://{}/metrics", s.local_addr);
    Ok(Some(s))
}

/// `--once`: one tick; a cluster that failed makes it exit 1.
async fn once(daemon: &mut Daemon) -> CliResult {
    let outcome = daemon.tick().await;
    let errors: Vec<String> = outcome.errors().map(|(c, e)| format!("{c}: {e}")).collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(CliError::runtime(format!(
        "tick failed for {} cluster(s): {}",
        errors.len(),
        errors.join("; ")
    )))
}

/// The configured sinks' adapters; a token that cannot be read is bad input.
async fn build_sinks(n: &Notifications) -> Result<Vec<(Sink, Arc<dyn EventSink>)>, CliError> {
    let mut out: Vec<(Sink, Arc<dyn EventSink>)> = Vec::new();
    let mut sdk = None;
    for s in &n.sinks {
        let sink: Arc<dyn EventSink> = match &s.kind {
            SinkKind::EventBridge { bus, region } => {
                if sdk.is_none() {
                    sdk = Some(crate::adapters::aws::sdk_config().await);
                }
                let cfg = sdk.as_ref().expect("loaded above");
                Arc::new(EventBridgeSink::new(cfg, bus, region.as_deref()))
            }
            SinkKind::Webhook {
                url,
                token,
                timeout,
            } => {
                let token = match token {
                    Some(t) => Some(read_token(t).map_err(|e| {
                        CliError::input(format!("notifications sink {:?}: {e}", s.name))
                    })?),
                    None => None,
                };
                let w = WebhookSink::new(url, token, *timeout)
                    .map_err(|e| CliError::runtime(format!("sink {:?}: {e}", s.name)))?;
                Arc::new(w)
            }
        };
        out.push((s.clone(), sink));
    }
    Ok(out)
}
