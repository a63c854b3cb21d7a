//! A TOML document read in parts, so that no document as large as the registry is ever
//! built: each table header starts a part, but for the sub-tables of an entry of an array
//! of tables (`[[computation.objects]]` after `[[computation]]`), which stay with it. The
//! entries of the registry's arrays are then read one at a time, each from its own part,
//! and everything else as one small document of the remaining parts.
//!
//! The parts are found with the `toml_parser` lexer, which streams tokens: strings,
//! comments and the brackets of values are told from headers as TOML does.

use std::borrow::Cow;
use std::iter::Peekable;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml_parser::lexer::{Lexer, Token, TokenKind};
use toml_parser::Source;

/// A part of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The array it is an entry of, if it is a `[[name]]` table of the arrays asked for.
    pub entry: Option<&'static str>,
    /// Where it lies in the document.
    pub range: Range<usize>,
}

/// The parts of a document, in order; see the module docs.
pub struct Parts<'t> {
    source: Source<'t>,
    tokens: Peekable<Lexer<'t>>,
    /// The arrays whose entries are parts of their own.
    arrays: &'static [&'static str],
    /// The part being read.
    entry: Option<&'static str>,
    start: usize,
    /// Open brackets and braces of values.
    depth: usize,
    /// Whether only whitespace and comments stand before this token on its line.
    line_start: bool,
}

impl<'t> Parts<'t> {
    /// The parts of `text`, those of entries of `arrays` apart.
    pub fn new(text: &'t str, arrays: &'static [&'static str]) -> Parts<'t> {
        let source = Source::new(text);
        Parts {
            source,
            tokens: source.lex().peekable(),
            arrays,
            entry: None,
            start: 0,
            depth: 0,
            line_start: true,
        }
    }

    /// Reads the header that `open` starts; the part before it if the header starts a new
    /// one.
    fn header(&mut self, open: Token) -> Option<Part> {
        let array = self.next_if(TokenKind::LeftSquareBracket, open).is_some();
        let mut first: Option<Cow<'t, str>> = None;
        let mut keys = 0;
        let mut closed = false;
        while let Some(token) = self.tokens.next_if(|t| !ends_line(t.kind())) {
            match token.kind() {
                TokenKind::Atom | TokenKind::BasicString | TokenKind::LiteralString => {
                    keys += 1;
                    if first.is_none() {
                        first = Some(self.key(token));
                    }
                }
                TokenKind::Whitespace | TokenKind::Dot => {}
                TokenKind::RightSquareBracket => {
                    closed = !array || self.next_if(TokenKind::RightSquareBracket, token).is_some();
                    break;
                }
                _ => break,
            }
        }
        self.line_start = false;
        let first = first.unwrap_or_default();
        if closed && keys > 1 && self.entry == Some(&*first) {
            // A sub-table of the entry being read.
            return None;
        }
        let single = closed && array && keys == 1;
        let entry = (self.arrays.iter().copied()).find(|&a| single && a == first);
        let start = open.span().start();
        let part = Part {
            entry: std::mem::replace(&mut self.entry, entry),
            range: std::mem::replace(&mut self.start, start)..start,
        };
        (!part.range.is_empty()).then_some(part)
    }

    /// The next token if it is of `kind` and follows `previous` with nothing between.
    fn next_if(&mut self, kind: TokenKind, previous: Token) -> Option<Token> {
        let end = previous.span().end();
        (self.tokens).next_if(|t| t.kind() == kind && t.span().start() == end)
    }

    /// The key `token` spells.
    fn key(&self, token: Token) -> Cow<'t, str> {
        let mut key = Cow::Borrowed("");
        if let Some(raw) = self.source.get(token) {
            raw.decode_key(&mut key, &mut ());
        }
        key
    }
}

/// Whether a token of `kind` ends a header, well-formed or not.
fn ends_line(kind: TokenKind) -> bool {
    matches!(kind, TokenKind::Newline | TokenKind::Eof)
}

impl Iterator for Parts<'_> {
    type Item = Part;

    fn next(&mut self) -> Option<Part> {
        loop {
            let token = self.tokens.next()?;
            match token.kind() {
                TokenKind::Eof => {
                    let end = self.source.input().len();
                    let part = Part {
                        entry: self.entry.take(),
                        range: std::mem::replace(&mut self.start, end)..end,
                    };
                    if !part.range.is_empty() {
                        return Some(part);
                    }
                }
                TokenKind::Newline => self.line_start = true,
                TokenKind::Whitespace | TokenKind::Comment => {}
                TokenKind::LeftSquareBracket if self.line_start && self.depth == 0 => {
                    if let Some(part) = self.header(token) {
                        return Some(part);
                    }
                }
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => {
                    self.depth += 1;
                    self.line_start = false;
                }
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                    self.depth = self.depth.saturating_sub(1);
                    self.line_start = false;
                }
                _ => self.line_start = false,
            }
        }
    }
}

/// Why an entry could not be read.
#[derive(Debug)]
pub enum EntryError {
    /// Its text is not TOML: the error's span is within the part.
    Syntax(toml::de::Error),
    /// Its value does not fit: the error names the key within the entry.
    Value(toml::de::Error),
}

/// The entry whose part is `text`: one `[[name]]` table and its sub-tables.
pub fn entry<T: DeserializeOwned>(text: &str) -> Result<T, EntryError> {
    let table = DeTable::parse(text).map_err(EntryError::Syntax)?;
    let array = table.into_inner().into_iter().next().map(|(_, v)| v);
    let item = match array.map(toml::Spanned::into_inner) {
        Some(DeValue::Array(items)) => items.into_iter().next(),
        _ => None,
    };
    let Some(item) = item else {
        let e = <toml::de::Error as serde::de::Error>::custom("not an array of tables");
        return Err(EntryError::Value(e));
    };
    T::deserialize(ValueDeserializer::from(item)).map_err(EntryError::Value)
}

/// The parts of a document that are not entries, as one document, with where each came
/// from.
#[derive(Debug, Default)]
pub struct Rest {
    /// The document.
    pub text: String,
    /// Where each part starts, in `text` and in the whole document.
    starts: Vec<(usize, usize)>,
}

impl Rest {
    /// Appends the part at `range` of `document`.
    pub fn push(&mut self, document: &str, range: Range<usize>) {
        self.starts.push((self.text.len(), range.start));
        self.text.push_str(&document[range]);
    }

    /// Where `offset` of [`Rest::text`] lies in the whole document.
    pub fn origin(&self, offset: usize) -> usize {
        let i = self.starts.partition_point(|&(rest, _)| rest <= offset);
        match i.checked_sub(1).map(|i| self.starts[i]) {
            Some((rest, whole)) => whole + offset - rest,
            None => offset,
        }
    }
}

/// Lines and columns of a document, counted forwards from the last position asked for:
/// positions asked in order cost one pass over the document in all.
pub struct Lines<'t> {
    text: &'t str,
    /// The position last asked for, its line (from 0) and where that line starts.
    at: usize,
    line: usize,
    line_start: usize,
}

impl<'t> Lines<'t> {
    /// Counts in `text`.
    pub fn new(text: &'t str) -> Lines<'t> {
        Lines {
            text,
            at: 0,
            line: 0,
            line_start: 0,
        }
    }

    /// A syntax error at `offset` of the document, shown as the `toml` crate shows it: the
    /// line and column, the line itself with a caret under the column, and `message`.
    pub fn syntax_error(&mut self, offset: usize, message: &str) -> String {
        let offset = offset.min(self.text.len());
        if offset < self.at {
            *self = Lines::new(self.text);
        }
        let passed = &self.text.as_bytes()[self.at..offset];
        if let Some(last) = passed.iter().rposition(|&b| b == b'\n') {
            self.line += passed.iter().filter(|&&b| b == b'\n').count();
            self.line_start = self.at + last + 1;
        }
        self.at = offset;
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |e| offset + e);
        let content = self.text[self.line_start..line_end].trim_end_matches('\r');
        let column = self.text[self.line_start..offset].chars().count();
        let number = (self.line + 1).to_string();
        let gutter = " ".repeat(number.len());
        format!(
            "TOML parse error at line {number}, column {}\n{gutter} |\n{number} | {content}\n{gutter} | {}^\n{}",
            column + 1,
            " ".repeat(column),
            message.trim_end()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// The parts of `text`, entries of `device` and `computation` apart.
    fn parts_of(text: &str) -> Vec<(Option<&'static str>, &str)> {
        (Parts::new(text, &["device", "computation"]))
            .map(|p| (p.entry, &text[p.range]))
            .collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        name: String,
        #[serde(default)]
        objects: Vec<Object>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Object {
        id: String,
    }

    #[test]
    fn headers_start_parts_and_an_entry_keeps_its_sub_tables() {
        let text = "# top\nseed = 1\n[ac]\nlisten = \"[[device]]\"\n\n[[device]]\nname = \"a\"\n\
                    [[computation]]\nname = \"c\"\n[[computation.objects]]\nid = \"x\"\n\
                    [ac.hello_ms]\nmin = 1\n[[ \"device\" ]] # quoted\nname = \"b\"\n";
        let parts = parts_of(text);
        assert_eq!(
            parts,
            [
                (None, "# top\nseed = 1\n"),
                (None, "[ac]\nlisten = \"[[device]]\"\n\n"),
                (Some("device"), "[[device]]\nname = \"a\"\n"),
                (
                    Some("computation"),
                    "[[computation]]\nname = \"c\"\n[[computation.objects]]\nid = \"x\"\n"
                ),
                (None, "[ac.hello_ms]\nmin = 1\n"),
                (Some("device"), "[[ \"device\" ]] # quoted\nname = \"b\"\n"),
            ]
        );
        let c: Entry = entry(parts[3].1).unwrap();
        assert_eq!(c.objects, [Object { id: "x".into() }]);
        let b: Entry = entry(parts[5].1).unwrap();
        assert_eq!(b.name, "b");
    }

    #[test]
    fn brackets_in_values_strings_and_other_tables_start_no_entry() {
        let text = "[ac]\nlist = [\n[1],\n[2]]\ntext = '''\n[[device]]\n'''\n[[devices]]\n\
                    [device]\n[[device.x]]\n";
        let parts = parts_of(text);
        assert_eq!(
            parts,
            [
                (
                    None,
                    "[ac]\nlist = [\n[1],\n[2]]\ntext = '''\n[[device]]\n'''\n"
                ),
                (None, "[[devices]]\n"),
                (None, "[device]\n"),
                (None, "[[device.x]]\n"),
            ]
        );
    }

    #[test]
    fn an_entry_names_its_bad_key_and_a_syntax_error_its_line() {
        let e = entry::<Entry>("[[device]]\nname = 3\n").unwrap_err();
        let EntryError::Value(e) = e else {
            panic!("{e:?}")
        };
        assert!(e.to_string().contains("in `name`"), "{e}");
        let text = "[ac]\n[[device]]\nname = \"a\nx = 1\n";
        let part = &parts_of(text)[1];
        let EntryError::Syntax(e) = entry::<Entry>(part.1).unwrap_err() else {
            panic!()
        };
        let at = text.find("[[device]]").unwrap() + e.span().unwrap().start;
        let shown = Lines::new(text).syntax_error(at, e.message());
        assert!(
            shown.starts_with("TOML parse error at line 3, column 10"),
            "{shown}"
        );
        assert!(shown.contains("3 | name = \"a\n"), "{shown}");
    }

    #[test]
    fn the_rest_maps_its_offsets_back_to_the_document() {
        let doc = "[ac]\na = 1\n[[device]]\nname = \"x\"\n[status]\nb = 2\n";
        let mut rest = Rest::default();
        for p in Parts::new(doc, &["device"]).filter(|p| p.entry.is_none()) {
            rest.push(doc, p.range);
        }
        assert_eq!(rest.text, "[ac]\na = 1\n[status]\nb = 2\n");
        let b = rest.text.find('b').unwrap();
        assert_eq!(rest.origin(b), doc.find('b').unwrap());
        assert_eq!(rest.origin(1), 1);
        let mut lines = Lines::new(doc);
        assert!(lines
            .syntax_error(doc.find('b').unwrap(), "m")
            .contains("line 6, column 1"));
        assert!(lines.syntax_error(5, "m").contains("line 2, column 1"));
    }
}
