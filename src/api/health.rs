//! Liveness and a small health report.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::AppState;
use crate::domain::Phase;
use crate::wire::HealthDto;

/// Liveness probe: 204, empty body.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 204, description = "No Content")))]
pub async fn healthz() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Uptime, queue size, and the slots left dirty by a failed teardown.
#[utoipa::path(get, path = "/debug/health", tag = "health", responses((status = 200, body = HealthDto, description = "OK")))]
pub async fn debug_health(State(state): State<AppState>) -> Json<HealthDto> {
    let timestamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    let sessions = state.coordinator.count();
    Json(HealthDto {
        status: "ok".to_string(),
        timestamp,
        uptime: state.started.elapsed().as_secs_f64(),
        sessions,
        queue_length: sessions,
        dirty_slots: state
            .coordinator
            .phases()
            .iter()
            .enumerate()
            .filter(|(_, phase)| **phase == Phase::Dirty)
            .map(|(index, _)| index + 1)
            .collect(),
        unsaved: state.coordinator.unsaved().map(|error| error.to_string()),
    })
}
