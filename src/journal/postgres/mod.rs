//! PostgreSQL backend: one journal shared by several `serve` processes.
//!
//! Every operation is a short transaction on a pooled connection; none is held open across a
//! HubSpot call. What the SQLite backend gets from being the only writer, this one gets from
//! the database: unique constraints deduplicate deliveries and content across processes, a
//! claim's hold on a DUNS is a row in `duns_claims` (one per DUNS, by its primary key), claim
//! ids come from a sequence and fence every outcome write, and `NOTIFY` wakes the workers of
//! every process when work arrives.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::JournalError;

/// The schema, versioned by sqlx's migrator (its `_sqlx_migrations` table).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long taking a connection from the pool may wait.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

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
