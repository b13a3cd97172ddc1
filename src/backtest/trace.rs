//! Recorded load traces: CloudWatch export CSV (`timestamp,value`) parsed into a regular series
//! with gaps, and scaled into a per-minute demand for the simulated fleet. Pure: works on text.
//!
//! Rules (documented in docs/backtest.md):
//! - read through the `csv` crate (`core::input::csv_rows`: quoted fields, LF/CRLF/CR line
//!   ends, a UTF-8 byte-order mark ignored, blank rows skipped); an optional header row whose
//!   first field is `timestamp`;
//! - timestamps `YYYY-MM-DD HH:MM:SS` (UTC, as CloudWatch exports them), `YYYY-MM-DDTHH:MM:SS`
//!   or RFC 3339 with a zone; values are finite numbers ≥ 0; an empty value is a missing sample;
//! - the sample interval is the most common difference between consecutive timestamps and must
//!   be 60 s or 300 s;
//! - rows may come in any order; a timestamp repeated with the same value (or with an empty
//!   value) is one sample, repeated with a different value it is an error naming both lines (the
//!   rule of recorded metrics files too, docs/usage.md "Input rules");
//! - each sample belongs to the slot `floor((t − first) / interval)`; when several distinct
//!   timestamps fall in one slot (off-grid times) the latest one wins;
//! - slots without a sample are gaps: missing data, never zero;
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

/// A recorded series on a regular grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub name: String,
    pub start: DateTime<Utc>,
    /// Sample interval: 60 or 300 seconds.
    pub step_secs: u32,
    /// One slot per interval; `None` is a gap.
    pub values: Vec<Option<f64>>,
    /// Data rows read (before merging duplicates).
    pub rows: usize,
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
        on_grid(file, &samples, rows)
    }

    /// Samples present (not gaps).
    pub fn present(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
    }

    pub fn peak(&self) -> Option<f64> {
        self.values.iter().flatten().copied().reduce(f64::max)
    }

    /// Length in minutes.
    pub fn minutes(&self) -> usize {
        self.values.len() * (self.step_secs as usize / 60)
    }

    /// The per-minute demand, scaled so that the peak needs `peak_replicas` replicas at
    /// `utilization` (e.g. 4 at 0.75: peak demand 3.0 capacity units). Each sample holds for
    /// its whole interval; the series starts at the first sample's minute.
    pub fn demand(&self, peak_replicas: u32, utilization: f64) -> Demand {
        let peak = self.peak().unwrap_or(0.0);
        let scale = if peak > 0.0 {
            peak_replicas as f64 * utilization / peak
        } else {
            0.0
        };
        let per = (self.step_secs / 60).max(1) as usize;
        let mut units = Vec::with_capacity(self.values.len() * per);
        for v in &self.values {
            let d = v.map(|x| x * scale);
            units.extend(std::iter::repeat_n(d, per));
        }
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

/// Place merged, sorted samples on their grid: detect the interval, bound the span, one slot
/// per interval (the latest timestamp in a slot wins; empty slots are gaps). `rows` is the
/// number of data rows read.
fn on_grid(file: &str, samples: &[Row], rows: usize) -> Result<Trace, InputErrors> {
    let doc_err = |m: String| InputErrors::from(InputError::new(file, "", m));
    if samples.len() < 2 {
        return Err(doc_err(format!(
            "a trace needs at least 2 samples (distinct timestamps), found {}",
            samples.len()
        )));
    }
    let mut diffs: std::collections::BTreeMap<i64, usize> = Default::default();
    for w in samples.windows(2) {
        let d = (w[1].at - w[0].at).num_seconds();
        if d > 0 {
            *diffs.entry(d).or_default() += 1;
        }
    }
    let step = diffs
        .iter()
        .max_by_key(|(d, n)| (**n, std::cmp::Reverse(**d)))
        .map(|(d, _)| *d)
        .unwrap_or(0);
    if step != 60 && step != 300 {
        return Err(doc_err(format!(
            "the sample interval is {step} s; only 60 s or 300 s samples are supported"
        )));
    }
    let start = samples[0].at;
    let last = samples[samples.len() - 1];
    let span = (last.at - start).num_seconds();
    if span / 60 > MAX_SPAN_MINUTES {
        let line = last.mark.line;
        return Err(InputError::new(
            file,
            "timestamp",
            format!(
                "the trace spans {} days; the limit is {} days",
                span / 86_400,
                MAX_SPAN_MINUTES / 1440
            ),
        )
        .at(Some((line, 1)))
        .into());
    }
    let slots = (span / step) as usize + 1;
    let mut values = vec![None; slots];
    for s in samples {
        let i = ((s.at - start).num_seconds() / step) as usize;
        values[i] = s.value;
    }
    Ok(Trace {
        name: file.to_string(),
        start,
        step_secs: step as u32,
        values,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_cloudwatch_export() {
        let t = Trace::parse(
            "t.csv",
            "timestamp,value\n2014-02-14 14:30:00,6.4\n2014-02-14 14:35:00,5.8\n\n2014-02-14 14:45:00,7\n",
        )
        .unwrap();
        assert_eq!(t.step_secs, 300);
        assert_eq!(t.values, vec![Some(6.4), Some(5.8), None, Some(7.0)]);
        let d = t.demand(4, 0.75);
        assert_eq!(d.len(), 20);
        assert_eq!(d.units[15], Some(3.0));
        assert_eq!(d.units[10], None);
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

    #[test]
    fn odd_intervals_are_refused() {
        let e = Trace::parse("t.csv", "2014-01-01 00:00:00,1\n2014-01-01 00:10:00,1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("600 s"), "{e}");
    }
}
