//! An async client for a neops-remote-lab server, the Rust counterpart of
//! the Python `RemoteLabClient`.
//!
//! ```no_run
//! # async fn demo() -> neops_remote_lab::client::Result<()> {
//! use neops_remote_lab::client::{Client, LabFiles};
//!
//! let client = Client::builder("http://lab-host:8000").build()?;
//! let session = client.open_session(None).await?; // joins the queue, heartbeats start
//! session.wait_until_active(|status| eprintln!("position {}", status.position)).await?;
//! let lab = LabFiles::collect("labs/topology.yml", &[], None)?;
//! let devices = session.acquire(&lab, false, None).await?.devices;
//! // … run tests against `devices` …
//! session.release().await?;
//! session.close().await?; // ends the session: its lab is torn down
//! # Ok(()) }
//! ```
//!
//! Every request carries `Authorization: Bearer <token>` when a token is
//! set ([`ClientBuilder::token`], else the environment variable
//! `REMOTE_LAB_TOKEN`). Error answers become [`Error::Status`] with the
//! HTTP status and the server's `detail`. Requests that are safe to repeat
//! are tried again for up to a minute when the server cannot be reached or
//! answers 503 (a restarting server keeps its queue); `POST`s only with an
//! `Idempotency-Key`.

pub mod client_info;
mod error;
mod lab_files;
pub mod retry;
mod session;

pub use error::{Error, Result};
pub use lab_files::LabFiles;
pub use session::{LogLines, Session};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::Retryable;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::wire::{ClientInfoDto, CreateSessionRequestDto, CreateSessionResponseDto, SessionsDto};

/// The environment variable a token is read from.
pub const TOKEN_ENV: &str = "REMOTE_LAB_TOKEN";

/// Time between heartbeats unless set otherwise: a dead client's lab is
/// handed on 15 s after its last beat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// How long a connection may take to be set up: a server that is down or
/// unreachable (no answer at all) is reported, and retried, within this,
/// whatever the request's own limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<String>,
    request_timeout: Duration,
    heartbeat_interval: Option<Duration>,
    on_retry: Option<RetryObserver>,
}

/// What [`ClientBuilder::on_retry`] calls: the failure and the wait before
/// the next try.
type RetryCallback = dyn Fn(&Error, Duration) + Send + Sync;

/// Called before each new try of a request that failed transiently.
#[derive(Clone)]
pub struct RetryObserver(Arc<RetryCallback>);

impl std::fmt::Debug for RetryObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryObserver")
    }
}

impl ClientBuilder {
    /// Bearer token for every request; overrides `REMOTE_LAB_TOKEN`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Limit for one ordinary request (default 30 s). A long-poll gets its
    /// wait on top; `POST /lab` and the bring-up log are not limited (the
    /// server bounds a bring-up with its `--netlab-up-timeout`).
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// Time between heartbeats of an open session (default
    /// [`DEFAULT_HEARTBEAT`], at least 1 s); `None` or zero sends none.
    /// Up to 300 s the interval is announced to the server as the session's
    /// lease: if the client dies (even by SIGKILL), the server evicts the
    /// session after three missed beats (at least 10 s) and gives its lab
    /// to the next in line.
    pub fn heartbeat_interval(mut self, every: Option<Duration>) -> Self {
        self.heartbeat_interval = every
            .filter(|every| !every.is_zero())
            .map(|every| every.max(Duration::from_secs(1)));
        self
    }

    /// Tells `observe` of every retry (see [`retry`]): the failure and the
    /// wait before the next try. Without it retries are logged through
    /// `tracing` at WARN, which a program without a subscriber never shows.
    pub fn on_retry(mut self, observe: impl Fn(&Error, Duration) + Send + Sync + 'static) -> Self {
        self.on_retry = Some(RetryObserver(Arc::new(observe)));
        self
    }

    /// Errors: [`Error::Config`] for a URL that is not `http://` or
    /// `https://`, or a token that cannot be a header value.
    pub fn build(self) -> Result<Client> {
        let base = self.base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config(format!(
                "server URL must start with http:// or https://, got {base:?}"
            )));
        }
        if base.starts_with("https://") && !cfg!(feature = "rustls") {
            return Err(Error::Config(format!(
                "{base}: this build has no TLS; build it from a checkout with the `rustls` \
                 feature (cargo build --release --features rustls), or use the Python client"
            )));
        }
        let token = self
            .token
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|token| !token.is_empty());
        let mut headers = HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::Config("the token is not a valid header value".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(self.request_timeout.min(CONNECT_TIMEOUT))
            // Below the server's 10 s keep-alive limit, so a pooled
            // connection is never reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .map_err(|error| Error::Config(error.to_string()))?;
        Ok(Client {
            http,
            base,
            request_timeout: self.request_timeout,
            heartbeat_interval: self.heartbeat_interval,
            on_retry: self.on_retry,
        })
    }
}

/// A connection to one server. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    request_timeout: Duration,
    heartbeat_interval: Option<Duration>,
    on_retry: Option<RetryObserver>,
}

impl Client {
    /// A builder for the server at `base_url`, e.g. `http://lab-host:8000`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            request_timeout: Duration::from_secs(30),
            heartbeat_interval: Some(DEFAULT_HEARTBEAT),
            on_retry: None,
        }
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /session` with the optional client info (`{"client": …}`) and
    /// the heartbeat interval as its lease (`"heartbeat_seconds"`, see
    /// [`ClientBuilder::heartbeat_interval`]): joins the queue and starts
    /// heartbeats (see [`Session`]). Idempotent with `Idempotency-Key`: use
    /// [`Client::open_session_with_key`].
    pub async fn open_session(&self, client: Option<ClientInfoDto>) -> Result<Session> {
        self.open_session_with_key(client, None).await
    }

    /// [`Client::open_session`] with an `Idempotency-Key` header: a repeat
    /// with the same key (after a lost answer) returns the same session.
    pub async fn open_session_with_key(
        &self,
        client: Option<ClientInfoDto>,
        idempotency_key: Option<&str>,
    ) -> Result<Session> {
        let body = CreateSessionRequestDto {
            client,
            heartbeat_seconds: self.announced_heartbeat(),
        };
        let make = || {
            let mut request = self.request(Method::POST, "/session");
            if body.client.is_some() || body.heartbeat_seconds.is_some() {
                request = request.json(&body);
            }
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            Ok(request)
        };
        let response = match idempotency_key {
            Some(_) => self.send_again("POST /session", make).await?,
            None => self.send("POST /session", make()?).await?,
        };
        let created: CreateSessionResponseDto =
            response.json().await.map_err(transport("POST /session"))?;
        Ok(Session::open(
            self.clone(),
            created,
            self.heartbeat_interval,
        ))
    }

    /// A handle on an existing session, e.g. another process's, without
    /// heartbeats: for acting as that session (`lab down`).
    pub fn attach(&self, session_id: impl Into<String>) -> Session {
        Session::attach(self.clone(), session_id.into())
    }

    /// `DELETE /session/{id}`: ends the session; an active one's lab is
    /// torn down first. 404 when there is no such session.
    pub async fn end_session(&self, session_id: &str) -> Result<()> {
        let path = format!("/session/{session_id}");
        // A try whose answer was lost may have ended it: then 404 is success.
        let retried = AtomicBool::new(false);
        let ended = (|| self.send("DELETE /session", self.request(Method::DELETE, &path)))
            .retry(retry::policy())
            .when(retry::is_transient)
            .notify(|error, after| {
                retried.store(true, Ordering::Relaxed);
                self.retrying(error, after);
            })
            .await;
        match ended {
            Err(error)
                if error.status() == Some(reqwest::StatusCode::NOT_FOUND)
                    && retried.load(Ordering::Relaxed) =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// `GET /sessions`: the queue and the slots (not a sign of life).
    pub async fn sessions(&self) -> Result<SessionsDto> {
        let response = self.get("GET /sessions", "/sessions").await?;
        response.json().await.map_err(transport("GET /sessions"))
    }

    /// `GET /sessions` as the server sent it.
    pub async fn sessions_json(&self) -> Result<String> {
        let response = self.get("GET /sessions", "/sessions").await?;
        response.text().await.map_err(transport("GET /sessions"))
    }

    /// `GET /active-session`: the full id of the session active longest
    /// (`None` when nobody is active). Not a sign of life.
    pub async fn active_session(&self) -> Result<Option<String>> {
        let answer = match self.get("GET /active-session", "/active-session").await {
            Ok(response) => response
                .json::<Value>()
                .await
                .map_err(transport("GET /active-session")),
            Err(error) => Err(error),
        };
        match answer {
            Ok(body) => Ok(body["session_id"].as_str().map(str::to_string)),
            Err(error) if error.status() == Some(reqwest::StatusCode::NOT_FOUND) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The heartbeat interval in whole seconds (rounded up), when it can be
    /// announced as a lease (1 to 300 s).
    fn announced_heartbeat(&self) -> Option<u64> {
        let every = self.heartbeat_interval?;
        let seconds = every.as_secs() + u64::from(every.subsec_nanos() > 0);
        (seconds <= 300).then_some(seconds)
    }

    /// A request with the ordinary time limit.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.request_timeout)
    }

    /// A request without a time limit (bring-ups, streams).
    fn unlimited(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// Sends; an error status becomes [`Error::Status`] with its `detail`.
    async fn send(&self, what: &str, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(transport(what))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let detail = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(body)) => match body.get("detail") {
                Some(Value::String(detail)) => detail.clone(),
                Some(other) => other.to_string(),
                None => text,
            },
            _ => text,
        };
        Err(Error::Status {
            what: what.to_string(),
            status,
            detail,
        })
    }

    /// Sends what `make` builds, and again after a transient failure (see
    /// [`retry`]). Only for requests that are safe to repeat.
    async fn send_again(
        &self,
        what: &str,
        make: impl Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        (|| async { self.send(what, make()?).await })
            .retry(retry::policy())
            .when(retry::is_transient)
            .notify(|error, after| self.retrying(error, after))
            .await
    }

    /// Reports a retry to the observer, else to the log.
    fn retrying(&self, error: &Error, after: Duration) {
        match &self.on_retry {
            Some(RetryObserver(observe)) => observe(error, after),
            None => tracing::warn!(%error, "trying again in {after:?}"),
        }
    }

    /// [`Client::send_again`], then the answer's JSON.
    async fn json_again<T: DeserializeOwned>(
        &self,
        what: &str,
        make: impl Fn() -> Result<RequestBuilder>,
    ) -> Result<T> {
        let response = self.send_again(what, make).await?;
        response.json().await.map_err(transport(what))
    }

    /// `GET path` with the ordinary time limit, tried again while the
    /// server is unreachable.
    async fn get(&self, what: &str, path: &str) -> Result<Response> {
        self.send_again(what, || Ok(self.request(Method::GET, path)))
            .await
    }
}

fn transport(what: &str) -> impl FnOnce(reqwest::Error) -> Error + '_ {
    move |source| Error::Transport {
        what: what.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_needs_the_rustls_feature_and_says_so() {
        let built = Client::builder("https://lab-host:8000").build();
        if cfg!(feature = "rustls") {
            assert!(built.is_ok());
        } else {
            let error = built.expect_err("refused without TLS").to_string();
            assert!(
                error.contains("no TLS") && error.contains("rustls"),
                "{error}"
            );
        }
        assert!(Client::builder("ftp://lab-host").build().is_err());
        assert!(Client::builder("http://lab-host:8000/").build().is_ok());
    }
}
