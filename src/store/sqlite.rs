//! The embedded store: one SQLite database, `state.db` in the state
//! directory, in WAL mode with `synchronous=FULL` (a commit is on disk
//! before it is reported; <https://sqlite.org/pragma.html#pragma_synchronous>).
//!
//! One writer thread owns the writing connection: the async runtime never
//! waits on the disk. It takes every event queued since its last commit and
//! writes them in one transaction (group commit), so many concurrent
//! changes share one `fsync`. A batch that fails (a full disk) is reported
//! to its waiters and tried again, first, with the next batch (and every
//! [`RETRY`] while nothing new comes): events are applied in order or not
//! at all, so the tables never skip a change that memory has made. The
//! schema is versioned in `PRAGMA user_version` and migrated at start
//! ([`schema`]); a database that is not ours is refused untouched
//! ([`foreign`]).

mod foreign;
mod rows;
mod schema;

use std::fs::File;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

use super::commits::Commits;
use super::{Snapshot, Store, StoreError};
use crate::domain::BoxFuture;
use crate::domain::events::{Event, HISTORY};

/// The database's file name inside the state directory.
pub const DATABASE: &str = "state.db";

/// Held (`flock`) while a server uses the state directory.
const LOCK_FILE: &str = "state.lock";

/// How long a start waits for another process's write lock on the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most new events added to one transaction.
const MAX_BATCH: usize = 1024;

/// How often a failed batch is tried again while no new event comes.
const RETRY: Duration = Duration::from_secs(1);

/// Turns an event into the JSON kept in the history (what `/events` sends).
pub type EventBody = Box<dyn Fn(&Event) -> String + Send>;

/// What the writer could not save when it stopped: how many events, and why.
type Unsaved = (usize, String);

/// See the module documentation.
pub struct SqliteStore {
    path: PathBuf,
    /// For start-up reads and bookkeeping; the writer has its own.
    reader: Mutex<Connection>,
    sender: Mutex<Option<Sender<Event>>>,
    writer: Mutex<Option<JoinHandle<Option<Unsaved>>>>,
    commits: Arc<Commits>,
    /// Keeps the state directory ours while the store lives.
    _lock: File,
}

impl SqliteStore {
    /// Opens (or creates) the store in `dir`. Refuses a database that is
    /// damaged, locked, unwritable or from a newer version: the server must
    /// never start empty in place of a queue it could not read.
    pub fn open(dir: &Path, event_body: EventBody) -> Result<Self, StoreError> {
        let path = dir.join(DATABASE);
        std::fs::create_dir_all(dir).map_err(|error| StoreError::Unwritable {
            path: dir.to_path_buf(),
            why: error.to_string(),
        })?;
        let lock = lock_dir(dir)?;
        match std::fs::metadata(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                refuse_orphan_log(&path)?;
                create(&path)?;
            }
            Err(error) => return Err(classify(&path, error)),
            Ok(meta) if !meta.is_file() => {
                return Err(StoreError::Foreign {
                    path,
                    why: "it is a directory or a special file, not a database file".into(),
                });
            }
            // SQLite would take an empty file for a new database: here it
            // means a store that lost its content.
            Ok(meta) if meta.len() == 0 => {
                return Err(StoreError::Corrupt {
                    path,
                    why: "the file is empty".into(),
                });
            }
            Ok(_) => foreign::refuse_foreign(&path)?,
        }
        let mut reader = connect(&path)?;
        check(&reader, &path)?;
        schema::migrate(&mut reader, &path)?;
        let writer_connection = connect(&path)?;
        let last_event_id = rows::last_event_id(&reader).map_err(|e| classify(&path, e))?;
        let commits = Arc::new(Commits::after(last_event_id));
        let (sender, receiver) = std::sync::mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn({
                let (commits, path) = (Arc::clone(&commits), path.clone());
                move || write_events(writer_connection, receiver, &commits, &event_body, &path)
            })
            .map_err(|error| StoreError::Unwritable {
                path: path.clone(),
                why: format!("cannot start the writer thread: {error}"),
            })?;
        Ok(SqliteStore {
            path,
            reader: Mutex::new(reader),
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            commits,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.reader
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        rows::load(&self.reader()).map_err(|why| StoreError::Corrupt {
            path: self.path.clone(),
            why,
        })
    }

    fn keep_labs(&self, kept: &[usize]) -> Result<(), StoreError> {
        rows::keep_labs(&mut self.reader(), kept).map_err(|error| StoreError::Write {
            path: self.path.clone(),
            why: error.to_string(),
        })
    }

    fn append(&self, event: &Event) {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let sent = sender
            .as_ref()
            .is_some_and(|sender| sender.send(event.clone()).is_ok());
        if !sent {
            // Only after close(): the server is gone by then.
            tracing::warn!(id = event.id, "event after the store closed; not written");
        }
    }

    fn committed(&self, ids: RangeInclusive<u64>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.commits
                .wait(ids)
                .await
                .map_err(|why| StoreError::Write {
                    path: self.path.clone(),
                    why,
                })
        })
    }

    fn durable(&self, id: u64) -> BoxFuture<'_, ()> {
        Box::pin(self.commits.durable(id))
    }

    fn unsaved(&self) -> Option<StoreError> {
        self.commits.unsaved().map(|why| StoreError::Unsaved {
            path: self.path.clone(),
            why,
        })
    }

    fn close(&self) -> Result<(), StoreError> {
        // Dropping the sender ends the writer once it wrote what is queued.
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let lost = match writer.map(JoinHandle::join) {
            None | Some(Ok(None)) => return Ok(()),
            Some(Ok(Some(lost))) => lost,
            Some(Err(_)) => (0, "the state writer panicked".to_string()),
        };
        Err(StoreError::Lost {
            path: self.path.clone(),
            count: lost.0,
            why: lost.1,
        })
    }
}

/// The writer thread: one transaction per batch of queued events, failed
/// events first. Returns once the queue is closed and everything it held
/// was tried: with how many events could not be saved, and why.
fn write_events(
    mut connection: Connection,
    events: Receiver<Event>,
    commits: &Commits,
    event_body: &EventBody,
    path: &Path,
) -> Option<Unsaved> {
    // Events whose write failed: they go first into the next transaction.
    let mut unwritten: Vec<Event> = Vec::new();
    loop {
        let first = if unwritten.is_empty() {
            events.recv().ok()
        } else {
            match events.recv_timeout(RETRY) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                // Closing: one last try of what failed.
                Err(RecvTimeoutError::Disconnected) => {
                    return write_batch(&mut connection, &unwritten, event_body)
                        .err()
                        .map(|error| (unwritten.len(), error.to_string()));
                }
            }
        };
        let fresh_from = unwritten.len();
        match first {
            Some(event) => unwritten.push(event),
            None if unwritten.is_empty() => return None,
            None => {}
        }
        while unwritten.len() - fresh_from < MAX_BATCH {
            match events.try_recv() {
                Ok(event) => unwritten.push(event),
                Err(_) => break,
            }
        }
        let failure = write_batch(&mut connection, &unwritten, event_body)
            .err()
            .map(|error| error.to_string());
        let Some(last) = unwritten.last().map(|event| event.id) else {
            continue;
        };
        let fresh = unwritten.get(fresh_from).map_or(last, |event| event.id)..=last;
        match &failure {
            Some(why) => {
                tracing::error!(path = %path.display(), first = unwritten[0].id, last, %why, "could not save changes to the state store; trying again");
            }
            None if fresh_from > 0 => {
                tracing::warn!(path = %path.display(), first = unwritten[0].id, last, "saved the changes that had failed before");
                unwritten.clear();
            }
            None => unwritten.clear(),
        }
        commits.finish(fresh, failure);
    }
}

fn write_batch(
    connection: &mut Connection,
    batch: &[Event],
    event_body: &EventBody,
) -> rusqlite::Result<()> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for event in batch {
        rows::apply(&tx, event, &event_body(event))?;
    }
    let last = batch[batch.len() - 1].id;
    rows::trim_history(&tx, last.saturating_sub(HISTORY as u64))?;
    tx.commit()
}

/// Takes the state directory's lock file, or says who has it.
fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| StoreError::Unwritable {
            path: path.clone(),
            why: error.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path,
            why: "another process holds the state directory's lock".into(),
        }),
        Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Unwritable {
            path,
            why: error.to_string(),
        }),
    }
}

/// SQLite would apply a write-ahead log left beside a missing database to
/// the new one: an old queue (or a damaged file) would come back unasked.
fn refuse_orphan_log(path: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let orphan = PathBuf::from(name);
        if orphan.exists() {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                why: format!(
                    "{} exists without the database it belongs to; move it away too",
                    orphan.display()
                ),
            });
        }
    }
    Ok(())
}

/// Creates a new database next to `path` and moves it into place once its
/// schema is written, so a crash never leaves a half-made store behind.
fn create(path: &Path) -> Result<(), StoreError> {
    let fresh = path.with_extension("db.new");
    let _ = std::fs::remove_file(&fresh);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let mut connection =
        Connection::open_with_flags(&fresh, flags).map_err(|e| classify(&fresh, e))?;
    connection
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get::<_, String>(0))
        .map_err(|e| classify(&fresh, e))?;
    schema::migrate(&mut connection, &fresh)?;
    connection.close().map_err(|(_, e)| classify(&fresh, e))?;
    std::fs::rename(&fresh, path).map_err(|error| classify(path, error))
}

/// Opens the existing database for reading and writing.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| classify(path, e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, e))?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .map_err(|e| classify(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unwritable {
            path: path.to_path_buf(),
            why: format!("cannot switch to WAL mode (journal mode is {mode})"),
        });
    }
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|e| classify(path, e))?;
    Ok(connection)
}

/// SQLite's own consistency check (<https://sqlite.org/pragma.html#pragma_quick_check>).
fn check(connection: &Connection, path: &Path) -> Result<(), StoreError> {
    let verdict: String = connection
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| classify(path, e))?;
    if verdict == "ok" {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_path_buf(),
        why: verdict,
    })
}

/// Names what went wrong in the terms an operator can act on.
fn classify(path: &Path, error: impl Into<Failure>) -> StoreError {
    let (code, why) = match error.into() {
        Failure::Sqlite(error) => (error.sqlite_error_code(), error.to_string()),
        Failure::Io(error) => (None, error.to_string()),
    };
    let path = path.to_path_buf();
    match code {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, why }
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked { path, why }
        }
        _ => StoreError::Unwritable { path, why },
    }
}

/// The two kinds of error opening a store meets.
enum Failure {
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sqlite(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Failure::Io(error)
    }
}

#[cfg(test)]
mod tests;
