//! GitLab's two ways to describe the token of a request: Doorkeeper's
//! `/oauth/token/info`, which knows only OAuth tokens, and
//! `/api/v4/personal_access_tokens/self`, which knows only personal,
//! project and group access tokens. An adapter that asks the wrong one gets
//! a 401 — the real GitLab behaviour the emulator once papered over (#25).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::clock::{iso, unix_now};
use crate::fixture;
use crate::gitlab::authenticate;
use crate::params::authorization_token;
use crate::state::{lock, Shared, TokenProblem};
use crate::Emulator;

/// Doorkeeper's 401 for a token it cannot use, with its own wording.
fn invalid_token(description: &str) -> Response {
    let mut f = fixture::load("gitlab/oauth-invalid-token");
    f.body["error_description"] = description.into();
    f.into_response()
}

/// `GET /oauth/token/info`: OAuth access tokens only. A personal, project
/// or group access token is unknown to Doorkeeper, hence `invalid_token`.
pub(crate) async fn token_info(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let state = lock(&shared);
    let Some(token) = authorization_token(&headers, &["bearer"]) else {
        return invalid_token("The access token is invalid");
    };
    let access = match state.check_access(&token) {
        Ok(a) if !a.personal => a,
        Ok(_) | Err(TokenProblem::Unknown) => return invalid_token("The access token is invalid"),
        Err(TokenProblem::Expired) => return invalid_token("The access token expired"),
    };
    let expires_in = access.expires_at.map(|at| at.saturating_sub(unix_now()));
    let mut info = fixture::load("gitlab/oauth-token-info");
    info.body["resource_owner_id"] = state.user_id(&access.login).into();
    info.body["scope"] = access.scopes.clone().into();
    info.body["expires_in"] = expires_in.into();
    info.body["application"]["uid"] = Emulator::CLIENT_ID.into();
    info.body["created_at"] = access.created_at.into();
    // The deprecated aliases GitLab still sends (doc/api/oauth2.md).
    info.body["scopes"] = access.scopes.clone().into();
    info.body["expires_in_seconds"] = expires_in.into();
    info.into_response()
}

/// `GET /api/v4/personal_access_tokens/self`: the record of the
/// personal, project or group access token that authenticates the call.
pub(crate) async fn personal_access_token_self(
    State(shared): State<Shared>,
    headers: HeaderMap,
) -> Response {
    let state = lock(&shared);
    let access = match authenticate(&state, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(pat) = access.pat.clone() else {
        // Not sourced: GitLab's docs do not say what an OAuth token gets
        // here; the emulator answers GitLab's generic 404 (not_found!).
        let mut f = fixture::load("gitlab/api-error");
        f.status = StatusCode::NOT_FOUND.as_u16();
        f.body["message"] = "404 Not Found".into();
        return f.into_response();
    };
    let mut f = fixture::load("gitlab/personal-access-token-self");
    f.body["id"] = pat.id.into();
    f.body["name"] = pat.name.into();
    f.body["description"] = "".into();
    f.body["scopes"] = access.scopes.clone().into();
    f.body["user_id"] = state.user_id(&access.login).into();
    f.body["created_at"] = iso(access.created_at).into();
    f.body["last_used_at"] = iso(unix_now()).into();
    f.body["expires_at"] = pat.expires_on.into();
    f.into_response()
}
