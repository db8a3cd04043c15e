//! The lab lock: one lab change at a time per slot, across processes.
//!
//! An OS file lock (`flock`) in the temporary directory, held while a lab is
//! started, changed or torn down. Slot 1 uses the file the original server
//! and its local-mode fixtures use (`netlab_pytest.lock`), so they exclude
//! each other; slot `k > 1` has a file of its own. Lock files are never
//! deleted (see [`crate::server_guard`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Slot 1's lock file, shared with the original server.
pub const LAB_LOCK_FILE: &str = "netlab_pytest.lock";

/// The lock of one slot.
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
    /// The lock of slot `slot` (from 1) in `dir`.
    pub fn for_slot(dir: &Path, slot: usize) -> Self {
        let name = if slot == 1 {
            LAB_LOCK_FILE.to_string()
        } else {
            format!("netlab_pytest.slot{slot}.lock")
        };
        LabLock {
            path: dir.join(name),
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

/// Opens (creating if needed) a lock file without truncating it.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lab_lock_is_exclusive_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LabLock::for_slot(dir.path(), 1);
        let held = lock.hold().await.unwrap();
        let other = open_lock_file(&dir.path().join(LAB_LOCK_FILE)).unwrap();
        assert!(other.try_lock().is_err());
        drop(held);
        // A process that other tests fork at this moment holds a copy of
        // the descriptor until its exec closes it: wait for that, bounded.
        let free = (0..500).any(|_| {
            other.try_lock().is_ok() || {
                std::thread::sleep(std::time::Duration::from_millis(10));
                false
            }
        });
        assert!(free, "the lock stayed taken after it was dropped");
    }

    #[test]
    fn slots_lock_separate_files_and_slot_one_keeps_the_original_name() {
        let dir = Path::new("/tmp");
        assert_eq!(LabLock::for_slot(dir, 1).path, dir.join(LAB_LOCK_FILE));
        assert_ne!(
            LabLock::for_slot(dir, 2).path,
            LabLock::for_slot(dir, 3).path
        );
    }
}
