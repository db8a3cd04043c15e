//! Who is promoted next and where: a pure function of the waiting
//! sessions, the free slots and the policy (`--placement`).
//!
//! Under `fifo` (the default) the longest-waiting session is promoted, as
//! always. Under `batch` a later session whose first declared lab a free
//! slot keeps up may go first, so a kept lab serves every suite that
//! wants it before the slot switches labs; each session it overtakes
//! counts it, and nobody is overtaken more than `max_bypass` times, so
//! every session waits at most that many extra turns.
//!
//! Placement then picks the slot: the one that already runs (or keeps
//! idle) the session's first declared lab, so it gets that lab without a
//! bring-up; else an empty one, so no kept lab is torn down needlessly;
//! else the one whose kept lab has been idle longest (least likely to be
//! asked for again).

use tokio::time::Instant;

/// Which session a free slot goes to (`--placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// The longest-waiting session, always.
    #[default]
    Fifo,
    /// A later session whose first declared lab a free slot keeps may go
    /// ahead, as long as none of those it overtakes has been overtaken
    /// `max_bypass` times already (`--max-bypass`, at least 1).
    Batch { max_bypass: u32 },
}

/// A waiting session, as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting<'a> {
    /// The identity of the lab it declared first, if it declared one.
    pub wanted: Option<&'a str>,
    /// How many later sessions were promoted ahead of it.
    pub overtaken: u32,
}

/// A slot free for the next session, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSlot<'a> {
    /// Its index (from 0).
    pub index: usize,
    /// The identity of the lab it runs or keeps, if any.
    pub lab: Option<&'a str>,
    /// Since when its lab has been kept idle for a next session.
    pub kept_since: Option<Instant>,
}

/// The next promotion: the waiting session at `waiting` (its index among
/// the waiting, 0 = longest-waiting) goes to slot `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promotion {
    pub waiting: usize,
    pub slot: usize,
}

/// The next promotion under `policy`, or `None` when nobody waits or no
/// slot is free. `waiting` is in line order; under `fifo` only its first
/// entry is looked at.
pub fn next_promotion(
    policy: Policy,
    waiting: &[Waiting<'_>],
    free: &[FreeSlot<'_>],
) -> Option<Promotion> {
    let head = waiting.first()?;
    let runs = |wanted: Option<&str>| {
        wanted.and_then(|wanted| free.iter().find(|slot| slot.lab == Some(wanted)))
    };
    if let Policy::Batch { max_bypass } = policy
        && runs(head.wanted).is_none()
    {
        // Candidates behind the head, as far as nobody passed has used up
        // their bound.
        let mut passed_ok = true;
        for (index, session) in waiting.iter().enumerate().skip(1) {
            passed_ok &= waiting[index - 1].overtaken < max_bypass;
            if !passed_ok {
                break;
            }
            if let Some(slot) = runs(session.wanted) {
                return Some(Promotion {
                    waiting: index,
                    slot: slot.index,
                });
            }
        }
    }
    place(head.wanted, free).map(|slot| Promotion { waiting: 0, slot })
}

/// The index of the slot the session whose first declared lab is `wanted`
/// goes to; `None` only when `free` is empty.
fn place(wanted: Option<&str>, free: &[FreeSlot<'_>]) -> Option<usize> {
    let runs_wanted = wanted.and_then(|wanted| free.iter().find(|slot| slot.lab == Some(wanted)));
    let empty = || free.iter().find(|slot| slot.lab.is_none());
    // A slot with a lab nobody keeps (kept_since unset) counts as idle
    // since the beginning: it is the first to give up.
    let idle_longest = || free.iter().min_by_key(|slot| slot.kept_since);
    runs_wanted
        .or_else(empty)
        .or_else(idle_longest)
        .map(|slot| slot.index)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn slot(index: usize, lab: Option<&str>, kept_for: Option<u64>, now: Instant) -> FreeSlot<'_> {
        FreeSlot {
            index,
            lab,
            kept_since: kept_for.map(|seconds| now - Duration::from_secs(seconds)),
        }
    }

    #[test]
    fn the_slot_running_the_wanted_lab_comes_first_then_an_empty_one_then_the_longest_idle() {
        let now = Instant::now();
        let free = [
            slot(0, Some("x"), Some(10), now),
            slot(1, None, None, now),
            slot(2, Some("y"), Some(50), now),
        ];
        assert_eq!(place(Some("y"), &free), Some(2));
        assert_eq!(place(Some("z"), &free), Some(1));
        assert_eq!(place(None, &free), Some(1));
        assert_eq!(
            place(Some("z"), &[free[0].clone(), free[2].clone()]),
            Some(2)
        );
        assert_eq!(place(Some("x"), &[]), None);
    }

    proptest! {
        /// Whatever the slots hold: a free slot is always chosen, the
        /// wanted lab's slot whenever one runs it, and an empty slot before
        /// any slot whose lab would be torn down.
        #[test]
        fn placement_prefers_warmth_then_emptiness(
            labs in proptest::collection::vec((proptest::option::of(0u8..4), proptest::option::of(0u64..100)), 1..6),
            wanted in proptest::option::of(0u8..4),
        ) {
            let now = Instant::now() + Duration::from_secs(1000);
            let names: Vec<Option<String>> = labs.iter().map(|(lab, _)| lab.map(|n| n.to_string())).collect();
            let free: Vec<FreeSlot<'_>> = labs
                .iter()
                .enumerate()
                .map(|(index, (_, kept))| slot(index, names[index].as_deref(), *kept, now))
                .collect();
            let wanted = wanted.map(|n| n.to_string());
            let chosen = place(wanted.as_deref(), &free).expect("a slot is free");
            prop_assert!(chosen < free.len());
            if wanted.is_some() && free.iter().any(|slot| slot.lab == wanted.as_deref()) {
                prop_assert_eq!(free[chosen].lab, wanted.as_deref());
            } else if free.iter().any(|slot| slot.lab.is_none()) {
                prop_assert_eq!(free[chosen].lab, None);
            }
        }
    }

    /// One step of a random history: a session arrives wanting lab
    /// `Some(n)` (or declares nothing), or the holder of the `n`-th busy
    /// slot (modulo their number) leaves, its slot keeping its lab.
    #[derive(Debug, Clone)]
    enum Step {
        Arrive(Option<u8>),
        Leave(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::option::of(0u8..3).prop_map(Step::Arrive),
            (0usize..8).prop_map(Step::Leave),
        ]
    }

    /// A line and its slots driven only by [`next_promotion`] and the real
    /// [`crate::queue::Queue`], with instant hand-overs.
    struct Host {
        policy: Policy,
        line: crate::queue::Queue,
        wanted: std::collections::HashMap<crate::session_id::SessionId, Option<String>>,
        arrivals: Vec<crate::session_id::SessionId>,
        /// Per slot: its holder and the lab it runs or keeps.
        slots: Vec<(
            Option<crate::session_id::SessionId>,
            Option<String>,
            Option<Instant>,
        )>,
        promoted: Vec<crate::session_id::SessionId>,
        most_overtaken: u32,
        now: Instant,
    }

    impl Host {
        fn new(policy: Policy, slots: usize) -> Host {
            let timeouts = crate::queue::Timeouts {
                active: Duration::from_secs(300),
                waiting: Duration::from_secs(300),
                claim: Duration::from_secs(300),
                max_hold: None,
            };
            Host {
                policy,
                line: crate::queue::Queue::new(timeouts, slots),
                wanted: Default::default(),
                arrivals: Vec::new(),
                slots: vec![(None, None, None); slots],
                promoted: Vec::new(),
                most_overtaken: 0,
                now: Instant::now(),
            }
        }

        fn arrive(&mut self, wanted: Option<u8>) {
            let id = crate::session_id::SessionId::new();
            self.line.join(id, self.now, None, ());
            self.wanted.insert(id, wanted.map(|n| n.to_string()));
            self.arrivals.push(id);
            self.fill();
        }

        /// The holder of the `pick`-th busy slot leaves; false if none holds one.
        fn leave(&mut self, pick: usize) -> bool {
            let busy: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].0.is_some())
                .collect();
            if busy.is_empty() {
                return false;
            }
            let index = busy[pick % busy.len()];
            let holder = self.slots[index].0.take().expect("busy");
            self.line.leave(&holder);
            self.now += Duration::from_secs(1);
            self.slots[index].2 = Some(self.now);
            self.fill();
            true
        }

        fn fill(&mut self) {
            loop {
                let waiting: Vec<_> = self.line.waiting().collect();
                let view: Vec<Waiting<'_>> = waiting
                    .iter()
                    .map(|(id, overtaken)| Waiting {
                        wanted: self.wanted[id].as_deref(),
                        overtaken: *overtaken,
                    })
                    .collect();
                let free: Vec<FreeSlot<'_>> = (self.slots.iter().enumerate())
                    .filter(|(_, (holder, _, _))| holder.is_none())
                    .map(|(index, (_, lab, since))| FreeSlot {
                        index,
                        lab: lab.as_deref(),
                        kept_since: *since,
                    })
                    .collect();
                let Some(chosen) = next_promotion(self.policy, &view, &free) else {
                    return;
                };
                let (id, _) = waiting[chosen.waiting];
                let overtaken = self.line.promote(&id, self.now, false).expect("it waits");
                for (_, times) in overtaken {
                    self.most_overtaken = self.most_overtaken.max(times);
                }
                self.slots[chosen.slot] = (Some(id), self.wanted[&id].clone(), None);
                self.promoted.push(id);
            }
        }
    }

    proptest! {
        /// Random arrivals, declarations and departures, then everyone
        /// leaves in turn: under `fifo` sessions are promoted in arrival
        /// order; under `batch` nobody is overtaken more than K times; under
        /// both everyone is promoted exactly once.
        #[test]
        fn fifo_keeps_arrival_order_and_batch_bounds_every_bypass(
            slots in 1usize..4,
            max_bypass in 1u32..5,
            batch in any::<bool>(),
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let policy = if batch { Policy::Batch { max_bypass } } else { Policy::Fifo };
            let mut host = Host::new(policy, slots);
            for step in steps {
                match step {
                    Step::Arrive(wanted) => host.arrive(wanted),
                    Step::Leave(pick) => { host.leave(pick); }
                }
            }
            while host.leave(0) {}
            prop_assert_eq!(host.line.count(), 0, "everyone was promoted and left");
            let mut sorted = host.promoted.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), host.arrivals.len(), "promoted once each");
            match policy {
                Policy::Fifo => {
                    prop_assert_eq!(&host.promoted, &host.arrivals);
                    prop_assert_eq!(host.most_overtaken, 0);
                }
                Policy::Batch { max_bypass } => prop_assert!(host.most_overtaken <= max_bypass),
            }
        }
    }

    /// The figure: 12 suites over three labs arriving interleaved
    /// (X Y Z X Y Z …) on one slot. Bounded bypass limits grouping: K = 2
    /// needs 6 bring-ups, K = 6 groups them all (3).
    #[test]
    fn on_one_slot_batch_groups_interleaved_suites_as_far_as_its_bound_allows() {
        let bring_ups = |policy| {
            let mut host = Host::new(policy, 1);
            for n in 0..12u8 {
                host.arrive(Some(n % 3));
            }
            while host.leave(0) {}
            let labs: Vec<_> = host
                .promoted
                .iter()
                .map(|id| host.wanted[id].clone())
                .collect();
            labs.windows(2).filter(|pair| pair[0] != pair[1]).count() + 1
        };
        assert_eq!(bring_ups(Policy::Fifo), 12);
        assert_eq!(bring_ups(Policy::Batch { max_bypass: 2 }), 6);
        assert_eq!(bring_ups(Policy::Batch { max_bypass: 6 }), 3);
    }
}
