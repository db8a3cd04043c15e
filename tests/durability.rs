//! The queue and the labs survive restarts and crashes: the real binary,
//! real netlab (its `external` provider), and the state store in each
//! server's own state directory. netlab runs through a counting
//! pass-through (real netlab, every command line logged), so a test can
//! tell that a restart brought no lab up again.

mod common;

use std::path::{Path, PathBuf};

use common::{Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

const OTHER_LAB: &str = "defaults.device: eos\nnodes: [a1, a2, a3]\nlinks: [a1-a2, a2-a3]\n";

/// Real netlab behind a script that logs each command line first.
struct CountingNetlab {
    _dir: tempfile::TempDir,
    script: PathBuf,
    log: PathBuf,
}

impl CountingNetlab {
    fn new(real: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (script, log) = (dir.path().join("netlab"), dir.path().join("commands.log"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# Real netlab, each command logged first.\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        CountingNetlab {
            _dir: dir,
            script,
            log,
        }
    }

    /// How many `netlab up` ran so far.
    fn ups(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("up "))
            .count()
    }
}

fn options(netlab: &CountingNetlab, dirs: &ServerDirs) -> Options {
    Options::new(&netlab.script).log_level("INFO").dirs(dirs)
}

/// Each session's `{status, position}`, as `GET /session/{id}` says.
async fn standings(server: &Server, ids: &[String]) -> Vec<(String, u64)> {
    let mut standings = Vec::new();
    for id in ids {
        let (status, body) = server.session_status(id).await;
        assert_eq!(status, StatusCode::OK, "session {id} is gone: {body}");
        standings.push((
            body["status"].as_str().unwrap().to_string(),
            body["position"].as_u64().unwrap(),
        ));
    }
    standings
}

/// What the original positions look like with one slot: the head active,
/// everyone else waiting at its index.
fn one_slot_line(count: usize) -> Vec<(String, u64)> {
    (0..count)
        .map(|index| match index {
            0 => ("active".to_string(), 0),
            _ => ("waiting".to_string(), index as u64),
        })
        .collect()
}

async fn create_sessions(server: &Server, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(server.create_session().await.0);
    }
    ids
}

async fn acquire(server: &Server, session: &str, topology: &str) -> Value {
    let (status, body) = server
        .acquire(session, Upload::new("topology.yml", topology))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_crash_loses_no_session_and_no_running_lab() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let mut first = Server::start(options(&netlab, &dirs)).await;
    let ids = create_sessions(&first, 10).await;
    let before = acquire(&first, &ids[0], TWO_NODES).await;
    assert_eq!(before["reused"], false);
    let line = standings(&first, &ids).await;
    assert_eq!(line, one_slot_line(10));
    eprintln!(
        "before kill -9: 10 sessions {line:?}; netlab up runs: {}",
        netlab.ups()
    );

    first.stop_with(libc::SIGKILL);
    let second = Server::start(options(&netlab, &dirs)).await;
    let after_restart = standings(&second, &ids).await;
    eprintln!(
        "after restart: {after_restart:?}; netlab up runs: {}",
        netlab.ups()
    );
    assert_eq!(after_restart, line, "the same sessions, in the same order");
    let (_, lab) = second.lab_call(reqwest::Method::GET, "/lab", &ids[0]).await;
    assert_eq!(
        (&lab["running"], &lab["ref_count"]),
        (&Value::Bool(true), &Value::from(0))
    );
    assert_eq!(lab["devices"], before["devices"], "answered from the store");
    assert_eq!(netlab.ups(), 1, "no new netlab up at the restart");

    let again = acquire(&second, &ids[0], TWO_NODES).await;
    eprintln!(
        "acquire with reuse after restart: reused={}; netlab up runs: {}",
        again["reused"],
        netlab.ups()
    );
    assert_eq!(again["reused"], true);
    assert_eq!(again["devices"], before["devices"]);
    assert_eq!(netlab.ups(), 1);
    let sessions = second.get_json("/sessions").await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn with_two_slots_both_labs_come_back_after_a_crash() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let two_slots = || options(&netlab, &dirs).arg("--lab-slots", "2");
    let mut first = Server::start(two_slots()).await;
    let ids = create_sessions(&first, 3).await;
    let labs = [
        acquire(&first, &ids[0], TWO_NODES).await,
        acquire(&first, &ids[1], OTHER_LAB).await,
    ];
    assert_eq!(netlab.ups(), 2);

    first.stop_with(libc::SIGKILL);
    let second = Server::start(two_slots()).await;
    let line = standings(&second, &ids).await;
    assert_eq!(
        line,
        [
            ("active".into(), 0),
            ("active".into(), 0),
            ("waiting".into(), 1)
        ]
    );
    for (id, (topology, before)) in ids.iter().zip([TWO_NODES, OTHER_LAB].iter().zip(&labs)) {
        let again = acquire(&second, id, topology).await;
        assert_eq!(again["reused"], true, "{id}");
        assert_eq!(again["devices"], before["devices"]);
    }
    assert_eq!(
        netlab.ups(),
        2,
        "both labs re-adopted, none brought up again"
    );
}

#[tokio::test]
async fn a_graceful_restart_keeps_the_queue_and_tears_the_labs_down() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let mut first = Server::start(options(&netlab, &dirs)).await;
    let ids = create_sessions(&first, 3).await;
    acquire(&first, &ids[0], TWO_NODES).await;

    assert!(first.stop_with(libc::SIGTERM).success());
    assert!(
        !dirs.netlab_registry().contains("default:"),
        "torn down at the stop: {}",
        dirs.netlab_registry()
    );
    assert!(dirs.lab_dirs().is_empty());
    let second = Server::start(options(&netlab, &dirs)).await;
    assert_eq!(standings(&second, &ids).await, one_slot_line(3));
    let again = acquire(&second, &ids[0], TWO_NODES).await;
    assert_eq!(again["reused"], false, "a new lab");
    assert_eq!(netlab.ups(), 2);
}

#[tokio::test]
async fn keep_labs_on_stop_leaves_them_for_the_next_start() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let keeping = options(&netlab, &dirs).env("NEOPS_KEEP_LABS_ON_STOP", "1");
    let mut first = Server::start(keeping).await;
    let ids = create_sessions(&first, 2).await;
    let before = acquire(&first, &ids[0], TWO_NODES).await;

    assert!(first.stop_with(libc::SIGTERM).success());
    assert!(dirs.netlab_registry().contains("default:"), "still running");
    let second = Server::start(options(&netlab, &dirs)).await;
    assert_eq!(standings(&second, &ids).await, one_slot_line(2));
    let again = acquire(&second, &ids[0], TWO_NODES).await;
    assert_eq!(
        (&again["reused"], &again["devices"]),
        (&Value::Bool(true), &before["devices"])
    );
    assert_eq!(netlab.ups(), 1);
}

#[tokio::test]
async fn a_lab_whose_directory_was_deleted_is_cleared_and_the_queue_kept() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let mut first = Server::start(options(&netlab, &dirs)).await;
    let ids = create_sessions(&first, 2).await;
    acquire(&first, &ids[0], TWO_NODES).await;
    first.stop_with(libc::SIGKILL);
    for dir in dirs.lab_dirs() {
        std::fs::remove_dir_all(dir).unwrap();
    }

    let second = Server::start(options(&netlab, &dirs)).await;
    assert_eq!(standings(&second, &ids).await, one_slot_line(2));
    assert!(
        !dirs.netlab_registry().contains("default:"),
        "the lab netlab still listed was cleared: {}",
        dirs.netlab_registry()
    );
    let (_, lab) = second.lab_call(reqwest::Method::GET, "/lab", &ids[0]).await;
    assert_eq!(lab["running"], false);
    let again = acquire(&second, &ids[0], TWO_NODES).await;
    assert_eq!(again["reused"], false);
}

/// Starts a server on `dirs` that must refuse to start; returns its log.
fn refused(netlab: &Path, dirs: &ServerDirs) -> String {
    let (status, log) = Server::run_to_exit(Options::new(netlab).log_level("INFO").dirs(dirs));
    assert!(!status.success(), "started anyway: {log}");
    log
}

#[tokio::test]
async fn a_damaged_store_refuses_to_start_and_is_left_as_it_was() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let database = dirs.state().join("state.db");
    std::fs::create_dir_all(dirs.state()).unwrap();
    std::fs::write(&database, b"garbage, not a database").unwrap();
    let log = refused(&netlab, &dirs);
    assert!(log.contains(&database.display().to_string()), "{log}");
    assert!(log.contains("damaged") && log.contains("backup"), "{log}");
    assert_eq!(
        std::fs::read(&database).unwrap(),
        b"garbage, not a database"
    );

    // A real store with a queue in it, cut in half.
    std::fs::remove_file(&database).unwrap();
    let mut server = Server::start(Options::new(&netlab).dirs(&dirs)).await;
    create_sessions(&server, 300).await;
    assert!(server.stop_with(libc::SIGTERM).success());
    let bytes = std::fs::read(&database).unwrap();
    std::fs::write(&database, &bytes[..bytes.len() / 2]).unwrap();
    let log = refused(&netlab, &dirs);
    assert!(log.contains("is damaged"), "{log}");
}

/// `PRAGMA application_id` of the database at `path`.
fn application_id(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA application_id", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn another_programs_database_is_refused_untouched_and_our_previous_one_is_marked() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let database = dirs.state().join("state.db");
    std::fs::create_dir_all(dirs.state()).unwrap();
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    let before = std::fs::read(&database).unwrap();
    let log = refused(&netlab, &dirs);
    assert!(
        log.contains(&format!(
            "{} is not a neops-remote-lab state store",
            database.display()
        )) && log.contains("Move it away"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&database).unwrap(),
        before,
        "the file changed"
    );

    // A store as the previous version left it: our tables, no mark.
    std::fs::remove_file(&database).unwrap();
    let mut server = Server::start(Options::new(&netlab).dirs(&dirs)).await;
    let (session, _) = server.create_session().await;
    assert!(server.stop_with(libc::SIGTERM).success());
    rusqlite::Connection::open(&database)
        .unwrap()
        .execute_batch("PRAGMA application_id = 0;")
        .unwrap();
    let mut server = Server::start(Options::new(&netlab).dirs(&dirs)).await;
    assert_eq!(server.session_status(&session).await.0, StatusCode::OK);
    assert!(server.stop_with(libc::SIGTERM).success());
    assert_eq!(application_id(&database), 0x4e52_4c41, "not marked as ours");
}

#[tokio::test]
async fn a_state_dir_without_write_permission_refuses_to_start() {
    use std::os::unix::fs::PermissionsExt;
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    std::fs::create_dir_all(dirs.state()).unwrap();
    std::fs::set_permissions(dirs.state(), PermissionsExt::from_mode(0o555)).unwrap();
    let mut options = Options::new(&netlab).log_level("INFO").dirs(&dirs);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Permissions do not bind root: run the server as `nobody`, with
        // everything but the state directory open to it.
        let root = dirs.home().parent().unwrap().to_path_buf();
        for dir in [root.clone(), dirs.home(), dirs.tmp()] {
            std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o777)).unwrap();
        }
        options = options.run_as_user(65534);
    }
    let (status, log) = Server::run_to_exit(options);
    assert!(!status.success(), "started anyway: {log}");
    assert!(log.contains(&dirs.state().display().to_string()), "{log}");
    assert!(log.contains("make the state directory writable"), "{log}");
}

#[tokio::test]
async fn a_full_disk_answers_503_and_loses_nothing_committed() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    // Files may not grow beyond 256 KiB: the store's writes fail as they
    // would on a full disk once its write-ahead log reaches that size.
    let limited = Options::new(&netlab)
        .log_level("WARNING")
        .dirs(&dirs)
        .file_size_limit(256 * 1024);
    let mut server = Server::start(limited).await;
    let mut created: Vec<String> = Vec::new();
    let refusal = loop {
        let response = server
            .http
            .post(server.url("/session"))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if status != StatusCode::CREATED {
            break (status, body);
        }
        created.push(body["session_id"].as_str().unwrap().to_string());
        assert!(created.len() < 5000, "the store never filled up");
    };
    assert_eq!(refusal.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refusal.1);
    let detail = refusal.1["detail"].as_str().unwrap();
    assert!(
        detail.contains("could not be saved to the state store"),
        "{detail}"
    );
    assert!(!created.is_empty());
    let sessions = server.get_json("/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        created.len(),
        "the refused session does not exist"
    );

    // The holder leaves while the disk is full: gone at once, and told that
    // this is not saved yet.
    let holder = created.remove(0);
    assert_eq!(
        server.end_session(&holder).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        server.session_status(&holder).await.0,
        StatusCode::NOT_FOUND
    );
    // Room again: the store catches up, in order, with the next change.
    let mut unlimited = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to fill.
    unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut unlimited) };
    unlimited.rlim_cur = unlimited.rlim_max;
    // SAFETY: plain system call on our own child's pid with valid pointers.
    let lifted = unsafe {
        libc::prlimit(
            server.pid() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &unlimited,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(lifted, 0, "{}", std::io::Error::last_os_error());
    created.push(server.create_session().await.0);

    server.stop_with(libc::SIGKILL);
    let server = Server::start(Options::new(&netlab).dirs(&dirs)).await;
    assert_eq!(
        standings(&server, &created).await,
        one_slot_line(created.len())
    );
    assert_eq!(
        server.session_status(&holder).await.0,
        StatusCode::NOT_FOUND,
        "the holder that left does not come back"
    );
}
