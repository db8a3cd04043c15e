//! Typed domain events: what happened to sessions and lab slots, in order.
//!
//! The coordinator numbers each event under its lock, so ids increase in the
//! order things happened, and publishes it on a bounded `broadcast` channel.
//! A subscriber that falls behind loses the oldest events (it is told how
//! many) rather than slowing the server down. The last [`HISTORY`] events
//! are also kept, so a reader that reconnects can resume after the last id
//! it saw without losing any in between.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::broadcast;

use crate::domain::events::{Event, EventKind, HISTORY};
use crate::store::{InMemory, Store};

/// How many events a slow subscriber may fall behind before it loses some.
const CHANNEL_CAPACITY: usize = 1024;

/// Where a reader picks up the event stream (see [`EventBus::resume`]).
#[derive(Debug)]
pub struct Resume {
    /// Events the reader asked for that are no longer kept.
    pub missed: u64,
    /// Kept events after the reader's position, oldest first.
    pub backlog: Vec<Event>,
    /// Every event published after the backlog's last one.
    pub receiver: broadcast::Receiver<Event>,
}

/// Numbers events, hands them to the store, keeps the recent ones and
/// hands them to subscribers.
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    history: VecDeque<Event>,
    last_id: u64,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("last_id", &self.last_id)
            .finish_non_exhaustive()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new(Arc::new(InMemory), 0)
    }
}

impl EventBus {
    /// A bus whose events go to `store`, numbered on from `last_id` (the
    /// last one a previous run wrote), so ids never repeat across restarts.
    pub fn new(store: Arc<dyn Store>, last_id: u64) -> Self {
        EventBus {
            sender: broadcast::Sender::new(CHANNEL_CAPACITY),
            history: VecDeque::with_capacity(HISTORY),
            last_id,
            store,
        }
    }

    /// The id of the last event published.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Publishes `kind` as the next event. Call it under the coordinator's
    /// lock, so ids (and the store's writes) follow the order of the
    /// changes they describe.
    pub fn publish(&mut self, kind: EventKind) -> u64 {
        self.last_id += 1;
        tracing::debug!(id = self.last_id, ?kind, "event");
        let event = Event {
            id: self.last_id,
            at: SystemTime::now(),
            kind,
        };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.store.append(&event);
        // Watchers keep events long after their lab is gone: without the
        // devices' host views (megabytes for a large lab), which only the
        // store needed.
        let event = Event {
            kind: event.kind.without_host_views(),
            ..event
        };
        self.history.push_back(event.clone());
        // No subscriber is fine: nobody is watching.
        let _ = self.sender.send(event);
        self.last_id
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }

    /// Picks the stream up after event `after` (a reader's last seen id),
    /// or, with `None`, with the last `replay` kept events. The backlog and
    /// the receiver join without a gap or an overlap, because both are taken
    /// under the coordinator's lock, as every publish is. An `after` beyond
    /// the last id comes from another server (or one without a store, whose
    /// ids start again at 1): such a reader gets every kept event.
    pub fn resume(&self, after: Option<u64>, replay: usize) -> Resume {
        let after = match after {
            Some(id) if id <= self.last_id => id,
            Some(_) => 0,
            None => {
                let skip = self.history.len().saturating_sub(replay);
                return Resume {
                    missed: 0,
                    backlog: self.history.iter().skip(skip).cloned().collect(),
                    receiver: self.subscribe(),
                };
            }
        };
        let oldest_kept = self.history.front().map_or(self.last_id + 1, |e| e.id);
        Resume {
            missed: oldest_kept.saturating_sub(after + 1),
            backlog: self
                .history
                .iter()
                .filter(|event| event.id > after)
                .cloned()
                .collect(),
            receiver: self.subscribe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LabChange;

    fn bus_with(count: usize) -> EventBus {
        let mut bus = EventBus::default();
        for _ in 0..count {
            bus.publish(EventKind::Lab {
                host: None,
                slot: 1,
                change: LabChange::Idle,
            });
        }
        bus
    }

    fn ids(resume: &Resume) -> Vec<u64> {
        resume.backlog.iter().map(|event| event.id).collect()
    }

    #[test]
    fn resuming_returns_what_came_after_the_last_seen_id() {
        let bus = bus_with(5);
        let resume = bus.resume(Some(3), 0);
        assert_eq!((resume.missed, ids(&resume)), (0, vec![4, 5]));
        assert!(bus.resume(Some(5), 0).backlog.is_empty());
        assert_eq!(ids(&bus.resume(None, 2)), [4, 5]);
        assert!(bus.resume(None, 0).backlog.is_empty());
    }

    #[test]
    fn events_older_than_the_history_are_counted_as_missed() {
        let bus = bus_with(HISTORY + 10);
        let resume = bus.resume(Some(4), 0);
        assert_eq!(resume.missed, 6, "ids 5..=10 are gone");
        assert_eq!(resume.backlog.first().map(|e| e.id), Some(11));
        assert_eq!(resume.backlog.len(), HISTORY);
    }

    #[test]
    fn an_id_from_before_a_restart_replays_everything_kept() {
        let bus = bus_with(3);
        let resume = bus.resume(Some(900), 0);
        assert_eq!((resume.missed, ids(&resume)), (0, vec![1, 2, 3]));
    }

    #[tokio::test]
    async fn the_receiver_continues_where_the_backlog_ends() {
        let mut bus = bus_with(2);
        let mut resume = bus.resume(Some(1), 0);
        bus.publish(EventKind::Lab {
            host: None,
            slot: 1,
            change: LabChange::TearingDown,
        });
        assert_eq!(ids(&resume), [2]);
        assert_eq!(resume.receiver.recv().await.unwrap().id, 3);
    }
}
