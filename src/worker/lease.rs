//! Keeping a claimed batch's lease while the batch works.
//!
//! A batch can run far longer than it takes to plan it: reconciling lost
//! creates searches at 4 per second, calls wait up to `hubspot.timeout_secs`,
//! rate limits hold calls back. So while a batch works, its worker renews the
//! lease every third of `workers.lease_secs`. When a renewal finds the lease
//! gone (it ran out and may have been taken over by another claim), or no
//! renewal has succeeded by the time the lease would run out (the journal
//! could not be reached), the batch's [`LeaseWatch`] turns lost and the
//! executor stops before its next HubSpot write. The watch also knows the time
//! the lease was last known to hold until, and counts it lost from then on by
//! itself: a process paused past its lease (SIGSTOP, a stalled VM) finds it lost
//! at its next write, before the renewal has had the chance to run and fail.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::journal::{ClaimId, Clock, Journal, LeaseSignal, LeaseWatch, lease_watch};

/// Renews a lease until dropped.
pub(super) struct Renewal {
    _stop: DropGuard,
}

/// What renewing a lease needs.
pub(super) struct Keeper {
    pub journal: Arc<dyn Journal>,
    pub clock: Arc<dyn Clock>,
    pub worker: String,
    pub lease: Duration,
}

impl Keeper {
    /// Starts renewing `claim`, whose lease began no earlier than `claimed_at_ms`; the
    /// watch reports its loss. Dropping the [`Renewal`] stops renewing.
    pub(super) fn keep(self, claim: ClaimId, claimed_at_ms: i64) -> (LeaseWatch, Renewal) {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let (signal, watch) =
            lease_watch(self.clock.clone(), claimed_at_ms.saturating_add(lease_ms));
        let stop = CancellationToken::new();
        let renewing = stop.clone();
        tokio::spawn(async move {
            renewing
                .run_until_cancelled(self.renew(claim, claimed_at_ms, signal))
                .await
        });
        (
            watch,
            Renewal {
                _stop: stop.drop_guard(),
            },
        )
    }

    async fn renew(self, claim: ClaimId, claimed_at_ms: i64, signal: LeaseSignal) {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let every = (lease_ms / 3).max(1);
        // The lease is known to hold until then at least.
        let mut held_until = claimed_at_ms.saturating_add(lease_ms);
        let mut next = claimed_at_ms.saturating_add(every);
        loop {
            self.clock.sleep_until(next).await;
            let asked_at = self.clock.now_ms();
            match self.journal.renew(claim, self.lease).await {
                Ok(true) => {
                    held_until = asked_at.saturating_add(lease_ms);
                    signal.extend(held_until);
                    next = asked_at.saturating_add(every);
                }
                Ok(false) => {
                    tracing::warn!(worker = %self.worker, claim = %claim, "the batch's lease was lost; it stops before its next HubSpot write");
                    signal.lose();
                    return;
                }
                Err(error) if self.clock.now_ms() >= held_until => {
                    tracing::error!(worker = %self.worker, claim = %claim, error = %error, "the batch's lease ran out unrenewed; it stops before its next HubSpot write");
                    signal.lose();
                    return;
                }
                Err(error) => {
                    tracing::warn!(worker = %self.worker, claim = %claim, error = %error, "could not renew the batch's lease; trying again");
                    next = asked_at.saturating_add(every).min(held_until);
                }
            }
        }
    }
}
