//! `GET /health` (liveness) and `GET /ready` (readiness).
//!
//! Ready means the journal can commit a write now and the backlog is under
//! `queue.high_water`. HubSpot's state and each D&B registration's last
//! successful pull are reported in the body but never fail readiness: ingest
//! keeps journaling while HubSpot or D&B is away.

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
    dnb: DnbReadiness,
}

#[derive(Serialize)]
struct DnbReadiness {
    pull_enabled: bool,
    registrations: Vec<RegistrationReadiness>,
}

#[derive(Serialize)]
struct RegistrationReadiness {
    registration: String,
    last_success_at: Option<String>,
    age_seconds: Option<i64>,
    in_flight: bool,
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
    let dnb = dnb_readiness(&state).await;
    let body = Readiness {
        status: if is_ready { "ready" } else { "not_ready" },
        journal,
        backlog: Backlog {
            pending,
            high_water,
        },
        hubspot,
        dnb,
    };
    let status = if is_ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// The configured registrations (and any other the journal has pulled) with their last
/// successful pull and its age; an unreadable journal shows them without one.
async fn dnb_readiness(state: &AppState) -> DnbReadiness {
    let mut states = match state.journal.registrations().await {
        Ok(states) => states,
        Err(error) => {
            tracing::warn!(error = %error, "readiness: cannot read the D&B registrations");
            Vec::new()
        }
    };
    for reference in &state.settings.dnb.registrations {
        if !states.iter().any(|known| &known.registration == reference) {
            states.push(crate::journal::RegistrationState {
                registration: reference.clone(),
                last_delivered_at_ms: None,
                last_success_at_ms: None,
                last_transaction_id: None,
                in_flight: false,
            });
        }
    }
    states.sort_by(|a, b| a.registration.cmp(&b.registration));
    let now = chrono::Utc::now();
    DnbReadiness {
        pull_enabled: state.settings.dnb.pull.enabled,
        registrations: states
            .into_iter()
            .map(|known| {
                let last = known
                    .last_success_at_ms
                    .and_then(chrono::DateTime::from_timestamp_millis);
                RegistrationReadiness {
                    registration: known.registration,
                    last_success_at: last
                        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                    age_seconds: last.map(|time| (now - time).num_seconds().max(0)),
                    in_flight: known.in_flight,
                }
            })
            .collect(),
    }
}
