//! Benchmark P9b (`bench/pool.py` runs it): one coordinator (the release
//! binary, a separate process, `--lab-slots 0 --in-memory`) and N
//! simulated lab agents in this process. Each agent is the real agent code
//! (`agent::run::join_pool`, over HTTP) whose slots run labs with the
//! in-memory lab driver (`testing::MemoryDriver`, **not netlab**). Client
//! tasks push `--sessions` sessions through: create, long-poll until
//! ACTIVE, `POST /lab`, `DELETE /session`.
//!
//! Prints one JSON object: sessions, wall seconds, promotions per second,
//! hand-off p50/p99/max in ms (from a holder's `session_ended` to the next
//! `session_promoted` into the same slot, by the coordinator's event
//! times, millisecond resolution), the coordinator's CPU seconds and peak
//! RSS.
//!
//! `pool_scale COORDINATOR_BIN AGENTS SLOTS_PER_AGENT SESSIONS CLIENTS`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use neops_remote_lab::agent::run::{LabHost, PoolAccess, join_pool};
use neops_remote_lab::agent::wire::Capabilities;
use neops_remote_lab::lab::BoxFuture;
use neops_remote_lab::lab::lock::LabLock;
use neops_remote_lab::lab::slot_driver::{LocalSlotDriver, SlotDriver};
use neops_remote_lab::testing::MemoryDriver;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "pool-scale-secret-0123456789";
const TOPOLOGY: &str = "defaults.device: eos\nnodes: [r1, r2]\n";

/// Slots whose labs live in memory, their files in a scratch folder.
struct MemoryHost {
    driver: Arc<MemoryDriver>,
    dir: PathBuf,
}

impl LabHost for MemoryHost {
    fn clear<'a>(&'a self, _numbers: &'a [usize]) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn slot(&self, number: usize) -> Box<dyn SlotDriver> {
        Box::new(LocalSlotDriver::new(
            number,
            self.driver.clone(),
            self.dir.join("labs"),
            LabLock::for_slot(&self.dir, number),
        ))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, bin, agents, per_agent, sessions, clients] = &args[..] else {
        eprintln!("usage: pool_scale COORDINATOR_BIN AGENTS SLOTS_PER_AGENT SESSIONS CLIENTS");
        std::process::exit(2);
    };
    let number = |text: &str| text.parse::<usize>().expect("a number");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(run(
        Path::new(bin),
        number(agents),
        number(per_agent),
        number(sessions),
        number(clients),
    ));
    println!("{result}");
}

async fn run(
    bin: &Path,
    agents: usize,
    per_agent: usize,
    sessions: usize,
    clients: usize,
) -> Value {
    let scratch = tempfile::tempdir().expect("scratch folder");
    let (mut coordinator, base) = start_coordinator(bin, scratch.path());
    let http = reqwest::Client::new();
    let stop = CancellationToken::new();
    for index in 0..agents {
        let host = MemoryHost {
            driver: Arc::new(MemoryDriver::default()),
            dir: scratch.path().join(format!("agent-{index}")),
        };
        std::fs::create_dir_all(&host.dir).expect("agent folder");
        let pool = PoolAccess {
            coordinator: base.clone(),
            name: format!("sim-{index}"),
            slots: per_agent,
            secret: SECRET.into(),
        };
        let capabilities = Capabilities {
            netlab_version: "memory".into(),
            ..Capabilities::default()
        };
        let stop = stop.clone();
        tokio::spawn(async move { join_pool(pool, capabilities, &host, stop).await });
    }
    wait_for_slots(&http, &base, agents * per_agent).await;
    // Subscribed before the first session, so no end goes unseen.
    let stream = (http.get(format!("{base}/events")).send().await).expect("GET /events");
    let events = tokio::spawn(collect_events(stream, sessions));
    let cpu_before = cpu_seconds(coordinator.id());

    let started = Instant::now();
    let left = Arc::new(AtomicUsize::new(sessions));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, base, left) = (http.clone(), base.clone(), Arc::clone(&left));
        tasks.spawn(async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                one_session(&http, &base).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(coordinator.id()) - cpu_before;
    let peak_rss = status_kb(coordinator.id(), "VmHWM") as f64 / 1000.0;
    let mut handoffs = events.await.expect("events");
    handoffs.sort_by(f64::total_cmp);
    stop.cancel();
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    let at = |q: f64| handoffs.get(((handoffs.len() as f64 - 1.0) * q).round() as usize);
    serde_json::json!({
        "agents": agents,
        "slots": agents * per_agent,
        "sessions": sessions,
        "clients": clients,
        "wall_seconds": wall,
        "promotions_per_second": sessions as f64 / wall,
        "handoffs": handoffs.len(),
        "handoff_p50_ms": at(0.5),
        "handoff_p99_ms": at(0.99),
        "handoff_max_ms": handoffs.last(),
        "coordinator_cpu_seconds": cpu,
        "coordinator_peak_rss_mb": peak_rss,
    })
}

fn start_coordinator(bin: &Path, scratch: &Path) -> (Child, String) {
    let (home, tmp) = (scratch.join("home"), scratch.join("tmp"));
    std::fs::create_dir_all(&home).expect("home");
    std::fs::create_dir_all(&tmp).expect("tmp");
    let child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--lab-slots",
            "0",
            "--in-memory",
        ])
        .args(["--log-level", "WARNING", "--waiting-timeout", "3600"])
        .env("NEOPS_AGENT_TOKEN", SECRET)
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .spawn()
        .expect("the coordinator starts");
    let base = coordinator_url(&tmp.join("neops_remote_lab_server.meta.json"));
    (child, base)
}

/// The coordinator's URL, from the metadata file it writes once it listens.
fn coordinator_url(meta: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(meta)
            && let Ok(meta) = serde_json::from_str::<Value>(&text)
            && let Some(port) = meta["port"].as_u64()
        {
            return format!("http://127.0.0.1:{port}");
        }
        assert!(
            Instant::now() < deadline,
            "the coordinator wrote no metadata"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_for_slots(http: &reqwest::Client, base: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let sessions: Value = match http.get(format!("{base}/sessions")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if sessions["slots"].as_array().map_or(0, Vec::len) == count {
            return;
        }
        assert!(Instant::now() < deadline, "the agents never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Create, wait until ACTIVE, bring a lab up, end.
async fn one_session(http: &reqwest::Client, base: &str) {
    let created: Value = (http.post(format!("{base}/session")).send().await)
        .expect("POST /session")
        .json()
        .await
        .expect("JSON");
    let id = created["session_id"].as_str().expect("an id").to_string();
    loop {
        let status: Value = (http
            .get(format!("{base}/session/{id}?wait=30"))
            .send()
            .await)
            .expect("GET /session")
            .json()
            .await
            .expect("JSON");
        if status["status"] == "active" {
            break;
        }
    }
    let form = reqwest::multipart::Form::new().part(
        "topology",
        reqwest::multipart::Part::bytes(TOPOLOGY.as_bytes()).file_name("topology.yml"),
    );
    let lab = (http.post(format!("{base}/lab")))
        .header("X-Session-ID", &id)
        .multipart(form)
        .send()
        .await
        .expect("POST /lab");
    assert!(lab.status().is_success(), "POST /lab: {}", lab.status());
    let ended = http.delete(format!("{base}/session/{id}")).send().await;
    assert!(ended.expect("DELETE").status().is_success());
}

/// Follows `/events` until `sessions` sessions ended; returns each
/// hand-off's time in ms: a holder's end to the next promotion into its slot.
async fn collect_events(mut response: reqwest::Response, sessions: usize) -> Vec<f64> {
    let (mut buffer, mut ended) = (String::new(), 0);
    let mut holder_of: HashMap<u64, String> = HashMap::new();
    let mut freed: HashMap<u64, SystemTime> = HashMap::new();
    let mut handoffs = Vec::new();
    while ended < sessions {
        let Ok(Some(chunk)) = response.chunk().await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            let at = event["at"]
                .as_str()
                .and_then(|at| humantime::parse_rfc3339(at).ok());
            let session = event["session"].as_str().unwrap_or_default().to_string();
            match event["type"].as_str() {
                Some("session_promoted") => {
                    let slot = event["slot"].as_u64().unwrap_or_default();
                    if let (Some(since), Some(at)) = (freed.remove(&slot), at) {
                        let took = at.duration_since(since).unwrap_or_default();
                        handoffs.push(took.as_secs_f64() * 1000.0);
                    }
                    holder_of.insert(slot, session);
                }
                Some("session_ended") => {
                    ended += 1;
                    let slot = holder_of
                        .iter()
                        .find(|(_, s)| **s == session)
                        .map(|(k, _)| *k);
                    if let (Some(slot), Some(at)) = (slot, at) {
                        holder_of.remove(&slot);
                        freed.insert(slot, at);
                    }
                }
                _ => {}
            }
        }
    }
    handoffs
}

/// utime + stime of `pid`, in seconds (`/proc/<pid>/stat`, clock ticks of
/// 100 Hz as Linux reports them to user space).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 3, utime 14, stime 15.
    (ticks(11) + ticks(12)) / 100.0
}

/// A `VmXxx` line of `/proc/<pid>/status`, in kB.
fn status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (status.lines())
        .find_map(|line| line.strip_prefix(&format!("{key}:")))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
