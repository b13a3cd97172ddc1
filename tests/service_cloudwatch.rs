//! The CloudWatch adapter against ministack (CloudWatch over rpcv2Cbor, as aws-sdk-cloudwatch
//! speaks it): datapoints put with PutMetricData come back per query with the query's period
//! and statistic, gaps stay missing (never zero), the period not yet final is excluded, and
//! 1,200 queries cost exactly ceil(1200/500) = 3 GetMetricData calls, counted on the wire by
//! an SDK interceptor.

mod support;

use aws_sdk_cloudwatch::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_cloudwatch::config::{ConfigBag, Intercept};
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataInput;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_runtime_api::box_error::BoxError;
use chrono::{DateTime, DurationRound, Utc};
use elasticrds::adapters::cloudwatch::CloudWatchMetrics;
use elasticrds::core::domain::{InstanceId, MetricKind, MetricQuery, Statistic};
use elasticrds::ports::MetricsSource;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone)]
struct CallLog(Arc<Mutex<Vec<String>>>);

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }
    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let entry = match ctx.input().downcast_ref::<GetMetricDataInput>() {
            Some(i) => format!("GetMetricData({})", i.metric_data_queries().len()),
            None => "other".to_string(),
        };
        self.0.lock().unwrap().push(entry);
        Ok(())
    }
}

fn datum(id: &str, metric: &str, at: DateTime<Utc>, value: f64) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(metric)
        .dimensions(
            Dimension::builder()
                .name("DBInstanceIdentifier")
                .value(id)
                .build(),
        )
        .timestamp(aws_smithy_types::DateTime::from_secs(at.timestamp()))
        .value(value)
        .unit(StandardUnit::Percent)
        .build()
}

#[test]
fn get_metric_data_batches_500_queries_per_call_and_keeps_gaps() {
    let ms = support::Ministack::start();
    let setup = support::cloudwatch_client(&ms.endpoint());
    let log = CallLog::default();
    let conf = setup.config().to_builder().interceptor(log.clone()).build();
    let client = aws_sdk_cloudwatch::Client::from_conf(conf);
    let source = CloudWatchMetrics::from_client(client);

    support::block_on(async {
        let now = Utc::now();
        let minute = chrono::Duration::minutes(1);
        // Window of 6 one-minute periods ending 2 minutes ago (aligned), like a policy's.
        let end = (now - minute).duration_trunc(minute).unwrap();
        let start = end - minute * 6;
        // db-a: every minute of the window, two samples in one minute (avg 50, max 70);
        // db-b: minute 3 missing (a gap); db-c: nothing at all. Plus a datapoint for the
        // period that ends after `end` (not final yet), which must not come back.
        let mut data = Vec::new();
        for k in 0..6 {
            let at = start + minute * k + chrono::Duration::seconds(10);
            if k == 2 {
                data.push(datum("db-a", "CPUUtilization", at, 30.0));
                data.push(datum("db-a", "CPUUtilization", at, 70.0));
            } else {
                data.push(datum("db-a", "CPUUtilization", at, 10.0 * k as f64));
            }
            if k != 3 {
                data.push(datum("db-b", "CPUUtilization", at, 40.0));
            }
        }
        data.push(datum(
            "db-a",
            "CPUUtilization",
            end + chrono::Duration::seconds(5),
            99.0,
        ));
        setup
            .put_metric_data()
            .namespace("AWS/RDS")
            .set_metric_data(Some(data))
            .send()
            .await
            .expect("PutMetricData");

        let q = |id: &str, s: Statistic| MetricQuery {
            instance: InstanceId::parse(id).unwrap(),
            metric: MetricKind::Cpu,
            statistic: s,
            period_secs: 60,
        };
        // 1,200 queries: the three interesting ones first, then fillers without data.
        let mut queries = vec![
            q("db-a", Statistic::Average),
            q("db-a", Statistic::Maximum),
            q("db-b", Statistic::Average),
            q("db-c", Statistic::Average),
        ];
        for i in 0..1196 {
            queries.push(q(&format!("db-fill{i}"), Statistic::Average));
        }
        let series = source.fetch(&queries, start, end).await.expect("fetch");
        assert_eq!(series.len(), queries.len());
        for (s, q) in series.iter().zip(&queries) {
            assert_eq!(&s.query, q, "answers in query order");
        }
        let ats = |i: usize| -> Vec<i64> {
            series[i]
                .samples
                .iter()
                .map(|s| (s.at - start).num_minutes())
                .collect()
        };
        let vals = |i: usize| -> Vec<f64> { series[i].samples.iter().map(|s| s.value).collect() };
        assert_eq!(ats(0), vec![0, 1, 2, 3, 4, 5], "{:?}", series[0]);
        assert_eq!(vals(0), vec![0.0, 10.0, 50.0, 30.0, 40.0, 50.0]);
        assert_eq!(vals(1)[2], 70.0, "Maximum statistic: {:?}", series[1]);
        assert_eq!(
            ats(2),
            vec![0, 1, 2, 4, 5],
            "gap stays a gap: {:?}",
            series[2]
        );
        assert!(
            series[3].samples.is_empty(),
            "no data, no zeros: {:?}",
            series[3]
        );
        assert!(series[4..].iter().all(|s| s.samples.is_empty()));
        let calls = log.0.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![
                "GetMetricData(500)",
                "GetMetricData(500)",
                "GetMetricData(200)"
            ],
            "GetMetricData calls for 1,200 queries: {calls:?}"
        );
    });
}
