//! Many lab hosts, one queue, with real netlab: a pure coordinator
//! (`--lab-slots 0`) and three lab agents on this machine, each with its
//! own HOME and TMPDIR (so its own netlab registry), as separate processes.

mod common;
#[path = "common/history.rs"]
mod history;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::path::Path;

use common::{CountingNetlab, EXTERNAL_UP_ARGS, Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

const SECRET: &str = "pool-secret-0123456789";

/// A lab agent process, killed with SIGKILL when dropped (tests that
/// want a clean stop send SIGTERM themselves).
struct Agent {
    child: Child,
    dirs: ServerDirs,
}

impl Agent {
    fn start(coordinator: &Server, name: &str) -> Agent {
        Agent::with_netlab(coordinator, name, &common::netlab().expect("netlab"))
    }

    /// An agent running `netlab` (e.g. a [`CountingNetlab`]'s script).
    fn with_netlab(coordinator: &Server, name: &str, netlab: &Path) -> Agent {
        let dirs = ServerDirs::new();
        let log = std::fs::File::create(dirs.log_file()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"))
            .args(["agent", "--coordinator", &coordinator.base, "--name", name])
            .args(["--log-level", "DEBUG", "--netlab-up-args", EXTERNAL_UP_ARGS])
            .arg("--netlab-bin")
            .arg(netlab)
            .env("NEOPS_AGENT_TOKEN", SECRET)
            .env("HOME", dirs.home())
            .env("TMPDIR", dirs.tmp())
            .env_remove("NEOPS_NETLAB_UP_ARGS")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        Agent { child, dirs }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dirs.log_file()).unwrap_or_default()
    }

    fn kill(&mut self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn coordinator(extra: &[(&str, &str)]) -> Server {
    Server::start(coordinator_options(extra)).await
}

fn coordinator_options(extra: &[(&str, &str)]) -> Options {
    let mut options = Options::new(&common::netlab().expect("netlab"))
        .arg("--lab-slots", "0")
        .env("NEOPS_AGENT_TOKEN", SECRET);
    for (flag, value) in extra {
        options = options.arg(flag, value);
    }
    options
}

/// Waits (bounded) until `count` agent slots are registered.
async fn wait_for_slots(s: &Server, count: usize, agents: &[&Agent]) {
    // Generous: each agent first asks netlab its version, slow while
    // other tests keep both cores busy.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let slots = s.get_json("/sessions").await["slots"]
            .as_array()
            .unwrap()
            .len();
        if slots == count {
            return;
        }
        let logs: Vec<String> = agents.iter().map(|agent| agent.log()).collect();
        assert!(
            Instant::now() < deadline,
            "{slots} slots; agents: {logs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replays the coordinator's events until `ended` sessions ended, and
/// fails on any broken rule of the line (see [`history`]).
async fn check_history(s: &Server, ended: usize) -> Vec<Value> {
    let events = s
        .replayed_events(1024, |events| {
            let count = events
                .iter()
                .filter(|e| e["type"] == "session_ended")
                .count();
            count >= ended
        })
        .await;
    let violations = history::violations(&events, None);
    assert!(violations.is_empty(), "{violations:#?}");
    events
}

/// `POST /lab` of `topology`: status, `X-Lab-Host` and body.
async fn acquire_on(s: &Server, id: &str, topology: &str) -> (StatusCode, Option<String>, Value) {
    let response = (s.http.post(s.url("/lab")))
        .header("X-Session-ID", id)
        .multipart(Upload::new("topology.yml", topology).form())
        .send()
        .await
        .unwrap();
    let host =
        (response.headers().get("x-lab-host")).map(|value| value.to_str().unwrap().to_string());
    let status = response.status();
    (status, host, response.json().await.unwrap())
}

/// The session's slot and status now.
async fn standing(s: &Server, id: &str) -> (String, Option<u64>) {
    let sessions = s.get_json("/sessions").await;
    let short = &id[..8];
    let listed = (sessions["sessions"].as_array().unwrap().iter())
        .find(|session| session["id"] == short)
        .cloned()
        .unwrap_or(Value::Null);
    (
        listed["status"].as_str().unwrap_or("gone").to_string(),
        listed["slot"].as_u64(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_served_in_order_by_three_hosts_through_one_url() {
    if common::netlab().is_none() {
        return;
    }
    let s = coordinator(&[]).await;
    let agents: Vec<Agent> = ["lab-a", "lab-b", "lab-c"]
        .iter()
        .map(|name| Agent::start(&s, name))
        .collect();
    wait_for_slots(&s, 3, &agents.iter().collect::<Vec<_>>()).await;

    let mut sessions = Vec::new();
    for _ in 0..10 {
        sessions.push(s.create_session().await.0);
    }
    let mut hosts = std::collections::BTreeSet::new();
    for (turn, id) in sessions.iter().enumerate() {
        s.wait_until_active(id).await;
        // Everyone created earlier was promoted first.
        for earlier in &sessions[..turn] {
            let (status, _) = standing(&s, earlier).await;
            assert_ne!(status, "waiting", "{earlier} was passed over by {id}");
        }
        let (status, host, body) = acquire_on(&s, id, TWO_NODES).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["devices"].as_array().unwrap().len(), 2, "{body}");
        let host = host.expect("X-Lab-Host names the host");
        // /sessions names the host of the session's slot, and of the slot.
        let sessions = s.get_json("/sessions").await;
        let listed = (sessions["sessions"].as_array().unwrap().iter())
            .find(|session| session["id"] == id[..8])
            .unwrap();
        assert_eq!(listed["host"], host.as_str(), "{sessions}");
        let slot = &sessions["slots"][listed["slot"].as_u64().unwrap() as usize - 1];
        assert_eq!(slot["host"], host.as_str(), "{sessions}");
        assert_eq!(slot["online"], true, "{sessions}");
        if turn == 0 {
            // SSH without a VPN: each device behind a ProxyJump to its host.
            let (status, text) = s.lab_text("/lab/ssh-config", id).await;
            assert_eq!(status, StatusCode::OK, "{text}");
            for device in ["r1", "r2"] {
                assert!(text.contains(&format!("Host {device}\n")), "{text}");
            }
            assert!(text.contains(&format!("ProxyJump {host}\n")), "{text}");
            assert!(
                text.contains(&format!("Host {host}\n  HostName {host}\n")),
                "{text}"
            );
        }
        hosts.insert(host);
        assert_eq!(s.end_session(id).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(hosts.len(), 3, "every host ran labs: {hosts:?}");
    // Each agent's labs were torn down: no lab folder is left anywhere.
    for agent in &agents {
        assert!(wait_for_no_labs(agent).await, "{}", agent.log());
    }
    let events = check_history(&s, 10).await;
    // Promotions and lab events name their host.
    let promotions: Vec<&Value> = (events.iter())
        .filter(|e| e["type"] == "session_promoted")
        .collect();
    assert_eq!(promotions.len(), 10);
    assert!(
        promotions.iter().all(|e| e["host"].is_string()),
        "{events:#?}"
    );
    let ups = events.iter().filter(|e| e["type"] == "lab_up");
    assert!(
        ups.clone().count() == 10 && ups.into_iter().all(|e| e["host"].is_string()),
        "{events:#?}"
    );
}

/// Waits (bounded) until the agent has no lab folder left.
async fn wait_for_no_labs(agent: &Agent) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if agent.dirs.lab_dirs().is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits (bounded) until session `id` ended `host_lost`, as its status says.
async fn wait_for_host_lost(s: &Server, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = s.session_status(id).await;
        if status == StatusCode::NOT_FOUND {
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains("host_lost"), "{detail}");
            return;
        }
        assert!(Instant::now() < deadline, "never ended: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_agent_ends_its_session_host_lost_and_the_next_session_gets_a_live_host() {
    if common::netlab().is_none() {
        return;
    }
    let s = coordinator(&[("--agent-lease", "2"), ("--host-grace", "3")]).await;
    let mut a = Agent::start(&s, "lab-a");
    wait_for_slots(&s, 1, &[&a]).await;
    let b = Agent::start(&s, "lab-b");
    wait_for_slots(&s, 2, &[&a, &b]).await;

    let (first, _) = s.create_session().await;
    let (second, _) = s.create_session().await;
    let (third, _) = s.create_session().await;
    for id in [&first, &second] {
        s.wait_until_active(id).await;
        let (status, body) = s.acquire(id, Upload::new("topology.yml", TWO_NODES)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The first session's slot is lab-a's (slot 1, registered first).
    assert_eq!(standing(&s, &first).await.1, Some(1));

    a.kill(libc::SIGKILL);
    let (status, body) = s.session_status(&first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Past the lease and the grace, its session ends host_lost.
    wait_for_host_lost(&s, &first).await;
    let (status, body) = s
        .lab_call(reqwest::Method::GET, "/lab/devices", &first)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["detail"].as_str().unwrap().contains("host_lost"),
        "{body}"
    );

    // The other host carries on; the third session gets it next.
    let (status, devices) = s
        .lab_call(reqwest::Method::GET, "/lab/devices", &second)
        .await;
    assert_eq!(status, StatusCode::OK, "{devices}");
    assert_eq!(standing(&s, &third).await.0, "waiting");
    assert_eq!(s.end_session(&second).await, StatusCode::NO_CONTENT);
    s.wait_until_active(&third).await;
    let (status, host, body) = acquire_on(&s, &third, TWO_NODES).await;
    assert_eq!(
        (status, host.as_deref()),
        (StatusCode::OK, Some("lab-b")),
        "{body}"
    );
    // The lost host is offline in /sessions.
    let slots = s.get_json("/sessions").await["slots"].clone();
    assert_eq!(slots[0]["online"], false, "{slots}");

    // lab-a comes back as a new agent: a session waiting meanwhile gets
    // its slot and keeps it (only the old holder was lost).
    let (fourth, _) = s.create_session().await;
    let again = Agent::start(&s, "lab-a");
    s.wait_until_active(&fourth).await;
    let (status, host, body) = acquire_on(&s, &fourth, TWO_NODES).await;
    assert_eq!(
        (status, host.as_deref()),
        (StatusCode::OK, Some("lab-a")),
        "{body}\n{}",
        again.log()
    );
    let (status, body) = s.session_status(&fourth).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{body}"
    );

    let events = check_history(&s, 2).await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "session_ended" && e["reason"] == "host_lost"),
        "{events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_without_the_secret_is_refused_and_the_secret_never_appears_in_logs() {
    if common::netlab().is_none() {
        return;
    }
    let s = coordinator(&[]).await;
    for secret in [None, Some("wrong-secret-0123456789")] {
        let (status, body) = register_with(&s, secret, "x", 1).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // Nothing was registered.
    assert_eq!(
        s.get_json("/sessions").await["slots"],
        serde_json::json!([])
    );
    assert!(!s.log().contains("wrong-secret"), "{}", s.log());
    assert!(!s.log().contains(SECRET), "{}", s.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_stopped_past_its_grace_tears_down_what_it_no_longer_owns_and_rejoins() {
    if common::netlab().is_none() {
        return;
    }
    let s = coordinator(&[("--agent-lease", "2"), ("--host-grace", "2")]).await;
    let mut a = Agent::start(&s, "lab-a");
    wait_for_slots(&s, 1, &[&a]).await;

    let (first, _) = s.create_session().await;
    s.wait_until_active(&first).await;
    let (status, _, body) = acquire_on(&s, &first, TWO_NODES).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(a.dirs.lab_dirs().len(), 1);

    a.kill(libc::SIGSTOP);
    wait_for_host_lost(&s, &first).await;
    // A session arriving now waits: the only host is offline.
    let (second, _) = s.create_session().await;
    assert_eq!(standing(&s, &second).await.0, "waiting");

    a.kill(libc::SIGCONT);
    // Back, the agent finds a newer assignment with no lab: it tears its
    // lab down and takes new work.
    s.wait_until_active(&second).await;
    assert!(wait_for_no_labs(&a).await, "{}", a.log());
    let (status, host, body) = acquire_on(&s, &second, TWO_NODES).await;
    assert_eq!(
        (status, host.as_deref()),
        (StatusCode::OK, Some("lab-a")),
        "{body}"
    );
    assert_eq!(s.end_session(&second).await, StatusCode::NO_CONTENT);
    check_history(&s, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_lab_on_another_host_goes_to_the_session_that_declared_it() {
    if common::netlab().is_none() {
        return;
    }
    const OTHER: &str = "defaults.device: eos\nnodes: [x1]\n";
    let s = coordinator(&[("--keep-idle-lab", "300")]).await;
    let a = Agent::start(&s, "lab-a");
    wait_for_slots(&s, 1, &[&a]).await;
    let b = Agent::start(&s, "lab-b");
    wait_for_slots(&s, 2, &[&a, &b]).await;

    // lab-a keeps OTHER, lab-b keeps TWO_NODES.
    let (first, _) = s.create_session().await;
    let (second, _) = s.create_session().await;
    for (id, topology, host) in [(&first, OTHER, "lab-a"), (&second, TWO_NODES, "lab-b")] {
        s.wait_until_active(id).await;
        let (status, on, body) = acquire_on(&s, id, topology).await;
        assert_eq!(
            (status, on.as_deref()),
            (StatusCode::OK, Some(host)),
            "{body}"
        );
    }
    for id in [&first, &second] {
        assert_eq!(s.end_session(id).await, StatusCode::NO_CONTENT);
    }
    // A session that declares TWO_NODES gets lab-b's kept lab.
    let (third, _) = s.create_session().await;
    let (status, body) = s
        .declare(&third, Upload::new("topology.yml", TWO_NODES).form())
        .await;
    assert!(status.is_success(), "{status} {body}");
    s.wait_until_active(&third).await;
    let (status, host, body) = acquire_on(&s, &third, TWO_NODES).await;
    assert_eq!(
        (status, host.as_deref()),
        (StatusCode::OK, Some("lab-b")),
        "{body}"
    );
    assert_eq!(body["reused"], true, "{body}");
    assert_eq!(s.end_session(&third).await, StatusCode::NO_CONTENT);
    check_history(&s, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordinator_restarts_with_the_agents_labs_and_their_holders() {
    let Some(netlab) = common::netlab() else {
        return;
    };
    let (port, dirs) = (common::free_port(), ServerDirs::new());
    let options = || {
        coordinator_options(&[("--host-grace", "120")])
            .port(port)
            .dirs(&dirs)
    };
    let mut s = Server::start(options()).await;
    let (netlab_a, netlab_b) = (CountingNetlab::new(&netlab), CountingNetlab::new(&netlab));
    let a = Agent::with_netlab(&s, "lab-a", &netlab_a.script);
    wait_for_slots(&s, 1, &[&a]).await;
    let b = Agent::with_netlab(&s, "lab-b", &netlab_b.script);
    wait_for_slots(&s, 2, &[&a, &b]).await;

    let (first, _) = s.create_session().await;
    let (second, _) = s.create_session().await;
    for (id, host) in [(&first, "lab-a"), (&second, "lab-b")] {
        s.wait_until_active(id).await;
        let (status, on, body) = acquire_on(&s, id, TWO_NODES).await;
        assert_eq!(
            (status, on.as_deref()),
            (StatusCode::OK, Some(host)),
            "{body}"
        );
    }
    s.stop_with(libc::SIGKILL);

    let s = Server::start(options()).await;
    // Both agents register again (their polls are refused by the new
    // coordinator) and keep their labs.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let slots = s.get_json("/sessions").await["slots"].clone();
        let online = (slots.as_array().unwrap().iter()).filter(|slot| slot["online"] == true);
        if online.count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{slots}\n{}\n{}",
            a.log(),
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, host) in [(&first, "lab-a"), (&second, "lab-b")] {
        let (status, body) = s.session_status(id).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("active")),
            "{body}"
        );
        let (status, on, body) = acquire_on(&s, id, TWO_NODES).await;
        assert_eq!(
            (status, on.as_deref()),
            (StatusCode::OK, Some(host)),
            "{body}"
        );
        assert_eq!(body["reused"], true, "{body}");
        assert_eq!(body["devices"].as_array().unwrap().len(), 2, "{body}");
    }
    // No `netlab up` ran again on either host.
    assert_eq!((netlab_a.ups(), netlab_b.ups()), (1, 1));
    for id in [&first, &second] {
        assert_eq!(s.end_session(id).await, StatusCode::NO_CONTENT);
    }
    assert!(wait_for_no_labs(&a).await && wait_for_no_labs(&b).await);
    check_history(&s, 2).await;
}

/// Registers a host that never polls (a stand-in for a lab host that went
/// away), with the pool's secret: the answer's status and body.
async fn register_silent_host(s: &Server, name: &str, slots: usize) -> (StatusCode, Value) {
    register_with(s, Some(SECRET), name, slots).await
}

/// `POST /agent/register` of a host `name` with `slots` slots, sending
/// `secret` (none: no `Authorization`).
async fn register_with(
    s: &Server,
    secret: Option<&str>,
    name: &str,
    slots: usize,
) -> (StatusCode, Value) {
    let mut request = (s.http.post(s.url("/agent/register"))).json(&serde_json::json!({
        "name": name, "incarnation": "silent", "slots": slots,
        "capabilities": {"netlab_version": "26.10", "up_args": []}, "running": []
    }));
    if let Some(secret) = secret {
        request = request.bearer_auth(secret);
    }
    let response = request.send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_renumbered_by_a_coordinator_that_lost_its_state_tears_down_and_serves_again() {
    if common::netlab().is_none() {
        return;
    }
    let port = common::free_port();
    let options = || {
        coordinator_options(&[("--agent-lease", "2"), ("--host-grace", "2")])
            .env("NEOPS_IN_MEMORY", "true")
            .port(port)
    };
    let mut s = Server::start(options()).await;
    let mut a = Agent::start(&s, "lab-a");
    wait_for_slots(&s, 1, &[&a]).await;
    let (first, _) = s.create_session().await;
    s.wait_until_active(&first).await;
    let (status, _, body) = acquire_on(&s, &first, TWO_NODES).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A graceful stop does not wait for the agent: its lab stays with it.
    let stopped = s.stop_within(libc::SIGTERM, Duration::from_secs(60));
    assert!(
        stopped.is_some_and(|status| status.success()),
        "{}",
        s.log()
    );
    assert_eq!(a.dirs.lab_dirs().len(), 1, "{}", a.log());

    // A coordinator without the old state gives slot 1 to another host
    // before lab-a comes back.
    a.kill(libc::SIGSTOP);
    let s = Server::start(options()).await;
    let (status, body) = register_silent_host(&s, "placeholder", 1).await;
    assert_eq!(
        (status, &body["slots"]),
        (StatusCode::OK, &serde_json::json!([1]))
    );
    a.kill(libc::SIGCONT);
    wait_for_slots(&s, 2, &[&a]).await;
    // lab-a, now slot 2, tore down the lab of its old slot.
    assert!(wait_for_no_labs(&a).await, "{}", a.log());
    // Once the silent placeholder is offline, a session gets lab-a.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.get_json("/sessions").await["slots"][0]["online"] != false {
        assert!(
            Instant::now() < deadline,
            "the placeholder never went offline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (second, _) = s.create_session().await;
    s.wait_until_active(&second).await;
    let (status, host, body) = acquire_on(&s, &second, TWO_NODES).await;
    assert_eq!(
        (status, host.as_deref()),
        (StatusCode::OK, Some("lab-a")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_registrations_and_reports_are_refused_and_change_nothing() {
    if common::netlab().is_none() {
        return;
    }
    let s = coordinator(&[]).await;
    for slots in [0, 65] {
        let (status, body) = register_silent_host(&s, "odd", slots).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{slots}: {body}");
    }
    assert_eq!(
        s.get_json("/sessions").await["slots"],
        serde_json::json!([])
    );
    let (status, _) = register_silent_host(&s, "quiet", 1).await;
    assert_eq!(status, StatusCode::OK);
    // A report of an epoch the coordinator never handed out is refused.
    let report = |epoch: u64| {
        serde_json::json!({
            "name": "quiet", "incarnation": "silent", "slot": 1, "epoch": epoch,
            "state": {"failed": {"message": "x", "timed_out": false}}
        })
    };
    let desired: Value = (s
        .http
        .get(s.url("/agent/desired?name=quiet&incarnation=silent")))
    .bearer_auth(SECRET)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let epoch = desired["slots"][0]["epoch"].as_u64().unwrap();
    for (sent, expected) in [
        (epoch + 1_000_000, StatusCode::CONFLICT),
        (epoch - 1, StatusCode::CONFLICT),
        (epoch, StatusCode::NO_CONTENT),
    ] {
        let response = (s.http.post(s.url("/agent/report")))
            .bearer_auth(SECRET)
            .json(&report(sent))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            expected,
            "epoch {sent} (current {epoch})"
        );
    }
}
