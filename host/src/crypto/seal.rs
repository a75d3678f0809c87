//! AES-256-GCM sealing with a fresh random nonce per call and associated data
//! that binds a ciphertext to the row it belongs to.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Nonce, Tag};
use zeroize::Zeroizing;

use super::keyring::Keyring;
use super::secret::SecretBytes;

/// Nonce length in bytes (96-bit, the GCM standard size).
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;

/// A sealed value as stored: each part in its own column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the master key that sealed it.
    pub key_id: String,
    /// The 12-byte nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext (same length as the plaintext).
    pub ciphertext: Vec<u8>,
    /// The 16-byte GCM tag.
    pub tag: Vec<u8>,
}

/// A sealed value did not open. Deliberately carries no detail: wrong key,
/// wrong row, tampered bytes and truncation all look the same to a caller.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the sealed value could not be opened")]
pub struct OpenError;

/// Associated data for a secret row: length-prefixed so that no two distinct
/// (scope, name, version) triples encode alike.
pub fn secret_aad(scope: &str, name: &str, version: i64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(24 + scope.len() + name.len());
    aad.extend_from_slice(b"keyward/v1/secret\0");
    for part in [scope.as_bytes(), name.as_bytes()] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// Length-prefixed parts after a domain tag, so that no two distinct
/// tuples encode alike.
fn tagged_aad(tag: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tag.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    aad.extend_from_slice(tag);
    for part in parts {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad
}

/// Associated data for an operator's OAuth token: its forge and which
/// token (`access` or `refresh`), so neither opens in the other's place.
pub fn oauth_token_aad(forge_type: &str, field: &str) -> Vec<u8> {
    tagged_aad(
        b"keyward/v1/oauth-token\0",
        &[forge_type.as_bytes(), field.as_bytes()],
    )
}

/// Associated data for a pending sign-in's PKCE verifier.
pub fn oauth_pending_aad(state_hash: &str) -> Vec<u8> {
    tagged_aad(b"keyward/v1/oauth-pending\0", &[state_hash.as_bytes()])
}

/// Associated data of a forge's kept answer to a refresh: the forge, the
/// token generation it refreshed from and the attempt, so an answer copied
/// to another forge, generation or attempt does not open.
pub fn oauth_refresh_answer_aad(forge_type: &str, generation: i64, attempt: &str) -> Vec<u8> {
    tagged_aad(
        b"keyward/v1/oauth-refresh-answer\0",
        &[
            forge_type.as_bytes(),
            generation.to_string().as_bytes(),
            attempt.as_bytes(),
        ],
    )
}

impl Keyring {
    /// Seals `plaintext` under the current key with a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        super::fill_random(&mut nonce);
        let mut buffer = plaintext.to_vec();
        let tag = self
            .current
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut buffer)
            .expect("AES-GCM seals any value below 64 GiB");
        Sealed {
            key_id: self.current.id.0.clone(),
            nonce: nonce.to_vec(),
            ciphertext: buffer,
            tag: tag.to_vec(),
        }
    }

    /// Opens a sealed value with whichever keyring key sealed it.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<SecretBytes, OpenError> {
        if sealed.nonce.len() != NONCE_LEN || sealed.tag.len() != TAG_LEN {
            return Err(OpenError);
        }
        let key = self.find(&sealed.key_id).ok_or(OpenError)?;
        // Decrypt into a buffer that is wiped even when the tag check fails.
        let mut plain = Zeroizing::new(sealed.ciphertext.clone());
        key.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(&sealed.nonce),
                aad,
                &mut plain,
                Tag::from_slice(&sealed.tag),
            )
            .map_err(|_| OpenError)?;
        Ok(SecretBytes::new(std::mem::take(&mut *plain)))
    }

    /// Opens `sealed` and seals the same value again under the current key
    /// with a fresh nonce; the plaintext never leaves this module.
    pub fn reseal(&self, sealed: &Sealed, aad: &[u8]) -> Result<Sealed, OpenError> {
        let value = self.open(sealed, aad)?;
        Ok(self.seal(value.expose(), aad))
    }

    /// True when the value was sealed by the current key.
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        sealed.key_id == self.current.id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    fn ring() -> Keyring {
        Keyring::new(&MasterKey::generate(), &[])
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let ring = ring();
        let aad = secret_aad("global", "TOKEN", 1);
        let a = ring.seal(b"hunter2", &aad);
        let b = ring.seal(b"hunter2", &aad);
        assert_ne!(a.nonce, b.nonce, "every seal draws a fresh nonce");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.nonce.len(), NONCE_LEN);
        assert_eq!(a.tag.len(), TAG_LEN);
        assert_eq!(ring.open(&a, &aad).expect("opens").expose(), b"hunter2");
    }

    #[test]
    fn every_tampering_fails_the_same_way() {
        let ring = ring();
        let aad = secret_aad("global", "TOKEN", 1);
        let sealed = ring.seal(b"value", &aad);

        let mut flipped_tag = sealed.clone();
        flipped_tag.tag[0] ^= 1;
        let mut flipped_ct = sealed.clone();
        flipped_ct.ciphertext[0] ^= 1;
        let mut short_nonce = sealed.clone();
        short_nonce.nonce.pop();
        let mut truncated_tag = sealed.clone();
        truncated_tag.tag.truncate(12);
        let mut unknown_key = sealed.clone();
        unknown_key.key_id = "0000000000000000".into();

        for bad in [
            flipped_tag,
            flipped_ct,
            short_nonce,
            truncated_tag,
            unknown_key,
        ] {
            assert_eq!(ring.open(&bad, &aad).err(), Some(OpenError));
        }
        // The same bytes under another row's identity do not open.
        for other in [
            secret_aad("global", "TOKEN", 2),
            secret_aad("global", "TOKEN2", 1),
            secret_aad("agent_type:coder", "TOKEN", 1),
        ] {
            assert_eq!(ring.open(&sealed, &other).err(), Some(OpenError));
        }
        // A different master key does not open it.
        assert_eq!(
            super::tests::ring().open(&sealed, &aad).err(),
            Some(OpenError)
        );
    }

    #[test]
    fn aad_is_unambiguous() {
        assert_ne!(secret_aad("ab", "c", 1), secret_aad("a", "bc", 1));
    }

    #[test]
    fn previous_keys_open_but_never_seal() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let aad = secret_aad("global", "X", 1);
        let sealed_old = Keyring::new(&old, &[]).seal(b"v", &aad);
        let ring = Keyring::new(&new, &[old]);
        assert!(!ring.is_current(&sealed_old));
        assert_eq!(ring.open(&sealed_old, &aad).expect("opens").expose(), b"v");
        assert!(ring.is_current(&ring.seal(b"v", &aad)));
    }
}

#[cfg(test)]
mod known_answers {
    use super::*;
    use crate::crypto::MasterKey;

    /// Vectors made by vectors/make_seal_vectors.py with Python's
    /// `cryptography`, an implementation independent of this one.
    const VECTORS: &str = include_str!("vectors/seal.txt");

    #[test]
    fn the_sealing_format_matches_an_independent_implementation() {
        let master = MasterKey::from_base64("test", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .expect("key");
        let ring = Keyring::new(&master, &[]);
        let mut cases = 0;
        for line in VECTORS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split('|').collect();
            let [case, key_id, scope, name, version, nonce, ct, tag, expect] = f[..] else {
                panic!("bad vector line {line}");
            };
            if case == "ok" {
                assert_eq!(ring.current_id().0, key_id, "key id derivation");
            }
            let sealed = Sealed {
                key_id: key_id.into(),
                nonce: hex::decode(nonce).expect("hex"),
                ciphertext: hex::decode(ct).expect("hex"),
                tag: hex::decode(tag).expect("hex"),
            };
            let version: i64 = version.parse().expect("version");
            let opened = ring.open(&sealed, &secret_aad(scope, name, version));
            match expect {
                "FAIL" => assert_eq!(opened.err(), Some(OpenError), "{case}"),
                plain => {
                    let value = opened.unwrap_or_else(|_| panic!("{case} must open"));
                    assert_eq!(hex::encode(value.expose()), plain, "{case}");
                }
            }
            cases += 1;
        }
        assert_eq!(cases, 12);
    }
}
