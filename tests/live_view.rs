//! The read-only views in-process on Tokio's paused clock (in-memory lab
//! driver, no sockets): `GET /sessions`, the dashboard and `GET /events`
//! are no sign of life; the event stream resumes without loss and a reader
//! that stops reading holds nobody up; client info is checked and shown.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::in_process::send;
use futures_util::StreamExt;
use neops_remote_lab::domain::events::{EndReason, Event, EventKind, HISTORY};
use neops_remote_lab::testing::{InProcess, default_timeouts};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tower::ServiceExt;

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn create_request(body: &str) -> Request<Body> {
    Request::post("/session")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn create(app: &InProcess) -> String {
    let (status, body) = send(app, Request::post("/session").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    body["session_id"].as_str().unwrap().to_string()
}

async fn delete(app: &InProcess, id: &str) {
    let request = Request::delete(format!("/session/{id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(app, request).await.0, StatusCode::NO_CONTENT);
}

/// An open `GET /events` answer, read message by message.
struct EventStream {
    body: axum::body::BodyDataStream,
    buffer: String,
}

impl EventStream {
    async fn open(app: &InProcess, uri: &str, last_event_id: Option<u64>) -> EventStream {
        let mut request = Request::get(uri);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = app
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            body: response.into_body().into_data_stream(),
            buffer: String::new(),
        }
    }

    /// The next message's `data`, parsed (keep-alive comments skipped).
    async fn next(&mut self) -> Value {
        loop {
            if let Some(message) = common::sse::take_message(&mut self.buffer) {
                return message;
            }
            let chunk = self.body.next().await.expect("stream open").unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn ended(events: &mut broadcast::Receiver<Event>, id: &str) -> EndReason {
    loop {
        if let EventKind::SessionEnded {
            session, reason, ..
        } = events.recv().await.unwrap().kind
            && session.full() == id
        {
            return reason;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn watching_the_sessions_the_dashboard_and_the_events_keeps_no_holder_alive() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let mut stream = EventStream::open(&app, "/events", None).await;
    let start = Instant::now();
    let holder = create(&app).await;
    let short = &holder[..8];
    let watcher = async {
        loop {
            let (status, body) = send(&app, get("/sessions")).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(send(&app, get("/")).await.0, StatusCode::OK);
            tokio::time::sleep(Duration::from_secs(5)).await;
            if body["sessions"].as_array().unwrap().is_empty() {
                return;
            }
            assert_eq!(body["sessions"][0]["id"], short, "{body}");
        }
    };
    let evicted = async {
        let reason = ended(&mut events, &holder).await;
        (reason, start.elapsed())
    };
    let ((reason, after), ()) = tokio::join!(evicted, watcher);
    assert_eq!(reason, EndReason::Evicted);
    assert_eq!(after, Duration::from_secs(300));
    // The open stream saw it all, by short id only.
    let kinds: Vec<Value> = [
        stream.next().await,
        stream.next().await,
        stream.next().await,
    ]
    .iter()
    .map(|event| json!([event["type"], event["session"]]))
    .collect();
    assert_eq!(
        kinds,
        [
            json!(["session_joined", short]),
            json!(["session_promoted", short]),
            json!(["session_ended", short]),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn resuming_with_last_event_id_misses_nothing() {
    let app = InProcess::start(1, default_timeouts());
    let mut whole = EventStream::open(&app, "/events", None).await;
    let mut first = EventStream::open(&app, "/events", None).await;
    let a = create(&app).await;
    let b = create(&app).await;
    let seen = [first.next().await, first.next().await];
    let last_id = seen[1]["id"].as_u64().unwrap();
    drop(first);
    // While the reader is away the line moves on.
    delete(&app, &a).await;
    let c = create(&app).await;
    delete(&app, &b).await;
    delete(&app, &c).await;
    let mut resumed = EventStream::open(&app, "/events", Some(last_id)).await;
    let mut expected = Vec::new();
    let mut got = Vec::new();
    // joined a, promoted a, joined b, ended a, promoted b, joined c,
    // ended b, promoted c, ended c: nine events, two seen before leaving.
    for _ in 0..9 {
        expected.push(whole.next().await);
    }
    for _ in 2..9 {
        got.push(resumed.next().await);
    }
    assert_eq!(&expected[..2], &seen);
    assert_eq!(&expected[2..], &got[..]);
    let ids: Vec<u64> = expected.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[1] == pair[0] + 1), "{ids:?}");
    // A fresh reader may ask for the recent past instead.
    let mut replay = EventStream::open(&app, "/events?replay=3", None).await;
    assert_eq!(replay.next().await, expected[6]);
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_reading_holds_up_neither_requests_nor_other_readers() {
    let app = InProcess::start(1, default_timeouts());
    let mut stalled = EventStream::open(&app, "/events", None).await;
    let mut reader = EventStream::open(&app, "/events", None).await;
    // Twice the channel's capacity of events, while `stalled` reads none.
    let rounds = HISTORY;
    let mut ids = Vec::new();
    for _ in 0..rounds {
        let id = create(&app).await;
        delete(&app, &id).await;
        for _ in 0..3 {
            ids.push(reader.next().await["id"].as_u64().unwrap());
        }
    }
    assert_eq!(ids, (1..=3 * rounds as u64).collect::<Vec<_>>());
    // The stalled reader is told how many it lost, then continues.
    let notice = stalled.next().await;
    assert_eq!(notice["type"], "dropped", "{notice}");
    let lost = notice["count"].as_u64().unwrap();
    assert!(lost > 0);
    let next = stalled.next().await;
    assert_eq!(next["id"].as_u64().unwrap(), lost + 1);
}

#[tokio::test(start_paused = true)]
async fn client_info_is_checked_kept_and_shown() {
    let app = InProcess::start(1, default_timeouts());
    let mut stream = EventStream::open(&app, "/events", None).await;
    let body = r#"{"client": {"user": "ada", "host": "ci-7", "ci_job_url": "https://ci.example/jobs/7", "label": "pytest tests/"}}"#;
    let (status, created) = send(&app, create_request(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["position"], 0);
    let (status, error) = send(&app, create_request(r#"{"client": {"user": 1}}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error["detail"].as_str().unwrap().starts_with("body: "));
    let plain = create(&app).await;

    let (_, listing) = send(&app, get("/sessions")).await;
    let client = json!({"user": "ada", "host": "ci-7", "ci_job_url": "https://ci.example/jobs/7", "label": "pytest tests/"});
    assert_eq!(listing["sessions"][0]["client"], client);
    assert_eq!(listing["sessions"][0]["status"], "active");
    assert_eq!(listing["sessions"][0]["slot"], 1);
    assert_eq!(listing["sessions"][1]["client"], Value::Null);
    assert_eq!(listing["sessions"][1]["id"], &plain[..8]);
    assert_eq!(
        listing["slots"],
        json!([{"slot": 1, "phase": "idle", "holder": listing["sessions"][0]["id"], "lab": null}])
    );
    let listing = listing.to_string();
    assert!(!listing.contains(&plain), "never the full id: {listing}");
    assert_eq!(stream.next().await["client"], client);
}
