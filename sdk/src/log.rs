//! Log lines into the host's log.
//!
//! The host redacts every value the plugin revealed before it stores a line,
//! and stops the call once the plugin's `log_bytes` limit is spent, so log
//! freely but not in a loop.

pub use crate::bindings::forge::keyward::plugin::log::{emit, Level};

/// Emits `message` at debug level: detail an operator turns on when needed.
pub fn debug(message: &str) {
    emit(Level::Debug, message);
}

/// Emits `message` at info level: what the plugin did, for the record.
pub fn info(message: &str) {
    emit(Level::Info, message);
}

/// Emits `message` at warn level: something odd that did not fail the call.
pub fn warn(message: &str) {
    emit(Level::Warn, message);
}

/// Emits `message` at error level: the reason a call is about to fail.
pub fn error(message: &str) {
    emit(Level::Error, message);
}
