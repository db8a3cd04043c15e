//! The client subcommands, as users run them: the real binary against a
//! real server and real netlab. `run` must end its session on every way
//! out (the command's exit, a signal while waiting or while the command
//! runs) and serve parallel runs in the queue's order.

mod common;

use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::Method;
use serde_json::Value;
use tokio::process::{Child, Command};

/// A folder with `topology.yml` (two eos nodes) for `run -t`.
fn lab_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topology.yml"), TWO_NODES).unwrap();
    dir
}

/// The binary as a client of `s`, working in `dir`, with nothing of the
/// caller's environment that would change what it does.
fn cli(s: &Server, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"));
    command
        .current_dir(dir)
        .env("REMOTE_LAB_URL", &s.base)
        .env_remove("REMOTE_LAB_SESSION_ID")
        .env_remove("REMOTE_LAB_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// `run -t topology.yml -- sh -c <script>`, its output captured.
fn run_sh(s: &Server, dir: &Path, script: &str) -> Command {
    let mut command = cli(s, dir);
    command
        .args(["run", "-t", "topology.yml", "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

async fn sessions(s: &Server) -> Vec<Value> {
    s.get_json("/sessions").await["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls `GET /sessions` (no sign of life) until `done` holds (bounded).
async fn wait_for_sessions(s: &Server, what: &str, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = sessions(s).await;
        if done(&now) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `path` exists (bounded).
async fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn terminate(child: &Child) {
    let pid = child.id().expect("still running") as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
}

async fn finish(child: Child) -> (ExitStatus, String) {
    let Output { status, stderr, .. } = child.wait_with_output().await.unwrap();
    (status, String::from_utf8_lossy(&stderr).into_owned())
}

/// Nothing left: no session, no lab in the slot, none registered with netlab.
async fn assert_nothing_left(s: &Server) {
    let view = s.get_json("/sessions").await;
    assert_eq!(view["sessions"], Value::Array(vec![]), "{view}");
    assert_eq!(view["slots"][0]["lab"], Value::Null, "{view}");
    assert!(!s.dirs.netlab_registry().contains("default:"));
}

#[tokio::test]
async fn run_passes_the_devices_and_exits_with_the_commands_code() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    let script = r#"grep -q '"name": "r2"' "$REMOTE_LAB_DEVICES_FILE" || exit 9
        echo "$REMOTE_LAB_DEVICES_FILE $REMOTE_LAB_INVENTORY" > paths
        echo "$REMOTE_LAB_SESSION_ID $REMOTE_LAB_URL" > session
        exit 3"#;
    let (status, stderr) = finish(run_sh(&s, dir.path(), script).spawn().unwrap()).await;
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("brought up: 2 devices"), "{stderr}");

    let session = std::fs::read_to_string(dir.path().join("session")).unwrap();
    let (id, url) = session.trim().split_once(' ').unwrap();
    assert_eq!((id.len(), url), (36, s.base.as_str()));
    let paths = std::fs::read_to_string(dir.path().join("paths")).unwrap();
    for file in paths.split_whitespace() {
        assert!(!Path::new(file).exists(), "{file} was not removed");
    }
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn a_command_that_cannot_be_started_still_ends_the_session() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    // Not found: said before queueing.
    let output = cli(&s, dir.path())
        .args(["run", "-t", "topology.yml", "--", "./no-such-command"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(127));
    assert_nothing_left(&s).await;
    // Found but not executable: only spawning tells, once the lab is up.
    std::fs::write(dir.path().join("not-executable"), "#!/bin/sh\n").unwrap();
    let output = cli(&s, dir.path())
        .args(["run", "-t", "topology.yml", "--", "./not-executable"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(126), "{stderr}");
    assert!(stderr.contains("brought up"), "{stderr}");
    assert_nothing_left(&s).await;
    // A heartbeat interval that is no number of seconds: a usage error,
    // said before joining the queue.
    let output = cli(&s, dir.path())
        .env("REMOTE_LAB_HEARTBEAT_INTERVAL", "five")
        .args(["run", "-t", "topology.yml", "--", "true"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("REMOTE_LAB_HEARTBEAT_INTERVAL"), "{stderr}");
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn sigterm_while_waiting_in_the_queue_leaves_no_session() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (holder, _) = s.create_session().await;
    let dir = lab_folder();
    let run = run_sh(&s, dir.path(), "touch ran").spawn().unwrap();
    wait_for_sessions(&s, "queued behind the holder", |now| now.len() == 2).await;

    terminate(&run);
    let (status, stderr) = finish(run).await;
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr}");
    assert!(!dir.path().join("ran").exists());
    let left = sessions(&s).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"].as_str(), Some(&holder[..8]));
}

#[tokio::test]
async fn sigterm_while_the_command_runs_is_forwarded_and_ends_the_session() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    let started = dir.path().join("started");
    let run = run_sh(&s, dir.path(), "touch started; exec sleep 600")
        .spawn()
        .unwrap();
    wait_for_file(&started).await;

    terminate(&run);
    let (status, stderr) = finish(run).await;
    // The command was killed by the forwarded SIGTERM: 128 + 15.
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{stderr}");
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn parallel_runs_are_served_in_queue_order() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (holder, _) = s.create_session().await;
    let dir = lab_folder();
    let first = run_sh(&s, dir.path(), "echo first >> order")
        .spawn()
        .unwrap();
    wait_for_sessions(&s, "first queued", |now| now.len() == 2).await;
    let second = run_sh(&s, dir.path(), "echo second >> order")
        .spawn()
        .unwrap();
    wait_for_sessions(&s, "second queued", |now| now.len() == 3).await;

    s.end_session(&holder).await;
    let ((first, e1), (second, e2)) = tokio::join!(finish(first), finish(second));
    assert!(first.success() && second.success(), "{e1}\n{e2}");
    let order = std::fs::read_to_string(dir.path().join("order")).unwrap();
    assert_eq!(order, "first\nsecond\n");
    assert_nothing_left(&s).await;
}

/// A lab with a group of its own and a group variable.
const GROUPED: &str = "defaults.device: eos
groups:
  core:
    members: [r1, r2]
    vars:
      ospf_area: 0.0.0.7
nodes: [r1, r2, r3]
links: [r1-r2, r2-r3]
";

#[tokio::test]
async fn the_inventory_is_netlabs_own_with_its_groups_and_variables() {
    let netlab = require_netlab!();
    let ansible = common::require_tool("ansible-inventory", "pip install ansible-core");
    let s = Server::start(Options::new(&netlab)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topology.yml"), GROUPED).unwrap();
    let inventory = format!(r#"{} -i "$REMOTE_LAB_INVENTORY""#, ansible.display());
    let script = format!(
        r#"cp "$REMOTE_LAB_DEVICES_FILE" devices.json &&
        {inventory} --graph core > core.txt &&
        {inventory} --host r1 > r1.json && {inventory} --host r3 > r3.json"#
    );
    let (status, stderr) = finish(run_sh(&s, dir.path(), &script).spawn().unwrap()).await;
    assert!(status.success(), "{stderr}");

    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    // The topology's own group holds its members, and only them.
    let core = read("core.txt");
    assert!(core.contains("@core:"), "{core}");
    assert!(core.contains("r1") && core.contains("r2"), "{core}");
    assert!(!core.contains("r3"), "{core}");
    // Its variable reaches its hosts; netlab's device group variables and
    // host variables reach every host.
    let (r1, r3): (Value, Value) = (
        serde_json::from_str(&read("r1.json")).unwrap(),
        serde_json::from_str(&read("r3.json")).unwrap(),
    );
    assert_eq!(r1["ospf_area"], "0.0.0.7", "{r1}");
    assert_eq!(r3.get("ospf_area"), None, "{r3}");
    let devices: Vec<Value> = serde_json::from_str(&read("devices.json")).unwrap();
    for (host, device) in [(&r1, &devices[0]), (&r3, &devices[2])] {
        assert_eq!(host["ansible_network_os"], "eos");
        assert_eq!(host["ansible_host"], device["raw"]["ansible_host"]);
        assert_eq!(host["mgmt"]["ipv4"], device["raw"]["mgmt"]["ipv4"]);
    }
}

#[tokio::test]
async fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    let mut command = run_sh(&s, dir.path(), "trap '' TERM; touch started; sleep 600");
    command.env("REMOTE_LAB_KILL_GRACE", "1");
    let run = command.spawn().unwrap();
    wait_for_file(&dir.path().join("started")).await;

    terminate(&run);
    let (status, stderr) = finish(run).await;
    assert_eq!(status.code(), Some(128 + libc::SIGKILL), "{stderr}");
    assert!(stderr.contains("killing it"), "{stderr}");
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn what_the_command_leaves_running_ends_with_it() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    let script = "sleep 600 & echo $! > background; exit 0";
    let (status, stderr) = finish(run_sh(&s, dir.path(), script).spawn().unwrap()).await;
    assert!(status.success(), "{stderr}");
    let background = pid_in(&dir.path().join("background"));
    wait_until_gone(background, "the command's background child").await;
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn a_killed_run_takes_its_command_along_and_the_lease_frees_the_lab() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    // Not exec'd, with a child of its own: a shell running a playbook.
    let script = "echo $$ > command; sleep 600 & echo $! > g.tmp; mv g.tmp grandchild; wait";
    let mut command = run_sh(&s, dir.path(), script);
    command.env("REMOTE_LAB_HEARTBEAT_INTERVAL", "1");
    let mut run = command.spawn().unwrap();
    wait_for_file(&dir.path().join("grandchild")).await;
    let command = pid_in(&dir.path().join("command"));
    let grandchild = pid_in(&dir.path().join("grandchild"));

    // Nothing can catch SIGKILL: the job's guard gets its parent-death
    // signal and kills the whole group, and the server evicts the silent
    // session after its lease (10 s for one beat a second).
    run.start_kill().unwrap();
    run.wait().await.unwrap();
    wait_until_gone(command, "the command").await;
    wait_until_gone(grandchild, "what the command started").await;
    wait_for_sessions(&s, "the killed run's session evicted", <[Value]>::is_empty).await;
    let view = s.get_json("/sessions").await;
    wait_for_sessions(&s, "its lab torn down", |_| s.dirs.lab_dirs().is_empty()).await;
    assert_eq!(view["slots"][0]["holder"], Value::Null, "{view}");
}

fn pid_in(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Polls until process `pid` is gone (bounded).
async fn wait_until_gone(pid: i32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // SAFETY: signal 0 only checks whether the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
        assert!(Instant::now() < deadline, "{what} ({pid}) is still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_zombie(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .starts_with('Z')
}

#[tokio::test]
async fn status_shows_the_holder_its_lab_and_the_queue() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (holder, _) = s.create_session().await;
    let (acquired, _) = s.acquire(&holder, Upload::new("lab.yml", TWO_NODES)).await;
    assert!(acquired.is_success());
    let (waiting, _) = s.create_session().await;
    let dir = tempfile::tempdir().unwrap();

    let table = cli(&s, dir.path()).arg("status").output().await.unwrap();
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    let slot = table.lines().nth(1).unwrap();
    for word in ["up", &holder[..8], "lab.yml", "r1 (192.168.121.101)"] {
        assert!(slot.contains(word), "{word} missing in {table}");
    }
    assert!(
        table.contains(&format!("1    {}  waiting", &waiting[..8])),
        "{table}"
    );

    let json = cli(&s, dir.path())
        .args(["status", "--json"])
        .output()
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["slots"], s.get_json("/sessions").await["slots"]);
    let ids: Vec<_> = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].clone())
        .collect();
    assert_eq!(ids, [&holder[..8], &waiting[..8]]);
}

#[tokio::test]
async fn session_end_removes_a_session_and_reports_an_unknown_one() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let dir = tempfile::tempdir().unwrap();
    let end = || {
        let mut command = cli(&s, dir.path());
        command.args(["session", "end", &id]);
        command
    };
    assert!(end().status().await.unwrap().success());
    assert_eq!(
        s.session_status(&id).await.0,
        reqwest::StatusCode::NOT_FOUND
    );

    let again = end().output().await.unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("404 Not Found: Session not found"));
}

#[tokio::test]
async fn lab_down_needs_force_for_a_held_lab_and_defaults_to_the_holder() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (holder, _) = s.create_session().await;
    s.acquire(&holder, Upload::new("lab.yml", TWO_NODES)).await;
    let dir = tempfile::tempdir().unwrap();
    let lab_down = |args: &[&str]| {
        let mut command = cli(&s, dir.path());
        command.args(["lab", "down"]).args(args);
        command
    };

    let held = lab_down(&["--session", &holder]).output().await.unwrap();
    assert_eq!(held.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&held.stderr).contains("Lab still in use"));
    let (_, lab) = s.lab_call(Method::GET, "/lab", &holder).await;
    assert_eq!(lab["running"], true);

    // No --session: the session active longest, the lab's holder.
    let forced = lab_down(&["--force"]).output().await.unwrap();
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    let (_, lab) = s.lab_call(Method::GET, "/lab", &holder).await;
    assert_eq!(lab["running"], false);
    assert!(!s.dirs.netlab_registry().contains("default:"));
}

#[tokio::test]
async fn a_lost_session_stops_the_command_and_everything_it_started() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    let script = "sleep 600 & echo $! > grandchild; echo $REMOTE_LAB_SESSION_ID > session; wait";
    let mut command = run_sh(&s, dir.path(), script);
    command.env("REMOTE_LAB_HEARTBEAT_INTERVAL", "1");
    let run = command.spawn().unwrap();
    wait_for_file(&dir.path().join("session")).await;
    wait_for_file(&dir.path().join("grandchild")).await;
    // Someone else ends the session (an operator, an eviction).
    let id = std::fs::read_to_string(dir.path().join("session")).unwrap();
    assert_eq!(
        s.end_session(id.trim()).await,
        reqwest::StatusCode::NO_CONTENT
    );

    let (status, stderr) = finish(run).await;
    assert_eq!(status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("the session is lost"), "{stderr}");
    // The command's own child went too: it was in the command's group.
    let grandchild = pid_in(&dir.path().join("grandchild"));
    wait_until_gone(grandchild, "the command's child").await;
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn a_waiting_run_keeps_its_place_across_a_server_crash() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let port = common::free_port();
    let options = || Options::new(&netlab).dirs(&dirs).port(port);
    let mut first = Server::start(options()).await;
    let (holder, _) = first.create_session().await;
    let dir = lab_folder();
    let run = run_sh(&first, dir.path(), "touch ran").spawn().unwrap();
    wait_for_sessions(&first, "queued behind the holder", |now| now.len() == 2).await;

    first.stop_with(libc::SIGKILL);
    let second = Server::start(options()).await;
    assert_eq!(
        second.end_session(&holder).await,
        reqwest::StatusCode::NO_CONTENT
    );
    let (status, stderr) = finish(run).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(dir.path().join("ran").exists());
    assert_nothing_left(&second).await;
}

#[tokio::test]
async fn on_a_terminal_the_command_reads_it_and_ctrl_c_reaches_it() {
    use tokio::io::AsyncWriteExt;
    let netlab = require_netlab!();
    // util-linux's `script` gives the run a terminal of its own.
    let script = common::require_tool("script", "apt-get install util-linux");
    let s = Server::start(Options::new(&netlab)).await;
    let dir = lab_folder();
    let run = format!(
        "{} run -t topology.yml -- sh -c 'touch ready; read line; echo \"$line\" > got; sleep 600'",
        env!("CARGO_BIN_EXE_neops-remote-lab")
    );
    let mut terminal = Command::new(script)
        .args(["-qec", &run, "/dev/null"])
        .current_dir(dir.path())
        .env("REMOTE_LAB_URL", &s.base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut keys = terminal.stdin.take().unwrap();
    wait_for_file(&dir.path().join("ready")).await;
    // The command is the terminal's foreground job: it reads what is typed…
    keys.write_all(b"hello\n").await.unwrap();
    wait_for_file(&dir.path().join("got")).await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("got")).unwrap(),
        "hello\n"
    );
    // …and Ctrl-C stops it; `run` then ends the session.
    keys.write_all(b"\x03").await.unwrap();
    let (status, output) = finish(terminal).await;
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{output}");
    assert_nothing_left(&s).await;
}

#[tokio::test]
async fn run_declares_its_lab_while_it_waits_and_fails_at_once_for_a_refused_one() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (holder, _) = s.create_session().await;
    let dir = lab_folder();
    let run = run_sh(&s, dir.path(), "true").spawn().unwrap();
    wait_for_sessions(&s, "the queued run declared its lab", |now| {
        now.len() == 2
            && now[1]["declared_labs"]
                .as_array()
                .is_some_and(|d| d.len() == 1)
    })
    .await;
    terminate(&run);
    finish(run).await;

    // A topology the server refuses ends the run before it waits its turn.
    std::fs::write(dir.path().join("topology.yml"), "nodes: [r1\n").unwrap();
    let refused = run_sh(&s, dir.path(), "touch ran").spawn().unwrap();
    let (status, stderr) = finish(refused).await;
    assert_eq!(status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("the server refuses the lab"), "{stderr}");
    assert!(!dir.path().join("ran").exists());
    let left = sessions(&s).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"].as_str(), Some(&holder[..8]));
}
