//! One session: its place in the queue, its heartbeats, its lab.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use tokio::task::JoinHandle;

use super::error::Result;
use super::{Client, LabFiles, transport};
use crate::wire::{
    AcquireResponseDto, CreateSessionResponseDto, DeviceInfoDto, LabStatusDto, SessionState,
    SessionStatusResponseDto,
};

/// How long one long-poll waits, in seconds (the server allows up to 60).
const LONG_POLL_SECS: u64 = 30;

/// A session on the server. Opened sessions send `POST /session/heartbeat`
/// from a background task until [`Session::close`] or drop; dropping does
/// not end the session on the server (it is evicted after the server's
/// timeout), so call [`Session::close`].
#[derive(Debug)]
pub struct Session {
    client: Client,
    id: String,
    position: usize,
    heartbeat: Option<JoinHandle<()>>,
}

impl Session {
    pub(super) fn open(
        client: Client,
        created: CreateSessionResponseDto,
        every: Option<Duration>,
    ) -> Self {
        let heartbeat = every.map(|every| {
            let (client, id) = (client.clone(), created.session_id.clone());
            tokio::spawn(heartbeats(client, id, every))
        });
        Session {
            client,
            id: created.session_id,
            position: created.position,
            heartbeat,
        }
    }

    pub(super) fn attach(client: Client, id: String) -> Self {
        Session {
            client,
            id,
            position: 0,
            heartbeat: None,
        }
    }

    /// The full session id (what `X-Session-ID` carries).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The position `POST /session` reported (0: active at once).
    pub fn initial_position(&self) -> usize {
        self.position
    }

    /// `GET /session/{id}`, long-polled for up to `wait` when given (the
    /// answer comes as soon as status or position changes). A sign of life.
    pub async fn status(&self, wait: Option<Duration>) -> Result<SessionStatusResponseDto> {
        let path = match wait {
            Some(wait) => format!("/session/{}?wait={}", self.id, wait.as_secs_f64()),
            None => format!("/session/{}", self.id),
        };
        let limit = self.client.request_timeout + wait.unwrap_or_default();
        let request = self.client.request(Method::GET, &path).timeout(limit);
        self.client.json("GET /session", request).await
    }

    /// Long-polls until the session is ACTIVE, calling `on_change` with
    /// every answer (position 0 = active). Errors: 404 when the session is
    /// gone (ended, evicted). Wrap it in a timeout to bound the wait.
    pub async fn wait_until_active(
        &self,
        mut on_change: impl FnMut(&SessionStatusResponseDto),
    ) -> Result<()> {
        loop {
            let status = self
                .status(Some(Duration::from_secs(LONG_POLL_SECS)))
                .await?;
            on_change(&status);
            if status.status == SessionState::Active {
                return Ok(());
            }
        }
    }

    /// `POST /lab`: uploads the lab and returns its devices once it is up
    /// (or attached: `reuse` attaches to a running lab of the same content).
    /// With `idempotency_key`, a repeat after a lost answer returns the
    /// first request's result. Errors: 423 `Lab currently busy` or
    /// `Session is not active`, 400 a refused upload, 502/504 netlab failed
    /// or hung (`detail` carries netlab's last lines).
    pub async fn acquire(
        &self,
        lab: &LabFiles,
        reuse: bool,
        idempotency_key: Option<&str>,
    ) -> Result<AcquireResponseDto> {
        let mut request = self
            .lab_request(Method::POST, "/lab", false)
            .multipart(lab.form(reuse)?);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.client.json("POST /lab", request).await
    }

    /// `POST /lab/release`: drops one reference; at zero the lab stays up, idle.
    pub async fn release(&self) -> Result<()> {
        let request = self.lab_request(Method::POST, "/lab/release", true);
        self.client
            .send("POST /lab/release", request)
            .await
            .map(drop)
    }

    /// `DELETE /lab?force=`: tears the slot's lab down; `true` when one was
    /// (202), `false` when none ran (204). Errors: 409 `Lab still in use`
    /// (held and `force` false), 502/503/504 a failed teardown.
    pub async fn destroy(&self, force: bool) -> Result<bool> {
        let path = format!("/lab?force={force}");
        let request = self.lab_request(Method::DELETE, &path, false);
        let response = self.client.send("DELETE /lab", request).await?;
        Ok(response.status() == StatusCode::ACCEPTED)
    }

    /// `GET /lab/devices`. Errors: 404 `No lab running`.
    pub async fn devices(&self) -> Result<Vec<DeviceInfoDto>> {
        let request = self.lab_request(Method::GET, "/lab/devices", true);
        self.client.json("GET /lab/devices", request).await
    }

    /// `GET /lab`: the slot's lab and netlab's own status report.
    pub async fn lab(&self) -> Result<LabStatusDto> {
        let request = self.lab_request(Method::GET, "/lab", true);
        self.client.json("GET /lab", request).await
    }

    /// `GET /lab/log`: netlab's output of the slot's current (or last)
    /// bring-up, line by line; it ends when the bring-up ends.
    pub async fn lab_log(&self) -> Result<LogLines> {
        let request = self.lab_request(Method::GET, "/lab/log", false);
        let response = self.client.send("GET /lab/log", request).await?;
        Ok(LogLines {
            response,
            pending: Vec::new(),
        })
    }

    /// Stops the heartbeats and ends the session (`DELETE /session/{id}`);
    /// an active session's lab is torn down first.
    pub async fn close(mut self) -> Result<()> {
        self.stop_heartbeats();
        self.client.end_session(&self.id).await
    }

    fn stop_heartbeats(&mut self) {
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
    }

    fn lab_request(&self, method: Method, path: &str, limited: bool) -> reqwest::RequestBuilder {
        let request = if limited {
            self.client.request(method, path)
        } else {
            self.client.unlimited(method, path)
        };
        request.header("X-Session-ID", &self.id)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_heartbeats();
    }
}

/// Keeps the session alive; failures are left to the next beat (a session
/// that is gone shows up as 404 on the owner's next real request).
async fn heartbeats(client: Client, id: String, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; creation was the sign of life
    loop {
        ticks.tick().await;
        let request = client
            .request(Method::POST, "/session/heartbeat")
            .header("X-Session-ID", &id);
        if let Err(error) = client.send("POST /session/heartbeat", request).await {
            tracing::debug!(%error, "heartbeat failed");
        }
    }
}

/// The lines of `GET /lab/log`, as they arrive.
pub struct LogLines {
    response: Response,
    pending: Vec<u8>,
}

impl LogLines {
    /// The next line without its line break (text that is not UTF-8 is
    /// decoded lossily); `None` at the end of the stream.
    pub async fn next_line(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(Some(text(&line[..end])));
            }
            match self
                .response
                .chunk()
                .await
                .map_err(transport("GET /lab/log"))?
            {
                Some(chunk) => self.pending.extend_from_slice(&chunk),
                None if self.pending.is_empty() => return Ok(None),
                None => return Ok(Some(text(&std::mem::take(&mut self.pending)))),
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .trim_end_matches('\r')
        .to_string()
}
