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

use super::host::Registration;
pub use super::host::{AgentHost, Liveness};
use super::remote::RemoteSlotDriver;
use super::wire::{Register, Registered, RunningLab, WantedLab};
use crate::coordinator::Coordinator;
use crate::domain::events::EndReason;
use crate::lab::ssh_config::is_plain;
use crate::lab::{LabObserver, LabSlot};
use crate::store::{StoredHost, StoredLab};

/// Slot `n`'s labs use netlab's multilab id `n`, whose management subnet is
/// `192.168.n.0/24`; slot 1 runs netlab's default instance, on its default
/// `192.168.121.0/24` (networklab 26.10, `netsim/extra/multilab`,
/// `defaults.addressing.mgmt`). So slot 121 would share slot 1's subnet:
/// a pool has at most 120 slots.
pub const MAX_POOL_SLOTS: usize = 120;

/// The most slots one lab host offers (as `--lab-slots` allows).
pub const MAX_HOST_SLOTS: usize = 64;

/// Why an agent's request is refused.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("unknown lab host {0}: register first")]
    UnknownHost(String),
    #[error("lab host {name} is registered with another incarnation: register again")]
    OtherIncarnation { name: String },
    #[error(
        "lab host {name} has {before} slots in this pool: register it with as many, or under another name"
    )]
    SlotCount { name: String, before: usize },
    #[error("the pool would have {0} slots; netlab's multilab ids allow {MAX_POOL_SLOTS}")]
    TooManySlots(usize),
    #[error("a lab host's name must be 1 to 64 letters, digits, '.', '-' or '_'")]
    BadName,
    #[error("a lab host offers 1 to {MAX_HOST_SLOTS} slots, not {0}")]
    BadSlotCount(usize),
    #[error(
        "an SSH address is a host name or an IP address (letters, digits, '.', '-', '_', ':', '%')"
    )]
    BadSshAddress,
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
        if !(1..=MAX_HOST_SLOTS).contains(&register.slots) {
            return Err(PoolError::BadSlotCount(register.slots));
        }
        if (register.capabilities.ssh_address.as_deref()).is_some_and(|address| !is_plain(address))
        {
            return Err(PoolError::BadSshAddress);
        }
        // Held while a new host is added, so two agents of one name cannot
        // both add it.
        let mut hosts = self.hosts();
        let Some(host) = hosts.get(&register.name).cloned() else {
            return self.add_host(&mut hosts, register);
        };
        drop(hosts);
        if host.slots.len() != register.slots {
            return Err(PoolError::SlotCount {
                name: register.name,
                before: host.slots.len(),
            });
        }
        match host.reregister(&register) {
            Registration::Same => {}
            Registration::Adopted => self.readopt(&host, &register.running),
            Registration::Restarted => {
                tracing::warn!(host = %host.name, "lab host registered with a new incarnation: its labs are gone; ending its holders");
                // Only the sessions that hold its slots now; its slots take
                // new sessions once their old labs are cleared.
                let (coordinator, numbers) = (Arc::clone(&self.coordinator), host.numbers());
                let holders = coordinator.holders(&numbers);
                let name = host.name.clone();
                coordinator.set_online(&name, &numbers, false);
                host.seen();
                tokio::spawn(async move {
                    coordinator
                        .end_sessions(&holders, EndReason::HostLost)
                        .await;
                    for &number in &numbers {
                        coordinator.clear_slot(number).await;
                    }
                    coordinator.set_online(&name, &numbers, true);
                });
                return Ok(Registered {
                    slots: host.numbers(),
                });
            }
        }
        self.seen(&host);
        Ok(Registered {
            slots: host.numbers(),
        })
    }

    /// The first registration of a host since this coordinator started: a
    /// slot whose re-adopted lab the agent no longer runs is cleared (its
    /// holder keeps the slot and brings the lab up afresh); every other
    /// lab the agent runs goes as it converges to the desired state.
    fn readopt(&self, host: &AgentHost, running: &[RunningLab]) {
        for slot in &host.slots {
            let Some(wanted) = slot.wanted() else {
                continue;
            };
            let runs = (running.iter())
                .any(|lab| lab.slot == slot.number && lab.identity == wanted.identity);
            if runs {
                tracing::info!(host = %host.name, slot = slot.number, "re-adopted a lab the agent kept running");
            } else {
                tracing::warn!(host = %host.name, slot = slot.number, "the agent no longer runs the slot's lab; clearing it");
                let (coordinator, number) = (Arc::clone(&self.coordinator), slot.number);
                tokio::spawn(async move { coordinator.clear_slot(number).await });
            }
        }
    }

    fn add_host(
        &self,
        hosts: &mut HashMap<String, Arc<AgentHost>>,
        register: Register,
    ) -> Result<Registered, PoolError> {
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
        hosts.insert(name.clone(), Arc::clone(&host));
        let numbers = (self.coordinator).add_slots(&name, count, remote_slots(&host));
        tracing::info!(host = %name, slots = ?numbers, "lab host registered");
        Ok(Registered { slots: numbers })
    }

    /// Puts back the hosts a previous run had, offline until their agents
    /// register again, with the labs of `labs` (those re-adopted) wanted in
    /// their slots. A host whose numbers no longer follow this host's own
    /// slots (`--lab-slots` changed) is left out, with every host after it.
    /// Call before [`Coordinator::restore`].
    pub fn restore(&self, stored: &[StoredHost], labs: &[StoredLab]) {
        let mut hosts = self.hosts();
        for stored in stored {
            let first = self.coordinator.slot_count() + 1;
            if stored.slots.first() != Some(&first) {
                tracing::warn!(host = %stored.name, "the stored lab host's slot numbers no longer follow this host's slots; it registers as new");
                break;
            }
            let wanted: Vec<(usize, WantedLab)> = (labs.iter())
                .filter(|lab| stored.slots.contains(&lab.slot))
                .map(|lab| {
                    let wanted = WantedLab {
                        identity: lab.identity.clone(),
                        topology: lab.topology.clone(),
                        reset: Vec::new(),
                    };
                    (lab.slot, wanted)
                })
                .collect();
            let count = stored.slots.len();
            let host = Arc::new(AgentHost::restored(
                stored.name.clone(),
                first..first + count,
                &wanted,
                Arc::clone(&self.epochs),
            ));
            hosts.insert(stored.name.clone(), Arc::clone(&host));
            (self.coordinator).restore_slots(&stored.name, count, remote_slots(&host));
            tracing::info!(host = %stored.name, slots = ?stored.slots, labs = wanted.len(), "lab host of the previous run put back; waiting for its agent");
        }
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
            self.coordinator
                .set_online(&host.name, &host.numbers(), true);
        }
    }

    /// Marks silent hosts offline and ends the holders of lost ones, once a
    /// second, until `stop`.
    pub async fn watch_liveness(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    for host in self.all() {
                        host.stop_waiting();
                    }
                    return;
                }
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
            self.coordinator
                .set_online(&host.name, &host.numbers(), false);
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

/// Makes the coordinator's slots of `host`, each driven through its agent.
fn remote_slots(host: &Arc<AgentHost>) -> impl Fn(usize, Arc<dyn LabObserver>) -> LabSlot {
    move |number, observer| {
        let slot = (host.slots.iter())
            .find(|slot| slot.number == number)
            .expect("the host has the coordinator's slot numbers");
        let driver = RemoteSlotDriver {
            host: Arc::clone(host),
            slot: Arc::clone(slot),
        };
        LabSlot::new(number, Arc::new(driver), observer)
    }
}

/// Letters, digits, `.`, `-`, `_`; 1 to 64 of them.
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}
