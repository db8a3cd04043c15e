//! Which netlab provider the server uses when the operator does not say:
//! netlab's container-free `external` one where no provider is installed,
//! announced in the first log lines; an explicit `NEOPS_NETLAB_UP_ARGS`
//! (even empty) wins, and netlab's "provider missing" failure gets a hint.
//!
//! Each server gets a `PATH` of its own holding only netlab, plus any
//! provider executables a test puts there (empty files that are only found,
//! never run).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;

const KVM_OK_SBIN: &str = "/usr/sbin/kvm-ok";

/// A folder for `PATH` with netlab and the given (empty, executable) tools.
fn path_with(netlab: &Path, tools: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(netlab, dir.path().join("netlab")).unwrap();
    for tool in tools {
        let file = dir.path().join(tool);
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn options(netlab: &Path, path: &Path) -> Options {
    Options::new(netlab)
        .without_up_args()
        .log_level("INFO")
        .env("PATH", path.to_str().unwrap())
}

/// The server's log up to its "listening" line.
fn start_up_lines(server: &Server) -> String {
    let log = server.log();
    let end = log.find("listening on").expect("the listening line");
    log[..end].to_string()
}

#[tokio::test]
async fn without_a_provider_the_server_picks_external_says_so_and_labs_come_up() {
    let netlab = require_netlab!();
    if Path::new(KVM_OK_SBIN).exists() {
        eprintln!("SKIPPED: {KVM_OK_SBIN} exists, so this host has a provider");
        return;
    }
    let path = path_with(&netlab, &[]);
    let s = Server::start(options(&netlab, path.path())).await;
    let start = start_up_lines(&s);
    assert!(
        start.contains(
            "no netlab provider is installed (none of containerlab, kvm-ok, virsh, vagrant on PATH): \
             labs come up with netlab's container-free 'external' provider"
        ),
        "{start}"
    );
    assert!(
        start.contains("-q --no-config -p external -s defaults.multilab.id=default"),
        "{start}"
    );
    let (id, _) = s.create_session().await;
    let (status, body) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["devices"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_installed_provider_is_named_and_external_is_not_picked() {
    let netlab = require_netlab!();
    for (tools, named) in [
        (&["containerlab"][..], "containerlab ("),
        (&["virsh", "vagrant"][..], "libvirt ("),
    ] {
        let path = path_with(&netlab, tools);
        let s = Server::start(options(&netlab, path.path())).await;
        let start = start_up_lines(&s);
        assert!(
            start.contains("netlab provider tools found: ") && start.contains(named),
            "{tools:?}: {start}"
        );
        assert!(
            start.contains(&path.path().join(tools[0]).display().to_string()),
            "{start}"
        );
        assert!(!start.contains("'external' provider"), "{start}");
    }
}

#[tokio::test]
async fn an_explicit_empty_setting_wins_and_a_missing_provider_gets_a_hint() {
    let netlab = require_netlab!();
    if Path::new(KVM_OK_SBIN).exists() {
        eprintln!("SKIPPED: {KVM_OK_SBIN} exists: netlab's libvirt probe would go further");
        return;
    }
    let path = path_with(&netlab, &[]);
    let s = Server::start(options(&netlab, path.path()).env("NEOPS_NETLAB_UP_ARGS", "")).await;
    let start = start_up_lines(&s);
    assert!(start.contains("NEOPS_NETLAB_UP_ARGS set empty"), "{start}");
    assert!(!start.contains("'external' provider"), "{start}");

    // netlab's default provider is libvirt, whose probe fails here.
    let (id, _) = s.create_session().await;
    let (status, body) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("KVM is not installed"), "{detail}");
    assert!(
        detail.contains(
            "Hint: the netlab provider for this lab is not installed on the lab host. Install it"
        ),
        "{detail}"
    );
    assert!(
        detail.contains(
            "NEOPS_NETLAB_UP_ARGS=\"-q --no-config -p external -s defaults.multilab.id=default\""
        ),
        "{detail}"
    );
    // The failure leaves the session and nothing else behind.
    assert_eq!(s.session_status(&id).await.0, StatusCode::OK);
    assert!(s.dirs.lab_dirs().is_empty(), "{:?}", s.dirs.lab_dirs());
}
