//! The routes lab agents use (see [`crate::agent`]): register, poll the
//! desired state of their slots, report, send bring-up output, fetch
//! uploads. Each needs the pool's agent secret as a bearer token; client
//! tokens never pass here, and the agent secret passes nowhere else.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::auth::{Presented, bearer, unauthorized};
use super::error::ApiError;
use crate::agent::pool::{Pool, PoolError};
use crate::agent::slot::Stale;
use crate::agent::wire::{
    DesiredState, LogLines, POLL_SECONDS, Register, Registered, Report, UploadFiles,
};

/// The pool's agent secret (`NEOPS_AGENT_TOKEN` or `--agent-token-file`).
#[derive(Clone)]
pub struct AgentSecret(Arc<str>);

impl AgentSecret {
    /// Errors: a secret shorter than 16 characters.
    pub fn new(secret: &str) -> Result<Self, String> {
        let secret = secret.trim();
        if secret.chars().count() < 16 {
            return Err("the agent secret must be at least 16 characters".into());
        }
        Ok(AgentSecret(secret.into()))
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

#[derive(Clone)]
struct AgentState {
    pool: Arc<Pool>,
    secret: AgentSecret,
}

/// The agents' routes under `/agent/`, each behind the agent secret.
pub fn routes(pool: Arc<Pool>, secret: AgentSecret) -> Router {
    let state = AgentState { pool, secret };
    Router::new()
        .route("/agent/register", post(register))
        .route("/agent/desired", get(desired))
        .route("/agent/report", post(report))
        .route("/agent/log", post(log))
        .route("/agent/upload", get(upload))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_secret,
        ))
        .with_state(state)
}

async fn require_secret(State(state): State<AgentState>, request: Request, next: Next) -> Response {
    match bearer(request.headers()) {
        Presented::Token(token) if state.secret.matches(token) => next.run(request).await,
        presented => {
            let given = !matches!(presented, Presented::Nothing);
            tracing::warn!(path = %request.uri().path(), secret_given = given, "refused an agent request: wrong or missing agent secret");
            unauthorized(Some("invalid_token"), "the pool's agent secret is required")
        }
    }
}

impl IntoResponse for PoolError {
    fn into_response(self) -> Response {
        let status = match self {
            PoolError::UnknownHost(_)
            | PoolError::OtherIncarnation { .. }
            | PoolError::SlotCount { .. }
            | PoolError::TooManySlots(_) => StatusCode::CONFLICT,
            PoolError::BadName | PoolError::BadSlotCount(_) | PoolError::BadSshAddress => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
        };
        ApiError::new(status, self.to_string()).into_response()
    }
}

async fn register(
    State(state): State<AgentState>,
    Json(register): Json<Register>,
) -> Result<Json<Registered>, PoolError> {
    state.pool.register(register).map(Json)
}

/// Who asks: the host and its incarnation.
#[derive(Debug, Deserialize)]
struct Agent {
    name: String,
    incarnation: String,
}

#[derive(Debug, Deserialize)]
struct PollQuery {
    name: String,
    incarnation: String,
    /// The version the agent has; answered at once when newer exists.
    #[serde(default)]
    after: u64,
}

async fn desired(
    State(state): State<AgentState>,
    Query(query): Query<PollQuery>,
) -> Result<Json<DesiredState>, PoolError> {
    let host = state.pool.host(&query.name, &query.incarnation)?;
    // Held open well within the lease, so a waiting agent is never silent.
    let hold = Duration::from_secs(POLL_SECONDS).min(state.pool.liveness.lease / 3);
    let desired = host.desired_after(query.after, hold).await;
    // The poll itself is a sign of life: seen again at its end.
    state.pool.host(&query.name, &query.incarnation)?;
    Ok(Json(desired))
}

#[derive(Debug, Serialize)]
struct Refused {
    detail: String,
    /// The slot's current epoch.
    epoch: u64,
}

async fn report(State(state): State<AgentState>, Json(report): Json<Report>) -> Response {
    let host = match state.pool.host(&report.name, &report.incarnation) {
        Ok(host) => host,
        Err(error) => return error.into_response(),
    };
    let Some(slot) = host.slots.iter().find(|slot| slot.number == report.slot) else {
        return ApiError::new(StatusCode::NOT_FOUND, "no such slot on this host").into_response();
    };
    match slot.report(report.epoch, report.state) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(Stale::Epoch { reported, current }) => {
            tracing::info!(host = %host.name, slot = slot.number, reported, current, "refused a stale report");
            let detail = format!("epoch {reported} is not the slot's assignment ({current})");
            (
                StatusCode::CONFLICT,
                Json(Refused {
                    detail,
                    epoch: current,
                }),
            )
                .into_response()
        }
    }
}

async fn log(State(state): State<AgentState>, Json(lines): Json<LogLines>) -> Response {
    match state.pool.host(&lines.name, &lines.incarnation) {
        Ok(host) => {
            if let Some(slot) = host.slots.iter().find(|slot| slot.number == lines.slot) {
                slot.log_lines(lines.epoch, &lines.lines);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    #[serde(flatten)]
    agent: Agent,
    slot: usize,
    epoch: u64,
}

async fn upload(
    State(state): State<AgentState>,
    Query(query): Query<UploadQuery>,
) -> Result<Json<UploadFiles>, Response> {
    let host = (state.pool)
        .host(&query.agent.name, &query.agent.incarnation)
        .map_err(IntoResponse::into_response)?;
    let upload = (host.slots.iter())
        .find(|slot| slot.number == query.slot)
        .and_then(|slot| slot.upload(query.epoch))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no upload for this slot and epoch: the assignment changed",
            )
            .into_response()
        })?;
    Ok(Json(UploadFiles::of(&upload)))
}
