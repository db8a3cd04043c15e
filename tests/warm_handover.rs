//! Warm hand-over (`--keep-idle-lab`) with real netlab, counted: a lab
//! outlives its holder, goes to the next session that asks for it without
//! a second `netlab up`, passes netlab's health check first, is reset for
//! another session (`--warm-reset`), and is torn down when it expires, when
//! another lab needs the slot, or when netlab no longer runs it.

mod common;

use std::path::Path;

use common::{CountingNetlab, Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const OTHER_LAB: &str = "defaults.device: eos\nnodes: [x1]\n";

async fn start(netlab: &CountingNetlab, keep: &str, extra: &[(&str, &str)]) -> Server {
    let mut options = Options::new(&netlab.script).arg("--keep-idle-lab", keep);
    for (flag, value) in extra {
        options = options.arg(flag, value);
    }
    Server::start(options).await
}

/// A session that brought `topology` up, then ended: its lab is kept.
async fn leave_a_kept_lab(s: &Server, topology: &str) -> String {
    let (first, _) = s.create_session().await;
    let (status, lab) = s
        .acquire(&first, Upload::new("topology.yml", topology))
        .await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    let dir = s
        .registered_dir(&first)
        .await
        .expect("netlab lists the lab");
    assert_eq!(s.end_session(&first).await, StatusCode::NO_CONTENT);
    dir
}

/// The next session's acquire of `topology`: its status and answer.
async fn next_session_acquires(s: &Server, topology: &str) -> (String, StatusCode, Value) {
    let (next, _) = s.create_session().await;
    let (status, lab) = s
        .acquire(&next, Upload::new("topology.yml", topology))
        .await;
    (next, status, lab)
}

fn event_types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

#[tokio::test]
async fn the_next_session_gets_the_kept_lab_without_a_second_netlab_up() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = start(&netlab, "600", &[]).await;
    leave_a_kept_lab(&s, TWO_NODES).await;
    let overview = s.get_json("/sessions").await;
    assert_eq!(overview["slots"][0]["phase"], "kept", "{overview}");
    let expires = overview["slots"][0]["lab"]["kept_expires_in_seconds"]
        .as_f64()
        .unwrap();
    assert!(expires > 0.0 && expires <= 600.0, "{overview}");

    let (next, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(lab["reused"], true);
    assert_eq!(lab["devices"].as_array().unwrap().len(), 2);
    assert_eq!(netlab.ups(), 1, "{:?}", netlab.commands());
    // netlab was asked whether the lab still runs before it was handed over.
    assert!(
        netlab
            .commands()
            .iter()
            .any(|c| c.starts_with("status --all"))
    );

    let events = s
        .replayed_events(100, |seen| event_types(seen).contains(&"lab_attached"))
        .await;
    let kinds = event_types(&events);
    assert!(kinds.contains(&"lab_kept"), "{kinds:?}");
    let attached = events.iter().find(|e| e["type"] == "lab_attached").unwrap();
    assert_eq!(attached["warm"], true);
    let metrics = s.get_text("/metrics").await;
    assert!(
        metrics.contains("neops_remote_lab_warm_handovers_total 1"),
        "{metrics}"
    );

    // Held again: the lab is the next session's, and ends with it as usual.
    let (status, _) = s.lab_call(Method::POST, "/lab/release", &next).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_kept_lab_nobody_asks_for_expires_and_leaves_nothing() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = start(&netlab, "1", &[]).await;
    leave_a_kept_lab(&s, TWO_NODES).await;
    let events = s
        .replayed_events(100, |seen| event_types(seen).contains(&"lab_down"))
        .await;
    let kinds = event_types(&events);
    let expired = kinds
        .iter()
        .position(|k| *k == "lab_expired")
        .expect("expired");
    assert!(kinds[expired..].contains(&"lab_down"), "{kinds:?}");
    assert!(s.dirs.lab_dirs().is_empty());
    let registry = s.dirs.netlab_registry();
    assert!(
        !registry.contains("dir:"),
        "netlab still lists a lab: {registry}"
    );
    let overview = s.get_json("/sessions").await;
    assert!(overview["slots"][0]["lab"].is_null(), "{overview}");

    let (_, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(
        (status, &lab["reused"]),
        (StatusCode::OK, &Value::Bool(false))
    );
    assert_eq!(netlab.ups(), 2);
}

#[tokio::test]
async fn another_lab_takes_the_slot_of_a_kept_one() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = start(&netlab, "600", &[]).await;
    let kept_dir = leave_a_kept_lab(&s, TWO_NODES).await;
    let (_, status, lab) = next_session_acquires(&s, OTHER_LAB).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(lab["reused"], false);
    assert_eq!(netlab.ups(), 2);
    assert!(
        !Path::new(&kept_dir).exists(),
        "the kept lab's files are gone"
    );
    assert_eq!(s.dirs.lab_dirs().len(), 1);
}

#[tokio::test]
async fn a_kept_lab_taken_down_behind_the_servers_back_is_booted_fresh() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = start(&netlab, "600", &[]).await;
    let dir = leave_a_kept_lab(&s, TWO_NODES).await;
    let down = std::process::Command::new(&real)
        .args(["down", "--cleanup"])
        .current_dir(&dir)
        .env("HOME", s.dirs.home())
        .output()
        .unwrap();
    assert!(down.status.success(), "{down:?}");

    let (next, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(lab["reused"], false, "a fresh bring-up, not the dead lab");
    assert_eq!(netlab.ups(), 2);
    assert_eq!(s.dirs.lab_dirs().len(), 1);
    assert!(s.registered_dir(&next).await.is_some());
}

#[tokio::test]
async fn a_kept_lab_whose_directory_was_deleted_is_booted_fresh_and_leaves_no_dirty_slot() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = start(&netlab, "600", &[]).await;
    leave_a_kept_lab(&s, TWO_NODES).await;
    // netlab still lists it as started: only its directory tells.
    for dir in s.dirs.lab_dirs() {
        std::fs::remove_dir_all(dir).unwrap();
    }
    let (next, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(
        lab["reused"], false,
        "a fresh bring-up, not the deleted lab"
    );
    assert_eq!(netlab.ups(), 2);
    assert!(s.registered_dir(&next).await.is_some());
    // The slot goes on: another lab replaces this one.
    assert_eq!(s.end_session(&next).await, StatusCode::NO_CONTENT);
    let (_, status, lab) = next_session_acquires(&s, OTHER_LAB).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    let health = s.get_json("/debug/health").await;
    assert_eq!(health["dirty_slots"], serde_json::json!([]), "{health}");
}

#[tokio::test]
async fn the_warm_reset_runs_for_another_session_and_a_failing_one_means_a_fresh_lab() {
    let real = require_netlab!();
    // `netlab initial -o DIR` writes the initial configurations instead of
    // deploying them: it succeeds without devices to talk to.
    let netlab = CountingNetlab::new(&real);
    let s = start(
        &netlab,
        "600",
        &[("--warm-reset", "initial -o reset-configs")],
    )
    .await;
    let dir = leave_a_kept_lab(&s, TWO_NODES).await;
    let (next, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(
        (status, &lab["reused"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    assert!(
        netlab
            .commands()
            .contains(&"initial -o reset-configs".to_string())
    );
    assert!(Path::new(&dir).join("reset-configs").is_dir());
    assert_eq!(netlab.ups(), 1);
    assert_eq!(s.end_session(&next).await, StatusCode::NO_CONTENT);
    drop(s);

    // The external provider's devices cannot be configured: netlab's
    // `initial` fails, and the next session gets a lab booted afresh.
    let netlab = CountingNetlab::new(&real);
    let s = start(&netlab, "600", &[("--warm-reset", "initial")]).await;
    leave_a_kept_lab(&s, TWO_NODES).await;
    let (_, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(lab["reused"], false);
    assert!(netlab.commands().iter().any(|c| c == "initial"));
    assert_eq!(netlab.ups(), 2);
    assert_eq!(s.dirs.lab_dirs().len(), 1);
}

#[tokio::test]
async fn reuse_false_and_a_stop_end_a_kept_lab() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let mut s = start(&netlab, "600", &[]).await;
    leave_a_kept_lab(&s, TWO_NODES).await;
    let (next, _) = s.create_session().await;
    let (status, lab) = s
        .acquire(&next, Upload::new("topology.yml", TWO_NODES).reuse(false))
        .await;
    assert_eq!(
        (status, &lab["reused"]),
        (StatusCode::OK, &Value::Bool(false))
    );
    assert_eq!(netlab.ups(), 2);
    assert_eq!(s.end_session(&next).await, StatusCode::NO_CONTENT);
    assert_eq!(s.get_json("/sessions").await["slots"][0]["phase"], "kept");
    // A stop tears kept labs down like any other.
    assert!(s.stop_with(libc::SIGTERM).success());
    assert!(s.dirs.lab_dirs().is_empty());
}

#[tokio::test]
async fn a_kept_lab_outlives_a_restart_that_keeps_the_labs() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let dirs = ServerDirs::new();
    let options = || {
        Options::new(&netlab.script)
            .arg("--keep-idle-lab", "600")
            .env("NEOPS_KEEP_LABS_ON_STOP", "true")
            .dirs(&dirs)
    };
    let mut s = Server::start(options()).await;
    leave_a_kept_lab(&s, TWO_NODES).await;
    assert!(s.stop_with(libc::SIGTERM).success());
    assert_eq!(dirs.lab_dirs().len(), 1, "the kept lab is left running");

    // The next start finds it running and keeps it again, for a whole
    // window: the next session attaches without a bring-up.
    let s = Server::start(options()).await;
    let overview = s.get_json("/sessions").await;
    assert_eq!(overview["slots"][0]["phase"], "kept", "{overview}");
    let events = s
        .replayed_events(20, |events| event_types(events).contains(&"lab_kept"))
        .await;
    assert!(event_types(&events).contains(&"lab_kept"), "{events:?}");
    let (_, status, lab) = next_session_acquires(&s, TWO_NODES).await;
    assert_eq!(
        (status, &lab["reused"]),
        (StatusCode::OK, &Value::Bool(true)),
        "{lab}"
    );
    assert_eq!(netlab.ups(), 1, "{:?}", netlab.commands());
}
