//! Pre-boot and placement with real netlab, counted: a session's first
//! declared lab is brought up the moment it is promoted, before it asks;
//! its own `POST /lab` then attaches (no second `netlab up`), or gets
//! netlab's verdict on a failed pre-boot without netlab running again. A
//! promoted session goes to the slot that keeps its declared lab; under
//! `--placement batch` a later session may use a kept lab first, within
//! its bypass bound.

mod common;

use std::time::{Duration, Instant};

use common::{CountingNetlab, Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

const OTHER_LAB: &str = "defaults.device: eos\nnodes: [x1]\n";
/// netlab refuses it (no such device): `netlab up` fails.
const BROKEN_LAB: &str = "defaults.device: no-such-device\nnodes: [r1]\n";

/// Polls `GET /sessions` (no sign of life for anyone) until `done` holds.
async fn wait_for(s: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = s.get_json("/sessions").await;
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "{what}: {now}\n{}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A waiting session behind `holder` that declared `topology`.
async fn declared_waiter(s: &Server, topology: &str) -> String {
    let (waiter, position) = s.create_session().await;
    assert_eq!(position, 1);
    let (status, body) = s
        .declare(&waiter, Upload::new("topology.yml", topology).form())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    waiter
}

#[tokio::test]
async fn a_declared_lab_is_up_before_its_session_asks_and_then_attached() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = Server::start(Options::new(&netlab.script)).await;
    let (holder, _) = s.create_session().await;
    let waiter = declared_waiter(&s, TWO_NODES).await;
    assert_eq!(netlab.ups(), 0);

    assert_eq!(s.end_session(&holder).await, StatusCode::NO_CONTENT);
    // Nobody asked yet: the server brings the declared lab up by itself.
    // Up, unheld (phase `idle` with a lab) until the session attaches.
    wait_for(&s, "the pre-booted lab is up", |now| {
        now["slots"][0]["phase"] == "idle" && now["slots"][0]["lab"]["topology"].is_string()
    })
    .await;
    assert_eq!(netlab.ups(), 1);
    let events = s
        .replayed_events(100, |events| {
            events.iter().any(|e| e["type"] == "lab_preboot_started")
        })
        .await;
    let preboot = events.iter().find(|e| e["type"] == "lab_preboot_started");
    assert_eq!(preboot.unwrap()["session"], waiter[..8], "{events:?}");

    // The session's own request (a fresh lab, as fixtures ask by default)
    // attaches to the lab brought up for it.
    let (status, lab) = s
        .acquire(&waiter, Upload::new("topology.yml", TWO_NODES).reuse(false))
        .await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(lab["reused"], true, "{lab}");
    assert_eq!(lab["devices"].as_array().map(Vec::len), Some(2));
    assert_eq!(netlab.ups(), 1, "{:?}", netlab.commands());
}

#[tokio::test]
async fn a_failed_pre_boot_is_the_answer_to_the_first_request_and_netlab_runs_once() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let s = Server::start(Options::new(&netlab.script)).await;
    let (holder, _) = s.create_session().await;
    let waiter = declared_waiter(&s, BROKEN_LAB).await;
    assert_eq!(s.end_session(&holder).await, StatusCode::NO_CONTENT);
    // The slot is idle before the pre-boot starts too: wait for its verdict.
    s.replayed_events(100, |events| {
        events.iter().any(|e| e["type"] == "lab_failed")
    })
    .await;
    let ups = netlab.ups();
    assert_eq!(ups, 1, "{:?}", netlab.commands());

    let (status, body) = s
        .acquire(&waiter, Upload::new("topology.yml", BROKEN_LAB))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        netlab.ups(),
        ups,
        "netlab ran again: {:?}",
        netlab.commands()
    );
    // The next request is the session's own: netlab is asked again.
    let (status, _) = s
        .acquire(&waiter, Upload::new("topology.yml", BROKEN_LAB))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(netlab.ups(), ups + 1);
}

/// The slot (from 1) `GET /sessions` shows the session holding.
fn slot_of(now: &Value, id: &str) -> Option<Value> {
    now["sessions"]
        .as_array()
        .and_then(|all| all.iter().find(|entry| entry["id"] == id[..8]))
        .map(|entry| entry["slot"].clone())
}

/// A server with two slots that keep labs, where one session after the
/// other brought `labs` up and left: both are kept. Returns it and the slot
/// (from 1) each lab went to.
async fn two_slots_keeping(netlab: &CountingNetlab, labs: [&str; 2]) -> (Server, Vec<Value>) {
    let options = Options::new(&netlab.script)
        .arg("--lab-slots", "2")
        .arg("--keep-idle-lab", "600");
    let s = Server::start(options).await;
    let mut slots = Vec::new();
    for topology in labs {
        let (session, _) = s.create_session().await;
        let (status, lab) = s
            .acquire(&session, Upload::new("topology.yml", topology))
            .await;
        assert_eq!(status, StatusCode::OK, "{lab}");
        slots.push(slot_of(&s.get_json("/sessions").await, &session).unwrap());
        assert_eq!(s.end_session(&session).await, StatusCode::NO_CONTENT);
    }
    wait_for(&s, "both labs kept", |now| {
        now["slots"][0]["phase"] == "kept" && now["slots"][1]["phase"] == "kept"
    })
    .await;
    (s, slots)
}

#[tokio::test]
async fn a_new_session_takes_an_empty_slot_before_a_kept_lab_then_the_longest_idle_one() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let (s, kept) = two_slots_keeping(&netlab, [TWO_NODES, OTHER_LAB]).await;
    // Each took the empty slot while the other kept its lab.
    assert_eq!(kept, [Value::from(1), Value::from(2)]);
    let now = s.get_json("/sessions").await;
    // Both slots keep a lab: the one idle longest (slot 1) gives way.
    let (next, _) = s.create_session().await;
    let now_after = s.get_json("/sessions").await;
    assert_eq!(
        slot_of(&now_after, &next),
        Some(1.into()),
        "{now}\n{now_after}"
    );
    assert_eq!(netlab.ups(), 2);
}

/// The sessions (8-character ids) in the order the events promoted them.
fn promotions(events: &[Value]) -> Vec<String> {
    (events.iter())
        .filter(|event| event["type"] == "session_promoted")
        .map(|event| event["session"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn batch_lets_a_session_use_a_kept_lab_ahead_of_older_ones_at_most_k_times() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let options = Options::new(&netlab.script)
        .arg("--keep-idle-lab", "600")
        .arg("--placement", "batch")
        .arg("--max-bypass", "1");
    let s = Server::start(options).await;
    let (holder, _) = s.create_session().await;
    let (status, lab) = s
        .acquire(&holder, Upload::new("topology.yml", TWO_NODES))
        .await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    // Behind it: one session for another lab, then two for the kept one.
    let mut line = Vec::new();
    for topology in [OTHER_LAB, TWO_NODES, TWO_NODES] {
        let (waiter, _) = s.create_session().await;
        let (status, body) = s
            .declare(&waiter, Upload::new("topology.yml", topology).form())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        line.push(waiter);
    }
    let [other, same, same_again] = [&line[0], &line[1], &line[2]];

    // The slot keeps the lab: the first session that wants it goes ahead
    // of the older one, and attaches with no bring-up.
    assert_eq!(s.end_session(&holder).await, StatusCode::NO_CONTENT);
    s.wait_until_active(same).await;
    let (status, lab) = s
        .acquire(same, Upload::new("topology.yml", TWO_NODES))
        .await;
    assert_eq!(
        (status, &lab["reused"]),
        (StatusCode::OK, &true.into()),
        "{lab}"
    );
    assert_eq!(netlab.ups(), 1, "{:?}", netlab.commands());
    let (_, standing) = s.session_status(other).await;
    assert_eq!(standing["status"], "waiting", "{standing}");

    // The older one has been overtaken once (K = 1): the next session for
    // the kept lab may not pass it again.
    assert_eq!(s.end_session(same).await, StatusCode::NO_CONTENT);
    s.wait_until_active(other).await;
    let (status, lab) = s
        .acquire(other, Upload::new("topology.yml", OTHER_LAB))
        .await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(s.end_session(other).await, StatusCode::NO_CONTENT);
    s.wait_until_active(same_again).await;
    assert_eq!(s.end_session(same_again).await, StatusCode::NO_CONTENT);

    let events = s
        .replayed_events(200, |events| promotions(events).len() == 4)
        .await;
    let short = |id: &String| id[..8].to_string();
    assert_eq!(
        promotions(&events),
        [&holder, same, other, same_again].map(short),
        "{events:?}"
    );
    let bypasses: Vec<&Value> = (events.iter())
        .filter(|event| event["type"] == "session_bypassed")
        .collect();
    assert_eq!(bypasses.len(), 1, "{events:?}");
    assert_eq!(
        (
            &bypasses[0]["session"],
            &bypasses[0]["by"],
            &bypasses[0]["overtaken"]
        ),
        (&short(other).into(), &short(same).into(), &1.into())
    );
    // The holder's lab was cold, the overtaking one's warm, the passed
    // one's pre-booted; the last pre-boot nobody attached to.
    let metrics = s.get_text("/metrics").await;
    for line in [
        "neops_remote_lab_bypasses_total 1",
        "neops_remote_lab_cold_bringups_total 1",
        "neops_remote_lab_unused_preboots_total 1",
        "neops_remote_lab_time_to_lab_seconds_count{path=\"cold\"} 1",
        "neops_remote_lab_time_to_lab_seconds_count{path=\"warm\"} 1",
        "neops_remote_lab_time_to_lab_seconds_count{path=\"preboot\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}:\n{metrics}");
    }
}

#[tokio::test]
async fn a_session_promoted_before_it_declared_moves_to_the_slot_that_keeps_its_lab() {
    let real = require_netlab!();
    let netlab = CountingNetlab::new(&real);
    let (s, _) = two_slots_keeping(&netlab, [OTHER_LAB, TWO_NODES]).await;
    // An idle host promotes at once, into the slot idle longest (slot 1,
    // which keeps the other lab); the declaration that follows moves it.
    let (next, _) = s.create_session().await;
    assert_eq!(
        slot_of(&s.get_json("/sessions").await, &next),
        Some(1.into())
    );
    let (status, body) = s
        .declare(&next, Upload::new("topology.yml", TWO_NODES).form())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let now = s.get_json("/sessions").await;
    assert_eq!(slot_of(&now, &next), Some(2.into()), "{now}");
    assert_eq!(now["slots"][0]["phase"], "kept", "the other lab stays kept");
    let (status, lab) = s
        .acquire(&next, Upload::new("topology.yml", TWO_NODES))
        .await;
    assert_eq!(
        (status, &lab["reused"]),
        (StatusCode::OK, &true.into()),
        "{lab}"
    );
    assert_eq!(netlab.ups(), 2, "{:?}", netlab.commands());
    let events = s
        .replayed_events(100, |events| {
            events.iter().any(|e| e["type"] == "session_moved")
        })
        .await;
    let moved = events
        .iter()
        .find(|e| e["type"] == "session_moved")
        .unwrap();
    assert_eq!(
        (&moved["from_slot"], &moved["to_slot"]),
        (&1.into(), &2.into())
    );
}
