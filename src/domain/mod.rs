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
    /// A bring-up began in `files`.
    Starting {
        topology: String,
        identity: String,
        files: LabFiles,
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

/// Where a lab lives on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `starting`, `up`, `idle`, `kept`, `resetting`, `tearing_down` or
    /// `dirty`.
    pub phase: String,
}

impl StoredLab {
    /// Whether the lab finished its bring-up and was not being torn down:
    /// only such a lab can be re-adopted.
    pub fn was_running(&self) -> bool {
        matches!(self.phase.as_str(), "up" | "idle") && self.devices.is_some()
    }
}
