//! Writes that follow a notification after its append: claims, renewals, outcomes, action
//! records, replays, purges.
//!
//! A claim is one short transaction that several processes may run at once:
//! 1. Leases that ran out are taken back (their `duns_claims` rows go, their notifications
//!    are pending again).
//! 2. The oldest due pending notifications whose DUNS no claim holds and none of whose
//!    notifications waits for a retry name the candidate DUNS.
//! 3. The pending notifications of those DUNS are locked `FOR UPDATE SKIP LOCKED`: a
//!    process claiming at the same moment has locked the rows it is taking, and this one
//!    passes them by instead of waiting. A DUNS is kept only when every one of its pending
//!    notifications was locked here, so none is taken while an earlier one of its DUNS is
//!    in another claim's hands (and no two claims ever wait on each other's rows).
//! 4. One `duns_claims` row per kept DUNS is inserted (in DUNS order); its primary key is
//!    the guard that makes two live claims on one DUNS impossible.
//! 5. The kept DUNS's notifications become `processing` under a claim id drawn from a
//!    sequence (the fencing token) with the lease's expiry, lane by lane in delivery order.
//!
//! A worker's claim of a gathered batch first takes a transaction-level advisory lock, so
//! these claims go one at a time across the processes, and then claims only if the batch is
//! still there (full, or its oldest notification old enough): the replicas' workers all end
//! their gathering when the same oldest notification has waited the batch wait, and without
//! this they would split one batch into several partial ones, each costing a HubSpot call
//! per kind of write.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::{Postgres, Row, Transaction};

use super::{notify_work, retrying};
use crate::journal::written::{StatusChange, attempt_error};
use crate::journal::{
    ActionRecord, ClaimId, Claimed, Completion, DnbException, ImportedFile, JournalError,
    NotificationId, ReplayOutcome,
};

/// Pending notifications a claim at `$1` may take: due, of a DUNS no claim holds and none of
/// whose notifications waits for a retry.
const CLAIMABLE: &str = "n.status = 'pending'
    AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= $1)
    AND NOT EXISTS (SELECT 1 FROM duns_claims AS c WHERE c.duns = n.duns)
    AND NOT EXISTS (SELECT 1 FROM notifications AS w
                    WHERE w.status = 'pending' AND w.duns = n.duns AND w.next_attempt_at > $1)";

/// The advisory lock that puts claims of gathered batches in a line (the key is
/// database-wide: schemas of one database share it, which only makes their claims wait).
const GATHERED_CLAIMS_LOCK: i64 = 0x6272_6964_6765_0001;

/// Makes the notifications whose lease ran out by `now` pending again, with their DUNS.
async fn take_back_expired(pool: &PgPool, now: i64) -> Result<u64, JournalError> {
    let expired: Option<i64> = sqlx::query_scalar(
        "SELECT 1::bigint FROM duns_claims WHERE lease_until <= $1
         UNION ALL
         SELECT 1::bigint FROM notifications WHERE status = 'processing' AND lease_until <= $1
         LIMIT 1",
    )
    .bind(now)
    .fetch_optional(pool)
    .await?;
    if expired.is_none() {
        return Ok(0);
    }
    retrying!(
        async {
            let mut transaction = pool.begin().await?;
            // Notifications before their DUNS rows: the order every other write locks them in.
            let taken = sqlx::query(
                "UPDATE notifications
                 SET status = 'pending', claimed_by = NULL, lease_until = NULL, claim_id = NULL,
                     updated_at = $1
                 WHERE status = 'processing' AND lease_until <= $1",
            )
            .bind(now)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM duns_claims WHERE lease_until <= $1")
                .bind(now)
                .execute(&mut *transaction)
                .await?;
            if taken > 0 {
                notify_work(&mut transaction).await?;
            }
            transaction.commit().await?;
            Ok(taken)
        }
        .await
    )
}

/// Claims up to `limit` notifications; with `gathered_by`, only when at least `limit` are
/// claimable or the oldest claimable one was received at or before it (see the module
/// comment).
pub(super) async fn claim(
    pool: &PgPool,
    worker: &str,
    limit: usize,
    lease: Duration,
    now: i64,
    gathered_by: Option<i64>,
) -> Result<Vec<Claimed>, JournalError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let recovered = take_back_expired(pool, now).await?;
    if recovered > 0 {
        tracing::warn!(recovered, "took back notifications whose lease expired");
    }
    let lease_until = now + lease.as_millis() as i64;
    retrying!(
        async {
            let mut transaction = pool.begin().await?;
            if let Some(gathered_by) = gathered_by
                && !gathered(&mut transaction, limit, now, gathered_by).await?
            {
                transaction.commit().await?;
                return Ok(Vec::new());
            }
            let claimed = claim_in(&mut transaction, worker, limit, lease_until, now).await?;
            transaction.commit().await?;
            Ok(claimed)
        }
        .await
    )
}

/// Waits for the other processes' claims of gathered batches, then says whether a batch is
/// still there: `limit` claimable notifications, or an oldest one received by `gathered_by`.
/// Each statement reads what committed before it, so this sees what an earlier claim took.
async fn gathered(
    transaction: &mut Transaction<'_, Postgres>,
    limit: usize,
    now: i64,
    gathered_by: i64,
) -> Result<bool, JournalError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(GATHERED_CLAIMS_LOCK)
        .execute(&mut **transaction)
        .await?;
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM notifications AS n WHERE {CLAIMABLE}
                                       LIMIT $2) AS due) >= $2
             OR coalesce((SELECT min(n.received_at) FROM notifications AS n WHERE {CLAIMABLE})
                         <= $3, false)"
    )))
    .bind(now)
    .bind(limit as i64)
    .bind(gathered_by)
    .fetch_one(&mut **transaction)
    .await?)
}

async fn claim_in(
    transaction: &mut Transaction<'_, Postgres>,
    worker: &str,
    limit: usize,
    lease_until: i64,
    now: i64,
) -> Result<Vec<Claimed>, JournalError> {
    let candidates: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT n.duns FROM notifications AS n WHERE {CLAIMABLE}
         ORDER BY n.received_at, n.id LIMIT $2"
    )))
    .bind(now)
    .bind(limit as i64)
    .fetch_all(&mut **transaction)
    .await?;
    let mut seen = HashSet::new();
    let candidates: Vec<String> = candidates
        .into_iter()
        .filter(|duns| seen.insert(duns.clone()))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }

    // Lock what no one else is taking; count what is there.
    let locked: Vec<(NotificationId, String)> = sqlx::query_as(
        "SELECT id, duns FROM notifications
         WHERE status = 'pending' AND duns = ANY($1)
         ORDER BY duns, delivered_at NULLS FIRST, id
         FOR UPDATE SKIP LOCKED",
    )
    .bind(&candidates)
    .fetch_all(&mut **transaction)
    .await?;
    let totals: HashMap<String, i64> = sqlx::query_as(
        "SELECT duns, count(*) FROM notifications
         WHERE status = 'pending' AND duns = ANY($1) GROUP BY duns",
    )
    .bind(&candidates)
    .fetch_all(&mut **transaction)
    .await?
    .into_iter()
    .collect();
    let mut lanes: HashMap<&str, Vec<NotificationId>> = HashMap::new();
    for (id, duns) in &locked {
        lanes.entry(duns.as_str()).or_default().push(*id);
    }

    // Whole lanes in candidate order, unless the limit cuts the last one.
    let mut taking: Vec<(&str, Vec<NotificationId>)> = Vec::new();
    let mut count = 0;
    for duns in &candidates {
        if count >= limit {
            break;
        }
        let Some(lane) = lanes.get(duns.as_str()) else {
            continue;
        };
        if totals.get(duns).copied().unwrap_or_default() != lane.len() as i64 {
            continue; // another claim holds some of its notifications
        }
        let lane: Vec<NotificationId> = lane.iter().copied().take(limit - count).collect();
        count += lane.len();
        taking.push((duns.as_str(), lane));
    }
    if taking.is_empty() {
        return Ok(Vec::new());
    }

    let claim = ClaimId(
        sqlx::query_scalar("SELECT nextval('claim_ids')")
            .fetch_one(&mut **transaction)
            .await?,
    );
    let mut dunses: Vec<&str> = taking.iter().map(|(duns, _)| *duns).collect();
    dunses.sort_unstable();
    let held: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO duns_claims (duns, claim_id, lease_until)
         SELECT duns, $2, $3 FROM UNNEST($1::text[]) AS duns
         ON CONFLICT (duns) DO NOTHING
         RETURNING duns",
    )
    .bind(&dunses)
    .bind(claim.0)
    .bind(lease_until)
    .fetch_all(&mut **transaction)
    .await?
    .into_iter()
    .collect();
    let ids: Vec<NotificationId> = taking
        .iter()
        .filter(|(duns, _)| held.contains(*duns))
        .flat_map(|(_, lane)| lane.iter().copied())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let position: HashMap<NotificationId, usize> = ids
        .iter()
        .enumerate()
        .map(|(index, id)| (*id, index))
        .collect();
    let rows = sqlx::query(
        "UPDATE notifications
         SET status = 'processing', claimed_by = $2, lease_until = $3, updated_at = $4, claim_id = $5
         WHERE id = ANY($1) AND status = 'pending'
         RETURNING id, raw, duns, type, received_at, attempts, first_failed_at",
    )
    .bind(&ids)
    .bind(worker)
    .bind(lease_until)
    .bind(now)
    .bind(claim.0)
    .fetch_all(&mut **transaction)
    .await?;
    let mut claimed = rows
        .into_iter()
        .map(|row| {
            Ok(Claimed {
                id: row.try_get(0)?,
                claim,
                raw: row.try_get(1)?,
                duns: row.try_get(2)?,
                notification_type: row
                    .try_get::<Option<String>, _>(3)?
                    .as_deref()
                    .and_then(crate::dnb::NotificationType::parse),
                received_at_ms: row.try_get(4)?,
                attempts: row.try_get::<i32, _>(5)? as u32,
                first_failed_at_ms: row.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    claimed.sort_by_key(|claimed| position[&claimed.id]);
    Ok(claimed)
}

pub(super) async fn renew(
    pool: &PgPool,
    claim: ClaimId,
    lease: Duration,
    now: i64,
) -> Result<bool, JournalError> {
    let until = now + lease.as_millis() as i64;
    retrying!(
        async {
            let mut transaction = pool.begin().await?;
            let renewed = sqlx::query(
                "UPDATE notifications SET lease_until = $3
             WHERE status = 'processing' AND claim_id = $1 AND lease_until > $2",
            )
            .bind(claim.0)
            .bind(now)
            .bind(until)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            if renewed > 0 {
                sqlx::query(
                "UPDATE duns_claims SET lease_until = $3 WHERE claim_id = $1 AND lease_until > $2",
            )
            .bind(claim.0)
            .bind(now)
            .bind(until)
            .execute(&mut *transaction)
            .await?;
            }
            transaction.commit().await?;
            Ok(renewed > 0)
        }
        .await
    )
}

/// Records outcomes of the notifications `claim` still holds, with their attempts and
/// actions; a completion of one the claim no longer holds is refused whole (see the
/// SQLite journal's `complete`). Releases the DUNS the claim has finished with.
pub(super) async fn complete(
    pool: &PgPool,
    worker: &str,
    claim: ClaimId,
    completions: &[Completion],
    now: i64,
) -> Result<(), JournalError> {
    if completions.is_empty() {
        return Ok(());
    }
    retrying!(async {
        let mut transaction = pool.begin().await?;
        let changes: Vec<StatusChange<'_>> = completions
            .iter()
            .map(|completion| StatusChange::of(&completion.outcome))
            .collect();
        let updated: Vec<(NotificationId, String)> = sqlx::query_as(
            "UPDATE notifications AS n
             SET status = change.status, reason = change.reason,
                 attempts = n.attempts + change.spent, next_attempt_at = change.next_attempt_at,
                 first_failed_at = CASE change.status
                     WHEN 'pending' THEN coalesce(change.first_failed_at, n.first_failed_at) END,
                 last_error = change.error, dry_run = coalesce(change.dry_run, n.dry_run),
                 claimed_by = NULL, lease_until = NULL, claim_id = NULL, updated_at = $9
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::int[], $5::bigint[],
                         $6::bigint[], $7::text[], $8::bool[])
                  AS change (id, status, reason, spent, next_attempt_at, first_failed_at, error, dry_run)
             WHERE n.id = change.id AND n.status = 'processing' AND n.claim_id = $10
             RETURNING n.id, n.status",
        )
        .bind(completions.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.status).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.reason).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.spent).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.next_attempt_at).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.first_failed_at).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.error).collect::<Vec<_>>())
        .bind(changes.iter().map(|c| c.dry_run).collect::<Vec<_>>())
        .bind(now)
        .bind(claim.0)
        .fetch_all(&mut *transaction)
        .await?;
        let recorded: HashSet<NotificationId> = updated.iter().map(|(id, _)| *id).collect();
        let (kept, refused): (Vec<&Completion>, Vec<&Completion>) = completions
            .iter()
            .partition(|completion| recorded.contains(&completion.id));
        if !refused.is_empty() {
            let ids: Vec<NotificationId> = refused.iter().map(|completion| completion.id).collect();
            tracing::warn!(
                worker,
                claim = %claim,
                notifications = ?ids,
                "outcomes refused: the claim lost its lease before they were recorded"
            );
        }
        if !kept.is_empty() {
            sqlx::query(
                "INSERT INTO attempts (notification_id, started_at, finished_at, worker, outcome, error)
                 SELECT id, started_at, $3, $4, outcome, error
                 FROM UNNEST($1::bigint[], $2::bigint[], $5::text[], $6::text[])
                      AS attempt (id, started_at, outcome, error)",
            )
            .bind(kept.iter().map(|c| c.id).collect::<Vec<_>>())
            .bind(kept.iter().map(|c| c.started_at_ms).collect::<Vec<_>>())
            .bind(now)
            .bind(worker)
            .bind(kept.iter().map(|c| c.outcome.as_str()).collect::<Vec<_>>())
            .bind(kept.iter().map(|c| attempt_error(&c.outcome)).collect::<Vec<_>>())
            .execute(&mut *transaction)
            .await?;
            let actions: Vec<(NotificationId, &ActionRecord)> = kept
                .iter()
                .flat_map(|c| c.actions.iter().map(move |action| (c.id, action)))
                .collect();
            upsert_actions(&mut transaction, &actions, now).await?;
        }
        // The DUNS whose notifications of this claim are all recorded are free again.
        let released = sqlx::query(
            "DELETE FROM duns_claims AS d WHERE d.claim_id = $1 AND NOT EXISTS (
                 SELECT 1 FROM notifications AS n
                 WHERE n.status = 'processing' AND n.claim_id = $1 AND n.duns = d.duns)",
        )
        .bind(claim.0)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
        if released > 0 {
            // Later notifications of a released DUNS (arrived meanwhile, or beyond a batch
            // cut) are claimable now, by any process.
            notify_work(&mut transaction).await?;
        }
        transaction.commit().await?;
        Ok(())
    }.await)
}

/// Writes action records; a `done` checkpoint is never overwritten. Of two records with one
/// key, the later wins (one statement may not touch a row twice).
async fn upsert_actions(
    transaction: &mut Transaction<'_, Postgres>,
    actions: &[(NotificationId, &ActionRecord)],
    now: i64,
) -> Result<(), JournalError> {
    if actions.is_empty() {
        return Ok(());
    }
    let mut last: HashMap<(NotificationId, &str), usize> = HashMap::new();
    for (index, (id, record)) in actions.iter().enumerate() {
        last.insert((*id, record.key.as_str()), index);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let rows: Vec<&(NotificationId, &ActionRecord)> =
        keep.into_iter().map(|index| &actions[index]).collect();
    sqlx::query(
        "INSERT INTO actions (notification_id, action_key, kind, state, object_type, object_id,
                              detail, created_at, updated_at)
         SELECT id, key, kind, state, object_type, object_id, detail, $8, $8
         FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[]) AS a (id, key, kind, state, object_type, object_id, detail)
         ON CONFLICT (notification_id, action_key) DO UPDATE
         SET kind = excluded.kind, state = excluded.state, object_type = excluded.object_type,
             object_id = excluded.object_id, detail = excluded.detail, updated_at = excluded.updated_at
         WHERE actions.state <> 'done'",
    )
    .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.key.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.kind.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.state.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.object_type.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.object_id.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|(_, r)| r.detail.as_str()).collect::<Vec<_>>())
    .bind(now)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

/// Records actions only if `claim` still holds every notification named (their rows stay
/// locked until the commit, so the claim cannot be taken back in between).
pub(super) async fn record_actions(
    pool: &PgPool,
    claim: ClaimId,
    actions: &[(NotificationId, ActionRecord)],
    now: i64,
) -> Result<(), JournalError> {
    let ids: Vec<NotificationId> = actions
        .iter()
        .map(|(id, _)| *id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    retrying!(async {
        let mut transaction = pool.begin().await?;
        let held: Vec<NotificationId> = sqlx::query_scalar(
            "SELECT id FROM notifications
             WHERE id = ANY($1) AND status = 'processing' AND claim_id = $2 FOR SHARE",
        )
        .bind(&ids)
        .bind(claim.0)
        .fetch_all(&mut *transaction)
        .await?;
        if held.len() < ids.len() {
            tracing::warn!(claim = %claim, notifications = ids.len(), held = held.len(), "actions refused: the claim lost its lease");
            return Err(JournalError::LeaseLost);
        }
        let rows: Vec<(NotificationId, &ActionRecord)> =
            actions.iter().map(|(id, record)| (*id, record)).collect();
        upsert_actions(&mut transaction, &rows, now).await?;
        transaction.commit().await?;
        Ok(())
    }.await)
}

pub(super) async fn replay(
    pool: &PgPool,
    ids: &[NotificationId],
    dry_run: bool,
    now: i64,
) -> Result<ReplayOutcome, JournalError> {
    retrying!(async {
        let mut transaction = pool.begin().await?;
        let matched: i64 =
            sqlx::query_scalar("SELECT count(*) FROM notifications WHERE id = ANY($1)")
                .bind(ids)
                .fetch_one(&mut *transaction)
                .await?;
        if dry_run {
            return Ok(ReplayOutcome {
                matched: matched as u64,
                enqueued: 0,
            });
        }
        let enqueued: Vec<(NotificationId, String)> = sqlx::query_as(
            "UPDATE notifications AS n
             SET status = 'pending', reason = NULL, next_attempt_at = NULL, first_failed_at = NULL,
                 claimed_by = NULL, lease_until = NULL, claim_id = NULL, updated_at = $2
             FROM (SELECT id, status FROM notifications
                   WHERE id = ANY($1) AND status IN ('done', 'skipped', 'dead') FOR UPDATE) AS before
             WHERE n.id = before.id
             RETURNING n.id, before.status",
        )
        .bind(ids)
        .bind(now)
        .fetch_all(&mut *transaction)
        .await?;
        if !enqueued.is_empty() {
            sqlx::query(
                "INSERT INTO replays (notification_id, replayed_at, previous_status)
                 SELECT id, $2, status FROM UNNEST($1::bigint[], $3::text[]) AS r (id, status)
                 ORDER BY id",
            )
            .bind(enqueued.iter().map(|(id, _)| *id).collect::<Vec<_>>())
            .bind(now)
            .bind(
                enqueued
                    .iter()
                    .map(|(_, status)| status.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *transaction)
            .await?;
            notify_work(&mut transaction).await?;
        }
        transaction.commit().await?;
        Ok(ReplayOutcome {
            matched: matched as u64,
            enqueued: enqueued.len() as u64,
        })
    }.await)
}

pub(super) async fn purge(
    pool: &PgPool,
    before_ms: i64,
    limit: usize,
) -> Result<usize, JournalError> {
    retrying!(
        async {
            let mut transaction = pool.begin().await?;
            let ids: Vec<NotificationId> = sqlx::query_scalar(
                "SELECT id FROM notifications
             WHERE status IN ('done', 'skipped', 'rejected') AND updated_at < $1
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
            )
            .bind(before_ms)
            .bind(limit as i64)
            .fetch_all(&mut *transaction)
            .await?;
            for table in ["attempts", "actions", "replays"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE notification_id = ANY($1)"
                )))
                .bind(&ids)
                .execute(&mut *transaction)
                .await?;
            }
            sqlx::query("DELETE FROM notifications WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut *transaction)
                .await?;
            sqlx::query(
                "DELETE FROM deliveries WHERE webhook_id IN (
                 SELECT webhook_id FROM deliveries WHERE received_at < $1
                 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(before_ms)
            .bind(limit as i64)
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
            Ok(ids.len())
        }
        .await
    )
}

pub(super) async fn record_file(
    pool: &PgPool,
    file: &ImportedFile,
    exceptions: &[DnbException],
    now: i64,
) -> Result<(), JournalError> {
    let mut transaction = pool.begin().await?;
    sqlx::query(
        "INSERT INTO imported_files (name, sha256, kind, lines_committed, accepted, duplicates,
                                     rejected, started_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name, sha256) DO UPDATE SET
            kind = excluded.kind, lines_committed = excluded.lines_committed,
            accepted = excluded.accepted, duplicates = excluded.duplicates,
            rejected = excluded.rejected, finished_at = excluded.finished_at",
    )
    .bind(&file.name)
    .bind(&file.sha256)
    .bind(&file.kind)
    .bind(file.lines_committed as i64)
    .bind(file.accepted as i64)
    .bind(file.duplicates as i64)
    .bind(file.rejected as i64)
    .bind(file.started_at_ms)
    .bind(file.finished_at_ms)
    .execute(&mut *transaction)
    .await?;
    if !exceptions.is_empty() {
        sqlx::query(
            "INSERT INTO dnb_exceptions (file_name, line, duns, code, information, recorded_at)
             SELECT file_name, line, duns, code, information, $6
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
                  AS e (file_name, line, duns, code, information)
             ON CONFLICT (file_name, line) DO NOTHING",
        )
        .bind(
            exceptions
                .iter()
                .map(|e| e.file_name.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(exceptions.iter().map(|e| e.line as i64).collect::<Vec<_>>())
        .bind(
            exceptions
                .iter()
                .map(|e| e.duns.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            exceptions
                .iter()
                .map(|e| e.code.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            exceptions
                .iter()
                .map(|e| e.information.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .execute(&mut *transaction)
        .await?;
    }
    transaction.commit().await?;
    Ok(())
}

pub(super) async fn oldest_claimable_received_ms(
    pool: &PgPool,
    now: i64,
) -> Result<Option<i64>, JournalError> {
    let expired: Option<i64> = sqlx::query_scalar(
        "SELECT min(received_at) FROM notifications WHERE status = 'processing' AND lease_until <= $1",
    )
    .bind(now)
    .fetch_one(pool)
    .await?;
    if expired.is_some() {
        return Ok(expired);
    }
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT n.received_at FROM notifications AS n WHERE {CLAIMABLE}
         ORDER BY n.received_at, n.id LIMIT 1"
    )))
    .bind(now)
    .fetch_optional(pool)
    .await?)
}
