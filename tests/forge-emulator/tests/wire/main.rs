//! Wire tests: real HTTP against started emulators.

mod api;
mod flow;
mod hostile;
mod support;
mod token_errors;
