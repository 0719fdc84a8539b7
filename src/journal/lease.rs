//! Whether a claimed batch's lease still holds, as seen by the code working on it.
//!
//! The worker that claimed a batch renews its lease while the batch works and
//! reports a lost one through a [`LeaseSignal`]; the executor holds the
//! matching [`LeaseWatch`] and stops before its next HubSpot write once the
//! lease is lost, since another worker may by then own the notifications.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Clock, clock};

/// What the renewing side last said: lost for good, or held until a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Known to hold until then (unix milliseconds on the watch's clock), and not after it
    /// unless a renewal moves it.
    HeldUntil(i64),
    /// Lost: another claim may own the notifications.
    Lost,
}

/// The executor's side: cheap to clone, and never blocks.
///
/// A lease is lost once the renewing side says so, and also once the time it was last known
/// to hold until has passed: a process that was paused (or starved) past its lease must not
/// write on the strength of a renewal that has not had the chance to run and fail.
#[derive(Clone)]
pub struct LeaseWatch {
    state: watch::Receiver<State>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LeaseWatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LeaseWatch")
            .field("state", &*self.state.borrow())
            .finish()
    }
}

/// The lease was lost: another claim may own the notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lease on the batch was lost")]
pub struct LeaseLost;

/// The renewing side: says how long the lease holds, or that it was lost.
#[derive(Debug)]
pub struct LeaseSignal {
    state: watch::Sender<State>,
}

/// A new lease's two sides: held until `held_until_ms` on `clock`.
pub fn lease_watch(clock: Arc<dyn Clock>, held_until_ms: i64) -> (LeaseSignal, LeaseWatch) {
    let (sender, receiver) = watch::channel(State::HeldUntil(held_until_ms));
    (
        LeaseSignal { state: sender },
        LeaseWatch {
            state: receiver,
            clock,
        },
    )
}

impl LeaseWatch {
    /// A watch whose lease is never lost, for work outside the worker pool (and tests).
    pub fn held() -> Self {
        lease_watch(clock::system(), i64::MAX).1
    }

    /// Whether the lease was lost, or has run out by the watch's clock.
    pub fn is_lost(&self) -> bool {
        match *self.state.borrow() {
            State::Lost => true,
            State::HeldUntil(until) => self.clock.now_ms() >= until,
        }
    }

    /// `Err(LeaseLost)` once the lease was lost; for `?` before each write.
    pub fn check(&self) -> Result<(), LeaseLost> {
        if self.is_lost() {
            Err(LeaseLost)
        } else {
            Ok(())
        }
    }

    /// Returns once the lease is lost or has run out; never, while it holds.
    pub async fn lost(&self) {
        let mut state = self.state.clone();
        loop {
            let current = *state.borrow_and_update();
            let until = match current {
                State::Lost => return,
                State::HeldUntil(until) if self.clock.now_ms() >= until => return,
                State::HeldUntil(until) => until,
            };
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        // The signal is gone: the batch ended; the last word stands.
                        self.clock.sleep_until(until).await;
                        return;
                    }
                }
                _ = self.clock.sleep_until(until) => {}
            }
        }
    }
}

impl LeaseSignal {
    /// The lease holds until `until_ms` now (a renewal succeeded).
    pub fn extend(&self, until_ms: i64) {
        self.state.send_if_modified(|state| match state {
            State::HeldUntil(held) if *held < until_ms => {
                *held = until_ms;
                true
            }
            _ => false,
        });
    }

    /// Marks the lease lost, for good.
    pub fn lose(&self) {
        self.state.send_replace(State::Lost);
    }

    /// Whether the lease was marked lost.
    pub fn is_lost(&self) -> bool {
        *self.state.borrow() == State::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_of_a_watch_sees_the_loss() {
        let (signal, watch) = lease_watch(clock::system(), i64::MAX);
        let copy = watch.clone();
        assert!(!copy.is_lost() && copy.check().is_ok());
        let waiter = tokio::spawn(async move { copy.lost().await });
        signal.lose();
        waiter.await.unwrap();
        assert!(watch.is_lost());
        assert_eq!(watch.check(), Err(LeaseLost));
    }

    #[tokio::test]
    async fn a_lease_not_renewed_by_its_end_is_lost_without_being_told() {
        let clock = Arc::new(crate::journal::ManualClock::new());
        let start = clock.now_ms();
        let (signal, watch) = lease_watch(clock.clone(), start + 5_000);
        clock.advance(std::time::Duration::from_millis(4_999));
        assert!(watch.check().is_ok());
        signal.extend(start + 8_000);
        clock.advance(std::time::Duration::from_millis(2_000));
        assert!(watch.check().is_ok(), "the renewal moved the end");
        let waiter = tokio::spawn({
            let watch = watch.clone();
            async move { watch.lost().await }
        });
        clock.advance(std::time::Duration::from_millis(1_001));
        assert_eq!(
            watch.check(),
            Err(LeaseLost),
            "past its end, though no one said so"
        );
        waiter.await.unwrap();
        assert!(
            !signal.is_lost(),
            "the renewing side has not said so either"
        );
    }
}
