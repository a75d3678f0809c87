//! `keyward:plugin/secrets`: `exists` and `reveal`, for granted references only.

use crate::audit::{Access, Action};
use crate::names::SecretRef;
use crate::resolve::Context;
use crate::runtime::bindings::forge::keyward::plugin::secrets::Host;
use crate::runtime::bindings::GuestError;
use crate::runtime::call::{CallCtx, CallState};
use crate::runtime::error::clip;
use crate::vault::VaultError;

use super::vault_error;

/// Parses and checks a reference against the call's grants; a refusal is
/// logged.
async fn granted(
    call: &CallCtx,
    reference: &str,
    action: Action,
) -> wasmtime::Result<Result<SecretRef, GuestError>> {
    let parsed = match SecretRef::parse(reference) {
        Ok(r) => r,
        Err(e) => return Ok(Err(GuestError::Invalid(e.to_string()))),
    };
    // A value the host bound for this call (an operator's OAuth token) may
    // travel in `${SECRET:…}` at egress, but is never handed to the plugin.
    let bound = call.bound.iter().any(|(b, _)| *b == parsed);
    if call.grants.secret(&parsed) && !bound {
        return Ok(Ok(parsed));
    }
    let scope = parsed.scope.as_ref().map_or("global", |s| s.as_str());
    let why = format!("{} is not granted to plugin {}", parsed, call.plugin);
    Ok(Err(super::deny(
        call,
        action,
        scope,
        parsed.name.as_str(),
        why,
    )
    .await?))
}

impl Host for CallState {
    async fn exists(&mut self, reference: String) -> wasmtime::Result<Result<bool, GuestError>> {
        let reference = match granted(&self.call, &reference, Action::Exists).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let access = Access::new(self.call.accessor.to_string(), "exists check")
            .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
        match self
            .call
            .vault
            .reveal(&reference, &Context::default(), &access, Action::Exists)
            .await
        {
            Ok(_) => Ok(Ok(true)),
            Err(VaultError::Missing(_)) => Ok(Ok(false)),
            Err(e) => Ok(Err(vault_error(e)?)),
        }
    }

    async fn reveal(
        &mut self,
        reference: String,
        reason: String,
    ) -> wasmtime::Result<Result<Vec<u8>, GuestError>> {
        let reference = match granted(&self.call, &reference, Action::Reveal).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let access = match Access::new(self.call.accessor.to_string(), clip(&reason)) {
            Ok(a) => a,
            Err(e) => return Ok(Err(GuestError::Invalid(e.to_string()))),
        };
        match self
            .call
            .vault
            .reveal(&reference, &Context::default(), &access, Action::Reveal)
            .await
        {
            Ok((_, value)) => {
                self.call.redactor.add(value.expose());
                Ok(Ok(value.expose().to_vec()))
            }
            Err(e) => Ok(Err(vault_error(e)?)),
        }
    }
}
