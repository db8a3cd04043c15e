//! `GET /metrics` and the middleware that counts every answered request by
//! method, matched route (the route pattern, e.g. `/session/{session_id}`,
//! never the ids in the path) and status.

use std::cell::RefCell;
use std::collections::HashMap;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Counter;

use super::AppState;
use crate::metrics::HTTP_REQUESTS;

/// Counts the request once its answer is ready. Unknown paths are counted
/// as route `unmatched` and unusual methods as `other`, so scanners cannot
/// blow up the label set.
pub async fn count(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(request).await;
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    count_one(route, method, response.status().as_u16());
    response
}

thread_local! {
    /// Counter handles by route, then (method, status): a status poll at
    /// 100,000 requests a second finds its handle without allocating and
    /// without the registry's shared lookup.
    static COUNTERS: RefCell<HashMap<Box<str>, CountersOfRoute>> = RefCell::default();
}

/// One route's counters by method and status.
type CountersOfRoute = HashMap<(&'static str, u16), Counter>;

fn count_one(route: &str, method: &'static str, status: u16) {
    COUNTERS.with_borrow_mut(|counters| {
        if !counters.contains_key(route) {
            counters.insert(route.into(), HashMap::new());
        }
        let by_route = counters.get_mut(route).expect("inserted above");
        by_route
            .entry((method, status))
            .or_insert_with(|| {
                metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route.to_string(), "status" => status.to_string())
            })
            .increment(1);
    });
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
        crate::metrics::render(&state.metrics),
    )
}
