//! The writer thread: every write of the SQLite journal, group-committed.
//!
//! The thread takes one command and drains whatever else is queued. The
//! appends among them run in one `BEGIN IMMEDIATE` transaction, the other
//! commands (claims, outcomes, replays, purges) in a second one, and each
//! caller is answered only after its COMMIT returned. Appends of the whole
//! group share multi-row INSERTs. When a group fails, its commands are
//! committed one by one, so one failing command cannot fail the others
//! (savepoints would isolate them too, but copy every touched page into a
//! sub-journal on the hot path).
//!
//! Beside the rows, the writer keeps in memory what indexes with scattered
//! keys would otherwise hold ([`Memory`]): the per-DUNS lanes of pending
//! notifications and the delivery records by `webhook-id`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::MutexGuard;
use rusqlite::{Connection, Statement, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Turn;
use super::deliveries::Deliveries;
use super::lanes::Lanes;
use crate::dnb::{IncomingItem, RejectedItem, ValidItem};
use crate::journal::written::{StatusChange, StoredResult, attempt_error, redelivered};
use crate::journal::{
    ActionRecord, AppendOutcome, ClaimId, Claimed, Clock, Completion, Delivery, DnbException,
    ImportedFile, ItemFate, JournalError, NotificationId, PullCheckpoint, RejectedIndex,
    ReplayOutcome,
};

/// Most commands committed in one transaction.
const MAX_GROUP: usize = 512;
/// Row counts of the prepared multi-row INSERTs; a batch is cut into these.
const CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

type Reply<T> = oneshot::Sender<Result<T, JournalError>>;

/// A request to the writer thread.
pub(super) enum Command {
    Append {
        delivery: Delivery,
        reply: Reply<AppendOutcome>,
    },
    Claim {
        worker: String,
        limit: usize,
        slice: usize,
        lease_ms: i64,
        /// The claim and lease an earlier slice of the same claim made; a new claim when None.
        held: Option<Held>,
        reply: Reply<ClaimSlice>,
    },
    Renew {
        claim: ClaimId,
        lease_ms: i64,
        reply: Reply<bool>,
    },
    Complete {
        worker: String,
        claim: ClaimId,
        completions: Vec<Completion>,
        reply: Reply<()>,
    },
    RecordActions {
        claim: ClaimId,
        actions: Vec<(NotificationId, ActionRecord)>,
        reply: Reply<()>,
    },
    Replay {
        ids: Vec<NotificationId>,
        dry_run: bool,
        reply: Reply<ReplayOutcome>,
    },
    Purge {
        before_ms: i64,
        limit: usize,
        reply: Reply<usize>,
    },
    Probe {
        reply: Reply<()>,
    },
    Registration {
        change: PullCheckpoint,
        reply: Reply<()>,
    },
    RecordFile {
        file: ImportedFile,
        exceptions: Vec<DnbException>,
        reply: Reply<()>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// A claim and the end of its lease, which every slice of the claim shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Held {
    pub claim: ClaimId,
    pub lease_until: i64,
}

/// What one slice of a claim took.
pub(super) struct ClaimSlice {
    pub claimed: Vec<Claimed>,
    /// The claim, once anything was taken under it.
    pub held: Option<Held>,
}

/// Pending notifications, from the trigger-maintained counts.
pub(super) fn pending_count(connection: &Connection) -> rusqlite::Result<u64> {
    connection
        .prepare_cached("SELECT n FROM status_counts WHERE status = 'pending'")?
        .query_row([], |row| row.get::<_, i64>(0))
        .map(|count| count.max(0) as u64)
}

/// What the writer keeps in memory beside the rows, in place of indexes with scattered keys.
pub(super) struct Memory {
    lanes: Lanes,
    deliveries: Deliveries,
}

impl Memory {
    /// Reads both from the rows.
    pub(super) fn load(connection: &Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            lanes: Lanes::load(connection)?,
            deliveries: Deliveries::load(connection)?,
        })
    }
}

pub(super) struct Writer {
    connection: Connection,
    memory: Memory,
    clock: Arc<dyn Clock>,
    receiver: mpsc::Receiver<Command>,
    pending: Arc<AtomicU64>,
    /// Held for each transaction; handed to the checkpoint thread when it waits for a restart.
    turn: Turn,
    /// To [`deliver`].
    answers: mpsc::UnboundedSender<Answers>,
}

impl Writer {
    pub(super) fn new(
        connection: Connection,
        memory: Memory,
        clock: Arc<dyn Clock>,
        receiver: mpsc::Receiver<Command>,
        pending: Arc<AtomicU64>,
        turn: Turn,
        answers: mpsc::UnboundedSender<Answers>,
    ) -> Self {
        Self {
            connection,
            memory,
            clock,
            receiver,
            pending,
            turn,
            answers,
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
            // Appends commit and are answered first, in a transaction of their own: a 202 waits
            // for a worker's write only when one was already running as its request arrived
            // (and those are short: the journal sends them in slices), never for those queued.
            let (appends, others): (Vec<_>, Vec<_>) = group
                .into_iter()
                .partition(|command| matches!(command, Command::Append { .. }));
            for part in [appends, others] {
                if !part.is_empty() {
                    self.execute(part);
                }
            }
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

    /// Commits the whole group in one transaction. If it fails, each command
    /// is committed on its own so one bad command cannot fail the others.
    fn execute(&mut self, group: Vec<Command>) {
        let now = self.clock.now_ms();
        let result =
            self.transact(|connection, memory| run_commands(connection, memory, &group, now));
        match result {
            Ok(outputs) => {
                self.refresh_pending();
                self.answer(group.into_iter().zip(outputs.into_iter().map(Ok)).collect());
            }
            Err(error) if group.len() == 1 => {
                tracing::error!(error = ?error, "journal write failed");
                self.answer(group.into_iter().zip([Err(error)]).collect());
            }
            Err(error) => {
                tracing::warn!(error = ?error, size = group.len(), "group commit failed; committing its commands one by one");
                let mut answers = Vec::with_capacity(group.len());
                for command in group {
                    let result = self
                        .transact(|connection, memory| {
                            run_commands(connection, memory, std::slice::from_ref(&command), now)
                        })
                        .map(|mut outputs| outputs.remove(0));
                    if let Err(error) = &result {
                        tracing::error!(error = ?error, "journal write failed");
                    }
                    answers.push((command, result));
                }
                self.refresh_pending();
                self.answer(answers);
            }
        }
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction. When it fails, the transaction
    /// rolls back and what the writer keeps in memory, which `work` changed as it went,
    /// is read again from the rows.
    fn transact<T>(
        &mut self,
        work: impl FnOnce(&Connection, &mut Memory) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let turn = self.turn.lock();
        let result = (|| {
            let transaction = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Dropping the transaction on an error rolls it back.
            let value = work(&transaction, &mut self.memory)?;
            transaction.commit()?;
            Ok(value)
        })();
        // A waiting checkpoint restart runs now, before this thread's next transaction.
        MutexGuard::unlock_fair(turn);
        if result.is_err() {
            match Memory::load(&self.connection) {
                Ok(memory) => self.memory = memory,
                Err(error) => {
                    tracing::error!(error = %error, "could not read the journal's lanes and deliveries")
                }
            }
        }
        result
    }

    /// Hands a group's answers to the runtime in one message (see [`deliver`]); answers
    /// them here when the runtime no longer listens.
    fn answer(&self, answers: Answers) {
        if let Err(mpsc::error::SendError(answers)) = self.answers.send(answers) {
            for (command, result) in answers {
                command.answer(result);
            }
        }
    }

    fn refresh_pending(&self) {
        match pending_count(&self.connection) {
            Ok(count) => self.pending.store(count, Ordering::Relaxed),
            Err(error) => tracing::warn!(error = %error, "could not read the pending count"),
        }
    }
}

/// The answers of one group: each command with its result.
pub(super) type Answers = Vec<(Command, Result<Output, JournalError>)>;

/// Answers the writer's callers on the async runtime, one group at a time. The writer
/// hands over a group in one message, so the runtime is woken once per commit instead
/// of once per caller: each cross-thread wake-up is a syscall, and on a busy core often
/// a switch to the runtime's thread and back.
pub(super) async fn deliver(mut groups: mpsc::UnboundedReceiver<Answers>) {
    while let Some(answers) = groups.recv().await {
        for (command, result) in answers {
            command.answer(result);
        }
    }
}

/// What a command produced, before the commit is known.
pub(super) enum Output {
    Appended(AppendOutcome),
    Claimed(ClaimSlice),
    Renewed(bool),
    Replayed(ReplayOutcome),
    Purged(usize),
    Written,
    /// Nothing written: the claim no longer holds the notifications.
    Refused,
}

impl Command {
    /// Sends the caller its result.
    fn answer(self, result: Result<Output, JournalError>) {
        match self {
            Command::Append { reply, .. } => {
                let _ = reply.send(result.map(|output| match output {
                    Output::Appended(outcome) => outcome,
                    _ => unreachable!("an append produces an append outcome"),
                }));
            }
            Command::Claim { reply, .. } => {
                let _ = reply.send(result.map(|output| match output {
                    Output::Claimed(slice) => slice,
                    _ => unreachable!("a claim produces claims"),
                }));
            }
            Command::Renew { reply, .. } => {
                let _ = reply.send(result.map(|output| match output {
                    Output::Renewed(held) => held,
                    _ => unreachable!("a renewal says whether the lease held"),
                }));
            }
            Command::RecordActions { reply, .. } => {
                let _ = reply.send(result.and_then(|output| match output {
                    Output::Refused => Err(JournalError::LeaseLost),
                    _ => Ok(()),
                }));
            }
            Command::Purge { reply, .. } => {
                let _ = reply.send(result.map(|output| match output {
                    Output::Purged(count) => count,
                    _ => unreachable!("a purge produces a count"),
                }));
            }
            Command::Replay { reply, .. } => {
                let _ = reply.send(result.map(|output| match output {
                    Output::Replayed(outcome) => outcome,
                    _ => unreachable!("a replay produces a replay outcome"),
                }));
            }
            Command::Complete { reply, .. }
            | Command::Probe { reply }
            | Command::Registration { reply, .. }
            | Command::RecordFile { reply, .. } => {
                let _ = reply.send(result.map(|_| ()));
            }
            Command::Close { reply } => drop(reply.send(())),
        }
    }
}

/// Runs a group's commands inside one open transaction: all appends together
/// (shared multi-row inserts), then the others in order.
fn run_commands(
    connection: &Connection,
    memory: &mut Memory,
    commands: &[Command],
    now: i64,
) -> Result<Vec<Output>, JournalError> {
    let deliveries: Vec<&Delivery> = commands
        .iter()
        .filter_map(|command| match command {
            Command::Append { delivery, .. } => Some(delivery),
            _ => None,
        })
        .collect();
    let mut appended = append_group(connection, memory, &deliveries)?.into_iter();
    let mut outputs = Vec::with_capacity(commands.len());
    for command in commands {
        outputs.push(match command {
            Command::Append { .. } => {
                Output::Appended(appended.next().expect("one outcome per append"))
            }
            Command::Claim {
                worker,
                limit,
                slice,
                lease_ms,
                held,
                ..
            } => Output::Claimed(claim(
                connection,
                &mut memory.lanes,
                Lease {
                    worker,
                    now,
                    lease_ms: *lease_ms,
                    held: *held,
                },
                *limit,
                *slice,
            )?),
            Command::Renew {
                claim, lease_ms, ..
            } => Output::Renewed(renew(connection, *claim, now, *lease_ms)?),
            Command::Complete {
                worker,
                claim,
                completions,
                ..
            } => {
                complete(
                    connection,
                    &mut memory.lanes,
                    worker,
                    *claim,
                    completions,
                    now,
                )?;
                Output::Written
            }
            Command::RecordActions { claim, actions, .. } => {
                record_actions(connection, *claim, actions, now)?
            }
            Command::Purge {
                before_ms, limit, ..
            } => Output::Purged(purge(
                connection,
                &mut memory.deliveries,
                *before_ms,
                *limit,
            )?),
            Command::Replay { ids, dry_run, .. } => {
                Output::Replayed(replay(connection, &mut memory.lanes, ids, *dry_run, now)?)
            }
            Command::Probe { .. } => {
                connection
                    .prepare_cached(
                        "INSERT INTO meta (key, value) VALUES ('last_write_probe', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute([now.to_string()])?;
                Output::Written
            }
            Command::Registration { change, .. } => {
                update_registration(connection, change, now)?;
                Output::Written
            }
            Command::RecordFile {
                file, exceptions, ..
            } => {
                record_file(connection, file, exceptions, now)?;
                Output::Written
            }
            Command::Close { .. } => unreachable!("Close is split off before execution"),
        });
    }
    Ok(outputs)
}

enum Fate {
    Fresh,
    Redelivery(StoredResult),
    SameWebhookIdAs(usize),
}

/// Journals a group of deliveries with shared multi-row inserts.
fn append_group(
    connection: &Connection,
    memory: &mut Memory,
    deliveries: &[&Delivery],
) -> Result<Vec<AppendOutcome>, JournalError> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut first_with_id: HashMap<&str, usize> = HashMap::new();
    let mut fates = Vec::with_capacity(deliveries.len());
    for (position, delivery) in deliveries.iter().enumerate() {
        let fate = if let Some(first) = first_with_id.get(delivery.webhook_id.as_str()) {
            Fate::SameWebhookIdAs(*first)
        } else if let Some(stored) = memory.deliveries.find(connection, &delivery.webhook_id)? {
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

    let inserted = insert_valid(connection, &mut memory.lanes, deliveries, &valid)?;
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
    let mut existing = connection.prepare_cached(
        "SELECT id FROM notifications WHERE delivered_at = ?1 AND duns = ?2 AND content_hash = ?3",
    )?;
    for (position, index, item) in &valid {
        let outcome = outcomes[*position].as_mut().expect("fresh delivery");
        outcome.items[*index] = match inserted.get(&item.content_hash) {
            Some(id) if taken.insert(item.content_hash) => ItemFate::Accepted(*id),
            Some(id) => ItemFate::Duplicate(*id),
            None => ItemFate::Duplicate(existing.query_row(
                rusqlite::params![
                    item.delivered_at_ms,
                    item.duns.as_str(),
                    &item.content_hash[..]
                ],
                |row| row.get(0),
            )?),
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
        memory
            .deliveries
            .insert(&delivery.webhook_id, connection.last_insert_rowid());
    }

    // A pulled page's checkpoint commits with it, whatever became of its items (a page
    // that was all duplicates still moves its registration on).
    for delivery in deliveries {
        if let Some(change) = &delivery.checkpoint {
            update_registration(connection, change, delivery.received_at.timestamp_millis())?;
        }
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

/// Applies a change to a registration's pull state: the delivery time only grows, the
/// success time and transaction id are replaced when given, the in-flight flag is set as said.
fn update_registration(
    connection: &Connection,
    change: &PullCheckpoint,
    now: i64,
) -> Result<(), JournalError> {
    connection
        .prepare_cached(
            "INSERT INTO registrations
                 (reference, last_delivered_at, last_success_at, last_transaction_id, in_flight, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (reference) DO UPDATE SET
                 last_delivered_at = CASE
                     WHEN excluded.last_delivered_at IS NULL THEN last_delivered_at
                     WHEN last_delivered_at IS NULL THEN excluded.last_delivered_at
                     ELSE max(last_delivered_at, excluded.last_delivered_at) END,
                 last_success_at = coalesce(excluded.last_success_at, last_success_at),
                 last_transaction_id = coalesce(excluded.last_transaction_id, last_transaction_id),
                 in_flight = excluded.in_flight,
                 updated_at = excluded.updated_at",
        )?
        .execute(rusqlite::params![
            change.registration,
            change.delivered_at_ms,
            change.succeeded_at_ms,
            change.transaction_id,
            change.in_flight,
            now
        ])?;
    Ok(())
}

/// Cuts `total` rows into the prepared chunk sizes.
fn chunks(mut total: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        let size = CHUNKS.into_iter().find(|size| *size <= total)?;
        total -= size;
        Some(size)
    })
}

/// Runs a multi-row statement over `rows` in prepared chunks: `sql` gets the
/// `(?,…),(?,…)` list for a chunk, `bind` binds one row's `columns` parameters
/// from a 1-based offset, and `run` executes the bound chunk.
fn chunked<T>(
    connection: &Connection,
    rows: &[T],
    columns: usize,
    sql: impl Fn(&str) -> String,
    mut bind: impl FnMut(&mut Statement<'_>, usize, &T) -> rusqlite::Result<()>,
    mut run: impl FnMut(&mut Statement<'_>) -> Result<(), JournalError>,
) -> Result<(), JournalError> {
    let row = format!("({})", vec!["?"; columns].join(","));
    let mut offset = 0;
    for size in chunks(rows.len()) {
        let mut statement = connection.prepare_cached(&sql(&vec![row.as_str(); size].join(",")))?;
        for (index, item) in rows[offset..offset + size].iter().enumerate() {
            bind(&mut statement, index * columns + 1, item)?;
        }
        run(&mut statement)?;
        offset += size;
    }
    Ok(())
}

/// Inserts valid items, skipping content already journaled; returns the new ids by content hash.
fn insert_valid(
    connection: &Connection,
    lanes: &mut Lanes,
    deliveries: &[&Delivery],
    rows: &[(usize, usize, &ValidItem)],
) -> Result<HashMap<[u8; 32], NotificationId>, JournalError> {
    let mut inserted = HashMap::with_capacity(rows.len());
    chunked(
        connection,
        rows,
        9,
        |values| {
            format!(
                "INSERT INTO notifications (status, type, duns, delivered_at, received_at, webhook_id, item_index, content_hash, raw, updated_at)
                 SELECT 'pending', column1, column2, column3, column4, column5, column6, column7, column8, column4
                 FROM (VALUES {values}) WHERE true
                 ON CONFLICT DO NOTHING RETURNING id, duns, delivered_at, content_hash"
            )
        },
        |statement, base, (position, index, item)| {
            let delivery = deliveries[*position];
            statement.raw_bind_parameter(base, item.notification_type.as_str())?;
            statement.raw_bind_parameter(base + 1, item.duns.as_str())?;
            statement.raw_bind_parameter(base + 2, item.delivered_at_ms)?;
            statement.raw_bind_parameter(base + 3, delivery.received_at.timestamp_millis())?;
            statement.raw_bind_parameter(base + 4, delivery.webhook_id.as_str())?;
            statement.raw_bind_parameter(base + 5, *index as i64)?;
            statement.raw_bind_parameter(base + 6, &item.content_hash[..])?;
            statement.raw_bind_parameter(base + 7, item.canonical.as_str())
        },
        |statement| {
            let mut returned = statement.raw_query();
            while let Some(row) = returned.next()? {
                let hash: Vec<u8> = row.get(3)?;
                if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                    inserted.insert(hash, row.get(0)?);
                }
                lanes.add_row(row)?;
            }
            Ok(())
        },
    )?;
    Ok(inserted)
}

fn insert_rejected(
    connection: &Connection,
    deliveries: &[&Delivery],
    rows: &[(usize, usize, &RejectedItem)],
) -> Result<(), JournalError> {
    chunked(
        connection,
        rows,
        8,
        |values| {
            format!(
                "INSERT INTO notifications (status, reason, last_error, type, duns, received_at, webhook_id, item_index, raw, updated_at)
                 SELECT 'rejected', column1, column2, column3, column4, column5, column6, column7, column8, column5
                 FROM (VALUES {values})"
            )
        },
        |statement, base, (position, index, item)| {
            let delivery = deliveries[*position];
            statement.raw_bind_parameter(base, item.rejection.reason.as_str())?;
            statement.raw_bind_parameter(base + 1, item.rejection.detail.as_str())?;
            statement
                .raw_bind_parameter(base + 2, item.notification_type.map(|kind| kind.as_str()))?;
            statement.raw_bind_parameter(base + 3, item.duns.as_ref().map(|duns| duns.as_str()))?;
            statement.raw_bind_parameter(base + 4, delivery.received_at.timestamp_millis())?;
            statement.raw_bind_parameter(base + 5, delivery.webhook_id.as_str())?;
            statement.raw_bind_parameter(base + 6, *index as i64)?;
            statement.raw_bind_parameter(base + 7, item.raw.as_str())
        },
        |statement| {
            statement.raw_execute()?;
            Ok(())
        },
    )
}

/// Pending notifications a claim at `?1` may take: due, and of a DUNS that no lease holds and
/// none of whose notifications waits for a retry.
pub(super) const CLAIMABLE: &str =
    "status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
    AND duns NOT IN (SELECT duns FROM notifications WHERE status = 'processing')
    AND duns NOT IN (SELECT duns FROM notifications INDEXED BY notifications_waiting
                     WHERE status = 'pending' AND next_attempt_at > ?1)";

/// Who claims, when, and for how long.
struct Lease<'a> {
    worker: &'a str,
    now: i64,
    lease_ms: i64,
    /// The claim an earlier slice made, whose lease this slice shares.
    held: Option<Held>,
}

/// Makes the notifications whose lease ran out by `now` pending again.
fn take_back_expired(
    connection: &Connection,
    lanes: &mut Lanes,
    now: i64,
) -> Result<usize, JournalError> {
    let mut recovered = 0;
    let mut recover = connection.prepare_cached(
        "UPDATE notifications
         SET status = 'pending', claimed_by = NULL, lease_until = NULL, claim_id = NULL, updated_at = ?1
         WHERE status = 'processing' AND lease_until <= ?1
         RETURNING id, duns, delivered_at",
    )?;
    let mut rows = recover.query([now])?;
    while let Some(row) = rows.next()? {
        lanes.add_row(row)?;
        recovered += 1;
    }
    Ok(recovered)
}

/// Makes every `processing` notification pending again, whatever its lease: at open, by
/// the process that runs the workers, no claim of an earlier process can still be at work.
/// The writer's lanes are read from the rows afterwards. Returns how many were taken back.
pub(super) fn take_back_all(connection: &Connection, now: i64) -> rusqlite::Result<usize> {
    connection.execute(
        "UPDATE notifications INDEXED BY notifications_processing
         SET status = 'pending', claimed_by = NULL, lease_until = NULL, claim_id = NULL, updated_at = ?1
         WHERE status = 'processing'",
        [now],
    )
}

/// Leases up to `limit` due notifications, a DUNS at a time in delivery order. It stops taking further DUNS once `slice` are taken,
/// but takes a DUNS's lane whole unless `limit` cuts it, so slices of one batch do not
/// leave a DUNS's later notifications behind. The first slice that takes anything draws a
/// new claim id; later slices of the same claim reuse it and its lease.
fn claim(
    connection: &Connection,
    lanes: &mut Lanes,
    lease: Lease<'_>,
    limit: usize,
    slice: usize,
) -> Result<ClaimSlice, JournalError> {
    let now = lease.now;
    let recovered = take_back_expired(connection, lanes, now)?;
    if recovered > 0 {
        tracing::warn!(recovered, "took back notifications whose lease expired");
    }

    let mut candidates = connection.prepare_cached(&format!(
        "SELECT duns FROM notifications WHERE {CLAIMABLE} ORDER BY received_at, id LIMIT ?2"
    ))?;
    let mut seen = HashSet::new();
    let dunses: Vec<String> = candidates
        .query_map(rusqlite::params![now, slice.min(limit) as i64], |row| {
            row.get::<_, String>(0)
        })?
        .filter_map(Result::ok)
        .filter(|duns| seen.insert(duns.clone()))
        .collect();

    // The rows decide what is claimable, the lanes only the order; should they disagree,
    // the rows win.
    if let Some(missing) = dunses.iter().find(|duns| !lanes.has(duns)) {
        tracing::error!(dnb.duns = %missing, "a pending notification was missing from the lanes; reading them again");
        *lanes = Lanes::load(connection)?;
    }
    let mut ids: Vec<NotificationId> = Vec::with_capacity(limit);
    for duns in dunses {
        if ids.len() >= slice.min(limit) {
            break;
        }
        ids.extend(lanes.take(&duns, limit - ids.len()));
    }
    if ids.is_empty() {
        return Ok(ClaimSlice {
            claimed: Vec::new(),
            held: lease.held,
        });
    }
    let held = match lease.held {
        Some(held) => held,
        None => Held {
            claim: ClaimId(
                connection
                    .prepare_cached("UPDATE claim_counter SET last = last + 1 RETURNING last")?
                    .query_row([], |row| row.get(0))?,
            ),
            lease_until: now + lease.lease_ms,
        },
    };

    // One statement leases the whole batch; RETURNING order is unspecified, so restore lane order.
    let position: HashMap<NotificationId, usize> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| (*id, index))
        .collect();
    let mut take = connection.prepare_cached(
        "UPDATE notifications SET status = 'processing', claimed_by = ?2, lease_until = ?3, updated_at = ?4,
             claim_id = ?5
         WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'pending'
         RETURNING id, raw, duns, type, received_at, attempts, first_failed_at",
    )?;
    let id_list = serde_json::to_string(&ids).expect("ids serialise");
    let mut claimed = take
        .query_map(
            rusqlite::params![id_list, lease.worker, held.lease_until, now, held.claim.0],
            |row| {
                Ok(Claimed {
                    id: row.get(0)?,
                    claim: held.claim,
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
        )?
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|claimed| position[&claimed.id]);
    Ok(ClaimSlice {
        claimed,
        held: Some(held),
    })
}

/// Extends the lease of `claim`'s notifications to `now + lease_ms` if it has not run out;
/// returns whether it held. The processing rows are few (the workers' batches in hand), so
/// scanning their partial index beats keeping an index of claim ids on the hot path.
fn renew(
    connection: &Connection,
    claim: ClaimId,
    now: i64,
    lease_ms: i64,
) -> Result<bool, JournalError> {
    let renewed = connection
        .prepare_cached(
            "UPDATE notifications INDEXED BY notifications_processing SET lease_until = ?2 + ?3
             WHERE status = 'processing' AND claim_id = ?1 AND lease_until > ?2",
        )?
        .execute(rusqlite::params![claim.0, now, lease_ms])?;
    Ok(renewed > 0)
}

/// Records actions ahead of the outcome, only if `claim` still holds every notification
/// they belong to; otherwise writes nothing.
fn record_actions(
    connection: &Connection,
    claim: ClaimId,
    actions: &[(NotificationId, ActionRecord)],
    now: i64,
) -> Result<Output, JournalError> {
    let ids: HashSet<NotificationId> = actions.iter().map(|(id, _)| *id).collect();
    let id_list = serde_json::to_string(&ids).expect("ids serialise");
    let held: i64 = connection
        .prepare_cached(
            "SELECT count(*) FROM notifications
             WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'processing' AND claim_id = ?2",
        )?
        .query_row(rusqlite::params![id_list, claim.0], |row| row.get(0))?;
    if (held as usize) < ids.len() {
        tracing::warn!(claim = %claim, notifications = ids.len(), held, "actions refused: the claim lost its lease");
        return Ok(Output::Refused);
    }
    let actions: Vec<(NotificationId, &ActionRecord)> =
        actions.iter().map(|(id, record)| (*id, record)).collect();
    upsert_actions(connection, &actions, now)?;
    Ok(Output::Written)
}

/// Deletes finished notifications older than the retention, oldest first, and old delivery records.
fn purge(
    connection: &Connection,
    deliveries: &mut Deliveries,
    before_ms: i64,
    limit: usize,
) -> Result<usize, JournalError> {
    let ids: Vec<NotificationId> = connection
        .prepare_cached(
            "SELECT id FROM notifications
             WHERE status IN ('done', 'skipped', 'rejected') AND updated_at < ?1 ORDER BY id LIMIT ?2",
        )?
        .query_map(rusqlite::params![before_ms, limit as i64], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let id_list = serde_json::to_string(&ids).expect("ids serialise");
    for table in ["attempts", "actions", "replays"] {
        connection
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE notification_id IN (SELECT value FROM json_each(?1))"
            ))?
            .execute([&id_list])?;
    }
    connection
        .prepare_cached("DELETE FROM notifications WHERE id IN (SELECT value FROM json_each(?1))")?
        .execute([&id_list])?;
    // Records are in arrival order, so the old ones come first.
    let mut forget = connection.prepare_cached(
        "DELETE FROM deliveries WHERE id IN
         (SELECT id FROM deliveries WHERE received_at < ?1 ORDER BY id LIMIT ?2)
         RETURNING id, webhook_id",
    )?;
    let mut purged = forget.query(rusqlite::params![before_ms, limit as i64])?;
    while let Some(row) = purged.next()? {
        deliveries.remove(&row.get::<_, String>(1)?, row.get(0)?);
    }
    Ok(ids.len())
}

/// Puts done, skipped and dead notifications back to pending and notes the replay.
fn replay(
    connection: &Connection,
    lanes: &mut Lanes,
    ids: &[NotificationId],
    dry_run: bool,
    now: i64,
) -> Result<ReplayOutcome, JournalError> {
    let id_list = serde_json::to_string(ids).expect("ids serialise");
    let matched: i64 = connection
        .prepare_cached(
            "SELECT count(*) FROM notifications WHERE id IN (SELECT value FROM json_each(?1))",
        )?
        .query_row([&id_list], |row| row.get(0))?;
    let replayable =
        "id IN (SELECT value FROM json_each(?1)) AND status IN ('done', 'skipped', 'dead')";
    if dry_run {
        return Ok(ReplayOutcome {
            matched: matched as u64,
            enqueued: 0,
        });
    }
    connection
        .prepare_cached(&format!(
            "INSERT INTO replays (notification_id, replayed_at, previous_status)
             SELECT id, ?2, status FROM notifications WHERE {replayable}"
        ))?
        .execute(rusqlite::params![id_list, now])?;
    let mut enqueued = 0;
    let mut enqueue = connection.prepare_cached(&format!(
        "UPDATE notifications SET status = 'pending', reason = NULL, next_attempt_at = NULL,
             first_failed_at = NULL, claimed_by = NULL, lease_until = NULL, claim_id = NULL,
             updated_at = ?2
         WHERE {replayable}
         RETURNING id, duns, delivered_at"
    ))?;
    let mut rows = enqueue.query(rusqlite::params![id_list, now])?;
    while let Some(row) = rows.next()? {
        lanes.add_row(row)?;
        enqueued += 1;
    }
    Ok(ReplayOutcome {
        matched: matched as u64,
        enqueued: enqueued as u64,
    })
}

/// Records outcomes, attempts and actions with multi-row statements, for the
/// notifications `claim` still holds. A completion of one that no longer carries
/// the claim (its lease ran out and another claim may own it) is refused whole:
/// the notification keeps its new owner's state, and the refused run leaves no
/// attempt row and no actions. Its results cannot be trusted (the run may have
/// been stopped halfway because its lease was lost), an attempt row would show
/// an outcome the notification never had, and what it did send to HubSpot is
/// covered: creates were journaled as `unknown` under the same fence before they
/// were sent, and the new owner reconciles them.
fn complete(
    connection: &Connection,
    lanes: &mut Lanes,
    worker: &str,
    claim: ClaimId,
    completions: &[Completion],
    now: i64,
) -> Result<(), JournalError> {
    let mut updated = HashSet::with_capacity(completions.len());
    chunked(
        connection,
        completions,
        10,
        |values| {
            format!(
                "UPDATE notifications
                 SET status = change.column2, reason = change.column3, attempts = attempts + change.column4,
                     next_attempt_at = change.column5,
                     first_failed_at = CASE change.column2
                         WHEN 'pending' THEN coalesce(change.column6, first_failed_at) END,
                     last_error = change.column7, dry_run = coalesce(change.column8, dry_run),
                     claimed_by = NULL, lease_until = NULL, claim_id = NULL, updated_at = change.column9
                 FROM (VALUES {values}) AS change
                 WHERE notifications.id = change.column1 AND notifications.status = 'processing'
                   AND notifications.claim_id = change.column10
                 RETURNING notifications.id, notifications.duns, notifications.delivered_at,
                           notifications.status"
            )
        },
        |statement, base, completion| {
            let change = StatusChange::of(&completion.outcome);
            statement.raw_bind_parameter(base, completion.id)?;
            statement.raw_bind_parameter(base + 1, change.status)?;
            statement.raw_bind_parameter(base + 2, change.reason)?;
            statement.raw_bind_parameter(base + 3, change.spent)?;
            statement.raw_bind_parameter(base + 4, change.next_attempt_at)?;
            statement.raw_bind_parameter(base + 5, change.first_failed_at)?;
            statement.raw_bind_parameter(base + 6, change.error)?;
            statement.raw_bind_parameter(base + 7, change.dry_run)?;
            statement.raw_bind_parameter(base + 8, now)?;
            statement.raw_bind_parameter(base + 9, claim.0)
        },
        |statement| {
            let mut returned = statement.raw_query();
            while let Some(row) = returned.next()? {
                updated.insert(row.get::<_, NotificationId>(0)?);
                if row.get::<_, String>(3)? == "pending" {
                    lanes.add_row(row)?;
                }
            }
            Ok(())
        },
    )?;
    let (completions, refused): (Vec<&Completion>, Vec<&Completion>) = completions
        .iter()
        .partition(|completion| updated.contains(&completion.id));
    if !refused.is_empty() {
        let ids: Vec<NotificationId> = refused.iter().map(|completion| completion.id).collect();
        tracing::warn!(
            worker,
            claim = %claim,
            notifications = ?ids,
            "outcomes refused: the claim lost its lease before they were recorded"
        );
    }

    chunked(
        connection,
        &completions,
        6,
        |values| {
            format!(
                "INSERT INTO attempts (notification_id, started_at, finished_at, worker, outcome, error) VALUES {values}"
            )
        },
        |statement, base, completion| {
            let error = attempt_error(&completion.outcome);
            statement.raw_bind_parameter(base, completion.id)?;
            statement.raw_bind_parameter(base + 1, completion.started_at_ms)?;
            statement.raw_bind_parameter(base + 2, now)?;
            statement.raw_bind_parameter(base + 3, worker)?;
            statement.raw_bind_parameter(base + 4, completion.outcome.as_str())?;
            statement.raw_bind_parameter(base + 5, error)
        },
        |statement| {
            statement.raw_execute()?;
            Ok(())
        },
    )?;

    let actions: Vec<(NotificationId, &ActionRecord)> = completions
        .iter()
        .flat_map(|completion| {
            completion
                .actions
                .iter()
                .map(move |action| (completion.id, action))
        })
        .collect();
    upsert_actions(connection, &actions, now)
}

/// Writes action records; a `done` checkpoint is never overwritten.
fn upsert_actions(
    connection: &Connection,
    actions: &[(NotificationId, &ActionRecord)],
    now: i64,
) -> Result<(), JournalError> {
    chunked(
        connection,
        actions,
        8,
        |values| {
            format!(
                "INSERT INTO actions (notification_id, action_key, kind, state, object_type, object_id, detail, created_at, updated_at)
                 SELECT column1, column2, column3, column4, column5, column6, column7, column8, column8 FROM (VALUES {values}) WHERE true
                 ON CONFLICT (notification_id, action_key) DO UPDATE
                 SET kind = excluded.kind, state = excluded.state, object_type = excluded.object_type,
                     object_id = excluded.object_id, detail = excluded.detail, updated_at = excluded.updated_at
                 WHERE actions.state <> 'done'"
            )
        },
        |statement, base, (id, record)| {
            statement.raw_bind_parameter(base, *id)?;
            statement.raw_bind_parameter(base + 1, record.key.as_str())?;
            statement.raw_bind_parameter(base + 2, record.kind.as_str())?;
            statement.raw_bind_parameter(base + 3, record.state.as_str())?;
            statement.raw_bind_parameter(base + 4, record.object_type.as_deref())?;
            statement.raw_bind_parameter(base + 5, record.object_id.as_deref())?;
            statement.raw_bind_parameter(base + 6, record.detail.as_str())?;
            statement.raw_bind_parameter(base + 7, now)
        },
        |statement| {
            statement.raw_execute()?;
            Ok(())
        },
    )
}

/// Inserts or replaces a delivery file's record and records its exceptions (each file line once).
fn record_file(
    connection: &Connection,
    file: &ImportedFile,
    exceptions: &[DnbException],
    now: i64,
) -> Result<(), JournalError> {
    connection
        .prepare_cached(
            "INSERT INTO imported_files (name, sha256, kind, lines_committed, accepted, duplicates,
                                         rejected, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (name, sha256) DO UPDATE SET
                kind = excluded.kind, lines_committed = excluded.lines_committed,
                accepted = excluded.accepted, duplicates = excluded.duplicates,
                rejected = excluded.rejected, finished_at = excluded.finished_at",
        )?
        .execute(rusqlite::params![
            file.name,
            file.sha256,
            file.kind,
            file.lines_committed as i64,
            file.accepted as i64,
            file.duplicates as i64,
            file.rejected as i64,
            file.started_at_ms,
            file.finished_at_ms,
        ])?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO dnb_exceptions (file_name, line, duns, code, information, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (file_name, line) DO NOTHING",
    )?;
    for exception in exceptions {
        insert.execute(rusqlite::params![
            exception.file_name,
            exception.line as i64,
            exception.duns,
            exception.code,
            exception.information,
            now,
        ])?;
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
