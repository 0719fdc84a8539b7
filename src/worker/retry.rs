//! When a failed notification is tried again, and when it is given up.
//!
//! Delays grow exponentially with jitter (backon) up to a ceiling. A
//! notification goes to `dead` only when its own failure has persisted longer
//! than `workers.dead_after`, never after a small count, so an outage never
//! turns a backlog dead.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::config::WorkerSettings;
use crate::journal::{Claimed, DeadReason, Outcome};

/// The retry schedule and the give-up age.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    initial: Duration,
    max: Duration,
    dead_after: Duration,
}

impl RetryPolicy {
    /// From `workers.*`.
    pub fn from_settings(settings: &WorkerSettings) -> Self {
        Self {
            initial: Duration::from_millis(settings.retry_initial_ms),
            max: Duration::from_secs(settings.retry_max_secs),
            dead_after: settings.dead_after,
        }
    }

    /// Delay before the next try after `attempts` failed ones, never longer than `max`.
    pub fn delay(&self, attempts: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempts.min(64) as usize)
            .unwrap_or(self.max)
            // backon applies its maximum before the jitter, which adds up to as much again.
            .min(self.max)
    }

    /// The outcome of a failure of `claimed` itself at `now_ms`.
    pub fn after_failure(
        &self,
        claimed: &Claimed,
        error: String,
        permanent: bool,
        now_ms: i64,
    ) -> Outcome {
        let first_failed_at_ms = claimed.first_failed_at_ms.unwrap_or(now_ms);
        let failing_for = Duration::from_millis((now_ms - first_failed_at_ms).max(0) as u64);
        if permanent {
            Outcome::Dead {
                reason: DeadReason::Invalid,
                error,
            }
        } else if failing_for >= self.dead_after {
            Outcome::Dead {
                reason: DeadReason::FailedTooLong,
                error,
            }
        } else {
            Outcome::Retry {
                error,
                next_attempt_at_ms: now_ms + self.delay(claimed.attempts).as_millis() as i64,
                first_failed_at_ms,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            dead_after: Duration::from_secs(3600),
        }
    }

    fn claimed(attempts: u32, first_failed_at_ms: Option<i64>) -> Claimed {
        Claimed {
            id: 1,
            claim: crate::journal::ClaimId(1),
            raw: String::new(),
            duns: "123456789".into(),
            notification_type: None,
            received_at_ms: 0,
            attempts,
            first_failed_at_ms,
        }
    }

    #[test]
    fn delays_grow_and_stay_under_the_ceiling() {
        let policy = policy();
        assert!(
            policy.delay(0) >= Duration::from_secs(1) && policy.delay(0) <= Duration::from_secs(2)
        );
        assert!(policy.delay(3) >= Duration::from_secs(8));
    }

    #[test]
    fn jitter_never_takes_a_delay_past_the_ceiling() {
        let policy = policy();
        for attempts in 0..=70 {
            for _ in 0..100 {
                let delay = policy.delay(attempts);
                assert!(delay <= policy.max, "attempt {attempts}: {delay:?}");
            }
        }
        assert_eq!(policy.delay(40), policy.max);
    }

    #[test]
    fn failures_retry_until_they_have_lasted_too_long() {
        let policy = policy();
        match policy.after_failure(&claimed(0, None), "boom".into(), false, 10_000) {
            Outcome::Retry {
                first_failed_at_ms,
                next_attempt_at_ms,
                ..
            } => {
                assert_eq!(first_failed_at_ms, 10_000);
                assert!(next_attempt_at_ms > 10_000);
            }
            other => panic!("{other:?}"),
        }
        let outcome = policy.after_failure(&claimed(50, Some(0)), "boom".into(), false, 3_600_000);
        assert!(matches!(
            outcome,
            Outcome::Dead {
                reason: DeadReason::FailedTooLong,
                ..
            }
        ));
        let outcome = policy.after_failure(&claimed(0, None), "bad input".into(), true, 0);
        assert!(matches!(
            outcome,
            Outcome::Dead {
                reason: DeadReason::Invalid,
                ..
            }
        ));
    }
}
