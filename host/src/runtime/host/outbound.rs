//! `keyward:plugin/outbound`: HTTP through the host (see runtime/egress.rs).

use crate::runtime::bindings::forge::keyward::plugin::outbound::{Host, Request, Response};
use crate::runtime::bindings::GuestError;
use crate::runtime::call::CallState;
use crate::runtime::journal;

impl Host for CallState {
    async fn fetch(&mut self, req: Request) -> wasmtime::Result<Result<Response, GuestError>> {
        // A replayed refresh is answered from its kept answer: the refresh
        // token it would send is already spent at the forge.
        if let Some(kept) = journal::replay(&mut self.call) {
            return Ok(kept.map_err(|e| GuestError::Upstream(e.to_string())));
        }
        let answer = crate::runtime::egress::fetch(&mut self.call, req).await?;
        if let Ok(response) = &answer {
            // Durable before the plugin (and so anyone) sees the new tokens.
            if let Err(e) = journal::keep(&mut self.call, response).await {
                tracing::error!(error = %e, plugin = %self.call.plugin, "refresh answer not kept");
                return Ok(Err(GuestError::Upstream(e.to_string())));
            }
        }
        Ok(answer)
    }
}
