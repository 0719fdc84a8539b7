//! The PostgreSQL server the tests share: 127.0.0.1:5432 (trust auth, database `test`) unless
//! `BRIDGE_TEST_POSTGRES_URL` names another. Each test gets a schema of its own, named in the
//! URL it is handed (`search_path`), so tests run in parallel without seeing each other.
//!
//! When no server answers, the tests that need one are skipped with a notice; under `CI=true`
//! its absence is a failure instead.

use sqlx::Connection;

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
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
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
