//! `ApiError`: the one place a status code is chosen for a failure.
//!
//! Every error answer is JSON `{"error": "<code>", "message": "..."}`.
//! Internal causes are logged once here and answered opaquely.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::dnb::PayloadError;
use crate::journal::JournalError;
use crate::signature::SignatureError;

/// Seconds a client is asked to wait when the backlog is over the high-water mark.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 30;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the signature did not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// 400: the body is not JSON of an accepted shape.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// 413.
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// 400: the body could not be read.
    #[error("the body could not be read")]
    BodyUnreadable,
    /// 415.
    #[error("unsupported content type {0:?}; use application/json or application/x-ndjson")]
    UnsupportedMediaType(String),
    /// 503 with `Retry-After`.
    #[error("the backlog is over its high-water mark; retry later")]
    Overloaded,
    /// 500: the journal failed; nothing was acknowledged.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// 404: no such resource (also every admin path while `admin.token` is empty).
    #[error("not found")]
    NotFound,
    /// 401 on an admin endpoint: missing or wrong bearer token.
    #[error("a valid admin bearer token is required")]
    AdminUnauthorized,
    /// 400 naming the parameter that is wrong.
    #[error("invalid {name}: {message}")]
    InvalidParameter {
        /// The parameter or body field.
        name: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ApiError {
    /// A 400 naming `name`.
    pub fn invalid(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name: name.into(),
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Signature(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Payload(_) | Self::BodyUnreadable => (StatusCode::BAD_REQUEST, "malformed_body"),
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Journal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::AdminUnauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Journal(error) => {
                tracing::error!(error = ?error, "journal failure while handling a request");
                "the notification could not be stored; retry later".to_string()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: code,
                message,
            }),
        )
            .into_response();
        if matches!(self, Self::AdminUnauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Self::Overloaded) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(OVERLOADED_RETRY_AFTER_SECS),
            );
        }
        response
    }
}
