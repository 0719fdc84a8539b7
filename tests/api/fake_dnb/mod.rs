//! A stateful fake of D&B Direct+ monitoring for the tests: real HTTP over
//! loopback (an axum app on a tokio task, port 0).
//!
//! - `POST /v3/token` checks Basic auth against the configured key and secret and
//!   hands out a token valid for `token_lifetime_secs`; API calls with an unknown or
//!   expired token answer 401 (and [`FakeDnb::expire_tokens`] expires every token now).
//! - Pull takes up to `maxNotifications` (default 1) off the registration's pending
//!   set (consume on read; there is no acknowledgement) and keeps them for replay; an
//!   empty pending set answers 404.
//! - Replay answers already pulled notifications delivered strictly after
//!   `replayStartTimestamp` (`yyyy-MM-ddTHH:mm:ssZ`), oldest first; none is 404.
//! - [`FakeDnb::fail_next`] scripts faults for the next API calls: 429 (with or
//!   without `Retry-After`), 500, or a page that is taken off the pending set and
//!   answered with its headers and the first bytes of its body, after which the body
//!   never completes (D&B answered; the client never gets to commit).
//! - Every call is logged with its time, for counting calls per second.

// The fake's API serves several test modules and a bench; no single one uses all of it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use futures::StreamExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// The consumer key the fake accepts by default.
pub const FAKE_KEY: &str = "fake-dnb-consumer-key";
/// The consumer secret the fake accepts by default.
pub const FAKE_SECRET: &str = "fake-dnb-consumer-secret";

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeDnbConfig {
    /// Accepted consumer key.
    pub key: String,
    /// Accepted consumer secret.
    pub secret: String,
    /// `expires_in` of the tokens it hands out; they stop working after it.
    pub token_lifetime_secs: u64,
    /// The largest `maxNotifications` honoured.
    pub max_page: usize,
    /// Every answer's `transactionID` when set (else `fake-N`, counting answers).
    pub transaction_id: Option<String>,
}

impl Default for FakeDnbConfig {
    fn default() -> Self {
        Self {
            key: FAKE_KEY.into(),
            secret: FAKE_SECRET.into(),
            token_lifetime_secs: 86_400,
            max_page: 100,
            transaction_id: None,
        }
    }
}

/// A scripted fault for the next API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnbFault {
    /// No fault: the call is answered normally (to fault a later call).
    Pass,
    /// 429, with `Retry-After` seconds when given.
    TooManyRequests(Option<u64>),
    /// 500 with D&B's error envelope.
    ServerError,
    /// 400 with D&B's error envelope (a request D&B will never accept).
    BadRequest,
    /// A pull that takes its page off the pending set, answers 200 with the first bytes
    /// of the body and then never finishes it.
    AnswerThenStall,
}

/// One call the fake answered (or began to answer).
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived.
    pub at: Instant,
    /// `token`, `pull` or `replay`.
    pub kind: &'static str,
    /// The registration, for pull and replay.
    pub registration: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Notifications in the answer.
    pub notifications: usize,
}

#[derive(Default)]
struct Registration {
    pending: VecDeque<Value>,
    pulled: Vec<Value>,
}

struct FakeState {
    config: FakeDnbConfig,
    registrations: HashMap<String, Registration>,
    tokens: HashMap<String, Instant>,
    faults: VecDeque<DnbFault>,
    calls: Vec<Call>,
    transactions: u64,
}

/// A running fake Direct+.
pub struct FakeDnb {
    address: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    stop: CancellationToken,
}

impl Drop for FakeDnb {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A notification of the fake: an UPDATE for a DUNS derived from `index`, delivered at
/// `base` plus `index` times `step_ms`.
pub fn notification(index: usize, base: DateTime<Utc>, step_ms: i64) -> Value {
    let delivered = base + chrono::Duration::milliseconds(index as i64 * step_ms);
    json!({
        "type": "UPDATE",
        "organization": {"duns": format!("{:09}", 100_000_000 + index)},
        "elements": [{
            "element": "organization.primaryName",
            "previous": "Before Ltd",
            "current": format!("After {index} Ltd"),
            "timestamp": delivered.to_rfc3339_opts(SecondsFormat::Secs, true),
        }],
        "deliveryTimeStamp": delivered.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
}

/// Where [`notifications`] start: the start of the hour two hours ago, the same for the
/// whole test process (well inside D&B's 14-day replay window).
pub fn base() -> DateTime<Utc> {
    static BASE: std::sync::OnceLock<DateTime<Utc>> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = Utc::now();
        let hour = Utc
            .timestamp_opt(now.timestamp() - now.timestamp() % 3600, 0)
            .unwrap();
        hour - chrono::Duration::hours(2)
    })
}

/// `count` notifications from [`notification`], 50 ms apart from [`base`].
pub fn notifications(count: usize) -> Vec<Value> {
    (0..count)
        .map(|index| notification(index, base(), 50))
        .collect()
}

impl FakeDnb {
    /// Starts the fake on a free loopback port.
    pub async fn start(config: FakeDnbConfig) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            config,
            registrations: HashMap::new(),
            tokens: HashMap::new(),
            faults: VecDeque::new(),
            calls: Vec::new(),
            transactions: 0,
        }));
        let app = Router::new()
            .route("/v3/token", post(token))
            .route(
                "/v1/monitoring/registrations/{reference}/notifications",
                get(pull),
            )
            .route(
                "/v1/monitoring/registrations/{reference}/notifications/replay",
                get(replay),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped.cancelled_owned())
                .await;
        });
        Self {
            address,
            state,
            stop,
        }
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Adds notifications to a registration's pending set.
    pub fn add_pending(&self, registration: &str, notifications: impl IntoIterator<Item = Value>) {
        self.state()
            .registrations
            .entry(registration.to_string())
            .or_default()
            .pending
            .extend(notifications);
    }

    /// Notifications still pending for a registration.
    pub fn pending(&self, registration: &str) -> usize {
        self.state()
            .registrations
            .get(registration)
            .map_or(0, |registration| registration.pending.len())
    }

    /// Notifications already pulled from a registration.
    pub fn pulled(&self, registration: &str) -> usize {
        self.state()
            .registrations
            .get(registration)
            .map_or(0, |registration| registration.pulled.len())
    }

    /// Scripts faults for the next API calls (token calls are never faulted).
    pub fn fail_next(&self, faults: impl IntoIterator<Item = DnbFault>) {
        self.state().faults.extend(faults);
    }

    /// Makes every token handed out so far invalid (as if it had expired).
    pub fn expire_tokens(&self) {
        self.state().tokens.clear();
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Calls of `kind` so far.
    pub fn count(&self, kind: &str) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|call| call.kind == kind)
            .count()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "transactionDetail": {"transactionID": "fake-error", "transactionTimestamp": Utc::now().to_rfc3339()},
            "error": {"errorCode": code, "errorMessage": message}
        })),
    )
        .into_response()
}

async fn token(State(state): State<Arc<Mutex<FakeState>>>, headers: HeaderMap) -> Response {
    let mut state = state.lock().unwrap();
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", state.config.key, state.config.secret));
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == format!("Basic {expected}"));
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    let at = Instant::now();
    let status = if authorised && form { 200 } else { 401 };
    state.calls.push(Call {
        at,
        kind: "token",
        registration: None,
        status,
        notifications: 0,
    });
    if status != 200 {
        return error(
            StatusCode::UNAUTHORIZED,
            "00041",
            "Invalid consumer key or secret",
        );
    }
    let value = format!("fake-token-{}", uuid::Uuid::new_v4().simple());
    let lifetime = state.config.token_lifetime_secs;
    state
        .tokens
        .insert(value.clone(), at + Duration::from_secs(lifetime));
    axum::Json(json!({"access_token": value, "expires_in": lifetime, "token_type": "Bearer"}))
        .into_response()
}

/// Checks the bearer token and takes the next scripted fault; logs refusals.
#[allow(clippy::result_large_err)]
fn admit(
    state: &mut FakeState,
    headers: &HeaderMap,
    kind: &'static str,
    registration: &str,
) -> Result<Option<DnbFault>, Response> {
    let now = Instant::now();
    let valid = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| state.tokens.get(token))
        .is_some_and(|expiry| *expiry > now);
    let mut log = |status: u16| {
        state.calls.push(Call {
            at: now,
            kind,
            registration: Some(registration.to_string()),
            status,
            notifications: 0,
        })
    };
    if !valid {
        log(401);
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "00040",
            "Access token is missing, invalid or expired",
        ));
    }
    match state.faults.front() {
        Some(DnbFault::TooManyRequests(retry_after)) => {
            let retry_after = *retry_after;
            state.faults.pop_front();
            log(429);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "00047",
                "Rate limit exceeded",
            );
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.to_string().parse().unwrap());
            }
            Err(response)
        }
        Some(DnbFault::ServerError) => {
            state.faults.pop_front();
            log(500);
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "00001",
                "Internal error",
            ))
        }
        Some(DnbFault::BadRequest) => {
            state.faults.pop_front();
            log(400);
            Err(error(
                StatusCode::BAD_REQUEST,
                "10001",
                "Request is not valid",
            ))
        }
        Some(DnbFault::Pass) => {
            state.faults.pop_front();
            Ok(None)
        }
        Some(DnbFault::AnswerThenStall) if kind == "pull" => Ok(state.faults.pop_front()),
        _ => Ok(None),
    }
}

fn page(state: &mut FakeState, registration: &str, notifications: Vec<Value>) -> Vec<u8> {
    state.transactions += 1;
    serde_json::to_vec(&json!({
        "transactionDetail": {
            "transactionID": state
                .config
                .transaction_id
                .clone()
                .unwrap_or_else(|| format!("fake-{}", state.transactions)),
            "transactionTimestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "inLanguage": "en-US",
            "serviceVersion": "1"
        },
        "inquiryDetail": {"reference": registration},
        "notifications": notifications,
    }))
    .unwrap()
}

fn page_size(state: &FakeState, query: &HashMap<String, String>) -> usize {
    query
        .get("maxNotifications")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, state.config.max_page)
}

async fn pull(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(reference): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    let fault = match admit(&mut state, &headers, "pull", &reference) {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let size = page_size(&state, &query);
    let registration = state.registrations.entry(reference.clone()).or_default();
    let take = size.min(registration.pending.len());
    let taken: Vec<Value> = registration.pending.drain(..take).collect();
    registration.pulled.extend(taken.iter().cloned());
    let status = if taken.is_empty() { 404 } else { 200 };
    state.calls.push(Call {
        at: Instant::now(),
        kind: "pull",
        registration: Some(reference.clone()),
        status,
        notifications: taken.len(),
    });
    if taken.is_empty() {
        return error(StatusCode::NOT_FOUND, "21501", "No notifications available");
    }
    let body = page(&mut state, &reference, taken);
    if fault == Some(DnbFault::AnswerThenStall) {
        let first = body[..body.len() / 2].to_vec();
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(first) })
            .chain(futures::stream::pending());
        return Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from_stream(stream))
            .unwrap();
    }
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn replay(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(reference): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut state = state.lock().unwrap();
    if let Err(response) = admit(&mut state, &headers, "replay", &reference) {
        return response;
    }
    let start = query
        .get("replayStartTimestamp")
        .filter(|value| value.len() == 20)
        .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
        .map(|start| start.with_timezone(&Utc));
    let Some(start) = start else {
        state.calls.push(Call {
            at: Instant::now(),
            kind: "replay",
            registration: Some(reference.clone()),
            status: 400,
            notifications: 0,
        });
        return error(
            StatusCode::BAD_REQUEST,
            "10001",
            "replayStartTimestamp must be yyyy-MM-ddTHH:mm:ssZ",
        );
    };
    let size = page_size(&state, &query);
    let delivered = |value: &Value| {
        value["deliveryTimeStamp"]
            .as_str()
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
    };
    let mut after: Vec<Value> = state
        .registrations
        .get(&reference)
        .map(|registration| {
            registration
                .pulled
                .iter()
                .filter(|value| delivered(value).is_some_and(|time| time > start))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    after.sort_by_key(|value| delivered(value));
    after.truncate(size);
    let status = if after.is_empty() { 404 } else { 200 };
    state.calls.push(Call {
        at: Instant::now(),
        kind: "replay",
        registration: Some(reference.clone()),
        status,
        notifications: after.len(),
    });
    if after.is_empty() {
        return error(StatusCode::NOT_FOUND, "21501", "No notifications available");
    }
    let body = page(&mut state, &reference, after);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
