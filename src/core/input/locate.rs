//! Where things are in a YAML or JSON document: THE one locator of the crate, for every config
//! and policy loader and both syntaxes. A small lexer (comments, quoted and plain scalars, flow
//! brackets, block `- ` items, block scalars) and a walker that follows block indentation and
//! flow brackets to the place of a dotted field path (`rules[1].metric`). The lexer also blanks
//! JSON comments and measures bracket nesting before a parser sees the text. Best effort: odd
//! input (anchors, multi-line plain scalars) gives the closest place found or `None`, never a
//! panic. Positions are 1-based lines and byte columns. Pure.

use super::Syntax;

/// The place of a field: its key (or, for a sequence item, its first character) and, when
/// one follows, its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub key: (usize, usize),
    pub value: Option<(usize, usize)>,
}

/// The first place of `path`, or else of its longest prefix found (then `value` is `None`).
pub fn locate(text: &str, syntax: Syntax, path: &str) -> Option<Located> {
    find(text, syntax, &parse_path(path), 0, true)
}

/// The key of `path` (or of its longest prefix found) in the document `file`, its syntax
/// told by [`Syntax::detect`].
pub fn locate_in(file: &str, text: &str, path: &str) -> Option<(usize, usize)> {
    locate(text, Syntax::detect(file, text), path).map(|l| l.key)
}

/// The `nth` (0-based) place of exactly `path`: a key given twice is found twice.
pub fn locate_nth(text: &str, syntax: Syntax, path: &str, nth: usize) -> Option<Located> {
    find(text, syntax, &parse_path(path), nth, false)
}

/// JSON text with `//` and `/* */` comments replaced by spaces (newlines kept), so that
/// positions stay those of the file. An unterminated block comment is an error at its start.
pub fn blank_json_comments(text: &str) -> Result<String, (usize, usize)> {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for t in Lexer::new(text, Syntax::Json) {
        if let Kind::Comment { closed } = t.kind {
            if !closed {
                return Err((t.line, t.col));
            }
            // A comment starts and ends at ASCII bytes: both are character boundaries.
            out.push_str(&text[from..t.start]);
            let blank = |b: &u8| {
                if matches!(b, b'\n' | b'\r') {
                    *b as char
                } else {
                    ' '
                }
            };
            out.extend(text.as_bytes()[t.start..t.end].iter().map(blank));
            from = t.end;
        }
    }
    out.push_str(&text[from..]);
    Ok(out)
}

/// Deepest nesting of flow brackets (`{` `[`) outside strings and comments.
pub fn nesting_depth(text: &str, syntax: Syntax) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for t in Lexer::new(text, syntax) {
        match t.kind {
            Kind::Open(_) => {
                depth += 1;
                max = max.max(depth);
            }
            Kind::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

// ---------------------------------------------------------------- paths

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// `rules[1].metric` → `rules`, 1, `metric`.
fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').unwrap_or(inner.len());
            if let Ok(n) = inner[..close].parse() {
                out.push(Seg::Index(n));
            }
            rest = inner.get(close + 1..).unwrap_or("");
        }
    }
    out
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open(u8),
    Close,
    Comma,
    Colon,
    /// A block sequence item's `-`.
    Dash,
    Scalar,
    /// `|` or `>`; the lexer skips the scalar's lines.
    BlockScalar,
    Comment {
        closed: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    line: usize,
    col: usize,
}

impl Token {
    fn pos(&self) -> (usize, usize) {
        (self.line, self.col)
    }
}

struct Lexer<'t> {
    b: &'t [u8],
    json: bool,
    at: usize,
    line: usize,
    line_start: usize,
    /// Open flow brackets.
    depth: usize,
    /// Column of the last token, and of the node a block scalar belongs to (the last key or
    /// `-`): its lines are those indented deeper.
    last_col: usize,
    node_col: usize,
}

impl<'t> Lexer<'t> {
    fn new(text: &'t str, syntax: Syntax) -> Self {
        Lexer {
            b: text.as_bytes(),
            json: syntax == Syntax::Json,
            at: 0,
            line: 1,
            line_start: 0,
            depth: 0,
            last_col: 1,
            node_col: 1,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.b.get(self.at + ahead).copied()
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.at + 1;
    }

    fn kind(&mut self, c: u8) -> Kind {
        let next = self.peek(1);
        let flow = self.json || self.depth > 0;
        let blank_after = matches!(next, None | Some(b' ' | b'\t' | b'\r' | b'\n'));
        let one = |me: &mut Self, k| {
            me.at += 1;
            k
        };
        match c {
            b'/' if self.json && matches!(next, Some(b'/' | b'*')) => self.c_comment(),
            b'#' if !self.json => self.skip_line(),
            b'-' if !self.json
                && self.at == self.line_start
                && self.b[self.at..].starts_with(b"---") =>
            {
                self.skip_line()
            }
            b'{' | b'[' => {
                self.depth += 1;
                one(self, Kind::Open(c))
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                one(self, Kind::Close)
            }
            b',' if flow => one(self, Kind::Comma),
            b':' if flow || blank_after => {
                self.node_col = self.last_col;
                one(self, Kind::Colon)
            }
            b'-' if !flow && blank_after => {
                self.node_col = self.at - self.line_start + 1;
                one(self, Kind::Dash)
            }
            b'|' | b'>' if !flow => self.block_scalar(),
            b'"' => self.quoted(b'"'),
            b'\'' if !self.json => self.quoted(b'\''),
            _ => self.plain(flow),
        }
    }

    /// `//` to the end of the line, or `/*` to `*/`.
    fn c_comment(&mut self) -> Kind {
        if self.peek(1) == Some(b'/') {
            return self.skip_line();
        }
        self.at += 2;
        while let Some(c) = self.peek(0) {
            if c == b'*' && self.peek(1) == Some(b'/') {
                self.at += 2;
                return Kind::Comment { closed: true };
            }
            if c == b'\n' {
                self.newline();
            }
            self.at += 1;
        }
        Kind::Comment { closed: false }
    }

    fn skip_line(&mut self) -> Kind {
        while self.peek(0).is_some_and(|c| c != b'\n') {
            self.at += 1;
        }
        Kind::Comment { closed: true }
    }

    /// A `"` string (backslash escapes) or a `'` string (`''` escapes); may span lines.
    fn quoted(&mut self, q: u8) -> Kind {
        self.at += 1;
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' if q == b'"' => self.at += 1,
                b'\'' if q == b'\'' && self.peek(1) == Some(b'\'') => self.at += 1,
                b'\n' => self.newline(),
                _ if c == q => {
                    self.at += 1;
                    break;
                }
                _ => {}
            }
            self.at += 1;
        }
        self.at = self.at.min(self.b.len());
        Kind::Scalar
    }

    /// A plain scalar: up to the line end, `: `, ` #` and, in flow context, `,[]{}`.
    fn plain(&mut self, flow: bool) -> Kind {
        self.at += 1;
        while let Some(c) = self.peek(0) {
            let next_blank = matches!(self.peek(1), None | Some(b' ' | b'\t' | b'\r' | b'\n'));
            let prev_blank = matches!(self.b[self.at - 1], b' ' | b'\t');
            let end = match c {
                b'\n' | b'\r' => true,
                b':' => next_blank || self.json,
                b'#' => prev_blank && !self.json,
                b',' | b'[' | b']' | b'{' | b'}' => flow,
                b' ' | b'\t' | b'/' => self.json,
                _ => false,
            };
            if end {
                break;
            }
            self.at += 1;
        }
        Kind::Scalar
    }

    /// `|` or `>`: skip the rest of its line and every following line that is blank or
    /// indented deeper than the node the scalar belongs to.
    fn block_scalar(&mut self) -> Kind {
        self.skip_line();
        while self.peek(0) == Some(b'\n') {
            let from = self.at + 1;
            let rest = &self.b[from..];
            let indent = rest.iter().take_while(|c| **c == b' ').count();
            let blank = matches!(rest.get(indent), None | Some(b'\n' | b'\r'));
            if !blank && indent < self.node_col {
                break;
            }
            self.newline();
            self.at = from;
            self.skip_line();
        }
        Kind::BlockScalar
    }
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        loop {
            let c = self.peek(0)?;
            match c {
                b'\n' => {
                    self.newline();
                    self.at += 1;
                }
                b' ' | b'\t' | b'\r' => self.at += 1,
                _ => {
                    let (start, line, col) = (self.at, self.line, self.at - self.line_start + 1);
                    let kind = self.kind(c);
                    self.last_col = col;
                    return Some(Token {
                        kind,
                        start,
                        end: self.at,
                        line,
                        col,
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------- walker

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    BlockMap,
    BlockSeq,
    FlowMap,
    FlowSeq,
}

#[derive(Debug)]
struct Frame {
    shape: Shape,
    col: usize,
    /// The key or item being read; `None` before the first one.
    seg: Option<Seg>,
    /// Flow sequences: the next token starts an item.
    item_due: bool,
}

/// Follows the document's nesting token by token; `path` is where the walk is.
struct Walker<'t> {
    text: &'t str,
    frames: Vec<Frame>,
}

impl Walker<'_> {
    /// Take one token (`next` is the one after it). Returns true when it starts a key or a
    /// sequence item: the walk is then at a new place.
    fn step(&mut self, t: &Token, next: Option<&Token>) -> bool {
        let is_key = t.kind == Kind::Scalar && next.is_some_and(|n| n.kind == Kind::Colon);
        let in_flow = self
            .frames
            .last()
            .is_some_and(|f| matches!(f.shape, Shape::FlowMap | Shape::FlowSeq));
        if in_flow {
            return self.flow_step(t, is_key);
        }
        match t.kind {
            Kind::Dash => {
                self.close_blocks(t.col, false);
                match self.frames.last_mut() {
                    Some(f) if f.shape == Shape::BlockSeq && f.col == t.col => {
                        f.seg = Some(next_index(&f.seg));
                    }
                    _ => self.push(Shape::BlockSeq, t.col, Some(Seg::Index(0))),
                }
                true
            }
            Kind::Scalar if is_key => {
                self.close_blocks(t.col, true);
                let key = Seg::Key(self.key_text(t));
                match self.frames.last_mut() {
                    Some(f) if f.shape == Shape::BlockMap && f.col == t.col => f.seg = Some(key),
                    _ => self.push(Shape::BlockMap, t.col, Some(key)),
                }
                true
            }
            Kind::Open(c) => {
                self.push_flow(c, t.col);
                false
            }
            _ => false,
        }
    }

    fn flow_step(&mut self, t: &Token, is_key: bool) -> bool {
        match t.kind {
            Kind::Open(c) => {
                let item = self.flow_item();
                self.push_flow(c, t.col);
                item
            }
            Kind::Close => {
                self.frames.pop();
                false
            }
            Kind::Comma => {
                if let Some(f) = self.frames.last_mut() {
                    f.item_due = f.shape == Shape::FlowSeq;
                    if f.shape == Shape::FlowMap {
                        f.seg = None;
                    }
                }
                false
            }
            Kind::Scalar if is_key => {
                let key = Seg::Key(self.key_text(t));
                match self.frames.last_mut() {
                    Some(f) if f.shape == Shape::FlowMap => {
                        f.seg = Some(key);
                        true
                    }
                    _ => false,
                }
            }
            Kind::Scalar => self.flow_item(),
            _ => false,
        }
    }

    /// In a flow sequence, the first token of an item starts it.
    fn flow_item(&mut self) -> bool {
        match self.frames.last_mut() {
            Some(f) if f.shape == Shape::FlowSeq && f.item_due => {
                f.item_due = false;
                f.seg = Some(next_index(&f.seg));
                true
            }
            _ => false,
        }
    }

    /// Leave the block collections a token at `col` is outside of: deeper ones, and for a key
    /// (`key`), a sequence at its own column (`key:` followed by `- item` at the same column).
    fn close_blocks(&mut self, col: usize, key: bool) {
        while self
            .frames
            .last()
            .is_some_and(|f| f.col > col || (key && f.col == col && f.shape == Shape::BlockSeq))
        {
            self.frames.pop();
        }
    }

    fn push(&mut self, shape: Shape, col: usize, seg: Option<Seg>) {
        self.frames.push(Frame {
            shape,
            col,
            seg,
            item_due: true,
        });
    }

    fn push_flow(&mut self, c: u8, col: usize) {
        let shape = if c == b'{' {
            Shape::FlowMap
        } else {
            Shape::FlowSeq
        };
        self.push(shape, col, None);
    }

    /// A key as written, without its quotes.
    fn key_text(&self, t: &Token) -> String {
        let raw = self.text[t.start..t.end].trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| raw.strip_prefix(*q).and_then(|r| r.strip_suffix(*q)));
        unquoted.unwrap_or(raw).to_string()
    }

    /// How many leading segments of `want` the current place matches, when it is `want` or
    /// one of its prefixes.
    fn matches(&self, want: &[Seg]) -> Option<usize> {
        let mut n = 0;
        for seg in self.frames.iter().filter_map(|f| f.seg.as_ref()) {
            n += segs_matched(seg, &want[n.min(want.len())..])?;
        }
        Some(n)
    }
}

/// How many segments of `want` the document's `seg` stands for: one, or several for a key
/// with dots in it (a cluster named `a.b` is `a`, `b` in a dotted path).
fn segs_matched(seg: &Seg, want: &[Seg]) -> Option<usize> {
    if want.first() == Some(seg) {
        return Some(1);
    }
    let Seg::Key(k) = seg else { return None };
    let parts = k.split('.').count();
    let joined: Option<Vec<&str>> = want
        .iter()
        .take(parts)
        .map(|w| match w {
            Seg::Key(w) => Some(w.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    (parts > 1 && joined?.join(".") == *k).then_some(parts)
}

/// The item after `seg` in a sequence (the first when there is none yet).
fn next_index(seg: &Option<Seg>) -> Seg {
    Seg::Index(match seg {
        Some(Seg::Index(i)) => i + 1,
        _ => 0,
    })
}

/// Walk to the `nth` place of `want`; with `prefix`, fall back to the first place of the
/// longest prefix of `want` found.
fn find(text: &str, syntax: Syntax, want: &[Seg], nth: usize, prefix: bool) -> Option<Located> {
    if want.is_empty() {
        return None;
    }
    let mut tokens = Lexer::new(text, syntax)
        .filter(|t| !matches!(t.kind, Kind::Comment { .. }))
        .peekable();
    let mut walker = Walker {
        text,
        frames: Vec::new(),
    };
    let (mut seen, mut best) = (0, None::<(usize, (usize, usize))>);
    while let Some(t) = tokens.next() {
        if !walker.step(&t, tokens.peek()) {
            continue;
        }
        match walker.matches(want) {
            Some(n) if n == want.len() && seen == nth => {
                let rest: Vec<Token> = tokens.take(2).collect();
                return Some(Located {
                    key: t.pos(),
                    value: value_after(&t, &rest),
                });
            }
            Some(n) if n == want.len() => seen += 1,
            Some(n) if prefix && best.is_none_or(|(b, _)| n > b) => best = Some((n, t.pos())),
            _ => {}
        }
    }
    best.map(|(_, key)| Located { key, value: None })
}

/// Where the value of the key or item `t` starts: the next scalar, bracket or block scalar
/// after a `:` or `-`, when it is on the same line or indented deeper.
fn value_after(t: &Token, rest: &[Token]) -> Option<(usize, usize)> {
    let v = match t.kind {
        Kind::Dash => rest.first()?,
        Kind::Scalar if rest.first().is_some_and(|n| n.kind == Kind::Colon) => rest.get(1)?,
        _ => t,
    };
    let value_like = matches!(v.kind, Kind::Scalar | Kind::Open(_) | Kind::BlockScalar);
    (value_like && (v.line == t.line || v.col > t.col)).then(|| v.pos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str, syntax: Syntax, path: &str) -> Option<(usize, usize)> {
        locate(text, syntax, path).map(|l| l.key)
    }

    #[test]
    fn block_yaml_paths() {
        let y = "cluster: c\nrules:\n  - metric: cpu\n    target: 60\n  - metric: bogus\n    above: 3\nschedules:\n- cron: x\n  duration: 1h\n- cron: y\n  timezone: Nowhere\n";
        let at = |p| key(y, Syntax::Yaml, p);
        assert_eq!(at("cluster"), Some((1, 1)));
        assert_eq!(at("rules[0].target"), Some((4, 5)));
        assert_eq!(at("rules[1].metric"), Some((5, 5)));
        assert_eq!(at("rules[1].above"), Some((6, 5)));
        assert_eq!(at("rules[1]"), Some((5, 3)));
        assert_eq!(at("schedules[1].timezone"), Some((11, 3)));
        assert_eq!(at("schedules[1].cron"), Some((10, 3)));
        // Missing leaf: the closest parent.
        assert_eq!(at("schedules[0].min_replicas"), Some((8, 1)));
        let v = locate(y, Syntax::Yaml, "rules[1].metric").unwrap().value;
        assert_eq!(v, Some((5, 13)));
    }

    #[test]
    fn json_with_comments_and_flow_yaml_paths() {
        let j = "{ // \"a\": here\n \"c\": {\"ids\": [\"x\", /* \"b\": */ {\"id\": \"y\"}],\n  \"id\": 3}\n}";
        assert_eq!(key(j, Syntax::Json, "c.ids[1].id"), Some((2, 33)));
        assert_eq!(key(j, Syntax::Json, "c.id"), Some((3, 3)));
        let v = locate(j, Syntax::Json, "c.ids[0]").unwrap();
        assert_eq!((v.key, v.value), ((2, 16), Some((2, 16))));
        assert_eq!(key(j, Syntax::Json, "a"), None);
        let y = "c:\n  m: {id: a, 'k': [1, {id: b}]}\n";
        assert_eq!(key(y, Syntax::Yaml, "c.m.k[1].id"), Some((2, 24)));
        let v = locate(y, Syntax::Yaml, "c.m.id").unwrap().value;
        assert_eq!(v, Some((2, 11)));
    }

    #[test]
    fn block_scalars_comments_and_quotes_are_not_keys() {
        let y = "---\ndesc: |\n  x: not a key\n\n  y: neither\nitems:\n  - note: >\n      z: no\n    x: 1 # x: no\n'q': \"a: b\"\n";
        assert_eq!(key(y, Syntax::Yaml, "x"), None);
        assert_eq!(key(y, Syntax::Yaml, "items[0].x"), Some((9, 5)));
        assert_eq!(key(y, Syntax::Yaml, "q"), Some((10, 1)));
        // inside a block scalar: only the item is found
        assert_eq!(key(y, Syntax::Yaml, "items[0].z"), Some((7, 3)));
    }

    #[test]
    fn a_key_with_dots_matches_the_dotted_path() {
        let y = "a.b:\n  m: {id: x}\na:\n  b: 1\n";
        assert_eq!(key(y, Syntax::Yaml, "a.b.m.id"), Some((2, 7)));
        assert_eq!(key(y, Syntax::Yaml, "a.b"), Some((1, 1)));
    }

    #[test]
    fn a_key_given_twice_is_found_twice() {
        let y = "x:\n  - a: 1\n    b: 2\n    b: 3\n";
        assert_eq!(
            locate_nth(y, Syntax::Yaml, "x[0].b", 1).unwrap().key,
            (4, 5)
        );
        assert_eq!(locate_nth(y, Syntax::Yaml, "x[0].b", 2), None);
        let j = "{\"a\": 1,\n \"a\": 2}";
        assert_eq!(locate_nth(j, Syntax::Json, "a", 1).unwrap().key, (2, 2));
    }

    #[test]
    fn comments_are_blanked_keeping_positions() {
        let t = "{ // one\n \"a\": \"x//y\", /* two\n */ \"b\": 1 }";
        let s = blank_json_comments(t).unwrap();
        assert_eq!(s.len(), t.len());
        assert_eq!(s.lines().count(), t.lines().count());
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "x//y");
        assert_eq!(v["b"], 1);
        assert_eq!(blank_json_comments("{\n  /* open\n"), Err((2, 3)));
    }

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        assert_eq!(
            nesting_depth("[[\"[[[\", {\"a\": []}]] // [[[[", Syntax::Json),
            4
        );
        assert_eq!(
            nesting_depth("a: '[[['\nb: [{c: [x]}] # [[[[", Syntax::Yaml),
            3
        );
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("a[1].b"),
            vec![Seg::Key("a".into()), Seg::Index(1), Seg::Key("b".into())]
        );
        assert_eq!(parse_path("[2][0]"), vec![Seg::Index(2), Seg::Index(0)]);
        assert!(parse_path("").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_walked_without_panic(text in "[-:#'\"{}\\[\\], |>/*\\\\\n\r\taé]{0,80}") {
            for s in [Syntax::Json, Syntax::Yaml] {
                let _ = locate(&text, s, "a[0].b");
                let _ = locate_nth(&text, s, "a", 1);
                let _ = nesting_depth(&text, s);
            }
            if let Ok(b) = blank_json_comments(&text) {
                proptest::prop_assert_eq!(b.len(), text.len());
            }
        }
    }

    #[test]
    fn junk_never_panics() {
        for t in [
            "\"",
            "'",
            "/*",
            "{[}]",
            "- - -",
            ": :",
            "a: |\n",
            "\u{e9}: \u{e9}",
            "[\n,,]",
        ] {
            for s in [Syntax::Json, Syntax::Yaml] {
                let _ = locate(t, s, "a[0].b");
                let _ = nesting_depth(t, s);
            }
            let _ = blank_json_comments(t);
        }
    }
}
