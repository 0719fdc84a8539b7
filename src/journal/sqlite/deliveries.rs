//! Which deliveries the journal holds, by `webhook-id`, kept in memory by the writer.
//!
//! A redelivered `webhook-id` must be found among every delivery the journal keeps (the
//! retention window). A table keyed by `webhook-id` answers that, but ids are scattered,
//! so every request dirtied a page of its own in every commit (the largest single cost
//! of ingest with one notification per request). The table is kept in arrival order
//! instead, and the writer, the journal's only writer, maps a 64-bit hash of each
//! `webhook-id` to its row (about 24 bytes per delivery kept), read from the table when
//! it opens the journal and after any rolled-back transaction. A hash shared by two ids
//! is told apart by the id stored in the row.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use rusqlite::{Connection, OptionalExtension};

/// Delivery rows by the hash of their `webhook-id`.
#[derive(Default)]
pub(super) struct Deliveries {
    rows: HashMap<u64, i64>,
}

fn key(webhook_id: &str) -> u64 {
    // SipHash with fixed keys: stable for the life of the map, which is all it needs.
    let mut hasher = DefaultHasher::new();
    webhook_id.hash(&mut hasher);
    hasher.finish()
}

impl Deliveries {
    /// Reads every delivery record.
    pub(super) fn load(connection: &Connection) -> rusqlite::Result<Self> {
        let mut deliveries = Self::default();
        let mut statement = connection.prepare("SELECT id, webhook_id FROM deliveries")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            deliveries.insert(row.get_ref(1)?.as_str()?, row.get(0)?);
        }
        Ok(deliveries)
    }

    /// The stored result of the delivery with `webhook_id`, if the journal holds it.
    pub(super) fn find(
        &self,
        connection: &Connection,
        webhook_id: &str,
    ) -> rusqlite::Result<Option<String>> {
        let Some(row) = self.rows.get(&key(webhook_id)) else {
            return Ok(None);
        };
        let stored: Option<(String, String)> = connection
            .prepare_cached("SELECT webhook_id, result FROM deliveries WHERE id = ?1")?
            .query_row([row], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(stored.and_then(|(stored_id, result)| (stored_id == webhook_id).then_some(result)))
    }

    /// A delivery record was written as row `id`.
    pub(super) fn insert(&mut self, webhook_id: &str, id: i64) {
        if let Some(earlier) = self.rows.insert(key(webhook_id), id) {
            // Another id with the same hash: the newer one is found by id from now on, and
            // the older one's redeliveries still meet the content check.
            tracing::warn!(
                earlier_row = earlier,
                row = id,
                "two webhook-ids share a hash"
            );
        }
    }

    /// The record of `webhook_id` in row `id` was purged.
    pub(super) fn remove(&mut self, webhook_id: &str, id: i64) {
        let key = key(webhook_id);
        if self.rows.get(&key) == Some(&id) {
            self.rows.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, webhook_id TEXT, received_at INTEGER, result TEXT);
                 INSERT INTO deliveries VALUES (1, 'msg_a', 10, 'first'), (2, 'msg_b', 20, 'second');",
            )
            .unwrap();
        connection
    }

    #[test]
    fn a_held_webhook_id_is_found_with_its_result_and_others_are_not() {
        let connection = journal();
        let deliveries = Deliveries::load(&connection).unwrap();
        assert_eq!(
            deliveries.find(&connection, "msg_b").unwrap().as_deref(),
            Some("second")
        );
        assert_eq!(deliveries.find(&connection, "msg_c").unwrap(), None);
    }

    #[test]
    fn a_purged_record_is_forgotten_but_a_newer_one_with_the_hash_is_kept() {
        let connection = journal();
        let mut deliveries = Deliveries::load(&connection).unwrap();
        deliveries.remove("msg_a", 1);
        assert_eq!(deliveries.find(&connection, "msg_a").unwrap(), None);
        // A stale removal (the row was replaced under the same hash) changes nothing.
        deliveries.remove("msg_b", 99);
        assert_eq!(
            deliveries.find(&connection, "msg_b").unwrap().as_deref(),
            Some("second")
        );
    }

    #[test]
    fn a_row_whose_stored_id_differs_is_not_a_redelivery() {
        let connection = journal();
        let mut deliveries = Deliveries::default();
        // As if "msg_z" hashed to the row of "msg_a".
        deliveries.rows.insert(key("msg_z"), 1);
        assert_eq!(deliveries.find(&connection, "msg_z").unwrap(), None);
    }
}
