//! Putting back what a previous run stored: the line in its order with the
//! same ids, each holder in its slot, and the labs that still run.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use super::events::EventBus;
use super::{Coordinator, SessionRecord, expire_later, idempotency};
use crate::auth::Caller;
use crate::domain::Phase;
use crate::queue::RestoredEntry;
use crate::session_id::SessionId;
use crate::store::{StoredHost, StoredLab, StoredSession};

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

/// Which stored labs may be re-adopted: a lab whose holder keeps its
/// slot, and, when labs are kept for a next session (`keep_idle`), a lab
/// that was kept so in a slot nobody keeps. No other lab passes to another
/// session: a held lab whose holder lost its slot is cleared.
pub fn labs_to_readopt(
    sessions: &[StoredSession],
    labs: &[StoredLab],
    slots: usize,
    keep_idle: bool,
) -> Vec<StoredLab> {
    let kept = kept_slots(sessions, slots);
    let held = |slot: usize| kept.contains(&Some(slot));
    labs.iter()
        .filter(|lab| {
            let unheld_kept = keep_idle && lab.phase == Phase::Kept && lab.slot <= slots;
            held(lab.slot) || (unheld_kept && !held(lab.slot))
        })
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
    /// The lab hosts (lab agents) that had joined: put back offline until
    /// their agents register again (with lab agents allowed).
    pub hosts: Vec<StoredHost>,
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
        let sessions = restored.sessions.len();
        let kept = kept_slots(&restored.sessions, self.all_slots().len());
        self.shared.lock().events = EventBus::new(Arc::clone(&self.store), restored.last_event_id);
        // A lab whose holder keeps its slot is adopted as it was; one in a
        // slot nobody holds was kept for a next session, and is kept again
        // for a whole window (an event says so).
        for lab in &restored.labs {
            let keep_for = (!kept.contains(&Some(lab.slot))).then_some(self.keep_idle);
            let slot = self.slot(lab.slot - 1);
            if let Some(keep) = slot.adopt(lab, keep_for) {
                let stop = self.shared.shutdown.clone();
                (self.tasks).spawn(expire_later(slot, keep, self.keep_idle, stop));
            }
        }
        let mut state = self.shared.lock();
        for lab in &restored.labs {
            state.slots[lab.slot - 1].lab = Some(lab.identity.clone());
        }
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
            built_by: None,
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
        assert_eq!(labs_to_readopt(&line, &labs, 2, false), labs);
        // With one slot the holder of slot 1 waits: its lab must not go to
        // whoever is promoted next.
        assert!(labs_to_readopt(&line, &labs, 1, true).is_empty());
        // A lab whose holder left (before the crash) has nobody to keep it.
        assert!(labs_to_readopt(&line[..1], &labs[..1], 2, true).is_empty());
        // A lab kept for a next session is adopted as such, in a slot
        // nobody holds, and only while labs are kept.
        let kept = StoredLab {
            phase: Phase::Kept,
            ..lab(2)
        };
        let nobody = [session(None)];
        let labs = std::slice::from_ref(&kept);
        assert_eq!(labs_to_readopt(&nobody, labs, 2, true), labs);
        assert!(labs_to_readopt(&nobody, labs, 2, false).is_empty());
        assert!(labs_to_readopt(&nobody, labs, 1, true).is_empty());
    }
}
