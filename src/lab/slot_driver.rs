//! What a slot does on the host its lab runs on, behind one interface
//! ([`SlotDriver`]), so the slot's rules ([`super::LabSlot`]: reference
//! counts, keeping, hand-overs) do not care where that host is.
//!
//! Two implementations: [`LocalSlotDriver`] runs the lab tool on this host
//! (the single-host server, and each slot of a lab agent), and
//! `crate::agent::RemoteSlotDriver` asks an agent to do it for the
//! coordinator.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use super::inventory::{self, Inventory};
use super::lock::LabLock;
use super::upload::{Identity, Upload};
use super::{BoxFuture, DIR_PREFIX, Device, Health, LabDriver, LabError, LabFiles, LineSink};

/// A lab the driver started.
#[derive(Debug, Clone)]
pub struct Started {
    pub files: LabFiles,
    /// In the lab tool's node order.
    pub devices: Vec<Device>,
    /// The version of the lab tool that started it.
    pub built_by: String,
}

/// Called once the lab's files are in place, before its bring-up runs: the
/// slot records where they are, so a crash mid-bring-up can be cleaned up.
pub type OnFiles<'a> = &'a (dyn Fn(&LabFiles) + Send + Sync);

/// The host side of one lab slot. Every call is made under the slot's own
/// lock, one at a time.
pub trait SlotDriver: Send + Sync {
    /// Writes `upload` into a fresh lab directory, tells `on_files`, and
    /// starts its lab. Stops early when `cancel` triggers. On any failure
    /// the half-started lab and its directory are gone before this returns.
    fn start<'a>(
        &'a self,
        upload: &'a Upload,
        cancel: &'a CancellationToken,
        log: Arc<dyn LineSink>,
        on_files: OnFiles<'a>,
    ) -> BoxFuture<'a, Result<Started, LabError>>;

    /// Tears down the lab in `files` and removes its directory. On an error
    /// the files stay: the lab tool may still have the lab registered.
    fn stop<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, Result<(), LabError>>;

    /// Removes the files of a lab the lab tool no longer lists (nothing to
    /// tear down).
    fn forget<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, ()>;

    /// Asks the lab tool, afresh, about the lab in `files`. A lab whose
    /// directory is gone is an error: the tool's registry alone may still
    /// list it.
    fn check<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, Result<Health, LabError>>;

    /// Runs the lab tool with `args` in the lab's directory (a warm reset).
    fn reset<'a>(
        &'a self,
        files: &'a LabFiles,
        args: &'a [String],
    ) -> BoxFuture<'a, Result<(), LabError>>;

    /// The lab tool's Ansible inventory of the lab in `files`.
    fn inventory<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, Result<Inventory, LabError>>;

    /// The lab tool's own report of what runs on the slot's host.
    fn status(&self) -> BoxFuture<'_, Option<String>>;

    /// The lab tool's version now.
    fn version(&self) -> String;

    /// Where a client reaches the slot's host over SSH (to jump to its
    /// devices); `None`: this host, reached as the client reaches the
    /// server.
    fn ssh_address(&self) -> Option<String> {
        None
    }
}

/// A slot on this host: its lab tool, its work folder and the host-wide lab
/// lock that keeps two bring-ups or teardowns on one host apart.
pub struct LocalSlotDriver {
    /// Numbered from 1, as in the lab directories' names.
    number: usize,
    tool: Arc<dyn LabDriver>,
    work_root: PathBuf,
    host_lock: LabLock,
    next_dir: AtomicU64,
}

impl LocalSlotDriver {
    pub fn new(
        number: usize,
        tool: Arc<dyn LabDriver>,
        work_root: PathBuf,
        host_lock: LabLock,
    ) -> Self {
        LocalSlotDriver {
            number,
            tool,
            work_root,
            host_lock,
            next_dir: AtomicU64::new(0),
        }
    }

    fn new_dir(&self, identity: &Identity) -> PathBuf {
        let serial = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.work_root.join(format!(
            "{DIR_PREFIX}s{}-{}-{}-{serial}",
            self.number,
            identity.short(),
            std::process::id()
        ))
    }

    async fn start_here(
        &self,
        upload: &Upload,
        cancel: &CancellationToken,
        log: Arc<dyn LineSink>,
        on_files: OnFiles<'_>,
    ) -> Result<Started, LabError> {
        let _host = self.host_lock.hold().await.map_err(LabError::Io)?;
        let dir = self.new_dir(&upload.identity);
        let topology = match upload.write_into(&dir).await {
            Ok(path) => path,
            Err(error) => {
                remove_dir(&dir).await;
                return Err(LabError::Io(error));
            }
        };
        let netlab_dir = topology.parent().unwrap_or(&dir).to_path_buf();
        let files = LabFiles { dir, netlab_dir };
        on_files(&files);
        let built_by = self.tool.version().to_string();
        match self
            .tool
            .up(&files.netlab_dir, &topology, cancel, log)
            .await
        {
            Ok(devices) => Ok(Started {
                files,
                devices,
                built_by,
            }),
            Err(error) => {
                // netlab refuses the next `up` while this directory is
                // still registered, so the half-started lab must go.
                if let Err(down_error) = self.tool.down(&files.netlab_dir).await {
                    tracing::warn!(error = %down_error, "cleanup after a failed bring-up");
                }
                remove_dir(&files.dir).await;
                Err(error)
            }
        }
    }

    async fn stop_here(&self, files: &LabFiles) -> Result<(), LabError> {
        let _host = self.host_lock.hold().await.map_err(LabError::Io)?;
        self.tool.down(&files.netlab_dir).await?;
        remove_dir(&files.dir).await;
        Ok(())
    }
}

impl SlotDriver for LocalSlotDriver {
    fn start<'a>(
        &'a self,
        upload: &'a Upload,
        cancel: &'a CancellationToken,
        log: Arc<dyn LineSink>,
        on_files: OnFiles<'a>,
    ) -> BoxFuture<'a, Result<Started, LabError>> {
        Box::pin(self.start_here(upload, cancel, log, on_files))
    }

    fn stop<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, Result<(), LabError>> {
        Box::pin(self.stop_here(files))
    }

    fn forget<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, ()> {
        Box::pin(remove_dir(&files.dir))
    }

    fn check<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, Result<Health, LabError>> {
        Box::pin(async move {
            if !files.netlab_dir.exists() {
                return Err(LabError::Host {
                    message: "its directory is gone".into(),
                    timed_out: false,
                });
            }
            self.tool.check(&files.netlab_dir).await
        })
    }

    fn reset<'a>(
        &'a self,
        files: &'a LabFiles,
        args: &'a [String],
    ) -> BoxFuture<'a, Result<(), LabError>> {
        self.tool.reset(&files.netlab_dir, args)
    }

    fn inventory<'a>(&'a self, files: &'a LabFiles) -> BoxFuture<'a, Result<Inventory, LabError>> {
        Box::pin(async move {
            inventory::read(&files.netlab_dir)
                .await
                .map_err(LabError::Inventory)
        })
    }

    fn status(&self) -> BoxFuture<'_, Option<String>> {
        self.tool.status()
    }

    fn version(&self) -> String {
        self.tool.version().to_string()
    }
}

/// Removes a lab directory; one already gone is fine.
pub(super) async fn remove_dir(dir: &Path) {
    if let Err(error) = tokio::fs::remove_dir_all(dir).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, dir = %dir.display(), "could not remove lab directory");
    }
}
