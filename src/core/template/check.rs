//! The replica template as written in the cluster config (`replica_template` per cluster,
//! `template` per replica node) and its checks: every key known, every value in RDS's range,
//! and the combinations RDS refuses (IOPS without a storage type that takes them, a monitoring
//! interval without its role...) found before any AWS call, each located.

use super::{Placement, ReplicaRules, ReplicaTemplate, Settings};
use crate::core::domain::InstanceClass;
use crate::core::input::UniqueMap;
use serde::Deserialize;

/// As written. The settings are [`Settings`]' keys, listed again here because serde cannot
/// both flatten them and refuse unknown keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a replica template (a mapping)")]
pub(crate) struct RawTemplate {
    parameter_group: Option<String>,
    option_group: Option<String>,
    storage_type: Option<String>,
    iops: Option<u32>,
    storage_throughput: Option<u32>,
    monitoring_interval: Option<u32>,
    monitoring_role_arn: Option<String>,
    performance_insights: Option<bool>,
    performance_insights_retention: Option<u32>,
    performance_insights_kms_key: Option<String>,
    copy_tags_to_snapshot: Option<bool>,
    auto_minor_version_upgrade: Option<bool>,
    ca_certificate_identifier: Option<String>,
    deletion_protection: Option<bool>,
    publicly_accessible: Option<bool>,
    port: Option<u16>,
    backup_retention_period: Option<u32>,
    /// A list of zones, or the word `spread`.
    availability_zones: Option<RawZones>,
    /// Each key once (a key given twice is an error, not the last one silently).
    #[serde(default)]
    tags: UniqueMap<String, String>,
    /// Cluster level only.
    repair_drift: Option<bool>,
    /// Cluster level only.
    #[serde(default)]
    fallback_classes: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawZones {
    List(Vec<String>),
    Word(String),
}

type Err<'a> = dyn FnMut(String, String, Option<&str>) + 'a;

impl RawTemplate {
    fn settings(&self) -> Settings {
        Settings {
            parameter_group: self.parameter_group.clone(),
            option_group: self.option_group.clone(),
            storage_type: self.storage_type.clone(),
            iops: self.iops,
            storage_throughput: self.storage_throughput,
            monitoring_interval: self.monitoring_interval,
            monitoring_role_arn: self.monitoring_role_arn.clone(),
            performance_insights: self.performance_insights,
            performance_insights_retention: self.performance_insights_retention,
            performance_insights_kms_key: self.performance_insights_kms_key.clone(),
            copy_tags_to_snapshot: self.copy_tags_to_snapshot,
            auto_minor_version_upgrade: self.auto_minor_version_upgrade,
            ca_certificate_identifier: self.ca_certificate_identifier.clone(),
            deletion_protection: self.deletion_protection,
            publicly_accessible: self.publicly_accessible,
            port: self.port,
            backup_retention_period: self.backup_retention_period,
        }
    }
}

/// A cluster's `replica_template` (at `at`, e.g. `c1.replica_template`): the template and
/// the cluster's rules. Value checks only; combinations are checked on each replica's merged
/// template ([`check_combinations`]).
pub(crate) fn cluster_template(
    raw: &RawTemplate,
    at: &str,
    err: &mut Err<'_>,
) -> (ReplicaTemplate, ReplicaRules) {
    let template = template(raw, at, err);
    let mut fallback_classes = Vec::new();
    for (i, c) in raw.fallback_classes.iter().enumerate() {
        match InstanceClass::parse(c) {
            Ok(c) => fallback_classes.push(c),
            Err(e) => err(format!("{at}.fallback_classes[{i}]"), e, Some(c)),
        }
    }
    let rules = ReplicaRules {
        repair_drift: raw.repair_drift.unwrap_or(false),
        fallback_classes,
    };
    (template, rules)
}

/// A replica node's `template` (at `at`): cluster-only keys are refused.
pub(crate) fn replica_template(raw: &RawTemplate, at: &str, err: &mut Err<'_>) -> ReplicaTemplate {
    if raw.repair_drift.is_some() {
        let msg = "set per cluster, in replica_template".to_string();
        err(format!("{at}.repair_drift"), msg, None);
    }
    if !raw.fallback_classes.is_empty() {
        let msg = "set per cluster, in replica_template".to_string();
        err(format!("{at}.fallback_classes"), msg, None);
    }
    template(raw, at, err)
}

/// Most tags a replica template may give: RDS allows 50 per instance, and every replica
/// elasticrds creates also carries its managed-by and cluster tags.
const MAX_TEMPLATE_TAGS: usize = 48;

fn template(raw: &RawTemplate, at: &str, err: &mut Err<'_>) -> ReplicaTemplate {
    let s = raw.settings();
    let mut bad = |field: &str, msg: String, v: Option<String>| {
        err(format!("{at}.{field}"), msg, v.as_deref());
    };
    check_names(&s, &mut bad);
    check_numbers(&s, &mut bad);
    let placement = placement(raw.availability_zones.as_ref(), &mut bad);
    for (k, v) in &raw.tags.0 {
        if let Some(msg) = tag_problem(k, v) {
            bad(&format!("tags.{k}"), msg, None);
        }
    }
    if raw.tags.0.len() > MAX_TEMPLATE_TAGS {
        let msg = format!(
            "{} tags: at most {MAX_TEMPLATE_TAGS} (RDS allows 50 per instance, elasticrds adds its 2)",
            raw.tags.0.len()
        );
        bad("tags", msg, None);
    }
    ReplicaTemplate {
        settings: s,
        placement,
        tags: raw.tags.0.clone(),
    }
}

type Bad<'a> = dyn FnMut(&str, String, Option<String>) + 'a;

/// Group names, the storage type and ARNs.
fn check_names(s: &Settings, bad: &mut Bad<'_>) {
    let names = [
        ("parameter_group", &s.parameter_group),
        ("option_group", &s.option_group),
        ("ca_certificate_identifier", &s.ca_certificate_identifier),
    ];
    for (field, v) in names {
        if let Some(v) = v.as_ref().filter(|v| !is_rds_name(v)) {
            let msg = format!("{v:?}: letters, digits and hyphens, at most 255 characters");
            bad(field, msg, Some(v.clone()));
        }
    }
    const STORAGE: [&str; 5] = ["standard", "gp2", "gp3", "io1", "io2"];
    if let Some(t) = s
        .storage_type
        .as_ref()
        .filter(|t| !STORAGE.contains(&t.as_str()))
    {
        let msg = format!("{t:?}: one of {}", STORAGE.join(", "));
        bad("storage_type", msg, Some(t.clone()));
    }
    let arns = [
        (
            "monitoring_role_arn",
            &s.monitoring_role_arn,
            "arn:aws:iam::",
        ),
        (
            "performance_insights_kms_key",
            &s.performance_insights_kms_key,
            "",
        ),
    ];
    for (field, v, prefix) in arns {
        if let Some(v) = v
            .as_ref()
            .filter(|v| v.trim().is_empty() || !v.starts_with(prefix))
        {
            bad(
                field,
                format!("{v:?} is not a {prefix}... ARN"),
                Some(v.clone()),
            );
        }
    }
}

/// Numbers in RDS's ranges.
fn check_numbers(s: &Settings, bad: &mut Bad<'_>) {
    let ranges: [(&str, Option<u32>, u32, u32); 4] = [
        ("iops", s.iops, 1000, 256_000),
        ("storage_throughput", s.storage_throughput, 125, 16_000),
        ("backup_retention_period", s.backup_retention_period, 0, 35),
        ("port", s.port.map(u32::from), 1150, 65535),
    ];
    for (field, v, lo, hi) in ranges {
        if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
            bad(
                field,
                format!("{v}: from {lo} to {hi}"),
                Some(v.to_string()),
            );
        }
    }
    if let Some(m) = s
        .monitoring_interval
        .filter(|m| ![0, 1, 5, 10, 15, 30, 60].contains(m))
    {
        let msg = format!("{m}: one of 0, 1, 5, 10, 15, 30, 60 (seconds)");
        bad("monitoring_interval", msg, Some(m.to_string()));
    }
    if let Some(r) = s
        .performance_insights_retention
        .filter(|r| !pi_retention_ok(*r))
    {
        let msg = format!("{r}: 7, or a multiple of 31 up to 731 (days)");
        bad("performance_insights_retention", msg, Some(r.to_string()));
    }
}

fn placement(
    raw: Option<&RawZones>,
    bad: &mut dyn FnMut(&str, String, Option<String>),
) -> Placement {
    match raw {
        None => Placement::Any,
        Some(RawZones::Word(w)) if w == "spread" => Placement::Spread,
        Some(RawZones::Word(w)) => {
            let msg = format!("{w:?}: a list of availability zones, or \"spread\"");
            bad("availability_zones", msg, Some(w.clone()));
            Placement::Any
        }
        Some(RawZones::List(zs)) => {
            let ok = |z: &String| {
                z.len() <= 32
                    && z.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            if zs.is_empty() || !zs.iter().all(ok) {
                let msg = "a non-empty list of zone names (e.g. eu-west-1a)".to_string();
                bad("availability_zones", msg, None);
            }
            Placement::Zones(zs.clone())
        }
    }
}

/// What RDS refuses in one replica's merged template, as (key, message).
pub(crate) fn combinations(t: &ReplicaTemplate) -> Vec<(&'static str, String)> {
    let s = &t.settings;
    let mut out = Vec::new();
    let storage = s.storage_type.as_deref();
    if s.iops.is_some() && !matches!(storage, Some("io1" | "io2" | "gp3")) {
        out.push(("iops", "needs storage_type io1, io2 or gp3".to_string()));
    }
    if matches!(storage, Some("io1" | "io2")) && s.iops.is_none() {
        out.push(("storage_type", "io1 and io2 need iops".to_string()));
    }
    if s.storage_throughput.is_some() && storage != Some("gp3") {
        out.push(("storage_throughput", "needs storage_type gp3".to_string()));
    }
    let monitoring = s.monitoring_interval.unwrap_or(0);
    if monitoring > 0 && s.monitoring_role_arn.is_none() {
        out.push((
            "monitoring_interval",
            "needs monitoring_role_arn".to_string(),
        ));
    }
    if monitoring == 0 && s.monitoring_role_arn.is_some() {
        let msg = "needs a monitoring_interval above 0".to_string();
        out.push(("monitoring_role_arn", msg));
    }
    let pi = s.performance_insights == Some(true);
    if !pi && s.performance_insights_retention.is_some() {
        let msg = "needs performance_insights: true".to_string();
        out.push(("performance_insights_retention", msg));
    }
    if !pi && s.performance_insights_kms_key.is_some() {
        let msg = "needs performance_insights: true".to_string();
        out.push(("performance_insights_kms_key", msg));
    }
    out
}

fn pi_retention_ok(r: u32) -> bool {
    r == 7 || (r.is_multiple_of(31) && (31..=731).contains(&r))
}

fn is_rds_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 255
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

/// RDS tag rules, and the keys elasticrds keeps for itself.
fn tag_problem(k: &str, v: &str) -> Option<String> {
    if k.is_empty() || k.chars().count() > 128 {
        return Some("a tag key has 1 to 128 characters".into());
    }
    if k.starts_with("aws:") || k.starts_with("rds:") {
        return Some(format!("{k:?}: aws: and rds: keys are AWS's own"));
    }
    if k.starts_with("elasticrds:") {
        return Some(format!("{k:?}: elasticrds: keys are elasticrds's own"));
    }
    (v.chars().count() > 256).then(|| "a tag value has at most 256 characters".into())
}
