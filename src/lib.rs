//! neops-remote-lab: shares Netlab lab hosts between test suites.
//!
//! A suite opens a session and waits in a FIFO line; once it holds a lab
//! slot it uploads a topology and gets the devices' data back (or attaches to
//! the running lab when the content is identical). Requests flow one way:
//!
//! ```text
//! api (axum) ──calls──▶ coordinator ──spawns──▶ lab::LabSlot ──▶ lab::netlab
//!                         │ queue, slots,          │ upload folder, identity
//!                         │ deadlines              │ process groups
//!                         └──publishes──▶ events ──▶ store (SQLite), SSE, metrics
//! ```
//!
//! - [`coordinator`] is the centre: who may act, what must happen, when.
//! - [`queue`] is the pure waiting line it owns.
//! - [`lab`] runs each slot's lab; [`lab::netlab`] is the only code that
//!   runs netlab.
//! - [`api`] turns HTTP into coordinator calls and results into `*Dto`s.
//! - [`store`] writes the coordinator's events, so the queue and the labs
//!   survive a restart.
//! - [`metrics`] turns the coordinator's events into Prometheus metrics.
//! - [`domain`] holds the data they all share (events, lab changes, files
//!   and devices, client info), below all of them: the coordinator, the
//!   store and the lab layer depend on it, never on each other's data.
//! - [`app`] assembles the service once, for the server and the tests;
//!   [`server`] owns start-up (the host, the store, netlab) and shutdown;
//!   [`server_guard`] keeps one server per host.

pub mod agent;
pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod coordinator;
pub mod domain;
pub mod lab;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod queue;
pub mod serve;
pub mod server;
pub mod server_guard;
pub mod session_id;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;
