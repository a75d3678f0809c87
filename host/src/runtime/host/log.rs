//! `keyward:plugin/log`: lines into the host's log, redacted, within the
//! plugin's log budget. Going over the budget stops the call.

use crate::runtime::bindings::forge::keyward::plugin::log::{Host, Level};
use crate::runtime::call::CallState;
use crate::runtime::redact::escape_controls;

impl Host for CallState {
    async fn emit(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let call = &mut self.call;
        call.log_used = call.log_used.saturating_add(message.len() as u64);
        if call.log_used > call.limits.log_bytes {
            call.log_exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "log limit of {} bytes per call exceeded",
                call.limits.log_bytes
            )));
        }
        let line = escape_controls(&call.redactor.redact_str(&message));
        let plugin = &*call.plugin;
        match level {
            Level::Debug => tracing::debug!(target: "keyward::plugin", %plugin, "{line}"),
            Level::Info => tracing::info!(target: "keyward::plugin", %plugin, "{line}"),
            Level::Warn => tracing::warn!(target: "keyward::plugin", %plugin, "{line}"),
            Level::Error => tracing::error!(target: "keyward::plugin", %plugin, "{line}"),
        }
        Ok(())
    }
}
