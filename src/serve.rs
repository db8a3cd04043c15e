//! Serving HTTP/1.1 connections with bounds that protect the server from
//! slow and idle clients, and a graceful end.
//!
//! `axum::serve` has no request-head timeout, so a client that trickles
//! header bytes holds a connection (and a file descriptor) for ever; a few
//! hundred of them lock everyone out. Here every connection gets hyper's
//! header read timeout, which also applies while a keep-alive connection
//! waits for its next request, so idle connections are closed too.

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

/// Serves `router` on `listener` until `stop` is cancelled, then waits up
/// to `drain` for requests in flight before closing their connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
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
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
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

/// Serves large allocations from their own memory maps, returned to the
/// system as soon as they are freed. glibc's malloc raises its mmap
/// threshold to the size of the largest block freed so far (up to 32 MiB),
/// so after the first large lab (megabytes of device data, parsed and
/// answered) every later one came from the heap, whose pages were kept:
/// measured with bench P7, RSS grew by a third over five bring-ups of a
/// 120-node lab. A fixed threshold (which also turns that raising off; see
/// mallopt(3), `M_MMAP_THRESHOLD`) keeps the first bring-up's cost and gives
/// it back. Call before any other thread starts.
pub fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
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
