//! The pending notifications of each DUNS in processing order, kept in memory by the writer.
//!
//! A claim takes a DUNS's pending notifications whole, in order of delivery time, then
//! receipt. An on-disk index keyed by DUNS would answer that too, but DUNS are scattered,
//! so every pending notification would dirty a page of its own in every commit (the
//! largest single cost of ingest under a backlog). The writer is the journal's only
//! writer, so it keeps this set beside the rows instead: it adds every row it makes
//! pending, removes every row it claims, and reloads the set from the rows when it opens
//! the journal and after any rolled-back transaction.

use std::collections::BTreeSet;

use rusqlite::{Connection, Row};

use crate::journal::NotificationId;

/// One pending notification, ordered by DUNS, then processing order.
type Entry = (u32, i64, i64, NotificationId);

/// The pending notifications by DUNS (about 40 bytes each).
#[derive(Default)]
pub(super) struct Lanes {
    entries: BTreeSet<Entry>,
}

/// The 9-digit DUNS as a number. Pending rows always carry a valid DUNS.
fn key(duns: &str) -> Option<u32> {
    duns.parse().ok()
}

impl Lanes {
    /// Reads every pending row.
    pub(super) fn load(connection: &Connection) -> rusqlite::Result<Self> {
        let mut lanes = Self::default();
        let mut statement = connection.prepare(
            "SELECT id, duns, delivered_at, received_at FROM notifications
             INDEXED BY notifications_pending WHERE status = 'pending'",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            lanes.add_row(row)?;
        }
        Ok(lanes)
    }

    /// A row became pending: `row` starts with its id, DUNS, delivery and receipt times.
    pub(super) fn add_row(&mut self, row: &Row<'_>) -> rusqlite::Result<()> {
        let id: NotificationId = row.get(0)?;
        let duns = row.get_ref(1)?.as_str_or_null()?.and_then(key);
        let Some(duns) = duns else {
            tracing::error!(
                notification.id = id,
                "pending notification without a valid DUNS cannot be claimed"
            );
            return Ok(());
        };
        let delivered_at: Option<i64> = row.get(2)?;
        self.entries
            .insert((duns, delivered_at.unwrap_or(i64::MIN), row.get(3)?, id));
        Ok(())
    }

    /// Whether `duns` has a pending notification.
    pub(super) fn has(&self, duns: &str) -> bool {
        key(duns).is_some_and(|duns| self.range(duns).next().is_some())
    }

    /// Takes up to `limit` pending notifications of `duns` out of the lanes, first to
    /// process first.
    pub(super) fn take(&mut self, duns: &str, limit: usize) -> Vec<NotificationId> {
        let Some(duns) = key(duns) else {
            return Vec::new();
        };
        let taken: Vec<Entry> = self.range(duns).take(limit).copied().collect();
        for entry in &taken {
            self.entries.remove(entry);
        }
        taken.into_iter().map(|entry| entry.3).collect()
    }

    /// How many notifications are in the lanes.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn range(&self, duns: u32) -> impl Iterator<Item = &Entry> {
        self.entries.range(
            (duns, i64::MIN, i64::MIN, NotificationId::MIN)
                ..=(duns, i64::MAX, i64::MAX, NotificationId::MAX),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE notifications (id INTEGER PRIMARY KEY, status TEXT, duns TEXT,
                     delivered_at INTEGER, received_at INTEGER);
                 CREATE INDEX notifications_pending ON notifications (received_at) WHERE status = 'pending';
                 INSERT INTO notifications VALUES
                     (1, 'pending', '111111111', 300, 10),
                     (2, 'pending', '111111111', 100, 20),
                     (3, 'done',    '111111111', 50,  5),
                     (4, 'pending', '222222222', 100, 30),
                     (5, 'pending', '111111111', 100, 15),
                     (6, 'rejected', NULL, NULL, 40);",
            )
            .unwrap();
        connection
    }

    #[test]
    fn a_lane_holds_only_pending_rows_by_delivery_then_receipt() {
        let mut lanes = Lanes::load(&journal()).unwrap();
        assert_eq!(lanes.len(), 4);
        assert!(lanes.has("222222222") && !lanes.has("333333333"));
        assert_eq!(lanes.take("111111111", 2), [5, 2]);
        assert_eq!(lanes.take("111111111", 10), [1]);
        assert!(!lanes.has("111111111"));
        assert_eq!(lanes.len(), 1);
    }

    #[test]
    fn rows_made_pending_again_rejoin_their_lane_in_order() {
        let connection = journal();
        let mut lanes = Lanes::load(&connection).unwrap();
        let _ = lanes.take("111111111", 10);
        let mut statement = connection
            .prepare("UPDATE notifications SET status = 'pending' WHERE id = 3 RETURNING id, duns, delivered_at, received_at")
            .unwrap();
        let mut rows = statement.query([]).unwrap();
        lanes.add_row(rows.next().unwrap().unwrap()).unwrap();
        assert_eq!(lanes.take("111111111", 10), [3]);
    }
}
