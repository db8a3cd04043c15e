//! Typed domain events: what happened to sessions and lab slots, in order.
//!
//! The coordinator numbers each event under its lock, so ids increase in the
//! order things happened, and publishes it on a bounded `broadcast` channel.
//! A subscriber that falls behind loses the oldest events (it is told how
//! many) rather than slowing the server down.

use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use crate::lab::LabChange;
use crate::session_id::SessionId;

/// How many events a slow subscriber may fall behind before it loses some.
const CHANNEL_CAPACITY: usize = 1024;

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
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    SessionJoined {
        session: SessionId,
        position: usize,
    },
    /// The session now holds lab slot `slot` (numbered from 1).
    SessionPromoted {
        session: SessionId,
        slot: usize,
    },
    SessionEnded {
        session: SessionId,
        reason: EndReason,
        /// How long it waited before its promotion, or in all if never promoted.
        waited: Duration,
        /// How long it held a slot, if it did.
        held: Option<Duration>,
    },
    /// Lab slot `slot` (numbered from 1) changed.
    Lab {
        slot: usize,
        change: LabChange,
    },
}

impl EventKind {
    /// Whether a session's standing may have changed with this event.
    pub fn moves_the_line(&self) -> bool {
        !matches!(self, EventKind::Lab { .. })
    }
}

/// Numbers events and hands them to subscribers.
#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    last_id: u64,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            sender: broadcast::Sender::new(CHANNEL_CAPACITY),
            last_id: 0,
        }
    }
}

impl EventBus {
    /// Publishes `kind` as the next event. Call it under the coordinator's
    /// lock, so ids follow the order of the changes they describe.
    pub fn publish(&mut self, kind: EventKind) -> u64 {
        self.last_id += 1;
        tracing::debug!(id = self.last_id, ?kind, "event");
        // No subscriber is fine: nobody is watching.
        let _ = self.sender.send(Event {
            id: self.last_id,
            at: SystemTime::now(),
            kind,
        });
        self.last_id
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
