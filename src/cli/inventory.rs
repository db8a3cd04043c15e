//! The files `run` hands to its command: the devices as `GET /lab/devices`
//! returns them, and netlab's own Ansible inventory of the lab as
//! `GET /lab/inventory` returns it (`hosts.yml` with netlab's groups, and
//! the `group_vars/` and `host_vars/` beside it).

use std::path::{Component, Path, PathBuf};

use neops_remote_lab::wire::{DeviceInfoDto, LabInventoryDto};

/// Where the files were written.
pub struct LabFilesWritten {
    pub devices: PathBuf,
    /// The inventory's `hosts.yml`; Ansible finds the variables beside it.
    pub inventory: PathBuf,
}

/// Writes `devices.json` and the inventory's files below `inventory/` into
/// `dir`. Errors: an inventory path that is not a plain relative path (the
/// server is not trusted to write outside `dir`), or a failed write.
pub fn write(
    dir: &Path,
    devices: &[DeviceInfoDto],
    inventory: &LabInventoryDto,
) -> std::io::Result<LabFilesWritten> {
    let folder = dir.join("inventory");
    let written = LabFilesWritten {
        devices: dir.join("devices.json"),
        inventory: folder.join("hosts.yml"),
    };
    let json = serde_json::to_string_pretty(devices).map_err(std::io::Error::other)?;
    std::fs::write(&written.devices, json)?;
    for (name, text) in &inventory.files {
        let path = folder.join(plain(name)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(written)
}

/// `name` as a relative path of plain folder and file names.
fn plain(name: &str) -> std::io::Result<&Path> {
    let path = Path::new(name);
    let plain = path.components().count() > 0
        && path
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
    if plain {
        Ok(path)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the server sent an inventory file outside its folder: {name:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(files: &[(&str, &str)]) -> LabInventoryDto {
        LabInventoryDto {
            files: files
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string()))
                .collect(),
        }
    }

    #[test]
    fn the_inventory_keeps_its_layout_and_the_devices_their_json() {
        let dir = tempfile::tempdir().unwrap();
        let files = inventory(&[
            ("hosts.yml", "core:\n  hosts:\n    r1: {}\n"),
            ("group_vars/core/topology.json", "{\"area\": 1}"),
        ]);
        let written = write(dir.path(), &[], &files).unwrap();
        assert_eq!(written.inventory, dir.path().join("inventory/hosts.yml"));
        let group = dir.path().join("inventory/group_vars/core/topology.json");
        assert_eq!(std::fs::read_to_string(group).unwrap(), "{\"area\": 1}");
        assert_eq!(std::fs::read_to_string(written.devices).unwrap(), "[]");
    }

    #[test]
    fn a_path_leading_out_of_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../escape", "/etc/x", "group_vars/../../x", ""] {
            let files = inventory(&[(name, "x")]);
            assert!(write(dir.path(), &[], &files).is_err(), "{name:?}");
        }
        assert!(!dir.path().parent().unwrap().join("escape").exists());
    }
}
