//! Read-only pictures of the coordinator for watchers (`GET /sessions`, the
//! dashboard, metrics). Taking one never counts as a sign of life.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::Caller;
use crate::domain::{ClientInfo, Phase};
use crate::lab::LabView;
use crate::lab::upload::Identity;
use crate::queue::{Lease, Standing};
use crate::session_id::SessionId;

/// One session of the line.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: SessionId,
    pub standing: Standing,
    /// The lab host of the slot it holds, when that is a lab agent's.
    pub host: Option<Arc<str>>,
    /// The slot it holds (from 1), when ACTIVE.
    pub slot: Option<usize>,
    pub client: Option<Arc<ClientInfo>>,
    /// The token that created it (with auth on).
    pub owner: Option<Caller>,
    /// Time in the line before its promotion (up to now while waiting).
    pub waiting: Duration,
    /// Time since its promotion, when ACTIVE.
    pub holding: Option<Duration>,
    /// The heartbeat interval its client announced.
    pub lease: Option<Lease>,
    /// Time since its last sign of life.
    pub silent: Duration,
    /// Time left before it is evicted unless seen; `None` while a long
    /// request of a session without a lease runs.
    pub evicted_in: Option<Duration>,
    /// The labs it declared it will ask for, in order.
    pub declared: Vec<Identity>,
}

/// One lab slot.
#[derive(Debug, Clone)]
pub struct SlotView {
    /// From 1.
    pub number: usize,
    pub phase: Phase,
    pub holder: Option<SessionId>,
    /// The lab host of a lab agent's slot; `None`: this host's.
    pub host: Option<Arc<str>>,
    /// False while that lab host is offline.
    pub online: bool,
    /// Its lab as of the last finished change.
    pub lab: LabView,
}

/// The line, in order, and every slot, slot 1 first.
#[derive(Debug, Clone)]
pub struct Overview {
    pub sessions: Vec<SessionView>,
    pub slots: Vec<SlotView>,
}
