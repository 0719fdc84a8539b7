//! `migrate-journal`: copies a SQLite journal into a PostgreSQL one.
//!
//! The SQLite file is opened read-only and read in one transaction (one consistent snapshot);
//! the service should be stopped first. Every table is copied in id order, in chunks, each
//! chunk one `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO NOTHING` statement (so its own
//! transaction): a run that stops part-way leaves whole chunks behind, and the next run finds
//! them already there and copies the rest. The same statement counts the chunk's rows the
//! target already held under the same key, so every SQLite row is accounted for as copied
//! now or already there; a row that is neither (its key taken by a different row) is a
//! mismatch. Afterwards the identity sequences move past the copied ids, the status changes
//! the inserts' triggers appended are folded into `status_counts`, and the counts are
//! verified: rows per table, notifications per status, and the `status_counts` totals.
//!
//! Claims do not survive the move: notifications `processing` in SQLite arrive `pending`,
//! with no claim, lease or worker, as a restart of the SQLite service would leave them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use sqlx::PgPool;

use crate::cli::MigrateJournalArgs;
use crate::journal;

/// The SQLite schema version the copy is written for: the number of migrations in
/// `migrations/sqlite`, which `rusqlite_migration` keeps in the `user_version` pragma.
pub const SQLITE_SCHEMA_VERSION: i64 = 9;

/// Connections to PostgreSQL: the copy runs one statement at a time.
const MAX_CONNECTIONS: u32 = 2;

/// How a column travels: read from SQLite as this, sent to PostgreSQL as an array of it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// INTEGER → BIGINT (or INTEGER).
    Int,
    /// TEXT → TEXT.
    Text,
    /// INTEGER 0/1 → BOOLEAN.
    Bool,
    /// BLOB → BYTEA.
    Bytes,
}

impl Kind {
    fn array_type(self) -> &'static str {
        match self {
            Self::Int => "bigint[]",
            Self::Text => "text[]",
            Self::Bool => "boolean[]",
            Self::Bytes => "bytea[]",
        }
    }
}

/// A PostgreSQL column and the SQLite expression it is filled from.
struct Column {
    name: &'static str,
    sqlite: &'static str,
    kind: Kind,
}

const fn column(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        sqlite: name,
        kind,
    }
}

/// One table to copy.
struct Table {
    name: &'static str,
    columns: &'static [Column],
    /// SQLite columns the copy walks the table by (unique, in this order).
    order: &'static [&'static str],
    /// PostgreSQL columns that identify a row already there as this one (unique there).
    same: &'static [&'static str],
    /// Whether its `id` is an identity column whose sequence must follow the copied ids.
    identity: bool,
}

const NOTIFICATIONS: Table = Table {
    name: "notifications",
    columns: &[
        column("id", Kind::Int),
        Column {
            name: "status",
            sqlite: "CASE status WHEN 'processing' THEN 'pending' ELSE status END",
            kind: Kind::Text,
        },
        column("reason", Kind::Text),
        column("type", Kind::Text),
        column("duns", Kind::Text),
        column("delivered_at", Kind::Int),
        column("received_at", Kind::Int),
        column("webhook_id", Kind::Text),
        column("item_index", Kind::Int),
        column("content_hash", Kind::Bytes),
        column("raw", Kind::Text),
        column("attempts", Kind::Int),
        column("next_attempt_at", Kind::Int),
        column("first_failed_at", Kind::Int),
        column("last_error", Kind::Text),
        Column {
            name: "claimed_by",
            sqlite: "CASE status WHEN 'processing' THEN NULL ELSE claimed_by END",
            kind: Kind::Text,
        },
        // Leases and claim ids belong to the SQLite journal's claims, which end here.
        Column {
            name: "lease_until",
            sqlite: "NULL",
            kind: Kind::Int,
        },
        Column {
            name: "claim_id",
            sqlite: "NULL",
            kind: Kind::Int,
        },
        column("dry_run", Kind::Bool),
        column("updated_at", Kind::Int),
    ],
    order: &["id"],
    same: &["id", "webhook_id", "item_index"],
    identity: true,
};

const ATTEMPTS: Table = Table {
    name: "attempts",
    columns: &[
        column("id", Kind::Int),
        column("notification_id", Kind::Int),
        column("started_at", Kind::Int),
        column("finished_at", Kind::Int),
        column("worker", Kind::Text),
        column("outcome", Kind::Text),
        column("error", Kind::Text),
    ],
    order: &["id"],
    same: &["id", "notification_id", "started_at"],
    identity: true,
};

const ACTIONS: Table = Table {
    name: "actions",
    columns: &[
        column("id", Kind::Int),
        column("notification_id", Kind::Int),
        column("action_key", Kind::Text),
        column("kind", Kind::Text),
        column("state", Kind::Text),
        column("object_type", Kind::Text),
        column("object_id", Kind::Text),
        column("detail", Kind::Text),
        column("created_at", Kind::Int),
        column("updated_at", Kind::Int),
    ],
    order: &["id"],
    same: &["id", "notification_id", "action_key"],
    identity: true,
};

const REPLAYS: Table = Table {
    name: "replays",
    columns: &[
        column("id", Kind::Int),
        column("notification_id", Kind::Int),
        column("replayed_at", Kind::Int),
        column("previous_status", Kind::Text),
    ],
    order: &["id"],
    same: &["id", "notification_id", "replayed_at"],
    identity: true,
};

/// SQLite keeps deliveries in arrival order under an integer id; PostgreSQL keys them by
/// webhook-id and has no such column.
const DELIVERIES: Table = Table {
    name: "deliveries",
    columns: &[
        column("webhook_id", Kind::Text),
        column("received_at", Kind::Int),
        column("result", Kind::Text),
    ],
    order: &["id"],
    same: &["webhook_id"],
    identity: false,
};

const META: Table = Table {
    name: "meta",
    columns: &[column("key", Kind::Text), column("value", Kind::Text)],
    order: &["key"],
    same: &["key"],
    identity: false,
};

const REGISTRATIONS: Table = Table {
    name: "registrations",
    columns: &[
        column("reference", Kind::Text),
        column("last_delivered_at", Kind::Int),
        column("last_success_at", Kind::Int),
        column("last_transaction_id", Kind::Text),
        column("in_flight", Kind::Bool),
        column("updated_at", Kind::Int),
    ],
    order: &["reference"],
    same: &["reference"],
    identity: false,
};

const IMPORTED_FILES: Table = Table {
    name: "imported_files",
    columns: &[
        column("name", Kind::Text),
        column("sha256", Kind::Text),
        column("kind", Kind::Text),
        column("lines_committed", Kind::Int),
        column("accepted", Kind::Int),
        column("duplicates", Kind::Int),
        column("rejected", Kind::Int),
        column("started_at", Kind::Int),
        column("finished_at", Kind::Int),
    ],
    order: &["name", "sha256"],
    same: &["name", "sha256"],
    identity: false,
};

const DNB_EXCEPTIONS: Table = Table {
    name: "dnb_exceptions",
    columns: &[
        column("id", Kind::Int),
        column("file_name", Kind::Text),
        column("line", Kind::Int),
        column("duns", Kind::Text),
        column("code", Kind::Text),
        column("information", Kind::Text),
        column("recorded_at", Kind::Int),
    ],
    order: &["id"],
    same: &["id", "file_name", "line"],
    identity: true,
};

/// Every journal table, notifications first.
const TABLES: [&Table; 9] = [
    &NOTIFICATIONS,
    &ATTEMPTS,
    &ACTIONS,
    &REPLAYS,
    &DELIVERIES,
    &META,
    &REGISTRATIONS,
    &IMPORTED_FILES,
    &DNB_EXCEPTIONS,
];

/// One column of a chunk, as the array bound to PostgreSQL.
enum Values {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<bool>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind, capacity: usize) -> Self {
        match kind {
            Kind::Int => Self::Int(Vec::with_capacity(capacity)),
            Kind::Text => Self::Text(Vec::with_capacity(capacity)),
            Kind::Bool => Self::Bool(Vec::with_capacity(capacity)),
            Kind::Bytes => Self::Bytes(Vec::with_capacity(capacity)),
        }
    }

    fn push(&mut self, row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<()> {
        match self {
            Self::Int(values) => values.push(row.get(index)?),
            Self::Text(values) => values.push(row.get(index)?),
            Self::Bool(values) => values.push(row.get::<_, i64>(index)? != 0),
            Self::Bytes(values) => values.push(row.get(index)?),
        }
        Ok(())
    }
}

/// What became of one table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct TableReport {
    /// Rows in the SQLite file.
    sqlite: u64,
    /// Rows inserted by this run.
    copied: u64,
    /// Rows the target already held (an earlier run copied them).
    already: u64,
    /// Rows whose key the target holds for a different row, or that could not be inserted.
    conflicting: u64,
    /// Rows in the target afterwards.
    postgres: u64,
}

/// Runs the migration and prints a summary per table.
pub async fn run(args: MigrateJournalArgs) -> anyhow::Result<ExitCode> {
    if args.chunk_size == 0 {
        bail!("--chunk-size must be at least 1");
    }
    let path = args
        .from
        .strip_prefix("sqlite://")
        .filter(|path| !path.is_empty())
        .with_context(|| format!("--from must be a sqlite:// url, not {}", args.from))?;
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// url");
    }
    let sqlite = open_sqlite(Path::new(path))?;
    // One read transaction: every table is read from the same snapshot.
    sqlite.execute_batch("BEGIN")?;
    let pool = journal::postgres::pool(&args.to, MAX_CONNECTIONS)
        .await
        .context("cannot open the PostgreSQL journal")?;

    let foreign = foreign_notifications(&sqlite, &pool, args.chunk_size).await?;
    if let Some((count, first)) = foreign {
        bail!(
            "the PostgreSQL journal holds {count} notification(s) that are not in {path} \
             (the first: id {first}); migrate into a new, empty journal"
        );
    }

    let mut chunks_left = args.max_chunks;
    let mut reports = Vec::new();
    let mut stopped = false;
    for table in TABLES {
        let report = copy_table(&sqlite, &pool, table, args.chunk_size, &mut chunks_left).await?;
        reports.push((table.name, report));
        if chunks_left == Some(0) {
            stopped = true;
            break;
        }
    }

    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10}",
        "table", "sqlite", "copied", "already", "postgres"
    );
    for (name, report) in &reports {
        println!(
            "{:<16} {:>10} {:>10} {:>10} {:>10}",
            name, report.sqlite, report.copied, report.already, report.postgres
        );
    }
    let copied: u64 = reports.iter().map(|(_, report)| report.copied).sum();
    if stopped {
        println!(
            "stopped after {} chunk(s) (--max-chunks); run again to copy the rest",
            { args.max_chunks.unwrap_or_default() }
        );
        return Ok(ExitCode::from(3));
    }

    advance_sequences(&pool).await?;
    fold_status_changes(&pool).await?;

    let mut problems = Vec::new();
    for (name, report) in &reports {
        if report.conflicting > 0 {
            problems.push(format!(
                "{name}: {} row(s) not copied: the PostgreSQL journal holds their key for a different row",
                report.conflicting
            ));
        }
        if report.sqlite != report.postgres {
            problems.push(format!(
                "{name}: {} row(s) in SQLite, {} in PostgreSQL",
                report.sqlite, report.postgres
            ));
        }
    }
    problems.extend(check_statuses(&sqlite, &pool).await?);
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("mismatch: {problem}");
        }
        eprintln!("the migration is not verified");
        return Ok(ExitCode::FAILURE);
    }
    if copied == 0 {
        println!(
            "nothing to copy: the PostgreSQL journal already holds everything; counts verified"
        );
    } else {
        println!("copied {copied} row(s); counts verified");
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the SQLite journal read-only and checks it is at the schema this copy knows.
fn open_sqlite(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        bail!("no SQLite journal at {}", path.display());
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} read-only", path.display()))?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .with_context(|| format!("cannot read {}", path.display()))?;
    if version != SQLITE_SCHEMA_VERSION {
        bail!(
            "{} is at journal schema version {version}, this build copies version \
             {SQLITE_SCHEMA_VERSION}: open it once with this build's `serve` (which migrates it), \
             stop the service, then migrate; nothing was written",
            path.display()
        );
    }
    Ok(connection)
}

/// Notifications in PostgreSQL that the SQLite file does not hold under the same id,
/// webhook-id and position: how many, and the first one's id.
async fn foreign_notifications(
    sqlite: &Connection,
    pool: &PgPool,
    chunk: usize,
) -> anyhow::Result<Option<(u64, i64)>> {
    let mut lookup =
        sqlite.prepare("SELECT webhook_id, item_index FROM notifications WHERE id = ?1")?;
    let mut after = i64::MIN;
    let mut foreign = 0u64;
    let mut first = None;
    loop {
        let rows: Vec<(i64, String, i32)> = sqlx::query_as(
            "SELECT id, webhook_id, item_index FROM notifications WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(chunk as i64)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.0;
        for (id, webhook_id, item_index) in rows {
            let here: Option<(String, i64)> = lookup
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                .map(Some)
                .or_else(|error| match error {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    error => Err(error),
                })?;
            if here != Some((webhook_id, i64::from(item_index))) {
                foreign += 1;
                first.get_or_insert(id);
            }
        }
    }
    Ok(first.map(|first| (foreign, first)))
}

/// Copies one table chunk by chunk; `chunks_left` (when set) counts down and stops the copy
/// at zero.
async fn copy_table(
    sqlite: &Connection,
    pool: &PgPool,
    table: &Table,
    chunk: usize,
    chunks_left: &mut Option<u64>,
) -> anyhow::Result<TableReport> {
    let mut report = TableReport {
        sqlite: sqlite.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |row| {
            row.get::<_, i64>(0)
        })? as u64,
        ..TableReport::default()
    };
    let bar = ProgressBar::with_draw_target(Some(report.sqlite), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:<16} {bar:40} {pos}/{len} rows ({eta})")
            .expect("valid template"),
    );
    bar.set_message(table.name);

    let selected: Vec<&str> = table.columns.iter().map(|column| column.sqlite).collect();
    let keys = table.order.join(", ");
    let select = |cursor: bool| {
        let placeholders: Vec<String> = (1..=table.order.len())
            .map(|index| format!("?{index}"))
            .collect();
        let filter = if cursor {
            format!("WHERE ({keys}) > ({})", placeholders.join(", "))
        } else {
            String::new()
        };
        format!(
            "SELECT {}, {keys} FROM {} {filter} ORDER BY {keys} LIMIT {chunk}",
            selected.join(", "),
            table.name
        )
    };
    let first_select = select(false);
    let next_select = select(true);
    let insert = insert_statement(table);

    let width = table.columns.len();
    let mut cursor: Option<Vec<Value>> = None;
    loop {
        if *chunks_left == Some(0) {
            break;
        }
        let mut columns: Vec<Values> = table
            .columns
            .iter()
            .map(|column| Values::new(column.kind, chunk))
            .collect();
        let mut statement = sqlite.prepare_cached(if cursor.is_some() {
            &next_select
        } else {
            &first_select
        })?;
        let mut rows = match &cursor {
            Some(values) => statement.query(rusqlite::params_from_iter(values.iter()))?,
            None => statement.query([])?,
        };
        let mut count = 0u64;
        let mut last = None;
        while let Some(row) = rows.next()? {
            for (index, values) in columns.iter_mut().enumerate() {
                values.push(row, index).with_context(|| {
                    format!(
                        "{}.{}: unexpected value",
                        table.name, table.columns[index].name
                    )
                })?;
            }
            last = Some(
                (0..table.order.len())
                    .map(|index| row.get::<_, Value>(width + index))
                    .collect::<rusqlite::Result<Vec<Value>>>()?,
            );
            count += 1;
        }
        drop(rows);
        drop(statement);
        if count == 0 {
            break;
        }
        cursor = last;

        let mut query = sqlx::query_as::<_, (i64, i64)>(sqlx::AssertSqlSafe(insert.as_str()));
        for values in columns {
            query = match values {
                Values::Int(values) => query.bind(values),
                Values::Text(values) => query.bind(values),
                Values::Bool(values) => query.bind(values),
                Values::Bytes(values) => query.bind(values),
            };
        }
        let (inserted, already) = query
            .fetch_one(pool)
            .await
            .with_context(|| format!("cannot copy a chunk of {}", table.name))?;
        report.copied += inserted as u64;
        report.already += already as u64;
        report.conflicting += count.saturating_sub((inserted + already) as u64);
        bar.inc(count);
        if let Some(left) = chunks_left {
            *left -= 1;
        }
    }
    bar.finish_and_clear();
    report.postgres = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        table.name
    )))
    .fetch_one(pool)
    .await? as u64;
    Ok(report)
}

/// One chunk's statement: inserts the rows the target lacks and answers how many it
/// inserted and how many it already held under the same key (counted in the snapshot before
/// the insert, so a row is never both).
fn insert_statement(table: &Table) -> String {
    let quoted = |name: &str| format!("\"{name}\"");
    let names: Vec<String> = table
        .columns
        .iter()
        .map(|column| quoted(column.name))
        .collect();
    let arrays: Vec<String> = table
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| format!("${}::{}", index + 1, column.kind.array_type()))
        .collect();
    let same: Vec<String> = table.same.iter().map(|name| quoted(name)).collect();
    let names = names.join(", ");
    format!(
        "WITH copied AS (SELECT * FROM UNNEST({arrays}) AS copied ({names})), \
         inserted AS (INSERT INTO {table} ({names}) SELECT {names} FROM copied \
                      ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT (SELECT count(*) FROM inserted), \
                (SELECT count(*) FROM copied JOIN {table} USING ({same}))",
        arrays = arrays.join(", "),
        table = table.name,
        same = same.join(", "),
    )
}

/// Moves each identity sequence to its table's greatest id, so the next row gets a new one.
async fn advance_sequences(pool: &PgPool) -> anyhow::Result<()> {
    for table in TABLES.iter().filter(|table| table.identity) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT setval(pg_get_serial_sequence('{0}', 'id'), max(id)) FROM {0} \
             HAVING max(id) IS NOT NULL",
            table.name
        )))
        .execute(pool)
        .await
        .with_context(|| format!("cannot move the id sequence of {}", table.name))?;
    }
    Ok(())
}

/// Folds the status changes the copy's inserts appended (a row per status and chunk) into
/// `status_counts`, in one statement, so the totals stand on their own.
async fn fold_status_changes(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "WITH folded AS (DELETE FROM status_count_changes RETURNING status, n)
         UPDATE status_counts s SET n = s.n + f.n
         FROM (SELECT status, sum(n)::bigint AS n FROM folded GROUP BY status) f
         WHERE s.status = f.status",
    )
    .execute(pool)
    .await
    .context("cannot fold the status counts")?;
    Ok(())
}

/// Notifications per status in both journals (SQLite's `processing` counted as `pending`),
/// and PostgreSQL's `status_counts` totals against its rows: the differences, worded.
async fn check_statuses(sqlite: &Connection, pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut statement = sqlite.prepare(
        "SELECT CASE status WHEN 'processing' THEN 'pending' ELSE status END, count(*)
         FROM notifications GROUP BY 1",
    )?;
    let source: BTreeMap<String, i64> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let target: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT s.status,
                (SELECT count(*) FROM notifications n WHERE n.status = s.status),
                s.n + COALESCE((SELECT sum(c.n) FROM status_count_changes c
                                WHERE c.status = s.status), 0)::bigint
         FROM status_counts s ORDER BY s.status",
    )
    .fetch_all(pool)
    .await?;
    let mut problems = Vec::new();
    for (status, rows, counted) in &target {
        let expected = source.get(status).copied().unwrap_or(0);
        if *rows != expected {
            problems.push(format!(
                "{expected} {status} notification(s) in SQLite, {rows} in PostgreSQL"
            ));
        }
        if rows != counted {
            problems.push(format!(
                "status_counts says {counted} {status} notification(s), the table holds {rows}"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_schema_version_is_the_sqlite_journals_latest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let settings = crate::config::StorageSettings {
            url: format!("sqlite://{}", path.display()),
            ..Default::default()
        };
        let journal = journal::connect(&settings).await.unwrap();
        journal.close().await;
        let connection = open_sqlite(&path).unwrap();
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN
                 ('notifications', 'attempts', 'actions', 'replays', 'deliveries', 'meta',
                  'registrations', 'imported_files', 'dnb_exceptions')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(tables, TABLES.len() as i64);
    }

    #[test]
    fn a_chunk_statement_binds_one_array_per_column() {
        let statement = insert_statement(&NOTIFICATIONS);
        assert!(statement.contains(&format!("${}::", NOTIFICATIONS.columns.len())));
        assert!(!statement.contains(&format!("${}::", NOTIFICATIONS.columns.len() + 1)));
        assert!(statement.contains("USING (\"id\", \"webhook_id\", \"item_index\")"));
    }
}
