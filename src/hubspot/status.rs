//! Whether HubSpot as a whole can take work now: the workers' circuit breaker.
//!
//! When HubSpot fails for everyone (rate limit, outage, bad token), the
//! executor pauses here instead of spending each notification's attempts;
//! workers stop claiming until the pause ends, `/ready` reports it without
//! failing, and `bridge_hubspot_paused{reason}` shows it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use strum::VariantArray;

use crate::journal::PauseReason;
use crate::telemetry::Metrics;

/// A pause in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// Why.
    pub reason: PauseReason,
    /// When work may be tried again.
    pub until: Instant,
    /// What HubSpot said (never a secret).
    pub message: String,
}

/// The shared pause state.
pub struct HubSpotStatus {
    enabled: bool,
    pause: Mutex<Option<Pause>>,
    metrics: Arc<Metrics>,
}

impl HubSpotStatus {
    /// No pause; `enabled` is false in dry-run.
    pub fn new(enabled: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            enabled,
            pause: Mutex::new(None),
            metrics,
        }
    }

    /// Pauses workers for `duration`; logs when the pause begins or changes reason.
    pub fn pause(&self, reason: PauseReason, duration: Duration, message: String) {
        let mut pause = self.pause.lock().expect("pause state");
        if pause
            .as_ref()
            .is_none_or(|current| current.reason != reason)
        {
            if reason == PauseReason::Auth {
                tracing::error!(%message, retry_in_secs = duration.as_secs(), "HubSpot refused the credentials; workers paused, ingest continues");
            } else {
                tracing::warn!(reason = reason.as_str(), %message, retry_in_secs = duration.as_secs(), "HubSpot unavailable; workers paused");
            }
        }
        for known in PauseReason::VARIANTS {
            self.metrics
                .hubspot_paused(known.as_str(), *known == reason);
        }
        *pause = Some(Pause {
            reason,
            until: Instant::now() + duration,
            message,
        });
    }

    /// Ends any pause.
    pub fn resume(&self) {
        let mut pause = self.pause.lock().expect("pause state");
        if let Some(ended) = pause.take() {
            tracing::info!(
                reason = ended.reason.as_str(),
                "HubSpot reachable again; workers resumed"
            );
            for known in PauseReason::VARIANTS {
                self.metrics.hubspot_paused(known.as_str(), false);
            }
        }
    }

    /// The pause in force, including one whose time has run out but was not yet lifted.
    pub fn current(&self) -> Option<Pause> {
        self.pause.lock().expect("pause state").clone()
    }

    /// How long workers should still wait, if at all.
    pub fn remaining(&self) -> Option<Duration> {
        self.current()
            .map(|pause| pause.until.saturating_duration_since(Instant::now()))
            .filter(|remaining| !remaining.is_zero())
    }

    /// `(state, reason)` for `/ready`: `disabled`, `ok` or `paused`.
    pub fn readiness(&self) -> (&'static str, Option<&'static str>) {
        if !self.enabled {
            return ("disabled", Some("dry_run"));
        }
        match self.current() {
            Some(pause) => ("paused", Some(pause.reason.as_str())),
            None => ("ok", None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pause_reports_its_reason_until_resumed() {
        let metrics = Arc::new(Metrics::new());
        let status = HubSpotStatus::new(true, metrics.clone());
        status.pause(
            PauseReason::Outage,
            Duration::from_secs(30),
            "HTTP 503".into(),
        );
        assert_eq!(status.readiness(), ("paused", Some("outage")));
        assert!(status.remaining().unwrap() <= Duration::from_secs(30));
        assert!(
            metrics
                .render()
                .contains("bridge_hubspot_paused{reason=\"outage\"} 1")
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(status.remaining(), None);
        status.resume();
        assert_eq!(status.readiness(), ("ok", None));
        assert!(
            metrics
                .render()
                .contains("bridge_hubspot_paused{reason=\"outage\"} 0")
        );
    }
}
