//! Lab slots: which lab runs in each slot, who holds it, when it is started
//! again or torn down.
//!
//! A host has one or more slots ([`LabSlot`]); each runs at most one lab, as
//! its own netlab instance in its own directories. A lab's identity is a
//! SHA-256 over the uploaded folder's content (see [`upload::Identity`]), so
//! the same files under another topology name share one running lab,
//! reference-counted. Every change to a slot's lab (start, switch, teardown)
//! runs under that slot's async mutex and its host-wide lab lock; readers
//! use a published snapshot, so status requests stay instant while a
//! bring-up runs.
//!
//! This layer does not know the line. The [`crate::coordinator`] decides who
//! may act and hands each action its [`Holder`]: the session and a
//! `CancellationToken` it cancels the moment that holder is gone, checked
//! under the slot's lock by every operation. Every change is reported to a
//! [`LabObserver`] so the coordinator can publish it.
//!
//! A lab may outlive its holder (`--keep-idle-lab`): [`LabSlot::keep`]
//! leaves it up, unheld, and the next acquire of the same content attaches
//! after a health check ([`LabDriver::check`]) and, for another session, a
//! reset (`--warm-reset`); [`LabSlot::expire`] ends it unless an attach won.

pub mod bring_up_log;
pub mod declared;
pub mod inventory;
pub mod lock;
pub mod netlab;
pub mod orphans;
mod process;
pub mod provider;
pub mod readopt;
pub mod slot_driver;
pub mod ssh_config;
pub mod status_file;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use crate::domain::{BoxFuture, Device, LabChange, LabFiles, StoredLab};
use crate::session_id::SessionId;
use bring_up_log::BringUpLog;
use netlab::NetlabError;
pub use process::LineSink;
use slot_driver::{SlotDriver, Started};
use upload::{Identity, Upload};

/// What a slot needs from the tool that runs labs: netlab in production, an
/// in-memory driver in tests ([`crate::testing`]).
pub trait LabDriver: Send + Sync {
    /// Starts the lab of `topology` (a file inside `dir`, the folder the
    /// tool runs in) and returns its devices in the tool's node order.
    /// Stops early, and cleans nothing, when `cancel` triggers.
    fn up<'a>(
        &'a self,
        dir: &'a Path,
        topology: &'a Path,
        cancel: &'a CancellationToken,
        log: Arc<dyn LineSink>,
    ) -> BoxFuture<'a, Result<Vec<Device>, LabError>>;

    /// Stops the lab started in `dir` and removes the tool's files there.
    fn down<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<(), LabError>>;

    /// The tool's own view of what runs on this host, for `GET /lab`.
    fn status(&self) -> BoxFuture<'_, Option<String>>;

    /// The tool's version now (a lab built by another one is not reused).
    fn version(&self) -> &str;

    /// Asks the tool, afresh, about the lab started in `dir` and its own
    /// version (which may have changed since the server started).
    fn check<'a>(&'a self, dir: &'a Path) -> BoxFuture<'a, Result<Health, LabError>>;

    /// Runs the tool with `args` in the lab's `dir` (a warm reset, e.g.
    /// netlab's `initial`).
    fn reset<'a>(
        &'a self,
        dir: &'a Path,
        args: &'a [String],
    ) -> BoxFuture<'a, Result<(), LabError>>;
}

/// What the lab tool says of a lab it started (see [`LabDriver::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The tool's status of this slot's instance in the lab's directory
    /// (netlab: `started` when healthy); `None` when it lists none there.
    pub status: Option<String>,
    /// The tool's version now.
    pub version: String,
}

/// Who acts on a slot: the session that holds it and its token, which the
/// coordinator cancels the moment that session is gone.
#[derive(Debug, Clone)]
pub struct Holder {
    pub session: SessionId,
    pub token: CancellationToken,
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
    /// The holder that asked is gone (its session ended) or the server is
    /// stopping: the action was not started, or was stopped.
    Cancelled,
    /// The slot's previous lab could not be torn down (HTTP 503).
    Dirty(String),
    /// An `Idempotency-Key` was sent again with another upload (HTTP 422).
    KeyReused,
    /// The store cannot save changes now; nothing was done (HTTP 503).
    NotSaved(String),
    /// netlab failed (502) or hung (504).
    Netlab(NetlabError),
    /// The upload could not be written to disk.
    Io(std::io::Error),
    /// The lab's inventory cannot be read (`NotFound`: netlab wrote none).
    Inventory(std::io::Error),
    /// The slot's host failed the action: a lab agent reported `message`
    /// (its lab tool's error, or its lab's directory gone); HTTP 502, or
    /// 504 when the tool timed out.
    Host { message: String, timed_out: bool },
}

impl From<NetlabError> for LabError {
    fn from(error: NetlabError) -> Self {
        match error {
            NetlabError::Cancelled { .. } => LabError::Cancelled,
            other => LabError::Netlab(other),
        }
    }
}

impl std::fmt::Display for LabError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabError::Busy => f.write_str("Lab currently busy"),
            LabError::NotRunning => f.write_str("No lab running"),
            LabError::InUse => f.write_str("Lab still in use"),
            LabError::Cancelled => f.write_str("the lab request was cancelled"),
            LabError::Dirty(why) => f.write_str(why),
            LabError::KeyReused => f.write_str(
                "Idempotency-Key was already used for another upload (other files or reuse); send a fresh key",
            ),
            LabError::NotSaved(why) => f.write_str(why),
            LabError::Netlab(error) => error.fmt(f),
            LabError::Io(error) => write!(f, "could not write the lab files: {error}"),
            LabError::Inventory(error) if error.kind() == std::io::ErrorKind::NotFound => f.write_str(
                "netlab wrote no Ansible inventory (hosts.yml) for this lab",
            ),
            LabError::Inventory(error) => write!(f, "could not read the lab's inventory: {error}"),
            LabError::Host { message, .. } => f.write_str(message),
        }
    }
}

/// Told about every change of a slot's lab, in order. Called while the
/// slot's async mutex is held; must not block.
pub trait LabObserver: Send + Sync {
    fn lab_changed(&self, slot: usize, change: LabChange);
}

/// What a successful acquire hands back.
#[derive(Debug, Clone)]
pub struct Acquired {
    /// True when the request attached to a lab that was already running.
    pub reused: bool,
    pub devices: Arc<Vec<Device>>,
}

/// A snapshot of a slot's lab for readers.
#[derive(Debug, Clone, Default)]
pub struct LabView {
    /// The running topology's file name; `None` when no lab runs.
    pub topology: Option<String>,
    /// The running lab's identity (SHA-256, hex).
    pub identity: Option<String>,
    pub ref_count: u32,
    pub devices: Arc<Vec<Device>>,
    /// While the lab is kept for a next session: when it expires.
    pub kept_until: Option<tokio::time::Instant>,
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
    files: LabFiles,
    topology_name: String,
    ref_count: u32,
    devices: Arc<Vec<Device>>,
    /// The version of the tool that started it.
    built_by: String,
    /// The last session that held it.
    held_by: Option<SessionId>,
    /// While it is kept for a next session: the keep's number (only that
    /// keep's expiry may end it) and when it expires.
    kept: Option<(u64, tokio::time::Instant)>,
}

/// A slot's lab state, behind its async mutex.
#[derive(Debug, Default)]
struct SlotLab {
    running: Option<RunningLab>,
    /// A lab whose teardown failed. netlab may still have it registered,
    /// so its files are kept and its teardown is tried again before the
    /// slot's next bring-up (or `DELETE /lab`).
    dirty: Option<LabFiles>,
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

/// One lab slot of this host. See the module documentation.
pub struct LabSlot {
    /// Numbered from 1, in the coordinator's list of slots.
    number: usize,
    /// Where the slot's lab runs: this host or a lab agent's.
    driver: Arc<dyn SlotDriver>,
    observer: Arc<dyn LabObserver>,
    lab: tokio::sync::Mutex<SlotLab>,
    view: Mutex<LabView>,
    next_keep: AtomicU64,
    /// The tool's arguments that reset a kept lab for another session.
    warm_reset: Vec<String>,
    /// netlab's output of the current or last bring-up.
    log: Arc<BringUpLog>,
}

/// Directory names under the work root start with this; only such entries
/// are ever removed from it.
const DIR_PREFIX: &str = "lab-";

impl LabSlot {
    pub fn new(number: usize, driver: Arc<dyn SlotDriver>, observer: Arc<dyn LabObserver>) -> Self {
        LabSlot {
            number,
            driver,
            observer,
            lab: tokio::sync::Mutex::new(SlotLab::default()),
            view: Mutex::new(LabView::default()),
            next_keep: AtomicU64::new(0),
            warm_reset: Vec::new(),
            log: Arc::default(),
        }
    }

    /// Runs the tool with `args` in a kept lab's directory before another
    /// session gets it (`--warm-reset`; empty: no reset).
    pub fn with_warm_reset(mut self, args: Vec<String>) -> Self {
        self.warm_reset = args;
        self
    }

    /// Takes over a lab a previous run of the server left running (see
    /// [`crate::store`]): nobody holds it, so the next acquire of the same
    /// content with reuse attaches to it. With `keep_for` it is kept for a
    /// next session that long (reported as [`LabChange::Kept`]) and the
    /// keep's number is returned, for [`LabSlot::expire`]. Call before
    /// serving.
    pub fn adopt(&self, stored: &StoredLab, keep_for: Option<Duration>) -> Option<u64> {
        let mut lab = self
            .lab
            .try_lock()
            .expect("labs are adopted before anything else runs");
        let keep = keep_for.map(|expires_in| {
            let number = self.next_keep.fetch_add(1, Ordering::Relaxed);
            (number, tokio::time::Instant::now() + expires_in)
        });
        lab.running = Some(RunningLab {
            identity: Identity::restored(stored.identity.clone()),
            files: stored.files.clone(),
            topology_name: stored.topology.clone(),
            ref_count: 0,
            devices: Arc::new(stored.devices.clone().unwrap_or_default()),
            // Unknown for a lab stored before versions were: the health
            // gate then boots it afresh rather than trust it.
            built_by: stored.built_by.clone().unwrap_or_default(),
            held_by: None,
            kept: keep,
        });
        self.publish(&lab.running);
        tracing::info!(slot = self.number, topology = %stored.topology, dir = %stored.files.netlab_dir.display(), kept = keep.is_some(), "re-adopted the lab of the previous run");
        if let Some(expires_in) = keep_for {
            self.observer
                .lab_changed(self.number, LabChange::Kept { expires_in });
        }
        keep.map(|(number, _)| number)
    }

    /// Where a client reaches the slot's host over SSH; `None`: this host.
    pub fn ssh_address(&self) -> Option<String> {
        self.driver.ssh_address()
    }

    /// The slot's number, from 1.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The lab as of the last finished change. Never waits.
    pub fn view(&self) -> LabView {
        self.view
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The output of the current or last bring-up.
    pub fn bring_up_log(&self) -> &Arc<BringUpLog> {
        &self.log
    }

    /// netlab's Ansible inventory of the running lab (see [`inventory`]).
    /// Errors: [`LabError::NotRunning`] without a lab; [`LabError::Io`]
    /// [`LabError::Inventory`] when its files cannot be read.
    pub async fn inventory(&self) -> Result<inventory::Inventory, LabError> {
        // The lab's lock, so a teardown cannot pull the files away meanwhile.
        let lab = self.lab.lock().await;
        let running = lab.running.as_ref().ok_or(LabError::NotRunning)?;
        self.driver.inventory(&running.files).await
    }

    /// The lab tool's own status report (may take a moment).
    pub async fn tool_status(&self) -> Option<String> {
        self.driver.status().await
    }

    /// Gives the holder the lab of `upload`: joins the running one, replaces
    /// an idle one, or starts one (see [`plan`]). A lab kept from an earlier
    /// session is joined only once it passed [`LabSlot::ready_kept`], else
    /// it is started afresh. The holder is checked once this slot's lock is
    /// ours, and a bring-up stops when it is cancelled.
    pub async fn acquire(&self, upload: &Upload, holder: &Holder) -> Result<Acquired, LabError> {
        let mut lab = self.lab.lock().await;
        if holder.token.is_cancelled() {
            return Err(LabError::Cancelled);
        }
        let current = lab
            .running
            .as_ref()
            .map(|running| (&running.identity, running.ref_count));
        match plan(current, &upload.identity, upload.reuse)? {
            Plan::Attach => {
                let warm = lab
                    .running
                    .as_ref()
                    .is_some_and(|running| running.kept.is_some());
                if !warm || self.ready_kept(&mut lab, holder).await {
                    return Ok(self.attach(&mut lab, holder, warm));
                }
            }
            Plan::Replace => {
                let old = lab.running.take().expect("replace implies a running lab");
                self.publish(&lab.running);
                tracing::info!(
                    slot = self.number,
                    old = old.identity.short(),
                    new = upload.identity.short(),
                    "switching lab"
                );
                // A failed teardown leaves the slot dirty: cleaned below.
                let _ = self.stop(&mut lab, old.files).await;
            }
            Plan::Start => {}
        }
        self.clean_dirty(&mut lab).await?;
        let running = self.start(upload, holder).await?;
        let devices = Arc::clone(&running.devices);
        lab.running = Some(running);
        self.publish(&lab.running);
        Ok(Acquired {
            reused: false,
            devices,
        })
    }

    /// Joins the running lab: one more reference, held by `holder`.
    fn attach(&self, lab: &mut SlotLab, holder: &Holder, warm: bool) -> Acquired {
        let running = lab.running.as_mut().expect("attach implies a running lab");
        running.ref_count += 1;
        running.kept = None;
        running.held_by = Some(holder.session);
        let acquired = Acquired {
            reused: true,
            devices: Arc::clone(&running.devices),
        };
        let ref_count = running.ref_count;
        self.publish(&lab.running);
        self.observer
            .lab_changed(self.number, LabChange::Attached { ref_count, warm });
        acquired
    }

    /// Whether the kept lab may go to `holder`: netlab still lists it as
    /// `started` in its directory, the netlab installed now built it, and,
    /// for another session than its last holder, the warm reset passed.
    /// When not, the lab is cleared (nothing for the caller to report: it
    /// starts the lab afresh).
    async fn ready_kept(&self, lab: &mut SlotLab, holder: &Holder) -> bool {
        let running = lab.running.as_ref().expect("a kept lab runs");
        let (files, built_by) = (running.files.clone(), running.built_by.clone());
        let same_session = running.held_by == Some(holder.session);
        let problem = match self.driver.check(&files).await {
            Err(error) => Some(format!("its check failed: {error}")),
            Ok(Health { status: None, .. }) => {
                // netlab lists nothing there: nothing to tear down.
                tracing::warn!(slot = self.number, dir = %files.netlab_dir.display(), "the kept lab is gone (netlab lists no lab in its directory); starting it afresh");
                let old = lab.running.take().expect("checked above");
                self.publish(&lab.running);
                self.observer
                    .lab_changed(self.number, LabChange::TearingDown);
                self.driver.forget(&old.files).await;
                self.observer.lab_changed(
                    self.number,
                    LabChange::Down {
                        took: Duration::ZERO,
                    },
                );
                return false;
            }
            Ok(Health {
                status: Some(status),
                ..
            }) if status != "started" => Some(format!("netlab reports it `{status}`")),
            Ok(Health { version, .. }) if version != built_by => Some(format!(
                "netlab {built_by} built it, netlab {version} is installed now"
            )),
            Ok(_) if self.warm_reset.is_empty() || same_session => None,
            Ok(_) => self
                .reset(&files)
                .await
                .err()
                .map(|error| format!("the warm reset failed: {error}")),
        };
        let Some(problem) = problem else {
            return true;
        };
        tracing::warn!(slot = self.number, %problem, "the kept lab cannot be handed over; starting it afresh");
        let old = lab.running.take().expect("checked above");
        self.publish(&lab.running);
        // A failed teardown leaves the slot dirty: the caller cleans it.
        let _ = self.stop(lab, old.files).await;
        false
    }

    /// Runs the warm reset in the lab's directory.
    async fn reset(&self, files: &LabFiles) -> Result<(), LabError> {
        let command = self.warm_reset.join(" ");
        tracing::info!(slot = self.number, %command, "resetting the kept lab for another session");
        self.observer
            .lab_changed(self.number, LabChange::Resetting { command });
        self.driver.reset(files, &self.warm_reset).await
    }

    /// Drops one of `holder`'s references. At zero the lab stays up, idle,
    /// for reuse.
    pub async fn release(&self, holder: &Holder) -> Result<(), LabError> {
        let mut lab = self.lab.lock().await;
        if holder.token.is_cancelled() {
            return Err(LabError::Cancelled);
        }
        let running = lab.running.as_mut().ok_or(LabError::NotRunning)?;
        running.ref_count = running.ref_count.saturating_sub(1);
        let ref_count = running.ref_count;
        self.publish(&lab.running);
        self.observer
            .lab_changed(self.number, LabChange::Released { ref_count });
        if ref_count == 0 {
            self.observer.lab_changed(self.number, LabChange::Idle);
        }
        Ok(())
    }

    /// Tears the lab down (and a dirty one's leftovers). Returns whether
    /// a lab was running. With `force=false` a lab that someone still holds
    /// is left alone. `holder`: the session that asks (checked under the
    /// lock), or `None` for the server itself (a hand-back, shutdown).
    /// Waits for a change in flight (a cancelled bring-up stops quickly).
    pub async fn destroy(&self, force: bool, holder: Option<&Holder>) -> Result<bool, LabError> {
        let mut lab = self.lab.lock().await;
        if holder.is_some_and(|holder| holder.token.is_cancelled()) {
            return Err(LabError::Cancelled);
        }
        match lab.running.as_ref() {
            None => return self.clean_dirty(&mut lab).await,
            Some(running) if !force && running.ref_count > 0 => return Err(LabError::InUse),
            Some(_) => {}
        }
        let running = lab.running.take().expect("checked above");
        self.publish(&lab.running);
        self.stop(&mut lab, running.files).await?;
        Ok(true)
    }

    /// Keeps the lab up, unheld, after its holder left, for `expires_in`.
    /// Returns the keep's number for [`LabSlot::expire`]; `None` when there
    /// is no lab to keep.
    pub async fn keep(&self, expires_in: Duration) -> Option<u64> {
        let mut lab = self.lab.lock().await;
        let running = lab.running.as_mut()?;
        let keep = self.next_keep.fetch_add(1, Ordering::Relaxed);
        running.ref_count = 0;
        running.kept = Some((keep, tokio::time::Instant::now() + expires_in));
        tracing::info!(slot = self.number, topology = %running.topology_name, seconds = expires_in.as_secs(), "keeping the lab up for the next session");
        self.publish(&lab.running);
        self.observer
            .lab_changed(self.number, LabChange::Kept { expires_in });
        Some(keep)
    }

    /// Tears the lab down if it is still kept by keep `keep`: exactly one
    /// of this and an attach wins, under the slot's lock. Returns whether
    /// it expired.
    pub async fn expire(&self, keep: u64) -> bool {
        let mut lab = self.lab.lock().await;
        let still_kept = lab
            .running
            .as_ref()
            .and_then(|running| running.kept)
            .is_some_and(|(number, _)| number == keep);
        if !still_kept {
            return false;
        }
        tracing::info!(slot = self.number, "the kept lab was not asked for in time");
        self.observer.lab_changed(self.number, LabChange::Expired);
        let old = lab.running.take().expect("checked above");
        self.publish(&lab.running);
        let _ = self.stop(&mut lab, old.files).await;
        true
    }

    /// Tries the failed teardown of a dirty slot again. Returns whether
    /// there was one; an error when it failed again (the slot stays dirty).
    async fn clean_dirty(&self, lab: &mut SlotLab) -> Result<bool, LabError> {
        let Some(files) = lab.dirty.take() else {
            return Ok(false);
        };
        tracing::warn!(slot = self.number, dir = %files.dir.display(), "cleaning up the lab whose teardown failed");
        self.stop(lab, files).await.map_err(|error| {
            LabError::Dirty(format!(
                "lab slot {} is dirty: the teardown of its previous lab failed again ({error}); \
                 an operator can clean it with `netlab down --cleanup` or `netlab status --reset`",
                self.number
            ))
        })?;
        Ok(true)
    }

    async fn start(&self, upload: &Upload, holder: &Holder) -> Result<RunningLab, LabError> {
        let on_files = |files: &LabFiles| {
            tracing::info!(slot = self.number, topology = %upload.topology_name, identity = upload.identity.short(), dir = %files.netlab_dir.display(), "starting lab");
            self.observer.lab_changed(
                self.number,
                LabChange::Starting {
                    topology: upload.topology_name.clone(),
                    identity: upload.identity.to_string(),
                    files: files.clone(),
                    built_by: self.driver.version(),
                },
            );
        };
        let started = Instant::now();
        self.log.begin();
        let log = Arc::clone(&self.log) as Arc<dyn LineSink>;
        let outcome = (self.driver)
            .start(upload, &holder.token, log, &on_files)
            .await;
        self.log.end();
        match outcome {
            Ok(Started {
                files,
                devices,
                built_by,
            }) => {
                let took = started.elapsed();
                tracing::info!(
                    slot = self.number,
                    devices = devices.len(),
                    seconds = took.as_secs_f64(),
                    "lab is up"
                );
                let devices = Arc::new(devices);
                self.observer.lab_changed(
                    self.number,
                    LabChange::Up {
                        devices: Arc::clone(&devices),
                        took,
                    },
                );
                Ok(RunningLab {
                    identity: upload.identity.clone(),
                    files,
                    topology_name: upload.topology_name.clone(),
                    ref_count: 1,
                    devices,
                    built_by,
                    held_by: Some(holder.session),
                    kept: None,
                })
            }
            Err(error) => {
                if matches!(error, LabError::Cancelled) {
                    tracing::info!(slot = self.number, "bring-up cancelled; cleaned up");
                } else {
                    tracing::error!(slot = self.number, %error, "lab bring-up failed; cleaned up");
                }
                self.observer.lab_changed(self.number, failure(&error));
                Err(error)
            }
        }
    }

    /// Tears down the lab in `files`. On success its directory goes; on
    /// failure the slot is left dirty with the files kept, because netlab
    /// may still have the lab registered there.
    async fn stop(&self, lab: &mut SlotLab, files: LabFiles) -> Result<(), LabError> {
        tracing::info!(slot = self.number, dir = %files.netlab_dir.display(), "tearing lab down");
        self.observer
            .lab_changed(self.number, LabChange::TearingDown);
        let started = Instant::now();
        match self.driver.stop(&files).await {
            Ok(()) => {
                self.observer.lab_changed(
                    self.number,
                    LabChange::Down {
                        took: started.elapsed(),
                    },
                );
                Ok(())
            }
            Err(error) => {
                tracing::error!(slot = self.number, %error, "lab teardown failed; the slot is dirty");
                self.observer.lab_changed(
                    self.number,
                    LabChange::Dirty {
                        error: error.to_string(),
                    },
                );
                lab.dirty = Some(files);
                Err(error)
            }
        }
    }

    fn publish(&self, lab: &Option<RunningLab>) {
        let view = match lab {
            None => LabView::default(),
            Some(running) => LabView {
                topology: Some(running.topology_name.clone()),
                identity: Some(running.identity.to_string()),
                ref_count: running.ref_count,
                devices: Arc::clone(&running.devices),
                kept_until: running.kept.map(|(_, until)| until),
            },
        };
        *self
            .view
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = view;
    }
}

/// The [`LabChange::Failed`] report of a failed bring-up.
fn failure(error: &LabError) -> LabChange {
    let (command, exit_code) = match error {
        LabError::Netlab(NetlabError::Failed { command, code, .. }) => {
            (Some(command.clone()), *code)
        }
        LabError::Netlab(
            NetlabError::TimedOut { command, .. }
            | NetlabError::Spawn { command, .. }
            | NetlabError::BadOutput { command, .. }
            | NetlabError::Cancelled { command },
        ) => (Some(command.clone()), None),
        _ => (None, None),
    };
    LabChange::Failed {
        command,
        exit_code,
        error: error.to_string(),
    }
}

/// Removes lab directories an earlier run left in `work_root`, except
/// those in `keep` (labs re-adopted from it).
pub async fn remove_stale_dirs(work_root: &Path, keep: &[PathBuf]) -> std::io::Result<usize> {
    let root = work_root.to_path_buf();
    let keep = keep.to_vec();
    tokio::task::spawn_blocking(move || {
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(error),
        };
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(DIR_PREFIX)
                && !keep.contains(&entry.path())
            {
                std::fs::remove_dir_all(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests;
