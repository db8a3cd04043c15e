//! The session queue as the server uses it: shared behind a mutex, with a
//! real clock, change notifications for long-polls, and a wake-up for the
//! eviction timer. The rules themselves live in [`crate::queue`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::queue::{Departed, Queue, SessionStatus, Standing, Timeouts};

/// Shared session state. All methods are short and never wait on I/O; the
/// std mutex is never held across an `.await`.
pub struct Sessions {
    queue: Mutex<Queue>,
    /// Wakes the eviction timer when the earliest deadline may have moved
    /// earlier (a session joined, or a hand-over finished).
    timer: Notify,
    /// Bumped whenever some session's standing may have changed.
    changes: watch::Sender<u64>,
}

impl Sessions {
    pub fn new(timeouts: Timeouts) -> Self {
        Sessions {
            queue: Mutex::new(Queue::new(timeouts)),
            timer: Notify::new(),
            changes: watch::Sender::new(0),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue has no invariant a panicking reader could break halfway.
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Opens a session at the tail of the queue.
    pub fn create(&self) -> (Uuid, Standing) {
        let id = Uuid::new_v4();
        let standing = self.queue().join(id, Instant::now());
        self.timer.notify_one();
        (id, standing)
    }

    /// Marks the session as seen and tells where it stands.
    pub fn touch(&self, id: &Uuid) -> Option<Standing> {
        self.queue().touch(id, Instant::now())
    }

    /// The head of the queue; looking does not keep it alive.
    pub fn head(&self) -> Option<(Uuid, Standing)> {
        self.queue().head()
    }

    /// Number of sessions, active one included.
    pub fn count(&self) -> usize {
        self.queue().count()
    }

    /// Marks the session as busy until the returned guard is dropped, so a
    /// bring-up longer than the active timeout does not get it evicted.
    pub fn begin_request(&self, id: &Uuid) -> Option<(Standing, RequestGuard<'_>)> {
        let standing = self.queue().begin_request(id, Instant::now())?;
        Some((
            standing,
            RequestGuard {
                sessions: self,
                id: *id,
            },
        ))
    }

    /// Waits until the session's standing differs from what it is now, or
    /// `limit` passes, or `stop` completes. An active session has nothing
    /// to wait for and is answered at once. `None` when the session is gone.
    pub async fn wait_for_change(
        &self,
        id: &Uuid,
        limit: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Standing> {
        // Subscribe before the first look, so no change can slip between.
        let mut changes = self.changes.subscribe();
        let (start, _busy) = self.begin_request(id)?;
        if start.status == SessionStatus::Active {
            return Some(start);
        }
        let give_up = tokio::time::sleep(limit);
        tokio::pin!(give_up, stop);
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return self.touch(id);
                    }
                    let now = self.touch(id)?;
                    if now != start {
                        return Some(now);
                    }
                }
                _ = &mut give_up => return self.touch(id),
                _ = &mut stop => return self.touch(id),
            }
        }
    }

    /// Removes a session. A departed active session starts a hand-over that
    /// [`Sessions::promote`] ends.
    pub fn leave(&self, id: &Uuid) -> Option<Departed> {
        let departed = self.queue().leave(id);
        if departed.is_some() {
            self.announce_change();
        }
        departed
    }

    /// Ends a hand-over: the head becomes active.
    pub fn promote(&self) {
        self.queue().promote(Instant::now());
        self.timer.notify_one();
        self.announce_change();
    }

    /// Sessions due for eviction now.
    pub fn expired(&self) -> Vec<Uuid> {
        self.queue().expired(Instant::now())
    }

    /// When the next session would expire, if nobody is seen before then.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue().next_deadline()
    }

    /// Completes when the eviction timer should look again.
    pub async fn deadline_may_have_moved(&self) {
        self.timer.notified().await;
    }

    fn announce_change(&self) {
        self.changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}

/// See [`Sessions::begin_request`].
pub struct RequestGuard<'a> {
    sessions: &'a Sessions,
    id: Uuid,
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.sessions.queue().end_request(&self.id, Instant::now());
        // The session's deadline exists again and may be the earliest.
        self.sessions.timer.notify_one();
    }
}
