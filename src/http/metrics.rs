//! `GET /metrics`: refreshes the journal gauges, then renders the exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::state::AppState;
use crate::journal::now_ms;

/// The Prometheus text exposition of this application's metrics.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    match state.journal.stats().await {
        Ok(stats) => state.metrics.journal(&stats, now_ms()),
        Err(error) => tracing::warn!(error = %error, "could not read journal counts for /metrics"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
