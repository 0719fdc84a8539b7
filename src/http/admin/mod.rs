//! Operator endpoints: `GET /notifications`, `GET /notifications/{id}`,
//! `POST /replay` and `GET /exceptions`, behind the `admin.token` bearer token.
//!
//! With no token configured every admin path answers 404. The token check
//! compares SHA-256 digests in constant time, so neither the token's bytes
//! nor its length leak through timing.

pub mod exceptions;
pub mod notifications;
pub mod replay;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::AppState;
use crate::journal::{Filter, Status};

/// Most items one page may hold.
pub const MAX_LIMIT: usize = 1000;

/// Lets a request through only with the admin bearer token.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = state.settings.admin.token.expose_secret();
    if token.is_empty() {
        return Err(ApiError::NotFound);
    }
    let offered = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches =
        Sha256::digest(offered.trim().as_bytes()).ct_eq(&Sha256::digest(token.as_bytes()));
    if !bool::from(matches) {
        return Err(ApiError::AdminUnauthorized);
    }
    Ok(next.run(request).await)
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A filter's fields as sent (query parameters or a replay body), checked one by one.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterInput {
    /// Status word.
    pub status: Option<String>,
    /// D&B type, or `UNKNOWN`.
    #[serde(rename = "type")]
    pub notification_type: Option<String>,
    /// Nine digits.
    pub duns: Option<String>,
    /// RFC 3339, inclusive.
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    pub until: Option<String>,
}

impl FilterInput {
    /// Checks every field, naming the first that is wrong.
    pub fn parse(self, prefix: &str) -> Result<Filter, ApiError> {
        let name = |field: &str| format!("{prefix}{field}");
        let status = self
            .status
            .map(|text| {
                Status::parse(&text).ok_or_else(|| {
                    ApiError::invalid(
                        name("status"),
                        "must be pending, processing, done, skipped, dead or rejected",
                    )
                })
            })
            .transpose()?;
        let notification_type = self
            .notification_type
            .map(|text| {
                crate::dnb::NotificationType::ALL
                    .iter()
                    .map(|kind| kind.as_str())
                    .chain(["UNKNOWN"])
                    .find(|known| *known == text)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            name("type"),
                            "must be a D&B notification type or UNKNOWN",
                        )
                    })
            })
            .transpose()?;
        let duns = self
            .duns
            .map(|text| {
                crate::dnb::Duns::parse(&text)
                    .map(|duns| duns.to_string())
                    .ok_or_else(|| ApiError::invalid(name("duns"), "must be 9 digits"))
            })
            .transpose()?;
        let time = |field: &str, text: Option<String>| {
            text.map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|time| time.timestamp_millis())
                    .map_err(|_| ApiError::invalid(name(field), "must be an RFC 3339 time"))
            })
            .transpose()
        };
        Ok(Filter {
            status,
            notification_type,
            duns,
            since_ms: time("since", self.since)?,
            until_ms: time("until", self.until)?,
        })
    }
}
