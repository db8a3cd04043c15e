//! Server life cycle: listen for stop signals, take the host, open the
//! state store, check netlab, bind, re-adopt the labs that still run and
//! clear what else an earlier run left, put the stored queue back, serve;
//! on SIGTERM/SIGINT stop accepting, cancel lab work in flight, tear every
//! slot's lab down (bounded; unless `--keep-labs-on-stop`), write what is
//! queued, release the host. A second signal during shutdown exits at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::pool::Liveness;
use crate::api;
use crate::api::agent::AgentSecret;
use crate::app::{AgentPool, App, Blueprint};
use crate::auth::{Auth, TokenError, TokenSource};
use crate::coordinator::placement::Policy;
use crate::coordinator::{Restored, labs_to_readopt};
use crate::lab::declared::DeclaredLabs;
use crate::lab::lock::LabLock;
use crate::lab::netlab::{Netlab, NetlabConfig};
use crate::lab::readopt::readopt_or_clear;
use crate::lab::slot_driver::LocalSlotDriver;
use crate::lab::{LabSlot, orphans};

use crate::queue::Timeouts;
use crate::serve;
use crate::server_guard::{GuardError, ServerGuard, ServerMeta};
use crate::store::sqlite::SqliteStore;
use crate::store::{InMemory, Snapshot, Store, StoreError, StoredLab};

/// How long in-flight requests get to finish after a stop signal.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// As given on the command line, for the metadata file.
    pub log_level: String,
    /// `--log-config`, recorded in the metadata file only.
    pub log_config: Option<PathBuf>,
    pub timeouts: Timeouts,
    /// How many labs may run at once, each for one ACTIVE session.
    pub lab_slots: usize,
    pub netlab: NetlabConfig,
    pub max_upload_bytes: u64,
    /// Longest time one upload's body may take to arrive (408 past it).
    pub upload_timeout: Duration,
    /// Where lab directories live; default `<tmpdir>/neops_remote_lab_labs`.
    pub work_dir: Option<PathBuf>,
    /// Upper bound for tearing the labs down at shutdown.
    pub shutdown_timeout: Duration,
    /// Where the queue and the labs are stored; `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
    /// Leave the labs running at a graceful stop, for the next start to
    /// re-adopt.
    pub keep_labs_on_stop: bool,
    /// How long a lab stays up after its holder left, for the next session
    /// that asks for the same lab; zero: torn down at once.
    pub keep_idle_lab: Duration,
    /// Who gets a free slot (`--placement`, `--max-bypass`).
    pub placement: Policy,
    /// netlab arguments run in a kept lab's directory before another
    /// session gets it (e.g. `initial`); empty: none.
    pub warm_reset: Vec<String>,
    /// Where the bearer tokens come from; `None`: auth off.
    pub tokens: Option<TokenSource>,
    /// The pool's agent secret; `None`: no lab agents may join.
    pub agent_secret: Option<String>,
    /// When a silent lab agent is offline, and when lost.
    pub liveness: Liveness,
}

/// Why the server could not start or stopped abnormally; each is reported
/// and exits 1.
#[derive(Debug)]
pub enum ServerError {
    HostTaken(GuardError),
    Tokens(TokenError),
    /// The agent secret cannot be used.
    Agents(String),
    NetlabMissing(String),
    Bind(String, std::io::Error),
    Io(std::io::Error),
    /// The state store cannot be used; the server must not start empty.
    Store(StoreError),
    /// The deadline timer stopped: sessions would no longer be evicted.
    TimerStopped(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::HostTaken(error) => error.fmt(f),
            ServerError::Tokens(error) => write!(f, "cannot use the tokens: {error}"),
            ServerError::Agents(why) => write!(f, "cannot accept lab agents: {why}"),
            ServerError::NetlabMissing(error) => write!(
                f,
                "netlab does not work: {error}\n\
                 Install it with `pip install networklab` (https://netlab.tools), or point \
                 --netlab-bin / NEOPS_NETLAB_BIN at its executable."
            ),
            ServerError::Bind(address, error) => write!(f, "cannot listen on {address}: {error}"),
            ServerError::Io(error) => error.fmt(f),
            ServerError::Store(error) => error.fmt(f),
            ServerError::TimerStopped(why) => {
                write!(f, "the session deadline timer stopped ({why}); exiting")
            }
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then cleans up.
pub async fn run(config: Config) -> Result<(), ServerError> {
    // First of all: a stop signal during start-up must still clean up.
    let stop = CancellationToken::new();
    tokio::spawn(forward_stop_signals(stop.clone()));
    let auth = match config.tokens.clone() {
        None => None,
        Some(source) => {
            let auth = Arc::new(Auth::load(source).map_err(ServerError::Tokens)?);
            tracing::info!(tokens = auth.count(), "bearer-token auth is on");
            Some(auth)
        }
    };
    reload_on_hangup(auth.clone())?;

    match serve::raise_open_files_limit() {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open files limit"),
    }
    // Absolute: netlab runs in each lab's folder, so relative paths would
    // point elsewhere from there.
    let tmp = absolute(std::env::temp_dir())?;
    let guard = ServerGuard::acquire_all(&guarded_folders(&tmp)).map_err(ServerError::HostTaken)?;
    let (store, snapshot) = open_store(config.state_dir.clone()).await?;
    // This server's processes carry its owner tag; a killed predecessor's
    // are stopped before anything else runs.
    let owner = tmp.display().to_string();
    let netlab_config = NetlabConfig {
        owner: Some(owner.clone()),
        ..config.netlab.clone()
    };
    let grace = netlab_config.kill_grace;
    let stopped = tokio::task::spawn_blocking(move || orphans::stop_left_behind(&owner, grace))
        .await
        .unwrap_or(0);
    if stopped > 0 {
        tracing::warn!(
            count = stopped,
            "stopped processes a killed earlier server left running"
        );
    }
    let netlab = tokio::select! {
        connected = Netlab::connect(netlab_config) => {
            connected.map_err(|error| ServerError::NetlabMissing(error.to_string()))?
        }
        () = stop.cancelled() => {
            tracing::warn!("stop signal during start-up: exiting");
            return Ok(());
        }
    };
    tracing::info!(version = netlab.version(), "netlab found");

    let address = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|error| ServerError::Bind(address.clone(), error))?;
    let bound = listener.local_addr().map_err(ServerError::Io)?;

    let work_root = absolute(
        config
            .work_dir
            .clone()
            .unwrap_or_else(|| tmp.join("neops_remote_lab_labs")),
    )?;
    let keep_idle = !config.keep_idle_lab.is_zero();
    // The previous run's lab hosts keep their slots only while agents may
    // join.
    let hosts = match config.agent_secret {
        Some(_) => snapshot.hosts,
        None => Vec::new(),
    };
    let slots = config.lab_slots + hosts.iter().map(|host| host.slots.len()).sum::<usize>();
    let candidates = labs_to_readopt(&snapshot.sessions, &snapshot.labs, slots, keep_idle);
    for lab in snapshot.labs.iter().filter(|lab| !candidates.contains(lab)) {
        tracing::warn!(
            slot = lab.slot,
            "the stored lab's holder does not keep its slot (or it was kept and --keep-idle-lab is 0); clearing the lab"
        );
    }
    // This host's labs are checked against its netlab here; a lab agent's
    // are checked when its agent registers again.
    let (local, agents): (Vec<StoredLab>, Vec<StoredLab>) =
        (candidates.into_iter()).partition(|lab| lab.slot <= config.lab_slots);
    let numbers: Vec<usize> = (1..=config.lab_slots).collect();
    let mut labs = readopt_or_clear(&netlab, &numbers, &work_root, &local).await;
    labs.extend(agents);
    let kept: Vec<usize> = labs.iter().map(|lab| lab.slot).collect();
    blocking({
        let store = Arc::clone(&store);
        move || store.keep_labs(&kept)
    })
    .await?;
    guard
        .publish(&metadata(&config, bound))
        .map_err(ServerError::Io)?;

    // Declared labs live beside the queue they belong to: in the state
    // directory, or in this server's temporary folder when nothing is kept.
    let declared = match &config.state_dir {
        Some(dir) => absolute(dir.clone())?.join("declared"),
        None => tmp.join("neops_remote_lab_declared"),
    };
    let blueprint = Blueprint {
        timeouts: config.timeouts,
        slots: config.lab_slots,
        stop: stop.clone(),
        store: Arc::clone(&store),
        declared: DeclaredLabs::new(declared),
        keep_idle: config.keep_idle_lab,
        placement: config.placement,
        max_upload_bytes: config.max_upload_bytes,
        upload_timeout: config.upload_timeout,
        auth,
        make_slot: |number, observer| {
            LabSlot::new(
                number,
                Arc::new(LocalSlotDriver::new(
                    number,
                    Arc::new(netlab.for_slot(number)),
                    work_root.clone(),
                    LabLock::for_slot(&tmp, number),
                )),
                observer,
            )
            .with_warm_reset(config.warm_reset.clone())
        },
        agents: match &config.agent_secret {
            None => None,
            Some(secret) => Some(AgentPool {
                secret: AgentSecret::new(secret).map_err(ServerError::Agents)?,
                liveness: config.liveness,
            }),
        },
    };
    let restored = Restored {
        sessions: snapshot.sessions,
        labs,
        last_event_id: snapshot.last_event_id,
        hosts,
    };
    let App {
        coordinator,
        router,
        deadlines,
        ..
    } = App::assemble(blueprint, restored);
    tracing::info!(
        slots = config.lab_slots,
        "neops-remote-lab {} listening on http://{bound}",
        env!("CARGO_PKG_VERSION")
    );

    let server = serve::serve(listener, router, stop.clone(), DRAIN_LIMIT);
    // Without the deadline timer nobody would ever be evicted: if it stops
    // before shutdown (a panic), stop the server rather than limp on.
    let timer_stopped = stopped_unexpectedly(deadlines, stop.clone());
    let mut outcome = Ok(());
    tokio::select! {
        () = server => {}
        why = timer_stopped => {
            tracing::error!("the session deadline timer stopped ({why}); shutting down");
            stop.cancel();
            outcome = Err(ServerError::TimerStopped(why));
        }
    }

    if config.keep_labs_on_stop {
        tracing::info!("stopping: cancelling lab work; the labs keep running for the next start");
    } else {
        tracing::info!("stopping: cancelling lab work and tearing labs down");
    }
    let labs_stopped = coordinator.stop_labs(config.keep_labs_on_stop);
    if tokio::time::timeout(config.shutdown_timeout, labs_stopped)
        .await
        .is_err()
    {
        tracing::error!(
            "lab teardown did not finish within {} s; the next start clears it",
            config.shutdown_timeout.as_secs()
        );
    }
    // What is queued is written before the host is released; what cannot
    // be is said, and the exit status says it too.
    let closed = tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap_or_else(|error| {
            Err(StoreError::Unwritable {
                path: PathBuf::new(),
                why: error.to_string(),
            })
        });
    drop(guard);
    if let Err(error) = closed {
        return outcome.and(Err(ServerError::Store(error)));
    }
    tracing::info!("shutdown complete");
    outcome
}

fn absolute(path: PathBuf) -> Result<PathBuf, ServerError> {
    std::path::absolute(&path).map_err(ServerError::Io)
}

/// Where the server guard is taken: the temporary directory (where the
/// original server took it) and netlab's per-user state folder, when
/// `HOME` is known (netlab keeps `~/.netlab/status.yaml` there).
fn guarded_folders(tmp: &Path) -> Vec<PathBuf> {
    let mut folders = vec![tmp.to_path_buf()];
    if let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) {
        folders.push(PathBuf::from(home).join(".netlab"));
    }
    folders
}

/// Completes, saying why, when `task` ends other than by `stop`; stays
/// pending when it ended because `stop` was cancelled.
async fn stopped_unexpectedly(task: JoinHandle<()>, stop: CancellationToken) -> String {
    let ended = task.await;
    if ended.is_ok() && stop.is_cancelled() {
        return std::future::pending().await;
    }
    match ended {
        Err(error) if error.is_panic() => "it panicked".to_string(),
        Err(error) => error.to_string(),
        Ok(()) => "it returned".to_string(),
    }
}

/// Opens the state store in `dir` (`None`: keep nothing) and reads what the
/// last run left, off the async threads.
async fn open_store(dir: Option<PathBuf>) -> Result<(Arc<dyn Store>, Snapshot), ServerError> {
    let Some(dir) = dir else {
        tracing::info!("no state directory: the queue and the labs do not survive a restart");
        return Ok((Arc::new(InMemory), Snapshot::default()));
    };
    let dir = absolute(dir)?;
    blocking(move || {
        let store = SqliteStore::open(&dir, Box::new(api::event_json))?;
        let snapshot = store.load()?;
        tracing::info!(path = %store.path().display(), sessions = snapshot.sessions.len(), labs = snapshot.labs.len(), "state store opened");
        Ok((Arc::new(store) as Arc<dyn Store>, snapshot))
    })
    .await
}

/// Runs store work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServerError::Io(std::io::Error::other(error)))?
        .map_err(ServerError::Store)
}

/// Cancels `stop` at the first SIGTERM or SIGINT; a second one means "now".
pub async fn forward_stop_signals(stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for stop signals");
        return;
    };
    for count in 1.. {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if count == 1 {
            tracing::warn!("stop signal received: shutting down (send another to exit at once)");
            stop.cancel();
        } else {
            tracing::error!("second stop signal: exiting now");
            std::process::exit(1);
        }
    }
}

/// SIGHUP re-reads the tokens file; a faulty one keeps the tokens in force.
/// Without auth it is only logged. The handler is installed before this
/// returns, so a SIGHUP (whose default action ends a process) never ends
/// the server.
fn reload_on_hangup(auth: Option<Arc<Auth>>) -> Result<(), ServerError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).map_err(ServerError::Io)?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let Some(auth) = &auth else {
                tracing::info!("SIGHUP: auth is off; nothing to re-read");
                continue;
            };
            if !auth.reloadable() {
                tracing::warn!(
                    "SIGHUP: the tokens come from NEOPS_REMOTE_LAB_TOKENS; nothing to re-read"
                );
                continue;
            }
            match auth.reload() {
                Ok(count) => tracing::info!(tokens = count, "SIGHUP: tokens file re-read"),
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: tokens file not used; the tokens in force stay")
                }
            }
        }
    });
    Ok(())
}

fn metadata(config: &Config, bound: SocketAddr) -> ServerMeta {
    ServerMeta {
        pid: std::process::id(),
        user: user_name(),
        host: host_name(),
        started_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        port: bound.port(),
        host_bind: config.host.clone(),
        log_level: config.log_level.clone(),
        log_config: config
            .log_config
            .as_ref()
            .map(|path| path.display().to_string()),
        version: env!("CARGO_PKG_VERSION").to_string(),
        cwd: std::env::current_dir()
            .map_or_else(|_| String::new(), |dir| dir.display().to_string()),
        cmd: std::env::args().collect(),
    }
}

fn user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        // SAFETY: getuid has no preconditions and cannot fail.
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }))
}

fn host_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length; gethostname writes
    // at most that many bytes.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buffer
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_reported() {
        let task = tokio::spawn(async { panic!("timer bug") });
        let why = stopped_unexpectedly(task, CancellationToken::new()).await;
        assert_eq!(why, "it panicked");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_at_shutdown_is_not() {
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        stop.cancel();
        let watched = stopped_unexpectedly(task, stop);
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), watched)
                .await
                .is_err()
        );
    }
}
