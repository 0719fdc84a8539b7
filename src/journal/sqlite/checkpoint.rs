//! WAL checkpoints on their own thread and connection, off the commit path.
//!
//! Every second a passive checkpoint copies the committed pages into the
//! database without blocking the writer, then a restarting checkpoint copies
//! the few frames committed meanwhile and lets the writer's next transaction
//! start over at the beginning of the WAL. So the WAL file is overwritten in
//! place rather than grown: a commit that leaves the file's size alone costs
//! the data sync only (the bundled SQLite syncs with `fdatasync`, see
//! `.cargo/config.toml`), where a growing file also has its size flushed, and
//! the file holds about a second of commits (`journal_size_limit` trims it
//! back to `storage.wal_max_bytes` whenever it grew past that).
//!
//! The restart takes the writer's turn ([`Turn`]): the writer holds it for
//! each transaction and hands it over when the checkpoint thread waits for it,
//! so the restart runs between two transactions instead of racing the writer
//! for SQLite's write lock, and the writer resumes the moment it is done. It
//! also waits for readers of older snapshots, at most [`RESTART_WAIT`], and is
//! otherwise tried again a second later: a long read delays appends by that
//! much at most.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

const INTERVAL: Duration = Duration::from_secs(1);

/// Taken by the writer for each transaction and by the checkpoint thread for each restart.
pub(super) type Turn = Arc<Mutex<()>>;
/// Longest wait of a restarting checkpoint for the writer and the readers.
const RESTART_WAIT: Duration = Duration::from_millis(100);

/// The running checkpoint thread.
pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub(super) fn start(path: &Path, turn: Turn) -> std::io::Result<Self> {
        let connection = Connection::open(path).map_err(std::io::Error::other)?;
        connection
            .busy_timeout(RESTART_WAIT)
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    checkpoint(&connection, &turn);
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

fn checkpoint(connection: &Connection, turn: &Mutex<()>) {
    if run(connection, "PASSIVE") {
        let _turn = turn.lock();
        run(connection, "RESTART");
    }
}

/// One checkpoint; false when it failed.
fn run(connection: &Connection, mode: &str) -> bool {
    // The first column is 1 when the checkpoint could not finish (busy), 0 when it did.
    match connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(0) => true,
        Ok(_) => {
            tracing::debug!(mode, "WAL checkpoint postponed: the database was busy");
            true
        }
        Err(error) => {
            tracing::warn!(mode, error = %error, "WAL checkpoint failed");
            false
        }
    }
}
