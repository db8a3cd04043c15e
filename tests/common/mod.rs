//! Test support: starts the real `neops-remote-lab` binary against real
//! netlab (its container-free `external` provider), each server with its own
//! HOME and TMPDIR, and talks to it over HTTP.
#![allow(dead_code)] // Each test binary uses its own share of these helpers.

pub mod in_process;
pub mod sse;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// What `netlab up` needs here: no containers, no Ansible, the instance id
/// the original server assumed.
pub const EXTERNAL_UP_ARGS: &str = "-q --no-config -p external -s defaults.multilab.id=default";

/// A two-node topology whose device defines `ansible_user`.
pub const TWO_NODES: &str = "defaults.device: eos\nnodes: [r1, r2]\nlinks: [r1-r2]\n";

/// The netlab executable, from `NEOPS_NETLAB_BIN` or `PATH`. Without it a
/// test is skipped with a hint, except under `CI=true`, where that is a
/// failure.
pub fn netlab() -> Option<PathBuf> {
    let found = std::env::var_os("NEOPS_NETLAB_BIN")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .or_else(|| find_on_path("netlab"));
    if found.is_none() {
        let hint = "netlab not found: `pip install networklab` (or `make venv`) and put it on PATH, \
                    or set NEOPS_NETLAB_BIN";
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("{hint}");
        }
        eprintln!("SKIPPED: {hint}");
    }
    found
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A tool a test needs (`install` says how to get it): found on `PATH`,
/// else the test fails. The Makefile's virtualenv has them all.
pub fn require_tool(name: &str, install: &str) -> PathBuf {
    find_on_path(name).unwrap_or_else(|| panic!("{name} not found on PATH: {install} (make venv)"))
}

/// Skips the calling test (with a message) when netlab is missing.
#[macro_export]
macro_rules! require_netlab {
    () => {
        match common::netlab() {
            Some(path) => path,
            None => return,
        }
    };
}

/// Real netlab behind a script that logs each command line first.
pub struct CountingNetlab {
    _dir: tempfile::TempDir,
    pub script: PathBuf,
    log: PathBuf,
}

impl CountingNetlab {
    pub fn new(real: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (script, log) = (dir.path().join("netlab"), dir.path().join("commands.log"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# Real netlab, each command logged first.\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        CountingNetlab {
            _dir: dir,
            script,
            log,
        }
    }

    /// Every command line so far, oldest first (without `netlab`).
    pub fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many `netlab up` ran so far.
    pub fn ups(&self) -> usize {
        self.commands()
            .iter()
            .filter(|line| line.starts_with("up "))
            .count()
    }
}

/// How to start a server.
pub struct Options {
    pub netlab: PathBuf,
    pub log_level: &'static str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Reuse another server's HOME and TMPDIR (to test host guards and
    /// restarts).
    pub dirs: Option<ServerDirs>,
    /// Run as this user id (and group id).
    pub user: Option<u32>,
    /// `RLIMIT_FSIZE` in bytes: a write beyond it fails as on a full disk.
    pub file_size_limit: Option<u64>,
    /// The token `Server::http` sends with every request.
    pub bearer: Option<String>,
    /// The port to listen on (0: any free one).
    pub port: u16,
    /// `--netlab-up-args`; `None`: not given, the server chooses.
    pub up_args: Option<String>,
    /// Where the server's stderr goes.
    pub stderr: Stderr,
}

/// The server's stderr in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Appended to the server's log file (what `Server::log` reads).
    LogFile,
    /// A pipe whose reading end is already closed (its reader went away):
    /// every log write fails with EPIPE.
    Lost,
    /// A pipe whose reader stays open but never reads: once the pipe's
    /// buffer is full, a write would wait forever.
    Stalled,
}

impl Options {
    pub fn new(netlab: &Path) -> Self {
        Options {
            netlab: netlab.to_path_buf(),
            log_level: "DEBUG",
            args: Vec::new(),
            env: Vec::new(),
            dirs: None,
            user: None,
            file_size_limit: None,
            bearer: None,
            port: 0,
            up_args: Some(EXTERNAL_UP_ARGS.to_string()),
            stderr: Stderr::LogFile,
        }
    }

    /// Gives no `--netlab-up-args`, so the server picks netlab's provider.
    pub fn without_up_args(mut self) -> Self {
        self.up_args = None;
        self
    }

    /// Listen on `port`, e.g. to restart a server where its clients expect it.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Turns auth on with these `name:token` entries (comma-separated).
    pub fn tokens(self, list: &str) -> Self {
        self.env("NEOPS_REMOTE_LAB_TOKENS", list)
    }

    /// Makes the test's HTTP client send `Authorization: Bearer <token>`.
    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_string());
        self
    }

    /// Gives the server a stderr whose reader is gone or stalled.
    pub fn stderr(mut self, stderr: Stderr) -> Self {
        self.stderr = stderr;
        self
    }

    pub fn run_as_user(mut self, uid: u32) -> Self {
        self.user = Some(uid);
        self
    }

    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    pub fn log_level(mut self, level: &'static str) -> Self {
        self.log_level = level;
        self
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.to_string());
        self.args.push(value.to_string());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn dirs(mut self, dirs: &ServerDirs) -> Self {
        self.dirs = Some(dirs.clone());
        self
    }
}

/// A server's private HOME and TMPDIR (kept alive by the `TempDir`).
#[derive(Clone)]
pub struct ServerDirs {
    root: std::sync::Arc<tempfile::TempDir>,
}

impl ServerDirs {
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join("home")).unwrap();
        std::fs::create_dir(root.path().join("tmp")).unwrap();
        ServerDirs {
            root: std::sync::Arc::new(root),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.path().join("tmp")
    }

    /// The state directory (`--state-dir`), private to these dirs.
    pub fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    pub fn meta_file(&self) -> PathBuf {
        self.tmp().join("neops_remote_lab_server.meta.json")
    }

    /// Lab directories the server has on disk right now.
    pub fn lab_dirs(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.tmp().join("neops_remote_lab_labs"))
            .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
            .unwrap_or_default()
    }

    /// The folders uploads were written to: each lab directory holds its
    /// upload's root four empty folders down, named like itself.
    pub fn upload_roots(&self) -> Vec<PathBuf> {
        self.lab_dirs()
            .into_iter()
            .map(|dir| dir.join("_/_/_/_").join(dir.file_name().unwrap()))
            .collect()
    }

    /// netlab's registry of running labs for this HOME, as text; read from
    /// its status file, so the test itself never runs netlab.
    pub fn netlab_registry(&self) -> String {
        std::fs::read_to_string(self.home().join(".netlab/status.yaml")).unwrap_or_default()
    }

    pub fn log_file(&self) -> PathBuf {
        self.root.path().join("server.log")
    }
}

/// A running server process. Stopped with SIGTERM when dropped.
pub struct Server {
    child: Option<Child>,
    pub dirs: ServerDirs,
    pub base: String,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(options: Options) -> Server {
        let http = client(options.bearer.as_deref());
        let (child, dirs) = spawn(options);
        let meta = wait_for_meta(&dirs, child.id());
        let port = meta["port"].as_u64().expect("port in metadata");
        let server = Server {
            child: Some(child),
            dirs,
            base: format!("http://127.0.0.1:{port}"),
            http,
        };
        server.wait_healthy().await;
        server
    }

    /// Starts a server that is expected to exit by itself; returns its exit
    /// status and log.
    pub fn run_to_exit(options: Options) -> (ExitStatus, String) {
        let (mut child, dirs) = spawn(options);
        let status = child.wait().expect("wait for server");
        (
            status,
            std::fs::read_to_string(dirs.log_file()).unwrap_or_default(),
        )
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = self.http.get(self.url("/healthz")).send().await
                && response.status() == StatusCode::NO_CONTENT
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server never became healthy: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dirs.log_file()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends `signal`; the server goes on running.
    pub fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop_with(&mut self, signal: i32) -> ExitStatus {
        let mut child = self.child.take().expect("server still running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().expect("wait for server")
    }

    /// Sends `signal` and waits up to `limit` for the process to exit;
    /// `None` (the process killed) when it did not.
    pub fn stop_within(&mut self, signal: i32, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("server still running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().expect("wait for server") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// `GET path`, parsed as JSON (`null` for an empty body).
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap_or(Value::Null)
    }

    /// The body of `GET <path>` as text (e.g. `/metrics`).
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// The events of `GET /events?replay=<replay>` and the live ones after
    /// them, read until `enough` says so (bounded).
    pub async fn replayed_events(
        &self,
        replay: usize,
        enough: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let url = self.url(&format!("/events?replay={replay}"));
        let mut response = self.http.get(url).send().await.unwrap();
        let (mut text, mut events) = (String::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !enough(&events) {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, response.chunk()).await;
            let Ok(Ok(Some(chunk))) = chunk else {
                panic!("the events ended or stalled: {events:?}");
            };
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(event) = sse::take_message(&mut text) {
                events.push(event);
            }
        }
        events
    }

    /// `POST /session/heartbeat` for `id`; returns the status.
    pub async fn heartbeat(&self, id: &str) -> StatusCode {
        let request = self
            .http
            .post(self.url("/session/heartbeat"))
            .header("X-Session-ID", id);
        request.send().await.unwrap().status()
    }

    pub async fn create_session(&self) -> (String, u64) {
        let response = self.http.post(self.url("/session")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        (
            body["session_id"].as_str().unwrap().to_string(),
            body["position"].as_u64().unwrap(),
        )
    }

    pub async fn session_status(&self, id: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(&format!("/session/{id}")))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /lab` with a topology and optional extra files.
    pub async fn acquire(&self, session: &str, upload: Upload<'_>) -> (StatusCode, Value) {
        self.send_lab(session, upload.form(), upload.idempotency_key)
            .await
    }

    /// `POST /session/{id}/labs` with `form`: the answer's status and body.
    pub async fn declare(&self, session: &str, form: Form) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("/session/{session}/labs")))
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /lab` with any multipart form (raw bytes, odd parts).
    pub async fn post_lab(&self, session: &str, form: Form) -> (StatusCode, Value) {
        self.send_lab(session, form, None).await
    }

    async fn send_lab(&self, session: &str, form: Form, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url("/lab"))
            .header("X-Session-ID", session);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.multipart(form).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A request with the session header; returns status and JSON body.
    pub async fn lab_call(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .header("X-Session-ID", session)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` as the session: the status and the body as text.
    pub async fn lab_text(&self, path: &str, session: &str) -> (StatusCode, String) {
        let response = (self.http.get(self.url(path)))
            .header("X-Session-ID", session)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// The directory netlab has registered for the `default` instance, as
    /// `GET /lab` reports netlab's status.
    pub async fn registered_dir(&self, session: &str) -> Option<String> {
        let (_, lab) = self.lab_call(reqwest::Method::GET, "/lab", session).await;
        let status: Value = serde_json::from_str(lab["netlab_status"].as_str()?).ok()?;
        status["default"]["dir"].as_str().map(str::to_string)
    }

    pub async fn end_session(&self, id: &str) -> StatusCode {
        self.http
            .delete(self.url(&format!("/session/{id}")))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Polls until the session is ACTIVE (bounded), then returns.
    pub async fn wait_until_active(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.session_status(id).await;
            if body["status"] == "active" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} never became active: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the session is gone (bounded).
    pub async fn wait_until_gone(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _) = self.session_status_without_touch(id).await;
            if status == StatusCode::NOT_FOUND {
                return;
            }
            assert!(Instant::now() < deadline, "session {id} was never evicted");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Checks presence through `/active-session`, which does not count as a
    /// sign of life (a status poll would keep the session alive).
    async fn session_status_without_touch(&self, id: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url("/active-session"))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if body["session_id"] == id {
            (StatusCode::OK, body)
        } else {
            (StatusCode::NOT_FOUND, body)
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_with(libc::SIGTERM);
        }
    }
}

/// An HTTP client for tests, sending `Authorization: Bearer <token>` when
/// given one.
pub fn client(bearer: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = bearer {
        let value = format!("Bearer {token}").parse().expect("a header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        // Below the server's 10 s idle limit, so a pooled connection is
        // never reused just as the server closes it.
        .pool_idle_timeout(Duration::from_secs(5))
        .default_headers(headers)
        .build()
        .unwrap()
}

/// What `POST /lab` sends.
pub struct Upload<'a> {
    pub name: &'a str,
    pub topology: &'a str,
    pub reuse: Option<bool>,
    pub extra_files: Vec<(&'a str, &'a str)>,
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Upload<'a> {
    pub fn new(name: &'a str, topology: &'a str) -> Self {
        Upload {
            name,
            topology,
            reuse: None,
            extra_files: Vec::new(),
            idempotency_key: None,
        }
    }

    pub fn idempotency_key(mut self, key: &'a str) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    pub fn reuse(mut self, reuse: bool) -> Self {
        self.reuse = Some(reuse);
        self
    }

    pub fn extra(mut self, name: &'a str, content: &'a str) -> Self {
        self.extra_files.push((name, content));
        self
    }

    /// The multipart form `POST /lab` takes.
    pub fn form(&self) -> Form {
        let mut form = Form::new().part(
            "topology",
            Part::bytes(self.topology.as_bytes().to_vec()).file_name(self.name.to_string()),
        );
        if let Some(reuse) = self.reuse {
            form = form.text("reuse", reuse.to_string());
        }
        for (name, content) in &self.extra_files {
            form = form.part(
                "extra_files",
                Part::bytes(content.as_bytes().to_vec()).file_name(name.to_string()),
            );
        }
        form
    }
}

/// Reads a raw HTTP answer from `stream` up to the end of its JSON body
/// (the server may answer while the request body is still unfinished).
/// Gives up (panics) after a minute without data.
pub async fn raw_answer(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !received.ends_with(b"}") {
        let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buffer))
            .await
            .expect("no answer within a minute")
            .unwrap();
        assert!(read > 0, "closed without an answer");
        received.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts the server process without waiting for it to serve.
pub fn spawn(options: Options) -> (Child, ServerDirs) {
    let dirs = options.dirs.unwrap_or_else(ServerDirs::new);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dirs.log_file())
        .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"));
    command
        .args(["--host", "127.0.0.1", "--log-level", options.log_level])
        .args(["--port", &options.port.to_string()])
        .arg("--netlab-bin")
        .arg(&options.netlab)
        .args(
            options
                .up_args
                .iter()
                .flat_map(|args| ["--netlab-up-args", args.as_str()]),
        )
        .args(&options.args)
        .env("HOME", dirs.home())
        .env("TMPDIR", dirs.tmp())
        .env("NEOPS_STATE_DIR", dirs.state())
        .env_remove("STATE_DIRECTORY")
        .env_remove("NEOPS_IN_MEMORY")
        .env_remove("RUST_LOG")
        .env_remove("NEOPS_NETLAB_UP_ARGS")
        .envs(options.env)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap());
    match options.stderr {
        Stderr::LogFile => {
            command.stderr(log);
        }
        Stderr::Lost => {
            let (reader, writer) = std::io::pipe().expect("a pipe");
            drop(reader);
            command.stderr(writer);
        }
        Stderr::Stalled => {
            let (reader, writer) = std::io::pipe().expect("a pipe");
            // Open, never read, for as long as the test runs.
            std::mem::forget(reader);
            command.stderr(writer);
        }
    }
    if let Some(uid) = options.user {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(uid);
    }
    if let Some(bytes) = options.file_size_limit {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // The hard limit stays, so a test can lift the soft one.
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = bytes;
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // A write beyond the limit must fail (EFBIG), not kill.
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    (command.spawn().expect("start neops-remote-lab"), dirs)
}

fn wait_for_meta(dirs: &ServerDirs, pid: u32) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(dirs.meta_file())
            && let Ok(meta) = serde_json::from_str::<Value>(&text)
            && meta["pid"] == pid
        {
            return meta;
        }
        let log = std::fs::read_to_string(dirs.log_file()).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "server never wrote its metadata: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every path under `dir`, sorted (a missing `dir` has none).
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            paths.push(path);
        }
    }
    paths.sort();
    paths
}
