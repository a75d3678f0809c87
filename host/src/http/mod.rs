//! The HTTP service. At this stage only `GET /healthz`; the operator API
//! arrives with the HTTP issue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::vault::Vault;

/// Builds the router.
pub fn router(vault: Vault) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(vault)
}

/// 200 `{"status":"ok"}` when the database answers; 503 otherwise.
async fn healthz(State(vault): State<Vault>) -> (StatusCode, Json<Value>) {
    match sqlx::query("SELECT 1").execute(&vault.db().pool).await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(error) => {
            tracing::warn!(%error, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "unavailable", "message": "the database is not answering"}}),
                ),
            )
        }
    }
}
