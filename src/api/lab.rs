//! Lab routes. Each one first passes the gate: a known session in
//! `X-Session-ID` that holds a lab slot; it acts on that slot's lab. The
//! coordinator runs lab work in tracked tasks, so a client hanging up never
//! leaves a bring-up or teardown half done.

use std::convert::Infallible;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::auth::Revocation;
use super::dto::{self, AcquireFormDto};
use super::error::ApiError;
use super::{AppState, QueryParams, SessionHeader, Who, gate, idempotency_key, upload_form};
use crate::lab::LabError;
use crate::lab::ssh_config::{self, Jump};
use crate::lab::upload::{Upload, parse_bool};
use crate::wire::{AcquireResponseDto, DeviceInfoDto, ErrorDto, LabInventoryDto, LabStatusDto};

/// Upload a topology (and the files it refers to) and get the lab's devices.
#[utoipa::path(post, path = "/lab", tag = "lab",
    params(("X-Session-ID" = String, Header), super::IdempotencyKeyParam),
    request_body(content = AcquireFormDto, content_type = "multipart/form-data"),
    responses((status = 200, body = AcquireResponseDto, description = "OK"),
        (status = 400, body = ErrorDto, description = "bad file name, extension or topology"),
        (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 413, body = ErrorDto, description = "Payload too large"),
        (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 423, body = ErrorDto, description = "session not active, or lab busy"),
        (status = 408, body = ErrorDto, description = "the upload stalled (no data for 30 s) or took longer than --upload-timeout"),
        (status = 502, body = ErrorDto, description = "netlab failed"),
        (status = 503, body = ErrorDto, description = "the server is stopping, the slot's previous lab could not be torn down, or the lab could not be stored"),
        (status = 504, body = ErrorDto, description = "netlab hung")))]
pub async fn acquire(
    State(state): State<AppState>,
    who: Who,
    revocation: Revocation,
    SessionHeader(session_id): SessionHeader,
    request: Request,
) -> Result<Response, ApiError> {
    let (id, hold) = gate(&state, &session_id, who.caller())?;
    let key = idempotency_key(request.headers())?;
    // Stop waiting or reading at once if the session ends, or its token is
    // revoked, while its upload waits for its turn or arrives.
    let _turn = tokio::select! {
        turn = hold.upload_turn() => turn,
        () = hold.ended() => return Err(ApiError::session_not_found()),
        () = revocation.revoked() => return Ok(super::auth::revoked()),
    };
    let form = tokio::select! {
        form = upload_form::read_within(request, state.max_upload_bytes, state.upload_timeout) => form?,
        () = hold.ended() => return Err(ApiError::session_not_found()),
        () = revocation.revoked() => return Ok(super::auth::revoked()),
    };
    let upload = Upload::check(form).await?;
    tracing::info!(session = %id, topology = %upload.topology_name, reuse = upload.reuse, "lab requested");
    let acquired = state
        .coordinator
        .acquire(&hold, upload, key.as_deref())
        .await
        .map_err(|error| lab_error(&state, &error))?;
    Ok(Json(AcquireResponseDto {
        reused: acquired.reused,
        devices: dto::devices(&acquired.devices),
    })
    .into_response())
}

/// What runs now, and netlab's own status report.
#[utoipa::path(get, path = "/lab", tag = "lab", operation_id = "lab_status",
    params(("X-Session-ID" = String, Header)),
    responses((status = 200, body = LabStatusDto, description = "OK"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 423, body = ErrorDto, description = "Locked: the session is not active, or the lab is busy")))]
pub async fn status(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
) -> Result<Json<LabStatusDto>, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    let netlab_status = state.coordinator.tool_status(&hold).await;
    Ok(Json(dto::lab_status(
        &state.coordinator.lab_view(&hold),
        netlab_status,
    )))
}

/// Drop one reference to the lab. At zero it keeps running, idle, for reuse.
#[utoipa::path(post, path = "/lab/release", tag = "lab",
    params(("X-Session-ID" = String, Header)),
    responses((status = 204, description = "No Content"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 423, body = ErrorDto, description = "Locked: the session is not active, or the lab is busy"),
        (status = 503, body = ErrorDto, description = "The release could not be stored")))]
pub async fn release(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
) -> Result<StatusCode, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    state
        .coordinator
        .release(&hold)
        .await
        .map_err(|error| lab_error(&state, &error))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Tear the lab down (202), or nothing to do (204). `force=false` refuses
/// while the lab is held (409).
#[utoipa::path(delete, path = "/lab", tag = "lab",
    params(("X-Session-ID" = String, Header), ("force" = Option<bool>, Query, description = "default true")),
    responses((status = 202, description = "Accepted: the lab was torn down"), (status = 204, description = "No Content"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 409, body = ErrorDto, description = "Conflict"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 423, body = ErrorDto, description = "Locked: the session is not active, or the lab is busy"),
        (status = 502, body = ErrorDto, description = "netlab failed to tear the lab down (the slot stays dirty)"),
        (status = 503, body = ErrorDto, description = "The server is stopping, a dirty slot's teardown failed again, or the change could not be stored"),
        (status = 504, body = ErrorDto, description = "netlab hung")))]
pub async fn destroy(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
    query: QueryParams,
) -> Result<StatusCode, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    let force = match query.get("force") {
        None => true,
        Some(text) => parse_bool(text).ok_or_else(|| {
            ApiError::unprocessable(format!("force: expected a boolean, got {text:?}"))
        })?,
    };
    let torn_down = state
        .coordinator
        .destroy(&hold, force)
        .await
        .map_err(|error| lab_error(&state, &error))?;
    Ok(if torn_down {
        StatusCode::ACCEPTED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// The running lab's devices.
#[utoipa::path(get, path = "/lab/devices", tag = "lab",
    params(("X-Session-ID" = String, Header)),
    responses((status = 200, body = Vec<DeviceInfoDto>, description = "OK"), (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 423, body = ErrorDto, description = "Locked: the session is not active, or the lab is busy")))]
pub async fn devices(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
) -> Result<Json<Vec<DeviceInfoDto>>, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    let view = state.coordinator.lab_view(&hold);
    if !view.running() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "No lab running"));
    }
    Ok(Json(dto::devices(&view.devices)))
}

/// An OpenSSH client configuration for the running lab: one `Host` per
/// device netlab reaches over SSH, each with `ProxyJump` through its lab
/// host (a lab agent's address, or this server's host as the request named
/// it), as netlab's own `ssh_config` report writes it.
#[utoipa::path(get, path = "/lab/ssh-config", tag = "lab",
    params(("X-Session-ID" = String, Header)),
    responses((status = 200, body = String, content_type = "text/plain", description = "ssh_config(5) text"),
        (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"),
        (status = 404, body = ErrorDto, description = "Session not found, or no lab running"),
        (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"),
        (status = 423, body = ErrorDto, description = "Locked: the session is not active")))]
pub async fn ssh_config(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    let view = state.coordinator.lab_view(&hold);
    let Some(topology) = view.topology.as_deref() else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "No lab running"));
    };
    let jump = state.coordinator.ssh_jump(&hold).unwrap_or_else(|| {
        let host = (headers.get(header::HOST))
            .and_then(|value| value.to_str().ok())
            .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
            // An IPv6 literal without its brackets, as ssh_config takes it.
            .map(|host| {
                host.host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string()
            })
            .unwrap_or_else(|| "localhost".to_string());
        Jump {
            alias: host.clone(),
            address: host,
        }
    });
    let title = format!(
        "neops-remote-lab: the lab {topology} on lab host {}",
        jump.alias
    );
    let text = ssh_config::render(&title, &jump, &view.devices);
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// netlab's own Ansible inventory of the running lab: `hosts.yml` with
/// netlab's groups (the topology's own, each device type's, `all`), and
/// the `group_vars/` and `host_vars/` files beside it, as `netlab up` wrote
/// them. A playbook written for netlab's inventory runs against it as is.
#[utoipa::path(get, path = "/lab/inventory", tag = "lab",
    params(("X-Session-ID" = String, Header)),
    responses((status = 200, body = LabInventoryDto, description = "OK"),
        (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"),
        (status = 404, body = ErrorDto, description = "Session not found, no lab running, or netlab wrote no inventory"),
        (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"),
        (status = 423, body = ErrorDto, description = "Locked: the session is not active")))]
pub async fn inventory(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
) -> Result<Json<LabInventoryDto>, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    let files = state
        .coordinator
        .inventory(&hold)
        .await
        .map_err(|error| lab_error(&state, &error))?;
    Ok(Json(LabInventoryDto { files }))
}

/// netlab's output of the caller's slot's current (or last) bring-up, as
/// plain text, line by line from its first line; the answer ends when the
/// bring-up ends (at once for one that has ended), or when the session does.
/// Counts as a sign of life when it starts, not while it streams.
#[utoipa::path(get, path = "/lab/log", tag = "lab",
    params(("X-Session-ID" = String, Header)),
    responses((status = 200, content_type = "text/plain", description = "netlab output lines"),
        (status = 403, body = ErrorDto, description = "The session belongs to another token (auth on)"), (status = 404, body = ErrorDto, description = "Not found"), (status = 422, body = ErrorDto, description = "A required header or field is missing or malformed"), (status = 423, body = ErrorDto, description = "Locked: the session is not active, or the lab is busy")))]
pub async fn log(
    State(state): State<AppState>,
    who: Who,
    SessionHeader(session_id): SessionHeader,
) -> Result<Response, ApiError> {
    let (_, hold) = gate(&state, &session_id, who.caller())?;
    let reader = state.coordinator.lab_log(&hold);
    let lines = stream::unfold(reader, |mut reader| async move {
        let batch = reader.next_lines().await?;
        let text: String = batch.iter().map(|line| format!("{line}\n")).collect();
        Some((Ok::<_, Infallible>(text), reader))
    });
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    Ok((headers, Body::from_stream(lines)).into_response())
}

/// A cancelled lab request: the server is stopping (503), or the session
/// ended while its request ran (404, as for any request of an ended session).
fn lab_error(state: &AppState, error: &LabError) -> ApiError {
    match error {
        LabError::Cancelled if state.coordinator.is_stopping() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down",
        ),
        LabError::Cancelled => ApiError::session_not_found(),
        other => other.into(),
    }
}
