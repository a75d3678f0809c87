//! The master key: parsing it from the environment, generating a fresh one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

/// Environment variable holding the current master key.
pub const MASTER_KEY_VAR: &str = "KEYWARD_MASTER_KEY";
/// Environment variable holding earlier master keys (comma list), for rotation.
pub const MASTER_KEY_PREVIOUS_VAR: &str = "KEYWARD_MASTER_KEY_PREVIOUS";

const HOW_TO_GENERATE: &str =
    "generate one with `keyward key generate` (or `openssl rand -base64 32`)";

/// Why a master key could not be used. Messages name the variable and say how
/// to make a valid key; they never include the (possibly secret) input.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The variable is not set or empty.
    #[error("{var} is not set: it must hold the base64 of 32 random bytes; {HOW_TO_GENERATE}")]
    Missing {
        /// The variable's name.
        var: &'static str,
    },
    /// The value is not valid base64.
    #[error(
        "{var} is not valid base64: it must hold the base64 of 32 random bytes; {HOW_TO_GENERATE}"
    )]
    BadBase64 {
        /// The variable's name.
        var: &'static str,
    },
    /// The value decodes to the wrong number of bytes.
    #[error(
        "{var} decodes to {len} bytes, but a master key is exactly 32 bytes; {HOW_TO_GENERATE}"
    )]
    WrongLength {
        /// The variable's name.
        var: &'static str,
        /// How many bytes it decoded to.
        len: usize,
    },
}

/// A 256-bit master key. Wiped on drop; no `Debug`, `Display` or `Clone`.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        super::fill_random(bytes.as_mut());
        MasterKey(bytes)
    }

    /// Parses the base64 text of exactly 32 bytes; `var` names the source in errors.
    pub fn from_base64(var: &'static str, text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Missing { var });
        }
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text)
                .map_err(|_| KeyError::BadBase64 { var })?,
        );
        if decoded.len() != 32 {
            return Err(KeyError::WrongLength {
                var,
                len: decoded.len(),
            });
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey(bytes))
    }

    /// Parses a comma-separated list of keys (the previous-keys variable).
    pub fn list_from_base64(var: &'static str, text: &str) -> Result<Vec<Self>, KeyError> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| Self::from_base64(var, part))
            .collect()
    }

    /// The key as base64, for `keyward key generate` to print once.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    pub(super) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_32_bytes() {
        let key = MasterKey::generate();
        let text = key.to_base64();
        let back = MasterKey::from_base64(MASTER_KEY_VAR, &text).expect("valid key");
        assert_eq!(back.bytes(), key.bytes());
    }

    #[test]
    fn rejects_missing_bad_and_short_keys_naming_the_variable() {
        for (input, needle) in [
            ("", "is not set"),
            ("   ", "is not set"),
            ("not base64!!", "not valid base64"),
            ("c2hvcnQ=", "decodes to 5 bytes"),
        ] {
            let err = MasterKey::from_base64(MASTER_KEY_VAR, input)
                .err()
                .expect("must be refused");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(msg.contains(MASTER_KEY_VAR), "{msg}");
            assert!(msg.contains("keyward key generate"), "{msg}");
        }
    }

    #[test]
    fn previous_list_skips_empty_parts() {
        let a = MasterKey::generate().to_base64();
        let b = MasterKey::generate().to_base64();
        let list = format!("{},, {} ,", a.as_str(), b.as_str());
        let keys = MasterKey::list_from_base64(MASTER_KEY_PREVIOUS_VAR, &list).expect("valid list");
        assert_eq!(keys.len(), 2);
        assert!(MasterKey::list_from_base64(MASTER_KEY_PREVIOUS_VAR, "abc,def").is_err());
    }
}
