//! Bearer-token auth against the real binary and real netlab: who gets in,
//! whose session is whose, what others see, reloading and refusing tokens,
//! and that no token ever reaches the log.

mod common;

use std::time::{Duration, Instant};

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const CI: &str = "ci-t0ken-4711-0123";
const ADA: &str = "ada-t0ken-0815-4567";
const TOKENS: &str = "ci:ci-t0ken-4711-0123,ada:ada-t0ken-0815-4567";
const GHOST: &str = "00000000-0000-4000-8000-000000000000";

/// Every route gated by `X-Session-ID`.
const LAB_ROUTES: [(Method, &str); 6] = [
    (Method::POST, "/lab"),
    (Method::GET, "/lab"),
    (Method::DELETE, "/lab"),
    (Method::POST, "/lab/release"),
    (Method::GET, "/lab/devices"),
    (Method::GET, "/lab/log"),
];

async fn server(options: impl FnOnce(Options) -> Options) -> Option<Server> {
    let netlab = common::netlab()?;
    Some(Server::start(options(Options::new(&netlab))).await)
}

macro_rules! server {
    ($options:expr) => {
        match server($options).await {
            Some(server) => server,
            None => return,
        }
    };
}

/// Status, `WWW-Authenticate` and `detail` of a request.
async fn answer(request: reqwest::RequestBuilder) -> (StatusCode, String, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, challenge, body["detail"].clone())
}

#[tokio::test]
async fn every_route_but_healthz_and_the_pages_needs_a_valid_token() {
    let s = server!(|o| o.tokens(TOKENS));
    let routes = [
        (Method::POST, "/session"),
        (Method::GET, "/session/{GHOST}"),
        (Method::DELETE, "/session/{GHOST}"),
        (Method::POST, "/session/heartbeat"),
        (Method::GET, "/active-session"),
        (Method::GET, "/sessions"),
        (Method::GET, "/events"),
        (Method::GET, "/metrics"),
        (Method::GET, "/debug/health"),
    ];
    for (method, path) in routes.into_iter().chain(LAB_ROUTES) {
        let url = s.url(&path.replace("{GHOST}", GHOST));
        let request = || {
            s.http
                .request(method.clone(), &url)
                .header("X-Session-ID", GHOST)
        };

        let (status, challenge, detail) = answer(request()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(challenge, r#"Bearer realm="neops-remote-lab""#);
        assert_eq!(detail, "Authorization: Bearer <token> is required");

        let (status, challenge, detail) = answer(request().bearer_auth("n0t-a-t0ken")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(
            challenge,
            r#"Bearer realm="neops-remote-lab", error="invalid_token""#
        );
        assert_eq!(detail, "Invalid token");

        let (status, challenge, _) = answer(request().basic_auth("ci", Some(CI))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(
            challenge.ends_with(r#"error="invalid_request""#),
            "{challenge}"
        );
    }

    // Open: the health probe, and the pages a browser loads without a header.
    let health = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::NO_CONTENT);
    for page in [
        "/",
        "/dashboard.js",
        "/dashboard.css",
        "/docs/",
        "/redoc",
        "/openapi.json",
    ] {
        let response = s.http.get(s.url(page)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
    }
    let spec: Value = s.get_json("/openapi.json").await;
    assert_eq!(
        spec["components"]["securitySchemes"]["bearer"],
        serde_json::json!({"type": "http", "scheme": "bearer",
            "description": spec["components"]["securitySchemes"]["bearer"]["description"]})
    );
    assert_eq!(spec["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        spec["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );

    // A valid token gets in, with the scheme in any case.
    let (status, _, _) = answer(
        s.http
            .get(s.url("/debug/health"))
            .header("Authorization", format!("bEaReR {ADA}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_session_belongs_to_the_token_that_created_it() {
    let s = server!(|o| o.tokens(TOKENS).bearer(CI));
    let ada = common::client(Some(ADA));
    let (mine, _) = s.create_session().await;
    let (waiting, _) = s.create_session().await;

    // Another token: 403 wherever the session id is used, 404 still first.
    let forbidden = |request: reqwest::RequestBuilder| async move {
        let (status, _, detail) = answer(request).await;
        assert_eq!(
            (status, detail.as_str()),
            (
                StatusCode::FORBIDDEN,
                Some("Session belongs to another token")
            )
        );
    };
    for id in [&mine, &waiting] {
        forbidden(ada.get(s.url(&format!("/session/{id}")))).await;
        forbidden(ada.get(s.url(&format!("/session/{id}?wait=5")))).await;
        forbidden(
            ada.post(s.url("/session/heartbeat"))
                .header("X-Session-ID", id),
        )
        .await;
        forbidden(ada.delete(s.url(&format!("/session/{id}")))).await;
    }
    for (method, path) in LAB_ROUTES {
        let request = ada.request(method.clone(), s.url(path));
        forbidden(request.header("X-Session-ID", &mine)).await;
        let ghost = ada
            .request(method, s.url(path))
            .header("X-Session-ID", GHOST);
        assert_eq!(answer(ghost).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _, _) = answer(ada.get(s.url(&format!("/session/{GHOST}")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The owner is not disturbed, and works through a real bring-up.
    assert_eq!(
        s.session_status(&mine).await.1,
        serde_json::json!({"status": "active", "position": 0, "declared_labs": []})
    );
    let (status, body) = s
        .acquire(&mine, Upload::new("topology.yml", TWO_NODES))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"].as_array().unwrap().len(), 2);
    let (status, _) = s.lab_call(Method::GET, "/lab/devices", &mine).await;
    assert_eq!(status, StatusCode::OK);

    // Idempotency keys are per token: the same key makes Ada her own session.
    let create = |http: &reqwest::Client| {
        json(
            http.post(s.url("/session"))
                .header("Idempotency-Key", "same-key"),
        )
    };
    let ci_keyed = create(&s.http).await;
    let ada_keyed = create(&ada).await;
    assert_ne!(ci_keyed["session_id"], ada_keyed["session_id"]);
    assert_eq!(create(&ada).await["session_id"], ada_keyed["session_id"]);

    // What others see: token names, and only short ids.
    let active = json(ada.get(s.url("/active-session"))).await;
    assert_eq!(active["session_id"], mine[..8]);
    assert_eq!(s.get_json("/active-session").await["session_id"], mine);
    let sessions = json(ada.get(s.url("/sessions"))).await;
    let owners: Vec<(&str, &str)> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|session| {
            (
                session["id"].as_str().unwrap(),
                session["owner"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(owners.len(), 4);
    assert_eq!(owners[0], (&mine[..8], "ci"));
    assert_eq!(owners[3].1, "ada");
    let events = ada.get(s.url("/events?replay=20")).send().await.unwrap();
    let mut stream = received_so_far(events).await;
    let joined = loop {
        let event = common::sse::take_message(&mut stream).expect("a session_joined event");
        if event["type"] == "session_joined" {
            break event;
        }
    };
    assert_eq!(
        (joined["session"].as_str(), joined["owner"].as_str()),
        (Some(&mine[..8]), Some("ci"))
    );

    // Only the owner ends its session; its lab goes with it.
    forbidden(ada.delete(s.url(&format!("/session/{mine}")))).await;
    assert_eq!(s.end_session(&mine).await, StatusCode::NO_CONTENT);
    s.wait_until_active(&waiting).await;

    // No token, right or wrong, is ever written to the log.
    let log = s.log();
    assert!(
        log.contains("session created"),
        "the log is the DEBUG one: {log}"
    );
    for token in [CI, ADA, "n0t-a-t0ken"] {
        assert!(!log.contains(token), "{token} in the log");
    }
}

/// Writes a tokens file only its owner may read (the server refuses any
/// other).
fn write_tokens(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

async fn json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// What a streamed answer sends at once (an event replay), as text.
async fn received_so_far(mut response: reqwest::Response) -> String {
    let mut text = String::new();
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(Duration::from_millis(500), response.chunk()).await
    {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    text
}

/// Polls until `request` answers `expected` (bounded).
async fn until_status(make: impl Fn() -> reqwest::RequestBuilder, expected: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = make().send().await.unwrap().status();
        if status == expected {
            return;
        }
        assert!(Instant::now() < deadline, "still {status}, not {expected}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_rereads_the_tokens_file_and_a_bad_one_keeps_the_old_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    write_tokens(&file, &format!("# runners\nci:{CI}\n"));
    let path = file.to_str().unwrap().to_string();
    let s = server!(|o| o.arg("--tokens-file", &path));
    let health = |token: &'static str| {
        let http = common::client(Some(token));
        let url = s.url("/debug/health");
        move || http.get(&url)
    };
    until_status(health(CI), StatusCode::OK).await;
    assert_eq!(
        health(ADA)().send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    write_tokens(&file, &format!("ada:{ADA}\n"));
    s.signal(libc::SIGHUP);
    until_status(health(ADA), StatusCode::OK).await;
    until_status(health(CI), StatusCode::UNAUTHORIZED).await;

    write_tokens(&file, &format!("ada:{ADA}\nci:\n"));
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log().contains("tokens file not used") {
        assert!(
            Instant::now() < deadline,
            "no reload error logged: {}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        s.log()
            .contains("line 2: the token (after the `:`) is empty"),
        "{}",
        s.log()
    );
    assert_eq!(health(ADA)().send().await.unwrap().status(), StatusCode::OK);
    for token in [CI, ADA] {
        assert!(!s.log().contains(token), "{token} in the log");
    }
}

#[test]
fn a_bad_tokens_file_refuses_the_start_with_the_reason() {
    let Some(netlab) = common::netlab() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    let path = file.to_str().unwrap();
    let cases = [
        (
            "ci:s3cret-one-0123456\nbroken line\n",
            "line 2: expected `name:token`",
        ),
        (
            "ci:s3cret-one-0123456\nci:s3cret-two-0123456\n",
            "line 2: the name ci is already used (line 1)",
        ),
        (
            "ci:s3cret-one-0123456\nada:s3cret-one-0123456\n",
            "line 2: the token of ada is already used (line 1)",
        ),
        ("ci:\n", "line 1: the token (after the `:`) is empty"),
        (
            "ci:s3cret\n",
            "line 1: the token (after the `:`) is shorter than 16 characters",
        ),
        (
            "s3cret-0123456789abcdef:ci\n",
            "line 1: the name could be a token",
        ),
        ("# nobody\n", "no tokens defined"),
    ];
    for (text, reason) in cases {
        write_tokens(&file, text);
        let options = Options::new(&netlab).arg("--tokens-file", path);
        let (status, log) = Server::run_to_exit(options);
        assert_eq!(status.code(), Some(1), "{log}");
        assert!(
            log.contains(&format!("cannot use the tokens: {path}: {reason}")),
            "{log}"
        );
        assert!(!log.contains("s3cret"), "a token in the log: {log}");
    }

    let missing = dir.path().join("missing");
    let options = Options::new(&netlab).arg("--tokens-file", missing.to_str().unwrap());
    let (status, log) = Server::run_to_exit(options);
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("cannot read"), "{log}");

    let options = Options::new(&netlab).tokens("ci:one-0123456789abcdef,broken");
    let (status, log) = Server::run_to_exit(options);
    assert_eq!(status.code(), Some(1));
    assert!(
        log.contains("NEOPS_REMOTE_LAB_TOKENS: entry 2: expected `name:token`"),
        "{log}"
    );

    write_tokens(&file, "ci:s3cret-one-0123456\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let options = Options::new(&netlab).arg("--tokens-file", path);
    let (status, log) = Server::run_to_exit(options);
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("run `chmod 600"), "{log}");
    assert!(!log.contains("s3cret"), "a token in the log: {log}");

    write_tokens(&file, "ci:s3cret-one-0123456\n");
    let both = Options::new(&netlab)
        .arg("--tokens-file", path)
        .tokens("ci:one-0123456789abcdef");
    let (status, log) = Server::run_to_exit(both);
    assert_eq!(status.code(), Some(1));
    assert!(log.contains("not both"), "{log}");
}

#[tokio::test]
async fn another_tokens_requests_keep_no_session_alive() {
    let s = server!(|o| o.tokens(TOKENS).bearer(CI).arg("--waiting-timeout", "2"));
    let ada = common::client(Some(ADA));
    let (_active, _) = s.create_session().await;
    let (waiting, _) = s.create_session().await;
    let listed = || async {
        let sessions = json(s.http.get(s.url("/sessions"))).await;
        sessions["sessions"].as_array().unwrap().len()
    };
    assert_eq!(listed().await, 2);
    // Ada heartbeats Ci's waiting session all along: it is evicted anyway.
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed().await == 2 {
        assert!(
            Instant::now() < deadline,
            "another token kept the session alive"
        );
        let poke = ada
            .post(s.url("/session/heartbeat"))
            .header("X-Session-ID", &waiting);
        assert!(matches!(
            answer(poke).await.0,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `neops-remote-lab run` as a client of the server at `base`, with
/// `token` (or none).
fn cli_run(base: &str, dir: &std::path::Path, token: Option<&str>) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"));
    command
        .current_dir(dir)
        .env("REMOTE_LAB_URL", base)
        .env_remove("REMOTE_LAB_SESSION_ID")
        .env_remove("REMOTE_LAB_TOKEN")
        .args(["run", "-t", "topology.yml", "--", "sh", "-c"])
        .arg(r#"grep -q '"name": "r2"' "$REMOTE_LAB_DEVICES_FILE""#)
        .stdin(std::process::Stdio::null());
    if let Some(token) = token {
        command.env("REMOTE_LAB_TOKEN", token);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn the_cli_sends_remote_lab_token() {
    let s = server!(|o| o.tokens(TOKENS).bearer(CI));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topology.yml"), TWO_NODES).unwrap();
    let run = tokio::task::spawn_blocking({
        let (base, path) = (s.base.clone(), dir.path().to_path_buf());
        move || {
            (
                cli_run(&base, &path, Some(ADA)),
                cli_run(&base, &path, None),
            )
        }
    });
    let (with_token, without) = run.await.unwrap();
    let stderr = String::from_utf8_lossy(&with_token.stderr);
    assert!(with_token.status.success(), "{stderr}");
    assert!(!stderr.contains(ADA), "the token in the output: {stderr}");
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(!without.status.success());
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(
        json(s.http.get(s.url("/sessions"))).await["sessions"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn a_restart_keeps_each_sessions_owner() {
    let Some(netlab) = common::netlab() else {
        return;
    };
    let dirs = common::ServerDirs::new();
    let options = || Options::new(&netlab).dirs(&dirs).tokens(TOKENS).bearer(CI);
    let mut first = Server::start(options()).await;
    let (mine, _) = first.create_session().await;
    first.stop_with(libc::SIGTERM);

    let s = Server::start(options()).await;
    let ada = common::client(Some(ADA));
    let (status, _, _) = answer(ada.get(s.url(&format!("/session/{mine}")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.session_status(&mine).await.0, StatusCode::OK);
    let sessions = json(ada.get(s.url("/sessions"))).await;
    assert_eq!(sessions["sessions"][0]["owner"], "ci");
}

#[tokio::test]
async fn the_status_table_names_each_sessions_owner() {
    let s = server!(|o| o.tokens(TOKENS).bearer(CI));
    s.create_session().await;
    let output = tokio::task::spawn_blocking({
        let base = s.base.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"))
                .args(["status", "--url", &base])
                .env("REMOTE_LAB_TOKEN", ADA)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    let header = table.lines().find(|line| line.starts_with("POS")).unwrap();
    assert!(header.ends_with("OWNER"), "{table}");
    let row = table.lines().find(|line| line.starts_with("0 ")).unwrap();
    assert!(row.ends_with(" ci"), "{table}");
}

#[tokio::test]
async fn a_reload_that_removes_a_token_ends_its_streams_long_polls_and_uploads() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    write_tokens(&file, &format!("ci:{CI}\nada:{ADA}\n"));
    let path = file.to_str().unwrap().to_string();
    let s = server!(|o| o.arg("--tokens-file", &path).bearer(CI));
    let (active, _) = s.create_session().await;
    let (waiting, _) = s.create_session().await;

    // The event stream, open and delivering.
    let mut events = s.http.get(s.url("/events?replay=1")).send().await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert!(events.chunk().await.unwrap().is_some(), "no first event");
    // A long-poll of the waiting session, answered only when it ends.
    let long_poll = tokio::spawn(
        s.http
            .get(s.url(&format!("/session/{waiting}?wait=60")))
            .send(),
    );
    // An upload whose body is still arriving.
    let mut upload = tokio::net::TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /lab HTTP/1.1\r\nHost: lab\r\nAuthorization: Bearer {CI}\r\n\
         X-Session-ID: {active}\r\nContent-Type: multipart/form-data; boundary=b\r\n\
         Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; \
         name=\"topology\"; filename=\"t.yml\"\r\n\r\nnodes: [r1"
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    // Connections are accepted in order and each request head is read at
    // once: a later request answered means both are in the server's hands.
    // (Had the reload come first, they would get `Invalid token`, not the
    // `revoked` asserted below.)
    for _ in 0..3 {
        answer(common::client(Some(ADA)).get(s.url("/debug/health"))).await;
    }

    write_tokens(&file, &format!("ada:{ADA}\n"));
    s.signal(libc::SIGHUP);

    let polled = tokio::time::timeout(Duration::from_secs(30), long_poll)
        .await
        .expect("the long-poll was not ended")
        .unwrap()
        .unwrap();
    assert_eq!(polled.status(), StatusCode::UNAUTHORIZED);
    let detail: Value = polled.json().await.unwrap();
    assert!(
        detail["detail"].as_str().unwrap().contains("revoked"),
        "{detail}"
    );
    let upload_answer = common::raw_answer(&mut upload).await;
    assert!(
        upload_answer.starts_with("HTTP/1.1 401") && upload_answer.contains("revoked"),
        "the upload went on: {upload_answer}"
    );
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(_)) = events.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the event stream went on after the reload");
    // The token is refused from now on; the other one still works.
    let (status, _, _) = answer(s.http.get(s.url("/sessions"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let ada = common::client(Some(ADA));
    assert_eq!(
        ada.get(s.url("/sessions")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_auth_a_sighup_is_logged_and_the_server_goes_on() {
    let s = server!(|o| o);
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.log().contains("SIGHUP: auth is off") {
        assert!(Instant::now() < deadline, "SIGHUP not handled: {}", s.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn no_page_may_be_framed_by_another_site() {
    let s = server!(|o| o);
    for page in ["/", "/dashboard.js", "/dashboard.css"] {
        let response = s.http.get(s.url(page)).send().await.unwrap();
        let policy = response
            .headers()
            .get("content-security-policy")
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'self'"),
            "{page}: {policy:?}"
        );
    }
    // The API documentation pages run inline scripts: they may not be
    // framed either.
    for page in ["/docs/", "/redoc", "/openapi.json"] {
        let response = s.http.get(s.url(page)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let policy = response.headers().get("content-security-policy");
        assert_eq!(
            policy.map(|value| value.to_str().unwrap()),
            Some("frame-ancestors 'none'"),
            "{page}"
        );
    }
}
