use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Map;

use super::*;
use crate::auth::Caller;
use crate::domain::ClientInfo;
use crate::domain::events::{EndReason, EventKind};
use crate::domain::{Device, LabChange, LabFiles};
use crate::queue::Lease;
use crate::session_id::SessionId;

fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
    SqliteStore::open(
        dir,
        Box::new(|event: &Event| format!("{{\"id\":{}}}", event.id)),
    )
}

/// Numbers events as the coordinator's bus does.
struct Events(u64);

impl Events {
    fn next(&mut self, kind: EventKind) -> Event {
        self.0 += 1;
        Event {
            id: self.0,
            at: SystemTime::now(),
            kind,
        }
    }
}

fn joined(id: SessionId, key: Option<&str>) -> EventKind {
    EventKind::SessionJoined {
        session: id,
        position: 0,
        client: Some(Arc::new(ClientInfo {
            user: Some("ci".into()),
            ..ClientInfo::default()
        })),
        owner: Caller::restored("ci").into(),
        key: key.map(str::to_string),
        // The keyed one announced a lease, the others none.
        lease: key.and(Lease::every(5)),
    }
}

fn lab(slot: usize, change: LabChange) -> EventKind {
    EventKind::Lab {
        slot,
        host: None,
        change,
    }
}

async fn write(store: &SqliteStore, events: &[Event]) -> Result<(), StoreError> {
    for event in events {
        store.append(event);
    }
    store
        .committed(events[0].id..=events[events.len() - 1].id)
        .await
}

#[tokio::test]
async fn what_is_committed_comes_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    let ids: Vec<SessionId> = (0..3).map(|_| SessionId::new()).collect();
    let files = LabFiles {
        dir: dir.path().join("lab-1"),
        netlab_dir: dir.path().join("lab-1/topo"),
    };
    let device = Device::from_map(
        "r1".into(),
        &Map::from_iter([("ansible_host".into(), "192.0.2.1".into())]),
    );
    let mut events = Events(0);
    let batch = vec![
        events.next(joined(ids[0], Some("key-1"))),
        events.next(joined(ids[1], None)),
        events.next(joined(ids[2], None)),
        events.next(EventKind::SessionPromoted {
            session: ids[0],
            slot: 1,
            host: None,
            waited: Duration::ZERO,
        }),
        events.next(lab(
            1,
            LabChange::Starting {
                topology: "topology.yml".into(),
                identity: "ab".repeat(32),
                files: files.clone(),
                built_by: "26.10".into(),
            },
        )),
        events.next(lab(
            1,
            LabChange::Up {
                devices: Arc::new(vec![device.clone()]),
                took: Duration::from_secs(3),
            },
        )),
        events.next(EventKind::SessionEnded {
            session: ids[1],
            reason: EndReason::Closed,
            waited: Duration::ZERO,
            held: None,
        }),
        events.next(EventKind::SessionBypassed {
            session: ids[2],
            by: SessionId::new(),
            overtaken: 2,
        }),
    ];
    write(&store, &batch).await.unwrap();
    store.close().unwrap();
    drop(store);

    let store = open(dir.path()).unwrap();
    let snapshot = store.load().unwrap();
    let order: Vec<SessionId> = snapshot.sessions.iter().map(|s| s.id).collect();
    assert_eq!(
        order,
        [ids[0], ids[2]],
        "the line's order, without the ended one"
    );
    assert_eq!(snapshot.sessions[0].promoted.map(|(_, slot)| slot), Some(1));
    assert_eq!(snapshot.sessions[0].key.as_deref(), Some("key-1"));
    assert_eq!(snapshot.sessions[0].owner.as_deref(), Some("ci"));
    assert_eq!(snapshot.sessions[0].lease, Lease::every(5));
    assert_eq!(snapshot.sessions[1].lease, None);
    assert_eq!(
        snapshot.sessions[0]
            .client
            .as_ref()
            .and_then(|c| c.user.as_deref()),
        Some("ci")
    );
    assert_eq!(snapshot.sessions[1].promoted, None);
    assert_eq!(
        (
            snapshot.sessions[0].overtaken,
            snapshot.sessions[1].overtaken
        ),
        (0, 2)
    );
    assert_eq!(snapshot.last_event_id, 8);
    let [stored] = snapshot.labs.as_slice() else {
        panic!("one lab: {:?}", snapshot.labs)
    };
    assert_eq!(
        (
            stored.slot,
            &stored.files,
            stored.phase.as_str(),
            stored.ref_count,
            stored.built_by.as_deref()
        ),
        (1, &files, "up", 1, Some("26.10"))
    );
    assert_eq!(stored.devices.as_deref(), Some(&[device][..]));
    assert!(stored.was_running());
}

#[tokio::test]
async fn a_lab_that_is_torn_down_or_failed_is_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    let files = LabFiles {
        dir: "/nowhere/lab-1".into(),
        netlab_dir: "/nowhere/lab-1".into(),
    };
    let starting = |identity: &str| LabChange::Starting {
        topology: "t.yml".into(),
        identity: identity.into(),
        files: files.clone(),
        built_by: "26.10".into(),
    };
    let mut events = Events(0);
    let batch = vec![
        events.next(lab(1, starting("a"))),
        events.next(lab(
            1,
            LabChange::Failed {
                command: None,
                exit_code: Some(1),
                error: "boom".into(),
            },
        )),
        events.next(lab(2, starting("b"))),
        events.next(lab(2, LabChange::TearingDown)),
    ];
    write(&store, &batch).await.unwrap();
    assert_eq!(rows::lab_phase(&store.reader(), 1), None);
    assert_eq!(
        rows::lab_phase(&store.reader(), 2).as_deref(),
        Some("tearing_down")
    );
    write(
        &store,
        &[events.next(lab(
            2,
            LabChange::Down {
                took: Duration::ZERO,
            },
        ))],
    )
    .await
    .unwrap();
    assert_eq!(rows::lab_phase(&store.reader(), 2), None);
}

#[tokio::test]
async fn kept_labs_restart_idle_and_the_others_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    let mut events = Events(0);
    let mut batch = Vec::new();
    for slot in 1..=2 {
        batch.push(events.next(lab(
            slot,
            LabChange::Starting {
                topology: "t.yml".into(),
                identity: "x".into(),
                files: LabFiles {
                    dir: format!("/l{slot}").into(),
                    netlab_dir: format!("/l{slot}").into(),
                },
                built_by: "26.10".into(),
            },
        )));
    }
    write(&store, &batch).await.unwrap();
    store.keep_labs(&[2]).unwrap();
    let reader = store.reader();
    assert_eq!(rows::lab_phase(&reader, 1), None);
    assert_eq!(rows::lab_phase(&reader, 2).as_deref(), Some("idle"));
}

#[test]
fn the_history_keeps_only_the_most_recent_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).unwrap();
    let mut events = Events(0);
    for _ in 0..HISTORY + 10 {
        store.append(&events.next(lab(1, LabChange::Idle)));
    }
    store.close().unwrap();
    let count: i64 = store
        .reader()
        .query_row("SELECT COUNT(*) FROM events", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, HISTORY as i64);
    assert_eq!(
        rows::last_event_id(&store.reader()).unwrap(),
        (HISTORY + 10) as u64
    );
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open(dir.path()).unwrap();
    let error = open(dir.path()).err().expect("refused");
    assert!(matches!(error, StoreError::Locked { .. }), "{error}");
}

#[test]
fn garbage_an_empty_file_and_a_truncated_database_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE);
    for content in [&b"this is not a database, just some text"[..], b""] {
        std::fs::write(&path, content).unwrap();
        let error = open(dir.path()).err().expect("refused");
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
        assert_eq!(std::fs::read(&path).unwrap(), content, "left as it was");
    }

    std::fs::remove_file(&path).unwrap();
    let store = open(dir.path()).unwrap();
    let mut events = Events(0);
    for _ in 0..200 {
        store.append(&events.next(joined(SessionId::new(), None)));
    }
    store.close().unwrap();
    drop(store);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 8192, "a database of several pages");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let error = open(dir.path()).err().expect("refused");
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
}

#[test]
fn a_directory_in_the_databases_place_is_refused_as_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE);
    std::fs::create_dir(&path).unwrap();
    let error = open(dir.path()).err().expect("refused");
    assert!(matches!(error, StoreError::Foreign { .. }), "{error}");
    assert!(error.to_string().contains("is a directory"), "{error}");
    assert!(path.is_dir(), "left as it was");
}

#[test]
fn a_store_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()).unwrap());
    let path = dir.path().join(DATABASE);
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", schema::latest() + 1)
        .unwrap();
    let error = open(dir.path()).err().expect("refused");
    assert!(matches!(error, StoreError::TooNew { .. }), "{error}");
}

#[test]
fn a_write_ahead_log_without_its_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(format!("{DATABASE}-wal"));
    std::fs::write(&log, b"frames of an older store").unwrap();
    let error = open(dir.path()).err().expect("refused");
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("-wal exists without"), "{error}");
    assert!(!dir.path().join(DATABASE).exists(), "no new database made");
}

fn application_id(path: &Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn another_programs_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE);
    // An unmarked database with other tables, and a marked one with ours.
    let others = [
        "CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');",
        "CREATE TABLE sessions (x); CREATE TABLE labs (x); CREATE TABLE events (x);
         PRAGMA application_id = 1179865678; PRAGMA user_version = 2;",
    ];
    for setup in others {
        let _ = std::fs::remove_file(&path);
        Connection::open(&path)
            .unwrap()
            .execute_batch(setup)
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let error = open(dir.path()).err().expect("refused");
        assert!(matches!(error, StoreError::Foreign { .. }), "{error}");
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("not a neops-remote-lab state store")
                && message.contains("--state-dir"),
            "{message}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{setup}: changed");
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        files.sort();
        assert_eq!(files, [DATABASE, LOCK_FILE], "{setup}: files beside it");
    }
}

#[test]
fn a_store_of_the_previous_version_opens_and_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DATABASE);
    let session = SessionId::new();
    let store = open(dir.path()).unwrap();
    store.append(&Events(0).next(joined(session, None)));
    store.close().unwrap();
    drop(store);
    assert_eq!(application_id(&path), schema::APPLICATION_ID);
    // As the first version wrote it: no mark, schema 1 (no owners, no
    // leases, no overtaken counts, no lab hosts).
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "ALTER TABLE sessions DROP COLUMN owner;
             ALTER TABLE sessions DROP COLUMN heartbeat_seconds;
             ALTER TABLE sessions DROP COLUMN overtaken;
             ALTER TABLE labs DROP COLUMN built_by;
             DROP TABLE hosts;
             PRAGMA user_version = 1; PRAGMA application_id = 0;",
        )
        .unwrap();
    let store = open(dir.path()).unwrap();
    let snapshot = store.load().unwrap();
    assert_eq!(snapshot.sessions.len(), 1);
    store.close().unwrap();
    drop(store);
    assert_eq!(application_id(&path), schema::APPLICATION_ID, "marked");
}
