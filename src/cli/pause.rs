//! `elasticrds pause CLUSTER` and `elasticrds resume CLUSTER`: an operator's hold on a
//! cluster's scale-in, scale-out or both, written as tags on the cluster's master
//! (`core::pause` owns the encoding), so every running copy and a restarted one honours it
//! from its next tick. Nothing else is changed; the master is only tagged, never modified.
//! Also `elasticrds unpark CLUSTER ID`: take a slot out of the master's parked tag (a slot
//! whose replica failed repeatedly, parked by the service, `control::broken`).

use super::cluster::find_cluster;
use super::{load_config, print_json, CliError, CliResult, Output};
use crate::adapters::rds::RdsFleet;
use crate::core::config::ClusterSpec;
use crate::core::decide::Direction;
use crate::core::domain::{InstanceId, Tags};
use crate::core::pause::{Pause, PauseTextError};
use crate::core::view::{parked_ids, TAG_PARKED};
use crate::ports::{Clock, Fleet, SystemClock};
use crate::text::pause_text;
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Which {
    In,
    Out,
    #[default]
    Both,
}

impl Which {
    fn directions(self) -> Vec<Direction> {
        match self {
            Which::In => vec![Direction::In],
            Which::Out => vec![Direction::Out],
            Which::Both => vec![Direction::Out, Direction::In],
        }
    }
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// Which direction to hold: `in` (no replica deleted), `out` (none created) or `both`.
    #[arg(long, value_enum, default_value_t)]
    pub direction: Which,
    /// End the pause by itself after this long (e.g. 2h); without it, it lasts until
    /// `elasticrds resume`.
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub for_: Option<Duration>,
    /// Why, shown in `status`, `plan` and every held decision (letters, digits, spaces and
    /// _ . : / = + - @, as RDS tag values allow).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// Who pauses [default: $USER, else "operator"].
    #[arg(long)]
    pub by: Option<String>,
    /// Print the tags that would be written and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// Which direction to resume.
    #[arg(long, value_enum, default_value_t)]
    pub direction: Which,
    /// Print the tags that would be removed and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct UnparkArgs {
    /// Cluster name from the config.
    pub cluster: String,
    /// The replica id whose slot to use again (see `elasticrds status`).
    pub replica: String,
    /// Print the tag that would be written and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// What `pause` or `resume` did (or would do, with --dry-run).
#[derive(Debug, Serialize)]
pub struct PauseOutcome {
    pub cluster: String,
    pub master: String,
    pub dry_run: bool,
    /// Tags written on the master (pause).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub written: Tags,
    /// Tag keys removed from the master (resume).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    pub messages: Vec<String>,
}

/// The pauses `a` asks for, with their tags; bad text is bad input (exit 2).
pub fn pauses_for(a: &PauseArgs, now: DateTime<Utc>) -> Result<Vec<(Pause, String)>, CliError> {
    let by = a.by.clone().unwrap_or_else(|| {
        std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "operator".into())
    });
    let until = match a.for_ {
        None => None,
        Some(d) if d.is_zero() => return Err(CliError::input("--for: must be longer than 0s")),
        Some(d) => Some(
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| CliError::input("--for: too long"))?,
        ),
    };
    let mut out = Vec::new();
    for direction in a.direction.directions() {
        let p = Pause {
            direction,
            until,
            by: by.clone(),
            reason: a.reason.clone(),
            readable: true,
        };
        let value = p.tag_value().map_err(|e| match e {
            PauseTextError::Character { field, ch } => CliError::input(format!(
                "--{field}: {ch:?} is not allowed in an RDS tag value (letters, digits, spaces and _ . : / = + - @)"
            )),
            PauseTextError::TooLong { len } => CliError::input(format!(
                "--reason/--by: the pause tag would be {len} characters, RDS allows 256"
            )),
        })?;
        out.push((p, value));
    }
    Ok(out)
}

pub async fn pause(config: Option<&Path>, a: PauseArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let pauses = pauses_for(&a, SystemClock.now())?;
    let fleet = aws_fleet(spec).await?;
    let outcome = pause_on(&fleet, spec, &pauses, a.dry_run).await?;
    show(&outcome, a.output)
}

pub async fn resume(config: Option<&Path>, a: ResumeArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let fleet = aws_fleet(spec).await?;
    let outcome = resume_on(&fleet, spec, a.direction, a.dry_run).await?;
    show(&outcome, a.output)
}

pub async fn unpark(config: Option<&Path>, a: UnparkArgs) -> CliResult {
    let (_, config) = load_config(config)?;
    let spec = find_cluster(&config, &a.cluster)?;
    let id = InstanceId::parse(&a.replica)
        .map_err(|e| CliError::input(format!("{:?}: {e}", a.replica)))?;
    if spec.replica_index(&id).is_none() {
        return Err(CliError::input(format!(
            "{id} is not a replica of cluster {} in the config",
            spec.name
        )));
    }
    let fleet = aws_fleet(spec).await?;
    let outcome = unpark_on(&fleet, spec, &id, a.dry_run).await?;
    show(&outcome, a.output)
}

/// Take `id` out of the master's parked tag (removing the tag when it was the last one).
pub async fn unpark_on(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    id: &InstanceId,
    dry_run: bool,
) -> Result<PauseOutcome, CliError> {
    master_exists(fleet, spec).await?;
    let tags = fleet.read_tags(&spec.master.id).await?;
    let ids = tags
        .get(TAG_PARKED)
        .map_or_else(Vec::new, |v| parked_ids(v));
    let mut outcome = PauseOutcome {
        cluster: spec.name.to_string(),
        master: spec.master.id.to_string(),
        dry_run,
        written: Tags::new(),
        removed: Vec::new(),
        messages: Vec::new(),
    };
    if !ids.iter().any(|p| p.eq_ignore_ascii_case(id.as_str())) {
        outcome
            .messages
            .push(format!("{id} is not parked: nothing to do"));
        return Ok(outcome);
    }
    let rest: Vec<String> = ids
        .into_iter()
        .filter(|p| !p.eq_ignore_ascii_case(id.as_str()))
        .collect();
    if rest.is_empty() {
        outcome.removed.push(TAG_PARKED.to_string());
    } else {
        outcome
            .written
            .insert(TAG_PARKED.to_string(), rest.join(" "));
    }
    if !dry_run {
        if rest.is_empty() {
            fleet.remove_tags(&spec.master.id, &outcome.removed).await?;
        } else {
            fleet.write_tags(&spec.master.id, &outcome.written).await?;
        }
    }
    outcome.messages.push(if dry_run {
        format!("dry run: {id}'s slot would be used again; nothing changed")
    } else {
        format!("{id}'s slot is used again (a replica that fails there twice more is parked again)")
    });
    Ok(outcome)
}

async fn aws_fleet(spec: &ClusterSpec) -> Result<RdsFleet, CliError> {
    crate::adapters::aws::check_environment()
        .await
        .map_err(|e| CliError::input(e.to_string()))?;
    Ok(crate::adapters::targets::fleet_for(spec).await)
}

/// Check the master exists (a pause on a missing master would hold nothing: exit 1).
async fn master_exists(fleet: &dyn Fleet, spec: &ClusterSpec) -> CliResult {
    let found = fleet
        .describe(std::slice::from_ref(&spec.master.id))
        .await?;
    if found.is_empty() {
        return Err(CliError::runtime(format!(
            "{}: master {} does not exist: nothing to pause or resume",
            spec.name, spec.master.id
        )));
    }
    Ok(())
}

/// Write the pause tags on the cluster's master (unless `dry_run`).
pub async fn pause_on(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    pauses: &[(Pause, String)],
    dry_run: bool,
) -> Result<PauseOutcome, CliError> {
    master_exists(fleet, spec).await?;
    let written: Tags = pauses
        .iter()
        .map(|(p, v)| (Pause::tag_key(p.direction).to_string(), v.clone()))
        .collect();
    if !dry_run {
        fleet.write_tags(&spec.master.id, &written).await?;
    }
    let mut messages: Vec<String> = pauses.iter().map(|(p, _)| pause_text(p)).collect();
    messages.push(if dry_run {
        "dry run: nothing written".into()
    } else {
        format!(
            "every running copy holds it from its next tick; `elasticrds resume {}` ends it",
            spec.name
        )
    });
    Ok(PauseOutcome {
        cluster: spec.name.to_string(),
        master: spec.master.id.to_string(),
        dry_run,
        written,
        removed: Vec::new(),
        messages,
    })
}

/// Remove the pause tags of `which` from the cluster's master (unless `dry_run`).
pub async fn resume_on(
    fleet: &dyn Fleet,
    spec: &ClusterSpec,
    which: Which,
    dry_run: bool,
) -> Result<PauseOutcome, CliError> {
    master_exists(fleet, spec).await?;
    let keys: Vec<String> = (which.directions().into_iter())
        .map(|d| Pause::tag_key(d).to_string())
        .collect();
    if !dry_run {
        fleet.remove_tags(&spec.master.id, &keys).await?;
    }
    let words: Vec<&str> = (which.directions().into_iter())
        .map(|d| {
            if d == Direction::In {
                "scale-in"
            } else {
                "scale-out"
            }
        })
        .collect();
    let message = if dry_run {
        format!(
            "dry run: {} would be resumed; nothing removed",
            words.join(" and ")
        )
    } else {
        format!("{} resumed", words.join(" and "))
    };
    Ok(PauseOutcome {
        cluster: spec.name.to_string(),
        master: spec.master.id.to_string(),
        dry_run,
        written: Tags::new(),
        removed: keys,
        messages: vec![message],
    })
}

fn show(o: &PauseOutcome, output: Output) -> CliResult {
    match output {
        Output::Json => print_json(o),
        Output::Text => {
            for m in &o.messages {
                println!("{}: {m}", o.cluster);
            }
            Ok(())
        }
    }
}
