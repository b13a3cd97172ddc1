//! `elasticrds init --master ID`: adopt an existing fleet. Reads the master and its read
//! replicas from RDS and writes a cluster config (the existing replicas first, in the master's
//! order, then `--slots` more ids from `--name-pattern`) and a starter policy with
//! `observe_only: true`, so that the first `run` only watches. Both texts are parsed by the same
//! code `validate` uses before anything is written; existing files are never overwritten. The
//! adopted replicas are then tagged as elasticrds's own (`elasticrds:managed-by`), as the
//! replicas it creates are: the IAM policy lets it delete only replicas so tagged.

use super::{print_json, CliError, CliResult, Output};
use crate::adapters::rds::RdsFleet;
use crate::core::config::Config;
use crate::core::domain::{
    Instance, InstanceId, Tags, TAG_CLUSTER, TAG_MANAGED_BY, TAG_MANAGED_BY_VALUE,
};
use crate::core::policy::Policy;
use crate::ports::Fleet;
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Most slots `init` adds (RDS allows 15 read replicas per MySQL/PostgreSQL source).
const MAX_SLOTS: usize = 15;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The existing master (a DB instance id).
    #[arg(long)]
    pub master: String,
    /// Name of the cluster in the config [default: the master's id].
    #[arg(long)]
    pub cluster: Option<String>,
    /// Replica ids to add after the existing replicas: how many elasticrds may create.
    #[arg(long, allow_negative_numbers = true, default_value_t = 2)]
    pub slots: usize,
    // (clap's help turns a braced `n` into a line break, so the help does not write it.)
    /// Ids of the new slots: `{master}`, `{cluster}` and the slot number (`n` in braces, as in
    /// the default: 01, 02, ...) are replaced; numbers already taken by an instance are skipped.
    #[arg(long, default_value = "{master}-r{n}")]
    pub name_pattern: String,
    /// The cluster config to write (refused if it exists) [default: --config, else
    /// elasticrds.yaml].
    #[arg(long = "output")]
    pub output_file: Option<PathBuf>,
    /// The starter policy to write (refused if it exists) [default:
    /// policies/CLUSTER.yaml].
    #[arg(long)]
    pub policy_output: Option<PathBuf>,
    /// Print both files on stdout and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Format of what is printed (json: the files' paths and texts, and the next steps).
    #[arg(long, value_enum, default_value_t)]
    pub format: Output,
}

/// What `init` found and wrote (or would write).
#[derive(Debug, Serialize)]
pub struct InitOutcome {
    pub cluster: String,
    pub master: String,
    /// Existing replicas of the master, in the master's order.
    pub existing: Vec<String>,
    /// The new slots.
    pub slots: Vec<String>,
    pub config_file: String,
    pub config: String,
    pub policy_file: String,
    pub policy: String,
    pub dry_run: bool,
    pub next_steps: Vec<String>,
}

pub async fn init(config: Option<&Path>, mut a: InitArgs) -> CliResult {
    let out = (a.output_file.take())
        .or_else(|| config.map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from(crate::core::config::DEFAULT_CONFIG_PATH));
    a.output_file = Some(out.clone());
    let master = InstanceId::parse(&a.master)
        .map_err(|e| CliError::input(format!("--master {:?}: {e}", a.master)))?;
    let cluster = a.cluster.clone().unwrap_or_else(|| master.to_string());
    check_cluster_name(&cluster)?;
    if a.slots > MAX_SLOTS {
        return Err(CliError::input(format!(
            "--slots {}: at most {MAX_SLOTS} (RDS's read replicas per source)",
            a.slots
        )));
    }
    // Every input is checked before any AWS call.
    let candidates = slot_candidates(&a.name_pattern, &master, &cluster, a.slots)?;
    let policy_file = (a.policy_output.clone())
        .unwrap_or_else(|| Path::new("policies").join(format!("{cluster}.yaml")));
    if !a.dry_run {
        for f in [&out, &policy_file] {
            if f.exists() {
                return Err(CliError::input(format!(
                    "{}: exists; init never overwrites a file (use --output/--policy-output, or --dry-run to print)",
                    f.display()
                )));
            }
        }
    }
    crate::adapters::aws::check_environment()
        .await
        .map_err(|e| CliError::input(e.to_string()))?;
    let fleet = RdsFleet::from_env().await;
    let mut o = adopt(&fleet, &master, &cluster, &candidates, &a).await?;
    o.policy_file = policy_file.display().to_string();
    o.next_steps = next_steps(&o, &out);
    if !a.dry_run {
        write_new(&out, &o.config)?;
        write_new(&policy_file, &o.policy)?;
        tag_adopted(&fleet, &o).await?;
    }
    match a.format {
        Output::Json => print_json(&o),
        Output::Text => {
            print!("{}", outcome_text(&o));
            Ok(())
        }
    }
}

/// Read the fleet and make both texts, checked by the parsers `validate` uses.
pub async fn adopt(
    fleet: &dyn Fleet,
    master: &InstanceId,
    cluster: &str,
    candidates: &[InstanceId],
    a: &InitArgs,
) -> Result<InitOutcome, CliError> {
    let found = fleet.describe(std::slice::from_ref(master)).await?;
    let Some(m) = found.into_iter().next() else {
        return Err(CliError::runtime(format!(
            "no DB instance {master}: give the id of an existing master"
        )));
    };
    if let Some(src) = &m.source {
        return Err(CliError::input(format!(
            "--master {master}: it is a read replica of {src}; give the master's id"
        )));
    }
    // Only instances that are read replicas of this master are adopted.
    let described = fleet.describe(&m.replicas).await?;
    let existing: Vec<&Instance> = (m.replicas.iter())
        .filter_map(|id| described.iter().find(|i| &i.id == id).map(|i| &**i))
        .filter(|i| i.source.as_ref() == Some(&m.id))
        .collect();
    let slots = free_slots(fleet, candidates, &m.id, a.slots).await?;
    let class = existing.first().map_or(&m.class, |r| &r.class);
    let config = config_text(cluster, &m, &existing, &slots, class.as_str());
    let policy = policy_text(cluster, existing.len(), existing.len() + slots.len());
    let parsed = Config::parse("init", &config)
        .map_err(|e| CliError::input(format!("the config init would write does not parse: {e}")))?;
    Policy::parse("init", &policy, &parsed)
        .map_err(|e| CliError::input(format!("the policy init would write does not parse: {e}")))?;
    Ok(InitOutcome {
        cluster: cluster.to_string(),
        master: m.id.to_string(),
        existing: existing.iter().map(|i| i.id.to_string()).collect(),
        slots: slots.iter().map(|i| i.to_string()).collect(),
        config_file: (a.output_file.as_deref())
            .unwrap_or(Path::new(crate::core::config::DEFAULT_CONFIG_PATH))
            .display()
            .to_string(),
        config,
        policy_file: String::new(),
        policy,
        dry_run: a.dry_run,
        next_steps: Vec::new(),
    })
}

/// Mark the adopted replicas as elasticrds's (the tags it puts on the replicas it creates):
/// the IAM policy `elasticrds iam-policy` writes lets it delete only replicas so tagged, so an
/// untagged adopted replica could never be scaled in.
async fn tag_adopted(fleet: &dyn Fleet, o: &InitOutcome) -> CliResult {
    let tags = adopted_tags(&o.cluster);
    for id in &o.existing {
        let id = InstanceId::parse(id).map_err(|e| CliError::runtime(e.to_string()))?;
        fleet.write_tags(&id, &tags).await.map_err(|e| {
            CliError::runtime(format!(
                "the files are written, but tagging {id} failed: {e}; tag it \
                 {TAG_MANAGED_BY}={TAG_MANAGED_BY_VALUE} by hand so that it can be scaled in"
            ))
        })?;
    }
    Ok(())
}

fn adopted_tags(cluster: &str) -> Tags {
    Tags::from([
        (TAG_MANAGED_BY.to_string(), TAG_MANAGED_BY_VALUE.to_string()),
        (TAG_CLUSTER.to_string(), cluster.to_string()),
    ])
}

/// The ids `pattern` gives, numbered from 01: enough for `count` slots even if the first ones
/// are all taken; an id that is not a valid DB instance identifier is bad input.
fn slot_candidates(
    pattern: &str,
    master: &InstanceId,
    cluster: &str,
    count: usize,
) -> Result<Vec<InstanceId>, CliError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if !pattern.contains("{n}") {
        return Err(CliError::input(format!(
            "--name-pattern {pattern:?}: must contain {{n}} (the slot number)"
        )));
    }
    (1..=count * 2 + 15)
        .map(|n| {
            let id = (pattern.replace("{master}", master.as_str()))
                .replace("{cluster}", cluster)
                .replace("{n}", &format!("{n:02}"));
            InstanceId::parse(&id).map_err(|e| {
                CliError::input(format!("--name-pattern {pattern:?} gives {id:?}: {e}"))
            })
        })
        .collect()
}

/// The first `count` of `candidates` that no instance holds.
async fn free_slots(
    fleet: &dyn Fleet,
    candidates: &[InstanceId],
    master: &InstanceId,
    count: usize,
) -> Result<Vec<InstanceId>, CliError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let taken = fleet.describe(candidates).await?;
    Ok(candidates
        .iter()
        .filter(|c| *c != master && !taken.iter().any(|t| &t.id == *c))
        .take(count)
        .cloned()
        .collect())
}

/// Cluster names are config keys: the config's rule (`core::config::cluster_name_problem`).
fn check_cluster_name(name: &str) -> CliResult {
    match crate::core::config::cluster_name_problem(name) {
        None => Ok(()),
        Some(msg) => Err(CliError::input(format!("--cluster {name:?}: {msg}"))),
    }
}

fn config_text(
    cluster: &str,
    m: &Instance,
    existing: &[&Instance],
    slots: &[InstanceId],
    class: &str,
) -> String {
    let mut s = format!(
        "# Written by `elasticrds init --master {id}`. An instance is elasticrds's only if its id\n\
         # is listed here AND it is a read replica of this master; the master is never deleted.\n\
         {cluster}:\n  master_node:\n\
         \x20   # `identifier`: the DB snapshot the master would be RESTORED from if it ever did not\n\
         \x20   # exist (create-cluster). Not used while the master exists; put one of your snapshots here.\n\
         \x20   identifier: {id}-snapshot\n\
         \x20   instance_id: {id}\n\
         \x20   instance_class: {mclass}\n\
         \x20   multi_az: {maz}\n\
         \x20 replica_nodes:\n",
        id = m.id,
        mclass = m.class,
        maz = m.multi_az,
    );
    if !existing.is_empty() {
        s.push_str("    # existing replicas, in the master's order (deleted last on a scale-in)\n");
    }
    for r in existing {
        s.push_str(&format!(
            "    - {{id: {}, instance_class: {}}}\n",
            r.id, r.class
        ));
    }
    if !slots.is_empty() {
        s.push_str(
            "    # more slots elasticrds may create, in this order (and delete from the end)\n",
        );
    }
    for id in slots {
        s.push_str(&format!("    - {{id: {id}, instance_class: {class}}}\n"));
    }
    s
}

fn policy_text(cluster: &str, min: usize, max: usize) -> String {
    format!(
        "# Starter policy written by `elasticrds init` (docs/policies.md has every field).\n\
         cluster: {cluster}\n\
         # Watch first: decide and report, change nothing. Set to false to let elasticrds scale\n\
         # (a running service reloads this file by itself).\n\
         observe_only: true\n\
         min_replicas: {min}         # the replicas you have today\n\
         max_replicas: {max}         # plus the new slots\n\
         period: 60s\n\
         rules:\n\
         \x20 - metric: cpu\n\
         \x20   aggregation: max       # the hottest replica\n\
         \x20   target: 70\n\
         scale_out:\n\
         \x20 cooldown: 300s\n\
         \x20 max_step: 2\n\
         scale_in:\n\
         \x20 cooldown: 900s\n\
         \x20 stabilization: 1200s\n\
         \x20 max_step: 1\n\
         warmup:\n\
         \x20 duration: 10m\n"
    )
}

fn next_steps(o: &InitOutcome, config_file: &Path) -> Vec<String> {
    let cfg = if config_file == Path::new(crate::core::config::DEFAULT_CONFIG_PATH) {
        String::new()
    } else {
        format!("--config {} ", config_file.display())
    };
    let dir = Path::new(&o.policy_file)
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && *d != Path::new("policies"))
        .map_or(String::new(), |d| format!(" --policies {}", d.display()));
    vec![
        format!("elasticrds {cfg}validate {}", o.policy_file),
        format!("elasticrds {cfg}plan {}{dir}", o.cluster),
        format!("elasticrds {cfg}run{dir}   (observe-only: decides and reports, changes nothing)"),
        format!(
            "then set observe_only: false in {} (a running service reloads it)",
            o.policy_file
        ),
    ]
}

fn outcome_text(o: &InitOutcome) -> String {
    let mut s = String::new();
    let verb = if o.dry_run { "would write" } else { "wrote" };
    if o.dry_run {
        s.push_str(&format!(
            "# {}\n{}\n# {}\n{}\n",
            o.config_file, o.config, o.policy_file, o.policy
        ));
    }
    s.push_str(&format!(
        "{verb} {} (cluster {}: master {}, {} existing replica(s), {} new slot(s))\n",
        o.config_file,
        o.cluster,
        o.master,
        o.existing.len(),
        o.slots.len()
    ));
    s.push_str(&format!(
        "{verb} {} (observe_only: true: the first run only watches)\n",
        o.policy_file
    ));
    if !o.existing.is_empty() {
        let tagged = if o.dry_run { "would tag" } else { "tagged" };
        s.push_str(&format!(
            "{tagged} {} {TAG_MANAGED_BY}={TAG_MANAGED_BY_VALUE} (the IAM policy lets elasticrds delete only replicas so tagged)\n",
            o.existing.join(", ")
        ));
    }
    s.push_str("next:\n");
    for step in &o.next_steps {
        s.push_str(&format!("  {step}\n"));
    }
    s
}

/// Write `text` to a new file (never over an existing one), creating its directory.
fn write_new(path: &Path, text: &str) -> CliResult {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::runtime(format!("{}: {e}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CliError::runtime(format!("{}: cannot create: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(|e| CliError::runtime(format!("{}: {e}", path.display())))
}
