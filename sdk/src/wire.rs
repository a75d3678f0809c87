//! Forge wire helpers shared by the adapters: HTTP status to
//! [`ForgeError`], rate limits, `Link` pagination, page cursors, the
//! repository list in GitHub's shape and the date format GitHub puts in
//! `GitHub-Authentication-Token-Expiration`.
//!
//! Everything here is a pure function of its input (the clock is a
//! parameter), so it is tested on the host target with hostile input.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::http::Response;
use crate::{Error, ForgeError, RateLimit, Repository, RepositoryPage};

/// Now, in Unix seconds (WASI clocks inside a plugin). A clock before 1970
/// reads as 0.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The wait when a forge rate-limits without saying for how long: GitHub
/// asks for "at least one minute" when a secondary limit names no wait
/// (docs: rest/using-the-rest-api/rate-limits-for-the-rest-api), and the
/// same is a sane floor for any forge.
pub const DEFAULT_RETRY_AFTER: u32 = 60;

/// The forge error for a non-2xx answer: 401 unauthorized, 403 forbidden
/// (or rate-limited when the headers or the message say so), 404
/// not-found, 429 rate-limited, anything else upstream. `what` names the
/// call, e.g. `GET /api/v1/user → 401`; `message` is the forge's own text,
/// if any.
///
/// Every shape GitHub documents is a rate limit, on 403 as on 429: the
/// primary limit (`x-ratelimit-remaining: 0`), a secondary limit with
/// `retry-after`, and a secondary limit with only its message and requests
/// left. The wait is `retry-after`; else, with no requests left, the reset
/// time less now; else [`DEFAULT_RETRY_AFTER`].
pub fn status_error(
    status: u16,
    headers: &[(String, String)],
    what: &str,
    message: Option<&str>,
    now: i64,
) -> ForgeError {
    let text = match message {
        Some(m) => format!("{what}: {m}"),
        None => what.to_owned(),
    };
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    // GitHub's `x-ratelimit-*`, GitLab's `RateLimit-*`.
    let exhausted = |prefix: &str| header(&format!("{prefix}remaining")) == Some("0");
    let limited = status == 429
        || (status == 403
            && (exhausted("x-ratelimit-")
                || exhausted("ratelimit-")
                || header("retry-after").is_some()
                || message.is_some_and(says_rate_limited)));
    if limited {
        let reset = |prefix: &str| {
            // A reset is the primary window's end: it says when to retry
            // only once that window is spent (a secondary limit leaves
            // requests, and the hourly reset would be far too long).
            let spent = exhausted(prefix) || header(&format!("{prefix}remaining")).is_none();
            header(&format!("{prefix}reset"))
                .filter(|_| spent)
                .and_then(|reset| reset_seconds(reset, now))
        };
        let retry_after = header("retry-after")
            .and_then(retry_after_seconds)
            .or_else(|| reset("x-ratelimit-"))
            .or_else(|| reset("ratelimit-"))
            .unwrap_or(DEFAULT_RETRY_AFTER);
        return ForgeError::RateLimited(RateLimit {
            retry_after: Some(retry_after),
            message: text,
        });
    }
    match status {
        401 => ForgeError::Unauthorized(text),
        403 => ForgeError::Forbidden(text),
        404 => ForgeError::NotFound(text),
        _ => ForgeError::Upstream(text),
    }
}

/// Whether a 403's message is GitHub's rate-limit text: "You have exceeded
/// a secondary rate limit", the older "abuse detection mechanism", or the
/// primary "API rate limit exceeded".
fn says_rate_limited(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("secondary rate limit")
        || m.contains("abuse detection")
        || m.contains("api rate limit exceeded")
}

/// `Retry-After` as seconds. Only the delta-seconds form: forges send it;
/// an HTTP-date (or junk) is `None`. Capped at `u32::MAX`.
pub fn retry_after_seconds(value: &str) -> Option<u32> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u32>().unwrap_or(u32::MAX))
}

/// A rate-limit reset, which GitHub sends as Unix seconds and GitLab's
/// `RateLimit-Reset` too, as seconds from `now` (0 when it has passed).
fn reset_seconds(reset: &str, now: i64) -> Option<u32> {
    let reset: i64 = reset.trim().parse().ok()?;
    let wait = reset.saturating_sub(now).max(0);
    Some(u32::try_from(wait).unwrap_or(u32::MAX))
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if any. Tolerates
/// spacing, quoted or bare `rel`, several rel values (`rel="next last"`),
/// and ignores malformed entries instead of failing.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let open = rest.find('<')?;
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        // The parameters run until the next `<` (or the end).
        let params_end = after.find('<').unwrap_or(after.len());
        let params = &after[..params_end];
        let is_next = params.split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next && !target.is_empty() {
            return Some(target.to_owned());
        }
        rest = &after[params_end..];
    }
}

/// The `page` query parameter of `url`, if it is a positive integer.
pub fn page_of(url: &str) -> Option<u64> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "page")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .filter(|p| *p > 0)
}

/// The page a `list-repositories` cursor names: none is page 1, else the
/// cursor must be a positive integer (what the adapters hand out), or the
/// call is `host(invalid)`, its message prefixed with the adapter's `label`:
/// the caller passed something no page returned.
pub fn page_cursor(cursor: Option<&str>, label: &str) -> Result<u64, ForgeError> {
    match cursor {
        None => Ok(1),
        Some(c) => c.parse::<u64>().ok().filter(|p| *p > 0).ok_or_else(|| {
            ForgeError::Host(Error::Invalid(format!(
                "{label}: cursor {:?} is not a page number",
                c.chars().take(40).collect::<String>()
            )))
        }),
    }
}

/// A forge's base URL without its trailing slashes, ready for a path.
pub fn web_root(base_url: &str) -> &str {
    base_url.trim_end_matches('/')
}

/// A count header (`X-Total-Count`, `X-Total`) as a number; junk is `None`.
pub fn count(value: Option<&str>) -> Option<u64> {
    value?.trim().parse().ok()
}

/// `YYYY-MM-DD HH:MM:SS UTC` (or with `+HHMM`/`-HHMM` for the zone, or a
/// `T` between date and time) as Unix seconds; anything else is `None`.
/// GitHub's `GitHub-Authentication-Token-Expiration` uses this form.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let rest = rest.strip_prefix([' ', 'T'])?;
    let (time, zone) = rest.split_at_checked(8)?;
    let zone = zone.trim();
    let offset = match zone {
        "" | "UTC" | "Z" | "GMT" | "+0000" | "-0000" => 0,
        _ => {
            let (sign, digits) = zone.split_at_checked(1)?;
            let digits = digits.replace(':', "");
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = hours * 3600 + minutes * 60;
            match sign {
                "+" => secs,
                "-" => -secs,
                _ => return None,
            }
        }
    };
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let ([y, mo, da], [h, mi, s]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    if y.len() != 4 || mo.len() != 2 || da.len() != 2 {
        return None;
    }
    let (year, month, day) = (num(y)?, num(mo)?, num(da)?);
    let (hour, minute, second) = (num(h)?, num(mi)?, num(s)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Splits a scope list as forges send it: comma- and/or space-separated
/// (`repo, user`, `repo,gist`, `read_user api`), empty parts dropped.
pub fn split_scopes(text: &str) -> Vec<String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A repository as GitHub's REST API lists it, and Forgejo's and Gitea's
/// after it: the fields read here.
#[derive(Deserialize)]
struct ListedRepository {
    id: i64,
    full_name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    archived: bool,
    default_branch: Option<String>,
    html_url: String,
    clone_url: String,
}

/// One page of a repository list in GitHub's shape (GitHub's
/// `GET /user/repos`, Forgejo's `GET /api/v1/user/repos`): the next page
/// from `Link` `rel="next"` (its `page` parameter, as text), the total from
/// the count header `total_header` if the forge sends one. An empty
/// default branch (an empty repository) is none.
pub fn link_paged_repositories(
    response: &Response,
    total_header: Option<&str>,
) -> Result<RepositoryPage, ForgeError> {
    let repos: Vec<ListedRepository> = response.parse()?;
    Ok(RepositoryPage {
        repositories: repos
            .into_iter()
            .map(|r| Repository {
                id: r.id.to_string(),
                full_name: r.full_name,
                private: r.private,
                archived: r.archived,
                default_branch: r.default_branch.filter(|b| !b.is_empty()),
                web_url: r.html_url,
                clone_url: r.clone_url,
            })
            .collect(),
        next: response
            .next_link()
            .and_then(|url| page_of(&url))
            .map(|p| p.to_string()),
        total: total_header.and_then(|name| count(response.header(name))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn statuses_map_to_forge_errors() {
        let e = |status, headers: &[(&str, &str)]| {
            status_error(status, &h(headers), "GET /user → x", Some("m"), 1000)
        };
        assert_eq!(
            e(401, &[]),
            ForgeError::Unauthorized("GET /user → x: m".into())
        );
        assert_eq!(
            e(403, &[]),
            ForgeError::Forbidden("GET /user → x: m".into())
        );
        assert_eq!(e(404, &[]), ForgeError::NotFound("GET /user → x: m".into()));
        assert_eq!(e(500, &[]), ForgeError::Upstream("GET /user → x: m".into()));
        assert_eq!(e(302, &[]), ForgeError::Upstream("GET /user → x: m".into()));
        let limited = |err| match err {
            ForgeError::RateLimited(l) => l.retry_after,
            other => panic!("not rate-limited: {other:?}"),
        };
        // No wait given: a minute, as GitHub asks.
        assert_eq!(limited(e(429, &[])), Some(60));
        assert_eq!(limited(e(429, &[("Retry-After", "30")])), Some(30));
        // GitHub's primary limit, on 403 or 429: until the reset.
        for status in [403, 429] {
            assert_eq!(
                limited(e(
                    status,
                    &[
                        ("x-ratelimit-remaining", "0"),
                        ("x-ratelimit-reset", "1060")
                    ]
                )),
                Some(60)
            );
        }
        // A reset in the past: retry now.
        assert_eq!(
            limited(e(
                403,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "5")]
            )),
            Some(0)
        );
        assert_eq!(limited(e(403, &[("retry-after", "7")])), Some(7));
        // GitHub's secondary limits: requests left, the hourly reset is
        // not the wait; retry-after when given, else a minute.
        let left = [
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", "4600"),
        ];
        let secondary = |status, extra: &[(&str, &str)]| {
            let mut headers = left.to_vec();
            headers.extend_from_slice(extra);
            status_error(
                status,
                &h(&headers),
                "GET /user → x",
                Some("You have exceeded a secondary rate limit. Please wait."),
                1000,
            )
        };
        for status in [403, 429] {
            assert_eq!(limited(secondary(status, &[])), Some(60), "{status}");
            assert_eq!(
                limited(secondary(status, &[("retry-after", "30")])),
                Some(30)
            );
        }
        for m in [
            "You have triggered an abuse detection mechanism.",
            "API rate limit exceeded for user ID 1.",
        ] {
            assert!(matches!(
                status_error(403, &[], "x", Some(m), 0),
                ForgeError::RateLimited(_)
            ));
        }
        // GitLab: RateLimit-Reset with RateLimit-Remaining 0.
        assert_eq!(
            limited(e(
                429,
                &[("ratelimit-remaining", "0"), ("ratelimit-reset", "1090")]
            )),
            Some(90)
        );
        // Junk and huge values.
        assert_eq!(limited(e(429, &[("retry-after", "soon")])), Some(60));
        assert_eq!(
            limited(e(429, &[("retry-after", "99999999999999999999")])),
            Some(u32::MAX)
        );
        assert_eq!(
            limited(e(
                429,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "9223372036854775807")
                ]
            )),
            Some(u32::MAX)
        );
        assert_eq!(limited(e(429, &[("x-ratelimit-reset", "-1e9")])), Some(60));
        // 403 with requests left and no rate-limit text is a permission problem.
        assert!(matches!(
            e(403, &[("x-ratelimit-remaining", "12")]),
            ForgeError::Forbidden(_)
        ));
        assert!(matches!(
            status_error(
                403,
                &[],
                "x",
                Some("Resource not accessible by integration"),
                0
            ),
            ForgeError::Forbidden(_)
        ));
        assert_eq!(
            status_error(502, &[], "GET / → 502", None, 0),
            ForgeError::Upstream("GET / → 502".into())
        );
    }

    #[test]
    fn retry_after_is_seconds_only() {
        assert_eq!(retry_after_seconds(" 12 "), Some(12));
        assert_eq!(retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after_seconds("-3"), None);
        assert_eq!(retry_after_seconds(""), None);
    }

    #[test]
    fn next_links_are_found_and_junk_is_ignored() {
        let gh = r#"<https://api.github.com/user/repos?page=2&per_page=100>; rel="next", <https://api.github.com/user/repos?page=5&per_page=100>; rel="last""#;
        assert_eq!(
            next_link(gh).as_deref(),
            Some("https://api.github.com/user/repos?page=2&per_page=100")
        );
        let last_first = r#"<https://f/x?page=9>; rel="last",<https://f/x?page=3>;rel=next"#;
        assert_eq!(next_link(last_first).as_deref(), Some("https://f/x?page=3"));
        assert_eq!(next_link(r#"<https://f/x?page=1>; rel="prev first""#), None);
        assert_eq!(
            next_link(r#"<https://f/x?page=2>; rel="next last""#).as_deref(),
            Some("https://f/x?page=2")
        );
        for junk in [
            "",
            "garbage",
            "<",
            "<unterminated; rel=\"next\"",
            "<>; rel=\"next\"",
            "https://f/x?page=2; rel=\"next\"",
            ">; rel=next <",
            "<a>; rel",
            "<a>; rel=\"nextish\"",
        ] {
            assert_eq!(next_link(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn page_numbers_come_from_the_query() {
        assert_eq!(page_of("https://f/x?limit=50&page=3"), Some(3));
        assert_eq!(page_of("https://f/x?page=3#frag"), Some(3));
        assert_eq!(page_of("https://f/x?page=0"), None);
        assert_eq!(page_of("https://f/x?page=-1"), None);
        assert_eq!(page_of("https://f/x?page=99999999999999999999999"), None);
        assert_eq!(page_of("https://f/x?apage=2"), None);
        assert_eq!(page_of("https://f/x"), None);
    }

    #[test]
    fn cursors_are_positive_page_numbers() {
        assert_eq!(page_cursor(None, "f"), Ok(1));
        assert_eq!(page_cursor(Some("4"), "f"), Ok(4));
        for bad in ["0", "-1", "", "x", "1.5", " 2", "18446744073709551616"] {
            assert!(
                matches!(
                    page_cursor(Some(bad), "f"),
                    Err(ForgeError::Host(Error::Invalid(m))) if m.starts_with("f: cursor ")
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn counts_parse_or_are_none() {
        assert_eq!(count(Some(" 42")), Some(42));
        assert_eq!(count(Some("-1")), None);
        assert_eq!(count(Some("lots")), None);
        assert_eq!(count(None), None);
    }

    #[test]
    fn github_expiry_dates_parse() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_datetime("2026-12-02 18:00:00 UTC"),
            Some(1_796_234_400)
        );
        assert_eq!(
            parse_datetime("2024-02-29 00:00:00 UTC"),
            Some(1_709_164_800)
        );
        assert_eq!(
            parse_datetime("2023-06-01 00:00:00 -0700"),
            Some(1_685_602_800)
        );
        assert_eq!(parse_datetime("2023-06-01T07:00:00Z"), Some(1_685_602_800));
        assert_eq!(parse_datetime("1969-12-31 23:59:59 UTC"), Some(-1));
        for bad in [
            "",
            "2026-12-02",
            "2026-13-02 18:00:00 UTC",
            "2023-02-29 00:00:00 UTC",
            "2026-12-02 24:00:00 UTC",
            "2026-12-02 18:00:00 CEST",
            "2026-12-02 18:00:00 +99",
            "26-12-02 18:00:00 UTC",
            "2026-12-02 18:00 UTC",
            "２０２６-12-02 18:00:00 UTC",
            "+026-12-02 18:00:00 UTC",
            "2026-12-02 1a:00:00 UTC",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_split_on_commas_and_spaces() {
        assert_eq!(split_scopes("repo, user"), ["repo", "user"]);
        assert_eq!(split_scopes("repo,gist"), ["repo", "gist"]);
        assert_eq!(split_scopes("read_user api"), ["read_user", "api"]);
        assert!(split_scopes(" , ").is_empty());
    }
}
