//! Located input errors and the parsing helpers that produce them: every bad config or
//! policy is reported as `file:line:column: field: message`. Pure: works on text already read.

pub mod csv_rows;

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

impl InputError {
    pub fn new(file: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        InputError {
            file: file.to_string(),
            line: None,
            column: None,
            field: field.into(),
            message: message.into(),
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

fn nesting_depth(text: &str) -> usize {
    // Rough upper bound: brackets outside strings plus YAML indentation depth is not needed,
    // because serde_yaml has its own recursion limit; JSON brackets are what can blow up.
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for c in text.chars() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => {
                depth += 1;
                max = max.max(depth);
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parse a whole document into `T`, reporting the failing field path and position.
pub fn parse_document<T: DeserializeOwned>(
    file: &str,
    text: &str,
    syntax: Syntax,
) -> Result<T, InputError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(InputError::new(
            file,
            "",
            format!(
                "file is {} bytes; the limit is {MAX_INPUT_BYTES}",
                text.len()
            ),
        ));
    }
    if text.contains('\0') {
        return Err(InputError::new(
            file,
            "",
            "file contains NUL bytes: not a text document",
        ));
    }
    let depth = nesting_depth(text);
    if depth > MAX_NESTING {
        return Err(InputError::new(
            file,
            "",
            format!("nesting depth {depth} exceeds the limit of {MAX_NESTING}"),
        ));
    }
    match syntax {
        Syntax::Json => {
            // Comments are replaced by spaces, so line and column numbers stay those of the file.
            let stripped = strip_json_comments(text).map_err(|pos| {
                InputError::new(file, "", "unterminated /* comment: reached EOF").at(Some(pos))
            })?;
            let mut de = serde_json::Deserializer::from_str(&stripped);
            let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                let path = clean_path(&e.path().to_string());
                let inner = e.into_inner();
                let pos = (inner.line() > 0).then(|| (inner.line(), inner.column()));
                refine(
                    InputError::new(file, path, strip_position(&inner.to_string())).at(pos),
                    text,
                    Syntax::Json,
                )
            })?;
            de.end().map_err(|e| {
                InputError::new(file, "", strip_position(&e.to_string()))
                    .at(Some((e.line(), e.column())))
            })?;
            Ok(value)
        }
        Syntax::Yaml => {
            if text.trim().is_empty() {
                return Err(InputError::new(file, "", "document is empty"));
            }
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

/// Blank out `//` and `/* */` comments outside strings, keeping every newline so that
/// positions stay those of the file. An unterminated block comment is an error at its
/// start (1-based line and column); an unterminated string is left for the JSON parser.
fn strip_json_comments(text: &str) -> Result<String, (usize, usize)> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let (mut line, mut col) = (1usize, 1usize);
    let (mut in_str, mut esc) = (false, false);
    while let Some(c) = chars.next() {
        let start = (line, col);
        let advance = |c: char, line: &mut usize, col: &mut usize| {
            if c == '\n' {
                *line += 1;
                *col = 1;
            } else {
                *col += 1;
            }
        };
        advance(c, &mut line, &mut col);
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            out.push(c);
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_str = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                out.push(' ');
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                    advance(n, &mut line, &mut col);
                    out.push(' ');
                }
            }
            ('/', Some('*')) => {
                out.push(' ');
                let mut prev = '\0';
                let mut closed = false;
                // the `*` that opens the comment cannot also close it
                if let Some(n) = chars.next() {
                    advance(n, &mut line, &mut col);
                    out.push(' ');
                }
                for n in chars.by_ref() {
                    advance(n, &mut line, &mut col);
                    out.push(if n == '\n' { '\n' } else { ' ' });
                    if prev == '*' && n == '/' {
                        closed = true;
                        break;
                    }
                    prev = n;
                }
                if !closed {
                    return Err(start);
                }
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// A map that refuses a key given twice (serde's own maps keep the last one silently).
#[derive(Debug, Clone, PartialEq)]
pub struct UniqueMap<K: Ord, V>(pub std::collections::BTreeMap<K, V>);

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
/// (serde_yaml locates the enclosing mapping instead).
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
        if syntax == Syntax::Yaml {
            if let Some(pos) = second_yaml_key(text, &key, e.line.unwrap_or(1)) {
                e.line = Some(pos.0);
                e.column = Some(pos.1);
            }
        }
        e.field = if e.field.is_empty() {
            key
        } else {
            format!("{}.{key}", e.field)
        };
    }
    e
}

/// Position of the second block-style occurrence of `key:` at one indentation, searching from
/// line `from` (1-based). Best effort: `None` when there is no such pair.
fn second_yaml_key(text: &str, key: &str, from: usize) -> Option<(usize, usize)> {
    let mut first_col = None;
    for (n, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let trimmed = line.trim_start();
        let mut col = line.len() - trimmed.len();
        let mut rest = trimmed;
        if let Some(after) = rest.strip_prefix("- ") {
            let t = after.trim_start();
            col += 2 + (after.len() - t.len());
            rest = t;
        }
        let is_key = [key.to_string(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|k| {
                rest.strip_prefix(k.as_str())
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            });
        if !is_key {
            continue;
        }
        match first_col {
            None => first_col = Some(col),
            Some(c) if c == col => return Some((n + 1, col + 1)),
            Some(_) => {}
        }
    }
    None
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

/// Position (1-based line, column) of the `nth` (0-based) occurrence of `needle` in `text`.
pub fn position_of(text: &str, needle: &str, nth: usize) -> Option<(usize, usize)> {
    let mut from = 0;
    let mut found = None;
    for _ in 0..=nth {
        let i = text[from..].find(needle)? + from;
        found = Some(i);
        from = i + needle.len().max(1);
    }
    let i = found?;
    let before = &text[..i];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(i, |nl| i - nl - 1) + 1;
    Some((line, col))
}

/// Position of a key (`"key"` in JSON, `key:` in YAML) whose value is `value`, searching the
/// `nth` occurrence of the value as a quoted or bare scalar. Best effort: used to locate
/// semantic errors found after parsing.
pub fn position_of_value(text: &str, value: &str, nth: usize) -> Option<(usize, usize)> {
    let quoted = format!("\"{value}\"");
    position_of(text, &quoted, nth)
        .or_else(|| position_of(text, &format!("'{value}'"), nth))
        .or_else(|| position_of(text, value, nth))
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
    fn positions_are_one_based() {
        assert_eq!(position_of("ab\ncd x", "x", 0), Some((2, 4)));
        assert_eq!(position_of("x x", "x", 1), Some((1, 3)));
        assert_eq!(position_of("x", "y", 0), None);
    }

    #[test]
    fn comments_are_blanked_keeping_positions() {
        let t = "{ // one\n \"a\": \"x//y\", /* two\n */ \"b\": 1 }";
        let s = strip_json_comments(t).unwrap();
        assert_eq!(s.len(), t.len());
        assert_eq!(s.lines().count(), t.lines().count());
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "x//y");
        assert_eq!(v["b"], 1);
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
