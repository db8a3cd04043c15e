//! Bearer tokens on the wire (RFC 6750): the middleware that turns
//! `Authorization: Bearer <token>` into a [`Caller`], and the extractors
//! handlers read it with. With auth off the middleware is not installed and
//! every handler sees no caller, so the answers are the open ones.
//!
//! A token is checked when its request starts, and watched while the
//! request stays open: when a reload (SIGHUP) takes the token away, a
//! long-poll or any other `GET` still waiting answers 401, a streamed answer
//! (`/events`, `/lab/log`) ends, and an upload still being read is refused
//! (see `lab::acquire`). Requests that change state are never cut short
//! once their body is read.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::auth::{Auth, Caller, Credential};

const REALM: &str = "neops-remote-lab";

/// Lets the request through with its [`Caller`] when it names a token in
/// force; otherwise 401 with a `WWW-Authenticate` challenge.
pub async fn require(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let caller = match bearer(request.headers()) {
        Presented::Nothing => {
            return unauthorized(None, "Authorization: Bearer <token> is required");
        }
        Presented::Malformed => {
            return unauthorized(
                Some("invalid_request"),
                "Authorization must be `Bearer <token>`",
            );
        }
        Presented::Token(token) => auth
            .check(token)
            .map(|caller| (caller, Credential::new(Arc::clone(&auth), token))),
    };
    let Some((caller, credential)) = caller else {
        return unauthorized(Some("invalid_token"), "Invalid token");
    };
    request.extensions_mut().insert(caller);
    request.extensions_mut().insert(credential.clone());
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    let response = if safe {
        tokio::select! {
            response = next.run(request) => response,
            () = credential.revoked() => return revoked(),
        }
    } else {
        next.run(request).await
    };
    ends_when_revoked(response, credential)
}

/// The answer to a request whose token a reload took away.
pub fn revoked() -> Response {
    unauthorized(
        Some("invalid_token"),
        "Token revoked: the server's tokens were reloaded without it",
    )
}

/// A streamed answer (no known length) ends when the token is revoked; a
/// complete one is left as it is, its length header included.
fn ends_when_revoked(response: Response, credential: Credential) -> Response {
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let revoked = Box::pin(async move { credential.revoked().await });
    let body = Body::from_stream(body.into_data_stream().take_until(revoked));
    Response::from_parts(parts, body)
}

pub(super) enum Presented<'a> {
    Nothing,
    Malformed,
    Token(&'a str),
}

pub(super) fn bearer(headers: &HeaderMap) -> Presented<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::Nothing;
    };
    let Some((scheme, token)) = value.to_str().ok().and_then(|text| text.split_once(' ')) else {
        return Presented::Malformed;
    };
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Presented::Malformed;
    }
    Presented::Token(token)
}

pub(super) fn unauthorized(error: Option<&str>, detail: &str) -> Response {
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"{REALM}\", error=\"{error}\""),
        None => format!("Bearer realm=\"{REALM}\""),
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, detail).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&challenge).expect("a plain challenge"),
    );
    response
}

/// The presented token, to watch for its revocation; with auth off it is
/// never revoked.
pub struct Revocation(Option<Credential>);

impl Revocation {
    /// Completes when the request's token is taken away by a reload.
    pub async fn revoked(&self) {
        match &self.0 {
            Some(credential) => credential.revoked().await,
            None => std::future::pending().await,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Revocation {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Revocation(parts.extensions.get::<Credential>().cloned()))
    }
}

/// The token a request came with; `None` with auth off.
pub struct Who(pub Option<Caller>);

impl Who {
    pub fn caller(&self) -> Option<&Caller> {
        self.0.as_ref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Who(parts.extensions.get::<Caller>().cloned()))
    }
}
