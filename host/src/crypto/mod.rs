//! Keys and sealing: the master key, the keyring derived from it, AES-256-GCM.

mod compare;
mod key;
mod keyring;
mod seal;
mod secret;

pub use compare::ct_eq;
pub use key::{KeyError, MasterKey, MASTER_KEY_PREVIOUS_VAR, MASTER_KEY_VAR};
pub(crate) use keyring::derive as derive_subkey;
pub use keyring::{KeyId, Keyring};
pub use seal::{
    oauth_pending_aad, oauth_refresh_answer_aad, oauth_token_aad, secret_aad, OpenError, Sealed,
    NONCE_LEN, TAG_LEN,
};
pub use secret::SecretBytes;

/// Fills `buf` from the operating system's CSPRNG.
///
/// A machine without a working random source cannot seal anything safely, so
/// this aborts the call rather than returning weak bytes.
pub(crate) fn fill_random(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the operating system's random source failed");
}
