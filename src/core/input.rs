//! Located input errors and the parsing helpers that produce them: every bad config, policy
//! or data file is reported as `file:line:column: field: message`. YAML and JSON documents are
//! parsed here ([`parse_document`]); where a field is in them is found by THE one locator,
//! [`locate()`] (`input/locate.rs`); CSV data files are read by `input/csv_rows.rs`. Pure: works
//! on text already read.

pub mod csv_rows;
mod expansion;
pub mod locate;

pub use locate::{locate, locate_in, locate_nth, Located};

use serde::de::DeserializeOwned;
use std::fmt;

/// One problem in an input file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted path of the offending field (`cluster1.replica_nodes[1].id`), empty for the document.
    pub field: String,
    pub message: String,
}

/// At most this many characters of a field path or message are kept: an error quoting a
/// huge key or value from a file is never echoed whole.
pub const MAX_ECHO_CHARS: usize = 1024;

/// `s` cut to [`MAX_ECHO_CHARS`] characters, saying how many were left out.
fn clipped(s: String) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        None => s,
        Some((at, _)) => {
            let left_out = s[at..].chars().count();
            format!("{}… ({left_out} more characters)", &s[..at])
        }
    }
}

impl InputError {
    pub fn new(file: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            file: file.to_string(),
            line: None,
            column: None,
            field: clipped(field.into()),
            message: clipped(message.into()),
        }
    }
    pub fn at(mut self, pos: Option<(usize, usize)>) -> Self {
        if let Some((l, c)) = pos {
            self.line = Some(l);
            self.column = Some(c);
        }
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for InputError {}

/// A list of input errors, displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}
impl std::error::Error for InputErrors {}

impl From<InputError> for InputErrors {
    fn from(e: InputError) -> Self {
        InputErrors(vec![e])
    }
}

/// Largest input file accepted (configs and policies are small; this bounds memory on junk).
pub const MAX_INPUT_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting accepted before parsing (guards the recursive parsers on hostile input).
pub const MAX_NESTING: usize = 64;
/// Most values a YAML document may hold once its aliases are expanded (`*name` repeats the
/// anchored value): a small file of aliases must not expand into gigabytes.
pub const MAX_EXPANDED_VALUES: usize = 1_000_000;
/// Most bytes of scalar text a YAML document may hold once its aliases are expanded.
pub const MAX_EXPANDED_BYTES: usize = 4 * MAX_INPUT_BYTES;
/// Most problems reported for one document; the rest are counted in a last line (each one is
/// located by a scan of the document, and nobody reads thousands of them).
pub const MAX_REPORTED: usize = 20;

/// The problems found in one document: the first [`MAX_REPORTED`] kept, each made (and
/// located) only while there is room, the rest counted.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<InputError>,
    more: usize,
}

impl Problems {
    /// Keep the problem `make` gives, or count it when [`MAX_REPORTED`] are kept already.
    pub fn push(&mut self, make: impl FnOnce() -> InputError) {
        if self.list.len() < MAX_REPORTED {
            self.list.push(make());
        } else {
            self.more += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.more == 0
    }

    /// The problems kept, with a last line of `file` counting those that were not.
    pub fn into_errors(self, file: &str) -> InputErrors {
        let mut list = self.list;
        if self.more > 0 {
            list.push(InputError::new(
                file,
                "",
                format!(
                    "{} more problem(s) not shown (the first {MAX_REPORTED} are)",
                    self.more
                ),
            ));
        }
        InputErrors(list)
    }
}

/// Which syntax a document is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// JSON, with `//` and `/* */` comments allowed (the old tool's format).
    Json,
    Yaml,
}

impl Syntax {
    /// By extension; otherwise JSON when the first non-blank character is `{`, else YAML.
    pub fn detect(file: &str, text: &str) -> Syntax {
        let lower = file.to_ascii_lowercase();
        if lower.ends_with(".json") {
            Syntax::Json
        } else if lower.ends_with(".yaml") || lower.ends_with(".yml") {
            Syntax::Yaml
        } else if text.trim_start().starts_with('{') {
            Syntax::Json
        } else {
            Syntax::Yaml
        }
    }
}

/// Parse a whole document (at most [`MAX_INPUT_BYTES`]) into `T`, reporting the failing field
/// path and position.
pub fn parse_document<T: DeserializeOwned>(
    file: &str,
    text: &str,
    syntax: Syntax,
) -> Result<T, InputError> {
    parse_document_up_to(file, text, syntax, MAX_INPUT_BYTES)
}

/// [`parse_document`] with another size limit (data files may be larger than configs).
pub fn parse_document_up_to<T: DeserializeOwned>(
    file: &str,
    text: &str,
    syntax: Syntax,
    max_bytes: usize,
) -> Result<T, InputError> {
    if text.len() > max_bytes {
        return Err(InputError::new(
            file,
            "",
            format!("file is {} bytes; the limit is {max_bytes}", text.len()),
        ));
    }
    if text.contains('\0') {
        return Err(InputError::new(
            file,
            "",
            "file contains NUL bytes: not a text document",
        ));
    }
    let depth = locate::nesting_depth(text, syntax);
    if depth > MAX_NESTING {
        return Err(InputError::new(
            file,
            "",
            format!("nesting depth {depth} exceeds the limit of {MAX_NESTING}"),
        ));
    }
    match syntax {
        Syntax::Json => {
            // A UTF-8 byte-order mark (editors on Windows write one; YAML and CSV accept it)
            // is dropped: positions are then those an editor shows, which hides it.
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            // Comments are replaced by spaces, so line and column numbers stay those of the file.
            let stripped = locate::blank_json_comments(text).map_err(|pos| {
                InputError::new(file, "", "unterminated /* comment: reached EOF").at(Some(pos))
            })?;
            if stripped.trim().is_empty() {
                return Err(InputError::new(file, "", "document is empty"));
            }
            let mut de = serde_json::Deserializer::from_str(&stripped);
            let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = clean_path(&e.path().to_string());
                let inner = e.into_inner();
                // serde_json counts column 0 at the start of a line (a line's end reached).
                let pos = (inner.line() > 0).then(|| (inner.line(), inner.column().max(1)));
                refine(
                    InputError::new(file, path, strip_position(&inner.to_string())).at(pos),
                    text,
                    Syntax::Json,
                )
            })?;
            de.end().map_err(|e| {
                InputError::new(file, "", strip_position(&e.to_string()))
                    .at(Some((e.line(), e.column().max(1))))
            })?;
            Ok(value)
        }
        Syntax::Yaml => {
            if text.trim().is_empty() {
                return Err(InputError::new(file, "", "document is empty"));
            }
            expansion::check(file, text)?;
            let de = serde_yaml::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = clean_path(&e.path().to_string());
                let inner = e.into_inner();
                let pos = inner.location().map(|l| (l.line(), l.column()));
                refine(
                    InputError::new(file, path, strip_position(&inner.to_string())).at(pos),
                    text,
                    Syntax::Yaml,
                )
            })
        }
    }
}

/// A map that refuses a key given twice (serde's own maps keep the last one silently).
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueMap<K: Ord, V>(pub std::collections::BTreeMap<K, V>);

impl<K: Ord, V> Default for UniqueMap<K, V> {
    fn default() -> Self {
        UniqueMap(std::collections::BTreeMap::new())
    }
}

impl<'de, K, V> serde::Deserialize<'de> for UniqueMap<K, V>
where
    K: serde::Deserialize<'de> + Ord + fmt::Display,
    V: serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K, V> serde::de::Visitor<'de> for Visit<K, V>
        where
            K: serde::Deserialize<'de> + Ord + fmt::Display,
            V: serde::Deserialize<'de>,
        {
            type Value = UniqueMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = std::collections::BTreeMap::new();
                while let Some(k) = m.next_key::<K>()? {
                    if out.contains_key(&k) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate key `{k}`"
                        )));
                    }
                    let v = m.next_value()?;
                    out.insert(k, v);
                }
                Ok(UniqueMap(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// Polish a parser error: drop the field path serde_yaml repeats at the start of its message,
/// and for a key given twice name the key in the field and point at its second occurrence
/// (serde_yaml locates the enclosing mapping, serde_json the end of the value).
fn refine(mut e: InputError, text: &str, syntax: Syntax) -> InputError {
    if !e.field.is_empty() {
        if let Some(rest) = e.message.strip_prefix(&format!("{}: ", e.field)) {
            e.message = rest.to_string();
        }
    }
    let key = ["duplicate field `", "duplicate key `"]
        .iter()
        .find_map(|p| {
            let i = e.message.find(p)? + p.len();
            let rest = &e.message[i..];
            Some(rest[..rest.find('`')?].to_string())
        });
    if let Some(key) = key {
        e.field = if e.field.is_empty() {
            key
        } else {
            format!("{}.{key}", e.field)
        };
        if let Some(second) = locate_nth(text, syntax, &e.field, 1) {
            e = e.at(Some(second.key));
        }
    }
    e
}

fn clean_path(p: &str) -> String {
    if p == "." {
        String::new()
    } else {
        p.to_string()
    }
}

/// serde_json and serde_yaml append " at line X column Y" to messages; we print the position
/// in front instead.
fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[allow(dead_code)]
        a: u32,
    }

    #[test]
    fn a_json_document_may_start_with_a_byte_order_mark() {
        let d: Doc = parse_document("d.json", "\u{feff}{\"a\": 1}", Syntax::Json).unwrap();
        assert_eq!(d.a, 1);
        let e = parse_document::<Doc>("d.json", "\u{feff}{\"a\": x}", Syntax::Json).unwrap_err();
        // Where an editor (which hides the mark) shows the `x`.
        assert_eq!((e.line, e.column), (Some(1), Some(7)), "{e}");
    }

    #[test]
    fn json_errors_carry_position_and_field() {
        let e = parse_document::<Doc>("f.json", "{\n  // c\n  \"a\": \"x\"\n}", Syntax::Json)
            .unwrap_err();
        assert_eq!(e.field, "a");
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().starts_with("f.json:3:"), "{e}");
    }

    #[test]
    fn yaml_unknown_key_is_located() {
        let e = parse_document::<Doc>("f.yaml", "a: 1\nb: 2\n", Syntax::Yaml).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn deep_nesting_and_nul_are_refused() {
        let deep = "[".repeat(1000);
        assert!(parse_document::<Doc>("f.json", &deep, Syntax::Json)
            .unwrap_err()
            .message
            .contains("nesting"));
        assert!(parse_document::<Doc>("f.json", "{\0}", Syntax::Json)
            .unwrap_err()
            .message
            .contains("NUL"));
    }

    #[test]
    fn unterminated_block_comment_is_located_at_its_start() {
        let e = parse_document::<serde_json::Value>("c.json", "{\n  /* open\n", Syntax::Json)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.json:2:3: unterminated /* comment: reached EOF"
        );
    }

    #[test]
    fn duplicate_map_keys_are_refused_in_both_syntaxes() {
        let j = "{\"a\": 1,\n \"a\": 2}";
        let e = parse_document::<UniqueMap<String, u8>>("c.json", j, Syntax::Json).unwrap_err();
        assert!(e.to_string().contains("duplicate key `a`"), "{e}");
        assert!(e.to_string().starts_with("c.json:2:"), "{e}");
        let y = "a: 1\na: 2\n";
        let e = parse_document::<UniqueMap<String, u8>>("c.yaml", y, Syntax::Yaml).unwrap_err();
        assert_eq!(e.to_string(), "c.yaml:2:1: a: duplicate key `a`");
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        x: Vec<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
        b: Option<u32>,
    }

    #[test]
    fn a_duplicate_struct_field_points_at_its_second_occurrence() {
        let y = "x:\n  - a: 1\n    b: 2\n  - a: 1\n    b: 2\n    b: 3\n";
        let e = parse_document::<Outer>("p.yaml", y, Syntax::Yaml).unwrap_err();
        assert_eq!(e.to_string(), "p.yaml:6:5: x[1].b: duplicate field `b`");
        let j = "{\"x\": [{\"a\": 1,\n \"a\": 2}]}";
        let e = parse_document::<Outer>("p.json", j, Syntax::Json).unwrap_err();
        assert_eq!(e.field, "x[0].a", "{e}");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn yaml_messages_do_not_repeat_the_field() {
        let e = parse_document::<Doc>("f.yaml", "a: two\n", Syntax::Yaml).unwrap_err();
        assert_eq!(e.field, "a");
        assert!(e.message.starts_with("invalid type"), "{e}");
    }
}
