//! The host side of the imported WIT interfaces, one file per interface.
//! Errors become the WIT `error` variant here, in one place, and a denial
//! is always written to the access log before the plugin hears of it.

mod log;
mod outbound;
mod secrets;

use super::bindings::forge::keyward::plugin::types;
use super::bindings::GuestError;
use super::call::{CallCtx, CallState};
use super::error::StoreUnavailable;
use crate::audit::{Access, Action};
use crate::vault::VaultError;

/// A store failure as the plugin sees it. A missing or unreadable secret is
/// the plugin's business; anything else (the access log above all) is the
/// host failing, and the call stops rather than carry on unlogged.
pub(crate) fn vault_error(e: VaultError) -> wasmtime::Result<GuestError> {
    match e {
        VaultError::Missing(m) => Ok(GuestError::NotFound(format!(
            "no secret {}",
            m.missing.join(", ")
        ))),
        VaultError::Unreadable(which) => Ok(GuestError::Upstream(format!(
            "the stored value of {which} does not open; ask an operator"
        ))),
        VaultError::Access(e) => Ok(GuestError::Invalid(e.to_string())),
        other => Err(StoreUnavailable::trap(other)),
    }
}

impl types::Host for CallState {}

/// A denial, logged under the plugin's name, then returned to it. Counts
/// against the call's refusal budget (see [`spend`]).
pub(crate) async fn deny<T>(
    call: &mut CallCtx,
    action: Action,
    scope: &str,
    name: &str,
    why: String,
) -> wasmtime::Result<Result<T, GuestError>> {
    spend(call, action, scope, name).await?;
    let access = Access::new(
        call.accessor.to_string(),
        format!("{action:?} refused").to_lowercase(),
    )
    .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
    // The plugin chose the name and most of the reason: both are clipped
    // before they reach the log.
    let (name, why) = (clip_logged(name), clip_logged(&why));
    // If the denial cannot be recorded, the call stops: an unrecorded
    // refusal would hide a misbehaving plugin.
    call.vault
        .record_denied(&access, action, scope, &name, &why)
        .await
        .map_err(|e| StoreUnavailable::trap(format!("access log unavailable: {e}")))?;
    tracing::warn!(plugin = %call.plugin, action = action.as_str(), scope, name = %name, "{why}");
    Ok(Err(GuestError::Denied(why)))
}

/// Malformed input from the plugin (a bad reference, URL or header): not
/// logged row by row, but counted against the refusal budget like a denial.
pub(crate) async fn invalid<T>(
    call: &mut CallCtx,
    why: String,
) -> wasmtime::Result<Result<T, GuestError>> {
    spend(call, Action::Invalid, "plugin", &call.plugin.clone()).await?;
    Ok(Err(GuestError::Invalid(why)))
}

/// A lookup of a granted but missing secret (already logged as `missing`
/// by the store), counted against the refusal budget: a plugin with a
/// wildcard grant could otherwise fill the log with misses.
pub(crate) async fn spend_refusal(
    call: &mut CallCtx,
    action: Action,
    reference: &crate::names::SecretRef,
) -> wasmtime::Result<()> {
    let scope = reference.scope.as_ref().map_or("global", |s| s.as_str());
    spend(call, action, scope, reference.name.as_str()).await
}

/// Takes one refusal from the call's budget (`limits.refusals`). The one
/// that goes past it writes a single summary row and stops the call, so a
/// plugin that asks for what it may not have in a loop costs one row, not
/// millions, and cannot keep the access log's writer busy for others.
async fn spend(
    call: &mut CallCtx,
    action: Action,
    scope: &str,
    name: &str,
) -> wasmtime::Result<()> {
    call.refusals += 1;
    if call.refusals <= call.limits.refusals {
        return Ok(());
    }
    call.refusals_exceeded = true;
    let limit = call.limits.refusals;
    let access = Access::new(call.accessor.to_string(), "refusal limit reached")
        .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
    let detail = format!(
        "plugin {} went past its limit of {limit} refused or invalid host calls in one call; \
         the call was stopped (the last was a refused {})",
        call.plugin,
        action.as_str()
    );
    call.vault
        .record_denied(&access, Action::Limit, scope, &clip_logged(name), &detail)
        .await
        .map_err(|e| StoreUnavailable::trap(format!("access log unavailable: {e}")))?;
    tracing::warn!(plugin = %call.plugin, limit, "{detail}");
    Err(wasmtime::Error::msg(format!(
        "refusal limit of {limit} per call exceeded"
    )))
}

/// `text` cut to [`crate::audit::MAX_LOGGED_TEXT`] bytes at a character
/// boundary: what a plugin may put in one column of the access log.
pub(crate) fn clip_logged(text: &str) -> String {
    crate::audit::clip(text, crate::audit::MAX_LOGGED_TEXT)
}
