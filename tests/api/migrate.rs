//! `migrate-journal`: a real SQLite journal, written through the `Journal` trait, copied by
//! the built binary into a fresh PostgreSQL schema and compared table by table.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dnb_hubspot_bridge::config::StorageSettings;
use dnb_hubspot_bridge::dnb::{BodyFormat, parse_body};
use dnb_hubspot_bridge::journal::{
    self, ActionRecord, ActionState, Claimed, Completion, DeadReason, Delivery, DnbException,
    ImportedFile, Outcome, PullCheckpoint, SkipReason, now_ms,
};
use rusqlite::types::Value;
use serde_json::json;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Row};

use crate::helpers::*;
use crate::postgres;

const LEASE: Duration = Duration::from_secs(600);

/// Builds a SQLite journal at `dir/journal.db` holding `count` notifications from a D&B
/// delivery (done with actions, done in dry-run and replayed, skipped, waiting for a retry,
/// dead and still claimed, in turn), two rejected items, three notifications never claimed,
/// two registrations, two imported files with their exceptions, and the probe's meta row.
async fn sqlite_journal(dir: &Path, count: usize) -> PathBuf {
    let path = dir.join("journal.db");
    let settings = StorageSettings {
        url: format!("sqlite://{}", path.display()),
        ..StorageSettings::default()
    };
    let journal = journal::connect(&settings).await.unwrap();

    let mut items: Vec<serde_json::Value> = (0..count)
        .map(|index| {
            let kind = ["UPDATE", "DELETE", "TRANSFER", "EXIT"][index % 4];
            notification(kind, &duns(index), "2024-05-13T08:00:00Z")
        })
        .collect();
    items.push(json!({"type": "UPDATE", "deliveryTimeStamp": "2024-05-13T08:00:00Z"}));
    items.push(notification("DELETE", "12345", "2024-05-13T08:00:00Z"));
    let body = serde_json::to_vec(&json!({"notifications": items})).unwrap();
    let outcome = journal
        .append(Delivery {
            webhook_id: "page-1".into(),
            received_at: chrono::Utc::now(),
            items: parse_body(BodyFormat::Json, &body).unwrap(),
            checkpoint: Some(PullCheckpoint {
                registration: "reg-1".into(),
                delivered_at_ms: Some(1_715_587_200_000),
                succeeded_at_ms: Some(now_ms()),
                transaction_id: Some("page-1".into()),
                in_flight: false,
            }),
        })
        .await
        .unwrap();
    assert_eq!(outcome.accepted(), count);

    let mut claimed: Vec<Claimed> = Vec::new();
    loop {
        let batch = journal.claim("worker-a", 1000, LEASE).await.unwrap();
        if batch.is_empty() {
            break;
        }
        claimed.extend(batch);
    }
    assert_eq!(claimed.len(), count);
    let mut replayed = Vec::new();
    for (index, notification) in claimed.iter().enumerate() {
        let started_at_ms = now_ms();
        let (outcome, actions) = match index % 6 {
            0 => (
                Outcome::Done { dry_run: false },
                vec![
                    action(
                        "update_company",
                        ActionState::Done,
                        json!({"duns": notification.duns, "company": format!("c-{index}")}),
                    ),
                    action(
                        "create_task",
                        ActionState::Done,
                        json!({"company": format!("c-{index}"), "subject": "Check – «é»"}),
                    ),
                ],
            ),
            1 => (
                Outcome::Skipped {
                    reason: SkipReason::NoCompany,
                },
                Vec::new(),
            ),
            2 => (
                Outcome::Retry {
                    error: "HubSpot answered 500".into(),
                    next_attempt_at_ms: started_at_ms + 3_600_000,
                    first_failed_at_ms: started_at_ms,
                },
                vec![action(
                    "create_task",
                    ActionState::Unknown,
                    json!({"company": "c-unknown"}),
                )],
            ),
            3 => (
                Outcome::Dead {
                    reason: DeadReason::Invalid,
                    error: "HubSpot refused the input".into(),
                },
                Vec::new(),
            ),
            4 => continue,
            _ => {
                replayed.push(notification.id);
                (
                    Outcome::Done { dry_run: true },
                    vec![action(
                        "create_note",
                        ActionState::Planned,
                        json!({"body": "planned"}),
                    )],
                )
            }
        };
        journal
            .complete(
                "worker-a",
                notification.claim,
                vec![Completion {
                    id: notification.id,
                    started_at_ms,
                    outcome,
                    actions,
                }],
            )
            .await
            .unwrap();
    }
    journal.replay(replayed, false).await.unwrap();

    let later = serde_json::to_vec(&json!([
        notification("UPDATE", "900000001", "2024-05-14T08:00:00Z"),
        notification("UPDATE", "900000002", "2024-05-14T08:00:00Z"),
        notification("EXIT", "900000003", "2024-05-14T08:00:00Z"),
    ]))
    .unwrap();
    journal
        .append(Delivery {
            webhook_id: new_webhook_id(),
            received_at: chrono::Utc::now(),
            items: parse_body(BodyFormat::Json, &later).unwrap(),
            checkpoint: None,
        })
        .await
        .unwrap();
    journal
        .update_registration(PullCheckpoint {
            registration: "reg-2".into(),
            delivered_at_ms: None,
            succeeded_at_ms: None,
            transaction_id: None,
            in_flight: true,
        })
        .await
        .unwrap();
    for (name, lines) in [("EXCEPTIONS_A.txt", 3), ("EXCEPTIONS_B.txt", 2)] {
        let exceptions = (0..lines)
            .map(|line| DnbException {
                id: 0,
                file_name: name.into(),
                line: line + 2,
                duns: duns(line as usize),
                code: "10001".into(),
                information: "DUNS not found".into(),
                recorded_at_ms: now_ms(),
            })
            .collect();
        journal
            .record_imported_file(
                ImportedFile {
                    name: name.into(),
                    sha256: format!("{:064x}", lines),
                    kind: "exceptions".into(),
                    lines_committed: lines + 1,
                    accepted: 0,
                    duplicates: 0,
                    rejected: 0,
                    started_at_ms: now_ms(),
                    finished_at_ms: Some(now_ms()),
                },
                exceptions,
            )
            .await
            .unwrap();
    }
    journal.check_writable().await.unwrap();
    journal.close().await;
    path
}

fn duns(index: usize) -> String {
    format!("{:09}", 100_000_000 + index)
}

fn action(kind: &str, state: ActionState, detail: serde_json::Value) -> ActionRecord {
    ActionRecord {
        key: kind.into(),
        kind: kind.into(),
        state,
        object_type: Some("companies".into()),
        object_id: (state == ActionState::Done).then(|| "4242".into()),
        detail: detail.to_string(),
    }
}

/// Runs `migrate-journal` with `extra` arguments.
async fn migrate(from: &Path, to: &str, extra: &[&str]) -> Output {
    let work = tempfile::tempdir().unwrap();
    let from = format!("sqlite://{}", from.display());
    tokio::process::Command::new(env!("CARGO_BIN_EXE_dnb-hubspot-bridge"))
        .args(["migrate-journal", "--from", &from, "--to", to])
        .args(extra)
        .current_dir(work.path())
        .env_remove("BRIDGE_CONFIG")
        .env_remove("BRIDGE_MIGRATE_TO")
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The summary line of `table`: rows in SQLite, copied now, already there, in PostgreSQL.
fn summary(stdout: &str, table: &str) -> [u64; 4] {
    let line = stdout
        .lines()
        .find(|line| line.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no summary line for {table} in\n{stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|number| number.parse().unwrap())
        .collect();
    numbers.try_into().unwrap()
}

async fn connect(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

type Rows = Vec<Vec<Option<String>>>;

/// Each table as the SQLite journal holds it (with `processing` notifications as they must
/// arrive) and as PostgreSQL holds it, every value as text, in key order.
const TABLES: &[(&str, &str, &str)] = &[
    (
        "notifications",
        "SELECT id, CASE status WHEN 'processing' THEN 'pending' ELSE status END, reason, type,
                duns, delivered_at, received_at, webhook_id, item_index, content_hash, raw,
                attempts, next_attempt_at, first_failed_at, last_error,
                CASE status WHEN 'processing' THEN NULL ELSE claimed_by END, dry_run, updated_at
         FROM notifications ORDER BY id",
        "SELECT id::text, status, reason, type, duns, delivered_at::text, received_at::text,
                webhook_id, item_index::text, encode(content_hash, 'hex'), raw, attempts::text,
                next_attempt_at::text, first_failed_at::text, last_error, claimed_by,
                dry_run::int::text, updated_at::text
         FROM notifications ORDER BY notifications.id",
    ),
    (
        "attempts",
        "SELECT id, notification_id, started_at, finished_at, worker, outcome, error
         FROM attempts ORDER BY id",
        "SELECT id::text, notification_id::text, started_at::text, finished_at::text, worker,
                outcome, error
         FROM attempts ORDER BY attempts.id",
    ),
    (
        "actions",
        "SELECT id, notification_id, action_key, kind, state, object_type, object_id, detail,
                created_at, updated_at
         FROM actions ORDER BY id",
        "SELECT id::text, notification_id::text, action_key, kind, state, object_type,
                object_id, detail, created_at::text, updated_at::text
         FROM actions ORDER BY actions.id",
    ),
    (
        "replays",
        "SELECT id, notification_id, replayed_at, previous_status FROM replays ORDER BY id",
        "SELECT id::text, notification_id::text, replayed_at::text, previous_status
         FROM replays ORDER BY replays.id",
    ),
    (
        "deliveries",
        "SELECT webhook_id, received_at, result FROM deliveries ORDER BY webhook_id",
        "SELECT webhook_id, received_at::text, result FROM deliveries
         ORDER BY webhook_id COLLATE \"C\"",
    ),
    (
        "meta",
        "SELECT key, value FROM meta ORDER BY key",
        "SELECT key, value FROM meta ORDER BY key COLLATE \"C\"",
    ),
    (
        "registrations",
        "SELECT reference, last_delivered_at, last_success_at, last_transaction_id, in_flight,
                updated_at
         FROM registrations ORDER BY reference",
        "SELECT reference, last_delivered_at::text, last_success_at::text, last_transaction_id,
                in_flight::int::text, updated_at::text
         FROM registrations ORDER BY reference COLLATE \"C\"",
    ),
    (
        "imported_files",
        "SELECT name, sha256, kind, lines_committed, accepted, duplicates, rejected, started_at,
                finished_at
         FROM imported_files ORDER BY name, sha256",
        "SELECT name, sha256, kind, lines_committed::text, accepted::text, duplicates::text,
                rejected::text, started_at::text, finished_at::text
         FROM imported_files ORDER BY name COLLATE \"C\", sha256 COLLATE \"C\"",
    ),
    (
        "dnb_exceptions",
        "SELECT id, file_name, line, duns, code, information, recorded_at
         FROM dnb_exceptions ORDER BY id",
        "SELECT id::text, file_name, line::text, duns, code, information, recorded_at::text
         FROM dnb_exceptions ORDER BY dnb_exceptions.id",
    ),
];

fn sqlite_rows(path: &Path, sql: &str) -> Rows {
    let connection = open_read_only(path);
    let mut statement = connection.prepare(sql).unwrap();
    let width = statement.column_count();
    statement
        .query_map([], |row| {
            (0..width)
                .map(|index| {
                    Ok(match row.get::<_, Value>(index)? {
                        Value::Null => None,
                        Value::Integer(number) => Some(number.to_string()),
                        Value::Real(number) => Some(number.to_string()),
                        Value::Text(text) => Some(text),
                        Value::Blob(bytes) => {
                            Some(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
                        }
                    })
                })
                .collect()
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

async fn postgres_rows(pool: &PgPool, sql: &str) -> Rows {
    sqlx::query(AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (0..row.len())
                .map(|index| row.try_get::<Option<String>, _>(index).unwrap())
                .collect()
        })
        .collect()
}

/// Every table of the PostgreSQL journal.
async fn postgres_dump(pool: &PgPool) -> Vec<Rows> {
    let mut dump = Vec::new();
    for (_, _, sql) in TABLES {
        dump.push(postgres_rows(pool, sql).await);
    }
    dump
}

/// Asserts PostgreSQL holds exactly what the SQLite journal does, table by table.
async fn assert_same(path: &Path, pool: &PgPool) {
    for (table, sqlite, postgres) in TABLES {
        let expected = sqlite_rows(path, sqlite);
        assert!(!expected.is_empty(), "the fixture has {table} rows");
        let found = postgres_rows(pool, postgres).await;
        assert_eq!(found.len(), expected.len(), "{table}: row count");
        for (found, expected) in found.iter().zip(&expected) {
            assert_eq!(found, expected, "{table}");
        }
    }
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT s.status, (SELECT count(*) FROM notifications n WHERE n.status = s.status),
                s.n + COALESCE((SELECT sum(c.n) FROM status_count_changes c
                                WHERE c.status = s.status), 0)::bigint
         FROM status_counts s",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(counts.len(), 6);
    for (status, rows, counted) in counts {
        assert_eq!(rows, counted, "status_counts for {status}");
    }
    let (changes,): (i64,) = sqlx::query_as("SELECT count(*) FROM status_count_changes")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        changes, 0,
        "the copy's status changes are folded into status_counts"
    );
    let (claims,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM notifications
         WHERE status = 'processing' OR lease_until IS NOT NULL OR claim_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(claims, 0, "no claim survives the move");
}

fn sqlite_count(path: &Path, sql: &str) -> i64 {
    open_read_only(path)
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn migration_copies_every_record_and_a_second_run_is_a_no_op() {
    let Some(url) =
        postgres::fresh_url("migration_copies_every_record_and_a_second_run_is_a_no_op").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_journal(dir.path(), 30).await;
    for (status, expected) in [
        ("done", 5),
        ("skipped", 5),
        ("dead", 5),
        ("processing", 5),
        ("rejected", 2),
        // Retries, replayed ones and the three never claimed.
        ("pending", 13),
    ] {
        assert_eq!(
            sqlite_count(
                &path,
                &format!("SELECT count(*) FROM notifications WHERE status = '{status}'")
            ),
            expected,
            "{status} notifications in the fixture"
        );
    }

    // Chunks of one row walk every table, text keys included, chunk by chunk.
    let output = migrate(&path, &url, &["--chunk-size", "1"]).await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("counts verified"), "{stdout}");
    assert_eq!(summary(&stdout, "notifications"), [35, 35, 0, 35]);
    assert_eq!(summary(&stdout, "registrations"), [2, 2, 0, 2]);
    assert_eq!(summary(&stdout, "imported_files"), [2, 2, 0, 2]);
    assert_eq!(summary(&stdout, "dnb_exceptions"), [5, 5, 0, 5]);

    let pool = connect(&url).await;
    assert_same(&path, &pool).await;
    let before = postgres_dump(&pool).await;

    let again = migrate(&path, &url, &[]).await;
    let stdout = text(&again.stdout);
    assert!(again.status.success(), "{stdout}\n{}", text(&again.stderr));
    assert!(stdout.contains("nothing to copy"), "{stdout}");
    for (table, _, _) in TABLES {
        let [sqlite, copied, already, postgres] = summary(&stdout, table);
        assert_eq!(copied, 0, "{table}");
        assert_eq!((already, postgres), (sqlite, sqlite), "{table}");
    }
    assert_eq!(
        postgres_dump(&pool).await,
        before,
        "the second run changed nothing"
    );

    // New rows get ids past the copied ones.
    let copied_max = sqlite_count(&path, "SELECT max(id) FROM notifications");
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO notifications (status, received_at, webhook_id, item_index, raw, updated_at)
         VALUES ('pending', 0, 'after-the-move', 0, '{}', 0) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(id > copied_max, "{id} > {copied_max}");
    for (table, insert) in [
        (
            "attempts",
            "INSERT INTO attempts (notification_id, started_at, finished_at, worker, outcome)
             VALUES (1, 0, 0, 'w', 'done') RETURNING id",
        ),
        (
            "actions",
            "INSERT INTO actions (notification_id, action_key, kind, state, detail, created_at,
                                  updated_at)
             VALUES (1, 'new', 'create_task', 'done', '{}', 0, 0) RETURNING id",
        ),
        (
            "replays",
            "INSERT INTO replays (notification_id, replayed_at, previous_status)
             VALUES (1, 0, 'done') RETURNING id",
        ),
        (
            "dnb_exceptions",
            "INSERT INTO dnb_exceptions (file_name, line, duns, code, information, recorded_at)
             VALUES ('new', 1, '1', 'c', 'i', 0) RETURNING id",
        ),
    ] {
        let copied_max = sqlite_count(&path, &format!("SELECT max(id) FROM {table}"));
        let (id,): (i64,) = sqlx::query_as(AssertSqlSafe(insert))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(id > copied_max, "{table}: {id} > {copied_max}");
    }
}

#[tokio::test]
async fn an_interrupted_migration_resumes_and_completes() {
    let Some(url) = postgres::fresh_url("an_interrupted_migration_resumes_and_completes").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_journal(dir.path(), 120).await;

    let stopped = migrate(&path, &url, &["--chunk-size", "40", "--max-chunks", "2"]).await;
    let stdout = text(&stopped.stdout);
    assert_eq!(stopped.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("run again"), "{stdout}");
    assert_eq!(summary(&stdout, "notifications"), [125, 80, 0, 80]);
    let pool = connect(&url).await;
    let (notifications, attempts): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications), (SELECT count(*) FROM attempts)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((notifications, attempts), (80, 0));

    let resumed = migrate(&path, &url, &["--chunk-size", "40"]).await;
    let stdout = text(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}\n{}",
        text(&resumed.stderr)
    );
    assert_eq!(summary(&stdout, "notifications"), [125, 45, 80, 125]);
    let attempts = sqlite_count(&path, "SELECT count(*) FROM attempts") as u64;
    assert_eq!(
        summary(&stdout, "attempts"),
        [attempts, attempts, 0, attempts]
    );
    assert_same(&path, &pool).await;
}

#[tokio::test]
async fn a_journal_not_at_the_latest_schema_is_refused() {
    let Some(url) = postgres::fresh_url("a_journal_not_at_the_latest_schema_is_refused").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_journal(dir.path(), 6).await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 8)
        .unwrap();

    let output = migrate(&path, &url, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("schema version 8"), "{stderr}");
    assert!(stderr.contains("nothing was written"), "{stderr}");
    let pool = connect(&url).await;
    let (tables,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tables, 0, "not even the schema was created");
}

#[tokio::test]
async fn a_postgres_journal_holding_other_notifications_is_refused() {
    let Some(url) =
        postgres::fresh_url("a_postgres_journal_holding_other_notifications_is_refused").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_journal(dir.path(), 6).await;
    let pool = journal::postgres::pool(&url, 2).await.unwrap();
    sqlx::query(
        "INSERT INTO notifications (id, status, received_at, webhook_id, item_index, raw, updated_at)
         VALUES (3, 'pending', 0, 'from-another-journal', 0, '{}', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let output = migrate(&path, &url, &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("holds 1 notification(s) that are not in"),
        "{stderr}"
    );
    assert!(stderr.contains("id 3"), "{stderr}");
    let (notifications, deliveries): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM notifications), (SELECT count(*) FROM deliveries)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((notifications, deliveries), (1, 0), "nothing was copied");
}

#[tokio::test]
async fn a_row_whose_key_is_taken_is_a_mismatch() {
    let Some(url) = postgres::fresh_url("a_row_whose_key_is_taken_is_a_mismatch").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = sqlite_journal(dir.path(), 6).await;
    let pool = journal::postgres::pool(&url, 2).await.unwrap();
    // An attempt under the id of the SQLite journal's first, for another notification.
    sqlx::query(
        "INSERT INTO attempts (id, notification_id, started_at, finished_at, worker, outcome)
         VALUES (1, 999, 0, 0, 'elsewhere', 'done')",
    )
    .execute(&pool)
    .await
    .unwrap();

    let output = migrate(&path, &url, &[]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("mismatch: attempts: 1 row(s) not copied"),
        "{stderr}"
    );
    assert!(stderr.contains("not verified"), "{stderr}");
    let attempts = sqlite_count(&path, "SELECT count(*) FROM attempts") as u64;
    assert_eq!(
        summary(&stdout, "attempts"),
        [attempts, attempts - 1, 0, attempts]
    );
    assert!(!stdout.contains("counts verified"), "{stdout}");
}
