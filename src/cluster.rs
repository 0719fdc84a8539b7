//! What the `serve` replicas sharing one PostgreSQL database coordinate through besides the
//! journal: shared rate budgets (one HubSpot budget for the portal, whichever replica calls)
//! and leadership leases (one D&B poller per registration).
//!
//! Both live in small tables (`migrations/postgres/0002_cluster.sql`) and every operation is
//! one atomic statement that reads the time from the database's clock (`clock_timestamp()`,
//! in microseconds), so the replicas' own clocks may disagree without harm.
//!
//! **Rate budgets** are GCRA (the algorithm of the in-process limiter, `governor`) kept in a
//! row: `tat_us` is the theoretical arrival time. A reservation moves it by one emission
//! interval `T = 1/rate` and tells the caller when its call may go: `max(tat, now) − τ`,
//! with the tolerance `τ = (burst − 1) × T`. A reservation never fails: a caller over the
//! budget gets a slot later and sleeps until it, so callers of every replica queue in one
//! fair line. One token per call costs one `UPDATE` of a hot row committed without waiting
//! for the WAL flush (about 0.15 ms on loopback) against a HubSpot call of about 100 ms at no
//! more than ten calls a second; in exchange no token is ever stranded in a replica that
//! died, and the portal-wide rate is exact whatever the number of replicas.
//!
//! **Leases** name a job one replica at a time may run (`pull:<registration>`). The holder
//! renews well before `lease_until_us`; another replica takes the row once it has passed (its
//! holder died or lost the database). `fence` grows by one each time the holder changes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgPool;
use tokio::time::Instant;

use crate::journal::JournalError;

/// The connections a replica keeps for coordination: a reservation holds one for a fraction
/// of a millisecond, so two serve thousands a second.
pub const MAX_CONNECTIONS: u32 = 2;
/// How long a reservation or a hold may take before the caller goes on without it.
const BUDGET_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a failed reservation a budget's callers pace themselves before asking again.
const LOCAL_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The database's clock in microseconds since the unix epoch, or `$n` when it is not null.
macro_rules! clock_or {
    ($n:literal) => {
        concat!(
            "coalesce(",
            $n,
            "::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)"
        )
    };
}

/// A coordination failure: the database could not be reached or answered an error.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Opening the pool or migrating failed.
    #[error("cluster database: {0}")]
    Open(#[from] JournalError),
    /// A statement failed.
    #[error("cluster database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A granted slot in a rate budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// The database time of the reservation (µs).
    pub now_us: i64,
    /// When the call may go (µs, database time); at or before `now_us` means at once.
    pub go_at_us: i64,
}

impl Reservation {
    /// How long the caller waits before its call.
    pub fn delay(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.go_at_us - self.now_us).unwrap_or(0))
    }
}

/// The coordination handle of one replica.
pub struct Cluster {
    pool: PgPool,
}

/// The emission interval of `per_second` in µs, rounded up (the budget never runs faster).
fn interval_us(per_second: u32) -> i64 {
    let per_second = i64::from(per_second.max(1));
    (1_000_000 + per_second - 1) / per_second
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX / 4)
}

impl Cluster {
    /// Connects to `url` (a `postgres://` URL) and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self, ClusterError> {
        let pool = crate::journal::postgres::pool(url, MAX_CONNECTIONS).await?;
        Ok(Self { pool })
    }

    /// Coordination through the journal's database when `storage.url` is PostgreSQL
    /// (replicas share it); `None` for SQLite (one process).
    pub async fn for_storage(url: &str) -> Result<Option<Arc<Self>>, ClusterError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Some(Arc::new(Self::connect(url).await?)))
        } else {
            Ok(None)
        }
    }

    /// Coordination over an open, migrated pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self { pool }
    }

    /// A fact about the HubSpot portal another replica learned at most `max_age` ago.
    pub async fn fact(
        &self,
        name: &str,
        max_age: Duration,
    ) -> Result<Option<String>, ClusterError> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM portal_facts
             WHERE name = $1
               AND learned_at_us >= (extract(epoch FROM clock_timestamp()) * 1000000)::bigint - $2",
        )
        .bind(name)
        .bind(micros(max_age))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records a fact about the HubSpot portal for the other replicas, as learned now.
    pub async fn remember(&self, name: &str, value: &str) -> Result<(), ClusterError> {
        sqlx::query(
            "INSERT INTO portal_facts (name, value, learned_at_us)
             VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
             ON CONFLICT (name) DO UPDATE
             SET value = excluded.value, learned_at_us = excluded.learned_at_us",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The database's clock (µs since the unix epoch).
    pub async fn now_us(&self) -> Result<i64, ClusterError> {
        let (now,): (i64,) = sqlx::query_as(concat!("SELECT ", clock_or!("$1")))
            .bind(None::<i64>)
            .fetch_one(&self.pool)
            .await?;
        Ok(now)
    }

    /// Reserves one call of `bucket`, a budget of `per_second` sustained with bursts of
    /// `burst`, and returns how long the caller must wait before making it (zero: go now).
    pub async fn reserve(
        &self,
        bucket: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<Duration, ClusterError> {
        Ok(self
            .reservation(bucket, per_second, burst, None)
            .await?
            .delay())
    }

    /// [`Cluster::reserve`] as if the database's clock read `now_us`.
    pub async fn reserve_at(
        &self,
        bucket: &str,
        per_second: u32,
        burst: u32,
        now_us: i64,
    ) -> Result<Reservation, ClusterError> {
        self.reservation(bucket, per_second, burst, Some(now_us))
            .await
    }

    async fn reservation(
        &self,
        bucket: &str,
        per_second: u32,
        burst: u32,
        now_us: Option<i64>,
    ) -> Result<Reservation, ClusterError> {
        let interval = interval_us(per_second);
        // After a hold the schedule restarts at its end: the first slots go as a burst then.
        // The commit does not wait for the WAL flush (`synchronous_commit` off for this
        // statement's transaction only): that is what makes a reservation cost a fraction of
        // a millisecond instead of a disk flush, and a database crash can lose at most the
        // last few hundred milliseconds of reservations (a few calls granted twice, once).
        let (tat, hold_until, now): (i64, i64, i64) = sqlx::query_as(concat!(
            "WITH durability AS (SELECT set_config('synchronous_commit', 'off', true) AS off), ",
            "clock AS (SELECT ",
            clock_or!("$3"),
            " AS now_us) ",
            "INSERT INTO rate_budgets AS b (name, tat_us) ",
            "SELECT $1, now_us + $2 FROM clock, durability ",
            "ON CONFLICT (name) DO UPDATE ",
            "SET tat_us = greatest(b.tat_us, b.hold_until_us, excluded.tat_us - $2) + $2 ",
            "RETURNING b.tat_us, b.hold_until_us, (SELECT now_us FROM clock)"
        ))
        .bind(bucket)
        .bind(interval)
        .bind(now_us)
        .fetch_one(&self.pool)
        .await?;
        let tolerance = interval * i64::from(burst.max(1));
        Ok(Reservation {
            now_us: now,
            go_at_us: (tat - tolerance).max(hold_until),
        })
    }

    /// Holds every caller of `bucket`, in every replica, for `duration` from now (a longer
    /// hold already set stays).
    pub async fn hold(&self, bucket: &str, duration: Duration) -> Result<(), ClusterError> {
        self.hold_from(bucket, duration, None).await
    }

    /// [`Cluster::hold`] as if the database's clock read `now_us`.
    pub async fn hold_at(
        &self,
        bucket: &str,
        duration: Duration,
        now_us: i64,
    ) -> Result<(), ClusterError> {
        self.hold_from(bucket, duration, Some(now_us)).await
    }

    async fn hold_from(
        &self,
        bucket: &str,
        duration: Duration,
        now_us: Option<i64>,
    ) -> Result<(), ClusterError> {
        sqlx::query(concat!(
            "WITH clock AS (SELECT ",
            clock_or!("$3"),
            " AS now_us) ",
            "INSERT INTO rate_budgets AS b (name, tat_us, hold_until_us) ",
            "SELECT $1, 0, now_us + $2 FROM clock ",
            "ON CONFLICT (name) DO UPDATE ",
            "SET hold_until_us = greatest(b.hold_until_us, excluded.hold_until_us)"
        ))
        .bind(bucket)
        .bind(micros(duration))
        .bind(now_us)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes the lease `name` for `holder` for `lease` when it is free, has expired or is
    /// already `holder`'s (a renewal), and returns its fence; `None` while another holder's
    /// lease runs.
    pub async fn try_lead(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<Option<i64>, ClusterError> {
        self.lead(name, holder, lease, None).await
    }

    /// [`Cluster::try_lead`] as if the database's clock read `now_us`.
    pub async fn try_lead_at(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        now_us: i64,
    ) -> Result<Option<i64>, ClusterError> {
        self.lead(name, holder, lease, Some(now_us)).await
    }

    async fn lead(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
        now_us: Option<i64>,
    ) -> Result<Option<i64>, ClusterError> {
        let fence: Option<(i64,)> = sqlx::query_as(concat!(
            "WITH clock AS (SELECT ",
            clock_or!("$4"),
            " AS now_us) ",
            "INSERT INTO leases AS l (name, holder, fence, lease_until_us) ",
            "SELECT $1, $2, 1, now_us + $3 FROM clock ",
            "ON CONFLICT (name) DO UPDATE ",
            "SET holder = excluded.holder, ",
            "    fence = CASE WHEN l.holder = excluded.holder THEN l.fence ELSE l.fence + 1 END, ",
            "    lease_until_us = excluded.lease_until_us ",
            "WHERE l.holder = excluded.holder OR l.lease_until_us <= (SELECT now_us FROM clock) ",
            "RETURNING l.fence"
        ))
        .bind(name)
        .bind(holder)
        .bind(micros(lease))
        .bind(now_us)
        .fetch_optional(&self.pool)
        .await?;
        Ok(fence.map(|(fence,)| fence))
    }

    /// Gives the lease `name` up when `holder` holds it, so another replica may take it at
    /// once; returns whether it did.
    pub async fn release(&self, name: &str, holder: &str) -> Result<bool, ClusterError> {
        let done = sqlx::query(concat!(
            "UPDATE leases SET lease_until_us = ",
            clock_or!("NULL"),
            " WHERE name = $1 AND holder = $2"
        ))
        .bind(name)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The holder of the lease `name` and its fence, while the lease runs.
    pub async fn leader(&self, name: &str) -> Result<Option<(String, i64)>, ClusterError> {
        Ok(sqlx::query_as(concat!(
            "SELECT holder, fence FROM leases WHERE name = $1 AND lease_until_us > ",
            clock_or!("NULL")
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?)
    }
}

/// One shared budget as a process's callers use it: each call waits for its slot from the
/// database; when the database cannot be asked (an error, or no answer within 2 s) the call
/// is the caller's to pace with its own limiter, and so are the calls of the next 5 s (each
/// would otherwise wait for the timeout), with one warning per outage.
pub struct SharedBudget {
    cluster: Arc<Cluster>,
    bucket: &'static str,
    per_second: u32,
    burst: u32,
    failing: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
}

impl SharedBudget {
    /// The budget `bucket` of `per_second` with bursts of `burst`, shared through `cluster`.
    pub fn new(cluster: Arc<Cluster>, bucket: &'static str, per_second: u32, burst: u32) -> Self {
        Self {
            cluster,
            bucket,
            per_second,
            burst,
            failing: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        }
    }

    /// Waits until this call's slot; `false` (at once) when the database could not be asked
    /// and the caller must pace the call itself.
    pub async fn wait(&self) -> bool {
        let retry_at = *self.retry_at.lock().expect("shared budget");
        if retry_at.is_some_and(|at| at > Instant::now()) {
            return false;
        }
        let reserved = tokio::time::timeout(
            BUDGET_TIMEOUT,
            self.cluster
                .reserve(self.bucket, self.per_second, self.burst),
        )
        .await;
        let error = match reserved {
            Ok(Ok(delay)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(bucket = self.bucket, "the shared rate budget answers again");
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                return true;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer in time".to_string(),
        };
        *self.retry_at.lock().expect("shared budget") = Some(Instant::now() + LOCAL_AFTER_FAILURE);
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                bucket = self.bucket,
                error,
                "cannot reserve from the shared rate budget; this replica paces its own calls until the database answers"
            );
        }
        false
    }

    /// Holds the budget's callers in every replica for `duration` (a failure is logged; the
    /// caller holds its own callers anyway).
    pub async fn hold(&self, duration: Duration) {
        let held =
            tokio::time::timeout(BUDGET_TIMEOUT, self.cluster.hold(self.bucket, duration)).await;
        let error = match held {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer in time".to_string(),
        };
        tracing::warn!(
            bucket = self.bucket,
            error,
            "cannot hold the other replicas' calls; this one holds"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emission_intervals_round_up() {
        assert_eq!(interval_us(10), 100_000);
        assert_eq!(interval_us(8), 125_000);
        assert_eq!(interval_us(3), 333_334);
        assert_eq!(interval_us(0), 1_000_000);
    }

    #[test]
    fn a_slot_in_the_past_is_no_wait() {
        let past = Reservation {
            now_us: 10,
            go_at_us: 5,
        };
        assert_eq!(past.delay(), Duration::ZERO);
        let later = Reservation {
            now_us: 10,
            go_at_us: 100_010,
        };
        assert_eq!(later.delay(), Duration::from_millis(100));
    }
}
