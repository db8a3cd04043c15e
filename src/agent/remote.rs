//! The coordinator's side of a lab agent's slot: [`RemoteSlotDriver`] turns
//! each slot action into a new desired state (with a new epoch) and waits
//! for the agent's report of that epoch.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::host::AgentHost;
use super::slot::RemoteSlot;
use super::wire::{SlotReport, WantedLab};
use crate::lab::inventory::Inventory;
use crate::lab::slot_driver::{OnFiles, SlotDriver, Started};
use crate::lab::upload::Upload;
use crate::lab::{BoxFuture, Health, LabError, LabFiles, LineSink};

/// A slot of a lab agent, driven from the coordinator (see the module
/// documentation). Every wait ends when the agent reports, when the holder
/// is cancelled, or when the host is lost (not merely offline: an agent
/// back within its grace picks the wait up).
pub struct RemoteSlotDriver {
    pub host: Arc<AgentHost>,
    pub slot: Arc<RemoteSlot>,
}

/// How a wait for a report ended.
enum Outcome {
    Reported(SlotReport),
    Cancelled,
    /// The host was lost, or the coordinator stops.
    Lost,
}

impl RemoteSlotDriver {
    /// Assigns `lab` (with `upload`) and tells the agent.
    fn assign(
        &self,
        lab: Option<WantedLab>,
        upload: Option<Arc<Upload>>,
        log: Option<Arc<dyn LineSink>>,
    ) -> u64 {
        let epoch = self.host.next_epoch();
        self.slot.assign(epoch, lab, upload, log);
        self.host.desired_changed();
        epoch
    }

    /// Waits for a report of `epoch` that `done` accepts (calling
    /// `on_booting` for a `booting` one).
    async fn wait_for(
        &self,
        epoch: u64,
        cancel: Option<&CancellationToken>,
        on_booting: &(dyn Fn(&LabFiles) + Send + Sync),
    ) -> Outcome {
        let mut reports = self.slot.reports();
        let mut reachable = self.host.reachable_watch();
        let mut booting_seen = false;
        loop {
            let report = reports.borrow_and_update().clone();
            match report {
                Some((reported, SlotReport::Booting { files }))
                    if reported == epoch && !booting_seen =>
                {
                    booting_seen = true;
                    on_booting(&files);
                }
                Some((reported, SlotReport::Booting { .. })) if reported == epoch => {}
                Some((reported, state)) if reported >= epoch => return Outcome::Reported(state),
                _ => {}
            }
            if !*reachable.borrow_and_update() {
                return Outcome::Lost;
            }
            let cancelled = async {
                match cancel {
                    Some(token) => token.cancelled().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = reports.changed() => if changed.is_err() { return Outcome::Lost },
                changed = reachable.changed() => if changed.is_err() { return Outcome::Lost },
                () = cancelled => return Outcome::Cancelled,
            }
        }
    }

    /// Asks for nothing to run and waits until the agent says so (or its
    /// host is offline or lost: it converges when it returns).
    async fn clear(&self) -> Result<(), LabError> {
        let epoch = self.assign(None, None, None);
        if !self.host.is_online() {
            // Nobody need wait for an offline host's teardown: it finds
            // nothing wanted when it returns, and tears down then.
            return Ok(());
        }
        match self.wait_for(epoch, None, &|_| {}).await {
            Outcome::Reported(SlotReport::Dirty { message }) => Err(LabError::Host {
                message,
                timed_out: false,
            }),
            Outcome::Reported(SlotReport::Failed { message, timed_out }) => {
                Err(LabError::Host { message, timed_out })
            }
            _ => Ok(()),
        }
    }

    fn lost(&self) -> LabError {
        LabError::Host {
            message: format!("lab host {} was lost", self.host.name),
            timed_out: false,
        }
    }

    async fn start_there(
        &self,
        upload: &Upload,
        cancel: &CancellationToken,
        log: Arc<dyn LineSink>,
        on_files: OnFiles<'_>,
    ) -> Result<Started, LabError> {
        let wanted = WantedLab {
            identity: upload.identity.to_string(),
            topology: upload.topology_name.clone(),
            reset: Vec::new(),
        };
        let epoch = self.assign(Some(wanted), Some(Arc::new(upload.clone())), Some(log));
        let outcome = self.wait_for(epoch, Some(cancel), on_files).await;
        match outcome {
            Outcome::Reported(SlotReport::Up {
                files,
                devices,
                inventory,
                built_by,
            }) => {
                self.host.remember_inventory(self.slot.number, inventory);
                Ok(Started {
                    files,
                    devices,
                    built_by,
                })
            }
            Outcome::Reported(SlotReport::Failed { message, timed_out }) => {
                Err(LabError::Host { message, timed_out })
            }
            Outcome::Reported(other) => Err(LabError::Host {
                message: format!(
                    "lab host {} reported {other:?} for a bring-up",
                    self.host.name
                ),
                timed_out: false,
            }),
            Outcome::Cancelled => {
                // The agent stops the bring-up and cleans up as its desired
                // state changes; the caller learns it is gone once it is.
                let _ = self.clear().await;
                Err(LabError::Cancelled)
            }
            Outcome::Lost => {
                // Whenever the agent comes back it finds nothing wanted
                // here, and tears down what it brought up.
                self.assign(None, None, None);
                Err(self.lost())
            }
        }
    }

    async fn reset_there(&self, args: &[String]) -> Result<(), LabError> {
        let Some(mut wanted) = self.slot.wanted() else {
            return Err(LabError::NotRunning);
        };
        wanted.reset = args.to_vec();
        let upload = self.slot.upload(self.slot.desired().epoch);
        let epoch = self.assign(Some(wanted), upload, None);
        match self.wait_for(epoch, None, &|_| {}).await {
            Outcome::Reported(SlotReport::Up { inventory, .. }) => {
                self.host.remember_inventory(self.slot.number, inventory);
                Ok(())
            }
            Outcome::Reported(SlotReport::Failed { message, timed_out }) => {
                Err(LabError::Host { message, timed_out })
            }
            Outcome::Reported(other) => Err(LabError::Host {
                message: format!("lab host {} reported {other:?} for a reset", self.host.name),
                timed_out: false,
            }),
            Outcome::Cancelled | Outcome::Lost => {
                self.assign(None, None, None);
                Err(self.lost())
            }
        }
    }
}

impl SlotDriver for RemoteSlotDriver {
    fn start<'a>(
        &'a self,
        upload: &'a Upload,
        cancel: &'a CancellationToken,
        log: Arc<dyn LineSink>,
        on_files: OnFiles<'a>,
    ) -> BoxFuture<'a, Result<Started, LabError>> {
        Box::pin(self.start_there(upload, cancel, log, on_files))
    }

    fn stop<'a>(&'a self, _files: &'a LabFiles) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(self.clear())
    }

    fn forget<'a>(&'a self, _files: &'a LabFiles) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.clear().await;
        })
    }

    /// The agent's latest report stands for the lab tool's answer: `started`
    /// while it reports the lab up for the current assignment and its host
    /// is online.
    fn check<'a>(&'a self, _files: &'a LabFiles) -> BoxFuture<'a, Result<Health, LabError>> {
        Box::pin(async move {
            if !self.host.is_online() {
                return Err(LabError::Host {
                    message: format!("lab host {} is offline", self.host.name),
                    timed_out: false,
                });
            }
            let current = self.slot.desired().epoch;
            let report = self.slot.last_report();
            let status = match report {
                Some((epoch, SlotReport::Up { .. })) if epoch == current => Some("started".into()),
                _ => None,
            };
            Ok(Health {
                status,
                version: self.host.capabilities().netlab_version,
            })
        })
    }

    fn reset<'a>(
        &'a self,
        _files: &'a LabFiles,
        args: &'a [String],
    ) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(self.reset_there(args))
    }

    fn inventory<'a>(&'a self, _files: &'a LabFiles) -> BoxFuture<'a, Result<Inventory, LabError>> {
        Box::pin(async move {
            self.host
                .inventory(self.slot.number)
                .ok_or(LabError::NotRunning)
        })
    }

    fn status(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let online = if self.host.is_online() {
                "online"
            } else {
                "offline"
            };
            Some(format!(
                "lab host {} ({online}), netlab {}",
                self.host.name,
                self.host.capabilities().netlab_version
            ))
        })
    }

    fn version(&self) -> String {
        self.host.capabilities().netlab_version
    }

    fn ssh_address(&self) -> Option<String> {
        let given = self.host.capabilities().ssh_address;
        Some(given.unwrap_or_else(|| self.host.name.clone()))
    }
}
