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

/// Body of `POST /replay`. A field that is null is the same as one left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    ids: Option<Vec<Value>>,
    filter: Option<FilterInput>,
    dry_run: Option<bool>,
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

/// The text of a requested id: a string as given, an integer (also one written
/// as `7.0`) in decimal. Anything else is not an id; `None`.
fn id_text(id: Value) -> Option<String> {
    match id {
        Value::String(text) => Some(text),
        Value::Number(number) => {
            if number.is_i64() || number.is_u64() {
                Some(number.to_string())
            } else {
                number
                    .as_f64()
                    .filter(|float| float.is_finite() && float.fract() == 0.0)
                    .map(|float| format!("{float:.0}"))
            }
        }
        _ => None,
    }
}

/// Re-enqueues the chosen notifications.
pub async fn replay(
    State(state): State<AppState>,
    body: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let Json(request) =
        body.map_err(|rejection| ApiError::invalid("body", rejection.body_text()))?;
    let dry_run = request.dry_run.unwrap_or(false);
    let (ids, unknown_ids) = match (request.ids, request.filter) {
        (Some(ids), None) => {
            let parsed: Vec<(String, Option<NotificationId>)> = ids
                .into_iter()
                .enumerate()
                .map(|(index, id)| {
                    let text = id_text(id).ok_or_else(|| {
                        ApiError::invalid(format!("ids[{index}]"), "must be a string or an integer")
                    })?;
                    let number = text.parse().ok();
                    Ok((text, number))
                })
                .collect::<Result<_, ApiError>>()?;
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
    let outcome = replay_ids(state.journal.as_ref(), &ids, dry_run, |_| {}).await?;
    if outcome.enqueued > 0 {
        state.doorbell.ring();
    }
    tracing::info!(
        matched = outcome.matched,
        enqueued = outcome.enqueued,
        dry_run,
        "replay"
    );
    Ok(Json(ReplayAnswer {
        matched: outcome.matched,
        enqueued: outcome.enqueued,
        unknown_ids,
        dry_run,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::id_text;

    #[test]
    fn ids_are_strings_or_integers() {
        assert_eq!(id_text(json!("42")), Some("42".into()));
        assert_eq!(id_text(json!("nope")), Some("nope".into()));
        assert_eq!(id_text(json!(42)), Some("42".into()));
        assert_eq!(id_text(json!(-3)), Some("-3".into()));
        assert_eq!(id_text(json!(42.0)), Some("42".into()));
        for not_an_id in [json!(1.5), json!(null), json!(true), json!([1]), json!({})] {
            assert_eq!(id_text(not_an_id.clone()), None, "{not_an_id}");
        }
    }
}
