//! The wire types: every JSON body the server sends or accepts, shared by
//! the server ([`crate::api`]) and the client ([`crate::client`]). Names and
//! fields match the original service's `*Dto` models exactly (its Python
//! client parses these), so every type here serializes byte for byte as
//! the routes in the README show and deserializes what it serializes.
//!
//! Units: seconds as `f64`, positions and slots as plain counts (slots
//! numbered from 1).

mod live;

pub use live::{
    DeviceSummaryDto, EventDto, EventKindDto, LabSummaryDto, QueuedSessionDto, SessionsDto, SlotDto,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// `waiting` or `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    Waiting,
    Active,
}

/// Answer to `POST /session`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateSessionResponseDto {
    pub session_id: String,
    /// Queue length before this session joined; 0 means it is active.
    pub position: usize,
}

/// Answer to `GET /session/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionStatusResponseDto {
    pub status: SessionState,
    /// 0 for the active session, 1 for the first one waiting, and so on.
    pub position: usize,
    /// The identities (SHA-256 hex) of the labs the session declared it
    /// will ask for, in order (`POST /session/{id}/labs`); absent from
    /// servers before 1.5.0.
    #[serde(default)]
    pub declared_labs: Vec<String>,
}

/// Answer to `POST /session/{id}/labs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeclaredLabDto {
    /// The lab's identity: SHA-256 hex of the upload, as `POST /lab`
    /// computes it for the same files.
    pub identity: String,
    /// Its place in the session's declared labs, from 0.
    pub index: usize,
}

/// Answer to `GET /active-session`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActiveSessionResponseDto {
    pub session_id: String,
    pub status: SessionState,
    pub position: usize,
}

/// A node of the running lab.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceInfoDto {
    /// Node name as netlab reports it.
    pub name: String,
    /// The node's Ansible host view, as `netlab inspect --node <name> --format json` prints it:
    /// a JSON object, kept as its text (see [`DeviceInfoDto::host_view`]).
    #[schema(value_type = Object)]
    pub raw: Box<serde_json::value::RawValue>,
}

impl DeviceInfoDto {
    /// The host view as a map (`raw["mgmt"]["ipv4"]`, `raw["ansible_user"]`, …).
    /// Errors: `raw` is not a JSON object.
    pub fn host_view(&self) -> serde_json::Result<Map<String, Value>> {
        serde_json::from_str(self.raw.get())
    }
}

/// Same name and same host view, whatever the keys' order and spacing.
impl PartialEq for DeviceInfoDto {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.host_view().ok() == other.host_view().ok()
    }
}

/// Answer to `POST /lab`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AcquireResponseDto {
    /// True when the request attached to a lab that was already running.
    pub reused: bool,
    pub devices: Vec<DeviceInfoDto>,
}

/// Answer to `GET /lab/inventory`: netlab's own Ansible inventory of the
/// lab, the files `netlab up` wrote into its directory, as they are. Write
/// each under its path into one folder and point Ansible at `hosts.yml`
/// there (`ansible-playbook -i <folder>/hosts.yml …`): it reads the
/// `group_vars/` and `host_vars/` beside it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LabInventoryDto {
    /// Path relative to the folder, with `/` (`hosts.yml`,
    /// `group_vars/<group>/topology.json`, `host_vars/<host>/topology.json`)
    /// → the file's text.
    pub files: std::collections::BTreeMap<String, String>,
}

/// Answer to `GET /lab`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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

/// Answer to `GET /debug/health`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HealthDto {
    pub status: String,
    /// Seconds since the Unix epoch.
    pub timestamp: f64,
    /// Seconds since the server started.
    pub uptime: f64,
    pub sessions: usize,
    pub queue_length: usize,
    /// Lab slots (numbered from 1) whose last teardown failed: netlab may
    /// still have their lab registered; their next bring-up tries again.
    pub dirty_slots: Vec<usize>,
    /// Why changes wait to be saved to the state store (a full disk, say);
    /// `null` when everything is saved. Until then every change is refused
    /// with 503 and nothing happens.
    pub unsaved: Option<String>,
}

/// Every error: `{"detail": "<message>"}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDto {
    pub detail: String,
}

/// Who is asking: shown in `GET /sessions`, the events and the dashboard.
/// Every field is optional free text without control characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct ClientInfoDto {
    /// At most 64 characters.
    pub user: Option<String>,
    /// At most 255 characters.
    pub host: Option<String>,
    /// An `http://` or `https://` link without spaces, at most 2048 characters.
    pub ci_job_url: Option<String>,
    /// Free-form (e.g. the pytest invocation), at most 512 characters.
    pub label: Option<String>,
}

/// Body of `POST /session`; the body itself is optional (no body, an empty
/// one and JSON `null` all mean "nothing to say"). Unknown keys are ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
pub struct CreateSessionRequestDto {
    pub client: Option<ClientInfoDto>,
    /// The client's promise to send a sign of life (a heartbeat, a status
    /// poll, any request with this session) at least every this many
    /// seconds. The session is then evicted after max(3 × this, 10) seconds
    /// without one, waiting or active, instead of the waiting and active
    /// timeouts: a client killed with SIGKILL gives its slot back within
    /// seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 300)]
    pub heartbeat_seconds: Option<u64>,
}
