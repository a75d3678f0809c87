//! PKCE (RFC 7636) challenge checks.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::state::Challenge;

/// Whether `verifier` answers `challenge` (S256 or plain).
pub(crate) fn verifies(challenge: &Challenge, verifier: &str) -> bool {
    match challenge.method.as_str() {
        "S256" => s256(verifier) == challenge.value,
        "plain" => verifier == challenge.value,
        _ => false,
    }
}

/// BASE64URL(SHA256(verifier)) without padding.
pub fn s256(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_an_independent_sha256() {
        assert_eq!(
            super::s256("dBjftJeZ4CVP-mJ0kzrJDAqCDJBQ7kg8LGFRmMT7SQ"),
            // computed with Python hashlib + urlsafe_b64encode
            "UEU0H2_6GXRvE5yo36ESkkp4XyIgGQFlQPOgRMASiVM"
        );
    }
}
