//! Recorded load traces: CloudWatch export CSV (`timestamp,value`) parsed into a per-minute
//! series with gaps, and scaled into a per-minute demand for the simulated fleet. Pure: works on
//! text. Owns the trace rules below (documented in docs/backtest.md, "Trace files").
//!
//! Rules:
//! - read through the `csv` crate (`core::input::csv_rows`: quoted fields, LF/CRLF/CR line
//!   ends, a UTF-8 byte-order mark ignored, blank rows skipped); an optional header row whose
//!   first field is `timestamp`;
//! - timestamps `YYYY-MM-DD HH:MM:SS` (UTC, as CloudWatch exports them), `YYYY-MM-DDTHH:MM:SS`
//!   or RFC 3339 with a zone, at any second (`12:47:53`); values are finite numbers ≥ 0 in any
//!   unit (a percentage, a count): only the shape matters, `demand` scales the peak; an empty
//!   value is an explicit missing sample;
//! - rows may come in any order; a timestamp repeated with the same value (or with an empty
//!   value) is one sample, repeated with a different value it is an error naming both lines (the
//!   rule of recorded metrics files too, docs/usage.md "Input rules");
//! - the interval (`step_secs`) is the median difference between consecutive distinct
//!   timestamps; any interval works (1, 5, 30, 60 minutes, irregular);
//! - each sample is placed at its minute (the timestamp without its seconds); several samples in
//!   one minute (sub-minute intervals) are averaged (empty ones ignored unless all are empty);
//! - a sample holds until the next one (a step function over minutes) when the next comes
//!   within 1.5 intervals of it; otherwise it holds for one interval and the minutes until the
//!   next sample are a gap; the last sample holds for one interval; an empty value holds a gap;
//! - gaps are missing data, never zero; `gaps` counts them in intervals (rounded up per gap);
//! - the series (first minute to the end of the last sample's hold) spans at most
//!   `MAX_SPAN_MINUTES`;
//! - any other row is an error located at `file:line:column`, and nothing is replayed.

use crate::adapters::sim_load::Demand;
use crate::core::input::csv_rows::{for_each_row, CsvRow, RowMark};
use crate::core::input::{InputError, InputErrors};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::ops::ControlFlow;

/// Largest trace file read (a year of 1-minute samples is about 15 MB).
pub const MAX_TRACE_BYTES: u64 = crate::input_file::MAX_DATA_BYTES;
/// Longest span accepted, in minutes (three years).
pub const MAX_SPAN_MINUTES: i64 = 3 * 366 * 24 * 60;
/// Errors reported before giving up on a file.
const MAX_ERRORS: usize = 20;

/// A recorded series, one value per minute (the step function of its samples).
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub name: String,
    /// The first sample's minute.
    pub start: DateTime<Utc>,
    /// The sample interval: the median difference between consecutive distinct timestamps.
    pub step_secs: u32,
    /// One value per minute from `start`; `None` is missing data (a gap).
    pub values: Vec<Option<f64>>,
    /// Data rows read (before merging duplicates).
    pub rows: usize,
    /// Distinct timestamps with a value.
    pub samples: usize,
    /// Missing data, counted in intervals (each gap rounded up to whole intervals).
    pub gaps: usize,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Trace {
    /// Read and parse a trace file.
    pub fn load(path: &std::path::Path) -> Result<Trace, InputErrors> {
        let file = path.display().to_string();
        let text = crate::input_file::read_text(path, MAX_TRACE_BYTES)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.clone());
        let mut t = Trace::parse(&file, &text)?;
        t.name = name;
        Ok(t)
    }

    /// Parse CSV text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Trace, InputErrors> {
        let mut errors: Vec<InputError> = Vec::new();
        let mut samples: Vec<Row> = Vec::new();
        for_each_row(file, text, None, |row| {
            if errors.len() >= MAX_ERRORS {
                return ControlFlow::Break(());
            }
            match read_row(row, row.is_header("timestamp")) {
                Ok(Some(r)) => samples.push(r),
                Ok(None) => {}
                Err((col, field, msg)) => {
                    errors.push(InputError::new(file, field, msg).at(Some(row.pos(col))))
                }
            }
            ControlFlow::Continue(())
        })?;
        if !errors.is_empty() {
            return Err(InputErrors(errors));
        }
        let rows = samples.len();
        // Stable: equal timestamps keep file order.
        samples.sort_by_key(|s| s.at);
        let samples = merge_equal_timestamps(file, text, samples)?;
        to_minutes(file, &samples, rows)
    }

    /// Minutes with data.
    pub fn present(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
    }

    pub fn peak(&self) -> Option<f64> {
        self.values.iter().flatten().copied().reduce(f64::max)
    }

    /// Length in minutes.
    pub fn minutes(&self) -> usize {
        self.values.len()
    }

    /// The per-minute demand, scaled so that the peak needs `peak_replicas` replicas at
    /// `utilization` (e.g. 4 at 0.75: peak demand 3.0 capacity units), whatever the unit of
    /// the values (a percentage or a count); the series starts at the first sample's minute.
    pub fn demand(&self, peak_replicas: u32, utilization: f64) -> Demand {
        let peak = self.peak().unwrap_or(0.0);
        let at_peak = peak_replicas as f64 * utilization;
        let scale = if peak > 0.0 { at_peak / peak } else { 0.0 };
        let units = if scale.is_finite() {
            self.values.iter().map(|v| v.map(|x| x * scale)).collect()
        } else {
            // A peak so small (a subnormal number) that its reciprocal overflows: divide
            // each value by the peak first.
            (self.values.iter())
                .map(|v| v.map(|x| x / peak * at_peak))
                .collect()
        };
        Demand::new(self.start, units)
    }
}

/// One data row of a trace: its time, where it is, the value.
#[derive(Debug, Clone, Copy)]
struct Row {
    at: DateTime<Utc>,
    mark: RowMark,
    value: Option<f64>,
}

/// What is wrong with a row: the field index it is located at, the field's name, the message.
type RowError = (usize, &'static str, String);

/// One CSV record of a trace: the header (checked, then `None`), or a data row.
fn read_row(row: &CsvRow, header: bool) -> Result<Option<Row>, RowError> {
    if header {
        if row.len() != 2 {
            let n = row.len();
            let msg = format!("expected the header `timestamp,value`, found {n} columns");
            return Err((0, "header", msg));
        }
        return Ok(None);
    }
    if row.len() != 2 {
        let msg = format!("expected 2 columns `timestamp,value`, found {}", row.len());
        return Err((0, "row", msg));
    }
    let ts = row.field(0);
    let Some(at) = parse_time(ts) else {
        let msg = format!("{ts:?} is not a timestamp (expected YYYY-MM-DD HH:MM:SS, UTC)");
        return Err((0, "timestamp", msg));
    };
    let vs = row.field(1);
    let value = match vs.parse::<f64>() {
        _ if vs.is_empty() => None,
        Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
        Ok(v) => return Err((1, "value", format!("{v} is not a finite number >= 0"))),
        Err(_) => return Err((1, "value", format!("{vs:?} is not a number"))),
    };
    Ok(Some(Row {
        at,
        mark: row.mark,
        value,
    }))
}

/// Rows sorted by time (stably: equal timestamps in file order). Equal timestamps merge into
/// one sample when they agree: the same value repeated, or a value and empty rows. Two
/// different values for one timestamp are an error at the later row (located in `text`),
/// naming the earlier one.
fn merge_equal_timestamps(file: &str, text: &str, rows: Vec<Row>) -> Result<Vec<Row>, InputErrors> {
    let mut out: Vec<Row> = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(prev) if prev.at == r.at => match (prev.value, r.value) {
                (Some(a), Some(b)) if a != b => {
                    errors.push(
                        InputError::new(
                            file,
                            "value",
                            format!(
                                "duplicate timestamp {} with a different value ({b} here, {a} at line {})",
                                r.at.format("%Y-%m-%d %H:%M:%S"),
                                prev.mark.line
                            ),
                        )
                        .at(Some(r.mark.pos(text, 1))),
                    );
                    if errors.len() >= MAX_ERRORS {
                        break;
                    }
                }
                (None, Some(_)) => *prev = r,
                _ => {}
            },
            _ => out.push(r),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(InputErrors(errors))
    }
}

/// Samples within one minute: its epoch minute, the first and last timestamp (epoch seconds)
/// in it and their mean value (empty values ignored; `None` when all are empty).
#[derive(Debug, Clone, Copy)]
struct Minute {
    minute: i64,
    first: i64,
    last: i64,
    value: Option<f64>,
}

/// Merged, sorted samples grouped by minute (the timestamp without its seconds), averaged.
fn by_minute(samples: &[Row]) -> Vec<Minute> {
    let mut out: Vec<Minute> = Vec::new();
    let mut sum = (0.0, 0usize);
    for s in samples {
        let t = s.at.timestamp();
        let m = t.div_euclid(60);
        match out.last_mut() {
            Some(p) if p.minute == m => p.last = t,
            _ => {
                out.push(Minute {
                    minute: m,
                    first: t,
                    last: t,
                    value: None,
                });
                sum = (0.0, 0);
            }
        }
        if let (Some(v), Some(p)) = (s.value, out.last_mut()) {
            sum = (sum.0 + v, sum.1 + 1);
            p.value = Some(sum.0 / sum.1 as f64);
        }
    }
    out
}

/// The median difference between consecutive (sorted, distinct) timestamps, in seconds.
fn median_interval(samples: &[Row]) -> i64 {
    let mut diffs: Vec<i64> = samples
        .windows(2)
        .map(|w| (w[1].at - w[0].at).num_seconds())
        .collect();
    diffs.sort_unstable();
    diffs
        .get(diffs.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(1)
        .max(1)
}

/// The first minute after the hold of minute-sample `i`: the next sample's minute when it comes
/// within 1.5 intervals (`step` seconds), else one interval after it (at least one minute).
fn hold_end(points: &[Minute], i: usize, step: i64) -> i64 {
    let p = points[i];
    let one_interval = ((p.last + step).div_euclid(60)).max(p.minute + 1);
    match points.get(i + 1) {
        Some(n) if 2 * (n.first - p.last) <= 3 * step => n.minute,
        Some(n) => one_interval.min(n.minute),
        None => one_interval,
    }
}

/// Merged, sorted samples into the per-minute step function: bound the span, find the
/// interval, hold each sample until the next (gaps beyond 1.5 intervals). `rows` is the number
/// of data rows read.
fn to_minutes(file: &str, samples: &[Row], rows: usize) -> Result<Trace, InputErrors> {
    let doc_err = |m: String| InputErrors::from(InputError::new(file, "", m));
    if samples.len() < 2 {
        return Err(doc_err(format!(
            "a trace needs at least 2 samples (distinct timestamps), found {}",
            samples.len()
        )));
    }
    let last = samples[samples.len() - 1];
    let span_err = |minutes: i64| {
        let msg = format!(
            "the trace spans {} days (to the end of its last sample's interval); the limit is {} days",
            minutes / 1440,
            MAX_SPAN_MINUTES / 1440
        );
        InputErrors::from(InputError::new(file, "timestamp", msg).at(Some((last.mark.line, 1))))
    };
    if (last.at - samples[0].at).num_minutes() > MAX_SPAN_MINUTES {
        return Err(span_err((last.at - samples[0].at).num_minutes()));
    }
    let step = median_interval(samples);
    let points = by_minute(samples);
    let first = points[0].minute;
    let total = hold_end(&points, points.len() - 1, step) - first;
    if total > MAX_SPAN_MINUTES {
        return Err(span_err(total));
    }
    let mut values = vec![None; total as usize];
    for i in 0..points.len() {
        let (from, to) = (points[i].minute - first, hold_end(&points, i, step) - first);
        values[from as usize..to as usize].fill(points[i].value);
    }
    let step_minutes = (step as usize).div_ceil(60);
    let gaps = values
        .chunk_by(|a, b| a.is_none() == b.is_none())
        .filter(|c| c[0].is_none())
        .map(|c| c.len().div_ceil(step_minutes))
        .sum();
    Ok(Trace {
        name: file.to_string(),
        start: DateTime::from_timestamp(first * 60, 0).unwrap_or(samples[0].at),
        step_secs: u32::try_from(step).unwrap_or(u32::MAX),
        values,
        rows,
        samples: samples.iter().filter(|s| s.value.is_some()).count(),
        gaps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_whose_peak_is_subnormal_scales_to_the_peak_like_any_other() {
        // 4 / 1e-310 overflows to infinity: each value is divided by the peak first then.
        for text in [
            "timestamp,value\n2024-01-01 00:00:00,1e-310\n2024-01-01 00:01:00,1e-310\n",
            "timestamp,value\n2024-01-01 00:00:00,0\n2024-01-01 00:01:00,5e-324\n",
        ] {
            let d = Trace::parse("t.csv", text).unwrap().demand(4, 0.75);
            let peak = d.units.iter().flatten().fold(0.0f64, |m, &v| m.max(v));
            assert_eq!(peak, 3.0, "{text}");
            assert!(d.units.iter().flatten().all(|v| v.is_finite()));
        }
    }

    /// `n` rows from `start`, one every `every` seconds, value i for row i (`skip`: rows left out).
    fn series(start: &str, every: i64, n: i64, skip: &[i64]) -> String {
        let t0 = parse_time(start).unwrap();
        let mut out = String::from("timestamp,value\n");
        for i in (0..n).filter(|i| !skip.contains(i)) {
            let t = t0 + chrono::Duration::seconds(i * every);
            out.push_str(&format!("{},{i}\n", t.format("%Y-%m-%d %H:%M:%S")));
        }
        out
    }

    #[test]
    fn parses_the_cloudwatch_export() {
        let t = Trace::parse(
            "t.csv",
            "timestamp,value\n2014-02-14 14:30:00,6.4\n2014-02-14 14:35:00,5.8\n\n2014-02-14 14:45:00,7\n",
        )
        .unwrap();
        assert_eq!(t.step_secs, 300);
        let want = [[Some(6.4); 5], [Some(5.8); 5], [None; 5], [Some(7.0); 5]].concat();
        assert_eq!(t.values, want);
        assert_eq!(
            (t.samples, t.gaps, t.minutes(), t.present()),
            (3, 1, 20, 15)
        );
        let d = t.demand(4, 0.75);
        assert_eq!(d.len(), 20);
        assert_eq!(d.units[15], Some(3.0));
        assert_eq!(d.units[10], None);
    }

    #[test]
    fn hourly_samples_hold_for_their_hour() {
        // NAB's ad-exchange export: hourly, one second past the hour.
        let t = Trace::parse("t.csv", &series("2011-07-01 00:00:01", 3600, 4, &[])).unwrap();
        assert_eq!(t.step_secs, 3600);
        assert_eq!(t.start.to_rfc3339(), "2011-07-01T00:00:00+00:00");
        assert_eq!(t.minutes(), 4 * 60);
        for (i, v) in t.values.iter().enumerate() {
            assert_eq!(*v, Some((i / 60) as f64), "minute {i}");
        }
        assert_eq!((t.samples, t.gaps), (4, 0));
    }

    #[test]
    fn thirty_minute_samples_hold_for_thirty_minutes() {
        let t = Trace::parse("t.csv", &series("2014-01-01 00:00:00", 1800, 3, &[])).unwrap();
        assert_eq!(t.step_secs, 1800);
        assert_eq!(
            t.values,
            [[Some(0.0); 30], [Some(1.0); 30], [Some(2.0); 30]].concat()
        );
    }

    #[test]
    fn off_minute_timestamps_fall_in_their_minute() {
        // NAB's tweet volume: every 5 minutes at :47:53, :52:53, ...
        let t = Trace::parse("t.csv", &series("2015-02-26 21:42:53", 300, 3, &[])).unwrap();
        assert_eq!(t.step_secs, 300);
        assert_eq!(t.start.to_rfc3339(), "2015-02-26T21:42:00+00:00");
        assert_eq!(
            t.values,
            [[Some(0.0); 5], [Some(1.0); 5], [Some(2.0); 5]].concat()
        );
    }

    #[test]
    fn a_sample_holds_until_the_next_within_one_and_a_half_intervals() {
        // Irregular: 60, 60, 80 (held: within 90 s), 200 s (a gap after one interval).
        let text = "2014-01-01 00:00:00,1\n2014-01-01 00:01:00,2\n2014-01-01 00:02:00,3\n2014-01-01 00:03:20,4\n2014-01-01 00:06:40,5\n";
        let t = Trace::parse("t.csv", text).unwrap();
        assert_eq!(t.step_secs, 60);
        let want = [
            Some(1.0),
            Some(2.0),
            Some(3.0),
            Some(4.0),
            None,
            None,
            Some(5.0),
        ];
        assert_eq!(t.values, want);
        assert_eq!((t.samples, t.gaps), (5, 2));
    }

    #[test]
    fn gaps_are_missing_data_counted_in_intervals() {
        // Hourly with hours 2 and 3 absent: hour 1 holds its hour, two hours are missing.
        let t = Trace::parse("t.csv", &series("2011-07-01 00:00:01", 3600, 6, &[2, 3])).unwrap();
        assert_eq!(t.step_secs, 3600);
        assert_eq!(t.minutes(), 6 * 60);
        assert_eq!(t.values[119], Some(1.0));
        assert!(t.values[120..240].iter().all(Option::is_none));
        assert_eq!(t.values[240], Some(4.0));
        assert_eq!((t.samples, t.gaps), (4, 2));
        // An explicit empty value is a gap of its interval, never zero.
        let t = Trace::parse(
            "t.csv",
            "2014-01-01 00:00:00,1\n2014-01-01 00:05:00,\n2014-01-01 00:10:00,3\n",
        )
        .unwrap();
        assert_eq!(
            t.values,
            [[Some(1.0); 5], [None; 5], [Some(3.0); 5]].concat()
        );
        assert_eq!((t.samples, t.gaps), (2, 1));
    }

    #[test]
    fn sub_minute_samples_are_averaged_per_minute() {
        let t = Trace::parse("t.csv", &series("2014-01-01 00:00:00", 10, 12, &[])).unwrap();
        assert_eq!(t.step_secs, 10);
        assert_eq!(t.values, vec![Some(2.5), Some(8.5)]);
        // An empty value among others in its minute is ignored.
        let t = Trace::parse(
            "t.csv",
            "2014-01-01 00:00:00,2\n2014-01-01 00:00:30,\n2014-01-01 00:01:00,4\n",
        )
        .unwrap();
        assert_eq!(t.values, vec![Some(2.0), Some(4.0)]);
    }

    #[test]
    fn counts_scale_like_percentages() {
        let t = Trace::parse("t.csv", "2015-01-01 00:00:00,0\n2015-01-01 00:05:00,1673\n").unwrap();
        let d = t.demand(4, 0.75);
        assert_eq!((d.units[0], d.units[5]), (Some(0.0), Some(3.0)));
    }

    #[test]
    fn the_span_is_bounded_with_the_last_interval() {
        // Hourly samples over two years: fine.
        let t = Trace::parse(
            "t.csv",
            &series("2014-01-01 00:00:00", 3600, 2 * 365 * 24, &[]),
        )
        .unwrap();
        assert_eq!(t.minutes(), 2 * 365 * 24 * 60);
        let e = Trace::parse(
            "t.csv",
            "timestamp,value\n2010-01-01 00:00:00,1\n2014-01-01 00:00:00,1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.csv:3:1: timestamp: the trace spans 1461 days"),
            "{e}"
        );
        // Within the limit, but the last sample's interval (the whole span) goes beyond it.
        let e = Trace::parse("t.csv", "2010-01-01 00:00:00,1\n2012-01-01 00:00:00,1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the trace spans 1460 days"), "{e}");
    }

    #[test]
    fn duplicates_and_disorder_follow_the_rule() {
        let t = Trace::parse(
            "t.csv",
            "2014-01-01 00:02:00,5\n2014-01-01 00:00:00,1\n2014-01-01 00:01:00,3\n2014-01-01 00:01:00,3\n",
        )
        .unwrap();
        assert_eq!(t.step_secs, 60);
        assert_eq!(t.values, vec![Some(1.0), Some(3.0), Some(5.0)]);
        let e = Trace::parse(
            "t.csv",
            "2014-01-01 00:00:00,1\n2014-01-01 00:01:00,2\n2014-01-01 00:01:00,3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.csv:3:21: value: duplicate timestamp"),
            "{e}"
        );
    }

    #[test]
    fn junk_is_located() {
        let e = Trace::parse("t.csv", "timestamp,value\n2014-01-01 00:00:00,1\nnope,2\n2014-01-01 00:02:00,x\n2014-01-01 00:03:00,-1\n2014-01-01 00:04:00\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.csv:3:1: timestamp:"), "{e}");
        assert!(
            e.contains("t.csv:4:21: value: \"x\" is not a number"),
            "{e}"
        );
        assert!(e.contains("t.csv:5:21: value:"), "{e}");
        assert!(e.contains("t.csv:6:1: row: expected 2 columns"), "{e}");
    }

    #[test]
    fn quotes_crlf_bom_and_blank_rows_read_as_the_plain_export() {
        let plain = "timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:01:00,\n2014-01-01 00:02:00,3\n";
        let odd = "\u{feff}\"timestamp\",\"value\"\r\n\r\n\"2014-01-01 00:00:00\", \"1.5\"\r\n  \r\n,\r\n2014-01-01 00:01:00,\"\"\r\n2014-01-01 00:02:00,3";
        let a = Trace::parse("t.csv", plain).unwrap();
        let b = Trace::parse("t.csv", odd).unwrap();
        assert_eq!(
            (a.values.clone(), a.start, a.step_secs),
            (b.values, b.start, b.step_secs)
        );
        assert_eq!(a.values, vec![Some(1.5), None, Some(3.0)]);
        // Positions stay those of the file: line 7 (blank rows counted), the quoted value.
        let e = Trace::parse("t.csv", &odd.replace(",3", ",\"x\""))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "t.csv:7:21: value: \"x\" is not a number");
        // A quoted comma is one field, not a third column.
        let e = Trace::parse("t.csv", "2014-01-01 00:00:00,\"1,5\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "t.csv:1:21: value: \"1,5\" is not a number");
    }

    #[test]
    fn a_bad_header_is_located() {
        let e = Trace::parse("t.csv", "\ntimestamp,value,extra\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.csv:2:1: header: expected the header `timestamp,value`, found 3 columns"
        );
    }
}
