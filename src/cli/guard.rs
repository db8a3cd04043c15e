//! The job's guard: the process that leads a `run` job's process group and
//! runs the command inside it, so that the whole group dies when `run`
//! does. A parent-death signal reaches only the direct child: set on the
//! command itself, what the command started (a shell's `ansible-playbook`,
//! a background process) would outlive a SIGKILLed `run` and go on
//! against a lab that the server hands to the next suite. The guard gets
//! the parent-death signal instead ([`PARENT_DIED`]) and answers it by
//! killing its group.
//!
//! Otherwise it stays out of the way: signals sent to the group reach the
//! command directly (the guard itself outlives them), and the guard ends
//! the way the command ended (its exit code, or the same signal).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitCode;

use clap::Args;

/// The parent-death signal `run` arms for the guard.
pub const PARENT_DIED: libc::c_int = libc::SIGUSR2;

/// The hidden subcommand `run` starts the guard with.
pub const SUBCOMMAND: &str = "job-guard";

/// Signals the group gets that are meant for the command.
const PASSED_ON: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

extern "C" fn kill_the_group(_: libc::c_int) {
    // SAFETY: killpg is async-signal-safe; group 0 is the caller's own.
    unsafe { libc::killpg(0, libc::SIGKILL) };
}

extern "C" fn let_it_pass(_: libc::c_int) {}

/// Runs the command in this process's group and ends as it ended; 126 or
/// 127 when it cannot be started.
pub fn guard(args: GuardArgs) -> ExitCode {
    // Handlers, not "ignore": an exec resets handlers to the default, so
    // the command gets every signal as usual.
    // SAFETY: both handlers only make async-signal-safe calls.
    unsafe {
        libc::signal(
            PARENT_DIED,
            kill_the_group as *const () as libc::sighandler_t,
        );
        for signal in PASSED_ON {
            libc::signal(signal, let_it_pass as *const () as libc::sighandler_t);
        }
    }
    let mut child = match std::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            let name = args.command[0].to_string_lossy();
            eprintln!("neops-remote-lab: cannot run {name}: {error}");
            let code = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return ExitCode::from(code);
        }
    };
    let status = match child.wait() {
        Ok(status) => status,
        Err(error) => {
            eprintln!("neops-remote-lab: lost the command: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(signal) = status.signal() {
        // SAFETY: back to the default action, then the same signal: the
        // guard ends as the command did.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    ExitCode::from(status.code().map_or(1, |code| code as u8))
}
