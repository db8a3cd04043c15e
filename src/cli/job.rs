//! The command `run` runs, as a job of its own: a process group that
//! nothing outlives.
//!
//! - The command leads its own process group, so a signal (or the final
//!   SIGKILL) reaches everything it started: a CI job's `ansible-playbook`
//!   and its SSH connections end with it, never against a lab being torn
//!   down or handed to the next suite.
//! - The group is led by a guard ([`super::guard`]) that runs the command
//!   and gets a parent-death signal (`prctl(PR_SET_PDEATHSIG)`): when `run`
//!   itself is killed with SIGKILL, as a cancelled CI job's runner ends its
//!   process tree, the guard kills the whole group, so nothing the command
//!   started outlives `run`. The server notices the dead session by its
//!   lease.
//! - On a terminal where `run` is in the foreground, the command's group
//!   becomes the terminal's foreground group, as a shell does for a job: it
//!   may read the terminal, and Ctrl-C reaches it (and only it); `run` takes
//!   the terminal back when the job ends.

use std::io::IsTerminal;
use std::process::ExitStatus;
use std::time::Duration;

use super::{guard, say};

/// How often a stop looks whether the group is empty yet.
const GROUP_POLL: Duration = Duration::from_millis(50);

pub struct Job {
    child: tokio::process::Child,
    /// The group's id: the command's pid.
    group: libc::pid_t,
    /// The job holds the terminal's foreground.
    foreground: bool,
}

impl Job {
    /// Starts `command` as a job (see the module documentation).
    pub fn spawn(command: tokio::process::Command) -> std::io::Result<Job> {
        let mut command = guarded(&command)?;
        let foreground = owns_terminal();
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        command.process_group(0);
        // SAFETY: between fork and exec only async-signal-safe calls run
        // (prctl, getppid, sigprocmask, tcsetpgrp, getpgrp), and nothing
        // allocates (an error is a raw OS error).
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, guard::PARENT_DIED);
                // `run` died before the signal was armed: die now.
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                if foreground {
                    without_sigttou(|| libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()));
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        let group = child
            .id()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
            .ok_or_else(|| std::io::Error::other("the command has no process id"))?;
        Ok(Job {
            child,
            group,
            foreground,
        })
    }

    /// Waits for the command to exit (the guard ends as it ended).
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Stops the job: `signal` to its whole group, then, if the command
    /// has not exited within `grace` (it ignores the signal), SIGKILL.
    /// Returns how the command ended.
    pub async fn stop(&mut self, signal: i32, grace: Duration) -> std::io::Result<ExitStatus> {
        self.signal(signal);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                say(&format!(
                    "the command is still running {} s after signal {signal}; killing it",
                    grace.as_secs_f64()
                ));
                self.signal(libc::SIGKILL);
                self.child.wait().await
            }
        }
    }

    /// Once the command has exited: ends what it left running in its group
    /// (a daemon, a background `sleep`), with SIGTERM, and SIGKILL for what
    /// is still there after `grace`.
    pub async fn end_leftovers(&self, grace: Duration) {
        if !self.group_alive() {
            return;
        }
        say("ending what the command left running");
        self.signal(libc::SIGTERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.group_alive() {
            if tokio::time::Instant::now() >= deadline {
                self.signal(libc::SIGKILL);
                return;
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: killpg only sends a signal. The group is ours: its
        // leader's pid cannot be reused while any member of it lives.
        unsafe { libc::killpg(self.group, signal) };
    }

    fn group_alive(&self) -> bool {
        // SAFETY: signal 0 only checks that a member exists.
        unsafe { libc::killpg(self.group, 0) == 0 }
    }
}

impl Drop for Job {
    /// Whatever way `run` leaves, nothing of the job stays behind, and the
    /// terminal is `run`'s (its shell's) again.
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        if self.foreground {
            // SAFETY: tcsetpgrp and getpgrp on our own terminal and group.
            without_sigttou(|| unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpgrp()) });
        }
    }
}

/// `command` as the guard runs it: this program's hidden subcommand with
/// the same program, arguments, environment and folder.
fn guarded(command: &tokio::process::Command) -> std::io::Result<tokio::process::Command> {
    let original = command.as_std();
    let mut guarded = tokio::process::Command::new(std::env::current_exe()?);
    guarded
        .arg(guard::SUBCOMMAND)
        .arg("--")
        .arg(original.get_program())
        .args(original.get_args());
    for (key, value) in original.get_envs() {
        match value {
            Some(value) => guarded.env(key, value),
            None => guarded.env_remove(key),
        };
    }
    if let Some(dir) = original.get_current_dir() {
        guarded.current_dir(dir);
    }
    Ok(guarded)
}

/// Whether stdin is a terminal whose foreground group is `run`'s: only
/// then may the job take it (a `run … &` in the background must not).
fn owns_terminal() -> bool {
    // SAFETY: tcgetpgrp and getpgrp only read.
    std::io::stdin().is_terminal()
        && unsafe { libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp() }
}

/// Runs `change` (a `tcsetpgrp`) with SIGTTOU blocked: a process outside
/// the terminal's foreground group may hand the foreground over only so
/// (POSIX `tcsetpgrp`). Async-signal-safe.
fn without_sigttou(change: impl FnOnce() -> libc::c_int) {
    // SAFETY: the sets are plain values initialised by sigemptyset before use.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut before);
        change();
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
    }
}
