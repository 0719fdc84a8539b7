//! `GET /health` (liveness) and `GET /ready` (readiness).
//!
//! Ready means the journal can commit a write now and the backlog is under
//! `queue.high_water`. HubSpot's state is reported in the body but never fails
//! readiness: ingest keeps journaling while HubSpot is away.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;

use super::state::AppState;

/// How long the journal write probe may take before the service counts as not ready.
const WRITE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `/health` answer.
#[derive(Serialize)]
pub struct Health {
    status: &'static str,
}

/// 200 while the process serves.
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `/ready` answer.
#[derive(Serialize)]
pub struct Readiness {
    status: &'static str,
    journal: JournalReadiness,
    backlog: Backlog,
    hubspot: HubSpotReadiness,
}

#[derive(Serialize)]
struct JournalReadiness {
    writable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Backlog {
    pending: u64,
    high_water: u64,
}

#[derive(Serialize)]
struct HubSpotReadiness {
    state: &'static str,
    reason: Option<&'static str>,
}

/// 200 when the journal is writable and the backlog is under the high-water mark, else 503.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let write = tokio::time::timeout(WRITE_PROBE_TIMEOUT, state.journal.check_writable()).await;
    let journal = match write {
        Ok(Ok(())) => JournalReadiness {
            writable: true,
            error: None,
        },
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness: journal is not writable");
            JournalReadiness {
                writable: false,
                error: Some(error.to_string()),
            }
        }
        Err(_) => JournalReadiness {
            writable: false,
            error: Some("the journal did not commit within 2 s".into()),
        },
    };
    let pending = state.journal.pending_count();
    let high_water = state.settings.queue.high_water;
    let is_ready = journal.writable && pending <= high_water;
    let (hubspot_state, reason) = state.hubspot.readiness();
    let hubspot = HubSpotReadiness {
        state: hubspot_state,
        reason,
    };
    let body = Readiness {
        status: if is_ready { "ready" } else { "not_ready" },
        journal,
        backlog: Backlog {
            pending,
            high_water,
        },
        hubspot,
    };
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
