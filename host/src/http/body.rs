//! JSON request bodies, with every way a body can be wrong answered in the
//! API's error shape (axum's own rejections are plain text).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body of type `T`.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(rejected(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                let status = e.status().as_u16();
                ApiError::Body {
                    status: if status == 413 { 413 } else { 400 },
                    message: if status == 413 {
                        "the body is larger than the limit".to_owned()
                    } else {
                        "cannot read the body".to_owned()
                    },
                }
            })?;
        // Every body is an object of the route's fields: serde would also
        // take a JSON array for a struct (its fields in order), so `[]`
        // would pass for a body whose fields all have defaults.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::Body {
                status: 400,
                message: "the body must be a JSON object of the route's fields".to_owned(),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

/// `application/json`, or any `application/…+json`, parameters aside (what
/// axum's own `Json` accepts).
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let (status, message) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => (
            415,
            "send the body as JSON (Content-Type: application/json)".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(e) => (
            400,
            format!("the body is not valid JSON: {}", e.body_text()),
        ),
        JsonRejection::JsonDataError(e) => {
            (400, format!("the body does not match: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status().as_u16() == 413 => {
            (413, "the body is larger than the limit".to_owned())
        }
        other => (400, format!("cannot read the body: {}", other.body_text())),
    };
    ApiError::Body {
        status,
        message: message.chars().take(400).collect(),
    }
}
