//! The `neops-remote-lab` command: without a subcommand it starts the
//! server. Operators' systemd units call it as `neops-remote-lab [--host]
//! [--port] [--log-level] [--debug]`; every flag can also be set through its
//! environment variable. The subcommands (`run`, `status`, `lab down`,
//! `session end`) are clients of a server, see `cli`.

mod cli;

use cli::netlab_args::NetlabArgs;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};

use neops_remote_lab::agent::pool::Liveness;
use neops_remote_lab::auth::TokenSource;
use neops_remote_lab::coordinator::placement::Policy;
use neops_remote_lab::logging::{self, LogFormat};
use neops_remote_lab::queue::Timeouts;
use neops_remote_lab::server::{self, Config};
use neops_remote_lab::store;

/// Shares one Netlab lab host between test suites: sessions wait in a FIFO
/// queue, the active one uploads a topology and gets the devices' data.
///
/// Without a subcommand: starts the server.
#[derive(Debug, Parser)]
#[command(
    name = "neops-remote-lab",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<cli::Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

/// The server's flags.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "NEOPS_HOST", default_value = "0.0.0.0")]
    host: String,

    /// Port to listen on (0 picks a free one; the metadata file tells which).
    #[arg(long, env = "NEOPS_PORT", default_value_t = 8000)]
    port: u16,

    /// Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL.
    #[arg(long, env = "NEOPS_LOG_LEVEL", default_value = "INFO", value_parser = parse_level)]
    log_level: String,

    /// Debug logs, including netlab's output line by line.
    #[arg(long, env = "NEOPS_DEBUG")]
    debug: bool,

    /// Stream netlab's output into the log line by line (as --debug does),
    /// without debug logs of our own. The original's environment variable
    /// takes `1`, so 1/0, true/false, yes/no and on/off are all understood.
    #[arg(
        long,
        env = "NEOPS_NETLAB_STREAM_OUTPUT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    netlab_stream_output: bool,

    /// Accepted for compatibility with the original server's systemd units
    /// and recorded in the metadata file; not read (logs are configured
    /// with --log-level, --log-format and RUST_LOG).
    #[arg(long, env = "NEOPS_LOG_CONFIG", value_name = "PATH")]
    log_config: Option<PathBuf>,

    /// Log format: human-readable lines or JSON objects.
    #[arg(long, env = "NEOPS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,

    /// Seconds an ACTIVE session may go unseen before it is evicted and its lab torn down.
    #[arg(long, env = "NEOPS_ACTIVE_TIMEOUT", default_value_t = 300, value_parser = seconds(1, DAY))]
    active_timeout: u64,

    /// Seconds a WAITING session may go unseen before it is dropped from the queue.
    #[arg(long, env = "NEOPS_WAITING_TIMEOUT", default_value_t = 600, value_parser = seconds(1, DAY))]
    waiting_timeout: u64,

    /// Seconds a session promoted to ACTIVE has to send its first request
    /// (a status poll, heartbeat or lab call) before it is evicted: a client
    /// that died while it waited does not hold the lab for the active timeout.
    #[arg(long, env = "NEOPS_CLAIM_TIMEOUT", default_value_t = 30, value_parser = seconds(1, DAY))]
    claim_timeout: u64,

    /// Seconds an ACTIVE session may hold its lab slot, however alive it
    /// is: then it is ended (reason `max_hold`; warned by an event at 80 %),
    /// so one busy suite cannot keep a host from everyone. 0: no limit.
    #[arg(long, env = "NEOPS_MAX_HOLD", default_value_t = 0, value_parser = seconds(0, DAY))]
    max_hold: u64,

    /// How many labs may run at once, each for one ACTIVE session, each as
    /// its own netlab instance (slot 1: `default`, slot k: `k`). 0: a pure
    /// coordinator, whose slots are all lab agents' (needs an agent secret).
    #[arg(long, env = "NEOPS_LAB_SLOTS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(0..=64))]
    lab_slots: u16,

    #[command(flatten)]
    netlab: NetlabArgs,

    /// Largest accepted upload (topology plus extra files), in bytes.
    #[arg(long, env = "NEOPS_MAX_UPLOAD_BYTES", default_value_t = 10 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_upload_bytes: u64,

    /// Seconds one upload's body may take to arrive in all (408 past it),
    /// besides the 30 s it may go without any data.
    #[arg(long, env = "NEOPS_UPLOAD_TIMEOUT", default_value_t = 300, value_parser = seconds(1, DAY))]
    upload_timeout: u64,

    /// Directory for lab working directories [default: <tmpdir>/neops_remote_lab_labs].
    #[arg(long, env = "NEOPS_WORK_DIR")]
    work_dir: Option<PathBuf>,

    /// Seconds the lab teardown may take when the server stops.
    #[arg(long, env = "NEOPS_SHUTDOWN_TIMEOUT", default_value_t = 120, value_parser = seconds(0, DAY))]
    shutdown_timeout: u64,

    /// Where the queue and the labs are stored (SQLite, `state.db`), so they
    /// survive a restart or a crash [default: $STATE_DIRECTORY; for a system
    /// service /var/lib/neops-remote-lab; else $XDG_STATE_HOME/neops-remote-lab
    /// or ~/.local/state/neops-remote-lab].
    #[arg(long, env = "NEOPS_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Store nothing (overrides --state-dir): a restart starts with an empty
    /// queue and clears every lab, as the original server did.
    #[arg(
        long,
        env = "NEOPS_IN_MEMORY",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    in_memory: bool,

    /// At a graceful stop (SIGTERM), leave the labs running: the next start
    /// re-adopts them, so an upgrade does not re-boot them.
    #[arg(
        long,
        env = "NEOPS_KEEP_LABS_ON_STOP",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    keep_labs_on_stop: bool,

    /// Seconds a lab stays up after its holder's session ended (closed,
    /// evicted, claim expired), for the next session that asks for the same
    /// lab: it attaches (`reused: true`) without a `netlab up`. 0: torn
    /// down at once, as the original.
    #[arg(long, env = "NEOPS_KEEP_IDLE_LAB", default_value_t = 0, value_parser = seconds(0, DAY))]
    keep_idle_lab: u64,

    /// Who gets a free slot: `fifo`, the longest-waiting session; `batch`,
    /// a later session whose first declared lab a free slot keeps up may go
    /// first (needs --keep-idle-lab), each session overtaken at most
    /// --max-bypass times.
    #[arg(long, env = "NEOPS_PLACEMENT", value_enum, default_value_t = PlacementName::Fifo)]
    placement: PlacementName,

    /// Under `--placement batch`: how many times a waiting session may be
    /// overtaken, so how many extra turns it waits at most.
    #[arg(long, env = "NEOPS_MAX_BYPASS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_bypass: u32,

    /// netlab arguments, separated by spaces, run in a kept lab's directory
    /// before another session gets it, e.g. "initial" (netlab re-deploys the
    /// initial configuration). A reset that fails means a fresh bring-up.
    #[arg(
        long,
        env = "NEOPS_WARM_RESET",
        value_name = "NETLAB ARGUMENTS",
        allow_hyphen_values = true
    )]
    warm_reset: Option<String>,

    /// Turns bearer-token auth on: a file of `name:token` lines (blank
    /// lines and `#` comments ignored), re-read on SIGHUP. The environment
    /// variable NEOPS_REMOTE_LAB_TOKENS (`name:token,name:token`) does the
    /// same without a file.
    #[arg(long, env = "NEOPS_TOKENS_FILE", value_name = "PATH")]
    tokens_file: Option<PathBuf>,

    /// Lets lab agents join (`neops-remote-lab agent`): a file holding the
    /// pool's agent secret (at least 16 characters). NEOPS_AGENT_TOKEN does
    /// the same without a file. Without either, no agent can join.
    #[arg(long, env = "NEOPS_AGENT_TOKEN_FILE", value_name = "PATH")]
    agent_token_file: Option<PathBuf>,

    /// Seconds a lab agent may stay silent before its host is offline (it
    /// gets no new sessions; its sessions keep their slots).
    #[arg(long, env = "NEOPS_AGENT_LEASE", default_value_t = 15, value_parser = seconds(1, DAY))]
    agent_lease: u64,

    /// Seconds an offline lab host keeps its sessions' slots; past it they
    /// end with reason `host_lost` and the next sessions get slots.
    #[arg(long, env = "NEOPS_HOST_GRACE", default_value_t = 60, value_parser = seconds(0, DAY))]
    host_grace: u64,
}

/// The policies `--placement` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum PlacementName {
    Fifo,
    Batch,
}

/// Tokens given inline, instead of a file. Deliberately not a flag: a
/// command line is visible to every user of the host.
const TOKENS_ENV: &str = "NEOPS_REMOTE_LAB_TOKENS";

/// A day, in seconds: the upper bound of every duration flag, so no
/// deadline computed from one can overflow.
const DAY: u64 = 86_400;

fn seconds(min: u64, max: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(min..=max)
}

fn parse_level(text: &str) -> Result<String, String> {
    logging::level_from_name(text)
        .map(|_| text.to_ascii_uppercase())
        .ok_or_else(|| "expected DEBUG, INFO, WARNING, ERROR or CRITICAL".to_string())
}

impl ServeArgs {
    /// `inline`: the values `NEOPS_REMOTE_LAB_TOKENS` and
    /// `NEOPS_AGENT_TOKEN` had.
    fn config(&self, inline: Secrets) -> Result<Config, String> {
        let inline_tokens = inline.tokens;
        let agent_secret =
            cli::agent::agent_secret(self.agent_token_file.as_deref(), inline.agent)?;
        let tokens = match (&self.tokens_file, inline_tokens) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "give the tokens either in --tokens-file or in {TOKENS_ENV}, not both"
                ));
            }
            (Some(path), None) => Some(TokenSource::File(path.clone())),
            (None, Some(list)) => Some(TokenSource::List(list)),
            (None, None) => None,
        };
        let state_dir =
            match (&self.state_dir, self.in_memory) {
                (_, true) => None,
                (Some(dir), false) => Some(dir.clone()),
                (None, false) => Some(store::state_dir::default_state_dir().ok_or(
                    "no state directory: HOME is not set; pass --state-dir (or --in-memory)",
                )?),
            };
        Ok(Config {
            host: self.host.clone(),
            port: self.port,
            log_level: self.log_level.clone(),
            log_config: self.log_config.clone(),
            timeouts: Timeouts {
                active: Duration::from_secs(self.active_timeout),
                waiting: Duration::from_secs(self.waiting_timeout),
                claim: Duration::from_secs(self.claim_timeout),
                max_hold: (self.max_hold > 0).then(|| Duration::from_secs(self.max_hold)),
            },
            lab_slots: usize::from(self.lab_slots),
            netlab: self.netlab.config()?,
            max_upload_bytes: self.max_upload_bytes,
            upload_timeout: Duration::from_secs(self.upload_timeout),
            work_dir: self.work_dir.clone(),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            state_dir,
            keep_labs_on_stop: self.keep_labs_on_stop,
            keep_idle_lab: Duration::from_secs(self.keep_idle_lab),
            placement: match self.placement {
                PlacementName::Fifo => Policy::Fifo,
                PlacementName::Batch => Policy::Batch {
                    max_bypass: self.max_bypass,
                },
            },
            warm_reset: self
                .warm_reset
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            tokens,
            agent_secret,
            liveness: Liveness {
                lease: Duration::from_secs(self.agent_lease),
                grace: Duration::from_secs(self.host_grace),
            },
        })
    }
}

/// Takes the inline tokens out of the environment, so that netlab and the
/// topology plugins it runs never see them. Call it while only one thread
/// runs.
fn take_secrets() -> Secrets {
    let take = |name: &str| {
        let value = std::env::var(name).ok();
        // SAFETY: called first thing in `main`, before any other thread exists.
        unsafe { std::env::remove_var(name) };
        value
    };
    Secrets {
        tokens: take(TOKENS_ENV),
        agent: take(cli::agent::AGENT_TOKEN_ENV),
    }
}

/// Secrets given in the environment, taken out of it.
struct Secrets {
    /// `NEOPS_REMOTE_LAB_TOKENS`.
    tokens: Option<String>,
    /// `NEOPS_AGENT_TOKEN`.
    agent: Option<String>,
}

fn main() -> ExitCode {
    let inline = take_secrets();
    let cli = Cli::parse();
    if cli.command.is_none()
        && cli.serve.lab_slots == 0
        && inline.agent.is_none()
        && cli.serve.agent_token_file.is_none()
    {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                "--lab-slots 0 leaves only lab agents' slots: give the agent secret (--agent-token-file or NEOPS_AGENT_TOKEN)",
            )
            .exit();
    }
    match cli.command {
        Some(cli::Command::Agent(args)) => cli::agent::main(args, inline.agent),
        Some(command) => cli::main(command),
        None => serve(cli.serve, inline),
    }
}

fn serve(cli: ServeArgs, inline: Secrets) -> ExitCode {
    neops_remote_lab::memory::return_large_allocations();
    let level = if cli.debug {
        "debug"
    } else {
        logging::level_from_name(&cli.log_level).unwrap_or("info")
    };
    let netlab_level = if cli.netlab_stream_output {
        "debug"
    } else {
        level
    };
    let _log = logging::init(level, netlab_level, cli.log_format);
    if let Some(path) = &cli.log_config {
        tracing::warn!(
            "--log-config {} is accepted for compatibility and not read: logs are configured \
             with --log-level, --log-format and RUST_LOG",
            path.display()
        );
    }

    let config = match cli.config(inline) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(server::run(config));
    // `--shutdown-timeout` is a real bound: a blocking thread still waiting
    // for a lab lock (held by another process) must not keep us alive.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}
