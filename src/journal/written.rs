//! What both backends write the same way: the columns an outcome sets, an attempt's error,
//! and the stored answer a redelivery gets.

use serde::{Deserialize, Serialize};

use super::{AppendOutcome, ItemFate, NotificationId, Outcome, RejectedIndex};

/// The notification columns an outcome sets.
pub(crate) struct StatusChange<'a> {
    pub(crate) status: &'static str,
    pub(crate) reason: Option<&'a str>,
    pub(crate) spent: i32,
    pub(crate) next_attempt_at: Option<i64>,
    /// Start of the current run of failures. Left out (`None`) on a pending row, the run goes on
    /// as it was; any other status ends it.
    pub(crate) first_failed_at: Option<i64>,
    pub(crate) error: Option<&'a str>,
    pub(crate) dry_run: Option<bool>,
}

impl<'a> StatusChange<'a> {
    /// The columns `outcome` sets.
    pub(crate) fn of(outcome: &'a Outcome) -> Self {
        let change = |status, spent| StatusChange {
            status,
            reason: None,
            spent,
            next_attempt_at: None,
            first_failed_at: None,
            error: None,
            dry_run: None,
        };
        match outcome {
            Outcome::Done { dry_run } => StatusChange {
                dry_run: Some(*dry_run),
                ..change("done", 1)
            },
            Outcome::Skipped { reason } => StatusChange {
                reason: Some(reason.as_str()),
                dry_run: Some(false),
                ..change("skipped", 1)
            },
            Outcome::Retry {
                error,
                next_attempt_at_ms,
                first_failed_at_ms,
            } => StatusChange {
                next_attempt_at: Some(*next_attempt_at_ms),
                first_failed_at: Some(*first_failed_at_ms),
                error: Some(error),
                ..change("pending", 1)
            },
            Outcome::Dead { reason, error } => StatusChange {
                reason: Some(reason.as_str()),
                error: Some(error),
                ..change("dead", 1)
            },
            // Deferred work spends no attempt, and neither ends nor starts a run of failures:
            // HubSpot as a whole was paused, so `workers.dead_after` still counts from the first.
            Outcome::Deferred {
                reason,
                next_attempt_at_ms,
            } => StatusChange {
                next_attempt_at: Some(*next_attempt_at_ms),
                error: Some(reason.as_str()),
                ..change("pending", 0)
            },
        }
    }
}

/// The error (or reason) an attempt row records for `outcome`.
pub(crate) fn attempt_error(outcome: &Outcome) -> Option<&str> {
    match outcome {
        Outcome::Retry { error, .. } | Outcome::Dead { error, .. } => Some(error.as_str()),
        Outcome::Deferred { reason, .. } => Some(reason.as_str()),
        Outcome::Skipped { reason } => Some(reason.as_str()),
        Outcome::Done { .. } => None,
    }
}

/// What `deliveries.result` holds, so a redelivery is answered as the first delivery was.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredResult {
    pub(crate) ids: Vec<Option<NotificationId>>,
    pub(crate) rejected: Vec<RejectedIndex>,
}

/// The answer to a redelivery of a delivery stored with these ids and rejections.
pub(crate) fn redelivered(
    ids: Vec<Option<NotificationId>>,
    rejected: Vec<RejectedIndex>,
) -> AppendOutcome {
    AppendOutcome {
        items: ids
            .into_iter()
            .map(|id| id.map_or(ItemFate::Rejected, ItemFate::Duplicate))
            .collect(),
        rejected,
        redelivery: true,
    }
}
