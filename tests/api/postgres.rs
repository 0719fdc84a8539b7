//! The PostgreSQL server the tests share: 127.0.0.1:5432 (trust auth, database `test`) unless
//! `BRIDGE_TEST_POSTGRES_URL` names another. Each test gets a schema of its own, named in the
//! URL it is handed (`search_path`), so tests run in parallel without seeing each other.
//!
//! When no server answers, the tests that need one are skipped with a notice; under `CI=true`
//! its absence is a failure instead.

use sqlx::Connection;
use tokio::sync::OnceCell;

/// Set once the schemas of earlier runs were dropped by this process.
static CLEARED: OnceCell<()> = OnceCell::const_new();

/// The server's URL.
pub fn server_url() -> String {
    std::env::var("BRIDGE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false" && value != "0")
}

/// A URL whose connections work in a new, empty schema, or `None` (with a notice) when no
/// server answers outside CI.
pub async fn fresh_url(test: &str) -> Option<String> {
    let base = server_url();
    let mut connection = match sqlx::PgConnection::connect(&base).await {
        Ok(connection) => connection,
        Err(error) if !required() => {
            eprintln!("notice: {test} skipped: no PostgreSQL at {base} ({error})");
            return None;
        }
        Err(error) => panic!("CI=true and no PostgreSQL at {base}: {error}"),
    };
    let now = chrono::Utc::now().timestamp();
    CLEARED
        .get_or_init(|| async {
            // Schemas of earlier runs: each test's data stays for a look afterwards, for an hour.
            let old: Vec<String> = sqlx::query_scalar(
                "SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_[0-9a-f]+$'
                   AND split_part(nspname, '_', 2)::bigint < $1",
            )
            .bind(now - 3600)
            .fetch_all(&mut connection)
            .await
            .unwrap_or_default();
            for schema in old {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&mut connection)
                .await;
            }
        })
        .await;
    let schema = format!("t_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut connection)
        .await
        .expect("create a test schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}"
    ))
}

#[tokio::test]
async fn a_fresh_schema_is_migrated_and_empty() {
    let Some(url) = fresh_url("a_fresh_schema_is_migrated_and_empty").await else {
        return;
    };
    let pool = dnb_hubspot_bridge::journal::postgres::pool(&url, 2)
        .await
        .unwrap();
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM notifications")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let (schema,): (String,) = sqlx::query_as("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(schema.starts_with("t_"), "{schema}");
}
