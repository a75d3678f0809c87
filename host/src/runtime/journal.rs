//! The refresh journal: a forge's answer to a refresh is kept (sealed, in
//! `oauth_refresh_answer`) at egress BEFORE the plugin reads it, because
//! the forge has already spent the old, single-use refresh token: if this
//! process dies or loses its lease now, that answer is the only copy of the
//! new one. A later refresh of the same generation, on any host, runs the
//! plugin's `refresh` again with the kept answer served in place of the
//! forge's (nothing leaves the host), so the wire format stays the plugin's
//! business (docs/credentials.md, "Refresh").

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::bindings::forge::keyward::plugin::outbound::Response;
use super::call::CallCtx;
use crate::crypto::oauth_refresh_answer_aad;
use crate::store::{forge as store, now_ms};

/// What the host does with the first answer of a refresh call.
pub enum Journal {
    /// Keep the forge's answer (when 2xx) before the plugin sees it.
    Keep {
        /// The forge plugin's name.
        forge: String,
        /// The token generation being refreshed.
        generation: i64,
        /// This attempt's id (several hosts may each keep one).
        attempt: String,
    },
    /// Serve this kept answer (its sealed plaintext) instead of asking the
    /// forge again.
    Replay(Zeroizing<Vec<u8>>),
}

/// A response as it is kept (the body in base64, so the JSON stays small).
#[derive(Serialize, Deserialize)]
struct Kept {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Why a kept answer could not be kept or served.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database refused the write: the refresh must fail rather than
    /// hand over tokens that only memory holds. (502 to the plugin's caller)
    #[error("the forge's answer to the refresh could not be kept: {0}")]
    Store(#[from] sqlx::Error),
    /// A kept answer does not parse (written by another version). (502)
    #[error("a kept refresh answer is unreadable")]
    Unreadable,
}

/// The kept answer to serve for this request, if the call replays one. A
/// replay serves its answer once; later requests go out as usual.
pub(crate) fn replay(call: &mut CallCtx) -> Option<Result<Response, JournalError>> {
    if !matches!(call.journal, Some(Journal::Replay(_))) {
        return None;
    }
    let Some(Journal::Replay(bytes)) = call.journal.take() else {
        return None;
    };
    let kept: Kept = match serde_json::from_slice(&bytes) {
        Ok(k) => k,
        Err(_) => return Some(Err(JournalError::Unreadable)),
    };
    let mut encoded = Zeroizing::new(kept.body);
    let body = STANDARD
        .decode(encoded.as_bytes())
        .map_err(|_| JournalError::Unreadable);
    encoded.zeroize();
    Some(body.map(|body| Response {
        status: kept.status,
        headers: kept.headers,
        body,
    }))
}

/// Keeps `response`, sealed, when the call journals and the forge said yes
/// (2xx); once per call. Runs before the plugin gets the response.
pub(crate) async fn keep(call: &mut CallCtx, response: &Response) -> Result<(), JournalError> {
    if !(200..300).contains(&response.status) {
        return Ok(());
    }
    if !matches!(call.journal, Some(Journal::Keep { .. })) {
        return Ok(());
    }
    let Some(Journal::Keep {
        forge,
        generation,
        attempt,
    }) = call.journal.take()
    else {
        return Ok(());
    };
    let kept = Kept {
        status: response.status,
        headers: response.headers.clone(),
        body: STANDARD.encode(&response.body),
    };
    let plain = Zeroizing::new(serde_json::to_vec(&kept).map_err(|_| JournalError::Unreadable)?);
    let mut body = kept.body;
    body.zeroize();
    let keyring = call.vault.keyring();
    let sealed = keyring.seal(
        &plain,
        &oauth_refresh_answer_aad(&forge, generation, &attempt),
    );
    store::keep_refresh_answer(
        &mut *call.vault.db().writer().await?,
        &forge,
        generation,
        &attempt,
        &sealed,
        now_ms(),
    )
    .await?;
    Ok(())
}
