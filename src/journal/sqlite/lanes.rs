//! The pending notifications of each DUNS in processing order, kept in memory by the writer.
//!
//! A claim takes a DUNS's pending notifications whole, in order of delivery time, then
//! receipt. An on-disk index keyed by DUNS would answer that too, but DUNS are scattered,
//! so every pending notification would dirty a page of its own in every commit (the
//! largest single cost of ingest under a backlog). The writer is the journal's only
//! writer, so it keeps this set beside the rows instead: it adds every row it makes
//! pending, removes every row it claims, and reloads the set from the rows when it opens
//! the journal (after taking back the claims a previous process left, which so join their
//! lanes) and after any rolled-back transaction.
//!
//! Receipt order here is the order the journal appended the rows in, which their ids
//! follow. Each entry is one 128-bit number, so the set costs about 32 bytes per pending
//! notification (a tuple of the same fields took 58).

use std::collections::BTreeSet;

use rusqlite::{Connection, Row};

use crate::journal::NotificationId;

/// Bits of an entry below the DUNS: a delivery time, then an id.
const DELIVERED_BITS: u32 = 44;
const ID_BITS: u32 = 54;

/// One pending notification: DUNS (30 bits), delivery time in unix milliseconds (44 bits,
/// until the year 2527; none or before 1970 sorts first) and id (54 bits), so entries sort
/// by DUNS, then processing order.
type Entry = u128;

fn entry(duns: u32, delivered_at: Option<i64>, id: NotificationId) -> Entry {
    let delivered = delivered_at
        .unwrap_or(0)
        .clamp(0, (1 << DELIVERED_BITS) - 1) as u128;
    (u128::from(duns) << (DELIVERED_BITS + ID_BITS)) | (delivered << ID_BITS) | id as u128
}

fn id_of(entry: Entry) -> NotificationId {
    (entry & ((1 << ID_BITS) - 1)) as NotificationId
}

/// The pending notifications by DUNS.
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
            "SELECT id, duns, delivered_at FROM notifications
             INDEXED BY notifications_pending WHERE status = 'pending'",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            lanes.add_row(row)?;
        }
        Ok(lanes)
    }

    /// A row became pending: `row` starts with its id, DUNS and delivery time.
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
        self.entries.insert(entry(duns, row.get(2)?, id));
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
        taken.into_iter().map(id_of).collect()
    }

    /// How many notifications are in the lanes.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn range(&self, duns: u32) -> impl Iterator<Item = &Entry> {
        let first = entry(duns, None, 0);
        self.entries
            .range(first..first + (1 << (DELIVERED_BITS + ID_BITS)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notifications table holding `rows` (id, status, DUNS, delivery and receipt times).
    fn journal_with(rows: &str) -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(&format!(
                "CREATE TABLE notifications (id INTEGER PRIMARY KEY, status TEXT, duns TEXT,
                     delivered_at INTEGER, received_at INTEGER);
                 CREATE INDEX notifications_pending ON notifications (received_at) WHERE status = 'pending';
                 INSERT INTO notifications VALUES {rows};"
            ))
            .unwrap();
        connection
    }

    fn journal() -> Connection {
        journal_with(
            "(1, 'pending', '111111111', 300, 10),
             (2, 'pending', '111111111', 100, 20),
             (3, 'done',    '111111111', 50,  25),
             (4, 'pending', '222222222', 100, 30),
             (5, 'pending', '111111111', 100, 35),
             (6, 'rejected', NULL, NULL, 40)",
        )
    }

    #[test]
    fn a_lane_holds_only_pending_rows_by_delivery_then_receipt() {
        let mut lanes = Lanes::load(&journal()).unwrap();
        assert_eq!(lanes.len(), 4);
        assert!(lanes.has("222222222") && !lanes.has("333333333"));
        assert_eq!(lanes.take("111111111", 2), [2, 5]);
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
            .prepare("UPDATE notifications SET status = 'pending' WHERE id = 3 RETURNING id, duns, delivered_at")
            .unwrap();
        let mut rows = statement.query([]).unwrap();
        lanes.add_row(rows.next().unwrap().unwrap()).unwrap();
        assert_eq!(lanes.take("111111111", 10), [3]);
    }

    #[test]
    fn entries_keep_every_field_apart() {
        let connection = journal_with(
            "(9007199254740000, 'pending', '999999999', 17592186044415, 1),
             (9007199254740001, 'pending', '999999999', 1764000000000, 2),
             (7, 'pending', '999999999', NULL, 3),
             (8, 'pending', '999999999', -5, 4),
             (9, 'pending', '000000000', 99999999999999, 5),
             (10, 'pending', '999999998', 0, 6)",
        );
        let mut lanes = Lanes::load(&connection).unwrap();
        // No delivery time and times before 1970 come first, then by time, then by id.
        assert_eq!(
            lanes.take("999999999", 10),
            [7, 8, 9007199254740001, 9007199254740000]
        );
        assert_eq!(lanes.take("000000000", 10), [9]);
        assert_eq!(lanes.take("999999998", 10), [10]);
        assert_eq!(lanes.len(), 0);
    }
}
