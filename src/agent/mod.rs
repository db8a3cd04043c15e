//! Many lab hosts, one queue: lab agents.
//!
//! One coordinator decides; a lab agent on every lab host pulls the desired
//! state of its slots, converges to it and reports back (see
//! `docs/many-lab-hosts.md`). The coordinator never dials an agent.
//!
//! - [`wire`]: the messages between them;
//! - [`pool`] and [`remote`]: the coordinator's side (the hosts, and the
//!   slot driver that stands for an agent's slot);
//! - [`run`]: the agent itself (`neops-remote-lab agent`).

pub mod pool;
pub mod remote;
pub mod run;
pub mod wire;
