//! `${SECRET:…}` expansion at egress: every placeholder in a plugin's
//! request headers and body must name a granted secret; all of a request's
//! are revealed in one logged group (action `egress`, the origin as the
//! reason) and written in — `Basic` credentials encoded by the host.

use reqwest::header::HeaderName;
use zeroize::Zeroizing;

use super::bindings::GuestError;
use super::call::CallCtx;
use super::egress::RESERVED;
use super::grants::Origin;
use crate::audit::{Access, Action};
use crate::crypto::SecretBytes;
use crate::resolve::Context;
use crate::template;

/// `Basic ${SECRET_BASIC:USER:REF}` → (USER, REF); other text → none; the
/// placeholder anywhere else, or malformed → an error.
pub(super) fn basic_placeholder(value: &str) -> Result<Option<(&str, &str)>, &'static str> {
    const OPEN: &str = "${SECRET_BASIC:";
    if !value.contains(OPEN) {
        return Ok(None);
    }
    let inner = value
        .strip_prefix("Basic ")
        .and_then(|v| v.strip_prefix(OPEN))
        .and_then(|v| v.strip_suffix('}'))
        .ok_or("${SECRET_BASIC:USER:REF} must be a whole header value after `Basic `")?;
    // A Basic user id cannot hold a colon; a reference can (its scope).
    let (user, reference) = inner
        .split_once(':')
        .ok_or("${SECRET_BASIC:USER:REF} needs a user and a reference")?;
    if user.is_empty() || reference.is_empty() || inner.contains(['{', '}', '$']) {
        return Err("${SECRET_BASIC:USER:REF} needs a user and a reference");
    }
    Ok(Some((user, reference)))
}

/// `Basic base64(USER:value)`, built in a zeroizing buffer.
fn basic_credentials(user: &str, value: &[u8]) -> Zeroizing<Vec<u8>> {
    use base64::Engine as _;
    let mut pair = Zeroizing::new(Vec::with_capacity(user.len() + 1 + value.len()));
    pair.extend_from_slice(user.as_bytes());
    pair.push(b':');
    pair.extend_from_slice(value);
    let mut out = Zeroizing::new(b"Basic ".to_vec());
    let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
    out.extend_from_slice(encoded.as_bytes());
    out
}

/// The reason of an egress row: the origin, and for a call run on behalf
/// of a resolver, that caller and its stated reason (clipped to what the
/// log keeps), so the row says who asked as well as which plugin sent.
fn egress_reason(call: &CallCtx, origin: &Origin) -> String {
    match &call.on_behalf {
        None => format!("egress to {origin}"),
        Some(by) => super::host::clip_logged(&format!(
            "egress to {origin} for {}: {}",
            by.accessor(),
            by.reason()
        )),
    }
}

/// Headers and body with every `${SECRET:…}` replaced by its value.
pub(super) struct Expanded {
    pub headers: Vec<(HeaderName, Zeroizing<Vec<u8>>)>,
    pub body: Option<Zeroizing<Vec<u8>>>,
}

/// Expands placeholders in header values and (UTF-8) bodies. Every
/// reference must be granted; all are revealed in one logged group with
/// action `egress` and the origin as the reason.
pub(super) async fn expand(
    call: &mut CallCtx,
    origin: &Origin,
    headers: &[(String, String)],
    body: Option<&[u8]>,
) -> wasmtime::Result<Result<Expanded, GuestError>> {
    let mut names = Vec::with_capacity(headers.len());
    for (name, _) in headers {
        let parsed = match HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => n,
            Err(_) => {
                return super::host::invalid(
                    call,
                    format!("header name {:?} is not valid", super::error::clip(name)),
                )
                .await
            }
        };
        if RESERVED.contains(&parsed.as_str()) {
            return super::host::invalid(call, format!("header {parsed} is set by the host")).await;
        }
        names.push(parsed);
    }
    // Parse every text that may hold placeholders.
    let body_text = body.and_then(|b| std::str::from_utf8(b).ok());
    // A value expanded into a form body is encoded for it: a raw `&`, `=`,
    // `+` or `%` would split or alter the plugin's fields.
    let form_body = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("content-type")
            && value
                .trim_start()
                .get(..33)
                .is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    // `Basic ${SECRET_BASIC:USER:REF}` (a whole header value) becomes HTTP
    // Basic credentials of USER and REF's value: a plugin cannot base64 a
    // value it never sees (GitHub's revoke authenticates the client so).
    let mut basic_users: Vec<Option<&str>> = Vec::with_capacity(headers.len());
    let mut rewritten: Vec<String> = Vec::new();
    for (_, value) in headers {
        match basic_placeholder(value) {
            Ok(Some((user, reference))) => {
                basic_users.push(Some(user));
                rewritten.push(format!("${{SECRET:{reference}}}"));
            }
            Ok(None) => {
                basic_users.push(None);
                rewritten.push(String::new());
            }
            Err(why) => return super::host::invalid(call, why.into()).await,
        }
    }
    let mut texts: Vec<&str> = headers
        .iter()
        .zip(&rewritten)
        .zip(&basic_users)
        .map(|(((_, v), r), user)| {
            if user.is_some() {
                r.as_str()
            } else {
                v.as_str()
            }
        })
        .collect();
    if let Some(text) = body_text {
        texts.push(text);
    }
    let mut templates = Vec::with_capacity(texts.len());
    for text in &texts {
        match template::parse(text) {
            Ok(t) => templates.push(t),
            Err(e) => return super::host::invalid(call, format!("placeholder: {e}")).await,
        }
    }
    let refs: Vec<_> = templates
        .iter()
        .flat_map(|t| t.refs().iter().cloned())
        .collect();
    for reference in &refs {
        if call.grants.secret(reference).is_none() {
            let scope = reference.scope.as_ref().map_or("global", |s| s.as_str());
            let why = format!(
                "{reference} is not granted to plugin {} (in an outbound request to {origin})",
                call.plugin
            );
            let name = reference.name.as_str().to_owned();
            return super::host::deny(call, Action::Egress, scope, &name, why).await;
        }
    }
    // Values the host bound for this call are not in the store: their use
    // is logged here, the rest are revealed (and logged) by the vault.
    let (bound, stored): (Vec<_>, Vec<_>) = refs
        .iter()
        .cloned()
        .partition(|r| call.bound.iter().any(|(b, _)| b == r));
    let mut values = Vec::with_capacity(refs.len());
    if !refs.is_empty() {
        let access = Access::new(call.accessor.to_string(), egress_reason(call, origin))
            .map_err(|e| wasmtime::Error::msg(e.to_string()))?;
        if !bound.is_empty() {
            if let Err(e) = call
                .vault
                .record_used(&access, Action::Egress, &bound)
                .await
            {
                return Ok(Err(super::host::vault_error(e)?));
            }
        }
        let mut revealed = if stored.is_empty() {
            Vec::new()
        } else {
            match call
                .vault
                .reveal_all(&stored, &Context::default(), &access, Action::Egress)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    if let crate::vault::VaultError::Missing(_) = e {
                        // Misses are logged rows: they share the refusal budget.
                        super::host::spend_refusal(call, Action::Egress, &stored[0]).await?;
                    }
                    return Ok(Err(super::host::vault_error(e)?));
                }
            }
        }
        .into_iter();
        for reference in &refs {
            match call.bound.iter().find(|(b, _)| b == reference) {
                Some((_, value)) => values.push(SecretBytes::new(value.expose().to_vec())),
                None => values.push(
                    revealed
                        .next()
                        .ok_or_else(|| wasmtime::Error::msg("the vault returned too few values"))?,
                ),
            }
        }
    }
    for v in &values {
        call.redactor.add(v.expose());
        call.expanded.add(v.expose());
    }
    let mut offset = 0;
    let mut rendered = Vec::with_capacity(templates.len());
    let body_at = body_text.map(|_| templates.len() - 1);
    for (i, t) in templates.iter().enumerate() {
        let n = t.refs().len();
        let these = &values[offset..offset + n];
        rendered.push(if form_body && body_at == Some(i) {
            let encoded: Vec<SecretBytes> = these
                .iter()
                .map(|v| {
                    let mut encoded = super::redact::form_encode(v.expose());
                    // Moved, not copied: the one buffer is wiped on drop.
                    SecretBytes::new(std::mem::take(&mut *encoded))
                })
                .collect();
            t.render(&encoded)
        } else {
            t.render(these)
        });
        offset += n;
    }
    let body = match (body, body_text) {
        (Some(_), Some(_)) => rendered.pop(),
        (Some(raw), None) => Some(Zeroizing::new(raw.to_vec())),
        (None, _) => None,
    };
    Ok(Ok(Expanded {
        headers: names
            .into_iter()
            .zip(rendered)
            .zip(basic_users)
            .map(|((name, value), user)| match user {
                Some(user) => {
                    let basic = basic_credentials(user, &value);
                    // An echoing server must not hand the encoded form back.
                    call.redactor.add(&basic[6..]);
                    call.expanded.add(&basic[6..]);
                    (name, basic)
                }
                None => (name, value),
            })
            .collect(),
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_placeholders_are_whole_values_or_refused() {
        assert_eq!(basic_placeholder("token abc"), Ok(None));
        assert_eq!(
            basic_placeholder("Basic ${SECRET_BASIC:Iv1.abc:plugin:github/client-secret}"),
            Ok(Some(("Iv1.abc", "plugin:github/client-secret")))
        );
        for bad in [
            "Bearer ${SECRET_BASIC:a:b}",
            "Basic ${SECRET_BASIC:a:b} trailing",
            "Basic ${SECRET_BASIC:nouser}",
            "Basic ${SECRET_BASIC::ref}",
            "Basic ${SECRET_BASIC:a:}",
            "Basic ${SECRET_BASIC:a:${SECRET:b}}",
        ] {
            assert!(basic_placeholder(bad).is_err(), "{bad}");
        }
        assert_eq!(
            &basic_credentials("user", b"pass")[..],
            b"Basic dXNlcjpwYXNz"
        );
    }
}
