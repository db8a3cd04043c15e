//! At start: which labs of a previous run still run and are taken over
//! (re-adopted), and clearing everything else that run left behind.
//!
//! A stored lab is re-adopted when it had finished its bring-up, its
//! directory still exists and `netlab status --all --format json` still
//! lists its slot's instance in that directory as `started`. Every other lab this server
//! owns (its slots' instances, any instance or `lab-*` directory in its work
//! folder) is torn down and removed: it would block the next bring-up.

use std::path::{Path, PathBuf};

use super::netlab::{Netlab, Registered, same_dir};
use super::{remove_stale_dirs, status_file};
use crate::store::StoredLab;

/// Re-adopts what still runs of `stored` (the labs the store knows) and
/// clears the rest. `slots`: the numbers of this host's slots. Returns the
/// labs to adopt.
pub async fn readopt_or_clear(
    netlab: &Netlab,
    slots: &[usize],
    work_root: &Path,
    stored: &[StoredLab],
) -> Vec<StoredLab> {
    let registered = match netlab.registered().await {
        Ok(registered) => Some(registered),
        Err(error) => {
            tracing::warn!(%error, "cannot list netlab's labs; clearing every slot's instance");
            None
        }
    };
    let adopted: Vec<StoredLab> = stored
        .iter()
        .filter(|lab| still_runs(netlab, slots, lab, registered.as_deref()))
        .cloned()
        .collect();
    for lab in stored.iter().filter(|lab| !adopted.contains(lab)) {
        tracing::warn!(slot = lab.slot, phase = lab.phase.as_str(), dir = %lab.files.netlab_dir.display(), "the stored lab no longer runs as it was left; clearing it");
    }
    // Only what this server owns: its slots' instances, and any instance
    // whose directory is in its work folder (a slot of an earlier run with
    // more slots), except the adopted ones.
    let ours: Vec<String> = (slots.iter())
        .map(|&slot| netlab.for_slot(slot).instance().to_string())
        .collect();
    let adopted_instances: Vec<String> = adopted
        .iter()
        .map(|lab| netlab.for_slot(lab.slot).instance().to_string())
        .collect();
    let stale: Vec<(String, Option<PathBuf>)> = match registered {
        Some(registered) => registered
            .into_iter()
            .filter(|lab| ours.contains(&lab.id) || lab.dir.starts_with(work_root))
            .filter(|lab| !adopted_instances.contains(&lab.id))
            .map(|lab| (lab.id, Some(lab.dir)))
            .collect(),
        None => ours.into_iter().map(|id| (id, None)).collect(),
    };
    for (id, dir) in stale {
        if let Some(dir) = dir.filter(|dir| !dir.exists()) {
            status_file::forget_gone(&id, dir).await;
            continue;
        }
        match netlab.down_instance(&id).await {
            Ok(true) => {
                tracing::warn!(instance = %id, "cleared a stale lab left by an earlier run")
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(instance = %id, %error, "could not clear a stale lab"),
        }
    }
    let keep: Vec<PathBuf> = adopted.iter().map(|lab| lab.files.dir.clone()).collect();
    match remove_stale_dirs(work_root, &keep).await {
        Ok(0) => {}
        Ok(count) => tracing::warn!(count, "removed stale lab directories"),
        Err(error) => tracing::warn!(%error, "could not remove stale lab directories"),
    }
    adopted
}

fn still_runs(
    netlab: &Netlab,
    slots: &[usize],
    lab: &StoredLab,
    registered: Option<&[Registered]>,
) -> bool {
    if !lab.was_running() || !slots.contains(&lab.slot) || !lab.files.netlab_dir.is_dir() {
        return false;
    }
    let instance = netlab.for_slot(lab.slot).instance().to_string();
    registered.is_some_and(|registered| {
        registered.iter().any(|found| {
            found.id == instance
                && found.status == "started"
                && same_dir(&found.dir, &lab.files.netlab_dir)
        })
    })
}
