//! Executors for tests that need processing to be slow, to block or to panic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dnb_hubspot_bridge::hubspot::{DryRunExecutor, Execution, Executor, Planned};
use dnb_hubspot_bridge::journal::LeaseWatch;
use tokio::sync::{Semaphore, watch};

/// Dry-run after a pause per batch.
pub struct Slow(pub Duration);

#[async_trait]
impl Executor for Slow {
    async fn execute(&self, batch: &[Planned], lease: &LeaseWatch) -> Vec<Execution> {
        tokio::time::sleep(self.0).await;
        DryRunExecutor.execute(batch, lease).await
    }
}

/// Dry-run, but panics on any batch holding the given DUNS.
pub struct PanicsOn(pub &'static str);

#[async_trait]
impl Executor for PanicsOn {
    async fn execute(&self, batch: &[Planned], lease: &LeaseWatch) -> Vec<Execution> {
        if batch
            .iter()
            .any(|planned| planned.notification.duns.as_str() == self.0)
        {
            panic!("simulated bug for DUNS {}", self.0);
        }
        DryRunExecutor.execute(batch, lease).await
    }
}

/// Dry-run, but each batch waits for a permit the test hands out.
pub struct Gated(pub Arc<Semaphore>);

#[async_trait]
impl Executor for Gated {
    async fn execute(&self, batch: &[Planned], lease: &LeaseWatch) -> Vec<Execution> {
        self.0.acquire().await.expect("gate open").forget();
        DryRunExecutor.execute(batch, lease).await
    }
}

/// Dry-run, but the first batch holds on until its lease is lost and a later batch (the
/// one that took its notifications over) has started: a batch that outlived its lease.
pub struct OutlivesItsLease {
    /// How many batches have started.
    pub started: watch::Sender<usize>,
}

impl OutlivesItsLease {
    pub fn new() -> Self {
        Self {
            started: watch::Sender::new(0),
        }
    }

    /// Waits (at most 20 s) until `count` batches have started.
    pub async fn wait_for_batches(&self, count: usize) {
        let mut started = self.started.subscribe();
        tokio::time::timeout(Duration::from_secs(20), started.wait_for(|n| *n >= count))
            .await
            .unwrap_or_else(|_| panic!("{count} batches never started"))
            .expect("the executor lives");
    }
}

#[async_trait]
impl Executor for OutlivesItsLease {
    async fn execute(&self, batch: &[Planned], lease: &LeaseWatch) -> Vec<Execution> {
        let mut number = 0;
        self.started.send_modify(|started| {
            *started += 1;
            number = *started;
        });
        if number == 1 {
            lease.lost().await;
            self.wait_for_batches(2).await;
        }
        DryRunExecutor.execute(batch, lease).await
    }
}
