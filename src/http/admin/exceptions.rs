//! `GET /exceptions`: the DUNS that D&B could not monitor, from the EXCEPTIONS delivery files
//! `import` and the inbox recorded, newest first.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::notifications::{encode_cursor, page};
use super::rfc3339;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::journal::DnbException;

/// Query of `GET /exceptions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionsQuery {
    duns: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// One recorded EXCEPTIONS line.
#[derive(Debug, Serialize)]
pub struct ExceptionItem {
    id: String,
    duns: String,
    code: String,
    information: String,
    file: String,
    line: u64,
    recorded_at: String,
}

impl From<DnbException> for ExceptionItem {
    fn from(exception: DnbException) -> Self {
        Self {
            id: exception.id.to_string(),
            duns: exception.duns,
            code: exception.code,
            information: exception.information,
            file: exception.file_name,
            line: exception.line,
            recorded_at: rfc3339(exception.recorded_at_ms),
        }
    }
}

/// A page of exceptions.
#[derive(Debug, Serialize)]
pub struct ExceptionPage {
    items: Vec<ExceptionItem>,
    next_cursor: Option<String>,
}

/// Lists recorded exceptions, newest first.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ExceptionsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExceptionPage>, ApiError> {
    let Query(query) =
        query.map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    let (limit, before) = page(query.limit.as_deref(), query.cursor.as_deref())?;
    let duns = query
        .duns
        .map(|text| {
            crate::dnb::Duns::parse(&text)
                .map(|duns| duns.to_string())
                .ok_or_else(|| ApiError::invalid("duns", "must be 9 digits"))
        })
        .transpose()?;
    let mut exceptions = state.journal.exceptions(duns, limit + 1, before).await?;
    let next_cursor = (exceptions.len() > limit).then(|| {
        exceptions.truncate(limit);
        encode_cursor(exceptions[limit - 1].id)
    });
    Ok(Json(ExceptionPage {
        items: exceptions.into_iter().map(ExceptionItem::from).collect(),
        next_cursor,
    }))
}
