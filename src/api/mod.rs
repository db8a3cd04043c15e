//! The HTTP API: routes, the session gate, and the OpenAPI document.

pub mod agent;
mod auth;
mod dashboard;
mod declare;
mod dto;
mod error;
mod health;
mod http_metrics;
mod lab;
mod live_dto;
mod redoc;
mod session;
mod session_body;
mod upload_form;
mod watch;

pub use upload_form::IDLE_LIMIT as UPLOAD_IDLE_LIMIT;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use auth::Who;
pub use error::ApiError;

use crate::auth::{Auth, Caller};
use crate::coordinator::{Coordinator, GateError, Hold};
use crate::session_id::SessionId;
use crate::wire;

/// Declared-lab uploads received at once; more wait, their bodies unread.
pub const DECLARE_BODIES_AT_ONCE: usize = 4;

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub coordinator: Arc<Coordinator>,
    pub started: Instant,
    pub max_upload_bytes: u64,
    /// Longest time one upload's body may take to arrive.
    pub upload_timeout: std::time::Duration,
    /// Declared uploads received at once ([`DECLARE_BODIES_AT_ONCE`]).
    pub declare_permits: Arc<tokio::sync::Semaphore>,
    /// Renders `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// The tokens in force; `None`: auth off.
    pub auth: Option<Arc<Auth>>,
}

/// An event as `GET /events` sends it: the JSON the store keeps in its
/// history.
pub fn event_json(event: &crate::domain::events::Event) -> String {
    serde_json::to_string(&crate::wire::EventDto::from(event)).expect("events serialize")
}

/// The API's routes, with `/docs` (Swagger UI), `/redoc` and
/// `/openapi.json`, the dashboard at `/`; every request is counted for
/// `/metrics`. With auth on, every route that acts or shows the host's data
/// needs a token; `/healthz` and the pages that hold no data (the
/// dashboard's shell, the API documentation) stay open, since a browser
/// cannot add the header to a page it loads.
pub fn router(state: AppState) -> Router {
    let mut data = Router::new()
        .route("/sessions", get(watch::sessions))
        .route("/events", get(watch::events))
        .route("/metrics", get(http_metrics::render))
        .route("/session", post(session::create))
        .route("/session/heartbeat", post(session::heartbeat))
        .route(
            "/session/{session_id}",
            get(session::status).delete(session::end),
        )
        .route(
            "/session/{session_id}/labs",
            post(declare::declare).layer(DefaultBodyLimit::disable()),
        )
        .route("/active-session", get(session::active))
        .route(
            "/lab",
            post(lab::acquire)
                // The upload reader enforces its own limit and answers 413.
                .layer(DefaultBodyLimit::disable())
                .get(lab::status)
                .delete(lab::destroy),
        )
        .route("/lab/release", post(lab::release))
        .route("/lab/devices", get(lab::devices))
        .route("/lab/log", get(lab::log))
        .route("/lab/inventory", get(lab::inventory))
        .route("/lab/ssh-config", get(lab::ssh_config))
        .route("/debug/health", get(health::debug_health))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            name_the_lab_host,
        ));
    if let Some(tokens) = &state.auth {
        data = data.route_layer(middleware::from_fn_with_state(
            Arc::clone(tokens),
            auth::require,
        ));
    }
    let mut doc = ApiDoc::openapi();
    if state.auth.is_some() {
        require_bearer(&mut doc);
    }
    let api = data
        .route("/", get(dashboard::page))
        .route("/dashboard.css", get(dashboard::style))
        .route("/dashboard.js", get(dashboard::script))
        .route("/healthz", get(health::healthz))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .with_state(state);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .merge(redoc::router())
        .layer(middleware::map_response(not_framed))
        .layer(middleware::from_fn(http_metrics::count))
}

/// No page of ours may be shown inside another site's frame (clickjacking):
/// a response without a policy of its own gets `frame-ancestors 'none'`
/// (the API documentation pages run inline scripts, so only that).
async fn not_framed(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .entry(axum::http::header::CONTENT_SECURITY_POLICY)
        .or_insert(axum::http::HeaderValue::from_static(
            "frame-ancestors 'none'",
        ));
    response
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "neops-remote-lab",
        description = "Shares one Netlab lab host between test suites: a FIFO queue of \
            sessions, one lab at a time, identical topologies shared and reference-counted."
    ),
    paths(
        session::create,
        session::status,
        session::active,
        session::end,
        session::heartbeat,
        declare::declare,
        lab::acquire,
        lab::status,
        lab::release,
        lab::destroy,
        lab::devices,
        lab::log,
        lab::inventory,
        lab::ssh_config,
        watch::sessions,
        watch::events,
        http_metrics::render,
        health::healthz,
        health::debug_health,
    ),
    components(schemas(
        wire::SessionState,
        wire::CreateSessionResponseDto,
        wire::SessionStatusResponseDto,
        wire::DeclaredLabDto,
        wire::ActiveSessionResponseDto,
        wire::DeviceInfoDto,
        wire::AcquireResponseDto,
        wire::LabStatusDto,
        wire::LabInventoryDto,
        wire::HealthDto,
        wire::ErrorDto,
        dto::AcquireFormDto,
        wire::ClientInfoDto,
        wire::CreateSessionRequestDto,
        wire::SessionsDto,
        wire::QueuedSessionDto,
        wire::SlotDto,
        wire::LabSummaryDto,
        wire::DeviceSummaryDto,
    )),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (used only with auth on).
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A token from the server's tokens file; needed only when the server \
                 runs with --tokens-file or NEOPS_REMOTE_LAB_TOKENS.",
            ))
            .build();
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
        }
    }
}

/// With auth on, the document says every operation needs the token, and
/// answers 401 without a valid one, except `/healthz`.
fn require_bearer(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    let unauthorized = ResponseBuilder::new()
        .description(
            "No valid bearer token: none, not `Bearer <token>`, unknown, or revoked by a \
             reload while the request was open",
        )
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorDto")))
                .build(),
        )
        .build();
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            if path == "/healthz" {
                operation.security = Some(Vec::new());
            } else {
                operation
                    .responses
                    .responses
                    .insert("401".to_string(), unauthorized.clone().into());
            }
        }
    }
}

/// The raw `X-Session-ID` header; missing → 422, as the original answered.
pub struct SessionHeader(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get("x-session-id")
            .and_then(|value| value.to_str().ok())
            .map(|value| SessionHeader(value.to_string()))
            .ok_or_else(|| ApiError::unprocessable("X-Session-ID header is required"))
    }
}

/// The header that names the lab host whose slot the session holds (a
/// lab agent's; absent for this host's own slots).
pub const LAB_HOST_HEADER: &str = "x-lab-host";

/// Adds [`LAB_HOST_HEADER`] to the answers of a session that holds a lab
/// agent's slot.
async fn name_the_lab_host(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let session = (request.headers().get("x-session-id"))
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<SessionId>().ok());
    let mut response = next.run(request).await;
    let host = session.and_then(|id| state.coordinator.host_of(&id));
    if let Some(value) = host.and_then(|host| axum::http::HeaderValue::from_str(&host).ok()) {
        response.headers_mut().insert(LAB_HOST_HEADER, value);
    }
    response
}

/// A session id that is not a UUID names no session.
fn parse_session_id(text: &str) -> Result<SessionId, ApiError> {
    text.parse().map_err(|_| ApiError::session_not_found())
}

/// The lab routes' access check: the session exists (404), belongs to the
/// caller's token (403) and holds a lab slot (423). It counts as busy, hence
/// alive, until the [`Hold`] drops.
fn gate<'a>(
    state: &'a AppState,
    session_id: &str,
    caller: Option<&Caller>,
) -> Result<(SessionId, Hold<'a>), ApiError> {
    let id = parse_session_id(session_id)?;
    state.coordinator.check_owner(&id, caller)?;
    let hold = state.coordinator.hold(&id)?;
    Ok((id, hold))
}

impl From<GateError> for ApiError {
    fn from(error: GateError) -> Self {
        match error {
            GateError::UnknownSession => ApiError::session_not_found(),
            GateError::NotOwner => {
                ApiError::new(StatusCode::FORBIDDEN, "Session belongs to another token")
            }
            GateError::NotActive => ApiError::new(StatusCode::LOCKED, "Session is not active"),
            GateError::EndNotSaved => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session's end could not be saved yet: the server cannot write its state \
                 (its disk may be full); ask again once there is room",
            ),
            // The original's detail first, for clients that match on it.
            GateError::Ended(reason) => ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "Session not found: {} ({})",
                    reason.explain(),
                    reason.as_str()
                ),
            ),
        }
    }
}

/// The `Idempotency-Key` header, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyParam {
    /// Repeat a request safely: a repeat with the same key returns the
    /// first request's result (1 to 255 visible ASCII characters; a fresh
    /// random one per logical request, e.g. a UUID).
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

/// The optional `Idempotency-Key` header (IETF
/// draft-ietf-httpapi-idempotency-key-header); 400 when malformed.
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(text)
            if (1..=255).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(text.to_string()))
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// Query parameters; a malformed query string is a 422 like any bad field.
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(params)| QueryParams(params))
            .map_err(|rejection| ApiError::unprocessable(rejection.body_text()))
    }
}
