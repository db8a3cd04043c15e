//! The lab hosts of the pool as the coordinator sees them: which agents
//! registered, with which incarnation and slots, whether each is online.
//!
//! An agent silent for the lease (`--agent-lease`) is marked offline: its
//! slots get no new holder. Silent past the grace (`--host-grace`) after
//! that, its holders' sessions end with reason `host_lost` and its slots'
//! labs are given up. If the same incarnation comes back, it is online
//! again; a new incarnation of a known host (its agent restarted, its labs
//! are gone) ends its holders at once.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

pub use super::host::{AgentHost, Liveness};
use super::remote::RemoteSlotDriver;
use super::wire::{Register, Registered};
use crate::coordinator::Coordinator;
use crate::domain::events::EndReason;
use crate::lab::LabSlot;

/// netlab's multilab ids run from 1 to 200 (networklab 26.10,
/// `netsim/extra/multilab`): a pool has at most that many slots.
pub const MAX_POOL_SLOTS: usize = 200;

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
        if host.reregister(register) {
            tracing::warn!(host = %host.name, "lab host registered with a new incarnation: its labs are gone; ending its holders");
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
        let (name, count) = (register.name.clone(), register.slots);
        let host = Arc::new(AgentHost::new(
            register,
            first..first + count,
            Arc::clone(&self.epochs),
        ));
        self.hosts().insert(name.clone(), Arc::clone(&host));
        let numbers = self
            .coordinator
            .add_slots(&name, count, |number, observer| {
                let slot = Arc::clone(&host.slots[number - first]);
                let driver = RemoteSlotDriver {
                    host: Arc::clone(&host),
                    slot,
                };
                LabSlot::new(number, Arc::new(driver), observer)
            });
        tracing::info!(host = %name, slots = ?numbers, "lab host registered");
        Ok(Registered { slots: numbers })
    }

    /// The host `name` as incarnation `incarnation`, which was just heard.
    pub fn host(&self, name: &str, incarnation: &str) -> Result<Arc<AgentHost>, PoolError> {
        let host = self
            .hosts()
            .get(name)
            .cloned()
            .ok_or_else(|| PoolError::UnknownHost(name.to_string()))?;
        if !host.is_incarnation(incarnation) {
            return Err(PoolError::OtherIncarnation {
                name: name.to_string(),
            });
        }
        self.seen(&host);
        Ok(host)
    }

    fn seen(&self, host: &AgentHost) {
        if host.seen() {
            tracing::info!(host = %host.name, "lab host is online again");
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
        let (went_offline, lost) = host.check(self.liveness);
        if went_offline {
            tracing::warn!(host = %host.name, seconds = self.liveness.lease.as_secs(), "lab host is offline: its agent was silent for its lease");
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
