//! Which failures are worth another try, and for how long. A server that
//! restarts keeps its queue (README, "State and restarts") and is back
//! within seconds, so a client rides out refused connections and 503s
//! instead of losing its place. Only requests that are safe to send twice
//! are retried: reads, `DELETE`s, heartbeats, and `POST`s that carry an
//! `Idempotency-Key` (a repeat returns the first request's result).

use std::time::Duration;

use backon::ExponentialBuilder;
use reqwest::StatusCode;

use super::Error;

/// How long a request is tried again before its last failure is returned.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Waits of 0.5 s doubling up to 5 s between tries, for at most [`GIVE_UP_AFTER`].
pub fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(5))
        .with_total_delay(Some(GIVE_UP_AFTER))
        .without_max_times()
}

/// The server could not be reached or answered, or said it is briefly
/// unavailable (503: stopping, or its store could not save).
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::Status { status, .. } => *status == StatusCode::SERVICE_UNAVAILABLE,
        Error::Transport { source, .. } => {
            source.is_connect() || source.is_timeout() || source.is_request()
        }
        Error::LabFile { .. } | Error::Config(_) => false,
    }
}
