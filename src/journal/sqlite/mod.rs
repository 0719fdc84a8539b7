//! SQLite backend: one writer thread, a small pool of read connections and a
//! checkpoint thread.
//!
//! Every write (appends, claims, completions, probes) goes through the writer
//! thread, which drains its queue and commits everything queued in one
//! `BEGIN IMMEDIATE` transaction (group commit), so one fsync covers many
//! requests and writers never contend for the lock. Callers are answered only
//! after that COMMIT has returned. The WAL is checkpointed by its own thread,
//! never inside a commit, and restarted four times a second, so the WAL file is
//! overwritten in place and cannot grow without bound.

mod checkpoint;
mod deliveries;
mod lanes;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};

use super::{
    ActionRecord, ActionState, AppendOutcome, AttemptRecord, ClaimId, Claimed, CompanyEvent,
    Completion, Delivery, Detail, DnbException, Filter, ImportedFile, Journal, JournalError,
    JournalOptions, JournalStats, Move, NotificationId, PullCheckpoint, RegistrationState,
    ReplayOutcome, Status, StoredAction, Summary,
};
use crate::config::{SqliteSynchronous, StorageSettings};
use writer::Command;

/// How long a connection waits for a lock before reporting busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections kept open between uses.
const MAX_IDLE_READERS: usize = 4;
/// Queued writer commands before callers wait (bounds memory under overload).
const WRITER_QUEUE: usize = 8192;

/// Settings every connection shares.
fn configure(connection: &Connection) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Without the planner stability guarantee, SQLite (built with STAT4) re-prepares a statement
    // whenever a bound value could change its plan, which is every execution on the hot path.
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../../../migrations/sqlite/0001_journal.sql")),
        M::up(include_str!("../../../migrations/sqlite/0002_replays.sql")),
        M::up(include_str!(
            "../../../migrations/sqlite/0003_created_companies.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0004_lanes_in_memory.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0005_deliveries_by_arrival.sql"
        )),
        M::up(include_str!("../../../migrations/sqlite/0006_claims.sql")),
        M::up(include_str!(
            "../../../migrations/sqlite/0007_company_history.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0008_registrations.sql"
        )),
        M::up(include_str!(
            "../../../migrations/sqlite/0009_imported_files.sql"
        )),
    ])
}

/// The SQLite journal.
pub struct SqliteJournal {
    commands: mpsc::Sender<Command>,
    readers: Arc<ReadPool>,
    pending: Arc<AtomicU64>,
    threads: Mutex<Option<(std::thread::JoinHandle<()>, checkpoint::Checkpointer)>>,
}

impl SqliteJournal {
    /// Opens (creating if needed) and migrates the journal at `path`, takes back the claims
    /// a previous process left when `options` say so, then starts its threads.
    pub async fn open(
        path: &Path,
        settings: &StorageSettings,
        options: JournalOptions,
    ) -> Result<Self, JournalError> {
        let path = path.to_path_buf();
        let settings = settings.clone();
        let (answers, groups) = mpsc::unbounded_channel();
        let journal = tokio::task::spawn_blocking(move || {
            Self::open_blocking(path, &settings, options, answers)
        })
        .await
        .map_err(|_| JournalError::Closed)??;
        tokio::spawn(writer::deliver(groups));
        Ok(journal)
    }

    fn open_blocking(
        path: PathBuf,
        settings: &StorageSettings,
        options: JournalOptions,
        answers: mpsc::UnboundedSender<writer::Answers>,
    ) -> Result<Self, JournalError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut connection = Connection::open(&path)?;
        configure(&connection)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        let synchronous = match settings.synchronous {
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Normal => "NORMAL",
        };
        connection.pragma_update(None, "synchronous", synchronous)?;
        // Checkpoints belong to the checkpoint thread, never to a commit.
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        connection.pragma_update(None, "journal_size_limit", settings.wal_max_bytes as i64)?;
        connection.pragma_update(None, "temp_store", "MEMORY")?;
        // 16 MB holds the writer's working set (the B-trees' right edges and inner pages, the
        // backlog's front); a larger cache measured no faster and only added to the RSS.
        connection.pragma_update(None, "cache_size", -16_000)?;
        connection.set_prepared_statement_cache_capacity(64);
        migrations().to_latest(&mut connection)?;
        if options.take_back_claims {
            // One process owns the journal: every claim left is a dead process's, and its
            // notifications are pending again now rather than when their leases run out.
            let taken = writer::take_back_all(&connection, options.clock.now_ms())?;
            if taken > 0 {
                tracing::warn!(
                    notifications = taken,
                    "took back the notifications a previous process had claimed"
                );
            }
        }

        let pending = Arc::new(AtomicU64::new(writer::pending_count(&connection)?));
        let (sender, receiver) = mpsc::channel(WRITER_QUEUE);
        let writer_pending = pending.clone();
        let memory = writer::Memory::load(&connection)?;
        let turn = checkpoint::Turn::default();
        let writer_turn = turn.clone();
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || {
                writer::Writer::new(
                    connection,
                    memory,
                    options.clock,
                    receiver,
                    writer_pending,
                    writer_turn,
                    answers,
                )
                .run()
            })?;
        let checkpointer = checkpoint::Checkpointer::start(&path, turn)?;
        Ok(Self {
            commands: sender,
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
            }),
            pending,
            threads: Mutex::new(Some((writer, checkpointer))),
        })
    }

    async fn send<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, JournalError>>) -> Command,
    ) -> Result<T, JournalError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| JournalError::Closed)?;
        answer.await.map_err(|_| JournalError::Closed)?
    }
}

/// Most notifications one claim or outcome transaction of a worker touches. The writer
/// commits the appends queued meanwhile between two slices, so a 202 waits for at most
/// one slice of worker writes, not for a whole batch.
const WORKER_WRITE_SLICE: usize = 32;

#[async_trait]
impl Journal for SqliteJournal {
    async fn append(&self, delivery: Delivery) -> Result<AppendOutcome, JournalError> {
        self.send(|reply| Command::Append { delivery, reply }).await
    }

    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, JournalError> {
        let lease_ms = lease.as_millis() as i64;
        let mut claimed: Vec<Claimed> = Vec::with_capacity(limit);
        let mut held = None;
        // In slices of about WORKER_WRITE_SLICE, each its own transaction: a DUNS is claimed
        // by one slice and held from then on, so the concatenation keeps every DUNS's order.
        // Every slice after the first joins the first one's claim and lease.
        while claimed.len() < limit {
            let worker = worker.to_string();
            let taken = match self
                .send(|reply| Command::Claim {
                    worker,
                    limit: limit - claimed.len(),
                    slice: WORKER_WRITE_SLICE,
                    lease_ms,
                    held,
                    reply,
                })
                .await
            {
                Ok(slice) => {
                    held = slice.held;
                    slice.claimed
                }
                // What earlier slices leased is the caller's to process, not to wait out.
                Err(error) if !claimed.is_empty() => {
                    tracing::warn!(error = %error, claimed = claimed.len(), "claim cut short");
                    break;
                }
                Err(error) => return Err(error),
            };
            if taken.is_empty() {
                break;
            }
            claimed.extend(taken);
        }
        Ok(claimed)
    }

    async fn renew(&self, claim: ClaimId, lease: Duration) -> Result<bool, JournalError> {
        let lease_ms = lease.as_millis() as i64;
        self.send(|reply| Command::Renew {
            claim,
            lease_ms,
            reply,
        })
        .await
    }

    async fn complete(
        &self,
        worker: &str,
        claim: ClaimId,
        mut completions: Vec<Completion>,
    ) -> Result<(), JournalError> {
        // In slices, each its own transaction; each notification's outcome is atomic.
        while !completions.is_empty() {
            let rest = completions.split_off(completions.len().min(WORKER_WRITE_SLICE));
            let worker = worker.to_string();
            self.send(|reply| Command::Complete {
                worker,
                claim,
                completions,
                reply,
            })
            .await?;
            completions = rest;
        }
        Ok(())
    }

    async fn record_actions(
        &self,
        claim: ClaimId,
        actions: Vec<(NotificationId, ActionRecord)>,
    ) -> Result<(), JournalError> {
        self.send(|reply| Command::RecordActions {
            claim,
            actions,
            reply,
        })
        .await
    }

    async fn checkpoints(&self, ids: &[NotificationId]) -> Result<Vec<StoredAction>, JournalError> {
        let id_list = serde_json::to_string(ids).expect("ids serialise");
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT notification_id, action_key, kind, state, object_type, object_id, detail, updated_at
                     FROM actions
                     WHERE notification_id IN (SELECT value FROM json_each(?1)) AND state <> 'planned'",
                )?;
                let rows = statement.query_map([id_list], |row| {
                    let state: String = row.get(3)?;
                    Ok(StoredAction {
                        notification_id: row.get(0)?,
                        record: ActionRecord {
                            key: row.get(1)?,
                            kind: row.get(2)?,
                            state: if state == "done" { ActionState::Done } else { ActionState::Unknown },
                            object_type: row.get(4)?,
                            object_id: row.get(5)?,
                            detail: row.get(6)?,
                        },
                        updated_at_ms: row.get(7)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn list(
        &self,
        filter: &Filter,
        limit: usize,
        before: Option<NotificationId>,
    ) -> Result<Vec<Summary>, JournalError> {
        let filter = filter.clone();
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM notifications
                     WHERE (?1 IS NULL OR status = ?1)
                       AND (?2 IS NULL OR coalesce(type, 'UNKNOWN') = ?2)
                       AND (?3 IS NULL OR duns = ?3)
                       AND (?4 IS NULL OR received_at >= ?4)
                       AND (?5 IS NULL OR received_at < ?5)
                       AND (?6 IS NULL OR id < ?6)
                     ORDER BY id DESC LIMIT ?7"
                ))?;
                let rows = statement.query_map(
                    rusqlite::params![
                        filter.status.map(Status::as_str),
                        filter.notification_type,
                        filter.duns,
                        filter.since_ms,
                        filter.until_ms,
                        before,
                        limit as i64
                    ],
                    summary,
                )?;
                rows.collect()
            })
            .await
    }

    async fn detail(&self, id: NotificationId) -> Result<Option<Detail>, JournalError> {
        self.readers
            .run(move |connection| {
                let found = connection
                    .query_row(
                        &format!(
                            "SELECT {SUMMARY_COLUMNS}, webhook_id, delivered_at, dry_run, raw FROM notifications WHERE id = ?1"
                        ),
                        [id],
                        |row| Ok((summary(row)?, row.get(8)?, row.get(9)?, row.get(10)?, row.get(11)?)),
                    )
                    .optional()?;
                let Some((summary, webhook_id, delivered_at_ms, dry_run, raw)) = found else {
                    return Ok(None);
                };
                let mut attempts = connection.prepare_cached(
                    "SELECT started_at, finished_at, worker, outcome, error FROM attempts WHERE notification_id = ?1 ORDER BY id",
                )?;
                let attempts = attempts
                    .query_map([id], |row| {
                        Ok(AttemptRecord {
                            started_at_ms: row.get(0)?,
                            finished_at_ms: row.get(1)?,
                            worker: row.get(2)?,
                            outcome: row.get(3)?,
                            error: row.get(4)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut replays = connection
                    .prepare_cached("SELECT replayed_at, previous_status FROM replays WHERE notification_id = ?1 ORDER BY id")?;
                let replays = replays.query_map([id], |row| Ok((row.get(0)?, row.get(1)?)))?.collect::<Result<_, _>>()?;
                let mut actions = connection.prepare_cached(
                    "SELECT action_key, kind, state, object_type, object_id, detail, updated_at FROM actions
                     WHERE notification_id = ?1 ORDER BY id",
                )?;
                let actions = actions
                    .query_map([id], |row| {
                        let state: String = row.get(2)?;
                        Ok(StoredAction {
                            notification_id: id,
                            record: ActionRecord {
                                key: row.get(0)?,
                                kind: row.get(1)?,
                                state: match state.as_str() {
                                    "done" => ActionState::Done,
                                    "unknown" => ActionState::Unknown,
                                    _ => ActionState::Planned,
                                },
                                object_type: row.get(3)?,
                                object_id: row.get(4)?,
                                detail: row.get(5)?,
                            },
                            updated_at_ms: row.get(6)?,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(Some(Detail { summary, webhook_id, delivered_at_ms, dry_run, raw, attempts, replays, actions }))
            })
            .await
    }

    async fn replay(
        &self,
        ids: Vec<NotificationId>,
        dry_run: bool,
    ) -> Result<ReplayOutcome, JournalError> {
        self.send(|reply| Command::Replay {
            ids,
            dry_run,
            reply,
        })
        .await
    }

    async fn existing(&self, ids: &[NotificationId]) -> Result<Vec<NotificationId>, JournalError> {
        let id_list = serde_json::to_string(ids).expect("ids serialise");
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT id FROM notifications WHERE id IN (SELECT value FROM json_each(?1))",
                )?;
                let rows = statement.query_map([id_list], |row| row.get(0))?;
                rows.collect()
            })
            .await
    }

    async fn purge(&self, before_ms: i64, limit: usize) -> Result<usize, JournalError> {
        self.send(|reply| Command::Purge {
            before_ms,
            limit,
            reply,
        })
        .await
    }

    async fn created_companies(
        &self,
        dunses: &[String],
    ) -> Result<Vec<(String, String)>, JournalError> {
        let list = serde_json::to_string(dunses).expect("strings serialise");
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT json_extract(detail, '$.duns'), object_id FROM actions
                     WHERE kind = 'update_company' AND state = 'done' AND object_id IS NOT NULL
                       AND json_extract(detail, '$.duns') IN (SELECT value FROM json_each(?1))",
                )?;
                let rows = statement.query_map([list], |row| Ok((row.get(0)?, row.get(1)?)))?;
                rows.collect()
            })
            .await
    }

    async fn company_history(
        &self,
        company_ids: &[String],
        except: &[NotificationId],
    ) -> Result<Vec<CompanyEvent>, JournalError> {
        let companies = serde_json::to_string(company_ids).expect("strings serialise");
        let except = serde_json::to_string(except).expect("ids serialise");
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT json_extract(a.detail, '$.company'), a.notification_id, n.type,
                            n.delivered_at, a.kind, a.object_id, a.detail
                     FROM actions AS a JOIN notifications AS n ON n.id = a.notification_id
                     WHERE json_extract(a.detail, '$.company') IS NOT NULL
                       AND json_extract(a.detail, '$.company') IN (SELECT value FROM json_each(?1))
                       AND a.state = 'done'
                       AND a.notification_id NOT IN (SELECT value FROM json_each(?2))
                       AND a.kind <> 'create_note'
                     ORDER BY n.delivered_at, a.notification_id",
                )?;
                let rows = statement.query_map([companies, except], |row| {
                    Ok(CompanyEvent {
                        company_id: row.get(0)?,
                        notification_id: row.get(1)?,
                        notification_type: row
                            .get::<_, Option<String>>(2)?
                            .as_deref()
                            .and_then(crate::dnb::NotificationType::parse),
                        delivered_at_ms: row.get::<_, Option<i64>>(3)?.unwrap_or_default(),
                        kind: row.get(4)?,
                        object_id: row.get(5)?,
                        detail: row.get(6)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn moved_companies(&self, dunses: &[String]) -> Result<Vec<Move>, JournalError> {
        let list = serde_json::to_string(dunses).expect("strings serialise");
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT json_extract(detail, '$.moved_from'), json_extract(detail, '$.moved_to'),
                            json_extract(detail, '$.company')
                     FROM actions
                     WHERE json_extract(detail, '$.moved_from') IS NOT NULL
                       AND json_extract(detail, '$.moved_from') IN (SELECT value FROM json_each(?1))
                       AND state IN ('done', 'unknown')
                     ORDER BY updated_at DESC",
                )?;
                let rows = statement.query_map([list], |row| {
                    Ok(Move {
                        from: row.get(0)?,
                        to: row.get(1)?,
                        company_id: row.get(2)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn stats(&self) -> Result<JournalStats, JournalError> {
        let path = self.readers.path.clone();
        self.readers
            .run(move |connection| {
                let mut stats = JournalStats::default();
                let mut statement =
                    connection.prepare_cached("SELECT status, n FROM status_counts")?;
                let mut rows = statement.query([])?;
                while let Some(row) = rows.next()? {
                    if let Some(status) = Status::parse(&row.get::<_, String>(0)?) {
                        stats
                            .counts
                            .insert(status, row.get::<_, i64>(1)?.max(0) as u64);
                    }
                }
                stats.oldest_pending_received_ms = connection.query_row(
                    "SELECT min(received_at) FROM notifications WHERE status = 'pending'",
                    [],
                    |row| row.get(0),
                )?;
                stats.size_bytes = ["", "-wal", "-shm"]
                    .iter()
                    .filter_map(|suffix| {
                        std::fs::metadata(format!("{}{suffix}", path.display())).ok()
                    })
                    .map(|meta| meta.len())
                    .sum();
                Ok(stats)
            })
            .await
    }

    async fn check_writable(&self) -> Result<(), JournalError> {
        self.send(|reply| Command::Probe { reply }).await
    }

    fn pending_count(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    async fn oldest_claimable_received_ms(&self, now_ms: i64) -> Result<Option<i64>, JournalError> {
        self.readers
            .run(move |connection| {
                let expired: Option<i64> = connection
                    .prepare_cached(
                        "SELECT min(received_at) FROM notifications
                         WHERE status = 'processing' AND lease_until <= ?1",
                    )?
                    .query_row([now_ms], |row| row.get(0))?;
                if expired.is_some() {
                    return Ok(expired);
                }
                connection
                    .prepare_cached(&format!(
                        "SELECT received_at FROM notifications WHERE {}
                         ORDER BY received_at, id LIMIT 1",
                        writer::CLAIMABLE
                    ))?
                    .query_row([now_ms], |row| row.get(0))
                    .optional()
            })
            .await
    }

    async fn close(&self) {
        let threads = self.threads.lock().expect("journal thread handles").take();
        let Some((writer, checkpointer)) = threads else {
            return;
        };
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
        let _ = tokio::task::spawn_blocking(move || {
            let _ = writer.join();
            checkpointer.stop();
        })
        .await;
    }

    async fn update_registration(&self, change: PullCheckpoint) -> Result<(), JournalError> {
        self.send(|reply| Command::Registration { change, reply })
            .await
    }

    async fn registrations(&self) -> Result<Vec<RegistrationState>, JournalError> {
        self.readers
            .run(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT reference, last_delivered_at, last_success_at, last_transaction_id, in_flight
                     FROM registrations ORDER BY reference",
                )?;
                let rows = statement.query_map([], |row| {
                    Ok(RegistrationState {
                        registration: row.get(0)?,
                        last_delivered_at_ms: row.get(1)?,
                        last_success_at_ms: row.get(2)?,
                        last_transaction_id: row.get(3)?,
                        in_flight: row.get(4)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn imported_file(
        &self,
        name: &str,
        sha256: &str,
    ) -> Result<Option<ImportedFile>, JournalError> {
        let (name, sha256) = (name.to_string(), sha256.to_string());
        self.readers
            .run(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT name, sha256, kind, lines_committed, accepted, duplicates, rejected,
                                started_at, finished_at
                         FROM imported_files WHERE name = ?1 AND sha256 = ?2",
                    )?
                    .query_row([name, sha256], |row| {
                        Ok(ImportedFile {
                            name: row.get(0)?,
                            sha256: row.get(1)?,
                            kind: row.get(2)?,
                            lines_committed: row.get::<_, i64>(3)?.max(0) as u64,
                            accepted: row.get::<_, i64>(4)?.max(0) as u64,
                            duplicates: row.get::<_, i64>(5)?.max(0) as u64,
                            rejected: row.get::<_, i64>(6)?.max(0) as u64,
                            started_at_ms: row.get(7)?,
                            finished_at_ms: row.get(8)?,
                        })
                    })
                    .optional()
            })
            .await
    }

    async fn record_imported_file(
        &self,
        file: ImportedFile,
        exceptions: Vec<DnbException>,
    ) -> Result<(), JournalError> {
        self.send(|reply| Command::RecordFile {
            file,
            exceptions,
            reply,
        })
        .await
    }

    async fn exceptions(
        &self,
        duns: Option<String>,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<DnbException>, JournalError> {
        self.readers
            .run(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT id, file_name, line, duns, code, information, recorded_at
                     FROM dnb_exceptions
                     WHERE (?1 IS NULL OR duns = ?1) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3",
                )?;
                let rows =
                    statement.query_map(rusqlite::params![duns, before, limit as i64], |row| {
                        Ok(DnbException {
                            id: row.get(0)?,
                            file_name: row.get(1)?,
                            line: row.get::<_, i64>(2)?.max(0) as u64,
                            duns: row.get(3)?,
                            code: row.get(4)?,
                            information: row.get(5)?,
                            recorded_at_ms: row.get(6)?,
                        })
                    })?;
                rows.collect()
            })
            .await
    }
}

/// The columns [`summary`] reads, in its order.
const SUMMARY_COLUMNS: &str = "id, status, reason, type, duns, received_at, attempts, last_error";

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    let status: String = row.get(1)?;
    Ok(Summary {
        id: row.get(0)?,
        status: Status::parse(&status).unwrap_or(Status::Pending),
        reason: row.get(2)?,
        notification_type: row.get(3)?,
        duns: row.get(4)?,
        received_at_ms: row.get(5)?,
        attempts: row.get::<_, i64>(6)? as u32,
        last_error: row.get(7)?,
    })
}

/// Read-only connections, opened on demand and reused.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn acquire(&self) -> Result<Connection, JournalError> {
        if let Some(connection) = self.idle.lock().expect("reader pool").pop() {
            return Ok(connection);
        }
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        configure(&connection)?;
        Ok(connection)
    }

    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, JournalError> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let connection = pool.acquire()?;
            let result = query(&connection)?;
            let mut idle = pool.idle.lock().expect("reader pool");
            if idle.len() < MAX_IDLE_READERS {
                idle.push(connection);
            }
            Ok(result)
        })
        .await
        .map_err(|_| JournalError::Closed)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }
}
