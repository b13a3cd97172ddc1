//! The old tool's verbs: `create-cluster`, `modify-instance` and `status`, on the shared
//! reconciler (`core::plan` + `reconcile`) and the RDS adapter.

use super::{load_config, print_json, CliError, CliResult, Output};
use crate::adapters::rds::RdsFleet;
use crate::core::config::ClusterSpec;
use crate::core::domain::{Instance, InstanceClass, InstanceId};
use crate::core::plan::{plan, plan_modify, ClusterView, Plan, Target};
use crate::ports::{Fleet, SystemClock};
use crate::reconcile::{converge, execute, observe_one, ActionResult, ExecOptions, Outcome};
use clap::Args;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// Create at most N replicas (in config order); surplus replicas are deleted from the end.
    #[arg(long, value_name = "N")]
    pub max_replicas: Option<usize>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Wait until every planned instance is available (progress on stderr).
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this long (with --wait).
    #[arg(long, default_value = "60m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How often to poll while waiting.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll: Duration,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ModifyArgs {
    /// A master or replica id from the config.
    pub instance_id: String,
    /// The new instance class, e.g. db.m5.large.
    pub class: String,
    /// Change it even when no other instance would serve meanwhile.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    pub cluster: String,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

pub fn find_cluster<'a>(
    config: &'a crate::core::config::Config,
    name: &str,
) -> Result<&'a ClusterSpec, CliError> {
    config.cluster(name).ok_or_else(|| {
        let known: Vec<&str> = config.clusters.keys().map(String::as_str).collect();
        CliError::input(format!(
            "cluster {name:?} is not in the config (known: {})",
            known.join(", ")
        ))
    })
}

fn print_plan_text(p: &Plan, results: &[ActionResult]) {
    println!("{}: target {} replica(s)", p.cluster, p.target_replicas);
    if p.actions.is_empty() {
        println!("  nothing to do");
    }
    for r in results {
        let tag = match &r.outcome {
            Outcome::Done => "done".to_string(),
            Outcome::DryRun => "dry-run".to_string(),
            Outcome::AlreadyDone => "already done".to_string(),
            Outcome::Refused(w) => format!("REFUSED: {w}"),
            Outcome::Failed(w) => format!("FAILED: {w}"),
            Outcome::Held(w) => format!("HELD: {w}"),
        };
        println!("  {} [{}] ({})", r.planned.action, tag, r.planned.reason);
        for n in &r.notes {
            println!("    {n}");
        }
    }
    for w in &p.waiting {
        println!(
            "  waiting: {} {} ({})",
            w.id,
            w.status.as_deref().unwrap_or("absent"),
            w.reason
        );
    }
    for d in &p.drift {
        println!(
            "  drift: {} is {} (config says {})",
            d.id, d.actual, d.configured
        );
    }
    for f in &p.foreign {
        println!("  foreign: {f} replicates from the master but is not in the config (left alone)");
    }
}

#[derive(Serialize)]
struct PlanReport<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    results: &'a [ActionResult],
    dry_run: bool,
}

fn failures(results: &[ActionResult]) -> CliResult {
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.outcome.is_failure())
        .map(|r| format!("{}: {:?}", r.planned.action, r.outcome))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::runtime(format!(
            "{} action(s) failed: {}",
            failed.len(),
            failed.join("; ")
        )))
    }
}

pub async fn create_cluster(config: Option<&Path>, a: CreateArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let fleet = RdsFleet::from_env().await;
    create_cluster_on(&fleet, spec, &a).await
}

/// `create-cluster` against any fleet (the CLI passes RDS).
pub async fn create_cluster_on(fleet: &dyn Fleet, spec: &ClusterSpec, a: &CreateArgs) -> CliResult {
    let target = Target::replicas(a.max_replicas.unwrap_or(spec.replicas.len()));
    let view = observe_one(fleet, spec).await?;
    let mut p = plan(spec, &view, &target);
    let mut results = execute(fleet, spec, &p, &ExecOptions { dry_run: a.dry_run }).await;
    // Follow-up rounds in the same run for what became possible at once (a master that is
    // already available after its restore, as on an emulator). On RDS a restored master is
    // `creating` for minutes, so there the replicas wait for the next run or `--wait`.
    // A round runs only while every action so far succeeded, and never acts on an instance
    // acted on earlier in this run.
    while !a.dry_run
        && !results.is_empty()
        && results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Done | Outcome::AlreadyDone))
    {
        let next = plan(spec, &observe_one(fleet, spec).await?, &target);
        let repeats = next.actions.iter().any(|n| {
            p.actions
                .iter()
                .any(|d| d.action.instance().same_as(n.action.instance()))
        });
        if next.actions.is_empty() || repeats {
            if !repeats {
                (p.waiting, p.drift, p.foreign) = (next.waiting, next.drift, next.foreign);
            }
            break;
        }
        let more = execute(fleet, spec, &next, &ExecOptions { dry_run: false }).await;
        p.actions.extend(next.actions);
        (p.waiting, p.drift, p.foreign) = (next.waiting, next.drift, next.foreign);
        results.extend(more);
    }
    match a.output {
        Output::Text => print_plan_text(&p, &results),
        Output::Json => print_json(&PlanReport {
            plan: &p,
            results: &results,
            dry_run: a.dry_run,
        })?,
    }
    failures(&results)?;
    if a.wait && !a.dry_run {
        let mut progress = |pr: &crate::reconcile::Progress| {
            let waiting: Vec<String> = pr
                .waiting
                .iter()
                .map(|(id, st)| format!("{id}={}", st.as_deref().unwrap_or("absent")))
                .collect();
            eprintln!(
                "[{}s] waiting for {}",
                pr.elapsed.as_secs(),
                if waiting.is_empty() {
                    "nothing".into()
                } else {
                    waiting.join(", ")
                }
            );
        };
        let done = converge(
            fleet,
            &SystemClock,
            spec,
            &target,
            a.timeout,
            a.poll,
            &mut progress,
        )
        .await
        .map_err(|e| CliError::runtime(e.to_string()))?;
        for r in &done {
            eprintln!("  {} [{}]", r.planned.action, r.outcome.label());
        }
        eprintln!("{}: converged", spec.name);
    }
    Ok(())
}

pub async fn modify_instance(config: Option<&Path>, a: ModifyArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let id = InstanceId::parse(&a.instance_id)
        .map_err(|e| CliError::input(format!("instance id: {e}")))?;
    let class =
        InstanceClass::parse(&a.class).map_err(|e| CliError::input(format!("class: {e}")))?;
    let spec = config.cluster_of(&id).ok_or_else(|| {
        CliError::input(format!(
            "{id} is not in the cluster config; elasticrds only changes configured instances"
        ))
    })?;
    let fleet = RdsFleet::from_env().await;
    modify_instance_on(&fleet, spec, &id, &class, &a).await
}

pub async fn modify_instance_on(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    id: &InstanceId,
    class: &InstanceClass,
    a: &ModifyArgs,
) -> CliResult {
    let view = observe_one(fleet, spec).await?;
    let planned = plan_modify(spec, &view, id, class, a.force)
        .map_err(|e| CliError::runtime(e.to_string()))?;
    let Some(planned) = planned else {
        match a.output {
            Output::Text => println!("{id} is already {class}: nothing to do"),
            Output::Json => {
                print_json(&serde_json::json!({"instance": id, "class": class, "changed": false}))?
            }
        }
        return Ok(());
    };
    let result = crate::reconcile::execute_action(
        fleet,
        spec,
        &planned,
        &ExecOptions { dry_run: a.dry_run },
    )
    .await;
    match a.output {
        Output::Text => println!(
            "{} [{}] ({})",
            result.planned.action,
            result.outcome.label(),
            result.planned.reason
        ),
        Output::Json => print_json(&result)?,
    }
    failures(std::slice::from_ref(&result))
}

#[derive(Serialize)]
struct InstanceRow {
    id: InstanceId,
    class: Option<InstanceClass>,
    status: String,
    configured_class: Option<InstanceClass>,
    drift: bool,
}

#[derive(Serialize)]
pub struct StatusReport {
    cluster: String,
    master: InstanceRow,
    replicas: Vec<InstanceRow>,
    /// Configured replicas that do not exist.
    absent: Vec<InstanceId>,
    /// Replicas of the master that are not in the config.
    foreign: Vec<InstanceRow>,
}

fn row(
    id: &InstanceId,
    inst: Option<&Instance>,
    configured: Option<&InstanceClass>,
) -> InstanceRow {
    InstanceRow {
        id: inst.map_or_else(|| id.clone(), |i| i.id.clone()),
        class: inst.map(|i| i.class.clone()),
        status: inst.map_or_else(|| "absent".to_string(), |i| i.status.to_string()),
        configured_class: configured.cloned(),
        drift: matches!((inst, configured), (Some(i), Some(c)) if &i.class != c),
    }
}

pub fn status_report(spec: &ClusterSpec, view: &ClusterView) -> StatusReport {
    StatusReport {
        cluster: spec.name.clone(),
        master: row(
            &spec.master.id,
            view.master.as_ref(),
            Some(&spec.master.class),
        ),
        replicas: spec
            .replicas
            .iter()
            .zip(&view.replicas)
            .filter_map(|(rs, v)| v.as_ref().map(|i| row(&rs.id, Some(i), Some(&rs.class))))
            .collect(),
        absent: spec
            .replicas
            .iter()
            .zip(&view.replicas)
            .filter(|(_, v)| v.is_none())
            .map(|(rs, _)| rs.id.clone())
            .collect(),
        foreign: view
            .foreign
            .iter()
            .map(|f| row(&f.id, f.instance.as_ref(), None))
            .collect(),
    }
}

/// The old tool's table, plus drift and foreign instances.
pub fn status_text(r: &StatusReport) -> String {
    let line = |x: &InstanceRow| {
        let class = x.class.as_ref().map_or("-".to_string(), |c| c.to_string());
        let mut s = format!("          {}     {}     {}", x.id, class, x.status);
        if x.drift {
            if let Some(c) = &x.configured_class {
                s.push_str(&format!("     (drift: config says {c})"));
            }
        }
        s
    };
    let mut out = format!(
        "{}\n    master\n{}\n     read replica\n",
        r.cluster,
        line(&r.master)
    );
    for x in &r.replicas {
        out.push_str(&line(x));
        out.push('\n');
    }
    if !r.foreign.is_empty() {
        out.push_str("     foreign (not in config, left alone)\n");
        for x in &r.foreign {
            out.push_str(&line(x));
            out.push('\n');
        }
    }
    out
}

pub async fn status(config: Option<&Path>, a: StatusArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let fleet = RdsFleet::from_env().await;
    let view = observe_one(&fleet, spec).await?;
    let report = status_report(spec, &view);
    match a.output {
        Output::Text => print!("{}", status_text(&report)),
        Output::Json => print_json(&report)?,
    }
    Ok(())
}
