//! The HTTP surface: every route and the layers around them, on one page.

pub mod admin;
pub mod error;
pub mod metrics;
pub mod probes;
pub mod state;
pub mod webhook;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The application's router.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.server.request_timeout_secs);
    Router::new()
        .route("/webhooks/dnb", post(webhook::receive))
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/metrics", get(metrics::render))
        .merge(
            Router::new()
                .route("/notifications", get(admin::notifications::list))
                .route("/notifications/{id}", get(admin::notifications::show))
                .route("/replay", post(admin::replay::replay))
                .route("/exceptions", get(admin::exceptions::list))
                .route_layer(middleware::from_fn_with_state(state.clone(), admin::require_token)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), record_request))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Counts every request by route template, method and status.
async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    state.metrics.http_request(
        method.as_str(),
        matched.as_ref().map_or("unmatched", MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
