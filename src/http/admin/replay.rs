//! `POST /replay`: re-enqueue notifications chosen by ids or by filter, with a
//! `dry_run` that only counts. Replaying is idempotent and, since performed
//! HubSpot actions are checkpoints, never duplicates a HubSpot object.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FilterInput;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::journal::{Filter, Journal, NotificationId, ReplayOutcome};

/// Body of `POST /replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    ids: Option<Vec<Value>>,
    filter: Option<FilterInput>,
    #[serde(default)]
    dry_run: bool,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct ReplayAnswer {
    matched: u64,
    enqueued: u64,
    unknown_ids: Vec<String>,
    dry_run: bool,
}

/// Ids replayed per journal call.
const CHUNK: usize = 1000;

/// Every id `filter` matches, newest first.
pub async fn matching(
    journal: &dyn Journal,
    filter: &Filter,
) -> Result<Vec<NotificationId>, crate::journal::JournalError> {
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let page = journal.list(filter, CHUNK, before).await?;
        let done = page.len() < CHUNK;
        before = page.last().map(|summary| summary.id);
        ids.extend(page.into_iter().map(|summary| summary.id));
        if done {
            return Ok(ids);
        }
    }
}

/// Replays `ids` in chunks and adds up the outcome.
pub async fn replay_ids(
    journal: &dyn Journal,
    ids: &[NotificationId],
    dry_run: bool,
    mut progress: impl FnMut(usize),
) -> Result<ReplayOutcome, crate::journal::JournalError> {
    let mut total = ReplayOutcome::default();
    for chunk in ids.chunks(CHUNK) {
        let outcome = journal.replay(chunk.to_vec(), dry_run).await?;
        total.matched += outcome.matched;
        total.enqueued += outcome.enqueued;
        progress(chunk.len());
    }
    Ok(total)
}

/// Re-enqueues the chosen notifications.
pub async fn replay(
    State(state): State<AppState>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let Json(request) =
        body.map_err(|rejection| ApiError::invalid("body", rejection.body_text()))?;
    let (ids, unknown_ids) = match (request.ids, request.filter) {
        (Some(ids), None) => {
            let parsed: Vec<(String, Option<NotificationId>)> = ids
                .into_iter()
                .map(|id| {
                    let text = match id {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    let number = text.parse().ok();
                    (text, number)
                })
                .collect();
            let numbers: Vec<NotificationId> = parsed.iter().filter_map(|(_, id)| *id).collect();
            let existing = state.journal.existing(&numbers).await?;
            // Unknown or malformed ids are reported in the order they were given.
            let mut found = Vec::new();
            let mut unknown = Vec::new();
            for (text, id) in parsed {
                match id {
                    Some(id) if existing.contains(&id) => {
                        if !found.contains(&id) {
                            found.push(id);
                        }
                    }
                    _ => unknown.push(text),
                }
            }
            (found, unknown)
        }
        (None, Some(filter)) => {
            let filter = filter.parse("filter.")?;
            (matching(state.journal.as_ref(), &filter).await?, Vec::new())
        }
        _ => {
            return Err(ApiError::invalid(
                "body",
                "give either \"ids\" or \"filter\"",
            ));
        }
    };
    let outcome = replay_ids(state.journal.as_ref(), &ids, request.dry_run, |_| {}).await?;
    if outcome.enqueued > 0 {
        state.doorbell.ring();
    }
    tracing::info!(
        matched = outcome.matched,
        enqueued = outcome.enqueued,
        dry_run = request.dry_run,
        "replay"
    );
    Ok(Json(ReplayAnswer {
        matched: outcome.matched,
        enqueued: outcome.enqueued,
        unknown_ids,
        dry_run: request.dry_run,
    }))
}
