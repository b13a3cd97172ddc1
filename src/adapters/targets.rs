//! Clusters in other regions and accounts: one RDS and one CloudWatch client per (region,
//! role) the config names — the role's credentials from STS AssumeRole through aws-config's
//! provider (refreshed before they expire), shared by every cluster of that target — and a
//! [`RoutedFleet`] / [`RoutedMetrics`] that send each call to the client of the instance's
//! cluster. The daemon observes and fetches per target (`service::daemon`), so batching stays
//! per (region, account) and a role that cannot be assumed fails only its clusters. A config
//! without targets gets the plain default clients, exactly as before.

use super::aws::sdk_config;
use super::cloudwatch::CloudWatchMetrics;
use super::rds::RdsFleet;
use crate::core::config::{ClusterSpec, MasterSpec};
use crate::core::domain::{Instance, InstanceClass, InstanceId, MetricQuery, MetricSeries, Tags};
use crate::core::target::Target;
use crate::core::template::Settings;
use crate::ports::{Fleet, MetricsSource, PortError, ReplicaRequest};
use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// The SDK config for `target`: its region, and its role's credentials over `base`'s.
pub async fn target_config(base: &SdkConfig, target: &Target) -> SdkConfig {
    let mut b = base.to_builder();
    if let Some(r) = &target.region {
        b = b.region(Region::new(r.clone()));
    }
    if let Some(role) = &target.role {
        let mut p = aws_config::sts::AssumeRoleProvider::builder(role.arn.clone())
            .session_name(role.session_name.clone())
            .configure(base);
        if let Some(e) = &role.external_id {
            p = p.external_id(e.clone());
        }
        if let Some(r) = &target.region {
            p = p.region(Region::new(r.clone()));
        }
        let provider = p.build().await;
        b = b.credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        );
    }
    b.build()
}

/// The RDS client of one cluster's target (the CLI's per-cluster commands).
pub async fn fleet_for(spec: &ClusterSpec) -> RdsFleet {
    let cfg = target_config(&sdk_config().await, &spec.target).await;
    RdsFleet::from_client(aws_sdk_rds::Client::new(&cfg))
}

/// The CloudWatch client of one cluster's target.
pub async fn metrics_for(spec: &ClusterSpec) -> CloudWatchMetrics {
    let cfg = target_config(&sdk_config().await, &spec.target).await;
    CloudWatchMetrics::from_client(aws_sdk_cloudwatch::Client::new(&cfg))
}

/// Routes by instance id: which target (index) each configured instance belongs to.
#[derive(Debug, Clone, Default)]
struct Routes {
    by_id: HashMap<String, usize>,
}

impl Routes {
    fn of(specs: &[&ClusterSpec], targets: &[Target]) -> Routes {
        let mut by_id = HashMap::new();
        for s in specs {
            let t = targets.iter().position(|t| *t == s.target).unwrap_or(0);
            for id in s.all_ids() {
                by_id.insert(id.as_str().to_ascii_lowercase(), t);
            }
        }
        Routes { by_id }
    }
    /// An instance outside the config goes to the first target (the default one, when any
    /// cluster uses it).
    fn of_id(&self, id: &InstanceId) -> usize {
        self.known(id).unwrap_or(0)
    }
    /// The target of a configured instance.
    fn known(&self, id: &InstanceId) -> Option<usize> {
        self.by_id.get(&id.as_str().to_ascii_lowercase()).copied()
    }
}

/// The distinct targets of `specs`, the default one first when used.
pub fn targets_of(specs: &[&ClusterSpec]) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for s in specs {
        if !out.contains(&s.target) {
            out.push(s.target.clone());
        }
    }
    out.sort_by_key(|t| !t.is_default());
    out
}

/// The fleet and metrics of `specs`: the plain default clients when no cluster names a target,
/// else routed ones with a client per target.
pub async fn clients_for(specs: &[&ClusterSpec]) -> (Arc<dyn Fleet>, Arc<dyn MetricsSource>) {
    let base = sdk_config().await;
    let targets = targets_of(specs);
    if targets.iter().all(Target::is_default) {
        let fleet = RdsFleet::from_client(aws_sdk_rds::Client::new(&base));
        let cw = CloudWatchMetrics::from_client(aws_sdk_cloudwatch::Client::new(&base));
        return (Arc::new(fleet), Arc::new(cw));
    }
    let mut fleets: Vec<Arc<dyn Fleet>> = Vec::new();
    let mut sources: Vec<Arc<dyn MetricsSource>> = Vec::new();
    for t in &targets {
        let cfg = target_config(&base, t).await;
        fleets.push(Arc::new(RdsFleet::from_client(aws_sdk_rds::Client::new(
            &cfg,
        ))));
        let cw = aws_sdk_cloudwatch::Client::new(&cfg);
        sources.push(Arc::new(CloudWatchMetrics::from_client(cw)));
    }
    let routes = Routes::of(specs, &targets);
    let fleet = RoutedFleet {
        fleets,
        routes: routes.clone(),
    };
    (Arc::new(fleet), Arc::new(RoutedMetrics { sources, routes }))
}

/// Each call to the fleet of the instance's cluster.
pub struct RoutedFleet {
    fleets: Vec<Arc<dyn Fleet>>,
    routes: Routes,
}

impl RoutedFleet {
    fn of(&self, id: &InstanceId) -> &dyn Fleet {
        self.fleets[self.routes.of_id(id)].as_ref()
    }
}

#[async_trait]
impl Fleet for RoutedFleet {
    /// One describe per target among `ids` (the daemon asks per target: one here). An id
    /// outside the config (a replica of a master that the config does not list) goes with the
    /// configured ids of the same call, to their account and region.
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Arc<Instance>>, PortError> {
        let mut groups: Vec<Vec<InstanceId>> = vec![Vec::new(); self.fleets.len()];
        let call = ids.iter().find_map(|id| self.routes.known(id)).unwrap_or(0);
        for id in ids {
            groups[self.routes.known(id).unwrap_or(call)].push(id.clone());
        }
        let mut out = Vec::new();
        for (fleet, group) in self.fleets.iter().zip(groups) {
            if !group.is_empty() {
                out.extend(fleet.describe(&group).await?);
            }
        }
        Ok(out)
    }
    async fn restore_master(&self, master: &MasterSpec, tags: &Tags) -> Result<(), PortError> {
        self.of(&master.id).restore_master(master, tags).await
    }
    async fn create_replica(&self, r: &ReplicaRequest<'_>) -> Result<(), PortError> {
        self.of(r.id).create_replica(r).await
    }
    async fn modify_settings(&self, id: &InstanceId, s: &Settings) -> Result<(), PortError> {
        self.of(id).modify_settings(id, s).await
    }
    async fn zones(
        &self,
        near: &InstanceId,
        engine: &str,
        class: &InstanceClass,
    ) -> Result<Vec<String>, PortError> {
        self.of(near).zones(near, engine, class).await
    }
    async fn delete_replica(&self, id: &InstanceId) -> Result<(), PortError> {
        self.of(id).delete_replica(id).await
    }
    async fn modify_class(&self, id: &InstanceId, class: &InstanceClass) -> Result<(), PortError> {
        self.of(id).modify_class(id, class).await
    }
    async fn read_tags(&self, id: &InstanceId) -> Result<Tags, PortError> {
        self.of(id).read_tags(id).await
    }
    async fn write_tags(&self, id: &InstanceId, tags: &Tags) -> Result<(), PortError> {
        self.of(id).write_tags(id, tags).await
    }
    async fn remove_tags(&self, id: &InstanceId, keys: &[String]) -> Result<(), PortError> {
        self.of(id).remove_tags(id, keys).await
    }
}

/// Each query to the CloudWatch of the instance's cluster (one fetch per target).
pub struct RoutedMetrics {
    sources: Vec<Arc<dyn MetricsSource>>,
    routes: Routes,
}

#[async_trait]
impl MetricsSource for RoutedMetrics {
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.sources.len()];
        for (i, q) in queries.iter().enumerate() {
            groups[self.routes.of_id(&q.instance)].push(i);
        }
        let mut out: Vec<Option<MetricSeries>> = vec![None; queries.len()];
        for (source, group) in self.sources.iter().zip(groups) {
            if group.is_empty() {
                continue;
            }
            let qs: Vec<MetricQuery> = group.iter().map(|&i| queries[i].clone()).collect();
            for (i, s) in group.into_iter().zip(source.fetch(&qs, start, end).await?) {
                out[i] = Some(s);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}
