//! Adversarial tests: one test per threat to the plugin and migrator trust
//! boundary, named after the threat (docs/plugins.md, "Threat model", maps
//! each guarantee to its test). Each drives the real runtime or the real
//! binary with a hostile fixture plugin built from source
//! (tests/fixtures/plugins/).

#[path = "../support/mod.rs"]
mod support;

#[path = "../plugins/fixtures.rs"]
mod fixtures;

mod harness;

mod availability;
mod exhaustion;
mod grants;
mod memory;
mod migrators;
mod network;
mod redaction;
