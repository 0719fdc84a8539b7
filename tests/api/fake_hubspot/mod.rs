//! A stateful fake of the HubSpot API for the integration tests: real HTTP
//! over loopback (an axum app on a tokio task, port 0), serving both the
//! `/crm/v3/…` family and the date-versioned `/crm/…/2026-03/…` one.
//!
//! ```ignore
//! let fake = FakeHubSpot::start(FakeConfig::default()).await;
//! let id = fake.add_company([("name", "Acme"), ("duns_number", "081466849")]);
//! // … point the bridge at fake.base_url() with fake.token() …
//! fake.assert_no_violations();
//! ```
//!
//! Every request body is validated against HubSpot's official OpenAPI files
//! (see [`spec`]); tests script failures with [`FakeHubSpot::fail_next`] and
//! inspect the request log and the stored records afterwards.

// The fake's API serves many test modules; no single one uses all of it.
#![allow(dead_code)]

mod batch;
mod errors;
mod inspect;
mod limits;
mod meta;
mod objects;
mod routes;
mod search;
mod seed;
mod server;
mod spec;
mod state;
mod updates;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

// Re-exported for the test modules that drive the fake; not all are used yet.
#[allow(unused_imports)]
pub use self::{
    limits::{Fault, RateLimit},
    routes::{Endpoint, EndpointMatcher, Family, ObjectType, Route},
    spec::{Violation, spec_dir},
    state::{Association, CrmRecord, Owner},
};

/// The token `FakeConfig::default()` accepts.
pub const FAKE_TOKEN: &str = "pat-na1-00000000-fake-hubspot-token";

/// How the fake portal behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// The only accepted `Authorization: Bearer` token.
    pub token: String,
    /// Scopes the token lacks: endpoints needing one answer 403 `MISSING_SCOPES`.
    pub missing_scopes: Vec<String>,
    /// The rolling window for everything but search (default 100 per 10 s).
    pub rate_limit: RateLimit,
    /// The search window (default 5 per second).
    pub search_rate_limit: RateLimit,
    /// How long new records stay invisible to search (default none).
    pub search_lag: Duration,
    /// `portalId` of the account details.
    pub portal_id: i64,
    /// `timeZone` of the account details.
    pub time_zone: String,
    /// Return batch results in reverse input order (HubSpot promises no order).
    pub reverse_batch_results: bool,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            token: FAKE_TOKEN.to_owned(),
            missing_scopes: Vec::new(),
            rate_limit: RateLimit::TEN_SECONDLY,
            search_rate_limit: RateLimit::SEARCH,
            search_lag: Duration::ZERO,
            portal_id: 12_345_678,
            time_zone: "US/Eastern".to_owned(),
            reverse_batch_results: false,
        }
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (empty when none).
    pub query: String,
    /// The endpoint, when the fake serves the path.
    pub route: Option<Route>,
    /// The body, when it parsed as JSON.
    pub body: Option<Value>,
    /// The status answered; `None` when no answer was sent (`ApplyThenDrop`).
    pub status: Option<u16>,
    /// When it arrived.
    pub received_at: Instant,
}

/// The mutable side of a fake, behind one lock.
pub(crate) struct Inner {
    store: state::Store,
    log: Vec<RecordedRequest>,
    violations: Vec<Violation>,
    faults: Vec<limits::ScriptedFault>,
    window: limits::Window,
    search_window: limits::Window,
    throttled: usize,
}

/// What the server task and the test's handle share.
pub(crate) struct Shared {
    config: FakeConfig,
    inner: Mutex<Inner>,
}

/// A running fake; dropping it stops the server.
pub struct FakeHubSpot {
    shared: Arc<Shared>,
    address: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for FakeHubSpot {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FakeHubSpot {
    /// Starts a fake on 127.0.0.1:0 with the default portal (`duns_number`
    /// unique string property, no owners). Panics under `CI=true` when the
    /// OpenAPI specs are missing.
    pub async fn start(config: FakeConfig) -> Self {
        spec::specs();
        let mut store = state::Store::default();
        seed::default_portal(&mut store);
        let inner = Inner {
            store,
            log: Vec::new(),
            violations: Vec::new(),
            faults: Vec::new(),
            window: limits::Window::new(config.rate_limit),
            search_window: limits::Window::new(config.search_rate_limit),
            throttled: 0,
        };
        let shared = Arc::new(Shared {
            config,
            inner: Mutex::new(inner),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(
            listener,
            Arc::clone(&shared),
            shutdown.clone(),
        ));
        Self {
            shared,
            address,
            shutdown,
        }
    }

    /// `http://127.0.0.1:{port}`, the value for `hubspot.base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The accepted token.
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// Whether request bodies are validated against the specs.
    pub fn validating(&self) -> bool {
        spec::specs().is_some()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }
}
