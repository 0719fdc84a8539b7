//! WAL checkpoints on their own thread and connection, off the commit path.
//!
//! Four times a second, passive checkpoints copy the committed pages into the
//! database without blocking the writer, until few are left; the thread then
//! flushes the database file and runs a restarting checkpoint, which copies
//! the last frames and lets the writer's next transaction start over at the
//! beginning of the WAL. So the WAL file is overwritten in place rather than
//! grown: with `fdatasync` (the bundled SQLite is built with it, see
//! `.cargo/config.toml`) a commit that leaves the file's size alone need not
//! write the file's inode, where a growing file has its size written with
//! every commit; and the file holds a fraction of a second of commits
//! (`journal_size_limit` trims it back to `storage.wal_max_bytes` whenever it
//! grew past that). A tick with nothing committed since the previous one does
//! nothing at all.
//!
//! The restart blocks the writer while it runs, so everything slow happens
//! before it: under a steady load a passive checkpoint never syncs the
//! database file (only one that reaches the end of the WAL does), so the
//! restart would otherwise flush all the pages the passive ones copied.
//! It takes the writer's turn ([`Turn`]): the writer holds it for each
//! transaction and hands it over when the checkpoint thread waits for it, so
//! the restart runs between two transactions instead of racing the writer for
//! SQLite's write lock, and the writer resumes the moment it is done. It also
//! waits for readers of older snapshots, but only [`RESTART_WAIT`]: a read
//! that lasts longer makes it give up until the next tick (the WAL grows
//! meanwhile), so a long read delays appends by that much per tick at most.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

const INTERVAL: Duration = Duration::from_millis(250);
/// Frames a passive pass may leave for the restart (about 1 MiB with 4 KiB pages).
const RESTART_FRAMES: i64 = 256;
/// Passive passes per tick at most, for a writer that commits as fast as they copy.
const PASSES: usize = 4;

/// Taken by the writer for each transaction and by the checkpoint thread for each restart.
pub(super) type Turn = Arc<Mutex<()>>;
/// Longest wait of a restarting checkpoint for readers (the writer's turn makes it the
/// only writer meanwhile).
const RESTART_WAIT: Duration = Duration::from_millis(10);

/// The running checkpoint thread.
pub(super) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`.
    pub(super) fn start(path: &Path, turn: Turn) -> std::io::Result<Self> {
        let connection = Connection::open(path).map_err(std::io::Error::other)?;
        let database = File::open(path)?;
        connection
            .busy_timeout(RESTART_WAIT)
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("journal-checkpoint".into())
            .spawn(move || {
                let mut last = None;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    last = checkpoint(&connection, &database, &turn, last);
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

/// One tick. `last` is what the previous tick left (the WAL's frames, how many were
/// copied); when nothing was committed since, there is nothing to do, not even a flush.
/// Returns what this tick left, or None to have the next tick run in any case.
fn checkpoint(
    connection: &Connection,
    database: &File,
    turn: &Mutex<()>,
    last: Option<(i64, i64)>,
) -> Option<(i64, i64)> {
    let mut pass = run(connection, "PASSIVE")?;
    if Some(pass.wal()) == last {
        return last;
    }
    let mut copied_before = 0;
    for _ in 1..PASSES {
        if pass.copied < pass.frames || pass.copied - copied_before <= RESTART_FRAMES {
            break;
        }
        copied_before = pass.copied;
        pass = run(connection, "PASSIVE")?;
    }
    if let Err(error) = database.sync_data() {
        tracing::warn!(error = %error, "could not flush the journal's database file");
        return None;
    }
    let _turn = turn.lock();
    let restart = run(connection, "RESTART")?;
    // A restart that gave way to a reader is tried again at the next tick, idle or not.
    (!restart.busy).then(|| restart.wal())
}

/// What one checkpoint reported.
struct Pass {
    /// It could not finish: a reader (or for a passive one, the writer) was in the way.
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
    /// Frames of the WAL copied into the database.
    copied: i64,
}

impl Pass {
    fn wal(&self) -> (i64, i64) {
        (self.frames, self.copied)
    }
}

/// One checkpoint, or None when it failed.
fn run(connection: &Connection, mode: &str) -> Option<Pass> {
    let result = connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Pass {
            busy: row.get::<_, i64>(0)? != 0,
            frames: row.get(1)?,
            copied: row.get(2)?,
        })
    });
    match result {
        Ok(pass) => {
            if pass.busy {
                tracing::debug!(mode, "WAL checkpoint postponed: the database was busy");
            }
            Some(pass)
        }
        Err(error) => {
            tracing::warn!(mode, error = %error, "WAL checkpoint failed");
            None
        }
    }
}
