//! Lab sharing, switching, upload rules and eviction, end to end with real
//! netlab. netlab's own registry (`~/.netlab/status.yaml` of the server's
//! HOME) tells whether a lab is really up or really gone.

mod common;

use common::{Options, Server, TWO_NODES, Upload, tree};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const OTHER: &str = "defaults.device: eos\nnodes: [x1, x2, x3]\n";

#[tokio::test]
async fn same_content_under_another_name_reuses_the_running_lab() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let (_, first) = s.acquire(&id, Upload::new("one.yml", TWO_NODES)).await;
    assert_eq!(first["reused"], false);
    let dir = s.registered_dir(&id).await.expect("a lab is registered");

    let (status, second) = s.acquire(&id, Upload::new("two.yaml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["reused"], true);
    assert_eq!(second["devices"], first["devices"]);
    assert_eq!(
        s.registered_dir(&id).await.as_deref(),
        Some(dir.as_str()),
        "netlab was not run again"
    );
    let (_, lab) = s.lab_call(Method::GET, "/lab", &id).await;
    assert_eq!(
        (lab["ref_count"].as_u64(), lab["topology"].as_str()),
        (Some(2), Some("one.yml"))
    );

    // Released to idle, a re-attach still says reused.
    s.lab_call(Method::POST, "/lab/release", &id).await;
    s.lab_call(Method::POST, "/lab/release", &id).await;
    let (_, lab) = s.lab_call(Method::GET, "/lab", &id).await;
    assert_eq!(
        (lab["running"].as_bool(), lab["ref_count"].as_u64()),
        (Some(true), Some(0))
    );
    let (_, third) = s.acquire(&id, Upload::new("three.yml", TWO_NODES)).await;
    assert_eq!(third["reused"], true);
}

#[tokio::test]
async fn idle_lab_switches_topology_and_exclusive_request_restarts() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    s.acquire(&id, Upload::new("a.yml", TWO_NODES)).await;
    let first_dir = s.registered_dir(&id).await.unwrap();
    s.lab_call(Method::POST, "/lab/release", &id).await;

    let (status, switched) = s.acquire(&id, Upload::new("b.yml", OTHER)).await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(switched["reused"], false);
    assert_eq!(switched["devices"].as_array().unwrap().len(), 3);
    let second_dir = s.registered_dir(&id).await.unwrap();
    assert_ne!(first_dir, second_dir);
    assert!(
        !std::path::Path::new(&first_dir).exists(),
        "the old lab directory is removed"
    );
    assert_eq!(s.dirs.lab_dirs().len(), 1);

    s.lab_call(Method::POST, "/lab/release", &id).await;
    let (status, restarted) = s
        .acquire(&id, Upload::new("b.yml", OTHER).reuse(false))
        .await;
    assert_eq!(
        (status, &restarted["reused"]),
        (StatusCode::OK, &Value::Bool(false))
    );
    assert_ne!(
        s.registered_dir(&id).await.unwrap(),
        second_dir,
        "a fresh bring-up"
    );
}

#[tokio::test]
async fn bad_upload_names_are_refused_and_nothing_is_written() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let before = tree(&s.dirs.tmp());
    for name in [
        "/etc/evil.cfg",
        "../evil.cfg",
        "configs/../../evil.cfg",
        "",
        "a\0b.cfg",
        "configs/",
    ] {
        let (status, body) = s
            .acquire(&id, Upload::new("t.yml", TWO_NODES).extra(name, "x"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}: {body}");
    }
    for name in ["../t.yml", "/abs/t.yml"] {
        let (status, _) = s.acquire(&id, Upload::new(name, TWO_NODES)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
    }
    assert_eq!(
        tree(&s.dirs.tmp()),
        before,
        "a refused upload writes nothing"
    );
    assert!(!s.dirs.netlab_registry().contains("default:"));
}

#[tokio::test]
async fn empty_invalid_and_oversized_topologies_are_refused_before_netlab() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab).arg("--max-upload-bytes", "2048")).await;
    let (id, _) = s.create_session().await;
    for (content, expected) in [
        ("", "Topology is empty"),
        ("nodes: [r1\n", "Topology is not valid YAML"),
        ("just a string\n", "Topology must be a YAML mapping"),
    ] {
        let (status, body) = s.acquire(&id, Upload::new("t.yml", content)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{content:?}");
        assert!(
            body["detail"].as_str().unwrap().starts_with(expected),
            "{body}"
        );
    }
    let big = format!("{TWO_NODES}# {}\n", "x".repeat(4096));
    let (status, body) = s.acquire(&id, Upload::new("t.yml", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("2048 bytes"));
    assert!(s.dirs.lab_dirs().is_empty());
    assert!(!s.log().contains("starting lab"), "netlab up never ran");
    let (status, _) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the limit leaves room for a normal topology"
    );
}

#[tokio::test]
async fn silent_active_session_is_evicted_its_lab_torn_down_and_the_next_promoted() {
    let netlab = require_netlab!();
    let s = Server::start(
        Options::new(&netlab)
            .arg("--active-timeout", "2")
            .arg("--waiting-timeout", "600"),
    )
    .await;
    let (holder, _) = s.create_session().await;
    let (status, _) = s.acquire(&holder, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(s.dirs.netlab_registry().contains("default:"));
    let (waiter, _) = s.create_session().await;

    // The holder goes silent; /active-session watches without keeping it alive.
    s.wait_until_gone(&holder).await;
    s.wait_until_active(&waiter).await;
    assert!(
        !s.dirs.netlab_registry().contains("default:"),
        "{}",
        s.dirs.netlab_registry()
    );
    assert!(s.dirs.lab_dirs().is_empty());
    let (_, lab) = s.lab_call(Method::GET, "/lab", &waiter).await;
    assert_eq!(lab["running"], false);
    assert!(
        lab["netlab_status"]
            .as_str()
            .unwrap()
            .contains("No netlab-managed labs")
    );
}

#[tokio::test]
async fn silent_waiting_session_is_dropped_from_the_queue() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab).arg("--waiting-timeout", "2")).await;
    let (holder, _) = s.create_session().await;
    let (waiter, _) = s.create_session().await;
    let (third, _) = s.create_session().await;
    // Keep the holder and the third alive while the waiter stays silent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        s.session_status(&holder).await;
        let (_, third_status) = s.session_status(&third).await;
        if third_status["position"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "waiting session never dropped"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, _) = s.session_status(&waiter).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn concurrent_status_requests_share_one_netlab_run() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let (status, _) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    let runs_before = s.log().matches("status --all --format json").count();
    let calls = (0..30).map(|_| s.lab_call(Method::GET, "/lab", &id));
    let answers = futures_util::future::join_all(calls).await;
    for (status, lab) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert!(
            lab["netlab_status"]
                .as_str()
                .unwrap()
                .contains("\"default\""),
            "{lab}"
        );
    }
    let runs = s.log().matches("status --all --format json").count() - runs_before;
    assert_eq!(runs, 1, "{}", s.log());
}
