//! The waiting line: who joined when, who was seen when, who holds a slot.
//!
//! A pure state machine: no I/O, no clock (every operation that depends on
//! time takes `now`), no knowledge of labs. Each session's entry also
//! carries its owner's record (`R`: the coordinator's session record), so
//! a session's data lives in one place and leaves the line with it. The [`crate::coordinator`] owns
//! one and decides, from its slots, when a session is promoted.
//!
//! The sessions that hold a slot (ACTIVE) form a prefix of the line and
//! everyone behind them WAITS, in the order they joined. Promotion takes
//! the longest-waiting session, except when the coordinator's batching
//! policy (`--placement batch`) promotes a later one ahead of older ones:
//! then each session it overtakes counts it ([`Queue::promote`]), so the
//! policy can bound how often anyone is overtaken.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::session_id::SessionId;

/// Whether a session holds a lab slot (`Active`) or is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Waiting,
    Active,
}

/// Where a session stands right now, as `GET /session/{id}` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: SessionStatus,
    /// 0 for an ACTIVE session. A WAITING one reports 1 + the number of
    /// waiting sessions ahead of it. With one slot, while a hand-over leaves
    /// nobody ACTIVE, the next session waits at position 0: its index in
    /// the line, exactly as the original reported it.
    pub position: usize,
}

/// How long a session may go unseen before it is evicted, unless it
/// announced a [`Lease`].
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub active: Duration,
    pub waiting: Duration,
    /// A session promoted to ACTIVE that sends no request after its
    /// promotion is evicted this long after it (its client is likely gone);
    /// after a restart, every session must be seen within it.
    pub claim: Duration,
    /// The longest an ACTIVE session may hold its slot, however alive it
    /// is (`--max-hold`); `None`: no limit. It is warned at 80 %.
    pub max_hold: Option<Duration>,
}

/// A client's promise to send a sign of life every `heartbeat` (1 to 300
/// s, `POST /session`'s `heartbeat_seconds`). Its session is evicted after
/// [`Lease::silence_limit`] without one, waiting or active, whatever it is
/// doing: a CI job killed with SIGKILL gives its lab back within seconds
/// instead of the whole active timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    heartbeat: Duration,
}

impl Lease {
    /// The announced interval bounds, in seconds.
    pub const SECONDS: std::ops::RangeInclusive<u64> = 1..=300;

    /// The lease of a client that beats every `seconds`; `None` outside
    /// [`Lease::SECONDS`].
    pub fn every(seconds: u64) -> Option<Lease> {
        Lease::SECONDS.contains(&seconds).then(|| Lease {
            heartbeat: Duration::from_secs(seconds),
        })
    }

    /// The announced interval.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// How long the session may go unseen: three missed beats, and never
    /// less than 10 s (a beat may be late on a loaded machine).
    pub fn silence_limit(&self) -> Duration {
        (self.heartbeat * 3).max(Duration::from_secs(10))
    }
}

/// Which rule a session's deadline comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeadlineKind {
    /// WAITING and not seen within the waiting timeout.
    Waiting,
    /// ACTIVE and not seen within the active timeout.
    Active,
    /// Promoted (or restored after a restart), and not seen since, within
    /// the claim window.
    Claim,
    /// Not seen within its announced lease's silence limit.
    Lease,
    /// ACTIVE for 80 % of `--max-hold`: warned, not evicted.
    HoldWarning,
    /// ACTIVE for `--max-hold`: its time is up, alive or not.
    MaxHold,
}

#[derive(Debug)]
struct Entry<R> {
    /// Monotonic ticket: entries are stored in ticket order, which lets a
    /// lookup by id find the entry by binary search.
    ticket: u64,
    id: SessionId,
    joined: Instant,
    last_seen: Instant,
    /// Requests of this session still running (a bring-up can take longer
    /// than the active timeout); without a lease a session is never
    /// evicted while busy.
    in_flight: u32,
    /// When it was promoted, while it holds a slot.
    promoted: Option<Instant>,
    /// Set at a promotion outside its own request, and at a restart: the
    /// session must be seen within the claim window from then. A request
    /// clears it.
    unclaimed_since: Option<Instant>,
    lease: Option<Lease>,
    /// It was warned that its maximum hold is near.
    hold_warned: bool,
    /// How many later sessions were promoted ahead of it.
    overtaken: u32,
    record: R,
}

impl<R> Entry<R> {
    fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, DeadlineKind)> {
        // Without a lease a running request pins the session (it counts as
        // alive until it ends), claim window included.
        let pinned = self.lease.is_none() && self.in_flight > 0;
        let claim = self
            .unclaimed_since
            .filter(|_| !pinned)
            .map(|since| (since + timeouts.claim, DeadlineKind::Claim));
        // The maximum hold counts from the promotion whatever the session
        // does: it is what keeps one busy suite from holding a host forever.
        let hold = self.promoted.zip(timeouts.max_hold).map(|(at, limit)| {
            if self.hold_warned {
                (at + limit, DeadlineKind::MaxHold)
            } else {
                (at + limit.mul_f64(0.8), DeadlineKind::HoldWarning)
            }
        });
        // A lease holds even while a request runs: its client beats
        // throughout, so a silent one died mid-request.
        let silence = match (self.lease, self.promoted) {
            (Some(lease), _) => Some((self.last_seen + lease.silence_limit(), DeadlineKind::Lease)),
            (None, _) if pinned => None,
            (None, None) => Some((self.last_seen + timeouts.waiting, DeadlineKind::Waiting)),
            // The active window counts from the promotion at the earliest: a
            // session that waited quietly is not evicted the instant it is promoted.
            (None, Some(at)) => Some((
                self.last_seen.max(at) + timeouts.active,
                DeadlineKind::Active,
            )),
        };
        [claim, silence, hold].into_iter().flatten().min()
    }
}

/// A session as a previous run stored it (see [`Queue::restore`]).
#[derive(Debug, Clone, Copy)]
pub struct RestoredEntry {
    pub joined: Instant,
    /// When it was promoted, if it holds a slot it keeps.
    pub promoted: Option<Instant>,
    pub lease: Option<Lease>,
    /// How many later sessions were promoted ahead of it.
    pub overtaken: u32,
}

/// What a session looked like when it left the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed<R> {
    pub id: SessionId,
    /// It held a slot when it left.
    pub was_active: bool,
    /// When it joined and, if it was promoted, when.
    pub joined: Instant,
    pub promoted: Option<Instant>,
    /// Its record, which left the line with it.
    pub record: R,
}

/// One session as a listing shows it (see [`Queue::list`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Listed<'a, R> {
    pub id: SessionId,
    pub standing: Standing,
    pub joined: Instant,
    /// When it was promoted, while it holds a slot.
    pub promoted: Option<Instant>,
    /// Its last sign of life.
    pub last_seen: Instant,
    pub lease: Option<Lease>,
    /// When it is evicted unless seen, and by which rule; `None` while a
    /// request of a session without a lease runs.
    pub deadline: Option<(Instant, DeadlineKind)>,
    pub record: &'a R,
}

/// The waiting line. See the module documentation.
#[derive(Debug)]
pub struct Queue<R = ()> {
    entries: VecDeque<Entry<R>>,
    tickets: HashMap<SessionId, u64>,
    next_ticket: u64,
    /// How many entries (a prefix) hold a slot.
    active: usize,
    /// More than one slot: positions follow the slots' rule, not the
    /// original's single-lab index (see [`Standing::position`]).
    several_slots: bool,
    timeouts: Timeouts,
}

impl<R> Queue<R> {
    /// The number of slots changed (a lab agent registered).
    pub fn set_slots(&mut self, slots: usize) {
        self.several_slots = slots > 1;
    }

    /// A line for `slots` lab slots.
    pub fn new(timeouts: Timeouts, slots: usize) -> Self {
        Queue {
            entries: VecDeque::new(),
            tickets: HashMap::new(),
            next_ticket: 0,
            active: 0,
            several_slots: slots > 1,
            timeouts,
        }
    }

    /// Number of sessions, ACTIVE ones included.
    pub fn count(&self) -> usize {
        self.entries.len()
    }

    /// Number of ACTIVE sessions.
    pub fn active_count(&self) -> usize {
        self.active
    }

    /// Adds a WAITING session at the tail, with its client's lease if it
    /// announced one, and its record.
    pub fn join(&mut self, id: SessionId, now: Instant, lease: Option<Lease>, record: R) {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.entries.push_back(Entry {
            ticket,
            id,
            joined: now,
            last_seen: now,
            in_flight: 0,
            promoted: None,
            unclaimed_since: None,
            lease,
            hold_warned: false,
            overtaken: 0,
            record,
        });
        self.tickets.insert(id, ticket);
    }

    /// Adds a session a previous run stored at the tail: it joined at
    /// `joined`, was overtaken `overtaken` times, and is promoted (at
    /// `promoted`) when it held a slot it keeps. Its client must show a
    /// sign of life within the claim window from `now`: a live one polls
    /// within seconds, a dead one must not keep its place (or its slot) for
    /// a whole timeout.
    pub fn restore(&mut self, id: SessionId, stored: RestoredEntry, record: R, now: Instant) {
        self.join(id, now, stored.lease, record);
        let mut entry = self.entries.pop_back().expect("just joined");
        entry.joined = stored.joined;
        entry.unclaimed_since = Some(now);
        entry.overtaken = stored.overtaken;
        entry.promoted = stored.promoted;
        // A holder that overtook others joined after them: it goes to the
        // front with the other holders, whatever its place in the store.
        let index = if entry.promoted.is_some() {
            self.active += 1;
            self.active - 1
        } else {
            self.entries.len()
        };
        self.entries.insert(index, entry);
    }

    /// The WAITING sessions, longest-waiting first, each with how many
    /// times it was overtaken.
    pub fn waiting(&self) -> impl Iterator<Item = (SessionId, u32)> + '_ {
        self.entries
            .range(self.active..)
            .map(|entry| (entry.id, entry.overtaken))
    }

    /// Makes the longest-waiting session ACTIVE and returns it, as
    /// [`Queue::promote`] does (the coordinator picks whom through its
    /// placement policy; the line's own tests promote in order).
    #[cfg(test)]
    fn promote_next(&mut self, now: Instant, claimed: bool) -> Option<SessionId> {
        let head = self.first_waiting()?;
        self.promote(&head, now, claimed).map(|_| head)
    }

    /// The longest-waiting session.
    #[cfg(test)]
    fn first_waiting(&self) -> Option<SessionId> {
        self.waiting().next().map(|(id, _)| id)
    }

    /// Makes the WAITING session `id` ACTIVE, ahead of every session that
    /// waited longer: each of those is overtaken once more. Returns them
    /// with their new counts, longest-waiting first (empty when `id` was
    /// the longest-waiting); `None` when `id` does not wait. `claimed` says
    /// whether the promotion happens inside one of its own requests
    /// (joining an empty line), which proves its client alive.
    pub fn promote(
        &mut self,
        id: &SessionId,
        now: Instant,
        claimed: bool,
    ) -> Option<Vec<(SessionId, u32)>> {
        let index = self.index_of(id).filter(|index| *index >= self.active)?;
        let overtaken = (self.entries.range_mut(self.active..index))
            .map(|entry| {
                entry.overtaken += 1;
                (entry.id, entry.overtaken)
            })
            .collect();
        let mut entry = self.entries.remove(index)?;
        entry.promoted = Some(now);
        if !claimed {
            entry.unclaimed_since = Some(now);
        }
        self.entries.insert(self.active, entry);
        self.active += 1;
        Some(overtaken)
    }

    /// Where the session stands. Looking is not a sign of life.
    pub fn standing(&self, id: &SessionId) -> Option<Standing> {
        self.index_of(id).map(|index| self.standing_at(index))
    }

    /// A request of this session arrived: it is alive, and if it holds a
    /// slot it has claimed it. `None` when the session is unknown.
    pub fn touch(&mut self, id: &SessionId, now: Instant) -> Option<Standing> {
        let index = self.index_of(id)?;
        let entry = &mut self.entries[index];
        // Never move backwards: a request that started earlier may finish later.
        entry.last_seen = entry.last_seen.max(now);
        entry.unclaimed_since = None;
        Some(self.standing_at(index))
    }

    /// Like [`Queue::touch`], and the session cannot be evicted until the
    /// matching [`Queue::end_request`]: a long request counts as activity.
    pub fn begin_request(&mut self, id: &SessionId, now: Instant) -> Option<Standing> {
        let standing = self.touch(id, now)?;
        let index = self.index_of(id)?;
        self.entries[index].in_flight += 1;
        Some(standing)
    }

    /// Ends what [`Queue::begin_request`] began; the session was seen now.
    /// It does not claim a slot: a long-poll that started before the
    /// promotion says nothing about whether its client still listens.
    pub fn end_request(&mut self, id: &SessionId, now: Instant) {
        if let Some(index) = self.index_of(id) {
            let entry = &mut self.entries[index];
            entry.in_flight = entry.in_flight.saturating_sub(1);
            entry.last_seen = entry.last_seen.max(now);
        }
    }

    /// The session's eviction deadline and the rule it comes from; `None`
    /// while a request of it runs (or when it is unknown).
    pub fn deadline(&self, id: &SessionId) -> Option<(Instant, DeadlineKind)> {
        let index = self.index_of(id)?;
        self.entries[index].deadline(&self.timeouts)
    }

    /// The first session in the line and where it stands.
    pub fn head(&self) -> Option<(SessionId, Standing)> {
        self.entries
            .front()
            .map(|entry| (entry.id, self.standing_at(0)))
    }

    /// Notes that the session was warned that its maximum hold is near:
    /// its next deadline is the hold's end.
    pub fn warned_of_hold(&mut self, id: &SessionId) {
        if let Some(index) = self.index_of(id) {
            self.entries[index].hold_warned = true;
        }
    }

    /// When the session joined the line.
    pub fn joined(&self, id: &SessionId) -> Option<Instant> {
        self.index_of(id).map(|index| self.entries[index].joined)
    }

    /// The session's lease, if its client announced one.
    pub fn lease(&self, id: &SessionId) -> Option<Lease> {
        self.index_of(id)
            .and_then(|index| self.entries[index].lease)
    }

    /// The session's record; `None` when it is not in the line.
    pub fn record(&self, id: &SessionId) -> Option<&R> {
        self.index_of(id).map(|index| &self.entries[index].record)
    }

    /// The session's record, to change; `None` when it is not in the line.
    pub fn record_mut(&mut self, id: &SessionId) -> Option<&mut R> {
        let index = self.index_of(id)?;
        Some(&mut self.entries[index].record)
    }

    /// Every session in line order. Looking is not a sign of life.
    pub fn list(&self) -> impl Iterator<Item = Listed<'_, R>> + '_ {
        self.entries
            .iter()
            .enumerate()
            .map(|(index, entry)| Listed {
                id: entry.id,
                standing: self.standing_at(index),
                joined: entry.joined,
                promoted: entry.promoted,
                last_seen: entry.last_seen,
                lease: entry.lease,
                deadline: entry.deadline(&self.timeouts),
                record: &entry.record,
            })
    }

    /// Removes a session. Whoever owns the slots frees the one it held.
    pub fn leave(&mut self, id: &SessionId) -> Option<Departed<R>> {
        let index = self.index_of(id)?;
        let entry = self.entries.remove(index)?;
        self.tickets.remove(id);
        if entry.promoted.is_some() {
            self.active -= 1;
        }
        Some(Departed {
            id: entry.id,
            was_active: entry.promoted.is_some(),
            joined: entry.joined,
            promoted: entry.promoted,
            record: entry.record,
        })
    }

    fn standing_at(&self, index: usize) -> Standing {
        if index < self.active {
            return Standing {
                status: SessionStatus::Active,
                position: 0,
            };
        }
        let waiting_ahead = index - self.active;
        Standing {
            status: SessionStatus::Waiting,
            position: waiting_ahead + usize::from(self.active > 0 || self.several_slots),
        }
    }

    fn index_of(&self, id: &SessionId) -> Option<usize> {
        let ticket = *self.tickets.get(id)?;
        // Holders come first in any ticket order (a batch promotion moves a
        // later one ahead); the WAITING rest is in ticket order, so every
        // holder and every smaller ticket sort before this one.
        let index = (self.entries)
            .partition_point(|entry| entry.promoted.is_some() || entry.ticket < ticket);
        if self
            .entries
            .get(index)
            .is_some_and(|entry| entry.ticket == ticket)
        {
            return Some(index);
        }
        (self.entries.range(..self.active)).position(|entry| entry.ticket == ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: Duration = Duration::from_secs(300);
    const WAITING: Duration = Duration::from_secs(600);
    const CLAIM: Duration = Duration::from_secs(30);

    const TIMEOUTS: Timeouts = Timeouts {
        active: ACTIVE,
        waiting: WAITING,
        claim: CLAIM,
        max_hold: None,
    };

    fn queue() -> Queue {
        Queue::new(TIMEOUTS, 1)
    }

    fn at(status: SessionStatus, position: usize) -> Option<Standing> {
        Some(Standing { status, position })
    }

    fn ids(n: usize) -> Vec<SessionId> {
        (0..n).map(|_| SessionId::new()).collect()
    }

    #[test]
    fn one_slot_positions_are_indexes_in_the_line() {
        let mut q = queue();
        let t0 = Instant::now();
        let s = ids(3);
        s.iter().for_each(|id| q.join(*id, t0, None, ()));
        assert_eq!(q.standing(&s[0]), at(SessionStatus::Waiting, 0));
        q.promote_next(t0, true);
        assert_eq!(q.standing(&s[0]), at(SessionStatus::Active, 0));
        assert_eq!(q.standing(&s[2]), at(SessionStatus::Waiting, 2));
        // The holder leaves: until the next is promoted it waits at 0.
        assert!(q.leave(&s[0]).unwrap().was_active);
        assert_eq!(q.standing(&s[1]), at(SessionStatus::Waiting, 0));
        assert_eq!(q.promote_next(t0, false), Some(s[1]));
        assert_eq!(q.standing(&s[2]), at(SessionStatus::Waiting, 1));
        assert_eq!(q.leave(&s[0]), None, "a session leaves only once");
    }

    #[test]
    fn with_several_active_a_waiting_session_counts_only_waiting_ones_ahead() {
        let mut q = Queue::new(TIMEOUTS, 2);
        let t0 = Instant::now();
        let s = ids(4);
        s.iter().for_each(|id| q.join(*id, t0, None, ()));
        q.promote_next(t0, true);
        q.promote_next(t0, true);
        assert_eq!(q.active_count(), 2);
        assert_eq!(q.standing(&s[1]), at(SessionStatus::Active, 0));
        assert_eq!(q.standing(&s[2]), at(SessionStatus::Waiting, 1));
        assert_eq!(q.standing(&s[3]), at(SessionStatus::Waiting, 2));
        // The first holder leaves; the longest-waiting one is next.
        q.leave(&s[0]);
        assert_eq!(q.standing(&s[2]), at(SessionStatus::Waiting, 1));
        assert_eq!(q.first_waiting(), Some(s[2]));
        assert_eq!(q.promote_next(t0, false), Some(s[2]));
        assert_eq!(q.standing(&s[3]), at(SessionStatus::Waiting, 1));
    }

    #[test]
    fn active_and_waiting_timeouts_count_from_the_last_sign_of_life() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b) = (SessionId::new(), SessionId::new());
        q.join(a, t0, None, ());
        q.promote_next(t0, true);
        q.join(b, t0, None, ());
        assert_eq!(q.deadline(&a), Some((t0 + ACTIVE, DeadlineKind::Active)));
        assert_eq!(q.deadline(&b), Some((t0 + WAITING, DeadlineKind::Waiting)));
        q.touch(&a, t0 + Duration::from_secs(100));
        assert_eq!(
            q.deadline(&a),
            Some((t0 + Duration::from_secs(100) + ACTIVE, DeadlineKind::Active))
        );
        // Never backwards: a late-finishing earlier request does not undo it.
        q.touch(&a, t0);
        assert_eq!(
            q.deadline(&a).unwrap().0,
            t0 + Duration::from_secs(100) + ACTIVE
        );
    }

    #[test]
    fn a_promoted_session_that_is_not_seen_again_has_only_the_claim_window() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b) = (SessionId::new(), SessionId::new());
        q.join(a, t0, None, ());
        q.promote_next(t0, true);
        q.join(b, t0, None, ());
        q.leave(&a);
        let promoted = t0 + Duration::from_secs(500);
        q.promote_next(promoted, false);
        // b was last seen 500 s ago, yet only now received the slot.
        assert_eq!(
            q.deadline(&b),
            Some((promoted + CLAIM, DeadlineKind::Claim))
        );
        // A request after the promotion claims it: the active rule applies.
        q.touch(&b, promoted + Duration::from_secs(1));
        assert_eq!(
            q.deadline(&b),
            Some((
                promoted + Duration::from_secs(1) + ACTIVE,
                DeadlineKind::Active
            ))
        );
    }

    #[test]
    fn a_request_that_began_before_the_promotion_does_not_claim_it() {
        let mut q = queue();
        let t0 = Instant::now();
        let a = SessionId::new();
        q.join(a, t0, None, ());
        q.begin_request(&a, t0);
        q.promote_next(t0, false);
        assert_eq!(q.deadline(&a), None, "pinned while its request runs");
        q.end_request(&a, t0 + Duration::from_secs(1));
        assert_eq!(q.deadline(&a), Some((t0 + CLAIM, DeadlineKind::Claim)));
    }

    #[test]
    fn a_claim_window_longer_than_the_active_timeout_changes_nothing() {
        let mut q = Queue::new(
            Timeouts {
                active: Duration::from_secs(10),
                waiting: WAITING,
                claim: Duration::from_secs(60),
                max_hold: None,
            },
            1,
        );
        let t0 = Instant::now();
        let a = SessionId::new();
        q.join(a, t0, None, ());
        q.promote_next(t0, false);
        assert_eq!(
            q.deadline(&a),
            Some((t0 + Duration::from_secs(10), DeadlineKind::Active))
        );
    }

    #[test]
    fn positions_stay_correct_through_many_joins_and_leaves() {
        let mut q = queue();
        let t0 = Instant::now();
        let s = ids(50);
        s.iter().for_each(|id| q.join(*id, t0, None, ()));
        q.promote_next(t0, true);
        for id in s.iter().step_by(3) {
            if q.leave(id).is_some_and(|gone| gone.was_active) {
                q.promote_next(t0, false);
            }
        }
        let remaining: Vec<&SessionId> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, id)| id)
            .collect();
        for (index, id) in remaining.iter().enumerate() {
            let expected = if index == 0 {
                at(SessionStatus::Active, 0)
            } else {
                at(SessionStatus::Waiting, index)
            };
            assert_eq!(q.standing(id), expected);
        }
        assert_eq!(q.count(), remaining.len());
    }

    #[test]
    fn a_lease_replaces_both_timeouts_and_holds_while_a_request_runs() {
        let mut q = queue();
        let t0 = Instant::now();
        let (a, b) = (SessionId::new(), SessionId::new());
        let lease = Lease::every(5).unwrap();
        assert_eq!(lease.silence_limit(), Duration::from_secs(15));
        assert_eq!(
            Lease::every(2).unwrap().silence_limit(),
            Duration::from_secs(10)
        );
        assert_eq!((Lease::every(0), Lease::every(301)), (None, None));
        q.join(a, t0, Some(lease), ());
        q.join(b, t0, Some(lease), ());
        q.promote_next(t0, true);
        let limit = t0 + Duration::from_secs(15);
        assert_eq!(q.deadline(&a), Some((limit, DeadlineKind::Lease)));
        assert_eq!(q.deadline(&b), Some((limit, DeadlineKind::Lease)));
        // A bring-up in flight does not pin a leased session: its client
        // beats meanwhile, and one that stopped beating is gone.
        q.begin_request(&a, t0);
        assert_eq!(q.deadline(&a), Some((limit, DeadlineKind::Lease)));
        q.touch(&a, t0 + Duration::from_secs(5));
        assert_eq!(
            q.deadline(&a),
            Some((limit + Duration::from_secs(5), DeadlineKind::Lease))
        );
    }

    #[test]
    fn a_restored_session_must_be_seen_within_the_claim_window() {
        let mut q = queue();
        let t0 = Instant::now();
        let (holder, waiter) = (SessionId::new(), SessionId::new());
        let restart = t0 + Duration::from_secs(1000);
        let stored = |promoted, lease| RestoredEntry {
            joined: t0,
            promoted,
            lease,
            overtaken: 0,
        };
        q.restore(
            waiter,
            stored(None, Some(Lease::every(60).unwrap())),
            (),
            restart,
        );
        // Stored behind a waiting session (it overtook it): still a holder.
        q.restore(holder, stored(Some(t0), None), (), restart);
        assert_eq!(q.standing(&holder), at(SessionStatus::Active, 0));
        assert_eq!(q.standing(&waiter), at(SessionStatus::Waiting, 1));
        let claim = (restart + CLAIM, DeadlineKind::Claim);
        assert_eq!(q.deadline(&holder), Some(claim));
        assert_eq!(q.deadline(&waiter), Some(claim));
        // A sign of life lifts it: the usual rules apply again.
        q.touch(&holder, restart + Duration::from_secs(2));
        assert_eq!(
            q.deadline(&holder),
            Some((
                restart + Duration::from_secs(2) + ACTIVE,
                DeadlineKind::Active
            ))
        );
        q.touch(&waiter, restart);
        assert_eq!(
            q.deadline(&waiter),
            Some((restart + Duration::from_secs(180), DeadlineKind::Lease))
        );
    }

    #[test]
    fn a_session_promoted_ahead_counts_as_overtaking_everyone_it_passed() {
        let mut q = Queue::new(TIMEOUTS, 2);
        let t0 = Instant::now();
        let s = ids(5);
        s.iter().for_each(|id| q.join(*id, t0, None, ()));
        assert_eq!(
            q.promote(&s[2], t0, false),
            Some(vec![(s[0], 1), (s[1], 1)])
        );
        assert_eq!(q.promote(&s[2], t0, false), None, "it no longer waits");
        assert_eq!(
            q.promote(&s[4], t0, false),
            Some(vec![(s[0], 2), (s[1], 2), (s[3], 1)])
        );
        // Holders first, then the waiting ones in the order they joined.
        assert_eq!(q.standing(&s[2]), at(SessionStatus::Active, 0));
        assert_eq!(q.standing(&s[4]), at(SessionStatus::Active, 0));
        assert_eq!(q.standing(&s[0]), at(SessionStatus::Waiting, 1));
        assert_eq!(q.standing(&s[3]), at(SessionStatus::Waiting, 3));
        let waiting: Vec<_> = q.waiting().collect();
        assert_eq!(waiting, vec![(s[0], 2), (s[1], 2), (s[3], 1)]);
        assert!(q.leave(&s[2]).unwrap().was_active);
        assert_eq!(q.promote_next(t0, false), Some(s[0]));
        assert_eq!(q.standing(&s[1]), at(SessionStatus::Waiting, 1));
        assert_eq!(q.active_count(), 2);
        assert!(s.iter().all(|id| q.touch(id, t0).is_some() || *id == s[2]));
    }
}
