//! Idempotency keys: a client that lost an answer can send the same request
//! again with the same `Idempotency-Key` header (IETF
//! draft-ietf-httpapi-idempotency-key-header) and get the first request's
//! result instead of a second session or a second bring-up.
//!
//! Keys are remembered for their session's lifetime: `POST /session` keys
//! map to the session they created, `POST /lab` keys (per session) to the
//! outcome of the acquire they started, shared by everyone who waits for it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::ClientInfo;
use crate::lab::{Acquired, LabError};
use crate::queue::Lease;
use crate::session_id::SessionId;

/// How many `POST /lab` keys one session keeps; the oldest is forgotten
/// beyond that (a session retries its latest requests, not old ones).
const LAB_KEYS_PER_SESSION: usize = 64;

/// What an acquire ended with, shareable between the request that ran it
/// and its repeats.
pub type LabOutcome = Result<Acquired, Arc<LabError>>;

/// Where the outcome of a keyed acquire appears (`None` while it runs).
pub type OutcomeSender = Arc<watch::Sender<Option<LabOutcome>>>;

/// A keyed `POST /lab`: the first of its key, or a repeat of one.
pub enum LabKey {
    /// Run the acquire and send its outcome here.
    First(OutcomeSender),
    /// Wait for the first request's outcome.
    Repeat(watch::Receiver<Option<LabOutcome>>),
    /// The key was used for another request (other content or `reuse`):
    /// refused, as the IETF draft advises (HTTP 422).
    Reused,
}

/// A keyed `POST /session`.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionKey {
    /// No live session was opened with the key.
    New,
    /// The key opened this live session, with the same request.
    Opened(SessionId),
    /// The key opened a live session with another request (other client
    /// info or lease): refused, as for `POST /lab` (HTTP 422).
    Reused,
}

/// What makes two `POST /session` requests the same: everything their body
/// said about the client.
pub fn session_fingerprint(client: Option<&ClientInfo>, lease: Option<Lease>) -> String {
    let client = serde_json::to_string(&client).expect("client info serializes");
    let lease = lease.map(|lease| lease.heartbeat().as_secs());
    format!("{client} lease={lease:?}")
}

#[derive(Default)]
struct LabKeys {
    order: VecDeque<String>,
    /// Each key's request fingerprint and outcome.
    outcomes: HashMap<String, (String, OutcomeSender)>,
}

/// All keys of all live sessions.
#[derive(Default)]
pub struct Keys {
    /// Each `POST /session` key's session and request fingerprint.
    sessions: HashMap<String, (SessionId, String)>,
    session_key: HashMap<SessionId, String>,
    labs: HashMap<SessionId, LabKeys>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("sessions", &self.sessions.len())
            .field("labs", &self.labs.len())
            .finish()
    }
}

impl Keys {
    /// What a `POST /session` with `key` and the request `fingerprint`
    /// (see [`session_fingerprint`]) finds.
    pub fn session(&self, key: &str, fingerprint: &str) -> SessionKey {
        match self.sessions.get(key) {
            None => SessionKey::New,
            Some((id, first)) if first == fingerprint => SessionKey::Opened(*id),
            Some(_) => SessionKey::Reused,
        }
    }

    /// Remembers that `key` opened `id` with the request `fingerprint`.
    pub fn remember_session(&mut self, key: String, fingerprint: String, id: SessionId) {
        self.session_key.insert(id, key.clone());
        self.sessions.insert(key, (id, fingerprint));
    }

    /// The first `POST /lab` of session `id` with `key`, or a repeat of
    /// the same request (same `fingerprint`), or a key reused for another.
    pub fn lab(&mut self, id: SessionId, key: &str, fingerprint: &str) -> LabKey {
        let keys = self.labs.entry(id).or_default();
        if let Some((first, sender)) = keys.outcomes.get(key) {
            if first != fingerprint {
                return LabKey::Reused;
            }
            return LabKey::Repeat(sender.subscribe());
        }
        if keys.order.len() == LAB_KEYS_PER_SESSION
            && let Some(oldest) = keys.order.pop_front()
        {
            keys.outcomes.remove(&oldest);
        }
        let sender = Arc::new(watch::Sender::new(None));
        keys.order.push_back(key.to_string());
        keys.outcomes.insert(
            key.to_string(),
            (fingerprint.to_string(), Arc::clone(&sender)),
        );
        LabKey::First(sender)
    }

    /// Forgets every key of a session that ended.
    pub fn forget(&mut self, id: &SessionId) {
        if let Some(key) = self.session_key.remove(id) {
            self.sessions.remove(&key);
        }
        self.labs.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_live_as_long_as_their_session_and_their_request() {
        let mut keys = Keys::default();
        let id = SessionId::new();
        let (first, other) = (
            session_fingerprint(None, Lease::every(5)),
            session_fingerprint(None, None),
        );
        keys.remember_session("k".into(), first.clone(), id);
        assert_eq!(keys.session("k", &first), SessionKey::Opened(id));
        assert_eq!(keys.session("k", &other), SessionKey::Reused);
        keys.forget(&id);
        assert_eq!(keys.session("k", &first), SessionKey::New);
    }

    #[test]
    fn a_lab_key_is_first_once_then_a_repeat_and_per_session() {
        let mut keys = Keys::default();
        let (a, b) = (SessionId::new(), SessionId::new());
        assert!(matches!(keys.lab(a, "k", "x"), LabKey::First(_)));
        assert!(matches!(keys.lab(a, "k", "x"), LabKey::Repeat(_)));
        assert!(matches!(keys.lab(a, "k", "y"), LabKey::Reused));
        assert!(matches!(keys.lab(b, "k", "y"), LabKey::First(_)));
        keys.forget(&a);
        assert!(matches!(keys.lab(a, "k", "y"), LabKey::First(_)));
    }

    #[test]
    fn only_the_latest_lab_keys_are_kept() {
        let mut keys = Keys::default();
        let id = SessionId::new();
        for n in 0..=LAB_KEYS_PER_SESSION {
            assert!(matches!(keys.lab(id, &n.to_string(), ""), LabKey::First(_)));
        }
        assert!(
            matches!(keys.lab(id, "0", ""), LabKey::First(_)),
            "the oldest was forgotten"
        );
        assert!(matches!(keys.lab(id, "2", ""), LabKey::Repeat(_)));
    }
}
