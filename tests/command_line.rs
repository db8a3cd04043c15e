//! The command line as operators use it: `--version`, flag ranges,
//! `--debug` and `NEOPS_NETLAB_STREAM_OUTPUT` streaming netlab's output into
//! the log, JSON logs for machines, and the original's `--log-config`.

mod common;

use std::process::Command;

use common::{Options, Server, TWO_NODES, Upload};
use reqwest::StatusCode;
use serde_json::Value;

#[test]
fn version_names_the_program_and_its_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("neops-remote-lab {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn out_of_range_durations_and_slot_counts_are_refused_before_anything_starts() {
    for (flag, value) in [
        ("--active-timeout", "99999999999999"),
        ("--active-timeout", "0"),
        ("--claim-timeout", "0"),
        ("--waiting-timeout", "86401"),
        ("--netlab-up-timeout", "1e9"),
        ("--lab-slots", "0"),
        ("--lab-slots", "65"),
        ("--max-upload-bytes", "0"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_neops-remote-lab"))
            .args([flag, value])
            .output()
            .unwrap();
        // clap's usage error: exit 2, naming the flag.
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// Starts a server with `options` (JSON logs), brings a lab up, and
/// returns the log's events.
async fn json_log_of_a_bring_up(options: Options) -> Vec<Value> {
    let s = Server::start(options.arg("--log-format", "json")).await;
    let (id, _) = s.create_session().await;
    let (status, _) = s.acquire(&id, Upload::new("t.yml", TWO_NODES)).await;
    assert_eq!(status, StatusCode::OK);
    s.log()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

/// netlab's own words, line by line, under the `netlab` target.
fn has_netlab_output(events: &[Value]) -> bool {
    events.iter().any(|event| {
        event["target"] == "netlab" && event["fields"]["message"] == "Starting external nodes"
    })
}

#[tokio::test]
async fn debug_streams_netlab_output_and_json_logs_parse() {
    let netlab = require_netlab!();
    // WARNING would hide netlab's lines; --debug (here through its env var) shows them.
    let options = Options::new(&netlab)
        .log_level("WARNING")
        .env("NEOPS_DEBUG", "true");
    let events = json_log_of_a_bring_up(options).await;
    assert!(has_netlab_output(&events), "{events:?}");
}

#[tokio::test]
async fn netlab_stream_output_env_streams_netlab_output_only() {
    let netlab = require_netlab!();
    let options = Options::new(&netlab)
        .log_level("WARNING")
        .env("NEOPS_NETLAB_STREAM_OUTPUT", "1");
    let events = json_log_of_a_bring_up(options).await;
    assert!(has_netlab_output(&events), "{events:?}");
    assert!(
        !events
            .iter()
            .any(|event| event["level"] == "DEBUG" && event["target"] != "netlab"),
        "our own debug logs stay off: {events:?}"
    );
}

#[tokio::test]
async fn log_config_is_accepted_recorded_and_explained() {
    let netlab = require_netlab!();
    let path = "/etc/neops-remote-lab/logging.ini";
    let s = Server::start(Options::new(&netlab).arg("--log-config", path)).await;
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(s.dirs.meta_file()).unwrap()).unwrap();
    assert_eq!(meta["log_config"], path);
    assert!(
        s.log().contains(&format!(
            "--log-config {path} is accepted for compatibility and not read: logs are \
             configured with --log-level, --log-format and RUST_LOG"
        )),
        "{}",
        s.log()
    );
}
