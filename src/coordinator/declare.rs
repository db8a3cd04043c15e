//! Declared labs: a session says which labs it will ask for, in order,
//! before it needs them (`POST /session/{id}/labs`). Each declaration is
//! stored (see [`crate::lab::declared::DeclaredLabs`]) before it is answered, and deleted when its
//! session ends.

use std::sync::Arc;

use super::{Coordinator, GateError};
use crate::auth::Caller;
use crate::lab::upload::{Identity, Upload};
use crate::session_id::SessionId;
use crate::store::StoreError;

/// Most labs one session may declare: a suite uses a handful of lab
/// folders, and each declaration is stored on the server's disk.
pub const MAX_DECLARED_LABS: usize = 32;

/// Why a declaration was refused; nothing was stored.
#[derive(Debug)]
pub enum DeclareError {
    /// Unknown session, another token's, or it has ended.
    Gate(GateError),
    /// The session declared [`MAX_DECLARED_LABS`] labs already.
    TooMany,
    /// The upload could not be written to disk.
    Write(std::io::Error),
    /// The state store cannot save changes now.
    NotSaved(StoreError),
}

impl From<GateError> for DeclareError {
    fn from(error: GateError) -> Self {
        DeclareError::Gate(error)
    }
}

impl Coordinator {
    /// Stores `upload` as the session's next declared lab; its identity
    /// and its index (from 0) in the session's list. A lab the session
    /// declared before is not stored again: the answer is its first index.
    pub async fn declare(
        &self,
        id: &SessionId,
        caller: Option<&Caller>,
        upload: Upload,
    ) -> Result<(Identity, usize), DeclareError> {
        self.writable().map_err(DeclareError::NotSaved)?;
        self.check_owner(id, caller)?;
        let turn = {
            let state = self.shared.lock();
            let record = state.line.record(id).ok_or(GateError::UnknownSession)?;
            Arc::clone(&record.declaring)
        };
        let _turn = turn.lock_owned().await;
        let index = {
            let state = self.shared.lock();
            let record = state.line.record(id).ok_or(GateError::UnknownSession)?;
            if let Some(index) = record.declared.iter().position(|d| *d == upload.identity) {
                return Ok((upload.identity, index));
            }
            if record.declared.len() >= MAX_DECLARED_LABS {
                return Err(DeclareError::TooMany);
            }
            record.declared.len()
        };
        let labs = self.shared.lock().declared.clone();
        labs.save(id, index, &upload)
            .await
            .map_err(DeclareError::Write)?;
        let recorded = {
            let mut state = self.shared.lock();
            let recorded = (state.line.record_mut(id))
                .map(|record| record.declared.push(upload.identity.clone()))
                .is_some();
            if recorded && index == 0 {
                // Promoted at once into an idle host, before it could say
                // which lab it wants: a slot that keeps that lab is better.
                let wanted = upload.identity.to_string();
                state.move_to_warm_slot(*id, &wanted, &self.shared.shutdown);
            }
            recorded
        };
        // A move may have promoted the next in line: its deadline is new.
        self.shared.timer.notify_one();
        if !recorded {
            // It ended while the upload was written: nothing may stay.
            labs.forget(id).await;
            return Err(GateError::UnknownSession.into());
        }
        Ok((upload.identity, index))
    }

    /// The labs the session declared, in order (none for an unknown one).
    pub fn declared_labs(&self, id: &SessionId) -> Vec<Identity> {
        let state = self.shared.lock();
        state
            .line
            .record(id)
            .map(|record| record.declared.clone())
            .unwrap_or_default()
    }
}
