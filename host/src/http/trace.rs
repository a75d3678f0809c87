//! One log line per request (tower-http's trace layer) and the request id
//! every answer carries in `X-Request-Id`.
//!
//! The line is an `INFO` event of target [`TARGET`] inside a `request` span
//! holding the method, the route template (never the raw path: secret names
//! stay out of the log), the request id and, once the token or session is
//! checked, the accessor; the event adds the status and the duration. No
//! header, body, query or token is ever a field.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::Span;

/// The request id header, read from the request and set on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The tracing target of the per-request line (`KEYWARD_LOG=…,keyward::request=off`
/// silences it).
pub const TARGET: &str = "keyward::request";

/// A request's id: the client's `X-Request-Id` when it is 1–128 characters
/// of `A-Z a-z 0-9 - _ . : / + = @ ~`, otherwise one made here.
#[derive(Clone, Debug)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The client's id if it is acceptable: anything else (empty, too
    /// long, spaces, quotes, control or non-ASCII bytes) is replaced rather
    /// than carried into logs and the access log.
    pub fn parse(given: &[u8]) -> Option<RequestId> {
        let ok = !given.is_empty()
            && given.len() <= MAX_REQUEST_ID_LEN
            && given.iter().all(|&b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'@' | b'~'
                    )
            });
        if !ok {
            return None;
        }
        std::str::from_utf8(given).ok().map(|s| RequestId(s.into()))
    }

    /// A new id: this process's random prefix and a counter, unique across
    /// hosts and cheap (no system call per request).
    pub fn generate() -> RequestId {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without randomness the ids are still unique within the process.
            let _ = getrandom::getrandom(&mut bytes);
            u64::from_le_bytes(bytes)
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        RequestId(format!("{prefix:016x}-{n:x}").into())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Middleware: takes or makes the request's id, puts it in the request's
/// extensions (for the log line) and in force for the access log
/// ([`crate::audit::in_request`]), and returns it in `X-Request-Id`.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let mut all = req.headers().get_all(&REQUEST_ID).iter();
    // Two ids are as good as none: which one would the log carry?
    let given = all.next().filter(|_| all.next().is_none());
    let id = given
        .and_then(|v| RequestId::parse(v.as_bytes()))
        .unwrap_or_else(RequestId::generate);
    if req.headers().contains_key(&REQUEST_ID)
        && given.is_none_or(|v| v.as_bytes() != id.as_str().as_bytes())
    {
        tracing::debug!(request_id = id.as_str(), "X-Request-Id refused (1-{MAX_REQUEST_ID_LEN} of A-Z a-z 0-9 -_.:/+=@~); a new one was made");
    }
    req.extensions_mut().insert(id.clone());
    let mut response = crate::audit::in_request(id.0.clone(), next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Records who is asking on the request's span (called once the token or
/// session is checked).
pub fn record_accessor(accessor: &str) {
    Span::current().record("accessor", accessor);
}

/// The trace layer: a `request` span per request, one line when it is answered.
pub fn layer(
) -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), RequestLine, (), (), ()>
{
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(RequestLine)
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

/// Makes the `request` span.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> Span {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let id = req
            .extensions()
            .get::<RequestId>()
            .map_or("", RequestId::as_str);
        tracing::info_span!(
            target: TARGET,
            "request",
            method = %req.method(),
            route,
            request_id = id,
            accessor = tracing::field::Empty,
        )
    }
}

/// Writes the line when the answer's head is ready.
#[derive(Clone, Copy, Debug)]
pub struct RequestLine;

impl<B> OnResponse<B> for RequestLine {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, _span: &Span) {
        tracing::info!(
            target: TARGET,
            status = response.status().as_u16(),
            duration_ms = latency.as_secs_f64() * 1000.0,
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_and_plain() {
        for ok in [
            "a",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "a/b:c=d+e@f~g_h.i",
        ] {
            assert_eq!(
                RequestId::parse(ok.as_bytes()).map(|i| i.0),
                Some(ok.into())
            );
        }
        let long = "x".repeat(MAX_REQUEST_ID_LEN);
        assert!(RequestId::parse(long.as_bytes()).is_some());
        let too_long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [
            "",
            too_long.as_str(),
            "a b",
            "a\"b",
            "a\\b",
            "a;b",
            "a\nb",
            "a\u{0}b",
            "é",
            "{\"x\":1}",
        ] {
            assert!(RequestId::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a.0, b.0);
        assert!(RequestId::parse(a.as_str().as_bytes()).is_some());
    }
}
