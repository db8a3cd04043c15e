//! neops-remote-lab: shares one Netlab lab host between test suites.
//!
//! A suite opens a session and waits in a FIFO [`queue`]; the active session
//! uploads a topology and the [`lab`] manager brings it up with netlab (or
//! attaches to the running lab when the content is identical). Requests flow
//! one way: [`api`] handler → [`sessions`] (who may act) → [`lab`] (what must
//! happen) → [`lab::netlab`] (how).

pub mod api;
pub mod handover;
pub mod host_lock;
pub mod lab;
pub mod logging;
pub mod queue;
pub mod server;
pub mod sessions;
pub mod shutdown;
