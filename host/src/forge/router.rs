//! The active-forge router (getOperatorAdapter): the active forge's plugin
//! bound to the operator's token, refreshed when it is about to expire.
//!
//! A refresh token may be single-use, so one token is refreshed once: a
//! process-local lock keeps this host's callers to one request, and the
//! lease in the token row (a conditional UPDATE on its generation) keeps
//! other hosts sharing the database out; they wait for the generation to
//! move and use the new token.

use std::time::Duration;

use serde::Serialize;

use super::oauth::{access_ref, refresh_ref};
use super::{ForgeError, Forges};
use crate::crypto::SecretBytes;
use crate::crypto::{oauth_refresh_answer_aad, oauth_token_aad};
use crate::runtime::{
    BaseUrl, Journal, PluginError, RepositoryPage, ReturnedError, TokenRef, TokenSet,
};
use crate::store::{forge as store, now_ms};

/// A token this close to its expiry is refreshed before use.
pub const REFRESH_MARGIN_MS: i64 = 60_000;
/// How long a refresh lease lasts (a crashed holder frees it by then).
pub const LEASE_MS: i64 = 30_000;
/// How long a caller waits for another host's refresh.
pub const WAIT_FOR_OTHER: Duration = Duration::from_secs(20);

/// `GET /me`: who is signed in on the active forge.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Me {
    /// The active forge.
    pub forge_type: String,
    /// The operator's login there.
    pub account_login: String,
    /// The operator's e-mail address there, when the forge showed it at
    /// sign-in.
    pub account_email: Option<String>,
    /// The forge's base URL.
    pub base_url: String,
    /// When this token row was last written (ms since the epoch).
    pub since: i64,
    /// When the stored access token expires (ms since the epoch), when the
    /// forge says; a refresh moves it on.
    pub expires_at: Option<i64>,
}

/// The active forge and a usable token for it.
struct Bound {
    forge: String,
    base: BaseUrl,
    row: store::OAuthTokenRow,
}

impl Forges {
    /// The active forge's name, or [`ForgeError::NoActiveForge`].
    pub async fn active_forge(&self) -> Result<String, ForgeError> {
        store::get_setting(self.vault().db().reader(), store::ACTIVE_FORGE)
            .await?
            .ok_or(ForgeError::NoActiveForge)
    }

    /// `GET /me`.
    pub async fn me(&self) -> Result<Me, ForgeError> {
        let forge = self.active_forge().await?;
        let row = store::get_token(self.vault().db().reader(), &forge)
            .await?
            .ok_or(ForgeError::NoActiveForge)?;
        Ok(Me {
            forge_type: forge,
            account_login: row.account_login,
            account_email: row.account_email,
            base_url: row.base_url,
            since: row.updated_at,
            expires_at: row.expires_at,
        })
    }

    async fn bound(&self) -> Result<Bound, ForgeError> {
        let forge = self.active_forge().await?;
        let row = store::get_token(self.vault().db().reader(), &forge)
            .await?
            .ok_or(ForgeError::NoActiveForge)?;
        let base = BaseUrl::parse(&row.base_url)?;
        let row = if expiring(&row) {
            self.refresh(&forge, &base, row.generation).await?
        } else {
            row
        };
        Ok(Bound { forge, base, row })
    }

    fn access_token(
        &self,
        forge: &str,
        row: &store::OAuthTokenRow,
    ) -> Result<TokenRef, ForgeError> {
        let value = self
            .vault()
            .keyring()
            .open(&row.access, &oauth_token_aad(forge, "access"))
            .map_err(|_| ForgeError::Unreadable)?;
        Ok(TokenRef::Bound(access_ref(forge), value))
    }

    /// Runs `call` with the active forge's token; when the forge says the
    /// token is no longer good and it can be refreshed, refreshes once and
    /// runs `call` again.
    async fn with_operator_token<T, F, Fut>(&self, call: F) -> Result<T, ForgeError>
    where
        F: Fn(String, BaseUrl, TokenRef) -> Fut,
        Fut: std::future::Future<Output = Result<T, PluginError>>,
    {
        let bound = self.bound().await?;
        let token = self.access_token(&bound.forge, &bound.row)?;
        match call(bound.forge.clone(), bound.base.clone(), token).await {
            Err(PluginError::Returned {
                error: ReturnedError::Unauthorized(_),
                ..
            }) if bound.row.refresh.is_some() => {
                let row = self
                    .refresh(&bound.forge, &bound.base, bound.row.generation)
                    .await?;
                let token = self.access_token(&bound.forge, &row)?;
                Ok(call(bound.forge, bound.base, token).await?)
            }
            other => Ok(other?),
        }
    }

    /// `GET /forge/repos`: one page of the operator's repositories on the
    /// active forge.
    pub async fn repositories(&self, cursor: Option<&str>) -> Result<RepositoryPage, ForgeError> {
        let runtime = self.runtime()?.clone();
        let vault = self.vault().clone();
        let cursor = cursor.map(str::to_owned);
        self.with_operator_token(|forge, base, token| {
            let (runtime, vault, cursor) = (runtime.clone(), vault.clone(), cursor.clone());
            async move {
                runtime
                    .forge_list_repositories(&vault, &forge, &base, token, cursor.as_deref())
                    .await
            }
        })
        .await
    }

    /// The active forge's account, asked of the forge with the operator's
    /// token (refreshing it if needed).
    pub async fn operator_whoami(&self) -> Result<crate::runtime::Account, ForgeError> {
        let runtime = self.runtime()?.clone();
        let vault = self.vault().clone();
        self.with_operator_token(|forge, base, token| {
            let (runtime, vault) = (runtime.clone(), vault.clone());
            async move {
                runtime
                    .forge_whoami_with(&vault, &forge, &base, token, None)
                    .await
            }
        })
        .await
    }

    /// Refreshes `forge`'s token if its generation is still `seen`; answers
    /// the row to use. Exactly one refresh request per generation, across
    /// callers and hosts; a refresh the forge answered is finished even if
    /// its host lost the lease or died (the kept answer, runtime/journal.rs).
    async fn refresh(
        &self,
        forge: &str,
        base: &BaseUrl,
        seen: i64,
    ) -> Result<store::OAuthTokenRow, ForgeError> {
        let lock = self.refresh_lock(forge);
        let _one_here = lock.lock().await;
        let db = self.vault().db();
        let deadline = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let row = store::get_token(db.reader(), forge)
                .await?
                .ok_or(ForgeError::NoActiveForge)?;
            if row.generation != seen {
                // Someone (here or on another host) already refreshed it.
                return Ok(row);
            }
            let Some(sealed_refresh) = row.refresh.clone() else {
                return Err(ForgeError::Expired(forge.to_owned()));
            };
            // Needs no lease: the forge has answered, only the write is left.
            if let Some(done) = self.finish_kept(forge, base, &row, &sealed_refresh).await? {
                return Ok(done);
            }
            let now = now_ms();
            let holder = &self.inner.holder;
            if store::take_refresh_lease(
                &mut *db.writer().await?,
                forge,
                seen,
                holder,
                now,
                now + LEASE_MS,
            )
            .await?
            {
                let result = self.refresh_held(forge, base, &row, &sealed_refresh).await;
                if result.is_err() {
                    store::release_refresh_lease(&mut *db.writer().await?, forge, holder).await?;
                    // A holder whose lease ran out may have kept the answer
                    // that made the forge refuse ours (its token was spent).
                    if let Some(done) = self.finish_kept(forge, base, &row, &sealed_refresh).await?
                    {
                        return Ok(done);
                    }
                }
                return result;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ForgeError::RefreshBusy(forge.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The refresh itself, under the lease: the forge's answer is kept
    /// before the plugin reads it, then the new set is stored.
    async fn refresh_held(
        &self,
        forge: &str,
        base: &BaseUrl,
        row: &store::OAuthTokenRow,
        sealed_refresh: &crate::crypto::Sealed,
    ) -> Result<store::OAuthTokenRow, ForgeError> {
        let mut attempt = [0u8; 8];
        crate::crypto::fill_random(&mut attempt);
        let journal = Journal::Keep {
            forge: forge.to_owned(),
            generation: row.generation,
            attempt: hex::encode(attempt),
        };
        let tokens = self
            .call_refresh(forge, base, sealed_refresh, journal)
            .await?;
        // A crash here loses nothing: the answer is kept (crash-tested).
        crate::migrate::fault::kill_point("refresh-answered");
        self.store_refreshed(forge, row, &tokens).await
    }

    /// Finishes a refresh of `row`'s generation that the forge already
    /// answered (on any host), from its kept answer; none when there is
    /// none. A kept answer that yields no tokens (a forge error sent with
    /// 200) is dropped.
    async fn finish_kept(
        &self,
        forge: &str,
        base: &BaseUrl,
        row: &store::OAuthTokenRow,
        sealed_refresh: &crate::crypto::Sealed,
    ) -> Result<Option<store::OAuthTokenRow>, ForgeError> {
        let db = self.vault().db();
        for (attempt, sealed) in
            store::kept_refresh_answers(db.reader(), forge, row.generation).await?
        {
            let aad = oauth_refresh_answer_aad(forge, row.generation, &attempt);
            let Ok(kept) = self.vault().keyring().open(&sealed, &aad) else {
                // Sealed under a key no longer given: nothing to finish from.
                tracing::error!(%forge, key_id = %sealed.key_id, "a kept refresh answer does not open; dropped");
                store::drop_refresh_answer(
                    &mut *db.writer().await?,
                    forge,
                    row.generation,
                    &attempt,
                )
                .await?;
                continue;
            };
            let replay = Journal::Replay(zeroize::Zeroizing::new(kept.expose().to_vec()));
            match self.call_refresh(forge, base, sealed_refresh, replay).await {
                Ok(tokens) => {
                    tracing::info!(%forge, "refresh finished from the forge's kept answer");
                    return self.store_refreshed(forge, row, &tokens).await.map(Some);
                }
                Err(e) => {
                    tracing::warn!(%forge, error = %e, "a kept refresh answer yields no tokens; dropped");
                    store::drop_refresh_answer(
                        &mut *db.writer().await?,
                        forge,
                        row.generation,
                        &attempt,
                    )
                    .await?;
                }
            }
        }
        Ok(None)
    }

    /// The plugin's `refresh` with `forge`'s refresh token, journaled.
    async fn call_refresh(
        &self,
        forge: &str,
        base: &BaseUrl,
        sealed_refresh: &crate::crypto::Sealed,
        journal: Journal,
    ) -> Result<TokenSet, ForgeError> {
        let app = self.app(forge)?.clone();
        let refresh: SecretBytes = self
            .vault()
            .keyring()
            .open(sealed_refresh, &oauth_token_aad(forge, "refresh"))
            .map_err(|_| ForgeError::Unreadable)?;
        Ok(self
            .runtime()?
            .forge_refresh(
                self.vault(),
                forge,
                base,
                &app.app,
                TokenRef::Bound(refresh_ref(forge), refresh),
                journal,
            )
            .await?)
    }

    /// Stores a refresh's tokens over `row`'s generation (whoever holds the
    /// lease now) and answers the row to use.
    async fn store_refreshed(
        &self,
        forge: &str,
        row: &store::OAuthTokenRow,
        tokens: &TokenSet,
    ) -> Result<store::OAuthTokenRow, ForgeError> {
        let keyring = self.vault().keyring();
        let update = store::Refreshed {
            access: keyring.seal(
                tokens.access_token.expose(),
                &oauth_token_aad(forge, "access"),
            ),
            // A forge that does not rotate refresh tokens keeps the old one.
            refresh: match &tokens.refresh_token {
                Some(r) => Some(keyring.seal(r.expose(), &oauth_token_aad(forge, "refresh"))),
                None => row.refresh.clone(),
            },
            expires_at: tokens.expires_at.map(|s| s.saturating_mul(1000)),
            scopes: if tokens.scopes.is_empty() {
                row.scopes.clone()
            } else {
                tokens.scopes.clone()
            },
            now: now_ms(),
        };
        let db = self.vault().db();
        if store::finish_refresh(&mut *db.writer().await?, forge, row.generation, &update).await? {
            tracing::info!(%forge, "operator forge token refreshed");
        } else {
            // Another host stored this same refresh (from the kept answer).
            tracing::info!(%forge, "refresh already stored by another host");
        }
        store::get_token(db.reader(), forge)
            .await?
            .ok_or(ForgeError::NoActiveForge)
    }
}

fn expiring(row: &store::OAuthTokenRow) -> bool {
    row.expires_at
        .is_some_and(|at| at <= now_ms() + REFRESH_MARGIN_MS)
}
