//! The coordinator: the one owner of "who may act" and "what must happen".
//!
//! It owns the waiting line ([`Queue`]), the lab slots (each: its holder,
//! its lab [`Phase`], and a `CancellationToken` for the holder's work) and
//! one set of deadlines. HTTP handlers call only the coordinator. Every rule
//! is checked and every change made under one `std::sync::Mutex`, never held
//! across an `.await`; lab work runs in tasks tracked by a `TaskTracker`, so
//! a client that hangs up never leaves a bring-up or a hand-back half done.
//! Each change is published as a typed [`crate::domain::events::Event`]; the most recent
//! ones are kept, so a reader can resume after the last one it saw
//! ([`Coordinator::resume_events`]). Watchers read [`Coordinator::overview`],
//! which, like the events, is no sign of life for any session.
//!
//! Life of a session: it joins the line; when a slot is free and nobody
//! waits longer, it is promoted and holds that slot; it acquires, releases
//! or destroys labs in its slot; when it ends (closed, evicted, or its claim
//! expired) its in-flight lab work is cancelled at once, its slot's lab is
//! torn down (or, with `--keep-idle-lab`, kept up for the next session that
//! asks for the same lab, until it expires), and the slot goes to the
//! longest-waiting session.

mod deadlines;
pub mod declare;
pub mod events;
pub mod idempotency;
mod overview;
pub mod placement;

mod restore;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Caller;
use crate::domain::events::{EndReason, Event, EventKind};
use crate::domain::{ClientInfo, Phase};
use crate::lab::bring_up_log::LogReader;
use crate::lab::declared::DeclaredLabs;
use crate::lab::inventory::Inventory;
use crate::lab::ssh_config::Jump;
use crate::lab::upload::{Identity, Upload};
use crate::lab::{Holder, LabChange, LabError, LabObserver, LabSlot, LabView};
use crate::queue::{DeadlineKind, Lease, Queue, SessionStatus, Standing, Timeouts};
use crate::session_id::SessionId;
use crate::store::{Store, StoreError};
use deadlines::Deadlines;
use events::{EventBus, Resume};
use idempotency::{Keys, LabKey, LabOutcome, SessionKey};
pub use overview::{Overview, SessionView, SlotView};
use placement::{FreeSlot, Policy, Waiting};
pub use restore::{Restored, labs_to_readopt};

/// Why a session may not use the lab routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateError {
    /// No such session (HTTP 404).
    UnknownSession,
    /// The session waits; it holds no slot (HTTP 423).
    NotActive,
    /// The session belongs to another token (HTTP 403).
    NotOwner,
    /// The session ended a moment ago, for this reason (HTTP 404, saying
    /// why).
    Ended(EndReason),
    /// The session ended in memory, but its end could not be saved yet
    /// (a full disk): a crash would bring it back (HTTP 503).
    EndNotSaved,
}

#[derive(Debug)]
struct SlotState {
    holder: Option<SessionId>,
    /// Cancelled, under the lock, the moment the holder is gone.
    holder_token: CancellationToken,
    /// Taken by each lab request that uploads, from before its body is
    /// read until its lab is up: a holder's uploads come one at a time, so
    /// a holder that sends many at once holds one in memory, not all.
    uploading: Arc<tokio::sync::Mutex<()>>,
    phase: Phase,
    /// The previous holder's lab is being torn down: not free yet.
    handing_back: bool,
    /// The identity of the lab it runs or keeps, as its changes reported.
    lab: Option<String>,
    /// Since when its lab has been kept idle for a next session.
    kept_since: Option<Instant>,
    /// The holder's first declared lab, being brought up for it before it
    /// asked (see [`Coordinator::run_preboots`]).
    preboot: Option<Preboot>,
    /// False while its lab host (a lab agent) is offline: it gets no new
    /// holder.
    online: bool,
    /// The lab host of a lab agent's slot; `None`: this host's.
    host: Option<Arc<str>>,
}

impl SlotState {
    fn new() -> Self {
        SlotState {
            holder: None,
            holder_token: CancellationToken::new(),
            uploading: Arc::default(),
            phase: Phase::Idle,
            handing_back: false,
            lab: None,
            kept_since: None,
            preboot: None,
            online: true,
            host: None,
        }
    }

    fn is_free(&self) -> bool {
        self.holder.is_none() && !self.handing_back && self.online
    }
}

/// A pre-boot: the lab a promoted session declared first, started in its
/// slot at its promotion. Its first `POST /lab` of that lab takes the
/// outcome instead of running netlab itself.
#[derive(Debug)]
struct Preboot {
    session: SessionId,
    identity: Identity,
    /// `Some` once the bring-up finished.
    outcome: watch::Receiver<Option<Result<(), Arc<LabError>>>>,
    /// Stops the bring-up (a child of the holder's token).
    cancel: CancellationToken,
}

/// Where a pre-boot reports its outcome.
type PrebootReport = watch::Sender<Option<Result<(), Arc<LabError>>>>;

/// A pre-boot to start: its session, slot index, where to report and what
/// stops it.
type PrebootWork = (SessionId, usize, PrebootReport, CancellationToken);

/// What the coordinator knows of a session besides its place in the line;
/// the [`Queue`] keeps it in the session's entry, so it leaves with it.
#[derive(Debug)]
struct SessionRecord {
    /// What its client said about itself, if anything.
    client: Option<Arc<ClientInfo>>,
    /// With auth on: the token it was created with.
    owner: Option<Caller>,
    /// The id of the last event that changed its standing (its joining,
    /// its promotion): what a reply about it waits to be written.
    stamp: u64,
    /// The labs it declared it will ask for, in order.
    declared: Vec<Identity>,
    /// Taken while one of its declarations is written: they are numbered
    /// in the order they are stored.
    declaring: Arc<tokio::sync::Mutex<()>>,
}

impl SessionRecord {
    /// A record with no event yet (stamp 0).
    fn new(client: Option<Arc<ClientInfo>>, owner: Option<Caller>) -> Self {
        SessionRecord {
            client,
            owner,
            stamp: 0,
            declared: Vec::new(),
            declaring: Arc::default(),
        }
    }
}

/// How many ended sessions are remembered, so that their clients' next
/// request learns why (a session's end is also an event, kept longer).
const ENDINGS_KEPT: usize = 4096;

/// Why recently ended sessions ended, and whose they were; the oldest
/// are forgotten first.
#[derive(Debug, Default)]
struct Endings {
    /// Per session: why it ended, whose it was, and the id of the event
    /// that ended it (until that is saved, its end is not reported).
    reasons: HashMap<SessionId, (EndReason, Option<Caller>, u64)>,
    order: std::collections::VecDeque<SessionId>,
}

impl Endings {
    fn remember(&mut self, id: SessionId, reason: EndReason, owner: Option<Caller>, stamp: u64) {
        if self.order.len() == ENDINGS_KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.reasons.remove(&oldest);
        }
        self.order.push_back(id);
        self.reasons.insert(id, (reason, owner, stamp));
    }
}

/// A session to open (see [`Coordinator::create`]).
#[derive(Debug, Default)]
pub struct NewSession {
    /// The `Idempotency-Key` of its `POST /session`.
    pub key: Option<String>,
    /// What the client said about itself.
    pub client: Option<ClientInfo>,
    /// The token that asks (auth on).
    pub owner: Option<Caller>,
    /// The heartbeat interval the client announced.
    pub lease: Option<Lease>,
}

impl NewSession {
    /// What makes a keyed repeat "the same request": everything its body
    /// said.
    fn fingerprint(&self) -> String {
        idempotency::session_fingerprint(self.client.as_ref(), self.lease)
    }
}

/// Why a session was not opened.
#[derive(Debug)]
pub enum CreateError {
    /// The `Idempotency-Key` opened a session with another body (HTTP 422).
    KeyReused,
    /// The session could not be stored; it was taken out again (HTTP 503).
    NotSaved(StoreError),
}

/// Everything behind the one lock.
#[derive(Debug)]
struct State {
    line: Queue<SessionRecord>,
    slots: Vec<SlotState>,
    deadlines: Deadlines<DeadlineKind, SessionId>,
    events: EventBus,
    keys: Keys,
    endings: Endings,
    /// Where the sessions' declared labs are kept.
    declared: DeclaredLabs,
    /// Pre-boots decided, not started yet.
    preboots: Vec<PrebootWork>,
    /// Who gets a free slot (`--placement`).
    policy: Policy,
}

impl State {
    /// The id of the last event that changed the session's standing (0 for
    /// none this run, or an unknown session).
    fn stamp(&self, id: &SessionId) -> u64 {
        self.line.record(id).map_or(0, |record| record.stamp)
    }

    /// Puts the session's deadline where the line's rules say it is now.
    fn refresh(&mut self, id: SessionId) {
        let deadline = self.line.deadline(&id);
        self.deadlines.set(id, deadline);
    }

    /// Gives every free slot to a waiting session, as the placement policy
    /// picks them (the longest-waiting first under `fifo`). `joining` is
    /// promoted inside its own request, which claims the slot.
    fn fill_free_slots(
        &mut self,
        now: Instant,
        shutdown: &CancellationToken,
        joining: Option<SessionId>,
    ) {
        while let Some((id, index, wanted)) = self.next_promotion() {
            let claimed = Some(id) == joining;
            let Some(overtaken) = self.line.promote(&id, now, claimed) else {
                return;
            };
            for (session, times) in overtaken {
                self.events.publish(EventKind::SessionBypassed {
                    session,
                    by: id,
                    overtaken: times,
                });
            }
            let slot = &mut self.slots[index];
            slot.holder = Some(id);
            slot.holder_token = shutdown.child_token();
            self.preboot_if_needed(id, index, wanted);
            let waited = self.line.joined(&id).map_or(Duration::ZERO, |joined| {
                now.saturating_duration_since(joined)
            });
            tracing::info!(session = %id, slot = index + 1, "session promoted to active");
            let host = self.slots[index].host.clone();
            let stamp = self.events.publish(EventKind::SessionPromoted {
                session: id,
                slot: index + 1,
                host,
                waited,
            });
            if let Some(record) = self.line.record_mut(&id) {
                record.stamp = stamp;
            }
            self.refresh(id);
        }
    }

    /// Who the placement policy promotes next, into which slot, and the
    /// lab it declared first; `None` when nobody waits or no slot is free.
    fn next_promotion(&self) -> Option<(SessionId, usize, Option<String>)> {
        let free: Vec<FreeSlot<'_>> = (self.slots.iter().enumerate())
            .filter(|(_, slot)| slot.is_free())
            .map(|(index, slot)| FreeSlot {
                index,
                lab: slot.lab.as_deref(),
                kept_since: slot.kept_since,
            })
            .collect();
        if free.is_empty() {
            return None;
        }
        // Under fifo only the head counts: the line is not walked.
        let looked_at = match self.policy {
            Policy::Fifo => 1,
            Policy::Batch { .. } => usize::MAX,
        };
        let waiting: Vec<(SessionId, u32)> = self.line.waiting().take(looked_at).collect();
        let wanted: Vec<Option<String>> = (waiting.iter())
            .map(|(id, _)| {
                let record = self.line.record(id);
                record.and_then(|record| record.declared.first().map(Identity::to_string))
            })
            .collect();
        let view: Vec<Waiting<'_>> = (waiting.iter().zip(&wanted))
            .map(|((_, overtaken), wanted)| Waiting {
                wanted: wanted.as_deref(),
                overtaken: *overtaken,
            })
            .collect();
        let chosen = placement::next_promotion(self.policy, &view, &free)?;
        let (id, _) = waiting[chosen.waiting];
        Some((id, chosen.slot, wanted[chosen.waiting].clone()))
    }

    /// Moves the session from its slot to a free one that runs or keeps
    /// `wanted`, when its own slot does not and it has done nothing there
    /// yet (no lab request, no pre-boot); its old slot goes to the next in
    /// line.
    fn move_to_warm_slot(&mut self, id: SessionId, wanted: &str, shutdown: &CancellationToken) {
        let Some(from) = self.slots.iter().position(|slot| slot.holder == Some(id)) else {
            return;
        };
        let untouched = matches!(
            self.slots[from].phase,
            Phase::Idle | Phase::Kept | Phase::Failed
        ) && self.slots[from].preboot.is_none();
        if !untouched || self.slots[from].lab.as_deref() == Some(wanted) {
            return;
        }
        let warm = (self.slots.iter())
            .position(|slot| slot.is_free() && slot.lab.as_deref() == Some(wanted));
        let Some(to) = warm else { return };
        let old = &mut self.slots[from];
        old.holder = None;
        old.holder_token.cancel();
        let new = &mut self.slots[to];
        new.holder = Some(id);
        new.holder_token = shutdown.child_token();
        tracing::info!(session = %id, from = from + 1, to = to + 1, "session moved to the slot that keeps its lab");
        let stamp = self.events.publish(EventKind::SessionMoved {
            session: id,
            from: from + 1,
            to: to + 1,
        });
        if let Some(record) = self.line.record_mut(&id) {
            record.stamp = stamp;
        }
        self.fill_free_slots(Instant::now(), shutdown, None);
    }

    /// Decides the pre-boot of the session just promoted into slot
    /// `index`, when it declared a lab (`wanted`) the slot does not run.
    fn preboot_if_needed(&mut self, id: SessionId, index: usize, wanted: Option<String>) {
        let slot = &mut self.slots[index];
        slot.preboot = None;
        let Some(wanted) = wanted else { return };
        if slot.lab.as_deref() == Some(wanted.as_str()) {
            return;
        }
        let (report, outcome) = watch::channel(None);
        // Its own token: a request for another lab stops it, not the hold.
        let cancel = slot.holder_token.child_token();
        slot.preboot = Some(Preboot {
            session: id,
            identity: Identity::restored(wanted),
            outcome,
            cancel: cancel.clone(),
        });
        self.preboots.push((id, index, report, cancel));
    }

    /// Tells the session (an event) that its maximum hold ends soon; its
    /// next deadline is that end.
    fn warn_of_hold(&mut self, id: SessionId, now: Instant) {
        self.line.warned_of_hold(&id);
        self.refresh(id);
        let ends_in = self
            .line
            .deadline(&id)
            .map_or(Duration::ZERO, |(at, _)| at.saturating_duration_since(now));
        tracing::warn!(session = %id, seconds = ends_in.as_secs(), "the session's maximum hold ends soon");
        self.events.publish(EventKind::HoldWarning {
            session: id,
            ends_in,
        });
    }

    /// Takes the session out of the line. Returns `None` when it was not
    /// there, else the index of the slot it held, which is now being handed
    /// back (its holder token cancelled).
    fn depart(&mut self, id: SessionId, reason: EndReason, now: Instant) -> Option<Option<usize>> {
        let departed = self.line.leave(&id)?;
        self.deadlines.set(id, None);
        self.keys.forget(&id);
        let record = &departed.record;
        if !record.declared.is_empty() {
            // Unawaited: a start-up deletes what a stop cut short.
            let declared = self.declared.clone();
            tokio::spawn(async move { declared.forget(&id).await });
        }
        let slot = self.slots.iter().position(|slot| slot.holder == Some(id));
        if let Some(index) = slot {
            let slot = &mut self.slots[index];
            slot.holder = None;
            slot.handing_back = true;
            slot.phase = Phase::Releasing;
            slot.holder_token.cancel();
        }
        let held = departed
            .promoted
            .map(|at| now.saturating_duration_since(at));
        let waited = departed
            .promoted
            .unwrap_or(now)
            .saturating_duration_since(departed.joined);
        tracing::info!(session = %id, ?reason, slot = slot.map(|index| index + 1), "session ended");
        let stamp = self.events.publish(EventKind::SessionEnded {
            session: id,
            reason,
            waited,
            held,
        });
        self.endings
            .remember(id, reason, departed.record.owner, stamp);
        Some(slot)
    }
}

/// The part of the coordinator that lab slots report to.
struct Shared {
    state: Mutex<State>,
    /// Wakes the deadline timer when the earliest deadline may have moved.
    timer: Notify,
    /// Cancelled when the server stops; every holder token is its child.
    shutdown: CancellationToken,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No rule leaves the state half-changed across a panic point.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl LabObserver for Shared {
    fn lab_changed(&self, slot: usize, change: LabChange) {
        let mut state = self.lock();
        let slot_state = &mut state.slots[slot - 1];
        slot_state.phase = change.phase();
        match &change {
            LabChange::Starting { identity, .. } => slot_state.lab = Some(identity.clone()),
            LabChange::Failed { .. } | LabChange::Down { .. } => slot_state.lab = None,
            _ => {}
        }
        slot_state.kept_since = match &change {
            LabChange::Kept { .. } => Some(Instant::now()),
            LabChange::Resetting { .. } => slot_state.kept_since,
            _ => None,
        };
        let host = slot_state.host.clone();
        state.events.publish(EventKind::Lab { slot, host, change });
    }
}

/// The one coordinator of a server. See the module documentation.
pub struct Coordinator {
    shared: Arc<Shared>,
    /// Slot `n` at index `n - 1`; lab agents' slots are added as their
    /// hosts first register, never removed.
    slots: std::sync::RwLock<Vec<Arc<LabSlot>>>,
    tasks: TaskTracker,
    /// Where every event is written; replies wait for their changes here.
    store: Arc<dyn Store>,
    /// How long a lab stays up after its holder left (`--keep-idle-lab`;
    /// zero: torn down at once).
    keep_idle: Duration,
}

/// A session passed the lab routes' gate: it holds a slot, and it counts as
/// busy (never evicted) until this is dropped.
pub struct Hold<'a> {
    _busy: Busy<'a>,
    session: SessionId,
    slot: usize,
    token: CancellationToken,
    uploading: Arc<tokio::sync::Mutex<()>>,
}

impl Hold<'_> {
    /// Waits until no other upload of the slot is under way: keep the
    /// guard from before the upload's body is read until its lab is up.
    pub async fn upload_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.uploading).lock_owned().await
    }

    /// Completes when the holder's session ends (or the server stops).
    pub async fn ended(&self) {
        self.token.cancelled().await;
    }

    /// Who acts, as the slot checks it.
    fn holder(&self) -> Holder {
        Holder {
            session: self.session,
            token: self.token.clone(),
        }
    }
}

/// Marks a session busy for as long as it lives.
struct Busy<'a> {
    shared: &'a Shared,
    id: SessionId,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.line.end_request(&self.id, Instant::now());
        state.refresh(self.id);
        drop(state);
        // The session's deadline exists again and may be the earliest.
        self.shared.timer.notify_one();
    }
}

impl Coordinator {
    /// A coordinator with `slot_count` slots, each made by `make_slot(number,
    /// observer)` with its number from 1, writing its events to `store`.
    /// `shutdown` stops everything; sessions' declared labs are kept in
    /// `declared`. What a previous run left is put back with
    /// [`Coordinator::restore`] before serving.
    pub fn new(
        timeouts: Timeouts,
        slot_count: usize,
        shutdown: CancellationToken,
        store: Arc<dyn Store>,
        declared: DeclaredLabs,
        make_slot: impl Fn(usize, Arc<dyn LabObserver>) -> LabSlot,
    ) -> Self {
        let slots_state = (0..slot_count).map(|_| SlotState::new()).collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                line: Queue::new(timeouts, slot_count),
                slots: slots_state,
                deadlines: Deadlines::default(),
                events: EventBus::new(Arc::clone(&store), 0),
                keys: Keys::default(),
                endings: Endings::default(),
                declared,
                preboots: Vec::new(),
                policy: Policy::Fifo,
            }),
            timer: Notify::new(),
            shutdown,
        });
        let slots = (1..=slot_count)
            .map(|number| Arc::new(make_slot(number, shared.clone() as Arc<dyn LabObserver>)))
            .collect();
        let slots = std::sync::RwLock::new(slots);
        Coordinator {
            shared,
            slots,
            tasks: TaskTracker::new(),
            store,
            keep_idle: Duration::ZERO,
        }
    }

    /// Slot `index + 1`.
    fn slot(&self, index: usize) -> Arc<LabSlot> {
        let slots = self
            .slots
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        Arc::clone(&slots[index])
    }

    /// The lab host whose slot session `id` holds, when it is a lab agent's.
    pub fn host_of(&self, id: &SessionId) -> Option<String> {
        let state = self.shared.lock();
        let slot = state.slots.iter().find(|slot| slot.holder == Some(*id))?;
        slot.host.as_deref().map(str::to_string)
    }

    /// How many slots there are (this host's and lab agents').
    pub fn slot_count(&self) -> usize {
        self.slots
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    /// Every slot, slot 1 first.
    fn all_slots(&self) -> Vec<Arc<LabSlot>> {
        let slots = self
            .slots
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        slots.clone()
    }

    /// Adds `count` slots of lab host `host` (a lab agent that registered),
    /// each made by `make_slot(number, observer)`, and returns their
    /// numbers. They are free at once (event `host_registered`).
    pub fn add_slots(
        &self,
        host: &str,
        count: usize,
        make_slot: impl Fn(usize, Arc<dyn LabObserver>) -> LabSlot,
    ) -> Vec<usize> {
        self.push_slots(host, count, make_slot, true)
    }

    /// Puts back the slots of lab host `host` as a previous run had them,
    /// offline until its agent registers again. Call before
    /// [`Coordinator::restore`].
    pub fn restore_slots(
        &self,
        host: &str,
        count: usize,
        make_slot: impl Fn(usize, Arc<dyn LabObserver>) -> LabSlot,
    ) -> Vec<usize> {
        self.push_slots(host, count, make_slot, false)
    }

    fn push_slots(
        &self,
        host: &str,
        count: usize,
        make_slot: impl Fn(usize, Arc<dyn LabObserver>) -> LabSlot,
        registered: bool,
    ) -> Vec<usize> {
        let mut slots = self
            .slots
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        let mut state = self.shared.lock();
        let numbers: Vec<usize> = (slots.len() + 1..=slots.len() + count).collect();
        for &number in &numbers {
            slots.push(Arc::new(make_slot(
                number,
                self.shared.clone() as Arc<dyn LabObserver>,
            )));
            let mut slot = SlotState::new();
            slot.host = Some(host.into());
            slot.online = registered;
            state.slots.push(slot);
        }
        state.line.set_slots(slots.len());
        drop(slots);
        if registered {
            state.events.publish(EventKind::HostRegistered {
                host: host.into(),
                slots: numbers.clone(),
            });
            state.fill_free_slots(Instant::now(), &self.shared.shutdown, None);
        }
        drop(state);
        self.shared.timer.notify_one();
        numbers
    }

    /// Marks lab host `host`'s slots `numbers` online (they may get new
    /// holders) or offline (it stopped answering: they get none; their
    /// holders keep them), with an event.
    pub fn set_online(&self, host: &str, numbers: &[usize], online: bool) {
        let mut state = self.shared.lock();
        for &number in numbers {
            if let Some(slot) = state.slots.get_mut(number - 1) {
                slot.online = online;
            }
        }
        let host = host.into();
        state.events.publish(match online {
            true => EventKind::HostOnline { host },
            false => EventKind::HostOffline { host },
        });
        if online {
            state.fill_free_slots(Instant::now(), &self.shared.shutdown, None);
        }
        drop(state);
        self.shared.timer.notify_one();
    }

    /// Ends the sessions that hold slots `numbers`, for `reason`; returns
    /// how many there were.
    pub async fn end_holders(&self, numbers: &[usize], reason: EndReason) -> usize {
        self.end_sessions(&self.holders(numbers), reason).await
    }

    /// The sessions that hold slots `numbers` now.
    pub fn holders(&self, numbers: &[usize]) -> Vec<SessionId> {
        let state = self.shared.lock();
        (numbers.iter())
            .filter_map(|&number| state.slots.get(number - 1)?.holder)
            .collect()
    }

    /// Ends sessions `ids` for `reason`; returns how many there were.
    pub async fn end_sessions(&self, ids: &[SessionId], reason: EndReason) -> usize {
        let mut ended = 0;
        for id in ids {
            if self.leave(id, reason).await {
                ended += 1;
            }
        }
        ended
    }

    /// Tears down whatever slot `number` runs or keeps (its lab host
    /// started afresh: nothing of its old lab is left to hand over).
    pub async fn clear_slot(&self, number: usize) {
        if let Err(error) = self.slot(number - 1).destroy(true, None).await {
            tracing::warn!(slot = number, %error, "clearing the slot of a restarted lab host");
        }
    }

    /// Gives free slots to waiting sessions as `policy` says
    /// (`--placement`; default `fifo`).
    pub fn placement(self, policy: Policy) -> Self {
        self.shared.lock().policy = policy;
        self
    }

    /// Keeps a slot's lab up for `keep_idle` after its holder left, for the
    /// next session that asks for the same lab (`--keep-idle-lab`).
    pub fn keep_idle_labs(mut self, keep_idle: Duration) -> Self {
        self.keep_idle = keep_idle;
        self
    }

    /// Every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.lock().events.subscribe()
    }

    /// The event stream picked up after event `after`, or with the last
    /// `replay` events (see [`EventBus::resume`]).
    pub fn resume_events(&self, after: Option<u64>, replay: usize) -> Resume {
        self.shared.lock().events.resume(after, replay)
    }

    /// Whether the server is stopping.
    pub fn is_stopping(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Completes when the server starts stopping.
    pub async fn stopping(&self) {
        self.shared.shutdown.cancelled().await
    }

    /// Opens a session at the tail of the line; it is promoted at once when
    /// a slot is free. With an idempotency key that already opened a live
    /// session for the same owner, that session is returned (and counts as
    /// seen) instead, if the request said the same about itself
    /// ([`CreateError::KeyReused`] otherwise). Returns once the session is
    /// stored; when it could not be, it is taken out again. While changes
    /// wait to be saved, nothing is opened (see [`Coordinator::writable`]).
    pub async fn create(&self, new: NewSession) -> Result<(SessionId, Standing), CreateError> {
        self.writable().map_err(CreateError::NotSaved)?;
        let (id, standing, events) = self.join(new)?;
        let Some(events) = events else {
            // A repeat: the first request's session, once it is stored
            // (when that failed, the first request takes it out again).
            let stamp = self.stamp(&id);
            self.store
                .committed(stamp..=stamp)
                .await
                .map_err(CreateError::NotSaved)?;
            return Ok((id, standing));
        };
        self.shared.timer.notify_one();
        if let Err(error) = self.store.committed(events).await {
            // Nobody learns its id: it must not wait (or hold a slot)
            // unseen. That it ends is saved (with its joining) when the
            // store can write again.
            self.leave(&id, EndReason::NotSaved).await;
            return Err(CreateError::NotSaved(error));
        }
        Ok((id, standing))
    }

    /// [`Coordinator::create`] under the lock: the session and the ids of
    /// the events its joining published (`None` for a repeated key).
    fn join(
        &self,
        new: NewSession,
    ) -> Result<(SessionId, Standing, Option<RangeInclusive<u64>>), CreateError> {
        let now = Instant::now();
        let fingerprint = new.fingerprint();
        let NewSession {
            key,
            client,
            owner,
            lease,
        } = new;
        let client = client.map(Arc::new);
        // Each token has its own keys: one never finds another's session.
        let key = key.map(|key| match &owner {
            Some(owner) => format!("{owner}\n{key}"),
            None => key,
        });
        let mut state = self.shared.lock();
        match key
            .as_deref()
            .map(|key| state.keys.session(key, &fingerprint))
        {
            Some(SessionKey::Reused) => return Err(CreateError::KeyReused),
            Some(SessionKey::Opened(id)) => {
                if let Some(standing) = state.line.touch(&id, now) {
                    state.refresh(id);
                    return Ok((id, standing, None));
                }
            }
            Some(SessionKey::New) | None => {}
        }
        let id = SessionId::new();
        if let Some(key) = &key {
            state.keys.remember_session(key.clone(), fingerprint, id);
        }
        state.line.join(
            id,
            now,
            lease,
            SessionRecord::new(client.clone(), owner.clone()),
        );
        let position = state
            .line
            .standing(&id)
            .map_or(0, |standing| standing.position);
        let first = state.events.publish(EventKind::SessionJoined {
            session: id,
            position,
            client: client.clone(),
            owner: owner.clone(),
            key,
            lease,
        });
        if let Some(record) = state.line.record_mut(&id) {
            record.stamp = first;
        }
        state.fill_free_slots(now, &self.shared.shutdown, Some(id));
        state.refresh(id);
        let standing = state.line.standing(&id).expect("just joined");
        Ok((id, standing, Some(first..=state.events.last_id())))
    }

    /// Whether `caller` may act for the session: with auth off both are
    /// `None`. An unknown session comes first (404), another token's second
    /// (403). A session's owner never changes, so a request checked here
    /// may go on to touch the session: another token's never does.
    pub fn check_owner(&self, id: &SessionId, caller: Option<&Caller>) -> Result<(), GateError> {
        let state = self.shared.lock();
        let owner = match (state.line.record(id), state.endings.reasons.get(id)) {
            (Some(record), _) => &record.owner,
            (None, Some((reason, owner, stamp))) if owner.as_ref() == caller => {
                // An end the store failed to save is undone by a crash:
                // not reported until it is saved.
                let saved = self.store.unsaved().is_none()
                    || self.store.durable(*stamp).now_or_never().is_some();
                return Err(if saved {
                    GateError::Ended(*reason)
                } else {
                    GateError::EndNotSaved
                });
            }
            // Another token's ended session is as unknown as any.
            (None, _) => return Err(GateError::UnknownSession),
        };
        if owner.as_ref() != caller {
            Err(GateError::NotOwner)
        } else {
            Ok(())
        }
    }

    /// Where the session stands; counts as a sign of life (which is not
    /// written anywhere). `Ok(None)` when it is unknown; the error when the
    /// standing reports a change that could not be saved (a full disk).
    pub async fn status(&self, id: &SessionId) -> Result<Option<Standing>, StoreError> {
        let Some((standing, stamp)) = self.touch(id) else {
            return Ok(None);
        };
        // The standing may report its promotion, still being written.
        self.flushed(stamp).await?;
        Ok(Some(standing))
    }

    /// A heartbeat: the session counts as seen. Reports nothing, so waits
    /// for nothing. `false` when the session is unknown.
    pub fn heartbeat(&self, id: &SessionId) -> bool {
        self.touch(id).is_some()
    }

    /// Marks the session seen; its standing and its stamp.
    fn touch(&self, id: &SessionId) -> Option<(Standing, u64)> {
        let mut state = self.shared.lock();
        let standing = state.line.touch(id, Instant::now())?;
        state.refresh(*id);
        let stamp = state.stamp(id);
        Some((standing, stamp))
    }

    /// The id of the last event that changed the session's standing (0 for
    /// none this run).
    fn stamp(&self, id: &SessionId) -> u64 {
        self.shared.lock().stamp(id)
    }

    /// Waits until the session's standing differs from what it is now, at
    /// most `limit`; the request counts as a sign of life throughout. An
    /// ACTIVE session is answered at once. `Ok(None)` when it is (or
    /// becomes) unknown; errors as [`Coordinator::status`].
    pub async fn wait(
        &self,
        id: &SessionId,
        limit: Duration,
    ) -> Result<Option<Standing>, StoreError> {
        // Subscribe before the first look, so no change can slip between.
        let mut events = self.subscribe();
        let Some((start, _busy)) = self.begin_request(id) else {
            return Ok(None);
        };
        if start.status == SessionStatus::Active {
            self.flushed(self.stamp(id)).await?;
            return Ok(Some(start));
        }
        let give_up = tokio::time::sleep(limit);
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) if !event.kind.moves_the_line() => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                    // A missed event (lagging) may have moved us: look.
                    _ => {
                        let (now, last) = self.answer(id);
                        if now != Some(start) {
                            self.flushed(last).await?;
                            return Ok(now);
                        }
                    }
                },
                _ = &mut give_up => break,
                _ = self.shared.shutdown.cancelled() => break,
            }
        }
        let (now, last) = self.answer(id);
        self.flushed(last).await?;
        Ok(now)
    }

    /// A long-poll's answer. Telling a waiting client that it is ACTIVE
    /// counts as its claim: a live client learns it this way and may take
    /// a while before its next request (a dead one's poll is dropped with
    /// its connection before it gets here). Also returns the session's
    /// stamp: the event the answer may report.
    fn answer(&self, id: &SessionId) -> (Option<Standing>, u64) {
        let mut state = self.shared.lock();
        let last = state.stamp(id);
        let Some(standing) = state.line.standing(id) else {
            return (None, last);
        };
        if standing.status == SessionStatus::Active {
            state.line.touch(id, Instant::now());
            state.refresh(*id);
        }
        (Some(standing), last)
    }

    /// Waits until event `stamp` was tried; the error when it is not on
    /// disk: a reply must not report a change a crash could still undo (a
    /// promotion the store could not save would be a waiting session again
    /// after a restart).
    async fn flushed(&self, stamp: u64) -> Result<(), StoreError> {
        match self.store.committed(stamp..=stamp).await {
            Ok(()) => Ok(()),
            // The writer retries failed batches: it may be saved since.
            Err(error) => match self.store.durable(stamp).now_or_never() {
                Some(()) => Ok(()),
                None => Err(self.store.unsaved().unwrap_or(error)),
            },
        }
    }

    /// The id of the last event published so far.
    fn last_event_id(&self) -> u64 {
        self.shared.lock().events.last_id()
    }

    /// Why changes wait to be saved, while some do.
    pub fn unsaved(&self) -> Option<StoreError> {
        self.store.unsaved()
    }

    /// Refuses a change while earlier ones wait to be saved (a full disk):
    /// memory is ahead of the disk then, and a change made now could be
    /// answered but lost. The refusal means that nothing happened.
    fn writable(&self) -> Result<(), StoreError> {
        self.store.unsaved().map_or(Ok(()), Err)
    }

    /// Waits until the events after `before` are on disk, however long the
    /// store needs: a change is answered only once a crash cannot undo it.
    async fn durable_since(&self, before: u64) {
        let last = self.last_event_id();
        if last > before {
            self.store.durable(last).await;
        }
    }

    /// The session that has been ACTIVE longest (holders stand at the front
    /// of the line in the order they were promoted), or, while nobody is
    /// ACTIVE, the head, with its owner. Looking does not keep it alive.
    pub fn longest_active(&self) -> Option<(SessionId, Standing, Option<Caller>)> {
        let state = self.shared.lock();
        let (id, standing) = state.line.head()?;
        let owner = state
            .line
            .record(&id)
            .and_then(|record| record.owner.clone());
        Some((id, standing, owner))
    }

    /// Number of sessions, ACTIVE ones included.
    pub fn count(&self) -> usize {
        self.shared.lock().line.count()
    }

    /// The line and the slots as they are now, for watchers: not a sign of
    /// life for anyone.
    pub fn overview(&self) -> Overview {
        let now = Instant::now();
        let state = self.shared.lock();
        let sessions = state
            .line
            .list()
            .map(|listed| {
                let record = listed.record;
                SessionView {
                    id: listed.id,
                    standing: listed.standing,
                    slot: state
                        .slots
                        .iter()
                        .position(|slot| slot.holder == Some(listed.id))
                        .map(|index| index + 1),
                    host: (state.slots.iter())
                        .find(|slot| slot.holder == Some(listed.id))
                        .and_then(|slot| slot.host.clone()),
                    client: record.client.clone(),
                    owner: record.owner.clone(),
                    waiting: listed
                        .promoted
                        .unwrap_or(now)
                        .saturating_duration_since(listed.joined),
                    holding: listed.promoted.map(|at| now.saturating_duration_since(at)),
                    lease: listed.lease,
                    silent: now.saturating_duration_since(listed.last_seen),
                    evicted_in: listed
                        .deadline
                        .map(|(at, _)| at.saturating_duration_since(now)),
                    declared: record.declared.clone(),
                }
            })
            .collect();
        let mut slots: Vec<SlotView> = (state.slots.iter().enumerate())
            .map(|(index, slot)| SlotView {
                number: index + 1,
                phase: slot.phase,
                holder: slot.holder,
                host: slot.host.clone(),
                online: slot.online,
                lab: LabView::default(),
            })
            .collect();
        drop(state);
        // Each lab view has its own small lock: read outside ours.
        for (view, slot) in slots.iter_mut().zip(self.all_slots()) {
            view.lab = slot.view();
        }
        Overview { sessions, slots }
    }

    /// Sessions ACTIVE and WAITING now.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.shared.lock();
        let active = state.line.active_count();
        (active, state.line.count() - active)
    }

    /// The holder's slot's current (or last) bring-up output, from its
    /// first line; it ends when that bring-up ends or the holder leaves.
    pub fn lab_log(&self, hold: &Hold<'_>) -> LogReader {
        self.slot(hold.slot)
            .bring_up_log()
            .reader(hold.token.clone())
    }

    /// Each slot's phase, slot 1 first.
    pub fn phases(&self) -> Vec<Phase> {
        self.shared
            .lock()
            .slots
            .iter()
            .map(|slot| slot.phase)
            .collect()
    }

    /// The lab routes' gate: the session exists and holds a slot. Counts as
    /// a sign of life either way; a passed session stays busy until the
    /// [`Hold`] drops.
    pub fn hold(&self, id: &SessionId) -> Result<Hold<'_>, GateError> {
        let (_, busy) = self.begin_request(id).ok_or(GateError::UnknownSession)?;
        let state = self.shared.lock();
        let slot = state
            .slots
            .iter()
            .position(|slot| slot.holder == Some(*id))
            .ok_or(GateError::NotActive)?;
        let token = state.slots[slot].holder_token.clone();
        let uploading = Arc::clone(&state.slots[slot].uploading);
        Ok(Hold {
            _busy: busy,
            session: *id,
            slot,
            token,
            uploading,
        })
    }

    /// Brings up (or attaches to) the lab of `upload` in the holder's slot.
    /// The work runs in a tracked task: a client hanging up does not stop
    /// it, but the holder's session ending does ([`LabError::Cancelled`]).
    /// With an idempotency `key` this session used before, nothing new
    /// runs: the answer is that first request's outcome, once it is known.
    pub async fn acquire(&self, hold: &Hold<'_>, upload: Upload, key: Option<&str>) -> LabOutcome {
        self.writable()
            .map_err(|error| Arc::new(not_saved(error)))?;
        // What makes a repeat the same request: the content and `reuse`.
        let fingerprint = format!("{} reuse={}", upload.identity, upload.reuse);
        // The lock is taken and released inside the closure.
        let claim = key.map(|key| self.shared.lock().keys.lab(hold.session, key, &fingerprint));
        let recorder = match claim {
            None => None,
            Some(LabKey::Reused) => return Err(Arc::new(LabError::KeyReused)),
            Some(LabKey::First(sender)) => Some(sender),
            Some(LabKey::Repeat(mut first)) => {
                return match first.wait_for(Option::is_some).await {
                    Ok(outcome) => outcome.clone().expect("waited for Some"),
                    Err(_) => Err(Arc::new(LabError::Cancelled)),
                };
            }
        };
        let mut upload = upload;
        let preboot = self.preboot_of(hold, &upload.identity).await;
        if preboot.is_some() {
            // Brought up for this session, fresh: attaching is what it asked.
            upload.reuse = true;
        }
        let before = self.last_event_id();
        let (slot, holder) = (self.slot(hold.slot), hold.holder());
        let work = async move {
            let acquired = match preboot {
                // netlab's verdict on this very lab: not run a second time.
                Some(Err(failed)) => Err(failed),
                _ => slot.acquire(&upload, &holder).await.map_err(Arc::new),
            };
            let outcome = match acquired {
                // Committed only if the holder still holds the slot; else
                // the hand-back started at its departure handles this lab.
                Ok(_) if holder.token.is_cancelled() => Err(Arc::new(LabError::Cancelled)),
                other => other,
            };
            if let Some(recorder) = recorder {
                recorder.send_replace(Some(outcome.clone()));
            }
            outcome
        };
        let outcome = self
            .run_tracked(work)
            .await
            .unwrap_or_else(|error| Err(Arc::new(error)));
        self.durable_since(before).await;
        outcome
    }

    /// The outcome of the pre-boot of `identity` for the holder, once it
    /// finished; `None` when there was none. Only the holder's first lab
    /// request after its promotion may take a pre-boot.
    async fn preboot_of(
        &self,
        hold: &Hold<'_>,
        identity: &Identity,
    ) -> Option<Result<(), Arc<LabError>>> {
        let preboot = self.shared.lock().slots[hold.slot]
            .preboot
            .take()
            .filter(|preboot| preboot.session == hold.session)?;
        let wanted = preboot.identity == *identity;
        if !wanted {
            // The session asks for another lab first: the pre-boot makes
            // way (stopped if it still runs, then let go of) for this one.
            preboot.cancel.cancel();
        }
        let mut outcome = preboot.outcome;
        tokio::select! {
            finished = outcome.wait_for(Option::is_some) => {
                finished.ok().and_then(|o| o.clone()).filter(|_| wanted)
            }
            () = hold.ended() => None,
        }
    }

    /// Starts the pre-boots that promotions decided (see
    /// [`State::preboot_if_needed`]), each in a tracked task; looks after
    /// every event, as every promotion is one. Returns when the server
    /// stops.
    pub async fn run_preboots(&self) {
        let mut events = self.subscribe();
        loop {
            let decided = std::mem::take(&mut self.shared.lock().preboots);
            for (session, index, report, cancel) in decided {
                self.start_preboot(session, index, report, cancel);
            }
            tokio::select! {
                event = events.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = event {
                        return;
                    }
                }
                () = self.shared.shutdown.cancelled() => return,
            }
        }
    }

    /// Brings the session's first declared lab up in slot `index`, then
    /// lets go of it (reference count 0, up): the session's own request
    /// attaches. Reports netlab's verdict on `report`; a declaration that
    /// cannot be read back reports nothing wrong (the request then brings
    /// the lab up itself).
    fn start_preboot(
        &self,
        session: SessionId,
        index: usize,
        report: PrebootReport,
        token: CancellationToken,
    ) {
        let declared = {
            let state = self.shared.lock();
            if state.slots[index].holder != Some(session) {
                return;
            }
            state.declared.clone()
        };
        let holder = Holder { session, token };
        let slot = self.slot(index);
        let shared = Arc::clone(&self.shared);
        self.tasks.spawn(async move {
            let upload = match declared.load(&session, 0).await {
                Ok(upload) => upload,
                Err(error) => {
                    tracing::warn!(session = %session, %error, "cannot read the declared lab back; no pre-boot");
                    report.send_replace(Some(Ok(())));
                    return;
                }
            };
            tracing::info!(session = %session, slot = index + 1, lab = upload.identity.short(), "pre-boot of the declared lab");
            shared.lock().events.publish(EventKind::PrebootStarted {
                session,
                slot: index + 1,
                identity: upload.identity.to_string(),
            });
            let outcome = match slot.acquire(&upload, &holder).await {
                Ok(_) => {
                    // Unheld until the session's request attaches.
                    let _ = slot.release(&holder).await;
                    Ok(())
                }
                Err(error) => Err(Arc::new(error)),
            };
            report.send_replace(Some(outcome));
        });
    }

    /// Drops one of the holder's references to its slot's lab.
    pub async fn release(&self, hold: &Hold<'_>) -> Result<(), LabError> {
        self.writable().map_err(not_saved)?;
        let (slot, holder) = (self.slot(hold.slot), hold.holder());
        let before = self.last_event_id();
        let outcome = self
            .run_tracked(async move { slot.release(&holder).await })
            .await?;
        self.durable_since(before).await;
        outcome
    }

    /// Tears the holder's slot's lab down (see [`LabSlot::destroy`]).
    pub async fn destroy(&self, hold: &Hold<'_>, force: bool) -> Result<bool, LabError> {
        self.writable().map_err(not_saved)?;
        let (slot, holder) = (self.slot(hold.slot), hold.holder());
        let before = self.last_event_id();
        let outcome = self
            .run_tracked(async move { slot.destroy(force, Some(&holder)).await })
            .await?;
        self.durable_since(before).await;
        outcome
    }

    /// The holder's slot's lab, as of its last finished change.
    pub fn lab_view(&self, hold: &Hold<'_>) -> LabView {
        self.slot(hold.slot).view()
    }

    /// The lab host the holder's devices are reached through over SSH:
    /// `None` for this host's slots.
    pub fn ssh_jump(&self, hold: &Hold<'_>) -> Option<Jump> {
        let alias = self.shared.lock().slots[hold.slot].host.clone()?;
        let address = self.slot(hold.slot).ssh_address()?;
        Some(Jump {
            alias: alias.to_string(),
            address,
        })
    }

    /// netlab's Ansible inventory of the holder's lab.
    pub async fn inventory(&self, hold: &Hold<'_>) -> Result<Inventory, LabError> {
        self.slot(hold.slot).inventory().await
    }

    /// netlab's own status report, for the holder's `GET /lab`.
    pub async fn tool_status(&self, hold: &Hold<'_>) -> Option<String> {
        self.slot(hold.slot).tool_status().await
    }

    /// Ends a session (`DELETE /session`). A holder's work is cancelled at
    /// once, its slot's lab torn down, and the slot given to the next
    /// session; this returns when that is done and on disk. `false` when
    /// the session did not exist. While earlier changes wait to be saved,
    /// nothing is done ([`StoreError::Unsaved`]).
    pub async fn end(&self, id: &SessionId, reason: EndReason) -> Result<bool, StoreError> {
        self.writable()?;
        let before = self.last_event_id();
        if !self.leave(id, reason).await {
            return Ok(false);
        }
        self.durable_since(before).await;
        Ok(true)
    }

    /// Takes the session out of the line and, if it held a slot, hands the
    /// slot back (awaited). `false` when it did not exist.
    async fn leave(&self, id: &SessionId, reason: EndReason) -> bool {
        let departure = self.shared.lock().depart(*id, reason, Instant::now());
        match departure {
            None => return false,
            Some(None) => {}
            Some(Some(slot)) => {
                // Awaited, but in its own task: a client hanging up must not
                // leave the slot half handed back.
                let _ = self.hand_back(slot).await;
            }
        }
        true
    }

    /// Evicts every session at its deadline, to within the timer's
    /// precision: it sleeps until the earliest deadline instead of sweeping,
    /// takes every due session out under the lock at once, and spawns their
    /// hand-backs without awaiting them, so one slow teardown delays nobody.
    /// Returns when the server stops.
    pub async fn run_deadlines(&self) {
        loop {
            let next = self.shared.lock().deadlines.next();
            tokio::select! {
                _ = sleep_until(next) => {}
                _ = self.shared.timer.notified() => continue,
                _ = self.shared.shutdown.cancelled() => return,
            }
            let now = Instant::now();
            let handed_back: Vec<usize> = {
                let mut state = self.shared.lock();
                let due = state.deadlines.take_due(now);
                due.into_iter()
                    .filter_map(|(kind, id)| {
                        let reason = match kind {
                            DeadlineKind::HoldWarning => {
                                state.warn_of_hold(id, now);
                                return None;
                            }
                            DeadlineKind::MaxHold => EndReason::MaxHold,
                            DeadlineKind::Claim => EndReason::ClaimExpired,
                            DeadlineKind::Lease => EndReason::LeaseExpired,
                            DeadlineKind::Active | DeadlineKind::Waiting => EndReason::Evicted,
                        };
                        tracing::warn!(session = %id, ?kind, "ending session at its deadline");
                        state.depart(id, reason, now).flatten()
                    })
                    .collect()
            };
            for slot in handed_back {
                drop(self.hand_back(slot));
            }
        }
    }

    /// At shutdown: cancels all lab work (the shutdown token is the parent
    /// of every holder token), tears every slot's lab down unless
    /// `keep_labs` (they are re-adopted at the next start), and waits for
    /// the tracked tasks. Lab agents' labs stay with their agents (no one
    /// could tell them now): the next start re-adopts them. The queue is left as it is (stored). The caller
    /// bounds how long this may take.
    pub async fn stop_labs(&self, keep_labs: bool) {
        self.shared.shutdown.cancel();
        let mut teardowns = tokio::task::JoinSet::new();
        let local: Vec<bool> = (self.shared.lock().slots.iter())
            .map(|slot| slot.host.is_none())
            .collect();
        let slots = self.all_slots().into_iter().zip(local);
        for (slot, _) in slots.filter(|(_, local)| *local && !keep_labs) {
            teardowns.spawn(async move {
                match slot.destroy(true, None).await {
                    Ok(true) => tracing::info!(slot = slot.number(), "lab torn down"),
                    Ok(false) => {}
                    Err(error) => tracing::error!(slot = slot.number(), %error, "lab teardown at shutdown failed"),
                }
            });
        }
        teardowns.join_all().await;
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Marks the session seen and busy; `None` when it is unknown.
    fn begin_request(&self, id: &SessionId) -> Option<(Standing, Busy<'_>)> {
        let mut state = self.shared.lock();
        let standing = state.line.begin_request(id, Instant::now())?;
        state.refresh(*id);
        Some((
            standing,
            Busy {
                shared: &self.shared,
                id: *id,
            },
        ))
    }

    /// Tears down what the departed holder left in `slot` (or, with
    /// `--keep-idle-lab`, keeps it up until it expires), then gives the slot
    /// to the longest-waiting session. A failed teardown still hands the
    /// slot on (the slot stays [`Phase::Dirty`]).
    fn hand_back(&self, index: usize) -> JoinHandle<()> {
        let (shared, slot) = (Arc::clone(&self.shared), self.slot(index));
        let (keep_idle, tasks) = (self.keep_idle, self.tasks.clone());
        self.tasks.spawn(async move {
            let kept = if keep_idle.is_zero() || shared.shutdown.is_cancelled() {
                None
            } else {
                slot.keep(keep_idle).await
            };
            match kept {
                Some(keep) => {
                    tasks.spawn(expire_later(Arc::clone(&slot), keep, keep_idle, shared.shutdown.clone()));
                }
                None => {
                    if let Err(error) = slot.destroy(true, None).await {
                        tracing::error!(slot = index + 1, %error, "teardown failed; handing the slot on anyway");
                    }
                }
            }
            let mut state = shared.lock();
            let slot_state = &mut state.slots[index];
            slot_state.handing_back = false;
            if slot_state.phase == Phase::Releasing {
                slot_state.phase = Phase::Idle;
            }
            state.fill_free_slots(Instant::now(), &shared.shutdown, None);
            drop(state);
            shared.timer.notify_one();
        })
    }

    /// Runs lab work in a tracked task and waits for it.
    async fn run_tracked<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, LabError> {
        self.tasks
            .spawn(work)
            .await
            .map_err(|error| LabError::Io(std::io::Error::other(error)))
    }
}

/// Ends keep `keep` of `slot`'s lab after `after`, unless a session took
/// the lab first (the slot decides under its lock) or the server stops
/// (which ends every lab its own way).
async fn expire_later(slot: Arc<LabSlot>, keep: u64, after: Duration, stop: CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(after) => {
            slot.expire(keep).await;
        }
        () = stop.cancelled() => {}
    }
}

/// A lab change refused because the store cannot save (HTTP 503).
fn not_saved(error: StoreError) -> LabError {
    LabError::NotSaved(error.to_string())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
