//! Log set-up: human-readable by default, JSON lines for machines.

use std::io::IsTerminal;

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
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
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
