//! Counting decorators around the [`Fleet`] and [`MetricsSource`] ports: each port call is
//! counted in `elasticrds_aws_calls_total{service,operation}` under the AWS operation it stands
//! for, and each failure in `elasticrds_aws_errors_total{service,operation,kind}`. The adapters
//! are untouched. A describe of n identifiers counts ceil(n/100) DescribeDBInstances calls and a
//! fetch of n queries ceil(n/500) GetMetricData calls, the batching both AWS adapters do (a
//! load history read the same per time range over its clusters' instances; extra pages of a
//! paginated answer are not seen here).

use super::metrics::Metrics;
use crate::core::config::MasterSpec;
use crate::core::domain::Instance;
use crate::core::domain::{InstanceClass, InstanceId, MetricQuery, MetricSeries, Tags};
use crate::core::forecast::LoadHistory;
use crate::core::template::Settings;
use crate::ports::{Fleet, HistoryQuery, MetricsSource, PortError, ReplicaRequest};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Identifiers per DescribeDBInstances call, queries per GetMetricData call.
const DESCRIBE_BATCH: usize = 100;
const FETCH_BATCH: usize = 500;

pub struct CountingFleet {
    inner: Arc<dyn Fleet>,
    metrics: Metrics,
}

impl CountingFleet {
    pub fn new(inner: Arc<dyn Fleet>, metrics: Metrics) -> Self {
        CountingFleet { inner, metrics }
    }

    fn count<T>(&self, op: &str, calls: u64, r: Result<T, PortError>) -> Result<T, PortError> {
        self.metrics.aws_call("rds", op, calls);
        if let Err(e) = &r {
            self.metrics.aws_error("rds", op, e.kind.as_str());
        }
        r
    }
}

#[async_trait]
impl Fleet for CountingFleet {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError> {
        let calls = ids.len().div_ceil(DESCRIBE_BATCH).max(1) as u64;
        let r = self.inner.describe(ids).await;
        self.count("DescribeDBInstances", calls, r)
    }
    async fn restore_master(&self, master: &MasterSpec, tags: &Tags) -> Result<(), PortError> {
        let r = self.inner.restore_master(master, tags).await;
        self.count("RestoreDBInstanceFromDBSnapshot", 1, r)
    }
    async fn create_replica(&self, req: &ReplicaRequest<'_>) -> Result<(), PortError> {
        let r = self.inner.create_replica(req).await;
        self.count("CreateDBInstanceReadReplica", 1, r)
    }
    async fn modify_settings(&self, id: &InstanceId, settings: &Settings) -> Result<(), PortError> {
        let r = self.inner.modify_settings(id, settings).await;
        self.count("ModifyDBInstance", 1, r)
    }
    async fn zones(
        &self,
        near: &InstanceId,
        engine: &str,
        class: &InstanceClass,
    ) -> Result<Vec<String>, PortError> {
        let r = self.inner.zones(near, engine, class).await;
        self.count("DescribeOrderableDBInstanceOptions", 1, r)
    }
    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError> {
        let r = self.inner.delete_replica(id).await;
        self.count("DeleteDBInstance", 1, r)
    }
    async fn modify_class(&self, id: &InstanceId, class: &InstanceClass) -> Result<(), PortError> {
        let r = self.inner.modify_class(id, class).await;
        self.count("ModifyDBInstance", 1, r)
    }
    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError> {
        let r = self.inner.read_tags(id).await;
        self.count("ListTagsForResource", 1, r)
    }
    async fn write_tags(&self, id: &InstanceId, tags: &Tags) -> Result<(), PortError> {
        let r = self.inner.write_tags(id, tags).await;
        self.count("AddTagsToResource", 1, r)
    }
    async fn remove_tags(&self, id: &InstanceId, keys: &[String]) -> Result<(), PortError> {
        let r = self.inner.remove_tags(id, keys).await;
        self.count("RemoveTagsFromResource", 1, r)
    }
}

pub struct CountingMetrics {
    inner: Arc<dyn MetricsSource>,
    metrics: Metrics,
}

impl CountingMetrics {
    pub fn new(inner: Arc<dyn MetricsSource>, metrics: Metrics) -> Self {
        CountingMetrics { inner, metrics }
    }
}

#[async_trait]
impl MetricsSource for CountingMetrics {
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        let op = "GetMetricData";
        let r = self.inner.fetch(queries, start, end).await;
        self.metrics
            .aws_call("cloudwatch", op, queries.len().div_ceil(FETCH_BATCH) as u64);
        if let Err(e) = &r {
            self.metrics.aws_error("cloudwatch", op, e.kind.as_str());
        }
        r
    }

    /// The inner source's own history read (so a source that overrides it keeps doing so),
    /// counted as the default read calls: one GetMetricData per time range and batch of 500
    /// instances.
    async fn load_history(&self, queries: &[HistoryQuery]) -> Result<Vec<LoadHistory>, PortError> {
        let op = "GetMetricData";
        let r = self.inner.load_history(queries).await;
        let calls: usize = (HistoryQuery::fetch_groups(queries).iter())
            .map(|g| {
                let series: usize = g.iter().map(|&i| queries[i].instances.len()).sum();
                series.max(1).div_ceil(FETCH_BATCH)
            })
            .sum();
        self.metrics.aws_call("cloudwatch", op, calls as u64);
        if let Err(e) = &r {
            self.metrics.aws_error("cloudwatch", op, e.kind.as_str());
        }
        r
    }
}
