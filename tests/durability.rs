//! The queue and the labs survive restarts and crashes: the real binary,
//! real netlab (its `external` provider), and the state store in each
//! server's own state directory. netlab runs through a counting
//! pass-through (real netlab, every command line logged), so a test can
//! tell that a restart brought no lab up again.

mod common;

use std::path::Path;

use common::{CountingNetlab, Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

const OTHER_LAB: &str = "defaults.device: eos\nnodes: [a1, a2, a3]\nlinks: [a1-a2, a2-a3]\n";

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

/// Sets the server's file size limit (`RLIMIT_FSIZE`): a write beyond it
/// fails as on a full disk (`None`: no limit).
fn limit_file_size(server: &Server, bytes: Option<u64>) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to fill.
    unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) };
    limit.rlim_cur = bytes.unwrap_or(limit.rlim_max);
    // SAFETY: plain system call on our own child's pid with valid pointers.
    let set = unsafe {
        libc::prlimit(
            server.pid() as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
}

/// Why `/debug/health` says changes wait to be saved (`None`: they don't).
async fn unsaved(server: &Server) -> Option<String> {
    let health = server.get_json("/debug/health").await;
    health["unsaved"].as_str().map(str::to_string)
}

#[tokio::test]
async fn a_full_disk_answers_503_only_for_what_did_not_happen() {
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
    assert!(detail.contains("it was not made"), "{detail}");
    let sessions = server.get_json("/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        created.len(),
        "the refused session does not exist"
    );
    assert!(unsaved(&server).await.is_some());

    // While that waits to be saved, every change is refused, and a refusal
    // means nothing happened: the holder that asks to leave still holds.
    let holder = created[0].clone();
    let (status, body) = server
        .lab_call(
            reqwest::Method::DELETE,
            &format!("/session/{holder}"),
            &holder,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"),
        "{body}"
    );
    assert_eq!(standings(&server, &created[..1]).await, one_slot_line(1));

    // A stop with changes it could not save says so, and fails.
    let stopped = server.stop_with(libc::SIGTERM);
    assert!(!stopped.success(), "{}", server.log());
    assert!(
        server.log().contains("could not be saved"),
        "{}",
        server.log()
    );
    // What was answered is what comes back: every created session, in
    // order, the holder still holding.
    let server = Server::start(Options::new(&netlab).dirs(&dirs)).await;
    assert_eq!(
        standings(&server, &created).await,
        one_slot_line(created.len())
    );
}

#[tokio::test]
async fn a_change_is_answered_only_once_it_is_on_disk() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let options = || Options::new(&netlab).log_level("WARNING").dirs(&dirs);
    // SIGXFSZ is ignored by servers that get a limit: set one no write
    // reaches, to lower it later.
    let mut server = Server::start(options().file_size_limit(u64::MAX >> 1)).await;
    let holder = server.create_session().await.0;
    let waiter = server.create_session().await.0;
    acquire(&server, &holder, TWO_NODES).await;

    // The disk fills up just as the holder leaves: the session ends, its
    // lab is torn down, the slot goes on, but none of it can be saved.
    limit_file_size(&server, Some(1));
    let leaving = tokio::spawn({
        let (http, url) = (
            server.http.clone(),
            server.url(&format!("/session/{holder}")),
        );
        async move { http.delete(url).send().await.unwrap().status() }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while unsaved(&server).await.is_none() {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Not answered while a crash would still bring the holder back (the
    // server has answered others since: the holder has left the line).
    let line = server.get_json("/sessions").await;
    assert_eq!(line["sessions"][0]["id"], &waiter[..8], "{line}");
    assert!(!leaving.is_finished());
    // Nor is its end reported to anyone who asks.
    let (status, body) = server.session_status(&holder).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("could not be saved yet"), "{detail}");
    // Room again: the store catches up, and only then the answer comes.
    limit_file_size(&server, None);
    assert_eq!(leaving.await.unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(unsaved(&server).await, None);

    server.stop_with(libc::SIGKILL);
    let server = Server::start(options()).await;
    assert_eq!(
        server.session_status(&holder).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(standings(&server, &[waiter]).await, one_slot_line(1));
}

#[tokio::test]
async fn a_promotion_that_could_not_be_saved_is_not_reported() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let options = || Options::new(&netlab).log_level("WARNING").dirs(&dirs);
    let mut server = Server::start(options().file_size_limit(u64::MAX >> 1)).await;
    let holder = server.create_session().await.0;
    let waiter = server.create_session().await.0;

    // The disk fills up as the holder (no lab) leaves: in memory the
    // waiter is promoted at once, on disk it is still waiting.
    limit_file_size(&server, Some(1));
    let leaving = tokio::spawn({
        let (http, url) = (
            server.http.clone(),
            server.url(&format!("/session/{holder}")),
        );
        async move { http.delete(url).send().await.unwrap().status() }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Watch the waiter itself: the holder is listed first until it has left.
    let waiter_active = |line: &serde_json::Value| {
        line["sessions"][0]["id"] == waiter[..8] && line["sessions"][0]["status"] == "active"
    };
    while !waiter_active(&server.get_json("/sessions").await) {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Neither a status poll nor a long-poll reports what a crash undoes.
    for query in ["", "?wait=1"] {
        let (status, body) = server
            .lab_call(
                reqwest::Method::GET,
                &format!("/session/{waiter}{query}"),
                &waiter,
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{query}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("try again once there is room"), "{detail}");
    }
    // Room again: the promotion is saved, and reported.
    limit_file_size(&server, None);
    assert_eq!(leaving.await.unwrap(), StatusCode::NO_CONTENT);
    assert_eq!(server.session_status(&waiter).await.1["status"], "active");
    server.stop_with(libc::SIGKILL);
    let server = Server::start(options()).await;
    assert_eq!(server.session_status(&waiter).await.1["status"], "active");
}

#[tokio::test]
async fn after_a_restart_only_the_sessions_that_show_a_sign_of_life_keep_their_place() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let claim = || options(&netlab, &dirs).arg("--claim-timeout", "3");
    let mut first = Server::start(claim()).await;
    // A holder whose job died while the server was down, a live waiter,
    // and a waiter that died too.
    let ids = create_sessions(&first, 3).await;
    let (dead_holder, live) = (&ids[0], &ids[1]);
    acquire(&first, dead_holder, TWO_NODES).await;
    first.stop_with(libc::SIGKILL);

    let second = Server::start(claim()).await;
    // Only the live one beats; the dead ones are gone within the claim
    // window, not after the active (300 s) or waiting (600 s) timeout.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert_eq!(second.heartbeat(live).await, StatusCode::NO_CONTENT);
        // Looking at the line is no sign of life (a status poll would be).
        let listed = second.get_json("/sessions").await;
        let listed: Vec<&str> = listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|session| session["id"].as_str().unwrap())
            .collect();
        if listed == [&live[..8]] {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", second.log());
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    second.wait_until_active(live).await;
    let ended = |event: &Value| event["type"] == "session_ended";
    let events = second
        .replayed_events(64, |events| events.iter().filter(|e| ended(e)).count() == 2)
        .await;
    let reasons: Vec<&str> = events
        .iter()
        .filter(|event| ended(event))
        .map(|event| event["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["claim_expired", "claim_expired"], "{events:?}");
}
