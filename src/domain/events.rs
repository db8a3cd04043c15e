//! What happened to sessions and lab slots: the events the coordinator
//! publishes, the store persists and watchers receive. Plain data, below
//! every layer that uses it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{ClientInfo, Device, LabChange};
use crate::auth::Caller;
use crate::queue::Lease;
use crate::session_id::SessionId;

/// How many of the most recent events are kept for readers that resume.
pub const HISTORY: usize = 1024;

/// One thing that happened, with its place in the order of all events.
#[derive(Debug, Clone)]
pub struct Event {
    /// Starts at 1 and increases by one per event.
    pub id: u64,
    /// Wall-clock time it happened.
    pub at: SystemTime,
    pub kind: EventKind,
}

/// Why a session left the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `DELETE /session/{id}`.
    Closed,
    /// Not seen within its active or waiting timeout.
    Evicted,
    /// Promoted, then not seen within the claim window.
    ClaimExpired,
    /// Its creation could not be stored, so its client was told it failed.
    NotSaved,
    /// Not seen within the lease its client announced.
    LeaseExpired,
    /// Held its slot for `--max-hold`.
    MaxHold,
    /// Its slot's lab host (a lab agent) stayed silent past `--host-grace`,
    /// or started afresh.
    HostLost,
}

impl EndReason {
    /// The reason as a `snake_case` word, for the wire and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Evicted => "evicted",
            EndReason::ClaimExpired => "claim_expired",
            EndReason::NotSaved => "not_saved",
            EndReason::LeaseExpired => "lease_expired",
            EndReason::MaxHold => "max_hold",
            EndReason::HostLost => "host_lost",
        }
    }

    /// Why the session ended, in words, for a client that asks after it.
    pub fn explain(self) -> &'static str {
        match self {
            EndReason::Closed => "it was closed (DELETE /session)",
            EndReason::Evicted => "it was evicted: not seen within the server's timeout",
            EndReason::ClaimExpired => {
                "it was promoted but did not claim its slot within the server's claim window"
            }
            EndReason::NotSaved => "it could not be stored",
            EndReason::LeaseExpired => {
                "it was evicted: no heartbeat within its lease (3 x heartbeat_seconds, at least 10 s)"
            }
            EndReason::MaxHold => "it held its lab slot for the server's maximum hold (--max-hold)",
            EndReason::HostLost => {
                "its lab host was lost: the host's lab agent stopped answering (or restarted) and did not come back within the coordinator's --host-grace"
            }
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    SessionJoined {
        session: SessionId,
        position: usize,
        /// Who the client said it is, if it said.
        client: Option<Arc<ClientInfo>>,
        /// The token it was created with (with auth on).
        owner: Option<Caller>,
        /// The `Idempotency-Key` it was created with (kept for restarts,
        /// never shown).
        key: Option<String>,
        /// The heartbeat interval its client announced.
        lease: Option<Lease>,
    },
    /// The session now holds lab slot `slot` (numbered from 1).
    SessionPromoted {
        session: SessionId,
        slot: usize,
        /// The lab host of a lab agent's slot; `None`: this host's.
        host: Option<Arc<str>>,
        /// How long it waited in the line before this.
        waited: Duration,
    },
    SessionEnded {
        session: SessionId,
        reason: EndReason,
        /// How long it waited before its promotion, or in all if never promoted.
        waited: Duration,
        /// How long it held a slot, if it did.
        held: Option<Duration>,
    },
    /// The ACTIVE session, promoted before it declared its lab, moved from
    /// slot `from` to slot `to` (numbered from 1), which keeps that lab.
    SessionMoved {
        session: SessionId,
        from: usize,
        to: usize,
    },
    /// `by` was promoted ahead of the waiting `session` (`--placement
    /// batch`), which has now been overtaken `overtaken` times.
    SessionBypassed {
        session: SessionId,
        by: SessionId,
        overtaken: u32,
    },
    /// The ACTIVE session has held its slot for 80 % of `--max-hold`: it
    /// is ended in `ends_in`.
    HoldWarning {
        session: SessionId,
        ends_in: Duration,
    },
    /// The session, just promoted into `slot`, declared `identity` first:
    /// the server brings it up before the session asks.
    PrebootStarted {
        session: SessionId,
        slot: usize,
        identity: String,
    },
    /// Lab host `host` (a lab agent) joined the pool with slots `slots`.
    HostRegistered { host: Arc<str>, slots: Vec<usize> },
    /// Lab host `host` was silent for `--agent-lease`: its slots get no new
    /// holder.
    HostOffline { host: Arc<str> },
    /// Lab host `host` answers again.
    HostOnline { host: Arc<str> },
    /// Lab slot `slot` (numbered from 1) changed.
    Lab {
        slot: usize,
        /// The lab host of a lab agent's slot; `None`: this host's.
        host: Option<Arc<str>>,
        change: LabChange,
    },
}

impl EventKind {
    /// The event as watchers keep it: a lab's devices by name only.
    pub fn without_host_views(self) -> EventKind {
        match self {
            EventKind::Lab {
                slot,
                host,
                change: LabChange::Up { devices, took },
            } => EventKind::Lab {
                slot,
                host,
                change: LabChange::Up {
                    devices: Arc::new(devices.iter().map(Device::named).collect()),
                    took,
                },
            },
            other => other,
        }
    }

    /// The lab host of the event's slot, when it is a lab agent's.
    pub fn host(&self) -> Option<&str> {
        match self {
            EventKind::SessionPromoted { host, .. } | EventKind::Lab { host, .. } => {
                host.as_deref()
            }
            EventKind::HostRegistered { host, .. }
            | EventKind::HostOffline { host }
            | EventKind::HostOnline { host } => Some(host),
            _ => None,
        }
    }

    /// Whether a session's standing may have changed with this event.
    pub fn moves_the_line(&self) -> bool {
        !matches!(
            self,
            EventKind::Lab { .. }
                | EventKind::HoldWarning { .. }
                | EventKind::PrebootStarted { .. }
                | EventKind::SessionBypassed { .. }
                | EventKind::SessionMoved { .. }
                | EventKind::HostRegistered { .. }
                | EventKind::HostOffline { .. }
                | EventKind::HostOnline { .. }
        )
    }
}
