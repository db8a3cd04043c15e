//! Prometheus metrics, through the `metrics` facade: the recorder (one per
//! process, rendered by `GET /metrics`, no listener of its own) and the
//! task that turns the coordinator's events into counters, gauges and
//! histograms. HTTP requests are counted by `api::http_metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `neops_remote_lab_sessions_waiting`, `…_sessions_active` | gauge | |
//! | `neops_remote_lab_queue_wait_seconds` (join → promotion) | histogram | |
//! | `neops_remote_lab_session_hold_seconds` (promotion → end) | histogram | |
//! | `neops_remote_lab_lab_bringup_seconds`, `…_lab_teardown_seconds` | histogram | `slot` |
//! | `neops_remote_lab_netlab_failures_total` | counter | `command` (`up`, `down`, `inspect`, …) |
//! | `neops_remote_lab_lab_bringups_total` (every `netlab up` that succeeded) | counter | |
//! | `neops_remote_lab_cold_bringups_total` (those a session's own request ran: not pre-boots) | counter | |
//! | `neops_remote_lab_unused_preboots_total` (pre-booted labs their session never attached to) | counter | |
//! | `neops_remote_lab_time_to_lab_seconds` (promotion → the session holds its first lab) | histogram | `path` (`cold`, `warm`, `preboot`) |
//! | `neops_remote_lab_warm_handovers_total` (kept labs attached by the next session) | counter | |
//! | `neops_remote_lab_lab_preboots_total` (declared labs brought up at their session's promotion) | counter | |
//! | `neops_remote_lab_bypasses_total` (a waiting session overtaken by a later one, `--placement batch`) | counter | |
//! | `neops_remote_lab_kept_labs_expired_total` (kept labs nobody asked for in time) | counter | |
//! | `neops_remote_lab_kept_idle_seconds_total` (slot-seconds labs spent kept, unheld: what warmth costs) | counter | |
//! | `neops_remote_lab_evictions_total` | counter | `reason` (`evicted`, `claim_expired`, `lease_expired`, `max_hold`) |
//! | `neops_remote_lab_http_requests_total` | counter | `method`, `route`, `status` |
//! | `neops_remote_lab_log_writes_dropped_total` (log lines stderr could not take, or that overflowed the log buffer) | counter | |
//! | `neops_remote_lab_build_info` (always 1) | gauge | `version` |

mod lab_paths;

use std::sync::{Arc, OnceLock};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::broadcast;

use self::lab_paths::LabPaths;
use crate::coordinator::Coordinator;
use crate::domain::events::{EndReason, Event, EventKind};
use crate::lab::LabChange;

pub const SESSIONS_WAITING: &str = "neops_remote_lab_sessions_waiting";
pub const SESSIONS_ACTIVE: &str = "neops_remote_lab_sessions_active";
pub const QUEUE_WAIT: &str = "neops_remote_lab_queue_wait_seconds";
pub const HOLD: &str = "neops_remote_lab_session_hold_seconds";
pub const BRING_UP: &str = "neops_remote_lab_lab_bringup_seconds";
pub const TEARDOWN: &str = "neops_remote_lab_lab_teardown_seconds";
pub const NETLAB_FAILURES: &str = "neops_remote_lab_netlab_failures_total";
pub const EVICTIONS: &str = "neops_remote_lab_evictions_total";
pub const HTTP_REQUESTS: &str = "neops_remote_lab_http_requests_total";
pub const BUILD_INFO: &str = "neops_remote_lab_build_info";
pub const LOG_WRITES_DROPPED: &str = "neops_remote_lab_log_writes_dropped_total";
pub const BRING_UPS: &str = "neops_remote_lab_lab_bringups_total";
pub const WARM_HANDOVERS: &str = "neops_remote_lab_warm_handovers_total";
pub const PREBOOTS: &str = "neops_remote_lab_lab_preboots_total";
pub const COLD_BRING_UPS: &str = "neops_remote_lab_cold_bringups_total";
pub const UNUSED_PREBOOTS: &str = "neops_remote_lab_unused_preboots_total";
pub const TIME_TO_LAB: &str = "neops_remote_lab_time_to_lab_seconds";
pub const BYPASSES: &str = "neops_remote_lab_bypasses_total";
pub const KEPT_EXPIRED: &str = "neops_remote_lab_kept_labs_expired_total";
pub const KEPT_IDLE: &str = "neops_remote_lab_kept_idle_seconds_total";

/// Bucket bounds (seconds) for time spent in the line or holding a slot.
const SESSION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// Bucket bounds (seconds) for netlab bring-ups and teardowns.
const LAB_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0,
];

/// The process's recorder, installed globally on first use; every caller
/// gets a handle to the same one (the `metrics` macros have one global).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> PrometheusHandle {
    let buckets = [
        (QUEUE_WAIT, SESSION_BUCKETS),
        (HOLD, SESSION_BUCKETS),
        (BRING_UP, LAB_BUCKETS),
        (TEARDOWN, LAB_BUCKETS),
        (TIME_TO_LAB, LAB_BUCKETS),
    ];
    let builder = buckets
        .into_iter()
        .fold(PrometheusBuilder::new(), |builder, (name, bounds)| {
            builder
                .set_buckets_for_metric(Matcher::Full(name.into()), bounds)
                .expect("bucket bounds are not empty")
        });
    let handle = builder
        .install_recorder()
        .expect("the only metrics recorder of this process");
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    gauge!(SESSIONS_WAITING).set(0.0);
    gauge!(SESSIONS_ACTIVE).set(0.0);
    // Shown from the start, so a rate over them works before their first
    // increment.
    for name in [
        BRING_UPS,
        COLD_BRING_UPS,
        WARM_HANDOVERS,
        PREBOOTS,
        UNUSED_PREBOOTS,
        BYPASSES,
        KEPT_EXPIRED,
        KEPT_IDLE,
    ] {
        counter!(name).absolute(0);
    }
    handle
}

fn describe() {
    describe_gauge!(SESSIONS_WAITING, "Sessions waiting in the queue");
    describe_gauge!(SESSIONS_ACTIVE, "Sessions holding a lab slot");
    describe_histogram!(
        QUEUE_WAIT,
        metrics::Unit::Seconds,
        "Time from joining the queue to holding a slot"
    );
    describe_histogram!(HOLD, metrics::Unit::Seconds, "Time a session held its slot");
    describe_histogram!(
        BRING_UP,
        metrics::Unit::Seconds,
        "netlab bring-up time (up and inspect), per slot"
    );
    describe_histogram!(
        TEARDOWN,
        metrics::Unit::Seconds,
        "netlab teardown time, per slot"
    );
    describe_counter!(
        NETLAB_FAILURES,
        "Failed netlab commands of bring-ups and teardowns, by command"
    );
    describe_counter!(EVICTIONS, "Sessions evicted, by reason");
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, matched route and status"
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version is a label");
    describe_counter!(BRING_UPS, "Labs brought up with netlab up");
    describe_counter!(
        WARM_HANDOVERS,
        "Labs kept up after their holder left and attached by the next session"
    );
    describe_counter!(
        PREBOOTS,
        "Declared labs brought up at their session's promotion, before it asked"
    );
    describe_counter!(
        COLD_BRING_UPS,
        "Labs brought up for a session's own request (not pre-boots)"
    );
    describe_counter!(
        UNUSED_PREBOOTS,
        "Pre-booted labs their session never attached to (it left, or asked for another lab first)"
    );
    describe_histogram!(
        TIME_TO_LAB,
        metrics::Unit::Seconds,
        "Time from a session's promotion to its holding its first lab, by path: cold, warm, preboot"
    );
    describe_counter!(
        BYPASSES,
        "Waiting sessions overtaken by a later one whose lab a free slot kept (--placement batch)"
    );
    describe_counter!(
        KEPT_EXPIRED,
        "Kept labs torn down because nobody asked for them in time"
    );
    describe_counter!(
        KEPT_IDLE,
        metrics::Unit::Seconds,
        "Slot-seconds labs spent kept up, unheld, for a next session"
    );
    describe_counter!(
        LOG_WRITES_DROPPED,
        "Log lines dropped because stderr could not take them (its reader went away, or stopped reading and the buffer was full)"
    );
}

/// The Prometheus text exposition of `handle`, with the counters kept
/// outside the recorder brought up to date first.
pub fn render(handle: &PrometheusHandle) -> String {
    // The log writer counts on its own: it may fail before the recorder
    // exists, and must not log (or record) while it writes a log line.
    counter!(LOG_WRITES_DROPPED).absolute(crate::logging::dropped_writes());
    handle.render()
}

/// Turns every coordinator event into metrics until the event stream
/// closes or the server stops. Subscribes at once (before it is polled), so
/// no event after this call is missed.
pub fn record_events(coordinator: Arc<Coordinator>) -> impl Future<Output = ()> + Send {
    let mut events = coordinator.subscribe();
    async move {
        // A restored queue is there before any event.
        set_session_gauges(&coordinator);
        let mut kept_since = KeptSince::default();
        let mut lab_paths = LabPaths::default();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = coordinator.stopping() => return,
            };
            match event {
                Ok(event) => {
                    kept_since.record(&event);
                    lab_paths.record(&event);
                    record(&event);
                }
                Err(broadcast::error::RecvError::Lagged(count)) => {
                    tracing::warn!(
                        count,
                        "metrics fell behind the events; some samples are lost"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
            set_session_gauges(&coordinator);
        }
    }
}

fn set_session_gauges(coordinator: &Coordinator) {
    let (active, waiting) = coordinator.counts();
    gauge!(SESSIONS_ACTIVE).set(active as f64);
    gauge!(SESSIONS_WAITING).set(waiting as f64);
}

fn record(event: &Event) {
    match &event.kind {
        EventKind::SessionJoined { .. }
        | EventKind::HoldWarning { .. }
        | EventKind::SessionMoved { .. }
        | EventKind::HostRegistered { .. }
        | EventKind::HostOffline { .. }
        | EventKind::HostOnline { .. } => {}
        EventKind::PrebootStarted { .. } => counter!(PREBOOTS).increment(1),
        EventKind::SessionBypassed { .. } => counter!(BYPASSES).increment(1),
        EventKind::SessionPromoted { waited, .. } => {
            histogram!(QUEUE_WAIT).record(waited.as_secs_f64());
        }
        EventKind::SessionEnded { reason, held, .. } => {
            if let Some(held) = held {
                histogram!(HOLD).record(held.as_secs_f64());
            }
            if *reason != EndReason::Closed {
                counter!(EVICTIONS, "reason" => reason.as_str()).increment(1);
            }
        }
        EventKind::Lab { slot, change, .. } => {
            let slot = slot.to_string();
            match change {
                LabChange::Up { took, .. } => {
                    histogram!(BRING_UP, "slot" => slot).record(took.as_secs_f64());
                    counter!(BRING_UPS).increment(1);
                }
                LabChange::Attached { warm: true, .. } => {
                    counter!(WARM_HANDOVERS).increment(1);
                }
                LabChange::Expired => counter!(KEPT_EXPIRED).increment(1),
                LabChange::Down { took } => {
                    histogram!(TEARDOWN, "slot" => slot).record(took.as_secs_f64());
                }
                LabChange::Failed {
                    command: Some(command),
                    ..
                } => {
                    counter!(NETLAB_FAILURES, "command" => netlab_verb(command)).increment(1);
                }
                LabChange::Dirty { .. } => {
                    counter!(NETLAB_FAILURES, "command" => "down").increment(1);
                }
                _ => {}
            }
        }
    }
}

/// When each slot's lab was kept, to count the slot-seconds it stayed so.
#[derive(Default)]
struct KeptSince(std::collections::HashMap<usize, std::time::SystemTime>);

impl KeptSince {
    fn record(&mut self, event: &Event) {
        let EventKind::Lab { slot, change, .. } = &event.kind else {
            return;
        };
        match change {
            LabChange::Kept { .. } => {
                self.0.insert(*slot, event.at);
            }
            LabChange::Attached { .. } | LabChange::Expired | LabChange::TearingDown => {
                if let Some(since) = self.0.remove(slot) {
                    let kept = event.at.duration_since(since).unwrap_or_default();
                    counter!(KEPT_IDLE).increment(kept.as_secs());
                }
            }
            _ => {}
        }
    }
}

/// The netlab subcommand of a command line (`/x/netlab up t.yml -q` →
/// `up`), so the label stays one of a few values whatever the paths.
fn netlab_verb(command: &str) -> &'static str {
    const VERBS: [&str; 5] = ["up", "down", "inspect", "status", "version"];
    command
        .split_whitespace()
        .skip(1)
        .find_map(|word| VERBS.into_iter().find(|verb| *verb == word))
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_label_is_the_netlab_subcommand() {
        assert_eq!(netlab_verb("/v/bin/netlab up /tmp/lab/t.yml -q"), "up");
        assert_eq!(netlab_verb("netlab inspect …all hosts…"), "inspect");
        assert_eq!(netlab_verb("/srv/up/netlab"), "other");
    }
}
