//! The token endpoint's grant logic, forge-neutral; each forge maps `Failure` to its wire shape.

use axum::http::HeaderMap;

use crate::params::{client_credentials, Params};
use crate::pkce;
use crate::state::{lock, Grant, Shared, State};
use crate::{Emulator, Flavor};

/// Codes live this long, as on all three forges.
const CODE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);

/// Why a token request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The body was neither a form nor a JSON object.
    Malformed,
    /// A required parameter was absent.
    Missing(&'static str),
    /// `client_id` names no registered app.
    UnknownClient,
    /// The client secret is absent or wrong.
    BadSecret,
    /// The code is unknown, used, expired or another client's.
    BadCode,
    /// `redirect_uri` differs from the one the code (or refresh token) was issued for.
    RedirectMismatch,
    /// The PKCE verifier is absent or does not match the challenge.
    BadVerifier,
    /// The refresh token is unknown or already used.
    BadRefresh,
    /// A grant type other than authorization_code / refresh_token.
    UnsupportedGrant,
}

impl Failure {
    /// Human text for `error_description`.
    pub fn description(self) -> String {
        match self {
            Failure::Malformed => "the request body could not be parsed".into(),
            Failure::Missing(name) => format!("missing required parameter: {name}"),
            Failure::UnknownClient => "client authentication failed: unknown client".into(),
            Failure::BadSecret => "client authentication failed: invalid client secret".into(),
            Failure::BadCode => "the authorization code is invalid, expired or used".into(),
            Failure::RedirectMismatch => "the redirect_uri does not match".into(),
            Failure::BadVerifier => "failed PKCE code challenge".into(),
            Failure::BadRefresh => "the refresh token is invalid or was already used".into(),
            Failure::UnsupportedGrant => {
                "only authorization_code and refresh_token grants are supported".into()
            }
        }
    }
}

/// Runs one token request against the state.
/// A request to any forge's token endpoint, after the configured delay: its
/// body's parameters (a form, or a JSON object), with `query`'s after them
/// when the forge also reads the query string (GitHub), granted or refused.
pub(crate) async fn token_request(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    query: Option<&str>,
) -> Result<Grant, Failure> {
    crate::token_delay(shared).await;
    let mut params = Params::from_body(headers, body).ok_or(Failure::Malformed)?;
    if let Some(query) = query {
        params.0.extend(Params::from_query(query).0);
    }
    token(&mut lock(shared), headers, &params)
}

pub(crate) fn token(
    state: &mut State,
    headers: &HeaderMap,
    params: &Params,
) -> Result<Grant, Failure> {
    let grant_type = match (params.get("grant_type"), state.flavor) {
        (Some(g), _) => g.to_owned(),
        // GitHub's web flow never needed grant_type for code exchange.
        (None, Flavor::Github) => "authorization_code".to_owned(),
        (None, _) => return Err(Failure::Missing("grant_type")),
    };
    if grant_type == "refresh_token" {
        state.refresh_requests += 1;
    }
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(Failure::UnsupportedGrant);
    }
    let (id, secret) = client_credentials(headers, params);
    let id = id.ok_or(Failure::Missing("client_id"))?;
    if id != Emulator::CLIENT_ID {
        return Err(Failure::UnknownClient);
    }
    if secret.as_deref() != Some(Emulator::CLIENT_SECRET) {
        return Err(Failure::BadSecret);
    }
    if grant_type == "refresh_token" {
        refresh(state, params)
    } else {
        exchange(state, params, &id)
    }
}

fn exchange(state: &mut State, params: &Params, client_id: &str) -> Result<Grant, Failure> {
    let code_value = params.get("code").ok_or(Failure::Missing("code"))?;
    let code = state.codes.get(code_value).ok_or(Failure::BadCode)?;
    if code.used || code.client_id != client_id || code.issued.elapsed() > CODE_LIFETIME {
        return Err(Failure::BadCode);
    }
    match (params.get("redirect_uri"), state.flavor) {
        // GitHub falls back to the URI the code was issued for.
        (None, Flavor::Github) => {}
        (Some(uri), _) if uri == code.redirect_uri => {}
        _ => return Err(Failure::RedirectMismatch),
    }
    if let Some(challenge) = &code.challenge {
        let verifier = params.get("code_verifier").ok_or(Failure::BadVerifier)?;
        if !pkce::verifies(challenge, verifier) {
            return Err(Failure::BadVerifier);
        }
    }
    let (login, scopes, redirect_uri) = (
        code.login.clone(),
        code.scopes.clone(),
        code.redirect_uri.clone(),
    );
    if let Some(code) = state.codes.get_mut(code_value) {
        code.used = true;
    }
    Ok(state.issue_grant(&login, scopes, &redirect_uri))
}

fn refresh(state: &mut State, params: &Params) -> Result<Grant, Failure> {
    let value = params
        .get("refresh_token")
        .ok_or(Failure::Missing("refresh_token"))?;
    let old = state.refresh.get(value).ok_or(Failure::BadRefresh)?;
    if old.used {
        return Err(Failure::BadRefresh);
    }
    if state.flavor == Flavor::Gitlab
        && params.get("redirect_uri") != Some(old.redirect_uri.as_str())
    {
        return Err(Failure::RedirectMismatch);
    }
    let (login, scopes, redirect_uri, old_access) = (
        old.login.clone(),
        old.scopes.clone(),
        old.redirect_uri.clone(),
        old.access.clone(),
    );
    if let Some(old) = state.refresh.get_mut(value) {
        old.used = true;
    }
    // Doorkeeper (GitLab) revokes the previous access token on refresh.
    if state.flavor == Flavor::Gitlab {
        state.access.remove(&old_access);
    }
    Ok(state.issue_grant(&login, scopes, &redirect_uri))
}
