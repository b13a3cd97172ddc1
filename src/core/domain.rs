//! Domain types shared by every layer: instance identifiers and classes, observed instances,
//! a cluster's view of the fleet, tags, and metric samples. Pure data, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Tags as key → value, sorted so that output and comparisons are deterministic.
pub type Tags = BTreeMap<String, String>;

/// Tag keys elasticrds writes. Replicas it creates carry `TAG_MANAGED_BY` and `TAG_CLUSTER`.
pub const TAG_MANAGED_BY: &str = "elasticrds:managed-by";
pub const TAG_MANAGED_BY_VALUE: &str = "elasticrds";
pub const TAG_CLUSTER: &str = "elasticrds:cluster";

/// Why an identifier was rejected (RDS rules: 1–63 letters, digits or hyphens, starting with a
/// letter, no trailing hyphen, no two consecutive hyphens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("identifier is empty")]
    Empty,
    #[error("identifier {0:?} is longer than 63 characters")]
    TooLong(String),
    #[error("identifier {0:?} must start with a letter")]
    BadStart(String),
    #[error("identifier {0:?} may contain only ASCII letters, digits and hyphens")]
    BadChar(String),
    #[error("identifier {0:?} must not end with a hyphen")]
    TrailingHyphen(String),
    #[error("identifier {0:?} must not contain two consecutive hyphens")]
    DoubleHyphen(String),
}

/// A DB instance identifier that satisfies the RDS naming rules. RDS compares identifiers
/// case-insensitively and stores them in lower case; we keep the spelling of the config and
/// compare with [`InstanceId::same_as`] where AWS answers are involved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.chars().count() > 63 {
            return Err(IdError::TooLong(s.to_string()));
        }
        if !s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(IdError::BadStart(s.to_string()));
        }
        if !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(IdError::BadChar(s.to_string()));
        }
        if s.ends_with('-') {
            return Err(IdError::TrailingHyphen(s.to_string()));
        }
        if s.contains("--") {
            return Err(IdError::DoubleHyphen(s.to_string()));
        }
        Ok(InstanceId(s.to_string()))
    }

    /// An identifier as AWS reported it; not re-validated (AWS is the authority on what exists).
    pub fn from_aws(s: &str) -> Self {
        InstanceId(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RDS identifiers are case-insensitive.
    pub fn same_as(&self, other: &InstanceId) -> bool {
        // Ids of one cluster mostly differ in length or last character: reject those first
        // (this runs many times per tick).
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        a.len() == b.len()
            && a.last().map(u8::to_ascii_lowercase) == b.last().map(u8::to_ascii_lowercase)
            && (a == b || a.eq_ignore_ascii_case(b))
    }
}

impl TryFrom<String> for InstanceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        InstanceId::parse(&s)
    }
}

impl From<InstanceId> for String {
    fn from(id: InstanceId) -> String {
        id.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DB instance class such as `db.m5.large`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceClass(String);

impl InstanceClass {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let ok = parts.len() >= 3
            && parts[0] == "db"
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if ok {
            Ok(InstanceClass(s.to_string()))
        } else {
            Err(format!(
                "instance class {s:?} is not of the form db.<family>.<size>"
            ))
        }
    }
    pub fn from_aws(s: &str) -> Self {
        InstanceClass(s.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceClass {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        InstanceClass::parse(&s)
    }
}
impl From<InstanceClass> for String {
    fn from(c: InstanceClass) -> String {
        c.0
    }
}
impl fmt::Display for InstanceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The DBInstanceStatus values elasticrds distinguishes; everything else is kept verbatim in
/// `Other` and treated as "busy: wait, do not act".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum InstanceStatus {
    Available,
    Creating,
    Modifying,
    Deleting,
    BackingUp,
    Rebooting,
    Other(String),
}

impl InstanceStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "available" => Self::Available,
            "creating" => Self::Creating,
            "modifying" => Self::Modifying,
            "deleting" => Self::Deleting,
            "backing-up" => Self::BackingUp,
            "rebooting" => Self::Rebooting,
            other => Self::Other(other.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Self::Available => "available",
            Self::Creating => "creating",
            Self::Modifying => "modifying",
            Self::Deleting => "deleting",
            Self::BackingUp => "backing-up",
            Self::Rebooting => "rebooting",
            Self::Other(s) => s,
        }
    }
    pub fn is_available(&self) -> bool {
        matches!(self, Self::Available)
    }
    /// Busy instances are waited for and never acted on.
    pub fn is_busy(&self) -> bool {
        !self.is_available()
    }
}

impl From<String> for InstanceStatus {
    fn from(s: String) -> Self {
        InstanceStatus::parse(&s)
    }
}
impl From<InstanceStatus> for String {
    fn from(s: InstanceStatus) -> String {
        s.as_str().to_string()
    }
}
impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
}

/// One DB instance as observed on the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub class: InstanceClass,
    pub status: InstanceStatus,
    /// Engine name as RDS reports it (`mysql`, `mariadb`, `postgres`, ...).
    pub engine: String,
    pub multi_az: bool,
    /// For a read replica: the instance it replicates from.
    pub source: Option<InstanceId>,
    /// For a source instance: its read replicas (configured or not).
    pub replicas: Vec<InstanceId>,
    pub endpoint: Option<Endpoint>,
    /// When the instance was created (RDS InstanceCreateTime), when known.
    pub created_at: Option<DateTime<Utc>>,
    /// Since when the instance has been `available`, when the observer knows it (the simulated
    /// fleet does; for RDS the control loop remembers when it first saw it available).
    pub available_since: Option<DateTime<Utc>>,
    pub tags: Tags,
}

/// Role of an instance within a configured cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Replica,
}

/// Which of the metrics a policy may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// CPUUtilization, percent.
    Cpu,
    /// DatabaseConnections, count.
    Connections,
    /// ReplicaLag, seconds.
    ReplicaLag,
}

impl MetricKind {
    pub const ALL: [MetricKind; 3] = [
        MetricKind::Cpu,
        MetricKind::Connections,
        MetricKind::ReplicaLag,
    ];
    /// The CloudWatch metric name in the AWS/RDS namespace.
    pub fn cloudwatch_name(self) -> &'static str {
        match self {
            MetricKind::Cpu => "CPUUtilization",
            MetricKind::Connections => "DatabaseConnections",
            MetricKind::ReplicaLag => "ReplicaLag",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Cpu => "cpu",
            MetricKind::Connections => "connections",
            MetricKind::ReplicaLag => "replica_lag",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "cpu" | "CPUUtilization" => Some(MetricKind::Cpu),
            "connections" | "DatabaseConnections" => Some(MetricKind::Connections),
            "replica_lag" | "ReplicaLag" => Some(MetricKind::ReplicaLag),
            _ => None,
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CloudWatch statistic.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum Statistic {
    #[default]
    Average,
    Maximum,
}

impl Statistic {
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::Average => "Average",
            Statistic::Maximum => "Maximum",
        }
    }
}

/// One datapoint: the period starting at `at` had `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// What to fetch for one instance: metric, statistic and period in seconds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetricQuery {
    pub instance: InstanceId,
    pub metric: MetricKind,
    pub statistic: Statistic,
    pub period_secs: u32,
}

/// The answer to one [`MetricQuery`]: samples in ascending time order; a gap is a missing
/// sample, never a zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSeries {
    pub query: MetricQuery,
    pub samples: Vec<Sample>,
}
