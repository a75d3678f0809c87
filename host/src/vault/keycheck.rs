//! Which master keys may open a store, checked before anything is written.
//!
//! The canary proves the store's key. During a rotation the store's key sits
//! in `KEYWARD_MASTER_KEY_PREVIOUS` and opens the canary from there, so the
//! canary alone would accept *any* current key — a mistyped one included,
//! and every value written from then on would be sealed under the typo. So
//! a current key that is not the store's must prove itself too: it has to
//! be *adopted* once, deliberately (`keyward key adopt`, or `keyward key
//! rotate`), which records a second canary (`next-key`) sealed under it.
//! From then on that key, and only that key, may start beside the old one,
//! until the rotation finishes and the canary itself is under the new key.

use super::VaultError;
use crate::crypto::{Keyring, Sealed};
use crate::store::keyring::{self as keyring_table, CANARY, NEXT_KEY};
use crate::store::{now_ms, Db};

/// The canary's known plaintext.
pub(super) const CANARY_PLAINTEXT: &[u8] = b"keyward keyring canary v1";
/// The adopted key's canary's known plaintext.
const NEXT_KEY_PLAINTEXT: &[u8] = b"keyward next master key v1";

/// What to do with a current key the store does not know yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewKey {
    /// Refuse it ([`VaultError::KeyNotAdopted`]): what every command but
    /// `key adopt` and `key rotate` does.
    Refuse,
    /// Adopt it unless another new key was adopted already; with
    /// `replace`, in place of that one.
    Adopt {
        /// Replace a key adopted earlier (abandoning it).
        replace: bool,
    },
}

/// Whether `sealed` opens with `keyring` to `plaintext`.
fn proves(keyring: &Keyring, sealed: &Sealed, purpose: &str, plaintext: &[u8]) -> bool {
    keyring
        .open(sealed, &keyring_table::aad(purpose))
        .is_ok_and(|p| p.expose() == plaintext)
}

/// Checks that `keyring` may open the store in `db` (a store without a
/// canary yet is anyone's), adopting its current key if `new_key` says so.
/// Nothing is written unless a key is adopted.
pub(super) async fn check(db: &Db, keyring: &Keyring, new_key: NewKey) -> Result<(), VaultError> {
    let Some(canary) = keyring_table::get(db.reader(), CANARY).await? else {
        return Ok(());
    };
    let given = keyring.current_id().to_string();
    let wrong_key = || VaultError::WrongKey {
        url: db.display_url().to_owned(),
        stored: canary.key_id.clone(),
        given: given.clone(),
    };
    if !proves(keyring, &canary, CANARY, CANARY_PLAINTEXT) {
        return Err(wrong_key());
    }
    if canary.key_id == given {
        return Ok(());
    }
    // A previous key opened the canary: a rotation. The current key must be
    // the adopted one.
    let next = keyring_table::get(db.reader(), NEXT_KEY).await?;
    match (next, new_key) {
        (Some(next), _) if next.key_id == given => {
            if proves(keyring, &next, NEXT_KEY, NEXT_KEY_PLAINTEXT) {
                Ok(())
            } else {
                Err(wrong_key())
            }
        }
        (Some(next), NewKey::Refuse | NewKey::Adopt { replace: false }) => {
            Err(VaultError::OtherKeyAdopted {
                adopted: next.key_id,
                given,
            })
        }
        (None, NewKey::Refuse) => Err(VaultError::KeyNotAdopted {
            url: db.display_url().to_owned(),
            stored: canary.key_id,
            given,
        }),
        (_, NewKey::Adopt { replace }) => adopt(db, keyring, replace).await,
    }
}

/// Records the current key as the one the store rotates to.
async fn adopt(db: &Db, keyring: &Keyring, replace: bool) -> Result<(), VaultError> {
    let sealed = keyring.seal(NEXT_KEY_PLAINTEXT, &keyring_table::aad(NEXT_KEY));
    {
        let mut tx = db.begin_write().await?;
        if replace {
            keyring_table::delete(&mut tx, NEXT_KEY).await?;
        }
        keyring_table::insert_if_absent(&mut tx, NEXT_KEY, &sealed, now_ms()).await?;
        tx.commit().await?;
    }
    // Two hosts adopting different keys at once: the first row stands.
    let given = keyring.current_id().to_string();
    match keyring_table::get(db.reader(), NEXT_KEY).await? {
        Some(next) if next.key_id == given => {
            tracing::warn!(key_id = %given, replaced = replace, "master key adopted: the store rotates to it");
            Ok(())
        }
        Some(next) => Err(VaultError::OtherKeyAdopted {
            adopted: next.key_id,
            given,
        }),
        None => Err(VaultError::Unreadable(
            "the adopted key's canary (missing)".into(),
        )),
    }
}
