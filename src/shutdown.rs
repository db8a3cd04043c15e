//! One small type for "the server is stopping", handed to every task that
//! must notice it (long-polls, a bring-up in flight, the eviction timer).

use tokio::sync::watch;

/// Cloneable view of the shutdown signal. Triggering any clone triggers all.
#[derive(Clone)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Shutdown {
            sender: watch::Sender::new(false),
        }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Completes once [`Shutdown::trigger`] has been called (at once if it
    /// already was).
    pub async fn triggered(&self) {
        let mut receiver = self.sender.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail.
        let _ = receiver.wait_for(|stopping| *stopping).await;
    }
}
