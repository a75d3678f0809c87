//! Keyward: a secret-resolution host. One process owns the master key, an
//! AES-256-GCM sealed secret store and a hash-chained access log in which
//! every read is recorded before the plaintext is returned.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod forge;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod names;
pub mod resolve;
pub mod runtime;
pub mod store;
pub mod template;
pub mod text;
pub mod vault;
