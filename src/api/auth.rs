//! Bearer tokens on the wire (RFC 6750): the middleware that turns
//! `Authorization: Bearer <token>` into a [`Caller`], and the extractor
//! handlers read it with. With auth off the middleware is not installed and
//! every handler sees no caller, so the answers are the open ones.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::auth::{Auth, Caller};

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
        Presented::Token(token) => auth.check(token),
    };
    match caller {
        Some(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => unauthorized(Some("invalid_token"), "Invalid token"),
    }
}

enum Presented<'a> {
    Nothing,
    Malformed,
    Token(&'a str),
}

fn bearer(headers: &HeaderMap) -> Presented<'_> {
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

fn unauthorized(error: Option<&str>, detail: &str) -> Response {
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
