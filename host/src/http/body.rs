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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
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
