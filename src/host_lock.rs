//! Host guards: one server per host, and one lab change at a time per host.
//!
//! Both are OS file locks (`flock`) in the temporary directory, the same kind
//! Python's `filelock` takes, so they also exclude the original Python server
//! and its local-mode fixtures. The lock files themselves are never deleted:
//! deleting a lock file lets a second process lock a fresh file of the same
//! name while the first still holds the old one.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const SERVER_LOCK_FILE: &str = "neops_remote_lab_server.lock";
pub const SERVER_META_FILE: &str = "neops_remote_lab_server.meta.json";
pub const LAB_LOCK_FILE: &str = "netlab_pytest.lock";

/// Who runs the server holding this host; written next to the lock so a
/// refused second server (and local-mode clients) can say who and where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerMeta {
    pub pid: u32,
    pub user: String,
    pub host: String,
    pub started_at: String,
    pub port: u16,
    pub host_bind: String,
    pub log_level: String,
    /// The original server's `--log-config PATH`, when given (kept, not read).
    #[serde(default)]
    pub log_config: Option<String>,
    pub version: String,
    pub cwd: String,
    pub cmd: Vec<String>,
}

/// Why this process may not serve.
#[derive(Debug)]
pub enum GuardError {
    /// Another server holds the lock; its metadata, when readable.
    Taken(Option<Box<ServerMeta>>),
    Io(io::Error),
}

impl std::fmt::Display for GuardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuardError::Taken(Some(owner)) => write!(
                f,
                "another neops-remote-lab server already runs on this host: pid {} ({}@{}), \
                 started {}, listening on {}:{}",
                owner.pid, owner.user, owner.host, owner.started_at, owner.host_bind, owner.port
            ),
            GuardError::Taken(None) => f.write_str(
                "another neops-remote-lab server already runs on this host (its metadata file is unreadable)",
            ),
            GuardError::Io(error) => write!(f, "could not take the server lock: {error}"),
        }
    }
}

/// Held for the server's whole life. Dropping it removes the metadata file
/// and releases the lock.
#[derive(Debug)]
pub struct ServerGuard {
    _lock: File,
    meta_path: PathBuf,
}

impl ServerGuard {
    /// Takes the one-server-per-host lock in `dir`, without waiting.
    pub fn acquire(dir: &Path) -> Result<ServerGuard, GuardError> {
        let lock = open_lock_file(&dir.join(SERVER_LOCK_FILE)).map_err(GuardError::Io)?;
        let meta_path = dir.join(SERVER_META_FILE);
        match lock.try_lock() {
            Ok(()) => Ok(ServerGuard {
                _lock: lock,
                meta_path,
            }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(GuardError::Taken(read_meta(&meta_path).map(Box::new)))
            }
            Err(std::fs::TryLockError::Error(error)) => Err(GuardError::Io(error)),
        }
    }

    /// Writes the metadata file (atomically: readers never see half of it).
    pub fn publish(&self, meta: &ServerMeta) -> io::Result<()> {
        let partial = self.meta_path.with_extension("json.partial");
        std::fs::write(&partial, serde_json::to_vec_pretty(meta)?)?;
        std::fs::rename(&partial, &self.meta_path)
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        // Before the lock goes: nobody may find metadata of a server that is gone.
        let _ = std::fs::remove_file(&self.meta_path);
    }
}

/// Reads a server's metadata file, if it is there and well-formed.
pub fn read_meta(path: &Path) -> Option<ServerMeta> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The host-wide lock held while a lab is started, changed or torn down.
#[derive(Debug, Clone)]
pub struct LabLock {
    path: PathBuf,
}

/// Proof of holding the [`LabLock`]; released on drop.
#[derive(Debug)]
pub struct LabLockHeld {
    _file: File,
}

impl LabLock {
    pub fn new(dir: &Path) -> Self {
        LabLock {
            path: dir.join(LAB_LOCK_FILE),
        }
    }

    /// Waits (off the async runtime) until the lock is ours.
    pub async fn hold(&self) -> io::Result<LabLockHeld> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let file = open_lock_file(&path)?;
            file.lock()?;
            Ok(LabLockHeld { _file: file })
        })
        .await
        .map_err(io::Error::other)?
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ServerMeta {
        ServerMeta {
            pid: 42,
            user: "ops".into(),
            host: "labhost".into(),
            started_at: "2026-11-28T10:00:00Z".into(),
            port: 8000,
            host_bind: "0.0.0.0".into(),
            log_level: "INFO".into(),
            log_config: None,
            version: "1.5.0".into(),
            cwd: "/".into(),
            cmd: vec!["neops-remote-lab".into()],
        }
    }

    #[test]
    fn second_guard_is_refused_with_the_owners_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerGuard::acquire(dir.path()).unwrap();
        first.publish(&meta()).unwrap();
        match ServerGuard::acquire(dir.path()) {
            Err(GuardError::Taken(Some(owner))) => {
                assert_eq!(*owner, meta());
                let message = GuardError::Taken(Some(owner)).to_string();
                assert!(message.contains("pid 42 (ops@labhost)"), "{message}");
                assert!(message.contains("0.0.0.0:8000"), "{message}");
            }
            other => panic!("expected the lock to be taken, got {other:?}"),
        }
    }

    #[test]
    fn dropping_the_guard_removes_metadata_and_frees_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServerGuard::acquire(dir.path()).unwrap();
        first.publish(&meta()).unwrap();
        drop(first);
        assert!(!dir.path().join(SERVER_META_FILE).exists());
        assert!(ServerGuard::acquire(dir.path()).is_ok());
    }

    #[tokio::test]
    async fn lab_lock_is_exclusive_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LabLock::new(dir.path());
        let held = lock.hold().await.unwrap();
        let other = open_lock_file(&dir.path().join(LAB_LOCK_FILE)).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        assert!(other.try_lock().is_ok());
    }
}
