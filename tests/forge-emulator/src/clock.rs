//! Unix time and the date formats the forges put on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    weekday: usize,
}

// Howard Hinnant's civil_from_days; no date crate needed for three formats.
fn civil(secs: u64) -> Civil {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        // 1970-01-01 was a Thursday; index 0 is Sunday.
        weekday: ((days + 4).rem_euclid(7)) as usize,
    }
}

/// `2026-12-02T18:00:00Z`, the forges' JSON timestamps.
pub(crate) fn iso(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2026-12-02 18:00:00 UTC`, GitHub's `GitHub-Authentication-Token-Expiration`.
pub(crate) fn github_expiration(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `Wed, 02 Dec 2026 18:00:00 GMT`, an HTTP date (GitLab's `RateLimit-ResetTime`).
pub(crate) fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday],
        c.day,
        MONTHS[(c.month as usize + 11) % 12],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Midnight UTC at the start of `YYYY-MM-DD` (GitLab's token expiry dates).
pub(crate) fn date_start(day: &str) -> Option<u64> {
    let mut parts = day.split('-').map(|p| p.parse::<i64>().ok());
    let (Some(Some(y)), Some(Some(m)), Some(Some(d)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        // 2026-12-02 18:00:00 UTC
        let t = 1_796_234_400;
        assert_eq!(github_expiration(t), "2026-12-02 18:00:00 UTC");
        assert_eq!(http_date(t), "Wed, 02 Dec 2026 18:00:00 GMT");
        assert_eq!(iso(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(date_start("2027-06-30"), Some(1_814_313_600));
        assert_eq!(date_start("2000-02-29"), Some(951_782_400));
        assert_eq!(date_start("2027-13-01"), None);
        assert_eq!(date_start("2027-06"), None);
    }
}
