//! Serving HTTP/1.1 connections with bounds that protect the server from
//! slow and idle clients, and a graceful end.
//!
//! `axum::serve` has no request-head timeout, so a client that trickles
//! header bytes holds a connection (and a file descriptor) for ever; a few
//! hundred of them lock everyone out. Here every connection gets hyper's
//! header read timeout, which also applies while a keep-alive connection
//! waits for its next request, so idle connections are closed too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a client may take to send a request's head, and how long a
/// keep-alive connection may sit idle between requests.
pub const HEADER_READ_LIMIT: Duration = Duration::from_secs(10);

/// How often the server looks whether many connections have closed.
const TRIM_CHECK: Duration = Duration::from_secs(10);

/// How many connections must have closed since the busiest moment for the
/// freed memory to be handed back (see [`crate::memory`]).
const TRIM_AFTER_CLOSED: usize = 256;

/// Serves `router` on `listener` until `stop` is cancelled, then waits up
/// to `drain` for requests in flight before closing their connections.
/// After many connections have closed, the memory they held is handed back
/// ([`crate::memory::trim`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(OpenConnections::default());
    tokio::spawn(trim_after_closes(Arc::clone(&open), stop.clone()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_LIMIT)
        .keep_alive(true);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of descriptors, say: wait for some to free up.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let counted = open.opened();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(counted);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still open after {} s; closing anyway",
            drain.as_secs()
        );
    }
}

/// How many connections are open, and the most since the last trim.
#[derive(Default)]
struct OpenConnections {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// One open connection; closed when dropped.
struct Counted(Arc<OpenConnections>);

impl OpenConnections {
    fn opened(self: &Arc<Self>) -> Counted {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Counted(Arc::clone(self))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Hands freed memory back once [`TRIM_AFTER_CLOSED`] connections fewer
/// are open than at the busiest moment since the last time.
async fn trim_after_closes(open: Arc<OpenConnections>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TRIM_CHECK) => {}
            () = stop.cancelled() => return,
        }
        let now = open.now.load(Ordering::Relaxed);
        if open.peak.load(Ordering::Relaxed) >= now + TRIM_AFTER_CLOSED {
            open.peak.store(now, Ordering::Relaxed);
            tokio::task::spawn_blocking(crate::memory::trim);
        }
    }
}

/// Raises the soft limit of open files to the hard limit, so that many
/// clients (long-polls hold a connection each) do not run the server out of
/// descriptors at a low default soft limit. Returns the new soft limit.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}
