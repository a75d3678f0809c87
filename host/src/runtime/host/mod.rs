//! The host side of the imported WIT interfaces, one file per interface.
//! Errors become the WIT `error` variant here, in one place, and a denial
//! is always written to the access log before the plugin hears of it.

mod log;
mod outbound;
mod secrets;

use super::bindings::forge::keyward::plugin::types;
use super::bindings::GuestError;
use super::call::{CallCtx, CallState};
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
        other => Err(wasmtime::Error::msg(format!(
            "secret store failed: {other}"
        ))),
    }
}

impl types::Host for CallState {}

/// A denial, logged under the plugin's name, then returned to it.
pub(crate) async fn deny(
    call: &CallCtx,
    action: Action,
    scope: &str,
    name: &str,
    why: String,
) -> wasmtime::Result<GuestError> {
    let access = Access::new(
        call.accessor.to_string(),
        format!("{action:?} refused").to_lowercase(),
    )
    .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
    // If the denial cannot be recorded, the call stops: an unrecorded
    // refusal would hide a misbehaving plugin.
    call.vault
        .record_denied(&access, action, scope, name, &why)
        .await
        .map_err(|e| wasmtime::Error::msg(format!("access log unavailable: {e}")))?;
    tracing::warn!(plugin = %call.plugin, action = action.as_str(), scope, name, "{why}");
    Ok(GuestError::Denied(why))
}
