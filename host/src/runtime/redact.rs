//! Redaction of secret values from what a plugin prints or is handed back.

use zeroize::Zeroizing;

/// What replaces a redacted value.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Values shorter than this are not redacted: replacing every `1` or `ab`
/// in a log would destroy it, and such values are not secrets worth the
/// name. (Documented in docs/plugins.md.)
pub const MIN_REDACTED_LEN: usize = 4;

/// The secret values seen during one call.
#[derive(Default)]
pub struct Redactor {
    values: Vec<Zeroizing<Vec<u8>>>,
}

impl Redactor {
    /// Remembers `value` so later output is cleaned of it.
    pub fn add(&mut self, value: &[u8]) {
        if value.len() >= MIN_REDACTED_LEN && !self.values.iter().any(|v| v.as_slice() == value) {
            self.values.push(Zeroizing::new(value.to_vec()));
            // Longest first, so a value containing another is replaced whole.
            self.values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `bytes` with every remembered value replaced by [`REDACTED`].
    pub fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for value in &self.values {
            out = replace_all(&out, value, REDACTED);
        }
        out
    }

    /// The same for text.
    pub fn redact_str(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned()
    }
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

/// Escapes control characters so a plugin cannot forge log lines (a `\n`
/// followed by a fake timestamp) or colour an operator's terminal.
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_replaced_wherever_they_occur_longest_first() {
        let mut r = Redactor::default();
        r.add(b"hunter2hunter2");
        r.add(b"hunter2");
        r.add(b"ab");
        assert_eq!(
            r.redact_str("a hunter2hunter2 b hunter2 ab"),
            "a [REDACTED] b [REDACTED] ab"
        );
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }
}
