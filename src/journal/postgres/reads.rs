//! Reads: the admin API's listings, a notification's detail, the executor's history
//! lookups, counts.

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use crate::journal::{
    ActionRecord, ActionState, AttemptRecord, CompanyEvent, Detail, DnbException, Filter,
    ImportedFile, JournalError, JournalStats, Move, NotificationId, RegistrationState, Status,
    StoredAction, Summary,
};

fn action_state(state: &str) -> ActionState {
    match state {
        "done" => ActionState::Done,
        "unknown" => ActionState::Unknown,
        _ => ActionState::Planned,
    }
}

/// A stored action from `notification_id, action_key, kind, state, object_type, object_id,
/// detail, updated_at`.
fn stored_action(row: &PgRow) -> Result<StoredAction, sqlx::Error> {
    Ok(StoredAction {
        notification_id: row.try_get(0)?,
        record: ActionRecord {
            key: row.try_get(1)?,
            kind: row.try_get(2)?,
            state: action_state(row.try_get::<&str, _>(3)?),
            object_type: row.try_get(4)?,
            object_id: row.try_get(5)?,
            detail: row.try_get(6)?,
        },
        updated_at_ms: row.try_get(7)?,
    })
}

const ACTION_COLUMNS: &str =
    "notification_id, action_key, kind, state, object_type, object_id, detail, updated_at";

pub(super) async fn checkpoints(
    pool: &PgPool,
    ids: &[NotificationId],
) -> Result<Vec<StoredAction>, JournalError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ACTION_COLUMNS} FROM actions
         WHERE notification_id = ANY($1) AND state <> 'planned' ORDER BY id"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(stored_action).collect::<Result<_, _>>()?)
}

/// The columns [`summary`] reads, in its order.
const SUMMARY_COLUMNS: &str = "id, status, reason, type, duns, received_at, attempts, last_error";

fn summary(row: &PgRow) -> Result<Summary, sqlx::Error> {
    Ok(Summary {
        id: row.try_get(0)?,
        status: Status::parse(row.try_get::<&str, _>(1)?).unwrap_or(Status::Pending),
        reason: row.try_get(2)?,
        notification_type: row.try_get(3)?,
        duns: row.try_get(4)?,
        received_at_ms: row.try_get(5)?,
        attempts: row.try_get::<i32, _>(6)?.max(0) as u32,
        last_error: row.try_get(7)?,
    })
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &Filter,
    limit: usize,
    before: Option<NotificationId>,
) -> Result<Vec<Summary>, JournalError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS} FROM notifications
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::text IS NULL OR coalesce(type, 'UNKNOWN') = $2)
           AND ($3::text IS NULL OR duns = $3)
           AND ($4::bigint IS NULL OR received_at >= $4)
           AND ($5::bigint IS NULL OR received_at < $5)
           AND ($6::bigint IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7"
    )))
    .bind(filter.status.map(Status::as_str))
    .bind(&filter.notification_type)
    .bind(&filter.duns)
    .bind(filter.since_ms)
    .bind(filter.until_ms)
    .bind(before)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
}

pub(super) async fn detail(
    pool: &PgPool,
    id: NotificationId,
) -> Result<Option<Detail>, JournalError> {
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY_COLUMNS}, webhook_id, delivered_at, dry_run, raw FROM notifications WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let attempts = sqlx::query(
        "SELECT started_at, finished_at, worker, outcome, error FROM attempts
         WHERE notification_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|row| {
        Ok(AttemptRecord {
            started_at_ms: row.try_get(0)?,
            finished_at_ms: row.try_get(1)?,
            worker: row.try_get(2)?,
            outcome: row.try_get(3)?,
            error: row.try_get(4)?,
        })
    })
    .collect::<Result<_, sqlx::Error>>()?;
    let replays: Vec<(i64, String)> = sqlx::query_as(
        "SELECT replayed_at, previous_status FROM replays WHERE notification_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let actions = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ACTION_COLUMNS} FROM actions WHERE notification_id = $1 ORDER BY id"
    )))
    .bind(id)
    .fetch_all(pool)
    .await?
    .iter()
    .map(stored_action)
    .collect::<Result<_, _>>()?;
    Ok(Some(Detail {
        summary: summary(&row)?,
        webhook_id: row.try_get(8)?,
        delivered_at_ms: row.try_get(9)?,
        dry_run: row.try_get(10)?,
        raw: row.try_get(11)?,
        attempts,
        replays,
        actions,
    }))
}

pub(super) async fn created_companies(
    pool: &PgPool,
    dunses: &[String],
) -> Result<Vec<(String, String)>, JournalError> {
    Ok(sqlx::query_as(
        "SELECT (detail::jsonb ->> 'duns'), object_id FROM actions
         WHERE kind = 'update_company' AND state = 'done' AND object_id IS NOT NULL
           AND (detail::jsonb ->> 'duns') = ANY($1)",
    )
    .bind(dunses)
    .fetch_all(pool)
    .await?)
}

pub(super) async fn company_history(
    pool: &PgPool,
    company_ids: &[String],
    except: &[NotificationId],
) -> Result<Vec<CompanyEvent>, JournalError> {
    let rows = sqlx::query(
        "SELECT (a.detail::jsonb ->> 'company'), a.notification_id, n.type, n.delivered_at,
                a.kind, a.object_id, a.detail
         FROM actions AS a JOIN notifications AS n ON n.id = a.notification_id
         WHERE (a.detail::jsonb ->> 'company') IS NOT NULL
           AND (a.detail::jsonb ->> 'company') = ANY($1)
           AND a.state = 'done'
           AND NOT (a.notification_id = ANY($2))
           AND a.kind <> 'create_note'
         ORDER BY n.delivered_at, a.notification_id, a.id",
    )
    .bind(company_ids)
    .bind(except)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok(CompanyEvent {
                company_id: row.try_get(0)?,
                notification_id: row.try_get(1)?,
                notification_type: row
                    .try_get::<Option<String>, _>(2)?
                    .as_deref()
                    .and_then(crate::dnb::NotificationType::parse),
                delivered_at_ms: row.try_get::<Option<i64>, _>(3)?.unwrap_or_default(),
                kind: row.try_get(4)?,
                object_id: row.try_get(5)?,
                detail: row.try_get(6)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?)
}

pub(super) async fn moved_companies(
    pool: &PgPool,
    dunses: &[String],
) -> Result<Vec<Move>, JournalError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT (detail::jsonb ->> 'moved_from'), (detail::jsonb ->> 'moved_to'),
                (detail::jsonb ->> 'company')
         FROM actions
         WHERE (detail::jsonb ->> 'moved_from') IS NOT NULL
           AND (detail::jsonb ->> 'moved_from') = ANY($1)
           AND state IN ('done', 'unknown')
         ORDER BY updated_at DESC, id DESC",
    )
    .bind(dunses)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(from, to, company_id)| Move {
            from,
            to,
            company_id,
        })
        .collect())
}

/// Folds the status-count changes committed so far into the totals. Safe beside other
/// processes doing the same: each change row is deleted, and so counted, once.
pub(super) async fn fold_counts(pool: &PgPool) -> Result<(), JournalError> {
    sqlx::query(
        "WITH moved AS (DELETE FROM status_count_changes RETURNING status, n),
              sums AS (SELECT status, sum(n) AS n FROM moved GROUP BY status)
         UPDATE status_counts AS c SET n = c.n + sums.n FROM sums WHERE c.status = sums.status",
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, JournalError> {
    Ok(sqlx::query_as(
        "SELECT s.status, (s.n + coalesce((SELECT sum(c.n) FROM status_count_changes AS c
                                           WHERE c.status = s.status), 0))::bigint
         FROM status_counts AS s",
    )
    .fetch_all(pool)
    .await?)
}

pub(super) async fn pending_count(pool: &PgPool) -> Result<u64, JournalError> {
    Ok(counts(pool)
        .await?
        .into_iter()
        .find(|(status, _)| status == "pending")
        .map_or(0, |(_, n)| n.max(0) as u64))
}

pub(super) async fn stats(pool: &PgPool) -> Result<JournalStats, JournalError> {
    let mut stats = JournalStats::default();
    for (status, n) in counts(pool).await? {
        if let Some(status) = Status::parse(&status) {
            stats.counts.insert(status, n.max(0) as u64);
        }
    }
    stats.oldest_pending_received_ms =
        sqlx::query_scalar("SELECT min(received_at) FROM notifications WHERE status = 'pending'")
            .fetch_one(pool)
            .await?;
    let size: Option<i64> = sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class AS c
         JOIN pg_namespace AS ns ON ns.oid = c.relnamespace
         WHERE ns.nspname = current_schema() AND c.relkind = 'r'",
    )
    .fetch_one(pool)
    .await?;
    stats.size_bytes = size.unwrap_or_default().max(0) as u64;
    Ok(stats)
}

pub(super) async fn registrations(pool: &PgPool) -> Result<Vec<RegistrationState>, JournalError> {
    type Row = (String, Option<i64>, Option<i64>, Option<String>, bool);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT reference, last_delivered_at, last_success_at, last_transaction_id, in_flight
         FROM registrations ORDER BY reference",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(registration, delivered, success, transaction, in_flight)| RegistrationState {
                registration,
                last_delivered_at_ms: delivered,
                last_success_at_ms: success,
                last_transaction_id: transaction,
                in_flight,
            },
        )
        .collect())
}

pub(super) async fn imported_file(
    pool: &PgPool,
    name: &str,
    sha256: &str,
) -> Result<Option<ImportedFile>, JournalError> {
    let row = sqlx::query(
        "SELECT name, sha256, kind, lines_committed, accepted, duplicates, rejected,
                started_at, finished_at
         FROM imported_files WHERE name = $1 AND sha256 = $2",
    )
    .bind(name)
    .bind(sha256)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let count = |index: usize| -> Result<u64, sqlx::Error> {
        Ok(row.try_get::<i64, _>(index)?.max(0) as u64)
    };
    Ok(Some(ImportedFile {
        name: row.try_get(0)?,
        sha256: row.try_get(1)?,
        kind: row.try_get(2)?,
        lines_committed: count(3)?,
        accepted: count(4)?,
        duplicates: count(5)?,
        rejected: count(6)?,
        started_at_ms: row.try_get(7)?,
        finished_at_ms: row.try_get(8)?,
    }))
}

pub(super) async fn exceptions(
    pool: &PgPool,
    duns: Option<String>,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<DnbException>, JournalError> {
    let rows = sqlx::query(
        "SELECT id, file_name, line, duns, code, information, recorded_at
         FROM dnb_exceptions
         WHERE ($1::text IS NULL OR duns = $1) AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(duns)
    .bind(before)
    .bind(limit as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok(DnbException {
                id: row.try_get(0)?,
                file_name: row.try_get(1)?,
                line: row.try_get::<i64, _>(2)?.max(0) as u64,
                duns: row.try_get(3)?,
                code: row.try_get(4)?,
                information: row.try_get(5)?,
                recorded_at_ms: row.try_get(6)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?)
}
