//! Wire types of the read-only views (`GET /sessions`, `GET /events`).
//! Sessions appear by their short id only (the first 8 hex digits): the
//! full id is what grants access to a session (with auth off, the only
//! thing), and these views are for everyone who may watch. With auth on
//! they also name the token each session belongs to.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::client_info::ClientInfoDto;
use super::dto::SessionState;
use crate::coordinator::events::{Event, EventKind};
use crate::coordinator::{Overview, SessionView, SlotView};
use crate::lab::{Device, LabChange};

/// Characters of a lab identity (SHA-256 hex) shown.
const IDENTITY_PREFIX: usize = 12;

/// Answer to `GET /sessions`: the line and the slots, taken at one instant.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionsDto {
    /// In line order: ACTIVE sessions first, then the waiting ones.
    pub sessions: Vec<QueuedSessionDto>,
    /// Slot 1 first.
    pub slots: Vec<SlotDto>,
}

/// One session of the line.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedSessionDto {
    /// The session id's first 8 hex digits (never the full id).
    pub id: String,
    pub status: SessionState,
    /// As `GET /session/{id}` reports it.
    pub position: usize,
    /// The slot it holds (from 1), when active.
    pub slot: Option<usize>,
    pub client: Option<ClientInfoDto>,
    /// The name of the token that created it; only with auth on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Seconds in the line before its promotion (up to now while waiting).
    pub waiting_seconds: f64,
    /// Seconds since its promotion, when active.
    pub holding_seconds: Option<f64>,
}

/// One lab slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotDto {
    /// From 1.
    pub slot: usize,
    /// `idle`, `starting`, `up`, `releasing`, `tearing_down`, `dirty` or `failed`.
    pub phase: &'static str,
    /// The holder's short id.
    pub holder: Option<String>,
    /// The running lab, if any.
    pub lab: Option<LabSummaryDto>,
}

/// A running lab, for watchers.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabSummaryDto {
    pub topology: String,
    /// The first 12 hex digits of its identity (SHA-256 of its content).
    pub identity: String,
    pub ref_count: u32,
    pub devices: Vec<DeviceSummaryDto>,
}

/// A device and where to reach it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceSummaryDto {
    pub name: String,
    /// `mgmt.ipv4`, else `ansible_host`, from netlab's host view.
    pub mgmt: Option<String>,
}

impl From<&Overview> for SessionsDto {
    fn from(overview: &Overview) -> Self {
        SessionsDto {
            sessions: overview.sessions.iter().map(Into::into).collect(),
            slots: overview.slots.iter().map(Into::into).collect(),
        }
    }
}

impl From<&SessionView> for QueuedSessionDto {
    fn from(view: &SessionView) -> Self {
        QueuedSessionDto {
            id: view.id.to_string(),
            status: view.standing.status.into(),
            position: view.standing.position,
            slot: view.slot,
            client: view.client.as_deref().map(Into::into),
            owner: view.owner.as_ref().map(|owner| owner.name().to_string()),
            waiting_seconds: view.waiting.as_secs_f64(),
            holding_seconds: view.holding.map(|held| held.as_secs_f64()),
        }
    }
}

impl From<&SlotView> for SlotDto {
    fn from(view: &SlotView) -> Self {
        let lab = &view.lab;
        SlotDto {
            slot: view.number,
            phase: view.phase.as_str(),
            holder: view.holder.map(|id| id.to_string()),
            lab: lab.topology.as_ref().map(|topology| LabSummaryDto {
                topology: topology.clone(),
                identity: prefix(lab.identity.as_deref().unwrap_or_default()),
                ref_count: lab.ref_count,
                devices: lab.devices.iter().map(Into::into).collect(),
            }),
        }
    }
}

impl From<&Device> for DeviceSummaryDto {
    fn from(device: &Device) -> Self {
        let mgmt = device
            .raw
            .get("mgmt")
            .and_then(|mgmt| mgmt.get("ipv4"))
            .or_else(|| device.raw.get("ansible_host"))
            .and_then(Value::as_str)
            .map(str::to_string);
        DeviceSummaryDto {
            name: device.name.clone(),
            mgmt,
        }
    }
}

fn prefix(identity: &str) -> String {
    identity.chars().take(IDENTITY_PREFIX).collect()
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// One event of `GET /events`, the `data` of its SSE message (whose `id`
/// is the same number).
#[derive(Debug, Serialize)]
pub struct EventDto {
    pub id: u64,
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    #[serde(flatten)]
    pub kind: EventKindDto,
}

/// What happened; the `type` key names it. Slots are numbered from 1,
/// durations are seconds.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKindDto {
    SessionJoined {
        session: String,
        position: usize,
        client: Option<ClientInfoDto>,
        /// The token's name; only with auth on.
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
    },
    SessionPromoted {
        session: String,
        slot: usize,
        waited_seconds: f64,
    },
    SessionEnded {
        session: String,
        /// `closed`, `evicted` or `claim_expired`.
        reason: &'static str,
        waited_seconds: f64,
        held_seconds: Option<f64>,
    },
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

impl From<&Event> for EventDto {
    fn from(event: &Event) -> Self {
        EventDto {
            id: event.id,
            at: rfc3339(event.at),
            kind: (&event.kind).into(),
        }
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

impl From<&EventKind> for EventKindDto {
    fn from(kind: &EventKind) -> Self {
        match kind {
            EventKind::SessionJoined {
                session,
                position,
                client,
                owner,
            } => EventKindDto::SessionJoined {
                session: session.to_string(),
                position: *position,
                client: client.as_deref().map(Into::into),
                owner: owner.as_ref().map(|owner| owner.name().to_string()),
            },
            EventKind::SessionPromoted {
                session,
                slot,
                waited,
            } => EventKindDto::SessionPromoted {
                session: session.to_string(),
                slot: *slot,
                waited_seconds: seconds(*waited),
            },
            EventKind::SessionEnded {
                session,
                reason,
                waited,
                held,
            } => EventKindDto::SessionEnded {
                session: session.to_string(),
                reason: reason.as_str(),
                waited_seconds: seconds(*waited),
                held_seconds: held.map(seconds),
            },
            EventKind::Lab { slot, change } => lab_event(*slot, change),
        }
    }
}

fn lab_event(slot: usize, change: &LabChange) -> EventKindDto {
    match change {
        LabChange::Starting { topology, identity } => EventKindDto::LabStarting {
            slot,
            topology: topology.clone(),
            identity: prefix(identity),
        },
        LabChange::Up { devices, took } => EventKindDto::LabUp {
            slot,
            devices: *devices,
            seconds: seconds(*took),
        },
        LabChange::Attached { ref_count } => EventKindDto::LabAttached {
            slot,
            ref_count: *ref_count,
        },
        LabChange::Failed {
            command,
            exit_code,
            error,
        } => EventKindDto::LabFailed {
            slot,
            command: command.clone(),
            exit_code: *exit_code,
            error: error.clone(),
        },
        LabChange::Released { ref_count } => EventKindDto::LabReleased {
            slot,
            ref_count: *ref_count,
        },
        LabChange::Idle => EventKindDto::LabIdle { slot },
        LabChange::TearingDown => EventKindDto::LabTearingDown { slot },
        LabChange::Down { took } => EventKindDto::LabDown {
            slot,
            seconds: seconds(*took),
        },
        LabChange::Dirty { error } => EventKindDto::LabDirty {
            slot,
            error: error.clone(),
        },
    }
}
