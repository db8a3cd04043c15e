//! Several lab slots with real netlab: each slot is its own netlab instance
//! (slot 1 `default`, slot 2 `2`), FIFO over slots, and ending a session
//! tears down only its own slot's lab. netlab's own registry tells.

mod common;

use common::{Options, Server, ServerDirs, TWO_NODES, Upload};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const OTHER: &str = "defaults.device: eos\nnodes: [x1, x2, x3]\n";

/// netlab's instances and their directories, from `GET /lab`'s
/// `netlab_status` (`netlab status --all --format json`).
async fn instances(s: &Server, session: &str) -> Vec<(String, String)> {
    let (_, lab) = s.lab_call(Method::GET, "/lab", session).await;
    let status: Value =
        serde_json::from_str(lab["netlab_status"].as_str().unwrap_or("{}")).unwrap_or_default();
    let mut found: Vec<(String, String)> = status
        .as_object()
        .map(|labs| {
            labs.iter()
                .filter_map(|(id, lab)| Some((id.clone(), lab["dir"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[tokio::test]
async fn two_slots_run_two_labs_and_the_third_session_gets_the_first_slot_that_frees() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab).arg("--lab-slots", "2")).await;
    let (a, position_a) = s.create_session().await;
    let (b, position_b) = s.create_session().await;
    let (c, position_c) = s.create_session().await;
    assert_eq!((position_a, position_b, position_c), (0, 0, 1));
    assert_eq!(
        s.session_status(&c).await.1,
        json!({"status": "waiting", "position": 1, "declared_labs": []})
    );

    let (status, lab_a) = s.acquire(&a, Upload::new("a.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK, "{lab_a}");
    let (status, lab_b) = s.acquire(&b, Upload::new("b.yml", OTHER)).await;
    assert_eq!(status, StatusCode::OK, "{lab_b}");
    assert_eq!(lab_b["devices"].as_array().unwrap().len(), 3);

    // Both labs are up at once, each as its own netlab instance.
    let running = instances(&s, &a).await;
    let ids: Vec<&str> = running.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["2", "default"], "{running:?}");
    let (_, view_b) = s.lab_call(Method::GET, "/lab", &b).await;
    assert_eq!(
        view_b["topology"], "b.yml",
        "GET /lab answers for the caller's slot"
    );
    let (_, devices_a) = s.lab_call(Method::GET, "/lab/devices", &a).await;
    assert_eq!(devices_a.as_array().unwrap().len(), 2);

    // Ending a tears down only a's lab; c gets slot 1.
    assert_eq!(s.end_session(&a).await, StatusCode::NO_CONTENT);
    assert_eq!(
        s.session_status(&c).await.1,
        json!({"status": "active", "position": 0, "declared_labs": []})
    );
    let running = instances(&s, &b).await;
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(running[0].0, "2");
    assert_eq!(s.dirs.lab_dirs().len(), 1);

    // c brings a lab up in the freed slot while b's keeps running.
    let (status, _) = s.acquire(&c, Upload::new("c.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = instances(&s, &c)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["2", "default"]);
    assert_eq!(
        s.lab_call(Method::GET, "/active-session", &c).await.1["session_id"],
        b.as_str()
    );

    for id in [&b, &c] {
        assert_eq!(s.end_session(id).await, StatusCode::NO_CONTENT);
    }
    assert!(s.dirs.lab_dirs().is_empty());
    assert!(
        !s.dirs.netlab_registry().contains("dir:"),
        "{}",
        s.dirs.netlab_registry()
    );
}

#[tokio::test]
async fn a_restart_with_fewer_slots_keeps_slot_1_and_clears_the_others() {
    let netlab = require_netlab!();
    let dirs = ServerDirs::new();
    let mut crashed =
        Server::start(Options::new(&netlab).arg("--lab-slots", "2").dirs(&dirs)).await;
    let (a, _) = crashed.create_session().await;
    let (b, _) = crashed.create_session().await;
    assert_eq!(
        crashed.acquire(&a, Upload::new("a.yml", TWO_NODES)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        crashed.acquire(&b, Upload::new("b.yml", OTHER)).await.0,
        StatusCode::OK
    );
    crashed.stop_with(libc::SIGKILL);
    let registry = dirs.netlab_registry();
    assert_eq!(registry.matches("dir:").count(), 2, "{registry}");

    // One slot now: slot 1's lab is re-adopted; slot 2's lab lives in this
    // server's work folder and has no slot any more, so it is cleared.
    let s = Server::start(Options::new(&netlab).dirs(&dirs)).await;
    let registry = dirs.netlab_registry();
    assert_eq!(registry.matches("dir:").count(), 1, "{registry}");
    assert!(registry.contains("default:"), "{registry}");
    assert_eq!(dirs.lab_dirs().len(), 1);
    let (_, status) = s.session_status(&b).await;
    assert_eq!(
        status,
        serde_json::json!({"status": "waiting", "position": 1, "declared_labs": []})
    );
    let (status, body) = s.acquire(&a, Upload::new("a.yml", TWO_NODES)).await;
    assert_eq!(
        (status, &body["reused"]),
        (StatusCode::OK, &serde_json::json!(true))
    );
    assert_eq!(s.end_session(&a).await, StatusCode::NO_CONTENT);
    s.wait_until_active(&b).await;
    assert_eq!(
        s.acquire(&b, Upload::new("b.yml", OTHER)).await.0,
        StatusCode::OK
    );
}

/// The lab's name, as netlab put it into its inventory's `all` variables.
async fn lab_name(s: &Server, session: &str) -> String {
    let (status, inventory) = s.lab_call(Method::GET, "/lab/inventory", session).await;
    assert_eq!(status, StatusCode::OK, "{inventory}");
    let all: Value = serde_json::from_str(
        inventory["files"]["group_vars/all/topology.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    all["netlab_name"].as_str().unwrap().to_string()
}

fn management_addresses(lab: &Value) -> Vec<String> {
    lab["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["raw"]["mgmt"]["ipv4"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn each_slot_is_isolated_as_netlab_isolates_labs() {
    let real = require_netlab!();
    let netlab = common::CountingNetlab::new(&real);
    let s = Server::start(Options::new(&netlab.script).arg("--lab-slots", "2")).await;
    let (a, _) = s.create_session().await;
    let (b, _) = s.create_session().await;
    // The same topology in both: only the slot tells them apart.
    let (_, lab_a) = s.acquire(&a, Upload::new("topology.yml", TWO_NODES)).await;
    let (_, lab_b) = s.acquire(&b, Upload::new("topology.yml", TWO_NODES)).await;
    let (addresses_a, addresses_b) = (management_addresses(&lab_a), management_addresses(&lab_b));
    assert!(
        addresses_a
            .iter()
            .all(|address| address.starts_with("192.168.121.")),
        "slot 1 is netlab's default instance: {addresses_a:?}"
    );
    assert!(
        addresses_b
            .iter()
            .all(|address| address.starts_with("192.168.2.")),
        "slot 2 has its own management subnet: {addresses_b:?}"
    );
    let (name_a, name_b) = (lab_name(&s, &a).await, lab_name(&s, &b).await);
    assert_ne!(name_a, name_b);
    assert_eq!(name_b, "ml-2");

    // What a real provider would be asked for: slot 2's settings, as the
    // server gave them to `netlab up`, make containerlab's configuration
    // name slot 2's own management network (no containers are started).
    let up = netlab
        .commands()
        .into_iter()
        .find(|line| line.starts_with("up ") && line.contains("multilab.id=2"))
        .expect("slot 2's netlab up");
    let words: Vec<&str> = up.split_whitespace().collect();
    let mut slot_settings: Vec<&str> = Vec::new();
    for pair in words.windows(2) {
        if matches!(pair[0], "-s" | "--plugin") && !pair[1].ends_with("=default") {
            slot_settings.extend(pair);
        }
    }
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("topology.yml"), TWO_NODES).unwrap();
    let created = std::process::Command::new(&real)
        .args(["create", "-q", "-p", "clab", "-o", "provider"])
        .args(&slot_settings)
        .arg("topology.yml")
        .current_dir(copy.path())
        .env("HOME", s.dirs.home())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    let clab: Value =
        yaml_serde::from_str(&std::fs::read_to_string(copy.path().join("clab.yml")).unwrap())
            .unwrap();
    assert_eq!(clab["name"], "ml-2");
    assert_eq!(clab["mgmt"]["network"], "nl_mgmt_2");
    assert_eq!(clab["mgmt"]["ipv4-subnet"], "192.168.2.0/24");
}

#[tokio::test]
async fn the_ssh_config_of_this_hosts_lab_jumps_through_the_host_the_client_named() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (a, _) = s.create_session().await;
    let (status, text) = s.lab_text("/lab/ssh-config", &a).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no lab yet: {text}");
    let (status, lab) = s.acquire(&a, Upload::new("topology.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK, "{lab}");
    let (status, text) = s.lab_text("/lab/ssh-config", &a).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("Host 127.0.0.1\n  HostName 127.0.0.1\n"),
        "{text}"
    );
    let devices = lab["devices"].as_array().unwrap();
    for (device, address) in devices.iter().zip(management_addresses(&lab)) {
        let name = device["name"].as_str().unwrap();
        let entry =
            format!("Host {name}\n  HostName {address}\n  User vagrant\n  ProxyJump 127.0.0.1\n");
        assert!(text.contains(&entry), "{entry} in {text}");
    }
}
