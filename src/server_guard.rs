//! The server guard: one server per host.
//!
//! An OS file lock (`flock`) in the temporary directory, the same kind
//! Python's `filelock` takes, so it also excludes the original Python server
//! and its local-mode fixtures. Beside it, a metadata file says who holds
//! the host and where it listens. The same lock and metadata are also taken
//! in netlab's per-user state folder (`~/.netlab`), where two servers really
//! collide: servers with different `TMPDIR`s (systemd `PrivateTmp=yes`) but
//! one `HOME` would otherwise drive the same netlab instances. Lock files
//! are never deleted: deleting a lock file lets a second process lock a
//! fresh file of the same name while the first still holds the old one.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lab::lock::open_lock_file;

pub const SERVER_LOCK_FILE: &str = "neops_remote_lab_server.lock";
pub const SERVER_META_FILE: &str = "neops_remote_lab_server.meta.json";

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

/// Held for the server's whole life. Dropping it removes the metadata
/// files and releases the locks.
#[derive(Debug)]
pub struct ServerGuard {
    places: Vec<Guarded>,
}

/// One folder's lock, held, and its metadata file.
#[derive(Debug)]
struct Guarded {
    _lock: File,
    meta_path: PathBuf,
}

impl Guarded {
    fn take(dir: &Path) -> Result<Guarded, GuardError> {
        let lock = open_lock_file(&dir.join(SERVER_LOCK_FILE)).map_err(GuardError::Io)?;
        let meta_path = dir.join(SERVER_META_FILE);
        match lock.try_lock() {
            Ok(()) => Ok(Guarded {
                _lock: lock,
                meta_path,
            }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(GuardError::Taken(read_meta(&meta_path).map(Box::new)))
            }
            Err(std::fs::TryLockError::Error(error)) => Err(GuardError::Io(error)),
        }
    }
}

impl ServerGuard {
    /// Takes the one-server-per-host lock in `dir`, without waiting.
    pub fn acquire(dir: &Path) -> Result<ServerGuard, GuardError> {
        Self::acquire_all(&[dir.to_path_buf()])
    }

    /// Takes the lock in each of `dirs` (created if missing), without
    /// waiting; refused as soon as one is taken.
    pub fn acquire_all(dirs: &[PathBuf]) -> Result<ServerGuard, GuardError> {
        let mut places = Vec::with_capacity(dirs.len());
        for dir in dirs {
            std::fs::create_dir_all(dir).map_err(GuardError::Io)?;
            places.push(Guarded::take(dir)?);
        }
        Ok(ServerGuard { places })
    }

    /// Writes the metadata file atomically (readers never see half of it)
    /// and without following links: the content goes to a freshly created
    /// file (`O_CREAT|O_EXCL` refuses an existing name, a planted symlink
    /// included), which is then renamed over the old name (replacing a link
    /// there, not its target).
    pub fn publish(&self, meta: &ServerMeta) -> io::Result<()> {
        for place in &self.places {
            write_meta(&place.meta_path, meta)?;
        }
        Ok(())
    }
}

fn write_meta(path: &Path, meta: &ServerMeta) -> io::Result<()> {
    use std::io::Write;
    let partial = path.with_extension(format!("json.{}.partial", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)?;
    file.write_all(&serde_json::to_vec_pretty(meta)?)?;
    drop(file);
    std::fs::rename(&partial, path)
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // Before the lock goes: nobody may find metadata of a server that is gone.
        let _ = std::fs::remove_file(&self.meta_path);
    }
}

/// Reads a server's metadata file, if it is there and well-formed.
pub fn read_meta(path: &Path) -> Option<ServerMeta> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
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
    fn metadata_is_not_written_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let guard = ServerGuard::acquire(dir.path()).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(SERVER_META_FILE)).unwrap();
        let partial = dir
            .path()
            .join(format!("{SERVER_META_FILE}.{}.partial", std::process::id()));
        std::os::unix::fs::symlink(&victim, &partial).unwrap();
        guard.publish(&meta()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(read_meta(&dir.path().join(SERVER_META_FILE)), Some(meta()));
    }

    #[test]
    fn every_guarded_folder_refuses_a_second_server() {
        let (tmp_a, tmp_b, home) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let state = home.path().join(".netlab");
        let first = ServerGuard::acquire_all(&[tmp_a.path().to_path_buf(), state.clone()]).unwrap();
        first.publish(&meta()).unwrap();
        // Another TMPDIR, the same netlab state folder: refused, naming the owner.
        match ServerGuard::acquire_all(&[tmp_b.path().to_path_buf(), state.clone()]) {
            Err(GuardError::Taken(Some(owner))) => assert_eq!(owner.pid, 42),
            other => panic!("expected the state folder to be taken, got {other:?}"),
        }
        drop(first);
        assert!(ServerGuard::acquire_all(&[tmp_b.path().to_path_buf(), state]).is_ok());
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
}
