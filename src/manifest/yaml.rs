//! A small YAML tree that remembers where every node was written.
//!
//! serde_yaml cannot tell where a value came from, so this builds its own
//! tree from yaml-rust2's event parser: every node keeps its 1-based line and
//! column, and every scalar whether it was written plain or quoted (a plain
//! `8080` is a number, a quoted `"8080"` a string, as in Kubernetes).
//!
//! The builder is defensive, because manifests come from whoever can push:
//! aliases are expanded against a budget of bytes of tree, in proportion to
//! the file (so neither a "billion laughs" document nor one long string
//! aliased many times is more than an error), nesting is bounded (so a
//! deeply nested document cannot overflow the stack when the tree is walked
//! or dropped), and duplicate keys are reported with both lines.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// How much tree aliases may add to one file, at least: each node they copy
/// counts as [`NODE_BYTES`] plus the text of its scalar. A file larger than
/// this may add as much as its own length ([`alias_budget`]).
pub(crate) const ALIAS_EXPANSION_BUDGET: usize = 1024 * 1024;

/// What one node of the tree costs, for the alias budget.
pub(crate) const NODE_BYTES: usize = std::mem::size_of::<Node>();

/// The bytes of tree aliases may add to a file of `file_len` bytes: the
/// larger of [`ALIAS_EXPANSION_BUDGET`] and the file's own length, so the
/// tree of any file stays within a small multiple of the file.
pub(crate) fn alias_budget(file_len: usize) -> usize {
    ALIAS_EXPANSION_BUDGET.max(file_len)
}

/// How deeply sequences and mappings may nest.
pub(crate) const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    /// 1-based.
    pub line: u32,
    /// 1-based.
    pub column: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    Mapping(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    pub style: Style,
}

/// Plain scalars are typed by their text (`8080` is a number, `true` a
/// boolean, `~` null); quoted and block scalars, and `!!str`, are strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    Quoted,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
}

/// What a plain scalar means, YAML 1.2 core schema style.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum PlainType {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64.
    BigInt,
    Float,
    String,
}

impl Node {
    pub(crate) fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A plain `~`, `null` or empty scalar: what Kubernetes treats as absent.
    pub(crate) fn is_null(&self) -> bool {
        self.as_scalar()
            .is_some_and(|s| s.style == Style::Plain && s.plain_type() == PlainType::Null)
    }

    /// `a mapping`, `a sequence`, `an integer`, ... for messages.
    pub(crate) fn describe(&self) -> &'static str {
        match &self.value {
            Value::Mapping(_) => "a mapping",
            Value::Sequence(_) => "a sequence",
            Value::Scalar(s) if s.style == Style::Quoted => "a string",
            Value::Scalar(s) => match s.plain_type() {
                PlainType::Null => "null",
                PlainType::Bool(_) => "a boolean",
                PlainType::Int(_) | PlainType::BigInt => "an integer",
                PlainType::Float => "a number",
                PlainType::String => "a string",
            },
        }
    }
}

impl Scalar {
    pub(crate) fn plain_type(&self) -> PlainType {
        if self.style == Style::Quoted {
            return PlainType::String;
        }
        plain_type(&self.text)
    }
}

/// Types a plain scalar by its text.
pub(crate) fn plain_type(text: &str) -> PlainType {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return PlainType::Null,
        "true" | "True" | "TRUE" => return PlainType::Bool(true),
        "false" | "False" | "FALSE" => return PlainType::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return PlainType::Float,
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(n) => PlainType::Int(n),
            Err(_) => PlainType::BigInt,
        };
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return match i64::from_str_radix(hex, 16) {
                Ok(n) => PlainType::Int(n),
                Err(_) => PlainType::BigInt,
            };
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return match i64::from_str_radix(oct, 8) {
                Ok(n) => PlainType::Int(n),
                Err(_) => PlainType::BigInt,
            };
        }
    }
    if is_float(digits) {
        return PlainType::Float;
    }
    PlainType::String
}

/// `1.5`, `.5`, `1.`, `1e3`, `1.5E-3` (sign already removed).
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && !(int.is_empty() && frac.is_none_or(str::is_empty));
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    // A bare integer is not a float; one with a `.` or an exponent is.
    mantissa_ok && exponent_ok && (frac.is_some() || exponent.is_some())
}

/// One `---` document of a file; empty documents are left out.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Document {
    pub root: Node,
    /// A mapping of the document repeats a key (reported in [`Parsed::errors`]).
    pub has_duplicate_keys: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub message: String,
    pub line: u32,
    pub column: u32,
}

/// Everything that could be read from one file.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Parsed {
    /// Documents complete before any syntax error.
    pub documents: Vec<Document>,
    pub errors: Vec<YamlError>,
}

/// Parses every document of `text`. Never panics; a syntax error ends the
/// file (YAML cannot resynchronise reliably) and keeps the documents before it.
pub(crate) fn parse(text: &str) -> Parsed {
    let mut builder = Builder {
        alias_budget: alias_budget(text.len()),
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => break,
            Ok((event, mark)) => {
                if let Err(error) = builder.on_event(event, mark) {
                    builder.errors.push(error);
                    break;
                }
            }
            Err(error) => {
                let mark = error.marker();
                builder.errors.push(YamlError {
                    message: error.info().to_string(),
                    line: position(mark.line()),
                    column: position(mark.col() + 1),
                });
                break;
            }
        }
    }
    Parsed {
        documents: builder.documents,
        errors: builder.errors,
    }
}

fn position(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

enum Frame {
    Sequence {
        start: (u32, u32),
        anchor: usize,
        items: Vec<Node>,
        size: usize,
    },
    Mapping {
        start: (u32, u32),
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<Node>,
        size: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Anchor id to the anchored node and its weight (see [`NODE_BYTES`]).
    anchors: HashMap<usize, (Node, usize)>,
    /// The weight aliases have added so far, and how much they may.
    expanded: usize,
    alias_budget: usize,
    documents: Vec<Document>,
    root: Option<Node>,
    duplicate_keys: bool,
    errors: Vec<YamlError>,
}

impl Builder {
    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), YamlError> {
        let at = (position(mark.line()), position(mark.col() + 1));
        match event {
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
            Event::DocumentStart => {
                self.root = None;
                self.duplicate_keys = false;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                if let Some(root) = self.root.take() {
                    if !root.is_null() {
                        self.documents.push(Document {
                            root,
                            has_duplicate_keys: self.duplicate_keys,
                        });
                    }
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let text_len = text.len();
                let quoted =
                    !matches!(style, TScalarStyle::Plain) || tag.is_some_and(|t| t.suffix == "str");
                let node = Node {
                    value: Value::Scalar(Scalar {
                        text,
                        style: if quoted { Style::Quoted } else { Style::Plain },
                    }),
                    line: at.0,
                    column: at.1,
                };
                let weight = NODE_BYTES.saturating_add(text_len);
                self.complete(node, weight, anchor, at)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.check_depth(at)?;
                self.stack.push(Frame::Sequence {
                    start: at,
                    anchor,
                    items: Vec::new(),
                    size: NODE_BYTES,
                });
            }
            Event::MappingStart(anchor, _) => {
                self.check_depth(at)?;
                self.stack.push(Frame::Mapping {
                    start: at,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                    size: NODE_BYTES,
                });
            }
            Event::SequenceEnd => {
                if let Some(Frame::Sequence {
                    start,
                    anchor,
                    items,
                    size,
                }) = self.stack.pop()
                {
                    let node = Node {
                        value: Value::Sequence(items),
                        line: start.0,
                        column: start.1,
                    };
                    self.complete(node, size, anchor, at)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Mapping {
                    start,
                    anchor,
                    entries,
                    size,
                    ..
                }) = self.stack.pop()
                {
                    self.check_duplicate_keys(&entries);
                    // A block mapping's start mark lies one column past its
                    // first key; the first key is where readers look anyway.
                    let (line, column) = entries
                        .first()
                        .map_or(start, |e| (e.key.line, e.key.column));
                    let node = Node {
                        value: Value::Mapping(entries),
                        line,
                        column,
                    };
                    self.complete(node, size, anchor, at)?;
                }
            }
            Event::Alias(id) => {
                let Some((node, size)) = self.anchors.get(&id) else {
                    return Err(YamlError {
                        message: "alias to an unknown anchor".to_string(),
                        line: at.0,
                        column: at.1,
                    });
                };
                let size = *size;
                self.expanded = self.expanded.saturating_add(size);
                if self.expanded > self.alias_budget {
                    return Err(YamlError {
                        message: format!(
                            "aliases expand to more than {} bytes (at least {NODE_BYTES} a node); \
                             write the values out instead",
                            self.alias_budget
                        ),
                        line: at.0,
                        column: at.1,
                    });
                }
                let mut node = node.clone();
                node.line = at.0;
                node.column = at.1;
                self.complete(node, size, 0, at)?;
            }
        }
        Ok(())
    }

    fn check_depth(&self, at: (u32, u32)) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(YamlError {
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                line: at.0,
                column: at.1,
            });
        }
        Ok(())
    }

    /// Adds a finished node to its parent, or makes it the document's root.
    fn complete(
        &mut self,
        node: Node,
        node_size: usize,
        anchor: usize,
        _at: (u32, u32),
    ) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), node_size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Sequence { items, size, .. }) => {
                *size = size.saturating_add(node_size);
                items.push(node);
            }
            Some(Frame::Mapping {
                entries, key, size, ..
            }) => {
                *size = size.saturating_add(node_size);
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push(Entry {
                        key: k,
                        value: node,
                    }),
                }
            }
        }
        Ok(())
    }

    fn check_duplicate_keys(&mut self, entries: &[Entry]) {
        if entries.len() < 2 {
            return;
        }
        let mut keys: Vec<(&str, usize)> = entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.key.as_scalar().map(|s| (s.text.as_str(), i)))
            .collect();
        keys.sort_unstable();
        let mut duplicates: Vec<(usize, usize)> = Vec::new();
        for pair in keys.windows(2) {
            if pair[0].0 == pair[1].0 {
                // Name the first declaration of the key for every repeat.
                let first = keys
                    .iter()
                    .find(|(k, _)| *k == pair[0].0)
                    .map_or(pair[0].1, |(_, i)| *i);
                duplicates.push((first, pair[1].1));
            }
        }
        duplicates.sort_unstable_by_key(|(_, repeat)| *repeat);
        self.duplicate_keys |= !duplicates.is_empty();
        for (first, repeat) in duplicates {
            let first = &entries[first].key;
            let repeat = &entries[repeat].key;
            let name = repeat.as_scalar().map_or("", |s| s.text.as_str());
            self.errors.push(YamlError {
                message: format!(
                    "duplicate key `{name}` (first at line {}, again at line {})",
                    first.line, repeat.line
                ),
                line: repeat.line,
                column: repeat.column,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a tree compactly: scalars as `text@line:col` (quoted ones in
    /// quotes), sequences in brackets, mappings in braces.
    fn render(node: &Node) -> String {
        let at = format!("@{}:{}", node.line, node.column);
        match &node.value {
            Value::Scalar(s) if s.style == Style::Quoted => format!("{:?}{at}", s.text),
            Value::Scalar(s) => format!("{}{at}", s.text),
            Value::Sequence(items) => {
                let items: Vec<String> = items.iter().map(render).collect();
                format!("[{}]{at}", items.join(", "))
            }
            Value::Mapping(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|e| format!("{}: {}", render(&e.key), render(&e.value)))
                    .collect();
                format!("{{{}}}{at}", entries.join(", "))
            }
        }
    }

    fn check(yaml: &str, expected: &[&str]) {
        let parsed = parse(yaml);
        let mut actual: Vec<String> = parsed.documents.iter().map(|d| render(&d.root)).collect();
        actual.extend(
            parsed
                .errors
                .iter()
                .map(|e| format!("error {}:{} {}", e.line, e.column, e.message)),
        );
        assert_eq!(actual, expected, "for input:\n{yaml}");
    }

    #[test]
    fn trees_keep_positions_and_styles() {
        check("a: 1\n", &["{a@1:1: 1@1:4}@1:1"]);
        check(
            "a: \"1\"\nb: 'x'\n",
            &[r#"{a@1:1: "1"@1:4, b@2:1: "x"@2:4}@1:1"#],
        );
        check(
            "spec:\n  ports:\n  - 80\n  - 443\n",
            &["{spec@1:1: {ports@2:3: [80@3:5, 443@4:5]@3:5}@2:3}@1:1"],
        );
        check("a: !!str 8080\n", &[r#"{a@1:1: "8080"@1:10}@1:1"#]);
        check("a: |\n  text\n", &[r#"{a@1:1: "text\n"@2:3}@1:1"#]);
    }

    #[test]
    fn flow_style_and_comments() {
        check(
            "# comment\n{\"a\": [1, 2], b: {c: d}} # trailing\n",
            &[r#"{"a"@2:2: [1@2:8, 2@2:11]@2:7, b@2:15: {c@2:19: d@2:22}@2:19}@2:2"#],
        );
    }

    #[test]
    fn documents_are_split_and_empty_ones_skipped() {
        check(
            "a: 1\n---\nb: 2\n",
            &["{a@1:1: 1@1:4}@1:1", "{b@3:1: 2@3:4}@3:1"],
        );
        check(
            "---\n---\n# only a comment\n---\na: 1\n...\n",
            &["{a@5:1: 1@5:4}@5:1"],
        );
        check("", &[]);
        check("~\n", &[]);
    }

    #[test]
    fn aliases_are_expanded_at_the_alias() {
        check(
            "a: &x {b: 1}\nc: *x\n",
            &["{a@1:1: {b@1:8: 1@1:11}@1:8, c@2:1: {b@1:8: 1@1:11}@2:4}@1:1"],
        );
    }

    #[test]
    fn billion_laughs_is_an_error() {
        let mut yaml = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut previous = "a";
        for name in names {
            yaml.push_str(&format!(
                "{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"
            ));
            previous = name;
        }
        let parsed = parse(&yaml);
        assert!(parsed.documents.is_empty());
        assert_eq!(parsed.errors.len(), 1);
        assert!(
            parsed.errors[0]
                .message
                .contains("aliases expand to more than"),
            "{:?}",
            parsed.errors
        );
    }

    /// Issue 10, item 1: the budget counted nodes, so one 1 MiB string
    /// aliased 1,000 times (a 1 MB file) built a 1 GiB tree.
    #[test]
    fn a_long_string_aliased_many_times_is_an_error() {
        let long = "x".repeat(1024 * 1024);
        let mut yaml = format!("a: &a \"{long}\"\nb: [");
        yaml.push_str(&vec!["*a"; 1000].join(","));
        yaml.push_str("]\n");
        let parsed = parse(&yaml);
        assert!(parsed.documents.is_empty());
        assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
        let error = &parsed.errors[0];
        assert!(
            error.message.starts_with("aliases expand to more than"),
            "{}",
            error.message
        );
        // The first alias past the budget: the file's own length allows one copy.
        assert_eq!((error.line, error.column), (2, 8));
    }

    #[test]
    fn aliases_within_the_budget_are_expanded() {
        // A 64 KiB string aliased 15 times stays under the 1 MiB floor.
        let long = "x".repeat(64 * 1024);
        let yaml = format!("a: &a \"{long}\"\nb: [{}]\n", vec!["*a"; 15].join(","));
        let parsed = parse(&yaml);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        assert_eq!(parsed.documents.len(), 1);
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let block: String = (0..100)
            .map(|i| format!("{}a:\n", "  ".repeat(i)))
            .collect();
        let parsed = parse(&block);
        assert!(parsed.documents.is_empty());
        assert_eq!(
            parsed.errors,
            vec![YamlError {
                message: "nesting deeper than 64 levels".to_string(),
                line: 65,
                column: 130
            }]
        );
        // The parser has its own, larger limit for flow style.
        let parsed = parse(&"[".repeat(100_000));
        assert!(parsed.documents.is_empty());
        assert_eq!(parsed.errors.len(), 1);
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        check(
            "a: 1\nb: 2\na: 3\n",
            &[
                "{a@1:1: 1@1:4, b@2:1: 2@2:4, a@3:1: 3@3:4}@1:1",
                "error 3:1 duplicate key `a` (first at line 1, again at line 3)",
            ],
        );
    }

    #[test]
    fn syntax_errors_keep_earlier_documents() {
        check(
            "a: 1\n---\nb: [1, 2\n",
            &[
                "{a@1:1: 1@1:4}@1:1",
                "error 4:1 while parsing a flow sequence, expected ',' or ']'",
            ],
        );
        check(
            "a: b: c\n",
            &["error 1:5 mapping values are not allowed in this context"],
        );
    }

    #[test]
    fn plain_scalars_are_typed() {
        let cases = [
            ("", PlainType::Null),
            ("~", PlainType::Null),
            ("true", PlainType::Bool(true)),
            ("False", PlainType::Bool(false)),
            ("8080", PlainType::Int(8080)),
            ("-3", PlainType::Int(-3)),
            ("0x1F", PlainType::Int(31)),
            ("0o17", PlainType::Int(15)),
            ("99999999999999999999", PlainType::BigInt),
            ("1.5", PlainType::Float),
            (".5", PlainType::Float),
            ("1e3", PlainType::Float),
            ("-1.5E-3", PlainType::Float),
            (".inf", PlainType::Float),
            ("128Mi", PlainType::String),
            ("1.2.3", PlainType::String),
            (".", PlainType::String),
            ("e3", PlainType::String),
            ("yes", PlainType::String),
            ("nginx:1.25", PlainType::String),
        ];
        for (text, expected) in cases {
            assert_eq!(plain_type(text), expected, "for {text:?}");
        }
    }
}
