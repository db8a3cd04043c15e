//! netlab processes a killed server left behind, found and stopped at the
//! next start.
//!
//! Every command the server runs carries [`OWNER_VAR`] in its environment,
//! set to the server's owner tag (its guarded temporary directory), and
//! every process it starts inherits it. netlab itself also gets the Linux
//! parent-death signal (SIGKILL when the server dies), but its helpers do
//! not. So at start-up, before anything is cleaned, the server looks for
//! processes of its user whose environment carries its tag and stops them:
//! SIGTERM to each one's process group and to the process itself, a grace
//! period, then SIGKILL.
//!
//! What this cannot reach: a descendant that both left the process group
//! (`setsid`) and cleared its environment, and processes of other users.
//! An operator contains those by running the server as a systemd service
//! (`KillMode=control-group` stops the whole cgroup) or in its own cgroup.

use std::time::Duration;

/// The environment variable that marks the server's descendants.
pub const OWNER_VAR: &str = "NEOPS_REMOTE_LAB_OWNER";

/// A process left behind, and its process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Orphan {
    pid: i32,
    group: i32,
}

/// Stops every process whose environment carries `owner` (except this
/// one). Returns how many were found. Reads `/proc`; blocking.
pub fn stop_left_behind(owner: &str, grace: Duration) -> usize {
    let orphans = find(owner);
    if orphans.is_empty() {
        return 0;
    }
    for orphan in &orphans {
        tracing::warn!(
            pid = orphan.pid,
            group = orphan.group,
            "stopping a process an earlier server left behind"
        );
        signal(orphan, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline && orphans.iter().any(|orphan| alive(orphan.pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for orphan in orphans.iter().filter(|orphan| alive(orphan.pid)) {
        signal(orphan, libc::SIGKILL);
    }
    orphans.len()
}

fn find(owner: &str) -> Vec<Orphan> {
    let marker = format!("{OWNER_VAR}={owner}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            // Unreadable (another user's process, or gone): not ours.
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|&byte| byte == 0)
                    .any(|var| var == marker.as_bytes())
            })
        })
        .filter_map(|pid| {
            Some(Orphan {
                pid,
                group: process_group(pid)?,
            })
        })
        .collect()
}

/// The process group of `pid`, from `/proc/<pid>/stat` (field 5, after the
/// parenthesised command name, which may itself contain spaces).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(2)?.parse().ok()
}

fn alive(pid: i32) -> bool {
    // A zombie has exited; its parent (init, for orphans) reaps it.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

fn signal(orphan: &Orphan, signal: i32) {
    // SAFETY: kill/killpg only send signals; the ids were read from /proc
    // just now and carry this server's marker.
    unsafe {
        if orphan.group > 1 {
            libc::killpg(orphan.group, signal);
        }
        libc::kill(orphan.pid, signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_carrying_the_tag_are_stopped_and_others_are_not() {
        let tag = format!("test-{}", std::process::id());
        let spawn = |tag: &str| {
            std::process::Command::new("sleep")
                .arg("300")
                .env(OWNER_VAR, tag)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        use std::os::unix::process::CommandExt;
        let mut ours = spawn(&tag);
        let mut theirs = spawn("someone-else");
        // Until a child has exec'd, /proc shows the test's own environment.
        for child in [&ours, &theirs] {
            let environ = format!("/proc/{}/environ", child.id());
            while !std::fs::read(&environ)
                .unwrap_or_default()
                .windows(OWNER_VAR.len())
                .any(|window| window == OWNER_VAR.as_bytes())
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(stop_left_behind(&tag, Duration::from_secs(5)), 1);
        assert!(ours.wait().unwrap().code().is_none(), "killed by a signal");
        assert!(
            theirs.try_wait().unwrap().is_none(),
            "another server's process lives"
        );
        theirs.kill().unwrap();
        theirs.wait().unwrap();
    }

    #[test]
    fn the_process_group_is_read_past_a_command_name_with_spaces() {
        let me = std::process::id() as i32;
        // SAFETY: getpgrp has no preconditions.
        assert_eq!(process_group(me), Some(unsafe { libc::getpgrp() }));
    }
}
