//! The journal: the source of truth for every notification.
//!
//! A notification is committed here before its 202 is sent, workers only ever
//! take work from here (the doorbell just wakes them), and every outcome,
//! attempt and HubSpot action is recorded here. [`Journal`] is the seam a
//! second backend joins; [`connect`] picks the backend from `storage.url`.

pub mod clock;
pub mod lease;
pub mod postgres;
pub mod reason;
pub mod sqlite;
mod written;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::StorageSettings;
use crate::dnb::IncomingItem;

pub use clock::{Clock, ManualClock, SystemClock};
pub use lease::{LeaseLost, LeaseSignal, LeaseWatch, lease_watch};
pub use reason::{DeadReason, DeferReason, PauseReason, SkipReason};

/// Journal row id of a notification.
pub type NotificationId = i64;

/// A claim's fencing token. Every claim gets a new one, greater than any before it in the
/// journal's life, and its notifications carry it while it holds them; outcomes, action
/// records and renewals must name it, so a worker whose lease was taken over can no longer
/// write to notifications that now belong to another claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClaimId(pub i64);

impl std::fmt::Display for ClaimId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

/// Lifecycle of a journaled notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting to be claimed (possibly until `next_attempt_at`).
    Pending,
    /// Claimed by a worker under a lease.
    Processing,
    /// Processed (for real, or planned only when `dry_run` is set).
    Done,
    /// Nothing to do, with a reason such as `no_company`.
    Skipped,
    /// Failed for longer than `workers.dead_after`; releases later notifications of its DUNS.
    Dead,
    /// Not a valid notification; kept with its reason, never processed.
    Rejected,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 6] = [
        Self::Pending,
        Self::Processing,
        Self::Done,
        Self::Skipped,
        Self::Dead,
        Self::Rejected,
    ];

    /// The status word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Skipped => "skipped",
            Self::Dead => "dead",
            Self::Rejected => "rejected",
        }
    }

    /// Parses a status word.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// One signed request's items, to be committed together.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The sender's `webhook-id`.
    pub webhook_id: String,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
    /// The items in body order.
    pub items: Vec<IncomingItem>,
    /// For a page pulled from D&B Direct+: its registration's new checkpoint, committed in
    /// the same transaction as the items.
    pub checkpoint: Option<PullCheckpoint>,
}

/// A change to a Direct+ registration's pull state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullCheckpoint {
    /// The registration reference.
    pub registration: String,
    /// The greatest `deliveryTimeStamp` of the page, unix milliseconds; the stored one
    /// only ever grows.
    pub delivered_at_ms: Option<i64>,
    /// When D&B answered successfully (a page, or nothing pending), unix milliseconds.
    pub succeeded_at_ms: Option<i64>,
    /// The page's `transactionDetail.transactionID`.
    pub transaction_id: Option<String>,
    /// Whether a call is in flight after this change: set before a pull call, cleared by
    /// the commit of its page. While it is set, a restart cannot know whether D&B handed
    /// out a page that never reached the journal, so it replays first.
    pub in_flight: bool,
}

/// A Direct+ registration's pull state, as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationState {
    /// The registration reference.
    pub registration: String,
    /// The greatest `deliveryTimeStamp` journaled from it, unix milliseconds.
    pub last_delivered_at_ms: Option<i64>,
    /// The last successful pull, unix milliseconds.
    pub last_success_at_ms: Option<i64>,
    /// The last page's transaction id.
    pub last_transaction_id: Option<String>,
    /// A pull call was made and its page not committed (an unclean stop, or a call in flight).
    pub in_flight: bool,
}

/// A rejected item of a delivery, by body index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedIndex {
    /// Position of the item in the body.
    pub index: usize,
    /// The short reason word.
    pub reason: String,
    /// What exactly was wrong.
    pub detail: String,
}

/// What became of one body item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFate {
    /// Newly journaled for processing.
    Accepted(NotificationId),
    /// Already journaled (same content, or a redelivered `webhook-id`): the existing id.
    Duplicate(NotificationId),
    /// Kept as rejected.
    Rejected,
}

impl ItemFate {
    /// The journal id an answer shows for this item (null for rejected).
    pub fn id(self) -> Option<NotificationId> {
        match self {
            Self::Accepted(id) | Self::Duplicate(id) => Some(id),
            Self::Rejected => None,
        }
    }
}

/// What the journal did with a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Per body item, in body order.
    pub items: Vec<ItemFate>,
    /// Details of the rejected items, by body index.
    pub rejected: Vec<RejectedIndex>,
    /// True when the `webhook-id` had been seen before and nothing was stored.
    pub redelivery: bool,
}

impl AppendOutcome {
    /// Items newly journaled for processing.
    pub fn accepted(&self) -> usize {
        self.items
            .iter()
            .filter(|fate| matches!(fate, ItemFate::Accepted(_)))
            .count()
    }

    /// Items answered as duplicates.
    pub fn duplicates(&self) -> usize {
        self.items
            .iter()
            .filter(|fate| matches!(fate, ItemFate::Duplicate(_)))
            .count()
    }
}

/// A notification handed to a worker under a lease.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Journal id.
    pub id: NotificationId,
    /// The claim that holds it (the same for every notification of one claim).
    pub claim: ClaimId,
    /// The notification's canonical JSON.
    pub raw: String,
    /// Its DUNS.
    pub duns: String,
    /// Its type.
    pub notification_type: Option<crate::dnb::NotificationType>,
    /// Receipt time, unix milliseconds.
    pub received_at_ms: i64,
    /// Attempts recorded so far.
    pub attempts: u32,
    /// When its current run of failures began, unix milliseconds.
    pub first_failed_at_ms: Option<i64>,
}

/// State of a recorded HubSpot action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionState {
    /// Planned in dry-run; not a checkpoint, so a later real run still performs it.
    Planned,
    /// Sent, but the answer was lost; must be reconciled before a retry.
    Unknown,
    /// Performed; a checkpoint that retries and replays skip.
    Done,
}

impl ActionState {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Unknown => "unknown",
            Self::Done => "done",
        }
    }
}

/// One HubSpot action as recorded for a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// Identifies the action within its notification's plan (one per kind).
    pub key: String,
    /// `create_task`, `create_note`, `update_property` or `update_company`.
    pub kind: String,
    /// Planned, unknown or done.
    pub state: ActionState,
    /// HubSpot object type written (`tasks`, `notes`, `companies`), once known.
    pub object_type: Option<String>,
    /// HubSpot record id produced or changed, once known.
    pub object_id: Option<String>,
    /// The planned content, as JSON.
    pub detail: String,
}

/// A recorded action with when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAction {
    /// Whose action.
    pub notification_id: NotificationId,
    /// The record.
    pub record: ActionRecord,
    /// Last write, unix milliseconds (how long an unknown write has had to show up in search).
    pub updated_at_ms: i64,
}

/// A TRANSFER's move of a company's DUNS property, as the journal recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    /// The DUNS the company had.
    pub from: String,
    /// The successor DUNS it was given.
    pub to: String,
    /// The HubSpot company.
    pub company_id: String,
}

/// One thing the bridge did to a HubSpot company, from the journal's action records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyEvent {
    /// The HubSpot company.
    pub company_id: String,
    /// The notification that did it.
    pub notification_id: NotificationId,
    /// Its type.
    pub notification_type: Option<crate::dnb::NotificationType>,
    /// Its D&B delivery time, unix milliseconds.
    pub delivered_at_ms: i64,
    /// The action kind (`create_task`, `complete_task`, `update_property`, …).
    pub kind: String,
    /// The object written (a task id for tasks).
    pub object_id: Option<String>,
    /// The action's detail JSON.
    pub detail: String,
}

/// How one claimed notification ended this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed; `dry_run` when its actions were only planned.
    Done {
        /// Whether HubSpot was left untouched.
        dry_run: bool,
    },
    /// Nothing to do.
    Skipped {
        /// Why.
        reason: SkipReason,
    },
    /// Its own failure; tried again at `next_attempt_at_ms`.
    Retry {
        /// What failed.
        error: String,
        /// When to try again.
        next_attempt_at_ms: i64,
        /// Start of the current run of failures.
        first_failed_at_ms: i64,
    },
    /// Failed for too long, or cannot ever succeed.
    Dead {
        /// Why.
        reason: DeadReason,
        /// What failed.
        error: String,
    },
    /// Not attempted because HubSpot as a whole is unavailable; no attempt is spent.
    Deferred {
        /// Why.
        reason: DeferReason,
        /// When to try again.
        next_attempt_at_ms: i64,
    },
}

impl Outcome {
    /// The attempt outcome word stored in the attempts table.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Done { .. } => "done",
            Self::Skipped { .. } => "skipped",
            Self::Retry { .. } => "retry",
            Self::Dead { .. } => "dead",
            Self::Deferred { .. } => "deferred",
        }
    }
}

/// The result of processing one claimed notification.
#[derive(Debug, Clone)]
pub struct Completion {
    /// Which notification.
    pub id: NotificationId,
    /// When its processing started, unix milliseconds.
    pub started_at_ms: i64,
    /// How it ended.
    pub outcome: Outcome,
    /// HubSpot actions planned or performed.
    pub actions: Vec<ActionRecord>,
}

/// Which notifications an operator means (every field optional; all given must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Status.
    pub status: Option<Status>,
    /// D&B type (`UNKNOWN` matches rejected items without a known type).
    pub notification_type: Option<String>,
    /// DUNS.
    pub duns: Option<String>,
    /// Received at or after, unix milliseconds.
    pub since_ms: Option<i64>,
    /// Received before, unix milliseconds.
    pub until_ms: Option<i64>,
}

/// One line of `GET /notifications`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Journal id.
    pub id: NotificationId,
    /// Status.
    pub status: Status,
    /// Why skipped, rejected or dead.
    pub reason: Option<String>,
    /// D&B type, when known.
    pub notification_type: Option<String>,
    /// DUNS, when valid.
    pub duns: Option<String>,
    /// Receipt time, unix milliseconds.
    pub received_at_ms: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// The last error.
    pub last_error: Option<String>,
}

/// One attempt to process a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Start, unix milliseconds.
    pub started_at_ms: i64,
    /// End, unix milliseconds.
    pub finished_at_ms: i64,
    /// Which worker.
    pub worker: String,
    /// `done`, `skipped`, `retry`, `dead` or `deferred`.
    pub outcome: String,
    /// What failed, or why it was skipped or deferred.
    pub error: Option<String>,
}

/// Everything the journal knows about one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// The list line.
    pub summary: Summary,
    /// The delivery it came in.
    pub webhook_id: String,
    /// D&B `deliveryTimeStamp`, unix milliseconds.
    pub delivered_at_ms: Option<i64>,
    /// Whether its last processing was a dry-run.
    pub dry_run: bool,
    /// The notification as stored.
    pub raw: String,
    /// Every processing attempt, oldest first.
    pub attempts: Vec<AttemptRecord>,
    /// Replays: when, and the status it had before.
    pub replays: Vec<(i64, String)>,
    /// HubSpot actions planned or performed, with the objects they produced.
    pub actions: Vec<StoredAction>,
}

/// What a replay matched and re-enqueued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOutcome {
    /// Notifications selected.
    pub matched: u64,
    /// Of those, the ones put back to `pending` (done, skipped and dead ones; pending and
    /// processing ones are already queued, rejected ones cannot be processed).
    pub enqueued: u64,
}

/// Counts for gauges and probes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Notifications per status.
    pub counts: BTreeMap<Status, u64>,
    /// Receipt time of the oldest pending notification, unix milliseconds.
    pub oldest_pending_received_ms: Option<i64>,
    /// Size of the journal's files on disk, in bytes.
    pub size_bytes: u64,
}

/// A delivery file as the journal records it (`import`, the inbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFile {
    /// The file's name (without its folder).
    pub name: String,
    /// Hex SHA-256 of the file as found.
    pub sha256: String,
    /// `notification`, `seed` or `exceptions`.
    pub kind: String,
    /// Lines committed so far (the whole file once `finished_at_ms` is set).
    pub lines_committed: u64,
    /// Lines newly journaled for processing.
    pub accepted: u64,
    /// Lines already journaled.
    pub duplicates: u64,
    /// Lines kept as rejected.
    pub rejected: u64,
    /// When its import began, unix milliseconds.
    pub started_at_ms: i64,
    /// When its last line was committed.
    pub finished_at_ms: Option<i64>,
}

/// One line of a D&B EXCEPTIONS file: a DUNS that D&B could not monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnbException {
    /// Journal row id (0 before it is recorded).
    pub id: i64,
    /// The file it came in.
    pub file_name: String,
    /// Its line number in that file (1 is the header row).
    pub line: u64,
    /// The DUNS.
    pub duns: String,
    /// D&B's code.
    pub code: String,
    /// D&B's explanation.
    pub information: String,
    /// When it was recorded, unix milliseconds.
    pub recorded_at_ms: i64,
}

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database answered with an error.
    #[error("journal database error")]
    Database(#[from] rusqlite::Error),
    /// The schema could not be brought up to date.
    #[error("journal migration failed")]
    Migration(#[from] rusqlite_migration::Error),
    /// PostgreSQL answered with an error, or could not be reached.
    #[error("journal database error")]
    Postgres(#[from] sqlx::Error),
    /// The PostgreSQL schema could not be brought up to date.
    #[error("journal migration failed")]
    PostgresMigration(#[from] sqlx::migrate::MigrateError),
    /// The journal file or its folder could not be used.
    #[error("journal storage error")]
    Io(#[from] std::io::Error),
    /// `storage.url` names no supported backend.
    #[error("unsupported storage url: {0}")]
    UnsupportedUrl(String),
    /// The journal was closed or its writer stopped.
    #[error("the journal is closed")]
    Closed,
    /// The claim named no longer holds the notifications: its lease ran out and another
    /// claim may own them. Nothing was written.
    #[error("the claim no longer holds these notifications")]
    LeaseLost,
}

/// The operations every backend provides.
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// Commits a delivery's items (deduplicated by `webhook-id` and content) and returns after the commit.
    async fn append(&self, delivery: Delivery) -> Result<AppendOutcome, JournalError>;

    /// Leases up to `limit` due notifications to `worker` under a new claim (one [`ClaimId`]
    /// for all of them, on each [`Claimed`]), per DUNS in delivery order and never a DUNS
    /// another lease holds; expired leases are taken back first. The notifications of one
    /// claim share one lease, so they are renewed, and taken back, together.
    async fn claim(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>, JournalError>;

    /// [`Journal::claim`] for a worker that has gathered a batch: claims only when at least
    /// `limit` notifications are claimable or the oldest claimable one was received at or
    /// before `gathered_by` (unix milliseconds), else claims nothing. A backend shared by
    /// several processes judges this inside the claim, with such claims one at a time across
    /// the processes, so workers whose gathering ends at the same moment in different
    /// processes do not split one batch between them: the first takes it, the others find
    /// what is left too young and gather on. By default a plain claim: in one process the
    /// workers already gather one at a time.
    async fn claim_gathered(
        &self,
        worker: &str,
        limit: usize,
        lease: Duration,
        gathered_by: i64,
    ) -> Result<Vec<Claimed>, JournalError> {
        let _ = gathered_by;
        self.claim(worker, limit, lease).await
    }

    /// Extends the lease of `claim` to `lease` from now, if it still holds: its notifications
    /// still carry it and its lease has not run out. Returns whether it held. A lease that ran
    /// out is not revived, even when no other claim has taken its notifications yet.
    async fn renew(&self, claim: ClaimId, lease: Duration) -> Result<bool, JournalError>;

    /// Records outcomes, attempts and actions of notifications `claim` holds (`worker` is
    /// the name its attempts are recorded under). A completion of a notification that no
    /// longer carries `claim` is refused whole, attempt row and actions included: the
    /// notification keeps its new owner's state, and the refusal is logged.
    async fn complete(
        &self,
        worker: &str,
        claim: ClaimId,
        completions: Vec<Completion>,
    ) -> Result<(), JournalError>;

    /// Records actions now, before the outcome: a create is written as `unknown` before it is
    /// sent, so a crash mid-call leaves a record to reconcile instead of a blind re-send.
    /// Refused with [`JournalError::LeaseLost`], writing nothing, unless `claim` still holds
    /// every notification named: the create must then not be sent.
    async fn record_actions(
        &self,
        claim: ClaimId,
        actions: Vec<(NotificationId, ActionRecord)>,
    ) -> Result<(), JournalError>;

    /// The `unknown` and `done` actions of these notifications (planned ones are not checkpoints).
    async fn checkpoints(&self, ids: &[NotificationId]) -> Result<Vec<StoredAction>, JournalError>;

    /// Notifications matching `filter`, newest first, with ids below `before` (the cursor).
    async fn list(
        &self,
        filter: &Filter,
        limit: usize,
        before: Option<NotificationId>,
    ) -> Result<Vec<Summary>, JournalError>;

    /// One notification with its attempts, replays and actions.
    async fn detail(&self, id: NotificationId) -> Result<Option<Detail>, JournalError>;

    /// Puts the done, skipped and dead notifications among `ids` back to `pending` (all
    /// matched ones are counted). Idempotent: a second replay finds them pending.
    async fn replay(
        &self,
        ids: Vec<NotificationId>,
        dry_run: bool,
    ) -> Result<ReplayOutcome, JournalError>;

    /// Which of `ids` exist.
    async fn existing(&self, ids: &[NotificationId]) -> Result<Vec<NotificationId>, JournalError>;

    /// Deletes up to `limit` done, skipped and rejected notifications last changed before
    /// `before_ms` (with their attempts, actions and replays), and delivery records received
    /// before it; pending, processing and dead ones are never purged. Returns how many
    /// notifications went.
    async fn purge(&self, before_ms: i64, limit: usize) -> Result<usize, JournalError>;

    /// HubSpot companies the bridge created for these DUNS, as `(duns, company id)`.
    async fn created_companies(
        &self,
        dunses: &[String],
    ) -> Result<Vec<(String, String)>, JournalError>;

    /// What the bridge did to these HubSpot companies, oldest first: the done actions whose
    /// detail names the company (property writes, tasks created and completed; notes left
    /// out). Actions of `except` (the batch in hand, which has its own checkpoints) are left
    /// out.
    async fn company_history(
        &self,
        company_ids: &[String],
        except: &[NotificationId],
    ) -> Result<Vec<CompanyEvent>, JournalError>;

    /// Companies a TRANSFER moved away from these DUNS (recorded before the move was sent),
    /// newest first.
    async fn moved_companies(&self, dunses: &[String]) -> Result<Vec<Move>, JournalError>;

    /// Counts per status and the age of the backlog.
    async fn stats(&self) -> Result<JournalStats, JournalError>;

    /// Proves a write can be committed now.
    async fn check_writable(&self) -> Result<(), JournalError>;

    /// Pending notifications as of the last commit (cheap; for backpressure).
    fn pending_count(&self) -> u64;

    /// Receipt time (unix milliseconds) of the oldest notification a claim at `now_ms` would
    /// take (pending, due and not held back by its DUNS, or under an expired lease); `None`
    /// when a claim would take nothing.
    async fn oldest_claimable_received_ms(&self, now_ms: i64) -> Result<Option<i64>, JournalError>;

    /// Finishes queued writes and closes the backend.
    async fn close(&self);

    /// Records a change to a Direct+ registration's pull state on its own (a page's
    /// change travels in its [`Delivery`] instead).
    async fn update_registration(&self, change: PullCheckpoint) -> Result<(), JournalError>;

    /// Every Direct+ registration's pull state, by reference.
    async fn registrations(&self) -> Result<Vec<RegistrationState>, JournalError>;

    /// The record of a delivery file with this name and content hash, if one was imported
    /// (or begun).
    async fn imported_file(
        &self,
        name: &str,
        sha256: &str,
    ) -> Result<Option<ImportedFile>, JournalError>;

    /// Records a delivery file's progress (inserted or replaced), with the exceptions it
    /// holds (an EXCEPTIONS file's lines, recorded once per file and line), in one transaction.
    async fn record_imported_file(
        &self,
        file: ImportedFile,
        exceptions: Vec<DnbException>,
    ) -> Result<(), JournalError>;

    /// Recorded EXCEPTIONS lines, newest first, optionally of one DUNS, with ids below
    /// `before` (the cursor).
    async fn exceptions(
        &self,
        duns: Option<String>,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<DnbException>, JournalError>;

    /// Calls `ring` whenever another process sharing the journal commits work a claim could
    /// take, until the journal closes. A journal only one process uses (SQLite) has no one
    /// else to hear from and ignores it.
    fn on_work(&self, ring: Arc<dyn Fn() + Send + Sync>) {
        let _ = ring;
    }
}

/// How a process opens the journal.
#[derive(Clone)]
pub struct JournalOptions {
    /// The time leases, retries and outcomes are measured in.
    pub clock: Arc<dyn Clock>,
    /// Set by the process that runs the workers, which with SQLite owns every claim: the
    /// notifications a previous process left `processing` are taken back (made pending) at
    /// open instead of when their leases run out. Left unset by commands that may run beside
    /// a serving process (`replay`), which must not take its claims away.
    pub take_back_claims: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            clock: clock::system(),
            take_back_claims: false,
        }
    }
}

/// Opens the backend `storage.url` names, with the system clock, leaving claims alone.
pub async fn connect(settings: &StorageSettings) -> Result<Arc<dyn Journal>, JournalError> {
    connect_with(settings, JournalOptions::default()).await
}

/// Opens the backend `storage.url` names with `options`.
pub async fn connect_with(
    settings: &StorageSettings,
    options: JournalOptions,
) -> Result<Arc<dyn Journal>, JournalError> {
    if let Some(path) = settings.url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(JournalError::UnsupportedUrl(settings.url.clone()));
        }
        return Ok(Arc::new(
            sqlite::SqliteJournal::open(path.as_ref(), settings, options).await?,
        ));
    }
    if settings.url.starts_with("postgres://") || settings.url.starts_with("postgresql://") {
        return Ok(Arc::new(
            postgres::PostgresJournal::open(&settings.url, settings, options).await?,
        ));
    }
    Err(JournalError::UnsupportedUrl(settings.url.clone()))
}

/// Current time in unix milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
