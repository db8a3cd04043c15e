//! netlab's registry of running lab instances, `~/.netlab/status.yaml`.
//!
//! Only one case edits it here: an instance whose directory is gone. netlab
//! cannot take such an instance down (`netlab down` and `netlab status
//! --cleanup` must change into its directory first; its own advice is
//! `netlab status --reset`, which forgets every instance of the user). So
//! the one entry is removed the way netlab changes the file
//! (`netsim/utils/status.py`, `change_status`): under the lock file
//! `status.yaml.lock`, which py-filelock takes with `flock`, as
//! `std::fs::File::lock` does.

use std::io;
use std::path::{Path, PathBuf};

/// netlab's default status file for `home` (`defaults.lab_status_file`).
pub fn status_file(home: &Path) -> PathBuf {
    home.join(".netlab/status.yaml")
}

/// netlab cannot take down an instance whose directory is gone: drops it
/// from netlab's registry (`$HOME`'s status file), so the slot's next
/// `netlab up` is not refused. Returns whether netlab no longer lists it
/// there; what happened is logged.
pub async fn forget_gone(id: &str, dir: PathBuf) -> bool {
    let Some(home) = std::env::var_os("HOME").filter(|home| !home.is_empty()) else {
        tracing::error!(instance = %id, dir = %dir.display(), "the lab's directory is gone and HOME is not set; run `netlab status --reset`");
        return false;
    };
    let file = status_file(Path::new(&home));
    let id_owned = id.to_string();
    let forgotten = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || forget_instance(&file, &id_owned, &dir)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|result| result);
    match forgotten {
        Ok(true) => {
            tracing::warn!(
            instance = %id,
            dir = %dir.display(),
            "the lab's directory is gone, so netlab cannot tear it down; removed it from \
             netlab's status file (containers or VMs of a non-external provider must be \
             removed by hand)"
            );
            true
        }
        Ok(false) => true,
        Err(error) => {
            tracing::error!(instance = %id, %error, "could not remove a lab whose directory is gone from netlab's status file; run `netlab status --reset`");
            false
        }
    }
}

/// Removes instance `id` from the status file when it is registered in
/// `dir`. Returns whether it was. Blocking.
pub fn forget_instance(file: &Path, id: &str, dir: &Path) -> io::Result<bool> {
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(file.with_extension("yaml.lock"))?;
    lock.lock()?;
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    let mut instances: yaml_serde::Mapping =
        yaml_serde::from_str(&text).map_err(io::Error::other)?;
    let registered_here = instances
        .get(id)
        .and_then(|instance| instance.get("dir"))
        .and_then(|registered| registered.as_str())
        .is_some_and(|registered| Path::new(registered) == dir);
    if !registered_here {
        return Ok(false);
    }
    instances.remove(id);
    let fresh = file.with_extension("yaml.new");
    std::fs::write(
        &fresh,
        yaml_serde::to_string(&instances).map_err(io::Error::other)?,
    )?;
    std::fs::rename(&fresh, file)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_instance_registered_in_that_directory_goes() {
        let home = tempfile::tempdir().unwrap();
        let file = status_file(home.path());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(
            &file,
            "default:\n  dir: /gone/lab\n  status: started\n'2':\n  dir: /other\n  status: started\n",
        )
        .unwrap();
        assert!(!forget_instance(&file, "default", Path::new("/elsewhere")).unwrap());
        assert!(forget_instance(&file, "default", Path::new("/gone/lab")).unwrap());
        let left: yaml_serde::Mapping =
            yaml_serde::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(left.len(), 1);
        assert!(left.contains_key("2"));
        assert!(!forget_instance(&file, "default", Path::new("/gone/lab")).unwrap());
    }
}
