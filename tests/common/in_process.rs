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

/// The multipart boundary of [`form`].
pub const BOUNDARY: &str = "neops-test-boundary";

/// A multipart body with `topology` as its `topology` file (`t.yml`), as
/// `POST /lab` and `POST /session/{id}/labs` take it.
pub fn form(topology: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"topology\"; filename=\"t.yml\"\r\n\
         Content-Type: application/x-yaml\r\n\r\n{topology}\r\n--{BOUNDARY}--\r\n"
    )
    .into_bytes()
}
