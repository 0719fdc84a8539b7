//! `GET /notifications` (filters, opaque cursor) and `GET /notifications/{id}`
//! (the payload, status history, attempts and HubSpot objects).

use axum::Json;
use axum::extract::{Path, Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{FilterInput, MAX_LIMIT, rfc3339};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::journal::{ActionState, Detail, NotificationId, Summary};

/// Query of `GET /notifications`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    notification_type: Option<String>,
    duns: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// One listed notification.
#[derive(Debug, Serialize)]
pub struct Item {
    id: String,
    status: &'static str,
    reason: Option<String>,
    #[serde(rename = "type")]
    notification_type: Option<String>,
    duns: Option<String>,
    received_at: String,
    attempts: u32,
    last_error: Option<String>,
}

impl From<Summary> for Item {
    fn from(summary: Summary) -> Self {
        Self {
            id: summary.id.to_string(),
            status: summary.status.as_str(),
            reason: summary.reason,
            notification_type: summary.notification_type,
            duns: summary.duns,
            received_at: rfc3339(summary.received_at_ms),
            attempts: summary.attempts,
            last_error: summary.last_error,
        }
    }
}

/// A page of notifications.
#[derive(Debug, Serialize)]
pub struct Page {
    items: Vec<Item>,
    next_cursor: Option<String>,
}

pub(super) fn encode_cursor(id: NotificationId) -> String {
    URL_SAFE_NO_PAD.encode(format!("before:{id}"))
}

/// The page size (`limit`, default 100, at most [`MAX_LIMIT`]) and the position a listing
/// starts after (`cursor`; empty is the start: the first page).
pub(super) fn page(
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(usize, Option<NotificationId>), ApiError> {
    let limit = match limit {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let before = cursor
        .filter(|cursor| !cursor.is_empty())
        .map(decode_cursor)
        .transpose()?;
    Ok((limit, before))
}

pub(super) fn decode_cursor(cursor: &str) -> Result<NotificationId, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("before:").and_then(|id| id.parse().ok()))
        .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this service gave out"))
}

/// Lists notifications, newest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let (limit, before) = page(query.limit.as_deref(), query.cursor.as_deref())?;
    let filter = FilterInput {
        status: query.status,
        notification_type: query.notification_type,
        duns: query.duns,
        since: query.since,
        until: query.until,
    }
    .parse("")?;
    // One more than asked tells whether another page exists.
    let mut summaries = state.journal.list(&filter, limit + 1, before).await?;
    let next_cursor = (summaries.len() > limit).then(|| {
        summaries.truncate(limit);
        encode_cursor(summaries[limit - 1].id)
    });
    Ok(Json(Page {
        items: summaries.into_iter().map(Item::from).collect(),
        next_cursor,
    }))
}

/// One notification in full.
#[derive(Debug, Serialize)]
pub struct Full {
    #[serde(flatten)]
    item: Item,
    webhook_id: String,
    delivered_at: Option<String>,
    dry_run: bool,
    notification: Value,
    history: Vec<HistoryEntry>,
    attempt_log: Vec<Attempt>,
    hubspot_objects: Vec<HubSpotObject>,
}

/// One status change.
#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    at: String,
    status: String,
    detail: Option<String>,
}

/// One processing attempt.
#[derive(Debug, Serialize)]
pub struct Attempt {
    started_at: String,
    finished_at: String,
    worker: String,
    outcome: String,
    error: Option<String>,
}

/// One HubSpot action and the object it produced or changed.
#[derive(Debug, Serialize)]
pub struct HubSpotObject {
    action: String,
    state: &'static str,
    object_type: Option<String>,
    object_id: Option<String>,
    detail: Value,
}

fn history(detail: &Detail) -> Vec<HistoryEntry> {
    let received = if detail.summary.status.as_str() == "rejected" {
        "rejected"
    } else {
        "pending"
    };
    let mut entries: Vec<(i64, HistoryEntry)> = vec![(
        detail.summary.received_at_ms,
        HistoryEntry {
            at: rfc3339(detail.summary.received_at_ms),
            status: received.into(),
            detail: Some("received".into()),
        },
    )];
    for attempt in &detail.attempts {
        let status = match attempt.outcome.as_str() {
            "retry" | "deferred" => "pending",
            other => other,
        };
        entries.push((
            attempt.finished_at_ms,
            HistoryEntry {
                at: rfc3339(attempt.finished_at_ms),
                status: status.into(),
                detail: attempt.error.clone(),
            },
        ));
    }
    for (at, previous) in &detail.replays {
        entries.push((
            *at,
            HistoryEntry {
                at: rfc3339(*at),
                status: "pending".into(),
                detail: Some(format!("replayed (was {previous})")),
            },
        ));
    }
    entries.sort_by_key(|(at, _)| *at);
    entries.into_iter().map(|(_, entry)| entry).collect()
}

/// Shows one notification.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Full>, ApiError> {
    let id: NotificationId = id.parse().map_err(|_| ApiError::NotFound)?;
    let detail = state.journal.detail(id).await?.ok_or(ApiError::NotFound)?;
    let history = history(&detail);
    let Detail {
        summary,
        webhook_id,
        delivered_at_ms,
        dry_run,
        raw,
        attempts,
        actions,
        ..
    } = detail;
    Ok(Json(Full {
        item: Item::from(summary),
        webhook_id,
        delivered_at: delivered_at_ms.map(rfc3339),
        dry_run,
        notification: serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
        history,
        attempt_log: attempts
            .into_iter()
            .map(|attempt| Attempt {
                started_at: rfc3339(attempt.started_at_ms),
                finished_at: rfc3339(attempt.finished_at_ms),
                worker: attempt.worker,
                outcome: attempt.outcome,
                error: attempt.error,
            })
            .collect(),
        hubspot_objects: actions
            .into_iter()
            .map(|stored| HubSpotObject {
                action: stored.record.kind,
                state: match stored.record.state {
                    ActionState::Planned => "planned",
                    ActionState::Unknown => "unknown",
                    ActionState::Done => "done",
                },
                object_type: stored.record.object_type,
                object_id: stored.record.object_id,
                detail: serde_json::from_str(&stored.record.detail).unwrap_or(Value::Null),
            })
            .collect(),
    }))
}
