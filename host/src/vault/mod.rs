//! The vault: the one place that holds the keyring, the database and the
//! access-log writer together. Every read of a value goes through here and is
//! logged before the plaintext comes back.

mod archive;
mod checkpoint;
mod deletion;
mod error;
mod keycheck;
mod mutate;
mod rotate;
mod versions;

use std::sync::Arc;

use zeroize::Zeroizing;

pub use archive::{Archived, ArchivedRows, Mark, RETENTION_ACCESSOR};
pub use checkpoint::{ArchiveVerdict, CheckpointVerdict, LogVerdict, Reach};
pub use deletion::{describe_duration, DEFAULT_RETENTION, PURGE_ACCESSOR};
pub use error::{MissingSecretError, VaultError, MAX_DESCRIPTION_LEN, MAX_VALUE_LEN};
pub use keycheck::NewKey;
pub use mutate::{check_description, Put, PutMode};
pub use rotate::RotateReport;

use crate::audit::chain::{self, ChainKey, Head, LogRow, VerifyReport};
use crate::audit::checkpoint::CheckpointKey;
use crate::audit::group_commit::{GroupCommit, Lookup, Resolved};
use crate::audit::{Access, AccessEntry, Action, Outcome};
use crate::config::Config;
use crate::crypto::{Keyring, SecretBytes};
use crate::names::{Scope, SecretName, SecretRef};
use crate::resolve::Context;
use crate::store::keyring::{self as keyring_table, CANARY, LOG_SECRET};
use crate::store::secrets::{self, SecretMeta};
use crate::store::{now_ms, Db, WriteTx};

use keycheck::CANARY_PLAINTEXT;

/// What a caller held to a policy may read (see
/// [`Vault::reveal_all_within`]).
pub trait Limit: Send + Sync {
    /// Whether `scope/name` may be read.
    fn allows(&self, scope: &Scope, name: &SecretName) -> bool;
    /// Why a reference none of whose scopes may be read is refused, for
    /// its `denied` row (never a value).
    fn why_not(&self) -> String;
}

/// The scopes a reference is looked for in, in order.
fn candidates(reference: &SecretRef, ctx: &Context) -> Vec<Scope> {
    match &reference.scope {
        Some(scope) => vec![scope.clone()],
        None => ctx.scopes(),
    }
}

/// The chain head a change's transaction locked (the [`WriteTx`] holds
/// the write turn until it commits).
pub(crate) struct LockedHead {
    head: Head,
}

/// An open store: keyring, database, access log.
#[derive(Clone)]
pub struct Vault {
    db: Db,
    keyring: Arc<Keyring>,
    chain: Arc<ChainKey>,
    checkpoints: Arc<CheckpointKey>,
    log: GroupCommit,
    /// The access-log rows after the history index's mark, read once for
    /// every history request of this host.
    tail: Arc<crate::audit::history_tail::Tail>,
    /// Versions kept per secret, the current one included (0: all).
    max_versions: i64,
    /// How long a deleted secret can be undeleted.
    retention: std::time::Duration,
}

/// Versions kept per secret by default, the current one included; older
/// ones are destroyed (their ciphertext removed, a `destroy` row logged).
pub const DEFAULT_MAX_VERSIONS: i64 = 10;

impl Vault {
    /// Opens (creating on first use) the store named by `config`; a current
    /// key the store does not know is refused (see [`NewKey`]).
    pub async fn open(config: &Config) -> Result<Vault, VaultError> {
        Self::open_with(config, NewKey::Refuse).await
    }

    /// Opens the store, treating a new current key as `new_key` says.
    ///
    /// Order matters: the key is checked against an existing store's canary
    /// *before* anything is written, so a wrong key changes nothing.
    pub async fn open_with(config: &Config, new_key: NewKey) -> Result<Vault, VaultError> {
        let keyring = Keyring::new(&config.master_key, &config.previous_keys);
        let db = Db::connect(&config.database_url).await?;
        if db.is_initialised().await? {
            keycheck::check(&db, &keyring, new_key).await?;
        }
        db.migrate().await?;
        if keyring_table::get(db.reader(), CANARY).await?.is_none() {
            // Both rows in one transaction: a store never has one without the other.
            let now = now_ms();
            let mut log_secret = Zeroizing::new([0u8; 32]);
            getrandom::getrandom(log_secret.as_mut()).expect("the OS random source failed");
            let mut tx = db.begin_write().await?;
            let sealed = keyring.seal(log_secret.as_ref(), &keyring_table::aad(LOG_SECRET));
            keyring_table::insert_if_absent(&mut tx, LOG_SECRET, &sealed, now).await?;
            let sealed = keyring.seal(CANARY_PLAINTEXT, &keyring_table::aad(CANARY));
            keyring_table::insert_if_absent(&mut tx, CANARY, &sealed, now).await?;
            tx.commit().await?;
        }
        // Again: another host may have won the race to record the canary.
        keycheck::check(&db, &keyring, NewKey::Refuse).await?;
        let sealed = keyring_table::get(db.reader(), LOG_SECRET)
            .await?
            .ok_or_else(|| VaultError::Unreadable("the access-log secret (missing)".into()))?;
        let log_secret = keyring
            .open(&sealed, &keyring_table::aad(LOG_SECRET))
            .map_err(|_| VaultError::Unreadable("the access-log secret".into()))?;
        let chain = Arc::new(ChainKey::from_log_secret(log_secret.expose()));
        let checkpoints = Arc::new(CheckpointKey::from_log_secret(log_secret.expose()));
        let keyring = Arc::new(keyring);
        let tail = Arc::new(crate::audit::history_tail::Tail::default());
        let log = GroupCommit::start(&db, keyring.clone(), chain.clone(), tail.clone())?;
        Ok(Vault {
            db,
            keyring,
            chain,
            checkpoints,
            log,
            tail,
            max_versions: i64::from(config.max_versions),
            retention: config.delete_retention,
        })
    }

    /// Keeps `n` versions per secret from now on (0: all of them).
    pub fn with_max_versions(mut self, n: u32) -> Vault {
        self.max_versions = i64::from(n);
        self
    }

    /// The database (for the HTTP layer's health check and for tests).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Whether the access log can take entries now (an empty group through
    /// its writer), for readiness checks.
    pub async fn probe_log(&self) -> Result<(), VaultError> {
        Ok(self.log.probe().await?)
    }

    /// Group-commit counters.
    pub fn log_stats(&self) -> &crate::audit::group_commit::Stats {
        self.log.stats()
    }

    /// Reveals one secret, logged as `action`. A bare name resolves through
    /// `ctx`; the scope it was found in comes back with the value.
    pub async fn reveal(
        &self,
        reference: &SecretRef,
        ctx: &Context,
        access: &Access,
        action: Action,
    ) -> Result<(Scope, SecretBytes), VaultError> {
        let mut values = self
            .resolve(std::slice::from_ref(reference), ctx, access, action)
            .await?;
        values.pop().ok_or_else(|| {
            VaultError::Missing(MissingSecretError {
                missing: vec![reference.to_string()],
            })
        })
    }

    /// Reveals every reference or none: any miss fails the whole call with a
    /// [`VaultError::Missing`] naming every missing reference.
    pub async fn reveal_all(
        &self,
        references: &[SecretRef],
        ctx: &Context,
        access: &Access,
        action: Action,
    ) -> Result<Vec<SecretBytes>, VaultError> {
        Ok(self
            .resolve(references, ctx, access, action)
            .await?
            .into_iter()
            .map(|(_, value)| value)
            .collect())
    }

    /// [`Vault::reveal_all`] for a caller held to `limit`: each reference is
    /// looked for only in the scopes `limit` lets it read (a bare name
    /// resolves along the allowed part of its chain). A reference with no
    /// such scope is denied: one `denied` row each, with `limit`'s reason
    /// as detail, and nothing is revealed ([`VaultError::Denied`]).
    pub async fn reveal_all_within(
        &self,
        references: &[SecretRef],
        ctx: &Context,
        access: &Access,
        action: Action,
        limit: &dyn Limit,
    ) -> Result<Vec<SecretBytes>, VaultError> {
        let mut lookups = Vec::with_capacity(references.len());
        let mut denied = Vec::new();
        for r in references {
            let candidates = candidates(r, ctx);
            let allowed: Vec<Scope> = candidates
                .iter()
                .filter(|s| limit.allows(s, &r.name))
                .cloned()
                .collect();
            if allowed.is_empty() {
                let scope = candidates.first().map_or("global", Scope::as_str);
                denied.push(
                    AccessEntry::new(access, action, Outcome::Denied, scope, r.name.as_str())
                        .with_detail(crate::audit::clip(
                            &limit.why_not(),
                            crate::audit::MAX_LOGGED_TEXT,
                        )),
                );
            } else {
                lookups.push(Lookup {
                    name: r.name.clone(),
                    scopes: allowed,
                });
            }
        }
        if !denied.is_empty() {
            let references = denied
                .iter()
                .map(|e| format!("{}/{}", e.scope, e.name))
                .collect();
            self.log.record(denied).await?;
            return Err(VaultError::Denied { references });
        }
        Ok(self
            .resolve_lookups(references, lookups, access, action)
            .await?
            .into_iter()
            .map(|(_, value)| value)
            .collect())
    }

    async fn resolve(
        &self,
        references: &[SecretRef],
        ctx: &Context,
        access: &Access,
        action: Action,
    ) -> Result<Vec<(Scope, SecretBytes)>, VaultError> {
        let lookups = references
            .iter()
            .map(|r| Lookup {
                name: r.name.clone(),
                scopes: candidates(r, ctx),
            })
            .collect();
        self.resolve_lookups(references, lookups, access, action)
            .await
    }

    /// Resolves `lookups` (one per reference, in order), all or nothing.
    async fn resolve_lookups(
        &self,
        references: &[SecretRef],
        lookups: Vec<Lookup>,
        access: &Access,
        action: Action,
    ) -> Result<Vec<(Scope, SecretBytes)>, VaultError> {
        let resolved = self.log.lookup(access, action, lookups, true).await?;
        let mut values = Vec::with_capacity(resolved.len());
        let mut missing = Vec::new();
        let mut unreadable = None;
        for (reference, result) in references.iter().zip(resolved) {
            match result {
                Resolved::Found { scope, value } => values.push((scope, value)),
                Resolved::Missing => missing.push(reference.to_string()),
                Resolved::Unreadable { scope } => {
                    unreadable = Some(format!("{scope}/{}", reference.name));
                }
                Resolved::Withheld => {}
            }
        }
        if !missing.is_empty() {
            return Err(VaultError::Missing(MissingSecretError { missing }));
        }
        if let Some(which) = unreadable {
            return Err(VaultError::Unreadable(which));
        }
        self.log
            .stats()
            .revealed
            .fetch_add(values.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(values)
    }

    /// Logs, durably, the use of values that are not in the secret table
    /// (a call-scoped value the host bound to `references`, such as an
    /// operator's OAuth token sent at egress). Returns once the rows are
    /// committed, so the use is on record before the value leaves.
    pub async fn record_used(
        &self,
        access: &Access,
        action: Action,
        references: &[SecretRef],
    ) -> Result<(), VaultError> {
        let entries = references
            .iter()
            .map(|r| {
                let scope = r.scope.as_ref().map_or("global", |s| s.as_str());
                AccessEntry::new(access, action, Outcome::Ok, scope, r.name.as_str())
            })
            .collect();
        self.log.record(entries).await?;
        Ok(())
    }

    /// Logs a refused lookup (the caller was not allowed to ask).
    pub async fn record_denied(
        &self,
        access: &Access,
        action: Action,
        scope: &str,
        name: &str,
        detail: &str,
    ) -> Result<(), VaultError> {
        let entry =
            AccessEntry::new(access, action, Outcome::Denied, scope, name).with_detail(detail);
        self.log.record(vec![entry]).await?;
        self.log
            .stats()
            .denied
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Metadata of every secret (optionally one scope); never a value.
    pub async fn list(&self, scope: Option<&Scope>) -> Result<Vec<SecretMeta>, VaultError> {
        Ok(secrets::list(self.db.reader(), scope.map(Scope::as_str)).await?)
    }

    /// One secret's metadata.
    pub async fn meta(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta, VaultError> {
        match secrets::get(self.db.reader(), scope.as_str(), name.as_str()).await? {
            Some(row) => Ok(row.meta),
            None => Err(VaultError::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// One secret's access-log rows, newest first, at most `limit`, and
    /// where older ones may be.
    pub async fn history(
        &self,
        scope: &Scope,
        name: &SecretName,
        query: &chain::HistoryQuery,
        limit: i64,
    ) -> Result<chain::LogPage, VaultError> {
        Ok(chain::history(
            &self.db,
            &self.tail,
            scope.as_str(),
            name.as_str(),
            query,
            limit,
        )
        .await?)
    }

    /// Rows of the whole log matching `query`, newest first, at most
    /// `limit`, and where older ones may be.
    pub async fn search_log(
        &self,
        query: &chain::HistoryQuery,
        limit: i64,
    ) -> Result<chain::LogPage, VaultError> {
        Ok(chain::search(&self.db, &self.tail, query, limit).await?)
    }

    /// Access-log rows this host's history and search requests have read
    /// from the database (`keyward_access_log_history_rows_read`).
    pub fn history_rows_read(&self) -> u64 {
        self.tail.rows_read()
    }

    /// The newest `limit` access-log rows, oldest first.
    pub async fn log_tail(&self, limit: i64) -> Result<Vec<LogRow>, VaultError> {
        Ok(chain::tail(self.db.reader(), limit).await?)
    }

    /// Access-log rows after `seq`, oldest first.
    pub async fn log_after(&self, seq: i64, limit: i64) -> Result<Vec<LogRow>, VaultError> {
        Ok(chain::after(self.db.reader(), seq, limit).await?)
    }

    /// The chain head.
    pub async fn log_head(&self) -> Result<Head, VaultError> {
        Ok(chain::head(self.db.reader()).await?)
    }

    /// Recomputes every MAC of the access log still in the database (from
    /// the archive mark on, if rows were archived).
    pub async fn verify_log(&self) -> Result<VerifyReport, VaultError> {
        match self.live_start(Head::start()).await? {
            Ok(from) => Ok(chain::verify_after(&self.db, &self.chain, &from).await?),
            Err(broken) => Ok(broken),
        }
    }

    /// Begins a change's transaction with the chain head locked. The
    /// transaction holds the write turn until [`Vault::commit_logged`] (or
    /// until it is dropped), so the access-log writer lets the change have
    /// SQLite's write lock meanwhile.
    pub(crate) async fn begin_logged(&self) -> Result<(WriteTx, LockedHead), VaultError> {
        let mut tx = self.db.begin_write().await?;
        let (head, _) = chain::lock_head(&mut tx).await?;
        Ok((tx, LockedHead { head }))
    }

    pub(crate) async fn commit_logged(
        &self,
        mut tx: WriteTx,
        head: LockedHead,
        entries: &[AccessEntry],
    ) -> Result<(), VaultError> {
        chain::append(
            &mut tx,
            self.db.backend,
            &self.chain,
            head.head,
            now_ms(),
            entries,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
