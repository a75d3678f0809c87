//! Signed checkpoints of the access log's head: the log's end, anchored
//! outside the database (after Certificate Transparency's signed tree heads).
//!
//! The chain alone cannot show a cut-off tail: whoever can write the
//! database can delete the last rows and point `audit_head` at the new last
//! row, and every MAC that is left still checks. A checkpoint records the
//! head (seq and MAC) at a moment, signed with a key only a holder of the
//! master key has. Kept where the database's writers cannot reach it, it
//! lets `audit verify` prove that the log still holds that row with that
//! MAC; and a verifier that trusts it may start from it instead of row 1.
//!
//! One JSON line (docs/access-log.md):
//!
//! ```text
//! {"format":"keyward-audit-checkpoint","version":1,"log":HEX16,"seq":N,"mac":HEX32,"time":RFC3339,"sig":HEX32}
//! sig = HMAC-SHA256(checkpoint key, "keyward-audit-checkpoint v1\0" ‖ log ‖ seq (i64 BE) ‖ mac ‖ time (Unix ms, i64 BE))
//! ```
//!
//! What is signed is those bytes, not the JSON text, so the JSON may be
//! reformatted (re-indented by a log pipeline, say) without breaking it.

use std::time::{Duration, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::chain::Head;

type HmacSha256 = Hmac<Sha256>;

/// The `format` field of every checkpoint.
pub const FORMAT: &str = "keyward-audit-checkpoint";
/// The one version this build writes and reads.
pub const VERSION: u64 = 1;
/// Domain separation of the signed bytes from every other MAC the key could make.
const SIGNED_TAG: &[u8] = b"keyward-audit-checkpoint v1\0";
const FIELDS: [&str; 7] = ["format", "version", "log", "seq", "mac", "time", "sig"];

/// Which access log a checkpoint belongs to: 16 bytes derived from the log
/// secret. Public (it reveals nothing of the secret), and the same on every
/// host sharing the store and across master-key rotations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogId([u8; 16]);

impl std::fmt::Display for LogId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Why a checkpoint was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text is not a checkpoint at all.
    #[error("not a Keyward access-log checkpoint: {0}")]
    Malformed(String),
    /// Written by a newer Keyward.
    #[error("checkpoint format version {0}; this keyward reads version {VERSION} (upgrade keyward to check it)")]
    Version(u64),
    /// Made by another deployment: it says nothing about this log.
    #[error(
        "the checkpoint belongs to another access log (log {theirs}; this store's log is {ours})"
    )]
    OtherLog {
        /// The checkpoint's `log`.
        theirs: LogId,
        /// This store's.
        ours: LogId,
    },
    /// Changed after it was signed, or signed by another key.
    #[error("the checkpoint's signature does not match: it was modified, or not made with this store's key")]
    BadSignature,
}

/// A checkpoint as written to or read from a file: trusted by nothing
/// until [`CheckpointKey::check`] turns it into a [`Checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    log: LogId,
    seq: i64,
    mac: [u8; 32],
    time_ms: i64,
    sig: [u8; 32],
}

/// A checkpoint whose signature checked out: this store's log had this head
/// at this time. Only [`CheckpointKey::check`] makes one, so whatever takes
/// a `Checkpoint` (verifying against it, or from it) cannot be handed an
/// unchecked file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    seq: i64,
    mac: [u8; 32],
    time_ms: i64,
}

impl Checkpoint {
    /// The seq of the row that was the head.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// That row's MAC (32 zero bytes for an empty log).
    pub fn mac(&self) -> &[u8; 32] {
        &self.mac
    }

    /// When the checkpoint was made (Unix milliseconds).
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }

    /// The head it records: where an incremental verify may start.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            mac: self.mac.to_vec(),
        }
    }
}

/// Signs and checks checkpoints. No `Debug`; wiped on drop.
pub struct CheckpointKey {
    key: Zeroizing<[u8; 32]>,
    log: LogId,
}

impl CheckpointKey {
    /// Derives the key and the log id from the (unsealed) log secret, each
    /// for a purpose of its own, apart from the chain key. The log secret,
    /// not the master key: a master-key rotation re-seals the log secret
    /// without changing it, so checkpoints kept for years still verify.
    pub fn from_log_secret(log_secret: &[u8]) -> Self {
        let key = crate::crypto::derive_subkey(log_secret, b"keyward/v1/audit-checkpoint");
        let id = crate::crypto::derive_subkey(log_secret, b"keyward/v1/audit-log-id");
        let mut log = [0u8; 16];
        log.copy_from_slice(&id[..16]);
        CheckpointKey {
            key,
            log: LogId(log),
        }
    }

    /// This store's log id.
    pub fn log_id(&self) -> LogId {
        self.log
    }

    /// Signs the head (the last row's seq and MAC) as read at `time_ms`.
    pub fn sign(&self, seq: i64, mac: [u8; 32], time_ms: i64) -> SignedCheckpoint {
        let sig = self
            .signer(&self.log, seq, &mac, time_ms)
            .finalize()
            .into_bytes()
            .into();
        SignedCheckpoint {
            log: self.log,
            seq,
            mac,
            time_ms,
            sig,
        }
    }

    /// The checkpoint, if it is this log's and its signature matches
    /// (compared in constant time).
    pub fn check(&self, signed: &SignedCheckpoint) -> Result<Checkpoint, CheckpointError> {
        if signed.log != self.log {
            return Err(CheckpointError::OtherLog {
                theirs: signed.log,
                ours: self.log,
            });
        }
        self.signer(&signed.log, signed.seq, &signed.mac, signed.time_ms)
            .verify_slice(&signed.sig)
            .map_err(|_| CheckpointError::BadSignature)?;
        Ok(Checkpoint {
            seq: signed.seq,
            mac: signed.mac,
            time_ms: signed.time_ms,
        })
    }

    /// Checks a checkpoint kept in this store's own database (the archive
    /// mark): it has no log id of its own, being this log's.
    pub fn check_stored(
        &self,
        seq: i64,
        mac: &[u8],
        time_ms: i64,
        sig: &[u8],
    ) -> Result<Checkpoint, CheckpointError> {
        let (Ok(mac), Ok(sig)) = (mac.try_into(), sig.try_into()) else {
            return Err(CheckpointError::BadSignature);
        };
        self.check(&SignedCheckpoint {
            log: self.log,
            seq,
            mac,
            time_ms,
            sig,
        })
    }

    fn signer(&self, log: &LogId, seq: i64, mac: &[u8; 32], time_ms: i64) -> HmacSha256 {
        let mut hmac =
            HmacSha256::new_from_slice(self.key.as_ref()).expect("HMAC takes any key size");
        hmac.update(SIGNED_TAG);
        hmac.update(&log.0);
        hmac.update(&seq.to_be_bytes());
        hmac.update(mac);
        hmac.update(&time_ms.to_be_bytes());
        hmac
    }
}

impl SignedCheckpoint {
    /// The seq it claims (unchecked).
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// The signature (stored beside the archive mark).
    pub fn sig(&self) -> &[u8; 32] {
        &self.sig
    }

    /// The MAC it claims.
    pub fn mac(&self) -> &[u8; 32] {
        &self.mac
    }

    /// The time it claims, Unix ms.
    pub fn time_ms(&self) -> i64 {
        self.time_ms
    }

    /// The one-line JSON form (without a newline), fields in the
    /// documented order. Every value is a number or hex or RFC 3339 text,
    /// so none needs escaping.
    pub fn to_line(&self) -> String {
        let time = UNIX_EPOCH + Duration::from_millis(self.time_ms.max(0) as u64);
        format!(
            r#"{{"format":"{FORMAT}","version":{VERSION},"log":"{}","seq":{},"mac":"{}","time":"{}","sig":"{}"}}"#,
            self.log,
            self.seq,
            hex::encode(self.mac),
            humantime::format_rfc3339_millis(time),
            hex::encode(self.sig),
        )
    }

    /// Parses the JSON form. Refuses other formats, other versions and
    /// fields this version does not have (they would not be signed, so
    /// nothing in them could be believed).
    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let malformed = |why: &str| CheckpointError::Malformed(why.to_owned());
        let value: Value =
            serde_json::from_str(text.trim()).map_err(|_| malformed("it is not JSON"))?;
        let fields = value
            .as_object()
            .ok_or_else(|| malformed("it is not a JSON object"))?;
        if fields.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(malformed(&format!("its \"format\" is not \"{FORMAT}\"")));
        }
        let version = fields
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("\"version\" is missing"))?;
        if version != VERSION {
            return Err(CheckpointError::Version(version));
        }
        if let Some(extra) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(malformed(&format!("unknown field \"{extra}\"")));
        }
        let seq = fields
            .get("seq")
            .and_then(Value::as_i64)
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| malformed("\"seq\" is not a whole number ≥ 0"))?;
        let time = text_field(fields, "time")?;
        let time_ms = humantime::parse_rfc3339(time)
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .ok_or_else(|| malformed("\"time\" is not an RFC 3339 UTC time"))?;
        Ok(SignedCheckpoint {
            log: LogId(hex_field(fields, "log")?),
            seq,
            mac: hex_field(fields, "mac")?,
            time_ms,
            sig: hex_field(fields, "sig")?,
        })
    }
}

fn text_field<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, CheckpointError> {
    fields
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| CheckpointError::Malformed(format!("\"{name}\" is missing")))
}

fn hex_field<const N: usize>(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<[u8; N], CheckpointError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text_field(fields, name)?, &mut out).map_err(|_| {
        CheckpointError::Malformed(format!("\"{name}\" is not {} hex digits", 2 * N))
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: u8) -> CheckpointKey {
        CheckpointKey::from_log_secret(&[secret; 32])
    }

    #[test]
    fn a_signed_checkpoint_round_trips_and_checks() {
        let key = key(7);
        let signed = key.sign(42, [9; 32], 1_700_000_000_123);
        let parsed = SignedCheckpoint::parse(&signed.to_line()).expect("parses");
        assert_eq!(parsed, signed);
        let checkpoint = key.check(&parsed).expect("genuine");
        assert_eq!(
            (checkpoint.seq(), checkpoint.mac(), checkpoint.time_ms()),
            (42, &[9; 32], 1_700_000_000_123)
        );
        assert_eq!(checkpoint.head().seq, 42);
    }

    /// Pins the format: a change to what is signed or how it is written
    /// must be a new version, or checkpoints already shipped stop verifying.
    /// The signature was also computed independently (Python's hmac and an
    /// HKDF written from RFC 5869) from the construction in docs/access-log.md.
    #[test]
    fn known_answer() {
        let line = key(7).sign(42, [9; 32], 1_700_000_000_123).to_line();
        assert_eq!(line, KNOWN_LINE);
        assert!(key(7)
            .check(&SignedCheckpoint::parse(KNOWN_LINE).expect("parses"))
            .is_ok());
    }

    const KNOWN_LINE: &str = concat!(
        r#"{"format":"keyward-audit-checkpoint","version":1,"#,
        r#""log":"7f50209f4604e3353eeeaaf0cb10f14c","seq":42,"#,
        r#""mac":"0909090909090909090909090909090909090909090909090909090909090909","#,
        r#""time":"2023-11-14T22:13:20.123Z","#,
        r#""sig":"2a8decfdd85bea1b5a2d806ac2b3972bcf2623976353e1f1f9d8f3de4d29ccc1"}"#
    );

    #[test]
    fn every_signed_field_is_covered() {
        let key = key(7);
        let genuine = key.sign(42, [9; 32], 1_700_000_000_123);
        let mut changed = Vec::new();
        for edit in 0..4 {
            let mut c = genuine.clone();
            match edit {
                0 => c.seq = 41,
                1 => c.mac[31] ^= 1,
                2 => c.time_ms += 1,
                _ => c.sig[0] ^= 1,
            }
            changed.push(c);
        }
        for c in changed {
            assert_eq!(key.check(&c), Err(CheckpointError::BadSignature));
        }
    }

    #[test]
    fn another_logs_checkpoint_is_refused() {
        let theirs = key(8).sign(42, [9; 32], 1);
        assert!(matches!(
            key(7).check(&theirs),
            Err(CheckpointError::OtherLog { .. })
        ));
        // Relabelled with this log's id, the other key's signature fails.
        let relabelled = SignedCheckpoint {
            log: key(7).log_id(),
            ..theirs
        };
        assert_eq!(
            key(7).check(&relabelled),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn the_keys_have_purposes_of_their_own() {
        let secret = [7u8; 32];
        let checkpoint = crate::crypto::derive_subkey(&secret, b"keyward/v1/audit-checkpoint");
        let chain = crate::crypto::derive_subkey(&secret, b"keyward/v1/audit-chain");
        assert_ne!(*checkpoint, *chain);
        assert_ne!(key(7).log_id().0, checkpoint[..16]);
    }

    #[test]
    fn malformed_text_is_refused_with_a_reason() {
        let good: Value =
            serde_json::from_str(&key(7).sign(1, [0; 32], 5).to_line()).expect("JSON");
        let with = |field: &str, value: Value| {
            let mut v = good.clone();
            v[field] = value;
            v.to_string()
        };
        let cases = [
            ("seq=1".to_owned(), "not JSON"),
            ("[1]".to_owned(), "not a JSON object"),
            (with("format", "other".into()), "\"format\""),
            (with("version", 2.into()), "version 2"),
            (with("extra", 1.into()), "unknown field \"extra\""),
            (with("seq", (-1).into()), "\"seq\""),
            (with("seq", "1".into()), "\"seq\""),
            (with("mac", "abc".into()), "\"mac\" is not 64 hex digits"),
            (with("sig", Value::Null), "\"sig\" is missing"),
            (with("log", "zz".repeat(16).into()), "\"log\""),
            (with("time", "yesterday".into()), "\"time\""),
        ];
        for (text, needle) in cases {
            let err = SignedCheckpoint::parse(&text).expect_err(&text);
            assert!(err.to_string().contains(needle), "{text}: {err}");
        }
    }
}
