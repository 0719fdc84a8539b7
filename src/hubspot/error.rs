//! How a HubSpot call failed, classified by what the caller must do next.
//!
//! The client never retries by itself: the journal is the one retry ledger.
//! Callers branch on these variants: wait for HubSpot as a whole (rate limit,
//! outage, auth), reconcile a write whose answer was lost, or fail the one
//! notification whose input HubSpot refused.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

/// A failed HubSpot call. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubSpotError {
    /// 429. `daily` when the daily quota is spent (wait until it resets).
    #[error("HubSpot rate limit reached ({policy})")]
    RateLimited {
        /// `Retry-After`, when HubSpot sent one.
        retry_after: Option<Duration>,
        /// The policy HubSpot named, e.g. `TEN_SECONDLY_ROLLING` or `DAILY`.
        policy: String,
        /// The daily quota is spent.
        daily: bool,
    },
    /// 5xx, 423 (locked), 477 (migration): HubSpot is unavailable for now.
    #[error("HubSpot is unavailable (HTTP {status})")]
    Unavailable {
        /// The status answered.
        status: u16,
        /// `Retry-After`, when HubSpot sent one.
        retry_after: Option<Duration>,
    },
    /// No answer in time, or the connection broke after the request was sent:
    /// the request may have been applied.
    #[error("the HubSpot answer was lost ({0})")]
    AnswerLost(String),
    /// The request never reached HubSpot (connection refused, DNS, TLS).
    #[error("HubSpot could not be reached ({0})")]
    Unreachable(String),
    /// 401 or 403: a bad token or a missing scope.
    #[error("HubSpot refused the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// HubSpot's message.
        message: String,
        /// Scopes HubSpot says are missing, when it says.
        missing_scopes: Vec<String>,
    },
    /// Another 4xx: HubSpot refused this input; retrying it unchanged cannot help.
    #[error(
        "HubSpot refused the request (HTTP {status}, {category}): {message} [correlationId {correlation_id}]"
    )]
    Rejected {
        /// The status answered.
        status: u16,
        /// HubSpot's error category, e.g. `VALIDATION_ERROR`.
        category: String,
        /// HubSpot's message.
        message: String,
        /// HubSpot's correlation id, for support requests.
        correlation_id: String,
    },
    /// A success status whose body does not parse.
    #[error("HubSpot answered HTTP {status} with a body that does not parse: {excerpt}")]
    InvalidResponse {
        /// The status answered.
        status: u16,
        /// The start of the body.
        excerpt: String,
    },
}

impl HubSpotError {
    /// True when the failure is HubSpot's as a whole, not this input's: workers
    /// should pause and reschedule without spending attempts.
    pub fn is_systemic(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Unreachable(_)
                | Self::Unauthorized { .. }
                | Self::AnswerLost(_)
                | Self::InvalidResponse { .. }
        )
    }
}

/// HubSpot's error body (every field optional in practice).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ErrorBody {
    pub message: String,
    pub category: String,
    pub correlation_id: String,
    pub policy_name: String,
    pub errors: Vec<ErrorDetail>,
}

/// One entry of an error body's `errors`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ErrorDetail {
    pub context: ErrorContext,
}

/// `errors[].context`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ErrorContext {
    pub required_granular_scopes: Vec<String>,
    pub required_scopes: Vec<String>,
}

/// Longest body excerpt kept in an error.
const EXCERPT: usize = 200;

/// Classifies a non-success answer.
pub(crate) fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> HubSpotError {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    match status {
        429 => {
            let daily = parsed.policy_name.eq_ignore_ascii_case("DAILY");
            HubSpotError::RateLimited {
                retry_after,
                policy: if parsed.policy_name.is_empty() {
                    "unnamed".into()
                } else {
                    parsed.policy_name
                },
                daily,
            }
        }
        401 | 403 => HubSpotError::Unauthorized {
            status,
            missing_scopes: parsed
                .errors
                .iter()
                .flat_map(|error| {
                    error
                        .context
                        .required_granular_scopes
                        .iter()
                        .chain(&error.context.required_scopes)
                        .cloned()
                })
                .collect(),
            message: if parsed.message.is_empty() {
                excerpt(body)
            } else {
                parsed.message
            },
        },
        423 | 477 | 500..=599 => HubSpotError::Unavailable {
            status,
            retry_after,
        },
        _ => HubSpotError::Rejected {
            status,
            category: if parsed.category.is_empty() {
                "UNKNOWN".into()
            } else {
                parsed.category
            },
            message: if parsed.message.is_empty() {
                excerpt(body)
            } else {
                parsed.message
            },
            correlation_id: parsed.correlation_id,
        },
    }
}

/// A `Retry-After` value (RFC 9110, section 10.2.3) as the wait from `now`: a number of
/// seconds, or an HTTP date in any of its three forms (a date already passed means no wait).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value)
            .ok()
            .map(|date| date.duration_since(now).unwrap_or_default()),
    }
}

/// The start of a body, cut on a character boundary.
pub(crate) fn excerpt(body: &str) -> String {
    let mut end = body.len().min(EXCERPT);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_what_the_caller_must_do() {
        let daily = classify(
            429,
            None,
            r#"{"status":"error","errorType":"RATE_LIMIT","policyName":"DAILY"}"#,
        );
        assert!(matches!(
            daily,
            HubSpotError::RateLimited { daily: true, .. }
        ));
        assert!(matches!(
            classify(503, Some(Duration::from_secs(2)), ""),
            HubSpotError::Unavailable { status: 503, .. }
        ));
        assert!(matches!(
            classify(423, None, ""),
            HubSpotError::Unavailable { .. }
        ));
        let rejected = classify(
            400,
            None,
            r#"{"message":"Property values were not valid","category":"VALIDATION_ERROR","correlationId":"abc"}"#,
        );
        assert_eq!(
            rejected.to_string(),
            "HubSpot refused the request (HTTP 400, VALIDATION_ERROR): Property values were not valid [correlationId abc]"
        );
        assert!(!rejected.is_systemic());
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_any_http_date_form() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let minute = Some(Duration::from_secs(60));
        assert_eq!(parse_retry_after("60", now), minute);
        assert_eq!(parse_retry_after(" 60 ", now), minute);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            minute
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now),
            minute
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), minute);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for garbage in ["", "-5", "1.5", "soon", "Sun, 06 Nov 1994"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn missing_scopes_are_read_from_the_error_context() {
        let body = r#"{"status":"error","message":"This app hasn't been granted all required scopes","category":"MISSING_SCOPES",
                       "errors":[{"message":"m","context":{"requiredGranularScopes":["crm.objects.companies.write"]}}]}"#;
        let HubSpotError::Unauthorized { missing_scopes, .. } = classify(403, None, body) else {
            panic!()
        };
        assert_eq!(missing_scopes, ["crm.objects.companies.write"]);
    }

    #[test]
    fn unparsable_bodies_are_cut_into_an_excerpt() {
        let HubSpotError::Rejected { message, .. } = classify(400, None, &"x".repeat(1000)) else {
            panic!()
        };
        assert_eq!(message.len(), 200);
    }
}
