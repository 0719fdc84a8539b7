//! PostgreSQL backend: one journal shared by several `serve` processes.
//!
//! Every operation is a short transaction on a pooled connection; none is held open across a
//! HubSpot call. What the SQLite backend gets from being the only writer, this one gets from
//! the database: unique constraints deduplicate deliveries and content across processes, a
//! claim's hold on a DUNS is a row in `duns_claims` (one per DUNS, by its primary key), claim
//! ids come from a sequence and fence every outcome write, and `NOTIFY` wakes the workers of
//! every process when work arrives (see `claims.rs` for how claims pass each other).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::written::{StoredResult, redelivered};
use super::{
    ActionRecord, AppendOutcome, ClaimId, Claimed, CompanyEvent, Completion, Delivery, Detail,
    DnbException, Filter, ImportedFile, ItemFate, Journal, JournalError, JournalOptions,
    JournalStats, Move, NotificationId, PullCheckpoint, RegistrationState, RejectedIndex,
    ReplayOutcome, StoredAction, Summary,
};
use crate::config::StorageSettings;
use crate::dnb::IncomingItem;

mod claims;
mod reads;

/// The schema, versioned by sqlx's migrator (its `_sqlx_migrations` table).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long taking a connection from the pool may wait.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// The channel a commit that adds claimable work notifies.
pub const WORK_CHANNEL: &str = "bridge_work";
/// How often the pending count is read again (it is also raised by this process's appends).
const COUNT_REFRESH: Duration = Duration::from_millis(250);
/// How often status-count changes are folded into the totals.
const COUNT_FOLD_EVERY: u32 = 8;

/// Opens a pool of at most `max_connections` on `url` and brings the schema up to date.
/// Several processes starting at once migrate one at a time (the migrator takes an advisory
/// lock).
pub async fn pool(url: &str, max_connections: u32) -> Result<PgPool, JournalError> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// The PostgreSQL journal.
pub struct PostgresJournal {
    pool: PgPool,
    options: JournalOptions,
    pending: Arc<AtomicU64>,
    /// Raised by each append that added work; [`announce_work`] turns it into `NOTIFY`s.
    appended: Arc<Notify>,
    stop: CancellationToken,
}

impl PostgresJournal {
    /// Connects, migrates, and starts the task that keeps the pending count. Claims other
    /// processes hold are never taken back at open (`take_back_claims` is for the single
    /// process of SQLite): they return when their leases run out.
    pub async fn open(
        url: &str,
        settings: &StorageSettings,
        options: JournalOptions,
    ) -> Result<Self, JournalError> {
        let pool = pool(url, settings.max_connections).await?;
        let pending = Arc::new(AtomicU64::new(reads::pending_count(&pool).await?));
        let stop = CancellationToken::new();
        tokio::spawn(keep_counts(pool.clone(), pending.clone(), stop.clone()));
        let appended = Arc::new(Notify::new());
        tokio::spawn(announce_work(pool.clone(), appended.clone(), stop.clone()));
        Ok(Self {
            pool,
            options,
            pending,
            appended,
            stop,
        })
    }

    fn now(&self) -> i64 {
        self.options.clock.now_ms()
    }

    /// Lowers the pending count by what this process just claimed, until the next refresh:
    /// a worker gathering next must not see the batch just taken as still pending.
    fn claimed(&self, count: usize) {
        let _ = (self.pending).fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pending| {
            Some(pending.saturating_sub(count as u64))
        });
    }
}

/// Folds status-count changes into the totals now and then and keeps the pending count fresh.
async fn keep_counts(pool: PgPool, pending: Arc<AtomicU64>, stop: CancellationToken) {
    let mut ticks = 0u32;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(COUNT_REFRESH) => {}
            _ = stop.cancelled() => return,
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(COUNT_FOLD_EVERY)
            && let Err(error) = reads::fold_counts(&pool).await
        {
            tracing::warn!(error = %error, "could not fold the journal's status counts");
        }
        match reads::pending_count(&pool).await {
            Ok(count) => pending.store(count, Ordering::Relaxed),
            Err(error) => tracing::debug!(error = %error, "could not read the pending count"),
        }
    }
}

/// Announces the work appends committed: one `NOTIFY` on its own for every append, or run of
/// appends, since the last one went out. Appends do not notify inside their transactions: a
/// transaction that notifies holds the server's notification lock from before its commit
/// until the commit is flushed to the WAL, so concurrent appends that notify commit one at a
/// time instead of sharing WAL flushes. A `NOTIFY` alone writes nothing but its commit
/// record and does not wait for it to be flushed.
/// An announcement lost to an error or to shutdown only delays the workers until they poll.
async fn announce_work(pool: PgPool, appended: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = appended.notified() => {}
            () = stop.cancelled() => return,
        }
        if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(WORK_CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::debug!(error = %error, "could not announce appended work");
        }
    }
}

/// Whether an error is one a retry of the whole transaction cures (a deadlock or a
/// serialization failure between processes).
pub(crate) fn transient(error: &JournalError) -> bool {
    match error {
        JournalError::Postgres(sqlx::Error::Database(database)) => {
            matches!(database.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Runs `$attempt` (an `async { .. }.await` of a whole transaction) again, up to three
/// times in all, when it failed for a transient reason.
macro_rules! retrying {
    ($attempt:expr) => {{
        let mut tries = 0;
        loop {
            tries += 1;
            match $attempt {
                Err(error) if tries < 3 && $crate::journal::postgres::transient(&error) => {
                    tracing::debug!(error = %error, "journal transaction retried");
                }
                result => break result,
            }
        }
    }};
}
use retrying;

async fn notify_work(transaction: &mut Transaction<'_, Postgres>) -> Result<(), JournalError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

/// Journals one delivery in `transaction`; `None` when its webhook-id was already recorded
/// (by this or another process), which the caller answers from the stored result.
async fn append_in(
    transaction: &mut Transaction<'_, Postgres>,
    delivery: &Delivery,
) -> Result<Option<AppendOutcome>, JournalError> {
    let received_at = delivery.received_at.timestamp_millis();
    // The delivery row first: a second process holding the same webhook-id waits here for
    // this commit, then finds the row and answers from it.
    let fresh = sqlx::query(
        "INSERT INTO deliveries (webhook_id, received_at, result) VALUES ($1, $2, '')
         ON CONFLICT (webhook_id) DO NOTHING",
    )
    .bind(&delivery.webhook_id)
    .bind(received_at)
    .execute(&mut **transaction)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok(None);
    }

    let mut outcome = AppendOutcome {
        items: vec![ItemFate::Rejected; delivery.items.len()],
        rejected: Vec::new(),
        redelivery: false,
    };
    let mut valid = Vec::new();
    let (mut kinds, mut dunses, mut delivered, mut indexes, mut hashes, mut raws) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut r_reasons, mut r_details, mut r_kinds, mut r_dunses, mut r_indexes, mut r_raws) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (index, item) in delivery.items.iter().enumerate() {
        match item {
            IncomingItem::Valid(item) => {
                valid.push((index, item));
                kinds.push(item.notification_type.as_str());
                dunses.push(item.duns.as_str());
                delivered.push(item.delivered_at_ms);
                indexes.push(index as i32);
                hashes.push(item.content_hash.to_vec());
                raws.push(item.canonical.as_str());
            }
            IncomingItem::Rejected(item) => {
                outcome.rejected.push(RejectedIndex {
                    index,
                    reason: item.rejection.reason.as_str().to_string(),
                    detail: item.rejection.detail.clone(),
                });
                r_reasons.push(item.rejection.reason.as_str());
                r_details.push(item.rejection.detail.as_str());
                r_kinds.push(item.notification_type.map(|kind| kind.as_str()));
                r_dunses.push(item.duns.as_ref().map(|duns| duns.as_str()));
                r_indexes.push(index as i32);
                r_raws.push(item.raw.as_str());
            }
        }
    }

    if !valid.is_empty() {
        // Content already journaled (by anyone, committed) is skipped; an insert racing a
        // concurrent one of the same content waits for it and then skips.
        let inserted: Vec<(NotificationId, Vec<u8>)> = sqlx::query_as(
            "INSERT INTO notifications (status, type, duns, delivered_at, received_at, webhook_id,
                                        item_index, content_hash, raw, updated_at)
             SELECT 'pending', item.type, item.duns, item.delivered_at, $1, $2, item.item_index,
                    item.content_hash, item.raw, $1
             FROM UNNEST($3::text[], $4::text[], $5::bigint[], $6::int[], $7::bytea[], $8::text[])
                  AS item (type, duns, delivered_at, item_index, content_hash, raw)
             ON CONFLICT DO NOTHING
             RETURNING id, content_hash",
        )
        .bind(received_at)
        .bind(&delivery.webhook_id)
        .bind(&kinds)
        .bind(&dunses)
        .bind(&delivered)
        .bind(&indexes)
        .bind(&hashes)
        .bind(&raws)
        .fetch_all(&mut **transaction)
        .await?;
        let mut new: std::collections::HashMap<Vec<u8>, NotificationId> =
            inserted.into_iter().map(|(id, hash)| (hash, id)).collect();
        let missing: Vec<usize> = valid
            .iter()
            .enumerate()
            .filter(|(_, (_, item))| !new.contains_key(item.content_hash.as_slice()))
            .map(|(position, _)| position)
            .collect();
        let mut existing = std::collections::HashMap::new();
        if !missing.is_empty() {
            let rows: Vec<(NotificationId, Vec<u8>)> = sqlx::query_as(
                "SELECT n.id, n.content_hash FROM notifications AS n
                 JOIN UNNEST($1::bigint[], $2::text[], $3::bytea[]) AS item (delivered_at, duns, content_hash)
                   ON n.delivered_at = item.delivered_at AND n.duns = item.duns
                  AND n.content_hash = item.content_hash",
            )
            .bind(missing.iter().map(|&p| delivered[p]).collect::<Vec<_>>())
            .bind(missing.iter().map(|&p| dunses[p]).collect::<Vec<_>>())
            .bind(missing.iter().map(|&p| hashes[p].clone()).collect::<Vec<_>>())
            .fetch_all(&mut **transaction)
            .await?;
            existing.extend(rows.into_iter().map(|(id, hash)| (hash, id)));
        }
        for (index, item) in &valid {
            let hash = item.content_hash.as_slice();
            outcome.items[*index] = match new.remove(hash) {
                // The first item with this content in the body is the accepted one.
                Some(id) => {
                    existing.insert(hash.to_vec(), id);
                    ItemFate::Accepted(id)
                }
                None => match existing.get(hash) {
                    Some(id) => ItemFate::Duplicate(*id),
                    None => {
                        return Err(JournalError::Postgres(sqlx::Error::RowNotFound));
                    }
                },
            };
        }
    }

    if !r_raws.is_empty() {
        sqlx::query(
            "INSERT INTO notifications (status, reason, last_error, type, duns, received_at,
                                        webhook_id, item_index, raw, updated_at)
             SELECT 'rejected', item.reason, item.detail, item.type, item.duns, $1, $2,
                    item.item_index, item.raw, $1
             FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[])
                  AS item (reason, detail, type, duns, item_index, raw)",
        )
        .bind(received_at)
        .bind(&delivery.webhook_id)
        .bind(&r_reasons)
        .bind(&r_details)
        .bind(&r_kinds)
        .bind(&r_dunses)
        .bind(&r_indexes)
        .bind(&r_raws)
        .execute(&mut **transaction)
        .await?;
    }

    let stored = serde_json::to_string(&StoredResult {
        ids: outcome.items.iter().map(|fate| fate.id()).collect(),
        rejected: outcome.rejected.clone(),
    })
    .expect("plain data serialises");
    sqlx::query("UPDATE deliveries SET result = $2 WHERE webhook_id = $1")
        .bind(&delivery.webhook_id)
        .bind(stored)
        .execute(&mut **transaction)
        .await?;
    Ok(Some(outcome))
}

/// Applies a change to a registration's pull state, as the SQLite journal does.
async fn update_registration_in(
    transaction: &mut Transaction<'_, Postgres>,
    change: &PullCheckpoint,
    now: i64,
) -> Result<(), JournalError> {
    sqlx::query(
        "INSERT INTO registrations
             (reference, last_delivered_at, last_success_at, last_transaction_id, in_flight, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (reference) DO UPDATE SET
             last_delivered_at = CASE
                 WHEN excluded.last_delivered_at IS NULL THEN registrations.last_delivered_at
                 WHEN registrations.last_delivered_at IS NULL THEN excluded.last_delivered_at
                 ELSE greatest(registrations.last_delivered_at, excluded.last_delivered_at) END,
             last_success_at = coalesce(excluded.last_success_at, registrations.last_success_at),
             last_transaction_id = coalesce(excluded.last_transaction_id, registrations.last_transaction_id),
             in_flight = excluded.in_flight,
             updated_at = excluded.updated_at",
    )
    .bind(&change.registration)
    .bind(change.delivered_at_ms)
    .bind(change.succeeded_at_ms)
    .bind(&change.transaction_id)
    .bind(change.in_flight)
    .bind(now)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

#[async_trait]
impl Journal for PostgresJournal {
    async fn append(&self, delivery: Delivery) -> Result<AppendOutcome, JournalError> {
        let outcome = retrying!(
            async {
                let mut transaction = self.pool.begin().await?;
                let outcome = append_in(&mut transaction, &delivery).await?;
                if let Some(change) = &delivery.checkpoint {
                    update_registration_in(
                        &mut transaction,
                        change,
                        delivery.received_at.timestamp_millis(),
                    )
                    .await?;
                }
                transaction.commit().await?;
                Ok(outcome)
            }
            .await
        )?;
        match outcome {
            Some(outcome) => {
                if outcome.accepted() > 0 {
                    self.pending
                        .fetch_add(outcome.accepted() as u64, Ordering::Relaxed);
                    self.appended.notify_one();
                }
                Ok(outcome)
            }
            None => {
                let (stored,): (String,) =
                    sqlx::query_as("SELECT result FROM deliveries WHERE webhook_id = $1")
                        .bind(&delivery.webhook_id)
                        .fetch_one(&self.pool)
                        .await?;
                let stored: StoredResult = serde_json::from_str(&stored).unwrap_or(StoredResult {
                    ids: Vec::new(),
                    rejected: Vec::new(),
                });
                Ok(redelivered(stored.ids, stored.rejected))
            }
        }
    }

    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, JournalError> {
        let claimed = claims::claim(&self.pool, worker, limit, lease, self.now(), None).await?;
        self.claimed(claimed.len());
        Ok(claimed)
    }

    async fn claim_gathered(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
        gathered_by: i64,
    ) -> Result<Vec<Claimed>, JournalError> {
        let now = self.now();
        let claimed =
            claims::claim(&self.pool, worker, limit, lease, now, Some(gathered_by)).await?;
        self.claimed(claimed.len());
        Ok(claimed)
    }

    async fn renew(&self, claim: ClaimId, lease: Duration) -> Result<bool, JournalError> {
        claims::renew(&self.pool, claim, lease, self.now()).await
    }

    async fn complete(
        &self,
        worker: &str,
        claim: ClaimId,
        completions: Vec<Completion>,
    ) -> Result<(), JournalError> {
        claims::complete(&self.pool, worker, claim, &completions, self.now()).await
    }

    async fn record_actions(
        &self,
        claim: ClaimId,
        actions: Vec<(NotificationId, ActionRecord)>,
    ) -> Result<(), JournalError> {
        claims::record_actions(&self.pool, claim, &actions, self.now()).await
    }

    async fn checkpoints(&self, ids: &[NotificationId]) -> Result<Vec<StoredAction>, JournalError> {
        reads::checkpoints(&self.pool, ids).await
    }

    async fn list(
        &self,
        filter: &Filter,
        limit: usize,
        before: Option<NotificationId>,
    ) -> Result<Vec<Summary>, JournalError> {
        reads::list(&self.pool, filter, limit, before).await
    }

    async fn detail(&self, id: NotificationId) -> Result<Option<Detail>, JournalError> {
        reads::detail(&self.pool, id).await
    }

    async fn replay(
        &self,
        ids: Vec<NotificationId>,
        dry_run: bool,
    ) -> Result<ReplayOutcome, JournalError> {
        claims::replay(&self.pool, &ids, dry_run, self.now()).await
    }

    async fn existing(&self, ids: &[NotificationId]) -> Result<Vec<NotificationId>, JournalError> {
        let rows: Vec<(NotificationId,)> =
            sqlx::query_as("SELECT id FROM notifications WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn purge(&self, before_ms: i64, limit: usize) -> Result<usize, JournalError> {
        claims::purge(&self.pool, before_ms, limit).await
    }

    async fn created_companies(
        &self,
        dunses: &[String],
    ) -> Result<Vec<(String, String)>, JournalError> {
        reads::created_companies(&self.pool, dunses).await
    }

    async fn company_history(
        &self,
        company_ids: &[String],
        except: &[NotificationId],
    ) -> Result<Vec<CompanyEvent>, JournalError> {
        reads::company_history(&self.pool, company_ids, except).await
    }

    async fn moved_companies(&self, dunses: &[String]) -> Result<Vec<Move>, JournalError> {
        reads::moved_companies(&self.pool, dunses).await
    }

    async fn stats(&self) -> Result<JournalStats, JournalError> {
        reads::stats(&self.pool).await
    }

    async fn check_writable(&self) -> Result<(), JournalError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('last_write_probe', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(self.now().to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn pending_count(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    async fn oldest_claimable_received_ms(&self, now_ms: i64) -> Result<Option<i64>, JournalError> {
        claims::oldest_claimable_received_ms(&self.pool, now_ms).await
    }

    async fn close(&self) {
        self.stop.cancel();
        self.pool.close().await;
    }

    async fn update_registration(&self, change: PullCheckpoint) -> Result<(), JournalError> {
        let mut transaction = self.pool.begin().await?;
        update_registration_in(&mut transaction, &change, self.now()).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn registrations(&self) -> Result<Vec<RegistrationState>, JournalError> {
        reads::registrations(&self.pool).await
    }

    async fn imported_file(
        &self,
        name: &str,
        sha256: &str,
    ) -> Result<Option<ImportedFile>, JournalError> {
        reads::imported_file(&self.pool, name, sha256).await
    }

    async fn record_imported_file(
        &self,
        file: ImportedFile,
        exceptions: Vec<DnbException>,
    ) -> Result<(), JournalError> {
        claims::record_file(&self.pool, &file, &exceptions, self.now()).await
    }

    async fn exceptions(
        &self,
        duns: Option<String>,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<DnbException>, JournalError> {
        reads::exceptions(&self.pool, duns, limit, before).await
    }

    fn on_work(&self, ring: Arc<dyn Fn() + Send + Sync>) {
        tokio::spawn(listen(self.pool.clone(), ring, self.stop.clone()));
    }
}

/// Rings `ring` whenever any process commits claimable work, until the journal closes.
/// A lost connection is reopened; workers poll meanwhile.
async fn listen(pool: PgPool, ring: Arc<dyn Fn() + Send + Sync>, stop: CancellationToken) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for work; polling only");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        if let Err(error) = listener.listen(WORK_CHANNEL).await {
            tracing::warn!(error = %error, "cannot listen for work; polling only");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                _ = stop.cancelled() => return,
            }
        }
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(_)) => ring(),
                    // The connection was lost and is reopened by the listener; work committed
                    // meanwhile may have gone unannounced.
                    Ok(None) => ring(),
                    Err(error) => {
                        tracing::warn!(error = %error, "listening for work failed; reconnecting");
                        break;
                    }
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}
