//! The `forge` export: the [`ForgeAdapter`] trait a forge adapter
//! implements, the [`export_forge!`](crate::export_forge) macro that exports
//! it, and conveniences on the interface's records.
//!
//! The trait is the SDK's own, not the generated `Guest`: every operation
//! but `info` and `whoami` has a default, so a plugin implements only what
//! its forge (or its test) needs, and a new export in the WIT does not break
//! every plugin at once. The OAuth operations (`authorize_url`,
//! `exchange_code`, `refresh`) follow the adapter's
//! [`oauth`](ForgeAdapter::oauth) description of its flow; the others, and
//! those of an adapter without one, answer [`ForgeError::Unsupported`].

use crate::bindings::forge::exports::keyward::plugin::forge as wit;
use crate::oauth::OauthFlow;
use crate::Error;

pub use wit::{
    Account, ForgeError, ForgeInfo, OauthApp, RateLimit, Repository, RepositoryPage, TokenSet,
};

/// What a forge adapter does; implement it and call
/// [`export_forge!`](crate::export_forge).
///
/// Every reference (`token`, `refresh_token`, [`OauthApp::client_secret`])
/// is a secret *reference*, not a value: write
/// [`secret_ref`](crate::secret_ref) of it into a header or body and the host
/// expands it at egress. Host calls fail with [`Error`], which `?` turns into
/// [`ForgeError::Host`].
pub trait ForgeAdapter {
    /// Describes the adapter. Must not call the host.
    fn info() -> ForgeInfo;

    /// The forge's OAuth flow as data (endpoints, default scopes, how its
    /// token endpoint answers), which the defaults of `authorize_url`,
    /// `exchange_code` and `refresh` follow, prefixing errors with
    /// [`info`](ForgeAdapter::info)'s `kind`. `None`, the default: those
    /// answer [`ForgeError::Unsupported`] unless implemented. Must not call
    /// the host.
    fn oauth() -> Option<OauthFlow> {
        None
    }

    /// The forge's authorize URL for `app`, with `state`, the PKCE S256
    /// `code_challenge` and `scopes` (empty: the adapter's defaults). Must not
    /// call the host.
    fn authorize_url(
        base_url: String,
        app: OauthApp,
        state: String,
        code_challenge: String,
        scopes: Vec<String>,
    ) -> Result<String, ForgeError> {
        let flow = oauth_flow::<Self>("authorize-url")?;
        Ok(flow.authorize_url(&base_url, &app, &state, &code_challenge, scopes))
    }

    /// Trades an authorization `code` (with the PKCE `code_verifier`) for
    /// tokens.
    fn exchange_code(
        base_url: String,
        app: OauthApp,
        code: String,
        code_verifier: String,
    ) -> Result<TokenSet, ForgeError> {
        let flow = oauth_flow::<Self>("exchange-code")?;
        flow.exchange_code(&Self::info().kind, &base_url, &app, &code, &code_verifier)
    }

    /// Trades the refresh token behind the reference `refresh_token` for new
    /// tokens.
    fn refresh(
        base_url: String,
        app: OauthApp,
        refresh_token: String,
    ) -> Result<TokenSet, ForgeError> {
        let flow = oauth_flow::<Self>("refresh")?;
        flow.refresh(&Self::info().kind, &base_url, &app, &refresh_token)
    }

    /// Who the token behind the reference `token` belongs to.
    fn whoami(base_url: String, token: String) -> Result<Account, ForgeError>;

    /// One page of the repositories the token's account can see; `cursor` is
    /// `None` for the first page, else a page's `next`. The default reads
    /// the cursor as a page number ([`wire::page_cursor`](crate::wire::page_cursor):
    /// anything else is `host(invalid)`) and asks
    /// [`repository_page`](ForgeAdapter::repository_page) for it; a forge
    /// whose pages have opaque cursors implements this instead.
    fn list_repositories(
        base_url: String,
        token: String,
        cursor: Option<String>,
    ) -> Result<RepositoryPage, ForgeError> {
        let page = crate::wire::page_cursor(cursor.as_deref(), &Self::info().kind)?;
        Self::repository_page(base_url, token, page)
    }

    /// Page `page` (1 is the first) of the repositories the token's account
    /// can see, for a forge that pages by number; its `next` is the next
    /// page's number as text.
    fn repository_page(
        base_url: String,
        token: String,
        page: u64,
    ) -> Result<RepositoryPage, ForgeError> {
        let _ = (base_url, token, page);
        Err(ForgeError::unsupported::<Self>("list-repositories"))
    }

    /// Revokes the token behind the reference `token` at the forge.
    fn revoke(base_url: String, app: OauthApp, token: String) -> Result<(), ForgeError> {
        let _ = (base_url, app, token);
        Err(ForgeError::unsupported::<Self>("revoke"))
    }
}

/// The flow of adapter `A` for operation `what`, or `unsupported`.
fn oauth_flow<A: ForgeAdapter + ?Sized>(what: &str) -> Result<OauthFlow, ForgeError> {
    A::oauth().ok_or_else(|| ForgeError::unsupported::<A>(what))
}

/// Exports a [`ForgeAdapter`] implementation as the plugin's `forge`
/// interface: `keyward_plugin_sdk::export_forge!(MyAdapter);`, once, at the
/// top level of the plugin crate.
///
/// It emits a private shim that implements the generated `Guest` by calling
/// the adapter, plus the component's exports and the custom section that
/// describes the world, so only the world a plugin exports ends up in its
/// component.
#[macro_export]
macro_rules! export_forge {
    ($adapter:ty) => {
        const _: () = {
            struct KeywardForgeShim;

            impl $crate::bindings::forge::exports::keyward::plugin::forge::Guest
                for KeywardForgeShim
            {
                fn info() -> $crate::ForgeInfo {
                    <$adapter as $crate::ForgeAdapter>::info()
                }

                fn authorize_url(
                    base_url: ::std::string::String,
                    app: $crate::OauthApp,
                    state: ::std::string::String,
                    code_challenge: ::std::string::String,
                    scopes: ::std::vec::Vec<::std::string::String>,
                ) -> ::core::result::Result<::std::string::String, $crate::ForgeError> {
                    <$adapter as $crate::ForgeAdapter>::authorize_url(
                        base_url,
                        app,
                        state,
                        code_challenge,
                        scopes,
                    )
                }

                fn exchange_code(
                    base_url: ::std::string::String,
                    app: $crate::OauthApp,
                    code: ::std::string::String,
                    code_verifier: ::std::string::String,
                ) -> ::core::result::Result<$crate::TokenSet, $crate::ForgeError> {
                    <$adapter as $crate::ForgeAdapter>::exchange_code(
                        base_url,
                        app,
                        code,
                        code_verifier,
                    )
                }

                fn refresh(
                    base_url: ::std::string::String,
                    app: $crate::OauthApp,
                    refresh_token: ::std::string::String,
                ) -> ::core::result::Result<$crate::TokenSet, $crate::ForgeError> {
                    <$adapter as $crate::ForgeAdapter>::refresh(base_url, app, refresh_token)
                }

                fn whoami(
                    base_url: ::std::string::String,
                    token: ::std::string::String,
                ) -> ::core::result::Result<$crate::Account, $crate::ForgeError> {
                    <$adapter as $crate::ForgeAdapter>::whoami(base_url, token)
                }

                fn list_repositories(
                    base_url: ::std::string::String,
                    token: ::std::string::String,
                    cursor: ::core::option::Option<::std::string::String>,
                ) -> ::core::result::Result<$crate::RepositoryPage, $crate::ForgeError> {
                    <$adapter as $crate::ForgeAdapter>::list_repositories(base_url, token, cursor)
                }

                fn revoke(
                    base_url: ::std::string::String,
                    app: $crate::OauthApp,
                    token: ::std::string::String,
                ) -> ::core::result::Result<(), $crate::ForgeError> {
                    <$adapter as $crate::ForgeAdapter>::revoke(base_url, app, token)
                }
            }

            $crate::bindings::forge::export_forge_guest!(
                KeywardForgeShim with_types_in $crate::bindings::forge
            );
        };
    };
}

impl From<Error> for ForgeError {
    /// A failed host call, unchanged, so that the host can tell its own
    /// refusal (`denied`, audited) from the forge's answer.
    fn from(error: Error) -> Self {
        ForgeError::Host(error)
    }
}

impl ForgeError {
    /// `unsupported` for operation `what` of adapter `A`, the default of
    /// every optional [`ForgeAdapter`] method.
    fn unsupported<A: ForgeAdapter + ?Sized>(what: &str) -> Self {
        ForgeError::Unsupported(format!("{}: {what} is not supported", A::info().kind))
    }

    /// The human-readable text, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            ForgeError::Unauthorized(m)
            | ForgeError::Forbidden(m)
            | ForgeError::NotFound(m)
            | ForgeError::InvalidGrant(m)
            | ForgeError::Upstream(m)
            | ForgeError::Transport(m)
            | ForgeError::Unsupported(m) => m,
            ForgeError::RateLimited(limit) => &limit.message,
            ForgeError::Host(error) => error.message(),
        }
    }

    /// The same kind of error with `what: ` in front of its text (for
    /// `host`, in front of the host error's text), e.g.
    /// `gitlab: POST /oauth/token → 400: invalid_grant: …`.
    #[must_use]
    pub fn context(self, what: &str) -> Self {
        let prefix = |m: String| format!("{what}: {m}");
        match self {
            ForgeError::Unauthorized(m) => ForgeError::Unauthorized(prefix(m)),
            ForgeError::Forbidden(m) => ForgeError::Forbidden(prefix(m)),
            ForgeError::NotFound(m) => ForgeError::NotFound(prefix(m)),
            ForgeError::InvalidGrant(m) => ForgeError::InvalidGrant(prefix(m)),
            ForgeError::Upstream(m) => ForgeError::Upstream(prefix(m)),
            ForgeError::Transport(m) => ForgeError::Transport(prefix(m)),
            ForgeError::Unsupported(m) => ForgeError::Unsupported(prefix(m)),
            ForgeError::RateLimited(RateLimit {
                retry_after,
                message,
            }) => ForgeError::RateLimited(RateLimit {
                retry_after,
                message: prefix(message),
            }),
            ForgeError::Host(error) => ForgeError::Host(error.context(what)),
        }
    }
}

impl ForgeInfo {
    /// An adapter's description: its `kind` (also the prefix of its error
    /// messages), the name operators see, and the base URL used when the
    /// forge's configuration names none.
    pub fn new(
        kind: impl Into<String>,
        display_name: impl Into<String>,
        default_base_url: impl Into<String>,
    ) -> Self {
        ForgeInfo {
            kind: kind.into(),
            display_name: display_name.into(),
            default_base_url: default_base_url.into(),
        }
    }
}

impl Account {
    /// An account with only an id and a login; set the other fields as the
    /// forge reports them.
    pub fn new(id: impl Into<String>, login: impl Into<String>) -> Self {
        Account {
            id: id.into(),
            login: login.into(),
            name: None,
            email: None,
            scopes: Vec::new(),
            expires_at: None,
        }
    }

    /// An account from a forge's user record: the numeric `id` as text, the
    /// `login`, and the `name` and `email` unless blank (forges send `""`
    /// for an unset name or a hidden e-mail address).
    pub fn from_user(
        id: i64,
        login: impl Into<String>,
        name: Option<String>,
        email: Option<String>,
    ) -> Self {
        Account {
            name: name.filter(|s| !s.trim().is_empty()),
            email: email.filter(|s| !s.trim().is_empty()),
            ..Account::new(id.to_string(), login)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bare;

    impl ForgeAdapter for Bare {
        fn info() -> ForgeInfo {
            ForgeInfo::new("bare", "Bare", "https://bare.example")
        }

        fn whoami(_base_url: String, _token: String) -> Result<Account, ForgeError> {
            Ok(Account::new("1", "me"))
        }
    }

    fn app() -> OauthApp {
        OauthApp {
            client_id: "id".into(),
            client_secret: None,
            redirect_uri: "https://keyward.example/cb".into(),
        }
    }

    #[test]
    fn optional_operations_default_to_unsupported() {
        let unsupported = |r: Result<(), ForgeError>, what: &str| {
            assert_eq!(
                r,
                Err(ForgeError::Unsupported(format!(
                    "bare: {what} is not supported"
                )))
            );
        };
        unsupported(
            Bare::authorize_url("b".into(), app(), "s".into(), "c".into(), vec![]).map(drop),
            "authorize-url",
        );
        unsupported(
            Bare::exchange_code("b".into(), app(), "c".into(), "v".into()).map(drop),
            "exchange-code",
        );
        unsupported(
            Bare::refresh("b".into(), app(), "r".into()).map(drop),
            "refresh",
        );
        unsupported(
            Bare::list_repositories("b".into(), "t".into(), None).map(drop),
            "list-repositories",
        );
        unsupported(Bare::revoke("b".into(), app(), "t".into()), "revoke");
        assert_eq!(
            Bare::whoami("b".into(), "t".into()),
            Ok(Account::new("1", "me"))
        );
    }

    struct Flowing;

    impl ForgeAdapter for Flowing {
        fn info() -> ForgeInfo {
            ForgeInfo::new("flowing", "Flowing", "https://flowing.example")
        }

        fn oauth() -> Option<OauthFlow> {
            Some(OauthFlow::new("/authorize", "/token").default_scopes(&["read"]))
        }

        fn whoami(_base_url: String, _token: String) -> Result<Account, ForgeError> {
            Ok(Account::new("1", "me"))
        }
    }

    #[test]
    fn an_oauth_flow_gives_the_authorize_url() {
        let url = Flowing::authorize_url(
            "https://f.example/".into(),
            app(),
            "s".into(),
            "c".into(),
            vec![],
        )
        .expect("a flow");
        assert_eq!(
            url,
            "https://f.example/authorize?response_type=code&client_id=id\
             &redirect_uri=https%3A%2F%2Fkeyward.example%2Fcb&state=s&scope=read\
             &code_challenge=c&code_challenge_method=S256"
        );
    }

    #[test]
    fn a_host_error_converts_unchanged() {
        fn call() -> Result<(), ForgeError> {
            Err(Error::Denied("origin".into()))?;
            Ok(())
        }
        assert_eq!(
            call(),
            Err(ForgeError::Host(Error::Denied("origin".into())))
        );
    }

    #[test]
    fn context_and_message_reach_every_kind() {
        let e = ForgeError::Host(Error::Limit("calls".into())).context("github");
        assert_eq!(e, ForgeError::Host(Error::Limit("github: calls".into())));
        assert_eq!(e.message(), "github: calls");
        let e = ForgeError::RateLimited(RateLimit {
            retry_after: Some(3),
            message: "slow down".into(),
        })
        .context("gitlab");
        assert_eq!(e.message(), "gitlab: slow down");
        assert!(matches!(
            e,
            ForgeError::RateLimited(RateLimit {
                retry_after: Some(3),
                ..
            })
        ));
        assert_eq!(
            ForgeError::InvalidGrant("used".into())
                .context("forgejo")
                .message(),
            "forgejo: used"
        );
    }
}
