//! Fault injection: netlab failing, hanging or printing garbage, through the
//! clearly named stand-in `tests/fixtures/faulty-netlab-standin`, which
//! passes everything else to the real netlab. Each fault must give a clean
//! 5xx, leave no lab and no directory, and let the next request succeed.

mod common;

use std::path::{Path, PathBuf};

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;

struct Faulty {
    server: Server,
    faults: tempfile::TempDir,
}

async fn faulty_server(real: &Path, extra: &[(&str, &str)]) -> Faulty {
    let faults = tempfile::tempdir().unwrap();
    let mut options = faulty_options(real, faults.path());
    for (flag, value) in extra {
        options = options.arg(flag, value);
    }
    Faulty {
        server: Server::start(options).await,
        faults,
    }
}

/// A server running the stand-in, which reads its faults from `faults`.
fn faulty_options(real: &Path, faults: &Path) -> Options {
    let standin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faulty-netlab-standin");
    Options::new(&standin)
        .env("FAULTY_NETLAB_REAL", real.to_str().unwrap())
        .env("FAULTY_NETLAB_FAULTS", faults.to_str().unwrap())
}

impl Faulty {
    fn inject(&self, fault: &str) {
        std::fs::write(self.faults.path().join(fault), "").unwrap();
    }

    fn clear(&self, fault: &str) {
        std::fs::remove_file(self.faults.path().join(fault)).unwrap();
    }

    /// Sends `POST /lab` with the `up-hangs` fault set; returns once netlab
    /// hangs, with the request's task and the pid of the hanging child.
    async fn start_hanging_bring_up(
        &self,
        session: &str,
    ) -> (tokio::task::JoinHandle<reqwest::Result<StatusCode>>, i32) {
        self.inject("up-hangs");
        let form = reqwest::multipart::Form::new().part(
            "topology",
            reqwest::multipart::Part::bytes(TWO_NODES.as_bytes().to_vec()).file_name("t.yml"),
        );
        let request = self
            .server
            .http
            .post(self.server.url("/lab"))
            .header("X-Session-ID", session);
        let bring_up =
            tokio::spawn(async move { request.multipart(form).send().await.map(|r| r.status()) });
        let pid_file = self.faults.path().join("up-hangs.pid");
        while !pid_file.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (bring_up, pid)
    }

    /// After a fault: nothing registered, nothing on disk, and the next
    /// bring-up works.
    async fn assert_recovers(&self, session: &str) {
        let s = &self.server;
        let (_, lab) = s.lab_call(reqwest::Method::GET, "/lab", session).await;
        assert_eq!(lab["running"], false, "{lab}");
        assert!(
            !s.dirs.netlab_registry().contains("default:"),
            "{}",
            s.dirs.netlab_registry()
        );
        assert!(s.dirs.lab_dirs().is_empty(), "{:?}", s.dirs.lab_dirs());
        let (status, body) = s.acquire(session, Upload::new("t.yml", TWO_NODES)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn failing_up_answers_502_with_exit_code_and_last_lines() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let (id, _) = f.server.create_session().await;
    f.inject("up-fails");
    let (status, body) = f.server.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("exit code 3"), "{detail}");
    assert!(
        detail.contains("provider failed to start the lab"),
        "{detail}"
    );
    f.clear("up-fails");
    f.assert_recovers(&id).await;
}

#[tokio::test]
async fn real_netlab_failure_is_reported_the_same_way() {
    // No device type anywhere: netlab itself refuses the topology.
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let (id, _) = f.server.create_session().await;
    let (status, body) = f
        .server
        .acquire(&id, Upload::new("t.yml", "nodes: [r1]\n"))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("No device type specified"),
        "{body}"
    );
    f.assert_recovers(&id).await;
}

#[tokio::test]
async fn hanging_up_is_killed_at_its_limit_and_answers_504() {
    let real = require_netlab!();
    // Short enough to wait for; long enough for the real `netlab up` of the
    // recovery check on a loaded machine.
    let f = faulty_server(&real, &[("--netlab-up-timeout", "10")]).await;
    let (id, _) = f.server.create_session().await;
    f.inject("up-hangs");
    let (status, body) = f.server.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("did not finish within 10 s"),
        "{body}"
    );
    let pid: i32 = std::fs::read_to_string(f.faults.path().join("up-hangs.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        process_gone(pid),
        "the hanging netlab's child {pid} survived"
    );
    f.clear("up-hangs");
    f.assert_recovers(&id).await;
}

#[tokio::test]
async fn queue_and_status_routes_answer_while_a_bring_up_runs() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[("--netlab-up-timeout", "60")]).await;
    let (id, _) = f.server.create_session().await;
    let (bring_up, pid) = f.start_hanging_bring_up(&id).await;
    // netlab up is hanging now; everything else must still answer.
    let (status, body) = f.server.session_status(&id).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &serde_json::json!("active"))
    );
    let (other, position) = f.server.create_session().await;
    assert_eq!(position, 1);
    assert_eq!(f.server.heartbeat(&other).await, StatusCode::NO_CONTENT);
    let (status, lab) = f.server.lab_call(reqwest::Method::GET, "/lab", &id).await;
    assert_eq!(
        (status, &lab["running"]),
        (StatusCode::OK, &serde_json::json!(false))
    );
    let health = f
        .server
        .http
        .get(f.server.url("/debug/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        !bring_up.is_finished(),
        "all of the above answered while the bring-up was still running"
    );

    // End the hang: the stand-in goes on with the real `netlab up`.
    // SAFETY: sends a signal to the stand-in's sleeping child, nothing more.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(bring_up.await.unwrap().unwrap(), StatusCode::OK);
}

#[tokio::test]
async fn garbage_from_inspect_answers_502_and_tears_the_lab_down() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let (id, _) = f.server.create_session().await;
    f.inject("inspect-garbage");
    let (status, body) = f.server.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        body["detail"].as_str().unwrap().contains("unusable output"),
        "{body}"
    );
    f.clear("inspect-garbage");
    f.assert_recovers(&id).await;
}

#[tokio::test]
async fn next_session_proceeds_after_a_failed_bring_up() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let (first, _) = f.server.create_session().await;
    let (second, _) = f.server.create_session().await;
    f.inject("up-fails");
    let (status, _) = f
        .server
        .acquire(&first, Upload::new("t.yml", TWO_NODES))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    f.clear("up-fails");
    assert_eq!(f.server.end_session(&first).await, StatusCode::NO_CONTENT);
    f.server.wait_until_active(&second).await;
    f.assert_recovers(&second).await;
}

/// True once the process is gone or a zombie (bounded wait: the kill is
/// asynchronous to us).
fn process_gone(pid: i32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z') =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    false
}

#[tokio::test]
async fn sigterm_kills_a_bring_up_in_flight_and_exits_cleanly() {
    let real = require_netlab!();
    let mut f = faulty_server(&real, &[("--netlab-up-timeout", "600")]).await;
    let (id, _) = f.server.create_session().await;
    let (bring_up, pid) = f.start_hanging_bring_up(&id).await;

    let exit = f.server.stop_with(libc::SIGTERM);
    assert_eq!(exit.code(), Some(0), "{}", f.server.log());
    assert!(
        process_gone(pid),
        "the bring-up's child {pid} survived the shutdown"
    );
    // The request was answered (503: shutting down) or cut; never left hanging.
    if let Ok(status) = bring_up.await.unwrap() {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(!f.server.dirs.meta_file().exists());
    assert!(f.server.dirs.lab_dirs().is_empty());
    assert!(!f.server.dirs.netlab_registry().contains("default:"));
}

#[tokio::test]
async fn a_client_hanging_up_mid_bring_up_leaves_a_consistent_lab() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[("--netlab-up-timeout", "60")]).await;
    let (id, _) = f.server.create_session().await;
    let (bring_up, pid) = f.start_hanging_bring_up(&id).await;
    bring_up.abort(); // the client goes away while netlab up still runs
    let _ = bring_up.await;
    // SAFETY: ends the stand-in's sleeping child; the real `netlab up` follows.
    unsafe { libc::kill(pid, libc::SIGKILL) };

    // The bring-up finishes on its own and the lab is fully registered...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, lab) = f.server.lab_call(reqwest::Method::GET, "/lab", &id).await;
        if lab["running"] == true {
            assert_eq!(lab["ref_count"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bring-up never finished: {lab}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(f.server.dirs.netlab_registry().contains("default:"));
    // ...and leaves with its session.
    assert_eq!(f.server.end_session(&id).await, StatusCode::NO_CONTENT);
    assert!(!f.server.dirs.netlab_registry().contains("default:"));
    assert!(f.server.dirs.lab_dirs().is_empty());
}

#[tokio::test]
async fn a_server_killed_during_up_leaves_no_netlab_process_after_its_restart() {
    let real = require_netlab!();
    let mut f = faulty_server(&real, &[("--netlab-up-timeout", "600")]).await;
    let (id, _) = f.server.create_session().await;
    let (_bring_up, sleeper) = f.start_hanging_bring_up(&id).await;
    f.server.stop_with(libc::SIGKILL);
    // netlab itself dies with the server (parent-death signal), but the
    // helper it started lives on, orphaned...
    assert!(
        !process_gone(sleeper),
        "precondition: the helper {sleeper} outlived the server"
    );
    // ...until the next start finds it, before it cleans anything.
    let restarted =
        Server::start(faulty_options(&real, f.faults.path()).dirs(&f.server.dirs)).await;
    assert!(process_gone(sleeper), "{}", restarted.log());
    assert!(
        restarted.log().contains("left behind"),
        "{}",
        restarted.log()
    );
    f.clear("up-hangs");
    // The session came back from the store, still holding the slot; its
    // half-started lab did not: it brings the lab up afresh.
    let (status, body) = restarted
        .acquire(&id, Upload::new("t.yml", TWO_NODES))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reused"], false);
}

#[tokio::test]
async fn a_failed_teardown_keeps_the_lab_dirty_and_the_next_bring_up_cleans_it() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let s = &f.server;
    let (holder, _) = s.create_session().await;
    let (next, _) = s.create_session().await;
    let (status, _) = s.acquire(&holder, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    f.inject("down-fails-once");
    assert_eq!(s.end_session(&holder).await, StatusCode::NO_CONTENT);
    // The slot went on, but netlab still has the old lab, and its files stay.
    assert_eq!(s.session_status(&next).await.1["status"], "active");
    let registry = s.dirs.netlab_registry();
    assert!(registry.contains("default:"), "{registry}");
    let dirs = s.dirs.lab_dirs();
    assert_eq!(dirs.len(), 1);
    assert_eq!(
        s.get_json("/debug/health").await["dirty_slots"],
        serde_json::json!([1])
    );
    // The next bring-up tears the old lab down first, then starts its own.
    let (status, body) = s
        .acquire(
            &next,
            Upload::new("other.yml", "defaults.device: eos\nnodes: [x1]\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"][0]["name"], "x1");
    assert!(!dirs[0].exists(), "the dirty lab's directory is gone");
    assert_eq!(
        s.get_json("/debug/health").await["dirty_slots"],
        serde_json::json!([])
    );
    assert_eq!(s.dirs.lab_dirs().len(), 1);
}

#[tokio::test]
async fn output_that_is_not_utf8_does_not_break_a_healthy_bring_up() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let (id, _) = f.server.create_session().await;
    f.inject("up-not-utf8");
    let (status, body) = f.server.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn sigterm_during_start_up_leaves_no_netlab_process() {
    let real = require_netlab!();
    let faults = tempfile::tempdir().unwrap();
    std::fs::write(faults.path().join("version-hangs"), "").unwrap();
    let (mut server, _dirs) = common::spawn(faulty_options(&real, faults.path()));
    // The server is starting: `netlab version` hangs.
    let pid_file = faults.path().join("version-hangs.pid");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !pid_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "netlab version never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let exit = server.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(
        process_gone(child),
        "netlab's child {child} outlived the server"
    );
}

#[tokio::test]
async fn a_request_for_another_lab_stops_a_pre_boot_and_brings_its_own_up() {
    let real = require_netlab!();
    let f = faulty_server(&real, &[]).await;
    let s = &f.server;
    let (holder, _) = s.create_session().await;
    let (waiter, _) = s.create_session().await;
    let (status, body) = s
        .declare(&waiter, Upload::new("t.yml", TWO_NODES).form())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Its pre-boot hangs in `netlab up`.
    f.inject("up-hangs");
    assert_eq!(s.end_session(&holder).await, StatusCode::NO_CONTENT);
    let pid_file = f.faults.path().join("up-hangs.pid");
    while !pid_file.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    f.clear("up-hangs");
    // The session wants another lab first: the pre-boot makes way at once.
    let other = "defaults.device: eos\nnodes: [x1]\n";
    let request = s.acquire(&waiter, Upload::new("t.yml", other));
    let (status, lab) = tokio::time::timeout(std::time::Duration::from_secs(60), request)
        .await
        .expect("the pre-boot held the request up");
    assert_eq!(status, StatusCode::OK, "{lab}");
    assert_eq!(lab["devices"].as_array().map(Vec::len), Some(1), "{lab}");
    assert_eq!(lab["reused"], false);
}
