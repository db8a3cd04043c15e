//! `lab down` and `session end`: what an operator does by hand.
//!
//! The lab routes act on the slot of the session named in `X-Session-ID`,
//! and only while it is ACTIVE. So `lab down` acts as the slot's holder:
//! the session given with `--session` (or `REMOTE_LAB_SESSION_ID`, which
//! `run` sets for its command), else the session active longest, which
//! with one slot is the lab's holder.

use clap::Subcommand;

use super::ServerArgs;
use neops_remote_lab::client::{Error, Result};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Tear a slot's lab down (DELETE /lab). Without --force a lab that is
    /// still held (reference count above 0) is left up (409).
    Down {
        #[command(flatten)]
        server: ServerArgs,
        /// The holder's session id [default: the session active longest].
        #[arg(long, env = "REMOTE_LAB_SESSION_ID")]
        session: Option<String>,
        /// Tear it down even while it is held.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// End a session (DELETE /session/{id}): it leaves the queue; an active
    /// one's lab is torn down and the next session is promoted.
    End {
        #[command(flatten)]
        server: ServerArgs,
        /// The full session id.
        id: String,
    },
}

pub async fn lab(command: LabCommand) -> Result<()> {
    let LabCommand::Down {
        server,
        session,
        force,
    } = command;
    let client = server.client()?;
    let id = match session {
        Some(id) => id,
        None => client
            .active_session()
            .await?
            .ok_or_else(|| Error::Config("no session is active, so no lab is held".into()))?,
    };
    let session = client.attach(&id);
    let short: String = id.chars().take(8).collect();
    if session.destroy(force).await? {
        eprintln!("neops-remote-lab: the lab of session {short}'s slot is torn down");
    } else {
        eprintln!("neops-remote-lab: no lab was running in session {short}'s slot");
    }
    Ok(())
}

pub async fn session(command: SessionCommand) -> Result<()> {
    let SessionCommand::End { server, id } = command;
    server.client()?.end_session(&id).await?;
    eprintln!("neops-remote-lab: session {id} ended");
    Ok(())
}
