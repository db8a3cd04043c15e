//! The FIFO session queue: who may use the lab, who waits, and who is gone.
//!
//! This is a pure state machine. It performs no I/O and never reads a clock:
//! every operation that depends on time takes `now` as an argument, so the
//! rules can be tested with a fake clock and the caller decides what "now" is.
//!
//! The head of the queue (position 0) is the ACTIVE session, everyone behind
//! it is WAITING. Order never changes. When the active session leaves, the
//! lab it used must be torn down before anyone else may touch it, so the
//! queue enters a *hand-over*: the new head waits at position 0 until the
//! caller has finished the teardown and calls [`Queue::promote`].

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Whether a session may use the lab (`Active`) or is queued behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Waiting,
    Active,
}

/// Where a session stands right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: SessionStatus,
    /// 0 for the active session, 1 for the first one waiting, and so on.
    pub position: usize,
}

impl Standing {
    #[cfg(test)]
    fn at(position: usize) -> Self {
        Self::new(position, false)
    }

    fn new(position: usize, handover_pending: bool) -> Self {
        let status = if position == 0 && !handover_pending {
            SessionStatus::Active
        } else {
            SessionStatus::Waiting
        };
        Standing { status, position }
    }
}

/// How long a session may go unseen before it is evicted.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub active: Duration,
    pub waiting: Duration,
}

/// A session that left the queue, and whether it held the lab when it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departed {
    pub id: Uuid,
    pub was_active: bool,
}

#[derive(Debug)]
struct Entry {
    /// Monotonic ticket: entries are stored in ticket order, which lets
    /// [`Queue::position`] find an entry by binary search.
    ticket: u64,
    id: Uuid,
    last_seen: Instant,
    /// Requests of this session still running (a bring-up can take longer
    /// than the active timeout); a session is never evicted while busy.
    in_flight: u32,
    /// When this session became the head; the active timeout counts from
    /// here at the earliest, so a session that waited quietly is not evicted
    /// the instant it is promoted.
    active_since: Option<Instant>,
}

impl Entry {
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        if self.in_flight > 0 {
            return None;
        }
        Some(match self.active_since {
            Some(since) => self.last_seen.max(since) + timeouts.active,
            None => self.last_seen + timeouts.waiting,
        })
    }
}

/// The session queue. See the module documentation.
#[derive(Debug)]
pub struct Queue {
    entries: VecDeque<Entry>,
    tickets: HashMap<Uuid, u64>,
    next_ticket: u64,
    timeouts: Timeouts,
    /// The active session left and its lab is being torn down: nobody is
    /// active until [`Queue::promote`].
    handover_pending: bool,
}

impl Queue {
    pub fn new(timeouts: Timeouts) -> Self {
        Queue {
            entries: VecDeque::new(),
            tickets: HashMap::new(),
            next_ticket: 0,
            timeouts,
            handover_pending: false,
        }
    }

    /// Number of sessions, active one included.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Adds a session at the tail. Its position is the queue length before
    /// the insert; into an empty queue it becomes ACTIVE at once (unless a
    /// hand-over is still tearing the previous lab down).
    pub fn join(&mut self, id: Uuid, now: Instant) -> Standing {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let position = self.entries.len();
        self.entries.push_back(Entry {
            ticket,
            id,
            last_seen: now,
            in_flight: 0,
            active_since: None,
        });
        self.tickets.insert(id, ticket);
        if position == 0 && !self.handover_pending {
            self.promote(now);
        }
        self.standing_at(position)
    }

    /// Where the session stands, without counting this as a sign of life
    /// (the server always counts a look as one: see [`Queue::touch`]).
    #[cfg(test)]
    fn standing(&self, id: &Uuid) -> Option<Standing> {
        self.index_of(id).map(|index| self.standing_at(index))
    }

    /// Records that the session was seen (any request carrying it) and
    /// returns where it stands. `None` when the session is unknown.
    pub fn touch(&mut self, id: &Uuid, now: Instant) -> Option<Standing> {
        let index = self.index_of(id)?;
        let entry = &mut self.entries[index];
        // Never move backwards: a request that started earlier may finish later.
        entry.last_seen = entry.last_seen.max(now);
        Some(self.standing_at(index))
    }

    /// Like [`Queue::touch`], and the session cannot be evicted until the
    /// matching [`Queue::end_request`]: a long request counts as activity.
    pub fn begin_request(&mut self, id: &Uuid, now: Instant) -> Option<Standing> {
        let standing = self.touch(id, now)?;
        let index = self.index_of(id)?;
        self.entries[index].in_flight += 1;
        Some(standing)
    }

    /// Ends what [`Queue::begin_request`] began; the session was seen now.
    pub fn end_request(&mut self, id: &Uuid, now: Instant) {
        if let Some(index) = self.index_of(id) {
            let entry = &mut self.entries[index];
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last_seen = entry.last_seen.max(now);
        }
    }

    /// The head's id and standing, if any. Looking does not keep it alive.
    pub fn head(&self) -> Option<(Uuid, Standing)> {
        self.entries
            .front()
            .map(|entry| (entry.id, self.standing_at(0)))
    }

    /// Removes a session. When it was the active one, a hand-over begins:
    /// the caller tears its lab down and then calls [`Queue::promote`].
    pub fn leave(&mut self, id: &Uuid) -> Option<Departed> {
        let index = self.index_of(id)?;
        let entry = self.entries.remove(index)?;
        self.tickets.remove(id);
        let was_active = entry.active_since.is_some();
        if was_active {
            self.handover_pending = true;
        }
        Some(Departed {
            id: entry.id,
            was_active,
        })
    }

    /// Ends a hand-over (or starts the very first session): the head, if
    /// any, becomes ACTIVE.
    pub fn promote(&mut self, now: Instant) {
        self.handover_pending = false;
        if let Some(head) = self.entries.front_mut() {
            head.active_since.get_or_insert(now);
        }
    }

    /// The earliest moment at which some session would be evicted.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|entry| entry.deadline(&self.timeouts))
            .min()
    }

    /// Sessions whose deadline has passed at `now`, head first. They are not
    /// removed: the caller tears the lab down for an active one first, then
    /// calls [`Queue::leave`].
    pub fn expired(&self, now: Instant) -> Vec<Uuid> {
        self.entries
            .iter()
            .filter(|entry| entry.deadline(&self.timeouts).is_some_and(|at| at <= now))
            .map(|entry| entry.id)
            .collect()
    }

    fn standing_at(&self, position: usize) -> Standing {
        Standing::new(position, self.handover_pending)
    }

    fn index_of(&self, id: &Uuid) -> Option<usize> {
        let ticket = *self.tickets.get(id)?;
        self.entries
            .binary_search_by_key(&ticket, |entry| entry.ticket)
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: Duration = Duration::from_secs(300);
    const WAITING: Duration = Duration::from_secs(600);

    fn queue() -> Queue {
        Queue::new(Timeouts {
            active: ACTIVE,
            waiting: WAITING,
        })
    }

    #[test]
    fn first_session_is_active_and_later_ones_wait_in_order() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(q.join(a, t0), Standing::at(0));
        assert_eq!(q.join(b, t0).position, 1);
        assert_eq!(q.join(c, t0).status, SessionStatus::Waiting);
        assert_eq!(q.standing(&c), Some(Standing::at(2)));
        assert_eq!(q.head(), Some((a, Standing::at(0))));
    }

    #[test]
    fn leaving_head_hands_over_to_next_after_promote() {
        let mut q = queue();
        let t0 = Instant::now();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            q.join(*id, t0);
        }
        let departed = q.leave(&ids[0]).unwrap();
        assert!(departed.was_active);
        // The lab is being torn down: the next one is at the head but waits.
        let next = q.standing(&ids[1]).unwrap();
        assert_eq!((next.status, next.position), (SessionStatus::Waiting, 0));
        q.promote(t0);
        assert_eq!(q.standing(&ids[1]), Some(Standing::at(0)));
        assert_eq!(q.standing(&ids[2]).unwrap().position, 1);
        assert_eq!(q.leave(&ids[0]), None, "a session leaves only once");
    }

    #[test]
    fn session_joining_during_handover_waits_for_promote() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        q.join(a, t0);
        q.leave(&a);
        let joined = q.join(b, t0);
        assert_eq!(
            (joined.status, joined.position),
            (SessionStatus::Waiting, 0)
        );
        q.promote(t0);
        assert_eq!(q.standing(&b), Some(Standing::at(0)));
    }

    #[test]
    fn leaving_from_the_middle_keeps_head_active() {
        let mut q = queue();
        let t0 = Instant::now();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            q.join(*id, t0);
        }
        assert!(!q.leave(&ids[1]).unwrap().was_active);
        assert_eq!(q.head(), Some((ids[0], Standing::at(0))));
        assert_eq!(q.standing(&ids[2]), Some(Standing::at(1)));
    }

    #[test]
    fn unknown_session_is_reported_as_none() {
        let mut q = queue();
        let ghost = Uuid::new_v4();
        assert_eq!(q.touch(&ghost, Instant::now()), None);
        assert_eq!(q.standing(&ghost), None);
    }

    #[test]
    fn active_session_expires_after_active_timeout_unless_touched() {
        let mut q = queue();
        let t0 = Instant::now();
        let a = Uuid::new_v4();
        q.join(a, t0);
        assert_eq!(q.next_deadline(), Some(t0 + ACTIVE));
        assert!(q.expired(t0 + ACTIVE - Duration::from_millis(1)).is_empty());
        q.touch(&a, t0 + Duration::from_secs(100));
        assert!(q.expired(t0 + ACTIVE).is_empty());
        assert_eq!(q.expired(t0 + Duration::from_secs(400)), vec![a]);
    }

    #[test]
    fn touch_never_moves_last_seen_backwards() {
        let mut q = queue();
        let t0 = Instant::now();
        let a = Uuid::new_v4();
        q.join(a, t0 + Duration::from_secs(50));
        q.touch(&a, t0);
        assert_eq!(
            q.next_deadline(),
            Some(t0 + Duration::from_secs(50) + ACTIVE)
        );
    }

    #[test]
    fn waiting_session_expires_after_waiting_timeout() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        q.join(a, t0);
        q.join(b, t0);
        q.touch(&a, t0 + WAITING);
        assert_eq!(q.expired(t0 + WAITING), vec![b]);
    }

    #[test]
    fn promoted_session_gets_a_full_active_window() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        q.join(a, t0);
        q.join(b, t0);
        let promoted_at = t0 + Duration::from_secs(500);
        q.touch(&a, promoted_at);
        q.leave(&a);
        q.promote(promoted_at);
        // b was last seen at t0, 500 s ago: longer than the active timeout,
        // yet it only now received the lab.
        assert!(q.expired(promoted_at).is_empty());
        assert_eq!(q.next_deadline(), Some(promoted_at + ACTIVE));
    }

    #[test]
    fn head_lookup_does_not_refresh_the_session() {
        let mut q = queue();
        let t0 = Instant::now();
        let a = Uuid::new_v4();
        q.join(a, t0);
        assert!(q.head().is_some());
        assert_eq!(q.standing(&a), Some(Standing::at(0)));
        assert_eq!(q.expired(t0 + ACTIVE), vec![a]);
    }

    #[test]
    fn session_with_a_request_in_flight_is_never_evicted() {
        let mut q = queue();
        let t0 = Instant::now();
        let a = Uuid::new_v4();
        q.join(a, t0);
        q.begin_request(&a, t0);
        assert_eq!(q.next_deadline(), None);
        assert!(q.expired(t0 + ACTIVE * 10).is_empty());
        let finished = t0 + ACTIVE * 10;
        q.end_request(&a, finished);
        assert_eq!(q.next_deadline(), Some(finished + ACTIVE));
    }

    #[test]
    fn positions_stay_correct_through_many_joins_and_leaves() {
        let mut q = queue();
        let t0 = Instant::now();
        let ids: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            q.join(*id, t0);
        }
        for id in ids.iter().step_by(3) {
            q.leave(id);
            q.promote(t0);
        }
        let remaining: Vec<&Uuid> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, id)| id)
            .collect();
        for (position, id) in remaining.iter().enumerate() {
            assert_eq!(q.standing(id), Some(Standing::at(position)));
        }
        assert_eq!(q.count(), remaining.len());
    }
}
