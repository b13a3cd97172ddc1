//! Which policy governs which cluster: ONE rule for `run`, `plan` and `validate`.
//!
//! - The policy files are in `--policies DIR`; a DIR given but missing (or not a directory) is
//!   bad input (exit 2). Without `--policies`, `./policies` when it exists, else no files.
//! - A cluster is **managed** (scaled: replicas created, deleted, classes changed, state
//!   written on its master) only when a policy file names it, or when `--default-policy` is
//!   given: `builtin` (the built-in default, policies/cpu-target.yaml's settings) or a policy
//!   file that says `cluster: "*"`, which then governs every cluster no file names.
//! - Every other cluster is **observed only**: the service observes it and exports its metrics
//!   (replicas, conflicts, load) and `plan` shows what it sees, but nothing is ever changed —
//!   it runs the built-in default policy in observe-only mode, so the decision is reported and
//!   never executed.

use super::policy::load_policies;
use super::{read_input, CliError};
use crate::core::config::{ClusterSpec, Config};
use crate::core::policy::Policy;
use crate::service::daemon::ClusterEntry;
use std::path::{Path, PathBuf};

/// The default policy directory, used when it exists and `--policies` is not given.
pub const DEFAULT_POLICIES_DIR: &str = "policies";

/// `--default-policy`: what governs the clusters no policy file names.
#[derive(Debug, Clone)]
pub enum DefaultPolicy {
    /// The built-in default policy (`--default-policy builtin`).
    Builtin,
    /// A policy file with `cluster: "*"`: its path and text.
    File(PathBuf, String),
}

impl DefaultPolicy {
    /// Read `--default-policy VALUE` (`builtin` or a file path).
    pub fn from_arg(arg: Option<&Path>) -> Result<Option<DefaultPolicy>, CliError> {
        match arg {
            None => Ok(None),
            Some(p) if p == Path::new("builtin") => Ok(Some(DefaultPolicy::Builtin)),
            Some(p) => Ok(Some(DefaultPolicy::File(p.to_path_buf(), read_input(p)?))),
        }
    }

    /// The policy it gives `spec`, and where it came from (for logs and `plan`).
    fn for_cluster(
        &self,
        config: &Config,
        spec: &ClusterSpec,
    ) -> Result<(Policy, String), CliError> {
        match self {
            DefaultPolicy::Builtin => Ok((
                Policy::default_for(spec),
                "built-in default policy (--default-policy builtin)".to_string(),
            )),
            DefaultPolicy::File(path, text) => {
                let name = path.display().to_string();
                let p = Policy::parse_default(&name, text, config, &spec.name)?;
                Ok((p, format!("{name} (--default-policy)")))
            }
        }
    }
}

/// The policy directory by the rule above: `Some(dir)` to read, `None` for no policy files.
pub fn policies_dir(arg: Option<&Path>) -> Result<Option<PathBuf>, CliError> {
    match arg {
        Some(dir) if dir.is_dir() => Ok(Some(dir.to_path_buf())),
        Some(dir) => Err(CliError::input(format!(
            "{}: --policies is not a directory (or does not exist)",
            dir.display()
        ))),
        None => {
            let dir = Path::new(DEFAULT_POLICIES_DIR);
            Ok(dir.is_dir().then(|| dir.to_path_buf()))
        }
    }
}

/// Every cluster of `config` with the policy that governs it, by the rule above. Any error in
/// any policy file, or in the default policy for any cluster, is bad input.
pub fn govern(
    config: &Config,
    policies: Option<&Path>,
    default: Option<&DefaultPolicy>,
) -> Result<Vec<ClusterEntry>, CliError> {
    let mut files = match policies_dir(policies)? {
        Some(dir) => load_policies(&dir, config)?,
        None => Default::default(),
    };
    let mut out = Vec::with_capacity(config.clusters.len());
    for spec in config.clusters.values() {
        let entry = match (files.remove(&*spec.name), default) {
            (Some((f, p)), _) => ClusterEntry::governed(spec.clone(), p, f.display().to_string()),
            (None, Some(d)) => {
                let (p, source) = d.for_cluster(config, spec)?;
                ClusterEntry::governed(spec.clone(), p, source)
            }
            (None, None) => ClusterEntry::observed_only(spec.clone()),
        };
        out.push(entry);
    }
    Ok(out)
}

/// [`govern`] for one cluster.
pub fn govern_one(
    config: &Config,
    spec: &ClusterSpec,
    policies: Option<&Path>,
    default: Option<&DefaultPolicy>,
) -> Result<ClusterEntry, CliError> {
    govern(config, policies, default)?
        .into_iter()
        .find(|e| e.spec.name == spec.name)
        .ok_or_else(|| CliError::input(format!("no cluster {:?} in the config", spec.name)))
}
