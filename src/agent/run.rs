//! The lab agent (`neops-remote-lab agent`): registers this host's slots
//! with the coordinator, long-polls their desired state, converges each
//! slot to it with the same [`LocalSlotDriver`] a single-host server uses,
//! and reports what it reached.
//!
//! Convergence is level-triggered: every poll answer (at least every
//! [`POLL_SECONDS`]) wakes every slot, which acts if it differs from what is
//! wanted and reports its state again otherwise, so a lost report or a lost
//! answer is repaired by the next poll. A slot never acts on an assignment
//! older than the newest it has acted on.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::wire::{
    Capabilities, DesiredState, LogLines, Register, Registered, Report, RunningLab, SlotDesired,
    SlotReport, UploadFiles, WantedLab,
};
use crate::lab::lock::LabLock;
use crate::lab::netlab::{Netlab, NetlabConfig, NetlabError};
use crate::lab::readopt::readopt_or_clear;
use crate::lab::slot_driver::{LocalSlotDriver, SlotDriver, Started};
use crate::lab::{BoxFuture, LabError, LabFiles, LineSink};

/// What the agent is told at its start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The coordinator's base URL.
    pub coordinator: String,
    /// This lab host's name in the pool.
    pub name: String,
    pub slots: usize,
    /// The pool's agent secret.
    pub secret: String,
    pub netlab: NetlabConfig,
    /// Where the labs' folders go.
    pub work_dir: PathBuf,
    /// Where the host-wide lab locks live.
    pub lock_dir: PathBuf,
    /// Where clients reach this host over SSH; `None`: its name.
    pub ssh_address: Option<String>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("netlab cannot be run: {0}")]
    Netlab(NetlabError),
    #[error("the coordinator refused this agent: {0}")]
    Refused(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// The coordinator, as the agent talks to it.
#[derive(Clone)]
struct Coordinator {
    http: reqwest::Client,
    base: String,
    name: String,
    incarnation: String,
}

impl Coordinator {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    async fn register(&self, register: &Register) -> Result<Registered, Fault> {
        let response = (self.http.post(self.url("/agent/register")))
            .json(register)
            .send()
            .await;
        json(response).await
    }

    async fn desired(&self, after: u64) -> Result<DesiredState, Fault> {
        let response = (self.http.get(self.url("/agent/desired")))
            .query(&[
                ("name", self.name.as_str()),
                ("incarnation", &self.incarnation),
            ])
            .query(&[("after", after)])
            .timeout(Duration::from_secs(super::wire::POLL_SECONDS + 10))
            .send()
            .await;
        json(response).await
    }

    async fn report(&self, slot: usize, epoch: u64, state: SlotReport) {
        let report = Report {
            name: self.name.clone(),
            incarnation: self.incarnation.clone(),
            slot,
            epoch,
            state,
        };
        let sent = (self.http.post(self.url("/agent/report")))
            .json(&report)
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == StatusCode::CONFLICT => {
                tracing::info!(slot, epoch, "the coordinator refused a stale report");
            }
            Ok(response) if !response.status().is_success() => {
                tracing::warn!(slot, epoch, status = %response.status(), "report not taken; the next poll repeats it");
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(slot, epoch, %error, "report lost; the next poll repeats it")
            }
        }
    }

    async fn upload(&self, slot: usize, epoch: u64) -> Result<UploadFiles, Fault> {
        let response = (self.http.get(self.url("/agent/upload")))
            .query(&[
                ("name", self.name.as_str()),
                ("incarnation", &self.incarnation),
            ])
            .query(&[("slot", slot as u64), ("epoch", epoch)])
            .send()
            .await;
        json(response).await
    }

    async fn log(&self, slot: usize, epoch: u64, lines: Vec<String>) {
        let lines = LogLines {
            name: self.name.clone(),
            incarnation: self.incarnation.clone(),
            slot,
            epoch,
            lines,
        };
        // Output is best effort: a lost batch loses lines, not the lab.
        let _ = (self.http.post(self.url("/agent/log")))
            .json(&lines)
            .send()
            .await;
    }
}

/// The JSON answer of a call, or why there is none.
async fn json<T: serde::de::DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, Fault> {
    let response = sent.map_err(Fault::Network)?;
    match response.status() {
        status if status.is_success() => response.json().await.map_err(Fault::Network),
        status => Err(Fault::Refused(
            status,
            response.text().await.unwrap_or_default(),
        )),
    }
}

/// A failed call to the coordinator.
#[derive(Debug)]
enum Fault {
    Network(reqwest::Error),
    Refused(StatusCode, String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Network(error) => write!(f, "{error}"),
            Fault::Refused(status, body) => write!(f, "{status}: {body}"),
        }
    }
}

/// Runs the agent until `stop`; its labs are torn down then.
pub async fn run(config: AgentConfig, stop: CancellationToken) -> Result<(), AgentError> {
    let netlab = Netlab::connect(config.netlab.clone())
        .await
        .map_err(AgentError::Netlab)?;
    let capabilities = Capabilities {
        netlab_version: netlab.version().to_string(),
        up_args: config.netlab.up_args.clone(),
        ssh_address: config.ssh_address.clone(),
    };
    let host = NetlabHost {
        netlab,
        work_dir: config.work_dir.clone(),
        lock_dir: config.lock_dir.clone(),
    };
    let pool = PoolAccess {
        coordinator: config.coordinator,
        name: config.name,
        slots: config.slots,
        secret: config.secret,
    };
    join_pool(pool, capabilities, &host, stop).await
}

/// How an agent reaches its pool.
#[derive(Debug, Clone)]
pub struct PoolAccess {
    /// The coordinator's base URL.
    pub coordinator: String,
    /// This lab host's name in the pool.
    pub name: String,
    pub slots: usize,
    /// The pool's agent secret.
    pub secret: String,
}

/// Where an agent's slots run their labs: netlab on this host, or (for
/// simulations) anything else behind the slot-driver interface.
pub trait LabHost: Sync {
    /// Clears whatever an earlier agent left in slots `numbers`.
    fn clear<'a>(&'a self, numbers: &'a [usize]) -> BoxFuture<'a, ()>;

    /// The driver of slot `number` (pool-wide; also its multilab id).
    fn slot(&self, number: usize) -> Box<dyn SlotDriver>;
}

/// This host's netlab, its work folder and lab locks.
struct NetlabHost {
    netlab: Netlab,
    work_dir: PathBuf,
    lock_dir: PathBuf,
}

impl LabHost for NetlabHost {
    fn clear<'a>(&'a self, numbers: &'a [usize]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            readopt_or_clear(&self.netlab, numbers, &self.work_dir, &[]).await;
        })
    }

    fn slot(&self, number: usize) -> Box<dyn SlotDriver> {
        Box::new(LocalSlotDriver::new(
            number,
            Arc::new(self.netlab.for_slot(number)),
            self.work_dir.clone(),
            LabLock::for_slot(&self.lock_dir, number),
        ))
    }
}

/// Registers with the pool's coordinator, then converges every slot to
/// its desired state until `stop` (see the module documentation).
pub async fn join_pool(
    pool: PoolAccess,
    capabilities: Capabilities,
    host: &dyn LabHost,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    let http = reqwest::Client::builder()
        .default_headers(bearer(&pool.secret))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(AgentError::Client)?;
    let coordinator = Coordinator {
        http,
        base: pool.coordinator.clone(),
        name: pool.name.clone(),
        incarnation: uuid::Uuid::new_v4().to_string(),
    };
    let register = Register {
        name: pool.name.clone(),
        incarnation: coordinator.incarnation.clone(),
        slots: pool.slots,
        capabilities,
        running: Vec::new(),
    };
    let Some(mut registered) = register_until_taken(&coordinator, &register, &stop).await? else {
        return Ok(());
    };
    let running = Arc::new(Mutex::new(Vec::<RunningLab>::new()));
    loop {
        tracing::info!(host = %pool.name, slots = ?registered.slots, incarnation = %coordinator.incarnation, "registered with the coordinator");
        // Slots it did not hold before own nothing yet: whatever an
        // earlier agent on this host left in them goes.
        host.clear(&registered.slots).await;
        // One generation of slot tasks per set of slot numbers.
        let generation = stop.child_token();
        let mut senders = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for &number in &registered.slots {
            let (sender, receiver) = watch::channel(SlotDesired {
                slot: number,
                epoch: 0,
                lab: None,
            });
            senders.push(sender);
            let slot = SlotAgent {
                number,
                driver: host.slot(number),
                coordinator: coordinator.clone(),
                running: None,
                done: 0,
                last: None,
                labs: Arc::clone(&running),
            };
            tasks.spawn(slot.converge_until(receiver, generation.clone()));
        }
        let renumbered = poll_until(
            &coordinator,
            &register,
            &registered,
            &senders,
            &running,
            &stop,
        )
        .await;
        // Stopping or renumbered: this generation's slots tear their labs down.
        generation.cancel();
        drop(senders);
        while tasks.join_next().await.is_some() {}
        running.lock().unwrap_or_else(|p| p.into_inner()).clear();
        match renumbered {
            Some(again) => {
                tracing::warn!(before = ?registered.slots, now = ?again.slots, "the coordinator gave this host other slot numbers; its labs were torn down");
                registered = again;
            }
            None => return Ok(()),
        }
    }
}

/// Registers, retrying while the coordinator cannot be reached. `None`
/// when `stop` came first.
async fn register_until_taken(
    coordinator: &Coordinator,
    register: &Register,
    stop: &CancellationToken,
) -> Result<Option<Registered>, AgentError> {
    let mut delay = Duration::from_millis(200);
    loop {
        match coordinator.register(register).await {
            Ok(registered) => return Ok(Some(registered)),
            Err(Fault::Refused(status, body)) if status.is_client_error() => {
                return Err(AgentError::Refused(format!("{status}: {body}")));
            }
            Err(fault) => tracing::warn!(%fault, "cannot register yet; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Polls the desired state and hands each slot its part, until `stop`
/// (`None`). A coordinator that no longer knows this incarnation (it
/// restarted) is registered with again, with the labs that run; when it
/// answers with other slot numbers than `registered`, those are returned.
async fn poll_until(
    coordinator: &Coordinator,
    register: &Register,
    registered: &Registered,
    senders: &[watch::Sender<SlotDesired>],
    running: &Mutex<Vec<RunningLab>>,
    stop: &CancellationToken,
) -> Option<Registered> {
    let mut version = 0;
    let mut delay = Duration::from_millis(200);
    loop {
        let answer = tokio::select! {
            () = stop.cancelled() => return None,
            answer = coordinator.desired(version) => answer,
        };
        match answer {
            Ok(desired) => {
                delay = Duration::from_millis(200);
                // An answer without a change (the poll ran out) wakes every
                // slot to report its state again (level-triggered); a change
                // wakes only the slots it changed.
                let unchanged = desired.version == version;
                version = desired.version;
                for wanted in desired.slots {
                    if let Some(sender) = senders.iter().find(|s| s.borrow().slot == wanted.slot) {
                        sender.send_if_modified(|current| {
                            let changed = *current != wanted;
                            *current = wanted;
                            changed || unchanged
                        });
                    }
                }
                continue;
            }
            Err(Fault::Refused(StatusCode::CONFLICT, body)) => {
                tracing::warn!(%body, "the coordinator does not know this agent now; registering again");
                let again = Register {
                    running: running.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                    ..register.clone()
                };
                version = 0;
                match coordinator.register(&again).await {
                    Ok(answer) if answer.slots != registered.slots => return Some(answer),
                    // Polled again at once: the host must not look silent.
                    Ok(_) => {
                        delay = Duration::from_millis(200);
                        continue;
                    }
                    Err(fault) => tracing::warn!(%fault, "registering again failed"),
                }
            }
            Err(fault) => tracing::warn!(%fault, "cannot reach the coordinator; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

fn bearer(secret: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {secret}"))
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("Bearer invalid"));
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    headers
}

/// The lab a slot runs, and for which assignment.
struct Running {
    epoch: u64,
    identity: String,
    started: Started,
    inventory: crate::lab::inventory::Inventory,
}

/// One slot of this host, converging to its desired state.
struct SlotAgent {
    number: usize,
    driver: Box<dyn SlotDriver>,
    coordinator: Coordinator,
    running: Option<Running>,
    /// The newest epoch acted on; older assignments are refused.
    done: u64,
    /// The last report sent, of epoch `done`.
    last: Option<SlotReport>,
    /// What every slot runs, for a registration after a coordinator restart.
    labs: Arc<Mutex<Vec<RunningLab>>>,
}

impl SlotAgent {
    async fn converge_until(
        mut self,
        mut desired: watch::Receiver<SlotDesired>,
        stop: CancellationToken,
    ) {
        loop {
            let wanted = desired.borrow_and_update().clone();
            if wanted.epoch < self.done {
                tracing::warn!(
                    slot = self.number,
                    epoch = wanted.epoch,
                    done = self.done,
                    "refused an assignment older than one already acted on"
                );
            } else if wanted.epoch == self.done {
                // Acted on already (a failed bring-up is not tried again):
                // say again how it ended, in case that report was lost.
                if let Some(state) = self.last.clone() {
                    self.report(wanted.epoch, state).await;
                }
            } else if wanted.epoch > 0 {
                self.converge(&wanted, &mut desired).await;
                self.done = wanted.epoch;
                self.publish();
            }
            tokio::select! {
                () = stop.cancelled() => break,
                changed = desired.changed() => if changed.is_err() { break },
            }
        }
        if let Some(running) = self.running.take() {
            tracing::info!(slot = self.number, "agent stopping: tearing the lab down");
            if let Err(error) = self.driver.stop(&running.started.files).await {
                tracing::error!(slot = self.number, %error, "teardown at stop failed");
            }
        }
    }

    fn publish(&self) {
        let mut labs = self.labs.lock().unwrap_or_else(|p| p.into_inner());
        labs.retain(|lab| lab.slot != self.number);
        if let Some(running) = &self.running {
            labs.push(RunningLab {
                slot: self.number,
                epoch: running.epoch,
                identity: running.identity.clone(),
            });
        }
    }

    async fn report(&mut self, epoch: u64, state: SlotReport) {
        self.last = Some(state.clone());
        self.coordinator.report(self.number, epoch, state).await;
    }

    /// Brings the slot to `wanted` and reports the outcome.
    async fn converge(&mut self, wanted: &SlotDesired, desired: &mut watch::Receiver<SlotDesired>) {
        let epoch = wanted.epoch;
        match (&wanted.lab, self.running.as_ref()) {
            (Some(lab), Some(running)) if lab.identity == running.identity => {
                if !lab.reset.is_empty() && running.epoch != epoch {
                    self.reset(lab, epoch).await;
                } else if let Some(running) = self.running.as_mut() {
                    running.epoch = epoch;
                    let state = up(running);
                    self.report(epoch, state).await;
                }
            }
            (lab, _) => {
                if let Err(message) = self.stop_running().await {
                    self.report(epoch, SlotReport::Dirty { message }).await;
                    return;
                }
                match lab {
                    None => self.report(epoch, SlotReport::Down).await,
                    Some(lab) => self.start(lab, epoch, desired).await,
                }
            }
        }
    }

    async fn stop_running(&mut self) -> Result<(), String> {
        let Some(running) = self.running.take() else {
            return Ok(());
        };
        tracing::info!(
            slot = self.number,
            identity = &running.identity[..12],
            "tearing the lab down"
        );
        let outcome = self.driver.stop(&running.started.files).await;
        outcome.map_err(|error| {
            let message = error.to_string();
            // Kept, so the next convergence tries its teardown again.
            self.running = Some(running);
            message
        })
    }

    async fn reset(&mut self, lab: &WantedLab, epoch: u64) {
        let Some(running) = self.running.as_mut() else {
            return;
        };
        tracing::info!(slot = self.number, command = %lab.reset.join(" "), "resetting the lab");
        let outcome = self.driver.reset(&running.started.files, &lab.reset).await;
        running.epoch = epoch;
        let state = match outcome {
            Ok(()) => up(running),
            Err(error) => failed(&error),
        };
        self.report(epoch, state).await;
    }

    async fn start(
        &mut self,
        lab: &WantedLab,
        epoch: u64,
        desired: &mut watch::Receiver<SlotDesired>,
    ) {
        let fetched = match self.coordinator.upload(self.number, epoch).await {
            Ok(files) => files.into_upload(),
            Err(fault) => Err(fault.to_string()),
        };
        let fetched =
            fetched.and_then(|upload| match upload.identity.to_string() == lab.identity {
                true => Ok(upload),
                false => Err("the files do not have the wanted identity".to_string()),
            });
        let upload = match fetched {
            Ok(upload) => upload,
            Err(message) => {
                let message = format!("cannot fetch the lab's files: {message}");
                return self
                    .report(
                        epoch,
                        SlotReport::Failed {
                            message,
                            timed_out: false,
                        },
                    )
                    .await;
            }
        };
        let cancel = CancellationToken::new();
        let log = LogForwarder::start(self.coordinator.clone(), self.number, epoch);
        let coordinator = self.coordinator.clone();
        let number = self.number;
        let on_files = move |files: &LabFiles| {
            let (coordinator, files) = (coordinator.clone(), files.clone());
            tokio::spawn(async move {
                coordinator
                    .report(number, epoch, SlotReport::Booting { files })
                    .await;
            });
        };
        tracing::info!(slot = self.number, topology = %lab.topology, epoch, "bringing the lab up");
        let outcome = {
            let start = self.driver.start(&upload, &cancel, log.clone(), &on_files);
            tokio::pin!(start);
            tokio::select! {
                outcome = &mut start => outcome,
                () = newer_assignment(desired, epoch) => {
                    tracing::info!(slot = self.number, "the assignment changed during the bring-up; stopping it");
                    cancel.cancel();
                    start.await
                }
            }
        };
        log.finish().await;
        let state = match outcome {
            Ok(started) => {
                let inventory = self
                    .driver
                    .inventory(&started.files)
                    .await
                    .unwrap_or_default();
                let running = Running {
                    epoch,
                    identity: lab.identity.clone(),
                    started,
                    inventory,
                };
                let state = up(&running);
                self.running = Some(running);
                state
            }
            Err(error) => failed(&error),
        };
        self.report(epoch, state).await;
    }
}

/// Completes once an assignment newer than `epoch` arrives (never, once
/// the coordinator's side is gone).
async fn newer_assignment(desired: &mut watch::Receiver<SlotDesired>, epoch: u64) {
    if desired.wait_for(|newer| newer.epoch > epoch).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn up(running: &Running) -> SlotReport {
    SlotReport::Up {
        files: running.started.files.clone(),
        devices: running.started.devices.clone(),
        inventory: running.inventory.clone(),
        built_by: running.started.built_by.clone(),
    }
}

fn failed(error: &LabError) -> SlotReport {
    let timed_out = matches!(error, LabError::Netlab(NetlabError::TimedOut { .. }));
    SlotReport::Failed {
        message: error.to_string(),
        timed_out,
    }
}

/// Sends a bring-up's output lines to the coordinator in batches, at most
/// [`LOG_BATCH_EVERY`] apart.
struct LogForwarder {
    coordinator: Coordinator,
    slot: usize,
    epoch: u64,
    pending: Mutex<Vec<String>>,
    wake: Notify,
    done: CancellationToken,
}

/// How long lines wait to be sent together.
const LOG_BATCH_EVERY: Duration = Duration::from_millis(200);

impl LogForwarder {
    /// A forwarder whose batches go out from now until [`Self::finish`].
    fn start(coordinator: Coordinator, slot: usize, epoch: u64) -> Arc<Self> {
        let forwarder = Arc::new(LogForwarder {
            coordinator,
            slot,
            epoch,
            pending: Mutex::default(),
            wake: Notify::new(),
            done: CancellationToken::new(),
        });
        let sender = Arc::clone(&forwarder);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sender.done.cancelled() => return,
                    () = sender.wake.notified() => {}
                }
                tokio::time::sleep(LOG_BATCH_EVERY).await;
                sender.flush().await;
            }
        });
        forwarder
    }

    /// Sends what is left and stops the batches.
    async fn finish(&self) {
        self.done.cancel();
        self.flush().await;
    }

    async fn flush(&self) {
        let lines = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if !lines.is_empty() {
            self.coordinator.log(self.slot, self.epoch, lines).await;
        }
    }
}

impl LineSink for LogForwarder {
    fn line(&self, line: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line.to_string());
        self.wake.notify_one();
    }
}
