//! The wire types ([`crate::wire`]) built from the lab's and the queue's
//! own types, and the `POST /lab` form for the API documentation.

use utoipa::ToSchema;

use crate::lab::upload::Identity;
use crate::lab::{Device, LabView};
use crate::queue::{SessionStatus, Standing};
use crate::wire::{DeviceInfoDto, LabStatusDto, SessionState, SessionStatusResponseDto};

impl From<SessionStatus> for SessionState {
    fn from(status: SessionStatus) -> Self {
        match status {
            SessionStatus::Waiting => SessionState::Waiting,
            SessionStatus::Active => SessionState::Active,
        }
    }
}

/// `GET /session/{id}`'s answer: where the session stands, and the labs it
/// declared.
pub fn session_status(standing: Standing, declared: &[Identity]) -> SessionStatusResponseDto {
    SessionStatusResponseDto {
        status: standing.status.into(),
        position: standing.position,
        declared_labs: declared.iter().map(ToString::to_string).collect(),
    }
}

impl From<&Device> for DeviceInfoDto {
    fn from(device: &Device) -> Self {
        DeviceInfoDto {
            name: device.name.clone(),
            raw: device.raw.clone(),
        }
    }
}

pub fn devices(devices: &[Device]) -> Vec<DeviceInfoDto> {
    devices.iter().map(DeviceInfoDto::from).collect()
}

pub fn lab_status(view: &LabView, netlab_status: Option<String>) -> LabStatusDto {
    LabStatusDto {
        running: view.running(),
        topology: view.topology.clone(),
        ref_count: view.ref_count,
        devices: devices(&view.devices),
        netlab_status,
    }
}

/// The `POST /lab` form, for the API documentation.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AcquireFormDto {
    /// The netlab topology (`.yml` or `.yaml`). Its file name may be a path
    /// relative to the upload's root, e.g. `labs/basic/topology.yml`; netlab
    /// runs in its folder.
    #[schema(value_type = String, format = Binary)]
    topology: Vec<u8>,
    /// Attach to a running lab of the same content (default true; `true`,
    /// `false`, `1`, `0`, `yes`, `no`, `on`, `off`).
    #[schema(value_type = bool, required = false, default = true)]
    reuse: Option<bool>,
    /// Files the topology refers to; each file name is its path relative to
    /// the upload's root, e.g. `configs/r1.cfg` (with a bare topology name,
    /// the root is the topology's folder).
    #[schema(value_type = Vec<String>, format = Binary, required = false)]
    extra_files: Option<Vec<Vec<u8>>>,
}
