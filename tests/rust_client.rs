//! The Rust client library (`neops_remote_lab::client`) against the real
//! server and netlab, and against a recording stand-in server for what only
//! the wire shows (the bearer token, heartbeats).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Options, Server, TWO_NODES};
use neops_remote_lab::client::{Client, Error, LabFiles};
use neops_remote_lab::wire::SessionState;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn client(s: &Server) -> Client {
    Client::builder(&s.base).build().unwrap()
}

#[tokio::test]
async fn a_waiting_session_gets_423_with_the_servers_detail() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let client = client(&s);
    let first = client.open_session(None).await.unwrap();
    let second = client.open_session(None).await.unwrap();
    assert_eq!(second.initial_position(), 1);

    let error = second.devices().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::LOCKED));
    assert_eq!(error.detail(), Some("Session is not active"));
    assert!(matches!(error, Error::Status { .. }));

    first.close().await.unwrap();
    second.wait_until_active(|_| {}).await.unwrap();
    let error = second.devices().await.unwrap_err();
    assert_eq!(
        (error.status(), error.detail()),
        (Some(StatusCode::NOT_FOUND), Some("No lab running"))
    );
    second.close().await.unwrap();
}

#[tokio::test]
async fn a_lab_folder_comes_up_is_released_torn_down_and_the_session_ends() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("labs/basic")).unwrap();
    std::fs::write(dir.path().join("labs/basic/topology.yml"), TWO_NODES).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "shared").unwrap();
    let lab = LabFiles::collect(
        dir.path().join("labs/basic/topology.yml"),
        &[PathBuf::from("../../notes.txt")],
        None,
    )
    .unwrap();
    assert_eq!(lab.topology_name(), "labs/basic/topology.yml");

    let client = client(&s);
    let session = client.open_session(None).await.unwrap();
    let mut seen = Vec::new();
    session
        .wait_until_active(|status| seen.push(status.status))
        .await
        .unwrap();
    assert_eq!(seen.last(), Some(&SessionState::Active));
    let acquired = session.acquire(&lab, false, Some("key-1")).await.unwrap();
    assert!(!acquired.reused);
    assert_eq!(session.devices().await.unwrap(), acquired.devices);
    let uploaded = s.dirs.upload_roots().pop().expect("an upload folder");
    assert_eq!(
        std::fs::read_to_string(uploaded.join("notes.txt")).unwrap(),
        "shared"
    );

    session.release().await.unwrap();
    assert_eq!(session.lab().await.unwrap().ref_count, 0);
    assert!(session.destroy(false).await.unwrap(), "an idle lab goes");
    assert!(!session.destroy(false).await.unwrap(), "nothing ran");
    let id = session.id().to_string();
    session.close().await.unwrap();
    let error = client.end_session(&id).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
}

/// A stand-in server that answers `POST /session` and heartbeats and sends
/// every request head it reads to the test.
async fn recording_server() -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (heads, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 16 * 1024];
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buffer[..read]).into_owned();
                let (status, body) = if head.starts_with("POST /session ") {
                    ("201 Created", r#"{"session_id":"s-1","position":0}"#)
                } else if head.starts_with("POST /session/heartbeat") {
                    ("204 No Content", "")
                } else {
                    ("404 Not Found", r#"{"detail":"Session not found"}"#)
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = heads.send(head);
            });
        }
    });
    (base, received)
}

#[tokio::test]
async fn every_request_carries_the_token_and_heartbeats_are_sent() {
    let (base, mut heads) = recording_server().await;
    let client = Client::builder(&base)
        .token("t0ken")
        .heartbeat_interval(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    let session = client.open_session(None).await.unwrap();
    let created = heads.recv().await.unwrap();
    assert!(created.starts_with("POST /session "), "{created}");
    assert!(created.contains("authorization: Bearer t0ken"), "{created}");

    let beat = heads.recv().await.unwrap();
    assert!(beat.starts_with("POST /session/heartbeat"), "{beat}");
    assert!(beat.contains("x-session-id: s-1"), "{beat}");
    assert!(beat.contains("authorization: Bearer t0ken"), "{beat}");

    // Ending the session: a DELETE (heartbeats may still be under way).
    let error = session.close().await.unwrap_err();
    assert_eq!(error.detail(), Some("Session not found"));
    loop {
        let head = heads.recv().await.unwrap();
        if head.starts_with("DELETE /session/s-1") {
            assert!(head.contains("authorization: Bearer t0ken"), "{head}");
            break;
        }
        assert!(head.starts_with("POST /session/heartbeat"), "{head}");
    }
}
