//! The messages between a lab agent and its coordinator (JSON over HTTP,
//! the agent always the one that connects; see `docs/many-lab-hosts.md`).
//!
//! The coordinator's answer to a poll *is* the desired state of the
//! agent's slots; the agent converges to it and reports what it reached.
//! Every assignment carries an epoch (only ever increasing, per slot) and
//! every report the epoch it answers and the agent's incarnation (a fresh
//! id per agent start), so nothing stale is acted on by either side.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::domain::{Device, LabFiles};
use crate::lab::inventory::Inventory;
use crate::lab::upload::Upload;

/// Longest a poll is held open without a change, in seconds: a lost answer
/// is repaired by the next poll at most this late.
pub const POLL_SECONDS: u64 = 5;

/// `POST /agent/register`: an agent (re)joins the pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Register {
    /// The lab host's name (`--name`), unique in the pool.
    pub name: String,
    /// A fresh id per agent start.
    pub incarnation: String,
    /// How many slots it offers (`--lab-slots`).
    pub slots: usize,
    pub capabilities: Capabilities,
    /// What its slots run now (empty after a start: it cleared them).
    pub running: Vec<RunningLab>,
}

/// What a lab host can run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Capabilities {
    /// `netlab version` on that host.
    pub netlab_version: String,
    /// The arguments it adds to every `netlab up` (its provider choice).
    pub up_args: Vec<String>,
    /// Where clients reach the host over SSH (`--ssh-address`; default:
    /// its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_address: Option<String>,
}

/// A lab an agent's slot runs, as it tells the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningLab {
    /// The slot's pool-wide number.
    pub slot: usize,
    /// The epoch of the assignment it runs for.
    pub epoch: u64,
    pub identity: String,
}

/// The answer to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    /// The agent's slots' pool-wide numbers, in its own order (its slot 1
    /// first). Each is also the slot's netlab multilab id.
    pub slots: Vec<usize>,
}

/// `GET /agent/desired`: the desired state of every slot of the agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DesiredState {
    /// Increases with every change; poll with `after=<version>` to wait
    /// for the next one.
    pub version: u64,
    pub slots: Vec<SlotDesired>,
}

/// What one slot should run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SlotDesired {
    /// Pool-wide number.
    pub slot: usize,
    pub epoch: u64,
    /// `None`: nothing runs in the slot.
    pub lab: Option<WantedLab>,
}

/// A lab a slot should run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WantedLab {
    /// The upload's identity (SHA-256, hex): fetch its files with
    /// `GET /agent/upload?slot=…&epoch=…`.
    pub identity: String,
    pub topology: String,
    /// netlab arguments to run in the running lab before reporting it up
    /// again (a warm reset); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reset: Vec<String>,
}

/// `POST /agent/report`: what a slot reached for an epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub incarnation: String,
    pub slot: usize,
    pub epoch: u64,
    pub state: SlotReport,
}

/// A slot's state, as the agent reports it (externally tagged, e.g.
/// `{"up": {…}}` or `"down"`: the devices' host views are kept as raw JSON,
/// which an internally tagged enum cannot carry).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlotReport {
    /// The lab's files are written; its bring-up runs.
    Booting { files: LabFiles },
    /// The wanted lab runs.
    Up {
        files: LabFiles,
        devices: Vec<Device>,
        inventory: Inventory,
        built_by: String,
    },
    /// The bring-up or warm reset failed (the lab is gone).
    Failed { message: String, timed_out: bool },
    /// Nothing runs.
    Down,
    /// The teardown failed; the slot keeps the lab's files.
    Dirty { message: String },
}

/// `POST /agent/log`: bring-up output lines of a slot's epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogLines {
    pub name: String,
    pub incarnation: String,
    pub slot: usize,
    pub epoch: u64,
    pub lines: Vec<String>,
}

/// An upload's files as the coordinator hands them to an agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadFiles {
    /// The topology's path among `files`.
    pub topology: PathBuf,
    pub files: Vec<UploadFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadFile {
    /// Relative to the upload's root.
    pub path: PathBuf,
    /// The content, base64 (RFC 4648, with padding).
    pub content: String,
}

impl UploadFiles {
    pub fn of(upload: &Upload) -> Self {
        UploadFiles {
            topology: upload.topology_path().to_path_buf(),
            files: (upload.files().into_iter())
                .map(|(path, bytes)| UploadFile {
                    path,
                    content: STANDARD.encode(bytes),
                })
                .collect(),
        }
    }

    /// The upload again. Errors: a path that is not plain relative (no
    /// `..`, no root), content that is not base64, or a missing topology.
    pub fn into_upload(self) -> Result<Upload, String> {
        let mut files = Vec::with_capacity(self.files.len());
        for file in self.files {
            if !plain_relative(&file.path) {
                return Err(format!(
                    "{}: not a plain relative path",
                    file.path.display()
                ));
            }
            let bytes = STANDARD
                .decode(&file.content)
                .map_err(|error| format!("{}: {error}", file.path.display()))?;
            files.push((file.path, bytes));
        }
        Upload::from_files(&self.topology, files)
            .ok_or_else(|| format!("{}: the topology is missing", self.topology.display()))
    }
}

fn plain_relative(path: &Path) -> bool {
    path.components().count() > 0
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_up_report_with_devices_crosses_the_wire() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"mgmt":{"ipv4":"192.168.121.101"}}"#.into(),
        )
        .unwrap();
        let report = Report {
            name: "lab-b".into(),
            incarnation: "i".into(),
            slot: 2,
            epoch: 7,
            state: SlotReport::Up {
                files: LabFiles {
                    dir: "/w/lab".into(),
                    netlab_dir: "/w/lab/x".into(),
                },
                devices: vec![Device::new("r1".into(), raw)],
                inventory: Inventory::from([("hosts.yml".into(), "all: {}\n".into())]),
                built_by: "26.10".into(),
            },
        };
        let text = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        let SlotReport::Up {
            devices, inventory, ..
        } = back.state
        else {
            panic!("not up: {text}");
        };
        assert_eq!(devices[0].name, "r1");
        assert_eq!(
            devices[0].raw.get(),
            r#"{"mgmt":{"ipv4":"192.168.121.101"}}"#
        );
        assert_eq!(inventory["hosts.yml"], "all: {}\n");
    }

    #[test]
    fn an_upload_crosses_the_wire_unchanged_and_a_path_out_is_refused() {
        let upload = Upload::from_files(
            Path::new("lab/topo.yml"),
            vec![
                (PathBuf::from("lab/topo.yml"), b"nodes: [a]\n".to_vec()),
                (PathBuf::from("lab/configs/a.cfg"), vec![0, 255, 10]),
            ],
        )
        .unwrap();
        let back = UploadFiles::of(&upload).into_upload().unwrap();
        assert_eq!(back.identity, upload.identity);
        assert_eq!(back.files(), upload.files());

        let mut bad = UploadFiles::of(&upload);
        bad.files[1].path = PathBuf::from("../../etc/x");
        assert!(bad.into_upload().unwrap_err().contains("plain relative"));
    }
}
