//! Recorded metrics: a [`MetricsSource`] that answers from a file of samples instead of
//! CloudWatch — for `elasticrds plan --metrics FILE`, tests and the backtest.
//!
//! Format (documented in docs/policies.md, "Recorded metrics files"):
//! - CSV with the columns `timestamp,instance,metric,statistic,value` (the header line is
//!   optional; blank lines and lines starting with `#` are ignored). `timestamp` is the start
//!   of the sample's period, RFC 3339 (`2026-11-25T12:00:00Z`) or Unix seconds; `instance` a DB
//!   instance id; `metric` one of `cpu`, `connections`, `replica_lag` (or the CloudWatch names
//!   `CPUUtilization`, `DatabaseConnections`, `ReplicaLag`); `statistic` `Average` or `Maximum`;
//!   `value` a number, or empty for a missing sample.
//! - JSON: an array of objects with the same five fields (`value` may be `null`).
//!
//! Rules: a bad row is a located error (`file:line:column: field: message`), every bad row is
//! reported; gaps are missing samples, never zeros; rows may come in any order (they are sorted
//! by time); a row repeating an earlier (instance, metric, statistic, timestamp) with the same
//! value is ignored, with a different value it is an error naming both lines (the rule of
//! traces too); values are in their metric's range: CPU 0 to 100, connections and replica lag
//! finite and ≥ 0 (docs/usage.md, "Input rules"). Samples are returned as recorded (the
//! query's period is not used to re-aggregate them).

use crate::core::domain::{InstanceId, MetricKind, MetricQuery, MetricSeries, Sample, Statistic};
use crate::core::input::csv_rows::{for_each_row, CsvRow};
use crate::core::input::{locate, parse_document_up_to, InputError, InputErrors, Syntax};
use crate::ports::{MetricsSource, PortError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;

type Key = (InstanceId, MetricKind, Statistic);

/// The CSV columns, in order.
const COLUMNS: [&str; 5] = ["timestamp", "instance", "metric", "statistic", "value"];

/// Largest recorded-metrics file accepted (the data-file limit, 64 MiB).
const MAX_RECORDED_BYTES: usize = crate::input_file::MAX_DATA_BYTES as usize;

/// Samples by (lower-case instance id, metric, statistic), each sorted by time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordedMetrics {
    series: BTreeMap<Key, Vec<Sample>>,
}

fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return DateTime::from_timestamp(n, 0)
            .ok_or_else(|| format!("{n} is out of range as Unix seconds"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time or Unix seconds: {e}"))
}

fn parse_statistic(s: &str) -> Result<Statistic, String> {
    match s.trim() {
        "Average" | "average" => Ok(Statistic::Average),
        "Maximum" | "maximum" => Ok(Statistic::Maximum),
        o => Err(format!("{o:?} is not one of Average, Maximum")),
    }
}

fn parse_metric(s: &str) -> Result<MetricKind, String> {
    MetricKind::parse(s.trim()).ok_or_else(|| {
        format!(
            "unknown metric {:?}: one of cpu, connections, replica_lag",
            s.trim()
        )
    })
}

/// A CSV value: empty is a missing sample; otherwise a number, in its metric's range when the
/// metric is known (`MetricKind::check_value`).
fn parse_value(s: &str, metric: Option<MetricKind>) -> Result<Option<f64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let v = s
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("{s:?} is not a number"))?;
    match metric {
        Some(m) => m.check_value(v).map(|()| Some(v)),
        None => Ok(Some(v)),
    }
}

/// Starts the message of a JSON row whose value is out of its metric's range, so that the
/// error can name the `value` field (serde locates the row).
const VALUE_TAG: &str = "value: ";

/// One JSON row: fields validated while deserializing so errors carry their position, and the
/// value checked against its metric's range once the whole row is read.
#[derive(Debug, Deserialize)]
#[serde(try_from = "JsonFields")]
struct JsonRow(JsonFields);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFields {
    timestamp: JsonTime,
    instance: InstanceId,
    metric: JsonMetric,
    statistic: JsonStatistic,
    value: Option<f64>,
}

impl TryFrom<JsonFields> for JsonRow {
    type Error = String;
    fn try_from(r: JsonFields) -> Result<Self, String> {
        match r.value.map(|v| r.metric.0.check_value(v)) {
            Some(Err(m)) => Err(format!("{VALUE_TAG}{m}")),
            _ => Ok(JsonRow(r)),
        }
    }
}

/// A range error from [`JsonRow`]: the field is the row's `value`, and the position (which
/// serde puts after the row) that of the row's own `"value"` key.
fn name_value_field(text: &str, mut e: InputError) -> InputError {
    let Some(m) = e.message.strip_prefix(VALUE_TAG) else {
        return e;
    };
    e.message = m.to_string();
    e.field = format!("{}.value", e.field);
    if let Some(at) = locate(text, Syntax::Json, &e.field) {
        e = e.at(Some(at.key));
    }
    e
}

#[derive(Debug)]
struct JsonTime(DateTime<Utc>);
impl<'de> Deserialize<'de> for JsonTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom(
                    "expected an RFC 3339 string or Unix seconds",
                ))
            }
        };
        parse_timestamp(&s)
            .map(JsonTime)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug)]
struct JsonMetric(MetricKind);
impl<'de> Deserialize<'de> for JsonMetric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_metric(&s)
            .map(JsonMetric)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug)]
struct JsonStatistic(Statistic);
impl<'de> Deserialize<'de> for JsonStatistic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_statistic(&s)
            .map(JsonStatistic)
            .map_err(serde::de::Error::custom)
    }
}

/// Collects rows, checking duplicates; `where_` says where a row came from for messages.
#[derive(Default)]
struct Builder {
    rows: BTreeMap<(Key, DateTime<Utc>), (f64, String)>,
    errors: Vec<InputError>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        file: &str,
        id: &InstanceId,
        metric: MetricKind,
        stat: Statistic,
        at: DateTime<Utc>,
        value: f64,
        where_: String,
        pos: Option<(usize, usize)>,
    ) {
        let key = ((id.clone(), metric, stat), at);
        match self.rows.get(&key) {
            Some((v, first)) if *v != value => self.errors.push(
                InputError::new(
                    file,
                    "value",
                    format!(
                        "duplicate sample for {id} {metric} {} at {at} with a different value ({value} here, {v} at {first})",
                        stat.as_str()
                    ),
                )
                .at(pos),
            ),
            Some(_) => {}
            None => {
                self.rows.insert(key, (value, where_));
            }
        }
    }

    /// One CSV record: the header (checked against [`COLUMNS`]) or a sample row; every bad
    /// field is an error located at it.
    fn add_csv_row(&mut self, file: &str, row: &CsvRow, header: bool) {
        let fields: Vec<&str> = row.fields().collect();
        let whole_row = |msg: String| InputError::new(file, "", msg).at(Some(row.pos(0)));
        if header {
            if fields != COLUMNS {
                let (want, got) = (COLUMNS.join(","), fields.join(","));
                let e = whole_row(format!("header must be {want}, found {got}"));
                self.errors.push(e);
            }
            return;
        }
        if fields.len() != COLUMNS.len() {
            let (want, n) = (COLUMNS.join(","), fields.len());
            let e = whole_row(format!("expected 5 columns ({want}), found {n}"));
            self.errors.push(e);
            return;
        }
        let mut bad = |i: usize, msg: String| {
            let e = InputError::new(file, COLUMNS[i], msg).at(Some(row.pos(i)));
            self.errors.push(e);
        };
        let at = parse_timestamp(fields[0]).map_err(|m| bad(0, m)).ok();
        let id = InstanceId::parse(fields[1])
            .map_err(|e| bad(1, e.to_string()))
            .ok();
        let metric = parse_metric(fields[2]).map_err(|m| bad(2, m)).ok();
        let stat = parse_statistic(fields[3]).map_err(|m| bad(3, m)).ok();
        let value = parse_value(fields[4], metric).map_err(|m| bad(4, m)).ok();
        if let (Some(at), Some(id), Some(metric), Some(stat), Some(Some(v))) =
            (at, id, metric, stat, value)
        {
            let (line, pos) = (row.mark.line, Some(row.pos(4)));
            self.add(file, &id, metric, stat, at, v, format!("line {line}"), pos);
        }
    }

    fn finish(self) -> Result<RecordedMetrics, InputErrors> {
        if !self.errors.is_empty() {
            return Err(InputErrors(self.errors));
        }
        let mut series: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
        // BTreeMap order: by key, then time ascending.
        for ((key, at), (value, _)) in self.rows {
            series.entry(key).or_default().push(Sample { at, value });
        }
        Ok(RecordedMetrics { series })
    }
}

impl RecordedMetrics {
    /// Build from rows in memory (tests, simulations). Later duplicates overwrite earlier ones.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (InstanceId, MetricKind, Statistic, Sample)>,
    ) -> RecordedMetrics {
        let mut map: BTreeMap<(Key, DateTime<Utc>), f64> = BTreeMap::new();
        for (id, m, s, sample) in rows {
            if sample.value.is_finite() {
                map.insert(((id, m, s), sample.at), sample.value);
            }
        }
        let mut series: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
        for ((key, at), value) in map {
            series.entry(key).or_default().push(Sample { at, value });
        }
        RecordedMetrics { series }
    }

    /// Read a recorded-metrics file (CSV, or JSON by extension or a leading `[`).
    pub fn load(path: &Path) -> Result<RecordedMetrics, InputErrors> {
        let text = crate::input_file::read_text(path, MAX_RECORDED_BYTES as u64)?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parse recorded metrics; JSON when `file` ends in `.json` or the text starts with `[`.
    /// A file of nothing but blank lines and comments is refused as empty (a wrong file, most
    /// likely: a record of no samples still has its header row, or is `[]`).
    pub fn parse(file: &str, text: &str) -> Result<RecordedMetrics, InputErrors> {
        let blank = |l: &str| l.trim().is_empty() || l.trim_start().starts_with('#');
        if text.trim_start_matches('\u{feff}').lines().all(blank) {
            let why = "document is empty (a record of no samples still has its header row)";
            return Err(InputErrors(vec![
                InputError::new(file, "", why).at(Some((1, 1)))
            ]));
        }
        if file.to_ascii_lowercase().ends_with(".json") || text.trim_start().starts_with('[') {
            Self::parse_json(file, text)
        } else {
            Self::parse_csv(file, text)
        }
    }

    fn parse_json(file: &str, text: &str) -> Result<RecordedMetrics, InputErrors> {
        let rows: Result<Vec<JsonRow>, InputError> =
            parse_document_up_to(file, text, Syntax::Json, MAX_RECORDED_BYTES);
        let rows = rows.map_err(|e| name_value_field(text, e))?;
        let mut b = Builder::default();
        for (i, JsonRow(r)) in rows.into_iter().enumerate() {
            if let Some(v) = r.value {
                b.add(
                    file,
                    &r.instance,
                    r.metric.0,
                    r.statistic.0,
                    r.timestamp.0,
                    v,
                    format!("[{i}]"),
                    None,
                );
            }
        }
        b.finish()
    }

    fn parse_csv(file: &str, text: &str) -> Result<RecordedMetrics, InputErrors> {
        let mut b = Builder::default();
        let read = for_each_row(file, text, Some(b'#'), |row| {
            b.add_csv_row(file, row, row.is_header(COLUMNS[0]));
            if b.errors.len() > 100 {
                b.errors
                    .push(InputError::new(file, "", "too many errors; stopped"));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = read {
            b.errors.push(e);
        }
        b.finish()
    }

    /// Samples of one series with period start in `[start, end)`.
    pub fn samples(
        &self,
        instance: &InstanceId,
        metric: MetricKind,
        statistic: Statistic,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> &[Sample] {
        let key = (instance.clone(), metric, statistic);
        let Some(v) = self.series.get(&key) else {
            return &[];
        };
        let a = v.partition_point(|s| s.at < start);
        let b = v.partition_point(|s| s.at < end);
        &v[a..b.max(a)]
    }

    /// Latest sample time in the file, if any (a handy `--at` for `plan`).
    pub fn latest(&self) -> Option<DateTime<Utc>> {
        self.series
            .values()
            .filter_map(|v| v.last())
            .map(|s| s.at)
            .max()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Answer queries without I/O (the async port method calls this).
    pub fn fetch_now(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Vec<MetricSeries> {
        queries
            .iter()
            .map(|q| MetricSeries {
                query: q.clone(),
                samples: self
                    .samples(&q.instance, q.metric, q.statistic, start, end)
                    .to_vec(),
            })
            .collect()
    }
}

#[async_trait]
impl MetricsSource for RecordedMetrics {
    async fn fetch(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<MetricSeries>, PortError> {
        Ok(self.fetch_now(queries, start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn csv_rows_any_order_gaps_and_duplicates() {
        let text = "timestamp,instance,metric,statistic,value\n\
# a comment\n\
2026-11-25T12:02:00Z,cluster1s01,cpu,Average,30\n\
2026-11-25T12:00:00Z,cluster1s01,cpu,Average,10\n\
2026-11-25T12:01:00Z,cluster1s01,cpu,Average,\n\
2026-11-25T12:00:00Z,cluster1s01,cpu,Average,10\n\
1795608000,cluster1s01,CPUUtilization,Maximum,99\n";
        let r = RecordedMetrics::parse("m.csv", text).unwrap();
        let id = InstanceId::parse("CLUSTER1S01").unwrap();
        let s = r.samples(
            &id,
            MetricKind::Cpu,
            Statistic::Average,
            t("2026-11-25T00:00:00Z"),
            t("2026-11-26T00:00:00Z"),
        );
        let got: Vec<(String, f64)> = s.iter().map(|s| (s.at.to_rfc3339(), s.value)).collect();
        assert_eq!(
            got,
            vec![
                ("2026-11-25T12:00:00+00:00".to_string(), 10.0),
                ("2026-11-25T12:02:00+00:00".to_string(), 30.0)
            ]
        );
        // [start, end) bounds
        let s = r.samples(
            &id,
            MetricKind::Cpu,
            Statistic::Average,
            t("2026-11-25T12:00:00Z"),
            t("2026-11-25T12:02:00Z"),
        );
        assert_eq!(s.len(), 1);
        assert_eq!(r.series.len(), 2);
    }

    #[test]
    fn junk_rows_are_located() {
        let text = "timestamp,instance,metric,statistic,value\n\
2026-11-25T12:00:00Z,cluster1s01,cpu,Average,10\n\
yesterday,cluster1s01,cpu,Average,10\n\
2026-11-25T12:00:00Z,cluster1s01,memory,Average,10\n\
2026-11-25T12:00:00Z,cluster1s01,cpu,Median,10\n\
2026-11-25T12:00:00Z,bad--id,cpu,Average,10\n\
2026-11-25T12:00:00Z,cluster1s01,cpu,Average,abc\n\
2026-11-25T12:00:00Z,cluster1s01,cpu\n\
2026-11-25T12:00:00Z,cluster1s01,cpu,Average,11\n";
        let e = RecordedMetrics::parse("m.csv", text).unwrap_err().0;
        let got: Vec<(Option<usize>, Option<usize>, &str)> = e
            .iter()
            .map(|e| (e.line, e.column, e.field.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(3), Some(1), "timestamp"),
                (Some(4), Some(34), "metric"),
                (Some(5), Some(38), "statistic"),
                (Some(6), Some(22), "instance"),
                (Some(7), Some(46), "value"),
                (Some(8), Some(1), ""),
                (Some(9), Some(46), "value"),
            ],
            "{e:?}"
        );
        assert!(e[6].message.contains("duplicate"), "{}", e[6]);
        assert!(e[6].to_string().starts_with("m.csv:9:46: value: duplicate"));
    }

    #[test]
    fn json_equivalent() {
        let text = r#"[
  {"timestamp": "2026-11-25T12:00:00Z", "instance": "cluster1s01", "metric": "cpu", "statistic": "Average", "value": 10},
  {"timestamp": 1795608060, "instance": "cluster1s01", "metric": "cpu", "statistic": "Average", "value": null}
]"#;
        let r = RecordedMetrics::parse("m.json", text).unwrap();
        assert_eq!(r.series.values().map(Vec::len).sum::<usize>(), 1);
        let bad = text.replace(
            "\"cpu\", \"statistic\": \"Average\", \"value\": 10",
            "\"disk\", \"statistic\": \"Average\", \"value\": 10",
        );
        let e = RecordedMetrics::parse("m.json", &bad).unwrap_err().0;
        assert_eq!(e[0].line, Some(2));
        assert_eq!(e[0].field, "[0].metric");
        assert!(e[0].message.contains("unknown metric"), "{}", e[0]);
    }
}
