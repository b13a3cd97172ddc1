//! CSV data files (backtest traces, recorded metrics) read row by row through the `csv` crate,
//! each field locatable (1-based line and column) for error messages. Owns the CSV dialect:
//! comma-separated, `"`-quoted (`""` inside quotes), LF, CRLF or CR line ends, a leading UTF-8
//! byte-order mark ignored, fields trimmed (a quote after leading blanks still quotes), rows
//! that are blank (or only empty fields) skipped.
//! Pure: works on text already read.

use super::InputError;
use std::cell::RefCell;
use std::ops::ControlFlow;

/// One non-blank record of a CSV document.
pub struct CsvRow<'a> {
    /// The document as given to [`for_each_row`].
    text: &'a str,
    record: &'a csv::StringRecord,
    /// The field splitter (built once per document: building one is not cheap).
    splitter: &'a RefCell<csv_core::Reader>,
    /// Where the row is.
    pub mark: RowMark,
    /// Whether it is the document's first row (blank ones not counted).
    first: bool,
}

/// Where a row is, for a reader that reports a row's problem after the reading: its fields
/// are located from the mark and the text only when needed ([`RowMark::pos`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowMark {
    /// 1-based line the row starts on.
    pub line: usize,
    /// Byte offset of the row in the document as given.
    start: usize,
}

impl RowMark {
    /// [`CsvRow::pos`] of field `i` of this row of `text` (the document the row was read from).
    pub fn pos(&self, text: &str, i: usize) -> (usize, usize) {
        field_pos(text, self, &mut csv_core::Reader::new(), i)
    }
}

impl CsvRow<'_> {
    /// Whether this is a header row: the first row, with `first_column` (any case) as its
    /// first field.
    pub fn is_header(&self, first_column: &str) -> bool {
        self.first && self.field(0).eq_ignore_ascii_case(first_column)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.record.len()
    }

    pub fn is_empty(&self) -> bool {
        self.record.is_empty()
    }

    /// Field `i`, unquoted and trimmed; empty when the row has fewer fields.
    pub fn field(&self, i: usize) -> &str {
        self.record.get(i).map_or("", unquote_late)
    }

    /// All fields, unquoted and trimmed.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.record.iter().map(unquote_late)
    }

    /// Position (1-based line and byte column) of field `i`'s first non-blank character (its
    /// opening quote when quoted); the end of the row when it has fewer fields.
    pub fn pos(&self, i: usize) -> (usize, usize) {
        field_pos(self.text, &self.mark, &mut self.splitter.borrow_mut(), i)
    }
}

fn field_pos(
    text: &str,
    mark: &RowMark,
    splitter: &mut csv_core::Reader,
    i: usize,
) -> (usize, usize) {
    let (bytes, start) = (text.as_bytes(), mark.start);
    let mut at = start + field_offset(splitter, &bytes[start..], i);
    while matches!(bytes.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    let within = &text[start..at];
    let line = mark.line + within.matches('\n').count();
    let line_start = within.rfind('\n').map_or(start, |n| start + n + 1);
    (line, at - line_start + 1)
}

/// A field quoted after blanks (`a, "b"`) is plain text to CSV; read it as quoted too.
fn unquote_late(field: &str) -> &str {
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
}

/// Offset in `record` (which starts at a record) where field `i` starts, as the `csv` crate's
/// own reader splits it (quotes, doubled quotes and line ends inside quotes included).
fn field_offset(reader: &mut csv_core::Reader, record: &[u8], i: usize) -> usize {
    reader.reset();
    let mut scratch = [0u8; 256];
    let mut off = 0;
    for _ in 0..i {
        loop {
            let (res, nin, _) = reader.read_field(&record[off..], &mut scratch);
            off += nin;
            match res {
                csv_core::ReadFieldResult::Field { record_end: false } => break,
                // the record has fewer fields: point at its end
                csv_core::ReadFieldResult::Field { record_end: true }
                | csv_core::ReadFieldResult::End => return trim_line_end(record, off),
                // OutputFull: the field goes on (its text is not needed); InputEmpty: the
                // next call, with nothing left, reads the end of the input.
                _ => {}
            }
        }
    }
    off
}

/// `off`, moved back over the line end a record's last field consumed.
fn trim_line_end(record: &[u8], mut off: usize) -> usize {
    while off > 0 && matches!(record[off - 1], b'\n' | b'\r') {
        off -= 1;
    }
    off
}

/// Where a record really starts (byte offset and 1-based line): the `csv` crate places it
/// right after the previous record, before the line ends and comment lines it skipped.
fn record_start(text: &str, mut at: usize, mut line: usize, comment: Option<u8>) -> (usize, usize) {
    let b = text.as_bytes();
    while let Some(&c) = b.get(at) {
        let line_start = at == 0 || matches!(b[at - 1], b'\n' | b'\r');
        if c == b'\n' {
            line += 1;
        } else if line_start && Some(c) == comment {
            while b.get(at + 1).is_some_and(|n| !matches!(n, b'\n' | b'\r')) {
                at += 1;
            }
        } else if c != b'\r' {
            break;
        }
        at += 1;
    }
    (at, line)
}

/// Call `each` for every record of `text` that has a non-empty field, in file order, until it
/// breaks. Lines starting with `comment` are skipped. An unreadable record (which text that
/// is already UTF-8 cannot produce) ends the reading with an error located at its line.
pub fn for_each_row(
    file: &str,
    text: &str,
    comment: Option<u8>,
    mut each: impl FnMut(&CsvRow) -> ControlFlow<()>,
) -> Result<(), InputError> {
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(comment)
        .trim(csv::Trim::All)
        .from_reader(&text.as_bytes()[bom..]);
    let mut record = csv::StringRecord::new();
    let splitter = RefCell::new(csv_core::Reader::new());
    let mut first = true;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                return Err(InputError::new(file, "", format!("unreadable CSV: {e}"))
                    .at(line.map(|l| (l, 1))));
            }
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let pos = record
            .position()
            .cloned()
            .unwrap_or_else(csv::Position::new);
        let (start, line) = record_start(
            &text[bom..],
            pos.byte() as usize,
            pos.line() as usize,
            comment,
        );
        let row = CsvRow {
            text,
            record: &record,
            splitter: &splitter,
            mark: RowMark {
                line,
                start: bom + start,
            },
            first,
        };
        first = false;
        if each(&row).is_break() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, fields, position of each field) of one row.
    type Seen = (usize, Vec<String>, Vec<(usize, usize)>);

    fn rows(text: &str) -> Vec<Seen> {
        let mut out = Vec::new();
        for_each_row("f.csv", text, Some(b'#'), |r| {
            let fields = r.fields().map(str::to_string).collect();
            let pos = (0..r.len()).map(|i| r.pos(i)).collect();
            out.push((r.mark.line, fields, pos));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn fields_are_located_by_line_and_column() {
        let got = rows("a,bb,c\n\nd, e ,f\n");
        assert_eq!(
            got[0],
            (1, s(&["a", "bb", "c"]), vec![(1, 1), (1, 3), (1, 6)])
        );
        assert_eq!(
            got[1],
            (3, s(&["d", "e", "f"]), vec![(3, 1), (3, 4), (3, 7)])
        );
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_mark_locates_fields_after_the_reading() {
        let text = "\u{feff}a,b\n\n c, d\n";
        let mut seen = Vec::new();
        for_each_row("f.csv", text, None, |r| {
            seen.push((r.mark, r.pos(1)));
            ControlFlow::Continue(())
        })
        .unwrap();
        for (mark, at) in seen {
            assert_eq!(mark.pos(text, 1), at);
        }
        assert_eq!(rows(text)[1].2, vec![(3, 2), (3, 5)]);
    }

    #[test]
    fn only_the_first_row_can_be_a_header() {
        let mut headers = Vec::new();
        for_each_row("f.csv", "\n\"Timestamp\",v\ntimestamp,v\n", None, |r| {
            headers.push(r.is_header("timestamp"));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(headers, [true, false]);
    }

    #[test]
    fn quotes_crlf_bom_and_blank_rows() {
        let got = rows("\u{feff}\"x,1\",\"say \"\"hi\"\"\"\r\n  \r\n,\r\n# note\r\nz,9\r\n");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], (1, s(&["x,1", "say \"hi\""]), vec![(1, 1), (1, 7)]));
        assert_eq!(got[1], (5, s(&["z", "9"]), vec![(5, 1), (5, 3)]));
    }

    #[test]
    fn a_quoted_line_end_moves_later_fields_to_their_own_line() {
        let got = rows("\"two\nlines\",v\nw,x");
        assert_eq!(got[0], (1, s(&["two\nlines", "v"]), vec![(1, 1), (2, 8)]));
        assert_eq!(got[1], (3, s(&["w", "x"]), vec![(3, 1), (3, 3)]));
    }

    #[test]
    fn a_missing_field_is_located_at_the_end_of_its_row() {
        let mut at = None;
        for_each_row("f.csv", "abc\r\nd,e\n", None, |r| {
            at = Some(r.pos(3));
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(at, Some((1, 4)));
    }
}
