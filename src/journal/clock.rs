//! The time leases, retries and outcomes are measured in.
//!
//! The journal and the workers read the time through a [`Clock`], so tests can
//! run a lease out or bring a retry due by moving a [`ManualClock`] forward
//! instead of sleeping. The service uses [`SystemClock`]. Receipt times come
//! from the HTTP layer's own reading of the system time.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

/// A source of unix-millisecond time that can also be waited on.
#[async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The time now, in unix milliseconds.
    fn now_ms(&self) -> i64;

    /// Returns once [`Clock::now_ms`] has reached `deadline_ms`.
    async fn sleep_until(&self, deadline_ms: i64);
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        super::now_ms()
    }

    async fn sleep_until(&self, deadline_ms: i64) {
        let left = deadline_ms.saturating_sub(self.now_ms()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(left)).await;
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that stands still until it is moved forward; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<i64>,
}

impl ManualClock {
    /// A clock standing at the system time of its creation.
    pub fn new() -> Self {
        Self::at(super::now_ms())
    }

    /// A clock standing at `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        Self {
            now: watch::Sender::new(now_ms),
        }
    }

    /// Moves the clock forward by `by`, waking whoever waits for a time it reaches.
    pub fn advance(&self, by: Duration) {
        self.now
            .send_modify(|now| *now += i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    async fn sleep_until(&self, deadline_ms: i64) {
        let mut now = self.now.subscribe();
        // The sender lives as long as `self`, so the wait ends only when the time comes.
        let _ = now.wait_for(|now| *now >= deadline_ms).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_moved_past_their_deadline() {
        let clock = Arc::new(ManualClock::at(1_000));
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_until(1_500).await }
        });
        clock.advance(Duration::from_millis(400));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_millis(100));
        sleeper.await.unwrap();
        assert_eq!(clock.now_ms(), 1_500);
    }
}
