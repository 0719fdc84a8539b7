//! `POST /webhooks/dnb`: verify → parse → journal → ring the doorbell → 202.
//!
//! The 202 is sent only after the COMMIT holding the request's rows returned,
//! so an acknowledged notification survives a crash. Every refusal happens
//! before anything is stored.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use chrono::Utc;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use super::error::ApiError;
use super::state::AppState;
use crate::dnb::{BodyFormat, IncomingItem, parse_body};
use crate::journal::{Delivery, ItemFate, RejectedIndex};
use crate::signature;

/// The 202 answer.
#[derive(Debug, Serialize)]
pub struct Accepted {
    /// Notifications newly journaled for processing.
    pub accepted: usize,
    /// Items already journaled (redelivered `webhook-id` or same content).
    pub duplicates: usize,
    /// Items kept as rejected, by body index.
    pub rejected: Vec<RejectedIndex>,
    /// Per body item: journal id (of the new or the existing notification), null when rejected.
    pub ids: Vec<Option<String>>,
}

/// Handles one signed delivery.
#[tracing::instrument(name = "webhook", skip_all, fields(webhook.id = tracing::field::Empty))]
pub async fn receive(
    State(state): State<AppState>,
    request: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (parts, body) = request.into_parts();
    let result = accept(&state, &parts.headers, body).await;
    if let Err(error) = &result {
        if let Some(reason) = metric_reason(error) {
            state.metrics.webhook_rejected(reason);
        }
        tracing::info!(error = %error, "webhook refused");
    }
    result.map(|accepted| (StatusCode::ACCEPTED, Json(accepted)))
}

fn metric_reason(error: &ApiError) -> Option<&'static str> {
    Some(match error {
        ApiError::Signature(signature) => signature.reason(),
        ApiError::Payload(_) | ApiError::BodyUnreadable => "malformed_body",
        ApiError::BodyTooLarge { .. } => "body_too_large",
        ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
        ApiError::Overloaded => "overloaded",
        ApiError::Journal(_)
        | ApiError::NotFound
        | ApiError::AdminUnauthorized
        | ApiError::InvalidParameter { .. } => {
            return None;
        }
    })
}

async fn accept(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Accepted, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let format = BodyFormat::from_content_type(content_type)
        .ok_or_else(|| ApiError::UnsupportedMediaType(content_type.chars().take(100).collect()))?;
    if state.journal.pending_count() > state.settings.queue.high_water {
        return Err(ApiError::Overloaded);
    }

    let limit = state.settings.webhook.max_body_bytes;
    let bytes = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|error| {
            if error.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::BodyTooLarge { limit }
            } else {
                ApiError::BodyUnreadable
            }
        })?
        .to_bytes();

    let delivery = signature::verify(
        headers,
        &bytes,
        &state.secrets,
        Duration::from_secs(state.settings.webhook.tolerance_secs),
        SystemTime::now(),
    )?;
    tracing::Span::current().record("webhook.id", delivery.webhook_id.as_str());

    // Parsing is CPU work proportional to the body; keep it off the I/O threads for large bodies.
    let items = if bytes.len() > 256 * 1024 {
        tokio::task::spawn_blocking(move || parse_body(format, &bytes))
            .await
            .map_err(|_| ApiError::BodyUnreadable)??
    } else {
        parse_body(format, &bytes)?
    };

    let kinds: Vec<_> = items
        .iter()
        .map(|item| match item {
            IncomingItem::Valid(valid) => (Some(valid.notification_type), None),
            IncomingItem::Rejected(rejected) => {
                (rejected.notification_type, Some(rejected.rejection.reason))
            }
        })
        .collect();
    let outcome = state
        .journal
        .append(Delivery {
            webhook_id: delivery.webhook_id,
            received_at: Utc::now(),
            items,
            checkpoint: None,
        })
        .await?;

    let (accepted, duplicates) = (outcome.accepted(), outcome.duplicates());
    if accepted > 0 {
        state.doorbell.ring();
    }
    if !outcome.redelivery {
        for ((kind, rejected), fate) in kinds.iter().zip(&outcome.items) {
            match (fate, rejected) {
                (ItemFate::Accepted(_), _) => state.metrics.received(*kind),
                (ItemFate::Rejected, Some(reason)) => {
                    state.metrics.received(*kind);
                    state.metrics.webhook_rejected(reason.as_str());
                }
                _ => {}
            }
        }
    }
    state.metrics.duplicates(duplicates);
    tracing::debug!(
        accepted,
        duplicates,
        rejected = outcome.rejected.len(),
        "webhook accepted"
    );
    Ok(Accepted {
        accepted,
        duplicates,
        rejected: outcome.rejected,
        ids: outcome
            .items
            .iter()
            .map(|fate| fate.id().map(|id| id.to_string()))
            .collect(),
    })
}
