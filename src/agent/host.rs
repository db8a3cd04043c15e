//! One lab host of the pool and its agent, as the coordinator sees it:
//! its slots, the incarnation registered now, when it was last heard, and
//! whether it is online.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::slot::RemoteSlot;
use super::wire::{Capabilities, DesiredState, Register, WantedLab};
use crate::lab::inventory::Inventory;

/// Timing of host loss.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// Silent this long: offline (`--agent-lease`, default 15 s).
    pub lease: Duration,
    /// Offline this long: lost (`--host-grace`, default 60 s).
    pub grace: Duration,
}

/// What a registration of a known host means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The incarnation registered now, again (e.g. after a lost answer).
    Same,
    /// The first registration since the coordinator restarted: its running
    /// labs may be re-adopted.
    Adopted,
    /// A new incarnation: its agent restarted and cleared its labs.
    Restarted,
}

/// One lab host and its agent.
pub struct AgentHost {
    pub name: String,
    pub slots: Vec<Arc<RemoteSlot>>,
    status: Mutex<HostStatus>,
    online: watch::Sender<bool>,
    /// False once it is lost (or the coordinator stops): waits on its agent
    /// end then. An offline host is still waited for, until its grace ends.
    reachable: watch::Sender<bool>,
    /// The desired state's version; increases with every assignment.
    version: watch::Sender<u64>,
    epochs: Arc<AtomicU64>,
}

struct HostStatus {
    /// `None` for a host put back after a coordinator restart, until its
    /// agent registers again.
    incarnation: Option<String>,
    capabilities: Capabilities,
    last_seen: Instant,
    offline_since: Option<Instant>,
    /// Its holders were ended for its silence.
    lost: bool,
    /// Each slot's inventory of its running lab, as the agent sent it.
    inventories: BTreeMap<usize, Inventory>,
}

impl AgentHost {
    /// A host with slots `numbers`, heard from just now; its epochs come
    /// from the pool's `epochs`.
    pub fn new(
        register: Register,
        numbers: std::ops::Range<usize>,
        epochs: Arc<AtomicU64>,
    ) -> Self {
        let epoch = epochs.load(Ordering::Relaxed);
        AgentHost {
            name: register.name,
            slots: numbers
                .map(|number| Arc::new(RemoteSlot::new(number, epoch)))
                .collect(),
            status: Mutex::new(HostStatus {
                incarnation: Some(register.incarnation),
                capabilities: register.capabilities,
                last_seen: Instant::now(),
                offline_since: None,
                lost: false,
                inventories: BTreeMap::new(),
            }),
            online: watch::Sender::new(true),
            reachable: watch::Sender::new(true),
            version: watch::Sender::new(1),
            epochs,
        }
    }

    /// A host a previous run of the coordinator had, put back offline
    /// (since now) until its agent registers again; slots whose lab is
    /// re-adopted want that lab.
    pub fn restored(
        name: String,
        numbers: std::ops::Range<usize>,
        labs: &[(usize, WantedLab)],
        epochs: Arc<AtomicU64>,
    ) -> Self {
        let epoch = epochs.load(Ordering::Relaxed);
        let slots: Vec<Arc<RemoteSlot>> = numbers
            .map(|number| Arc::new(RemoteSlot::new(number, epoch)))
            .collect();
        for (number, lab) in labs {
            if let Some(slot) = slots.iter().find(|slot| slot.number == *number) {
                slot.assign(epoch, Some(lab.clone()), None, None);
            }
        }
        AgentHost {
            name,
            slots,
            status: Mutex::new(HostStatus {
                incarnation: None,
                capabilities: Capabilities::default(),
                last_seen: Instant::now(),
                offline_since: Some(Instant::now()),
                lost: false,
                inventories: BTreeMap::new(),
            }),
            online: watch::Sender::new(false),
            reachable: watch::Sender::new(true),
            version: watch::Sender::new(1),
            epochs,
        }
    }

    fn status(&self) -> MutexGuard<'_, HostStatus> {
        self.status
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// A new epoch, greater than every one before in this pool.
    pub fn next_epoch(&self) -> u64 {
        self.epochs.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Wakes the agent's poll.
    pub fn desired_changed(&self) {
        self.version.send_modify(|version| *version += 1);
    }

    /// The coordinator stops: every wait on this agent ends (as if it were
    /// offline); its labs stay with it, for the next start to re-adopt.
    pub fn stop_waiting(&self) {
        self.online.send_replace(false);
        self.reachable.send_replace(false);
    }

    /// True until the host is lost (see [`AgentHost::stop_waiting`]).
    pub fn reachable_watch(&self) -> watch::Receiver<bool> {
        self.reachable.subscribe()
    }

    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    pub fn capabilities(&self) -> Capabilities {
        self.status().capabilities.clone()
    }

    pub fn remember_inventory(&self, slot: usize, inventory: Inventory) {
        self.status().inventories.insert(slot, inventory);
    }

    pub fn inventory(&self, slot: usize) -> Option<Inventory> {
        self.status().inventories.get(&slot).cloned()
    }

    pub fn numbers(&self) -> Vec<usize> {
        self.slots.iter().map(|slot| slot.number).collect()
    }

    /// The desired state of every slot now.
    pub fn desired(&self) -> DesiredState {
        DesiredState {
            version: *self.version.borrow(),
            slots: self.slots.iter().map(|slot| slot.desired()).collect(),
        }
    }

    /// Waits (at most `limit`) for a desired state newer than `after`.
    pub async fn desired_after(&self, after: u64, limit: Duration) -> DesiredState {
        let mut version = self.version.subscribe();
        let _ = tokio::time::timeout(limit, version.wait_for(|now| *now > after)).await;
        self.desired()
    }

    /// Whether `incarnation` is the one registered now.
    pub fn is_incarnation(&self, incarnation: &str) -> bool {
        self.status().incarnation.as_deref() == Some(incarnation)
    }

    /// Takes a registration of this host (see [`Registration`]).
    pub fn reregister(&self, register: &Register) -> Registration {
        let mut status = self.status();
        status.capabilities = register.capabilities.clone();
        let registration = match status.incarnation.as_deref() {
            None => Registration::Adopted,
            Some(known) if known == register.incarnation => Registration::Same,
            Some(_) => Registration::Restarted,
        };
        if registration != Registration::Same {
            status.incarnation = Some(register.incarnation.clone());
            status.inventories.clear();
        }
        registration
    }

    /// The agent was heard now. Returns whether that brought the host
    /// back online.
    pub fn seen(&self) -> bool {
        {
            let mut status = self.status();
            status.last_seen = Instant::now();
            if status.offline_since.take().is_some() {
                status.lost = false;
            }
        }
        self.reachable.send_replace(true);
        !self.online.send_replace(true)
    }

    /// Applies `liveness` now: whether the host just went offline, and
    /// whether it was just lost.
    pub fn check(&self, liveness: Liveness) -> (bool, bool) {
        let (went_offline, lost) = {
            let mut status = self.status();
            let now = Instant::now();
            let went_offline =
                status.offline_since.is_none() && status.last_seen.elapsed() > liveness.lease;
            if went_offline {
                status.offline_since = Some(now);
            }
            let lost = !status.lost
                && (status.offline_since)
                    .is_some_and(|since| now.duration_since(since) > liveness.grace);
            status.lost |= lost;
            (went_offline, lost)
        };
        if went_offline {
            self.online.send_replace(false);
        }
        if lost {
            self.reachable.send_replace(false);
        }
        (went_offline, lost)
    }
}
