//! Calls into the `forge` interface of a forge adapter: one public entry
//! point per export, each a closure over the export handed to the one call
//! path ([`Runtime::forge_call`], then `export.rs`). For the call only, the
//! plugin is granted the base URL's origin and the use at egress (never the
//! reveal) of the token's reference and of the app's client-secret
//! reference.

use futures_util::FutureExt;

use super::bindings::forge::exports::keyward::plugin::forge as wit;
use super::bindings::forge::{ForgeAdapter, ForgeAdapterPre};
use super::bindings::GuestError;
use super::call::CallState;
use super::export::Export;
use super::grants::{BaseUrl, CallGrants};
use super::journal::Journal;
use super::{PluginError, Runtime};
use crate::audit::Access;
use crate::names::SecretRef;
use crate::vault::Vault;

/// The account a forge token belongs to (from `forge.whoami`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Account {
    /// The forge's id, as text.
    pub id: String,
    /// The login name.
    pub login: String,
    /// The display name.
    pub name: Option<String>,
    /// The e-mail address.
    pub email: Option<String>,
    /// The token's scopes, as the forge reports them (empty: it did not say).
    pub scopes: Vec<String>,
    /// When the token expires (Unix seconds), when the forge says.
    pub expires_at: Option<i64>,
}

/// An OAuth application registered at a forge (the host's configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthApp {
    /// The client id (public).
    pub client_id: String,
    /// A reference to the client secret in the store; none for a public
    /// client (PKCE only). Granted to the plugin for each call that uses it.
    pub client_secret: Option<SecretRef>,
    /// The registered redirect URI.
    pub redirect_uri: String,
}

/// Tokens a forge issued, as the adapter read them from the token reply.
pub struct TokenSet {
    /// The access token.
    pub access_token: crate::crypto::SecretBytes,
    /// The refresh token, if any.
    pub refresh_token: Option<crate::crypto::SecretBytes>,
    /// Expiry of the access token (Unix seconds), if the forge says.
    pub expires_at: Option<i64>,
    /// Granted scopes, if the reply says.
    pub scopes: Vec<String>,
}

/// One repository.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Repository {
    /// The forge's id.
    pub id: String,
    /// `owner/name`.
    pub full_name: String,
    /// Members only.
    pub private: bool,
    /// Archived.
    pub archived: bool,
    /// The default branch.
    pub default_branch: Option<String>,
    /// The page for people.
    pub web_url: String,
    /// The HTTPS clone URL.
    pub clone_url: String,
}

/// One page of repositories.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct RepositoryPage {
    /// This page.
    pub repositories: Vec<Repository>,
    /// The next page's cursor; none on the last page.
    pub next: Option<String>,
    /// The total, when the forge says.
    pub total: Option<u64>,
}

/// The token a forge call uses. Either way the plugin gets a reference,
/// writes `${SECRET:…}` and never sees the value.
pub enum TokenRef {
    /// A secret in the store (an agent type's token).
    Stored(SecretRef),
    /// A value the host binds to `reference` for this call only (an
    /// operator's OAuth token, sealed in its own table): usable at egress,
    /// never revealable.
    Bound(SecretRef, crate::crypto::SecretBytes),
}

impl TokenRef {
    fn reference(&self) -> &SecretRef {
        match self {
            TokenRef::Stored(r) | TokenRef::Bound(r, _) => r,
        }
    }
}

/// A forge adapter's self-description (from `forge.info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForgeInfo {
    /// `forgejo`, `github`, …
    pub kind: String,
    /// For people.
    pub display_name: String,
    /// Used when no base URL is configured.
    pub default_base_url: String,
}

/// What a forge call carries besides the export's own arguments.
#[derive(Default)]
struct Extra<'a> {
    /// The OAuth app, for the exports that take one.
    app: Option<&'a OAuthApp>,
    /// The token the call uses.
    token: Option<TokenRef>,
    /// A refresh's journal.
    journal: Option<Journal>,
    /// The caller the call runs for, named in its egress rows.
    on_behalf: Option<Access>,
}

/// The export's common arguments, as the guest sees them.
struct Args {
    base: String,
    app: Option<wit::OauthApp>,
    /// The token's reference (`${SECRET:…}` material), empty if none.
    token: String,
}

impl Args {
    fn app(&self) -> wasmtime::Result<&wit::OauthApp> {
        self.app.as_ref().ok_or_else(|| {
            wasmtime::Error::msg("this forge call needs the OAuth app configuration")
        })
    }
}

impl Runtime {
    /// `forge.info` of the forge adapter `name`.
    pub async fn forge_info(&self, vault: &Vault, name: &str) -> Result<ForgeInfo, PluginError> {
        let (plugin, pre) = self.loaded::<ForgeAdapterPre<CallState>>(name)?;
        let ctx = self.context(&plugin, vault, CallGrants::default());
        let info = self
            .call_export(&plugin, &pre, ctx, None, |store, forge: ForgeAdapter| {
                async move {
                    let info = forge.keyward_plugin_forge().call_info(store).await?;
                    Ok(Ok::<_, GuestError>(info))
                }
                .boxed()
            })
            .await?;
        Ok(ForgeInfo {
            kind: info.kind,
            display_name: info.display_name,
            default_base_url: info.default_base_url,
        })
    }

    /// Runs one `forge` export at `base_url` with what `extra` carries.
    async fn forge_call<T: Send, E: Into<super::ReturnedError> + Send>(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        extra: Extra<'_>,
        export: impl for<'s> FnOnce(
                &'s mut wasmtime::Store<CallState>,
                ForgeAdapter,
                Args,
            ) -> Export<'s, T, E>
            + Send,
    ) -> Result<T, PluginError> {
        let (plugin, pre) = self.loaded::<ForgeAdapterPre<CallState>>(name)?;
        let mut grants =
            CallGrants::manifest(plugin.grants.clone()).with_origin(base_url.origin().clone());
        if let Some(secret) = extra.app.and_then(|a| a.client_secret.as_ref()) {
            grants = grants.with_use(secret);
        }
        let token = extra
            .token
            .as_ref()
            .map(|t| t.reference().to_string())
            .unwrap_or_default();
        if let Some(t) = &extra.token {
            grants = grants.with_use(t.reference());
        }
        let mut ctx = self.context(&plugin, vault, grants);
        ctx.journal = extra.journal;
        ctx.on_behalf = extra.on_behalf;
        if let Some(TokenRef::Bound(reference, value)) = extra.token {
            ctx.redactor.add(value.expose());
            ctx.bound.push((reference, value));
        }
        let args = Args {
            base: base_url.as_str().to_owned(),
            app: extra.app.map(|a| wit::OauthApp {
                client_id: a.client_id.clone(),
                client_secret: a.client_secret.as_ref().map(ToString::to_string),
                redirect_uri: a.redirect_uri.clone(),
            }),
            token,
        };
        self.call_export(&plugin, &pre, ctx, None, move |store, forge| {
            export(store, forge, args)
        })
        .await
    }

    /// `forge.whoami` of the forge adapter `name`: who `token` (a secret
    /// reference) belongs to at `base_url`.
    pub async fn forge_whoami(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: &SecretRef,
    ) -> Result<Account, PluginError> {
        let token = TokenRef::Stored(token.clone());
        self.forge_whoami_with(vault, name, base_url, token, None)
            .await
    }

    /// `forge.whoami` with a stored or a bound token; with `caller` (a
    /// resolver dispatching an agent type), the egress rows name it and
    /// its reason.
    pub async fn forge_whoami_with(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: TokenRef,
        caller: Option<&Access>,
    ) -> Result<Account, PluginError> {
        let extra = Extra {
            token: Some(token),
            on_behalf: caller.cloned(),
            ..Extra::default()
        };
        self.forge_call(vault, name, base_url, extra, |store, forge, args| {
            async move {
                let forge = forge.keyward_plugin_forge();
                let account = forge.call_whoami(store, &args.base, &args.token).await?;
                Ok(account.map(|a| Account {
                    id: a.id,
                    login: a.login,
                    name: a.name,
                    email: a.email,
                    scopes: a.scopes,
                    expires_at: a.expires_at,
                }))
            }
            .boxed()
        })
        .await
    }

    /// `forge.authorize-url`: where to send the operator's browser.
    #[allow(clippy::too_many_arguments)] // each is one of the export's own
    pub async fn forge_authorize_url(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        state: &str,
        code_challenge: &str,
        scopes: &[String],
    ) -> Result<String, PluginError> {
        let extra = Extra {
            app: Some(app),
            ..Extra::default()
        };
        let (state, challenge, scopes) =
            (state.to_owned(), code_challenge.to_owned(), scopes.to_vec());
        self.forge_call(vault, name, base_url, extra, |store, forge, args| {
            async move {
                let forge = forge.keyward_plugin_forge();
                forge
                    .call_authorize_url(store, &args.base, args.app()?, &state, &challenge, &scopes)
                    .await
            }
            .boxed()
        })
        .await
    }

    /// `forge.exchange-code`: the authorization code (and PKCE verifier)
    /// for tokens.
    pub async fn forge_exchange_code(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        code: &str,
        code_verifier: &str,
    ) -> Result<TokenSet, PluginError> {
        let extra = Extra {
            app: Some(app),
            ..Extra::default()
        };
        let (code, verifier) = (code.to_owned(), code_verifier.to_owned());
        self.forge_call(vault, name, base_url, extra, |store, forge, args| {
            async move {
                let forge = forge.keyward_plugin_forge();
                let tokens = forge
                    .call_exchange_code(store, &args.base, args.app()?, &code, &verifier)
                    .await?;
                Ok(tokens.map(token_set))
            }
            .boxed()
        })
        .await
    }

    /// `forge.refresh`: new tokens for the refresh token `refresh`; the
    /// forge's answer is kept or a kept one replayed, as `journal` says.
    pub async fn forge_refresh(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        refresh: TokenRef,
        journal: Journal,
    ) -> Result<TokenSet, PluginError> {
        let extra = Extra {
            app: Some(app),
            token: Some(refresh),
            journal: Some(journal),
            on_behalf: None,
        };
        self.forge_call(vault, name, base_url, extra, |store, forge, args| {
            async move {
                let forge = forge.keyward_plugin_forge();
                let tokens = forge
                    .call_refresh(store, &args.base, args.app()?, &args.token)
                    .await?;
                Ok(tokens.map(token_set))
            }
            .boxed()
        })
        .await
    }

    /// `forge.list-repositories`: one page.
    pub async fn forge_list_repositories(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        token: TokenRef,
        cursor: Option<&str>,
    ) -> Result<RepositoryPage, PluginError> {
        let extra = Extra {
            token: Some(token),
            ..Extra::default()
        };
        let cursor = cursor.map(str::to_owned);
        self.forge_call(vault, name, base_url, extra, |store, forge, args| {
            async move {
                let forge = forge.keyward_plugin_forge();
                let page = forge
                    .call_list_repositories(store, &args.base, &args.token, cursor.as_deref())
                    .await?;
                Ok(page.map(repository_page))
            }
            .boxed()
        })
        .await
    }

    /// `forge.revoke`: revokes `token` at the forge (`unsupported` where
    /// the forge cannot).
    pub async fn forge_revoke(
        &self,
        vault: &Vault,
        name: &str,
        base_url: &BaseUrl,
        app: &OAuthApp,
        token: TokenRef,
    ) -> Result<(), PluginError> {
        let extra = Extra {
            app: Some(app),
            token: Some(token),
            ..Extra::default()
        };
        self.forge_call(vault, name, base_url, extra, |store, forge, args| {
            async move {
                let forge = forge.keyward_plugin_forge();
                forge
                    .call_revoke(store, &args.base, args.app()?, &args.token)
                    .await
            }
            .boxed()
        })
        .await
    }
}

fn token_set(t: wit::TokenSet) -> TokenSet {
    TokenSet {
        access_token: crate::crypto::SecretBytes::new(t.access_token.into_bytes()),
        refresh_token: t
            .refresh_token
            .map(|r| crate::crypto::SecretBytes::new(r.into_bytes())),
        expires_at: t.expires_at,
        scopes: t.scopes,
    }
}

fn repository_page(p: wit::RepositoryPage) -> RepositoryPage {
    RepositoryPage {
        repositories: p
            .repositories
            .into_iter()
            .map(|r| Repository {
                id: r.id,
                full_name: r.full_name,
                private: r.private,
                archived: r.archived,
                default_branch: r.default_branch,
                web_url: r.web_url,
                clone_url: r.clone_url,
            })
            .collect(),
        next: p.next,
        total: p.total,
    }
}
