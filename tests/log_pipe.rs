//! A server whose log reader went away (stderr is a pipe with no reader:
//! every write fails with EPIPE) or stalled (the reader keeps the pipe open
//! but never reads: once it is full, a write would wait forever). Logging
//! must never fail or hold up a request or a task: sessions, a real netlab
//! bring-up and a clean stop all behave, and the dropped lines are counted
//! in `/metrics`.

mod common;

use std::time::Duration;

use common::{Options, Server, Stderr, TWO_NODES, Upload};
use reqwest::StatusCode;

/// Sessions created and ended to log more than a pipe holds (64 KiB): each
/// logs a few lines of about 150 bytes at DEBUG.
const BUSY_SESSIONS: usize = 400;

async fn dropped_log_writes(s: &Server) -> u64 {
    let metrics = s.get_text("/metrics").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("neops_remote_lab_log_writes_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-writes counter: {metrics}"))
}

/// A lab comes up and goes, many sessions come and go, and SIGTERM stops
/// the server cleanly. Returns how many log lines were dropped.
async fn serves_and_stops_with(stderr: Stderr) -> Option<u64> {
    let netlab = common::netlab()?;
    let mut s = Server::start(Options::new(&netlab).stderr(stderr)).await;
    let work = async {
        let (session, _) = s.create_session().await;
        let (status, body) = s.acquire(&session, Upload::new("lab.yml", TWO_NODES)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["devices"].as_array().map(Vec::len), Some(2), "{body}");
        assert_eq!(s.end_session(&session).await, StatusCode::NO_CONTENT);
        for _ in 0..BUSY_SESSIONS {
            let (session, _) = s.create_session().await;
            assert_eq!(s.end_session(&session).await, StatusCode::NO_CONTENT);
        }
        dropped_log_writes(&s).await
    };
    // A server stuck on its log would hang this test instead of failing it.
    let dropped = tokio::time::timeout(Duration::from_secs(300), work)
        .await
        .expect("the server stopped answering while its log could not be written");

    let exit = s
        .stop_within(libc::SIGTERM, Duration::from_secs(60))
        .expect("SIGTERM stops the server");
    assert!(exit.success(), "{exit:?}");
    Some(dropped)
}

#[tokio::test]
async fn a_lost_log_pipe_fails_no_request_and_no_stop() {
    if let Some(dropped) = serves_and_stops_with(Stderr::Lost).await {
        assert!(dropped > 0, "every log line was lost, none counted");
    }
}

#[tokio::test]
async fn a_stalled_log_reader_holds_up_no_request_and_no_stop() {
    // The lines wait in the log writer's buffer (dropped only beyond it).
    serves_and_stops_with(Stderr::Stalled).await;
}
