//! `run`: one command against one lab, from the queue to the end of the
//! session, whatever happens in between (the command fails or cannot be
//! started, Ctrl-C, a cancelled CI job's SIGTERM). What `run` cannot catch
//! (SIGKILL) the server notices: `run` announces its heartbeats as the
//! session's lease.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;

use super::inventory;
use super::job::Job;
use super::signals::Signals;
use super::{ServerArgs, say};
use neops_remote_lab::client::{self, Client, LabFiles, Session, client_info};
use neops_remote_lab::wire::{AcquireResponseDto, SessionState};

/// Exit code when no lab could be had: the server is unreachable or
/// refused, the session was lost, the lab's files are missing, or netlab
/// failed. (126 and 127 are the shell's: the command could not be started.)
pub const LAB_FAILURE: u8 = 125;
/// Exit code of a usage error, as for a bad flag.
const USAGE: u8 = 2;
const NOT_EXECUTABLE: u8 = 126;
const NOT_FOUND: u8 = 127;

/// Seconds between looks at the slot while waiting for the bring-up to begin.
const PHASE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The netlab topology (.yml or .yaml).
    #[arg(short = 't', long, value_name = "FILE")]
    topology: PathBuf,
    /// Files or folders the topology uses (a folder stands for every file
    /// below it), relative to the topology's folder.
    #[arg(short = 'f', long = "extra-file", value_name = "PATH", num_args = 1..)]
    extra: Vec<PathBuf>,
    /// The upload's root, relative to the topology's folder [default: the
    /// topology's folder, or the deepest folder holding every extra file].
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Attach to a running lab with the same files.
    #[arg(long, overrides_with = "no_reuse")]
    reuse: bool,
    /// Ask for a freshly started lab (the default).
    #[arg(long, overrides_with = "reuse")]
    no_reuse: bool,
    /// What the queue shows about this run [default: the command line].
    #[arg(long)]
    label: Option<String>,
    /// Seconds the command (and what it started) gets to exit after a
    /// signal, or after the session is lost, before it is killed.
    #[arg(
        long,
        env = "REMOTE_LAB_KILL_GRACE",
        value_name = "SECONDS",
        default_value_t = 10
    )]
    kill_grace: u64,
    /// The command to run, after `--`, and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// The whole run; returns the process's exit code.
pub async fn run(args: RunArgs) -> u8 {
    // Before anything else: no signal may end us while a session is open.
    let mut signals = match Signals::listen() {
        Ok(signals) => signals,
        Err(error) => return failed(&format!("cannot listen for signals: {error}")),
    };
    // First, so a CI log shows which package the job got.
    eprintln!(
        "neops-remote-lab {}: run against {}",
        env!("CARGO_PKG_VERSION"),
        args.server.url
    );
    // Found before queueing, not after minutes of waiting and a bring-up.
    if !findable(&args.command[0]) {
        say(&format!(
            "cannot run {}: not found",
            command_line(&args.command)
        ));
        return NOT_FOUND;
    }
    let lab = match LabFiles::collect(&args.topology, &args.extra, args.root.as_deref()) {
        Ok(lab) => lab,
        Err(error) => return failed(&error.to_string()),
    };
    let client = match args.server.client() {
        Ok(client) => client,
        // A setting the user got wrong, as a bad flag: a usage error.
        Err(error @ client::Error::Config(_)) => {
            say(&error.to_string());
            return USAGE;
        }
        Err(error) => return failed(&error.to_string()),
    };
    let label = args
        .label
        .clone()
        .unwrap_or_else(|| command_line(&args.command));
    let info = client_info::from_environment(Some(&label));
    // Not interruptible: a POST that reached the server creates a session,
    // which must be known to be ended. A signal meanwhile is kept for later.
    // Keyed, so a request whose answer is lost (a server restarting) can be
    // sent again without opening a second session.
    let key = uuid::Uuid::new_v4().to_string();
    let session = match client.open_session_with_key(Some(info), Some(&key)).await {
        Ok(session) => session,
        Err(error) => return failed(&error.to_string()),
    };
    let code = hold(&client, &session, &lab, &args, &mut signals).await;
    if let Err(error) = session.close().await {
        say(&format!("could not end the session: {error}"));
    }
    code
}

/// Waits for a slot, brings the lab up, runs the command, releases the lab.
async fn hold(
    client: &Client,
    session: &Session,
    lab: &LabFiles,
    args: &RunArgs,
    signals: &mut Signals,
) -> u8 {
    let short: String = session.id().chars().take(8).collect();
    say(&format!("session {short} on {}", client.base_url()));
    // Declared at once: the server may prepare the lab before our turn,
    // and a lab it refuses is reported now, not after the wait.
    let declared = tokio::select! {
        declared = session.declare_lab(lab) => declared,
        signal = signals.recv() => return interrupted(signal, "while declaring the lab"),
    };
    match declared {
        Ok(_) => {}
        Err(error)
            if error
                .status()
                .is_some_and(|status| status.is_client_error()) =>
        {
            return failed(&format!("the server refuses the lab: {error}"));
        }
        Err(error) => say(&format!("could not declare the lab ({error}); going on")),
    }
    let since = Instant::now();
    let waited = tokio::select! {
        waited = session.wait_until_active(|status| {
            if status.status == SessionState::Waiting {
                say(&format!("waiting for a lab slot: position {} in the queue ({}s)",
                    status.position, since.elapsed().as_secs()));
            }
        }) => waited,
        signal = signals.recv() => return interrupted(signal, "while waiting in the queue"),
    };
    if let Err(error) = waited {
        return failed(&format!("waiting in the queue: {error}"));
    }
    say(&format!(
        "session {short} is active after {}s in the queue",
        since.elapsed().as_secs()
    ));

    let reuse = args.reuse && !args.no_reuse;
    say(&format!("acquiring lab {} ...", lab.topology_name()));
    let since = Instant::now();
    let acquired = tokio::select! {
        acquired = acquire(client, session, lab, reuse) => acquired,
        signal = signals.recv() => return interrupted(signal, "while the lab came up"),
    };
    let acquired = match acquired {
        Ok(acquired) => acquired,
        Err(error) => return failed(&format!("acquiring the lab: {error}")),
    };
    let how = if acquired.reused {
        "attached"
    } else {
        "brought up"
    };
    say(&format!(
        "lab {} {how}: {} devices in {}s",
        lab.topology_name(),
        acquired.devices.len(),
        since.elapsed().as_secs()
    ));
    let code = run_command(client, session, &acquired, args, signals).await;
    if let Err(error) = session.release().await {
        say(&format!("could not release the lab: {error}"));
    }
    code
}

/// `POST /lab`, while netlab's output of the bring-up goes to stderr.
async fn acquire(
    client: &Client,
    session: &Session,
    lab: &LabFiles,
    reuse: bool,
) -> neops_remote_lab::client::Result<AcquireResponseDto> {
    let follow = async {
        follow_bring_up(client, session).await;
        std::future::pending::<()>().await
    };
    // Keyed: sent again after a lost answer, it returns the first result.
    let key = uuid::Uuid::new_v4().to_string();
    tokio::select! {
        acquired = session.acquire(lab, reuse, Some(&key)) => acquired,
        () = follow => unreachable!("following never ends by itself"),
    }
}

/// Waits until the session's slot starts a bring-up, then prints netlab's
/// lines from `GET /lab/log` until it ends. Gives up quietly on any error:
/// it only accompanies the work.
async fn follow_bring_up(client: &Client, session: &Session) {
    let short: String = session.id().chars().take(8).collect();
    loop {
        let Ok(view) = client.sessions().await else {
            return;
        };
        let slot = view
            .sessions
            .iter()
            .find(|s| s.id == short)
            .and_then(|s| s.slot);
        let phase = view.slots.iter().find(|s| Some(s.slot) == slot);
        if phase.is_some_and(|slot| slot.phase == "starting") {
            break;
        }
        tokio::time::sleep(PHASE_POLL).await;
    }
    let Ok(mut lines) = session.lab_log().await else {
        return;
    };
    let since = Instant::now();
    while let Ok(Some(line)) = lines.next_line().await {
        if !line.trim().is_empty() {
            say(&format!(
                "netlab ({}s): {}",
                since.elapsed().as_secs(),
                line.trim_end()
            ));
        }
    }
}

/// Writes the devices and inventory files and runs the command with them,
/// as a [`Job`]: its own process group, killed with `run`. A signal to
/// `run` (SIGINT, SIGTERM, SIGHUP) goes to the whole group; so does
/// SIGTERM when the session is lost (see [`Session::lost`]), and then `run`
/// fails. A command that does not exit within `--kill-grace` is killed.
/// What the command leaves running is ended before the lab is released.
async fn run_command(
    client: &Client,
    session: &Session,
    acquired: &AcquireResponseDto,
    args: &RunArgs,
    signals: &mut Signals,
) -> u8 {
    // Removed when dropped, on every way out of here.
    let dir = match tempfile::Builder::new()
        .prefix("neops-remote-lab-")
        .tempdir()
    {
        Ok(dir) => dir,
        Err(error) => return failed(&format!("cannot create a temporary folder: {error}")),
    };
    let lab_inventory = match session.inventory().await {
        Ok(lab_inventory) => lab_inventory,
        Err(error) => return failed(&format!("reading the lab's inventory: {error}")),
    };
    let files = match inventory::write(dir.path(), &acquired.devices, &lab_inventory) {
        Ok(files) => files,
        Err(error) => return failed(&format!("cannot write the lab's files: {error}")),
    };
    let mut command = tokio::process::Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("REMOTE_LAB_DEVICES_FILE", &files.devices)
        .env("REMOTE_LAB_INVENTORY", &files.inventory)
        .env("REMOTE_LAB_SESSION_ID", session.id())
        .env("REMOTE_LAB_URL", client.base_url());
    let mut job = match Job::spawn(command) {
        Ok(job) => job,
        Err(error) => {
            say(&format!(
                "cannot run {}: {error}",
                command_line(&args.command)
            ));
            return match error.kind() {
                std::io::ErrorKind::NotFound => NOT_FOUND,
                _ => NOT_EXECUTABLE,
            };
        }
    };
    let grace = Duration::from_secs(args.kill_grace);
    let (status, lost) = tokio::select! {
        status = job.wait() => (status, None),
        signal = signals.recv() => {
            say(&format!("signal {signal}: passing it on to the command"));
            (job.stop(signal, grace).await, None)
        }
        why = session.lost() => {
            say(&format!("the session is lost ({why}); stopping the command"));
            (job.stop(libc::SIGTERM, grace).await, Some(why))
        }
    };
    job.end_leftovers(grace).await;
    match (status, lost) {
        (_, Some(why)) => failed(&format!("the lab was lost while the command ran: {why}")),
        (Ok(status), None) => exit_code(status),
        (Err(error), None) => failed(&format!("lost the command: {error}")),
    }
}

/// The command's exit code, or 128+N when signal N ended it (as shells report it).
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

fn interrupted(signal: i32, when: &str) -> u8 {
    say(&format!(
        "stopped by signal {signal} {when}; ending the session"
    ));
    u8::try_from(128 + signal).unwrap_or(255)
}

fn failed(message: &str) -> u8 {
    say(message);
    LAB_FAILURE
}

/// Whether `program` names a file: a path as given, else a name on `PATH`
/// (as the shell would look it up).
fn findable(program: &std::ffi::OsStr) -> bool {
    let path = std::path::Path::new(program);
    if path.components().count() > 1 {
        return path.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|dirs| std::env::split_paths(&dirs).any(|dir| dir.join(program).is_file()))
}

fn command_line(command: &[OsString]) -> String {
    let words: Vec<_> = command.iter().map(|word| word.to_string_lossy()).collect();
    words.join(" ")
}
