//! One set of deadlines for everything the coordinator must do on time.
//!
//! Shaped like mini-redis' `db.rs` expirations: entries are kept sorted by
//! `(instant, kind, key)` in a `BTreeSet`, so the earliest is always first and
//! equal instants stay distinct (the kind and key break the tie). A second
//! map remembers each key's current entry, so moving a deadline is two
//! `O(log n)` operations, never a scan.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Deadlines keyed by `K`, each of some kind `D`; at most one per key.
#[derive(Debug)]
pub struct Deadlines<D, K> {
    sorted: BTreeSet<(Instant, D, K)>,
    current: HashMap<K, (Instant, D)>,
}

impl<D, K> Default for Deadlines<D, K> {
    fn default() -> Self {
        Deadlines {
            sorted: BTreeSet::new(),
            current: HashMap::new(),
        }
    }
}

impl<D: Ord + Copy, K: Ord + Hash + Copy> Deadlines<D, K> {
    /// Sets (or, with `None`, clears) the deadline of `key`.
    pub fn set(&mut self, key: K, deadline: Option<(Instant, D)>) {
        if self.current.get(&key) == deadline.as_ref() {
            return;
        }
        if let Some((at, kind)) = self.current.remove(&key) {
            self.sorted.remove(&(at, kind, key));
        }
        if let Some((at, kind)) = deadline {
            self.sorted.insert((at, kind, key));
            self.current.insert(key, (at, kind));
        }
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<Instant> {
        self.sorted.first().map(|(at, _, _)| *at)
    }

    /// Removes and returns every deadline due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<(D, K)> {
        let mut due = Vec::new();
        while let Some(&(at, kind, key)) = self.sorted.first() {
            if at > now {
                break;
            }
            self.sorted.pop_first();
            self.current.remove(&key);
            due.push((kind, key));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn earliest_first_moves_and_clears() {
        let t0 = Instant::now();
        let mut deadlines = Deadlines::<u8, u32>::default();
        deadlines.set(1, Some((t0 + Duration::from_secs(5), 0)));
        deadlines.set(2, Some((t0 + Duration::from_secs(3), 0)));
        assert_eq!(deadlines.next(), Some(t0 + Duration::from_secs(3)));
        // Moving key 2 later leaves key 1 first; clearing key 1 leaves 2.
        deadlines.set(2, Some((t0 + Duration::from_secs(9), 1)));
        assert_eq!(deadlines.next(), Some(t0 + Duration::from_secs(5)));
        deadlines.set(1, None);
        assert_eq!(deadlines.next(), Some(t0 + Duration::from_secs(9)));
        assert!(deadlines.take_due(t0 + Duration::from_secs(8)).is_empty());
        assert_eq!(deadlines.take_due(t0 + Duration::from_secs(9)), [(1, 2)]);
        assert_eq!(deadlines.next(), None);
    }

    #[test]
    fn equal_instants_are_kept_apart_and_taken_together() {
        let at = Instant::now();
        let mut deadlines = Deadlines::<u8, u32>::default();
        for key in [3, 1, 2] {
            deadlines.set(key, Some((at, 0)));
        }
        assert_eq!(deadlines.take_due(at), [(0, 1), (0, 2), (0, 3)]);
    }
}
