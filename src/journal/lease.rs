//! Whether a claimed batch's lease still holds, as seen by the code working on it.
//!
//! The worker that claimed a batch renews its lease while the batch works and
//! reports a lost one through a [`LeaseSignal`]; the executor holds the
//! matching [`LeaseWatch`] and stops before its next HubSpot write once the
//! lease is lost, since another worker may by then own the notifications.

use tokio::sync::watch;

/// The executor's side: cheap to clone, and never blocks.
#[derive(Debug, Clone)]
pub struct LeaseWatch {
    lost: watch::Receiver<bool>,
}

/// The lease was lost: another claim may own the notifications now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lease on the batch was lost")]
pub struct LeaseLost;

/// The renewing side: says when the lease is lost.
#[derive(Debug)]
pub struct LeaseSignal {
    lost: watch::Sender<bool>,
}

/// A new, held lease's two sides.
pub fn lease_watch() -> (LeaseSignal, LeaseWatch) {
    let (sender, receiver) = watch::channel(false);
    (LeaseSignal { lost: sender }, LeaseWatch { lost: receiver })
}

impl LeaseWatch {
    /// A watch whose lease is never lost, for work outside the worker pool (and tests).
    pub fn held() -> Self {
        lease_watch().1
    }

    /// Whether the lease was lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// `Err(LeaseLost)` once the lease was lost; for `?` before each write.
    pub fn check(&self) -> Result<(), LeaseLost> {
        if self.is_lost() {
            Err(LeaseLost)
        } else {
            Ok(())
        }
    }

    /// Returns once the lease is lost; never, while it holds.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|lost| *lost).await.is_err() {
            // The signal is gone without a loss: the lease held to the end.
            std::future::pending::<()>().await;
        }
    }
}

impl LeaseSignal {
    /// Marks the lease lost, for good.
    pub fn lose(&self) {
        self.lost.send_replace(true);
    }

    /// Whether the lease was marked lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_of_a_watch_sees_the_loss() {
        let (signal, watch) = lease_watch();
        let copy = watch.clone();
        assert!(!copy.is_lost() && copy.check().is_ok());
        let waiter = tokio::spawn(async move { copy.lost().await });
        signal.lose();
        waiter.await.unwrap();
        assert!(watch.is_lost());
        assert_eq!(watch.check(), Err(LeaseLost));
    }
}
