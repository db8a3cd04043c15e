//! The files `run` hands to its command: the devices as `GET /lab/devices`
//! returns them, and an Ansible inventory built from each device's `raw`
//! (netlab's Ansible host view of the node, so its keys are host variables).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use neops_remote_lab::wire::DeviceInfoDto;

/// Where the files were written.
pub struct LabFilesWritten {
    pub devices: PathBuf,
    pub inventory: PathBuf,
}

/// Writes `devices.json` and `inventory.yml` into `dir`.
pub fn write(dir: &Path, devices: &[DeviceInfoDto]) -> std::io::Result<LabFilesWritten> {
    let written = LabFilesWritten {
        devices: dir.join("devices.json"),
        inventory: dir.join("inventory.yml"),
    };
    let json = serde_json::to_string_pretty(devices).map_err(std::io::Error::other)?;
    std::fs::write(&written.devices, json)?;
    std::fs::write(&written.inventory, inventory(devices)?)?;
    Ok(written)
}

/// `all.hosts.<name>: <raw>`, in the devices' order, as YAML.
fn inventory(devices: &[DeviceInfoDto]) -> std::io::Result<String> {
    let hosts: Map<String, Value> = devices
        .iter()
        .map(|device| (device.name.clone(), Value::Object(device.raw.clone())))
        .collect();
    let document = serde_json::json!({ "all": { "hosts": hosts } });
    yaml_serde::to_string(&document).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_is_a_host_with_its_variables() {
        let raw = |host: &str| match serde_json::json!({"ansible_host": host, "mgmt": {"ipv4": host}})
        {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let devices = [
            DeviceInfoDto {
                name: "r1".into(),
                raw: raw("10.0.0.1"),
            },
            DeviceInfoDto {
                name: "r2".into(),
                raw: raw("10.0.0.2"),
            },
        ];
        let text = inventory(&devices).unwrap();
        let parsed: Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(parsed["all"]["hosts"]["r2"]["ansible_host"], "10.0.0.2");
        assert_eq!(parsed["all"]["hosts"]["r1"]["mgmt"]["ipv4"], "10.0.0.1");
    }
}
