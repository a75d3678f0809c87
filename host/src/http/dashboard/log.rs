//! `/settings/access-log`: the whole access log, newest first, filtered by
//! accessor, action, outcome, scope, name and day, paged by `seq`; and a
//! verification of the chain on request (it reads every row, so it runs
//! when asked, not on every page view).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::secrets::query;
use super::{csrf_field, html_response, page, q, when, PageError, SignedIn, Submitted};
use crate::audit::chain::{HistoryQuery, LogRow, VerifyReport};
use crate::auth::Session;
use crate::http::error::ApiError;
use crate::http::secrets::QueryResult;
use crate::http::AppState;

/// Rows per page.
const PAGE: i64 = 50;

/// The filters, as the form sends them (an empty field filters nothing).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    accessor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    scope: Option<String>,
    name: Option<String>,
    /// First day shown, `YYYY-MM-DD` (UTC).
    from: Option<String>,
    /// Last day shown, `YYYY-MM-DD` (UTC).
    to: Option<String>,
    before: Option<i64>,
}

/// Unix ms of midnight UTC at the start of `YYYY-MM-DD`.
fn day_start(text: &str) -> Result<i64, PageError> {
    let bad = || {
        PageError::from(ApiError::Invalid(format!(
            "{:?} is not a day: use YYYY-MM-DD",
            crate::text::clip(text, 32)
        )))
    };
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>()) else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400_000)
}

fn filter_of(params: &LogQuery) -> Result<HistoryQuery, PageError> {
    let text = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let day = |v: &Option<String>| text(v).map(|d| day_start(d.trim())).transpose();
    Ok(HistoryQuery {
        before: params.before.filter(|b| *b > 0),
        accessor: text(&params.accessor),
        action: text(&params.action),
        outcome: text(&params.outcome),
        scope: text(&params.scope),
        name: text(&params.name),
        since: day(&params.from)?,
        until: day(&params.to)?.map(|d| d + 86_400_000),
    })
}

/// `GET /settings/access-log`: the filter form, a page of rows and the
/// verify button.
pub async fn log_page(
    SignedIn(session): SignedIn,
    State(state): State<AppState>,
    params: QueryResult<LogQuery>,
) -> Result<Response, PageError> {
    let params = query(params)?;
    let filter = filter_of(&params)?;
    let found = state.vault.search_log(&filter, PAGE).await?;
    let (rows, older) = (found.rows, found.next_before);
    let field = |v: &Option<String>| v.clone().unwrap_or_default();
    let kept = [
        ("accessor", field(&params.accessor)),
        ("action", field(&params.action)),
        ("outcome", field(&params.outcome)),
        ("scope", field(&params.scope)),
        ("name", field(&params.name)),
        ("from", field(&params.from)),
        ("to", field(&params.to)),
    ];
    let filters: String = kept.iter().map(|(k, v)| format!("&{k}={}", q(v))).collect();
    let body = html! {
        (verify_form(&session, None, 0, state.vault.log_stats()))
        section aria-labelledby="rows" {
            h2 id="rows" { "Rows" }
            form method="get" action="/settings/access-log" class="inline filters" {
                @for (key, value) in &kept {
                    label for=(key) { (label_of(key)) }
                    @if *key == "from" || *key == "to" {
                        input id=(key) name=(key) type="date" value=(value);
                    } @else {
                        input id=(key) name=(key) value=(value) autocomplete="off" spellcheck="false";
                    }
                }
                button type="submit" { "Filter" }
            }
            (rows_table(&rows))
            nav aria-label="Access log pages" class="pager" {
                @if filter.before.is_some() {
                    a href=(format!("/settings/access-log?{}", filters.trim_start_matches('&'))) { "Newest" }
                }
                @if let Some(before) = older {
                    a href=(format!("/settings/access-log?before={before}{filters}")) rel="next" { "Older rows" }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("Access log", Some(&session), body),
    ))
}

fn label_of(key: &str) -> &'static str {
    match key {
        "accessor" => "Accessor",
        "action" => "Action",
        "outcome" => "Outcome",
        "scope" => "Scope",
        "name" => "Name",
        "from" => "From (UTC day)",
        _ => "To (UTC day)",
    }
}

fn rows_table(rows: &[LogRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No rows match." }
        } @else {
            table {
                caption class="sr-only" { "Access-log rows, newest first" }
                thead { tr {
                    th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Accessor" }
                    th scope="col" { "Action" } th scope="col" { "Outcome" } th scope="col" { "Secret" }
                    th scope="col" { "Reason" } th scope="col" { "Detail" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            td { (r.seq) } td { (when(r.at)) } td { code { (r.accessor) } }
                            td { (r.action) } td { (r.outcome) } td { code { (r.scope) "/" (r.name) } }
                            td { (r.reason) } td { (r.detail) }
                        }
                    }
                }
            }
        }
    }
}

fn verify_form(
    session: &Session,
    report: Option<&VerifyReport>,
    archived_to: i64,
    stats: &crate::audit::group_commit::Stats,
) -> Markup {
    use std::sync::atomic::Ordering;
    let verified = stats.verified_seq.load(Ordering::Relaxed);
    let broken_at = stats.broken_at.load(Ordering::Relaxed);
    html! {
        section aria-labelledby="chain" {
            h2 id="chain" { "Chain" }
            @if broken_at > 0 {
                p role="alert" { "The background verify found the chain BROKEN at row " (broken_at) " (verified good up to row " (verified) "). Verify now to see why." }
            } @else if verified > 0 {
                p class="help" id="background-verify" { "Verified in the background up to row " (verified) "." }
            }
            @match report {
                Some(VerifyReport::Intact { rows }) => {
                    p class="notice" role="status" {
                        "Verified: " (rows) " rows, chain intact."
                        @if archived_to > 0 {
                            " (The rows after row " (archived_to) "; rows up to it are in archive files: "
                            code { "keyward audit verify --archive FILE…" } " checks them too.)"
                        }
                    }
                }
                Some(VerifyReport::Broken { seq, problem }) => {
                    p role="alert" { "BROKEN at row " (seq) ": " (problem) }
                }
                None => {
                    p class="help" { "Verifying recomputes every row's MAC; on a large log it takes a while." }
                }
            }
            form method="post" action="/settings/access-log/verify" class="inline" {
                (csrf_field(session))
                button type="submit" { "Verify the chain now" }
            }
        }
    }
}

/// The verify form: no fields.
#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /settings/access-log/verify`: recomputes the chain and shows the
/// verdict with the newest rows.
pub async fn log_verify(
    State(state): State<AppState>,
    Submitted { session, .. }: Submitted<NoFields>,
) -> Result<Response, PageError> {
    let report = state.vault.verify_log().await?;
    let archived_to = match state.vault.archive_mark().await? {
        crate::vault::Mark::Archived(mark) => mark.seq(),
        // A forged mark is the verdict's business (BROKEN).
        _ => 0,
    };
    let rows = state
        .vault
        .search_log(&HistoryQuery::default(), PAGE)
        .await?
        .rows;
    let status = match report {
        VerifyReport::Intact { .. } => StatusCode::OK,
        // The page still answers: the operator needs to read the verdict.
        VerifyReport::Broken { .. } => StatusCode::CONFLICT,
    };
    let body = html! {
        (verify_form(&session, Some(&report), archived_to, state.vault.log_stats()))
        section aria-labelledby="rows" {
            h2 id="rows" { "Newest rows" }
            (rows_table(&rows))
            p { a href="/settings/access-log" { "Filter the log" } }
        }
    };
    Ok(html_response(
        status,
        page("Access log", Some(&session), body),
    ))
}

#[cfg(test)]
mod tests {
    use super::day_start;

    #[test]
    fn days_are_utc_midnights() {
        assert_eq!(day_start("1970-01-01").ok(), Some(0));
        assert_eq!(day_start("2026-12-07").ok(), Some(1_796_601_600_000));
        assert_eq!(day_start("2000-03-01").ok(), Some(951_868_800_000));
        for bad in [
            "",
            "2026-13-01",
            "2026-1",
            "x-y-z",
            "1969-12-31",
            "2026-12-07T00",
        ] {
            assert!(day_start(bad).is_err(), "{bad}");
        }
    }
}
