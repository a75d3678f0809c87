//! `/access-log` (operator): the whole log's newest rows, the rows after a
//! seq (to follow it), and a verify of the chain run by the server, for
//! the remote CLI (`keyward audit tail|verify` with `KEYWARD_ADDR`). A
//! secret's own history is `/secrets/{name}/access-log`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;

use super::auth::Operator;
use super::body::Body;
use super::error::ApiError;
use super::secrets::{query, QueryResult};
use super::AppState;
use crate::audit::chain::LogRow;
use crate::audit::checkpoint::SignedCheckpoint;
use crate::vault::LogVerdict;

/// Rows of one answer, at most.
pub const MAX_ROWS: i64 = 1000;
const DEFAULT_TAIL: i64 = 20;

/// `GET /access-log` query.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailParams {
    /// Rows after this seq, oldest first (to follow the log).
    after: Option<i64>,
    /// How many rows (1–1000; default 20 newest, or 1000 after `after`).
    limit: Option<i64>,
}

/// `GET /access-log[?after&limit]` (operator): without `after`, the newest
/// `limit` rows; with it, the rows after that seq. Oldest first either way,
/// with the chain head's seq so a follower knows where the log ends.
pub async fn tail(
    Operator(_caller): Operator,
    State(state): State<AppState>,
    q: QueryResult<TailParams>,
) -> Result<Json<TailPage>, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(if q.after.is_some() {
        MAX_ROWS
    } else {
        DEFAULT_TAIL
    });
    if !(1..=MAX_ROWS).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit must be 1–{MAX_ROWS}")));
    }
    let rows: Vec<LogRow> = match q.after {
        Some(after) if after < 0 => {
            return Err(ApiError::Invalid("after must be a seq, 0 or more".into()))
        }
        Some(after) => state.vault.log_after(after, limit).await?,
        None => state.vault.log_tail(limit).await?,
    };
    let head_seq = state.vault.log_head().await?.seq;
    Ok(Json(TailPage { rows, head_seq }))
}

/// What `GET /access-log` answers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct TailPage {
    /// The rows, oldest first.
    pub rows: Vec<LogRow>,
    /// The chain head's seq: where the log ends now.
    pub head_seq: i64,
}

/// `POST /access-log/verify` body.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Signed checkpoints (as `keyward audit checkpoint` prints them) the
    /// log must still reach.
    #[serde(default)]
    checkpoints: Vec<String>,
}

/// The most checkpoints one verify may check.
pub const MAX_CHECKPOINTS: usize = 100;

/// `POST /access-log/verify` (operator): the server recomputes every MAC
/// of the log and checks that it still reaches each checkpoint given.
/// 200 whatever the verdict (`intact` says it); 400 for a checkpoint that
/// is malformed, modified or another store's, before the log is read.
/// This trusts the server: for a verify that does not, run `keyward audit
/// verify` where the database is.
pub async fn verify(
    Operator(_caller): Operator,
    State(state): State<AppState>,
    Body(req): Body<VerifyRequest>,
) -> Result<Json<LogVerdict>, ApiError> {
    if req.checkpoints.len() > MAX_CHECKPOINTS {
        return Err(ApiError::Invalid(format!(
            "at most {MAX_CHECKPOINTS} checkpoints per verify"
        )));
    }
    let mut checkpoints = Vec::with_capacity(req.checkpoints.len());
    for (i, line) in req.checkpoints.iter().enumerate() {
        let checkpoint = SignedCheckpoint::parse(line)
            .and_then(|signed| state.vault.check_checkpoint(&signed))
            .map_err(|e| ApiError::Invalid(format!("checkpoint {} is refused: {e}", i + 1)))?;
        checkpoints.push(checkpoint);
    }
    Ok(Json(state.vault.verify_against(&checkpoints).await?))
}
