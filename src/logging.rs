//! Log set-up: human-readable by default, JSON lines for machines.
//!
//! Logs go to stderr through [`LossyStderr`]: a log line that cannot be
//! written (the process reading the server's stderr went away: EPIPE) is
//! dropped and counted, never an error. tracing-subscriber reports a failed
//! write with `eprintln!`, which panics when stderr itself is what failed,
//! in whatever request or task was logging.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

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
/// `netlab_level`. `RUST_LOG`, when set, overrides both.
pub fn init(level: &str, netlab_level: &str, format: LogFormat) {
    // Libraries only when something is wrong.
    let default = format!("warn,neops_remote_lab={level},netlab={netlab_level}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LossyStderr)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Log lines dropped because stderr could not take them.
static DROPPED_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many log lines could not be written to stderr since the start.
pub fn dropped_writes() -> u64 {
    DROPPED_WRITES.load(Ordering::Relaxed)
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

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LossyStderr {
    type Writer = LossyStderr;

    fn make_writer(&'a self) -> LossyStderr {
        LossyStderr
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
