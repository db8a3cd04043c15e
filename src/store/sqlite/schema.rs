//! The database schema, versioned in `PRAGMA user_version`: migration *n*
//! takes the schema from version *n − 1* to *n*. Append new migrations;
//! never change one that has shipped.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::classify;
use crate::store::StoreError;

/// `PRAGMA application_id` of our stores: "NRLA" in ASCII, for
/// neops-remote-lab (<https://sqlite.org/pragma.html#pragma_application_id>).
/// A database without it is not taken for a store (`foreign.rs`).
pub const APPLICATION_ID: u32 = u32::from_be_bytes(*b"NRLA");

/// Times are Unix milliseconds; JSON columns hold what the API accepts.
const MIGRATIONS: &[&str] = &[
    // 1: the line, the slots' labs, the event history.
    "CREATE TABLE sessions (
         seq             INTEGER PRIMARY KEY,  -- the order of the line
         id              TEXT NOT NULL UNIQUE,
         joined_at       INTEGER NOT NULL,
         promoted_at     INTEGER,              -- NULL while waiting
         slot            INTEGER,              -- the slot it holds, from 1
         client          TEXT,                 -- JSON, as sent to POST /session
         idempotency_key TEXT
     );
     CREATE TABLE labs (
         slot       INTEGER PRIMARY KEY,
         dir        TEXT NOT NULL,             -- removed with the lab
         netlab_dir TEXT NOT NULL,             -- where netlab runs
         identity   TEXT NOT NULL,             -- SHA-256 of the content, hex
         topology   TEXT NOT NULL,
         devices    TEXT,                      -- JSON [{name, raw}], once up
         ref_count  INTEGER NOT NULL,
         started_at INTEGER,
         phase      TEXT NOT NULL              -- starting|up|idle|tearing_down|dirty
     );
     CREATE TABLE events (
         id   INTEGER PRIMARY KEY,
         at   INTEGER NOT NULL,
         body TEXT NOT NULL                    -- JSON, as GET /events sends it
     );",
    // 2: the token each session belongs to (servers with auth on).
    "ALTER TABLE sessions ADD COLUMN owner TEXT;",
    // 3: the heartbeat interval a client announced (its lease), in seconds.
    "ALTER TABLE sessions ADD COLUMN heartbeat_seconds INTEGER;",
    // 4: how many later sessions were promoted ahead of it (`--placement batch`).
    "ALTER TABLE sessions ADD COLUMN overtaken INTEGER NOT NULL DEFAULT 0;",
    // 5: the netlab version that brought each lab up (a kept lab is handed
    // over only by the version that built it).
    "ALTER TABLE labs ADD COLUMN built_by TEXT;",
    // 6: the lab hosts (lab agents) of the pool and their slots' numbers,
    // so a restart keeps them and their holders' slots.
    "CREATE TABLE hosts (
         name       TEXT PRIMARY KEY,
         first_slot INTEGER NOT NULL,
         slots      INTEGER NOT NULL
     );",
];

/// Brings the schema to the latest version in one transaction, and marks
/// the database ours ([`APPLICATION_ID`]) if it is not yet. Taking the
/// write lock for it also proves the database writable (and not locked),
/// without changing a file that is already up to date.
pub fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |error| classify(path, error);
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail)?;
    let version: u32 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(fail)?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            version,
        });
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(migration).map_err(fail)?;
        tx.pragma_update(None, "user_version", (done + 1) as i64)
            .map_err(fail)?;
    }
    let marked: u32 = tx
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .map_err(fail)?;
    if marked != APPLICATION_ID {
        // SQLite keeps it as a signed 32-bit integer.
        tx.pragma_update(None, "application_id", APPLICATION_ID as i32)
            .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

/// The schema version this build writes.
pub fn latest() -> u32 {
    MIGRATIONS.len() as u32
}
