//! `GET /redoc`: the OpenAPI document rendered by ReDoc, served from the
//! binary itself; nothing is fetched from a CDN, at build or at run time
//! (lab networks are often isolated).
//!
//! `redoc/redoc.standalone.js` is ReDoc 2.5.4's standalone bundle exactly as
//! the npm package `redoc@2.5.4` ships it (`bundles/redoc.standalone.js`,
//! SHA-256 `dcaf7661…f89500b`), MIT-licensed: `redoc/LICENSE` and
//! `redoc/redoc.standalone.js.LICENSE.txt` beside it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// The page; it loads the script below and `/openapi.json`.
const PAGE: &str = include_str!("redoc/index.html");
const SCRIPT: &[u8] = include_bytes!("redoc/redoc.standalone.js");
const SCRIPT_PATH: &str = "/redoc/redoc.standalone.js";

/// `/redoc` and the script it loads.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/redoc",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(SCRIPT_PATH, get(script))
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        SCRIPT,
    )
}
