//! How each promoted session got its first lab, read from the event
//! stream alone: `cold` (its own request ran `netlab up`), `warm` (a lab
//! kept from an earlier session was handed over) or `preboot` (the lab its
//! declaration started at its promotion). Counts the bring-ups that were
//! not pre-boots and the pre-boots nobody used, and times each path from
//! the promotion to the session holding its lab.

use std::collections::HashMap;
use std::time::SystemTime;

use metrics::{counter, histogram};

use super::{COLD_BRING_UPS, TIME_TO_LAB, UNUSED_PREBOOTS};
use crate::domain::events::{Event, EventKind};
use crate::lab::LabChange;
use crate::session_id::SessionId;

/// A slot's pre-boot, as far as the events told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preboot {
    Starting,
    Up,
}

/// What is known of a slot's holder since its promotion.
#[derive(Debug)]
struct Holding {
    session: SessionId,
    promoted: SystemTime,
    preboot: Option<Preboot>,
    /// Its first lab is up for it: timed already.
    reached: bool,
}

/// Per slot (from 1), its current holder.
#[derive(Debug, Default)]
pub struct LabPaths(HashMap<usize, Holding>);

impl LabPaths {
    pub fn record(&mut self, event: &Event) {
        match &event.kind {
            EventKind::SessionPromoted { session, slot, .. } => {
                let holding = Holding {
                    session: *session,
                    promoted: event.at,
                    preboot: None,
                    reached: false,
                };
                self.0.insert(*slot, holding);
            }
            EventKind::SessionMoved { from, to, .. } => {
                if let Some(holding) = self.0.remove(from) {
                    self.0.insert(*to, holding);
                }
            }
            EventKind::PrebootStarted { slot, .. } => {
                if let Some(holding) = self.0.get_mut(slot) {
                    holding.preboot = Some(Preboot::Starting);
                }
            }
            EventKind::SessionEnded { session, .. } => {
                self.0.retain(|_, holding| {
                    let leaves = holding.session == *session;
                    // Booting or up, it never served its session.
                    if leaves && holding.preboot.is_some() {
                        counter!(UNUSED_PREBOOTS).increment(1);
                    }
                    !leaves
                });
            }
            EventKind::Lab { slot, change, .. } => self.lab_changed(*slot, change, event.at),
            _ => {}
        }
    }

    fn lab_changed(&mut self, slot: usize, change: &LabChange, at: SystemTime) {
        let Some(holding) = self.0.get_mut(&slot) else {
            // A bring-up with nobody promoted into the slot (none today)
            // is still a cold one.
            if matches!(change, LabChange::Up { .. }) {
                counter!(COLD_BRING_UPS).increment(1);
            }
            return;
        };
        let path = match (change, holding.preboot) {
            // The pre-boot's own bring-up.
            (LabChange::Up { .. }, Some(Preboot::Starting)) => {
                holding.preboot = Some(Preboot::Up);
                return;
            }
            (LabChange::Failed { .. }, Some(Preboot::Starting)) => {
                // Its verdict goes to the session's first request: used.
                holding.preboot = None;
                return;
            }
            // The session asked for another lab first.
            (LabChange::Starting { .. }, Some(Preboot::Up)) => {
                counter!(UNUSED_PREBOOTS).increment(1);
                holding.preboot = None;
                return;
            }
            (LabChange::Up { .. }, _) => {
                counter!(COLD_BRING_UPS).increment(1);
                "cold"
            }
            (LabChange::Attached { .. }, Some(Preboot::Up)) => {
                holding.preboot = None;
                "preboot"
            }
            (LabChange::Attached { warm: true, .. }, _) => "warm",
            _ => return,
        };
        if !std::mem::replace(&mut holding.reached, true) {
            let after = at.duration_since(holding.promoted).unwrap_or_default();
            histogram!(TIME_TO_LAB, "path" => path).record(after.as_secs_f64());
        }
    }
}
