//! Name patterns of device and computation groups: a text with one placeholder, `{}` (the
//! member's number) or `{:0N}` (the number zero-padded to N digits, N from 1 to 9), that
//! stands for each member's number: `load-{:06}` names `load-000000`, `load-000001`, …

use std::fmt::Write;

/// A name pattern: the text around its one placeholder, and the placeholder's width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    prefix: String,
    width: usize,
    suffix: String,
}

/// A text of a group: one placeholder or none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// The same text for every member.
    Fixed(String),
    /// A text of its own for every member.
    Pattern(Pattern),
}

impl Text {
    /// Reads `text`: a pattern if it has a placeholder, the text itself otherwise; an
    /// error for a brace that is not part of one placeholder.
    pub fn parse(text: String) -> Result<Text, String> {
        let Some(open) = text.find(['{', '}']) else {
            return Ok(Text::Fixed(text));
        };
        let bad = || {
            format!("{text:?}: a brace must belong to one placeholder, `{{}}` or `{{:0N}}` (N from 1 to 9)")
        };
        let close = open + text[open..].find('}').ok_or_else(bad)?;
        let width = match &text.as_bytes()[open..=close] {
            b"{}" => 0,
            [b'{', b':', b'0', d @ b'1'..=b'9', b'}'] => usize::from(d - b'0'),
            _ => return Err(bad()),
        };
        let suffix = &text[close + 1..];
        if suffix.contains(['{', '}']) {
            return Err(format!(
                "{text:?}: only one placeholder (`{{}}` or `{{:0N}}`) per name"
            ));
        }
        Ok(Text::Pattern(Pattern {
            prefix: text[..open].into(),
            width,
            suffix: suffix.into(),
        }))
    }

    /// The text of member `n`.
    pub fn expand(&self, n: u64) -> String {
        match self {
            Text::Fixed(text) => text.clone(),
            Text::Pattern(p) => p.expand(n),
        }
    }
}

impl Pattern {
    /// The pattern of `prefix`, the number padded to `width` digits (0 or 1 to 9: not
    /// padded), then `suffix`; neither may hold a brace.
    pub fn new(prefix: &str, width: usize, suffix: &str) -> Pattern {
        Pattern {
            prefix: prefix.into(),
            width,
            suffix: suffix.into(),
        }
    }

    /// Reads `text`, which must hold exactly one placeholder.
    pub fn parse(text: String) -> Result<Pattern, String> {
        match Text::parse(text)? {
            Text::Pattern(p) => Ok(p),
            Text::Fixed(text) => Err(format!(
                "{text:?} has no placeholder: give one, `{{}}` or `{{:0N}}`, for the member's number"
            )),
        }
    }

    /// The name of member `n`, allocated to its exact length.
    pub fn expand(&self, n: u64) -> String {
        let digits = n.checked_ilog10().map_or(1, |d| d as usize + 1);
        let len = self.prefix.len() + digits.max(self.width) + self.suffix.len();
        let mut name = String::with_capacity(len);
        name.push_str(&self.prefix);
        // Writing to a `String` cannot fail.
        let _ = write!(name, "{n:0width$}", width = self.width);
        name.push_str(&self.suffix);
        name
    }
}

/// The pattern as the configuration writes it: `load-{:06}`.
impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.width {
            0 => write!(f, "{}{{}}{}", self.prefix, self.suffix),
            w => write!(f, "{}{{:0{w}}}{}", self.prefix, self.suffix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text.into()).unwrap()
    }

    #[test]
    fn a_placeholder_stands_for_the_number_padded_or_not() {
        assert_eq!(pattern("load-{:06}").expand(42), "load-000042");
        assert_eq!(pattern("load-{:06}").expand(1_234_567), "load-1234567");
        assert_eq!(pattern("{}").expand(0), "0");
        assert_eq!(pattern("s{}-x").expand(907), "s907-x");
        for text in ["load-{:06}", "{}", "s{}-x"] {
            assert_eq!(pattern(text).to_string(), text);
        }
        assert_eq!(Pattern::new("c-", 3, ".v"), pattern("c-{:03}.v"));
        let p = pattern("c-{:03}.v");
        let name = p.expand(5);
        assert_eq!((name.as_str(), name.capacity()), ("c-005.v", 7));
    }

    #[test]
    fn a_text_without_braces_is_the_same_for_every_member() {
        let t = Text::parse("counter.bin".into()).unwrap();
        assert_eq!(t, Text::Fixed("counter.bin".into()));
        assert_eq!(t.expand(7), "counter.bin");
        assert_eq!(
            Text::parse("c-{:02}".into()).unwrap().expand(7),
            "c-07".to_string()
        );
    }

    #[test]
    fn every_malformed_placeholder_is_refused() {
        for bad in [
            "a{", "a}", "a{x}", "a{:6}", "a{:00}", "a{:010}", "a{:0}", "{:0a}", "a}{",
        ] {
            let e = Text::parse(bad.into()).unwrap_err();
            assert!(
                e.contains("a brace must belong to one placeholder"),
                "{bad}: {e}"
            );
        }
        let two = Text::parse("a{}b{:02}".into()).unwrap_err();
        assert!(two.contains("only one placeholder"), "{two}");
        let none = Pattern::parse("load".into()).unwrap_err();
        assert!(none.contains("has no placeholder"), "{none}");
    }
}
