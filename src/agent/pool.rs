//! The lab hosts of the pool as the coordinator sees them: which agents
//! registered, with which incarnation and slots, whether each is online.
//!
//! An agent silent for the lease (`--agent-lease`) is marked offline: its
//! slots get no new holder. Silent past the grace (`--host-grace`) after
//! that, its holders' sessions end with reason `host_lost` and its slots'
//! labs are given up. If the same incarnation comes back, it is online
//! again; a new incarnation of a known host (its agent restarted, its labs
//! are gone) ends its holders at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::remote::{RemoteSlot, RemoteSlotDriver};
use super::wire::{Capabilities, DesiredState, Register, Registered};
use crate::coordinator::Coordinator;
use crate::domain::events::EndReason;
use crate::lab::LabSlot;
use crate::lab::inventory::Inventory;

/// netlab's multilab ids run from 1 to 200 (networklab 26.10,
/// `netsim/extra/multilab`): a pool has at most that many slots.
pub const MAX_POOL_SLOTS: usize = 200;

/// Timing of host loss.
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// Silent this long: offline (`--agent-lease`, default 15 s).
    pub lease: Duration,
    /// Offline this long: lost (`--host-grace`, default 60 s).
    pub grace: Duration,
}

/// One lab host and its agent.
pub struct AgentHost {
    pub name: String,
    pub slots: Vec<Arc<RemoteSlot>>,
    status: Mutex<HostStatus>,
    online: watch::Sender<bool>,
    /// The desired state's version; increases with every assignment.
    version: watch::Sender<u64>,
    epochs: Arc<AtomicU64>,
}

struct HostStatus {
    incarnation: String,
    capabilities: Capabilities,
    last_seen: Instant,
    offline_since: Option<Instant>,
    /// Its holders were ended for its silence.
    lost: bool,
    /// Each slot's inventory of its running lab, as the agent sent it.
    inventories: BTreeMap<usize, Inventory>,
}

impl AgentHost {
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

    pub fn online_watch(&self) -> watch::Receiver<bool> {
        self.online.subscribe()
    }

    pub fn is_online(&self) -> bool {
        *self.online.borrow()
    }

    pub fn capabilities(&self) -> Capabilities {
        self.status().capabilities.clone()
    }

    pub fn incarnation(&self) -> String {
        self.status().incarnation.clone()
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

    /// How long since the agent was last heard, in seconds.
    pub fn silent_for(&self) -> Duration {
        self.status().last_seen.elapsed()
    }
}

/// Why an agent's request is refused.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("unknown lab host {0}: register first")]
    UnknownHost(String),
    #[error("lab host {name} is registered with another incarnation: register again")]
    OtherIncarnation { name: String },
    #[error(
        "lab host {name} registered {before} slots before; restart the coordinator to change that"
    )]
    SlotCount { name: String, before: usize },
    #[error("the pool would have {0} slots; netlab's multilab ids allow {MAX_POOL_SLOTS}")]
    TooManySlots(usize),
    #[error("a lab host's name must be 1 to 64 letters, digits, '.', '-' or '_'")]
    BadName,
}

/// Every lab host of the pool (see the module documentation).
pub struct Pool {
    coordinator: Arc<Coordinator>,
    hosts: Mutex<HashMap<String, Arc<AgentHost>>>,
    epochs: Arc<AtomicU64>,
    pub liveness: Liveness,
}

impl Pool {
    pub fn new(coordinator: Arc<Coordinator>, liveness: Liveness) -> Self {
        // Epochs start from the wall clock (microseconds), so those of a
        // restarted coordinator are above any it handed out before.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |since| since.as_micros() as u64);
        Pool {
            coordinator,
            hosts: Mutex::default(),
            epochs: Arc::new(AtomicU64::new(start)),
            liveness,
        }
    }

    fn hosts(&self) -> MutexGuard<'_, HashMap<String, Arc<AgentHost>>> {
        self.hosts
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Every host, by name.
    pub fn all(&self) -> Vec<Arc<AgentHost>> {
        let mut hosts: Vec<Arc<AgentHost>> = self.hosts().values().cloned().collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        hosts
    }

    /// Registers an agent: a new host gets new slots; a known one with its
    /// incarnation is simply seen; a known one with a new incarnation (its
    /// agent restarted and cleared its labs) loses its holders and labs.
    pub fn register(&self, register: Register) -> Result<Registered, PoolError> {
        if !valid_name(&register.name) {
            return Err(PoolError::BadName);
        }
        let existing = self.hosts().get(&register.name).cloned();
        let Some(host) = existing else {
            return self.add_host(register);
        };
        if host.slots.len() != register.slots {
            return Err(PoolError::SlotCount {
                name: register.name,
                before: host.slots.len(),
            });
        }
        let restarted = {
            let mut status = host.status();
            status.capabilities = register.capabilities;
            let restarted = status.incarnation != register.incarnation;
            status.incarnation = register.incarnation;
            restarted
        };
        if restarted {
            tracing::warn!(host = %host.name, "lab host registered with a new incarnation: its labs are gone; ending its holders");
            host.status().inventories.clear();
            let (coordinator, numbers) = (Arc::clone(&self.coordinator), host.numbers());
            tokio::spawn(async move {
                coordinator.end_holders(&numbers, EndReason::HostLost).await;
                for number in numbers {
                    coordinator.clear_slot(number).await;
                }
            });
        }
        self.seen(&host);
        Ok(Registered {
            slots: host.numbers(),
        })
    }

    fn add_host(&self, register: Register) -> Result<Registered, PoolError> {
        let total = self.coordinator.slot_count() + register.slots;
        if total > MAX_POOL_SLOTS {
            return Err(PoolError::TooManySlots(total));
        }
        let first = self.coordinator.slot_count() + 1;
        let epoch = self.epochs.load(Ordering::Relaxed);
        let host = Arc::new(AgentHost {
            name: register.name.clone(),
            slots: (first..first + register.slots)
                .map(|number| Arc::new(RemoteSlot::new(number, epoch)))
                .collect(),
            status: Mutex::new(HostStatus {
                incarnation: register.incarnation,
                capabilities: register.capabilities,
                last_seen: Instant::now(),
                offline_since: None,
                lost: false,
                inventories: BTreeMap::new(),
            }),
            online: watch::Sender::new(true),
            version: watch::Sender::new(1),
            epochs: Arc::clone(&self.epochs),
        });
        self.hosts()
            .insert(register.name.clone(), Arc::clone(&host));
        let numbers = self
            .coordinator
            .add_slots(register.slots, |number, observer| {
                let slot = Arc::clone(&host.slots[number - first]);
                let driver = RemoteSlotDriver {
                    host: Arc::clone(&host),
                    slot,
                };
                LabSlot::new(number, Arc::new(driver), observer)
            });
        tracing::info!(host = %register.name, slots = ?numbers, "lab host registered");
        Ok(Registered { slots: numbers })
    }

    /// The host `name` as incarnation `incarnation`, which was just heard.
    pub fn host(&self, name: &str, incarnation: &str) -> Result<Arc<AgentHost>, PoolError> {
        let host = self
            .hosts()
            .get(name)
            .cloned()
            .ok_or_else(|| PoolError::UnknownHost(name.to_string()))?;
        if host.status().incarnation != incarnation {
            return Err(PoolError::OtherIncarnation {
                name: name.to_string(),
            });
        }
        self.seen(&host);
        Ok(host)
    }

    fn seen(&self, host: &AgentHost) {
        let came_back = {
            let mut status = host.status();
            status.last_seen = Instant::now();
            let came_back = status.offline_since.take().is_some();
            if came_back {
                status.lost = false;
            }
            came_back
        };
        if came_back || !host.is_online() {
            tracing::info!(host = %host.name, "lab host is online again");
            host.online.send_replace(true);
            self.coordinator.set_online(&host.numbers(), true);
        }
    }

    /// Marks silent hosts offline and ends the holders of lost ones, once a
    /// second, until `stop`.
    pub async fn watch_liveness(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for host in self.all() {
                self.check(&host).await;
            }
        }
    }

    async fn check(&self, host: &AgentHost) {
        let (went_offline, lost) = {
            let mut status = host.status();
            let now = Instant::now();
            let went_offline =
                status.offline_since.is_none() && status.last_seen.elapsed() > self.liveness.lease;
            if went_offline {
                status.offline_since = Some(now);
            }
            let lost = !status.lost
                && status
                    .offline_since
                    .is_some_and(|since| now.duration_since(since) > self.liveness.grace);
            status.lost |= lost;
            (went_offline, lost)
        };
        if went_offline {
            tracing::warn!(host = %host.name, seconds = self.liveness.lease.as_secs(), "lab host is offline: its agent was silent for its lease");
            host.online.send_replace(false);
            self.coordinator.set_online(&host.numbers(), false);
        }
        if lost {
            let ended = self
                .coordinator
                .end_holders(&host.numbers(), EndReason::HostLost)
                .await;
            tracing::error!(host = %host.name, sessions = ended, "lab host lost: it stayed offline past --host-grace; its sessions ended");
        }
    }
}

/// Letters, digits, `.`, `-`, `_`; 1 to 64 of them.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}
