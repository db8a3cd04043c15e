//! `GET /metrics` and the middleware that counts every answered request by
//! method, matched route (the route pattern, e.g. `/session/{session_id}`,
//! never the ids in the path) and status.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::HTTP_REQUESTS;

/// Counts the request once its answer is ready. Unknown paths are counted
/// as route `unmatched` and unusual methods as `other`, so scanners cannot
/// blow up the label set.
pub async fn count(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = match *request.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::HEAD
        | Method::OPTIONS => request.method().as_str().to_string(),
        _ => "other".to_string(),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// Prometheus text exposition format (version 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "watch",
    responses((status = 200, content_type = "text/plain", description = "Prometheus metrics")))]
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
