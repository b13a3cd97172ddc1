//! The CloudWatch adapter: the [`MetricsSource`] port on aws-sdk-cloudwatch GetMetricData.
//! Queries from all replicas, metrics and clusters go into as few calls as possible (at most
//! [`MAX_QUERIES_PER_CALL`] per call), each paginated with NextToken; period and statistic come
//! from each query. Only complete periods are returned (a datapoint whose period ends after the
//! window's end is not final yet and is dropped); gaps stay gaps, never zeros. The endpoint
//! override AWS_ENDPOINT_URL_CLOUDWATCH is honoured through [`sdk_config`]. SDK types stay here.

use super::aws::{classify, sdk_config};
use crate::core::domain::{MetricQuery, MetricSeries, Sample};
use crate::ports::{ErrorKind, MetricsSource, PortError};
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDataResult, MetricStat, ScanBy, StatusCode,
};
use aws_sdk_cloudwatch::Client;
use chrono::{DateTime, Utc};

/// GetMetricData accepts at most 500 metric data queries per call.
pub const MAX_QUERIES_PER_CALL: usize = 500;
/// RDS metrics live in this namespace, keyed by this dimension.
pub const NAMESPACE: &str = "AWS/RDS";
pub const DIMENSION: &str = "DBInstanceIdentifier";
/// Guard against a service that keeps answering with a NextToken.
const MAX_PAGES: usize = 1000;
const OPERATION: &str = "GetMetricData";

#[derive(Clone, Debug)]
pub struct CloudWatchMetrics {
    client: Client,
}

impl CloudWatchMetrics {
    /// A client from the environment (default credential chain, region, endpoint overrides).
    pub async fn from_env() -> Self {
        let cfg = sdk_config().await;
        CloudWatchMetrics {
            client: Client::new(&cfg),
        }
    }

    pub fn from_client(client: Client) -> Self {
        CloudWatchMetrics { client }
    }

    /// The number of GetMetricData calls (first pages) `n` queries need.
    pub fn calls_for(n: usize) -> usize {
        n.div_ceil(MAX_QUERIES_PER_CALL)
    }

    /// One batch of at most 500 queries, all pages. Returns the results by position in `batch`.
    async fn fetch_batch(
        &self,
        batch: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Vec<Sample>>, PortError> {
        let queries: Vec<MetricDataQuery> = batch
            .iter()
            .enumerate()
            .map(|(i, q)| to_sdk_query(i, q))
            .collect();
        let mut acc: Vec<Vec<Sample>> = vec![Vec::new(); batch.len()];
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let out = self
                .client
                .get_metric_data()
                .set_metric_data_queries(Some(queries.clone()))
                .start_time(to_sdk_time(start))
                .end_time(to_sdk_time(end))
                .scan_by(ScanBy::TimestampAscending)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(OPERATION, &e))?;
            merge_results(out.metric_data_results(), &mut acc)?;
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(acc),
            }
        }
        Err(PortError::new(
            ErrorKind::Transient,
            OPERATION,
            format!("still paginating after {MAX_PAGES} pages"),
        ))
    }
}

/// The query id of position `i` in a call (ids must start with a lower-case letter).
fn query_id(i: usize) -> String {
    format!("q{i}")
}

fn parse_query_id(id: &str) -> Option<usize> {
    id.strip_prefix('q')?.parse().ok()
}

fn to_sdk_query(i: usize, q: &MetricQuery) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace(NAMESPACE)
        .metric_name(q.metric.cloudwatch_name())
        .dimensions(
            Dimension::builder()
                .name(DIMENSION)
                .value(q.instance.as_str())
                .build(),
        )
        .build();
    MetricDataQuery::builder()
        .id(query_id(i))
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(q.period_secs.min(i32::MAX as u32) as i32)
                .stat(q.statistic.as_str())
                .build(),
        )
        .return_data(true)
        .build()
}

fn to_sdk_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(t.timestamp(), t.timestamp_subsec_nanos())
}

fn from_sdk_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Add one page of results to `acc` (indexed by query position). Non-finite values are gaps.
fn merge_results(results: &[MetricDataResult], acc: &mut [Vec<Sample>]) -> Result<(), PortError> {
    for r in results {
        match r.status_code() {
            Some(StatusCode::InternalError) => {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    OPERATION,
                    format!("query {} answered InternalError", r.id().unwrap_or("?")),
                ))
            }
            Some(StatusCode::Forbidden) => {
                return Err(PortError::new(
                    ErrorKind::Fatal,
                    OPERATION,
                    format!("query {} answered Forbidden", r.id().unwrap_or("?")),
                ))
            }
            _ => {}
        }
        let Some(slot) = r.id().and_then(parse_query_id).and_then(|i| acc.get_mut(i)) else {
            continue;
        };
        for (t, v) in r.timestamps().iter().zip(r.values()) {
            if let (Some(at), true) = (from_sdk_time(t), v.is_finite()) {
                slot.push(Sample { at, value: *v });
            }
        }
    }
    Ok(())
}

/// Keep the complete periods inside `[start, end)`, ascending, one sample per timestamp.
pub fn finalize(
    samples: &mut Vec<Sample>,
    period_secs: u32,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) {
    let period = chrono::Duration::seconds(i64::from(period_secs.max(1)));
    samples.retain(|s| s.at >= start && s.at + period <= end);
    samples.sort_by_key(|s| s.at);
    samples.dedup_by(|a, b| a.at == b.at);
}

#[async_trait]
impl MetricsSource for CloudWatchMetrics {
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        let mut out = Vec::with_capacity(queries.len());
        if end <= start {
            return Ok(queries
                .iter()
                .map(|q| MetricSeries {
                    query: q.clone(),
                    samples: Vec::new(),
                })
                .collect());
        }
        for batch in queries.chunks(MAX_QUERIES_PER_CALL) {
            let results = self.fetch_batch(batch, start, end).await?;
            for (q, mut samples) in batch.iter().zip(results) {
                finalize(&mut samples, q.period_secs, start, end);
                out.push(MetricSeries {
                    query: q.clone(),
                    samples,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{InstanceId, MetricKind, Statistic};
    use chrono::TimeZone;

    fn t(min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, min, 0).unwrap()
    }

    fn result(id: &str, points: &[(u32, f64)]) -> MetricDataResult {
        let mut b = MetricDataResult::builder().id(id);
        for (m, v) in points {
            b = b.timestamps(to_sdk_time(t(*m))).values(*v);
        }
        b.status_code(StatusCode::Complete).build()
    }

    #[test]
    fn query_ids_round_trip_and_queries_carry_period_and_stat() {
        assert_eq!(parse_query_id(&query_id(499)), Some(499));
        assert_eq!(parse_query_id("x1"), None);
        let q = MetricQuery {
            instance: InstanceId::parse("db-r1").unwrap(),
            metric: MetricKind::ReplicaLag,
            statistic: Statistic::Maximum,
            period_secs: 300,
        };
        let s = to_sdk_query(7, &q);
        assert_eq!(s.id(), Some("q7"));
        let stat = s.metric_stat().unwrap();
        assert_eq!(stat.period(), Some(300));
        assert_eq!(stat.stat(), Some("Maximum"));
        let m = stat.metric().unwrap();
        assert_eq!(m.namespace(), Some("AWS/RDS"));
        assert_eq!(m.metric_name(), Some("ReplicaLag"));
        assert_eq!(m.dimensions()[0].value(), Some("db-r1"));
    }

    #[test]
    fn pages_merge_by_id_and_gaps_stay_gaps() {
        let mut acc = vec![Vec::new(), Vec::new()];
        merge_results(
            &[result("q1", &[(3, 50.0)]), result("q0", &[(1, 10.0)])],
            &mut acc,
        )
        .unwrap();
        merge_results(
            &[
                result("q0", &[(0, 5.0), (2, f64::NAN)]),
                result("zz", &[(1, 1.0)]),
            ],
            &mut acc,
        )
        .unwrap();
        finalize(&mut acc[0], 60, t(0), t(10));
        assert_eq!(
            acc[0],
            vec![
                Sample {
                    at: t(0),
                    value: 5.0
                },
                Sample {
                    at: t(1),
                    value: 10.0
                }
            ]
        );
        assert_eq!(
            acc[1],
            vec![Sample {
                at: t(3),
                value: 50.0
            }]
        );
    }

    #[test]
    fn incomplete_and_out_of_window_periods_are_dropped() {
        let mut s = vec![
            Sample {
                at: t(4),
                value: 1.0,
            },
            Sample {
                at: t(5),
                value: 2.0,
            },
            Sample {
                at: t(9),
                value: 3.0,
            },
            Sample {
                at: t(9),
                value: 3.0,
            },
            Sample {
                at: t(10),
                value: 4.0,
            },
        ];
        // 5-minute periods in [12:05, 12:13): 12:05 is complete, 12:09 and 12:10 end after it.
        finalize(&mut s, 300, t(5), t(13));
        assert_eq!(
            s,
            vec![Sample {
                at: t(5),
                value: 2.0
            }]
        );
    }

    #[test]
    fn error_statuses_map_to_port_errors() {
        let r = MetricDataResult::builder()
            .id("q0")
            .status_code(StatusCode::InternalError)
            .build();
        let e = merge_results(&[r], &mut [Vec::new()]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient);
        let r = MetricDataResult::builder()
            .id("q0")
            .status_code(StatusCode::Forbidden)
            .build();
        assert_eq!(
            merge_results(&[r], &mut [Vec::new()]).unwrap_err().kind,
            ErrorKind::Fatal
        );
    }

    #[test]
    fn calls_needed() {
        assert_eq!(CloudWatchMetrics::calls_for(0), 0);
        assert_eq!(CloudWatchMetrics::calls_for(500), 1);
        assert_eq!(CloudWatchMetrics::calls_for(4500), 9);
        assert_eq!(CloudWatchMetrics::calls_for(4501), 10);
    }
}
