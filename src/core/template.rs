//! Replica templates: the settings every replica of a cluster is created with (parameter
//! group, monitoring, Performance Insights, storage, tags, placement...), as written in the
//! cluster config (`replica_template`, per replica `template`), checked with located errors;
//! and drift — where an existing replica differs from its template. Pure: the RDS adapter
//! turns [`Settings`] into API fields, the plan turns drift into repairs.
//!
//! Only what a template sets is compared: a setting left out is RDS's default at creation and
//! never drift. `deletion_protection` and `publicly_accessible` are sent as `false` at
//! creation unless set. `backup_retention_period` is the one setting RDS cannot take at
//! CreateDBInstanceReadReplica: it is applied by ModifyDBInstance once the replica is
//! available (and the plan says so).

use super::domain::{InstanceClass, Tags};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub(crate) mod check;

/// The settings of a replica that a template may fix; `None`: not set (RDS's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub option_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_throughput: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_interval: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_insights: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_insights_retention: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_insights_kms_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_tags_to_snapshot: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_minor_version_upgrade: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publicly_accessible: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Not settable at creation: applied after (see the module doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_retention_period: Option<u32>,
}

/// Where new replicas go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "zones")]
pub enum Placement {
    /// RDS chooses.
    #[default]
    Any,
    /// Over these availability zones: a new replica goes to the first zone with the fewest of
    /// the cluster's replicas (so in list order, spread).
    Zones(Vec<String>),
    /// Over the zones RDS offers the replica's class in, the same way.
    Spread,
}

/// A cluster's replica template (or a replica's, merged over its cluster's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaTemplate {
    #[serde(flatten)]
    pub settings: Settings,
    pub placement: Placement,
    /// Tags besides those elasticrds always adds to its replicas.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// Per cluster: what to do about drift, and classes to fall back on when RDS has no capacity
/// for the configured one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplicaRules {
    /// Fix drift with ModifyDBInstance (off: report only). Never on the master.
    pub repair_drift: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_classes: Vec<InstanceClass>,
}

/// One setting where a replica differs from its template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingDrift {
    /// The template key (`parameter_group`, `tags.team`, ...).
    pub setting: String,
    pub want: String,
    /// What RDS reports; `None` when it reports nothing.
    pub have: Option<String>,
    /// True for a setting RDS cannot take at creation (applied after, whatever `repair_drift`).
    pub after_create: bool,
}

macro_rules! each_setting {
    ($m:ident) => {
        $m!(parameter_group);
        $m!(option_group);
        $m!(storage_type);
        $m!(iops);
        $m!(storage_throughput);
        $m!(monitoring_interval);
        $m!(monitoring_role_arn);
        $m!(performance_insights);
        $m!(performance_insights_retention);
        $m!(performance_insights_kms_key);
        $m!(copy_tags_to_snapshot);
        $m!(auto_minor_version_upgrade);
        $m!(ca_certificate_identifier);
        $m!(deletion_protection);
        $m!(publicly_accessible);
        $m!(port);
        $m!(backup_retention_period);
    };
}

impl Settings {
    /// `over` on top of `self`: each setting `over` sets wins.
    pub fn merged(&self, over: &Settings) -> Settings {
        let mut out = self.clone();
        macro_rules! take {
            ($f:ident) => {
                if over.$f.is_some() {
                    out.$f = over.$f.clone();
                }
            };
        }
        each_setting!(take);
        out
    }

    /// The settings of `self` (wanted) that `have` (observed) differs on, as the settings to
    /// apply and as drift entries. A setting `have` does not report (`None`) is drift only when
    /// wanted and not the default RDS reports as absent.
    pub fn drift(&self, have: &Settings) -> (Settings, Vec<SettingDrift>) {
        let mut apply = Settings::default();
        let mut drift = Vec::new();
        macro_rules! cmp {
            ($f:ident) => {
                if let Some(want) = &self.$f {
                    if have.$f.as_ref() != Some(want) {
                        apply.$f = Some(want.clone());
                        drift.push(SettingDrift {
                            setting: stringify!($f).to_string(),
                            want: want.to_string(),
                            have: have.$f.as_ref().map(|h| h.to_string()),
                            after_create: stringify!($f) == "backup_retention_period",
                        });
                    }
                }
            };
        }
        each_setting!(cmp);
        (apply, drift)
    }

    pub fn is_empty(&self) -> bool {
        *self == Settings::default()
    }
}

impl ReplicaTemplate {
    /// The replica's own template on top of its cluster's: settings and placement it sets win,
    /// tags are added (its value wins on the same key).
    pub fn merged(&self, over: &ReplicaTemplate) -> ReplicaTemplate {
        let mut tags = self.tags.clone();
        tags.extend(over.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        ReplicaTemplate {
            settings: self.settings.merged(&over.settings),
            placement: match over.placement {
                Placement::Any => self.placement.clone(),
                ref p => p.clone(),
            },
            tags,
        }
    }

    /// Drift of a replica with `have` settings and `tags`: the settings to apply, the tags to
    /// write, and the drift entries.
    pub fn drift(&self, have: &Settings, tags: &Tags) -> (Settings, Tags, Vec<SettingDrift>) {
        let (apply, mut drift) = self.settings.drift(have);
        let mut write = Tags::new();
        for (k, v) in &self.tags {
            if tags.get(k) != Some(v) {
                write.insert(k.clone(), v.clone());
                drift.push(SettingDrift {
                    setting: format!("tags.{k}"),
                    want: v.clone(),
                    have: tags.get(k).cloned(),
                    after_create: false,
                });
            }
        }
        (apply, write, drift)
    }
}

/// The zone a new replica goes to: among `zones` (the template's, or those RDS offers for
/// [`Placement::Spread`]), the first with the fewest of `used` (the zones of the cluster's
/// replicas, one entry per replica). `None` when there is no zone to choose from.
pub fn choose_zone<'a>(
    zones: &'a [String],
    used: &[&str],
    skip: &dyn Fn(&str) -> bool,
) -> Option<&'a str> {
    zones
        .iter()
        .filter(|z| !skip(z))
        .min_by_key(|z| used.iter().filter(|u| **u == z.as_str()).count())
        .map(String::as_str)
}

/// How long a (class, zone) RDS had no capacity for is skipped.
pub const UNAVAILABLE_TTL_SECS: i64 = 15 * 60;
/// How long creation stops for a cluster after an account quota error.
pub const QUOTA_STOP_SECS: i64 = 60 * 60;

/// What RDS could not give lately (kept across ticks, like Karpenter's unavailable
/// offerings): (class, zone) pairs without capacity until a time, and a stop of all creation
/// after an account quota error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Offerings {
    pub unavailable: Vec<Unavailable>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaStop>,
}

/// A class (in a zone, or wherever RDS chose) without capacity until `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    pub class: InstanceClass,
    pub zone: Option<String>,
    pub until: DateTime<Utc>,
}

/// Creation stopped after a quota error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaStop {
    pub until: DateTime<Utc>,
    /// RDS's message.
    pub error: String,
}

impl Offerings {
    /// Forget what has expired at `now`.
    pub fn expire(&mut self, now: DateTime<Utc>) {
        self.unavailable.retain(|u| u.until > now);
        if self.quota.as_ref().is_some_and(|q| q.until <= now) {
            self.quota = None;
        }
    }

    pub fn is_unavailable(
        &self,
        class: &InstanceClass,
        zone: Option<&str>,
        now: DateTime<Utc>,
    ) -> bool {
        (self.unavailable.iter())
            .any(|u| u.class == *class && u.zone.as_deref() == zone && u.until > now)
    }

    pub fn mark_unavailable(
        &mut self,
        class: &InstanceClass,
        zone: Option<&str>,
        now: DateTime<Utc>,
    ) {
        self.unavailable
            .retain(|u| !(u.class == *class && u.zone.as_deref() == zone));
        self.unavailable.push(Unavailable {
            class: class.clone(),
            zone: zone.map(str::to_string),
            until: now + chrono::Duration::seconds(UNAVAILABLE_TTL_SECS),
        });
    }

    /// The quota stop in force at `now`.
    pub fn quota_stop(&self, now: DateTime<Utc>) -> Option<&QuotaStop> {
        self.quota.as_ref().filter(|q| q.until > now)
    }

    pub fn stop_for_quota(&mut self, now: DateTime<Utc>, error: String) {
        self.quota = Some(QuotaStop {
            until: now + chrono::Duration::seconds(QUOTA_STOP_SECS),
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;

    const CLUSTER: &str =
        "c1:\n  master_node: {identifier: snap, instance_id: c1m, instance_class: db.t3.micro}\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse("c.yaml", &format!("{CLUSTER}{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_replica_gets_its_clusters_template_with_its_own_over_it() {
        let c = parse(
            "  replica_template:\n    parameter_group: replicas-pg\n    monitoring_interval: 30\n    monitoring_role_arn: arn:aws:iam::123456789012:role/rds-monitoring\n    availability_zones: [eu-west-1a, eu-west-1b]\n    tags: {team: data}\n    repair_drift: true\n    fallback_classes: [db.r6g.xlarge]\n  replica_nodes:\n    - {id: c1s1, instance_class: db.t3.micro}\n    - id: c1s2\n      instance_class: db.t3.micro\n      template: {parameter_group: reporting-pg, availability_zones: spread, tags: {use: reports}}\n",
        )
        .unwrap();
        let spec = &c.clusters["c1"];
        assert!(spec.rules.repair_drift);
        assert_eq!(spec.rules.fallback_classes[0].as_str(), "db.r6g.xlarge");
        let (a, b) = (&spec.replicas[0].template, &spec.replicas[1].template);
        assert_eq!(a.settings.parameter_group.as_deref(), Some("replicas-pg"));
        assert_eq!(
            a.placement,
            Placement::Zones(vec!["eu-west-1a".into(), "eu-west-1b".into()])
        );
        assert_eq!(b.settings.parameter_group.as_deref(), Some("reporting-pg"));
        assert_eq!(b.settings.monitoring_interval, Some(30), "inherited");
        assert_eq!(b.placement, Placement::Spread);
        assert_eq!(b.tags.len(), 2, "{:?}", b.tags);
    }

    #[test]
    fn every_mistake_in_a_template_is_located_before_any_call() {
        let e = parse(
            "  replica_template:\n    iops: 3000\n    monitoring_interval: 7\n    storage_type: ssd\n    performance_insights_retention: 8\n    tags: {'aws:x': y}\n    availability_zones: everywhere\n    fallback_classes: [large]\n    colour: blue\n",
        )
        .unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = parse(
            "  replica_template:\n    iops: 3000\n    monitoring_interval: 7\n    storage_type: ssd\n    performance_insights_retention: 8\n    tags: {'aws:x': y}\n    availability_zones: everywhere\n    fallback_classes: [large]\n",
        )
        .unwrap_err();
        for want in [
            "c.yaml:5:26: c1.replica_template.monitoring_interval: 7: one of 0, 1, 5, 10, 15, 30, 60",
            "c1.replica_template.storage_type: \"ssd\": one of standard, gp2, gp3, io1, io2",
            "c1.replica_template.performance_insights_retention: 8: 7, or a multiple of 31",
            "c1.replica_template.tags.aws:x: \"aws:x\": aws: and rds: keys are AWS's own",
            "c1.replica_template.availability_zones: \"everywhere\": a list of availability zones, or \"spread\"",
            "c1.replica_template.fallback_classes[0]:",
            "c1.replica_template.iops: needs storage_type io1, io2 or gp3",
            "c1.replica_template.performance_insights_retention: needs performance_insights: true",
        ] {
            assert!(e.contains(want), "want {want:?} in:\n{e}");
        }
        // A combination broken by one replica's own template is reported at that replica.
        let e = parse(
            "  replica_template: {monitoring_interval: 0}\n  replica_nodes:\n    - id: c1s1\n      instance_class: db.t3.micro\n      template: {monitoring_interval: 60, repair_drift: true}\n",
        )
        .unwrap_err();
        assert!(
            e.contains(
                "c1.replica_nodes[0].template.monitoring_interval: needs monitoring_role_arn"
            ),
            "{e}"
        );
        assert!(
            e.contains("c1.replica_nodes[0].template.repair_drift: set per cluster"),
            "{e}"
        );
    }

    #[test]
    fn drift_is_only_what_the_template_sets_and_differs() {
        let want = ReplicaTemplate {
            settings: Settings {
                parameter_group: Some("pg".into()),
                backup_retention_period: Some(7),
                ..Settings::default()
            },
            placement: Placement::Any,
            tags: Tags::from([("team".to_string(), "data".to_string())]),
        };
        let have = Settings {
            parameter_group: Some("default.mysql8.0".into()),
            backup_retention_period: Some(0),
            port: Some(3306),
            ..Settings::default()
        };
        let (apply, tags, drift) = want.drift(&have, &Tags::new());
        assert_eq!(apply.parameter_group.as_deref(), Some("pg"));
        assert_eq!(apply.port, None, "not in the template: never drift");
        assert_eq!(tags["team"], "data");
        let names: Vec<&str> = drift.iter().map(|d| d.setting.as_str()).collect();
        assert_eq!(
            names,
            ["parameter_group", "backup_retention_period", "tags.team"]
        );
        assert!(drift[1].after_create && !drift[0].after_create);
        let same = Settings {
            parameter_group: Some("pg".into()),
            backup_retention_period: Some(7),
            ..have
        };
        let team = Tags::from([("team".to_string(), "data".to_string())]);
        assert!(want.drift(&same, &team).2.is_empty());
    }

    #[test]
    fn zones_fill_the_least_used_first_in_list_order() {
        let zones: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(choose_zone(&zones, &[], &|_| false), Some("a"));
        assert_eq!(choose_zone(&zones, &["a", "b"], &|_| false), Some("c"));
        assert_eq!(choose_zone(&zones, &["a", "c"], &|_| false), Some("b"));
        assert_eq!(
            choose_zone(&zones, &["a", "b", "c"], &|z| z == "a"),
            Some("b")
        );
        assert_eq!(choose_zone(&zones, &[], &|_| true), None);
    }

    #[test]
    fn offerings_expire_and_a_quota_stop_ends() {
        let t0: DateTime<Utc> = "2026-12-04T10:00:00Z".parse().unwrap();
        let class = InstanceClass::from_aws("db.r6g.large");
        let mut o = Offerings::default();
        o.mark_unavailable(&class, Some("a"), t0);
        assert!(o.is_unavailable(&class, Some("a"), t0));
        assert!(!o.is_unavailable(&class, Some("b"), t0));
        let later = t0 + chrono::Duration::seconds(UNAVAILABLE_TTL_SECS);
        assert!(!o.is_unavailable(&class, Some("a"), later));
        o.stop_for_quota(t0, "InstanceQuotaExceeded".into());
        assert!(o.quota_stop(t0).is_some());
        o.expire(t0 + chrono::Duration::seconds(QUOTA_STOP_SECS));
        assert_eq!(o, Offerings::default());
    }
}
