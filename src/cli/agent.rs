//! `neops-remote-lab agent`: this host's lab slots joined to a coordinator's
//! pool (see `neops_remote_lab::agent`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use neops_remote_lab::agent::run::{AgentConfig, run};
use neops_remote_lab::api::agent::AgentSecret;
use neops_remote_lab::lab::ssh_config::is_plain;
use neops_remote_lab::logging::{self, LogFormat};
use neops_remote_lab::server::forward_stop_signals;

use super::netlab_args::NetlabArgs;

/// The environment variable that carries the pool's agent secret, for the
/// coordinator and the agents alike.
pub const AGENT_TOKEN_ENV: &str = "NEOPS_AGENT_TOKEN";

/// The agent's flags.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The coordinator's base URL (the server clients use).
    #[arg(long, env = "NEOPS_COORDINATOR")]
    coordinator: String,

    /// This lab host's name in the pool (default: the host name).
    #[arg(long, env = "NEOPS_AGENT_NAME")]
    name: Option<String>,

    /// How many labs this host runs at once.
    #[arg(long, env = "NEOPS_LAB_SLOTS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    lab_slots: u16,

    /// A file holding the pool's agent secret; NEOPS_AGENT_TOKEN does the
    /// same without a file.
    #[arg(long, env = "NEOPS_AGENT_TOKEN_FILE", value_name = "PATH")]
    agent_token_file: Option<PathBuf>,

    /// Where clients reach this host over SSH, for the ProxyJump of
    /// `GET /lab/ssh-config` (default: --name).
    #[arg(long, env = "NEOPS_SSH_ADDRESS")]
    ssh_address: Option<String>,

    /// Where lab folders are created (default: <TMPDIR>/neops_remote_lab_labs).
    #[arg(long, env = "NEOPS_WORK_DIR")]
    work_dir: Option<PathBuf>,

    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    #[arg(long, env = "NEOPS_LOG_LEVEL", default_value = "INFO")]
    log_level: String,

    /// Log format: human or json.
    #[arg(long, env = "NEOPS_LOG_FORMAT", value_enum, default_value = "human")]
    log_format: LogFormat,

    #[command(flatten)]
    netlab: NetlabArgs,
}

/// The agent secret from `file` or the environment's value `inline`.
/// Errors: both given, or the file cannot be read.
pub fn agent_secret(file: Option<&Path>, inline: Option<String>) -> Result<Option<String>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!(
            "give the agent secret either in --agent-token-file or in {AGENT_TOKEN_ENV}, not both"
        )),
        (Some(path), None) => std::fs::read_to_string(path)
            .map(|text| Some(text.trim().to_string()))
            .map_err(|error| format!("--agent-token-file {}: {error}", path.display())),
        (None, inline) => Ok(inline.map(|text| text.trim().to_string())),
    }
}

/// Runs the agent until SIGTERM or SIGINT (its labs are torn down then).
pub fn main(args: AgentArgs, inline_secret: Option<String>) -> ExitCode {
    let level = logging::level_from_name(&args.log_level).unwrap_or("info");
    let _log = logging::init(level, level, args.log_format);
    let config = match config(&args, inline_secret) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let stop = CancellationToken::new();
        tokio::spawn(forward_stop_signals(stop.clone()));
        run(config, stop).await
    });
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

fn config(args: &AgentArgs, inline_secret: Option<String>) -> Result<AgentConfig, String> {
    let secret = agent_secret(args.agent_token_file.as_deref(), inline_secret)?.ok_or(
        "no agent secret: give --agent-token-file or NEOPS_AGENT_TOKEN (the coordinator's)",
    )?;
    // The coordinator's rule, checked here so a short secret fails at once.
    AgentSecret::new(&secret)?;
    if let Some(address) = args
        .ssh_address
        .as_deref()
        .filter(|address| !is_plain(address))
    {
        return Err(format!(
            "--ssh-address {address:?}: give a host name or an IP address"
        ));
    }
    let tmp = std::path::absolute(std::env::temp_dir()).map_err(|error| error.to_string())?;
    let work_dir = match &args.work_dir {
        Some(dir) => std::path::absolute(dir).map_err(|error| error.to_string())?,
        None => tmp.join("neops_remote_lab_labs"),
    };
    let name = match &args.name {
        Some(name) => name.clone(),
        None => host_name().ok_or("cannot read this host's name: pass --name")?,
    };
    Ok(AgentConfig {
        coordinator: args.coordinator.clone(),
        name,
        slots: usize::from(args.lab_slots),
        secret,
        netlab: args.netlab.config()?,
        work_dir,
        lock_dir: tmp,
        ssh_address: args.ssh_address.clone(),
    })
}

/// The kernel's host name (`/proc/sys/kernel/hostname`, as `hostname` prints it).
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_string()).filter(|name| !name.is_empty())
}
