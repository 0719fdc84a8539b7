//! The worker pool: claims from the journal, processes, records outcomes.
//!
//! A worker sleeps until the doorbell rings or the poll interval passes,
//! claims up to `workers.batch_size` notifications, processes them outside any
//! transaction and records the outcomes in a second short one. A partial batch
//! is claimed only once its oldest notification has waited
//! `workers.batch_max_wait_ms`, so notifications gather into full HubSpot batch
//! calls while the wait bounds each one's delay; one worker gathers at a time,
//! so the next one starts from the notifications that arrived after that claim.
//! Processes sharing a PostgreSQL journal gather each on their own, and their claims of
//! gathered batches go one at a time, each only if the batch is still there
//! ([`Journal::claim_gathered`]), so they do not split one batch between them.
//!
//! While a batch works, its worker renews the batch's lease ([`lease`]); a
//! batch whose lease was lost stops before its next HubSpot write, and the
//! journal refuses its outcomes where another claim took the notifications
//! over. On shutdown a worker finishes the batch in hand and claims nothing
//! more; whatever is unclaimed stays pending. Claims a crashed process left
//! are taken back when the next one opens the journal.

pub mod doorbell;
mod lease;
pub mod process;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

pub use doorbell::Doorbell;
pub use process::Processor;
pub use retry::RetryPolicy;

use crate::config::WorkerSettings;
use crate::hubspot::HubSpotStatus;
use crate::journal::{Claimed, Clock, Journal, now_ms};

/// What every worker shares.
#[derive(Clone)]
pub struct WorkerDeps {
    /// The journal to claim from.
    pub journal: Arc<dyn Journal>,
    /// Rung after each accepted delivery.
    pub doorbell: Doorbell,
    /// Turns claims into outcomes.
    pub processor: Arc<Processor>,
    /// This process's name in leases (`claimed_by`).
    pub instance: String,
    /// While HubSpot is paused, workers claim nothing.
    pub hubspot: Arc<HubSpotStatus>,
    /// The time leases are measured in (the journal's clock).
    pub clock: Arc<dyn Clock>,
}

/// Starts the pool.
pub struct WorkerPool;

/// The running pool.
pub struct PoolHandle {
    workers: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Starts `settings.count` workers that stop when `shutdown` is cancelled.
    pub fn start(
        settings: &WorkerSettings,
        deps: WorkerDeps,
        shutdown: CancellationToken,
    ) -> PoolHandle {
        let gathering = Arc::new(Mutex::new(()));
        let workers = (0..settings.count)
            .map(|number| {
                let worker = Worker {
                    name: format!("{}-{number}", deps.instance),
                    deps: deps.clone(),
                    gathering: gathering.clone(),
                    settings: settings.clone(),
                    shutdown: shutdown.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        PoolHandle { workers }
    }
}

impl PoolHandle {
    /// Waits until every worker has finished its batch in hand and stopped.
    pub async fn wait_for_shutdown(self) {
        for worker in self.workers {
            if let Err(error) = worker.await {
                tracing::error!(error = %error, "worker task ended abnormally");
            }
        }
    }
}

struct Worker {
    name: String,
    deps: WorkerDeps,
    /// Held by the worker that is gathering and claiming a batch.
    gathering: Arc<Mutex<()>>,
    settings: WorkerSettings,
    shutdown: CancellationToken,
}

impl Worker {
    async fn run(self) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        while !self.shutdown.is_cancelled() {
            if let Some(remaining) = self.deps.hubspot.remaining() {
                tokio::select! {
                    _ = sleep(remaining.min(poll)) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            }
            let (batch, claimed_at_ms) = self.claim_batch().await;
            let Some(claim) = batch.first().map(|claimed| claimed.claim) else {
                tokio::select! {
                    _ = self.deps.doorbell.wait() => {}
                    _ = sleep(poll) => {}
                    _ = self.shutdown.cancelled() => {}
                }
                continue;
            };
            let keeper = lease::Keeper {
                journal: self.deps.journal.clone(),
                clock: self.deps.clock.clone(),
                worker: self.name.clone(),
                lease: Duration::from_secs(self.settings.lease_secs),
            };
            let (lease, renewal) = keeper.keep(claim, claimed_at_ms);
            let completions = self.deps.processor.process(&batch, &lease).await;
            drop(renewal);
            // With the lease lost, the journal records only the outcomes of notifications no
            // other claim has taken over since.
            let recorded = self
                .deps
                .journal
                .complete(&self.name, claim, completions)
                .await;
            if let Err(error) = recorded {
                // The leases expire and the notifications are taken back and processed again.
                tracing::error!(worker = %self.name, error = %error, "could not record outcomes");
                sleep(poll).await;
            }
        }
        tracing::debug!(worker = %self.name, "worker stopped");
    }

    /// Claims up to `limit` notifications if they are still a gathered batch (at least
    /// `limit`, or the oldest received by `gathered_by`: another process may have claimed
    /// since); also returns the time just before the claim, which its lease cannot have
    /// started before.
    async fn claim(&self, limit: usize, gathered_by: i64) -> (Vec<Claimed>, i64) {
        let lease = Duration::from_secs(self.settings.lease_secs);
        let asked_at = self.deps.clock.now_ms();
        let claimed = (self.deps.journal)
            .claim_gathered(&self.name, limit, lease, gathered_by)
            .await;
        match claimed {
            Ok(claimed) => (claimed, asked_at),
            Err(error) => {
                tracing::error!(worker = %self.name, error = %error, "could not claim notifications");
                (Vec::new(), asked_at)
            }
        }
    }

    /// Claims a batch: at once when a full batch is pending, else when the oldest due
    /// notification has waited the batch wait. Under the gathering lock, so a worker that
    /// comes next sees only what arrived after the previous claim and waits for it to
    /// gather instead of taking a sliver (fewer, fuller HubSpot batch calls).
    async fn claim_batch(&self) -> (Vec<Claimed>, i64) {
        let size = self.settings.batch_size;
        let wait = Duration::from_millis(self.settings.batch_max_wait_ms);
        let nothing = || (Vec::new(), self.deps.clock.now_ms());
        let _gathering = tokio::select! {
            guard = self.gathering.lock() => guard,
            _ = self.shutdown.cancelled() => return nothing(),
        };
        while (self.deps.journal.pending_count() as usize) < size {
            // What is claimable is judged on the journal's clock, how long the oldest has
            // waited since its receipt on the system clock that stamped it.
            let claimable_at = self.deps.clock.now_ms();
            let oldest = match self
                .deps
                .journal
                .oldest_claimable_received_ms(claimable_at)
                .await
            {
                Ok(Some(oldest)) => oldest,
                // Nothing to claim: a claim now would only race with what is arriving.
                Ok(None) => return nothing(),
                Err(error) => {
                    tracing::error!(worker = %self.name, error = %error, "could not read the backlog");
                    break;
                }
            };
            let waited = Duration::from_millis((now_ms() - oldest).max(0) as u64);
            let Some(left) = wait.checked_sub(waited).filter(|left| !left.is_zero()) else {
                break;
            };
            tokio::select! {
                _ = sleep(left) => {}
                _ = self.shutdown.cancelled() => return nothing(),
            }
        }
        let gathered_by = now_ms() - wait.as_millis() as i64;
        self.claim(size, gathered_by).await
    }
}
