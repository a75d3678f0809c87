//! The keyring: the current sealing key plus earlier ones kept only to open
//! values during a rotation. Each key is known by a short id derived from it.

use aes_gcm::{Aes256Gcm, KeyInit};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::key::MasterKey;

/// Public identifier of a master key (16 hex digits of an HMAC of it): safe to
/// store and print, useless for recovering the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub String);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) struct SealKey {
    pub(super) id: KeyId,
    pub(super) cipher: Aes256Gcm,
}

impl SealKey {
    fn derive(master: &MasterKey) -> Self {
        // Separate keys per purpose, so the id we store reveals nothing about
        // the key that seals.
        let mut id_mac =
            <Hmac<Sha256> as Mac>::new_from_slice(master.bytes()).expect("HMAC takes any key size");
        id_mac.update(b"keyward/v1/key-id");
        let id = KeyId(hex::encode(&id_mac.finalize().into_bytes()[..8]));
        let seal = derive(master.bytes(), b"keyward/v1/seal");
        let cipher = Aes256Gcm::new_from_slice(seal.as_ref()).expect("32-byte key");
        SealKey { id, cipher }
    }
}

/// HKDF-SHA256 of `ikm` for one purpose.
pub(crate) fn derive(ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, ikm)
        .expand(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// The current key (seals everything new) and previous keys (open only).
pub struct Keyring {
    pub(super) current: SealKey,
    pub(super) previous: Vec<SealKey>,
    /// Keys the ids of imported legacy client keys (`legacy_id`).
    legacy_ids: Zeroizing<[u8; 32]>,
}

impl Keyring {
    /// Builds the keyring; a previous key equal to the current one is dropped.
    pub fn new(current: &MasterKey, previous: &[MasterKey]) -> Self {
        let legacy_ids = derive(current.bytes(), b"keyward/v1/legacy-key-id");
        let current = SealKey::derive(current);
        let previous = previous
            .iter()
            .map(SealKey::derive)
            .filter(|key| key.id != current.id)
            .collect();
        Keyring {
            current,
            previous,
            legacy_ids,
        }
    }

    /// The HMAC key of legacy client key ids (a purpose of its own, derived
    /// from the current master key): the id does not let anyone confirm a
    /// guessed key.
    pub fn legacy_id_key(&self) -> &[u8; 32] {
        &self.legacy_ids
    }

    /// The id of the key that seals new values.
    pub fn current_id(&self) -> &KeyId {
        &self.current.id
    }

    pub(super) fn find(&self, id: &str) -> Option<&SealKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|key| key.id.0 == id)
    }
}
