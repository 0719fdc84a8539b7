//! Client-side rate limiting shared by every worker, so HubSpot never has to say 429.
//!
//! Two GCRA limiters: one for ordinary calls and one for search, which HubSpot limits
//! separately per portal. HubSpot's own window is rolling, so the configured rates leave
//! headroom (see `config.yaml`). On top, when an answer's `X-HubSpot-RateLimit-Remaining`
//! falls to the floor, or a 429 arrives anyway, every caller holds until the window has passed.
//!
//! HubSpot counts per app and portal, so `hubspot.rate_limit` is the portal's budget. One
//! process keeps it in memory (governor). Replicas sharing a PostgreSQL database
//! ([`RateLimits::shared`]) reserve every call from budgets in the database instead
//! ([`Cluster::reserve`]), and a hold one replica sees holds them all. When a reservation
//! fails (the database is unreachable), that call falls back to this process's own limiter,
//! with a warning.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::cluster::{Cluster, SharedBudget};
use crate::config::RateLimitSettings;

/// The shared budget of ordinary calls.
pub const STANDARD_BUCKET: &str = "hubspot";
/// The shared budget of search calls.
pub const SEARCH_BUCKET: &str = "hubspot-search";

/// Which limiter a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Every call but search.
    Standard,
    /// `…/search` endpoints.
    Search,
}

/// The budgets in the database, for replicas sharing one.
struct SharedBudgets {
    standard: SharedBudget,
    search: SharedBudget,
}

/// The limiters all workers share.
pub struct RateLimits {
    standard: DefaultDirectRateLimiter,
    search: DefaultDirectRateLimiter,
    floor: u32,
    hold_until: Mutex<Option<Instant>>,
    shared: Option<SharedBudgets>,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).expect("at least 1");
    let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimits {
    /// Limiters from `hubspot.rate_limit`, in this process's memory.
    pub fn new(settings: &RateLimitSettings) -> Self {
        Self {
            standard: RateLimiter::direct(quota(settings.requests_per_second, settings.burst)),
            search: RateLimiter::direct(quota(settings.search_per_second, settings.search_burst)),
            floor: settings.remaining_floor,
            hold_until: Mutex::new(None),
            shared: None,
        }
    }

    /// Limiters from `hubspot.rate_limit` as the budget of every replica sharing `cluster`'s
    /// database: each call reserves its slot there.
    pub fn shared(settings: &RateLimitSettings, cluster: Arc<Cluster>) -> Self {
        Self {
            shared: Some(SharedBudgets {
                standard: SharedBudget::new(
                    cluster.clone(),
                    STANDARD_BUCKET,
                    settings.requests_per_second,
                    settings.burst,
                ),
                search: SharedBudget::new(
                    cluster,
                    SEARCH_BUCKET,
                    settings.search_per_second,
                    settings.search_burst,
                ),
            }),
            ..Self::new(settings)
        }
    }

    /// Waits until a call of `kind` may go.
    pub async fn acquire(&self, kind: CallKind) {
        let hold = *self.hold_until.lock().expect("rate limit hold");
        if let Some(until) = hold.filter(|until| *until > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        if let Some(shared) = &self.shared {
            let budget = match kind {
                CallKind::Standard => &shared.standard,
                CallKind::Search => &shared.search,
            };
            if budget.wait().await {
                return;
            }
        }
        match kind {
            CallKind::Standard => self.standard.until_ready().await,
            CallKind::Search => self.search.until_ready().await,
        }
    }

    /// Makes every caller wait `duration` before its next call (with shared budgets, the
    /// callers of every replica).
    pub async fn hold(&self, duration: Duration) {
        let until = Instant::now() + duration;
        {
            let mut hold = self.hold_until.lock().expect("rate limit hold");
            if hold.is_none_or(|current| current < until) {
                *hold = Some(until);
            }
        }
        if let Some(shared) = &self.shared {
            shared.standard.hold(duration).await;
            shared.search.hold(duration).await;
        }
    }

    /// Reads HubSpot's rate-limit headers and holds when the window is nearly spent.
    pub async fn observe(&self, headers: &HeaderMap) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse::<u64>().ok())
        };
        let Some(remaining) = number("x-hubspot-ratelimit-remaining") else {
            return;
        };
        if remaining <= u64::from(self.floor) {
            let window = number("x-hubspot-ratelimit-interval-milliseconds").unwrap_or(10_000);
            tracing::debug!(
                remaining,
                window_ms = window,
                "HubSpot rate window nearly spent; holding"
            );
            self.hold(Duration::from_millis(window)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn limits() -> RateLimits {
        RateLimits::new(&RateLimitSettings {
            requests_per_second: 1000,
            burst: 1000,
            search_per_second: 1000,
            search_burst: 1000,
            remaining_floor: 5,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_nearly_spent_window_holds_every_caller_until_it_passes() {
        let limits = limits();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from_static("3"),
        );
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from_static("10000"),
        );
        limits.observe(&headers).await;
        let started = Instant::now();
        limits.acquire(CallKind::Standard).await;
        assert!(started.elapsed() >= Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn plenty_remaining_does_not_hold() {
        let limits = limits();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from_static("80"),
        );
        limits.observe(&headers).await;
        let started = Instant::now();
        limits.acquire(CallKind::Search).await;
        assert!(started.elapsed() < Duration::from_millis(1));
    }

    #[test]
    fn the_default_quota_stays_under_ninety_percent_of_the_rolling_window() {
        let settings = RateLimitSettings::default();
        assert!(settings.burst + settings.requests_per_second * 10 <= 90);
        assert!(settings.search_burst + settings.search_per_second <= 5);
    }
}
