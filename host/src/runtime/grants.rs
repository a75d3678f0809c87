//! What a plugin may touch: secret references (with `*` inside one scope)
//! and HTTP origins. A manifest grants some; the host adds call-scoped ones
//! (a forge call's token reference and base URL) for the length of one call.
//!
//! A secret grant says how the secret may be used ([`Use`]): `reveal` hands
//! the plugin the bytes; `egress` only lets the reference appear in a
//! `${SECRET:…}` placeholder the host expands on the way out. Everything the
//! host grants for one call is egress-only, so a forge adapter uses the
//! operator's token without ever holding it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::error::PluginError;
use crate::names::{Scope, SecretRef};

/// Why a grant or an origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// A secret grant breaks the grammar.
    #[error("invalid secret grant {0:?}: use NAME, SCOPE/NAME or SCOPE/PREFIX* (`*` only at the end of the name)")]
    Secret(String),
    /// An origin breaks the grammar or the transport rule.
    #[error("invalid origin {0:?}: {1}")]
    Origin(String, &'static str),
}

/// One granted secret pattern: a scope and a name, the name optionally
/// ending in `*`. A bare `NAME` means `global/NAME`, because plugin calls
/// carry no instance or agent-type context to resolve through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretGrant {
    scope: Scope,
    name: String,
    prefix: bool,
}

impl SecretGrant {
    /// Parses `NAME`, `SCOPE/NAME` or `SCOPE/PREFIX*` (a lone `*` is a prefix of "").
    pub fn parse(text: &str) -> Result<Self, GrantError> {
        let bad = || GrantError::Secret(text.chars().take(80).collect());
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(bad());
        }
        // Check the fixed part with the reference grammar, using a stand-in
        // name when the pattern is `SCOPE/*`.
        let probe = match (prefix, body.strip_suffix('/')) {
            (true, Some(scope)) => format!("{scope}/x"),
            (true, None) if body.is_empty() => return Err(bad()),
            _ => body.to_owned(),
        };
        let parsed = SecretRef::parse(&probe).map_err(|_| bad())?;
        let name = if prefix && body.ends_with('/') {
            String::new()
        } else {
            parsed.name.as_str().to_owned()
        };
        Ok(SecretGrant {
            scope: parsed.scope.unwrap_or_else(Scope::global),
            name,
            prefix,
        })
    }

    /// The grant that is exactly one reference.
    pub fn exact(reference: &SecretRef) -> Self {
        SecretGrant {
            scope: reference.scope.clone().unwrap_or_else(Scope::global),
            name: reference.name.as_str().to_owned(),
            prefix: false,
        }
    }

    /// Whether `reference` (a bare name meaning `global`) is covered.
    pub fn covers(&self, reference: &SecretRef) -> bool {
        let scope = reference.scope.as_ref().map_or("global", Scope::as_str);
        let name = reference.name.as_str();
        scope == self.scope.as_str()
            && if self.prefix {
                name.starts_with(&self.name)
            } else {
                name == self.name
            }
    }
}

impl fmt::Display for SecretGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.scope, self.name)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// A forge's base URL, parsed once (when the forge is configured, not on
/// every call): the text handed to the plugin and the origin granted to it
/// for the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl {
    text: String,
    origin: Origin,
}

impl BaseUrl {
    /// Parses an absolute `https://` URL (or `http://` to a loopback host),
    /// without credentials in it. A bad one is [`PluginError::Invalid`].
    pub fn parse(text: &str) -> Result<Self, PluginError> {
        let shown: String = text.chars().take(120).collect();
        let url = reqwest::Url::parse(text)
            .map_err(|e| PluginError::Invalid(format!("base URL {shown:?}: {e}")))?;
        let origin = Origin::of_url(&url)
            .map_err(|why| PluginError::Invalid(format!("base URL {shown:?}: {why}")))?;
        Ok(BaseUrl {
            text: text.to_owned(),
            origin,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

/// A granted origin: scheme, host and port, compared exactly.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `https://host[:port]` (or `http://` for a loopback host). A
    /// path, query, user or fragment is refused: a grant names an origin,
    /// not a resource.
    pub fn parse(text: &str) -> Result<Self, GrantError> {
        let bad = |why| GrantError::Origin(text.chars().take(120).collect(), why);
        let url = reqwest::Url::parse(text).map_err(|_| bad("not an absolute URL"))?;
        if url.path() != "/" && !url.path().is_empty()
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(bad("an origin has no path, query or fragment"));
        }
        if text.trim_end_matches('/').len() < text.len() - 1 {
            return Err(bad("an origin has no path, query or fragment"));
        }
        Self::of_url(&url).map_err(bad)
    }

    /// The origin of an absolute URL, with the transport rule applied:
    /// `https`, or `http` only when the host is loopback (nothing leaves the
    /// machine in the clear).
    pub fn of_url(url: &reqwest::Url) -> Result<Self, &'static str> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials in a URL are refused; use a ${SECRET:…} header");
        }
        let scheme = url.scheme().to_owned();
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err("no host"),
        };
        let port = url.port_or_known_default().ok_or("no port")?;
        let origin = Origin { scheme, host, port };
        match origin.scheme.as_str() {
            "https" => Ok(origin),
            "http" if origin.is_loopback() => Ok(origin),
            "http" => Err("plain http is allowed only to a loopback host; use https"),
            _ => Err("scheme must be https (or http to a loopback host)"),
        }
    }

    /// Whether the host is `localhost` or a loopback address literal. Only
    /// such an origin may connect to loopback addresses.
    pub fn is_loopback(&self) -> bool {
        if self.host == "localhost" {
            return true;
        }
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The host as written in a URL (IPv6 in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when none was written).
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// How a granted secret may be used. Ordered: a reveal grant allows egress
/// too, never the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Use {
    /// Only in a `${SECRET:…}` placeholder of an outbound request, expanded
    /// by the host; `secrets.reveal` is refused (`denied`, and logged).
    Egress,
    /// `secrets.reveal` hands the plugin the bytes (and egress works too).
    Reveal,
}

/// Everything one call may touch: the manifest's grants plus the call's own.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// Secret patterns the plugin may reveal (manifest `secrets = [...]`).
    pub secrets: Vec<SecretGrant>,
    /// Secret patterns the plugin may only use at egress (manifest
    /// `use = [...]`).
    pub uses: Vec<SecretGrant>,
    /// Origins.
    pub origins: Vec<Origin>,
}

impl Grants {
    /// How `reference` may be used, if at all (the strongest grant wins).
    pub fn secret(&self, reference: &SecretRef) -> Option<Use> {
        if self.secrets.iter().any(|g| g.covers(reference)) {
            Some(Use::Reveal)
        } else if self.uses.iter().any(|g| g.covers(reference)) {
            Some(Use::Egress)
        } else {
            None
        }
    }

    /// Whether `origin` is granted.
    pub fn origin(&self, origin: &Origin) -> bool {
        self.origins.contains(origin)
    }
}

/// What one call may use: the plugin's manifest grants (shared, never
/// copied per call) plus the grants the host adds for this call only.
#[derive(Clone, Debug, Default)]
pub struct CallGrants {
    manifest: Option<Arc<Grants>>,
    call: Grants,
}

impl CallGrants {
    /// The manifest's grants and nothing else.
    pub fn manifest(grants: Arc<Grants>) -> Self {
        CallGrants {
            manifest: Some(grants),
            call: Grants::default(),
        }
    }

    /// Lets `reference` be used at egress in this call, and only there: what
    /// the host hands a plugin for one call (a forge token, an OAuth client
    /// secret, a migration's `*_ref` option) is never revealed to it.
    pub fn with_use(mut self, reference: &SecretRef) -> Self {
        self.call.uses.push(SecretGrant::exact(reference));
        self
    }

    /// Adds an origin for this call.
    pub fn with_origin(mut self, origin: Origin) -> Self {
        self.call.origins.push(origin);
        self
    }

    /// How `reference` may be used in this call, if at all.
    pub fn secret(&self, reference: &SecretRef) -> Option<Use> {
        let manifest = self.manifest.as_ref().and_then(|m| m.secret(reference));
        self.call.secret(reference).max(manifest)
    }

    /// Whether `origin` is granted.
    pub fn origin(&self, origin: &Origin) -> bool {
        self.call.origin(origin) || self.manifest.as_ref().is_some_and(|m| m.origin(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> SecretRef {
        SecretRef::parse(text).expect("valid reference")
    }

    #[test]
    fn secret_grants_match_exactly_or_by_prefix_within_one_scope() {
        let g = SecretGrant::parse("plugin:forgejo/*").expect("valid");
        assert!(g.covers(&r("plugin:forgejo/token")));
        assert!(!g.covers(&r("plugin:forgejo2/token")));
        assert!(!g.covers(&r("token")));
        let g = SecretGrant::parse("plugin:forgejo/TOKEN_*").expect("valid");
        assert!(g.covers(&r("plugin:forgejo/TOKEN_A")));
        assert!(!g.covers(&r("plugin:forgejo/OTHER")));
        let g = SecretGrant::parse("DEPLOY_KEY").expect("valid");
        assert!(g.covers(&r("DEPLOY_KEY")));
        assert!(g.covers(&r("global/DEPLOY_KEY")));
        assert!(!g.covers(&r("instance:a/DEPLOY_KEY")));
        assert!(!g.covers(&r("DEPLOY_KEY2")));
    }

    #[test]
    fn call_grants_are_egress_only_and_reveal_is_the_stronger_grant() {
        let manifest = Grants {
            secrets: vec![SecretGrant::parse("plugin:p/*").expect("valid")],
            uses: vec![SecretGrant::parse("plugin:q/*").expect("valid")],
            origins: Vec::new(),
        };
        let call = CallGrants::manifest(Arc::new(manifest))
            .with_use(&r("TOKEN"))
            .with_use(&r("plugin:p/a"));
        assert_eq!(call.secret(&r("TOKEN")), Some(Use::Egress));
        assert_eq!(call.secret(&r("global/TOKEN")), Some(Use::Egress));
        assert_eq!(call.secret(&r("plugin:q/x")), Some(Use::Egress));
        assert_eq!(call.secret(&r("plugin:p/a")), Some(Use::Reveal));
        assert_eq!(call.secret(&r("OTHER")), None);
    }

    #[test]
    fn hostile_secret_grants_are_refused() {
        for bad in [
            "",
            "*",
            "**",
            "a*b",
            "*/x",
            "plugin:*/x",
            "x/y/z",
            "bad scope/x",
            "a/",
            "/a",
            "plugin:x/a*b*",
            "name with space",
        ] {
            assert!(SecretGrant::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn origins_are_scheme_host_port_and_plain_http_only_to_loopback() {
        let o = Origin::parse("https://Codeberg.org").expect("valid");
        assert_eq!(o.to_string(), "https://codeberg.org:443");
        assert_eq!(
            Origin::parse("https://codeberg.org:443/").expect("valid"),
            o
        );
        assert!(Origin::parse("http://127.0.0.1:3000")
            .expect("valid")
            .is_loopback());
        assert!(Origin::parse("http://[::1]:3000")
            .expect("valid")
            .is_loopback());
        assert!(Origin::parse("http://localhost:3000")
            .expect("valid")
            .is_loopback());
        for bad in [
            "http://codeberg.org",
            "ftp://codeberg.org",
            "https://codeberg.org/api",
            "https://codeberg.org?x=1",
            "https://user:pw@codeberg.org",
            "codeberg.org",
            "https://",
            "https://codeberg.org//",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
