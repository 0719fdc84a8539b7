//! The executor seam: workers hand it planned notifications, it performs (or,
//! in dry-run, only records) their HubSpot actions and says how each ended.

use async_trait::async_trait;

use crate::dnb::Notification;
use crate::journal::{
    ActionRecord, ActionState, ClaimId, DeferReason, LeaseWatch, NotificationId, SkipReason,
};
use crate::mapping::{Action, Plan};

/// A claimed notification with its plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Journal id.
    pub id: NotificationId,
    /// The claim the worker holds it under; journal writes made before the outcome name it.
    pub claim: ClaimId,
    /// The parsed notification.
    pub notification: Notification,
    /// What it asks HubSpot to do.
    pub plan: Plan,
}

/// How executing one planned notification ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// All actions performed (or planned, when `dry_run`).
    Done {
        /// Whether HubSpot was left untouched.
        dry_run: bool,
        /// Actions with their state and HubSpot ids.
        actions: Vec<ActionRecord>,
    },
    /// Nothing could be done, for a reason such as `no_company`.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// Actions performed before the skip, if any.
        actions: Vec<ActionRecord>,
    },
    /// This notification's own failure.
    Failed {
        /// What went wrong (never a secret).
        error: String,
        /// True when retrying cannot help (a validation error).
        permanent: bool,
        /// Do not retry before this long (a lost write needs time to show in search).
        not_before: Option<std::time::Duration>,
        /// Actions that did succeed (checkpoints) or whose answer was lost.
        actions: Vec<ActionRecord>,
    },
    /// Not attempted, or abandoned, because HubSpot as a whole is unavailable; spends no attempt.
    Deferred {
        /// Why: HubSpot paused, a lost create waiting for search, order, a lost lease.
        reason: DeferReason,
        /// How long to wait before trying again.
        wait: std::time::Duration,
        /// Actions that did succeed, or whose answer was lost, before HubSpot failed.
        actions: Vec<ActionRecord>,
    },
}

/// Performs plans. One call gets a whole claimed batch, so calls can be batched.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Executes `batch`; the answer has one entry per input, in order. `lease` tells whether
    /// the batch's lease still holds: once it is lost, another worker may own the
    /// notifications, so an executor that writes somewhere stops before its next write (the
    /// journal refuses the batch's outcomes and action records anyway).
    async fn execute(&self, batch: &[Planned], lease: &LeaseWatch) -> Vec<Execution>;
}

/// Records plans as planned actions and logs them; sends nothing.
///
/// Planned actions are not checkpoints: enabling HubSpot later and replaying
/// the notification performs them for real.
#[derive(Debug, Default, Clone, Copy)]
pub struct DryRunExecutor;

/// The journal record of a planned action. Its detail is a summary (subject,
/// properties, body size): the full content is a pure function of the stored
/// notification and the config, so it is not stored twice.
pub fn planned_record(action: &Action) -> ActionRecord {
    let detail = match action {
        Action::CreateTask {
            subject, priority, ..
        } => serde_json::json!({"subject": subject, "priority": priority}),
        Action::CreateNote { body } => serde_json::json!({"body_chars": body.chars().count()}),
        Action::UpdateProperty { properties } => serde_json::json!({"properties": properties}),
        Action::UpdateCompany {
            properties,
            create_if_missing,
        } => {
            serde_json::json!({"properties": properties, "create_if_missing": create_if_missing})
        }
    };
    ActionRecord {
        key: action.kind().as_str().to_string(),
        kind: action.kind().as_str().to_string(),
        state: ActionState::Planned,
        object_type: None,
        object_id: None,
        detail: detail.to_string(),
    }
}

#[async_trait]
impl Executor for DryRunExecutor {
    /// Writes nothing anywhere, so a lost lease changes nothing here.
    async fn execute(&self, batch: &[Planned], _lease: &LeaseWatch) -> Vec<Execution> {
        batch
            .iter()
            .map(|planned| {
                let kinds: Vec<&str> = planned.plan.actions.iter().map(|action| action.kind().as_str()).collect();
                tracing::info!(
                    notification.id = planned.id,
                    dnb.duns = %planned.notification.duns,
                    dnb.type = %planned.notification.notification_type,
                    actions = ?kinds,
                    "dry-run: HubSpot actions planned, none sent"
                );
                tracing::debug!(notification.id = planned.id, plan = %serde_json::to_string(&planned.plan).unwrap_or_default(), "dry-run plan");
                Execution::Done {
                    dry_run: true,
                    actions: planned.plan.actions.iter().map(planned_record).collect(),
                }
            })
            .collect()
    }
}
