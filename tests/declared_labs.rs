//! Declared labs (`POST /session/{id}/labs`) with a real server and real
//! netlab: a waiting session declares what it will ask for; the identity
//! is the one `POST /lab` computes for the same files; bad uploads change
//! nothing; declarations survive a crash with their session and are
//! deleted when it ends.

mod common;

use common::{Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const OTHER: &str = "defaults.device: eos\nnodes: [a, b, c]\n";

/// The declared-lab folders kept for the session (none: the folder is gone).
fn declared_on_disk(dirs: &ServerDirs, session: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dirs.state().join("declared").join(session)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn declared_labs(server: &Server, session: &str) -> Value {
    let (status, body) = server.session_status(session).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["declared_labs"].clone()
}

#[tokio::test]
async fn a_waiting_session_declares_its_labs_and_they_live_as_long_as_it() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let options = || Options::new(&netlab).dirs(&dirs);
    let mut server = Server::start(options()).await;
    let (holder, _) = server.create_session().await;
    let (waiter, position) = server.create_session().await;
    assert_eq!(position, 1);

    let lab = Upload::new("lab.yml", TWO_NODES).extra("configs/r1.cfg", "hostname r1\n");
    let (status, first) = server.declare(&waiter, lab.form()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["index"], 0);
    let identity = first["identity"].as_str().unwrap().to_string();
    assert_eq!(identity.len(), 64, "SHA-256 hex: {first}");
    let (status, second) = server
        .declare(&waiter, Upload::new("other.yml", OTHER).form())
        .await;
    assert_eq!((status, &second["index"]), (StatusCode::CREATED, &1.into()));
    // The same lab again: its first index, nothing stored anew.
    let (status, again) = server.declare(&waiter, lab.form()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again, first);
    let both = serde_json::json!([identity, second["identity"]]);
    assert_eq!(declared_labs(&server, &waiter).await, both);
    assert_eq!(declared_on_disk(&dirs, &waiter), ["0", "1"]);
    // The original's fields are unchanged beside the new one.
    assert_eq!(server.session_status(&waiter).await.1["position"], 1);

    // Bad declarations change nothing.
    let txt = Form::new().part("topology", Part::bytes(b"x".to_vec()).file_name("lab.txt"));
    let no_topology = Form::new().text("reuse", "true");
    let bad_yaml = Form::new().part(
        "topology",
        Part::bytes(b"nodes: [r1\n".to_vec()).file_name("lab.yml"),
    );
    for (form, expected) in [
        (txt, StatusCode::BAD_REQUEST),
        (no_topology, StatusCode::UNPROCESSABLE_ENTITY),
        (bad_yaml, StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = server.declare(&waiter, form).await;
        assert_eq!(status, expected, "{body}");
    }
    let unknown = "0123456789abcdef0123456789abcdef";
    let (status, _) = server.declare(unknown, lab.form()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(declared_labs(&server, &waiter).await, both);
    assert_eq!(declared_on_disk(&dirs, &waiter), ["0", "1"]);

    // The identity is the one `POST /lab` computes for the same files.
    assert_eq!(server.end_session(&holder).await, StatusCode::NO_CONTENT);
    server.wait_until_active(&waiter).await;
    let (status, body) = server.acquire(&waiter, lab).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let slots = server.get_json("/sessions").await["slots"].clone();
    let running = slots[0]["lab"]["identity"].as_str().unwrap().to_string();
    assert!(identity.starts_with(&running), "{identity} vs {slots}");

    // A crash keeps the declarations with their session.
    server.stop_with(libc::SIGKILL);
    let server = Server::start(options()).await;
    assert_eq!(declared_labs(&server, &waiter).await, both);

    // Ending the session deletes them.
    assert_eq!(server.end_session(&waiter).await, StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !declared_on_disk(&dirs, &waiter).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "declared labs left behind"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
