//! `elasticrds validate` and `elasticrds plan`: check policy files against the cluster config,
//! and explain what the decision core would decide now (and what the reconciler would then
//! do), changing nothing. Also the policy loading the service shares (`load_policies`,
//! `policy_for`).

use super::cluster::find_cluster;
use super::govern::{govern_one, policies_dir, DefaultPolicy, DEFAULT_POLICIES_DIR};
use super::{load_config, print_json, read_input, CliError, CliResult, Output};
use crate::adapters::recorded::RecordedMetrics;
use crate::control::{tick_observed, ClusterMemory, TickContext, TickOptions};
use crate::core::config::{ClusterSpec, Config};
use crate::core::decide::{Decision, ScaleState};
use crate::core::input::{InputError, InputErrors};
use crate::core::plan::{plan, ClusterView, Plan};
use crate::core::policy::Policy;
use crate::ports::MetricsSource;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Policy files (YAML). Default: every *.yaml/*.yml in ./policies.
    pub files: Vec<PathBuf>,
    /// Also check a default policy (a file with `cluster: "*"`, as `run --default-policy`
    /// takes it) against every cluster of the config.
    #[arg(long, value_name = "FILE")]
    pub default_policy: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// Directory of policy files; the one naming the cluster is used [default: ./policies
    /// when it exists]. The same rule as `run`: a cluster no policy names is observed only.
    #[arg(long, value_name = "DIR", conflicts_with = "policy")]
    pub policies: Option<PathBuf>,
    /// As `run --default-policy`: `builtin` or a policy file with `cluster: "*"` for a
    /// cluster no policy file names.
    #[arg(long, value_name = "FILE|builtin", conflicts_with = "policy")]
    pub default_policy: Option<PathBuf>,
    /// One policy file to use instead.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Recorded metrics (CSV `timestamp,instance,metric,statistic,value`, or JSON) instead of
    /// CloudWatch.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Decide as of this time (RFC 3339), e.g. to match a recorded metrics file. Moves the
    /// clock for the metric window, schedules and cooldowns; the fleet is observed as it is
    /// now. Default: now.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    pub at: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

fn parse_at(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time (e.g. 2026-11-25T12:00:00Z): {e}"))
}

/// Policy files in `dir` (`*.yaml`, `*.yml`), sorted. Entries of any type are listed: one
/// that is not a regular file (a FIFO, a device, a dangling link) is refused when read, not
/// skipped in silence.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| CliError::input(format!("{}: cannot read directory: {e}", dir.display())))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Parse policy files, collecting every error of every file (unreadable files included), and
/// refusing two policies for the same cluster.
pub fn parse_policy_files(
    files: &[PathBuf],
    config: &Config,
) -> (Vec<(PathBuf, Policy)>, Vec<InputError>) {
    let mut ok: Vec<(PathBuf, Policy)> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = match read_input(f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(InputError::new(
                    &name,
                    "",
                    e.message.replacen(&format!("{name}: "), "", 1),
                ));
                continue;
            }
        };
        match Policy::parse(&name, &text, config) {
            Ok(p) => {
                if let Some((other, _)) = ok.iter().find(|(_, q)| q.cluster == p.cluster) {
                    errors.push(
                        InputError::new(
                            &name,
                            "cluster",
                            format!(
                                "cluster {:?} already has a policy in {}: one policy per cluster",
                                p.cluster,
                                other.display()
                            ),
                        )
                        .at(crate::core::input::locate_in(&name, &text, "cluster")),
                    );
                } else {
                    ok.push((f.clone(), p));
                }
            }
            Err(InputErrors(list)) => errors.extend(list),
        }
    }
    (ok, errors)
}

/// Load every policy in `dir`, by cluster name. Any error in any file is bad input (exit 2).
pub fn load_policies(
    dir: &Path,
    config: &Config,
) -> Result<BTreeMap<String, (PathBuf, Policy)>, CliError> {
    let files = policy_files(dir)?;
    let (ok, errors) = parse_policy_files(&files, config);
    if !errors.is_empty() {
        return Err(InputErrors(errors).into());
    }
    Ok(ok
        .into_iter()
        .map(|(f, p)| (p.cluster.clone(), (f, p)))
        .collect())
}

#[derive(Serialize)]
struct ValidateReport {
    ok: bool,
    files: Vec<String>,
    errors: Vec<InputError>,
}

pub async fn validate(config: Option<&Path>, a: ValidateArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let files = if a.files.is_empty() {
        match policies_dir(None)? {
            Some(dir) => policy_files(&dir)?,
            None => Vec::new(),
        }
    } else {
        a.files.clone()
    };
    if files.is_empty() && a.default_policy.is_none() {
        return Err(CliError::input(format!(
            "no policy files given and none in ./{DEFAULT_POLICIES_DIR}/"
        )));
    }
    let (ok, mut errors) = parse_policy_files(&files, &config);
    let default_ok = match &a.default_policy {
        Some(f) => check_default_policy(f, &config, &mut errors),
        None => None,
    };
    let report = ValidateReport {
        ok: errors.is_empty(),
        files: files.iter().map(|f| f.display().to_string()).collect(),
        errors,
    };
    match a.output {
        Output::Json => print_json(&report)?,
        Output::Text => {
            for (f, p) in &ok {
                println!("{}: ok (cluster {})", f.display(), p.cluster);
            }
            if let (Some(f), Some(n)) = (&a.default_policy, default_ok) {
                println!(
                    "{}: ok (default policy, checked against {n} cluster(s))",
                    f.display()
                );
            }
        }
    }
    if report.ok {
        Ok(())
    } else {
        let n = report.errors.len();
        let msg = match a.output {
            Output::Text => format!(
                "{}\n{n} error(s) in the policies",
                InputErrors(report.errors)
            ),
            Output::Json => format!("{n} error(s) in the policies"),
        };
        Err(CliError::input(msg))
    }
}

/// `validate --default-policy FILE`: the file checked as the default policy of every cluster
/// of `config` (its errors added to `errors`, each once); the number of clusters when it is
/// valid for all of them.
fn check_default_policy(
    f: &Path,
    config: &crate::core::config::Config,
    errors: &mut Vec<InputError>,
) -> Option<usize> {
    let name = f.display().to_string();
    let text = match read_input(f) {
        Ok(t) => t,
        Err(e) => {
            let msg = e.message.replacen(&format!("{name}: "), "", 1);
            errors.push(InputError::new(&name, "", msg));
            return None;
        }
    };
    let before = errors.len();
    for cluster in config.clusters.keys() {
        if let Err(InputErrors(list)) = Policy::parse_default(&name, &text, config, cluster) {
            for e in list {
                if !errors[before..].contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
    (errors.len() == before).then_some(config.clusters.len())
}

/// What `plan` prints.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub policy_file: Option<String>,
    pub decision: Decision,
    /// The scale state the decision started from (read from the master's tags).
    pub state: ScaleState,
    /// The reconciler's plan for the decision's target. Shown even when observe-only (then
    /// `would_execute` is false: the daemon would not execute it).
    pub plan: Plan,
    pub would_execute: bool,
    /// What executing the plan would involve beyond the actions themselves (e.g. draining a
    /// replica from HAProxy before its delete).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Decide and plan for one cluster from an observed view and metrics: the library half of
/// `elasticrds plan`, shared with tests. It runs the daemon's own control tick
/// (`control::tick_cluster`) in dry-run mode: the same metric window, the same decision and
/// the same plan, with nothing executed and no state written.
pub async fn plan_report(
    ctx: &TickContext<'_>,
    spec: &ClusterSpec,
    policy: &Policy,
    policy_file: Option<&Path>,
    mut view: ClusterView,
) -> Result<PlanReport, CliError> {
    // A fresh memory: what `run` would do on its first tick (the state read from the
    // master's tags, replicas already available counted from their creation).
    let now = ctx.clock.now();
    let mut memory = ClusterMemory::default();
    memory.observe(&mut view, now);
    let state = memory.state().clone();
    let opts = TickOptions {
        observe_only: false,
        dry_run: true,
    };
    let tick = tick_observed(ctx, spec, policy, &view, &mut memory, now, opts).await?;
    let decision = tick.decision;
    // Observe-only: the tick plans nothing; show what would be planned all the same.
    let p = tick
        .plan
        .unwrap_or_else(|| plan(spec, &view, &decision.target));
    let notes = tick
        .actions
        .iter()
        .flat_map(|r| r.notes.iter().cloned())
        .collect();
    Ok(PlanReport {
        policy_file: policy_file.map(|f| f.display().to_string()),
        would_execute: !decision.observe_only && !p.actions.is_empty(),
        decision,
        state,
        plan: p,
        notes,
    })
}

pub fn plan_text(r: &PlanReport) -> String {
    let d = &r.decision;
    let mut s = format!(
        "{}: {} → {} replica(s) ({}; reason {})\n",
        d.cluster,
        d.current,
        d.desired,
        match d.direction {
            crate::core::decide::Direction::Out => "scale out",
            crate::core::decide::Direction::In => "scale in",
            crate::core::decide::Direction::None => "no change",
        },
        d.primary
    );
    s.push_str(&format!(
        "  policy: {}\n  at: {}\n  bounds: min {} max {}{}\n",
        r.policy_file.as_deref().unwrap_or("built-in default"),
        d.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        d.min,
        d.max,
        if d.schedules.is_empty() {
            String::new()
        } else {
            format!(" (schedule {})", d.schedules.join(", "))
        }
    ));
    for o in &d.observed {
        s.push_str(&format!(
            "  observed: {} {} ({} over {} instance(s)) = {}{}\n",
            o.metric,
            o.statistic.as_str(),
            o.aggregation.as_str(),
            o.instances,
            o.value.map_or("no data".to_string(), |v| format!("{v:.2}")),
            o.target.map_or(String::new(), |t| format!(", target {t}")),
        ));
    }
    for p in d.pauses.all() {
        let state = if p.in_force(d.at) {
            "paused"
        } else {
            "pause expired"
        };
        s.push_str(&format!("  {state}: {}\n", crate::text::pause_text(p)));
    }
    s.push_str(&format!(
        "  cooldown left: out {}, in {}\n",
        crate::text::fmt_secs(d.cooldown_remaining_out.as_secs()),
        crate::text::fmt_secs(d.cooldown_remaining_in.as_secs())
    ));
    s.push_str("  reasons:\n");
    for rs in &d.reasons {
        s.push_str(&format!("    [{}] {}\n", rs.code(), rs));
    }
    s.push_str(&reconciler_text(r));
    s
}

/// The reconciler part of [`plan_text`]: what it would do, wait for, hold and report.
fn reconciler_text(r: &PlanReport) -> String {
    let d = &r.decision;
    let mut s = String::new();
    s.push_str(if d.observe_only {
        "  reconciler (observe-only: would not be executed):\n"
    } else {
        "  reconciler would:\n"
    });
    if r.plan.actions.is_empty() {
        s.push_str("    nothing\n");
    }
    for a in &r.plan.actions {
        s.push_str(&format!("    {} ({})\n", a.action, a.reason));
    }
    for h in &r.plan.held {
        s.push_str(&format!(
            "    held: {} ({})\n",
            h.action,
            crate::text::pause_text(&h.pause)
        ));
    }
    for w in &r.plan.waiting {
        s.push_str(&format!(
            "    wait: {} {} ({})\n",
            w.id,
            w.status.as_deref().unwrap_or("absent"),
            w.reason
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("    note: {n}\n"));
    }
    for d in &r.plan.drift {
        s.push_str(&format!(
            "    drift: {} is {} (config says {}; reported, not changed)\n",
            d.id, d.actual, d.configured
        ));
    }
    s.push_str(&super::cluster::drift_lines(&r.plan.template_drift, "    "));
    for f in &r.plan.foreign {
        s.push_str(&format!("    foreign: {f} (left alone)\n"));
    }
    for line in super::cluster::blocked_lines(&r.plan) {
        s.push_str(&format!("    {line}\n"));
    }
    s.push_str("  nothing was changed\n");
    s
}

/// `plan --policy FILE`: the file must parse and govern `spec`'s cluster.
fn policy_file_for(
    f: &Path,
    config: &Config,
    spec: &ClusterSpec,
) -> Result<(Option<PathBuf>, Policy), CliError> {
    let name = f.display().to_string();
    let text = read_input(f)?;
    let p = Policy::parse(&name, &text, config)?;
    if *p.cluster != *spec.name {
        return Err(CliError::input(format!(
            "{name}: the policy is for cluster {:?}, not {:?}",
            p.cluster, spec.name
        )));
    }
    Ok((Some(f.to_path_buf()), p))
}

pub async fn run_plan(config: Option<&Path>, a: PlanArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let chosen = match &a.policy {
        Some(f) => policy_file_for(f, &config, spec),
        None => DefaultPolicy::from_arg(a.default_policy.as_deref())
            .and_then(|d| govern_one(&config, spec, a.policies.as_deref(), d.as_ref()))
            .map(|e| (Some(PathBuf::from(e.policy_source)), e.policy)),
    };
    let recorded = match &a.metrics {
        Some(f) => RecordedMetrics::load(f).map(Some).map_err(CliError::from),
        None => Ok(None),
    };
    // Bad input in the policy and in the metrics file: report both at once.
    let ((policy_file, policy), recorded) = match (chosen, recorded) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
        (Err(p), Err(m)) => return Err(CliError::input(format!("{}\n{}", p.message, m.message))),
    };
    let fleet = crate::adapters::targets::fleet_for(spec).await;
    let clock = crate::ports::ManualClock::new(a.at.unwrap_or_else(Utc::now));
    let routers = crate::adapters::haproxy::HaproxyRuntime::routers_for([spec]);
    let view = crate::reconcile::observe_one(&fleet, spec).await?;
    let file = policy_file.as_deref();
    let cw;
    let metrics: &dyn MetricsSource = match &recorded {
        Some(r) => r,
        None => {
            cw = crate::adapters::targets::metrics_for(spec).await;
            &cw
        }
    };
    let ctx = TickContext {
        fleet: &fleet,
        metrics,
        routers: &routers,
        clock: &clock,
    };
    let report = plan_report(&ctx, spec, &policy, file, view).await?;
    match a.output {
        Output::Text => print!("{}", plan_text(&report)),
        Output::Json => print_json(&report)?,
    }
    Ok(())
}
