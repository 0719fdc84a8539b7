//! D&B Direct+ monitoring client: token, pull and replay.
//!
//! One token (`POST /v3/token`, Basic auth with the consumer key and secret) is
//! reused until shortly before it expires; a 401 on a call fetches a new one
//! once, and a second 401 is an [`DirectPlusError::Unauthorized`]. Every call,
//! token requests included, waits for one GCRA limiter at
//! `dnb.rate_limit_per_sec` (no burst), so the deployment never exceeds D&B's
//! per-key limit: in one process an in-memory limiter, in replicas sharing a PostgreSQL
//! database the shared budget `dnb` ([`DirectPlusClient::with_cluster`]). A 429 holds every caller for its `Retry-After` (or the next
//! backoff step) and is retried, as are 5xx answers and transport failures,
//! with exponential backoff; after the last try the error is returned. The
//! key, secret and token are never logged.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, SecondsFormat, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;

use crate::cluster::{Cluster, SharedBudget};
use crate::config::DnbSettings;
use crate::hubspot::error::{excerpt, parse_retry_after};

/// A token is replaced this long before D&B says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
/// Tries per call for 429, 5xx and transport failures.
const MAX_TRIES: usize = 6;
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a Direct+ call failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectPlusError {
    /// The token endpoint refused the consumer key and secret.
    #[error(
        "D&B refused the consumer key and secret (token request answered {status}); check dnb.client_key and dnb.client_secret"
    )]
    Credentials {
        /// The HTTP status.
        status: u16,
    },
    /// A call answered 401 even with a freshly fetched token.
    #[error(
        "D&B answered 401 to {path} with a fresh token; the key may lack the monitoring entitlement"
    )]
    Unauthorized {
        /// The path called.
        path: String,
    },
    /// 429 or 5xx on every try.
    #[error("D&B kept answering {status} to {path}: {body}")]
    Unavailable {
        /// The last HTTP status.
        status: u16,
        /// The path called.
        path: String,
        /// The start of the last answer.
        body: String,
    },
    /// Any other error answer (D&B's error envelope excerpted).
    #[error("D&B answered {status} to {path}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The path called.
        path: String,
        /// The start of the answer.
        body: String,
    },
    /// The request never got an answer, on every try.
    #[error("D&B could not be reached: {0}")]
    Transport(String),
    /// A 200 whose body is not what Direct+ sends.
    #[error("D&B sent an unreadable answer: {0}")]
    Unreadable(String),
}

impl DirectPlusError {
    /// A short snake_case word for logs and the `outcome` label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Credentials { .. } | Self::Unauthorized { .. } => "auth",
            Self::Unavailable { status: 429, .. } => "rate_limited",
            Self::Unavailable { .. } | Self::Transport(_) => "unavailable",
            Self::Refused { .. } | Self::Unreadable(_) => "error",
        }
    }
}

/// One page of notifications as D&B sent it.
#[derive(Debug, Clone)]
pub struct Page {
    /// The answer body (the Direct+ envelope), journaled as a webhook body would be.
    pub body: Vec<u8>,
    /// `transactionDetail.transactionID`.
    pub transaction_id: Option<String>,
    /// How many entries `notifications` holds.
    pub count: usize,
}

/// What a pull or replay call answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Notifications.
    Page(Page),
    /// 404: nothing (more) to read.
    Drained,
}

/// The token answer; the camelCase names of the older `/v2/token` are accepted too.
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(alias = "accessToken")]
    access_token: String,
    #[serde(default, alias = "expiresIn")]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "transactionDetail", default)]
    transaction_detail: Option<TransactionDetail>,
    #[serde(default)]
    notifications: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct TransactionDetail {
    #[serde(rename = "transactionID", default)]
    transaction_id: Option<String>,
}

struct Token {
    value: SecretString,
    renew_at: Instant,
}

/// The Direct+ client every registration's loop shares.
pub struct DirectPlusClient {
    http: reqwest::Client,
    base: String,
    key: SecretString,
    secret: SecretString,
    limiter: DefaultDirectRateLimiter,
    rate_per_sec: u32,
    /// With replicas sharing a database: the deployment's budget, which paces every call.
    shared: Option<SharedBudget>,
    hold_until: Mutex<Option<Instant>>,
    token: tokio::sync::Mutex<Option<Token>>,
    backoff: ExponentialBuilder,
}

/// The shared budget of Direct+ calls.
pub const BUCKET: &str = "dnb";

impl DirectPlusClient {
    /// A client for `dnb.*`.
    pub fn new(settings: &DnbSettings) -> Result<Self, reqwest::Error> {
        let rate = NonZeroU32::new(settings.rate_limit_per_sec.max(1)).expect("at least 1");
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .user_agent(concat!("dnb-hubspot-bridge/", env!("CARGO_PKG_VERSION")))
                .build()?,
            base: settings.base_url.trim_end_matches('/').to_string(),
            key: settings.client_key.clone(),
            secret: settings.client_secret.clone(),
            limiter: RateLimiter::direct(
                Quota::per_second(rate).allow_burst(NonZeroU32::new(1).expect("one")),
            ),
            rate_per_sec: rate.get(),
            shared: None,
            hold_until: Mutex::new(None),
            token: tokio::sync::Mutex::new(None),
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(30))
                .with_max_times(MAX_TRIES - 1)
                .with_jitter(),
        })
    }

    /// The same client pacing its calls with the budget every replica sharing `cluster`'s
    /// database uses (`dnb.rate_limit_per_sec` for the whole deployment), and holding them
    /// all on a 429.
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.shared = Some(SharedBudget::new(cluster, BUCKET, self.rate_per_sec, 1));
        self
    }

    /// The same client with backoff steps starting at `min` (tests keep them short).
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_max_times(MAX_TRIES - 1);
        self
    }

    /// Pulls up to `max` pending notifications of `registration` (they leave D&B's pending set).
    pub async fn pull(&self, registration: &str, max: u32) -> Result<Answer, DirectPlusError> {
        let path = format!(
            "/v1/monitoring/registrations/{}/notifications",
            encode(registration)
        );
        self.notifications(&path, &[("maxNotifications", max.to_string())])
            .await
    }

    /// Re-reads up to `max` already pulled notifications of `registration` delivered after
    /// `start` (D&B keeps them 14 days). The start is sent to the second.
    pub async fn replay(
        &self,
        registration: &str,
        start: DateTime<Utc>,
        max: u32,
    ) -> Result<Answer, DirectPlusError> {
        let path = format!(
            "/v1/monitoring/registrations/{}/notifications/replay",
            encode(registration)
        );
        self.notifications(
            &path,
            &[
                (
                    "replayStartTimestamp",
                    start.to_rfc3339_opts(SecondsFormat::Secs, true),
                ),
                ("maxNotifications", max.to_string()),
            ],
        )
        .await
    }

    async fn notifications(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, DirectPlusError> {
        let mut refreshed = false;
        loop {
            let token = self.token(refreshed).await?;
            let url = format!("{}{path}", self.base);
            let (status, body) = self
                .send(path, || {
                    self.http
                        .get(&url)
                        .query(query)
                        .bearer_auth(token.expose_secret())
                        .header(reqwest::header::ACCEPT, "application/json")
                })
                .await?;
            match status {
                StatusCode::NOT_FOUND => return Ok(Answer::Drained),
                StatusCode::UNAUTHORIZED if !refreshed => {
                    tracing::info!(path, "D&B answered 401; fetching a new token");
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(DirectPlusError::Unauthorized { path: path.into() });
                }
                status if status.is_success() => {
                    let envelope: Envelope = serde_json::from_slice(&body)
                        .map_err(|error| DirectPlusError::Unreadable(error.to_string()))?;
                    return Ok(Answer::Page(Page {
                        transaction_id: envelope
                            .transaction_detail
                            .and_then(|detail| detail.transaction_id),
                        count: envelope.notifications.len(),
                        body,
                    }));
                }
                status => {
                    return Err(DirectPlusError::Refused {
                        status: status.as_u16(),
                        path: path.into(),
                        body: excerpt(&String::from_utf8_lossy(&body)),
                    });
                }
            }
        }
    }

    /// The token in hand, or a new one when it is due (or `fresh` asks for one).
    async fn token(&self, fresh: bool) -> Result<SecretString, DirectPlusError> {
        let mut held = self.token.lock().await;
        if !fresh
            && let Some(token) = held
                .as_ref()
                .filter(|token| token.renew_at > Instant::now())
        {
            return Ok(token.value.clone());
        }
        let path = "/v3/token";
        let url = format!("{}{path}", self.base);
        let (status, body) = self
            .send(path, || {
                self.http
                    .post(&url)
                    .basic_auth(self.key.expose_secret(), Some(self.secret.expose_secret()))
                    .form(&[("grant_type", "client_credentials")])
            })
            .await?;
        if !status.is_success() {
            return Err(DirectPlusError::Credentials {
                status: status.as_u16(),
            });
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            DirectPlusError::Unreadable("the token answer is not JSON with access_token".into())
        })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(86_400));
        let token = Token {
            value: SecretString::from(answer.access_token),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 10)),
        };
        tracing::info!(expires_in_secs = lifetime.as_secs(), "D&B token fetched");
        let value = token.value.clone();
        *held = Some(token);
        Ok(value)
    }

    /// Sends one request under the rate limit, retrying 429, 5xx and transport failures;
    /// returns any other answer, or the last failure.
    async fn send(
        &self,
        path: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), DirectPlusError> {
        let mut delays = self.backoff.build();
        loop {
            self.acquire().await;
            let failure = match request().send().await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|text| parse_retry_after(text, SystemTime::now()));
                    let body = response
                        .bytes()
                        .await
                        .map_err(|error| DirectPlusError::Transport(error.to_string()));
                    let body = match body {
                        Ok(body) => body.to_vec(),
                        Err(error) => match delays.next() {
                            Some(delay) => {
                                tokio::time::sleep(delay).await;
                                continue;
                            }
                            None => return Err(error),
                        },
                    };
                    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                        return Ok((status, body));
                    }
                    (
                        DirectPlusError::Unavailable {
                            status: status.as_u16(),
                            path: path.into(),
                            body: excerpt(&String::from_utf8_lossy(&body)),
                        },
                        retry_after.filter(|_| status == StatusCode::TOO_MANY_REQUESTS),
                    )
                }
                Err(error) => (DirectPlusError::Transport(without_url(error)), None),
            };
            let (error, retry_after) = failure;
            let Some(delay) = delays.next() else {
                return Err(error);
            };
            let delay = retry_after.unwrap_or(delay);
            tracing::warn!(path, error = %error, retry_in_ms = delay.as_millis() as u64, "D&B call failed; retrying");
            if retry_after.is_some() {
                self.hold(delay).await;
            }
            tokio::time::sleep(delay).await;
        }
    }

    async fn acquire(&self) {
        let hold = *self.hold_until.lock().expect("D&B hold");
        if let Some(until) = hold.filter(|until| *until > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        if let Some(shared) = &self.shared
            && shared.wait().await
        {
            return;
        }
        self.limiter.until_ready().await;
    }

    /// Every caller waits `duration` before its next call (a 429's `Retry-After`), in every
    /// replica with a shared budget.
    async fn hold(&self, duration: Duration) {
        let until = Instant::now() + duration;
        {
            let mut hold = self.hold_until.lock().expect("D&B hold");
            if hold.is_none_or(|current| current < until) {
                *hold = Some(until);
            }
        }
        if let Some(shared) = &self.shared {
            shared.hold(duration).await;
        }
    }
}

/// A transport error's text without the URL (whose query is harmless, but kept short).
fn without_url(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    format!("{kind}: {}", error.without_url())
}

/// Percent-encodes a registration reference for a path segment.
fn encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_encoded_for_a_path_segment() {
        assert_eq!(encode("Monitoring_Reg-1.a"), "Monitoring_Reg-1.a");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn token_answers_of_both_token_endpoints_are_read() {
        let v3: TokenAnswer = serde_json::from_str(
            r#"{"access_token":"a","expires_in":86400,"token_type":"Bearer"}"#,
        )
        .unwrap();
        let v2: TokenAnswer =
            serde_json::from_str(r#"{"accessToken":"b","expiresIn":3600}"#).unwrap();
        assert_eq!(
            (v3.access_token.as_str(), v3.expires_in),
            ("a", Some(86_400))
        );
        assert_eq!(
            (v2.access_token.as_str(), v2.expires_in),
            ("b", Some(3_600))
        );
    }

    #[test]
    fn error_kinds_are_closed_words() {
        let unavailable = DirectPlusError::Unavailable {
            status: 429,
            path: "/x".into(),
            body: String::new(),
        };
        assert_eq!(unavailable.kind(), "rate_limited");
        assert_eq!(DirectPlusError::Credentials { status: 401 }.kind(), "auth");
        assert_eq!(DirectPlusError::Transport("x".into()).kind(), "unavailable");
    }
}
