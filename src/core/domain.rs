//! Domain types shared by every layer: instance identifiers and classes (in `names`), observed instances,
//! a cluster's view of the fleet, tags, and metric samples. Pure data, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::template::Settings;

mod names;
pub use names::{IdError, InstanceClass, InstanceId, MAX_CLASS_LEN};

/// Tags as key → value, sorted so that output and comparisons are deterministic.
pub type Tags = BTreeMap<String, String>;

/// Tag keys elasticrds writes. Replicas it creates carry `TAG_MANAGED_BY` and `TAG_CLUSTER`.
pub const TAG_MANAGED_BY: &str = "elasticrds:managed-by";
pub const TAG_MANAGED_BY_VALUE: &str = "elasticrds";
pub const TAG_CLUSTER: &str = "elasticrds:cluster";

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
    /// A state RDS leaves an instance in when it cannot be used and will not recover by
    /// itself (not capacity: replaced after a grace period).
    pub fn is_broken(&self) -> bool {
        const BROKEN: [&str; 11] = [
            "failed",
            "incompatible-parameters",
            "incompatible-network",
            "incompatible-option-group",
            "incompatible-restore",
            "incompatible-credentials",
            "insufficient-capacity",
            "storage-full",
            "inaccessible-encryption-credentials",
            "inaccessible-encryption-credentials-recoverable",
            "restore-error",
        ];
        matches!(self, Self::Other(s) if BROKEN.contains(&s.as_str()))
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
    /// Shared: observing an instance copies it every tick.
    #[serde(with = "shared")]
    pub address: Arc<str>,
    pub port: u16,
}

/// One DB instance as observed on the fleet. Cheap to clone: the identifiers, class, engine,
/// endpoint and tag map are shared (`Arc`), so observing an instance every tick copies pointers,
/// not strings; change the tags with `Arc::make_mut(&mut inst.tags)` or assign new ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub class: InstanceClass,
    pub status: InstanceStatus,
    /// Engine name as RDS reports it (`mysql`, `mariadb`, `postgres`, ...).
    #[serde(with = "shared")]
    pub engine: Arc<str>,
    pub multi_az: bool,
    /// For a read replica: the instance it replicates from (the identifier part when RDS
    /// reports the source as an ARN).
    pub source: Option<InstanceId>,
    /// The source's full ARN when RDS reported the source as one (a replica of an instance in
    /// another region or account); `None` when it reported a plain identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
    /// The instance's own ARN, when the observer knows it (RDS does; the simulated fleet not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// For a source instance: its read replicas (configured or not).
    pub replicas: Vec<InstanceId>,
    pub endpoint: Option<Endpoint>,
    /// When the instance was created (RDS InstanceCreateTime), when known.
    pub created_at: Option<DateTime<Utc>>,
    /// Since when the instance has been `available`, when the observer knows it (the simulated
    /// fleet does; for RDS the control loop remembers when it first saw it available).
    pub available_since: Option<DateTime<Utc>>,
    /// Serialized as the plain map.
    #[serde(with = "shared")]
    pub tags: Arc<Tags>,
    /// The availability zone, when the observer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The settings a replica template may fix, as observed (RDS reports them; the simulated
    /// fleet keeps those it was created with); `None` when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "shared_opt")]
    pub settings: Option<Arc<Settings>>,
}

impl Instance {
    /// An instance as far as these say; everything else unknown or empty (no source,
    /// replicas, endpoint, times, ARNs or tags; single-AZ).
    pub fn new(
        id: InstanceId,
        class: InstanceClass,
        status: InstanceStatus,
        engine: &str,
    ) -> Instance {
        Instance {
            id,
            class,
            status,
            engine: engine.into(),
            multi_az: false,
            source: None,
            source_arn: None,
            arn: None,
            replicas: Vec::new(),
            endpoint: None,
            created_at: None,
            available_since: None,
            tags: Arc::default(),
            zone: None,
            settings: None,
        }
    }
}

impl Instance {
    /// Whether this instance is a read replica of `master`: its source, as RDS reports it, is
    /// the master. A source given as an ARN matches only the master's own ARN (an instance of
    /// the same name in another region or account is another instance); a plain identifier
    /// matches the master's identifier (case-insensitive).
    pub fn replicates_from(&self, master: &Instance) -> bool {
        match (&self.source_arn, &self.source) {
            (Some(arn), _) => master
                .arn
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case(arn)),
            (None, Some(src)) => *src == master.id,
            (None, None) => false,
        }
    }
}

/// Serde for the shared (`Arc`) fields as the plain value they hold (the `rc` feature of
/// serde is not needed).
mod shared {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<T, S>(v: &Arc<T>, s: S) -> Result<S::Ok, S::Error>
    where
        T: Serialize + ?Sized,
        S: Serializer,
    {
        T::serialize(v, s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Arc<T>, D::Error>
    where
        T: ?Sized,
        Box<T>: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Box::<T>::deserialize(d).map(Arc::from)
    }
}

/// [`shared`] for an optional value.
mod shared_opt {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::sync::Arc;

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Arc<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.as_deref().serialize(s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Arc<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(|v| v.map(Arc::new))
    }
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
    /// The values a sample can take: CPU is a percentage (0 to 100); connections and replica
    /// lag are finite and never negative.
    pub fn check_value(self, v: f64) -> Result<(), String> {
        match self {
            MetricKind::Cpu if !(0.0..=100.0).contains(&v) => {
                Err(format!("{v} is not a CPU percentage (0 to 100)"))
            }
            MetricKind::ReplicaLag if v == -1.0 => Err(
                "-1 is not a lag (finite, >= 0): CloudWatch reports -1 when replication is not \
                 active; leave the value empty for no sample"
                    .to_string(),
            ),
            _ if !v.is_finite() || v < 0.0 => Err(format!("{v} is not a finite number >= 0")),
            _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_ids_behave_as_their_text() {
        // Short and long, lower and upper case.
        let texts = [
            "a",
            "sim-master",
            "abcdefghij-abcdefghij1",  // 22
            "abcdefghij-abcdefghij12", // 23
            "Abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefghij-abcdefgh",
        ];
        let ids: Vec<InstanceId> = texts
            .iter()
            .map(|t| InstanceId::parse(t).unwrap())
            .collect();
        for (a, ta) in ids.iter().zip(texts) {
            assert_eq!(a.as_str(), ta);
            assert_eq!(a.to_string(), ta);
            assert_eq!(String::from(a.clone()), ta);
            assert_eq!(format!("{a:?}"), format!("InstanceId({ta:?})"));
            assert_eq!(serde_json::to_string(a).unwrap(), format!("{ta:?}"));
            let back: InstanceId = serde_json::from_str(&format!("{ta:?}")).unwrap();
            assert_eq!(&back, a);
            let upper = InstanceId::from_aws(&ta.to_ascii_uppercase());
            // Identity ignores case; the spelling is kept for display.
            assert_eq!(*a, upper);
            assert_eq!(upper, *a);
            assert_eq!(a.cmp(&upper), std::cmp::Ordering::Equal);
            assert_eq!(hash_of(a), hash_of(&upper));
            assert_eq!(upper.as_str(), ta.to_ascii_uppercase());
            for (b, tb) in ids.iter().zip(texts) {
                assert_eq!(a == b, ta.eq_ignore_ascii_case(tb));
                let (la, lb) = (ta.to_ascii_lowercase(), tb.to_ascii_lowercase());
                assert_eq!(a.cmp(b), la.cmp(&lb));
            }
        }
        let class = InstanceClass::parse("db.r6g.large").unwrap();
        assert_eq!(class.as_str(), "db.r6g.large");
        let long = "db.x2iedn-verylongfamily.metal-24xl";
        assert_eq!(InstanceClass::parse(long).unwrap().to_string(), long);
    }

    fn hash_of(id: &InstanceId) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
    }

    #[test]
    fn instance_classes_are_db_family_size() {
        for ok in [
            "db.t3.micro",
            "db.r6g.16xlarge",
            "db.x2iedn.24xlarge",
            "db.m7i.metal-24xl",
            "db.r5b.4xlarge.tpc2.mem2x",
        ] {
            assert!(InstanceClass::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "db.x.y.z",
            "db.serverless",
            "db.r5.large.tpc.mem2x",
            "db.r5.large.tpc2.mem2",
            "db.T3.micro",
            "db..micro",
            "rds.t3.micro",
            "db.t3.micro.",
        ] {
            let e = InstanceClass::parse(bad).unwrap_err();
            assert!(e.contains("db.<family>.<size>"), "{bad}: {e}");
        }
        let huge = format!("db.r6g.{}", "x".repeat(5000));
        let e = InstanceClass::parse(&huge).unwrap_err();
        assert!(e.len() < 200 && e.contains("limit is 64"), "{e}");
    }
}
