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

/// `90d`, `12h`, `30m`, `3600s`: a whole number and one unit (a lifetime,
/// a grace period, a retention window).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration: a whole number and s, m, h or d (e.g. 90d)");
    // The unit is the last character, whatever its width.
    let (split, _) = text.char_indices().last().ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = number.checked_mul(unit_secs).ok_or_else(bad)?;
    Ok(std::time::Duration::from_secs(secs))
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
