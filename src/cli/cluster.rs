//! The old tool's verbs: `create-cluster`, `modify-instance` and `status`, on the shared
//! reconciler (`core::plan` + `reconcile`) and the RDS adapter.

use super::{load_config, print_json, CliError, CliResult, Output};
use crate::core::config::ClusterSpec;
use crate::core::domain::{Instance, InstanceClass, InstanceId};
use crate::core::pause::Pause;
use crate::core::plan::{
    plan, plan_modify, template_drift, ClusterView, ConflictKind, MasterIssue, Plan, Target,
    TemplateDrift,
};
use crate::ports::{Clock, Fleet, Routers, SystemClock};
use crate::reconcile::{
    apply, converge, observe_one, ActionResult, Drains, ExecOptions, Outcome, Route,
};
use crate::text::{conflict_kind, conflict_message, master_issue, pause_text};
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// Create at most N replicas (in config order); surplus replicas are deleted from the end.
    #[arg(long, allow_negative_numbers = true, value_name = "N")]
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
    /// Output format.
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
    /// Print the planned change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// Output format.
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

/// How an action's outcome is shown in text output.
fn outcome_tag(o: &Outcome) -> String {
    match o {
        Outcome::Done => "done".to_string(),
        Outcome::DryRun => "dry-run".to_string(),
        Outcome::AlreadyDone => "already done".to_string(),
        Outcome::Refused(w) => format!("REFUSED: {w}"),
        Outcome::Failed(w) => format!("FAILED: {w}"),
        Outcome::Held(w) => format!("HELD: {w}"),
        Outcome::Draining(w) => format!("DRAINING: {w}"),
    }
}

fn print_plan_text(p: &Plan, results: &[ActionResult]) {
    println!("{}: target {} replica(s)", p.cluster, p.target_replicas);
    if p.actions.is_empty() {
        println!("  nothing to do");
    }
    for r in results {
        let tag = outcome_tag(&r.outcome);
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
    print!("{}", drift_lines(&p.template_drift, "  "));
    for f in &p.foreign {
        println!("  foreign: {f} replicates from the master but is not in the config (left alone)");
    }
    for line in blocked_lines(p) {
        println!("  {line}");
    }
}

/// The plan's blocked slots and master issues, as `create-cluster`, `modify-instance` and
/// `plan` print them (without indentation).
pub fn blocked_lines(p: &Plan) -> Vec<String> {
    let mut out: Vec<String> = p
        .blocked
        .iter()
        .map(|b| {
            format!(
                "conflict: {} (position {} of the list) is {}, not a read replica of the master: left alone, slot blocked",
                b.id,
                b.position,
                conflict_kind(&b.kind)
            )
        })
        .collect();
    if !p.blocked.is_empty() {
        out.push(format!(
            "usable replica slots: {} of {}",
            p.usable_slots,
            p.usable_slots + p.blocked.len()
        ));
    }
    out.extend(
        p.master_issues
            .iter()
            .map(|m| format!("warning: {}", master_issue(m))),
    );
    out
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
        .map(|r| format!("{}: {}", r.planned.action, outcome_tag(&r.outcome)))
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
    if a.wait && a.poll.is_zero() {
        return Err(CliError::input("--poll must be longer than 0s"));
    }
    let fleet = crate::adapters::targets::fleet_for(spec).await;
    let mut progress = |line: String| eprintln!("{line}");
    let routers = crate::adapters::haproxy::HaproxyRuntime::routers_for([spec]);
    create_cluster_on(&fleet, &SystemClock, &routers, spec, &a, &mut progress).await
}

/// One `--wait` progress line: elapsed time, what is still being waited for, actions so far.
pub fn progress_line(pr: &crate::reconcile::Progress) -> String {
    let waiting: Vec<String> = pr
        .waiting
        .iter()
        .map(|(id, st)| format!("{id} ({})", st.as_deref().unwrap_or("not created yet")))
        .collect();
    let elapsed = humantime::format_duration(Duration::from_secs(pr.elapsed.as_secs()));
    if waiting.is_empty() {
        format!(
            "[{elapsed}] acted, checking again; {} action(s) executed so far",
            pr.executed
        )
    } else {
        format!(
            "[{elapsed}] waiting for {}; {} action(s) executed so far",
            waiting.join(", "),
            pr.executed
        )
    }
}

/// `create-cluster` against any fleet and clock (the CLI passes RDS and the system clock;
/// tests a simulated fleet and a manual clock). The plan and results go to stdout; with
/// `--wait`, progress lines go to `progress` (stderr in the CLI).
pub async fn create_cluster_on(
    fleet: &dyn Fleet,
    clock: &dyn Clock,
    routers: &Routers,
    spec: &ClusterSpec,
    a: &CreateArgs,
    progress: &mut (dyn FnMut(String) + Send),
) -> CliResult {
    let target = Target::replicas(a.max_replicas.unwrap_or(spec.replicas.len()));
    let route = Route::of(routers, spec);
    let opts = ExecOptions {
        dry_run: a.dry_run,
        ..ExecOptions::default()
    };
    let (p, results) = create_rounds(fleet, clock, spec, route, &target, &opts).await?;
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
        wait_converged(fleet, clock, spec, route, &target, a, progress).await?;
    }
    Ok(())
}

/// Plan towards `target` and apply, then follow-up rounds in the same run for what became
/// possible at once (a master that is already available after its restore, as on an
/// emulator). On RDS a restored master is `creating` for minutes, so there the replicas wait
/// for the next run or `--wait`. A round runs only while every action so far succeeded, and
/// never acts on an instance acted on earlier in this run. The plan (the actions of every
/// round, the last round's waiting, drift and foreign) and every result.
async fn create_rounds(
    fleet: &dyn Fleet,
    clock: &dyn Clock,
    spec: &ClusterSpec,
    route: Option<Route<'_>>,
    target: &Target,
    opts: &ExecOptions,
) -> Result<(Plan, Vec<ActionResult>), CliError> {
    let mut drains = Drains::default();
    let view = observe_one(fleet, spec).await?;
    let mut p = plan(spec, &view, target);
    let now = clock.now();
    let mut results = apply(fleet, spec, route, p.clone(), &mut drains, now, opts).await;
    while !opts.dry_run
        && !results.is_empty()
        && results
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Done | Outcome::AlreadyDone))
    {
        let next = plan(spec, &observe_one(fleet, spec).await?, target);
        let repeats = next.actions.iter().any(|n| {
            p.actions
                .iter()
                .any(|d| d.action.instance() == n.action.instance())
        });
        if next.actions.is_empty() || repeats {
            if !repeats {
                (p.waiting, p.drift, p.foreign) = (next.waiting, next.drift, next.foreign);
            }
            break;
        }
        let now = clock.now();
        let more = apply(fleet, spec, route, next.clone(), &mut drains, now, opts).await;
        p.actions.extend(next.actions);
        (p.waiting, p.drift, p.foreign) = (next.waiting, next.drift, next.foreign);
        results.extend(more);
    }
    Ok((p, results))
}

/// `create-cluster --wait`: converge on `target`, progress lines to `progress`.
async fn wait_converged(
    fleet: &dyn Fleet,
    clock: &dyn Clock,
    spec: &ClusterSpec,
    route: Option<Route<'_>>,
    target: &Target,
    a: &CreateArgs,
    progress: &mut (dyn FnMut(String) + Send),
) -> CliResult {
    let mut report = |pr: &crate::reconcile::Progress| progress(progress_line(pr));
    let done = converge(
        fleet,
        clock,
        spec,
        route,
        target,
        a.timeout,
        a.poll,
        &mut report,
    )
    .await
    .map_err(|e| CliError::runtime(format!("{}: {e}", spec.name)))?;
    for r in &done {
        progress(format!(
            "  {} [{}]",
            r.planned.action,
            outcome_tag(&r.outcome)
        ));
    }
    progress(format!(
        "{}: converged, every planned instance is available",
        spec.name
    ));
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
    let fleet = crate::adapters::targets::fleet_for(spec).await;
    modify_instance_on(&fleet, spec, &id, &class, &a).await
}

/// What `modify-instance --output json` prints.
#[derive(Serialize)]
struct ModifyReport<'a> {
    instance: &'a InstanceId,
    class: &'a InstanceClass,
    /// Whether the class change was requested from RDS by this run.
    changed: bool,
    dry_run: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    result: Option<&'a ActionResult>,
    /// The old tool's warning: the instance is out of service while its class changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

/// The old tool's warning made specific: who serves while `id` is out of service.
pub fn out_of_service_warning(spec: &ClusterSpec, view: &ClusterView, id: &InstanceId) -> String {
    let mut serving: Vec<String> = Vec::new();
    if spec.is_master(id) {
        if view.master.as_ref().is_some_and(|m| m.multi_az) {
            serving.push("its multi-AZ standby (after a failover)".into());
        }
    } else if let Some(m) = view.master.as_ref().filter(|m| m.status.is_available()) {
        serving.push(format!("the master {}", m.id));
    }
    let others: Vec<String> = view
        .existing_replicas()
        .filter(|r| r.id != *id && r.status.is_available())
        .map(|r| r.id.to_string())
        .collect();
    if !others.is_empty() {
        serving.push(format!("replica(s) {}", others.join(", ")));
    }
    let meanwhile = if serving.is_empty() {
        "nothing else serves meanwhile".to_string()
    } else {
        format!("served meanwhile by {}", serving.join(" and "))
    };
    format!("{id} is out of service while its class changes; {meanwhile}")
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
            Output::Json => print_json(&ModifyReport {
                instance: id,
                class,
                changed: false,
                dry_run: a.dry_run,
                result: None,
                warning: None,
            })?,
        }
        return Ok(());
    };
    let warning = out_of_service_warning(spec, &view, id);
    let result = crate::reconcile::execute_action(
        fleet,
        spec,
        &planned,
        &ExecOptions {
            dry_run: a.dry_run,
            ..ExecOptions::default()
        },
    )
    .await;
    match a.output {
        Output::Text => {
            println!(
                "{} [{}] ({})",
                result.planned.action,
                outcome_tag(&result.outcome),
                result.planned.reason
            );
            eprintln!("warning: {warning}");
        }
        Output::Json => print_json(&ModifyReport {
            instance: id,
            class,
            changed: matches!(result.outcome, Outcome::Done),
            dry_run: a.dry_run,
            result: Some(&result),
            warning: Some(warning),
        })?,
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
    /// The master only: multi-AZ as observed and as configured, and whether they differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_az: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configured_multi_az: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    multi_az_drift: bool,
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
    /// Instances holding a configured replica id that are not replicas of the master: never
    /// touched or counted; their slots are blocked.
    conflicts: Vec<ConflictRow>,
    /// What an operator should know about the master (it is never deleted).
    master_issues: Vec<MasterIssueRow>,
    /// Operators' pauses written on the master (`elasticrds pause`), in force or expired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pauses: Vec<PauseRow>,
    /// Replicas whose settings or tags differ from their template.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    template_drift: Vec<TemplateDrift>,
    /// Replicas in a state RDS does not recover from by itself (not serving).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    broken: Vec<InstanceRow>,
    /// Slots parked after their replica failed repeatedly: what to do.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parked: Vec<ParkedRow>,
}

#[derive(Serialize)]
struct ParkedRow {
    id: InstanceId,
    status: String,
    message: String,
}

fn parked_rows(spec: &ClusterSpec, view: &ClusterView) -> Vec<ParkedRow> {
    (view.parked.iter())
        .map(|&i| {
            let id = &spec.replicas[i].id;
            let status = view.replicas[i]
                .as_ref()
                .map_or_else(|| "absent".to_string(), |r| r.status.to_string());
            ParkedRow {
                id: id.clone(),
                message: format!(
                    "{id} ({status}) failed repeatedly: its slot is left alone. Fix the cause (parameter group, storage, network), delete the instance if it is still there, then run `elasticrds unpark {} {id}`",
                    spec.name
                ),
                status,
            }
        })
        .collect()
}

/// An operator's pause as `status` and `plan` show it.
#[derive(Serialize)]
pub struct PauseRow {
    #[serde(flatten)]
    pub pause: Pause,
    pub in_force: bool,
    pub message: String,
}

/// The pauses written on the view's master, in force at `now` or not.
pub fn pause_rows(view: &ClusterView, now: DateTime<Utc>) -> Vec<PauseRow> {
    view.pauses
        .all()
        .map(|p| PauseRow {
            in_force: p.in_force(now),
            message: pause_text(p),
            pause: p.clone(),
        })
        .collect()
}

#[derive(Serialize)]
struct ConflictRow {
    #[serde(flatten)]
    row: InstanceRow,
    /// Position in the replica list, from 1.
    position: usize,
    #[serde(flatten)]
    kind: ConflictKind,
    message: String,
}

#[derive(Serialize)]
struct MasterIssueRow {
    #[serde(flatten)]
    issue: MasterIssue,
    message: String,
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
        multi_az: None,
        configured_multi_az: None,
        multi_az_drift: false,
    }
}

/// The master's row: [`row`] plus multi-AZ as observed against the config.
fn master_row(spec: &ClusterSpec, view: &ClusterView) -> InstanceRow {
    let m = view.master.as_deref();
    let mut r = row(&spec.master.id, m, Some(&spec.master.class));
    r.multi_az = m.map(|m| m.multi_az);
    r.configured_multi_az = Some(spec.master.multi_az);
    r.multi_az_drift = m.is_some_and(|m| m.multi_az != spec.master.multi_az);
    r
}

pub fn status_report(spec: &ClusterSpec, view: &ClusterView, now: DateTime<Utc>) -> StatusReport {
    StatusReport {
        pauses: pause_rows(view, now),
        template_drift: template_drift(spec, view),
        broken: (spec.replicas.iter().zip(&view.replicas))
            .filter_map(|(rs, v)| v.as_ref().map(|i| (rs, i)))
            .filter(|(_, i)| i.status.is_broken())
            .map(|(rs, i)| row(&rs.id, Some(i), Some(&rs.class)))
            .collect(),
        parked: parked_rows(spec, view),
        cluster: spec.name.to_string(),
        master: master_row(spec, view),
        replicas: spec
            .replicas
            .iter()
            .zip(&view.replicas)
            .filter_map(|(rs, v)| v.as_ref().map(|i| row(&rs.id, Some(i), Some(&rs.class))))
            .collect(),
        absent: spec
            .replicas
            .iter()
            .enumerate()
            .zip(&view.replicas)
            .filter(|((i, _), v)| v.is_none() && !view.is_blocked(*i))
            .map(|((_, rs), _)| rs.id.clone())
            .collect(),
        foreign: view
            .foreign
            .iter()
            .map(|f| row(&f.id, f.instance.as_deref(), None))
            .collect(),
        conflicts: view
            .conflicts
            .iter()
            .map(|c| ConflictRow {
                row: row(&c.instance.id, Some(&c.instance), None),
                position: c.slot + 1,
                kind: c.kind.clone(),
                message: conflict_message(&c.instance.id, &c.kind, &spec.master.id),
            })
            .collect(),
        master_issues: (view.master_issues.iter().cloned())
            .map(|issue| MasterIssueRow {
                message: master_issue(&issue),
                issue,
            })
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
        if x.multi_az_drift {
            let says = if x.configured_multi_az == Some(true) {
                "multi-AZ"
            } else {
                "single-AZ"
            };
            s.push_str(&format!("     (drift: config says {says})"));
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
    if !r.absent.is_empty() {
        out.push_str("     absent (configured, not created)\n");
        for id in &r.absent {
            out.push_str(&format!("          {id}\n"));
        }
    }
    if !r.foreign.is_empty() {
        out.push_str("     foreign (not in config, left alone)\n");
        for x in &r.foreign {
            out.push_str(&line(x));
            out.push('\n');
        }
    }
    if !r.conflicts.is_empty() {
        out.push_str(
            "     conflict (holds a configured id, not a replica of the master; left alone)\n",
        );
        for c in &r.conflicts {
            out.push_str(&line(&c.row));
            out.push_str(&format!(
                "     (position {}: {})\n",
                c.position,
                conflict_kind(&c.kind)
            ));
        }
    }
    for m in &r.master_issues {
        out.push_str(&format!("     warning: {}\n", m.message));
    }
    for p in &r.pauses {
        let state = if p.in_force {
            "paused"
        } else {
            "pause expired"
        };
        out.push_str(&format!("     {state}: {}\n", p.message));
    }
    out.push_str(&drift_lines(&r.template_drift, "     "));
    for b in &r.broken {
        out.push_str(&format!(
            "     failed: {} is {} (not serving; replaced once it has stayed so for {})\n",
            b.id,
            b.status,
            crate::text::fmt_secs(crate::control::BROKEN_GRACE_SECS as u64)
        ));
    }
    for p in &r.parked {
        out.push_str(&format!("     parked: {}\n", p.message));
    }
    out
}

/// Template drift, one line per replica: `drift: c1s01 parameter_group default.mysql8.0 (template replicas-pg)...`.
pub fn drift_lines(drift: &[TemplateDrift], indent: &str) -> String {
    let mut out = String::new();
    for d in drift {
        let parts: Vec<String> = (d.settings.iter())
            .map(|s| {
                format!(
                    "{} {} (template {})",
                    s.setting,
                    s.have.as_deref().unwrap_or("unset"),
                    s.want
                )
            })
            .collect();
        let what = if d.repaired { "repaired" } else { "reported" };
        out.push_str(&format!(
            "{indent}template drift: {}: {} [{what}]\n",
            d.id,
            parts.join(", ")
        ));
    }
    out
}

pub async fn status(config: Option<&Path>, a: StatusArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let fleet = crate::adapters::targets::fleet_for(spec).await;
    let view = observe_one(&fleet, spec).await?;
    let report = status_report(spec, &view, SystemClock.now());
    match a.output {
        Output::Text => print!("{}", status_text(&report)),
        Output::Json => print_json(&report)?,
    }
    Ok(())
}
