//! Labs are folders, end to end with real netlab: a topology in a
//! sub-folder of the upload reaches files one or two folders up and in
//! sibling folders; a lab's identity covers every file; `..` from a lab
//! never reaches a stray file next to the server's work folder; devices
//! come back in netlab's node order.

mod common;

use common::{Options, Server, Upload};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// What lab collections do: shared defaults and plugins two folders up,
/// templates in a sibling folder.
const COLLECTION_TOPOLOGY: &str = "\
defaults.sources.extra: [ ../../defaults.yml ]
defaults.paths.prepend.plugin: [ \"topology:../../plugin\" ]
plugin: [ marker ]
nodes:
  r1:
    config: [ ../shared/banner.j2 ]
  r2:
";
const SHARED_DEFAULTS: &str = "device: vyos\n";
const MARKER_PLUGIN: &str = "\
def post_transform(topology):
    for node in topology.nodes.values():
        node.marker = 'from-plugin'
";

fn collection<'a>(topology_name: &'a str, banner: &'a str) -> Upload<'a> {
    Upload::new(topology_name, COLLECTION_TOPOLOGY)
        .extra("defaults.yml", SHARED_DEFAULTS)
        .extra("plugin/marker.py", MARKER_PLUGIN)
        .extra("labs/shared/banner.j2", banner)
}

#[tokio::test]
async fn a_topology_in_a_sub_folder_reaches_shared_defaults_plugins_and_templates() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let (status, body) = s
        .acquire(&id, collection("labs/basic/topology.yml", "banner one\n"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r1 = &body["devices"][0]["raw"];
    assert_eq!(r1["ansible_network_os"], "vyos", "../../defaults.yml: {r1}");
    assert_eq!(r1["marker"], "from-plugin", "../../plugin: {r1}");
    assert_eq!(r1["config"][0], "../shared/banner.j2");
    assert!(
        s.registered_dir(&id)
            .await
            .unwrap()
            .ends_with("/labs/basic"),
        "netlab runs in the topology's folder"
    );
    let (_, lab) = s.lab_call(Method::GET, "/lab", &id).await;
    assert_eq!(lab["topology"], "topology.yml");

    // Without the template netlab refuses the lab: the file really was used.
    s.lab_call(Method::POST, "/lab/release", &id).await;
    let missing = Upload::new("labs/basic/topology.yml", COLLECTION_TOPOLOGY)
        .extra("defaults.yml", SHARED_DEFAULTS)
        .extra("plugin/marker.py", MARKER_PLUGIN);
    let (status, body) = s.acquire(&id, missing).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
}

#[tokio::test]
async fn a_changed_template_is_another_lab_and_a_renamed_topology_the_same() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let (_, first) = s
        .acquire(&id, collection("labs/basic/topology.yml", "banner one\n"))
        .await;
    assert_eq!(first["reused"], false);
    let first_dir = s.registered_dir(&id).await.unwrap();

    // Same files, another topology file name: the same lab.
    let (status, renamed) = s
        .acquire(&id, collection("labs/basic/other.yaml", "banner one\n"))
        .await;
    assert_eq!(
        (status, &renamed["reused"]),
        (StatusCode::OK, &Value::Bool(true))
    );
    assert_eq!(s.registered_dir(&id).await.unwrap(), first_dir);

    // A changed template with reuse=true: a fresh bring-up, once idle.
    s.lab_call(Method::POST, "/lab/release", &id).await;
    s.lab_call(Method::POST, "/lab/release", &id).await;
    let (status, changed) = s
        .acquire(
            &id,
            collection("labs/basic/topology.yml", "banner two\n").reuse(true),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["reused"], false);
    assert_ne!(s.registered_dir(&id).await.unwrap(), first_dir);
}

#[tokio::test]
async fn topology_defaults_beside_a_topology_in_a_sub_folder_apply() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let upload = Upload::new("labs/edge/topology.yml", "nodes: [r1]\n")
        .extra("labs/edge/topology-defaults.yml", "device: vyos\n")
        .extra("topology-defaults.yml", "device: eos\n");
    let (status, body) = s.acquire(&id, upload).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"][0]["raw"]["ansible_network_os"], "vyos");
}

#[tokio::test]
async fn parent_folders_of_a_lab_hold_no_stray_files() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    // Files an operator or another program left next to the work folder.
    let work_root = s.dirs.tmp().join("neops_remote_lab_labs");
    std::fs::create_dir_all(&work_root).unwrap();
    for dir in [&work_root, &s.dirs.tmp()] {
        std::fs::write(dir.join("defaults.yml"), "device: eos\n").unwrap();
    }
    let (id, _) = s.create_session().await;
    // No device anywhere but in those stray files: netlab must not find one.
    let topology = "defaults.sources.extra: [ ../defaults.yml, ../../defaults.yml, \
                    ../../../defaults.yml, ../../../../defaults.yml ]\nnodes: [r1]\n";
    let (status, body) = s.acquire(&id, Upload::new("t.yml", topology)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no default device type"),
        "{body}"
    );
}

#[tokio::test]
async fn devices_follow_netlabs_node_order() {
    let netlab = require_netlab!();
    let s = Server::start(Options::new(&netlab)).await;
    let (id, _) = s.create_session().await;
    let topology = "defaults.device: eos\nnodes: [pe1, ce1, r10, r9]\n";
    let (status, body) = s.acquire(&id, Upload::new("t.yml", topology)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names = |devices: &Value| -> Vec<String> {
        devices
            .as_array()
            .unwrap()
            .iter()
            .map(|device| device["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&body["devices"]), ["pe1", "ce1", "r10", "r9"]);
    let (_, devices) = s.lab_call(Method::GET, "/lab/devices", &id).await;
    assert_eq!(names(&devices), ["pe1", "ce1", "r10", "r9"]);
}
