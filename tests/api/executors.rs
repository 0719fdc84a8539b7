//! Executors for tests that need processing to be slow, to block or to panic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dnb_hubspot_bridge::hubspot::{DryRunExecutor, Execution, Executor, Planned};
use dnb_hubspot_bridge::journal::LeaseWatch;
use tokio::sync::Semaphore;

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
