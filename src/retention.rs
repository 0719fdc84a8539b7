//! The retention purge: finished notifications (done, skipped, rejected) older
//! than `storage.retention` are deleted in small batches in the background,
//! with their attempts and actions, and so are delivery records. Pending and
//! dead notifications are never purged.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::StorageSettings;
use crate::journal::{Journal, now_ms};
use crate::telemetry::Metrics;

/// Notifications deleted per transaction, so ingest never waits long behind a purge.
const BATCH: usize = 500;

/// Starts the purge loop; it stops when `shutdown` is cancelled.
pub fn start(
    settings: &StorageSettings,
    journal: Arc<dyn Journal>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let retention = settings.retention;
    let interval = Duration::from_secs(settings.purge_interval_secs);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => return,
            }
            let before = now_ms() - retention.as_millis() as i64;
            loop {
                match journal.purge(before, BATCH).await {
                    Ok(count) => {
                        metrics.purged(count);
                        if count < BATCH || shutdown.is_cancelled() {
                            break;
                        }
                        // Leave the writer to ingest between batches.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "retention purge failed; retrying at the next interval");
                        break;
                    }
                }
            }
        }
    })
}
