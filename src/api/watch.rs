//! Read-only views for people and dashboards: `GET /sessions` and the
//! event stream `GET /events`. Neither is a sign of life for any session,
//! so a dashboard left open never keeps a dead holder alive.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures_util::{Stream, StreamExt, stream};
use tokio::sync::broadcast;

use super::error::ApiError;
use super::{AppState, QueryParams};
use crate::coordinator::Coordinator;
use crate::domain::events::{Event, HISTORY};
use crate::wire::{ErrorDto, EventDto, EventKindDto, SessionsDto};

/// The line (short ids, status, position, slot, client info, waiting and
/// holding seconds) and every slot's lab. Not a sign of life.
#[utoipa::path(get, path = "/sessions", tag = "watch",
    responses((status = 200, body = SessionsDto, description = "OK")))]
pub async fn sessions(State(state): State<AppState>) -> Json<SessionsDto> {
    Json((&state.coordinator.overview()).into())
}

/// Server-Sent Events: every session and lab event, each with its `id`.
/// A reconnecting reader sends `Last-Event-ID` and gets every event after
/// it that is still kept (the last 1024); `?replay=N` starts a new reader
/// with the last N events. A reader that falls behind gets a `dropped`
/// notice instead of the events it lost; it never slows the server.
#[utoipa::path(get, path = "/events", tag = "watch",
    params(("Last-Event-ID" = Option<u64>, Header, description = "resume after this event"),
        ("replay" = Option<usize>, Query, description = "without Last-Event-ID: start with the last N events (max 1024)")),
    responses((status = 200, content_type = "text/event-stream", description = "one JSON object per message"),
        (status = 422, body = ErrorDto, description = "A malformed Last-Event-ID or replay")))]
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::unprocessable("Last-Event-ID: expected an event id"))?,
        ),
    };
    let replay = match query.get("replay") {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::unprocessable(format!("replay: expected a number of events, got {text:?}"))
        })?,
    };
    let resume = state.coordinator.resume_events(after, replay.min(HISTORY));
    let mut first = Vec::new();
    if resume.missed > 0 {
        first.push(dropped(resume.missed));
    }
    first.extend(resume.backlog.iter().map(message));
    let live = follow(Arc::clone(&state.coordinator), resume.receiver);
    Ok(Sse::new(stream::iter(first).chain(live).map(Ok)).keep_alive(KeepAlive::default()))
}

/// Live events until the server stops; lag becomes a `dropped` notice.
fn follow(
    coordinator: Arc<Coordinator>,
    receiver: broadcast::Receiver<Event>,
) -> impl Stream<Item = sse::Event> {
    stream::unfold(
        (coordinator, receiver),
        |(coordinator, mut receiver)| async move {
            let next = tokio::select! {
                next = receiver.recv() => next,
                () = coordinator.stopping() => return None,
            };
            let message = match next {
                Ok(event) => message(&event),
                Err(broadcast::error::RecvError::Lagged(count)) => dropped(count),
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((message, (coordinator, receiver)))
        },
    )
}

fn message(event: &Event) -> sse::Event {
    sse::Event::default()
        .id(event.id.to_string())
        .json_data(EventDto::from(event))
        .expect("events serialize")
}

fn dropped(count: u64) -> sse::Event {
    sse::Event::default()
        .json_data(EventKindDto::Dropped { count })
        .expect("notices serialize")
}
