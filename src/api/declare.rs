//! `POST /session/{id}/labs`: a session declares a lab it will ask for.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::auth::Revocation;
use super::error::ApiError;
use super::{AppState, Who, upload_form};
use crate::coordinator::declare::{DeclareError, MAX_DECLARED_LABS};
use crate::lab::upload::Upload;
use crate::wire::{DeclaredLabDto, ErrorDto};

/// Declare a lab the session will ask for, before it needs it: the same
/// multipart form as `POST /lab` (`topology`, `extra_files`; `reuse` is
/// accepted and ignored), the same checks and limits. Allowed while the
/// session waits or is active. The upload is stored with the session, and
/// deleted when it ends; declaring the same lab again answers its first
/// index and stores nothing.
#[utoipa::path(post, path = "/session/{session_id}/labs", tag = "sessions", operation_id = "declare_lab",
    params(("session_id" = String, Path)),
    request_body(content = super::dto::AcquireFormDto, content_type = "multipart/form-data"),
    responses((status = 201, body = DeclaredLabDto, description = "Declared (or declared before)"),
        (status = 400, body = ErrorDto, description = "bad file name, extension or topology, or the session declared too many labs"),
        (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"),
        (status = 404, body = ErrorDto, description = "Not found"),
        (status = 408, body = ErrorDto, description = "the upload stalled (no data for 30 s) or took longer than --upload-timeout"),
        (status = 413, body = ErrorDto, description = "Payload too large"),
        (status = 422, body = ErrorDto, description = "A required field is missing or malformed"),
        (status = 503, body = ErrorDto, description = "The declaration could not be stored")))]
pub async fn declare(
    State(state): State<AppState>,
    who: Who,
    revocation: Revocation,
    Path(session_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = super::parse_session_id(&session_id)?;
    state.coordinator.check_owner(&id, who.caller())?;
    // Waiting sessions may upload too: a few bodies at a time, so that
    // many at once cost a few uploads' memory.
    let _permit = tokio::select! {
        permit = state.declare_permits.acquire() => permit.map_err(|_| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The server is stopping")
        })?,
        () = revocation.revoked() => return Ok(super::auth::revoked()),
    };
    let form = tokio::select! {
        form = upload_form::read_within(request, state.max_upload_bytes, state.upload_timeout) => form?,
        () = revocation.revoked() => return Ok(super::auth::revoked()),
    };
    let upload = Upload::check(form).await?;
    let (identity, index) = state
        .coordinator
        .declare(&id, who.caller(), upload)
        .await
        .map_err(declare_error)?;
    tracing::info!(session = %id, lab = identity.short(), index, "lab declared");
    let body = DeclaredLabDto {
        identity: identity.to_string(),
        index,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn declare_error(error: DeclareError) -> ApiError {
    match error {
        DeclareError::Gate(gate) => gate.into(),
        DeclareError::TooMany => ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("A session declares at most {MAX_DECLARED_LABS} labs"),
        ),
        DeclareError::Write(error) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The declared lab could not be stored ({error}); nothing was kept"),
        ),
        DeclareError::NotSaved(error) => error.into(),
    }
}
