//! The router step of a tick: put the replicas that are available and caught up into the
//! traffic router (HAProxy's runtime API, through the [`TrafficRouter`] port), leave out what
//! the tick deletes, and put back into service a replica whose drain was abandoned (its delete
//! is no longer planned). The lag queries this needs and the newest lag per replica.

use super::drain::{Drains, Route};
use crate::core::config::ClusterSpec;
use crate::core::domain::{InstanceId, MetricKind, MetricQuery, MetricSeries, Statistic};
use crate::core::plan::{Action, ClusterView, Plan};
use crate::ports::TrafficRouter;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What [`sync_router`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncReport {
    /// Added to HAProxy (or re-enabled there) this time.
    pub added: Vec<InstanceId>,
    /// Available replicas not added, and why (lag unknown or over the bound, planned for
    /// deletion).
    pub held: Vec<(InstanceId, String)>,
    /// Replicas the router failed on; when HAProxy is unreachable the first error ends the
    /// pass.
    pub errors: Vec<(InstanceId, String)>,
}

/// Add every available configured replica whose replica lag is known and under
/// `haproxy.max_lag` and that HAProxy does not have yet (`add server`, `enable health`,
/// `state ready`, and the config file's server block when one is configured). Replicas the
/// `plan` deletes or that are beyond its target are left out. Does nothing for a cluster
/// without a `haproxy` section. Call it each tick with a view observed after the tick's
/// actions were executed (or before executing, passing the tick's plan).
pub async fn sync_router(
    router: &dyn TrafficRouter,
    spec: &ClusterSpec,
    view: &ClusterView,
    replica_lag: &BTreeMap<InstanceId, Duration>,
    plan: Option<&Plan>,
    drains: &mut Drains,
) -> SyncReport {
    let mut report = SyncReport::default();
    let Some(h) = &spec.haproxy else {
        return report;
    };
    for (i, inst) in view.replicas.iter().enumerate() {
        let Some(inst) = inst else { continue };
        if !inst.status.is_available() || inst.endpoint.is_none() {
            continue;
        }
        if let Some(p) = plan {
            let deleted = p
                .actions
                .iter()
                .any(|a| matches!(&a.action, Action::DeleteReplica { id } if *id == inst.id));
            let within = view.usable_slots().take(p.target_replicas).any(|u| u == i);
            if deleted || !within {
                report
                    .held
                    .push((inst.id.clone(), "planned for deletion".into()));
                continue;
            }
        }
        let lag = replica_lag
            .iter()
            .find(|(k, _)| **k == inst.id)
            .map(|(_, v)| *v);
        match lag {
            None => {
                report
                    .held
                    .push((inst.id.clone(), "replica lag not known yet".into()));
                continue;
            }
            Some(l) if l >= h.max_lag => {
                report.held.push((
                    inst.id.clone(),
                    format!(
                        "replica lag {}s is not under {}s",
                        l.as_secs(),
                        h.max_lag.as_secs()
                    ),
                ));
                continue;
            }
            Some(_) => {}
        }
        // A replica we were draining whose delete is no longer planned goes back into
        // service (`add` is idempotent and makes it ready again).
        let undrain = drains.started(&inst.id).is_some();
        let result = match router.state(&inst.id).await {
            Ok(Some(_)) if !undrain => continue,
            Ok(_) => router.add(inst).await,
            Err(e) => Err(e),
        };
        if result.is_ok() {
            drains.forget(&inst.id);
        }
        match result {
            Ok(()) => report.added.push(inst.id.clone()),
            Err(e) => {
                let stop = e.is_retryable();
                report.errors.push((inst.id.clone(), e.to_string()));
                if stop {
                    break;
                }
            }
        }
    }
    report
}

/// The ReplicaLag queries [`sync_router`] needs each tick for a cluster with a `haproxy`
/// section: the maximum lag of every configured replica that is available, except those
/// `have` (the policy's own queries) already asks for. Empty without a `haproxy` section.
pub fn router_lag_queries(
    spec: &ClusterSpec,
    view: &ClusterView,
    period_secs: u32,
    have: &[MetricQuery],
) -> Vec<MetricQuery> {
    if spec.haproxy.is_none() {
        return Vec::new();
    }
    view.replicas
        .iter()
        .flatten()
        .filter(|i| i.status.is_available())
        .filter(|i| {
            !have
                .iter()
                .any(|q| q.metric == MetricKind::ReplicaLag && q.instance == i.id)
        })
        .map(|i| MetricQuery {
            instance: i.id.clone(),
            metric: MetricKind::ReplicaLag,
            statistic: Statistic::Maximum,
            period_secs,
        })
        .collect()
}

/// The newest ReplicaLag sample of each instance in `series` (the largest when statistics
/// disagree). Negative or non-finite values are left out (the lag is then unknown).
pub fn latest_replica_lag(series: &[MetricSeries]) -> BTreeMap<InstanceId, Duration> {
    let mut newest: BTreeMap<InstanceId, (chrono::DateTime<chrono::Utc>, f64)> = BTreeMap::new();
    for s in series
        .iter()
        .filter(|s| s.query.metric == MetricKind::ReplicaLag)
    {
        for x in s
            .samples
            .iter()
            .filter(|x| x.value.is_finite() && x.value >= 0.0)
        {
            let e = newest
                .entry(s.query.instance.clone())
                .or_insert((x.at, x.value));
            if x.at > e.0 || (x.at == e.0 && x.value > e.1) {
                *e = (x.at, x.value);
            }
        }
    }
    newest
        .into_iter()
        .filter_map(|(id, (_, v))| Duration::try_from_secs_f64(v).ok().map(|d| (id, d)))
        .collect()
}

/// The control tick's router step for one cluster behind `route` (none: no `haproxy`
/// section): [`sync_router`] with the lag from the tick's fetched `series`, leaving out what
/// `plan` deletes; the outcome is logged. Drains of replicas that are gone are forgotten.
pub async fn sync_router_for_tick(
    route: Option<Route<'_>>,
    spec: &ClusterSpec,
    view: &ClusterView,
    series: &[MetricSeries],
    plan: &Plan,
    drains: &mut Drains,
) -> Option<SyncReport> {
    let route = route?;
    drains.keep_existing(view);
    let lag = latest_replica_lag(series);
    let report = sync_router(route.router, spec, view, &lag, Some(plan), drains).await;
    let backend = &route.spec.backend;
    for id in &report.added {
        tracing::info!(cluster = %spec.name, replica = %id, backend = %backend, "added to HAProxy");
    }
    for (id, e) in &report.errors {
        tracing::warn!(cluster = %spec.name, replica = %id, backend = %backend, error = %e, "HAProxy add failed");
    }
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::Sample;
    use chrono::{TimeZone, Utc};

    fn lag(id: &str, stat: Statistic, points: &[(i64, f64)]) -> MetricSeries {
        MetricSeries {
            query: MetricQuery {
                instance: InstanceId::from_aws(id),
                metric: MetricKind::ReplicaLag,
                statistic: stat,
                period_secs: 60,
            },
            samples: points
                .iter()
                .map(|(t, v)| Sample {
                    at: Utc.timestamp_opt(*t, 0).unwrap(),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn latest_lag_is_the_newest_sample_and_ignores_bad_values() {
        let mut cpu = lag("r1", Statistic::Average, &[(300, 99.0)]);
        cpu.query.metric = MetricKind::Cpu;
        let series = vec![
            lag("r1", Statistic::Maximum, &[(0, 50.0), (60, 2.0)]),
            lag("r1", Statistic::Average, &[(60, 1.0)]),
            cpu,
            lag(
                "r2",
                Statistic::Maximum,
                &[(0, 3.0), (60, f64::NAN), (120, -1.0)],
            ),
            lag("r3", Statistic::Maximum, &[(0, f64::INFINITY)]),
        ];
        let got = latest_replica_lag(&series);
        assert_eq!(
            got,
            BTreeMap::from([
                (InstanceId::from_aws("r1"), Duration::from_secs(2)),
                (InstanceId::from_aws("r2"), Duration::from_secs(3)),
            ])
        );
    }
}
