//! Log set-up: human-readable by default, JSON lines for machines.
//!
//! Log lines never wait for stderr: they go through tracing-appender's
//! lossy non-blocking writer, whose own thread writes them. When the reader
//! of the server's stderr stalls (a stuck log collector; a full pipe would
//! block every request and task that logs) lines beyond its buffer are
//! dropped; when the reader went away (EPIPE) [`LossyStderr`] drops them.
//! Both are counted in [`dropped_writes`], never an error: tracing-subscriber
//! reports a failed write with `eprintln!`, which panics when stderr itself
//! is what failed.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::ValueEnum;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Log lines held for a slow stderr before new ones are dropped.
const BUFFERED_LINES: usize = 16_384;

/// How long the last lines may take to reach stderr at exit: a stalled
/// reader must not keep a stopping server alive.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Maps the original's Python level names (DEBUG, INFO, WARNING, ERROR,
/// CRITICAL) and Rust's (trace, warn) onto a tracing level.
pub fn level_from_name(name: &str) -> Option<&'static str> {
    match name.to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" | "WARNING" => Some("warn"),
        "ERROR" | "CRITICAL" | "FATAL" => Some("error"),
        _ => None,
    }
}

/// Installs the global subscriber: our own events at `level`, netlab's
/// streamed output (target `netlab`, one debug event per line) at
/// `netlab_level`. `RUST_LOG`, when set, overrides both. Keep the returned
/// guard until the end of `main`: dropping it writes out what is buffered.
pub fn init(level: &str, netlab_level: &str, format: LogFormat) -> LogGuard {
    // Libraries only when something is wrong.
    let default = format!("warn,neops_remote_lab={level},netlab={netlab_level}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("log-writer")
        .finish(LossyStderr);
    let _ = OVERFLOWED.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    LogGuard(Some(worker))
}

/// Writes out the buffered log lines when dropped, waiting at most
/// [`FLUSH_AT_EXIT`].
#[must_use = "dropping the guard ends logging"]
pub struct LogGuard(Option<WorkerGuard>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        let Some(worker) = self.0.take() else { return };
        // The worker's own drop may wait on a stalled stderr, and may print
        // to stdout: on a thread of its own, which exit does not wait for.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(worker);
            let _ = done.send(());
        });
        let _ = finished.recv_timeout(FLUSH_AT_EXIT);
    }
}

/// Log lines dropped because stderr failed (EPIPE).
static DROPPED_WRITES: AtomicU64 = AtomicU64::new(0);

/// Counts the log lines dropped because the writer's buffer was full.
static OVERFLOWED: OnceLock<ErrorCounter> = OnceLock::new();

/// How many log lines could not be written to stderr since the start (it
/// failed, or its reader did not keep up).
pub fn dropped_writes() -> u64 {
    let overflowed = OVERFLOWED.get().map_or(0, ErrorCounter::dropped_lines);
    DROPPED_WRITES.load(Ordering::Relaxed) + overflowed as u64
}

/// stderr, where a failed write is counted in [`dropped_writes`] and
/// reported as done.
#[derive(Debug, Clone, Copy, Default)]
pub struct LossyStderr;

impl Write for LossyStderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if std::io::stderr().write_all(line).is_err() {
            DROPPED_WRITES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // stderr is unbuffered; a failed flush has nothing left to lose.
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_level_names_are_understood() {
        assert_eq!(level_from_name("WARNING"), Some("warn"));
        assert_eq!(level_from_name("info"), Some("info"));
        assert_eq!(level_from_name("CRITICAL"), Some("error"));
        assert_eq!(level_from_name("LOUD"), None);
    }
}
