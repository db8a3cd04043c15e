//! Putting back what a previous run stored: the line in its order with the
//! same ids, each holder in its slot, and the labs that still run.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::Coordinator;
use super::events::EventBus;
use crate::auth::Caller;
use crate::store::{StoredLab, StoredSession};

/// What a start found in the store, checked against the host.
#[derive(Debug, Default)]
pub struct Restored {
    /// The line, first come first.
    pub sessions: Vec<StoredSession>,
    /// Labs that still run (their directory exists and netlab still lists
    /// their instance): re-adopted, nobody holding them.
    pub labs: Vec<StoredLab>,
    /// Event ids go on after this one.
    pub last_event_id: u64,
}

impl Coordinator {
    /// Puts `restored` back. Call once, before serving. Every session counts
    /// as seen now, so live clients have their whole timeout to come back;
    /// ACTIVE sessions keep their slot (as long as the slots still form the
    /// front of the line); a slot left free goes to the next in line, who
    /// must claim it within the claim window like any promoted session.
    pub fn restore(&self, restored: Restored) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        // Stored wall-clock times become instants as far back as they were.
        let instant = |at: SystemTime| {
            wall.duration_since(at)
                .ok()
                .and_then(|ago| now.checked_sub(ago))
                .unwrap_or(now)
        };
        for lab in &restored.labs {
            self.slots[lab.slot - 1].adopt(lab);
        }
        let sessions = restored.sessions.len();
        let mut state = self.shared.lock();
        state.events = EventBus::new(Arc::clone(&self.store), restored.last_event_id);
        // Holders form the front of the line: once one cannot keep its
        // slot (fewer slots now), everyone behind it waits.
        let mut front = true;
        for session in restored.sessions {
            let id = session.id;
            state.line.rejoin(id, instant(session.joined_at), now);
            if let Some(key) = session.key {
                state.keys.remember_session(key, id);
            }
            if let Some(client) = session.client {
                state.clients.insert(id, Arc::new(client));
            }
            if let Some(owner) = session.owner {
                state.owners.insert(id, Caller::restored(&owner));
            }
            let slot = session.promoted.filter(|&(_, slot)| {
                front && state.slots.get(slot - 1).is_some_and(|s| s.is_free())
            });
            match slot {
                Some((promoted_at, slot)) => {
                    state.line.promote_next(instant(promoted_at), true);
                    let slot_state = &mut state.slots[slot - 1];
                    slot_state.holder = Some(id);
                    slot_state.holder_token = self.shared.shutdown.child_token();
                }
                None => front = false,
            }
            state.refresh(id);
        }
        state.fill_free_slots(now, &self.shared.shutdown, None);
        drop(state);
        self.shared.timer.notify_one();
        tracing::info!(
            sessions,
            labs = restored.labs.len(),
            "restored the queue and the labs of the previous run"
        );
    }
}
