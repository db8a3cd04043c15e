//! Wire types. Names and fields match the original service's `*Dto` models
//! exactly: its Python client parses these.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::lab::{Device, LabView};
use crate::queue::{SessionStatus, Standing};

/// `waiting` or `active`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Waiting,
    Active,
}

impl From<SessionStatus> for SessionState {
    fn from(status: SessionStatus) -> Self {
        match status {
            SessionStatus::Waiting => SessionState::Waiting,
            SessionStatus::Active => SessionState::Active,
        }
    }
}

/// Answer to `POST /session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreateSessionResponseDto {
    pub session_id: String,
    /// Queue length before this session joined; 0 means it is active.
    pub position: usize,
}

/// Answer to `GET /session/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStatusResponseDto {
    pub status: SessionState,
    /// 0 for the active session, 1 for the first one waiting, and so on.
    pub position: usize,
}

impl From<Standing> for SessionStatusResponseDto {
    fn from(standing: Standing) -> Self {
        SessionStatusResponseDto {
            status: standing.status.into(),
            position: standing.position,
        }
    }
}

/// Answer to `GET /active-session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveSessionResponseDto {
    pub session_id: String,
    pub status: SessionState,
    pub position: usize,
}

/// A node of the running lab.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceInfoDto {
    /// Node name as netlab reports it.
    pub name: String,
    /// The node's Ansible host view, as `netlab inspect --node <name> --format json` prints it.
    #[schema(value_type = Object)]
    pub raw: Map<String, Value>,
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

/// Answer to `POST /lab`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AcquireResponseDto {
    /// True when the request attached to a lab that was already running.
    pub reused: bool,
    pub devices: Vec<DeviceInfoDto>,
}

/// Answer to `GET /lab`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabStatusDto {
    pub running: bool,
    /// File name of the running topology.
    pub topology: Option<String>,
    /// How many clients hold the lab; 0 means running but idle.
    pub ref_count: u32,
    pub devices: Vec<DeviceInfoDto>,
    /// `netlab status --all --format json` as netlab printed it.
    pub netlab_status: Option<String>,
}

impl LabStatusDto {
    pub fn new(view: &LabView, netlab_status: Option<String>) -> Self {
        LabStatusDto {
            running: view.running(),
            topology: view.topology.clone(),
            ref_count: view.ref_count,
            devices: devices(&view.devices),
            netlab_status,
        }
    }
}

/// Answer to `GET /debug/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthDto {
    pub status: &'static str,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// Seconds since the server started.
    pub uptime: f64,
    pub sessions: usize,
    pub queue_length: usize,
    /// Lab slots (numbered from 1) whose last teardown failed: netlab may
    /// still have their lab registered; their next bring-up tries again.
    pub dirty_slots: Vec<usize>,
}

/// Every error: `{"detail": "<message>"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDto {
    pub detail: String,
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
