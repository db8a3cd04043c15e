//! The coordinator's timing and hand-over rules, through the real router
//! in-process (`tower::ServiceExt::oneshot`) on Tokio's paused clock, with
//! the in-memory lab driver: no netlab, no sockets, no wall-clock sleeps.
//! Each test waits for events; the paused clock jumps straight to the next
//! timer whenever nothing else can run, so the instants they check are exact.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::in_process::{BOUNDARY, form, send};
use futures_util::stream;
use neops_remote_lab::auth::{Caller, TokenSet};
use neops_remote_lab::coordinator::{GateError, NewSession};
use neops_remote_lab::domain::events::{EndReason, Event, EventKind};
use neops_remote_lab::lab::LabChange;
use neops_remote_lab::queue::Timeouts;
use neops_remote_lab::testing::{InProcess, default_timeouts, script};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tower::ServiceExt;

fn request(method: &str, uri: &str, session: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(id) = session {
        builder = builder.header("x-session-id", id);
    }
    builder.body(Body::empty()).unwrap()
}

async fn create(app: &InProcess) -> (String, u64) {
    let (status, body) = send(app, request("POST", "/session", None)).await;
    assert_eq!(status, StatusCode::CREATED);
    (
        body["session_id"].as_str().unwrap().to_string(),
        body["position"].as_u64().unwrap(),
    )
}

async fn status_of(app: &InProcess, id: &str) -> (StatusCode, Value) {
    send(app, request("GET", &format!("/session/{id}"), None)).await
}

async fn heartbeat(app: &InProcess, id: &str) -> StatusCode {
    send(app, request("POST", "/session/heartbeat", Some(id)))
        .await
        .0
}

async fn delete(app: &InProcess, id: &str) -> StatusCode {
    send(app, request("DELETE", &format!("/session/{id}"), None))
        .await
        .0
}

/// A `POST /lab` form with one topology file.
fn upload_request(id: &str, body: Body) -> Request<Body> {
    keyed_upload_request(id, body, None)
}

fn keyed_upload_request(id: &str, body: Body, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder();
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .method("POST")
        .uri("/lab")
        .header("x-session-id", id)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .unwrap()
}

async fn acquire(app: &InProcess, id: &str, topology: &str) -> (StatusCode, Value) {
    send(app, upload_request(id, Body::from(form(topology)))).await
}

/// Waits (on the paused clock) for the first event `pick` accepts.
async fn until<T>(
    events: &mut broadcast::Receiver<Event>,
    pick: impl Fn(&EventKind) -> Option<T>,
) -> T {
    loop {
        let event = events.recv().await.expect("event stream");
        if let Some(found) = pick(&event.kind) {
            return found;
        }
    }
}

/// A request body that arrives as the returned sender sends it, and ends
/// when the sender is dropped.
fn streamed_body() -> (mpsc::Sender<Vec<u8>>, Body) {
    let (chunks, receiver) = mpsc::channel::<Vec<u8>>(4);
    let body = Body::from_stream(stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), receiver))
    }));
    (chunks, body)
}

/// Sends `GET /session/{id}?wait=60` in its own task; the task yields when
/// it was answered and the answer.
fn spawn_long_poll(app: &InProcess, id: &str) -> tokio::task::JoinHandle<(Instant, Value)> {
    let router = app.router.clone();
    let uri = format!("/session/{id}?wait=60");
    tokio::spawn(async move {
        let response = router.oneshot(request("GET", &uri, None)).await.unwrap();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            Instant::now(),
            serde_json::from_slice::<Value>(&bytes).unwrap(),
        )
    })
}

/// Waits for a slot's lab change that `wanted` accepts.
async fn lab_changed(events: &mut broadcast::Receiver<Event>, wanted: impl Fn(&LabChange) -> bool) {
    until(events, |kind| match kind {
        EventKind::Lab { change, .. } if wanted(change) => Some(()),
        _ => None,
    })
    .await
}

/// Waits for the session `id` to end and returns why.
async fn ended(events: &mut broadcast::Receiver<Event>, id: &str) -> EndReason {
    until(events, |kind| match kind {
        EventKind::SessionEnded {
            session, reason, ..
        } if session.full() == id => Some(*reason),
        _ => None,
    })
    .await
}

async fn promoted(events: &mut broadcast::Receiver<Event>, id: &str) -> usize {
    until(events, |kind| match kind {
        EventKind::SessionPromoted { session, slot, .. } if session.full() == id => Some(*slot),
        _ => None,
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_silent_holder_is_evicted_at_its_deadline_and_not_before() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let start = Instant::now();
    let (holder, _) = create(&app).await;
    let (waiter, _) = create(&app).await;
    // A heartbeat at 100 s moves the holder's deadline to 400 s.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(heartbeat(&app, &holder).await, StatusCode::NO_CONTENT);
    assert_eq!(heartbeat(&app, &waiter).await, StatusCode::NO_CONTENT);
    assert_eq!(ended(&mut events, &holder).await, EndReason::Evicted);
    assert_eq!(start.elapsed(), Duration::from_secs(400));
    // Its slot went to the waiting session, which must now claim it.
    assert_eq!(promoted(&mut events, &waiter).await, 1);
    let (code, body) = status_of(&app, &waiter).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::OK, Some("active"))
    );
}

#[tokio::test(start_paused = true)]
async fn looking_at_the_queue_does_not_keep_a_holder_alive() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let start = Instant::now();
    let (holder, _) = create(&app).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let (code, body) = send(&app, request("GET", "/active-session", None)).await;
        assert_eq!(
            (code, body["session_id"].as_str()),
            (StatusCode::OK, Some(holder.as_str()))
        );
        send(&app, request("GET", "/debug/health", None)).await;
    }
    assert_eq!(ended(&mut events, &holder).await, EndReason::Evicted);
    assert_eq!(start.elapsed(), Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn a_slow_teardown_delays_no_other_deadline() {
    let timeouts = Timeouts {
        waiting: Duration::from_secs(320),
        ..default_timeouts()
    };
    let app = InProcess::start(1, timeouts);
    let mut events = app.coordinator.subscribe();
    let start = Instant::now();
    let (holder, _) = create(&app).await;
    let (code, _) = acquire(
        &app,
        &holder,
        &format!("nodes: [r1]\n# {}\n", script::SLOW_DOWN),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let (waiter, _) = create(&app).await;
    // The holder is evicted at 300 s; its teardown runs until 360 s.
    assert_eq!(ended(&mut events, &holder).await, EndReason::Evicted);
    assert_eq!(start.elapsed(), Duration::from_secs(300));
    // The waiting session's own deadline (320 s) falls inside that teardown.
    assert_eq!(ended(&mut events, &waiter).await, EndReason::Evicted);
    assert_eq!(start.elapsed(), Duration::from_secs(320));
    lab_changed(&mut events, |change| {
        matches!(change, LabChange::Down { .. })
    })
    .await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(300) + script::SLOW_DOWN_TIME
    );
}

#[tokio::test(start_paused = true)]
async fn a_heartbeat_during_another_teardown_keeps_the_session() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let start = Instant::now();
    let (holder, _) = create(&app).await;
    acquire(
        &app,
        &holder,
        &format!("nodes: [r1]\n# {}\n", script::SLOW_DOWN),
    )
    .await;
    // The waiting session's deadline (605 s) would fall inside the teardown.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (waiter, _) = create(&app).await;
    tokio::time::sleep(Duration::from_secs(295)).await;
    assert_eq!(ended(&mut events, &holder).await, EndReason::Evicted);
    let holder_gone = start.elapsed();
    assert_eq!(holder_gone, Duration::from_secs(300));
    // The teardown runs; the waiting session says it is alive at 302 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(heartbeat(&app, &waiter).await, StatusCode::NO_CONTENT);
    // It is promoted when the teardown ends, never evicted.
    assert_eq!(promoted(&mut events, &waiter).await, 1);
    assert_eq!(start.elapsed(), holder_gone + script::SLOW_DOWN_TIME);
    assert_eq!(heartbeat(&app, &waiter).await, StatusCode::NO_CONTENT);
}

#[tokio::test(start_paused = true)]
async fn a_promoted_session_that_never_claims_its_slot_is_evicted_after_the_claim_window() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let (holder, _) = create(&app).await;
    let (dead, _) = create(&app).await;
    let (alive, _) = create(&app).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(delete(&app, &holder).await, StatusCode::NO_CONTENT);
    let promoted_at = Instant::now();
    assert_eq!(promoted(&mut events, &dead).await, 1);
    // The dead client never asks again: gone after the claim window (30 s).
    assert_eq!(ended(&mut events, &dead).await, EndReason::ClaimExpired);
    assert_eq!(promoted_at.elapsed(), Duration::from_secs(30));
    // The live one polls once after its promotion; the active rule applies.
    assert_eq!(promoted(&mut events, &alive).await, 1);
    let claimed_at = Instant::now();
    let (_, body) = status_of(&app, &alive).await;
    assert_eq!(body["status"], "active");
    assert_eq!(ended(&mut events, &alive).await, EndReason::Evicted);
    assert_eq!(claimed_at.elapsed(), Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_is_answered_by_the_change_not_by_its_timeout() {
    let app = InProcess::start(1, default_timeouts());
    let (holder, _) = create(&app).await;
    let (waiter, _) = create(&app).await;
    let start = Instant::now();
    let poll = spawn_long_poll(&app, &waiter);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(delete(&app, &holder).await, StatusCode::NO_CONTENT);
    // Answered when the holder left (the waiter moved up), not at 60 s.
    let (answered, body) = poll.await.unwrap();
    assert_eq!(answered - start, Duration::from_secs(7));
    assert_eq!(body["position"], 0);
    // By the next poll the hand-over is done: active, answered at once.
    let (_, body) = status_of(&app, &format!("{waiter}?wait=60")).await;
    assert_eq!(
        body,
        serde_json::json!({"status": "active", "position": 0, "declared_labs": []})
    );
    assert_eq!(start.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_without_change_ends_at_its_limit() {
    let app = InProcess::start(1, default_timeouts());
    let (_holder, _) = create(&app).await;
    let (waiter, _) = create(&app).await;
    let start = Instant::now();
    let (code, body) = status_of(&app, &format!("{waiter}?wait=12")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"status": "waiting", "position": 1, "declared_labs": []})
    );
    assert_eq!(start.elapsed(), Duration::from_secs(12));
}

#[tokio::test]
async fn a_session_deleted_during_its_upload_brings_no_lab_up() {
    let app = InProcess::start(1, default_timeouts());
    let (holder, _) = create(&app).await;
    let (next, _) = create(&app).await;
    // The holder's upload arrives slowly: the first bytes now, the rest later.
    let body = form("nodes: [r1]\n");
    let (chunks, streamed) = streamed_body();
    let upload = tokio::spawn(
        app.router
            .clone()
            .oneshot(upload_request(&holder, streamed)),
    );
    chunks.send(body[..20].to_vec()).await.unwrap();
    tokio::task::yield_now().await;

    assert_eq!(delete(&app, &holder).await, StatusCode::NO_CONTENT);
    // The server stopped reading when the session ended; the rest may be refused.
    let _ = chunks.send(body[20..].to_vec()).await;
    drop(chunks);
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        app.driver.calls().is_empty(),
        "no netlab call for a departed holder"
    );

    // The next session owns the slot, unhindered by the departed upload.
    assert_eq!(status_of(&app, &next).await.1["status"], "active");
    let (code, body) = acquire(&app, &next, "nodes: [r2]\n").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["reused"], false);
    assert_eq!(app.driver.calls(), ["up"]);
}

#[tokio::test(start_paused = true)]
async fn ending_a_session_cancels_its_bring_up_at_once() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let (holder, _) = create(&app).await;
    let (next, _) = create(&app).await;
    let bring_up = tokio::spawn({
        let router = app.router.clone();
        let request = upload_request(
            &holder,
            Body::from(form(&format!("nodes: [r1]\n# {}\n", script::HANG))),
        );
        async move { router.oneshot(request).await.unwrap().status() }
    });
    lab_changed(&mut events, |change| {
        matches!(change, LabChange::Starting { .. })
    })
    .await;
    let start = Instant::now();
    // Without cancellation this would wait for a bring-up that never ends.
    assert_eq!(delete(&app, &holder).await, StatusCode::NO_CONTENT);
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(bring_up.await.unwrap(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.driver.calls(),
        ["up", "down"],
        "the half-started lab is cleaned up"
    );
    assert_eq!(app.lab_dirs(), 0);
    assert_eq!(status_of(&app, &next).await.1["status"], "active");
}

#[tokio::test(start_paused = true)]
async fn a_failed_teardown_still_hands_the_slot_on() {
    let app = InProcess::start(1, default_timeouts());
    let (holder, _) = create(&app).await;
    let (next, _) = create(&app).await;
    acquire(
        &app,
        &holder,
        &format!("nodes: [r1]\n# {}\n", script::FAIL_DOWN),
    )
    .await;
    assert_eq!(delete(&app, &holder).await, StatusCode::NO_CONTENT);
    assert_eq!(status_of(&app, &next).await.1["status"], "active");
    assert_eq!(
        app.coordinator.phases(),
        [neops_remote_lab::domain::Phase::Dirty]
    );
}

#[tokio::test(start_paused = true)]
async fn several_slots_serve_several_sessions_first_come_first_served() {
    let app = InProcess::start(2, default_timeouts());
    let (a, position_a) = create(&app).await;
    let (b, position_b) = create(&app).await;
    let (c, position_c) = create(&app).await;
    let (d, position_d) = create(&app).await;
    assert_eq!(
        (position_a, position_b, position_c, position_d),
        (0, 0, 1, 2)
    );
    for id in [&a, &b] {
        assert_eq!(
            status_of(&app, id).await.1,
            serde_json::json!({"status": "active", "position": 0, "declared_labs": []})
        );
    }
    assert_eq!(
        status_of(&app, &d).await.1,
        serde_json::json!({"status": "waiting", "position": 2, "declared_labs": []})
    );
    // Two labs at once, one per slot.
    assert_eq!(acquire(&app, &a, "nodes: [r1]\n").await.0, StatusCode::OK);
    assert_eq!(acquire(&app, &b, "nodes: [r2]\n").await.0, StatusCode::OK);
    let (_, lab) = send(&app, request("GET", "/lab", Some(&b))).await;
    assert_eq!(
        (lab["running"].as_bool(), lab["ref_count"].as_u64()),
        (Some(true), Some(1))
    );
    // The longest-active session is named; a freed slot goes to the longest waiting.
    assert_eq!(
        send(&app, request("GET", "/active-session", None)).await.1["session_id"],
        a.as_str()
    );
    assert_eq!(delete(&app, &b).await, StatusCode::NO_CONTENT);
    assert_eq!(
        app.driver.calls(),
        ["up", "up", "down"],
        "only b's lab was torn down"
    );
    assert_eq!(
        status_of(&app, &c).await.1,
        serde_json::json!({"status": "active", "position": 0, "declared_labs": []})
    );
    assert_eq!(
        status_of(&app, &d).await.1,
        serde_json::json!({"status": "waiting", "position": 1, "declared_labs": []})
    );
    let (_, lab) = send(&app, request("GET", "/lab", Some(&c))).await;
    assert_eq!(lab["running"], false, "c starts with an empty slot");
    let (_, lab) = send(&app, request("GET", "/lab", Some(&a))).await;
    assert_eq!(lab["running"], true, "a keeps its lab");
}

fn keyed_create(key: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/session")
        .header("idempotency-key", key)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_repeated_create_with_the_same_key_returns_the_same_session() {
    let app = InProcess::start(1, default_timeouts());
    let (first_code, first) = send(&app, keyed_create("suite-42")).await;
    let (again_code, again) = send(&app, keyed_create("suite-42")).await;
    assert_eq!(
        (first_code, again_code),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first, again);
    let (_, other) = send(&app, keyed_create("suite-43")).await;
    assert_eq!(other["position"], 1);
    assert_eq!(app.coordinator.count(), 2);
    // Once the session ended, its key creates a new one.
    delete(&app, first["session_id"].as_str().unwrap()).await;
    let (_, fresh) = send(&app, keyed_create("suite-42")).await;
    assert_ne!(fresh["session_id"], first["session_id"]);
    for bad in ["", "with space", &"x".repeat(256)] {
        let (code, body) = send(&app, keyed_create(bad)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad:?}: {body}");
    }
    assert_eq!(
        app.coordinator.count(),
        2,
        "a refused request creates nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_repeated_acquire_with_the_same_key_shares_the_first_bring_up() {
    let app = InProcess::start(1, default_timeouts());
    let (holder, _) = create(&app).await;
    let topology = format!("nodes: [r1]\n# {}\n", script::SLOW_UP);
    let start = Instant::now();
    let first = tokio::spawn(app.router.clone().oneshot(keyed_upload_request(
        &holder,
        Body::from(form(&topology)),
        Some("acquire-1"),
    )));
    // The answer to the first is "lost": the client sends it again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (code, repeat) = send(
        &app,
        keyed_upload_request(&holder, Body::from(form(&topology)), Some("acquire-1")),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{repeat}");
    assert_eq!(
        start.elapsed(),
        script::SLOW_UP_TIME,
        "answered when the first finished"
    );
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    // Afterwards a repeat answers at once with the same result.
    let (code, later) = send(
        &app,
        keyed_upload_request(&holder, Body::from(form(&topology)), Some("acquire-1")),
    )
    .await;
    assert_eq!((code, &later), (StatusCode::OK, &repeat));
    assert_eq!(
        app.driver.calls(),
        ["up"],
        "one bring-up for three requests"
    );
    let (_, lab) = send(&app, request("GET", "/lab", Some(&holder))).await;
    assert_eq!(lab["ref_count"], 1, "repeats take no extra reference");
    // The same key with another upload is refused, and changes nothing.
    let (code, body) = send(
        &app,
        keyed_upload_request(
            &holder,
            Body::from(form("nodes: [other]\n")),
            Some("acquire-1"),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(app.driver.calls(), ["up"]);
    // A new key is a new request: it attaches.
    let (_, other) = send(
        &app,
        keyed_upload_request(&holder, Body::from(form(&topology)), Some("acquire-2")),
    )
    .await;
    assert_eq!(other["reused"], true);
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_that_delivers_the_promotion_claims_the_slot() {
    let app = InProcess::start(2, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let (first, _) = create(&app).await;
    let (_second, _) = create(&app).await;
    let (waiter, _) = create(&app).await;
    let poll = spawn_long_poll(&app, &waiter);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(delete(&app, &first).await, StatusCode::NO_CONTENT);
    let (answered, body) = poll.await.unwrap();
    assert_eq!(body["status"], "active");
    // The client heard it is active: the claim window no longer applies.
    assert_eq!(ended(&mut events, &waiter).await, EndReason::Evicted);
    assert_eq!(answered.elapsed(), Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn a_stalled_upload_gets_408_and_stops_keeping_its_session_alive() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let (holder, _) = create(&app).await;
    let (chunks, streamed) = streamed_body();
    let start = Instant::now();
    let upload = tokio::spawn(
        app.router
            .clone()
            .oneshot(upload_request(&holder, streamed)),
    );
    // The first bytes arrive, then nothing (the sender stays open).
    chunks
        .send(form("nodes: [r1]\n")[..20].to_vec())
        .await
        .unwrap();
    let response = upload.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(start.elapsed(), neops_remote_lab::api::UPLOAD_IDLE_LIMIT);
    // No longer busy: the active timeout counts from the stalled request's end.
    assert_eq!(ended(&mut events, &holder).await, EndReason::Evicted);
    assert_eq!(
        start.elapsed(),
        neops_remote_lab::api::UPLOAD_IDLE_LIMIT + Duration::from_secs(300)
    );
    drop(chunks);
}

#[tokio::test]
async fn a_session_is_checked_against_its_owner_after_its_existence() {
    let app = InProcess::start(1, default_timeouts());
    let tokens = TokenSet::from_list("ci:one-0123456789abcdef,ada:two-0123456789abcdef").unwrap();
    let (ci, ada) = (
        tokens.find("one-0123456789abcdef"),
        tokens.find("two-0123456789abcdef"),
    );
    let (id, _) = app
        .coordinator
        .create(NewSession {
            owner: ci.clone(),
            ..NewSession::default()
        })
        .await
        .unwrap();
    let check = |caller: Option<&Caller>| app.coordinator.check_owner(&id, caller);
    assert_eq!(check(ci.as_ref()), Ok(()));
    assert_eq!(check(ada.as_ref()), Err(GateError::NotOwner));
    assert_eq!(check(None), Err(GateError::NotOwner));
    let ended = app.coordinator.end(&id, EndReason::Closed).await;
    assert_eq!(ended.ok(), Some(true));
    assert_eq!(
        check(ada.as_ref()),
        Err(GateError::UnknownSession),
        "404 first"
    );
    // Its own token learns why it ended.
    assert_eq!(check(ci.as_ref()), Err(GateError::Ended(EndReason::Closed)));
}

/// `POST /session` with a JSON body (and an `Idempotency-Key`, if given).
async fn create_with(app: &InProcess, body: &str, key: Option<&str>) -> (StatusCode, Value) {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/session")
        .header("content-type", "application/json");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    send(app, builder.body(Body::from(body.to_string())).unwrap()).await
}

async fn create_leased(app: &InProcess, heartbeat_seconds: u64) -> String {
    let body = format!(r#"{{"heartbeat_seconds": {heartbeat_seconds}}}"#);
    let (status, body) = create_with(app, &body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["session_id"].as_str().unwrap().to_string()
}

#[tokio::test(start_paused = true)]
async fn a_silent_leased_holder_is_evicted_after_three_beats_even_mid_bring_up() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let holder = create_leased(&app, 5).await;
    let waiter = create_leased(&app, 5).await;
    // The holder's bring-up never ends; its client beats twice, then dies.
    let upload = tokio::spawn(app.router.clone().oneshot(upload_request(
        &holder,
        Body::from(form(&format!("nodes: [r1]\n# {}\n", script::HANG))),
    )));
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(heartbeat(&app, &holder).await, StatusCode::NO_CONTENT);
        assert_eq!(heartbeat(&app, &waiter).await, StatusCode::NO_CONTENT);
    }
    let last_beat = Instant::now();
    // The waiter keeps beating; the holder is gone 15 s after its last beat,
    // with its bring-up running: a request in flight does not pin a lease.
    let beats = {
        let router = app.router.clone();
        let waiter = waiter.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let beat = request("POST", "/session/heartbeat", Some(&waiter));
                router.clone().oneshot(beat).await.unwrap();
            }
        })
    };
    assert_eq!(ended(&mut events, &holder).await, EndReason::LeaseExpired);
    assert_eq!(last_beat.elapsed(), Duration::from_secs(15));
    let answer = upload.await.unwrap().unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::NOT_FOUND,
        "its bring-up was stopped"
    );
    assert_eq!(promoted(&mut events, &waiter).await, 1);
    let (_, view) = send(&app, request("GET", "/sessions", None)).await;
    let listed = &view["sessions"][0];
    assert_eq!(
        (&listed["heartbeat_seconds"], &listed["lease_seconds"]),
        (&Value::from(5), &Value::from(15.0))
    );
    beats.abort();
}

#[tokio::test(start_paused = true)]
async fn a_short_lease_still_gives_ten_seconds_and_no_lease_keeps_the_timeouts() {
    let app = InProcess::start(1, default_timeouts());
    let mut events = app.coordinator.subscribe();
    let start = Instant::now();
    let quick = create_leased(&app, 1).await;
    let (plain, _) = create(&app).await;
    assert_eq!(ended(&mut events, &quick).await, EndReason::LeaseExpired);
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    // The next one announced nothing: it is promoted, claims its slot, and
    // has the whole active timeout, as with the original client.
    assert_eq!(promoted(&mut events, &plain).await, 1);
    let claimed = Instant::now();
    assert_eq!(heartbeat(&app, &plain).await, StatusCode::NO_CONTENT);
    assert_eq!(ended(&mut events, &plain).await, EndReason::Evicted);
    assert_eq!(claimed.elapsed(), Duration::from_secs(300));
}

#[tokio::test(start_paused = true)]
async fn a_bad_lease_or_body_is_refused_and_opens_nothing() {
    let app = InProcess::start(1, default_timeouts());
    for body in [
        r#"{"heartbeat_seconds": 0}"#,
        r#"{"heartbeat_seconds": 301}"#,
        r#"{"heartbeat_seconds": "5"}"#,
        "[]",
        r#"[{"user": "ada"}]"#,
    ] {
        let (status, answer) = create_with(&app, body, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    }
    assert_eq!(app.coordinator.count(), 0);
    let (status, _) = create_with(&app, "null", None).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "null says nothing, like no body"
    );
}

#[tokio::test(start_paused = true)]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    let app = InProcess::start(1, default_timeouts());
    let first = r#"{"client": {"user": "ada"}, "heartbeat_seconds": 5}"#;
    let (status, opened) = create_with(&app, first, Some("k-1")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = create_with(&app, first, Some("k-1")).await;
    assert_eq!(
        (status, &again["session_id"]),
        (StatusCode::CREATED, &opened["session_id"])
    );
    for other in [
        r#"{"client": {"user": "bob"}, "heartbeat_seconds": 5}"#,
        r#"{"client": {"user": "ada"}}"#,
        "",
    ] {
        let (status, answer) = create_with(&app, other, Some("k-1")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{other:?}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{answer}"
        );
    }
    assert_eq!(app.coordinator.count(), 1, "nothing else was opened");
}

#[tokio::test(start_paused = true)]
async fn a_busy_holder_is_warned_at_80_percent_and_ended_at_the_maximum_hold() {
    let timeouts = Timeouts {
        max_hold: Some(Duration::from_secs(100)),
        ..default_timeouts()
    };
    let app = InProcess::start(1, timeouts);
    let mut events = app.coordinator.subscribe();
    let start = Instant::now();
    let (holder, _) = create(&app).await;
    let (waiter, _) = create(&app).await;
    assert_eq!(
        acquire(&app, &holder, "nodes: [r1]\n").await.0,
        StatusCode::OK
    );
    // Alive throughout: heartbeats every 10 s never extend the hold.
    let beating = {
        let router = app.router.clone();
        let holder = holder.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let beat = request("POST", "/session/heartbeat", Some(&holder));
                let _ = router.clone().oneshot(beat).await;
            }
        })
    };
    let ends_in = until(&mut events, |kind| match kind {
        EventKind::HoldWarning { ends_in, .. } => Some(*ends_in),
        _ => None,
    })
    .await;
    assert_eq!(start.elapsed(), Duration::from_secs(80));
    assert_eq!(ends_in, Duration::from_secs(20));
    assert_eq!(ended(&mut events, &holder).await, EndReason::MaxHold);
    assert_eq!(start.elapsed(), Duration::from_secs(100));
    beating.abort();

    // The holder's next call says why; the slot went to the next session.
    let (status, body) = send(&app, request("GET", "/lab", Some(&holder))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("Session not found") && detail.contains("max_hold"),
        "{detail}"
    );
    promoted(&mut events, &waiter).await;
    assert_eq!(status_of(&app, &waiter).await.1["status"], "active");
    // A session that never existed gets the original's answer.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, body) = status_of(&app, unknown).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::NOT_FOUND, &Value::from("Session not found"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_body_that_never_arrives_gets_408_and_opens_nothing() {
    let app = InProcess::start(1, default_timeouts());
    let (chunks, streamed) = streamed_body();
    let start = Instant::now();
    let request = Request::builder()
        .method("POST")
        .uri("/session")
        .header("content-type", "application/json")
        .body(streamed)
        .unwrap();
    let create = tokio::spawn(app.router.clone().oneshot(request));
    // The first bytes arrive, then nothing (the sender stays open).
    chunks.send(b"{\"client\":".to_vec()).await.unwrap();
    let response = create.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(app.coordinator.count(), 0);
    drop(chunks);
}
