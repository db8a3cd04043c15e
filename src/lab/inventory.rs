//! netlab's own Ansible inventory of a running lab: the files `netlab up`
//! writes into the lab's directory (`hosts.yml`, `group_vars/<group>/…`,
//! `host_vars/<host>/…`; networklab 26.10, its `ansible` output module).
//! Handed to clients as they are, so a playbook written for netlab
//! (`hosts: core`, `hosts: eos`, group variables) finds the same groups and
//! variables it finds next to a lab started by hand.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The inventory's entry point; Ansible reads the two folders beside it.
pub const HOSTS_FILE: &str = "hosts.yml";

/// The folders of group and host variables, read recursively.
const VARIABLE_FOLDERS: [&str; 2] = ["group_vars", "host_vars"];

/// Largest inventory handed out, in bytes: netlab writes a few kilobytes per
/// node; this is far beyond any lab a host can run.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The inventory's files: path relative to the lab's directory (with `/`)
/// → text.
pub type Inventory = BTreeMap<String, String>;

/// Reads the inventory netlab wrote into `dir`. Errors: `NotFound` when
/// netlab wrote none (no `hosts.yml`), `InvalidData` for a file that is
/// not UTF-8 text or an inventory larger than [`MAX_BYTES`].
pub async fn read(dir: &Path) -> std::io::Result<Inventory> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || read_blocking(&dir))
        .await
        .map_err(std::io::Error::other)?
}

fn read_blocking(dir: &Path) -> std::io::Result<Inventory> {
    let mut files = vec![PathBuf::from(HOSTS_FILE)];
    for folder in VARIABLE_FOLDERS {
        collect(dir, Path::new(folder), &mut files)?;
    }
    let mut inventory = Inventory::new();
    let mut total = 0;
    for relative in files {
        let path = dir.join(&relative);
        total += std::fs::metadata(&path)?.len();
        if total > MAX_BYTES {
            return Err(invalid(format!(
                "the inventory is larger than {MAX_BYTES} bytes"
            )));
        }
        let text = String::from_utf8(std::fs::read(&path)?)
            .map_err(|_| invalid(format!("{} is not UTF-8 text", relative.display())))?;
        inventory.insert(slashed(&relative), text);
    }
    Ok(inventory)
}

/// Adds every regular file below `dir/relative` (none when it does not
/// exist). Links are skipped: netlab writes none, and one must not lead
/// out of the lab's directory.
fn collect(dir: &Path, relative: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir.join(relative)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut names: Vec<_> = entries
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let path = relative.join(name);
        let kind = std::fs::symlink_metadata(dir.join(&path))?.file_type();
        if kind.is_dir() {
            collect(dir, &path, files)?;
        } else if kind.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

fn slashed(path: &Path) -> String {
    path.components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn invalid(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_the_hosts_file_and_both_variable_trees_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("hosts.yml", "core:\n  hosts:\n    r1: {}\n");
        write("group_vars/core/topology.json", "{\"area\": 1}");
        write("host_vars/r1/topology.json", "{}");
        write("topology.yml", "nodes: [r1]");
        write("ansible.cfg", "[defaults]");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("host_vars/r1/passwd")).unwrap();
        let inventory = read(dir.path()).await.unwrap();
        let paths: Vec<&str> = inventory.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "group_vars/core/topology.json",
                "host_vars/r1/topology.json",
                "hosts.yml"
            ]
        );
        assert_eq!(inventory["group_vars/core/topology.json"], "{\"area\": 1}");
    }

    #[tokio::test]
    async fn a_lab_without_an_inventory_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let error = read(dir.path()).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }
}
