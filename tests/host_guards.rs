//! Host guards and the server's life cycle: one server per host, signals
//! tear the lab down and leave nothing behind, a crash is cleaned up at the
//! next start, and a missing netlab stops the start with a hint.

mod common;

use common::{Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::StatusCode;

#[tokio::test]
async fn second_server_on_the_host_exits_1_naming_the_owner() {
    let netlab = require_netlab!();
    let first = Server::start(Options::new(&netlab)).await;
    let (status, log) = Server::run_to_exit(Options::new(&netlab).dirs(&first.dirs));
    assert_eq!(status.code(), Some(1));
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
    assert!(log.contains("listening on 127.0.0.1:"), "{log}");
    // The refused server must not have touched the owner's metadata.
    assert!(first.dirs.meta_file().exists());
}

#[tokio::test]
async fn sigterm_with_a_lab_up_tears_it_down_and_removes_the_metadata() {
    let netlab = require_netlab!();
    let mut s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let (status, _) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(s.dirs.netlab_registry().contains("default:"));

    let exit = s.stop_with(libc::SIGTERM);
    assert_eq!(exit.code(), Some(0), "{}", s.log());
    assert!(
        !s.dirs.netlab_registry().contains("default:"),
        "{}",
        s.dirs.netlab_registry()
    );
    assert!(s.dirs.lab_dirs().is_empty());
    assert!(!s.dirs.meta_file().exists());
}

#[tokio::test]
async fn sigint_stops_the_server_cleanly_too() {
    let netlab = require_netlab!();
    let mut s = Server::start(Options::new(&netlab)).await;
    assert_eq!(s.stop_with(libc::SIGINT).code(), Some(0));
    assert!(!s.dirs.meta_file().exists());
    // The lock is free again: a new server starts in the same TMPDIR.
    Server::start(Options::new(&netlab).dirs(&s.dirs)).await;
}

#[tokio::test]
async fn a_lab_the_store_does_not_know_is_cleared_at_the_next_start() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    // Without a store nothing tells the next start that this lab is ours
    // to keep: it is the crashed run's leftover.
    let in_memory = || {
        Options::new(&netlab)
            .env("NEOPS_IN_MEMORY", "1")
            .dirs(&dirs)
    };
    let mut crashed = Server::start(in_memory()).await;
    let (id, _) = crashed.create_session().await;
    crashed.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    crashed.stop_with(libc::SIGKILL);
    assert!(
        dirs.netlab_registry().contains("default:"),
        "the crash left the lab up"
    );
    assert_eq!(dirs.lab_dirs().len(), 1);

    let s = Server::start(in_memory()).await;
    assert!(
        !dirs.netlab_registry().contains("default:"),
        "{}",
        dirs.netlab_registry()
    );
    assert!(dirs.lab_dirs().is_empty());
    let (id, _) = s.create_session().await;
    let (status, body) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn missing_netlab_exits_1_with_an_install_hint() {
    let (status, log) =
        Server::run_to_exit(Options::new(std::path::Path::new("/nonexistent/netlab")));
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("pip install networklab"), "{log}");
}

#[test]
fn failing_netlab_version_exits_1() {
    let (status, log) = Server::run_to_exit(Options::new(std::path::Path::new("/bin/false")));
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("netlab does not work"), "{log}");
}

#[tokio::test]
async fn a_second_server_with_its_own_tmpdir_but_the_same_home_is_refused() {
    let netlab = require_netlab!();
    let first = Server::start(Options::new(&netlab)).await;
    // systemd's PrivateTmp=yes: another TMPDIR, the same netlab state folder.
    let home = first.dirs.home().display().to_string();
    let (status, log) = Server::run_to_exit(Options::new(&netlab).env("HOME", &home));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains(&format!("pid {}", first.pid())), "{log}");
}

#[tokio::test]
async fn a_lab_lock_held_by_another_process_does_not_stop_shutdown_within_its_bound() {
    let netlab = require_netlab!();
    let mut s = Server::start(Options::new(&netlab).arg("--shutdown-timeout", "2")).await;
    let (id, _) = s.create_session().await;
    let (status, _) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    // Another process (this test) takes the lab lock and keeps it.
    let lock = std::fs::File::options()
        .write(true)
        .open(s.dirs.tmp().join("netlab_pytest.lock"))
        .unwrap();
    lock.lock().unwrap();
    // Far beyond the 2 s bound: a server that waits for the lock never exits.
    let exit = s.stop_within(libc::SIGTERM, std::time::Duration::from_secs(60));
    assert_eq!(exit.and_then(|exit| exit.code()), Some(0), "{}", s.log());
    assert!(s.log().contains("did not finish within 2 s"), "{}", s.log());
    assert!(!s.dirs.meta_file().exists());
}
