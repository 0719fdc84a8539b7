//! WAL checkpoints on their own thread and connection, off the commit path.
//!
//! A passive checkpoint every second copies committed pages into the database
//! without blocking the writer. Under steady load that alone never lets the
//! WAL restart, so once the WAL file passes the cap a TRUNCATE checkpoint
//! waits for the writer's current transaction, finishes the copy and resets
//! the file to zero bytes.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

const INTERVAL: Duration = Duration::from_secs(1);

/// The running checkpoint thread.
pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub(super) fn start(path: &Path, wal_max_bytes: u64) -> std::io::Result<Self> {
        let connection = Connection::open(path).map_err(std::io::Error::other)?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(std::io::Error::other)?;
        let wal_path = PathBuf::from(format!("{}-wal", path.display()));
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    checkpoint(&connection, &wal_path, wal_max_bytes);
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops the thread and waits for it.
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn checkpoint(connection: &Connection, wal_path: &Path, wal_max_bytes: u64) {
    if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %error, "passive WAL checkpoint failed");
        return;
    }
    let wal_bytes = std::fs::metadata(wal_path)
        .map(|meta| meta.len())
        .unwrap_or(0);
    if wal_bytes > wal_max_bytes {
        match connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        }) {
            Ok(0) => tracing::debug!(wal_bytes, "WAL truncated"),
            Ok(_) => tracing::debug!(wal_bytes, "WAL truncation postponed: the database was busy"),
            Err(error) => tracing::warn!(error = %error, "truncating WAL checkpoint failed"),
        }
    }
}
