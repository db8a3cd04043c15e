//! How far the writer got: the highest event id it has tried to write,
//! which ids it could not, and the highest id up to which every event is on
//! disk. Callers wait here for their changes; the check for "already
//! written" is one atomic load, so status polls that have nothing to wait
//! for pay nothing.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::watch;

/// How many failed batches are remembered for callers still to look.
const FAILURES_KEPT: usize = 256;

#[derive(Debug)]
pub struct Commits {
    /// Every id up to this one has been tried (committed or failed).
    written: AtomicU64,
    /// The same number, for waiters.
    changed: watch::Sender<u64>,
    /// Recent batches that failed, with the reason.
    failures: Mutex<VecDeque<(RangeInclusive<u64>, String)>>,
    /// Every id up to this one is on disk.
    durable: watch::Sender<u64>,
    /// Why changes wait to be saved, while some do (the last failure).
    unsaved: Mutex<Option<String>>,
}

impl Commits {
    /// Starts after event `last_id`, which is already written.
    pub fn after(last_id: u64) -> Self {
        Commits {
            written: AtomicU64::new(last_id),
            changed: watch::Sender::new(last_id),
            failures: Mutex::default(),
            durable: watch::Sender::new(last_id),
            unsaved: Mutex::default(),
        }
    }

    /// Records the outcome of writing `ids`: `failure` says why it failed.
    /// A batch is written in order, after every earlier one that failed, so
    /// its success makes everything up to its end durable.
    pub fn finish(&self, ids: RangeInclusive<u64>, failure: Option<String>) {
        let through = *ids.end();
        *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = failure.clone();
        if failure.is_none() {
            self.durable.send_replace(through);
        }
        if let Some(why) = failure {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if failures.len() == FAILURES_KEPT {
                failures.pop_front();
            }
            failures.push_back((ids, why));
        }
        self.written.store(through, Ordering::Release);
        self.changed.send_replace(through);
    }

    /// Waits until every id in `ids` has been tried; the reason when one of
    /// them failed.
    pub async fn wait(&self, ids: RangeInclusive<u64>) -> Result<(), String> {
        if self.written.load(Ordering::Acquire) < *ids.end() {
            let mut receiver = self.changed.subscribe();
            // The sender lives as long as `self`: this cannot fail.
            let _ = receiver.wait_for(|&written| written >= *ids.end()).await;
        }
        self.failure_in(&ids)
    }

    /// Waits until every event up to `id` is on disk, however long the
    /// writer has to try (a full disk): for replies that must not report a
    /// change a crash could still undo.
    pub async fn durable(&self, id: u64) {
        let mut receiver = self.durable.subscribe();
        // The sender lives as long as `self`: this cannot fail.
        let _ = receiver.wait_for(|&durable| durable >= id).await;
    }

    /// Why changes wait to be saved, while some do.
    pub fn unsaved(&self) -> Option<String> {
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failure_in(&self, ids: &RangeInclusive<u64>) -> Result<(), String> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures
            .iter()
            .find(|(failed, _)| failed.start() <= ids.end() && ids.start() <= failed.end())
        {
            Some((_, why)) => Err(why.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_learns_whether_its_ids_were_written() {
        let commits = std::sync::Arc::new(Commits::after(3));
        assert_eq!(commits.wait(1..=3).await, Ok(()));
        let waiter = tokio::spawn({
            let commits = commits.clone();
            async move { commits.wait(5..=6).await }
        });
        commits.finish(4..=4, None);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "6 is not written yet");
        commits.finish(5..=7, Some("disk full".into()));
        assert_eq!(waiter.await.unwrap(), Err("disk full".into()));
        assert_eq!(commits.wait(4..=4).await, Ok(()), "4 was written before");
        commits.finish(8..=8, None);
        assert_eq!(commits.wait(8..=8).await, Ok(()));
    }

    #[tokio::test]
    async fn durable_waits_for_a_successful_batch_after_a_failed_one() {
        let commits = std::sync::Arc::new(Commits::after(1));
        commits.durable(1).await;
        commits.finish(2..=3, Some("disk full".into()));
        assert_eq!(commits.unsaved().as_deref(), Some("disk full"));
        let waiter = tokio::spawn({
            let commits = commits.clone();
            async move { commits.durable(3).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "3 was tried, not saved");
        // The retry writes 2..=3 first, with 4.
        commits.finish(4..=4, None);
        waiter.await.unwrap();
        assert_eq!(commits.unsaved(), None);
    }
}
