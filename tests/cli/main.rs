//! End-to-end tests of the real `keyward` binary: every input edge of the CLI.

#[path = "../support/mod.rs"]
mod support;

mod agents;
mod audit_archive;
mod audit_checkpoint;
mod audit_export;
mod database;
mod docs;
mod forge_tokens;
mod history;
mod keys;
mod migrate;
mod migrate_versions;
mod migrators;
mod outage;
mod python_migrator;
mod remote;
mod run;
mod secrets;
mod serve;
mod tokens;

pub use support::kw::{code, run_with, text, Kw};
