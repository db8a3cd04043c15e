//! Where the queue meets the lab: a session that leaves while holding the
//! lab has its lab torn down before the next session is promoted, whether it
//! left by itself or was evicted. A failed teardown still promotes.

use std::sync::Arc;

use uuid::Uuid;

use crate::lab::LabManager;
use crate::sessions::Sessions;
use crate::shutdown::Shutdown;

/// Why a session ended, for the log.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    Closed,
    Evicted,
}

/// Ends a session. Returns false when it did not exist.
///
/// Runs in its own task: a client that hangs up mid-teardown must not leave
/// the queue stuck in a hand-over.
pub async fn end_session(
    sessions: Arc<Sessions>,
    lab: Arc<LabManager>,
    id: Uuid,
    reason: Reason,
) -> bool {
    let task = tokio::spawn(async move {
        let Some(departed) = sessions.leave(&id) else {
            return false;
        };
        tracing::info!(session = %short(&id), ?reason, was_active = departed.was_active, "session ended");
        if departed.was_active {
            match lab.destroy(true).await {
                Ok(true) => {
                    tracing::info!(session = %short(&id), "lab torn down after its session ended")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(%error, "teardown failed; promoting the next session anyway")
                }
            }
            sessions.promote();
            if let Some((next, _)) = sessions.head() {
                tracing::info!(session = %short(&next), "session promoted to active");
            }
        }
        true
    });
    task.await.unwrap_or(false)
}

/// Evicts every session at its deadline, to within the timer's precision:
/// it sleeps until the earliest deadline rather than sweeping periodically.
pub async fn run_evictions(sessions: Arc<Sessions>, lab: Arc<LabManager>, shutdown: Shutdown) {
    loop {
        let next = sessions.next_deadline();
        tokio::select! {
            _ = sleep_until(next) => {}
            _ = sessions.deadline_may_have_moved() => continue,
            _ = shutdown.triggered() => return,
        }
        for id in sessions.expired() {
            tracing::warn!(session = %short(&id), "evicting session: not seen within its timeout");
            end_session(Arc::clone(&sessions), Arc::clone(&lab), id, Reason::Evicted).await;
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// The first block of a session id: enough to follow one session in the log.
pub fn short(id: &Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}
