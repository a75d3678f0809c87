//! `keyward:plugin/secrets`: `exists` and `reveal`, for granted references only.

use crate::audit::{Access, Action};
use crate::names::SecretRef;
use crate::resolve::Context;
use crate::runtime::bindings::forge::keyward::plugin::secrets::Host;
use crate::runtime::bindings::GuestError;
use crate::runtime::call::{CallCtx, CallState};
use crate::runtime::grants::Use;
use crate::vault::VaultError;

use super::vault_error;

/// Parses and checks a reference against the call's grants; a refusal is
/// logged. `exists` needs any grant (it reads no value); `reveal` needs a
/// reveal grant: an egress-only one (everything the host grants for one
/// call, and the manifest's `use = [...]`) is refused.
async fn granted(
    call: &mut CallCtx,
    reference: &str,
    action: Action,
) -> wasmtime::Result<Result<SecretRef, GuestError>> {
    let parsed = match SecretRef::parse(reference) {
        Ok(r) => r,
        Err(e) => return super::invalid(call, e.to_string()).await,
    };
    let needed = match action {
        Action::Reveal => Use::Reveal,
        _ => Use::Egress,
    };
    let why = match call.grants.secret(&parsed) {
        Some(have) if have >= needed => return Ok(Ok(parsed)),
        Some(_) => format!(
            "{} is granted to plugin {} for use in outbound requests only (`${{SECRET:…}}`), not to reveal",
            parsed, call.plugin
        ),
        None => format!("{} is not granted to plugin {}", parsed, call.plugin),
    };
    let scope = parsed.scope.as_ref().map_or("global", |s| s.as_str());
    super::deny(call, action, scope, parsed.name.as_str(), why).await
}

impl Host for CallState {
    async fn exists(&mut self, reference: String) -> wasmtime::Result<Result<bool, GuestError>> {
        let reference = match granted(&mut self.call, &reference, Action::Exists).await? {
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
            Err(VaultError::Missing(_)) => {
                // Each miss is a log row too: misses share the refusal budget.
                super::spend_refusal(&mut self.call, Action::Exists, &reference).await?;
                Ok(Ok(false))
            }
            Err(e) => Ok(Err(vault_error(e)?)),
        }
    }

    async fn reveal(
        &mut self,
        reference: String,
        reason: String,
    ) -> wasmtime::Result<Result<Vec<u8>, GuestError>> {
        let reference = match granted(&mut self.call, &reference, Action::Reveal).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // A long reason is cut to what the log keeps rather than refused.
        let reason = super::clip_logged(&reason);
        let access = match Access::new(self.call.accessor.to_string(), reason) {
            Ok(a) => a,
            Err(e) => return super::invalid(&mut self.call, e.to_string()).await,
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
            Err(e @ VaultError::Missing(_)) => {
                super::spend_refusal(&mut self.call, Action::Reveal, &reference).await?;
                Ok(Err(vault_error(e)?))
            }
            Err(e) => Ok(Err(vault_error(e)?)),
        }
    }
}
