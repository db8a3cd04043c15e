//! The client's one error type.

use std::path::PathBuf;

use reqwest::StatusCode;

/// What went wrong talking to the server or reading a lab's files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status; `detail` is its
    /// `{"detail": …}` message (or the body's text when it sent none).
    #[error("{what}: HTTP {status}: {detail}")]
    Status {
        /// The request, e.g. `POST /lab`.
        what: String,
        status: StatusCode,
        detail: String,
    },
    /// The request did not reach the server, or its answer did not arrive
    /// (connection refused, timeout, an answer that is not the expected JSON).
    #[error("{what}: {}", causes(source))]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// A lab file could not be read, or lies outside the upload's root.
    #[error("{path}: {message}")]
    LabFile { path: PathBuf, message: String },
    /// The base URL or the token cannot be used.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `detail` of an error answer.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Status { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its causes, e.g. `error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)`:
/// reqwest's own message alone does not say what failed.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
