//! A server whose log reader went away: stderr is a pipe with no reader,
//! so every log write fails (EPIPE). Logging must never fail a request or a
//! task: sessions, a real netlab bring-up and a clean stop all behave, and
//! the dropped lines are counted in `/metrics`.

mod common;

use std::time::Duration;

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;

#[tokio::test]
async fn a_lost_log_pipe_fails_no_request_and_no_stop() {
    let Some(netlab) = common::netlab() else {
        return;
    };
    let mut s = Server::start(Options::new(&netlab).lost_stderr()).await;
    let (session, _) = s.create_session().await;
    let (status, body) = s.acquire(&session, Upload::new("lab.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(s.end_session(&session).await, StatusCode::NO_CONTENT);

    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("neops_remote_lab_log_writes_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no dropped-writes counter: {metrics}"));
    assert!(dropped > 0, "every log line was lost, none counted");

    let exit = s
        .stop_within(libc::SIGTERM, Duration::from_secs(60))
        .expect("SIGTERM stops the server");
    assert!(exit.success(), "{exit:?}");
}
