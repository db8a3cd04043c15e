//! Session routes: join the queue, watch your place, stay alive, leave.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

use super::error::ApiError;
use super::{AppState, QueryParams, SessionHeader, Who};
use super::{dto, session_body};
use crate::coordinator::{CreateError, NewSession};
use crate::domain::events::EndReason;
use crate::wire::{
    ActiveSessionResponseDto, CreateSessionRequestDto, CreateSessionResponseDto, ErrorDto,
    SessionStatusResponseDto,
};

/// Longest long-poll a client may ask for, in seconds.
const MAX_WAIT_SECS: f64 = 60.0;

/// Join the queue. An empty queue makes the new session active at once.
/// The optional JSON body says who is asking (`client`, shown in
/// `GET /sessions`, the events and the dashboard) and how often the client
/// will show a sign of life (`heartbeat_seconds`, its lease); without a
/// body (or with JSON `null`) this is exactly the original's route. A
/// repeat with the same `Idempotency-Key` returns the session the first
/// request created, as long as it lives; the same key with another body is
/// refused (422).
#[utoipa::path(post, path = "/session", tag = "sessions",
    params(super::IdempotencyKeyParam),
    request_body(content = Option<CreateSessionRequestDto>, content_type = "application/json"),
    responses((status = 201, body = CreateSessionResponseDto, description = "Created"),
        (status = 400, body = ErrorDto, description = "Malformed Idempotency-Key"),
        (status = 408, body = ErrorDto, description = "The body did not arrive within 30 s"),
        (status = 413, body = ErrorDto, description = "Body too large"),
        (status = 422, body = ErrorDto, description = "A body that is not a JSON object or null, a malformed field, or an Idempotency-Key already used with another body"),
        (status = 503, body = ErrorDto, description = "The session could not be stored (e.g. the disk is full); it was not created")))]
pub async fn create(
    State(state): State<AppState>,
    Who(caller): Who,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<CreateSessionResponseDto>), ApiError> {
    let key = super::idempotency_key(&headers)?;
    let body = session_body::read(body).await?;
    let owner = caller.as_ref().map(|caller| caller.name().to_string());
    let new = NewSession {
        key,
        client: body.client,
        owner: caller,
        lease: body.lease,
    };
    let (id, standing) = state.coordinator.create(new).await.map_err(|error| match error {
        CreateError::KeyReused => ApiError::unprocessable(
            "Idempotency-Key was already used for another request (another body); send a fresh key",
        ),
        CreateError::NotSaved(error) => error.into(),
    })?;
    tracing::info!(session = %id, position = standing.position, owner, "session created");
    let body = CreateSessionResponseDto {
        session_id: id.full(),
        position: standing.position,
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// Where the session stands. Counts as a sign of life. With `wait=<seconds>`
/// (at most 60) the answer comes as soon as status or position changes, or
/// when the wait ends; an active session is answered at once.
#[utoipa::path(get, path = "/session/{session_id}", tag = "sessions", operation_id = "session_status",
    params(("session_id" = String, Path), ("wait" = Option<f64>, Query, minimum = 0, description = "long-poll up to this many seconds; more than 60 counts as 60")),
    responses((status = 200, body = SessionStatusResponseDto, description = "OK"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 503, body = ErrorDto, description = "The session's last change (e.g. its promotion) could not be stored yet: ask again")))]
pub async fn status(
    State(state): State<AppState>,
    who: Who,
    Path(session_id): Path<String>,
    query: QueryParams,
) -> Result<Json<SessionStatusResponseDto>, ApiError> {
    let id = super::parse_session_id(&session_id)?;
    let wait = query.get("wait").map(parse_wait).transpose()?;
    state.coordinator.check_owner(&id, who.caller())?;
    let standing = match wait {
        None => state.coordinator.status(&id).await?,
        Some(limit) => state.coordinator.wait(&id, limit).await?,
    };
    let standing = standing.ok_or_else(ApiError::session_not_found)?;
    let declared = state.coordinator.declared_labs(&id);
    Ok(Json(dto::session_status(standing, &declared)))
}

fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Ok(Duration::from_secs_f64(seconds.min(MAX_WAIT_SECS)))
        }
        _ => Err(ApiError::unprocessable(format!(
            "wait: expected a number of seconds, got {text:?}"
        ))),
    }
}

/// The session that has been active longest (while nobody is active: the
/// head of the queue). Looking does not keep it alive. With auth on, only
/// the session's own token gets its full id; others get its first 8 hex
/// digits, as `GET /sessions` shows it.
#[utoipa::path(get, path = "/active-session", tag = "sessions",
    responses((status = 200, body = ActiveSessionResponseDto, description = "OK"), (status = 404, body = ErrorDto, description = "Not found")))]
pub async fn active(
    State(state): State<AppState>,
    who: Who,
) -> Result<Json<ActiveSessionResponseDto>, ApiError> {
    let (id, standing, owner) = state
        .coordinator
        .longest_active()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "No active session"))?;
    let session_id = if owner.as_ref() == who.caller() {
        id.full()
    } else {
        id.to_string()
    };
    Ok(Json(ActiveSessionResponseDto {
        session_id,
        status: standing.status.into(),
        position: standing.position,
    }))
}

/// Leave the queue. An active session's lab is torn down first, then the
/// next session is promoted.
#[utoipa::path(delete, path = "/session/{session_id}", tag = "sessions",
    params(("session_id" = String, Path)),
    responses((status = 204, description = "No Content"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"),
        (status = 503, body = ErrorDto, description = "The session ended, but that could not be stored")))]
pub async fn end(
    State(state): State<AppState>,
    who: Who,
    Path(session_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = super::parse_session_id(&session_id)?;
    state.coordinator.check_owner(&id, who.caller())?;
    if state.coordinator.end(&id, EndReason::Closed).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::session_not_found())
    }
}

/// Keep a session (waiting or active) alive.
#[utoipa::path(post, path = "/session/heartbeat", tag = "sessions",
    params(("X-Session-ID" = String, Header)),
    responses((status = 204, description = "No Content"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed")))]
pub async fn heartbeat(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
) -> Result<StatusCode, ApiError> {
    let id = super::parse_session_id(&session_id)?;
    state.coordinator.check_owner(&id, who.caller())?;
    if state.coordinator.heartbeat(&id) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::session_not_found())
    }
}
