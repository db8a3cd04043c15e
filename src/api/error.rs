//! The one error type of the API, rendered as `{"detail": "…"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::lab::LabError;
use crate::lab::netlab::NetlabError;
use crate::lab::provider;
use crate::lab::upload::UploadError;
use crate::store::StoreError;
use crate::wire::ErrorDto;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    pub fn session_not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "Session not found")
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorDto {
                detail: self.detail,
            }),
        )
            .into_response()
    }
}

impl From<LabError> for ApiError {
    fn from(error: LabError) -> Self {
        ApiError::from(&error)
    }
}

impl From<&LabError> for ApiError {
    fn from(error: &LabError) -> Self {
        let status = match error {
            LabError::Busy => StatusCode::LOCKED,
            LabError::NotRunning => StatusCode::NOT_FOUND,
            LabError::InUse => StatusCode::CONFLICT,
            LabError::Cancelled | LabError::Dirty(_) | LabError::NotSaved(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            LabError::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            LabError::Netlab(NetlabError::TimedOut { .. }) => StatusCode::GATEWAY_TIMEOUT,
            LabError::Netlab(_) => StatusCode::BAD_GATEWAY,
            LabError::Host {
                timed_out: true, ..
            } => StatusCode::GATEWAY_TIMEOUT,
            LabError::Host { .. } => StatusCode::BAD_GATEWAY,
            LabError::Inventory(error) if error.kind() == std::io::ErrorKind::NotFound => {
                StatusCode::NOT_FOUND
            }
            LabError::Io(_) | LabError::Inventory(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut detail = error.to_string();
        if let LabError::Netlab(NetlabError::Failed { tail, .. }) = error
            && let Some(hint) = provider::missing_provider_hint(tail)
        {
            detail = format!("{detail}\n{hint}");
        }
        ApiError::new(status, detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::Form(detail) => ApiError::unprocessable(detail),
            UploadError::Invalid(detail) => ApiError::new(StatusCode::BAD_REQUEST, detail),
            UploadError::TooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Upload is larger than the server's limit of {limit} bytes"),
            ),
            UploadError::Stalled { idle } => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Upload stalled: no data for {} s; send the whole body without pausing",
                    idle.as_secs()
                ),
            ),
            UploadError::TooSlow { limit } => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Upload took longer than {} s, the server's --upload-timeout; \
                     send the body faster, or ask the operator for a longer limit",
                    limit.as_secs()
                ),
            ),
        }
    }
}
