//! Many lab hosts, one queue: lab agents.
//!
//! One coordinator decides; a lab agent on every lab host pulls the desired
//! state of its slots, converges to it and reports back (see
//! `docs/many-lab-hosts.md`). The coordinator never dials an agent.
//!
//! - [`wire`]: the messages between them;
//! - the coordinator's side: [`slot`] (an agent's slot: its assignment and
//!   reports), [`host`] (a lab host and its liveness), [`remote`] (the slot
//!   driver that stands for an agent's slot), [`pool`] (every host);
//! - [`run`]: the agent itself (`neops-remote-lab agent`).

pub mod host;
pub mod pool;
pub mod remote;
pub mod run;
pub mod slot;
pub mod wire;
