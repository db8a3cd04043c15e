//! The lab manager: which lab runs, who holds it, when it is started again.
//!
//! One lab per host. Its identity is a SHA-256 over the uploaded folder's
//! content (see [`upload::Identity`]), so the same files under another
//! topology name share one running lab, reference-counted. Every change to the lab (start, switch, teardown) runs
//! under one async mutex and the host-wide lab lock; readers use a published
//! snapshot, so status requests stay instant while a bring-up runs.

pub mod netlab;
mod process;
pub mod upload;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::host_lock::LabLock;
use crate::shutdown::Shutdown;
use netlab::NetlabError;
use upload::{Identity, Upload};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A node of the running lab and its Ansible host view.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    pub raw: Map<String, Value>,
}

/// What the manager needs from the tool that runs labs: netlab in
/// production, an in-memory driver in unit tests.
pub trait LabDriver: Send + Sync {
    /// Starts the lab of `topology` (a file inside `dir`, the folder the
    /// tool runs in) and returns its devices in the tool's node order. Stops early when `cancel`
    /// triggers.
    fn up<'a>(
        &'a self,
        dir: &'a Path,
        topology: &'a Path,
        cancel: &'a Shutdown,
    ) -> BoxFuture<'a, Result<Vec<Device>, LabError>>;

    /// Stops the lab started in `dir` and removes the tool's files there.
    fn down<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), LabError>>;

    /// The tool's own view of what runs on this host, for `GET /lab`.
    fn status(&self) -> BoxFuture<'_, Option<String>>;
}

/// Why a lab operation did not happen.
#[derive(Debug)]
pub enum LabError {
    /// Another topology holds the lab (HTTP 423).
    Busy,
    /// There is no lab to act on (HTTP 404).
    NotRunning,
    /// `force=false` and someone still holds the lab (HTTP 409).
    InUse,
    /// netlab failed (502) or hung (504).
    Netlab(NetlabError),
    /// The upload could not be written to disk.
    Io(std::io::Error),
}

impl From<NetlabError> for LabError {
    fn from(error: NetlabError) -> Self {
        LabError::Netlab(error)
    }
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabError::Busy => f.write_str("Lab currently busy"),
            LabError::NotRunning => f.write_str("No lab running"),
            LabError::InUse => f.write_str("Lab still in use"),
            LabError::Netlab(error) => error.fmt(f),
            LabError::Io(error) => write!(f, "could not write the lab files: {error}"),
        }
    }
}

/// What a successful acquire hands back.
#[derive(Debug, Clone)]
pub struct Acquired {
    /// True when the request attached to a lab that was already running.
    pub reused: bool,
    pub devices: Arc<Vec<Device>>,
}

/// A snapshot of the lab for readers.
#[derive(Debug, Clone, Default)]
pub struct LabView {
    /// The running topology's file name; `None` when no lab runs.
    pub topology: Option<String>,
    pub ref_count: u32,
    pub devices: Arc<Vec<Device>>,
}

impl LabView {
    pub fn running(&self) -> bool {
        self.topology.is_some()
    }
}

/// The lab that runs now.
#[derive(Debug)]
struct RunningLab {
    identity: Identity,
    dir: PathBuf,
    /// The topology's folder inside `dir`, where netlab runs.
    netlab_dir: PathBuf,
    topology_name: String,
    ref_count: u32,
    devices: Arc<Vec<Device>>,
}

/// What an acquire must do, decided from the current lab alone.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// Same content, reuse allowed: join the running lab.
    Attach,
    /// No lab runs: start one.
    Start,
    /// The running lab is idle and must make way (other content, or the
    /// caller asked for a fresh lab).
    Replace,
}

fn plan(
    current: Option<(&Identity, u32)>,
    wanted: &Identity,
    reuse: bool,
) -> Result<Plan, LabError> {
    match current {
        None => Ok(Plan::Start),
        Some((identity, _)) if identity == wanted && reuse => Ok(Plan::Attach),
        Some((_, 0)) => Ok(Plan::Replace),
        Some(_) => Err(LabError::Busy),
    }
}

/// Owns the one lab of this host. See the module documentation.
pub struct LabManager {
    driver: Arc<dyn LabDriver>,
    work_root: PathBuf,
    host_lock: LabLock,
    lab: tokio::sync::Mutex<Option<RunningLab>>,
    view: Mutex<LabView>,
    /// Triggered at server shutdown: kills a bring-up in flight.
    cancel: Shutdown,
    next_dir: AtomicU64,
}

/// Directory names under the work root start with this; only such entries
/// are ever removed from it.
const DIR_PREFIX: &str = "lab-";

impl LabManager {
    pub fn new(
        driver: Arc<dyn LabDriver>,
        work_root: PathBuf,
        host_lock: LabLock,
        cancel: Shutdown,
    ) -> Self {
        LabManager {
            driver,
            work_root,
            host_lock,
            lab: tokio::sync::Mutex::new(None),
            view: Mutex::new(LabView::default()),
            cancel,
            next_dir: AtomicU64::new(0),
        }
    }

    /// The lab as of the last finished change. Never waits.
    pub fn view(&self) -> LabView {
        self.view
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The lab tool's own status report (may take a moment).
    pub async fn tool_status(&self) -> Option<String> {
        self.driver.status().await
    }

    /// Gives the caller the lab of `upload`'s topology: joins the running
    /// one, replaces an idle one, or starts one. See [`plan`].
    pub async fn acquire(&self, upload: &Upload) -> Result<Acquired, LabError> {
        let mut lab = self.lab.lock().await;
        let current = lab
            .as_ref()
            .map(|running| (&running.identity, running.ref_count));
        match plan(current, &upload.identity, upload.reuse)? {
            Plan::Attach => {
                let running = lab.as_mut().expect("attach implies a running lab");
                running.ref_count += 1;
                let devices = Arc::clone(&running.devices);
                self.publish(&lab);
                return Ok(Acquired {
                    reused: true,
                    devices,
                });
            }
            Plan::Replace => {
                let old = lab.take().expect("replace implies a running lab");
                self.publish(&lab);
                tracing::info!(
                    old = old.identity.short(),
                    new = upload.identity.short(),
                    "switching lab"
                );
                // A failed teardown is logged; the new bring-up will tell
                // whether the host is really still occupied.
                let _ = self.stop(old).await;
            }
            Plan::Start => {}
        }
        let running = self.start(upload).await?;
        let devices = Arc::clone(&running.devices);
        *lab = Some(running);
        self.publish(&lab);
        Ok(Acquired {
            reused: false,
            devices,
        })
    }

    /// Drops one reference. At zero the lab stays up, idle, for reuse.
    pub async fn release(&self) -> Result<(), LabError> {
        let mut lab = self.lab.lock().await;
        let running = lab.as_mut().ok_or(LabError::NotRunning)?;
        running.ref_count = running.ref_count.saturating_sub(1);
        self.publish(&lab);
        Ok(())
    }

    /// Tears the lab down. Returns whether a lab was running. With
    /// `force=false` a lab that someone still holds is left alone.
    pub async fn destroy(&self, force: bool) -> Result<bool, LabError> {
        let mut lab = self.lab.lock().await;
        match lab.as_ref() {
            None => return Ok(false),
            Some(running) if !force && running.ref_count > 0 => return Err(LabError::InUse),
            Some(_) => {}
        }
        let running = lab.take().expect("checked above");
        self.publish(&lab);
        self.stop(running).await?;
        Ok(true)
    }

    /// Kills a bring-up in flight; later ones fail at once. For shutdown.
    pub fn cancel_bring_ups(&self) {
        self.cancel.trigger();
    }

    /// Removes lab directories a crashed earlier run left in the work root.
    pub async fn remove_stale_dirs(&self) -> std::io::Result<usize> {
        let root = self.work_root.clone();
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&root) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(error) => return Err(error),
            };
            let mut removed = 0;
            for entry in entries {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                    std::fs::remove_dir_all(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    async fn start(&self, upload: &Upload) -> Result<RunningLab, LabError> {
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
        tracing::info!(topology = %upload.topology_name, identity = upload.identity.short(), dir = %netlab_dir.display(), "starting lab");
        match self.driver.up(&netlab_dir, &topology, &self.cancel).await {
            Ok(devices) => {
                tracing::info!(devices = devices.len(), "lab is up");
                Ok(RunningLab {
                    identity: upload.identity.clone(),
                    dir,
                    netlab_dir,
                    topology_name: upload.topology_name.clone(),
                    ref_count: 1,
                    devices: Arc::new(devices),
                })
            }
            Err(error) => {
                tracing::error!(%error, "lab bring-up failed; cleaning up");
                // netlab refuses the next `up` while this directory is still
                // registered, so the half-started lab must go.
                if let Err(down_error) = self.driver.down(&netlab_dir).await {
                    tracing::warn!(error = %down_error, "cleanup after a failed bring-up");
                }
                remove_dir(&dir).await;
                Err(error)
            }
        }
    }

    async fn stop(&self, lab: RunningLab) -> Result<(), LabError> {
        let _host = self.host_lock.hold().await.map_err(LabError::Io)?;
        tracing::info!(topology = %lab.topology_name, identity = lab.identity.short(), "tearing lab down");
        let result = self.driver.down(&lab.netlab_dir).await;
        if let Err(error) = &result {
            tracing::error!(%error, "lab teardown failed");
        }
        remove_dir(&lab.dir).await;
        result
    }

    fn new_dir(&self, identity: &Identity) -> PathBuf {
        let serial = self.next_dir.fetch_add(1, Ordering::Relaxed);
        self.work_root.join(format!(
            "{DIR_PREFIX}{}-{}-{serial}",
            identity.short(),
            std::process::id()
        ))
    }

    fn publish(&self, lab: &Option<RunningLab>) {
        let view = match lab {
            None => LabView::default(),
            Some(running) => LabView {
                topology: Some(running.topology_name.clone()),
                ref_count: running.ref_count,
                devices: Arc::clone(&running.devices),
            },
        };
        *self
            .view
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = view;
    }
}

async fn remove_dir(dir: &Path) {
    if let Err(error) = tokio::fs::remove_dir_all(dir).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, dir = %dir.display(), "could not remove lab directory");
    }
}

#[cfg(test)]
mod tests;
