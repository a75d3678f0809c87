//! Outbound HTTP for plugins: granted origins only, addresses checked after
//! resolution, redirects kept on the origin, `${SECRET:…}` expanded at
//! egress (each expansion logged), response bodies capped, and expanded
//! values redacted from what comes back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, LOCATION};
use reqwest::{Method, Url};

use super::bindings::forge::keyward::plugin::outbound::{Request, Response};
use super::bindings::GuestError;
use super::call::CallCtx;
use super::expand::{expand, Expanded};
use super::grants::Origin;
use crate::audit::Action;

/// Redirect hops followed within one origin before giving up.
pub const MAX_REDIRECTS: usize = 5;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;
/// Largest request body a plugin may send.
pub const MAX_REQUEST_BODY: usize = 16 << 20;

/// Headers the host owns: a plugin may not set them, because they would let
/// it smuggle a second request or confuse the connection.
pub(super) const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    // The host owns the response's framing too: a compressed or partial
    // answer could carry an expanded value in a form redaction cannot see.
    "accept-encoding",
    "range",
    "if-range",
];

/// The shared HTTP client and its guarded resolver.
#[derive(Clone)]
pub struct Egress {
    client: reqwest::Client,
    resolver: Arc<GuardedResolver>,
}

impl Egress {
    /// A client that never follows redirects on its own, ignores proxy
    /// variables (a proxy would hide where a request really goes) and
    /// resolves names through [`GuardedResolver`]. `hosts` pins names to
    /// addresses before DNS (tests use it; so can operators with split DNS).
    pub fn new(hosts: HashMap<String, Vec<IpAddr>>) -> anyhow::Result<Self> {
        let resolver = Arc::new(GuardedResolver { hosts });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(resolver.clone())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Egress { client, resolver })
    }
}

/// Resolves names and drops addresses a plugin must not reach by name:
/// everything but public unicast and the operator's allow list
/// ([`super::addresses`]). `localhost` is the exception that proves the
/// rule: it may only resolve to loopback.
pub struct GuardedResolver {
    hosts: HashMap<String, Vec<IpAddr>>,
}

/// Whether a non-loopback origin may not connect to `ip` (the policy is in
/// [`super::addresses`]).
pub use super::addresses::forbidden;

impl GuardedResolver {
    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let all: Vec<IpAddr> = match self.hosts.get(host) {
            Some(pinned) => pinned.clone(),
            None => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .map(|a| a.ip())
                .collect(),
        };
        let allowed: Vec<IpAddr> = if host == "localhost" {
            all.iter().copied().filter(IpAddr::is_loopback).collect()
        } else {
            all.iter().copied().filter(|ip| !forbidden(*ip)).collect()
        };
        if allowed.is_empty() {
            return Err(format!(
                "{host} resolves only to addresses plugins may not reach by name: {}",
                super::addresses::explain(&all)
            ));
        }
        Ok(allowed)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let hosts = self.hosts.clone();
        Box::pin(async move {
            let me = GuardedResolver { hosts };
            let addrs = me.lookup(&host).await?;
            let iter: reqwest::dns::Addrs =
                Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(iter)
        })
    }
}

type Outcome = wasmtime::Result<Result<Response, GuestError>>;

/// `outbound.fetch`.
pub(crate) async fn fetch(call: &mut CallCtx, req: Request) -> Outcome {
    let Request {
        method,
        url,
        headers,
        body,
    } = req;
    let method = match method.to_ascii_uppercase().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD") => {
            Method::from_bytes(m.as_bytes()).expect("a known method")
        }
        _ => {
            return super::host::invalid(
                call,
                format!(
                    "method {:?} is not one of GET POST PUT PATCH DELETE HEAD",
                    super::error::clip(&method)
                ),
            )
            .await
        }
    };
    let url = match Url::parse(&url) {
        Ok(u) => u,
        Err(e) => {
            return super::host::invalid(call, format!("URL {:?}: {e}", super::error::clip(&url)))
                .await
        }
    };
    let origin = match Origin::of_url(&url) {
        Ok(o) => o,
        Err(why) => return super::host::invalid(call, format!("URL {url}: {why}")).await,
    };
    let refusal = if call.grants.origin(&origin) {
        address_check(call, &origin).await
    } else {
        Some(format!(
            "origin {origin} is not granted to plugin {}",
            call.plugin
        ))
    };
    if let Some(why) = refusal {
        return super::host::deny(call, Action::Fetch, "outbound", &origin.to_string(), why).await;
    }
    if headers.len() > MAX_HEADERS {
        return super::host::invalid(call, format!("at most {MAX_HEADERS} headers per request"))
            .await;
    }
    if body.as_ref().is_some_and(|b| b.len() > MAX_REQUEST_BODY) {
        return super::host::invalid(
            call,
            format!("request bodies are limited to {MAX_REQUEST_BODY} bytes"),
        )
        .await;
    }
    let expanded = match expand(call, &origin, &headers, body.as_deref()).await? {
        Ok(e) => e,
        Err(e) => return Ok(Err(e)),
    };
    send(call, method, url, origin, expanded).await
}

/// A non-loopback origin whose host is, or resolves only to, an address a
/// plugin must not reach is refused up front with a clear reason. (The
/// client's resolver enforces the same rule again at connect time, so a
/// name that changes its answer in between gains nothing.)
async fn address_check(call: &CallCtx, origin: &Origin) -> Option<String> {
    if origin.is_loopback() {
        return None;
    }
    let bare = origin.host().trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return super::addresses::refusal(ip).map(|why| format!("{origin} is {why}"));
    }
    call.egress.resolver.lookup(bare).await.err()
}

async fn send(
    call: &mut CallCtx,
    mut method: Method,
    mut url: Url,
    origin: Origin,
    expanded: Expanded,
) -> Outcome {
    let Expanded { headers, mut body } = expanded;
    for _hop in 0..=MAX_REDIRECTS {
        if call.outbound_used >= call.limits.outbound_calls {
            return Ok(Err(GuestError::Limit(format!(
                "at most {} outbound requests per call",
                call.limits.outbound_calls
            ))));
        }
        call.outbound_used += 1;
        let mut request = call
            .egress
            .client
            .request(method.clone(), url.clone())
            .header(ACCEPT_ENCODING, "identity");
        for (name, value) in &headers {
            let mut value = match HeaderValue::from_bytes(value) {
                Ok(v) => v,
                Err(_) => {
                    return super::host::invalid(
                        call,
                        format!("the value of header {name} is not a valid header value"),
                    )
                    .await
                }
            };
            value.set_sensitive(true);
            request = request.header(name.clone(), value);
        }
        if let Some(b) = &body {
            request = request.body(b.to_vec());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Err(GuestError::Upstream(describe(&e, &origin)))),
        };
        let status = response.status();
        if status.is_redirection() {
            if let Some(location) = response.headers().get(LOCATION) {
                let next = match location.to_str().ok().and_then(|l| url.join(l).ok()) {
                    Some(n) => n,
                    None => {
                        return Ok(Err(GuestError::Upstream(format!(
                            "{origin} answered {status} with an unusable Location"
                        ))))
                    }
                };
                let next_origin = Origin::of_url(&next).ok();
                if next_origin.as_ref() != Some(&origin) {
                    let target = next_origin.map_or_else(
                        || format!("{}://{}", next.scheme(), next.host_str().unwrap_or("?")),
                        |o| o.to_string(),
                    );
                    let why = format!(
                        "{origin} redirected to {target}; redirects to another origin are not followed"
                    );
                    return super::host::deny(call, Action::Fetch, "outbound", &target, why).await;
                }
                // 303, and 301/302 after a POST, become a GET without a body
                // (what browsers do); 307 and 308 repeat the request as is.
                if status.as_u16() == 303
                    || (matches!(status.as_u16(), 301 | 302) && method == Method::POST)
                {
                    if method != Method::HEAD {
                        method = Method::GET;
                    }
                    body = None;
                }
                url = next;
                continue;
            }
        }
        return read(call, &origin, response).await;
    }
    Ok(Err(GuestError::Upstream(format!(
        "{origin}: more than {MAX_REDIRECTS} redirects"
    ))))
}

/// Reads the response within the size limit and redacts expanded values.
async fn read(call: &CallCtx, origin: &Origin, mut response: reqwest::Response) -> Outcome {
    let cap = call.limits.response_bytes;
    let too_big = || {
        Ok(Err(GuestError::Limit(format!(
            "the response from {origin} is larger than the plugin's limit of {cap} bytes"
        ))))
    };
    if response.content_length().is_some_and(|n| n > cap) {
        return too_big();
    }
    let status = response.status().as_u16();
    let redactor = &call.expanded;
    // Asked for `identity`, a server that compresses anyway is refused when
    // the request carried an expanded value: redaction cannot see into it.
    let encoded = response
        .headers()
        .get_all(CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded && !redactor.is_empty() {
        return Ok(Err(GuestError::Upstream(format!(
            "{origin} answered with a Content-Encoding though the host asked for identity; \
             refused, because the request carried an expanded secret"
        ))));
    }
    // Redacted as bytes, then decoded: a value in invalid UTF-8 would
    // otherwise be turned into replacement characters and missed.
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            let value = redactor.redact(v.as_bytes());
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > cap {
                    return too_big();
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Ok(Err(GuestError::Upstream(describe(&e, origin)))),
        }
    }
    let body = if redactor.is_empty() {
        body
    } else {
        redactor.redact(&body)
    };
    Ok(Ok(Response {
        status,
        headers,
        body,
    }))
}

/// A transport error in one line, with its causes (never a header value:
/// reqwest errors carry the URL, which holds no expanded secret).
fn describe(e: &reqwest::Error, origin: &Origin) -> String {
    let mut text = format!("{origin}: ");
    text.push_str(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    super::error::clip(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_link_local_and_friends_are_forbidden_by_name() {
        for bad in [
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "10.0.0.1",
            "192.168.1.1",
        ] {
            assert!(forbidden(bad.parse().expect("ip")), "{bad}");
        }
        for good in ["140.82.112.3", "2606:4700::1"] {
            assert!(!forbidden(good.parse().expect("ip")), "{good}");
        }
    }

    #[tokio::test]
    async fn a_name_pinned_to_loopback_is_refused_but_localhost_is_kept_to_loopback() {
        let mut hosts = HashMap::new();
        hosts.insert(
            "rebind.test".to_owned(),
            vec!["127.0.0.1".parse().expect("ip")],
        );
        hosts.insert(
            "mixed.test".to_owned(),
            vec![
                "127.0.0.1".parse().expect("ip"),
                "140.82.112.3".parse().expect("ip"),
            ],
        );
        let r = GuardedResolver { hosts };
        assert!(r.lookup("rebind.test").await.is_err());
        assert_eq!(
            r.lookup("mixed.test").await.expect("one usable"),
            vec!["140.82.112.3".parse::<IpAddr>().expect("ip")]
        );
        let local = r.lookup("localhost").await.expect("localhost resolves");
        assert!(local.iter().all(IpAddr::is_loopback));
    }
}
