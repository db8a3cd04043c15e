//! The data every layer shares: what the coordinator publishes as events,
//! the store persists and the lab layer reports (a lab's changes, files and
//! devices, a client's description). Plain types with no behaviour of
//! their own beyond reading and comparing, so that the coordinator, the
//! store and the lab layer all depend on this module and never on each
//! other's data.

mod device;
pub mod events;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use device::Device;

/// A boxed future, for the object-safe traits (stores, lab drivers).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who a session's client says it is (`POST /session` body). Free text the
/// API has checked for length and characters; nothing here is trusted for
/// access decisions.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    pub user: Option<String>,
    pub host: Option<String>,
    /// Link to the CI job that runs the suite (`http://` or `https://`).
    pub ci_job_url: Option<String>,
    /// Free-form, e.g. the pytest invocation.
    pub label: Option<String>,
}

/// A change of a slot's lab, reported to the lab layer's observer as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum LabChange {
    /// A bring-up began in `files`, run by the tool's version `built_by`.
    Starting {
        topology: String,
        identity: String,
        files: LabFiles,
        built_by: String,
    },
    /// The bring-up finished; the lab runs, held once.
    Up {
        devices: Arc<Vec<Device>>,
        took: Duration,
    },
    /// Another request attached to the running lab; `warm` when it was
    /// kept from an earlier session.
    Attached { ref_count: u32, warm: bool },
    /// The bring-up failed and was cleaned up; no lab runs.
    Failed {
        /// The netlab command that failed, when netlab failed.
        command: Option<String>,
        exit_code: Option<i32>,
        error: String,
    },
    /// One reference was dropped.
    Released { ref_count: u32 },
    /// Nobody holds the lab; it keeps running for reuse.
    Idle,
    /// Its holder's session ended and the lab stays up, unheld, for
    /// `expires_in` (`--keep-idle-lab`), for the next session that asks for
    /// the same lab.
    Kept { expires_in: Duration },
    /// A kept lab was not asked for in time; its teardown follows.
    Expired,
    /// A kept lab is reset before another session gets it (`--warm-reset`).
    Resetting { command: String },
    /// A teardown began.
    TearingDown,
    /// The lab is gone.
    Down { took: Duration },
    /// The teardown failed; the tool may still have the lab registered.
    Dirty { error: String },
}

/// What a slot's lab is doing: the one vocabulary of the lab layer's
/// reports ([`LabChange::phase`]), the coordinator's slots and the store's
/// `labs.phase` column (as [`Phase::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No lab work runs: no lab, or a lab nobody holds (kept for reuse).
    Idle,
    /// Its holder left and its lab stays up for the next session that asks
    /// for it (`--keep-idle-lab`).
    Kept,
    /// A kept lab is reset for another session (`--warm-reset`).
    Resetting,
    /// A bring-up runs.
    Starting,
    /// A lab runs and is held.
    Up,
    /// The holder left; its work is being cancelled before the teardown.
    Releasing,
    TearingDown,
    /// A teardown failed; netlab may still have the lab registered.
    Dirty,
    /// The last bring-up failed (and was cleaned up).
    Failed,
}

impl Phase {
    /// The phase as a `snake_case` word, for the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Kept => "kept",
            Phase::Resetting => "resetting",
            Phase::Starting => "starting",
            Phase::Up => "up",
            Phase::Releasing => "releasing",
            Phase::TearingDown => "tearing_down",
            Phase::Dirty => "dirty",
            Phase::Failed => "failed",
        }
    }

    /// The phase [`Phase::as_str`] wrote; `None` for any other text.
    pub fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|phase| phase.as_str() == text)
    }

    const ALL: [Phase; 9] = [
        Phase::Idle,
        Phase::Kept,
        Phase::Resetting,
        Phase::Starting,
        Phase::Up,
        Phase::Releasing,
        Phase::TearingDown,
        Phase::Dirty,
        Phase::Failed,
    ];
}

impl LabChange {
    /// The phase a slot's lab is in once this change happened.
    pub fn phase(&self) -> Phase {
        match self {
            LabChange::Starting { .. } => Phase::Starting,
            LabChange::Up { .. } | LabChange::Attached { .. } | LabChange::Released { .. } => {
                Phase::Up
            }
            LabChange::Failed { .. } => Phase::Failed,
            LabChange::Idle | LabChange::Down { .. } => Phase::Idle,
            LabChange::Kept { .. } => Phase::Kept,
            LabChange::Resetting { .. } => Phase::Resetting,
            LabChange::Expired | LabChange::TearingDown => Phase::TearingDown,
            LabChange::Dirty { .. } => Phase::Dirty,
        }
    }
}

/// Where a lab lives on disk (on its lab host).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabFiles {
    /// The lab's own directory, removed when the lab is gone.
    pub dir: PathBuf,
    /// The topology's folder inside `dir`, where netlab runs.
    pub netlab_dir: PathBuf,
}

/// A slot's lab as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLab {
    /// From 1.
    pub slot: usize,
    pub files: LabFiles,
    /// SHA-256 of the lab's content, hex.
    pub identity: String,
    pub topology: String,
    /// Known once the lab is up.
    pub devices: Option<Vec<Device>>,
    pub ref_count: u32,
    pub started_at: Option<SystemTime>,
    pub phase: Phase,
    /// The tool's version that brought it up; `None` for a lab stored
    /// before it was recorded.
    pub built_by: Option<String>,
}

impl StoredLab {
    /// Whether the lab finished its bring-up and was not being torn down:
    /// only such a lab can be re-adopted.
    pub fn was_running(&self) -> bool {
        matches!(self.phase, Phase::Up | Phase::Idle | Phase::Kept) && self.devices.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_reads_back_as_it_was_written_and_nothing_else_does() {
        for phase in Phase::ALL {
            assert_eq!(Phase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(Phase::parse("Up"), None);
        assert_eq!(Phase::parse(""), None);
    }
}
