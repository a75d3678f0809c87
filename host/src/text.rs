//! Text helpers every layer shares.

/// At most `max` bytes of `text`, cut at a character boundary, with `…`
/// marking a cut (counted within `max`). The one way untrusted or unbounded
/// text is shortened before it is echoed in an error, logged or stored, so
/// one bad input cannot flood a log, a column or an answer.
pub fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clips_within_the_bound_at_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghij", 10), "abcdefghij");
        let cut = clip("abcdefghijk", 10);
        assert_eq!(cut, "abcdefg…");
        assert!(cut.len() <= 10);
        let wide = "é".repeat(20);
        let cut = clip(&wide, 9);
        assert!(cut.len() <= 9 && cut.ends_with('…'), "{cut}");
        assert_eq!(clip("abc", 0), "…");
    }
}
