//! The writer thread: every write of the SQLite journal, group-committed.
//!
//! The thread takes one command, drains whatever else is queued, runs them
//! all in one `BEGIN IMMEDIATE` transaction and answers each caller only after
//! COMMIT returned. Appends of the whole group share multi-row INSERTs;
//! claims and completions each run in a savepoint so one failing statement
//! cannot undo another caller's work.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::dnb::{IncomingItem, RejectedItem, ValidItem};
use crate::journal::{
    AppendOutcome, Claimed, Completion, Delivery, ItemFate, JournalError, NotificationId, Outcome,
    RejectedIndex, now_ms,
};

/// Most commands committed in one transaction.
const MAX_GROUP: usize = 512;
/// Row counts of the prepared multi-row INSERTs; a batch is cut into these.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;
/// Answers one caller once the group's commit result is known.
type Answer = Box<dyn FnOnce(Result<(), &JournalError>)>;

/// A request to the writer thread.
pub(super) enum Command {
    Append {
        delivery: Delivery,
        reply: Reply<AppendOutcome>,
    },
    Claim {
        worker: String,
        limit: usize,
        lease_ms: i64,
        reply: Reply<Vec<Claimed>>,
    },
    Complete {
        worker: String,
        completions: Vec<Completion>,
        reply: Reply<()>,
    },
    Probe {
        reply: Reply<()>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// What `deliveries.result` holds, so a redelivery is answered as the first delivery was.
#[derive(Serialize, Deserialize)]
struct StoredResult {
    ids: Vec<Option<NotificationId>>,
    rejected: Vec<RejectedIndex>,
}

/// Pending notifications, from the trigger-maintained counts.
pub(super) fn pending_count(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .prepare_cached("SELECT n FROM status_counts WHERE status = 'pending'")?
        .query_row([], |row| row.get::<_, i64>(0))
        .map(|count| count.max(0) as u64)
}

pub(super) struct Writer {
    connection: Connection,
    receiver: mpsc::Receiver<Command>,
    pending: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn new(
        connection: Connection,
        receiver: mpsc::Receiver<Command>,
        pending: Arc<AtomicU64>,
    ) -> Self {
        Self {
            connection,
            receiver,
            pending,
        }
    }

    pub(super) fn run(mut self) {
        while let Some(first) = self.receiver.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match self.receiver.try_recv() {
                    Ok(command) => group.push(command),
                    Err(_) => break,
                }
            }
            let close = group
                .iter()
                .position(|command| matches!(command, Command::Close { .. }));
            let closing = close.map(|index| group.split_off(index));
            self.execute(group);
            if let Some(mut rest) = closing {
                // Commands queued after Close are refused by dropping their reply senders.
                if let Command::Close { reply } = rest.remove(0) {
                    self.receiver.close();
                    self.finish();
                    let _ = reply.send(());
                }
                return;
            }
        }
        self.finish();
    }

    fn finish(&self) {
        if let Err(error) = self
            .connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::warn!(error = %error, "final WAL checkpoint failed");
        }
    }

    fn execute(&mut self, group: Vec<Command>) {
        let mut appends = Vec::new();
        let mut others = Vec::new();
        for command in group {
            match command {
                Command::Append { delivery, reply } => appends.push((delivery, reply)),
                other => others.push(other),
            }
        }
        let transaction = match self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(transaction) => transaction,
            Err(error) => {
                tracing::error!(error = %error, "journal could not begin a write transaction");
                let error = JournalError::from(error);
                fail_all(appends, others, &error);
                return;
            }
        };
        let deliveries: Vec<&Delivery> = appends.iter().map(|(delivery, _)| delivery).collect();
        let append_results = in_savepoint(&transaction, |tx| append_group(tx, &deliveries));
        let mut answers: Vec<Answer> = Vec::new();
        for command in others {
            answers.push(run_other(&transaction, command));
        }
        let committed = transaction.commit().map_err(JournalError::from);
        if let Err(error) = &committed {
            tracing::error!(error = %error, "journal commit failed");
        }
        if let Ok(count) = pending_count(&self.connection) {
            self.pending.store(count, Ordering::Relaxed);
        }
        match (append_results, &committed) {
            (Ok(outcomes), Ok(())) => {
                for ((_, reply), outcome) in appends.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            (Err(error), _) => {
                tracing::error!(error = %error, "journal append failed");
                for (_, reply) in appends {
                    let _ = reply.send(Err(shared(&error)));
                }
            }
            (Ok(_), Err(error)) => {
                for (_, reply) in appends {
                    let _ = reply.send(Err(shared(error)));
                }
            }
        }
        for answer in answers {
            answer(committed.as_ref().map(|_| ()));
        }
    }
}

/// A copy of an error for every caller of a failed group (database errors are not `Clone`).
fn shared(error: &JournalError) -> JournalError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    JournalError::Write(message)
}

fn fail_all(
    appends: Vec<(Delivery, Reply<AppendOutcome>)>,
    others: Vec<Command>,
    error: &JournalError,
) {
    for (_, reply) in appends {
        let _ = reply.send(Err(shared(error)));
    }
    for command in others {
        match command {
            Command::Claim { reply, .. } => drop(reply.send(Err(shared(error)))),
            Command::Complete { reply, .. } | Command::Probe { reply } => {
                drop(reply.send(Err(shared(error))))
            }
            Command::Append { reply, .. } => drop(reply.send(Err(shared(error)))),
            Command::Close { reply } => drop(reply.send(())),
        }
    }
}

fn in_savepoint<T>(
    transaction: &Transaction<'_>,
    work: impl FnOnce(&Connection) -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    transaction.execute_batch("SAVEPOINT command")?;
    match work(transaction) {
        Ok(value) => {
            transaction.execute_batch("RELEASE command")?;
            Ok(value)
        }
        Err(error) => {
            transaction.execute_batch("ROLLBACK TO command; RELEASE command")?;
            Err(error)
        }
    }
}

/// Runs a non-append command in its own savepoint and returns how to answer it once the commit is known.
fn run_other(transaction: &Transaction<'_>, command: Command) -> Answer {
    fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, JournalError>) -> Answer {
        Box::new(move |committed| {
            let _ = reply.send(match (result, committed) {
                (Ok(value), Ok(())) => Ok(value),
                (Err(error), _) => Err(error),
                (Ok(_), Err(error)) => Err(shared(error)),
            });
        })
    }
    match command {
        Command::Claim {
            worker,
            limit,
            lease_ms,
            reply,
        } => answer(
            reply,
            in_savepoint(transaction, |tx| claim(tx, &worker, limit, lease_ms)),
        ),
        Command::Complete {
            worker,
            completions,
            reply,
        } => answer(
            reply,
            in_savepoint(transaction, |tx| complete(tx, &worker, completions)),
        ),
        Command::Probe { reply } => answer(
            reply,
            in_savepoint(transaction, |tx| {
                tx.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES ('last_write_probe', ?1)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )?
                .execute([now_ms().to_string()])?;
                Ok(())
            }),
        ),
        Command::Append { .. } | Command::Close { .. } => unreachable!("handled by the caller"),
    }
}

enum Fate {
    Fresh,
    Redelivery(StoredResult),
    SameWebhookIdAs(usize),
}

/// Journals a group of deliveries with shared multi-row inserts.
fn append_group(
    connection: &Connection,
    deliveries: &[&Delivery],
) -> Result<Vec<AppendOutcome>, JournalError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut first_with_id: HashMap<&str, usize> = HashMap::new();
    let mut fates = Vec::with_capacity(deliveries.len());
    let mut lookup =
        connection.prepare_cached("SELECT result FROM deliveries WHERE webhook_id = ?1")?;
    for (position, delivery) in deliveries.iter().enumerate() {
        let fate = if let Some(first) = first_with_id.get(delivery.webhook_id.as_str()) {
            Fate::SameWebhookIdAs(*first)
        } else if let Some(stored) = lookup
            .query_row([&delivery.webhook_id], |row| row.get::<_, String>(0))
            .optional()?
        {
            Fate::Redelivery(serde_json::from_str(&stored).unwrap_or(StoredResult {
                ids: Vec::new(),
                rejected: Vec::new(),
            }))
        } else {
            first_with_id.insert(&delivery.webhook_id, position);
            Fate::Fresh
        };
        fates.push(fate);
    }

    let fresh: Vec<usize> = (0..deliveries.len())
        .filter(|i| matches!(fates[*i], Fate::Fresh))
        .collect();
    let valid: Vec<(usize, usize, &ValidItem)> = fresh
        .iter()
        .flat_map(|&position| {
            deliveries[position].items.iter().enumerate().filter_map(
                move |(index, item)| match item {
                    IncomingItem::Valid(valid) => Some((position, index, valid)),
                    IncomingItem::Rejected(_) => None,
                },
            )
        })
        .collect();
    let rejected: Vec<(usize, usize, &RejectedItem)> = fresh
        .iter()
        .flat_map(|&position| {
            deliveries[position].items.iter().enumerate().filter_map(
                move |(index, item)| match item {
                    IncomingItem::Rejected(rejected) => Some((position, index, rejected)),
                    IncomingItem::Valid(_) => None,
                },
            )
        })
        .collect();

    let inserted = insert_valid(connection, deliveries, &valid)?;
    insert_rejected(connection, deliveries, &rejected)?;

    let mut outcomes: Vec<Option<AppendOutcome>> = vec![None; deliveries.len()];
    for &position in &fresh {
        let count = deliveries[position].items.len();
        outcomes[position] = Some(AppendOutcome {
            items: vec![ItemFate::Rejected; count],
            rejected: Vec::new(),
            redelivery: false,
        });
    }
    let mut taken: HashSet<[u8; 32]> = HashSet::new();
    let mut existing =
        connection.prepare_cached("SELECT id FROM notifications WHERE content_hash = ?1")?;
    for (position, index, item) in &valid {
        let outcome = outcomes[*position].as_mut().expect("fresh delivery");
        outcome.items[*index] = match inserted.get(&item.content_hash) {
            Some(id) if taken.insert(item.content_hash) => ItemFate::Accepted(*id),
            Some(id) => ItemFate::Duplicate(*id),
            None => {
                ItemFate::Duplicate(existing.query_row([&item.content_hash[..]], |row| row.get(0))?)
            }
        };
    }
    for (position, index, item) in &rejected {
        outcomes[*position]
            .as_mut()
            .expect("fresh delivery")
            .rejected
            .push(RejectedIndex {
                index: *index,
                reason: item.rejection.reason.as_str().to_string(),
                detail: item.rejection.detail.clone(),
            });
    }

    let mut record = connection.prepare_cached(
        "INSERT INTO deliveries (webhook_id, received_at, result) VALUES (?1, ?2, ?3)",
    )?;
    for &position in &fresh {
        let outcome = outcomes[position].as_ref().expect("fresh delivery");
        let stored = serde_json::to_string(&StoredResult {
            ids: outcome.items.iter().map(|fate| fate.id()).collect(),
            rejected: outcome.rejected.clone(),
        })
        .expect("plain data serialises");
        let delivery = deliveries[position];
        record.execute(rusqlite::params![
            delivery.webhook_id,
            delivery.received_at.timestamp_millis(),
            stored
        ])?;
    }

    let mut results = Vec::with_capacity(deliveries.len());
    for (position, fate) in fates.into_iter().enumerate() {
        let outcome = match fate {
            Fate::Fresh => outcomes[position].take().expect("fresh delivery"),
            Fate::Redelivery(stored) => redelivered(stored.ids, stored.rejected),
            Fate::SameWebhookIdAs(first) => {
                let earlier: &AppendOutcome = &results[first];
                redelivered(
                    earlier.items.iter().map(|fate| fate.id()).collect(),
                    earlier.rejected.clone(),
                )
            }
        };
        results.push(outcome);
    }
    Ok(results)
}

fn redelivered(ids: Vec<Option<NotificationId>>, rejected: Vec<RejectedIndex>) -> AppendOutcome {
    AppendOutcome {
        items: ids
            .into_iter()
            .map(|id| id.map_or(ItemFate::Rejected, ItemFate::Duplicate))
            .collect(),
        rejected,
        redelivery: true,
    }
}

/// Cuts `total` rows into the prepared chunk sizes.
fn chunks(mut total: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|size| *size <= total)?;
        total -= size;
        Some(size)
    })
}

/// `(<literal>,?,?,…),…` for `rows` rows of `columns` parameters.
fn values_clause(literal: &str, rows: usize, columns: usize) -> String {
    let row = format!("({literal},{})", vec!["?"; columns].join(","));
    vec![row; rows].join(",")
}

/// Inserts valid items, skipping content already journaled; returns the new ids by content hash.
fn insert_valid(
    connection: &Connection,
    deliveries: &[&Delivery],
    rows: &[(usize, usize, &ValidItem)],
) -> Result<HashMap<[u8; 32], NotificationId>, JournalError> {
    const COLUMNS: usize = 9;
    let mut inserted = HashMap::with_capacity(rows.len());
    let mut offset = 0;
    for size in chunks(rows.len()) {
        let sql = format!(
            "INSERT INTO notifications (status, type, duns, delivered_at, received_at, webhook_id, item_index, content_hash, raw, updated_at)
             VALUES {} ON CONFLICT DO NOTHING RETURNING id, content_hash",
            values_clause("'pending'", size, COLUMNS)
        );
        let mut statement = connection.prepare_cached(&sql)?;
        for (row, (position, index, item)) in rows[offset..offset + size].iter().enumerate() {
            let delivery = deliveries[*position];
            let base = row * COLUMNS;
            statement.raw_bind_parameter(base + 1, item.notification_type.as_str())?;
            statement.raw_bind_parameter(base + 2, item.duns.as_str())?;
            statement.raw_bind_parameter(base + 3, item.delivered_at_ms)?;
            statement.raw_bind_parameter(base + 4, delivery.received_at.timestamp_millis())?;
            statement.raw_bind_parameter(base + 5, delivery.webhook_id.as_str())?;
            statement.raw_bind_parameter(base + 6, *index as i64)?;
            statement.raw_bind_parameter(base + 7, &item.content_hash[..])?;
            statement.raw_bind_parameter(base + 8, item.canonical.as_str())?;
            statement.raw_bind_parameter(base + 9, delivery.received_at.timestamp_millis())?;
        }
        let mut returned = statement.raw_query();
        while let Some(row) = returned.next()? {
            let id: NotificationId = row.get(0)?;
            let hash: Vec<u8> = row.get(1)?;
            if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                inserted.insert(hash, id);
            }
        }
        offset += size;
    }
    Ok(inserted)
}

fn insert_rejected(
    connection: &Connection,
    deliveries: &[&Delivery],
    rows: &[(usize, usize, &RejectedItem)],
) -> Result<(), JournalError> {
    const COLUMNS: usize = 9;
    let mut offset = 0;
    for size in chunks(rows.len()) {
        let sql = format!(
            "INSERT INTO notifications (status, reason, last_error, type, duns, received_at, webhook_id, item_index, raw, updated_at)
             VALUES {}",
            values_clause("'rejected'", size, COLUMNS)
        );
        let mut statement = connection.prepare_cached(&sql)?;
        for (row, (position, index, item)) in rows[offset..offset + size].iter().enumerate() {
            let delivery = deliveries[*position];
            let base = row * COLUMNS;
            statement.raw_bind_parameter(base + 1, item.rejection.reason.as_str())?;
            statement.raw_bind_parameter(base + 2, item.rejection.detail.as_str())?;
            statement
                .raw_bind_parameter(base + 3, item.notification_type.map(|kind| kind.as_str()))?;
            statement.raw_bind_parameter(base + 4, item.duns.as_ref().map(|duns| duns.as_str()))?;
            statement.raw_bind_parameter(base + 5, delivery.received_at.timestamp_millis())?;
            statement.raw_bind_parameter(base + 6, delivery.webhook_id.as_str())?;
            statement.raw_bind_parameter(base + 7, *index as i64)?;
            statement.raw_bind_parameter(base + 8, item.raw.as_str())?;
            statement.raw_bind_parameter(base + 9, delivery.received_at.timestamp_millis())?;
        }
        statement.raw_execute()?;
        offset += size;
    }
    Ok(())
}

/// Leases due notifications, a DUNS at a time in delivery order.
fn claim(
    connection: &Connection,
    worker: &str,
    limit: usize,
    lease_ms: i64,
) -> Result<Vec<Claimed>, JournalError> {
    let now = now_ms();
    let recovered = connection
        .prepare_cached(
            "UPDATE notifications SET status = 'pending', claimed_by = NULL, lease_until = NULL, updated_at = ?1
             WHERE status = 'processing' AND lease_until <= ?1",
        )?
        .execute([now])?;
    if recovered > 0 {
        tracing::warn!(recovered, "took back notifications whose lease expired");
    }

    // A DUNS is eligible when no lease holds it and none of its notifications waits for a retry.
    let mut candidates = connection.prepare_cached(
        "SELECT duns FROM notifications
         WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
           AND duns NOT IN (SELECT duns FROM notifications WHERE status = 'processing')
           AND duns NOT IN (SELECT duns FROM notifications INDEXED BY notifications_waiting
                            WHERE status = 'pending' AND next_attempt_at > ?1)
         ORDER BY received_at, id LIMIT ?2",
    )?;
    let mut seen = HashSet::new();
    let dunses: Vec<String> = candidates
        .query_map(rusqlite::params![now, limit as i64], |row| {
            row.get::<_, String>(0)
        })?
        .filter_map(Result::ok)
        .filter(|duns| seen.insert(duns.clone()))
        .collect();

    let mut lane = connection.prepare_cached(
        "SELECT id FROM notifications WHERE duns = ?1 AND status = 'pending'
         ORDER BY delivered_at, received_at, id LIMIT ?2",
    )?;
    let mut take = connection.prepare_cached(
        "UPDATE notifications SET status = 'processing', claimed_by = ?2, lease_until = ?3, updated_at = ?4
         WHERE id = ?1
         RETURNING id, raw, duns, type, received_at, attempts, first_failed_at",
    )?;
    let mut claimed = Vec::new();
    for duns in dunses {
        if claimed.len() >= limit {
            break;
        }
        let remaining = (limit - claimed.len()) as i64;
        let ids: Vec<NotificationId> = lane
            .query_map(rusqlite::params![duns, remaining], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            claimed.push(take.query_row(
                rusqlite::params![id, worker, now + lease_ms, now],
                |row| {
                    Ok(Claimed {
                        id: row.get(0)?,
                        raw: row.get(1)?,
                        duns: row.get(2)?,
                        notification_type: row
                            .get::<_, Option<String>>(3)?
                            .as_deref()
                            .and_then(crate::dnb::NotificationType::parse),
                        received_at_ms: row.get(4)?,
                        attempts: row.get::<_, i64>(5)? as u32,
                        first_failed_at_ms: row.get(6)?,
                    })
                },
            )?);
        }
    }
    Ok(claimed)
}

/// Records outcomes; a notification whose lease was lost keeps its new owner's state.
fn complete(
    connection: &Connection,
    worker: &str,
    completions: Vec<Completion>,
) -> Result<(), JournalError> {
    let now = now_ms();
    let mut update = connection.prepare_cached(
        "UPDATE notifications
         SET status = ?2, reason = ?3, attempts = attempts + ?4, next_attempt_at = ?5,
             first_failed_at = ?6, last_error = ?7, dry_run = coalesce(?8, dry_run),
             claimed_by = NULL, lease_until = NULL, updated_at = ?9
         WHERE id = ?1 AND status = 'processing' AND claimed_by = ?10",
    )?;
    let mut attempt = connection.prepare_cached(
        "INSERT INTO attempts (notification_id, started_at, finished_at, worker, outcome, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut action = connection.prepare_cached(
        "INSERT INTO actions (notification_id, action_key, kind, state, object_type, object_id, detail, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (notification_id, action_key) DO UPDATE
         SET kind = excluded.kind, state = excluded.state, object_type = excluded.object_type,
             object_id = excluded.object_id, detail = excluded.detail, updated_at = excluded.updated_at
         WHERE actions.state <> 'done'",
    )?;
    for completion in completions {
        let (status, reason, spent, next_attempt_at, first_failed_at, error, dry_run) =
            match &completion.outcome {
                Outcome::Done { dry_run } => ("done", None, 1, None, None, None, Some(*dry_run)),
                Outcome::Skipped { reason } => (
                    "skipped",
                    Some(reason.as_str()),
                    1,
                    None,
                    None,
                    None,
                    Some(false),
                ),
                Outcome::Retry {
                    error,
                    next_attempt_at_ms,
                    first_failed_at_ms,
                } => (
                    "pending",
                    None,
                    1,
                    Some(*next_attempt_at_ms),
                    Some(*first_failed_at_ms),
                    Some(error.as_str()),
                    None,
                ),
                Outcome::Dead { reason, error } => (
                    "dead",
                    Some(reason.as_str()),
                    1,
                    None,
                    None,
                    Some(error.as_str()),
                    None,
                ),
                Outcome::Deferred {
                    reason,
                    next_attempt_at_ms,
                } => (
                    "pending",
                    None,
                    0,
                    Some(*next_attempt_at_ms),
                    None,
                    Some(reason.as_str()),
                    None,
                ),
            };
        let updated = update.execute(rusqlite::params![
            completion.id,
            status,
            reason,
            spent,
            next_attempt_at,
            first_failed_at,
            error,
            dry_run,
            now,
            worker
        ])?;
        if updated == 0 {
            tracing::warn!(
                notification.id = completion.id,
                worker,
                "lease lost before the outcome was recorded"
            );
        }
        let attempt_error = match &completion.outcome {
            Outcome::Retry { error, .. } | Outcome::Dead { error, .. } => Some(error.as_str()),
            Outcome::Deferred { reason, .. } | Outcome::Skipped { reason } => Some(reason.as_str()),
            Outcome::Done { .. } => None,
        };
        attempt.execute(rusqlite::params![
            completion.id,
            completion.started_at_ms,
            now,
            worker,
            completion.outcome.as_str(),
            attempt_error
        ])?;
        for record in &completion.actions {
            action.execute(rusqlite::params![
                completion.id,
                record.key,
                record.kind,
                record.state.as_str(),
                record.object_type,
                record.object_id,
                record.detail,
                now
            ])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_cover_any_total() {
        for total in [0, 1, 3, 10, 255, 256, 257, 1000] {
            assert_eq!(chunks(total).sum::<usize>(), total);
        }
        assert_eq!(chunks(85).collect::<Vec<_>>(), [64, 16, 4, 1]);
    }
}
