//! Putting back what a previous run stored: the line in its order with the
//! same ids, each holder in its slot, and the labs that still run.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::events::EventBus;
use super::{Coordinator, SessionRecord, idempotency};
use crate::auth::Caller;
use crate::queue::RestoredEntry;
use crate::session_id::SessionId;
use crate::store::{StoredLab, StoredSession};

/// The slot each stored session keeps at a start with `slots` slots, in
/// line order. Once a holder cannot keep its slot (fewer slots now), no
/// holder behind it keeps one either: it waits, and the line stays first
/// come, first served. (A holder may stand behind waiting sessions: the
/// batching policy promoted it ahead of them.)
pub fn kept_slots(sessions: &[StoredSession], slots: usize) -> Vec<Option<usize>> {
    let mut taken = vec![false; slots];
    let mut front = true;
    sessions
        .iter()
        .map(|session| {
            let (_, slot) = session.promoted?;
            let kept = front && slot >= 1 && slot <= slots && !taken[slot - 1];
            if kept {
                taken[slot - 1] = true;
            } else {
                front = false;
            }
            kept.then_some(slot)
        })
        .collect()
}

/// Which stored labs may be re-adopted: only a lab whose holder keeps its
/// slot. A slot never passes to another session with its lab still up.
pub fn labs_with_their_holder(
    sessions: &[StoredSession],
    labs: &[StoredLab],
    slots: usize,
) -> Vec<StoredLab> {
    let kept = kept_slots(sessions, slots);
    labs.iter()
        .filter(|lab| kept.contains(&Some(lab.slot)))
        .cloned()
        .collect()
}

/// What a start found in the store, checked against the host.
#[derive(Debug, Default)]
pub struct Restored {
    /// The line, first come first.
    pub sessions: Vec<StoredSession>,
    /// Labs that still run (their directory exists and netlab still lists
    /// their instance) and whose holder keeps its slot: re-adopted, with
    /// no reference held.
    pub labs: Vec<StoredLab>,
    /// Event ids go on after this one.
    pub last_event_id: u64,
}

impl Coordinator {
    /// Puts `restored` back. Call once, before serving. Every session must
    /// show a sign of life within the claim window: live clients poll or
    /// beat within seconds, and a client that died while the server was
    /// down must not keep its place (or its lab) for a whole timeout.
    /// ACTIVE sessions keep their slot (see [`kept_slots`]); a slot left
    /// free goes to the next in line, who must claim it within the claim
    /// window like any promoted session.
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
        let mut state = self.shared.lock();
        for lab in &restored.labs {
            state.slots[lab.slot - 1].lab = Some(lab.identity.clone());
        }
        drop(state);
        let sessions = restored.sessions.len();
        let kept = kept_slots(&restored.sessions, self.slots.len());
        let mut state = self.shared.lock();
        state.events = EventBus::new(Arc::clone(&self.store), restored.last_event_id);
        for (session, kept) in restored.sessions.into_iter().zip(kept) {
            let id = session.id;
            let promoted = kept.and(session.promoted).map(|(at, _)| instant(at));
            let entry = RestoredEntry {
                joined: instant(session.joined_at),
                promoted,
                lease: session.lease,
                overtaken: session.overtaken,
            };
            let record = SessionRecord::new(
                session.client.clone().map(Arc::new),
                session.owner.as_deref().map(Caller::restored),
            );
            state.line.restore(id, entry, record, now);
            if let Some(key) = session.key {
                let fingerprint =
                    idempotency::session_fingerprint(session.client.as_ref(), session.lease);
                state.keys.remember_session(key, fingerprint, id);
            }
            if let Some(slot) = kept {
                let slot_state = &mut state.slots[slot - 1];
                slot_state.holder = Some(id);
                slot_state.holder_token = self.shared.shutdown.child_token();
            }
            state.refresh(id);
        }
        let live: Vec<SessionId> = state.line.list().map(|listed| listed.id).collect();
        for (id, declared) in state.declared.restore(&live) {
            if let Some(record) = state.line.record_mut(&id) {
                record.declared = declared;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LabFiles, Phase};
    use crate::session_id::SessionId;

    fn session(slot: Option<usize>) -> StoredSession {
        StoredSession {
            id: SessionId::new(),
            joined_at: SystemTime::now(),
            promoted: slot.map(|slot| (SystemTime::now(), slot)),
            client: None,
            key: None,
            owner: None,
            lease: None,
            overtaken: 0,
        }
    }

    fn lab(slot: usize) -> StoredLab {
        StoredLab {
            slot,
            files: LabFiles {
                dir: format!("/lab-{slot}").into(),
                netlab_dir: format!("/lab-{slot}").into(),
            },
            identity: "x".into(),
            topology: "t.yml".into(),
            devices: Some(Vec::new()),
            ref_count: 1,
            started_at: None,
            phase: Phase::Up,
        }
    }

    #[test]
    fn holders_keep_their_slots_while_they_form_the_front() {
        let line = [session(Some(2)), session(Some(1)), session(None)];
        assert_eq!(kept_slots(&line, 2), [Some(2), Some(1), None]);
        // One slot now: the first holder's slot is gone, so nobody behind
        // it may keep one either.
        assert_eq!(kept_slots(&line, 1), [None, None, None]);
        // A holder behind a waiting session (promoted ahead of it) keeps
        // its slot.
        let line = [session(Some(1)), session(None), session(Some(2))];
        assert_eq!(kept_slots(&line, 2), [Some(1), None, Some(2)]);
    }

    #[test]
    fn a_lab_is_adopted_only_with_its_holder() {
        let line = [session(Some(2)), session(Some(1))];
        let labs = [lab(1), lab(2)];
        assert_eq!(labs_with_their_holder(&line, &labs, 2), labs);
        // With one slot the holder of slot 1 waits: its lab must not go to
        // whoever is promoted next.
        assert!(labs_with_their_holder(&line, &labs, 1).is_empty());
        // A lab whose holder left (before the crash) has nobody to keep it.
        assert!(labs_with_their_holder(&line[..1], &labs[..1], 2).is_empty());
    }
}
