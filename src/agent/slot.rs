//! One slot of a lab agent as the coordinator keeps it: its current
//! assignment (the desired state, with the upload the agent fetches), the
//! agent's latest report, and where the bring-up output goes. Shared by the
//! slot's driver ([`super::remote`]) and the agents' routes.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::wire::{SlotDesired, SlotReport, WantedLab};
use crate::lab::LineSink;
use crate::lab::upload::Upload;

/// One slot of an agent, as the coordinator and the agent routes share it.
pub struct RemoteSlot {
    /// Pool-wide number (also its netlab multilab id).
    pub number: usize,
    desired: Mutex<Assignment>,
    /// The agent's latest accepted report: (epoch, state).
    reports: watch::Sender<Option<(u64, SlotReport)>>,
    /// Where the bring-up output of the current assignment goes.
    log: Mutex<Option<(u64, Arc<dyn LineSink>)>>,
}

/// What the slot should run, and the files an agent fetches for it.
struct Assignment {
    desired: SlotDesired,
    upload: Option<Arc<Upload>>,
}

/// Why a report was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Stale {
    /// Its epoch is not the slot's current assignment.
    Epoch { reported: u64, current: u64 },
}

impl RemoteSlot {
    pub fn new(number: usize, epoch: u64) -> Self {
        RemoteSlot {
            number,
            desired: Mutex::new(Assignment {
                desired: SlotDesired {
                    slot: number,
                    epoch,
                    lab: None,
                },
                upload: None,
            }),
            reports: watch::Sender::new(None),
            log: Mutex::new(None),
        }
    }

    pub fn desired(&self) -> SlotDesired {
        self.assignment().desired.clone()
    }

    /// The upload of assignment `epoch`, while it is the current one.
    pub fn upload(&self, epoch: u64) -> Option<Arc<Upload>> {
        let assignment = self.assignment();
        (assignment.desired.epoch == epoch)
            .then(|| assignment.upload.clone())
            .flatten()
    }

    /// Takes the agent's report of `epoch` when that is the slot's current
    /// assignment; a report of any other epoch (older: stale; newer: never
    /// handed out) is refused.
    pub fn report(&self, epoch: u64, state: SlotReport) -> Result<(), Stale> {
        let current = self.assignment().desired.epoch;
        if epoch != current {
            return Err(Stale::Epoch {
                reported: epoch,
                current,
            });
        }
        // The agent sends `booting` on its own, so it may arrive after the
        // outcome of the same bring-up: it must not replace it.
        self.reports.send_if_modified(|last| {
            let late = matches!(state, SlotReport::Booting { .. })
                && last.as_ref().is_some_and(|(reported, before)| {
                    *reported == epoch && !matches!(before, SlotReport::Booting { .. })
                });
            if !late {
                *last = Some((epoch, state));
            }
            !late
        });
        Ok(())
    }

    /// Bring-up output of assignment `epoch` (dropped when not current).
    pub fn log_lines(&self, epoch: u64, lines: &[String]) {
        let log = self.log.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some((current, sink)) = log.as_ref()
            && *current == epoch
        {
            for line in lines {
                sink.line(line);
            }
        }
    }

    fn assignment(&self) -> std::sync::MutexGuard<'_, Assignment> {
        self.desired
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Sets assignment `epoch`: `lab` with its `upload`, its bring-up
    /// output going to `log`.
    pub fn assign(
        &self,
        epoch: u64,
        lab: Option<WantedLab>,
        upload: Option<Arc<Upload>>,
        log: Option<Arc<dyn LineSink>>,
    ) {
        let mut assignment = self.assignment();
        assignment.desired = SlotDesired {
            slot: self.number,
            epoch,
            lab,
        };
        assignment.upload = upload;
        *self.log.lock().unwrap_or_else(|poison| poison.into_inner()) =
            log.map(|sink| (epoch, sink));
    }

    /// The lab that is wanted now, if any.
    pub fn wanted(&self) -> Option<WantedLab> {
        self.assignment().desired.lab.clone()
    }

    /// The agent's reports as they are taken.
    pub fn reports(&self) -> watch::Receiver<Option<(u64, SlotReport)>> {
        self.reports.subscribe()
    }

    /// The agent's latest taken report: (epoch, state).
    pub fn last_report(&self) -> Option<(u64, SlotReport)> {
        self.reports.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_older_than_the_assignment_is_refused_and_a_current_one_taken() {
        let slot = RemoteSlot::new(3, 10);
        slot.assign(12, None, None, None);
        assert_eq!(
            slot.report(11, SlotReport::Down),
            Err(Stale::Epoch {
                reported: 11,
                current: 12
            })
        );
        assert!(slot.last_report().is_none());
        assert_eq!(slot.report(12, SlotReport::Down), Ok(()));
        assert!(matches!(slot.last_report(), Some((12, SlotReport::Down))));
        // A `booting` of the same epoch arriving after its outcome is dropped.
        let files = crate::lab::LabFiles {
            dir: "/w".into(),
            netlab_dir: "/w/x".into(),
        };
        assert_eq!(slot.report(12, SlotReport::Booting { files }), Ok(()));
        assert!(matches!(slot.last_report(), Some((12, SlotReport::Down))));
        // Only the current assignment's upload is handed out.
        assert!(slot.upload(11).is_none());
    }
}
