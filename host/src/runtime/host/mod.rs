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
        call.accessor.clone(),
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
