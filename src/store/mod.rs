//! Durable state: what survives a restart or a crash.
//!
//! The coordinator publishes every change as a domain event
//! ([`crate::domain::events`]); a [`Store`] appends those events, in
//! their order, and keeps from them the tables a restart needs: the
//! sessions of the line (order, status, times, client info, idempotency
//! key), each slot's lab (directories, identity, devices, phase) and a
//! bounded history of events. Signs of life (status polls, heartbeats) are
//! no events and are never written.
//!
//! Appending never blocks (it is called under the coordinator's lock, which
//! fixes the order); a caller that must not reply before its change is
//! durable awaits [`Store::committed`]. [`sqlite::SqliteStore`] is the
//! embedded default; [`InMemory`] keeps nothing, as the original service
//! did. A store shared by several hosts (PostgreSQL) implements the same
//! trait, applying each batch of events in one transaction.

mod commits;
pub mod sqlite;
pub mod state_dir;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::SystemTime;

pub use crate::domain::StoredLab;
use crate::domain::events::Event;
use crate::domain::{BoxFuture, ClientInfo};
use crate::queue::Lease;
use crate::session_id::SessionId;

/// Where the coordinator's events go to last. See the module documentation.
pub trait Store: Send + Sync {
    /// What the previous run left. Blocking; called once, before serving.
    fn load(&self) -> Result<Snapshot, StoreError>;

    /// Forgets every stored lab except those of `kept` slots, whose labs
    /// were re-adopted: their reference count restarts at 0, nobody holds
    /// them. Blocking; called once at start, after [`Store::load`].
    fn keep_labs(&self, kept: &[usize]) -> Result<(), StoreError>;

    /// Queues `event` for writing. Called under the coordinator's lock, so
    /// events are written in the order they happened. Never blocks.
    fn append(&self, event: &Event);

    /// Completes once every event up to `ids.end()` was tried; an error
    /// when the write of any event in `ids` failed (that change is not
    /// durable yet: it is tried again with the next writes; what was
    /// committed before is untouched).
    fn committed(&self, ids: RangeInclusive<u64>) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Completes once every event up to `id` is durable, however long the
    /// store has to try again (a full disk).
    fn durable(&self, id: u64) -> BoxFuture<'_, ()>;

    /// While some changes wait to be saved (the last write failed): why.
    /// Memory is ahead of the disk then, so no new change may be made.
    fn unsaved(&self) -> Option<StoreError>;

    /// Writes what is queued and stops writing; an error when some changes
    /// could not be saved (they are lost: the next start does not know
    /// them). Blocking; called at shutdown.
    fn close(&self) -> Result<(), StoreError>;
}

/// The state a previous run left behind.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The line, first come first.
    pub sessions: Vec<StoredSession>,
    /// Each slot's lab, as last reported.
    pub labs: Vec<StoredLab>,
    /// The lab hosts (lab agents) that joined, by their first slot.
    pub hosts: Vec<StoredHost>,
    /// The id of the last event written (0 for none): ids go on from there.
    pub last_event_id: u64,
}

/// A lab host as stored: its name and its slots' numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredHost {
    pub name: String,
    pub slots: Vec<usize>,
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    pub id: SessionId,
    pub joined_at: SystemTime,
    /// When it was promoted and the slot it got (from 1), if it was.
    pub promoted: Option<(SystemTime, usize)>,
    pub client: Option<ClientInfo>,
    /// The `Idempotency-Key` of its `POST /session`.
    pub key: Option<String>,
    /// The name of the token it belongs to (auth on).
    pub owner: Option<String>,
    /// The heartbeat interval its client announced.
    pub lease: Option<Lease>,
    /// How many later sessions were promoted ahead of it (`--placement batch`).
    pub overtaken: u32,
}

/// Why the store cannot be used, or a change was not written.
#[derive(Debug, Clone)]
pub enum StoreError {
    /// The state directory or database cannot be created or written.
    Unwritable { path: PathBuf, why: String },
    /// The database is not a database, or damaged.
    Corrupt { path: PathBuf, why: String },
    /// Another process holds the database or the state directory.
    Locked { path: PathBuf, why: String },
    /// Written by a newer version of this server.
    TooNew { path: PathBuf, version: u32 },
    /// Another program's SQLite database, not a store of ours.
    Foreign { path: PathBuf, why: String },
    /// A change could not be committed (e.g. the disk is full).
    Write { path: PathBuf, why: String },
    /// Changes wait to be saved: nothing new is changed meanwhile.
    Unsaved { path: PathBuf, why: String },
    /// The server stopped with changes it could not save.
    Lost {
        path: PathBuf,
        count: usize,
        why: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unwritable { path, why } => write!(
                f,
                "cannot write the state store {} ({why}); make the state directory writable \
                 for this user, or choose another with --state-dir / NEOPS_STATE_DIR",
                path.display()
            ),
            StoreError::Corrupt { path, why } => write!(
                f,
                "the state store {} is damaged ({why}); nothing was changed. Restore it from a \
                 backup, or move it (and its -wal file) away to start with an empty queue",
                path.display()
            ),
            StoreError::Locked { path, why } => write!(
                f,
                "the state store {} is in use by another process ({why}): another \
                 neops-remote-lab server with the same --state-dir, or a tool with a write \
                 transaction open; stop it or choose another --state-dir",
                path.display()
            ),
            StoreError::TooNew { path, version } => write!(
                f,
                "the state store {} has schema version {version}, written by a newer \
                 neops-remote-lab; upgrade this server or use another --state-dir",
                path.display()
            ),
            StoreError::Foreign { path, why } => write!(
                f,
                "{} is not a neops-remote-lab state store ({why}); nothing was changed. \
                 Move it away, or choose another --state-dir / NEOPS_STATE_DIR",
                path.display()
            ),
            StoreError::Write { path, why } => write!(
                f,
                "the change could not be saved to the state store {} ({why}); it was not made",
                path.display()
            ),
            StoreError::Unsaved { path, why } => write!(
                f,
                "the state store {} cannot save changes now ({why}); nothing was changed. The \
                 server keeps trying to save what it has; try again once there is room",
                path.display()
            ),
            StoreError::Lost { path, count, why } => write!(
                f,
                "{count} change(s) could not be saved to the state store {} ({why}) and are \
                 lost: the next start knows the queue and the labs as they were before them",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// Keeps nothing: every restart starts empty, as the original service.
#[derive(Debug, Default)]
pub struct InMemory;

impl Store for InMemory {
    fn load(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::default())
    }

    fn keep_labs(&self, _kept: &[usize]) -> Result<(), StoreError> {
        Ok(())
    }

    fn append(&self, _event: &Event) {}

    fn committed(&self, _ids: RangeInclusive<u64>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn durable(&self, _id: u64) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn unsaved(&self) -> Option<StoreError> {
        None
    }

    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
