//! Wire types of the read-only views (`GET /sessions`, `GET /events`).
//! Sessions appear by their short id only (the first 8 hex digits): the
//! full id is what grants access to a session, and these views are for
//! everyone who may watch. With auth on they also name each session's token.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ClientInfoDto, SessionState};

/// Answer to `GET /sessions`: the line and the slots, taken at one instant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionsDto {
    /// In line order: ACTIVE sessions first, then the waiting ones.
    pub sessions: Vec<QueuedSessionDto>,
    /// Slot 1 first.
    pub slots: Vec<SlotDto>,
}

/// One session of the line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueuedSessionDto {
    /// The session id's first 8 hex digits (never the full id).
    pub id: String,
    pub status: SessionState,
    /// As `GET /session/{id}` reports it.
    pub position: usize,
    /// The slot it holds (from 1), when active.
    pub slot: Option<usize>,
    /// The lab host of that slot when it is a lab agent's; absent for this
    /// host's slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub client: Option<ClientInfoDto>,
    /// The name of the token that created it; only with auth on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Seconds in the line before its promotion (up to now while waiting).
    pub waiting_seconds: f64,
    /// Seconds since its promotion, when active.
    pub holding_seconds: Option<f64>,
    /// The heartbeat interval its client announced (`POST /session`'s
    /// `heartbeat_seconds`); `null` when it announced none.
    pub heartbeat_seconds: Option<u64>,
    /// Seconds it may stay silent before it is evicted, by its lease
    /// (max(3 × heartbeat, 10)); `null` without a lease (the waiting and
    /// active timeouts apply).
    pub lease_seconds: Option<f64>,
    /// Seconds since its last sign of life.
    pub silent_seconds: f64,
    /// Seconds left before it is evicted unless it shows a sign of life;
    /// `null` while a long request of a session without a lease runs.
    pub evicted_in_seconds: Option<f64>,
    /// The labs it declared it will ask for, in order: the first 12 hex
    /// digits of each identity, as `lab.identity` shows a running lab.
    #[serde(default)]
    pub declared_labs: Vec<String>,
}

/// One lab slot.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SlotDto {
    /// From 1.
    pub slot: usize,
    /// `idle`, `kept`, `resetting`, `starting`, `up`, `releasing`,
    /// `tearing_down`, `dirty` or `failed`.
    pub phase: String,
    /// The holder's short id.
    pub holder: Option<String>,
    /// The lab host of a lab agent's slot (with `online`); absent for this
    /// host's slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Whether that lab host answers now (absent for this host's slots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
    /// The running lab, if any.
    pub lab: Option<LabSummaryDto>,
}

/// A running lab, for watchers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabSummaryDto {
    pub topology: String,
    /// The first 12 hex digits of its identity (SHA-256 of its content).
    pub identity: String,
    pub ref_count: u32,
    pub devices: Vec<DeviceSummaryDto>,
    /// While the lab is kept for the next session that asks for it
    /// (`--keep-idle-lab`): seconds until it is torn down.
    #[serde(default)]
    pub kept_expires_in_seconds: Option<f64>,
}

/// A device and where to reach it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceSummaryDto {
    pub name: String,
    /// `mgmt.ipv4`, else `ansible_host`, from netlab's host view.
    pub mgmt: Option<String>,
}

/// One event of `GET /events`, the `data` of its SSE message (whose `id`
/// is the same number).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDto {
    pub id: u64,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    #[serde(flatten)]
    pub kind: EventKindDto,
    /// The lab host of the event's slot when it is a lab agent's (events
    /// `session_promoted` and `lab_*`); absent for this host's slots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// What happened; the `type` key names it. Slots are numbered from 1,
/// durations are seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKindDto {
    SessionJoined {
        session: String,
        position: usize,
        client: Option<ClientInfoDto>,
        /// The token's name; only with auth on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// The heartbeat interval its client announced (its lease).
        #[serde(default)]
        heartbeat_seconds: Option<u64>,
    },
    SessionPromoted {
        session: String,
        slot: usize,
        waited_seconds: f64,
    },
    SessionEnded {
        session: String,
        /// `closed`, `evicted`, `claim_expired`, `lease_expired`, `max_hold`,
        /// `host_lost` or `not_saved`.
        reason: String,
        waited_seconds: f64,
        held_seconds: Option<f64>,
    },
    /// The session, promoted before it declared its lab, moved from slot
    /// `from_slot` to `to_slot`, which keeps the lab it declared first.
    SessionMoved {
        session: String,
        from_slot: usize,
        to_slot: usize,
    },
    /// `by` was promoted ahead of the waiting `session` because a free
    /// slot keeps the lab `by` declared first (`--placement batch`);
    /// `session` has now been overtaken `overtaken` times, at most the
    /// server's `--max-bypass`.
    SessionBypassed {
        session: String,
        by: String,
        overtaken: u32,
    },
    /// The session has held its slot for 80 % of the server's
    /// `--max-hold`; it is ended in `ends_in_seconds`.
    SessionHoldWarning {
        session: String,
        ends_in_seconds: f64,
    },
    /// The session, just promoted into `slot`, declared this lab first: the
    /// server brings it up before the session asks (`identity`: its first
    /// 12 hex digits).
    LabPrebootStarted {
        session: String,
        slot: usize,
        identity: String,
    },
    /// A lab host (its `host`, at the event's top level) joined the pool
    /// with these slots.
    HostRegistered {
        slots: Vec<usize>,
    },
    /// A lab host stopped answering: its slots get no new session; its
    /// sessions keep theirs for the coordinator's `--host-grace`.
    HostOffline {},
    /// A lab host answers again.
    HostOnline {},
    LabStarting {
        slot: usize,
        topology: String,
        identity: String,
    },
    LabUp {
        slot: usize,
        devices: usize,
        seconds: f64,
    },
    LabAttached {
        slot: usize,
        ref_count: u32,
        /// The lab was kept up from an earlier session (a warm hand-over).
        #[serde(default)]
        warm: bool,
    },
    LabFailed {
        slot: usize,
        command: Option<String>,
        exit_code: Option<i32>,
        /// netlab's message with its last output lines.
        error: String,
    },
    LabReleased {
        slot: usize,
        ref_count: u32,
    },
    LabIdle {
        slot: usize,
    },
    /// Its holder's session ended; the lab stays up for the next session
    /// that asks for it, at most this long.
    LabKept {
        slot: usize,
        expires_in_seconds: f64,
    },
    /// A kept lab was not asked for in time; its teardown follows.
    LabExpired {
        slot: usize,
    },
    /// A kept lab is reset (`--warm-reset`) before another session gets it.
    LabResetting {
        slot: usize,
        command: String,
    },
    LabTearingDown {
        slot: usize,
    },
    LabDown {
        slot: usize,
        seconds: f64,
    },
    LabDirty {
        slot: usize,
        error: String,
    },
    /// Not an event: this reader lost `count` events (it fell behind, or
    /// resumed after events that are no longer kept). Carries no id.
    Dropped {
        count: u64,
    },
}
