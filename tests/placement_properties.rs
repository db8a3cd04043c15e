//! The coordinator's placement policies as a whole, through the real
//! router in-process (in-memory lab driver, Tokio's paused clock): random
//! arrivals, each declaring one of three labs, and random departures of
//! holders (each first attaching to its lab, so its slot keeps it). From
//! the event history alone: under `fifo` sessions are promoted in arrival
//! order; under `batch` nobody is overtaken more than K times; under both
//! every session is promoted exactly once.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::in_process::{BOUNDARY, form, send};
use neops_remote_lab::coordinator::placement::Policy;
use neops_remote_lab::domain::events::EventKind;
use neops_remote_lab::testing::{InProcess, default_timeouts};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    /// A session arrives and declares lab `n`.
    Arrive(u8),
    /// The `n`-th ACTIVE session (modulo their number) uses its lab, then leaves.
    Leave(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..3).prop_map(Step::Arrive),
        (0usize..4).prop_map(Step::Leave)
    ]
}

fn topology(lab: u8) -> String {
    format!("nodes: [r{lab}]\n")
}

fn multipart(method: &str, uri: &str, session: &str, lab: u8) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("x-session-id", session)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(form(&topology(lab))))
        .unwrap()
}

fn plain(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

/// Lets every task that can run, run (the paused clock moves on only
/// when all are idle): hand-backs and pre-boots finish.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

struct Run {
    app: InProcess,
    /// Session ids (8 characters, as events name them) by arrival, with their lab.
    arrivals: Vec<(String, u8)>,
}

impl Run {
    async fn arrive(&mut self, lab: u8) {
        let (status, body) = send(&self.app, plain("POST", "/session")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["session_id"].as_str().unwrap().to_string();
        let uri = format!("/session/{id}/labs");
        let (status, body) = send(&self.app, multipart("POST", &uri, &id, lab)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.arrivals.push((id, lab));
        settle().await;
    }

    /// The ACTIVE sessions' full ids, in line order.
    async fn active(&self) -> Vec<String> {
        let mut active = Vec::new();
        for (id, _) in &self.arrivals {
            let (status, body) = send(&self.app, plain("GET", &format!("/session/{id}"))).await;
            if status == StatusCode::OK && body["status"] == "active" {
                active.push(id.clone());
            }
        }
        active
    }

    /// The `pick`-th holder attaches to its lab, then leaves; false when
    /// nobody holds a slot.
    async fn leave(&mut self, pick: usize) -> bool {
        let active = self.active().await;
        if active.is_empty() {
            return false;
        }
        let id = &active[pick % active.len()];
        let lab = self
            .arrivals
            .iter()
            .find(|(other, _)| other == id)
            .unwrap()
            .1;
        let (status, body) = send(&self.app, multipart("POST", "/lab", id, lab)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = send(&self.app, plain("DELETE", &format!("/session/{id}"))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        settle().await;
        true
    }
}

/// Runs `steps`, then lets every holder leave in turn; returns the
/// promotions (short ids, in order), the bypass events' counts and the
/// arrivals (short ids).
fn run(policy: Policy, slots: usize, steps: &[Step]) -> (Vec<String>, Vec<u32>, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let app =
            InProcess::with_placement(slots, default_timeouts(), policy, Duration::from_secs(3600));
        let mut run = Run {
            app,
            arrivals: Vec::new(),
        };
        for step in steps {
            match step {
                Step::Arrive(lab) => run.arrive(*lab).await,
                Step::Leave(pick) => {
                    run.leave(*pick).await;
                }
            }
        }
        while run.leave(0).await {}
        let history = run.app.coordinator.resume_events(Some(0), 1024).backlog;
        let promotions = (history.iter())
            .filter_map(|event| match &event.kind {
                EventKind::SessionPromoted { session, .. } => Some(session.to_string()),
                _ => None,
            })
            .collect();
        let bypasses = (history.iter())
            .filter_map(|event| match &event.kind {
                EventKind::SessionBypassed { overtaken, .. } => Some(*overtaken),
                _ => None,
            })
            .collect();
        let arrivals = run
            .arrivals
            .iter()
            .map(|(id, _)| id[..8].to_string())
            .collect();
        (promotions, bypasses, arrivals)
    })
}

/// How often each session (in arrival order) saw a later one promoted
/// before it, computed from the order alone.
fn times_overtaken(promotions: &[String], arrivals: &[String]) -> Vec<usize> {
    let rank = |id: &String| arrivals.iter().position(|other| other == id).unwrap();
    arrivals
        .iter()
        .map(|id| {
            let promoted_at = promotions.iter().position(|other| other == id).unwrap();
            promotions[..promoted_at]
                .iter()
                .filter(|earlier| rank(earlier) > rank(id))
                .count()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fifo_promotes_in_arrival_order_and_batch_bounds_how_often_anyone_is_passed(
        slots in 1usize..3,
        max_bypass in 1u32..4,
        batch in any::<bool>(),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let policy = if batch { Policy::Batch { max_bypass } } else { Policy::Fifo };
        let (promotions, bypasses, arrivals) = run(policy, slots, &steps);
        let mut once = promotions.clone();
        once.sort();
        once.dedup();
        prop_assert_eq!(once.len(), promotions.len(), "promoted twice: {:?}", promotions);
        prop_assert_eq!(promotions.len(), arrivals.len(), "everyone is promoted");
        let overtaken = times_overtaken(&promotions, &arrivals);
        match policy {
            Policy::Fifo => {
                prop_assert_eq!(&promotions, &arrivals);
                prop_assert!(bypasses.is_empty());
            }
            Policy::Batch { max_bypass } => {
                let bound = max_bypass as usize;
                prop_assert!(overtaken.iter().all(|&n| n <= bound), "{:?}", overtaken);
                prop_assert!(bypasses.iter().all(|&n| n <= max_bypass), "{:?}", bypasses);
                prop_assert_eq!(bypasses.len(), overtaken.iter().sum::<usize>());
            }
        }
    }
}
