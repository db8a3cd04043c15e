//! The read-only views' wire types (`GET /sessions`, `GET /events`, see
//! [`crate::wire`]) built from the coordinator's pictures and events.

use std::time::{Duration, SystemTime};

use crate::coordinator::{Overview, SessionView, SlotView};
use crate::domain::events::{Event, EventKind};
use crate::lab::{Device, LabChange};
use crate::wire::{
    DeviceSummaryDto, EventDto, EventKindDto, LabSummaryDto, QueuedSessionDto, SessionsDto, SlotDto,
};

/// Characters of a lab identity (SHA-256 hex) shown.
const IDENTITY_PREFIX: usize = 12;

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
            host: view.host.as_deref().map(str::to_string),
            client: view.client.as_deref().map(Into::into),
            owner: view.owner.as_ref().map(|owner| owner.name().to_string()),
            waiting_seconds: view.waiting.as_secs_f64(),
            holding_seconds: view.holding.map(|held| held.as_secs_f64()),
            heartbeat_seconds: view.lease.map(|lease| lease.heartbeat().as_secs()),
            lease_seconds: view.lease.map(|lease| lease.silence_limit().as_secs_f64()),
            silent_seconds: view.silent.as_secs_f64(),
            evicted_in_seconds: view.evicted_in.map(|left| left.as_secs_f64()),
            declared_labs: view
                .declared
                .iter()
                .map(|identity| identity.short().to_string())
                .collect(),
        }
    }
}

impl From<&SlotView> for SlotDto {
    fn from(view: &SlotView) -> Self {
        let lab = &view.lab;
        SlotDto {
            slot: view.number,
            phase: view.phase.as_str().to_string(),
            holder: view.holder.map(|id| id.to_string()),
            host: view.host.as_deref().map(str::to_string),
            online: view.host.is_some().then_some(view.online),
            lab: lab.topology.as_ref().map(|topology| LabSummaryDto {
                topology: topology.clone(),
                identity: prefix(lab.identity.as_deref().unwrap_or_default()),
                ref_count: lab.ref_count,
                devices: lab.devices.iter().map(Into::into).collect(),
                kept_expires_in_seconds: lab.kept_until.map(|until| {
                    seconds(until.saturating_duration_since(tokio::time::Instant::now()))
                }),
            }),
        }
    }
}

impl From<&Device> for DeviceSummaryDto {
    fn from(device: &Device) -> Self {
        DeviceSummaryDto {
            name: device.name.clone(),
            mgmt: device.reach().map(str::to_string),
        }
    }
}

fn prefix(identity: &str) -> String {
    identity.chars().take(IDENTITY_PREFIX).collect()
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl From<&Event> for EventDto {
    fn from(event: &Event) -> Self {
        EventDto {
            id: event.id,
            at: rfc3339(event.at),
            kind: (&event.kind).into(),
            host: event.kind.host().map(str::to_string),
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
                lease,
                ..
            } => EventKindDto::SessionJoined {
                session: session.to_string(),
                position: *position,
                client: client.as_deref().map(Into::into),
                owner: owner.as_ref().map(|owner| owner.name().to_string()),
                heartbeat_seconds: lease.map(|lease| lease.heartbeat().as_secs()),
            },
            EventKind::SessionPromoted {
                session,
                slot,
                waited,
                ..
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
                reason: reason.as_str().to_string(),
                waited_seconds: seconds(*waited),
                held_seconds: held.map(seconds),
            },
            EventKind::SessionMoved { session, from, to } => EventKindDto::SessionMoved {
                session: session.to_string(),
                from_slot: *from,
                to_slot: *to,
            },
            EventKind::SessionBypassed {
                session,
                by,
                overtaken,
            } => EventKindDto::SessionBypassed {
                session: session.to_string(),
                by: by.to_string(),
                overtaken: *overtaken,
            },
            EventKind::HoldWarning { session, ends_in } => EventKindDto::SessionHoldWarning {
                session: session.to_string(),
                ends_in_seconds: seconds(*ends_in),
            },
            EventKind::PrebootStarted {
                session,
                slot,
                identity,
            } => EventKindDto::LabPrebootStarted {
                session: session.to_string(),
                slot: *slot,
                identity: prefix(identity),
            },
            EventKind::HostRegistered { slots, .. } => EventKindDto::HostRegistered {
                slots: slots.clone(),
            },
            EventKind::HostOffline { .. } => EventKindDto::HostOffline {},
            EventKind::HostOnline { .. } => EventKindDto::HostOnline {},
            EventKind::Lab { slot, change, .. } => lab_event(*slot, change),
        }
    }
}

fn lab_event(slot: usize, change: &LabChange) -> EventKindDto {
    match change {
        LabChange::Starting {
            topology, identity, ..
        } => EventKindDto::LabStarting {
            slot,
            topology: topology.clone(),
            identity: prefix(identity),
        },
        LabChange::Up { devices, took } => EventKindDto::LabUp {
            slot,
            devices: devices.len(),
            seconds: seconds(*took),
        },
        LabChange::Attached { ref_count, warm } => EventKindDto::LabAttached {
            slot,
            ref_count: *ref_count,
            warm: *warm,
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
        LabChange::Kept { expires_in } => EventKindDto::LabKept {
            slot,
            expires_in_seconds: seconds(*expires_in),
        },
        LabChange::Expired => EventKindDto::LabExpired { slot },
        LabChange::Resetting { command } => EventKindDto::LabResetting {
            slot,
            command: command.clone(),
        },
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
