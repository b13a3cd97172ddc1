//! The AWS RDS adapter: the [`Fleet`] port on aws-sdk-rds. One DescribeDBInstances per up to
//! 100 identifiers (filter `db-instance-id`, paginated); restore, create/delete replica, modify
//! class, tags. SDK types stay inside this file.

use super::aws::{classify, sdk_config};
use crate::core::config::MasterSpec;
use crate::core::domain::{Endpoint, Instance, InstanceClass, InstanceId, InstanceStatus, Tags};
use crate::core::template::Settings;
use crate::ports::{ErrorKind, Fleet, PortError, ReplicaRequest};
use async_trait::async_trait;
use aws_sdk_rds::types::{DbInstance, Filter, Tag};
use aws_sdk_rds::Client;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// RDS accepts at most 100 values in one filter.
pub const DESCRIBE_BATCH: usize = 100;

/// Zones offered, by (engine, class).
type ZoneCache = std::collections::HashMap<(String, String), Vec<String>>;

#[derive(Clone, Debug)]
pub struct RdsFleet {
    client: Client,
    /// ARNs seen in describes, by lower-case id, so that a tag read or write after a describe
    /// needs no look-up of its own. An RDS instance ARN is derived from its identifier, so an
    /// entry never goes stale.
    arns: Arc<std::sync::Mutex<std::collections::HashMap<InstanceId, String>>>,
    /// The zones RDS offers, by (engine, class): asked once per process (they do not change
    /// while it runs), not at every create of a `spread` template.
    zones: Arc<std::sync::Mutex<ZoneCache>>,
}

impl RdsFleet {
    /// A client from the environment (default credential chain, region, endpoint overrides).
    pub async fn from_env() -> Self {
        let cfg = sdk_config().await;
        RdsFleet::from_client(Client::new(&cfg))
    }

    pub fn from_client(client: Client) -> Self {
        RdsFleet {
            client,
            arns: Arc::default(),
            zones: Arc::default(),
        }
    }

    fn remember_arn(&self, d: &DbInstance) {
        if let (Some(id), Some(arn)) = (d.db_instance_identifier(), d.db_instance_arn()) {
            if let Ok(mut m) = self.arns.lock() {
                m.insert(InstanceId::from_aws(id), arn.to_string());
            }
        }
    }

    async fn arn_of(&self, id: &InstanceId, op: &str) -> Result<String, PortError> {
        let known = self.arns.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some(arn) = known {
            return Ok(arn);
        }
        let out = self
            .client
            .describe_db_instances()
            .db_instance_identifier(id.as_str())
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        if let Some(d) = out.db_instances().first() {
            self.remember_arn(d);
        }
        out.db_instances()
            .first()
            .and_then(|i| i.db_instance_arn())
            .map(str::to_string)
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::NotFound,
                    op,
                    format!("DB instance {id} not found"),
                )
            })
    }
}

/// The template settings both CreateDBInstanceReadReplica and ModifyDBInstance take, set on
/// either builder (the same setter names on two SDK types).
macro_rules! with_settings {
    ($call:expr, $s:expr) => {{
        let s: &Settings = $s;
        let num = |v: Option<u32>| v.and_then(|v| i32::try_from(v).ok());
        $call
            .set_db_parameter_group_name(s.parameter_group.clone())
            .set_option_group_name(s.option_group.clone())
            .set_storage_type(s.storage_type.clone())
            .set_iops(num(s.iops))
            .set_storage_throughput(num(s.storage_throughput))
            .set_monitoring_interval(num(s.monitoring_interval))
            .set_monitoring_role_arn(s.monitoring_role_arn.clone())
            .set_enable_performance_insights(s.performance_insights)
            .set_performance_insights_retention_period(num(s.performance_insights_retention))
            .set_performance_insights_kms_key_id(s.performance_insights_kms_key.clone())
            .set_copy_tags_to_snapshot(s.copy_tags_to_snapshot)
            .set_auto_minor_version_upgrade(s.auto_minor_version_upgrade)
            .set_ca_certificate_identifier(s.ca_certificate_identifier.clone())
    }};
}

fn to_sdk_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn from_sdk_tags(tags: &[Tag]) -> Tags {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn to_instance(d: &DbInstance) -> Option<Instance> {
    let id = d.db_instance_identifier()?;
    let created_at = d
        .instance_create_time()
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
    Some(Instance {
        id: InstanceId::from_aws(id),
        class: InstanceClass::from_aws(d.db_instance_class().unwrap_or("")),
        status: InstanceStatus::parse(d.db_instance_status().unwrap_or("unknown")),
        engine: d.engine().unwrap_or("").into(),
        multi_az: d.multi_az().unwrap_or(false),
        source: d.read_replica_source_db_instance_identifier().map(|s| {
            // RDS may report the source as an ARN (cross-region); keep the identifier part
            // for display, the whole ARN for the ownership check.
            InstanceId::from_aws(s.rsplit(':').next().unwrap_or(s))
        }),
        source_arn: d
            .read_replica_source_db_instance_identifier()
            .filter(|s| s.starts_with("arn:"))
            .map(str::to_string),
        arn: d.db_instance_arn().map(str::to_string),
        replicas: d
            .read_replica_db_instance_identifiers()
            .iter()
            .map(|s| InstanceId::from_aws(s))
            .collect(),
        endpoint: d.endpoint().and_then(|e| {
            Some(Endpoint {
                address: e.address()?.into(),
                port: u16::try_from(e.port()?).ok()?,
            })
        }),
        created_at,
        available_since: None,
        tags: Arc::new(from_sdk_tags(d.tag_list())),
        zone: d.availability_zone().map(str::to_string),
        settings: Some(Arc::new(observed_settings(d))),
    })
}

/// What RDS reports of the settings a replica template may fix.
fn observed_settings(d: &DbInstance) -> Settings {
    let num = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
    Settings {
        parameter_group: (d.db_parameter_groups().first())
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
        option_group: (d.option_group_memberships().first())
            .and_then(|g| g.option_group_name())
            .map(str::to_string),
        storage_type: d.storage_type().map(str::to_string),
        iops: num(d.iops()),
        storage_throughput: num(d.storage_throughput()),
        monitoring_interval: num(d.monitoring_interval()),
        monitoring_role_arn: d.monitoring_role_arn().map(str::to_string),
        performance_insights: d.performance_insights_enabled(),
        performance_insights_retention: num(d.performance_insights_retention_period()),
        performance_insights_kms_key: d.performance_insights_kms_key_id().map(str::to_string),
        copy_tags_to_snapshot: d.copy_tags_to_snapshot(),
        auto_minor_version_upgrade: d.auto_minor_version_upgrade(),
        ca_certificate_identifier: d.ca_certificate_identifier().map(str::to_string),
        deletion_protection: d.deletion_protection(),
        publicly_accessible: d.publicly_accessible(),
        port: (d.endpoint().and_then(|e| e.port()))
            .or(d.db_instance_port())
            .and_then(|p| u16::try_from(p).ok()),
        backup_retention_period: num(d.backup_retention_period()),
    }
}

#[async_trait]
impl Fleet for RdsFleet {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError> {
        let op = "DescribeDBInstances";
        let mut out = Vec::new();
        for chunk in ids.chunks(DESCRIBE_BATCH) {
            let filter = Filter::builder()
                .name("db-instance-id")
                .set_values(Some(chunk.iter().map(|i| i.as_str().to_string()).collect()))
                .build();
            let mut pages = self
                .client
                .describe_db_instances()
                .filters(filter)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(op, &e))?;
                for d in page.db_instances() {
                    self.remember_arn(d);
                }
                out.extend((page.db_instances().iter().filter_map(to_instance)).map(Arc::new));
            }
        }
        // Only what was asked for: a filter is matched by RDS, but be strict about it.
        out.retain(|i| ids.contains(&i.id));
        Ok(out)
    }

    async fn restore_master(&self, master: &MasterSpec, tags: &Tags) -> Result<(), PortError> {
        let op = "RestoreDBInstanceFromDBSnapshot";
        self.client
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(master.id.as_str())
            .db_snapshot_identifier(&master.snapshot)
            .db_instance_class(master.class.as_str())
            .multi_az(master.multi_az)
            .set_db_subnet_group_name(master.subnet_group.clone())
            .set_tags(Some(to_sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }

    async fn create_replica(&self, r: &ReplicaRequest<'_>) -> Result<(), PortError> {
        let op = "CreateDBInstanceReadReplica";
        let s = r.settings;
        let call = self
            .client
            .create_db_instance_read_replica()
            .db_instance_identifier(r.id.as_str())
            .source_db_instance_identifier(r.source.as_str())
            .db_instance_class(r.class.as_str())
            .set_availability_zone(r.zone.map(str::to_string));
        with_settings!(call, s)
            // Off unless the template says otherwise: a replica elasticrds cannot delete, or
            // one open to the internet, is never what a default should give.
            .deletion_protection(s.deletion_protection.unwrap_or(false))
            .publicly_accessible(s.publicly_accessible.unwrap_or(false))
            .set_port(s.port.map(i32::from))
            .set_tags(Some(to_sdk_tags(r.tags)))
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }

    async fn modify_settings(&self, id: &InstanceId, s: &Settings) -> Result<(), PortError> {
        let op = "ModifyDBInstance";
        let call = self
            .client
            .modify_db_instance()
            .db_instance_identifier(id.as_str())
            .apply_immediately(true);
        with_settings!(call, s)
            .set_deletion_protection(s.deletion_protection)
            .set_publicly_accessible(s.publicly_accessible)
            .set_db_port_number(s.port.map(i32::from))
            .set_backup_retention_period(
                s.backup_retention_period
                    .and_then(|v| i32::try_from(v).ok()),
            )
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }

    async fn zones(
        &self,
        _near: &InstanceId,
        engine: &str,
        class: &InstanceClass,
    ) -> Result<Vec<String>, PortError> {
        let op = "DescribeOrderableDBInstanceOptions";
        let key = (engine.to_string(), class.as_str().to_string());
        if let Some(z) = self.zones.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(z);
        }
        let mut zones: Vec<String> = Vec::new();
        let mut pages = self
            .client
            .describe_orderable_db_instance_options()
            .engine(engine)
            .db_instance_class(class.as_str())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(op, &e))?;
            for o in page.orderable_db_instance_options() {
                for z in o.availability_zones().iter().filter_map(|z| z.name()) {
                    if !zones.iter().any(|k| k == z) {
                        zones.push(z.to_string());
                    }
                }
            }
        }
        zones.sort();
        if let Ok(mut m) = self.zones.lock() {
            m.insert(key, zones.clone());
        }
        Ok(zones)
    }

    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError> {
        let op = "DeleteDBInstance";
        self.client
            .delete_db_instance()
            .db_instance_identifier(id.as_str())
            .skip_final_snapshot(true)
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }

    async fn modify_class(&self, id: &InstanceId, class: &InstanceClass) -> Result<(), PortError> {
        let op = "ModifyDBInstance";
        self.client
            .modify_db_instance()
            .db_instance_identifier(id.as_str())
            .db_instance_class(class.as_str())
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }

    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError> {
        let op = "ListTagsForResource";
        let arn = self.arn_of(id, "DescribeDBInstances").await?;
        let out = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(from_sdk_tags(out.tag_list()))
    }

    async fn write_tags(&self, id: &InstanceId, tags: &Tags) -> Result<(), PortError> {
        let op = "AddTagsToResource";
        let arn = self.arn_of(id, "DescribeDBInstances").await?;
        self.client
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(to_sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }

    async fn remove_tags(&self, id: &InstanceId, keys: &[String]) -> Result<(), PortError> {
        let op = "RemoveTagsFromResource";
        let arn = self.arn_of(id, "DescribeDBInstances").await?;
        self.client
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| classify(op, &e))?;
        Ok(())
    }
}
