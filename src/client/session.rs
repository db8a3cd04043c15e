//! One session: its place in the queue, its heartbeats, its lab.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::error::{Error, Result};
use super::{Client, LabFiles, transport};
use crate::wire::{
    AcquireResponseDto, CreateSessionResponseDto, DeclaredLabDto, DeviceInfoDto, LabInventoryDto,
    LabStatusDto, SessionState, SessionStatusResponseDto,
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
    /// Why the session was lost, once a heartbeat found out.
    lost: watch::Receiver<Option<String>>,
}

impl Session {
    pub(super) fn open(
        client: Client,
        created: CreateSessionResponseDto,
        every: Option<Duration>,
    ) -> Self {
        let (lost_sender, lost) = watch::channel(None);
        let heartbeat = every.map(|every| {
            let (client, id) = (client.clone(), created.session_id.clone());
            tokio::spawn(heartbeats(client, id, every, lost_sender))
        });
        Session {
            client,
            id: created.session_id,
            position: created.position,
            heartbeat,
            lost,
        }
    }

    pub(super) fn attach(client: Client, id: String) -> Self {
        Session {
            client,
            id,
            position: 0,
            heartbeat: None,
            lost: watch::channel(None).1,
        }
    }

    /// Completes, saying why, when a heartbeat finds the session gone: the
    /// server no longer knows it (ended by someone else, evicted), refuses
    /// it, or stayed unreachable for longer than the client retries. Never
    /// completes for a session without heartbeats.
    pub async fn lost(&self) -> String {
        let mut lost = self.lost.clone();
        match lost.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The heartbeat task is gone without a verdict (closed).
            Err(_) => std::future::pending().await,
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
        self.client
            .json_again("GET /session", || {
                Ok(self.client.request(Method::GET, &path).timeout(limit))
            })
            .await
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
    /// first request's result, and a request that got no answer (the
    /// server restarting) is sent again. Errors: 423 `Lab currently busy`
    /// or `Session is not active`, 400 a refused upload, 502/504 netlab
    /// failed or hung (`detail` carries netlab's last lines).
    pub async fn acquire(
        &self,
        lab: &LabFiles,
        reuse: bool,
        idempotency_key: Option<&str>,
    ) -> Result<AcquireResponseDto> {
        let make = || {
            let request = self
                .lab_request(Method::POST, "/lab", false)
                .multipart(lab.form(reuse)?);
            Ok(match idempotency_key {
                Some(key) => request.header("Idempotency-Key", key),
                None => request,
            })
        };
        let response = match idempotency_key {
            Some(_) => self.client.send_again("POST /lab", make).await?,
            None => self.client.send("POST /lab", make()?).await?,
        };
        response.json().await.map_err(transport("POST /lab"))
    }

    /// `POST /session/{id}/labs`: declares a lab the session will ask for
    /// (while it waits or is active), so the server can prepare it. Sent
    /// again after a transient failure: declaring the same lab twice
    /// answers its first index. `None` from a server without the route
    /// (before 1.5.0). Errors: 400/413/422 a refused upload, 404 the
    /// session is unknown.
    pub async fn declare_lab(&self, lab: &LabFiles) -> Result<Option<DeclaredLabDto>> {
        let what = "POST /session/{id}/labs";
        let path = format!("/session/{}/labs", self.id);
        let sent = self
            .client
            .send_again(what, || {
                Ok(self
                    .client
                    .unlimited(Method::POST, &path)
                    .multipart(lab.form(true)?))
            })
            .await;
        match sent {
            Ok(response) => response.json().await.map(Some).map_err(transport(what)),
            Err(Error::Status { status, detail, .. })
                if status == StatusCode::METHOD_NOT_ALLOWED
                    || (status == StatusCode::NOT_FOUND && detail == "Not Found") =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
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
        let response = self
            .client
            .send_again("DELETE /lab", || {
                Ok(self.lab_request(Method::DELETE, &path, false))
            })
            .await?;
        Ok(response.status() == StatusCode::ACCEPTED)
    }

    /// `GET /lab/devices`. Errors: 404 `No lab running`.
    pub async fn devices(&self) -> Result<Vec<DeviceInfoDto>> {
        self.client
            .json_again("GET /lab/devices", || {
                Ok(self.lab_request(Method::GET, "/lab/devices", true))
            })
            .await
    }

    /// `GET /lab/inventory`: netlab's own Ansible inventory of the slot's
    /// lab (`hosts.yml`, `group_vars/…`, `host_vars/…`). Errors: 404 when
    /// no lab runs.
    pub async fn inventory(&self) -> Result<LabInventoryDto> {
        self.client
            .json_again("GET /lab/inventory", || {
                Ok(self.lab_request(Method::GET, "/lab/inventory", true))
            })
            .await
    }

    /// `GET /lab`: the slot's lab and netlab's own status report.
    pub async fn lab(&self) -> Result<LabStatusDto> {
        self.client
            .json_again("GET /lab", || {
                Ok(self.lab_request(Method::GET, "/lab", true))
            })
            .await
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

/// Keeps the session alive. A heartbeat the server refuses (404: the
/// session is gone; 401/403), or one that cannot get through within the
/// retry time, ends the heartbeats and reports the session lost.
async fn heartbeats(
    client: Client,
    id: String,
    every: Duration,
    lost: watch::Sender<Option<String>>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; creation was the sign of life
    loop {
        ticks.tick().await;
        let beat = client
            .send_again("POST /session/heartbeat", || {
                Ok(client
                    .request(Method::POST, "/session/heartbeat")
                    .header("X-Session-ID", &id))
            })
            .await;
        if let Err(error) = beat {
            tracing::warn!(%error, "the session is lost");
            lost.send_replace(Some(error.to_string()));
            return;
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
