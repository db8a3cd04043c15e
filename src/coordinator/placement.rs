//! Where a promoted session goes: a pure function of the free slots and
//! the lab the session declared first (`--placement fifo`, the default).
//!
//! The longest-waiting session is promoted, as always; placement only picks
//! its slot: the one that already runs (or keeps idle) its first declared
//! lab, so it gets that lab without a bring-up; else an empty one, so no
//! kept lab is torn down needlessly; else the one whose kept lab has been
//! idle longest (least likely to be asked for again).

use tokio::time::Instant;

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

/// The index of the slot the session whose first declared lab is `wanted`
/// goes to; `None` only when `free` is empty.
pub fn place(wanted: Option<&str>, free: &[FreeSlot<'_>]) -> Option<usize> {
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
}
