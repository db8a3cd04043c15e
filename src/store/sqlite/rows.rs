//! Rows in, rows out: how each event changes the tables, and how a start
//! reads them back.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Row, Transaction, params};

use crate::domain::ClientInfo;
use crate::domain::events::{Event, EventKind};
use crate::domain::{Device, LabChange, LabFiles, Phase};
use crate::queue::Lease;
use crate::store::{Snapshot, StoredHost, StoredLab, StoredSession};

/// Applies one event to the tables and appends it to the history.
pub fn apply(tx: &Transaction<'_>, event: &Event, body: &str) -> rusqlite::Result<()> {
    let at = millis(event.at);
    match &event.kind {
        EventKind::SessionJoined {
            session,
            client,
            key,
            owner,
            lease,
            ..
        } => {
            let client = client.as_deref().map(to_json);
            let owner = owner.as_ref().map(|owner| owner.name());
            let heartbeat = lease.map(|lease| lease.heartbeat().as_secs() as i64);
            tx.execute(
                "INSERT INTO sessions (id, joined_at, client, idempotency_key, owner, heartbeat_seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![session.full(), at, client, key, owner, heartbeat],
            )?;
        }
        EventKind::SessionPromoted { session, slot, .. } => {
            tx.execute(
                "UPDATE sessions SET promoted_at = ?2, slot = ?3 WHERE id = ?1",
                params![session.full(), at, *slot as i64],
            )?;
        }
        EventKind::SessionEnded { session, .. } => {
            tx.execute("DELETE FROM sessions WHERE id = ?1", [session.full()])?;
        }
        EventKind::SessionMoved { session, to, .. } => {
            tx.execute(
                "UPDATE sessions SET slot = ?2 WHERE id = ?1",
                params![session.full(), *to as i64],
            )?;
        }
        EventKind::SessionBypassed {
            session, overtaken, ..
        } => {
            tx.execute(
                "UPDATE sessions SET overtaken = ?2 WHERE id = ?1",
                params![session.full(), *overtaken as i64],
            )?;
        }
        EventKind::HostRegistered { host, slots } => {
            let first = slots.first().copied().unwrap_or_default() as i64;
            tx.execute(
                "INSERT OR REPLACE INTO hosts (name, first_slot, slots) VALUES (?1, ?2, ?3)",
                params![host.as_ref(), first, slots.len() as i64],
            )?;
        }
        EventKind::HoldWarning { .. }
        | EventKind::PrebootStarted { .. }
        | EventKind::HostOffline { .. }
        | EventKind::HostOnline { .. } => {}
        EventKind::Lab { slot, change, .. } => apply_lab(tx, *slot as i64, change, at)?,
    }
    tx.execute(
        "INSERT INTO events (id, at, body) VALUES (?1, ?2, ?3)",
        params![event.id as i64, at, body],
    )?;
    Ok(())
}

fn apply_lab(tx: &Transaction<'_>, slot: i64, change: &LabChange, at: i64) -> rusqlite::Result<()> {
    let phase = change.phase().as_str();
    match change {
        LabChange::Starting {
            topology,
            identity,
            files,
            built_by,
        } => tx.execute(
            "INSERT OR REPLACE INTO labs (slot, dir, netlab_dir, identity, topology, ref_count, phase, built_by)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7)",
            params![
                slot,
                files.dir.to_string_lossy(),
                files.netlab_dir.to_string_lossy(),
                identity,
                topology,
                phase,
                built_by
            ],
        ),
        LabChange::Up { devices, .. } => tx.execute(
            "UPDATE labs SET devices = ?2, ref_count = 1, started_at = ?3, phase = ?4 WHERE slot = ?1",
            params![slot, to_json(devices.as_slice()), at, phase],
        ),
        LabChange::Attached { ref_count, .. } | LabChange::Released { ref_count } => tx.execute(
            "UPDATE labs SET ref_count = ?2, phase = ?3 WHERE slot = ?1",
            params![slot, ref_count, phase],
        ),
        LabChange::Kept { .. } => tx.execute(
            "UPDATE labs SET ref_count = 0, phase = ?2 WHERE slot = ?1",
            params![slot, phase],
        ),
        LabChange::Idle
        | LabChange::Resetting { .. }
        | LabChange::Expired
        | LabChange::TearingDown
        | LabChange::Dirty { .. } => tx.execute(
            "UPDATE labs SET phase = ?2 WHERE slot = ?1",
            params![slot, phase],
        ),
        LabChange::Down { .. } | LabChange::Failed { .. } => {
            tx.execute("DELETE FROM labs WHERE slot = ?1", [slot])
        }
    }?;
    Ok(())
}

/// Drops history events up to `id`: only the most recent are kept.
pub fn trim_history(tx: &Transaction<'_>, id: u64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM events WHERE id <= ?1", [id as i64])?;
    Ok(())
}

pub fn last_event_id(connection: &Connection) -> rusqlite::Result<u64> {
    let id: i64 = connection.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |row| {
        row.get(0)
    })?;
    Ok(id as u64)
}

/// Deletes every lab except those of `kept` slots, which restart idle.
pub fn keep_labs(connection: &mut Connection, kept: &[usize]) -> rusqlite::Result<()> {
    let tx = connection.transaction()?;
    let slots: Vec<i64> = {
        let mut statement = tx.prepare("SELECT slot FROM labs")?;
        statement
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    for slot in slots {
        if kept.contains(&(slot as usize)) {
            tx.execute(
                "UPDATE labs SET ref_count = 0, phase = ?2 WHERE slot = ?1",
                params![slot, Phase::Idle.as_str()],
            )?;
        } else {
            tx.execute("DELETE FROM labs WHERE slot = ?1", [slot])?;
        }
    }
    tx.commit()
}

/// Reads what a previous run left. A row that does not parse means the
/// database was damaged or edited: say which.
pub fn load(connection: &Connection) -> Result<Snapshot, String> {
    let sessions = read_all(
        connection,
        "SELECT id, joined_at, promoted_at, slot, client, idempotency_key, owner, heartbeat_seconds,
                overtaken
         FROM sessions ORDER BY seq",
        session_row,
    )?;
    let labs = read_all(
        connection,
        "SELECT slot, dir, netlab_dir, identity, topology, devices, ref_count, started_at, phase,
                built_by
         FROM labs ORDER BY slot",
        lab_row,
    )?;
    let hosts = read_all(
        connection,
        "SELECT name, first_slot, slots FROM hosts ORDER BY first_slot",
        host_row,
    )?;
    Ok(Snapshot {
        sessions,
        labs,
        hosts,
        last_event_id: last_event_id(connection).map_err(|error| error.to_string())?,
    })
}

/// Every row `query` returns, each turned into a `T` by `parse`.
fn read_all<T>(
    connection: &Connection,
    query: &str,
    parse: fn(&Row<'_>) -> rusqlite::Result<Result<T, String>>,
) -> Result<Vec<T>, String> {
    let read = |error: rusqlite::Error| error.to_string();
    let mut statement = connection.prepare(query).map_err(read)?;
    statement
        .query_map([], parse)
        .map_err(read)?
        .map(|row| row.map_err(read)?)
        .collect()
}

fn host_row(row: &Row<'_>) -> rusqlite::Result<Result<StoredHost, String>> {
    let (name, first, count): (String, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
    Ok(match (usize::try_from(first), usize::try_from(count)) {
        (Ok(first), Ok(count)) if first >= 1 => Ok(StoredHost {
            name,
            slots: (first..first + count).collect(),
        }),
        _ => Err(format!("host {name}: slots {first}+{count}")),
    })
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<Result<StoredSession, String>> {
    let id: String = row.get(0)?;
    let promoted_at: Option<i64> = row.get(2)?;
    let slot: Option<i64> = row.get(3)?;
    let client: Option<String> = row.get(4)?;
    Ok((|| {
        let promoted = match (promoted_at, slot) {
            (Some(at), Some(slot)) if slot >= 1 => Some((time(at), slot as usize)),
            (None, _) => None,
            _ => return Err(format!("session {id}: promoted without a slot")),
        };
        Ok(StoredSession {
            id: id.parse().map_err(|e| format!("session id {id:?}: {e}"))?,
            joined_at: time(row.get(1).map_err(|e| e.to_string())?),
            promoted,
            client: client
                .map(|json| from_json::<ClientInfo>(&json))
                .transpose()
                .map_err(|e| format!("session {id}: client: {e}"))?,
            key: row.get(5).map_err(|e| e.to_string())?,
            owner: row.get(6).map_err(|e| e.to_string())?,
            lease: match row.get::<_, Option<i64>>(7).map_err(|e| e.to_string())? {
                None => None,
                Some(seconds) => Some(
                    u64::try_from(seconds)
                        .ok()
                        .and_then(Lease::every)
                        .ok_or_else(|| format!("session {id}: heartbeat_seconds {seconds}"))?,
                ),
            },
            overtaken: u32::try_from(row.get::<_, i64>(8).map_err(|e| e.to_string())?)
                .map_err(|e| format!("session {id}: overtaken: {e}"))?,
        })
    })())
}

fn lab_row(row: &Row<'_>) -> rusqlite::Result<Result<StoredLab, String>> {
    let slot: i64 = row.get(0)?;
    let devices: Option<String> = row.get(5)?;
    let started_at: Option<i64> = row.get(7)?;
    let files = LabFiles {
        dir: PathBuf::from(row.get::<_, String>(1)?),
        netlab_dir: PathBuf::from(row.get::<_, String>(2)?),
    };
    let (identity, topology, ref_count) = (row.get(3)?, row.get(4)?, row.get(6)?);
    let phase: String = row.get(8)?;
    let built_by: Option<String> = row.get(9)?;
    Ok((|| {
        Ok(StoredLab {
            slot: usize::try_from(slot).map_err(|_| format!("lab slot {slot}"))?,
            files,
            identity,
            topology,
            devices: devices
                .map(|json| from_json::<Vec<Device>>(&json))
                .transpose()
                .map_err(|e| format!("lab slot {slot}: devices: {e}"))?,
            ref_count,
            started_at: started_at.map(time),
            phase: Phase::parse(&phase)
                .ok_or_else(|| format!("lab slot {slot}: phase {phase:?}"))?,
            built_by,
        })
    })())
}

/// Unix milliseconds.
fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64)
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

fn from_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
    serde_json::from_str(json).map_err(|error| error.to_string())
}

/// The phase of `slot`'s lab row, if there is one (for tests).
#[cfg(test)]
pub fn lab_phase(connection: &Connection, slot: usize) -> Option<String> {
    use rusqlite::OptionalExtension;
    connection
        .query_row(
            "SELECT phase FROM labs WHERE slot = ?1",
            [slot as i64],
            |row| row.get(0),
        )
        .optional()
        .expect("query")
}
