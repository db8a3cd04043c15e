//! Where the state store lives when `--state-dir` is not given.

use std::path::PathBuf;

/// The folder name under the XDG state home and `/var/lib`.
const NAME: &str = "neops-remote-lab";

/// The default state directory, first match wins:
/// 1. `$STATE_DIRECTORY` (its first entry): systemd sets it for a unit with
///    `StateDirectory=` (systemd.exec(5));
/// 2. `/var/lib/neops-remote-lab` for a system service: root, started by
///    systemd (which sets `$INVOCATION_ID` for every unit it runs);
/// 3. `$XDG_STATE_HOME/neops-remote-lab`, else
///    `~/.local/state/neops-remote-lab` (XDG Base Directory Specification).
///
/// `None` when none applies (no `HOME`).
pub fn default_state_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dirs) = var("STATE_DIRECTORY") {
        // Several directories are separated by colons.
        let first = dirs.to_string_lossy().split(':').next()?.to_string();
        return Some(PathBuf::from(first));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if root && var("INVOCATION_ID").is_some() {
        return Some(PathBuf::from("/var/lib").join(NAME));
    }
    if let Some(state_home) = var("XDG_STATE_HOME").map(PathBuf::from)
        && state_home.is_absolute()
    {
        return Some(state_home.join(NAME));
    }
    var("HOME").map(|home| PathBuf::from(home).join(".local/state").join(NAME))
}
