//! The event stream and the bring-up log for a real netlab bring-up, over
//! HTTP against the real binary.

mod common;

use std::time::Duration;

use common::{Options, Server, TWO_NODES};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// An open `GET /events` answer, read message by message.
struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    async fn open(server: &Server) -> EventStream {
        let response = server.http.get(server.url("/events")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next message's data; fails the test after a minute without one.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(message) = common::sse::take_message(&mut self.buffer) {
                return message;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.response.chunk())
                .await
                .expect("an event within a minute")
                .unwrap()
                .expect("stream open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads until an event of type `kind`; returns every event read.
    async fn until(&mut self, kind: &str) -> Vec<Value> {
        let mut read = Vec::new();
        loop {
            let event = self.next().await;
            let done = event["type"] == kind;
            read.push(event);
            if done {
                return read;
            }
        }
    }
}

/// `GET /lab/log` read to its end.
async fn lab_log(s: &Server, session: &str) -> (StatusCode, String) {
    let response = s
        .http
        .get(s.url("/lab/log"))
        .header("X-Session-ID", session)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_real_bring_up_streams_its_events_in_order_and_its_netlab_output() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let mut events = EventStream::open(&s).await;
    let (session, _) = s.create_session().await;

    let bring_up = {
        let s_url = s.url("/lab");
        let http = s.http.clone();
        let session = session.clone();
        tokio::spawn(async move {
            let form = reqwest::multipart::Form::new().part(
                "topology",
                reqwest::multipart::Part::bytes(TWO_NODES.as_bytes().to_vec())
                    .file_name("topology.yml"),
            );
            let response = http
                .post(s_url)
                .header("X-Session-ID", session)
                .multipart(form)
                .send()
                .await
                .unwrap();
            response.status()
        })
    };
    let mut seen = events.until("lab_starting").await;
    // The log, opened once the bring-up runs, has it from its first line
    // and ends when it ends.
    let (status, log) = lab_log(&s, &session).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bring_up.await.unwrap(), StatusCode::OK);
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.contains("Creating configuration files"),
        "netlab up's first line first:\n{log}"
    );
    // The device data netlab's inspect prints is the answer, not log lines:
    // it is read once, as data, and never copied into the bring-up log.
    assert!(
        log.contains("Starting external nodes") && !log.contains("\"ansible_host\""),
        "netlab up's output only:\n{log}"
    );
    assert!(log.ends_with('\n'), "whole lines only:\n{log}");

    seen.extend(events.until("lab_up").await);
    let (status, _) = s.lab_call(Method::POST, "/lab/release", &session).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    seen.extend(events.until("lab_released").await);

    let short = &session[..8];
    let kinds: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "session_joined",
            "session_promoted",
            "lab_starting",
            "lab_up",
            "lab_released"
        ]
    );
    assert!(seen[..2].iter().all(|e| e["session"] == short));
    assert_eq!(seen[3]["devices"], 2);
    assert!(seen[3]["seconds"].as_f64().unwrap() > 0.0);
    let ids: Vec<u64> = seen.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");

    // After the bring-up the log is still there, whole, and ends at once.
    let (status, again) = lab_log(&s, &session).await;
    assert_eq!((status, again), (StatusCode::OK, log));
}

#[tokio::test]
async fn the_lab_log_has_the_lab_routes_gate() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (_holder, _) = s.create_session().await;
    let (waiter, _) = s.create_session().await;
    let (status, body) = s.lab_call(Method::GET, "/lab/log", &waiter).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (StatusCode::LOCKED, Some("Session is not active"))
    );
    let response = s.http.get(s.url("/lab/log")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
