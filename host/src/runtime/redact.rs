//! Redaction of secret values from what a plugin prints or is handed back.
//!
//! A value is looked for in every form the host can compute from it: as is,
//! base64 (standard and URL-safe, at each of the three alignments it can
//! take inside a longer encoded text), hex, percent-encoded (RFC 3986 and
//! form style, either case), and JSON-escaped (with `/` escaped or not,
//! with non-ASCII as `\uXXXX` or not). Redaction works on raw bytes, before
//! any lossy decoding, over all forms of all values at once: every match is
//! found and overlapping matches are merged, so no part of a value is left
//! beside a `[REDACTED]`. Transformations the host cannot know (a hash, a
//! reversal, a value split across two responses) are outside what this can
//! catch; docs/plugins.md, "Threat model", says so.

use std::fmt::Write as _;

use base64::Engine as _;
use zeroize::Zeroizing;

/// What replaces a redacted value.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Values shorter than this are not redacted: replacing every `1` or `ab`
/// in a log would destroy it, and such values are not secrets worth the
/// name. (Documented in docs/plugins.md.)
pub const MIN_REDACTED_LEN: usize = 4;

/// Encoded forms shorter than this are not looked for (a base64 core of a
/// short value would match unrelated text).
const MIN_FORM_LEN: usize = 6;

/// The secret values seen during one call, each in every form the host
/// knows how to compute.
#[derive(Default)]
pub struct Redactor {
    forms: Vec<Zeroizing<Vec<u8>>>,
}

impl Redactor {
    /// Remembers `value` (and its encoded forms) so later output is
    /// cleaned of it.
    pub fn add(&mut self, value: &[u8]) {
        if value.len() < MIN_REDACTED_LEN || self.forms.iter().any(|f| f.as_slice() == value) {
            return;
        }
        self.push(Zeroizing::new(value.to_vec()));
        for form in encoded_forms(value) {
            if form.len() >= MIN_FORM_LEN {
                self.push(form);
            }
        }
    }

    fn push(&mut self, form: Zeroizing<Vec<u8>>) {
        if !self.forms.iter().any(|f| **f == *form) {
            self.forms.push(form);
        }
    }

    /// Whether there is anything to redact.
    pub fn is_empty(&self) -> bool {
        self.forms.is_empty()
    }

    /// `bytes` with every occurrence of every form replaced by
    /// [`REDACTED`]; overlapping occurrences become one.
    pub fn redact(&self, bytes: &[u8]) -> Vec<u8> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for form in &self.forms {
            let finder = memchr::memmem::Finder::new(form.as_slice());
            spans.extend(finder.find_iter(bytes).map(|at| (at, at + form.len())));
        }
        if spans.is_empty() {
            return bytes.to_vec();
        }
        spans.sort_unstable();
        let mut out = Vec::with_capacity(bytes.len());
        let mut done = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end)) = spans.next() {
            while let Some(&(next_start, next_end)) = spans.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                spans.next();
            }
            out.extend_from_slice(&bytes[done..start]);
            out.extend_from_slice(REDACTED);
            done = end;
        }
        out.extend_from_slice(&bytes[done..]);
        out
    }

    /// The same for text. Redaction runs on the bytes; only then is the
    /// result decoded (lossily), so decoding cannot hide a value.
    pub fn redact_str(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned()
    }
}

/// Every encoded form of `value` the host looks for (not the value itself).
fn encoded_forms(value: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut forms = Vec::new();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3 {
            forms.push(base64_core(engine, value, shift));
        }
    }
    let hex = Zeroizing::new(hex::encode(value).into_bytes());
    forms.push(Zeroizing::new(hex.to_ascii_uppercase()));
    forms.push(hex);
    for upper in [true, false] {
        forms.push(percent(value, upper, Percent::Rfc3986));
        forms.push(percent(value, upper, Percent::Form));
        forms.push(percent(value, upper, Percent::Every));
    }
    if let Ok(text) = std::str::from_utf8(value) {
        for ascii in [false, true] {
            let escaped = json_escape(text, ascii);
            let slashed = Zeroizing::new(
                String::from_utf8_lossy(&escaped)
                    .replace('/', "\\/")
                    .into_bytes(),
            );
            forms.push(escaped);
            forms.push(slashed);
        }
    }
    forms.retain(|f| f.as_slice() != value);
    forms
}

/// The base64 characters that encode only bytes of `value`, when `value`
/// starts `shift` bytes into a 3-byte group of a longer encoded text: they
/// appear in any encoding of any text that holds `value` at such an offset.
fn base64_core(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    shift: usize,
) -> Zeroizing<Vec<u8>> {
    let mut padded = Zeroizing::new(vec![0u8; shift]);
    padded.extend_from_slice(value);
    let encoded = Zeroizing::new(engine.encode(&*padded).into_bytes());
    // Character c carries bits [6c, 6c + 6): keep those inside the value's
    // bits [8 shift, 8 (shift + len)).
    let first = (8 * shift).div_ceil(6);
    let last = (8 * (shift + value.len())) / 6;
    Zeroizing::new(encoded[first.min(last)..last.min(encoded.len())].to_vec())
}

/// Which bytes a percent-encoding leaves alone.
#[derive(Clone, Copy)]
enum Percent {
    /// RFC 3986 unreserved (`A-Z a-z 0-9 - . _ ~`) stay.
    Rfc3986,
    /// The same, and a space becomes `+` (HTML forms).
    Form,
    /// Every byte is encoded.
    Every,
}

/// `value` percent-encoded for a form body (RFC 3986 unreserved bytes
/// stay, every other byte is `%XX`): how egress puts a secret into an
/// `application/x-www-form-urlencoded` body. The result is one of the forms
/// [`Redactor`] looks for.
pub(crate) fn form_encode(value: &[u8]) -> Zeroizing<Vec<u8>> {
    percent(value, true, Percent::Rfc3986)
}

fn percent(value: &[u8], upper: bool, style: Percent) -> Zeroizing<Vec<u8>> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() * 3));
    for &b in value {
        let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        match style {
            Percent::Rfc3986 | Percent::Form if unreserved => out.push(b),
            Percent::Form if b == b' ' => out.push(b'+'),
            _ => out.extend_from_slice(&[
                b'%',
                digits[usize::from(b >> 4)],
                digits[usize::from(b & 15)],
            ]),
        }
    }
    out
}

/// `text` as inside a JSON string; with `ascii`, every non-ASCII character
/// as `\uXXXX` (surrogate pairs beyond the BMP), as Python's `json.dumps`
/// writes it by default.
fn json_escape(text: &str, ascii: bool) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() + 8));
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Straight into the zeroizing buffer: no temporary
                    // string holds a piece of the value.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    Zeroizing::new(std::mem::take(&mut *out).into_bytes())
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
    fn overlapping_values_leave_no_part_behind() {
        let mut r = Redactor::default();
        r.add(b"abcdef");
        r.add(b"defghi");
        assert_eq!(r.redact_str("x abcdefghi y"), "x [REDACTED] y");
    }

    #[test]
    fn encoded_forms_are_redacted() {
        let secret = "s3cr3t/+=&? \u{e9}\"value";
        let mut r = Redactor::default();
        r.add(secret.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        for prefix in ["", "t", "to", "token "] {
            let text = format!("{prefix}{secret}!");
            for encoded in [b64.encode(&text), url.encode(&text)] {
                let out = r.redact_str(&encoded);
                assert!(out.contains("[REDACTED]"), "{prefix:?}: {encoded} -> {out}");
            }
        }
        let json = serde_json::to_string(secret).expect("json");
        let json = json.trim_matches('"').to_owned();
        let hex_text = hex::encode(secret);
        for encoded in [
            json.clone(),
            json.replace('/', "\\/"),
            hex_text.clone(),
            hex_text.to_uppercase(),
            percent(secret.as_bytes(), true, Percent::Rfc3986)
                .iter()
                .map(|&b| b as char)
                .collect(),
            "s3cr3t%2F%2B%3D%26%3F+%C3%A9%22value".to_owned(),
            "s3cr3t/+=&? \\u00e9\\\"value".to_owned(),
        ] {
            let out = r.redact_str(&format!("<{encoded}>"));
            assert_eq!(out, "<[REDACTED]>", "{encoded}");
        }
    }

    #[test]
    fn redaction_runs_on_bytes_that_are_not_utf8() {
        let secret = [0xff, 0xfe, b'k', b'e', b'y', 0x80];
        let mut r = Redactor::default();
        r.add(&secret);
        let mut text = b"head ".to_vec();
        text.extend_from_slice(&secret);
        text.extend_from_slice(b" tail");
        assert_eq!(r.redact(&text), b"head [REDACTED] tail");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }
}
