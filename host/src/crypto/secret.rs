//! The one type plaintext secret bytes live in.

use zeroize::Zeroizing;

/// Plaintext secret bytes. Wiped on drop; deliberately without `Debug`,
/// `Display` or `Clone`, so a value cannot slip into a log line or be copied
/// by accident. Read it with [`SecretBytes::expose`] where it must be used.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when this value drops.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The plaintext. Callers must not log or persist it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (safe to log).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
