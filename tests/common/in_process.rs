//! Requests to a server wired in-process ([`InProcess`]), without sockets.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use neops_remote_lab::testing::InProcess;
use serde_json::Value;
use tower::ServiceExt;

/// Sends `request` through the router; the status and the body as JSON
/// (`null` when the body is not JSON).
pub async fn send(app: &InProcess, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
