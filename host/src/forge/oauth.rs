//! The operator sign-in: authorization code with PKCE (S256). The `state`
//! and the verifier stay on the server (the verifier sealed), are good for
//! [`PENDING_TTL_MS`] and are used up by one conditional UPDATE, so a
//! callback works once even with several hosts behind one database. The
//! sign-in is bound to the browser that started it: the login sets a
//! pre-auth cookie with a nonce whose hash the pending row keeps, and the
//! callback is accepted only with it. Accounts are admitted by the forge's
//! immutable id (`id:` entries, and login entries pinned to the id of their
//! first sign-in).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::config::Admission;
use super::{ForgeError, Forges};
use crate::auth::session::SessionSecret;
use crate::auth::Session;
use crate::crypto::{oauth_pending_aad, oauth_token_aad};
use crate::names::SecretRef;
use crate::runtime::{BaseUrl, TokenRef};
use crate::store::{forge as store, now_ms};

/// How long a started sign-in may take.
pub const PENDING_TTL_MS: i64 = 10 * 60 * 1000;

/// A finished sign-in.
pub struct LoginDone {
    /// The new session.
    pub session: Session,
    /// Its cookie value.
    pub secret: SessionSecret,
    /// The forge account.
    pub login: String,
}

/// A started sign-in: where to send the browser, and the nonce its
/// pre-auth cookie must carry back to the callback.
pub struct LoginStart {
    /// The forge's authorize URL.
    pub url: String,
    /// The pre-auth cookie's value.
    pub browser: BrowserNonce,
}

/// The pre-auth cookie's nonce: 32 random bytes, base64url. No `Debug`: it
/// is a bearer credential for the sign-in until the callback.
pub struct BrowserNonce(Zeroizing<String>);

impl BrowserNonce {
    /// The cookie value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The reference an operator's access token is bound to in a forge call.
pub(crate) fn access_ref(forge: &str) -> SecretRef {
    SecretRef::parse(&format!("operator_oauth:{forge}/ACCESS_TOKEN"))
        .expect("plugin names are valid scope ids")
}

/// The reference an operator's refresh token is bound to in a refresh.
pub(crate) fn refresh_ref(forge: &str) -> SecretRef {
    SecretRef::parse(&format!("operator_oauth:{forge}/REFRESH_TOKEN"))
        .expect("plugin names are valid scope ids")
}

fn random_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    crate::crypto::fill_random(&mut bytes[..]);
    Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..]))
}

fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl Forges {
    /// The base URL of `forge`: configured, else the plugin's default.
    pub(crate) async fn base_url(&self, forge: &str) -> Result<BaseUrl, ForgeError> {
        if let Some(base) = &self.app(forge)?.base_url {
            return Ok(base.clone());
        }
        let info = self.runtime()?.forge_info(self.vault(), forge).await?;
        Ok(BaseUrl::parse(info.default_base_url.trim_end_matches('/'))?)
    }

    /// Whether operators can sign in with `forge` here (a configured app);
    /// [`ForgeError::UnknownForge`] if not.
    pub fn sign_in_configured(&self, forge: &str) -> Result<(), ForgeError> {
        self.app(forge).map(|_| ())
    }

    /// Whether another sign-in may start while at most `max` are live
    /// (counted in the database, so across hosts; [`Self::begin_login`]
    /// sweeps expired rows): none when it may, else the seconds until the
    /// first live one expires. Several hosts checking at once can overshoot
    /// `max` by the starts in flight, which their own limits bound.
    pub async fn pending_full(&self, max: u64) -> Result<Option<u32>, ForgeError> {
        let db = self.vault().db();
        let now = now_ms();
        let (live, first) = store::live_pending(db.reader(), now).await?;
        if live < max {
            return Ok(None);
        }
        let wait_ms = first
            .map_or(PENDING_TTL_MS, |f| f - now)
            .clamp(1000, PENDING_TTL_MS);
        Ok(Some(
            u32::try_from((wait_ms + 999) / 1000).unwrap_or(u32::MAX),
        ))
    }

    /// Starts a sign-in with `forge`: stores a fresh state and PKCE verifier
    /// bound to a fresh browser nonce, and answers the forge's authorize URL
    /// to send the browser to and the nonce for its pre-auth cookie.
    pub async fn begin_login(&self, forge: &str) -> Result<LoginStart, ForgeError> {
        let app = self.app(forge)?.clone();
        let base = self.base_url(forge).await?;
        let state = random_token();
        let verifier = random_token();
        let browser = random_token();
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let hash = state_hash(&state);
        let sealed = self
            .vault()
            .keyring()
            .seal(verifier.as_bytes(), &oauth_pending_aad(&hash));
        let now = now_ms();
        let db = self.vault().db();
        // Abandoned sign-ins go when new ones start.
        store::purge_pending(&mut *db.writer().await?, now).await?;
        let browser_hash = state_hash(&browser);
        let expires = now + PENDING_TTL_MS;
        store::insert_pending(
            &mut *db.writer().await?,
            &hash,
            &browser_hash,
            forge,
            &sealed,
            now,
            expires,
        )
        .await?;
        let url = self
            .runtime()?
            .forge_authorize_url(
                self.vault(),
                forge,
                &base,
                &app.app,
                &state,
                &challenge,
                &app.scopes,
            )
            .await?;
        Ok(LoginStart {
            url,
            browser: BrowserNonce(browser),
        })
    }

    /// Uses up the sign-in `state` if `browser` (the pre-auth cookie's
    /// nonce) is the one it started in: its forge and sealed verifier. A
    /// callback from another browser (login CSRF, a leaked callback URL) is
    /// refused without using the sign-in up, so the browser that started
    /// it can still finish.
    async fn consume_for_browser(
        &self,
        hash: &str,
        browser: Option<&str>,
    ) -> Result<(String, crate::crypto::Sealed), ForgeError> {
        let db = self.vault().db();
        let now = now_ms();
        let Some(expected) = store::pending_browser(db.reader(), hash, now).await? else {
            return Err(ForgeError::BadCallback);
        };
        let given = browser.map(state_hash).unwrap_or_default();
        if !crate::crypto::ct_eq(given.as_bytes(), expected.as_bytes()) {
            tracing::warn!("forge sign-in callback refused: not from the browser that started it");
            return Err(ForgeError::OtherBrowser);
        }
        store::consume_pending(&mut *db.writer().await?, hash, &expected, now)
            .await?
            .ok_or(ForgeError::BadCallback)
    }

    /// Admits `account` if an allow-list entry names its id, or names its
    /// login and the login is pinned to this id (pinned now, at its first
    /// sign-in): a renamed or recycled login is refused.
    async fn admit(
        &self,
        app: &super::ForgeApp,
        account: &crate::runtime::Account,
    ) -> Result<(), ForgeError> {
        let refused = || ForgeError::NotAnOperator(account.login.clone());
        match app.admits(&account.login, &account.id) {
            Admission::ById => Ok(()),
            Admission::No => {
                tracing::warn!(forge = %app.forge, login = %account.login, id = %account.id, "forge sign-in refused: not on the operator allow-list");
                Err(refused())
            }
            Admission::ByLogin(login) => {
                let db = self.vault().db();
                let pinned = store::pin_login(
                    &mut *db.writer().await?,
                    &app.forge,
                    &login,
                    &account.id,
                    now_ms(),
                )
                .await?;
                if pinned == account.id {
                    return Ok(());
                }
                tracing::warn!(forge = %app.forge, %login, id = %account.id, pinned_id = %pinned, "forge sign-in refused: the login belongs to another account than at its first sign-in (renamed or recycled)");
                Err(refused())
            }
        }
    }

    /// Finishes a sign-in: uses up `state`, trades `code` for tokens, asks
    /// the forge who they belong to, admits only allow-listed accounts,
    /// then in ONE transaction stores the tokens and makes `forge` the
    /// active forge; a fresh session follows.
    pub async fn complete_login(
        &self,
        forge: &str,
        code: &str,
        state: &str,
        browser: Option<&str>,
    ) -> Result<LoginDone, ForgeError> {
        let app = self.app(forge)?.clone();
        if state.is_empty() || state.len() > 256 || code.is_empty() || code.len() > 2048 {
            return Err(ForgeError::BadCallback);
        }
        let hash = state_hash(state);
        let db = self.vault().db();
        let (pending_forge, sealed) = self.consume_for_browser(&hash, browser).await?;
        if pending_forge != forge {
            return Err(ForgeError::BadCallback);
        }
        let verifier = self
            .vault()
            .keyring()
            .open(&sealed, &oauth_pending_aad(&hash))
            .map_err(|_| ForgeError::Unreadable)?;
        let verifier =
            std::str::from_utf8(verifier.expose()).map_err(|_| ForgeError::Unreadable)?;
        let base = self.base_url(forge).await?;
        let runtime = self.runtime()?;
        let tokens = runtime
            .forge_exchange_code(self.vault(), forge, &base, &app.app, code, verifier)
            .await?;
        let access = crate::crypto::SecretBytes::new(tokens.access_token.expose().to_vec());
        let account = runtime
            .forge_whoami_with(
                self.vault(),
                forge,
                &base,
                TokenRef::Bound(access_ref(forge), access),
                None,
            )
            .await?;
        self.admit(&app, &account).await?;
        let keyring = self.vault().keyring();
        let now = now_ms();
        let scopes = if account.scopes.is_empty() {
            tokens.scopes.clone()
        } else {
            account.scopes.clone()
        };
        let row = store::NewToken {
            forge_type: forge.to_owned(),
            access: keyring.seal(
                tokens.access_token.expose(),
                &oauth_token_aad(forge, "access"),
            ),
            refresh: tokens
                .refresh_token
                .as_ref()
                .map(|r| keyring.seal(r.expose(), &oauth_token_aad(forge, "refresh"))),
            expires_at: tokens
                .expires_at
                .or(account.expires_at)
                .map(|s| s.saturating_mul(1000)),
            scopes,
            account_login: account.login.clone(),
            account_id: account.id.clone(),
            account_email: account.email.clone(),
            base_url: base.as_str().to_owned(),
            now,
        };
        {
            let mut tx = db.begin_write().await?;
            store::upsert_token(&mut tx, &row).await?;
            store::set_setting(&mut tx, store::ACTIVE_FORGE, forge, now).await?;
            tx.commit().await?;
        }
        let subject = format!("{forge}:{}", account.login);
        let (session, secret) = self
            .inner
            .sessions
            .start(&subject)
            .await
            .map_err(|e| ForgeError::Invalid(e.to_string()))?;
        tracing::info!(%forge, login = %account.login, "operator signed in with a forge; active forge set");
        Ok(LoginDone {
            session,
            secret,
            login: account.login,
        })
    }
}
