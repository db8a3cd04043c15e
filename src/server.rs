//! Server life cycle: take the host, check netlab, clear what a crashed run
//! left, serve, and on SIGTERM/SIGINT stop accepting, kill a bring-up in
//! flight, tear the lab down (bounded), release the host.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::handover;
use crate::host_lock::{GuardError, LabLock, ServerGuard, ServerMeta};
use crate::lab::LabManager;
use crate::lab::netlab::{Netlab, NetlabConfig};
use crate::queue::Timeouts;
use crate::sessions::Sessions;
use crate::shutdown::Shutdown;

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
    pub netlab: NetlabConfig,
    pub max_upload_bytes: u64,
    /// Where lab directories live; default `<tmpdir>/neops_remote_lab_labs`.
    pub work_dir: Option<PathBuf>,
    /// Upper bound for tearing the lab down at shutdown.
    pub shutdown_timeout: Duration,
}

/// Why the server could not start; each is reported and exits 1.
#[derive(Debug)]
pub enum StartError {
    HostTaken(GuardError),
    NetlabMissing(String),
    Bind(String, std::io::Error),
    Io(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::HostTaken(error) => error.fmt(f),
            StartError::NetlabMissing(error) => write!(
                f,
                "netlab does not work: {error}\n\
                 Install it with `pip install networklab` (https://netlab.tools), or point \
                 --netlab-bin / NEOPS_NETLAB_BIN at its executable."
            ),
            StartError::Bind(address, error) => write!(f, "cannot listen on {address}: {error}"),
            StartError::Io(error) => error.fmt(f),
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then cleans up.
pub async fn run(config: Config) -> Result<(), StartError> {
    let tmp = std::env::temp_dir();
    let guard = ServerGuard::acquire(&tmp).map_err(StartError::HostTaken)?;

    let netlab = Netlab::connect(config.netlab.clone())
        .await
        .map_err(|error| StartError::NetlabMissing(error.to_string()))?;
    tracing::info!(version = netlab.version(), "netlab found");

    let work_root = config
        .work_dir
        .clone()
        .unwrap_or_else(|| tmp.join("neops_remote_lab_labs"));
    let shutdown = Shutdown::new();
    let lab = Arc::new(LabManager::new(
        Arc::new(netlab.clone()),
        work_root,
        LabLock::new(&tmp),
        Shutdown::new(),
    ));
    clear_stale_lab(&netlab, &lab).await;

    let address = format!("{}:{}", config.host, config.port);
    let listener = TcpListener::bind(&address)
        .await
        .map_err(|error| StartError::Bind(address.clone(), error))?;
    let bound = listener.local_addr().map_err(StartError::Io)?;
    guard
        .publish(&metadata(&config, bound))
        .map_err(StartError::Io)?;

    let sessions = Arc::new(Sessions::new(config.timeouts));
    tokio::spawn(handover::run_evictions(
        Arc::clone(&sessions),
        Arc::clone(&lab),
        shutdown.clone(),
    ));
    let state = AppState {
        sessions,
        lab: Arc::clone(&lab),
        shutdown: shutdown.clone(),
        started: Instant::now(),
        max_upload_bytes: config.max_upload_bytes,
    };
    tracing::info!(
        "neops-remote-lab {} listening on http://{bound}",
        env!("CARGO_PKG_VERSION")
    );

    let stopping = {
        let (shutdown, lab) = (shutdown.clone(), Arc::clone(&lab));
        async move {
            stop_signal().await;
            tracing::warn!("stop signal received: shutting down");
            shutdown.trigger();
            lab.cancel_bring_ups();
        }
    };
    let server = axum::serve(listener, api::router(state)).with_graceful_shutdown(stopping);
    let drained = {
        let shutdown = shutdown.clone();
        async move {
            shutdown.triggered().await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        }
    };
    tokio::select! {
        result = server => result.map_err(StartError::Io)?,
        () = drained => tracing::warn!("requests still open after {} s; closing anyway", DRAIN_LIMIT.as_secs()),
    }

    match tokio::time::timeout(config.shutdown_timeout, lab.destroy(true)).await {
        Ok(Ok(true)) => tracing::info!("lab torn down"),
        Ok(Ok(false)) => {}
        Ok(Err(error)) => tracing::error!(%error, "lab teardown at shutdown failed"),
        Err(_) => tracing::error!(
            "lab teardown did not finish within {} s; the next start clears it",
            config.shutdown_timeout.as_secs()
        ),
    }
    drop(guard);
    tracing::info!("shutdown complete");
    Ok(())
}

/// A crashed earlier run may have left a lab registered and its directory
/// behind; both would block the next bring-up.
async fn clear_stale_lab(netlab: &Netlab, lab: &LabManager) {
    match netlab.clear_stale_default_instance().await {
        Ok(true) => tracing::warn!("cleared a stale lab left by an earlier run"),
        Ok(false) => tracing::debug!("no stale lab to clear"),
        Err(error) => tracing::warn!(%error, "could not clear a stale lab"),
    }
    match lab.remove_stale_dirs().await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "removed stale lab directories"),
        Err(error) => tracing::warn!(%error, "could not remove stale lab directories"),
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
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
