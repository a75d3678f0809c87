//! The template grammar.
//!
//! ```text
//! placeholder := "${SECRET:" reference "}"
//! reference   := name | scope "/" name
//! escape      := "$${SECRET:"          (renders as the literal "${SECRET:")
//! ```
//! Scanning is left to right and the first match wins; every other byte is
//! literal text, so text without `${SECRET:` comes back unchanged.

use std::ops::Range;

use zeroize::Zeroizing;

use crate::crypto::SecretBytes;
use crate::names::{NameError, SecretRef};

const OPEN: &str = "${SECRET:";
/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 1024 * 1024;
/// Most distinct secrets one template may reference.
pub const MAX_PLACEHOLDERS: usize = 1024;
/// No valid reference is longer (scope 32 + ':' + 128, '/', name 128).
const MAX_REFERENCE_LEN: usize = 300;

/// Why a template was refused. Positions are 1-based line and column
/// (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `${SECRET:` without a closing `}`.
    #[error("line {line}, column {column}: `${{SECRET:` is not closed by `}}` (write `$${{SECRET:` for the literal text)")]
    Unterminated {
        /// Line of the `$`.
        line: usize,
        /// Column of the `$`.
        column: usize,
    },
    /// The reference between `${SECRET:` and `}` breaks the name grammar.
    #[error("line {line}, column {column}: {reason}")]
    BadReference {
        /// Line of the `$`.
        line: usize,
        /// Column of the `$`.
        column: usize,
        /// What is wrong with it.
        reason: NameError,
    },
    /// Larger than [`MAX_TEMPLATE_LEN`].
    #[error("the template is {len} bytes; the largest accepted is {MAX_TEMPLATE_LEN}")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// More distinct references than [`MAX_PLACEHOLDERS`].
    #[error("the template references more than {MAX_PLACEHOLDERS} distinct secrets")]
    TooManyPlaceholders,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Range<usize>),
    LiteralOpen,
    Secret(usize),
}

/// A parsed template: literal pieces and placeholders.
#[derive(Debug, Clone)]
pub struct Template<'a> {
    source: &'a str,
    pieces: Vec<Piece>,
    refs: Vec<SecretRef>,
}

/// Parses `source`. Nothing is looked up here.
pub fn parse(source: &str) -> Result<Template<'_>, TemplateError> {
    if source.len() > MAX_TEMPLATE_LEN {
        return Err(TemplateError::TooLarge { len: source.len() });
    }
    let mut pieces = Vec::new();
    let mut refs: Vec<SecretRef> = Vec::new();
    let mut cursor = 0;
    while let Some(found) = source[cursor..].find(OPEN) {
        let at = cursor + found;
        // `$${SECRET:` is the escape, unless that first `$` was already used.
        if at > cursor && source.as_bytes()[at - 1] == b'$' {
            push_text(&mut pieces, cursor..at - 1);
            pieces.push(Piece::LiteralOpen);
            cursor = at + OPEN.len();
            continue;
        }
        push_text(&mut pieces, cursor..at);
        let start = at + OPEN.len();
        let mut end = source.len().min(start + MAX_REFERENCE_LEN + 1);
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        let window = &source[start..end];
        let close = match window.find(['}', '\n']) {
            Some(i) if window.as_bytes()[i] == b'}' => start + i,
            _ => {
                let (line, column) = position(source, at);
                return Err(TemplateError::Unterminated { line, column });
            }
        };
        let reference = SecretRef::parse(&source[start..close]).map_err(|reason| {
            let (line, column) = position(source, at);
            TemplateError::BadReference {
                line,
                column,
                reason,
            }
        })?;
        let index = match refs.iter().position(|r| *r == reference) {
            Some(i) => i,
            None => {
                if refs.len() == MAX_PLACEHOLDERS {
                    return Err(TemplateError::TooManyPlaceholders);
                }
                refs.push(reference);
                refs.len() - 1
            }
        };
        pieces.push(Piece::Secret(index));
        cursor = close + 1;
    }
    push_text(&mut pieces, cursor..source.len());
    Ok(Template {
        source,
        pieces,
        refs,
    })
}

fn push_text(pieces: &mut Vec<Piece>, range: Range<usize>) {
    if !range.is_empty() {
        pieces.push(Piece::Text(range));
    }
}

fn position(source: &str, byte: usize) -> (usize, usize) {
    let before = &source[..byte];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Template<'_> {
    /// The distinct references, in order of first appearance.
    pub fn refs(&self) -> &[SecretRef] {
        &self.refs
    }

    /// Substitutes `values` (one per [`Template::refs`] entry, same order).
    ///
    /// # Panics
    /// If fewer values than references are given — a caller bug, not input.
    pub fn render(&self, values: &[SecretBytes]) -> Zeroizing<Vec<u8>> {
        assert!(values.len() >= self.refs.len(), "one value per reference");
        let extra: usize = self
            .pieces
            .iter()
            .map(|p| match p {
                Piece::Secret(i) => values[*i].len(),
                _ => 0,
            })
            .sum();
        let mut out = Zeroizing::new(Vec::with_capacity(self.source.len() + extra));
        for piece in &self.pieces {
            match piece {
                Piece::Text(range) => out.extend_from_slice(&self.source.as_bytes()[range.clone()]),
                Piece::LiteralOpen => out.extend_from_slice(OPEN.as_bytes()),
                Piece::Secret(i) => out.extend_from_slice(values[*i].expose()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values(n: usize) -> Vec<SecretBytes> {
        (0..n)
            .map(|i| SecretBytes::new(format!("<v{i}>").into_bytes()))
            .collect()
    }

    fn render(text: &str) -> String {
        let t = parse(text).expect("valid");
        String::from_utf8(t.render(&values(t.refs().len())).to_vec()).expect("utf8")
    }

    #[test]
    fn substitutes_and_dedups() {
        assert_eq!(
            render("a=${SECRET:A} b=${SECRET:B} a=${SECRET:A}"),
            "a=<v0> b=<v1> a=<v0>"
        );
        let t = parse("${SECRET:agent_type:coder/TOKEN}").expect("valid");
        assert_eq!(t.refs()[0].to_string(), "agent_type:coder/TOKEN");
        assert_eq!(render("${SECRET:X}${SECRET:Y}"), "<v0><v1>");
    }

    #[test]
    fn escape_gives_the_literal_opener() {
        assert_eq!(render("$${SECRET:X}"), "${SECRET:X}");
        assert_eq!(render("$$${SECRET:X}"), "$${SECRET:X}");
        assert_eq!(
            render("$$ and ${HOME} and $SECRET:X"),
            "$$ and ${HOME} and $SECRET:X"
        );
        assert_eq!(render("$${SECRET:$${SECRET:"), "${SECRET:${SECRET:");
    }

    #[test]
    fn malformed_placeholders_are_located() {
        assert_eq!(
            parse("ok\n  ${SECRET:X").err(),
            Some(TemplateError::Unterminated { line: 2, column: 3 })
        );
        assert!(matches!(
            parse("${SECRET:X\n}"),
            Err(TemplateError::Unterminated { line: 1, column: 1 })
        ));
        for bad in [
            "${SECRET:}",
            "${SECRET: X}",
            "${SECRET:a/b/c}",
            "${SECRET:nope/X}",
            "é${SECRET:é}",
        ] {
            assert!(
                matches!(parse(bad), Err(TemplateError::BadReference { .. })),
                "{bad}"
            );
        }
        match parse("éé${SECRET:}") {
            Err(TemplateError::BadReference { column, .. }) => assert_eq!(column, 3),
            other => panic!("{other:?}"),
        }
        let far = format!("${{SECRET:{}}}", "A".repeat(10_000));
        assert!(matches!(
            parse(&far),
            Err(TemplateError::Unterminated { .. })
        ));
        // The look-ahead window must not cut a multi-byte character in half.
        for pad in 295..305 {
            let text = format!("${{SECRET:{}é}}", "A".repeat(pad));
            assert!(parse(&text).is_err(), "{pad}");
        }
    }

    #[test]
    fn limits() {
        let big = "x".repeat(MAX_TEMPLATE_LEN + 1);
        assert!(matches!(parse(&big), Err(TemplateError::TooLarge { .. })));
        let many: String = (0..=MAX_PLACEHOLDERS)
            .map(|i| format!("${{SECRET:S{i}}}"))
            .collect();
        assert_eq!(parse(&many).err(), Some(TemplateError::TooManyPlaceholders));
    }

    #[derive(Debug, Clone)]
    enum Part {
        Text(String),
        Escape,
        Secret(String),
    }

    fn part() -> impl Strategy<Value = Part> {
        prop_oneof![
            "[^$]{0,12}".prop_map(Part::Text),
            Just(Part::Escape),
            "[A-Z][A-Z0-9_]{0,6}".prop_map(Part::Secret),
        ]
    }

    proptest! {
        #[test]
        fn long_references_never_panic(pad in 250usize..320, tail in "\\PC{0,4}") {
            let text = format!("${{SECRET:{}{tail}}}", "A".repeat(pad));
            let _ = parse(&text);
        }

        #[test]
        fn never_panics(text in any::<String>()) {
            if let Ok(t) = parse(&text) {
                let _ = t.render(&values(t.refs().len()));
            }
        }

        #[test]
        fn text_without_placeholders_is_unchanged(text in any::<String>()) {
            prop_assume!(!text.contains(OPEN));
            let t = parse(&text).expect("no placeholder, nothing to refuse");
            prop_assert!(t.refs().is_empty());
            let out = t.render(&[]);
            prop_assert_eq!(out.as_slice(), text.as_bytes());
        }

        #[test]
        fn dollar_heavy_text_is_unchanged(text in "[$\\{\\}SECRT:a ]{0,40}") {
            prop_assume!(!text.contains(OPEN));
            prop_assert_eq!(render(&text), text);
        }

        #[test]
        fn assembled_templates_round_trip(parts in proptest::collection::vec(part(), 0..12)) {
            let mut source = String::new();
            let mut expected_refs: Vec<String> = Vec::new();
            for p in &parts {
                match p {
                    Part::Text(t) => source.push_str(t),
                    Part::Escape => source.push_str("$${SECRET:"),
                    Part::Secret(name) => {
                        source.push_str(&format!("${{SECRET:{name}}}"));
                        if !expected_refs.contains(name) {
                            expected_refs.push(name.clone());
                        }
                    }
                }
            }
            let t = parse(&source).expect("assembled from valid parts");
            let refs: Vec<String> = t.refs().iter().map(|r| r.to_string()).collect();
            prop_assert_eq!(&refs, &expected_refs);
            let mut expected = String::new();
            for p in &parts {
                match p {
                    Part::Text(t) => expected.push_str(t),
                    Part::Escape => expected.push_str("${SECRET:"),
                    Part::Secret(name) => {
                        let i = expected_refs.iter().position(|n| n == name).expect("listed");
                        expected.push_str(&format!("<v{i}>"));
                    }
                }
            }
            prop_assert_eq!(render(&source), expected);
        }
    }
}
