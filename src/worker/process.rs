//! One claimed batch: parse → plan → execute → outcomes to record.
//!
//! Planning and execution run under `catch_unwind`: when a batch panics it is
//! executed again one notification at a time, so only the notification that
//! panics is marked failed and the worker lives on.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::dnb::Notification;
use crate::hubspot::{Execution, Executor, Planned};
use crate::journal::{Claimed, Clock, Completion, LeaseWatch, Outcome, now_ms};
use crate::mapping::{ActionRules, plan};
use crate::telemetry::Metrics;

use super::retry::RetryPolicy;

/// Notifications planned between two yields to the runtime, so a large batch does not hold
/// back the webhook answers waiting on the same thread (about 0.3 ms of planning).
const PLAN_SLICE: usize = 16;

/// Everything a worker needs to turn claims into outcomes.
pub struct Processor {
    /// The action table.
    pub rules: ActionRules,
    /// Performs the plans.
    pub executor: Arc<dyn Executor>,
    /// Retry schedule and give-up age.
    pub retry: RetryPolicy,
    /// Where outcomes are counted.
    pub metrics: Arc<Metrics>,
    /// The time attempts and retries are measured in (the journal's clock).
    pub clock: Arc<dyn Clock>,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl Processor {
    /// Processes a claimed batch and returns one completion per claim, in order. `lease`
    /// is handed to the executor, which stops writing once the lease is lost.
    pub async fn process(&self, batch: &[Claimed], lease: &LeaseWatch) -> Vec<Completion> {
        let started_at_ms = self.clock.now_ms();
        let mut results: Vec<Option<Result<Execution, String>>> = vec![None; batch.len()];
        let mut work = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(batch.len());
        for (position, claimed) in batch.iter().enumerate() {
            if position > 0 && position % PLAN_SLICE == 0 {
                // Planning is CPU work on the runtime that also answers webhooks.
                tokio::task::yield_now().await;
            }
            match self.prepare(claimed) {
                Ok(planned) => {
                    work.push(planned);
                    positions.push(position);
                }
                Err(error) => results[position] = Some(Err(error)),
            }
        }

        let executed = AssertUnwindSafe(self.executor.execute(&work, lease))
            .catch_unwind()
            .await;
        match executed {
            Ok(executions) if executions.len() == work.len() => {
                for (position, execution) in positions.iter().zip(executions) {
                    results[*position] = Some(Ok(execution));
                }
            }
            Ok(executions) => {
                let error = format!(
                    "executor answered {} results for {} notifications",
                    executions.len(),
                    work.len()
                );
                for position in &positions {
                    results[*position] = Some(Err(error.clone()));
                }
            }
            Err(payload) => {
                tracing::error!(panic = %panic_message(&*payload), size = work.len(), "batch panicked; executing one at a time");
                for (position, planned) in positions.iter().zip(work) {
                    let single = AssertUnwindSafe(
                        self.executor.execute(std::slice::from_ref(&planned), lease),
                    )
                    .catch_unwind()
                    .await;
                    results[*position] = Some(match single {
                        Ok(mut executions) if executions.len() == 1 => Ok(executions.remove(0)),
                        Ok(_) => Err("executor answered the wrong number of results".into()),
                        Err(payload) => Err(format!(
                            "panic while processing: {}",
                            panic_message(&*payload)
                        )),
                    });
                }
            }
        }

        let finished_ms = self.clock.now_ms();
        batch
            .iter()
            .zip(results)
            .map(|(claimed, result)| {
                let result = result.unwrap_or_else(|| Err("not executed".into()));
                self.complete(claimed, result, started_at_ms, finished_ms)
            })
            .collect()
    }

    /// Parses and plans one claim; a panic in the planner is this notification's failure.
    fn prepare(&self, claimed: &Claimed) -> Result<Planned, String> {
        let value: serde_json::Value = serde_json::from_str(&claimed.raw)
            .map_err(|error| format!("stored notification is not JSON: {error}"))?;
        let notification = Notification::from_value(&value)
            .map_err(|rejection| format!("stored notification is invalid: {}", rejection.detail))?;
        let planned = std::panic::catch_unwind(AssertUnwindSafe(|| {
            plan(claimed.id, &notification, &self.rules)
        }))
        .map_err(|payload| format!("panic while planning: {}", panic_message(&*payload)))?;
        Ok(Planned {
            id: claimed.id,
            claim: claimed.claim,
            notification,
            plan: planned,
        })
    }

    fn complete(
        &self,
        claimed: &Claimed,
        result: Result<Execution, String>,
        started_at_ms: i64,
        now: i64,
    ) -> Completion {
        let notification_type = claimed.notification_type;
        let (outcome, actions) = match result {
            Ok(Execution::Done { dry_run, actions }) => (Outcome::Done { dry_run }, actions),
            Ok(Execution::Skipped { reason, actions }) => (Outcome::Skipped { reason }, actions),
            Ok(Execution::Failed {
                error,
                permanent,
                not_before,
                actions,
            }) => {
                let mut outcome = self.retry.after_failure(claimed, error, permanent, now);
                if let (
                    Outcome::Retry {
                        next_attempt_at_ms, ..
                    },
                    Some(wait),
                ) = (&mut outcome, not_before)
                {
                    *next_attempt_at_ms = (*next_attempt_at_ms).max(now + wait.as_millis() as i64);
                }
                (outcome, actions)
            }
            Ok(Execution::Deferred {
                reason,
                wait,
                actions,
            }) => (
                Outcome::Deferred {
                    reason,
                    next_attempt_at_ms: now + wait.as_millis() as i64,
                },
                actions,
            ),
            Err(error) => (
                self.retry.after_failure(claimed, error, false, now),
                Vec::new(),
            ),
        };
        // Receipt times come from the system clock.
        let age = Duration::from_millis((now_ms() - claimed.received_at_ms).max(0) as u64);
        match &outcome {
            Outcome::Done { .. } => self.metrics.processed(notification_type, "done", Some(age)),
            Outcome::Skipped { .. } => {
                self.metrics
                    .processed(notification_type, "skipped", Some(age))
            }
            Outcome::Retry { error, .. } => {
                tracing::warn!(notification.id = claimed.id, dnb.duns = %claimed.duns, error = %error, "processing failed; will retry");
                self.metrics.processed(notification_type, "retry", None);
            }
            Outcome::Dead { error, .. } => {
                tracing::error!(notification.id = claimed.id, dnb.duns = %claimed.duns, error = %error, "notification is dead");
                self.metrics.processed(notification_type, "dead", None);
            }
            Outcome::Deferred { .. } => {}
        }
        tracing::debug!(notification.id = claimed.id, dnb.duns = %claimed.duns, outcome = outcome.as_str(), "notification processed");
        Completion {
            id: claimed.id,
            started_at_ms,
            outcome,
            actions,
        }
    }
}
