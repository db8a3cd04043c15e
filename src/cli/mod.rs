//! The client subcommands: `run`, `status`, `lab down`, `session end`.
//! Each talks to a server at `--url` (or `REMOTE_LAB_URL`) and sends
//! `REMOTE_LAB_TOKEN` as a bearer token when it is set.

pub mod agent;
mod guard;
mod inventory;
mod job;
mod lab;
pub mod netlab_args;
mod run;
mod signals;
mod status;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use neops_remote_lab::client::{self, Client, retry};

/// A client subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command against a lab, then release it and end the session.
    ///
    /// Waits for a slot, brings the lab up, runs the command with the devices in REMOTE_LAB_DEVICES_FILE and an
    /// Ansible inventory in REMOTE_LAB_INVENTORY, then release the lab and
    /// end the session. Exits with the command's exit code (128+N when a
    /// signal N ended it), 125 when no lab could be had, 126/127 when the
    /// command could not be started.
    Run(run::RunArgs),
    /// Show a server's queue, slot holders, labs and devices.
    Status(status::StatusArgs),
    /// Act on a slot's lab.
    #[command(subcommand)]
    Lab(lab::LabCommand),
    /// Act on a session.
    #[command(subcommand)]
    Session(lab::SessionCommand),
    /// Joins this host's lab slots to a coordinator's pool: a lab agent.
    ///
    /// Registers with the coordinator, long-polls the desired state of its
    /// slots, brings labs up and down with netlab as it says, and reports
    /// back. Needs the pool's agent secret (NEOPS_AGENT_TOKEN or
    /// --agent-token-file).
    Agent(agent::AgentArgs),
    /// Runs `run`'s command inside its job (not for direct use).
    #[command(name = guard::SUBCOMMAND, hide = true)]
    JobGuard(guard::GuardArgs),
}

/// Which server to talk to.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, env = "REMOTE_LAB_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
}

impl ServerArgs {
    /// A client for the server; heartbeats every `REMOTE_LAB_HEARTBEAT_INTERVAL`
    /// seconds (default 5, 0 turns them off, at least 1 otherwise) and
    /// announces them as its session's lease, as the Python client does.
    /// Errors: [`client::Error::Config`] for a value that is not a number
    /// of seconds.
    fn client(&self) -> client::Result<Client> {
        let every = match std::env::var("REMOTE_LAB_HEARTBEAT_INTERVAL") {
            Err(_) => client::DEFAULT_HEARTBEAT,
            Ok(text) => match text.trim().parse::<f64>() {
                Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
                    Duration::from_secs_f64(seconds)
                }
                _ => {
                    return Err(client::Error::Config(format!(
                        "REMOTE_LAB_HEARTBEAT_INTERVAL: expected a number of seconds, got {text:?}"
                    )));
                }
            },
        };
        Client::builder(&self.url)
            .heartbeat_interval(Some(every))
            // Said at once: a server that is down must not look like a hang.
            .on_retry(|error, after| {
                eprintln!(
                    "neops-remote-lab: {error}; trying again in {:.1} s (for up to {} s)",
                    after.as_secs_f64(),
                    retry::GIVE_UP_AFTER.as_secs()
                );
            })
            .build()
    }
}

/// Runs a subcommand on its own runtime and turns its outcome into the
/// process's exit code.
pub fn main(command: Command) -> ExitCode {
    // The guard is a plain process: no runtime, no threads.
    let command = match command {
        Command::JobGuard(args) => return guard::guard(args),
        other => other,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("neops-remote-lab: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match command {
            Command::Run(args) => run::run(args).await,
            Command::Status(args) => report(status::status(args).await),
            Command::Lab(command) => report(lab::lab(command).await),
            Command::Session(command) => report(lab::session(command).await),
            Command::JobGuard(_) | Command::Agent(_) => {
                unreachable!("the guard and the agent run on their own")
            }
        }
    });
    ExitCode::from(code)
}

/// Tells the user what a client command is doing, on stderr.
fn say(message: &str) {
    eprintln!("neops-remote-lab: {message}");
}

/// 0, or 1 with the error on stderr.
fn report(outcome: client::Result<()>) -> u8 {
    match outcome {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("neops-remote-lab: {error}");
            1
        }
    }
}
