//! The dashboard at `GET /`: one HTML page with its stylesheet and script,
//! compiled into the binary (no CDN, no external fonts: it works on an
//! isolated lab network). The script reads `GET /sessions` and follows
//! `GET /events`; neither keeps any session alive.

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("dashboard/index.html");
const STYLE: &str = include_str!("dashboard/dashboard.css");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");

/// What the dashboard may load and who may frame it: only its own files
/// and API, never inside another site's frame (clickjacking; with auth on,
/// the page holds a token).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

/// A static file with its content type; always revalidated, so an upgraded
/// server never runs an old script.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        ],
        body,
    )
}

/// The dashboard page.
pub async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
